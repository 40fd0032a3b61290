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

Modules by job: :mod:`dse.params` (the parameter types), :mod:`dse.space_rules` (definition checks, conditions and
constraint masks), :mod:`dse.space_points` (sampling and grid enumeration), :mod:`dse.space_columns` (canonical
values <-> DataFrame columns); this module holds the :class:`Space` facade (size, validation, serialization).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import SpaceError
from dse.params import MAX_VALUES, Categorical, Float, Int, Param
from dse.space_points import DEFAULT_MAX_POINTS as DEFAULT_MAX_POINTS
from dse.space_points import SpacePoints

__all__ = ["Param", "Categorical", "Int", "Float", "Space", "Constraint"]

Constraint = str | Callable[[pd.DataFrame], Any]
"""A constraint: a safe expression string or a callable ``DataFrame -> bool array`` (True = allowed)."""


class Space(SpacePoints):
    """An ordered set of parameters with conditions and constraints.

    ``Space(a=Categorical([...]), b=Int(1, 8), constraints=["b <= 4 or a == 'x'"])`` or
    ``Space({"a": ..., "b": ...}, constraints=[...])``. Invalid definitions raise :class:`SpaceError` /
    :class:`ExpressionError` (a subclass) naming the bad value, or ``TypeError`` for values of the wrong type.
    """

    @property
    def size(self) -> int | float:
        """Number of feasible points of a discrete space (conditions and constraints applied); ``math.inf`` for
        a space with a continuous parameter. SpaceError where conditions or constraints apply to a parameter of
        more values than can be listed (they are counted by enumerating the grid)."""
        if not self.is_discrete:
            return math.inf
        if self._count is None:
            if not self._conds and not self._exprs and not self._callables:
                self._count = math.prod(int(p.n_values) for p in self._params.values())
            elif big := [n for n, p in self._params.items() if p.n_values > MAX_VALUES]:
                # conditions and constraints are counted by enumerating the grid, which lists every value
                raise SpaceError(f"the space's feasible points cannot be counted: {big} have more than "
                                 f"{MAX_VALUES:,} values each, too many to list for its conditions and "
                                 f"constraints; give them a larger step")
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
