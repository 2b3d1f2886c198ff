"""The one reader of the process's resident memory."""

import inspect
import sys

import numpy as np
import pytest

from xsol.core import process_memory as pm

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux
def test_status_fields_are_bytes_and_consistent():
    s = pm.process_status()
    assert set(s) <= set(pm.STATUS_FIELDS) and "VmHWM" in s and "VmRSS" in s
    assert s["VmHWM"] >= s["VmRSS"] > 0
    assert all(v % 1024 == 0 for v in s.values())


@linux
def test_peak_grows_with_an_allocation_and_never_falls_below_current():
    before = pm.peak_rss_bytes()
    a = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
    after = pm.peak_rss_bytes()
    assert after >= before
    assert after >= pm.current_rss_bytes() - 4096
    assert a.sum() == 64 << 20


@linux
def test_reset_restarts_the_peak_mark():
    big = np.ones(128 << 20, dtype=np.uint8)
    big.sum()
    del big
    peak = pm.peak_rss_bytes()
    if not pm.reset_peak_rss():
        pytest.skip("clear_refs not writable here")
    # the 128 MiB were unmapped on del, so the restarted mark sits well below the old one
    assert pm.peak_rss_bytes() < peak - (64 << 20)


def test_status_source_runs_on_its_own():
    # benchmarks ship this function's source to a child that does not import xsol
    ns: dict = {}
    exec(inspect.getsource(pm.process_status), ns)
    assert isinstance(ns["process_status"](), dict)


def test_unknown_field_is_absent():
    assert pm.process_status(("NoSuchField",)) == {}
