"""Plain Python values from numpy and pandas ones: the one conversion of numpy scalars to Python numbers, used
wherever values leave numpy (stored as JSON, handed to a per-configuration objective, given back as a parameter's
choice)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def to_plain(x: Any) -> Any:
    """A numpy scalar (or 0-d array) as the equivalent plain Python value; anything else as it is."""
    if isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0):
        return x.item()
    return x


def plain_values(df: pd.DataFrame, *, none_for_missing: bool = False) -> tuple[list[str], np.ndarray]:
    """Column names and the (n, d) object array of the frame's values as plain Python objects (float, int, str,
    bool), from one conversion of the whole frame (reading columns one by one is slow under pandas 3's
    string-labelled columns; docs/optimizers.md). ``none_for_missing``: NaN, None and NA all become None."""
    cols = [str(c) for c in df.columns]
    values = df.to_numpy(dtype=object)
    if none_for_missing:
        missing = pd.isna(values)
        if missing.any():
            values = values.copy()   # to_numpy may return a read-only view of an object block
            values[missing] = None
    return cols, values


def frame_records(df: pd.DataFrame, *, none_for_missing: bool = False) -> list[dict]:
    """Rows of a DataFrame as dicts of plain Python values (JSON-serializable), fast (see ``plain_values``)."""
    cols, values = plain_values(df, none_for_missing=none_for_missing)
    return [dict(zip(cols, vals)) for vals in values.tolist()]
