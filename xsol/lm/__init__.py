"""Explicit language models at corpus scale: token files or raw text to a fitted,
evaluated model in bounded memory.

* :mod:`xsol.lm.backend`: dense or sparse statistics, chosen from the memory budget.
* :mod:`xsol.lm.corpus`: :func:`fit_token_lm` on a token-id file or array.
* :mod:`xsol.lm.text`: :func:`fit_text_lm` on raw text (streamed twice).
"""

from xsol.lm.backend import BackendChoice, choose_backend, dense_bytes
from xsol.lm.corpus import CorpusFit, fit_token_lm, peak_rss_bytes, score_solution
from xsol.lm.text import TextFit, fit_text_lm

__all__ = [
    "BackendChoice",
    "choose_backend",
    "dense_bytes",
    "CorpusFit",
    "fit_token_lm",
    "peak_rss_bytes",
    "score_solution",
    "TextFit",
    "fit_text_lm",
]
