"""SGLang's DeepEP MoE runner (`wideep_{generation,context}_moe_perf`, issue 13): built into `moe_deepep_*` tables
keyed as the fused-MoE ones, carried to the families of the same format, top-k and expert count, and read by a
`moe_a2a="deepep"` SGLang deployment at its own EP size, the low-latency layout for decode and the normal one for
prefill."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles
from objectives.profiles.build import deepep_moe_rows, deepep_moe_tables, moe_rows
from tests.objectives.profiles.test_profile_deepep import _scaled

DS = (7168, 2048, 8, 256)
GLM = (6144, 2048, 8, 256)     # same format, top-k and experts, another hidden


def _runner_latency(tokens: float, ep: int, uniform: bool) -> float:
    return (0.1 + tokens / ep * 1e-3) * (0.8 if uniform else 1.0)


def _raw_root(tmp_path):
    """A kernel-table folder with tiny runner tables (DeepSeek's shape at EP 4 and 16, as aiconfigurator-core
    writes them: global tokens = tokens per rank x EP)."""
    d = tmp_path / "b200_sxm" / "moe" / "sglang" / "0.5.10"
    d.mkdir(parents=True)
    for fname, per_rank in (("wideep_generation_moe_perf.parquet", (1, 8, 64, 128)),
                            ("wideep_context_moe_perf.parquet", (16, 256, 4096))):
        rows = []
        for ep in (4, 16):
            for n in per_rank:
                for dist in ("power_law_1.01", "uniform", "power_law_0.8"):
                    rows.append(dict(moe_dtype="fp8_block", num_tokens=n * ep, hidden_size=DS[0], inter_size=DS[1],
                                     topk=DS[2], num_experts=DS[3], moe_tp_size=1, moe_ep_size=ep, distribution=dist,
                                     latency=_runner_latency(n * ep, ep, dist == "uniform")
                                     * (5.0 if dist == "power_law_0.8" else 1.0)))
        pd.DataFrame(rows).to_parquet(d / fname)
    return tmp_path


def _fused(scale_glm: float = 0.7, top: int = 65536) -> list[pd.DataFrame]:
    """Fused-MoE rows (`moe_rows`' layout) of both families at EP 1 up to `top` tokens: GLM's curve `scale_glm` x
    DeepSeek's."""
    rows = []
    for fam, s in ((DS, 1.0), (GLM, scale_glm)):
        for n in (x for x in (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536) if x <= top):
            for dist in ("power_law_1.01", "balanced"):
                rows.append(dict(moe_dtype="fp8_block", num_tokens=n, hidden_size=fam[0], inter_size=fam[1],
                                 topk=fam[2], num_experts=fam[3], moe_tp_size=1, moe_ep_size=1, distribution=dist,
                                 latency=s * (0.05 + n * 1e-3)))
    return moe_rows([pd.DataFrame(rows)], "sglang")


def test_runner_rows_come_from_sglangs_newest_version_up_to_the_profiles_and_rank_uniform_as_balanced(tmp_path):
    root = _raw_root(tmp_path)
    rows = deepep_moe_rows(root, "b200_sxm", "sglang", "0.5.14")
    assert sorted(rows) == ["ll", "normal"]
    ll = rows["ll"]
    assert sorted(ll["_rank"].unique().tolist()) == [0, 1]                 # power_law_0.8 dropped
    assert set(ll.loc[ll["_rank"] == 1, "distribution"]) == {"balanced"}
    assert deepep_moe_rows(root, "b200_sxm", "vllm", "0.24.0") == {}       # SGLang's runner only
    assert deepep_moe_rows(root, "b200_sxm", "sglang", "0.5.9") == {}      # no table up to that release


def test_runner_tables_hold_the_measured_cells_and_carry_same_expert_count_families_uncovered(tmp_path):
    out = deepep_moe_tables(deepep_moe_rows(_raw_root(tmp_path), "b200_sxm", "sglang", "0.5.14"), _fused())
    assert sorted(out) == [f"moe_deepep_{k}{s}.fp8_block" for k in ("ll", "normal") for s in ("", "_bal")]
    t, shapes = out["moe_deepep_ll.fp8_block"]
    assert shapes.tolist() == [[*GLM, 1, 4], [*GLM, 1, 16], [*DS, 1, 4], [*DS, 1, 16]]
    ds16 = 4.0                                     # (DS, EP 16): shape index 4
    assert float(t(ds16, 16 * 64.0)) == pytest.approx(_runner_latency(16 * 64, 16, False), rel=1e-9)
    # GLM at EP 16: its own EP 1 curve x DeepSeek's runner over DeepSeek's EP 1 curve (0.7 x the runner)
    assert float(t(2.0, 16 * 64.0)) == pytest.approx(0.7 * _runner_latency(16 * 64, 16, False), rel=1e-9)
    assert t.covered is not None and t.covered[2:].any(axis=1).all() and not t.covered[:2].any()
    # fused curves measured to 256 tokens only: the carried family's ratio is held beyond them, over all the
    # runner's cells (the prefill layout to 4,096 tokens a rank at EP 16)
    tn, _ = deepep_moe_tables(deepep_moe_rows(_raw_root(tmp_path / "short"), "b200_sxm", "sglang", "0.5.14"),
                              _fused(top=256))["moe_deepep_normal.fp8_block"]
    assert float(tn(2.0, 16 * 4096.0)) == pytest.approx(0.7 * _runner_latency(16 * 4096, 16, False), rel=1e-9)
    # the balanced layer: the uniform draw, no slower than the skewed cell
    tb, shb = out["moe_deepep_ll_bal.fp8_block"]
    i = [s[:4] + s[-1:] for s in shb.tolist()].index([*DS, 16]) + 1
    assert float(tb(float(i), 16 * 64.0)) == pytest.approx(_runner_latency(16 * 64, 16, True), rel=1e-9)


def _runner_scaled(factor: float, kinds: tuple[str, ...]):
    """profiles.load whose runner tables of `kinds` ("ll", "normal") take `factor` x as long."""
    return _scaled(factor, [f"moe_deepep_{k}{s}.fp8_block" for k in kinds for s in ("", "_bal")])


def _parts(gpu: str = "H200-SXM-141GB", model: str = "DeepSeek-V3", engine: str = "sglang", moe_a2a: str = "deepep",
           batch: int = 8) -> pd.DataFrame:
    return inference.breakdown(model, gpu, tp=1, attn_dp=8, ep=8, weight_dtype="fp8", engine=engine,
                               batch_size=batch, input_len=2048, output_len=256, moe_a2a=moe_a2a).set_index("phase")


@pytest.fixture(scope="module")
def shipped():
    for gpu in ("H200-SXM-141GB", "B200"):
        p = profiles.load(gpu, "sglang")
        if p.table("moe_deepep_ll.fp8_block") is None:
            pytest.skip("the profile was built without the runner's tables")


def test_sglang_deepep_reads_the_low_latency_runner_for_decode_and_the_normal_one_for_prefill(monkeypatch, shipped):
    """DeepSeek-V3 fp8, attention DP 8 x EP 8 on H200: 8 sequences a rank decode (8 tokens per rank: low-latency
    layout), their 2k prompts prefill at 16k tokens per rank (normal layout). Scaling one layout's table moves the
    experts of that phase only; the engine's default launch and vLLM's DeepEP (no runner tables) do not move."""
    base, auto, vllm = _parts(), _parts(moe_a2a="auto"), _parts(engine="vllm")
    assert (base["source"] == "interpolated").all()          # its own EP size's measured cells
    for kinds, moved, kept in ((("ll",), "decode", "prefill"), (("normal",), "prefill", "decode")):
        monkeypatch.setattr(profiles, "load", _runner_scaled(3.0, kinds))
        slow = _parts()
        # x3 where the runner's cell prices the layer (less the launch floor CUDA graphs hide: a hair above); the
        # experts' weight-streaming floor (`t_mem`) holds part of the decode grid (the runner's 0.34 ms at EP 8
        # streams 32 experts at ~4.2 TB/s)
        assert 2.5 * base.loc[moved, "moe"] < slow.loc[moved, "moe"] <= 3.0 * base.loc[moved, "moe"] * 1.001
        assert slow.loc[kept, "moe"] == pytest.approx(base.loc[kept, "moe"], rel=1e-12)
        for ref, again in ((auto, _parts(moe_a2a="auto")), (vllm, _parts(engine="vllm"))):
            np.testing.assert_array_equal(again["total_ms"].to_numpy(), ref["total_ms"].to_numpy())
        monkeypatch.undo()


def test_an_ep_size_the_runner_lacks_and_a_carried_family_read_as_extrapolated(monkeypatch, shipped):
    """B200's runner tables have EP 4 and 16, not 8: EP 8 reads them at a neighbour (extrapolated), and moves with
    them; GLM-5's shape (hidden 6144, top-8 of 256) is carried from DeepSeek's and says so."""
    b200 = _parts("B200", batch=64)
    glm = _parts(model="GLM-5-FP8", batch=64)
    assert (b200["source"] == "extrapolated").all() and (glm["source"] == "extrapolated").all()
    monkeypatch.setattr(profiles, "load", _runner_scaled(3.0, ("ll",)))
    for ref, again in ((b200, _parts("B200", batch=64)), (glm, _parts(model="GLM-5-FP8", batch=64))):
        assert again.loc["decode", "moe"] > 2.0 * ref.loc["decode", "moe"]
