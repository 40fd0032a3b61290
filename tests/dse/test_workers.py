"""Several workers on one study: SQLite (4 processes), PostgreSQL (4 x 500, real server), Dask (real cluster)."""
import os
import subprocess
import sys

import pandas as pd
import pytest

import dse
from dse import pareto
from tests.helpers import HELPERS, ROOT
from tests.helpers.pg_server import postgres_db_url, postgres_url  # noqa: F401  (fixtures: a real PostgreSQL server)

STUDY_FILE = HELPERS / "worker_study.py"
#: Stated bound on configurations evaluated twice because concurrent workers asked for them before seeing
#: each other's trials (each worker deduplicates against everything it has read from the storage).
DUPLICATE_BOUND = 0.05


def _workers(url: str, n_workers: int, per_worker: int, optimizer: str = "nsga2") -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "DSE_TEST_OPTIMIZER": optimizer}
    procs = [
        subprocess.Popen([sys.executable, "-m", "dse.cli", "worker", str(STUDY_FILE), "--storage", url,
                          "--n-trials", str(per_worker), "--no-progress", "--seed", str(i)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        for i in range(n_workers)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _check_shared_study(url: str, expected: int) -> pd.DataFrame:
    study = dse.load_study("shared", storage=url)
    t = study.trials
    assert len(t) == expected
    assert sorted(t["number"]) == list(range(expected))
    assert (t["state"] == "complete").all()
    assert t["pid"].nunique() >= 2  # the work really was shared between processes
    dup = t[["a", "b", "c"]].duplicated().sum()
    assert dup <= DUPLICATE_BOUND * expected, f"{dup} duplicate evaluations across workers"
    F = t[["f1", "f2"]].to_numpy(float)
    recomputed = sorted(t["number"][pareto.brute_force_nondominated(F, ["min", "min"])])
    assert sorted(study.pareto()["number"]) == recomputed
    assert study.stored_front() == recomputed
    return t


@pytest.mark.slow   # over 20 s on a 2-core machine (CI runs it; -m 'not slow' skips it locally)
def test_four_processes_share_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path/'shared.db'}"
    runs = _workers(url, 4, 150)
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert "locked" not in r.stderr.lower()
    _check_shared_study(url, 600)


@pytest.mark.slow   # over 20 s on a 2-core machine (CI runs it; -m 'not slow' skips it locally)
@pytest.mark.postgres
def test_four_workers_times_500_on_postgresql(postgres_db_url):  # noqa: F811
    runs = _workers(postgres_db_url, 4, 500)
    for r in runs:
        assert r.returncode == 0, r.stderr
    _check_shared_study(postgres_db_url, 2000)


GRID_FILE = HELPERS / "worker_grid_study.py"


def _two_grid_workers(url: str) -> pd.DataFrame:
    """Two `dse worker` processes on one grid study: every grid point once, split between them (block claims)."""
    procs = [subprocess.Popen([sys.executable, "-m", "dse.cli", "worker", str(GRID_FILE), "--storage", url,
                               "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = dse.load_study("shared-grid", storage=url)
    t = study.trials
    size = study.space.size
    assert len(t) == size and sorted(t["number"]) == list(range(size))
    assert (t["state"] == "complete").all()
    assert not t[["a", "b", "c"]].duplicated().any(), "a grid point was evaluated twice"
    assert t["pid"].nunique() == 2, "both workers evaluated part of the grid"
    return t


def test_two_workers_split_a_grid_on_sqlite(tmp_path):
    _two_grid_workers(f"sqlite:///{tmp_path/'grid.db'}")


@pytest.mark.postgres
def test_two_workers_split_a_grid_on_postgresql(postgres_db_url):  # noqa: F811
    _two_grid_workers(postgres_db_url)


def _pid_metrics(config):
    return {"f1": config["b"] * (1 + config["c"]), "f2": 1.0 / config["b"] + config["c"], "pid": os.getpid()}


def test_dask_backend_on_a_real_local_cluster(tmp_path):
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        space = dse.Space(b=dse.Int(1, 50), c=dse.Float(0.0, 1.0, step=0.1))
        study = dse.create_study("dask", space, {"f1": "min", "f2": "min"}, storage=f"sqlite:///{tmp_path/'d.db'}")
        study.optimize(_pid_metrics, optimizer="random", n_trials=120, batch_size=40, seed=0,
                       backend="dask", address=cluster.scheduler_address, progress=False)
    t = study.trials
    assert len(t) == 120 and (t["state"] == "complete").all()
    assert set(t["pid"]) <= worker_pids and os.getpid() not in set(t["pid"])


def test_dask_backend_needs_a_reachable_scheduler(tmp_path):
    study = dse.create_study("nodask", dse.Space(b=dse.Int(1, 5)), {"f1": "min"}, storage=f"sqlite:///{tmp_path/'d.db'}")
    with pytest.raises(dse.OptimizerError, match="127.0.0.1:9"):
        study.optimize(_pid_metrics, optimizer="random", n_trials=3, backend="dask", address="tcp://127.0.0.1:9",
                       progress=False)
    assert len(study.trials) == 0
