"""SGLang's overlap scheduler (`profiles.OVERLAP_ENGINES`): its loop forms and launches batch N+1 right after launching
batch N and receives new requests only when N's results are in, so a request arriving while N runs joins N+2. The
simulator (`serving.Scheduler.overlaps`, `engine._Replica.enqueue`) on hand-computed cases with a cost of one
millisecond per iteration, and the closed form (`inference.estimate.arrival_wait_iters`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from objectives import profiles
from objectives.inference import core
from objectives.inference.estimate import arrival_wait_iters, prefill_wait_s, steady_state, steady_work
from objectives.serving import Scheduler, Workload, simulate_costs


@dataclass(frozen=True)
class FlatCost:
    """Every iteration takes one millisecond; the replica's engine is named (policy and overlap follow it)."""

    engine: str = "sglang"
    kv_capacity_tokens: int = 100_000
    kv_bytes_per_token: float = 131072.0
    n_gpus: int = 1

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 1.0


def _ttft(engine: str, arrival_s: list[float], outputs: list[int]) -> np.ndarray:
    """TTFT (ms) of requests of 10 prompt tokens arriving at `arrival_s` (s) with `outputs` tokens, in order."""
    trace = pd.DataFrame({"arrival_s": arrival_s, "input_tokens": [10] * len(arrival_s), "output_tokens": outputs})
    d = simulate_costs(FlatCost(engine), workload=Workload(trace=trace),
                       scheduler=Scheduler(max_batch_size=64, max_num_tokens=4096), per_request=True)
    assert list(d["arrival_s"]) == pytest.approx(arrival_s)
    return d["ttft_ms"].to_numpy()


def test_the_engine_fact_lives_in_one_place():
    assert profiles.OVERLAP_ENGINES == ("sglang",)
    np.testing.assert_array_equal(profiles.overlap_mask(("vllm", "sglang==0.5.10", "trtllm", "roofline", None)),
                                  [0.0, 1.0, 0.0, 0.0, 0.0])
    assert Scheduler().overlaps(FlatCost("sglang")) and not Scheduler().overlaps(FlatCost("vllm"))
    assert not Scheduler(batching="static").overlaps(FlatCost("sglang"))


def test_sglang_serves_the_hybrid_models_its_radix_cache_holds_without_the_overlap_scheduler():
    """SGLang turns its overlap schedule off for Gated DeltaNet (Qwen3.5) and Mamba-2 (Nemotron-3) models, whose
    state its radix cache keeps in no_buffer mode, not for KDA (Kimi-K3: no radix cache) nor standard models:
    the closed form waits half an iteration for them, and the simulator's replica forms no batch ahead."""
    from objectives.inference import StepModel

    np.testing.assert_array_equal(
        profiles.overlap_rows(["sglang", "sglang", "sglang", "sglang==0.5.9", "vllm"], ["", "gdn", "kda", "mamba2", ""]),
        [1.0, 0.0, 1.0, 0.0, 0.0])
    for model, wd, on in (("Qwen/Qwen3.5-397B-A17B", "fp8", False), ("Nemotron-3-Super-120B-A12B-FP8", "fp8", False),
                          ("Kimi-K3", "fp4", True), ("Qwen3-235B-A22B", "fp8", True)):
        p = core.prepare(model, "B300", tp=8, weight_dtype=wd, engine="sglang")
        # one client a replica: half the iteration in progress (random phase), and no overlap's (nothing in
        # flight: the idle engine takes it at once); two or more: the whole one, their requests sent as an
        # iteration ends reaching the scheduler after the next began, and the overlap's one more; between, in
        # proportion
        assert arrival_wait_iters(p, 1.0) == pytest.approx(0.5), model
        assert arrival_wait_iters(p, 64.0) == pytest.approx(2.0 if on else 1.0), model
        np.testing.assert_allclose(arrival_wait_iters(p, np.array([0.5, 1.5, 3.0])),
                                   np.array([0.5, 0.75, 1.0]) + on * np.array([0.0, 0.5, 1.0]))
        cost = StepModel(model, "B300", tp=8, weight_dtype=wd, engine="sglang")
        assert cost.overlap_scheduler is on and Scheduler().overlaps(cost) is on, model


def test_a_request_arriving_mid_iteration_joins_the_one_after_the_next():
    """A decodes from t = 1 ms (its prefill alone on an idle replica: TTFT 1 ms, no lag). B arrives at 10.5 ms,
    inside the iteration [10, 11): SGLang formed [11, 12) when it launched [10, 11), so B's prefill runs in
    [12, 13): TTFT 2.5 ms. vLLM forms each iteration when the previous one ends: B runs in [11, 12), 1.5 ms."""
    sgl = _ttft("sglang", [0.0, 0.0105], [100, 5])
    vll = _ttft("vllm", [0.0, 0.0105], [100, 5])
    assert list(sgl) == pytest.approx([1.0, 2.5])
    assert list(vll) == pytest.approx([1.0, 1.5])


def test_arrivals_during_one_iteration_share_the_lagged_batch():
    """B at 10.2 ms and C at 10.7 ms both arrive during [10, 11): both are received at 11 ms and prefilled together
    in [12, 13); D at 11.4 ms, received at 12, in the next batch [13, 14)."""
    ttft = _ttft("sglang", [0.0, 0.0102, 0.0107, 0.0114], [100, 5, 5, 5])
    assert list(ttft) == pytest.approx([1.0, 13.0 - 10.2, 13.0 - 10.7, 14.0 - 11.4])


def test_a_request_reaching_an_idle_replica_is_not_lagged():
    """With nothing running the loop is idle and receives a request at once: A (one output token) is done at 1 ms,
    B arrives at 5 ms to an idle replica and is prefilled at once."""
    ttft = _ttft("sglang", [0.0, 0.005], [1, 1])
    assert list(ttft) == pytest.approx([1.0, 1.0])


def test_closed_form_waits_one_more_iteration_on_sglang():
    """The steady state's new request waits the iteration in progress, and on SGLang the next one too: the
    mean TTFT of an SGLang row grows by (1 - ttft_wave) x the mean iteration over the same row without the engine
    fact."""
    p = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="sglang")
    v = core.prepare("Qwen/Qwen3-30B-A3B", "H100-SXM-80GB", engine="vllm")
    assert p is not None and v is not None
    assert float(np.max(arrival_wait_iters(p, 64.0))) == 2.0 and float(np.max(arrival_wait_iters(v, 64.0))) == 1.0
    off = dataclasses.replace(p, coeffs=dataclasses.replace(p.coeffs, overlap=0.0))
    n, isl, osl, mnt = 64.0, 1024.0, 1024.0, 8192.0
    t, n_it, _, _ = steady_state(p, n, isl, osl, mnt)
    iter_s = float(t * n_it / steady_work(n, isl, osl, mnt, p.coeffs.prefill_alone)[0])
    w = float(np.max(p.coeffs.wave))
    diff = float(prefill_wait_s(p, n, isl, osl, mnt)) - float(prefill_wait_s(off, n, isl, osl, mnt))
    assert diff == pytest.approx((1.0 - w) * iter_s, rel=1e-9)
    assert diff > 0.0
