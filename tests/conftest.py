import os

# Tests run on the CPU with a fixed thread count so timings do not matter and
# results are reproducible; a test that needs several devices starts a subprocess.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests never download: tensorflow-datasets reads only what a test prepared itself
# (offline, its downloader would retry for minutes before failing).
os.environ.setdefault("XSOL_TFDS_DOWNLOAD", "0")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def bigram_data(rng, vocab_size=6, length=4000):
    """A random token stream whose bigram counts are all non-zero (a dense transition matrix)."""
    P = rng.dirichlet(np.full(vocab_size, 2.0), size=vocab_size)
    ids = np.empty(length, np.int64)
    ids[0] = 0
    for t in range(1, length):
        ids[t] = rng.choice(vocab_size, p=P[ids[t - 1]])
    return ids
