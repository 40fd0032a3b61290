"""Encoding of configurations, in one place: DataFrames of configs <-> float matrices and Optuna distributions.

The evolutionary optimizers (pymoo) vary a float matrix ``X`` of shape ``(n, d)``, one column per parameter;
the Bayesian optimizers (Optuna) need one ``BaseDistribution`` per parameter. Both mappings live here so that
every optimizer sees the space the same way.

Columns of ``X`` (``Encoder.kinds`` gives one kind per column):

============================  ==========================================  ==========  ==================
parameter                     encoded value                               kind        variation bounds
============================  ==========================================  ==========  ==================
Categorical, strings / bools  index of the choice, 0..k-1                 "nominal"   [0, k-1]
Categorical, monotone numbers index of the choice, 0..k-1                 "ordinal"   [-0.5, k-0.5]
Int (step s)                  index on the step grid, (v - low) / s       "ordinal"   [-0.5, n-0.5]
Int, log=True                 log(v)                                      "ordinal"   [log(low-0.5), log(high+0.5)]
Float with step               index on the step grid                      "ordinal"   [-0.5, n-0.5]
Float                         v                                           "real"      [low, high]
Float, log=True               log(v)                                      "real"      [log(low), log(high)]
============================  ==========================================  ==========  ==================

Ordinal columns are widened by half a step so that rounding gives every value the same share of the box.
Decoding rounds/clips every column to an exactly valid value of its parameter, then marks conditional
parameters whose condition is false as missing (None for string/bool columns, NaN for numeric ones).
Inactive conditional parameters encode to the lower end of their column (index 0, ``low``).

Round trip: ``decode(encode(df))`` equals ``df`` exactly for every parameter except log-scaled Floats, whose
``exp(log(v))`` is within a few ulp of ``v`` (floating point). Duplicate detection never goes through ``X``:
``keys`` and ``hashes`` are computed from the values themselves, so they are exact.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import SpaceError

KINDS = ("nominal", "ordinal", "real")



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


_MAX_TABLE = 10_000_000


def _column_for(name: str, param: Any) -> Column:
    kind_name = type(param).__name__
    conditional = getattr(param, "when", None) is not None
    if kind_name == "Categorical":
        choices = tuple(param.choices)
        k = len(choices)
        table = _choice_table(choices)
        if _is_ordinal(choices):
            return Column(name, "ordinal", "index", -0.5, k - 0.5, conditional, n_values=k, choices=choices,
                          table=table)
        return Column(name, "nominal", "index", 0.0, float(k - 1), conditional, n_values=k, choices=choices,
                      table=table)
    if kind_name == "Int":
        low, high, step = int(param.low), int(param.high), int(param.step)
        if param.log:  # the Space guarantees low >= 1 and step == 1
            return Column(name, "ordinal", "log_int", math.log(low - 0.5), math.log(high + 0.5), conditional,
                          low=low, high=high, step=1, n_values=high - low + 1, is_int=True)
        n = (high - low) // step + 1
        return Column(name, "ordinal", "grid", -0.5, n - 0.5, conditional, low=low, high=high, step=step,
                      n_values=n, is_int=True)
    if kind_name == "Float":
        low, high = float(param.low), float(param.high)
        if param.step is not None:
            n = int(param.n_values)
            table = param.values() if n <= _MAX_TABLE else None
            return Column(name, "ordinal", "grid", -0.5, n - 0.5, conditional, low=low, high=high,
                          step=float(param.step), n_values=n, table=table)
        if param.log:
            return Column(name, "real", "log", math.log(low), math.log(high), conditional, low=low, high=high)
        return Column(name, "real", "value", low, high, conditional, low=low, high=high)
    raise SpaceError(f"parameter {name!r} has unsupported type {kind_name}; valid: Categorical, Int, Float")


class Encoder:
    """Maps a DataFrame of configurations to a float matrix ``X`` (n, d) and back, vectorized.

    Attributes: ``names`` (column order = ``space.names``), ``columns`` (one ``Column`` each), ``xl``, ``xu``
    (variation bounds, float arrays of length d), ``kinds`` (tuple of "nominal" | "ordinal" | "real"),
    ``fill`` (encoded value of an inactive conditional parameter, per column).
    """

    def __init__(self, space: Any) -> None:
        self.space = space
        self.names: list[str] = list(space.names)
        self.columns: tuple[Column, ...] = tuple(_column_for(n, space.params[n]) for n in self.names)
        self.xl = np.array([c.xl for c in self.columns], dtype=float)
        self.xu = np.array([c.xu for c in self.columns], dtype=float)
        self.kinds: tuple[str, ...] = tuple(c.kind for c in self.columns)
        self.fill = np.array([self._fill(c) for c in self.columns], dtype=float)
        self.has_conditionals = any(c.conditional for c in self.columns)
        self._indexes = {c.name: pd.Index(list(c.choices), dtype=object) for c in self.columns
                         if c.transform == "index"}

    @staticmethod
    def _fill(c: Column) -> float:
        if c.transform in ("index", "grid"):
            return 0.0
        if c.transform == "log_int":
            return math.log(c.low)
        return c.xl

    @property
    def n_var(self) -> int:
        return len(self.columns)

    def mask(self, kind: str) -> np.ndarray:
        """Boolean mask over the columns of ``X`` of the given kind."""
        if kind not in KINDS:
            raise SpaceError(f"unknown column kind {kind!r}; valid: {', '.join(KINDS)}")
        return np.array([k == kind for k in self.kinds], dtype=bool)

    # ------------------------------------------------------------------------------------------------
    # canonical values: index (Categorical) or numeric value, with a missing mask; validates the domain
    # ------------------------------------------------------------------------------------------------
    def _canonical(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(V, missing): V[:, j] is the index (Categorical, stepped Int/Float) or the value; missing: NaN/None."""
        missing_cols = [n for n in self.names if n not in df.columns]
        if missing_cols:
            raise SpaceError(f"configurations lack parameter(s) {missing_cols}; the space has {self.names}")
        n = len(df)
        V = np.empty((n, self.n_var), dtype=float)
        M = np.zeros((n, self.n_var), dtype=bool)
        for j, c in enumerate(self.columns):
            raw = df[c.name]
            miss = raw.isna().to_numpy()
            if miss.any() and not c.conditional:
                row = int(np.flatnonzero(miss)[0])
                raise SpaceError(f"parameter {c.name!r} is missing in row {row}; it is not conditional, "
                                 "so every configuration needs a value")
            M[:, j] = miss
            if c.transform == "index":
                idx = self._indexes[c.name].get_indexer(raw.to_numpy(dtype=object))
                bad = (idx < 0) & ~miss
                if bad.any():
                    val = raw.to_numpy(dtype=object)[np.flatnonzero(bad)[0]]
                    raise SpaceError(f"value {val!r} of parameter {c.name!r} is not a choice; "
                                     f"valid: {list(c.choices)}")
                V[:, j] = idx
            else:
                try:
                    v = raw.to_numpy(dtype=float, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise SpaceError(f"parameter {c.name!r} needs numeric values; got {raw.dtype} ({exc})") from None
                V[:, j] = self._numeric(c, v, miss)
        V[M] = np.nan
        return V, M

    @staticmethod
    def _numeric(c: Column, v: np.ndarray, miss: np.ndarray) -> np.ndarray:
        """Validate numeric values against the column's domain; grid columns return the grid index."""
        with np.errstate(invalid="ignore"):
            ok = miss | np.isfinite(v)
            if c.transform == "grid":
                k = (v - c.low) / c.step
                ki = np.rint(k)
                ok &= miss | ((ki >= 0) & (ki <= c.n_values - 1) & (np.abs(k - ki) <= 1e-6))
                out = ki
            else:
                ok &= miss | ((v >= c.low) & (v <= c.high))
                if c.is_int:
                    ok &= miss | (v == np.rint(v))
                out = v
        if not ok.all():
            bad = v[np.flatnonzero(~ok)[0]]
            if c.transform == "grid":
                dom = f"{c.low:g}..{c.high:g} step {c.step:g}"
            else:
                dom = f"{'integers ' if c.is_int else ''}{c.low:g}..{c.high:g}"
            raise SpaceError(f"value {bad!r} of parameter {c.name!r} is outside its domain ({dom})")
        return out

    # ------------------------------------------------------------------------------------------------
    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Float matrix (n, d) of ``df``'s configurations; SpaceError for a value outside the space."""
        V, M = self._canonical(df)
        X = V.copy()
        for j, c in enumerate(self.columns):
            if c.transform in ("log_int", "log"):
                with np.errstate(invalid="ignore", divide="ignore"):
                    X[:, j] = np.log(V[:, j])
        X[M] = np.broadcast_to(self.fill, X.shape)[M]
        return X

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        """DataFrame of exactly valid configurations (rounded/clipped to each domain; inactive -> missing)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_var:
            raise SpaceError(f"X must have shape (n, {self.n_var}); got {X.shape}")
        X = np.where(np.isfinite(X), X, self.fill)
        data: dict[str, Any] = {}
        for j, c in enumerate(self.columns):
            x = X[:, j]
            if c.transform in ("index", "grid"):
                idx = np.clip(np.rint(x), 0, c.n_values - 1).astype(np.int64)
                if c.table is not None:
                    data[c.name] = c.table[idx]
                elif c.is_int:
                    data[c.name] = int(c.low) + idx * int(c.step)
                else:
                    data[c.name] = np.clip(c.low + idx * c.step, c.low, c.high)
            elif c.transform == "log_int":
                data[c.name] = np.clip(np.rint(np.exp(x)), c.low, c.high).astype(np.int64)
            elif c.transform == "log":
                data[c.name] = np.clip(np.exp(x), c.low, c.high)
            else:
                data[c.name] = np.clip(x, c.low, c.high)
        data = {k: pd.Series(v, dtype=object, copy=False) if v.dtype == object else v for k, v in data.items()}
        df = pd.DataFrame(data, columns=self.names)
        if self.has_conditionals and len(df):
            df = self.mask_inactive(df)
        return df

    def mask_inactive(self, df: pd.DataFrame) -> pd.DataFrame:
        """Set inactive conditional parameters to missing (None for object columns, NaN for numeric)."""
        active = self.space.active(df)
        for name, act in active.items():
            act = np.asarray(act, dtype=bool)
            if act.all():
                continue
            col = df[name]
            if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
                df[name] = np.where(act, col.to_numpy(dtype=float), np.nan)
            else:
                vals = col.to_numpy(dtype=object).copy()
                vals[~act] = None
                df[name] = pd.Series(vals, index=df.index, dtype=object)
        return df

    def keys(self, df: pd.DataFrame) -> np.ndarray:
        """One hashable key (bytes) per row; equal iff the configurations are equal (missing == missing)."""
        V, _ = self._canonical(df)
        V = V + 0.0  # -0.0 -> 0.0
        V[np.isnan(V)] = np.nan  # one NaN bit pattern
        V = np.ascontiguousarray(V)
        out = np.empty(len(V), dtype=object)
        if len(V):
            out[:] = V.view(np.dtype((np.void, 8 * self.n_var))).ravel().tolist()
        return out


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


# ----------------------------------------------------------------------------------------------------
# Optuna
# ----------------------------------------------------------------------------------------------------
def optuna_distributions(space: Any) -> dict[str, Any]:
    """One ``optuna.distributions.BaseDistribution`` per parameter, in ``space.names`` order."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name in space.names:
        p = space.params[name]
        kind = type(p).__name__
        if kind == "Categorical":
            out[name] = CategoricalDistribution([_plain(c) for c in p.choices])
        elif kind == "Int":
            step = int(getattr(p, "step", 1) or 1)
            log = bool(getattr(p, "log", False))
            out[name] = IntDistribution(int(p.low), int(p.high), log=log, step=1 if log else step)
        elif kind == "Float":
            step = getattr(p, "step", None)
            out[name] = FloatDistribution(float(p.low), float(p.high), log=bool(getattr(p, "log", False)),
                                          step=None if step is None else float(step))
        else:
            raise SpaceError(f"parameter {name!r} has unsupported type {type(p).__name__}; "
                             "valid: Categorical, Int, Float")
    return out


def _plain(v: Any) -> Any:
    """numpy scalar -> Python scalar (JSON- and Optuna-friendly)."""
    return v.item() if isinstance(v, np.generic) else v


def config_from_optuna(space: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """An Optuna trial's params -> a config dict over every parameter (absent = inactive -> None)."""
    out: dict[str, Any] = {}
    for name in space.names:
        if name not in params:
            out[name] = None
            continue
        v = _plain(params[name])
        kind = type(space.params[name]).__name__
        if kind == "Int":
            v = int(v)
        elif kind == "Float":
            v = float(v)
        out[name] = v
    unknown = set(params) - set(space.names)
    if unknown:
        raise SpaceError(f"Optuna params name unknown parameter(s) {sorted(unknown)}; the space has {space.names}")
    return out


def optuna_params(space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict -> Optuna params (missing/inactive values left out; Python scalars)."""
    out: dict[str, Any] = {}
    for name in space.names:
        v = config.get(name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        v = _plain(v)
        kind = type(space.params[name]).__name__
        if kind == "Int":
            v = int(v)
        elif kind == "Float":
            v = float(v)
        elif kind == "Categorical":
            # the exact stored choice (e.g. the int choice 2 for 2.0 read back from JSON)
            v = next((c for c in space.params[name].choices if c == v and isinstance(c, bool) == isinstance(v, bool)),
                     v)
        out[name] = v
    return out
