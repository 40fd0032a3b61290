"""vLLM V1 gives a prompt the blocks of the chunk it runs, not its whole prompt (vllm/v1/core/kv_cache_manager.py
``allocate_slots`` for the tokens a step schedules; scheduler.py ``schedule``), admits a waiting prompt when the free
blocks hold its whole prompt (``scheduler_reserve_full_isl``) with no watermark, and a running prompt whose next
chunk finds too few free blocks preempts the request admitted last, itself if it is that one. The simulator's
on-demand admission with recompute preemption does the same (`engine._Replica._grow`); swap preemption keeps vLLM
V0's whole-prompt allocation."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from objectives.serving import Scheduler, Workload, simulate_costs


@dataclass(frozen=True)
class Steps:
    """Every iteration 1 ms; records each iteration's (prefill tokens, decodes)."""

    kv_capacity_tokens: int = 1000
    kv_bytes_per_token: float = 131072.0
    n_gpus: int = 1
    engine: str | None = "vllm"
    steps: list = field(default_factory=list)

    def time_ms(self, n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens):
        self.steps.append((n_prefill_tokens, n_decode_seqs))
        return 1.0


def _run(preemption: str, engine: str | None = "vllm"):
    cost = Steps(engine=engine)
    sched = Scheduler(max_batch_size=64, max_num_tokens=1000, chunk_size=100, kv_block_size=1, admission="on_demand",
                      policy="decode_priority", prefix_caching=False, preemption=preemption)
    w = Workload(concurrency=7, input_len=400, output_len=1, n_requests=7, output_spread=0)
    return cost.steps, simulate_costs(cost, workload=w, scheduler=sched, per_request=True)


def test_prompts_take_their_blocks_chunk_by_chunk():
    """7 prompts of 400 tokens, chunks of 100, 1,000 tokens of KV. Each admission asks its whole prompt free but
    takes one chunk's blocks, so the first iteration admits all 7 (the seventh finds 400 free). The next chunks
    run the cache out: the second iteration's fourth and fifth chunks preempt the two admitted last (500 prefill
    tokens), the third's first and third chunks the next two (300), the fourth's second the next (200); the two
    first prompts are done, 5 preemptions and no admission meanwhile."""
    steps, d = _run("recompute")
    assert [t for t, _ in steps[:4]] == [700.0, 500.0, 300.0, 200.0]
    assert list(d["ttft_ms"][:2]) == [4.0, 4.0]
    assert int(d["preemptions"].sum()) > 5
    assert list(d["preemptions"][:2]) == [0, 0] and (d["preemptions"][2:] > 0).all()


@pytest.mark.parametrize("preemption, engine", [("swap", "vllm"), ("recompute", None)])
def test_whole_prompt_allocation_elsewhere(preemption, engine):
    """vLLM V0 (swap preemption) allocated the whole prompt at admission, with a 1 % watermark, and so does
    on-demand admission on a cost of no engine: two prompts at a time, never preempted."""
    steps, d = _run(preemption, engine)
    assert [t for t, _ in steps[:4]] == [200.0] * 4
    assert int(d["preemptions"].sum()) == 0
    assert list(d["ttft_ms"]) == [4.0, 4.0, 8.0, 8.0, 12.0, 12.0, 16.0]


def test_the_watermark_and_allocation_follow_the_engine():
    class Cost:
        def __init__(self, engine):
            self.engine = engine

    assert Scheduler().allocates_by_chunk(Cost("vllm")) and Scheduler().watermark(Cost("vllm")) == 0.0
    for sched, engine in ((Scheduler(), "sglang"), (Scheduler(), "trtllm"), (Scheduler(preemption="swap"), "vllm"),
                          (Scheduler(batching="static"), "vllm"), (Scheduler(admission="on_demand"), "nim"),
                          (Scheduler(admission="on_demand"), None)):
        assert not sched.allocates_by_chunk(Cost(engine)) and sched.watermark(Cost(engine)) == 0.01
    assert Scheduler(kv_watermark=0.05).watermark(Cost("vllm")) == 0.05
    with pytest.raises(ValueError, match="kv_watermark"):
        Scheduler(kv_watermark=1.0)
