"""Wide expert parallelism inside one NVLink domain (GB200 NVL72): what grows with EP at a fixed batch per
attention-DP rank, and what must not.

Each attention-DP rank runs its own batch, so with ep = attn_dp GPUs the experts of every GPU see the tokens of
all ranks: the routed experts' FLOPs per GPU stay those of one rank's tokens through the full experts, whatever
the EP size. The all-to-all of a rank moves its tokens' (ep - 1) / ep off the GPU over its own NVLink ports.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference
from objectives.inference import measured
from objectives.inference.core import default_eff
from objectives.profiles import profile as kprofile

MODEL, GPU = "DeepSeek-V3", "GB200"


def _parts(engine: str, eps: list[int], batch: int, phase: str, tp: int = 1, **kw) -> pd.DataFrame:
    """`breakdown`'s rows of DeepSeek-V3 fp8 on GB200 at tp x attn_dp = ep GPUs (attn_dp = ep / tp); `kw`: more
    `breakdown` arguments."""
    eps_a = np.asarray(eps)
    b = inference.breakdown(MODEL, GPU, tp=tp, ep=eps_a, attn_dp=eps_a // tp, weight_dtype="fp8",
                            batch_size=batch, input_len=1024, output_len=256, engine=engine, **kw)
    return b[b.phase == phase].reset_index(drop=True)


def test_roofline_experts_price_every_attention_dp_ranks_tokens() -> None:
    """Closed form: with ep = attn_dp, a GPU's routed experts do one rank's tokens' full expert FLOPs whatever
    the EP size (prefill, compute-bound), and eight attention-DP ranks of one 8-GPU EP group do 8x the expert
    work per GPU of one TP 8 rank with the same batch (8x the tokens on the same GPUs)."""
    b = _parts("roofline", [8, 16, 64], 64, "prefill")
    moe = b["moe"].to_numpy()
    assert moe[1] / moe[0] == pytest.approx(1.0, rel=0.05), moe
    assert moe[2] / moe[0] == pytest.approx(1.0, rel=0.05), moe
    tp8 = _parts("roofline", [8], 64, "prefill", tp=8)["moe"].to_numpy()[0]
    # the closed form's GEMMs at TP 8 run at 1 / (1 + tp_eff_loss log2 8) of TP 1's throughput
    tp_loss = 1.0 + float(default_eff()["tp_eff_loss"]) * 3.0
    assert moe[0] / tp8 == pytest.approx(8.0 / tp_loss, rel=0.05), (moe[0], tp8)


def test_roofline_experts_follow_the_busy_ranks() -> None:
    """`moe_dp`: only the busy ranks' tokens reach the experts, the closed form as the measured path."""
    full = inference.breakdown(MODEL, GPU, tp=1, ep=16, attn_dp=16, weight_dtype="fp8", batch_size=64,
                               input_len=1024, output_len=256, engine="roofline")
    half = inference.breakdown(MODEL, GPU, tp=1, ep=16, attn_dp=16, weight_dtype="fp8", batch_size=64,
                               input_len=1024, output_len=256, engine="roofline", moe_dp=8)
    f, h = (x[x.phase == "prefill"]["moe"].to_numpy()[0] for x in (full, half))
    assert h / f == pytest.approx(0.5, rel=0.05), (f, h)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_all_to_all_beyond_the_measured_ranks_follows_the_bytes_each_gpu_sends(engine: str) -> None:
    """GB200's NCCL all-to-all table stops at one 4-GPU tray; inside the 72-GPU NVLink domain a rank of a larger
    EP group sends (ep - 1) / ep of its routed tokens off the GPU over the same per-GPU NVLink bandwidth: the
    largest measured group's time scaled by that traffic ((n - 1) / n over (top - 1) / top), not held at 4 ranks
    and not grown with the rank count. Prefill (bandwidth-bound messages). A DeepEP deployment (moe_a2a "deepep":
    DeepEP's tables inside one tray, NCCL's all-to-all beyond); the engines' default launch gathers instead."""
    prof = kprofile.load(GPU, engine)
    assert prof is not None
    top = float(prof.table("comm.nccl_alltoall").axes[0][-1])
    assert top < 16  # the case under test: EP groups beyond the table's ranks
    eps = [16, 32, 64, 72]
    ep_ms = _parts(engine, eps, 64, "prefill", moe_a2a="deepep")["comm_ep"].to_numpy()
    traffic = np.array([(n - 1.0) / n / ((top - 1.0) / top) for n in eps])
    per_traffic = ep_ms / traffic
    # the scale-out stage stays out: every group fits the NVL72 domain
    assert np.allclose(per_traffic, per_traffic[0], rtol=0.02), (ep_ms, traffic)
    assert ep_ms[2] / ep_ms[0] == pytest.approx((63 / 64) / (15 / 16), rel=0.02)  # EP 64 over EP 16


def test_roofline_decode_streams_every_expert_the_ranks_together_touch() -> None:
    """Decode at 8 sequences per rank over 64 attention-DP ranks: 512 tokens at the experts touch all 256 of
    DeepSeek-V3's (untouched share (1 - 8 / 256)^512, ~1e-7), so every GPU streams all its experts' weights, as at
    64 sequences per rank; counting one rank's 8 tokens (~57 experts touched) under-priced it ~4x."""
    small, large = (_parts("roofline", [64], b, "decode")["moe"].to_numpy()[0] for b in (8, 64))
    assert small == pytest.approx(large, rel=0.05), (small, large)


@pytest.mark.parametrize("gpu", ["GB200", "GB300"])
def test_nvl72_deepep_tables_are_read_as_one_four_gpu_tray(gpu: str) -> None:
    """The DeepEP tables are measured inside one node (node_num 1): on GB200 / GB300 a 4-GPU compute tray
    (aiconfigurator-core's systems yaml, num_gpus_per_node 4; its vLLM / TensorRT-LLM DeepEP rows there say ep_size
    4), not 8 GPUs. EP 4 reads them at the rank's own tokens; EP 8 (two trays of the NVLink domain) sends
    (7 / 8) / (3 / 4) of that off each GPU."""
    prof = kprofile.load(gpu, "sglang")
    assert prof is not None and prof.table("comm.deepep_ll_dispatch") is not None
    tpr = np.repeat(measured.M_GRID[None, :], 2, axis=0)
    one = (lambda x: np.full(2, float(x)))
    t, rows, _ = measured._deepep(prof, tpr, np.array([4.0, 8.0]), one(7168), one(8), one(256), one(72),
                                  np.ones(2, dtype=bool))
    assert rows.all()
    ll = tpr[0] <= measured.DEEPEP_LL_MAX_TOKENS

    def direct(x: np.ndarray) -> np.ndarray:
        """The four kernels' seconds at `x` tokens per rank, read straight from DeepSeek's shape row."""
        out = np.zeros_like(x)
        for kind in ("ll", "normal"):
            for op in ("dispatch", "combine"):
                name = f"comm.deepep_{kind}_{op}"
                lo, hi, _ = measured._keyed_hidden(prof, name, one(7168)[:1], one(8)[:1], one(256)[:1])
                assert lo[0] > 0 and lo[0] == hi[0]  # DeepSeek's hidden is a measured shape
                v = prof.table(name)(np.full_like(x, float(lo[0])), x) * 1e-3
                out = out + np.where(ll if kind == "ll" else ~ll, v, 0.0)
        return out
    np.testing.assert_allclose(t[0], direct(tpr[0]), rtol=1e-9)
    np.testing.assert_allclose(t[1], direct(tpr[1] * (7.0 / 8.0) / (3.0 / 4.0)), rtol=1e-9)
