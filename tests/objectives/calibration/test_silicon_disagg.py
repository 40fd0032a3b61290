"""The silicon slice's disaggregated rows go through the analytical serving model's closed loop
(`serving.analytical.disagg_closed_loop`): the pools' configured batch sizes, the clients coupling the pools and the
first token from the decode worker. The deployments below are made up (no measured number)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import silicon


def _rows(**over: object) -> pd.DataFrame:
    row = dict(model="moonshotai/Kimi-K2.5", engine="vllm", gpu="gb200", mode="disagg", weight_dtype="fp4",
               isl=1024.0, osl=1024.0, concurrency=128.0, prefill_workers=1.0, prefill_tp=4.0, prefill_pp=1.0,
               prefill_attn_dp=1.0, prefill_moe_ep=4.0, prefill_batch_size=1.0, decode_workers=4.0, decode_tp=4.0,
               decode_pp=1.0, decode_attn_dp=1.0, decode_moe_ep=4.0, decode_batch_size=32.0, ttft_ms=1.0,
               tpot_ms=1.0)
    row.update(over)
    return pd.DataFrame([row])


def test_disagg_rows_run_the_pools_configured_batch_sizes():
    """A decode pool configured for 4 sequences per worker holds 16 of 128 clients: a faster step, and the other
    clients wait for a slot (TTFT); the same deployment with room for all of them decodes at a larger batch."""
    small = silicon.predict(_rows(decode_batch_size=4.0))
    big = silicon.predict(_rows(decode_batch_size=32.0))
    assert small["tpot_pred"].iloc[0] < big["tpot_pred"].iloc[0]
    assert small["ttft_pred"].iloc[0] > 3 * big["ttft_pred"].iloc[0]


def test_disagg_rows_queue_at_the_prefill_pools_capacity():
    """Clients beyond what one prefill rank running one prompt at a time passes wait in its queue: TTFT grows
    with the clients while the decode pool's step stays that of the prompts the prefill pool lets through."""
    r = silicon.predict(pd.concat([_rows(isl=8192.0, concurrency=c, decode_batch_size=c / 4) for c in (32.0, 512.0)],
                                  ignore_index=True))
    ttft, tpot = r["ttft_pred"].to_numpy(float), r["tpot_pred"].to_numpy(float)
    assert ttft[1] > 10 * ttft[0]
    assert tpot[1] < 3 * tpot[0]


def test_disagg_first_token_comes_from_the_decode_worker():
    """TTFT of a lone client: the engine's host time and the prompt's prefill, then the KV handoff and the decode
    iteration that emits the first token at the idle decode worker (the proxy streams the decode server's
    output)."""
    from objectives import inference
    from objectives.inference.core import default_eff

    r = silicon.predict(_rows(concurrency=1.0, decode_workers=1.0))
    e = inference.estimate("Kimi-K2.5", "GB200", tp=4, ep=4, weight_dtype="fp4", engine="vllm", batch_size=1,
                           input_len=1024, output_len=1)
    host = default_eff().params["engine_ttft_ms"]["vllm"]
    tpot = r["tpot_pred"].iloc[0]
    assert np.isfinite(tpot)
    assert r["ttft_pred"].iloc[0] >= e["ttft_ms"].iloc[0] + host + tpot * 0.99


@pytest.mark.parametrize("engine, passes", [("vllm", 2.0), ("trtllm", 2.0), ("sglang", 1.0)])
def test_disagg_rows_pay_the_front_end_time_the_aggregated_form_reads(engine, passes):
    """The host time of a disaggregated request is the step coefficients' (the engine's engine_ttft_ms), the same
    as the aggregated closed form's, not a second reading; paid once per API-server pass of the engine's P/D front
    end: vLLM's proxy posts the request to the prefill and then the decode OpenAI server (two); Dynamo's frontend
    (the TensorRT-LLM rows) tokenizes once, but its prefill and its decode worker each admit the request into their
    own executor and return its output (two); engines not listed (SGLang): one."""
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import Efficiency
    from objectives.serving.handoff import DISAGG_FRONT_END_PASSES

    assert DISAGG_FRONT_END_PASSES.get(engine, 1.0) == passes
    base = default_eff()

    def ttft(front_ms: float) -> float:
        eff = Efficiency({**base.params, "engine_ttft_ms": {**base.params["engine_ttft_ms"], engine: front_ms}},
                         base.meta)
        return float(silicon.predict(_rows(concurrency=4.0, engine=engine), eff)["ttft_pred"].iloc[0])
    # (the closed loop moves a little with the longer cycle: the decode occupancy, the prefill queue)
    assert ttft(80.0) - ttft(40.0) == pytest.approx(passes * 40.0, rel=2e-3)


def test_a_lone_prompt_on_an_attention_dp_prefill_pool_sends_only_its_tokens_to_the_experts():
    """A prompt arriving at an idle attention-DP prefill pool runs on one rank while the others idle (TensorRT-LLM
    pads them with one-token dummy requests): its MoE layers see its own tokens, not attn_dp x them, so it
    prefills faster than a full round of one prompt per rank, and than the old lone-prompt price (all ranks busy)."""
    from objectives import inference
    from objectives.serving.analytical import prefill_estimates

    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=1.0, pp=1.0, weight_dtype="fp4", ep=4.0, attn_dp=4.0,
              engine="trtllm")
    pf = prefill_estimates(kw, 8192.0, 1.0)
    lone, full = pf["ttft_ms"].to_numpy(float)
    busy = inference.estimate(**kw, batch_size=1, input_len=8192, output_len=1)["ttft_ms"].iloc[0]
    assert full == pytest.approx(busy, rel=1e-9)
    assert lone < 0.9 * full
    # without attention DP the two are the same forward
    pf1 = prefill_estimates({**kw, "tp": 4.0, "attn_dp": 1.0}, 8192.0, 1.0)["ttft_ms"].to_numpy(float)
    assert pf1[0] == pytest.approx(pf1[1], rel=1e-9)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_fewer_clients_than_decode_ranks_send_only_their_tokens_to_the_experts(engine):
    """A decode pool of one attention-DP 8 worker serving one or four clients: only the ranks holding a sequence
    run it, so its MoE layers see those sequences' tokens, not one per rank. Its TPOT is then the aggregated
    deployment's of the same layout at the same clients (`max_throughput` prices those with `busy_ranks`), where
    one sequence priced on every rank made it 1.3-1.6x that (DeepSeek-V3, 8 x H200)."""
    from objectives import inference

    rows = pd.concat([_rows(model="deepseek-ai/DeepSeek-V3", engine=engine, gpu="h200_sxm", weight_dtype="fp8",
                            concurrency=c, prefill_tp=8.0, prefill_moe_ep=1.0, decode_workers=1.0, decode_tp=1.0,
                            decode_attn_dp=8.0, decode_moe_ep=8.0, decode_batch_size=1.0) for c in (1.0, 4.0, 16.0)],
                     ignore_index=True)
    tpot = silicon.predict(rows)["tpot_pred"].to_numpy(float)
    agg = inference.max_throughput("DeepSeek-V3", "H200", tp=1, attn_dp=8, ep=8, engine=engine, input_len=1024,
                                   output_len=1024, concurrency=[1.0, 4.0])["tpot_ms"].to_numpy(float)
    assert tpot[:2] == pytest.approx(agg, rel=0.03)
    assert tpot[0] < tpot[1] < tpot[2]     # more busy ranks, more tokens through the experts


def test_disagg_rows_price_the_prefill_pool_once(monkeypatch):
    """`_predict_disagg` reads the lone prompt's KV size from the same prefill estimates the closed loop prices
    the pool with (`serving.analytical.prefill_estimates`, passed as `prefill_est`): one prefill estimate per
    prediction, not a second batch-1 run, and the same predictions as the closed loop estimating them itself."""
    from objectives.serving import analytical

    calls: list[int] = []
    real = analytical.prefill_estimates

    def counted(*a: object, **k: object) -> pd.DataFrame:
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(analytical, "prefill_estimates", counted)
    rows = pd.concat([_rows(concurrency=c) for c in (4.0, 64.0)], ignore_index=True)
    r = silicon.predict(rows)
    assert len(calls) == 1
    assert np.isfinite(r["ttft_pred"].to_numpy(float)).all()
    from objectives.inference.core import default_eff
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=4.0, pp=1.0, weight_dtype="fp4", ep=4.0, attn_dp=1.0,
              engine="vllm", efficiency=default_eff())
    pf = real(kw, 1024.0, 1.0)
    a = analytical.disagg_closed_loop(kw, kw, 1024.0, 1024.0, 64.0, 1.0, 4.0, 1.0, 32.0, 1.0, prefill_est=pf)
    b = analytical.disagg_closed_loop(kw, kw, 1024.0, 1024.0, 64.0, 1.0, 4.0, 1.0, 32.0, 1.0)
    assert a["ttft_ms"] == pytest.approx(b["ttft_ms"]) and a["tpot_ms"] == pytest.approx(b["tpot_ms"])


def test_the_kv_connectors_bandwidth_slows_the_handoff_and_the_fit_leaves_it_at_the_link():
    """engine_kv_gbs (the engine's KV connector, GB/s per GPU) replaces the link's bandwidth where it is slower: the
    first token from the decode worker waits one prompt's KV shard at that rate; 0 (not known): the link's. The
    silicon fit does not own it (the rows' two prompt lengths leave it unidentified); its latency it does."""
    from objectives import inference
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import Efficiency

    base = default_eff()

    def ttft(gbs: float) -> float:
        eff = Efficiency({**base.params, "engine_kv_gbs": {**base.params["engine_kv_gbs"], "vllm": gbs}}, base.meta)
        # one client: its decode rank is idle, so the read adds to the TTFT as it is (`serving.handoff.handoff_ms`)
        return float(silicon.predict(_rows(concurrency=1.0), eff)["ttft_pred"].iloc[0])
    kv = inference.estimate("Kimi-K2.5", "GB200", tp=4, ep=4, weight_dtype="fp4", engine="vllm", batch_size=1,
                            input_len=1024, output_len=1)["kv_cache_gib"].iloc[0]
    slow = kv * 2.0**30 / 2e9 * 1e3                              # ms at 2 GB/s
    assert ttft(2.0) - ttft(0.0) == pytest.approx(slow, rel=0.05)
    assert ttft(1e6) == pytest.approx(ttft(0.0), rel=1e-9)       # faster than the link: the link's
    specs = silicon._factor_specs(["sglang", "vllm"], ["vllm"])
    assert not [s for s in specs if s[0][0][0] == "engine_kv_gbs"]
    assert [s[0] for s in specs if s[0][0][0] == "engine_kv_ms"] == [[("engine_kv_ms", "vllm")]]


def test_the_kv_connectors_latency_adds_per_request_and_is_fitted_per_engine_with_disagg_rows():
    """engine_kv_ms (the connector's latency per request, the alpha beside engine_kv_gbs' beta) adds to the read:
    one client on an idle decode rank waits it in full, whatever the prompt's length; an engine whose
    connector has no fitted latency (0) reads at the link's alone. Fitted only for engines with disaggregated
    rows, and reset with the other engine factors by a refit."""
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import Efficiency
    from objectives.serving.handoff import kv_read_ms

    base = default_eff()

    def ttft(ms: float, isl: float) -> float:
        eff = Efficiency({**base.params, "engine_kv_ms": {**base.params["engine_kv_ms"], "vllm": ms}}, base.meta)
        return float(silicon.predict(_rows(concurrency=1.0, isl=isl), eff)["ttft_pred"].iloc[0])
    for isl in (1024.0, 8192.0):
        assert ttft(80.0, isl) - ttft(0.0, isl) == pytest.approx(80.0, rel=1e-3)
    # 1 GB at a 10 GB/s link (no connector rate known): 100 ms, and vLLM's 80 ms latency
    eff = Efficiency({**base.params, "engine_kv_ms": {**{e: 0.0 for e in base.params["engine_kv_ms"]}, "vllm": 80.0},
                      "engine_kv_gbs": {e: 0.0 for e in base.params["engine_kv_gbs"]}}, base.meta)
    assert kv_read_ms(1e9, 10.0, ["vllm", "trtllm"], eff) == pytest.approx([180.0, 100.0])
    specs = silicon._factor_specs(["sglang", "vllm"], ["vllm"])
    assert [s[0] for s in specs if s[0][0][0] == "engine_kv_ms"] == [[("engine_kv_ms", "vllm")]]
    assert "engine_kv_ms" in silicon.ENGINE_FACTOR_NAMES


def test_trtllm_moe_table_scale_is_fitted_only_for_trtllm():
    """profile_moe_scale scales the engine's fused-MoE table time (a TensorRT-LLM decode step at batch 1 is mostly
    its 60 MoE layers); the silicon fit owns it for TensorRT-LLM only (MOE_SCALE_ENGINES), others keep 1.0."""
    from objectives import inference
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import Efficiency

    base = default_eff()
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=4, ep=4, weight_dtype="fp4", batch_size=8, input_len=1024,
              output_len=64)

    def tpot(engine: str, scale: float) -> float:
        eff = Efficiency({**base.params, "profile_moe_scale": {**base.params["profile_moe_scale"], engine: scale}},
                         base.meta)
        return float(inference.estimate(**kw, engine=engine, efficiency=eff)["tpot_ms"].iloc[0])
    assert tpot("trtllm", 0.5) < 0.9 * tpot("trtllm", 1.0)
    names = [p for s in silicon._factor_specs(["sglang", "trtllm", "vllm"]) for p in s[0]]
    assert ("profile_moe_scale", "trtllm") in names
    assert ("profile_moe_scale", "vllm") not in names and ("profile_moe_scale", "sglang") not in names


def test_a_vllm_prefill_server_batches_what_its_token_budget_holds():
    """The rows' prefill_batch_size of 1 is the planner's figure: a vLLM prefill server batches the 1k prompts its
    8,192-token budget holds, so its pool passes several times the requests of one prompt per iteration (1,024
    clients: the measured ~44 req/s through one TP4 worker); a TensorRT-LLM context server runs the batch its
    config sets."""
    # 512 clients of 1k / 64 tokens on eight decode workers: the prefill pool sets the rate X = C / (TTFT + 63 TPOT);
    # with one prompt per iteration it could not pass more than 1 / t_prefill(1) (~24 req/s)
    r = silicon.predict(_rows(concurrency=512.0, osl=64.0, decode_workers=8.0, decode_batch_size=256.0))
    x = 512.0 / (r["ttft_pred"].iloc[0] + 63.0 * r["tpot_pred"].iloc[0]) * 1e3
    from objectives import inference
    one = inference.estimate("Kimi-K2.5", "GB200", tp=4, ep=4, weight_dtype="fp4", engine="vllm", batch_size=1,
                             input_len=1024, output_len=1)["ttft_ms"].iloc[0]
    assert x > 1.5 * 1e3 / one
    # TensorRT-LLM's context server keeps its configured batch of one prompt
    t = silicon.predict(_rows(concurrency=512.0, osl=64.0, decode_workers=8.0, decode_batch_size=256.0,
                              engine="trtllm"))
    assert 512.0 / (t["ttft_pred"].iloc[0] + 63.0 * t["tpot_pred"].iloc[0]) * 1e3 < 0.8 * x


def test_an_engine_with_only_disaggregated_rows_shares_vllms_front_end_time():
    """Its API server's time and its KV connector's latency both precede every first token once: its rows cannot
    tell them apart, so the front end is vLLM's (one fitted value) and the connector's latency its own."""
    specs = silicon._factor_specs(["sglang", "trtllm", "vllm"], ["trtllm", "vllm"], agg=["sglang", "vllm"])
    groups = [set(s[0]) for s in specs if s[0][0][0] == "engine_ttft_ms"]
    assert {("engine_ttft_ms", "vllm"), ("engine_ttft_ms", "trtllm")} in groups
    assert {("engine_ttft_ms", "sglang")} in groups and len(groups) == 2
    assert any(s[0] == [("engine_kv_ms", "trtllm")] for s in specs)
    # with aggregated rows of its own, each engine keeps its own front end
    own = [s[0] for s in silicon._factor_specs(["trtllm", "vllm"], ["trtllm"]) if s[0][0][0] == "engine_ttft_ms"]
    assert own == [[("engine_ttft_ms", "trtllm")], [("engine_ttft_ms", "vllm")]]


def test_the_fitted_moe_scale_moves_only_the_nvfp4_tables_it_was_fitted_on():
    """TensorRT-LLM's profile_moe_scale comes from its Kimi-K2.5 NVFP4 rows: an FP8 MoE model's fused-MoE table
    (Qwen3-235B-A22B-FP8 on H200, fp8_block) keeps its measured time."""
    from objectives import inference
    from objectives.inference.core import default_eff
    from objectives.inference.efficiency import Efficiency

    base = default_eff()

    def tpot(model: str, gpu: str, w: str, scale: float) -> float:
        eff = Efficiency({**base.params, "profile_moe_scale": {**base.params["profile_moe_scale"], "trtllm": scale}},
                         base.meta)
        return float(inference.estimate(model, gpu, tp=8, weight_dtype=w, batch_size=32, input_len=1024,
                                        output_len=256, engine="trtllm", efficiency=eff)["tpot_ms"].iloc[0])
    assert tpot("Kimi-K2.5-NVFP4", "GB200", "fp4", 0.5) < 0.9 * tpot("Kimi-K2.5-NVFP4", "GB200", "fp4", 1.0)
    assert tpot("Qwen3-235B-A22B-FP8", "H200", "fp8", 0.5) == tpot("Qwen3-235B-A22B-FP8", "H200", "fp8", 1.0)


def test_a_decode_batch_beyond_the_kv_cache_queues_instead_of_leaving_the_row_unpredicted():
    """A planner's decode batch that the decode worker's KV cache cannot hold (Llama-3.1-8B bf16 on one H100, 128
    sequences of 9k tokens: ~150 GB of KV) runs the batch the cache admits, the other clients waiting for a slot
    as on an aggregated server: the row is predicted, with a longer TTFT than the same deployment at a batch it
    holds, and the decode step is that of the admitted batch (no faster than at 16 clients)."""
    over = dict(model="meta-llama/Meta-Llama-3.1-8B", engine="sglang", gpu="h100_sxm", weight_dtype="bf16",
                isl=8192.0, osl=1024.0, prefill_tp=1.0, prefill_moe_ep=1.0, decode_workers=1.0, decode_tp=1.0,
                decode_moe_ep=1.0)
    r = silicon.predict(pd.concat([_rows(concurrency=c, decode_batch_size=c, **over) for c in (16.0, 128.0)],
                                  ignore_index=True))
    ttft, tpot = r["ttft_pred"].to_numpy(float), r["tpot_pred"].to_numpy(float)
    assert np.isfinite(ttft).all() and np.isfinite(tpot).all()
    assert ttft[1] > 10 * ttft[0]
    assert tpot[1] >= tpot[0]


def test_the_disaggregated_rows_replay_in_the_simulator_as_the_closed_form_prices_them():
    """`simulated_disagg` replays each disaggregated row's pools in the serving simulator with the factors given:
    four clients on four one-sequence decode workers find their worker idle, so the KV connector's latency per
    request adds to TTFT whole, in the replay as in the closed form, and the two agree where nothing queues; a
    bad output spread is refused by name, and the aggregated rows are not replayed here."""
    from objectives.inference.core import default_eff

    rows = pd.concat([_rows(concurrency=4.0, decode_batch_size=1.0),
                      _rows(engine="trtllm", concurrency=4.0, decode_batch_size=1.0, prefill_tp=1.0,
                            prefill_attn_dp=4.0),
                      _rows(mode="agg", tp=4.0, attn_dp=1.0, moe_ep=4.0)], ignore_index=True)
    eff = default_eff()
    at = {ms: silicon._with(eff, [([("engine_kv_ms", "trtllm"), ("engine_kv_ms", "vllm")], 0.0, 0.0)],
                            np.array([ms])) for ms in (0.0, 100.0)}
    sim = {ms: silicon.simulated_disagg(rows, eff=e) for ms, e in at.items()}
    assert list(sim[0.0].index) == [0, 1]
    added = sim[100.0]["ttft_pred"].to_numpy() - sim[0.0]["ttft_pred"].to_numpy()
    assert added == pytest.approx([100.0, 100.0], rel=1e-3)
    closed = silicon.predict(rows.iloc[:2], at[0.0])
    # 6 %: the closed form's prefill part now prices the start-up wave's step of four prompts and the later rounds
    # as the replay runs them (vLLM: 51.4 against 50.3 ms a request), which no longer offsets its handoff's busy
    # chance at these idle decode workers (108 against 100 ms host and handoff; the replay routes to an idle one).
    # 7 %: the thirty-fifth round's refit left that ~7 ms and shrank the front end both sides share (two
    # passes of engine_ttft_ms, 41.9 -> 30.2 ms), so the same gap reads 6.4 % of a smaller TTFT (115.9 / 123.3 ms).
    # The prefill pool's overlap lag (thirty-sixth round) is not that gap: four clients seldom find the vLLM
    # prefill worker busy with a step formed ahead (+0.9 ms: 115.9 / 124.2 ms, 6.7 %). The gap was the handoff's
    # busy chance: a one-slot decode worker takes a handed-off request only idle (`disagg_closed_loop` caps the
    # others' sequences at its slots less one, thirty-sixth round): 115.9 / 119.2 ms vLLM, 107.1 / 108.3 TensorRT-LLM
    # 8 %: the vLLM prefill worker's async scheduling forms no batch ahead when it has nothing else to run, so the
    # prompts its loop receives together at an iteration's end all join the next one (`engine._Replica
    # ._schedule_prefill`; the first of them alone did before): 7.6 % (114.6 / 123.3 ms)
    assert sim[0.0]["ttft_pred"].to_numpy() == pytest.approx(closed["ttft_pred"].to_numpy(), rel=0.035)
    assert sim[0.0]["tpot_pred"].to_numpy() == pytest.approx(closed["tpot_pred"].to_numpy(), rel=0.05)
    assert np.isfinite(sim[0.0]["ttft_ape"]).all()
    with pytest.raises(ValueError, match="output_spread"):
        silicon.simulated_disagg(rows, output_spread=-0.1)


@pytest.mark.parametrize("over,rel", [(dict(engine="trtllm", concurrency=30.0, prefill_tp=1.0, prefill_attn_dp=4.0,
                                            decode_workers=5.0, decode_tp=4.0, decode_batch_size=6.0), 0.07),
                                      (dict(engine="vllm", concurrency=128.0), 0.03)])
def test_the_closed_form_prices_the_prefill_pools_later_rounds_as_the_simulator_runs_them(over, rel):
    """The closed loop's later rounds at the prefill pool (the clients in the wave's order, a lockstep attention-DP
    worker's step in progress) against the simulator's iterations on the same pools (`simulated_disagg`, 10 requests
    a client): the mean TTFT within 7 % (the pooled M/D/1 the form had before read 0.89 / 0.88 of the simulator's).
    vLLM's prefill workers run async scheduling (0.14+, `profiles.OVERLAP_SINCE`): a prompt that arrives during a
    step waits for the one formed ahead, in the simulator (472 -> 507 ms) as in the closed form since the thirty-
    sixth round (`disagg_closed_loop`'s `lag`: 469 -> 508 ms, 0.93 -> 1.00 of the simulator's; 10 % before, 5 %
    now); TensorRT-LLM's context servers run without the loop. Its busy decode workers learn of a finished KV read
    three steps late in both (`handoff.kv_notice_steps`: 508 -> 557 ms closed, 507 -> 551 simulated, 1.011).
    3 % (was 2 %, pinned on the simulator's lag of a burst's later prompts, which its prefill worker no longer
    has: with nothing else to run it forms no step ahead and takes them all, `engine._Replica._schedule_prefill`):
    the step formed ahead now holds only the prompts the step in progress had no room for, in both (`lag` x the
    chance more than g prompts arrived in a step): 534 closed (518 without the lag) against 519 simulated; the
    closed form's window arrivals (6.7 a prefill step, Poisson) overflow more often than the simulator's (2.8
    waiting at a step's start, 2 % of its steps beyond 8)."""
    rows = _rows(**over)
    cf = silicon.predict(rows)["ttft_pred"].to_numpy(float)[0]
    sim = silicon.simulated_disagg(rows)["ttft_pred"].to_numpy(float)[0]
    assert cf == pytest.approx(sim, rel=rel)


def test_a_prefill_worker_that_forms_its_next_step_ahead_delays_the_prompts_that_reach_it_busy(monkeypatch):
    """vLLM's and SGLang's prefill servers form their next step while the current one runs (`profiles.overlaps`),
    TensorRT-LLM's context servers do not (`NO_OVERLAP_ROLES`): `handoff.front_end` says so per deployment, and the
    closed loop's prefill wait counts the step formed ahead where the prompts reach a busy worker (vLLM, 128 clients:
    ~16 ms more TTFT: the step ahead holds the prompts the step in progress had no room for, formed where more than
    g = 8 arrived during one, ~24 % of its steps), not where a step holds one prompt (SGLang with one prompt a step:
    the step ahead left it no room) nor on TensorRT-LLM."""
    import objectives.serving.handoff as handoff
    from objectives.inference.core import default_eff

    rows = pd.concat([_rows(engine="vllm"), _rows(engine="sglang"),
                      _rows(engine="trtllm", concurrency=30.0, prefill_tp=1.0, prefill_attn_dp=4.0, decode_workers=5.0,
                            decode_batch_size=6.0)], ignore_index=True)
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=4.0, ep=4.0, weight_dtype="fp4",
              engine=np.array(["vllm", "sglang", "trtllm"], dtype=object))
    assert handoff.front_end(kw, 3, default_eff())[3].tolist() == [1.0, 1.0, 0.0]
    with_lag = silicon.predict(rows)["ttft_pred"].to_numpy(float)
    keeps = handoff.overlaps_in_role     # the prefill servers' loop only (the decode side's: `kv_notice_steps`)
    monkeypatch.setattr(handoff, "overlaps_in_role", lambda engine, role: role != "prefill" and keeps(engine, role))
    assert handoff.front_end(kw, 3, default_eff())[3].tolist() == [0.0, 0.0, 0.0]
    without = silicon.predict(rows)["ttft_pred"].to_numpy(float)
    assert with_lag[0] - without[0] > 10.0
    assert with_lag[1:] == pytest.approx(without[1:], rel=1e-12)


def test_a_busy_vllm_decode_worker_schedules_a_finished_read_steps_after_it_sees_it(monkeypatch):
    """vLLM's decode worker polls its NIXL reads as it launches a step and its scheduler reads the result with that
    step's output; under async scheduling (0.14+) the step is launched while the one before runs and the next one is
    formed before that output is read: a busy worker schedules the request 3 steps after the boundary that sees its
    read done (1 without async scheduling), where TensorRT-LLM's executor loop forms its batch with the transfers it
    just checked (`handoff.kv_notice_steps`). An idle worker polls at once. The closed form and the simulator add
    about the same (64 clients on four vLLM decode workers: +39 / +34 ms of ~460 ms)."""
    import objectives.serving.handoff as handoff
    from objectives.inference.core import default_eff

    notice = handoff.kv_notice_steps(["vllm", "vllm", "trtllm", "sglang", None], [1.0, 0.0, 1.0, 1.0, 0.0])
    assert notice.tolist() == [3.0, 1.0, 0.0, 0.0, 0.0]
    kw = dict(model="Kimi-K2.5", gpu="GB200", tp=4.0, ep=4.0, weight_dtype="fp4",
              engine=np.array(["vllm", "trtllm"], dtype=object))
    assert handoff.decode_overlap(kw, 2, default_eff())[1].tolist() == [1.0, 1.0]   # both decode pools overlap
    # only a busy worker (chance 1 - exp(-occupancy)) waits, `notice` of its steps
    assert handoff.handoff_ms(10.0, 5.0, 0.0, 1.0, 3.0) == pytest.approx(handoff.handoff_ms(10.0, 5.0, 0.0, 1.0))
    assert (handoff.handoff_ms(10.0, 5.0, 2.0, 1.0, 3.0) - handoff.handoff_ms(10.0, 5.0, 2.0, 1.0)
            == pytest.approx(-np.expm1(-2.0) * 30.0))
    rows = _rows(concurrency=64.0, decode_batch_size=16.0)
    cf, sim = silicon.predict(rows)["ttft_pred"].iloc[0], silicon.simulated_disagg(rows)["ttft_pred"].iloc[0]
    monkeypatch.setattr(handoff, "KV_NOTICE_ENGINES", ())
    cf0, sim0 = silicon.predict(rows)["ttft_pred"].iloc[0], silicon.simulated_disagg(rows)["ttft_pred"].iloc[0]
    assert sim - sim0 > 20.0
    assert cf - cf0 == pytest.approx(sim - sim0, rel=0.25)
    assert cf == pytest.approx(sim, rel=0.03)
