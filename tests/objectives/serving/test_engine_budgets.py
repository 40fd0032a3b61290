"""Each engine's default scheduler budgets (max sequences in flight, max tokens per iteration): one table
(`inference.resolve.engine_budgets`) for `inference.max_throughput`, `serving.Scheduler` (so `serving.simulate`) and
the silicon fit; explicit values win everywhere."""
from __future__ import annotations

import pytest

from objectives import inference, serving
from objectives.inference import kv_pool, resolve
from objectives.inference.estimate import DEFAULT_MAX_BATCH_SIZE
from objectives.serving.simulator import _build


def test_each_engine_s_budgets_follow_its_gpu():
    # vLLM's OpenAI server: 1024 / 8192 on >= 70 GiB but an A100, else 256 / 2048; SGLang's chunk by memory
    # (its max sequences, which follow its KV pool, the rule's floor where no pool is known); trtllm-serve's 2048 /
    # 8192 everywhere; the roofline the caller's fallback; no engine named: the GPU's own (vLLM on an H100)
    got = resolve.engine_budgets(["vllm", "vllm", "vllm==0.24.0", "sglang", "sglang", "trtllm", "roofline", "vllm",
                                  None, "auto"],
                                 ["H200-SXM-141GB", "L40S", "A100-SXM-80GB", "B200", "L40S", "L40S", "H100", None,
                                  "H100", "L40S"])
    assert got.tolist() == [[1024, 8192], [256, 2048], [256, 2048], [2048, 16384], [2048, 4096], [2048, 8192],
                            [2048, 8192], [1024, 8192], [1024, 8192], [256, 2048]]
    assert resolve.engine_budgets(["roofline"], ["H100"], fallback=(256, 8192)).tolist() == [[256, 8192]]
    # a GPU as a prepared configuration holds it, (memory GiB, name), prices as its record (`estimate`'s defaults)
    gpus = ["H200-SXM-141GB", "L40S", "A100-SXM-80GB", "B200"]
    held = [(g.mem_gib, g.name) for g in map(resolve._lookup, ["gpu"] * 4, gpus)]
    engines = ["vllm", "vllm", "vllm", "sglang"]
    assert resolve.engine_budgets(engines, held).tolist() == resolve.engine_budgets(engines, gpus).tolist()
    assert resolve.engine_budgets(["vllm"], [(40.0, "X")]).tolist() == [[256, 2048]]   # below 70 GiB


def test_scheduler_leaves_its_budgets_to_the_engine_and_keeps_what_it_is_given():
    s = serving.Scheduler()
    assert (s.max_batch_size, s.max_num_tokens) == (None, None)
    for engine, gpu, want in (("trtllm", "H200", (2048, 8192)), ("sglang", "B200", (2048, 16384)),
                              ("vllm", "L40S", (256, 2048)), ("roofline", "H200", (256, 8192)),
                              (None, "H100", (1024, 8192)), ("auto", "H100", (1024, 8192)), (None, None, (256, 8192))):
        r = s.resolved(engine, gpu)
        assert (r.max_batch_size, r.max_num_tokens) == want, (engine, gpu)
    r = serving.Scheduler(max_batch_size=64).resolved("sglang", "B200")
    assert (r.max_batch_size, r.max_num_tokens) == (64, 16384)
    assert serving.Scheduler(max_batch_size=64, max_num_tokens=512).resolved("trtllm", "H200") == \
        serving.Scheduler(max_batch_size=64, max_num_tokens=512)
    # the constructor's refusal, word for word, where a given batch exceeds the engine's token budget
    with pytest.raises(ValueError, match=r"^Scheduler max_num_tokens=2048 is below max_batch_size=4096: every "
                                         r"running sequence needs a token per iteration$"):
        serving.Scheduler(max_batch_size=4096).resolved("vllm", "L40S")
    with pytest.raises(ValueError, match="max_num_tokens=100 is below max_batch_size=200"):
        serving.Scheduler(max_batch_size=200, max_num_tokens=100)
    with pytest.raises(ValueError, match="max_batch_size"):
        serving.Scheduler(max_batch_size=0)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_simulate_and_max_throughput_default_to_the_same_engine_budgets(engine):
    # short requests of a small model: the KV cache holds thousands, so the batch in flight at saturation is the
    # engine's max_batch_size in both APIs (TensorRT-LLM's 2048, not the simulator's former 256; SGLang's by its
    # KV pool, `test_sglang_s_max_sequences_follow_its_kv_pool`)
    mt = inference.max_throughput("Llama-3.1-8B", "H200", engine=engine, input_len=64, output_len=64)
    w = serving.Workload(concurrency=8, input_len=64, output_len=4, n_requests=8)
    _, reps = _build("Llama-3.1-8B", "H200", 1, 1, None, None, None, w, None, "agg", 1, None, None, None,
                     "least_loaded", engine)
    want = resolve.engine_budgets([engine], ["H200-SXM-141GB"])[0]
    if engine == "sglang":
        want[0] = kv_pool.sglang_max_running_requests(reps[0].cost.kv_capacity_tokens, 131072)
    assert float(mt["batch_size"].iloc[0]) == want[0]
    assert (reps[0].maxb, reps[0].maxt) == tuple(want)
    # an explicit value still wins in both
    mt = inference.max_throughput("Llama-3.1-8B", "H200", engine=engine, input_len=64, output_len=64,
                                  max_batch_size=100)
    assert float(mt["batch_size"].iloc[0]) == 100
    _, reps = _build("Llama-3.1-8B", "H200", 1, 1, None, None, None, w, serving.Scheduler(max_batch_size=100),
                     "agg", 1, None, None, None, "least_loaded", engine)
    assert (reps[0].maxb, reps[0].maxt) == (100, want[1])


def test_sglang_s_max_running_requests_rule():
    # python/sglang/srt/mem_cache/kv_cache_configurator.py resolve_max_num_reqs without the flag:
    # min(clip(int(kv / context_len * 512), 2048, 4096), kv // 2)
    got = kv_pool.sglang_max_running_requests([906_101, 906_101, 3_000_000, 3_000, 3, 1_000_000], [131_072, 262_144,
                                              131_072, 131_072, 131_072, 0])
    assert got.tolist() == [3539, 2048, 4096, 1500, 1, 4096]     # context unknown (0): SGLang's 2,048


def test_sglang_s_max_sequences_follow_its_kv_pool():
    # Llama-3.1-8B on one H200 under SGLang: a pool of ~906k tokens and a 131,072-token context let 3,539 sequences
    # run (the stand-in's 2,048 below it); half the pool (mem_fraction_static), or a pool the caller gives, moves
    # it; the closed form, its breakdown and the simulator read the same pool
    kw = dict(engine="sglang", input_len=64, output_len=64)
    mt = inference.max_throughput("Llama-3.1-8B", "H200", **kw)
    sm = inference.StepModel("Llama-3.1-8B", "H200", engine="sglang", max_num_tokens=8192)
    assert sm.context_len == 131072
    rule = float(kv_pool.sglang_max_running_requests(sm.kv_capacity_tokens, 131072))
    assert float(mt["batch_size"].iloc[0]) == rule > 2048
    assert serving.Scheduler().for_cost(sm).max_batch_size == rule
    small = inference.max_throughput("Llama-3.1-8B", "H200", kv_capacity_tokens=600_000, **kw)
    assert float(small["batch_size"].iloc[0]) == 2343 == int(600_000 / 131072 * 512)
    assert serving.Scheduler(kv_capacity_tokens=600_000).for_cost(sm).max_batch_size == 2343
    # never above the iteration's token budget (each running sequence takes a token of it), an explicit value wins
    assert float(inference.max_throughput("Llama-3.1-8B", "H200", max_num_tokens=3000, **kw)["batch_size"].iloc[0]) \
        == 3000
    assert serving.Scheduler(max_num_tokens=3000).for_cost(sm).max_batch_size == 3000
    assert serving.Scheduler(max_batch_size=7).for_cost(sm).max_batch_size == 7
    # rows of several engines at once: each its own (vLLM's 1,024, SGLang's by its pool)
    both = inference.max_throughput("Llama-3.1-8B", "H200", engine=["vllm", "sglang"], input_len=64, output_len=64)
    assert both["batch_size"].tolist() == [1024, rule]
    br = inference.served_breakdown("Llama-3.1-8B", "H200", **kw)
    assert br["total_ms"].notna().all()



def test_simulated_capacity_runs_sglang_with_the_max_sequences_simulate_sizes(monkeypatch):
    # capacity's simulations take the scheduler as `simulate` does: SGLang's max sequences by the replica's KV pool
    # (3,539 for Llama-3.1-8B on one H200), not the 2,048 stand-in of a scheduler resolved without the pool
    from objectives.serving import simulator

    class Ran(Exception):
        pass

    seen = []

    def first_run(workload, agg, *args, **kwargs):
        seen.append(agg.scheduler.max_batch_size)
        raise Ran

    monkeypatch.setattr(simulator, "_run", first_run)
    with pytest.raises(Ran):
        serving.simulate("Llama-3.1-8B", "H200", engine="sglang", workload=serving.Workload(rate=1.0))
    with pytest.raises(Ran):
        serving.capacity("Llama-3.1-8B", "H200", engine="sglang", slo={"ttft_ms": 2000, "percentile": "p99"})
    sm = inference.StepModel("Llama-3.1-8B", "H200", engine="sglang", max_num_tokens=16384)
    rule = int(kv_pool.sglang_max_running_requests(sm.kv_capacity_tokens, 131072))
    assert seen == [rule, rule] and rule > 2048

def test_estimate_and_deployments_take_the_engine_s_budgets():
    # estimate's max_num_tokens (its activation buffer) and Deployments.of's budgets default to the engine's own:
    # vLLM on an L40S 2,048 tokens, SGLang on a B200 16,384; the roofline keeps each API's former values
    kw = dict(batch_size=4, input_len=16000, output_len=2)
    for engine, gpu, mnt in (("vllm", "L40S", 2048), ("sglang", "B200", 16384), ("roofline", "H200", 8192),
                             ("trtllm", "H200", 8192)):
        own = inference.estimate("Llama-3.1-8B", gpu, engine=engine, **kw)
        given = inference.estimate("Llama-3.1-8B", gpu, engine=engine, max_num_tokens=mnt, **kw)
        assert own["mem_per_gpu_gib"].iloc[0] == given["mem_per_gpu_gib"].iloc[0], engine
    wide = inference.estimate("Llama-3.1-8B", "L40S", engine="vllm", max_num_tokens=8192, **kw)
    assert wide["mem_per_gpu_gib"].iloc[0] > inference.estimate("Llama-3.1-8B", "L40S", engine="vllm", **kw)[
        "mem_per_gpu_gib"].iloc[0]
    d = serving.Deployments.of(gpu=["L40S", "B200", "H200", "H100", "H200"],
                               engine=["vllm", "sglang", "roofline", None, "trtllm"],
                               max_batch_size=[None, None, None, None, 64])
    assert d.max_batch_size.tolist() == [256, 2048, 256, 1024, 64]
    assert d.max_num_tokens.tolist() == [2048, 16384, 8192, 8192, 8192]
    assert serving.Deployments.of(gpu="H200", engine="vllm", max_num_tokens=4096).max_num_tokens.tolist() == [4096]


def test_the_roofline_keeps_each_api_s_former_budgets():
    mt = inference.max_throughput("Llama-3.1-8B", "H200", engine="roofline", input_len=64, output_len=64)
    assert float(mt["batch_size"].iloc[0]) == DEFAULT_MAX_BATCH_SIZE == 2048
    w = serving.Workload(concurrency=8, input_len=64, output_len=4, n_requests=8)
    _, reps = _build("Llama-3.1-8B", "H200", 1, 1, None, None, None, w, None, "agg", 1, None, None, None,
                     "least_loaded", "roofline")
    assert (reps[0].maxb, reps[0].maxt) == (256, 8192)


def test_vllm_s_small_gpu_token_budget_reaches_the_closed_form_and_the_simulator():
    # on an L40S vLLM's server runs 2,048-token iterations: a 6,000-token prompt takes three chunks, not one, in
    # both APIs; its own (256, 2048) by default, the former (256, 8192) only when given
    kw = dict(input_len=6000, output_len=16)
    own = inference.max_throughput("Llama-3.1-8B", "L40S", engine="vllm", concurrency=4, **kw)
    given = inference.max_throughput("Llama-3.1-8B", "L40S", engine="vllm", concurrency=4, max_batch_size=256,
                                     max_num_tokens=2048, **kw)
    wide = inference.max_throughput("Llama-3.1-8B", "L40S", engine="vllm", concurrency=4, max_batch_size=256,
                                    max_num_tokens=8192, **kw)
    assert own["ttft_ms"].iloc[0] == given["ttft_ms"].iloc[0] != wide["ttft_ms"].iloc[0]
    w = serving.Workload(concurrency=4, **kw, n_requests=8)
    sim = serving.simulate("Llama-3.1-8B", "L40S", engine="vllm", workload=w)
    sim_given = serving.simulate("Llama-3.1-8B", "L40S", engine="vllm", workload=w,
                                 scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=2048))
    sim_wide = serving.simulate("Llama-3.1-8B", "L40S", engine="vllm", workload=w,
                                scheduler=serving.Scheduler(max_batch_size=256, max_num_tokens=8192))
    assert sim["ttft_ms_mean"] == sim_given["ttft_ms_mean"] != sim_wide["ttft_ms_mean"]
