"""dse.encoding: DataFrame <-> X round trips, exact keys, domain-exact decoding, Optuna distributions."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse import Categorical, Float, Int, Space
from dse.encoding import Encoder, config_from_optuna, optuna_distributions, optuna_params
from dse.errors import SpaceError
from dse.space import Param


def mixed_space() -> Space:
    return Space(
        mode=Categorical(["agg", "disagg"]),
        tp=Categorical([1, 2, 4, 8]),
        shuffled=Categorical([4, 1, 2]),
        flag=Categorical([True, False]),
        bs=Int(1, 1024, log=True),
        layers=Int(0, 60, step=4),
        lr=Float(1e-4, 1e-1, log=True),
        frac=Float(0.0, 1.0),
        q=Float(0.0, 1.0, step=0.1),
        ratio=Int(1, 8, when="mode == 'disagg'"),
        dkind=Categorical(["a", "b"], when="mode == 'disagg'"),
        constraints=["tp <= bs"],
    )


# ------------------------------------------------------------------------------------------ random spaces
@st.composite
def params(draw: st.DrawFn, i: int):
    kind = draw(st.sampled_from(["cat_str", "cat_num", "cat_bool", "int", "int_log", "int_step", "float",
                                 "float_log", "float_step"]))
    if kind == "cat_str":
        k = draw(st.integers(1, 5))
        return Categorical([f"c{i}_{j}" for j in range(k)])
    if kind == "cat_num":
        vals = draw(st.lists(st.integers(-50, 50), min_size=1, max_size=6, unique=True))
        return Categorical(vals)
    if kind == "cat_bool":
        return Categorical([True, False])
    if kind == "int":
        lo = draw(st.integers(-100, 100))
        return Int(lo, lo + draw(st.integers(0, 300)))
    if kind == "int_log":
        lo = draw(st.integers(1, 100))
        return Int(lo, lo + draw(st.integers(0, 10_000)), log=True)
    if kind == "int_step":
        lo, step = draw(st.integers(-20, 20)), draw(st.integers(1, 7))
        return Int(lo, lo + step * draw(st.integers(0, 20)), step=step)
    if kind == "float":
        lo = draw(st.floats(-1e3, 1e3))
        return Float(lo, lo + draw(st.floats(0.0, 1e3)))
    if kind == "float_log":
        lo = draw(st.floats(1e-6, 10.0))
        return Float(lo, lo * draw(st.floats(1.0, 1e4)), log=True)
    step = draw(st.sampled_from([0.1, 0.25, 0.5, 2.0]))
    lo = draw(st.integers(-10, 10)) * step
    return Float(lo, lo + step * draw(st.integers(0, 30)), step=step)


@st.composite
def spaces(draw: st.DrawFn) -> Space:
    n = draw(st.integers(1, 5))
    ps = {f"p{i}": draw(params(i)) for i in range(n)}
    if draw(st.booleans()):
        ps["mode"] = Categorical(["on", "off"])
        ps["cond"] = Param.from_dict({**draw(params(99)).to_dict(), "when": "mode == 'on'"})
    return Space(ps)


def _has_log_float(space: Space) -> bool:
    return any(isinstance(p, Float) and p.log for p in space.params.values())


def _assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame, space: Space) -> None:
    assert list(a.columns) == list(b.columns)
    for name in space.names:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        p = space.params[name]
        if isinstance(p, Float) and p.log:
            np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-13, equal_nan=True)
        elif x.dtype.kind in "iufb" and y.dtype.kind in "iufb":
            np.testing.assert_array_equal(x.astype(float), y.astype(float))
        else:
            assert [None if pd.isna(v) else v for v in x] == [None if pd.isna(v) else v for v in y], name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 2**31))
def test_round_trip_on_random_spaces(space: Space, seed: int) -> None:
    enc = Encoder(space)
    df = space.sample(40, seed=seed)
    X = enc.encode(df)
    assert X.shape == (len(df), len(space.names))
    assert np.all(X >= enc.xl) and np.all(X <= enc.xu)
    back = enc.decode(X)
    _assert_frames_equal(back, df, space)
    assert list(back.dtypes) == list(df.dtypes)
    if not _has_log_float(space):
        assert enc.keys(back).tolist() == enc.keys(df).tolist()
    assert space.feasible(back).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 2**31))
def test_keys_equal_iff_configs_equal(space: Space, seed: int) -> None:
    enc = Encoder(space)
    df = space.sample(30, seed=seed)
    both = pd.concat([df, df.sample(frac=1.0, random_state=seed % 1000)], ignore_index=True)
    keys = enc.keys(both)
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in both.itertuples(index=False)]
    for i in range(len(both)):
        for j in range(i + 1, len(both)):
            assert (keys[i] == keys[j]) == (rows[i] == rows[j])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space=spaces(), seed=st.integers(0, 2**31))
def test_decode_of_any_matrix_is_in_domain(space: Space, seed: int) -> None:
    """Arbitrary X (inside, outside the box, NaN) decodes to exactly valid values with conditions applied."""
    enc = Encoder(space)
    rng = np.random.default_rng(seed)
    span = np.where(np.isfinite(enc.xu - enc.xl), enc.xu - enc.xl, 1.0)
    X = enc.xl + rng.uniform(-0.3, 1.3, (50, enc.n_var)) * span
    X[rng.random(X.shape) < 0.05] = np.nan
    df = enc.decode(X)
    assert space.feasible(df).all()  # no constraints here: domain and conditions only
    # decode_all's encoding and keys are those of the decoded frame read back
    df2, keys, Xc = enc.decode_all(X)
    pd.testing.assert_frame_equal(df2, df)
    assert keys.tolist() == enc.keys(df).tolist()
    np.testing.assert_allclose(Xc, enc.encode(df), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(enc.snap(X), Xc, rtol=1e-12, atol=1e-12)   # the same without the DataFrame


def test_kinds_and_bounds() -> None:
    enc = Encoder(mixed_space())
    kinds = dict(zip(enc.names, enc.kinds))
    assert kinds == {
        "mode": "nominal", "tp": "ordinal", "shuffled": "nominal", "flag": "nominal", "bs": "ordinal",
        "layers": "ordinal", "lr": "real", "frac": "real", "q": "ordinal", "ratio": "ordinal", "dkind": "nominal",
    }
    xl, xu = dict(zip(enc.names, enc.xl)), dict(zip(enc.names, enc.xu))
    assert (xl["tp"], xu["tp"]) == (-0.5, 3.5)            # ordinal indices widened by half a step
    assert (xl["mode"], xu["mode"]) == (0.0, 1.0)
    assert xu["layers"] == 15.5                            # 16 grid points
    assert xl["lr"] == pytest.approx(math.log(1e-4)) and xu["lr"] == pytest.approx(math.log(1e-1))
    assert enc.mask("real").sum() == 2


def test_mixed_space_round_trip_and_inactive_fill() -> None:
    space = mixed_space()
    enc = Encoder(space)
    df = space.sample(300, seed=3)
    X = enc.encode(df)
    inactive = df["ratio"].isna().to_numpy()
    assert inactive.any() and (~inactive).any()
    j = enc.names.index("ratio")
    assert np.all(X[inactive, j] == enc.fill[j])
    back = enc.decode(X)
    _assert_frames_equal(back, df, space)
    assert back["dkind"].dtype == object and back.loc[inactive, "dkind"].isna().all()
    assert back.loc[~inactive, "dkind"].isin(["a", "b"]).all()


def test_ordinal_rounding_gives_every_value_an_equal_share() -> None:
    space = Space(tp=Categorical([1, 2, 4, 8]))
    enc = Encoder(space)
    x = np.linspace(enc.xl[0], enc.xu[0], 40_001)[:, None]
    counts = enc.decode(x)["tp"].value_counts(normalize=True)
    assert np.allclose(counts.to_numpy(), 0.25, atol=0.01)


def test_log_int_decodes_exactly() -> None:
    space = Space(bs=Int(1, 1024, log=True))
    enc = Encoder(space)
    X = np.linspace(enc.xl[0], enc.xu[0], 5000)[:, None]
    v = enc.decode(X)["bs"].to_numpy()
    assert v.dtype == np.int64 and v.min() == 1 and v.max() == 1024
    assert len(np.unique(v)) > 900  # every integer reachable, roughly uniform in log


def test_keys_treat_json_numbers_alike() -> None:
    """Values read back from storage (ints as floats, stepped floats with rounding noise) give the same keys."""
    space = Space(tp=Categorical([1, 2, 4]), q=Float(0.0, 1.0, step=0.1), n=Int(1, 9))
    enc = Encoder(space)
    a = pd.DataFrame({"tp": [2], "q": [0.3], "n": [5]})
    b = pd.DataFrame({"tp": [2.0], "q": [0.1 + 0.2], "n": [5.0]})
    c = pd.DataFrame({"tp": pd.Series([4], dtype=object), "q": [0.3], "n": [5]})
    assert enc.keys(a)[0] == enc.keys(b)[0] != enc.keys(c)[0]


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"tp": [3], "q": [0.3], "n": [5]}), "3"),
        (pd.DataFrame({"tp": [2], "q": [0.35], "n": [5]}), "0.35"),
        (pd.DataFrame({"tp": [2], "q": [0.3], "n": [12]}), "12"),
        (pd.DataFrame({"tp": [2], "q": [0.3], "n": [None]}), "'n' is missing"),
        (pd.DataFrame({"tp": [2], "q": [0.3]}), "['n']"),
        (pd.DataFrame({"tp": [2], "q": [0.3], "n": ["five"]}), "five"),
        (pd.DataFrame({"tp": [2.5], "q": [0.3], "n": [5]}), "2.5"),
        (pd.DataFrame({"tp": ["2"], "q": [0.3], "n": [5]}), "'2'"),
        (pd.DataFrame([[2, 0.3, 5, 6]], columns=["tp", "q", "n", "n"]), "repeat column(s) ['n']"),
    ],
)
def test_encode_rejects_values_outside_the_space(frame: pd.DataFrame, message: str) -> None:
    enc = Encoder(Space(tp=Categorical([1, 2, 4]), q=Float(0.0, 1.0, step=0.1), n=Int(1, 9)))
    with pytest.raises(SpaceError) as err:
        enc.encode(frame)
    assert message in str(err.value)


def test_optuna_distributions_and_params_round_trip() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space = mixed_space()
    d = optuna_distributions(space)
    assert list(d) == space.names
    assert isinstance(d["mode"], CategoricalDistribution) and d["tp"].choices == (1, 2, 4, 8)
    assert d["bs"] == IntDistribution(1, 1024, log=True)
    assert d["layers"] == IntDistribution(0, 60, step=4)
    assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["q"] == FloatDistribution(0.0, 1.0, step=0.1)
    for rec in space.sample(50, seed=1).to_dict("records"):
        p = optuna_params(space, rec)
        assert all(d[k]._contains(d[k].to_internal_repr(v)) for k, v in p.items())
        back = config_from_optuna(space, p)
        assert space.validate(back) == space.validate({k: (None if pd.isna(v) else v) for k, v in rec.items()})
    with pytest.raises(SpaceError, match="zzz"):
        config_from_optuna(space, {"zzz": 1})


def test_each_parameter_type_carries_its_own_encoding_optuna_distribution_and_conversion() -> None:
    # parameter-type behaviour lives on the parameter classes (dse.params): the encoder, the Optuna mapping and
    # the conversions ask the parameter, so each parameter's answers are the ones the engine uses
    import optuna.distributions as od

    space = Space(c=Categorical([1, 2, 4]), s=Categorical(["a", "b"]), b=Categorical([True, False]),
                      i=Int(2, 10, step=2), li=Int(1, 64, log=True), f=Float(0.0, 1.0, step=0.25),
                      lf=Float(1e-3, 1.0, log=True), r=Float(-1.0, 1.0))
    enc = Encoder(space)
    def shape(c):
        return (c.name, c.kind, c.transform, c.xl, c.xu, c.n_values, c.choices, c.is_int)

    assert [shape(p.column(n)) for n, p in space.params.items()] == [shape(c) for c in enc.columns]
    assert [c.transform for c in enc.columns] == ["index", "index", "index", "grid", "log_int", "grid", "log", "value"]
    assert [c.kind for c in enc.columns] == ["ordinal", "nominal", "nominal", "ordinal", "ordinal", "ordinal", "real",
                                             "real"]
    dists = optuna_distributions(space)
    assert dists == {n: p.optuna_distribution() for n, p in space.params.items()}
    assert dists["li"] == od.IntDistribution(1, 64, log=True) and dists["f"] == od.FloatDistribution(0.0, 1.0, step=0.25)
    assert [p.first for p in space.params.values()] == [1, "a", True, 2, 1, 0.0, 1e-3, -1.0]
    # a value read back as another numeric type converts to the type (and the exact choice) the parameter holds
    config = {"c": 2.0, "s": "b", "b": False, "i": np.int64(4), "li": 8.0, "f": np.float32(0.5), "lf": 0.01, "r": 0}
    params = optuna_params(space, config)
    assert params == {"c": 2, "s": "b", "b": False, "i": 4, "li": 8, "f": 0.5, "lf": 0.01, "r": 0.0}
    assert [type(params[k]) for k in ("c", "i", "li", "f", "r")] == [int, int, int, float, float]
    assert config_from_optuna(space, params) == params
    with pytest.raises(SpaceError, match="unknown parameter"):
        config_from_optuna(space, {"zz": 1})
