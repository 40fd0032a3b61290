"""Crash safety: a sweep SIGKILLed at 10 seeded random moments and resumed loses and duplicates nothing."""
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dse
from dse.study import ABORTED
from tests.helpers import HELPERS, ROOT
from tests.helpers.crash_child import TRIAL_S, metrics

CHILD = HELPERS / "crash_child.py"


class _Sweeps:
    """crash_child.py's server: each `start` forks one sweep (a process of its own, its pid returned once its study
    is open), each `finish` reads what that sweep printed and how it ended (`exit CODE`: -9 when SIGKILLed)."""

    def __init__(self, folder: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.err = folder / "sweeps.err"
        with open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, str(CHILD), "serve"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=env)

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        assert line, f"the sweep server ended: {self.err.read_text()}"
        return line.strip()

    def start(self, url: str, total: int, optimizer: str) -> int:
        self.proc.stdin.write(f"{url} {total} {optimizer}\n")
        self.proc.stdin.flush()
        ready, pid = self._line().split()
        assert ready == "ready", self.err.read_text()
        return int(pid)

    def finish(self) -> tuple[list[str], int]:
        out = []
        while not (line := self._line()).startswith("exit "):
            out.append(line)
        return out, int(line.split()[1])

    def close(self) -> int:
        """Stop the server (its sweep over or killed); its exit code."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def sweeps(tmp_path):
    s = _Sweeps(tmp_path)
    yield s
    s.close()


@pytest.mark.slow   # ~12 s on a 2-core machine (CI runs it; -m 'not slow' skips it locally)
@pytest.mark.timeout(300)   # a hang guard (a sweep that never prints again), as the processes' own timeouts were
@pytest.mark.parametrize("optimizer", ["random", "nsga2"])
def test_sigkill_at_random_moments_then_resume(tmp_path, optimizer, sweeps):
    db = tmp_path / "crash.db"
    url = f"sqlite:///{db}"
    total = 600
    rng = random.Random(1234)
    kills, windows, longest_s = 0, 10, 0.6
    assert total * TRIAL_S > windows * longest_s    # the sweep outlasts every kill window, however fast the machine
    for _ in range(windows):
        pid = sweeps.start(url, total, optimizer)
        time.sleep(rng.uniform(0.05, longest_s))
        with contextlib.suppress(ProcessLookupError):    # a sweep already over (and reaped) has no process
            os.kill(pid, signal.SIGKILL)
        out, code = sweeps.finish()
        kills += code == -signal.SIGKILL and "done" not in out
    assert kills == windows  # the sweep was really interrupted every time
    sweeps.start(url, total, optimizer)
    out, code = sweeps.finish()
    assert code == 0 and sweeps.close() == 0, sweeps.err.read_text()
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
