"""The ITL percentiles without listing every iteration (`serving.metrics.itl_quantiles`): the same numbers as the
weighted quantiles of every gap listed one by one, and none of the memory (helper u13f's user pass: a 256-client
1k / 8k run on eight attention-DP ranks listed 7.0 million iterations, about half of its 6 s)."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import serving
from objectives.serving import metrics


def _expanded(iters, segs, gaps):
    """Every gap listed with its weight: single iterations, each segment's K linearly stepping iterations, the
    preempted requests' gaps (the definition `itl_quantiles` counts in closed form)."""
    v, w = [], []
    for t, n in iters:
        v.append(t)
        w.append(n)
    for n, k, a, b in segs:
        for i in range(k):
            v.append(a + (b - a) * (i / max(k - 1, 1)))
            w.append(n)
    v += list(gaps)
    w += [1.0] * len(gaps)
    return np.asarray(v, dtype=float), np.asarray(w, dtype=float)


QS = [0.5, 0.9, 0.99]


@pytest.mark.parametrize("seed", range(12))
def test_the_closed_form_count_gives_the_listed_gaps_quantiles(seed):
    rng = np.random.default_rng(seed)
    iters = [(float(rng.uniform(5, 60)), int(rng.integers(1, 64))) for _ in range(rng.integers(0, 40))]
    segs = []
    for _ in range(rng.integers(1, 30)):
        a = float(rng.uniform(5, 40))
        b = a if rng.random() < 0.2 else float(rng.uniform(5, 40))   # rising, falling and flat segments
        segs.append((int(rng.integers(1, 64)), int(rng.integers(1, 300)), a, b))
    gaps = [float(x) for x in rng.uniform(100, 3000, rng.integers(0, 5))]
    ref = metrics.weighted_quantiles(*_expanded(iters, segs, gaps), QS)
    np.testing.assert_allclose(metrics.itl_quantiles(iters, segs, gaps, QS), ref, rtol=1e-12)


def test_points_only_and_nothing():
    iters = [(10.0, 1), (20.0, 1), (30.0, 8)]
    np.testing.assert_array_equal(metrics.itl_quantiles(iters, [], [], QS), [30.0, 30.0, 30.0])
    np.testing.assert_array_equal(metrics.itl_quantiles([(10.0, 5), (20.0, 5)], [], [], [0.5, 0.51]), [10.0, 20.0])
    assert np.isnan(metrics.itl_quantiles([], [], [], QS)).all()


def test_a_simulated_run_reads_the_same_percentiles_as_its_listed_gaps():
    """A vLLM run whose cache holds about half its clients: decode segments, single iterations and the preempted
    requests' long gaps all in it."""
    from objectives.serving.simulator import _build
    w = serving.Workload(concurrency=32, input_len=1024, output_len=512, n_requests=320)
    eng, _ = _build("Llama-3.1-8B", "H100", 1, 1, None, None, None, w, serving.Scheduler(kv_capacity_tokens=24_000),
                    "agg", 1, None, None, None, "least_loaded", "vllm")
    assert len(eng.segs) > 0 and len(eng.iters) > 0 and len(eng.gaps) > 0
    ref = metrics.weighted_quantiles(*_expanded(eng.iters, eng.segs, eng.gaps), QS)
    np.testing.assert_allclose(metrics.itl_quantiles(eng.iters, eng.segs, eng.gaps, QS), ref, rtol=1e-12)
