"""The discrete-event core: replicas running iteration-level continuous batching, driven by one event heap.

Time is in ms inside the engine. Each replica executes *units*: either one iteration (prefill chunks, possibly
mixed with decodes, or a decode step after swaps), or a *decode segment*: K consecutive pure-decode iterations
while nothing arrives, finishes or changes phase. A segment is advanced in closed form:

- every decoding sequence gains one token per iteration, so the summed context grows by n per iteration and a
  request's finish step is known when it starts decoding (a min-heap of finish steps);
- decoder i holds base_i + s KV tokens at step s, so the blocks they need, sum_i ceil((base_i + s) / B), equal
  sum_i floor(base_i / B) + n * q + #{i: base_i mod B >= B - m} with (q, m) = divmod(s + B - 1, B): exact in
  O(B) from a count of residues, and the step where the cache runs out is found by binary search;
- the iteration times t(k) = time_ms(0, 0, n, C0 + k*n) are summed with the trapezoid rule on pieces whose
  midpoint lies within `RTOL` of the chord (pieces are split until it does). The sum is exact when time_ms is
  affine in the context at fixed batch (a per-op roofline in the decode regime: attention intensity does not
  depend on context length); for a convex or concave time (a roofline kink inside the segment) the error of
  the summed time is about RTOL relative.

An arrival to a replica inside a segment cuts the segment at the first iteration boundary after it.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..inference.admission import SGLANG
from ..profiles import forms_idle_ahead, runs_prefill_alone
from .scheduler import IterationCost, Scheduler

RTOL = 1e-3

# event kinds; priorities at equal time: commits, then arrivals, then starts (then a pipelined prefill worker's
# prompts whose pass ends before their iteration's, `_Replica._pipe_starts`)
_END, _ARRIVE, _KV, _START, _DONE = 0, 1, 2, 3, 4
#: events are ordered by their time in buckets of 1 / EVENT_BUCKETS_PER_MS ms (1 ns, centred on its multiples, where
#: costs given in round numbers put exact ties), then by kind (commits before arrivals before starts), then commits
#: by replica: replicas whose iterations end together (in exact arithmetic:
#: the same total work) compute their end times by different sums (a closed-form segment, or one iteration at a
#: time) that differ in the last bits, and that noise must not decide which commits an arrival sees, nor whether
#: it cuts a running segment. Each event keeps its exact time
EVENT_BUCKETS_PER_MS = 1e6
#: ms past an iteration boundary that stands for "after it" where an overlapping scheduler's lag is placed
#: (`_Replica.enqueue`): far below any iteration, far above the boundaries' rounding
LAG_EPS_MS = 1e-6


@dataclass
class _Req:
    __slots__ = ("inp", "out", "prompt", "prefilled", "gen", "base", "epoch", "arrival", "first", "finish",
                 "last", "npre", "pblocks", "resumed", "swap_kv", "rep", "prep", "xfer_ms", "g_entry", "kv_ready",
                 "whole", "x", "ready")
    inp: int
    out: int
    prompt: int        # tokens to prefill (input, or input + generated after a recompute preemption)
    prefilled: int     # tokens of `prompt` with KV computed
    gen: int           # output tokens emitted
    base: int          # decoding: KV tokens = base + G of its replica
    epoch: int         # invalidates stale heap entries
    arrival: float
    first: float
    finish: float
    last: float        # time of the last emitted token (for resume gaps)
    npre: int
    pblocks: int       # KV blocks held while prefilling
    resumed: bool
    swap_kv: int       # KV tokens on the host (swap preemption)
    rep: int           # replica that decoded it
    prep: int          # prefill replica (disagg), else -1
    xfer_ms: float
    g_entry: int       # replica decode step when it started decoding
    kv_ready: float    # disaggregated handoff: when its KV has arrived at the decode worker (NaN: not loading)
    whole: int         # running: KV blocks of its whole sequence (prompt + remaining output) counted in `resv`
    x: int             # blocks its replica's KV layout holds beyond its context (Scheduler.kv_extra_blocks)
    ready: float       # pp > 1: the next return of a batch in flight after it reached the scheduler (`_next_return`)


class _Replica:
    """One serving instance (tp*pp GPUs). role: 'agg' | 'prefill' | 'decode'."""

    def __init__(self, eng: _Engine, idx: int, role: str, cost: IterationCost, sched: Scheduler,
                 host_link_gbs: float) -> None:
        self.eng, self.idx, self.role = eng, idx, role
        self.cost = cost
        # the engine pauses only the decodes of the micro-batch a prefill batch run alone takes (SGLang's
        # ``event_loop_pp``: `_pipe_lanes`); keyed on the engine, whatever the scheduling policy
        self.slot_pause = runs_prefill_alone(getattr(cost, "engine", None))
        sched = sched.for_cost(cost)    # budgets left to the engine: its own (`Scheduler.resolved`)
        assert sched.max_batch_size is not None and sched.max_num_tokens is not None
        self.tm = cost.time_ms
        self.n_gpus = int(cost.n_gpus)
        self.B = sched.kv_block_size
        self.cap = sched.kv_blocks(cost)
        # blocks each request holds beyond its context's (window-bounded layers, linear-layer state, the draft
        # tokens' slots of speculative decoding where it decodes here), set on delivery
        self.xb: list[int] | None = eng.extra_blocks(sched, cost, role != "prefill")
        self.wm = int(sched.watermark(cost) * self.cap)
        self.maxb = sched.max_batch_size
        self.maxt = sched.max_num_tokens
        # pipeline stages (StepModel.pp; 1 for a cost without stages): up to pp batches in flight, each with its own
        # token budget (`_schedule_prefill`)
        self.pp = max(int(getattr(cost, "pp", 1)), 1)
        self.k = 1            # pp > 1: the micro-batches the current iteration's prompts pass the stages in
        # pp > 1: the batch in flight (lane) each running request rides and how many the current unit keeps
        # (`_pipe_lanes`: one until a schedule overflows a budget, each living while it holds requests)
        self.lane: dict[int, int] = {}
        self.lanes = 1
        self.t_prev = 0.0     # pp > 1: when the unit before the current one started
        self.pgate = 0.0      # pp > 1: when the last prompt's micro-batch leaves the first stage (`_pipe_starts`)
        self.adv: dict[int, float] = {}   # pp > 1: prompts of the current iteration started before it (ms ahead)
        self.paused: list[int] = []   # pp > 1: decoders the current iteration's prefill pauses, the others decoding
        self.chunk = sched.chunk
        self.chunked = sched.chunked_prefill
        self.dprio = sched.policy_rule(cost) == "decode_priority"
        self.swap = sched.preemption == "swap"
        self.swap_ms_per_tok = float(cost.kv_bytes_per_token) / (host_link_gbs * 1e9) * 1e3
        self.static = sched.batching == "static"
        rule = sched.admission_rule(cost)
        # a disaggregated prefill worker holds the prompt only: it reserves no output either way
        self.no_evict = rule == "no_evict" and role != "prefill"
        # SGLang's new-token ratio (`inference.admission`): an aggregated replica batching continuously
        self.ntr = SGLANG if rule == "new_token_ratio" and role == "agg" and not self.static else None
        self.ratio = SGLANG.init
        self.retracted = False   # the unit about to run retracted: its decode step does not lower the ratio
        self.fin: dict[int, int] = {}   # new-token ratio: each decoder's finish step (its remaining output + G)
        self.bq: deque[int] = deque()            # static batching: members of the batch not yet admitted
        # prefix cache (LRU of hash-block ids), only when asked for and the requests carry hash ids
        self.pc: OrderedDict[int, None] | None = None
        self.pc_cap = 0
        self.pc_query = 0     # prompt tokens looked up
        self.pc_hit = 0       # of which found cached
        if sched.prefix_caching and eng.hash_off is not None and role != "decode":
            self.pc = OrderedDict()
            self.pc_cap = max(1, self.cap * self.B // eng.block_tokens)
        # vLLM's recompute preemption with its prefix cache on (`_keep`): the free queue's order of the preempted
        # requests' cached blocks among the free ones, [rid, blocks] segments oldest first (rid -1: others)
        self.keep = (rule == "on_demand" and sched.prefix_caching and not self.swap and not self.static
                     and role != "prefill")
        # vLLM V1 (on-demand admission, recompute preemption, continuous batching: `Scheduler.allocates_by_chunk`)
        # gives a prompt the blocks of the chunk it runs, not its whole prompt (`_grow`)
        self.by_chunk = sched.allocates_by_chunk(cost)
        self.fq: deque[list[int]] = deque()
        self.fq_n = 0         # blocks the segments hold
        self.kept: dict[int, list[int]] = {}    # preempted request -> its segment (its cached prefix blocks)
        self.waiting: deque[int] = deque()
        self.swapped: deque[int] = deque()
        self.running: dict[int, None] = {}     # admission order (LIFO preemption)
        self.resv = 0         # blocks the running requests' whole sequences will hold (no-evict admission)
        self.prefilling: list[int] = []
        self.pref_blocks = 0
        self.heap: list[tuple[int, int, int]] = []   # (finish step, epoch, rid)
        self.n = 0            # decoding sequences
        self.S = 0            # sum of their base offsets
        self.Q = 0            # sum of base // B
        self.cnt = [0] * self.B   # count of base % B
        self.G = 0            # decode steps done
        self.X = 0            # sum of the decoders' extra blocks (`_Req.x`)
        self.load = 0         # requests assigned and not yet gone (routing)
        self.fe_ms = sched.frontend_for(cost) if role != "decode" else 0.0   # the API server (new requests only)
        self.fe_free = 0.0    # when it is free for the next request
        # an overlapping scheduler (`Scheduler.overlaps`: SGLang, vLLM, TensorRT-LLM but on its context servers): a
        # new request that arrives during an iteration is received at its end and joins the iteration after the next,
        # one on a boundary the iteration after the one starting there (`enqueue`); `seen` holds, for such a request
        # still waiting, the end of the iteration it arrived in, or the boundary. Ranks in lockstep (`_Group`) are
        # lagged alike, at their group's boundaries; pipelines are not: SGLang runs ``event_loop_pp`` where pp > 1
        # (scheduler.py's dispatch checks pp_size before the overlap loop), vLLM 0.14 no async scheduling with pp,
        # and their slots take the requests received at their turn (`_next_return`)
        self.lag = sched.overlaps(cost, role) and role != "decode" and self.pp <= 1
        self.seen: dict[int, float] = {}
        self.ahead = False    # lag: the unit about to start was formed during the one that just ended (`commit`)
        # lag: the unit starting now was formed, during the one before, with that one's requests still holding their
        # slots and blocks: whether a received prompt could go into it (neither max_num_seqs nor the KV cache left
        # the queue's head waiting then: `_schedule_prefill`, `_begin`)
        self.room = True
        # lag, SGLang and TensorRT-LLM (`profiles.forms_idle_ahead`: their loop forms step N + 1 before it checks
        # step N's stop criteria): the unit about to start was formed with the requests that finished in the one that
        # just ended, one extra decode step of theirs (SGLang's ``process_batch_result_decode`` skips the token of a
        # request already finished, "should only happen when overlap scheduling is enabled"; TensorRT-LLM's
        # docs/source/features/overlap-scheduler.md: the overlap "introduces one extra decoding step"). vLLM's async
        # scheduler skips a request that has reached max_tokens (vllm/v1/core/sched/scheduler.py ``schedule``: "Avoid
        # scheduling an extra step"): its step formed ahead is empty. `spent`: those requests' count and KV tokens
        self.extra = self.lag and role == "agg" and not self.static and forms_idle_ahead(getattr(cost, "engine", None))
        self.spent = (0, 0)
        self.state = "idle"
        self.version = 0
        # current unit
        self.t0 = 0.0
        self.end = 0.0
        self.seg: list[_Piece] | None = None   # pieces (K, a, b) of a decode segment
        self.chunks: list[tuple[int, int]] = []
        self.ndec = 0
        self.dt = 0.0
        self.u0 = 0.0
        # statistics
        self.busy_ms = 0.0
        self.kv_area = 0.0
        self.kv_max = 0.0
        self.npre = 0
        self.stall = 0.0    # ms the decoders have gone without a token: prefill-only iterations since the last decode
        # rid -> ms its next gap differs from stall + the next iteration's (`_first_gaps`): minus the stall at its
        # join for a decoder that joined during one, plus the iteration for one a partial pause held back
        self.owe: dict[int, float] = {}
        self.fresh: list[int] = []   # handed-off requests admitted to decode, their first token not yet out
        self.loading: list[int] = []  # handed-off requests holding blocks here while their KV is read
        # a handed-off request's first token leaves as it is admitted with its KV, not after an iteration
        # (`serving.handoff.FIRST_TOKEN_AT_ADMISSION`; set by `simulator._run` for a decode pool)
        self.first_at_admit = False
        # decode steps a busy worker's scheduler takes to learn that a handed-off request's read is done, from the
        # boundary that sees it (`serving.handoff.kv_notice_steps`; set by `simulator._run` for a decode pool), and
        # each such request's decode step count (`G`) at that boundary
        self.notice = 0
        self.noticed: dict[int, int] = {}
        self.group: _Group | None = None   # the attention-DP ranks it steps in lockstep with (`_Group`), if any
        self.work = (0.0, 0.0, 0, 0, 0.0)   # the current iteration's (prefill tokens, pairs, decodes, KV, extra ms)
        self.adp_balance = sched.adp_balance   # TensorRT-LLM's attention-DP balance (`_Group._release`), or None
        self.hold = False     # in lockstep under adp_balance: its prompts are held back this step

    # ---- KV accounting -------------------------------------------------------------------------------
    def dec_blocks(self, s: int) -> int:
        """Blocks the decoders hold once their KV has base + s tokens each (exact)."""
        if self.n == 0:
            return 0
        B = self.B
        q, m = divmod(s + B - 1, B)
        return self.Q + self.n * q + (sum(self.cnt[B - m:]) if m else 0) + self.X

    def dec_blocks_at(self, s: np.ndarray) -> np.ndarray:
        """`dec_blocks` at each of the steps `s` (an integer array), vectorized."""
        if self.n == 0:
            return np.zeros(len(s), dtype=np.int64)
        B = self.B
        q, m = np.divmod(s + B - 1, B)
        suf = np.concatenate((np.cumsum(self.cnt[::-1])[::-1], [0]))     # suf[j] = sum(cnt[j:])
        return self.Q + self.n * q + np.where(m > 0, suf[B - m], 0) + self.X

    def _whole_blocks(self, r: _Req) -> int:
        """KV blocks of request r's whole sequence: its prompt and its remaining output."""
        return -(-(r.prompt + r.out - r.gen) // self.B) + r.x

    def _run(self, rid: int, r: _Req) -> None:
        """Request rid joins the running set; its whole sequence's blocks join `resv`."""
        self.running[rid] = None
        r.whole = self._whole_blocks(r)
        self.resv += r.whole

    def _unrun(self, rid: int, r: _Req) -> None:
        """Request rid leaves the running set (finished, handed off or preempted)."""
        del self.running[rid]
        self.resv -= r.whole
        r.whole = 0

    def _add_dec(self, rid: int, r: _Req) -> None:
        b = r.prompt - self.G if r.swap_kv == 0 else r.swap_kv - self.G
        r.base = b
        r.g_entry = self.G
        q, m = divmod(b, self.B)
        self.n += 1
        self.S += b
        self.Q += q
        self.X += r.x
        self.cnt[m] += 1
        r.epoch += 1
        heapq.heappush(self.heap, (self.G + r.out - r.gen, r.epoch, rid))
        if self.ntr is not None:
            self.fin[rid] = self.G + r.out - r.gen
        if r.first != r.first:          # NaN: a disaggregated handoff; its first token is this worker's
            self.fresh.append(rid)
        if self.stall:                  # it did not wait through the stall so far (`_first_gaps`)
            self.owe[rid] = -self.stall

    def _add_handed_off(self, rid: int, r: _Req, t: float) -> None:
        """A handed-off request with its KV in place starts decoding at `t`: its first token with this worker's first
        iteration (`_add_dec`, `commit`), or at `t` where the engine sends the prefill's token as it admits it
        (`first_at_admit`; a request of one output token still takes its iteration)."""
        if self.first_at_admit and r.first != r.first and r.out > 1:
            r.first = t
            r.last = t
            r.gen = 1
        self._add_dec(rid, r)

    def _remove_dec(self, rid: int, r: _Req) -> None:
        if self.ntr is not None:
            del self.fin[rid]
        if self.owe:
            self.owe.pop(rid, None)
        q, m = divmod(r.base, self.B)
        self.n -= 1
        self.S -= r.base
        self.Q -= q
        self.X -= r.x
        self.cnt[m] -= 1
        r.epoch += 1
        r.gen += self.G - r.g_entry       # one token per decode step since it started decoding

    def _pause_dec(self, rid: int, r: _Req) -> None:
        """Decoder rid sits out the decode step about to be counted (its batch ran a prefill alone, `_pipe_lanes`):
        one token fewer in its KV and its finish one step later, the other decoders' step counter unchanged."""
        B = self.B
        q, m = divmod(r.base, B)
        self.Q -= q
        self.cnt[m] -= 1
        r.base -= 1
        q, m = divmod(r.base, B)
        self.Q += q
        self.cnt[m] += 1
        self.S -= 1
        r.g_entry += 1                    # `_remove_dec` counts its tokens from g_entry
        r.epoch += 1
        fin = r.g_entry + r.out - r.gen
        heapq.heappush(self.heap, (fin, r.epoch, rid))
        if self.ntr is not None:
            self.fin[rid] = fin

    def _end_load(self, rid: int, r: _Req) -> None:
        """A request stops loading its KV (read done, or evicted): its reserved blocks leave the prefill count."""
        self.loading.remove(rid)
        self.noticed.pop(rid, None)
        self.pref_blocks -= r.pblocks
        r.pblocks = 0
        r.kv_ready = float("nan")

    # ---- preemption ----------------------------------------------------------------------------------
    def _preempt_until_fits(self, t: float) -> float:
        """Evict the most recently admitted requests until the next decode step fits (SGLang's admission: retract
        as it does first, `_retract`). Returns swap ms."""
        extra = 0.0
        if self.ntr is not None and self.n > 1 and self.pref_blocks + self.dec_blocks(self.G + 1) > self.cap:
            extra += self._retract(t)
        while self.n and self.pref_blocks + self.dec_blocks(self.G + 1) > self.cap:
            extra += self._evict(next(reversed(self.running)), t)
        return extra

    def _evict(self, rid: int, t: float, back: bool = False) -> float:
        """Preempt running request rid: its KV swapped out (``swap``) or freed for a recompute, when it is waiting
        again at the front of the queue (at its back: `back`). Returns swap ms."""
        r = self.eng.reqs[rid]
        queue = self.bq if self.static else self.waiting
        requeue = queue.append if back else queue.appendleft
        self._unrun(rid, r)
        r.npre += 1
        self.npre += 1
        r.last = t
        if r.kv_ready == r.kv_ready:            # its KV still loading: give the blocks back, read it later
            self._end_load(rid, r)
            requeue(rid)
            return 0.0
        if r.pblocks > 0:                       # still prefilling
            if self.keep:
                self._keep(rid, r.prefilled, r.pblocks)
            self.prefilling.remove(rid)
            self.pref_blocks -= r.pblocks
            r.pblocks = 0
            r.prefilled = 0
            r.resumed = r.gen > 0
            requeue(rid)
            return 0.0
        kv = r.base + self.G
        if self.keep:
            self._keep(rid, kv, -(-kv // self.B) + r.x)
        self._remove_dec(rid, r)
        if rid in self.fresh:                   # evicted before its first token: that comes with its recompute
            self.fresh.remove(rid)
        if self.swap:
            r.swap_kv = kv
            self.swapped.appendleft(rid)
            return kv * self.swap_ms_per_tok
        r.prompt = r.inp + r.gen
        r.prefilled = 0
        r.resumed = True
        requeue(rid)
        return 0.0

    def _free_queue(self) -> None:
        """Bring the free queue's segments to the free blocks: what was allocated since the last call (decode
        growth, admissions) left from its head, the oldest freed first; free blocks not in it (a finished request's)
        join its tail as others'. Called before anything joins it (a finish, a preemption) or leaves it from the
        middle (a kept request readmitted), so allocations and frees keep their order."""
        free = self.cap - self.pref_blocks - self.dec_blocks(self.G)
        fq = self.fq
        over = self.fq_n - free
        while over > 0 and fq:
            seg = fq[0]
            d = min(seg[1], over)
            seg[1] -= d
            over -= d
            self.fq_n -= d
            if seg[1] == 0:
                fq.popleft()
                if seg[0] >= 0 and self.kept.get(seg[0]) is seg:
                    del self.kept[seg[0]]
        if over < 0:
            self._push(-1, -over)

    def _push(self, rid: int, blocks: int) -> None:
        """`blocks` free blocks join the free queue's tail (rid >= 0: request rid's cached prefix)."""
        if blocks <= 0:
            return
        fq = self.fq
        if rid < 0 and fq and fq[-1][0] < 0:
            fq[-1][1] += blocks
        else:
            fq.append([rid, blocks])
            if rid >= 0:
                self.kept[rid] = fq[-1]
        self.fq_n += blocks

    def _keep(self, rid: int, kv: int, held: int) -> None:
        """Preempted request rid (`kv` tokens of KV computed, `held` blocks held) frees its blocks as vLLM V1 does
        with its prefix cache on (kv_cache_manager.py ``free``: "in reverse order so that the tail blocks are
        evicted first"; scheduler.py ``_preempt_request``): its partial and reserved blocks first, then its full
        blocks, which keep their hashes. Allocations take free blocks from the queue's head (block_pool.py
        ``get_new_blocks``), so its prefix survives until as many blocks as were free before it, and its own tail,
        have been allocated again."""
        if not self.kept:                # nothing cached to follow: start the queue over
            self.fq.clear()
            self.fq_n = 0
        self._free_queue()
        full = kv // self.B
        self._push(-1, held - full)
        self._push(rid, full)

    def _kept_hit(self, rid: int, r: _Req) -> int:
        """Tokens of waiting request rid's prompt (its prompt and output so far after a recompute preemption) still
        cached from before its preemption (`_keep`), at most its prompt less one token, whole blocks
        (kv_cache_manager.py ``get_computed_blocks``: the last token is recomputed for its logits)."""
        self._free_queue()
        seg = self.kept.get(rid)
        return 0 if seg is None else min(seg[1] * self.B, (r.prompt - 1) // self.B * self.B)

    def _take_kept(self, rid: int) -> None:
        """Readmitted request rid's cached blocks leave the free queue (block_pool.py ``touch``)."""
        seg = self.kept.pop(rid)
        self.fq_n -= seg[1]
        seg[1] = 0
        self.fq.remove(seg)

    def _decoders(self) -> list[int]:
        """The running requests that decode (not prefilling, not loading a handed-off KV)."""
        reqs = self.eng.reqs
        return [rid for rid in self.running if reqs[rid].pblocks == 0 and reqs[rid].kv_ready != reqs[rid].kv_ready]

    def _retract(self, t: float) -> float:
        """SGLang's ``retract_decode`` (`inference.admission`): the decoders with the fewest output tokens (then
        the longest prompts, then the latest admitted) go back to the end of the queue, at least one and never the
        last, until the others have room for ``retract_steps`` more decode steps; the ratio becomes what those left
        have used. Returns swap ms."""
        ntr = self.ntr
        assert ntr is not None
        reqs = self.eng.reqs
        G = self.G
        dec = self._decoders()
        order = [dec[j] for j in sorted(range(len(dec)), key=lambda j: (
            reqs[dec[j]].gen + G - reqs[dec[j]].g_entry, -reqs[dec[j]].inp, -j))]
        extra = 0.0
        k = 0
        while self.n > 1 and k < len(order) and (
                k == 0 or self.pref_blocks + self.dec_blocks(G + ntr.retract_steps) > self.cap):
            extra += self._evict(order[k], t, back=True)
            k += 1
        left = order[k:]
        self.ratio = ntr.after_retract(float(sum(reqs[i].gen + G - reqs[i].g_entry for i in left)),
                                       float(sum(reqs[i].out for i in left)), len(left))
        self.retracted = True
        return extra

    def _outputs_left(self) -> tuple[float, np.ndarray]:
        """The running requests' outputs SGLang's admission counts on beyond the KV they hold: the clipped whole
        outputs of the prompts still prefilling (as in the round that admitted them), summed, and each decoder's
        remaining output tokens (not clipped)."""
        ntr = self.ntr
        assert ntr is not None
        reqs = self.eng.reqs
        pf = float(sum(min(max(reqs[rid].out - reqs[rid].gen, 0), ntr.clip) for rid in self.prefilling))
        return pf, np.fromiter(self.fin.values(), dtype=np.float64, count=len(self.fin)) - self.G

    def _counted_on(self) -> float:
        """Tokens SGLang's admission counts the running requests on beyond the KV they hold: the new-token ratio x
        each decoder's clipped remaining output, and the prefilling prompts' clipped outputs (`_outputs_left`)."""
        assert self.ntr is not None
        pf, rem = self._outputs_left()
        return pf + self.ratio * float(self.ntr.clipped(rem).sum())

    def _candidate_tokens(self, r: _Req) -> int:
        """Tokens request r must find free to be admitted under SGLang's rule: its prompt's blocks and its
        clipped remaining output."""
        assert self.ntr is not None
        return (-(-r.prompt // self.B) + r.x) * self.B + int(self.ntr.clipped(r.out - r.gen))

    def _gate_opens(self, K: int) -> int:
        """The first of the next K decode steps after which SGLang's admission takes the head of the queue, its
        ratio falling step by step to its floor (K when none does): no request finishes within them, so the
        decoders' held tokens grow by one each per step and their remaining outputs fall by one. The held KV
        counts in whole blocks, so between two block boundaries the room grows by the ratio x the decoders each
        step, at the floor ratio too."""
        ntr = self.ntr
        assert ntr is not None
        G, B = self.G, self.B
        pf, rem = self._outputs_left()
        s = np.arange(1, K + 1, dtype=np.float64)
        rs = np.sort(rem)
        tail = np.concatenate((np.cumsum(rs[::-1])[::-1], [0.0]))     # sums of rs[i:]
        over = np.searchsorted(rs, s + ntr.clip, side="right")          # those whose remainder stays above clip
        counted = rs.sum() - len(rs) * s - (tail[over] - (len(rs) - over) * (s + ntr.clip))
        ratio = np.maximum(self.ratio - (s - self.retracted) * ntr.decay, ntr.floor)
        held = (self.pref_blocks + self.dec_blocks_at(G + 1 + s.astype(np.int64))) * B
        room = (self.cap * B - held) - pf - ratio * counted
        ok = np.flatnonzero(self._candidate_tokens(self.eng.reqs[self.waiting[0]]) < room)
        return int(s[ok[0]]) if len(ok) else K

    # ---- scheduling ----------------------------------------------------------------------------------
    def deliver(self, rid: int, t: float) -> None:
        self.load += 1
        self.enqueue(rid, t)

    def arrive(self, rid: int, t: float) -> None:
        """A new request at this replica's API server: through it (`Scheduler.frontend_ms`, one at a time), then
        to the scheduler."""
        if self.fe_ms <= 0.0:
            self.deliver(rid, t)
            return
        self.load += 1
        self.fe_free = max(t, self.fe_free) + self.fe_ms
        self.eng.push(self.fe_free, _ARRIVE, self, rid)

    def enqueue(self, rid: int, t: float) -> None:
        r = self.eng.reqs[rid]
        r.x = 0 if self.xb is None else self.xb[rid]
        self.waiting.append(rid)
        if self.lag and self.state == "busy":
            # the next iteration was formed when the one in progress began: received at that one's end (b1), the
            # request can join the iteration after it, so a decode segment stops at the boundary after b1 (a rank in
            # lockstep: its group's segment, which its own mirrors)
            b1 = self.end if self.seg is None else self.t0 + _cut_pieces(self.seg, t - self.t0)[1]
            self.seen[rid] = b1
            self.wake(b1 + LAG_EPS_MS)
            return
        if self.ahead:
            # on the boundary `end` where the unit formed during the one that just ended is about to start: the loop
            # receives it with that one's results, as it forms the iteration after the one starting now (as a loop
            # that does not overlap forms the one starting now: at equal times commits, then arrivals, then starts)
            self.seen[rid] = self.end
            return
        self.wake(t)
        if self.pp > 1 and self.group is None and self.role != "decode":
            r.ready = self._next_return(t)

    def _next_return(self, t: float) -> float:
        """With pp > 1 stages: when a request reaching the scheduler at `t` can first go into a batch. vLLM's
        batch queue (vllm/v1/engine/core.py ``step_with_batch_queue``: when nothing new is schedulable it blocks on
        the oldest batch in flight), SGLang's pp loop (scheduler_pp_mixin.py ``event_loop_pp``: each micro-batch
        slot is formed right after the next slot's result is processed) and TensorRT-LLM's
        (py_executor.py ``_executor_loop_pp``: each micro-batch slot is scheduled, from the requests not in flight,
        once the oldest slot is finalized) form the next batch at the next return of a batch in flight and put
        every request then waiting into it. The iteration running at `t` returns its batches in flight (`lanes`,
        `_pipe_lanes`: one until a schedule overflows a budget, so at low load the round's end) one every 1 / lanes
        of it; at `t` when the replica is not running one (it starts now), at the unit's end where `t` is not in its
        last iteration (a static batch's segment, not cut)."""
        if self.state != "busy" or t >= self.end:
            return t
        span = self.seg[-1][2] if self.seg is not None else self.dt   # a segment: its last iteration (cut after
        m = self.lanes                                                  # `t`: `wake`); its batches in flight
        start = self.end - span
        if t < start or m <= 1:
            return self.end
        step = span / m
        return min(start + math.ceil((t - start) / step - 1e-9) * step, self.end)

    def _unseen(self, rid: int, t: float) -> bool:
        """Whether waiting request rid cannot join the iteration starting at `t` because the overlapping scheduler
        formed that iteration before it received rid (`enqueue`)."""
        return rid in self.seen and self.seen[rid] >= t - LAG_EPS_MS * 0.5

    def wake(self, t: float) -> None:
        """Something to schedule at `t` (a request delivered, a loading request's KV arrived): an idle replica
        starts, a running decode segment stops at its next iteration boundary (a rank in lockstep: its group's,
        `_Group.wake`)."""
        if self.group is not None:
            self.group.wake(self, t)
            return
        if self.state == "idle":
            self.state = "pending"
            self.eng.push(t, _START, self)
        elif self.state == "busy" and self.seg is not None and t < self.end and (not self.static or self.loading):
            # (a static batch admits nobody until it is done: no need to stop the segment, unless a member's KV
            # read is done, which decodes from the next boundary: `_begin`)
            self._cut(t)

    def start(self, t: float) -> None:
        """Begin this replica's next unit at `t` (`_begin`), a decode segment planned in closed form."""
        K = self._begin(t)
        if K < 0:
            return
        if K > 1 and self.waiting and self._unseen(self.waiting[-1], t):
            # a request received at this iteration's end joins the next one (`enqueue`): one decode step, the
            # segment's first iteration (what `_cut_pieces` leaves of it where it lasts more than the cut's
            # LAG_EPS_MS), without pricing the rest
            a = self._decode_ms(0)
            if 1e-3 <= a < math.inf:
                self._set_segment(t, [(1, a, a)])
                self.eng.push(self.end, _END, self, self.version)
                return
        if K:
            self._plan_segment(t, K)
            if self.seg is not None and self.waiting and self._unseen(self.waiting[-1], t):
                # a request received at this iteration's end joins the next one (`enqueue`): one decode step
                self.seg, self.dt = _cut_pieces(self.seg, LAG_EPS_MS)
                self.end = t + self.dt
        self.eng.push(self.end, _END, self, self.version)

    def _begin(self, t: float) -> int:
        """Schedule the unit starting at `t`: -1 when there is nothing to run (the replica goes idle), 0 for one
        iteration (its chunks, decoders and duration `dt` set), else K >= 1: the decoders alone may run a segment of
        up to K iterations (`_segment_len`), to be planned (`_plan_segment`)."""
        eng = self.eng
        B = self.B
        npre = self.npre
        spent = self.spent if self.ahead else (0, 0)   # the unit formed ahead holds their extra decode (`extra`)
        self.spent = (0, 0)
        self.ahead = False    # from here on an arrival is in this unit, or finds the replica idle (`enqueue`)
        if self.loading:                            # KV read done: decode from this iteration on
            busy = self.notice and self.n           # a busy worker learns of it `notice` steps after it sees it
            for rid in [x for x in self.loading if eng.reqs[x].kv_ready <= t + 1e-9]:
                if busy and self.G < self.noticed.setdefault(rid, self.G) + self.notice:
                    continue
                r = eng.reqs[rid]
                self._end_load(rid, r)
                self._add_handed_off(rid, r, t)
        extra = self._preempt_until_fits(t) if self.n else 0.0
        # swap-ins first
        while self.swapped and len(self.running) < self.maxb:
            rid = self.swapped[0]
            r = eng.reqs[rid]
            need = -(-(r.swap_kv + 1) // B) + r.x
            if self.pref_blocks + self.dec_blocks(self.G + 1) + need > self.cap:
                break
            self.swapped.popleft()
            self._run(rid, r)
            extra += r.swap_kv * self.swap_ms_per_tok
            eng.gaps.append(t - r.last)
            self._add_dec(rid, r)
            r.swap_kv = 0
        # no new admissions while requests are swapped out or right after a preemption (as vLLM)
        chunks = [] if self.hold else self._schedule_prefill(t, admit=not self.swapped and self.npre == npre,
                                                             spent=spent[0] > 0)
        self.room = self.room and len(self.running) < self.maxb
        if not chunks and self.n == 0 and spent[0] and not self.prefilling:
            # the extra decode step of the requests that just finished (`extra`), which its loop formed before it
            # received the queue: the queue waits for its end; a rank in lockstep is priced in its group's step
            self.t_prev, self.t0, self.state = self.t0, t, "busy"
            self.version += 1
            self.u0 = (self.pref_blocks + self.dec_blocks(self.G)) / self.cap
            self.work = (0.0, 0.0, spent[0], spent[1], 0.0)
            self.chunks, self.ndec, self.seg = [], 0, None
            if self.group is None:
                self.dt = self.tm(0.0, 0.0, spent[0], spent[1])
                self.end = t + self.dt
            return 0
        if not chunks and self.n == 0:
            if not self.loading and (self.running or self.waiting or self.swapped or self.bq):
                raise RuntimeError("serving engine stalled: work queued but nothing schedulable (bug)")
            self.state = "idle"
            self.ratio = SGLANG.init        # an idle SGLang server starts over at its initial ratio
            return -1
        self.t_prev = self.t0
        self.t0 = t
        self.state = "busy"
        self.version += 1
        self.u0 = (self.pref_blocks + self.dec_blocks(self.G)) / self.cap
        if chunks or extra > 0.0 or (spent[0] and self.n):
            ndec = self.n if (self.dprio or not chunks) else 0
            p = pairs = 0.0
            for rid, c in chunks:
                p += c
                pairs += c * (eng.reqs[rid].prefilled + (c + 1) * 0.5)
            # pp > 1: the micro-batches the iteration's prompts pass the stages in (`StepModel.time_ms`'s
            # n_prefill_seqs; the iteration lasts at least one of them passing every stage) and the batches in
            # flight (`_pipe_lanes`: one until a schedule overflows the token budget, each request keeping its
            # batch). A prefill batch run alone (SGLang) pauses the decodes of the batches its prompts go into only
            # (`paused`), the other batches' decodes ride the round. Ranks in lockstep are priced by their group
            # (`_Group.start` sets their dt and end), one batch each
            k = 1
            self.paused = []
            S = self.S
            if self.pp > 1 and self.group is None:
                alone = bool(chunks) and not ndec and self.slot_pause
                k, self.lanes, paused = self._pipe_lanes(chunks, ndec, alone)
                if alone and len(paused) < self.n:      # some batches decode beside the prompts' (`_pause_dec`)
                    self.paused = paused
                    ndec = self.n - len(paused)
                    S -= sum(eng.reqs[rid].base for rid in paused)
            kv = S + ndec * (self.G + 1) if ndec else 0
            # a decode step formed ahead also carries the extra decode of the requests that just finished (`extra`:
            # their loop formed it with them before it checked their stop), priced, not counted as decoders
            xn, xkv = spent if ndec else (0, 0)
            self.work = (p, pairs, ndec + xn, kv + xkv, extra)
            self.chunks, self.ndec, self.seg = chunks, ndec, None
            if self.group is None:
                self.dt = (self.tm(p, pairs, ndec + xn, kv + xkv) if self.pp <= 1 else
                           self.cost.time_ms(p, pairs, ndec, kv, k, lanes=self.lanes)) + extra  # type: ignore[call-arg]
                self.end = t + self.dt
                if self.pp > 1:
                    self.k = k
                    if chunks:
                        self._pipe_starts(t)
            return 0
        if self.pp > 1 and self.group is None:
            self.lanes = self._pipe_lanes([], self.n)[1]
        if self.npre != npre and (self.waiting or self.bq):
            return 1      # a preemption kept the queue out of this iteration only: the next one may admit its head
        K = self._segment_len()
        if self.noticed:                # a segment stops where a finished read's request joins the batch
            K = max(min(K, min(self.noticed.values()) + self.notice - self.G), 1)
        return K

    def _pipe_lanes(self, chunks: list[tuple[int, int]], ndec: int,
                    alone: bool = False) -> tuple[int, int, list[int]]:
        """pp > 1: (the micro-batches this iteration's prompts ride, the batches in flight, the decoders whose
        batch a prefill run alone pauses) as the engines keep them (`inference.estimate.pipeline_lanes`): one batch
        until a schedule overflows a budget of `maxt` tokens, the leftovers opening a new one, and a batch lives
        while it holds requests. Each running request keeps the batch (`lane`) it entered; its decodes
        (`ndec` of them ride this iteration) cost a token of that batch's budget. A new prompt joins the batch in
        flight that carries the fewest tokens (the next to return, as prompts arrive spread over a round); what
        overflows its budget goes into a new batch while fewer than pp are in flight, else into the next to return
        (the last holds the prompt). Lanes are priced as an even split (`StepModel.time_ms` ``lanes``).
        `alone` (a prefill run alone: SGLang): the prompts take no budget from the decodes (its prefill batch holds
        prompts only, `PrefillAdder`), and SGLang's ``event_loop_pp`` (scheduler_pp_mixin.py) forms a micro-batch
        slot from that slot's own running batch: ``get_next_batch_to_run`` returns the prefill batch in place of
        that slot's decode, so only the decodes of the batches the prompts go into pause (the list returned; []
        where `alone` is False), the other slots decode in the same round."""
        lane = {rid: self.lane[rid] for rid in self.running if rid in self.lane}
        load = [0] * self.pp
        dec = [0] * self.pp             # `alone`: the decoders each batch holds (not the prompts' budget)
        held = [False] * self.pp
        for j in lane.values():
            held[j] = True
        count = load if ndec else dec
        if ndec or alone:
            pre = set(self.prefilling)
            for rid in self.running:
                if rid not in pre:
                    at = lane.get(rid)
                    if at is None:           # decoding here without a batch (a handoff, a swap-in): the lightest
                        at = lane[rid] = min(range(self.pp), key=lambda i: (not held[i], load[i] + dec[i]))
                        held[at] = True
                    count[at] += 1
        rides: set[int] = set()
        for rid, c in chunks:
            at = lane.get(rid)
            j = min(range(self.pp), key=lambda i: (not held[i], load[i] + dec[i])) if at is None else at
            while load[j] + c > self.maxt:
                # the rest into a new batch while fewer than pp are in flight, else into the next to return
                room = [i for i in range(self.pp) if i != j and load[i] < self.maxt]
                if not room:
                    break
                fill = min(self.maxt - load[j], c)
                if fill > 0:
                    load[j] += fill
                    c -= fill
                    rides.add(j)
                j = min(room, key=lambda i: (held[i], load[i]))
                held[j] = True
            load[j] += c
            held[j] = True
            rides.add(j)
            lane[rid] = j
        self.lane = lane
        lanes = max(sum(1 for x, y in zip(load, dec) if x > 0 or y > 0), 1)
        if not alone:
            return max(len(rides), 1), lanes, []
        pre = set(self.prefilling)
        return max(len(rides), 1), lanes, [rid for rid in self.running if rid not in pre and lane.get(rid) in rides]

    def _pipe_starts(self, t: float) -> None:
        """pp > 1: the prompts this iteration (from `t`) finishes whose micro-batch the engine started before it.
        A prompt that reached the scheduler during the unit before goes into the batch formed at the next return
        (`_Req.ready`, `_next_return`), not at this iteration's start, and enters the first stage once the prompt
        before it has left it (one stage, 1 / pp of its pass, behind: `pgate`); its pass then lasts this iteration
        (whose time is its micro-batch's pass through every stage, `StepModel.time_ms`), so its first token comes
        `t` - start before the iteration's end (at most the iteration: `adv`). The iteration itself, and the
        decodes riding on it, keep their time: the pipeline's throughput. A prefill worker hands such a prompt
        off when its pass ends (a `_DONE` event), an aggregated replica stamps its first token then (`commit`)."""
        reqs = self.eng.reqs
        step = self.dt / self.pp
        gate = self.pgate
        now = 0                  # prompts that start with the iteration, in its k micro-batches
        for rid, c in self.chunks:
            r = reqs[rid]
            if r.prefilled + c < r.prompt:
                continue
            s = t
            if r.gen == 0 and not r.resumed and r.ready >= self.t_prev:
                s = min(max(r.ready, gate), t)
            if s < t:            # its own micro-batch, formed at its return
                gate = s + step
                adv = min(t - s, self.dt)
                self.adv[rid] = adv
                if self.role == "prefill":
                    self.eng.push(self.end - adv, _DONE, self, rid)
            else:
                now += 1
        self.pgate = max(gate, t) + min(now, self.k) * step if now else gate

    def _schedule_prefill(self, t: float, admit: bool, spent: bool = False) -> list[tuple[int, int]]:
        """Prefill chunks of this iteration: continuing prompts first, then new admissions. A request's whole
        prompt is reserved in the KV cache when it is admitted, so later chunks never wait for blocks; where the
        replica allocates by chunk (`by_chunk`, vLLM V1) admission still asks the whole prompt's blocks free, each
        chunk takes its own blocks when it runs (`_grow`), and no new request is admitted in an iteration whose
        chunks preempted. `spent`: the iteration was formed ahead with the requests that finished in the one before
        (`extra`)."""
        reqs = self.eng.reqs
        B = self.B
        # with pp > 1 stages the engine keeps up to pp batches in flight, each with its own token budget (vLLM v1's
        # batch queue of max_concurrent_batches = pp, SGLang's pp micro-batches): prompts queued beyond one budget
        # go into the next batches, which pass the stages behind the first. Ranks in lockstep keep one budget.
        top = self.maxt * (self.pp if self.group is None else 1)
        budget = top - (self.n if self.dprio else 0)
        full = budget == top
        chunks: list[tuple[int, int]] = []
        npre = self.npre
        formed, self.room = self.room, True   # the step formed ahead's `room` (`ahead` below); this one's: KV not short
        for rid in list(self.prefilling) if self.by_chunk else self.prefilling:
            if budget <= 0:
                break
            r = reqs[rid]
            if r.pblocks == 0:               # preempted by an earlier chunk of this iteration (`_grow`)
                continue
            c = self._chunk_len(r.prompt - r.prefilled, budget, full and not chunks)
            if c == 0:
                break
            if self.by_chunk and not self._grow(rid, r, c, t):
                break                        # it preempted itself: vLLM schedules no later running request
            budget -= c
            chunks.append((rid, c))
        admit = admit and self.npre == npre
        if self.static:
            if admit and not self.running and not self.bq and self.waiting:
                self._form_batch()
            src = self.bq
        else:
            src = self.waiting
        if not admit or not src:
            return chunks
        free = self.cap - self.pref_blocks - self.dec_blocks(self.G + 1)
        if self.no_evict:  # whole sequences: what the running requests will hold when they finish
            free = min(free, self.cap - self.resv)
        ntr = self.ntr
        # SGLang: the free tokens less what the running requests count on (`inference.admission`); no watermark
        room = free * B - self._counted_on() if ntr is not None else 0.0
        pc = self.pc
        # an overlapping scheduler formed this iteration before it received the requests `_unseen` marks
        # (`enqueue`); with nothing else to run it formed none (its loop was idle, or went idle after the iteration
        # that just ended) and takes every one of them now. A received prompt at the queue's head is something to
        # run: the token budget left it out of the iteration before, and the loop formed this one with it (vLLM's
        # ``step_with_batch_queue`` schedules batch N+1 before it blocks on N; SGLang's ``event_loop_overlap`` runs
        # ``get_next_batch_to_run`` before it processes N's result), unless max_num_seqs left it, the requests of
        # the iteration before still holding their slots when this one was formed (`room`; the KV cache alike): then
        # the step formed ahead is empty and the loop takes the head and the unseen alike once the one before returns
        # Where the loop formed it with the extra decode of the requests that just finished (`spent`, `extra`) it
        # holds only the received head it had room for (SGLang's ``get_new_batch_prefill`` before the running
        # batch's decode), none where the slots or the cache were short
        if spent and not formed and not (self.n or chunks or self.prefilling):
            return chunks
        ahead = bool(self.seen) and bool(self.n or chunks or self.prefilling or spent
                                         or (formed and not self._unseen(src[0], t)))
        while src and budget > 0 and len(self.running) < self.maxb:
            rid = src[0]
            if ahead and self._unseen(rid, t):
                break
            self.seen.pop(rid, None)
            r = reqs[rid]
            floor = 0 if not self.running or ntr is not None else self.wm
            if ntr is not None:
                tot = self._candidate_tokens(r)
                if tot >= room:
                    self.room = False
                    break
            # under no-evict a request also reserves the blocks of its remaining output
            rest = self._whole_blocks(r) - -(-r.prompt // B) - r.x if self.no_evict else 0
            if r.prefilled >= r.prompt:      # KV computed (disaggregated handoff): read it, then decode
                need = -(-(r.prompt + 1) // B) + r.x
                if free - need - rest < floor:
                    self.room = False
                    break
                src.popleft()
                self._run(rid, r)
                free -= need + rest
                if r.xfer_ms > 0.0:
                    # the blocks are allocated now and the read starts; the request decodes from the first
                    # iteration boundary after its KV has arrived (vLLM's NIXL connector: start_load_kv at the
                    # step that schedules it, completion polled at each step)
                    self.loading.append(rid)
                    r.pblocks = need
                    self.pref_blocks += need
                    r.kv_ready = t + r.xfer_ms
                    self.eng.push(r.kv_ready, _KV, self)
                    continue
                self._add_handed_off(rid, r, t)
                if self.dprio:
                    budget -= 1
                    full = False
                continue
            need = -(-r.prompt // B) + r.x
            if free - need - rest < floor:
                self.room = False
                break
            hit = self._pc_peek(rid, r) if pc is not None else 0
            kept = self._kept_hit(rid, r) if rid in self.kept else 0
            c = self._chunk_len(r.prompt - max(hit, kept), budget, full and not chunks)
            if c == 0:
                break
            if pc is not None:
                self._pc_take(rid, r, hit)
            if rid in self.kept:
                self._take_kept(rid)
                r.prefilled = max(r.prefilled, kept)
            if ntr is not None:
                room -= tot
            src.popleft()
            self._run(rid, r)
            self.prefilling.append(rid)
            if self.by_chunk:                # its cached prefix and this chunk (kv_cache_manager.allocate_slots)
                need = -(-(r.prefilled + c) // B) + r.x
            r.pblocks = need
            self.pref_blocks += need
            free -= need + rest
            budget -= c
            chunks.append((rid, c))
        return chunks

    def _grow(self, rid: int, r: _Req, c: int, t: float) -> bool:
        """Prefilling request rid takes the blocks its next chunk of `c` tokens needs, as vLLM V1 does for a running
        request (vllm/v1/core/sched/scheduler.py ``schedule``: ``allocate_slots`` for the tokens it runs; when the free
        blocks fall short, the running request admitted last is preempted, ``_preempt_request``, until they do or
        the request itself was). The decoders' next step is already counted (`_preempt_until_fits`). False: it
        preempted itself."""
        more = -(-(r.prefilled + c) // self.B) + r.x - r.pblocks
        while more > self.cap - self.pref_blocks - self.dec_blocks(self.G + 1):
            victim = next(reversed(self.running))
            self._evict(victim, t)
            if victim == rid:
                return False
        if more > 0:
            r.pblocks += more
            self.pref_blocks += more
        return True

    def _form_batch(self) -> None:
        """Static batching: the next batch is the longest run of waiting requests (at most max_batch_size)
        whose whole sequences (prompt + remaining output) fit in the free KV cache above the watermark; the
        first always goes (`_check_fits` made sure it fits alone)."""
        reqs = self.eng.reqs
        B = self.B
        free = self.cap - self.pref_blocks - self.dec_blocks(self.G + 1) - self.wm
        while self.waiting and len(self.bq) < self.maxb:
            r = reqs[self.waiting[0]]
            need = -(-(r.prompt + r.out - r.gen + 1) // B) + r.x
            if self.bq and need > free:
                break
            free -= need
            self.bq.append(self.waiting.popleft())

    # ---- prefix cache ----------------------------------------------------------------------------------
    def _blocks(self, rid: int) -> list[int]:
        eng = self.eng
        b = eng.blk.get(rid)
        if b is None:
            hid, off = cast(np.ndarray, eng.hash_ids), cast(np.ndarray, eng.hash_off)
            b = eng.blk[rid] = hid[off[rid]:off[rid + 1]].tolist()
        return b

    def _pc_peek(self, rid: int, r: _Req) -> int:
        """Prompt tokens of request rid already cached: its leading hash blocks present in the cache, capped
        so that at least one prompt token is computed. 0 for a request part-way through (KV already here)."""
        if r.prefilled:
            return 0
        pc = cast("OrderedDict[int, None]", self.pc)
        k = 0
        for h in self._blocks(rid):
            if h not in pc:
                break
            k += 1
        return min(k * self.eng.block_tokens, r.prompt - 1)

    def _pc_take(self, rid: int, r: _Req, hit: int) -> None:
        """Admit with `hit` cached tokens: skip their prefill, refresh their blocks, count the lookup."""
        self.pc_query += r.prompt
        if hit <= 0:
            return
        self.pc_hit += hit
        r.prefilled = hit
        pc = cast("OrderedDict[int, None]", self.pc)
        blocks = self._blocks(rid)[:-(-hit // self.eng.block_tokens)]
        for h in reversed(blocks):
            pc.move_to_end(h)

    def _pc_insert(self, rid: int) -> None:
        """The prompt's blocks enter the cache (first block most recent); least recently used ones leave."""
        pc = cast("OrderedDict[int, None]", self.pc)
        for h in reversed(self._blocks(rid)):
            if h in pc:
                pc.move_to_end(h)
            else:
                pc[h] = None
        while len(pc) > self.pc_cap:
            pc.popitem(last=False)

    def _chunk_len(self, rem: int, budget: int, alone: bool) -> int:
        if self.chunked:
            return min(rem, self.chunk, budget)
        if rem <= budget or alone:
            return rem
        return 0

    def _segment_len(self) -> int:
        """Decode iterations the decoders may run before anything changes: the first finish, the KV cache running
        out, SGLang's admission opening (1 without event skipping)."""
        heap = self.heap
        reqs = self.eng.reqs
        while True:                                   # drop stale entries
            gf, ep, rid = heap[0]
            if reqs[rid].epoch == ep:
                break
            heapq.heappop(heap)
        G = self.G
        K = gf - G if self.eng.skip else 1
        avail = self.cap - self.pref_blocks
        if K > 1 and self.dec_blocks(G + K) > avail:
            lo, hi = 1, K                              # dec_blocks(G+lo) fits, G+hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.dec_blocks(G + mid) <= avail:
                    lo = mid
                else:
                    hi = mid
            K = lo
        if self.ntr is not None and K > 1 and self.waiting and len(self.running) < self.maxb:
            # SGLang's admission may take the queue's head mid-segment, at its floor ratio too: the remaining
            # outputs it counts on fall a token a step while the held KV grows a block at a time (`_gate_opens`)
            K = min(K, self._gate_opens(K))
        return K

    def _decode_ms(self, k: int) -> float:
        """Time (ms) of the k-th (from 0) of the decoders' next decode iterations, nothing else in the batch
        (pp > 1: in the batches they ride, `_pipe_lanes`)."""
        n = self.n
        if self.pp > 1 and self.group is None:
            return self.cost.time_ms(0, 0, n, self.S + n * (self.G + 1) + k * n,  # type: ignore[call-arg]
                                     lanes=self.lanes)
        return self.tm(0, 0, n, self.S + n * (self.G + 1) + k * n)

    def _plan_segment(self, t: float, K: int) -> None:
        """The unit from `t` is a decode segment of K iterations, summed in closed form (`_integrate`)."""
        self._set_segment(t, _integrate(self._decode_ms, K))

    def _set_segment(self, t: float, seg: list[_Piece]) -> None:
        """The unit from `t` decodes through the pieces `seg`."""
        self.seg = seg
        self.dt = sum(p[0] * (p[1] + p[2]) * 0.5 for p in seg)
        self.end = t + self.dt
        self.chunks, self.ndec = [], self.n

    def _cut(self, ta: float) -> None:
        """Shorten the running segment to end at its first iteration boundary at or after ta."""
        assert self.seg is not None  # deliver() cuts only a running decode segment
        self.seg, self.dt = _cut_pieces(self.seg, ta - self.t0)
        self.end = self.t0 + self.dt
        self.version += 1
        self.eng.push(self.end, _END, self, self.version)

    def commit(self, t: float) -> None:
        eng = self.eng
        reqs = eng.reqs
        self.busy_ms += self.dt
        self.spent = (0, 0)
        G0 = self.G
        if self.fresh and (self.seg is not None or self.ndec):
            # the unit's first iteration decoded the handed-off requests admitted at its start: their first token
            t1 = self.t0 + self.seg[0][1] if self.seg is not None else t
            for rid in self.fresh:
                if reqs[rid].first != reqs[rid].first:
                    reqs[rid].first = t1
            self.fresh = []
        if self.seg is not None:
            K = 0
            for p in self.seg:
                k, a, b = p
                if self.stall or self.owe:   # decoders waited through prefill-only iterations before this one
                    self._first_gaps(a, self.n)
                    if k > 1:
                        eng.segs.append((self.n, k - 1, a + (b - a) / (k - 1), b))
                else:
                    eng.segs.append((self.n, k, a, b))
                K += k
            self.G += K
            self.seg = None
        elif self.ndec:
            paused = self.paused
            for rid in paused:         # their batch ran a prefill alone: no token this step
                self._pause_dec(rid, reqs[rid])
            self.paused = []
            self.G += 1
            if self.stall or self.owe or paused:
                self._first_gaps(self.dt, self.ndec, paused)
            else:
                eng.iters.append((self.dt, self.ndec))
        elif self.n:
            self.stall += self.dt
        G = self.G
        if self.ntr is not None and G > G0:   # SGLang lowers its ratio with each decode step that retracted nothing
            self.ratio = self.ntr.decayed(self.ratio, G - G0 - self.retracted)
            self.retracted = False
        heap = self.heap
        if self.kept and heap and heap[0][0] <= G:
            self._free_queue()    # the decodes' new blocks left the free queue before the finishes join it
        while heap and heap[0][0] <= G:
            gf, ep, rid = heapq.heappop(heap)
            r = reqs[rid]
            if r.epoch != ep:
                continue
            self._unrun(rid, r)
            self._remove_dec(rid, r)
            self._finish(rid, r, t)
        adv = self.adv
        for rid, c in self.chunks:
            self._chunk_done(rid, c, t, adv.pop(rid, 0.0) if adv else 0.0)
        self.chunks = []
        u1 = (self.pref_blocks + self.dec_blocks(G)) / self.cap
        self.kv_area += self.dt * (self.u0 + u1) * 0.5
        if u1 > self.kv_max:
            self.kv_max = u1
        if self.u0 > self.kv_max:
            self.kv_max = self.u0
        self.state = "pending"
        self.ahead = self.lag       # an overlapping scheduler formed the next unit during this one (`enqueue`)
        if self.group is None:      # a rank in lockstep starts with its group (`_Group.commit`)
            eng.push(t, _START, self)

    def _first_gaps(self, a: float, n: int, paused: list[int] | None = None) -> None:
        """Record the inter-token gaps (ms) of the `n` decoders that emit a token in this unit's first iteration
        (`a` ms): each waited the stall before it (prefill-only iterations) plus `a`, offset by its `owe` (a
        decoder that joined during the stall waited only since; one a partial pause held back waited that
        iteration too). The `paused` (this iteration's partial pause, `_pipe_lanes`) emit nothing now and carry the
        wait into their next gap."""
        iters = self.eng.iters
        base = self.stall + a
        self.stall = 0.0
        owe = self.owe
        if paused:
            get = owe.get
            self.owe = {rid: get(rid, 0.0) + base for rid in paused}
            for rid in paused:
                owe.pop(rid, None)
        else:
            self.owe = {}
        if owe:                  # the owed decoders that emit, one record per distinct wait
            n -= len(owe)
            for w, k in Counter(owe.values()).items():
                iters.append((base + w, k))
        if n > 0:
            iters.append((base, n))

    def _chunk_done(self, rid: int, c: int, t: float, adv: float = 0.0) -> None:
        """Request rid's chunk of `c` tokens has run (at `t`); a prompt it finishes emits its first token `adv` ms
        before (its micro-batch started before the iteration: `_pipe_starts`), then decodes here, finishes or is
        handed off."""
        eng = self.eng
        r = eng.reqs[rid]
        r.prefilled += c
        if r.prefilled < r.prompt:
            return
        self.prefilling.remove(rid)
        self.pref_blocks -= r.pblocks
        r.pblocks = 0
        if self.pc is not None:
            self._pc_insert(rid)
        r.gen += 1
        w = self._whole_blocks(r)
        self.resv += w - r.whole
        r.whole = w
        if r.first != r.first:      # NaN: first token
            r.first = t - adv
        elif r.resumed:
            eng.gaps.append(t - r.last)
        r.resumed = False
        r.last = t
        if r.gen >= r.out:
            self._unrun(rid, r)
            self._finish(rid, r, t)
        elif self.role == "prefill":
            self._unrun(rid, r)
            self.load -= 1
            r.prep = self.idx
            eng.handoff(rid, t)
        else:
            self._add_dec(rid, r)

    def done_early(self, rid: int, t: float) -> None:
        """A pipelined prefill worker's prompt whose pass ends at `t`, before its iteration's (`_pipe_starts`):
        its KV is complete and handed off now."""
        for j, (x, c) in enumerate(self.chunks):
            if x == rid:
                del self.chunks[j]
                del self.adv[rid]
                self._chunk_done(rid, c, t)
                return

    def _finish(self, rid: int, r: _Req, t: float) -> None:
        if self.extra:
            self.spent = (self.spent[0] + 1, self.spent[1] + r.inp + r.gen)
        r.finish = t
        r.rep = self.idx
        self.load -= 1
        self.eng.on_finish(rid, t)


#: a rank's iteration in a step of its group (`_Group.step_ms`): (rank, T, A, D, K, X)
_PriceRow = tuple[_Replica, float, float, float, float, float]


class _Group:
    """The attention-DP ranks of one replica stepping in lockstep (vLLM syncs its DP ranks' batches every step and
    runs dummy batches on the idle ones; SGLang's DP attention gathers every rank's batch each step; TensorRT-LLM's
    attention DP likewise): every rank's MoE layers meet at collectives over the group, so a step of the group
    starts on all ranks together and lasts as long as its slowest rank's. Each rank forms its own batch with its
    own scheduler (`_Replica._begin`), its iteration priced with the tokens the other ranks run in the same step
    (`step_ms`, else `_Replica.tm`); a rank with nothing to run
    waits for the group (its dummy batch is not priced), and a rank that gets work mid-step joins at the group's
    next step, a busy rank whose engine overlaps at the step after it (each rank's loop formed its next batch as
    the step began: SGLang's ``event_loop_overlap`` with DP attention, vLLM's DP engine cores with async
    scheduling, TensorRT-LLM's overlap executor with attention DP; `_Replica.enqueue`), as a replica alone. vLLM's
    rank with nothing to run steps its dummy batch synchronously (vllm/v1/engine/core.py
    ``DPEngineCoreProc.run_busy_loop``) and takes a request at the next step; SGLang's and TensorRT-LLM's run an
    idle batch through their overlap loop (`profiles.forms_idle_ahead`), so while its group steps such a rank is
    lagged as a busy one (`wake`, `start`). The group runs a decode segment (`_integrate`, each iteration the
    slowest rank's) only when every busy rank decodes alone, up to the first rank's change (a finish, the KV cache
    running out, SGLang's admission opening); an arrival or a KV read done at any rank cuts it at the next step boundary. The event loop drives a
    group as it drives a replica (`idx`, `state`, `version`, `start`, `commit`). Under TensorRT-LLM's attention-DP
    balance (`Scheduler.adp_balance`) each step first decides whether the ranks' prompts run or wait (`_release`);
    while one waits the group steps one iteration at a time."""

    def __init__(self, eng: _Engine, ranks: list[_Replica]) -> None:
        self.eng, self.ranks = eng, ranks
        self.idx = ranks[0].idx      # its commits order with the replicas' by this index
        self.state = "idle"          # idle | pending (a start queued) | busy
        self.version = 0
        self.t0 = 0.0
        self.end = 0.0
        self.seg: list[_Piece] | None = None   # the running decode segment, shared by its busy ranks
        self.busy: list[_Replica] = []
        for r in ranks:
            r.group = self
        self.balance = ranks[0].adp_balance
        self.bal_wait = 0            # the balance's counters (`_release`): iterations since the last release
        self.bal_batch = 0           # and iterations every rank has held a prompt
        # the running segment's rule for the balance (`_count`): every rank holds a prompt with room, every rank
        # decodes (the ranks' state after their batches were formed, the same at each of its iterations)
        self.seg_rule = (False, False)
        # ms of the iterations of rows (rank, T prompt tokens, A query-key pairs, D decodes, K KV tokens read, X
        # tokens the group's other ranks put through the shared experts in the same step), one list for the step
        # (set by `simulator._couple_ranks`; None: each rank's `tm`, whatever the others run)
        self.step_ms: Callable[[Sequence[_PriceRow]], list[float]] | None = None
        # a rank with nothing to run forms its next step ahead, an idle batch, while the group steps
        # (`profiles.forms_idle_ahead`, where its loop overlaps at all: `_Replica.lag`)
        self.idle_ahead = ranks[0].lag and forms_idle_ahead(getattr(ranks[0].cost, "engine", None))
        self.formed = False          # idle_ahead: the step about to start was formed during the one that ended

    def _prices(self, rows: Sequence[_PriceRow]) -> list[float]:
        """ms of each row's iteration in one step of the group (`step_ms`'s rows)."""
        if self.step_ms is not None:
            return self.step_ms(rows)
        return [r.tm(T, A, D, K) for r, T, A, D, K, _ in rows]

    def _rule(self, t: float) -> tuple[bool, bool]:
        """The balance's branch at the step starting at `t` (`_release`, `_count`): (every rank holds a prompt to
        schedule, queued or prefilling, with room for it; every rank decodes). A queued prompt its rank's overlapping
        loop has not received for that step (`_Replica._unseen`: the queue's head, the others arrived after it) is
        not among the requests it balances."""
        rs = self.ranks
        return (all((r.prefilling or (r.waiting and not (r.seen and r._unseen(r.waiting[0], t)))) and r.n < r.maxb
                    for r in rs),
                all(r.n > 0 for r in rs))

    def _release(self, t: float) -> bool:
        """TensorRT-LLM's attention-DP balance at this step (tensorrt_llm/_torch/pyexecutor/py_executor.py,
        ``PyExecutor._balance_adp_requests``): whether the ranks' prompts run now (True) or are held back. When
        every rank has a prompt to schedule and room for it, the counter of waits resets and, while every rank
        has decodes, the prompts wait ``batching_wait_iters`` iterations before they all run; otherwise the counter
        counts the iteration and the prompts run at ``timeout_iters`` of them, or at once where a rank has no
        decodes."""
        b = self.balance
        assert b is not None
        held, all_gen = self._rule(t)
        if held:
            self.bal_wait = 0
            if all_gen:
                if self.bal_batch < b.batching_wait_iters:
                    self.bal_batch += 1
                    return False
                self.bal_batch = 0
            return True
        self.bal_wait += 1
        if self.bal_wait >= b.timeout_iters or not all_gen:
            self.bal_wait = 0
            return True
        return False

    def _count(self, steps: int) -> None:
        """The balance's counters after a decode segment's `steps` iterations beyond its first, each counted as
        `_release` counts a step, in closed form: at their starts no rank's queue, prompts or decoders differ from
        the segment's start once its batches were formed (`seg_rule`; no prompt is admitted, released or not,
        nothing finishes before its end, and an arrival cuts it at the end of the iteration it comes in, or where
        the rank's loop overlaps at the end of the next, unseen by the steps before: `_rule`), so every step takes
        the same branch. Where every rank holds a prompt with room for it (queued, the cache or SGLang's
        admission keeping it out) the wait for a full batch cycles over ``batching_wait_iters`` + 1 steps while
        every rank decodes; otherwise the timeout counter runs, reset at each step where a rank has no decodes."""
        b = self.balance
        assert b is not None
        if steps <= 0:
            return
        held, all_gen = self.seg_rule
        if held:
            self.bal_wait = 0
            if all_gen:
                self.bal_batch = (self.bal_batch + steps) % (b.batching_wait_iters + 1)
        elif all_gen:
            self.bal_wait = (self.bal_wait + steps) % max(b.timeout_iters, 1)
        else:
            self.bal_wait = 0

    def wake(self, rank: _Replica, t: float) -> None:
        """Something to schedule at rank `rank` at `t`: it takes part in the group's next step, which starts now
        when the group is idle; a running decode segment stops at its next step boundary (not for a busy rank of a
        static batch, which admits nobody until it is done, unless the balance counts its queue: `_count`). Where
        an idle rank forms its step ahead (`idle_ahead`), a request reaching a rank not in the step in progress is
        received at that step's end, as a busy rank's (`_Replica.enqueue`), and joins the step after the next
        (`start`); one on the boundary where the group's next step is about to start, the step after that one."""
        joins = rank.state == "idle"
        if joins:
            rank.state = "pending"
        if self.idle_ahead and rank.state != "busy" and rank.waiting:
            if self.state == "busy" and t < self.end:
                b1 = self.end if self.seg is None else self.t0 + _cut_pieces(self.seg, t - self.t0)[1]
                self._receive(rank, b1)
                t = b1 + LAG_EPS_MS
            elif self.state == "pending" and self.formed:
                self._receive(rank, t)
        if self.state == "idle":
            self.state = "pending"
            self.eng.push(t, _START, self)
        elif (self.state == "busy" and self.seg is not None and t < self.end
              and (joins or not rank.static or self.balance is not None or rank.loading)):
            self._cut(t)

    @staticmethod
    def _receive(rank: _Replica, b: float) -> None:
        """The requests waiting at `rank` that its loop has not received yet (the queue's tail not in ``seen``) are
        received at `b` (`_Replica._unseen`)."""
        seen = rank.seen
        for rid in reversed(rank.waiting):
            if rid in seen:
                break
            seen[rid] = b

    def _unseen_tail(self, r: _Replica, t: float) -> list[int]:
        """`idle_ahead`: the requests waiting at rank `r`, which has nothing running (no decoder, no prompt under
        way: its loop ran an idle batch, or a batch whose requests finished, in the step that just ended), that its
        loop received after it formed the step starting at `t` (`_Replica._unseen`), last first; empty otherwise."""
        if (not (self.idle_ahead or r.ahead) or not r.seen or r.n or r.prefilling or r.loading or r.swapped or r.bq
                or not r.waiting):
            return []
        tail = []
        for rid in reversed(r.waiting):
            if not r._unseen(rid, t):
                break
            tail.append(rid)
        return tail

    def start(self, t: float) -> None:
        """The group's next step (or decode segment) from `t`: each waiting rank schedules its own batch; the step
        lasts as long as the slowest rank's. Where an idle rank forms its step ahead (`idle_ahead`), a rank with
        nothing running schedules only the requests its loop received before the step was formed, when another rank
        runs it (its idle batch then runs; with no other rank stepping it formed none and takes them all, as a
        replica alone: `_Replica._schedule_prefill`); the others join the step after this one."""
        busy: list[_Replica] = []
        ks: list[int] = []
        self.formed = False
        waiting = False       # a prompt held back by the balance: step one iteration at a time
        if self.balance is not None:
            hold = not self._release(t)
            waiting = hold and any(r.prefilling or r.waiting or r.bq for r in self.ranks)
            for r in self.ranks:
                r.hold = hold
        late: list[tuple[_Replica, list[int]]] = []   # idle_ahead: ranks with requests received too late
        for r in self.ranks:
            if r.state != "pending":
                continue
            tail = self._unseen_tail(r, t)
            if tail:
                late.append((r, tail))
                continue
            k = r._begin(t)
            if k >= 0:
                busy.append(r)
                ks.append(k)
        held = bool(late) and bool(busy)
        for r, tail in late:
            if held:          # its idle batch runs this step: the requests wait for the next (`_schedule_prefill`
                q = r.waiting     # admits a rank's queue only from its head)
                for _ in tail:
                    q.pop()
                if not q:     # nothing else queued: it sits this step out and stays pending, its arrivals in
                    q.extend(reversed(tail))     # this step (`_Replica.enqueue`)
                    r.ahead = False
                    continue
            k = r._begin(t)
            if held:
                r.waiting.extend(reversed(tail))
            if k >= 0:
                busy.append(r)
                ks.append(k)
        if late and len(busy) > 1:     # the ranks' order, as without late ones
            pos = {id(r): i for i, r in enumerate(self.ranks)}
            order = sorted(range(len(busy)), key=lambda i: pos[id(busy[i])])
            busy, ks = [busy[i] for i in order], [ks[i] for i in order]
        self.busy = busy
        if not busy:
            self.state = "idle"
            return
        self.state = "busy"
        self.version += 1
        self.t0 = t
        if min(ks) > 0:      # every busy rank decodes alone: one segment, to the first rank's change
            N = sum(r.n for r in busy)
            pr = [(r, r.n, r.S + r.n * (r.G + 1), N - r.n) for r in busy]
            price = self._prices
            # a request a rank's overlapping scheduler receives at this step's end joins the next one (`enqueue`)
            unseen = held or any(r.seen and r.waiting and r._unseen(r.waiting[-1], t) for r in busy)
            seg = self.seg = _integrate(lambda k: max(price([(r, 0, 0, n, kv + k * n, x) for r, n, kv, x in pr])),
                                        1 if waiting or unseen else min(ks))
            if self.balance is not None:
                self.seg_rule = self._rule(t)
            for r in busy:
                r._set_segment(t, list(seg))
            dt = busy[0].dt
        else:
            self.seg = None
            for r, k in zip(busy, ks):
                if k > 0:    # its decoders take one step with the others' prefill
                    r.seg, r.chunks, r.ndec = None, [], r.n
                    r.work = (0, 0, r.n, r.S + r.n * (r.G + 1), 0.0)
            X = sum(r.work[0] + r.work[2] for r in busy)
            rows = []
            for r in busy:
                p, pairs, nd, kv, _ = r.work
                rows.append((r, p, pairs, nd, kv, X - p - nd))
            dt = 0.0
            for r, d in zip(busy, self._prices(rows)):
                dt = max(dt, d + r.work[4])
            for r in busy:
                r.dt = dt
                r.end = t + dt
        self.end = t + dt
        self.eng.push(self.end, _END, self, self.version)

    def _cut(self, ta: float) -> None:
        """Shorten the running segment to end at its first step boundary at or after ta, on every busy rank."""
        assert self.seg is not None
        self.seg, dt = _cut_pieces(self.seg, ta - self.t0)
        self.end = self.t0 + dt
        for r in self.busy:
            r.seg, r.dt, r.end = list(self.seg), dt, self.end
        self.version += 1
        self.eng.push(self.end, _END, self, self.version)

    def commit(self, t: float) -> None:
        """The step ends at `t` on every busy rank (`_Replica.commit`); the next one starts at `t`, after the
        arrivals at `t`."""
        self.state = "pending"
        self.formed = self.idle_ahead
        if self.balance is not None and self.seg is not None:
            self._count(sum(K for K, _, _ in self.seg) - 1)
        for r in self.busy:
            r.commit(t)
        self.busy = []
        self.seg = None
        self.eng.push(t, _START, self)


#: a piece of a decode segment: (K iterations, time of the first, time of the last), times linear in between
_Piece = tuple[int, float, float]


def _cut_pieces(seg: list[_Piece], target: float) -> tuple[list[_Piece], float]:
    """The decode segment `seg` cut at its first iteration boundary at or after `target` ms from its start: its
    pieces up to there and their duration (ms)."""
    done = 0.0
    pieces: list[_Piece] = []
    for K, a, b in seg:
        dur = K * (a + b) * 0.5
        if done + dur < target - 1e-9:
            pieces.append((K, a, b))
            done += dur
            continue
        m = _iters_to_reach(K, a, b, target - done)
        if m < K:
            b2 = a + (b - a) * (m - 1) / (K - 1) if K > 1 else a
            pieces.append((m, a, b2))
            done += m * (a + b2) * 0.5
        else:
            pieces.append((K, a, b))
            done += dur
        break
    return pieces, done


def _integrate(f, K: int) -> list[_Piece]:
    """Pieces (K_i, first, last) whose linear interpolation approximates the iteration times f(k), k = 0 .. K - 1
    (ms; `_Replica._decode_ms`: time_ms(0, 0, n, kv0 + k*n))."""
    a = f(0)
    if K == 1:
        return [(1, a, a)]
    b = f(K - 1)
    out: list[_Piece] = []
    stack = [(0, K, a, b)]
    while stack:
        k0, Kp, fa, fb = stack.pop()
        if Kp <= 2:
            out.append((Kp, fa, fb))
            continue
        m = (Kp - 1) // 2
        fm = f(k0 + m)
        lin = fa + (fb - fa) * m / (Kp - 1)
        if abs(fm - lin) <= RTOL * abs(fm):
            out.append((Kp, fa, fb))
            continue
        fm1 = f(k0 + m + 1)
        stack.append((k0 + m + 1, Kp - m - 1, fm1, fb))
        stack.append((k0, m + 1, fa, fm))
    return out


def _iters_to_reach(K: int, a: float, b: float, target: float) -> int:
    """Smallest m in [1, K] with sum of the first m iteration times >= target (times linear from a to b)."""
    if target <= 0:
        return 1
    c = (b - a) / (K - 1) * 0.5 if K > 1 else 0.0

    def cum(m: int) -> float:
        return m * a + c * m * (m - 1)

    if abs(c) < 1e-15:
        m = math.ceil(target / a - 1e-9)
    else:
        # c m^2 + (a - c) m - target = 0
        disc = (a - c) ** 2 + 4 * c * target
        m = math.ceil((-(a - c) + math.sqrt(max(disc, 0.0))) / (2 * c) - 1e-9)
    m = max(1, min(K, m))
    while m > 1 and cum(m - 1) >= target - 1e-9:
        m -= 1
    while m < K and cum(m) < target - 1e-9:
        m += 1
    return m


class _Engine:
    """The event loop over replicas and requests."""

    def __init__(self, inp: np.ndarray, out: np.ndarray, arrival_ms: np.ndarray | None, concurrency: int | None,
                 routing: str = "least_loaded", skip: bool = True) -> None:
        n = len(inp)
        nan = float("nan")
        self.reqs = [_Req(int(i), int(o), int(i), 0, 0, 0, 0, nan, nan, nan, 0.0, 0, 0, False, 0, -1, -1, 0.0, 0, nan, 0,
                          0, nan) for i, o in zip(inp.tolist(), out.tolist())]
        self.output = np.asarray(out, dtype=np.int64)
        self.context = np.asarray(inp, dtype=np.int64) + self.output
        self._xb: dict[tuple[int, int, bool], list[int] | None] = {}   # extra blocks per (scheduler, cost, role)
        self.n = n
        self.arrival_ms = arrival_ms
        self.concurrency = concurrency
        self.routing = routing
        self.skip = skip            # False: step decode iterations one by one (reference for benchmarks)
        self.ev: list = []
        self.seq = 0
        self.next_req = 0
        self.rr = 0
        self.front: list[_Replica] = []     # replicas new requests go to
        self.back: list[_Replica] = []      # decode pool (disagg)
        self.kv_ms_per_tok = 0.0
        self.kv_fixed_ms = 0.0                  # the KV connector's latency per request (disagg)
        self.iters: list[tuple[float, int]] = []
        self.segs: list[tuple[int, int, float, float]] = []
        self.gaps: list[float] = []
        self.n_finished = 0
        # closed loop: the client's host delay (ms) after a request's GPU finish before it sends its next, given the
        # request's id and the finish (ms); None: none (`simulator._client_reads`)
        self.reads: Callable[[int, float], float] | None = None
        # prompt hash blocks (CSR: request i's are hash_ids[hash_off[i]:hash_off[i+1]]) for prefix caching
        self.hash_ids: np.ndarray | None = None
        self.hash_off: np.ndarray | None = None
        self.block_tokens = 0
        self.blk: dict[int, list[int]] = {}     # request -> its hash blocks as a list, filled on first use

    def extra_blocks(self, sched: Scheduler, cost: IterationCost, decodes: bool = True) -> list[int] | None:
        """Per request: `Scheduler.kv_extra_blocks` on its whole context, with its output where it `decodes` on the
        replica (computed once per scheduler, cost and role)."""
        key = (id(sched), id(cost), decodes)
        if key not in self._xb:
            xb = sched.kv_extra_blocks(cost, self.context, self.output if decodes else None)
            self._xb[key] = None if xb is None else xb.tolist()
        return self._xb[key]

    def push(self, t: float, kind: int, rep, ver: int = 0) -> None:
        self.seq += 1
        b = t * EVENT_BUCKETS_PER_MS + 0.5
        # an arrival that never comes (a rate so small its gaps overflow to inf) keeps an infinite key: last
        key = int(b) if b < math.inf else b
        heapq.heappush(self.ev, (key, kind, rep.idx if kind == _END else 0, self.seq, t, rep, ver))

    def _route(self, pool: list[_Replica]) -> _Replica:
        if len(pool) == 1:
            return pool[0]
        if self.routing == "round_robin":
            self.rr += 1
            return pool[(self.rr - 1) % len(pool)]
        return min(pool, key=lambda r: r.load)

    def _arrive(self, rid: int, t: float) -> None:
        r = self.reqs[rid]
        r.arrival = t
        r.last = t
        rep = self._route(self.front)
        r.rep = rep.idx         # the replica it runs on (a disaggregated request's decode worker at its finish)
        rep.arrive(rid, t)

    def on_finish(self, rid: int, t: float) -> None:
        self.n_finished += 1
        if self.concurrency is not None and self.next_req < self.n:
            # a client sends its next request once it has read this one's last token
            self.push(t if self.reads is None else t + self.reads(rid, t), _ARRIVE, None, self.next_req)
            self.next_req += 1

    def handoff(self, rid: int, t: float) -> None:
        """Prefill done in the prefill pool: move the KV to a decode worker. The prefill's own token is not the
        client's: vLLM's P/D proxy and TensorRT-LLM's disaggregated server stream the decode worker's output (the
        prefill runs with max_tokens=1 / as a context-only request), so the decode worker emits every output token,
        the first one included."""
        r = self.reqs[rid]
        r.gen = 0
        r.first = float("nan")
        r.xfer_ms = r.prompt * self.kv_ms_per_tok + self.kv_fixed_ms
        r.swap_kv = 0
        self.push(t, _ARRIVE, "decode", rid)

    def run(self) -> None:
        arrival_ms = self.arrival_ms
        if self.concurrency is not None:
            for _ in range(min(self.concurrency, self.n)):
                self.push(0.0, _ARRIVE, None, self.next_req)
                self.next_req += 1
        else:
            assert arrival_ms is not None  # an open-loop run (no concurrency) has arrival times
            self.push(float(arrival_ms[0]), _ARRIVE, None, 0)
            self.next_req = 1
        ev = self.ev
        pop = heapq.heappop
        while ev:
            _, kind, _, _, t, rep, ver = pop(ev)
            if kind == _END:
                if rep.version == ver and rep.state == "busy":
                    rep.commit(t)
            elif kind == _START:
                rep.start(t)
            elif kind == _KV:
                rep.wake(t)
            elif kind == _DONE:
                rep.done_early(ver, t)
            elif rep is None:
                self._arrive(ver, t)
                if arrival_ms is not None and self.concurrency is None and self.next_req < self.n:
                    self.push(float(arrival_ms[self.next_req]), _ARRIVE, None, self.next_req)
                    self.next_req += 1
            elif rep == "decode":
                self._route(self.back).deliver(ver, t)
            else:                                   # through a replica's API server (`Scheduler.frontend_ms`)
                rep.enqueue(ver, t)
        if self.n_finished != self.n:
            raise RuntimeError(f"serving engine finished {self.n_finished} of {self.n} requests (bug)")
