"""Raw text to token ids, fast and in bounded memory.

A text (any source `xsol.data.text` reads: a file, a directory of `*.txt`
files, the embedded default, "tfds:NAME", an open text file object) is read
in chunks and turned into int32 token ids by an *encoder*: anything with

* `vocab_size` (int): ids lie in [0, vocab_size);
* `name` (str): what the encoder is, for messages;
* `encode_chunk(text) -> np.ndarray`: the int32 ids of a piece of text;
* optionally `safe_cut(text) -> int`: the largest index at which `text` may
  be cut so that encoding the two sides separately gives the ids of the
  whole. It must depend only on the character before the cut (0 when
  there is no such place). Without it, a text is cut after its last "\\n".

Two encoders are built in:

* `WordEncoder(vocab)`: the word/character rules of
  `xsol.data.tokenizer.split_text` with a `Vocabulary`'s settings,
  out-of-vocabulary tokens -> id 0 ("<unk>"); exactly `vocab.encode(text)`.
  Word-level text is cut after whitespace (no token spans whitespace),
  character-level text anywhere.
* `HFTokenizerEncoder(tokenizer)` / `load_tokenizer("tokenizer.json")`: a
  Hugging Face `tokenizers.Tokenizer` (BPE, WordPiece, Unigram, ...). The
  rule: the ids of a text are the concatenation of the ids of its lines,
  each line encoded on its own with its trailing "\\n" and without special
  tokens. Texts are cut after a "\\n", so the ids do not depend on the chunk
  size.

Functions:

* `count_tokens` / `build_vocabulary_streaming`: the vocabulary pass over a
  text of any size (equal to building it from the whole text at once).
* `iter_text_ids`: int32 id arrays, one per chunk, whose concatenation is
  the encoding of the whole text.
* `encode_text_to_file`: the ids as a flat little-endian binary file (uint16
  when the vocabulary has at most 65536 ids, else uint32), written through a
  temporary file so that a failure leaves nothing at the destination.

Both passes run on every core when the source is a single file of at least
`PARALLEL_MIN_BYTES` bytes (`workers`, default: the CPUs this process may
use). The file is split into `workers` byte ranges; each boundary is moved
forward to just after an ASCII whitespace byte other than "\\r" (b" \\t\\n",
b"\\x0b", b"\\x0c") for the built-in tokenizer, or after a b"\\n" for a Hugging
Face tokenizer (a range without such a byte merges into the next). Worker
processes each read, decode and tokenize one range; the parent merges the
token counts (vocabulary pass) or concatenates the ranges' id files in order
(encoding pass). The result is exactly the sequential one, whatever the
number of ranges:

* decoding: such a byte is a whole character in UTF-8 (it never occurs
  inside a multi-byte sequence, nor in a replaced or ignored bad sequence)
  and in the ASCII-compatible one-byte encodings, so decoding the ranges
  separately and joining the texts gives the decoding of the whole file,
  with any of the error handlers "strict", "replace", "ignore",
  "backslashreplace" and "surrogateescape". Other encodings (UTF-16, UTF-32,
  the multi-byte East Asian codecs, ...) and other error handlers are read
  sequentially. "utf-8-sig" is handled too (only the first range may start
  with the byte-order mark that is dropped).
* newlines: files are read with universal newlines ("\\r\\n" and "\\r" read as
  "\\n"). Only how a "\\r" reads depends on what follows it (whether the next
  character, after any bad bytes dropped by errors="ignore", is a "\\n"), and
  no range ends with a "\\r".
* tokens: the text before each boundary ends with whitespace (or a "\\n"),
  where the tokenizer may cut a text anyway (no word-level token spans
  whitespace, every character is a character-level token, and the Hugging
  Face rule encodes lines on their own), so the ranges' tokens, in order,
  are the tokens of the whole text, and their counts add up.

Worker processes are started by "forkserver" (or "spawn" where there is no
fork server), never by forking the parent, which may be running JAX's
threads. As with any such `multiprocessing` code, the workers import the main
module, so a script that calls these functions must guard its code with
`if __name__ == "__main__":` (or pass `workers=1`). When no worker process
can run, the passes warn and read sequentially.

Memory stays bounded by one chunk per process (plus a word encoder's piece cache, the
token counter of the vocabulary pass, and the longest run of text that
cannot be cut: a word-level run without whitespace, or a line for the
Hugging Face encoder). Nothing here imports JAX; `tokenizers` is imported
only by `load_tokenizer`.
"""

from __future__ import annotations

import codecs
import io
import multiprocessing
import os
import re
import shutil
import sys
import threading
import uuid
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, compress, repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

import numpy as np

from xsol.data.text import TextDecodeError, resolve_text_source, iter_text_chunks
from xsol.data.tokenizer import PUNCTUATION_PATTERN, WORD_PATTERN, check_level
from xsol.data.vocab import Vocabulary, check_vocab_size, build_vocabulary
from xsol.core import defaults

__all__ = [
    "TextEncoder",
    "WordEncoder",
    "HFTokenizerEncoder",
    "load_tokenizer",
    "count_tokens",
    "build_vocabulary_streaming",
    "iter_text_ids",
    "encode_text_to_file",
]

DEFAULT_CHUNK_CHARS = 1 << 22

#: Files smaller than this (in bytes) are read by one process: starting
#: worker processes would cost more than it saves. Larger files are split
#: into ranges of at least a quarter of it each.
PARALLEL_MIN_BYTES = 8 << 20

# The word rules with "\n" as a third alternative: whitespace-free pieces
# joined with "\n" are tokenized in one call, the "\n" marking where each
# piece ends (no token can contain or absorb a "\n").
_PIECES_AND_PUNCT = re.compile(f"{WORD_PATTERN}|{PUNCTUATION_PATTERN}|\n")
_PIECES = re.compile(f"{WORD_PATTERN}|\n")
_PUNCT = re.compile(PUNCTUATION_PATTERN)
_LAST_SPACE = re.compile(r"\s\S*\Z")
_NO_IDS = np.empty(0, np.int32)
_INT32_MAX = np.iinfo(np.int32).max


@runtime_checkable
class TextEncoder(Protocol):
    """What `iter_text_ids` and `encode_text_to_file` need from an encoder.

    Attributes:
      vocab_size: number of ids; every id lies in [0, vocab_size).
      name: a short description, used in messages.
    """

    vocab_size: int
    name: str

    def encode_chunk(self, text: str) -> np.ndarray:
        """Returns the int32 ids of `text` (a 1-D array, possibly empty)."""
        ...


def _after_last_space(text: str) -> int:
    """One past the last whitespace character of `text` (0 when none)."""
    n = len(text)
    for i in range(n - 1, max(n - 256, 0) - 1, -1):  # the tail is usually short
        if text[i].isspace():
            return i + 1
    if n <= 256:
        return 0
    m = _LAST_SPACE.search(text, 0, n - 256)  # one C pass over the rest
    return 0 if m is None else m.start() + 1


def _after_last_newline(text: str) -> int:
    """One past the last "\\n" of `text` (0 when none)."""
    return text.rfind("\n") + 1


def _tokens_of_pieces(pieces: list[str], keep_punctuation: bool):
    """Tokenizes whitespace-free pieces in one regex call.

    Returns:
      `(tokens, sep)`: the token strings (not lower-cased) with a "\\n" after
      each piece's tokens, and the bool array marking those separators.
    """
    pattern = _PIECES_AND_PUNCT if keep_punctuation else _PIECES
    tokens = pattern.findall("\n".join(pieces) + "\n")
    sep = np.fromiter(map("\n".__eq__, tokens), bool, count=len(tokens))
    return tokens, sep


class WordEncoder:
    """The built-in word/character tokenizer with a fixed `Vocabulary`.

    `encode_chunk(text)` is exactly `vocab.encode(text)`, i.e. the ids of
    `xsol.data.tokenizer.split_text(text, **vocab.settings())`, with id 0
    for out-of-vocabulary tokens.

    How it is fast: at word level no token spans whitespace, so the text is
    split at whitespace (`str.split`, whose whitespace is the regex `\\s`)
    into pieces such as "word," or "(see"; each distinct piece is tokenized
    once (its tokens lower-cased one by one, as `split_text` does) and its
    ids are remembered; a chunk is then a dictionary look-up per piece and a
    numpy gather. At character level each distinct character's id is
    remembered. The caches hold at most about `cache_size` entries (they
    are emptied when full, between chunks).

    An encoder is safe to share between threads (chunks are encoded one at
    a time).

    Attributes:
      vocab: the `Vocabulary`.
      vocab_size: `len(vocab)`.
      name: e.g. "word-level vocabulary of 32000 tokens".
      cache_size: the cache bound.
    """

    def __init__(self, vocab: Vocabulary, *, cache_size: int = 1 << 18):
        """Creates the encoder.

        Args:
          vocab: the vocabulary (its level, lower and keep_punctuation
            settings are used).
          cache_size: bound on the number of remembered pieces, > 0.

        Raises:
          TypeError: vocab is not a `Vocabulary`.
          ValueError: cache_size is not a positive integer.
        """
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a xsol.data.Vocabulary, got {type(vocab).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, (int, np.integer)) or cache_size <= 0:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self.vocab = vocab
        self.vocab_size = len(vocab)
        self.name = f"{vocab.level}-level vocabulary of {len(vocab)} tokens"
        self.cache_size = int(cache_size)
        self._get = vocab._index.get
        self._lock = threading.Lock()
        self._clear()

    def __repr__(self) -> str:
        return f"WordEncoder({self.vocab!r})"

    def _clear(self) -> None:
        self._piece_id: dict[str, int] = {}  # piece -> its index in _start/_len
        self._flat = _NO_IDS  # the ids of all remembered pieces, end to end
        self._start = np.empty(0, np.int64)
        self._len = np.empty(0, np.int64)
        self._char_id: dict[str, int] = {}  # character -> id, or -1 when dropped

    def safe_cut(self, text: str) -> int:
        """Largest index at which `text` can be cut without splitting a token.

        Args:
          text: a piece of a longer text.

        Returns:
          `len(text)` at character level; at word level one past the last
          whitespace character (0 when there is none).
        """
        if self.vocab.level == "char":
            return len(text)
        return _after_last_space(text)

    def encode_chunk(self, text: str) -> np.ndarray:
        """Tokenizes text with the vocabulary's settings and maps it to ids.

        Args:
          text: the text (may be empty).

        Returns:
          int32 array of ids, one per token; unknown tokens get 0. Equal to
          `self.vocab.encode(text)`.

        Raises:
          TypeError: text is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        with self._lock:
            if len(self._piece_id) > self.cache_size or len(self._char_id) > self.cache_size:
                self._clear()
            if self.vocab.level == "char":
                return self._encode_chars(text)
            return self._encode_words(text)

    def _remember(self, pieces: list[str]) -> None:
        """Tokenizes new distinct pieces and appends their ids to the cache."""
        tokens, sep = _tokens_of_pieces(pieces, self.vocab.keep_punctuation)
        if self.vocab.lower:
            tokens = map(str.lower, tokens)  # per token, as split_text does ("\n" stays)
        ids = np.fromiter(map(self._get, tokens, repeat(0)), np.int32, count=len(sep))[~sep]
        counts = np.diff(np.flatnonzero(sep), prepend=-1) - 1  # tokens per piece
        starts = len(self._flat) + np.cumsum(counts) - counts
        first = len(self._piece_id)
        self._piece_id.update(zip(pieces, range(first, first + len(pieces))))
        self._flat = np.concatenate([self._flat, ids])
        self._start = np.concatenate([self._start, starts])
        self._len = np.concatenate([self._len, counts])

    def _encode_words(self, text: str) -> np.ndarray:
        pieces = text.split()
        if not pieces:
            return _NO_IDS.copy()
        piece_id = self._piece_id
        pid = np.fromiter(map(piece_id.get, pieces, repeat(-1)), np.int64, count=len(pieces))
        miss = np.flatnonzero(pid < 0)
        if miss.size:
            missing = list(map(pieces.__getitem__, miss.tolist()))
            self._remember(list(dict.fromkeys(missing)))
            pid[miss] = np.fromiter(map(piece_id.__getitem__, missing), np.int64, count=len(missing))
        lens = self._len[pid]
        ends = np.cumsum(lens)
        total = int(ends[-1])
        # Output position q of piece j (which covers [ends[j] - lens[j], ends[j]))
        # takes _flat[_start[j] + q - (ends[j] - lens[j])].
        idx = np.repeat(self._start[pid] - (ends - lens), lens)
        idx += np.arange(total, dtype=np.int64)
        return self._flat[idx]

    def _char_id_of(self, c: str) -> int:
        if not self.vocab.keep_punctuation and _PUNCT.match(c):
            return -1
        return self._get(c.lower() if self.vocab.lower else c, 0)

    def _encode_chars(self, text: str) -> np.ndarray:
        table = self._char_id
        new = set(text).difference(table)
        if new:
            table.update((c, self._char_id_of(c)) for c in new)
        ids = np.fromiter(map(table.__getitem__, text), np.int32, count=len(text))
        return ids if self.vocab.keep_punctuation else ids[ids >= 0]


def _import_tokenizers():
    try:
        import tokenizers  # noqa: PLC0415
    except ImportError as e:
        raise ImportError(
            "a Hugging Face tokenizer needs the `tokenizers` package, which is not installed: "
            "pip install tokenizers"
        ) from e
    return tokenizers


def _split_lines(text: str) -> list[str]:
    """`text` cut after each "\\n" (each line keeps its "\\n"; no empty pieces)."""
    lines = text.split("\n")
    last = lines.pop()
    lines = [line + "\n" for line in lines]
    if last:
        lines.append(last)
    return lines


class HFTokenizerEncoder:
    """A Hugging Face `tokenizers.Tokenizer` as an encoder.

    The rule: the ids of a text are the concatenation of the ids of its
    lines, each line encoded on its own, keeping its trailing "\\n", without
    special tokens (`add_special_tokens=False`). A chunk's lines are encoded
    with one `encode_batch` call (in parallel, in Rust). Since streams are
    cut only after a "\\n", the ids do not depend on where chunks are cut.
    Truncation and padding configured in the tokenizer are turned off (on a
    copy), since a text is encoded whole.

    Attributes:
      tokenizer: the `tokenizers.Tokenizer`.
      vocab_size: `tokenizer.get_vocab_size()` (added tokens included).
      name: for messages (the file name when loaded with `load_tokenizer`).
    """

    def __init__(self, tokenizer, *, name: str | None = None):
        """Wraps a tokenizer.

        Args:
          tokenizer: a `tokenizers.Tokenizer`.
          name: how messages call it; default: its model type and size.

        Raises:
          TypeError: tokenizer lacks `encode_batch` / `get_vocab_size`.
        """
        if not (hasattr(tokenizer, "encode_batch") and hasattr(tokenizer, "get_vocab_size")):
            raise TypeError(
                f"tokenizer must be a Hugging Face tokenizers.Tokenizer (with encode_batch and "
                f"get_vocab_size), got {type(tokenizer).__name__}"
            )
        configured = (getattr(tokenizer, "truncation", None), getattr(tokenizer, "padding", None))
        if any(c is not None for c in configured):
            tokenizer = type(tokenizer).from_str(tokenizer.to_str())
            tokenizer.no_truncation()
            tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.vocab_size = int(tokenizer.get_vocab_size())
        model = type(getattr(tokenizer, "model", None)).__name__
        self.name = name or f"Hugging Face tokenizer ({model} model, {self.vocab_size} ids)"
        # encode_batch_fast (tokenizers >= 0.20) gives the same ids without offsets.
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch

    def __repr__(self) -> str:
        return f"HFTokenizerEncoder({self.name!r})"

    def safe_cut(self, text: str) -> int:
        """One past the last "\\n" of `text` (0 when there is none)."""
        return _after_last_newline(text)

    def encode_chunk(self, text: str) -> np.ndarray:
        """Encodes text line by line.

        Args:
          text: the text (may be empty).

        Returns:
          int32 array: the concatenation of the ids of the lines of `text`
          (pieces cut after each "\\n"), no special tokens.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        lines = _split_lines(text)
        if not lines:
            return _NO_IDS.copy()
        encodings = self._encode_batch(lines, add_special_tokens=False)
        return np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32)


def load_tokenizer(path: str | os.PathLike) -> HFTokenizerEncoder:
    """Loads a Hugging Face tokenizer file as an encoder.

    Args:
      path: a `tokenizer.json` as written by `tokenizers.Tokenizer.save`
        (the file Hugging Face model repositories ship).

    Returns:
      An `HFTokenizerEncoder` named after the file.

    Raises:
      ImportError: `tokenizers` is not installed ("pip install tokenizers").
      ValueError: the path does not exist, is a directory, or does not parse
        as a tokenizer file; the message names the path.
    """
    tokenizers = _import_tokenizers()
    p = Path(os.fspath(path))
    expected = "expected a Hugging Face tokenizer.json file (as written by tokenizers.Tokenizer.save)"
    if p.is_dir():
        hint = f"; it holds {p / 'tokenizer.json'}: pass that" if (p / "tokenizer.json").is_file() else ""
        raise ValueError(f"tokenizer path {p} is a directory; {expected}{hint}")
    if not p.exists():
        raise ValueError(f"tokenizer file {p} does not exist; {expected}")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises a bare Exception for unreadable files
        raise ValueError(f"cannot read {p} as a tokenizer ({e}); {expected}") from e
    return HFTokenizerEncoder(tokenizer, name=f"Hugging Face tokenizer {p}")


# --- streaming ---------------------------------------------------------------------


def _check_encoder(encoder) -> None:
    missing = [a for a in ("vocab_size", "name", "encode_chunk") if not hasattr(encoder, a)]
    if missing or not callable(encoder.encode_chunk):
        lacks = ", ".join(missing) or "a callable encode_chunk"
        raise TypeError(
            f"encoder must have vocab_size, name and encode_chunk(text) (e.g. a WordEncoder or "
            f"load_tokenizer(path)); {type(encoder).__name__} lacks {lacks}"
        )
    vs = encoder.vocab_size
    if isinstance(vs, bool) or not isinstance(vs, (int, np.integer)) or vs < 1:
        raise ValueError(f"encoder {encoder.name}: vocab_size must be a positive integer, got {vs!r}")


def _cut_rule(encoder) -> Callable[[str], int]:
    cut = getattr(encoder, "safe_cut", None)
    return cut if callable(cut) else _after_last_newline


def _cut_stream(chunks: Iterable[str], cut: Callable[[str], int]) -> Iterator[str]:
    """Re-cuts chunks at safe places: the text after a chunk's last cut point is
    carried into the next one. Cut points depend only on the character before,
    so only the new chunk is searched."""
    carry: list[str] = []
    for piece in chunks:
        j = cut(piece)
        if j == 0:
            carry.append(piece)
            continue
        head = piece if j == len(piece) else piece[:j]
        if carry:
            carry.append(head)
            head = "".join(carry)
        yield head
        carry = [piece[j:]] if j < len(piece) else []
    if carry:
        yield "".join(carry)


def _check_ids(ids, encoder) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim == 1 and a.size == 0:  # e.g. [] from a custom encoder
        return _NO_IDS
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TypeError(
            f"encoder {encoder.name}: encode_chunk must return a 1-D integer array, got "
            f"{a.dtype} of shape {a.shape}"
        )
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= encoder.vocab_size:
            raise ValueError(
                f"encoder {encoder.name} produced id {lo if lo < 0 else hi}, outside "
                f"[0, vocab_size={encoder.vocab_size})"
            )
    return a if a.dtype == np.int32 else a.astype(np.int32)


def _progress(progress: bool, desc: str):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(desc=desc, unit="tok", unit_scale=True, disable=not progress)


def _empty_text(source) -> ValueError:
    return ValueError(f"text is empty: source {source!r} holds no characters")


def iter_text_ids(
    source,
    encoder,
    *,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Streams a text's token ids, chunk by chunk.

    The concatenation of the arrays equals encoding the whole text at once:
    `vocab.encode(load_text(source))` for a `WordEncoder`, the line rule for
    an `HFTokenizerEncoder`. Each chunk is cut at the encoder's last safe
    place (`encoder.safe_cut`: after whitespace for word-level text, after
    a "\\n" for a Hugging Face tokenizer, or after a "\\n" when the encoder
    has no `safe_cut`) and the rest is carried into the next chunk.

    Args:
      source: a text file path, a directory of `*.txt` files, an open text
        file object, None (the embedded text) or "tfds:NAME" (see
        `xsol.data.text`).
      encoder: a `WordEncoder`, an `HFTokenizerEncoder` or any `TextEncoder`.
      chunk_chars: characters read per chunk, > 0.
      split, feature, encoding, errors: as in `xsol.data.text.load_text`.
      progress: show a tqdm bar of tokens (and tokens/s).

    Returns:
      An iterator of non-empty int32 arrays. The source is checked when this
      is called; the text is read while iterating.

    Raises:
      TypeError: an encoder without vocab_size/name/encode_chunk.
      ValueError: chunk_chars <= 0, an unknown `errors`, (while streaming)
        an empty text ("text is empty"), an id outside [0, vocab_size), or
        undecodable bytes (`TextDecodeError`, a ValueError).
      FileNotFoundError: the source does not exist.
    """
    _check_encoder(encoder)
    chunks = iter_text_chunks(
        source, chunk_chars, split=split, feature=feature, encoding=encoding, errors=errors
    )
    return _iter_ids(source, chunks, encoder, progress)


def _iter_ids(source, chunks, encoder, progress) -> Iterator[np.ndarray]:
    n_chars = 0

    def counted():
        nonlocal n_chars
        for c in chunks:
            n_chars += len(c)
            yield c

    with _progress(progress, f"encode ({encoder.name})") as bar:
        for text in _cut_stream(counted(), _cut_rule(encoder)):
            ids = _check_ids(encoder.encode_chunk(text), encoder)
            if len(ids):
                bar.update(len(ids))
                yield ids
    if n_chars == 0:
        raise _empty_text(source)


def token_file_dtype(vocab_size: int, dtype=None) -> np.dtype:
    """The id dtype :func:`encode_text_to_file` writes: ``dtype``, or by default
    uint16 for at most 65536 ids and uint32 above (checked to hold every id)."""
    if dtype is None:
        dt = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError as e:
            raise ValueError(f"dtype must be an integer numpy dtype such as 'uint16', got {dtype!r}") from e
        if dt.kind not in "iu":
            raise ValueError(f"dtype must be an integer numpy dtype such as 'uint16', got {dt}")
        if np.iinfo(dt).max < vocab_size - 1:
            raise ValueError(
                f"dtype {dt} cannot hold ids up to {vocab_size - 1} (vocab_size {vocab_size}); "
                f"use uint32 or leave dtype=None"
            )
    return dt.newbyteorder("<")


def encode_text_to_file(
    source,
    path: str | os.PathLike,
    encoder,
    *,
    dtype=None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
    progress: bool = False,
    workers: int | None = None,
) -> int:
    """Encodes a text into a flat binary file of token ids.

    The file holds the ids of `iter_text_ids(source, encoder)` end to end,
    little-endian, with no header (read it back with
    `np.fromfile(path, "<u2")`). It is written chunk by chunk to a temporary
    file in the same directory, which replaces `path` only once complete:
    a failure (a bad byte, an interruption) leaves `path` as it was.

    A single file of at least `PARALLEL_MIN_BYTES` bytes encoded by a
    `WordEncoder` or an `HFTokenizerEncoder` is encoded by `workers`
    processes, one byte range each (cut after whitespace, or after a "\\n"
    for a Hugging Face tokenizer; see the module docstring), each writing
    its ids to a temporary part file next to `path`; the parts are then
    joined in order. The file is byte for byte the one a single process
    writes, whatever `workers` is: the text before each cut ends where the
    encoder may cut anyway, so the ranges' ids, in order, are the ids of the
    whole text.

    Args:
      source: as for `iter_text_ids`.
      path: the file to write (replaced if it exists).
      encoder: a `WordEncoder`, an `HFTokenizerEncoder` or any `TextEncoder`.
      dtype: the id type; None: uint16 when `encoder.vocab_size <= 65536`,
        else uint32.
      chunk_chars, split, feature, encoding, errors, progress: as for
        `iter_text_ids` (with several workers the progress bar advances as
        ranges finish).
      workers: processes for a single large file (see above); None: the
        CPUs this process may use; 1: this process only.

    Returns:
      The number of tokens written.

    Raises:
      ValueError: `path` is a directory, a dtype that is not an integer type
        or too small for the vocabulary, workers < 1, or as for
        `iter_text_ids` (a bad byte's offset is its offset in the file).
      FileNotFoundError: the directory of `path` does not exist, or the
        source does not exist.
    """
    _check_encoder(encoder)
    n_workers = _check_workers(workers)
    dt = token_file_dtype(int(encoder.vocab_size), dtype)
    path = Path(os.fspath(path))
    if path.is_dir():
        raise ValueError(
            f"output path {path} is a directory; expected the path of the token-id file to write"
        )
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: its directory {parent} does not exist")
    ids_stream = iter_text_ids(
        source, encoder, chunk_chars=chunk_chars, split=split, feature=feature,
        encoding=encoding, errors=errors, progress=progress,
    )  # checks the source before anything is created
    cut = _range_cut(encoder)
    plan = None if cut is None else _plan_ranges(source, n_workers, encoding, errors, cut)
    if plan is not None:
        spec = _encoder_spec(encoder)
        n = _encode_file_parallel(plan, path, spec, encoder.name, dt, chunk_chars, progress, source)
        if n is not None:
            ids_stream.close()
            return n
    tmp = parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    n = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            for ids in ids_stream:
                f.write(memoryview(ids.astype(dt, copy=False)))
                n += len(ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        ids_stream.close()
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return n


# --- the vocabulary pass ---------------------------------------------------------------


def _count_words(text: str, counter: Counter, lower: bool, keep_punctuation: bool) -> int:
    pieces = Counter(text.split())  # no token spans whitespace: count pieces first
    if not pieces:
        return 0
    tokens, sep = _tokens_of_pieces(list(pieces), keep_punctuation)
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
        if not keep_punctuation and _PUNCT.match(c):
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
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
    progress: bool = False,
    workers: int | None = None,
) -> tuple[Counter, int]:
    """Counts a text's tokens, streaming it in chunks.

    The counts are exactly `Counter(split_text(load_text(source), level,
    lower=lower, keep_punctuation=keep_punctuation))`; chunks are cut after
    whitespace at word level, so no word is split. Memory: one chunk plus
    the counter.

    A single file of at least `PARALLEL_MIN_BYTES` bytes is counted by
    `workers` processes, one byte range each (cut after whitespace; see the
    module docstring), whose counters are added up. The counts do not depend
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
    n_workers = _check_workers(workers)
    chunks = iter_text_chunks(
        source, chunk_chars, split=split, feature=feature, encoding=encoding, errors=errors
    )  # checks the arguments and the source
    plan = _plan_ranges(source, n_workers, encoding, errors, _CUT_BYTE)
    result = None
    if plan is not None:
        result = _count_file_parallel(plan, level, lower, keep_punctuation, chunk_chars, progress)
    if result is None:
        with _progress(progress, f"count {level} tokens") as bar:
            result = _count_stream(chunks, level, lower, keep_punctuation, bar)
    counter, total, n_chars = result
    if n_chars == 0:
        raise _empty_text(source)
    return counter, total


def _count_stream(chunks: Iterable[str], level: str, lower: bool, keep_punctuation: bool, bar=None):
    """Counts the tokens of a stream of text pieces.

    Returns:
      `(counter, total, n_chars)`: the token counts, their sum, and the
      number of characters read.
    """
    count = _count_words if level == "word" else _count_chars
    cut = _after_last_space if level == "word" else len
    counter: Counter = Counter()
    total = n_chars = 0
    for text in _cut_stream(chunks, cut):
        n_chars += len(text)
        n = count(text, counter, lower, keep_punctuation)
        total += n
        if bar is not None:
            bar.update(n)
    return counter, total, n_chars


def build_vocabulary_streaming(
    source=None,
    *,
    vocab_size: int | None = None,
    min_count: int = 1,
    level: str = "word",
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
    progress: bool = False,
    workers: int | None = None,
) -> Vocabulary:
    """Builds a vocabulary from a text of any size, streaming it once.

    The result equals `build_vocabulary(split_text(load_text(source), level,
    lower=lower, keep_punctuation=keep_punctuation), vocab_size=vocab_size,
    min_count=min_count, level=level, lower=lower,
    keep_punctuation=keep_punctuation)`: the same tokens, ids, counts and
    settings (see `xsol.data.vocab`), without holding the text.

    Args:
      source: as for `iter_text_ids`.
      vocab_size: cap on the number of ids, "<unk>" included (>= 2); None:
        no cap.
      min_count: tokens seen fewer times map to "<unk>".
      level, lower, keep_punctuation: the tokenization rules.
      chunk_chars, split, feature, encoding, errors, progress: as for
        `iter_text_ids`.
      workers: processes counting a single large file, as for
        `count_tokens` (the counts, hence the vocabulary, do not depend on
        it; ties are broken by the token string, not by the order tokens
        were seen); None: the CPUs this process may use; 1: this process
        only.

    Returns:
      The `Vocabulary`.

    Raises:
      ValueError: vocab_size < 2, min_count < 1, an unknown level, workers <
        1, an empty text, a text without tokens, or undecodable bytes.
      FileNotFoundError: the source does not exist.
    """
    check_vocab_size(vocab_size)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts, total = count_tokens(
        source, level=level, lower=lower, keep_punctuation=keep_punctuation,
        chunk_chars=chunk_chars, split=split, feature=feature, encoding=encoding,
        errors=errors, progress=progress, workers=workers,
    )
    if total == 0:
        raise ValueError(
            f"text has no {level} tokens (it holds only whitespace or dropped punctuation)"
        )
    return build_vocabulary(
        counts, vocab_size=vocab_size, min_count=min_count, level=level, lower=lower,
        keep_punctuation=keep_punctuation,
    )


# --- both passes over byte ranges of one file, in worker processes ---------------------

# Boundaries: just after one of these bytes (see the module docstring for why the
# result does not depend on where they fall). "\r" is left out: whether a "\r" and
# the next "\n" read as one newline depends on both.
_CUT_BYTE = re.compile(rb"[ \t\n\x0b\x0c]")
_NEWLINE_BYTE = re.compile(rb"\n")
# Decoding error handlers under which a whitespace byte always reads as itself and
# ends every bad sequence (custom handlers may resume anywhere).
_RANGE_ERRORS = frozenset({"strict", "replace", "ignore", "backslashreplace", "surrogateescape"})
_preload_set = False


def _mp_context():
    """The start method of the worker processes: never "fork" (the parent may be
    running JAX's threads). "forkserver" where there is one: workers are forked
    from a server process, started once per process from a fresh interpreter,
    that has imported this module (and with it `xsol`, whose JAX import takes
    about a second), so a pool starts in milliseconds; else "spawn"."""
    global _preload_set
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    if not _preload_set:  # acts only if the server has not been started yet
        ctx.set_forkserver_preload(["__main__", __name__])  # "__main__": the default
        _preload_set = True
    return ctx


def _check_workers(workers) -> int:
    """`workers`, or the number of CPUs this process may use when None."""
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None (all CPUs), got {workers!r}")
    return int(workers)


def _range_codecs(encoding: str, errors: str) -> tuple[str, str] | None:
    """The codecs of the first and of the other ranges of a file, or None when
    `encoding` with `errors` cannot be decoded range by range."""
    if errors not in _RANGE_ERRORS:
        return None
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        return None  # the sequential reader reports it
    name = info.name
    if name in ("utf-8", "ascii", "iso8859-1"):
        return name, name
    if name == "utf-8-sig":  # the byte-order mark is dropped only at the file's start
        return name, "utf-8"
    # A one-byte character map (cp1252, iso8859-15, koi8-r, ...): bytes decode one
    # by one; it qualifies when the boundary bytes read as themselves.
    module = sys.modules.get(getattr(info.decode, "__module__", None) or "")
    table = getattr(module, "decoding_table", None)
    if isinstance(table, str) and len(table) == 256 and all(table[b] == chr(b) for b in b" \t\n\x0b\x0c"):
        return name, name
    return None


def _next_cut(f, pos: int, size: int, cut: re.Pattern, block: int = 1 << 20) -> int:
    """Smallest `b >= pos` such that byte `b - 1` of the file matches `cut` (`size` when none)."""
    off = pos - 1
    f.seek(off)
    while off < size:
        data = f.read(block)
        if not data:
            break
        m = cut.search(data)
        if m is not None:
            return off + m.start() + 1
        off += len(data)
    return size


def _plan_ranges(source, workers: int, encoding: str, errors: str, cut: re.Pattern):
    """Splits a single large file into byte ranges for the worker processes.

    Returns:
      `(path, ranges, codecs)`, with `ranges` a list of at least 2 `(start,
      end)` pairs covering the file, each boundary just after a byte matching
      `cut`; or None when the source is to be read sequentially (one worker,
      not a single file, a small file, an encoding or error handler that
      cannot be decoded range by range, or no boundary found).
    """
    if workers < 2 or not isinstance(source, (str, os.PathLike)):
        return None
    pair = _range_codecs(encoding, errors)
    if pair is None:
        return None
    kind, path = resolve_text_source(source)
    if kind != "file":
        return None
    size = os.path.getsize(path)
    if size < max(PARALLEL_MIN_BYTES, 2):
        return None
    parts = min(workers, max(1, size // max(1, PARALLEL_MIN_BYTES // 4)))
    bounds = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            p = size * i // parts
            if p <= bounds[-1]:  # the previous range had no boundary: it took this one in
                continue
            b = _next_cut(f, p, size, cut)
            if b >= size:
                break
            bounds.append(b)
    if len(bounds) < 2:
        return None
    bounds.append(size)
    return os.fspath(path), list(zip(bounds, bounds[1:])), (*pair, encoding, errors)


def _range_chunks(path: str, start: int, end: int, chunk: int, codec_spec, tally: list) -> Iterator[str]:
    """The text of bytes [start, end) of a file, in pieces of at most `chunk` characters.

    Decoded as `open(path, encoding=..., errors=...)` reads the whole file
    (universal newlines included). `tally[0]` counts the characters.

    Raises:
      TextDecodeError: with errors="strict", a bad byte (its offset in the file).
    """
    first, rest, encoding, errors = codec_spec
    raw = codecs.getincrementaldecoder(first if start == 0 else rest)(errors=errors)
    decoder = io.IncrementalNewlineDecoder(raw, translate=True)  # what text-mode files use
    pos = start
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            data = f.read(min(chunk, end - pos)) if pos < end else b""
            final = not data
            state = raw.getstate()[0]
            held = len(state) if isinstance(state, (bytes, bytearray)) else 0
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as e:  # e.start indexes the held bytes, then `data`
                bad = e.object[e.start : e.end]
                raise TextDecodeError(path, pos - held + e.start, encoding, e.reason, bad) from None
            if text:
                tally[0] += len(text)
                yield text
            if final:
                return
            pos += len(data)


def _range_cut(encoder) -> re.Pattern | None:
    """Where a file may be split for `encoder` (None: it is not split)."""
    if type(encoder) is WordEncoder:
        return _CUT_BYTE
    if type(encoder) is HFTokenizerEncoder and hasattr(encoder.tokenizer, "to_str"):
        return _NEWLINE_BYTE
    return None  # other encoders may not be picklable, nor cut after whitespace


def _encoder_spec(encoder) -> tuple:
    """A picklable description of a built-in encoder, for the worker processes."""
    if type(encoder) is WordEncoder:
        return ("word", encoder.vocab, encoder.cache_size)
    return ("hf", encoder.tokenizer.to_str(), encoder.name)


def _encoder_from_spec(spec):
    if spec[0] == "word":
        return WordEncoder(spec[1], cache_size=spec[2])
    tokenizer = _import_tokenizers().Tokenizer.from_str(spec[1])
    return HFTokenizerEncoder(tokenizer, name=spec[2])


def _count_range(path, start, end, codec_spec, level, lower, keep_punctuation, chunk):
    """Worker: `(tokens, characters, counter)` of one byte range."""
    tally = [0]
    chunks = _range_chunks(path, start, end, chunk, codec_spec, tally)
    counter, total, _ = _count_stream(chunks, level, lower, keep_punctuation)
    return total, tally[0], counter


def _encode_range(path, start, end, codec_spec, spec, dtype, part, chunk):
    """Worker: writes the ids of one byte range to the new file `part`;
    returns `(tokens, characters)`."""
    encoder = _encoder_from_spec(spec)
    tally = [0]
    chunks = _range_chunks(path, start, end, chunk, codec_spec, tally)
    n = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with open(fd, "wb") as f:
        for text in _cut_stream(chunks, _cut_rule(encoder)):
            ids = _check_ids(encoder.encode_chunk(text), encoder)
            if len(ids):
                f.write(memoryview(ids.astype(dtype, copy=False)))
                n += len(ids)
    return n, tally[0]


def _no_pool(path: str, err: BaseException) -> None:
    warnings.warn(
        f"reading {path} in one process: the worker processes failed ({type(err).__name__}: "
        f"{err}). Worker processes import the main module: a script must guard its code "
        f"with `if __name__ == '__main__':`; pass workers=1 to read in one process.",
        RuntimeWarning,
        stacklevel=2,
    )


def _run_ranges(fn, tasks: list, bar, path: str):
    """Runs `fn(*task)` for every task, each in its own worker process.

    The bar advances by each result's first item (its tokens) as tasks finish.

    Returns:
      The results in task order, or None (after a warning) when the worker
      processes could not run.

    Raises:
      The first failure in task order: for ranges in file order, the first
      bad byte of the file, as one process reading it would report it.
    """
    try:
        with ProcessPoolExecutor(len(tasks), mp_context=_mp_context()) as pool:
            futures = [pool.submit(fn, *task) for task in tasks]
            for f in as_completed(futures):
                if f.exception() is None:
                    bar.update(f.result()[0])
    except (BrokenProcessPool, OSError, EOFError, ImportError, NotImplementedError) as e:
        _no_pool(path, e)  # no process could start (e.g. no working semaphores)
        return None
    for f in futures:
        e = f.exception()
        if isinstance(e, BrokenProcessPool):  # a worker could not start, or died
            _no_pool(path, e)
            return None
        if e is not None:
            raise e
    return [f.result() for f in futures]


def _count_file_parallel(plan, level, lower, keep_punctuation, chunk, progress):
    """The vocabulary pass over byte ranges: `(counter, total, n_chars)`, or None."""
    path, ranges, codec_spec = plan
    tasks = [(path, a, b, codec_spec, level, lower, keep_punctuation, chunk) for a, b in ranges]
    with _progress(progress, f"count {level} tokens") as bar:
        results = _run_ranges(_count_range, tasks, bar, path)
    if results is None:
        return None
    results.sort(key=lambda r: -len(r[2]))  # add the smaller counters to the largest
    counter = results[0][2]
    for _, _, c in results[1:]:
        counter.update(c)
    return counter, sum(r[0] for r in results), sum(r[1] for r in results)


def _append_file(dst_fd: int, src_path) -> None:
    """Appends a file's bytes at `dst_fd`'s position (in the kernel where it can)."""
    src_fd = os.open(src_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        if hasattr(os, "copy_file_range"):
            try:
                while os.copy_file_range(src_fd, dst_fd, 1 << 30):
                    pass
                return
            except OSError:
                pass  # not supported here: copy the rest through memory
        with open(src_fd, "rb", closefd=False) as src, open(dst_fd, "wb", closefd=False) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    finally:
        os.close(src_fd)


def _encode_file_parallel(plan, path: Path, spec, name: str, dt, chunk, progress, source):
    """The encoding pass over byte ranges, each written to a part file next to
    `path`; the parts are joined in order into the first, which then replaces
    `path`. Returns the number of tokens, or None when no worker could run.
    The part files are removed in every case."""
    src, ranges, codec_spec = plan
    tag = uuid.uuid4().hex[:12]
    parts = [path.parent / f".{path.name}.{tag}.part{i}.tmp" for i in range(len(ranges))]
    tasks = [
        (src, a, b, codec_spec, spec, dt.str, os.fspath(part), chunk)
        for (a, b), part in zip(ranges, parts)
    ]
    try:
        with _progress(progress, f"encode ({name})") as bar:
            results = _run_ranges(_encode_range, tasks, bar, src)
        if results is None:
            return None
        if sum(r[1] for r in results) == 0:
            raise _empty_text(source)
        fd = os.open(parts[0], os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            os.lseek(fd, 0, os.SEEK_END)
            for part in parts[1:]:
                _append_file(fd, part)
                os.unlink(part)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(parts[0], path)
        return sum(r[0] for r in results)
    finally:
        for part in parts:
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass
