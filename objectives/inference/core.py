"""Shared preparation of `estimate`, `max_throughput` and `StepModel`: arguments -> step coefficients + memory."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from objectives.catalog.model_math import expert_width
from objectives.catalog.quant import WEIGHT_ONLY_INT8_SCHEMES
from objectives.catalog.types import DTYPES
from objectives.profiles import api_server_ranks, jit_prefill_rows, overlap_rows, prefill_alone_mask

from . import kv_pool, memory
from .comm import Links, allreduce_latency_s, gpu_topology
from .efficiency import FAMILIES, LINKS, Efficiency, load_efficiency
from .measured import MOE_ACT_DTYPES, Curves, build_curves, moe_act_rows, moe_act_unsupported
from .ops import LINEAR_KINDS, LayerCosts, ModelShape, StepCoeffs, layer_costs, moe_ranks
from .resolve import (
    MAX_DEGREE,
    PROFILES,
    R_BLOCK,
    R_EP,
    R_KV,
    R_LAYOUT,
    R_MOE_A2A,
    R_MOE_ACT,
    R_MX_ACT,
    R_NET,
    R_OK,
    R_PP,
    R_TP,
    R_VENDOR,
    act_peak,
    act_prec,
    attn_16bit,
    attn_said,
    attn_weight_params,
    bf16_peak,
    block_fp8_invalid,
    broadcast_shape,
    choice_codes,
    dtype_bytes,
    dtype_codes,
    eff_lookup,
    engine_kv_rule,
    ep_invalid,
    expert_slots,
    flag,
    gemm_eff,
    gpu_arrays,
    int_code,
    kept_mlp_16bit,
    kv_format_invalid,
    layout_invalid,
    link_lookup,
    moe_a2a_codes,
    moe_a2a_invalid,
    moe_act_codes,
    positive,
    pp_invalid,
    resolve_dtypes,
    resolve_records,
    reused,
    reusing_factorized,
    tp_invalid,
    vendor_invalid,
)

Num = Any

_EFF_CACHE: dict[str, Efficiency] = {}


def default_eff() -> Efficiency:
    """The fitted factors (objectives/data/efficiency.json), loaded once per process (read-only)."""
    if "default" not in _EFF_CACHE:
        _EFF_CACHE["default"] = load_efficiency()
    return _EFF_CACHE["default"]


def reload_default_eff() -> Efficiency:
    """Re-read objectives/data/efficiency.json (after the calibration command rewrote it), so that code which
    uses the default factors (the serving simulator's StepModels) sees the new fit."""
    _EFF_CACHE.pop("default", None)
    return default_eff()


@dataclass
class Prepared:
    shape: ModelShape
    lc: LayerCosts
    coeffs: StepCoeffs
    tp: Num
    pp: Num
    dp: Num
    ep: Num
    attn_dp: Num                # attention data-parallel ranks inside one deployment (share the experts)
    eplb: Num                   # 1: an expert-parallel load balancer keeps the experts' load balanced (0 / 1)
    moe_act: Num                # MXFP4 experts' activations run (measured.MOE_ACT_DTYPES code: "auto" resolved; 0: not MXFP4)
    moe_a2a: Num                # the EP token exchange asked for (measured.MOE_A2A code; 0: auto)
    n_gpus: Num                 # tp x pp x attn_dp x dp
    weight_code: Num
    act_code: Num
    kv_code: Num
    profile_code: Num           # index into resolve.PROFILES
    engine_code: Num            # index into engine_names
    source_code: Num            # index into measured.SOURCES: where the step costs come from
    weights_gpu: Num            # bytes
    kv_tok_gpu: Num             # bytes per token of context, per GPU
    kv_win_share: Num           # share of kv_tok_gpu on window-bounded layers the engine frees beyond `window` tokens
    window: Num                 # that bound, tokens (0: no window-bounded layer)
    act_tok_gpu: Num            # bytes per token in flight, per GPU
    reserve_gpu: Num            # bytes
    mem_gpu: Num                # capacity, bytes
    pool_gpu: Num               # what the engine lets weights, KV cache, activations and reserve take, bytes
    kv_share: Num               # share of what they leave that becomes the KV cache (`kv_pool.pool_terms`)
    act_pooled: Num             # 1.0: activations come out of pool_gpu; 0.0: the engine reserves them outside it
    state_tok: Num              # linear layers' constant state per sequence, in tokens' worth of kv_tok_gpu
    sgl_pool: Num               # 1.0: SGLang's KV layout (window layers in a pool apart: `kv_pool.seq_tokens`)
    reason: Num                 # int code (resolve.REASONS)
    idle_w: Num
    tdp_w: Num
    price: Num
    eff: Efficiency
    model_names: list
    gpu_names: list
    model_index: Num
    gpu_index: Num
    engine_names: tuple = ("roofline",)
    #: factorized form (large sweeps): every array field above holds one value per DISTINCT configuration and
    #: `inv` (flat, one entry per row of the broadcast result) says which; None: fields broadcast directly
    inv: np.ndarray | None = None
    row_shape: tuple = ()        # broadcast shape of all arguments (configurations x per-row arguments)
    #: attention DP in lockstep (`estimate.rank_wait_s`): the coefficients of one rank's forward with only its
    #: own tokens at the routed experts (`prepare`'s moe_dp=1), the iteration in which that rank alone carries a
    #: prompt chunk; None: not prepared (the steady state then prices the ranks' prompt chunks together)
    solo: StepCoeffs | None = None
    #: speculative decoding (`speculative.Speculative`; None: off): `estimate.replica_time_s` then prices the
    #: decodes in token time (`speculative.with_speculative`)
    spec: Any = None
    #: the model records `model_index` points into (as `model_names`): the reason texts' heads, layers and experts
    #: (`resolve.reason_text`); () where not kept
    model_records: tuple = ()
    #: the GPU records `gpu_index` points into (as `gpu_names`): the KV-format reason text's GPU; () where not kept
    gpu_records: tuple = ()

    # per-row fields (`map_rows`, `take`); LayerCosts (`lc`) is not needed per row and is dropped there
    _ROW_FIELDS = ("tp", "pp", "dp", "ep", "attn_dp", "eplb", "moe_act", "moe_a2a", "n_gpus", "weight_code", "act_code", "kv_code", "profile_code",
                   "engine_code", "source_code", "weights_gpu",
                   "kv_tok_gpu", "kv_win_share", "window", "act_tok_gpu", "reserve_gpu", "mem_gpu", "pool_gpu", "kv_share", "act_pooled", "state_tok", "sgl_pool", "reason",
                   "idle_w", "tdp_w", "price",
                   "model_index", "gpu_index")

    def map_rows(self, fn) -> dict:
        """Every field of this Prepared, with ``fn`` applied to the per-row ones (``_ROW_FIELDS`` and every field of
        ``coeffs`` and ``shape``): the keyword arguments of a derived Prepared."""
        fields = {f: getattr(self, f) for f in Prepared.__dataclass_fields__}
        for f in self._ROW_FIELDS:
            fields[f] = fn(fields[f])
        fields["coeffs"] = _map_coeffs(self.coeffs, fn)
        if self.solo is not None:
            fields["solo"] = _map_coeffs(self.solo, fn)
        fields["shape"] = ModelShape(**{f: fn(getattr(self.shape, f)) for f in ModelShape.__dataclass_fields__})
        return fields

    def seq_tokens(self, context: Num) -> Num:
        """What one sequence of `context` tokens takes of the KV capacity (`kv_capacity_tokens`' unit), by the
        row's engine layout (`kv_pool.seq_tokens`)."""
        return kv_pool.seq_tokens(self.sgl_pool > 0, context, self.kv_win_share, self.window, self.state_tok)

    def take(self, idx: np.ndarray) -> Prepared:
        """The rows `idx` (positions into the distinct configurations) as a plain Prepared: array fields
        gathered, scalars kept. Used on blocks of rows, so gathered arrays stay cache-sized."""
        fields = self.map_rows(lambda v: v[idx] if isinstance(v, np.ndarray) and v.ndim > 0 else v)
        for name in ("coeffs", "solo"):
            own = getattr(self, name)
            if own is not None and own.curves is not None:
                fields[name].curves = own.curves.take(idx)
        fields["lc"] = None
        fields["inv"] = None
        return Prepared(**fields)

    def column(self, name: str, dtype: Any) -> np.ndarray:
        """A config-level field as one flat column of the result (length prod(row_shape), at least 1)."""
        return self.rows_of(getattr(self, name), dtype)

    def rows_of(self, v: Num, dtype: Any) -> np.ndarray:
        """A config-level value (shaped as this Prepared's fields: one per distinct configuration where `inv` is
        set, else broadcasting to row_shape) as one flat column of the result (`column`)."""
        n = int(np.prod(self.row_shape)) if self.row_shape else 1
        if self.inv is not None and isinstance(v, np.ndarray) and v.ndim > 0:
            return np.asarray(v).astype(dtype)[self.inv]
        if np.ndim(v) == 0:
            return np.full(n, v, dtype=dtype)
        return np.broadcast_to(np.asarray(v, dtype=dtype), self.row_shape).ravel()


def _map_coeffs(c: StepCoeffs, fn: Any) -> StepCoeffs:
    """`c` with ``fn`` applied to every field but its curves (kept as they are; `Prepared.take` gathers them)."""
    return StepCoeffs(**{f: fn(getattr(c, f)) for f in StepCoeffs.__dataclass_fields__ if f != "curves"},
                      curves=c.curves)


#: above this many configurations, config-level arguments are factorized: the coefficients are computed once per
#: distinct configuration and gathered back (same numbers, far fewer array operations)
_FACTORIZE_MIN = 4096


def prepare(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None, act_dtype: Any = None,
            kv_dtype: Any = None, dp: Any = 1, ep: Any = 1, eff: Efficiency | None = None,
            prices: Any = None, rows: Mapping[str, Any] | None = None,
            engine_profile: Any = "standard", engine: Any = None, attn_dp: Any = 1,
            moe_dp: float | None = None, eplb: Any = False, moe_act_dtype: Any = None, moe_a2a: Any = None,
            collect: dict[str, Any] | None = None) -> Prepared | None:
    """Validate the configuration arguments and compute the step coefficients and memory terms.

    `rows`: the caller's other (already validated) per-row arguments by name, only to check that everything
    broadcasts together (ValueError naming the arguments otherwise). Returns None when the arguments broadcast
    to zero configurations (an empty array somewhere). `moe_dp` (a scalar): the attention-DP ranks whose tokens
    reach the routed experts in one forward, at most attn_dp (None: all of them, each rank running the batch; 1:
    a lone rank's batch, the others idle, as a prompt arriving at an idle disaggregated prefill pool). `eplb` (bool
    or bool array): an expert-parallel load balancer (EPLB) keeps the experts' load balanced, so EP > 1 rows read
    the measured balanced-routing MoE tables (`moe_bal.<format>`) before the skewed ones. `moe_act_dtype` (None /
    "auto", "bf16", "mxfp8", or an array of them): the activations MXFP4 experts compute with
    (`measured.MOE_ACT_DTYPES`, `measured.moe_act`); ignored where the experts are not MXFP4. `moe_a2a` (None /
    "auto", "allgather", "deepep", or an array of them): how an EP group spanning attention-DP ranks exchanges its
    tokens (`measured.MOE_A2A`); a value other than "auto" where none runs is fits=False (R_MOE_A2A,
    `resolve.moe_a2a_invalid`). `collect` (None:
    the hot path; `breakdown`): a dict that receives the step coefficients' parts by component (`_prepare`); the
    configurations are then prepared as they broadcast, neither memoized nor factorized."""
    if eff is None:
        eff = default_eff()
    elif not isinstance(eff, Efficiency):
        raise TypeError(f"efficiency must be an objectives.inference.Efficiency or None, got {type(eff).__name__}")
    if prices is not None and not isinstance(prices, Mapping):
        raise TypeError(f"prices must be a mapping {{gpu name: USD per GPU-hour}} or None, got {prices!r:.80}")
    mrecs, midx = resolve_records("model", model)
    grecs, gidx = resolve_records("gpu", gpu)
    tp = positive("tp", tp, upper=MAX_DEGREE)
    pp = positive("pp", pp, upper=MAX_DEGREE)
    dp = positive("dp", dp, upper=MAX_DEGREE)
    ep = positive("ep", ep, upper=MAX_DEGREE)
    adp = positive("attn_dp", attn_dp, upper=MAX_DEGREE)
    lb = flag("eplb", eplb)
    mact = moe_act_codes(moe_act_dtype)
    xa = moe_a2a_codes(moe_a2a)
    w = checkpoint_weight_codes(dtype_codes("weight_dtype", weight_dtype, allow_none=True), mrecs, midx)
    a = checkpoint_act_codes(dtype_codes("act_dtype", act_dtype, allow_none=True), w, mrecs, midx)
    k = dtype_codes("kv_dtype", kv_dtype, allow_none=True)
    prof = choice_codes("engine_profile", engine_profile, PROFILES, allow_none=False)
    # engine codes as given ("auto" kept: `_prepare` resolves it per GPU and knows which rows named their engine)
    engine_names, eng = engine_codes(engine)
    cols = [midx, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa]
    shape = broadcast_shape(model=midx, gpu=gidx, tp=tp, pp=pp, dp=dp, ep=ep, weight_dtype=w, act_dtype=a,
                            kv_dtype=k, engine_profile=prof, engine=eng, attn_dp=adp, eplb=lb,
                            moe_act_dtype=mact, moe_a2a=xa)
    row_shape = broadcast_shape(config=np.empty(shape), **(rows or {}))
    if 0 in row_shape:
        return None
    n_rows = int(np.prod(row_shape))
    if collect is not None:  # the parts of the step (`breakdown`): the configurations as they broadcast
        p = _prepare(mrecs, midx, grecs, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa, eff, prices,
                     engine_names, moe_dp, collect)
        p.row_shape = row_shape
        return p
    memo = _MEMO.get()
    key = None if memo is None else _memo_key(mrecs, grecs, cols, row_shape, eff, prices, engine_names, moe_dp)
    if memo is not None and key is not None:
        hit = memo.get(key)
        if hit is not None:
            return hit
    # the block's tables of configurations (`_PreparedMemo.gather`) and what else `_prepare` read: eff, prices, moe_dp
    tables = None if memo is None or key is None else (memo, (key[2], key[3], key[5]))
    if shape and n_rows >= _FACTORIZE_MIN:
        p = _prepare_factorized(mrecs, grecs, cols, row_shape, eff, prices, engine_names, moe_dp, tables)
        size = (0 if p.inv is None else int(np.max(p.inv)) + 1) + n_rows // 256  # distinct configs, row index
    else:
        args = (mrecs, midx, grecs, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa, eff, prices,
                engine_names, moe_dp)
        got = None if tables is None else tables[0].gather(tables[1], args)
        p = _prepare(*args) if got is None else got
        p.row_shape = row_shape
        size = n_rows
    if memo is not None and key is not None:
        memo.put(key, p, size, (mrecs, grecs, eff))
    return p


class _PreparedMemo:
    """Configurations `prepare` computed inside one `reusing_prepared` block (at most `max_rows` configurations
    in all, the least recently used dropped first), by their resolved arguments. A Prepared is never modified after `prepare`
    returns it, so sharing one is safe; `keep` holds the records and factors whose ids are in the key alive.

    Besides whole calls (`get` / `put`: the same rows asked again), it keeps the distinct configurations of each
    factorized call (`_ConfigTable`, `register`), so that a later call on some of them (the serving model's
    searches ask for shrinking subsets of a sweep's deployments) gathers their coefficients (`gather`) instead of
    computing them again: `_prepare` is elementwise over configurations, so the gathered rows are the numbers it
    would compute."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._items: OrderedDict[tuple, tuple[Prepared, int, Any]] = OrderedDict()
        self._rows = 0
        self._tables: OrderedDict[int, _ConfigTable] = OrderedDict()
        self._table_rows = 0
        self._ids: dict[tuple, int] = {}    # (kind, id or name) -> small id, for `config_keys`
        self._alive: list[Any] = []          # the records whose ids are in `_ids`

    def _id(self, kind: str, x: Any) -> int:
        k = (kind, id(x)) if kind == "rec" else (kind, x)
        got = self._ids.get(k)
        if got is None:
            got = self._ids[k] = len(self._ids)
            if kind == "rec":
                self._alive.append(x)
        return got

    def config_keys(self, args: tuple) -> tuple[np.ndarray, tuple]:
        """(one key per configuration of `_prepare`'s arguments `args` as they broadcast, that shape): the
        records' identities, the engine each row named and the other resolved arguments, as bytes."""
        mrecs, midx, grecs, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa, _, _, engine_names, _ = args
        m_ids = np.array([self._id("rec", r) for r in mrecs], dtype=float)[0 if midx is None else midx]
        g_ids = np.array([self._id("rec", r) for r in grecs], dtype=float)[0 if gidx is None else gidx]
        e_ids = np.array([self._id("engine", e) for e in engine_names], dtype=float)[eng]
        parts = [m_ids, g_ids, tp, pp, dp, ep, w, a, k, prof, e_ids, adp, lb, mact, xa]
        shape = np.broadcast_shapes(*(np.shape(x) for x in parts))
        mat = np.empty((int(np.prod(shape)) if shape else 1, len(parts)))
        for j, x in enumerate(parts):
            mat[:, j] = np.broadcast_to(np.asarray(x, dtype=float), shape).ravel()
        return mat.view(np.dtype((np.void, mat.itemsize * len(parts)))).ravel(), shape

    def register(self, ctx: tuple, args: tuple, p: Prepared) -> None:
        """Keep `p` (one configuration per entry of `_prepare`'s 1-D arguments `args`, no `inv`) for `gather`."""
        keys, shape = self.config_keys(args)
        if len(shape) != 1 or len(keys) > self.max_rows:
            return
        n = len(keys)
        per_config: list[bool] = []   # every array field one entry per configuration (`_ConfigTable.rows`)
        p.map_rows(lambda v: per_config.append(not isinstance(v, np.ndarray) or v.ndim == 0 or v.shape[0] == n))
        cv = p.coeffs.curves
        if not all(per_config) or (cv is not None and (cv.rows is not None or cv.tok.ndim > 2
                                                       or (cv.tok.ndim == 2 and len(cv.tok) != n))):
            return
        order = np.argsort(keys, kind="stable")
        self._tables[id(p)] = _ConfigTable(ctx, keys[order], order, p)
        self._table_rows += len(keys)
        while self._table_rows > self.max_rows:
            _, old = self._tables.popitem(last=False)
            self._table_rows -= len(old.keys)

    def gather(self, ctx: tuple, args: tuple) -> Prepared | None:
        """What `_prepare(*args)` returns, gathered from a kept table holding every configuration of `args`;
        None where none does."""
        if not self._tables:
            return None
        mrecs, midx, grecs, gidx, *_, eng, _adp, _lb, _mact, _xa, _eff, _prices, engine_names, _moe_dp = args
        engines = resolve_auto_engine(tuple(engine_names), eng, grecs, gidx)
        if all(e == "roofline" for e in engines[0]):
            return None   # `_prepare` attaches no curves there (a table's roofline rows have them: `_ConfigTable`)
        keys, shape = self.config_keys(args)
        for tid, t in reversed(self._tables.items()):
            if t.ctx != ctx:
                continue
            pos = np.minimum(np.searchsorted(t.keys, keys), len(t.keys) - 1)
            if (t.keys[pos] == keys).all():
                self._tables.move_to_end(tid)
                return t.rows(t.order[pos].reshape(shape), args, engines)
        return None

    def get(self, key: tuple) -> Prepared | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: tuple, p: Prepared, n_rows: int, keep: Any) -> None:
        if n_rows > self.max_rows:
            return
        self._items[key] = (p, n_rows, keep)
        self._rows += n_rows
        while self._rows > self.max_rows:
            _, (_, n, _) = self._items.popitem(last=False)
            self._rows -= n


@dataclass
class _ConfigTable:
    """A factorized call's distinct configurations (`_PreparedMemo.register`): their `config_keys` sorted
    (`keys`, `order` the positions in `p`) and the Prepared with one entry per configuration (fields constant
    over them as scalars); `ctx`: what else `_prepare` depended on (the factors' id, the prices, moe_dp)."""

    ctx: tuple
    keys: np.ndarray
    order: np.ndarray
    p: Prepared

    def rows(self, idx: np.ndarray, args: tuple, engines: tuple) -> Prepared:
        """`_prepare(*args)`'s result for the configurations `idx` (positions in `p`, shaped as `args`
        broadcast) where some row's engine has a profile (`engines`: `resolve_auto_engine`'s of `args`): every
        per-configuration field gathered, the curves too (`closed` / `reach` None where no row has one, as
        `measured.build_curves` gives them); the names and the indices into them are `args`' own, as `_prepare`
        sets them. (Where every row is the closed form's, `_prepare` attaches no curves at all, and
        `step.StepModel` would read the table's sampled roofline curves: `_PreparedMemo.gather` computes those.)"""
        mrecs, midx, grecs, gidx = args[:4]
        names, codes = engines
        fields = self.p.map_rows(lambda v: v[idx] if isinstance(v, np.ndarray) and v.ndim > 0 else v)
        cv = self.p.coeffs.curves
        if cv is not None and cv.tok.ndim == 2:    # one curve per configuration (else one for all of them)
            closed = None if cv.closed is None else np.asarray(cv.closed[idx])
            reach = None if cv.reach is None else cv.reach[idx]
            fields["coeffs"].curves = Curves(cv.tok[idx], cv.head[idx], cv.ctx[idx], cv.gen[idx],
                                             closed=closed if closed is not None and closed.any() else None,
                                             reach=reach if reach is not None and np.isfinite(reach).any() else None)
        fields.update(lc=None, inv=None, row_shape=(), solo=None, model_names=[r.name for r in mrecs],
                      model_records=tuple(mrecs), gpu_records=tuple(grecs),
                      gpu_names=[r.name for r in grecs], model_index=0 if midx is None else midx,
                      gpu_index=0 if gidx is None else gidx, engine_names=tuple(names), engine_code=codes)
        return Prepared(**fields)


_MEMO: ContextVar[_PreparedMemo | None] = ContextVar("objectives_inference_prepared", default=None)


@contextmanager
def reusing_prepared(max_rows: int = 16384) -> Iterator[None]:
    """Within the block, `prepare` hands back the coefficients of a configuration it already prepared there
    instead of computing them again (at most `max_rows` configuration rows kept, about 3.5 KB each). For callers
    that ask for the same deployments many times: the serving model's bisections over occupancy and rate, an
    objective's percentile, capacity and confirmation passes. Scoped, not global: tables or factors changed
    between two blocks are always read afresh. Nested blocks share the outermost one's memo."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set(_PreparedMemo(max_rows))
    try:
        with reusing_factorized():   # the same deployments' columns of names, factorized once
            yield
    finally:
        _MEMO.reset(token)


def _memo_key(mrecs: list, grecs: list, cols: list, row_shape: tuple, eff: Efficiency, prices: Any,
              engine_names: tuple, moe_dp: float | None) -> tuple | None:
    """What `_prepare`'s result depends on, hashable (None: not memoized)."""
    try:
        price_key = None if prices is None else tuple(sorted((str(k), float(v)) for k, v in prices.items()))
    except (TypeError, ValueError):
        return None
    parts: list[Any] = [tuple(map(id, mrecs)), tuple(map(id, grecs)), id(eff), price_key, tuple(engine_names),
                        moe_dp, tuple(row_shape)]
    for x in cols:
        if x is None or np.ndim(x) == 0:
            parts.append(None if x is None else (type(x).__name__, x.item() if isinstance(x, np.generic) else x))
        else:
            arr = np.ascontiguousarray(x)
            parts.append((arr.dtype.str, arr.shape, arr.tobytes()))
    return tuple(parts)


def checkpoint_weight_codes(w: Any, mrecs: list, midx: np.ndarray | None) -> Any:
    """Weight-dtype codes with None (-1) replaced by each row's checkpoint format: the model's quantization
    config (`Model.quant_weight_dtype`: FP8 / FP8-block, NVFP4 / MXFP4, int4 checkpoints), bf16 where it has
    none."""
    if np.all(np.asarray(w) >= 0):
        return w
    ck = np.array([int_code(r.quant_weight_dtype or "bf16") for r in mrecs], dtype=np.int64)
    out = np.where(np.asarray(w) < 0, ck[0] if midx is None else ck[midx], w)
    return int(out) if out.ndim == 0 else out


def checkpoint_act_codes(a: Any, w: Any, mrecs: list, midx: np.ndarray | None) -> Any:
    """Activation-dtype codes with None (-1) set to bf16 on the rows whose weights are their checkpoint's weight-only
    int8 format (`catalog.quant.WEIGHT_ONLY_INT8_SCHEMES`: W8A16, GPTQ 8-bit), which engines compute with 16-bit
    activations; other None rows stay -1 for `resolve_dtypes`' rule (int8 weights compute in int8: W8A8)."""
    if np.all(np.asarray(a) >= 0):
        return a
    wo = np.array([r.quant_weight_dtype == "int8" and r.quant_scheme in WEIGHT_ONLY_INT8_SCHEMES for r in mrecs])
    if not wo.any():
        return a
    row_wo = wo[0] if midx is None else wo[midx]
    out = np.where((np.asarray(a) < 0) & row_wo & (np.asarray(w) == int_code("int8")), int_code("bf16"), a)
    return int(out) if out.ndim == 0 else out


#: largest grid of distinct argument values evaluated whole (else the combined key is factorized)
_GRID_MAX = 1 << 16


def _codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, intp codes shaped like x) of a numeric config argument (whole numbers: parallel
    degrees, record indices, dtype codes). Counting sort for small ranges (one pass, no sort)."""
    x = np.asarray(x)
    xi = x.astype(np.int64) if x.dtype.kind == "f" else x
    lo, hi = int(xi.min()), int(xi.max())
    if hi - lo <= _GRID_MAX:
        base = 0 if 0 <= lo and hi <= _GRID_MAX else lo
        shifted = xi - base if base else xi
        present = np.flatnonzero(np.bincount(shifted.ravel(), minlength=hi - base + 1))
        lut = np.zeros(hi - base + 1, dtype=np.intp)
        lut[present] = np.arange(len(present))
        return (present + base).astype(x.dtype), lut[shifted]
    u, inv = np.unique(x, return_inverse=True)
    return u, inv.reshape(x.shape)


def _prepare_factorized(mrecs, grecs, cols, row_shape, eff, prices, engine_names,
                        moe_dp: float | None = None, memo: tuple[_PreparedMemo, tuple] | None = None) -> Prepared:
    """prepare() once per distinct configuration; `inv` maps every row of `row_shape` to its configuration.
    Fields constant across the distinct configurations become scalars. `memo` (the block's memo and the
    context of its tables, `_PreparedMemo.gather`): the configurations gathered from an earlier call's where it
    holds them all, and this call's kept for later ones."""
    key = None
    radix = 1
    uniq_vals: list = []
    for x in cols:
        if x is None or np.ndim(x) == 0:
            uniq_vals.append(None)
            continue
        u, c = _codes(np.asarray(x))
        key = c if key is None else key * len(u) + c
        radix *= len(u)
        uniq_vals.append(u)
    assert key is not None  # the caller factorizes only a non-empty shape: some column is an array
    if radix <= _GRID_MAX:  # evaluate every combination of the distinct values; the key indexes it directly
        ukey = np.arange(radix)
        inv = np.broadcast_to(key, row_shape).ravel()
    else:
        codes, ukey = pd.factorize(np.broadcast_to(key, row_shape).ravel())
        inv = codes.astype(np.intp, copy=False)
    # decode the mixed-radix key back to per-column values of each distinct configuration
    vals: list = []
    rem = ukey.copy()
    for u in reversed(uniq_vals):
        if u is None:
            vals.append(None)
            continue
        vals.append(u[rem % len(u)])
        rem = rem // len(u)
    vals = vals[::-1]
    args = [v if v is not None else (0 if i < 2 and cols[i] is None else cols[i]) for i, v in enumerate(vals)]
    midx = args[0] if cols[0] is not None else None
    gidx = args[1] if cols[1] is not None else None
    tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa = args[2:]
    call = (mrecs, midx, grecs, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa, eff, prices,
            engine_names, moe_dp)
    sub = None if memo is None else memo[0].gather(memo[1], call)
    fresh = sub is None
    if sub is None:
        sub = _prepare(*call)

    def collapse(v):
        if np.ndim(v) == 0 or isinstance(v, Curves):
            return v
        v = np.broadcast_to(np.asarray(v), ukey.shape)
        return v.flat[0] if (v == v.flat[0]).all() else np.ascontiguousarray(v)

    fields = sub.map_rows(collapse)
    if memo is not None and fresh:
        memo[0].register(memo[1], call, Prepared(**fields))
    fields["inv"] = inv
    fields["row_shape"] = tuple(row_shape)
    return Prepared(**fields)


def _prepare(mrecs, midx, grecs, gidx, tp, pp, dp, ep, w, a, k, prof, eng, adp, lb, mact, xa, eff, prices,
             engine_names, moe_dp: float | None = None, collect: dict[str, Any] | None = None) -> Prepared:
    """The step coefficients and memory terms of configurations as they broadcast. `collect` (None on the hot
    path): a dict that receives, per component (`breakdown.COMPONENTS`), the parts of the per-token coefficient
    `tok_s` ("tok_s"; its "attention" part: DeepSeek-V4's bounded spans, per prompt or decode token), of the fixed
    time per forward `fixed_s` ("fixed_s"), of the time per sequence `ovh_seq_s` ("seq_s") and of the time per
    decoding sequence `state_seq_s` ("dec_s"), each summing to the coefficient; and from `measured.build_curves`
    the parts of the measured curves."""
    # the engine each row named ("auto": none, the launch rules below do not apply), then "auto" resolved per GPU
    named = np.asarray(engine_names, dtype=object)[eng]
    engine_names, eng = resolve_auto_engine(tuple(engine_names), eng, grecs, gidx)
    tp, pp, dp, ep, adp = (np.asarray(v, dtype=float) if np.ndim(v) else float(v) for v in (tp, pp, dp, ep, adp))
    m = ModelShape.from_models(mrecs, midx)
    g = gpu_arrays(grecs, gidx, prices)
    # an EP size that does not divide the experts holds redundant copies (resolve.expert_slots): the replica's
    # weights and the experts a step reads count slots; routing is balanced over them. Every engine places the
    # copies by its load balancer (`dse deploy` launches it so): such rows are load-balanced whatever `eplb` says
    slots = expert_slots(m.n_experts, ep)
    lb = np.where(slots > m.n_experts, 1, lb)
    lb = lb if np.ndim(lb) else int(lb)
    # the KV cache not asked for: the engines' "auto" for the checkpoint (its own format: its KV scales or 16
    # bits), an engine's own rule (SGLang's DeepSeek sparse attention), DeepSeek-V4's fp8 layout
    engines = np.asarray(engine_names, dtype=object)[eng]  # each row's engine name
    kv_eng8, kv_eng16 = engine_kv_rule(engines, g.family, m.dsa > 0)
    mx_experts = (m.mx4 > 0) & (np.asarray(w) == DTYPES.index("fp4")) & (m.n_experts > 0)
    # an MXFP4 checkpoint that quantizes its experts only (gpt-oss; not one whose other layers are FP8, ``dense8``:
    # DeepSeek-V4): the engines run its other layers unquantized, in 16 bits (vLLM `Mxfp4Config.get_quant_method`,
    # vllm/model_executor/layers/quantization/mxfp4.py: LinearBase -> UnquantizedLinearMethod), and its experts with
    # the activations `moe_act_dtype` names (each engine's MoE method: `measured.moe_act`); an act_dtype asked for
    # beyond 16 bits is no layout they run (R_MX_ACT)
    mx16 = mx_experts & (np.asarray(m.dense8) <= 0)
    a_asked = np.asarray(a)
    a = np.where(mx16 & (a_asked < 0), DTYPES.index("bf16"), a_asked)
    a = a if a.ndim else int(a)
    act, kvc, prec, reason = resolve_dtypes(g, w, a, k, (m.v4 > 0) | kv_eng8, m.ckpt_w - 1.0, m.kv8 > 0, kv_eng16)
    reason = np.where((reason == R_OK) & mx16 & (a_asked >= 0)
                      & ~np.isin(a_asked, [DTYPES.index("bf16"), DTYPES.index("fp16")]), R_MX_ACT, reason)
    # the MoE activation knob matters for MXFP4 experts only (elsewhere "auto", so equal rows stay equal)
    mact = np.where(mx_experts, mact, 0)
    mact = mact if np.ndim(mact) else int(mact)
    # the EP token exchange matters for MoE models only (a dense row's "auto", so equal rows stay equal; a choice
    # asked for there is refused below, R_MOE_A2A)
    xa_moe = np.where(m.n_experts > 0, xa, 0)
    wb, ab, kvb = dtype_bytes(w), dtype_bytes(act), dtype_bytes(kvc)
    lc = layer_costs(m, tp)
    # attention DP: the tp x attn_dp GPUs of a deployment hold each expert once between them
    lc.expert_params = lc.expert_params / adp
    fam = g.family
    # --- compute throughputs
    ge = gemm_eff(eff, fam, prec)
    weight_only = (np.asarray(w) != np.asarray(act)) & (wb < ab)  # int4/fp8 weight-only: dequantize in the GEMM
    ge = ge * np.where(weight_only, eff["int4_dequant_eff"], 1.0)
    tp_loss = 1.0 + eff["tp_eff_loss"] * np.log2(tp)
    gemm_tput = act_peak(g, act) * ge / tp_loss
    # MXFP4 experts compute with the activations each row's engine runs them with (`measured.moe_act`: its MoE
    # method's default or `moe_act_dtype`; the roofline's "auto": what most engines run on the GPU): its peak, and
    # the dequantization only where they are 16-bit (MXFP8 x MXFP4 is one mixed-input MMA); other experts: `act`
    fam_names = np.asarray(FAMILIES, dtype=object)[np.asarray(fam, dtype=int)]
    e_act = (np.where(mx_experts, moe_act_rows(mact, mx_experts, fam_names, engines, act), act)
             if np.any(mx_experts) else act)
    mact_run = mact   # the result's moe_act_dtype: what MXFP4 experts run ("auto" resolved), not the knob
    if np.any(mx_experts):
        run = np.where(np.asarray(e_act) == DTYPES.index("fp8"), MOE_ACT_DTYPES.index("mxfp8"),
                       np.where(np.isin(e_act, [DTYPES.index("bf16"), DTYPES.index("fp16")]),
                                MOE_ACT_DTYPES.index("bf16"), mact))
        mact_run = np.where(mx_experts, run, mact)
        mact_run = mact_run if np.ndim(mact_run) else int(mact_run)
    e_ab = dtype_bytes(e_act)
    e_wo = np.where(mx_experts, (e_ab >= 2.0) & (wb < e_ab), weight_only)
    e_ge = gemm_eff(eff, fam, act_prec(e_act)) * np.where(e_wo, eff["int4_dequant_eff"], 1.0)
    # ... and an experts-only MXFP4 checkpoint's other layers are unquantized (measured.py, above `expert_gemm`)
    dense_tput = np.where(mx16, act_peak(g, act) * gemm_eff(eff, fam, prec) / tp_loss, gemm_tput)
    pk16 = bf16_peak(g)
    head_tput = pk16 * gemm_eff(eff, fam, 0) / tp_loss
    w_bw = g.bw * eff_lookup(eff, "mem_eff", fam) / tp_loss
    prof = np.asarray(prof)
    w_bw = w_bw * np.where(prof == PROFILES.index("baseline"), eff["baseline_build_mem_eff"], 1.0)
    fixed_scale = np.where(prof == PROFILES.index("tuned"), eff["tuned_build_fixed_eff"], 1.0)
    attn_tput = pk16 * eff_lookup(eff, "attn_eff", fam)
    kv_bw = g.bw * eff_lookup(eff, "kv_read_eff", fam)
    dec_tput = pk16 * eff_lookup(eff, "dec_attn_eff", fam)
    # DeepSeek-V4: a decode reads its windows and top-k entries whatever its context (`v4_tok_s`); per cached
    # token only the compressed entries
    grow_kv = np.where(m.v4 > 0, lc.kv_elems_per_token - lc.win_kv_elems_per_token, lc.kv_elems_per_token)
    dec_kv_s = np.maximum(grow_kv * kvb / kv_bw, lc.attn_flops_decode / dec_tput)
    v4_attn_s = np.where(m.v4 > 0, np.maximum(lc.bounded_attn_flops_per_token / attn_tput,
                                              lc.bounded_kv_elems_per_token * kvb / kv_bw), 0.0)
    hc_s = lc.hc_bytes_per_token / w_bw
    v4_tok_s = v4_attn_s + hc_s
    elem0_s = eff["elementwise_passes"] * m.hidden * 2.0 * m.n_layers / w_bw
    # linear-attention layers (hybrid models): recurrence FLOPs per token, and each decoding sequence reads and
    # writes its constant state once per step (0 for plain transformers)
    rec_tok_s = lc.linear_flops_per_token / attn_tput
    elem_s = elem0_s + rec_tok_s
    res_s: Num = 0.0
    if np.any(lc.attn_res_bytes_per_token):  # Kimi-K3's attention residuals (no other model pays the term)
        res_s = lc.attn_res_bytes_per_token / w_bw
        elem_s = elem_s + res_s
    state_s = 2.0 * lc.state_bytes_per_seq / kv_bw
    # --- collectives, each on the link it crosses: the scale-up domain of the GPU's system (catalog.system) inside
    # it, the scale-out network between domains (comm.Links; TP innermost, then attention DP / EP, then PP stages)
    link = g.link
    lat_us, hop_us = link_lookup(eff, "ar_latency_us", link), link_lookup(eff, "ar_hop_us", link)
    bw_eff = link_lookup(eff, "ar_bw_eff", link)
    domain, out_gbs = gpu_topology(grecs, gidx)
    net = LINKS.index("roce")
    links = Links(domain=domain, up_gbs=g.link_gbs, up_lat_us=lat_us, up_hop_us=hop_us, up_eff=bw_eff,
                  out_gbs=out_gbs, out_lat_us=eff.link_table("ar_latency_us")[net],
                  out_hop_us=eff.link_table("ar_hop_us")[net], out_eff=eff.link_table("ar_bw_eff")[net])
    ar_lat, ar_pb = links.allreduce(tp)
    ar_tok = m.hidden * 2.0 * ar_pb
    ar_n = np.where(tp > 1, lc.n_allreduce, 0.0)
    # EP inside the TP group needs no all-to-all: every rank already holds every token after the all-reduce
    a2a_n = np.where((ep > 1) & ((np.mod(tp, ep) != 0) | (adp > 1)), 2.0 * lc.n_moe_layers, 0.0)
    a2a_x_lat, a2a_pb = links.alltoall(ep, m.top_k)
    mw = expert_width(m.hidden, m.moe_latent)  # what the MoE token movements carry (a latent MoE's latent)
    a2a_tok = mw * 2.0 * a2a_pb
    # the all-to-all's latency inside the domain is the TP group's all-reduce latency there (as before topology)
    a2a_lat = allreduce_latency_s(np.minimum(tp, domain), lat_us, hop_us) + a2a_x_lat
    pp_lat, pp_pb = links.p2p(tp * adp, pp)
    pp_tok = m.hidden * 2.0 * pp_pb
    # attention DP with tensor-parallel experts (ep == 1; SGLang's DP attention + TP MoE): every MoE layer gathers the
    # tokens of the attn_dp ranks before the experts and reduce-scatters the result: an all-reduce's traffic of
    # attn_dp x the local tokens over the tp x attn_dp GPUs, on the links that group crosses
    gat_n = np.where((adp > 1) & (ep == 1) & (m.n_experts > 0), lc.n_moe_layers, 0.0)
    gat_lat, gat_pb = links.allreduce(tp * adp)
    gat_tok = adp * mw * 2.0 * gat_pb
    # what spanning domains adds where a measured profile prices the collectives inside one domain
    ar_x_lat, ar_x_pb = links.allreduce_out(tp)
    _, a2a_x_pb = links.alltoall_out(ep, m.top_k)
    # (and the attention-DP gathers, which no profile table prices)
    x_tok = ar_n * m.hidden * 2.0 * ar_x_pb + a2a_n * mw * 2.0 * a2a_x_pb + gat_n * gat_tok
    x_lat = ar_n * ar_x_lat + a2a_n * a2a_x_lat + gat_n * gat_lat
    m_half = eff_lookup(eff, "gemm_m_half", fam)
    # 4-bit MoE checkpoints keep the attention projections in 16 bits (resolve.ATTN_16BIT_WEIGHTS): those GEMMs run
    # and stream at bf16, but those their config stores in its format or FP8 (`attn_weight_params`)
    a16, a8 = attn_weight_params(m, w, lc.n_moe_layers, lc.attn_params, m.n_lin * m.lin_params / tp)
    # ... and where served in its own format, the shared experts and dense MLPs its exclude list keeps out of it
    sh16, mlp16 = kept_mlp_16bit(m, w)
    a16 = a16 + sh16 * lc.shared_params + mlp16 * lc.dense_mlp_params
    # ... unless the checkpoint keeps every non-expert weight in FP8 (DeepSeek-V4)
    # ... or keeps them 16-bit (an experts-only MXFP4 checkpoint: its routers, latent MoE projections)
    dense_wb = np.where(mx16, 2.0, np.where(m.dense8 > 0, np.maximum(wb, 1.0), wb))
    lin_s_tok = 2.0 * (lc.dense_params - a16 - a8) / dense_tput + 2.0 * a16 / head_tput
    if np.any(a8 > 0):    # FP8 GEMMs (precision group 1) where the GPU computes FP8, else weight-only at bf16
        f8 = int_code("fp8")
        fp8_tput = np.where(g.peaks[g.index, f8] > 0, act_peak(g, f8) * gemm_eff(eff, fam, 1),
                            head_tput * tp_loss) / tp_loss
        lin_s_tok = lin_s_tok + 2.0 * a8 / fp8_tput
    # per routed expert and token the GPU's 1 / attn_dp share of the expert (`expert_params`); the tokens that
    # meet at the experts are those of every busy attention-DP rank (`StepCoeffs.moe_ranks`)
    moe_tput = act_peak(g, e_act) * e_ge / tp_loss * eff["moe_gemm_eff"]
    exp_s_tok = 2.0 * lc.expert_params / moe_tput
    head_s_row = 2.0 * lc.head_params / head_tput
    comm_fixed = ar_n * ar_lat + a2a_n * a2a_lat + gat_n * gat_lat + pp_lat
    tok_s = elem_s + v4_tok_s + ar_n * ar_tok + a2a_n * a2a_tok + gat_n * gat_tok + pp_tok
    c = StepCoeffs(
        lin_s_tok=lin_s_tok, lin_s_half=lin_s_tok * m_half, lin_mem_s=memory.dense_bytes_gpu(lc, dense_wb, a16, a8) / w_bw,
        exp_s_tok=exp_s_tok, exp_s_half=exp_s_tok * m_half, exp_mem_s=lc.expert_params * wb / w_bw,
        n_experts=slots, top_k=m.top_k, moe_ranks=moe_ranks(adp, moe_dp), attn_s_pair=lc.attn_flops_prefill / attn_tput,
        dec_kv_s=dec_kv_s,
        tok_s=tok_s, head_s_row=head_s_row, head_s_half=head_s_row * m_half,
        head_mem_s=lc.head_params * memory.embed_bytes_per_param(wb) / w_bw,
        fixed_s=fixed_scale * (comm_fixed + eff["overhead_step_ms"] * 1e-3
                               + eff["overhead_layer_us"] * 1e-6 * m.n_layers),
        comm_fixed_s=fixed_scale * comm_fixed, ovh_seq_s=eff["overhead_seq_us"] * 1e-6, state_seq_s=state_s,
    )
    if np.any(m.idx_block > 0):
        # MiniMax sparse attention: the sparse layers' GQA work is bounded by the attended span (`ops.sparse_s`);
        # per cached token a decode still reads the dense layers' KV and every sparse layer's indexer key
        msa = m.idx_block > 0
        grow_pairs = lc.attn_flops_decode - lc.sparse_attn_flops_pair
        c.dec_kv_s = np.where(msa, np.maximum((grow_kv - lc.sparse_kv_elems_per_token) * kvb / kv_bw,
                                              grow_pairs / dec_tput), c.dec_kv_s)
        c.attn_s_pair = np.where(msa, (lc.attn_flops_prefill - lc.sparse_attn_flops_pair) / attn_tput,
                                 c.attn_s_pair)
        c.sparse_span = np.where(msa, lc.sparse_topk, 0.0)
        c.sparse_s_pair = np.where(msa, lc.sparse_attn_flops_pair / attn_tput, 0.0)
        c.sparse_dec_s = np.where(msa, np.maximum(lc.sparse_kv_elems_per_token * kvb / kv_bw,
                                                  lc.sparse_attn_flops_pair / dec_tput), 0.0)
    if collect is not None:  # the coefficients' parts (`breakdown`), as they are summed above
        collect["tok_s"] = {"elementwise": elem0_s + res_s + hc_s, "linear_attention": rec_tok_s, "attention": v4_attn_s,
                            "comm_tp": ar_n * ar_tok, "comm_ep": a2a_n * a2a_tok + gat_n * gat_tok, "comm_pp": pp_tok}
        collect["fixed_s"] = {"comm_tp": fixed_scale * ar_n * ar_lat,
                              "comm_ep": fixed_scale * (a2a_n * a2a_lat + gat_n * gat_lat),
                              "comm_pp": fixed_scale * pp_lat, "host_step": fixed_scale * eff["overhead_step_ms"] * 1e-3,
                              "per_layer": fixed_scale * eff["overhead_layer_us"] * 1e-6 * m.n_layers}
        collect["seq_s"] = {"host_seq": eff["overhead_seq_us"] * 1e-6}
        collect["dec_s"] = {"linear_attention": state_s}
        # what a measured profile keeps in closed form of the collectives (`_attach_curves`)
        collect["p2p_tok"] = {"comm_pp": pp_tok, "comm_tp": ar_n * m.hidden * 2.0 * ar_x_pb,
                              "comm_ep": a2a_n * mw * 2.0 * a2a_x_pb + gat_n * gat_tok}
        collect["p2p_lat"] = {"comm_pp": pp_lat, "comm_tp": ar_n * ar_x_lat,
                              "comm_ep": a2a_n * a2a_x_lat + gat_n * gat_lat}
        collect["elem_s"] = elem0_s + res_s
    # the KV cache each engine's admission policy holds per running request (by engine, with or without a profile;
    # NaN where ``engine_kv_reserve`` does not list the engine, which then holds the default)
    listed = eff.engine_table("engine_kv_reserve", engines, np.nan)
    c.kv_reserve = np.where(np.isnan(listed), float(eff["kv_reserve_output_frac"]), listed)
    # how each engine sizes its KV-cache pool from the device memory
    sgl = kv_pool.is_sglang(engine_names)[eng]
    # ... SGLang's by its new-token ratio, whatever ``engine_kv_reserve`` says (`admission`)
    c.kv_ratio = np.asarray(sgl, dtype=float)
    # ... and the others it lists admit on the blocks a prompt needs now and preempt (`admission.preemption_churn`)
    c.kv_preempt = np.asarray(~sgl & np.isfinite(listed), dtype=float)
    # ... and whether it runs prefill batches alone, the decodes paused (`profiles.PREFILL_ALONE_ENGINES`)
    c.prefill_alone = prefill_alone_mask(engine_names)[eng]
    # ... and whether it forms its next batch while the current one runs (`profiles.OVERLAP_ENGINES`; not for the
    # hybrid models whose recurrent state its radix cache keeps: `profiles.NO_OVERLAP_LINEAR_KINDS`)
    c.overlap = overlap_rows(np.asarray(engine_names, dtype=object)[eng], linear_kind(m))
    # ... and the attention-DP ranks whose sequences one of its API servers streams (`profiles.RANK_API_ENGINES`)
    c.stream_ranks = api_server_ranks(np.asarray(engine_names, dtype=object)[eng], adp)
    pool, share, pooled = kv_pool.pool_terms(engines, g.mem_bytes, tp, pp, adp, float(eff["kv_mem_fraction"]),
                                             float(eff["device_mem_usable"]))
    # --- measured kernel profiles (engine != roofline): GEMMs, experts, all-reduces, attention from the tables
    src = 0
    if any(e != "roofline" for e in engine_names):
        src = _attach_curves(c, m, lc, tp, pp, ep, act, kvc, grecs, gidx, engines, eff, elem_s,
                             pp_tok + x_tok, pp_lat + x_lat, adp, w, state_s, domain, moe_dp, lb, mact, rec_tok_s,
                             collect, moe_a2a=xa_moe)
    # --- validity
    # DeepSeek-V4's grouped output projection: each TP rank holds o_groups / tp whole groups (vLLM n_local_groups)
    heads_bad = tp_invalid(m.n_heads, m.n_kv_heads, tp, np.where(m.v4 > 0, m.o_groups, 0.0), m.swa_kv_heads)
    ep_bad = ep_invalid(m.n_experts, ep, tp, adp)
    no_net = links.spans_without_network(tp * pp * adp)
    lay_bad = layout_invalid(named, tp, adp, ep)
    vendors = np.array([r.vendor for r in grecs], dtype=object)
    ven_bad = vendor_invalid(named, vendors[gidx] if gidx is not None else vendors[0])
    mact_bad = moe_act_unsupported(mact, mx_experts, fam_names,
                                   engines)
    xa_bad = moe_a2a_invalid(xa, engines, m.n_experts, tp, adp, ep)
    # a block-FP8 checkpoint served in its own format: its 128-wide weight blocks must tile every TP shard
    own_block = (m.fp8blk > 0) & (np.asarray(w) == DTYPES.index("fp8")) & (m.ckpt_w - 1.0 == DTYPES.index("fp8"))
    blk_bad = block_fp8_invalid(engines, fam, m.sgl_pad, own_block, m.moe_ffn, m.n_experts, m.attn_out,
                                m.dense_ffn, m.shared_ffn, tp, adp, ep) if np.any(own_block) else False
    reason = np.where(reason != R_OK, reason, np.where(heads_bad, R_TP, np.where(ep_bad, R_EP, np.where(
        no_net, R_NET, np.where(lay_bad, R_LAYOUT, np.where(ven_bad, R_VENDOR, np.where(mact_bad, R_MOE_ACT,
                                                                                          R_OK)))))))
    reason = np.where((reason == R_OK) & pp_invalid(m.n_layers, pp), R_PP, reason)
    reason = np.where((reason == R_OK) & xa_bad, R_MOE_A2A, reason)
    reason = np.where((reason == R_OK) & blk_bad, R_BLOCK, reason)
    # a KV format no engine stores on this GPU (an FP4 KV cache before datacenter Blackwell)
    reason = np.where((reason == R_OK) & kv_format_invalid(kvc, g.family), R_KV, reason)
    kv_tok = memory.kv_bytes_per_token_gpu(lc, kvb, pp)
    return Prepared(
        shape=m, lc=lc, coeffs=c, tp=tp, pp=pp, dp=dp, ep=ep, attn_dp=adp, eplb=lb, moe_act=mact_run, moe_a2a=xa, n_gpus=tp * pp * adp * dp, weight_code=w, act_code=act,
        kv_code=kvc, profile_code=prof, engine_code=eng, source_code=src, weights_gpu=memory.weights_bytes_gpu(lc, slots, wb, pp, a16, dense_wb, a8),
        kv_tok_gpu=kv_tok,
        # SGLang pools window layers apart only for some architectures; its others hold every layer in full, except
        # DeepSeek-V4, whose own pool holds each layer's window apart from the compressed entries (one pool here)
        kv_win_share=np.where(sgl & (m.swa_pool <= 0) & (m.v4 <= 0), 0.0, memory.window_share(lc)),
        window=lc.window_tokens,
        state_tok=memory.state_bytes_per_seq_gpu(lc, pp) / np.maximum(kv_tok, 1e-30),
        sgl_pool=(sgl & (m.v4 <= 0)).astype(float),
        act_tok_gpu=memory.act_bytes_per_token_gpu(lc) * eff["act_mem_scale"],
        reserve_gpu=eff["runtime_reserve_gib"] * memory.GIB, mem_gpu=g.mem_bytes, pool_gpu=pool, kv_share=share,
        act_pooled=pooled, reason=reason,
        idle_w=g.idle_w, tdp_w=g.tdp_w, price=g.price, eff=eff,
        model_names=[r.name for r in mrecs], gpu_names=[r.name for r in grecs],
        model_index=0 if midx is None else midx, gpu_index=0 if gidx is None else gidx,
        engine_names=tuple(engine_names), model_records=tuple(mrecs), gpu_records=tuple(grecs),
    )


#: what `engine=None` means: the newest measured profile of the GPU ("auto": vLLM's where it has one, else the
#: first engine profiled there), the closed form (roofline with fitted factors) on a GPU without one
DEFAULT_ENGINE = "auto"


def engine_codes(engine: Any) -> tuple[tuple[str, ...], Any]:
    """(distinct normalized engine names, int code(s) into them) of the `engine` argument: "roofline" (closed
    form only), "auto" (vLLM's newest profile where the GPU has one), "vllm" / "sglang" / "trtllm" (newest
    version), or "name==version"; a scalar or an array. Unknown names raise ValueError listing the valid ones."""
    from objectives.profiles import engine_label

    def norm(e: Any) -> str:
        if e is None or (isinstance(e, float) and e != e) or e is pd.NA:  # None, or a column's empty cell
            return DEFAULT_ENGINE
        if str(e).strip().lower() in ("roofline", "auto"):
            return str(e).strip().lower()
        try:
            return engine_label(e)
        except ValueError as exc:
            if str(exc).startswith("unknown engine"):
                raise ValueError(f"{exc}, or 'auto' / None (the GPU's newest profile, vLLM's where it has one), "
                                 "or 'roofline' (the closed form)") from None
            raise
    if isinstance(engine, (list, tuple, np.ndarray, pd.Series)):
        arr = np.asarray(engine, dtype=object)

        def resolve() -> tuple[tuple[str, ...], np.ndarray]:
            # each distinct spelling normalized once (a column of a million rows holds a handful of engines)
            codes, uniq = pd.factorize(arr.ravel(), use_na_sentinel=False)
            vals = [norm(u) for u in uniq]
            names = tuple(dict.fromkeys(vals))
            remap = np.array([names.index(v) for v in vals], dtype=np.int64)
            return names, remap[codes].reshape(arr.shape) if len(vals) else np.zeros(arr.shape, dtype=np.int64)
        # the same deployments' column again (`reusing_prepared`): equal elements normalize alike
        return reused("engine", engine if isinstance(engine, np.ndarray) else arr, resolve, lambda got: True)
    return (norm(engine),), 0


def auto_engine(gpu: str) -> str:
    """The engine `engine="auto"` (and None) means on `gpu`: vLLM where it has a vLLM profile, else the first
    engine profiled there, else "roofline" (the closed form)."""
    from objectives import profiles

    have = profiles.available(gpu)
    return "vllm" if "vllm" in have else next(iter(have), "roofline")


def resolve_auto_engine(engine_names: tuple[str, ...], eng: Any, grecs: list, gidx: Any) -> tuple[tuple[str, ...], Any]:
    """`engine_codes`' names and codes with "auto" replaced by each row's GPU's engine (`auto_engine`), so that
    results name the engine that costed them."""
    if "auto" not in engine_names:
        return engine_names, eng
    auto = [auto_engine(g.name) for g in grecs]
    names = list(dict.fromkeys([n for n in engine_names if n != "auto"] + auto))
    old = np.array([names.index(n) if n != "auto" else -1 for n in engine_names])
    per_gpu = np.array([names.index(x) for x in auto])
    codes = np.asarray(eng)
    new = np.where(codes == engine_names.index("auto"), per_gpu[0 if gidx is None else np.asarray(gidx)], old[codes])
    return tuple(names), (int(new) if new.ndim == 0 else new)


def linear_kind(m: ModelShape) -> np.ndarray:
    """Each row's linear-attention kind (`Model.linear_attn_kind`, `ModelShape.lin_kind`): "gdn", "kda", "mamba2",
    or "" for a model without linear-attention layers."""
    return np.asarray(np.asarray(LINEAR_KINDS, dtype=object)[np.asarray(m.lin_kind, dtype=int)], dtype=object)


def _attach_curves(c: StepCoeffs, m: ModelShape, lc: LayerCosts, tp, pp, ep, act, kvc, grecs, gidx, engines,
                   eff, elem_s, p2p_tok, p2p_lat, adp, w, state_s, domain: Num = np.inf,
                   moe_dp: float | None = None, eplb: Num = 0, moe_act: Num = 0,
                   rec_tok_s: Num = 0.0, collect: dict[str, Any] | None = None, moe_a2a: Num = 0) -> Any:
    """Give `c` measured curves where a profile exists and move the terms they replace out of the closed form;
    returns the per-row source code. `engines`: each row's engine name. `p2p_tok` / `p2p_lat`: the closed-form communication the profile does not
    measure (per token s / fixed s of one forward): the pipeline transfers, and the scale-out stage of collectives
    whose group spans scale-up domains (the profile's tables cover ranks inside one domain, `domain` GPUs).
    `rec_tok_s` (in `elem_s`) and `state_s`: the linear-attention layers' closed-form recurrence, per token (s) and
    per decoding sequence per step (s), dropped where a GDN / KDA table prices it (`build_curves`' fifth value).
    `collect` (`_prepare`'s, None on the hot path): its parts replaced by the measured rows' where they move.
    `moe_a2a`: each row's EP token exchange (`measured.MOE_A2A` code; 0: auto)."""
    gpu_names = np.array([r.name for r in grecs], dtype=object)[0 if gidx is None else gidx]
    dt = np.array(DTYPES, dtype=object)
    fields = {f: getattr(m, f) for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab",
                                          "gated", "parallel_residual", "n_experts", "top_k", "moe_ffn",
                                          "shared_ffn", "q_lora_rank", "kv_lora_rank", "qk_nope", "qk_rope",
                                          "v_head", "moe_latent")}
    fields["n_moe_layers"] = lc.n_moe_layers
    fields["expert_slots"] = expert_slots(m.n_experts, ep)  # what the replica's EP ranks hold (redundant copies)
    fields["attn16"] = attn_16bit(w, lc.n_moe_layers, m.attn16w)  # attention projections on the 16-bit GEMM table
    fields["sh16"], fields["mlp16"] = kept_mlp_16bit(m, w)  # ... the shares of shared experts and dense MLPs there
    said = attn_said(m, w, lc.n_moe_layers).astype(float)
    if np.any(said > 0):    # ... but what its config stores in its format or FP8 (`resolve.attn_weight_params`)
        fields.update(aq_said=said, aq_fmt=m.aq_fmt, aq8=m.aq8, lq_fmt=m.lq_fmt, lq8=m.lq8)
    fields["domain"] = domain  # GPUs per scale-up domain: the measured collective tables stop there
    # an expert-parallel load balancer (EPLB): the experts' balanced-routing tables where measured
    fields["eplb"] = np.where(np.asarray(ep) > 1, np.asarray(eplb, dtype=float), 0.0)
    if np.any(np.asarray(moe_act) > 0):  # MXFP4 experts' activations asked for (absent: each engine's default)
        fields["moe_act"] = np.asarray(moe_act, dtype=float)
    if np.any(np.asarray(moe_a2a) > 0):  # the EP token exchange asked for (absent: each engine's rule)
        fields["moe_a2a"] = np.asarray(moe_a2a, dtype=float)
    # hybrid, windowed, sparse and DeepSeek-V4 attention, pruned blocks, the 4-bit format (0: none)
    for f in ("n_lin", "lin_params", "attn_gate", "n_win", "window", "lin_v_heads", "idx_topk", "v4", "n_csa",
              "n_hca", "hc_mult", "mx4", "dense8", "fp8blk", "fp8tok", "n_ffn_only", "gqa_v_head", "swa_kv_heads",
              "swa_head"):
        fields[f] = getattr(m, f)
    fields["lin_kda"] = m.lin_kda  # Kimi Delta Attention rows: the profile's KDA tables price their recurrence
    if np.any(m.idx_block > 0):  # MiniMax sparse attention: its span, indexer and layers (absent: none)
        for f in ("idx_block", "n_idx", "idx_heads", "idx_dim"):
            fields[f] = getattr(m, f)
    if np.any(m.mamba_inner > 0):  # Mamba-2 rows: their conv channels (the profile's mamba2 tables; absent: none)
        for f in ("mamba_inner", "mamba_groups", "mamba_state"):
            fields[f] = getattr(m, f)
    curves, src, has, _, lin_tab = build_curves(fields, c, tp, ep, dt[act], dt[kvc], gpu_names, engines, eff, adp,
                                                dt[w], moe_dp, collect)

    step_ms = eff.engine_table("engine_step_ms", engines, 1.0)
    seq_us = eff.engine_table("engine_seq_us", engines, 2.0)
    c.ttft_s = np.where(has, eff.engine_table("engine_ttft_ms", engines, 0.0) * 1e-3, 0.0)
    c.stream_s = np.where(has, eff.engine_table("engine_stream_us", engines, 0.0) * 1e-6, 0.0)
    attn = eff["attn_ttft_ms"]
    # the linear kind's: a Triton compile for the prompt forward's new token count, on the engines whose Gated
    # DeltaNet / KDA prefill specializes a kernel on it (`profiles.JIT_PREFILL_KINDS`)
    c.ttft_model_s = np.where(has, (np.where(jit_prefill_rows(engines, linear_kind(m)), float(attn["linear"]), 0.0)
                                    # DeepSeek sparse attention (MLA): 0 since its measured prefill module
                                    # prices the indexer (a calibration may still set it); DeepSeek-V4's
                                    # modules are measured whole, indexer included
                                    + np.where((np.asarray(fields["idx_topk"]) > 0)
                                               & (np.asarray(fields["v4"]) <= 0)
                                               # not MiniMax sparse attention (GQA): no row fitted it
                                               & (np.asarray(fields.get("idx_block", 0.0)) <= 0),
                                               float(attn["sparse"]), 0.0)),
                              0.0) * 1e-3
    c.wave = np.where(has, eff.engine_table("ttft_wave", engines, 1.0), 1.0)
    # linear-attention rows whose recurrence the GDN / KDA tables priced: its closed form (recurrence FLOPs, each
    # decoding sequence's state read and write) leaves, or the step would count it twice (Mamba-2's tables time its
    # conv only, so its scan and state update stay in closed form)
    if lin_tab.any():
        elem_s = np.where(lin_tab, elem_s - rec_tok_s, elem_s)
        state_s = np.where(lin_tab, 0.0, state_s)
    c.tok_s = np.where(has, elem_s + p2p_tok, c.tok_s)
    # small per-layer kernels the profile's tables do not hold: every layer's (norms, rotary, KV-cache write,
    # activation) and an MoE layer's own (router GEMM, top-k, the experts' input quantization)
    layer_s = (np.asarray(fields["n_layers"], dtype=float) * eff.engine_table("profile_layer_us", engines, 0.0)
               + np.asarray(fields["n_moe_layers"], dtype=float) * float(eff["profile_moe_layer_us"])) * 1e-6
    c.fixed_s = np.where(has, step_ms * 1e-3 + layer_s + p2p_lat, c.fixed_s)
    c.comm_fixed_s = np.where(has, p2p_lat, c.comm_fixed_s)
    c.ovh_seq_s = np.where(has, seq_us * 1e-6, c.ovh_seq_s)
    c.state_seq_s = np.where(has, state_s, c.state_seq_s)
    if collect is not None:  # the measured rows' parts of the coefficients set above (`_prepare`'s collect)
        tok_m = {"elementwise": collect["elem_s"], "linear_attention": np.where(lin_tab, 0.0, rec_tok_s),
                 "attention": 0.0, **collect["p2p_tok"]}
        fixed_m = {"host_step": step_ms * 1e-3, "per_layer": layer_s, **collect["p2p_lat"]}
        for key, new in (("tok_s", tok_m), ("fixed_s", fixed_m), ("seq_s", {"host_seq": seq_us * 1e-6}),
                         ("dec_s", {"linear_attention": state_s})):
            collect[key] = {name: np.where(has, new.get(name, 0.0), v) for name, v in collect[key].items()}
    c.curves = curves if np.any(has) else None  # no row on a profile: the closed form as it is
    return src


__all__ = ["Prepared", "prepare", "reusing_prepared", "auto_engine", "default_eff", "int_code", "linear_kind"]
