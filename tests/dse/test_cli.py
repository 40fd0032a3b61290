"""The dse command line: every command on a real study, and one-line errors with a non-zero exit code."""
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from dse import cli
from tests.helpers import HELPERS

STUDY_FILE = HELPERS / "worker_study.py"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A small study run through `dse run` (in-process) into a temporary SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'cli.db'}"
    assert cli.main(["run", str(STUDY_FILE), "--storage", url, "--n-trials", "60", "--no-progress", "--no-report"]) == 0
    return url


def test_run_prints_the_front_as_a_table(shared, capsys):
    assert cli.main(["run", str(STUDY_FILE), "--storage", shared, "--n-trials", "80", "--no-progress", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "study 'shared': 80 complete" in out
    assert "f1" in out and "f2" in out and "number" in out


def test_list_and_show(shared, capsys):
    assert cli.main(["list", "--storage", shared]) == 0
    assert "shared" in capsys.readouterr().out
    assert cli.main(["show", "shared", "--storage", shared]) == 0
    out = capsys.readouterr().out
    assert "objectives: {'f1': 'min', 'f2': 'min'}" in out and "front" in out
    assert cli.main(["show", "shared", "--storage", shared, "--json"]) == 0
    assert '"n_complete"' in capsys.readouterr().out


@pytest.mark.parametrize("fmt, ext", [("csv", "csv"), ("parquet", "parquet"), ("netcdf", "nc")])
def test_export(shared, tmp_path, fmt, ext, capsys):
    out = tmp_path / f"x.{ext}"
    assert cli.main(["export", "shared", "--storage", shared, "--format", fmt, "-o", str(out)]) == 0
    assert out.exists() and out.stat().st_size > 0
    if fmt == "csv":
        assert len(pd.read_csv(out)) >= 60


@pytest.mark.parametrize("layout", ["trials", "grid"])
def test_export_netcdf_layout(shared, tmp_path, layout):
    import xarray as xr

    out = tmp_path / f"{layout}.nc"
    assert cli.main(["export", "shared", "--storage", shared, "--format", "netcdf", "--layout", layout,
                     "-o", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds.attrs["layout"] == layout
        if layout == "trials":
            assert set(ds.sizes) == {"trial"} and ds.sizes["trial"] >= 60
        else:   # one dimension per parameter
            assert "trial" not in ds.sizes and len(ds.sizes) >= 2


@pytest.mark.parametrize("name", ["front.html", "front.png"])
def test_plot(shared, tmp_path, name):
    out = tmp_path / name
    assert cli.main(["plot", "shared", "--storage", shared, "--x", "f1", "--y", "f2", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") if name.endswith(".png") else b"plotly" in data.lower()


def test_report(shared, tmp_path):
    out = tmp_path / "r.html"
    assert cli.main(["report", "shared", "--storage", shared, "-o", str(out)]) == 0
    assert out.stat().st_size > 100_000  # plotly.js is inlined: the file works offline
    # the study file `dse run` ran is found (worker_study.py: its objective provides no sections)
    assert "objective-section" not in out.read_text(encoding="utf-8")


def test_report_by_name_holds_the_sections_of_the_study_file_that_ran_it(tmp_path, monkeypatch, capsys):
    """`dse report NAME --storage ...` (the README's form) left out the sections the objective provides, which
    `dse run` and `dse report FILE.py` include: the study file `dse run` ran is recorded with the study and read
    back (the engine knows no domain: the sections still come from the objective's ``report_sections``); a file
    edited to evaluate otherwise gives none, said on stderr; without a file found, a note says how to give one."""
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "sections.py"
    text = STUDY_FILE.read_text().replace('name="shared"', 'name="sect"') + (
        "\nevaluate.report_sections = lambda s: [('From the objective', "
        "f'<p id=\"n\">{len(s.pareto())} on the front</p>')]\n")
    f.write_text(text)
    db = tmp_path / "elsewhere.db"
    assert cli.main(["run", str(f), "--storage", str(db), "--n-trials", "40", "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    out = tmp_path / "r.html"
    assert cli.main(["report", "sect", "--storage", str(db), "-o", str(out)]) == 0
    assert "<h2>From the objective</h2>" in out.read_text(encoding="utf-8")
    # the file moved: no sections, and a note naming --study-file, which gives them back
    moved = tmp_path / "moved.py"
    f.rename(moved)
    assert cli.main(["report", "sect", "--storage", str(db), "-o", str(out)]) == 0
    assert "--study-file" in capsys.readouterr().err and "From the objective" not in out.read_text(encoding="utf-8")
    assert cli.main(["report", "sect", "--storage", str(db), "--study-file", str(moved), "-o", str(out)]) == 0
    assert "<h2>From the objective</h2>" in out.read_text(encoding="utf-8")
    # a study file of another study is refused by name
    assert cli.main(["report", "sect", "--storage", str(db), "--study-file", str(STUDY_FILE), "-o", str(out)]) == 2
    assert "defines study 'shared', not 'sect'" in capsys.readouterr().err


def test_a_study_is_found_where_dse_run_wrote_it(tmp_path, monkeypatch, capsys):
    """`dse run mystudy.py` writes ./mystudy.db, but `dse show mystudy` looked in studies/mystudy.db and `dse show
    mystudy.db` in studies/mystudy.db.db: a name is looked up in the current folder first, then studies/; a .db
    path is that file; not found, the error names the places looked in."""
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "mine.py"
    f.write_text(STUDY_FILE.read_text().replace('name="shared"', 'name="mine"'))
    assert cli.main(["run", str(f), "--n-trials", "20", "--no-progress", "--no-report"]) == 0
    assert (tmp_path / "mine.db").is_file() and not (tmp_path / "studies").exists()
    capsys.readouterr()
    for name in ("mine", "mine.db", "./mine.db", str(tmp_path / "mine.db")):
        assert cli.main(["show", name]) == 0, name
        assert "study 'mine'" in capsys.readouterr().out
    assert cli.main(["export", "mine", "-o", str(tmp_path / "m.csv")]) == 0 and (tmp_path / "m.csv").is_file()
    assert cli.main(["list"]) == 0
    assert "mine.db (dse list --root .)" in capsys.readouterr().out
    import dse

    assert len(dse.load_study("mine").trials) == 20 and len(dse.load_study("mine.db").trials) == 20
    assert cli.main(["show", "other"]) == 2
    err = capsys.readouterr().err
    assert "no study database './other.db' or 'studies/other.db'" in err and "['mine']" in err
    assert cli.main(["show", "other.db"]) == 2
    assert "no study database 'other.db'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == \
        ["m.csv", "mine.db", "mine.py"]   # nothing created


def test_ctrl_c_in_dse_run_says_the_command_that_resumes(tmp_path, caplog, capsys):
    """Ctrl-C in `dse run` logged "run optimize() again to continue", the API's words: the command line says its
    own command; the API keeps its wording."""
    import logging

    import dse

    f = tmp_path / "stop.py"
    f.write_text(STUDY_FILE.read_text().replace('name="shared"', 'name="stop"') + (
        "\n_calls = []\n_plain = evaluate\n\n\ndef evaluate(config):\n    _calls.append(1)\n"
        "    if len(_calls) > 5:\n        raise KeyboardInterrupt\n    return _plain(config)\n\n\n"
        "study.evaluate = evaluate\n"))
    db = tmp_path / "stop.db"
    with caplog.at_level(logging.WARNING, logger="dse"):
        assert cli.main(["run", str(f), "--storage", str(db), "--n-trials", "40", "--no-progress",
                         "--no-report"]) == 0
    said = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert said == [f"interrupted: 'stop' keeps every finished trial; run `dse run {f} --storage {db}` to continue"]
    caplog.clear()
    study = dse.load_study("stop", storage=str(db))

    def stop(config):
        raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING, logger="dse"):
        study.optimize(stop, optimizer="random", n_trials=5, progress=False)
    assert [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()] == [
        "interrupted: 'stop' keeps every finished trial; run optimize() again to continue"]


def test_report_of_a_study_file_holds_its_objectives_sections(shared, tmp_path):
    """Given the study file, `dse report` has the objective, and shows the sections it provides (report_sections)."""
    f = tmp_path / "with_sections.py"
    f.write_text(STUDY_FILE.read_text() + "\nevaluate.report_sections = lambda s: [('From the objective', "
                 "f'<p id=\"n\">{len(s.pareto())} on the front</p>')]\n")
    out = tmp_path / "r.html"
    assert cli.main(["report", str(f), "--storage", shared, "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    from dse.study import load_study
    n = len(load_study("shared", storage=shared).pareto())
    assert f'<h2>From the objective</h2><p id="n">{n} on the front</p>' in text and n > 0


@pytest.mark.parametrize("argv, needle", [
    (["show", "nosuch"], "no study named 'nosuch'"),
    (["run", "missing_file.py"], "does not exist"),
    (["run", str(STUDY_FILE), "--optimizer", "annealing", "--n-trials", "5"], "annealing"),
    (["plot", "shared", "--x", "nosuchmetric"], "nosuchmetric"),
])
def test_errors_are_one_line_and_exit_non_zero(shared, argv, needle, capsys):
    argv = argv[:2] + ["--storage", shared] + argv[2:] if argv[0] in ("show", "plot", "run") else argv
    assert cli.main(argv + ["--no-progress"] if argv[0] == "run" else argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("dse: error")


def test_debug_shows_the_traceback(shared):
    with pytest.raises(Exception, match="no study named"):
        cli.main(["--debug", "show", "nosuch", "--storage", shared])


def test_console_entry_point_and_help():
    exe = shutil.which("dse", path=os.path.dirname(sys.executable)) or shutil.which("dse")
    assert exe, "the dse console script is not installed (pip install -e .)"
    r = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage: dse run" in r.stdout
    r = subprocess.run([exe, "show", "nosuch", "--storage", "sqlite:////nonexistent-dir/x.db"], capture_output=True, text=True, timeout=60)
    assert r.returncode == cli.EXIT_ERROR and r.stderr.startswith("dse: error") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", [[], ["run"], ["worker"], ["list"], ["show"], ["export"], ["plot"], ["report"], ["dashboard"]])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*cmd, "--help"])
    assert exc.value.code == 0 and "usage: dse" in capsys.readouterr().out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_command_serves_the_study_on_loopback(shared):
    import time
    import urllib.request

    exe = shutil.which("dse", path=os.path.dirname(sys.executable)) or shutil.which("dse")
    port = _free_port()
    proc = subprocess.Popen([exe, "dashboard", "shared", "--storage", shared, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and body is None:
            if proc.poll() is not None:
                pytest.fail(f"dse dashboard exited early: {proc.stdout.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None, "the dashboard never answered"
        assert '"shared"' in body                                  # the copied study is served
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=5) as r:
            assert r.status == 200 and "<html" in r.read().decode().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("argv", [["simulate"], ["capcity", "--gpu", "H100"], ["simulate", "--help"]])
def test_an_unknown_command_lists_every_command_and_the_closest(argv, monkeypatch, capsys):
    # argparse listed only the engine's own commands as the valid choices, not the plugin ones (capacity, deploy...)
    monkeypatch.setattr(cli, "plugin_commands", lambda: {"capacity": None, "deploy": None})
    assert cli.main(argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dse: error") and repr(argv[0]) in err
    for name in (*cli.COMMANDS, "capacity", "deploy"):
        assert name in err
    if argv[0] == "capcity":
        assert "did you mean 'capacity'" in err


def test_the_global_debug_flag_reaches_a_plugin_command(monkeypatch):
    # `dse --debug capacity ...` (the README's spelling: --debug shows tracebacks) said "invalid choice: 'capacity'"
    seen = []

    class Plugin:
        def load(self):
            return lambda argv: seen.append(list(argv)) or 0

    monkeypatch.setattr(cli, "plugin_commands", lambda: {"capacity": Plugin()})
    assert cli.main(["--debug", "capacity", "Llama", "--gpu", "H100"]) == 0
    assert seen == [["Llama", "--gpu", "H100", "--debug"]]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "netcdf"])
def test_export_onto_a_study_database_is_refused_and_the_study_kept(shared, tmp_path, fmt, capsys):
    # `dse export NAME --format csv -o studies/NAME.db` (-o for --storage) wrote the CSV over the SQLite file: the
    # study and every other one in that file were gone ("file is not a database")
    import sqlite3

    db = tmp_path / "copy.db"
    with sqlite3.connect(shared.removeprefix("sqlite:///")) as src, sqlite3.connect(db) as dst:
        src.backup(dst)               # the study's whole state (a file copy would miss its write-ahead log)
    before = db.read_bytes()
    assert cli.main(["export", "shared", "--storage", str(db), "--format", fmt, "-o", str(db)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "SQLite database" in err and str(db) in err and len(err.strip().splitlines()) == 1
    assert db.read_bytes() == before
    assert cli.main(["list", "--storage", str(db)]) == 0 and "shared" in capsys.readouterr().out


@pytest.mark.parametrize("ext, magic", [("csv", b"number,"), ("parquet", b"PAR1"), ("nc", b"\x89HDF")])
def test_export_format_follows_the_output_extension(shared, tmp_path, ext, magic):
    # `dse export NAME -o x.csv` (no --format) wrote Parquet bytes into x.csv: --format's default won over the
    # extension
    out = tmp_path / f"x.{ext}"
    assert cli.main(["export", "shared", "--storage", shared, "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


def test_export_format_contradicting_the_extension_is_refused(shared, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert cli.main(["export", "shared", "--storage", shared, "--format", "parquet", "-o", str(out)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "'parquet'" in err and "x.csv" in err and "csv" in err and not out.exists()
    # an extension that names no format leaves the choice to --format, and without one the message says what is valid
    assert cli.main(["export", "shared", "--storage", shared, "--format", "csv", "-o", str(tmp_path / "x.txt")]) == 0
    assert cli.main(["export", "shared", "--storage", shared, "-o", str(tmp_path / "y.txt")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "y.txt" in err and "--format" in err and ".parquet" in err


_EDITED_STUDY = '''
import dse

RATE = {rate}


@dse.vectorized(name="toy-serving", version=f"1+setup.{{RATE}}", inputs={{"setup": {{"rate": RATE}}}})
def evaluate(df):
    return df.assign(f1=df["b"] * RATE, f2=1.0 / df["b"])[["f1", "f2"]]


study = dse.StudySpec(name="edited", space=dse.Space(b=dse.Int(1, 20)), objectives={{"f1": "min", "f2": "min"}},
                      evaluate=evaluate, optimizer="grid", report=False)
'''


def test_run_refuses_a_study_file_whose_objective_changed(tmp_path, capsys):
    """A user edits the study file's workload (here RATE) and runs it again: `dse run` resumed the stored study,
    warned, and printed a front ranking numbers of both workloads. It stops with one line naming what changed and
    how to start fresh, leaving the stored trials as they were; another --storage starts fresh."""
    f = tmp_path / "edited.py"
    f.write_text(_EDITED_STUDY.format(rate=8))
    assert cli.main(["run", str(f), "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    f.write_text(_EDITED_STUDY.format(rate=12))
    assert cli.main(["run", str(f), "--no-progress", "--no-report"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "dse: error: study 'edited' holds 20 complete trials evaluated by toy-serving 1+setup.8" in err
    assert "inputs.setup.rate: 8 -> 12" in err and "another name" in err and "delete_study('edited'" in err
    import dse
    url = f"sqlite:///{tmp_path / 'edited.db'}"
    assert dse.load_study("edited", storage=url).trials["f1"].max() == 20 * 8       # kept as they were
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli.main(["run", str(f), "--storage", fresh, "--no-progress", "--no-report"]) == 0
    assert dse.load_study("edited", storage=fresh).trials["f1"].max() == 20 * 12


@pytest.mark.parametrize("argv", [["show", "nosuch"], ["export", "nosuch", "-o", "x.csv"], ["plot", "nosuch"],
                                  ["report", "nosuch", "-o", "r.html"], ["show", "s", "--storage", "typo.db"],
                                  ["show", "s", "--storage", "sqlite:///sub/typo.db"]])
def test_a_misspelt_study_leaves_no_database_behind(argv, tmp_path, monkeypatch, capsys):
    """`dse show nosuch` (export, plot, report; or a misspelt --storage file) opened the storage to look the study
    up, which created an empty 53 KB database (and a studies/ folder) under the typo, listed by `dse list` from
    then on. A SQLite file that does not exist holds no study: refused before it is opened, nothing created."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert cli.main(argv) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    name = argv[1]
    # without --storage, both places a name is looked up in (`dse.registry.locate_study`)
    path = "'./nosuch.db' or 'studies/nosuch.db'" if "--storage" not in argv else \
        repr(argv[-1].removeprefix("sqlite:///"))
    assert err.startswith(f"dse: error: no study named {name!r}: no study database {path} (nothing was created")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["sub"]


def test_delete_and_list_leave_no_database_behind(tmp_path, monkeypatch):
    """`delete_study` and `list_studies(storage=...)` opened a misspelt SQLite file, creating an empty database;
    like `load_study` they refuse a file that does not exist and create nothing."""
    import dse

    monkeypatch.chdir(tmp_path)
    with pytest.raises(dse.StudyError, match=r"no study named 'nosuch': no study database './nosuch.db' or "
                                             r"'studies/nosuch.db'"):
        dse.delete_study("nosuch")
    with pytest.raises(dse.StudyError, match=r"^no study database 'typo.db' \(nothing was created\)"):
        dse.list_studies(storage="typo.db")
    assert not (tmp_path / "typo.db").exists() and not (tmp_path / "studies" / "nosuch.db").exists()
