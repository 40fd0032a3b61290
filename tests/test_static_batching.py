"""Static (request-level) batching as a scheduler policy: a batch is formed when the replica is idle, runs until
its last request finishes, and nobody joins meanwhile; and the space / objective knob that selects it."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives import serving
from objectives.serving import Scheduler, Workload, simulate_costs

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Affine:
    """Iteration time (ms) affine in the work of the iteration, the shape of StepModel's decode regime."""

    kv_bytes_per_token = 131072.0
    n_gpus = 1

    def __init__(self, kv_capacity_tokens: int = 400_000) -> None:
        self.kv_capacity_tokens = kv_capacity_tokens

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        return 5.0 + 0.02 * n_prefill_tokens + 1e-7 * prefill_attn_pairs + 0.02 * n_decode_seqs \
            + 1e-5 * decode_kv_tokens


def _trace(arrival_s, inp, out) -> Workload:
    return Workload(trace=pd.DataFrame({"arrival_s": arrival_s, "input_tokens": inp, "output_tokens": out}))


def test_a_later_arrival_waits_for_the_whole_static_batch():
    # A (long output) starts alone at t=0; B arrives 50 ms later with a short output
    w = _trace([0.0, 0.05], [200, 200], [300, 5])
    cont = simulate_costs(Affine(), workload=w, scheduler=Scheduler(), per_request=True)
    stat = simulate_costs(Affine(), workload=w, scheduler=Scheduler(batching="static"), per_request=True)
    a_fin = stat["finish_s"].iloc[0]
    assert stat["first_token_s"].iloc[1] >= a_fin                   # B's first token only after A is done
    assert stat["ttft_ms"].iloc[1] >= (a_fin - 0.05) * 1e3
    assert cont["first_token_s"].iloc[1] < 0.1 * cont["finish_s"].iloc[0]   # continuous: B joins at once
    assert cont["finish_s"].iloc[1] < cont["finish_s"].iloc[0]             # ... and leaves before A
    # A alone is unaffected by the policy until B would have joined: same first token
    assert stat["first_token_s"].iloc[0] == pytest.approx(cont["first_token_s"].iloc[0])


@FAST
@given(n=st.integers(1, 30), m=st.integers(1, 8), seed=st.integers(0, 10), chunked=st.booleans(),
       policy=st.sampled_from(["decode_priority", "prefill_first"]))
def test_static_batches_are_consecutive_groups_that_do_not_overlap(n, m, seed, chunked, policy):
    rng = np.random.default_rng(seed)
    w = Workload(rate=math.inf, input_len=serving.Dist("uniform", low=1, high=300),
                 output_len=serving.Dist("uniform", low=1, high=60), n_requests=n, seed=seed)
    s = Scheduler(max_batch_size=m, max_num_tokens=512, chunked_prefill=chunked, policy=policy, batching="static")
    df = simulate_costs(Affine(), workload=w, scheduler=s, per_request=True)
    assert (df["tokens_emitted"] == df["output_tokens"]).all() and (df["preemptions"] == 0).all()
    groups = [df.iloc[g:g + m] for g in range(0, n, m)]                 # FIFO: batch g = requests g*m .. g*m+m-1
    for prev, nxt in zip(groups, groups[1:]):
        assert nxt["first_token_s"].min() >= prev["finish_s"].max() - 1e-12
    del rng


def test_static_batch_is_limited_by_whole_sequences_in_the_kv_cache():
    # 4 requests of 1000 + 1000 tokens at t=0 and room for ~2 whole sequences: batches of two
    w = Workload(rate=math.inf, input_len=1000, output_len=1000, n_requests=4)
    df = simulate_costs(Affine(kv_capacity_tokens=4200), workload=w,
                        scheduler=Scheduler(batching="static", max_batch_size=64), per_request=True)
    assert df["first_token_s"].iloc[2] >= df["finish_s"].iloc[:2].max()
    assert df["first_token_s"].iloc[1] < df["finish_s"].iloc[0]
    assert (df["preemptions"] == 0).all()


def test_continuous_beats_static_on_mixed_lengths():
    w = Workload(rate=20.0, input_len=serving.Dist("uniform", low=50, high=500),
                 output_len=serving.Dist("lognormal", mean=150, std=200, max=2000), n_requests=400, seed=1)
    c = simulate_costs(Affine(), workload=w, scheduler=Scheduler(max_batch_size=32))
    s = simulate_costs(Affine(), workload=w, scheduler=Scheduler(max_batch_size=32, batching="static"))
    assert s["ttft_ms_p99"] > 2 * c["ttft_ms_p99"]
    assert s["e2e_ms_mean"] > c["e2e_ms_mean"]


def test_bad_batching_value_lists_the_valid_ones():
    with pytest.raises(ValueError, match="batching='dynamic': valid values are continuous, static"):
        Scheduler(batching="dynamic")
    with pytest.raises(TypeError, match="prefix_caching=1"):
        Scheduler(prefix_caching=1)
