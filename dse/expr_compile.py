"""The compiler of :mod:`dse.expr`: an allow-listed Python syntax tree (from :func:`ast.parse`, never ``eval``) to
nested closures that evaluate it over a batch with the rules of :mod:`dse.expr_eval`; every construct outside the
allow-list is refused with its name.
"""
from __future__ import annotations

import ast
import functools
from collections.abc import Callable

import numpy as np

from dse.errors import ExpressionError
from dse.expr_eval import (
    _BINOPS,
    _CMPOPS,
    _INT_LIMIT,
    _V,
    FUNCTIONS,
    _compare,
    _Ctx,
    _errors,
    _is_textual,
    _isin,
    _kleene,
    _Node,
    _numeric,
    _or,
    _truth,
)

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
            return _kleene([functools.partial(p, ctx) for p in parts], is_and, ctx.n, ctx.every_operand)

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
            return _kleene([functools.partial(pair, i) for i in range(len(steps))], True, ctx.n,
                           ctx.every_operand)

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

