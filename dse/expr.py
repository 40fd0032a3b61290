"""Safe, vectorized expressions for constraints and conditions.

Constraint and condition strings are stored with a study, so they are never handed to Python's
``eval``/``exec``/``compile``. :func:`parse` reads the text with :mod:`ast` and accepts only an allow-list of
constructs; the result is an :class:`Expr` that evaluates itself over a whole batch of configurations (a mapping
of column name -> numpy array) with numpy.

Allowed: names of the space's parameters, numeric/str/bool constants, ``+ - * / // % **``, unary ``- + not``,
comparisons (chained too: ``1 <= tp <= 8``), ``and``/``or``/``not`` (elementwise, short-circuit per row),
``in``/``not in`` with a literal tuple/list/set of constants, ``a if c else b`` and the functions
``min max abs log log2 exp sqrt floor ceil round``. Everything else raises :class:`~dse.errors.ExpressionError`
naming the construct.

Evaluation rules (per row of the batch):

- A row where an arithmetic error occurs on the path actually taken (division or modulo by zero, ``log`` of a
  non-positive number, ``sqrt`` of a negative one, a NaN result) evaluates to ``False``: for a constraint that
  means *infeasible*.
- A *missing* value (an inactive conditional parameter: ``None`` or NaN) is *unknown*, with three-valued logic:
  arithmetic, comparisons and functions of an unknown are unknown; ``x and y`` is False as soon as one side is
  known False, ``x or y`` True as soon as one side is known True, whatever the other. A row whose result stays
  unknown evaluates to ``if_missing``: ``True`` for constraints (a constraint that cannot be decided without an
  inactive parameter does not apply), ``False`` for conditions (a parameter whose parent is inactive is
  inactive). So ``mode == 'b' and k > 1`` excludes every row with ``mode != 'b'`` even where ``k`` is inactive.
- Errors take precedence over unknowns in a row, and ``and``/``or``/``if-else`` short-circuit per row: in
  ``y == 0 or x / y > 1`` rows with ``y == 0`` never see the division.
"""
from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dse.errors import ExpressionError

__all__ = ["Expr", "parse", "FUNCTIONS", "MAX_LENGTH", "MAX_DEPTH"]

MAX_LENGTH = 10_000
"""Longest expression text accepted, in characters."""
MAX_DEPTH = 100
"""Deepest syntax tree accepted (nesting of operators, calls and parentheses)."""

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

# Human names of refused constructs, for error messages.
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Lambda: "lambda",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.Starred: "starred expression",
    ast.NamedExpr: "assignment expression (walrus)",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
    ast.Dict: "dict literal",
    ast.Slice: "slice",
    ast.List: "list literal (allowed only after 'in'/'not in')",
    ast.Tuple: "tuple literal (allowed only after 'in'/'not in')",
    ast.Set: "set literal (allowed only after 'in'/'not in')",
}


def _describe(node: ast.AST) -> str:
    return _REFUSED.get(type(node), type(node).__name__)


# --------------------------------------------------------------------------------------------------------------
# Evaluation: every compiled node is a function ctx -> _V(value, bad, unk), where value is a numpy array of the
# batch's length (or a 0-d array for constants), bad marks rows where an arithmetic error happened, and unk marks
# rows whose value is unknown because a parameter it depends on is missing; both are bool arrays of length n or
# None (no such row).
# --------------------------------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    columns: Mapping[str, np.ndarray]
    missing: Mapping[str, np.ndarray]
    n: int


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
            n: int) -> _V:
    """``and``/``or`` over lazily computed operands ``() -> (truth, bad, unk)``, per row, left to right.

    A row is decided by the first operand that is known and False (``and``) / True (``or``), or that has an error
    (the row is bad). Unknown operands do not decide; an undecided row that met one is unknown (three-valued logic),
    else it takes the neutral value. Operands after every row is decided are not evaluated.
    """
    result = np.full(n, is_and)
    decided = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    unk = np.zeros(n, dtype=bool)
    for part in parts:
        if decided.all():
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


class _Compiler:
    """Turns an allow-listed AST into nested closures; refuses everything else."""

    def __init__(self, text: str, names: frozenset[str]):
        self.text = text
        self.names = names
        self.used: list[str] = []

    def fail(self, msg: str) -> ExpressionError:
        return ExpressionError(f"in expression {self.text!r}: {msg}")

    def compile(self, node: ast.AST) -> _Node:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:
            raise self.fail(f"{_describe(node)} is not allowed")
        return method(node)

    def truth_of(self, node: _Node) -> Callable[[_Ctx], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
        text = self.text

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
            r = node(ctx)
            t, nan = _truth(np.asarray(r.value), text)
            return t, _or(r.bad, _errors(nan, r.unk, ctx.n)), r.unk

        return ev

    # -- leaves --------------------------------------------------------------------------------------------
    def c_Name(self, node: ast.Name) -> _Node:
        name = node.id
        if name.startswith("__"):
            raise self.fail(f"dunder name {name!r} is not allowed")
        if name not in self.names:
            hint = " (a function must be called)" if name in FUNCTIONS else ""
            raise self.fail(f"unknown name {name!r}{hint}; valid names: {sorted(self.names)}")
        if name not in self.used:
            self.used.append(name)

        def ev(ctx: _Ctx) -> _V:
            return _V(ctx.columns[name], None, ctx.missing.get(name))

        return ev

    def c_Constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool):
            const = np.asarray(value)
        elif isinstance(value, int):
            const = np.asarray(value if abs(value) < _INT_LIMIT else float(value))
        elif isinstance(value, float):
            const = np.asarray(value)
        elif isinstance(value, str):
            const = np.asarray(value, dtype=object)
        else:
            raise self.fail(f"constant {value!r} of type {type(value).__name__} is not allowed")

        def ev(ctx: _Ctx) -> _V:
            return _V(const)

        return ev

    def literal_values(self, node: ast.AST) -> list[object]:
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            raise self.fail(f"'in'/'not in' needs a literal tuple or list of constants, got {_describe(node)}")
        out: list[object] = []
        for elt in node.elts:
            if isinstance(elt, ast.UnaryOp) and isinstance(elt.op, (ast.USub, ast.UAdd)) and isinstance(
                elt.operand, ast.Constant
            ):
                v = elt.operand.value
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.append(-v if isinstance(elt.op, ast.USub) else v)
                    continue
            if not isinstance(elt, ast.Constant) or not isinstance(elt.value, (bool, int, float, str)):
                raise self.fail(f"'in'/'not in' list may hold only constants, got {_describe(elt)}")
            out.append(elt.value)
        return out

    # -- operators -----------------------------------------------------------------------------------------
    def c_BinOp(self, node: ast.BinOp) -> _Node:
        if type(node.op) not in _BINOPS:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        sym, fn = _BINOPS[type(node.op)]
        left, right = self.compile(node.left), self.compile(node.right)
        text = self.text
        divides = sym in ("/", "//", "%")
        power = sym == "**"
        wraps = sym in ("+", "-", "*")

        def ev(ctx: _Ctx) -> _V:
            ra, rb = left(ctx), right(ctx)
            a = _numeric(ra.value, sym, text)
            b = _numeric(rb.value, sym, text)
            # Python arithmetic on bools is integer arithmetic (True + True == 2); numpy's is logical
            if a.dtype == bool:
                a = a.astype(np.int64)
            if b.dtype == bool:
                b = b.astype(np.int64)
            unk = _or(ra.unk, rb.unk)
            bad = _or(ra.bad, rb.bad)
            if power:  # in float: no integer overflow, negative exponents allowed
                a = a.astype(np.float64, copy=False)
                b = b.astype(np.float64, copy=False)
                bad = _or(bad, _errors((a == 0) & (b < 0), unk, ctx.n))  # 0 ** -k divides by zero
            if divides:
                zero = b == 0
                if np.any(zero):
                    bad = _or(bad, _errors(zero, unk, ctx.n))
                    b = np.where(zero, 1, b)
            out = fn(a, b)
            if wraps and out.dtype.kind in "iu":
                # int64 wraps around silently: where the exact result leaves the safe range, use float64
                approx = fn(a.astype(np.float64), b.astype(np.float64))
                big = np.abs(approx) >= _INT_LIMIT
                if np.any(big):
                    out = np.where(big, approx, out.astype(np.float64))
            if out.dtype.kind == "f":
                bad = _or(bad, _errors(np.isnan(out), unk, ctx.n))
            return _V(out, bad, unk)

        return ev

    def c_UnaryOp(self, node: ast.UnaryOp) -> _Node:
        operand = self.compile(node.operand)
        text = self.text
        if isinstance(node.op, ast.Not):
            truth = self.truth_of(operand)

            def ev_not(ctx: _Ctx) -> _V:
                t, bad, unk = truth(ctx)
                return _V(~t, bad, unk)

            return ev_not
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            neg = isinstance(node.op, ast.USub)
            sym = "-" if neg else "+"

            def ev_sign(ctx: _Ctx) -> _V:
                r = operand(ctx)
                v = _numeric(r.value, sym, text)
                if v.dtype == bool:
                    v = v.astype(np.int64)
                return _V(np.negative(v) if neg else v, r.bad, r.unk)

            return ev_sign
        raise self.fail(f"unary operator {type(node.op).__name__} is not allowed")

    def c_BoolOp(self, node: ast.BoolOp) -> _Node:
        parts = [self.truth_of(self.compile(v)) for v in node.values]
        is_and = isinstance(node.op, ast.And)

        def ev(ctx: _Ctx) -> _V:
            return _kleene([functools.partial(p, ctx) for p in parts], is_and, ctx.n)

        return ev

    def c_Compare(self, node: ast.Compare) -> _Node:
        operands = [self.compile(node.left)]
        steps: list[tuple[str, object]] = []
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                steps.append(("in" if isinstance(op, ast.In) else "not in", self.literal_values(comp)))
                operands.append(operands[-1])  # the next comparison (if any) starts from the same operand
            elif type(op) in _CMPOPS:
                steps.append((_CMPOPS[type(op)][0], None))
                operands.append(self.compile(comp))
            else:
                raise self.fail(f"comparison {type(op).__name__} ('is'/'is not') is not allowed")
        text = self.text

        def ev(ctx: _Ctx) -> _V:
            cache: dict[int, _V] = {}

            def get(i: int) -> _V:
                if i not in cache:
                    cache[i] = operands[i](ctx)
                return cache[i]

            def pair(i: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
                sym, values = steps[i]
                a = get(i)
                if sym in ("in", "not in"):
                    r = _isin(a.value, values)  # type: ignore[arg-type]
                    return (~r if sym == "not in" else r), a.bad, a.unk
                b = get(i + 1)
                return _compare(sym, a.value, b.value, text), _or(a.bad, b.bad), _or(a.unk, b.unk)

            if len(steps) == 1:
                t, bad, unk = pair(0)
                return _V(np.broadcast_to(t, (ctx.n,)) if bad is not None or unk is not None else t, bad, unk)
            # a chain a < b < c is (a < b) and (b < c), each operand evaluated once
            return _kleene([functools.partial(pair, i) for i in range(len(steps))], True, ctx.n)

        return ev

    def c_IfExp(self, node: ast.IfExp) -> _Node:
        cond = self.truth_of(self.compile(node.test))
        body, orelse = self.compile(node.body), self.compile(node.orelse)
        text = self.text

        def ev(ctx: _Ctx) -> _V:
            t, bc, uc = cond(ctx)
            x, y = body(ctx), orelse(ctx)
            if _is_textual(x.value) != _is_textual(y.value):
                raise ExpressionError(f"in expression {text!r}: both branches of 'if/else' must be numbers or both str")
            t = np.broadcast_to(t, (ctx.n,))
            out = np.where(t, x.value, y.value)
            none = np.zeros(ctx.n, dtype=bool)

            def pick(mx: np.ndarray | None, my: np.ndarray | None) -> np.ndarray | None:
                if mx is None and my is None:
                    return None
                m = np.where(t, none if mx is None else mx, none if my is None else my)
                if uc is not None:
                    m &= ~uc  # an unknown condition picks no branch
                return m if m.any() else None

            bad = _or(bc, pick(x.bad, y.bad))
            unk = _or(uc, pick(x.unk, y.unk))
            return _V(out, bad, unk)

        return ev

    def c_Call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail(
                f"only allow-listed functions may be called by name, not a call through {_describe(node.func)}; "
                f"allowed functions: {sorted(FUNCTIONS)}"
            )
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise self.fail(f"function {fname!r} is not allowed; allowed functions: {sorted(FUNCTIONS)}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(f"starred arguments to {fname}() are not allowed")
        if node.keywords:
            raise self.fail(f"keyword arguments to {fname}() are not allowed")
        fn, lo, hi = FUNCTIONS[fname]
        nargs = len(node.args)
        if nargs < lo or (hi is not None and nargs > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
            raise self.fail(f"{fname}() takes {want} arguments, got {nargs}")
        if fname == "round" and nargs == 2:
            nd = node.args[1]
            if not (isinstance(nd, ast.Constant) and type(nd.value) is int and abs(nd.value) <= 15):
                raise self.fail("round(x, ndigits): ndigits must be an integer constant between -15 and 15")
        args = [self.compile(a) for a in node.args]
        text = self.text
        domain = {"log": lambda x: x <= 0, "log2": lambda x: x <= 0, "sqrt": lambda x: x < 0}.get(fname)

        def ev(ctx: _Ctx) -> _V:
            vals = []
            bad = unk = None
            for a in args:
                r = a(ctx)
                vals.append(_numeric(r.value, fname + "()", text))
                bad, unk = _or(bad, r.bad), _or(unk, r.unk)
            if domain is not None:
                out_of_domain = domain(vals[0])
                if np.any(out_of_domain):
                    bad = _or(bad, _errors(out_of_domain, unk, ctx.n))
                    vals[0] = np.where(out_of_domain, 1, vals[0])
            out = np.asarray(fn(*vals))
            if out.dtype.kind == "f":
                bad = _or(bad, _errors(np.isnan(out), unk, ctx.n))
            return _V(out, bad, unk)

        return ev


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


def _depth(tree: ast.AST) -> int:
    """Depth of the syntax tree, computed without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


@dataclass(frozen=True)
class Expr:
    """A parsed, allow-listed expression over the columns of a batch.

    ``text`` is the source, ``names`` the parameter names it uses (in order of first use).
    """

    text: str
    names: tuple[str, ...]
    _fn: _Node = field(repr=False, compare=False)

    def evaluate(
        self,
        columns: Mapping[str, np.ndarray],
        n: int,
        *,
        missing: Mapping[str, np.ndarray] | None = None,
        if_missing: bool = True,
    ) -> np.ndarray:
        """Evaluate over a batch of ``n`` rows; returns a bool array of length ``n``.

        ``columns`` maps each used name to an array of length ``n``. ``missing`` optionally maps names to bool
        masks of rows where that parameter is inactive; without it a ``None``/NaN value means missing. A row whose
        value depends on a missing parameter evaluates to ``if_missing``; a row with an arithmetic error (division
        by zero, log of a non-positive number, NaN) evaluates to ``False``.
        """
        if n == 0:
            return np.zeros(0, dtype=bool)
        cols: dict[str, np.ndarray] = {}
        miss: dict[str, np.ndarray] = {}
        for name in self.names:
            if name not in columns:
                raise ExpressionError(
                    f"expression {self.text!r} needs column {name!r}; columns given: {sorted(columns)}"
                )
            col = np.asarray(columns[name])
            if col.shape != (n,):
                raise ExpressionError(f"column {name!r} has shape {col.shape}, expected ({n},)")
            if missing is not None and name in missing:
                m = np.asarray(missing[name], dtype=bool)
            else:
                m = missing_mask(col)
            if m.any():
                miss[name] = m
                col = _fill_missing(col, m)
            elif col.dtype.kind in "US":
                col = col.astype(object)
            cols[name] = col
        with np.errstate(all="ignore"):
            r = self._fn(_Ctx(cols, miss, n))
            truth, nan = _truth(np.asarray(r.value), self.text)
        out = np.array(np.broadcast_to(truth, (n,)), dtype=bool)
        if r.unk is not None:
            out[r.unk] = if_missing
        bad = _or(r.bad, _errors(nan, r.unk, n))
        if bad is not None:
            out[bad] = False
        return out

    def __reduce__(self) -> tuple[Any, tuple[str, tuple[str, ...]]]:
        # pickled as its text: re-parsed (and re-checked) on load, so it travels to worker processes
        return (parse, (self.text, self.names))

    def __call__(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        return self.evaluate(columns, n)

    def __str__(self) -> str:
        return self.text


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


def parse(text: str, names: Iterable[str]) -> Expr:
    """Parse ``text`` into an :class:`Expr` over the parameter ``names``.

    Raises :class:`~dse.errors.ExpressionError` for syntax errors, unknown names (listing the valid ones), any
    construct outside the allow-list (naming it), text over :data:`MAX_LENGTH` characters or nesting deeper than
    :data:`MAX_DEPTH`. ``TypeError`` if ``text`` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"an expression must be a str, got {type(text).__name__} {text!r:.80}")
    name_set = frozenset(names)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression of {len(text)} characters is too long (at most {MAX_LENGTH}): {text[:60]!r}..."
        )
    if not text.strip():
        raise ExpressionError(f"empty expression {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(
            f"expression {text[:60]!r} is nested too deeply or too complex to parse ({type(exc).__name__})"
        ) from None
    if _depth(tree) > MAX_DEPTH:
        raise ExpressionError(f"expression {text[:60]!r} is nested too deeply (at most {MAX_DEPTH} levels)")
    compiler = _Compiler(text, name_set)
    try:
        fn = compiler.compile(tree.body)
    except RecursionError:  # pragma: no cover - guarded by the depth check
        raise ExpressionError(f"expression {text[:60]!r} is nested too deeply") from None
    return Expr(text=text, names=tuple(compiler.used), _fn=fn)

