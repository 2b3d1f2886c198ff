"""Explicit language models on raw text of any size.

:func:`fit_text_lm` streams a text twice: a vocabulary pass (the built-in
word/character tokenizer, capped at ``vocab_size`` with ``<unk>`` as id 0;
skipped with a Hugging Face ``tokenizers`` file, whose vocabulary is fixed),
then an encoding pass that writes the ids to a token file (kept with
``tokens_path``, else a temporary file). Every window then comes from that
file through :func:`xsol.lm.fit_token_lm`, so memory never holds the text or
its ids, only one chunk of each.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

from xsol.core import defaults
from xsol.data.encode import encode_text_to_file, token_file_dtype
from xsol.data.encoders import WordEncoder, load_tokenizer
from xsol.data.token_counts import build_vocabulary_streaming
from xsol.data.windows import check_window
from xsol.solvers.explicit import DEFAULT_SMOOTHING
from xsol.lm.corpus import CorpusFit, fit_token_lm, peak_rss_bytes


@dataclasses.dataclass
class TextFit:
    """Language models of one text, one per window.

    Attributes:
      fits: a :class:`~xsol.lm.corpus.CorpusFit` per window, in the order asked.
      encoder: the encoder used (a ``WordEncoder`` with its ``vocab``, or a
        Hugging Face tokenizer's ``HFTokenizerEncoder``).
      num_tokens: tokens in the whole text.
      seconds: ``vocabulary`` (pass 1; 0 with a tokenizer file), ``encode``
        (pass 2), ``fit`` (all windows) and ``total``.
      peak_rss_bytes: the process's peak resident memory at the end.
      tokens_path: the token file, when it was kept.
    """

    fits: list
    encoder: object
    num_tokens: int
    seconds: dict
    peak_rss_bytes: int
    tokens_path: str | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.encoder.vocab_size)

    @property
    def tokens_per_second(self) -> float:
        """Text tokens per second of the whole run (both passes and every fit)."""
        return self.num_tokens / max(self.seconds["total"], 1e-12)

    def to_dict(self) -> dict:
        return dict(encoder=getattr(self.encoder, "name", repr(self.encoder)),
                    vocab_size=self.vocab_size, num_tokens=self.num_tokens,
                    seconds=dict(self.seconds), tokens_per_second=self.tokens_per_second,
                    peak_rss_bytes=self.peak_rss_bytes, tokens_path=self.tokens_path,
                    fits=[f.to_dict() for f in self.fits])


def fit_text_lm(
    source=None,
    *,
    vocab_size: int | None = 2000,
    windows=(1,),
    held_out: float | None = defaults.HELD_OUT,
    tokenizer=None,
    level: str = defaults.LEVEL,
    lower: bool = defaults.LOWER,
    keep_punctuation: bool = defaults.KEEP_PUNCTUATION,
    smoothing: float = DEFAULT_SMOOTHING,
    backend: str = "auto",
    tokens_path=None,
    encoding: str = "utf-8",
    errors: str = "strict",
    workers: int | None = None,
    progress: bool = False,
) -> TextFit:
    """Fits explicit K-window language models to a text, streaming it (module docstring).

    Args:
      source: a text file, a directory of ``*.txt``, ``"tfds:NAME"``, or None
        for the embedded text (see :func:`xsol.data.load_text`).
      vocab_size: cap of the built-in vocabulary (ids by descending frequency,
        ``<unk>`` = 0); ignored with ``tokenizer``.
      windows: the windows ``K`` to fit, e.g. ``(1, 2)``.
      held_out: fraction of the tokens held out at the end, in ``(0, 1)``, or None.
      tokenizer: path of a Hugging Face ``tokenizer.json`` to use instead of
        the built-in tokenizer.
      level, lower, keep_punctuation: the built-in tokenizer's settings
        (:func:`xsol.data.split_text`).
      smoothing: additive smoothing ``a``.
      backend: ``"auto"``, ``"dense"`` or ``"sparse"`` (:mod:`xsol.lm.backend`).
      tokens_path: keep the encoded ids in this token file (uint16 when the
        vocabulary has at most 65,536 ids, else uint32); default a temporary file.
      encoding, errors: how the text files are decoded.
      workers: processes for the two text passes over one large file (default:
        every CPU; 1: in this process). Scripts that call this at their top
        level need the usual ``if __name__ == "__main__":`` guard, as for any
        multiprocessing code.
      progress: progress bars in tokens per second.

    Returns:
      A :class:`TextFit`.
    """
    t_start = time.perf_counter()
    ks = [check_window(k) for k in windows]
    if not ks:
        raise ValueError("windows is empty; expected at least one window K >= 1, e.g. (1, 2)")
    t0 = time.perf_counter()
    if tokenizer is not None:
        encoder = load_tokenizer(tokenizer)
    else:
        vocab = build_vocabulary_streaming(source, vocab_size=vocab_size, level=level,
                                           lower=lower, keep_punctuation=keep_punctuation,
                                           encoding=encoding, errors=errors, workers=workers,
                                           progress=progress)
        encoder = WordEncoder(vocab)
    t_vocab = time.perf_counter() - t0 if tokenizer is None else 0.0
    with tempfile.TemporaryDirectory(prefix="xsol-tokens-") as tmp:
        path = os.fspath(tokens_path) if tokens_path is not None else os.path.join(tmp, "ids.bin")
        t0 = time.perf_counter()
        n = encode_text_to_file(source, path, encoder, encoding=encoding, errors=errors,
                                workers=workers, progress=progress)
        t_encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        fits: list[CorpusFit] = [
            fit_token_lm(path, int(encoder.vocab_size), window=k, held_out=held_out,
                         smoothing=smoothing, backend=backend, progress=progress,
                         dtype=token_file_dtype(int(encoder.vocab_size)))
            for k in ks
        ]
        for f in fits:
            f.source = None if tokens_path is None else path
        t_fit = time.perf_counter() - t0
    seconds = dict(vocabulary=t_vocab, encode=t_encode, fit=t_fit,
                   total=time.perf_counter() - t_start)
    return TextFit(fits, encoder, n, seconds, peak_rss_bytes(),
                   None if tokens_path is None else path)
