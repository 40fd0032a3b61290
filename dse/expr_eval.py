"""The evaluation rules of :mod:`dse.expr` expressions, on numpy arrays over a whole batch: the allowed functions
and operators, three-valued logic for missing values (``and``/``or`` short-circuit per row), rows with an
arithmetic error, str/number comparisons, and the missing-value mask of a column (module docstring of
:mod:`dse.expr` for the rules themselves).

Every compiled node (:mod:`dse.expr_compile`) is a function ``ctx -> _V(value, bad, unk)``, where value is a numpy
array of the batch's length (or a 0-d array for constants), bad marks rows where an arithmetic error happened, and
unk marks rows whose value is unknown because a parameter it depends on is missing; both are bool arrays of length
n or None (no such row).
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dse.errors import ExpressionError

_INT_LIMIT = 2**62


def _round(x: np.ndarray, ndigits: np.ndarray | None = None) -> np.ndarray:
    if ndigits is None:
        return np.round(x)
    nd = np.asarray(ndigits)
    if nd.ndim != 0:
        raise ExpressionError("round(x, ndigits): ndigits must be a constant integer")
    return np.round(x, int(nd))


# name -> (numpy function, min args, max args); None max = variadic
FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], int, int | None]] = {
    "min": (lambda *a: np.minimum.reduce(np.broadcast_arrays(*a)), 2, None),
    "max": (lambda *a: np.maximum.reduce(np.broadcast_arrays(*a)), 2, None),
    "abs": (np.abs, 1, 1),
    "log": (np.log, 1, 1),
    "log2": (np.log2, 1, 1),
    "exp": (np.exp, 1, 1),
    "sqrt": (np.sqrt, 1, 1),
    "floor": (np.floor, 1, 1),
    "ceil": (np.ceil, 1, 1),
    "round": (_round, 1, 2),
}

_BINOPS: dict[type, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.FloorDiv: ("//", np.floor_divide),
    ast.Mod: ("%", np.mod),
    ast.Pow: ("**", np.power),
}

_CMPOPS: dict[type, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Eq: ("==", np.equal),
    ast.NotEq: ("!=", np.not_equal),
    ast.Lt: ("<", np.less),
    ast.LtE: ("<=", np.less_equal),
    ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal),
}


@dataclass
class _Ctx:
    columns: Mapping[str, np.ndarray]
    missing: Mapping[str, np.ndarray]
    n: int
    #: evaluate every operand of ``and`` / ``or`` / chained comparisons even once all rows are decided (type
    #: checking: an operand the probe rows skip still runs on other rows)
    every_operand: bool = False


@dataclass
class _V:
    value: np.ndarray
    bad: np.ndarray | None = None
    unk: np.ndarray | None = None


_Node = Callable[[_Ctx], _V]


def _or(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _rows(mask: np.ndarray, n: int) -> np.ndarray | None:
    """A 0-d or (n,) bool mask as an (n,) array, or None when no row is set."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    return np.full(n, True) if mask.ndim == 0 else mask


def _errors(mask: np.ndarray, unk: np.ndarray | None, n: int) -> np.ndarray | None:
    """Own arithmetic errors of a node: rows with an unknown operand hold placeholders, so they do not count."""
    rows = _rows(mask, n)
    if rows is None or unk is None:
        return rows
    rows = rows & ~unk
    return rows if rows.any() else None


def _is_textual(v: np.ndarray) -> bool:
    return v.dtype.kind in "OUS"


def _truth(v: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise truth value and NaN mask (a NaN truth value is an error)."""
    if v.dtype == bool:
        return v, np.zeros(v.shape, dtype=bool)
    if v.dtype.kind in "iu":
        return v != 0, np.zeros(v.shape, dtype=bool)
    if v.dtype.kind == "f":
        nan = np.isnan(v)
        return (v != 0) & ~nan, nan
    raise ExpressionError(
        f"in expression {text!r}: a str value was used as a truth value; compare it instead (e.g. x == 'a')"
    )


def _numeric(v: np.ndarray, op: str, text: str) -> np.ndarray:
    if _is_textual(v):
        raise ExpressionError(f"in expression {text!r}: operator {op!r} needs numbers, got a str value")
    return v


def _kleene(parts: list[Callable[[], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]], is_and: bool,
            n: int, every_operand: bool = False) -> _V:
    """``and``/``or`` over lazily computed operands ``() -> (truth, bad, unk)``, per row, left to right.

    A row is decided by the first operand that is known and False (``and``) / True (``or``), or that has an error
    (the row is bad). Unknown operands do not decide; an undecided row that met one is unknown (three-valued logic),
    else it takes the neutral value. Operands after every row is decided are not evaluated, unless
    ``every_operand`` (the result is the same; their type errors surface).
    """
    result = np.full(n, is_and)
    decided = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    unk = np.zeros(n, dtype=bool)
    for part in parts:
        if decided.all() and not every_operand:
            break
        t, b, u = part()
        t = np.broadcast_to(t, (n,))
        if b is not None:
            newly = b & ~decided
            bad |= newly
            decided |= newly
        known = ~decided if u is None else ~decided & ~u
        if u is not None:
            unk |= u & ~decided
        dec = known & (~t if is_and else t)
        result[dec] = not is_and
        decided |= dec
    unk &= ~decided
    return _V(result, bad if bad.any() else None, unk if unk.any() else None)


def _compare(sym: str, a: np.ndarray, b: np.ndarray, text: str) -> np.ndarray:
    ta, tb = _is_textual(a), _is_textual(b)
    if ta != tb:
        # a str never equals a number; ordering them is a type error in the expression
        if sym == "==":
            return np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
        if sym == "!=":
            return np.ones(np.broadcast_shapes(a.shape, b.shape), dtype=bool)
        raise ExpressionError(f"in expression {text!r}: cannot order a str and a number with {sym!r}")
    fn = next(f for s, f in _CMPOPS.values() if s == sym)
    try:
        out = fn(a, b)
    except TypeError as exc:  # e.g. ordering mixed objects
        raise ExpressionError(f"in expression {text!r}: cannot compare with {sym!r}: {exc}") from None
    return np.asarray(out, dtype=bool)


def _isin(a: np.ndarray, values: list[object]) -> np.ndarray:
    wanted: list[object]
    if _is_textual(a):
        wanted = [v for v in values if isinstance(v, str)]
    else:
        wanted = [v for v in values if not isinstance(v, str)]
    out = np.zeros(np.shape(a), dtype=bool)
    for v in wanted:  # a literal list is short: one vectorized comparison per listed value
        out |= np.asarray(a == v, dtype=bool)
    return out


def missing_mask(col: np.ndarray) -> np.ndarray:
    """Boolean mask of the missing entries of a column: NaN in float columns, None or NaN in object columns
    (pandas may hand either over); other dtypes have none."""
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind == "O":
        m = np.asarray(col == None, dtype=bool)   # elementwise on an object array  # noqa: E711
        try:
            m |= np.asarray(col != col, dtype=bool)   # NaN != NaN
        except Exception:  # pragma: no cover - exotic objects
            pass
        return m
    return np.zeros(col.shape, dtype=bool)


def _fill_missing(col: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Replace missing entries by a harmless present value of the same column (their result is overridden)."""
    present = np.flatnonzero(~m)
    if col.dtype.kind == "O":
        fill = col[present[0]] if len(present) else 0
        out = col.copy()
        out[m] = fill
        if len(present) and isinstance(fill, (int, float, np.integer, np.floating)) and not isinstance(fill, bool):
            try:
                return out.astype(np.float64)
            except (TypeError, ValueError):
                return out
        return out
    if col.dtype.kind == "f":
        return np.where(m, 0.0, col)
    return col

