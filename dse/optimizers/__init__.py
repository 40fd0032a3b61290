"""Optimizers behind one ask/tell batch interface: nsga2, nsga3, tpe, gp, random, grid.

    opt = get_optimizer("nsga2", space, n_objectives=2, seed=0, pop_size=100)
    df = opt.ask(opt.default_batch_size())      # feasible, new configurations
    opt.tell(df, F, CV)                         # F to minimize (NaN row = failed), CV >= 0 (0 = feasible)

    batch = opt.ask_batch(n)                    # the same as a Batch (frame, keys, encoding: ``batch``) ...
    opt.tell_batch(batch.scored(F, CV, CV == 0))  # ... told back without encoding it again (what Study.optimize does)

See ``base`` for the conventions, ``batch`` for the Batch, ``duplicates`` for the evaluation cache, ``evolutionary``
(pymoo), ``bayesian`` (Optuna), ``simple`` (random, grid).
"""
from __future__ import annotations

import math
from typing import Any

from dse.errors import OptimizerError

from .base import BaseOptimizer
from .bayesian import GPOptimizer, TPEOptimizer
from .evolutionary import NSGA2Optimizer, NSGA3Optimizer
from .simple import GridOptimizer, RandomOptimizer

OPTIMIZERS: dict[str, type[BaseOptimizer]] = {
    "nsga2": NSGA2Optimizer,
    "nsga3": NSGA3Optimizer,
    "tpe": TPEOptimizer,
    "gp": GPOptimizer,
    "random": RandomOptimizer,
    "grid": GridOptimizer,
}

#: ``choose_auto``: a discrete space with at most this many feasible points is enumerated when no budget is given
#: (vectorized objective: enumerating costs less than any optimizer's run up to this size; benchmarks/optimizers.py
#: and benchmarks/engine.py, figures in docs/optimizers.md).
AUTO_GRID_MAX_VECTORIZED = 1_000_000
#: ... and for a per-configuration (possibly expensive) objective.
AUTO_GRID_MAX_SCALAR = 1_000
#: ``choose_auto``: a per-configuration objective with a budget at most this small gets ``tpe``.
AUTO_TPE_MAX_BUDGET = 500


def get_optimizer(name: str, space: Any, n_objectives: int, *, seed: int | None = None,
                  **settings: Any) -> BaseOptimizer:
    """A new optimizer by name; OptimizerError listing the valid names (or naming a bad setting)."""
    cls = OPTIMIZERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise OptimizerError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)} (or 'auto')")
    return cls(space, n_objectives, seed=seed, **settings)


def choose_auto(space: Any, n_objectives: int, *, vectorized: bool, budget: int | None) -> str:
    """The optimizer ``optimizer="auto"`` runs. The rule, in order (evidence: benchmarks/optimizers.py, whose
    results and reading are in docs/optimizers.md):

    1. ``"grid"`` when the space is discrete and its feasible points can all be evaluated: ``space.size <= budget``
       when a budget (number of trials) is given, else ``space.size <= 1_000_000`` for a vectorized objective and
       ``<= 1_000`` for a per-configuration one. Enumerating gives the exact front, and a vectorized cost model
       enumerates such a grid faster than any optimizer runs.
    2. ``"tpe"`` for a per-configuration (not ``@vectorized``, so presumably expensive) objective with a budget of
       at most 500 trials: it needs the fewest evaluations, while its own cost per trial (Optuna's multi-objective
       TPE, growing with the history) is negligible next to an expensive evaluation.
    3. ``"nsga2"`` otherwise: cheap per trial, vectorized batches of a population; with its grid-projection repair
       it nears the exact front's hypervolume with a small share of the grid, ahead of Optuna's and pymoo's NSGA-II
       at every budget (docs/optimizers.md).
    """
    if n_objectives < 1:
        raise OptimizerError(f"n_objectives={n_objectives!r} must be a positive integer")
    size = space.size if space.is_discrete else math.inf
    if space.is_discrete:
        limit = budget if budget is not None else (AUTO_GRID_MAX_VECTORIZED if vectorized else AUTO_GRID_MAX_SCALAR)
        if size <= limit:
            return "grid"
    if not vectorized and budget is not None and budget <= AUTO_TPE_MAX_BUDGET:
        return "tpe"
    return "nsga2"


__all__ = [
    "OPTIMIZERS", "BaseOptimizer", "GPOptimizer", "GridOptimizer", "NSGA2Optimizer", "NSGA3Optimizer",
    "RandomOptimizer", "TPEOptimizer", "choose_auto", "get_optimizer",
]
