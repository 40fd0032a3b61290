"""Coverage of the families the silicon slice reserves for validation (Llama 3.1 / 3.3, Qwen3 dense and MoE,
DeepSeek V3 / R1, gpt-oss): synthetic rows in the silicon layout, with the formats serving_silicon.csv writes (model
ids, quantization labels, engine releases and images, agg and disagg pool columns), over H100 / H200 / B200 / B300 /
GB200, vLLM / SGLang / TensorRT-LLM, tp 1-8 with expert parallel and attention DP, concurrency 1-256, 1k-8k tokens.
The measured columns hold placeholders (random, so `distinct_measurements` keeps every row): these tests read,
predict and check the predictions against first principles; they score nothing."""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from objectives import catalog
from objectives.calibration import silicon
from objectives.calibration.calibrate import check
from objectives.calibration.measurements import (
    SILICON_REQUIRED,
    catalog_gpus,
    checkpoints,
    model_dtypes,
    read_measurements,
)
from objectives.catalog import model_math
from objectives.catalog.types import DTYPE_BYTES

#: (model id, precision, gemm_quant_mode, moe_quant_mode, MoE, tp sizes): the ids and labels the reserved families
#: ship under (meta-llama / Qwen / deepseek-ai / openai base ids, nvidia's FP8 and NVFP4 releases, Qwen's block-FP8
#: and 2507 releases); empty quant modes fall back to `precision`, as the slice's bf16 rows do
MODELS = (
    ("meta-llama/Llama-3.1-8B-Instruct", "bf16", "", "", False, (1, 2)),
    ("nvidia/Llama-3.1-8B-Instruct-FP8", "fp8", "fp8", "", False, (1,)),
    ("nvidia/Llama-3.1-8B-Instruct-FP4", "fp4", "nvfp4", "", False, (1,)),
    ("meta-llama/Llama-3.1-70B-Instruct", "bf16", "", "", False, (4, 8)),
    ("nvidia/Llama-3.1-70B-Instruct-FP8", "fp8", "fp8", "", False, (2, 4)),
    ("meta-llama/Llama-3.3-70B-Instruct", "bf16", "", "", False, (4, 8)),
    ("nvidia/Llama-3.3-70B-Instruct-FP8", "fp8", "fp8", "", False, (2, 4)),
    ("nvidia/Llama-3.3-70B-Instruct-FP4", "fp4", "nvfp4", "", False, (1, 2)),
    ("meta-llama/Llama-3.1-405B-Instruct-FP8", "fp8", "fp8", "", False, (8,)),
    ("nvidia/Llama-3.1-405B-Instruct-FP4", "fp4", "nvfp4", "", False, (4, 8)),
    ("Qwen/Qwen3-8B", "bf16", "", "", False, (1,)),
    ("Qwen/Qwen3-8B-FP8", "fp8", "fp8_block", "", False, (1,)),
    ("Qwen/Qwen3-14B", "bf16", "", "", False, (1, 2)),
    ("Qwen/Qwen3-14B-FP8", "fp8", "fp8_block", "", False, (1,)),
    ("Qwen/Qwen3-32B", "bf16", "", "", False, (2, 4)),
    ("Qwen/Qwen3-32B-FP8", "fp8", "fp8_block", "", False, (1, 2)),
    ("nvidia/Qwen3-32B-FP4", "fp4", "nvfp4", "", False, (1,)),
    ("Qwen/Qwen3-30B-A3B", "bf16", "", "", True, (1, 2)),
    ("Qwen/Qwen3-30B-A3B-FP8", "fp8", "fp8_block", "fp8_block", True, (1, 2)),
    ("Qwen/Qwen3-30B-A3B-Instruct-2507", "bf16", "", "", True, (2,)),
    ("Qwen/Qwen3-235B-A22B", "bf16", "", "", True, (8,)),
    ("Qwen/Qwen3-235B-A22B-FP8", "fp8", "fp8_block", "fp8_block", True, (4, 8)),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "fp8", "fp8_block", "fp8_block", True, (4, 8)),
    ("Qwen/Qwen3-235B-A22B-Thinking-2507-FP8", "fp8", "fp8_block", "fp8_block", True, (8,)),
    ("nvidia/Qwen3-235B-A22B-FP4", "fp4", "nvfp4", "nvfp4", True, (2, 4)),
    ("deepseek-ai/DeepSeek-V3", "fp8", "fp8_block", "fp8_block", True, (8,)),
    ("deepseek-ai/DeepSeek-R1", "fp8", "fp8_block", "fp8_block", True, (8,)),
    ("deepseek-ai/DeepSeek-R1-0528", "fp8", "fp8_block", "fp8_block", True, (8,)),
    ("deepseek-ai/DeepSeek-V3.1", "fp8", "fp8_block", "fp8_block", True, (8,)),
    ("nvidia/DeepSeek-R1-0528-FP4", "fp4", "nvfp4", "nvfp4", True, (4, 8)),
    ("nvidia/DeepSeek-V3.1-NVFP4", "fp4", "nvfp4", "nvfp4", True, (4, 8)),
    ("openai/gpt-oss-20b", "fp4", "", "w4a16_mxfp4", True, (1,)),
    ("openai/gpt-oss-120b", "fp4", "", "w4a16_mxfp4", True, (1, 2, 4)),
    ("openai/gpt-oss-120b", "fp4", "", "w4a8_mxfp4_mxfp8", True, (1, 2)),
)
ENGINES = ("vllm", "sglang", "trtllm")
#: releases older and newer than the shipped profiles, in the slice's spellings (rc / post / dev / nightly)
VERSIONS = {"vllm": ("0.8.5.post1", "0.10.1", "0.11.0", "0.12.0rc1", "0.19.0", "nightly-5b8c30d62b754b57"),
            "sglang": ("0.4.6.post5", "0.4.10", "0.5.0rc2", "0.5.3", "0.5.10.post1", "nightly-dev-20260402-d7256eb6"),
            "trtllm": ("0.20.0", "0.21.0rc2", "1.0.0", "1.1.0-dev.2", "1.2.0rc1", "1.2.0")}
IMAGES = {"vllm": "vllm/vllm-openai:v{v}", "sglang": "lmsysorg/sglang:v{v}-cu129-amd64",
          "trtllm": "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{v}"}
LENGTHS = ((1024, 1024), (8192, 1024), (1024, 8192), (4096, 2048))
CONCURRENCY = (1, 4, 16, 64, 256)
#: systems whose profiles the other silicon tests load too run by default; the rest with the slow tests
SYSTEMS = ("h200_sxm", "b200_sxm", pytest.param("h100_sxm", marks=pytest.mark.slow),
           pytest.param("b300_sxm", marks=pytest.mark.slow), pytest.param("gb200", marks=pytest.mark.slow))
#: what a refused row may say: a deployment that cannot load (memory) or a block-FP8 checkpoint the layout cannot tile
REFUSALS = ("does not fit", "block-FP8")


def _hopper(system: str) -> bool:
    return system.startswith("h")


def _runs_on(gq: str, mq: str, system: str) -> bool:
    """NVFP4 GEMMs and MXFP8 activations need Blackwell's FP4 / MX tensor cores; gpt-oss's w4a16 MXFP4 runs on both."""
    return not (_hopper(system) and (gq == "nvfp4" or mq == "w4a8_mxfp4_mxfp8"))


def _row(**kw) -> dict:
    r = dict.fromkeys(SILICON_REQUIRED, "")
    r.update(kw)
    return r


def grid(system: str) -> pd.DataFrame:
    """The synthetic rows of one system: every model x engine x layout (TP; for MoE also TP + EP and attention DP
    + EP, tp x attention DP = expert TP x EP as the slice writes it) over `CONCURRENCY`, and disaggregated 1P1D /
    2P1D pools of every third model."""
    out, k = [], 0
    for (mi, (mp, prec, gq, mq, moe, tps)), eng in itertools.product(enumerate(MODELS), ENGINES):
        if not _runs_on(gq, mq, system):
            continue
        for tp in tps:
            layouts = [(tp, 1, tp, 1)] + ([(tp, 1, 1, tp), (1, tp, 1, tp)] if moe and tp > 1 else [])
            for li, (t, adp, mtp, mep) in enumerate(layouts):
                k += 1
                v = VERSIONS[eng][(mi + k) % len(VERSIONS[eng])]
                isl, osl = LENGTHS[(mi + li + tp) % len(LENGTHS)]
                stem = mp.split("/")[-1].lower().replace("-", "_").replace(".", "_")
                for c in CONCURRENCY:
                    out.append(_row(
                        id=f"{stem}_{system.split('_')[0]}_{eng}_{prec}_agg_{isl}x{osl}_c{c}_cfg{k}",
                        silicon_data_source=(f"db-dump/2026-04-27; config_id={k}; silicon_concurrency={c}; "
                                             f"measured=2026-04-21T00:00:00.000Z; {IMAGES[eng].format(v=v)}"),
                        backend=eng, backend_version=v, model_path=mp, system=system, precision=prec, mode="agg",
                        isl=isl, osl=osl, gemm_quant_mode=gq, moe_quant_mode=mq, batch_size=max(c / adp, 1),
                        tp_size=t, pp_size=1, attention_dp_size=adp, moe_tp_size=mtp, moe_ep_size=mep))
    for (mp, prec, gq, mq, moe, tps), eng in itertools.product(MODELS[::3], ENGINES):
        if not _runs_on(gq, mq, system):
            continue
        k += 1
        tp, v, pw = max(tps), VERSIONS[eng][k % len(VERSIONS[eng])], 1 + k % 2
        isl, osl = LENGTHS[k % 2]
        stem = mp.split("/")[-1].lower().replace("-", "_").replace(".", "_")
        pool = {"tp_size": tp, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 1 if moe else tp,
                "moe_ep_size": tp if moe else 1}
        for c in (4, 32, 128):
            out.append(_row(
                id=f"{stem}_{system.split('_')[0]}_{eng}_{prec}_disagg_{isl}x{osl}_c{c}_cfg{k}",
                silicon_data_source=f"db-dump/2026-04-27; config_id={k}; silicon_concurrency={c}; "
                                    f"{IMAGES[eng].format(v=v)}",
                backend=eng, backend_version=v, model_path=mp, system=system, precision=prec, mode="disagg",
                isl=isl, osl=osl, gemm_quant_mode=gq, moe_quant_mode=mq, prefill_batch_size=1, prefill_num_workers=pw,
                decode_batch_size=min(c, 64), decode_num_workers=1,
                **{f"{x}_{f}": n for x in ("prefill", "decode") for f, n in pool.items()}))
    df = pd.DataFrame(out, columns=list(SILICON_REQUIRED))
    rng = np.random.default_rng(len(df))
    df["silicon_ttft_ms"] = rng.uniform(50.0, 5000.0, len(df))
    df["silicon_tpot_ms"] = rng.uniform(3.0, 100.0, len(df))
    return df


@functools.cache
def _predicted(system: str, tmp: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = Path(tmp) / f"silicon_{system}.csv"
    grid(system).to_csv(p, index=False)
    rows = read_measurements(p, layout="silicon")
    return rows, silicon.predict(rows)


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("coverage"))
    return lambda system: _predicted(system, tmp)


@pytest.mark.parametrize("name,params", [("Qwen/Qwen3-14B", 14.8e9)])
def test_added_config_matches_the_published_size(name, params):
    # Qwen3-14B's model card: 14.8B parameters (config.json: 40 layers, hidden 5120, FFN 17408, 40 / 8 heads)
    assert model_math.total_params(catalog.model(name)) == pytest.approx(params, rel=0.02)


@pytest.mark.parametrize("model", sorted({m[0] for m in MODELS}))
def test_every_reserved_id_resolves_to_its_checkpoint(model):
    m = catalog.model(model)
    scheme = next(q for mp, _, g, q, *_ in MODELS if mp == model) or next(g for mp, _, g, *_ in MODELS if mp == model)
    want = {"": "", "fp8": "fp8_per_tensor", "fp8_block": "fp8_block", "nvfp4": "nvfp4", "w4a16_mxfp4": "mxfp4",
            "w4a8_mxfp4_mxfp8": "mxfp4"}[scheme]
    # nvidia's FP8 releases are per-tensor (405B: meta's own FP8 release, per channel)
    assert m.quant_scheme == want or (want == "fp8_per_tensor" and m.quant_scheme == "fp8_per_channel")


@pytest.mark.parametrize("system", SYSTEMS)
def test_reserved_families_are_read_and_predicted(predicted, system):
    rows, pred = predicted(system)
    assert len(rows) == len(grid(system)) and silicon.usable(rows).all()
    assert (silicon.unpredictable(rows) == "").all(), set(silicon.unpredictable(rows))
    ok = np.isfinite(pred["ttft_pred"].to_numpy(float)) & np.isfinite(pred["tpot_pred"].to_numpy(float))
    # every row left out says why, and only because the deployment cannot load or tile
    why = pred.loc[~ok, "unfit_reason"].astype(str)
    assert why.map(lambda s: any(r in s for r in REFUSALS)).all(), why.value_counts().head()
    # a deployment whose weights alone fit the GPUs' memory (an FP8 DeepSeek does not fit 8 H100) is predicted
    moe = np.array([catalog.model(m).n_experts > 0 for m in rows["model"]])
    wd, _ = model_dtypes(rows, moe)
    total = np.array([model_math.total_params(catalog.model(m) if isinstance(m, str) else m)
                      for m in checkpoints(rows)])
    mem = np.array([catalog.gpu(g).mem_gb * 1e9 for g in catalog_gpus(rows["gpu"].to_numpy(object))])
    loads = total * np.array([DTYPE_BYTES[d] for d in wd]) < 0.9 * rows["n_gpus"].to_numpy(float) * mem
    assert ok[loads].mean() >= 0.95, pred.loc[loads & ~ok, "unfit_reason"].value_counts().head()
    if not _hopper(system):
        assert ok.all()


@pytest.mark.parametrize("system", SYSTEMS)
def test_predictions_respect_first_principles(predicted, system):
    rows, pred = predicted(system)
    d = rows.join(pred)
    d = d[np.isfinite(d["ttft_pred"]) & np.isfinite(d["tpot_pred"])]
    moe = np.array([catalog.model(m).n_experts > 0 for m in d["model"]])
    wd, _ = model_dtypes(d, moe)
    act = np.array([model_math.active_params(catalog.model(m) if isinstance(m, str) else m, input_embedding=False)
                    for m in checkpoints(d)])
    gpu = catalog.gpu(catalog_gpus([system])[0])
    n = d["n_gpus"].to_numpy(float)
    # one client: a decode step reads at least the active weights once over the GPUs' memory bandwidth, a prompt
    # at least 2 x active parameters x tokens FLOPs at the GPUs' highest peak
    tpot_floor = act * np.array([DTYPE_BYTES[x] for x in wd]) / (n * gpu.mem_bw_tbs * 1e12) * 1e3
    ttft_floor = 2.0 * act * d["isl"].to_numpy(float) / (n * max(gpu.peak_tflops.values()) * 1e12) * 1e3
    one = ((d["concurrency"] == 1) & (d["mode"] == "agg")).to_numpy()
    assert one.sum() > 50
    assert (d["tpot_pred"].to_numpy()[one] >= tpot_floor[one]).all()
    assert (d["ttft_pred"].to_numpy()[one] >= ttft_floor[one]).all()
    # more clients never make a request faster (5 % for the rounding of batches into waves)
    cfg = d["note"].str.extract(r"config_id=(\d+)", expand=False)
    for col in ("ttft_pred", "tpot_pred"):
        x = d.assign(cfg=cfg).sort_values("concurrency").groupby("cfg")[col]
        step = (x.transform(lambda s: s / s.shift(1))).dropna()
        assert (step >= 0.95).all(), d.loc[step[step < 0.95].index, ["model", "engine", "concurrency", col]]
    # the engines run one deployment at light load within a factor of each other: the same kernels, different
    # host paths and schedulers (TTFT wider: SGLang's and vLLM's admission differ once a request's KV is large)
    light = d[(d["mode"] == "agg") & (d["concurrency"] <= 4)]
    key = ["model", "tp", "attn_dp", "moe_ep", "isl", "osl", "concurrency"]
    g = light.groupby(key)
    spread = pd.DataFrame({"n": g["engine"].nunique(), "tpot": g["tpot_pred"].max() / g["tpot_pred"].min(),
                           "ttft": g["ttft_pred"].max() / g["ttft_pred"].min()})
    spread = spread[spread["n"] > 1]
    assert len(spread) > 20
    assert (spread["tpot"] <= 2.0).all(), spread.sort_values("tpot").tail()
    assert (spread["ttft"] <= 4.0).all(), spread.sort_values("ttft").tail()


def test_the_simulator_replays_a_sample(predicted):
    rows, pred = predicted("h200_sxm")
    ok = np.isfinite(pred["tpot_pred"].to_numpy(float))
    agg, dis = (rows["mode"] == "agg").to_numpy(), (rows["mode"] == "disagg").to_numpy()
    sample = pd.concat([rows[ok & agg & (rows["concurrency"] <= 16).to_numpy()].iloc[::97], rows[ok & dis].iloc[::11]])
    for replay in (silicon.simulated, silicon.simulated_disagg):
        s = replay(sample, requests_per_client=2)
        assert len(s) >= 4 and np.isfinite(s["ttft_pred"]).all() and np.isfinite(s["tpot_pred"]).all()
        # the simulator's decode step is the closed form's within 25 % (its TTFT adds the start-up wave)
        r = s["tpot_pred"] / pred.loc[s.index, "tpot_pred"]
        assert r.between(0.75, 1.25).all(), r.describe()


def test_dse_calibrate_check_counts_the_grid(tmp_path):
    p = tmp_path / "grid.csv"
    g = grid("b200_sxm")
    g.iloc[::7].to_csv(p, index=False)
    text, d = check([p])
    assert len(d) == len(g.iloc[::7]) and (d["not_predicted"] == "").all()
    assert "predicted (100.0 %)" in text
