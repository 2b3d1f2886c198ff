"""The shared argument checks of ``xsol.core.checks``."""

import re

import numpy as np
import pytest

from xsol.core.checks import is_integer, nonnegative_int, optional_positive_int, positive_int

NUMPY_INTS = [np.int8(3), np.int32(3), np.int64(3), np.uint16(3), np.uint64(3)]
NOT_INTEGERS = [True, False, np.bool_(True), 3.0, np.float32(3.0), "3", b"3", None, [3], 3 + 0j]


@pytest.mark.parametrize("value", [0, 1, -5, 10**30, *NUMPY_INTS])
def test_is_integer_accepts_python_and_numpy_ints(value):
    assert is_integer(value)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_is_integer_refuses_bools_floats_strings(value):
    assert not is_integer(value)


@pytest.mark.parametrize("value", [1, 7, 10**30, *NUMPY_INTS])
def test_positive_int_returns_a_python_int(value):
    out = positive_int(value, "window")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [0, -1, np.int64(0), np.int32(-3), *NOT_INTEGERS])
def test_positive_int_refuses(value):
    expected = f"window must be a positive integer, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        positive_int(value, "window")


def test_positive_int_message_names_the_argument_and_what_it_counts():
    with pytest.raises(ValueError, match=r"^chunk_tokens must be a positive integer "
                                         r"\(windows per chunk\), got 0$"):
        positive_int(0, "chunk_tokens", "windows per chunk")
    with pytest.raises(ValueError, match=r"^batch_size must be a positive integer, got True$"):
        positive_int(True, "batch_size")
    with pytest.raises(ValueError, match=r"got 2\.5$"):
        positive_int(2.5, "every")


def test_positive_int_raises_the_error_asked_for():
    class MyError(ValueError):
        pass

    with pytest.raises(TypeError, match="num_classes must be a positive integer"):
        positive_int("3", "num_classes", error=TypeError)
    with pytest.raises(MyError):
        positive_int(0, "every", error=MyError)


def test_optional_positive_int_passes_none_through():
    assert optional_positive_int(None, "workers") is None
    out = optional_positive_int(np.int64(4), "workers")
    assert out == 4 and type(out) is int


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_optional_positive_int_refuses_and_says_what_none_means(value):
    with pytest.raises(ValueError, match=r"^workers must be a positive integer or None "
                                         r"\(all CPUs\), got "):
        optional_positive_int(value, "workers", none_means="all CPUs")
    with pytest.raises(ValueError, match=r"^limit must be a positive integer \(batches\) or None, "
                                         r"got "):
        optional_positive_int(value, "limit", "batches")
    with pytest.raises(TypeError):
        optional_positive_int(value, "limit", error=TypeError)


@pytest.mark.parametrize("value", [0, 1, 10**20, np.uint8(0), *NUMPY_INTS])
def test_nonnegative_int_accepts_zero_and_up(value):
    out = nonnegative_int(value, "start")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [-1, np.int64(-1), *NOT_INTEGERS])
def test_nonnegative_int_refuses(value):
    with pytest.raises(ValueError, match=r"^the number of items must be a non-negative integer, "
                                         r"got "):
        nonnegative_int(value, "the number of items")
    with pytest.raises(ValueError, match=r"\(a token index\)"):
        nonnegative_int(value, "start", "a token index")
