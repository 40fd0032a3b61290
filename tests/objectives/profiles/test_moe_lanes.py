"""Which kernel-table rows the profile builder keeps: the fused-MoE kernel an engine runs by default
(`MOE_OPT_IN`), a family's skewed rows where they cannot be the skewed draw (`_skew_carried`), and a GEMM or MoE
cell bounded by the same kernel's cell on a system of the same silicon (`_twin_bounded`)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives.profiles.build import (
    MOE_CELL,
    MOE_OPT_IN,
    SKEW_EP1_LIMIT,
    TWIN_SLACK,
    _skew_carried,
    _twin_bounded,
    moe_tables,
)

PL, BAL = "power_law_1.01", "balanced"
T = np.array([1.0, 4.0, 64.0, 1024.0, 16384.0])


def _family(h: int, f: int, lat: dict[tuple[int, str], float], kernel: str = "moe_torch_flow_cutlass",
            tp: int = 1, topk: int = 8, experts: int = 256) -> pd.DataFrame:
    """One fused-MoE family (NVFP4) at the EP sizes and routings of `lat`: latency = lat[(ep, dist)] x sqrt(T)."""
    return pd.concat([pd.DataFrame({"moe_dtype": "nvfp4", "kernel_source": kernel, "hidden_size": h,
                                    "inter_size": f, "topk": topk, "num_experts": experts, "moe_tp_size": tp,
                                    "moe_ep_size": ep, "num_tokens": T, "distribution": dist,
                                    "latency": v * np.sqrt(T)})
                      for (ep, dist), v in lat.items()], ignore_index=True)


def _at(tables: dict, key: tuple, tokens: float = 64.0) -> float:
    table, keys = tables["nvfp4"]
    i = [n + 1.0 for n, k in enumerate(keys) if tuple(int(x) for x in k) == key]
    assert len(i) == 1, (key, keys)
    return float(table(i[0], tokens))


def test_tensorrt_llms_min_latency_rows_are_not_its_default_kernel():
    # the same cells timed by CUTLASS and by TRTLLM-gen (min-latency mode, 2x faster): TensorRT-LLM's serving
    # default for an NVFP4 checkpoint is CUTLASS, so its table keeps those rows; another engine keeps the fastest
    cutlass = _family(7168, 2048, {(1, PL): 1.0, (8, PL): 0.5})
    fast = _family(7168, 2048, {(1, PL): 0.5, (8, PL): 0.25}, kernel="moe_torch_flow_min_latency")
    rows = pd.concat([cutlass, fast], ignore_index=True)
    assert "moe_torch_flow_min_latency" in MOE_OPT_IN["trtllm"]
    trt, other = moe_tables([rows], engine="trtllm"), moe_tables([rows], engine="")
    assert _at(trt, (7168, 2048, 8, 256, 1, 1)) == pytest.approx(8.0)
    assert _at(trt, (7168, 2048, 8, 256, 1, 8)) == pytest.approx(4.0)
    assert _at(other, (7168, 2048, 8, 256, 1, 1)) == pytest.approx(4.0)
    # a table of min-latency rows only leaves TensorRT-LLM no NVFP4 table rather than a wrong one
    assert "nvfp4" not in moe_tables([fast], engine="trtllm")


def _ranked(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(_rank=df["distribution"].map({PL: 0, BAL: 1}))


def _lat(out: pd.DataFrame, h: int, ep: int, dist: str, tp: int = 1, tokens: float = 1024.0) -> float:
    r = out[(out["hidden_size"] == h) & (out["moe_ep_size"] == ep) & (out["distribution"] == dist)
            & (out["moe_tp_size"] == tp) & (out["num_tokens"] == tokens)]
    assert len(r) == 1, (h, ep, dist, tp, len(r))
    return float(r["latency"].iloc[0]) / np.sqrt(tokens)


def test_skewed_rows_slower_than_balanced_ones_at_ep_1_are_carried_from_a_sane_family():
    # at EP 1 the skewed draw does the balanced one's work: DeepSeek-like skewed rows at 1.8x are something else
    bad = pd.concat([_family(7168, 2048, {(1, PL): 1.8, (1, BAL): 1.0, (8, PL): 0.9, (8, BAL): 0.3}),
                     _family(7168, 2048, {(1, PL): 2.0, (1, BAL): 1.0}, tp=4)], ignore_index=True)
    sane = _family(6144, 2048, {(1, PL): 0.8, (1, BAL): 0.9, (8, PL): 0.2, (8, BAL): 0.15})
    far = _family(2048, 512, {(1, PL): 0.1, (1, BAL): 0.1, (8, PL): 0.09, (8, BAL): 0.03})
    out = _skew_carried(_ranked(pd.concat([bad, sane, far], ignore_index=True)))
    assert SKEW_EP1_LIMIT < 1.8
    # skewed = own balanced x the nearest sane family's skewed / balanced, at each EP; the sane families untouched
    assert _lat(out, 7168, 1, PL) == pytest.approx(1.0 * 0.8 / 0.9)
    assert _lat(out, 7168, 8, PL) == pytest.approx(0.3 * 0.2 / 0.15)
    assert _lat(out, 7168, 8, BAL) == pytest.approx(0.3) and _lat(out, 6144, 8, PL) == pytest.approx(0.2)
    # with expert TP there is no sane curve to carry: its balanced rows stand alone
    assert _lat(out, 7168, 1, BAL, tp=4) == pytest.approx(1.0)
    assert out[(out["moe_tp_size"] == 4) & (out["distribution"] == PL)].empty
    # without a sane family of the same top-k and expert count, the balanced rows stand alone everywhere
    lone = _skew_carried(_ranked(_family(5120, 8192, {(1, PL): 6.0, (1, BAL): 1.0, (2, PL): 3.0, (2, BAL): 0.6},
                                         topk=1, experts=16)))
    assert set(lone["distribution"]) == {BAL}
    # a table whose families all pass is returned as it was
    ok = _ranked(pd.concat([sane, far], ignore_index=True))
    assert _skew_carried(ok).equals(ok)


def test_a_cell_far_slower_than_the_same_silicons_twin_is_bounded_by_it():
    twin = _family(7168, 2048, {(1, PL): 1.0, (8, PL): 0.5})
    own = twin.assign(latency=twin["latency"] * 1.05)              # the tables' median ratio: 1.05
    slow = (own["moe_ep_size"] == 8) & (own["num_tokens"] == 64.0)
    own.loc[slow, "latency"] *= 1.7                                # one outlier cell
    mild = (own["moe_ep_size"] == 1) & (own["num_tokens"] == 4.0)
    own.loc[mild, "latency"] *= 1.08                               # within the slack: kept
    out = _twin_bounded(own, twin, MOE_CELL)
    cap = float(twin.loc[slow, "latency"].iloc[0]) * 1.05 * TWIN_SLACK
    assert float(out.loc[slow, "latency"].iloc[0]) == pytest.approx(cap)
    assert out.loc[~slow, "latency"].equals(own.loc[~slow, "latency"])
    # cells the twin did not time, and a twin with no common cell, leave the table as it was
    other = _family(6144, 2048, {(1, PL): 3.0})
    both = pd.concat([own, other], ignore_index=True)
    assert (_twin_bounded(both, twin, MOE_CELL)["latency"].to_numpy()[len(own):] == other["latency"].to_numpy()).all()
    assert _twin_bounded(other, twin, MOE_CELL).equals(other)


def test_shipped_b200_and_gb200_tensorrt_llm_tables_agree_on_deepseeks_layer():
    # the same kernel (CUTLASS, NVFP4) on the same silicon: B200's DeepSeek-V3-shaped layer at expert TP 4 and EP 1
    # / 8 within the twins' slack of GB200's, where its raw collection reads up to 1.8x (docs/profiles.md)
    from objectives import profiles
    b200, gb200 = profiles.load("B200", "trtllm"), profiles.load("GB200", "trtllm")
    tokens = 2.0 ** np.arange(0, 15)
    for shape in ((7168, 2048, 8, 256, 1, 1), (7168, 2048, 8, 256, 1, 8), (7168, 2048, 8, 256, 4, 1)):
        k = np.array([shape], dtype=float)
        a, b = (p.table("moe.nvfp4")(np.full_like(tokens, p.shape_index("moe.nvfp4", k)[0]), tokens)
                for p in (b200, gb200))
        assert (a <= b * 1.06 * TWIN_SLACK).all() and (a >= b * 0.85).all(), (shape, a / b)


def test_a_gemm_cell_far_slower_than_its_twin_systems_is_bounded(tmp_path):
    # B200's and GB200's tables of one engine version time the same GEMMs; one B200 cell at 1.6x is a slow
    # collection (in the shipped SGLang tables B200's torch-linear cells that far above GB200's run 1.22x B200's
    # TensorRT-LLM ones): the profile reads it at most TWIN_SLACK x the twin's x the tables' median ratio
    from objectives.profiles.build import gemm_tables
    cells = [(m, n, k) for m in (8, 16, 32, 64) for n in (1024, 2048) for k in (1024, 2048)]
    lat = np.array([0.01 * (1 + m / 64) * n * k / 2**20 for m, n, k in cells])

    def table(path, v):
        pd.DataFrame({"gemm_dtype": "bfloat16", "m": [c[0] for c in cells], "n": [c[1] for c in cells],
                      "k": [c[2] for c in cells], "latency": v}).to_parquet(path)
    own = lat * 1.04
    own[cells.index((64, 2048, 2048))] *= 1.6
    table(tmp_path / "own.parquet", own)
    table(tmp_path / "twin.parquet", lat)
    alone = gemm_tables(tmp_path / "own.parquet")["bf16"]
    bounded = gemm_tables(tmp_path / "own.parquet", twin=tmp_path / "twin.parquet")["bf16"]
    base = 0.01 * (1 + 64 / 64) * 4
    assert float(alone(64.0, 2048.0, 2048.0)) == pytest.approx(base * 1.04 * 1.6)
    assert float(bounded(64.0, 2048.0, 2048.0)) == pytest.approx(base * 1.04 * TWIN_SLACK)
    assert float(bounded(16.0, 1024.0, 2048.0)) == pytest.approx(float(alone(16.0, 1024.0, 2048.0)))


def test_a_bf16_gemm_cell_far_slower_than_the_other_engines_same_kernel_is_bounded(tmp_path):
    # every engine runs bf16 GEMMs through torch's linear: another engine's table on the same GPU times the same
    # kernel (SHARED_GEMM_DTYPES); an fp8 cell, where the engines' kernels differ, stays as measured
    from objectives.profiles.build import SHARED_GEMM_DTYPES, gemm_tables
    cells = [(m, n, k) for m in (8, 16, 32, 64) for n in (1024, 2048) for k in (1024, 2048)]
    lat = np.array([0.01 * (1 + m / 64) * n * k / 2**20 for m, n, k in cells])

    def frame(v: np.ndarray) -> pd.DataFrame:
        return pd.concat([pd.DataFrame({"gemm_dtype": dt, "m": [c[0] for c in cells], "n": [c[1] for c in cells],
                                        "k": [c[2] for c in cells], "latency": v}) for dt in ("bfloat16", "fp8")])
    slow = lat.copy()
    slow[cells.index((64, 2048, 2048))] *= 1.6
    frame(slow).to_parquet(tmp_path / "own.parquet")
    frame(lat).to_parquet(tmp_path / "peer.parquet")
    out = gemm_tables(tmp_path / "own.parquet", peers=[tmp_path / "peer.parquet"])
    assert SHARED_GEMM_DTYPES == ("bfloat16",)
    assert float(out["bf16"](64.0, 2048.0, 2048.0)) == pytest.approx(0.08 * TWIN_SLACK)
    assert float(out["fp8"](64.0, 2048.0, 2048.0)) == pytest.approx(0.08 * 1.6)


def test_a_gemm_line_the_collector_stopped_early_goes_on_along_its_trend_in_m(tmp_path):
    """The collectors stop the largest (n, k) shapes one m short of the others (TensorRT-LLM's H100 fp8 table: 32,768
    x 65,536 x 16,384 not timed): the unmeasured cell went on at the last measured m's time (`fill_gaps`' edge), so
    its line fell along n (42 ms at n = 51,200, 25 ms at 65,536 in that table) and every lookup beyond m = 32,768 held
    it flat. Past a line's last measured m it follows its last cells' trend (`grid.extend_trend`: slope in [0, 1])."""
    from objectives.profiles.build import gemm_tables
    cells = [(m, n, k) for m in (1024, 2048, 4096) for n in (1024, 2048) for k in (1024, 2048)
             if not (m == 4096 and n == 2048)]
    frame = pd.DataFrame({"gemm_dtype": "bfloat16", "m": [c[0] for c in cells], "n": [c[1] for c in cells],
                          "k": [c[2] for c in cells],
                          "latency": [1e-6 * m * n * k / 2**20 for m, n, k in cells]})
    frame.to_parquet(tmp_path / "own.parquet")
    t = gemm_tables(tmp_path / "own.parquet")["bf16"]
    assert float(t(4096.0, 2048.0, 2048.0)) == pytest.approx(2.0 * float(t(2048.0, 2048.0, 2048.0)), rel=1e-6)
    assert float(t(4096.0, 2048.0, 1024.0)) >= float(t(4096.0, 1024.0, 1024.0))


def _fp8_block_rows(kernel: str, scale: float, tokens: np.ndarray = T, h: int = 2048,
                    f: int = 768) -> pd.DataFrame:
    """A Qwen3-30B-A3B-like block-FP8 family at EP 1 (power law): latency = scale x sqrt(tokens) ms."""
    return pd.DataFrame({"framework": "x", "moe_dtype": "fp8_block", "kernel_source": kernel, "hidden_size": h,
                         "inter_size": f, "topk": 8, "num_experts": 128, "moe_tp_size": 1, "moe_ep_size": 1,
                         "num_tokens": tokens, "distribution": PL, "latency": scale * np.sqrt(tokens)})


def _lane_table(root, system: str, engine: str, version: str, df: pd.DataFrame) -> None:
    d = root / system / "moe" / engine / version
    d.mkdir(parents=True)
    df.to_parquet(d / "moe_perf.parquet")


def test_tensorrt_llms_blackwell_block_fp8_moe_pools_the_trtllm_gen_lanes_with_deepgemm(tmp_path):
    """TensorRT-LLM serves block-FP8 MoE on SM100 with TRTLLM-gen (`resolve_moe_backend`), its own Blackwell lane
    timed DeepGEMM: the profile pools SGLang's and vLLM's TRTLLM-gen rows with DeepGEMM's, each cell the faster
    (TRTLLM-gen at decode sizes, DeepGEMM at large prefills, where the lanes ran the kernel untuned); a shape no lane
    timed keeps DeepGEMM's; Hopper and the other engines borrow nothing."""
    from objectives.profiles.build import BORROWED_MOE, borrowed_moe_rows, moe_rows, moe_tables_of
    assert ("trtllm", "fp8_block", "sglang") in BORROWED_MOE
    # DeepGEMM: slow at few tokens (its fixed cost), fast at many; TRTLLM-gen the other way round (crossing at 64)
    deepgemm = pd.concat([_fp8_block_rows("deepgemm", 0.065), _fp8_block_rows("deepgemm", 0.2, h=7168, f=2048)])
    trtllm_gen = 0.02 * np.sqrt(T) * np.where(T > 64, np.sqrt(T / 64), 1.0)
    sg = _fp8_block_rows("sglang_flashinfer_trtllm_moe", 1.0).assign(latency=trtllm_gen)
    vl = _fp8_block_rows("vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic", 1.0).assign(
        latency=trtllm_gen * 1.02)
    for system in ("b200_sxm", "h200_sxm"):
        _lane_table(tmp_path, system, "trtllm", "1.3.0rc20", deepgemm.assign(kernel_source="deepgemm"))
        _lane_table(tmp_path, system, "sglang", "0.5.14", sg)
        _lane_table(tmp_path, system, "vllm", "0.24.0", vl)
    pooled = borrowed_moe_rows(tmp_path, "b200_sxm", "trtllm", "pool")
    assert len(pooled) == 2 and {k for p in pooled for k in p["kernel_source"]} == {
        "sglang_flashinfer_trtllm_moe", "vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic"}
    own = tmp_path / "b200_sxm" / "moe" / "trtllm" / "1.3.0rc20" / "moe_perf.parquet"
    table, keys = moe_tables_of(moe_rows([own], "trtllm", pooled=pooled))["fp8_block"]
    at = {tuple(int(x) for x in k): i + 1.0 for i, k in enumerate(keys)}
    qwen = np.array([float(table(at[(2048, 768, 8, 128, 1, 1)], t)) for t in T])
    assert qwen == pytest.approx(np.minimum(trtllm_gen, 0.065 * np.sqrt(T)))
    assert qwen[0] == pytest.approx(0.02) and qwen[-1] == pytest.approx(0.065 * np.sqrt(T[-1]))
    # a wider family no lane timed: DeepGEMM's rows stand
    wide = np.array([float(table(at[(7168, 2048, 8, 128, 1, 1)], t)) for t in T])
    assert wide == pytest.approx(0.2 * np.sqrt(T))
    # without its own table the lanes' rows stand alone; Hopper, SGLang and vLLM borrow nothing
    alone, _ = moe_tables_of(moe_rows([], "trtllm", pooled=pooled))["fp8_block"]
    assert float(alone(1.0, 1.0)) == pytest.approx(0.02)
    assert borrowed_moe_rows(tmp_path, "h200_sxm", "trtllm", "pool") == []
    assert borrowed_moe_rows(tmp_path, "b200_sxm", "sglang", "pool") == []
    with pytest.raises(ValueError, match="valid shadow, fill, pool"):
        borrowed_moe_rows(tmp_path, "b200_sxm", "trtllm", "both")


@pytest.mark.parametrize("gpu", ["B200", "GB200"])
def test_block_fp8_moe_decodes_no_slower_than_bf16_under_tensorrt_llm_on_blackwell(gpu):
    """The shipped tables at Qwen3's shapes: TensorRT-LLM's block-FP8 MoE layer (its TRTLLM-gen serving kernel)
    at 1-64 tokens at most its bf16 layer (CUTLASS) and at most the DeepGEMM it timed (1.9x bf16 at one token for
    Qwen3-30B-A3B before); from 1k tokens it is DeepGEMM's or faster."""
    pytest.importorskip("aiconfigurator_core", reason="the profiles extra (aiconfigurator-core) is not installed")
    from objectives import profiles
    from objectives.profiles.build import aiconfigurator_root, moe_rows, moe_tables_of
    prof = profiles.load(gpu, "trtllm")
    system = {"B200": "b200_sxm", "GB200": "gb200"}[gpu]
    deepgemm, dkeys = moe_tables_of(moe_rows([aiconfigurator_root() / system / "moe" / "trtllm" / "1.3.0rc20"
                                              / "moe_perf.parquet"], "trtllm"))["fp8_block"]
    small, large = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 64.0]), np.array([1024.0, 4096.0, 8192.0])
    for shape in ((2048, 768, 8, 128, 1, 1), (4096, 1536, 8, 128, 1, 8), (4096, 1536, 8, 128, 4, 2)):
        k = np.array([shape], dtype=float)
        fp8, bf16 = (prof.table(f"moe.{f}")(np.full(len(small), prof.shape_index(f"moe.{f}", k)[0]), small)
                     for f in ("fp8_block", "bfloat16"))
        i = [n + 1.0 for n, kk in enumerate(dkeys) if tuple(int(x) for x in kk) == shape][0]
        assert (fp8 <= bf16).all(), (shape, fp8 / bf16)
        assert (fp8 <= deepgemm(np.full(len(small), i), small) * (1 + 1e-9)).all()
        big = prof.table("moe.fp8_block")(np.full(len(large), prof.shape_index("moe.fp8_block", k)[0]), large)
        assert (big <= deepgemm(np.full(len(large), i), large) * (1 + 1e-9)).all()
