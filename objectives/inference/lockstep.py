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
The prompts then run in releases of lam x that period a rank (at most a full chunk; the others wait for the next
releases), all ranks' in the same step, each prompt waiting the rest of the period it arrives in first, and a
round's last prompts the timeout; the holds spread the next round's arrivals as the outputs' drift does, and the
first round's chunks run one release after another (`balance_ttft`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def _log_factorial(m: np.ndarray) -> np.ndarray:
    """ln(m!) elementwise (scipy.special.gammaln(m + 1), imported on first use: scipy.special and what it loads
    cost a fresh process ~0.1 s, and only attention-DP rows reach this)."""
    from scipy.special import gammaln
    return gammaln(m + 1.0)


def rank_moments(lam: Num, g: Num, *R: Num) -> tuple[np.ndarray, ...]:
    """(E[min(n, g)], then E[min(max of r iid n, g)] for each r of `R`) with n ~ Poisson(`lam`) prompts a step and
    rank: the prompts one rank holds in a step, and the slowest of r ranks. `g` (> 0): the prompts a full chunk
    holds (below 1: a prompt spans 1 / g full chunks, and all count in full chunks, lam / g of them a step). Arrays
    broadcast; one Poisson table for every r."""
    lam, g, *Rs = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (lam, g, *R)))
    long = g < 1.0
    lam = np.maximum(np.where(long, lam / np.maximum(g, 1e-300), lam), 1e-300)
    g = np.where(long, 1.0, g)
    top = float(np.max(np.minimum(np.ceil(g), np.ceil(lam + 10.0 * np.sqrt(lam) + 12.0)), initial=1.0))
    m = np.arange(min(int(top), _MAX_TERMS), dtype=float)           # P(n <= m), m = 0 .. terms - 1
    lm, gm = lam[..., None], g[..., None]
    cdf = np.minimum(np.cumsum(np.exp(m * np.log(lm) - lm - _log_factorial(m)), axis=-1), 1.0)
    w = np.clip(gm - m, 0.0, 1.0)                                   # the share of the (m + 1)-th prompt a chunk holds
    return (np.sum(w * (1.0 - cdf), axis=-1), *(np.sum(w * (1.0 - cdf ** r[..., None]), axis=-1) for r in Rs))


def slowest_rank_excess(lam: Num, g: Num, R: Num) -> np.ndarray:
    """E[min(max of R iid n, g)] / E[min(n, g)] - 1 with n ~ Poisson(`lam`) prompts a step and rank: how many more
    prompt tokens the slowest of R ranks holds in a step than one rank's own, per own token (>= 0); arguments as
    `rank_moments`'."""
    own, slowest = rank_moments(lam, g, R)
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
    lam = _later_rounds(N, isl, osl, T_pf, n_it, spread, rounds, chunk_steps)[0]
    return np.ascontiguousarray(np.moveaxis(lam, 0, -1))



def arrival_variability(N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, spread: float = BENCHMARK_OUTPUT_SPREAD,
                        rounds: int = BENCHMARK_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """`arrival_rates`' closed loop with its arrivals' variability, each round after the first on the last axis:
    (lam, prompts reaching one rank a step; ca^2 = 1 - (n_pf / window)^2, clipped to [0, 1]: the drift's share of
    the round's window, the first round's prefill order itself being regular). `round_queue` forms the same ca^2
    in place on its hot path; callers outside it (the disaggregated closed loop's prefill pool) take it here."""
    N, isl, osl, T_pf, n_it = (np.asarray(x, dtype=float) for x in (N, isl, osl, T_pf, n_it))
    lam, n_pf = _later_rounds(N, isl, osl, T_pf, np.maximum(n_it, 1.0), spread, rounds, 1.0)
    lam = np.ascontiguousarray(np.moveaxis(lam, 0, -1))
    ca2 = np.clip(1.0 - (n_pf[..., None] * lam / np.maximum(N, 1e-300)[..., None]) ** 2, 0.0, 1.0)
    return lam, ca2

def _later_rounds(N: np.ndarray, isl: np.ndarray, osl: np.ndarray, T_pf: np.ndarray, n_it: np.ndarray,
                  spread: float, rounds: int, chunk_steps: float) -> tuple[np.ndarray, np.ndarray]:
    """`arrival_rates`' closed loop (`n_it` >= 1, arrays of floats): (lam, one per round after the first on the
    FIRST axis, and `_first_window`'s n_pf). The rounds lead so that each round's rows lie together: the per-row
    terms broadcast along them (the hot path, `round_queue`, runs on every measured-profile row of
    `estimate.max_throughput`)."""
    n_pf, h = _first_window(N, isl, osl, T_pf, n_it, spread, chunk_steps)
    k = np.arange(2.0, rounds + 1.0)                                 # rounds after the first, all-at-once one
    shape = np.broadcast_shapes(N.shape, n_pf.shape, h.shape, n_it.shape)
    # window = min(sqrt(n_pf^2 + (2 h)^2 (k - 1)), n_it); lam = N / window
    lam = np.multiply((k - 1.0).reshape(k.shape + (1,) * len(shape)), (2.0 * h) ** 2, out=np.empty(k.shape + shape))
    lam += n_pf ** 2
    np.sqrt(lam, out=lam)
    np.minimum(lam, n_it, out=lam)
    np.divide(N, lam, out=lam)
    return lam, n_pf


def _round_mean(x: np.ndarray) -> np.ndarray:
    """The mean over the rounds on `x`'s first axis, the same bits as np.mean over a contiguous last axis: numpy's
    pairwise summation order (``pairwise_sum``, numpy/_core/src/umath/loops_utils.h.src: below 8 terms one by one
    from 0, up to 128 eight partial sums combined pairwise and the rest added one by one, beyond that two halves),
    then / the count. `round_queue` keeps the rounds leading (`_later_rounds`) without changing its numbers."""
    def total(lo: int, n: int) -> np.ndarray:
        if n < 8:
            res = np.zeros(x.shape[1:])
            for i in range(lo, lo + n):
                res += x[i]
            return res
        if n <= 128:
            r = [x[lo + j] for j in range(8)]
            i = 8
            while i < n - n % 8:
                for j in range(8):
                    r[j] = r[j] + x[lo + i + j]
                i += 8
            res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            for rest in range(i, n):
                res += x[lo + rest]
            return res
        half = n // 2
        half -= half % 8
        return total(lo, half) + total(lo + half, n - half)
    return total(0, len(x)) / len(x)


#: rows `round_queue` prices at a time in a large sweep: its (round, row) arrays of that many rows (9 rounds x
#: 4,096 rows x 8 bytes) stay in a core's L2 cache and the allocator's free memory, where an `estimate.BLOCK_ROWS`
#: block's spill to L3 and fault fresh pages in (docs/profiles.md, thirty-eighth round)
QUEUE_BLOCK_ROWS = 4096


def _row_blocks(rows: tuple[Num, ...], more: tuple[Num, ...]) -> tuple[int, list[slice]] | None:
    """Where `round_queue`'s per-row arguments `rows` (those that shape its results) broadcast to more than 2 x
    `QUEUE_BLOCK_ROWS` rows on one axis and the others, `more` (None: absent), to no more: (those rows, slices of at
    most `QUEUE_BLOCK_ROWS` of them); else None."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in rows))
    if len(shape) != 1 or shape[0] <= 2 * QUEUE_BLOCK_ROWS:
        return None
    if np.broadcast_shapes(shape, *(np.shape(x) for x in more if x is not None)) != shape:
        return None
    n = shape[0]
    return n, [slice(i, min(i + QUEUE_BLOCK_ROWS, n)) for i in range(0, n, QUEUE_BLOCK_ROWS)]


def round_queue(N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, alone: Num = 0.0,
                spread: float = BENCHMARK_OUTPUT_SPREAD, rounds: int = BENCHMARK_ROUNDS, lag: Num = 0.0,
                span: Num = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed loop's prompts after its first round, queued in one replica's prompt budget: (the other prompts that
    share a prompt's own iteration, the full-budget iterations it waits for, and the share of the window's
    iterations that carry prompt tokens, each its mean over the `rounds` - 1 rounds after the first). Round k's
    prompts arrive in a window (`arrival_rates`: the first round's prefill order, kept by the clients, widened by
    the outputs' drift), at lam a step. An iteration takes at most g = `T_pf` / `isl` of them (a prompt longer than
    the budget: 1 / g iterations of its own). A prompt's iteration also holds those that arrived with it: lam more
    on average (Poisson arrivals see the time average, PASTA), at most g - 1. Where lam nears g the prompts queue:
    M/D/1 at rho = lam / g, a prompt's service 1 / g iterations, Wq = rho / (2 (1 - rho)) / g, scaled by the
    arrivals' variability (Kingman: Wq grows with (ca^2 + cs^2) / 2, cs = 0): the window's spread beyond the first
    round's regular order is the drift's, Poisson-like, so ca^2 = 1 - (n_pf / window)^2 (equal outputs keep the
    order and do not queue); a window whose prompts outrun the budget (rho >= 1: the second round's window is about
    the first round's prefill) is held at rho = 1 - 1 / sqrt(N) (a critically loaded queue of N arrivals waits ~
    sqrt(N) / 2 services). An engine that runs prefill batches alone (`alone` > 0, per row: SGLang, whose
    ``Scheduler.get_next_batch_to_run``, python/sglang/srt/managers/scheduler.py, returns a waiting prompt's prefill
    batch in place of the decode batch) pauses the decodes while prompts wait, so no request finishes and no prompt
    arrives during a prefill: a prompt waits for half the others of its own decode step beyond its batch (half of
    lam + 1 - g, at g a batch), not for a queue carried over; and since the round's requests then decode in the same
    steps, the round arrives in one decode step (not over the first round's prefill), the drift widening it over at
    most the cycle's osl - 1 decode steps, lam counting prompts a decode step. An iteration of the window carries prompt tokens with
    probability 1 - exp(-lam / min(g, 1)) (a prompt longer than the budget keeps 1 / g of them busy).

    `lag` (per row, decode steps; 0: none): how long a finished request's next prompt takes to reach the
    scheduler (its client's host time, `estimate.host_ttft_s`, over the pure decode step). A round's requests
    finish in decode steps wherever the round's prefill is over before they finish (osl - 1 beyond the window's
    iterations; always where prefill batches run alone), and the engine keeps stepping decodes while their prompts
    travel: the prompts of the first m = min(1 + lag, window) steps of the window reach the scheduler within
    lag decode steps, lam (m - 1) prompts beyond the own step's, while the engine prefills a step's lam of them in
    r = 1 + (`span` - 1) min(lam / g, 1) decode steps' time (`span`, per row: the full-budget prefill iteration in
    decode steps; None: far longer than the lag), so (m - 1) (1 - 1 / r) steps' prompts are left queued (none
    where a step's prompts prefill in a decode step's time). Where decodes ride beside prompts these queue ahead
    of the rest of the window (a fluid queue: Q0 of them at once, then lam a step against g served, drained
    after Q0 / (g - lam) steps or the window's end; each prompt waits the queue it finds over g), on top of the
    drift's. Where prefill batches run alone the decodes pause while any prompt waits (SGLang's
    ``get_next_batch_to_run`` runs ``get_new_batch_prefill``'s batch whenever the waiting queue gives one), so no
    request finishes until the prompts received are all prefilled: those held, lam (m - 1) (1 - 1 / r) beyond the
    own step's lam, join one burst of prefill batches, of which a prompt waits half beyond its own batch. `N`,
    `isl`, `osl`, `T_pf` (prompt tokens an iteration holds), `n_it` (iterations a cycle), `alone`: per row; arrays
    broadcast."""
    blocks = _row_blocks((N, isl, osl, T_pf, n_it), (alone, lag, span)) if rounds >= 2 else None
    if blocks is not None:      # a large sweep's rows a block at a time (`QUEUE_BLOCK_ROWS`): the same numbers
        n, slices = blocks
        out = np.empty((3, n))
        for sl in slices:
            def cut(x: Num, sl: slice = sl) -> Num:     # a row argument's block; one of length 1 broadcasts whole
                return x[sl] if np.ndim(x) and np.shape(x)[0] == n else x
            part = round_queue(cut(N), cut(isl), cut(osl), cut(T_pf), cut(n_it), cut(alone), spread, rounds,
                               cut(lag), cut(span))
            for i, x in enumerate(part):
                out[i, sl] = x
        return out[0], out[1], out[2]
    N, isl, T_pf = (np.asarray(x, dtype=float) for x in (N, isl, T_pf))
    if rounds < 2:
        z = np.zeros(np.broadcast_shapes(N.shape, isl.shape, T_pf.shape, np.shape(osl), np.shape(n_it)))
        return z, z, z
    osl, n_it = np.asarray(osl, dtype=float), np.maximum(np.asarray(n_it, dtype=float), 1.0)
    lagged = bool(np.any(np.asarray(lag) > 0))
    if lagged:          # per-row lag and span of more rows than the rest (attention-DP ranks): the rounds' rows
        N = N * np.ones(np.broadcast_shapes(np.shape(lag), np.shape(span) if span is not None else ()))
    lam, n_pf = _round_rates(N, isl, osl, T_pf, n_it, alone, spread, rounds)
    g = T_pf / np.maximum(isl, 1e-300)
    gm = np.maximum(g, 1e-300)
    # the docstring's formulas on the (round, row) array, in place (the hot path)
    buf = np.minimum(lam, np.maximum(g - 1.0, 0.0))
    others = _round_mean(buf)
    alone = np.asarray(alone, dtype=float) > 0
    queue = alone.size == 0 or not np.all(alone)
    if queue:
        rho = np.divide(lam, gm, out=buf)
        np.minimum(rho, np.maximum(1.0 - 1.0 / np.sqrt(np.maximum(N, 1.0)), 0.0), out=rho)
        # the arrivals' variability: the drift's share of the window (`arrival_variability`'s ca^2, in place)
        ca2 = np.multiply(n_pf, lam)
        ca2 /= N
        np.square(ca2, out=ca2)
        np.subtract(1.0, ca2, out=ca2)
        np.clip(ca2, 0.0, 1.0, out=ca2)                                 # 1 - (n_pf / window)^2
        wait = np.multiply(ca2, rho, out=ca2)                           # ca2 rho / (2 (1 - rho)) / g
        np.subtract(1.0, rho, out=rho)
        rho *= 2.0
        wait /= rho
        wait /= gm
        if lagged:
            wait += _lag_queue(lam, N, g, np.asarray(lag, dtype=float), osl, span, scratch=rho)
    # a per-row `alone` of more dimensions than the rows: the rounds stay in front of them
    rows = np.broadcast_shapes(alone.shape, lam.shape[1:])
    wide = lam.shape[:1] + (1,) * (len(rows) + 1 - lam.ndim) + lam.shape[1:]
    if np.any(alone):
        # prefill batches alone: the decodes pause while prompts wait, so no request finishes meanwhile; a prompt
        # waits only for those that arrived in its own decode step and those held with them over the lag
        # (`_held`) beyond its own batch's g, half of them, at g a batch
        burst = lam + _held(lam, N, g, np.asarray(lag, dtype=float), span) if lagged else lam
        own = (0.5 * np.maximum(burst + 1.0 - g, 0.0) / gm).reshape(wide)
        wait = np.where(alone, own, wait.reshape(wide)) if queue else own
    queued = _round_mean(np.broadcast_to(wait.reshape(wide) if wait.ndim < len(wide) else wait,
                                         lam.shape[:1] + rows))
    # busy = -expm1(-lam / min(g, 1)): the signs moved onto the per-row divisor and the mean (exact)
    busy = np.divide(lam, -np.minimum(g, 1.0), out=lam)
    np.expm1(busy, out=busy)
    return others, queued, -_round_mean(busy)


def _round_rates(N: np.ndarray, isl: np.ndarray, osl: np.ndarray, T_pf: np.ndarray, n_it: np.ndarray, alone: Num,
                 spread: float, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """`round_queue`'s rounds after the first (arrays of floats, `n_it` >= 1): `_later_rounds`' (lam, one per round
    on the FIRST axis, prompts reaching one rank a step of the round's window; n_pf), where the engine runs prefill
    batches alone (`alone` > 0, per row) in decode steps (`round_queue`'s docstring)."""
    T_arr = T_pf
    if np.any(np.asarray(alone) > 0):
        # prefill batches alone: the round's prompts are all prefilled before the next decode step, so its requests
        # decode in the same steps and finish together but for the drift: the round arrives in one decode step
        # (the first round's spread, n_pf = 1: a window of N x isl tokens), widened by the drift over at most the
        # cycle's osl - 1 decode steps, the only iterations in which a request finishes
        on = np.asarray(alone) > 0
        T_arr = np.where(on, N * isl, T_pf)
        n_it = np.where(on, np.maximum(osl - 1.0, 1.0), n_it)
    return _later_rounds(N, isl, osl, T_arr, n_it, spread, rounds, 1.0)


def round_ranks(N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, R: Num, alone: Num = 0.0,
                spread: float = BENCHMARK_OUTPUT_SPREAD, rounds: int = BENCHMARK_ROUNDS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The other attention-DP ranks' prompts in a step of a closed loop's round, R ranks in lockstep each with its
    own clients and scheduler: (the prompt tokens one rank holds in a step of the round's window, the most any of
    R ranks holds, the most any of R - 1 holds; each its mean over the `rounds` - 1 rounds after the first). Every
    rank's round arrives in the same window (`round_queue`'s, `_round_rates`: the ranks' clients started together
    and the ranks step together), each rank's prompts at lam a step independently of the others': a rank's
    scheduler forms its own batch (vLLM: one ``EngineCore`` a DP rank, ``DPEngineCoreProc``, the coordinator
    routing each request to one rank by the request counts the ranks publish, ``_maybe_publish_request_counts``;
    SGLang: each DP-attention rank's ``Scheduler``, whose ``prepare_mlp_sync_batch`` only gathers the ranks'
    token counts, an idle rank running ``get_idle_batch``; TensorRT-LLM: each rank's ``PyExecutor`` without the
    attention-DP balance, `AdpBalance`), so a rank whose prompt runs in a step meets the other ranks' unconditioned
    lam a step (min(n, g) of n ~ Poisson(lam) at most a chunk: `rank_moments`), not a prompt of their own each.
    Tokens in units of min(`isl`, `T_pf`) (a prompt, or a full chunk of a longer one); the rest as `round_queue`'s."""
    N, isl, T_pf = (np.asarray(x, dtype=float) for x in (N, isl, T_pf))
    osl, n_it = np.asarray(osl, dtype=float), np.maximum(np.asarray(n_it, dtype=float), 1.0)
    shape = np.broadcast_shapes(N.shape, isl.shape, T_pf.shape, osl.shape, n_it.shape, np.shape(R), np.shape(alone))
    if rounds < 2:
        z = np.zeros(shape)
        return z, z, z
    N = N * np.ones(shape)      # the rows of every argument, so that the rounds lead them (`_later_rounds`)
    lam, _ = _round_rates(N, isl, osl, T_pf, n_it, alone, spread, rounds)
    g = T_pf / np.maximum(isl, 1e-300)
    R = np.asarray(R, dtype=float)
    own, most, others = rank_moments(lam, g, R, np.maximum(R - 1.0, 1.0))
    unit = np.minimum(isl, T_pf)
    return tuple(np.broadcast_to(np.mean(x, axis=0) * unit, shape) for x in (own, most, others))  # type: ignore[return-value]


def _received(lam: np.ndarray, N: np.ndarray, lag: Num, W: np.ndarray | None = None) -> np.ndarray:
    """`round_queue`'s m: the steps of a round's window (N / `lam` steps, at least 1) whose prompts reach the
    scheduler within `lag` decode steps after their requests finished: min(1 + lag, window). `W`: that window
    where the caller has it (None: formed here)."""
    if W is None:
        W = np.maximum(N / np.maximum(lam, 1e-300), 1.0)
    return np.minimum(1.0 + np.asarray(lag, dtype=float), W)


def _held(lam: np.ndarray, N: np.ndarray, g: np.ndarray, lag: np.ndarray, span: Num = None) -> np.ndarray:
    """`round_queue`'s prompts received together beyond the own step's (per round and row): lam (m - 1) (1 - 1 / r),
    the prompts of the m (`_received`) steps that reach the scheduler within `lag` decode steps, less those that a
    step's prefill, r = 1 + (`span` - 1) min(lam / g, 1) decode steps long, serves before they arrive (none left
    where a step's prompts prefill in a decode step's time; `span` None: all)."""
    m = _received(lam, N, lag)
    if span is None:
        return lam * (m - 1.0)
    r = 1.0 + (np.asarray(span, dtype=float) - 1.0) * np.minimum(lam / np.maximum(g, 1e-300), 1.0)
    return lam * (m - 1.0) * np.maximum(1.0 - 1.0 / np.maximum(r, 1e-300), 0.0)


def _lag_queue(lam: np.ndarray, N: np.ndarray, g: np.ndarray, lag: np.ndarray, osl: np.ndarray,
               span: Num = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """`round_queue`'s queue (full-budget iterations a prompt waits, per round and row: the mean over the round's
    N prompts) of the prompts received together `lag` decode steps after their requests finished, where decodes
    ride beside prompts (its docstring): Q0 = lam (m - 1) (1 - 1 / r) at once (m: `_received`; r: a step's
    prompts' prefill in decode steps, from `span`), in steps where the round's
    requests finish in decode steps (osl beyond the window W = N / lam, a ramp of one step), then lam a step
    against g served until the queue drains (Q0 / (g - lam) steps) or the window ends (W - m). The queue's
    prompt-steps: Q0^2 / (2 g) for the batch, lam (Q0 t - (g - lam) t^2 / 2) / g for those arriving while it
    drains for t steps. `scratch`: an array of lam's shape the caller no longer needs (None: one allocated). The
    buffers take lam's shape: `N`, `g`, `lag`, `osl` and `span` broadcast to it, none wider (`round_queue` widens N)."""
    # the formulas above on the (round, row) arrays, in place in four buffers of lam's shape (the hot path: every
    # measured-profile row of `estimate.max_throughput`); each operation as written, so the same bits
    q0 = np.empty_like(lam) if scratch is None else scratch
    W = np.maximum(lam, 1e-300)
    np.divide(N, W, out=W)
    np.maximum(W, 1.0, out=W)                                       # W = max(N / lam, 1)
    m = _received(lam, N, lag, W)
    np.subtract(m, 1.0, out=q0)
    q0 *= lam                                                       # lam (m - 1)
    rest = np.subtract(W, m, out=m)
    np.maximum(rest, 0.0, out=rest)                                 # W - m, at least 0
    gm = np.maximum(g, 1e-300)
    c = np.empty_like(q0)
    if span is not None:
        r = np.divide(lam, gm, out=c)
        np.minimum(r, 1.0, out=r)
        r *= np.asarray(span, dtype=float) - 1.0
        r += 1.0                                                    # r = 1 + (span - 1) min(lam / g, 1)
        np.maximum(r, 1e-300, out=r)
        np.divide(1.0, r, out=r)
        np.subtract(1.0, r, out=r)
        q0 *= np.maximum(r, 0.0, out=r)                             # left = max(1 - 1 / r, 0)
    ramp = np.subtract(osl, W, out=c)
    q0 *= np.clip(ramp, 0.0, 1.0, out=ramp)                         # Q0
    drain = np.subtract(g, lam, out=W)
    np.maximum(drain, 0.0, out=drain)                               # g - lam, at least 0
    t = np.maximum(drain, 1e-300, out=c)
    np.divide(q0, t, out=t)
    np.minimum(t, rest, out=t)                                      # t = min(Q0 / (g - lam), W - m)
    drain *= 0.5
    drain *= t
    drain *= t                                                      # (g - lam) t^2 / 2
    inner = np.multiply(q0, t, out=rest)
    inner -= drain
    inner *= lam
    inner /= gm                                                     # lam (Q0 t - (g - lam) t^2 / 2) / g
    total = np.multiply(q0, 0.5, out=c)
    total *= q0
    total /= gm                                                     # Q0^2 / (2 g)
    total += inner
    total /= np.maximum(N, 1.0)
    return total


def _first_window(N: np.ndarray, isl: np.ndarray, osl: np.ndarray, T_pf: np.ndarray, n_it: np.ndarray,
                  spread: float, chunk_steps: float) -> tuple[np.ndarray, np.ndarray]:
    """`arrival_rates`' first round's spread and the output drift: (n_pf, the iterations the first round's full
    chunks take, `chunk_steps` each, at most the cycle's `n_it`; h, the drift in tokens, hence decode steps)."""
    n_pf = np.minimum(N * isl / np.maximum(T_pf, 1e-300) * chunk_steps, np.maximum(n_it, 1.0))
    h = np.maximum(1.0, np.round(spread * osl)) if spread > 0 else np.zeros_like(osl)
    return n_pf, h


def _per_round(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool, spread: float,
               rounds: int, balance: AdpBalance | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """`arrival_rates` (lam, prompts a rank and step, one per round on the last axis) with R, N and the prompts a
    full chunk holds, g = T_pf / isl, each on a trailing axis of 1 to broadcast against it: (lam, R, N, g). Under
    `balance` the closed loop's rounds spread further as the balance holds their prompts (`_balance_rounds`)."""
    R, N_, g = (np.asarray(R, dtype=float)[..., None], np.asarray(N, dtype=float)[..., None],
                (np.asarray(T_pf, dtype=float) / np.maximum(np.asarray(isl, dtype=float), 1e-300))[..., None])
    if balance is None or apart:    # apart: the steady rate, which the balance does not spread
        lam = arrival_rates(N, isl, osl, T_pf, n_it, apart, spread, rounds)
    else:
        lam = _balance_rounds(R[..., 0], N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)[0]
    return lam, R, N_, g


def _balance_rounds(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool, spread: float,
                    rounds: int, balance: AdpBalance) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Under `balance`, round by round after the first of a closed loop (last axis, `rounds` - 1 long; `apart`:
    the steady rate, 1 long): (lam, the prompts reaching a rank a step, and `_hold`'s mean iterations held,
    releases of other prompts waited through and share of a full chunk a release runs). Each of the first round's
    chunks is held batching_wait_iters more (`arrival_rates(chunk_steps=)`), and every round's holds spread the
    next round's arrivals as the outputs' drift does: holds of variance s^2 widen the window by a uniform one of
    that variance, 12 s^2 in the square, so round k's window is sqrt(n_pf^2 + (k - 1) (2 h)^2 + 12 x the holds'
    variances of the rounds before it), at most the cycle."""
    R, N, isl, osl, T_pf, n_it = (np.asarray(x, dtype=float) for x in (R, N, isl, osl, T_pf, n_it))
    g = T_pf / np.maximum(isl, 1e-300)
    if apart:
        lam = arrival_rates(N, isl, osl, T_pf, n_it, True, spread, rounds)
        mean, _, passed, share = _hold(lam[..., 0], R, N, g, n_it, balance, closed=False)
        return lam, mean[..., None], passed[..., None], share[..., None]
    n_pf, h = _first_window(N, isl, osl, T_pf, n_it, spread, float(balance.batching_wait_iters) + 1.0)
    square = n_pf ** 2
    out: list[tuple[np.ndarray, ...]] = []
    for _ in range(2, rounds + 1):
        square = square + (2.0 * h) ** 2
        lam = N / np.minimum(np.sqrt(square), np.maximum(n_it, 1.0))
        mean, var, passed, share = _hold(lam, R, N, g, n_it, balance, closed=True)
        out.append((lam, mean, passed, share))
        square = square + 12.0 * var
    shape = np.broadcast_shapes(R.shape, N.shape, g.shape, n_it.shape, osl.shape) + (len(out),)
    lam, mean, passed, share = (np.broadcast_to(np.stack([o[i] for o in out], axis=-1), shape) if out
                                else np.zeros(shape) for i in range(4))
    return lam, mean, passed, share


def _overflow(mu: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The releases a prompt waits beyond the first after it arrives, on average, when n ~ Poisson(`mu`) prompts
    reach a rank between two releases and each release runs at most `g` of them, first come first served: the
    i-th (from 0) waits floor(i / g) more, E[sum over i < n of floor(i / g)] / mu. `g` below 1 (a prompt longer
    than the budget) counts in full chunks, as `slowest_rank_excess`."""
    mu, g = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(g, dtype=float))
    long = g < 1.0
    mu = np.maximum(np.where(long, mu / np.maximum(g, 1e-300), mu), 1e-300)
    g = np.where(long, 1.0, g)
    top = float(np.max(np.ceil(mu + 10.0 * np.sqrt(mu) + 12.0), initial=1.0))
    m = np.arange(min(int(top), _MAX_TERMS), dtype=float)           # n = 0 .. terms - 1
    lm, gm = mu[..., None], g[..., None]
    pmf = np.exp(m * np.log(lm) - lm - _log_factorial(m))
    waits = np.cumsum(np.floor(m / gm), axis=-1) - np.floor(m / gm)    # sum over i < n of floor(i / g)
    return np.sum(pmf * waits, axis=-1) / mu


def _hold(lam: np.ndarray, R: np.ndarray, N: np.ndarray, g: np.ndarray, n_it: np.ndarray, balance: AdpBalance,
          closed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a prompt reaching a rank at lam a step waits for `balance`'s release: (mean iterations, their
    variance, the releases of other prompts it waits through, the share of a full chunk a release runs a rank).
    It waits the rest of the release period it arrives in, E[P^2] / (2 E[P]) of the periods P on average and
    E[P^3] / (3 E[P]) in the square (`release_moments`: a long timeout period holds more of the arrivals than a
    short one). A release runs at most a full chunk's g prompts a rank: of the lam E[P] that reach a rank
    between two releases the ones beyond g wait for the next releases (`_overflow`), each batching_wait_iters + 1
    iterations on (every rank holds prompts then); and a round's N prompts drain over at least N / g of those, at
    one release a drain period: what the draining outlasts the `n_it` iterations of a request's cycle every prompt
    waits (a standing queue: the balance, not the decodes, then paces the cycle), and half of what it outlasts
    the arrivals (N / lam iterations) beyond that, uniform over it. `closed` (a closed loop's round ends): the
    prompts that arrived since the last release (lam x that rest a rank) see no more prompts reach the other
    ranks and wait for the timeout (timeout_iters from the last release, their arrival on average half the rest
    after it) unless every rank already holds one. The variance takes the overflow's waits as exponential
    (standard deviation their mean)."""
    cycle = float(balance.batching_wait_iters) + 1.0
    drain = np.maximum(N / np.maximum(g, 1e-300), 1.0) * cycle                 # iterations to release N a rank
    m1, m2, m3 = release_moments(lam, R, balance, powers=(1, 2, 3))
    rest = 0.5 * m2 / m1
    standing = np.maximum(drain - np.maximum(n_it, 1.0), 0.0)
    over = np.maximum(drain - N / lam - standing, 0.0)
    more = _overflow(lam * m1, g)
    mean = rest + standing + 0.5 * over + more * cycle
    var = np.maximum(m3 / (3.0 * m1) - rest ** 2, 0.0) + over ** 2 / 12.0 + (more * cycle) ** 2
    if closed:
        late = np.minimum(lam * rest, N) / N * (1.0 - (-np.expm1(-lam * rest)) ** R)    # a round's stranded share
        extra = np.maximum(float(balance.timeout_iters) - 1.5 * rest, 0.0)
        mean = mean + late * extra
        var = var + late * (1.0 - late) * extra ** 2
    return mean, var, more + (standing + 0.5 * over) / cycle, np.minimum(lam * m1 / np.maximum(g, 1e-300), 1.0)


def overlap_factor(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, apart: bool = False,
                   spread: float = BENCHMARK_OUTPUT_SPREAD, rounds: int = BENCHMARK_ROUNDS,
                   balance: AdpBalance | None = None) -> np.ndarray:
    """The prompt tokens a step's slowest rank holds beyond a rank's own, per own token, over a request cycle (the
    module docstring): R attention-DP ranks, the rest as `arrival_rates`. Closed loop: the mean over a run of
    `rounds` requests a client (the first round, all at once, 0); `apart`: at the steady rate. `balance`
    (`AdpBalance`): the prompts of each `release_period` run together (at most the N a rank holds)."""
    lam, R, N, g = _per_round(R, N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)
    if not apart and spread <= 0:       # exactly equal lengths: every round's full chunks meet as the first's
        return np.zeros(np.broadcast_shapes(lam.shape, R.shape, N.shape)[:-1])
    if balance is not None:
        lam = np.minimum(lam * release_period(lam, R, balance), N)
    share = 1.0 if apart else 1.0 / float(rounds)
    return np.sum(slowest_rank_excess(lam, g, R), axis=-1) * share


def balance_ttft(R: Num, N: Num, isl: Num, osl: Num, T_pf: Num, n_it: Num, t_full: Num, t_dec: Num,
                 apart: bool = False, balance: AdpBalance | None = None, spread: float = BENCHMARK_OUTPUT_SPREAD,
                 rounds: int = BENCHMARK_ROUNDS) -> np.ndarray:
    """Under `balance`, the mean time from a prompt's arrival (at an iteration's end) to the end of the release
    iteration that runs it, in the units of `t_full` (the iteration that runs a full chunk of `T_pf` prompt tokens
    on every rank) and `t_dec` (a pure decode step); the rest as `overlap_factor`. 0 without `balance`.

    A release iteration runs lam E[P] prompts a rank (`_hold`: at most a full chunk), priced as that share of the
    full chunk's prompt time beside the decodes: t_dec + share (t_full - t_dec), a prompt longer than the chunk in
    as many releases as it has chunks, each after batching_wait_iters decode steps; a prompt waits `_hold`'s mean
    iterations, pure decode steps, and the releases of other prompts among them. The later rounds at
    `_balance_rounds`' rates. The first round of a closed loop arrives at once, the ranks without decodes yet:
    its first release runs a full chunk at once, the others one after another batching_wait_iters decode steps
    apart, so its mean prompt waits half of its N / g releases but one."""
    if balance is None:
        return np.zeros(np.broadcast_shapes(*(np.shape(x) for x in (R, N, isl, osl, T_pf, n_it, t_full, t_dec))))
    _, hold, passed, share = _balance_rounds(R, N, isl, osl, T_pf, n_it, apart, spread, rounds, balance)
    N, g = np.asarray(N, dtype=float), np.asarray(T_pf, dtype=float) / np.maximum(np.asarray(isl, dtype=float), 1e-300)
    t_full, t_dec = np.asarray(t_full, dtype=float)[..., None], np.asarray(t_dec, dtype=float)[..., None]
    own = share * np.maximum(t_full - t_dec, 0.0)                   # a release's prompts beyond a decode step
    chunks = np.maximum(1.0 / np.maximum(g, 1e-300), 1.0)[..., None]     # a longer prompt's releases of its own
    wait = float(balance.batching_wait_iters) * t_dec
    later = chunks * (t_dec + own) + (chunks - 1.0) * wait + hold * t_dec + passed * own
    if apart:
        return later[..., 0]
    first = 0.5 * np.maximum(N / np.maximum(g, 1e-300) - 1.0, 0.0)              # releases waited through
    t_full, t_dec, chunks, wait = t_full[..., 0], t_dec[..., 0], chunks[..., 0], wait[..., 0]
    start = chunks * t_full + (chunks - 1.0) * wait + first * (wait + t_full)
    return (start + np.sum(later, axis=-1)) / float(rounds)


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


def release_moments(lam: Num, R: Num, balance: AdpBalance, powers: tuple[int, ...] = (1, 2)
                    ) -> tuple[np.ndarray, ...]:
    """The moments E[P^n] (iterations^n, one per n of `powers`; default the mean and mean square) of the period P
    between two releases of `balance` when prompts reach each of R ranks at lam a step (Poisson): J iterations
    after a release every rank has one (P(J <= j) = (1 - e^(-lam j))^R); the next release is batching_wait_iters
    later if J < timeout_iters, else at timeout_iters."""
    lam, R = np.broadcast_arrays(np.asarray(lam, dtype=float), np.asarray(R, dtype=float))
    T, W = int(balance.timeout_iters), float(balance.batching_wait_iters)
    if T <= 1:
        one = np.full(lam.shape, max(float(T), 1.0))
        return tuple(one ** n for n in powers)
    j = np.arange(1.0, float(T))                                    # J = 1 .. T - 1
    cdf = (-np.expm1(-lam[..., None] * j)) ** R[..., None]
    pj = np.diff(cdf, prepend=0.0, axis=-1)
    late = 1.0 - cdf[..., -1]                                       # no release before the timeout
    return tuple(np.sum(pj * (j + W) ** n, axis=-1) + late * float(T) ** n for n in powers)


def release_period(lam: Num, R: Num, balance: AdpBalance) -> np.ndarray:
    """Mean iterations between two releases of `balance` (`release_moments`' first)."""
    return release_moments(lam, R, balance, powers=(1,))[0]
