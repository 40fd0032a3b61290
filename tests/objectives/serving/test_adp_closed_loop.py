"""`ServingModel`'s closed loop on attention-DP ranks in lockstep against the serving simulator: the request's own
prompt iteration as the closed loop sees it. The throughput comes from the GPU's steady cycle
(`inference.max_throughput`), whose own-prompt part is a full-budget prefill iteration of every rank's chunks
(`estimate.split_steps`); the TTFT prices the prompt with only the prompts that arrived with it
(`estimate.round_prompt_work`). The cycle's excess over TTFT + decode window is the other prompts' prefill, which
stalls the request's decodes in lockstep: it belongs in the TPOT, not before the first token. The closed loop prices
its clients as `inference.max_throughput(concurrency=)` does (`estimate.cycle_split`), which holds it so."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, serving
from objectives.serving.analytical import Deployments, ServingModel

DSV3 = dict(gpu="H200-SXM-141GB", tp=1, attn_dp=8, ep=8, weight_dtype="fp8", kv_dtype="fp8")
CLIENTS = 64
# requests a client sends: the closed form's start-up wave share (`Efficiency` ``ttft_wave``, 0.1: one in ten of a
# run's requests in the wave of all clients sending at once) is the simulator's over a run of ten requests a client
PER_CLIENT = 10


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("osl", [128, 1024])
def test_attention_dp_closed_loop_ttft_holds_its_own_iteration_not_the_cycles(engine, osl):
    """DeepSeek-V3 on eight H200 attention-DP ranks, 64 clients, 2k prompts. The cycle's own prompt iteration
    (4 prompts a rank of every rank, ~1.7 s) exceeds the TTFT's; before, the closed loop pushed the TTFT up to
    it (1.25-2.8x the simulator's, and the TPOT 2-15 % below). Now: the TTFT under 0.9 of that iteration, as the
    simulator's (its own iteration holds fewer prompts than the full budget); within 15 % of the simulator's but
    SGLang's at 128 outputs (the round's own iteration and window steps as the ranks fill them:
    `estimate.lockstep_round_s`); TPOT within 10 %, throughput within 10 % (the cycle, unchanged); Little's law exact."""
    w = serving.Workload(concurrency=CLIENTS, input_len=2048, output_len=osl, n_requests=PER_CLIENT * CLIENTS)
    a = ServingModel("DeepSeek-V3", w).evaluate(Deployments.of(engine=engine, **DSV3)).iloc[0]
    s = serving.simulate("DeepSeek-V3", workload=w, engine=engine, **DSV3)
    t = serving.analytical.max_throughput_times("DeepSeek-V3", engine=engine, input_len=2048, output_len=osl,
                                                max_batch_size=CLIENTS // 8, **DSV3)
    own_ms = float(t["cycle_ms"][0] - (osl - 1) * t["tpot_ms"][0])   # the cycle's own prompt iteration(s)
    assert s["ttft_ms_mean"] < 0.9 * own_ms                          # the simulator's first token comes earlier
    assert a["ttft_ms"] < 0.9 * own_ms
    # the lockstep round (`estimate.lockstep_round_s`): the own iteration with the other ranks' mean prompts of a
    # step, the steps before it the round window's (vLLM 128 / 1024, SGLang 128 / 1024: 0.89 / 1.17 / 1.13 / 1.31x
    # before it, 1.08 / 0.98 / 1.38 / 1.09x with it); SGLang's step formed ahead is a decode step, its prompts in
    # the round's prefill burst (`estimate.lockstep_steady_terms`: SGLang 1.38 / 1.09 -> 1.05 / 0.96x)
    assert 0.85 < a["ttft_ms"] / s["ttft_ms_mean"] < 1.15, (a["ttft_ms"], s["ttft_ms_mean"])
    # SGLang at 128 outputs: the cycle itself reads short (TPOT -9 % at the thirty-fifth round's factors, -12 % after
    # the thirty-sixth round's refit: docs/profiles.md leftovers after it, (8)), and the TTFT above takes more of it
    # (-15.5 % with the lockstep round), so 20 % there
    tol = np.log(1.2 if (engine, osl) == ("sglang", 128) else 1.1)
    assert abs(np.log(a["tpot_ms"] / s["tpot_ms_mean"])) < tol, (a["tpot_ms"], s["tpot_ms_mean"])
    assert abs(np.log(a["throughput_tok_s"] / s["throughput_tok_s"])) < tol
    # Little's law: the clients' cycle is the request's e2e
    assert a["e2e_ms"] == pytest.approx(CLIENTS * osl / a["throughput_tok_s"] * 1e3, rel=1e-9)
    assert a["e2e_ms"] == pytest.approx(a["ttft_ms"] + (osl - 1) * a["tpot_ms"], rel=1e-12)


def test_dense_attention_dp_closed_loop_splits_the_cycle_as_its_clients():
    """A dense model's attention-DP ranks do not step in lockstep, but there too the GPU's cycle exceeds the
    clients-less TTFT + window (Llama-3.1-8B, 4 ranks, 2k/1k: by ~34 ms). The closed loop prices its clients as
    `inference.max_throughput(concurrency=)` does (`estimate.cycle_split`): the first token keeps the prompts that
    arrive with it, the decode window holds the rest of the cycle. Before, the excess went before the first token
    (TTFT 1.13x the simulator's)."""
    w = serving.Workload(concurrency=CLIENTS, input_len=2048, output_len=1024, n_requests=PER_CLIENT * CLIENTS)
    kw = dict(gpu="H100-SXM-80GB", tp=1, attn_dp=4)
    a = ServingModel("Llama-3.1-8B", w).evaluate(Deployments.of(engine="vllm", **kw)).iloc[0]
    t = serving.analytical.max_throughput_times("Llama-3.1-8B", engine="vllm", input_len=2048, output_len=1024,
                                                max_batch_size=CLIENTS // 4, **kw)
    gap = float(t["cycle_ms"][0] - t["ttft_ms"][0] - 1023 * t["tpot_ms"][0])
    assert gap > 1.0
    mt = inference.max_throughput("Llama-3.1-8B", engine="vllm", input_len=2048, output_len=1024,
                                  concurrency=CLIENTS, **kw).iloc[0]
    for key in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
        assert a[key] == pytest.approx(float(mt[key]), rel=1e-9), key
    assert a["ttft_ms"] == pytest.approx(float(t["ttft_ms"][0]), rel=1e-9)
    assert a["tpot_ms"] > float(t["tpot_ms"][0]) + gap / 1023
    s = serving.simulate("Llama-3.1-8B", workload=w, engine="vllm", **kw)
    # 0.90x after the thirty-seventh round's refit and the round's host-time lag (0.91x at the shipped factors
    # before; the old split read 1.13x)
    assert abs(np.log(a["ttft_ms"] / s["ttft_ms_mean"])) < np.log(1.12), (a["ttft_ms"], s["ttft_ms_mean"])
    assert abs(np.log(a["throughput_tok_s"] / s["throughput_tok_s"])) < np.log(1.02)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_client_a_rank_meets_the_other_ranks_prompts_apart(engine):
    """DeepSeek-R1 on eight B200 attention-DP ranks, one client a rank, 8k prompts, 1k outputs: the ranks' clients
    drift apart round by round, so a prompt's own iteration meets the other ranks' mean prompts of a step, not one
    each (`lockstep.round_ranks`, `estimate.lockstep_round_s`), and the other ranks' chunks fall in its decode window
    (`estimate.lockstep_spill_s`). The closed form read 2.2 / 2.2 / 1.5x the simulator's TTFT with every rank's
    chunk in the own iteration; now within 10 %, TPOT within 5 %."""
    kw = dict(gpu="B200", tp=1, attn_dp=8, ep=8, weight_dtype="fp8")
    w = serving.Workload(concurrency=8, input_len=8192, output_len=1024, n_requests=PER_CLIENT * 8)
    a = inference.max_throughput("deepseek-ai/DeepSeek-R1", engine=engine, input_len=8192, output_len=1024,
                                 concurrency=8, **kw).iloc[0]
    s = serving.simulate("deepseek-ai/DeepSeek-R1", workload=w, engine=engine, **kw)
    assert a["batch_size"] == 1
    assert abs(np.log(a["ttft_ms"] / s["ttft_ms_mean"])) < np.log(1.1), (a["ttft_ms"], s["ttft_ms_mean"])
    assert abs(np.log(a["tpot_ms"] / s["tpot_ms_mean"])) < np.log(1.05), (a["tpot_ms"], s["tpot_ms_mean"])
    # the own iteration is this rank's prompt with the others' mean share, between alone and every rank's
    p = inference.max_throughput("deepseek-ai/DeepSeek-R1", engine=engine, input_len=8192, output_len=1024,
                                 concurrency=1, **kw).iloc[0]
    assert p["ttft_ms"] < a["ttft_ms"]
