"""Encoders: what turns a piece of text into int32 token ids.

An *encoder* is anything with

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

The module also holds what every pass over a stream of text does with an
encoder: `check_encoder`, `check_ids` (its output checked), `cut_stream`
(chunks re-cut at the encoder's safe places) and `encoder_spec` /
`encoder_from_spec` (a picklable description of a built-in encoder, for
worker processes). Nothing here imports JAX; `tokenizers` is imported only
by `load_tokenizer` (and `encoder_from_spec`).
"""

from __future__ import annotations

import os
import re
import threading
from itertools import chain, repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

import numpy as np

from xsol.core.checks import positive_int
from xsol.data.tokenizer import PUNCTUATION_PATTERN, WORD_PATTERN
from xsol.data.vocab import Vocabulary

__all__ = ["TextEncoder", "WordEncoder", "HFTokenizerEncoder", "load_tokenizer"]

# The word rules with "\n" as a third alternative: whitespace-free pieces
# joined with "\n" are tokenized in one call, the "\n" marking where each
# piece ends (no token can contain or absorb a "\n").
_PIECES_AND_PUNCT = re.compile(f"{WORD_PATTERN}|{PUNCTUATION_PATTERN}|\n")
_PIECES = re.compile(f"{WORD_PATTERN}|\n")
PUNCT = re.compile(PUNCTUATION_PATTERN)
_LAST_SPACE = re.compile(r"\s\S*\Z")
_NO_IDS = np.empty(0, np.int32)


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


def after_last_space(text: str) -> int:
    """One past the last whitespace character of `text` (0 when none)."""
    n = len(text)
    for i in range(n - 1, max(n - 256, 0) - 1, -1):  # the tail is usually short
        if text[i].isspace():
            return i + 1
    if n <= 256:
        return 0
    m = _LAST_SPACE.search(text, 0, n - 256)  # one C pass over the rest
    return 0 if m is None else m.start() + 1


def after_last_newline(text: str) -> int:
    """One past the last "\\n" of `text` (0 when none)."""
    return text.rfind("\n") + 1


def tokens_of_pieces(pieces: list[str], keep_punctuation: bool):
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
        cache_size = positive_int(cache_size, "cache_size")
        self.vocab = vocab
        self.vocab_size = len(vocab)
        self.name = f"{vocab.level}-level vocabulary of {len(vocab)} tokens"
        self.cache_size = cache_size
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
        return after_last_space(text)

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
        tokens, sep = tokens_of_pieces(pieces, self.vocab.keep_punctuation)
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
        if not self.vocab.keep_punctuation and PUNCT.match(c):
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
        return after_last_newline(text)

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


# --- what a pass over a text does with an encoder ------------------------------


def check_encoder(encoder) -> None:
    """Refuses what is not an encoder.

    Raises:
      TypeError: `encoder` lacks `vocab_size`, `name` or a callable
        `encode_chunk`.
      ValueError: its `vocab_size` is not a positive integer.
    """
    missing = [a for a in ("vocab_size", "name", "encode_chunk") if not hasattr(encoder, a)]
    if missing or not callable(encoder.encode_chunk):
        lacks = ", ".join(missing) or "a callable encode_chunk"
        raise TypeError(
            f"encoder must have vocab_size, name and encode_chunk(text) (e.g. a WordEncoder or "
            f"load_tokenizer(path)); {type(encoder).__name__} lacks {lacks}"
        )
    positive_int(encoder.vocab_size, f"encoder {encoder.name}: vocab_size")


def cut_rule(encoder) -> Callable[[str], int]:
    """Where a text may be cut for `encoder`: its `safe_cut`, else after the last "\\n"."""
    cut = getattr(encoder, "safe_cut", None)
    return cut if callable(cut) else after_last_newline


def cut_stream(chunks: Iterable[str], cut: Callable[[str], int]) -> Iterator[str]:
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


def check_ids(ids, encoder) -> np.ndarray:
    """`encoder.encode_chunk`'s output as a 1-D int32 array.

    Raises:
      TypeError: not a 1-D integer array.
      ValueError: an id outside [0, vocab_size).
    """
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


def encoder_spec(encoder) -> tuple:
    """A picklable description of a built-in encoder, for the worker processes."""
    if type(encoder) is WordEncoder:
        return ("word", encoder.vocab, encoder.cache_size)
    return ("hf", encoder.tokenizer.to_str(), encoder.name)


def encoder_from_spec(spec):
    """The encoder an `encoder_spec` describes (in a worker process)."""
    if spec[0] == "word":
        return WordEncoder(spec[1], cache_size=spec[2])
    tokenizer = _import_tokenizers().Tokenizer.from_str(spec[1])
    return HFTokenizerEncoder(tokenizer, name=spec[2])

