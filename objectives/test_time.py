"""Test-time scaling as deployment knobs: parallel samples N, reasoning (output) budget L, parallel vs sequential.

    from objectives import test_time
    df = test_time.evaluate(model="Qwen3-32B", task="AIME-2024", gpu="H200", tp=2, weight_dtype="fp8",
                            n_samples=[1, 4, 16], budget=[4096, 16384], mode="vote")
    df[["accuracy", "usd_per_problem", "usd_per_solved", "latency_s"]]

Quality (objectives/data/accuracy.json, every figure with its source):

- per-sample success p of a model on a task: the published mean accuracy over repeated samples (`per_sample_success`).
- problems differ in difficulty: a problem's own success rate is Beta-distributed with mean p and concentration
  `kappa` (a = p kappa, b = (1 - p) kappa); kappa and `wrong_answers` (w, the effective number of distinct wrong
  answers that split the wrong votes) are fitted to the published (pass@1, cons@64) pairs of DeepSeek-R1 and its
  distilled models (`fit_vote_model`, ``python -m objectives.test_time fit``).
- reasoning budget L (tokens): p(L) = p x max(0, 1 - slope x log2(L_sat / L)) below L_sat, p above (log-linear,
  the published thinking-budget curve of Qwen3; `budget_factor`).
- weight format: x `accuracy.quality(weight_dtype)` / 100 (the quantization recovery of this package).

Aggregation formulas (`accuracy_of`):

- ``"oracle"`` best-of-N with an oracle verifier: a problem is solved when any of N samples is correct,
  1 - (1 - p_i)^N, averaged over the Beta-distributed p_i: 1 - B(a, b + N) / B(a, b) (B the Beta function).
- ``"vote"`` majority voting (self-consistency): the correct answer wins when its count X ~ Binomial(N, p_i) beats
  the most common wrong answer, the wrong votes split evenly over w answers: X > (N - X) / w, i.e.
  X > N / (1 + w) (a tie counts half); averaged over p_i: the Beta-binomial tail.
- ``"sequential"``: one chain of N x L tokens (N rounds of L tokens, each seeing the ones before): accuracy p(N L).

Cost (served as engines serve it, `inference.max_throughput` on the deployment): the prompt of P tokens is
prefilled once and its KV blocks are shared by the N samples (vLLM's n > 1 / prefix caching), so each of the N
sequences carries P / N prompt tokens of work and KV; each decodes L tokens, so the KV cache of long reasoning
(P + N L tokens per problem) limits the batch and decode attention over long contexts dominates the step.
Sequential mode is one sequence of P prompt and N L output tokens. The reads of the shared prompt KV are counted
once per problem rather than once per sample: an under-count of P (N - 1) / N tokens per step, small while P << L
(AIME prompts are a few hundred tokens against budgets of thousands).

Objectives per row: accuracy (expected fraction solved), usd_per_problem (GPU cost of the N L output tokens at
the deployment's throughput), usd_per_solved (= usd_per_problem / accuracy, the cost of a pass), latency_s
(one problem end to end at that throughput: all N samples run side by side in parallel modes), plus fits,
joules_per_problem and the deployment columns.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from objectives import accuracy, inference
from objectives.accuracy import DATA

log = logging.getLogger(__name__)

MODES = ("vote", "oracle", "sequential")


@dataclass(frozen=True)
class VoteModel:
    """Problem-difficulty spread and vote splitting (dimensionless): kappa = Beta concentration of per-problem
    success rates, wrong_answers = effective number of distinct wrong answers the wrong votes split over."""

    kappa: float
    wrong_answers: float

    def __post_init__(self) -> None:
        for name in ("kappa", "wrong_answers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"VoteModel.{name} = {v!r} is invalid; expected a finite number > 0")


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return json.loads(DATA.read_text())


def per_sample_success(model: str, task: str) -> float:
    """Published per-sample success rate p of `model` on `task` (`accuracy.per_sample_success`)."""
    return accuracy.per_sample_success(model, task)


def known_pairs() -> list[tuple[str, str]]:
    """(model, task) pairs with a published per-sample success rate."""
    return [(r["model"], r["task"]) for r in _data()["per_sample_success"]]


def vote_model() -> VoteModel:
    """The fitted vote model stored in accuracy.json (`fit_vote_model`)."""
    f = _data().get("majority_vote_fit")
    if f is None:
        raise ValueError(f"{DATA} has no majority_vote_fit; run python -m objectives.test_time fit --write")
    return VoteModel(kappa=float(f["kappa"]), wrong_answers=float(f["wrong_answers"]))


def budget_factor(budget: Any) -> Any:
    """Fraction of the full-budget accuracy reached with a reasoning budget of `budget` tokens:
    max(0, 1 - slope x log2(L_sat / L)) below L_sat, 1 above (accuracy.json ``thinking_budget``)."""
    b = _data()["thinking_budget"]
    L = np.asarray(budget, dtype=float)
    if (L < 1).any() or not np.isfinite(L).all():
        raise ValueError(f"budget={budget!r}: reasoning budgets are token counts >= 1")
    f = 1.0 - float(b["slope_per_doubling"]) * np.log2(float(b["saturation_tokens"]) / L)
    out = np.clip(np.where(L >= float(b["saturation_tokens"]), 1.0, f), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def _ab(p: Any, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return p * kappa, (1.0 - p) * kappa


def best_of_n(p: Any, n: Any, vm: VoteModel | None = None) -> Any:
    """Best-of-N with an oracle verifier: E[1 - (1 - p_i)^N] over p_i ~ Beta(p kappa, (1 - p) kappa)
    = 1 - B(a, b + N) / B(a, b)."""
    vm = vm or vote_model()
    a, b = _ab(p, vm.kappa)
    n = np.asarray(n, dtype=float)
    out = 1.0 - np.exp(special.betaln(a, b + n) - special.betaln(a, b))
    return float(out) if np.ndim(out) == 0 else out


def majority_vote(p: Any, n: Any, vm: VoteModel | None = None) -> Any:
    """Majority voting over N samples: P(X > N / (1 + w)) + P(X = N / (1 + w)) / 2 with X ~ BetaBinomial(N, a, b),
    a = p kappa, b = (1 - p) kappa (the correct count beats the most common of w evenly split wrong answers)."""
    vm = vm or vote_model()
    p, n = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(n, dtype=float))
    a, b = _ab(p, vm.kappa)
    nmax = int(n.max()) if n.size else 1
    k = np.arange(nmax + 1, dtype=float)
    shape = p.shape + (1,)
    pmf = stats.betabinom.pmf(k, n.reshape(shape), a.reshape(shape), b.reshape(shape))
    thr = (n / (1.0 + vm.wrong_answers)).reshape(shape)
    w = np.where(k > thr + 1e-9, 1.0, np.where(np.abs(k - thr) <= 1e-9, 0.5, 0.0))
    out = (pmf * w).sum(axis=-1)
    return float(out) if out.ndim == 0 else out


def accuracy_of(p: Any, n: Any, budget: Any, mode: Any, vm: VoteModel | None = None) -> Any:
    """Expected fraction of problems solved (see the module docstring for each mode's formula). `p` is the
    per-sample success at the full budget (already scaled by the weight format's recovery)."""
    p, n, budget, mode = np.broadcast_arrays(np.asarray(p, dtype=float), np.asarray(n, dtype=float),
                                             np.asarray(budget, dtype=float), np.asarray(mode, dtype=object))
    bad = sorted({str(m) for m in np.unique(mode.astype(str))} - set(MODES))
    if bad:
        raise ValueError(f"mode={bad[0]!r} is not one of {MODES}")
    if (n < 1).any() or (n != np.round(n)).any():
        raise ValueError(f"n_samples={n[(n < 1) | (n != np.round(n))][0]!r}: the number of samples is an integer >= 1")
    pl = p * budget_factor(budget)
    seq = p * budget_factor(budget * n)
    out = np.where(mode == "oracle", best_of_n(pl, n, vm),
                   np.where(mode == "vote", majority_vote(pl, n, vm), seq))
    return float(out) if out.ndim == 0 else out


def _vote_grid(p: float, n: int, kappa: np.ndarray, w: np.ndarray) -> np.ndarray:
    """`majority_vote` of one (p, n) over arrays of kappa and w (same shape)."""
    k = np.arange(n + 1, dtype=float)
    a, b = p * kappa[..., None], (1.0 - p) * kappa[..., None]
    pmf = stats.betabinom.pmf(k, n, a, b)
    thr = (n / (1.0 + w))[..., None]
    return (pmf * np.where(k > thr + 1e-9, 1.0, np.where(np.abs(k - thr) <= 1e-9, 0.5, 0.0))).sum(axis=-1)


def fit_vote_model() -> tuple[VoteModel, pd.DataFrame]:
    """Least squares on the published (pass@1, cons@64) pairs: kappa and wrong_answers such that
    majority_vote(pass1, 64) matches cons@64. Returns the model and a table of the fit per pair."""
    rows = _data()["majority_vote_pairs"]["rows"]
    p1 = np.array([r["pass1"] for r in rows])
    c64 = np.array([r["cons64"] for r in rows])

    # the vote tail is a step function of wrong_answers (the threshold N / (1 + w) moves in whole votes), so a
    # gradient method stalls: search a log grid of both factors instead (vectorized), then keep the best point
    kap = np.logspace(-2, 2, 81)
    wa = np.logspace(-1, 2, 61)
    K, W = np.meshgrid(kap, wa, indexing="ij")
    err = np.zeros(K.shape)
    for pi, ci in zip(p1, c64, strict=True):
        err += (_vote_grid(pi, 64, K, W) - ci) ** 2
    i, j = np.unravel_index(np.argmin(err), err.shape)
    vm = VoteModel(kappa=float(K[i, j]), wrong_answers=float(W[i, j]))
    table = pd.DataFrame({"model": [r["model"] for r in rows], "pass1": p1, "cons64": c64,
                          "fitted_cons64": majority_vote(p1, np.full_like(p1, 64.0), vm)})
    return vm, table


def evaluate(model: Any, task: Any, gpu: Any, tp: Any = 1, weight_dtype: Any = None, n_samples: Any = 1,
             budget: Any = 8192, mode: Any = "vote", prompt_len: Any = 256, max_batch_size: Any = 2048, *,
             engine: Any = None, vm: VoteModel | None = None) -> pd.DataFrame:
    """Accuracy, cost and latency of test-time-scaling configurations, one row per broadcast configuration.

    Arguments broadcast (scalars or arrays): model (catalog name with a published per-sample success for `task`),
    task, gpu, tp, weight_dtype (None: the checkpoint's format, as every inference entry point), n_samples
    (N >= 1), budget (reasoning tokens per sample, L), mode ("vote", "oracle", "sequential"), prompt_len (P tokens), max_batch_size (sequences in flight per replica at most: the
    engine's max_num_seqs; smaller batches trade cost for latency). Columns: accuracy, usd_per_problem,
    usd_per_solved (USD), latency_s (s), joules_per_problem (J), output_tokens (N L per problem), fits, reason,
    and the inputs.
    """
    cols = np.broadcast_arrays(*(np.asarray(v, dtype=object) for v in
                                 (model, task, gpu, tp, weight_dtype, n_samples, budget, mode, prompt_len,
                                  max_batch_size)))
    m, t, g, tp_, wd, n, L, md, P, mbs = (c.ravel() for c in cols)
    n = n.astype(float)
    L = L.astype(float)
    P = P.astype(float)
    if (n < 1).any():
        raise ValueError(f"n_samples={n[n < 1][0]!r}: the number of samples is an integer >= 1")
    pairs = {(a, b) for a, b in zip(m, t, strict=True)}
    p_of = {pair: per_sample_success(str(pair[0]), str(pair[1])) for pair in pairs}
    seq = md == "sequential"
    isl = np.where(seq, P, np.ceil(P / n))
    osl = np.where(seq, n * L, L)
    mt = inference.max_throughput(m, g, tp=tp_.astype(int), weight_dtype=wd, input_len=isl.astype(int),
                                  output_len=osl.astype(int), max_batch_size=mbs.astype(int), engine=engine)
    wd = mt["weight_dtype"].astype(str).to_numpy(object)  # the format each row runs (checkpoint's where None)
    p = np.array([p_of[(a, b)] for a, b in zip(m, t, strict=True)]) * np.asarray(accuracy.quality(wd)) / 100.0
    acc = np.asarray(accuracy_of(p, n, L, md, vm), dtype=float).ravel()
    tokens = n * L
    usd = mt["usd_per_mtok"].to_numpy() * tokens / 1e6
    return pd.DataFrame({
        "model": m, "task": t, "gpu": mt["gpu"].astype(str).to_numpy(), "tp": tp_.astype(int), "weight_dtype": wd,
        "n_samples": n.astype(int), "budget": L.astype(int), "mode": md, "prompt_len": P.astype(int),
        "accuracy": acc, "usd_per_problem": usd, "usd_per_solved": usd / np.maximum(acc, 1e-12),
        "latency_s": mt["e2e_ms"].to_numpy() / 1e3, "joules_per_problem": mt["joules_per_tok"].to_numpy() * tokens,
        "output_tokens": tokens, "batch_size": mt["batch_size"].to_numpy(), "fits": mt["fits"].to_numpy(bool),
        "reason": mt["reason"].astype(str).to_numpy(),
    })


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Fit the majority-vote model to the published (pass@1, cons@64) pairs")
    ap.add_argument("command", choices=["fit"])
    ap.add_argument("--write", action="store_true", help="store the fit in objectives/data/accuracy.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    vm, table = fit_vote_model()
    log.info("kappa = %.4f  wrong_answers = %.4f", vm.kappa, vm.wrong_answers)
    log.info("%s", table.to_string(index=False, float_format="%.3f"))
    if args.write:
        d = json.loads(DATA.read_text())
        d["majority_vote_fit"] = {
            "kappa": round(vm.kappa, 4), "wrong_answers": round(vm.wrong_answers, 4),
            "source": "fit: python -m objectives.test_time fit --write, on majority_vote_pairs",
            "max_abs_error": round(float((table["fitted_cons64"] - table["cons64"]).abs().max()), 4),
        }
        DATA.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
        _data.cache_clear()
        log.info("wrote %s", DATA)
    return 0


__all__ = ["VoteModel", "MODES", "per_sample_success", "known_pairs", "vote_model", "budget_factor", "best_of_n",
           "majority_vote", "accuracy_of", "fit_vote_model", "evaluate"]

if __name__ == "__main__":
    raise SystemExit(main())
