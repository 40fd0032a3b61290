"""Pareto analysis over objective matrices: non-dominated sets, hypervolume, decision making.

Everything here works on a matrix ``F`` (n points x m objectives) plus a direction per column ("min" or
"max"). Non-dominated sorting and hypervolume come from moocore; decision making from pymoo.mcdm.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import moocore
import numpy as np

#: Accepted spellings of an objective direction, normalized to "min" / "max".
from .vocabulary import DIRECTIONS as _DIRECTIONS


def normalize_direction(name: str, direction: str) -> str:
    """Return "min" or "max" for a direction spelling; ValueError naming the metric otherwise."""
    key = str(direction).strip().lower()
    if key not in _DIRECTIONS:
        raise ValueError(
            f"objective {name!r} has direction {direction!r}; valid directions are 'min' or 'max' "
            "(also 'minimize'/'maximize')"
        )
    return _DIRECTIONS[key]


def to_minimization(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Return a float copy of F where every "max" column is negated, so that all columns are minimized."""
    F = np.array(F, dtype=float, copy=True, ndmin=2)
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return F * sign


#: values of one objective this close, relative to their size, are one value to the front (`tied`): the same
#: quantity summed in another order differs in its last bits (a few ulps, ~1e-16 relative), and a point must not
#: stay on (or leave) the front by that alone
TIE_RTOL = 1e-12


def tied(F: np.ndarray, rtol: float = TIE_RTOL) -> np.ndarray:
    """A float copy of ``F`` where, column by column, values equal up to floating-point rounding read as one: the
    column's sorted values are cut into runs, each anchored at its least value and holding the values within
    ``rtol`` x their magnitude of that anchor (so a run spans at most ``rtol``: values 1e-9 apart never chain into
    one), and each value becomes its run's least. Independent of the rows' order; non-finite values are left as
    they are."""
    F = np.array(F, dtype=float, copy=True, ndmin=2)
    for j in range(F.shape[1]):
        col = F[:, j]
        ok = np.flatnonzero(np.isfinite(col))
        if len(ok) < 2:
            continue
        order = ok[np.argsort(col[ok], kind="stable")]
        v = col[order]
        new_run = np.diff(v) > rtol * np.maximum(np.abs(v[1:]), np.abs(v[:-1]))
        start = np.flatnonzero(np.concatenate(([True], new_run)))
        end = np.append(start[1:], len(v)) - 1
        wide = np.flatnonzero(v[end] - v[start] > rtol * np.maximum(np.abs(v[end]), np.abs(v[start])))
        out = np.repeat(v[start], end - start + 1)
        for r in wide:     # a chain of near neighbours wider than rtol (rare): anchored run by run along it
            anchor = v[start[r]]
            for i in range(start[r], end[r] + 1):
                if v[i] - anchor > rtol * max(abs(v[i]), abs(anchor)):
                    anchor = v[i]
                out[i] = anchor
        col[order] = out
    return F


def nondominated_mask(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of F (rows with any non-finite value are never on the front).

    Duplicated non-dominated points are all kept (they are distinct trials with equal objectives). Values of an
    objective equal up to floating-point rounding (relative difference <= `TIE_RTOL`, `tied`) are equal here: a
    point 1 ulp cheaper but worse in another objective is dominated, as it would be if the cost had been summed in
    the other order.
    """
    F = np.asarray(F, dtype=float)
    n = F.shape[0]
    mask = np.zeros(n, dtype=bool)
    finite = np.isfinite(F).all(axis=1) if n else np.zeros(0, dtype=bool)
    if not finite.any():
        return mask
    Fm = tied(to_minimization(F[finite], directions))
    mask[np.flatnonzero(finite)] = moocore.is_nondominated(Fm, keep_weakly=True)
    return mask


def brute_force_nondominated(F: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """O(n^2) reference implementation of :func:`nondominated_mask` (values tied as it ties them), for tests."""
    F = np.asarray(F, dtype=float)
    finite = np.isfinite(F).all(axis=1)
    Fm = to_minimization(F, directions)
    if finite.any():
        Fm[finite] = tied(Fm[finite])
    n = Fm.shape[0]
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if not np.isfinite(Fm[i]).all():
            continue
        dominated = False
        for j in range(n):
            if j != i and np.isfinite(Fm[j]).all() and np.all(Fm[j] <= Fm[i]) and np.any(Fm[j] < Fm[i]):
                dominated = True
                break
        out[i] = not dominated
    return out


@dataclass(frozen=True)
class Hypervolume:
    """A hypervolume value and the reference point it was computed against (in the metrics' own units)."""

    value: float
    ref: dict[str, float]

    def __float__(self) -> float:
        return float(self.value)


def default_reference(F: np.ndarray, directions: Sequence[str], margin: float = 0.1) -> np.ndarray:
    """Nadir of F pushed outward by `margin` times the range (or by |nadir|*margin where the range is 0)."""
    Fm = to_minimization(F, directions)
    lo, hi = Fm.min(axis=0), Fm.max(axis=0)
    span = hi - lo
    span = np.where(span > 0, span, np.maximum(np.abs(hi), 1.0))
    ref_min = hi + margin * span
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return ref_min * sign


def hypervolume(
    F: np.ndarray, names: Sequence[str], directions: Sequence[str], ref: Mapping[str, float] | Sequence[float] | None = None
) -> Hypervolume:
    """Hypervolume of the points F dominate up to `ref` (moocore), with maximized columns handled.

    `ref` is given in the metrics' own units and orientation (for a maximized metric it is a lower bound).
    When None, the reference is the nadir of F pushed out by 10 % of each range.
    """
    F = np.asarray(F, dtype=float)
    if isinstance(ref, Mapping):
        missing = [n for n in names if n not in ref]
        if missing:
            raise ValueError(f"reference point lacks {missing}; it needs a value for each of {list(names)}")
        ref_arr = np.array([float(ref[n]) for n in names])
    elif ref is not None:
        ref_arr = np.asarray(ref, dtype=float)
        if ref_arr.shape != (len(names),):
            raise ValueError(f"reference point {list(ref_arr)} has {ref_arr.size} values; expected {len(names)} for {list(names)}")
    else:
        if F.shape[0] == 0:
            raise ValueError("hypervolume of an empty set needs an explicit reference point")
        ref_arr = default_reference(F, directions)
    ref_dict = {n: float(v) for n, v in zip(names, ref_arr)}
    if F.shape[0] == 0:
        return Hypervolume(0.0, ref_dict)
    Fm = to_minimization(F, directions)
    rm = to_minimization(ref_arr[None, :], directions)[0]
    inside = np.all(Fm < rm, axis=1)
    if not inside.any():
        return Hypervolume(0.0, ref_dict)
    return Hypervolume(float(moocore.hypervolume(Fm[inside], ref=rm)), ref_dict)


def _normalized(Fm: np.ndarray) -> np.ndarray:
    lo, hi = Fm.min(axis=0), Fm.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (Fm - lo) / span


def knee_index(F: np.ndarray, directions: Sequence[str]) -> int:
    """Index (into F) of the knee of a front: pymoo's HighTradeoffPoints, or the point nearest the ideal.

    F should be a non-dominated set. With one point, or when pymoo finds no high-trade-off outlier, the point
    closest (Euclidean, after min-max normalization) to the ideal point is returned.
    """
    from pymoo.mcdm.high_tradeoff import HighTradeoffPoints

    F = np.asarray(F, dtype=float)
    if F.shape[0] == 0:
        raise ValueError("no points to choose a knee from")
    Fn = _normalized(to_minimization(F, directions))
    if F.shape[0] >= 3 and F.shape[1] >= 2:
        try:
            idx = HighTradeoffPoints().do(Fn)
        except Exception:  # pymoo raises on degenerate neighbourhoods; fall back below
            idx = None
        if idx is not None and np.size(idx) > 0:
            idx = np.atleast_1d(idx)
            # several high trade-off points: take the one nearest the ideal
            return int(idx[np.argmin(np.linalg.norm(Fn[idx], axis=1))])
    return int(np.argmin(np.linalg.norm(Fn, axis=1)))


def weighted_index(F: np.ndarray, directions: Sequence[str], weights: Sequence[float]) -> int:
    """Index of the point whose pseudo-weights (pymoo's PseudoWeights) are closest to `weights`."""
    from pymoo.mcdm.pseudo_weights import PseudoWeights

    F = np.asarray(F, dtype=float)
    w = np.asarray(weights, dtype=float)
    if F.shape[0] == 0:
        raise ValueError("no points to choose from")
    if w.shape != (F.shape[1],) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights {list(weights)} must be {F.shape[1]} non-negative numbers with a positive sum")
    if F.shape[0] == 1:
        return 0
    Fn = _normalized(to_minimization(F, directions))
    dm = PseudoWeights(w / w.sum())
    dm.ideal, dm.nadir = np.zeros(F.shape[1]), np.ones(F.shape[1])
    return int(dm.do(Fn))
