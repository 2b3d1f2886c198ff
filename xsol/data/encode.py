"""Raw text to a flat binary file of token ids, fast and in bounded memory.

A text (any source `xsol.data.text` reads: a file, a directory of `*.txt`
files, the embedded default, "tfds:NAME", an open text file object) is read
in chunks and turned into int32 token ids by an encoder (see
`xsol.data.encoders`: the built-in `WordEncoder`, a Hugging Face tokenizer
file via `load_tokenizer`, or any `TextEncoder`).

* `iter_text_ids`: int32 id arrays, one per chunk, whose concatenation is
  the encoding of the whole text.
* `encode_text_to_file`: the ids as a flat little-endian binary file (uint16
  when the vocabulary has at most 65536 ids, else uint32), written through a
  temporary file so that a failure leaves nothing at the destination. A
  single large file is encoded by worker processes, one byte range each
  (see `xsol.data.byte_ranges`), whose id files are joined in order: the
  file is byte for byte the one a single process writes.

The vocabulary pass (`count_tokens`, `build_vocabulary_streaming`) is
`xsol.data.token_counts`; it and the encoders stay importable from here.
Memory stays bounded by one chunk per process (plus a word encoder's piece
cache and the longest run of text that cannot be cut: a word-level run
without whitespace, or a line for the Hugging Face encoder). Nothing here
imports JAX; `tokenizers` is imported only by `load_tokenizer`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np

from xsol.data import byte_ranges
from xsol.data.byte_ranges import (
    CUT_BYTE, NEWLINE_BYTE, check_workers, plan_ranges, progress_bar, range_chunks,
)
from xsol.data.encoders import (  # the encoders stay importable from here
    HFTokenizerEncoder,
    TextEncoder,
    WordEncoder,
    check_encoder,
    check_ids,
    cut_rule,
    cut_stream,
    encoder_from_spec,
    encoder_spec,
    load_tokenizer,
)
from xsol.data.text import DEFAULT_CHUNK_CHARS, empty_text_error, iter_text_chunks
from xsol.data.token_counts import build_vocabulary_streaming, count_tokens  # importable from here

__all__ = ["iter_text_ids", "encode_text_to_file"]


def iter_text_ids(
    source,
    encoder,
    *,
    chunk_chars: int = DEFAULT_CHUNK_CHARS, split: str = "train", feature: str = "text",
    encoding: str = "utf-8", errors: str = "strict",
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
    check_encoder(encoder)
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

    with progress_bar(progress, f"encode ({encoder.name})") as bar:
        for text in cut_stream(counted(), cut_rule(encoder)):
            ids = check_ids(encoder.encode_chunk(text), encoder)
            if len(ids):
                bar.update(len(ids))
                yield ids
    if n_chars == 0:
        raise empty_text_error(source)


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
    chunk_chars: int = DEFAULT_CHUNK_CHARS, split: str = "train", feature: str = "text",
    encoding: str = "utf-8", errors: str = "strict",
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
    for a Hugging Face tokenizer; see `xsol.data.byte_ranges`), each writing
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
    check_encoder(encoder)
    n_workers = check_workers(workers)
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
    plan = None if cut is None else plan_ranges(source, n_workers, encoding, errors, cut)
    if plan is not None:
        spec = encoder_spec(encoder)
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


# --- in worker processes, one byte range each ------------------------------------


def _range_cut(encoder) -> re.Pattern | None:
    """Where a file may be split for `encoder` (None: it is not split)."""
    if type(encoder) is WordEncoder:
        return CUT_BYTE
    if type(encoder) is HFTokenizerEncoder and hasattr(encoder.tokenizer, "to_str"):
        return NEWLINE_BYTE
    return None  # other encoders may not be picklable, nor cut after whitespace


def _encode_range(path, start, end, codec_spec, spec, dtype, part, chunk):
    """Worker: writes the ids of one byte range to the new file `part`;
    returns `(tokens, characters)`."""
    encoder = encoder_from_spec(spec)
    tally = [0]
    chunks = range_chunks(path, start, end, chunk, codec_spec, tally)
    n = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with open(fd, "wb") as f:
        for text in cut_stream(chunks, cut_rule(encoder)):
            ids = check_ids(encoder.encode_chunk(text), encoder)
            if len(ids):
                f.write(memoryview(ids.astype(dtype, copy=False)))
                n += len(ids)
    return n, tally[0]


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
        with progress_bar(progress, f"encode ({name})") as bar:
            results = byte_ranges.run_ranges(_encode_range, tasks, bar, src)
        if results is None:
            return None
        if sum(r[1] for r in results) == 0:
            raise empty_text_error(source)
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
