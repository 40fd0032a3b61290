"""Optuna's Bayesian samplers (TPE, GP) behind the ask/tell batch interface.

Each optimizer owns an in-memory ``optuna.Study`` (directions all "minimize" on F). A batch of ``n`` is asked at
once: ``study.ask(fixed_distributions)`` for the unconditional parameters, then conditional parameters are
suggested only on the trials where their condition holds (decided in parameter order, vectorized over the batch),
so Optuna sees the same define-by-run space live and when rebuilt. TPE runs with ``constant_liar=True`` so the
trials of a pending batch spread out.

Constraints: every told trial carries one Optuna constraint ``"cv"`` = CV (Optuna >= 5 reads constraints from the
trial: ``Trial.set_constraint`` / ``create_trial(constraints=...)``; the samplers' ``constraints_func`` argument is
deprecated there). A failed trial (NaN in F) is told as ``TrialState.FAIL``.

On a discrete space of at most ``repair.PROJECT_MAX`` feasible points (setting ``project=True``, the default), a
proposal that breaks the space's rules or repeats a seen configuration is told back as FAIL (so the sampler's
history stays small where most raw proposals break a rule) and replaced by the NEAREST VALID UNSEEN configuration
(``repair.Projector``), which is returned instead and reaches the sampler as a completed trial when it is told:
without projection the time goes to rejected proposals (benchmarks/optimizers.py; figures in docs/optimizers.md).

Otherwise (``project=False``, continuous or larger spaces) a proposal that the optimizer cannot return is told back
immediately and another is asked (at most ``max_rounds`` rounds), then the rest is drawn with ``space.sample``:

- it violates the space's conditions/constraints: TPE gets it as a COMPLETE trial marked infeasible
  (``cv`` = 1 + the largest CV seen, values = the worst told per objective) so its density moves away; GP gets
  it as FAIL (a fake value would bias the regression);
- it duplicates a configuration already told: told again with the known F and CV (a free observation, from the
  duplicate-elimination operator, which keeps every told configuration's result for these optimizers);
- it duplicates a configuration asked and not yet told, or another of the batch: FAIL.

Rebuild: trials told that were not asked here (storage, other workers) are added with ``study.add_trials``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from dse.encoding import config_from_optuna, optuna_distributions, optuna_params
from dse.errors import OptimizerError

from .base import BaseOptimizer, check_int
from .batch import Batch
from .repair import Projector, projector_for

_CV_KEY = "cv"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's INFO logging and experimental warnings for the duration (restores the level)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


class _OptunaOptimizer(BaseOptimizer):
    """Shared machinery of ``tpe`` and ``gp``; subclasses build the sampler."""

    keeps_outcomes = True   # a sampler's repeat of a told configuration is told its known result

    def __init__(self, space: Any, n_objectives: int, *, seed: int | None = None, **settings: Any) -> None:
        super().__init__(space, n_objectives, seed=seed, **settings)
        import optuna

        self.distributions = optuna_distributions(space)
        cond = {n for n in space.names if getattr(space.params[n], "when", None) is not None}
        self._fixed = {n: d for n, d in self.distributions.items() if n not in cond}
        self._conditional = [n for n in space.names if n in cond]
        self._placeholder = {n: self._first_value(n) for n in space.names}
        with _quiet_optuna():
            self.study = optuna.create_study(directions=["minimize"] * self.n_objectives, sampler=self._sampler())
        self._trials: dict[bytes, Any] = {}           # the Optuna trial of each configuration asked, by its key
        self._worst: np.ndarray | None = None
        self._max_cv = 0.0
        self._project: bool | None = None if (self.config.project and space.is_discrete) else False
        self._projector: Projector | None = None

    @property
    def projector(self) -> Projector | None:
        """The grid projector (setting ``project`` on a small enough discrete space), built on first use."""
        if self._project is None:
            self._projector = projector_for(self)
            self._project = self._projector is not None
        return self._projector

    def _first_value(self, name: str) -> Any:
        p = self.space.params[name]
        return p.first

    def _sampler(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ ask
    def _ask(self, n: int) -> Batch:
        out = self._ask_projected(n) if self.projector is not None else self._ask_rounds(n)
        if self._projector is not None:
            self._projector.mark(out.keys.tolist())
        return out

    def _ask_projected(self, n: int) -> Batch:
        """One round of ``n`` proposals; the unusable ones told as FAIL and replaced by their projection."""
        proj = self.projector
        assert proj is not None
        accepted: list[dict] = []
        acc_keys: dict[bytes, None] = {}
        with _quiet_optuna():
            trials = [self.study.ask(self._fixed) for _ in range(n)]
            configs = self._suggest_conditionals(trials)
            df = self._frame(configs)
            X, keys_arr = self.encoder.encode_keys(df)
            usable = np.asarray(self.space.feasible(df), dtype=bool) & ~self.is_seen(keys_arr)
            keys = keys_arr.tolist()
            rejected = []
            for i, (trial, cfg, ok, key) in enumerate(zip(trials, configs, usable, keys)):
                if ok and key not in acc_keys:
                    accepted.append(cfg)
                    acc_keys[key] = None
                    self._trials[key] = trial
                else:
                    self.study.tell(trial, state=self._fail_state())
                    rejected.append(i)
        parts: list[Batch] = []
        if accepted:
            parts.append(Batch(self._frame(accepted), np.array(list(acc_keys), dtype=object)))
        if rejected:
            proj.mark(acc_keys)
            rows = proj.nearest(X[rejected], self.rng)
            rows = rows[rows >= 0]
            if len(rows):
                parts.append(proj.batch(rows))
        return self.concat(parts)

    def _ask_rounds(self, n: int) -> Batch:
        accepted: list[dict] = []
        acc_keys: dict[bytes, None] = {}
        with _quiet_optuna():
            for _ in range(self.config.max_rounds):
                need = n - len(accepted)
                if need <= 0:
                    break
                trials = [self.study.ask(self._fixed) for _ in range(need)]
                configs = self._suggest_conditionals(trials)
                df = self._frame(configs)
                feasible = np.asarray(self.space.feasible(df), dtype=bool)
                keys = self.encoder.keys(df).tolist()
                for trial, cfg, ok, key in zip(trials, configs, feasible, keys):
                    known = self.duplicates.outcome(key) if ok else None
                    if not ok:
                        self._reject_infeasible(trial)
                    elif known is not None:
                        self._finish(trial, *known)
                    elif key in self.duplicates.pending or key in acc_keys:
                        self.study.tell(trial, state=self._fail_state())
                    else:
                        accepted.append(cfg)
                        acc_keys[key] = None
                        self._trials[key] = trial
        parts: list[Batch] = []
        if accepted:
            parts.append(Batch(self._frame(accepted), np.array(list(acc_keys), dtype=object)))
        if n > len(accepted):
            parts.append(self.sample_new(n - len(accepted), exclude=set(acc_keys)))
        return self.concat(parts)

    def _suggest_conditionals(self, trials: list[Any]) -> list[dict]:
        configs = [config_from_optuna(self.space, t.params) for t in trials]
        decided = set(self._fixed)
        for name in self._conditional:
            rows = [{k: (c[k] if k in decided else self._placeholder[k]) for k in self.space.names} for c in configs]
            active = np.asarray(self.space.active(self._frame(rows))[name], dtype=bool)
            for t, c, act in zip(trials, configs, active):
                c[name] = _suggest(t, name, self.distributions[name]) if act else None
            decided.add(name)
        return configs

    def _frame(self, configs: list[dict]) -> pd.DataFrame:
        return pd.DataFrame.from_records(configs, columns=self.space.names)

    def _fail_state(self) -> Any:
        from optuna.trial import TrialState

        return TrialState.FAIL

    def _reject_infeasible(self, trial: Any) -> None:
        self.study.tell(trial, state=self._fail_state())

    def _finish(self, trial: Any, f: np.ndarray, cv: float) -> None:
        if not np.all(np.isfinite(f)) or not np.isfinite(cv):
            self.study.tell(trial, state=self._fail_state())
            return
        trial.set_constraint(_CV_KEY, float(cv))
        self.study.tell(trial, [float(v) for v in f])

    # ------------------------------------------------------------------------------------------ tell
    def _tell(self, batch: Batch, F: np.ndarray, CV: np.ndarray, new: np.ndarray) -> None:
        from optuna.trial import TrialState, create_trial

        keys = batch.keys
        if self._projector is not None:
            self._projector.mark(keys.tolist())
        ok = np.all(np.isfinite(F), axis=1) & np.isfinite(CV)
        if ok.any():
            w = F[ok].max(axis=0)
            self._worst = w if self._worst is None else np.maximum(self._worst, w)
            self._max_cv = max(self._max_cv, float(CV[ok].max()))
        records: list[dict] | None = None   # the configurations as dicts, for trials not asked here
        foreign = []
        with _quiet_optuna():
            for i, key in enumerate(keys.tolist()):
                trial = self._trials.pop(key, None)
                if trial is not None:
                    self._finish(trial, F[i], CV[i])
                elif new[i]:
                    if records is None:
                        records = batch.frame.to_dict("records")
                    p = optuna_params(self.space, records[i])
                    dists = {k: self.distributions[k] for k in p}
                    if ok[i]:
                        foreign.append(create_trial(values=[float(v) for v in F[i]], params=p, distributions=dists,
                                                    constraints={_CV_KEY: float(CV[i])}))
                    else:
                        foreign.append(create_trial(state=TrialState.FAIL, params=p, distributions=dists))
            if foreign:
                self.study.add_trials(foreign)


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise OptimizerError(f"setting {name}={value!r} is invalid: True or False")


@dataclasses.dataclass(frozen=True)
class TPESettings:
    """TPE settings: batch_size (default ask size), n_startup_trials (random trials first), n_ei_candidates,
    multivariate (None: Optuna's default for the number of objectives), max_rounds (re-asks for rejected
    proposals before sampling), project (replace unusable proposals on a small discrete space by their nearest
    valid unseen configuration; module docstring)."""

    batch_size: int = 8
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    max_rounds: int = 4
    project: bool = True

    def __post_init__(self) -> None:
        _check_bool("project", self.project)
        check_int("batch_size", self.batch_size, 1)
        check_int("n_startup_trials", self.n_startup_trials, 0)
        check_int("n_ei_candidates", self.n_ei_candidates, 1)
        if self.multivariate is not None and not isinstance(self.multivariate, bool):
            raise OptimizerError(f"setting multivariate={self.multivariate!r} is invalid: True, False or None")
        check_int("max_rounds", self.max_rounds, 1, 100)


class TPEOptimizer(_OptunaOptimizer):
    """Optuna's TPESampler (multi-objective TPE, constant liar) through an in-memory study."""

    name = "tpe"
    Settings = TPESettings

    def default_batch_size(self) -> int:
        return self.config.batch_size

    def _sampler(self) -> Any:
        import optuna

        c = self.config
        return optuna.samplers.TPESampler(seed=self.seed, constant_liar=True, n_startup_trials=c.n_startup_trials,
                                          n_ei_candidates=c.n_ei_candidates, multivariate=c.multivariate,
                                          group=bool(self._conditional) and c.multivariate is True)

    def _reject_infeasible(self, trial: Any) -> None:
        values = self._worst if self._worst is not None else np.zeros(self.n_objectives)
        self._finish(trial, values, 1.0 + self._max_cv)


@dataclasses.dataclass(frozen=True)
class GPSettings:
    """GP settings: batch_size (default ask size), n_startup_trials (random trials first), deterministic
    (noise-free objective), max_rounds (re-asks for rejected proposals before sampling), project (as TPE's)."""

    batch_size: int = 4
    n_startup_trials: int = 10
    deterministic: bool = False
    max_rounds: int = 3
    project: bool = True

    def __post_init__(self) -> None:
        _check_bool("project", self.project)
        check_int("batch_size", self.batch_size, 1)
        check_int("n_startup_trials", self.n_startup_trials, 0)
        if not isinstance(self.deterministic, bool):
            raise OptimizerError(f"setting deterministic={self.deterministic!r} is invalid: True or False")
        check_int("max_rounds", self.max_rounds, 1, 100)


class GPOptimizer(_OptunaOptimizer):
    """Optuna's GPSampler (Gaussian-process BO; log EHVI for several objectives). Needs PyTorch (CPU build)."""

    name = "gp"
    Settings = GPSettings

    def __init__(self, space: Any, n_objectives: int, *, seed: int | None = None, **settings: Any) -> None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise OptimizerError(
                "optimizer 'gp' needs PyTorch: `pip install torch==2.13.0` (the CPU build is enough) or "
                "`pip install dse[gp]`; or use optimizer 'tpe', which needs nothing more"
            ) from None
        super().__init__(space, n_objectives, seed=seed, **settings)

    def default_batch_size(self) -> int:
        return self.config.batch_size

    def _sampler(self) -> Any:
        import optuna

        c = self.config
        return optuna.samplers.GPSampler(seed=self.seed, n_startup_trials=c.n_startup_trials,
                                         deterministic_objective=c.deterministic, warn_independent_sampling=False)
