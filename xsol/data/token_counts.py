"""The vocabulary pass: a text of any size counted into tokens, streamed once.

`count_tokens` counts a text's tokens chunk by chunk (chunks are cut after
whitespace at word level, so no word is split); `build_vocabulary_streaming`
turns the counts into a `Vocabulary` equal to building it from the whole
text at once. A single large file is counted by worker processes, one byte
range each (see `xsol.data.byte_ranges`), whose counters are added up.
Memory: one chunk per process plus the counter.
"""

from __future__ import annotations

from collections import Counter
from itertools import compress
from typing import Iterable

import numpy as np

from xsol.core import defaults
from xsol.data import byte_ranges
from xsol.data.byte_ranges import CUT_BYTE, check_workers, plan_ranges, progress_bar, range_chunks
from xsol.data.encoders import PUNCT, after_last_space, cut_stream, tokens_of_pieces
from xsol.data.text import DEFAULT_CHUNK_CHARS, empty_text_error, iter_text_chunks
from xsol.data.tokenizer import check_level
from xsol.data.vocab import Vocabulary, build_vocabulary, check_vocab_size

__all__ = ["count_tokens", "build_vocabulary_streaming"]


def _count_words(text: str, counter: Counter, lower: bool, keep_punctuation: bool) -> int:
    pieces = Counter(text.split())  # no token spans whitespace: count pieces first
    if not pieces:
        return 0
    tokens, sep = tokens_of_pieces(list(pieces), keep_punctuation)
    weights = np.fromiter(pieces.values(), np.int64, count=len(pieces))
    w = weights[np.cumsum(sep) - sep]  # each token weighs its piece's count
    keep = ~sep
    tokens = compress(tokens, keep.tolist())
    if lower:
        tokens = map(str.lower, tokens)
    w = w[keep]
    for t, c in zip(tokens, w.tolist()):
        counter[t] += c
    return int(w.sum())


def _count_chars(text: str, counter: Counter, lower: bool, keep_punctuation: bool) -> int:
    total = 0
    for c, n in Counter(text).items():
        if not keep_punctuation and PUNCT.match(c):
            continue
        counter[c.lower() if lower else c] += n
        total += n
    return total


def count_tokens(
    source=None,
    *,
    level: str = "word",
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    chunk_chars: int = DEFAULT_CHUNK_CHARS, split: str = "train", feature: str = "text",
    encoding: str = "utf-8", errors: str = "strict",
    progress: bool = False,
    workers: int | None = None,
) -> tuple[Counter, int]:
    """Counts a text's tokens, streaming it in chunks.

    The counts are exactly `Counter(split_text(load_text(source), level,
    lower=lower, keep_punctuation=keep_punctuation))`; chunks are cut after
    whitespace at word level, so no word is split. Memory: one chunk plus
    the counter.

    A single file of at least `PARALLEL_MIN_BYTES` bytes is counted by
    `workers` processes, one byte range each (cut after whitespace; see
    `xsol.data.byte_ranges`), whose counters are added up. The counts do not depend
    on `workers`: the text before each cut ends with whitespace, where no
    token is split (at either level), so the ranges' tokens together are
    the tokens of the whole text.

    Args:
      source: as for `iter_text_ids`.
      level, lower, keep_punctuation: the tokenization rules (see
        `xsol.data.tokenizer.split_text`).
      chunk_chars, split, feature, encoding, errors, progress: as for
        `iter_text_ids` (with several workers the progress bar advances as
        ranges finish).
      workers: processes for a single large file; None: the CPUs this
        process may use; 1: this process only.

    Returns:
      `(counts, total)`: a `collections.Counter` of token strings and the
      number of tokens (`counts.total()`).

    Raises:
      ValueError: an unknown level, chunk_chars <= 0, workers < 1, or (while
        reading) an empty text or undecodable bytes (`TextDecodeError`, with
        the bad byte's offset in the file).
      FileNotFoundError: the source does not exist.
    """
    check_level(level)
    n_workers = check_workers(workers)
    chunks = iter_text_chunks(
        source, chunk_chars, split=split, feature=feature, encoding=encoding, errors=errors
    )  # checks the arguments and the source
    plan = plan_ranges(source, n_workers, encoding, errors, CUT_BYTE)
    result = None
    if plan is not None:
        result = _count_file_parallel(plan, level, lower, keep_punctuation, chunk_chars, progress)
    if result is None:
        with progress_bar(progress, f"count {level} tokens") as bar:
            result = _count_stream(chunks, level, lower, keep_punctuation, bar)
    counter, total, n_chars = result
    if n_chars == 0:
        raise empty_text_error(source)
    return counter, total


def _count_stream(chunks: Iterable[str], level: str, lower: bool, keep_punctuation: bool, bar=None):
    """Counts the tokens of a stream of text pieces.

    Returns:
      `(counter, total, n_chars)`: the token counts, their sum, and the
      number of characters read.
    """
    count = _count_words if level == "word" else _count_chars
    cut = after_last_space if level == "word" else len
    counter: Counter = Counter()
    total = n_chars = 0
    for text in cut_stream(chunks, cut):
        n_chars += len(text)
        n = count(text, counter, lower, keep_punctuation)
        total += n
        if bar is not None:
            bar.update(n)
    return counter, total, n_chars


def build_vocabulary_streaming(
    source=None,
    *,
    level: str = "word",
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    vocab_size: int | None = None,
    min_count: int = 1,
    **read,
) -> Vocabulary:
    """Builds a vocabulary from a text of any size, streaming it once.

    The result equals `build_vocabulary(split_text(load_text(source), level,
    lower=lower, keep_punctuation=keep_punctuation), vocab_size=vocab_size,
    min_count=min_count, level=level, lower=lower,
    keep_punctuation=keep_punctuation)`: the same tokens, ids, counts and
    settings (see `xsol.data.vocab`), without holding the text.

    Args:
      source: as for `iter_text_ids`.
      level, lower, keep_punctuation: the tokenization rules.
      vocab_size: cap on the number of ids, "<unk>" included (>= 2); None:
        no cap.
      min_count: tokens seen fewer times map to "<unk>".
      **read: how the text is read, as for `count_tokens`: `chunk_chars`,
        `split`, `feature`, `encoding`, `errors`, `progress` and `workers`
        (the counts, hence the vocabulary, do not depend on `workers`; ties
        are broken by the token string, not by the order tokens were seen).

    Returns:
      The `Vocabulary`.

    Raises:
      TypeError: a keyword `count_tokens` does not take.
      ValueError: vocab_size < 2, min_count < 1, an unknown level, workers <
        1, an empty text, a text without tokens, or undecodable bytes.
      FileNotFoundError: the source does not exist.
    """
    check_vocab_size(vocab_size)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts, total = count_tokens(
        source, level=level, lower=lower, keep_punctuation=keep_punctuation, **read
    )
    if total == 0:
        raise ValueError(
            f"text has no {level} tokens (it holds only whitespace or dropped punctuation)"
        )
    return build_vocabulary(
        counts, vocab_size=vocab_size, min_count=min_count, level=level, lower=lower,
        keep_punctuation=keep_punctuation,
    )


# --- in worker processes, one byte range each ------------------------------------


def _count_range(path, start, end, codec_spec, level, lower, keep_punctuation, chunk):
    """Worker: `(tokens, characters, counter)` of one byte range."""
    tally = [0]
    chunks = range_chunks(path, start, end, chunk, codec_spec, tally)
    counter, total, _ = _count_stream(chunks, level, lower, keep_punctuation)
    return total, tally[0], counter


def _count_file_parallel(plan, level, lower, keep_punctuation, chunk, progress):
    """The vocabulary pass over byte ranges: `(counter, total, n_chars)`, or None."""
    path, ranges, codec_spec = plan
    tasks = [(path, a, b, codec_spec, level, lower, keep_punctuation, chunk) for a, b in ranges]
    with progress_bar(progress, f"count {level} tokens") as bar:
        results = byte_ranges.run_ranges(_count_range, tasks, bar, path)
    if results is None:
        return None
    results.sort(key=lambda r: -len(r[2]))  # add the smaller counters to the largest
    counter = results[0][2]
    for _, _, c in results[1:]:
        counter.update(c)
    return counter, sum(r[0] for r in results), sum(r[1] for r in results)

