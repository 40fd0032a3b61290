"""The ask / evaluate / store / tell loop of ``Study.optimize``: batches, the evaluation cache, claims of work
shared with other workers, crash recovery (aborted trials retried, dead workers' claims released), progress bar."""
from __future__ import annotations

import logging
import math
import os
import socket
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import pareto as _pareto
from .evaluation import is_vectorized, worker_id
from .optimizers.batch import Batch
from .plain import frame_records
from .runner import Runner

if TYPE_CHECKING:
    from .study import Study

logger = logging.getLogger(__name__)

#: Error prefix of trials that did not fail on their own (crash, Ctrl-C): their configurations are retried.
ABORTED = "aborted: "

#: Batches evaluated in less than this (s, in-process) are stored finished in one transaction, without the
#: 'running' rows that make slow batches visible and recoverable while they run.
QUICK_BATCH_S = 0.05


def _frame(rows: list[dict]) -> pd.DataFrame:
    """One row per dict, also when every dict is empty (from_records alone would give no rows)."""
    return pd.DataFrame.from_records(rows, index=range(len(rows)))


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows of a DataFrame of configurations as dicts of plain Python values, missing values (NaN, None, NA) as
    None: what a per-configuration objective is given and what a reserved trial stores."""
    return frame_records(df, none_for_missing=True)


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
    """The ask / evaluate / store / tell loop of one optimize() call.

    A batch travels as one ``Batch`` from the optimizer's ask (the configurations' DataFrame, their keys and, where
    the ask had it, their encoding: ``ask_batch``) through the runner (``evaluate_batch``: the metrics frame,
    errors, timings), the study's scoring (``Study._scored``: objective matrix F, violations CV, feasible flags) and
    storage (``store_batch``: written column by column, given its trial numbers) to the optimizer's
    ``tell_batch``, which reads F and CV from it and encodes nothing again. Trials read from storage (other
    workers', earlier runs') are told the same way, as a ``Batch`` built once from the table.
    """

    def __init__(self, study: Study, opt, runner: Runner, batch_size: int | None, progress: bool | None,
                 resume: str | None = None) -> None:
        self.study, self.opt, self.runner = study, opt, runner
        self.resume = resume or "run optimize() again"   # how to continue after Ctrl-C (`Study.optimize` resume=)
        if batch_size is None and is_vectorized(runner.fn) and not runner.parallel:
            batch_size = opt.vectorized_batch_size()
        self.batch_size = batch_size or opt.default_batch_size()
        self.progress_flag = progress
        self.worker = worker_id()
        self.names = study.space.names
        self.n_seen = 0          # finished trials this loop has told (its own and read from storage)
        self.floor = 0          # smallest trial number that may still change state
        self.contiguous = False     # set by _store: the last batch's numbers followed every number seen
        self.last_eval_s = math.inf   # evaluation time of the last batch, s (the first batch is always reserved)
        self.aborted = 0        # aborted trials seen (crash or Ctrl-C): they do not count towards max_trials
        self.aborted_configs: dict[bytes, dict] = {}   # their configurations, retried unless evaluated since
        self.front_F = np.zeros((0, len(study.spec.names)))
        self.front_numbers = np.zeros(0, dtype=np.int64)   # trial numbers of the rows of front_F
        self.claimed: list[str] = []   # work claims this loop took (released if it stops on an error or Ctrl-C)
        self._seen_upto = -1    # every trial number <= this was seen by this loop (numbers are handed out in order)
        self._seen_extra: set[int] = set()   # numbers seen above it (another worker's trials interleaved)
        if hasattr(opt, "claim") and getattr(opt, "block", None):
            opt.claim = self._claim_block   # workers on this study split the grid through the storage

    def _claim_block(self, index: int) -> bool:
        """Claim grid block ``index`` for this loop (keyed by the block size, the same in every worker)."""
        key = f"grid:{self.opt.block}:{index}"
        ok = self.study._storage.claim(self.study._id, key, self.worker)
        if ok:
            self.claimed.append(key)
        return ok

    def _saw(self, numbers: np.ndarray) -> None:
        """Record trial numbers as seen (kept as a high-water mark plus the few seen above a gap)."""
        if not len(numbers):
            return
        self.n_seen += len(numbers)
        lo, hi = int(numbers.min()), int(numbers.max())
        if lo == self._seen_upto + 1 and hi - lo + 1 == len(numbers) and not self._seen_extra:
            self._seen_upto = hi
            return
        self._seen_extra.update(numbers.tolist())
        while self._seen_upto + 1 in self._seen_extra:
            self._seen_upto += 1
            self._seen_extra.discard(self._seen_upto)

    def _unseen(self, numbers: np.ndarray) -> np.ndarray:
        """Mask of the trial numbers this loop has not seen."""
        out = numbers > self._seen_upto
        if self._seen_extra and out.any():
            out &= ~np.isin(numbers, np.fromiter(self._seen_extra, dtype=np.int64, count=len(self._seen_extra)))
        return out

    # -- state from storage
    def sync(self) -> None:
        """Tell the optimizer every finished trial it has not seen (stored before, or by other workers)."""
        st, sid = self.study._storage, self.study._id
        if self.contiguous:
            return  # our last batch took the numbers right after everything we had seen: nobody else wrote
        if st.count_trials(sid) == self.n_seen:
            return  # nothing stored that this loop has not seen (the common single-worker case): skip the read
        table = st.load_table(sid, min_number=self.floor)
        if not len(table):
            return
        state = table.base["state"].to_numpy()
        numbers = table.base["number"].to_numpy()
        running = state == "running"
        self.floor = int(numbers[running].min()) if running.any() else int(numbers.max()) + 1
        new = ~running & self._unseen(numbers)
        if new.any():
            self._tell_table(table, new)

    def _tell_table(self, table, rows: np.ndarray) -> None:
        """Tell the optimizer the finished trials ``rows`` (a mask) of a table read from storage."""
        idx = np.flatnonzero(rows)
        params = table.params.iloc[idx].reindex(columns=self.names).reset_index(drop=True)
        base = table.base.iloc[idx]
        errors = base["error"].to_numpy(dtype=object).copy()   # the batch's ok mask is "complete"
        complete = (base["state"] == "complete").to_numpy()
        errors[complete] = None
        errors[~complete & pd.isna(errors)] = "failed"   # a failed trial stored without its reason is still failed
        aborted = base["error"].fillna("").astype(str).str.startswith(ABORTED).to_numpy()
        X, keys = self.opt.encoder.encode_keys(params)   # once: the tell below uses them
        batch = self.study._scored(
            Batch(params, keys, X).evaluated(table.metrics.iloc[idx].reset_index(drop=True), errors,
                                             base["duration_s"].to_numpy(dtype=float))
        ).numbered(base["number"].to_numpy())
        self._saw(base["number"].to_numpy())
        self.aborted += int(aborted.sum())
        if aborted.any():
            for rec, k in zip(_records(params[aborted]), keys[aborted].tolist()):
                self.aborted_configs.setdefault(k, rec)
        keep = ~aborted
        if keep.any():
            self.opt.tell_batch(batch if keep.all() else batch.take(keep))
        self._remember(batch)

    def _remember(self, batch: Batch) -> None:
        """Update the front with the feasible trials of a scored, numbered batch."""
        F, feas, numbers = batch.F, batch.feasible, batch.numbers
        assert F is not None and feas is not None and numbers is not None
        if feas.any():
            cand = np.vstack([self.front_F, F[feas]])
            nums = np.concatenate([self.front_numbers, numbers[feas]])
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
        told = self.opt.was_told(np.array(list(self.aborted_configs), dtype=object))
        retry = [rec for rec, t in zip(self.aborted_configs.values(), told) if not t]
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
                batch = self._next_batch(n, retry)
                if not len(batch):
                    if stale_rounds >= 3 or self.opt.exhausted:
                        break
                    stale_rounds += 1
                    continue
                stale_rounds = 0
                if self.quick:
                    # batches that evaluate in milliseconds are written once, finished (one transaction): a crash
                    # mid-batch loses only that batch's work, which the rebuilt optimizer simply asks again
                    started = time.time()
                    failed += self._store(None, self.runner.evaluate_batch(batch), started)
                else:
                    started = time.time()
                    numbers = st.reserve_trials(sid, _records(batch.frame), self.worker)
                    failed += self._store(numbers, self.runner.evaluate_batch(batch), started)
                    numbers = []
                done += len(batch)
                bar.update(len(batch), len(self.front_F), failed)
                self.sync()
        except KeyboardInterrupt:
            if numbers:
                st.fail_running(sid, numbers=numbers, reason=ABORTED + "interrupted by the user (Ctrl-C); configuration retried")
            self._release_claims()
            logger.warning("interrupted: %r keeps every finished trial; %s to continue", study.name, self.resume)
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

    def _next_batch(self, n: int, retry: list[dict]) -> Batch:
        """Up to ``n`` configurations to evaluate (retried aborted ones first, then asked ones not evaluated in this
        study yet), with their keys."""
        parts: list[Batch] = []
        seen: set[bytes] = set()
        if retry:
            take = retry[:n]
            del retry[:n]
            frame = _frame(take).reindex(columns=self.names)
            X, keys = self.opt.encoder.encode_keys(frame)
            fresh = ~self.opt.was_told(keys)
            for i, k in enumerate(keys.tolist()):
                fresh[i] = fresh[i] and k not in seen
                seen.add(k)
            if fresh.any():
                parts.append(Batch(frame, keys, X).take(fresh))
        have = sum(len(p) for p in parts)
        if have < n:
            # the optimizer never asks a configuration it was told (evaluated in this study): no cache to consult
            asked = self.opt.ask_batch(n - have)
            if seen:   # a retried configuration asked again: evaluated once, in the retry part of this batch
                keys = asked.keys
                asked = asked.take(np.fromiter((k not in seen for k in keys.tolist()), dtype=bool, count=len(keys)))
            parts.append(asked)
        parts = [p for p in parts if len(p)]
        if not parts:
            return Batch(pd.DataFrame(columns=self.names), np.empty(0, dtype=object))
        return Batch.concat(parts)

    @property
    def quick(self) -> bool:
        """Write batches in one transaction (no 'running' rows) while evaluations are fast and in-process."""
        return self.last_eval_s < QUICK_BATCH_S and not self.runner.parallel

    def _store(self, numbers: list[int] | None, batch: Batch, started: float) -> int:
        """Score and store an evaluated batch: finish reserved trials (`numbers`), or add them finished, column by
        column, in one transaction (None); then tell the optimizer the batch. Return how many trials failed."""
        study = self.study
        now = time.time()
        assert batch.seconds is not None   # evaluated by the runner
        self.last_eval_s = float(batch.seconds.sum())
        batch = study._storage.store_batch(study._id, study._scored(batch), self.worker, started_at=started,
                                           finished_at=now, numbers=numbers)
        nums, n = batch.numbers, len(batch)
        assert nums is not None
        # numbers 0..k-1 seen and this batch took k..: no other worker has written (sync may skip its query)
        self.contiguous = bool(n) and int(nums[0]) == self.n_seen and int(nums[-1]) == int(nums[0]) + n - 1
        self._saw(nums)
        self.opt.tell_batch(batch)
        self._remember(batch)
        return int((~batch.ok).sum())


def _min_opt(*vals: int | None) -> int | None:
    given = [v for v in vals if v is not None]
    return min(given) if given else None
