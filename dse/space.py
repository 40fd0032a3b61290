"""Search spaces: parameters, conditions, constraints, the feasible grid and random samples.

A :class:`Space` is an ordered set of named parameters (:class:`Categorical`, :class:`Int`, :class:`Float`),
optional *conditions* (``when="mode == 'disagg'"``: the parameter is active only where the expression over
earlier parameters is true) and *constraints* (safe expressions from :mod:`dse.expr`, or callables taking a
DataFrame batch and returning a bool array). Every operation is vectorized over a batch of configurations.

Conventions
- An inactive conditional parameter has a missing value: ``None`` in object (str/bool) columns, NaN in numeric
  columns. It does not multiply the grid size.
- Inactive values are *unknown* inside expressions (three-valued logic, see :mod:`dse.expr`): a constraint that
  cannot be decided without an inactive parameter holds (``"k > 1"`` does not apply where ``k`` is inactive),
  one decided by the active parameters alone is enforced (``"mode == 'b' and k > 1"`` excludes ``mode != 'b'``).
  A condition that cannot be decided is false (a parameter whose parent is inactive is inactive).
- A row where a constraint hits an arithmetic error (division by zero, log of a non-positive number) is infeasible.
- DataFrame dtypes, fixed per parameter: int64 for unconditional integer parameters, float64 for other numeric ones
  (conditional numeric parameters included: NaN = missing), bool for unconditional boolean categoricals, object
  (plain Python ``str``/``bool``/``None``) otherwise, so ``df.to_dict("records")`` yields JSON-serializable values.
"""
from __future__ import annotations

import hashlib
import json
import keyword
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from dse.errors import ExpressionError, SpaceError
from dse.expr import Expr, missing_mask, parse
from dse.params import (  # noqa: F401  (the parameter types are re-exported: dse.space.Categorical, ...)
    MAX_VALUES,
    Categorical,
    Float,
    Int,
    Param,
    _fmt,
    _is_integer,
    _is_real,
    to_plain,
)

__all__ = ["Param", "Categorical", "Int", "Float", "Space", "Constraint"]

Constraint = str | Callable[[pd.DataFrame], Any]
"""A constraint: a safe expression string or a callable ``DataFrame -> bool array`` (True = allowed)."""

DEFAULT_MAX_POINTS = 20_000_000
"""Default bound on the number of rows :meth:`Space.grid` returns."""
_CHUNK = 2_000_000  # rows of the grid enumeration processed at once
_MIN_FRACTION = 1e-4  # sample(): smallest feasible fraction rejection sampling goes on with

# ==============================================================================================================
# Columns: canonical (raw array + missing mask) <-> DataFrame column
# ==============================================================================================================


def _output_dtype(p: Param) -> np.dtype:
    """Column dtype: the parameter's own for an unconditional parameter; for a conditional one (values may be
    missing) float64 (NaN) if numeric, else object (None), whether or not a given batch has missing values."""
    if p.when is None:
        return p.dtype
    return np.dtype(np.float64) if p.dtype.kind in "iuf" else np.dtype(object)


def _output_column(p: Param, raw: np.ndarray, miss: np.ndarray | None) -> np.ndarray:
    """The DataFrame column for canonical values ``raw`` with ``miss`` rows missing."""
    dtype = _output_dtype(p)
    if raw.dtype == dtype and (miss is None or not miss.any()):
        return raw
    out = raw.astype(dtype)
    if miss is not None and miss.any():
        out[miss] = np.nan if dtype.kind == "f" else None
    return out


def _frame(columns: dict[str, np.ndarray], n: int) -> pd.DataFrame:
    data = {
        name: (pd.Series(col, dtype=object, copy=False) if col.dtype == object else col) for name, col in columns.items()
    }
    df = pd.DataFrame(data, copy=False)
    if not columns:
        df = pd.DataFrame(index=range(n))
    df.index = pd.RangeIndex(n)
    return df


def _canonical(p: Param, col: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(raw, miss, valid)`` for a user column: canonical values (placeholders where not valid), missing mask,
    and domain membership of the present values."""
    n = len(col)
    miss = missing_mask(col)
    if isinstance(p, Categorical) and p.kind == "str":
        obj = col if col.dtype == object else col.astype(object)
        try:
            valid = pd.Series(obj, dtype=object, copy=False).isin(p.choices).to_numpy(dtype=bool) & ~miss
        except TypeError:  # unhashable cells (lists, dicts): compare one by one
            valid = np.fromiter((isinstance(v, str) and v in p.choices for v in obj), dtype=bool, count=n)
        raw = obj if valid.all() else np.where(valid, obj, p.choices[0])
        return raw, miss, valid
    if isinstance(p, Categorical) and p.kind == "bool":
        if col.dtype == bool:
            return col, miss, np.ones(n, dtype=bool)
        valid = np.fromiter((type(v) in (bool, np.bool_) for v in col), dtype=bool, count=n) & ~miss
        raw = np.where(valid, col, p.choices[0]).astype(bool)
        return raw, miss, valid
    # numeric parameters
    if col.dtype.kind in "iuf":
        x = col.astype(np.float64, copy=False)
        bad_type = np.zeros(n, dtype=bool)
    elif col.dtype.kind == "b":
        x = np.zeros(n)
        bad_type = np.ones(n, dtype=bool)
    else:
        obj = col.astype(object)
        is_bool = np.fromiter((type(v) in (bool, np.bool_) for v in obj), dtype=bool, count=n)
        x = pd.to_numeric(pd.Series(obj, dtype=object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad_type = is_bool | (np.isnan(x) & ~miss)
    with np.errstate(invalid="ignore"):
        valid = ~miss & ~bad_type & np.isfinite(x)
        valid &= p._in_domain(np.where(valid, x, np.nan)) | ~valid
        valid &= ~miss & ~bad_type & np.isfinite(x)
    dtype = p.dtype
    fill = float(cast(Any, p.first))
    raw = np.where(valid, x, fill)
    if dtype.kind == "i":
        raw = np.round(raw).astype(np.int64)
    return raw, miss, valid


# ==============================================================================================================
# Space
# ==============================================================================================================


class Space:
    """An ordered set of parameters with conditions and constraints.

    ``Space(a=Categorical([...]), b=Int(1, 8), constraints=["b <= 4 or a == 'x'"])`` or
    ``Space({"a": ..., "b": ...}, constraints=[...])``. Invalid definitions raise :class:`SpaceError` /
    :class:`ExpressionError` (a subclass) naming the bad value, or ``TypeError`` for values of the wrong type.
    """

    def __init__(
        self,
        params: Mapping[str, Param] | None = None,
        /,
        *,
        constraints: Sequence[str | Callable[[pd.DataFrame], Any]] | str | Callable[[pd.DataFrame], Any] | None = (),
        **kwparams: Param,
    ):
        merged: dict[str, Param] = {}
        if params is not None:
            if not isinstance(params, Mapping):
                raise TypeError(f"Space parameters must be a mapping name -> Param, got {type(params).__name__}")
            merged.update(params)
        for k, v in kwparams.items():
            if k in merged:
                raise SpaceError(f"parameter {k!r} is given twice")
            merged[k] = v
        if not merged:
            raise SpaceError("a Space needs at least one parameter, e.g. Space(x=Float(0, 1))")
        for name, p in merged.items():
            if not isinstance(name, str):
                raise TypeError(f"parameter names must be str, got {type(name).__name__} {name!r:.80}")
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__") or not name.isascii():
                raise SpaceError(
                    f"parameter name {name!r} is not allowed: use a Python identifier (letters, digits, '_'), "
                    f"not a keyword, not starting with '__'"
                )
            if not isinstance(p, Param):
                raise TypeError(
                    f"parameter {name!r} must be a Categorical, Int or Float, got {type(p).__name__} {p!r:.80}"
                )
        self._params: dict[str, Param] = merged
        names = list(merged)

        # conditions: only earlier parameters, no cycles
        self._conds: dict[str, Expr] = {}
        for i, (name, p) in enumerate(merged.items()):
            if p.when is None:
                continue
            before = names[:i]
            try:
                expr = parse(p.when, [n for n in names if n != name])
            except ExpressionError as exc:
                raise ExpressionError(f"condition of {name!r}: {exc}") from None
            late = [n for n in expr.names if n not in before]
            if late:
                raise SpaceError(
                    f"condition of {name!r} ({p.when!r}) references {late}, defined after {name!r}; a condition "
                    f"may reference only parameters defined before it: {before}"
                )
            self._conds[name] = expr

        # constraints
        if constraints is None:
            constraints = ()
        if isinstance(constraints, str) or callable(constraints):
            constraints = [constraints]
        if not isinstance(constraints, (list, tuple)):
            raise TypeError(f"constraints must be a list of expression strings or callables, got {type(constraints).__name__}")
        self._exprs: list[Expr] = []
        self._callables: list[tuple[str, Callable[[pd.DataFrame], Any]]] = []
        for c in constraints:
            if isinstance(c, str):
                self._exprs.append(parse(c, names))
            elif callable(c):
                label = getattr(c, "__name__", None) or type(c).__name__
                self._callables.append((str(label), c))
            else:
                raise TypeError(f"a constraint must be an expression string or a callable, got {type(c).__name__} {c!r:.80}")
        self._constraints = tuple(constraints)
        self._typecheck()
        self._count: int | None = None

    # -- attributes ------------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Param]:
        """Parameters by name, in definition order (a copy)."""
        return dict(self._params)

    @property
    def names(self) -> list[str]:
        return list(self._params)

    @property
    def constraints(self) -> tuple[str | Callable[[pd.DataFrame], Any], ...]:
        return self._constraints

    @property
    def conditions(self) -> dict[str, str]:
        """``when`` text of each conditional parameter."""
        return {n: e.text for n, e in self._conds.items()}

    @property
    def is_discrete(self) -> bool:
        return all(p.is_discrete for p in self._params.values())

    @property
    def size(self) -> int | float:
        """Number of feasible points of a discrete space (conditions and constraints applied); ``math.inf`` for
        a space with a continuous parameter."""
        if not self.is_discrete:
            return math.inf
        if self._count is None:
            if not self._conds and not self._exprs and not self._callables:
                self._count = math.prod(int(p.n_values) for p in self._params.values())
            else:
                self._count = sum(len(next(iter(c.values()))) for c in self._enumerate())
        return self._count

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={p!r}" for n, p in self._params.items())
        cons = [c if isinstance(c, str) else f"<callable {lab}>" for c, lab in self._constraint_labels()]
        return f"Space({body}" + (f", constraints={cons!r})" if cons else ")")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def _constraint_labels(self) -> list[tuple[Any, str]]:
        out = []
        ci = 0
        for c in self._constraints:
            if isinstance(c, str):
                out.append((c, c))
            else:
                out.append((c, self._callables[ci][0]))
                ci += 1
        return out

    # -- definition-time checks ------------------------------------------------------------------------------
    def _typecheck(self) -> None:
        """Evaluate every expression on a few values of each parameter so that type errors (ordering a str
        against a number, arithmetic on str) are reported at definition time."""
        k = 8
        cols = {}
        for name, p in self._params.items():
            probe = p._probe()
            cols[name] = probe[np.arange(k) % len(probe)]
        no_missing = {name: np.zeros(k, dtype=bool) for name in self._params}
        for name, expr in self._conds.items():
            try:
                expr.evaluate(cols, k, missing=no_missing)
            except ExpressionError as exc:
                raise ExpressionError(f"condition of {name!r}: {exc}") from None
        for expr in self._exprs:
            expr.evaluate(cols, k, missing=no_missing)

    # -- batch evaluation ------------------------------------------------------------------------------------
    def _constraint_mask(self, raw: Mapping[str, np.ndarray], inactive: Mapping[str, np.ndarray], n: int,
                         exprs: Iterable[Expr] | None = None) -> np.ndarray:
        ok = np.ones(n, dtype=bool)
        for expr in self._exprs if exprs is None else exprs:
            ok &= expr.evaluate(raw, n, missing=inactive, if_missing=True)
        return ok

    def _callable_mask(self, df: pd.DataFrame, each: bool = False) -> Any:
        """AND of the callable constraints over ``df`` (with ``each=True``: the list of their masks)."""
        n = len(df)
        ok = np.ones(n, dtype=bool)
        masks = []
        for label, fn in self._callables:
            res = fn(df)
            arr = np.asarray(res.to_numpy() if isinstance(res, (pd.Series, pd.DataFrame)) else res)
            if arr.shape != (n,) or arr.dtype.kind not in "biuf":
                raise SpaceError(
                    f"constraint callable {label!r} must return a bool array of shape ({n},), "
                    f"got {type(res).__name__} with shape {arr.shape} and dtype {arr.dtype}"
                )
            masks.append(arr.astype(bool))
            ok &= masks[-1]
        return masks if each else ok

    def _analyze(self, df: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Canonical columns, inactive-or-missing masks, domain+condition consistency, active masks."""
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
        absent = [n for n in self._params if n not in df.columns]
        if absent:
            raise SpaceError(f"DataFrame lacks parameter columns {absent}; it has {list(map(str, df.columns))}")
        n = len(df)
        raw: dict[str, np.ndarray] = {}
        off: dict[str, np.ndarray] = {}
        active: dict[str, np.ndarray] = {}
        ok = np.ones(n, dtype=bool)
        for name, p in self._params.items():
            r, miss, valid = _canonical(p, df[name].to_numpy())
            cond = self._conds.get(name)
            act = np.ones(n, dtype=bool) if cond is None else cond.evaluate(raw, n, missing=off, if_missing=False)
            ok &= np.where(act, valid, miss)
            raw[name] = r
            off[name] = ~act | miss | ~valid
            if cond is not None:
                active[name] = act
        return raw, off, ok, active

    def feasible(self, df: pd.DataFrame) -> np.ndarray:
        """Bool array, one per row: values in their domains, conditional parameters missing exactly where their
        condition is false, every constraint satisfied. Columns other than the parameters are ignored."""
        raw, off, ok, _ = self._analyze(df)
        n = len(df)
        if self._exprs and ok.any():
            ok &= self._constraint_mask(raw, off, n)
        if self._callables and ok.any():
            sub = df.loc[ok, self.names] if not ok.all() else df[self.names]
            cm = self._callable_mask(sub.reset_index(drop=True))
            ok[np.flatnonzero(ok)] = cm
        return ok

    def active(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """For each conditional parameter, a bool array: is it active in that row (its condition true and its
        parents active)?"""
        return self._analyze(df)[3]

    # -- validate --------------------------------------------------------------------------------------------
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check one configuration and return it normalized: plain Python values in definition order, inactive
        conditional parameters set to ``None``. Raises :class:`SpaceError` naming the bad parameter/value and
        what is valid."""
        if not isinstance(config, Mapping):
            raise TypeError(f"a configuration must be a mapping name -> value, got {type(config).__name__}")
        unknown = [k for k in config if k not in self._params]
        if unknown:
            raise SpaceError(f"unknown parameter(s) {unknown}; valid parameters: {self.names}")
        out: dict[str, Any] = {}
        raw: dict[str, np.ndarray] = {}
        off: dict[str, np.ndarray] = {}
        for name, p in self._params.items():
            cond = self._conds.get(name)
            act = True if cond is None else bool(cond.evaluate(raw, 1, missing=off, if_missing=False)[0])
            value = config.get(name)
            missing = value is None or (np.ndim(value) == 0 and not isinstance(value, str) and bool(pd.isna(value)))
            if not act:
                out[name] = None
            elif missing:
                why = f" (active because {p.when!r} holds)" if p.when else ""
                raise SpaceError(f"missing parameter {name!r}{why}; expected {p!r}")
            else:
                out[name] = p._normalize(name, value)
            fill = out[name] if act else p.first
            col = np.empty(1, dtype=p.dtype) if p.dtype != object else np.empty(1, dtype=object)
            col[0] = fill
            raw[name] = col
            off[name] = np.array([not act])
        for expr in self._exprs:
            if not expr.evaluate(raw, 1, missing=off, if_missing=True)[0]:
                shown = {n: out[n] for n in expr.names}
                raise SpaceError(f"configuration violates constraint {expr.text!r} with {shown}")
        if self._callables:
            df = self._to_frame(raw, off, 1)
            ok = self._callable_mask(df, each=True)
            for (label, _), good in zip(self._callables, ok):
                if not good[0]:
                    raise SpaceError(f"configuration violates constraint callable {label!r} with {out}")
        return out

    # -- frames ----------------------------------------------------------------------------------------------
    def _to_frame(self, raw: Mapping[str, np.ndarray], off: Mapping[str, np.ndarray], n: int) -> pd.DataFrame:
        cols = {name: _output_column(p, raw[name], off.get(name)) for name, p in self._params.items()}
        return _frame(cols, n)

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

    def _sample_fallback(self, n: int, rng: np.random.Generator, have: int, drawn: int) -> pd.DataFrame:
        labels = [lab for _, lab in self._constraint_labels()]
        if self.is_discrete and self._enumerable():
            grid = self.grid()
            if len(grid) == 0:
                raise SpaceError(f"the space has no feasible point: constraints {labels} exclude every configuration")
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

    # -- serialization ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description; callables are recorded by name (``{"callable": name}``)."""
        cons: list[Any] = []
        for c, label in self._constraint_labels():
            cons.append(c if isinstance(c, str) else {"callable": label})
        return {"params": {n: p.to_dict() for n, p in self._params.items()}, "constraints": cons}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], callables: Mapping[str, Callable[[pd.DataFrame], Any]] | None = None) -> Space:
        """Rebuild a space from :meth:`to_dict` output; ``callables`` maps the names of callable constraints to
        the functions."""
        if not isinstance(d, Mapping) or not isinstance(d.get("params"), Mapping):
            raise SpaceError(f"a space spec must be a mapping with a 'params' mapping, got {d!r:.200}")
        extra = [k for k in d if k not in ("params", "constraints")]
        if extra:
            raise SpaceError(f"unknown keys {extra} in space spec; valid keys: ['params', 'constraints']")
        params = {name: Param.from_dict(spec) for name, spec in d["params"].items()}
        cons: list[Any] = []
        raw_cons = d.get("constraints", [])
        if not isinstance(raw_cons, (list, tuple)):
            raise SpaceError(f"'constraints' must be a list, got {raw_cons!r:.200}")
        for c in raw_cons:
            if isinstance(c, str):
                cons.append(c)
            elif isinstance(c, Mapping) and set(c) == {"callable"}:
                label = c["callable"]
                if callables is None or label not in callables:
                    have = sorted(callables) if callables else []
                    raise SpaceError(
                        f"constraint callable {label!r} is not given; pass callables={{{label!r}: function}} "
                        f"(given: {have})"
                    )
                cons.append(callables[label])
            else:
                raise SpaceError(f"a constraint spec must be a str or {{'callable': name}}, got {c!r:.200}")
        return cls(params, constraints=cons)

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`to_dict`; equal spaces have equal fingerprints."""
        d = self.to_dict()
        canon = {"params": [[n, spec] for n, spec in d["params"].items()], "constraints": d["constraints"]}
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()
