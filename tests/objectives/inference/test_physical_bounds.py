"""Physics bounds and consistency of `max_throughput` on the configurations people serve (anomaly hunt, see
docs/profiles.md): a decode step never beats streaming the weights it reads (dense layers, the experts a batch
touches under balanced routing, the KV cache) from device memory, a prompt never beats the dense peak of its
precision, and neither TPOT nor TTFT falls when more clients share the deployment."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from objectives import catalog, inference
from objectives.catalog import model_math as mm

#: bytes per weight of the `weight_dtype` column: the checkpoint's smallest (a bound: MXFP4 experts beside 16-bit
#: attention count at 4 bits throughout)
W_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5, "int4": 0.5}
CONC = np.array([1, 4, 16, 64, 256])
LENS = ((1024, 1024), (8192, 1024))
CASES = [("Llama-3.1-70B-FP8", 8, 1, 1), ("Qwen3-30B-A3B", 2, 2, 1), ("DeepSeek-R1", 8, 8, 1),
         ("gpt-oss-120b", 4, 1, 1)]
GPUS = ("H100-SXM-80GB", "H200-SXM-141GB", "B200")


def _sweep(model: str, gpu: str, engine: str, tp: int, ep: int, adp: int):
    isl = np.array([x[0] for x in LENS])[None, :]
    osl = np.array([x[1] for x in LENS])[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return inference.max_throughput(model, gpu, tp=tp, ep=ep, attn_dp=adp, input_len=isl, output_len=osl,
                                        concurrency=CONC[:, None], engine=engine)


def _floors(model: str, gpu: str, r) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the decode step's weight + KV streaming time (ms) and the prompt's FLOPs at the dense peak (ms)."""
    m, g = catalog.model(model), catalog.gpu(gpu)
    active = float(mm.active_params(m, input_embedding=False))
    if m.is_moe:
        expert = float(mm._mlp_params(m, mm.expert_width(m.hidden, m.moe_latent), m.moe_ffn))
        routed = float(mm.n_moe_layers(m)) * expert
        dense, E, k = active - m.top_k * routed, float(m.n_experts), float(m.top_k)
    else:
        dense, routed, E, k = active, 0.0, 1.0, 1.0
    wb = r["weight_dtype"].astype(str).map(W_BYTES).to_numpy(float)
    N, tp, adp = (r[c].to_numpy(float) for c in ("batch_size", "tp", "attn_dp"))
    touched = E * (1.0 - (1.0 - k / E) ** (N * adp)) if m.is_moe else 0.0
    kv = np.array([float(mm.sequence_cache_bytes(m, L, d)) for L, d in zip(r["input_len"], r["kv_dtype"].astype(str))])
    stream = (dense * wb / tp + routed * wb * touched / (tp * adp) + N * kv / tp) / (g.mem_bw_tbs * 1e12) * 1e3
    peak = np.array([g.peak_tflops.get(a, max(g.peak_tflops.values())) for a in r["act_dtype"].astype(str)]) * 1e12
    flops = 2.0 * active * r["input_len"].to_numpy(float)
    return stream, flops / (peak * tp * adp) * 1e3


#: (case, GPU) pairs that run: DeepSeek-R1 in FP8 (671 B parameters) does not fit eight 80 GB H100s
RUNS = [(c, g) for c in CASES for g in GPUS if not (c[0] == "DeepSeek-R1" and g == "H100-SXM-80GB")]


@pytest.mark.parametrize("model,tp,ep,adp,gpu", [c + (g,) for c, g in RUNS], ids=[f"{c[0]}-{g}" for c, g in RUNS])
@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_served_rows_respect_bandwidth_and_peak_and_do_not_speed_up_under_load(model, tp, ep, adp, gpu, engine):
    r = _sweep(model, gpu, engine, tp, ep, adp)
    ok = r["fits"].to_numpy(bool)
    assert ok.any(), f"{model} should fit {tp} x {gpu}"
    stream, compute = _floors(model, gpu, r)
    tpot, ttft = r["tpot_ms"].to_numpy(float), r["ttft_ms"].to_numpy(float)
    assert (tpot[ok] >= stream[ok]).all(), (tpot[ok] / stream[ok]).min()
    assert (ttft[ok] >= compute[ok]).all(), (ttft[ok] / compute[ok]).min()
    # rows are (concurrency, lengths): per length, more clients never make a token or a first token faster
    shape = (len(CONC), len(LENS))
    for col in (tpot, ttft):
        c, f = col.reshape(shape), ok.reshape(shape)
        for j in range(len(LENS)):
            v = c[f[:, j], j]
            assert (np.diff(v) >= -1e-9 * v[:-1]).all(), (col is tpot, LENS[j], v)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_more_bandwidth_never_slows_a_small_batch_decode(engine):
    # H200 is H100's compute with 1.43x the bandwidth: a memory-bound batch-1 step is faster there
    kw = dict(tp=8, input_len=1024, output_len=1024, concurrency=1, engine=engine)
    h100 = inference.max_throughput("Llama-3.1-70B", "H100-SXM-80GB", **kw)["tpot_ms"].iloc[0]
    h200 = inference.max_throughput("Llama-3.1-70B", "H200-SXM-141GB", **kw)["tpot_ms"].iloc[0]
    b200 = inference.max_throughput("Llama-3.1-70B", "B200", **kw)["tpot_ms"].iloc[0]
    assert b200 < h200 <= h100, (h100, h200, b200)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_one_client_on_attention_dp_is_priced_as_one_prompt(engine):
    # one closed-loop client keeps one attention-DP rank busy, the others idle: its prompt is the only one at
    # the experts, so its TTFT is that of a deployment whose other ranks hold nothing (estimate's moe_dp=1)
    kw = dict(tp=1, ep=8, attn_dp=8, input_len=8192, engine=engine)
    one = inference.max_throughput("DeepSeek-R1", "B200", output_len=1024, concurrency=1, **kw)["ttft_ms"].iloc[0]
    alone = inference.estimate("DeepSeek-R1", "B200", batch_size=1, output_len=2, moe_dp=1.0, **kw)["ttft_ms"].iloc[0]
    assert one <= 1.2 * alone, (one, alone)
