"""Heterogeneous GPU mixes (objectives/mix.py): the integer program, the size-aware router, the simulated check."""
import itertools
import math

import numpy as np
import pytest

from objectives import catalog, mix, serving

MODEL = "Llama-3.1-8B"
SLO = serving.SLO(ttft_ms=2000, tpot_ms=50)
TYPES = [mix.ReplicaType(g) for g in ("H100", "L40S", "A10G", "B200")]


@pytest.fixture(scope="module")
def trace():
    return serving.traces.load_sample("azure_conv_2023").scale_rate(10.0)   # ~46 requests/s


def test_integer_program_meets_its_constraints_and_beats_every_single_type(trace):
    plan = mix.plan_mix(MODEL, trace, SLO, TYPES)
    live = plan.rates > 0
    assert np.allclose(plan.fractions[live].sum(axis=1), 1.0)
    assert (plan.fractions[plan.capacity == 0] == 0).all()       # never routes a bucket where the SLO cannot hold
    load = (plan.rates[:, None] * plan.fractions / np.where(plan.capacity > 0, plan.capacity, 1.0)).sum(axis=0)
    assert (load <= plan.max_utilization * plan.counts + 1e-6).all()
    singles = mix.plan_single(MODEL, trace, SLO, TYPES)
    assert singles and plan.cost_usd_per_h <= min(p.cost_usd_per_h for p in singles) + 1e-9
    assert plan.cost_usd_per_h == pytest.approx(sum(catalog.gpu(t.gpu).price_usd_per_hour * n
                                                    for t, n in zip(plan.types, plan.counts, strict=True)))


def test_integer_program_is_optimal_on_a_small_case():
    """Two types, one bucket: the optimum over every (n1, n2) with the load split freely, by enumeration."""
    types = [mix.ReplicaType("H100"), mix.ReplicaType("L40S")]
    cap = np.array([[10.0, 3.0]])           # requests/s per replica
    lam = np.array([27.0])
    counts, frac = mix._solve(types, cap, lam, 0.8)
    best = min(n1 * types[0].usd_per_h + n2 * types[1].usd_per_h
               for n1, n2 in itertools.product(range(6), range(15)) if 0.8 * (10 * n1 + 3 * n2) >= 27 - 1e-9)
    got = sum(t.usd_per_h * n for t, n in zip(types, counts, strict=True))
    assert got == pytest.approx(best)
    assert frac.sum() == pytest.approx(1.0)


def test_router_sends_each_bucket_by_the_plan_fractions(trace):
    plan = mix.plan_mix(MODEL, trace, SLO, TYPES)
    plan.fractions = np.tile(np.array([0.5, 0.0, 0.0, 0.5]), (plan.buckets.n, 1))
    pool = mix.route(plan, trace, seed=3)
    assert set(np.unique(pool)) <= {0, 3}
    assert abs((pool == 0).mean() - 0.5) < 0.06
    assert (mix.route(plan, trace, seed=3) == pool).all()       # seeded


def test_verified_mix_meets_the_slo_and_costs_no_more_than_the_best_single_type(trace):
    plan, res = mix.verify(MODEL, mix.plan_mix(MODEL, trace, SLO, TYPES), trace, SLO, target=0.9)
    assert res.metrics["slo_attainment"] >= 0.9 and (res.pools["slo_attainment"] >= 0.9).all()
    assert res.metrics["n_requests"] == len(trace)
    singles = [mix.verify(MODEL, p, trace, SLO, target=0.9) for p in mix.plan_single(MODEL, trace, SLO, TYPES)]
    best = min(p.cost_usd_per_h for p, _ in singles)
    assert plan.cost_usd_per_h <= best + 1e-9
    assert math.isfinite(res.metrics["usd_per_mtok"]) and res.metrics["ttft_ms_p90"] <= SLO.ttft_ms


def test_buckets_assign_by_edges():
    b = mix.Buckets(input_edges=(100, 1000), output_edges=(50,))
    got = b.assign(np.array([50, 100, 101, 5000]), np.array([10, 60, 50, 1]))
    assert got.tolist() == [0, 1, 2, 4] and b.n == 6
    with pytest.raises(ValueError, match="input_edges"):
        mix.Buckets(input_edges=(100, 50))


def test_bad_input_names_the_value(trace):
    with pytest.raises(ValueError, match="tpot_ms"):
        mix.plan_mix(MODEL, trace, serving.SLO(ttft_ms=1000), TYPES)
    with pytest.raises(ValueError, match="closed loop"):
        mix.plan_mix(MODEL, serving.Workload(concurrency=8), SLO, TYPES)
    with pytest.raises(ValueError, match="no published price"):
        mix.ReplicaType("Gaudi3")
    with pytest.raises(ValueError, match="tp=0"):
        mix.ReplicaType("H100", tp=0)
    with pytest.raises(ValueError, match="max_utilization"):
        mix.plan_mix(MODEL, trace, SLO, TYPES, max_utilization=1.5)
    with pytest.raises(ValueError, match="bucket .* within TTFT"):
        mix.plan_mix(MODEL, trace, serving.SLO(ttft_ms=2000, tpot_ms=1), TYPES)
    with pytest.raises(ValueError, match="target"):
        mix.verify(MODEL, mix.plan_mix(MODEL, trace, SLO, TYPES), trace, SLO, target=0)


def test_open_loop_workload_with_length_distributions():
    w = serving.Workload(rate=30.0, input_len=serving.Dist("lognormal", mean=1000, std=1000, max=8000),
                         output_len=serving.Dist("lognormal", mean=200, std=200, max=2000), n_requests=3000)
    plan, res = mix.verify(MODEL, mix.plan_mix(MODEL, w, SLO, TYPES), w, SLO)
    assert res.metrics["n_requests"] == 3000 and res.metrics["slo_attainment"] >= 0.9
    r = w.requests()
    duration_s = serving.Trace(r.arrival_s, r.input_tokens, r.output_tokens).duration_s
    assert plan.rates.sum() == pytest.approx(3000 / duration_s)
