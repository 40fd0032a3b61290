"""Objective failures that are not Python exceptions: a worker process that dies, a hang, Ctrl-C."""
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dse
from tests.helpers import ROOT


def _dies_on_seven(config):
    if config["b"] == 7:
        os._exit(3)  # the worker process dies without a Python exception
    return {"f": float(config["b"])}


def test_a_worker_process_that_dies_fails_only_its_trial(tmp_path):
    space = dse.Space(b=dse.Int(1, 12))
    study = dse.create_study("dies", space, {"f": "min"}, storage=f"sqlite:///{tmp_path/'d.db'}")
    study.optimize(_dies_on_seven, optimizer="grid", n_jobs=2, backend="loky", progress=False)
    t = study.trials.set_index("b")
    assert t.loc[7, "state"] == "failed" and "worker process died" in t.loc[7, "error"]
    assert (t.drop(index=7)["state"] == "complete").all() and len(t) == 12


def _hangs_on_three(config, woke: str):
    if config["b"] == 3:
        time.sleep(60)
        Path(woke).touch()   # only if the hang ran its course: the timeout did not stop it
    return {"f": float(config["b"])}


def test_a_hang_past_the_trial_timeout_fails_that_trial_in_a_process_pool(tmp_path):
    space = dse.Space(b=dse.Int(1, 6))
    study = dse.create_study("hang", space, {"f": "min"}, storage=f"sqlite:///{tmp_path/'h.db'}")
    woke = tmp_path / "woke"
    study.optimize(functools.partial(_hangs_on_three, woke=str(woke)), optimizer="grid", n_jobs=2,
                   trial_timeout=1.0, progress=False)
    assert not woke.exists(), "the run waited for the hung trial to finish"
    t = study.trials.set_index("b")
    assert t.loc[3, "state"] == "failed" and "timeout" in t.loc[3, "error"]
    assert (t.drop(index=3)["state"] == "complete").all()


CTRL_C_CHILD = """
import sys, time, dse
def f(c):
    time.sleep(0.01)
    return {"f": float(c["b"])}
s = dse.create_study("ctrlc", dse.Space(b=dse.Int(1, 100000)), {"f": "min"}, storage=sys.argv[1])
s.optimize(f, optimizer="random", n_trials=10, batch_size=10, seed=1, progress=False)  # imports done before Ctrl-C
print("ready", flush=True)
s.optimize(f, optimizer="random", n_trials=100000, batch_size=10, seed=0, progress=False)
print("returned", flush=True)
"""


def test_ctrl_c_stops_cleanly_and_keeps_every_finished_trial(tmp_path):
    url = f"sqlite:///{tmp_path/'c.db'}"
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    root = ROOT
    # a runner that started us in the background leaves SIGINT ignored; the child must see Ctrl-C as a user would
    p = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert "returned" in out, err       # optimize() returned normally after Ctrl-C
    assert "interrupted" in err         # logged (logger "dse.study", WARNING; stderr without a handler)
    t = dse.load_study("ctrlc", storage=url).trials
    assert (t["state"] != "running").all()
    complete = t[t["state"] == "complete"]
    assert len(complete) >= 20 and (complete["f"] == complete["b"]).all()
    # the batch in flight, if any, is marked aborted (retried by the next optimize), never lost or left running
    assert t.loc[t["state"] == "failed", "error"].str.startswith(dse.study.ABORTED).all()
