"""Security: stored studies hold JSON only, and a tampered stored constraint is refused, never executed."""
import json
import sqlite3

import pytest

import dse
from tests.conftest import OBJECTIVES, make_space, toy


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
    # finished trials live in column blocks: a JSON header, then exactly the raw numeric arrays it declares
    blocks = 0
    for (data,) in con.execute("SELECT data FROM dse_trial_blocks"):
        data = bytes(data)
        assert data.startswith(b"DSEB1\n"), "a block that is not dse's block format"
        size = int.from_bytes(data[6:14], "little")
        header = json.loads(data[14:14 + size])
        kinds = {c[2] for c in header["columns"]}
        assert kinds <= {"f8", "i8", "b1", "str", "json", "const"}, kinds
        assert 14 + size + sum(c[4] + c[5] for c in header["columns"]) == len(data)  # nothing else in the cell
        blocks += 1
        checked += 1
    con.close()
    assert blocks >= 1 and checked >= 4
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
