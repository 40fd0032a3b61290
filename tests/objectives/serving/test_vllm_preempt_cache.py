"""vLLM V1's recompute preemption with its prefix cache on (its default): a preempted request's blocks go back to
the free queue with their hashes, tail first, and its recompute finds whatever of its prefix no allocation has
taken since (vllm/v1/core/sched/scheduler.py ``_preempt_request``, kv_cache_manager.py ``free`` /
``get_computed_blocks``). The simulator's on-demand admission keeps them the same way (`engine._Replica._keep`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from objectives.serving import Scheduler, Workload, simulate_costs


@dataclass(frozen=True)
class Counting:
    """Iteration time affine in the work (ms); counts the prompt tokens prefilled (`prefilled[0]`)."""

    kv_capacity_tokens: int = 12_000
    kv_bytes_per_token: float = 131072.0
    n_gpus: int = 1
    prefilled: list = field(default_factory=lambda: [0.0])

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        self.prefilled[0] += n_prefill_tokens
        return 5.0 + 0.02 * n_prefill_tokens + 1e-7 * prefill_attn_pairs + 0.02 * n_decode_seqs \
            + 1e-5 * decode_kv_tokens


def _run(caching: bool, admission: str = "on_demand", cap: int = 12_000, n: int = 24):
    cost = Counting(kv_capacity_tokens=cap)
    # long prompts, outputs that outgrow the cache: decodes run the blocks out and the last admitted is preempted
    w = Workload(concurrency=8, input_len=2000, output_len=600, n_requests=n)
    m = simulate_costs(cost, workload=w, scheduler=Scheduler(kv_capacity_tokens=cap, prefix_caching=caching,
                                                             admission=admission, kv_watermark=0.0))
    return m, cost.prefilled[0]


def test_a_preempted_request_recomputes_only_what_the_cache_lost():
    """Without the cache every preemption prefills the prompt and the output so far again; with it (vLLM's default)
    the victim's blocks are still free and cached when it is readmitted (the next finish frees room first), so most
    of its prompt is a hit: far fewer tokens prefilled again, and the run is shorter."""
    off, pre_off = _run(False)
    on, pre_on = _run(True)
    inputs = 24 * 2000
    assert off["preemptions"] > 0 and on["preemptions"] > 0
    redo_off, redo_on = pre_off - inputs, pre_on - inputs
    assert redo_off >= off["preemptions"] * 2000          # each recompute at least its prompt again
    assert 0 <= redo_on < 0.5 * redo_off * on["preemptions"] / off["preemptions"]
    assert on["duration_s"] < off["duration_s"]


def test_a_roomy_cache_is_unchanged_by_the_kept_blocks():
    """No preemption, nothing kept: the run is the same with the cache on or off."""
    off, pre_off = _run(False, cap=200_000)
    on, pre_on = _run(True, cap=200_000)
    assert off["preemptions"] == on["preemptions"] == 0
    assert pre_on == pre_off and on["duration_s"] == off["duration_s"]


def test_sglang_retraction_keeps_its_full_recompute():
    """SGLang's retraction (new-token ratio admission) is not vLLM's preemption: its recompute is not changed by
    the kept blocks (`inference.admission`: the retracted prompt is evicted first)."""
    off, pre_off = _run(False, admission="new_token_ratio")
    on, pre_on = _run(True, admission="new_token_ratio")
    assert off["preemptions"] > 0 and pre_on == pre_off and on["duration_s"] == off["duration_s"]
