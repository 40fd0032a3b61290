"""dse.space: parameters, bad definitions, conditions, grid, sample, feasible, validate, serialization."""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pandas as pd
import pytest

from dse.errors import ExpressionError, SpaceError
from dse.expr import parse
from dse.space import Categorical, Float, Int, Param, Space
from tests.dse.test_space_properties import brute_force  # the scalar Python oracle


def serving_space(**extra) -> Space:
    return Space(
        mode=Categorical(["agg", "disagg"]),
        n_gpus=Categorical([1, 2, 4, 8]),
        tp=Categorical([1, 2, 4, 8]),
        prefill_tp=Categorical([1, 2, 4], when="mode == 'disagg'"),
        chunk=Int(1, 3, when="prefill_tp >= 2"),
        frac=Float(0.5, 1.0, step=0.25),
        constraints=["tp <= n_gpus", "n_gpus % tp == 0"],
        **extra,
    )


# -- parameters --------------------------------------------------------------------------------------------


def test_param_attributes_and_values():
    c = Categorical(["a", "b"])
    assert c.choices == ("a", "b") and c.is_discrete and c.n_values == 2 and c.when is None
    assert c.values().tolist() == ["a", "b"] and c.values().dtype == object
    i = Int(2, 10, step=2)
    assert (i.low, i.high, i.step, i.log) == (2, 10, 2, False)
    assert i.values().tolist() == [2, 4, 6, 8, 10] and i.values().dtype == np.int64 and i.n_values == 5
    f = Float(0.0, 1.0, step=0.1)
    assert f.is_discrete and f.n_values == 11
    assert f.values().tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    g = Float(1e-3, 1.0, log=True)
    assert not g.is_discrete and g.n_values == math.inf
    with pytest.raises(SpaceError, match="continuous"):
        g.values()
    assert all(isinstance(p, Param) for p in (c, i, f, g))
    assert Categorical([1, 2, 4]).values().dtype == np.int64
    assert Categorical([0.5, 1]).values().dtype == np.float64
    assert Categorical([True, False]).values().dtype == bool
    assert Categorical(np.array([1, 2])).choices == (1, 2) and type(Categorical(np.array([1, 2])).choices[0]) is int


def test_params_are_immutable_and_comparable():
    i = Int(1, 8)
    with pytest.raises(AttributeError):
        i.low = 3  # type: ignore[misc]
    assert Int(1, 8) == Int(1, 8) and Int(1, 8) != Int(1, 9)
    assert Float(0, 1) == Float(0.0, 1.0)
    assert "Int(low=1, high=8)" == repr(i)


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: Categorical([]), "[]"),
        (lambda: Categorical(["a", "b", "a"]), "'a'"),
        (lambda: Categorical([1, 1.0]), "1"),
        (lambda: Categorical(["a", 1]), "['a', 1]"),
        (lambda: Categorical([True, 1]), "[True, 1]"),
        (lambda: Categorical([1.0, float("nan")]), "nan"),
        (lambda: Categorical([None, "a"]), "None"),
        (lambda: Categorical([[1], [2]]), "[1]"),
        (lambda: Int(5, 1), "low=5"),
        (lambda: Int(0, 8, log=True), "low=0"),
        (lambda: Int(-3, 8, log=True), "low=-3"),
        (lambda: Int(1, 8, step=0), "step=0"),
        (lambda: Int(1, 8, step=-2), "step=-2"),
        (lambda: Int(1, 9, step=2, log=True), "step=2"),
        (lambda: Int(1, 8, step=2), "step=2"),
        (lambda: Int(1.5, 8), "1.5"),
        (lambda: Int(1, 2**70), str(2**70)),
        (lambda: Float(2.0, 1.0), "low=2.0"),
        (lambda: Float(0.0, 1.0, log=True), "low=0.0"),
        (lambda: Float(-1.0, 1.0, log=True), "low=-1.0"),
        (lambda: Float(0.0, 1.0, step=0.0), "step=0.0"),
        (lambda: Float(0.0, 1.0, step=-0.5), "step=-0.5"),
        (lambda: Float(0.1, 1.0, step=0.1, log=True), "step=0.1"),
        (lambda: Float(0.0, 1.0, step=0.3), "step=0.3"),
        (lambda: Float(0.0, float("inf")), "inf"),
        (lambda: Float(float("nan"), 1.0), "nan"),
        (lambda: Float(0.0, 1.0, step=float("inf")), "inf"),
        (lambda: Float(0.0, 1.0, step=1e-300), "1e-300"),
    ],
)
def test_bad_parameter_definitions_name_the_value(make, needle):
    with pytest.raises(SpaceError) as info:
        make()
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "make",
    [lambda: Categorical("abc"), lambda: Categorical(5), lambda: Categorical({"a": 1}), lambda: Int("1", 8),
     lambda: Int(1, None), lambda: Float("0", 1), lambda: Int(1, 8, log="yes"), lambda: Int(1, 8, when=3)],
)
def test_wrong_types_are_type_errors(make):
    with pytest.raises(TypeError):
        make()


def test_single_point_ranges_are_allowed():
    assert Int(3, 3).values().tolist() == [3]
    assert Float(2.0, 2.0, step=0.5).values().tolist() == [2.0]
    assert Space(x=Float(1.0, 1.0)).sample(3, seed=0)["x"].tolist() == [1.0, 1.0, 1.0]


# -- space definition --------------------------------------------------------------------------------------


def test_space_attributes():
    s = serving_space()
    assert s.names == ["mode", "n_gpus", "tp", "prefill_tp", "chunk", "frac"]
    assert list(s.params) == s.names and isinstance(s.params["tp"], Categorical)
    assert s.constraints == ("tp <= n_gpus", "n_gpus % tp == 0")
    assert s.is_discrete
    assert s.conditions == {"prefill_tp": "mode == 'disagg'", "chunk": "prefill_tp >= 2"}
    s.params.pop("tp")  # a copy: the space is unchanged
    assert "tp" in s.names
    d = Space({"a": Int(1, 3)}, b=Float(0, 1), constraints="a < 3")
    assert d.names == ["a", "b"] and not d.is_discrete and d.size == math.inf and d.constraints == ("a < 3",)


@pytest.mark.parametrize(
    "make,err,needle",
    [
        (lambda: Space(), SpaceError, "at least one"),
        (lambda: Space(a=Int(1, 2), constraints=["b > 1"]), ExpressionError, "'b'"),
        (lambda: Space(a=Int(1, 2), constraints=["b > 1"]), ExpressionError, "['a']"),
        (lambda: Space(a=Int(1, 2, when="b > 1"), b=Int(1, 2)), SpaceError, "defined after"),
        (lambda: Space(a=Int(1, 2, when="a > 1")), SpaceError, "'a'"),
        (lambda: Space(a=Int(1, 2, when="zz > 1"), b=Int(1, 2)), ExpressionError, "'zz'"),
        (lambda: Space(a=Int(1, 2), constraints=["a.real > 1"]), ExpressionError, "attribute"),
        (lambda: Space(a=Categorical(["x", "y"]), constraints=["a > 1"]), ExpressionError, "cannot order"),
        # the type error sits behind an operand that is False on every probe row (a = 1, b = 1 reaches it):
        # refused at definition, not raised later by grid() (hypothesis found it)
        (lambda: Space(a=Int(0, 3), b=Float(-1.0, 1.0, step=0.5), s=Categorical(["x", "y"]),
                       constraints=["a-b<=log(a)<s"]), ExpressionError, "cannot order a str and a number"),
        (lambda: Space(a=Int(0, 3), s=Categorical(["x", "y"]), constraints=["a > 9 and s > 1"]), ExpressionError,
         "cannot order a str and a number"),
        (lambda: Space(a=Categorical(["x", "y"]), constraints=["a * 2 == 'xx'"]), ExpressionError, "needs numbers"),
        (lambda: Space(a=Categorical(["x"]), b=Int(1, 2, when="a")), ExpressionError, "truth value"),
        (lambda: Space({"1a": Int(1, 2)}), SpaceError, "'1a'"),
        (lambda: Space({"__x": Int(1, 2)}), SpaceError, "'__x'"),
        (lambda: Space({"for": Int(1, 2)}), SpaceError, "'for'"),
        (lambda: Space({"a b": Int(1, 2)}), SpaceError, "'a b'"),
        (lambda: Space({"a": Int(1, 2)}, a=Int(1, 3)), SpaceError, "'a'"),
        (lambda: Space(a=[1, 2]), TypeError, "'a'"),
        (lambda: Space({3: Int(1, 2)}), TypeError, "3"),
        (lambda: Space(a=Int(1, 2), constraints=[3]), TypeError, "3"),
        (lambda: Space(a=Int(1, 2), constraints=5), TypeError, "int"),
    ],
)
def test_bad_space_definitions(make, err, needle):
    with pytest.raises(err) as info:
        make()
    assert needle in str(info.value)


def test_hostile_constraint_strings_are_refused_by_space(tmp_path):
    marker = tmp_path / "x"
    for text in [f"__import__('os').system('touch {marker}')", "().__class__.__bases__", "(lambda: 1)()",
                 f"open('{marker}', 'w')"]:
        with pytest.raises(ExpressionError):
            Space(a=Int(1, 2), constraints=[text])
        with pytest.raises(ExpressionError):
            Space(a=Int(1, 2), b=Int(1, 2, when=text))
        with pytest.raises(ExpressionError):
            Space.from_dict({"params": {"a": {"type": "int", "low": 1, "high": 2}}, "constraints": [text]})
    assert not marker.exists() and os.listdir(tmp_path) == []


# -- grid --------------------------------------------------------------------------------------------------


def normalize_rows(df: pd.DataFrame) -> list[tuple]:
    out = []
    for rec in df.to_dict("records"):
        out.append(tuple(None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in rec.values()))
    return out


def test_grid_matches_brute_force_with_conditions_and_constraints():
    s = serving_space()
    g = s.grid()
    want = brute_force(s)
    assert len(g) == len(want) == s.size
    assert normalize_rows(g) == want  # same rows in the same (lexicographic) order
    assert s.feasible(g).all()


def test_grid_dtypes_and_records_are_plain_python():
    s = serving_space()
    g = s.grid()
    assert g["mode"].dtype == object
    assert g["n_gpus"].dtype == np.int64 and g["tp"].dtype == np.int64
    assert g["prefill_tp"].dtype == np.float64  # conditional numeric -> NaN when inactive
    assert g["frac"].dtype == np.float64
    recs = g.to_dict("records")
    json.dumps(recs)
    assert type(recs[0]["mode"]) is str and type(recs[0]["n_gpus"]) is int and type(recs[0]["frac"]) is float
    agg = g[g["mode"] == "agg"]
    assert agg["prefill_tp"].isna().all() and agg["chunk"].isna().all()
    dis = g[g["mode"] == "disagg"]
    assert dis["prefill_tp"].notna().all()
    assert (dis["chunk"].isna() == (dis["prefill_tp"] < 2)).all()


def test_conditional_params_do_not_multiply_grid():
    s = Space(mode=Categorical(["a", "b"]), k=Int(1, 100, when="mode == 'b'"))
    assert s.size == 101 == len(s.grid())
    b = Space(flag=Categorical([True, False]), v=Categorical(["x", "y"], when="flag"))
    g = b.grid()
    assert normalize_rows(g) == [(True, "x"), (True, "y"), (False, None)]
    assert g["flag"].dtype == bool and g["v"].dtype == object


def test_grid_of_continuous_space_fails_naming_the_params():
    with pytest.raises(SpaceError, match="'x'"):
        Space(x=Float(0, 1), n=Int(1, 3)).grid()


def test_grid_max_points():
    s = Space(a=Int(1, 1000), b=Int(1, 1000))
    with pytest.raises(SpaceError, match="max_points"):
        s.grid(max_points=10_000)
    assert s.size == 1_000_000  # no enumeration needed


def test_grid_chunked_enumeration_matches_unchunked(monkeypatch):
    import dse.space_points as space_mod  # the grid enumeration's chunk size

    s = serving_space(extra=Int(0, 2, when="tp < 8"))
    full = s.grid()
    monkeypatch.setattr(space_mod, "_CHUNK", 7)
    small = Space.from_dict(s.to_dict())
    chunked = small.grid()
    pd.testing.assert_frame_equal(full, chunked)


def test_empty_feasible_set():
    s = Space(a=Int(1, 5), constraints=["a > 10"])
    assert s.size == 0
    g = s.grid()
    assert len(g) == 0 and list(g.columns) == ["a"]
    with pytest.raises(SpaceError, match="no feasible point"):
        s.sample(3, seed=0)


def test_constraints_over_inactive_parameters_use_three_valued_logic():
    s = Space(
        mode=Categorical(["a", "b"]),
        k=Int(1, 3, when="mode == 'b'"),
        constraints=["mode == 'b' and k > 1"],  # excludes mode 'a' although k is inactive there
    )
    assert normalize_rows(s.grid()) == [("b", 2), ("b", 3)]
    t = Space(mode=Categorical(["a", "b"]), k=Int(1, 3, when="mode == 'b'"), constraints=["k > 1"])
    assert normalize_rows(t.grid()) == [("a", None), ("b", 2), ("b", 3)]  # undecidable without k: holds
    u = Space(mode=Categorical(["a", "b"]), k=Int(1, 3, when="mode == 'b'"), constraints=["k > 1 or mode == 'b'"])
    assert normalize_rows(u.grid()) == [("a", None), ("b", 1), ("b", 2), ("b", 3)]
    v = Space(mode=Categorical(["a", "b"]), k=Int(1, 3, when="mode == 'b'"), constraints=["mode == 'a' or k > 2"])
    assert normalize_rows(v.grid()) == [("a", None), ("b", 3)]
    for sp in (s, t, u, v):
        assert sp.feasible(sp.grid()).all() and sp.size == len(brute_force(sp))
    assert s.validate({"mode": "b", "k": 2}) == {"mode": "b", "k": 2}
    with pytest.raises(SpaceError, match="mode == 'b' and k > 1"):
        s.validate({"mode": "a"})


def test_division_by_zero_constraint_is_infeasible():
    s = Space(a=Int(0, 3), b=Int(0, 2), constraints=["a / b >= 1"])
    g = s.grid()
    assert (g["b"] != 0).all()
    assert normalize_rows(g) == [(a, b) for a in range(4) for b in range(3) if b != 0 and a / b >= 1]


# -- callables ---------------------------------------------------------------------------------------------


def small_tp(df: pd.DataFrame) -> np.ndarray:
    return (df["tp"] <= 4).to_numpy()


def test_callable_constraints_in_grid_sample_feasible_validate():
    s = Space(
        n_gpus=Categorical([1, 2, 4, 8]), tp=Categorical([1, 2, 4, 8]), constraints=["tp <= n_gpus", small_tp]
    )
    g = s.grid()
    assert normalize_rows(g) == [(n, t) for n in (1, 2, 4, 8) for t in (1, 2, 4, 8) if t <= n and t <= 4]
    assert (s.sample(200, seed=1)["tp"] <= 4).all()
    assert s.feasible(pd.DataFrame({"n_gpus": [8, 8], "tp": [8, 4]})).tolist() == [False, True]
    with pytest.raises(SpaceError, match="small_tp"):
        s.validate({"n_gpus": 8, "tp": 8})
    d = s.to_dict()
    assert d["constraints"] == ["tp <= n_gpus", {"callable": "small_tp"}]
    with pytest.raises(SpaceError, match="small_tp"):
        Space.from_dict(d)
    back = Space.from_dict(json.loads(json.dumps(d)), callables={"small_tp": small_tp})
    pd.testing.assert_frame_equal(back.grid(), g)
    assert back.fingerprint() == s.fingerprint()


def test_callable_returning_wrong_shape_is_reported():
    s = Space(a=Int(1, 3), constraints=[lambda df: True])
    with pytest.raises(SpaceError, match="bool array"):
        s.grid()


# -- sample ------------------------------------------------------------------------------------------------


def test_sample_is_feasible_reproducible_and_typed():
    s = serving_space()
    a = s.sample(500, seed=3)
    b = s.sample(500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 500 and list(a.columns) == s.names
    assert s.feasible(a).all()
    assert not a.equals(s.sample(500, seed=4))
    assert a["n_gpus"].dtype == np.int64 and a["mode"].dtype == object
    json.dumps(a.to_dict("records"))
    assert set(a["mode"]) == {"agg", "disagg"}
    assert len(s.sample(0, seed=1)) == 0


def test_sample_bounds_log_and_steps():
    s = Space(f=Float(1e-4, 10.0, log=True), i=Int(3, 99, step=4), g=Int(1, 4096, log=True), u=Float(-2.0, 3.0))
    df = s.sample(5000, seed=0)
    assert df["f"].between(1e-4, 10.0).all()
    assert ((df["i"] - 3) % 4 == 0).all() and df["i"].between(3, 99).all()
    assert df["g"].between(1, 4096).all() and df["g"].dtype == np.int64
    assert df["u"].between(-2.0, 3.0).all()
    # log sampling: roughly uniform in log space, so the median is near the geometric mean
    assert 0.01 < df["f"].median() < 0.1
    assert 20 < df["g"].median() < 200
    assert df["i"].nunique() == 25


def test_sample_rejects_bad_n():
    s = Space(a=Int(1, 3))
    for bad in (-1, 1.5, "3", None):
        with pytest.raises((SpaceError, TypeError)):
            s.sample(bad, seed=0)  # type: ignore[arg-type]


def test_sample_small_but_workable_feasible_fraction():
    s = Space(x=Float(0, 1), y=Float(0, 1), constraints=["x < 0.05 and y < 0.05"])  # 1 in 400
    df = s.sample(1000, seed=2)
    assert len(df) == 1000 and (df["x"] < 0.05).all() and (df["y"] < 0.05).all()


def test_sample_tiny_feasible_fraction():
    cont = Space(x=Float(0, 1), y=Float(0, 1), constraints=["abs(x - y) < 1e-9"])
    with pytest.raises(SpaceError) as info:
        cont.sample(10, seed=0)
    assert "abs(x - y) < 1e-9" in str(info.value)
    # a discrete space falls back to drawing from its grid
    disc = Space(a=Int(0, 999), b=Int(0, 999), constraints=["a == 17 and b == 4"])
    df = disc.sample(5, seed=0)
    assert df.to_dict("records") == [{"a": 17, "b": 4}] * 5


# -- feasible / active -------------------------------------------------------------------------------------


def test_feasible_checks_domain_conditions_and_constraints():
    s = serving_space()
    df = pd.DataFrame(
        {
            "mode": ["agg", "agg", "disagg", "disagg", "agg", "zzz", "disagg", "agg", "agg"],
            "n_gpus": [8, 8, 8, 8, 3, 8, 8, 8, 8],
            "tp": [2, 8, 2, 2, 1, 1, 2, 2, 2],
            "prefill_tp": [None, None, 2, None, None, None, 1, 2, None],
            "chunk": [None, None, 3, None, None, None, None, None, None],
            "frac": [0.5, 0.75, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6],
            "metric": range(9),  # extra columns are ignored
        }
    )
    got = s.feasible(df).tolist()
    assert got == [True, True, True, False, False, False, True, False, False]
    #                                 ^missing active  ^n_gpus  ^choice     ^inactive set   ^off step


def test_feasible_rejects_wrong_types_without_crashing():
    s = Space(a=Int(1, 4), c=Categorical(["x", "y"]), f=Float(0, 1))
    df = pd.DataFrame({"a": ["1", "two", 3, 2.5], "c": [1, "x", None, "y"], "f": [0.5, "0.5", 2.0, np.inf]}, dtype=object)
    assert s.feasible(df).tolist() == [False, False, False, False]
    ok = pd.DataFrame({"a": [1, 4], "c": ["x", "y"], "f": [0.0, 1.0]})
    assert s.feasible(ok).tolist() == [True, True]
    with pytest.raises(SpaceError, match="'f'"):
        s.feasible(ok.drop(columns="f"))


def test_active():
    s = serving_space()
    df = pd.DataFrame({"mode": ["agg", "disagg", "disagg"], "n_gpus": [1, 1, 1], "tp": [1, 1, 1],
                       "prefill_tp": [4, 4, 1], "chunk": [1, 1, 1], "frac": [0.5, 0.5, 0.5]})
    act = s.active(df)
    assert set(act) == {"prefill_tp", "chunk"}
    assert act["prefill_tp"].tolist() == [False, True, True]
    assert act["chunk"].tolist() == [False, True, False]  # chunk's parent is inactive in row 0


# -- validate ----------------------------------------------------------------------------------------------


def test_validate_normalizes():
    s = serving_space()
    out = s.validate({"mode": "agg", "n_gpus": np.int64(8), "tp": 2.0, "frac": 0.75, "prefill_tp": 4})
    assert out == {"mode": "agg", "n_gpus": 8, "tp": 2, "prefill_tp": None, "chunk": None, "frac": 0.75}
    assert type(out["n_gpus"]) is int and list(out) == s.names
    out = s.validate({"mode": "disagg", "n_gpus": 8, "tp": 2, "frac": 1, "prefill_tp": 2, "chunk": 3.0})
    assert out["chunk"] == 3 and type(out["chunk"]) is int and out["frac"] == 1.0
    assert Space(f=Float(0.0, 1.0, step=0.1)).validate({"f": 0.30000000000000004}) == {"f": 0.3}


@pytest.mark.parametrize(
    "config,needle",
    [
        ({"mode": "agg", "n_gpus": 8, "tp": 2, "frac": 0.5, "bogus": 1}, "'bogus'"),
        ({"mode": "agg", "n_gpus": 8, "tp": 2}, "'frac'"),
        ({"mode": "disagg", "n_gpus": 8, "tp": 2, "frac": 0.5}, "'prefill_tp'"),
        ({"mode": "disagg", "n_gpus": 8, "tp": 2, "frac": 0.5, "prefill_tp": 2}, "'chunk'"),
        ({"mode": "agg", "n_gpus": 8, "tp": 2, "frac": 0.6}, "0.6"),
        ({"mode": "agg", "n_gpus": 8, "tp": 2, "frac": 1.5}, "out of range"),
        ({"mode": "bad", "n_gpus": 8, "tp": 2, "frac": 0.5}, "'bad'"),
        ({"mode": "agg", "n_gpus": 3, "tp": 1, "frac": 0.5}, "3"),
        ({"mode": "agg", "n_gpus": 2, "tp": 4, "frac": 0.5}, "tp <= n_gpus"),
        ({"mode": "agg", "n_gpus": "8", "tp": 2, "frac": 0.5}, "'8'"),
        ({"mode": "disagg", "n_gpus": 8, "tp": 2, "frac": 0.5, "prefill_tp": 2, "chunk": 1.5}, "1.5"),
        ({"mode": "disagg", "n_gpus": 8, "tp": 2, "frac": 0.5, "prefill_tp": 2, "chunk": 9}, "9"),
    ],
)
def test_validate_rejects_with_a_message_naming_the_problem(config, needle):
    s = serving_space()
    with pytest.raises(SpaceError) as info:
        s.validate(config)
    assert needle in str(info.value)


def test_validate_accepts_every_grid_row():
    s = serving_space()
    g = s.grid()
    for rec in g.to_dict("records"):
        out = s.validate(rec)
        assert normalize_rows(pd.DataFrame([out], dtype=object)) == normalize_rows(pd.DataFrame([rec], dtype=object))


def test_validate_type_errors():
    with pytest.raises(TypeError):
        serving_space().validate([("mode", "agg")])  # type: ignore[arg-type]


# -- serialization -----------------------------------------------------------------------------------------


def test_to_dict_from_dict_json_round_trip_preserves_grid_and_fingerprint():
    s = serving_space(lr=Float(1e-4, 1e-1, log=True), w=Int(1, 64, log=True), z=Int(0, 10, step=5, when="tp > 1"))
    d = s.to_dict()
    text = json.dumps(d)
    back = Space.from_dict(json.loads(text))
    assert back == s and back.to_dict() == d and back.fingerprint() == s.fingerprint()
    assert back.names == s.names
    disc = serving_space()
    pd.testing.assert_frame_equal(Space.from_dict(json.loads(json.dumps(disc.to_dict()))).grid(), disc.grid())


def test_fingerprint_distinguishes_spaces():
    a = Space(x=Int(1, 8), y=Categorical(["a", "b"]))
    assert len(a.fingerprint()) == 64 and int(a.fingerprint(), 16) >= 0
    assert a.fingerprint() == Space(x=Int(1, 8), y=Categorical(["a", "b"])).fingerprint()
    others = [
        Space(x=Int(1, 9), y=Categorical(["a", "b"])),
        Space(y=Categorical(["a", "b"]), x=Int(1, 8)),  # order matters: grid order differs
        Space(x=Int(1, 8), y=Categorical(["b", "a"])),
        Space(x=Int(1, 8), y=Categorical(["a", "b"]), constraints=["x > 1"]),
        Space(x=Int(1, 8, log=True), y=Categorical(["a", "b"])),
        Space(x=Int(1, 8), y=Categorical(["a", "b"], when="x > 2")),
    ]
    assert len({o.fingerprint() for o in others} | {a.fingerprint()}) == len(others) + 1


@pytest.mark.parametrize(
    "d,needle",
    [
        ({}, "params"),
        ({"params": {"a": {"type": "weird"}}}, "'weird'"),
        ({"params": {"a": {"low": 1}}}, "type"),
        ({"params": {"a": {"type": "int", "low": 1, "high": 2, "bogus": 3}}}, "bogus"),
        ({"params": {"a": {"type": "int", "low": 3, "high": 2}}}, "low=3"),
        ({"params": {"a": {"type": "int", "low": 1, "high": 2}}, "constraints": "a > 1 "}, "list"),
        ({"params": {"a": {"type": "int", "low": 1, "high": 2}}, "constraints": [{"x": 1}]}, "callable"),
        ({"params": {"a": {"type": "int", "low": 1, "high": 2}}, "extra": 1}, "'extra'"),
    ],
)
def test_from_dict_bad_specs(d, needle):
    with pytest.raises(SpaceError) as info:
        Space.from_dict(d)
    assert needle in str(info.value)


def test_pickle_round_trip_for_worker_processes():
    import pickle

    s = serving_space()
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.fingerprint() == s.fingerprint()
    pd.testing.assert_frame_equal(back.grid(), s.grid())
    e = pickle.loads(pickle.dumps(parse(s.constraints[0], s.names)))   # a constraint as the space compiles it
    assert e.text == "tp <= n_gpus" and e.names == ("tp", "n_gpus")


def test_constraints_none_and_odd_cells():
    s = Space(c=Categorical(["x", "y"]), constraints=None)
    assert s.constraints == ()
    df = pd.DataFrame({"c": [["x"], {"a": 1}, "x", float("nan")]}, dtype=object)
    assert s.feasible(df).tolist() == [False, False, True, False]
    assert s.validate({"c": "y"}) == {"c": "y"}
    with pytest.raises(SpaceError, match="missing parameter 'c'"):
        s.validate({"c": pd.NA})


def test_column_dtypes_are_fixed_per_parameter():
    s = Space(mode=Categorical(["a", "b"]), k=Int(1, 3, when="mode == 'b'"), f=Categorical([True, False], when="k > 1"),
              c=Categorical(["x", "y"], when="mode == 'a'"))
    only_b = Space.from_dict({**s.to_dict(), "constraints": ["mode == 'b' and k > 1"]})
    for df in (s.grid(), only_b.grid(), s.sample(50, seed=0), only_b.sample(5, seed=0)):
        assert df["mode"].dtype == object and df["k"].dtype == np.float64
        assert df["f"].dtype == object and df["c"].dtype == object
    assert only_b.grid()["k"].tolist() == [2.0, 2.0, 3.0, 3.0]


def test_an_empty_space_names_the_constraint_that_alone_excludes_everything():
    # "constraints [7 rules] exclude every configuration": the one that no value of its parameters meets was not said
    s = Space(tp=Categorical([1, 2]), mbs=Categorical([256]), mnt=Categorical([64]),
              constraints=["tp <= 8", "mnt >= mbs", "tp * 2 <= 8"])
    with pytest.raises(SpaceError, match=re.escape("constraint 'mnt >= mbs' holds for no value of mnt [64], mbs [256]")
                       + r".*all constraints"):
        s.sample(3, seed=0)
    both = Space(a=Int(1, 3), b=Int(1, 3), constraints=["a > b", "b > a"])     # only together
    with pytest.raises(SpaceError, match=r"the space has no feasible point: constraints \['a > b', 'b > a'\] exclude"):
        both.sample(3, seed=0)


def test_a_tiny_step_keeps_its_own_grid_values_feasible_and_a_huge_constrained_grid_says_it_cannot_be_counted():
    # step 1e-12 over [0, 3]: k = x / step reads ~1e-4 off an integer in float64, where the grid check allowed 1e-6
    # and refused the space's own samples; the tolerance now follows the float error of low + k * step
    space = Space({"a": Float(0.0, 3.0, step=1e-12)})
    df = space.sample(50, seed=0)
    assert space.feasible(df).all()
    assert space.validate({"a": float(df["a"].iloc[0])})["a"] == float(df["a"].iloc[0])
    assert not space.feasible(pd.DataFrame({"a": [0.5e-12 + 1.0]})).all()   # half a step off is still off
    # counting a constrained grid enumerates it, listing every value: 1e12 values are refused with the reason
    with pytest.raises(SpaceError, match="cannot be counted: \\['b'\\] have more than"):
        _ = Space({"b": Float(0.0, 1.0, step=1e-12)}, constraints=["b > 0.5"]).size
    assert Space({"b": Float(0.0, 1.0, step=0.1)}, constraints=["b > 0.5"]).size == 5
