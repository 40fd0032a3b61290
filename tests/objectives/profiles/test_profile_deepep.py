"""DeepEP dispatch / combine tables (issue 13, item 4): built in ms, looked up at the model's shape, used by wide-EP
MoE layers inside one node, and not beyond it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles
from objectives.inference import measured
from objectives.profiles.build import aiconfigurator_root, deepep_tables
from objectives.profiles.grid import Table

NAMES = [f"comm.deepep_{k}_{op}" for k in ("ll", "normal") for op in ("dispatch", "combine")]


def _raw_root(tmp_path):
    """A kernel-table folder with tiny DeepEP tables (times in µs, as aiconfigurator-core writes them)."""
    d = tmp_path / "b200_sxm" / "comm" / "sglang" / "0.5.12"
    d.mkdir(parents=True)
    ll, normal = [], []
    for h, k, e in ((4096, 8, 128), (7168, 8, 256)):
        for n in (1, 8, 64, 128, 1024):
            ll.append(dict(node_num=1, hidden_size=h, num_token=n, num_topk=k, num_experts=e,
                           dispatch_avg_t_us=10.0 + n * h / 7168, combine_avg_t_us=20.0 + n * h / 7168))
            # a 2-node row must not enter the one-node table
            ll.append(dict(node_num=2, hidden_size=h, num_token=n, num_topk=k, num_experts=e,
                           dispatch_avg_t_us=999.0, combine_avg_t_us=999.0))
            for sms, slow in ((8, 2.0), (24, 1.0)):  # the fastest SM setting per cell is kept
                normal.append(dict(node_num=1, hidden_size=h, num_token=n, num_topk=k, num_experts=e,
                                   dispatch_sms=sms, dispatch_transmit_us=slow * (30.0 + n),
                                   combine_sms=sms, combine_transmit_us=slow * (40.0 + n)))
    pd.DataFrame(ll).to_parquet(d / "wideep_deepep_ll_perf.parquet")
    pd.DataFrame(normal).to_parquet(d / "wideep_deepep_normal_perf.parquet")
    return tmp_path


def test_deepep_tables_are_built_in_ms_keyed_by_shape_fastest_sm_setting(tmp_path):
    out = deepep_tables(_raw_root(tmp_path), "b200_sxm", "vllm", "0.24.0")
    assert sorted(out) == sorted(n.split(".", 1)[1] for n in NAMES)
    t, keys = out["deepep_ll_dispatch"]
    assert keys.tolist() == [[4096, 8, 128], [7168, 8, 256]]
    assert float(t(2.0, 128.0)) == pytest.approx((10.0 + 128) * 1e-3, rel=1e-9)   # µs -> ms, one node only
    assert float(t(1.0, 64.0)) == pytest.approx((10.0 + 64 * 4096 / 7168) * 1e-3, rel=1e-9)
    tn, _ = out["deepep_normal_combine"]
    assert float(tn(2.0, 8.0)) == pytest.approx((40.0 + 8) * 1e-3, rel=1e-9)      # 24 SMs, not 8


def test_shipped_profiles_carry_the_deepep_tables_and_return_the_measured_value():
    for gpu in ("H100-SXM-80GB", "H200-SXM-141GB", "B200", "GB200"):
        for eng in ("vllm", "sglang", "trtllm"):
            p = profiles.load(gpu, eng, full=False)
            assert all(p.table(n) is not None for n in NAMES), (gpu, eng)
    p = profiles.load("B200", "vllm", full=False)
    row = p.shape_index("comm.deepep_ll_dispatch", np.array([[7168, 8, 256]]))[0]
    assert row > 0
    # aiconfigurator-core 0.12.0, b200_sxm sglang 0.5.12 wideep_deepep_ll_perf: 7168 / top-8 / 256, 128 tokens
    assert float(p.table("comm.deepep_ll_dispatch")(float(row), 128.0)) == pytest.approx(0.032951, rel=1e-5)
    root = aiconfigurator_root()
    if root is None:
        pytest.skip("the profiles extra (aiconfigurator-core) is not installed")
    raw = pd.read_parquet(root / "b200_sxm" / "comm" / "sglang" / "0.5.12"
                          / "wideep_deepep_normal_perf.parquet")
    cell = raw[(raw.hidden_size == 7168) & (raw.num_topk == 8) & (raw.num_experts == 256) & (raw.num_token == 4096)]
    row = p.shape_index("comm.deepep_normal_combine", np.array([[7168, 8, 256]]))[0]
    assert float(p.table("comm.deepep_normal_combine")(float(row), 4096.0)) == pytest.approx(
        cell["combine_transmit_us"].min() * 1e-3, rel=1e-5)


def test_an_unmeasured_hidden_size_interpolates_between_measured_shapes():
    p = profiles.load("B200", "vllm", full=False)
    # MiniMax-M2.5 (hidden 3072, top-8 of 256) has no low-latency row: between hidden 2048 and 4096
    lo, hi, w = measured._keyed_hidden(p, "comm.deepep_ll_dispatch", np.array([3072.0, 7168.0, 3072.0]),
                                       np.array([8.0, 8.0, 8.0]), np.array([256.0, 256.0, 255.0]))
    keys = p.keys["comm.deepep_ll_dispatch"]
    assert keys[lo[0] - 1, 0] == 2048 and keys[hi[0] - 1, 0] == 4096 and 0 < w[0] < 1
    assert lo[1] == hi[1] > 0 and w[1] == 0           # an exact shape
    assert lo[2] == 0                                 # no measured (top-k, experts): no DeepEP


def _scaled(factor: float, names: tuple[str, ...] | list[str] = tuple(NAMES)):
    """profiles.load whose tables `names` (default: the DeepEP ones) take `factor` x as long, where it has them."""
    real = profiles.load

    def load(gpu, engine, version=None, full=None):
        p = real(gpu, engine, version, full)
        if p is None:
            return p
        tables = dict(p.tables)
        for n in names:
            if (t := tables.get(n)) is not None:
                tables[n] = Table(t.names, t.axes, t.log_ms + np.log(factor), t.covered)
        return dataclasses.replace(p, tables=tables)
    return load


KW = dict(model="moonshotai/Kimi-K2.5", gpu="B200", weight_dtype="fp4", input_len=2048, output_len=256,
          batch_size=np.array([8, 64]), engine="vllm")


def test_ep8_attention_dp_step_prices_dispatch_and_combine_from_deepep(monkeypatch):
    """A DeepEP deployment (moe_a2a "deepep") reads the tables; vLLM's default launch (all-gather +
    reduce-scatter: "auto") does not."""
    base = inference.estimate(**KW, tp=1, attn_dp=8, ep=8, moe_a2a="deepep")
    auto = inference.estimate(**KW, tp=1, attn_dp=8, ep=8)
    monkeypatch.setattr(profiles, "load", _scaled(10.0))
    slow = inference.estimate(**KW, tp=1, attn_dp=8, ep=8, moe_a2a="deepep")
    # 61 layers x (dispatch + combine) at ~8-64 tokens per rank: tens of µs each, x10
    assert np.all(slow["tpot_ms"].to_numpy() > base["tpot_ms"].to_numpy() + 5.0)
    assert np.all(slow["ttft_ms"].to_numpy() > base["ttft_ms"].to_numpy())
    same = inference.estimate(**KW, tp=1, attn_dp=8, ep=8)
    np.testing.assert_array_equal(same["tpot_ms"].to_numpy(), auto["tpot_ms"].to_numpy())


def test_ep_beyond_one_node_keeps_the_nccl_path(monkeypatch):
    kw = dict(KW, tp=4, attn_dp=4, ep=16)
    base = inference.estimate(**kw)
    monkeypatch.setattr(profiles, "load", _scaled(10.0))
    same = inference.estimate(**kw)
    assert np.allclose(same["tpot_ms"].to_numpy(), base["tpot_ms"].to_numpy())
    assert np.allclose(same["ttft_ms"].to_numpy(), base["ttft_ms"].to_numpy())
    # and EP inside the TP group needs no all-to-all at all
    kw8 = dict(KW, tp=8, attn_dp=1, ep=8)
    monkeypatch.setattr(profiles, "load", _scaled(1.0))
    a = inference.estimate(**kw8)
    monkeypatch.setattr(profiles, "load", _scaled(10.0))
    assert np.allclose(inference.estimate(**kw8)["tpot_ms"].to_numpy(), a["tpot_ms"].to_numpy())
