"""The ``dse`` command line: run, worker, list, show, export, plot, report, dashboard.

Errors are one clear line on stderr and a non-zero exit code; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

EXIT_ERROR = 2


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage", default=None,
        help="SQLAlchemy URL (sqlite:///path.db, postgresql://user@host/db) or a .db path; "
             "default: the SQLite file studies/<NAME>.db (for run/worker: <NAME>.db beside the study file)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dse", description="Design-space exploration for ML systems.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) the study defined in a study file and print its Pareto front")
    run.add_argument("file", help="a .py file defining `study = dse.StudySpec(...)`")
    _storage_arg(run)
    run.add_argument("--n-trials", type=int, default=None, help="total trials the study should hold (default: the file's)")
    run.add_argument("--optimizer", default=None, help="override the file's optimizer (auto, nsga2, nsga3, tpe, gp, random, grid)")
    run.add_argument("--n-jobs", type=int, default=None, help="parallel workers (-1: all cores)")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--timeout", type=float, default=None, help="wall-clock budget, s")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    run.add_argument("--all", action="store_true", help="print the whole front")

    worker = sub.add_parser("worker", help="join a study from another process or machine (shared --storage)")
    worker.add_argument("file")
    _storage_arg(worker)
    worker.add_argument("--n-trials", type=int, default=None,
                        help="trials this worker runs (default: work until the study holds the file's total)")
    worker.add_argument("--n-jobs", type=int, default=None)
    worker.add_argument("--seed", type=int, default=None, help="seed for this worker (default: derived from the process)")
    worker.add_argument("--timeout", type=float, default=None)
    worker.add_argument("--no-progress", action="store_true")

    lst = sub.add_parser("list", help="list studies")
    _storage_arg(lst)
    lst.add_argument("--root", default="studies", help="folder searched for SQLite study files when --storage is not given")

    show = sub.add_parser("show", help="summary and Pareto front of a study")
    show.add_argument("name")
    _storage_arg(show)
    show.add_argument("--all", action="store_true", help="print the whole front")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")

    exp = sub.add_parser("export", help="export trials (or full grid results) to Parquet, CSV or netCDF")
    exp.add_argument("name")
    _storage_arg(exp)
    exp.add_argument("--format", choices=["parquet", "csv", "netcdf"], default=None,
                     help="default: from the -o extension (.parquet, .csv, .nc), else parquet")
    exp.add_argument("--layout", choices=["auto", "grid", "trials"], default="auto",
                     help="netCDF only: one dimension per parameter (grid), one 'trial' dimension (trials), or the "
                          "grid when its cells are mostly filled (auto)")
    exp.add_argument("-o", "--output", default=None, help="output path (default: <name>.<ext> in the current folder)")

    plot = sub.add_parser("plot", help="plot the Pareto front (HTML with plotly, PNG with matplotlib)")
    plot.add_argument("name")
    _storage_arg(plot)
    plot.add_argument("--x", default=None)
    plot.add_argument("--y", default=None)
    plot.add_argument("--z", default=None)
    plot.add_argument("--kind", choices=["front", "parallel"], default="front")
    plot.add_argument("-o", "--output", default=None, help="output .html or .png (default: <name>-<kind>.html)")

    rep = sub.add_parser("report", help="write a self-contained offline HTML report")
    rep.add_argument("name", help="the study's name, or its study file (.py); the report holds the sections its "
                                  "objective provides (report_sections) where the study file is found: the one "
                                  "`dse run` ran, or --study-file")
    _storage_arg(rep)
    rep.add_argument("--study-file", default=None, help="the study file whose objective gives the report's own "
                     "sections (default: the file `dse run` ran, else <NAME>.py beside the database, here or under "
                     "studies/)")
    rep.add_argument("-o", "--output", default=None, help="output .html (default: <name>-report.html)")

    dash = sub.add_parser("dashboard", help="open the study in optuna-dashboard (copied into an Optuna storage)")
    dash.add_argument("name")
    _storage_arg(dash)
    dash.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8080)
    dash.add_argument("--optuna-storage", default=None, help="keep the Optuna copy in this URL (default: in memory)")
    return parser


def _load(args):
    from .study import load_study

    return load_study(args.name, storage=args.storage)


def cmd_run(args, worker: bool = False) -> int:
    from .spec import front_table, load_study_file

    spec = load_study_file(args.file)
    seed = args.seed
    if worker and seed is None:
        import os

        seed = (spec.seed or 0) * 1_000_003 + os.getpid()
    t0 = time.perf_counter()
    again = f"dse {'worker' if worker else 'run'} {args.file}" + (f" --storage {args.storage}" if args.storage else "")
    study = spec.run(
        args.storage, n_trials=args.n_trials, progress=False if args.no_progress else None,
        n_jobs=args.n_jobs, optimizer=getattr(args, "optimizer", None), seed=seed, timeout=args.timeout, worker=worker,
        resume=f"run `{again}`",
    )
    elapsed = time.perf_counter() - t0
    s = study.summary()
    print(f"study {s['name']!r}: {s['n_complete']} complete, {s['n_failed']} failed, {s['n_feasible']} feasible; "
          f"front of {s['front_size']} in {elapsed:.1f} s  [{s['storage']}]")
    if worker:
        return 0
    print(front_table(study, spec.show, limit=None if args.all else 40))
    if spec.report and not args.no_report and s["front_size"]:
        from . import report

        out = (spec.path.resolve().parent if spec.path else Path.cwd()) / f"{spec.name}.html"
        report.write(study.view(), out, sections=report.objective_sections(spec.evaluate, study))
        print(f"report: {out}")
    return 0


def cmd_list(args) -> int:
    import pandas as pd

    from .study import list_studies

    df = list_studies(args.storage, root=args.root)
    here = sorted(p.name for p in Path.cwd().glob("*.db")) if args.storage is None and \
        Path(args.root).resolve() != Path.cwd().resolve() else []
    also = f"; database files in this folder (where `dse run` writes them): {', '.join(here)} (dse list --root .)" \
        if here else ""
    if df.empty:
        print("no studies" + ("" if args.storage else f" under {args.root}/") + also)
        return 0
    for c in ("created_at", "updated_at"):
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], unit="s", errors="coerce").dt.strftime("%Y-%m-%d %H:%M")
    print(df.to_string(index=False))
    if also:
        print(also.removeprefix("; "))
    return 0


def cmd_show(args) -> int:
    from .spec import front_table

    study = _load(args)
    s = study.summary()
    if args.json:
        print(json.dumps(s, indent=2, default=str))
        return 0
    meta = study.meta
    print(f"study {s['name']!r}  [{s['storage']}]")
    print(f"  objectives: {s['objectives']}" + (f"  constraints: {s['constraints']}" if s["constraints"] else ""))
    print(f"  optimizer: {meta.get('optimizer')} seed={meta.get('seed')}  objective: {(meta.get('objective') or {}).get('name')}")
    for key, val in ((meta.get("objective") or {}).get("inputs") or {}).items():   # files the numbers depend on
        shown = ", ".join(f"{k}={v}" for k, v in val.items()) if isinstance(val, dict) else str(val)
        print(f"  input {key}: {shown}")
    print(f"  trials: {s['n_trials']} ({s['n_complete']} complete, {s['n_failed']} failed, {s['n_running']} running), "
          f"{s['n_feasible']} feasible, front {s['front_size']}")
    if "grid" in s:
        g = s["grid"]
        print(f"  grid: {g.get('n_points')} points in the space (those its rules exclude included)")
    print(front_table(study, limit=None if args.all else 40))
    return 0


def cmd_export(args) -> int:
    study = _load(args)
    ext = {"parquet": "parquet", "csv": "csv", "netcdf": "nc"}[args.format or "parquet"]
    out = study.export(args.output or f"{study.name}.{ext}", format=args.format, layout=args.layout)
    print(out)
    return 0


def cmd_plot(args) -> int:
    from . import plot

    study = _load(args)
    out = Path(args.output or f"{study.name}-{args.kind}.html")
    backend: Literal["plotly", "matplotlib"] = "matplotlib" if out.suffix.lower() == ".png" else "plotly"
    view = study.view()
    if args.kind == "front":
        fig = plot.front(view, args.x, args.y, args.z, backend=backend)
    else:
        fig = plot.parallel(view, backend=backend)
    plot.save(fig, out)
    print(out)
    return 0


def cmd_report(args) -> int:
    from . import report
    from .spec import StudySpec, load_study_file, study_file_of
    from .study import load_study

    spec: StudySpec | None
    if args.name.endswith(".py"):   # a study file: its study, and its objective's own sections
        spec = load_study_file(args.name)
        study = load_study(spec.name, storage=args.storage or spec.default_storage())
    else:
        study = _load(args)
        # the objective's own sections come from the study file that ran it (the engine knows no domain)
        f = Path(args.study_file) if args.study_file else study_file_of(study)
        spec = None if f is None else load_study_file(f)
        if spec is not None and spec.name != study.name:
            if args.study_file:
                raise ValueError(f"study file {str(f)!r} defines study {spec.name!r}, not {study.name!r}")
            spec = None
        if spec is not None and (changed := _objective_changed(study, spec)):
            print(f"note: study file {str(f)!r} evaluates otherwise than study {study.name!r} was run ({changed}): "
                  f"the report has no sections of its objective", file=sys.stderr)
            return _write_report(report, study, args, [])
        if spec is None:
            print(f"note: no study file of {study.name!r} found (the one `dse run` ran, or {study.name}.py beside "
                  f"the database): the report has no sections of its objective; pass --study-file", file=sys.stderr)
    return _write_report(report, study, args, [] if spec is None else report.objective_sections(spec.evaluate, study))


def _write_report(report: Any, study: Any, args: argparse.Namespace, sections: list) -> int:
    out = report.write(study.view(), Path(args.output or f"{study.name}-report.html"), sections=sections)
    print(out)
    return 0


def _objective_changed(study: Any, spec: Any) -> str:
    """How the study file's objective differs in its arguments (the ``setup`` part of its version and inputs, as
    `dse.evaluation.objective_differences` words them) from the one the study's trials were evaluated with; "" where
    it does not (a newer release of the objective's code or data is no reason to drop its sections)."""
    from .evaluation import objective_differences, objective_info

    stored = study.meta.get("objective") or {}
    diffs = objective_differences(stored, objective_info(spec.evaluate)) if stored else []
    return "; ".join(d for d in diffs if d.startswith(("name ", "inputs.setup.", "version part setup.")))


def cmd_dashboard(args) -> int:
    from . import dashboard

    study = _load(args)
    if args.optuna_storage is None:
        import optuna

        target = optuna.storages.InMemoryStorage()   # the copy lives in this process while the dashboard runs
    else:
        target = args.optuna_storage
    ostudy = study.to_optuna(target)
    print(f"optuna-dashboard for {study.name!r}: {len(ostudy.trials)} trials copied (Ctrl-C stops)")
    dashboard.run(target, host=args.host, port=args.port, announce=lambda line: print(line, flush=True))
    return 0


COMMANDS = {
    "run": cmd_run,
    "worker": lambda a: cmd_run(a, worker=True),
    "list": cmd_list,
    "show": cmd_show,
    "export": cmd_export,
    "plot": cmd_plot,
    "report": cmd_report,
    "dashboard": cmd_dashboard,
}


PLUGIN_GROUP = "dse.commands"


def plugin_commands() -> dict[str, Any]:
    """Subcommands other packages register (entry-point group ``dse.commands``: name -> ``main(argv) -> int``), so
    that domain commands (``dse deploy``, ``dse calibrate``) live with their domain, not in the engine."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugins = plugin_commands()
    if argv[:1] == ["--debug"] and argv[1:2] and argv[1] in plugins:   # `dse --debug PLUGIN ...`: the plugin's own
        argv = [argv[1], *argv[2:], "--debug"]
    if argv and argv[0] in plugins:
        fn = plugins[argv[0]].load()
        return int(fn(argv[1:]))
    first = next((a for a in argv if not a.startswith("-")), None)     # the command, after global options
    if first is not None and first not in COMMANDS:
        # argparse would list the engine's commands only as the valid choices, not the plugins'
        import difflib

        names = [*COMMANDS, *sorted(plugins)]
        close = difflib.get_close_matches(first, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"dse: error: unknown command {first!r}{hint}; valid commands: {', '.join(names)} (each takes "
              f"--help)", file=sys.stderr)
        return EXIT_ERROR
    parser = build_parser()
    if plugins:
        parser.epilog = "more commands: " + ", ".join(sorted(plugins)) + " (each takes --help)"
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from .errors import DSEError

        kind = "error" if isinstance(exc, (DSEError, ValueError, KeyError, FileNotFoundError)) else f"error ({type(exc).__name__})"
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, KeyError) and msg.startswith(("'", '"')):
            msg = msg.strip("'\"")
        print(f"dse: {kind}: {msg}  (use --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
