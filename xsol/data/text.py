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
* a path to a file: its text, decoded as UTF-8 with universal newlines.
* a path to a directory: every `*.txt` file directly inside it, in sorted
  name order, joined with "\\n".
* "tfds:NAME" (or a bare NAME from `TFDS_TEXT_DATASETS` that is not an
  existing path): the train split of a tensorflow-datasets text dataset, its
  "text" feature joined with "\\n" (for "tiny_shakespeare", the whole text).
* an open text file object (anything with `.read(n)` returning str), read
  from its current position to its end.

`load_text` returns the whole text; `iter_text_chunks` yields it in pieces
whose concatenation is exactly what `load_text` returns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from xsol.data import tfds_source

__all__ = [
    "TFDS_TEXT_DATASETS",
    "EMBEDDED_TEXT_NAME",
    "embedded_text",
    "load_text",
    "iter_text_chunks",
]

#: tfds text datasets that may be named without the "tfds:" prefix.
TFDS_TEXT_DATASETS = ("tiny_shakespeare", "lm1b", "imdb_reviews")

#: What the embedded default text is.
EMBEDDED_TEXT_NAME = "pydoc_data.topics (Python's documentation topics)"

_TFDS_PREFIX = "tfds:"


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


def _resolve(source) -> tuple[str, object]:
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
    source=None, *, split: str = "train", feature: str = "text", encoding: str = "utf-8"
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

    Returns:
      The text as one str.

    Raises:
      ValueError: "text is empty" when the source holds no characters.
      FileNotFoundError: the path does not exist, or a directory without
        `*.txt` files.
      tfds_source.TfdsUnavailableError (an ImportError): a tfds source while
        tensorflow-datasets is not installed.
    """
    kind, payload = _resolve(source)
    if kind == "embedded":
        text = embedded_text()
    elif kind == "file":
        with open(payload, encoding=encoding) as f:
            text = f.read()
    elif kind == "dir":
        parts = []
        for p in payload:
            with open(p, encoding=encoding) as f:
                parts.append(f.read())
        text = "\n".join(parts)
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

    Returns:
      An iterator of non-empty str pieces.

    Raises:
      ValueError: chunk_chars <= 0.
      FileNotFoundError, TfdsUnavailableError: as for `load_text`.
    """
    if not isinstance(chunk_chars, int) or chunk_chars <= 0:
        raise ValueError(f"chunk_chars must be a positive integer, got {chunk_chars!r}")
    kind, payload = _resolve(source)  # errors surface here, at call time
    return _chunks(kind, payload, chunk_chars, split, feature, encoding)


def _read_stream(f, chunk_chars: int) -> Iterator[str]:
    while True:
        piece = f.read(chunk_chars)
        if not piece:
            return
        yield piece


def _chunks(kind, payload, chunk_chars, split, feature, encoding) -> Iterator[str]:
    if kind == "file":
        with open(payload, encoding=encoding) as f:
            yield from _read_stream(f, chunk_chars)
    elif kind == "dir":
        for i, p in enumerate(payload):
            if i:
                yield "\n"
            with open(p, encoding=encoding) as f:
                yield from _read_stream(f, chunk_chars)
    elif kind == "stream":
        yield from _read_stream(payload, chunk_chars)
    else:
        text = embedded_text() if kind == "embedded" else _load_tfds(payload, split, feature)
        for i in range(0, len(text), chunk_chars):
            yield text[i : i + chunk_chars]
