"""Attention-DP ranks in lockstep: how often, and by how much, a rank waits for the other ranks' prompt chunks.

The attention-DP ranks of a replica step together through every MoE layer's collectives, so a step lasts as long as
its slowest rank's forward (`estimate.rank_wait_s`). Whether the ranks' prompt chunks fall in the same steps depends
on when their clients send them, which this module states as an overlap factor: the prompt tokens a step's slowest
rank holds, summed over steps, per prompt token of one rank, less one (0: the ranks' chunks all meet in the same
steps; R - 1: no two ranks ever prefill in the same step).

Closed loop (`max_throughput`'s clients, `serving.Workload(concurrency=...)`): every client starts at once, so the
first round of prompts reaches every rank in the same full chunks. A client's next prompt follows its last output
token; its output length drifts by up to +-`BENCHMARK_OUTPUT_SPREAD` from request to request (the simulator's
`serving.Workload.output_spread`), so round k's prompts reach a rank spread over a window of about
sqrt(n_pf^2 + (2 h)^2 (k - 1)) steps (n_pf: the first round's full chunks, h = the spread in tokens, hence decode
steps; uniform drifts of +-h add variance h^2 / 3 a round, a uniform window of that variance spans 2 h sqrt(k - 1)),
at most the whole request cycle. The windows of all ranks coincide (the clients of all ranks start together and the
ranks step together), but inside them each rank's prompts arrive independently: Poisson with lam = N / window
prompts a step. Open loop (requests arriving apart, `serving`'s analytical model): the same at the steady rate, lam
= N / n_it over every step of the cycle.

A rank's step holds min(n, g) prompts (n ~ Poisson(lam), g = the budget's full chunk in prompts); the slowest rank
of R holds min(max of R such n, g). The overlap factor is E[min(max, g)] / E[min(n, g)] - 1, averaged over the
`BENCHMARK_ROUNDS` rounds of a benchmark run (the first round's 0 included). A prompt longer than the budget (g < 1)
counts in full chunks: lam / g chunks a step, at most one.

TensorRT-LLM's attention-DP balance (`AdpBalance`, ``attention_dp_config.enable_balance``; off by default) holds the
ranks' prompts back so that they run together: a rank's prompts wait until every rank has one (then
``batching_wait_iters`` more iterations), or ``timeout_iters`` iterations since the last release (`release_period`).
The prompts then run in releases of lam x that period a rank, all ranks' in the same step, each prompt waiting
the rest of the period it arrives in first, and a round's last prompts the timeout (`balance_hold_steps`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .resolve import Num

#: a closed-loop benchmark client's output length drifts within +-2 % of the stated one from request to request:
#: the simulator's default (`serving.Workload.output_spread` is this value), chosen leaving one model out on the
#: silicon slice
BENCHMARK_OUTPUT_SPREAD = 0.02
#: requests each closed-loop client sends in a benchmark run: the silicon replay's (`calibration.silicon.simulated`
#: takes this default)
BENCHMARK_ROUNDS = 10
#: TensorRT-LLM's ``AttentionDpConfig`` defaults (tensorrt_llm/llmapi/llm_args.py @
#: 0004396720054fd8e205cbf616f21f0b57c6b412: ``enable_balance: bool = False``, ``timeout_iters`` 50,
#: ``batching_wait_iters`` 10)
TRTLLM_BATCHING_WAIT_ITERS = 10
TRTLLM_TIMEOUT_ITERS = 50
#: the engines that have an attention-DP balance (`AdpBalance`): TensorRT-LLM alone (vLLM and SGLang schedule each
#: attention-DP rank's prompts on their own)
ADP_BALANCE_ENGINES = ("trtllm",)
#: the most prompt counts the Poisson sums run over (a step's slowest rank beyond it is as good as certain to be full)
_MAX_TERMS = 512


def slowest_rank_excess(lam: Num, g: Num, R: Num) -> np.ndarray:
    """E[min(max of R iid n, g)] / E[min(n, g)] - 1 with n ~ Poisson(`lam`) prompts a step and rank: how many more
    prompt tokens the slowest of R ranks holds in a step than one rank's own, per own token (>= 0). `g` (> 0): the
    prompts a full chunk holds (below 1: a prompt spans 1 / g full chunks, counted in chunks, lam / g of them a
    step). Arrays broadcast."""
    lam, g, R = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (lam, g, R)))
    long = g < 1.0
    lam = np.maximum(np.where(long, lam / np.maximum(g, 1e-300), lam), 1e-300)
    g = np.where(long, 1.0, g)
    top = float(np.max(np.minimum(np.ceil(g), np.ceil(lam + 10.0 * np.sqrt(lam) + 12.0)), initial=1.0))
    m = np.arange(min(int(top), _MAX_TERMS), dtype=float)           # P(n <= m), m = 0 .. terms - 1
    lm, gm = lam[..., None], g[..., None]
    cdf = np.minimum(np.cumsum(np.exp(m * np.log(lm) - lm - gammaln(m + 1.0)), axis=-1), 1.0)
    w = np.clip(gm - m, 0.0, 1.0)                                   # the share of the (m + 1)-th prompt a chunk holds
    own = np.sum(w * (1.0 - cdf), axis=-1)
    slowest = np.sum(w * (1.0 - cdf ** R[..., None]), axis=-1)
    return np.maximum(slowest / np.maximum(own, 1e-300) - 1.0, 0.0)


def arrival_rates(N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool = False,
                  spread: float = BENCHMARK_OUTPUT_SPREAD, rounds: int = BENCHMARK_ROUNDS,
                  chunk_steps: float = 1.0) -> np.ndarray:
    """Prompts reaching one rank a step while they arrive (the module docstring), one per round of a closed-loop
    run after its first (last axis, `rounds` - 1 long): N requests in flight a rank, prompts of `isl` and outputs
    of `osl` tokens (outputs drifting within +-`spread`), full prefill chunks of `T_pf` tokens, `n_it` iterations
    a cycle; `apart`: requests arriving apart at the steady rate N / n_it (last axis 1 long). `chunk_steps`: the
    iterations each of the first round's full chunks takes (1; TensorRT-LLM's attention-DP balance holds each
    chunk after the first batching_wait_iters more, which spreads every later round as much)."""
    N, isl, osl, T_pf, n_it = (np.asarray(x, dtype=float) for x in (N, isl, osl, T_pf, n_it))
    n_it = np.maximum(n_it, 1.0)
    if apart:
        return (N / n_it)[..., None]
    n_pf = np.minimum(N * isl / np.maximum(T_pf, 1e-300) * chunk_steps, n_it)
    h = np.maximum(1.0, np.round(spread * osl)) if spread > 0 else np.zeros_like(osl)
    k = np.arange(2.0, rounds + 1.0)                                 # rounds after the first, all-at-once one
    window = np.minimum(np.sqrt(n_pf[..., None] ** 2 + (2.0 * h[..., None]) ** 2 * (k - 1.0)), n_it[..., None])
    return N[..., None] / window


def _per_round(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool, spread: float,
               rounds: int, balance: AdpBalance | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """`arrival_rates` (lam, prompts a rank and step, one per round on the last axis; under `balance` each of the
    first round's chunks held batching_wait_iters more) with R, N and the prompts a full chunk holds, g = T_pf /
    isl, each on a trailing axis of 1 to broadcast against it: (lam, R, N, g)."""
    steps = 1.0 if balance is None else float(balance.batching_wait_iters) + 1.0
    lam = arrival_rates(N, isl, osl, T_pf, n_it, apart, spread, rounds, steps)
    R, N = np.asarray(R, dtype=float)[..., None], np.asarray(N, dtype=float)[..., None]
    g = (np.asarray(T_pf, dtype=float) / np.maximum(np.asarray(isl, dtype=float), 1e-300))[..., None]
    return lam, R, N, g


def overlap_factor(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool = False,
                   spread: float = BENCHMARK_OUTPUT_SPREAD, rounds: int = BENCHMARK_ROUNDS,
                   balance: AdpBalance | None = None) -> np.ndarray:
    """The prompt tokens a step's slowest rank holds beyond a rank's own, per own token, over a request cycle (the
    module docstring): R attention-DP ranks, the rest as `arrival_rates`. Closed loop: the mean over a run of
    `rounds` requests a client (the first round, all at once, 0); `apart`: at the steady rate. `balance`
    (`AdpBalance`): the prompts of each `release_period` run together (at most the N a rank holds)."""
    lam, R, N, g = _per_round(R, N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)
    aligned = not apart and spread <= 0
    period = None if balance is None or aligned else release_period(lam, R, balance)
    return _overlap(lam, R, N, g, apart, spread, rounds, period)


def _overlap(lam: np.ndarray, R: np.ndarray, N: np.ndarray, g: np.ndarray, apart: bool, spread: float,
             rounds: int, period: np.ndarray | None) -> np.ndarray:
    """`overlap_factor` of `_per_round`'s arrays; `period`: the balance's mean release period (iterations,
    `release_period`), None without a balance."""
    if not apart and spread <= 0:       # exactly equal lengths: every round's full chunks meet as the first's
        return np.zeros(np.broadcast_shapes(lam.shape, R.shape, N.shape)[:-1])
    if period is not None:
        lam = np.minimum(lam * period, N)
    share = 1.0 if apart else 1.0 / float(rounds)
    return np.sum(slowest_rank_excess(lam, g, R), axis=-1) * share


def balance_hold_steps(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool = False,
                       balance: AdpBalance | None = None, spread: float = BENCHMARK_OUTPUT_SPREAD,
                       rounds: int = BENCHMARK_ROUNDS) -> np.ndarray:
    """Iterations a prompt waits for `balance`'s release on average (0 without it), the rest as `overlap_factor`.
    A round's N prompts a rank arrive over N / lam iterations (`arrival_rates`, each of the first round's chunks
    held batching_wait_iters more, which spreads the later rounds as much); a release runs at most a full chunk's g
    prompts a rank and, with every rank holding prompts, comes every batching_wait_iters + 1 iterations, so the
    round drains over at least N / g of those. A prompt arriving at a steady rate waits the rest of the release
    period it arrives in, E[P^2] / (2 E[P]) of the periods P (`release_moments`: a long timeout period holds more
    of the arrivals than a short one), plus half of what the draining outlasts the arrivals. The closed loop's
    rounds end: the prompts that arrived since the last release (lam x that rest a rank) see no more prompts
    reach the other ranks and wait for the timeout (timeout_iters from the last release, their arrival on average
    half the rest after it) unless every rank already holds one. The first round of a closed loop arrives at
    once, the ranks without decodes yet: its first release runs at once, the others one drain period apart."""
    lam, R, N, g = _per_round(R, N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)
    if balance is None:
        return np.zeros(np.broadcast_shapes(lam.shape, R.shape, N.shape)[:-1])
    return _hold(lam, R, N, g, apart, rounds, balance, release_moments(lam, R, balance))


def balance_terms(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool = False,
                  balance: AdpBalance | None = None, spread: float = BENCHMARK_OUTPUT_SPREAD,
                  rounds: int = BENCHMARK_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """(`overlap_factor`, `balance_hold_steps`) of the same rows (arguments as theirs), their per-round arrival
    rates (`arrival_rates`) and the balance's release periods (`release_moments`) worked out once."""
    lam, R, N, g = _per_round(R, N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)
    if balance is None:
        return (_overlap(lam, R, N, g, apart, spread, rounds, None),
                np.zeros(np.broadcast_shapes(lam.shape, R.shape, N.shape)[:-1]))
    moments = release_moments(lam, R, balance)
    return _overlap(lam, R, N, g, apart, spread, rounds, moments[0]), _hold(lam, R, N, g, apart, rounds, balance,
                                                                          moments)


def _hold(lam: np.ndarray, R: np.ndarray, N: np.ndarray, g: np.ndarray, apart: bool, rounds: int,
          balance: AdpBalance, moments: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """`balance_hold_steps` of `_per_round`'s arrays under `balance`, whose release periods' mean and mean square
    (`release_moments`) are `moments`."""
    cycle = float(balance.batching_wait_iters) + 1.0
    drain = np.maximum(N / np.maximum(g, 1e-300), 1.0) * cycle                 # iterations to release N a rank
    mean, square = moments
    rest = 0.5 * square / mean
    hold = rest + 0.5 * np.maximum(drain - N / lam, 0.0)
    if apart:
        return hold[..., 0]
    late = np.minimum(lam * rest, N) / N * (1.0 - (-np.expm1(-lam * rest)) ** R)     # a round's stranded share
    hold = hold + late * np.maximum(float(balance.timeout_iters) - 1.5 * rest, 0.0)
    first = 0.5 * np.maximum(drain[..., 0] - cycle, 0.0)
    return (first + np.sum(hold, axis=-1)) / float(rounds)


@dataclass(frozen=True)
class AdpBalance:
    """TensorRT-LLM's attention-DP balance (``attention_dp_config.enable_balance: true``), as its executor runs it
    (tensorrt_llm/_torch/pyexecutor/py_executor.py, ``PyExecutor._balance_adp_requests``): every iteration the
    ranks share how many prompt (context) and decode requests each scheduled. While every rank has decodes, the
    prompts are held back: when every rank has a prompt (and room for it), for ``batching_wait_iters`` iterations,
    then all run; otherwise until ``timeout_iters`` iterations have passed since the last release (the counter
    runs in pure decode iterations too). A rank without decodes releases at once. Off by default."""

    batching_wait_iters: int = TRTLLM_BATCHING_WAIT_ITERS
    timeout_iters: int = TRTLLM_TIMEOUT_ITERS

    def __post_init__(self) -> None:
        for name in ("batching_wait_iters", "timeout_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"AdpBalance {name}={v!r}: an integer >= 0 (iterations), as TensorRT-LLM's "
                                 f"attention_dp_config.{name}")


def as_balance(value: object) -> AdpBalance | None:
    """`AdpBalance` from a knob's value: None / False (off: the engine's default), True (TensorRT-LLM's default
    iterations) or an `AdpBalance`."""
    if value is None or value is False:
        return None
    if value is True:
        return AdpBalance()
    if isinstance(value, AdpBalance):
        return value
    raise TypeError(f"adp_balance={value!r}: True, False / None (off, the default) or an AdpBalance")


def balance_rows(value: object) -> tuple[AdpBalance | None, np.ndarray | None]:
    """The ``adp_balance`` knob of `estimate.max_throughput`, a value for every row (`as_balance`) or one bool per
    row: (the `AdpBalance` of the rows that have one, None where no row has; the per-row bools where an array was
    given, else None). A per-row True is TensorRT-LLM's default iterations."""
    if value is None or isinstance(value, (bool, np.bool_, AdpBalance, str, bytes)) or not hasattr(value, "__len__"):
        return as_balance(value.item() if isinstance(value, np.bool_) else value), None
    from .resolve import flag
    on = np.asarray(flag("adp_balance", value), dtype=bool)
    if not on.any():
        return None, on
    return AdpBalance(), on


def release_moments(lam: Num, R: Num, balance: AdpBalance) -> tuple[np.ndarray, np.ndarray]:
    """The mean and mean square (iterations, iterations^2) of the period P between two releases of `balance` when
    prompts reach each of R ranks at lam a step (Poisson): J iterations after a release every rank has one
    (P(J <= j) = (1 - e^(-lam j))^R); the next release is batching_wait_iters later if J < timeout_iters, else at
    timeout_iters."""
    lam, R = np.broadcast_arrays(np.asarray(lam, dtype=float), np.asarray(R, dtype=float))
    T, W = int(balance.timeout_iters), float(balance.batching_wait_iters)
    if T <= 1:
        one = np.full(lam.shape, max(float(T), 1.0))
        return one, one * one
    j = np.arange(1.0, float(T))                                    # J = 1 .. T - 1
    cdf = (-np.expm1(-lam[..., None] * j)) ** R[..., None]
    pj = np.diff(cdf, prepend=0.0, axis=-1)
    late = 1.0 - cdf[..., -1]                                       # no release before the timeout
    return (np.sum(pj * (j + W), axis=-1) + late * T,
            np.sum(pj * (j + W) ** 2, axis=-1) + late * float(T) ** 2)


def release_period(lam: Num, R: Num, balance: AdpBalance) -> np.ndarray:
    """Mean iterations between two releases of `balance` (`release_moments`' first)."""
    return release_moments(lam, R, balance)[0]
