"""Studies: a persistent record of every trial of a search, and the loop that runs it.

A :class:`Study` binds a :class:`~dse.space.Space`, an :class:`~dse.objective.ObjectiveSpec` and a storage.
``study.optimize(evaluate, ...)`` asks the optimizer for a batch, evaluates it in parallel, writes the whole batch
in one transaction, and tells the optimizer. Optimizer state is rebuilt from stored trials (no pickles), so a study
can be resumed after a crash, or worked on by several processes at once.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import pareto as _pareto
from .errors import DSEError, OptimizerError, StudyError
from .objective import Evaluated, ObjectiveSpec, frame_records, is_vectorized, objective_info, plain_values, worker_id
from .runner import Runner
from .space import Space
from .storage import BaseStorage, open_storage

logger = logging.getLogger(__name__)

#: Error prefix of trials that did not fail on their own (crash, Ctrl-C): their configurations are retried.
ABORTED = "aborted: "

#: Batches evaluated in less than this (s, in-process) are stored finished in one transaction, without the
#: 'running' rows that make slow batches visible and recoverable while they run.
QUICK_BATCH_S = 0.05

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
_TRIAL_COLUMNS = ["number", "state", "feasible", "error", "duration_s", "worker", "started_at", "finished_at"]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StudyError(
            f"study name {name!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _key(config: Mapping[str, Any]) -> tuple:
    """Canonical, hashable key of a configuration (evaluation cache): its items, sorted. ``config`` comes from
    ``_records``, which writes every missing value as None (a NaN would never equal another NaN)."""
    return tuple(sorted(config.items()))


def _frame(rows: list[dict]) -> pd.DataFrame:
    """One row per dict, also when every dict is empty (from_records alone would give no rows)."""
    return pd.DataFrame.from_records(rows, index=range(len(rows)))


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows of a DataFrame of configurations as dicts of plain Python values, missing values (NaN, None, NA) as
    None: what is stored and what ``_key`` is computed from."""
    return frame_records(df, none_for_missing=True)


def _keyed_records(df: pd.DataFrame) -> tuple[list[dict], list[tuple]]:
    """``_records(df)`` and each record's ``_key``, with the names sorted once for the frame, not once per row."""
    cols, values = plain_values(df, none_for_missing=True)
    order = sorted(range(len(cols)), key=cols.__getitem__)
    names = [cols[j] for j in order]
    keys = [tuple(zip(names, vals)) for vals in values[:, order].tolist()]
    return [dict(zip(cols, vals)) for vals in values.tolist()], keys


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
        legacy = storage.get_attrs(self._id).get("grid")
        if isinstance(legacy, dict) and legacy.get("path"):
            logger.warning(
                "study %r was stored by an older dse as a Parquet grid sweep (%s points in %s): its trials hold only "
                "the front. To have every point as a trial, run the sweep again into a fresh study: "
                "dse.delete_study(%r, storage=%r), then optimize() or `dse run` the study file again",
                self.name, legacy.get("n_points"), legacy.get("path"), self.name, storage.url)

    # ---------------------------------------------------------------------------------------------- properties
    @property
    def objectives(self) -> dict[str, str]:
        """Metric -> "min" | "max"."""
        return dict(self.spec.objectives)

    @property
    def constraints(self) -> dict[str, tuple[str, float]]:
        """Metric constraints: metric -> (op, bound)."""
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
        raw = self._storage.load_trials(self._id)
        return self._expand(raw)

    def _expand(self, raw: pd.DataFrame) -> pd.DataFrame:
        names = self.space.names
        if raw.empty:
            cols = _TRIAL_COLUMNS + names + self.spec.required
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        params = pd.DataFrame.from_records(list(raw["params"]), index=raw.index)
        params = params.reindex(columns=names + [c for c in params.columns if c not in names])
        metrics = pd.DataFrame.from_records([m or {} for m in raw["metrics"]], index=raw.index)
        metrics = metrics.drop(columns=[c for c in metrics.columns if c in params.columns or c in _TRIAL_COLUMNS])
        for m in self.spec.required:
            if m not in metrics.columns:
                metrics[m] = np.nan
        front = [c for c in self.spec.required]
        metrics = metrics[front + [c for c in metrics.columns if c not in front]]
        for c in metrics.columns:
            conv = pd.to_numeric(metrics[c], errors="coerce")
            if conv.notna().sum() == metrics[c].notna().sum():
                metrics[c] = conv
        base = raw[[c for c in _TRIAL_COLUMNS if c in raw.columns]].copy()
        out = pd.concat([base, params, metrics], axis=1)
        return out.reset_index(drop=True)

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
        if self.meta.get("optimizer") == "grid":
            out["grid"] = {"n_points": int(self.space.size)}   # the space's points, those its rules exclude too
        return out

    # ---------------------------------------------------------------------------------------------- exports
    def results(self) -> pd.DataFrame:
        """Every evaluated configuration: the same table as ``trials`` (one trial per evaluated configuration, at
        any study size)."""
        return self.trials

    def to_xarray(self):
        """Labelled results as an xarray.Dataset: one dimension per parameter, one variable per metric.

        A full grid becomes a dense Dataset; other studies give a sparse one (missing points are NaN).
        """
        import xarray as xr

        df = self.results()
        if "state" in df.columns:
            df = df[df["state"] == "complete"]
        metric_cols = [c for c in df.columns if c not in self.space.names and c not in _TRIAL_COLUMNS]
        metric_cols = [c for c in metric_cols if pd.api.types.is_numeric_dtype(df[c]) or c == "feasible"]
        data = df[self.space.names + metric_cols].copy()
        for n in self.space.names:
            if data[n].isna().any():
                data[n] = data[n].astype(object).where(data[n].notna(), "inactive")
        data = data.drop_duplicates(subset=self.space.names, keep="last").set_index(self.space.names)
        ds = xr.Dataset.from_dataframe(data)
        ds.attrs.update({"study": self.name, "objectives": json.dumps(self.objectives), "dse_version": __version__})
        return ds

    def export(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write the trials (or full grid results) to Parquet, CSV or netCDF, chosen by `format` or the extension."""
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".")).lower()
        aliases = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "netcdf": "netcdf", "nc": "netcdf"}
        if fmt not in aliases:
            raise StudyError(f"export format {fmt!r} is not supported; valid formats are parquet, csv, netcdf")
        fmt = aliases[fmt]
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "netcdf":
            ds = self.to_xarray()
            for name in list(ds.coords):
                if ds[name].dtype == object:
                    ds[name] = ds[name].astype(str)
            ds.to_netcdf(path, engine="h5netcdf" if _has("h5netcdf") else None)
            return path
        df = self.results()
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
        return path

    def to_optuna(self, url=None, study_name: str | None = None):
        """Copy the study into an Optuna storage (for optuna-dashboard); returns the optuna.Study.

        ``url`` is any Optuna storage URL (e.g. ``sqlite:///optuna.db``) or an ``optuna.storages.BaseStorage``;
        None gives an in-memory storage.
        Failed trials are copied as FAIL; metric values that are not objectives become user attributes.
        """
        import optuna

        from .encoding import optuna_distributions

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        directions: list[Any] = ["minimize" if d == "min" else "maximize" for d in self.spec.directions]
        ostudy = optuna.create_study(
            storage=url, study_name=study_name or self.name, directions=directions, load_if_exists=False
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ostudy.set_metric_names(self.spec.names)
        ostudy.set_user_attr("dse_storage", self.storage_url)
        dists = optuna_distributions(self.space)
        trials = []
        for row in self._storage.load_trials(self._id, states=["complete", "failed"]).itertuples():
            params = {k: v for k, v in row.params.items() if v is not None and k in dists}
            metrics = row.metrics or {}
            ok = row.state == "complete"
            values = [float(metrics[n]) for n in self.spec.names] if ok else None
            attrs = {k: v for k, v in metrics.items() if k not in self.spec.names}
            attrs.update({"dse_number": int(row.number), "feasible": bool(row.feasible) if ok else False})
            if row.error:
                attrs["error"] = str(row.error)
            trials.append(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: dists[k] for k in params},
                    values=values,
                    state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                    user_attrs=attrs,
                )
            )
        ostudy.add_trials(trials)
        return ostudy

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
            optimizer_settings: passed to the optimizer (e.g. ``pop_size=200``).

        Ctrl-C stops cleanly: every finished trial is kept; the interrupted batch is marked aborted and retried
        by the next optimize() call.
        """
        from .optimizers import choose_auto, get_optimizer

        if not callable(evaluate):
            raise StudyError(f"evaluate must be callable, got {type(evaluate).__name__}")
        for label, v in (("n_trials", n_trials), ("max_trials", max_trials), ("batch_size", batch_size)):
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1):
                raise StudyError(f"{label}={v!r} must be a positive integer or None")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise StudyError(f"timeout={timeout!r} must be a positive number of seconds or None")
        vectorized = is_vectorized(evaluate)
        name = optimizer
        if optimizer == "auto":
            budget = n_trials or max_trials
            name = choose_auto(self.space, len(self.spec.names), vectorized=vectorized, budget=budget)
        if name == "grid" and not self.space.is_discrete:
            raise OptimizerError("optimizer 'grid' needs a discrete space (every Float with step=); use 'nsga2' or 'random'")
        opt = get_optimizer(name, self.space, len(self.spec.names), seed=seed, **optimizer_settings)
        info = objective_info(evaluate)
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
            loop = _Loop(self, opt, runner, batch_size, progress)
            loop.run(n_trials, max_trials, timeout)
            known = (len(loop.seen_numbers), loop.front_numbers.tolist())
        finally:
            runner.shutdown()
        self._store_front(known)
        return self

    def _store_front(self, known: tuple[int, list[int]] | None = None) -> list[int]:
        """Store the front's trial numbers as a study attribute (re-read until no worker added trials meanwhile).

        `known` = (trials seen, front numbers) from the optimize loop: used as is when nobody else wrote meanwhile.
        """
        if known is not None and self._storage.count_trials(self._id) == known[0]:
            numbers = sorted(known[1])
            self._storage.set_attrs(self._id, {"front": numbers, "front_n_trials": known[0]})
            return numbers
        for _ in range(5):
            n_before = self._storage.count_trials(self._id)
            front = self.pareto()
            numbers = sorted(int(n) for n in front["number"]) if len(front) else []
            self._storage.set_attrs(self._id, {"front": numbers, "front_n_trials": n_before})
            if self._storage.count_trials(self._id) == n_before:
                break
        return numbers

    def stored_front(self) -> list[int]:
        """Trial numbers of the front as stored by the last optimize() to finish (see ``pareto()`` for a fresh one)."""
        return list(self._storage.get_attrs(self._id).get("front", []))

    # ---------------------------------------------------------------------------------------------- helpers
    def _F_CV(self, metrics: pd.DataFrame, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Minimization matrix F, violation CV and feasible flag from metrics (NaN/inf rows for failures)."""
        n = len(metrics)
        F = np.full((n, len(self.spec.names)), np.nan)
        CV = np.full(n, np.inf)
        if n and ok.any():
            vals = np.column_stack([pd.to_numeric(metrics[m], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                                    for m in self.spec.names])
            F[ok] = _pareto.to_minimization(vals[ok], self.spec.directions)
            CV[ok] = self.spec.violation(metrics.loc[ok]) if self.spec.constraints else 0.0
        return F, CV, ok & (CV == 0)

    def _reclaim_dead(self) -> int:
        """Release the work claims of dead local processes, and mark the trials they left running as aborted (the
        loop retries them); return how many trials."""
        claims = self._storage.claims(self._id)
        gone = _dead_local(set(claims.values()))
        if gone:
            self._storage.release_claims(self._id, [k for k, w in claims.items() if w in gone])
        dead = _dead_local(set(self._storage.running_workers(self._id)))
        if not dead:
            return 0
        rows = self._storage.fail_running(
            self._id, workers=dead, reason=ABORTED + "the worker process died (crash or kill); configuration retried"
        )
        return len(rows)


def _dead_local(workers: set[str]) -> list[str]:
    """The worker ids (``host:pid:tag``) of processes on this host that are no longer alive."""
    host = socket.gethostname()
    dead = []
    for w in sorted(workers):
        parts = str(w).split(":")
        if len(parts) >= 3 and parts[0] == host and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            dead.append(w)
    return dead


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited but not yet reaped) is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class _Progress:
    """tqdm progress bar showing trials/s and the current front size (notebook widget in notebooks)."""

    def __init__(self, enabled: bool | None, total: int | None, desc: str) -> None:
        import sys

        if enabled is None:
            enabled = sys.stderr.isatty() or _in_notebook()
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="trial", dynamic_ncols=True, leave=True)

    def update(self, n: int, front: int, failed: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(front=front, failed=failed, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


class _Loop:
    """The ask / evaluate / store / tell loop of one optimize() call."""

    def __init__(self, study: Study, opt, runner: Runner, batch_size: int | None, progress: bool | None) -> None:
        self.study, self.opt, self.runner = study, opt, runner
        if batch_size is None and is_vectorized(runner.fn) and not runner.parallel:
            batch_size = opt.vectorized_batch_size()
        self.batch_size = batch_size or opt.default_batch_size()
        self.progress_flag = progress
        self.worker = worker_id()
        self.known: dict[tuple, tuple[np.ndarray, float]] = {}   # config key -> (F row, CV) of complete trials
        self.seen_numbers: set[int] = set()
        self.floor = 0          # smallest trial number that may still change state
        self.contiguous = False     # set by _store: the last batch's numbers followed every number seen
        self.last_eval_s = math.inf   # evaluation time of the last batch, s (the first batch is always reserved)
        self.aborted = 0        # aborted trials seen (crash or Ctrl-C): they do not count towards max_trials
        self.aborted_configs: dict[tuple, dict] = {}   # their configurations, retried unless evaluated since
        self.front_F = np.zeros((0, len(study.spec.names)))
        self.front_numbers = np.zeros(0, dtype=np.int64)   # trial numbers of the rows of front_F
        self.claimed: list[str] = []   # work claims this loop took (released if it stops on an error or Ctrl-C)
        if hasattr(opt, "claim") and getattr(opt, "block", None):
            opt.claim = self._claim_block   # workers on this study split the grid through the storage

    def _claim_block(self, index: int) -> bool:
        """Claim grid block ``index`` for this loop (keyed by the block size, the same in every worker)."""
        key = f"grid:{self.opt.block}:{index}"
        ok = self.study._storage.claim(self.study._id, key, self.worker)
        if ok:
            self.claimed.append(key)
        return ok

    # -- state from storage
    def sync(self) -> None:
        """Tell the optimizer every finished trial it has not seen (stored before, or by other workers)."""
        st, sid = self.study._storage, self.study._id
        if self.contiguous:
            return  # our last batch took the numbers right after everything we had seen: nobody else wrote
        if st.count_trials(sid) == len(self.seen_numbers):
            return  # nothing stored that this loop has not seen (the common single-worker case): skip the read
        raw = st.load_trials(sid, min_number=self.floor)
        if raw.empty:
            return
        running = raw.loc[raw["state"] == "running", "number"]
        new = raw[(raw["state"] != "running") & ~raw["number"].isin(self.seen_numbers)]
        self.floor = int(running.min()) if len(running) else int(raw["number"].max()) + 1
        if new.empty:
            return
        self._tell_raw(new)

    def _tell_raw(self, raw: pd.DataFrame) -> None:
        names = self.study.space.names
        params = _frame(list(raw["params"])).reindex(columns=names)
        metrics = _frame([m or {} for m in raw["metrics"]])
        for m in self.study.spec.required:
            if m not in metrics.columns:
                metrics[m] = np.nan
        ok = (raw["state"] == "complete").to_numpy()
        aborted = raw["error"].fillna("").astype(str).str.startswith(ABORTED).to_numpy()
        keep = ~aborted
        F, CV, feas = self.study._F_CV(metrics, ok)
        self.seen_numbers.update(int(n) for n in raw["number"])
        self.aborted += int(aborted.sum())
        if aborted.any():
            for rec, k in zip(*_keyed_records(params[aborted])):
                self.aborted_configs.setdefault(k, rec)
        if keep.any():
            self.opt.tell(params[keep].reset_index(drop=True), F[keep], CV[keep])
        self._remember(params, F, CV, ok, feas, raw["number"].to_numpy())

    def _remember(self, params: pd.DataFrame, F: np.ndarray, CV: np.ndarray, ok: np.ndarray, feas: np.ndarray,
                  numbers, keys: list[tuple] | None = None) -> None:
        """Cache complete trials' results by configuration (``keys``: their ``_key``s, when known) and update the
        front."""
        if keys is None:
            keys = _keyed_records(params)[1]
        for k, f, cv, good in zip(keys, F, CV, ok):
            if good:
                self.known[k] = (f, cv)
        if feas.any():
            cand = np.vstack([self.front_F, F[feas]])
            nums = np.concatenate([self.front_numbers, np.asarray(numbers, dtype=np.int64)[feas]])
            keep = _pareto.nondominated_mask(cand, ["min"] * cand.shape[1])
            self.front_F, self.front_numbers = cand[keep], nums[keep]

    def remaining(self, max_trials: int) -> int:
        """Trials still to start so that the study holds `max_trials` finished ones (others' running ones count)."""
        st, sid = self.study._storage, self.study._id
        held = st.count_trials(sid, states=["complete", "failed", "running"]) - self.aborted
        return max(0, max_trials - held)

    # -- the loop
    def run(self, n_trials: int | None, max_trials: int | None, timeout: float | None) -> None:
        study, st, sid = self.study, self.study._storage, self.study._id
        study._reclaim_dead()
        self.sync()
        # every aborted configuration not evaluated since is retried, also when the run that first found it died too
        retry = [rec for k, rec in self.aborted_configs.items() if k not in self.known]
        start = time.monotonic()
        done = 0
        total = _min_opt(n_trials, None if max_trials is None else self.remaining(max_trials))
        bar = _Progress(self.progress_flag, total, study.name)
        failed = 0
        stale_rounds = 0
        numbers: list[int] = []
        try:
            while True:
                # with max_trials the count is re-read each batch: other workers may be adding trials too
                left = _min_opt(n_trials - done if n_trials is not None else None,
                                None if max_trials is None else self.remaining(max_trials))
                if left is not None and left <= 0:
                    break
                if timeout is not None and time.monotonic() - start >= timeout:
                    break
                n = self.batch_size if left is None else min(self.batch_size, left)
                configs, keys, frame = self._next_batch(n, retry)
                if not configs:
                    if stale_rounds >= 3 or self.opt.exhausted:
                        break
                    stale_rounds += 1
                    continue
                stale_rounds = 0
                if self.quick:
                    # batches that evaluate in milliseconds are written once, finished (one transaction): a crash
                    # mid-batch loses only that batch's work, which the rebuilt optimizer simply asks again
                    started = time.time()
                    failed += self._store(None, configs, self._evaluate(configs, frame), keys, frame, started)
                else:
                    numbers = st.reserve_trials(sid, configs, self.worker)
                    failed += self._store(numbers, configs, self._evaluate(configs, frame), keys, frame)
                    numbers = []
                done += len(configs)
                bar.update(len(configs), len(self.front_F), failed)
                self.sync()
        except KeyboardInterrupt:
            if numbers:
                st.fail_running(sid, numbers=numbers, reason=ABORTED + "interrupted by the user (Ctrl-C); configuration retried")
            self._release_claims()
            logger.warning("interrupted: %r keeps every finished trial; run optimize() again to continue", study.name)
        except BaseException:
            self._release_claims()
            raise
        finally:
            bar.close()

    def _release_claims(self) -> None:
        """Give back this loop's claims: whatever of them it stored is told to whoever claims them next, and
        skipped there; the rest is evaluated there."""
        if self.claimed:
            self.study._storage.release_claims(self.study._id, self.claimed)
            self.claimed = []

    def _next_batch(self, n: int, retry: list[dict]) -> tuple[list[dict], list[tuple], pd.DataFrame | None]:
        """Up to ``n`` configurations to evaluate (retried aborted ones first, then asked ones not evaluated in this
        study yet), their keys, and the optimizer's DataFrame of them when they all came from this ask (else None)."""
        configs: list[dict] = []
        keys: list[tuple] = []
        seen: set[tuple] = set()
        while retry and len(configs) < n:
            rec = retry.pop(0)
            k = _key(rec)
            if k not in self.known and k not in seen:
                seen.add(k)
                keys.append(k)
                configs.append(rec)
        frame = None
        if len(configs) < n:
            asked = self.opt.ask(n - len(configs))
            rows: list[int] = []
            for i, (rec, k) in enumerate(zip(*_keyed_records(asked))):
                if k in seen:
                    continue  # a retried configuration in this batch already: its result is told when stored
                hit = self.known.get(k)
                if hit is not None:
                    # evaluation cache: already evaluated in this study; tell the optimizer, do not evaluate again
                    self.opt.tell(pd.DataFrame([rec]).reindex(columns=self.study.space.names), hit[0][None, :], np.array([hit[1]]))
                    continue
                seen.add(k)
                keys.append(k)
                configs.append(rec)
                rows.append(i)
            if len(rows) == len(configs):   # nothing retried: the optimizer's own frame serves evaluation and tell
                frame = asked if len(rows) == len(asked) else asked.iloc[rows].reset_index(drop=True)
        return configs, keys, frame

    def _evaluate(self, configs: list[dict], frame: pd.DataFrame | None) -> Evaluated:
        """Evaluate a batch: a vectorized objective in this process straight on the optimizer's DataFrame (no
        round trip through records), else through the runner."""
        runner = self.runner
        if frame is not None and not runner.parallel and is_vectorized(runner.fn):
            return Evaluated.of_frame(runner.fn, frame, runner.required, runner.timeout)
        return Evaluated.from_results(runner.evaluate(configs))

    @property
    def quick(self) -> bool:
        """Write batches in one transaction (no 'running' rows) while evaluations are fast and in-process."""
        return self.last_eval_s < QUICK_BATCH_S and not self.runner.parallel

    def _store(self, numbers: list[int] | None, configs: list[dict], ev: Evaluated, keys: list[tuple],
               frame: pd.DataFrame | None, started: float | None = None) -> int:
        """Store a batch: finish reserved trials (`numbers`), or add them finished in one transaction (None);
        then tell the optimizer (with `frame`, the batch as the optimizer asked it, when there is one)."""
        study = self.study
        now = time.time()
        self.last_eval_s = float(ev.seconds.sum())
        ok = ev.ok
        metrics = ev.metrics
        missing = [m for m in study.spec.required if m not in metrics.columns]
        if missing:
            metrics = metrics.assign(**{m: np.nan for m in missing})
        F, CV, feas = study._F_CV(metrics, ok)
        rows = [
            {
                "number": num,
                "state": "complete" if good else "failed",
                "metrics": rec,
                "feasible": bool(f) if good else None,
                "error": err,
                "finished_at": now,
                "duration_s": float(sec),
            }
            for num, rec, err, sec, good, f in zip(numbers or [-1] * len(configs), ev.records, ev.errors,
                                                   ev.seconds, ok, feas)
        ]
        if numbers is None:
            for row, config in zip(rows, configs):
                del row["number"]
                row["params"] = config
                row["started_at"] = started
            numbers = study._storage.add_trials(study._id, rows, self.worker)
        else:
            study._storage.finish_trials(study._id, rows)
        # numbers 0..k-1 seen and this batch took k..: no other worker has written (sync may skip its query)
        self.contiguous = bool(numbers) and numbers[0] == len(self.seen_numbers) and numbers[-1] == numbers[0] + len(numbers) - 1
        self.seen_numbers.update(numbers)
        params = frame if frame is not None else _frame(configs).reindex(columns=study.space.names)
        self.opt.tell(params, F, CV)
        self._remember(params, F, CV, ok, feas, numbers, keys)
        return int((~ok).sum())


def _min_opt(*vals: int | None) -> int | None:
    given = [v for v in vals if v is not None]
    return min(given) if given else None


# -------------------------------------------------------------------------------------------------- module API
def _study_meta(space: Space, spec: ObjectiveSpec, description: str | None) -> dict:
    return {
        "space": space.to_dict(),
        "space_fingerprint": space.fingerprint(),
        **spec.to_dict(),
        "dse_version": __version__,
        "created_at": time.time(),
        "description": description or "",
    }


def create_study(
    name: str,
    space: Space,
    objectives: Mapping[str, str],
    *,
    constraints: Mapping[str, tuple[str, float]] | None = None,
    storage: str | BaseStorage | None = None,
    load_if_exists: bool = True,
    description: str | None = None,
) -> Study:
    """Create a study (or open the existing one of that name, if its space and objectives are the same).

    Args:
        name: letters, digits, '.', '_' or '-'.
        space: the :class:`dse.Space` searched.
        objectives: metric -> "min" | "max".
        constraints: metric -> (op, bound), e.g. ``{"ttft_ms": ("<=", 500)}``: violating trials are stored as
            infeasible and never on the front.
        storage: None (SQLite file ``studies/<name>.db``), ``":memory:"`` (this process only, nothing written to
            disk: keep the returned Study, as ``load_study(name, storage=":memory:")`` opens a new, empty database),
            any SQLAlchemy URL, a path to a .db file, or a storage.
        load_if_exists: reopen a study of that name; False raises StudyError if it exists.
    """
    _check_name(name)
    if not isinstance(space, Space):
        raise StudyError(f"space must be a dse.Space, got {type(space).__name__}")
    spec = ObjectiveSpec.build(objectives, constraints, space.names)
    st = storage if isinstance(storage, BaseStorage) else open_storage(storage, name)
    rec = st.get_study(name)
    if rec is not None:
        if not load_if_exists:
            raise StudyError(f"study {name!r} already exists in {st.url}; use load_study() or load_if_exists=True")
        _check_same(rec, space, spec, st.url)
        return Study(st, rec, space, spec)
    try:
        st.create_study(name, _study_meta(space, spec, description))
    except StudyError:
        pass  # another process created it between our check and insert: fall through and compare
    rec = st.get_study(name)
    if rec is None:
        raise StudyError(f"study {name!r} could not be created in {st.url}: it is absent right after its insert")
    _check_same(rec, space, spec, st.url)
    return Study(st, rec, space, spec)


def _check_same(rec: Mapping, space: Space, spec: ObjectiveSpec, url: str) -> None:
    meta = rec.get("meta") or {}
    if meta.get("space_fingerprint") != space.fingerprint():
        stored = Space.from_dict(meta["space"], callables=_callables(space)) if "space" in meta else None
        diff = _space_diff(stored, space) if stored is not None else "stored space unreadable"
        raise StudyError(
            f"study {rec['name']!r} in {url} was created with a different space ({diff}); use another study name, "
            "or dse.delete_study() first. Nothing stored was changed."
        )
    stored_spec = ObjectiveSpec.from_dict(meta)
    if stored_spec.objectives != spec.objectives or stored_spec.constraints != spec.constraints:
        raise StudyError(
            f"study {rec['name']!r} in {url} has objectives {stored_spec.objectives} and constraints "
            f"{dict(stored_spec.constraints)}; got {spec.objectives} and {dict(spec.constraints)}. "
            "Use another study name. Nothing stored was changed."
        )


def _callables(space: Space) -> dict:
    return {getattr(c, "__name__", None) or type(c).__name__: c for c in space.constraints if callable(c)}


def _space_diff(a: Space, b: Space) -> str:
    an, bn = set(a.names), set(b.names)
    if an != bn:
        return f"stored parameters {sorted(an)}, given {sorted(bn)}"
    for n in a.names:
        if a.params[n].to_dict() != b.params[n].to_dict():
            return f"parameter {n!r}: stored {a.params[n]!r}, given {b.params[n]!r}"
    return f"constraints: stored {list(map(str, a.constraints))}, given {list(map(str, b.constraints))}"


def load_study(
    name: str,
    *,
    storage: str | BaseStorage | None = None,
    callables: Mapping[str, Callable] | None = None,
) -> Study:
    """Open a stored study to inspect it or add trials; the space is rebuilt from what was stored.

    Constraints given as callables cannot be stored: pass them back in `callables` (function name -> function).
    """
    _check_name(name)
    st = storage if isinstance(storage, BaseStorage) else open_storage(storage, name)
    rec = st.get_study(name)
    if rec is None:
        names = list(st.list_studies()["name"]) if hasattr(st, "list_studies") else []
        raise StudyError(f"no study named {name!r} in {st.url}; studies there: {names}")
    meta = rec.get("meta") or {}
    space = Space.from_dict(meta["space"], callables=callables)
    spec = ObjectiveSpec.from_dict(meta)
    return Study(st, rec, space, spec)


def list_studies(storage: str | BaseStorage | None = None, root: str | os.PathLike = "studies") -> pd.DataFrame:
    """Studies in a storage; with storage=None, every SQLite study file under `root`."""
    if storage is not None:
        st = storage if isinstance(storage, BaseStorage) else open_storage(storage)
        df = st.list_studies()
        df.insert(1, "storage", st.url)
        return df
    frames = []
    for db in sorted(Path(root).glob("*.db")):
        try:
            st = open_storage(f"sqlite:///{db}")
            df = st.list_studies()
            df.insert(1, "storage", st.url)
            frames.append(df)
            st.close()
        except DSEError:
            continue
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["name", "storage", "n_trials"])


def delete_study(name: str, *, storage: str | BaseStorage | None = None) -> None:
    """Delete a study and its trials."""
    _check_name(name)
    st = storage if isinstance(storage, BaseStorage) else open_storage(storage, name)
    if st.get_study(name) is None:
        raise StudyError(f"no study named {name!r} in {st.url}")
    st.delete_study(name)
