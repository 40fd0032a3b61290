"""dse.dashboard: a real optuna-dashboard over a real Optuna SQLite storage, on loopback, fetched over HTTP."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import optuna
import pytest

from dse import dashboard
from dse.errors import DSEError, StorageError, StudyError
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory) -> str:
    """A SQLite Optuna storage holding one small two-objective study ('toy', 8 trials)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"
    study = optuna.create_study(study_name="toy", storage=url, directions=["minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("n", 1, 8) * 1.5), n_trials=8)
    return url


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.status, r.read()


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets LISTENing on `port`, from /proc/net/tcp{,6} (hex, as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


LOOPBACK_V4 = "0100007F"  # 127.0.0.1 in /proc/net/tcp's byte order


def test_serve_fetch_and_stop(storage_url):
    with dashboard.serve(storage_url) as h:
        assert h.host == "127.0.0.1" and h.port > 0 and h.url == f"http://127.0.0.1:{h.port}/dashboard"
        assert h.running
        status, body = get(h.url)
        assert status == 200 and b"<title>Optuna Dashboard</title>" in body
        status, body = get(f"http://127.0.0.1:{h.port}/api/studies")
        summaries = json.loads(body)["study_summaries"]
        assert status == 200 and [s["study_name"] for s in summaries] == ["toy"]
        status, body = get(f"http://127.0.0.1:{h.port}/api/studies/{summaries[0]['study_id']}")
        detail = json.loads(body)
        assert len(detail["trials"]) == 8 and detail["directions"] == ["minimize", "maximize"]
        assert {p["name"] for p in detail["union_search_space"]} == {"x", "n"}
        if os.path.exists("/proc/net/tcp"):
            assert listening_addresses(h.port) == {LOOPBACK_V4}, "listens on 127.0.0.1 only"
    assert not h.running
    with pytest.raises(urllib.error.URLError):
        get(h.url)
    h.stop()  # idempotent


def test_non_loopback_host_warns_and_is_seen_listening_everywhere(storage_url):
    """Control for the loopback check above: binding 0.0.0.0 (only when asked) shows up as such."""
    with pytest.warns(UserWarning, match="no authentication"):
        h = dashboard.serve(storage_url, host="0.0.0.0")
    try:
        if os.path.exists("/proc/net/tcp"):
            assert listening_addresses(h.port) == {"00000000"}
        assert get(f"http://127.0.0.1:{h.port}/api/studies")[0] == 200
    finally:
        h.stop()


def test_serve_an_in_memory_storage_object():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="mem", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with dashboard.serve(storage) as h:
        summaries = json.loads(get(f"http://127.0.0.1:{h.port}/api/studies")[1])["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["mem"]


def test_bad_input(tmp_path, storage_url):
    missing = tmp_path / "nope.db"
    with pytest.raises(StorageError, match=r"no SQLite database at '.*nope\.db'"):
        dashboard.serve(f"sqlite:///{missing}")
    assert not missing.exists(), "an empty database must not be created"
    with pytest.raises(StorageError, match="SQLAlchemy URL"):
        dashboard.serve("studies/toy.db")
    with pytest.raises(StorageError, match="names no SQLite file"):
        dashboard.serve("sqlite://")
    with pytest.raises(StorageError, match="names no SQLite file"):
        dashboard.serve("sqlite+pysqlite:///:memory:")
    # an unparseable URL is refused here by name, not later inside Optuna
    with pytest.raises(StorageError, match=r"cannot parse storage URL 'not valid://x'"):
        dashboard.serve("not valid://x")
    with pytest.raises(StudyError, match=r"port must be an integer in 0\.\.65535.*70000"):
        dashboard.serve(storage_url, port=70000)
    with pytest.raises(StudyError, match="host"):
        dashboard.serve(storage_url, host="")
    with dashboard.serve(storage_url) as h:
        with pytest.raises(DSEError, match=f"cannot listen on 127.0.0.1:{h.port}"):
            dashboard.serve(storage_url, port=h.port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_blocks_until_interrupted(storage_url):
    """The CLI's blocking variant in its own process: announces the URL (as the CLI does, with print), serves, and
    exits cleanly on Ctrl-C."""
    port = free_port()
    code = f"from dse.dashboard import run; run({storage_url!r}, port={port}, announce=print)"
    # a runner that started us in the background leaves SIGINT ignored; the child must see Ctrl-C as a user would
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/dashboard" in line, line + proc.stderr.read()
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = get(f"http://127.0.0.1:{port}/api/studies")
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "dashboard did not answer"
                time.sleep(0.1)
        assert status == 200 and b'"toy"' in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
