"""Weight-only GEMMs (W4A16 / W8A16) priced with their dequantization, and the quantized tables' small-M bound
(objectives.inference.measured: `QUANT_COMPUTE`, `weight_only_rate`, `QUANT_TABLE_CAP`)."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference, profiles
from objectives.inference import measured

LLAMA70 = "Llama-3.1-70B"


def _est(gpu: str, engine: str, weight_dtype: str, act_dtype: str | None = None, tp: int = 8, batch_size: int = 8,
         input_len: int = 2048) -> tuple[float, float]:
    r = inference.estimate(LLAMA70, gpu, tp=tp, engine=engine, weight_dtype=weight_dtype, act_dtype=act_dtype,
                           kv_dtype="bf16", batch_size=batch_size, input_len=input_len, output_len=256)
    return float(r["ttft_ms"].iloc[0]), float(r["tpot_ms"].iloc[0])


def _compute_ratio(table: str) -> float:
    """The median compute part (beyond M = 1) of A100 TensorRT-LLM's `table` over its bf16 table's, M 2,048-8,192,
    N and K 1,024-32,768: how `QUANT_COMPUTE` was fitted."""
    p = profiles.load("A100-SXM-80GB", "trtllm")
    t, b = p.table(table), p.table("gemm.bf16")
    n = np.array([x for x in t.axes[1] if 1024 <= x <= 32768])
    k = np.array([x for x in t.axes[2] if 1024 <= x <= 32768])
    M, N, K = np.broadcast_arrays(np.array([2048.0, 4096.0, 8192.0])[:, None, None], n[None, :, None],
                                  k[None, None, :])
    one = np.ones_like(M)
    return float(np.median((t(M, N, K) - t(one, N, K)) / (b(M, N, K) - b(one, N, K))))


@pytest.mark.parametrize(("table", "key"), [("gemm.int4_wo", "4bit"), ("gemm.int8_wo", "8bit"),
                                            ("gemm.int8", "int8")])
def test_the_quantized_compute_factors_are_the_a100_tables_medians(table, key):
    assert measured.QUANT_COMPUTE[key] == pytest.approx(_compute_ratio(table), abs=0.01)
    assert table in measured.QUANT_TABLE_CAP


def test_weight_only_rate_by_bits_per_weight():
    assert measured.weight_only_rate("int4") == measured.weight_only_rate("fp4") == measured.QUANT_COMPUTE["4bit"]
    assert measured.weight_only_rate("int8") == measured.weight_only_rate("fp8") == measured.QUANT_COMPUTE["8bit"]
    assert measured.weight_only_rate("bf16") == 1.0
    assert measured.QUANT_COMPUTE["4bit"] > measured.QUANT_COMPUTE["8bit"] > 1.0  # more conversions per byte


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_borrowed_weight_only_gemm_pays_its_dequantization_in_prefill(engine, monkeypatch):
    # H100 has no weight-only GEMM table: W4A16 / W8A16 read the bf16 table at packed bytes. A 2,048-token prefill
    # at batch 8 is compute-bound: the conversions make it slower than bf16's by about the factor's share, while the
    # decode step (memory-bound) keeps its packed-bytes gain
    bf16 = _est("H100-SXM-80GB", engine, "bf16")
    int4 = _est("H100-SXM-80GB", engine, "int4")
    w8a16 = _est("H100-SXM-80GB", engine, "int8", "bf16")
    assert bf16[0] < int4[0] < 1.09 * bf16[0], (bf16, int4)
    assert bf16[0] < w8a16[0] < int4[0], (bf16, w8a16, int4)
    assert int4[1] < w8a16[1] < bf16[1]
    # without the conversions' cost the prefill prices as bf16's (the old rule): the factor is what moved it
    monkeypatch.setitem(measured.QUANT_COMPUTE, "4bit", 1.0)
    free = _est("H100-SXM-80GB", engine, "int4")
    assert free[0] < int4[0] and free[0] == pytest.approx(bf16[0], rel=0.01)
    assert free[1] == pytest.approx(int4[1], rel=0.02)


def test_a100_tensorrt_llm_quantized_gemms_are_bounded_by_bf16_at_packed_bytes(monkeypatch):
    # Llama-3.1-70B at TP 8, batch 8: the TP slices (1,280 x 8,192 QKV, 8,192 x 1,024 output, 3,584 x 8,192
    # gate / up, 8,192 x 3,584 down) sit on the int4 / int8 tables' small-M floor (~25 us at K = 8,192, bf16's
    # 16-19 us). Bounded by the bf16 table at packed bytes, int4 streams a quarter of bf16's bytes and decodes at
    # about vLLM's pace on the same GPU (the bf16 table at packed bytes there too); before, 0.78 of bf16
    bf16 = _est("A100-SXM-80GB", "trtllm", "bf16")
    int4 = _est("A100-SXM-80GB", "trtllm", "int4")
    w8a8 = _est("A100-SXM-80GB", "trtllm", "int8")
    w8a16 = _est("A100-SXM-80GB", "trtllm", "int8", "bf16")
    assert int4[1] < 0.55 * bf16[1], (bf16, int4)
    assert int4[1] < w8a16[1] < 0.7 * bf16[1] and w8a8[1] < 0.7 * bf16[1], (bf16, w8a8, w8a16)
    vllm_int4 = _est("A100-SXM-80GB", "vllm", "int4")
    assert 0.8 < int4[1] / vllm_int4[1] < 1.1, (int4, vllm_int4)
    # the bound is what moved them: without it the tables' floor prices int4 well above
    monkeypatch.setattr(measured, "QUANT_TABLE_CAP", ())
    floor = _est("A100-SXM-80GB", "trtllm", "int4")
    assert floor[1] > 1.3 * int4[1], (floor, int4)
    # at large M the bound and the tables agree: the 2,048-token prefill moves little
    assert floor[0] == pytest.approx(int4[0], rel=0.05)
