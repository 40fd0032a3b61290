"""Optimizer benchmark: hypervolume ratio to the EXACT Pareto front, per budget, against Optuna and pymoo.

Run:  python benchmarks/optimizers.py            (full run: 4 problems, budgets 100..3000, 5 seeds; tens of minutes)
      python benchmarks/optimizers.py --quick    (flagship + ZDT1, budgets <= 1000, 3 seeds, nsga2/random/anchors)
      python benchmarks/optimizers.py --quick --tabular   (the same hypervolumes, the objective looked up from the
                                                           grid's metrics: what tests/benchmarks runs)

Problems (``problems()``): the flagship dense-serving study (studies/llm_serving.py, ~2e4 valid points), a larger
variant of it with more batching values (72,600 points), the MoE serving study (studies/moe_serving.py, conditional
parameters) and ZDT1 (pymoo, 30 continuous variables). The exact front of a discrete problem comes from evaluating
every point of ``space.grid()`` (what the ``grid`` optimizer does); ZDT1's from pymoo's ``problem.pareto_front()``.

Metric: hypervolume (moocore) of the FEASIBLE non-dominated trials among the first ``b`` evaluations, divided by
the exact front's hypervolume. Objectives are normalized so that the exact front spans [0, 1] in each objective
(ideal -> 0, nadir -> 1, maximized objectives negated first); the reference point is 1.1 in every objective.
Failed trials (NaN metrics) and infeasible ones (a metric constraint violated) never count.

Optimizers: dse's ``nsga2``, ``nsga3``, ``tpe``, ``gp``, ``random`` through ``dse.create_study(...).optimize`` (the
real path: SQLite storage in a temporary directory, trials persisted; the variants ``nsga2-direct`` and
``nsga2-direct-pop100``, run when named, use dse's NSGA-II directly through its ask/tell interface, nothing
stored, to split the optimizer's cost from the study's), and as anchors, used directly:

- ``optuna-nsga2`` / ``optuna-tpe``: Optuna's ``NSGAIISampler`` / ``TPESampler`` (their defaults, seeded) in their
  own ask/tell define-by-run loop: ``trial.suggest_*`` per parameter (a conditional parameter only when its
  condition holds), the objective evaluated per generation (NSGA-II: ``population_size`` trials) or per trial
  (TPE), constraints through ``trial.set_constraint`` (Optuna 5 deprecates the samplers' ``constraints_func``):
  ``space`` = number of the space's validity rules violated, ``metric`` = the metric-constraint violation.
- ``pymoo-nsga2``: pymoo's ``NSGA2`` (its defaults: population 100, duplicate elimination) through pymoo's
  ask/tell interface, with pymoo's integer recipe for discrete spaces (every parameter as an integer index,
  ``IntegerRandomSampling``, SBX and PM with eta 3 and ``RoundingRepair``) and its real-valued defaults on ZDT1;
  constraints as pymoo ``G`` columns (validity rules violated, metric violation).

Budget counting, the same for everyone: an evaluation is a configuration that is valid in the space and was given
to the objective. A proposal that breaks the space's rules (e.g. TP x PP != GPUs) is told back to the anchor as
infeasible without evaluating it and without counting it, but its cost stays in the wall time; a repeated
configuration is evaluated and counted again (what the anchors' loops do). An anchor that asked 20x its budget
without reaching it stops; the table marks the budgets it did not reach.

Wall time: seconds from the start of the run until the objective returned the ``b``-th evaluation (the whole run
for the largest budget); overhead per evaluation = (wall - time inside the objective) / evaluations, in ms. A run
starts where the optimizer is built: dse's ``optimize()`` call (the study already created, as Optuna's), pymoo's
``NSGA2(...)`` and ``setup``. The timed loop only evaluates and timestamps; objectives and violations for the
hypervolume are computed from the recorded outputs after the run (an anchor still computes what it must tell its
optimizer, inside its loop). Beside the per-budget table, "HV reached within a wall time" gives each optimizer's
hypervolume ratio over the evaluations it had returned within 0.05 ... 5 s: what the same time buys, which is what
matters when the objective costs microseconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import moocore
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import dse  # noqa: E402
from dse.objective import ObjectiveSpec  # noqa: E402
from dse.pareto import nondominated_mask, to_minimization  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = (100, 300, 1000, 3000)
QUICK_BUDGETS = (100, 300, 1000)
SEEDS = 5
#: wall-clock points (s) of the "HV reached within a wall time" table: what a user gets for the same time
WITHIN_S = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: the goal's budget: 2 % of a discrete space's grid (added to the budgets of each discrete problem)
GOAL_SHARE = 0.02
#: an anchor stops after this many proposals per budgeted evaluation (invalid ones are told back, not counted)
MAX_ASKS_PER_EVAL = 20
#: Limits for the optimizers whose own cost grows with the history (measured on this 2-core machine): Optuna's
#: GPSampler costs ~2.4 s per suggestion on the flagship space (236 s for 100 evaluations), so gp runs at budget
#: 100, one seed, on the flagship only; TPE (Optuna's multi-objective TPESampler, in dse and direct) costs
#: ~35 ms per evaluation at 1,000 trials, so it runs up to 300 evaluations.
#: Optuna's TPE used directly asks one trial at a time and its cost grows with every rejected proposal too (on
#: the MoE space 0.04 % of uniform draws are valid): at most 3 proposals per budgeted evaluation.
LIMITS: dict[str, dict] = {
    "gp": {"budget": 100, "seeds": 1, "problems": ("flagship",)},
    "tpe": {"budget": 300},
    "optuna-tpe": {"budget": 300, "asks_per_eval": 3},
}

DSE_OPTIMIZERS = ("nsga2", "nsga3", "tpe", "gp", "random")
ANCHORS = ("optuna-nsga2", "optuna-tpe", "pymoo-nsga2")
ALL_OPTIMIZERS = DSE_OPTIMIZERS + ANCHORS
#: dse optimizers with non-default settings, run only when named with --optimizers (e.g. the batch-size evidence in
#: docs/optimizers.md: ``--problems flagship zdt1 --optimizers nsga2 nsga2-batch100 --out /tmp/batch``). ``direct``:
#: the optimizer used directly through its ask/tell interface (no study, nothing stored), as the anchors are used:
#: what the optimizer costs apart from the study's engine and storage.
VARIANTS: dict[str, tuple[str, dict]] = {
    "nsga2-batch100": ("nsga2", {"batch_size": 100}),
    "nsga2-direct": ("nsga2", {"direct": True}),
    "nsga2-direct-pop100": ("nsga2", {"direct": True, "pop_size": 100}),
}


# ============================================================================================================
# Problems and the hypervolume ratio
# ============================================================================================================


@dataclasses.dataclass
class Problem:
    """A space, a vectorized objective, and its exact front (minimization form, feasible, non-dominated).

    ``evaluate``: DataFrame of configurations -> DataFrame of metrics. ``spec``: objectives and metric constraints.
    ``front``: exact front, to minimize; ``ideal``/``nadir``: its per-objective min/max (normalization).
    ``size``: feasible points of the space (inf for a continuous space); ``grid_s``: seconds to enumerate and
    evaluate the grid (None for ZDT1); ``grid``: the grid's configurations and ``metrics`` the objective's output
    for them, row for row (None for ZDT1); ``is_tabular``: ``evaluate`` looks the metrics up (``tabular()``).
    """

    name: str
    space: dse.Space
    evaluate: Callable[[pd.DataFrame], pd.DataFrame]
    spec: ObjectiveSpec
    front: np.ndarray
    size: float
    grid_s: float | None = None
    description: str = ""
    grid: pd.DataFrame | None = None
    metrics: pd.DataFrame | None = None
    is_tabular: bool = False
    ideal: np.ndarray = dataclasses.field(init=False)
    nadir: np.ndarray = dataclasses.field(init=False)
    hv_exact: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.ideal = self.front.min(axis=0)
        self.nadir = self.front.max(axis=0)
        self.hv_exact = self._hv(self.front)

    def F_CV(self, metrics: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Objectives to minimize and metric-constraint violation (inf for failed rows)."""
        vals = metrics[self.spec.names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        F = to_minimization(vals, self.spec.directions)
        CV = self.spec.violation(metrics) if self.spec.constraints else np.zeros(len(metrics))
        failed = ~np.isfinite(F).all(axis=1)
        return F, np.where(failed, np.inf, CV)

    def _hv(self, F: np.ndarray) -> float:
        span = np.where(self.nadir > self.ideal, self.nadir - self.ideal, 1.0)
        Z = (F - self.ideal) / span
        Z = Z[np.all(Z < 1.1, axis=1)]
        return float(moocore.hypervolume(Z, ref=np.full(F.shape[1], 1.1))) if len(Z) else 0.0

    def hv_ratio(self, F: np.ndarray, CV: np.ndarray) -> float:
        """Hypervolume of the feasible points of F (minimization form) over the exact front's."""
        ok = (CV == 0) & np.isfinite(F).all(axis=1)
        return self._hv(F[ok]) / self.hv_exact if ok.any() else 0.0


def _exact_front(space: dse.Space, evaluate: Callable, spec: ObjectiveSpec
                 ) -> tuple[np.ndarray, float, pd.DataFrame, pd.DataFrame]:
    """The exact front of a discrete space (minimization form), the seconds the grid took, the grid and its
    metrics."""
    t0 = time.perf_counter()
    grid = space.grid()
    metrics = evaluate(grid)
    dt = time.perf_counter() - t0
    vals = metrics[spec.names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    F = to_minimization(vals, spec.directions)
    CV = spec.violation(metrics) if spec.constraints else np.zeros(len(F))
    F = F[(CV == 0) & np.isfinite(F).all(axis=1)]
    front = nondominated_mask(F, ["min"] * F.shape[1])      # ties up to rounding as the study's front reads them
    return F[front], dt, grid.reset_index(drop=True), metrics.reset_index(drop=True)


def _key(values: Sequence) -> tuple:
    """A configuration as a hashable key: numbers as floats (2, 2.0 and np.int64(2) alike), a missing value
    (inactive conditional parameter: None or NaN) as None."""
    out: list[str | bool | float | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, (bool, np.bool_, str)):
            out.append(v if isinstance(v, str) else bool(v))
        else:
            out.append(float(v))
    return tuple(out)


def tabular(problem: Problem) -> Problem:
    """``problem`` with its objective replaced by a lookup in the grid's metrics, as tabular benchmarks do
    (NAS-Bench-101): every configuration an optimizer may evaluate is a valid one, hence a grid point, and gets the
    very metrics the real objective gave it, at no cost. Hypervolume per budget is unchanged; wall times then
    measure the optimizers and dse's engine alone. A discrete problem only (the grid's metrics are needed)."""
    if problem.grid is None or problem.metrics is None:
        raise ValueError(f"problem {problem.name!r} has no grid to look its metrics up in (a continuous space); "
                         "only discrete problems run tabular")
    names = list(problem.space.names)
    index = {_key(row): i for i, row in enumerate(problem.grid[names].itertuples(index=False, name=None))}
    metrics = problem.metrics

    @dse.vectorized(name=f"{problem.name}-tabular", version="grid")
    def lookup(df: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for row in df[names].itertuples(index=False, name=None):
            i = index.get(_key(row))
            if i is None:
                raise KeyError(f"configuration {dict(zip(names, row))} is not a point of {problem.name}'s grid")
            rows.append(i)
        return metrics.iloc[rows].reset_index(drop=True)

    return dataclasses.replace(problem, evaluate=lookup, is_tabular=True,
                               description=problem.description + " (tabular: metrics looked up from the grid)")


def _study_problem(name: str, path: str, description: str, space: dse.Space | None = None) -> Problem:
    st = dse.load_study_file(ROOT / path)
    space = space if space is not None else st.space
    spec = ObjectiveSpec.build(dict(st.objectives), st.constraints)
    # the optimizers are compared on the study's cost model: a study that confirms its fronts in a simulator
    # (dse.fidelity.Confirming) is benchmarked on its screening objective, or every generation's front would be
    # simulated and the exact front would no longer be the grid's
    evaluate = getattr(st.evaluate, "screen", st.evaluate)
    front, dt, grid, metrics = _exact_front(space, evaluate, spec)
    return Problem(name, space, evaluate, spec, front, float(space.size), dt, description, grid, metrics)


def flagship() -> Problem:
    return _study_problem("flagship", "studies/llm_serving.py",
                          "studies/llm_serving.py: Llama-3.1-70B dense serving, 3 objectives, metric constraints")


def flagship_large() -> Problem:
    """The flagship with 19 max-batch-size and 3 max-num-tokens values (72,600 valid points)."""
    import spaces

    st = dse.load_study_file(ROOT / "studies/llm_serving.py")
    mbs = tuple(sorted({int(round(2 ** (k / 2.0))) for k in range(6, 25)} | {1024}))[:20]
    space = spaces.llm_serving("Llama-3.1-70B", ["H100-SXM-80GB", "H200-SXM-141GB", "A100-SXM-80GB", "L40S", "B200",
                                                 "MI300X"],
                               max_gpus=8, max_batch_sizes=mbs, max_num_tokens=(2048, 4096, 8192), input_len=2048)
    del st
    return _study_problem("flagship-large", "studies/llm_serving.py",
                          f"flagship with max_batch_size in {list(mbs)} and max_num_tokens in (2048, 4096, 8192)",
                          space=space)


def moe() -> Problem:
    return _study_problem("moe", "studies/moe_serving.py",
                          "studies/moe_serving.py: Qwen3-235B-A22B, EP, agg/disagg (conditional params), 2 objectives")


def zdt1(n_var: int = 30) -> Problem:
    """pymoo's ZDT1 as a dse.Space of Floats in [0, 1] with a vectorized objective; exact front from pymoo."""
    from pymoo.problems import get_problem

    prob = get_problem("zdt1", n_var=n_var)
    names = [f"x{i:02d}" for i in range(n_var)]
    space = dse.Space({n: dse.Float(0.0, 1.0) for n in names})

    @dse.vectorized(name="zdt1", version="pymoo-0.6")
    def evaluate(df: pd.DataFrame) -> pd.DataFrame:
        F = prob.evaluate(df[names].to_numpy(dtype=float), return_values_of=["F"])
        return pd.DataFrame({"f1": F[:, 0], "f2": F[:, 1]})

    spec = ObjectiveSpec.build({"f1": "min", "f2": "min"})
    front = prob.pareto_front(n_pareto_points=10_000)
    return Problem("zdt1", space, evaluate, spec, front, math.inf, None, f"pymoo ZDT1, {n_var} Float variables")


PROBLEMS: dict[str, Callable[[], Problem]] = {"flagship": flagship, "flagship-large": flagship_large, "moe": moe,
                                              "zdt1": zdt1}


# ============================================================================================================
# One run: every evaluation in order, with the time it was done
# ============================================================================================================


@dataclasses.dataclass
class Trace:
    """Evaluations of one run in order: F (minimization form), CV, and per objective call the cumulative
    evaluation count, seconds since the start, and seconds spent inside the objective."""

    F: np.ndarray
    CV: np.ndarray
    calls: np.ndarray          # (k, 3): evaluations so far, wall s, objective s
    wall: float                # the whole run, s
    asks: int = 0              # proposals made (anchors: valid + rejected)

    def done_by(self, t: float) -> int:
        """Evaluations returned within ``t`` seconds of the start."""
        k = int(np.searchsorted(self.calls[:, 1], t, side="right")) if len(self.calls) else 0
        return int(self.calls[k - 1, 0]) if k else 0

    def at(self, b: int) -> tuple[float, float] | None:
        """(wall s, objective s) when the b-th evaluation returned; None if the run did not reach b."""
        if len(self.F) < b:
            return None
        if len(self.F) == b:
            return self.wall, float(self.calls[-1, 2])
        i = int(np.searchsorted(self.calls[:, 0], b))
        return float(self.calls[i, 1]), float(self.calls[i, 2])


class Recorder:
    """Wraps a vectorized objective: records F, CV and timings of every call (marked ``@dse.vectorized``)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.outs: list[pd.DataFrame] = []
        self.calls: list[tuple[int, float, float]] = []
        self.n = 0
        self.obj_s = 0.0
        self.t0 = time.perf_counter()
        self.__dse_vectorized__ = True
        self.dse_name = f"benchmark-{problem.name}"

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        t = time.perf_counter()
        out = self.problem.evaluate(df)
        self.obj_s += time.perf_counter() - t
        self.outs.append(out)   # F and CV are computed after the run: measuring must not cost the run time
        self.n += len(df)
        self.calls.append((self.n, time.perf_counter() - self.t0, self.obj_s))
        return out

    def trace(self, asks: int = 0) -> Trace:
        wall = time.perf_counter() - self.t0
        m = len(self.problem.spec.names)
        parts = [self.problem.F_CV(out) for out in self.outs]
        F = np.vstack([f for f, _ in parts]) if parts else np.zeros((0, m))
        CV = np.concatenate([cv for _, cv in parts]) if parts else np.zeros(0)
        return Trace(F, CV, np.array(self.calls, dtype=float).reshape(-1, 3), wall, asks or len(F))


def run_dse(problem: Problem, name: str, budget: int, seed: int, **options) -> Trace:
    """dse's optimizer ``name`` through create_study/optimize (SQLite in a temporary directory); ``options``: more
    keyword arguments of ``optimize`` (batch_size, optimizer settings)."""
    rec = Recorder(problem)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = dse.create_study(f"bench-{name}", problem.space, dict(problem.spec.objectives),
                                 constraints=dict(problem.spec.constraints) or None, storage=f"sqlite:///{d}/b.db")
        rec.start()
        study.optimize(rec, optimizer=name, n_trials=budget, seed=seed, progress=False, **options)
        tr = rec.trace()
        del study
    return tr


def run_dse_direct(problem: Problem, name: str, budget: int, seed: int, **settings) -> Trace:
    """dse's optimizer ``name`` used directly, like the anchors: ``get_optimizer`` and its ask/tell loop, batches of
    its default size, nothing stored; failed rows told with NaN objectives. ``settings``: optimizer settings."""
    from dse.optimizers import get_optimizer

    rec = Recorder(problem)
    rec.start()   # the run includes building the optimizer, as dse's optimize() and pymoo's NSGA2(...) do
    opt = get_optimizer(name, problem.space, len(problem.spec.names), seed=seed, **settings)
    batch = opt.default_batch_size()
    while rec.n < budget:
        df = opt.ask(min(batch, budget - rec.n))
        if len(df) == 0:
            break
        F, CV = problem.F_CV(rec(df))
        opt.tell(df, F, CV)
    return rec.trace()


# ------------------------------------------------------------------------------------------------ anchors
class _Validity:
    """Number of the space's validity rules each configuration breaks (0 = valid), vectorized: one
    single-constraint copy of the space per rule."""

    def __init__(self, space: dse.Space) -> None:
        self.space = space
        self.rules = [dse.Space(dict(space.params), constraints=[c]) for c in space.constraints]
        self.bare = dse.Space(dict(space.params))

    def violations(self, df: pd.DataFrame) -> np.ndarray:
        bad = (~np.asarray(self.bare.feasible(df), dtype=bool)).astype(float)
        for r in self.rules:
            bad += ~np.asarray(r.feasible(df), dtype=bool)
        return bad


class _Worst:
    """The worst (largest) value seen per objective, for telling an anchor about rejected proposals."""

    def __init__(self, m: int) -> None:
        self.value = np.zeros(m)
        self.seen = False

    def update(self, F: np.ndarray) -> None:
        F = F[np.isfinite(F).all(axis=1)]
        if len(F):
            w = F.max(axis=0)
            self.value = np.maximum(self.value, w) if self.seen else w
            self.seen = True


def _conditional(space: dse.Space) -> list[str]:
    return [n for n in space.names if getattr(space.params[n], "when", None)]


def run_optuna(problem: Problem, sampler: str, budget: int, seed: int) -> Trace:
    """Optuna's NSGAIISampler or TPESampler in their own ask/tell loop (see the module docstring)."""
    import optuna

    from dse.encoding import config_from_optuna, optuna_distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = problem.space
    dists = optuna_distributions(space)
    cond = _conditional(space)
    fixed = [n for n in space.names if n not in cond]
    validity = _Validity(space)
    rec = Recorder(problem)
    m = len(problem.spec.names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samp: optuna.samplers.BaseSampler
        if sampler == "nsga2":
            nsga = optuna.samplers.NSGAIISampler(seed=seed)
            samp, batch = nsga, int(nsga._population_size or 50)
        else:
            samp = optuna.samplers.TPESampler(seed=seed)
            batch = 1
        study = optuna.create_study(directions=["minimize"] * m, sampler=samp)
    worst = _Worst(m)
    asks = 0
    rec.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        max_asks = LIMITS.get(f"optuna-{sampler}", {}).get("asks_per_eval", MAX_ASKS_PER_EVAL) * budget
        while rec.n < budget and asks < max_asks:
            trials, rows = [], []
            for _ in range(min(batch, budget - rec.n)):
                t = study.ask()
                for n in fixed:
                    _suggest(t, n, dists[n])
                if cond:
                    row = config_from_optuna(space, t.params)
                    for n in cond:
                        act = space.active(pd.DataFrame([row], columns=space.names))[n][0]
                        row[n] = _suggest(t, n, dists[n]) if act else None
                trials.append(t)
                rows.append(config_from_optuna(space, t.params))
            asks += len(trials)
            df = pd.DataFrame.from_records(rows, columns=space.names)
            bad = validity.violations(df)
            ok = bad == 0
            F = np.tile(worst.value, (len(df), 1))
            CV = np.zeros(len(df))
            if ok.any():
                out = rec(df[ok].reset_index(drop=True))
                F[ok], CV[ok] = problem.F_CV(out)
                worst.update(F[ok])
            for i, t in enumerate(trials):
                if ok[i] and not np.isfinite(CV[i]):
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                    continue
                t.set_constraint("space", float(bad[i]))
                t.set_constraint("metric", float(CV[i]))
                study.tell(t, [float(v) for v in (F[i] if ok[i] else worst.value)])
    return rec.trace(asks)


def _suggest(trial, name: str, dist) -> object:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _integer_codec(space: dse.Space) -> tuple[np.ndarray, Callable[[np.ndarray], pd.DataFrame]]:
    """pymoo integer encoding of a discrete space: each parameter as the index of its value. Returns the upper
    bounds (lower bounds are 0) and a decoder X -> configurations (inactive conditional parameters missing)."""
    tables = []
    for n in space.names:
        p = space.params[n]
        vals = list(p.choices) if hasattr(p, "choices") else list(p.values())
        tables.append(np.array(vals, dtype=object))
    xu = np.array([len(t) - 1 for t in tables], dtype=float)
    cond = _conditional(space)

    def decode(X: np.ndarray) -> pd.DataFrame:
        idx = np.clip(np.rint(X).astype(np.int64), 0, xu.astype(np.int64))
        df = pd.DataFrame({n: tables[j][idx[:, j]] for j, n in enumerate(space.names)})
        for n in space.names:
            p = space.params[n]
            if hasattr(p, "choices") and all(isinstance(c, (bool, np.bool_)) for c in p.choices):
                df[n] = df[n].astype(object)
            elif not all(isinstance(v, str) for v in tables[space.names.index(n)]):
                df[n] = pd.to_numeric(df[n])
        if cond:
            act = space.active(df)
            for n in cond:
                df[n] = df[n].astype(object).where(act[n], None)
        return df

    return xu, decode


def run_pymoo(problem: Problem, budget: int, seed: int) -> Trace:
    """pymoo's NSGA2 through its ask/tell interface (see the module docstring for the encoding)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem as PymooProblem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    space = problem.space
    m = len(problem.spec.names)
    rec = Recorder(problem)
    rec.start()   # like dse's optimize(), the run includes building the algorithm and its setup
    if space.is_discrete:
        xu, decode = _integer_codec(space)
        algo = NSGA2(pop_size=100, sampling=IntegerRandomSampling(),
                     crossover=SBX(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()),
                     mutation=PM(prob=1.0, eta=3.0, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
        xl = np.zeros(len(xu))
    else:
        ranges = [space.params[n] for n in space.names]
        assert all(isinstance(q, (dse.Float, dse.Int)) for q in ranges), "a continuous space holds numeric ranges"
        xl = np.array([float(q.low) for q in ranges if isinstance(q, (dse.Float, dse.Int))])
        xu = np.array([float(q.high) for q in ranges if isinstance(q, (dse.Float, dse.Int))])

        def decode(X: np.ndarray) -> pd.DataFrame:
            return pd.DataFrame(X, columns=space.names)

        algo = NSGA2(pop_size=100, eliminate_duplicates=True)
    validity = _Validity(space) if space.constraints or _conditional(space) else None
    pp = PymooProblem(n_var=len(xu), n_obj=m, n_ieq_constr=2, xl=xl, xu=xu)
    algo.setup(pp, termination=("n_gen", 10**9), seed=seed, verbose=False)
    worst = _Worst(m)
    asks = 0
    while rec.n < budget and asks < MAX_ASKS_PER_EVAL * budget:
        pop = algo.ask()
        X = pop.get("X")
        asks += len(X)
        df = decode(X)
        bad = validity.violations(df) if validity is not None else np.zeros(len(df))
        ok = np.flatnonzero(bad == 0)[: budget - rec.n]
        CV = np.zeros(len(df))
        Fo = None
        if len(ok):
            out = rec(df.iloc[ok].reset_index(drop=True))
            Fo, CVo = problem.F_CV(out)
            worst.update(Fo)
        F = np.tile(worst.value, (len(df), 1))
        if Fo is not None:   # failed rows (NaN): the worst values, and infeasible
            fin = np.isfinite(Fo).all(axis=1)
            F[ok] = np.where(fin[:, None], Fo, worst.value)
            CV[ok] = np.where(fin, CVo, 1e6)
        skipped = np.setdiff1d(np.flatnonzero(bad == 0), ok)   # valid but past the budget: last ask only
        CV[skipped] = 1e6
        pop.set("F", F, "G", np.c_[bad, CV])
        algo.tell(infills=pop)
    return rec.trace(asks)


def run(problem: Problem, optimizer: str, budget: int, seed: int) -> Trace:
    """One run of ``optimizer`` (a dse name or an anchor) for ``budget`` evaluations."""
    if optimizer in DSE_OPTIMIZERS or optimizer == "grid":
        return run_dse(problem, optimizer, budget, seed)
    if optimizer in VARIANTS:
        base, options = VARIANTS[optimizer]
        if options.get("direct"):
            return run_dse_direct(problem, base, budget, seed, **{k: v for k, v in options.items() if k != "direct"})
        return run_dse(problem, base, budget, seed, **options)
    if optimizer == "optuna-nsga2":
        return run_optuna(problem, "nsga2", budget, seed)
    if optimizer == "optuna-tpe":
        return run_optuna(problem, "tpe", budget, seed)
    if optimizer == "pymoo-nsga2":
        return run_pymoo(problem, budget, seed)
    raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(ALL_OPTIMIZERS + tuple(VARIANTS))}")


# ============================================================================================================
# The benchmark
# ============================================================================================================


def max_budget(optimizer: str, budgets: Sequence[int]) -> int:
    """The largest budget ``optimizer`` is run to (see LIMITS); 0: none of ``budgets``."""
    cap = LIMITS.get(optimizer, {}).get("budget", math.inf)
    ok = [b for b in budgets if b <= cap]
    return max(ok) if ok else 0


def measure(problem: Problem, optimizer: str, budgets: Sequence[int], seeds: Sequence[int]) -> pd.DataFrame:
    """One row per (seed, budget) (``kind`` "budget": hv_ratio, wall_s, overhead_ms per evaluation, reached) and
    per (seed, wall time in WITHIN_S) (``kind`` "time": ``within_s``, the evaluations returned by then and their
    hv_ratio; ``reached`` False when the run had ended before, at its largest budget)."""
    top = max_budget(optimizer, budgets)
    lim = LIMITS.get(optimizer, {})
    rows: list[dict] = []
    if top == 0 or problem.name not in lim.get("problems", (problem.name,)):
        return pd.DataFrame(rows)
    for seed in list(seeds)[: lim.get("seeds", len(seeds))]:
        tr = run(problem, optimizer, top, seed)
        for b in budgets:
            if b > top:
                continue
            at = tr.at(b)
            n = min(b, len(tr.F))
            wall, obj = at if at is not None else (tr.wall, float(tr.calls[-1, 2]) if len(tr.calls) else 0.0)
            rows.append(dict(problem=problem.name, optimizer=optimizer, kind="budget", budget=b, seed=seed,
                             evaluations=n, reached=at is not None,
                             hv_ratio=problem.hv_ratio(tr.F[:n], tr.CV[:n]), wall_s=wall,
                             overhead_ms=(wall - obj) / max(n, 1) * 1e3, asks=tr.asks))
        for t in WITHIN_S:
            n = tr.done_by(t)
            rows.append(dict(problem=problem.name, optimizer=optimizer, kind="time", within_s=t, seed=seed,
                             evaluations=n, reached=tr.wall >= t, hv_ratio=problem.hv_ratio(tr.F[:n], tr.CV[:n])))
    return pd.DataFrame(rows)


def _budget_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """The per-budget rows of ``measure``'s output (budgets as ints)."""
    return raw[raw.kind == "budget"].astype({"budget": int})


def summarize(raw: pd.DataFrame) -> pd.DataFrame:
    """Median and interquartile range over seeds per (problem, optimizer, budget)."""
    raw = _budget_rows(raw)
    g = raw.groupby(["problem", "optimizer", "budget"], sort=False)
    out = g.agg(hv_median=("hv_ratio", "median"), hv_q1=("hv_ratio", lambda s: s.quantile(0.25)),
                hv_q3=("hv_ratio", lambda s: s.quantile(0.75)), wall_s=("wall_s", "median"),
                overhead_ms=("overhead_ms", "median"), reached=("reached", "all"), seeds=("seed", "nunique"))
    return out.reset_index()


def summarize_time(raw: pd.DataFrame) -> pd.DataFrame:
    """Median hypervolume ratio and evaluations over seeds per (problem, optimizer, wall time)."""
    g = raw[raw.kind == "time"].groupby(["problem", "optimizer", "within_s"], sort=False)
    return g.agg(hv_median=("hv_ratio", "median"), evaluations=("evaluations", "median"),
                 running=("reached", "all")).reset_index()


def _time_table(sub: pd.DataFrame) -> list[str]:
    """Markdown rows: per optimizer, the median HV ratio [evaluations] reached within each wall time."""
    times = sorted(sub.within_s.unique())
    lines = ["HV ratio reached within a wall time (median [evaluations returned by then]; `+`: a seed's run "
             "had ended earlier, at its largest budget):", "",
             "| optimizer | " + " | ".join(f"within {t:g} s" for t in times) + " |", "|" + "---|" * (len(times) + 1)]
    for opt in dict.fromkeys(sub.optimizer):
        s = sub[sub.optimizer == opt].set_index("within_s")
        cells = [f"{s.hv_median[t]:.4f} [{s.evaluations[t]:.0f}]" + ("" if s.running[t] else "+") for t in times]
        lines.append(f"| {opt} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(summary: pd.DataFrame, problems: dict[str, Problem], command: str,
             timed: pd.DataFrame | None = None) -> str:
    lines = ["# Optimizer benchmark: hypervolume ratio to the exact Pareto front", "",
             f"Command: `{command}`. Written by benchmarks/optimizers.py (see its docstring for the method).", "",
             "Cells: median hypervolume ratio over seeds [interquartile range]; wall s (median) and engine/optimizer "
             "overhead per evaluation in ms (median). `*`: the run stopped before the budget (see `asks`). "
             "Normalization: the exact front's ideal -> 0 and nadir -> 1 per objective; reference point 1.1.", ""]
    for pname, p in problems.items():
        sub = summary[summary.problem == pname]
        if sub.empty:
            continue
        size = "continuous" if not math.isfinite(p.size) else f"{int(p.size):,} valid points"
        grid = f"; grid (exact front) evaluates every point in {p.grid_s:.2f} s" if p.grid_s is not None else ""
        lines += [f"## {pname}: {p.description}", "",
                  f"{size}, {len(p.spec.names)} objectives, exact front {len(p.front)} points{grid}.", ""]
        if p.is_tabular:
            lines += ["Tabular run: each evaluation looks up the grid's metrics of its configuration, so the wall "
                      "times and overheads below are the optimizers' and the study engine's alone.", ""]
        budgets = sorted(sub.budget.unique())
        goal = int(GOAL_SHARE * p.size) if math.isfinite(p.size) else None
        label = {b: (f"{b} (2 %)" if b == goal else str(b)) for b in budgets}
        head = "| optimizer | " + " | ".join(f"HV @{label[b]}" for b in budgets) + " | " + " | ".join(
            f"wall s @{b}" for b in budgets) + " | overhead ms/eval @max |"
        lines += [head, "|" + "---|" * (2 * len(budgets) + 2)]
        for opt in dict.fromkeys(sub.optimizer):
            s = sub[sub.optimizer == opt].set_index("budget")
            hv = [(f"{s.hv_median[b]:.4f} [{s.hv_q1[b]:.3f}-{s.hv_q3[b]:.3f}]" + ("" if s.reached[b] else "*"))
                  if b in s.index else "-" for b in budgets]
            wall = [f"{s.wall_s[b]:.2f}" if b in s.index else "-" for b in budgets]
            top = s.index.max()
            lines.append(f"| {opt} | " + " | ".join(hv) + " | " + " | ".join(wall) +
                         f" | {s.overhead_ms[top]:.3f} |")
        lines.append("")
        if timed is not None and (timed.problem == pname).any():
            lines += _time_table(timed[timed.problem == pname])
    return "\n".join(lines)


def plot(summary: pd.DataFrame, problems: dict[str, Problem], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p for p in problems if (summary.problem == p).any()]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.0), squeeze=False)
    for ax, pname in zip(axes[0], names):
        sub = summary[summary.problem == pname]
        for opt in dict.fromkeys(sub.optimizer):
            s = sub[sub.optimizer == opt].sort_values("budget")
            style = "--" if opt in ANCHORS else "-"
            color = f"C{ALL_OPTIMIZERS.index(opt) % 10}" if opt in ALL_OPTIMIZERS else None
            ax.plot(s.budget, s.hv_median, style, marker="o", ms=3, label=opt, color=color)
            ax.fill_between(s.budget, s.hv_q1, s.hv_q3, alpha=0.15, color=color)
        p = problems[pname]
        if math.isfinite(p.size):
            ax.axvline(0.02 * p.size, color="grey", lw=0.8, ls=":")
        ax.axhline(0.99, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(pname)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("hypervolume ratio to the exact front")
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_lines() if not h.get_label().startswith("_")}
    axes[0][0].legend(list(handles.values()), list(handles), fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="flagship + ZDT1, budgets 100, 300 and 1000, 3 seeds")
    ap.add_argument("--problems", nargs="+", choices=list(PROBLEMS), help="problems to run (default: all)")
    ap.add_argument("--optimizers", nargs="+", choices=list(ALL_OPTIMIZERS) + list(VARIANTS),
                    help="optimizers (default: all but the variants)")
    ap.add_argument("--budgets", nargs="+", type=int, help="budgets in evaluations")
    ap.add_argument("--seeds", type=int, help="number of seeds (0..n-1)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for optimizers.md / .png / .csv")
    ap.add_argument("--tabular", action="store_true",
                    help="discrete problems look their metrics up in the grid's (same hypervolumes; wall times "
                         "without the objective's cost)")
    args = ap.parse_args(argv)
    pnames = args.problems or (["flagship", "zdt1"] if args.quick else list(PROBLEMS))
    opts = args.optimizers or (["nsga2", "random", "optuna-nsga2", "pymoo-nsga2"] if args.quick
                               else list(ALL_OPTIMIZERS))
    budgets = tuple(args.budgets or (QUICK_BUDGETS if args.quick else BUDGETS))
    seeds = range(args.seeds if args.seeds is not None else (3 if args.quick else SEEDS))
    command = "python benchmarks/optimizers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    problems = {}
    raws = []
    for pn in pnames:
        p = PROBLEMS[pn]()
        p = problems[pn] = tabular(p) if args.tabular and p.grid is not None else p
        goal = int(GOAL_SHARE * p.size) if math.isfinite(p.size) else 0
        pbudgets = tuple(sorted(set(budgets) | ({goal} if min(budgets) < goal < max(budgets) else set())))
        grid = f", grid {p.grid_s:.2f} s" if p.grid_s is not None else ""
        print(f"[{pn}] {p.size:,.0f} points, front {len(p.front)}{grid}", flush=True)
        for opt in opts:
            t = time.perf_counter()
            raw = measure(p, opt, pbudgets, seeds)
            if raw.empty:
                continue
            raws.append(raw)
            s = _budget_rows(raw).groupby("budget").hv_ratio.median()
            print(f"  {opt:13s} " + "  ".join(f"@{b}: {v:.4f}" for b, v in s.items()) +
                  f"   ({time.perf_counter() - t:.1f} s)", flush=True)
        summary = write(raws, problems, args.out, "optimizers-quick" if args.quick else "optimizers", command)
    return summary


def write(raws: list[pd.DataFrame], problems: dict[str, Problem], out: Path, stem: str, command: str) -> pd.DataFrame:
    """Write <stem>.csv (every run), .md (table) and .png (plot) under ``out``; return the summary. Called after
    each problem, so an interrupted run keeps what it finished."""
    raw = pd.concat(raws, ignore_index=True)
    summary = summarize(raw)
    out.mkdir(parents=True, exist_ok=True)
    raw.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
    (out / f"{stem}.md").write_text(markdown(summary, problems, command.strip(), summarize_time(raw)))
    plot(summary, problems, out / f"{stem}.png")
    print(f"wrote {out / (stem + '.md')}, .png, .csv", flush=True)
    return summary


if __name__ == "__main__":
    main()
