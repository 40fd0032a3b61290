"""NSGA-II and NSGA-III (pymoo 0.6 survival and variation operators) behind the ask/tell batch interface.

State is a population of at most ``pop_size`` evaluated configurations (encoded ``X``, minimized ``F``,
violation ``CV``). Every ``tell`` merges the told trials into the population and applies pymoo's survival
(NSGA-II: ``RankAndCrowding``; NSGA-III: ``ReferenceDirectionSurvival``), which is feasibility-first: feasible
configurations rank before infeasible ones, infeasible ones by increasing CV. Failed trials (NaN in F) count as
evaluated but never enter the population. Telling a batch of ``pop_size`` is one NSGA generation; a fresh
optimizer told every stored trial at once rebuilds its population by the same survival (no pickles).

``ask(n)``:

1. Initial population: until ``n_initial`` configurations have been seen (default: the number of distinct values
   of the discrete parameters, each counted up to ``pop_size``, within [pop_size, 4 * pop_size]), and whenever the population has
   fewer than 2 members, a STRATIFIED draw: from a pool of valid unseen configurations (the grid's free points,
   or ``space.sample``), the subset that covers every value of every parameter most evenly
   (``repair.stratified``), so rare values that matter (FP4, which only one GPU runs) are there from the start.
   A space of real (unstepped Float) parameters only gets a Latin hypercube instead (pymoo's ``sampling_lhs``):
   exactly one point in each of the ``n`` equal bins of every column: the optimum of the same criterion, drawn
   directly instead of picked greedily from a pool.
2. Otherwise offspring: binary tournaments (feasibility, domination, crowding / random for NSGA-III), then
   ``MixedCrossover`` and ``MixedMutation`` (per column kind, see ``operators``), plus a uniform reset of ordinal
   discrete genes (``reset_mutation`` genes per child on average: polynomial mutation alone rarely jumps far on a
   short ordinal domain), decoded to exactly valid values. Genes of parameters that are inactive in a parent are
   re-drawn uniformly before variation, so a child that activates the parameter gets a random value.
3. Repair, so that every asked configuration is feasible and new (never asked or told before):
   - ``repair="project"`` (default for discrete spaces of at most ``repair.PROJECT_MAX`` feasible points): a child
     that breaks a rule or repeats a seen configuration is replaced by the nearest valid unseen configuration
     (fewest parameters changed, then smallest ordinal moves; ``repair.Projector``);
   - ``repair="resample"`` (continuous or larger spaces): such children are discarded and the variation repeated
     (up to ``repair_rounds`` rounds, adaptively oversampled); what is still missing is drawn with
     ``space.sample``.
   On an exhausted discrete space ask returns fewer rows, then none.

Defaults come from benchmarks/optimizers.py (hypervolume ratio to the exact front; figures in docs/optimizers.md):
a small population (20) with projection repair, which came far closer to the exact front at a few hundred
evaluations than population 100 with discard-and-resample.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.sampling.lhs import sampling_lhs
from pymoo.util.misc import random_permutations
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from pymoo.util.randomized_argsort import randomized_argsort

from dse.errors import OptimizerError

from .base import BaseOptimizer, check_float, check_int
from .batch import Batch
from .operators import MixedCrossover, MixedMutation, binary_tournament
from .repair import PROJECT_MAX, ProjectionRepair, Projector, ResampleRepair, projector_for, stratified

REPAIRS = ("auto", "project", "resample")


@dataclasses.dataclass(frozen=True)
class NSGA2Settings:
    """NSGA-II settings.

    pop_size: population size (also the default batch). prob_crossover: probability that a mating crosses
    (else the parents are copied, then mutated). eta_crossover / eta_mutation: SBX / polynomial-mutation
    distribution indices for real columns. eta_discrete: both indices for ordinal columns (pymoo's integer recipe
    uses 3). prob_mutation: per-gene mutation probability (None: 1/d). reset_mutation: expected number of ordinal
    discrete genes per child reset to a uniformly random value (0 = off). n_initial: size of the stratified initial
    population (None: the number of distinct values of the discrete parameters, each counted up to pop_size,
    within [pop_size, 4 * pop_size]). repair: "project" (nearest
    valid unseen point of a discrete space's grid), "resample" (discard and vary again), "auto" (project when
    the space is discrete with at most ``repair.PROJECT_MAX`` feasible points). repair_rounds: variation rounds
    before falling back to sampling ("resample").
    """

    pop_size: int = 20
    prob_crossover: float = 0.9
    eta_crossover: float = 15.0
    eta_mutation: float = 5.0
    eta_discrete: float = 3.0
    prob_mutation: float | None = None
    reset_mutation: float = 1.0
    n_initial: int | None = None
    repair: str = "auto"
    repair_rounds: int = 10

    def __post_init__(self) -> None:
        check_int("pop_size", self.pop_size, 2)
        check_float("reset_mutation", self.reset_mutation, 0.0)
        if self.n_initial is not None:
            check_int("n_initial", self.n_initial, 2)
        if self.repair not in REPAIRS:
            raise OptimizerError(f"setting repair={self.repair!r} is invalid; valid: {', '.join(map(repr, REPAIRS))}")
        check_float("prob_crossover", self.prob_crossover, 0.0, 1.0)
        check_float("eta_crossover", self.eta_crossover, 0.0, open_low=True)
        check_float("eta_mutation", self.eta_mutation, 0.0, open_low=True)
        check_float("eta_discrete", self.eta_discrete, 0.0, open_low=True)
        if self.prob_mutation is not None:
            check_float("prob_mutation", self.prob_mutation, 0.0, 1.0)
        check_int("repair_rounds", self.repair_rounds, 1, 1000)


@dataclasses.dataclass(frozen=True)
class NSGA3Settings(NSGA2Settings):
    """NSGA-III settings: NSGA-II's plus the reference directions.

    ref_dirs: "das-dennis" (the most directions of a Das-Dennis lattice that fit in pop_size) or "energy"
    (Riesz s-energy, exactly pop_size directions); "auto": das-dennis when its lattice fills at least half the
    population, else energy. n_partitions: force the Das-Dennis partitions.
    """

    ref_dirs: str = "auto"
    n_partitions: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ref_dirs not in ("auto", "das-dennis", "energy"):
            raise OptimizerError(f"setting ref_dirs={self.ref_dirs!r} is invalid; valid: 'auto', 'das-dennis', "
                                 "'energy'")
        if self.n_partitions is not None:
            check_int("n_partitions", self.n_partitions, 1)


class NSGA2Optimizer(BaseOptimizer):
    """NSGA-II (Deb et al. 2002) with mixed-variable operators, composed pymoo style with the duplicate-elimination
    operator (``duplicates``, exact keys) and a repair operator (``repair``: ``ProjectionRepair`` or
    ``ResampleRepair``, chosen by the ``repair`` setting)."""

    name = "nsga2"
    Settings = NSGA2Settings

    def __init__(self, space: Any, n_objectives: int, *, seed: int | None = None, **settings: Any) -> None:
        super().__init__(space, n_objectives, seed=seed, **settings)
        c, enc = self.config, self.encoder
        n_choices = np.array([col.n_values for col in enc.columns], dtype=np.int64)
        self.crossover = MixedCrossover(enc.kinds, enc.xl, enc.xu, eta=c.eta_crossover, eta_discrete=c.eta_discrete,
                                        prob=c.prob_crossover)
        self.mutation = MixedMutation(enc.kinds, enc.xl, enc.xu, n_choices, eta=c.eta_mutation,
                                      eta_discrete=c.eta_discrete, prob_var=c.prob_mutation)
        self.problem = Problem(n_var=max(enc.n_var, 1), n_obj=self.n_objectives, n_ieq_constr=1,
                               xl=enc.xl if enc.n_var else np.zeros(1), xu=enc.xu if enc.n_var else np.ones(1))
        self.survival = self._make_survival()
        d = enc.n_var
        self.pop_X = np.zeros((0, d))
        self.pop_F = np.zeros((0, self.n_objectives))
        self.pop_CV = np.zeros(0)
        self.pop_inactive = np.zeros((0, d), dtype=bool)
        self.pop_crowding: np.ndarray | None = np.zeros(0)
        values = sum(min(int(col.n_values), c.pop_size) for col in enc.columns if col.kind != "real")
        self.n_initial = c.n_initial if c.n_initial is not None else max(c.pop_size, min(values, 4 * c.pop_size))
        self._all_real = enc.n_var > 0 and all(k == "real" for k in enc.kinds)
        self._reset_cols = np.array([j for j, col in enumerate(enc.columns) if col.kind == "ordinal" and col.n_values],
                                    dtype=np.int64)
        if c.repair == "project" and not space.is_discrete:
            raise OptimizerError("setting repair='project' needs a discrete space (Categorical, Int, or Float with "
                                 "step=); use repair='resample' or 'auto'")
        # projection: decided on first use (the grid is enumerated at most up to PROJECT_MAX points)
        self._project: bool | None = None if (c.repair != "resample" and space.is_discrete) else False
        self._repair: ProjectionRepair | ResampleRepair | None = None

    @property
    def repair(self) -> ProjectionRepair | ResampleRepair:
        """The repair operator this optimizer is composed with: ``ProjectionRepair`` (repair "project"/"auto" on a
        discrete space of at most ``PROJECT_MAX`` feasible points, built on first use with every seen point
        marked), else ``ResampleRepair``."""
        if self._repair is None:
            proj = projector_for(self) if self._project is None else None
            if proj is None and self.config.repair == "project":
                raise OptimizerError(f"setting repair='project' needs at most {PROJECT_MAX:,} feasible points; this "
                                     "space has more: use repair='resample' or 'auto'")
            self._repair = ProjectionRepair(proj) if proj is not None else ResampleRepair(self.config.repair_rounds)
        return self._repair

    @property
    def projector(self) -> Projector | None:
        """The grid projector of a ``ProjectionRepair``, else None."""
        rep = self.repair
        return rep.projector if isinstance(rep, ProjectionRepair) else None

    def _make_survival(self) -> Any:
        # imported here: the module pulls in scipy.spatial (slow to import), needed only by the evolutionary optimizers
        from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function

        return get_crowding_function("cd")

    def default_batch_size(self) -> int:
        return self.config.pop_size

    @property
    def population(self) -> pd.DataFrame:
        """The current population's configurations (decoded), for inspection."""
        return self.encoder.decode(self.pop_X)

    # ------------------------------------------------------------------------------------------ tell
    def _tell(self, batch: Batch, F: np.ndarray, CV: np.ndarray, new: np.ndarray) -> None:
        if isinstance(self._repair, ProjectionRepair):
            self._repair.projector.mark(batch.keys.tolist())
        ok = new & np.all(np.isfinite(F), axis=1)
        if not ok.any():
            return
        X = self.encoded(batch)
        inactive = (batch.frame.isna().to_numpy()[ok] if self.encoder.has_conditionals
                    else np.zeros((int(ok.sum()), X.shape[1]), bool))
        self._survive(np.vstack([self.pop_X, X[ok]]), np.vstack([self.pop_F, F[ok]]),
                      np.concatenate([self.pop_CV, CV[ok]]), np.vstack([self.pop_inactive, inactive]))

    def _survive(self, X: np.ndarray, F: np.ndarray, CV: np.ndarray, inactive: np.ndarray) -> None:
        idx, crowding = self._select(F, CV, min(self.config.pop_size, len(X)))
        self.pop_X, self.pop_F, self.pop_CV, self.pop_inactive = X[idx], F[idx], CV[idx], inactive[idx]
        self.pop_crowding = crowding

    def _select(self, F: np.ndarray, CV: np.ndarray, n_survive: int) -> tuple[np.ndarray, np.ndarray | None]:
        """pymoo's ``RankAndCrowding`` survival (NSGA-II) on arrays, step for step, without building a pymoo
        ``Population`` of ``Individual`` objects (which costs more than the survival itself): feasible first,
        by non-dominated rank, the split front by crowding distance (random ties); then infeasible by CV."""
        feas = np.flatnonzero(CV <= 0)
        infeas = np.flatnonzero(CV > 0)
        infeas = infeas[np.argsort(CV[infeas], kind="stable")]
        survivors: list[np.ndarray] = []
        crowd: list[np.ndarray] = []
        count = 0
        if len(feas) and n_survive:
            Ff = F[feas]
            fronts = NonDominatedSorting().do(Ff, n_stop_if_ranked=min(len(feas), n_survive))
            for front in fronts:
                front = np.asarray(front)
                if count + len(front) > n_survive:
                    n_remove = count + len(front) - n_survive
                    cd = self.survival.do(Ff[front], n_remove=n_remove)
                    order = randomized_argsort(cd, order="descending", method="numpy", random_state=self.rng)
                    keep = order[:-n_remove]
                else:
                    cd = self.survival.do(Ff[front], n_remove=0)
                    keep = np.arange(len(front))
                survivors.append(feas[front[keep]])
                crowd.append(np.asarray(cd, dtype=float)[keep])
                count += len(keep)
                if count >= n_survive:
                    break
        if count < n_survive and len(infeas):
            extra = infeas[: n_survive - count]
            survivors.append(extra)
            crowd.append(np.full(len(extra), np.nan))
        if not survivors:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return np.concatenate(survivors).astype(np.int64), np.concatenate(crowd)

    # ------------------------------------------------------------------------------------------ ask
    def _ask(self, n: int) -> Batch:
        n_init = n if len(self.pop_X) < 2 else max(0, min(n, self.n_initial - self.n_seen))
        parts: list[Batch] = [self._initial(n_init)] if n_init else []
        exclude: set = set(parts[0].keys.tolist()) if parts else set()
        need = n - len(exclude)
        if need > 0:
            parts.append(self._offspring(need, exclude))
            need = n - len(exclude)
            if need > 0:
                parts.append(self.sample_new(need, exclude))
        out = self.concat(parts)
        if isinstance(self._repair, ProjectionRepair):
            self._repair.projector.mark(out.keys.tolist())
        return out

    def _initial(self, n: int) -> Batch:
        """``n`` new feasible configurations, stratified over every parameter's values (module docstring, 1.)."""
        proj = self.projector
        if proj is not None:
            pool = proj.batch(proj.free_rows(self.rng, max(20 * n, 1000)))
        elif self._all_real:
            return self._latin_hypercube(n)
        else:
            pool = self.sample_new(10 * n)
        if len(pool) <= n:
            return pool
        enc = self.encoder
        idx = stratified(self.encoded(pool), enc.kinds, [col.n_values for col in enc.columns], n, self.rng)
        return pool.take(idx)

    def _latin_hypercube(self, n: int) -> Batch:
        """``n`` new configurations of an all-real space: a Latin hypercube over the encoded box (log-scaled
        Floats in log space); rows that break a rule or were seen are replaced by ``sample_new`` draws."""
        enc = self.encoder
        X = sampling_lhs(n, enc.n_var, enc.xl, enc.xu, smooth=True, criterion=None, random_state=self.rng)
        cand, keys, Xc = enc.decode_all(X)
        got = self.select_new(cand, n, check=bool(self.space.constraints), keys=keys, X=Xc)
        if len(got) == n:
            return got
        return self.concat([got, self.sample_new(n - len(got), set(got.keys.tolist()))])

    def _offspring(self, n: int, exclude: set) -> Batch:
        """Up to ``n`` new feasible offspring from the repair operator this optimizer is composed with; adds their
        keys to ``exclude``."""
        return self.repair.offspring(self, n, exclude)

    def vary(self, n_matings: int) -> np.ndarray:
        """Encoded children of ``n_matings`` binary-tournament matings (2 each): crossover, mutation, resets."""
        N = len(self.pop_X)
        P = random_permutations(math.ceil(n_matings * 4 / N), N, random_state=self.rng)[: n_matings * 4]
        P = P.reshape(n_matings * 2, 2)
        winners = binary_tournament(self.pop_F, self.pop_CV, self.pop_crowding, P, self.rng)
        parents = winners.reshape(n_matings, 2).T  # (2, n_matings)
        Xp = self.pop_X[parents].copy()
        inact = self.pop_inactive[parents]
        if inact.any():
            rnd = self.encoder.xl + self.rng.random(Xp.shape) * (self.encoder.xu - self.encoder.xl)
            Xp[inact] = rnd[inact]
        Q = self.mutation.mutate(self.crossover.cross(Xp, self.rng), self.rng)
        cols = self._reset_cols
        if len(cols) and self.config.reset_mutation > 0:
            # uniform reset of ordinal discrete genes: reset_mutation genes per child on average
            hit = self.rng.random((len(Q), len(cols))) < min(1.0, self.config.reset_mutation / self.encoder.n_var)
            lo, hi = self.encoder.xl[cols], self.encoder.xu[cols]   # widened by half a step: uniform after rounding
            Q[:, cols] = np.where(hit, lo + self.rng.random((len(Q), len(cols))) * (hi - lo), Q[:, cols])
        return Q


class NSGA3Optimizer(NSGA2Optimizer):
    """NSGA-III (Deb & Jain 2014): reference-direction survival; tournaments by CV, then random."""

    name = "nsga3"
    Settings = NSGA3Settings

    def _make_survival(self) -> Any:
        from pymoo.algorithms.moo.nsga3 import ReferenceDirectionSurvival

        self.ref_dirs = reference_directions(self.n_objectives, self.config.pop_size, self.config.ref_dirs,
                                             self.config.n_partitions, self.seed)
        return ReferenceDirectionSurvival(self.ref_dirs)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["n_ref_dirs"] = int(len(self.ref_dirs))
        return out

    def _survive(self, X: np.ndarray, F: np.ndarray, CV: np.ndarray, inactive: np.ndarray) -> None:
        n = len(X)
        pop = Population.new("X", X, "F", F, "CV", CV[:, None], "idx", np.arange(n))
        surv = self.survival.do(self.problem, pop, n_survive=min(self.config.pop_size, n), random_state=self.rng)
        idx = np.asarray(surv.get("idx"), dtype=np.int64)
        self.pop_X, self.pop_F, self.pop_CV, self.pop_inactive = X[idx], F[idx], CV[idx], inactive[idx]
        self.pop_crowding = None  # NSGA-III tournaments: CV, then random


def _das_dennis_count(m: int, p: int) -> int:
    return math.comb(p + m - 1, m - 1)


def reference_directions(n_obj: int, pop_size: int, method: str = "auto", n_partitions: int | None = None,
                         seed: int | None = None) -> np.ndarray:
    """pymoo reference directions sized to the population (see ``NSGA3Settings``)."""
    from pymoo.util.ref_dirs import get_reference_directions

    if n_obj == 1:
        return np.ones((1, 1))
    if n_partitions is None:
        p = 1
        while _das_dennis_count(n_obj, p + 1) <= pop_size:
            p += 1
        n_partitions = p
    n_dd = _das_dennis_count(n_obj, n_partitions)
    if method == "das-dennis" or (method == "auto" and 2 * n_dd >= pop_size):
        return get_reference_directions("das-dennis", n_obj, n_partitions=n_partitions)
    return get_reference_directions("energy", n_obj, pop_size, seed=0 if seed is None else seed)
