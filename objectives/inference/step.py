"""`StepModel`: the time of one continuous-batching iteration, for the serving simulator."""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from ..catalog.types import DTYPES
from . import kv_pool, memory, power
from . import speculative as speculative_mod
from .core import prepare
from .efficiency import Efficiency
from .estimate import (
    DEFAULT_MAX_NUM_TOKENS,
    _replica_time_s,
    chunk_pass_s,
    chunk_work,
    kv_capacity_tokens,
    memory_setting_needed,
    micro_batches,
    steps_in_lockstep,
)
from .measured import SOURCES, Curves
from .ops import StepCoeffs, busy_s, forward_s, idle_s
from .resolve import R_EP, R_MOE_A2A, R_OK, REASONS, check_ep, positive, reason_text
from .speculative import Speculative, resolve_speculative


def _float_coeffs(p: Any) -> StepCoeffs:
    """One configuration's step coefficients (`prepare`'s) as plain floats and lists, for the per-iteration float
    path of `StepModel.time_ms`."""
    c = StepCoeffs(**{f.name: float(np.asarray(getattr(p.coeffs, f.name)))
                      for f in dataclasses.fields(StepCoeffs) if f.name != "curves"})
    cv = p.coeffs.curves
    if cv is not None:
        c.curves = Curves(cv.tok.reshape(-1).tolist(), cv.head.reshape(-1).tolist(),
                          cv.ctx.reshape(cv.ctx.shape[-2:]).tolist(), cv.gen.reshape(cv.gen.shape[-2:]).tolist())
    return c


def _no_kv_room(p: Any, max_num_tokens: float, setting: float | None) -> str:
    """Why a replica has no KV cache, for its refusal: the weights per GPU, the engine's memory setting in force
    (named in its own spelling, `kv_pool.memory_flag`) and, where a larger one of a share-of-device engine
    (vLLM, SGLang) would make room, the smallest such setting and how to pass it."""
    engine = str(p.engine_names[int(np.asarray(p.engine_code))])
    flag = kv_pool.memory_flag(engine)
    whole = bool(kv_pool.share_of_device([engine])[0])
    if setting is None:
        now = (f"{engine}'s default {flag} ({float(np.asarray(p.pool_gpu / p.mem_gpu)):.3f} of the device)" if whole
               else f"{engine}'s default {flag}")
    else:
        now = f"{flag}={setting:g}"
    weights = float(np.asarray(speculative_mod.memory_terms(p)[0]))   # with the draft layer's, where speculative
    why = (f"no room left for the KV cache: {weights / memory.GIB:.1f} GiB of weights per "
           f"GPU of {float(np.asarray(p.mem_gpu)) / memory.GIB:.1f} GiB at {now}")
    need = float(np.asarray(memory_setting_needed(p, max_num_tokens)))
    if whole and need <= 1.0:
        why += f"; {kv_pool.fits_from(engine, need)}, or on more GPUs"
    else:
        why += "; more GPUs (tp, pp, ep) or smaller weights"
    return why


class StepModel:
    """Iteration-time model of one model replica (tp x pp GPUs) for a scheduler that mixes prefill chunks and
    decode tokens in each iteration. Uses the same per-op cost code as `estimate` (`ops.forward_s`).

    Construction resolves the model/GPU/dtypes once and precomputes float coefficients, so a scalar
    `time_ms` call is plain float arithmetic (a few µs). Raises ValueError when the configuration cannot run
    (unsupported precision, tp not dividing the heads, weights not fitting): the simulator needs a valid replica.
    ``memory_setting``: the engine's memory flag in its own meaning, in (0, 1] (`kv_capacity_at`: vLLM's
    gpu_memory_utilization, SGLang's mem_fraction_static, TensorRT-LLM's kv_cache_free_gpu_memory_fraction; None:
    the engine's default): ``kv_capacity_tokens`` and the check that a KV cache fits at all are taken at it.
    ``speculative``: speculative decoding (an `inference.Speculative` or a mapping of its fields; None: off):
    `time_ms` prices decodes in token time, the draft layer's weights and KV shrink the cache, and an engine's
    overlap loop stays where its release keeps it (`speculative.with_speculative`); ValueError where the model
    cannot run it.
    """

    def __init__(self, model: Any, gpu: Any, tp: int = 1, pp: int = 1, weight_dtype: str | None = None,
                 act_dtype: str | None = None, kv_dtype: str | None = None, *, ep: int = 1,
                 max_num_tokens: int = DEFAULT_MAX_NUM_TOKENS, engine_profile: str = "standard",
                 engine: Any = None, attn_dp: int = 1, efficiency: Efficiency | None = None,
                 eplb: bool = False, moe_act_dtype: str | None = None, moe_a2a: str | None = None,
                 memory_setting: float | None = None, speculative: Any = None) -> None:
        spec = resolve_speculative(speculative, model)
        if memory_setting is not None and (isinstance(memory_setting, bool) or not isinstance(
                memory_setting, (int, float, np.floating, np.integer)) or not 0.0 < float(memory_setting) <= 1.0):
            raise ValueError(f"StepModel memory_setting={memory_setting!r}: the engine's memory flag, a share in "
                             f"(0, 1], or None for its default")
        for name, v in (("tp", tp), ("pp", pp), ("ep", ep), ("attn_dp", attn_dp), ("max_num_tokens", max_num_tokens)):
            if np.ndim(v) != 0 or isinstance(v, (list, tuple)):
                raise TypeError(f"StepModel {name} must be a scalar (one replica), got {v!r:.80}")
        for name, arg in (("model", model), ("gpu", gpu), ("weight_dtype", weight_dtype), ("act_dtype", act_dtype),
                          ("kv_dtype", kv_dtype), ("engine_profile", engine_profile), ("engine", engine), ("eplb", eplb),
                          ("moe_act_dtype", moe_act_dtype), ("moe_a2a", moe_a2a)):
            if isinstance(arg, (list, tuple, np.ndarray)):
                raise TypeError(f"StepModel {name} must be a scalar (one replica), got {arg!r:.80}")
        positive("max_num_tokens", max_num_tokens)
        p = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, 1, ep, efficiency, None,
                    engine_profile=engine_profile, engine=engine, attn_dp=attn_dp, eplb=eplb,
                    moe_act_dtype=moe_act_dtype, moe_a2a=moe_a2a)
        assert p is not None  # None only when the arguments broadcast to zero rows; all are scalars here
        code = int(np.asarray(p.reason))
        desc = f"{p.model_names[0]} on {p.gpu_names[0]} tp={tp} pp={pp} weight_dtype={weight_dtype}"
        if code == R_EP:   # the rule's own message: the bad ep and the valid ones
            check_ep(model, ep, tp, attn_dp, who=f"StepModel({desc}): ")
        if code == R_MOE_A2A:  # name the value asked for and the layout it was asked on
            raise ValueError(f"StepModel({desc} ep={ep} attn_dp={attn_dp} engine={engine}): "
                             f"moe_a2a={moe_a2a!r} not valid here; {REASONS[code]}")
        if code != R_OK:   # naming the value and the valid ones where the rule is a degree's
            named = str(p.engine_names[int(np.asarray(p.engine_code))])
            why = reason_text(code, p.model_records[0], named, int(tp), int(pp), int(ep), int(attn_dp),
                              p.gpu_records[0] if p.gpu_records else None)
            raise ValueError(f"StepModel({desc}): {why}")
        p = speculative_mod.with_speculative(p, spec)   # its engine switches (the overlap loop by release)
        self._p = p
        self.attn_dp: int = int(attn_dp)
        """Attention data-parallel ranks of the replica; each schedules its own batch (the simulator runs one
        scheduler per rank), every busy rank's tokens meeting at the routed experts."""
        self.steps_in_lockstep: bool = steps_in_lockstep(p)
        """Whether the attention-DP ranks step together (attn_dp > 1 on an MoE model: every rank's tokens meet at
        the routed experts' collectives each step; `estimate.steps_in_lockstep`); the simulator then runs them in
        lockstep (`serving.simulator._couple_ranks`)."""
        self._busy: dict[int, StepModel] = {}   # `busy_ranks`' step models, built on first use
        self._args = dict(model=model, gpu=gpu, tp=tp, pp=pp, weight_dtype=weight_dtype, act_dtype=act_dtype,
                          kv_dtype=kv_dtype, dp=1, ep=ep, eff=efficiency, engine_profile=engine_profile, engine=engine,
                          attn_dp=attn_dp, eplb=eplb, moe_act_dtype=moe_act_dtype,
                          moe_a2a=moe_a2a)   # `breakdown` prepares again
        self.model_name = p.model_names[0]
        self.gpu_name = p.gpu_names[0]
        self.tp, self.pp = int(tp), int(pp)
        self.n_gpus: int = self.tp * self.pp
        self._c = _float_coeffs(p)
        self.engine: str = str(p.engine_names[int(np.asarray(p.engine_code))])
        self.speculative: Speculative | None = spec
        """Speculative decoding (`inference.Speculative`; None: off): `time_ms` prices a decode in token time."""
        self._L = float(np.max(p.shape.n_layers))
        self.source: str = SOURCES[int(np.asarray(p.source_code))]
        """Where the iteration costs come from: roofline | interpolated | extrapolated (see inference.estimate)."""
        self.kv_dtype: str = DTYPES[int(np.asarray(p.kv_code))]
        """The KV cache's dtype as resolved (the one given, else `inference.resolve`'s rule on the GPU and format)."""
        self.kv_bytes_per_token: float = float(speculative_mod.memory_terms(p)[1]) * self.n_gpus
        """KV-cache bytes per token of context for the whole replica (all its GPUs)."""
        ms = None if memory_setting is None else float(memory_setting)
        cap = float(kv_capacity_tokens(p, float(max_num_tokens), memory_setting=ms))
        if cap < 1:
            raise ValueError(f"StepModel({desc}): {REASONS[5]} ({_no_kv_room(p, float(max_num_tokens), ms)})")
        self.kv_capacity_tokens: int = int(cap)
        """KV-cache tokens that fit per replica after weights, activations (max_num_tokens) and runtime reserve, at
        the engine's memory setting (``memory_setting``, else its default)."""
        self.kv_slope: float = float(kv_pool.seq_slope(p.sgl_pool > 0, p.kv_win_share, p.window))
        """Capacity (in kv_capacity_tokens' unit) each further token of a long context takes: 1 for a plain
        transformer, less where window-bounded layers stop growing (`kv_pool.seq_slope`)."""
        self.weights_gib_per_gpu: float = float(speculative_mod.memory_terms(p)[0]) / memory.GIB
        self._mnt = float(max_num_tokens)
        self._idle, self._tdp = float(p.idle_w), float(p.tdp_w)
        self.price_usd_per_hour: float = float(p.price) * self.n_gpus
        self.front_end_ms: float = float(np.asarray(p.coeffs.ttft_s)) * 1e3
        """The engine's API-server time of a request before its scheduler sees it (`engine_ttft_ms` of a profile row,
        0 on the roofline): part of `ttft_host_ms`."""
        self.stream_ms: float = float(np.asarray(p.coeffs.stream_s)) * 1e3
        """The API server's time per sequence running at a request's scheduler that its first token waits behind
        (`engine_stream_us` of a profile row, 0 on the roofline; `inference.estimate.host_ttft_s`), ms."""
        self.stream_ranks: int = int(round(float(np.max(np.asarray(p.coeffs.stream_ranks)))))
        """The attention-DP ranks whose sequences one API server streams (`profiles.api_server_ranks`)."""
        self.ttft_host_ms: float = float(np.asarray(p.coeffs.ttft_s) + np.asarray(p.coeffs.ttft_model_s)) * 1e3
        """Host time of a request before the engine schedules it (API server, tokenization; the engine factor
        `engine_ttft_ms` of a profile row, 0 on the roofline) and the model's own (`attn_ttft_ms`): added to its
        TTFT and end-to-end latency."""

    def busy_ranks(self, busy: int) -> StepModel:
        """The step model of one rank when only `busy` of the replica's `attn_dp` attention-DP ranks hold work
        (the others idle, running dummy forwards): only the busy ranks' tokens reach the routed experts
        (`prepare`'s ``moe_dp``, as `max_throughput` prices fewer clients than ranks). `busy` >= attn_dp (or a
        replica without attention DP) is this model itself. Each count is prepared once, on first use
        (milliseconds), and kept; its `time_ms` is as cheap as this one's. ValueError for a count below 1."""
        if isinstance(busy, bool) or not isinstance(busy, (int, np.integer)) or busy < 1:
            raise ValueError(f"StepModel.busy_ranks busy={busy!r}: must be an integer >= 1 (attention-DP ranks "
                             f"holding work, at most attn_dp={self.attn_dp})")
        if busy >= self.attn_dp:
            return self
        b = int(busy)
        sm = self._busy.get(b)
        if sm is None:
            q = prepare(**self._args, moe_dp=float(b))
            assert q is not None  # the arguments this model was built from
            q = speculative_mod.with_speculative(q, self.speculative)
            sm = copy.copy(self)
            sm._p, sm._busy = q, {}
            sm._args = {**self._args, "moe_dp": float(b)}   # `breakdown` prepares the same
            sm._c = _float_coeffs(q)
            self._busy[b] = sm
        return sm

    @property
    def overlap_scheduler(self) -> bool:
        """Whether the engine forms its next batch while the current one runs, for this model (``Coeffs.overlap``:
        SGLang's overlap scheduler, off for the hybrid models its radix cache keeps the state of,
        `profiles.NO_OVERLAP_LINEAR_KINDS`, and with speculative decoding, `speculative.with_speculative`)."""
        return bool(self._c.overlap > 0)

    @property
    def context_len(self) -> int:
        """The model's context length, tokens (its config's max_position_embeddings; 0 where unknown): what SGLang
        sizes its request pool by (`Scheduler.for_cost`)."""
        return int(np.max(self._p.shape.context))

    def kv_seq_tokens(self, context: Any) -> Any:
        """Capacity (in kv_capacity_tokens' unit) one sequence of `context` tokens takes under this engine's KV
        layout: window-bounded layers at most their window (SGLang: in a pool of their own), the linear layers'
        constant state (`kv_pool.seq_tokens`). Equals `context` for a plain transformer."""
        return self._p.seq_tokens(context)

    def kv_capacity_at(self, gpu_memory_utilization: float) -> int:
        """KV-cache tokens per replica when the engine is started with this memory setting, in the engine's own
        meaning (`kv_pool`): vLLM's ``gpu_memory_utilization`` and SGLang's ``mem_fraction_static`` are the share of
        the device memory that weights and KV cache (and vLLM's activations) may take; TensorRT-LLM's
        ``kv_cache_free_gpu_memory_fraction`` (and the roofline's) the share of the memory they leave."""
        return int(kv_capacity_tokens(self._p, self._mnt, memory_setting=float(gpu_memory_utilization)))

    def time_ms(self, n_prefill_tokens: Any, prefill_attn_pairs: Any, n_decode_seqs: Any, decode_kv_tokens: Any,
                n_prefill_seqs: Any = None, lanes: Any = None) -> Any:
        """Time (ms) of ONE iteration: `n_prefill_tokens` new prompt tokens in total, `prefill_attn_pairs` =
        sum over prefill chunks of chunk_len x (ctx_before + (chunk_len + 1) / 2) query-key pairs,
        `n_decode_seqs` sequences decoding one token each, reading `decode_kv_tokens` cached tokens in total.
        `n_prefill_seqs`: prefill chunks that finish their prompt and sample a token (LM head rows); default 1
        when there are prefill tokens. `lanes` (pp > 1): the batches in flight the work is split over
        (`estimate.pipeline_lanes`; None: min(pp, sequences)). Scalars -> float; arrays broadcast -> ndarray.
        With `speculative` the D decodes are priced in token time, as a deterministic expectation: each decode
        iteration (k drafts and a verify of k + 1 tokens a sequence, `inference.speculative`) emits E =
        `Speculative.expected_tokens` tokens a sequence, so a decode-only iteration that emits one token per decode
        (the simulator's) is charged 1 / E of it; one that carries prompt tokens lasts a full speculative iteration
        (with the draft layer's prefill of the prompt, `speculative.draft_extend_s`), as
        `estimate.speculative_time_s` with ``whole``."""
        spec = self.speculative
        if spec is None:
            return self._time_ms(n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens,
                                 n_prefill_seqs, lanes)
        D, K, k = n_decode_seqs, decode_kv_tokens, spec.draft_tokens
        T, A = n_prefill_tokens, prefill_attn_pairs
        scalar = isinstance(D, (int, float)) and isinstance(K, (int, float)) and isinstance(T, (int, float))
        if n_prefill_seqs is None:
            n_prefill_seqs = (T > 0) * 1.0 if scalar else (np.asarray(T) > 0).astype(float)
        n_pf = n_prefill_seqs

        # the verify's k + 1 tokens a sequence stay in that sequence's micro-batch: the split is over the D +
        # prompts sequences, as `estimate.speculative_full_s`, and each micro-batch drafts its D / m
        m, m_pf = self._split(D + n_pf, lanes), self._split(n_pf, lanes)
        c, L = self._c, self._L
        draft, excess, extend = self._draft_terms(T, A, D, K, n_pf, m, scalar)
        full = self._time_ms(T, A, D * (k + 1.0), K, n_pf, m) + 1e3 * (draft - excess + extend)  # V + prompts' rows
        if scalar and D > 0:
            return full if T > 0 else full / spec.expected_tokens
        # the prompt work alone (no decodes) and its draft extend
        pre = (self._time_ms(T, A, 0.0 * D, 0.0 * K, n_pf, lanes)
               + 1e3 * speculative_mod.draft_extend_s(c, L, T / m_pf, A / m_pf, n_pf / m_pf, scalar))
        if scalar:
            return pre
        return np.where(np.asarray(D) > 0, np.where(np.asarray(T) > 0, full, full / spec.expected_tokens), pre)

    def _draft_terms(self, T: Any, A: Any, D: Any, K: Any, n_pf: Any, m: Any, scalar: bool) -> tuple[Any, Any, Any]:
        """The draft layer's terms of ONE speculative iteration (T prompt tokens, A pairs, `n_pf` finishing prompts,
        D decodes reading K) split over `m` micro-batches, seconds each: (the k draft forwards,
        `speculative.draft_s`; the host time per extra verify token taken back, `speculative.host_excess_s`; the
        draft layer's prefill of the prompts, `speculative.draft_extend_s`, 0 without prompt tokens). `time_ms` and
        `breakdown` price them here, once."""
        spec, c, L = self.speculative, self._c, self._L
        assert spec is not None
        return (spec.draft_tokens * speculative_mod.draft_s(c, L, D / m, K / m, scalar),
                speculative_mod.host_excess_s(c, spec, D) / m,
                speculative_mod.draft_extend_s(c, L, T / m, A / m, n_pf / m, scalar))

    def _split(self, n: Any, lanes: Any = None) -> Any:
        """`estimate.micro_batches` of this pipeline for `n` sequences, at most `lanes` batches in flight (None: no
        cap); 1.0 where pp == 1, as `estimate._split`."""
        return 1.0 if self.pp == 1 else micro_batches(self.pp, n, lanes)

    def _time_ms(self, n_prefill_tokens: Any, prefill_attn_pairs: Any, n_decode_seqs: Any, decode_kv_tokens: Any,
                 n_prefill_seqs: Any = None, lanes: Any = None) -> Any:
        """`time_ms` without speculative decoding: one token a decode (n_prefill_seqs: the logit rows beside)."""
        T, A, D, K = n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens
        if n_prefill_seqs is None:
            n_prefill_seqs = (T > 0) * 1.0 if not isinstance(T, np.ndarray) else (T > 0).astype(float)
        S = D + n_prefill_seqs
        num = (int, float)
        scalar = (isinstance(T, num) and isinstance(A, num) and isinstance(D, num) and isinstance(K, num)
                  and isinstance(n_prefill_seqs, num))
        # with pp stages the work rotates through min(pp, sequences) micro-batches, but a prompt chunk lives in one
        # micro-batch: the iteration that finishes it lasts at least that chunk's pass through every stage
        if scalar:
            if self.pp == 1:
                return 1e3 * forward_s(self._c, T, A, D, K, S, max, pow)
            m = micro_batches(self.pp, S, lanes)
            t = forward_s(self._c, T / m, A / m, D / m, K / m, S / m, max, pow)
            # `estimate.chunk_pass_s`, scalar: the chunk's micro-batch with its share of the decodes, `chunk_work`
            # written out (calling it cost this call ~8 %; test_closed_terms pins the copy)
            if T > 0:
                n = max(n_prefill_seqs, 1.0)
                t = max(t, forward_s(self._c, T / n, A / n, D / m, K / m, D / m + 1.0, max, pow))
            return 1e3 * t
        T, A, D, K, S = (np.asarray(x, dtype=float) for x in (T, A, D, K, S))
        if self.pp == 1:
            return 1e3 * forward_s(self._c, T, A, D, K, S)
        m = micro_batches(self.pp, S, lanes)
        t_pp: np.ndarray = _replica_time_s(self._p, T, A, D, K, S, m)   # one token a decode (specfix: no spec twice)
        n_pf = np.maximum(np.asarray(n_prefill_seqs, dtype=float), 1.0)
        return 1e3 * np.where(T > 0, chunk_pass_s(self._p, t_pp, T / n_pf, A / n_pf, D, K, m), t_pp)

    def breakdown(self, n_prefill_tokens: float, prefill_attn_pairs: float, n_decode_seqs: float,
                  decode_kv_tokens: float, n_prefill_seqs: float | None = None) -> dict[str, float]:
        """`time_ms` of ONE iteration (same arguments, scalars) split by component (`breakdown.COMPONENTS`, then
        `breakdown.SPEC_TERMS`), ms each; the values sum to `time_ms` of the same work. With pp > 1 the iteration's
        micro-batch split, or the prompt chunk's own pass through every stage where that takes longer, as
        `time_ms` prices it. Builds the parts on each call (milliseconds): meant to explain an iteration, not for
        the simulator's loop. With `speculative`, in token time as `time_ms`: the verify forward in the kernel
        components (less the host time per extra token), the k draft forwards in ``draft`` and the draft layer's
        prefill of the prompt tokens in ``draft_prefill`` (`_draft_terms`, as `served_breakdown` splits them), the
        decode work over E; both 0 without it."""
        args = (n_prefill_tokens, prefill_attn_pairs, n_decode_seqs, decode_kv_tokens, n_prefill_seqs)
        if any(isinstance(x, (list, tuple, np.ndarray)) for x in args):
            raise TypeError(f"StepModel.breakdown takes scalars (one iteration), got {args!r:.120}")
        T, A, D, K = (float(x) for x in args[:4])
        n_pf = (1.0 if T > 0 else 0.0) if n_prefill_seqs is None else float(n_prefill_seqs)
        spec = self.speculative
        if spec is None or (D <= 0 and T <= 0):
            return {**self._breakdown(T, A, D, K, n_pf), "draft": 0.0, "draft_prefill": 0.0}
        # as `time_ms` prices it: the split over the D + prompts sequences; a decode-only iteration 1 / E of a
        # speculative one, one with prompt tokens all of it, the prompt's draft extend beside
        prep = self._prepared_parts()      # one preparation for every forward split below
        if D <= 0:
            out = self._breakdown(T, A, 0.0, 0.0, n_pf, prep=prep)
            extend = self._draft_terms(T, A, 0.0, 0.0, n_pf, self._split(n_pf), True)[2]
            return {**out, "draft": 0.0, "draft_prefill": 1e3 * float(extend)}
        m = self._split(D + n_pf)
        draft, excess, extend = self._draft_terms(T, A, D, K, n_pf, m, True)
        full = self._breakdown(T, A, D * (spec.draft_tokens + 1.0), K, n_pf, m, prep)
        full["host_seq"] -= 1e3 * float(excess)
        full.update(draft=1e3 * float(draft), draft_prefill=1e3 * float(extend))
        if T > 0:
            return full
        return {n: v / spec.expected_tokens for n, v in full.items()}

    def _prepared_parts(self) -> tuple[Any, dict[str, Any]]:
        """This model prepared again with the per-component terms `breakdown.forward_parts` reads (`collect`)."""
        collect: dict[str, Any] = {}
        p = prepare(**self._args, collect=collect)
        assert p is not None
        if p.coeffs.curves is not None:
            collect["curves"] = {k: collect[k] for k in ("tok", "ctx_lin", "gen_lin")}
        return p, collect

    def _breakdown(self, T: float, A: float, D: float, K: float, n_pf: float, m: float | None = None,
                   prep: tuple[Any, dict[str, Any]] | None = None) -> dict[str, float]:
        """`breakdown` with one token a decode (`m`: the pipeline's micro-batches, None: min(pp, sequences);
        `prep`: `_prepared_parts`' result where the caller has it)."""
        from .breakdown import COMPONENTS, forward_parts

        p, collect = self._prepared_parts() if prep is None else prep
        S = D + n_pf
        if m is None:
            m = micro_batches(self.pp, S)
        parts = forward_parts(p.coeffs, collect, T / m, A / m, D / m, K / m, S / m)
        if self.pp > 1 and T > 0:   # `time_ms`: the chunk's micro-batch passing every stage, where longer
            n = max(n_pf, 1.0)
            lone = chunk_work(p, T / n, A / n, D, K, m)
            if forward_s(self._c, *lone, max, pow) > forward_s(self._c, T / m, A / m, D / m, K / m, S / m, max, pow):
                parts = forward_parts(p.coeffs, collect, *lone)
        return {name: 1e3 * float(parts[name]) for name in COMPONENTS}

    def utilization(self, n_prefill_tokens: Any, prefill_attn_pairs: Any, n_decode_seqs: Any,
                    decode_kv_tokens: Any) -> Any:
        """Fraction of an iteration the GPUs spend in kernels (for the power model); with `speculative`, of the
        iteration in token time (`_speculative_terms`)."""
        T, A, D, K = (np.asarray(x, dtype=float) for x in (n_prefill_tokens, prefill_attn_pairs, n_decode_seqs,
                                                             decode_kv_tokens))
        S = D + (T > 0)
        if self.speculative is not None:
            t, idle, _ = self._speculative_terms(T, A, D, K)
            u = (t - idle) / t
        else:
            u = busy_s(self._c, T, A, D, K, S) / forward_s(self._c, T, A, D, K, S)
        return float(u) if u.ndim == 0 else u

    def _speculative_terms(self, T: np.ndarray, A: np.ndarray, D: np.ndarray, K: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seconds, seconds the GPU waits, seconds its tensor cores are saturated) of one iteration with
        speculative decoding in token time (one forward, no pipeline split, as `utilization` prices it): the
        prompt work in full, the speculative iteration's decode work (verify of k + 1 tokens a sequence, k drafts,
        `estimate.speculative_step_s`' parts) over E."""
        spec, c = self.speculative, self._c
        assert spec is not None
        k, L = spec.draft_tokens, self._L
        n_pf = (T > 0).astype(float)
        V = D * (k + 1.0)
        full = (forward_s(c, T, A, V, K, V + n_pf) - speculative_mod.host_excess_s(c, spec, D)
                + k * speculative_mod.draft_s(c, L, D, K))
        idle_full = idle_s(c, D, D + n_pf) + k * c.comm_fixed_s / L
        comp_full = power.compute_s(c, T, A, V, K, V + n_pf) + k * power.compute_s(c, 0.0, 0.0, D, K, D) / L
        has = T > 0
        pre = np.where(has, forward_s(c, T, A, 0.0, 0.0, n_pf), 0.0)
        idle_pre = np.where(has, idle_s(c, 0.0, n_pf), 0.0)
        comp_pre = np.where(has, power.compute_s(c, T, A, 0.0, 0.0, n_pf), 0.0)
        E, on = spec.expected_tokens, D > 0

        def tok(p: Any, f: Any) -> np.ndarray:
            return np.asarray(np.where(on, p + (f - p) / E, p), dtype=float)
        return tok(pre, full), tok(idle_pre, idle_full), tok(comp_pre, comp_full)

    def compute_fraction(self, n_prefill_tokens: Any, prefill_attn_pairs: Any, n_decode_seqs: Any,
                         decode_kv_tokens: Any) -> Any:
        """Fraction of an iteration the tensor cores spend saturated (`power.compute_s` / iteration time): near
        the utilization for prefill-heavy iterations, near 0 for memory-bound decode (for the power model)."""
        T, A, D, K = (np.asarray(x, dtype=float) for x in (n_prefill_tokens, prefill_attn_pairs, n_decode_seqs,
                                                             decode_kv_tokens))
        S = D + (T > 0)
        if self.speculative is not None:
            t, _, comp = self._speculative_terms(T, A, D, K)
            c = np.clip(comp / t, 0.0, 1.0)
            return float(c) if c.ndim == 0 else c
        # a measured profile's forward can beat the closed-form GEMM rate that compute_s counts at
        c = np.clip(power.compute_s(self._c, T, A, D, K, S) / forward_s(self._c, T, A, D, K, S), 0.0, 1.0)
        return float(c) if c.ndim == 0 else c

    def power_w(self, utilization: Any, compute_fraction: Any = None) -> Any:
        """Power of the whole replica (W): n_gpus x `power.power_w` (idle + (TDP - idle) x (m u + (k - m) c)) at
        kernel utilization u in [0, 1] and compute fraction c (`compute_fraction`; None: c = u, all kernels
        compute-bound, the upper end)."""
        return self.n_gpus * power.power_w(self._idle, self._tdp, utilization, compute_fraction)

    def __repr__(self) -> str:
        return (f"StepModel({self.model_name!r}, {self.gpu_name!r}, tp={self.tp}, pp={self.pp}, "
                f"kv_capacity_tokens={self.kv_capacity_tokens})")
