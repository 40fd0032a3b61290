"""SGLang's KV-cache admission: the new-token ratio its scheduler admits and retracts by, in one place for the closed
form (`inference.max_throughput`'s batch in flight) and the serving simulator (`serving.Scheduler`'s
``admission="new_token_ratio"``, SGLang's default there).

What SGLang does (sglang/srt/managers/schedule_policy.py ``PrefillAdder``, scheduler.py ``update_running_batch``,
schedule_batch.py ``retract_decode``; the defaults in global_config.py, read from the environment):

- **Admission.** A waiting request is admitted when its prompt plus its whole remaining output, clipped at
  ``SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION`` (4,096), is below the free tokens less what the running requests still
  count on: ``new_token_ratio`` x each one's remaining output, clipped the same way
  (``_get_running_request_total_token_offset``). Those admitted in the same round count their prompt and whole
  clipped output; the first that does not fit stops the round (first come, first served).
- **The ratio.** It starts at ``SGLANG_INIT_NEW_TOKEN_RATIO`` (0.7) x ``schedule_conservativeness`` (1.0) and
  falls by (init - floor) / ``SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS`` (600) with every decode step that needs no
  retraction, to a floor of init x ``SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR`` (0.14): 0.098. An idle server starts over
  at the initial ratio.
- **Retraction.** When the next decode step finds too few free tokens (``check_decode_mem``), the running request
  with the fewest output tokens (then the longest prompt) goes back to the waiting queue, its KV freed (it is
  recomputed when readmitted), one after the other until the free tokens hold ``retract_decode_steps`` (20) more
  steps of those left; the ratio is then set to (their output so far + 20 each) / (their output lengths + 1),
  at most 1.

Where a loaded server runs (`NewTokenRatio.steady_context`): once the request admitted last has its prompt in, the
free tokens are its clipped output plus the ratio's share of the others' remaining outputs, room for the decodes of
(1 + ratio x N / 2) mean gaps between two finishes (N requests, outputs within the clip). At the floor that is a
few gaps (3.3 for 46 requests): the first longer gap runs the cache out, a retraction sets the ratio to about 1/2 (the
output the requests left have produced over their output lengths, their outputs spread over their lengths) and it
falls back. The ratio thus saws between 1/2 and the floor; the closed form takes the mean of that fall,
(1/2 + floor) / 2 = 0.30 (`NewTokenRatio.loaded`; the serving simulator's time means, around it, are in
docs/profiles.md). A running request then counts its prompt, half its output (what it holds on average) and that
ratio x its mean clipped remaining output; the request about to be admitted its prompt and whole clipped output
(`NewTokenRatio.candidate`). Tokens throughout; the closed form maps them through the engine's KV layout
(`kv_pool.seq_tokens`).

Past the clip (outputs above 4,096 tokens) admission counts only the clip of each remaining output: it lets in more
than the cache holds once the outputs grow, and retraction, not admission, bounds the batch: the cache stays full
of requests holding their prompt and half their output on average (`past_clip`, `held`). Where the cache bounds
the batch (more clients than sequences in flight), a loaded server retracts now and then (`churn`): the retracted
request prefills its prompt and output so far again and waits at the back of the queue again (`stints`).

What a retraction keeps (schedule_batch.py ``release_req`` / ``retract_decode`` with the radix cache, SGLang's
default): the tokens after the request's cached prefix (its output) are freed; the prompt, inserted into the radix
tree when its prefill ended (``cache_unfinished_req``), stays there unlocked (``dec_lock_ref``) and is evicted only
as the free tokens need it; readmitted, the request (``reset_for_retract``: prompt + output so far to prefill)
re-uses whatever of its prompt ``match_prefix`` still finds. On a KV-bound server that is almost nothing: a
retraction comes when the free and evictable tokens have run out, so the retracted prompts are the oldest
evictable entries and the least recently used eviction takes them as soon as the few free tokens the retraction
leaves are used, long before the request is at the front of the queue again (the serving simulator's full
recompute; the figures are in docs/profiles.md).

vLLM's preemption churn (`preemption_churn`, `front_stints`) is here too, beside SGLang's: vLLM V1 admits on the
blocks a prompt needs now, preempts the request admitted last when a decode step finds no free block, puts it at the
front of the queue and, with its prefix cache on (its default), frees its blocks with their hashes, tail first, so
that its recompute finds what of its prefix the allocations since have left (the serving simulator's
`engine._Replica._keep`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Num = Any


@dataclass(frozen=True)
class NewTokenRatio:
    """SGLang's admission settings (see the module docstring): ``init`` the ratio a server starts with
    (``SGLANG_INIT_NEW_TOKEN_RATIO`` x ``schedule_conservativeness``, at most 1), ``min_factor`` its floor over it
    (``SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR``), ``decay_steps`` the decode steps it takes from init to the floor
    (``SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS``), ``retract_steps`` the decode steps a retraction frees room for
    (``retract_decode_steps``), ``clip`` the most output tokens any estimate counts per request
    (``SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION``)."""

    init: float = 0.7
    min_factor: float = 0.14
    decay_steps: float = 600.0
    retract_steps: int = 20
    clip: int = 4096

    def __post_init__(self) -> None:
        for name, lo, hi in (("init", 0.0, 1.0), ("min_factor", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
                raise ValueError(f"NewTokenRatio {name}={v!r}: must be a number in ({lo:g}, {hi:g}]")
        if isinstance(self.decay_steps, bool) or not isinstance(self.decay_steps, (int, float)) or not (
                math.isfinite(self.decay_steps) and self.decay_steps > 0):
            raise ValueError(f"NewTokenRatio decay_steps={self.decay_steps!r}: must be a finite number > 0 "
                             "(decode steps)")
        for name in ("retract_steps", "clip"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"NewTokenRatio {name}={v!r}: must be an integer >= 1 (tokens per request)")

    @property
    def floor(self) -> float:
        """The lowest ratio, where it settles without retractions."""
        return min(self.init * self.min_factor, 1.0)

    @property
    def decay(self) -> float:
        """What the ratio falls by per decode step without a retraction."""
        return (self.init - self.floor) / self.decay_steps

    @property
    def loaded(self) -> float:
        """The mean ratio of a server that retracts now and then: halfway from what a retraction leaves (1/2) to
        the floor (the module docstring)."""
        return 0.5 * (0.5 + self.floor)

    def decayed(self, ratio: float, steps: int) -> float:
        """The ratio after `steps` decode steps without a retraction."""
        return max(ratio - steps * self.decay, self.floor)

    def clipped(self, remaining: Num) -> Num:
        """Output tokens (a request's remaining output, tokens) the estimates count: at most ``clip``."""
        return np.minimum(np.maximum(remaining, 0), self.clip)

    def candidate(self, prompt: Num, remaining: Num) -> Num:
        """Tokens a waiting request must find free to be admitted (besides what the running ones count on): its
        prompt to prefill and its remaining output, clipped."""
        return prompt + self.clipped(remaining)

    def after_retract(self, decoded: float, output: float, n: int) -> float:
        """The ratio a retraction leaves: `decoded` output tokens of the `n` requests still running, of `output`
        tokens they were asked for in all."""
        return min(1.0, (decoded + self.retract_steps * n) / (output + 1.0))

    def mean_clipped(self, osl: Num) -> Num:
        """Mean clipped remaining output over requests whose remaining output is spread evenly over (0, osl]
        tokens: osl / 2 up to ``clip``, clip - clip^2 / (2 osl) beyond."""
        osl = np.asarray(osl, dtype=float)
        c = float(self.clip)
        return np.where(osl <= c, 0.5 * osl, c - c * c / (2.0 * np.maximum(osl, c)))

    def steady_context(self, isl: Num, osl: Num) -> Num:
        """Tokens one running request counts against admission on a loaded server, the running outputs spread
        over their lengths: its prompt, half its output (held) and the `loaded` ratio x its mean clipped remaining
        output (counted on)."""
        return isl + 0.5 * np.asarray(osl, dtype=float) + self.loaded * self.mean_clipped(osl)

    def steady_batch(self, capacity: Num, per_request: Num, head: Num) -> Num:
        """Sequences in flight on a loaded server: the last one is admitted while the others count
        `per_request` tokens each and it finds `head` free (its `candidate`), so N = floor((capacity - head) /
        per_request) + 1; 0 where `head` does not fit at all (SGLang admits only below the free tokens)."""
        cap = np.asarray(capacity, dtype=float)
        return np.where(cap > head, np.floor(np.maximum(cap - head, 0.0) / per_request) + 1.0, 0.0)


#: SGLang's defaults
SGLANG = NewTokenRatio()

#: Output tokens a KV-bound SGLang server decodes, all its running requests together, per retraction (`churn`):
#: read off the serving simulator's SGLang runs (its median over models, lengths and client counts; the spread is in
#: docs/profiles.md), not derived
DECODED_PER_RETRACTION = 7500.0
#: A retracted request's output so far, over its output length (`churn`), read off the same runs
RETRACTED_AT = 1.0 / 3.0


def past_clip(osl: Num, ntr: NewTokenRatio = SGLANG) -> Num:
    """Where admission counts less than a request's whole output (`osl` tokens above ``clip``): it admits more
    than the cache holds once the outputs grow, so retraction, not admission, bounds the batch (`held`)."""
    return np.asarray(osl, dtype=float) > ntr.clip


def held(isl: Num, osl: Num) -> Num:
    """Tokens one request holds on average over its life in the batch (its prompt and half its output): what a
    cache that retraction keeps full divides into the batch past the clip (`past_clip`), N = capacity / held."""
    return isl + 0.5 * np.asarray(osl, dtype=float)


def churn(isl: Num, osl: Num, binds: Num) -> tuple[Num, Num]:
    """SGLang's retraction churn on a loaded server: (retractions per request, prompt tokens each one recomputes).

    Where the cache bounds the batch (`binds`: fewer sequences in flight than clients) a retraction comes every
    `DECODED_PER_RETRACTION` output tokens decoded, so a request of `osl` output tokens is retracted osl /
    DECODED_PER_RETRACTION times on average; 0 elsewhere. A retracted request goes to the back of the queue and,
    readmitted, prefills its prompt and its output so far (`RETRACTED_AT` x osl) again: SGLang keeps the prompt's KV
    in its radix cache on retraction, but as the least recently used entry it is the first evicted once the free
    tokens run out (within a few decode steps), long before the request reaches the front of the queue again.
    """
    osl = np.asarray(osl, dtype=float)
    rho = np.where(binds, osl / DECODED_PER_RETRACTION, 0.0)
    return rho, isl + RETRACTED_AT * osl


#: A preempted vLLM request's output so far, over its output length (`preemption_churn`): read off the serving
#: simulator's KV-bound vLLM runs (the last admitted is preempted, often again soon after it is readmitted; spread
#: in docs/profiles.md), not derived
PREEMPTED_AT = 0.3
#: The share of a preempted vLLM request's prompt and output so far that its prefix cache still holds when it is
#: readmitted (vLLM V1 frees the blocks with their hashes, tail first; `serving.engine._Replica._keep`), read off
#: the same runs
PREEMPTED_KEPT = 0.55


def preemption_churn(isl: Num, osl: Num, binds: Num, cached: Num = True) -> tuple[Num, Num]:
    """vLLM's recompute preemption on a loaded server: (preemptions per request, prompt tokens each one prefills
    again).

    vLLM V1 admits a waiting request when the free blocks hold its prompt (no output reserved) and, when a decode
    step finds no free block, preempts the running request admitted last (vllm/v1/core/sched/scheduler.py
    ``schedule``, ``_preempt_request``), which waits at the front of the queue and is recomputed when readmitted.
    Where the cache bounds the batch (`binds`: fewer sequences in flight than clients) each finish frees a whole
    sequence that admission fills again at once, and the output the running requests decode (`osl` tokens a
    request) runs the cache out: each preemption frees what the request admitted last holds, its prompt and its
    output so far (`PREEMPTED_AT` x osl), so osl / (isl + PREEMPTED_AT x osl) preemptions per request; 0 elsewhere.
    A preempted request prefills those tokens again, less what its prefix cache still holds (`PREEMPTED_KEPT`)
    where `cached` (per row: the prefix cache on, vLLM V1's default; off, ``--no-enable-prefix-caching``, it
    recomputes them all). The spread against the serving simulator is in docs/profiles.md."""
    osl = np.asarray(osl, dtype=float)
    freed = isl + PREEMPTED_AT * osl
    rho = np.where(binds, osl / freed, 0.0)
    return rho, recomputed(freed, cached)


def recomputed(freed: Num, cached: Num) -> Num:
    """Tokens a preempted vLLM request prefills again of the ``freed`` it held: all of them without its prefix
    cache, less what the cache still holds (`PREEMPTED_KEPT`) where ``cached`` (per row)."""
    return (1.0 - np.where(cached, PREEMPTED_KEPT, 0.0)) * freed


def wave_overflow(share: Num, isl: Num, osl: Num) -> tuple[Num, Num, Num]:
    """vLLM's preemptions where its N sequences in flight fit the cache on average but not at the end of a wave:
    (preemptions per request, tokens each one frees and prefills again before its prefix cache, the overflow's
    share u of the half output the average leaves room for, 0-1).

    Closed-loop clients that start together run in waves: their prompts are admitted together (vLLM admits on a
    prompt's blocks) and grow together, so at the end of a wave the cache must hold N x (isl + osl), not the
    average N x (isl + osl / 2) that `estimate.served_batch` admits by. `share`: the tokens of context each of the
    N holds at the end of a wave beyond its share of the cache (capacity / N; > 0 where the wave overflows, at most
    osl / 2 where the average fits). The cache runs out `share` decode steps before the wave ends; from then the
    request admitted last is preempted whenever a step needs blocks, until the survivors finish. A victim falls on
    average halfway through that window, holding its prompt and all but share / 2 of its output: it frees
    isl + osl - share / 2 tokens, and the wave sheds N x share, so share / (isl + osl - share / 2) preemptions per
    request and wave. The waves do not die out in the serving simulator: lengths exact or within +-2 %
    (`Workload.output_spread`) keep the survivors' next requests together and the victims' as a smaller wave behind
    them, and the rate holds over 30 requests a client (docs/profiles.md, thirtieth round)."""
    osl = np.asarray(osl, dtype=float)
    share = np.clip(np.asarray(share, dtype=float), 0.0, 0.5 * osl)
    freed = isl + osl - 0.5 * share
    return share / freed, freed, 2.0 * share / osl


#: The head-of-line wait behind a wave's overflow (`overflow_wait`), in request cycles per preemption at a full
#: overflow (u = 1): read off the serving simulator's vLLM closed loops that fit the cache on average but not at
#: the end of their waves (centred on 60 of them: Llama-3.1-8B on an H100, 1k-8k tokens in and out, 16-200
#: clients, overflow shares 0.25-1; spread in docs/profiles.md), not derived
OVERFLOW_WAIT = 0.075


def overflow_wait(rho: Num, u: Num) -> Num:
    """Request cycles a new request waits on average behind a wave's overflow (`wave_overflow`: `rho` preemptions
    per request, `u` the overflow's share): vLLM V1 admits first come, first served and stops at the first waiting
    request whose blocks are not free, so a preempted request at the front of the queue holds every prompt that
    arrives behind it until the finishes free its prompt and output so far. Prompts arrive in that window in
    proportion to the victims and to the window's length (u), and wait on average a part of it (u again):
    `OVERFLOW_WAIT` x rho x u^2 cycles. Where nothing overflows, 0."""
    return OVERFLOW_WAIT * np.asarray(rho, dtype=float) * np.square(u)


def wave_retraction(share: Num, isl: Num, osl: Num) -> tuple[Num, Num, Num]:
    """SGLang's counterpart of `wave_overflow`: retractions where its N sequences in flight fit the cache on
    average but not at the end of a wave: (retractions per request, tokens each retracted request frees and
    prefills again, the overflow's share u of the half output the average leaves room for, 0-1).

    The clients' requests are admitted together (each counts its prompt and clipped output, so a pool that holds
    the average admits them all) and grow together; `share` as in `wave_overflow` (context tokens each holds at the
    wave's end beyond its share of the cache). From context x0 = isl + osl - share on, each decode step finds too
    few free tokens and ``retract_decode`` (schedule_batch.py) sends requests back to the waiting queue until the
    others have room: at context x the cache holds cap / x of them, so N x share / (isl + osl) of the N leave the
    wave (cap / x0 = N) and are retracted at x with density cap / x^2, a victim's mean context
    ln(x1 / x0) / (1 / x0 - 1 / x1) (x1 = isl + osl), all of which it prefills again (the radix cache has evicted
    its prompt by then: the module docstring). Unlike vLLM's victim (front of the queue, readmitted at once and
    preempted again) a retracted request waits at the back of the queue, readmitted only after the survivors
    finish, so each leaves the wave once."""
    osl = np.asarray(osl, dtype=float)
    share = np.clip(np.asarray(share, dtype=float), 0.0, 0.5 * osl)
    x1 = isl + osl
    x0 = x1 - share
    gap = 1.0 / x0 - 1.0 / x1
    freed = np.where(share > 0, np.log(x1 / x0) / np.where(gap > 0, gap, 1.0), x1)
    return share / x1, freed, 2.0 * share / osl


#: The part of SGLang's wait behind a wave's retractions that runs in request cycles (`retraction_wait`): fitted with
#: the other part (one decay span of the ratio, 0.97 free) to the serving simulator's SGLang closed loops that fit the
#: pool on average but not at the end of their waves (22 of them: GLM-5 fp8 on 8 x H200 and Llama-3.1-8B on an H100,
#: 1k-4k prompts, 2k-16k outputs, 16-128 clients, overflow shares 0.46-0.92; spread in docs/profiles.md), not derived
RETRACT_WAIT_CYCLES = 0.03


def retraction_wait(rho: Num, u: Num, osl: Num, ntr: NewTokenRatio = SGLANG) -> Num:
    """Request cycles a new request waits on average behind a wave's retractions (`wave_retraction`: `rho`
    retractions per request, `u` the overflow's share; `osl` output tokens, a cycle's decode steps): a retraction
    sets the new-token ratio to what the survivors have decoded (1/2 or more near a wave's end,
    `NewTokenRatio.after_retract`) and admission counts that share of their remaining outputs, so the prompts of the
    clients whose requests finish wait behind the retracted requests (readmitted first: they went to the queue
    before them) until the ratio has decayed (``decay_steps`` decode steps from init to the floor); those that
    arrive while the readmitted requests fill the pool wait for their finishes, a part of a cycle. As in vLLM's
    `overflow_wait`, in proportion to the victims and to the window (u) and a part of it (u again):
    rho x u^2 x (``decay_steps`` / osl + `RETRACT_WAIT_CYCLES`) cycles. Where nothing overflows, 0."""
    osl = np.asarray(osl, dtype=float)
    return np.asarray(rho, dtype=float) * np.square(u) * (ntr.decay_steps / np.maximum(osl, 1.0)
                                                          + RETRACT_WAIT_CYCLES)


#: How fast a queue of clients beyond the N sequences in flight dissolves a closed loop's waves (`queue_blend`): the
#: queue churn's weight per (conc - N) / N, read off the serving simulator's SGLang and vLLM closed loops at N /
#: clients 0.5-1 (Llama-3.1-8B on an H100 with 1.8k-10k tokens a client, GLM-5 fp8 on 8 x H200; 1k-2k prompts,
#: 4k-16k outputs, 32-128 clients: 2-4 fit within 0.05 in median log TTFT error, 3 the best of them both; spread
#: in docs/profiles.md), not derived
QUEUE_BLEND = 3.0


def queue_blend(N: Num, conc: Num) -> Num:
    """The weight (0-1) of the queue churn (SGLang's `churn`, vLLM's `preemption_churn`) against the waves'
    retractions or preemptions (`wave_retraction`, `wave_overflow` and their waits) where `conc` closed-loop clients
    queue for N < conc slots: `QUEUE_BLEND` x (conc / N - 1), at most 1; 0 where all clients fit.

    The N admitted start a wave together and still overflow the cache at its end, as where all clients fit (the
    wave path, the limit N = conc); the conc - N queued enter one by one as the wave's finishes and victims free
    room, so each cycle a share (conc - N) / N of the batch is admitted out of step with the wave and the waves
    dissolve into the queue's steady churn, complete (weight 1) from conc = N (1 + 1 / `QUEUE_BLEND`) on."""
    N = np.asarray(N, dtype=float)
    return np.clip(QUEUE_BLEND * (np.asarray(conc, dtype=float) / np.maximum(N, 1.0) - 1.0), 0.0, 1.0)


#: Request cycles (a request's time in the batch, s) a preempted vLLM request waits on average before it runs again
#: (`front_stints`): fitted to the serving simulator's KV-bound vLLM runs' TPOT (their measured wait and recompute
#: 0.11-0.25 cycles; spread in docs/profiles.md)
PREEMPT_WAIT_CYCLES = 0.3


def front_stints(wait: Num, rho: Num, cycle_s: Num) -> tuple[Num, Num]:
    """vLLM's split of a request's queue wait (`wait` s in all, `rho` preemptions, `cycle_s` its time in the
    batch): (s before its first token, s after each preemption). A preempted request waits at the front of the queue
    (``_preempt_request``: ``prepend_request``), not at its back as SGLang's retracted one (`stints`); readmitted
    it is the newest running again, the first preempted, so it runs again only once the finishes of those admitted
    before it make room: `PREEMPT_WAIT_CYCLES` of a cycle each. The rest of its wait comes before its first token,
    at least one stint of the back-of-queue split (`stints`): a new request queues behind the preempted ones, which
    the front holds ahead of it (where the clients are few, the simulator's first stint is no shorter)."""
    rho = np.asarray(rho, dtype=float)
    after = np.minimum(PREEMPT_WAIT_CYCLES * np.asarray(cycle_s, dtype=float), wait / np.maximum(rho, 1e-12))
    return np.maximum(wait - rho * after, stints(wait, rho)), after


def stints(wait: Num, rho: Num) -> Num:
    """The queue wait (s) of one stint when a request waits `wait` s in all, in 1 + `rho` stints: first come,
    first served, a retracted request queues at the back like a new one, so each stint is as long (the first before
    its first token, the others counted in its time per output token)."""
    return wait / (1.0 + np.asarray(rho, dtype=float))
