"""Study files: a Python file that defines a :class:`StudySpec` named ``study`` (what ``dse run FILE`` runs).

A study file is Python code that the user chose to run: ``dse run`` executes it like ``python FILE`` would
(the study database only ever holds JSON, never code or pickles).
"""
from __future__ import annotations

import os
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import StudyError
from .fidelity import column_fidelity
from .space import Space
from .view import label_columns
from .vocabulary import TRIAL_COLUMNS


@dataclass
class StudySpec:
    """Everything ``dse run`` needs to create or resume a study and optimize it.

    ``n_trials`` is the study's TOTAL target: running the file again after an interruption completes it.
    ``storage`` None means a SQLite file ``<name>.db`` beside the study file.
    ``after(study)`` runs once the optimization ends (e.g. re-evaluate the front with a slower model).
    ``show`` lists the columns of the printed front (default: parameters that vary on the front + objectives).
    """

    name: str
    space: Space
    objectives: Mapping[str, str]
    evaluate: Callable
    constraints: Mapping[str, Sequence] | None = None   # metric -> (op, bound) or (op, bound, confidence)
    optimizer: str = "auto"
    n_trials: int | None = None
    timeout: float | None = None
    n_jobs: int = 1
    seed: int | None = 0
    batch_size: int | None = None
    optimizer_settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    storage: str | None = None
    report: bool = True
    show: list[str] | None = None
    after: Callable | None = None
    path: Path | None = None          # the study file, set by load_study_file

    def default_storage(self) -> str | None:
        if self.storage is not None:
            return self.storage
        if self.path is not None:
            return f"sqlite:///{self.path.resolve().parent / (self.name + '.db')}"
        return None

    def create(self, storage: str | None = None):
        """Create or reopen the study this spec describes (dse.create_study with load_if_exists=True)."""
        from .study import create_study

        return create_study(
            self.name, self.space, dict(self.objectives), constraints=self.constraints,
            storage=storage or self.default_storage(), description=self.description,
        )

    def run(self, storage: str | None = None, *, n_trials: int | None = None, progress: bool | None = None,
            n_jobs: int | None = None, optimizer: str | None = None, seed: int | None = None,
            timeout: float | None = None, worker: bool = False, resume: str | None = None):
        """Create/resume the study and optimize until it holds ``n_trials`` finished trials; returns the Study.

        As a worker (``worker=True``, one of several processes sharing a storage), an explicit ``n_trials`` is the
        number of trials THIS process runs; without it, workers stop together when the study holds the file's total.
        ``resume``: how to continue after Ctrl-C, said in the interrupted message (`Study.optimize`; default: the
        ``dse run <file>`` command for a study file, "run optimize() again" otherwise).
        """
        if resume is None and self.path is not None:
            resume = f"run `dse {'worker' if worker else 'run'} {self.path}`"
        study = self.create(storage)
        if self.path is not None:   # where `dse report NAME` finds the objective's own sections (`study_file_of`)
            study._storage.set_attrs(study._id, {STUDY_FILE_ATTR: str(self.path.resolve())})
        per_worker = n_trials if worker else None
        total = None if per_worker is not None else (n_trials if n_trials is not None else self.n_trials)
        study.optimize(
            self.evaluate,
            optimizer=optimizer or self.optimizer,
            n_trials=per_worker,
            max_trials=total,
            timeout=timeout if timeout is not None else self.timeout,
            n_jobs=n_jobs if n_jobs is not None else self.n_jobs,
            seed=self.seed if seed is None else seed,
            batch_size=self.batch_size,
            progress=progress,
            resume=resume,
            **self.optimizer_settings,
        )
        if self.after is not None and not worker:
            self.after(study)
        return study


#: the study attribute `StudySpec.run` records the study file's absolute path in
STUDY_FILE_ATTR = "study_file"


def study_file_of(study: Any) -> Path | None:
    """The study file that defines ``study``: the one `StudySpec.run` recorded (``dse run FILE.py``), else
    ``<name>.py`` beside its SQLite database, in the current folder or under studies/; None where none exists (the
    caller loads it and checks that it defines a study of that name)."""
    rec = study._storage.get_attrs(study._id).get(STUDY_FILE_ATTR)
    found = [Path(rec)] if rec else []
    url = str(study.storage_url)
    if url.startswith("sqlite:///"):
        found.append(Path(url[len("sqlite:///"):]).with_name(f"{study.name}.py"))
    found += [Path(f"{study.name}.py"), Path("studies") / f"{study.name}.py"]
    return next((p for p in dict.fromkeys(found) if p.is_file()), None)


def load_study_file(path: str | os.PathLike) -> StudySpec:
    """Execute a study file and return its ``study`` (a StudySpec); StudyError with a clear reason otherwise."""
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"study file {str(p)!r} does not exist; give the path of a .py file defining `study = dse.StudySpec(...)`")
    if p.suffix != ".py":
        raise StudyError(f"study file {str(p)!r} is not a .py file")
    try:
        ns = runpy.run_path(str(p), run_name="__dse_study__")
    except SyntaxError as exc:
        raise StudyError(f"study file {str(p)!r} has a syntax error at line {exc.lineno}: {exc.msg}") from None
    spec = ns.get("study", ns.get("STUDY"))
    if not isinstance(spec, StudySpec):
        raise StudyError(
            f"study file {str(p)!r} defines no `study = dse.StudySpec(...)`"
            + (f" (found `study` of type {type(spec).__name__})" if spec is not None else "")
        )
    spec.path = p
    return spec


def _value(v: Any) -> Any:
    """A parameter's value as its space wrote it: a whole number stored as a float (an integer parameter inactive
    on some trials: its column is float) without the ".0"."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _no_front(study) -> str:
    """Why the front is empty: nothing evaluated yet, or, with complete trials, each constraint with how many of
    them meet it and the best value reached (an SLO no configuration meets is said, not shown as an empty table)."""
    from .objective import ObjectiveSpec

    trials = study.trials
    done = trials[trials["state"] == "complete"] if "state" in trials else trials.iloc[:0]
    if done.empty or not study.constraints:
        return "(no feasible trial on the front yet)"
    lines = [f"no trial meets the constraints ({len(done)} complete):"]
    for name, c in study.constraints.items():
        col = study.spec.checked[name]
        met = ObjectiveSpec(dict(study.objectives), {name: c}).violation(done) == 0
        v = pd.to_numeric(done[col], errors="coerce") if col in done else pd.Series(dtype=float)
        v = v[v.notna()]
        if v.empty:
            best = ""
        else:
            top = v.min() if c[0] in ("<=", "<") else v.max() if c[0] in (">=", ">") else v.iloc[(v - c[1]).abs().argmin()]
            best = f" (best {top:.4g})"
        lines.append(f"  {name} {c[0]} {float(c[1]):g}: met by {int(met.sum())} of {len(done)}{best}")
    return "\n".join(lines)


def front_table(study, columns: list[str] | None = None, limit: int | None = 40) -> str:
    """The Pareto front as a readable text table: the configuration behind each point and its metrics."""
    front = study.pareto()
    if front.empty:
        return _no_front(study)
    if columns is None:
        # an inactive parameter (None) is a value of its own: pandas' astype(str) keeps None missing, which
        # nunique() would drop ("same on the whole front: eplb=True" where half the front has no eplb)
        varying = [p for p in study.space.names if front[p].map(repr).nunique() > 1]
        const = [p for p in study.space.names if p not in varying]
        checked = [c for c in study.spec.checked.values() if c not in study.constraints]   # band ends checked
        # the objective's text labels of its rows (where the numbers come from): a column where they vary on the
        # front, the "same on the whole front" line where they do not
        labels = label_columns(front, [*TRIAL_COLUMNS, *study.space.names, *study.objectives, *study.constraints])
        vary_labels = [c for c in labels if front[c].map(repr).nunique() > 1]
        const += [c for c in labels if c not in vary_labels]
        columns = list(dict.fromkeys(["number", *varying, *study.objectives, *study.constraints, *checked,
                                      *vary_labels]))
    else:
        const = []
        unknown = [c for c in columns if c not in front.columns]
        if unknown:
            raise StudyError(f"columns {unknown} are not in the trials; available: {list(front.columns)}")
    # configurations that tie on every objective are one point of the front: show the first, count the others
    objs = list(study.objectives)
    key = front[objs].round(12).astype(str).agg("|".join, axis=1)
    ties = key.map(key.value_counts()) - 1
    keep = ~key.duplicated()
    view = front.loc[keep, columns].copy()
    if (ties > 0).any():
        view["ties"] = ties[keep].to_numpy()
    for c in view.columns:
        if pd.api.types.is_float_dtype(view[c]):
            view[c] = view[c].map(lambda v: f"{v:.4g}")
    lines = []
    if keep.sum() < len(front):
        lines.append(f"{len(front)} front trials, {int(keep.sum())} distinct points; 'ties' counts the other "
                     "configurations with exactly the same objectives (see study.pareto())")
    if const:
        lines.append("same on the whole front: " + ", ".join(f"{p}={_value(front[p].iloc[0])}" for p in const))
    body = view if limit is None else view.head(limit)
    lines.append(body.to_string(index=False))
    if limit is not None and len(view) > limit:
        lines.append(f"... {len(view) - limit} more (use --all)")
    if (sources := column_fidelity(front, list(view.columns))) is not None:    # a confirmed front's mixed columns
        lines.append(sources)
    return "\n".join(lines)
