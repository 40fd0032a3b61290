"""Variation operators for mixed spaces, per column kind, vectorized over the whole mating pool.

Columns come from ``dse.encoding.Encoder`` with a kind each:

- "nominal" (string/bool categoricals): uniform crossover (pymoo's ``crossover_mask``) and random-reset mutation
  (a mutated gene takes one of the *other* choices, uniformly);
- "ordinal" (numeric categoricals, Ints, stepped Floats): SBX and polynomial mutation (pymoo's ``cross_sbx`` /
  ``mut_pm``) with a low distribution index (``eta_discrete``, pymoo's integer recipe uses 3), then rounding to
  the nearest index (the encoder's bounds are widened by half a step so every value gets an equal share);
- "real" (Floats, log-scaled ones in log space): SBX and polynomial mutation (``eta_crossover``, ``eta_mutation``).

Both are pymoo ``Crossover`` / ``Mutation`` subclasses, so they also plug into a pymoo algorithm directly; the
optimizers call their vectorized ``_do`` on arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation
from pymoo.operators.crossover.sbx import cross_sbx
from pymoo.operators.mutation.pm import mut_pm
from pymoo.util.misc import crossover_mask


class MixedCrossover(Crossover):
    """Two parents -> two offspring; per column kind (see module docstring).

    ``kinds``: one of "nominal" | "ordinal" | "real" per column; ``xl``, ``xu``: variation bounds;
    ``n_choices``: number of values per nominal column (others ignored).
    """

    def __init__(self, kinds: tuple[str, ...], xl: np.ndarray, xu: np.ndarray, *, eta: float = 15.0,
                 eta_discrete: float = 3.0, prob: float = 0.9, prob_var: float = 0.5) -> None:
        super().__init__(2, 2, prob=prob)
        self.kinds = np.asarray(kinds)
        self.xl = np.asarray(xl, dtype=float)
        self.xu = np.asarray(xu, dtype=float)
        self.eta_real = float(eta)
        self.eta_discrete = float(eta_discrete)
        self.prob_crossover = float(prob)
        self.prob_var = float(prob_var)

    def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: np.random.Generator | None = None,
            **kwargs: Any) -> np.ndarray:
        rng = random_state if random_state is not None else np.random.default_rng()
        X = np.asarray(X, dtype=float)
        _, n_matings, _ = X.shape
        Q = X.copy()
        nominal = self.kinds == "nominal"
        if nominal.any():
            M = rng.random((n_matings, int(nominal.sum()))) < 0.5
            Q[:, :, nominal] = crossover_mask(X[:, :, nominal], M)
        for kind, eta in (("ordinal", self.eta_discrete), ("real", self.eta_real)):
            cols = self.kinds == kind
            if not cols.any():
                continue
            etas = np.full((n_matings, 1), eta)
            prob_var = np.full((n_matings, 1), self.prob_var)
            prob_bin = np.full((n_matings, 1), 0.5)
            Q[:, :, cols] = cross_sbx(X[:, :, cols], self.xl[cols], self.xu[cols], etas, prob_var, prob_bin,
                                      random_state=rng)
        return Q

    def cross(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(2, n_matings, d) parents -> (2 * n_matings, d) offspring; each mating crosses with ``prob``,
        otherwise its parents are copied (as pymoo's ``Crossover.do``)."""
        Q = self._do(None, X, random_state=rng)
        keep = rng.random(X.shape[1]) >= self.prob_crossover
        Q[:, keep] = X[:, keep]
        return Q.reshape(-1, X.shape[-1])


class MixedMutation(Mutation):
    """Per-gene mutation with probability ``prob_var`` (default 1/d); per column kind (see module docstring).

    ``n_choices``: number of choices per column (used by nominal columns).
    """

    def __init__(self, kinds: tuple[str, ...], xl: np.ndarray, xu: np.ndarray, n_choices: np.ndarray, *,
                 eta: float = 20.0, eta_discrete: float = 3.0, prob_var: float | None = None) -> None:
        super().__init__(prob=1.0)
        self.kinds = np.asarray(kinds)
        self.xl = np.asarray(xl, dtype=float)
        self.xu = np.asarray(xu, dtype=float)
        self.n_choices = np.asarray(n_choices, dtype=np.int64)
        self.eta_real = float(eta)
        self.eta_discrete = float(eta_discrete)
        d = len(self.kinds)
        self.gene_prob = float(prob_var) if prob_var is not None else (min(0.5, 1.0 / d) if d else 0.0)

    def _do(self, problem: Any, X: np.ndarray, *args: Any, random_state: np.random.Generator | None = None,
            **kwargs: Any) -> np.ndarray:
        rng = random_state if random_state is not None else np.random.default_rng()
        X = np.asarray(X, dtype=float)
        n = len(X)
        Y = X.copy()
        nominal = np.flatnonzero(self.kinds == "nominal")
        if len(nominal):
            k = self.n_choices[nominal]
            mut = (rng.random((n, len(nominal))) < self.gene_prob) & (k > 1)
            cur = np.rint(X[:, nominal]).astype(np.int64)
            # a different choice, uniformly: shift by 1..k-1 modulo k
            shift = 1 + np.floor(rng.random((n, len(nominal))) * np.maximum(k - 1, 1)).astype(np.int64)
            new = (cur + shift) % np.maximum(k, 1)
            Y[:, nominal] = np.where(mut, new, cur)
        for kind, eta in (("ordinal", self.eta_discrete), ("real", self.eta_real)):
            cols = self.kinds == kind
            if not cols.any() or n == 0:
                continue
            Y[:, cols] = mut_pm(X[:, cols], self.xl[cols], self.xu[cols], np.full(n, eta),
                                np.full(n, self.gene_prob), at_least_once=False, random_state=rng)
        return Y

    def mutate(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n, d) -> (n, d) mutated copy."""
        return self._do(None, X, random_state=rng)


def binary_tournament(F: np.ndarray, CV: np.ndarray, crowding: np.ndarray | None, P: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """Winners of binary tournaments ``P`` (m, 2) (indices into F/CV), vectorized, as pymoo's NSGA-II rules.

    Feasibility first: if either is infeasible the smaller CV wins. Both feasible: the dominating one wins
    (``crowding`` given: NSGA-II) else the larger crowding distance; ``crowding`` None (NSGA-III): random.
    Remaining ties are broken at random.
    """
    a, b = P[:, 0], P[:, 1]
    ca, cb = CV[a], CV[b]
    coin = rng.random(len(P)) < 0.5
    win = np.where(coin, a, b)
    infeasible = (ca > 0) | (cb > 0)
    by_cv = infeasible & (ca != cb)
    win = np.where(by_cv, np.where(ca < cb, a, b), win)
    both = ~infeasible
    if crowding is not None and both.any():
        Fa, Fb = F[a], F[b]
        a_dom = np.all(Fa <= Fb, axis=1) & np.any(Fa < Fb, axis=1)
        b_dom = np.all(Fb <= Fa, axis=1) & np.any(Fb < Fa, axis=1)
        cda, cdb = crowding[a], crowding[b]
        by_cd = both & ~a_dom & ~b_dom & (cda != cdb)
        win = np.where(both & a_dom, a, win)
        win = np.where(both & b_dom, b, win)
        win = np.where(by_cd, np.where(cda > cdb, a, b), win)
    return win
