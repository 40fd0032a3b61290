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
- A row where a referenced parameter is *missing* (an inactive conditional parameter: ``None`` or NaN) evaluates
  to ``if_missing`` (``True`` for constraints: a constraint is only enforced where every parameter it names is
  active; ``False`` for conditions: a parameter whose parent is inactive is inactive too).
"""
from __future__ import annotations

import ast
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
# Evaluation: every compiled node is a function (ctx) -> (value, bad) where value is a numpy array (or 0-d array
# for constants) and bad is a bool array of rows where an arithmetic error happened, or None.
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    columns: Mapping[str, np.ndarray]
    n: int


_Node = Callable[[_Ctx], "tuple[np.ndarray, np.ndarray | None]"]


def _or(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _is_textual(v: np.ndarray) -> bool:
    return v.dtype.kind in "OUS"


def _truth(v: np.ndarray, text: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Elementwise truth value; NaN is an error (bad row)."""
    if v.dtype == bool:
        return v, None
    if v.dtype.kind in "iu":
        return v != 0, None
    if v.dtype.kind == "f":
        nan = np.isnan(v)
        return (v != 0) & ~nan, (nan if nan.any() else None)
    raise ExpressionError(
        f"in expression {text!r}: a str value was used as a truth value; compare it instead (e.g. x == 'a')"
    )


def _numeric(v: np.ndarray, op: str, text: str) -> np.ndarray:
    if _is_textual(v):
        raise ExpressionError(f"in expression {text!r}: operator {op!r} needs numbers, got a str value")
    return v


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

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            return ctx.columns[name], None

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

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            return const, None

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

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            a, ba = left(ctx)
            b, bb = right(ctx)
            a = _numeric(a, sym, text)
            b = _numeric(b, sym, text)
            bad = _or(ba, bb)
            if power:  # in float: no integer overflow, negative exponents allowed
                a = a.astype(np.float64, copy=False)
                b = b.astype(np.float64, copy=False)
                zero_div = (a == 0) & (b < 0)  # 0 ** -k divides by zero
                if np.any(zero_div):
                    zd = np.broadcast_to(zero_div, (ctx.n,)) if zero_div.ndim else np.full(ctx.n, True)
                    bad = _or(bad, zd)
            if divides:
                zero = b == 0
                if np.any(zero):
                    bad = _or(bad, np.broadcast_to(zero, (ctx.n,)) if zero.ndim else np.full(ctx.n, bool(zero)))
                    b = np.where(zero, 1, b)
            out = fn(a, b)
            if wraps and out.dtype.kind in "iu":
                # int64 wraps around silently: where the exact result leaves the safe range, use float64
                approx = fn(a.astype(np.float64), b.astype(np.float64))
                big = np.abs(approx) >= _INT_LIMIT
                if np.any(big):
                    out = np.where(big, approx, out.astype(np.float64))
            if out.dtype.kind == "f":
                nan = np.isnan(out)
                if nan.any():
                    bad = _or(bad, np.broadcast_to(nan, (ctx.n,)) if nan.ndim else np.full(ctx.n, True))
            return out, bad

        return ev

    def c_UnaryOp(self, node: ast.UnaryOp) -> _Node:
        operand = self.compile(node.operand)
        text = self.text
        if isinstance(node.op, ast.Not):

            def ev_not(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
                v, bad = operand(ctx)
                t, bt = _truth(v, text)
                return ~t, _or(bad, bt)

            return ev_not
        if isinstance(node.op, ast.USub):

            def ev_neg(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
                v, bad = operand(ctx)
                v = _numeric(v, "-", text)
                return (np.negative(v.astype(np.int64)) if v.dtype == bool else np.negative(v)), bad

            return ev_neg
        if isinstance(node.op, ast.UAdd):

            def ev_pos(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
                v, bad = operand(ctx)
                return _numeric(v, "+", text), bad

            return ev_pos
        raise self.fail(f"unary operator {type(node.op).__name__} is not allowed")

    def c_BoolOp(self, node: ast.BoolOp) -> _Node:
        parts = [self.compile(v) for v in node.values]
        is_and = isinstance(node.op, ast.And)
        text = self.text

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            # Per-row short circuit: a row decided by an earlier operand ignores errors in later ones.
            result = np.full(ctx.n, is_and)
            bad = np.zeros(ctx.n, dtype=bool)
            undecided = np.ones(ctx.n, dtype=bool)
            for part in parts:
                v, bv = part(ctx)
                t, bt = _truth(np.asarray(v), text)
                t = np.broadcast_to(t, (ctx.n,))
                b = _or(bv, bt)
                if b is not None:
                    b = np.broadcast_to(b, (ctx.n,))
                    bad |= undecided & b
                    undecided &= ~b
                if is_and:
                    decided_now = undecided & ~t
                    result[decided_now] = False
                else:
                    decided_now = undecided & t
                    result[decided_now] = True
                undecided &= ~decided_now
            return result, (bad if bad.any() else None)

        return ev

    def c_Compare(self, node: ast.Compare) -> _Node:
        first = self.compile(node.left)
        steps: list[tuple[str, object]] = []
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                values = self.literal_values(comp)
                steps.append(("in" if isinstance(op, ast.In) else "not in", values))
            elif type(op) in _CMPOPS:
                steps.append((_CMPOPS[type(op)][0], self.compile(comp)))
            else:
                raise self.fail(f"comparison {type(op).__name__} ('is'/'is not') is not allowed")
        text = self.text

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            a, bad = first(ctx)
            result: np.ndarray | None = None
            for sym, arg in steps:
                if sym in ("in", "not in"):
                    r = _isin(a, arg)  # type: ignore[arg-type]
                    if sym == "not in":
                        r = ~r
                    nxt = a
                else:
                    b, bb = arg(ctx)  # type: ignore[operator]
                    bad = _or(bad, bb)
                    r = _compare(sym, a, b, text)
                    nxt = b
                result = r if result is None else (result & r)
                a = nxt
            assert result is not None
            return result, bad

        return ev

    def c_IfExp(self, node: ast.IfExp) -> _Node:
        cond, body, orelse = self.compile(node.test), self.compile(node.body), self.compile(node.orelse)
        text = self.text

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            c, bc = cond(ctx)
            t, bt = _truth(np.asarray(c), text)
            x, bx = body(ctx)
            y, by = orelse(ctx)
            if _is_textual(x) != _is_textual(y):
                raise ExpressionError(f"in expression {text!r}: both branches of 'if/else' must be numbers or both str")
            out = np.where(t, x, y)
            bad = _or(bc, bt)
            if bx is not None or by is not None:
                bxa = np.zeros(ctx.n, bool) if bx is None else bx
                bya = np.zeros(ctx.n, bool) if by is None else by
                bad = _or(bad, np.where(t, bxa, bya))
            return out, bad

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

        def ev(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
            vals = []
            bad = None
            for a in args:
                v, b = a(ctx)
                vals.append(_numeric(v, fname + "()", text))
                bad = _or(bad, b)
            if domain is not None:
                x = vals[0]
                out_of_domain = domain(x)
                if np.any(out_of_domain):
                    bad = _or(bad, np.broadcast_to(out_of_domain, (ctx.n,)).copy())
                    vals[0] = np.where(out_of_domain, 1, x)
            out = np.asarray(fn(*vals))
            return out, bad

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
    if _is_textual(a):
        wanted = [v for v in values if isinstance(v, str)]
    else:
        wanted = [v for v in values if not isinstance(v, str)]
    if not wanted:
        return np.zeros(np.shape(a), dtype=bool) if np.ndim(a) else np.asarray(False)
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
        masks of rows where that parameter is inactive; without it a ``None``/NaN value means missing. Rows where a
        used parameter is missing evaluate to ``if_missing``; rows with an arithmetic error (division by zero,
        log of a non-positive number, NaN) evaluate to ``False``.
        """
        if n == 0:
            return np.zeros(0, dtype=bool)
        cols: dict[str, np.ndarray] = {}
        miss_any = np.zeros(n, dtype=bool)
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
                m = _missing_mask(col)
            if m.any():
                miss_any |= m
                col = _fill_missing(col, m)
            elif col.dtype.kind in "US":
                col = col.astype(object)
            cols[name] = col
        ctx = _Ctx(cols, n)
        with np.errstate(all="ignore"):
            value, bad = self._fn(ctx)
            truth, bt = _truth(np.asarray(value), self.text)
        out = np.array(np.broadcast_to(truth, (n,)), dtype=bool)
        bad = _or(bad, bt)
        if bad is not None:
            out &= ~np.broadcast_to(bad, (n,))
        if miss_any.any():
            out[miss_any] = if_missing
        return out

    def __reduce__(self) -> tuple[Any, tuple[str, tuple[str, ...]]]:
        # pickled as its text: re-parsed (and re-checked) on load, so it travels to worker processes
        return (parse, (self.text, self.names))

    def __call__(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        return self.evaluate(columns, n)

    def __str__(self) -> str:
        return self.text


def _missing_mask(col: np.ndarray) -> np.ndarray:
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype.kind == "O":
        m = np.equal(col, None)
        # NaN inside object columns (pandas may hand us those) counts as missing too: NaN != NaN
        try:
            nan = np.asarray(col != col, dtype=bool)
        except Exception:  # pragma: no cover - exotic objects
            nan = np.zeros(len(col), bool)
        return np.asarray(m, dtype=bool) | nan
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

