"""Repair by projection onto the valid set, and stratified initial populations, for the evolutionary optimizers.

On ML-systems spaces most random combinations are invalid (TP x PP must equal the GPU count, FP4 needs FP4
activations and a Blackwell GPU, ...; docs/optimizers.md gives the share on the flagship space), so a child of
crossover and mutation usually breaks a rule. Discarding it and trying again degenerates into random sampling.

``Projector`` instead holds the whole grid of a discrete space (up to ``PROJECT_MAX`` points, encoded as small
integer codes, built once) and maps a child to the NEAREST VALID configuration NOT YET SEEN: fewest parameters
changed (Hamming distance on the codes), then the smallest moves on ordinal parameters (normalized index distance),
then at random. Invalid combinations are thereby repaired, duplicates of anything evaluated are replaced by their
nearest new neighbour, and the result is always feasible and new (the ``free`` mask tracks every point asked or
told).

``stratified(...)`` picks an initial population from a pool of valid candidates that covers every value of every
parameter as evenly as possible (greedy balancing of the per-parameter value counts; real columns in equal-width
bins), so that rare but important values (FP4, which only one GPU type runs) are present from the start.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .batch import Batch


def _popcount(a: np.ndarray) -> np.ndarray:
    """Set bits per element of an unsigned integer array (numpy >= 2: one ufunc; else by bytes)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(a)
    return np.unpackbits(a.view(np.uint8), axis=-1).reshape(*a.shape, -1).sum(axis=-1)


#: the largest discrete space (feasible points) that ``Projector`` holds; beyond it the optimizers discard
#: invalid children and draw again (the grid would cost too much memory and time per child)
PROJECT_MAX = 200_000


class Projector:
    """The grid of a discrete space, encoded, with a mask of the points not yet seen (asked or told).

    ``grid``: every feasible point (``space.grid()``); ``keys``: their ``Encoder.keys``; ``codes``: (points, d)
    int16 per-column value codes (sorted order, so ordinal distances are index distances).
    """

    def __init__(self, encoder: Any, grid: pd.DataFrame) -> None:
        self.grid = grid.reset_index(drop=True)
        X, self.keys = encoder.encode_keys(self.grid)
        self._row = dict(zip(self.keys.tolist(), range(len(self.keys))))
        self.free = np.ones(len(self.grid), dtype=bool)
        self._values: list[np.ndarray] = []
        n, d = X.shape
        codes = np.empty(X.shape, dtype=np.int16)
        for j in range(d):
            values, codes[:, j] = np.unique(X[:, j], return_inverse=True)
            self._values.append(values)
        self.codes = codes
        self._ordinal = np.flatnonzero(np.asarray(encoder.kinds) != "nominal")
        self._span = np.array([max(len(v) - 1, 1) for v in self._values], dtype=float)
        sizes = [len(v) for v in self._values]
        # shells of radius <= 1: the mixed-radix index of each point's codes, sorted, and one entry per
        # (column, value) to enumerate the points that differ from a child in one parameter
        strides = [math.prod(sizes[j + 1:]) for j in range(d)]
        self._shells = d > 0 and strides[0] * sizes[0] < 2**62
        if self._shells:
            self._stride = np.array(strides, dtype=np.int64)
            flat = codes.astype(np.int64) @ self._stride
            self._order = np.argsort(flat, kind="stable")
            self._sorted = flat[self._order]
            self._step_col = np.repeat(np.arange(d), sizes)
            self._step_code = np.concatenate([np.arange(k) for k in sizes]).astype(np.int64)
            self._step_off = self._step_code * self._stride[self._step_col]
        # scans: each point's codes one-hot in 64-bit words; matching parameters = popcount(point & child)
        offset = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._bit_offset = offset[:-1]
        self._bits = np.zeros((n, max(1, math.ceil(int(offset[-1]) / 64))), dtype=np.uint64)
        for j in range(d):
            pos = offset[j] + codes[:, j].astype(np.int64)
            bit = np.left_shift(np.uint64(1), (pos % 64).astype(np.uint64))
            for w in np.unique(pos // 64).tolist():   # a column's bits span one or two words
                self._bits[:, w] |= np.where(pos // 64 == w, bit, np.uint64(0))

    def __len__(self) -> int:
        return len(self.grid)

    def batch(self, rows: np.ndarray) -> Batch:
        """The grid rows ``rows`` as a ``Batch``, with their keys and their encoding (rebuilt from the codes)."""
        X = np.empty((len(rows), len(self._values)))
        for j, values in enumerate(self._values):
            X[:, j] = values[self.codes[rows, j]]
        return Batch(self.grid.iloc[rows].reset_index(drop=True), self.keys[rows], X)

    def mark(self, keys: Iterable[bytes]) -> None:
        """Mark configurations as seen (keys of points outside the grid are ignored)."""
        row = self._row
        idx = [i for i in map(row.get, keys) if i is not None]
        if idx:
            self.free[np.asarray(idx, dtype=np.int64)] = False

    def _code(self, X: np.ndarray) -> np.ndarray:
        """Codes of encoded rows; a value no grid point has gets -1 (it matches nothing)."""
        C = np.empty(X.shape, dtype=np.int16)
        for j, values in enumerate(self._values):
            pos = np.clip(np.searchsorted(values, X[:, j]), 0, len(values) - 1)
            C[:, j] = np.where(np.isclose(values[pos], X[:, j], rtol=1e-12, atol=1e-12), pos, -1)
        return C

    def rows_of(self, X: np.ndarray) -> np.ndarray | None:
        """Grid row of each encoded row of ``X`` (-1: not a grid point, i.e. infeasible), by lookup in the sorted
        mixed-radix index; None when the grid has no such index (more than 2**62 code combinations)."""
        if not self._shells:
            return None
        C = self._code(np.asarray(X, dtype=float)).astype(np.int64)
        out = np.full(len(C), -1, dtype=np.int64)
        valid = (C >= 0).all(axis=1)
        if valid.any():
            out[valid] = self._find(C[valid] @ self._stride)
        return out

    def _find(self, flat: np.ndarray) -> np.ndarray:
        """Grid row of each mixed-radix index in ``flat``; -1 where no grid point has it."""
        pos = np.minimum(np.searchsorted(self._sorted, flat), len(self._sorted) - 1)
        return np.where(self._sorted[pos] == flat, self._order[pos], -1)

    def nearest(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each encoded row of ``X``, the grid row of the nearest free point, all distinct (-1 when none is
        left). The chosen points are NOT marked: the caller marks what it hands out.

        A child whose own point or a neighbour differing in one parameter is free gets it from a lookup of the
        enumerated neighbours in the sorted mixed-radix index of the grid (tens of microseconds, whatever the
        grid's size). Otherwise the child is compared with every free point at once: the number of parameters
        they share is the popcount of their one-hot codes ANDed (one pass over a few 64-bit words per point).
        """
        out = np.full(len(X), -1, dtype=np.int64)
        if not len(X) or not self.free.any():
            return out
        C = self._code(np.asarray(X, dtype=float))
        taken: list[int] = []
        scan: list[np.ndarray] = []    # [free rows, their bit words], built on the first scan
        for i, c in enumerate(C):
            pick = self._shell(c, taken, rng)
            if pick == -2:
                if not scan:
                    rows = np.flatnonzero(self.free)
                    scan = [rows, self._bits[rows]]
                pick = self._scan(c, taken, rng, *scan)
            if pick >= 0:
                taken.append(pick)
                out[i] = pick
        return out

    def _shell(self, c: np.ndarray, taken: list[int], rng: np.random.Generator) -> int:
        """The nearest free point not in ``taken`` at Hamming distance <= 1 from the codes ``c`` (a column coded -1
        has to change), or -2 if there is none."""
        if not self._shells:
            return -2
        forced = np.flatnonzero(c < 0)
        if len(forced) > 1:
            return -2
        cc = np.maximum(c, 0).astype(np.int64)
        base = int(cc @ self._stride)
        if len(forced) == 0:
            rows = self._lookup(np.array([base], dtype=np.int64), taken)
            if len(rows):
                return int(rows[0])
            other = self._step_code != cc[self._step_col]
            cand = base - cc[self._step_col[other]] * self._stride[self._step_col[other]] + self._step_off[other]
        else:
            col = self._step_col == forced[0]
            cand = base + self._step_off[col]     # the forced column's code is 0 in base
        rows = self._lookup(cand, taken)
        return self._closest(rows, c, rng) if len(rows) else -2

    def _lookup(self, flat: np.ndarray, taken: list[int]) -> np.ndarray:
        """Grid rows of the mixed-radix indices ``flat`` that exist, are free and are not in ``taken``."""
        rows = self._find(flat)
        rows = rows[rows >= 0]
        rows = rows[self.free[rows]]
        if taken and len(rows):
            rows = rows[~np.isin(rows, taken)]
        return rows

    def _scan(self, c: np.ndarray, taken: list[int], rng: np.random.Generator, rows: np.ndarray,
              bits: np.ndarray) -> int:
        """The nearest of the free points ``rows`` (one-hot words ``bits``) not in ``taken``; -1 if none is left."""
        mine = np.zeros(bits.shape[1], dtype=np.uint64)
        for j, code in enumerate(c.tolist()):
            if code >= 0:
                pos = int(self._bit_offset[j]) + code
                mine[pos // 64] |= np.uint64(1) << np.uint64(pos % 64)
        same = _popcount(bits & mine).sum(axis=1, dtype=np.int64)
        if taken:
            same[np.searchsorted(rows, taken)] = -1     # taken points are free, so they are in rows
        best = same.max() if len(same) else -1
        if best < 0:
            return -1
        return self._closest(rows[same == best], c, rng)

    def _closest(self, rows: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> int:
        """Of grid ``rows`` (as many changes from ``c`` each), the one with the smallest ordinal moves, ties at
        random."""
        score = rng.random(len(rows)) * 1e-6
        if len(self._ordinal):
            o = self._ordinal
            score += (np.abs(self.codes[rows][:, o].astype(float) - c[o]) / self._span[o]).sum(axis=1)
        return int(rows[np.argmin(score)])

    def free_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Up to ``n`` free grid rows, uniformly at random."""
        free = np.flatnonzero(self.free)
        return free if len(free) <= n else rng.choice(free, n, replace=False)


def projector_for(optimizer: Any) -> Projector | None:
    """A ``Projector`` over ``optimizer.space`` with every configuration it has seen (``seen_keys()``, its public
    interface: ``space``, ``encoder``, ``space_size``, ``seen_keys``) marked, or None when the
    space is continuous or has more than ``PROJECT_MAX`` feasible points (the grid is enumerated at most that
    far: ``space.grid(max_points=PROJECT_MAX)``)."""
    from dse.errors import SpaceError

    from .base import EXACT_SIZE_LIMIT

    space = optimizer.space
    if not space.is_discrete:
        return None
    exact = math.prod(float(p.n_values) for p in space.params.values()) <= EXACT_SIZE_LIMIT
    if exact and optimizer.space_size > PROJECT_MAX:
        return None
    try:
        grid = space.grid(max_points=PROJECT_MAX)
    except SpaceError:
        return None
    proj = Projector(optimizer.encoder, grid)
    proj.mark(optimizer.seen_keys())
    return proj


def stratified(X: np.ndarray, kinds: Iterable[str], n_values: Iterable[int], n: int,
               rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` rows of the encoded pool ``X`` that spread every column's values as evenly as possible.

    Each column is cut into strata: a nominal column by value, an ordinal or real column into ``min(n, values)``
    equal-width bins of its range (``values`` = 0: ``n`` bins). Rows are picked greedily, each maximizing the sum
    over columns of ``1 / (1 + rows already picked in its stratum)`` (ties at random).
    """
    X = np.asarray(X, dtype=float)
    if len(X) <= n:
        return np.arange(len(X))
    S = np.empty((X.shape[0], X.shape[1]), dtype=np.int64)
    for j, (kind, nv) in enumerate(zip(kinds, n_values)):
        col = X[:, j]
        if kind == "nominal":
            S[:, j] = np.unique(col, return_inverse=True)[1]
        else:
            bins = max(1, min(n, int(nv) if nv else n))
            lo, hi = float(col.min()), float(col.max())
            z = (col - lo) / (hi - lo) if hi > lo else np.zeros(len(col))
            S[:, j] = np.clip((z * bins).astype(np.int64), 0, bins - 1)
    counts = [np.zeros(int(S[:, j].max()) + 1) for j in range(S.shape[1])]
    score_noise = rng.random(len(X)) * 1e-3
    available = np.ones(len(X), dtype=bool)
    chosen = np.empty(n, dtype=np.int64)
    for k in range(n):
        score = score_noise.copy()
        for j, cnt in enumerate(counts):
            score += 1.0 / (1.0 + cnt[S[:, j]])
        score[~available] = -np.inf
        i = int(np.argmax(score))
        chosen[k] = i
        available[i] = False
        for j, cnt in enumerate(counts):
            cnt[S[i, j]] += 1
    return chosen


class ProjectionRepair:
    """Repair operator ``"project"`` (pymoo style: an optimizer is composed with it): children that break a rule or
    repeat a seen configuration are replaced by their nearest valid unseen configuration of the feasible grid
    (``Projector``: fewest parameters changed, then smallest ordinal moves)."""

    name = "project"

    def __init__(self, projector: Projector) -> None:
        self.projector = projector

    def offspring(self, opt: Any, n: int, exclude: set) -> Batch:
        """``n`` children of ``opt`` (``vary``), repaired; adds their keys to ``exclude``."""
        proj = self.projector
        proj.mark(exclude)
        X = opt.vary(max(1, math.ceil(n / 2)))[:n]
        Xc = opt.encoder.snap(X)
        rows = proj.rows_of(Xc)
        if rows is None:
            return self._checked(opt, X, exclude)
        # the grid holds exactly the feasible points, and a free one was neither told, asked nor excluded; a
        # child repeated in this batch keeps its first occurrence
        ok = rows >= 0
        ok[ok] = proj.free[rows[ok]]
        idx = np.flatnonzero(ok)
        first = np.zeros(len(rows), dtype=bool)
        first[idx[np.unique(rows[idx], return_index=True)[1]]] = True
        good = rows[first]
        proj.free[good] = False
        near = proj.nearest(Xc[~first], opt.rng)
        rows = np.concatenate([good, near[near >= 0]])
        out = proj.batch(rows) if len(rows) else opt.empty_batch()
        exclude.update(out.keys.tolist())
        return out

    def _checked(self, opt: Any, X: np.ndarray, exclude: set) -> Batch:
        """``offspring`` for a grid without a mixed-radix index: children checked by decoding them."""
        proj = self.projector
        cand, keys, Xc = opt.encoder.decode_all(X)
        ok = opt.usable(cand, keys, exclude, check=bool(opt.space.constraints))
        parts = [Batch(cand, keys, Xc).take(ok)] if ok.any() else []
        if not ok.all():
            proj.mark(keys[ok].tolist())
            near = proj.nearest(Xc[~ok], opt.rng)
            near = near[near >= 0]
            if len(near):
                parts.append(proj.batch(near))
        out = opt.concat(parts)
        exclude.update(out.keys.tolist())
        return out


class ResampleRepair:
    """Repair operator ``"resample"`` (continuous or larger spaces): children that break a rule or repeat a seen
    configuration are discarded and the variation repeated, up to ``rounds`` rounds, oversampled by the running
    share of usable children."""

    name = "resample"

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.share = 0.5   # running share of offspring that are feasible and new

    def offspring(self, opt: Any, n: int, exclude: set) -> Batch:
        """Up to ``n`` new feasible children of ``opt`` (``vary``); adds their keys to ``exclude``."""
        got: list[Batch] = []
        have = 0
        for _ in range(self.rounds):
            need = n - have
            if need <= 0:
                break
            # 2 children per mating, scaled by the share of usable children seen so far (tight constraints,
            # a crowded discrete space): about 1.25x what is needed, at most 64x
            n_matings = max(8, math.ceil(need * 0.625 / self.share))
            cand, keys, Xc = opt.encoder.decode_all(opt.vary(n_matings))
            # decoded values are in their domains and conditions are applied: only constraints can fail
            sel = opt.select_new(cand, need, exclude, check=bool(opt.space.constraints), keys=keys, X=Xc)
            rate = len(sel) / len(cand) if len(sel) < need else max(len(sel) / len(cand), self.share)
            self.share = float(np.clip(0.5 * self.share + 0.5 * rate, 1 / 64, 1.0))
            if len(sel):
                got.append(sel)
                exclude.update(sel.keys.tolist())
                have += len(sel)
        return opt.concat(got)
