"""Scheduler, pool and SLO settings of the serving simulator (configuration only; the event loop is in
`simulator.py`), and the `IterationCost` protocol the simulator needs from the analytical model."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..inference.lockstep import AdpBalance, as_balance
from ..profiles import engine_key, overlaps, overlaps_in_role, runs_prefill_alone
from .workload import check_bool, check_choice, check_int, check_real

_POLICIES = ("auto", "decode_priority", "prefill_first")
#: The iteration policy the analytical serving model (`ServingModel`, `steady_state`) models, with or without
#: chunked prefill: each engine's own ("auto", `Scheduler.policy_rule`). vLLM's and TensorRT-LLM's schedule every
#: running decode and prompts fill the rest of the token budget (chunks, or whole prompts without chunked prefill:
#: an iteration carrying one lasts about its prefill, the decodes riding on it; "decode_priority"); SGLang's runs a
#: waiting prompt's prefill as a batch of its own and pauses the decodes ("prefill_first",
#: `profiles.PREFILL_ALONE_ENGINES`), as the closed form does (`inference.estimate.steady_work`). The one mapping
#: of the scheduler knobs to a simulator policy (`Scheduler.of_knobs`): the objective's simulated fidelity, the
#: capacity search and `steady_state` use it. Without chunked prefill vLLM's rows match "decode_priority", not
#: "prefill_first" (Llama-3.1-8B, H100, 2048/256 tokens: 64 users on 2 replicas, TTFT 190 ms analytical, 187
#: decode_priority, 817 prefill_first; 20 req/s: 87, 114, 849).
MODELLED_POLICY = "auto"
_BATCHING = ("continuous", "static")
_PREEMPTION = ("recompute", "swap")
_ADMISSION = ("auto", "on_demand", "no_evict", "new_token_ratio")
#: engines whose default scheduler admits a request only when the KV cache can hold its whole sequence (prompt +
#: max output) beside the whole sequences of those running, so nothing is ever evicted: TensorRT-LLM's
#: capacity scheduler under its default policy GUARANTEED_NO_EVICT (the analytical model's fitted
#: ``kv_reserve_output_frac``, 0.89, is the same reservation seen through the published tables). vLLM admits on
#: the blocks a prompt needs now and preempts when decodes run out (``Efficiency.engine_kv_reserve``)
NO_EVICT_ENGINES = ("trtllm",)
#: engines that admit by SGLang's new-token ratio and retract as it does (`inference.admission`)
NEW_TOKEN_RATIO_ENGINES = ("sglang",)
#: ms the engine's API server holds each new request, one at a time, where the iteration cost has an engine's front
#: end (`Scheduler.frontend_ms` None; a profile row's ``front_end_ms`` > 0): vLLM's OpenAI server and SGLang's
#: tokenizer manager parse, tokenize and hand each request to the scheduler process in one Python process. Its
#: physical effect in a closed loop: a client's next request reaches the scheduler after the iteration that
#: finished its previous one has ended and the next has begun, and waits for all of it (with no front end it would
#: arrive exactly on the boundary and never wait); the closed form prices the same wait
#: (`inference.estimate.arrival_wait_iters`). Any hold shorter than an iteration has that effect: the silicon replay
#: scores 1, 2 and 5 ms alike (docs/profiles.md, twenty-ninth round)
API_SERVER_MS = 2.0
#: the simulator's (max_batch_size, max_num_tokens) where a replica has no engine (the roofline): its former defaults
SIMULATOR_BUDGETS = (256, 8192)
#: engines that give a prompt the KV blocks of the chunk it runs, not its whole prompt, and keep no watermark: vLLM
#: V1 (`Scheduler.allocates_by_chunk`)
BY_CHUNK_ENGINES = ("vllm",)


@runtime_checkable
class IterationCost(Protocol):
    """What the simulator needs from the analytical model (`objectives.inference.StepModel` implements it)."""

    def time_ms(self, n_prefill_tokens: float, prefill_attn_pairs: float, n_decode_seqs: float,
                decode_kv_tokens: float) -> float:
        """Duration (ms) of one iteration. prefill_attn_pairs = sum over prefill chunks of
        chunk_len * (ctx_before + (chunk_len + 1) / 2); decode_kv_tokens = sum of the decoding contexts."""
        ...

    @property
    def kv_capacity_tokens(self) -> int:
        """KV-cache tokens that fit in one replica."""
        ...

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes of one token of context, whole replica (all layers, all TP shards)."""
        ...

    @property
    def n_gpus(self) -> int:
        """GPUs of one replica (tp * pp)."""
        ...


@dataclass(frozen=True)
class Scheduler:
    """Iteration-level continuous batching (vLLM / TensorRT-LLM in-flight batching), or static batching.

    - ``batching``: ``"continuous"`` (requests join and leave the running batch at every iteration) or
      ``"static"`` (request-level batching, as FasterTransformer or a plain ``generate`` loop: when a replica
      is idle it takes up to ``max_batch_size`` waiting requests whose whole sequences, prompt + output, fit
      in the KV cache, runs them until the last one finishes, and admits nothing new meanwhile; a finished
      request's slot stays empty, its iterations are not charged). ``chunked_prefill`` and ``policy`` still
      say how the batch's prompts are prefilled.

    - ``max_batch_size``: sequences running at once (vLLM max_num_seqs).
    - ``max_num_tokens``: tokens per iteration (decode tokens + prefill chunk tokens).
      None (the default, each): the replica's engine's own where it meets its engine and GPU (`resolved`,
      `inference.resolve.engine_budgets`: vLLM's OpenAI server, SGLang's chunked_prefill_size by GPU memory,
      trtllm-serve's, as `inference.max_throughput` takes them), `SIMULATOR_BUDGETS` on the roofline.
    - ``chunked_prefill``: split prompts into chunks of at most ``chunk_size`` (default: max_num_tokens);
      without it a prompt is prefilled whole (alone if it exceeds the token budget).
    - ``policy``: ``"decode_priority"`` (every running decode is scheduled, prefill chunks fill the rest of the
      budget: vLLM v1, TensorRT-LLM, Sarathi-Serve), ``"prefill_first"`` (an iteration with admissible prefill
      work runs prefill only and decodes wait: SGLang's default, ``enable_mixed_chunk`` off; vLLM v0's default) or
      ``"auto"`` (default: by the cost model's engine, `profiles.PREFILL_ALONE_ENGINES` prefill first, the others
      and a cost without an engine decode priority; `policy_rule`).
    - KV cache: paged, blocks of ``kv_block_size`` tokens; capacity ``kv_capacity_tokens`` tokens, default the
      analytical model's ``kv_capacity_tokens`` (its memory model gives the KV cache a fraction, about 0.9, of
      the memory left after weights, activations for max_num_tokens and the runtime reserve, or the engine's own
      rule: `objectives.inference.kv_pool`). A ``gpu_memory_utilization`` sizes it in the engine's meaning
      (``cost.kv_capacity_at`` where the cost object has it: vLLM's share of the device memory, TensorRT-LLM's of
      the memory left), else rescales the capacity by gpu_memory_utilization / 0.9. New prompts are admitted (with their
      whole prompt reserved) while ``kv_watermark`` of the blocks stays free (`watermark`; None, the default: the
      engine's own, 0 for vLLM V1). vLLM V1 (`allocates_by_chunk`) admits a prompt when the free blocks hold its
      whole prompt (``scheduler_reserve_full_isl``, its default) but gives it the blocks of each chunk only when
      the chunk runs: the decodes meanwhile take what it counted on, and a chunk that finds too few free blocks
      preempts the running request admitted last, itself if it is that one.
    - ``admission``: ``"on_demand"`` (a prompt is admitted when its blocks are free, decodes take blocks as they
      grow: vLLM), ``"no_evict"`` (a request is admitted only when its whole sequence, prompt + remaining
      output, fits beside the whole sequences of the running ones, so no decode ever runs out: TensorRT-LLM's
      GUARANTEED_NO_EVICT), ``"new_token_ratio"`` (SGLang's, `inference.admission`: a request is admitted when
      its prompt and clipped remaining output fit in the free blocks less the new-token ratio x each running
      request's clipped remaining output; the ratio falls from 0.7 to 0.098 over 600 decode steps, and when a
      decode step finds no free block the running requests with the fewest output tokens are retracted, to the
      back of the queue, until 20 more steps fit, the ratio raised to what those left have used; only an
      aggregated replica, a disaggregated decode worker admits on demand), or ``"auto"`` (default: by the cost
      model's engine, `NO_EVICT_ENGINES`, `NEW_TOKEN_RATIO_ENGINES`; continuous batching, static batching forms
      its batches as described above).
    - ``preemption`` when a decode step finds no free block: the most recently admitted request is evicted (under
      ``"new_token_ratio"`` admission SGLang's retraction picks them first, as described there);
      ``"recompute"`` re-prefills its prompt and generated tokens later, ``"swap"`` copies its KV to host memory
      and back over ``host_link_gbs`` (GB/s each way; default PCIe: 64 for Hopper/Blackwell, 32 otherwise),
      the copy time added to the iteration that evicts or resumes it. A victim still prefilling is always
      recomputed. No new prompt is admitted in an iteration that preempted or while requests are swapped out.
      With ``prefix_caching`` under on-demand admission (vLLM V1, whose prefix cache is on by default) a recomputed
      victim's full blocks stay cached among the free ones, its tail the first to be allocated again, and readmitted
      it prefills only what of its prompt and output so far the allocations since have taken
      (`engine._Replica._keep`).
    - ``prefix_caching``: reuse the KV of prompt blocks another request already computed (vLLM automatic
      prefix caching, SGLang's radix cache, TensorRT-LLM's KV-cache block reuse; on by default, as in all three
      engines: `objectives/serving/prefix.py` cites their defaults). Only for workloads whose requests carry hash ids (Mooncake traces): request i's prompt
      starts with the cached blocks of its hash-id list up to the first one not cached (at least one prompt
      token is always computed); those tokens skip prefill. Each prefill replica keeps an LRU cache of
      hash blocks holding as many tokens as its KV cache (``kv_blocks * kv_block_size``); a prompt's blocks
      enter it when its prefill completes (its first block most recent) and a hit refreshes them. The cached
      blocks are not charged against the running requests' KV (an optimistic bound on the hit rate when the
      cache is full of running work). Metric: ``prefix_cache_hit_rate`` (cached / looked-up prompt tokens; NaN
      where nothing was looked up: caching off, or no hash ids). The analytical model's counterpart:
      `serving.prefix`.
    - ``frontend_ms``: the engine's API server in front of each replica (prefill worker, in disaggregated mode):
      a new request is held this long (ms) and one at a time, first come first served (parsing, tokenization and
      admission in a single front-end process), before the scheduler sees it; its TTFT counts the wait. 0:
      requests reach the scheduler as they arrive. It caps a replica at 1000 / frontend_ms new requests/s and
      spreads a burst of arrivals over as many multiples of it. None (default): `API_SERVER_MS` where the iteration
      cost has an engine's front end (a measured profile's ``front_end_ms`` > 0), else 0 (`frontend_for`). The
      hold is part of that front end's time: the host time the simulator adds to each request after the engine
      (`StepModel.ttft_host_ms`) drops by it, down to 0, so a request alone sees the same TTFT.
    - ``adp_balance``: TensorRT-LLM's attention-DP balance (``attention_dp_config.enable_balance``): None / False
      (off, every engine's default), True (TensorRT-LLM's default ``batching_wait_iters`` 10 and ``timeout_iters``
      50) or an `objectives.inference.lockstep.AdpBalance`. The attention-DP ranks of a replica that step in
      lockstep then hold their prompts back, as `AdpBalance` says, so that they prefill in the same steps
      (`engine._Group`); stored as an `AdpBalance` or None. Only TensorRT-LLM has it (`dse deploy` launches it
      there); on another engine's cost it runs as a what-if.
    """

    max_batch_size: int | None = None
    max_num_tokens: int | None = None
    chunked_prefill: bool = True
    chunk_size: int | None = None
    policy: str = "auto"
    preemption: str = "recompute"
    kv_block_size: int = 16
    gpu_memory_utilization: float | None = None
    kv_capacity_tokens: int | None = None
    kv_watermark: float | None = None
    host_link_gbs: float | None = None
    batching: str = "continuous"
    prefix_caching: bool = True
    admission: str = "auto"
    frontend_ms: float | None = None
    adp_balance: AdpBalance | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_num_tokens"):
            check_int("Scheduler", name, getattr(self, name), lo=1, none_ok=True)
        check_int("Scheduler", "kv_block_size", self.kv_block_size, lo=1)
        check_bool("Scheduler", "chunked_prefill", self.chunked_prefill)
        check_int("Scheduler", "chunk_size", self.chunk_size, lo=1, none_ok=True, what="tokens")
        check_choice("Scheduler", "policy", self.policy, _POLICIES)
        check_choice("Scheduler", "preemption", self.preemption, _PREEMPTION)
        check_real("Scheduler", "gpu_memory_utilization", self.gpu_memory_utilization, gt=0, le=1, none_ok=True)
        check_int("Scheduler", "kv_capacity_tokens", self.kv_capacity_tokens, lo=1, none_ok=True, what="tokens")
        check_real("Scheduler", "kv_watermark", self.kv_watermark, ge=0, lt=1, none_ok=True)
        check_real("Scheduler", "host_link_gbs", self.host_link_gbs, gt=0, none_ok=True, what="GB/s")
        check_choice("Scheduler", "batching", self.batching, _BATCHING)
        check_bool("Scheduler", "prefix_caching", self.prefix_caching)
        check_choice("Scheduler", "admission", self.admission, _ADMISSION)
        check_real("Scheduler", "frontend_ms", self.frontend_ms, ge=0, none_ok=True, what="ms per new request")
        object.__setattr__(self, "adp_balance", as_balance(self.adp_balance))
        if self.max_num_tokens is not None and self.max_batch_size is not None and \
                self.max_num_tokens < self.max_batch_size:
            raise ValueError(f"Scheduler max_num_tokens={self.max_num_tokens} is below max_batch_size="
                             f"{self.max_batch_size}: every running sequence needs a token per iteration")

    def resolved(self, engine: Any, gpu: Any = None, kv_tokens: int | None = None, context_len: int = 0
                 ) -> Scheduler:
        """This scheduler with ``max_batch_size`` / ``max_num_tokens`` None replaced by what `engine` (a name
        `profiles.engine_key` takes; None or "auto": `gpu`'s default engine, `inference.core.auto_engine`;
        "roofline": `SIMULATOR_BUDGETS`) runs with by default on `gpu` (a catalog name or `GPU` record; None: a
        data-center GPU), `inference.resolve.engine_budgets`; itself where both are set. An engine whose max
        sequences follow its KV pool (SGLang, `inference.resolve.pool_batch`) takes them from `kv_tokens` (the
        replica's pool, tokens) and the model's `context_len` where given (`for_cost`), else the table's stand-in.
        ValueError as the constructor's where a set max_batch_size exceeds the engine's token budget."""
        if self.max_batch_size is not None and self.max_num_tokens is not None:
            return self
        from objectives.inference.resolve import engine_behaviour, pool_batch
        own = engine_behaviour(engine, gpu, fallback=SIMULATOR_BUDGETS)
        mbs, mnt = (int(x) for x in own.budgets)
        if self.max_num_tokens is not None:
            mnt = self.max_num_tokens
        if kv_tokens is not None and own.pool_batch:
            mbs = int(pool_batch(kv_tokens, context_len, mnt))
        return dataclasses.replace(self, max_batch_size=mbs if self.max_batch_size is None else self.max_batch_size,
                                   max_num_tokens=mnt)

    def for_cost(self, cost: object) -> Scheduler:
        """`resolved` for a replica priced by `cost`: its ``engine``, ``gpu_name``, KV pool (`kv_tokens`) and
        model's ``context_len`` where it has them (a `StepModel`), else the roofline's budgets."""
        # the pool only sizes a max_batch_size left to the engine
        kv = (self.kv_tokens(cost) if self.max_batch_size is None and hasattr(cost, "kv_capacity_tokens")  # type: ignore[arg-type]
              else None)
        out = self.resolved(getattr(cost, "engine", None), getattr(cost, "gpu_name", None), kv,
                            int(getattr(cost, "context_len", 0)))
        if self.max_batch_size is None and getattr(cost, "speculative", None) is not None:
            # the engine's max sequences with speculative decoding (SGLang's 48 a server), shared by its
            # attention-DP ranks (each rank's own): `inference.resolve.EngineBehaviour.spec_max_running`
            from ..inference.resolve import engine_behaviour
            from ..inference.speculative import rank_running
            server = engine_behaviour(getattr(cost, "engine", None), getattr(cost, "gpu_name", None),
                                      fallback=SIMULATOR_BUDGETS).spec_max_running
            if server is not None:
                cap = int(rank_running(server, int(getattr(cost, "attn_dp", 1))))
                out = dataclasses.replace(out, max_batch_size=min(int(out.max_batch_size or cap), cap))
        return out

    def frontend_for(self, cost: object) -> float:
        """ms the API server holds each new request in front of a replica priced by `cost` (``frontend_ms``; None:
        `API_SERVER_MS` where `cost` has an engine's front end, ``front_end_ms`` > 0, else 0)."""
        if self.frontend_ms is not None:
            return float(self.frontend_ms)
        return API_SERVER_MS if float(getattr(cost, "front_end_ms", 0.0)) > 0.0 else 0.0

    @classmethod
    def of_knobs(cls, max_batch_size: int = 256, max_num_tokens: int = 8192, chunked_prefill: bool = True,
                 batching: str = "continuous", prefix_caching: bool = True, adp_balance: bool = False) -> Scheduler:
        """The simulator's scheduler for the analytical model's knobs (a study's max_batch_size, max_num_tokens,
        chunked_prefill, batching, prefix_caching, adp_balance): policy `MODELLED_POLICY`, chunked or not;
        ``adp_balance`` True: TensorRT-LLM's attention-DP balance at its default iterations (`AdpBalance`)."""
        return cls(max_batch_size=max_batch_size, max_num_tokens=max_num_tokens, chunked_prefill=chunked_prefill,
                   policy=MODELLED_POLICY, batching=batching, prefix_caching=prefix_caching,
                   adp_balance=as_balance(adp_balance))

    def admission_rule(self, cost: IterationCost) -> str:
        """The admission of a replica costed by `cost`: ``admission``, or for "auto" its engine's
        ("no_evict", "new_token_ratio" or "on_demand")."""
        if self.admission != "auto":
            return self.admission
        engine = engine_key(getattr(cost, "engine", None))
        if engine in NO_EVICT_ENGINES:
            return "no_evict"
        return "new_token_ratio" if engine in NEW_TOKEN_RATIO_ENGINES else "on_demand"

    def allocates_by_chunk(self, cost: IterationCost) -> bool:
        """Whether a replica costed by `cost` gives a prompt its blocks chunk by chunk as vLLM V1 does
        (kv_cache_manager.py ``allocate_slots`` for the tokens a step runs; scheduler.py ``schedule``): a cost of
        an engine in `BY_CHUNK_ENGINES` admitting on demand, with recompute preemption and continuous batching.
        Elsewhere the whole prompt's blocks are allocated at admission (vLLM V0's block manager, which also
        swapped; a cost of another engine or of none admitting on demand; static batches; TensorRT-LLM's and
        SGLang's admissions, which count the whole prompt)."""
        return (engine_key(getattr(cost, "engine", None)) in BY_CHUNK_ENGINES
                and self.admission_rule(cost) == "on_demand" and self.preemption == "recompute"
                and self.batching == "continuous")

    def overlaps(self, cost: IterationCost, role: str | None = None) -> bool:
        """Whether a replica costed by `cost` forms its next batch while the current one runs (the engines' overlap
        loops, `profiles.OVERLAP_SINCE`: SGLang, vLLM from 0.14, TensorRT-LLM's PyTorch backend): a request arriving
        during an iteration then waits for the iteration after the next one. Continuous batching only (a static
        batch admits nobody while it runs). A cost that says for its model (`inference.StepModel.overlap_scheduler`:
        SGLang serves hybrid models whose state its radix cache keeps without it, `profiles.NO_OVERLAP_LINEAR_KINDS`)
        decides; else its engine does. `role`: a disaggregated pool's ("prefill", "decode"), whose engine may run
        without the loop there (`profiles.overlaps_in_role`: TensorRT-LLM's context servers)."""
        own = getattr(cost, "overlap_scheduler", None)
        engine = getattr(cost, "engine", None)
        on = bool(own) if own is not None else overlaps(engine)
        return on and overlaps_in_role(engine, role) and self.batching == "continuous"

    def watermark(self, cost: IterationCost) -> float:
        """The share of the KV blocks a replica costed by `cost` keeps free when it admits a prompt beside running
        requests: ``kv_watermark``, or for None its engine's: 0 where it allocates by chunk (vLLM V1: no watermark
        before ``--watermark``, whose default is 0.0), else 0.01 (vLLM V0's, this simulator's former default)."""
        if self.kv_watermark is not None:
            return self.kv_watermark
        return 0.0 if self.allocates_by_chunk(cost) else 0.01

    def policy_rule(self, cost: IterationCost) -> str:
        """The iteration policy of a replica costed by `cost`: ``policy``, or for "auto" its engine's
        (`policy_of`)."""
        return self.policy_of(getattr(cost, "engine", None))

    def policy_of(self, engine: Any) -> str:
        """The iteration policy on `engine` (a name `profiles.engine_key` takes, or None): ``policy``, or for "auto"
        the engine's own: "prefill_first" where it runs prefill batches alone (`profiles.runs_prefill_alone`),
        else "decode_priority"."""
        if self.policy != "auto":
            return self.policy
        return "prefill_first" if runs_prefill_alone(engine) else "decode_priority"

    def models_policy(self, engine: Any) -> bool:
        """Whether the analytical model (`MODELLED_POLICY`: each engine's own) models this scheduler's policy on
        `engine`: "auto", or the policy "auto" resolves to there."""
        return self.policy in (MODELLED_POLICY, Scheduler().policy_of(engine))

    def no_evict(self, cost: IterationCost) -> bool:
        """Whether a replica costed by `cost` admits whole sequences only (``admission``; "auto": its engine)."""
        return self.admission_rule(cost) == "no_evict"

    @property
    def chunk(self) -> int:
        """Largest prefill chunk, tokens (a scheduler `resolved` for its engine)."""
        assert self.max_num_tokens is not None, "Scheduler.chunk of a scheduler not resolved for its engine"
        return min(self.chunk_size or self.max_num_tokens, self.max_num_tokens)

    def kv_blocks(self, cost: IterationCost) -> int:
        """KV-cache blocks of one replica, a block holding ``kv_block_size`` tokens of context. Where a token of
        context takes less or more than one token's worth of every layer's KV (``cost.kv_slope``: window-bounded
        layers, SGLang's split pools) the blocks are counted in context tokens: capacity / kv_slope; what a
        sequence holds beyond its slope (a window, a linear layer's state) is a constant per request
        (`kv_extra_blocks`)."""
        return int(self.kv_tokens(cost) / kv_slope(cost)) // self.kv_block_size

    def kv_tokens(self, cost: IterationCost) -> int:
        """KV-cache capacity of one replica in tokens' worth of every layer's KV: ``kv_capacity_tokens`` where
        given, else the cost's at this ``gpu_memory_utilization`` (the class docstring)."""
        if self.kv_capacity_tokens is not None:
            return self.kv_capacity_tokens
        if self.gpu_memory_utilization is None:
            return int(cost.kv_capacity_tokens)
        if hasattr(cost, "kv_capacity_at"):
            return int(cost.kv_capacity_at(self.gpu_memory_utilization))
        return int(cost.kv_capacity_tokens * self.gpu_memory_utilization / 0.9)

    def kv_extra_blocks(self, cost: IterationCost, context: np.ndarray, output: np.ndarray | None = None
                        ) -> np.ndarray | None:
        """Per request (whole context `context`, tokens): the blocks its engine's KV layout holds beyond
        kv_slope x its context (``cost.kv_seq_tokens``), held from its admission to its end; None when no request
        holds any (a plain transformer, or a cost without ``kv_seq_tokens``). `output` (tokens, per request): where
        given, the requests decode here, and with the cost's speculative decoding (``cost.speculative``) each that
        decodes also holds its k draft tokens' slots (`inference.speculative.draft_slots`, the closed form's k
        tokens) in its own blocks, ceil((context + k) / block) of them as the engines allocate; None: none (a
        disaggregated prefill worker's requests)."""
        seq = getattr(cost, "kv_seq_tokens", None)
        if seq is None:
            return None
        ctx = np.asarray(context, dtype=np.float64)
        a = kv_slope(cost)
        held = np.broadcast_to(np.asarray(seq(ctx), dtype=np.float64), ctx.shape)
        bad = np.flatnonzero(~np.isfinite(held) | (held < 0))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"{type(cost).__name__}.kv_seq_tokens({int(ctx[i])}) = {float(held[i])!r}: the KV a sequence "
                             "holds must be a finite number of tokens >= 0")
        B = self.kv_block_size
        blocks = np.ceil(np.maximum(held - a * ctx, 0.0) / a / B - 1e-9)
        spec = getattr(cost, "speculative", None) if output is not None else None
        if spec is not None:
            # the k draft tokens' slots sit in the request's own blocks, as the engines allocate them
            # (ceil((context + k) / block) blocks): a block more only where they cross a block boundary
            from ..inference.speculative import draft_slots
            k = np.asarray(draft_slots(spec, output), dtype=np.float64)
            blocks = blocks + np.ceil((ctx + k) / B - 1e-9) - np.ceil(ctx / B - 1e-9)
        if not np.any(blocks > 0):
            return None
        return blocks.astype(np.int64)


#: smallest kv_slope the block count divides by (a model whose every layer is window-bounded holds a constant per
#: request, its window; the capacity in context tokens is then as good as unbounded)
MIN_KV_SLOPE = 1e-3


def kv_slope(cost: IterationCost) -> float:
    """``cost.kv_slope`` (1.0 when the cost does not say), at least `MIN_KV_SLOPE`. ValueError naming the cost
    for a slope that is not a finite number >= 0."""
    a = float(getattr(cost, "kv_slope", 1.0))
    if not math.isfinite(a) or a < 0:
        raise ValueError(f"{type(cost).__name__}.kv_slope = {a!r}: the KV-cache tokens' worth one more token of "
                         "context takes must be a finite number >= 0 (1 for a plain transformer)")
    return max(a, MIN_KV_SLOPE)


@dataclass(frozen=True)
class Pool:
    """One pool of a disaggregated deployment: ``n_workers`` workers of ``tp`` x ``pp`` x ``attn_dp`` GPUs of type
    ``gpu`` (xPyD: each pool its own GPU type, TP, EP and attention DP).

    ``ep``: expert parallelism of a mixture-of-experts model over the tp x attn_dp GPUs of a worker (must divide
    them and the experts; e.g. prefill TP 8 EP 8, or a wide-EP decode worker of attn_dp 8 x TP 4 with EP 32).
    ``attn_dp``: attention data-parallel ranks per worker, each scheduling its own requests (as in
    `simulate(..., attn_dp=)`): a pool holds ``n_workers * attn_dp`` scheduling ranks and
    ``n_workers * tp * pp * attn_dp`` GPUs. None fields inherit the arguments given to `simulate`."""

    gpu: Any = None
    tp: int | None = None
    pp: int | None = None
    ep: int | None = None
    attn_dp: int | None = None
    n_workers: int = 1
    weight_dtype: str | None = None
    act_dtype: str | None = None
    kv_dtype: str | None = None
    scheduler: Scheduler | None = None

    def __post_init__(self) -> None:
        check_int("Pool", "n_workers", self.n_workers, lo=1, what="replicas")
        for name in ("tp", "pp", "ep", "attn_dp"):
            check_int("Pool", name, getattr(self, name), lo=1, none_ok=True)
        for name in ("weight_dtype", "act_dtype", "kv_dtype"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise TypeError(f"Pool {name}={v!r}: must be a dtype name or None, not {type(v).__name__}")
        if self.scheduler is not None and not isinstance(self.scheduler, Scheduler):
            raise TypeError(f"Pool scheduler={self.scheduler!r:.80}: must be a serving.Scheduler or None")


#: Statistics an SLO may bound: the mean or a percentile of the per-request values.
SLO_STATISTICS = ("mean", "p50", "p90", "p99")
#: Per-request latencies an SLO may bound (ms).
SLO_METRICS = ("ttft_ms", "tpot_ms", "e2e_ms")


@dataclass(frozen=True)
class SLO:
    """Service-level objective.

    Per request: a request is good when TTFT <= ``ttft_ms``, TPOT <= ``tpot_ms`` and end-to-end latency <=
    ``e2e_ms`` (None: no limit); ``slo_attainment`` and ``goodput_req_s`` count the good requests.

    For a study: ``percentile`` ("mean", "p50", "p90" or "p99") says which statistic of the per-request values the
    bounds constrain, as serving benchmarks state them (MLPerf Inference's server scenario: p99 TTFT and p99 TPOT).
    ``constraints`` names the metrics: ``ttft_ms`` / ``tpot_ms`` / ``e2e_ms`` for the mean, ``ttft_ms_p99`` etc.
    for a percentile (the keys of `simulate` without the ``_mean`` suffix for means).
    """

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    percentile: str = "mean"

    def __post_init__(self) -> None:
        for name in SLO_METRICS:
            check_real("SLO", name, getattr(self, name), gt=0, inf_ok=True, none_ok=True, what="ms")
        if self.percentile not in SLO_STATISTICS:
            raise ValueError(f"SLO percentile={self.percentile!r} is unknown; valid: {', '.join(SLO_STATISTICS)}")

    @staticmethod
    def metric_name(metric: str, percentile: str) -> str:
        """The study metric of ``metric`` ("ttft_ms", "tpot_ms", "e2e_ms") at ``percentile``: "ttft_ms" for the
        mean, "ttft_ms_p99" for the 99th percentile."""
        return metric if percentile == "mean" else f"{metric}_{percentile}"

    @property
    def bounds(self) -> dict[str, float]:
        """{per-request metric (`SLO_METRICS`, in its order): bound ms, as given} for each bound set, e.g.
        {"ttft_ms": 2000, "tpot_ms": 200.0}; unbounded metrics (None) are left out."""
        return {m: getattr(self, m) for m in SLO_METRICS if getattr(self, m) is not None}

    @property
    def constraints(self) -> dict[str, tuple[str, float]]:
        """{study metric: ("<=", bound ms)} for each bound set, e.g. {"ttft_ms_p99": ("<=", 2000.0)}."""
        return {self.metric_name(m, self.percentile): ("<=", float(bound)) for m, bound in self.bounds.items()}

    @classmethod
    def parse(cls, spec: Any) -> SLO:
        """An SLO from an `SLO` or a mapping: {"ttft_ms": 2000, "tpot_ms": 200, "percentile": "p99"} or the metric
        names themselves, {"ttft_ms_p99": 2000, "tpot_ms_p99": 200} (one statistic for all bounds; a bare name
        without "percentile" is the mean's, so {"ttft_ms": 2000, "tpot_ms_p99": 200} mixes two and is refused).
        Unknown keys, metrics or percentiles raise ValueError listing the valid ones."""
        if isinstance(spec, SLO):
            return spec
        if not isinstance(spec, Mapping):
            raise TypeError(f"slo must be a serving.SLO or a mapping, got {spec!r:.100}")
        fields: dict[str, Any] = {}
        keys: dict[str, Any] = {}   # the key that bounded each metric
        stats: set[str] = set()
        bare = False            # a key without a statistic: the mean's metric name, unless "percentile" says
        for key, value in spec.items():
            if key == "percentile":
                fields["percentile"] = value
                continue
            base, stat = key, "mean"
            for s in SLO_STATISTICS[1:]:
                if isinstance(key, str) and key.endswith("_" + s):
                    base, stat = key[: -len(s) - 1], s
            if stat == "mean" and isinstance(key, str) and key.endswith("_mean"):
                base = key[: -len("_mean")]
            if base not in SLO_METRICS:
                valid = [SLO.metric_name(m, s) for m in SLO_METRICS for s in SLO_STATISTICS]
                raise ValueError(f"slo key {key!r} is unknown; valid keys: {', '.join(valid)} and 'percentile' "
                                 f"(statistics: {', '.join(SLO_STATISTICS)})")
            if base in keys:
                raise ValueError(f"slo {dict(spec)!r}: {base} is bounded twice ({keys[base]!r} and {key!r}); one SLO "
                                 f"bounds each metric once, on one statistic ({', '.join(SLO_STATISTICS)})")
            keys[base] = key
            fields[base] = value
            if base != key:
                stats.add(stat)
            else:
                bare = True
        if bare and stats and "percentile" not in fields:
            stats.add("mean")           # {"ttft_ms": 2000, "tpot_ms_p99": 200}: ttft_ms is the mean TTFT's name
        if len(stats) > 1 or (stats and "percentile" in fields and fields["percentile"] not in stats):
            pct = fields.get("percentile")
            mixed = sorted(stats | ({pct} if pct is not None else set()))
            raise ValueError(f"slo {dict(spec)!r} mixes statistics {mixed}"
                             f"; one SLO bounds one statistic ({', '.join(SLO_STATISTICS)}): name each bound at "
                             f"it (ttft_ms_p99, tpot_ms_p99) or give bare names with 'percentile'")
        if stats:
            fields["percentile"] = stats.pop()
        return cls(**fields)
