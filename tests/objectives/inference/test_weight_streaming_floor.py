"""The measured-profile path never decodes faster than the weights a step reads can stream from device memory.

The kernel tables time one GEMM (or fused-MoE layer) in a loop, which keeps weights that fit the L2 cache there;
in a real forward every layer's weights come from device memory once per step. On GDDR parts with large L2s (L40S,
RTX PRO 6000) many small-batch cells beat their memory bandwidth, so without the floor a batch-1 decode came out
faster than physics allows."""
from __future__ import annotations

import pytest

from objectives import catalog, profiles
from objectives.catalog import model_math
from objectives.inference import estimate

PROFILED = [(g, e) for g in profiles.SYSTEMS for e in profiles.available(g) if e != "torch"]
MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B")
#: the (model, GPU, engine) cases whose bf16 weights leave room on one GPU (Qwen3-30B-A3B's 61 GB do not on an L40S
#: or an Arc Pro B60)
CASES = [(m, g, e) for m in MODELS for g, e in PROFILED
         if model_math.total_params(catalog.model(m)) * 2.0 < 0.9 * catalog.gpu(g).mem_gib * 2**30]


@pytest.mark.parametrize("model,gpu,engine", CASES, ids=[f"{m.split('/')[-1]}-{g}-{e}" for m, g, e in CASES])
def test_batch_one_decode_reads_the_active_weights_at_most_at_the_memory_bandwidth(model, gpu, engine):
    rec, g = catalog.model(model), catalog.gpu(gpu)
    r = estimate(model, gpu, tp=1, weight_dtype="bf16", batch_size=1, input_len=1024, output_len=128,
                 engine=engine)
    assert r["source"].iloc[0] in ("interpolated", "extrapolated"), "the row must read the engine's tables"
    assert bool(r["fits"].iloc[0]), f"{model} bf16 should fit one {gpu}"
    # the layers' active weights (the experts one token routes to) and the LM head, in bf16, once per step
    floor_ms = model_math.active_params(rec, input_embedding=False) * 2.0 / (g.mem_bw_tbs * 1e12) * 1e3
    assert float(r["tpot_ms"].iloc[0]) >= floor_ms, (gpu, engine, float(r["tpot_ms"].iloc[0]), floor_ms)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_decode_reads_the_kv_cache_at_most_at_the_memory_bandwidth(engine):
    # beyond the generation tables' measured batch x context their cells are a trend; a step of 1,024 sequences of
    # 8k tokens must still read every layer's KV cache from device memory (TensorRT-LLM's H200 bf16 table, batch
    # 1,024, extended from its short contexts, priced it at a third of that)
    rec, g = catalog.model("meta-llama/Llama-3.1-8B-Instruct"), catalog.gpu("H200-SXM-141GB")
    r = estimate(rec.name, g.name, tp=1, weight_dtype="bf16", kv_dtype="bf16", batch_size=1024, input_len=8192,
                 output_len=2, engine=engine)
    ctx = 8192 + 1
    kv_bytes = 1024 * ctx * rec.n_layers * rec.n_kv_heads * rec.head_dim * 2 * 2.0
    assert float(r["tpot_ms"].iloc[0]) >= kv_bytes / (g.mem_bw_tbs * 1e12) * 1e3
