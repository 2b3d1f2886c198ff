"""Text sources: the embedded default, local files and directories, tfds.

A text *source* is one of:

* None: the embedded default text, Python's own documentation topics
  (`pydoc_data.topics.topics`, the text behind `help("if")`, `help("for")`,
  ...), which ships with every CPython installation: technical English
  prose with code examples and reStructuredText underlines. On Python 3.11:
  465,126 characters, 64,771 words, 113,523 word-level tokens with
  punctuation kept (about 43% of them punctuation, much of it underline
  runs like "*****"), 3,645 distinct tokens (lower-cased). The topics are
  joined with a blank line in sorted key order, so the text is deterministic
  for a given Python version (it changes slightly between versions).
* a path to a file: its text, decoded as UTF-8 (or `encoding`) with
  universal newlines ("\\r\\n" and "\\r" read as "\\n").
* a path to a directory: every `*.txt` file directly inside it, in sorted
  name order, joined with "\\n".
* "tfds:NAME" (or a bare NAME from `TFDS_TEXT_DATASETS` that is not an
  existing path): the train split of a tensorflow-datasets text dataset, its
  "text" feature joined with "\\n" (for "tiny_shakespeare", the whole text).
* an open text file object (anything with `.read(n)` returning str), read
  from its current position to its end.

`load_text` returns the whole text; `iter_text_chunks` yields it in pieces
whose concatenation is exactly what `load_text` returns.

Undecodable bytes: with `errors="strict"` (the default) a file holding bytes
that are not valid in `encoding` raises `TextDecodeError` (a ValueError)
naming the file and the byte offset of the first bad byte; `errors="replace"`
reads each bad byte as U+FFFD and `errors="ignore"` drops it (any error
handler name that `codecs` knows is accepted, as for `open`).
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Iterator

from xsol.core.checks import positive_int
from xsol.data import tfds_source

__all__ = [
    "TFDS_TEXT_DATASETS",
    "EMBEDDED_TEXT_NAME",
    "ERRORS_CHOICES",
    "TextDecodeError",
    "check_errors",
    "embedded_text",
    "load_text",
    "iter_text_chunks",
    "DEFAULT_CHUNK_CHARS",
    "empty_text_error",
]

#: Characters read per chunk by the streamed passes over a text (4 Mi).
DEFAULT_CHUNK_CHARS = 1 << 22

#: tfds text datasets that may be named without the ``tfds:`` prefix.
TFDS_TEXT_DATASETS = ("tiny_shakespeare", "lm1b", "imdb_reviews")

#: What the embedded default text is.
EMBEDDED_TEXT_NAME = "pydoc_data.topics (Python's documentation topics)"

_TFDS_PREFIX = "tfds:"

#: The usual choices for `errors` (any registered codec error handler works).
ERRORS_CHOICES = ("strict", "replace", "ignore")


class TextDecodeError(ValueError):
    """A text file holds bytes that are not valid in its encoding.

    Attributes:
      path: the file.
      offset: byte offset in the file of the first undecodable byte (None
        when it could not be located, e.g. the file changed meanwhile).
      encoding: the encoding the file was read with.
      reason: the codec's reason, e.g. "invalid start byte".
    """

    def __init__(self, path, offset: int | None, encoding: str, reason: str, bad: bytes = b""):
        """Builds the error and its message.

        Args:
          path: the file.
          offset: byte offset of the first bad byte, or None when unknown.
          encoding: the encoding used.
          reason: why the codec failed.
          bad: the offending bytes, shown in the message.
        """
        self.path = os.fspath(path)
        self.offset = offset
        self.encoding = encoding
        self.reason = reason
        self.bad = bytes(bad)
        where = f"at byte offset {offset}" if offset is not None else "at an unknown byte offset"
        what = f" {bad!r}" if bad else ""
        super().__init__(
            f"cannot decode {self.path} as {encoding}: {reason}{what} {where}; pass the "
            f"file's real encoding=..., or errors='replace' to read undecodable bytes as "
            f"U+FFFD, or errors='ignore' to drop them"
        )

    def __reduce__(self):
        return type(self), (self.path, self.offset, self.encoding, self.reason, self.bad)


def check_errors(errors) -> str:
    """Validates a decoding error policy.

    Args:
      errors: "strict" (raise `TextDecodeError`), "replace" (undecodable
        bytes read as U+FFFD), "ignore" (dropped), or any other error handler
        registered with `codecs`.

    Returns:
      The policy.

    Raises:
      ValueError: an unknown handler name (TypeError: not a str).
    """
    if not isinstance(errors, str):
        raise TypeError(f"errors must be a str such as {ERRORS_CHOICES}, got {type(errors).__name__}")
    try:
        codecs.lookup_error(errors)
    except LookupError:
        raise ValueError(
            f"errors must be one of {ERRORS_CHOICES} (or another registered codec error "
            f"handler), got {errors!r}"
        ) from None
    return errors


def _find_bad_byte(path, encoding: str, block: int = 1 << 20):
    """Locates the first undecodable byte of a file by decoding it incrementally.

    Returns:
      `(offset, error)` for the first strict-decoding failure, or None.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    fed = 0  # bytes handed to the decoder so far
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            final = not data
            state = decoder.getstate()
            held = len(state[0]) if isinstance(state[0], (bytes, bytearray)) else 0
            try:
                decoder.decode(data, final)
            except UnicodeDecodeError as e:
                # e.start indexes the decoder's held bytes followed by `data`.
                return fed - held + e.start, e
            if final:
                return None
            fed += len(data)


def decode_error(path, encoding: str, err: UnicodeDecodeError) -> TextDecodeError:
    # Files are read through TextIOWrapper (fast, C), whose error positions are
    # relative to its internal buffer; on failure the file is decoded again from
    # the start, incrementally, to locate the first bad byte exactly.
    try:
        found = _find_bad_byte(path, encoding)
    except OSError:
        found = None
    if found is None:
        return TextDecodeError(path, None, encoding, err.reason, err.object[err.start : err.end])
    offset, e = found
    return TextDecodeError(path, offset, encoding, e.reason, e.object[e.start : e.end])


def _read_file(path, encoding: str, errors: str) -> str:
    with open(path, encoding=encoding, errors=errors) as f:
        try:
            return f.read()
        except UnicodeDecodeError as e:
            raise decode_error(path, encoding, e) from e


def empty_text_error(source) -> ValueError:
    """The error of a pass over a text that held no characters."""
    return ValueError(f"text is empty: source {source!r} holds no characters")


def embedded_text() -> str:
    """Returns the embedded default text: Python's documentation topics.

    `pydoc_data.topics.topics` maps topic names ("assert", "if", "for", ...) to
    the reference-manual prose `help()` shows. It ships with CPython, so it is
    available offline everywhere Python runs.

    Returns:
      The topics' texts in sorted key order, joined with "\\n\\n"
      (about 465k characters for Python 3.11).

    Raises:
      FileNotFoundError: this Python installation lacks `pydoc_data` (some
        minimal distribution packages strip it).
    """
    try:
        from pydoc_data.topics import topics  # noqa: PLC0415
    except ImportError as e:
        raise FileNotFoundError(
            "the embedded default text needs the standard-library module pydoc_data, "
            "which this Python installation lacks; pass a text file or directory instead"
        ) from e
    return "\n\n".join(topics[k] for k in sorted(topics))


def resolve_text_source(source) -> tuple[str, object]:
    """Classifies a source as ("embedded"|"file"|"dir"|"tfds"|"stream", payload)."""
    if source is None:
        return "embedded", None
    if hasattr(source, "read"):
        return "stream", source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"text source must be None, a path, 'tfds:NAME' or a text file object, "
            f"got {type(source).__name__}"
        )
    s = os.fspath(source)
    if isinstance(s, str) and s.startswith(_TFDS_PREFIX):
        name = s[len(_TFDS_PREFIX) :].strip()
        if not name:
            raise ValueError("'tfds:' must be followed by a dataset name, e.g. 'tfds:tiny_shakespeare'")
        return "tfds", name
    p = Path(s)
    if p.is_file():
        return "file", p
    if p.is_dir():
        files = sorted(q for q in p.glob("*.txt") if q.is_file())
        if not files:
            raise FileNotFoundError(f"directory {p} holds no *.txt files")
        return "dir", files
    if s in TFDS_TEXT_DATASETS:
        return "tfds", s
    raise FileNotFoundError(
        f"text source {s!r} is neither an existing file nor a directory; for a "
        f"tensorflow-datasets text dataset write 'tfds:NAME' (known short names: "
        f"{', '.join(TFDS_TEXT_DATASETS)}), or pass None for the embedded default text"
    )


def _load_tfds(name: str, split: str, feature: str) -> str:
    try:
        return tfds_source.load_tfds_text(name, split=split, feature=feature)
    except tfds_source.TfdsUnavailableError as e:
        raise tfds_source.TfdsUnavailableError(
            f"text source 'tfds:{name}' needs tensorflow-datasets: {e}. Alternatively save the "
            f"text to a file and pass its path, or pass None for the embedded default text."
        ) from e


def load_text(
    source=None,
    *,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> str:
    """Loads a whole text.

    Args:
      source: None (the embedded default: Python's documentation topics), a
        file path, a directory of `*.txt` files (sorted, joined with "\\n"),
        "tfds:NAME" / a bare known tfds text dataset name, or an open text
        file object (see the module docstring).
      split: the tfds split, for tfds sources.
      feature: the tfds string feature holding the text, for tfds sources.
      encoding: the files' encoding.
      errors: what to do with bytes of a file that are not valid in
        `encoding`: "strict" (raise), "replace" (read as U+FFFD) or "ignore"
        (drop). An open file object decodes by its own settings.

    Returns:
      The text as one str.

    Raises:
      ValueError: "text is empty" when the source holds no characters, or an
        unknown `errors`.
      TextDecodeError (a ValueError): with errors="strict", a file holding
        bytes invalid in `encoding`; names the file and the byte offset.
      FileNotFoundError: the path does not exist, or a directory without
        `*.txt` files.
      tfds_source.TfdsUnavailableError (an ImportError): a tfds source while
        tensorflow-datasets is not installed.
    """
    check_errors(errors)
    kind, payload = resolve_text_source(source)
    if kind == "embedded":
        text = embedded_text()
    elif kind == "file":
        text = _read_file(payload, encoding, errors)
    elif kind == "dir":
        text = "\n".join(_read_file(p, encoding, errors) for p in payload)
    elif kind == "tfds":
        text = _load_tfds(payload, split, feature)
    else:
        text = payload.read()
    if not text:
        raise ValueError(f"text is empty: source {source!r} holds no characters")
    return text


def iter_text_chunks(
    source=None,
    chunk_chars: int = 1 << 20,
    *,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> Iterator[str]:
    """Yields a text in pieces of at most `chunk_chars` characters.

    Files are read incrementally, so memory stays bounded by `chunk_chars`;
    the embedded text and tfds texts are loaded whole and then sliced. The
    concatenation of the pieces equals `load_text(source)`, including the
    "\\n" between the files of a directory.

    Args:
      source: as for `load_text`, or an open text file object.
      chunk_chars: maximum characters per piece, > 0.
      split, feature: for tfds sources, as in `load_text`.
      encoding: the files' encoding.
      errors: "strict", "replace" or "ignore", as in `load_text`.

    Returns:
      An iterator of non-empty str pieces.

    Raises:
      ValueError: chunk_chars <= 0, or an unknown `errors`.
      TextDecodeError (a ValueError): while streaming, as in `load_text`.
      FileNotFoundError, TfdsUnavailableError: as for `load_text`.
    """
    chunk_chars = positive_int(chunk_chars, "chunk_chars")
    check_errors(errors)
    kind, payload = resolve_text_source(source)  # errors surface here, at call time
    return _chunks(kind, payload, chunk_chars, split, feature, encoding, errors)


def _read_stream(f, chunk_chars: int) -> Iterator[str]:
    while True:
        piece = f.read(chunk_chars)
        if not piece:
            return
        yield piece


def _read_file_chunks(path, chunk_chars: int, encoding: str, errors: str) -> Iterator[str]:
    with open(path, encoding=encoding, errors=errors) as f:
        while True:
            try:
                piece = f.read(chunk_chars)
            except UnicodeDecodeError as e:
                raise decode_error(path, encoding, e) from e
            if not piece:
                return
            yield piece


def _chunks(kind, payload, chunk_chars, split, feature, encoding, errors) -> Iterator[str]:
    if kind == "file":
        yield from _read_file_chunks(payload, chunk_chars, encoding, errors)
    elif kind == "dir":
        for i, p in enumerate(payload):
            if i:
                yield "\n"
            yield from _read_file_chunks(p, chunk_chars, encoding, errors)
    elif kind == "stream":
        yield from _read_stream(payload, chunk_chars)
    else:
        text = embedded_text() if kind == "embedded" else _load_tfds(payload, split, feature)
        for i in range(0, len(text), chunk_chars):
            yield text[i : i + chunk_chars]
