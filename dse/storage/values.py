"""One stored value: its JSON text (numpy values as Python ones, NaN/inf kept) and the checks that name a bad one
(``StorageError``), shared by every write of the SQL storage."""
from __future__ import annotations

import json
import math
import numbers as _numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dse.errors import StorageError
from dse.plain import to_plain


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim:
        return value.tolist()
    if isinstance(value, (np.generic, np.ndarray)):
        return to_plain(value)
    raise TypeError(f"{type(value).__name__} {short(value)} is not JSON-serializable")


ENCODER = json.JSONEncoder(allow_nan=True, separators=(",", ":"), default=_json_default)


def short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def encode_json(value: Any, what: str, *, mapping: bool = True) -> str:
    """JSON text of ``value``; StorageError naming ``what`` and the value when it cannot be stored."""
    if mapping and not isinstance(value, Mapping):
        raise StorageError(f"{what} must be a dict, got {type(value).__name__} {short(value)}")
    try:
        return ENCODER.encode(dict(value) if mapping else value)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise StorageError(
            f"{what} = {short(value)} cannot be stored: {exc}. Valid values: str, int, float (NaN/inf allowed), "
            "bool, None, numpy scalars, and lists/dicts (str keys) of these"
        ) from None


def opt_float(value: Any, what: str) -> float | None:
    """``value`` as a float of seconds, or None; StorageError otherwise."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (_numbers.Real, np.number)):
        raise StorageError(f"{what} must be a number of seconds or None, got {short(value)}")
    return float(value)


def opt_str(value: Any, what: str, limit: int | None = None) -> str | None:
    """``value`` as a str (at most ``limit`` characters), or None; StorageError otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise StorageError(f"{what} must be a str or None, got {type(value).__name__} {short(value)}")
    if limit is not None and len(value) > limit:
        raise StorageError(f"{what} is {len(value)} characters long; at most {limit} are stored: {short(value)}")
    return value


def opt_bool(value: Any, what: str) -> bool | None:
    """``value`` as True/False, or None (also for NaN); StorageError otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise StorageError(f"{what} must be True, False or None, got {short(value)}")


def objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (never a 2-d one, whatever the values are)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr
