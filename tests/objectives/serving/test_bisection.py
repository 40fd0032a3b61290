"""`serving.bisection.bisect`: several halvings per call give exactly what one halving per call gives."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives.serving.bisection import MAX_LEVELS, bisect, levels_for


def _one_at_a_time(lo, hi, go_up, steps, geometric):
    lo, hi = lo.copy(), hi.copy()
    for _ in range(steps):
        mid = np.sqrt(lo * hi) if geometric else 0.5 * (lo + hi)
        up = go_up(mid[:, None])[:, 0]
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return lo, hi


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), steps=st.integers(1, 11), geometric=st.booleans(), max_rows=st.sampled_from([1, 8, 64, 4096]),
       seed=st.integers(0, 2**16))
def test_equals_one_halving_per_call_for_any_test(n, steps, geometric, max_rows, seed) -> None:
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0.1, 5.0, n)
    hi = lo + rng.uniform(0.0, 50.0, n)
    thresholds = rng.uniform(lo, hi)
    salt = rng.integers(0, 1000)

    def go_up(x):   # monotone for half the rows, a fixed pseudo-random answer per point for the others
        noisy = (np.floor(x * 1e6).astype(np.int64) * 2654435761 + salt) % 7 < 3
        return np.where((np.arange(n) % 2 == 0)[:, None], x < thresholds[:, None], noisy)

    calls = []

    def counted(x):
        calls.append(x.shape)
        return go_up(x)

    got = bisect(lo, hi, counted, steps, geometric=geometric, max_rows=max_rows)
    want = _one_at_a_time(lo, hi, go_up, steps, geometric)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    L = levels_for(n, steps, max_rows)
    assert len(calls) == -(-steps // L)                                 # ceil(steps / L) calls
    assert all(c == (n, 2 ** L - 1) for c in calls)                     # the same points per row every call


def test_a_monotone_search_finds_the_threshold_and_few_rows_take_fewer_calls() -> None:
    thr = np.array([0.3, 7.5, 42.0])
    calls = []

    def go_up(x):
        calls.append(x.shape)
        return x < thr[:, None]

    lo, hi = bisect(np.zeros(3), np.full(3, 64.0), go_up, 12)
    assert np.all((lo <= thr) & (thr <= hi)) and np.all(hi - lo == 64.0 / 2 ** 12)
    assert len(calls) == 3 and calls[0] == (3, 2 ** MAX_LEVELS - 1)
    calls.clear()
    bisect(np.zeros(3), np.full(3, 64.0), go_up, 12, max_rows=3)       # the batch fills a call: one level each
    assert len(calls) == 12 and calls[0] == (3, 1)


def test_empty_and_zero_steps() -> None:
    lo, hi = bisect(np.zeros(0), np.zeros(0), lambda x: pytest.fail("no call for no rows"), 5)
    assert lo.shape == hi.shape == (0,)
    lo, hi = bisect(np.ones(2), np.full(2, 3.0), lambda x: pytest.fail("no call for no steps"), 0)
    np.testing.assert_array_equal(hi, [3.0, 3.0])
