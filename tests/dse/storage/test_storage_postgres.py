"""SQLStorage on a real PostgreSQL server (scripts/postgres.sh): round trip and 4 concurrent worker processes."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dse.errors import StorageError, StudyError
from dse.storage import open_storage
from tests.dse.storage.test_storage_concurrency import check_the_raced_study, race_four_workers
from tests.helpers import pg_server
from tests.helpers.pg_server import postgres_db_url, postgres_url  # noqa: F401 - fixtures (one server: config.stash)


class _Config:
    """The two pytest.Config members the server helper uses, so that a failing start can be tested in isolation."""

    def __init__(self) -> None:
        self.stash = pytest.Stash()
        self.cleanups: list = []

    def add_cleanup(self, fn) -> None:
        self.cleanups.append(fn)


def test_server_failure_skips_locally_and_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "postgres.sh"
    script.write_text('#!/bin/bash\necho "postgres.sh: initdb exploded" >&2\nexit 3\n')
    monkeypatch.setattr(pg_server, "SCRIPT", script)
    monkeypatch.delenv("CI", raising=False)
    config = _Config()
    with pytest.raises(pytest.skip.Exception, match="exited 3: postgres.sh: initdb exploded"):
        pg_server.postgres_url_or_skip(config)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="initdb exploded.*CI is set"):
        pg_server.postgres_url_or_skip(config)  # the failure is remembered: the script ran once
    assert len(config.cleanups) == 1
    for fn in config.cleanups:
        fn()


@pytest.mark.postgres
def test_round_trip_postgres(postgres_db_url: str) -> None:  # noqa: F811
    st = open_storage(postgres_db_url)
    assert "***" in st.url and make_url(postgres_db_url).password not in st.url
    sid = st.create_study("pg", {"space": {"tp": [1, 2]}, "note": "ünï ☃"})
    params = [{"gpu": "H100", "tp": 2, "txt": "日本 \x00 nul", "lr": float("nan")}, {"gpu": "L40S", "tp": 1}]
    assert st.reserve_trials(sid, params, "host:1:a") == [0, 1]
    st.finish_trials(sid, [
        {"number": 0, "state": "complete", "metrics": {"y": 1.5, "nan": float("nan"), "inf": float("inf"), "n": None},
         "feasible": True, "error": None, "finished_at": 10.25, "duration_s": 0.5},
    ])
    assert st.add_trials(sid, [{"params": {"gpu": "A100"}, "state": "failed", "metrics": None, "feasible": None,
                                "error": "boom ☃", "finished_at": 3.0, "duration_s": 1.0}], "w2") == [2]
    assert st.running_workers(sid) == ["host:1:a"]
    assert st.fail_running(sid, reason="crash") == [{"number": 1, "params": {"gpu": "L40S", "tp": 1}}]
    df = st.load_trials(sid)
    assert df["number"].tolist() == [0, 1, 2]
    assert df["state"].tolist() == ["complete", "failed", "failed"]
    assert df["params"].iloc[0]["txt"] == "日本 \x00 nul" and math.isnan(df["params"].iloc[0]["lr"])
    m = df["metrics"].iloc[0]
    assert m["y"] == 1.5 and math.isnan(m["nan"]) and m["inf"] == math.inf and m["n"] is None
    assert df["feasible"].tolist()[0] is True
    assert df["error"].tolist() == [None, "crash", "boom ☃"]
    assert df["finished_at"].iloc[0] == 10.25 and df["started_at"].iloc[2] == 2.0
    assert df["worker"].tolist() == ["host:1:a", "host:1:a", "w2"]
    st.set_attrs(sid, {"front": [0]})
    st.set_attrs(sid, {"front": [0, 2], "hv": 1.5})
    assert st.get_attrs(sid) == {"front": [0, 2], "hv": 1.5}
    st.update_study_meta(sid, {"seed": 3})
    assert st.get_study("pg")["meta"] == {"space": {"tp": [1, 2]}, "note": "ünï ☃", "seed": 3}
    assert st.list_studies()[["name", "n_trials", "n_failed"]].values.tolist() == [["pg", 3, 2]]
    with pytest.raises(StudyError, match="already exists"):
        st.create_study("pg", {})
    with pytest.raises(StudyError, match="\\[9\\] do not exist"):
        st.finish_trials(sid, [{"number": 9, "state": "complete", "metrics": {}}])
    assert st.count_trials(sid, ["complete"]) == 1
    st.close()
    reopened = open_storage(postgres_db_url)  # schema exists: reopening is idempotent
    assert reopened.count_trials(sid) == 3
    reopened.delete_study("pg")
    assert reopened.get_study("pg") is None
    reopened.close()


@pytest.mark.postgres
def test_wrong_password_is_a_clear_error(postgres_url: str) -> None:  # noqa: F811
    bad = make_url(postgres_url).set(password="not-the-password").render_as_string(hide_password=False)
    with pytest.raises(StorageError, match="postgresql.*\\*\\*\\*.*cannot be opened") as info:
        open_storage(bad)
    assert "not-the-password" not in str(info.value)


@pytest.mark.postgres
def test_four_processes_postgres(postgres_db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """4 worker processes x 500 trials race to create schema and study, then reserve/finish concurrently."""
    race_four_workers(postgres_db_url, tmp_path, [30.0] * 4, timeout_s=300)
    check_the_raced_study(postgres_db_url)
