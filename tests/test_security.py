"""Security: stored studies hold JSON only, and a tampered stored constraint is refused, never executed."""
import json
import sqlite3

import pytest

import dse
from conftest import OBJECTIVES, make_space, toy


def test_every_stored_cell_is_json_and_nothing_is_pickled(tmp_path):
    db = tmp_path / "s.db"
    s = dse.create_study("sec", make_space(), OBJECTIVES, constraints={"mem": ("<=", 8)}, storage=f"sqlite:///{db}")
    s.optimize(toy, optimizer="nsga2", n_trials=40, pop_size=20, seed=0, progress=False)
    con = sqlite3.connect(db)
    checked = 0
    for table, cols in {"dse_studies": ["meta"], "dse_trials": ["params", "metrics"], "dse_attrs": ["value"]}.items():
        for col in cols:
            for (cell,) in con.execute(f"SELECT {col} FROM {table}"):
                if cell is None:
                    continue
                assert isinstance(cell, str), f"{table}.{col} holds {type(cell).__name__}, not JSON text"
                json.loads(cell)  # Python's json accepts the NaN/Infinity tokens the storage writes
                checked += 1
    for (blob_count,) in con.execute("SELECT count(*) FROM dse_trials WHERE typeof(params) = 'blob' OR typeof(metrics) = 'blob'"):
        assert blob_count == 0
    con.close()
    assert checked > 80
    assert b"\x80\x04\x95" not in db.read_bytes() and b"\x80\x05\x95" not in db.read_bytes()  # pickle protocol 4/5 frames


HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('PWNED', 'w')",
    "(lambda: __import__('os'))()",
    "width.__class__",
    "eval('1')",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_constraints_are_refused_at_definition(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(dse.ExpressionError):
        dse.Space(width=dse.Int(1, 4), constraints=[hostile])
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("hostile", HOSTILE[:3])
def test_a_tampered_stored_constraint_is_refused_on_load(hostile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "t.db"
    dse.create_study("tamper", make_space(), OBJECTIVES, storage=f"sqlite:///{db}")
    con = sqlite3.connect(db)
    meta = json.loads(con.execute("SELECT meta FROM dse_studies WHERE name = 'tamper'").fetchone()[0])
    meta["space"]["constraints"] = [hostile]
    con.execute("UPDATE dse_studies SET meta = ? WHERE name = 'tamper'", (json.dumps(meta),))
    con.commit()
    con.close()
    with pytest.raises(dse.ExpressionError):
        dse.load_study("tamper", storage=f"sqlite:///{db}")
    assert not (tmp_path / "PWNED").exists()
