"""One large text file read by several worker processes, one byte range each.

Both passes over a text (the vocabulary pass of `xsol.data.token_counts` and
the encoding pass of `xsol.data.encode`) run on every core when the source
is a single file of at least `PARALLEL_MIN_BYTES` bytes (`workers`,
default: the CPUs this process may use).

The file is split into `workers` byte ranges; each boundary is moved
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

`plan_ranges` splits a file (or says to read it in one process),
`range_chunks` decodes one range as the whole file would read it, and
`run_ranges` runs a worker function per range in a process pool.
"""

from __future__ import annotations

import codecs
import io
import multiprocessing
import os
import re
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

from tqdm.auto import tqdm

from xsol.core.checks import optional_positive_int
from xsol.data.text import TextDecodeError, resolve_text_source

__all__ = ["PARALLEL_MIN_BYTES", "CUT_BYTE", "NEWLINE_BYTE", "check_workers", "plan_ranges",
           "range_chunks", "run_ranges", "progress_bar"]

#: Files smaller than this (in bytes) are read by one process: starting
#: worker processes would cost more than it saves. Larger files are split
#: into ranges of at least a quarter of it each.
PARALLEL_MIN_BYTES = 8 << 20

# Boundaries: just after one of these bytes (see the module docstring for why the
# result does not depend on where they fall). "\r" is left out: whether a "\r" and
# the next "\n" read as one newline depends on both.
CUT_BYTE = re.compile(rb"[ \t\n\x0b\x0c]")
NEWLINE_BYTE = re.compile(rb"\n")
# Decoding error handlers under which a whitespace byte always reads as itself and
# ends every bad sequence (custom handlers may resume anywhere).
_RANGE_ERRORS = frozenset({"strict", "replace", "ignore", "backslashreplace", "surrogateescape"})
_preload_set = False


def progress_bar(progress: bool, desc: str):
    """A tqdm bar of tokens (and tokens/s), hidden unless `progress`; `run_ranges`
    advances it as ranges finish, a sequential pass as chunks are read."""
    return tqdm(desc=desc, unit="tok", unit_scale=True, disable=not progress)


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


def check_workers(workers) -> int:
    """`workers`, or the number of CPUs this process may use when None.

    Raises:
      ValueError: neither None nor a positive integer.
    """
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return optional_positive_int(workers, "workers", none_means="all CPUs")


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


def plan_ranges(source, workers: int, encoding: str, errors: str, cut: re.Pattern):
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


def range_chunks(path: str, start: int, end: int, chunk: int, codec_spec, tally: list) -> Iterator[str]:
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


def _no_pool(path: str, err: BaseException) -> None:
    warnings.warn(
        f"reading {path} in one process: the worker processes failed ({type(err).__name__}: "
        f"{err}). Worker processes import the main module: a script must guard its code "
        f"with `if __name__ == '__main__':`; pass workers=1 to read in one process.",
        RuntimeWarning,
        stacklevel=2,
    )


def run_ranges(fn, tasks: list, bar, path: str):
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

