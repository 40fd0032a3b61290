"""Closed loops that fit the KV pool on average but not at the end of their waves, for the wave tests of each
engine (tests/objectives/inference/test_vllm_wave_overflow.py, test_sglang_wave_retraction.py): one Llama-3.1-8B
on one H100, the closed form and the simulator at a given KV capacity."""
from __future__ import annotations

from objectives import inference, serving
from objectives.serving import Scheduler, Workload

M, G = "meta-llama/Llama-3.1-8B-Instruct", "H100-SXM-80GB"


def wave_cap(isl: int, osl: int, conc: int, u: float) -> int:
    """The KV capacity (tokens) at which the wave's peak overflows by u of the half output the average leaves
    room for: C x (isl + osl) - u x C x osl / 2."""
    return int(conc * (isl + osl) - u * conc * osl / 2)


def closed(isl: int, osl: int, conc: int, cap: int, engine: str) -> dict[str, float]:
    """`max_throughput`'s batch size, TTFT, TPOT and E2E (ms) for `conc` clients at KV capacity `cap` tokens."""
    r = inference.max_throughput(M, G, tp=1, engine=engine, input_len=isl, output_len=osl, concurrency=conc,
                                 kv_capacity_tokens=cap)
    return {k: float(r[k].iloc[0]) for k in ("batch_size", "ttft_ms", "tpot_ms", "e2e_ms")}


def simulated(isl: int, osl: int, conc: int, cap: int, engine: str) -> dict[str, float]:
    """`serving.simulate`'s metrics for the same loop, 10 requests a client."""
    return serving.simulate(M, G, tp=1, engine=engine, scheduler=Scheduler(kv_capacity_tokens=cap),
                            workload=Workload(concurrency=conc, input_len=isl, output_len=osl, n_requests=10 * conc))
