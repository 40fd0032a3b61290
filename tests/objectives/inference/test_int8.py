"""W8A8 int8 checkpoints priced beside the measured formats (objectives.inference.measured: `borrowed_gemm`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import catalog, inference, profiles
from objectives.inference import measured
from tests.helpers.profiles import slow_table

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
#: the profiled GPUs whose int8 tensor rate equals their fp8 rate, and A100 (int8, no fp8)
GPUS = ["H100-SXM-80GB", "H200-SXM-141GB", "B200", "L40S", "A100-SXM-80GB"]
ENGINES = ["vllm", "sglang", "trtllm"]


def _tpot(gpu: object, engine: str, weight_dtype: object, tp: int = 8, batch_size: int = 8,
          model: object = LLAMA) -> pd.DataFrame:
    return inference.estimate(model, gpu, tp=tp, weight_dtype=weight_dtype, kv_dtype="bf16", batch_size=batch_size,
                              input_len=1024, output_len=128, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_int8_checkpoint_stays_on_the_engines_profile_path(engine):
    # a W8A8 int8 row used to find no GEMM table and fall back to the closed form whole: roofline all-reduce and
    # host step beside profiled bf16 / fp8 rows (Llama-3.1-8B H200 TP 8: TPOT 6.2 ms against bf16's 2.4)
    r = _tpot(GPUS, engine, "int8")
    assert (r["act_dtype"] == "int8").all()
    assert (r["source"] != "roofline").all(), r[["gpu", "source"]]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("gpu", ["H100-SXM-80GB", "H200-SXM-141GB"])
@pytest.mark.parametrize("tp", [1, 8])
def test_int8_decodes_at_fp8s_pace_on_hopper(engine, gpu, tp):
    # one byte per weight at the fp8 tensor rate: int8's decode step between fp8's and bf16's, or within 5 % of
    # fp8's (the same FP8 table, read with the engine's activation handling)
    bf16, fp8, int8 = _tpot(gpu, engine, ["bf16", "fp8", "int8"], tp=tp)["tpot_ms"].to_numpy()
    assert int8 <= max(bf16, 1.05 * fp8), (bf16, fp8, int8)
    assert int8 >= 0.95 * min(bf16, fp8), (bf16, fp8, int8)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("tp", [1, 8])
def test_a100_int8_decodes_faster_than_bf16(engine, tp):
    # A100: int8 tensor cores at twice bf16's rate, no fp8; int8 weights stream half bf16's bytes. TensorRT-LLM
    # reads its measured SmoothQuant GEMM where the profile holds it (`gemm.int8`), the others the bf16 table at one
    # byte per weight. Batch 1 (decode reads the weights once per token). At TP 8 Llama-3.1-8B's GEMMs are small
    # (4,096 x 768 QKV per GPU), where TensorRT-LLM's measured SmoothQuant table sits on a 7-8 us floor per GEMM and
    # its bf16 GEMM takes 3-5 us: read no higher than the bf16 table at one byte per weight
    # (`measured.QUANT_TABLE_CAP`), faster still, by less
    bf16, int8 = _tpot("A100-SXM-80GB", engine, ["bf16", "int8"], tp=tp, batch_size=1)["tpot_ms"].to_numpy()
    assert int8 < (0.8 if tp == 1 else 1.0) * bf16, (bf16, int8)


def test_the_borrowed_gemm_is_the_fp8_lane_at_equal_rates_and_the_bf16_lane_elsewhere():
    h200 = profiles.load("H200-SXM-141GB", "vllm")
    t, rate = measured.borrowed_gemm(h200, catalog.gpu("H200-SXM-141GB").peak_tflops)
    assert t is h200.table("gemm.fp8") and rate == 1.0
    trt = profiles.load("H200-SXM-141GB", "trtllm")
    t, rate = measured.borrowed_gemm(trt, catalog.gpu("H200-SXM-141GB").peak_tflops)
    assert t is trt.table("gemm.fp8_static") and rate == 1.0
    a100 = profiles.load("A100-SXM-80GB", "vllm")
    t, rate = measured.borrowed_gemm(a100, catalog.gpu("A100-SXM-80GB").peak_tflops)
    assert t is a100.table("gemm.bf16") and rate == pytest.approx(0.5)
    # B300: int8 at a thirtieth of its fp8 rate (150 against 4,500 TOPS): not the fp8 lane, bf16's at 15x compute
    b300 = profiles.load("B300", "vllm")
    t, rate = measured.borrowed_gemm(b300, catalog.gpu("B300").peak_tflops)
    assert t is b300.table("gemm.bf16") and rate == pytest.approx(15.0)


def test_int8_rows_move_with_their_lanes_table(monkeypatch):
    # the borrowed table is the one read: a slower fp8 table slows the int8 rows of an equal-rate GPU, a slower bf16
    # table A100's, and neither moves the other
    gpus = ["H200-SXM-141GB", "A100-SXM-80GB"]
    base = _tpot(gpus, "vllm", "int8", tp=1)["tpot_ms"].to_numpy()
    with monkeypatch.context() as mp:
        slow_table(mp, "gemm.fp8", 2.0)
        fp8_slow = _tpot(gpus, "vllm", "int8", tp=1)["tpot_ms"].to_numpy()
    with monkeypatch.context() as mp:
        slow_table(mp, "gemm.bf16", 2.0)
        bf16_slow = _tpot(gpus, "vllm", "int8", tp=1)["tpot_ms"].to_numpy()
    assert fp8_slow[0] > 1.2 * base[0] and fp8_slow[1] == base[1]
    assert bf16_slow[1] > 1.2 * base[1] and bf16_slow[0] < 1.1 * base[0]  # H200: only its 16-bit LM head moves


@pytest.mark.parametrize("engine", ENGINES)
def test_no_format_decodes_slower_than_bf16_beyond_its_quantize_overhead(engine):
    # batch 1: a decode step streams every weight once; fewer weight bytes never cost more than the format's own
    # activation quantize / dequantize kernels, measured in its table. At TP 1 (Llama-3.1-8B / 70B, GEMMs of
    # millions of weights) those kernels are at most 5 % of the step (measured up to 2.5 %: fp8 on the RTX PRO 6000
    # under SGLang); at TP 8 int8 adds nothing beyond the fp8 lane it reads (equal-rate GPUs) or bf16's (A100)
    gpus = [g for g in GPUS + ["RTX-PRO-6000"] if engine in profiles.available(g)]
    fmts = ["bf16", "fp8", "int8", "int4", "fp4"]
    for model in (LLAMA, "Llama-3.1-70B"):
        G, F = np.meshgrid(np.array(gpus, dtype=object), np.array(fmts, dtype=object), indexing="ij")
        r = _tpot(G.ravel(), engine, F.ravel(), tp=1, batch_size=1, model=model)
        t = r["tpot_ms"].to_numpy().reshape(G.shape)
        ok = r["fits"].to_numpy().reshape(G.shape) & np.isfinite(t)
        ok &= ok[:, [0]]  # where bf16 fits (Llama-3.1-70B at TP 1: the H200 / B200 only)
        assert ok[:, 1:].any()
        ratio = np.where(ok, t / t[:, [0]], 0.0)
        assert ratio.max() <= 1.05, pd.DataFrame(ratio, index=gpus, columns=fmts)
    r = _tpot(gpus, engine, [["bf16"], ["fp8"], ["int8"]], tp=8, batch_size=1)
    bf16, fp8, int8 = r["tpot_ms"].to_numpy().reshape(3, len(gpus))
    lane = np.where([catalog.gpu(g).supports("fp8") for g in gpus], np.maximum(fp8, bf16), bf16)
    assert np.all(int8 <= lane * (1 + 1e-9)), (gpus, bf16, fp8, int8)


def test_tensorrt_llms_measured_smoothquant_gemm_is_the_int8_table():
    # aiconfigurator-core's A100 TensorRT-LLM 1.0.0 table times the SmoothQuant W8A8 GEMM plugin ("sq" rows): built
    # as `gemm.int8`, read before any borrowed lane
    pytest.importorskip("aiconfigurator_core", reason="the profiles extra (aiconfigurator-core) is not installed")
    from objectives.profiles.build import aiconfigurator_root, gemm_tables
    tabs = gemm_tables(aiconfigurator_root() / "a100_sxm" / "gemm" / "trtllm" / "1.0.0" / "gemm_perf.parquet")
    assert {"int8", "int8_wo", "bf16"} <= set(tabs)
    # one byte per weight at twice the bf16 tensor rate: about half the bf16 GEMM at a 4,096 x 4,096 weight
    r = float(tabs["int8"](4096.0, 4096.0, 4096.0) / tabs["bf16"](4096.0, 4096.0, 4096.0))
    assert 0.4 < r < 0.7, r


def test_a_weight_only_int8_checkpoint_computes_in_16_bits():
    # W8A16 (compressed-tensors without input activations, the "-quantized.w8a16" ids) and GPTQ 8-bit run Machete /
    # Marlin kernels on 16-bit activations; W8A8 computes in int8. An explicit act_dtype still wins
    ids = ["neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w8a16", "Qwen/Qwen3-8B-GPTQ-Int8",
           "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8"]
    r = inference.estimate(ids, "H200", tp=1, batch_size=8, engine="vllm")
    assert list(r["weight_dtype"]) == ["int8"] * 3 and list(r["act_dtype"]) == ["bf16", "bf16", "int8"]
    r = inference.estimate(ids[0], "H200", act_dtype="int8", engine="vllm")
    assert r["act_dtype"].iloc[0] == "int8"
    # the same model's own bf16 weights are unaffected
    assert inference.estimate(ids[0], "H200", weight_dtype="bf16")["act_dtype"].iloc[0] == "bf16"


def test_compressed_tensors_int8_without_input_activations_is_weight_only():
    from objectives.catalog.quant import from_quantization_config
    w = {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True}
    w8a16 = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": w,
                                                                                 "input_activations": None}}}
    w8a8 = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": w, "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True}}}}
    assert from_quantization_config(w8a16)[:2] == ("int8", "int8_wo")
    assert from_quantization_config(w8a8)[:2] == ("int8", "int8_channel")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_weight_only_int8_checkpoint_deploys_without_a_quantization_flag(engine):
    # its default act_dtype is now bf16: (int8, bf16) is a deployable format, the engine reading the checkpoint's
    # own quantization config (no --quantization); a W8A8 plan on SGLang still names w8a8_int8
    from objectives import deploy
    w8a16 = "neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w8a16"
    wl = {"concurrency": 8, "input_len": 1024, "output_len": 128}
    d = deploy.commands({"gpu": "H100-SXM-80GB", "tp": 1, "weight_dtype": "int8", "act_dtype": "bf16"},
                        engine=engine, model=w8a16, workload=wl)
    assert "--quantization" not in d.servers[0].argv
    d = deploy.commands({"gpu": "H100-SXM-80GB", "tp": 1, "weight_dtype": "int8", "act_dtype": "int8"},
                        engine=engine, model="RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8", workload=wl)
    assert ("w8a8_int8" in d.servers[0].argv) == (engine == "sglang")
