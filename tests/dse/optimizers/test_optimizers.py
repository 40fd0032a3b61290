"""dse.optimizers: the ask/tell contract for every optimizer, NSGA-II quality on ZDT1, TPE vs random, errors."""
from __future__ import annotations

import math

import moocore
import numpy as np
import pandas as pd
import pytest
from pymoo.problems import get_problem

from dse import Categorical, Float, Int, Space
from dse.errors import OptimizerError
from dse.optimizers import OPTIMIZERS, BaseOptimizer, choose_auto, get_optimizer
from tests.helpers import TORCH_MISSING, needs_torch


def mixed_space() -> Space:
    """A nominal and an ordinal categorical, a log Int, a Float, a constraint, a conditional parameter."""
    return Space(
        mode=Categorical(["agg", "disagg"]),
        dtype=Categorical(["bf16", "fp8", "int4"]),
        tp=Categorical([1, 2, 4, 8]),
        batch=Int(1, 512, log=True),
        frac=Float(0.0, 1.0),
        ratio=Int(1, 8, when="mode == 'disagg'"),
        constraints=["tp <= batch", "frac < 0.8 or dtype != 'int4'"],
    )


def mixed_objective(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Two objectives to minimize and a violation (frac > 0.6 with tp == 8 is infeasible)."""
    frac = df["frac"].to_numpy(float)
    batch = df["batch"].to_numpy(float)
    tp = df["tp"].to_numpy(float)
    ratio = df["ratio"].fillna(0).to_numpy(float)
    q = df["dtype"].map({"bf16": 0.0, "fp8": 0.2, "int4": 0.5}).to_numpy(float)
    f1 = np.log2(batch) / 9 + q + 0.05 * ratio
    f2 = 1 - np.sqrt(frac) + 1 / tp + (df["mode"] == "agg").to_numpy() * 0.1 - q / 2
    cv = np.maximum(0.0, frac - 0.6) * (tp == 8)
    return np.c_[f1, f2], cv


def drive(opt: BaseOptimizer, rounds: int, n: int, space: Space) -> list[pd.DataFrame]:
    out = []
    for _ in range(rounds):
        df = opt.ask(n)
        if len(df) == 0:
            break
        F, CV = mixed_objective(df)
        opt.tell(df, F, CV)
        out.append(df)
    return out


SETTINGS = {
    "nsga2": dict(pop_size=20),
    "nsga3": dict(pop_size=20),
    "tpe": dict(n_startup_trials=8),
    "random": {},
}
ROUNDS = {"nsga2": 6, "nsga3": 6, "tpe": 4, "random": 4}
BATCH = {"nsga2": 20, "nsga3": 20, "tpe": 6, "random": 25}


def _run(name: str, seed: int) -> list[pd.DataFrame]:
    space = mixed_space()
    opt = get_optimizer(name, space, 2, seed=seed, **SETTINGS[name])
    return drive(opt, ROUNDS[name], BATCH[name], space)


@pytest.mark.parametrize("name", ["nsga2", "nsga3", "tpe", "random"])
def test_asked_configs_are_feasible_new_and_reproducible(name: str) -> None:
    space = mixed_space()
    batches = _run(name, seed=7)
    assert sum(len(b) for b in batches) == ROUNDS[name] * BATCH[name]
    allp = pd.concat(batches, ignore_index=True)
    assert space.feasible(allp).all()
    for rec in allp.to_dict("records"):
        space.validate({k: (None if pd.isna(v) else v) for k, v in rec.items()})
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in allp.itertuples(index=False)]
    assert len(set(rows)) == len(rows), "an optimizer proposed a configuration twice"
    assert allp["ratio"].isna().any() and allp["ratio"].notna().any()  # the conditional param both ways
    again = pd.concat(_run(name, seed=7), ignore_index=True)
    pd.testing.assert_frame_equal(allp, again)
    other = pd.concat(_run(name, seed=8), ignore_index=True)
    assert not allp.equals(other)


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_initial_population_of_an_all_real_space_is_a_latin_hypercube(name: str) -> None:
    # one point in each of n equal bins of every column; a log-scaled Float is binned in log space
    n = 40
    space = Space(a=Float(0, 1), b=Float(-5, 5), c=Float(1e-3, 10, log=True))
    df = get_optimizer(name, space, 2, seed=3, pop_size=n).ask(n)
    assert len(df) == n
    for col, lo, hi, f in (("a", 0, 1, float), ("b", -5, 5, float), ("c", math.log(1e-3), math.log(10), math.log)):
        z = (np.array([f(v) for v in df[col]]) - lo) / (hi - lo)
        assert sorted(np.floor(z * n).astype(int)) == list(range(n)), col


def test_latin_hypercube_start_keeps_to_the_rules() -> None:
    # rows of the hypercube that break a rule are replaced by feasible draws: n feasible, distinct points
    space = Space(x=Float(0, 1), y=Float(0, 1), constraints=["x + y <= 1"])
    opt = get_optimizer("nsga2", space, 2, seed=0, pop_size=30)
    df = opt.ask(30)
    assert len(df) == 30 and space.feasible(df).all() and not df.duplicated().any()


def _gp_run(seed: int) -> pd.DataFrame:
    """Optuna's GPSampler costs seconds per suggestion on this machine (more with many discrete parameters),
    so the GP run is small: 3 random trials, then one GP batch of 2 (one suggestion waits on a running one)."""
    space = Space(mode=Categorical(["a", "b"]), x=Float(0, 1), y=Float(0, 1, when="mode == 'b'"),
                  constraints=["x <= 0.9"])
    opt = get_optimizer("gp", space, 2, seed=seed, n_startup_trials=3)
    out = []
    for n in (3, 2):
        df = opt.ask(n)
        assert len(df) == n and space.feasible(df).all()
        F = np.c_[df["x"], 1 - np.sqrt(df["x"]) + df["y"].fillna(0.5)]
        opt.tell(df, F, np.zeros(n))
        out.append(df)
    assert len(opt.study.trials) >= 5 and opt.n_told == 5
    return pd.concat(out, ignore_index=True)


@pytest.mark.slow
def test_gp_asks_feasible_new_configs_reproducibly() -> None:
    pytest.importorskip("torch", reason=TORCH_MISSING)  # installed by CI (the gp extra); guards other environments
    a = _gp_run(0)
    assert len({tuple(r) for r in a.fillna(-1).itertuples(index=False)}) == 5
    pd.testing.assert_frame_equal(a, _gp_run(0))


@pytest.mark.parametrize("name", ["nsga2", "nsga3", "tpe", "random"])
def test_told_and_failed_configs_are_never_proposed_again(name: str) -> None:
    """Trials told without being asked (storage, other workers) and failed trials count as evaluated."""
    space = Space(a=Categorical(["x", "y", "z"]), n=Int(1, 6), b=Categorical([True, False]))  # 36 points
    opt = get_optimizer(name, space, 2, seed=1, **({"pop_size": 8} if name.startswith("nsga") else {}))
    foreign = space.sample(10, seed=5).drop_duplicates(ignore_index=True)
    F = np.c_[np.arange(len(foreign), dtype=float), -np.arange(len(foreign), dtype=float)]
    F[::3] = np.nan  # failed trials
    opt.tell(foreign, F, np.where(np.isnan(F[:, 0]), np.inf, 0.0))
    seen = {tuple(r) for r in foreign.itertuples(index=False)}
    total = len(seen)
    while True:
        df = opt.ask(7)
        if len(df) == 0:
            break
        rows = [tuple(r) for r in df.itertuples(index=False)]
        assert not (set(rows) & seen) and len(set(rows)) == len(rows)
        seen |= set(rows)
        total += len(rows)
        n = df["n"].to_numpy(float)
        opt.tell(df, np.c_[n, -n], np.zeros(len(df)))
        assert total <= 36
    assert total == 36 and opt.exhausted  # the whole discrete space, each point once
    assert len(opt.ask(5)) == 0


def test_nsga2_population_excludes_failed_and_puts_feasible_first() -> None:
    space = Space(x=Float(0, 1), y=Float(0, 1))
    opt = get_optimizer("nsga2", space, 2, seed=0, pop_size=4)
    df = space.sample(10, seed=0)
    F = np.c_[df["x"], 1 - df["x"]]
    F[:3] = np.nan                      # failed: never in the population
    CV = np.zeros(10)
    CV[3:6] = [3.0, 1.0, 2.0]           # infeasible: only after every feasible one
    CV[:3] = np.inf
    opt.tell(df, F, CV)
    assert len(opt.pop_X) == 4 and np.all(opt.pop_CV == 0)
    opt2 = get_optimizer("nsga2", space, 2, seed=0, pop_size=6)
    opt2.tell(df.iloc[:6], F[:6], CV[:6])
    assert list(opt2.pop_CV) == [1.0, 2.0, 3.0]  # no feasible: infeasible ones by increasing CV, failed left out


def test_grid_yields_every_point_in_order_then_is_exhausted() -> None:
    space = Space(a=Categorical(["x", "y"]), n=Int(1, 5), m=Int(1, 4, when="a == 'y'"), constraints=["n != 3"])
    opt = get_optimizer("grid", space, 1)
    assert opt.default_batch_size() == opt.block == 256     # blocks of ~1/32 of the grid, at least 256 rows
    big = Space(a=Int(0, 999), b=Int(0, 99))
    assert get_optimizer("grid", big, 1).block == 3125     # 100,000 / 32
    assert get_optimizer("grid", big, 1, batch_size=1000).block == 1000   # at most the batch_size setting
    parts = []
    while not opt.exhausted:
        parts.append(opt.ask(3))
    got = pd.concat(parts, ignore_index=True)
    pd.testing.assert_frame_equal(got, space.grid(), check_dtype=False)
    assert len(got) == space.size and len(opt.ask(3)) == 0


def test_grid_skips_points_told_before_they_are_asked() -> None:
    space = Space(a=Categorical(["x", "y"]), n=Int(1, 5))
    opt = get_optimizer("grid", space, 1)
    told = space.grid().iloc[[1, 4, 7]]
    opt.tell(told, np.zeros((3, 1)), np.zeros(3))
    got = opt.ask(100)
    assert len(got) == 7 and not set(got.itertuples(index=False)) & set(told.itertuples(index=False))


def test_grid_needs_a_discrete_space() -> None:
    with pytest.raises(OptimizerError, match="discrete"):
        get_optimizer("grid", Space(x=Float(0, 1)), 1)


# ------------------------------------------------------------------------------------------ quality
ZDT1_REF = [1.1, 1.1]
# Measured at 5,000 evaluations with pop_size=100: seed 0 gives 0.711 (0.730 rebuilt at 2,500), seeds 1-2 0.659 and
# 0.715 (eta_mutation 5; with the earlier eta_mutation 20, 0.566-0.666); pymoo's NSGA2 used directly gives
# 0.61-0.71 (seeds 0-2). The exact front's HV at this reference is 0.877.
ZDT1_HV_FLOOR = 0.55


def _zdt1_run(rebuild_at: int | None = None, budget: int = 5000, seed: int = 0) -> float:
    problem = get_problem("zdt1", n_var=30)
    space = Space({f"x{i}": Float(0, 1) for i in range(30)})
    opt = get_optimizer("nsga2", space, 2, seed=seed, pop_size=100)
    params, Fs = [], []
    n = 0
    while n < budget:
        df = opt.ask(100)
        F = problem.evaluate(df.to_numpy(dtype=float))
        opt.tell(df, F, np.zeros(len(df)))
        params.append(df)
        Fs.append(F)
        n += len(df)
        if rebuild_at is not None and n == rebuild_at:
            # a fresh optimizer told every stored trial continues the search (as on load_study)
            opt = get_optimizer("nsga2", space, 2, seed=seed + 1, pop_size=100)
            opt.tell(pd.concat(params, ignore_index=True), np.vstack(Fs), np.zeros(n))
    return float(moocore.hypervolume(np.vstack(Fs), ref=ZDT1_REF))


def test_nsga2_reaches_the_stated_hypervolume_on_zdt1() -> None:
    hv = _zdt1_run()
    assert hv >= ZDT1_HV_FLOOR, f"HV {hv:.4f} at ref {ZDT1_REF} after 5,000 evaluations"
    assert _zdt1_run(budget=1000) < hv  # it keeps improving


def test_nsga2_rebuilt_from_told_trials_reaches_the_same_floor() -> None:
    hv = _zdt1_run(rebuild_at=2500)
    assert hv >= ZDT1_HV_FLOOR, f"HV {hv:.4f} at ref {ZDT1_REF} after 5,000 evaluations (rebuilt at 2,500)"


def _toy_hv(name: str, seed: int, budget: int = 60) -> float:
    """ZDT1 with 4 variables, as a small expensive-objective stand-in; HV at (1.1, 11)."""
    problem = get_problem("zdt1", n_var=4)
    space = Space({f"x{i}": Float(0, 1) for i in range(4)})
    opt = get_optimizer(name, space, 2, seed=seed)
    Fs = []
    while sum(len(f) for f in Fs) < budget:
        df = opt.ask(min(opt.default_batch_size(), budget - sum(len(f) for f in Fs)))
        F = problem.evaluate(df.to_numpy(dtype=float))
        opt.tell(df, F, np.zeros(len(df)))
        Fs.append(F)
    return float(moocore.hypervolume(np.vstack(Fs), ref=[1.1, 11.0]))


def test_tpe_beats_random_at_a_small_budget() -> None:
    tpe = [_toy_hv("tpe", s) for s in (0, 1)]
    rnd = [_toy_hv("random", s) for s in (0, 1)]
    assert min(tpe) > max(rnd), (tpe, rnd)


# ------------------------------------------------------------------------------------------ errors, settings
def test_unknown_optimizer_names_the_valid_ones() -> None:
    with pytest.raises(OptimizerError) as err:
        get_optimizer("nsga4", mixed_space(), 2)
    msg = str(err.value)
    assert "'nsga4'" in msg and all(n in msg for n in ("nsga2", "nsga3", "tpe", "gp", "random", "grid"))
    assert set(OPTIMIZERS) == {"nsga2", "nsga3", "tpe", "gp", "random", "grid"}


@pytest.mark.parametrize(
    "name, settings, needle",
    [
        ("nsga2", {"popsize": 10}, "'popsize'"),
        ("nsga2", {"pop_size": 1}, "pop_size=1"),
        ("nsga2", {"pop_size": 10.5}, "pop_size=10.5"),
        ("nsga2", {"prob_crossover": 1.5}, "prob_crossover=1.5"),
        ("nsga3", {"ref_dirs": "uniform"}, "ref_dirs='uniform'"),
        ("tpe", {"n_startup_trials": -1}, "n_startup_trials=-1"),
        ("tpe", {"pop_size": 10}, "valid settings: batch_size"),
        ("random", {"batch_size": 0}, "batch_size=0"),
        ("grid", {"seed_order": True}, "'seed_order'"),
    ],
)
def test_bad_settings_name_the_setting(name: str, settings: dict, needle: str) -> None:
    space = Space(a=Categorical([1, 2]), b=Int(1, 3))
    with pytest.raises(OptimizerError) as err:
        get_optimizer(name, space, 2, **settings)
    assert needle in str(err.value)


def test_bad_tell_and_ask_arguments() -> None:
    space = Space(x=Float(0, 1))
    opt = get_optimizer("random", space, 2, seed=0)
    df = opt.ask(3)
    with pytest.raises(OptimizerError, match=r"expected \(3, 2\)"):
        opt.tell(df, np.zeros((3, 1)), np.zeros(3))
    with pytest.raises(OptimizerError, match="CV"):
        opt.tell(df, np.zeros((3, 2)), -np.ones(3))
    with pytest.raises(OptimizerError, match="not in the space"):
        opt.tell(pd.DataFrame({"x": [2.0]}), np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(OptimizerError, match="n=-1"):
        opt.ask(-1)
    with pytest.raises(OptimizerError, match="n_objectives"):
        get_optimizer("nsga2", space, 0)


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_torch) if n == "gp" else n
                                  for n in OPTIMIZERS if n != "grid"])
def test_settings_are_json_and_rebuild_the_optimizer(name: str) -> None:
    import json

    space = mixed_space()
    opt = get_optimizer(name, space, 3, seed=4)
    s = json.loads(json.dumps(opt.settings()))
    assert s["name"] == name and s["seed"] == 4
    kwargs = {k: v for k, v in s.items() if k not in ("name", "seed", "n_ref_dirs")}
    assert get_optimizer(name, space, 3, seed=4, **kwargs).settings() == opt.settings()


def test_default_batch_sizes() -> None:
    space = mixed_space()
    assert get_optimizer("nsga2", space, 2).default_batch_size() == 20
    assert get_optimizer("tpe", space, 2).default_batch_size() == 8
    assert get_optimizer("random", space, 2).default_batch_size() == 256


def test_nsga3_reference_directions_fit_the_population() -> None:
    space = Space(x=Float(0, 1), y=Float(0, 1), z=Float(0, 1))
    for m, pop in ((2, 100), (3, 92), (5, 120)):
        opt = get_optimizer("nsga3", space, m, pop_size=pop)
        n = opt.settings()["n_ref_dirs"]
        assert pop / 2 <= n <= pop, (m, pop, n)


def test_choose_auto_rule() -> None:
    small = Space(a=Categorical(["x", "y"]), n=Int(1, 50))                 # 100 points
    big = Space(a=Categorical(["x", "y"]), n=Int(1, 1_000_000))            # 2e6 points
    cont = Space(x=Float(0, 1))
    assert choose_auto(small, 2, vectorized=True, budget=None) == "grid"
    assert choose_auto(small, 2, vectorized=False, budget=100) == "grid"
    assert choose_auto(small, 2, vectorized=False, budget=50) == "tpe"
    assert choose_auto(big, 2, vectorized=True, budget=None) == "nsga2"
    mid = Space(a=Categorical(["x", "y"]), n=Int(1, 250_000))              # 5e5 points: a vectorized grid is seconds
    assert choose_auto(mid, 2, vectorized=True, budget=None) == "grid"
    assert choose_auto(mid, 2, vectorized=False, budget=None) == "nsga2"
    assert choose_auto(mid, 2, vectorized=True, budget=10_000) == "nsga2"
    assert choose_auto(big, 2, vectorized=True, budget=3_000_000) == "grid"
    assert choose_auto(cont, 2, vectorized=True, budget=100) == "nsga2"
    assert choose_auto(cont, 2, vectorized=False, budget=200) == "tpe"
    assert choose_auto(cont, 2, vectorized=False, budget=None) == "nsga2"
    assert math.isinf(cont.size)


def test_gp_without_torch_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # Python's own way to make `import torch` fail
    with pytest.raises(OptimizerError, match=r"pip install torch==2\.13\.0.*dse\[gp\]"):
        get_optimizer("gp", Space(x=Float(0, 1)), 2)


def test_tpe_history_is_rebuilt_from_told_trials() -> None:
    """A fresh TPE told stored trials holds them as Optuna trials (failed ones as FAIL, CV as the constraint)."""
    from optuna.trial import TrialState

    space = mixed_space()
    df = space.sample(20, seed=2)
    F, CV = mixed_objective(df)
    F[:4] = np.nan
    CV[:4] = np.inf
    opt = get_optimizer("tpe", space, 2, seed=0, n_startup_trials=5)
    opt.tell(df, F, CV)
    trials = opt.study.trials
    assert [t.state for t in trials].count(TrialState.FAIL) == 4 and len(trials) == 20
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    np.testing.assert_allclose([t.constraints["cv"] for t in done], CV[4:])
    np.testing.assert_allclose([t.values for t in done], F[4:])
    assert all(("ratio" in t.params) == (r == "disagg") for t, r in zip(trials, df["mode"]))
    nxt = opt.ask(6)
    assert len(nxt) == 6 and space.feasible(nxt).all()
    assert not set(opt.encoder.keys(nxt).tolist()) & set(opt.encoder.keys(df).tolist())


# ------------------------------------------------------------------------------------------ repair by projection
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_seen=st.integers(0, 40), n_children=st.integers(1, 30),
       no_tp8=st.booleans())
def test_projection_gives_distinct_feasible_unseen_points_nearest_first(seed: int, n_seen: int, n_children: int,
                                                                          no_tp8: bool) -> None:
    from dse.optimizers.repair import Projector

    rules = ["tp * pp == n", "dtype != 'fp4' or gpu == 'b'"] + (["tp != 8"] if no_tp8 else [])
    space = Space(n=Categorical([1, 2, 4, 8]), tp=Categorical([1, 2, 4, 8]), pp=Categorical([1, 2, 4]),
                  dtype=Categorical(["bf16", "fp8", "fp4"]), gpu=Categorical(["a", "b"]), constraints=rules)
    opt = get_optimizer("random", space, 1)
    proj = Projector(opt.encoder, space.grid())
    rng = np.random.default_rng(seed)
    grid = space.grid()
    seen = grid.iloc[rng.permutation(len(grid))[:n_seen]]
    proj.mark(opt.encoder.keys(seen).tolist())
    # arbitrary (mostly invalid) children: every value drawn independently (tp=8 is in no grid point with no_tp8)
    kids = pd.DataFrame({n: rng.choice(np.asarray(space.params[n].choices, dtype=object), n_children)
                         for n in space.names})
    for n in ("n", "tp", "pp"):
        kids[n] = kids[n].astype(int)
    # the grid index: every grid point finds its own row; a child is found iff it is feasible
    np.testing.assert_array_equal(proj.rows_of(opt.encoder.encode(grid)), np.arange(len(grid)))
    found = proj.rows_of(opt.encoder.encode(kids))
    np.testing.assert_array_equal(found >= 0, np.asarray(space.feasible(kids), dtype=bool))
    rows = proj.nearest(opt.encoder.encode(kids), rng)
    got = rows[rows >= 0]
    assert len(got) == min(n_children, len(grid) - n_seen)             # one each while free points last
    assert len(set(got.tolist())) == len(got)                           # distinct
    assert space.feasible(grid.iloc[got]).all()                         # valid
    assert not set(got.tolist()) & set(seen.index.tolist())             # unseen
    # brute force, child after child: no free point still untaken differs from the child in fewer parameters,
    # and none with as few changes moves the ordinal parameters (n, tp, pp: value indices) less
    order = {n: sorted(set(grid[n])) for n in ("n", "tp", "pp")}
    values, kid_values = grid.to_numpy(object), kids.to_numpy(object)
    free = np.setdiff1d(np.arange(len(grid)), seen.index.to_numpy())
    for i, row in enumerate(rows):
        if row < 0:
            assert not len(free)
            continue
        diff = (values[free] != kid_values[i]).sum(axis=1)
        assert (values[row] != kid_values[i]).sum() == diff.min()

        def moves(r: int, i: int = i) -> float:
            total = 0.0
            for n in order:
                kid = order[n].index(kids[n][i]) if kids[n][i] in order[n] else -1
                total += abs(order[n].index(grid[n][r]) - kid) / max(len(order[n]) - 1, 1)
            return total

        best = min(moves(r) for r in free[diff == diff.min()])
        assert moves(row) <= best + 1e-5
        free = free[free != row]


@pytest.mark.parametrize("indexed", [True, False], ids=["grid-index", "no-index"])
def test_nsga2_projection_and_resample_both_keep_the_contract(indexed: bool, monkeypatch) -> None:
    """Also without the grid's mixed-radix index (a grid whose code combinations overflow int64): children are
    then checked by decoding them and repaired by the full scan."""
    from dse.optimizers import repair as repair_mod

    if not indexed:
        init = repair_mod.Projector.__init__

        def no_index(self, *a, **k):
            init(self, *a, **k)
            self._shells = False

        monkeypatch.setattr(repair_mod.Projector, "__init__", no_index)
    space = Space(n=Categorical([1, 2, 4, 8]), tp=Categorical([1, 2, 4, 8]), pp=Categorical([1, 2, 4]),
                  b=Int(1, 64, log=True), constraints=["tp * pp == n"])
    for repair in ("project", "resample"):
        opt = get_optimizer("nsga2", space, 2, seed=0, repair=repair)
        seen: set = set()
        for _ in range(6):
            df = opt.ask(20)
            assert len(df) == 20 and space.feasible(df).all()
            keys = set(opt.encoder.keys(df).tolist())
            assert not keys & seen and len(keys) == 20
            seen |= keys
            b = df["b"].to_numpy(float)
            opt.tell(df, np.c_[b / df["n"].to_numpy(float), 1 / b], np.zeros(len(df)))
        assert (opt.projector is not None) == (repair == "project")
        if opt.projector is not None:
            assert (opt.projector.rows_of(opt.encoder.encode(space.grid())) is not None) == indexed
    with pytest.raises(OptimizerError, match="repair='project' needs a discrete space"):
        get_optimizer("nsga2", Space(x=Float(0, 1)), 2, repair="project")
    with pytest.raises(OptimizerError, match="repair='best'"):
        get_optimizer("nsga2", space, 2, repair="best")


@pytest.mark.parametrize("n_obj", [2, 3])
def test_nsga2_survival_equals_pymoo_rank_and_crowding(n_obj) -> None:
    """dse's NSGA-II survival (arrays, no pymoo Population) keeps the same individuals as pymoo's RankAndCrowding
    on random populations with feasible and infeasible members, fronts split at the cut included."""
    from pymoo.core.population import Population
    from pymoo.core.problem import Problem
    from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

    space = Space(x=Float(0.0, 1.0), y=Float(0.0, 1.0))
    opt = get_optimizer("nsga2", space, n_obj, seed=0)
    problem = Problem(n_var=2, n_obj=n_obj, n_ieq_constr=1, xl=0.0, xu=1.0)
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(10, 80))
        F = rng.random((n, n_obj)).round(2)          # rounded: equal values and ties across fronts
        CV = np.where(rng.random(n) < 0.3, rng.random(n), 0.0)
        n_survive = int(rng.integers(1, n + 1))
        ours, _ = opt._select(F, CV, n_survive)
        pop = Population.new(X=np.zeros((n, 2)), F=F, G=CV[:, None])   # pymoo derives CV and feasibility from G
        theirs = RankAndCrowding().do(problem, pop, n_survive=n_survive, random_state=np.random.default_rng(0),
                                      return_indices=True)
        assert len(ours) == len(theirs) == min(n_survive, n)
        # crowding ties inside the split front are broken at random by both: compare what is not a tie
        if sorted(ours.tolist()) != sorted(np.asarray(theirs).tolist()):
            rest = set(ours.tolist()) ^ set(np.asarray(theirs).tolist())
            assert all(CV[i] == 0 for i in rest), "infeasible survivors differ: they are ranked by CV alone"
            continue
        checked += 1
    assert checked >= 30, f"only {checked} of 40 populations compared exactly"


def test_duplicate_elimination_operator_tracks_told_pending_and_foreign_keys() -> None:
    # the operator every optimizer is composed with: a proposal is new when neither told nor pending, not excluded
    # and first in its batch; tell marks first-time configurations and counts those never asked here (foreign)
    from dse.optimizers.duplicates import DuplicateElimination

    def keys(*ks: bytes) -> np.ndarray:
        out = np.empty(len(ks), dtype=object)
        out[:] = list(ks)
        return out

    d = DuplicateElimination()
    assert d.new(keys(b"a", b"b", b"a"), exclude={b"b"}).tolist() == [True, False, False]
    d.asked(keys(b"a", b"b"))
    assert len(d) == 2 and d.is_seen(keys(b"a", b"c")).tolist() == [True, False]
    assert d.tell(keys(b"a", b"c", b"c")).tolist() == [True, True, False]   # c was never asked: foreign
    assert (d.n_told, d.n_foreign) == (2, 1) and d.was_told(keys(b"a", b"b")).tolist() == [True, False]
    assert d.tell(keys(b"a")).tolist() == [False] and d.n_told == 2   # told again: not new
    assert sorted(d.keys()) == [b"a", b"b", b"c"]
    opt = get_optimizer("grid", Space(x=Int(0, 9)), 1)
    assert isinstance(opt.duplicates, DuplicateElimination)
    # the evaluation cache of the Optuna-backed optimizers also keeps each told configuration's first result
    d = DuplicateElimination(outcomes=True)
    d.tell(keys(b"a", b"a"), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.0, 1.0]))
    f, cv = d.outcome(b"a")
    assert f.tolist() == [1.0, 2.0] and cv == 0.0 and d.outcome(b"z") is None
    assert get_optimizer("tpe", Space(x=Int(0, 9)), 1).duplicates.outcomes == {}


@pytest.mark.parametrize("name,space", [("random", "mixed"), ("nsga2", "mixed"), ("nsga2", "discrete"),
                                        ("tpe", "mixed"), ("tpe", "discrete")])
def test_a_batch_is_told_as_asked_without_encoding_it_again(name: str, space: str, monkeypatch) -> None:
    # ask_batch -> tell_batch carries the keys (and encoding) from the ask: the seeded run asks exactly the
    # populations of ask -> tell(DataFrame), which encodes what it is told, and the tell encodes nothing
    def make() -> Space:
        if space == "mixed":
            return mixed_space()
        return Space(mode=Categorical(["agg", "disagg"]), dtype=Categorical(["bf16", "fp8", "int4"]),
                     tp=Categorical([1, 2, 4, 8]), batch=Int(1, 64), frac=Float(0.0, 1.0, step=0.1),
                     ratio=Int(1, 4, when="mode == 'disagg'"), constraints=["tp <= batch"])

    settings = {"random": {}, "nsga2": dict(pop_size=20), "tpe": dict(n_startup_trials=8)}[name]
    n, rounds = {"random": (25, 4), "nsga2": (20, 8), "tpe": (6, 5)}[name]

    def run(carried: bool) -> list[pd.DataFrame]:
        opt = get_optimizer(name, make(), 2, seed=11, **settings)
        out = []
        for _ in range(rounds):
            batch = opt.ask_batch(n)
            F, CV = mixed_objective(batch.frame)
            F[::5] = np.nan   # a few failed trials
            if carried:
                with monkeypatch.context() as m:
                    for method in ("encode", "encode_keys", "keys"):
                        m.setattr(opt.encoder, method, lambda *a, **k: pytest.fail("tell encoded its batch again"))
                    if len(out) % 2:   # F and CV ride on the batch (what the study's loop tells) ...
                        opt.tell_batch(batch.scored(F, CV, CV == 0))
                    else:              # ... or are given alongside it
                        opt.tell_batch(batch, F, CV)
            else:
                opt.tell(batch.frame.copy(), F, CV)
            out.append(batch.frame)
        return out

    carried, encoded = run(True), run(False)
    assert len(carried) == rounds
    opt = get_optimizer(name, make(), 2, seed=11, **settings)
    with pytest.raises(OptimizerError, match="give both F and CV"):
        opt.tell_batch(opt.ask_batch(2))   # neither scored nor given F and CV
    for a, b in zip(carried, encoded):
        pd.testing.assert_frame_equal(a, b)


def test_grid_refuses_a_space_whose_constraints_exclude_every_point(tmp_path):
    """An empty grid is an error naming the constraints, as sampling one is (it used to run 0 trials and print an
    empty front as if the study had finished)."""
    import dse

    space = dse.Space(a=dse.Categorical([1, 2]), b=dse.Categorical([1, 2]), constraints=["a > b", "b >= a"])
    study = dse.create_study("empty", space=space, objectives={"y": "min"}, storage=f"sqlite:///{tmp_path}/e.db")
    with pytest.raises(dse.SpaceError, match="no feasible point.*a > b"):
        study.optimize(lambda c: {"y": c["a"]}, optimizer="grid", n_trials=10)
