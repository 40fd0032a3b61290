"""Parallel evaluation of configuration batches with joblib (backends loky, threading, dask).

``Runner.evaluate_batch`` evaluates a ``Batch``: a vectorized objective in this process straight on its frame,
anything else through ``evaluate``, which splits a batch of configurations into chunks, evaluates each chunk with :func:`dse.evaluation.evaluate_chunk` in a
worker, and returns one :class:`~dse.evaluation.Result` per configuration in order. A worker process that dies
(segfault, ``os._exit``, out of memory) does not stop the study: the chunk is evaluated again one configuration
per task and only the configurations that kill a worker on their own are marked failed.

Per-trial timeouts use SIGALRM in the process that runs the trial, so they apply with ``n_jobs=1`` and with the
process backends (loky); with ``threading`` and ``dask`` (tasks run in worker threads) they are not enforced.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import joblib

from .errors import OptimizerError
from .evaluation import Evaluated, Result, evaluate_chunk, is_vectorized
from .optimizers.batch import Batch
from .plain import frame_records

BACKENDS = ("loky", "threading", "dask")


@dataclass
class Runner:
    """Evaluates batches of configs with `fn`; keep one per optimize() call (its worker pool stays warm)."""

    fn: Callable
    required: list[str]
    n_jobs: int = 1
    backend: str = "loky"
    address: str | None = None      # dask.distributed scheduler address (backend="dask")
    timeout: float | None = None    # per-trial timeout, s

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptimizerError(f"backend {self.backend!r} is not known; valid backends are {BACKENDS}")
        if not isinstance(self.n_jobs, int) or self.n_jobs == 0 or self.n_jobs < -1:
            raise OptimizerError(f"n_jobs={self.n_jobs!r}; use a positive integer or -1 for all cores")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise OptimizerError(f"trial_timeout={self.timeout!r} must be a positive number of seconds")
        self._client: Any = None   # a distributed.Client once connected
        self._parallel: joblib.Parallel | None = None
        if self.backend == "dask":
            self._connect_dask()

    @property
    def workers(self) -> int:
        if self.backend == "dask" and self._client is not None:
            return max(1, sum(self._client.nthreads().values()))
        return joblib.cpu_count() if self.n_jobs == -1 else self.n_jobs

    @property
    def parallel(self) -> bool:
        return self.backend == "dask" or self.workers > 1

    def _connect_dask(self) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise OptimizerError("backend='dask' needs dask.distributed: pip install 'dse[dask]'") from None
        if self.address is None:
            raise OptimizerError("backend='dask' needs address= (a dask.distributed scheduler, e.g. 'tcp://127.0.0.1:8786')")
        try:
            self._client = Client(self.address, timeout="5s", set_as_default=False)
        except Exception as exc:
            raise OptimizerError(f"cannot connect to the dask scheduler at {self.address!r}: {exc}") from None

    def _pool(self) -> joblib.Parallel:
        if self._parallel is None:
            if self.backend == "dask":
                from joblib._dask import DaskDistributedBackend  # registers joblib's dask backend

                self._parallel = joblib.Parallel(
                    n_jobs=-1, backend=DaskDistributedBackend(client=self._client), return_as="list"
                )
            else:
                self._parallel = joblib.Parallel(n_jobs=self.n_jobs, backend=self.backend, return_as="list")
            self._parallel.__enter__()
        return self._parallel

    def evaluate_batch(self, batch: Batch) -> Batch:
        """The batch evaluated (``Batch.evaluated``): a vectorized objective in this process straight on its frame
        (no round trip through records), else configuration by configuration through ``evaluate``."""
        if not self.parallel and is_vectorized(self.fn):
            ev = Evaluated.of_frame(self.fn, batch.frame, self.required, self.timeout)
        else:
            ev = Evaluated.from_results(self.evaluate(frame_records(batch.frame, none_for_missing=True)))
        return batch.evaluated(ev.metrics, ev.errors, ev.seconds, ev.present())

    def evaluate(self, configs: list[dict]) -> list[Result]:
        """Evaluate every config; results in the same order. Never raises for a failing trial."""
        if not configs:
            return []
        if not self.parallel:
            return evaluate_chunk(self.fn, configs, self.required, self.timeout)
        n_chunks = min(len(configs), self.workers * (1 if getattr(self.fn, "__dse_vectorized__", False) else 4))
        size = math.ceil(len(configs) / n_chunks)
        chunks = [configs[i : i + size] for i in range(0, len(configs), size)]
        try:
            parts = self._run(chunks)
        except Exception as exc:
            if not _is_worker_death(exc):
                raise
            self.close()
            parts = [self._isolate(chunk) for chunk in chunks]
        return [r for part in parts for r in part]

    def _run(self, chunks: list[list[dict]]) -> list[list[Result]]:
        delayed = joblib.delayed(evaluate_chunk)
        return self._pool()(delayed(self.fn, c, self.required, self.timeout) for c in chunks)

    def _isolate(self, chunk: list[dict]) -> list[Result]:
        """Evaluate one config per task so that only the configs that kill a worker fail."""
        out: list[Result] = []
        for config in chunk:
            try:
                out.extend(self._run([[config]])[0])
            except Exception as exc:
                if not _is_worker_death(exc):
                    raise
                self.close()
                out.append(Result(None, f"worker process died while evaluating this configuration: {exc}", 0.0))
        return out

    def close(self) -> None:
        """Shut the worker pool down (the next evaluate() starts a new one)."""
        if self._parallel is not None:
            try:
                self._parallel.__exit__(None, None, None)
            finally:
                self._parallel = None

    def shutdown(self) -> None:
        self.close()
        if self._client is not None:
            self._client.close()
            self._client = None


def _is_worker_death(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name in {"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker"} or "died" in str(exc).lower()
