"""Token streams the tests share."""

import numpy as np


def bigram_data(rng, vocab_size=6, length=4000):
    """A random token stream whose bigram counts are all non-zero (a dense transition matrix)."""
    P = rng.dirichlet(np.full(vocab_size, 2.0), size=vocab_size)
    ids = np.empty(length, np.int64)
    ids[0] = 0
    for t in range(1, length):
        ids[t] = rng.choice(vocab_size, p=P[ids[t - 1]])
    return ids
