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
from typing import Any

import numpy as np
import pandas as pd

from dse.errors import SpaceError
from dse.params import Column

KINDS = ("nominal", "ordinal", "real")



class Encoder:
    """Maps a DataFrame of configurations to a float matrix ``X`` (n, d) and back, vectorized.

    Attributes: ``names`` (column order = ``space.names``), ``columns`` (one ``Column`` each), ``xl``, ``xu``
    (variation bounds, float arrays of length d), ``kinds`` (tuple of "nominal" | "ordinal" | "real"),
    ``fill`` (encoded value of an inactive conditional parameter, per column).
    """

    def __init__(self, space: Any) -> None:
        self.space = space
        self.names: list[str] = list(space.names)
        self.columns: tuple[Column, ...] = tuple(space.params[n].column(n) for n in self.names)
        self.xl = np.array([c.xl for c in self.columns], dtype=float)
        self.xu = np.array([c.xu for c in self.columns], dtype=float)
        self.kinds: tuple[str, ...] = tuple(c.kind for c in self.columns)
        self.fill = np.array([self._fill(c) for c in self.columns], dtype=float)
        self.has_conditionals = any(c.conditional for c in self.columns)
        self._indexes = {c.name: pd.Index(list(c.choices), dtype=object) for c in self.columns
                         if c.transform == "index"}
        cols = self.columns
        self._conditional = np.array([c.conditional for c in cols], dtype=bool)
        self._value_cols = np.array([j for j, c in enumerate(cols) if c.transform != "index"], dtype=np.int64)
        self._low = np.array([c.low for c in cols], dtype=float)
        self._high = np.array([c.high for c in cols], dtype=float)
        self._step = np.array([c.step for c in cols], dtype=float)
        self._nval = np.array([c.n_values for c in cols], dtype=float)
        self._is_grid = np.array([c.transform == "grid" for c in cols], dtype=bool)
        self._is_int = np.array([c.is_int for c in cols], dtype=bool)
        # numeric choices: sorted values and their choice indices; string choices: value -> index
        self._numeric_index: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._str_index: dict[str, dict[str, int]] = {}
        for c in self.columns:
            if c.transform == "index" and c.table is not None and c.table.dtype.kind in "iuf":
                values = c.table.astype(float)
                order = np.argsort(values, kind="stable")
                self._numeric_index[c.name] = (values[order], order)
            elif c.transform == "index" and all(isinstance(v, str) for v in c.choices):
                self._str_index[c.name] = {v: i for i, v in enumerate(c.choices)}

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
        """(V, missing): V[:, j] is the index (Categorical, stepped Int/Float) or the value; missing: NaN/None.

        Validates: every parameter present (once), non-conditional ones never missing, values in their domains.
        Columns are read as ``_arrays`` gives them; the domain check of numeric columns is one broadcast over all
        of them.
        """
        if not isinstance(df, pd.DataFrame):
            raise SpaceError(f"configurations must be a pandas DataFrame, got {type(df).__name__}")
        columns = df.columns
        missing_cols = [n for n in self.names if n not in columns]
        if missing_cols:
            raise SpaceError(f"configurations lack parameter(s) {missing_cols}; the space has {self.names}")
        if not columns.is_unique:
            raise SpaceError(f"configurations repeat column(s) {sorted(set(columns[columns.duplicated()]))}; "
                             "each parameter needs exactly one column")
        n = len(df)
        V = np.full((n, self.n_var), np.nan)
        M = np.zeros((n, self.n_var), dtype=bool)
        for j, (c, arr) in enumerate(zip(self.columns, self._arrays(df))):
            if arr.dtype.kind in "iuf":
                v = arr.astype(float, copy=False)
                miss = np.isnan(v)
                M[:, j] = miss
                V[:, j] = self._choice_index(c, v, miss) if c.transform == "index" else v
                continue
            if c.name in self._str_index and arr.dtype == object:
                idx, miss = self._str_choice_index(c, arr)
                M[:, j] = miss
                V[:, j] = np.where(miss, np.nan, idx)
                continue
            miss = np.asarray(pd.isna(arr), dtype=bool) if arr.dtype.kind not in "biu" else np.zeros(n, bool)
            M[:, j] = miss
            if c.transform == "index":
                V[:, j] = self._choice_index(c, arr, miss)
            else:
                v = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(dtype=float,
                                                                                         na_value=np.nan)
                bad = np.isnan(v) & ~miss
                if bad.any():
                    raise SpaceError(f"value {arr[np.flatnonzero(bad)[0]]!r} of parameter {c.name!r} is not a number")
                V[:, j] = v
        bad = M & ~self._conditional
        if bad.any():
            r, j = np.argwhere(bad)[0]
            raise SpaceError(f"parameter {self.names[j]!r} is missing in row {r}; it is not conditional, "
                             "so every configuration needs a value")
        self._check_numeric(V, M)
        return V, M

    def _arrays(self, df: pd.DataFrame) -> list[np.ndarray]:
        """The columns ``names`` of ``df`` as numpy arrays. A frame of exactly those columns, in that order, all of
        one numeric dtype (an all-Float space) is converted in one call; otherwise column by column (cheaper than
        pandas' block indexing on the small batches the optimizers tell every generation)."""
        if df.shape[1] == self.n_var and list(df.columns) == self.names:
            dtypes = set(df.dtypes)
            if len(dtypes) == 1 and dtypes.pop().kind in "iuf":
                A = df.to_numpy()
                return [A[:, j] for j in range(self.n_var)]
        return [df[n].to_numpy() for n in self.names]

    def _choice_index(self, c: Column, arr: np.ndarray, miss: np.ndarray) -> np.ndarray:
        numeric = self._numeric_index.get(c.name)
        if numeric is not None and arr.dtype.kind in "iuf":
            values, order = numeric   # exact match in the sorted choices (NaN matches nothing)
            x = arr.astype(float, copy=False)
            pos = np.minimum(np.searchsorted(values, x), len(values) - 1)
            idx = np.where(values[pos] == x, order[pos], -1)
        else:
            idx = self._indexes[c.name].get_indexer(arr.astype(object, copy=False))
        bad = (idx < 0) & ~miss
        if bad.any():
            raise SpaceError(f"value {arr[np.flatnonzero(bad)[0]]!r} of parameter {c.name!r} is not a choice; "
                             f"valid: {list(c.choices)}")
        return np.where(miss, np.nan, idx)

    def _str_choice_index(self, c: Column, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(choice index, missing) of an object array for a Categorical of strings; SpaceError for a value that is
        not a choice. Small batches through a dict; large ones factorized first (one hash pass, then a dict
        lookup per distinct value)."""
        lut = self._str_index[c.name]
        if len(arr) <= 256:
            values = arr.tolist()
            idx = np.fromiter((lut.get(v, -1) if isinstance(v, str) else -1 for v in values), dtype=np.int64,
                              count=len(values))
            miss = np.fromiter((v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT
                                for v in values), dtype=bool, count=len(values))
        else:
            codes, uniques = pd.factorize(arr, use_na_sentinel=True)
            umap = np.array([lut.get(u, -1) if isinstance(u, str) else -1 for u in uniques] + [-1], dtype=np.int64)
            idx = umap[codes]   # code -1 (missing) -> the appended -1
            miss = codes < 0
        bad = (idx < 0) & ~miss
        if bad.any():
            raise SpaceError(f"value {arr[np.flatnonzero(bad)[0]]!r} of parameter {c.name!r} is not a choice; "
                             f"valid: {list(c.choices)}")
        return idx, miss

    def _check_numeric(self, V: np.ndarray, M: np.ndarray) -> None:
        """Domain check of the numeric (non-Categorical) columns, all at once; grid columns -> grid index."""
        cols = self._value_cols
        if not len(cols):
            return
        v, miss = V[:, cols], M[:, cols]
        low, high, step = self._low[cols], self._high[cols], self._step[cols]
        grid, is_int, nval = self._is_grid[cols], self._is_int[cols], self._nval[cols]
        with np.errstate(invalid="ignore"):
            k = (v - low) / step
            ki = np.rint(k)
            on_grid = (ki >= 0) & (ki <= nval - 1) & (np.abs(k - ki) <= 1e-6)
            in_range = (v >= low) & (v <= high) & (~is_int | (v == np.rint(v)))
            ok = miss | (np.isfinite(v) & np.where(grid, on_grid, in_range))
        if not ok.all():
            r, jj = np.argwhere(~ok)[0]
            c = self.columns[cols[jj]]
            dom = (f"{c.low:g}..{c.high:g} step {c.step:g}" if c.transform == "grid"
                   else f"{'integers ' if c.is_int else ''}{c.low:g}..{c.high:g}")
            raise SpaceError(f"value {v[r, jj]!r} of parameter {c.name!r} is outside its domain ({dom})")
        V[:, cols] = np.where(grid, ki, v)

    # ------------------------------------------------------------------------------------------------
    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """Float matrix (n, d) of ``df``'s configurations; SpaceError for a value outside the space."""
        return self._encode(*self._canonical(df))

    def encode_keys(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(encode(df), keys(df))`` in one pass over the columns."""
        V, M = self._canonical(df)
        return self._encode(V, M), self._keys(V)

    def _encode(self, V: np.ndarray, M: np.ndarray) -> np.ndarray:
        X = V.copy()
        for j, c in enumerate(self.columns):
            if c.transform in ("log_int", "log"):
                with np.errstate(invalid="ignore", divide="ignore"):
                    X[:, j] = np.log(V[:, j])
        X[M] = np.broadcast_to(self.fill, X.shape)[M]
        return X

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        """DataFrame of exactly valid configurations (rounded/clipped to each domain; inactive -> missing)."""
        return self._decode(X)[0]

    def decode_keys(self, X: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """``(decode(X), keys(decode(X)))``, the keys computed without reading the DataFrame back."""
        df, V = self._decode(X)
        return df, self._keys(V)

    def decode_all(self, X: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """``(decode(X), keys, encode(decode(X)))``: the configurations, their keys and their encoding (``X``
        rounded to valid values, inactive parameters at their fill value), without reading the DataFrame back."""
        df, V = self._decode(X)
        return df, self._keys(V), self._encode(V, np.isnan(V))

    def snap(self, X: np.ndarray) -> np.ndarray:
        """``encode(decode(X))`` without building the DataFrame when the space has no conditional parameters:
        every column rounded/clipped to a valid value, in encoded form."""
        if self.has_conditionals:
            return self.decode_all(X)[2]
        V = self._round(X)
        return self._encode(V, np.zeros(V.shape, dtype=bool))

    def _round(self, X: np.ndarray) -> np.ndarray:
        """Canonical values (as ``_canonical`` gives them) of the valid configurations nearest to the rows of
        ``X``: indices rounded/clipped, values clipped to their domain; conditions not applied."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_var:
            raise SpaceError(f"X must have shape (n, {self.n_var}); got {X.shape}")
        X = np.where(np.isfinite(X), X, self.fill)
        V = np.empty_like(X)
        for j, c in enumerate(self.columns):
            x = X[:, j]
            if c.transform in ("index", "grid"):
                V[:, j] = np.clip(np.rint(x), 0, c.n_values - 1)
            elif c.transform == "log_int":
                V[:, j] = np.clip(np.rint(np.exp(x)), c.low, c.high)
            else:
                V[:, j] = np.clip(np.exp(x) if c.transform == "log" else x, c.low, c.high)
        return V

    def _decode(self, X: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        V = self._round(X)   # canonical values, for the keys
        cols: list[np.ndarray] = []
        for j, c in enumerate(self.columns):
            if c.transform in ("index", "grid"):
                idx = V[:, j].astype(np.int64)
                if c.table is not None:
                    col = c.table[idx]
                elif c.is_int:
                    col = int(c.low) + idx * int(c.step)
                else:
                    col = np.clip(c.low + idx * c.step, c.low, c.high)
            elif c.transform == "log_int":
                col = V[:, j].astype(np.int64)
            else:
                col = V[:, j].copy()
            cols.append(col)
        df = self._frame(cols)
        if self.has_conditionals and len(df):
            active = self.space.active(df)
            changed = False
            for name, act in active.items():
                act = np.asarray(act, dtype=bool)
                if act.all():
                    continue
                j = self.names.index(name)
                V[~act, j] = np.nan
                cols[j] = _with_missing(cols[j], ~act)
                changed = True
            if changed:
                df = self._frame(cols)
        return df, V

    def _frame(self, cols: list[np.ndarray]) -> pd.DataFrame:
        """DataFrame with the Space's dtypes (object for strings and bools with missing values)."""
        if cols and all(c.dtype == np.float64 for c in cols):
            return pd.DataFrame(np.column_stack(cols), columns=self.names)
        data = {n: pd.Series(c, dtype=object, copy=False) if c.dtype == object else c for n, c in zip(self.names, cols)}
        return pd.DataFrame(data, columns=self.names)

    def keys(self, df: pd.DataFrame) -> np.ndarray:
        """One hashable key (bytes) per row, as an object array; equal iff the configurations are equal
        (missing == missing; values on a step grid compare by grid index)."""
        return self._keys(self._canonical(df)[0])

    @staticmethod
    def _keys(V: np.ndarray) -> np.ndarray:
        V = V + 0.0  # -0.0 -> 0.0
        V[np.isnan(V)] = np.nan  # one NaN bit pattern
        V = np.ascontiguousarray(V)
        out = np.empty(len(V), dtype=object)
        if len(V):
            out[:] = V.view(np.dtype((np.void, 8 * V.shape[1]))).ravel().tolist()
        return out


def _with_missing(col: np.ndarray, miss: np.ndarray) -> np.ndarray:
    """``col`` with ``miss`` rows missing: NaN in a float column (ints become floats), None in an object one."""
    if col.dtype.kind in "iuf":
        out = col.astype(np.float64)
        out[miss] = np.nan
    else:
        out = col.astype(object)
        out[miss] = None
    return out


# ----------------------------------------------------------------------------------------------------
# Optuna
# ----------------------------------------------------------------------------------------------------
def optuna_distributions(space: Any) -> dict[str, Any]:
    """One ``optuna.distributions.BaseDistribution`` per parameter, in ``space.names`` order."""
    return {name: space.params[name].optuna_distribution() for name in space.names}


def config_from_optuna(space: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """An Optuna trial's params -> a config dict over every parameter (absent = inactive -> None)."""
    unknown = set(params) - set(space.names)
    if unknown:
        raise SpaceError(f"Optuna params name unknown parameter(s) {sorted(unknown)}; the space has {space.names}")
    return {name: space.params[name].plain(params[name]) if name in params else None for name in space.names}


def optuna_params(space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict -> Optuna params (missing/inactive values left out; Python scalars)."""
    out: dict[str, Any] = {}
    for name in space.names:
        v = config.get(name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        out[name] = space.params[name].plain(v)
    return out
