"""Vectorized interpolation of measured latency tables on sorted, log-spaced grids.

A `Table` holds latencies (ms) on the Cartesian product of sorted axes. Lookups interpolate multilinearly in
log(axis) / log(latency) space, one `searchsorted` per axis for a whole array of points; outside an axis' range the
edge segment's slope extrapolates (a GEMM twice the largest measured M takes about twice as long), held on a work
axis (`WORK_EXPONENT`) to what the work allows: the time never falls as the size grows and grows at most as the work
does. `inside`
says whether a point lies within the range of every axis; `covered` (the cells the collector measured, or that lie
between measured cells of a line) and `reach` say how far along a size axis the lookups stay on such cells: the
builders fill the rest of the grid (`extend_trend`, `extend_proportional`, `fill_gaps`' edges), and a lookup there
is an extrapolation, which is what `source` reports.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: axis name -> the exponent of a kernel's work in that axis (its time past the measured range grows at most as
#: size**exponent once the GPU is full, and never falls as the size grows): `Table.__call__` holds the edge segment's
#: log-log slope to [0, exponent] beyond either end of such an axis. GEMM rows / columns / depth, tokens, batch,
#: KV length, heads, channels, message bytes: linear; a context (prefill) table's prompt length `isl`: quadratic
#: (a prompt of s tokens attends s (s + 1) / 2 query-key pairs). Axes not named here (a rank count `num_gpus`,
#: whose callers hold it to the table's range and scale beyond it themselves; a shape index `shape_key`) keep the
#: edge segment's slope.
WORK_EXPONENT: Mapping[str, float] = {
    **dict.fromkeys(("m", "n", "k", "num_tokens", "batch_size", "kv_len", "seq_len", "num_heads",
                     "num_key_value_heads", "num_v_heads", "conv_channels", "hidden_size", "message_size"), 1.0),
    "isl": 2.0,
}


@dataclass(frozen=True)
class Table:
    """Latency (ms) on a grid: `axes[i]` sorted positive values (len >= 2), `log_ms` of shape (len(axes[0]), ...).

    NaN cells are not allowed (builders fill gaps along an axis or drop the table). `covered`: a bool array of
    `log_ms`' shape, True on the cells the collector measured and on unmeasured cells between two measured cells of
    one line (`covered_cells`); the other cells were filled beyond what was measured. None (a table built without
    it, e.g. a profile file written before it was recorded): every cell counts as measured."""

    names: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    log_ms: np.ndarray
    covered: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.axes) or self.log_ms.shape != tuple(len(a) for a in self.axes):
            raise ValueError(f"Table: axes {self.names} of lengths {[len(a) for a in self.axes]} do not match "
                             f"values of shape {self.log_ms.shape}")
        for n, a in zip(self.names, self.axes):
            if len(a) < 2 or np.any(np.diff(a) <= 0) or a[0] <= 0:
                raise ValueError(f"Table axis {n!r} must hold >= 2 increasing positive values, got {a!r:.120}")
        if not np.isfinite(self.log_ms).all():
            raise ValueError(f"Table over {self.names} has non-finite latencies")
        if self.covered is not None and np.shape(self.covered) != self.log_ms.shape:
            raise ValueError(f"Table over {self.names}: covered mask of shape {np.shape(self.covered)} does not match "
                             f"values of shape {self.log_ms.shape}")

    def __call__(self, *points: Any) -> np.ndarray:
        """Latency (ms) at `points` (one array per axis, broadcast together): multilinear in log-log between the
        cells; beyond either end of an axis along the edge segment's slope, held to [0, `WORK_EXPONENT`] on a work
        axis (each of the interpolated lines, axis by axis: where no slope is held, exactly the multilinear
        extrapolation)."""
        pts = np.broadcast_arrays(*[np.asarray(p, dtype=float) for p in points])
        shape = pts[0].shape
        idx, frac = [], []
        for a, x in zip(self.axes, pts):
            la = np.log(a)
            lx = np.log(np.maximum(x, 1e-30)).ravel()
            i = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(a) - 2)
            idx.append(i)
            frac.append((lx - la[i]) / (la[i + 1] - la[i]))
        d = len(self.axes)
        # the 2**d corner values in one gather (row c: corner c, whose bit ax says which end of cell idx[ax] it
        # reads), reduced axis by axis from the last (the highest bit: rows [:half] its lower end, [half:] its upper)
        bits = np.arange(1 << d)
        vals = self.log_ms[tuple(idx[ax][None, :] + ((bits[:, None] >> ax) & 1) for ax in range(d))]
        for ax in reversed(range(d)):
            half = vals.shape[0] // 2
            lo, rise = vals[:half], vals[half:] - vals[:half]
            f = frac[ax]
            cap = WORK_EXPONENT.get(self.names[ax])
            if cap is None or not np.any((f < 0.0) | (f > 1.0)):
                vals = lo + f * rise
                continue
            a = self.axes[ax]
            fin = np.clip(f, 0.0, 1.0)
            step = cap * np.log(a[idx[ax] + 1] / a[idx[ax]])
            vals = lo + fin * rise + (f - fin) * np.clip(rise, 0.0, step)
        return np.exp(vals[0]).reshape(shape)

    def proportional_beyond(self, axis: int, *points: Any) -> np.ndarray:
        """Latency (ms) at `points` as `__call__`, except beyond the largest measured value of `axis`: there in
        proportion to that coordinate, t(x) = t(x_top) x / x_top, for a kernel whose work is linear in it once the
        GPU is full (a token count: engines also chunk larger batches). The edge segment's slope would carry
        whatever timing noise bends the last cell over every extrapolated multiple."""
        pts = [np.asarray(p, dtype=float) for p in points]
        top = float(self.axes[axis][-1])
        over = np.maximum(pts[axis] / top, 1.0)
        pts[axis] = np.minimum(pts[axis], top)
        return self(*pts) * over

    def inside(self, *points: Any) -> np.ndarray:
        """True where every coordinate lies within its axis' measured range."""
        pts = np.broadcast_arrays(*[np.asarray(p, dtype=float) for p in points])
        ok = np.ones(pts[0].shape, dtype=bool)
        for a, x in zip(self.axes, pts):
            ok &= (x >= a[0] * (1 - 1e-9)) & (x <= a[-1] * (1 + 1e-9))
        return ok

    @functools.cached_property
    def _tops(self) -> tuple[np.ndarray, ...]:
        """Per axis a: the value of axis a at each line's last covered cell along it (an array over the other
        axes' cells; 0 where the line has no covered cell)."""
        out = []
        for ax, a in enumerate(self.axes):
            if self.covered is None:
                out.append(np.full(tuple(n for i, n in enumerate(self.log_ms.shape) if i != ax), float(a[-1])))
                continue
            cov = np.moveaxis(np.asarray(self.covered, dtype=bool), ax, -1)
            last = cov.shape[-1] - 1 - np.argmax(cov[..., ::-1], axis=-1)
            out.append(np.where(cov.any(axis=-1), np.asarray(a, dtype=float)[last], 0.0))
        return tuple(out)

    def reach(self, axis: int, *points: Any) -> np.ndarray:
        """How far along `axis` (in its unit) a lookup at the other axes' coordinates `points` (one array per other
        axis, in order, broadcast together) stays on covered cells: the smallest last covered value among the lines
        the lookup interpolates between (those with a nonzero weight); 0 where another coordinate lies beyond its
        axis' largest value (the lookup extrapolates there whatever its size). Only the upper end is bounded: below
        an axis' first cell the tables' first cells stand (launch-bound kernels)."""
        others = [i for i in range(len(self.axes)) if i != axis]
        if len(points) != len(others):
            raise ValueError(f"Table.reach over {self.names} along {self.names[axis]!r}: {len(others)} other "
                             f"coordinates needed, got {len(points)}")
        pts = np.broadcast_arrays(*[np.asarray(p, dtype=float) for p in points])
        shape = pts[0].shape if pts else ()
        top = self._tops[axis]
        idx, frac, beyond = [], [], np.zeros(shape, dtype=bool)
        for ax, x in zip(others, pts):
            a = self.axes[ax]
            la = np.log(a)
            lx = np.log(np.maximum(x, 1e-30))
            i = np.clip(np.searchsorted(la, lx, side="right") - 1, 0, len(a) - 2)
            idx.append(i)
            frac.append((lx - la[i]) / (la[i + 1] - la[i]))
            beyond |= x > a[-1] * (1 + 1e-9)
        out = np.full(shape, np.inf)
        for corner in range(1 << len(others)):
            ix, used = [], np.ones(shape, dtype=bool)
            for d in range(len(others)):
                bit = (corner >> d) & 1
                w = frac[d] if bit else 1.0 - frac[d]
                used &= np.abs(w) > 1e-9
                ix.append(idx[d] + bit)
            out = np.where(used, np.minimum(out, top[tuple(ix)]), out)
        return np.where(beyond, 0.0, out)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Flat name -> array form for an .npz file (`covered` bit-packed, only where some cell is not)."""
        out = {f"{prefix}|axis|{i}|{n}": a for i, (n, a) in enumerate(zip(self.names, self.axes))}
        out[f"{prefix}|log_ms"] = self.log_ms.astype(np.float32)
        if self.covered is not None and not np.all(self.covered):
            out[f"{prefix}|covered"] = np.packbits(np.asarray(self.covered, dtype=bool).ravel())
        return out

    @classmethod
    def from_arrays(cls, prefix: str, arrays: Any) -> Table:
        """The table `to_arrays` wrote under `prefix`; without a `covered` entry (every cell measured, or a file
        written before it was recorded) `covered` is None."""
        keys = sorted((k for k in arrays if k.startswith(prefix + "|axis|")), key=lambda k: int(k.split("|")[-2]))
        log_ms = np.asarray(arrays[prefix + "|log_ms"], dtype=float)
        cov = arrays.get(prefix + "|covered") if hasattr(arrays, "get") else None
        covered = None if cov is None else np.unpackbits(np.asarray(cov, dtype=np.uint8),
                                                         count=log_ms.size).astype(bool).reshape(log_ms.shape)
        return cls(tuple(k.split("|")[-1] for k in keys), tuple(np.asarray(arrays[k], dtype=float) for k in keys),
                   log_ms, covered)


def covered_cells(measured: np.ndarray) -> np.ndarray:
    """The cells of a grid a builder's table counts as measured: the `measured` ones (bool, the collector's cells
    before any fill) and those between two measured cells of one line along some axis (filled by interpolation,
    `fill_gaps`), not the ones beyond a line's last or before its first measured cell (extended)."""
    m = np.asarray(measured, dtype=bool)
    out = m.copy()
    for ax in range(m.ndim):
        before = np.logical_or.accumulate(m, axis=ax)
        after = np.flip(np.logical_or.accumulate(np.flip(m, ax), axis=ax), ax)
        out |= before & after
    return out


def extend_proportional(values: np.ndarray, axis: int, grid: np.ndarray) -> np.ndarray:
    """Fill the NaN cells of log-latency `values` beyond each line's last measured cell along `axis` (whose
    values are `grid`) in proportion to the axis: t(x) = t(x_last) x / x_last. For a kernel whose work is linear
    in that axis once the GPU is full (prompts of a context-attention batch): measurement grids that stop at a
    total token count (batch x length) then extend the largest batch measured at each length, where a constant
    edge would price 8 prompts like 1."""
    return extend_trend(values, axis, grid, exponent=1.0)


def extend_trend(values: np.ndarray, axis: int, grid: np.ndarray, exponent: float | None = None) -> np.ndarray:
    """Fill the NaN cells of log-latency `values` beyond each line's last measured cell along `axis` (whose values
    are `grid`) on a power law t(x) = t(x_last) (x / x_last)^a: `exponent` where given, else that of the line's
    last two measured cells held to [0, 1]. A kernel flat in a size where it is latency-bound (a fused-MoE layer
    streaming its experts at a few tokens, decode attention over short contexts) stays flat, one that is already
    linear (compute or KV-cache bound) goes on linearly; a constant edge would price 32k tokens like the 16k
    measured, or a batch's 64k-token contexts like its 4k ones. Without `exponent`, lines with fewer than two
    measured cells are left to `fill_gaps`."""
    v = np.moveaxis(values.copy(), axis, -1)
    flat = v.reshape(-1, v.shape[-1])
    lg = np.log(np.asarray(grid, dtype=float))
    for row in flat:
        ok = np.flatnonzero(np.isfinite(row))
        if len(ok) < (1 if exponent is not None else 2) or ok[-1] == len(row) - 1:
            continue
        last = ok[-1]
        a = exponent if exponent is not None else float(
            np.clip((row[last] - row[ok[-2]]) / (lg[last] - lg[ok[-2]]), 0.0, 1.0))
        row[last + 1:] = row[last] + a * (lg[last + 1:] - lg[last])
    return np.moveaxis(flat.reshape(v.shape), -1, axis)


def monotone(values: np.ndarray, axis: int) -> np.ndarray:
    """Each cell of log-latency `values` at most every cell after it along `axis` (a size axis: GEMM rows,
    message bytes): a kernel can run a smaller problem in the larger one's shape (engines pad batches to their
    CUDA-graph sizes), so a smaller size timed slower than a larger one is timing noise or a heuristic's pick, not
    a cost the engine must pay. Without it a step's time falls as its batch grows wherever one cell spiked."""
    v = np.flip(np.moveaxis(values, axis, 0), 0)
    return np.moveaxis(np.flip(np.fmin.accumulate(v, axis=0), 0), 0, axis)


def fill_gaps(values: np.ndarray, axis: int) -> np.ndarray:
    """Fill NaN cells of log-latency `values` by linear interpolation (and edge extension) along `axis`, line by
    line; lines that are all NaN stay NaN."""
    v = np.moveaxis(values.copy(), axis, -1)
    flat = v.reshape(-1, v.shape[-1])
    x = np.arange(flat.shape[1])
    for row in flat:
        ok = np.isfinite(row)
        if ok.any() and not ok.all():
            row[~ok] = np.interp(x[~ok], x[ok], row[ok])
    return np.moveaxis(flat.reshape(v.shape), -1, axis)


def pivot(df: Any, axes: list[str], value: str = "latency") -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Long table -> (sorted axes, log(value) array with NaN where not measured); duplicate cells take the
    minimum (the fastest kernel the engine can pick)."""
    g = df.groupby(axes, sort=True)[value].min()
    ax = tuple(np.asarray(sorted(df[a].unique()), dtype=float) for a in axes)
    out = np.full(tuple(len(a) for a in ax), np.nan)
    pos = [np.searchsorted(a, np.asarray(g.index.get_level_values(i), dtype=float)) for i, a in enumerate(ax)]
    out[tuple(pos)] = np.log(np.maximum(g.to_numpy(float), 1e-6))
    return ax, out
