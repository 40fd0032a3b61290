"""Repair by projection onto the valid set, and stratified initial populations, for the evolutionary optimizers.

On ML-systems spaces most random combinations are invalid (the flagship serving space keeps 1.7 % of the product
of its domains: TP x PP must equal the GPU count, FP4 needs FP4 activations and a Blackwell GPU, ...), so a child
of crossover and mutation usually breaks a rule. Discarding it and trying again degenerates into random sampling.

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

import itertools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

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
        X = encoder.encode(self.grid)
        self.keys = encoder.keys(self.grid)
        self._row = dict(zip(self.keys.tolist(), range(len(self.keys))))
        self.free = np.ones(len(self.grid), dtype=bool)
        self._values: list[np.ndarray] = []
        codes = np.empty(X.shape, dtype=np.int16)
        for j in range(X.shape[1]):
            values, codes[:, j] = np.unique(X[:, j], return_inverse=True)
            self._values.append(values)
        self.codes = codes
        self._ordinal = np.flatnonzero(np.asarray(encoder.kinds) != "nominal")
        self._span = np.array([max(len(v) - 1, 1) for v in self._values], dtype=float)
        self._dtype = np.uint8 if X.shape[1] < 255 else np.uint16   # distances <= d; the max value = "taken"
        # mixed-radix index of each point's codes, sorted, for lookups of enumerated neighbours
        self._sizes = np.array([len(v) for v in self._values], dtype=np.int64)
        strides = [math.prod(int(k) for k in self._sizes[j + 1:]) for j in range(X.shape[1])]
        self._radius = X.shape[1] > 0 and strides[0] * int(self._sizes[0]) < 2**62  # else: always scan
        self._stride = np.array(strides if self._radius else [0] * X.shape[1], dtype=np.int64)
        flat = codes.astype(np.int64) @ self._stride
        self._order = np.argsort(flat, kind="stable")
        self._sorted = flat[self._order]

    def __len__(self) -> int:
        return len(self.grid)

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

    def nearest(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each encoded row of ``X``, the grid row of the nearest free point, all distinct (-1 when none is
        left). The chosen points are NOT marked: the caller marks what it hands out.

        Search by growing Hamming radius: the points that differ from a child in exactly r parameters are
        enumerated as mixed-radix indices of their value codes and looked up in the sorted index of the grid
        (a few hundred lookups per child on the flagship space instead of a pass over every free point). When a
        radius would enumerate more points than are free, the child is compared with every free point instead.
        """
        out = np.full(len(X), -1, dtype=np.int64)
        n_free = int(np.count_nonzero(self.free))
        if not n_free or not len(X):
            return out
        C = self._code(np.asarray(X, dtype=float))
        taken: set[int] = set()
        scan: tuple[np.ndarray, np.ndarray] | None = None    # (free rows, their codes), built on first full scan
        for i, c in enumerate(C):
            if len(taken) >= n_free:
                break
            pick = self._by_radius(c, taken, rng, n_free)
            if pick == -2:   # too many neighbours to enumerate: compare with every free point
                if scan is None:
                    free = np.flatnonzero(self.free)
                    scan = (free, self.codes[free])
                free, G = scan
                dist = (G != c).sum(axis=1, dtype=self._dtype)
                taken_pos = np.searchsorted(free, np.fromiter(taken, dtype=np.int64, count=len(taken)))
                j = self._best(dist, G, c, set(taken_pos.tolist()), rng)
                pick = int(free[j]) if j >= 0 else -1
            if pick >= 0:
                taken.add(pick)
                out[i] = pick
        return out

    def _by_radius(self, c: np.ndarray, taken: set[int], rng: np.random.Generator, n_free: int) -> int:
        """Grid row of the nearest free point not in ``taken`` found by enumerating Hamming shells around the codes
        ``c`` (a column coded -1 must change); -1 if none is free; -2 when a shell holds more points than are free
        (the caller scans instead)."""
        d = len(c)
        if not self._radius:
            return -2
        forced = [j for j in range(d) if c[j] < 0]
        others = [j for j in range(d) if c[j] >= 0]
        base_codes = np.where(c < 0, 0, c).astype(np.int64)
        base = int(base_codes @ self._stride)
        sizes = self._sizes
        for r in range(len(forced), d + 1):
            subsets = [tuple(forced) + s for s in itertools.combinations(others, r - len(forced))]
            count = sum(math.prod(int(sizes[j]) - (c[j] >= 0) for j in S) for S in subsets)
            if count > n_free:
                return -2
            if count == 0:
                continue
            parts = []
            for S in subsets:
                flat = np.array([base - sum(int(base_codes[j]) * int(self._stride[j]) for j in S)], dtype=np.int64)
                for j in S:
                    v = np.arange(sizes[j], dtype=np.int64)
                    if c[j] >= 0:
                        v = v[v != c[j]]
                    flat = (flat[:, None] + v[None, :] * self._stride[j]).ravel()
                parts.append(flat)
            flat = np.concatenate(parts)
            pos = np.minimum(np.searchsorted(self._sorted, flat), len(self._sorted) - 1)
            rows = self._order[pos[self._sorted[pos] == flat]]
            rows = rows[self.free[rows]]
            if taken and len(rows):
                rows = rows[~np.isin(rows, np.fromiter(taken, dtype=np.int64, count=len(taken)))]
            if len(rows):
                score = rng.random(len(rows)) * 1e-6
                if len(self._ordinal):
                    o = self._ordinal
                    score += (np.abs(self.codes[rows][:, o].astype(float) - c[o]) / self._span[o]).sum(axis=1)
                return int(rows[np.argmin(score)])
        return -1

    def _best(self, dist: np.ndarray, G: np.ndarray, c: np.ndarray, taken: set[int], rng: np.random.Generator) -> int:
        """Index into G of the closest point not in ``taken``: fewest changes, then smallest ordinal moves, then
        random; -1 if every point is taken."""
        done = np.iinfo(dist.dtype).max
        while True:
            m = dist.min()
            if m == done:
                return -1
            cand = np.flatnonzero(dist == m)
            if taken:
                cand = cand[~np.isin(cand, list(taken))]
            if not len(cand):
                dist = np.where(dist == m, done, dist).astype(dist.dtype)
                continue
            score = rng.random(len(cand)) * 1e-6
            if len(self._ordinal):
                o = self._ordinal
                score += (np.abs(G[cand][:, o].astype(float) - c[o]) / self._span[o]).sum(axis=1)
            return int(cand[np.argmin(score)])

    def free_rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Up to ``n`` free grid rows, uniformly at random."""
        free = np.flatnonzero(self.free)
        return free if len(free) <= n else rng.choice(free, n, replace=False)


def projector_for(optimizer: Any) -> Projector | None:
    """A ``Projector`` over ``optimizer.space`` with every configuration it has seen marked, or None when the
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
    proj.mark(optimizer._told)
    proj.mark(optimizer._pending)
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
    S = np.empty(X.shape, dtype=np.int64)
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
