"""Settings shared by the unit tests (tests/) and the benchmark tests (benchmarks/tests/)."""

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
