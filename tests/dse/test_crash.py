"""Crash safety: a sweep SIGKILLed at 10 seeded random moments and resumed loses and duplicates nothing."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import dse
from dse.study import ABORTED
from tests.helpers import HELPERS, ROOT
from tests.helpers.crash_child import TRIAL_S, metrics

CHILD = HELPERS / "crash_child.py"


def _start(url: str, total: int, optimizer: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(CHILD), url, str(total), optimizer],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow   # over 20 s on a 2-core machine (CI runs it; -m 'not slow' skips it locally)
@pytest.mark.parametrize("optimizer", ["random", "nsga2"])
def test_sigkill_at_random_moments_then_resume(tmp_path, optimizer):
    db = tmp_path / "crash.db"
    url = f"sqlite:///{db}"
    total = 600
    rng = random.Random(1234)
    kills, windows, longest_s = 0, 10, 0.6
    assert total * TRIAL_S > windows * longest_s    # the sweep outlasts every kill window, however fast the machine
    for _ in range(windows):
        proc = _start(url, total, optimizer)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.05, longest_s))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    assert kills == windows  # the sweep was really interrupted every time
    proc = _start(url, total, optimizer)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "done" in out

    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    t = dse.load_study("crash", storage=url).trials
    assert t["number"].is_unique and t["number"].tolist() == list(range(len(t)))
    assert (t["state"] != "running").all()
    aborted = t["error"].fillna("").str.startswith(ABORTED)
    counted = t[~aborted]
    assert len(counted) == total                       # the final count is exact
    complete = t[t["state"] == "complete"]
    assert len(complete) == total                      # this objective never fails on its own
    names = ["a", "b", "c"]
    assert not complete[names].duplicated().any()      # no configuration evaluated twice
    for row in complete.itertuples():                  # every completed trial kept its own metrics
        m = metrics(row.a, row.b, row.c)
        assert row.f1 == pytest.approx(m["f1"]) and row.f2 == pytest.approx(m["f2"])
    # trials that were running at a kill were marked failed and their configurations evaluated again
    if aborted.any():
        retried = t[aborted][names].merge(complete[names], on=names, how="left", indicator=True)
        assert (retried["_merge"] == "both").all()
