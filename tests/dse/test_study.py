"""End-to-end studies: every optimizer, failures, constraints, cache, resume, exports."""
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dse
from dse import pareto
from tests.conftest import OBJECTIVES, make_space, toy, toy_vec
from tests.helpers import TORCH_MISSING


def study_id(study: dse.Study) -> int:
    """The study's id in its storage (the storage methods' first argument), through the public storage API."""
    return study.storage.get_study(study.name)["id"]

OPTIMIZERS = ["nsga2", "nsga3", "tpe", "random", "grid"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("objective", [toy, toy_vec], ids=["per-config", "vectorized"])
def test_every_optimizer_runs_a_user_space(optimizer, objective, db_url):
    study = dse.create_study("s", make_space(), OBJECTIVES, storage=db_url)
    study.optimize(objective, optimizer=optimizer, n_trials=60, seed=1, progress=False, **({"pop_size": 20} if optimizer.startswith("nsga") else {}))
    t = study.trials
    assert len(t) == 60 and (t["state"] == "complete").all()
    assert t["number"].tolist() == list(range(60))
    space = make_space()
    assert space.feasible(t[space.names]).all()
    # no configuration evaluated twice
    assert not t[space.names].duplicated().any()
    front = study.pareto()
    F = t[list(OBJECTIVES)].to_numpy(float)
    assert sorted(front["number"]) == sorted(t["number"][pareto.brute_force_nondominated(F, ["min", "min"])])
    assert study.meta["optimizer"] == optimizer
    assert study.stored_front() == sorted(int(n) for n in front["number"])


@pytest.mark.parametrize("objective", [toy, toy_vec], ids=["per-config", "vectorized"])
def test_one_batch_carries_a_trial_from_ask_to_tell(objective, db_url, monkeypatch):
    # the Batch the optimizer is told holds what the runner, the scoring and storage added to the one it asked:
    # metrics, errors, timings, F, CV, feasible flags and trial numbers, row for row with what was stored
    from dse.optimizers import BaseOptimizer

    told = []
    tell_batch = BaseOptimizer.tell_batch

    def spy(self, batch, F=None, CV=None):
        told.append(batch)
        return tell_batch(self, batch, F, CV)

    monkeypatch.setattr(BaseOptimizer, "tell_batch", spy)
    study = dse.create_study("b", make_space(), OBJECTIVES, constraints={"mem": ("<=", 4.0)}, storage=db_url)
    study.optimize(objective, optimizer="random", n_trials=50, batch_size=20, seed=3, progress=False)
    assert [len(b) for b in told] == [20, 20, 10]
    t = study.trials.set_index("number")
    for b in told:
        assert b.numbers is not None and b.F is not None and b.CV is not None and b.feasible is not None
        rows = t.loc[b.numbers]
        pd.testing.assert_frame_equal(b.frame, rows[make_space().names].reset_index(drop=True), check_dtype=False)
        assert b.ok.all() and np.allclose(b.F, rows[list(OBJECTIVES)].to_numpy(float))
        assert (b.feasible == rows["feasible"].to_numpy(bool)).all() and ((b.CV == 0) == b.feasible).all()
        assert np.allclose(b.metrics["mem"].to_numpy(float), rows["mem"].to_numpy(float))
        assert len(b.seconds) == len(b) and len(b.keys) == len(b)
        half = b.take(np.arange(len(b)) % 2 == 0)   # a part of a batch keeps all that is known about its rows
        assert half.numbers.tolist() == b.numbers[::2].tolist() and np.array_equal(half.F, b.F[::2])
    # a resumed study tells its stored trials the same way: one batch, scored and numbered
    told.clear()
    study = dse.load_study("b", storage=db_url)
    study.optimize(objective, optimizer="random", n_trials=1, seed=4, progress=False)
    assert sorted(n for b in told for n in b.numbers.tolist()) == list(range(51))


def test_gp_optimizer_runs(db_url):
    pytest.importorskip("torch", reason=TORCH_MISSING)
    study = dse.create_study("gp", make_space(), OBJECTIVES, storage=db_url)
    # batches of 4: the first three are random (the GP starts once 10 trials are complete), the last is the GP's;
    # each GP suggestion costs seconds, so that batch holds 2 (n_trials=16 asked the GP for 4)
    study.optimize(toy, optimizer="gp", n_trials=14, seed=0, progress=False)
    assert (study.trials["state"] == "complete").sum() == 14


def test_metric_constraint_marks_trials_infeasible_and_off_the_front(db_url):
    study = dse.create_study("c", make_space(), OBJECTIVES, constraints={"mem": ("<=", 4.0)}, storage=db_url)
    study.optimize(toy_vec, optimizer="random", n_trials=200, seed=0, progress=False)
    t = study.trials
    assert (t["feasible"] == (t["mem"] <= 4.0)).all()
    assert (~t["feasible"]).any() and t["feasible"].any()
    assert (study.pareto()["mem"] <= 4.0).all()


def _flaky(config):
    if config["depth"] == 1:
        raise RuntimeError("boom at depth 1")
    if config["depth"] == 2:
        return {"cost": float("nan"), "latency": 1.0, "mem": 0.0}
    if config["depth"] == 3:
        return {"cost": 1.0}
    return toy(config)


def test_failing_objective_fails_trials_with_reasons_and_the_study_goes_on(db_url):
    study = dse.create_study("f", make_space(), OBJECTIVES, storage=db_url)
    study.optimize(_flaky, optimizer="grid", progress=False)
    t = study.trials
    failed = t[t["state"] == "failed"]
    assert set(failed["depth"]) == {1, 2, 3}
    assert failed.loc[failed["depth"] == 1, "error"].str.contains("boom at depth 1").all()
    assert failed.loc[failed["depth"] == 2, "error"].str.contains("cost=nan").all()
    assert failed.loc[failed["depth"] == 3, "error"].str.contains("omitted metric").all()
    assert (t.loc[t["state"] == "complete", "depth"] > 3).all()
    assert not study.pareto()["number"].isin(failed["number"]).any()


@dse.vectorized
def _vec_with_bad_rows(df):
    out = toy_vec(df)
    out.loc[df["depth"].to_numpy() == 4, "latency"] = np.inf
    if (df["kind"] == "b").all() and len(df) == 1 and df["depth"].iloc[0] == 5:
        raise ValueError("cannot evaluate b at depth 5")
    if ((df["kind"] == "b") & (df["depth"] == 5)).any() and len(df) > 1:
        raise ValueError("batch contains b at depth 5")
    return out


def test_vectorized_failures_are_isolated_per_row(db_url):
    study = dse.create_study("v", make_space(), OBJECTIVES, storage=db_url)
    study.optimize(_vec_with_bad_rows, optimizer="grid", progress=False)
    t = study.trials
    bad = t[t["state"] == "failed"]
    assert ((bad["depth"] == 4) | ((bad["kind"] == "b") & (bad["depth"] == 5))).all()
    assert bad.loc[bad["depth"] == 5, "error"].str.contains("cannot evaluate b at depth 5").all()
    good = t[t["state"] == "complete"]
    assert len(good) + len(bad) == make_space().size
    assert not ((good["depth"] == 4).any())


def _sleepy(config):
    if config["depth"] == 8:
        import time
        time.sleep(30)
    return toy(config)


def test_trial_timeout_fails_only_the_hanging_trial(db_url):
    space = dse.Space(kind=dse.Categorical(["a"]), width=dse.Categorical([1]), depth=dse.Int(7, 9),
                      x=dse.Categorical([0.0]), extra=dse.Int(0, 0, when="kind == 'c'"))
    study = dse.create_study("t", space, OBJECTIVES, storage=db_url)
    study.optimize(_sleepy, optimizer="grid", trial_timeout=0.5, progress=False)
    t = study.trials.set_index("depth")
    assert t.loc[8, "state"] == "failed" and "timeout" in t.loc[8, "error"]
    assert t.loc[7, "state"] == "complete" and t.loc[9, "state"] == "complete"


def test_resume_continues_without_duplicates(db_url):
    s1 = dse.create_study("r", make_space(), OBJECTIVES, storage=db_url)
    s1.optimize(toy_vec, optimizer="nsga2", n_trials=40, seed=3, pop_size=20, progress=False)
    s2 = dse.load_study("r", storage=db_url)
    s2.optimize(toy_vec, optimizer="nsga2", n_trials=40, seed=4, pop_size=20, progress=False)
    t = s2.trials
    assert len(t) == 80 and t["number"].is_unique
    assert not t[make_space().names].duplicated().any()


def test_resuming_with_another_objective_is_refused_naming_what_changed(db_url, caplog):
    """A study resumed with another objective (a study file's workload edited) only warned and ranked the old
    numbers beside the new ones on one front. It is refused, naming what changed (the version's parts, the declared
    inputs), saying how to start fresh, with nothing run and nothing stored changed; the old objective resumes."""
    def versioned(version: str, **inputs):
        def f(df: pd.DataFrame) -> pd.DataFrame:
            return toy_vec(df)
        return dse.vectorized(f, name="toy", version=version, inputs=inputs or None)
    s = dse.create_study("v", make_space(), OBJECTIVES, storage=db_url)
    with caplog.at_level("WARNING", logger="dse"):
        s.optimize(versioned("1+setup.a", setup={"rate": 8}), optimizer="random", n_trials=10, seed=0, progress=False)
        s.optimize(versioned("1+setup.a", setup={"rate": 8}), optimizer="random", n_trials=10, seed=1,
                   progress=False)   # a plain resume
    assert not caplog.records
    meta = dse.load_study("v", storage=db_url).meta
    with pytest.raises(dse.StudyError) as err:
        dse.load_study("v", storage=db_url).optimize(versioned("1+setup.b", setup={"rate": 12}), optimizer="random",
                                                      n_trials=10, seed=2, progress=False)
    msg = str(err.value)
    assert "holds 20 complete trials evaluated by toy 1+setup.a; this run's objective is toy 1+setup.b" in msg
    assert "version part setup.a -> setup.b; inputs.setup.rate: 8 -> 12" in msg and "delete_study('v'" in msg
    assert "another name" in msg
    again = dse.load_study("v", storage=db_url)
    assert len(again.trials) == 20 and again.meta == meta
    with pytest.raises(dse.StudyError, match=r"name toy -> other"):
        again.optimize(dse.vectorized(lambda df: toy_vec(df), name="other", version="1+setup.a"),
                       optimizer="random", n_trials=1, progress=False)
    again.optimize(versioned("1+setup.a", setup={"rate": 8}), optimizer="random", n_trials=5, seed=3, progress=False)
    assert len(again.trials) == 25
    # an empty study (no finished trial) takes any objective
    fresh = dse.create_study("w", make_space(), OBJECTIVES, storage=db_url)
    fresh.optimize(versioned("2"), optimizer="random", n_trials=1, seed=0, progress=False)
    assert fresh.meta["objective"]["version"] == "2"


def test_max_trials_completes_exactly_the_total(db_url):
    s = dse.create_study("m", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(toy, optimizer="random", max_trials=25, seed=0, progress=False)
    s.optimize(toy, optimizer="random", max_trials=70, seed=1, progress=False)
    s.optimize(toy, optimizer="random", max_trials=70, seed=2, progress=False)
    assert len(s.trials) == 70


def test_grid_exhausts_the_space_exactly_once(db_url):
    space = make_space()
    s = dse.create_study("g", space, OBJECTIVES, storage=db_url)
    s.optimize(toy_vec, optimizer="grid", progress=False)
    t = s.trials
    assert len(t) == space.size
    pd.testing.assert_frame_equal(
        t[space.names].sort_values(space.names).reset_index(drop=True).astype(str),
        space.grid().sort_values(space.names).reset_index(drop=True).astype(str),
    )


def test_reusing_a_name_with_another_space_is_refused_and_nothing_changes(db_url):
    s = dse.create_study("n", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(toy, optimizer="random", n_trials=10, seed=0, progress=False)
    before = s.trials
    other = dse.Space(width=dse.Categorical([1, 2]))
    with pytest.raises(dse.StudyError, match="different space"):
        dse.create_study("n", other, {"cost": "min"}, storage=db_url)
    with pytest.raises(dse.StudyError, match="objectives"):
        dse.create_study("n", make_space(), {"cost": "max", "latency": "min"}, storage=db_url)
    pd.testing.assert_frame_equal(dse.load_study("n", storage=db_url).trials, before)


@pytest.mark.parametrize("bad, match", [
    ({"cost": "up"}, "'up'"),
    ({}, "non-empty"),
    ({"number": "min"}, "reserved"),
    ({"width": "min"}, "also a parameter"),
])
def test_bad_objectives_are_named(bad, match, db_url):
    with pytest.raises(dse.ObjectiveError, match=match):
        dse.create_study("b", make_space(), bad, storage=db_url)


def test_bad_constraint_spec_is_named(db_url):
    with pytest.raises(dse.ObjectiveError, match="'=<'"):
        dse.create_study("b", make_space(), OBJECTIVES, constraints={"mem": ("=<", 3)}, storage=db_url)


def test_unknown_optimizer_lists_valid_ones(db_url):
    s = dse.create_study("u", make_space(), OBJECTIVES, storage=db_url)
    with pytest.raises(dse.OptimizerError, match="nsga2"):
        s.optimize(toy, optimizer="simulated-annealing", n_trials=5, progress=False)
    assert len(s.trials) == 0


def test_bad_study_name_and_storage(tmp_path):
    with pytest.raises(dse.StudyError, match="not valid"):
        dse.create_study("../etc/passwd", make_space(), OBJECTIVES, storage=f"sqlite:///{tmp_path/'x.db'}")
    with pytest.raises(dse.StorageError, match="nosuchdb"):
        dse.create_study("ok", make_space(), OBJECTIVES, storage="nosuchdb://host/x")


def test_knee_best_hypervolume(db_url):
    s = dse.create_study("k", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(toy_vec, optimizer="grid", progress=False)
    front = s.pareto()
    assert s.knee()["number"] in set(front["number"])
    cheapest = s.best({"cost": 1.0, "latency": 0.0})
    assert cheapest["cost"] == pytest.approx(front["cost"].min())
    hv = s.hypervolume()
    assert hv.value > 0 and set(hv.ref) == {"cost", "latency"}
    assert s.hypervolume(ref=hv.ref).value == pytest.approx(hv.value)


def test_to_xarray_of_a_grid_has_one_dimension_per_parameter(db_url):
    space = dse.Space(a=dse.Categorical(["x", "y"]), b=dse.Int(1, 4), c=dse.Float(0, 1, step=0.5))

    @dse.vectorized
    def f(df):
        return pd.DataFrame({"m": df["b"] * (df["c"] + 1) + (df["a"] == "y")})

    s = dse.create_study("x", space, {"m": "min"}, storage=db_url)
    s.optimize(f, optimizer="grid", progress=False)
    ds = s.to_xarray()
    assert dict(ds.sizes) == {"a": 2, "b": 4, "c": 3} and ds.attrs["layout"] == "grid"
    assert float(ds["m"].sel(a="y", b=3, c=0.5)) == pytest.approx(3 * 1.5 + 1)


def test_to_xarray_of_a_sparse_search_has_one_trial_dimension(db_url, tmp_path):
    """A random search over continuous parameters would make a grid of every distinct value of every parameter
    (60 trials: 60 x 60 x 60 x ~40 cells, almost all empty); it is laid out along the trials instead, each
    parameter a coordinate, and a grid asked for explicitly is refused with the cell count."""
    import xarray as xr

    space = dse.Space(a=dse.Float(0, 1), b=dse.Float(0, 1), c=dse.Float(0, 1), d=dse.Int(1, 100),
                      k=dse.Categorical(["x", "y"]), e=dse.Int(0, 3, when="k == 'y'"))

    @dse.vectorized
    def f(df):
        return pd.DataFrame({"m": df["a"] + 2 * df["b"]})

    s = dse.create_study("sparse", space, {"m": "min"}, storage=db_url)
    s.optimize(f, optimizer="random", n_trials=60, seed=0, progress=False)
    ds = s.to_xarray()
    assert dict(ds.sizes) == {"trial": 60} and ds.attrs["layout"] == "trials"
    assert set(space.names) <= set(ds.coords)
    t = s.trials.set_index("number")
    row = int(t.index[5])
    assert float(ds["m"].sel(trial=row)) == pytest.approx(t.loc[row, "a"] + 2 * t.loc[row, "b"])
    assert np.isnan(ds["e"].values[(ds["k"] == "x").values]).all()   # inactive where its condition is off
    with pytest.raises(dse.StudyError, match="cells for 60 points"):
        s.to_xarray("grid")
    with pytest.raises(dse.StudyError, match="'cube'.*auto, grid, trials"):
        s.to_xarray("cube")
    back = xr.open_dataset(s.export(tmp_path / "sparse.nc"))
    assert dict(back.sizes) == {"trial": 60}
    np.testing.assert_allclose(back["m"].values, ds["m"].values)
    back.close()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "netcdf"])
def test_export_formats(fmt, db_url, tmp_path):
    s = dse.create_study("e", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(toy_vec, optimizer="random", n_trials=30, seed=0, progress=False)
    out = s.export(tmp_path / f"out.{ 'nc' if fmt == 'netcdf' else fmt}")
    assert out.exists() and out.stat().st_size > 0
    if fmt == "parquet":
        assert len(pd.read_parquet(out)) == 30
    elif fmt == "csv":
        assert len(pd.read_csv(out)) == 30
    with pytest.raises(dse.StudyError, match="xlsx"):
        s.export(tmp_path / "out.xlsx")


def test_to_optuna_copies_every_finished_trial(db_url, tmp_path):
    s = dse.create_study("o", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(_flaky, optimizer="random", n_trials=40, seed=0, progress=False)
    ostudy = s.to_optuna(f"sqlite:///{tmp_path/'optuna.db'}")
    import optuna

    assert len(ostudy.trials) == 40
    n_ok = int((s.trials["state"] == "complete").sum())
    assert len(ostudy.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == n_ok
    assert ostudy.metric_names == ["cost", "latency"]


def test_a_grid_stores_every_point_as_a_trial_with_one_numbering(db_url):
    space = make_space()
    s = dse.create_study("big", space, OBJECTIVES, constraints={"mem": ("<=", 16)}, storage=db_url)
    s.optimize(toy_vec, optimizer="grid", batch_size=397, progress=False)   # batches that do not divide the grid
    full = s.results()
    pd.testing.assert_frame_equal(full, s.trials)
    assert len(full) == space.size and sorted(full["number"]) == list(range(space.size))
    assert not full.duplicated(subset=space.names).any()
    summary = s.summary()
    assert summary["grid"]["n_points"] == space.size and summary["n_trials"] == space.size
    assert summary["grid"]["n_feasible"] == summary["n_feasible"] == int(full["feasible"].astype(bool).sum())
    feas = full[full["feasible"].astype(bool)]
    expected = feas[pareto.brute_force_nondominated(feas[["cost", "latency"]].to_numpy(), ["min", "min"])]
    got = s.pareto()
    assert len(got) == len(expected)
    assert sorted(map(tuple, got[["cost", "latency"]].round(9).to_numpy())) == sorted(
        map(tuple, expected[["cost", "latency"]].round(9).to_numpy()))
    ds = s.to_xarray()
    assert set(ds.dims) == set(space.names)


def _always_fails(config):
    raise RuntimeError("nothing works")


@pytest.mark.parametrize("optimizer", ["nsga2", "random"])
def test_batches_where_every_trial_fails_and_resume_after_them(optimizer, db_url):
    s = dse.create_study("allfail", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(_always_fails, optimizer=optimizer, n_trials=40, batch_size=20, seed=0, progress=False,
               **({"pop_size": 20} if optimizer == "nsga2" else {}))
    t = s.trials
    assert len(t) == 40 and (t["state"] == "failed").all() and t["error"].str.contains("nothing works").all()
    assert s.pareto().empty
    # a fresh optimizer rebuilt from 40 failed trials (all-empty metrics) goes on
    s2 = dse.load_study("allfail", storage=db_url)
    s2.optimize(toy, optimizer=optimizer, n_trials=20, batch_size=20, seed=1, progress=False,
                **({"pop_size": 20} if optimizer == "nsga2" else {}))
    assert (s2.trials["state"] == "complete").sum() == 20


def test_view_of_a_grid_shows_every_point_and_marks_the_front(db_url):
    s = dse.create_study("gv", make_space(), OBJECTIVES, constraints={"mem": ("<=", 4)}, storage=db_url)
    s.optimize(toy_vec, optimizer="grid", progress=False)
    view = s.view()
    assert len(view.trials) == make_space().size
    marked = view.trials[view.trials["number"].isin(view.pareto_numbers)]
    assert sorted(map(tuple, marked[["cost", "latency"]].round(9).to_numpy())) == sorted(
        map(tuple, s.pareto()[["cost", "latency"]].round(9).to_numpy()))
    assert (~view.trials["feasible"]).any()      # infeasible points are there to be drawn apart


def test_boolean_metrics_work_as_constraints_in_both_objective_kinds(db_url):
    def per_config(c):
        return {**toy(c), "fits": c["depth"] <= 8}

    @dse.vectorized
    def batch(df):
        out = toy_vec(df)
        out["fits"] = df["depth"].to_numpy() <= 8
        return out

    for i, fn in enumerate([per_config, batch]):
        s = dse.create_study(f"b{i}", make_space(), OBJECTIVES, constraints={"fits": ("==", 1)}, storage=db_url)
        s.optimize(fn, optimizer="random", n_trials=60, seed=0, progress=False)
        t = s.trials
        assert (t["state"] == "complete").all()
        assert (t["feasible"] == (t["depth"] <= 8)).all()


def test_in_process_vectorized_path_matches_the_per_config_path(db_url):
    """A vectorized objective in this process is evaluated and told with the optimizer's own DataFrame; a
    per-config objective goes through records. Same seed, same metrics -> the same trials, the same front."""
    got = {}
    for name, objective in (("per-config", toy), ("vectorized", toy_vec)):
        study = dse.create_study(name, make_space(), OBJECTIVES, storage=db_url)
        study.optimize(objective, optimizer="nsga2", n_trials=120, seed=3, progress=False)
        got[name] = study.trials.sort_values("number").reset_index(drop=True)
    a, b = got["per-config"], got["vectorized"]
    cols = make_space().names
    pd.testing.assert_frame_equal(a[cols].astype(object).where(a[cols].notna(), None),
                                  b[cols].astype(object).where(b[cols].notna(), None))
    np.testing.assert_allclose(a[["cost", "latency", "mem"]].to_numpy(float), b[["cost", "latency", "mem"]].to_numpy(float),
                               rtol=1e-12)


def test_an_objective_that_modifies_its_input_cannot_change_what_is_stored(db_url):
    @dse.vectorized
    def rude(df: pd.DataFrame) -> pd.DataFrame:
        out = toy_vec(df)
        df["width"] = 999          # in place, on the frame it was given
        df["added"] = 1.0
        return out

    study = dse.create_study("rude", make_space(), OBJECTIVES, storage=db_url)
    study.optimize(rude, optimizer="nsga2", n_trials=60, seed=0, progress=False)
    t = study.trials
    assert len(t) == 60 and (t["state"] == "complete").all()
    assert set(t["width"]) <= {1, 2, 4, 8} and "added" not in t.columns
    assert not t[make_space().names].duplicated().any()


def test_configuration_keys_are_the_same_asked_and_read_back_from_storage(db_url):
    # the optimizer's told keys (the one evaluation cache) and the retry of aborted trials match configurations by
    # Encoder.keys: a config as the optimizer asks it (NaN / None for an inactive parameter) and as storage returns
    # it (a frame column, or a dict with None) must agree
    import time

    from dse.encoding import Encoder

    space = dse.Space(mode=dse.Categorical(["a", "b"]), n=dse.Int(1, 4), x=dse.Float(0, 1, when="mode == 'b'"),
                      q=dse.Categorical(["fp8", "int4"], when="mode == 'a'"))
    enc = Encoder(space)
    asked = space.sample(40, seed=1)
    assert asked["x"].isna().any() and asked["q"].isna().any()
    keys = enc.keys(asked).tolist()
    study = dse.create_study("keys", space, {"y": "min"}, storage=db_url)
    half = len(asked) // 2
    recs = asked.iloc[:half].astype(object).where(asked.iloc[:half].notna(), None).to_dict("records")
    rows = [{"params": r, "state": "complete", "metrics": {"y": 1.0}, "feasible": True, "error": None,
             "started_at": time.time(), "finished_at": time.time(), "duration_s": 0.0} for r in recs]
    study.storage.add_trials(study_id(study), rows, "test")              # trials given as dicts
    from dse.storage.columns import TrialColumns

    rest = asked.iloc[half:].reset_index(drop=True)
    n = len(rest)
    study.storage.add_columns(study_id(study), TrialColumns(             # trials given as columns (the loop's path)
        rest, pd.DataFrame({"y": np.ones(n)}), np.array(["complete"] * n, dtype=object), np.ones(n),
        np.array([None] * n, dtype=object), np.zeros(n), np.zeros(n), np.zeros(n)), "test")
    table = study.storage.load_table(study_id(study))
    assert enc.keys(table.params.reindex(columns=space.names)).tolist() == keys
    dicts = list(study.storage.load_trials(study_id(study))["params"])
    assert all(d["x"] is None for d in dicts if d["mode"] == "a")   # an inactive parameter reads None, not NaN
    as_dicts = pd.DataFrame.from_records(dicts).reindex(columns=space.names)
    assert enc.keys(as_dicts).tolist() == keys
    shuffled = asked[list(reversed(space.names))]   # the keys do not depend on the column order
    assert enc.keys(shuffled).tolist() == keys
    assert len(set(keys)) == len(asked.drop_duplicates())   # equal configurations, equal keys


def test_a_dead_workers_grid_claim_is_released_and_its_block_evaluated(db_url):
    import socket
    import subprocess
    import sys

    s = dse.create_study("claims", make_space(), OBJECTIVES, storage=db_url)
    from dse.optimizers import get_optimizer

    opt = get_optimizer("grid", s.space, 2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_worker = f"{socket.gethostname()}:{int(dead.stdout)}:gone"
    alive_worker = f"{socket.gethostname()}:{os.getpid()}:other"      # a live process's claim is respected
    st = s.storage
    assert st.claim(study_id(s), f"grid:{opt.block}:0", dead_worker)
    assert st.claim(study_id(s), f"grid:{opt.block}:1", alive_worker)
    s.optimize(toy_vec, optimizer="grid", progress=False)
    t = s.trials
    grid = s.space.grid()
    skipped = grid.iloc[opt.block:2 * opt.block]        # the live worker's block: not ours to evaluate
    assert len(t) == len(grid) - len(skipped)
    assert not t[s.space.names].duplicated().any()
    got = set(map(tuple, t[s.space.names].astype(str).to_numpy()))
    assert set(map(tuple, grid.iloc[:opt.block].astype(str).to_numpy())) <= got     # the dead worker's block redone
    assert not set(map(tuple, skipped.astype(str).to_numpy())) & got
    assert st.claims(study_id(s))[f"grid:{opt.block}:0"] != dead_worker


def test_an_interrupted_grid_gives_its_claims_back(db_url):
    s = dse.create_study("claims2", make_space(), OBJECTIVES, storage=db_url)
    calls = []

    @dse.vectorized(name="toy-vec", version="1")     # toy_vec's own: the study resumes with it
    def stop_second_batch(df):
        calls.append(len(df))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return toy_vec(df)

    s.optimize(stop_second_batch, optimizer="grid", progress=False)
    assert s.storage.claims(study_id(s)) == {}    # given back: another worker (or the next run) takes them
    s.optimize(toy_vec, optimizer="grid", progress=False)
    assert len(s.trials) == s.space.size and not s.trials[s.space.names].duplicated().any()


def test_random_search_on_a_vectorized_objective_asks_larger_batches(db_url):
    seen = []

    @dse.vectorized
    def sizes(df):
        seen.append(len(df))
        return toy_vec(df)

    s = dse.create_study("rb", make_space(), OBJECTIVES, storage=db_url)
    s.optimize(sizes, optimizer="random", n_trials=1500, seed=0, progress=False)
    assert seen[0] == 1024 and sum(seen) == 1500   # storage amortized over 1,024 rows, not 256
    seen.clear()
    s.optimize(sizes, optimizer="random", n_trials=100, batch_size=30, seed=1, progress=False)
    assert max(seen) == 30                           # an explicit batch_size is kept


def test_a_study_from_the_old_parquet_grid_sweep_opens_with_how_to_redo_it(db_url, caplog):
    s = dse.create_study("old-grid", make_space(), OBJECTIVES, storage=db_url)
    # what the previous engine's large-grid sweep left: the front as trials, every point in Parquet beside the db
    s.storage.set_attrs(study_id(s),
                        {"grid": {"n_points": 1680, "path": "/gone/old-grid.grid", "front_stored": True}})
    with caplog.at_level("WARNING", logger="dse"):
        again = dse.load_study("old-grid", storage=db_url)
    assert len(again.trials) == 0
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "Parquet grid sweep" in msg and "dse.delete_study('old-grid'" in msg
    # resumed as a grid, it ends with every point a trial, and the warning is gone
    again.optimize(toy_vec, optimizer="grid", progress=False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="dse"):
        done = dse.load_study("old-grid", storage=db_url)
    assert len(done.trials) == done.space.size and not caplog.records


def test_trials_are_read_once_per_state_and_every_write_is_seen(db_url):
    # Study.trials keeps the last read while the study's version stamp is unchanged; every write advances the stamp
    # (also two within one clock tick), so a write by another handle is seen and a caller's edits never leak back
    a = dse.create_study("cache", make_space(), OBJECTIVES, storage=db_url)
    a.optimize(toy_vec, optimizer="random", n_trials=30, seed=0, progress=False)
    first = a.trials
    first["width"] = -1   # a caller editing its copy
    assert (a.trials["width"] != -1).all() and len(a.trials) == 30
    st = a.storage
    stamps = [st.trials_version(study_id(a))]
    for i in range(5):
        st.set_attrs(study_id(a), {"k": i})
        stamps.append(st.trials_version(study_id(a)))
    assert all(x < y for x, y in zip(stamps, stamps[1:]))
    b = dse.load_study("cache", storage=db_url)   # another handle on the same study writes trials
    b.optimize(toy_vec, optimizer="random", n_trials=7, seed=1, progress=False)
    assert len(a.trials) == 37 and a.trials["number"].tolist() == list(range(37))


# ---- constraints met with a confidence: (op, bound, confidence) on the pessimistic band end --------------------

def _banded(df: pd.DataFrame) -> pd.DataFrame:
    """toy_vec with a band around latency ([0.8, 1.4] x) and around mem ([0.5, 1.1] x)."""
    m = toy_vec(df)
    return m.assign(latency_lo=0.8 * m["latency"], latency_hi=1.4 * m["latency"],
                    mem_lo=0.5 * m["mem"], mem_hi=1.1 * m["mem"])


banded = dse.vectorized(_banded, name="banded", band_level=0.8)


def banded_per_config(config):
    out = toy(config)
    return {**out, "latency_lo": 0.8 * out["latency"], "latency_hi": 1.4 * out["latency"],
            "mem_lo": 0.5 * out["mem"], "mem_hi": 1.1 * out["mem"]}


@pytest.mark.parametrize("objective", [banded, banded_per_config], ids=["vectorized", "per-config"])
def test_constraint_with_confidence_is_checked_on_the_pessimistic_band_end(objective, db_url):
    cons = {"latency": ("<=", 20.0, 0.9), "mem": (">=", 1.0, 0.9)}
    s = dse.create_study("conf", make_space(), OBJECTIVES, constraints=cons, storage=db_url)
    assert s.constraints == {"latency": ("<=", 20.0, 0.9), "mem": (">=", 1.0, 0.9)}
    assert s.spec.checked == {"latency": "latency_hi", "mem": "mem_lo"}
    assert s.spec.required == ["cost", "latency", "mem", "latency_hi", "mem_lo"]
    s.optimize(objective, optimizer="random", n_trials=60, seed=3, progress=False)
    t = s.trials
    assert (t["state"] == "complete").all()
    want = (t["latency_hi"] <= 20.0) & (t["mem_lo"] >= 1.0)
    assert t["feasible"].astype(bool).tolist() == want.tolist()
    # stricter than the point constraint: some trial meets latency <= 20 and mem >= 1 but not their band ends
    point = (t["latency"] <= 20.0) & (t["mem"] >= 1.0)
    assert (point & ~want).any() and not (want & ~point).any()
    front = s.pareto()
    assert len(front) and (front["latency_hi"] <= 20).all() and (front["mem_lo"] >= 1).all()
    assert s.summary()["constraints"] == {"latency": ["<=", 20.0, 0.9], "mem": [">=", 1.0, 0.9]}
    from dse.spec import front_table
    header = front_table(s).splitlines()
    assert any("latency_hi" in line and "mem_lo" in line for line in header)


def test_confidence_constraints_round_trip_and_reopen(db_url):
    cons = {"latency": ("<=", 20, 0.9), "mem": ("<=", 6)}
    s = dse.create_study("rt", make_space(), OBJECTIVES, constraints=cons, storage=db_url)
    s.optimize(banded, optimizer="random", n_trials=20, seed=0, progress=False)
    feasible = s.trials["feasible"].tolist()
    again = dse.load_study("rt", storage=db_url)
    assert again.constraints == {"latency": ("<=", 20.0, 0.9), "mem": ("<=", 6.0)}
    assert again.trials["feasible"].tolist() == feasible
    # the same spelling reopens it (list or tuple), another confidence or none is the clear mismatch error
    dse.create_study("rt", make_space(), OBJECTIVES, constraints={"latency": ["<=", 20.0, 0.9], "mem": ("<=", 6)},
                     storage=db_url)
    for other in ({"latency": ("<=", 20), "mem": ("<=", 6)}, {"latency": ("<=", 20, 0.95), "mem": ("<=", 6)}):
        with pytest.raises(dse.StudyError, match=r"has objectives .* and constraints .*0\.9.*Nothing stored"):
            dse.create_study("rt", make_space(), OBJECTIVES, constraints=other, storage=db_url)
    # a study stored with (op, bound) constraints opens unchanged, and a confidence of None is the same thing
    old = dse.create_study("old", make_space(), OBJECTIVES, constraints={"mem": ("<=", 4.0)}, storage=db_url)
    old.optimize(toy_vec, optimizer="random", n_trials=10, seed=0, progress=False)
    reopened = dse.create_study("old", make_space(), OBJECTIVES, constraints={"mem": ("<=", 4.0, None)},
                                storage=db_url)
    assert reopened.constraints == {"mem": ("<=", 4.0)} and reopened.spec.required == ["cost", "latency", "mem"]
    assert dse.load_study("old", storage=db_url).trials["feasible"].tolist() == old.trials["feasible"].tolist()


def test_a_trial_without_the_band_end_fails_naming_it(db_url):
    s = dse.create_study("nb", make_space(), OBJECTIVES, constraints={"latency": ("<=", 20, 0.9)}, storage=db_url)
    s.optimize(toy_vec, optimizer="random", n_trials=5, seed=0, progress=False)
    s.optimize(toy, optimizer="random", n_trials=5, seed=1, progress=False)
    t = s.trials
    assert (t["state"] == "failed").all() and not t["feasible"].astype(bool).any()
    for err in t["error"]:
        assert "latency_hi" in err and "2c - 1" in err and "(op, bound)" in err
    assert s.pareto().empty


def test_a_declared_band_level_must_match_the_confidence(db_url):
    s = dse.create_study("lv", make_space(), OBJECTIVES, constraints={"latency": ("<=", 20, 0.95)}, storage=db_url)
    with pytest.raises(dse.ObjectiveError, match=r"latency <= 20 with confidence 0\.95.*level 0\.9.*level 0\.8"):
        s.optimize(banded, optimizer="random", n_trials=5, progress=False)
    no_bands = dse.vectorized(lambda df: toy_vec(df), name="nobands")
    no_bands.dse_band_level = None
    with pytest.raises(dse.ObjectiveError, match=r"latency_hi.*level 0\.9.*returns no bands"):
        s.optimize(no_bands, optimizer="random", n_trials=5, progress=False)
    assert len(s.trials) == 0                      # refused before any trial
    ok = dse.create_study("lv2", make_space(), OBJECTIVES, constraints={"latency": ("<=", 20, 0.9)}, storage=db_url)
    ok.optimize(banded, optimizer="random", n_trials=5, progress=False)
    assert ok.meta["objective"]["band_level"] == 0.8


@pytest.mark.parametrize("bad, match", [
    (("<=", 20, 0.5), r"'latency' is 0\.5;.*strictly between 0\.5 and 1"),
    (("<=", 20, 1.0), r"'latency' is 1\.0;.*strictly between 0\.5 and 1"),
    (("<=", 20, 1.5), r"is 1\.5;"),
    (("<=", 20, -0.9), r"is -0\.9;"),
    (("<=", 20, float("nan")), r"is nan;"),
    (("<=", 20, True), r"is True;"),
    (("<=", 20, "0.9"), r"is '0\.9';"),
    (("==", 20, 0.9), r"one-sided operator.*'==' has no pessimistic end"),
    (("<=", 20, 0.9, 1), r"\(op, bound, confidence\)"),
    (("=<", 20, 0.9), r"'=<'"),
])
def test_bad_confidence_constraints_are_named(bad, match, db_url):
    with pytest.raises(dse.ObjectiveError, match=match):
        dse.create_study("b", make_space(), OBJECTIVES, constraints={"latency": bad}, storage=db_url)


def test_band_end_of_a_confidence_constraint_may_not_be_a_parameter(db_url):
    space = dse.Space(x=dse.Float(0, 1), latency_hi=dse.Float(0, 1))
    with pytest.raises(dse.ObjectiveError, match="'latency_hi' is also a parameter"):
        dse.create_study("p", space, {"cost": "min"}, constraints={"latency": ("<=", 1, 0.9)}, storage=db_url)


def test_study_file_with_confidence_constraints_runs(tmp_path):
    f = tmp_path / "conf_study.py"
    f.write_text(
        "import dse, pandas as pd\n"
        "@dse.vectorized(band_level=0.8)\n"
        "def evaluate(df):\n"
        "    x = df['x'].to_numpy(float)\n"
        "    return pd.DataFrame({'y': x, 'lat': 10 * x, 'lat_lo': 8 * x, 'lat_hi': 14 * x})\n"
        "study = dse.StudySpec(name='conf_file', space=dse.Space(x=dse.Float(0, 1, step=0.1)),\n"
        "                      objectives={'y': 'max'}, evaluate=evaluate,\n"
        "                      constraints={'lat': ('<=', 7, 0.9)}, optimizer='grid')\n")
    s = dse.load_study_file(f).run(progress=False)
    t = s.trials.sort_values("x")
    assert t["feasible"].astype(bool).tolist() == (t["lat_hi"] <= 7).tolist()
    assert s.best()["x"] == pytest.approx(0.5)
    reopened = dse.load_study("conf_file", storage=f"sqlite:///{tmp_path / 'conf_file.db'}")
    assert reopened.constraints == {"lat": ("<=", 7.0, 0.9)}


def test_confirming_checks_the_band_end_of_a_confidence_constraint():
    from dse.fidelity import Confirming, violated, violations

    m = pd.DataFrame({"lat": [1.0, 5.0, 9.0], "lat_hi": [2.0, 9.0, np.nan]})
    reasons = violations(m, {"lat": ("<=", 6.0, 0.9)})
    assert reasons == ["", "lat_hi = 9 > 6 (confidence 0.9)", "lat_hi missing (confidence 0.9)"]
    assert violated(reasons) == ["lat_hi"]
    assert violations(m, {"lat": ("<=", 6.0)}) == ["", "", "lat = 9 > 6"]

    @dse.vectorized(band_level=0.8)
    def screen(df):
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"y": x, "lat": 10 * x, "lat_hi": 10 * x})

    @dse.vectorized
    def check(df):
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"y": x, "lat": 10 * x, "lat_hi": 14 * x})

    ev = Confirming(screen, check, {"y": "max"}, {"lat": ("<=", 7, 0.9)}, label="slow")
    assert ev.dse_band_level == 0.8 and ev.constraints == {"lat": ("<=", 7.0, 0.9)}
    s = dse.create_study("cf", dse.Space(x=dse.Float(0, 1, step=0.1)), {"y": "max"},
                         constraints={"lat": ("<=", 7, 0.9)}, storage=":memory:")
    s.optimize(ev, optimizer="grid", batch_size=11, progress=False)
    best = s.best()
    assert best["x"] == pytest.approx(0.5) and best["fidelity"] == "slow" and best["lat_hi"] == pytest.approx(7.0)
    assert "lat_hi_screen" in s.trials and violated(ev.history[-1].rejected.values()) == ["lat_hi"]
    with pytest.raises(dse.ObjectiveError, match="one-sided"):
        Confirming(screen, check, {"y": "max"}, {"lat": ("==", 7, 0.9)})


def _two_fidelities(y: float, lat: float):
    """A screen (y = x, lat = 10 x) and a check (y = ``y`` x, lat = ``lat`` x) of the configurations' x."""

    @dse.vectorized
    def screen(df):
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"y": x, "lat": 10 * x})

    @dse.vectorized
    def check(df):
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"y": y * x, "lat": lat * x})

    return screen, check


def test_the_front_table_of_a_confirmed_front_says_which_columns_are_checked():
    """A confirmed front keeps its objectives' screening values beside checked constraint metrics: the table says
    which shown column is which (and where the other value is); an unconfirmed front's table says nothing."""
    from dse.fidelity import Confirming
    from dse.spec import front_table

    screen, check = _two_fidelities(y=0.5, lat=12)
    ev = Confirming(screen, check, {"y": "max"}, {"lat": ("<=", 7)}, label="slow")
    s = dse.create_study("cft", dse.Space(x=dse.Float(0, 1, step=0.1)), {"y": "max"}, constraints={"lat": ("<=", 7)},
                         storage=":memory:")
    s.optimize(ev, optimizer="grid", batch_size=11, progress=False)
    last = front_table(s).splitlines()[-1]
    assert last == ("front checked at fidelity 'slow': y: screening values (the slow ones in y_slow); lat: slow "
                    "values (the screening ones in lat_screen)")
    assert s.best()["y"] == pytest.approx(0.5) and s.best()["y_slow"] == pytest.approx(0.25)
    plain = dse.create_study("plain", dse.Space(x=dse.Float(0, 1, step=0.1)), {"y": "max"},
                             constraints={"lat": ("<=", 7)}, storage=":memory:")
    plain.optimize(screen, optimizer="grid", batch_size=11, progress=False)
    assert "fidelity" not in front_table(plain)


def test_a_constrained_objective_is_judged_on_its_checked_value():
    """A metric that is both an objective and a constraint ("least p90 TTFT, with p90 TTFT <= bound") is checked on
    its checked value: a configuration that meets the bound on screening but misses it when checked leaves the front,
    and the study stores the checked value (the screening one in ``<metric>_screen``)."""
    from dse.fidelity import Confirming
    from dse.spec import front_table

    screen, check = _two_fidelities(y=1.0, lat=20)
    ev = Confirming(screen, check, {"y": "max", "lat": "min"}, {"lat": ("<=", 7)}, label="slow")
    s = dse.create_study("cfl", dse.Space(x=dse.Float(0, 1, step=0.1)), {"y": "max", "lat": "min"},
                         constraints={"lat": ("<=", 7)}, storage=":memory:")
    s.optimize(ev, optimizer="grid", batch_size=11, progress=False)
    front = s.pareto()
    assert len(front) and (front["fidelity"] == "slow").all()
    assert (front["lat"] <= 7).all() and front["x"].max() == pytest.approx(0.3)     # 20 x <= 7 in the check
    assert np.allclose(front["lat"], 20 * front["x"]) and np.allclose(front["lat_screen"], 10 * front["x"])
    t = s.trials.set_index("x").sort_index()
    assert t.loc[0.6, "fidelity"] == "slow" and t.loc[0.6, "confirm_reason"] == "lat = 12 > 7"
    assert not t.loc[0.6, "feasible"]
    assert front_table(s).splitlines()[-1] == ("front checked at fidelity 'slow': y: screening values (the slow ones "
                                                "in y_slow); lat: slow values (the screening ones in lat_screen)")


def test_view_and_report_state_the_confidence():
    from dse import report
    from dse.view import StudyView

    s = dse.create_study("rv", make_space(), OBJECTIVES, constraints={"latency": ("<=", 20, 0.9), "mem": ("<=", 6)},
                         storage=":memory:")
    s.optimize(banded, optimizer="random", n_trials=20, seed=0, progress=False)
    v = s.view()
    assert v.constraints == {"latency": ("<=", 20.0), "mem": ("<=", 6.0)} and v.confidences == {"latency": 0.9}
    assert v.band_columns == {"latency": "latency_hi"}
    assert v.constraint_text("latency") == "latency <= 20 with confidence 0.9 (latency_hi)"
    assert "latency &lt;= 20 with confidence 0.9 (latency_hi)" in report.render(v)   # the provenance section
    with pytest.raises(dse.StudyError, match=r"confidence in \(0\.5, 1\)"):
        StudyView("x", v.trials, v.params, v.objectives, constraints={"latency": ("<=", 20, 1.2)})

_finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(value=_finite, width=st.floats(0, 1e3), bound=_finite, op=st.sampled_from(["<=", "<", ">=", ">"]),
       confidence=st.floats(0.5, 1.0, exclude_min=True, exclude_max=True))
def test_confidence_constraint_holds_iff_its_pessimistic_end_does(value, width, bound, op, confidence):
    from dse.fidelity import violations
    from dse.objective import ObjectiveSpec

    m = pd.DataFrame({"y": [0.0], "m": [value], "m_lo": [value - width], "m_hi": [value + width]})
    robust = ObjectiveSpec.build({"y": "min"}, {"m": (op, bound, confidence)})
    end = m["m_hi" if op in ("<=", "<") else "m_lo"].iloc[0]
    holds = {"<=": end <= bound, "<": end < bound, ">=": end >= bound, ">": end > bound}[op]
    assert (robust.violation(m)[0] == 0) == holds
    assert (violations(m, robust.constraints)[0] == "") == holds
    # met with a confidence implies met at the point value; stored and read back, the same spec
    if holds:
        assert ObjectiveSpec.build({"y": "min"}, {"m": (op, bound)}).violation(m)[0] == 0
    assert ObjectiveSpec.from_dict(robust.to_dict()) == robust


def test_front_table_counts_an_inactive_parameter_as_a_value_of_its_own():
    """A conditional parameter inactive on part of the front (None there) and set on the rest varies along the
    front: it is a column of the table, never "same on the whole front: eplb=None"."""
    from dse.spec import front_table

    space = dse.Space(ep=dse.Categorical([1, 2]), eplb=dse.Categorical([False, True], when="ep > 1"))

    @dse.vectorized(name="ep_toy", version="1")
    def evaluate(df: pd.DataFrame) -> pd.DataFrame:
        fast = df["ep"].to_numpy() > 1
        balanced = df["eplb"].to_numpy(object) == True  # noqa: E712 (None where inactive)
        return pd.DataFrame({"latency": np.where(fast, np.where(balanced, 1.0, 1.5), 2.0),
                             "cost": np.where(fast, 2.0, 1.0)})

    s = dse.create_study("cond", space, {"latency": "min", "cost": "min"}, storage=":memory:")
    s.optimize(evaluate, optimizer="grid", progress=False)
    front = s.pareto()
    assert sorted(map(str, front["eplb"])) == ["None", "True"]    # eplb=False is dominated
    table = front_table(s)
    assert "eplb=" not in table                       # not listed as constant
    header = next(line for line in table.splitlines() if line.lstrip().startswith("number"))
    assert "eplb" in header.split()
    # a parameter that really is the same on the whole front still is
    one = dse.create_study("one", space, {"latency": "min"}, storage=":memory:")
    one.optimize(evaluate, optimizer="grid", progress=False)
    assert "same on the whole front: ep=2" in front_table(one)


def test_front_table_of_a_study_no_trial_of_which_meets_its_constraints_says_so():
    """Trials complete but none feasible: the table names each constraint, how many trials meet it and the best
    value reached (it said "(no feasible trial on the front yet)", as if the study were still running)."""
    from dse.spec import front_table

    space = dse.Space(x=dse.Categorical([1, 2, 3]))

    @dse.vectorized(name="slo_toy", version="1")
    def evaluate(df: pd.DataFrame) -> pd.DataFrame:
        x = df["x"].to_numpy(float)
        return pd.DataFrame({"cost": x, "ttft_ms_p99": 1000.0 * x + 500.0, "fits": np.ones(len(x))})

    s = dse.create_study("none", space, {"cost": "min"}, storage=":memory:",
                         constraints={"ttft_ms_p99": ("<=", 1000.0), "fits": ("==", 1.0)})
    assert front_table(s) == "(no feasible trial on the front yet)"          # nothing evaluated yet
    s.optimize(evaluate, optimizer="grid", progress=False)
    text = front_table(s)
    assert "no trial meets the constraints" in text and "3 complete" in text
    assert "ttft_ms_p99 <= 1000: met by 0 of 3 (best 1500)" in text
    assert "fits == 1: met by 3 of 3" in text


def test_front_table_writes_a_conditional_integer_parameter_as_an_integer():
    """An Int parameter with a condition is stored as a float column (None where inactive): the table says
    "same on the whole front: k=3", not "k=3.0"."""
    from dse.spec import front_table

    space = dse.Space(mode=dse.Categorical(["a", "b"]), k=dse.Int(1, 3, when="mode == 'b'"))

    @dse.vectorized(name="int_toy", version="1")
    def evaluate(df: pd.DataFrame) -> pd.DataFrame:
        k = pd.to_numeric(df["k"], errors="coerce").fillna(0).to_numpy(float)
        return pd.DataFrame({"y": -k})

    s = dse.create_study("ints", space, {"y": "min"}, storage=":memory:")
    s.optimize(evaluate, optimizer="grid", progress=False)
    assert "same on the whole front: mode=b, k=3" in front_table(s)
