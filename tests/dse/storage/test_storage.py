"""SQLStorage on real SQLite files: round trips, filters, bad input, list/delete, schema handling."""
from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dse.errors import StorageError, StudyError
from dse.storage import SCHEMA_VERSION, BaseStorage, SQLStorage, default_url, open_storage


@pytest.fixture
def storage(tmp_path: Path) -> SQLStorage:
    s = open_storage(str(tmp_path / "s.db"))
    yield s
    s.close()


def _finished(number: int, **kw):
    row = {"number": number, "state": "complete", "metrics": {"y": float(number)}, "feasible": True, "error": None,
           "finished_at": 1000.0 + number, "duration_s": 0.5}
    row.update(kw)
    return row


def _snapshot(storage: SQLStorage, sid: int) -> tuple:
    """Everything stored about a study, to check that a failed call altered nothing."""
    df = storage.load_trials(sid)
    return (df.to_json(), storage.get_attrs(sid), storage.get_study(storage_name(storage, sid)))


def storage_name(storage: SQLStorage, sid: int) -> str:
    names = storage.list_studies()["name"].tolist()
    return next(n for n in names if storage.get_study(n)["id"] == sid)


def test_round_trip_every_field(storage: SQLStorage) -> None:
    sid = storage.create_study("rt", {"space": {"x": [1, 2]}, "name": "ünïcødé ☃"})
    params = [
        {"gpu": "H100-SXM-80GB", "tp": 4, "lr": 1e-3, "flag": True, "none": None, "txt": "日本語 ✓ \n\t\"q\""},
        {"gpu": "L40S", "tp": 1, "lr": float("nan"), "flag": False, "none": None, "txt": ""},
        {"gpu": "A100", "tp": 2, "lr": float("-inf"), "flag": False, "none": None, "txt": "\x00nul"},
    ]
    nums = storage.reserve_trials(sid, params, "host:123:abc")
    assert nums == [0, 1, 2]
    running = storage.load_trials(sid)
    assert running["state"].tolist() == ["running"] * 3
    assert running["metrics"].tolist() == [{}, {}, {}]
    assert running["feasible"].isna().all() and running["finished_at"].isna().all()
    assert (running["started_at"] > 0).all()
    metrics = [
        {"y": 1.25, "nan": float("nan"), "pinf": float("inf"), "ninf": float("-inf"), "none": None, "s": "ok ☃"},
        {"y": -0.0, "big": 1e308, "tiny": 5e-324},
        {},
    ]
    storage.finish_trials(sid, [
        _finished(0, metrics=metrics[0], feasible=True, finished_at=1700000000.125, duration_s=0.001),
        _finished(1, metrics=metrics[1], feasible=False, error=None, duration_s=2.5),
        _finished(2, state="failed", metrics=metrics[2], feasible=None, error="ValueError: bad ☃", duration_s=0.0),
    ])
    df = storage.load_trials(sid)
    assert list(df.columns) == ["number", "state", "params", "metrics", "feasible", "error", "worker",
                                "started_at", "finished_at", "duration_s"]
    assert df["number"].tolist() == [0, 1, 2]
    assert df["state"].tolist() == ["complete", "complete", "failed"]
    assert df["worker"].tolist() == ["host:123:abc"] * 3
    assert df["feasible"].tolist() == [True, False, None] and df["feasible"].dtype == object
    assert [type(v) for v in df["feasible"].iloc[:2]] == [bool, bool]  # not SQLite's 0/1
    assert df["error"].tolist() == [None, None, "ValueError: bad ☃"]
    assert df["finished_at"].iloc[0] == 1700000000.125
    assert df["duration_s"].tolist() == [0.001, 2.5, 0.0]
    for got, want in zip(df["params"], params):
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k]))
    m0 = df["metrics"].iloc[0]
    assert math.isnan(m0["nan"]) and m0["pinf"] == math.inf and m0["ninf"] == -math.inf
    assert m0["none"] is None and m0["s"] == "ok ☃" and m0["y"] == 1.25
    assert df["metrics"].iloc[1] == metrics[1] and math.copysign(1, df["metrics"].iloc[1]["y"]) == -1
    assert df["metrics"].iloc[2] == {}
    study = storage.get_study("rt")
    assert study["id"] == sid and study["meta"] == {"space": {"x": [1, 2]}, "name": "ünïcødé ☃"}
    assert study["created_at"] <= time.time()


def test_numpy_scalars_are_stored_as_python(storage: SQLStorage) -> None:
    sid = storage.create_study("np", {})
    storage.add_trials(sid, [{"params": {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True),
                                         "s": np.str_("fp8")},
                              "state": "complete", "metrics": {"y": np.float64(2.0)}, "feasible": np.bool_(True),
                              "finished_at": np.float64(5.0), "duration_s": 1.0}], "w")
    row = storage.load_trials(sid).iloc[0]
    assert row["params"] == {"i": 3, "f": 0.5, "b": True, "s": "fp8"}
    assert type(row["params"]["i"]) is int and row["metrics"] == {"y": 2.0}
    assert row["started_at"] == 4.0  # finished_at - duration_s when started_at is not given


_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False),
                         st.text(max_size=20))
_json_value = st.recursive(_json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                                   max_size=3),
                           max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.text(max_size=10), _json_value, max_size=5),
       metrics=st.dictionaries(st.text(max_size=10), st.one_of(st.none(), st.floats(), st.text(max_size=10)),
                               max_size=5))
def test_round_trip_property(storage: SQLStorage, params: dict, metrics: dict) -> None:
    study = storage.get_study("prop")
    sid = study["id"] if study else storage.create_study("prop", {})
    (number,) = storage.add_trials(sid, [{"params": params, "state": "complete", "metrics": metrics,
                                          "feasible": None, "finished_at": 1.0, "duration_s": 0.0}], "w")
    row = storage.load_trials(sid, min_number=number).iloc[0]
    assert row["params"] == params
    assert row["metrics"].keys() == metrics.keys()
    for k, v in metrics.items():
        got = row["metrics"][k]
        assert got == v or (isinstance(v, float) and math.isnan(v) and math.isnan(got))


def test_numbers_contiguous_filters_and_counts(storage: SQLStorage) -> None:
    sid = storage.create_study("n", {})
    other = storage.create_study("other", {})
    assert storage.reserve_trials(sid, [{"x": i} for i in range(3)], "a") == [0, 1, 2]
    assert storage.reserve_trials(other, [{"x": 0}], "a") == [0]  # numbering is per study
    assert storage.add_trials(sid, [{"params": {"x": 9}, "state": "failed", "error": "e", "metrics": None,
                                     "finished_at": 2.0, "duration_s": 1.0}], "b") == [3]
    assert storage.reserve_trials(sid, [{"x": i} for i in range(2)], "c") == [4, 5]
    assert storage.reserve_trials(sid, [], "c") == []
    storage.finish_trials(sid, [_finished(1), _finished(4)])
    assert storage.count_trials(sid) == 6
    assert storage.count_trials(sid, ["running"]) == 3
    assert storage.count_trials(sid, "complete") == 2
    assert storage.count_trials(sid, ["complete", "failed"]) == 3
    assert storage.load_trials(sid, states=["complete"])["number"].tolist() == [1, 4]
    assert storage.load_trials(sid, min_number=3)["number"].tolist() == [3, 4, 5]
    assert storage.load_trials(sid, states=["running"], min_number=2)["number"].tolist() == [2, 5]
    empty = storage.load_trials(sid, min_number=100)
    assert len(empty) == 0 and list(empty.columns)[:3] == ["number", "state", "params"]
    assert storage.count_trials(other) == 1


def test_fail_running_and_running_workers(storage: SQLStorage) -> None:
    sid = storage.create_study("f", {})
    storage.reserve_trials(sid, [{"x": i} for i in range(3)], "w1")
    storage.reserve_trials(sid, [{"x": i} for i in range(3, 5)], "w2")
    storage.reserve_trials(sid, [{"x": 5}], "w3")
    storage.finish_trials(sid, [_finished(0)])
    assert storage.running_workers(sid) == ["w1", "w2", "w3"]
    assert storage.fail_running(sid, numbers=[0, 1], reason="r1") == [{"number": 1, "params": {"x": 1}}]
    assert storage.fail_running(sid, workers=["w2"], reason="worker w2 died") == [
        {"number": 3, "params": {"x": 3}}, {"number": 4, "params": {"x": 4}}]
    assert storage.fail_running(sid, numbers=[2, 5], workers=["w3"], reason="x") == [{"number": 5, "params": {"x": 5}}]
    assert storage.running_workers(sid) == ["w1"]
    assert storage.fail_running(sid, reason="resume") == [{"number": 2, "params": {"x": 2}}]
    assert storage.fail_running(sid, reason="again") == []
    df = storage.load_trials(sid).set_index("number")
    assert df.loc[0, "state"] == "complete" and df.loc[0, "error"] is None
    assert df.loc[3, "error"] == "worker w2 died" and df.loc[3, "state"] == "failed"
    assert (df.loc[[1, 2, 3, 4, 5], "duration_s"] >= 0).all()
    assert storage.running_workers(sid) == []


def test_attrs_and_meta(storage: SQLStorage) -> None:
    sid = storage.create_study("a", {"seed": 0, "opt": "nsga2"})
    assert storage.get_attrs(sid) == {}
    storage.set_attrs(sid, {"front": [1, 2, 3], "parquet": "studies/a.parquet"})
    storage.set_attrs(sid, {"front": [4], "hv": float("nan")})
    got = storage.get_attrs(sid)
    assert got["front"] == [4] and got["parquet"] == "studies/a.parquet" and math.isnan(got["hv"])
    storage.update_study_meta(sid, {"opt": "tpe", "version": "0.1"})
    assert storage.get_study("a")["meta"] == {"seed": 0, "opt": "tpe", "version": "0.1"}


def test_list_and_delete(storage: SQLStorage) -> None:
    assert list(storage.list_studies().columns) == ["name", "n_trials", "n_complete", "n_failed", "n_running",
                                                     "created_at", "updated_at"]
    assert len(storage.list_studies()) == 0
    a = storage.create_study("a", {})
    b = storage.create_study("b", {})
    storage.reserve_trials(a, [{"x": i} for i in range(4)], "w")
    storage.finish_trials(a, [_finished(0), _finished(1, state="failed", error="e")])
    storage.set_attrs(a, {"k": 1})
    df = storage.list_studies().set_index("name")
    assert df.loc["a", ["n_trials", "n_complete", "n_failed", "n_running"]].tolist() == [4, 1, 1, 2]
    assert df.loc["b", ["n_trials", "n_complete", "n_failed", "n_running"]].tolist() == [0, 0, 0, 0]
    assert df.loc["a", "updated_at"] >= df.loc["a", "created_at"]
    storage.delete_study("a")
    assert storage.get_study("a") is None
    assert storage.list_studies()["name"].tolist() == ["b"]
    with pytest.raises(StudyError, match="'a'.*existing: \\['b'\\]"):
        storage.delete_study("a")
    a2 = storage.create_study("a", {"new": True})  # a fresh study with the freed name starts at 0
    assert a2 not in (a, b)  # ids are never reused, so a stale worker of the old "a" cannot write into it
    storage.delete_study("a")  # the highest id: plain SQLite rowids would hand it out again
    a3 = storage.create_study("a", {})
    assert a3 > a2
    a2 = a3
    assert storage.reserve_trials(a2, [{"x": 0}], "w") == [0]
    with pytest.raises(StudyError, match=f"no study with id {a}"):
        storage.reserve_trials(a, [{"x": 0}], "stale")
    assert storage.get_attrs(a2) == {} and storage.count_trials(b) == 0


def test_schema_idempotent_and_version(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    s1 = open_storage(str(path))
    sid = s1.create_study("x", {})
    s1.reserve_trials(sid, [{"x": 1}], "w")
    s2 = open_storage(f"sqlite:///{path}")  # reopening creates nothing and loses nothing
    assert s2.count_trials(sid) == 1
    s1.close()
    s2.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM dse_meta WHERE key='schema_version'").fetchall() == [(str(SCHEMA_VERSION),)]
    con.execute("UPDATE dse_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade dse"):
        open_storage(str(path))


def test_default_url_and_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_url("my-study") == "sqlite:///studies/my-study.db"
    assert default_url("s", root=tmp_path) == f"sqlite:///{tmp_path.as_posix()}/s.db"
    for bad in ["", "a/b", "..", "x\\y"]:
        with pytest.raises(StorageError, match="cannot name a SQLite file"):
            default_url(bad)
    monkeypatch.chdir(tmp_path)
    s = open_storage(None, "dflt")
    assert isinstance(s, BaseStorage) and s.url == "sqlite:///studies/dflt.db"
    assert (tmp_path / "studies" / "dflt.db").exists()  # parent directory created on open
    s.close()
    for form in [tmp_path / "p.sqlite", str(tmp_path / "q.sqlite3"), "sqlite://"]:
        s = open_storage(form)
        sid = s.create_study("z", {})
        assert s.reserve_trials(sid, [{"a": 1}], "w") == [0]
        s.close()


@pytest.mark.parametrize(
    "url, match",
    [
        ("foo://x/y", "'foo://x/y'.*NoSuchModuleError"),
        ("mysql://user:hunter2@localhost/db", "mysql://user:\\*\\*\\*@localhost/db"),
        ("postgresql://user:hunter2@127.0.0.1:1/db", "postgresql://user:\\*\\*\\*@127.0.0.1:1/db"),
        ("not a url", "neither a URL nor a SQLite file path"),
        ("", "not a URL or path"),
    ],
)
def test_open_storage_bad_urls(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match) as info:
        open_storage(url)
    assert "hunter2" not in str(info.value)
    assert "valid:" in str(info.value)


def test_open_storage_unwritable(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create directory"):
        open_storage(str(blocker / "sub" / "x.db"))
    with pytest.raises(StorageError, match="names a directory"):
        open_storage(f"sqlite:///{tmp_path}")
    with pytest.raises(StorageError, match="needs a study_name"):
        open_storage(None)


def test_bad_input_changes_nothing(storage: SQLStorage) -> None:
    sid = storage.create_study("bad", {"k": 1})
    storage.reserve_trials(sid, [{"x": i} for i in range(3)], "w")
    storage.finish_trials(sid, [_finished(0)])
    storage.set_attrs(sid, {"a": 1})
    before = _snapshot(storage, sid)

    with pytest.raises(StorageError, match="params\\[1\\].*object.*not JSON-serializable"):
        storage.reserve_trials(sid, [{"x": 1}, {"x": object()}], "w")
    with pytest.raises(StorageError, match="params\\[0\\] must be a dict"):
        storage.reserve_trials(sid, [[1, 2]], "w")
    with pytest.raises(StorageError, match="'done'.*valid states"):
        storage.load_trials(sid, states=["done"])
    with pytest.raises(StorageError, match="'pruned'"):
        storage.count_trials(sid, ["pruned"])
    with pytest.raises(StorageError, match="'running' is not a finished state"):
        storage.finish_trials(sid, [_finished(1, state="running")])
    with pytest.raises(StorageError, match="'finished'"):
        storage.add_trials(sid, [{"params": {}, "state": "finished"}], "w")
    with pytest.raises(StudyError, match="\\[7\\] do not exist"):  # valid 1 and 2 must not be updated either
        storage.finish_trials(sid, [_finished(1), _finished(2), _finished(7)])
    with pytest.raises(StorageError, match="repeat trial number"):
        storage.finish_trials(sid, [_finished(1), _finished(1)])
    with pytest.raises(StorageError, match="metrics.*set"):
        storage.finish_trials(sid, [_finished(1, metrics={"y": {1, 2}})])
    with pytest.raises(StorageError, match="feasible"):
        storage.finish_trials(sid, [_finished(1, feasible="yes")])
    with pytest.raises(StorageError, match="number"):
        storage.finish_trials(sid, [dict(_finished(1), number="1")])
    with pytest.raises(StorageError, match="meta patch"):
        storage.update_study_meta(sid, {"f": lambda: 0})
    with pytest.raises(StorageError, match="attr key"):
        storage.set_attrs(sid, {"": 1})
    with pytest.raises(StudyError, match="already exists"):
        storage.create_study("bad", {"k": 2})
    with pytest.raises(StudyError, match="study name"):
        storage.create_study("", {})
    assert _snapshot(storage, sid) == before
    assert storage.reserve_trials(sid, [{"x": 3}], "w") == [3]  # no number was consumed by failed calls


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.reserve_trials(42, [{"x": 1}], "w"),
        lambda s: s.reserve_trials(42, [], "w"),
        lambda s: s.finish_trials(42, [_finished(0)]),
        lambda s: s.add_trials(42, [{"params": {}, "state": "complete"}], "w"),
        lambda s: s.load_trials(42),
        lambda s: s.count_trials(42),
        lambda s: s.fail_running(42, reason="r"),
        lambda s: s.running_workers(42),
        lambda s: s.set_attrs(42, {"a": 1}),
        lambda s: s.get_attrs(42),
        lambda s: s.update_study_meta(42, {"a": 1}),
    ],
)
def test_unknown_study_id(storage: SQLStorage, call) -> None:
    storage.create_study("only", {})
    with pytest.raises(StudyError, match="no study with id 42.*existing: 1 \\('only'\\)"):
        call(storage)
    assert storage.list_studies()["n_trials"].tolist() == [0]


def test_study_id_type_checked(storage: SQLStorage) -> None:
    with pytest.raises(StorageError, match="study_id must be an int, got str '1'"):
        storage.load_trials("1")


def test_sqlite_writes_begin_immediate_reads_deferred(storage: SQLStorage) -> None:
    sid = storage.create_study("tx", {})
    seen: list[str] = []
    with storage._engine.connect() as conn:  # the pool hands this connection out again below
        conn.connection.dbapi_connection.set_trace_callback(seen.append)
    storage.reserve_trials(sid, [{"x": 1}], "w")
    storage.count_trials(sid)
    begins = [s for s in seen if s.startswith("BEGIN") or s == "COMMIT"]
    assert begins == ["BEGIN IMMEDIATE", "COMMIT", "BEGIN", "COMMIT"]
    assert any(s.startswith("UPDATE dse_studies SET next_number") for s in seen)  # the counter, in that transaction


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.db"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError, match="garbage.db.*not a database.*cannot be opened"):
        open_storage(str(bad))
    assert bad.read_bytes() == b"this is not SQLite" * 100  # untouched


_junk = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 50), st.floats(), st.text(max_size=8), st.binary(max_size=4),
    st.sets(st.integers(), max_size=2), st.builds(object), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
)
_row = st.fixed_dictionaries(
    {},
    optional={
        "number": _junk, "state": st.one_of(st.sampled_from(["complete", "failed", "running", "done"]), _junk),
        "metrics": _junk, "feasible": _junk, "error": _junk, "finished_at": _junk, "duration_s": _junk,
        "params": _junk, "started_at": _junk,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=st.sampled_from(["finish", "add", "reserve", "attrs", "meta", "load", "fail"]),
       rows=st.lists(st.one_of(_row, _junk), max_size=4), sid=st.one_of(st.just(1), _junk))
def test_fuzzed_input_gives_clear_errors_and_alters_nothing(storage: SQLStorage, call: str, rows: list,
                                                             sid: object) -> None:
    if storage.get_study("fz") is None:
        s = storage.create_study("fz", {"k": 1})
        storage.reserve_trials(s, [{"x": i} for i in range(5)], "w")
    before = _snapshot(storage, 1)
    n_before = storage.count_trials(1)
    try:
        if call == "finish":
            storage.finish_trials(sid, rows)
        elif call == "add":
            storage.add_trials(sid, rows, "w")
        elif call == "reserve":
            storage.reserve_trials(sid, rows, "w")
        elif call == "attrs":
            storage.set_attrs(sid, {str(i): r for i, r in enumerate(rows)})
        elif call == "meta":
            storage.update_study_meta(sid, {str(i): r for i, r in enumerate(rows)})
        elif call == "load":
            storage.load_trials(sid, states=rows or None)
        else:
            storage.fail_running(sid, numbers=rows, reason="fuzz")
    except (StorageError, StudyError) as exc:
        assert str(exc)  # a message, and nothing changed
        assert _snapshot(storage, 1) == before
    else:
        assert storage.count_trials(1) >= n_before


def test_claims_are_exclusive_released_and_kept_apart_from_attrs(storage: SQLStorage) -> None:
    sid = storage.create_study("c", {})
    storage.set_attrs(sid, {"front": [1]})
    assert storage.claim(sid, "grid:256:0", "w1") is True
    assert storage.claim(sid, "grid:256:0", "w2") is False     # another worker holds it
    assert storage.claim(sid, "grid:256:0", "w1") is True      # its holder may claim it again
    assert storage.claim(sid, "grid:256:1", "w2") is True
    assert storage.claims(sid) == {"grid:256:0": "w1", "grid:256:1": "w2"}
    assert storage.get_attrs(sid) == {"front": [1]}              # claims are not attrs
    storage.release_claims(sid, ["grid:256:0"])
    assert storage.claim(sid, "grid:256:0", "w2") is True
    with pytest.raises(StorageError, match="not starting with 'claim:'"):
        storage.set_attrs(sid, {"claim:grid:256:1": "w3"})
    with pytest.raises(StorageError, match="claim key"):
        storage.claim(sid, "", "w1")
    with pytest.raises(StorageError, match="needs a worker id"):
        storage.claim(sid, "k", None)  # type: ignore[arg-type]


def _columns(n: int, offset: int = 0, state: str = "complete"):
    from dse.storage.columns import TrialColumns

    params = pd.DataFrame({"gpu": pd.Series([["A100", "H100", None][i % 3] for i in range(n)], dtype=object),
                           "tp": np.arange(offset, offset + n, dtype=np.int64), "lr": np.linspace(0, 1, n)})
    metrics = pd.DataFrame({"y": np.arange(n, dtype=float) + offset, "src": ["roofline"] * n})
    return TrialColumns(params, metrics, np.array([state] * n, dtype=object),
                        np.where(np.arange(n) % 2 == 0, 1.0, 0.0), np.array([None] * n, dtype=object),
                        np.full(n, 1.0), np.full(n, 2.0), np.full(n, 1.0))


def test_trials_read_the_same_as_dicts_and_as_columns_whatever_path_stored_them(storage: SQLStorage) -> None:
    # reserved-then-finished, added as dicts, added as columns (split into blocks), finished as columns: one
    # numbering, and the dict view (load_trials) and the frame view (load_table) agree, filters included
    from dse.storage import columns

    sid = storage.create_study("paths", {})
    assert storage.reserve_trials(sid, [{"gpu": "L40S", "tp": 1, "lr": 0.5}], "w") == [0]
    storage.finish_trials(sid, [_finished(0)])
    assert storage.add_trials(sid, [{"params": {"gpu": "A100", "tp": 2}, "state": "failed", "error": "boom",
                                     "metrics": None, "finished_at": 3.0, "duration_s": 1.0}], "w") == [1]
    n = columns.BLOCK_ROWS + 5   # two blocks in one write
    assert storage.add_columns(sid, _columns(n), "w2") == list(range(2, 2 + n))
    reserved = storage.reserve_trials(sid, [{"gpu": "A100", "tp": 7, "lr": 0.1}] * 3, "w3")
    storage.finish_columns(sid, reserved, _columns(3, offset=100, state="failed"), "w3")
    total = 2 + n + 3
    assert storage.count_trials(sid) == total and storage.count_trials(sid, ["failed"]) == 4
    listed = storage.list_studies().set_index("name").loc["paths"]
    assert (listed["n_trials"], listed["n_complete"], listed["n_failed"], listed["n_running"]) == (total, total - 4, 4, 0)
    dicts = storage.load_trials(sid)
    table = storage.load_table(sid)
    assert dicts["number"].tolist() == table.base["number"].tolist() == list(range(total))
    assert dicts["state"].tolist() == table.base["state"].tolist()
    assert dicts.loc[1, "params"] == {"gpu": "A100", "tp": 2} and dicts.loc[1, "metrics"] == {}
    assert dicts.loc[2, "params"] == {"gpu": "A100", "tp": 0, "lr": 0.0} and dicts.loc[4, "params"]["gpu"] is None
    assert dicts.loc[2, "metrics"] == {"y": 0.0, "src": "roofline"} and dicts.loc[3, "feasible"] is False
    assert table.params["tp"].tolist()[:3] == [1, 2, 0] and math.isnan(table.params["lr"][1])
    assert table.metrics["src"].tolist()[2:4] == ["roofline", "roofline"] and table.base["worker"][total - 1] == "w3"
    tail = storage.load_table(sid, min_number=total - 4, states=["failed"])
    assert tail.base["number"].tolist() == [total - 3, total - 2, total - 1]
    assert tail.metrics["y"].tolist() == [100.0, 101.0, 102.0]
    assert storage.load_trials(sid, states=["failed"])["number"].tolist() == [1, total - 3, total - 2, total - 1]
    with pytest.raises(StudyError, match="not all reserved"):   # finished trials cannot be finished again
        storage.finish_columns(sid, reserved, _columns(3), "w3")
    with pytest.raises(StorageError, match="contiguous"):
        storage.finish_columns(sid, [0, 2, 3], _columns(3), "w3")
    with pytest.raises(StorageError, match="'done' is not a finished state"):
        storage.add_columns(sid, _columns(2, state="done"), "w")
    assert storage.count_trials(sid) == total   # nothing stored by the failed calls


def test_a_batch_is_stored_as_it_was_evaluated_and_scored_and_comes_back_numbered(storage: SQLStorage) -> None:
    from dse.optimizers.batch import Batch

    sid = storage.create_study("batch", {})
    frame = pd.DataFrame({"tp": [1, 2, 4], "gpu": ["A100", "H100", "H100"]})
    asked = Batch(frame, np.array([b"a", b"b", b"c"], dtype=object))
    with pytest.raises(StorageError, match="not evaluated and scored"):
        storage.store_batch(sid, asked, "w", started_at=1.0, finished_at=2.0)
    done = asked.evaluated(pd.DataFrame({"y": [1.0, np.nan, 3.0]}), np.array([None, "boom", None], dtype=object),
                           np.array([0.1, 0.2, 0.3])).scored(np.array([[1.0], [np.nan], [3.0]]),
                                                             np.array([0.0, np.inf, 0.5]), np.array([True, False, False]))
    stored = storage.store_batch(sid, done, "w", started_at=1.0, finished_at=2.0)
    assert stored.numbers.tolist() == [0, 1, 2] and asked.numbers is None and stored.F is done.F
    reserved = storage.reserve_trials(sid, frame.to_dict("records"), "w")
    assert storage.store_batch(sid, done, "w", started_at=1.0, finished_at=2.0, numbers=reserved).numbers.tolist() \
        == reserved == [3, 4, 5]
    t = storage.load_trials(sid)
    assert t["state"].tolist() == ["complete", "failed", "complete"] * 2
    assert t["feasible"].tolist()[:3] == [True, None, False] and t["error"].tolist()[:3] == [None, "boom", None]
    assert t["duration_s"].tolist()[:3] == [0.1, 0.2, 0.3] and t.loc[2, "params"] == {"tp": 4, "gpu": "H100"}


def test_blocks_hold_a_json_header_and_raw_arrays_never_pickle(tmp_path: Path) -> None:
    import json

    st = open_storage(str(tmp_path / "b.db"))
    sid = st.create_study("b", {})
    st.add_columns(sid, _columns(1000), "w")
    st.close()
    con = sqlite3.connect(tmp_path / "b.db")
    (data,) = con.execute("SELECT data FROM dse_trial_blocks").fetchone()
    con.close()
    assert data.startswith(b"DSEB1\n")
    size = int.from_bytes(data[6:14], "little")
    header = json.loads(data[14:14 + size])
    assert header["n"] == 1000
    # every byte after the header is a column's raw array: the sizes the header states add up exactly
    assert 14 + size + sum(c[4] + c[5] for c in header["columns"]) == len(data)
    kinds = {c[1]: c[2] for c in header["columns"]}
    assert kinds["tp"] == "i8" and kinds["lr"] == "f8" and kinds["gpu"] == "str" and kinds["src"] == "const"
    assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data   # no pickle frame


def test_a_schema_1_database_opens_upgraded_with_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    st = open_storage(str(path))
    sid = st.create_study("old", {})
    st.reserve_trials(sid, [{"x": 1}, {"x": 2}], "w")
    st.finish_trials(sid, [_finished(0), _finished(1, state="failed", error="e", feasible=None)])
    st.close()
    con = sqlite3.connect(path)   # what a dse of schema 1 left: no block table, version 1
    con.execute("DROP TABLE dse_trial_blocks")
    con.execute("UPDATE dse_meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
    st = open_storage(str(path))
    assert st.load_trials(sid)["params"].tolist() == [{"x": 1}, {"x": 2}]
    assert st.add_columns(sid, _columns(2), "w") == [2, 3]
    assert st.load_table(sid).base["state"].tolist() == ["complete", "failed", "complete", "complete"]
    st.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT value FROM dse_meta WHERE key='schema_version'").fetchall() == [(str(SCHEMA_VERSION),)]
    con.close()
