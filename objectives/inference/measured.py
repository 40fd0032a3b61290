"""Step-time curves from measured kernel profiles (objectives.profiles), per configuration.

`forward_s` in ops.py costs a forward pass from a handful of coefficients. With a kernel profile, the per-token
work is not linear in the token count (GEMM tiles, kernel launch floors, all-reduce latency at small messages),
so each configuration gets curves sampled on fixed log-spaced grids, computed ONCE per distinct configuration:

- `tok`  (M tokens in the forward, grid M_GRID): every GEMM of every layer (dense, attention projections, shared
  and routed experts) looked up in the profile's GEMM table at its (m, n, k), plus the TP all-reduces at M x hidden
  elements from the engine's all-reduce table;
- `head` (S logit rows, grid M_GRID): the LM-head GEMM;
- `ctx`  (prompts b x effective length s, grids B_GRID x S_GRID): context attention of all layers;
- `gen`  (decoding sequences b x mean KV length s): generation attention of all layers.

A configuration's step then costs a few gathers and interpolations (log-log, linear in the grid index), with no
table search: the grids are uniform in log2. Rows without a profile get the same curves sampled from the roofline
coefficients, so one code path serves a mixed batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from objectives.catalog.model_math import expert_width
from objectives.catalog.types import DTYPE_BYTES
from objectives.profiles import engine_key
from objectives.profiles.grid import monotone

from .ops import experts_s, linears_s, lm_head_s, moe_ranks

Num = Any

#: tokens (M) and logit rows (S): half-octave grid 1 .. 2**17
M_STEPS = 2
M_GRID = 2.0 ** (np.arange(0, 17 * M_STEPS + 1) / M_STEPS)
#: attention: batch 1 .. 2048 and length 16 .. 262144, octave grids
B_GRID = 2.0 ** np.arange(0, 12)
S_LO = 4
S_GRID = 2.0 ** np.arange(S_LO, 19)


@dataclass
class Curves:
    """Log-seconds curves per configuration: tok/head shaped (..., len(M_GRID)), ctx/gen (..., len(B_GRID),
    len(S_GRID)); leading dims broadcast like the other step coefficients."""

    tok: np.ndarray
    head: np.ndarray
    ctx: np.ndarray
    gen: np.ndarray
    #: which curve row each result row reads (a block of a factorized sweep); None: the curves' own leading dims
    rows: np.ndarray | None = None
    #: per curve row (leading dims), True where no profile costs the row: `ops.forward_s` takes the closed form's
    #: exact formula there, not its sampled curve, so a row's result does not depend on its batch; None: none such
    closed: np.ndarray | None = None
    #: per curve row (leading dims) x (2 + 4 len(B_GRID)): how far its lookups stay on measured table cells
    #: (`profiles.grid.Table.reach`): the tokens of a forward (tok), the logit rows (head), then per B_GRID batch
    #: the prompt length (ctx) and the KV length (gen) up to which the attention tables were measured (inf: no
    #: bound), each followed by its pair minima (`R_CTX`); `beyond_reach` compares a forward's work with it. None:
    #: every lookup within reach
    reach: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Curves:
        """The curves of rows `idx`, as an index (no copy of the curves themselves)."""
        return Curves(self.tok, self.head, self.ctx, self.gen, idx if self.rows is None else self.rows[idx],
                      self.closed, self.reach)

    def closed_rows(self) -> np.ndarray | None:
        """The `closed` mask per result row (None: every row is costed from a profile)."""
        if self.closed is None:
            return None
        return self.closed if self.rows is None else self.closed.reshape(-1)[self.rows]


def _pos(x: Num, lo: float, steps: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid cell and fraction (unclipped: extrapolates) of x on a log2 grid starting at 2**lo."""
    g = np.log2(np.maximum(x, 1.0))
    if lo != 0:     # (log2 x - lo) x steps; a zero lo and a unit step leave g as it is (the hot path skips them)
        g -= lo
    if steps != 1:
        g *= steps
    j = np.clip(g.astype(np.intp), 0, n - 2)
    return j, g - j


def _cell(curve: np.ndarray, shape: tuple, *idx: np.ndarray, rows: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(the curve flattened, the flat position of curve[..., i0, i1] for per-row indices, the flat step of each
    index): the curve's leading dims broadcast to `shape` (or, with `rows`, curve row rows[i] for result row i).
    A neighbouring cell is the position plus its steps, so a lookup forms one index array for all its corners."""
    lead = curve.ndim - len(idx)
    tail = curve.shape[lead:]
    steps = tuple(math.prod(tail[k + 1:]) for k in range(len(idx)))
    at: Any = idx[-1] if steps[-1] == 1 else idx[-1] * steps[-1]
    for i, step in zip(idx[-2::-1], steps[-2::-1]):
        at = i * step + at
    if rows is None and lead:   # each result row's curve: the leading dims' flat index, broadcast to `shape`
        rows = np.broadcast_to(np.arange(math.prod(curve.shape[:lead])).reshape(curve.shape[:lead]), shape)
    if rows is not None:
        at = rows * math.prod(tail) + at
    return curve.reshape(-1), at, steps


def _linear(curve: Any, M: Num, rows: np.ndarray | None, held: bool) -> np.ndarray:
    """A (..., len(M_GRID)) curve at M, linear in the grid index between its two neighbouring cells (`rows`: see
    `_cell`); beyond the grid extrapolated from the edge cells, or, ``held``, the edge cell's value."""
    curve = np.asarray(curve)
    M = np.asarray(M, dtype=float)
    shape = np.broadcast_shapes(M.shape, curve.shape[:-1] if rows is None else rows.shape)
    j, f = _pos(np.broadcast_to(M, shape), 0.0, M_STEPS, len(M_GRID))
    if held:
        f = np.clip(f, 0.0, 1.0)
    flat, at, _ = _cell(curve, shape, j, rows=rows)
    lo = flat.take(at)
    return lo + f * (flat.take(at + 1) - lo)


def _bilinear(grid: Any, b: Num, s: Num, rows: np.ndarray | None, held: bool) -> np.ndarray:
    """A (..., len(B_GRID), len(S_GRID)) grid at (batch b, length s), bilinear in the grid indices (`rows`: see
    `_cell`); beyond the grid extrapolated from the edge cells, or, ``held``, the edge cells' values."""
    grid = np.asarray(grid)
    b = np.asarray(b, dtype=float)
    s = np.asarray(s, dtype=float)
    shape = np.broadcast_shapes(b.shape, s.shape, grid.shape[:-2] if rows is None else rows.shape)
    i, fb = _pos(np.broadcast_to(b, shape), 0.0, 1.0, len(B_GRID))
    j, fs = _pos(np.broadcast_to(s, shape), S_LO, 1.0, len(S_GRID))
    if held:
        fb, fs = np.clip(fb, 0.0, 1.0), np.clip(fs, 0.0, 1.0)
    flat, at, (di, _) = _cell(grid, shape, i, j, rows=rows)
    v00, v01 = flat.take(at), flat.take(at + 1)
    at += di
    v10, v11 = flat.take(at), flat.take(at + 1)
    lo = v00 + fs * (v01 - v00)
    return lo + fb * (v10 + fs * (v11 - v10) - lo)


def curve_at(curve: np.ndarray, M: Num, rows: np.ndarray | None = None) -> np.ndarray:
    """Seconds at M (tokens or rows) from a (..., len(M_GRID)) log-seconds curve (`rows`: see `_gather`)."""
    return np.exp(_linear(curve, M, rows, held=False))


def grid_at(grid: np.ndarray, b: Num, s: Num, rows: np.ndarray | None = None) -> np.ndarray:
    """Seconds at (batch b, length s) from a (..., len(B_GRID), len(S_GRID)) log-seconds grid (bilinear in
    log-log, extrapolating beyond the edges)."""
    return np.exp(_bilinear(grid, b, s, rows, held=False))


_M_TOP, _B_TOP, _S_TOP = len(M_GRID) - 2, len(B_GRID) - 2, len(S_GRID) - 2  # last cell of each grid


def curve_at1(curve: Any, M: float) -> float:
    """`curve_at` for one configuration and a float (the simulator's per-iteration path): plain float math
    (`_pos1` inlined: this runs once per simulated iteration)."""
    g = math.log2(M if M > 1.0 else 1.0) * M_STEPS
    j = int(g)
    j = 0 if j < 0 else (_M_TOP if j > _M_TOP else j)
    f = g - j
    lo = curve[j]
    return math.exp(lo + f * (curve[j + 1] - lo))


def grid_at1(grid: Any, b: float, s: float) -> float:
    """`grid_at` for one configuration and floats (`_pos1` inlined)."""
    gb = math.log2(b if b > 1.0 else 1.0)
    i = int(gb)
    i = 0 if i < 0 else (_B_TOP if i > _B_TOP else i)
    fb = gb - i
    gs = math.log2(s if s > 1.0 else 1.0) - S_LO
    j = int(gs)
    j = 0 if j < 0 else (_S_TOP if j > _S_TOP else j)
    fs = gs - j
    r0, r1 = grid[i], grid[i + 1]
    a, c = r0[j], r1[j]
    lo = a + fs * (r0[j + 1] - a)
    hi = c + fs * (r1[j + 1] - c)
    return math.exp(lo + fb * (hi - lo))


def attention_terms(c: Any, T: Num, A: Num, D: Num, K: Num, scalar: bool) -> Num:
    """Seconds of context attention (T prompt tokens, A causal pairs) and generation attention (D sequences
    reading K cached tokens) from the curves in `c.curves`. The prompt part is looked up at its effective length
    s = 2A / T and batch T / s (one prompt of s tokens has s (s + 1) / 2 pairs)."""
    cv = c.curves
    t: Num = 0.0
    if scalar:
        if A > 0 and T > 0:
            s = 2.0 * A / T
            b = T / s
            t += grid_at1(cv.ctx, b, s) * min(b, 1.0)
        if K > 0 and D > 0:
            t += grid_at1(cv.gen, D, K / D) * min(D, 1.0)
        return t
    T, A, D, K = (np.asarray(x, dtype=float) for x in (T, A, D, K))
    if np.any(A > 0):
        t = t + context_s(cv, T, A)
    if np.any(K > 0):
        t = t + generation_s(cv, D, K)
    return t


def context_points(T: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where `attention_terms` reads the context curve for T prompt tokens with A causal pairs: (batch T / s,
    effective length s = 2A / T)."""
    s = 2.0 * A / np.maximum(T, 1e-30)
    return T / np.maximum(s, 1e-30), s


def context_s(cv: Curves, T: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Seconds of the context-attention curve (`attention_terms`' prompt part; 0 where no prompt): a batch of
    less than one whole prompt (a chunk's share of an iteration) pays that fraction of one prompt's time."""
    b, s = context_points(T, A)
    return np.where((A > 0) & (T > 0), grid_at(cv.ctx, b, s, cv.rows) * np.minimum(b, 1.0), 0.0)


def generation_s(cv: Curves, D: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Seconds of the generation-attention curve (`attention_terms`' decode part): D sequences reading K cached
    tokens, at batch D and mean KV length K / D (0 where none)."""
    return np.where((K > 0) & (D > 0), grid_at(cv.gen, D, K / np.maximum(D, 1e-30), cv.rows) * np.minimum(D, 1.0),
                    0.0)


def share_at(share: np.ndarray, M: Num, rows: np.ndarray | None = None) -> np.ndarray:
    """A (..., len(M_GRID)) curve of shares (a component's part of a summed token curve, `build_curves`'
    ``collect``) at M: linear in the grid index between the two cells `curve_at` reads, held at the edge cells
    beyond the grid (shares that sum to 1 on every cell still sum to 1)."""
    return _linear(share, M, rows, held=True)


def share_grid_at(share: np.ndarray, b: Num, s: Num, rows: np.ndarray | None = None) -> np.ndarray:
    """`share_at` on a (..., len(B_GRID), len(S_GRID)) grid of shares at (batch b, length s): bilinear in the grid
    indices `grid_at` reads, held at the edges."""
    return _bilinear(share, b, s, rows, held=True)


_NB = len(B_GRID)
#: relative slack of `beyond_reach`'s comparisons: a prompt of the table's longest measured length is looked up at
#: its effective length s = 2A / T = length + 1 (`attention_terms`), one token past the measured cell
REACH_TOL = 1e-3
#: columns of `Curves.reach`: tokens, logit rows, then the context lengths per B_GRID batch (i) and per pair of
#: neighbouring batches (i, i + 1; the last: beyond the grid, 0), and the same for the generation lengths
R_TOK, R_HEAD, R_CTX, R_GEN = 0, 1, 2, 2 + 2 * _NB
#: tokens of one chunk of a long forward: the engines run a prompt of more tokens than their chunked-prefill
#: budget in chunks of it (vLLM's, SGLang's and TensorRT-LLM's default 8,192 on datacenter GPUs,
#: `estimate.DEFAULT_MAX_NUM_TOKENS`), so a forward of more tokens reads the token curves (GEMMs, fused MoE,
#: collectives) where time grows linearly with the tokens: `beyond_reach` checks their reach at one chunk. A table
#: line measured to fewer tokens than that still says "extrapolated" past its last cell
CHUNK_TOKENS = 8192.0


def beyond_reach(c: Any, M: Num, S: Num, prompts: tuple[Num, Num] | None = None,
                 decodes: tuple[tuple[Num, Num], ...] = ()) -> Any:
    """True where forwards of a row read some curve beyond what its kernel tables measured (`Curves.reach`): more
    than M tokens in a forward (GEMMs, fused MoE, collectives by message size: the largest of the forwards'
    T + D), more than S logit rows, `prompts` (T prompt tokens with A causal pairs: batch T / s at length
    s = 2A / T, as `attention_terms` reads them) or any of `decodes` ((D decodes reading K cached tokens): batch D at
    KV length K / D) past the measured length of the B_GRID batches they lie between, or past the grid's largest
    batch. False everywhere when no row has a bound."""
    cv = c.curves
    if cv is None or cv.reach is None:
        return False
    R, rows = cv.reach, cv.rows
    args = [np.asarray(x, dtype=float) for x in (M, S, *(prompts or ()), *(x for d in decodes for x in d))]
    shape = np.broadcast_shapes(*(x.shape for x in args), R.shape[:-1] if rows is None else rows.shape)
    width = R.shape[-1]
    flat = R.reshape(-1)
    if rows is not None:
        base = rows * width
    elif R.shape[:-1] == shape:
        base = np.arange(0, flat.size, width).reshape(shape)
    else:
        flat = np.ascontiguousarray(np.broadcast_to(R, shape + (width,))).reshape(-1)
        base = np.arange(0, flat.size, width).reshape(shape)
    tol = 1.0 + REACH_TOL
    out = np.minimum(args[0], CHUNK_TOKENS) > flat.take(base + R_TOK) * tol
    # a forward's logit rows are at most its tokens (one per sequence): the head's reach binds only below the tokens'
    if np.any(R[..., R_HEAD] < R[..., R_TOK]):
        out = out | (args[1] > flat.take(base + R_HEAD) * tol)

    def past(col0: int, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        # b in [2**i, 2**(i + 1)): line i's reach where b is a B_GRID batch, else the lesser of lines i and i + 1
        # (the pair columns); frexp instead of log2 (the hot path)
        mant, ex = np.frexp(np.maximum(b, 1.0))
        i = np.minimum(ex - 1, _NB - 1)
        between = (mant != 0.5) | (ex > _NB)
        return s > flat.take(base + (col0 + i + _NB * between)) * tol
    if prompts is not None:
        T, A = args[2], args[3]
        if np.any(A > 0):
            s = 2.0 * A / np.maximum(T, 1e-30)
            out = out | ((A > 0) & (T > 0) & past(R_CTX, T / np.maximum(s, 1e-30), s))
    for D, K in decodes:
        D, K = np.asarray(D, dtype=float), np.asarray(K, dtype=float)
        if np.any(K > 0):
            out = out | ((K > 0) & (D > 0) & past(R_GEN, D, K / np.maximum(D, 1e-30)))
    return out


def _m_reach(arg: np.ndarray, reach: np.ndarray, used: np.ndarray | None = None) -> np.ndarray:
    """The largest tokens of a forward M (on the M_GRID curve, log-interpolated as the curve is read) whose lookup
    coordinate `arg` (per row x M_GRID, non-decreasing along it: tokens, tokens per expert, message elements) stays
    within `reach` (the table's `Table.reach`, per row or per row x M_GRID), counting only the grid points `used`
    (None: all); inf where the whole grid stays within it, 0 where even M = 1 does not."""
    arg = np.broadcast_to(np.asarray(arg, dtype=float), np.broadcast_shapes(np.shape(arg), (1, len(M_GRID))))
    r = np.asarray(reach, dtype=float)
    r = r[:, None] if r.ndim == 1 else r
    arg = np.broadcast_to(arg, np.broadcast_shapes(arg.shape, r.shape))
    d = np.log(np.maximum(arg, 1e-300)) - np.log(np.maximum(r, 1e-300))
    bad = d > 1e-9
    if used is not None:
        bad &= used
    hit = bad.any(axis=1)
    j = np.argmax(bad, axis=1)
    j0 = np.maximum(j - 1, 0)
    at = np.arange(len(j))
    d0, d1 = d[at, j0], d[at, j]
    f = np.where(d1 > d0, np.clip(-d0 / np.where(d1 > d0, d1 - d0, 1.0), 0.0, 1.0), 0.0)
    lm = np.log(M_GRID)
    m = np.exp(lm[j0] + f * (lm[j] - lm[j0]))
    return np.where(hit, np.where(j == 0, 0.0, m), np.inf)


def _len_reach(tab: Any, *others: Any) -> np.ndarray:
    """A (batch, length, ...) table's `Table.reach` along its length at every B_GRID batch and the other
    coordinates `others` (per row): (rows, len(B_GRID))."""
    return tab.reach(1, B_GRID[None, :], *(np.asarray(o, dtype=float)[:, None] for o in others))


def _batch_reach(r: np.ndarray) -> np.ndarray:
    """A reach along a table's batch (sequences) axis, per row, as a length reach per B_GRID batch: unbounded up
    to it, 0 beyond."""
    return np.where(B_GRID[None, :] <= np.asarray(r, dtype=float)[:, None] * (1 + 1e-9), np.inf, 0.0)


# ---- building the curves ------------------------------------------------------------------------------------------

#: `source` codes of a result row
SOURCES = ("roofline", "interpolated", "extrapolated")
S_ROOF, S_INTERP, S_EXTRAP = range(3)
#: the sources from the most to the least certain (a choice between otherwise equal configurations prefers the first)
BY_CERTAINTY = ("interpolated", "extrapolated", "roofline")
#: GEMM table of each activation (compute) dtype
_GEMM_TABLE = {"bf16": "gemm.bf16", "fp16": "gemm.bf16", "fp8": "gemm.fp8", "fp4": "gemm.fp4", "int8": "gemm.int8"}
#: W8A8 int8 GEMMs (SmoothQuant / compressed-tensors W8A8 checkpoints computing in int8: vLLM's CUTLASS
#: `cutlass_scaled_mm` int8 kernels, SGLang's sgl-kernel `int8_scaled_mm`, TensorRT-LLM's SmoothQuant GEMM) where the
#: profile has no `gemm.int8` table (aiconfigurator-core times one only in TensorRT-LLM 1.0.0's A100 table, `sq`):
#: borrowed from the lane with the same weight bytes and tensor-core rate, the FP8 GEMM, where the GPU's dense int8
#: rate equals its fp8 rate (Hopper, Ada, B200 / GB200, RTX PRO 6000: one byte per weight, the same MMA throughput):
#: `gemm.fp8_static` where the profile has it (TensorRT-LLM, whose `gemm.fp8` adds a dynamic activation-quantize
#: kernel that its SmoothQuant GEMM does not run: the plugin takes int8 input quantized in the RMSNorm before it, and
#: its measured A100 table carries no such kernel), else `gemm.fp8` (vLLM and SGLang quantize W8A8 int8 activations
#: per token at run time in a kernel of their own, `scaled_int8_quant` / `per_token_quant_int8`, as their FP8 table
#: quantizes its input);
#: elsewhere (A100: no fp8; B300 / GB300: int8 at a thirtieth of fp8) `gemm.bf16` with the weight-streaming time
#: (the GEMM at M = 1) at one byte per weight and the rest at the bf16 / int8 peak ratio (`borrowed_gemm`). On A100,
#: TensorRT-LLM's measured SmoothQuant GEMM reads 0.53 of its bf16 GEMM at one token, 0.61 at 8-512, 0.52 at 4,096
#: (weights of at least 4,096 x 4,096); this rule reads 0.5. The cells are not measured in that format: a row's
#: `source` stays "interpolated" at most, as for the weight-only formats priced on their activation's table
INT8_GEMM_LANE = ("gemm.fp8_static", "gemm.fp8")


def _static_fp8_table(prof: Any) -> Any:
    """The first table of `INT8_GEMM_LANE` that `prof` holds (the FP8 GEMM with a static activation scale where
    measured, else the dynamic one); None without either."""
    return next((t for name in INT8_GEMM_LANE if (t := prof.table(name)) is not None), None)


#: Weight-only GEMMs (W4A16 / W8A16: AWQ / GPTQ int4 and int8, compressed-tensors W4A16 / W8A16, NVFP4 or FP8
#: weights computing in 16 bits): the kernel streams the packed weights and converts them to the activation dtype in
#: its main loop, one conversion (and group scale) per weight element per M tile, ahead of the same tensor-core MMA
#: as the 16-bit GEMM: vLLM's Marlin (gptq_marlin_gemm: int4 / int8 / FP8 / FP4 weights dequantized in registers
#: between the shared-memory load and `mma.sync`) and Machete (SM90, wgmma after the in-register conversion),
#: TensorRT-LLM's fpA_intB CUTLASS GEMM (cutlass_kernels/fpA_intB_gemm: the `FastInterleavedAndBiasedNumericArrayConverter`
#: inside the mainloop). At small M the kernel is memory-bound on the packed bytes (the conversions hide under the
#: weight stream); at large M the conversions are work per weight element per M tile, a constant share of the
#: MMA's work per tile: the compute part of the GEMM (beyond the GEMM at M = 1) is the activation's times a factor.
#: Where the profile has no table of the kernel (every profile but A100 TensorRT-LLM's `gemm.int4_wo` /
#: `gemm.int8_wo`) the GEMM reads its activation dtype's table at the packed bytes and that factor
#: (`weight_only_rate`). Fitted on the one pair of tables that measures it, A100 TensorRT-LLM 1.0.0 `int4_wo` /
#: `int8_wo` over `bf16`: the median of (t(M) - t(1)) / (t_bf16(M) - t_bf16(1)) over M 2,048-8,192 and N, K
#: 1,024-32,768 (docs/profiles.md, thirtieth round); by bits per weight (fp4 weights take the 4-bit factor, fp8
#: the 8-bit one); "int8" is W8A8 int8 (SmoothQuant) over bf16 on the same tables, the compute scale of
#: `QUANT_TABLE_CAP`'s bound for `gemm.int8`
QUANT_COMPUTE = {"4bit": 1.08, "8bit": 1.04, "int8": 0.54}
#: A quantized kernel's own GEMM table (`gemm.int4_wo`, `gemm.int8_wo`, `gemm.int8`: aiconfigurator-core's A100
#: TensorRT-LLM 1.0.0 tables, the only ones) is read no higher than its activation dtype's table at the packed
#: weight bytes: the weight-streaming time (the GEMM at M = 1) times the bytes' ratio plus the compute beyond it
#: times `QUANT_COMPUTE`. The tables sit on a floor at small M that grows with K and not N (int4 at M = 8: ~25 us
#: at K = 8,192 whatever N from 1,024 to 8,192, ~13 us at K = 1,024; bf16 ~8 us over its bytes), a K loop without
#: split-K in one CTA column, which TensorRT-LLM's autotuner (WeightOnlyQuantGemmRunner's tactics per power-of-2
#: token bucket) picks away from in the engine; the SmoothQuant table's one-token cells read half its 2-8-token
#: ones. At large M the bound and the tables agree (the factors are their medians)
QUANT_TABLE_CAP = ("gemm.int4_wo", "gemm.int8_wo", "gemm.int8")


def weight_only_rate(weight: str) -> float:
    """The compute part (beyond the GEMM at M = 1) of a weight-only GEMM whose weights are in `weight` over its
    activation dtype's GEMM of the same shape (`QUANT_COMPUTE`: 4-bit formats at the 4-bit factor, 8-bit ones at
    the 8-bit one; 1.0 for a 16-bit or wider weight)."""
    nbytes = DTYPE_BYTES.get(weight, 2.0)
    return QUANT_COMPUTE["4bit"] if nbytes <= 0.5 else QUANT_COMPUTE["8bit"] if nbytes <= 1.0 else 1.0


#: fused-MoE tables (`moe.<format>`) to try, in order, for a weight dtype: MoE checkpoints in FP8 are block-scaled
#: (DeepSeek, Qwen, MiniMax), 4-bit ones NVFP4 or MXFP4 (gpt-oss); the first table that measured the model's shape
#: is read (a table holds the shapes of the checkpoints in that format)
_MOE_TABLES = {"bf16": ("bfloat16",), "fp16": ("bfloat16",), "fp8": ("fp8_block", "fp8"),
               "fp4": ("nvfp4", "w4a8_mxfp4_mxfp8", "w4a16_mxfp4"), "int4": ("int4_wo",), "int8": ("int8_wo",)}
#: ... 4-bit experts by the activations they compute with: MXFP4 experts with MXFP8 activations (TensorRT-LLM's
#: TRTLLM-gen and SGLang's flashinfer_mxfp4 MoE on Blackwell, the gpt-oss defaults there) for fp8 / fp4 compute,
#: with bf16 activations (the triton / Marlin MXFP4 kernels, Hopper's only path) for 16-bit compute
_MOE_TABLES_BY_ACT = {("fp4", "fp8"): ("w4a8_mxfp4_mxfp8", "nvfp4", "w4a16_mxfp4"),
                      ("fp4", "bf16"): ("w4a16_mxfp4", "w4a8_mxfp4_mxfp8", "nvfp4")}


#: engines that compute an MXFP4 checkpoint's experts with MXFP8 activations on Blackwell by default, whatever the
#: checkpoint's 16-bit activations (aiconfigurator-core labels gpt-oss "w4a16_mxfp4" on every GPU):
#: TensorRT-LLM's `ModelConfig.get_mxfp4_quant_algo` (tensorrt_llm/_torch/model_config.py) returns
#: W4A8_MXFP4_MXFP8 on SM >= 100 for its CUTLASS and TRTLLM MoE backends unless the env var OVERRIDE_QUANT_ALGO says
#: otherwise (W4A16_MXFP4 on Hopper); SGLang's server_args pick `moe_runner_backend="flashinfer_mxfp4"` for MXFP4
#: gpt-oss on SM100, whose default `flashinfer_mxfp4_moe_precision="default"` quantizes the activations with
#: `mxfp8_quantize` ("bf16" keeps them 16-bit). vLLM is not listed: its SM100 default is FlashInfer MXFP4 x BF16
#: (vllm/model_executor/layers/fused_moe/oracle/mxfp4.py: `_get_priority_backends` lists only BF16 backends,
#: FLASHINFER_TRTLLM_MXFP4_BF16 first; VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1 selects FLASHINFER_TRTLLM_MXFP4_MXFP8)
MXFP8_MOE_ENGINES = ("sglang", "trtllm")
#: per catalog GPU family with an MXFP4 x MXFP8 MoE kernel: (the engines whose default it is, the engines that run
#: it at all, `moe_act_dtype="mxfp8"`). SM100 / SM103 (blackwell, blackwell-ultra): `MXFP8_MOE_ENGINES` by default,
#: vLLM on request; aiconfigurator-core's `w4a8_mxfp4_mxfp8` MoE tables exist for B200, B300, GB200 and GB300, none
#: for Hopper, Ada or Ampere (block-scaled MXFP8 MMA is a Blackwell instruction). SM 12.0 (blackwell-rtx, the RTX PRO
#: 6000): TensorRT-LLM only, its SM >= 100 rule above holding there (aiconfigurator-core's RTX PRO 6000 TensorRT-LLM
#: table times gpt-oss in `w4a8_mxfp4_mxfp8`, CUTLASS, and has no `w4a16_mxfp4`); SGLang's flashinfer_mxfp4 runner
#: and vLLM's MXFP8-activation backends (`Mxfp4MoeBackend.SM100_FI_MXFP4_MXFP8_TRTLLM` / `_CUTLASS`) are SM100 kernels,
#: and their RTX PRO 6000 tables time gpt-oss in `w4a16_mxfp4` with Marlin (sglang_marlin_moe,
#: vllm_gptossmxfp4moe_marlin_marlinexperts) and hold no MXFP8 row
MXFP8_MOE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "blackwell": (MXFP8_MOE_ENGINES, ("sglang", "trtllm", "vllm")),
    "blackwell-ultra": (MXFP8_MOE_ENGINES, ("sglang", "trtllm", "vllm")),
    "blackwell-rtx": (("trtllm",), ("trtllm",)),
}
#: catalog GPU families with an MXFP4 x MXFP8 MoE kernel under at least one engine (`MXFP8_MOE`)
MXFP8_MOE_FAMILIES = tuple(MXFP8_MOE)
#: engines the MXFP8 rules name (an engine outside them, "roofline" or "torch", keeps the activations it is given)
_MXFP8_RULED = ("sglang", "trtllm", "vllm")
#: values of the `moe_act_dtype` knob: the activations an MXFP4 checkpoint's experts compute with. "auto" (None):
#: the engine's default kernel (`moe_act`); "bf16": 16-bit activations (TensorRT-LLM OVERRIDE_QUANT_ALGO=W4A16_MXFP4,
#: SGLang --flashinfer-mxfp4-moe-precision bf16, vLLM's default); "mxfp8": MXFP8 activations (TensorRT-LLM's and
#: SGLang's Blackwell default, vLLM VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1), Blackwell only (`MXFP8_MOE_FAMILIES`;
#: on the RTX PRO 6000 TensorRT-LLM only, `MXFP8_MOE`). Experts that are not MXFP4 ignore it
MOE_ACT_DTYPES = ("auto", "bf16", "mxfp8")


def moe_act(engine: str, family: str, weight: str, act: str, mxfp4: bool, choice: str = "auto") -> str:
    """The activation dtype `engine` computes MoE experts with on a GPU of `family`. MXFP4 experts (`mxfp4` and a
    4-bit `weight`): "fp8" (MXFP8) or "bf16" as `choice` (`MOE_ACT_DTYPES`) asks; with "auto", the engine's
    default kernel on a GPU with an MXFP4 x MXFP8 kernel (`MXFP8_MOE`): MXFP8 where it is that engine's default
    there (TensorRT-LLM and SGLang on SM100, TensorRT-LLM on the RTX PRO 6000), 16-bit for the other serving
    engines; the engine-neutral closed form ("roofline") runs what most of the serving engines default to there
    (`_roofline_moe_act`: MXFP8 on SM100 / SM103, 16-bit on the RTX PRO 6000); `act` for any other engine, and
    on other GPUs (16-bit: none computes in fp4 or fp8 there). Other experts: `act`. The MoE table order
    (`moe_formats`) still falls back to the other activation's table where the engine's table of this one lacks
    the model's shape."""
    if not (mxfp4 and weight == "fp4"):
        return act
    if choice != "auto":
        return "fp8" if choice == "mxfp8" else "bf16"
    if family in MXFP8_MOE:
        kind = engine_key(engine)  # "trtllm==1.3.0rc20" -> "trtllm"
        if kind in MXFP8_MOE[family][0]:
            return "fp8"
        if kind in _MXFP8_RULED:
            return "bf16"
        if kind == "roofline":
            return _roofline_moe_act(family)
    return act


def _roofline_moe_act(family: str) -> str:
    """What the closed form ("roofline", no engine) computes MXFP4 experts with under "auto" on a GPU of `family`
    with an MXFP4 x MXFP8 kernel (`MXFP8_MOE`): "fp8" (MXFP8) where it is the default of most of the serving
    engines the rules name (`_MXFP8_RULED`; SM100 / SM103: TensorRT-LLM and SGLang of the three, vLLM's default
    being MXFP4 x BF16), else "bf16" (RTX PRO 6000: TensorRT-LLM alone; SGLang and vLLM run Marlin there)."""
    return "fp8" if 2 * len(MXFP8_MOE[family][0]) > len(_MXFP8_RULED) else "bf16"


def moe_act_rows(choice: Any, mxfp4_experts: Any, family: Any, engine: Any, act: Any) -> np.ndarray:
    """`moe_act` per configuration, vectorized: the `DTYPES` code of the activations each row's experts compute
    with. `choice`: `MOE_ACT_DTYPES` codes; `mxfp4_experts`: rows whose experts are MXFP4 (4-bit weights, the
    checkpoint's MXFP4 scheme); `family` / `engine`: names; `act`: the rows' activation `DTYPES` codes (all
    broadcast). One `moe_act` call per distinct (choice, MXFP4, family, engine, act)."""
    from objectives.catalog.types import DTYPES
    arrs = np.broadcast_arrays(np.asarray(choice, dtype=int), np.asarray(mxfp4_experts, dtype=bool),
                               np.asarray(family, dtype=object), np.asarray(engine, dtype=object),
                               np.asarray(act, dtype=int))
    flat = [x.ravel() for x in arrs]
    code = _group_codes(*flat)
    out = np.empty(len(code), dtype=int)
    for c in np.unique(code):
        at = np.flatnonzero(code == c)
        i = at[0]
        ch, mx, fam, eng, a = (x[i] for x in flat)
        got = moe_act(str(eng), str(fam), "fp4" if mx else "", DTYPES[int(a)], bool(mx), MOE_ACT_DTYPES[int(ch)])
        out[at] = DTYPES.index(got)
    return out.reshape(arrs[0].shape)


def mxfp8_moe_able(family: str, engine: Any = None) -> bool:
    """True where MXFP4 experts can compute with MXFP8 activations on a GPU of `family` under `engine` (any engine
    when None, or an engine the rules do not name: "roofline", "torch"); see `MXFP8_MOE`."""
    if family not in MXFP8_MOE:
        return False
    kind = engine_key(engine)
    return kind not in _MXFP8_RULED or kind in MXFP8_MOE[family][1]


def moe_act_unsupported(choice: Any, mxfp4_experts: Any, family: Any, engine: Any = None) -> Any:
    """True where a `moe_act_dtype` choice can never run, vectorized: "mxfp8" (`MOE_ACT_DTYPES` code 2) on MXFP4
    experts on a GPU whose `family` (name) has no MXFP4 x MXFP8 MoE kernel under `engine` (names, broadcast with
    `family`; None: under any engine), `mxfp8_moe_able`."""
    fam, eng = np.broadcast_arrays(np.asarray(family, dtype=object), np.asarray("" if engine is None else engine,
                                                                                 dtype=object))
    pairs, inverse = np.unique(np.stack([fam.ravel().astype(str), eng.ravel().astype(str)], axis=1), axis=0,
                               return_inverse=True)
    ok = np.array([mxfp8_moe_able(f, e or None) for f, e in pairs], dtype=bool)  # per distinct (family, engine)
    able = ok[np.asarray(inverse).ravel()].reshape(fam.shape)
    return (np.asarray(choice) == MOE_ACT_DTYPES.index("mxfp8")) & np.asarray(mxfp4_experts, dtype=bool) & ~able


def moe_formats(weight: str, act: str, mxfp4: bool = False) -> tuple[str, ...]:
    """The fused-MoE tables (`moe.<format>`) to try, in order, for experts in `weight` computing in `act` (fp16
    compute reads the bf16 tables); `mxfp4`: the checkpoint's 4-bit experts are MXFP4 (gpt-oss, DeepSeek-V4), so
    the MXFP4 kernels come before NVFP4's wherever a table holds both at the model's shape (Blackwell: vLLM's
    B200 tables time DeepSeek-V4's layer in NVFP4 5-25 % faster than in MXFP4 x MXFP8)."""
    act = "bf16" if act == "fp16" else act
    order = _MOE_TABLES_BY_ACT.get((weight, act), _MOE_TABLES.get(weight, ()))
    if mxfp4 and weight == "fp4":
        order = tuple(f for f in order if "mxfp4" in f) + tuple(f for f in order if "mxfp4" not in f)
    return order


def _roofline_curves(c: Any) -> Curves:
    """Curves sampled from the closed-form coefficients `c` (`_FlatCoeffs`: one row each, a column) with `ops`'
    closed-form terms."""
    Mg = M_GRID[None, :]
    tok = linears_s(c, Mg)
    if np.any(c.n_experts > 0):
        tok = tok + experts_s(c, Mg)
    head = lm_head_s(c, Mg)
    b = B_GRID[None, :, None]
    s = S_GRID[None, None, :]
    ctx = b * s * (s + 1.0) * 0.5 * c.attn_s_pair[:, :, None]
    gen = b * s * c.dec_kv_s[:, :, None]
    span = c.sparse_span[:, :, None]
    if np.any(span > 0):  # MiniMax sparse attention's bounded part (`ops.sparse_s`)
        ctx = ctx + b * np.minimum(s * (s + 1.0) * 0.5, s * span) * c.sparse_s_pair[:, :, None]
        gen = gen + b * np.minimum(s, span) * c.sparse_dec_s[:, :, None]
    return Curves(np.log(np.maximum(tok, 1e-12)), np.log(np.maximum(head, 1e-12)),
                  np.log(np.maximum(ctx, 1e-12)), np.log(np.maximum(gen, 1e-12)))


def _flat(x: Num, shape: tuple) -> np.ndarray:
    """`x` broadcast to `shape`, as a flat writable array."""
    return np.broadcast_to(np.asarray(x, dtype=float), shape).ravel().copy()


#: the closed-form coefficients `_roofline_curves` reads
_CURVE_COEFFS = ("lin_s_tok", "lin_s_half", "lin_mem_s", "n_experts", "top_k", "moe_ranks", "exp_s_tok",
                 "exp_s_half", "exp_mem_s", "head_s_row", "head_s_half", "head_mem_s", "attn_s_pair", "dec_kv_s",
                 "sparse_span", "sparse_s_pair", "sparse_dec_s")


def build_curves(shape_fields: dict[str, Num], coeffs: Any, tp: Num, ep: Num, act_names: np.ndarray,
                 kv_names: np.ndarray, gpu_names: np.ndarray, engines: np.ndarray, eff: Any,
                 attn_dp: Num = 1.0, weight_names: Any = None, moe_dp: float | None = None,
                 collect: dict[str, Any] | None = None) -> tuple[Curves, np.ndarray, np.ndarray, tuple, np.ndarray]:
    """Curves for every configuration (all arguments broadcast; string arrays hold one name per row), the
    per-row source code and a has-profile mask, the broadcast shape, and the rows whose linear-attention
    recurrence a kernel table priced (Gated DeltaNet, Kimi Delta Attention; `_profile_rows`: their closed-form
    recurrence terms are to be dropped). `shape_fields["attn16"]`: the rows whose attention projections run the
    16-bit GEMM table (`resolve.attn_16bit`); `shape_fields["sh16"]` / `["mlp16"]` (optional): the share of each
    row's shared-expert / dense-MLP layers that runs there too (`resolve.kept_mlp_16bit`); `shape_fields["moe_act"]`
    (optional): each row's `moe_act_dtype` code (`MOE_ACT_DTYPES`; absent: "auto"). `moe_dp`: the attention-DP
    ranks whose tokens reach the routed experts in one forward (None: all attn_dp of them; `prepare`). Rows whose
    GPU has no profile for their engine, or whose compute dtype has no GEMM table, keep roofline curves (source
    "roofline"). `collect` (None on the hot path; `breakdown`): a dict that receives the curves' parts as shares
    of each grid cell, shaped like the curves: ``collect["tok"]`` {component (`TOK_PARTS`): shares of `tok`},
    ``collect["ctx_lin"]`` / ``collect["gen_lin"]``: the linear-attention layers' share of `ctx` / `gen` (the rest is
    softmax attention); `head` is the LM head alone. Shares are taken before the curves' monotone envelope."""
    from objectives import catalog, profiles

    bshape = np.broadcast_shapes(*(np.shape(v) for v in shape_fields.values()), np.shape(tp), np.shape(ep),
                                 np.shape(act_names), np.shape(kv_names), np.shape(gpu_names), np.shape(engines),
                                 np.shape(attn_dp), *(np.shape(getattr(coeffs, a)) for a in _CURVE_COEFFS))
    n = int(np.prod(bshape)) if bshape else 1
    cv = _roofline_curves(_FlatCoeffs(coeffs, bshape))
    src = np.zeros(n, dtype=np.int8)
    lin_tab = np.zeros(n, dtype=bool)
    reach = np.full((n, 2 + 4 * _NB), np.inf)
    if collect is not None:  # rows without a profile keep the closed form (their parts: `breakdown`)
        sh_tok = {name: np.zeros_like(cv.tok) for name in TOK_PARTS}
        sh_ctx, sh_gen = np.zeros_like(cv.ctx), np.zeros_like(cv.gen)
    f = {k: _flat(v, bshape) for k, v in shape_fields.items()}
    tp_, ep_, adp = _flat(tp, bshape), _flat(ep, bshape), _flat(attn_dp, bshape)
    act = np.broadcast_to(np.asarray(act_names, dtype=object), bshape).ravel()
    kvn = np.broadcast_to(np.asarray(kv_names, dtype=object), bshape).ravel()
    gpus = np.broadcast_to(np.asarray(gpu_names, dtype=object), bshape).ravel()
    engs = np.broadcast_to(np.asarray(engines, dtype=object), bshape).ravel()
    wts = act if weight_names is None else np.broadcast_to(np.asarray(weight_names, dtype=object), bshape).ravel()
    mx = (f["mx4"] > 0 if "mx4" in f else np.zeros(n, dtype=bool)).astype(int)
    blk = (f["fp8blk"] > 0 if "fp8blk" in f else np.zeros(n, dtype=bool)).astype(int)
    ptok = (f["fp8tok"] > 0 if "fp8tok" in f else np.zeros(n, dtype=bool)).astype(int)
    # the MoE activation knob (`MOE_ACT_DTYPES` code; absent: "auto" on every row)
    mact = f["moe_act"].astype(int) if "moe_act" in f else np.zeros(n, dtype=int)
    # checkpoints that keep every non-expert weight in FP8 (DeepSeek-V4; absent: none)
    d8 = (f["dense8"] > 0 if "dense8" in f else np.zeros(n, dtype=bool)).astype(int)
    codes = _group_codes(gpus, engs, act, kvn, wts, mx, blk, ptok, mact, d8)
    mdp = adp if moe_dp is None else np.minimum(adp, moe_dp)
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        g, e, a, k, w = (str(x[rows[0]]) for x in (gpus, engs, act, kvn, wts))
        if e in ("", "roofline"):
            continue
        prof = profiles.load(g, e)
        if prof is None:
            continue
        mxr = bool(mx[rows[0]])
        # an MXFP4 checkpoint that quantizes its routed experts only (gpt-oss, Kimi-K3; not DeepSeek-V4, whose
        # other layers are FP8): its other GEMMs run unquantized at the activation dtype (see above `expert_gemm`)
        w_exp, w = w, (a if mxr and w == "fp4" and not d8[rows[0]] else w)
        gt = prof.table(_GEMM_TABLE.get(a, ""))
        rate = 1.0  # the compute part of a borrowed GEMM over the table's (`borrowed_gemm`)
        if gt is None and a == "int8":
            gt, rate = borrowed_gemm(prof, catalog.gpu(g).peak_tflops)
        if a == "fp8" and blk[rows[0]] and engine_key(e) in BLOCK_FP8_GEMM_ENGINES:   # any release spelling
            gt = prof.table("gemm.fp8_block") or gt
        elif a == "fp8" and not blk[rows[0]] and not ptok[rows[0]]:  # per-tensor FP8: the static activation scale
            gt = _static_fp8_table(prof) or gt
        # NVFP4 GEMMs whose input the engine hands over already quantized (`FUSED_FP4_GEMM`)
        fgt = prof.table(FUSED_FP4_GEMM) if a == "fp4" and w == a else None
        wo = 1.0  # weight-only formats stream fewer weight bytes than the activation dtype's GEMM
        w_bytes = gt_bytes = DTYPE_BYTES.get(a, 2.0)  # bytes per weight: the checkpoint's, the table's
        cap = None  # the bound a quantized table's GEMM may not exceed (`QUANT_TABLE_CAP`)
        if a == "int8" and gt is not None and gt is prof.table("gemm.bf16"):  # int8 on the 16-bit table: half
            # its weight bytes stream
            wo, gt_bytes = w_bytes / DTYPE_BYTES["bf16"], DTYPE_BYTES["bf16"]
        elif w != a and DTYPE_BYTES.get(w, 2.0) < DTYPE_BYTES.get(a, 2.0):
            own = prof.table(f"gemm.{w}_wo")
            wo_rate = weight_only_rate(w)
            if own is not None:  # the weight-only kernel's own table, bounded by the activation's at packed bytes
                capped = gt is not None and f"gemm.{w}_wo" in QUANT_TABLE_CAP
                cap = (gt, DTYPE_BYTES[w] / DTYPE_BYTES[a], rate * wo_rate) if capped else None
                gt, wo, gt_bytes = own, 1.0, DTYPE_BYTES[w]
            else:  # the activation dtype's table: the weights stream packed, the dequantization adds compute
                wo, rate = DTYPE_BYTES[w] / DTYPE_BYTES[a], rate * wo_rate
            w_bytes = DTYPE_BYTES[w]
        elif a == "int8" and gt is not None and gt is prof.table("gemm.int8") and "gemm.int8" in QUANT_TABLE_CAP \
                and (b16 := prof.table("gemm.bf16")) is not None:  # W8A8 int8 on its own kernel's table
            cap = (b16, w_bytes / DTYPE_BYTES["bf16"], QUANT_COMPUTE["int8"])
        if gt is None:
            continue
        # DeepSeek-V4 rows need the profile's attention-module and mHC tables at their hidden size; without them
        # they keep the closed form (source "roofline"), as a GPU without a profile
        v4 = f["v4"][rows] > 0 if "v4" in f else np.zeros(len(rows), dtype=bool)
        if v4.any():
            lack = {hid: not has_v4_tables(prof, hid) for hid in np.unique(f["hidden"][rows][v4])}
            rows = rows[~(v4 & np.array([lack.get(x, False) for x in f["hidden"][rows]]))]
            if not len(rows):
                continue
        # the curves depend on the model's shape and the parallel layout only: configurations that differ in
        # batching knobs alone share one lookup
        cols = sorted(f)
        mat = np.column_stack([f[kk][rows] for kk in cols] + [tp_[rows], ep_[rows], adp[rows], mdp[rows]])
        _, first, back = np.unique(mat, axis=0, return_index=True, return_inverse=True)
        u = rows[first]
        sub = {kk: v[u] for kk, v in f.items()}
        attn16 = sub["attn16"] > 0
        kept16 = attn16 | (sub.get("sh16", 0.0) > 0) | (sub.get("mlp16", 0.0) > 0)
        at = prof.table("gemm.bf16") if np.any(kept16) else None
        ma = moe_act(e, catalog.gpu(g).family, w_exp, a, mxr, MOE_ACT_DTYPES[int(mact[rows[0]])])
        parts: dict[str, Any] | None = None if collect is None else {}
        (tok, head, ctx, gen), inside, lin_u, reach_u = _profile_rows(
            prof, gt, k, sub, tp_[u], ep_[u], adp[u], eff, wo, moe_formats(w_exp, ma, mxr), at, attn16,
            None if moe_dp is None else mdp[u], dram=(catalog.gpu(g).mem_bw_tbs * 1e12, w_bytes, gt_bytes),
            parts=parts, fused_gt=fgt, rate=rate, cap=cap,
            experts=expert_gemm(prof, w_exp, ma) if (w_exp != w or ma != a) else None)
        back = back.ravel()
        if parts is not None:
            for name in TOK_PARTS:
                sh_tok[name][rows] = parts["tok"][name][back]
            if parts["ctx_lin"] is not None:
                sh_ctx[rows] = parts["ctx_lin"][back]
                sh_gen[rows] = parts["gen_lin"][back]
        cv.tok[rows], cv.head[rows] = tok[back], head[back]
        if ctx is not None:
            cv.ctx[rows] = ctx[back]
        if gen is not None:
            cv.gen[rows] = gen[back]
        src[rows] = np.where(inside[back], S_INTERP, S_EXTRAP)
        lin_tab[rows] = lin_u[back]
        if ctx is None:  # the roofline's attention curves: no table bounds them
            reach_u[:, R_CTX:] = np.inf
        reach[rows] = reach_u[back]
    closed = (src == 0).reshape(bshape)
    # only the "interpolated" rows can change their source with their work: the others need no bound
    reach[src != S_INTERP] = np.inf
    if collect is not None:
        collect["tok"] = {name: v.reshape(bshape + v.shape[1:]) for name, v in sh_tok.items()}
        collect["ctx_lin"] = sh_ctx.reshape(bshape + sh_ctx.shape[1:])
        collect["gen_lin"] = sh_gen.reshape(bshape + sh_gen.shape[1:])
    curves = Curves(cv.tok.reshape(bshape + cv.tok.shape[1:]), cv.head.reshape(bshape + cv.head.shape[1:]),
                    cv.ctx.reshape(bshape + cv.ctx.shape[1:]), cv.gen.reshape(bshape + cv.gen.shape[1:]),
                    closed=closed if closed.any() else None,
                    reach=reach.reshape(bshape + reach.shape[1:]) if np.isfinite(reach).any() else None)
    return curves, src.reshape(bshape), (src > 0).reshape(bshape), bshape, lin_tab.reshape(bshape)


#: MiniMax sparse attention modules (`msa_<phase>.<name>` tables) by the model shape they were measured at: MiniMax-M3
#: (aiconfigurator-core's collectors build it from MiniMaxAI/MiniMax-M3's config.json: 64 query / 4 KV heads of 128,
#: an indexer of 4 heads of 128 over blocks of 128 tokens, 16 blocks plus the local one); a record of another shape
#: (another span, other heads) keeps the GQA tables at its bounded span
MSA_MODULES = {"minimax_m3": {"hidden": 6144.0, "n_heads": 64.0, "n_kv_heads": 4.0, "head_dim": 128.0,
                              "idx_heads": 4.0, "idx_dim": 128.0, "idx_block": 128.0, "idx_topk": 2176.0}}
#: DeepSeek-V4 attention layer kinds with a module table of their own; the window-only layers (compress ratio 0)
#: read the HCA table, as aiconfigurator-core's model does (the HCA module's compressed span is the smallest)
V4_MODULES = ("csa", "hca")


def has_v4_tables(prof: Any, hidden: float) -> bool:
    """True if `prof` holds DeepSeek-V4's attention modules at this hidden size (both kinds, both phases) and the
    mHC tables."""
    names = [f"dsv4_{st}.{kd}_h{int(hidden)}" for kd in V4_MODULES for st in ("context", "generation")]
    return all(prof.table(n) is not None for n in [*names, "mhc.pre", "mhc.post"])


# MXFP4 checkpoints that quantize their routed experts only (`Model.has_mxfp4_experts` without
# `Model.dense_weight_dtype`: gpt-oss, Kimi-K3; core's ``mx16``) keep every other weight 16-bit: gpt-oss's
# quantization_config lists the attention, router, embeddings and LM head in `modules_to_not_convert`; Kimi-K3's
# compressed-tensors `ignore` lists its attention, shared experts and dense MLP, and its routers and latent MoE
# projections ship BF16 too (vllm-project/vllm-ascend vllm_ascend/models/kimi_k3.py: `gate` a ReplicatedLinear with
# quant_config None, `_routed_latent_quant_config` None for a compressed-tensors checkpoint). The engines run those
# layers unquantized (vLLM `Mxfp4Config.get_quant_method`: LinearBase -> UnquantizedLinearMethod): their GEMMs read
# the activation dtype's table at its bytes (`build_curves`), their weights count 16-bit bytes (core), and only the
# routed experts stream MXFP4 bytes (`expert_gemm`).


def expert_gemm(prof: Any, weight: str, act: str) -> tuple[Any, float, float, float] | None:
    """The GEMM table a routed expert's grouped GEMM reads where no fused-MoE table prices its layer, for experts
    in `weight` computing with `act` (`moe_act`), and its format: (table, weight-streaming scale, compute scale,
    bytes per weight; `_profile_rows`' ``experts``). `act`'s table (`_GEMM_TABLE`; the 16-bit one where the profile
    lacks it) at the packed weight bytes: 16-bit activations convert the weights in the GEMM's main loop
    (`weight_only_rate`, W4A16), 8- and 4-bit ones feed them to the tensor cores' mixed-input MMA as they are
    (Blackwell's MXF8F6F4 kind: MXFP4 x MXFP8 at the FP8 rate, TensorRT-LLM's W4A8_MXFP4_MXFP8), no conversion
    work. FP8 activations read the static-scale FP8 table where measured (`_static_fp8_table`): the MoE layer
    quantizes its input once (TensorRT-LLM / SGLang `mxfp8_quantize`), not per GEMM as the dynamic table times it.
    None where the profile has neither table."""
    t = _static_fp8_table(prof) if act == "fp8" else prof.table(_GEMM_TABLE.get(act, ""))
    if t is None:
        act, t = "bf16", prof.table("gemm.bf16")
    if t is None:
        return None
    t_bytes, w_bytes = DTYPE_BYTES.get(act, 2.0), DTYPE_BYTES.get(weight, 2.0)
    rate = weight_only_rate(weight) if t_bytes >= 2.0 else 1.0
    return t, min(w_bytes / t_bytes, 1.0), rate, w_bytes


def borrowed_gemm(prof: Any, peaks: Any) -> tuple[Any, float]:
    """The table a W8A8 int8 GEMM reads where `prof` has no `gemm.int8` (`INT8_GEMM_LANE`) and the scale of its
    compute part (the time beyond the GEMM at M = 1, the weight-streaming time) over the table's: the first FP8
    table of `INT8_GEMM_LANE` at 1.0 where the GPU's dense int8 peak (`peaks`: `GPU.peak_tflops`, TOPS) equals
    its fp8 peak, else `gemm.bf16` at the bf16 / int8 peak ratio (the caller streams its weights at one byte);
    (None, 1.0) without either."""
    i8, f8, b16 = (float(peaks.get(x, 0.0)) for x in ("int8", "fp8", "bf16"))
    if i8 > 0 and f8 == i8 and (t := _static_fp8_table(prof)) is not None:
        return t, 1.0
    t = prof.table("gemm.bf16")
    return (t, b16 / i8) if t is not None and i8 > 0 and b16 > 0 else (None, 1.0)


def _group_codes(*arrays: np.ndarray) -> np.ndarray:
    """One int code per row for the tuple of its values in `arrays` (equal tuples, equal codes), vectorized."""
    code = np.zeros(len(arrays[0]), dtype=np.int64)
    for a in arrays:
        c, u = pd.factorize(np.asarray(a, dtype=object).astype(str), sort=False)
        code = code * len(u) + c
    return code


class _FlatCoeffs:
    """StepCoeffs fields flattened from `shape`, each a column (one row a configuration, to broadcast against a
    grid on the last axis): a read-only view for `_roofline_curves`."""

    def __init__(self, c: Any, shape: tuple) -> None:
        self._c, self._shape = c, shape

    def __getattr__(self, name: str) -> np.ndarray:
        return _flat(getattr(self._c, name), self._shape)[:, None]


#: A per-tensor FP8 checkpoint (ModelOpt's FP8, nvidia/*-FP8; an engine's own FP8 quantization of a 16-bit one)
#: carries a static activation scale: where the profile holds `gemm.fp8_static` (`profiles.build.
#: DYNAMIC_FP8_GEMM_ENGINES`: TensorRT-LLM, whose `gemm.fp8` times the dynamic scale) its GEMMs read that table.
#: Per-channel FP8 (`Model.quant_scheme` "fp8_per_channel": Meta's FBGEMM releases, compressed-tensors' FP8-dynamic)
#: scales its activations per token at run time and keeps `gemm.fp8`, as block-scaled FP8 does where it has no
#: block table.
#: engines whose `gemm.fp8_block` table times the block-scaled FP8 GEMM (128 x 128 weight blocks, 1 x 128 activation
#: groups) they run for a block-quantized FP8 checkpoint (DeepSeek-V3 / R1, Qwen3-FP8): TensorRT-LLM (FP8 block
#: scales linear) and SGLang. Their per-tensor `gemm.fp8` tables time another kernel; TensorRT-LLM's costs ~7 us more
#: per GEMM at decode sizes (its dynamic per-tensor activation scale). vLLM is not listed: its `gemm.fp8_block` cells
#: sit on a flat floor (0.057 ms on H100 / H200, 0.17 ms on B200, the same from 1 to 1,024 tokens and from a
#: 576 x 7,168 to a 4,608 x 7,168 weight: host time of the measurement, which CUDA graphs do not pay in the engine), so
#: its block checkpoints keep the per-tensor table, which the other engines' block tables match within ~20 %. A
#: profile without the block table keeps the per-tensor one too: SGLang's RTX PRO 6000 tables time no block GEMM (its
#: Hopper / Blackwell ones time DeepGEMM's, an SM90 / SM100 kernel), and vLLM's there hold 518 scattered cells
BLOCK_FP8_GEMM_ENGINES = ("sglang", "trtllm")
#: Where the profile holds `gemm.fp4_fused` (`profiles.build.FUSED_FP4_GEMM_ENGINES`: TensorRT-LLM, whose `gemm.fp4`
#: times the NVFP4 activation quantize kernel with the GEMM) an NVFP4 checkpoint's GEMMs whose input the engine
#: quantizes in the kernel before read it: the fused QKV projection and a dense layer's gate / up projection where
#: the layer has a TP group and a hidden size above `FUSED_NORM_MIN_HIDDEN` (the all-reduce + residual + RMSNorm +
#: NVFP4 quantize kernel, TensorRT-LLM's LlamaDecoderLayer PRE_MLP_FUSION / POST_MLP_FUSION), and the output
#: projection (the attention kernel writes NVFP4). The down projection (SwiGLU's 16-bit output), MLA's projections,
#: shared and routed experts and the other rows' QKV and gate / up keep `gemm.fp4`.
FUSED_FP4_GEMM = "gemm.fp4_fused"
#: the hidden size above which TensorRT-LLM fuses the all-reduce, RMSNorm and quantize (LlamaDecoderLayer:
#: `enable_fusion &= hidden_size > 4096`, "Disable fusion for small models due to accuracy issues")
FUSED_NORM_MIN_HIDDEN = 4096
#: fused-MoE tables whose in-engine time `profile_moe_scale` scales: the NVFP4 tables, the ones its fitted rows read
#: (TensorRT-LLM's Kimi-K2.5 NVFP4 rows on GB200, whose table holds only the CUTLASS kernel at that shape while the
#: engine also ships a faster one there: `calibration.silicon.MOE_SCALE_ENGINES`). Other formats keep their
#: measured time: no row says their engine runs anything but the kernel timed
MOE_SCALE_FORMATS = ("nvfp4",)
#: tokens per forward up to which an engine runs an MoE layer's shared experts on an auxiliary CUDA stream, overlapped
#: with the routed experts: vLLM's SharedFusedMoE (vllm-project/vllm#26440), VLLM_SHARED_EXPERTS_STREAM_TOKEN_THRESHOLD
#: default 256; TensorRT-LLM's Deepseekv3MoE (maybe_execute_in_parallel, multi-stream inside CUDA graphs), whose
#: default CudaGraphConfig captures batches up to 128. SGLang is not listed: it fuses GLM-5's shared expert into the
#: routed kernel (determine_num_fused_shared_experts) and its dual stream for the others is not modelled
SHARED_EXPERT_STREAM_TOKENS = {"vllm": 256.0, "trtllm": 128.0}
#: engines whose own (custom) all-reduce keeps running when a TP group spans several nodes of one multi-node NVLink
#: domain (GB200 / GB300 NVL72: 4-GPU trays, so TP 8 spans two): TensorRT-LLM's AllReduce under its default AUTO
#: strategy builds an MNNVLAllReduce when `MNNVLAllReduce.is_mnnvl(mapping, dtype)` holds (multi-node mapping,
#: aarch64, NVLink fabric memory; tensorrt_llm/_torch/distributed/ops.py, AllReduce.__init__), a one-/two-shot
#: kernel over NVLink-mapped buffers like the single-node custom all-reduce. vLLM's CustomAllreduce is disabled
#: when the group is not on one node (vllm/distributed/device_communicators/custom_all_reduce.py: "Custom allreduce
#: is disabled because this process group spans across nodes."), so its groups beyond a tray fall back to NCCL. Beyond the ranks the tables were measured at, such an
#: engine extrapolates its custom all-reduce table, not NCCL's
MNNVL_ALLREDUCE_ENGINES = ("trtllm",)
#: engines whose MoE layers under attention DP exchange tokens by all-gather + reduce-scatter, not an all-to-all,
#: when the EP group is no larger than top-k: TensorRT-LLM's fused-MoE modules (1.0/1.1 line,
#: tensorrt_llm/_torch/modules/fused_moe/: `select_alltoall_method_type`) return AlltoallMethodType.NotEnabled for
#: `mapping.moe_ep_size <= top_k` (MNNVL / DeepEP all-to-alls only beyond) and then run allgather / reducescatter
#: (tensorrt_llm/_torch/distributed/ops.py). Kimi-K2.5's TRT-LLM prefill pools (EP 4, top-8) are such groups
ALLGATHER_MOE_ENGINES = ("trtllm",)
#: the largest EP group whose dispatch / combine the DeepEP tables price (DeepEP's intranode kernels: one 8-GPU
#: node's NVLink peers; beyond it NCCL's all-to-all); also the GPUs the tables were measured on, except
#: `DEEPEP_TABLE_GPUS`
DEEPEP_NODE_GPUS = 8
#: profile systems whose DeepEP tables (node_num 1: EP over one node's GPUs) were measured on fewer GPUs than
#: DEEPEP_NODE_GPUS: a GB200 / GB300 NVL72 compute tray of 4 (aiconfigurator-core's systems/gb200.yaml and
#: gb300.yaml, num_gpus_per_node 4; the same package's vLLM and TensorRT-LLM DeepEP rows there, moe_a2a_perf,
#: record ep_size 4 at node_num 1, where the HGX systems' record 8)
DEEPEP_TABLE_GPUS = {"gb200": 4, "gb300": 4}
#: the exchange an engine runs for an EP group spanning attention-DP ranks when its launch sets none (what "auto"
#: prices, and what `dse deploy` launches for "auto": no flag): all-gather + reduce-scatter. vLLM's
#: `ParallelConfig.all2all_backend` defaults to "allgather_reducescatter" in every shipped release (0.14 / 0.24 /
#: 0.26; vllm/config/parallel.py, before it the VLLM_ALL2ALL_BACKEND default with 0.14's choice list); SGLang's
#: `ServerArgs.moe_a2a_backend` to "none" (0.5.10 / 0.5.14, python/sglang/srt/server_args.py), whose DP-attention
#: path gathers the ranks' tokens before the experts and scatters them after. An engine absent here keeps its rule
#: (TensorRT-LLM: `ALLGATHER_MOE_ENGINES` up to top-k, DeepEP's tables inside a node and NCCL's all-to-all beyond).
#: A shipped release whose default differs (vLLM's proposed GB200 / GB300 one-sided NVLink default, PR #54268) would
#: need the release here, as `dse deploy` launches its default for "auto"
MOE_A2A_AUTO = {"vllm": "allgather", "sglang": "allgather"}
#: values of the `moe_a2a` knob: how an MoE layer's EP group spanning attention-DP ranks exchanges its tokens.
#: "auto": what each engine launches without a flag (`MOE_A2A_AUTO`: vLLM and SGLang all-gather; TensorRT-LLM
#: all-gather + reduce-scatter for EP groups no larger than top-k, `ALLGATHER_MOE_ENGINES`, DeepEP's tables inside one
#: node and NCCL's all-to-all beyond; the experts as the engine's fused-MoE table measured them, over all the group's
#: tokens); "allgather": every rank gathers the
#: group's tokens and reduce-scatters the experts' outputs at any EP size (SGLang --moe-a2a-backend none, vLLM
#: --all2all-backend allgather_reducescatter, TensorRT-LLM TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled); "deepep": DeepEP's
#: dispatch / combine (SGLang --moe-a2a-backend deepep --deepep-mode auto, vLLM deepep_high_throughput /
#: deepep_low_latency), the experts priced on the tokens dispatched to them
MOE_A2A = ("auto", "allgather", "deepep")
#: the `moe_a2a` values other than "auto" each engine runs (`resolve.moe_a2a_invalid`; the shipped flag lists:
#: SGLang 0.5.10 / 0.5.14 --moe-a2a-backend {none, deepep, ...}, vLLM 0.14-0.26 --all2all-backend {...,
#: allgather_reducescatter, deepep_high_throughput, deepep_low_latency}). TensorRT-LLM's DeepEP all-to-all needs
#: moe_config.backend WIDEEP, which its shipped YAML list does not hold; its all-gather path is an environment
#: switch (TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled, read by the fused-MoE modules' select_alltoall_method_type)
MOE_A2A_ENGINES = {"vllm": ("allgather", "deepep"), "sglang": ("allgather", "deepep"), "trtllm": ("allgather",)}
#: tokens per rank up to which an MoE layer's all-to-alls run DeepEP's low-latency kernels (SGLang's default
#: dispatch buffer, num_max_dispatch_tokens_per_rank = 128: decode batches); beyond it the normal kernels (prefill)
DEEPEP_LL_MAX_TOKENS = 128.0


def ranks_beyond(tab: Any, n: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ms, reach in tokens of a forward) of collective table `tab` (GPUs, message elements) over `n` GPUs of one
    scale-up domain (per row) at `x` message elements (per row x M_GRID). Up to the largest group the table measured
    (`top` GPUs) the cell itself; beyond it, inside the domain, the largest group's time scaled by each GPU's
    traffic, (n - 1) / n over (top - 1) / top: a ring all-reduce moves 2 (n - 1) / n of the message per GPU (NCCL's
    bus-bandwidth relation), an all-to-all sends (n - 1) / n of each rank's tokens off its GPU, each over the GPU's
    own NVLink ports (GB200 / GB300: the tables stop at one 4-GPU tray of the 72-GPU domain). Not extrapolated
    along the rank axis, which would grow it without bound."""
    top = float(tab.axes[0][-1])
    n_in = np.minimum(n, top)
    traffic = np.maximum(n - 1.0, 1.0) / np.maximum(n, 1.0) * top / max(top - 1.0, 1.0)
    t = tab(n_in[:, None], x) * np.where(n > top, traffic, 1.0)[:, None]
    return t, _m_reach(x, tab.reach(1, n_in))


#: engines whose attention-DP MoE all-gather + reduce-scatter runs over the DP group (the attn_dp ranks that share a
#: TP rank: each TP rank already holds its DP rank's tokens), not over all tp x attn_dp GPUs: vLLM's
#: `AgRsAll2AllManager` (vllm/distributed/device_communicators/all2all.py) all_gatherv's the hidden states and
#: reduce_scatterv's the experts' outputs over `get_dp_group()`. SGLang's DP attention gathers over its whole
#: --tp-size group (the model's tp x attn_dp); TensorRT-LLM's attention DP runs tp 1 (`resolve.layout_invalid`)
DP_GROUP_GATHER_ENGINES = ("vllm",)


def _gather_scatter(prof: Any, nccl_ar: Any, tp: np.ndarray, attn_dp: np.ndarray, domain: np.ndarray,
                    x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """An attention-DP MoE layer's all-gather of `x` gathered message elements (per row x M_GRID: every busy
    rank's tokens, what NCCL's all-gather and reduce-scatter tables are keyed by: the gathered buffer, nccl-tests'
    convention, so that each moves about half an all-reduce's bytes of the same message) plus the reduce-scatter
    of the experts' outputs back: (ms, reach in tokens, the group's GPUs inside one scale-up domain, the largest
    group the tables measured). The group: `DP_GROUP_GATHER_ENGINES`' DP group (attn_dp ranks, tp apart, so
    domain / tp of them share a domain), else all tp x attn_dp GPUs. A profile without the two tables prices the
    pair as one all-reduce of the message (`ranks_beyond` on `nccl_ar`). A group with one rank inside a domain
    has no in-domain stage (core prices the scale-out one)."""
    ag, rs = prof.table("comm.nccl_all_gather"), prof.table("comm.nccl_reduce_scatter")
    if prof.engine in DP_GROUP_GATHER_ENGINES:
        n_g = np.minimum(attn_dp, np.maximum(np.floor(domain / np.maximum(tp, 1.0)), 1.0))
    else:
        n_g = np.minimum(tp * attn_dp, domain)
    if ag is None or rs is None:
        t, r = ranks_beyond(nccl_ar, n_g, x)
        return t, r, n_g, float(nccl_ar.axes[0][-1])
    t_ag, r_ag = ranks_beyond(ag, n_g, x)
    t_rs, r_rs = ranks_beyond(rs, n_g, x)
    alone = (n_g < 2.0)[:, None]
    return (np.where(alone, 0.0, t_ag + t_rs), np.where(n_g < 2.0, np.inf, np.minimum(r_ag, r_rs)), n_g,
            float(min(ag.axes[0][-1], rs.axes[0][-1])))


def _keyed_hidden(prof: Any, name: str, h: np.ndarray, topk: np.ndarray,
                  ne: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (1..K) of keyed table `name` (keys: hidden, top-k, experts) bracketing each configuration's hidden size
    among the shapes measured with its top-k and experts, and the upper row's weight in log(hidden); rows 0 where
    no measured shape brackets it (an exact shape: both rows the same, weight 0)."""
    keys = prof.keys.get(name)
    z = np.zeros(len(h), dtype=np.intp)
    if keys is None or prof.table(name) is None:
        return z, z, np.zeros(len(h))
    kh = keys[None, :, 0]
    same = np.isclose(keys[None, :, 1], topk[:, None]) & np.isclose(keys[None, :, 2], ne[:, None])
    below = same & (kh <= h[:, None] * (1 + 1e-9))
    above = same & (kh >= h[:, None] * (1 - 1e-9))
    lo = np.where(below.any(axis=1), np.argmax(np.where(below, kh, -np.inf), axis=1) + 1, 0)
    hi = np.where(above.any(axis=1), np.argmin(np.where(above, kh, np.inf), axis=1) + 1, 0)
    ok = (lo > 0) & (hi > 0)
    h_lo, h_hi = keys[np.maximum(lo, 1) - 1, 0], keys[np.maximum(hi, 1) - 1, 0]
    w = np.where(ok & (h_hi > h_lo), np.log(np.maximum(h, 1.0) / h_lo) / np.log(np.maximum(h_hi / h_lo, 1.0 + 1e-9)),
                 0.0)
    return np.where(ok, lo, 0), np.where(ok, hi, 0), w


def _dividing_neighbours(n_experts: np.ndarray, ep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the largest divisor of ``n_experts`` not above ``ep`` and the smallest not below it (both ``ep``
    where it divides them): the measured EP sizes nearest to one that does not."""
    lo, hi = ep.astype(float).copy(), ep.astype(float).copy()
    pairs = np.stack([n_experts, ep], axis=1).astype(np.int64)
    for n, e in np.unique(pairs, axis=0):
        if n <= 0 or e <= 0:
            continue
        d = np.flatnonzero(n % np.arange(1, n + 1) == 0) + 1
        sel = (pairs[:, 0] == n) & (pairs[:, 1] == e)
        lo[sel], hi[sel] = d[d <= e].max(), d[d >= e].min() if (d >= e).any() else n
    return lo, hi


def _deepep(prof: Any, tpr: np.ndarray, ep: np.ndarray, h: np.ndarray, topk: np.ndarray, ne: np.ndarray,
            domain: Any, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds of one MoE layer's dispatch + combine from the profile's DeepEP tables at `tpr` tokens per rank
    (k, len(M_GRID)), and the rows they price: EP across attention-DP ranks (`wide`) within one node
    (EP <= DEEPEP_NODE_GPUS GPUs, inside the scale-up domain) whose (top-k, experts) was measured at hiddens
    bracketing the model's (log-interpolated between them). Low-latency kernels up to DEEPEP_LL_MAX_TOKENS tokens
    per rank (decode), normal kernels beyond (prefill). The tables were measured with EP over the G GPUs of one node
    (8; `DEEPEP_TABLE_GPUS`: 4 on an NVL72 tray); another EP group sends (ep - 1) / ep of the routed tokens off
    the GPU instead of (G - 1) / G, over the same per-GPU NVLink ports: the tokens are scaled by that. Third:
    per row, the forward's tokens (on tpr's M grid) up to which the tables' cells read were measured (`_m_reach`)."""
    rows = wide & (ep <= np.minimum(DEEPEP_NODE_GPUS, domain))
    out = np.zeros(tpr.shape)
    reach = np.full(len(tpr), np.inf)
    if not rows.any():
        return out, rows, reach
    parts = []
    for kind in ("ll", "normal"):
        for op in ("dispatch", "combine"):
            name = f"comm.deepep_{kind}_{op}"
            lo, hi, w = _keyed_hidden(prof, name, h, topk, ne)
            rows &= lo > 0
            parts.append((kind, name, lo, hi, w))
    if not rows.any():
        return out, rows, reach
    g = float(DEEPEP_TABLE_GPUS.get(prof.system, DEEPEP_NODE_GPUS))
    n_eff = tpr * ((np.maximum(ep, 2.0) - 1.0) / np.maximum(ep, 2.0) * g / (g - 1.0))[:, None]
    ll = tpr <= DEEPEP_LL_MAX_TOKENS
    for kind, name, lo, hi, w in parts:
        tab = prof.table(name)
        t_lo = np.log(tab(np.maximum(lo, 1).astype(float)[:, None], n_eff))
        t_hi = np.log(tab(np.maximum(hi, 1).astype(float)[:, None], n_eff))
        t = np.exp(t_lo + w[:, None] * (t_hi - t_lo)) * 1e-3
        out = out + np.where(ll if kind == "ll" else ~ll, t, 0.0)
        r = np.minimum(tab.reach(1, np.maximum(lo, 1).astype(float)), tab.reach(1, np.maximum(hi, 1).astype(float)))
        reach = np.minimum(reach, _m_reach(n_eff, r, used=ll if kind == "ll" else ~ll))
    return out, rows, reach


#: the parts of a measured token curve (`build_curves`' ``collect``): dense GEMMs (attention, linear-attention and
#: latent projections, dense MLPs, shared experts), routed experts (fused-MoE table or grouped GEMMs), TP
#: all-reduces, expert-parallel token exchange (all-to-all, DeepEP, all-gather + reduce-scatter), DeepSeek-V4's mHC
TOK_PARTS = ("gemm", "moe", "comm_tp", "comm_ep", "elementwise")

#: `_profile_rows`' curves (tok, head, ctx, gen) of its rows; ctx / gen None: the profile has no attention table
_RowCurves = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def _profile_rows(prof: Any, gt: Any, kv: str, m: dict[str, np.ndarray], tp: np.ndarray, ep: np.ndarray,
                  attn_dp: np.ndarray, eff: Any, wo: float = 1.0, moe_formats: tuple[str, ...] = (),
                  attn_gt: Any = None, attn16: np.ndarray | None = None,
                  moe_dp: np.ndarray | None = None,
                  dram: tuple[float, float, float] = (np.inf, 2.0, 2.0), parts: dict[str, Any] | None = None,
                  fused_gt: Any = None, rate: float = 1.0,
                  cap: tuple[Any, float, float] | None = None,
                  experts: tuple[Any, float, float, float] | None = None
                  ) -> tuple[_RowCurves, np.ndarray, np.ndarray, np.ndarray]:
    """Measured curves (tok, head, ctx, gen) for rows sharing one profile and GEMM table (ctx / gen None where the
    profile has no attention table); whether every lookup was inside the measured ranges of the shape axes (GEMM
    N and K, heads, ranks, measured expert shapes); the rows whose linear-attention recurrence a kernel table priced
    (Gated DeltaNet's, Kimi Delta Attention's; `core` drops their closed form); and per row the reach of its
    lookups along the size axes (`Curves.reach`' columns: tokens, logit rows, lengths per B_GRID batch), where the
    tables' measured cells end (`profiles.grid.Table.reach`). `attn_gt`: the GEMM table the attention projections of rows `attn16` run on instead (unquantized:
    no weight-only scaling). `dram`: (the GPU's memory bandwidth in bytes/s, bytes per weight of the checkpoint's
    GEMMs, bytes per weight of `gt`'s) for the weight-streaming floor: in a forward every layer's weights stream
    from device memory once (a model's weights are far larger than the L2 cache), so no GEMM or fused-MoE layer
    takes less than its weight bytes over the datasheet bandwidth. The kernel tables time one GEMM in a loop, which
    keeps weights that fit the L2 cache there; on GDDR parts with large L2s (L40S, RTX PRO 6000) many small-batch
    cells run faster than their memory allows. `parts` (None on the hot path): a dict that receives the curves'
    parts as shares of each cell (`build_curves`' ``collect``: "tok", "ctx_lin", "gen_lin"). `fused_gt`: `gt` less
    the activation quantize kernel, for the GEMMs whose input the engine quantizes in the kernel before
    (`FUSED_FP4_GEMM`; None: every GEMM reads `gt`). `rate`: the compute part of `gt`'s GEMMs in the checkpoint's
    format (beyond the GEMM at M = 1) over the table's (`borrowed_gemm`: int8 on the bf16 table; a weight-only
    format on its activation's table: `weight_only_rate`). `cap`: (table, weight-streaming scale, compute scale),
    the bound `gt`'s GEMMs in the checkpoint's format may not exceed where `gt` is a quantized kernel's own table
    (`QUANT_TABLE_CAP`): that table's GEMM at M = 1 times the scale plus the compute beyond it times the other.
    `experts`: (table, weight-streaming scale, compute scale, bytes per weight) of the routed experts' grouped
    GEMMs where they differ from the other GEMMs' format (`expert_gemm`: MXFP4 experts beside unquantized layers,
    or computing with other activations, `moe_act`); None: `gt` in the checkpoint's format, as the others."""
    k = len(tp)
    Mg = M_GRID[None, :]
    col = (lambda x: x[:, None])
    inside = np.ones(k, dtype=bool)
    tok_parts: dict[str, Any] = {name: 0.0 for name in TOK_PARTS}
    lin_parts: list[Any] = [0.0, 0.0]  # the linear-attention layers' kernels in ctx, gen (s)

    def put(name: str, x: Any) -> Any:
        """`x` (s on the M grid, a term of the token curve), recorded as component `name` where `parts` is asked."""
        if parts is not None:
            tok_parts[name] = tok_parts[name] + x
        return x
    # the forward's tokens up to which the token curve's lookups stay on measured cells (`_m_reach`): "tok" for
    # every lookup, "routed" for the routed experts' GEMMs (they count where no fused-MoE table prices the layer)
    acc = {"tok": np.full(k, np.inf), "routed": np.full(k, np.inf)}

    def bound(into: str, rows: Any, r: np.ndarray) -> None:
        """Lower the `acc[into]` reach of `rows` to `r` (tokens of a forward)."""
        acc[into] = np.where(np.broadcast_to(np.asarray(rows, dtype=bool), (k,)), np.minimum(acc[into], r),
                             acc[into])
    g_scale = float(eff["profile_gemm_scale"].get(prof.engine, 1.0))
    # the engine's fused MoE layer in the engine vs the table's isolated measurement (profile_moe_scale)
    moe_scale = float(eff.params.get("profile_moe_scale", {}).get(prof.engine, 1.0))
    # isolated kernel timings carry a launch floor that CUDA graphs and kernel overlap hide inside the engine
    floor_ms = float(eff["profile_launch_us"].get(prof.engine, 0.0)) * 1e-3

    def hide(t: np.ndarray) -> np.ndarray:
        return np.maximum(t - floor_ms, 0.25 * t)

    bw, w_bytes, gt_bytes = dram

    def gemm(M: np.ndarray, nn: np.ndarray, kk: np.ndarray, table: Any = gt, check: Any = True,
             quant: bool = True, into: str | None = "tok", rows: Any = None,
             fmt: tuple[Any, float, float, float] | None = None) -> np.ndarray:
        """GEMM time (s); `check`: the rows whose result is used (a placeholder shape of a layer a model does not
        have must not mark the row extrapolated); `quant`: the weights are in the checkpoint's format; `into`: the
        reach (`acc`) the lookup's M bounds for rows `rows` (None: `check`'s), None: none; `fmt`: the weights'
        format on `table` (`experts`' tuple; None: the checkpoint's, on `gt`)."""
        nonlocal inside
        nn = np.maximum(nn, 1.0)
        kk = np.maximum(kk, 1.0)
        if np.any(check):
            inside &= ~np.asarray(check) | table.inside(1.0, nn[:, 0], kk[:, 0])
        use = check if rows is None else rows
        if into is not None and np.any(use):
            bound(into, use, _m_reach(M, table.reach(0, nn, kk)))
        t = table(M, nn, kk)
        if fmt is not None:  # the routed experts' own format (`experts`)
            _, f_wo, f_rate, f_bytes = fmt
            if f_wo < 1.0 or f_rate != 1.0:
                t1 = table(1.0, nn, kk)
                t = f_wo * t1 + f_rate * np.maximum(t - t1, 0.0)
            return np.maximum(hide(t) * g_scale, nn * kk * (f_bytes / bw * 1e3)) * 1e-3
        own = table is gt or (fused_gt is not None and table is fused_gt)  # the checkpoint's format
        if (wo < 1.0 or rate != 1.0) and own and quant:  # fewer weight bytes: the weight-streaming time (GEMM
            t1 = table(1.0, nn, kk)  # at M = 1) shrinks; the compute beyond it at `rate`
            t = wo * t1 + rate * np.maximum(t - t1, 0.0)
        if cap is not None and own and quant:  # a quantized table above its activation's at packed bytes
            ct, c_wo, c_rate = cap
            c1 = ct(1.0, nn, kk)
            t = np.minimum(t, c_wo * c1 + c_rate * np.maximum(ct(M, nn, kk) - c1, 0.0))
        # the weights stream from device memory in a forward (the weight-streaming floor); the bf16 table
        # (attention projections kept 16-bit, the LM head) holds 2-byte weights
        b = (w_bytes if quant else gt_bytes) if own else 2.0
        return np.maximum(hide(t) * g_scale, nn * kk * (b / bw * 1e3)) * 1e-3

    def grouped(M: np.ndarray, n_total: np.ndarray, kk: np.ndarray, table: Any = gt,
                quant: bool = True, rows: Any = True, into: str = "tok",
                fmt: tuple[Any, float, float, float] | None = None) -> np.ndarray:
        """A GEMM whose N exceeds the measured range, as whole chunks of N_CHUNK columns (proportional); its M
        bounds the `into` reach of `rows`; `fmt`: as `gemm`'s."""
        top = float(table.axes[1][-1])
        nc = np.clip(n_total, 1.0, top)
        return n_total / nc * gemm(M, nc, kk, table, check=False, quant=quant, into=into, rows=rows, fmt=fmt)

    # the GEMM input the engine quantizes in the kernel before (`FUSED_FP4_GEMM`): in the fused all-reduce + norm
    # where the layer has a TP group (tp > 1) and a hidden size above 4,096 (TensorRT-LLM's LlamaDecoderLayer turns
    # the fusion off below), in the attention kernel for the output projection
    tp_fused = (tp > 1) & (m["hidden"] > FUSED_NORM_MIN_HIDDEN)

    def pre_quantized(M: np.ndarray, nn: np.ndarray, kk: np.ndarray, table: Any, check: Any, quant: bool,
                      where: Any = True) -> np.ndarray:
        """`gemm` of an input quantized before it (on `fused_gt` for the rows `where`) where `table` is `gt`."""
        if fused_gt is None or table is not gt:
            return gemm(M, nn, kk, table, check, quant)
        where = np.broadcast_to(np.asarray(where, dtype=bool), (k,))
        t = gemm(M, nn, kk, fused_gt, check & where, quant)
        return t if where.all() else np.where(col(where), t, gemm(M, nn, kk, table, check & ~where, quant))

    L, h = m["n_layers"], m["hidden"]
    nh, nkv, hd = m["n_heads"], m["n_kv_heads"], m["head_dim"]
    mla = m["kv_lora_rank"] > 0
    # DeepSeek-V4: its attention modules are measured whole (projections included, `_v4_attention`)
    v4 = m.get("v4", np.zeros(k)) > 0
    n_lin = m.get("n_lin", np.zeros(k))
    n_ffn_only = m.get("n_ffn_only", np.zeros(k))
    L_attn = L - n_lin - n_ffn_only
    kvh = np.ceil(nkv / tp)
    # window layers with KV heads of their own (0: the full layers'), GQA values narrower than the keys (0: hd)
    swa_kv = m.get("swa_kv_heads", np.zeros(k))
    swa_kvh = np.ceil(np.where(swa_kv > 0, swa_kv, nkv) / tp)
    gqa_v = m.get("gqa_v_head", np.zeros(k))
    vd = np.where(gqa_v > 0, gqa_v, hd)
    n_win_l = np.minimum(m.get("n_win", np.zeros(k)), L_attn)
    # window layers whose heads have a width of their own (queries, keys, values; 0: the full layers')
    swa_head = m.get("swa_head", np.zeros(k))
    own_hd = (swa_head > 0) & ~mla & (n_win_l > 0)
    swa_hd = np.where(own_hd, swa_head, hd)
    swa_vd = np.where(own_hd, swa_head, vd)
    # ... and their attention kernels' time against a full layer's at the same shape (1.0 where none)
    win_d = np.where(own_hd, (swa_hd + swa_vd) / np.maximum(hd + vd, 1.0), 1.0)[:, None, None]
    q_dim = nh * hd
    # attention projections (GQA: fused QKV and O; MLA: q down/up, kv down, kv up, O), on `table` for rows `use`
    gate = m.get("attn_gate", np.zeros(k))

    def projections(table: Any, quant: bool, use: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per-layer attention projections, all linear-attention layers' projections, and all window layers'
        difference to the full layers' QKV projection where they have KV heads of their own (None: no row does)
        (s)."""
        gqa = ~mla & ~v4 & (L_attn > 0) & use
        qkv_n = q_dim * (1.0 + gate) / tp + kvh * (hd + vd)  # fused QKV: keys of hd, values of vd per KV head
        qkv = (pre_quantized(Mg, col(qkv_n), col(h), table, gqa, quant, tp_fused)
               + pre_quantized(Mg, col(h), col(nh * vd / tp), table, gqa, quant))
        own = gqa & ((swa_kvh != kvh) | own_hd) & (n_win_l > 0)
        swa = None
        if own.any():
            qkv_w = nh * swa_hd * (1.0 + gate) / tp + swa_kvh * (swa_hd + swa_vd)
            # the output projection differs only where the window layers' heads have a width of their own
            ow = own & own_hd
            o_diff = (np.where(col(ow), gemm(Mg, col(h), col(nh * swa_vd / tp), table, ow, quant)
                               - gemm(Mg, col(h), col(nh * vd / tp), table, ow, quant), 0.0)
                      if ow.any() else 0.0)
            swa = np.where(col(own), col(n_win_l) * (gemm(Mg, col(qkv_w), col(h), table, own, quant)
                                                     - gemm(Mg, col(qkv_n), col(h), table, own, quant) + o_diff),
                           0.0)
        if (mla & use).any():
            qk_head = m["qk_nope"] + m["qk_rope"]
            ql = np.maximum(m["q_lora_rank"], 1.0)
            mq, lr = mla & use, m["q_lora_rank"] > 0
            q = np.where(col(lr),
                         gemm(Mg, col(ql), col(h), table, mq & lr, quant)
                         + gemm(Mg, col(nh * qk_head / tp), col(ql), table, mq & lr, quant),
                         gemm(Mg, col(nh * qk_head / tp), col(h), table, mq & ~lr, quant))
            mla_t = (q + gemm(Mg, col(m["kv_lora_rank"] + m["qk_rope"]), col(h), table, mq, quant)
                     + gemm(Mg, col(nh * (m["qk_nope"] + m["v_head"]) / tp),
                            col(np.maximum(m["kv_lora_rank"], 1.0)), table, mq, quant)
                     + gemm(Mg, col(h), col(nh * m["v_head"] / tp), table, mq, quant))
            mg_ = mq & (gate > 0)  # Kimi-K3's MLA output gate: one more hidden -> heads x v_head GEMM
            if mg_.any():
                mla_t = np.where(col(mg_), mla_t + gemm(Mg, col(nh * m["v_head"] / tp), col(h), table, mg_, quant),
                                 mla_t)
            qkv = np.where(col(mla), mla_t, qkv)
        lin = np.zeros_like(qkv)
        if (n_lin > 0).any():  # linear-attention layers: their projections as one GEMM of the same bytes and FLOPs
            lin_n = m["lin_params"] / np.maximum(tp * h, 1.0)
            lin = np.where(col(n_lin > 0), col(n_lin) * grouped(Mg, col(np.maximum(lin_n, 1.0)), col(h), table,
                                                                quant, (n_lin > 0) & use), 0.0)
        return qkv, lin, swa
    a16 = np.zeros(k, dtype=bool) if attn_gt is None or attn16 is None else attn16
    zero = np.zeros((k, len(M_GRID)))
    # rows whose checkpoint's config stores some of those layers in its format or FP8 (`resolve.attn_weight_params`)
    said = a16 & (m.get("aq_said", np.zeros(k)) > 0)
    fmt = ~a16 | (said & ((m.get("aq_fmt", np.zeros(k)) > 0) | (m.get("lq_fmt", np.zeros(k)) > 0)))
    qkv, lin, swa = projections(gt, True, fmt) if fmt.any() else (zero, zero, None)
    if a16.any():
        qkv16, lin16, swa16 = projections(attn_gt, False, a16)
        if said.any():  # each layer kind's shares: its format's table, FP8's (the 16-bit one where unmeasured), 16 bits
            # (ModelOpt's FP8 layers: per-tensor, a static activation scale, as an FP8 checkpoint's own GEMMs read)
            t8 = _static_fp8_table(prof)
            qkv8, lin8, _ = projections(t8, True, said) if t8 is not None else (qkv16, lin16, None)

            def mix(f: np.ndarray, s8: np.ndarray, x: np.ndarray, x8: np.ndarray, x16: np.ndarray) -> np.ndarray:
                f, s8 = col(f), col(s8)
                return (np.where(f > 0, f * x, 0.0) + np.where(s8 > 0, s8 * x8, 0.0)
                        + np.where(f + s8 < 1.0, (1.0 - f - s8) * x16, 0.0))
            qkv16 = np.where(col(said), mix(m["aq_fmt"], m["aq8"], qkv, qkv8, qkv16), qkv16)
            lin16 = np.where(col(said), mix(m["lq_fmt"], m["lq8"], lin, lin8, lin16), lin16)
        qkv, lin = np.where(col(a16), qkv16, qkv), np.where(col(a16), lin16, lin)
        if swa16 is not None or swa is not None:
            swa = np.where(col(a16), zero if swa16 is None else swa16, zero if swa is None else swa)
    tok = put("gemm", col(L_attn) * np.where(col(v4), 0.0, qkv) + lin)
    if swa is not None:  # window layers with KV heads of their own
        tok = tok + put("gemm", swa)
    n_idx = m.get("n_idx", np.zeros(k))
    msa = n_idx > 0  # MiniMax sparse attention (GQA): its layers, span and indexer
    if msa.any():
        # the indexer's projections on its layers: query heads sharded as the KV heads, one replicated key head,
        # one GEMM of their columns in the attention projections' format
        idx_n = col((np.ceil(m["idx_heads"] / tp) + 1.0) * m["idx_dim"])
        t_idx = gemm(Mg, idx_n, col(h), gt, msa & ~a16)
        if attn_gt is not None and (a16 & msa).any():
            t_idx = np.where(col(a16), gemm(Mg, idx_n, col(h), attn_gt, msa & a16, False), t_idx)
        tok = tok + put("gemm", np.where(col(msa), col(n_idx) * t_idx, 0.0))
    if v4.any():  # mHC: mixing the residual streams before and after each block, one layer's two sites a cell
        pre, post = prof.table("mhc.pre"), prof.table("mhc.post")
        inside &= ~v4 | pre.inside(1.0, h)
        bound("tok", v4, np.minimum(_m_reach(Mg, pre.reach(0, h)), _m_reach(Mg, post.reach(0, h))))
        tok = tok + put("elementwise", np.where(col(v4), col(L) * hide(pre(Mg, col(h)) + post(Mg, col(h))) * 1e-3,
                                                0.0))
    # MLPs: dense layers, shared experts and routed experts (grouped GEMM ~ E GEMMs of the tokens per expert)
    n_mat = np.where(m["gated"] > 0, 2.0, 1.0)
    n_moe = m["n_moe_layers"]
    n_dense = L - n_moe
    ffn = np.maximum(m["ffn"], 1.0)
    dense = (n_dense > 0) & (m["ffn"] > 0)  # ffn 0: mixer layers without an MLP block (Nemotron-3)

    def kept(share: np.ndarray, on: np.ndarray, n_in: np.ndarray, n_out: np.ndarray, fused: bool) -> np.ndarray:
        """An MLP's up (gate + up: `n_in` columns) and down (`n_out` inputs) GEMMs (s) of rows `on`: the `share`
        of their layers the checkpoint keeps in 16 bits on `attn_gt` (unquantized), the rest in its format (the up
        GEMM's input quantized before it where `fused`, `pre_quantized`)."""
        f = share if attn_gt is not None else np.zeros(k)
        q_on, h_on = on & (f < 1.0), on & (f > 0.0)
        t = np.zeros((k, len(M_GRID)))
        if q_on.any():
            up = (pre_quantized(Mg, col(n_in), col(h), gt, q_on, True, tp_fused) if fused
                  else gemm(Mg, col(n_in), col(h), check=q_on))
            t = up + gemm(Mg, col(h), col(n_out), check=q_on)
        if h_on.any():
            t16 = gemm(Mg, col(n_in), col(h), attn_gt, h_on, False) + gemm(Mg, col(h), col(n_out), attn_gt, h_on,
                                                                            False)
            t = col(1.0 - f) * t + col(f) * np.where(col(h_on), t16, 0.0)
        return t
    zeros = np.zeros(k)
    tok = tok + put("gemm", col(np.where(dense, n_dense, 0.0)) * kept(m.get("mlp16", zeros), dense, n_mat * ffn / tp,
                                                                       ffn / tp, True))
    if (n_moe > 0).any():
        ne, topk = np.maximum(m["n_experts"], 1.0), np.maximum(m["top_k"], 1.0)
        # the routed experts' width: a latent MoE's latent, with its hidden -> latent -> hidden projections
        # (replicated on every TP rank) around them; the router and the shared expert read the hidden state
        lat = m.get("moe_latent", np.zeros(k))
        hx = expert_width(h, lat)
        latent = lat > 0
        proj = np.where(col(latent), gemm(Mg, col(np.maximum(lat, 1.0)), col(h), check=latent)
                        + gemm(Mg, col(h), col(np.maximum(lat, 1.0)), check=latent), 0.0)
        sh = np.maximum(m["shared_ffn"], 1.0)
        shared = np.where(col(m["shared_ffn"] > 0),
                          kept(m.get("sh16", zeros), m["shared_ffn"] > 0, n_mat * sh / tp, sh / tp, False), 0.0)
        # experts: EP ranks split the experts, the rest of the TP group (x attention DP) splits each expert
        ep_world = ep
        etp = np.maximum(tp * attn_dp / ep_world, 1.0)
        # the tokens that meet at the experts: every attention-DP rank's batch (`moe_dp`: only that many ranks')
        busy = moe_ranks(attn_dp, moe_dp)
        # the expert copies the EP ranks hold (resolve.expert_slots: redundant ones where ep does not divide the
        # experts), routing balanced over them; the tables below are keyed by the model's own expert count
        sl = np.maximum(m.get("expert_slots", ne), ne)
        E = col(sl) * (1.0 - np.power(1.0 - col(topk / sl), Mg * col(busy)))
        E_gpu = E / col(ep_world)
        m_e = Mg * col(busy) * col(topk) / np.maximum(E, 1e-9)
        moe_ffn = np.maximum(m["moe_ffn"], 1.0)
        # one grouped GEMM over E_gpu experts moves the bytes and does the FLOPs of one GEMM whose N is the
        # experts' N side by side, at the tokens-per-expert M (one launch, not E_gpu)
        # (on the experts' own table and format where they differ from the other GEMMs', `experts`)
        et = gt if experts is None else experts[0]
        routed = (grouped(m_e, E_gpu * col(n_mat * moe_ffn / etp), col(hx), et, rows=n_moe > 0, into="routed",
                          fmt=experts)
                  + grouped(m_e, E_gpu * col(hx), col(moe_ffn / etp), et, rows=n_moe > 0, into="routed",
                            fmt=experts))
        routed = routed / float(eff["profile_moe_eff"])
        # the engine's fused MoE layer measured at this exact shape (routing skew, permutation, per-expert tiles)
        # per format in order (the checkpoint's format decides the kernel): the exact split, else the same GPUs
        # per expert group split the other way (expert TP t and EP t hold the same bytes per GPU and measure
        # within a few %)
        n_split = etp * ep_world
        one = np.ones(k)
        no = np.zeros(k, dtype=bool)
        own = [(np.stack([hx, moe_ffn, topk, ne, a, n_split / a], axis=1), one, one, no) for a in (etp, one, n_split)]
        # moe_a2a "deepep" (`MOE_A2A` code 2): a rank's experts see only the tokens dispatched to them, not the
        # group's every token slot the engines' fused-MoE tables time (vLLM's and SGLang's collectors run the layer
        # over all M x top-k slots with an expert map, its routing, activation and reduction on each). Such a rank
        # does 1 / ep of the layer one GPU holding all the experts would do over the group's tokens, each expert
        # loaded as there: the table at a smaller EP size e' (1 first, the least all-token work, then 2, 4, ...),
        # rho = (S / ep) / (E / e') of its layer without the neighbour rule's one-token floor (below): no all-token
        # work stays on the rank (the layer's launch is then shared too, a few µs under-priced); the experts' weight
        # streaming floor `t_mem` still holds. Ranks taken as evenly loaded (the table's routing skew is within one
        # GPU's experts). Such rows say extrapolated (read at an EP size not their own)
        dep = m.get("moe_a2a", np.zeros(k)) == MOE_A2A.index("deepep")
        if dep.any():
            off = np.where(dep, 0.0, 1.0)  # their own EP size's cells are not what they run
            own = [(np.column_stack([s[:, :-1], s[:, -1] * off]), ts, r, sh) for s, ts, r, sh in own]
        # else a neighbouring EP size e' the table has: an EP size that does not divide the experts (redundant
        # slots, S in all) at the nearest dividing sizes below and above; a dividing size the table lacks (H100's
        # TensorRT-LLM MXFP4 table holds gpt-oss-120b's 128 experts from EP 2 up, not EP 1) at twice and half of
        # it. A rank here holds rho = (S / ep) / (E / e') times the experts of a rank there, each expert loaded as
        # there at E / S of the tokens: rho x the layer's time less (rho - 1) x its one-token time (one launch
        # per layer, not rho). Scored on the shipped tables' cells at EP e and 2e (docs/profiles.md, seventeenth
        # round): within ~10 % up to 256 tokens, where scaling the tokens alone was 17-45 % off. Never the
        # balanced closed form beside measured neighbours; such a row says extrapolated
        uneven = sl > ne
        near = []
        if uneven.any():
            for ep2 in _dividing_neighbours(ne, ep_world):
                near.append((ep2, uneven))
        for f2 in (2.0, 0.5):
            ep2 = ep_world * f2
            near.append((ep2, ~uneven & (ep2 >= 1.0) & (np.mod(ne, np.maximum(ep2, 1.0)) == 0)))
        near_all = list(near)   # the neighbours of every row (DeepEP rows read their runner there, below)
        if dep.any():
            near = [(ep2, ok & ~dep) for ep2, ok in near]
            e2 = 1.0
            while e2 < float(np.max(np.where(dep, ep_world, 0.0))):
                near.append((np.full(k, e2), dep & (e2 < ep_world) & (np.mod(ne, e2) == 0)))
                e2 *= 2.0
        # a load-balanced deployment (EPLB) reads each candidate's balanced-routing cells before its skewed ones
        # (the checkpoint's format still decides the kernel: a format without balanced cells is read skewed before
        # the next format is tried). TensorRT-LLM's balanced cells, where its wide-EP table timed its balancer at
        # the shape and EP size, are the skewed layer x that balancer's gain (`profiles.build.balancer_gain`)
        bal = m.get("eplb", np.zeros(k)) > 0
        rest = [(f, c) for f in moe_formats for c in own] + [
            (f, (np.stack([hx, moe_ffn, topk, ne, etp, np.where(ok, ep2, 0.0)], axis=1), ne / sl,
                 (sl / ep_world) / (ne / np.maximum(ep2, 1.0)), dep))
            for ep2, ok in near for f in moe_formats]

        # the experts' weights the batch routes to stream from device memory (the weight-streaming floor; the
        # experts touched under balanced routing), whichever table prices the layer
        t_mem = E_gpu * col((n_mat + 1.0) * moe_ffn / etp * hx * ((w_bytes if experts is None else experts[3]) / bw))

        def read(fams: tuple[str, ...], rows: np.ndarray, out: np.ndarray, cands: list | None = None,
                 used: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """The routed experts' time (s, on the M grid) of `rows` from the first table of `fams` per candidate
            (`cands`, default `rest`: (format, (shapes, token scale, rho, share))) that measured its shape (`out`
            where none did), the rows some table priced, and those read at a neighbour's EP size (not measured at
            this one); `used`: the grid points whose reach the lookups bound (None: all)."""
            priced, near_ep = np.zeros(k, dtype=bool), np.zeros(k, dtype=bool)
            done = (n_moe <= 0) | ~rows
            for fmt, (shapes, tok_scale, rho, share) in rest if cands is None else cands:
                for fam in fams:
                    tab = prof.table(f"{fam}.{fmt}")
                    if tab is None or done.all():
                        continue
                    hit = prof.shape_index(f"{fam}.{fmt}", shapes) * ~done * (bal if fam.endswith("_bal") else True)
                    if hit.any():
                        scale = moe_scale if fmt in MOE_SCALE_FORMATS else 1.0
                        r = col(np.maximum(hit, 1).astype(float))
                        # beyond the largest token count measured, in proportion to the tokens (the layer is
                        # compute-bound there, and engines chunk a larger batch: vLLM's fused MoE runs 32k-token
                        # chunks)
                        t = tab.proportional_beyond(1, r, Mg * col(busy * tok_scale))
                        bound("tok", hit > 0, _m_reach(Mg * col(busy * tok_scale), tab.reach(1, r), used))
                        if np.any(rho != 1.0):
                            t1 = tab.proportional_beyond(1, r, np.ones_like(Mg))
                            t = np.where(col(share), col(rho) * t, np.maximum(col(rho) * t - col(rho - 1.0) * t1,
                                                                             np.where(col(rho) >= 1.0, t, 0.0)))
                        out = np.where(col(hit > 0), np.maximum(hide(t) * 1e-3 * g_scale * scale, t_mem), out)
                        done |= hit > 0
                        priced |= hit > 0
                        near_ep |= (hit > 0) & ((tok_scale != 1.0) | (rho != 1.0))
            return out, priced, near_ep

        # a DeepEP deployment on an engine whose profile holds its DeepEP MoE runner (SGLang: `moe_deepep_*`,
        # profiles.build.deepep_moe_tables) reads that runner at its own EP size: the busiest rank's experts on
        # the tokens dispatched to them, the low-latency layout up to DEEPEP_LL_MAX_TOKENS tokens per rank (as the
        # dispatch, `_deepep`), the normal one beyond; the checkpoint's own format only (the runner's kernels are
        # block-FP8 DeepGEMM), no expert TP. An EP size the runner lacks is read at a neighbour's (`near_all`,
        # extrapolated): rho x its layer, as a DeepEP row's fused-table reading above (no all-token work and no
        # one-token time to keep: the runner's smallest cells already stream every local expert's weights)
        run = dep & (etp <= 1.0)
        run_done = np.zeros(k, dtype=bool)
        if run.any() and any(prof.table(f"moe_deepep_ll.{f}") is not None for f in moe_formats[:1]):
            every = np.ones(k, dtype=bool)
            at_ep = [(np.stack([hx, moe_ffn, topk, ne, one, ep_world], axis=1), one, one, no)] + [
                (np.stack([hx, moe_ffn, topk, ne, one, np.where(ok, ep2, 0.0)], axis=1), ne / sl,
                 (sl / ep_world) / (ne / np.maximum(ep2, 1.0)), every) for ep2, ok in near_all]
            cands = [(f, c) for f in moe_formats[:1] for c in at_ep]
            ll = Mg / col(tp) <= DEEPEP_LL_MAX_TOKENS
            before = acc["tok"].copy()
            got = [read((f"moe_deepep_{kd}_bal", f"moe_deepep_{kd}") if bal.any() else (f"moe_deepep_{kd}",),
                        run, routed, cands, used) for kd, used in (("ll", ll), ("normal", ~ll))]
            run_done = got[0][1] & got[1][1]
            # a row only one layout priced keeps the fused-table reading, and no reach of the runner's tables
            acc["tok"] = np.where(run_done, acc["tok"], before)
            run_routed = np.where(ll, got[0][0], got[1][0])
            run_near = got[0][2] | got[1][2]
        routed, priced0, near_ep = read(("moe_bal", "moe") if bal.any() else ("moe",), ~run_done, routed)
        if run_done.any():
            routed = np.where(col(run_done), run_routed, routed)
            priced0 |= run_done
            near_ep = np.where(run_done, run_near, near_ep)
        bound("tok", ~priced0, acc["routed"])  # the grouped GEMMs price the layer where no table did
        if bal.any():
            # a balancer places the experts, it does not route tokens to more of them: where the skewed routing's
            # cell is faster (few tokens touching fewer distinct experts than balanced routing does, L40S's
            # TensorRT-LLM table up to ~160 tokens), the layer with one is no slower than without
            skew, priced, skew_near = read(("moe",), bal & ~run_done, routed)
            lower = col(bal & priced) & (skew < routed)
            routed = np.where(lower, skew, routed)
            near_ep = near_ep | (lower.any(axis=1) & skew_near)
        inside &= ~near_ep & ~(dep & ~priced0)  # DeepEP rows no table priced: the grouped GEMMs' guess
        # an engine that runs the shared experts on a second CUDA stream beside the routed ones (up to a token
        # count) pays the longer of the two there, not their sum
        overlap = Mg <= SHARED_EXPERT_STREAM_TOKENS.get(prof.engine, 0.0)
        tok = tok + col(n_moe) * (np.where(overlap, np.maximum(shared, routed), shared + routed) + proj)
        if parts is not None:  # overlapped streams: the routed experts, and what the shared ones add beyond them
            put("moe", col(n_moe) * routed)
            put("gemm", col(n_moe) * (np.where(overlap, np.maximum(shared - routed, 0.0), shared) + proj))
        # EP beyond the TP group (attention DP): dispatch and combine all-to-alls of the routed activations
        a2a = prof.table("comm.nccl_alltoall")
        wide = (ep > 1) & ((np.mod(tp, ep) != 0) | (attn_dp > 1))
        # an engine that keeps all-gather + reduce-scatter for EP groups no larger than top-k: the busy ranks'
        # tokens gathered on every GPU of the group, the experts' partial outputs reduce-scattered back, each on
        # its own NCCL table over the group's ranks in the domain (`_gather_scatter`; a bound: the gather moves
        # fp4 activations)
        # (and an engine whose launch default gathers at any EP size, `MOE_A2A_AUTO`: vLLM, SGLang)
        if MOE_A2A_AUTO.get(prof.engine) == "allgather":
            gath = wide
        elif prof.engine in ALLGATHER_MOE_ENGINES:
            gath = wide & (ep <= topk)
        else:
            gath = np.zeros(k, dtype=bool)
        a2a_code = m.get("moe_a2a", np.zeros(k))  # the knob (`MOE_A2A`): all-gather / DeepEP whatever the engine's rule
        gath = np.where(a2a_code == MOE_A2A.index("allgather"), wide,
                        gath & (a2a_code != MOE_A2A.index("deepep")))
        nccl_ar = prof.table("comm.nccl_all_reduce")
        if gath.any() and nccl_ar is not None:
            t_g, r_g, n_g, top_g = _gather_scatter(prof, nccl_ar, tp, attn_dp, m.get("domain", tp * attn_dp),
                                                   Mg * col(busy * hx))
            t_g = t_g * 1e-3
            inside &= ~gath | (n_g <= top_g)
            bound("tok", gath, r_g)
            tok = tok + put("comm_ep", np.where(col(gath), col(n_moe) * hide(t_g * 1e3) * 1e-3, 0.0))
            wide = wide & ~gath
        # inside one node: DeepEP's dispatch / combine kernels, measured at the model's (hidden, top-k, experts)
        t_deep, deep, r_deep = _deepep(prof, Mg / col(tp), ep, hx, topk, ne, m.get("domain", ep), wide)
        bound("tok", deep, r_deep)
        tok = tok + put("comm_ep", np.where(col(deep), col(n_moe) * t_deep, 0.0))
        nccl_a2a = wide & ~deep
        if a2a is not None and nccl_a2a.any():
            # the table prices the ranks inside one scale-up domain (beyond its largest group by each GPU's
            # traffic, `ranks_beyond`); core adds the scale-out stage beyond the domain
            t_a2a, r_a2a = ranks_beyond(a2a, np.minimum(ep, m.get("domain", ep)), Mg * col(topk * hx))
            t_a2a = t_a2a * 1e-3
            inside &= ~nccl_a2a | (ep <= a2a.axes[0][-1])
            bound("tok", nccl_a2a, r_a2a)
            tok = tok + put("comm_ep", np.where(col(nccl_a2a), 2.0 * col(n_moe) * t_a2a, 0.0))
    # tensor-parallel all-reduces at M x hidden elements (engine's custom all-reduce, NCCL beyond its range)
    ar = prof.table("comm.custom_allreduce") or prof.table("comm.nccl_all_reduce")
    if ar is not None and (tp > 1).any():
        nar = np.where(m["parallel_residual"] > 0, L, 2.0 * L - n_ffn_only)  # as ops.layer_costs' n_allreduce
        # the tables price the all-reduce inside one scale-up domain (a group spanning domains: its in-domain stage
        # over the whole message; core adds the scale-out stage, comm.Links.allreduce_out)
        domain = m.get("domain", tp)
        n_ar = np.minimum(tp, domain)
        own_top = float(ar.axes[0][-1])
        big = tp > own_top
        nccl = prof.table("comm.nccl_all_reduce") or ar
        # the engine's own all-reduce runs where the whole group sits on the node its table was measured on (IPC
        # buffers of one node); an MNNVL engine's also across the trays of one NVLink domain. A group beyond them
        # (two HGX nodes; a GB200 tray-spanning group under vLLM / SGLang) runs NCCL, whose in-domain stage the
        # NCCL table prices: vLLM's CustomAllreduce "is disabled because this process group spans across nodes",
        # TensorRT-LLM's AllreduceOp falls back to NCCL without P2P / NVLink between the group's GPUs
        # (ifFallbackToNCCL, cpp/tensorrt_llm/thop/allreduceOp.cpp)
        own_ar = ~big | ((prof.engine in MNNVL_ALLREDUCE_ENGINES) & (tp <= domain))
        # beyond the ranks a table was measured at (GB200's tables stop at one 4-GPU tray) the all-reduce is the
        # largest measured group's, scaled by the ring's traffic per rank (`ranks_beyond`)
        t_own, r_own = ranks_beyond(ar, n_ar, Mg * col(h))
        t_nccl, r_nccl = ranks_beyond(nccl, n_ar, Mg * col(h))
        t_ar = hide(np.where(col(own_ar), t_own, t_nccl))
        inside &= ~big | (tp <= 1)
        bound("tok", tp > 1, np.where(own_ar, r_own, r_nccl))
        tok = tok + put("comm_tp", np.where(col(tp > 1), col(nar) * t_ar * 1e-3, 0.0))
    # LM head: a 16-bit GEMM over the vocabulary shard whatever the checkpoint's format (quant=False: 2-byte
    # weights, no weight-only discount where `hb` is the rows' own table): the engines leave the head unquantized.
    # vLLM's ParallelLMHead is a VocabParallelEmbedding, not a LinearBase: AWQMarlinConfig.get_quant_method
    # (model_executor/layers/quantization/awq_marlin.py) quantizes it only with the checkpoint's "lm_head" key
    # (default False; AutoAWQ never sets it), CompressedTensorsConfig.get_quant_method (compressed_tensors/
    # compressed_tensors.py: W4A16 / W8A8, Kimi-K2.5's int4) quantizes LinearBase layers only, so the head keeps
    # UnquantizedEmbeddingMethod's 16-bit matmul; SGLang's AWQMarlinConfig.get_quant_method
    # (python/sglang/srt/layers/quantization/awq.py) has the same "lm_head" rule. (TensorRT-LLM's not read here.)
    hb = prof.table("gemm.bf16") or gt
    nc = np.clip(m["vocab"] / tp, 1.0, float(hb.axes[1][-1]))
    head = col(m["vocab"] / tp / nc) * gemm(Mg, col(nc), col(h), hb, quant=False, into=None)
    head_hi = _m_reach(Mg, hb.reach(0, nc, h))
    # attention kernels
    inside_mlp = inside.copy()  # DeepSeek-V4 rows: what the attention tables below say does not bound them
    a_scale = float(eff["profile_attn_scale"])
    b3, s3 = B_GRID[None, :, None], S_GRID[None, None, :]
    kvk = "fp8" if kv in ("fp8", "fp4", "int8", "int4") else "bf16"

    def by_kv(name: str) -> Any:
        """The profile's `name` table for this KV-cache dtype, else its 16-bit one (None: neither measured)."""
        return prof.table(f"{name}.{kvk}") or prof.table(f"{name}.bf16")
    ct, gtab = by_kv("context_attention"), by_kv("generation_attention")
    ctx = gen = None  # a profile without an attention table keeps the roofline's attention curves
    # per row and B_GRID batch: the prompt (c_hi) and KV (g_hi) lengths the attention lookups were measured to
    c_hi, g_hi = np.full((k, _NB), np.inf), np.full((k, _NB), np.inf)
    heads = np.maximum(nh / tp, 1.0)
    mc, mg = by_kv("mla_context"), by_kv("mla_generation")
    # MLA rows read their own tables below where the profile has them: the GQA tables' ranges do not bound them
    own_mla = mla & (mc is not None) & (mg is not None) & (ct is not None) & (gtab is not None)
    if ct is not None:
        # the tables are measured at head_dim 128 for queries, keys and values: QK^T scales with hd, PV with vd
        d_scale = np.where(mla, (m["qk_nope"] + m["qk_rope"] + m["v_head"]) / 256.0, (hd + vd) / 256.0)
        # windowed layers: a prompt of s tokens attends ~ s x window pairs instead of s^2 / 2
        n_win_c = n_win_l[:, None, None]
        win_c = np.maximum(m.get("window", np.zeros(k)), 1.0)[:, None, None]
        layers = (L_attn[:, None, None] - n_win_c) + n_win_c * np.minimum(1.0, 2.0 * win_c / s3) * win_d
        t = ct(b3, s3, heads[:, None, None]) * 1e-3 * layers * (d_scale * a_scale)[:, None, None]
        ctx = np.log(np.maximum(t, 1e-12))
        inside &= own_mla | ct.inside(1.0, 1024.0, heads)
        c_hi = _len_reach(ct, heads)
    if gtab is not None:
        kv_heads = np.where(mla, 1.0, kvh)
        d_scale = np.where(mla, (m["kv_lora_rank"] + m["qk_rope"]) / 128.0, (hd + vd) / 256.0)
        n_win = n_win_l
        win = np.maximum(m.get("window", np.zeros(k)), 1.0)
        win_heads = np.where(mla, 1.0, swa_kvh)  # the window layers' KV heads (their own where they have some)
        t_full = gtab(b3, s3, kv_heads[:, None, None])
        t_win = gtab(b3, np.minimum(s3, win[:, None, None]), win_heads[:, None, None])
        t = (((L_attn - n_win)[:, None, None] * t_full + n_win[:, None, None] * t_win * win_d) * 1e-3
             * (d_scale * a_scale)[:, None, None])
        # the KV cache a decode step reads streams from device memory: no layer takes less than its bytes over the
        # bandwidth (cells beyond a table's measured batch x context are its trend, `profiles.grid.extend_trend`;
        # MLA rows read their own tables below)
        c3 = (lambda x: x[:, None, None])
        kv_bytes = DTYPE_BYTES.get(kv, 2.0) * b3 * (c3((L_attn - n_win) * kvh * (hd + vd)) * s3
                                                    + c3(n_win * swa_kvh * (swa_hd + swa_vd))
                                                    * np.minimum(s3, c3(win)))
        t = np.where(c3(mla), t, np.maximum(t, kv_bytes / bw))
        gen = np.log(np.maximum(t, 1e-12))
        inside &= own_mla | (gtab.inside(1.0, 1024.0, kv_heads) & gtab.inside(1.0, 1024.0, win_heads))
        # window layers read min(s, window): beyond the window's measured length only if it is beyond the window
        r_w = _len_reach(gtab, win_heads)
        g_hi = np.where(col(n_win > 0), np.minimum(_len_reach(gtab, kv_heads), np.where(r_w >= col(win), np.inf, r_w)),
                        _len_reach(gtab, kv_heads))
    if msa.any() and ct is not None and gtab is not None:
        # MiniMax sparse attention: no module table measures it; its layers' GQA attention is the GQA tables' at the
        # attended span (prefill: a prompt of s tokens attends ~ min(1, 2 span / s) of its causal pairs there;
        # decode: each sequence reads min(s, span) tokens), plus the indexer's scores over the whole context: its
        # query heads' QK^T (prefill: the context table's time per head and head width, no PV), and per decode one
        # key head of idx_dim read per cached token (the generation table at one KV head, per head width)
        span = np.maximum(m["idx_topk"], 1.0)[:, None, None]
        n_i = n_idx[:, None, None]
        ih_gpu = np.ceil(m["idx_heads"] / tp)[:, None, None]
        idim = m["idx_dim"][:, None, None]
        hq = heads[:, None, None]
        dsc = (hd + vd)[:, None, None] / 256.0 * a_scale
        t_c = ct(b3, s3, hq) * 1e-3
        t_sc = ((L_attn[:, None, None] - n_i + n_i * np.minimum(1.0, 2.0 * span / s3)) * t_c * dsc
                + n_i * t_c * ih_gpu * idim / (hq * 256.0) * a_scale)
        kv_heads_m = kvh[:, None, None]
        t_sg = ((L_attn[:, None, None] - n_i) * gtab(b3, s3, kv_heads_m) + n_i * gtab(b3, np.minimum(s3, span),
                                                                                       kv_heads_m)) * 1e-3 * dsc
        t_sg = t_sg + n_i * gtab(b3, s3, np.ones_like(kv_heads_m)) * 1e-3 * idim / 256.0 * a_scale
        # the sparse layers of a model measured as whole modules (`MSA_MODULES`): the module less the projection
        # GEMMs it ran (bf16 weights; the token curve holds the model's own, in its format) at the same tokens,
        # per phase where the profile holds that phase's table; the dense layers stay on the GQA tables above
        bf = prof.table("gemm.bf16")
        dense_c = (L_attn[:, None, None] - n_i) * t_c * dsc
        dense_g = (L_attn[:, None, None] - n_i) * gtab(b3, s3, kv_heads_m) * 1e-3 * dsc
        measured = np.zeros(k, dtype=bool)
        g_hi = np.where(col(msa), np.minimum(g_hi, _len_reach(gtab, np.ones(k))), g_hi)  # the indexer's keys
        for name, shape in MSA_MODULES.items():
            rows_ = msa & np.logical_and.reduce([np.isclose(m[f], v) for f, v in shape.items()])
            tabs = {st: by_kv(f"msa_{st}.{name}") for st in ("context", "generation")}
            if not rows_.any() or bf is None or all(t is None for t in tabs.values()):
                continue
            proj = projections(bf, False, rows_)[0] + gemm(Mg, idx_n, col(h), bf, rows_, False)
            ok = np.ones(k, dtype=bool)
            r3 = rows_[:, None, None]
            for st, tab in tabs.items():
                if tab is None:
                    ok[:] = False  # this phase keeps the GQA tables: not measured
                    continue
                # context: b prompts of s tokens (b x s tokens through the projections); decode: b tokens
                t_mod = hide(tab(b3, s3, hq)) * 1e-3
                t_proj = curve_at(np.log(np.maximum(proj, 1e-30))[:, None, None, :], b3 * s3 if st == "context"
                                  else b3 * np.ones_like(s3))
                t_m = n_i * np.maximum(t_mod - t_proj, 0.2 * t_mod) * a_scale
                if st == "context":
                    t_sc = np.where(r3, dense_c + t_m, t_sc)
                    c_hi = np.where(col(rows_), np.minimum(c_hi, _len_reach(tab, heads)), c_hi)
                else:
                    t_sg = np.where(r3, dense_g + t_m, t_sg)
                    g_hi = np.where(col(rows_), np.minimum(g_hi, _len_reach(tab, heads)), g_hi)
                ok &= tab.inside(1.0, 1024.0, heads)
            measured |= rows_ & ok
        m3 = msa[:, None, None]
        ctx = np.where(m3, np.log(np.maximum(t_sc, 1e-12)), ctx)
        gen = np.where(m3, np.log(np.maximum(t_sg, 1e-12)), gen)
        # a phase no module table measured (or heads per GPU beyond its range): the row is not "interpolated"
        inside &= ~msa | measured
    # MLA: its own kernels (absorbed decode reads one latent per token for all heads; prefill attends with
    # qk_nope + qk_rope / v_head dims), measured at DeepSeek-V3's dims and scaled by the dims read
    if mla.any() and mc is not None and mg is not None:
        hq = heads[:, None, None]
        c_dim = ((m["qk_nope"] + m["qk_rope"] + m["v_head"]) / 320.0 * L_attn * a_scale)[:, None, None]
        g_dim = ((m["kv_lora_rank"] + m["qk_rope"]) / 576.0 * L_attn * a_scale)[:, None, None]
        t_c = np.log(np.maximum(mc(b3, s3, hq) * 1e-3 * c_dim, 1e-12))
        t_g = np.log(np.maximum(mg(b3, s3, hq) * 1e-3 * g_dim, 1e-12))
        m3 = mla[:, None, None]
        if ctx is not None and gen is not None:
            ctx, gen = np.where(m3, t_c, ctx), np.where(m3, t_g, gen)
            inside &= ~mla | (mg.inside(1.0, 1024.0, hq[:, 0, 0]) & mc.inside(1.0, 1024.0, hq[:, 0, 0]))
            c_hi = np.where(col(mla), _len_reach(mc, heads), c_hi)
            g_hi = np.where(col(mla), _len_reach(mg, heads), g_hi)
            # DeepSeek sparse attention (lightning indexer, top-k, sparse MLA), measured as whole modules: the
            # module less this model's projection GEMMs (already in the token curve) at the same tokens (decode: b
            # tokens; prefill: b prompts of s tokens, b x s). The prefill module is what the engine runs on a prompt
            # (indexer scores over the causal pairs, top-k per query, sparse MLA over the selected keys), not the
            # dense MLA kernel, which is an order of magnitude cheaper at long prompts (docs/profiles.md, thirty-second
            # round; the table holds prompts without a cached prefix: `profiles.build.dsa_tables`; one whose keys fit
            # the indexer's top-k runs SGLang's dense MHA path)
            dsa = mla & (m.get("idx_topk", np.zeros(k)) > 0)
            dsa_timed = np.zeros(k, dtype=bool)
            log_qkv = np.log(np.maximum(qkv, 1e-30))[:, None, None, :]
            for arch, hid in (("glm5", 6144.0), ("deepseek_v32", 7168.0)):
                tab, tab_c = by_kv(f"dsa_generation.{arch}"), by_kv(f"dsa_context.{arch}")
                rows_ = dsa & (h == hid)
                if tab is None or not rows_.any():
                    continue
                dsa_timed |= rows_
                n_l = (L_attn * a_scale)[:, None, None]
                proj = qkv[:, (np.log2(B_GRID) * M_STEPS).astype(int)][:, :, None]
                t_mod = hide(tab(b3, s3, hq)) * 1e-3
                t_d = np.maximum(t_mod - proj, 0.2 * t_mod) * n_l
                gen = np.where(rows_[:, None, None], np.log(np.maximum(t_d, 1e-12)), gen)
                inside &= ~rows_ | tab.inside(1.0, 1024.0, hq[:, 0, 0])
                g_hi = np.where(col(rows_), np.minimum(g_hi, _len_reach(tab, heads)), g_hi)
                if tab_c is not None:  # a profile without the prefill module keeps the dense MLA kernel's
                    t_mod = hide(tab_c(b3, s3, hq)) * 1e-3
                    t_p = np.maximum(t_mod - curve_at(log_qkv, b3 * s3), 0.2 * t_mod) * n_l
                    ctx = np.where(rows_[:, None, None], np.log(np.maximum(t_p, 1e-12)), ctx)
                    inside &= ~rows_ | tab_c.inside(1.0, 1024.0, hq[:, 0, 0])
                    c_hi = np.where(col(rows_), np.minimum(c_hi, _len_reach(tab_c, heads)), c_hi)
            # a profile without the module table (A100, L40S, RTX PRO 6000: the sparse MLA kernels are SM90 /
            # SM100 ones): the decode keeps the dense MLA kernel's time, not measured for this attention, so the
            # row says "extrapolated", as a KDA or MiniMax sparse-attention row without its tables does
            inside &= ~dsa | dsa_timed
    if v4.any() and ctx is not None and gen is not None:
        ctx, gen, ok, (c_hi, g_hi) = _v4_attention(prof, m, v4, heads, ctx, gen, hide, a_scale, (c_hi, g_hi))
        inside = np.where(v4, inside_mlp & ok, inside)
    # Gated DeltaNet layers' recurrence (conv + gated delta rule): a batch of b prompts of s tokens runs the chunked
    # kernels at its measured batch (sequences side by side, each one's chunks in turn: not b x s tokens as one
    # sequence, `profiles.build.gdn_tables`), a decode step the packed recurrent update of b sequences whatever
    # their length; the table replaces the closed-form recurrence on these rows (`core`), which would count it twice
    g_ctx, g_gen = prof.table("linear_attention.gdn_context"), prof.table("linear_attention.gdn_generation")
    vh = np.maximum(m.get("lin_v_heads", np.zeros(k)) / tp, 1.0)[:, None, None]
    kda = (n_lin > 0) & (m.get("lin_kda", np.zeros(k)) > 0)
    mamba = (n_lin > 0) & (m.get("mamba_inner", np.zeros(k)) > 0)
    lin = (n_lin > 0) & ~kda & ~mamba
    lin_tab = np.zeros(k, dtype=bool)

    def add_layers(rows: np.ndarray, t_ctx: Any, t_gen: Any, width: np.ndarray, width3: np.ndarray) -> None:
        """Each of the `rows`' `n_lin` linear layers at its kernel tables' times (`t_ctx` a prompt batch's by
        (batch, length, width), `t_gen` a decode step's by (batch, width); ms, isolated: `hide`) added to the
        `ctx` / `gen` log-time curves, at `width` per row (`width3` where looked up on the grid), and the tables'
        reach (the prompts' length per batch, the decoding sequences b) and measured ranges to `c_hi`, `g_hi`,
        `inside`."""
        nonlocal inside, c_hi, g_hi, ctx, gen
        assert ctx is not None and gen is not None
        inside &= ~rows | (t_ctx.inside(1.0, 1024.0, width) & t_gen.inside(1.0, width))
        c_hi = np.where(col(rows), np.minimum(c_hi, _len_reach(t_ctx, width)), c_hi)
        g_hi = np.where(col(rows), np.minimum(g_hi, _batch_reach(t_gen.reach(0, width))), g_hi)
        nl = np.where(rows, n_lin, 0.0)[:, None, None]
        lc = nl * hide(t_ctx(b3, s3, width3)) * 1e-3
        lg = nl * hide(t_gen(b3 * np.ones_like(s3), width3)) * 1e-3
        if parts is not None:
            lin_parts[0], lin_parts[1] = lin_parts[0] + lc, lin_parts[1] + lg
        ctx, gen = np.log(np.exp(ctx) + lc), np.log(np.exp(gen) + lg)

    if lin.any() and g_ctx is not None and g_gen is not None and ctx is not None and gen is not None:
        add_layers(lin, g_ctx, g_gen, vh[:, 0, 0], vh)
        lin_tab |= lin
    # Kimi Delta Attention: its own kernels (`profiles.build.kda_tables`), a prompt batch by its prompts and their
    # length (the chunked scan runs prompts side by side, one long prompt serially), a decode step by its sequences;
    # the closed-form recurrence (FLOPs, state traffic) leaves these rows in `core` (`build_curves`' fifth value).
    # Without the tables (a GPU aiconfigurator-core did not measure KDA on) the rows keep the closed form and say
    # "extrapolated"
    k_ctx, k_gen = prof.table("linear_attention.kda_context"), prof.table("linear_attention.kda_generation")
    if kda.any() and k_ctx is not None and k_gen is not None and ctx is not None and gen is not None:
        add_layers(kda, k_ctx, k_gen, vh[:, 0, 0], vh)
        lin_tab |= kda
    else:
        inside &= ~kda
    # Mamba-2: its short conv from TensorRT-LLM's tables (`profiles.build.mamba2_tables`, every engine's profile),
    # a prompt batch by its prompts and their length, a decode step by its sequences, at the conv channels one GPU
    # holds (heads x head dim / tp + 2 x d_state per group, at least one group per GPU). The tables hold no scan or
    # state-update kernel: the SSD chunk scan and the selective state update stay in closed form (`core`: FLOPs and
    # state traffic), so these rows are not in `lin_tab`. Without the tables (a GPU aiconfigurator-core did not
    # measure) the rows keep the closed form alone and say "extrapolated"
    c_ctx, c_gen = prof.table("linear_attention.mamba2_context"), prof.table("linear_attention.mamba2_generation")
    if mamba.any() and c_ctx is not None and c_gen is not None and ctx is not None and gen is not None:
        ch = (m["mamba_inner"] / tp + 2.0 * np.maximum(m["mamba_groups"] / tp, 1.0) * m["mamba_state"])
        add_layers(mamba, c_ctx, c_gen, ch, np.maximum(ch, 1.0)[:, None, None])
    else:
        inside &= ~mamba
    # the step's token curves as the tables' size axes (`grid.monotone`, the one home of the rule): an engine can
    # run fewer tokens padded to more, so no cell is above a larger one's. The GEMM and all-reduce tables hold it
    # (`build._table(size_axis=)`), the fused-MoE tables do not (TensorRT-LLM's H100 BF16 MoE times Qwen3-235B's
    # layer at EP 8 3-6x slower at 192-384 tokens than at 512, aiconfigurator-core's cells), nor the sum of the
    # tables a step reads: without it a step's time fell as its batch grew. Attention along its length likewise
    # (the DSA decode module's cells spike at 2049 tokens of context, above 4097's), and along the batch (up to
    # ~7 % timing noise between neighbouring batches; the cells beyond the measured batch x length follow their
    # line's trend, `profiles.grid.extend_trend`, no longer a flat fill below what smaller batches measured)
    if parts is not None:  # each part's share of every cell, before the envelope below
        total = sum(tok_parts.values())
        parts["tok"] = {name: np.broadcast_to(v / np.where(total > 0, total, 1.0), tok.shape)
                        for name, v in tok_parts.items()}
        parts["ctx_lin"] = parts["gen_lin"] = None
        if ctx is not None and gen is not None:
            parts["ctx_lin"] = np.broadcast_to(lin_parts[0] / np.exp(ctx), ctx.shape)
            parts["gen_lin"] = np.broadcast_to(lin_parts[1] / np.exp(gen), gen.shape)
    tok, head = (monotone(np.log(np.maximum(c, 1e-12)), 1) for c in (tok, head))
    if ctx is not None:
        ctx = monotone(monotone(ctx, 2), 1)
    if gen is not None:
        gen = monotone(monotone(gen, 2), 1)
    # beyond the curves' own grids they extrapolate their last segment (`curve_at`, `grid_at`)
    def with_pairs(hi: np.ndarray) -> np.ndarray:
        """Per-batch reaches, then the lesser of each batch's and the next one's (the last: 0, beyond the grid)."""
        hi = np.minimum(hi, S_GRID[-1])
        return np.column_stack([hi, np.minimum(hi[:, :-1], hi[:, 1:]), np.zeros(k)])
    reach = np.column_stack([np.minimum(acc["tok"], M_GRID[-1]), np.minimum(head_hi, M_GRID[-1]),
                             with_pairs(c_hi), with_pairs(g_hi)])
    return (tok, head, ctx, gen), inside, lin_tab, reach


def _v4_attention(prof: Any, m: dict[str, np.ndarray], v4: np.ndarray, heads: np.ndarray, ctx: np.ndarray,
                  gen: np.ndarray, hide: Any, a_scale: float, hi: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """DeepSeek-V4 rows' context and generation attention curves from its module tables (each layer's whole
    attention block: query / KV projections, compressor, CSA indexer and top-k, sparse attention over the window
    and compressed entries, grouped output projection): the CSA layers on the CSA module, every other layer on the
    HCA module (`V4_MODULES`); whether every lookup was inside the measured heads per GPU; and `hi` (the context
    and generation length reach per B_GRID batch, `_profile_rows`) with these rows' set from the module tables."""
    hi_st = dict(zip(("context", "generation"), hi))
    b3, s3 = B_GRID[None, :, None], S_GRID[None, None, :]
    hq = heads[:, None, None]
    n_csa = m["n_csa"]
    n_rest = m["n_layers"] - n_csa
    ok = np.ones(len(v4), dtype=bool)
    for hid in np.unique(m["hidden"][v4]):
        rows = v4 & (m["hidden"] == hid)
        t_st = {}
        for st in ("context", "generation"):
            csa, hca = (prof.table(f"dsv4_{st}.{kd}_h{int(hid)}") for kd in V4_MODULES)
            ok &= ~rows | np.logical_and.reduce([t.inside(t.axes[0][0], t.axes[1][0], heads) for t in (csa, hca)])
            t = (n_csa[:, None, None] * hide(csa(b3, s3, hq)) + n_rest[:, None, None] * hide(hca(b3, s3, hq)))
            t_st[st] = np.log(np.maximum(t * 1e-3 * a_scale, 1e-12))
            hi_st[st] = np.where(rows[:, None], np.minimum(_len_reach(csa, heads), _len_reach(hca, heads)),
                                 hi_st[st])
        r3 = rows[:, None, None]
        ctx, gen = np.where(r3, t_st["context"], ctx), np.where(r3, t_st["generation"], gen)
    return ctx, gen, ok, (hi_st["context"], hi_st["generation"])
