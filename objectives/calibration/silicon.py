"""The silicon slice: real serving measurements of 2025-26 engines under closed-loop load, predicted and scored.

Rows come normalized from `objectives.calibration.measurements.read_measurements` (one row per measured deployment
at one concurrency). Aggregated rows are predicted with `inference.max_throughput(..., concurrency=C)` (the steady
state of C closed-loop clients) on the engine's measured kernel profile; disaggregated rows with the analytical serving
model's closed loop of C clients over the two pools (`serving.analytical.disagg_closed_loop`: the pools' configured
batch sizes, the prefill pool's queue, the KV handoff and the first token from the decode worker). No measured number
enters a prediction.

`fit_engine_factors` fits the engine-level factors (host time per forward and per sequence, in-engine vs isolated
kernel time, grouped-GEMM efficiency) on rows; `leave_one_model_out` scores each model with factors fitted on the
others.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from objectives import inference, profiles
from objectives.inference import resolve
from objectives.inference.efficiency import Efficiency
from objectives.inference.lockstep import BENCHMARK_ROUNDS

# the silicon reader's helpers live in measurements (one reader: `read_silicon`); re-exported here
from .measurements import SILICON_VLLM_DP_SINCE as SILICON_VLLM_DP_SINCE
from .measurements import _column, _engine, catalog_gpus, checkpoints, collected, engine_releases, model_dtypes
from .measurements import launched_tp as launched_tp

#: catalog GPU of each kernel-table system name
GPU_OF_SYSTEM = profiles.GPU_OF_SYSTEM

#: the factors the silicon fit owns (top-level names in Efficiency.params)
ENGINE_FACTOR_NAMES = ("engine_step_ms", "engine_seq_us", "engine_ttft_ms", "engine_stream_us", "attn_ttft_ms",
                       "profile_gemm_scale", "profile_launch_us", "profile_attn_scale", "profile_moe_eff", "ttft_wave",
                       "profile_layer_us", "profile_moe_layer_us", "engine_kv_gbs", "engine_kv_ms", "profile_moe_scale")

#: fitted factors: (paths in Efficiency.params that share one value, lower, upper bound). The host times per
#: forward and per sequence per iteration are shared by the engines: with one or two models per engine in the
#: data, per-engine values follow the models, not the engines (leave-one-model-out TPOT of Qwen3.5, sglang's main
#: model: 61 % with per-engine host times, 13 % shared); the time before a request's first token is per engine
def _factor_specs(engines: Sequence[str], disagg: Sequence[str] = (), dense: bool = True, moe: bool = True,
                  agg: Sequence[str] | None = None, special_attn: bool = False, scoped: bool = False,
                  shared: bool = True) -> list[tuple[list[tuple[str, ...]], float, float]]:
    """The fitted factors, each a group of dotted paths tied to one value, with its bounds. ``scoped``: the factors
    one value ties over every engine (engine_step_ms, engine_seq_us, profile_layer_us) only over `engines`, the ones
    the rows measured (`calibrate.fit`: a user's rows say nothing of the other engines); ``shared``: fit the
    factors no engine owns (profile_attn_scale, profile_moe_layer_us: every engine's and GPU's), else keep the
    base's (`shared_identified`)."""
    every = list(engines) if scoped else list(resolve.ENGINE_BUDGETS)
    out: list[tuple[list[tuple[str, ...]], float, float]] = [
        ([("engine_step_ms", e) for e in every], 0.05, 20.0), ([("engine_seq_us", e) for e in every], 0.1, 200.0)]
    # an engine whose rows are all disaggregated (`agg`: the engines with aggregated rows of models without linear or
    # sparse attention) cannot separate its API server's time from its KV connector's latency (both precede the
    # first token once per request: TensorRT-LLM's Kimi-K2.5 rows put 24 or 48 ms on the one and 120 or 96 ms on
    # the other depending on where the fit starts): it shares vLLM's, and its connector latency takes the rest.
    # Likewise an engine whose aggregated rows all hold linear- or sparse-attention models (`special_attn`: rows hold
    # such models) cannot separate its API server's time from those models' own (`attn_ttft_ms`): SGLang here
    agg = list(engines) if agg is None else list(agg)
    tied = [e for e in engines if e not in agg] if "vllm" in agg else []
    for e in engines:
        if e not in tied:
            group: list[tuple[str, ...]] = [("engine_ttft_ms", e)]
            out.append((group + ([("engine_ttft_ms", t) for t in tied] if e == "vllm" else []), 0.1, 500.0))
    # the API server's time per running stream that a new request's first token waits behind (`engine_stream_us`,
    # `estimate.host_ttft_s`) is not fitted: fitted as one value for every engine it took 420 us a stream and the
    # in-sample TTFT to 13.4 %, but it does not carry from model to model (leave-one-model-out TTFT 18.7 -> 30.3 %:
    # MiniMax-M2.5, the one model measured past 128 clients, held out 14.0 -> 30.8 %), so it stays at 0 until rows
    # of several models under heavy load identify it (docs/profiles.md, thirty-fifth round)
    # GEMMs keep their measured time (profile_gemm_scale is not fitted): these MoE-only rows would trade it
    # against the host times (it went to its bound, 0.7), and dense models, which no row here holds, are
    # dominated by their GEMMs (the published dense tables: throughput MdAPE 14 % at 1.0, 29 % at 0.7)
    # the launch floor is per engine: each engine's kernel tables are their own collection (the engine's kernels
    # timed in isolation by its own harness), so the part of an isolated time the engine's CUDA graphs hide is a
    # property of that table set (an engine without rows gets the others' geometric mean: `fit_engine_factors`)
    out += [([("profile_launch_us", e)], 0.1, 6.0) for e in engines]
    out += [([("profile_attn_scale",)], 0.5, 2.0)] if shared else []
    # the small kernels per layer: every layer's, identified by dense models (`dense`: rows or anchors hold one;
    # an MoE model's rows see only the sum), and an MoE layer's own, identified by MoE models
    out += [([("profile_layer_us", e) for e in every], 1.0, 100.0)] if dense else []
    out += [([("profile_moe_layer_us",)], 0.1, 150.0)] if moe and shared else []
    # ttft_wave is not fitted: the share of a run's requests in its start-up wave, 1 / BENCHMARK_ROUNDS (its
    # default); the later rounds' queue is priced (`lockstep.round_queue`) instead of made up for by a larger share
    # the linear-attention models' own time before the first token (a Triton compile for the prompt forward's new
    # token count, `profiles.JIT_PREFILL_KINDS`), fitted where rows pay it (`special_attn`: `_compiles_prefill`),
    # with its default (the engine sources' compile time, `efficiency`) as the log-prior's centre; a fit without such
    # rows keeps that default, not 0.
    # The sparse kind's is not fitted (its default, 0): the DSA models' prompts run SGLang's measured prefill module
    # (`measured.build_curves`, `dsa_context`), whose length-dependent time the one constant per request had stood
    # in for (203 ms shared with the linear kind, which under-priced GLM-5's 8k prompts and over-priced its 1k
    # ones); a held-out linear model no longer borrows that stand-in
    out += [([("attn_ttft_ms", k) for k in ATTN_TTFT_KINDS], 0.1, 1000.0)] if special_attn else []
    # the KV connector's latency per request, per engine with disaggregated rows (`disagg`): only those identify
    # it. Its bandwidth (`engine_kv_gbs`) is not fitted: the rows' two prompt lengths leave it unidentified
    # (successive fits put TensorRT-LLM's at 6.4, 389, 10 and 1,279 GB/s at the same loss; vLLM's 195-604), so it
    # stays at the base's value (0: the link's rate) and the latency carries the handoff
    out += [([("engine_kv_ms", e)], 0.1, 1000.0) for e in disagg]
    out += [([("profile_moe_scale", e)], 0.4, 1.5) for e in engines if e in MOE_SCALE_ENGINES]
    return out


#: engines whose fused-MoE table time is fitted (profile_moe_scale): TensorRT-LLM's GB200 table holds, for
#: DeepSeek-V3's shape (7168 / 2048 / 256 experts, NVFP4), a second MoE kernel, its min-latency path, measured at
#: 0.45-0.75 x its CUTLASS kernel at decode token counts (aiconfigurator_core systems/data/gb200/moe/trtllm/
#: 1.3.0rc20/moe_perf.parquet, kernel_source moe_torch_flow_min_latency vs moe_torch_flow_cutlass, power_law_1.01,
#: 1-64 tokens), and only the CUTLASS kernel for Kimi-K2.5's 384 experts, the table the profile reads; TensorRT-LLM
#: also ships a TRTLLM-gen MoE backend beside CUTLASS. Which one a deployment ran is not in the rows, so the
#: engine's in-engine MoE time relative to the table is fitted (bounds 0.4-1.5) where its rows identify it; a fit
#: without its rows (the fold that holds out Kimi-K2.5, its only model) keeps `efficiency.MOE_SCALE_PRIOR`
#: (TRTLLM-gen over CUTLASS in its own tables), not the table as measured, which its rows rule out. The other
#: engines' tables are the kernels they run: not fitted (1.0)
MOE_SCALE_ENGINES = ("trtllm",)
#: the attention kinds whose time of their own before the first token is fitted (`Efficiency` ``attn_ttft_ms``;
#: "sparse" keeps its default: `_factor_specs`)
ATTN_TTFT_KINDS = ("linear",)


def _special_attn(models: Any) -> np.ndarray:
    """Whether each model has linear (Gated DeltaNet) or sparse (DSA) attention layers."""
    from objectives import catalog
    kinds = {m: bool(catalog.model(m).n_linear_attn_layers or catalog.model(m).index_topk)
             for m in pd.unique(np.asarray(models))}
    return np.array([kinds[m] for m in models], dtype=bool)


def _compiles_prefill(rows: pd.DataFrame) -> np.ndarray:
    """Whether each row's prompt forward compiles a kernel for a new token count (`profiles.JIT_PREFILL_KINDS`: a
    Gated DeltaNet or KDA model on an engine whose FLA L2 norm specializes on it): the rows that identify
    ``attn_ttft_ms["linear"]``."""
    from objectives import catalog
    kinds = {m: catalog.model(m).linear_attn_kind if catalog.model(m).n_linear_attn_layers else ""
             for m in pd.unique(rows["model"].to_numpy(object))}
    return profiles.jit_prefill_rows(_engine(rows), [kinds[m] for m in rows["model"]])


#: the factors fitted per engine (the others are shared): an engine without rows in a fit gets the geometric mean
#: of the fitted engines' values rather than its unfitted default (0 ms of front end would be a claim, not a guess)
PER_ENGINE_FACTORS = ("profile_launch_us", "engine_ttft_ms")


def _get(params: Any, path: tuple[str, ...]) -> float:
    v = params
    for k in path:
        v = v[k]
    return float(v)


def _with(eff: Efficiency, specs: list, x: np.ndarray) -> Efficiency:
    params = copy.deepcopy(dict(eff.params))
    for (paths, _, _), v in zip(specs, x):
        for path in paths:
            d = params
            for k in path[:-1]:
                d[k] = dict(d[k])
                d = d[k]
            d[path[-1]] = float(v)
    return Efficiency(params, eff.meta)


def usable(rows: pd.DataFrame) -> pd.Series:
    """Rows the model can predict: a catalog GPU for the system, a TTFT and TPOT, and worker counts for disagg."""
    ok = pd.Series(catalog_gpus(rows["gpu"].to_numpy(object)) != None, index=rows.index)  # noqa: E711
    ok &= rows["ttft_ms"].notna() & rows["tpot_ms"].notna()
    dis = rows["mode"] == "disagg"
    if dis.any() and "prefill_workers" in rows.columns:
        ok &= ~dis | (rows["prefill_workers"].notna() & rows["decode_workers"].notna())
    return ok


def _moe_of(models: Any) -> dict[Any, bool | None]:
    """Per distinct model id: whether it is a mixture-of-experts model; None where the catalog does not know it."""
    from objectives import catalog
    out: dict[Any, bool | None] = {}
    for m in pd.unique(pd.Series(models, dtype=object)):
        try:
            out[m] = catalog.model(m).n_experts > 0
        except (KeyError, ValueError):
            out[m] = None
    return out


def launched_ep(rows: pd.DataFrame, models: Any, gpus: Any, weight_dtypes: Any) -> np.ndarray:
    """Each aggregated row's EP size as its engine ran it: the row's ``moe_ep`` (1 where empty), except where that
    label shards a block-FP8 checkpoint's experts into widths that are not whole 128-wide blocks, which vLLM and
    SGLang refuse at load (`inference.resolve.block_fp8_problem`): such a run was launched with expert parallel
    over its tp x attention-DP ranks (vLLM's MiniMax-M2 recipe serves TP 8 with ``--enable-expert-parallel``),
    read as ep = tp x attn_dp. The silicon slice's MiniMax-M2.5 rows on vLLM 0.18.0, H200, labelled TP 8 with
    expert TP 8, are such runs. ``models``, ``gpus``, ``weight_dtypes``: the rows' `checkpoints`, `catalog_gpus`
    and `model_dtypes` weights, one per row (as `predict` and `simulated` hold them)."""
    from objectives import catalog
    from objectives.inference.resolve import block_fp8_problem
    ep = rows["moe_ep"].fillna(1).to_numpy(float).copy()
    tp, adp = rows["tp"].to_numpy(float), rows["attn_dp"].fillna(1).to_numpy(float)
    wd = np.asarray(weight_dtypes, dtype=object)
    engines = _engine(rows)
    seen: dict[tuple[Any, ...], bool] = {}
    for i in np.flatnonzero((ep == 1) & (tp * adp > 1) & (wd == "fp8")):
        key = (str(models[i]), gpus[i], engines[i], tp[i], adp[i])
        if key not in seen:
            try:
                m = models[i] if not isinstance(models[i], str) else catalog.model(models[i])
                fam = catalog.gpu(gpus[i]).family if gpus[i] is not None else "hopper"
                seen[key] = bool(m.quant_scheme == "fp8_block" and block_fp8_problem(
                    m, engines[i], fam, int(tp[i]), int(adp[i]), 1))
            except (KeyError, ValueError):
                seen[key] = False
        if seen[key]:
            ep[i] = tp[i] * adp[i]
    return ep


def _kv_dtypes(rows: pd.DataFrame) -> np.ndarray:
    """The KV-cache dtype each row measured (None where the source does not say: the model's default for the
    weights), as `inference.estimate` takes it."""
    kv = _column(rows, "kv_dtype").to_numpy(object)
    return np.array([x if isinstance(x, str) and x else None for x in kv], dtype=object)


def _static(rows: pd.DataFrame) -> pd.Series:
    """Aggregated rows measured as a static batch of `batch_size` sequences (no clients): the published tables'
    throughput, TTFT and latency rows, `inference.estimate`'s offline batch."""
    return (rows["mode"] == "agg") & ~(rows["concurrency"] > 0) & (_column(rows, "batch_size") > 0)


def _max_batch(rows: pd.DataFrame) -> pd.Series:
    """Aggregated rows measured at the engine's own batch limit (kind "ifb": a max-throughput run of many requests
    sent at once, e.g. trtllm-bench throughput), `inference.max_throughput` without clients."""
    return ((rows["mode"] == "agg") & ~(rows["concurrency"] > 0) & ~(_column(rows, "batch_size") > 0)
            & (_column(rows, "kind") == "ifb"))


#: measured throughput columns and the prediction each is scored against
THROUGHPUT_COLUMNS = (("throughput_tok_s", "thr_pred"), ("throughput_tok_s_gpu", "thr_gpu_pred"))


def measured_throughput(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(measured output tokens/s, the prediction column it is scored against) per row: the deployment's total
    where the row gives it, else per GPU; NaN / "" where it gives neither."""
    val = np.full(len(rows), np.nan)
    col = np.full(len(rows), "", dtype=object)
    for meas, pred in reversed(THROUGHPUT_COLUMNS):
        if meas in rows.columns:
            v = rows[meas].to_numpy(float)
            has = np.isfinite(v)
            val, col = np.where(has, v, val), np.where(has, pred, col)
    return val, col


def throughput_pairs(rows: pd.DataFrame, pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(measured, predicted) output tokens/s per row (`measured_throughput`'s column of `predict`'s output `pred`,
    aligned with `rows`); NaN where the row measured none."""
    thr, col = measured_throughput(rows)
    out = np.full(len(rows), np.nan)
    for _, c in THROUGHPUT_COLUMNS:
        out = np.where(col == c, pred[c].to_numpy(float), out)
    return thr, out


def unpredictable(rows: pd.DataFrame) -> np.ndarray:
    """Why each row cannot be predicted, the first reason that holds; "" where the model can run it (a deployment
    that then does not fit is its prediction's NaN). A row the model cannot read is left unpredicted; it does not
    stop the others."""
    moe = _moe_of(rows["model"])
    # a disaggregated row without worker counts does not say what ran
    dis = ((rows["mode"] == "disagg") & (rows["prefill_workers"].isna() | rows["decode_workers"].isna())).to_numpy()
    reasons = [
        (rows["model"].map(lambda m: moe[m] is None).to_numpy(bool), "model not in the catalog"),
        (catalog_gpus(rows["gpu"].to_numpy(object)) == None, "system without a catalog GPU"),  # noqa: E711
        (~np.isin(_engine(rows), list(profiles.ENGINE_NAMES)),
         f"engine without kernel profiles (valid: {', '.join(profiles.ENGINE_NAMES)})"),
        (dis, "disaggregated row without worker counts"),
        (~(rows["isl"] > 0).to_numpy(), "no prompt length"),
        # a static TTFT table measures one output token (`predict`); every other row needs its output length
        ((~(rows["osl"] > 0) & ~_static(rows)).to_numpy(), "no output length"),
        # a closed loop of C clients, a static batch (`batch_size`, no clients: a throughput or latency table) or a
        # max-throughput run (kind "ifb": the engine's own batch limit); a row measured at an offered request rate
        # has none of them (the simulator predicts it)
        (((rows["mode"] == "agg") & ~(rows["concurrency"] > 0) & ~_static(rows) & ~_max_batch(rows)).to_numpy(),
         "no client concurrency (an offered request rate)"),
    ]
    return np.select([c for c, _ in reasons], [r for _, r in reasons], "").astype(object)


def _known(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows the model can run (`unpredictable`: no reason) with their MoE mask."""
    kept = rows[unpredictable(rows) == ""]
    moe = _moe_of(kept["model"])
    return kept, np.array([bool(moe[m]) for m in kept["model"]], dtype=bool)


def predict(rows: pd.DataFrame, eff: Efficiency | None = None) -> pd.DataFrame:
    """Predicted ttft_ms, tpot_ms, output throughput (thr_pred: the deployment's tokens/s, thr_gpu_pred: per GPU)
    and source for every row (NaN where the model cannot run the row: `unpredictable` says why; or a deployment
    that does not fit: `unfit_reason`, the cost model's reason, for a disaggregated row its pool's, "" elsewhere).
    Closed-loop rows through `inference.max_throughput` at their clients, static batches through
    `inference.estimate` (an offline batch: no front end), max-throughput runs through `max_throughput` at the
    engine's default budgets. Weights and compute run in the dtypes of `measurements.model_dtypes` (gpt-oss:
    its MXFP4 experts)."""
    out = pd.DataFrame({"ttft_pred": np.nan, "tpot_pred": np.nan, "thr_pred": np.nan, "thr_gpu_pred": np.nan,
                        "source": "", "unfit_reason": ""}, index=rows.index)
    rows, moe = _known(rows)
    is_agg = (rows["mode"] == "agg").to_numpy()
    static, at_limit = _static(rows).to_numpy(), _max_batch(rows).to_numpy()
    for part, how in ((is_agg & ~static & ~at_limit, "clients"), (is_agg & at_limit, "limit"),
                      (is_agg & static, "static")):
        agg = rows[part]
        if not len(agg):
            continue
        eng = engine_releases(agg)   # each row's release: its overlap loop, as the engine it ran had it
        wd, ad = model_dtypes(agg, moe[part])
        gpus = catalog_gpus(agg["gpu"].to_numpy(object))
        tp, pp = agg["tp"].to_numpy(float), agg["pp"].fillna(1).to_numpy(float)
        models = checkpoints(agg)
        ep, adp = launched_ep(agg, models, gpus, wd), agg["attn_dp"].fillna(1).to_numpy(float)
        common = dict(model=models, gpu=gpus, tp=tp, pp=pp, weight_dtype=wd, act_dtype=ad,
                      kv_dtype=_kv_dtypes(agg), input_len=agg["isl"].to_numpy(float), ep=ep, attn_dp=adp, engine=eng,
                      efficiency=eff)
        if how == "static":
            # replicas: the GPUs the row names over one replica's (a table's "8 GPUs" at TP 2 is four of them); a
            # TTFT table measures one output token
            dp = np.maximum(np.round(agg["n_gpus"].fillna(1).to_numpy(float) / (tp * pp * adp)), 1.0)
            r = inference.estimate(**common, output_len=agg["osl"].fillna(1).to_numpy(float), dp=dp,
                                   batch_size=agg["batch_size"].to_numpy(float))
        else:       # at the engine's default budgets (`max_throughput`'s None)
            r = inference.max_throughput(**common, output_len=agg["osl"].to_numpy(float),
                                         concurrency=agg["concurrency"].to_numpy(float) if how == "clients" else None)
        ok = r["fits"].to_numpy()
        out.loc[agg.index, "ttft_pred"] = np.where(ok, r["ttft_ms"].to_numpy(), np.nan)
        out.loc[agg.index, "tpot_pred"] = np.where(ok, r["tpot_ms"].to_numpy(), np.nan)
        out.loc[agg.index, "thr_pred"] = np.where(ok, r["throughput_tok_s"].to_numpy(), np.nan)
        out.loc[agg.index, "thr_gpu_pred"] = np.where(ok, r["throughput_tok_s_per_gpu"].to_numpy(), np.nan)
        out.loc[agg.index, "source"] = r["source"].astype(str).to_numpy()
        out.loc[agg.index, "unfit_reason"] = np.where(ok, "", r["reason"].astype(str).to_numpy())
    is_dis = (rows["mode"] == "disagg").to_numpy()
    dis = rows[is_dis]
    if len(dis):
        out.loc[dis.index, ["ttft_pred", "tpot_pred", "source", "unfit_reason"]] = _predict_disagg(dis, eff,
                                                                                                  moe[is_dis])
    return out


def _pool_batches(dis: pd.DataFrame, eng: np.ndarray, gpu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prompts a prefill rank runs in one iteration, sequences a decode rank holds) of each disaggregated row's
    deployment: the pools' configured batch sizes (the engines' max batch per rank), the engine's default where a
    row has none (`resolve.engine_budgets` of its engine `eng` on its catalog GPU `gpu`)."""
    budgets = resolve.engine_budgets(eng, gpu)
    isl = dis["isl"].to_numpy(float)
    bp = dis["prefill_batch_size"].to_numpy(float) if "prefill_batch_size" in dis else np.full(len(dis), np.nan)
    bd = dis["decode_batch_size"].to_numpy(float) if "decode_batch_size" in dis else np.full(len(dis), np.nan)
    by_budget = np.maximum(np.floor(budgets[:, 1] / isl), 1.0)
    # a vLLM prefill server batches the prompts its token budget holds (max_num_batched_tokens; its only per-server
    # limit is max_num_seqs, which a P/D launch leaves at its default): the rows' prefill_batch_size of 1 is the
    # planner's figure, not a setting vLLM runs with (one TP4 prefill worker passes ~44 req/s of 1k prompts at
    # 1,024 clients, twice what one prompt per iteration allows). TensorRT-LLM's context servers run the
    # max_batch_size their config sets
    bp = np.where(np.isfinite(bp), np.where(eng == "vllm", np.maximum(bp, by_budget), bp), by_budget)
    bd = np.where(np.isfinite(bd), bd, budgets[:, 0])
    return bp, bd


def _predict_disagg(dis: pd.DataFrame, eff: Efficiency | None, moe: Any = True) -> pd.DataFrame:
    """Disaggregated rows through the analytical serving model's closed loop (`serving.analytical.
    disagg_closed_loop`): the measured deployment's prefill and decode pools with their configured batch sizes as
    their max batches, C clients coupling the pools, the KV handoff on the link between them, and the client's
    first token from the decode worker (the engines' P/D proxies stream the decode worker's output)."""
    from objectives.inference.comm import kv_transfer_gbs
    from objectives.inference.core import default_eff
    from objectives.serving.analytical import disagg_closed_loop, prefill_estimates
    from objectives.serving.handoff import decode_overlap, first_token_forwards, front_end, kv_notice_steps, kv_read_ms

    eng = _engine(dis)
    gpu = catalog_gpus(dis["gpu"].to_numpy(object))
    isl = dis["isl"].to_numpy(float)
    factors = eff if eff is not None else default_eff()
    wd, ad = model_dtypes(dis, moe)
    models = checkpoints(dis)

    def pool(prefix: str) -> dict[str, Any]:
        return dict(model=models, gpu=gpu, tp=dis[f"{prefix}_tp"].to_numpy(float),
                    pp=dis[f"{prefix}_pp"].fillna(1).to_numpy(float), weight_dtype=wd, act_dtype=ad,
                    kv_dtype=_kv_dtypes(dis),
                    ep=dis[f"{prefix}_moe_ep"].fillna(1).to_numpy(float),
                    attn_dp=dis[f"{prefix}_attn_dp"].fillna(1).to_numpy(float), engine=engine_releases(dis),
                    efficiency=eff)
    pk, dk = pool("prefill"), pool("decode")
    ranks = {x: dis[f"{x}_workers"].to_numpy(float) * dis[f"{x}_attn_dp"].fillna(1).to_numpy(float)
             for x in ("prefill", "decode")}
    bp, bd = _pool_batches(dis, eng, gpu)
    # ... and a decode rank holds no more sequences than its KV cache admits under the engine's admission policy
    # (`max_throughput`'s batch), the clients beyond them waiting for a slot as on an aggregated server: a planner's
    # decode batch larger than the cache left every such row unpredicted
    held = inference.max_throughput(**dk, input_len=isl, output_len=dis["osl"].to_numpy(float),
                                    max_batch_size=bd)
    bd = np.where(held["fits"].to_numpy(bool), np.minimum(bd, held["batch_size"].to_numpy(float)), bd)
    # the prefill pool priced once (a lone prompt, a full batch; `disagg_closed_loop` reuses it): the lone prompt's
    # KV shard per prefill GPU crosses the link between the pools (the shards move in parallel)
    pf = prefill_estimates(pk, isl, bp)
    kv = pf["kv_cache_gib"].to_numpy(float)[0::2]
    ptp, dtp = pk["tp"], dk["tp"]
    pool_gpus = (dis["prefill_workers"].to_numpy(float) * ptp * pk["attn_dp"]
                 + dis["decode_workers"].to_numpy(float) * dtp * dk["attn_dp"]) * pk["pp"]
    link = kv_transfer_gbs(gpu.astype(str), ptp, gpu.astype(str), dtp, pool_gpus) / np.minimum(ptp, dtp)
    # ... through the engine's KV connector: its latency per request, its rate where slower than the link's
    xfer = np.where(np.isfinite(link), kv_read_ms(kv * 2.0**30, link, eng, factors), 0.0)
    # the engine's host time before it schedules a request, once per pass of its P/D front end (vLLM's proxy: the
    # prefill and the decode server), how synchronized the clients stay, as the aggregated closed form reads them, and
    # the step a busy prefill worker formed ahead (vLLM: async scheduling; TensorRT-LLM's context servers: none)
    host, wave, _, ahead = front_end(pk, len(dis), factors)
    r = disagg_closed_loop(pk, dk, isl, dis["osl"].to_numpy(float), dis["concurrency"].to_numpy(float),
                           ranks["prefill"], ranks["decode"], bp, bd, xfer, host_ms=host, wave=wave,
                           prefill_est=pf, forwards=first_token_forwards(eng), lag=ahead,
                           notice=kv_notice_steps(eng, decode_overlap(dk, len(dis), factors)[1]))
    # the decode rank holds the batch its admission policy lets into the KV cache (`held`, prompt plus the
    # engine's reserved share of the output per sequence); `decode_fits` prices every sequence at its full length
    # at once, which on-demand admission never holds
    ok = r["prefill_fits"] & (r["decode_fits"] | held["fits"].to_numpy(bool))
    # where a pool does not fit, its reason (the prefill pool's first), as an aggregated row's
    why = np.where(r["prefill_fits"], "", "prefill pool: " + r["prefill_reason"].astype(str))
    why = np.where(ok | (why != ""), why, "decode pool: " + held["reason"].astype(str).to_numpy(str))
    return pd.DataFrame({"ttft_pred": np.where(ok, r["ttft_ms"], np.nan),
                         "tpot_pred": np.where(ok, r["tpot_ms"], np.nan), "source": r["source"],
                         "unfit_reason": why}, index=dis.index)


def is_anchor(df: pd.DataFrame) -> np.ndarray:
    """Which rows of the classified published table (`calibration.data.load`) are `dense_anchors`: batch-1
    inter-token latencies (kind "latency", metric itl_ms) of tuned builds of dense models."""
    m = ((df["kind"] == "latency") & (df["metric"] == "itl_ms") & (df["engine_profile"] == "tuned")).to_numpy(copy=True)
    if m.any():
        m[m] = ~_is_moe(df["model"].to_numpy(object)[m])
    return m


def dense_anchors(path: str | None = None) -> pd.DataFrame:
    """Decode steps of dense models in the published tables (`calibration.data.load`): the batch-1 inter-token
    latencies of TensorRT-LLM's tuning guide with its tuned build flags (Llama-3.3-70B, H100, TP 4; `is_anchor`).
    The silicon slice holds MoE models only, whose rows see a layer's small kernels and an MoE layer's own
    together; these rows pin the part every layer pays (`profile_layer_us`), so that it does not carry routing work
    into dense models. Empty when the published file is absent."""
    from .data import load
    try:
        df, _ = load(path)
    except (FileNotFoundError, OSError):
        return pd.DataFrame()
    return df[is_anchor(df)]


def fitted_paths() -> list[tuple[str, ...]]:
    """Every factor `fit_engine_factors` may fit (each engine's, every optional group): the factors the dense
    anchors take part in fitting, which a published source holding them must not see in its held-out prediction
    (`report.fold_base`)."""
    every = sorted(resolve.ENGINE_BUDGETS)
    specs = _factor_specs(every, every, dense=True, moe=True, agg=every, special_attn=True)
    return list(dict.fromkeys(p for s in specs for p in s[0]))


def _anchor_resid(anchors: pd.DataFrame, eff: Efficiency) -> np.ndarray:
    """log(predicted / measured) inter-token latency of `dense_anchors` rows on their engine's profile."""
    if anchors is None or not len(anchors):
        return np.zeros(0)
    r = inference.estimate(
        model=anchors["model"].to_numpy(object), gpu=anchors["gpu"].to_numpy(object),
        tp=anchors["tp"].to_numpy(float), pp=anchors["pp"].fillna(1).to_numpy(float),
        weight_dtype=anchors["weight_dtype"].to_numpy(object), batch_size=anchors["batch_size"].to_numpy(float),
        input_len=anchors["input_len"].to_numpy(float), output_len=anchors["output_len"].to_numpy(float),
        engine=anchors["engine_family"].to_numpy(object), efficiency=eff)
    return np.log(r["tpot_ms"].to_numpy(float) / anchors["value"].to_numpy(float))


def _is_moe(models: Any) -> np.ndarray:
    from objectives import catalog
    return np.array([catalog.model(m).n_experts > 0 for m in models], dtype=bool)


def _resid(rows: pd.DataFrame, eff: Efficiency, anchors: pd.DataFrame | None = None) -> np.ndarray:
    p = predict(rows, eff)
    parts = [np.log(p["ttft_pred"].to_numpy(float) / rows["ttft_ms"].to_numpy(float)),
             np.log(p["tpot_pred"].to_numpy(float) / rows["tpot_ms"].to_numpy(float))]
    # rows that measured a throughput and not both latencies (the published tables' static batches and
    # max-throughput runs): their output tokens/s too
    thr, pred = throughput_pairs(rows, p)
    only = np.isfinite(thr) & ~(rows["ttft_ms"].notna() & rows["tpot_ms"].notna()).to_numpy()
    if only.any():
        parts.append(np.log(pred[only] / thr[only]))
    r = np.concatenate(parts + [_anchor_resid(anchors, eff)])
    return np.where(np.isfinite(r), r, 3.0)


#: what a scoped fit (`fit_engine_factors(scoped=True)`, `dse calibrate`) needs of its rows to fit the factors no
#: engine owns (`_factor_specs`' ``shared``): rows of this many engines (one engine's rows cannot tell a scale every
#: engine's kernels share from that engine's own host times) and this many request lengths (input + output tokens:
#: at one length the attention's share of a step does not move, and its scale trades against the per-sequence time)
SHARED_MIN_ENGINES = 2
SHARED_MIN_LENGTHS = 2


def shared_identified(rows: pd.DataFrame) -> bool:
    """Whether `rows` identify the factors every engine and GPU shares (`SHARED_MIN_ENGINES`,
    `SHARED_MIN_LENGTHS`)."""
    engines = set(_engine(rows)) & set(profiles.ENGINE_NAMES)
    lengths = (rows["isl"].astype(float) + rows["osl"].astype(float)).nunique()
    return len(engines) >= SHARED_MIN_ENGINES and lengths >= SHARED_MIN_LENGTHS


def fit_engine_factors(rows: pd.DataFrame, base: Efficiency | None = None, max_nfev: int = 60,
                       reg: float = 0.01, anchors: pd.DataFrame | None = None, scoped: bool = False
                       ) -> tuple[Efficiency, dict]:
    """Least-squares fit (soft-L1 on log(pred / measured) of TTFT and TPOT) of the engine-level factors of the
    engines present in `rows`; light log-prior towards the starting values. `anchors`: dense decode steps
    (`dense_anchors`) fitted beside the rows. A layer's small-kernel time is fitted only where dense models
    (rows or anchors) identify it, an MoE layer's own only where MoE rows do; otherwise they keep `base`'s.
    ``scoped`` (a user's calibration, `calibrate.fit`): what the fit changes is what its rows measured: the factors
    tied over every engine are fitted for the rows' engines only, the other engines keep `base`'s (no borrowing of
    the fitted engines' values), and the factors no engine owns only where the rows identify them
    (`shared_identified`). The shipped fit (False) ties and borrows across every engine."""
    if base is None:  # the shipped fit, the base `calibrate.load_profile` lays a fitted profile over
        from objectives.inference.core import default_eff
        base = default_eff()
    engines = sorted(set(_engine(rows)) & set(profiles.ENGINE_NAMES))
    dis = rows[rows["mode"] == "disagg"]
    moe = _is_moe(rows["model"].unique())
    has_anchors = anchors is not None and len(anchors) > 0
    special = _special_attn(rows["model"].to_numpy(object))
    std_agg = rows[(rows["mode"] == "agg").to_numpy() & ~special]
    specs = _factor_specs(engines, sorted(set(_engine(dis)) & set(engines)), dense=has_anchors or not moe.all(),
                          moe=bool(moe.any()), agg=sorted(set(_engine(std_agg)) & set(engines)),
                          special_attn=bool(_compiles_prefill(rows).any()), scoped=scoped,
                          shared=not scoped or shared_identified(rows))
    x0 = np.array([_get(base.params, s[0][0]) for s in specs])
    lo = np.array([s[1] for s in specs])
    hi = np.array([s[2] for s in specs])
    # a starting value outside the bounds says nothing (an additive time whose unfitted default is 0): such a
    # factor starts mid-range (geometric) and has no prior, which near its lower bound would outweigh the data
    # (the log-prior's gradient grows as 1 / x)
    informative = (x0 >= lo) & (x0 <= hi)
    x0 = np.where(informative, np.clip(x0, lo * 1.001, hi * 0.999), np.sqrt(lo * hi))
    prior = x0.copy()

    def resid(x: np.ndarray) -> np.ndarray:
        r = _resid(rows, _with(base, specs, x), anchors)
        return np.concatenate([r, np.sqrt(reg) * np.log(x[informative] / prior[informative])])
    res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale="jac",
                        max_nfev=max_nfev, diff_step=1e-2)
    eff = _with(base, specs, res.x)

    def borrow(eff: Efficiency, name: str, fitted: Sequence[str]) -> Efficiency:
        """Engines outside `fitted` take the geometric mean of the fitted engines' factor `name`."""
        absent = [e for e in resolve.ENGINE_BUDGETS if e not in fitted]
        if not fitted or not absent:
            return eff
        mean = float(np.exp(np.mean([np.log(eff.params[name][e]) for e in fitted])))
        return _with(eff, [([(name, e) for e in absent], 0.0, 0.0)], np.array([mean]))
    for name in PER_ENGINE_FACTORS if not scoped else ():  # engines without rows
        eff = borrow(eff, name, engines)
    # ... and an engine without disaggregated rows the KV connector latency of those with them: its unfitted 0 ms
    # would claim a connector without setup cost (SGLang's P/D deployments had been predicted so). Rows without any
    # disaggregated row (the fold that holds out Kimi-K2.5, the slice's only disaggregated model) leave it at
    # `base`'s: no derivation from the connectors' transfer path reaches the fitted latency, which vLLM's P/D work
    # puts on orchestration rather than the transfer (docs/profiles.md twenty-sixth round), and no fixed wait in
    # either engine's handoff code does (the thirtieth round's reading: NixlConnector, TensorRT-LLM's executor loop
    # and NIXL agent connection, Dynamo's handlers)
    if not scoped:
        eff = borrow(eff, "engine_kv_ms", sorted(set(_engine(dis)) & set(engines)))
    names = [".".join(p) for s in specs for p in s[0]]
    x = [v for s, v in zip(specs, res.x) for _ in s[0]]
    return eff, {"names": names, "x": x, "nfev": int(res.nfev)}


def simulated(rows: pd.DataFrame, requests_per_client: int = BENCHMARK_ROUNDS, output_spread: float | None = None,
              input_spread: float = 0.0, frontend_ms: float | None = None) -> pd.DataFrame:
    """The aggregated rows replayed in the serving simulator (`serving.simulate(..., engine=<row's engine>)`: C
    closed-loop clients, `requests_per_client` x C requests, the engine's default budgets) with the shipped
    factors: `rows` plus ttft_pred / tpot_pred (mean) and their APE (%). A check of the iteration-level dynamics
    (waves, chunked prefill, queueing) beside the closed form that `predict` fits, on the deployment `predict`
    prices (the checkpoint, parallel layout and dtypes each row ran); NaN where it cannot run.
    `output_spread`: `serving.Workload.output_spread`, each request's output length drawn within that share of the
    row's (None: the workload's default; 0: every output exactly the row's, which keeps the clients that start
    together in one wave for the whole run). `input_spread` > 0 draws the prompts uniformly within that share of
    the row's, and `frontend_ms` is the engine's API server's hold in front of each replica
    (`serving.Scheduler.frontend_ms`; None: the scheduler's default)."""
    from objectives import serving

    if output_spread is not None:
        serving.Workload(concurrency=1, output_spread=output_spread)   # a bad value refused by name here
    if isinstance(input_spread, bool) or not isinstance(input_spread, (int, float)) or not 0 <= input_spread < 1:
        raise ValueError(f"input_spread={input_spread!r}: a share of the row's length in [0, 1)")
    serving.Scheduler(frontend_ms=frontend_ms)   # a bad value refused by name here, not as a row that cannot run

    known, moe = _known(rows)
    agg = known[(known["mode"] == "agg").to_numpy()]
    wd, ad = model_dtypes(agg, moe[(known["mode"] == "agg").to_numpy()])
    # the deployment `predict` prices: the checkpoint each row ran (a block-scaled FP8 release of a base id) and
    # its measured KV dtype
    models, gpus, kvd = checkpoints(agg), catalog_gpus(agg["gpu"].to_numpy(object)), _kv_dtypes(agg)
    eps = launched_ep(agg, models, gpus, wd)
    rel = engine_releases(agg)

    def prompt(isl: int) -> Any:
        return isl if not input_spread else serving.Dist(
            "uniform", low=max(1, round(isl * (1 - input_spread))), high=round(isl * (1 + input_spread)))

    def one(j: int, r: pd.Series, wl: Any) -> Any:
        return serving.simulate(models[j], gpus[j], tp=int(r["tp"]), pp=int(r["pp"]) if r["pp"] == r["pp"] else 1,
                                weight_dtype=wd[j], act_dtype=ad[j], kv_dtype=kvd[j], workload=wl,
                                engine=str(rel[j]), ep=int(eps[j]),
                                attn_dp=int(r["attn_dp"]) if r["attn_dp"] == r["attn_dp"] else 1,
                                scheduler=serving.Scheduler(frontend_ms=frontend_ms))   # the engine's budgets
    return _replay(rows, "agg", agg, one, requests_per_client, output_spread, prompt)


def simulated_disagg(rows: pd.DataFrame, requests_per_client: int = BENCHMARK_ROUNDS,
                     output_spread: float | None = None, eff: Efficiency | None = None) -> pd.DataFrame:
    """The disaggregated rows replayed in the serving simulator (`serving.simulate(..., mode="disagg")`: C
    closed-loop clients, `requests_per_client` x C requests, each row's prefill and decode pools with the batch
    sizes `predict` runs them at, `_pool_batches`), costed with `eff` (an Efficiency; None: the shipped fit):
    `rows`' disaggregated rows plus ttft_pred / tpot_pred (mean) and their APE (%); NaN where the simulator refuses
    the deployment. The iteration-level check of what the closed form (`_predict_disagg`) prices: the start-up
    wave, the prefill worker's iteration boundaries (attention-DP ranks stepping in lockstep) and the decode
    worker's. `output_spread`: as in `simulated`."""
    from objectives import serving

    if output_spread is not None:
        serving.Workload(concurrency=1, output_spread=output_spread)   # a bad value refused by name here
    known, moe = _known(rows)
    is_dis = (known["mode"] == "disagg").to_numpy()
    dis = known[is_dis]
    eng = _engine(dis)
    gpus = catalog_gpus(dis["gpu"].to_numpy(object))
    wd, ad = model_dtypes(dis, moe[is_dis])
    models, kvd = checkpoints(dis), _kv_dtypes(dis)
    bp, bd = _pool_batches(dis, eng, gpus)
    rel = engine_releases(dis)

    def pool(r: pd.Series, prefix: str, batch: float, j: int) -> Any:
        def knob(name: str) -> int:
            v = r[f"{prefix}_{name}"]
            return int(v) if v == v else 1
        return serving.Pool(gpu=gpus[j], tp=knob("tp"), pp=knob("pp"), ep=knob("moe_ep"), attn_dp=knob("attn_dp"),
                            n_workers=knob("workers"), scheduler=serving.Scheduler(max_batch_size=int(batch)))

    def one(j: int, r: pd.Series, wl: Any) -> Any:
        return serving.simulate(models[j], gpus[j], weight_dtype=wd[j], act_dtype=ad[j], kv_dtype=kvd[j],
                                workload=wl, engine=str(rel[j]), mode="disagg", prefill=pool(r, "prefill", bp[j], j),
                                decode=pool(r, "decode", bd[j], j), profile=eff)
    return _replay(rows, "disagg", dis, one, requests_per_client, output_spread)


def _replay(rows: pd.DataFrame, mode: str, sub: pd.DataFrame, call: Callable[[int, pd.Series, Any], Any],
            requests_per_client: int, output_spread: float | None,
            prompt: Callable[[int], Any] | None = None) -> pd.DataFrame:
    """The replay `simulated` and `simulated_disagg` share: each of `sub`'s rows (`rows`' predictable `mode` rows, in
    order) as C closed-loop clients (`requests_per_client` x C requests, at least 64; `output_spread` as in
    `simulated`; prompts `prompt(isl)`, None: the row's isl tokens) in the simulator call `call(j, row, workload)`
    makes; `rows`' `mode` rows joined with ttft_pred / tpot_pred (mean, ms; NaN where the simulator refuses the
    deployment: does not fit, heads not divisible) and their APE (%)."""
    from objectives import serving

    spread: dict[str, Any] = {} if output_spread is None else {"output_spread": output_spread}
    out = pd.DataFrame({"ttft_pred": np.nan, "tpot_pred": np.nan}, index=sub.index)
    for j, (i, r) in enumerate(sub.iterrows()):
        c, isl = int(r["concurrency"]), int(r["isl"])
        wl = serving.Workload(concurrency=c, input_len=isl if prompt is None else prompt(isl),
                              output_len=int(r["osl"]), n_requests=max(requests_per_client * c, 64), **spread)
        try:
            m = call(j, r, wl)
        except ValueError:  # a deployment the simulator refuses
            continue
        out.loc[i] = (m["ttft_ms_mean"], m["tpot_ms_mean"])
    d = rows[rows["mode"] == mode].join(out)
    d["ttft_ape"] = ape(d["ttft_pred"].to_numpy(float), d["ttft_ms"].to_numpy(float))
    d["tpot_ape"] = ape(d["tpot_pred"].to_numpy(float), d["tpot_ms"].to_numpy(float))
    return d


def ape(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return np.abs(pred / meas - 1.0) * 100.0


def scored(rows: pd.DataFrame, eff: Efficiency | None = None) -> pd.DataFrame:
    """`rows` with predictions and absolute percentage errors (%) of TTFT, TPOT and, where a row measured it, output
    throughput (`thr_ape`: against the deployment's total where given, else per GPU)."""
    p = predict(rows, eff)
    d = rows.join(p)
    d["ttft_ape"] = ape(d["ttft_pred"].to_numpy(float), d["ttft_ms"].to_numpy(float))
    d["tpot_ape"] = ape(d["tpot_pred"].to_numpy(float), d["tpot_ms"].to_numpy(float))
    thr, pred = throughput_pairs(rows, p)
    d["thr_ape"] = ape(pred, thr)
    return d


def leave_one_out(rows: pd.DataFrame, by: str, base: Efficiency | None = None, max_nfev: int = 40,
                  anchors: pd.DataFrame | None = None,
                  factors: dict[Any, dict[str, float]] | None = None) -> pd.DataFrame:
    """Each group's rows (one value of column `by`: "model", "gpu", ...) predicted with engine factors fitted on
    the other groups' rows (and `anchors`). `factors`: a dict that receives, per held-out value, the fold's fitted
    factors (`fit_engine_factors`' names and values), to see which of them the held-out rows pull."""
    parts = []
    for value in sorted(rows[by].unique()):
        train, test = rows[rows[by] != value], rows[rows[by] == value]
        eff, info = fit_engine_factors(train, base, max_nfev=max_nfev, anchors=anchors)
        if factors is not None:
            factors[value] = dict(zip(info["names"], (float(x) for x in info["x"])))
        parts.append(scored(test, eff))
    return pd.concat(parts).loc[rows.index]


def factor_shifts(folds: dict[Any, dict[str, float]], fitted: dict[str, float],
                  threshold: float = 0.1) -> pd.DataFrame:
    """Each fold's fitted factors over the same factors fitted on every row (`leave_one_out`'s `factors` against
    `fit_engine_factors`' names and values): one column per held-out group, the factors that some fold moves by
    more than `threshold` (a share, either way) as rows; factors a fold did not fit are NaN."""
    ratio = pd.DataFrame({k: pd.Series(v) for k, v in folds.items()}).div(pd.Series(fitted), axis=0)
    moved = (np.abs(np.log(ratio.astype(float))) > np.log1p(threshold)).any(axis=1)
    return ratio[moved].round(3)


def leave_one_model_out(rows: pd.DataFrame, base: Efficiency | None = None, max_nfev: int = 40,
                        anchors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each model's rows predicted with engine factors fitted on the other models' rows (and `anchors`)."""
    return leave_one_out(rows, "model", base, max_nfev=max_nfev, anchors=anchors)


def leave_one_gpu_out(rows: pd.DataFrame, base: Efficiency | None = None, max_nfev: int = 40,
                      anchors: pd.DataFrame | None = None,
                      factors: dict[Any, dict[str, float]] | None = None) -> pd.DataFrame:
    """Each GPU's rows predicted with engine factors fitted on the other GPUs' rows (and `anchors`): whether the
    engine factors carry to a GPU they never saw (`leave_one_out`, `factors` as there)."""
    return leave_one_out(rows, "gpu", base, max_nfev=max_nfev, anchors=anchors, factors=factors)


def mdape_by(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Median APE (%) of TTFT and TPOT (and of throughput where rows measured it), rows and rows predicted per
    group."""
    g = d.groupby(by, observed=True)
    out = pd.DataFrame({"rows": g.size(), "predicted": g["tpot_pred"].count(),
                        "ttft_mdape": g["ttft_ape"].median(), "tpot_mdape": g["tpot_ape"].median()})
    if "thr_ape" in d.columns and d["thr_ape"].notna().any():
        out["throughput_mdape"] = g["thr_ape"].median()
    return out.round(1)


def signed_by(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Median log(predicted / measured) of TTFT and TPOT per group of `scored` rows (> 0: the model reads high),
    beside the rows and the rows each median is over (`ttft_predicted`, `tpot_predicted`): `mdape_by`'s sign, to tell a group's offset from its scatter."""
    t = np.log(d["ttft_pred"].to_numpy(float) / d["ttft_ms"].to_numpy(float))
    p = np.log(d["tpot_pred"].to_numpy(float) / d["tpot_ms"].to_numpy(float))
    g = pd.DataFrame({"t": t, "p": p}, index=d.index).join(d[by]).groupby(by, observed=True)
    return pd.DataFrame({"rows": g.size(), "ttft_predicted": g["t"].count(), "tpot_predicted": g["p"].count(),
                         "ttft_log_ratio": g["t"].median(), "tpot_log_ratio": g["p"].median()}).round(3)


def load_slopes(d: pd.DataFrame, sweep: list[str], min_concurrency: float = 16.0) -> pd.DataFrame:
    """How TTFT grows with load in each sweep of `scored` rows (a deployment and lengths over its client counts,
    the columns `sweep`), measured and predicted: the least-squares line TTFT = intercept + slope x TPOT (ms) over
    its rows of at least `min_concurrency` clients, one row per concurrency (at least three). A closed loop's TTFT
    counts the iterations a prompt waits and the TPOT the iteration's length, so the slope is about the iterations
    a prompt waits per output token's time; a sweep whose measured slope is a multiple of the predicted one grows
    with load in a way no constant before the first token makes up."""
    out = []
    for key, g in d[d["concurrency"] >= min_concurrency].groupby(sweep, observed=True, dropna=False):
        # the predicted rows first: a client count's unpredicted copy must not hide its predicted one
        ok = np.isfinite(g["ttft_pred"].to_numpy(float)) & np.isfinite(g["tpot_pred"].to_numpy(float))
        g = g[ok].drop_duplicates("concurrency")
        if len(g) < 3:
            continue
        km, am = np.polyfit(g["tpot_ms"].to_numpy(float), g["ttft_ms"].to_numpy(float), 1)
        kp, ap = np.polyfit(g["tpot_pred"].to_numpy(float), g["ttft_pred"].to_numpy(float), 1)
        out.append((*(key if isinstance(key, tuple) else (key,)), len(g), km, am, kp, ap))
    return pd.DataFrame(out, columns=[*sweep, "rows", "slope_measured", "intercept_measured_ms",
                                      "slope_predicted", "intercept_predicted_ms"]).round(2)


def length_pairs(d: pd.DataFrame, vary: str = "osl", short: float = 1024.0, long: float = 8192.0) -> pd.DataFrame:
    """What one length does to TPOT at everything else equal: the aggregated `scored` rows paired by their
    measurement key (`_MEASUREMENT_KEY`: deployment, dtypes, the other length and the clients) and release label
    less `vary` ("osl" or "isl"), one pair where both `short` and `long` were measured and predicted (a run is
    compared with itself: its copies under another label pair among themselves). Per pair the median TPOT
    (ms) of each side's predicted rows, measured (``tpot_short``, ``tpot_long``) and predicted (``pred_short``,
    ``pred_long``), and the short side's relative excess over the long one, ``measured`` and ``predicted``
    (short / long - 1). With `vary` "osl" at a fixed prompt, the excess is the prompts' share of the decode
    window (a request every `short` outputs instead of every `long`) less what the longer outputs' mean context
    (isl + osl / 2) adds to each decode step."""
    if vary not in ("osl", "isl"):
        raise ValueError(f"vary={vary!r}: 'osl' or 'isl'")
    ok = (d["mode"] == "agg").to_numpy() & np.isfinite(d["tpot_pred"].to_numpy(float))
    x = d[ok & d[vary].isin([short, long]).to_numpy()]
    key = [c for c in (*_MEASUREMENT_KEY, "engine_version") if c in x.columns and c not in (vary, "mode")]
    med = x.groupby(key + [vary], dropna=False, observed=True)[["tpot_ms", "tpot_pred"]].median().reset_index()
    s, lg = med[med[vary] == short].drop(columns=vary), med[med[vary] == long].drop(columns=vary)
    out = s.merge(lg, on=key, suffixes=("_s", "_l"))
    out = out.rename(columns={"tpot_ms_s": "tpot_short", "tpot_ms_l": "tpot_long", "tpot_pred_s": "pred_short",
                              "tpot_pred_l": "pred_long"})
    out["measured"] = out["tpot_short"] / out["tpot_long"] - 1.0
    out["predicted"] = out["pred_short"] / out["pred_long"] - 1.0
    return out


SILICON_FILE = "serving_silicon.csv"

#: what identifies one measurement: the deployment, lengths and load, with its TTFT and TPOT (`distinct_measurements`).
#: Not the release label: one run is exported as sglang "nightly-dev" and as "nightly-dev-20260216-d3bae71e" (15
#: Qwen3.5 rows), and two releases measuring the same TTFT and TPOT to 1 ms / 0.1 ms on every row of a run is not
#: a coincidence to expect
_MEASUREMENT_KEY = ("model", "engine", "gpu", "mode", "tp", "pp", "attn_dp", "moe_tp", "moe_ep",
                    "weight_dtype", "kv_dtype", "isl", "osl", "concurrency", "prefill_workers", "prefill_tp",
                    "prefill_attn_dp", "prefill_moe_ep", "decode_workers", "decode_tp", "decode_attn_dp",
                    "decode_moe_ep")


#: the part of the key that names the deployment (what the copies of one run may disagree on)
_DEPLOYMENT_KEY = ("mode", "tp", "pp", "attn_dp", "moe_tp", "moe_ep", "prefill_workers", "prefill_tp",
                   "prefill_attn_dp", "prefill_moe_ep", "decode_workers", "decode_tp", "decode_attn_dp",
                   "decode_moe_ep")


def distinct_measurements(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with each measurement once. The silicon file holds the same benchmark run several times over (the
    same deployment, release, lengths and concurrency with the same TTFT and TPOT, from several dumps of one
    results database; 347 of 1,176 predictable rows); counting it once per copy would weight a median and a fit
    by how often a run was exported. TTFT and TPOT are compared at 1 ms and 0.1 ms (the copies differ in
    rounding).

    Some runs are exported under two deployments (the same TTFT and TPOT, to the rounding, labelled e.g. TP 4 EP 4
    in one dump and TP 16 EP 4 in another): one label is wrong and nothing in the row says which, so such a
    measurement is dropped, every copy of it (`ambiguous_deployments` lists them). So is a whole sweep whose decode
    steps another deployment on a different number of GPUs repeats at every load they share (`_twin_sweeps`)."""
    once = _each_once(rows)
    return once[~_dropped(once)].copy()


def _identity(rows: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """The columns `cols` that `rows` has, as text, with TTFT and TPOT at 1 ms / 0.1 ms (the copies' rounding), the
    output throughputs at 1 token/s, and a static batch's size (rows without clients: one table measures many)."""
    extra = {f"_{c}": rows[c].round(0) for c, _ in THROUGHPUT_COLUMNS if c in rows.columns}
    if "concurrency" in rows.columns:
        extra["_static_batch"] = _column(rows, "batch_size").where(~(rows["concurrency"] > 0))
    return rows[[c for c in cols if c in rows.columns]].astype(str).assign(_t=rows["ttft_ms"].round(0),
                                                                          _p=rows["tpot_ms"].round(1), **extra)


def _each_once(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` with every copy of a measurement (the same `_MEASUREMENT_KEY`, TTFT and TPOT) after the first left out."""
    return rows[~_identity(rows, _MEASUREMENT_KEY).duplicated()]


def _ambiguous(rows: pd.DataFrame) -> pd.Series:
    """Mask of the rows whose measurement (everything but the deployment, with TTFT and TPOT at 1 ms / 0.1 ms)
    another row reports under a different deployment."""
    ident = _identity(rows, [c for c in _MEASUREMENT_KEY if c not in _DEPLOYMENT_KEY])
    dep = [c for c in _DEPLOYMENT_KEY if c in rows.columns]
    deployment = rows.groupby(dep, dropna=False).ngroup()
    n_labels = deployment.groupby([ident[c] for c in ident.columns], dropna=False).transform("nunique")
    return n_labels > 1


#: `_twin_sweeps`: two deployments' sweeps are one run under two labels when their TPOT agree within this share at
#: every one of at least `TWIN_MIN_LOADS` shared concurrencies
TWIN_TPOT_REL = 0.02
TWIN_MIN_LOADS = 3


def _twin_sweeps(rows: pd.DataFrame) -> pd.Series:
    """Mask of the aggregated closed-loop rows of a sweep (one model, engine, release, GPU, dtypes and lengths over
    several concurrencies) whose TPOT another deployment of the same sweep on a different number of GPUs (tp x pp x
    attn_dp) matches within `TWIN_TPOT_REL` at each of at least `TWIN_MIN_LOADS` shared concurrencies: every row
    of both deployments. Doubling or quadrupling the GPUs does not leave a decode step unchanged at every load, so
    one of the two labels is wrong, and nothing says which. What the rule dropped in the silicon slice, and how
    close the nearest pairs it keeps come: docs/profiles.md (`_twin_sweeps`)."""
    out = pd.Series(False, index=rows.index)
    need = ("mode", "concurrency", "tpot_ms", "tp")
    if not all(c in rows.columns for c in need):
        return out
    agg = rows[(rows["mode"] == "agg") & (rows["concurrency"] > 0) & (rows["tpot_ms"] > 0)]
    if agg.empty:
        return out
    dep = [c for c in _DEPLOYMENT_KEY if c in agg.columns]
    sweep = [c for c in _MEASUREMENT_KEY if c not in _DEPLOYMENT_KEY and c != "concurrency" and c in agg.columns]
    keys = agg[sweep + ["engine_version"] if "engine_version" in agg.columns else sweep].astype(str)
    gpus = (agg["tp"] * _column(agg, "pp").fillna(1) * _column(agg, "attn_dp").fillna(1)).to_numpy(float)
    f = pd.DataFrame({"sweep": keys.groupby(list(keys.columns), dropna=False).ngroup().to_numpy(),
                      "dep": agg[dep].astype(str).groupby(dep, dropna=False).ngroup().to_numpy(),
                      "gpus": gpus, "conc": agg["concurrency"].to_numpy(float),
                      "tpot": agg["tpot_ms"].to_numpy(float)}, index=agg.index)
    pairs = f.reset_index(names="row").merge(f.reset_index(names="row"), on=["sweep", "conc"], suffixes=("_a", "_b"))
    pairs = pairs[(pairs["dep_a"] < pairs["dep_b"]) & (pairs["gpus_a"] != pairs["gpus_b"])]
    if pairs.empty:
        return out
    pairs = pairs.assign(rel=(pairs["tpot_a"] / pairs["tpot_b"] - 1.0).abs())
    # at each shared load its closest pair of rows (a deployment may have several runs at one load)
    group = ["sweep", "dep_a", "dep_b"]
    closest = pairs.groupby(group + ["conc"])["rel"].min()
    per = closest.groupby(level=group).agg(["size", "max"])
    twins = per[(per["size"] >= TWIN_MIN_LOADS) & (per["max"] <= TWIN_TPOT_REL)].index
    # the rows of those pairs that repeat each other (another run of either deployment at the same load stays)
    hit = pairs.set_index(group).index.isin(twins) & (pairs["rel"] <= TWIN_TPOT_REL).to_numpy()
    out.loc[pd.unique(np.concatenate([pairs["row_a"].to_numpy()[hit], pairs["row_b"].to_numpy()[hit]]))] = True
    return out


def _dropped(once: pd.DataFrame) -> pd.Series:
    """Mask of the rows of `once` (each copy counted once) that one run reports under two deployments: the same
    TTFT and TPOT to the rounding (`_ambiguous`), then, among the others, the sweeps another deployment repeats
    (`_twin_sweeps`)."""
    amb = _ambiguous(once)
    return amb | _twin_sweeps(once[~amb]).reindex(once.index, fill_value=False)


def ambiguous_deployments(rows: pd.DataFrame) -> pd.DataFrame:
    """The usable rows (one per distinct label) that `distinct_measurements` drops because one run is reported
    under several deployments."""
    once = _each_once(rows)
    return once[_dropped(once)].copy()


def _ambiguous_section(p: Any) -> list[str]:
    """Report lines naming the runs `distinct_measurements` drops for their conflicting deployment labels."""
    from .measurements import read_measurements
    from .report import _md

    raw = read_measurements(p, layout="silicon")
    amb = ambiguous_deployments(raw[usable(raw)])
    if amb.empty:
        return []
    by = ["model", "gpu", "engine", "engine_version", "mode", "tp", "attn_dp", "moe_tp", "moe_ep"]
    table = amb.groupby(by, dropna=False).size().rename("runs").reset_index()
    return ["## Dropped: one run under two deployments", "",
            f"{len(amb)} rows (one per label) report a run that another dump reports with the same TTFT and TPOT "
            "(to 1 ms / 0.1 ms) under another deployment, or belong to a sweep whose TPOT a deployment on another "
            f"number of GPUs repeats within {TWIN_TPOT_REL:.0%} at every load they share (at least "
            f"{TWIN_MIN_LOADS}); one label is wrong and the rows do not say which, so none of them is fitted or "
            "scored (`silicon.ambiguous_deployments`):", "", _md(table), ""]


def load_rows(path: str | None = None) -> tuple[pd.DataFrame, Any]:
    """The silicon slice, normalized (`measurements.read_measurements`, SGLang's expert-parallel labels as launched:
    `launched_tp`), restricted to predictable rows, each measurement once (`distinct_measurements`)."""
    from .data import data_path
    from .measurements import read_measurements

    p = data_path(path) if path else data_path().parent / SILICON_FILE
    rows = read_measurements(p, layout="silicon")
    return distinct_measurements(rows[usable(rows)]), p


def run(path: str | None = None, out: str | None = None, loso: bool = True, max_nfev: int = 30,
        logo: bool = False) -> str:
    """Fit the engine factors on every silicon row, merge them into the efficiency JSON (`out`), and write
    objectives/data/fidelity/silicon.md with in-sample and leave-one-model-out MdAPE per model, engine and GPU.
    `logo`: also leave one GPU out (`leave_one_gpu_out`: one more refit per GPU) and report which factors the
    held-out GPU's rows pull (`factor_shifts`). Returns the report text."""
    import datetime as _dt
    import json
    from pathlib import Path

    from objectives.inference.efficiency import DATA_FILE, load_efficiency

    from .data import sha256
    from .report import FIDELITY_DIR, _md

    rows, p = load_rows(path)
    # start from the defaults of the engine factors (not a previous silicon fit), so that the held-out model of
    # the leave-one-model-out fits never shaped their starting point or prior
    from objectives.inference.efficiency import default_efficiency
    loaded = load_efficiency(out) if out and Path(out).exists() else load_efficiency()
    fresh = default_efficiency().params
    base = Efficiency({**loaded.params, **{k: fresh[k] for k in ENGINE_FACTOR_NAMES}}, loaded.meta)
    anchors = dense_anchors()
    eff, info = fit_engine_factors(rows, base, max_nfev=max_nfev, anchors=anchors)
    target = Path(out) if out else DATA_FILE
    raw = json.loads(target.read_text()) if target.exists() else {"meta": {}, "params": {}}
    # every factor this fit owns, fitted or held at its default, so the file holds what the fit ran with
    for name in ENGINE_FACTOR_NAMES:
        raw.setdefault("params", {})[name] = copy.deepcopy(eff.params[name])
    raw.setdefault("meta", {})["silicon_fit"] = {
        "fit_date": _dt.date.today().isoformat(), "data_file": p.name, "data_sha256": sha256(p),
        "rows": int(len(rows)), "fitted_factors": info["names"], "nfev": info["nfev"],
        "method": "scipy.optimize.least_squares, soft-L1 on log(pred/measured) of TTFT and TPOT, measured-profile "
                  "path (engine = the row's engine), light log-prior; objectives/calibration/silicon.py"}
    target.write_text(json.dumps(raw, indent=1) + "\n")
    from objectives.inference.core import reload_default_eff
    reload_default_eff()
    ins = scored(rows, eff)
    parts = ["# Silicon slice: real serving measurements (vLLM, SGLang, TensorRT-LLM), measured-profile path", "",
             f"Data: `{p.name}` (sha256 {sha256(p)[:12]}), {len(rows)} distinct predictable measurements (a run "
             "exported in several dumps counted once: `distinct_measurements`). Command: "
             "`python -m objectives.calibration silicon`. Predictions: `inference.max_throughput(..., "
             "concurrency=C, engine=<row's engine>)` (agg), `serving.analytical.disagg_closed_loop` (disagg).", "",
             *_ambiguous_section(p),
             "## In-sample (engine factors fitted on all rows)", "",
             _md(mdape_by(ins, ["model", "engine"])), "", _md(mdape_by(ins, ["gpu"])), "",
             _md(mdape_by(ins, ["mode", "engine"])), "",
             "By collection month (the source's `measured=` day, `collected`: sweeps of one deployment measured "
             "in different months can differ by more than the model's error):", "",
             _md(mdape_by(ins.assign(month=collected(ins).str[:7].replace("", "unknown")), ["engine", "gpu", "month"])),
             "",
             f"All rows: TTFT MdAPE {ins['ttft_ape'].median():.1f} %, TPOT MdAPE {ins['tpot_ape'].median():.1f} %, "
             f"{int(ins['tpot_pred'].notna().sum())} of {len(ins)} predicted.", ""]
    summary: dict[str, Any] = {"in_sample": _summary(ins)}
    if len(anchors):
        ratio = np.exp(_anchor_resid(anchors, eff))
        summary["dense_anchors"] = {"rows": int(len(anchors)), "pred_over_measured": [float(x) for x in ratio]}
        parts += ["Dense decode steps fitted beside the rows (`dense_anchors`: the published batch-1 inter-token "
                  f"latencies of {', '.join(sorted(set(anchors['model'])))}, tuned TensorRT-LLM builds; they pin "
                  f"`profile_layer_us` = {eff['profile_layer_us']['vllm']:.1f} us per layer, an MoE layer adds "
                  f"`profile_moe_layer_us` = {eff['profile_moe_layer_us']:.1f} us): predicted / measured "
                  f"{', '.join(f'{x:.3f}' for x in ratio)}.", ""]
    if loso:
        lo = leave_one_model_out(rows, base, max_nfev=max_nfev, anchors=anchors)
        summary["leave_one_model_out"] = _summary(lo)
        parts += ["## Leave one model out (factors fitted on the other three models)", "",
                  _md(mdape_by(lo, ["model", "engine"])), "", _md(mdape_by(lo, ["gpu"])), "",
                  _md(mdape_by(lo, ["engine"])), "", _md(mdape_by(lo, ["mode", "engine"])), "",
                  f"All rows: TTFT MdAPE {lo['ttft_ape'].median():.1f} %, TPOT MdAPE "
                  f"{lo['tpot_ape'].median():.1f} % (targets: TTFT <= 20 %, TPOT <= 10 %).", ""]
    if logo:
        folds: dict[Any, dict[str, float]] = {}
        lg = leave_one_gpu_out(rows, base, max_nfev=max_nfev, anchors=anchors, factors=folds)
        summary["leave_one_gpu_out"] = _summary(lg)
        shifts = factor_shifts(folds, dict(zip(info["names"], (float(x) for x in info["x"]))))
        parts += ["## Leave one GPU out (factors fitted on the other GPUs' rows)", "",
                  _md(mdape_by(lg, ["gpu"])), "", _md(mdape_by(lg, ["gpu", "model", "engine"])), "",
                  f"All rows: TTFT MdAPE {lg['ttft_ape'].median():.1f} %, TPOT MdAPE "
                  f"{lg['tpot_ape'].median():.1f} %.", "",
                  "Factors a fold without the GPU's rows fits more than 10 % away from the fit on all rows (fold / "
                  "all rows; `factor_shifts`): the ones the held-out GPU's rows pull.", "",
                  _md(shifts) if len(shifts) else "(none)", ""]
    from objectives.serving.scheduler import API_SERVER_MS
    from objectives.serving.workload import DEFAULT_OUTPUT_SPREAD

    sim = simulated(rows)
    parts += [f"## The serving simulator on the aggregated rows (shipped factors, {BENCHMARK_ROUNDS} x C requests per row)",
              "",
              "Each row's C closed-loop clients with `serving.Workload`'s default output spread (each output drawn "
              f"within +-{DEFAULT_OUTPUT_SPREAD:.0%} of the row's length, `output_spread`), through the engine's API "
              f"server (each new request held {API_SERVER_MS:g} ms, one at a time, before the scheduler sees it: "
              "`serving.Scheduler.frontend_ms`'s default).", "",
              _md(mdape_by(sim, ["model", "engine"])), "",
              f"All aggregated rows: TTFT MdAPE {sim['ttft_ape'].median():.1f} %, TPOT MdAPE "
              f"{sim['tpot_ape'].median():.1f} %, {int(sim['tpot_pred'].notna().sum())} of {len(sim)} simulated.", ""]
    # the clients' synchronization, per load: the default spread against every length exactly the row's and
    # against no API server (a client's next request then reaches the scheduler on the iteration boundary its
    # previous one finished at), and prompts and outputs +-10 % behind a 5 ms API server per replica
    exact = simulated(rows, output_spread=0.0)
    bare = simulated(rows, frontend_ms=0.0)
    fe = simulated(rows, output_spread=0.1, input_spread=0.1, frontend_ms=5.0)
    replays = pd.concat([sim.assign(outputs="default"), exact.assign(outputs="exact"),
                         bare.assign(outputs="no API server"), fe.assign(outputs="+-10 %, front end 5 ms")])
    replays["clients"] = pd.cut(replays["concurrency"], [0, 16, 64, np.inf],
                                labels=["C <= 16", "C 32-64", "C >= 128"])
    both = replays[replays["outputs"].isin(["default", "exact", "no API server"])]
    parts += ["### Clients in waves or desynchronized", "",
              "The same replay with every output exactly the row's length (`simulated(rows, output_spread=0)`): "
              "the C clients that start together finish together and send their prompts together for the whole "
              "run, where with the default spread they desynchronize after the first round; and without the API "
              "server's hold (`simulated(rows, frontend_ms=0)`), where a client's next request reaches the "
              "scheduler on the very iteration boundary its previous one finished at and never waits for the "
              "iteration in progress. Per engine and concurrency:", "",
              _md(mdape_by(both, ["engine", "clients", "outputs"])), "",
              f"All aggregated rows with exact lengths: TTFT MdAPE {exact['ttft_ape'].median():.1f} %, TPOT MdAPE "
              f"{exact['tpot_ape'].median():.1f} %; without the API server: {bare['ttft_ape'].median():.1f} %, "
              f"{bare['tpot_ape'].median():.1f} %.", ""]
    parts += ["### Spread lengths behind an API server", "",
              "Prompts and outputs drawn within +-10 % of the row's, each replica's requests passing one at a time "
              "through a 5 ms front end (`simulated(rows, output_spread=0.1, input_spread=0.1, frontend_ms=5.0)`; "
              "`serving.Scheduler.frontend_ms`). Both are assumptions about the harness and the engine that the "
              "rows do not state; neither is the default (+-2 % outputs, 2 ms). Per engine and concurrency:", "",
              _md(mdape_by(replays, ["engine", "outputs"])), "", _md(mdape_by(replays, ["clients", "outputs"])), "",
              f"All aggregated rows: TTFT MdAPE {fe['ttft_ape'].median():.1f} %, TPOT MdAPE "
              f"{fe['tpot_ape'].median():.1f} %.", ""]
    # the summary `report` shows beside the published tables (objectives/calibration/report.py)
    raw["meta"]["silicon_fit"]["scores"] = summary
    target.write_text(json.dumps(raw, indent=1) + "\n")
    text = "\n".join(parts)
    FIDELITY_DIR.mkdir(parents=True, exist_ok=True)
    (FIDELITY_DIR / "silicon.md").write_text(text)
    return text


def _summary(d: pd.DataFrame) -> dict[str, Any]:
    """MdAPE tables of scored rows per model, engine, GPU and (mode, engine), and over all rows, as JSON-ready
    records."""
    out: dict[str, Any] = {k: mdape_by(d, [k]).reset_index().to_dict("records") for k in ("model", "engine", "gpu")}
    # aggregated vs disaggregated deployments per engine (issue 14's disaggregated target)
    out["mode_engine"] = mdape_by(d, ["mode", "engine"]).reset_index().to_dict("records")
    out["all"] = {"rows": int(len(d)), "predicted": int(d["tpot_pred"].notna().sum()),
                  "ttft_mdape": round(float(d["ttft_ape"].median()), 1),
                  "tpot_mdape": round(float(d["tpot_ape"].median()), 1)}
    return out
