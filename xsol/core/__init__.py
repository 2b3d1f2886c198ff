"""The bottom stage: what every other stage shares.

* :mod:`~xsol.core.defaults`: the defaults, defined once (smoothing, normalization, text).
* :mod:`~xsol.core.memory`: memory budgets (:class:`MemoryBudgetError`).
* :mod:`~xsol.core.process_memory`: how much memory this process holds (peak and current RSS).
* :mod:`~xsol.core.saved`: the registry of saved types (what :mod:`xsol.io` can write).
* :mod:`~xsol.core.serialize`: strict JSON and atomic writes.
* :mod:`~xsol.core.align`: 64-byte-aligned arrays, which JAX's CPU device takes without a copy.
* :mod:`~xsol.core.checks`: small argument checks (positive integers), written once.
* :mod:`~xsol.core.inputs`: input conventions, validation and logits.

Nothing here imports another xsol stage.
"""
