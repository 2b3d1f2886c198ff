"""The defaults, defined once: the library, the ``xsol`` command and the scripts read them here.

* ``SMOOTHING = 0.01``: the additive smoothing ``a`` of the explicit weights
  ``W_ij = log(F_ij + a) - log(f_i + N a)``, for every kind of input (dense
  features, token windows, sparse or dense statistics). Small, because
  L1-normalized features give each example a total mass of 1 spread over its
  features (on 8x8 digits ``a = 1`` cost 7 points of accuracy against 0.01);
  for language models a larger ``a`` often gives a lower held-out perplexity,
  so choose it on held-out data.
* ``NORMALIZE = "l1"``: each example divided by its sum, ``x~ = x / sum(x)``.
* Text: ``LEVEL = "word"``, ``LOWER = True``, ``KEEP_PUNCTUATION = False``
  (words only; see :func:`xsol.data.split_text`).
* ``HELD_OUT = 0.01``: the fraction of a corpus held out at its end by
  :func:`xsol.lm.fit_token_lm` and ``xsol fit --tokens/--text``.
"""

SMOOTHING = 0.01
NORMALIZE = "l1"
LEVEL = "word"
LOWER = True
KEEP_PUNCTUATION = False
HELD_OUT = 0.01
