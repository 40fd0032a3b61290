"""Predicting calibration rows with the analytical model (no measured number ever enters a prediction)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from objectives import inference
from objectives.inference.core import default_eff
from objectives.inference.efficiency import Efficiency
from objectives.inference.estimate import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_NUM_TOKENS

from .data import release_index

STATIC_KINDS = ("static", "ttft", "latency", "ifb")

#: notes of the TensorRT-LLM perf-overview max-throughput tables (0.13 .. 1.2): `trtllm-bench build --dataset` /
#: `trtllm-bench throughput` picked max_batch_size and max_num_tokens with their tuning heuristic
BENCH_NOTE = "max-throughput scenario (trtllm-bench throughput"
#: kv_cache_gpu_mem_fraction of the heuristic (tensorrt_llm/bench/build/tuning.py calc_engine_setting default)
BENCH_KV_FRACTION = 0.95
#: the heuristic's caps: 4096 requests (decoder buffers), 32768 tokens (activation buffers) (tuning.py
#: finetune_setting)
BENCH_MAX_REQUESTS, BENCH_MAX_TOKENS = 4096.0, 32768.0
#: the engine whose measured kernel profile prices the rows of a tuned TensorRT-LLM build (`engine_profile`
#: "tuned": the 0.16 tuning guide's engines with the GEMM plugin, reduce fusion, multiple profiles and paged
#: context attention). Those flags switch on the kernels TensorRT-LLM's own tables time (cuBLASLt GEMMs, its
#: all-reduce kernel, paged context FMHA; `inference.measured`); the closed form's factors describe the
#: benchmark tables' trtllm-bench builds (multiple profiles and paged context FMHA only, tensorrt_llm/bench/build),
#: so only a factor fitted on the one source with tuned builds could carry the difference there
TUNED_BUILD_ENGINE = "trtllm"
#: the TensorRT-LLM release (`data.release_index`) the closed form's fitted factors describe: the published tables
#: of release r are predicted `release_speed_step` ** (r - REFERENCE_RELEASE) times as fast. 0.16 (December 2024)
#: lies within two releases of the fit rows' mean release (14.3), so the fitted level stays where the mixed tables
#: had put it
REFERENCE_RELEASE = 16.0
#: the first release on the trend (`data.release_index`): the published tables from 0.13 on are trtllm-bench's
#: max-throughput runs (in-flight batching), those of 0.5-0.9 gptSessionBenchmark's static batches, another harness
#: whose tables the trend fitted across both does not describe (held out, 0.6.1 and 0.9 got worse on one slope)
TREND_FIRST_RELEASE = 13.0


def mark_unknown(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose model or GPU the catalog does not know become kind 'excluded' (reason says which)."""
    from objectives import catalog

    df = df.copy()
    for col, fn in (("model", catalog.model), ("gpu", catalog.gpu)):
        known = {}
        for name in df[col].dropna().unique():
            try:
                fn(name)
                known[name] = True
            except Exception:  # noqa: BLE001 - any lookup failure means "not in the catalog"
                known[name] = False
        bad = df[col].map(known).fillna(False).to_numpy() == False  # noqa: E712
        m = bad & df["kind"].isin(STATIC_KINDS).to_numpy()
        df.loc[m, "why"] = f"{col} not in the catalog"
        df.loc[m, "kind"] = "excluded"
    return df


def _args(d: pd.DataFrame) -> dict:
    tp = d["tp"].fillna(1).to_numpy(float)
    pp = d["pp"].fillna(1).to_numpy(float)
    n = d["n_gpus"].fillna(1).to_numpy(float)
    return dict(model=d["model"].to_numpy(object), gpu=d["gpu"].to_numpy(object), tp=tp, pp=pp,
                weight_dtype=d["weight_dtype"].to_numpy(object),
                act_dtype=np.array([None if pd.isna(x) else x for x in d["act_dtype"]], dtype=object),
                kv_dtype=np.array([None if pd.isna(x) else x for x in d["kv_dtype"]], dtype=object),
                dp=np.maximum(np.round(n / (tp * pp)), 1.0),
                engine_profile=(d["engine_profile"].to_numpy(object) if "engine_profile" in d.columns
                                else "standard"))


def bench_settings(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(max_batch_size, max_num_tokens) that trtllm-bench's tuning heuristic gives each row's engine
    (TensorRT-LLM tensorrt_llm/bench/build/tuning.py: calc_engine_setting + finetune_setting, used by
    `trtllm-bench build --dataset` since 0.13 and by `trtllm-bench throughput` on the PyTorch backend).

    KV requests = kv_cache_gpu_mem_fraction x (GPU memory x GPUs - engine size) / (KV bytes per token x
    (ISL + OSL)), with KV bytes per token = 2 x layers x max(tp, KV heads) x head dim x (1 byte FP8 KV, else 2),
    engine size = parameters x (1 byte FP8, 0.5 FP4, else 2), the device memory as NVML reports it (GiB); then
    raw_bs = min(requests, 4096) / pp and raw_tokens = min(raw_bs (1 + ISL / OSL), 32768), both rounded up
    ("slightly optimistic"): batch to a multiple of 32 (min 64) below 256, of 128 below 1024, of 256 above;
    tokens to a multiple of 256 (min 2048) below 4096, of 512 below 8192, of 1024 above. The 0.13 - 0.17 tool
    counted the engine in GB (params / 1e9 x bytes) against GiB of memory; the PyTorch-backend one (0.20+) in GiB.
    Device memory: the tool reads NVML's total in GiB: the catalog's driver-reported total (`GPU.mem_device_mib`)
    where it has one, else the datasheet's mem_gb taken as GiB (what HBM parts report within 0.5 %)."""
    from objectives import catalog

    mods = {n: catalog.model(n) for n in d["model"].unique()}
    gpus = {n: catalog.gpu(n) for n in d["gpu"].unique()}
    params = d["model"].map({n: float(catalog.model_math.total_params(m)) for n, m in mods.items()}).to_numpy(float)
    layers = d["model"].map({n: float(m.n_layers) for n, m in mods.items()}).to_numpy(float)
    kvh = d["model"].map({n: float(m.n_kv_heads) for n, m in mods.items()}).to_numpy(float)
    hd = d["model"].map({n: float(m.head_dim) for n, m in mods.items()}).to_numpy(float)
    mem = d["gpu"].map({n: float(g.mem_gb if g.mem_device_mib is None else g.mem_device_mib / 1024.0)
                        for n, g in gpus.items()}).to_numpy(float)
    tp = d["tp"].fillna(1).to_numpy(float)
    pp = d["pp"].fillna(1).to_numpy(float)
    w = d["weight_dtype"].astype(str).to_numpy()
    kv = d["kv_dtype"].astype(str).to_numpy()
    isl = d["input_len"].to_numpy(float)
    osl = d["output_len"].to_numpy(float)
    bpe = np.select([w == "fp8", w == "fp4"], [1.0, 0.5], 2.0)
    # FP8 / NVFP4 quantization forces an FP8 KV cache (build.py: kv_cache_quant_algo = FP8)
    kvb = np.where((kv == "fp8") | np.isin(w, ["fp8", "fp4"]), 1.0, 2.0)
    pytorch = d["source_note"].astype(str).str.contains("PyTorch backend", regex=False).to_numpy()
    engine_gib = params * bpe / np.where(pytorch, 2.0**30, 1e9)
    tok_gib = 2.0 * layers * np.maximum(tp, kvh) * hd * kvb / 2.0**30
    req = BENCH_KV_FRACTION * (mem * tp * pp - engine_gib) / (tok_gib * (isl + osl))
    raw_bs = np.minimum(req, BENCH_MAX_REQUESTS) / pp
    raw_tok = np.minimum(raw_bs * (1.0 + isl / osl), BENCH_MAX_TOKENS)
    mbs = np.where(raw_bs < 256, np.maximum(64.0, 32.0 * np.ceil(raw_bs / 32.0)),
                   np.where(raw_bs < 1024, 128.0 * np.ceil(raw_bs / 128.0), 256.0 * np.ceil(raw_bs / 256.0)))
    mnt = np.where(raw_tok < 4096, np.maximum(2048.0, 256.0 * np.ceil(raw_tok / 256.0)),
                   np.where(raw_tok < 8192, 512.0 * np.ceil(raw_tok / 512.0), 1024.0 * np.ceil(raw_tok / 1024.0)))
    return mbs, mnt


def row_engines(df: pd.DataFrame, engine: Any = "roofline") -> np.ndarray:
    """The engine (`inference.estimate`'s `engine`) that predicts each row of `df`: `engine`, except that on the
    roofline the rows of a tuned TensorRT-LLM build (`engine_profile` "tuned") take `TUNED_BUILD_ENGINE`'s
    measured profile."""
    out = np.full(len(df), engine, dtype=object)
    if isinstance(engine, str) and engine == "roofline" and "engine_profile" in df.columns:
        out[(df["engine_profile"] == "tuned").to_numpy()] = TUNED_BUILD_ENGINE
    return out


def release_speed(df: pd.DataFrame, eff: Efficiency | None, engines: np.ndarray) -> np.ndarray:
    """Speed of each row's engine release relative to `REFERENCE_RELEASE` (`Efficiency` ``release_speed_step``
    per release, `data.release_index` of the row's `engine` label): the closed form's rows of TensorRT-LLM
    releases from `TREND_FIRST_RELEASE` on; 1 for earlier releases' tables, other engines' rows and rows on a measured profile (`engines`, as `row_engines` gives:
    its kernel tables carry their own release)."""
    step = float((eff or default_eff())["release_speed_step"])
    labels = df["engine"].astype(str)
    rel = labels.map({e: release_index(e) for e in labels.unique()}).to_numpy(float)
    on = np.isfinite(rel) & (rel >= TREND_FIRST_RELEASE) & (np.asarray(engines, dtype=object) == "roofline")
    return np.where(on, step ** np.where(on, rel - REFERENCE_RELEASE, 0.0), 1.0)


def predict(df: pd.DataFrame, eff: Efficiency | None = None, engine: Any = "roofline") -> np.ndarray:
    """Predicted value of each row's metric (NaN for serving/excluded rows), aligned with `df`; `engine` as in
    `inference.estimate` (default: the roofline with fitted factors, which the published tables fit; rows of a
    tuned build on TensorRT-LLM's measured profile, `row_engines`); a closed-form row of a TensorRT-LLM release
    other than `REFERENCE_RELEASE` runs `release_speed` times as fast (throughputs x, latencies / that ratio)."""
    pred = np.full(len(df), np.nan)
    engines = row_engines(df, engine)
    kind = df["kind"].to_numpy()
    metric = df["metric"].to_numpy()
    st = np.isin(kind, ["static", "ttft", "latency"])
    if st.any():
        d = df[st]
        out = inference.estimate(**_args(d), batch_size=d["batch_size"].to_numpy(float),
                                 input_len=d["input_len"].to_numpy(float),
                                 output_len=d["output_len_eff"].to_numpy(float), efficiency=eff, engine=engines[st])
        m = metric[st]
        v = np.select(
            [m == "throughput_out_tok_s", m == "throughput_out_tok_s_per_gpu", m == "ttft_ms", m == "itl_ms",
             m == "e2e_latency_ms"],
            [out["throughput_tok_s"], out["throughput_tok_s_per_gpu"], out["ttft_ms"], out["tpot_ms"],
             out["e2e_ms"]], np.nan)
        pred[st] = v
    ib = kind == "ifb"
    if ib.any():
        d = df[ib]
        # engine settings: the run's own where the note states them, trtllm-bench's heuristic for the
        # perf-overview tables, the engine defaults otherwise
        bench = d["source_note"].astype(str).str.contains(BENCH_NOTE, regex=False).to_numpy()
        b_mbs, b_mnt = bench_settings(d)
        mbs = d["max_batch_size"].to_numpy(float)
        mnt = d["max_num_tokens"].to_numpy(float)
        mbs = np.where(np.isnan(mbs), np.where(bench, b_mbs, DEFAULT_MAX_BATCH_SIZE), mbs)
        mnt = np.where(np.isnan(mnt), np.where(bench, b_mnt, DEFAULT_MAX_NUM_TOKENS), mnt)
        out = inference.max_throughput(
            **_args(d), input_len=d["input_len"].to_numpy(float), output_len=d["output_len"].to_numpy(float),
            max_batch_size=mbs, max_num_tokens=mnt, efficiency=eff, engine=engines[ib])
        m = metric[ib]
        v = np.select([m == "throughput_out_tok_s", m == "throughput_out_tok_s_per_gpu", m == "requests_per_s"],
                      [out["throughput_tok_s"], out["throughput_tok_s_per_gpu"],
                       out["throughput_tok_s"] / d["output_len"].to_numpy(float)], np.nan)
        pred[ib] = v
    speed = release_speed(df, eff, engines)
    m = metric.astype(str)
    rate = np.char.startswith(m, "throughput") | (m == "requests_per_s")
    return np.where(rate, pred * speed, pred / speed)


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """Absolute percentage error, %."""
    return np.abs(pred - meas) / np.abs(meas) * 100.0
