"""Property-based tests and fuzzing of dse.space / dse.expr (hypothesis).

Invariants checked on random small spaces (conditions and constraints included) against a brute-force
itertools-style enumeration written with plain Python loops, plus fuzzing of definitions and constraint strings:
every outcome is a Space or a SpaceError / ExpressionError / TypeError with a message, never another exception.
"""
from __future__ import annotations

import ast
import json
import math
import operator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from dse.errors import ExpressionError, SpaceError
from dse.params import MAX_VALUES
from dse.space import Categorical, Float, Int, Param, Space

FAST = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

# -- oracle ------------------------------------------------------------------------------------------------
# An independent, scalar re-implementation of the expression semantics on top of Python itself: the generated
# text is rewritten (ast) so that and/or/not/comparisons/if-else go through three-valued helpers, with UNKNOWN
# standing for a missing value; Python's own exceptions (ZeroDivisionError, ValueError) mark an error row.


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


def _bool(v) -> bool:
    if isinstance(v, float) and math.isnan(v):
        raise ValueError("NaN truth value")
    return bool(v)


def _and(*thunks):
    unknown = False
    for th in thunks:
        v = th()
        if v is UNKNOWN:
            unknown = True
        elif not _bool(v):
            return False
    return UNKNOWN if unknown else True


def _or(*thunks):
    unknown = False
    for th in thunks:
        v = th()
        if v is UNKNOWN:
            unknown = True
        elif _bool(v):
            return True
    return UNKNOWN if unknown else False


def _not(v):
    return UNKNOWN if v is UNKNOWN else not _bool(v)


def _if(c, th_a, th_b):
    if c is UNKNOWN:
        return UNKNOWN
    return th_a() if _bool(c) else th_b()


_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}
_FN = {"min": min, "max": max, "abs": abs, "log": math.log, "round": round}


def _bin(op, a, b):
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if op is ast.Pow:  # in float64 as the compiled expression computes it: overflow is inf (an exact integer
        if a == 0 and b < 0:  # tower such as 3 ** 3 ** 3 ** 3 would never finish); 0 ** -k divides by zero, as
            raise ZeroDivisionError("0 ** negative")  # in Python (numpy's float power would give inf)
        with np.errstate(all="ignore"):
            out = float(np.power(np.float64(a), np.float64(b)))
    else:
        out = _BIN[op](a, b)
    if isinstance(out, complex) or (isinstance(out, float) and math.isnan(out)):
        raise ValueError("NaN or complex result")  # numpy gives NaN: an arithmetic error
    return out


def _neg(a):
    return UNKNOWN if a is UNKNOWN else -a


def _cmp(op, a, b):
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if isinstance(a, str) != isinstance(b, str) and op in (ast.Eq, ast.NotEq):
        return op is ast.NotEq
    return _CMP[op](a, b)


def _in(a, values, negate):
    if a is UNKNOWN:
        return UNKNOWN
    hit = any((isinstance(a, str) == isinstance(v, str)) and a == v for v in values)
    return hit != negate


def _call(name, *args):
    if any(a is UNKNOWN for a in args):
        return UNKNOWN
    return _FN[name](*args)


class _ToHelpers(ast.NodeTransformer):
    @staticmethod
    def _lam(node):
        return ast.Lambda(ast.arguments([], [], None, [], [], None, []), node)

    @staticmethod
    def _call(name, args):
        return ast.Call(ast.Name(name, ast.Load()), args, [])

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        return self._call("_and" if isinstance(node.op, ast.And) else "_or", [self._lam(v) for v in node.values])

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return self._call("_not", [node.operand])
        if isinstance(node.op, ast.USub):
            return self._call("_neg", [node.operand])
        return node.operand

    def visit_BinOp(self, node):
        self.generic_visit(node)
        op = ast.Constant(list(_BIN).index(type(node.op)))
        return self._call("_bin_i", [op, node.left, node.right])

    def visit_IfExp(self, node):
        self.generic_visit(node)
        return self._call("_if", [node.test, self._lam(node.body), self._lam(node.orelse)])

    def visit_Call(self, node):
        self.generic_visit(node)
        return self._call("_call", [ast.Constant(node.func.id), *node.args])

    def visit_Compare(self, node):
        self.generic_visit(node)
        pairs = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                pairs.append(self._call("_in", [left, right, ast.Constant(isinstance(op, ast.NotIn))]))
                continue  # the next comparison starts from the same left operand
            pairs.append(self._call("_cmp_i", [ast.Constant(list(_CMP).index(type(op))), left, right]))
            left = right
        return self._call("_and", [self._lam(p) for p in pairs])


_ENV = {"_and": _and, "_or": _or, "_not": _not, "_if": _if, "_neg": _neg, "_in": _in, "_call": _call,
        "_bin_i": lambda i, a, b: _bin(list(_BIN)[i], a, b), "_cmp_i": lambda i, a, b: _cmp(list(_CMP)[i], a, b)}


def _py(text: str, row: dict, if_missing: bool) -> bool:
    """The oracle's value of a generated expression for one row (None = missing parameter)."""
    tree = ast.fix_missing_locations(_ToHelpers().visit(ast.parse(text, mode="eval")))
    env = {k: (UNKNOWN if v is None else v) for k, v in row.items()}
    try:
        # names go in the globals: the lambdas made for and/or/if-else cannot see eval's locals
        value = eval(compile(tree, "<oracle>", "eval"), {"__builtins__": {}, **_ENV, **env})  # noqa: S307 - test oracle
        if value is UNKNOWN:
            return if_missing
        return _bool(value)
    except (ZeroDivisionError, ValueError, OverflowError):  # an arithmetic error makes the row False
        return False


def brute_force(space: Space) -> list[tuple]:
    """Every feasible point, enumerated with Python loops in grid order (first parameter slowest)."""
    rows: list[dict] = [{}]
    for name, p in space.params.items():
        nxt = []
        for r in rows:
            active = p.when is None or _py(p.when, r, if_missing=False)
            for v in (p.values().tolist() if active else [None]):
                nxt.append({**r, name: v})
        rows = nxt
    return [tuple(r.values()) for r in rows if all(_py(c, r, if_missing=True) for c in space.constraints)]


def rows_of(df: pd.DataFrame) -> list[tuple]:
    return [
        tuple(None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in rec.values())
        for rec in df.to_dict("records")
    ]


# -- random spaces -----------------------------------------------------------------------------------------

STR_CHOICES = ["a", "b", "c"]


@st.composite
def param_spec(draw):
    kind = draw(st.sampled_from(["str", "num", "bool", "int", "float"]))
    if kind == "str":
        return "str", Categorical(draw(st.lists(st.sampled_from(STR_CHOICES), min_size=1, max_size=3, unique=True)))
    if kind == "num":
        return "num", Categorical(draw(st.lists(st.integers(-3, 8), min_size=1, max_size=4, unique=True)))
    if kind == "bool":
        return "bool", Categorical(draw(st.lists(st.booleans(), min_size=1, max_size=2, unique=True)))
    if kind == "int":
        low = draw(st.integers(-4, 6))
        step = draw(st.integers(1, 3))
        k = draw(st.integers(0, 4))
        return "num", Int(low, low + k * step, step=step)
    low = draw(st.sampled_from([-1.0, 0.0, 0.5]))
    step = draw(st.sampled_from([0.25, 0.5, 1.0]))
    return "num", Float(low, low + draw(st.integers(0, 3)) * step, step=step)


def numeric_expr(draw, nums: list[str], depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        if nums and draw(st.booleans()):
            return draw(st.sampled_from(nums))
        return str(draw(st.integers(-3, 4)))
    op = draw(st.sampled_from(["+", "-", "*", "//", "%", "/"]))
    if draw(st.integers(0, 4)) == 0:
        f = draw(st.sampled_from(["min", "max"]))
        return f"{f}({numeric_expr(draw, nums, depth - 1)}, {numeric_expr(draw, nums, depth - 1)})"
    return f"({numeric_expr(draw, nums, depth - 1)} {op} {numeric_expr(draw, nums, depth - 1)})"


def bool_expr(draw, kinds: dict[str, str], depth: int = 2) -> str:
    nums = [n for n, k in kinds.items() if k == "num"]
    strs = [n for n, k in kinds.items() if k == "str"]
    bools = [n for n, k in kinds.items() if k == "bool"]
    forms = ["cmp", "chain"] + (["str"] if strs else []) + (["bool"] if bools else [])
    form = draw(st.sampled_from(forms))
    if form == "str":
        name = draw(st.sampled_from(strs))
        if draw(st.booleans()):
            return f"{name} {draw(st.sampled_from(['==', '!=']))} {draw(st.sampled_from(STR_CHOICES))!r}"
        vals = draw(st.lists(st.sampled_from(STR_CHOICES), min_size=1, max_size=2))
        return f"{name} {draw(st.sampled_from(['in', 'not in']))} {tuple(vals)!r}"
    if form == "bool":
        return draw(st.sampled_from(bools)) if draw(st.booleans()) else f"not {draw(st.sampled_from(bools))}"
    cmp = draw(st.sampled_from(["<", "<=", "==", "!=", ">", ">="]))
    text = f"{numeric_expr(draw, nums)} {cmp} {numeric_expr(draw, nums)}"
    if form == "chain":
        text += f" {draw(st.sampled_from(['<', '<=']))} {numeric_expr(draw, nums, 1)}"
    if depth > 0 and draw(st.integers(0, 3)) == 0:
        other = bool_expr(draw, kinds, depth - 1)
        text = f"({text}) {draw(st.sampled_from(['and', 'or']))} ({other})"
    return text


@st.composite
def spaces(draw, max_params: int = 4):
    n = draw(st.integers(1, max_params))
    kinds: dict[str, str] = {}
    params: dict[str, Param] = {}
    for i in range(n):
        kind, p = draw(param_spec())
        name = f"p{i}"
        if kinds and draw(st.integers(0, 2)) == 0:
            when = bool_expr(draw, dict(kinds))
            d = p.to_dict()
            d["when"] = when
            p = Param.from_dict(d)
        kinds[name] = kind
        params[name] = p
    constraints = [bool_expr(draw, kinds) for _ in range(draw(st.integers(0, 2)))]
    return Space(params, constraints=constraints)


# -- invariants --------------------------------------------------------------------------------------------


@settings(FAST, max_examples=150)
@given(spaces())
def test_grid_equals_brute_force_and_is_feasible(space):
    g = space.grid()
    want = brute_force(space)
    assert rows_of(g) == want
    assert space.size == len(g) == len(want)
    assert space.feasible(g).all()
    assert list(g.columns) == space.names
    json.dumps(g.to_dict("records"))
    # unconstrained, unconditioned: size is the product of the domain sizes
    if not space.constraints and not space.conditions:
        assert space.size == math.prod(p.n_values for p in space.params.values())


@settings(FAST, max_examples=60)
@given(spaces(), st.integers(0, 2**32 - 1))
def test_json_round_trip_preserves_grid_and_fingerprint(space, _seed):
    back = Space.from_dict(json.loads(json.dumps(space.to_dict())))
    assert back.fingerprint() == space.fingerprint()
    assert back.to_dict() == space.to_dict()
    pd.testing.assert_frame_equal(back.grid(), space.grid())


@settings(FAST, max_examples=60)
@given(spaces(), st.integers(0, 2**32 - 1))
def test_samples_are_feasible_grid_points_and_reproducible(space, seed):
    assume(space.size > 0)
    s = space.sample(40, seed=seed)
    assert len(s) == 40 and space.feasible(s).all()
    grid_rows = set(rows_of(space.grid()))
    assert set(rows_of(s)) <= grid_rows
    pd.testing.assert_frame_equal(s, space.sample(40, seed=seed))


@settings(FAST, max_examples=60)
@given(spaces(), st.data())
def test_validate_accepts_grid_rows_and_rejects_mutations_naming_the_parameter(space, data):
    g = space.grid()
    assume(len(g) > 0)
    rec = g.to_dict("records")[data.draw(st.integers(0, len(g) - 1))]
    out = space.validate(rec)
    assert tuple(out.values()) == rows_of(pd.DataFrame([rec], dtype=object))[0]
    active = [n for n, v in out.items() if v is not None]
    name = data.draw(st.sampled_from(active))
    p = space.params[name]
    if isinstance(p, Categorical):
        bad = "zzz" if p.kind == "str" else ("yes" if p.kind == "bool" else max(p.choices) + 1)
    elif isinstance(p, Int):
        bad = data.draw(st.sampled_from([p.high + p.step, p.low - 1, p.low + 0.5]))
    else:
        bad = data.draw(st.sampled_from([p.high + 1.0, p.low - 1.0, float("inf")]))
    with pytest.raises(SpaceError) as info:
        space.validate({**rec, name: bad})
    assert repr(name) in str(info.value)


@settings(FAST, max_examples=40)
@given(
    st.sampled_from([(1e-3, 1e3), (1.0, 2.0), (1e-8, 1e-7), (0.5, 0.5)]),
    st.integers(1, 10**6),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
)
def test_log_and_step_sampling_stays_in_domain(fbounds, ihigh, step, seed):
    lo, hi = fbounds
    s = Space(f=Float(lo, hi, log=True), g=Int(1, ihigh, log=True), k=Int(-7, -7 + 10 * step, step=step))
    df = s.sample(300, seed=seed)
    assert df["f"].between(lo, hi).all()
    assert df["g"].between(1, ihigh).all()
    assert ((df["k"] + 7) % step == 0).all() and df["k"].between(-7, -7 + 10 * step).all()
    assert s.feasible(df).all()


# -- fuzzing (issue 6) -------------------------------------------------------------------------------------

ALLOWED_ERRORS = (SpaceError, ExpressionError, TypeError)

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.lists(st.integers(-3, 3), max_size=3), st.just(np.int64(3)), st.just(np.float64(0.5)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@st.composite
def fuzz_param(draw):
    """Mostly plausible parameter definitions, some with junk in one place."""
    kind = draw(st.sampled_from(["cat", "int", "float"] * 3 + ["junk"]))
    plausible = draw(st.integers(0, 2)) > 0
    when = draw(st.sampled_from([None] * 8 + ["a > 1", "a == 'x'", "zz == 1", "", "a.b", "1/0 > 1", 3]))
    if kind == "cat":
        ok = st.one_of(st.lists(st.integers(-3, 3), min_size=1, max_size=4, unique=True),
                       st.lists(st.sampled_from("xyz"), min_size=1, max_size=3, unique=True))
        choices = draw(ok if plausible else st.one_of(st.lists(junk, max_size=4), junk))
        return lambda: Categorical(choices, when=when)
    if kind == "int":
        num = st.integers(-5, 10) if plausible else st.one_of(st.integers(-5, 10), junk)
        a, b = draw(num), draw(num)
        step = draw(st.integers(1, 3) if plausible else st.one_of(st.integers(-2, 3), junk))
        log = draw(st.booleans() if plausible else st.one_of(st.booleans(), junk))
        return lambda: Int(a, b, log=log, step=step, when=when)
    if kind == "float":
        num = st.floats(-10, 10) if plausible else st.one_of(st.floats(-10, 10), junk)
        a, b = draw(num), draw(num)
        step = draw(st.one_of(st.none(), st.sampled_from([0.5, 1.0, 0.3]), st.floats(-1, 2), junk if not plausible else st.none()))
        log = draw(st.booleans() if plausible else st.one_of(st.booleans(), junk))
        return lambda: Float(a, b, log=log, step=step, when=when)
    value = draw(junk)
    return lambda: value


@settings(FAST, max_examples=250)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", "a", "b", "1x", "__d", "for"]), fuzz_param()), min_size=1,
             max_size=4),
    st.lists(st.sampled_from(["a > 1", "b", "a / b > 0", "c in ('x', 1)", "min(a, b) < 3", "a == 'x'", None, 3,
                              "a +", "().__class__"]), max_size=2),
)
def test_fuzz_space_definitions(items, constraints):
    try:
        params = {name: make() for name, make in items}
        space = Space(params, constraints=constraints)
    except ALLOWED_ERRORS as exc:
        assert str(exc)
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")
    # a space that was accepted must work
    df = space.sample(5, seed=0) if not space.constraints else None
    if df is not None:
        assert space.feasible(df).all()
    if space.is_discrete:
        try:
            size = space.size
        except SpaceError as exc:
            # counting conditions or constraints enumerates the grid: refused, saying why, only where a parameter
            # has too many values to list
            assert "cannot be counted" in str(exc)
            assert max(p.n_values for p in space.params.values()) > MAX_VALUES
            return
        if size < 5000:
            assert space.feasible(space.grid()).all()


OPERANDS = ["a", "b", "s", "1", "0", "2.5", "-1", "'x'", "'y'", "True", "None", "x", "a.real", "__class__", "min(a, b)",
            "abs(b)", "log(a)", "round(b)", "(a, 1)", "[1]", "lambda: 1"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "<", "<=", "==", "!=", " and ", " or ", " in ", " not in ", " if ",
             " else ", ",", "(", ")", " not ", "."]


@st.composite
def soup(draw):
    """Alternating operands and operators: often valid, often not."""
    parts = [draw(st.sampled_from(OPERANDS))]
    for _ in range(draw(st.integers(0, 5))):
        parts += [draw(st.sampled_from(OPERATORS)), draw(st.sampled_from(OPERANDS))]
    return "".join(parts)


@settings(FAST, max_examples=250)
@given(soup())
def test_fuzz_constraint_strings(text):
    base = dict(a=Int(0, 3), b=Float(-1.0, 1.0, step=0.5), s=Categorical(["x", "y"]))
    try:
        space = Space(base, constraints=[text])
    except ExpressionError as exc:
        assert str(exc)
        event("refused")
        return
    event("accepted")
    g = space.grid()
    assert space.feasible(g).all()
    assert len(g) == len(brute_force(space))
    space.sample(3, seed=1) if len(g) else None
    try:
        cond = Space({**base, "c": Int(0, 1, when=text)})
    except ExpressionError as exc:
        assert str(exc)
        return
    assert cond.feasible(cond.grid()).all()
