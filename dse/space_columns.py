"""Columns of a :class:`dse.space.Space` batch: a parameter's canonical values (raw array plus missing mask, domain
checked) from a user's DataFrame column, and back to the DataFrame column with the space's fixed dtypes (module
docstring of :mod:`dse.space` for the conventions).
"""
from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from dse.expr import missing_mask
from dse.params import Categorical, Param


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

