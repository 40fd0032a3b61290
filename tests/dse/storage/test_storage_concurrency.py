"""Several real processes on one SQLite file, and SIGKILL of a writer mid-stream (crash safety)."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dse.storage import open_storage
from tests.helpers import ROOT

# A worker process: waits for GO, opens the (possibly not yet created) database, races to create the study,
# then reserves and finishes batches. It logs each step AFTER it returns, flushed, so the parent knows what was
# committed: "created", "reserved FIRST N", "finished N", "added FIRST N", and "intent KIND N" before each write.
WORKER = r"""
import random, sys, time, os
from dse.errors import StudyError
from dse.storage import SQLStorage
url, study, seed, n_total, go, busy = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
worker = f"test:{os.getpid()}:{seed}"
print("ready", flush=True)
t0 = time.monotonic()
while not os.path.exists(go):
    if time.monotonic() - t0 > 600:
        sys.exit("no GO after 600 s")
    time.sleep(0.005)
st = SQLStorage(url, busy_timeout_s=busy)
try:
    sid = st.create_study(study, {"by": worker})
    print("created", flush=True)
except StudyError:
    sid = st.get_study(study)["id"]
rng = random.Random(seed)
done = 0
while n_total < 0 or done < n_total:
    n = rng.randint(1, 60 if n_total > 0 else 400)
    if n_total > 0:
        n = min(n, n_total - done)
    xs = [rng.random() for _ in range(n)]
    if rng.random() < 0.2:
        print("intent add", n, flush=True)
        nums = st.add_trials(sid, [{"params": {"x": x}, "state": "complete", "metrics": {"y": 2 * x}, "feasible": True,
                                    "finished_at": time.time(), "duration_s": 0.0} for x in xs], worker)
        print("added", nums[0], n, flush=True)
    else:
        print("intent reserve", n, flush=True)
        nums = st.reserve_trials(sid, [{"x": x} for x in xs], worker)
        assert nums == list(range(nums[0], nums[0] + n)), nums
        print("reserved", nums[0], n, flush=True)
        if rng.random() < 0.5:
            st.load_trials(sid, min_number=max(0, nums[0] - 50))  # readers mixed with writers
        print("intent finish", n, flush=True)
        st.finish_trials(sid, [{"number": k, "state": "complete", "metrics": {"y": 2 * x}, "feasible": True,
                                "error": None, "finished_at": time.time(), "duration_s": 1e-6}
                               for k, x in zip(nums, xs)])
        print("finished", nums[0], n, flush=True)
    done += n
print("exit", flush=True)
"""


def _spawn(url: str, study: str, seed: int, n_total: int, go: Path, log: Path, busy_s: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, study, str(seed), str(n_total), str(go), str(busy_s)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )


def _wait_ready(logs: list[Path], procs: list[subprocess.Popen], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() and "ready" in p.read_text() for p in logs):
        for proc, log in zip(procs, logs):
            assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.02)


def _integrity(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def race_four_workers(url: str, tmp_path: Path, busy_s: list[float], timeout_s: float) -> list[str]:
    """4 worker processes x 500 trials of study "shared" started together on `url` (`busy_s`: each one's busy
    timeout): each exits cleanly; their logs. Exactly one of them created the study."""
    go = tmp_path / "go"
    logs = [tmp_path / f"w{i}.log" for i in range(4)]
    procs = [_spawn(url, "shared", seed=i, n_total=500, go=go, log=logs[i], busy_s=busy_s[i]) for i in range(4)]
    try:
        _wait_ready(logs, procs)
        go.touch()
        for proc, log in zip(procs, logs):
            assert proc.wait(timeout=timeout_s) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    texts = [log.read_text() for log in logs]
    assert sum(t.count("created") for t in texts) == 1, texts  # exactly one process created the study
    return texts


def check_the_raced_study(url: str) -> None:
    """The study the 4 workers of `race_four_workers` shared: 2,000 complete trials, each result on its own."""
    st = open_storage(url)
    sid = st.get_study("shared")["id"]
    df = st.load_trials(sid)
    assert len(df) == 2000 and st.count_trials(sid) == 2000
    assert df["number"].tolist() == list(range(2000))  # unique, contiguous, from 0
    assert (df["state"] == "complete").all()
    assert df["worker"].value_counts().tolist() == [500] * 4
    assert all(m["y"] == 2 * p["x"] for p, m in zip(df["params"], df["metrics"]))  # each result on its own trial
    st.close()


def test_four_processes_one_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"  # does not exist yet: the 4 processes race to create the schema and the study
    url = f"sqlite:///{db}"
    # two with the default busy timeout, two with 1 ms: SQLite gives up at once and our retry loop does the work
    texts = race_four_workers(url, tmp_path, [0.001, 30.0, 0.001, 30.0], timeout_s=240)
    assert all("exit" in t and "Error" not in t for t in texts), texts
    check_the_raced_study(url)
    assert _integrity(db) == "ok"


def _committed(log: str) -> tuple[int, int, int, int]:
    """From a killed worker's log: (rows committed, rows of the write in flight, complete rows, finish in flight).
    Only whole lines count: SIGKILL can land while a line is half written ("intent add" without its count), and a
    worker whose intent line is unfinished has not started that write."""
    rows = complete = 0
    pending_rows = pending_finish = 0
    for line in log.split("\n")[:-1]:
        kind, *rest = line.split()
        if kind == "intent":
            n = int(rest[1])
            pending_rows, pending_finish = (n, 0) if rest[0] in ("add", "reserve") else (0, n)
        elif kind in ("reserved", "added"):
            rows += int(rest[1])
            complete += int(rest[1]) if kind == "added" else 0
            pending_rows = 0
        elif kind == "finished":
            complete += int(rest[1])
            pending_finish = 0
    return rows, pending_rows, complete, pending_finish


def test_sigkill_mid_stream_keeps_file_consistent(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    url = f"sqlite:///{db}"
    rng = random.Random(20240607)
    total_rows = total_complete = 0
    rounds = 6
    gos = [tmp_path / f"go{r}" for r in range(rounds)]
    logs = [tmp_path / f"crash{r}.log" for r in range(rounds)]
    # all start (import) at once; each waits for its own GO and then writes until it is killed
    procs = [_spawn(url, "crash", seed=100 + r, n_total=-1, go=gos[r], log=logs[r], busy_s=30.0) for r in range(rounds)]
    try:
        for go, log, proc in zip(gos, logs, procs):
            _wait_ready([log], [proc])
            go.touch()
            while "intent" not in log.read_text():  # opened and writing
                assert proc.poll() is None, log.read_text()
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, log.read_text()
            rows, pending_rows, complete, pending_finish = _committed(log.read_text())

            assert _integrity(db) == "ok"
            st = open_storage(url)
            sid = st.get_study("crash")["id"]
            df = st.load_trials(sid)
            n = len(df)
            # A transaction is all or nothing: either the write in flight committed entirely or not at all.
            assert n in (total_rows + rows, total_rows + rows + pending_rows), (n, total_rows, rows, pending_rows)
            assert df["number"].tolist() == list(range(n))  # no duplicate and no gap
            done = df[df["state"] == "complete"]
            assert len(done) in (total_complete + complete, total_complete + complete + pending_finish + pending_rows)
            assert all(m["y"] == 2 * p["x"] for p, m in zip(done["params"], done["metrics"]))
            # resume: what the dead worker left running is failed and handed back for a retry
            left = st.fail_running(sid, reason="worker killed")
            assert len(left) == n - len(done) - (total_rows - total_complete)
            assert st.count_trials(sid, ["running"]) == 0
            total_rows, total_complete = n, len(done)
            st.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert total_rows > 0
