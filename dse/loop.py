"""The ask / evaluate / store / tell loop of ``Study.optimize``: batches, the evaluation cache, claims of work
shared with other workers, crash recovery (aborted trials retried, dead workers' claims released), progress bar."""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import pareto as _pareto
from .objective import Evaluated, frame_records, is_vectorized, plain_values, worker_id
from .runner import Runner

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger(__name__)

#: Error prefix of trials that did not fail on their own (crash, Ctrl-C): their configurations are retried.
ABORTED = "aborted: "

#: Batches evaluated in less than this (s, in-process) are stored finished in one transaction, without the
#: 'running' rows that make slow batches visible and recoverable while they run.
QUICK_BATCH_S = 0.05


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


def reclaim_dead(study: Study) -> int:
        """Release the work claims of dead local processes, and mark the trials they left running as aborted (the
        loop retries them); return how many trials."""
        claims = study._storage.claims(study._id)
        gone = _dead_local(set(claims.values()))
        if gone:
            study._storage.release_claims(study._id, [k for k, w in claims.items() if w in gone])
        dead = _dead_local(set(study._storage.running_workers(study._id)))
        if not dead:
            return 0
        rows = study._storage.fail_running(
            study._id, workers=dead, reason=ABORTED + "the worker process died (crash or kill); configuration retried"
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


class Loop:
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
        reclaim_dead(study)
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
