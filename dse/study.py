"""Studies: a persistent record of every trial of a search (the facade and its analysis).

A :class:`Study` binds a :class:`~dse.space.Space`, an :class:`~dse.objective.ObjectiveSpec` and a storage.
``study.optimize(evaluate, ...)`` runs :class:`dse.loop.Loop`: it asks the optimizer for a batch, evaluates it in
parallel, writes the whole batch in one transaction, and tells the optimizer. Optimizer state is rebuilt from stored
trials (no pickles), so a study can be resumed after a crash, or worked on by several processes at once.
Exports live in :mod:`dse.exports`, the registry (create, load, list, delete) in :mod:`dse.registry`.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import pareto as _pareto
from .errors import OptimizerError, StudyError
from .evaluation import is_vectorized, objective_change, objective_info, objective_refusal
from .metric_constraints import Constraint
from .objective import ObjectiveSpec
from .optimizers.batch import Batch
from .runner import Runner
from .space import Space
from .storage import BaseStorage
from .storage.table import TrialTable
from .vocabulary import FINISHED_STATES, TRIAL_COLUMNS

logger = logging.getLogger(__name__)

#: Trial columns ahead of the parameters and metrics in ``Study.trials``.
_TRIAL_COLUMNS = list(TRIAL_COLUMNS)


class Study:
    """A named, persisted search: its space, objectives, every trial and the Pareto set.

    Do not construct directly: use :func:`create_study` or :func:`load_study`.
    """

    def __init__(self, storage: BaseStorage, record: Mapping[str, Any], space: Space, spec: ObjectiveSpec) -> None:
        self._storage = storage
        self._id = int(record["id"])
        self.name: str = record["name"]
        self.space = space
        self.spec = spec
        self._meta = dict(record.get("meta") or {})
        self._read: tuple[float, pd.DataFrame] | None = None   # (trials_version, trials) of the last read
        legacy = storage.get_attrs(self._id).get("grid")
        if isinstance(legacy, dict) and legacy.get("path"):
            logger.warning(
                "study %r was stored by an older dse as a Parquet grid sweep (%s points in %s): its trials hold only "
                "the front. To have every point as a trial, resume it with optimizer='grid' (`dse run` its study "
                "file): the points not yet trials are evaluated; or start afresh with "
                "dse.delete_study(%r, storage=%r) and run it again",
                self.name, legacy.get("n_points"), legacy.get("path"), self.name, storage.url)

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def objectives(self) -> dict[str, str]:
        """Metric -> "min" | "max"."""
        return dict(self.spec.objectives)

    @property
    def constraints(self) -> dict[str, Constraint]:
        """Metric constraints: metric -> (op, bound), or (op, bound, confidence) for one met with a confidence
        (checked on the band end ``spec.checked[metric]``, ``<metric>_hi`` or ``<metric>_lo``)."""
        return dict(self.spec.constraints)

    @property
    def storage_url(self) -> str:
        return self._storage.url

    @property
    def storage(self) -> BaseStorage:
        return self._storage

    @property
    def meta(self) -> dict:
        """Provenance: space, objectives, optimizer and settings, seed, package and objective versions, runs."""
        rec = self._storage.get_study(self.name)
        return dict(rec["meta"]) if rec else dict(self._meta)

    def __repr__(self) -> str:
        return f"<dse.Study {self.name!r} objectives={self.objectives} storage={self.storage_url!r}>"

    # ---------------------------------------------------------------------------------------------- trials
    @property
    def trials(self) -> pd.DataFrame:
        """Every trial: number, state, feasible, error, timings, worker, one column per parameter and per metric."""
        version = self._storage.trials_version(self._id)
        if self._read is None or self._read[0] != version:   # read once per state of the study
            self._read = (version, self._expand(self._storage.load_table(self._id)))
        return self._read[1].copy()

    def _expand(self, table: TrialTable) -> pd.DataFrame:
        """The trials table of what storage read: trial columns, then parameters (the space's first), then
        metrics (objectives and constrained metrics first; numeric where every value is a number)."""
        names = self.space.names
        if not len(table):
            cols = _TRIAL_COLUMNS + names + self.spec.required
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        params = table.params.reindex(columns=names + [c for c in table.params.columns if c not in names])
        metrics = table.metrics
        metrics = metrics.drop(columns=[c for c in metrics.columns if c in params.columns or c in _TRIAL_COLUMNS])
        missing = {m: np.nan for m in self.spec.required if m not in metrics.columns}
        if missing:
            metrics = metrics.assign(**missing)
        front = list(self.spec.required)
        metrics = metrics[front + [c for c in metrics.columns if c not in front]]
        for c in metrics.columns:
            if metrics[c].dtype.kind in "fiub":
                continue
            conv = pd.to_numeric(metrics[c], errors="coerce")
            if conv.notna().sum() == metrics[c].notna().sum():
                metrics[c] = conv
        base = table.base[[c for c in _TRIAL_COLUMNS if c in table.base.columns]]
        return pd.concat([base, params, metrics], axis=1)

    def pareto(self) -> pd.DataFrame:
        """The feasible, non-dominated complete trials (sorted by the first objective)."""
        return self._front_of(self.trials)

    def _front_of(self, trials: pd.DataFrame) -> pd.DataFrame:
        """``pareto()`` of an already loaded ``trials`` table."""
        t = trials[trials["state"] == "complete"]
        t = t[t["feasible"].astype(bool)]
        if t.empty:
            return t
        F = t[self.spec.names].to_numpy(dtype=float)
        front = t[_pareto.nondominated_mask(F, self.spec.directions)]
        first = self.spec.names[0]
        return front.sort_values(first, ascending=self.spec.objectives[first] == "min").reset_index(drop=True)

    def hypervolume(self, ref: Mapping[str, float] | Sequence[float] | None = None) -> _pareto.Hypervolume:
        """Hypervolume of the front (moocore) and the reference point used (nadir + 10 % of range by default)."""
        front = self.pareto()
        if front.empty and ref is None:
            raise StudyError(f"study {self.name!r} has no feasible complete trial; a hypervolume needs a reference point")
        return _pareto.hypervolume(front[self.spec.names].to_numpy(dtype=float), self.spec.names, self.spec.directions, ref)

    def knee(self) -> pd.Series:
        """The front's knee (pymoo's high trade-off point, or the point nearest the ideal after normalization)."""
        front = self._front_or_raise()
        return front.iloc[_pareto.knee_index(front[self.spec.names].to_numpy(dtype=float), self.spec.directions)]

    def best(self, weights: Mapping[str, float] | Sequence[float] | None = None) -> pd.Series:
        """The front trial matching preference `weights` (pymoo pseudo-weights); equal weights by default.

        With a single objective this is simply the best feasible trial.
        """
        front = self._front_or_raise()
        names = self.spec.names
        if weights is None:
            w = [1.0] * len(names)
        elif isinstance(weights, Mapping):
            unknown = [k for k in weights if k not in names]
            if unknown:
                raise StudyError(f"weights name {unknown}, which are not objectives; objectives are {names}")
            w = [float(weights.get(n, 0.0)) for n in names]
        else:
            w = list(weights)
        if len(names) == 1:
            return front.iloc[0]
        return front.iloc[_pareto.weighted_index(front[names].to_numpy(dtype=float), self.spec.directions, w)]

    def _front_or_raise(self) -> pd.DataFrame:
        front = self.pareto()
        if front.empty:
            raise StudyError(f"study {self.name!r} has no feasible complete trial yet")
        return front

    def summary(self) -> dict[str, Any]:
        """Counts, front size, storage and grid summary."""
        t = self.trials
        states = t["state"].value_counts().to_dict() if not t.empty else {}
        out = {
            "name": self.name,
            "storage": self.storage_url,
            "objectives": self.objectives,
            "constraints": {k: list(v) for k, v in self.constraints.items()},
            "n_trials": int(len(t)),
            "n_complete": int(states.get("complete", 0)),
            "n_failed": int(states.get("failed", 0)),
            "n_running": int(states.get("running", 0)),
            "n_feasible": int(((t["state"] == "complete") & t["feasible"].fillna(False).astype(bool)).sum()) if len(t) else 0,
            "front_size": int(len(self._front_of(t))) if len(t) else 0,
        }
        if self.meta.get("optimizer") == "grid":   # the space's points (those its rules exclude too) and the counts
            out["grid"] = {"n_points": int(self.space.size),
                           **{k: out[k] for k in ("n_complete", "n_failed", "n_feasible", "front_size")}}
        return out

    # ---------------------------------------------------------------------------------------------- exports
    def results(self) -> pd.DataFrame:
        """Every evaluated configuration: the same table as ``trials`` (one trial per evaluated configuration, at
        any study size)."""
        return self.trials

    def to_xarray(self, layout: str = "auto") -> Any:
        """Labelled results as an xarray.Dataset: one dimension per parameter for a grid, one ``trial`` dimension
        for a sparse search (`layout`: "auto", "grid" or "trials"; see :func:`dse.exports.to_xarray`)."""
        from .exports import to_xarray

        return to_xarray(self, layout)

    def export(self, path: str | os.PathLike, format: str | None = None, layout: str = "auto") -> Path:
        """Write the trials to Parquet, CSV or netCDF (`layout`: netCDF's, as `to_xarray`'s; see
        :func:`dse.exports.export`)."""
        from .exports import export

        return export(self, path, format, layout)

    def to_optuna(self, url: Any = None, study_name: str | None = None) -> Any:
        """Copy the study into an Optuna storage (see :func:`dse.exports.to_optuna`); returns the optuna.Study."""
        from .exports import to_optuna

        return to_optuna(self, url, study_name)

    def view(self):
        """The plain data the plotting and report functions take (dse.plot.StudyView): every trial and the
        numbers of the front's."""
        from .plot import StudyView

        trials = self.trials
        front = self._front_of(trials)
        numbers = [int(n) for n in front["number"]] if len(front) else []
        return StudyView(
            name=self.name,
            trials=trials,
            params=self.space.names,
            objectives=self.objectives,
            constraints=self.constraints,
            meta={**self.meta, "storage": self.storage_url},
            pareto_numbers=numbers,
        )

    # ---------------------------------------------------------------------------------------------- optimize
    def optimize(
        self,
        evaluate: Callable,
        optimizer: str = "auto",
        n_trials: int | None = None,
        *,
        max_trials: int | None = None,
        timeout: float | None = None,
        n_jobs: int = 1,
        batch_size: int | None = None,
        seed: int | None = None,
        backend: str = "loky",
        address: str | None = None,
        trial_timeout: float | None = None,
        progress: bool | None = None,
        resume: str | None = None,
        **optimizer_settings: Any,
    ) -> Study:
        """Run the search: ask a batch, evaluate it in parallel, store it in one transaction, tell the optimizer.

        Args:
            evaluate: ``dict -> dict`` of metrics, or a ``@dse.vectorized`` ``DataFrame -> DataFrame``.
            optimizer: "auto" | "nsga2" | "nsga3" | "tpe" | "gp" | "random" | "grid".
            n_trials: trials to run in this call (None: until ``timeout``, ``max_trials`` or the space is exhausted).
            max_trials: stop once the study holds this many finished trials (crash-aborted ones not counted), so
                that a resumed sweep completes exactly the requested total.
            timeout: wall-clock budget for this call, s.
            n_jobs: parallel workers (-1: all cores). backend: "loky" | "threading" | "dask" (with ``address``).
            batch_size: configurations per batch (default: the optimizer's, e.g. NSGA-II's population).
            seed: makes the optimizer reproducible.
            trial_timeout: a trial running longer than this (s) fails (serial and process backends).
            progress: show a progress bar (default: when attached to a terminal or notebook).
            resume: how to continue after Ctrl-C, said when interrupted (default: "run optimize() again").
            optimizer_settings: passed to the optimizer (e.g. ``pop_size=200``).

        Ctrl-C stops cleanly: every finished trial is kept; the interrupted batch is marked aborted and retried
        by the next optimize() call.

        A study holding complete trials of an objective of another name or version (`dse.objective_info`; e.g. a
        study file whose workload was edited) is refused with StudyError naming what changed
        (`evaluation.objective_differences`), before anything runs or is stored: its front would rank numbers of
        both. Give the study another name or storage, or delete it, to evaluate the new objective.
        """
        from .optimizers import choose_auto, get_optimizer

        if not callable(evaluate):
            raise StudyError(f"evaluate must be callable, got {type(evaluate).__name__}")
        for label, v in (("n_trials", n_trials), ("max_trials", max_trials), ("batch_size", batch_size)):
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1):
                raise StudyError(f"{label}={v!r} must be a positive integer or None")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise StudyError(f"timeout={timeout!r} must be a positive number of seconds or None")
        self.spec.check_objective(evaluate)   # a declared band level that a constraint's confidence cannot use
        vectorized = is_vectorized(evaluate)
        name = optimizer
        if optimizer == "auto":
            budget = n_trials or max_trials
            name = choose_auto(self.space, len(self.spec.names), vectorized=vectorized, budget=budget)
        if name == "grid" and not self.space.is_discrete:
            raise OptimizerError("optimizer 'grid' needs a discrete space (every Float with step=); use 'nsga2' or 'random'")
        opt = get_optimizer(name, self.space, len(self.spec.names), seed=seed, **optimizer_settings)
        info = objective_info(evaluate)
        if objective_change(self.meta.get("objective"), info) and (
                n := self._storage.count_trials(self._id, states=("complete",))):
            # its front would rank numbers of two objectives (e.g. a study file's workload edited): refused, as is
            # (trials that all failed put no number on the front: a fixed objective resumes them)
            raise StudyError(objective_refusal(self.name, self.storage_url, n, self.meta.get("objective") or {}, info))
        run = {
            "optimizer": name,
            "requested_optimizer": optimizer,
            "settings": opt.settings(),
            "seed": seed,
            "objective": info,
            "dse_version": __version__,
            "n_jobs": n_jobs,
            "backend": backend,
            "started_at": time.time(),
            "host": socket.gethostname(),
        }
        meta = self.meta
        runs = list(meta.get("runs", []))[-49:] + [run]
        self._storage.update_study_meta(
            self._id, {"optimizer": name, "settings": run["settings"], "seed": seed, "objective": info, "runs": runs}
        )
        runner = Runner(evaluate, self.spec.required, n_jobs=n_jobs, backend=backend, address=address, timeout=trial_timeout)
        try:
            loop = Loop(self, opt, runner, batch_size, progress, resume=resume)
            loop.run(n_trials, max_trials, timeout)
            known = (loop.n_seen, loop.front_numbers.tolist())
        finally:
            runner.shutdown()
        self._store_front(known)
        if name == "grid" and opt.exhausted and self._storage.get_attrs(self._id).get("grid"):
            # a study of the old Parquet sweep now holds every grid point as a trial: its old summary is obsolete
            self._storage.set_attrs(self._id, {"grid": None})
        return self

    def _store_front(self, known: tuple[int, list[int]] | None = None) -> list[int]:
        """Store the front's trial numbers as a study attribute (re-read until no worker added trials meanwhile).

        `known` = (finished trials seen, front numbers) from the optimize loop: used as is when nobody else finished a
        trial meanwhile. Every write is checked afterwards: a worker that finished trials between this one's read and
        its write (and may have stored its own front first) makes this one read again, so the last write wins with
        every finished trial.
        """
        def finished() -> int:
            return self._storage.count_trials(self._id, states=FINISHED_STATES)

        def write(numbers: list[int], version: int) -> None:
            # never replace a front computed over more finished trials (a worker that gave up re-reading under
            # heavy contention must not overwrite the last finisher's complete front)
            stored = self._storage.get_attrs(self._id).get("front_version")
            if isinstance(stored, int) and stored > version:
                return
            self._storage.set_attrs(self._id, {"front": numbers, "front_n_trials": version, "front_version": version})

        if known is not None and finished() == known[0]:
            numbers = sorted(known[1])
            write(numbers, known[0])
            if finished() == known[0]:
                return numbers
        for _ in range(10):
            n_before = finished()
            front = self.pareto()
            numbers = sorted(int(n) for n in front["number"]) if len(front) else []
            write(numbers, n_before)
            if finished() == n_before:
                break
        return numbers

    def stored_front(self) -> list[int]:
        """Trial numbers of the front as stored by the last optimize() to finish (see ``pareto()`` for a fresh one)."""
        return list(self._storage.get_attrs(self._id).get("front", []))

    # ---------------------------------------------------------------------------------------------- helpers
    def _scored(self, batch: Batch) -> Batch:
        """An evaluated batch with its minimization matrix F, violation CV and feasible flags (``Batch.scored``):
        NaN / inf rows for failed trials, and for an objective metric the metrics frame lacks."""
        metrics, ok = batch.metrics, batch.ok
        assert metrics is not None   # batch.ok raised otherwise
        n = len(metrics)
        F = np.full((n, len(self.spec.names)), np.nan)
        CV = np.full(n, np.inf)
        if n and ok.any():
            vals = np.column_stack([
                pd.to_numeric(metrics[m], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                if m in metrics.columns else np.full(n, np.nan) for m in self.spec.names])
            F[ok] = _pareto.to_minimization(vals[ok], self.spec.directions)
            CV[ok] = self.spec.violation(metrics.loc[ok]) if self.spec.constraints else 0.0
        return batch.scored(F, CV, ok & (CV == 0))


from .loop import ABORTED, Loop  # noqa: E402  (the loop imports this module's Study for type hints only)
from .registry import create_study, delete_study, list_studies, load_study  # noqa: E402

__all__ = ["ABORTED", "Study", "create_study", "delete_study", "list_studies", "load_study"]
