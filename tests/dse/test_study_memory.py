"""storage=":memory:": a throwaway study in this process, with the same API as a file-backed one and nothing
written to disk."""
import os

import pandas as pd
import pytest

import dse
from dse.errors import StudyError


def _space():
    return dse.Space(a=dse.Int(0, 9), b=dse.Categorical(["x", "y"]), constraints=["a != 3"])


@dse.vectorized
def _f(df):
    a = df["a"].to_numpy(float)
    return pd.DataFrame({"f1": a, "f2": (9 - a) ** 2 + (df["b"] == "y").to_numpy(float)})


def test_memory_study_has_the_file_study_api_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # the default storage would write studies/<name>.db here
    mem = dse.create_study("m", _space(), {"f1": "min", "f2": "min"}, storage=":memory:")
    mem.optimize(_f, optimizer="grid", progress=False)
    on_disk = dse.create_study("m", _space(), {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp_path / 'm.db'}")
    on_disk.optimize(_f, optimizer="grid", progress=False)
    files = sorted(os.listdir(tmp_path))
    assert mem.storage_url == ":memory:"
    assert len(mem.trials) == 18 and set(mem.trials["a"]) == set(range(10)) - {3}
    cols = ["a", "b", "f1", "f2"]
    same = lambda d: d[cols].sort_values(cols).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(same(mem.trials), same(on_disk.trials))
    pd.testing.assert_frame_equal(same(mem.pareto()), same(on_disk.pareto()))
    assert mem.hypervolume().value == pytest.approx(on_disk.hypervolume().value)
    assert mem.summary()["n_complete"] == 18 and mem.summary()["storage"] == ":memory:"
    # resuming in the same process continues the same database
    mem.optimize(_f, optimizer="random", n_trials=5, seed=0, progress=False)
    assert len(mem.trials) == 18   # the grid is exhausted: random finds nothing new
    assert sorted(os.listdir(tmp_path)) == files, "an in-memory study wrote files"
    mem.export(tmp_path / "front.csv")
    assert len(pd.read_csv(tmp_path / "front.csv")) == 18


def test_each_memory_storage_is_its_own_database():
    a = dse.create_study("same", _space(), {"f1": "min"}, storage=":memory:")
    a.optimize(_f, optimizer="random", n_trials=4, seed=1, progress=False)
    b = dse.create_study("same", _space(), {"f1": "min"}, storage=":memory:")
    assert len(a.trials) == 4 and len(b.trials) == 0
    with pytest.raises(StudyError, match="no study named 'same'"):
        dse.load_study("same", storage=":memory:")
