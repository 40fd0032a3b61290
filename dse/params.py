"""Parameter types of a search space: :class:`Categorical`, :class:`Int`, :class:`Float`.

Everything that depends on a parameter's type lives on its class, in one place per type: the domain (values,
sampling, membership, normalization of a given value), how it is encoded as a column of the optimizers' float
matrix (:meth:`Param.column`, a :class:`Column`), its Optuna distribution (:meth:`Param.optuna_distribution`)
and the plain Python value a stored or suggested value stands for (:meth:`Param.plain`). A new parameter type is
one new class here; :mod:`dse.space`, :mod:`dse.encoding` and the optimizers ask the parameter.

Why one module of ~575 lines: it is that one place. The interface (:class:`Param`, :class:`Column`) and its three
implementations are read together (each class fills in the same dozen methods, and ``Param.from_dict`` names every
type), so splitting them by type would scatter the table a new parameter type has to fill in across files.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dse.errors import SpaceError
from dse.plain import to_plain

__all__ = ["Param", "Categorical", "Int", "Float", "Column", "to_plain", "MAX_VALUES"]

MAX_VALUES = 50_000_000
"""Most values a single discrete parameter may materialize in :meth:`Param.values`."""
_MAX_TABLE = 10_000_000   # stepped Floats up to this many values keep their values as a lookup table in Column


def _is_real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _is_integer(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _fmt(values: Sequence[object], limit: int = 12) -> str:
    vals = list(values)
    if len(vals) <= limit:
        return repr(vals)
    return repr(vals[:limit])[:-1] + f", ... ({len(vals)} in all)]"


@dataclass(frozen=True)
class Column:
    """How one parameter maps to one column of ``X``.

    ``transform``: "index" (Categorical), "grid" (Int or stepped Float: index on the step grid),
    "log_int" (log-scaled Int), "value" (Float), "log" (log-scaled Float).
    ``table``: the value of each index for index/grid columns when listable (Categorical choices, stepped Float
    values exactly as ``param.values()`` gives them), else None (values computed as low + index * step).
    """

    name: str
    kind: str
    transform: str
    xl: float
    xu: float
    conditional: bool
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    n_values: int = 0
    choices: tuple = ()
    is_int: bool = False
    table: np.ndarray | None = None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _is_ordinal(choices: tuple) -> bool:
    """Numeric choices in strictly increasing or strictly decreasing order are ordinal."""
    if len(choices) < 2 or not all(_is_number(c) for c in choices):
        return False
    d = np.diff(np.asarray(choices, dtype=float))
    return bool(np.all(d > 0) or np.all(d < 0))




def _choice_table(choices: tuple) -> np.ndarray:
    """The choices as a numpy array with a natural dtype (int64, float64, bool, or object for strings)."""
    if all(isinstance(c, (bool, np.bool_)) for c in choices):
        return np.asarray(choices, dtype=bool)
    if all(_is_number(c) for c in choices):
        if all(isinstance(c, (int, np.integer)) for c in choices):
            return np.asarray(choices, dtype=np.int64)
        return np.asarray(choices, dtype=float)
    arr = np.empty(len(choices), dtype=object)
    arr[:] = list(choices)
    return arr




class Param:
    """Base class of the parameter types. Parameters are immutable once built.

    ``is_discrete``: every value can be listed; ``values()``: all values as a numpy array (discrete only);
    ``n_values``: how many values (``math.inf`` for a continuous :class:`Float`); ``when``: the condition text.
    """

    when: str | None
    _frozen = False

    def __setattr__(self, key: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead")
        object.__setattr__(self, key, value)

    def _set_when(self, when: str | None) -> None:
        if when is not None and not isinstance(when, str):
            raise TypeError(f"when= must be an expression string or None, got {type(when).__name__} {when!r:.80}")
        if isinstance(when, str) and not when.strip():
            raise SpaceError(f"when= is an empty expression {when!r}")
        self.when = when

    # -- interface -------------------------------------------------------------------------------------------
    @property
    def is_discrete(self) -> bool:
        raise NotImplementedError

    @property
    def n_values(self) -> int | float:
        raise NotImplementedError

    def values(self) -> np.ndarray:
        """Every value, in order (discrete parameters only)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the column when no value is missing."""
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        raise NotImplementedError

    def _in_domain(self, x: np.ndarray) -> np.ndarray:
        """Membership of float64 values (numeric parameters)."""
        raise NotImplementedError

    def _normalize(self, name: str, value: object) -> object:
        raise NotImplementedError

    @property
    def first(self) -> Any:
        """The first value of the domain (a placeholder for rows whose value does not matter)."""
        raise NotImplementedError

    def column(self, name: str) -> Column:
        """How this parameter, named ``name``, maps to one column of the optimizers' float matrix."""
        raise NotImplementedError

    def optuna_distribution(self) -> Any:
        """This parameter's ``optuna.distributions.BaseDistribution``."""
        raise NotImplementedError

    def plain(self, value: Any) -> Any:
        """A value of this parameter (stored, or suggested by Optuna) as the plain Python value its type holds."""
        raise NotImplementedError

    def _probe(self) -> np.ndarray:
        """A few representative values, used to type-check expressions at definition time."""
        if self.is_discrete and self.n_values <= 8:
            return self.values()
        return self._sample(np.random.default_rng(0), 8)

    # -- shared ----------------------------------------------------------------------------------------------
    def _when_dict(self) -> dict[str, Any]:
        return {"when": self.when} if self.when is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Param) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        d = self.to_dict()
        d.pop("type")
        args = ", ".join(f"{k}={v!r}" for k, v in d.items())
        return f"{type(self).__name__}({args})"

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Param:
        """Rebuild a parameter from :meth:`to_dict` output."""
        if not isinstance(d, Mapping) or "type" not in d:
            raise SpaceError(f"a parameter spec must be a mapping with a 'type' key, got {d!r:.120}")
        kind = d["type"]
        kw = {k: v for k, v in d.items() if k != "type"}
        cls = {"categorical": Categorical, "int": Int, "float": Float}.get(kind)
        if cls is None:
            raise SpaceError(f"unknown parameter type {kind!r}; valid types: ['categorical', 'int', 'float']")
        try:
            return cls(**kw)
        except TypeError as exc:
            raise SpaceError(f"invalid {kind} parameter spec {dict(d)!r:.200}: {exc}") from None


class Categorical(Param):
    """One of a list of choices: all str, all numbers (int/float) or all bool.

    Example: ``Categorical(["bf16", "fp8"])``, ``Categorical([1, 2, 4, 8])``.
    """

    choices: tuple[Any, ...]
    kind: str  # "str" | "number" | "bool"

    def __init__(self, choices: Sequence[Any], *, when: str | None = None):
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
            raise TypeError(f"Categorical choices must be a list or tuple, got {type(choices).__name__} {choices!r:.80}")
        if isinstance(choices, Mapping) or isinstance(choices, (set, frozenset)):
            raise TypeError(f"Categorical choices must be an ordered list or tuple, got {type(choices).__name__}")
        raw = [to_plain(c) for c in (choices.tolist() if isinstance(choices, np.ndarray) else list(choices))]
        if not raw:
            raise SpaceError("Categorical needs at least one choice, got an empty list []")
        kinds = set()
        for c in raw:
            if isinstance(c, bool):
                kinds.add("bool")
            elif isinstance(c, (int, float)):
                if isinstance(c, float) and not math.isfinite(c):
                    raise SpaceError(f"Categorical choice {c!r} is not finite; choices: {_fmt(raw)}")
                if isinstance(c, int) and abs(c) >= 2**63:
                    raise SpaceError(f"Categorical choice {c!r} does not fit in int64")
                kinds.add("number")
            elif isinstance(c, str):
                kinds.add("str")
            else:
                raise SpaceError(
                    f"Categorical choice {c!r} of type {type(c).__name__} is not allowed; use str, int, float or bool"
                )
        if len(kinds) > 1:
            raise SpaceError(f"Categorical choices must all be of one kind (str, number or bool), got {_fmt(raw)}")
        seen: dict[Any, Any] = {}
        for c in raw:
            if c in seen:
                raise SpaceError(f"Categorical choice {c!r} is duplicated in {_fmt(raw)}")
            seen[c] = c
        self.choices = tuple(raw)
        self.kind = kinds.pop()
        self._set_when(when)
        if self.kind == "str":
            vals = np.empty(len(raw), dtype=object)
            vals[:] = raw
        elif self.kind == "bool":
            vals = np.array(raw, dtype=bool)
        elif all(isinstance(c, int) for c in raw):
            vals = np.array(raw, dtype=np.int64)
        else:
            vals = np.array(raw, dtype=np.float64)
        vals.flags.writeable = False
        self._vals = vals
        self._frozen = True

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def n_values(self) -> int:
        return len(self.choices)

    @property
    def dtype(self) -> np.dtype:
        return self._vals.dtype

    def values(self) -> np.ndarray:
        return self._vals.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices), **self._when_dict()}

    @property
    def first(self) -> Any:
        return self.choices[0]

    def column(self, name: str) -> Column:
        k = len(self.choices)
        kind, xl = ("ordinal", -0.5) if _is_ordinal(self.choices) else ("nominal", 0.0)
        return Column(name, kind, "index", xl, k - 0.5 if kind == "ordinal" else float(k - 1),
                      self.when is not None, n_values=k, choices=self.choices, table=_choice_table(self.choices))

    def optuna_distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution([to_plain(c) for c in self.choices])

    def plain(self, value: Any) -> Any:
        v = to_plain(value)   # the exact stored choice (e.g. the int choice 2 for 2.0 read back from JSON)
        return next((c for c in self.choices if c == v and isinstance(c, bool) == isinstance(v, bool)), v)

    def _sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        return self._vals[rng.integers(0, len(self._vals), m)]

    def _in_domain(self, x: np.ndarray) -> np.ndarray:
        return np.isin(x, self._vals.astype(np.float64))

    def _normalize(self, name: str, value: object) -> object:
        v = to_plain(value)
        ok = False
        if self.kind == "str":
            ok = isinstance(v, str) and v in self.choices
        elif self.kind == "bool":
            ok = isinstance(v, bool)
        elif _is_real(v) and math.isfinite(float(v)):
            for c in self.choices:
                if c == v:
                    return c
        if ok:
            return v
        raise SpaceError(f"parameter {name!r}: {value!r} is not one of the choices {_fmt(self.choices)}")


class Int(Param):
    """An integer in ``[low, high]`` (both inclusive), every ``step``-th value from ``low``; ``log=True`` samples
    uniformly in log space (needs ``low >= 1`` and ``step == 1``)."""

    low: int
    high: int
    log: bool
    step: int

    def __init__(self, low: int, high: int, *, log: bool = False, step: int = 1, when: str | None = None):
        for label, v in (("low", low), ("high", high), ("step", step)):
            if not _is_real(v):
                raise TypeError(f"Int {label} must be an integer, got {type(v).__name__} {v!r:.80}")
            if not _is_integer(v):
                if isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
                    continue
                raise SpaceError(f"Int {label} must be an integer, got {v!r}")
        low, high, step = int(low), int(high), int(step)
        if not isinstance(log, (bool, np.bool_)):
            raise TypeError(f"Int log must be True or False, got {log!r:.80}")
        if max(abs(low), abs(high)) >= 2**62:
            raise SpaceError(f"Int bounds must fit in int64, got low={low}, high={high}")
        if low > high:
            raise SpaceError(f"Int low={low} is greater than high={high}")
        if step <= 0:
            raise SpaceError(f"Int step must be positive, got step={step}")
        if log and step != 1:
            raise SpaceError(f"Int with log=True cannot have a step (got step={step}); use step=1")
        if log and low <= 0:
            raise SpaceError(f"Int with log=True needs low >= 1, got low={low}")
        if (high - low) % step:
            raise SpaceError(
                f"Int range high-low={high - low} (low={low}, high={high}) is not a multiple of step={step}; "
                f"e.g. high={low + (high - low) // step * step} would be"
            )
        self.low, self.high, self.log, self.step = low, high, bool(log), step
        self._set_when(when)
        self._frozen = True

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def n_values(self) -> int:
        return (self.high - self.low) // self.step + 1

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.int64)

    def values(self) -> np.ndarray:
        if self.n_values > MAX_VALUES:
            raise SpaceError(f"Int({self.low}, {self.high}) has {self.n_values} values, too many to list (max {MAX_VALUES})")
        return np.arange(self.low, self.high + 1, self.step, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "int", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return {**d, **self._when_dict()}

    @property
    def first(self) -> Any:
        return self.low

    def column(self, name: str) -> Column:
        low, high, step, cond = self.low, self.high, self.step, self.when is not None
        if self.log:  # low >= 1 and step == 1 (checked at construction)
            return Column(name, "ordinal", "log_int", math.log(low - 0.5), math.log(high + 0.5), cond,
                          low=low, high=high, step=1, n_values=high - low + 1, is_int=True)
        n = self.n_values
        return Column(name, "ordinal", "grid", -0.5, n - 0.5, cond, low=low, high=high, step=step, n_values=n,
                      is_int=True)

    def optuna_distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=1 if self.log else self.step)

    def plain(self, value: Any) -> Any:
        return int(to_plain(value))

    def _sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        if self.log:
            u = rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5), m)
            return np.clip(np.round(np.exp(u)), self.low, self.high).astype(np.int64)
        return self.low + self.step * rng.integers(0, self.n_values, m, dtype=np.int64)

    def _in_domain(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (x >= self.low) & (x <= self.high) & (np.mod(x - self.low, self.step) == 0)

    def _normalize(self, name: str, value: object) -> object:
        v = to_plain(value)
        if isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        if not _is_integer(v):
            raise SpaceError(f"parameter {name!r}: {value!r} is not an integer in [{self.low}, {self.high}]")
        assert isinstance(v, int)
        if not self.low <= v <= self.high:
            raise SpaceError(f"parameter {name!r}: {v} is out of range [{self.low}, {self.high}]")
        if (v - self.low) % self.step:
            raise SpaceError(
                f"parameter {name!r}: {v} is not on the step grid low={self.low} + k*{self.step} "
                f"(nearest: {self.low + (v - self.low) // self.step * self.step})"
            )
        return v


class Float(Param):
    """A real number in ``[low, high]``; ``log=True`` samples uniformly in log space (needs ``low > 0``);
    ``step`` makes it discrete: ``low, low+step, ..., high``."""

    low: float
    high: float
    log: bool
    step: float | None

    def __init__(
        self, low: float, high: float, *, log: bool = False, step: float | None = None, when: str | None = None
    ):
        for label, v in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if not _is_real(v):
                raise TypeError(f"Float {label} must be a number, got {type(v).__name__} {v!r:.80}")
            if not math.isfinite(float(v)):
                raise SpaceError(f"Float {label} must be finite, got {label}={v!r}")
        if not isinstance(log, (bool, np.bool_)):
            raise TypeError(f"Float log must be True or False, got {log!r:.80}")
        low, high = float(low), float(high)
        if low > high:
            raise SpaceError(f"Float low={low!r} is greater than high={high!r}")
        if log and low <= 0:
            raise SpaceError(f"Float with log=True needs low > 0, got low={low!r}")
        n = None
        if step is not None:
            step = float(step)
            if step <= 0:
                raise SpaceError(f"Float step must be positive, got step={step!r}")
            if log:
                raise SpaceError(f"Float with log=True cannot have a step (got step={step!r})")
            ratio = (high - low) / step
            if not math.isfinite(ratio) or ratio > 1e15:
                raise SpaceError(f"Float step={step!r} is too small for the range [{low!r}, {high!r}]")
            n = round(ratio)
            if abs(n - ratio) > 1e-9 * max(1.0, ratio):
                raise SpaceError(
                    f"Float range high-low={high - low!r} (low={low!r}, high={high!r}) is not a multiple of "
                    f"step={step!r}; e.g. high={low + math.floor(ratio) * step!r} would be"
                )
        self.low, self.high, self.log, self.step = low, high, bool(log), step
        self._n = None if n is None else n + 1
        # how far off the grid, in steps, a grid value may read: 1e-6, or the float error of low + k * step
        # rounded to 15 decimals (`_at`) where steps are tiny against the values (step 1e-12 over [0, 3]: 5e-4)
        self._grid_tol = 1e-6 if step is None else 1e-6 + (1e-15 + 8 * np.finfo(float).eps
                                                            * max(abs(low), abs(high))) / step
        self._set_when(when)
        self._frozen = True

    @property
    def is_discrete(self) -> bool:
        return self.step is not None

    @property
    def n_values(self) -> int | float:
        return math.inf if self._n is None else self._n

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    def values(self) -> np.ndarray:
        if self._n is None:
            raise SpaceError(f"Float({self.low!r}, {self.high!r}) without step is continuous: its values cannot be listed")
        if self._n > MAX_VALUES:
            raise SpaceError(f"Float({self.low!r}, {self.high!r}, step={self.step!r}) has {self._n} values, too many to list")
        return self._at(np.arange(self._n, dtype=np.int64))

    def _at(self, k: np.ndarray) -> np.ndarray:
        """Grid values ``low + k*step`` (rounded to shed float noise, ends exact) for integer indices ``k``."""
        assert self.step is not None and self._n is not None
        vals = self.low + self.step * np.asarray(k, dtype=np.float64)
        decimals = max(0, 12 - int(math.floor(math.log10(self.step))))
        vals = np.clip(np.round(vals, min(decimals, 15)), self.low, self.high)
        vals[k == self._n - 1] = self.high
        vals[k == 0] = self.low
        return vals

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "float", "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return {**d, **self._when_dict()}

    @property
    def first(self) -> Any:
        return self.low

    def column(self, name: str) -> Column:
        low, high, cond = self.low, self.high, self.when is not None
        if self.step is not None:
            n = int(self.n_values)
            return Column(name, "ordinal", "grid", -0.5, n - 0.5, cond, low=low, high=high, step=float(self.step),
                          n_values=n, table=self.values() if n <= _MAX_TABLE else None)
        if self.log:
            return Column(name, "real", "log", math.log(low), math.log(high), cond, low=low, high=high)
        return Column(name, "real", "value", low, high, cond, low=low, high=high)

    def optuna_distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def plain(self, value: Any) -> Any:
        return float(to_plain(value))

    def _sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        if self._n is not None:
            return self._at(rng.integers(0, self._n, m))
        if self.log:
            return np.clip(np.exp(rng.uniform(math.log(self.low), math.log(self.high), m)), self.low, self.high)
        return rng.uniform(self.low, self.high, m)

    def _in_domain(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            ok = (x >= self.low) & (x <= self.high)
            if self.step is not None:
                k = (x - self.low) / self.step
                ok &= np.abs(k - np.round(k)) <= self._grid_tol
        return ok

    def _normalize(self, name: str, value: object) -> object:
        v = to_plain(value)
        if not _is_real(v) or not math.isfinite(float(v)):
            raise SpaceError(f"parameter {name!r}: {value!r} is not a finite number in [{self.low!r}, {self.high!r}]")
        x = float(v)
        if not self.low <= x <= self.high:
            raise SpaceError(f"parameter {name!r}: {x!r} is out of range [{self.low!r}, {self.high!r}]")
        if self.step is not None:
            k = (x - self.low) / self.step
            if abs(k - round(k)) > self._grid_tol:
                raise SpaceError(
                    f"parameter {name!r}: {x!r} is not on the step grid {self.low!r} + k*{self.step!r} "
                    f"(nearest: {self.low + round(k) * self.step!r})"
                )
            x = float(self._at(np.array([int(round(k))]))[0])
        return x

