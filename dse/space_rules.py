"""The rules of a :class:`dse.space.Space`: its parameters, conditions and constraints, parsed and checked when the
space is defined, and the masks they give over a batch of configurations (which rows are feasible, which
conditional parameters are active).
"""
from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import ExpressionError, SpaceError
from dse.expr import Expr, parse
from dse.params import Param
from dse.space_columns import _canonical, _frame, _output_column


class SpaceRules:
    """Parameters, conditions and constraints of a space and their masks over a batch; :class:`dse.space.Space`
    (whose docstring gives the arguments) builds on it."""

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
                expr.evaluate(cols, k, missing=no_missing, every_operand=True)
            except ExpressionError as exc:
                raise ExpressionError(f"condition of {name!r}: {exc}") from None
        for expr in self._exprs:
            expr.evaluate(cols, k, missing=no_missing, every_operand=True)

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

    # -- frames ----------------------------------------------------------------------------------------------
    def _to_frame(self, raw: Mapping[str, np.ndarray], off: Mapping[str, np.ndarray], n: int) -> pd.DataFrame:
        cols = {name: _output_column(p, raw[name], off.get(name)) for name, p in self._params.items()}
        return _frame(cols, n)

