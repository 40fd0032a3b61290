"""`estimate` (one static batch) and `max_throughput` (steady-state in-flight batching at the best feasible batch).

Both are vectorized: every argument may be a scalar or an array, numpy broadcasting gives one row per
configuration, and no Python loop runs per configuration.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from objectives.catalog.types import DTYPES
from objectives.profiles import forms_idle_ahead, per_engine
from objectives.uncertainty import check_level, inference_intervals

from . import kv_pool, lockstep, memory, power
from . import speculative as speculative_mod
from .admission import (
    SGLANG,
    churn,
    front_stints,
    held,
    overflow_wait,
    past_clip,
    preemption_churn,
    queue_blend,
    recomputed,
    retraction_wait,
    stints,
    wave_overflow,
    wave_retraction,
)
from .core import Prepared, prepare
from .efficiency import Efficiency
from .measured import MOE_A2A, MOE_ACT_DTYPES, S_EXTRAP, S_INTERP, SOURCES, beyond_reach
from .ops import busy_s, forward_s, idle_s
from .resolve import (
    PROFILES,
    R_CONTEXT,
    R_EP,
    R_KV,
    R_LAYOUT,
    R_MEM,
    R_OK,
    R_PP,
    R_TP,
    REASONS,
    ROOFLINE_BUDGETS,
    context_invalid,
    engine_behaviour,
    engine_behaviours,
    flag,
    pool_batch,
    positive,
    reason_text,
    serves_past_context,
)
from .speculative import resolve_speculative

Num = Any

#: Budgets used when the caller does not say and the row has no engine (`resolve.ROOFLINE_BUDGETS`: TensorRT-LLM
#: trtllm-bench / tuning guide defaults)
DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_NUM_TOKENS = ROOFLINE_BUDGETS


def micro_batches(pp: Num, n: Num, lanes: Num = None) -> Num:
    """The micro-batches a pipeline of `pp` stages splits the work of `n` sequences into: m = min(pp, max(n, 1)),
    at most `lanes` where given (the batches in flight, `pipeline_lanes`: min(m, max(lanes, 1))). Scalars (Python
    numbers) -> a Python number; else an ndarray."""
    num = (int, float)
    if isinstance(pp, num) and isinstance(n, num) and (lanes is None or isinstance(lanes, num)):
        m = min(pp, max(n, 1.0))
        return m if lanes is None else min(m, max(lanes, 1.0))
    m = np.minimum(pp, np.maximum(n, 1.0))
    return m if lanes is None else np.minimum(m, np.maximum(lanes, 1.0))


def replica_time_s(p: Prepared, T: Num, A: Num, D: Num, K: Num, S: Num, n_seqs: Num, prefill: bool = False,
                   whole: bool = False) -> Num:
    """Time (s) for one model replica to advance all its work once, with pipeline micro-batching.

    With pp stages the work is split into m = min(pp, n_seqs) micro-batches (`micro_batches`). Decode/iteration
    (steady-state rotation): time = forward(x / m). Prefill of a static batch (pipeline fill and drain):
    (m + pp - 1) / pp x forward(x / m). For pp == 1 both are forward(x). With speculative decoding (``p.spec``)
    the D decodes in token time (`speculative_time_s`; `whole`: the work is one iteration, not a mean one).
    """
    if p.spec is not None:
        return speculative_time_s(p, T, A, D, K, S, n_seqs, prefill, whole)
    return _replica_time_s(p, T, A, D, K, S, n_seqs, prefill)


def _split(p: Prepared, n_seqs: Num) -> Num:
    """`micro_batches` of `p`'s rows for `n_seqs` sequences: 1.0 where every row has pp 1 (no array work)."""
    return 1.0 if np.all(np.asarray(p.pp) == 1) else micro_batches(p.pp, n_seqs)


def _draft_extend_s(p: Prepared, T: Num, A: Num, n_pf: Num, n_seqs: Num) -> Num:
    """`speculative.draft_extend_s` of the prompt work (T, A; `n_pf` finishing prompts) split as `replica_time_s`
    splits it over the micro-batches of `n_seqs` sequences."""
    m = _split(p, n_seqs)
    return speculative_mod.draft_extend_s(p.coeffs, p.shape.n_layers, T / m, A / m, n_pf / m)


def speculative_full_s(p: Prepared, T: Num, A: Num, D: Num, K: Num, S: Num, n_seqs: Num,
                       prefill: bool = False) -> Num:
    """`replica_time_s` of ONE speculative iteration (``p.spec``, `inference.speculative`): the prompt work (T, A)
    and the draft layer's prefill of it (`speculative.draft_extend_s`) beside a verify of k + 1 tokens and logit
    rows for each of the D decodes (the host time `forward_s` charges per extra token taken back), and k draft
    forwards at D rows."""
    spec, c = p.spec, p.coeffs
    k = spec.draft_tokens
    V = speculative_mod.verify_rows(spec, D)
    # the verify and the drafts split alike into the micro-batches of the n_seqs sequences (pp > 1): each
    # micro-batch's k drafts at its D / m rows
    m = _split(p, n_seqs)
    return (_replica_time_s(p, T, A, V, K, S + V - D, n_seqs, prefill) - speculative_mod.host_excess_s(c, spec, D) / m
            + k * speculative_mod.draft_s(c, p.shape.n_layers, D / m, K / m)
            + _draft_extend_s(p, T, A, S - D, n_seqs))


def speculative_time_s(p: Prepared, T: Num, A: Num, D: Num, K: Num, S: Num, n_seqs: Num,
                       prefill: bool = False, whole: bool = False) -> Num:
    """`replica_time_s` with speculative decoding (``p.spec``) in token time, a deterministic expectation: an
    iteration that advances each of its D decodes by one token is charged its prompt work (T, A) and the draft
    layer's prefill of it (`speculative.draft_extend_s`) in full and the speculative iteration's decode work over
    it (`speculative_full_s`) / E, each verify emitting E = `Speculative.expected_tokens` tokens a sequence: the
    mean over iterations where (T, A, D, K, S) is a mean iteration's work. `whole`: the work is ONE iteration
    (`StepModel.time_ms`, the TTFT's own iterations, `split_steps`' prefill iteration): one that carries prompt
    tokens beside decodes lasts a full speculative iteration (its prompts' first tokens wait for all of it; its
    decodes are credited one token, not E, so a mixed batch's throughput is understated by up to E - 1 tokens a
    decode); a decode-only one is 1 / E of it either way."""
    full = speculative_full_s(p, T, A, D, K, S, n_seqs, prefill)
    return _token_time(p, T, D, full, np.where(np.asarray(T) > 0, _prompt_alone_s(p, T, A, D, S, prefill), 0.0),
                       whole)


def _prompt_alone_s(p: Prepared, T: Num, A: Num, D: Num, S: Num, prefill: bool = False) -> Num:
    """The prompt work of a speculative iteration alone (s): its T tokens and A query-key pairs with their S - D
    logit rows, split over those S - D finishing prompts' micro-batches, and the draft layer's prefill of it
    (`_token_time`'s `pre`)."""
    return _replica_time_s(p, T, A, 0.0, 0.0, S - D, S - D, prefill) + _draft_extend_s(p, T, A, S - D, S - D)


def _token_time(p: Prepared, T: Num, D: Num, full: Num, pre: Num, whole: bool) -> Num:
    """A quantity of a speculative iteration (its time, busy or compute seconds) in token time, as
    `speculative_time_s` states it: `full` the whole iteration's, `pre` its prompt work's (0 without prompt
    tokens); decodes over E, or (`whole`, with prompt tokens) the whole iteration; `pre` without decodes."""
    tok = pre + (full - pre) / p.spec.expected_tokens
    if whole:
        tok = np.where(np.asarray(T) > 0, full, tok)
    return np.where(np.asarray(D) > 0, tok, pre)


def _replica_time_s(p: Prepared, T: Num, A: Num, D: Num, K: Num, S: Num, n_seqs: Num, prefill: bool = False) -> Num:
    """`replica_time_s` with one token a decode."""
    c = p.coeffs
    if np.all(np.asarray(p.pp) == 1):
        return forward_s(c, T, A, D, K, S)
    m = micro_batches(p.pp, n_seqs)
    t = forward_s(c, T / m, A / m, D / m, K / m, S / m)
    if prefill:
        t = t * (m + p.pp - 1.0) / p.pp
    return t


def replica_source(p: Prepared, M: Num, S: Num, prompts: tuple[Num, Num] | None,
                   decodes: tuple[tuple[Num, Num], ...], n_seqs: Num) -> np.ndarray:
    """Each row's `source` code (`measured.SOURCES`) over the forwards it is priced from, as `replica_time_s` splits
    them into pipeline micro-batches (`n_seqs` sequences): at most M tokens and S logit rows a forward, its
    `prompts` (T, A) and `decodes` ((D, K), ...), `measured.beyond_reach`' arguments. An "interpolated" row (every
    table shape measured) says "extrapolated" where one of these reads a curve beyond what its kernel tables
    measured (tokens, logit rows, prompt and KV lengths past the collector's last cells: the builders' trend and
    edge fills, `profiles.grid.Table.reach`)."""
    src = np.asarray(p.source_code)
    cv = p.coeffs.curves
    if cv is None or cv.reach is None or not np.any(src == S_INTERP):
        return src.astype(np.int8)
    if not np.all(np.asarray(p.pp) == 1):
        m = micro_batches(p.pp, n_seqs)
        M, S = M / m, S / m
        prompts = None if prompts is None else (prompts[0] / m, prompts[1] / m)
        decodes = tuple((D / m, K / m) for D, K in decodes)
    far = beyond_reach(p.coeffs, M, S, prompts, decodes)
    return np.where((src == S_INTERP) & far, S_EXTRAP, src).astype(np.int8)


def replica_compute_s(p: Prepared, T: Num, A: Num, D: Num, K: Num, S: Num, n_seqs: Num) -> Num:
    """Seconds of `replica_time_s`'s forward in which the tensor cores are saturated (`power.compute_s`), with the
    same micro-batch split (the pipeline bubble of a prefill is not compute); the power model's compute share."""
    if np.all(np.asarray(p.pp) == 1):
        return power.compute_s(p.coeffs, T, A, D, K, S)
    m = micro_batches(p.pp, n_seqs)
    return power.compute_s(p.coeffs, T / m, A / m, D / m, K / m, S / m)


def chunk_pass_s(p: Prepared, t: Num, T: Num, A: Num, D: Num, K: Num, N: Num) -> Num:
    """`t` (s), an iteration that carries a prompt chunk (T tokens, A query-key pairs) beside D decodes reading K
    cached tokens, no shorter than the chunk's own micro-batch passing every pipeline stage where pp > 1: a chunk
    lives in one of the min(pp, N) micro-batches (with its share of the decodes), so the iteration's split over
    them (`replica_time_s`) bounds its throughput, not the prompt's latency. Unchanged where pp == 1; the
    simulator's `StepModel.time_ms` applies the same rule."""
    piped = np.asarray(p.pp) > 1
    if not np.any(piped):
        return t
    lone = forward_s(p.coeffs, *chunk_work(p, T, A, D, K, N))
    return np.where(piped, np.maximum(t, lone), t)


def chunk_work(p: Prepared, T: Num, A: Num, D: Num, K: Num, N: Num) -> tuple[Num, Num, Num, Num, Num]:
    """The work (T, A, D, K, S: `forward_s`' arguments) of a prompt chunk's own micro-batch (`chunk_pass_s`): the
    chunk (T tokens, A query-key pairs) beside its micro-batch's share of the D decodes reading K cached tokens
    (`micro_batches` of N sequences), their logit rows and the chunk's own."""
    m = micro_batches(p.pp, N)
    return T, A, D / m, K / m, D / m + 1.0


#: rows evaluated per block in large sweeps: the temporaries of one block stay in cache and are recycled by the
#: allocator, instead of hundreds of fresh array-sized temporaries (page faults dominate otherwise)
BLOCK_ROWS = 32768
_INT_OUT = ("batch_size",)


def _evaluate(p: Prepared, rows: Mapping[str, Num], core: Any) -> dict[str, np.ndarray]:
    """`core(p, **rows)` -> {column: values} over every row of p.row_shape, as flat arrays. Small results are
    computed at once; factorized or large ones in blocks of BLOCK_ROWS rows (same formulas, same numbers)."""
    shape = p.row_shape
    n = int(np.prod(shape)) if shape else 1
    if p.inv is None and n <= BLOCK_ROWS:
        res = core(p, **{k: np.asarray(v, dtype=float) if np.ndim(v) else v for k, v in rows.items()})
        return {k: np.broadcast_to(np.asarray(v), shape).ravel() if shape else np.asarray(v).reshape(1)
                for k, v in res.items()}
    flat = {k: np.broadcast_to(v, shape).ravel() if np.ndim(v) else v for k, v in rows.items()}
    out: dict[str, np.ndarray] = {}
    for start in range(0, n, BLOCK_ROWS):
        sl = slice(start, min(n, start + BLOCK_ROWS))
        sub = p.take(p.inv[sl]) if p.inv is not None else p
        res = core(sub, **{k: v[sl].astype(float) if np.ndim(v) else v for k, v in flat.items()})
        for k, v in res.items():
            if k not in out:
                dt = bool if k == "fits" else (np.int8 if k in ("reason", "source") else float)
                out[k] = np.empty(n, dtype=dt)
            out[k][sl] = v
    return out


@functools.lru_cache(maxsize=256)
def _dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """One CategoricalDtype per list of categories: building one validates the categories (~80 us each with
    pandas 3), which dominated the result table of a small batch."""
    return pd.CategoricalDtype(list(categories))


def _categorical(names: list[str] | tuple[str, ...], codes: np.ndarray) -> pd.Categorical:
    cats = tuple(dict.fromkeys(names))
    if len(cats) != len(names):  # duplicate names (same record twice): remap
        codes = np.array([cats.index(v) for v in names])[codes]
    return pd.Categorical.from_codes(codes, dtype=_dtype(cats), validate=False)


#: reason codes whose text names the configuration's value and the valid ones (`resolve.reason_text`)
_NAMED_REASONS = (R_TP, R_EP, R_LAYOUT, R_PP, R_KV)


def _reasons(p: Prepared, codes: np.ndarray, res: Mapping[str, np.ndarray] | None = None,
             memory_setting: float | None = None) -> pd.Categorical:
    """The reason column: `REASONS` by code, and for a degree the rule refuses (`_NAMED_REASONS`) the text of its
    distinct (code, model, engine, tp, pp, ep, attn_dp, gpu), which names the value and the valid ones
    (`resolve.reason_text`; one text per distinct refusal, not per row); a refusal for want of memory on an engine
    whose setting is a share of the device, the setting in force and the one it fits from (`_memory_reasons`,
    from the memory columns of `res`; `memory_setting`: the one given, None: the engine's default)."""
    sel = np.flatnonzero(np.isin(codes, _NAMED_REASONS)) if p.model_records else np.empty(0, dtype=np.intp)
    mem_sel, mem_inv, mem_texts = (_memory_reasons(p, codes, res, memory_setting) if res is not None
                                   else (np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), []))
    if not len(sel) and not len(mem_sel):
        return _categorical(REASONS, codes)
    texts: list[str] = []
    inv = np.empty(0, dtype=np.intp)
    if len(sel):
        keys = np.stack([codes[sel].astype(np.int64)] + [p.column(k, np.int64)[sel] for k in (
            "model_index", "engine_code", "tp", "pp", "ep", "attn_dp", "gpu_index")], axis=1)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        texts = [reason_text(int(c), p.model_records[mi], str(p.engine_names[e]), int(t), int(pp), int(ep), int(a),
                             p.gpu_records[gi] if p.gpu_records else None)
                 for c, mi, e, t, pp, ep, a, gi in uniq]
    cats = tuple(dict.fromkeys((*REASONS, *texts, *mem_texts)))
    at = {t: i for i, t in enumerate(cats)}
    out = codes.astype(np.int32)
    if len(sel):
        out[sel] = np.array([at[t] for t in texts], dtype=np.int32)[np.asarray(inv).ravel()]
    if len(mem_sel):
        out[mem_sel] = np.array([at[t] for t in mem_texts], dtype=np.int32)[mem_inv]
    return pd.Categorical.from_codes(out, dtype=_dtype(cats), validate=False)


def _rows_at(p: Prepared) -> Callable[[Any, np.ndarray], np.ndarray]:
    """A config-level value of `p` at some of its result's rows (flat indices), as `Prepared.rows_of(v)[rows]`
    without building the whole column."""
    shape = p.row_shape

    def at(v: Any, rows: np.ndarray) -> np.ndarray:
        if np.ndim(v) == 0:
            return np.full(len(rows), v)
        if p.inv is not None:
            return np.asarray(v)[p.inv[rows]]
        return np.broadcast_to(np.asarray(v), shape)[np.unravel_index(rows, shape)] if shape else \
            np.asarray(v).reshape(-1)[np.zeros(len(rows), dtype=np.intp)]
    return at


def _memory_reasons(p: Prepared, codes: np.ndarray, res: Mapping[str, np.ndarray],
                    memory_setting: float | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows, each row's text's index into the texts, texts) of the R_MEM refusals on an engine whose memory setting is a share of the device (vLLM,
    SGLang: `kv_pool.SHARE_OF_DEVICE`): `REASONS`' text, the setting in force (the engine's default as the share
    of the device its pool takes, `kv_pool`, else the one given) and the smallest one, in hundredths, the row fits
    from (`kv_pool.fits_from`): what the engine's pool must hold over the device's memory, from the row's memory
    columns (the weights, its KV cache and the runtime reserve, and the activations where the pool holds them;
    SGLang keeps them in its own reservation). One text per distinct (engine, GPU, setting in force, setting
    needed), at most a hundred settings each: a sweep's refusals share a few texts."""
    sel = np.flatnonzero(codes == R_MEM)
    if not len(sel):
        return sel, sel, []
    at = _rows_at(p)
    eng = at(p.engine_code, sel).astype(np.int64)
    whole = kv_pool.share_of_device(p.engine_names)[eng]
    sel, eng = sel[whole], eng[whole]
    if not len(sel):
        return sel, sel, []
    mem_gpu, pool, pooled, reserve = (at(x, sel).astype(float) for x in (p.mem_gpu, p.pool_gpu, p.act_pooled,
                                                                           p.reserve_gpu))
    gib = memory.GIB
    held_out = (res["weights_gib"][sel] + res["kv_cache_gib"][sel]) * gib + reserve
    need = np.where(pooled > 0, res["mem_per_gpu_gib"][sel] * gib, held_out) / mem_gpu
    up = np.where(need <= 1.0, np.ceil(need * 100.0) / 100.0, 2.0)     # 2: no setting makes room
    gpu_of = at(p.gpu_index, sel).astype(np.int64)
    # one int key per (engine, GPU, pool share in thousandths, setting needed in hundredths), hashed (a sweep's
    # half million refusals: a sort of tuples took longer than the model)
    key = ((eng * (len(p.gpu_names) + 1) + gpu_of) * 1001 + np.round(pool / mem_gpu * 1e3).astype(np.int64)) * 201 \
        + np.round(up * 100.0).astype(np.int64)
    inv, uniq = pd.factorize(key)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inv[::-1]] = np.arange(len(inv))[::-1]       # the first row of each key
    texts = []
    for i in first:
        name, gpu = str(p.engine_names[int(eng[i])]), p.gpu_names[int(gpu_of[i])]
        flag = kv_pool.memory_flag(name)
        pool_of = f"gives its pool {pool[i] / mem_gpu[i]:.3f} of {gpu}'s {mem_gpu[i] / gib:.1f} GiB"
        now = (f"{name}'s default {flag} {pool_of}" + (
            " (SGLang reserves the rest for activations and CUDA graphs, more with each attention-DP rank: "
            "kv_pool.sglang_reserved_bytes)" if kv_pool.is_sglang([name])[0] else "")
            if memory_setting is None else f"{flag}={memory_setting:g} {pool_of}")
        why = f"{REASONS[R_MEM]}: {now}"
        why += (f"; {kv_pool.fits_from(name, float(up[i]))}" if up[i] <= 1.0
                else "; no setting makes room: more GPUs (tp, pp, ep) or a smaller batch")
        texts.append(why)
    return sel, np.asarray(inv), texts


def _frame(p: Prepared, res: Mapping[str, np.ndarray], inputs: Mapping[str, Num],
           memory_setting: float | None = None) -> pd.DataFrame:
    """The result table: metric columns from `res`, then reason, the configuration (as resolved) and `inputs`
    (per-row arguments echoed as int64 columns unless `res` computed them, like max_throughput's batch_size).
    `memory_setting`: the engines' memory setting the rows ran at (None: each one's default), for the reason."""
    shape = p.row_shape
    n = len(res["fits"])
    out: dict[str, Any] = {k: res[k] for k in METRIC_COLUMNS}
    out["reason"] = _reasons(p, res["reason"].astype(np.int8, copy=False), res, memory_setting)
    small = np.int8 if max(len(p.model_names), len(p.gpu_names)) < 127 else np.int32
    out["model"] = _categorical(p.model_names, p.column("model_index", small))
    out["gpu"] = _categorical(p.gpu_names, p.column("gpu_index", small))
    for k in ("tp", "pp", "dp", "ep", "attn_dp", "n_gpus"):
        out[k] = p.column(k, np.int64)
    out["eplb"] = p.column("eplb", bool)
    out["moe_act_dtype"] = _categorical(MOE_ACT_DTYPES, p.column("moe_act", np.int8))
    out["moe_a2a"] = _categorical(MOE_A2A, p.column("moe_a2a", np.int8))
    for k, f in (("weight_dtype", "weight_code"), ("act_dtype", "act_code"), ("kv_dtype", "kv_code")):
        out[k] = _categorical(DTYPES, p.column(f, np.int8))
    out["engine_profile"] = _categorical(PROFILES, p.column("profile_code", np.int8))
    out["engine"] = _categorical(list(p.engine_names), p.column("engine_code", np.int8))
    out["source"] = _categorical(SOURCES, res["source"].astype(np.int8, copy=False) if "source" in res
                                 else p.column("source_code", np.int8))
    for k, v in inputs.items():
        if k in res:
            out[k] = res[k].astype(np.int64)
        elif np.ndim(v) == 0:
            out[k] = np.full(n, v, dtype=np.int64)
        else:
            out[k] = np.broadcast_to(v, shape).ravel().astype(np.int64)
    return pd.DataFrame(out, copy=False)


METRIC_COLUMNS = ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "throughput_tok_s_per_gpu", "mem_per_gpu_gib",
                  "fits", "usd_per_mtok", "joules_per_tok", "weights_gib", "kv_cache_gib")


def _empty_frame(extra: tuple[str, ...]) -> pd.DataFrame:
    """The result of zero configurations (an empty array argument): the usual columns and dtypes, no rows."""
    out: dict[str, Any] = {k: np.empty(0, dtype=bool if k == "fits" else float) for k in METRIC_COLUMNS}
    out["reason"] = pd.Categorical([], categories=list(REASONS))
    out["model"] = pd.Categorical([])
    out["gpu"] = pd.Categorical([])
    for k in ("tp", "pp", "dp", "ep", "attn_dp", "n_gpus"):
        out[k] = np.empty(0, dtype=np.int64)
    out["eplb"] = np.empty(0, dtype=bool)
    out["moe_act_dtype"] = pd.Categorical([], categories=list(MOE_ACT_DTYPES))
    out["moe_a2a"] = pd.Categorical([], categories=list(MOE_A2A))
    for k in ("weight_dtype", "act_dtype", "kv_dtype"):
        out[k] = pd.Categorical([], categories=list(DTYPES))
    out["engine_profile"] = pd.Categorical([], categories=list(PROFILES))
    out["engine"] = pd.Categorical([])
    out["source"] = pd.Categorical([], categories=list(SOURCES))
    for k in extra:
        out[k] = np.empty(0, dtype=np.int64)
    return pd.DataFrame(out)


def _with_profile(efficiency: Efficiency | None, profile: Any) -> Efficiency | None:
    """`profile=`: a calibrated profile file (`dse calibrate`) whose factors override `efficiency`'s."""
    if profile is None:
        return efficiency
    from objectives.calibration.calibrate import load_profile
    return load_profile(profile, efficiency)


@speculative_mod.per_row_spec
def estimate(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None, act_dtype: Any = None,
             kv_dtype: Any = None, batch_size: Any = 1, input_len: Any = 1024, output_len: Any = 128, *,
             dp: Any = 1, ep: Any = 1, prices: Mapping[str, float] | None = None,
             max_num_tokens: Any = None, engine_profile: Any = "standard",
             engine: Any = None, attn_dp: Any = 1, efficiency: Efficiency | None = None,
             profile: Any = None, interval: float | None = None, moe_dp: float | None = None,
             eplb: Any = False, moe_act_dtype: Any = None, moe_a2a: Any = None,
             speculative: Any = None, gpu_memory_utilization: float | None = None) -> pd.DataFrame:
    """Latency, throughput, memory, cost and energy of one static batch, one row per configuration.

    `batch_size` identical requests per model replica: a prefill of `input_len` tokens each (the whole batch
    at once), then `output_len - 1` decode steps with the context growing step by step; `tpot_ms` is the mean
    decode step over the whole output (closed form: decode time is linear in the context, so the mean step is
    the step at the mean context input_len + output_len / 2). With `output_len == 1`, `tpot_ms` is the step
    that would follow the prompt.

    Arguments (scalars or arrays, broadcast together): model (catalog name / HF id / `Model`), gpu (catalog
    name / alias / `GPU`), tp, pp, dp (replicas), ep (expert parallel inside the TP group), weight/act/kv dtype
    (see `objectives.inference.resolve` for the default rules), batch_size, input_len, output_len (tokens).
    `prices`: {gpu name: USD per GPU-hour} overrides. `max_num_tokens`: activation buffer size for the memory
    model (engines run long prefills in chunks of at most this many tokens; None, the default: each row's engine's
    own token budget on its GPU, as `max_throughput` takes it, `resolve.engine_budgets`; the roofline's
    `DEFAULT_MAX_NUM_TOKENS`). `engine_profile`: "standard" (the
    published benchmark builds; default), "tuned" or "baseline" (the TensorRT-LLM tuning guide's tuned and
    default-flag builds; see `resolve.PROFILES` and the factors in `efficiency`); may be an array.
    `engine`: the serving engine whose measured kernel profile costs the GEMMs, attention, experts and
    all-reduces: "vllm", "sglang", "trtllm" (newest profiled version for the GPU) or "name==version", "auto" / None
    (default: vLLM's newest profile where the GPU has one, else another engine's), "roofline" (the closed form
    with fitted factors); may be an array. A GPU
    without a profile falls back to the roofline; the `source` column says which (roofline | interpolated |
    extrapolated: a lookup outside what a table measured, its shape axes or, for the row's prompt and decode step,
    its tokens, batch x length and message sizes past the collector's last cells, `replica_source`).
    `attn_dp`: attention data-parallel ranks inside one deployment (each runs its own batch of `batch_size`
    sequences with tp-way attention; the routed experts are spread over the tp x attn_dp GPUs with `ep`-way
    expert parallelism, ep dividing tp x attn_dp: dispatch/combine all-to-alls when EP reaches beyond the TP
    group; an ep that does not divide the experts holds redundant copies, `resolve.expert_slots`). `moe_dp` (a
    scalar, measured profiles only): attention-DP ranks running the batch (the others idle: their tokens do not
    reach the experts); None: all attn_dp of them. `dp` stays independent replicas; n_gpus = tp x pp x attn_dp x
    dp. `eplb` (bool, may be an array): the deployment runs an expert-parallel load balancer (vLLM and SGLang
    `--enable-eplb`, TensorRT-LLM's MoE load balancer): rows with ep > 1 read the measured fused-MoE layer at
    balanced routing instead of the power-law skew engines see without one (TensorRT-LLM's, where its wide-EP
    table timed its balancer at the model's shape and EP size: the skewed layer x what that balancer gained, at
    most the balanced routing's gain; the roofline's experts are balanced either way); default False, every
    engine's default. `moe_act_dtype` (may be an array): the activations an MXFP4 checkpoint's experts (gpt-oss,
    DeepSeek-V4) compute with, `measured.MOE_ACT_DTYPES`: None / "auto" (default) each engine's default kernel
    (MXFP8 under TensorRT-LLM and SGLang on Blackwell, 16-bit under vLLM and on every GPU before Blackwell),
    "bf16" (TensorRT-LLM OVERRIDE_QUANT_ALGO=W4A16_MXFP4, SGLang --flashinfer-mxfp4-moe-precision bf16), "mxfp8"
    (vLLM VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1); measured profiles read that activation's fused-MoE table (the
    closed form ignores it); the result's column names what MXFP4 experts run ("bf16" or "mxfp8", "auto" resolved).
    Experts that are not MXFP4 ignore it (the column then says "auto"); "mxfp8" on MXFP4
    experts before Blackwell is fits=False with a `reason`. `moe_a2a` (may be an array): how an MoE layer whose EP
    group spans attention-DP ranks exchanges its tokens, `measured.MOE_A2A`: None / "auto" (default) what each
    engine launches without a flag (`measured.MOE_A2A_AUTO`: vLLM and SGLang all-gather + reduce-scatter;
    TensorRT-LLM the same up to EP = top-k, beyond it DeepEP's tables inside one node and NCCL's all-to-all beyond;
    the experts as the fused-MoE tables time them, over all the group's tokens);
    "allgather" (SGLang --moe-a2a-backend none, vLLM --all2all-backend allgather_reducescatter, TensorRT-LLM
    TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled): the group's tokens gathered on every rank at any EP size; "deepep"
    (vLLM and SGLang): DeepEP's dispatch / combine (low-latency kernels up to 128 tokens per rank, normal beyond,
    as SGLang's --deepep-mode auto; NCCL's all-to-all beyond one node) and the experts priced on the tokens
    dispatched to them (source "extrapolated": read at a smaller EP size). A value other than "auto" on a dense
    model, without an EP group across attention-DP ranks, or on an engine that does not run it is fits=False
    with a `reason` (`resolve.moe_a2a_invalid`). `profile`: a calibrated profile file written by
    `dse calibrate` (the user's own measurements), overriding the fitted engine factors.
    `speculative` (None, the default: off): speculative decoding, an `inference.Speculative`, its label
    ("mtp:3:0.8,0.6,0.4") or a mapping of its fields (method "mtp" | "eagle", draft_tokens k, acceptance per
    position), or a list / array of them (None or "off" for off) broadcast with the other arguments, one per row
    (the rows of each distinct value priced together, `speculative.per_row_spec`): each decode
    iteration is k draft forwards and one verify forward of k + 1 tokens per sequence emitting
    `Speculative.expected_tokens` each, so `tpot_ms` is that iteration / the expected tokens; memory holds the
    draft layer's weights and KV and k more tokens per sequence (`inference.speculative`). A what-if, not fitted.
    `interval`: a band level strictly between 0 and 1 (e.g. 0.8): adds `<col>_lo` / `<col>_hi` (same units) for
    ttft_ms, tpot_ms, e2e_ms, throughput_tok_s, throughput_tok_s_per_gpu, usd_per_mtok and joules_per_tok, the
    split-conformal prediction interval of each row from the calibration residuals of its source, engine and GPU
    family (`objectives.uncertainty`; None: no band columns).
    `gpu_memory_utilization` (a scalar in (0, 1]; None, the default: each engine's own): the memory setting of the
    engines whose setting is a share of the device, vLLM's gpu_memory_utilization and SGLang's
    mem_fraction_static, as in `max_throughput`: the weights, the batch's KV cache and what the engine's pool holds
    besides must fit that share of the GPU's memory (SGLang's default leaves out a reservation for activations
    and CUDA graphs that grows with the attention-DP ranks, `kv_pool.sglang_reserved_bytes`; a refusal for want
    of memory names the setting it fits from). The other rows (TensorRT-LLM, the roofline: a share of the memory
    left, which bounds an in-flight batch's pool) are checked against the GPU's memory, with or without it.

    Columns: ttft_ms, tpot_ms, e2e_ms (ms), throughput_tok_s (output tokens/s, all replicas),
    throughput_tok_s_per_gpu, mem_per_gpu_gib, weights_gib, kv_cache_gib (per GPU, GiB), fits (bool),
    usd_per_mtok (USD per million output tokens), joules_per_tok (J per output token), reason ("" when ok),
    n_gpus, and the inputs (model, gpu, tp, pp, dp, ep, dtypes as resolved, batch_size, input_len, output_len).

    Errors: unknown model/GPU -> the catalog's error (close matches); unknown dtype or non-positive size,
    length or degree -> ValueError. Unsupported precision, tp not dividing the heads, bad ep, or out of memory
    -> fits=False with a `reason` (never an exception, so sweeps do not crash).
    """
    if interval is not None:
        check_level(interval)
    ms = _memory_setting(gpu_memory_utilization)
    efficiency = _with_profile(efficiency, profile)
    spec = resolve_speculative(speculative, model)
    B = positive("batch_size", batch_size)
    isl = positive("input_len", input_len)
    osl = positive("output_len", output_len)
    mnt = None if max_num_tokens is None else positive("max_num_tokens", max_num_tokens)
    rows = dict(batch_size=B, input_len=isl, output_len=osl)
    if mnt is not None:
        rows["max_num_tokens"] = mnt
    p = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, dp, ep, efficiency, prices, rows=rows,
                engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, moe_dp=moe_dp, eplb=eplb,
                moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a)
    if p is None:
        return _banded(_empty_frame(("batch_size", "input_len", "output_len")), interval)
    if mnt is None:
        mnt = _engine_budgets(p, 1.0, None)[1]
    p = speculative_mod.with_speculative(p, spec)
    if ms is not None:   # the share-of-device engines' pool at that setting (`kv_capacity_tokens`' rule)
        whole = kv_pool.share_of_device(p.engine_names)[np.asarray(p.engine_code)]
        p = replace(p, pool_gpu=np.where(whole, ms * p.mem_gpu, p.pool_gpu))
    res = _evaluate(p, dict(B=B, isl=isl, osl=osl, mnt=mnt), _estimate_rows)
    return _banded(_frame(p, res, {"batch_size": B, "input_len": isl, "output_len": osl}, ms), interval)


def _memory_setting(x: Any) -> float | None:
    """`gpu_memory_utilization` as validated: a share of memory in (0, 1], or None (the engine's default)."""
    if x is not None and (isinstance(x, bool) or not (isinstance(x, (int, float)) and 0.0 < float(x) <= 1.0)):
        raise ValueError(f"gpu_memory_utilization={x!r}: a share of memory in (0, 1], or None for the engine's "
                         "default")
    return None if x is None else float(x)


def _banded(df: pd.DataFrame, interval: float | None) -> pd.DataFrame:
    """`df` with the `interval` band columns (`objectives.uncertainty.inference_intervals`), or as it is."""
    return df if interval is None else inference_intervals(df, interval)


def _estimate_rows(p: Prepared, B: Num, isl: Num, osl: Num, mnt: Num,
                   factors: power.PowerFactors | None = None) -> dict[str, Num]:
    """The formulas of `estimate` on rows that broadcast together (a whole small sweep or one block).
    `factors`: the power model's factors (default: the shipped fit). With speculative decoding (``p.spec``) the
    times in token time and `_speculative_rows`' memory and energy."""
    if p.spec is not None:
        return _speculative_rows(p, B, isl, osl, mnt, factors)
    return _static_rows(p, B, isl, osl, mnt, factors)


def _static_rows(p: Prepared, B: Num, isl: Num, osl: Num, mnt: Num,
                 factors: power.PowerFactors | None = None) -> dict[str, Num]:
    """`_estimate_rows`' formulas (times through `replica_time_s`: in token time where ``p.spec`` is set)."""
    c = p.coeffs
    # prefill: the whole batch at once
    Tp = B * isl
    Ap = B * isl * (isl + 1.0) * 0.5
    ttft = replica_time_s(p, Tp, Ap, 0.0, 0.0, B, B, prefill=True)
    busy_p = ttft - idle_s(c, 0.0, B)
    # mean decode step: context isl + osl / 2
    Kd = B * (isl + 0.5 * osl)
    tpot = replica_time_s(p, 0.0, 0.0, B, Kd, B, B)
    busy_d = tpot - idle_s(c, B, B)
    e2e = ttft + (osl - 1.0) * tpot
    tput = p.dp * p.attn_dp * B * osl / e2e
    # memory per GPU
    w = p.weights_gpu
    kv = p.kv_tok_gpu * B * p.seq_tokens(isl + osl)
    act = p.act_tok_gpu * np.minimum(Tp, mnt) + memory.logits_bytes(B, p.shape.vocab, p.tp)
    mem = w + kv + act + p.reserve_gpu
    # what the engine's KV-cache pool rule lets this batch take (kv_pool: activations outside it where the engine
    # reserves them separately)
    held = mem - (1.0 - p.act_pooled) * act
    reason = np.where(p.reason != R_OK, p.reason, np.where(
        context_invalid(p.shape.context, isl + osl, _past_context(p)), R_CONTEXT,
        np.where((held > p.pool_gpu) | (mem > p.mem_gpu), R_MEM, R_OK)))
    # energy per GPU by phase: compute-bound prefill, memory-bound decode steps (power.phase_energy_j)
    e_gpu = (power.phase_energy_j(p.idle_w, p.tdp_w, ttft, busy_p, replica_compute_s(p, Tp, Ap, 0.0, 0.0, B, B),
                                  factors)
             + (osl - 1.0) * power.phase_energy_j(p.idle_w, p.tdp_w, tpot, busy_d,
                                                  replica_compute_s(p, 0.0, 0.0, B, Kd, B, B), factors))
    return {
        "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3, "e2e_ms": e2e * 1e3, "throughput_tok_s": tput,
        "throughput_tok_s_per_gpu": tput / p.n_gpus, "mem_per_gpu_gib": mem / memory.GIB, "fits": reason == R_OK,
        "usd_per_mtok": power.usd_per_mtok(p.price, p.n_gpus, tput),
        "joules_per_tok": e_gpu * p.n_gpus / np.maximum(p.dp * p.attn_dp * B * osl, 1e-12),
        "weights_gib": w / memory.GIB, "kv_cache_gib": kv / memory.GIB, "reason": reason,
        # the prompt's forward and the mean decode step, as priced above
        "source": replica_source(p, Tp, B, (Tp, Ap), ((B, Kd),), B),
    }


def speculative_step_s(p: Prepared, D: Num, K: Num, T: Num = 0.0, A: Num = 0.0, S: Num = None,
                       n_seqs: Num = None) -> tuple[Num, Num, Num]:
    """One speculative decode iteration of D sequences reading K cached tokens in all (`inference.speculative`),
    beside the prompt work (T tokens, A query-key pairs; S logit rows in all, None: D; `n_seqs` sequences split into
    pipeline micro-batches, None: D): (its seconds, the seconds of its forwards the GPU is busy, the seconds its
    tensor cores are saturated). The verify forward at D (k + 1) tokens and logit rows with `replica_time_s`'
    pipeline split, less the host time per extra token `forward_s` charges; k draft forwards at D / m rows beside."""
    spec, c = p.spec, p.coeffs
    k = spec.draft_tokens
    S = D if S is None else S
    n_seqs = D if n_seqs is None else n_seqs
    V = speculative_mod.verify_rows(spec, D)
    m = _split(p, n_seqs)
    t = speculative_full_s(p, T, A, D, K, S, n_seqs)
    busy = t - idle_s(c, D, S) - k * c.comm_fixed_s / p.shape.n_layers
    comp = (replica_compute_s(p, T, A, V, K, S + V - D, n_seqs)
            + k * power.compute_s(c, 0.0, 0.0, D / m, K / m, D / m) / p.shape.n_layers)
    return t, busy, comp


def speculative_busy_s(p: Prepared, w: tuple[Num, Num, Num, Num, Num], N: Num, whole: bool = False
                       ) -> tuple[Num, Num, Num]:
    """The seconds, busy seconds and tensor-core-saturated seconds (`speculative_step_s`) of an iteration of work
    w = (T, A, D, K, S) over N sequences with speculative decoding (``p.spec``), in token time (`_token_time`:
    the seconds are `replica_time_s`', `whole` as there), the iteration and its prompt work priced once."""
    T, A, D, K, S = w
    t_f, busy_f, comp_f = speculative_step_s(p, D, K, T, A, S, N)
    has_t = np.asarray(T) > 0
    pre = _prompt_alone_s(p, T, A, D, S)
    t_p = np.where(has_t, pre, 0.0)
    busy_p = np.where(has_t, pre - idle_s(p.coeffs, 0.0, S - D), 0.0)
    comp_p = np.where(has_t, replica_compute_s(p, T, A, 0.0, 0.0, S - D, S - D), 0.0)
    return (_token_time(p, T, D, t_f, t_p, whole), _token_time(p, T, D, busy_f, busy_p, whole),
            _token_time(p, T, D, comp_f, comp_p, whole))


def _speculative_rows(p: Prepared, B: Num, isl: Num, osl: Num, mnt: Num,
                      factors: power.PowerFactors | None = None) -> dict[str, Num]:
    """`_estimate_rows` with speculative decoding (``p.spec``): the same prefill, (osl - 1) / E speculative iterations
    at the mean context (E = `Speculative.expected_tokens`: `replica_time_s` in token time), their energy, the
    draft layer's weights and KV and k more tokens of KV per sequence in memory."""
    base = _static_rows(p, B, isl, osl, mnt, factors)   # times, throughput and cost in token time
    spec = p.spec
    E, k = spec.expected_tokens, spec.draft_tokens
    ttft = base["ttft_ms"] * 1e-3
    Kd = B * (isl + 0.5 * osl)
    step, busy, comp = speculative_step_s(p, B, Kd)
    w, kv_tok = speculative_mod.memory_terms(p)
    kv = kv_tok * B * p.seq_tokens(isl + osl + speculative_mod.draft_slots(spec, osl))   # the drafts' slots too
    act = p.act_tok_gpu * np.minimum(B * isl, mnt) + memory.logits_bytes(B * (k + 1.0), p.shape.vocab, p.tp)
    mem = w + kv + act + p.reserve_gpu
    held = mem - (1.0 - p.act_pooled) * act
    ok = base["reason"]
    reason = np.where((ok != R_OK) & (ok != R_MEM), ok,
                      np.where((held > p.pool_gpu) | (mem > p.mem_gpu), R_MEM, R_OK))
    Tp, Ap = B * isl, B * isl * (isl + 1.0) * 0.5
    busy_p = ttft - idle_s(p.coeffs, 0.0, B)
    e_gpu = (power.phase_energy_j(p.idle_w, p.tdp_w, ttft, busy_p, replica_compute_s(p, Tp, Ap, 0.0, 0.0, B, B),
                                  factors)
             + (osl - 1.0) / E * power.phase_energy_j(p.idle_w, p.tdp_w, step, busy, comp, factors))
    V = speculative_mod.verify_rows(spec, B)
    return {
        **base, "mem_per_gpu_gib": mem / memory.GIB, "fits": reason == R_OK,
        "joules_per_tok": e_gpu * p.n_gpus / np.maximum(p.dp * p.attn_dp * B * osl, 1e-12),
        "weights_gib": w / memory.GIB, "kv_cache_gib": kv / memory.GIB, "reason": reason,
        # the prompt's forward and the verify forward (D (k + 1) tokens), as priced above
        "source": replica_source(p, np.maximum(Tp, V), V, (Tp, Ap), ((V, Kd),), B),
    }


def kv_capacity_tokens(p: Prepared, max_num_tokens: Num = DEFAULT_MAX_NUM_TOKENS,
                       memory_setting: float | None = None) -> Num:
    """KV-cache tokens that fit per model replica, sized the way the row's engine sizes its pool (`kv_pool`):
    share x (pool memory - weights - runtime reserve - activations for max_num_tokens where the pool holds them) /
    KV bytes per token (per GPU; every GPU of a replica holds its share). The roofline and TensorRT-LLM: the fitted
    kv_mem_fraction of the device memory left; vLLM: 0.9 of the device memory, less the rest; SGLang: the device
    memory less its own reservation for activations and CUDA graphs, less the rest.
    `memory_setting`: the engine's memory flag instead of its default, in its own meaning: vLLM's
    gpu_memory_utilization and SGLang's mem_fraction_static are the pool memory's share of the device,
    TensorRT-LLM's kv_cache_free_gpu_memory_fraction (and the roofline's) the share of the memory left.
    With speculative decoding (``p.spec``) the draft layer's weights and KV per token come out of the same memory
    (`speculative.weight_factor`, `speculative.kv_factor`)."""
    pool, share = p.pool_gpu, p.kv_share
    if memory_setting is not None:
        whole = kv_pool.share_of_device(p.engine_names)[np.asarray(p.engine_code)]
        pool = np.where(whole, memory_setting * p.mem_gpu, p.pool_gpu)
        share = np.where(whole, 1.0, memory_setting)
    w, kv_tok = speculative_mod.memory_terms(p)
    free = pool - w - p.reserve_gpu - p.act_pooled * p.act_tok_gpu * max_num_tokens
    return np.maximum(np.floor(share * free / kv_tok), 0.0)


def memory_setting_needed(p: Prepared, max_num_tokens: Num = DEFAULT_MAX_NUM_TOKENS) -> Num:
    """The smallest memory setting, in the engine's own meaning (`kv_capacity_tokens`' ``memory_setting``), at which
    `kv_capacity_tokens` holds one token: for the engines whose setting is the pool's share of the device (vLLM,
    SGLang) (weights + runtime reserve + the activations the pool holds + one token's KV) / device memory, above 1
    where no setting fits; NaN for the others (TensorRT-LLM, the roofline), whose setting shares out the memory
    the weights leave, so that none makes room where they leave none. With speculative decoding (``p.spec``) the
    draft layer's weights and KV per token count too (`speculative.memory_terms`, as `kv_capacity_tokens`)."""
    whole = kv_pool.share_of_device(p.engine_names)[np.asarray(p.engine_code)]
    w, kv_tok = speculative_mod.memory_terms(p)
    held = w + p.reserve_gpu + p.act_pooled * p.act_tok_gpu * max_num_tokens + kv_tok
    return np.where(whole, held / p.mem_gpu, np.nan)


def steady_state(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, prompts: Num = None,
                 balance: lockstep.AdpBalance | None = None, balance_on: Num = True, lanes: Num = None,
                 work: tuple | None = None) -> tuple[Num, Num, Num, Num]:
    """`steady_cycle`'s (iteration time s, iterations per request cycle, decode seqs per iteration, busy s), its
    decode window left out. Arguments as `steady_cycle`'s."""
    return steady_cycle(p, N, isl, osl, mnt, prompts, balance, balance_on, lanes, work)[:4]


def per_window_token(osl: Num, n_it: Num) -> Num:
    """What a request's TPOT divides its decode window by: its output tokens after the first (the engines' TPOT,
    (e2e - TTFT) / (output_len - 1): vLLM's ``benchmarks/serve.py`` `calculate_metrics`, the simulator's
    `serving.simulator` records). With output_len == 1 there is no window (vLLM reports 0, the simulator NaN);
    there the TPOT reads as the mean iteration, `estimate`'s decode step at output_len == 1 and the limit of the
    cycle's window per token: 1 / the cycle's `n_it` iterations."""
    return np.where(np.asarray(osl) > 1, 1.0 / np.maximum(np.asarray(osl, dtype=float) - 1.0, 1.0), 1.0 / n_it)


def decode_window(alone: Num, isl: Num, osl: Num, n_it: Num, n_pf: Num, T_pf: Num) -> tuple[Num, Num, Num]:
    """A request's decode window (after its first token) in `steady_cycle`'s cycle of `n_it` iterations, per
    output token after the first (`per_window_token`): (prefill iterations, pure decode steps) of `split_work`'s
    `n_pf` and n_it - n_pf (on rows that do not split, n_pf = n_it mean iterations), and the request's own
    prefill iterations left out (0 where the window is none): their waits for other attention-DP ranks' chunks
    (`lockstep_wait_s`) stall its decodes, so they stay in the window. The cycle less the iterations
    that carry the request's own prompt: where decodes ride beside prompts, a running request decodes in every
    iteration, so n_it - (osl - 1) of them are its own; where the engine runs prefill batches alone (`alone` > 0,
    per row: SGLang), the others' prefill batches pause its decodes inside its window and its own prompt takes
    isl / T_pf (at least 1) of the batches of `T_pf` prompt tokens."""
    own = np.where(np.asarray(alone) > 0, np.clip(isl / T_pf, 1.0, n_pf), n_it - (osl - 1.0))
    own_pf = np.minimum(own, n_pf)
    per = per_window_token(osl, n_it)
    one = np.asarray(osl) > 1
    return (np.where(one, n_pf - own_pf, n_pf) * per,
            np.where(one, n_it - n_pf - (own - own_pf), n_it - n_pf) * per, np.where(one, own_pf, 0.0) * per)


def steady_cycle(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, prompts: Num = None,
                 balance: lockstep.AdpBalance | None = None, balance_on: Num = True, lanes: Num = None,
                 work: tuple | None = None) -> tuple[Num, Num, Num, Num, tuple[Num, Num]]:
    """`steady_split`'s first five: (iteration time s, iterations per request cycle, decode seqs per iteration, busy
    s, the decode window per output token after the first: (s, iterations)). Arguments as `steady_split`'s."""
    return steady_split(p, N, isl, osl, mnt, prompts, balance, balance_on, lanes, work)[:5]


def steady_split(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, prompts: Num = None,
                 balance: lockstep.AdpBalance | None = None, balance_on: Num = True, lanes: Num = None,
                 work: tuple | None = None
                 ) -> tuple[Num, Num, Num, Num, tuple[Num, Num], tuple[Num, Num]]:
    """In-flight batching with N requests in flight: (iteration time s, iterations per request cycle,
    decode seqs per iteration, busy s). Each request needs isl prefill tokens and osl - 1 decode steps; per
    cycle of n_it = max(osl, N (isl + osl) / max_num_tokens) iterations every request advances through its whole
    life, so each iteration carries N isl / n_it prompt tokens (chunked prefill) and N (osl - 1) / n_it decode
    tokens reading a mean context of isl + osl / 2. Rows costed from a measured profile, MoE rows and pipelines
    instead mix two kinds of iteration, as engines run them: N isl / max_num_tokens full prefill iterations (with
    pp > 1 each lasting at least one prompt chunk's pass through every stage, as in `StepModel.time_ms`) and pure
    decode steps. An engine that runs prefill batches alone (``Coeffs.prefill_alone``: SGLang) always splits: its
    prefill batches carry no decodes and pause them (`split_work`). `prompts` (per row; None: no bound): the most
    prompts one prefill iteration carries, where requests arrive apart rather than in the closed loop's groups
    (`split_work`); every row then splits (the closed loop's mean iteration stays where `prompts` is None).
    `balance`: TensorRT-LLM's attention-DP balance (`lockstep.AdpBalance`; None: off), which
    lines the attention-DP ranks' prompts up (`rank_overlap`), on the rows `balance_on` holds true (per row, or
    True: every row). `lanes` (per row; None: none): the batches in flight a pipeline keeps at least
    (`steady_lanes`' floor), where an open loop's load has opened them. `work`: `steady_work`'s result for these
    arguments where the caller has it (None: derived here). The fifth: the request's decode window per output
    token after its first (`decode_window`): (s, iterations), its TPOT without the churn or a wait; the cycle less
    the own prompt's iterations, which its TTFT holds. Then the window's bounds per output token after the first
    (s; `cycle_split` takes them): (the least, its iterations pure decode steps: none of the other requests'
    prompts in it; the most, every one of its iterations a full prefill iteration, the budget of the others'
    prompt chunks beside the decodes, or where the engine runs prefill batches alone (`alone` > 0, per row:
    SGLang, whose ``Scheduler.get_next_batch_to_run`` runs a waiting prompt's prefill batch before the next
    decode batch) every prefill batch of the cycle but the own prompt's share of one: the window above and its
    own batch's other prompts); both the window itself on rows
    that do not split (the mean iteration, no full one priced), the least the window above on pipelines (pp > 1),
    and 0 at output_len == 1 (no window)."""
    alone = p.coeffs.prefill_alone
    n_it, T, A, D, K, S = steady_work(N, isl, osl, mnt, alone, prompts) if work is None else work
    # requests arriving apart (`prompts` given: an open loop): a prompt goes whole (up to the budget) into the
    # iteration after it arrives and the other iterations only decode, as the engines and the simulator schedule
    # them; the mean iteration's thin slice of prompt beside every decode step, its compute hidden under their
    # memory traffic, never runs there
    split = split_rows(p) | (prompts is not None)
    if not np.all(split):  # the closed form was fitted on this mean iteration (published tables)
        t, busy = _time_busy(p, (T, A, D, K, S), N)
        if not np.any(split):   # no MoE row, so none in lockstep (`Prepared.solo` None)
            one = np.asarray(osl) > 1
            bound = np.where(one, t, 0.0)
            # every iteration the mean one: TPOT is it
            return t, n_it, D, busy, (t, np.ones(np.shape(t))), (bound, bound)
    # the prompts do not spread thinly over every iteration: chunked prefill packs them into full iterations of
    # up to max_num_tokens tokens (beside D_pf decodes) and the other iterations only decode. Averaging them
    # would misprice every concave per-token cost (MoE experts touched, weights read once per iteration)
    (t_p, b_p), (t_d, b_d), n_pf, n_dec = split_steps(p, N, isl, osl, mnt, n_it, prompts, balance, wait=False,
                                                      balance_on=balance_on, lanes=lanes)
    wait, spill = 0.0, 0.0
    if p.solo is not None:  # `split_steps`' wait for the other attention-DP ranks' chunks, kept apart
        w_pf = split_work(N, isl, osl, mnt, n_it, alone, prompts)[0]
        wait = lockstep_wait_s(p, t_p, t_d, w_pf, isl, osl, N, n_it, prompts, balance, balance_on)
        spill = lockstep_spill_s(p, t_p, w_pf, isl, osl, N, balance, balance_on)
        t_p = t_p + wait
    t_split = (n_pf * t_p + n_dec * t_d) / n_it
    b_split = (n_pf * b_p + n_dec * b_d) / n_it
    a_pf, a_dec, a_own = decode_window(alone, isl, osl, n_it, n_pf, chunk_tokens(N, isl, mnt, prompts))
    win = (a_pf * t_p + a_dec * t_d + a_own * wait, a_pf + a_dec)
    one = np.asarray(osl) > 1
    # a pipeline's sequence advances once its batch returns through every stage, a turn the cycle's lanes do not
    # price (`saturated_share` keeps the round's pricing there for the same turn): its window stays at least the
    # cycle less the own prompt's iterations
    lo = np.where(one, np.where(np.asarray(p.pp) > 1, win[0], t_d + a_own * wait), 0.0)
    # prefill batches alone: the window can hold every prefill batch but the own prompt's share of one (its
    # own batch's other prompts too, which `decode_window` leaves with the own prompt)
    T_pf = chunk_tokens(N, isl, mnt, prompts)
    mates = (a_own - np.minimum(isl / T_pf, n_pf) * per_window_token(osl, n_it)) * t_p
    # attention-DP ranks in lockstep: the other ranks' chunks that the own prefill iterations price at the experts
    # can fall in the window's steps instead (`lockstep_spill_s`)
    hi = np.where(one, np.where(np.asarray(alone) > 0, win[0] + np.maximum(mates, 0.0), t_p + a_own * wait)
                  + a_own * spill, 0.0)
    if np.all(split):
        return t_split, n_it, D, b_split, win, (lo, hi)
    mean = np.where(one, t, 0.0)
    return (np.where(split, t_split, t), n_it, D, np.where(split, b_split, busy),
            (np.where(split, win[0], t), np.where(split, win[1], 1.0)),
            (np.where(split, lo, mean), np.where(split, hi, mean)))


def cycle_split(cycle_s: Num, gpu_s: Num, osl: Num, bounds: tuple[Num, Num], held: Num = None) -> tuple[Num, Num]:
    """A closed-loop request's residency on the GPU split at its first token: (the GPU's TTFT s, its decode window
    s), adding up to the request cycle `cycle_s` (s: the GPU's time for the N sequences in flight to run their
    prompts and decodes once, `steady_cycle`'s t x n_it, the churn's prefills again in). Each of the N requests
    lives through one whole cycle: its prompt, the other N - 1 prompts and every decode in it. `gpu_s`: its GPU
    TTFT as the prompts that arrive with it and the queue ahead of it price it (`gpu_ttft_s`, s: a run's mean, its
    start-up wave in, whose requests wait for the others' prompts before their first token and so hold fewer of
    them in their windows); `bounds` (s per
    output token after the first, `steady_split`'s): the window's least and most. The window holds the cycle's
    work beyond that TTFT, its osl - 1 iterations carrying at most their budget of the others' prompt chunks
    (vLLM and TensorRT-LLM mix chunks into the decode iterations); the others' prompt work beyond that queues
    before the first token: TTFT = max(`gpu_s`, cycle - the most window). Where the TTFT holds more than the cycle
    leaves beyond the least window: on the rows `held` (per row; `cycle_held`) the TTFT is the cycle less the least
    window, as every iteration a request waits through is one of the cycle's (with one or two clients the waits
    `gpu_s` prices for an iteration in progress or formed ahead find the engine idle or running the request's own
    iterations, which the cycle holds once); elsewhere (or `held` None) both stay, the residency then exceeding the
    cycle. Continuous in every argument; at output_len == 1 the TTFT holds the cycle."""
    lo, hi = (np.maximum(np.asarray(osl, dtype=float) - 1.0, 0.0) * b for b in bounds)
    ttft = np.maximum(gpu_s, cycle_s - hi)
    if held is not None:
        ttft = np.where(held, np.minimum(ttft, np.maximum(cycle_s - lo, 0.0)), ttft)
    return ttft, np.clip(cycle_s - ttft, lo, np.maximum(hi, lo))


def cycle_held(p: Prepared) -> np.ndarray:
    """`cycle_split`'s ``held`` (per row of `p`): one stage (a pipeline's batch waits for its turn, which the
    cycle's lanes do not price: `saturated_share`) on rows that split the iteration (`split_rows`), whose least
    window is pure decode steps, so the cycle less it still holds the request's own prompt iterations (a mean
    iteration's row spreads every prompt over every iteration: the cycle less its window would be one mean
    iteration, shorter than the prompt's own)."""
    return (np.asarray(p.pp) <= 1) & split_rows(p)


def split_steps(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, n_it: Num, prompts: Num = None,
                balance: lockstep.AdpBalance | None = None, wait: bool = True, balance_on: Num = True,
                lanes: Num = None) -> tuple[tuple[Num, Num], tuple[Num, Num], Num, Num]:
    """`steady_state`'s two kinds of iteration priced (`split_work`): ((the prefill iteration s, its busy s), (the
    pure decode step s, its busy s), how many of each per request cycle of `n_it` iterations), the work split over
    a pipeline's batches in flight (`steady_lanes`). The prefill iteration passes its chunk through every stage
    (`chunk_pass_s`) and, with attention-DP ranks in lockstep and `wait`, holds the wait for the other ranks'
    chunks (`lockstep_wait_s`; without `wait`: every rank's full chunk in the same step, none waiting for
    another's). Arguments as `steady_state`'s."""
    w_pf, w_dec, n_pf, n_dec = split_work(N, isl, osl, mnt, n_it, p.coeffs.prefill_alone, prompts)
    L = steady_lanes(p, N, isl, osl, mnt, prompts, lanes, w_pf)   # pp > 1: the batches the work is split over
    (t_p, b_p), (t_d, b_d) = _time_busy(p, w_pf, L, True), _time_busy(p, w_dec, L)
    t_p = chunk_pass_s(p, t_p, *prefill_chunk(w_pf, isl, osl), L)
    if wait and p.solo is not None:  # attention-DP ranks in lockstep: the other ranks' chunks a rank waits for
        t_p = t_p + lockstep_wait_s(p, t_p, t_d, w_pf, isl, osl, N, n_it, prompts, balance, balance_on)
    return (t_p, b_p), (t_d, b_d), n_pf, n_dec


def lockstep_wait_s(p: Prepared, t_chunk: Num, t_dec: Num, w_pf: tuple, isl: Num, osl: Num, N: Num, n_it: Num,
                    prompts: Num = None, balance: lockstep.AdpBalance | None = None, balance_on: Num = True) -> Num:
    """What a rank waits (s) for the other attention-DP ranks' prompt chunks, per prefill iteration of its own, in
    `steady_state`'s mix (`rank_wait_s` with this rank's chunk alone priced on `Prepared.solo`; 0 where `p.solo` is
    None): the one home of the wait that `steady_state` adds to its prefill iteration and
    `breakdown.served_breakdown` shows as ``rank_wait``. `t_chunk`: `split_work`'s prefill iteration `w_pf` as
    `chunk_pass_s` prices it, `t_dec`: the pure decode step (s); the ranks' overlap from `n_it`, `prompts`,
    `balance` and `balance_on` as `rank_overlap` takes them."""
    if p.solo is None:
        return np.zeros(np.shape(t_chunk))
    overlap = rank_overlap(p, N, isl, osl, w_pf[0], n_it, prompts, balance, balance_on)
    return rank_wait_s(p, t_chunk, solo_chunk_s(p, w_pf, isl, osl, N), t_dec, overlap)


def lockstep_spill_s(p: Prepared, t_chunk: Num, w_pf: tuple, isl: Num, osl: Num, N: Num,
                     balance: lockstep.AdpBalance | None = None, balance_on: Num = True) -> Num:
    """The other attention-DP ranks' prompt chunks at the experts (s) in `steady_split`'s prefill iteration
    `t_chunk` (every rank's chunk there, `split_steps` without the wait): `t_chunk` less this rank's chunk alone
    (`solo_chunk_s`), 0 where `p.solo` is None and on the rows under TensorRT-LLM's attention-DP balance (`balance`
    on the rows `balance_on` holds true), which runs the ranks' prompts together. Without the balance each rank's
    clients and scheduler run apart from the others' (`lockstep.round_ranks`), so in a closed loop that work falls
    in whichever of this rank's steps the other ranks' prompts run: the decode window can hold it
    (`steady_split`'s most window, `cycle_split`), where the TTFT's own iteration holds only their mean share
    (`lockstep_round_s`)."""
    if p.solo is None:
        return np.zeros(np.shape(t_chunk))
    spill = np.maximum(t_chunk - solo_chunk_s(p, w_pf, isl, osl, N), 0.0)
    if balance is not None:
        spill = np.where(np.asarray(balance_on) > 0, 0.0, spill)
    return spill


def rank_wait_s(p: Prepared, t_all: Num, t_one: Num, t_dec: Num, overlap: Num) -> Num:
    """Attention-DP ranks in lockstep: what a rank waits (s) for the other ranks' prompt chunks, per iteration that
    carries a full chunk of its own (MoE rows with R = `StepCoeffs.moe_ranks` > 1 busy ranks and `Prepared.solo`
    set; 0 elsewhere). `t_all`: the prefill iteration with every rank's chunk at the experts, `t_one`: with this
    rank's chunk alone there (`Prepared.solo`), `t_dec`: the pure decode step (s); `overlap` (per row,
    `rank_overlap`): the prompt tokens a step's slowest rank holds beyond the rank's own, per own token.

    The ranks step together through every MoE layer's collectives (vLLM also syncs the ranks' batch sizes every step
    and pads an idle rank with a dummy batch; SGLang's and TensorRT-LLM's attention DP do the same), so a step lasts
    as long as its slowest rank's forward: the pure decode step, plus the slowest rank's own prompt tokens at the
    lone chunk's rate beyond the experts, (t_one - d - t_dec) per full chunk, plus every rank's prompt tokens at the
    experts, d = (t_all - t_one) / (R - 1) per full chunk. Summed over a cycle the experts' part is what the
    aligned mix prices (every rank's chunk in the same steps, t_all); the slowest rank's own part exceeds the
    rank's own by `overlap` x its tokens: per own full chunk `overlap` x (t_one - d - t_dec) (at least 0)."""
    R = np.asarray(p.coeffs.moe_ranks, dtype=float)
    on = (R > 1.0) & (np.asarray(p.coeffs.n_experts) > 0) & (p.solo is not None)
    if not np.any(on):
        return np.zeros(np.shape(t_all))
    Rs = np.where(on, R, 2.0)
    lone = np.maximum(t_one - (t_all - t_one) / (Rs - 1.0) - t_dec, 0.0)
    return np.where(on, np.asarray(overlap, dtype=float) * lone, 0.0)


def rank_overlap(p: Prepared, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, prompts: Num = None,
                 balance: lockstep.AdpBalance | None = None, balance_on: Num = True) -> Num:
    """`lockstep.overlap_factor` of `p`'s rows (their busy ranks `StepCoeffs.moe_ranks`; 0 where fewer than two):
    N requests in flight a rank, full prefill chunks of `T_pf` tokens, `n_it` iterations a cycle; closed-loop
    clients' waves unless `prompts` is given (`split_work`: requests arriving apart, an open loop); `balance`:
    TensorRT-LLM's attention-DP balance (None: off) on the rows `balance_on` holds true (per row; True: every row),
    the others without it."""
    R = np.asarray(p.coeffs.moe_ranks, dtype=float)
    args = (np.maximum(R, 2.0), N, isl, osl, T_pf, n_it)
    f = lockstep.overlap_factor(*args, apart=prompts is not None, balance=balance)
    if balance is not None and not np.all(balance_on):
        f = np.where(np.asarray(balance_on) > 0, f, lockstep.overlap_factor(*args, apart=prompts is not None))
    return np.where(R > 1.0, f, 0.0)


def balance_hold_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, n_it: Num, base_s: Num, prompts: Num = None,
                   balance: lockstep.AdpBalance | None = None, balance_on: Num = True,
                   steps: tuple[Num, Num] | None = None) -> Num:
    """What TensorRT-LLM's attention-DP balance adds (s) to a prompt's wait for its first token on `p`'s rows whose
    ranks step in lockstep (`Prepared.solo` set, two or more busy ranks) and that `balance_on` holds true (per row;
    True: every row); 0 elsewhere and without `balance`. Under the balance the prompt waits for its release and
    runs in it beside the other prompts released with it: `lockstep.balance_ttft` with `split_steps`' decode step
    and full prefill iteration (every rank's full chunk in it, none waiting for another's), its iterations counted
    from the prompt's arrival; less `base_s` (per row), the wait `prefill_wait_s` prices without the balance before
    the front end's time; one decode step more where the engine forms its next batch ahead (`formed_ahead_iters`).
    `steps`: those two (full prefill iteration s, decode step s) where the caller has them
    priced (`breakdown`); None: priced here."""
    R = np.asarray(p.coeffs.moe_ranks, dtype=float)
    if balance is None or p.solo is None or not np.any(R > 1.0):
        return np.zeros(np.shape(base_s))
    T_pf = chunk_tokens(N, isl, mnt, prompts)
    if steps is None:
        (t_full, _), (t_dec, _), _, _ = split_steps(p, N, isl, osl, mnt, n_it, prompts, balance, wait=False)
    else:
        t_full, t_dec = steps
    wait = lockstep.balance_ttft(np.maximum(R, 2.0), N, isl, osl, T_pf, n_it, t_full, t_dec,
                                 apart=prompts is not None, balance=balance)
    # the balance counts the requests its rank's loop has received (``_balance_adp_requests`` runs on the
    # scheduled requests): under the overlap executor (``PyExecutor._executor_loop_overlap`` fetches new requests
    # as it forms the batch after the one in flight) a prompt arriving during an iteration is first counted one
    # iteration later, a decode step while the balance holds the prompts back (`formed_ahead_iters`)
    wait = wait + formed_ahead_iters(p, N) * t_dec
    return np.where((R > 1.0) & (np.asarray(balance_on) > 0), wait - base_s, 0.0)


def steps_in_lockstep(p: Prepared) -> bool:
    """Whether any row of `p` has attention-DP ranks that step together through MoE layers (attn_dp > 1 on an MoE
    model): then `max_throughput` prepares `Prepared.solo` for `rank_wait_s`."""
    return bool(np.any(lockstep_rows(p)))


def lockstep_rows(p: Prepared) -> np.ndarray:
    """Per row of `p`: whether its attention-DP ranks step together through MoE layers (attn_dp > 1 on an MoE
    model)."""
    return (np.asarray(p.attn_dp) > 1) & (np.asarray(p.coeffs.n_experts) > 0)


def solo_chunk_s(p: Prepared, w_pf: tuple, isl: Num, osl: Num, N: Num) -> Num:
    """`split_work`'s prefill iteration `w_pf` (s) with only this rank's tokens at the routed experts
    (`Prepared.solo`, which must be set), as `steady_state` prices the prefill iteration otherwise."""
    assert p.solo is not None
    q = replace(p, coeffs=p.solo, solo=None)
    return chunk_pass_s(q, _time_busy(q, w_pf, N)[0], *prefill_chunk(w_pf, isl, osl), N)


def split_rows(p: Prepared) -> np.ndarray:
    """The rows whose steady state mixes two kinds of iteration (`steady_state`): measured-profile rows, MoE rows on
    the roofline too (the experts an iteration touches grow concavely with its tokens) and pipelines (an iteration
    that carries a prompt chunk lasts at least that chunk's pass through every stage, which a mean iteration
    spread thinly over the micro-batches never shows), and the rows of an engine that runs prefill batches alone."""
    return ((np.asarray(p.source_code) > 0) | (np.asarray(p.coeffs.n_experts) > 0) | (np.asarray(p.pp) > 1)
            | (np.asarray(p.coeffs.prefill_alone) > 0))


def prefill_chunk(w_pf: tuple, isl: Num, osl: Num) -> tuple[Num, Num, Num, Num]:
    """One prompt chunk of `split_work`'s prefill iteration `w_pf` and its decodes, (T, A, D, K) as `chunk_pass_s`
    takes them (the decodes at a mean context of isl + osl / 2)."""
    T_pf, D_pf = w_pf[0], w_pf[2]
    return beside_decodes(T_pf / np.maximum(T_pf / isl, 1.0), D_pf, isl, osl)[:4]


def chunk_tokens(N: Num, isl: Num, mnt: Num, prompts: Num = None) -> Num:
    """The prompt tokens of `split_work`'s prefill iteration: a full budget of `mnt` tokens, at most the N requests'
    prompts of `isl` tokens and, where `prompts` bounds them (requests arriving apart), that many prompts."""
    T_pf = np.minimum(mnt, N * isl)
    return T_pf if prompts is None else np.minimum(T_pf, np.maximum(prompts, 1.0) * isl)


def split_work(N: Num, isl: Num, osl: Num, mnt: Num, n_it: Num, alone: Num = 0.0, prompts: Num = None
               ) -> tuple[tuple, tuple, Num, Num]:
    """The two kinds of iteration of `steady_state`'s split: (the prefill iteration's work (T, A, D, K, S), a pure
    decode step's, how many of each per request cycle of `n_it` iterations). `alone` (per row, `Coeffs.
    prefill_alone`): 1 where the engine runs prefill batches alone, so its prefill iteration carries no decodes
    and each request's osl - 1 decode steps are separate iterations (`steady_work`). `prompts` (per row, >= 1;
    None: no bound): the most prompts a prefill iteration carries, fewer than the budget holds where requests
    arrive apart (an open loop, `serving`'s analytical model): the cycle's prompts then take more, smaller prefill
    iterations, each with pp > 1 still lasting a prompt chunk's pass through every stage (`chunk_pass_s`)."""
    T_pf = chunk_tokens(N, isl, mnt, prompts)
    n_pf = np.minimum(N * isl / T_pf, n_it)
    D_pf = np.where(np.asarray(alone) > 0, 0.0, np.clip(N - T_pf / isl, 0.0, N))
    n_dec = np.maximum(n_it - n_pf, 0.0)
    D_dec = np.clip((N * (osl - 1.0) - n_pf * D_pf) / np.maximum(n_dec, 1e-9), 0.0, N)
    w_pf = beside_decodes(T_pf, D_pf, isl, osl)
    w_dec = (0.0, 0.0, D_dec, D_dec * (isl + 0.5 * osl), D_dec)
    return w_pf, w_dec, n_pf, n_dec


def _time_busy(p: Prepared, w: tuple[Num, Num, Num, Num, Num], N: Num, whole: bool = False) -> tuple[Num, Num]:
    """Replica time (s) of an iteration of work w = (T, A, D, K, S) and its busy part (one forward pass when
    pp == 1, the busy time read off it rather than a second pass)."""
    if p.spec is not None:     # its time and busy time from one pricing of the iteration
        return speculative_busy_s(p, w, N, whole)[:2]
    t = replica_time_s(p, *w, N, whole=whole)
    if np.all(np.asarray(p.pp) == 1):
        return t, t - idle_s(p.coeffs, w[2], w[4])
    return t, busy_s(p.coeffs, *w)


def steady_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0,
                prompts: Num = None) -> tuple[Num, Num, Num, Num, Num, Num]:
    """The work of one iteration of `steady_state`: (n_it iterations per cycle, T prompt tokens, A prompt
    query-key pairs, D decode tokens, K cached tokens they read, S logit rows) per iteration. `alone` (per row,
    `Coeffs.prefill_alone`): 1 where the engine runs prefill batches alone, the decodes paused: a cycle then holds
    the N x isl / max_num_tokens prefill batches (at least one; where `prompts` bounds a batch, `chunk_tokens`,
    the more batches of that many prompts) and osl - 1 decode steps that every request runs."""
    mixed = np.maximum(osl, N * (isl + osl) / mnt)
    n_pf = np.maximum(N * isl / mnt, 1.0) if prompts is None else np.maximum(N * isl / chunk_tokens(N, isl, mnt,
                                                                                                    prompts), 1.0)
    n_it = np.where(np.asarray(alone) > 0, n_pf + osl - 1.0, mixed)
    T = N * isl / n_it
    A = N * isl * (isl + 1.0) * 0.5 / n_it
    D = N * (osl - 1.0) / n_it
    K = D * (isl + 0.5 * osl)
    S = D + N / n_it
    return n_it, T, A, D, K, S


def prefill_wait_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, conc: Num = None,
                   cycle_s: Num = None, n_it: Num = None) -> Num:
    """TTFT (s) of a request in the saturated steady state of `max_throughput` (closed loop: a client sends its
    next request when it has read the previous one's last token): the GPU's (`gpu_ttft_s`) plus the host time
    before the first token (`host_ttft_s`), plus, with `conc` clients per replica above the N slots, the wait for a
    slot (`queue_waits`: the host time spent outside the queue taken off it; the prompts that waited for one
    admitted as it frees: `saturated_share`; with `conc` the GPU's TTFT and the decode window split the cycle,
    `cycle_split`). `cycle_s`: the steady state's
    iteration time x iterations per request cycle, when the caller has it. `n_it`: `steady_work`'s iterations per
    cycle of these arguments where the caller has them (None: derived here)."""
    host = host_ttft_s(p, N)
    if conc is None:
        return gpu_ttft_s(p, N, isl, osl, mnt, cycle_s, n_it) + host
    # the clients' closed loop: the TTFT and window split the cycle (`cycle_split`)
    t, n_all, _, _, _, bounds = steady_split(p, N, isl, osl, mnt)
    cycle_s = t * n_all if cycle_s is None else cycle_s
    released = released_prompt_s(p, N, isl, osl, mnt, n_it)
    sat = saturated_share(N, conc, host, sum(cycle_split(cycle_s, released, osl, bounds, cycle_held(p))), p.pp)
    gpu, window = cycle_split(cycle_s, gpu_ttft_s(p, N, isl, osl, mnt, cycle_s, n_it, sat, released), osl, bounds,
                              cycle_held(p))
    return gpu + host + queue_waits(N, conc, osl, gpu, cycle_s, window, 0.0, host=host)[0]


def gpu_ttft_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, cycle_s: Num = None, n_it: Num = None,
               sat: Num = 0.0, released: Num = None) -> Num:
    """The GPU's part (s) of a request's TTFT in the saturated steady state of `max_throughput`, from its schedule
    to its first token (no host time, `host_ttft_s`, and no wait for a slot, `queue_waits`).

    Measured-profile rows: the mean over a run, its start-up wave and its steady state (`_run_ttft_s`). Roofline
    rows keep the closed form they were fitted with (`_group_ttft_s`): with fixed lengths the engine settles into
    groups of requests that finished together, arrive together and are prefilled together; chunked prefill packs their prompts into full iterations. So the iterations that
    carry prompts are full: T = min(budget, N x input_len) prompt tokens beside the D = N - T / input_len other
    sequences decoding, budget = max_num_tokens - D. A prompt starts anywhere inside such a window of `budget`
    tokens, so it touches on average k = 1 + (input_len - 1) / budget of these iterations (k = 1 when all N
    prompts fit in one). TTFT = k x the time of that prefill-heavy iteration, not of the mean iteration (which
    also counts the pure decode steps). The serving simulator (objectives/serving) shows the same groups; the
    comparison is in objectives/data/fidelity/report.md.

    `cycle_s`: the steady state's iteration time x iterations per request cycle, when the caller has it. An engine
    that runs prefill batches alone (``Coeffs.prefill_alone``: SGLang) prefills a prompt with the whole budget and
    no decodes beside it (`run_prompt_work`, `group_prompt_work`). `n_it`: `steady_work`'s iterations per cycle of
    these arguments where the caller has them (None: derived here). `sat` (per row): with more closed-loop clients
    than slots, the share of the prompts admitted as a slot frees (`saturated_share`; measured-profile rows:
    `_run_ttft_s`); `released`: their `released_prompt_s` where the caller has it (None: derived where needed)."""
    measured = np.asarray(p.source_code) > 0
    alone = p.coeffs.prefill_alone
    if cycle_s is None and np.any(measured):
        t, n_it, _, _ = steady_state(p, N, isl, osl, mnt)
        cycle_s = t * n_it
    if np.any(measured) and n_it is None:
        n_it = steady_work(N, isl, osl, mnt, alone)[0]
    ttft = _run_ttft_s(p, N, isl, osl, mnt, cycle_s / n_it, n_it, sat, released) if np.any(measured) else 0.0
    if not np.all(measured):
        ttft = np.where(measured, ttft, _group_ttft_s(p, N, isl, osl, mnt))
    return ttft


def host_ttft_s(p: Prepared, N: Num) -> Num:
    """Host time (s) of a request before its first token beyond its scheduler's wait, with N sequences running on
    each of its scheduler's attention-DP ranks (a replica's when attn_dp = 1): the engine's API server's pass
    (``Coeffs.ttft_s``), the model's own (``ttft_model_s``), and the output of the sequences its API server streams,
    which it handles on the loop that takes the request in and sends its first token (``stream_s`` per sequence:
    vLLM's ``AsyncLLM.output_handler`` runs ``OutputProcessor.process_outputs``, detokenization included, over an
    iteration's outputs, ``VLLM_V1_OUTPUT_PROC_CHUNK_SIZE`` at a time, and each stream's SSE chunk is formatted and
    written on the same asyncio loop). Its API server streams N x ``Coeffs.stream_ranks`` sequences: vLLM starts one
    API server a rank, SGLang and TensorRT-LLM one a replica (`profiles.api_server_ranks`). N counts every running
    sequence, prefilling ones included; the simulator counts the streams (first token out, not finished) as the
    first token goes out (`serving.simulator.streams_at_first`): the two agree within the prefilling share (10 % in
    a closed loop with more clients than slots, 30 % in the open loop: tests/objectives/serving/
    test_api_server_streams.py). None of this holds a GPU slot, but all of it is in a closed-loop client's cycle:
    the wait for a slot leaves it out of the residency and spends it outside the queue (`queue_waits`)."""
    return p.coeffs.ttft_s + p.coeffs.ttft_model_s + p.coeffs.stream_s * p.coeffs.stream_ranks * N


def slot_wait_s(N: Num, conc: Num, residency: Num) -> Num:
    """The wait (s) for one of N slots with `conc` closed-loop clients per replica, each request holding its slot
    `residency` s: (conc - N) / N x residency (Little's law: conc - N waiting, N / residency requests/s served)."""
    return np.maximum(conc - N, 0.0) / N * residency


#: an iteration's work as `replica_time_s` takes it (T, A, D, K, S), and a prompt chunk's as `chunk_pass_s` (T, A, D, K)
Work = tuple[Num, Num, Num, Num, Num]
ChunkWork = tuple[Num, Num, Num, Num]


def beside_decodes(T: Num, D: Num, isl: Num, osl: Num) -> Work:
    """The work of an iteration that carries T prompt tokens of `isl`-token prompts (their causal pairs: T (isl +
    1) / 2) beside D decodes at the steady state's mean context isl + osl / 2: (T, A, D, K, S), a logit row for
    each decode and each prompt it finishes (T / isl). Its first four: the prompt chunk's, as `chunk_pass_s`
    takes them."""
    return T, T * (isl + 1.0) * 0.5, D, D * (isl + 0.5 * osl), D + T / isl


def own_iteration(N: Num, isl: Num, mnt: Num, alone: Num = 0.0) -> tuple[Num, Num, Num, Num, Num]:
    """A steady-state prompt's own iteration(s) under the budget of `mnt` tokens (`run_prompt_work`,
    `round_prompt_work`): (keep, 0 where the engine runs prefill batches alone (`alone` > 0, per row: no decodes
    beside a prompt) else 1; the budget left beside the N - 1 other sequences' decodes; T, the prompt tokens of
    one of its iterations, at most the prompt; D, the decodes beside them; k0, the iterations the prompt takes)."""
    keep = np.where(np.asarray(alone) > 0, 0.0, 1.0)        # 0: no decodes in a prefill batch
    budget = np.maximum(mnt - keep * (N - 1.0), 1.0)
    T = np.minimum(budget, isl)
    D = keep * np.maximum(N - T / isl, 0.0)
    return keep, budget, T, D, np.maximum(isl / budget, 1.0)


def group_prompt_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0) -> tuple[Work, ChunkWork, Num]:
    """The closed form's prefill-heavy iteration (`_group_ttft_s`): its work (T, A, D, K, S as `replica_time_s`
    takes them), its prompt chunk's (T, A, D, K) and the factor on its time (the iterations a prompt takes).
    `alone` (per row): 1 where the engine runs prefill batches alone: no decodes beside the prompts."""
    keep = np.where(np.asarray(alone) > 0, 0.0, 1.0)        # 0: no decodes in a prefill batch
    T = np.minimum(np.maximum(mnt - keep * N, 1.0) + isl, N * isl)        # ~ budget, after the fixed point below
    D = keep * np.maximum(N - T / isl, 0.0)
    budget = np.maximum(mnt - D, 1.0)
    T = np.minimum(budget, N * isl)
    D = keep * np.maximum(N - T / isl, 0.0)
    ch = np.minimum(T, isl)
    k = np.where(N * isl <= budget, 1.0, 1.0 + (isl - 1.0) / budget)
    return beside_decodes(T, D, isl, osl), beside_decodes(ch, D, isl, osl)[:4], k


def _group_ttft_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num) -> Num:
    """TTFT (s) of the closed form (roofline rows; the whole-group view it was fitted with): the N requests arrive
    together and a prompt runs in the prefill-heavy iteration(s) beside the other sequences' decodes."""
    work, chunk, k = group_prompt_work(N, isl, osl, mnt, p.coeffs.prefill_alone)
    L = steady_lanes(p, N, isl, osl, mnt)           # pp > 1: the batches in flight
    return k * chunk_pass_s(p, replica_time_s(p, *work, L), *chunk, L)


def run_prompt_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0
                    ) -> tuple[Work, Num, Work, Num, ChunkWork]:
    """`_run_ttft_s`'s iterations: the steady state's work (T, A, D, K, S as `replica_time_s` takes them) and the
    iterations a prompt's own chunks take; the start-up wave's work, its iterations before and with a prompt's
    own (the waits' iterations at a third of the other prompts' decodes, the own chunk at half of them), and that
    prompt chunk's (T, A, D, K). `alone` (per row, `Coeffs.prefill_alone`): 1 where the engine runs
    prefill batches alone: the running decodes neither take budget from a prompt nor run beside it."""
    keep, _, T, D, k0 = own_iteration(N, isl, mnt, alone)
    steady = beside_decodes(T, D, isl, osl)
    # start-up wave: the N prompts run first come, first served in iterations of a full budget of prompt tokens,
    # g = T_w / isl prompts an iteration, and iteration i also carries the decodes of the g (i - 1) prompts done
    # before it (at about isl of context; none where prefill batches run alone). The prompt done in iteration m
    # waits through m of them, g m (m - 1) / 2 decodes in all; over the wave (m = 1 .. n_w = N / g) that is
    # g (n_w^2 - 1) / 6 = k_w (N - g) / 3 with k_w = (n_w + 1) / 2 iterations: a wait's iterations carry a third of
    # the other prompts' decodes, not the half that the wave's middle iteration (a prompt's own last one) carries,
    # and they take that much of the budget
    T_w = np.minimum(mnt, N * isl)
    others = keep * np.maximum(N - T_w / isl, 0.0)
    D_w = others / 3.0
    T_w = np.minimum(np.maximum(mnt - D_w, 1.0), N * isl)
    k_w = 0.5 * (1.0 + N * isl / T_w)
    ch, D_own = np.minimum(T_w, isl), 0.5 * others
    return (steady, k0, (T_w, T_w * (isl + 1.0) * 0.5, D_w, D_w * isl, D_w + T_w / isl), k_w,
            (ch, ch * (isl + 1.0) * 0.5, D_own, D_own * isl))


def decode_step_work(N: Num, isl: Num, osl: Num) -> Work:
    """A pure decode step of the steady state's N sequences (T, A, D, K, S as `replica_time_s` takes them): no
    prompt tokens, each sequence at the mean context isl + osl / 2."""
    return (0.0, 0.0, N, N * (isl + 0.5 * osl), N)


def full_budget_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0) -> Work:
    """The iteration a queued prompt waits through in `round_prompt_work` (T, A, D, K, S as `replica_time_s` takes
    them): a full budget of prompt tokens (at most the N prompts) beside the decodes `own_iteration` keeps."""
    _, budget, _, D, _ = own_iteration(N, isl, mnt, alone)
    return beside_decodes(np.minimum(budget, N * isl), D, isl, osl)


def round_lag(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, L: Num,
              steps: tuple[Num, Num] | None = None) -> tuple[Num, Num]:
    """`round_prompt_work`'s (lag, span), per row in decode steps of the N sequences (`decode_step_work`): the
    client's host time between a request's last token and its next prompt at the scheduler (`host_ttft_s`), during
    which the engine keeps stepping, and the full-budget prefill iteration (`full_budget_work`); `L`: a pipeline's
    batches in flight (`steady_lanes`). No lag with pp > 1 stages: the batches in flight take the arriving prompts
    at each batch's return, a turn the round's pricing keeps (`saturated_share`; a pp 2 loop read 0.83x the
    simulator's throughput with it, tests/objectives/inference/test_saturated_ttft.py). `steps`: the seconds of
    `lag_step_works`' two iterations (each one iteration, `whole`) where the caller has them (None: priced here)."""
    if steps is None:
        dec, full = (replica_time_s(p, *w, L, whole=True)
                     for w in lag_step_works(N, isl, osl, mnt, p.coeffs.prefill_alone))
    else:
        dec, full = steps
    t_dec = np.maximum(dec, 1e-300)
    return host_ttft_s(p, N) / t_dec * (np.asarray(p.pp) <= 1), full / t_dec


def lag_step_works(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0) -> tuple[Work, Work]:
    """The iterations `round_lag` counts in (T, A, D, K, S as `replica_time_s` takes them): a pure decode step of
    the N sequences (`decode_step_work`) and the full-budget prefill iteration (`full_budget_work`)."""
    return decode_step_work(N, isl, osl), full_budget_work(N, isl, osl, mnt, alone)


def round_prompt_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0, n_it: Num = None, lag: Num = 0.0,
                      span: Num = None) -> tuple[Work, Num, Num, list[tuple[Work, Num]]]:
    """`_run_ttft_s`'s steady state, a closed loop's rounds after its start-up wave: (the work of a prompt's own
    iteration(s) (T, A, D, K, S as `replica_time_s` takes them), how many of them, how many more of that kind it
    waits for (the one in progress), and the other iterations it waits for: (work, how many) each). The prompts of a
    round arrive in clumps (the wave's prefill order, kept by the clients: `lockstep.round_queue`): a prompt's
    iteration holds the others that arrived with it (its tokens, at most the budget); where they outrun the budget
    it queues for full-budget iterations; it arrives inside an iteration of the window, half of it ahead: a prompt-
    carrying one (`busy` of them) or a decode step of the N sequences; and a prompt longer than the budget ends in a
    partial chunk that the next queued prompt (`busy`) fills to a full iteration. `alone` (per row,
    `Coeffs.prefill_alone`): 1 where the engine runs prefill batches alone: no decodes beside the prompts, the whole
    budget theirs. `n_it`: `steady_work`'s iterations per cycle of these arguments where the caller has them (None:
    derived here). `lag` (per row, decode steps): how long a finished request's next prompt takes to reach the
    scheduler, `span` (per row, decode steps; None: not priced) the full-budget iteration (`lockstep.round_queue`'s;
    lag 0: at once)."""
    _, budget, T, D, k0 = own_iteration(N, isl, mnt, alone)
    if n_it is None:
        n_it = steady_work(N, isl, osl, mnt, alone)[0]
    others, queued, busy = lockstep.round_queue(N, isl, osl, budget, n_it, alone, lag=lag, span=span)
    own = beside_decodes(np.minimum(budget, T * (1.0 + others)), D, isl, osl)
    decode = decode_step_work(N, isl, osl)
    tail = (np.ceil(k0 - 1e-9) - k0) * busy         # the partial last chunk's iteration, filled
    return own, k0, 0.5 * busy, [(decode, 0.5 * (1.0 - busy)),
                                 (full_budget_work(N, isl, osl, mnt, alone), queued + tail)]


def released_prompt_work(N: Num, isl: Num, osl: Num, mnt: Num, alone: Num = 0.0, n_it: Num = None
                         ) -> tuple[Work, Num]:
    """The own iteration(s) of a prompt that waited for a slot in a saturated closed loop (more clients than slots,
    `queue_waits`): (their work, T, A, D, K, S as `replica_time_s` takes them; how many). Queued long before, the
    prompt is admitted as a running request finishes, into the iteration that starts there: received already, it
    waits for no iteration in progress or formed ahead (the simulator's `serving.engine._Replica._begin` takes the
    queue at the boundary where a slot frees). The N slots do not free together: the outputs' spread drifts the
    residencies apart, so each of the N - 1 other sequences finishes in any of the cycle's `n_it` iterations and
    (N - 1) / n_it of them free a slot at the same boundary, their queued prompts in the same iteration (within the
    budget); the prompt runs beside the other sequences' decodes (`own_iteration`: its chunks at the budget; an
    engine that runs prefill batches alone, `alone` > 0 per row, none beside it), not with a round's clump of
    prompts and their queue (`round_prompt_work`). `n_it`: `steady_work`'s iterations per cycle of these arguments
    where the caller has them (None: derived here)."""
    _, budget, T, D, k0 = own_iteration(N, isl, mnt, alone)
    if n_it is None:
        n_it = steady_work(N, isl, osl, mnt, alone)[0]
    others = np.minimum((N - 1.0) / np.maximum(n_it, 1.0), np.maximum(budget / isl - 1.0, 0.0))
    return beside_decodes(np.minimum(budget, T * (1.0 + others)), D, isl, osl), k0


def released_prompt_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, n_it: Num = None) -> Num:
    """Seconds from a released slot to the first token of the queued prompt it admits (`released_prompt_work`),
    before the host time; `n_it` as `released_prompt_work`'s."""
    own, k0 = released_prompt_work(N, isl, osl, mnt, p.coeffs.prefill_alone, n_it)
    L = steady_lanes(p, N, isl, osl, mnt)           # pp > 1: the batches in flight
    return k0 * chunk_pass_s(p, replica_time_s(p, *own, L, whole=True), *own[:4], L)


def saturated_share(N: Num, conc: Num, host: Num, residency: Num, pp: Num = 1) -> Num:
    """The share (per row, 0 to 1) of a closed loop's prompts that wait for a slot, so are admitted as one frees
    (`released_prompt_work`) rather than on arrival (`round_prompt_work`): the mean queue, min(1, its length).
    `conc` clients per replica on N slots, each request holding its slot `residency` s: of the conc - N clients
    not in a slot, host x N / residency are in their host time (`host_ttft_s`, s; Little's law at N / residency
    requests/s), the others queued (`queue_waits`' wait x N / residency). 0 where conc <= N, so the closed loop's
    TTFT is continuous as the clients pass the slots. 0 too with `pp` > 1 stages: a pipeline's admitted prompt
    still waits for its batch's turn (`serving.engine._Replica._next_return`), which the released prompt's pricing
    leaves out, so pipelines keep the round's (the third review: 1.19x the simulator's throughput with it at pp 2)."""
    return np.clip(conc - N - host * N / np.maximum(residency, 1e-300), 0.0, 1.0) * (np.asarray(pp) <= 1)


def arrival_wait_iters(p: Prepared, N: Num) -> Num:
    """Mean iterations (per row) a new request of the steady state of N clients a scheduler (a replica's, or an
    attention-DP rank's share) waits before the
    iteration that runs its prompt: the whole one in progress when it arrives (its client sent it as its previous
    request's last iteration ended, and through the engine's API server, `serving.scheduler.API_SERVER_MS`, it
    reaches the scheduler just after the next iteration began: the simulator's `Scheduler.frontend_ms`; with one
    client, N <= 1, no other sequence keeps the engine stepping and it waits half of one, as at a random phase;
    between, in proportion), and where the engine forms its next batch while the current one runs
    (``Coeffs.overlap``: SGLang's overlap scheduler) the whole next one, formed before it was received (in the
    same proportion: one client finds the engine idle, nothing in flight, and is scheduled at once, as the
    simulator's idle replica is); not with pp > 1 stages, where SGLang runs its pipeline loop (``event_loop_pp``)
    instead of the overlap loop. Attention-DP ranks in lockstep (`group_clients`) step while any of them holds a
    request, so the iteration in progress is their group's, counted over the group's clients."""
    busy = np.clip(group_clients(p, N) - 1.0, 0.0, 1.0)
    return 0.5 + 0.5 * busy + formed_ahead_iters(p, N)


def formed_ahead_iters(p: Prepared, N: Num) -> Num:
    """`arrival_wait_iters`' share for the iteration formed ahead (per row): where the engine forms its next batch
    while the current one runs (``Coeffs.overlap``), not with pp > 1 stages, a request arriving during an iteration
    is received at its end, after the next one was formed, so it waits one iteration more, in proportion to the N
    clients' busy share (N <= 1: the engine idle, nothing formed ahead). An attention-DP rank in lockstep with
    nothing to run forms its step ahead too where it runs an idle batch through the overlap loop
    (`profiles.forms_idle_ahead`: SGLang, TensorRT-LLM; vLLM's runs its dummy batch synchronously): there the busy
    share is its group's (`group_clients`), as the simulator's `serving.engine._Group` lags it."""
    busy = np.clip(ahead_clients(N, group_clients(p, N), _idle_ahead(p)) - 1.0, 0.0, 1.0)
    return np.asarray(p.coeffs.overlap, dtype=float) * (np.asarray(p.pp) <= 1) * busy


def ahead_clients(N: Num, group: Num, idle_ahead: Num) -> Num:
    """The clients (per row) whose steps keep a scheduler with N of its own forming its next step ahead: its own N,
    or where an idle attention-DP rank forms its step ahead (`idle_ahead` 1.0 per row: `profiles.forms_idle_ahead`)
    its group's `group` (`group_clients`; the open loop's analogue: `serving.analytical`'s). The closed form's
    `formed_ahead_iters` and the open loop's overlap wait read it."""
    N = np.asarray(N, dtype=float)
    return N + np.asarray(idle_ahead, dtype=float) * (np.asarray(group, dtype=float) - N)


def group_clients(p: Prepared, N: Num) -> Num:
    """The clients (per row) of the attention-DP group a rank with N of them steps in: N x the busy ranks
    (``Coeffs.moe_ranks``: every rank, or those that hold a request where the clients are fewer than the ranks,
    `busy_ranks`) where the ranks step together through MoE layers (attn_dp > 1 on an MoE model,
    `lockstep_rows`), else N."""
    N = np.asarray(N, dtype=float)
    return np.where(lockstep_rows(p), N * np.asarray(p.coeffs.moe_ranks, dtype=float), N)


def _idle_ahead(p: Prepared) -> np.ndarray:
    """1.0 per row whose engine forms an idle attention-DP rank's step ahead (`profiles.forms_idle_ahead`), else
    0.0; one look-up per engine name."""
    return per_engine(np.asarray(p.engine_names, dtype=object), forms_idle_ahead)[np.asarray(p.engine_code, dtype=int)]


def lockstep_round_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, own: Work, t_own: Num, L: Num,
                     n_it: Num = None) -> tuple[Num, Num, Num, np.ndarray]:
    """`_run_ttft_s`'s steady state where attention-DP ranks step in lockstep (`Prepared.solo` set; R =
    ``moe_ranks`` > 1 busy ranks of an MoE model): (the prompt's own iteration s, a decode step of the N sequences
    s, what a step of the round's window takes beyond that decode step s, the rows this prices). `own`:
    `round_prompt_work`'s own iteration, `t_own` its time with every rank's own tokens at the experts (`replica_time_s` on `p`); `L`, `n_it` as `_run_ttft_s`'s.

    Each rank's scheduler forms its own batch and the other ranks' prompts reach them independently of this
    one's (`lockstep.round_ranks`), so the iteration that runs this rank's prompt (and those that arrived with
    it) holds the other ranks' mean prompt tokens of a step, not a clump of their own each: its time is this
    rank's iteration with its tokens alone at the experts (`Prepared.solo`) plus, per other rank, the experts'
    share of that rank's mean tokens, plus what the slowest other rank's prompt tokens exceed this rank's at the
    lone chunk's rate beyond the experts (`rank_wait_s`' split of a chunk: d at the experts per rank, the rest
    the rank's own, linear in the tokens). The steps the prompt waits through before it (`arrival_wait_iters`:
    the one in progress and, where the engine forms its next batch ahead, that one) are the round window's, in
    which the ranks' prompts arrive: a decode step plus the most prompt tokens any of the R ranks holds, beyond
    the experts, and every rank's at the experts; not the cycle's mean iteration, which the window's prompt-free
    steps thin out. NaN-free on every row; `on` False where the ranks do not step in lockstep."""
    assert p.solo is not None   # the lone rank's coefficients (`_max_throughput_eval` prepares them)
    R = np.asarray(p.coeffs.moe_ranks, dtype=float)
    on = lockstep_rows(p) & (R > 1.0) & (np.asarray(p.source_code) > 0)
    alone = p.coeffs.prefill_alone
    _, budget, _, _, _ = own_iteration(N, isl, mnt, alone)
    if n_it is None:
        n_it = steady_work(N, isl, osl, mnt, alone)[0]
    Rs = np.where(on, R, 2.0)
    one, most, others = lockstep.round_ranks(N, isl, osl, budget, n_it, Rs, alone)
    q = replace(p, coeffs=p.solo, solo=None)
    t_one = replica_time_s(q, *own, L, whole=True)     # this rank's tokens alone at the experts
    t_dec = replica_time_s(p, *decode_step_work(N, isl, osl), L, whole=True)
    per = 1.0 / np.maximum(np.asarray(own[0], dtype=float), 1e-300)    # per own prompt token
    experts = np.maximum(t_own - t_one, 0.0) / (Rs - 1.0) * per      # s per token of another rank at the experts
    lone = rank_wait_s(p, t_own, t_one, t_dec, 1.0) * per            # s per own token beyond experts and decodes
    slow = np.maximum(others - np.asarray(own[0], dtype=float), 0.0)
    t_ls = t_one + (Rs - 1.0) * one * experts + lone * slow
    return np.where(on, t_ls, t_own), t_dec, np.where(on, lone * most + Rs * one * experts, 0.0), on


def lockstep_steady_terms(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, own: Work, t_own: Num, L: Num,
                          n_it: Num) -> tuple[Num, Num, Num, Num, Num, np.ndarray]:
    """The weights and step times of `_run_ttft_s`'s steady wait where attention-DP ranks step in lockstep
    (`lockstep_round_s`; `served_breakdown` splits the same sum): (scale of the prompt's own iteration(s), the
    lockstep round's own over `t_own`; decode steps waited; window excesses waited; a decode step s; a window
    step's excess over it s; the rows this prices). The steady wait there is k0 x the own iteration's chunk pass x
    scale + the queued full-budget iterations (`round_prompt_work`'s waits after the first) + decode steps x the
    decode step + window excesses x the excess. The prompt waits `arrival_wait_iters` steps of the round's window:
    a decode step plus the most prompt tokens any rank holds (the ranks' prompts arrive in it); where the engine
    runs prefill batches alone (`arrival_decode_rows`: SGLang) the one its overlap scheduler formed before
    receiving the prompt (`formed_ahead_iters`, ``Scheduler.event_loop_overlap``) is a decode step, as
    `arrival_iter_s` prices it: the prompts received with it queue in `lockstep.round_queue`'s prefill burst,
    not in that step; the slowest rank's excess stays in the prompt's own iteration and the step in progress.
    `n_it`: `steady_work`'s iterations per cycle (as `_run_ttft_s`'s)."""
    t_ls, t_dec, excess, on = lockstep_round_s(p, N, isl, osl, mnt, own, t_own, L, n_it)
    arrival = arrival_wait_iters(p, N)
    return (t_ls / np.maximum(t_own, 1e-300), arrival,
            np.where(arrival_decode_rows(p), arrival - formed_ahead_iters(p, N), arrival),
            t_dec, excess, on)


def arrival_decode_rows(p: Prepared) -> np.ndarray:
    """Rows (bool) whose iteration a new prompt finds in progress, or formed ahead, is a decode step of the N
    sequences, not the cycle's mean: the engine runs prefill batches alone (``Coeffs.prefill_alone``: SGLang),
    so a request finishes only in a decode step (`arrival_iter_s`)."""
    return np.asarray(p.coeffs.prefill_alone) > 0


def arrival_iter_s(p: Prepared, N: Num, isl: Num, osl: Num, iter_s: Num, L: Num, dec_s: Num = None) -> Num:
    """The iteration (s, per row) that `arrival_wait_iters` counts beyond the half in progress that
    `round_prompt_work` prices: the mean one, `iter_s`; where the engine runs prefill batches alone
    (``Coeffs.prefill_alone``: SGLang) a decode step of the N sequences (`decode_step_work`; `L`: a pipeline's
    batches in flight). There a request finishes only in a decode step, and the prompts that reach the scheduler
    while a prefill batch runs queue for it (`lockstep.round_queue`'s burst): the iteration a prompt finds in
    progress, and the one the overlap scheduler formed before receiving it (``Scheduler.event_loop_overlap``), are
    the decode steps that run while it travels, not the cycle's mean (the round's prefill batches in it: at
    2048/2, 32 clients, 112 against 8 ms). `dec_s`: that decode step's time where the caller priced it (None:
    priced here)."""
    alone = arrival_decode_rows(p)
    if not np.any(alone):
        return iter_s
    if dec_s is None:
        dec_s = replica_time_s(p, *decode_step_work(N, isl, osl), L, whole=True)
    return np.where(alone, dec_s, iter_s)


def _run_ttft_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, iter_s: Num, n_it: Num = None,
                sat: Num = 0.0, released: Num = None) -> Num:
    """Mean TTFT (s, before the engine's front-end time) over a closed-loop run of N clients per replica that
    all start at once, on measured-profile rows. The run begins with a start-up wave: the N prompts arrive
    together and are prefilled first come, first served in full iterations beside the decodes of the prompts
    already done (at about the prompt's length of context: a third of the others on average over a request's
    waits, `run_prompt_work`), so a request of that wave waits for half the wave's prefill iterations plus its
    own. Afterwards the clients keep the wave's order: a round's requests finish about as their prompts were prefilled, so the next round's prompts
    arrive in a window of about the wave's prefill iterations, widened round by round by the outputs' drift
    (`lockstep.arrival_rates`). A prompt then waits for the iteration in progress when it arrives (half of one of
    the window's, prompt-carrying or a decode step, and half a mean iteration, `iter_s`, more: its client sent it
    as its previous request's iteration ended, so it arrives as the next one begins; one mean iteration more where
    the next one was formed before the request was received: `arrival_wait_iters`), for the prompts ahead of it in the budget
    (`lockstep.round_queue`: M/D/1 in full-budget iterations), and runs in an iteration that also holds the
    prompts that arrived with it, beside the N - 1 other sequences decoding; a prompt longer than the budget
    ends in a partial chunk that the next prompt fills. `ttft_wave` is the share of the run's requests in the
    wave (1 / the requests each client sends: `Efficiency`). The iterations: `run_prompt_work`. `n_it`: as
    `round_prompt_work`'s. `sat` (per row, `saturated_share`): the share of the steady state's prompts that waited
    for a slot, admitted as one frees (`released_prompt_s`, or `released` where the caller has it) instead."""
    L = steady_lanes(p, N, isl, osl, mnt)           # pp > 1: the batches in flight
    # `round_lag`'s decode step and full-budget iteration, priced once: the prompt's waits hold the same ones
    lag_works = lag_step_works(N, isl, osl, mnt, p.coeffs.prefill_alone)
    dec_s, full_s = (replica_time_s(p, *w, L, whole=True) for w in lag_works)
    own, k0, k_own, waits = round_prompt_work(N, isl, osl, mnt, p.coeffs.prefill_alone, n_it,
                                              *round_lag(p, N, isl, osl, mnt, L, (dec_s, full_s)))

    def wait_s(w: Work) -> Num:     # a wait's iteration: `round_lag`'s where its work is the same
        for known, known_s in zip(lag_works, (dec_s, full_s)):
            if all(a is b or np.array_equal(a, b) for a, b in zip(w, known)):
                return known_s
        return replica_time_s(p, *w, L, whole=True)
    t_s = replica_time_s(p, *own, L, whole=True)   # the prompt's own iteration (one, not a mean)
    arrival = arrival_wait_iters(p, N)
    steady = (k0 * chunk_pass_s(p, t_s, *own[:4], L) + k_own * t_s
              + sum(k * wait_s(w) for w, k in waits)
              + (arrival - 0.5) * arrival_iter_s(p, N, isl, osl, iter_s, L, dec_s))
    if p.solo is not None:     # attention-DP ranks in lockstep: the round's steps as the other ranks fill them
        scale, k_dec, k_win, t_dec, excess, on = lockstep_steady_terms(p, N, isl, osl, mnt, own, t_s, L, n_it)
        if np.any(on):
            queued = sum(k * wait_s(w) for w, k in waits[1:])
            steady = np.where(on, k0 * chunk_pass_s(p, t_s, *own[:4], L) * scale
                              + queued + k_dec * t_dec + k_win * excess, steady)
    if np.any(np.asarray(sat) > 0):
        if released is None:
            released = released_prompt_s(p, N, isl, osl, mnt, n_it)
        steady = steady + sat * (released - steady)
    t_w, k_w, own_pass, _ = startup_wave(p, N, isl, osl, mnt, L)
    wave = k_w * t_w + own_pass
    w = p.coeffs.wave
    return (1.0 - w) * steady + w * np.maximum(wave, steady)


def startup_wave(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, L: Num = None, floor: bool = False
                 ) -> tuple[Num, Num, Num, Num]:
    """A closed loop's start-up wave as `_run_ttft_s` prices it, on each of N clients' ranks (`run_prompt_work`):
    (t_w, s: one of its iterations, a full budget of prompt tokens beside the decodes of the prompts done; k_w: the
    iterations a wave prompt's mean TTFT holds, (1 + n_w) / 2 of the wave's n_w = N x isl / its prompt tokens per
    iteration, the k-th prompt's first token coming after ceil(k / (N / n_w)) of them; own_pass, s: what the
    prompt's own chunk takes beyond one iteration, its pass through a pipeline's every stage (0 where pp = 1);
    floor, s: a steady-state prompt's own iteration(s) alone, no wait before them (`own_iteration`'s k0 x its
    iteration), the least TTFT beside the engine's host time; 0.0 unless ``floor``). `L`: the pipeline's batches in
    flight (`steady_lanes`; None: derived). The closed loop's mean (`_run_ttft_s`) and its percentiles
    (`serving.analytical`) read it."""
    steady_work, k0, wave_work, k_w, chunk = run_prompt_work(N, isl, osl, mnt, p.coeffs.prefill_alone)
    if L is None:
        L = steady_lanes(p, N, isl, osl, mnt)
    t_w = replica_time_s(p, *wave_work, L, whole=True)
    # the iterations before a prompt's own run at the pipeline's rate; its own one passes every stage
    own_pass = chunk_pass_s(p, t_w, *chunk, L) - t_w
    return t_w, k_w, own_pass, (k0 * replica_time_s(p, *steady_work, L, whole=True) if floor else 0.0)


@speculative_mod.per_row_spec
def max_throughput(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None, act_dtype: Any = None,
                   kv_dtype: Any = None, input_len: Any = 1024, output_len: Any = 128, *, dp: Any = 1, ep: Any = 1,
                   max_batch_size: Any = None, max_num_tokens: Any = None,
                   concurrency: Any = None, prices: Mapping[str, float] | None = None,
                   engine_profile: Any = "standard", engine: Any = None, attn_dp: Any = 1,
                   efficiency: Efficiency | None = None,
             profile: Any = None, interval: float | None = None,
                   gpu_memory_utilization: float | None = None,
                   kv_capacity_tokens: Any = None, eplb: Any = False, moe_act_dtype: Any = None,
                   moe_a2a: Any = None, adp_balance: Any = None,
                   prefix_caching: Any = True, speculative: Any = None) -> pd.DataFrame:
    """Best throughput under in-flight (continuous) batching, the way max-throughput benchmarks run engines.

    The batch in flight is the largest the KV cache admits: N = min(max_batch_size, KV capacity tokens /
    (input_len + r x output_len)), r the share of the output the engine's admission policy holds blocks for
    (`Efficiency` ``engine_kv_reserve``: vLLM admits on the blocks a request holds now and preempts when they run
    out, so a loaded server's requests hold their prompt and half their output on average; TensorRT-LLM's default
    guaranteed-no-evict scheduler reserves prompt + full output at admission: ``kv_reserve_output_frac``). SGLang
    admits by its new-token ratio (`inference.admission`): N = floor((capacity - input_len - min(output_len,
    4096)) / per-request tokens) + 1, a running request counting its prompt, half its output and the ratio a
    loaded server runs at (0.30) x its mean remaining output clipped at 4,096; past that clip admission lets in
    more than the cache holds and retraction keeps it full: N = capacity / (input_len + output_len / 2). Where
    SGLang's cache bounds the batch (N below the clients), its retraction churn (`admission.churn`): each request is
    retracted output_len / ``admission.DECODED_PER_RETRACTION`` times on average, prefills its prompt and output so
    far again (the cycle grows by that work) and queues again at the back, so of its wait for a slot one stint of
    1 + that many comes before its first token and the others (and the prefills again) go into its tpot. vLLM's
    clients that fit the cache on average but not at the end of their waves (concurrency x (input_len +
    output_len) above it) are preempted as each wave overflows (`admission.wave_overflow`): the prefills again go
    into the cycle, and the prompts queued behind a preempted request at the front of the queue wait
    `admission.overflow_wait` cycles before their first token; SGLang's there retract each victim once, to the back
    of the queue (`admission.wave_retraction`: its prompt and output so far prefilled again in the cycle), and the
    prompts behind them wait for the ratio to decay and the readmitted to finish (`admission.retraction_wait`).
    Just past the cache (N a little below the clients) both engines' N admitted still overflow at their waves'
    end, and the queue of the others dissolves the waves into the churn as it grows (`admission.queue_blend`).
    Throughput grows with N (weights are read once per iteration for all sequences), so the largest feasible N is
    the best. `max_batch_size` / `max_num_tokens` (None, the default: each row's engine's own, as its server starts
    without them: `resolve.engine_budgets`; the roofline's `DEFAULT_MAX_BATCH_SIZE` / `DEFAULT_MAX_NUM_TOKENS`, as
    `serving.Scheduler()` resolves them per engine too). Iterations carry at most `max_num_tokens` tokens (chunked
    prefill mixes prompt chunks with decode tokens; SGLang runs its prefill batches alone and pauses the decodes meanwhile,
    ``Coeffs.prefill_alone``: `steady_work`). Columns as `estimate` plus `batch_size` (N); ttft_ms/tpot_ms are those of a
    request in that steady state: tpot is the time per output token after the first, as the engines' benchmarks
    time it ((e2e - ttft) / (output_len - 1): the cycle less the iterations of the request's own prompt, over
    output_len - 1; with output_len == 1 the mean iteration, `per_window_token`), so the GPU holds a request's
    slot ttft + (output_len - 1) x tpot, the host time aside; ttft is the time
    of the prefill-heavy iteration(s) that carry the request's prompt beside the running decodes (see
    `prefill_wait_s`), plus the wait for a free slot when `concurrency` (closed-loop clients of the whole
    deployment, spread over the dp replicas) exceeds the sequences in flight, less the host time (`host_ttft_s`)
    each client spends outside the queue (`queue_waits`). With `concurrency`, N is also at most ceil(concurrency /
    dp), and the throughput is the clients': each sends its next request once it has read the last token of its
    previous one, so concurrency = requests/s x e2e_ms (Little's law, the host time in the cycle). Default (None): as many clients as slots, no queue (a max-throughput benchmark
    that issues all requests at once also reports the time its queue takes, which depends on the request count
    and is not modelled). `interval`: band columns `<col>_lo` / `<col>_hi`, as in `estimate`.
    `gpu_memory_utilization`: the engine's memory setting instead of its default, in (0, 1], in the engine's own
    meaning (`kv_capacity_tokens`' ``memory_setting``: vLLM's gpu_memory_utilization and SGLang's
    mem_fraction_static a share of the device, TensorRT-LLM's kv_cache_free_gpu_memory_fraction of the memory
    left); None: each engine's default.
    `kv_capacity_tokens`: the KV cache of each replica (attention-DP rank), in tokens' worth of every layer's KV
    (a whole number >= 1, or an array of them, one per row), instead of what the memory model gives it (as `serving.Scheduler(kv_capacity_tokens=)`: it takes precedence
    over `gpu_memory_utilization`, and the memory columns count the KV the batch holds, not the capacity).
    `eplb`: an expert-parallel load balancer, as in `estimate`; `moe_act_dtype`: the MXFP4 experts' activations, as
    in `estimate`; `moe_a2a`: the EP token exchange, as in `estimate`. Attention-DP ranks of an MoE model step in
    lockstep: each rank's cycle also holds its waits for the other ranks' prompt chunks (`rank_wait_s`), as the
    closed loop's clients send them (`lockstep`). `adp_balance`: TensorRT-LLM's attention-DP balance
    (``attention_dp_config.enable_balance``): None / False (off, every engine's default), True (TensorRT-LLM's
    default iterations) or a `lockstep.AdpBalance`; it holds the prompts back until the ranks' run together
    (`lockstep.AdpBalance`), so the ranks wait less for each other and each prompt waits for its release
    (`balance_hold_s`); or one bool per row (True: TensorRT-LLM's default iterations). Only TensorRT-LLM has it
    (`dse deploy` launches it there); other rows read it as a what-if.
    `prefix_caching` (bool, or one per row; default True, the engines' default): whether a vLLM request preempted
    where the cache binds finds what of its prompt and output so far its prefix cache kept (`admission.
    preemption_churn`); off, it prefills them all again.
    `speculative`: speculative decoding, as in `estimate` (None: off; may be one per row): the steady state's
    decodes in token time
    (`speculative_time_s`), the KV capacity and the memory columns with the draft layer's weights and KV and k
    more tokens a sequence, the overlap loop where the engine release keeps it (`speculative.with_speculative`) and
    SGLang's max sequences 48 a server where `max_batch_size` is not given (`speculative.sglang_max_running`:
    48 // attn_dp a rank).
    """
    if interval is not None:
        check_level(interval)
    p, res, isl, osl = _max_throughput_eval(
        model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, input_len, output_len, dp=dp, ep=ep,
        max_batch_size=max_batch_size, max_num_tokens=max_num_tokens, concurrency=concurrency, prices=prices,
        engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, efficiency=efficiency, profile=profile,
        gpu_memory_utilization=gpu_memory_utilization, kv_capacity_tokens=kv_capacity_tokens, eplb=eplb,
        moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a, adp_balance=adp_balance,
        prefix_caching=prefix_caching, speculative=speculative)
    if p is None:
        return _banded(_empty_frame(("batch_size", "input_len", "output_len")), interval)
    return _banded(_frame(p, res, {"batch_size": None, "input_len": isl, "output_len": osl},
                          gpu_memory_utilization), interval)


#: `max_throughput_times`' keys
TIMES = ("ttft_ms", "tpot_ms", "cycle_ms", "window_iters")


def max_throughput_times(*args: Any, startup: bool = False, **kwargs: Any) -> dict[str, np.ndarray]:
    """`max_throughput`'s ``ttft_ms`` and ``tpot_ms`` (flat arrays, its rows in its order; same arguments, no
    ``interval``) without its result table: for callers that price many occupancies of the same deployments (the
    serving model's searches), where building the table costs about as much as the model. Also the steady state's
    request cycle, ``cycle_ms`` (ms; TTFT's own prompt iterations and the decode window, `steady_cycle`), and the
    iterations of its decode window per output token after the first, ``window_iters`` (1 where decodes ride
    beside prompts; more where prefill batches pause them, SGLang): what the callers read the mean iteration and
    a per-iteration cost from, rather than inverting TPOT. With ``startup``, also the closed loop's start-up wave
    on each row's batch in flight (`STARTUP` keys, `startup_wave`): ``wave_iter_ms`` (one of its iterations),
    ``wave_iters`` (its iterations), ``wave_base_ms`` (the engine's host time before the first token,
    `host_ttft_s`, and the own chunk's pass beyond one iteration), ``floor_ms`` (the host time and a steady-state
    prompt's own iteration(s) alone) and ``wave_mean_share`` (the wave's fitted share in the mean TTFT,
    `_run_ttft_s`'s ``ttft_wave``; 1 on the closed form's rows, whose mean holds none), what
    `serving.analytical`'s closed-loop percentiles read."""
    p, res, isl, osl = _max_throughput_eval(*args, **kwargs)
    if p is None:
        return {k: np.empty(0) for k in (*TIMES, *(STARTUP if startup else ()))}
    out = {k: res[k] for k in TIMES}
    if startup:
        q = p.take(p.inv) if p.inv is not None else p      # one entry per row
        shape = q.row_shape
        N = res["batch_size"].reshape(shape) if shape else res["batch_size"][0]
        mnt = kwargs.get("max_num_tokens")
        mnt = _engine_budgets(q, 1.0, None)[1] if mnt is None else np.asarray(mnt, dtype=float)
        t_w, k_w, own_pass, floor = startup_wave(q, N, isl, osl, mnt, floor=True)
        front = host_ttft_s(q, N)
        # the wave's share of the mean TTFT (`_run_ttft_s` on measured-profile rows; none in the closed form's)
        share = np.where(np.asarray(q.source_code) > 0, np.asarray(q.coeffs.wave, dtype=float), 1.0)
        for k, v in (("wave_iter_ms", 1e3 * t_w), ("wave_iters", 2.0 * k_w - 1.0),
                     ("wave_base_ms", 1e3 * (front + own_pass)), ("floor_ms", 1e3 * (front + floor)),
                     ("wave_mean_share", share)):
            out[k] = np.broadcast_to(np.asarray(v, dtype=float), shape).ravel() if shape else np.asarray(
                v, dtype=float).reshape(1)
    return out


#: `max_throughput_times`' keys with ``startup``
STARTUP = ("wave_iter_ms", "wave_iters", "wave_base_ms", "floor_ms", "wave_mean_share")


def _max_throughput_eval(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None,
                         act_dtype: Any = None, kv_dtype: Any = None, input_len: Any = 1024, output_len: Any = 128, *,
                         dp: Any = 1, ep: Any = 1, max_batch_size: Any = None,
                         max_num_tokens: Any = None, concurrency: Any = None,
                         prices: Mapping[str, float] | None = None, engine_profile: Any = "standard",
                         engine: Any = None, attn_dp: Any = 1, efficiency: Efficiency | None = None,
                         profile: Any = None, gpu_memory_utilization: float | None = None,
                         kv_capacity_tokens: Any = None, eplb: Any = False, moe_act_dtype: Any = None,
                         moe_a2a: Any = None, prompts_at_once: Any = None, lanes_at_least: Any = None,
                         adp_balance: Any = None,
                          prefix_caching: Any = True, speculative: Any = None
                         ) -> tuple[Prepared | None, dict[str, np.ndarray], Num, Num]:
    """`max_throughput` up to its table: (the prepared configurations, the metric columns, input and output
    lengths as validated); (None, {}, ...) for zero configurations. `prompts_at_once` (per row, >= 1; None: as
    many as the budget holds, the closed loop's groups): the most prompts one prefill iteration of the steady
    state carries (`split_work`), for callers whose requests arrive apart; `lanes_at_least` (per row, >= 1; None:
    none): the batches in flight a pipeline keeps at least (`steady_lanes`), where such a caller's load opened
    them. `adp_balance`: as `max_throughput`'s."""
    _memory_setting(gpu_memory_utilization)
    efficiency = _with_profile(efficiency, profile)
    spec = resolve_speculative(speculative, model)
    isl = positive("input_len", input_len)
    osl = positive("output_len", output_len)
    mbs = None if max_batch_size is None else positive("max_batch_size", max_batch_size)
    mnt = None if max_num_tokens is None else positive("max_num_tokens", max_num_tokens)
    conc = None if concurrency is None else positive("concurrency", concurrency)
    kv = None if kv_capacity_tokens is None else positive("kv_capacity_tokens", kv_capacity_tokens)
    rows = dict(input_len=isl, output_len=osl)
    for name, v in (("max_batch_size", mbs), ("max_num_tokens", mnt)):
        if v is not None:
            rows[name] = v
    if conc is not None:
        rows["concurrency"] = conc
    if kv is not None:
        rows["kv_capacity_tokens"] = kv
    prompts = (None if prompts_at_once is None
               else positive("prompts_at_once", prompts_at_once, integer=False, upper=np.inf))
    if prompts is not None:
        rows["prompts_at_once"] = prompts
    balance, balance_on, cached = _knob_rows(rows, adp_balance, prefix_caching)
    lanes = (None if lanes_at_least is None
             else positive("lanes_at_least", lanes_at_least, integer=False, upper=np.inf))
    if lanes is not None:
        rows["lanes_at_least"] = lanes
    p = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, dp, ep, efficiency, prices, rows=rows,
                engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, eplb=eplb, moe_act_dtype=moe_act_dtype,
                moe_a2a=moe_a2a)
    if p is None:
        return None, {}, isl, osl
    if mbs is None or mnt is None:
        mbs, mnt = _engine_budgets(p, mbs, mnt)
    solo = None
    if steps_in_lockstep(p):
        # attention-DP ranks in lockstep (`rank_wait_s`): one rank's prompt chunk alone at the experts
        one = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, dp, ep, efficiency, prices, rows=rows,
                      engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, eplb=eplb,
                      moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a, moe_dp=1.0)
        assert one is not None  # the same arguments as `p`
        solo = one.coeffs
        p = replace(p, solo=solo)
    p = speculative_mod.with_speculative(p, spec)
    ms = None if gpu_memory_utilization is None else float(gpu_memory_utilization)
    args = dict(isl=isl, osl=osl, mbs=mbs, mnt=mnt, conc=conc, ms=ms, kv=kv, prompts=prompts,
                balance=balance, cached=cached, balance_on=balance_on, lanes=lanes)
    res = _evaluate(p, args, _max_throughput_rows)
    if conc is not None:
        # fewer clients than a replica's attention-DP ranks: only the ranks holding a request run it, the others
        # idle (dummy forwards), so only their tokens reach the routed experts (`prepare`'s moe_dp); one
        # preparation per distinct number of busy ranks, its rows taken from it
        flat_busy = busy_ranks(conc, dp, attn_dp, p.row_shape)
        if np.any(flat_busy > 0):
            for v in np.unique(flat_busy[flat_busy > 0]):
                q = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, dp, ep, efficiency, prices,
                            rows=rows, engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, eplb=eplb,
                            moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a, moe_dp=float(v))
                assert q is not None  # the same arguments as `p`
                sub = _evaluate(speculative_mod.with_speculative(replace(q, solo=solo), spec), args,
                                _max_throughput_rows)
                sel = flat_busy == v
                res = {k: np.where(sel, sub[k], col) if np.shape(col) == sel.shape else col
                       for k, col in res.items()}
    return p, res, isl, osl


def _past_context(p: Prepared) -> np.ndarray:
    """Per configuration, whether its engine serves past the model's context (`resolve.serves_past_context`, one
    look-up per engine name)."""
    return serves_past_context(np.asarray(p.engine_names, dtype=object))[np.asarray(p.engine_code, dtype=int)]


def _engine_budgets(p: Prepared, mbs: Num, mnt: Num) -> tuple[Num, Num]:
    """`mbs` / `mnt` (max sequences, max tokens per iteration), each None replaced by its row's engine's default on
    its GPU (`resolve.EngineBehaviour.budgets`; rows on the roofline: `DEFAULT_MAX_BATCH_SIZE` / `DEFAULT_MAX_NUM_TOKENS`): a
    float where every row takes the same, else an array of p.row_shape. The max sequences of an engine whose own
    follow its KV pool (``EngineBehaviour.pool_batch``: SGLang) are NaN, which `served_batch` resolves on the pool."""
    # one look-up per distinct (engine, GPU) pair of the configurations (a sweep of millions holds a handful)
    e, g, m = np.broadcast_arrays(np.asarray(p.engine_code), np.asarray(p.gpu_index), np.asarray(p.mem_gpu, float))
    pairs, first, inv = np.unique(np.stack([e.ravel(), g.ravel()], axis=1).astype(np.int64), axis=0,
                                  return_index=True, return_inverse=True)
    names = [p.engine_names[ei] for ei, _ in pairs]
    own = engine_behaviours(names, [(mi / memory.GIB, str(p.gpu_names[gi]))
                                    for (_, gi), mi in zip(pairs, m.ravel()[first])])
    table = np.array([b.budgets for b in own], dtype=float).reshape(-1, 2)
    table[[b.pool_batch for b in own], 0] = np.nan

    def rows(col: np.ndarray) -> Num:
        v = col[np.ravel(inv)].reshape(e.shape)
        if len(np.unique(v)) == 1:
            return float(v.flat[0])
        return p.rows_of(v, float).reshape(p.row_shape)

    return (rows(table[:, 0]) if mbs is None else mbs, rows(table[:, 1]) if mnt is None else mnt)


def _knob_rows(rows: dict[str, Any], adp_balance: Any, prefix_caching: Any
               ) -> tuple[lockstep.AdpBalance | None, Num, Num]:
    """`max_throughput`'s ``adp_balance`` and ``prefix_caching`` knobs as it prices them: (the attention-DP balance
    of the rows that have one, the rows it applies to: its per-row bools where one per row was given, else True
    (`lockstep.balance_rows`);
    the prefix cache on, one bool or one per row: `resolve.flag`), each per-row value also added to `rows` (the
    per-row arguments `prepare` broadcasts). The one home of these knobs for `_max_throughput_eval` and
    `breakdown.served_breakdown`."""
    balance, balanced = lockstep.balance_rows(adp_balance)
    cached = flag("prefix_caching", prefix_caching)
    if np.ndim(cached):
        rows["prefix_caching"] = cached
    if balanced is not None:
        rows["adp_balance"] = balanced
    return balance, True if balanced is None else balanced, cached


def recompute_s(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, redo: Num) -> Num:
    """Replica time (s) one retracted request's prefill again adds: `redo` prompt tokens in chunks of at most
    `mnt` beside the N running decodes (their mean context isl + osl / 2), each chunk's iteration less the pure
    decode step it replaces; where the engine runs prefill batches alone (``Coeffs.prefill_alone``: SGLang) each
    chunk is a batch of its own that the decodes wait for, its whole time added."""
    n_ch = np.maximum(np.ceil(redo / mnt), 1.0)
    T = redo / n_ch
    A = redo * (redo + 1.0) * 0.5 / n_ch
    K = N * (isl + 0.5 * np.asarray(osl, dtype=float))
    t_mix, _ = _time_busy(p, (T, A, N, K, N + 1.0), N, True)
    t_dec, _ = _time_busy(p, (0.0, 0.0, N, K, N), N)
    t_own, _ = _time_busy(p, (T, A, 0.0, 0.0, 1.0), N)
    return n_ch * np.where(np.asarray(p.coeffs.prefill_alone) > 0, t_own, np.maximum(t_mix - t_dec, 0.0))


def busy_ranks(conc: Num, dp: Num, attn_dp: Num, row_shape: tuple[int, ...]) -> np.ndarray:
    """Per row (flat over `row_shape`): the attention-DP ranks of a replica that hold a request when `conc`
    closed-loop clients spread over `dp` replicas are fewer than its `attn_dp` ranks; 0 where every rank is busy."""
    adp = np.asarray(positive("attn_dp", attn_dp), dtype=float)
    busy = np.minimum(adp, np.maximum(np.ceil(np.asarray(conc, dtype=float) / np.asarray(positive("dp", dp),
                                                                                         dtype=float)), 1.0))
    return np.broadcast_to(np.where(busy < adp, busy, 0.0), row_shape).ravel()


def served_batch(p: Prepared, isl: Num, osl: Num, mbs: Num, mnt: Num, ms: float | None = None, kv: Num = None
                 ) -> tuple[Num, Num, Num, Num, Num]:
    """`max_throughput`'s batch in flight per replica before the clients bound it: (N >= 1 sequences, where the KV
    cache and not `mbs` bounds it, where at least one sequence fits, tokens one sequence holds at admission, the KV
    capacity per replica in the cache's tokens). `ms`:
    the engine's memory setting (None: its default); `kv`: the KV capacity per replica in tokens instead of the
    memory model's (None)."""
    cap = kv_capacity_tokens(p, mnt, memory_setting=ms) if kv is None else kv
    mbs = np.asarray(mbs, dtype=float)
    if np.any(np.isnan(mbs)):     # the engine's own max sequences by its KV pool (`_engine_budgets`: SGLang's)
        own = pool_batch(cap, p.shape.context, mnt)
        if p.spec is not None:   # the engine's server-wide max sequences with speculative decoding (SGLang's 48)
            server = np.array([engine_behaviour(n).spec_max_running or 0 for n in p.engine_names],
                              dtype=np.int64)[np.asarray(p.engine_code)]
            own = np.where(server > 0, np.minimum(own, speculative_mod.rank_running(np.maximum(server, 1),
                                                                                     p.attn_dp)), own)
        mbs = np.where(np.isnan(mbs), own, mbs)
    # what one request holds at admission (prompt + the reserved share of its output) by its engine's layout:
    # window-bounded layers at most their window, linear layers' state (`kv_pool.seq_tokens`); SGLang's rows by
    # its new-token ratio on a loaded server, the last request admitted finding its prompt and clipped output free
    sgl = np.asarray(p.coeffs.kv_ratio) > 0
    ctx = np.where(sgl, SGLANG.steady_context(isl, osl), isl + p.coeffs.kv_reserve * osl)
    if p.spec is not None:    # the k draft tokens' slots each decoding sequence holds, as `_speculative_rows`
        ctx = ctx + speculative_mod.draft_slots(p.spec, osl)
    per_seq = p.seq_tokens(ctx)
    fit = np.floor(cap / per_seq)
    if np.any(sgl):
        gate = SGLANG.steady_batch(cap, per_seq, p.seq_tokens(SGLANG.candidate(isl, osl)))
        # past the clip admission lets in more than the cache holds and retraction keeps it full
        full = np.where(past_clip(osl) & (gate > 0), np.floor(cap / p.seq_tokens(held(isl, osl))), 0.0)
        fit = np.where(sgl, np.maximum(gate, full), fit)
    N = np.minimum(mbs, fit)
    # an engine that admits on the prompt's blocks and preempts (vLLM) still refuses at start-up a cache that cannot
    # hold one request of its max_model_len, here at least the row's prompt + output (vllm/v1/core/
    # kv_cache_utils.py ``check_enough_kv_cache_memory``); the others reserve the whole request (TensorRT-LLM) or
    # clip it to the pool (SGLang)
    whole = (np.asarray(p.coeffs.kv_preempt) <= 0) | (cap >= p.seq_tokens(isl + np.asarray(osl, dtype=float)))
    ok = (N >= 1) & whole
    kv_bound = (fit <= mbs) & ok   # the cache, not max_batch_size, bounds the batch (and it fits)
    return np.maximum(N, 1.0), kv_bound, ok, per_seq, cap


def retraction_churn(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, conc: Num, kv_bound: Num,
                     cached: Num = True, cap: Num = None) -> tuple[Num, Num, Num]:
    """SGLang's retraction churn (`admission.churn`) and vLLM's preemption churn (`admission.preemption_churn`)
    where the cache bounds the batch below the clients, and vLLM's preemptions (SGLang's retractions) where its N
    sequences fit the cache on average but overflow it at the end of their waves (`admission.wave_overflow`,
    `admission.wave_retraction`): (retractions or preemptions per request, replica time (s) their prefills again add
    to a request cycle of the N sequences in flight, request cycles a new request waits behind a wave's overflow,
    `admission.overflow_wait`, `admission.retraction_wait`); zeros elsewhere. Just past the cache (N a little
    below the clients) the N admitted still run in waves that overflow, the queue of the others dissolving them as
    it grows: the two mixed by `admission.queue_blend` (`blend_churn`), the waves' wait weighted alike and
    overlapping the wait for a slot (the TTFT takes the longer of the two). `conc`: clients
    per replica (None: as many as slots, no churn); `kv_bound`: `served_batch`'s; `cached` (per row): vLLM's prefix
    cache on; `cap`: the KV capacity per replica in the cache's tokens (`served_batch`'s; None: no wave overflow)."""
    sgl = np.asarray(p.coeffs.kv_ratio) > 0
    pre = np.asarray(p.coeffs.kv_preempt) > 0
    zero = np.zeros(np.shape(N))
    if conc is None or not np.any(sgl | pre):
        return zero, zero, zero
    # each retraction's (preemption's) prompt and output so far prefilled again beside the running decodes
    binds = kv_bound & (N < np.ceil(conc))
    rho_s, redo_s = churn(isl, osl, sgl & binds)
    rho_v, redo_v = preemption_churn(isl, osl, pre & binds, cached)
    hold: Num = zero
    # every client in flight at once (no queue to stagger them): they run in waves; the N admitted run in waves
    # beside a queue of clients too, which dissolves them as it grows (`admission.queue_blend`)
    waves = (pre | sgl) & (binds | (N >= np.ceil(conc)))
    if cap is not None and np.any(waves):
        # a wave's peak, N x (isl + osl), beyond the cache: the context each sequence holds beyond its share,
        # through the layout's tokens over the half output the average leaves room for
        whole, half = p.seq_tokens(isl + np.asarray(osl, dtype=float)), p.seq_tokens(isl + 0.5 * np.asarray(osl))
        over = whole - cap / np.maximum(N, 1.0)
        share = np.where(waves & (over > 0),
                         over * 0.5 * osl / np.maximum(whole - half, 1e-9), 0.0)
        w = np.where(binds, queue_blend(N, conc), 0.0)     # the queue churn's weight, 0 where all clients fit
        rho_o, freed, u = wave_overflow(share, isl, osl)
        rho_v, redo_v = blend_churn(w, (rho_o, recomputed(freed, cached)), (rho_v, redo_v), pre & (share > 0))
        # SGLang retracts to the back of the queue: each victim leaves its wave once, recomputed in full
        rho_r, freed_r, u_r = wave_retraction(share, isl, osl)
        rho_s, redo_s = blend_churn(w, (rho_r, freed_r), (rho_s, redo_s), sgl & (share > 0))
        hold = np.where(share > 0, (1.0 - w) * np.where(sgl, retraction_wait(rho_r, u_r, osl),
                                                        overflow_wait(rho_o, u)), 0.0)
    per_req = np.where(sgl, rho_s, rho_v)
    rho = np.broadcast_to(per_req, np.broadcast_shapes(np.shape(per_req), np.shape(N)))
    redo = np.where(sgl, redo_s, redo_v)
    return rho, np.where(rho > 0, N * rho * recompute_s(p, N, isl, osl, mnt, redo), 0.0), hold + zero


def blend_churn(w: Num, wave: tuple[Num, Num], queue: tuple[Num, Num], on: Num) -> tuple[Num, Num]:
    """Retractions or preemptions per request and the tokens each prefills again where a wave overflows (`on`):
    the waves' (`wave`) and the queue churn's (`queue`) mixed by the queue's weight `w` (`admission.queue_blend`;
    the tokens weighted by each part's rate); the queue churn's elsewhere."""
    rho = (1.0 - w) * wave[0] + w * queue[0]
    redo = ((1.0 - w) * wave[0] * wave[1] + w * queue[0] * queue[1]) / np.maximum(rho, 1e-12)
    mixed, waves = on & (w > 0) & (w < 1), on & (w <= 0)
    return (np.where(mixed, rho, np.where(waves, wave[0], queue[0])),
            np.where(mixed, redo, np.where(waves, wave[1], queue[1])))


def queue_waits(N: Num, conc: Num, osl: Num, ttft0: Num, cycle_s: Num, window_s: Num, rho: Num, front: Num = False,
                host: Num = 0.0) -> tuple[Num, Num]:
    """A request's waits for one of N slots with `conc` closed-loop clients per replica (None: none): (s before
    its first token, s per output token after it). `ttft0`: its TTFT before any wait, the GPU's (s, no host time);
    `cycle_s`: the request cycle (s, the churn's prefills again in); `window_s`: its decode window, from its first
    token to its last (s: (osl - 1) x its TPOT before any wait, `steady_cycle`; the churn's prefills again in), so
    that it holds its slot ttft0 + window_s; `rho`: its retractions or preemptions
    (`retraction_churn`); `front` (per row): where a preempted request waits at the front of the queue (vLLM,
    `admission.front_stints`), else at its back (SGLang); `host`: the host time of a request before its first
    token (s, `host_ttft_s`). A client sends its next request once it has read the last token, so of its cycle
    conc / X (Little's law, X = N / residency requests/s) the `host` s are spent outside the queue: the wait is
    the slot wait (`slot_wait_s`) less them, at least 0 (where the host time covers it, fewer than N requests are in
    the GPU's slots on average: the clients, not the GPU, set the rate). Without churn the whole wait comes first;
    with it 1 + rho stints: of the same length at the back (`admission.stints`), at the front the others
    `front_stints`'; the first before the first token, the others and their prefill again between two output
    tokens."""
    if conc is None:
        return 0.0, 0.0
    first = np.maximum(slot_wait_s(N, conc, ttft0 + window_s) - host, 0.0)
    if not np.any(rho > 0):
        return first, 0.0
    total = np.maximum(slot_wait_s(N, conc, (1.0 + rho) * ttft0 + window_s) - host, 0.0)
    back = stints(total, rho)
    head, after = front_stints(total, rho, cycle_s)
    wait, after = np.where(front, head, back), np.where(front, after, back)
    return (np.where(rho > 0, wait, first),
            np.where(rho > 0, rho * (after + ttft0) / np.maximum(osl - 1.0, 1.0), 0.0))


def _max_throughput_rows(p: Prepared, isl: Num, osl: Num, mbs: Num, mnt: Num, conc: Num, ms: float | None = None,
                         kv: Num = None, factors: power.PowerFactors | None = None, prompts: Num = None,
                         balance: lockstep.AdpBalance | None = None, cached: Num = True, balance_on: Num = True,
                         lanes: Num = None
                         ) -> dict[str, Num]:
    """The formulas of `max_throughput` on rows that broadcast together (a whole small sweep or one block).
    `ms`: the engine's memory setting (None: its default); `kv`: the KV capacity per replica in tokens instead
    of the memory model's (None); `factors`: the power model's factors (default: the shipped fit); `prompts`: the
    most prompts a prefill iteration carries (`split_work`; None: no bound); `balance`: TensorRT-LLM's attention-DP
    balance (`lockstep.AdpBalance`; None: off) on the rows `balance_on` holds true (per row; True: every row);
    `cached`: vLLM's prefix cache on (`retraction_churn`); `lanes`: a pipeline's batches in flight at least
    (`steady_lanes`; None: none)."""
    N, kv_bound, ok_mem, per_seq, cap = served_batch(p, isl, osl, mbs, mnt, ms, kv)
    ranks = p.dp * p.attn_dp     # replicas x attention-DP ranks, each running its own batch of N
    clients = conc        # the whole deployment's
    if conc is not None:  # clients per replica: never more sequences in flight than clients
        conc = conc / ranks
        N = np.minimum(N, np.ceil(conc))
    # the tokens one iteration of the steady state carries: with pp > 1 stages the engine keeps up to pp batches in
    # flight, each with its own budget of mnt tokens (vLLM's batch queue, SGLang's micro-batches), the prompts
    # queued beyond one budget going into the next batches (`pipeline_budget`)
    mnt_it = pipeline_budget(p, mnt)
    # one iteration's work (`steady_work`), and the closed loop's iterations a cycle that the TTFT and the source
    # read (the same where no `prompts` bound): each formed once
    work = steady_work(N, isl, osl, mnt_it, p.coeffs.prefill_alone, prompts)
    closed = work[0] if prompts is None else steady_work(N, isl, osl, mnt_it, p.coeffs.prefill_alone)[0]
    t, n_it, D, busy, (tok, its), (lo, hi) = steady_split(p, N, isl, osl, mnt_it, prompts, balance, balance_on,
                                                          lanes, work)
    # SGLang's retraction churn, vLLM's preemptions (`retraction_churn`): the cycle grows by the prefills again
    rho, redo_s, hold = retraction_churn(p, N, isl, osl, mnt, conc, kv_bound, np.asarray(cached) > 0, cap)
    cycle = t * n_it
    cycle = np.where(rho > 0, cycle + redo_s, cycle)
    # TPOT times the decode window after the first token, as the engines' benchmarks do (`per_window_token`): the
    # cycle less the request's own prompt iterations, which its TTFT holds (`steady_cycle`); the churn's prefills
    # again fall inside it. So the GPU holds a request's slot TTFT + (osl - 1) TPOT
    redo_tok = np.where(rho > 0, redo_s * per_window_token(osl, n_it), 0.0)
    bounds = (np.where(np.asarray(osl) > 1, lo + redo_tok, lo), np.where(np.asarray(osl) > 1, hi + redo_tok, hi))
    host = host_ttft_s(p, N)
    # the GPU's, before any wait for a slot; the prompts that wait for one are admitted as it frees
    # (`saturated_share`: its residency from the released prompt's iterations, the start-up wave left out)
    sat, released = 0.0, None
    held = cycle_held(p)
    if conc is not None:    # (its residency split as the closed loop's below, `cycle_split`)
        released = released_prompt_s(p, N, isl, osl, mnt_it, closed)
        sat = saturated_share(N, conc, host, sum(cycle_split(cycle, released, osl, bounds, held)), p.pp)
    gpu = gpu_ttft_s(p, N, isl, osl, mnt_it, cycle, closed, sat, released)
    balance_s = 0.0
    if balance is not None:    # TensorRT-LLM's attention-DP balance holds the prompt back until its release
        balance_s = balance_hold_s(p, N, isl, osl, mnt_it, n_it, gpu, prompts, balance, balance_on)
    tok = tok + redo_tok
    window = (osl - 1.0) * tok
    if conc is not None:
        # a closed loop of clients, whose rate Little's law reads off TTFT + window: the two split the cycle, the
        # window holding the cycle's work beyond the TTFT and the others' prompts beyond its iterations' budget
        # queuing before the first token (`cycle_split`). Without clients the cycle itself sets the rate, and an
        # open loop (`serving.analytical`, `prompts`) prices its own waits: the window stays the cycle less the own
        # prompt's iterations. The attention-DP balance's hold is a wait beyond the cycle's work, kept apart
        gpu_pre = gpu
        gpu, window = cycle_split(cycle, gpu, osl, bounds, held)
        tok = np.where(np.asarray(osl) > 1, window * per_window_token(osl, n_it), tok)
        # where prefill batches pause the decodes (SGLang) the window's iterations per token: its decode step and
        # the share of the cycle's other prefill batches the window holds (none at its least, all at its most)
        # (the bounds with the churn's prefills in, as the window's: the third review)
        span = (bounds[1] - bounds[0]) * np.maximum(osl - 1.0, 0.0)
        its = 1.0 + (its - 1.0) * np.clip((window - bounds[0] * np.maximum(osl - 1.0, 0.0))
                                          / np.where(span > 0, span, 1.0), 0.0, 1.0)
        # the balance's hold runs from the prompt's arrival, as the split's queue does: it adds what it holds
        # beyond that queue (the third review: Qwen3-30B-A3B attn_dp 4 8192/4 read the two one after the other)
        gpu = gpu + np.maximum(gpu_pre + balance_s - np.maximum(gpu, gpu_pre), 0.0)
    else:
        gpu = gpu + balance_s
    # the wait for a slot: the host time before the first token holds none (`host_ttft_s`), and a client sends its
    # next request once it has read its last (the simulator's clients, `serving.simulator._frame`'s host delay),
    # so the host time is spent outside the queue (`queue_waits`)
    queue, requeue = queue_waits(N, conc, osl, gpu, cycle, window, rho, np.asarray(p.coeffs.kv_preempt) > 0, host)
    ttft = gpu + host + np.maximum(queue, hold * cycle)     # behind a wave's overflow (`retraction_churn`)
    tpot = tok + requeue
    e2e = ttft + (osl - 1.0) * tpot
    if clients is None:
        # the sequences in flight over the whole deployment, each through its cycle: the busiest rank's N sets the
        # pace
        tput = ranks * N * osl / cycle
    else:
        # a closed loop of clients without think time: each sends its next request as it reads the last token of
        # its previous one, so its requests/s are 1 / e2e (Little's law: clients = X x e2e), the host time in
        tput = clients * osl / e2e
    w, kv_tok = speculative_mod.memory_terms(p)   # with the draft layer's where speculative decoding is on
    kv = kv_tok * N * per_seq
    mem = w + kv + p.act_tok_gpu * mnt + p.reserve_gpu
    reason = np.where(p.reason != R_OK, p.reason, np.where(context_invalid(p.shape.context, isl + osl,
                                                                           _past_context(p)), R_CONTEXT,
                                                           np.where(ok_mem, R_OK, R_MEM)))
    # mean power per GPU over one iteration (chunked prefill beside the decodes: power.phase_energy_j)
    _, T, A, D, K, S = work
    comp = power.compute_s(p.coeffs, T, A, D, K, S) if p.spec is None else speculative_busy_s(p, work[1:], N)[2]
    pw = power.phase_energy_j(p.idle_w, p.tdp_w, t, busy, comp, factors) / t
    return {
        "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3, "e2e_ms": e2e * 1e3, "throughput_tok_s": tput,
        "throughput_tok_s_per_gpu": tput / p.n_gpus, "mem_per_gpu_gib": mem / memory.GIB, "fits": reason == R_OK,
        "usd_per_mtok": power.usd_per_mtok(p.price, p.n_gpus, tput),
        "joules_per_tok": power.joules_per_token(pw, p.n_gpus, 1.0, tput),
        "weights_gib": w / memory.GIB, "kv_cache_gib": kv / memory.GIB, "reason": reason, "batch_size": N,
        "source": _steady_source(p, N, isl, osl, mnt_it, closed),
        # for `max_throughput_times`' callers: the cycle (ms, the churn's prefills again in) and its decode window's
        # iterations per output token after the first (`steady_cycle`)
        "cycle_ms": cycle * 1e3, "window_iters": its,
    }


def pipeline_lanes(pp: Num, seqs: Num, tokens: Num, mnt: Num, floor: Num = None) -> Num:
    """Batches a pipeline of `pp` stages keeps in flight (its lanes) as the engines run it: one until a schedule
    overflows a budget of `mnt` tokens, the leftovers opening further batches (at most pp, at most one a sequence).
    vLLM V1's batch queue (vllm/v1/engine/core.py ``step_with_batch_queue``) schedules every request not in flight
    into one batch and, with nothing else schedulable, blocks on the oldest batch in flight; SGLang's
    ``event_loop_pp`` and TensorRT-LLM's ``_executor_loop_pp`` form each micro-batch slot from the requests not in
    flight and block on the next slot's result, so an empty slot stays empty. A request keeps the batch it entered
    (its next step waits for that batch's return) and a new one joins the next batch to return, so a batch lives
    while it holds requests. `tokens`: what one round of the steady state schedules (the decodes and the prompt
    tokens beside them). `floor` (None: none): batches the load has opened already, which live on with their
    requests (within the same at most pp, one a sequence). Scalars or arrays; 1 where pp == 1. The simulator keeps
    each request's batch (`serving.engine._Replica._pipe_lanes`)."""
    cap = np.minimum(pp, np.maximum(seqs, 1.0))
    need = np.ceil(np.asarray(tokens, dtype=float) / np.maximum(mnt, 1.0) - 1e-9)
    lanes = np.clip(np.minimum(need, cap), 1.0, None)
    return lanes if floor is None else np.maximum(lanes, np.minimum(floor, cap))


def steady_lanes(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, prompts: Num = None, floor: Num = None,
                 w_pf: tuple | None = None) -> Num:
    """`pipeline_lanes` of `steady_state`'s rows: what its prefill iteration schedules (`split_work`'s prompt tokens
    and decodes) against one batch's budget, `mnt` being `pipeline_budget`'s (pp budgets). In the closed loop
    (`prompts` None) the N clients' first prompts arrive together, and the batches that start-up wave opens live
    on with their requests: N x isl tokens at least. `floor` (per row; None: 1): batches the load has opened
    already (an open loop beyond one batch's capacity, `serving.analytical`), which live on with their requests.
    `w_pf`: `split_work`'s prefill iteration of the same arguments where the caller has it (None: derived here).
    N where pp == 1 (`replica_time_s` splits nothing there)."""
    pp = np.asarray(p.pp, dtype=float)
    if np.all(pp == 1):
        return N
    if w_pf is None:
        w_pf = split_work(N, isl, osl, mnt, steady_work(N, isl, osl, mnt, p.coeffs.prefill_alone)[0],
                          p.coeffs.prefill_alone, prompts)[0]
    tokens = w_pf[0] + w_pf[2]
    if prompts is None:
        tokens = np.maximum(tokens, N * isl)
    return np.where(pp > 1, pipeline_lanes(pp, N, tokens, mnt / pp, floor), N)


def pipeline_budget(p: Prepared, mnt: Num) -> Num:
    """Tokens one iteration of the steady state carries (each sequence advancing once): ``mnt`` (max_num_tokens,
    the budget of one batch) x pp, where pp > 1 stages keep up to pp batches in flight, each with its own budget
    (vLLM v1's batch queue of max_concurrent_batches = pp, SGLang's pp micro-batches; the simulator's
    `serving.engine._Replica._schedule_prefill`); ``mnt`` where pp == 1."""
    pp = np.asarray(p.pp)
    if np.all(pp == 1):
        return mnt
    return np.where(pp > 1, mnt * pp, mnt)


def _steady_source(p: Prepared, N: Num, isl: Num, osl: Num, mnt: Num, n_it: Num = None) -> np.ndarray:
    """`replica_source` over the steady state's prefill-carrying iteration and its pure decode step
    (`split_work`). `n_it`: `steady_work`'s iterations per cycle of these arguments where the caller has them (None:
    derived here)."""
    cv = p.coeffs.curves
    if cv is None or cv.reach is None:   # nothing bounds the rows: their source as prepared
        return np.asarray(p.source_code).astype(np.int8)
    alone = p.coeffs.prefill_alone
    if n_it is None:
        n_it = steady_work(N, isl, osl, mnt, alone)[0]
    (T, A, D_pf, K_pf, S_pf), (_, _, D, K, S), _, _ = split_work(N, isl, osl, mnt, n_it, alone)
    return replica_source(p, np.maximum(T + D_pf, D), np.maximum(S_pf, S), (T, A), ((D_pf, K_pf), (D, K)), N)
