"""The points of a :class:`dse.space.Space`: random feasible samples (vectorized rejection sampling, with a grid
fallback for tight constraints) and the feasible grid of a discrete space (enumerated stage by stage, each
constraint applied as soon as its parameters are placed, in chunks of ``_CHUNK`` rows).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

from dse.errors import SpaceError
from dse.expr import Expr
from dse.params import _is_integer
from dse.space_columns import _frame, _output_dtype
from dse.space_rules import SpaceRules

DEFAULT_MAX_POINTS = 20_000_000
"""Default bound on the number of rows :meth:`Space.grid` returns."""
_CHUNK = 2_000_000  # rows of the grid enumeration processed at once
_MIN_FRACTION = 1e-4  # sample(): smallest feasible fraction rejection sampling goes on with


class SpacePoints(SpaceRules):
    """Sampling and grid enumeration over the rules of a space."""

    # -- sample ----------------------------------------------------------------------------------------------
    def _draw(self, rng: np.random.Generator, m: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raw: dict[str, np.ndarray] = {}
        off: dict[str, np.ndarray] = {}
        for name, p in self._params.items():
            vals = p._sample(rng, m)
            cond = self._conds.get(name)
            raw[name] = vals
            off[name] = (
                np.zeros(m, dtype=bool) if cond is None else ~cond.evaluate(raw, m, missing=off, if_missing=False)
            )
        return raw, off

    def sample(self, n: int, seed: int | None = None) -> pd.DataFrame:
        """``n`` random feasible configurations (vectorized rejection sampling), reproducible for a given seed.

        Each parameter is drawn independently (log-uniformly with ``log=True``); inactive conditional parameters
        are missing. If fewer than 1 in 10^4 of at least 10^5 draws is feasible (or 5e7 draws were not enough), a
        discrete space of at most 1e8 points before constraints falls back to drawing uniformly from its grid;
        otherwise :class:`SpaceError` names the constraints.
        """
        if not _is_integer(n) or n < 0:
            raise SpaceError(f"sample(n): n must be a non-negative integer, got {n!r}")
        n = int(n)
        if seed is not None and not _is_integer(seed):
            raise TypeError(f"sample(seed): seed must be an integer or None, got {seed!r:.80}")
        rng = np.random.default_rng(seed)
        pieces: list[pd.DataFrame] = []
        have = drawn = 0
        while have < n:
            rate = (have + 1) / (drawn + 1) if drawn else 1.0
            m = int(min(max((n - have) / rate * 1.2 + 16, 64), 1_000_000))
            raw, off = self._draw(rng, m)
            ok = self._constraint_mask(raw, off, m)
            df = self._to_frame(raw, off, m)
            if self._callables:
                ok &= self._callable_mask(df)
            drawn += m
            if ok.any():
                keep = df[ok].iloc[: n - have]
                pieces.append(keep)
                have += len(keep)
            if have < n and ((drawn >= 100_000 and have < drawn * _MIN_FRACTION) or drawn >= 50_000_000):
                return self._sample_fallback(n, rng, have, drawn)
        if not pieces:
            return self._to_frame(*self._draw(rng, 0), 0)
        out = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0].reset_index(drop=True)
        return out

    def no_feasible_point(self) -> SpaceError:
        """The error of a space whose constraints exclude every configuration (sampling it, or its empty grid),
        naming the constraints that no combination of their own parameters' values meets, where one does."""
        labels = [lab for _, lab in self._constraint_labels()]
        alone = [f"constraint {e.text!r} holds for no value of "
                 + ", ".join(f"{n} {self._params[n].values().tolist()}" for n in e.names)
                 for e in self._exprs if self._never_holds(e)]
        if alone:
            return SpaceError(f"the space has no feasible point: {'; '.join(alone)} (all constraints: {labels})")
        return SpaceError(f"the space has no feasible point: constraints {labels} exclude every configuration")

    def _never_holds(self, expr: Expr, limit: int = 100_000) -> bool:
        """Whether ``expr`` is false on every combination of the values of the parameters it names (discrete,
        always active ones; at most ``limit`` combinations, else False: not checked)."""
        params = [self._params[n] for n in expr.names]
        if not params or any(not p.is_discrete or n in self._conds for n, p in zip(expr.names, params)) \
                or math.prod(float(p.n_values) for p in params) > limit:
            return False
        grids = np.meshgrid(*[p.values() for p in params], indexing="ij")
        cols = {n: g.ravel() for n, g in zip(expr.names, grids)}
        k = len(next(iter(cols.values())))
        return not expr.evaluate(cols, k, missing={n: np.zeros(k, dtype=bool) for n in expr.names}).any()

    def _sample_fallback(self, n: int, rng: np.random.Generator, have: int, drawn: int) -> pd.DataFrame:
        labels = [lab for _, lab in self._constraint_labels()]
        if self.is_discrete and self._enumerable():
            grid = self.grid()
            if len(grid) == 0:
                raise self.no_feasible_point()
            return grid.iloc[np.sort(rng.integers(0, len(grid), n))].reset_index(drop=True)
        raise SpaceError(
            f"cannot sample {n} feasible configurations: only {have} of {drawn} random draws satisfied the "
            f"constraints {labels} (feasible fraction {have / drawn:.2g}); loosen the constraints"
        )

    def _enumerable(self) -> bool:
        return math.prod(float(p.n_values) for p in self._params.values()) <= 1e8

    # -- grid ------------------------------------------------------------------------------------------------
    def _enumerate(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield chunks of the feasible grid as value-index arrays (``-1`` = inactive), in grid order."""
        continuous = [n for n, p in self._params.items() if not p.is_discrete]
        if continuous:
            raise SpaceError(f"the space is not discrete: {continuous} are continuous (give Float a step=)")
        names = self.names
        values = {n: self._params[n].values() for n in names}
        # each string constraint runs as soon as the last parameter it names is placed
        stage_of: dict[int, list[Expr]] = {}
        for expr in self._exprs:
            last = max((names.index(x) for x in expr.names), default=0)
            stage_of.setdefault(last, []).append(expr)

        def columns(codes: dict[str, np.ndarray], used: Iterable[str]) -> tuple[dict, dict]:
            raw, off = {}, {}
            for u in used:
                c = codes[u]
                off[u] = c < 0
                raw[u] = values[u][np.maximum(c, 0)]
            return raw, off

        def expand(stage: int, codes: dict[str, np.ndarray], n: int) -> Iterator[dict[str, np.ndarray]]:
            if n == 0:
                return
            if stage == len(names):
                if self._callables:
                    df = self._frame_from_codes(codes, values, n)
                    keep = self._callable_mask(df)
                    codes = {k: v[keep] for k, v in codes.items()}
                yield codes
                return
            name = names[stage]
            k = len(values[name])
            cond = self._conds.get(name)
            if cond is None:
                total = n * k
                if total > _CHUNK and n > 1:
                    step = max(1, _CHUNK // k)
                    for s in range(0, n, step):
                        yield from expand(stage, {a: b[s : s + step] for a, b in codes.items()}, min(step, n - s))
                    return
                new = {a: np.repeat(b, k) for a, b in codes.items()}
                new[name] = np.tile(np.arange(k, dtype=np.int32), n)
            else:
                raw, off = columns(codes, cond.names)
                act = cond.evaluate(raw, n, missing=off, if_missing=False)
                counts = np.where(act, k, 1)
                ends = np.cumsum(counts)
                total = int(ends[-1])
                if total > _CHUNK and n > 1:
                    cuts = np.searchsorted(ends, np.arange(_CHUNK, total, _CHUNK), side="left")
                    bounds = np.unique(np.concatenate([[0], np.maximum(cuts, 1), [n]]))
                    for s, e in zip(bounds[:-1], bounds[1:]):
                        yield from expand(stage, {a: b[s:e] for a, b in codes.items()}, int(e - s))
                    return
                rep = np.repeat(np.arange(n), counts)
                new = {a: b[rep] for a, b in codes.items()}
                idx = (np.arange(total) - np.repeat(ends - counts, counts)).astype(np.int32)
                idx[~act[rep]] = -1
                new[name] = idx
            n = total
            exprs = stage_of.get(stage)
            if exprs:
                used = sorted({u for e in exprs for u in e.names})
                raw, off = columns(new, used)
                keep = self._constraint_mask(raw, off, n, exprs)
                if not keep.all():
                    new = {a: b[keep] for a, b in new.items()}
                    n = int(keep.sum())
            yield from expand(stage + 1, new, n)

        yield from expand(0, {}, 1)

    def _frame_from_codes(self, codes: dict[str, np.ndarray], values: dict[str, np.ndarray], n: int) -> pd.DataFrame:
        cols = {}
        for name, p in self._params.items():
            c = codes[name]
            vals = values[name]
            if p.when is not None:  # index -1 (inactive) picks the trailing missing value
                dtype = _output_dtype(p)
                ext = np.empty(len(vals) + 1, dtype=dtype)
                ext[:-1] = vals
                ext[-1] = np.nan if dtype.kind == "f" else None
                cols[name] = ext[c]
            else:
                cols[name] = vals[c]
        return _frame(cols, n)

    def grid(self, max_points: int = DEFAULT_MAX_POINTS) -> pd.DataFrame:
        """Every feasible point of a discrete space, one row each, columns = parameter names.

        Order: lexicographic in parameter order (first parameter slowest), each parameter's values in their
        listed order. Raises :class:`SpaceError` for a space with a continuous parameter or more than
        ``max_points`` feasible points.
        """
        chunks = []
        total = 0
        for codes in self._enumerate():
            total += len(codes[self.names[0]])
            if total > max_points:
                raise SpaceError(
                    f"the grid has more than max_points={max_points} feasible points; add constraints, coarsen "
                    f"the parameters or raise max_points"
                )
            chunks.append(codes)
        self._count = total
        values = {n: self._params[n].values() for n in self.names}
        if not chunks:
            codes = {n: np.zeros(0, dtype=np.int32) for n in self.names}
        elif len(chunks) == 1:
            codes = chunks[0]
        else:
            codes = {n: np.concatenate([c[n] for c in chunks]) for n in self.names}
        return self._frame_from_codes(codes, values, total)

