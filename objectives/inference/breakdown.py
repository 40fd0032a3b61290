"""Where a step's time goes: `estimate`'s prompt forward and mean decode step split by component.

    from objectives import inference
    inference.breakdown("Qwen3-30B-A3B", "H200", tp=2, batch_size=64, input_len=2048, output_len=256)

One row per configuration (as `estimate` returns them, same arguments and broadcasting) and phase ("prefill": the
forward that processes the prompts, `ttft_ms`; "decode": the mean decode step, `tpot_ms`), one column per component
(`COMPONENTS`, ms per forward), `total_ms` their sum (equal to `estimate`'s ttft_ms / tpot_ms), and the
configuration's columns from `estimate`.

The parts come from the same coefficients `estimate` sums, built only when asked (`prepare(collect=...)`); the hot
path never builds them. Closed-form rows (roofline) are split term by term (`ops.forward_s`). Measured-profile rows
read curves that sum several kernel tables before a monotone envelope and log-log interpolation
(`measured.build_curves`): each curve's total is the one `estimate` reads, split by the shares its parts had on the
two grid cells around the lookup (linear between them), so the parts sum to the total exactly and a table's
change moves its own component.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from . import speculative as spec_mod
from .core import prepare
from .estimate import _knob_rows, _split, _token_time, _with_profile, busy_ranks, chunk_work, estimate, micro_batches
from .lockstep import AdpBalance
from .measured import (
    TOK_PARTS,
    context_points,
    context_s,
    curve_at,
    generation_s,
    share_at,
    share_grid_at,
)
from .ops import StepCoeffs, experts_s, forward_s, linears_s, lm_head_s, sparse_prefill_pairs
from .resolve import positive

Num = Any

#: the components of a forward, ms each in `breakdown`'s table:
#: gemm: dense linears (attention, linear-attention and latent-MoE projections, dense MLPs, shared experts, routers
#: in the closed form); moe: the routed experts (fused-MoE table or grouped GEMMs); attention_prefill /
#: attention_decode: softmax attention of the prompts / of the decoding sequences over their cache (MLA, sparse and
#: windowed variants, DeepSeek-V4's modules); linear_attention: GDN / KDA / Mamba-2 recurrences and state traffic;
#: comm_tp: tensor-parallel all-reduces; comm_ep: expert-parallel token exchange (all-to-all, DeepEP, all-gather +
#: reduce-scatter under attention DP); comm_pp: pipeline sends; lm_head: the LM head GEMM; elementwise: norms,
#: residuals and activations streamed per token (and DeepSeek-V4's mHC, Kimi-K3's attention residuals);
#: per_layer: fixed time per layer and forward (launches, small kernels no table holds); host_step: the engine's
#: fixed host time per forward; host_seq: its host time per sequence in the forward
COMPONENTS = ("gemm", "moe", "attention_prefill", "attention_decode", "linear_attention", "comm_tp", "comm_ep",
              "comm_pp", "lm_head", "elementwise", "per_layer", "host_step", "host_seq")
PHASES = ("prefill", "decode")
#: speculative decoding (`estimate`'s and `max_throughput`'s ``speculative``, `inference.speculative`): draft: the k
#: draft forwards of a decode iteration (`speculative.draft_s`); draft_prefill: the draft layer's prefill of the
#: prompts an iteration carries (`speculative.draft_extend_s`). On those rows the kernel components (`COMPONENTS`)
#: are the verify's: the target's forward over k + 1 tokens a decode; every iteration in token time, as `estimate`
#: and `max_throughput` price it (`estimate.speculative_time_s`); zero elsewhere. `breakdown`, `served_breakdown`
#: and `StepModel.breakdown` hold them beside the components
SPEC_TERMS = ("draft", "draft_prefill")
#: the components a forward's parts hold in the breakdowns: the kernels' and the draft layer's
_FORWARD = COMPONENTS + SPEC_TERMS

#: the per-token, fixed and per-sequence coefficients' parts that are not attention
_TOK_S = ("elementwise", "linear_attention", "comm_tp", "comm_ep", "comm_pp")


def forward_parts(c: StepCoeffs, parts: dict[str, Any], T: Num, A: Num, D: Num, K: Num, S: Num
                  ) -> dict[str, np.ndarray]:
    """`ops.forward_s` (s) of T prompt tokens (A causal pairs) and D decodes reading K cached tokens, S logit rows,
    by component (`COMPONENTS`); `parts`: what `prepare(collect=)` filled for `c`. Keep in step with `forward_s`
    and `ops._forward_measured`: the components sum to them (tests/objectives/inference/test_breakdown.py)."""
    T, A, D, K, S = (np.asarray(x, dtype=float) for x in (T, A, D, K, S))
    M = T + D
    out = {name: np.zeros(np.broadcast_shapes(M.shape, S.shape)) for name in COMPONENTS}

    def add(name: str, x: Num) -> None:
        out[name] = out[name] + x
    # the coefficients both paths share: per token (DeepSeek-V4's bounded attention by phase), per forward, per
    # sequence
    for name in _TOK_S:
        add(name, M * parts["tok_s"][name])
    for name, v in parts["fixed_s"].items():
        add(name, v)
    for name, v in parts["seq_s"].items():
        add(name, (D + S) * v)
    for name, v in parts["dec_s"].items():
        add(name, D * v)
    cv = c.curves
    closed = _closed_parts(c, parts, T, A, D, K, S)
    if cv is None:
        return {name: out[name] + closed.get(name, 0.0) for name in COMPONENTS}
    measured: dict[str, Num] = {}
    tok = curve_at(cv.tok, M, cv.rows)
    for name in TOK_PARTS:
        measured[name] = tok * share_at(parts["curves"]["tok"][name], M, cv.rows)
    measured["lm_head"] = curve_at(cv.head, S, cv.rows)
    ctx = context_s(cv, T, A) if np.any(A > 0) else 0.0
    b, s = context_points(T, A)
    lin_c = ctx * share_grid_at(parts["curves"]["ctx_lin"], b, s, cv.rows) if np.any(A > 0) else 0.0
    gen = generation_s(cv, D, K) if np.any(K > 0) else 0.0
    lin_g = (gen * share_grid_at(parts["curves"]["gen_lin"], D, K / np.maximum(D, 1e-30), cv.rows)
             if np.any(K > 0) else 0.0)
    measured["attention_prefill"] = ctx - lin_c
    measured["attention_decode"] = gen - lin_g
    measured["linear_attention"] = lin_c + lin_g
    rows = cv.closed_rows()
    for name in COMPONENTS:
        m, cl = measured.get(name, 0.0), closed.get(name, 0.0)
        out[name] = out[name] + (m if rows is None else np.where(rows, cl, m))
    return out


def _closed_parts(c: StepCoeffs, parts: dict[str, Any], T: np.ndarray, A: np.ndarray, D: np.ndarray,
                  K: np.ndarray, S: np.ndarray) -> dict[str, Num]:
    """The closed form's terms of `ops.forward_s` (s) that a measured profile replaces: GEMMs, experts,
    attention (DeepSeek-V4's bounded spans per token included), the LM head."""
    M = T + D
    v4 = parts["tok_s"]["attention"]
    span = c.sparse_span
    return {
        "gemm": linears_s(c, M),
        "moe": np.where(np.asarray(c.n_experts) > 0, experts_s(c, M), 0.0),
        "attention_prefill": (A * c.attn_s_pair + sparse_prefill_pairs(c, T, A) * c.sparse_s_pair + T * v4),
        "attention_decode": K * c.dec_kv_s + np.minimum(K, D * span) * c.sparse_dec_s + D * v4,
        "lm_head": lm_head_s(c, S),
    }


def breakdown(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None, act_dtype: Any = None,
              kv_dtype: Any = None, batch_size: Any = 1, input_len: Any = 1024, output_len: Any = 128,
              **kwargs: Any) -> pd.DataFrame:
    """`estimate`'s prompt forward (ttft_ms) and mean decode step (tpot_ms) split by component, in ms.

    Arguments: `estimate`'s (every one of them, broadcast the same way; `interval` is not taken), and the same
    errors for bad ones. Returns one row per configuration and phase, configuration-major in `estimate`'s row
    order: ``row`` (`estimate`'s row number), ``phase`` ("prefill", "decode"), one column per `COMPONENTS` entry
    then per `SPEC_TERMS` entry (ms per forward), ``total_ms`` (their sum: `estimate`'s ttft_ms for prefill,
    tpot_ms for decode), then `estimate`'s configuration columns (model, gpu, tp, ..., engine, source, fits,
    reason, batch_size, input_len, output_len). The prefill forward runs every prompt of the batch at once; with
    pp > 1 a phase's components are one micro-batch's forward through every stage times the pipeline's fill
    factor, as `estimate` prices it. With ``speculative`` (as `estimate`'s), as `estimate` prices it: the prefill
    forward beside the draft layer's prefill of the prompts (``draft_prefill``), the decode step in token time
    (the verify's forward over k + 1 tokens a sequence in the kernel components, the k draft forwards in
    ``draft``, over E = `Speculative.expected_tokens`); `SPEC_TERMS` are 0 without it.
    The parts are built per configuration as they broadcast (not factorized): meant to explain configurations,
    not to sweep millions (use `estimate` for that)."""
    if "interval" in kwargs:
        raise TypeError("breakdown() takes no interval= (a band has no components); call estimate() for bands")
    df = estimate(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, batch_size, input_len, output_len, **kwargs)
    config = [k for k in df.columns if k not in ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s",
                                                  "throughput_tok_s_per_gpu", "mem_per_gpu_gib", "usd_per_mtok",
                                                  "joules_per_tok", "weights_gib", "kv_cache_gib")]
    if not len(df):
        cols: dict[str, Any] = {"row": np.empty(0, dtype=np.int64), "phase": pd.Categorical([], categories=PHASES)}
        cols.update({name: np.empty(0) for name in _FORWARD})
        cols["total_ms"] = np.empty(0)
        return pd.concat([pd.DataFrame(cols), df[config].iloc[:0].reset_index(drop=True)], axis=1)
    kw = dict(kwargs)
    efficiency = _with_profile(kw.pop("efficiency", None), kw.pop("profile", None))
    B, isl, osl = (np.asarray(positive(k, v), dtype=float) for k, v in
                   (("batch_size", batch_size), ("input_len", input_len), ("output_len", output_len)))
    # the rows as `estimate` lays them out (its max_num_tokens sizes activations only: the memory, not the times)
    rows: dict[str, Any] = dict(batch_size=B, input_len=isl, output_len=osl)
    mnt = kw.pop("max_num_tokens", None)
    if mnt is not None:
        rows["max_num_tokens"] = positive("max_num_tokens", mnt)
    spec = spec_mod.as_speculative(kw.pop("speculative", None))   # checked by estimate above
    collect: dict[str, Any] = {}
    p = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, kw.pop("dp", 1), kw.pop("ep", 1), efficiency,
                kw.pop("prices", None), rows=rows,
                engine_profile=kw.pop("engine_profile", "standard"), engine=kw.pop("engine", None),
                attn_dp=kw.pop("attn_dp", 1), moe_dp=kw.pop("moe_dp", None), eplb=kw.pop("eplb", False),
                moe_act_dtype=kw.pop("moe_act_dtype", None), moe_a2a=kw.pop("moe_a2a", None), collect=collect)
    assert p is not None  # estimate returned rows
    if p.coeffs.curves is not None:
        collect["curves"] = {k: collect[k] for k in ("tok", "ctx_lin", "gen_lin")}
    p = spec_mod.with_speculative(p, spec)
    shape = p.row_shape
    # estimate's two forwards (`_estimate_rows`), each split into pipeline micro-batches as `replica_time_s` does;
    # with speculative decoding as `_speculative_rows` prices them (the prompt's draft extend outside the fill)
    pp_ = np.asarray(p.pp, dtype=float)
    m = micro_batches(pp_, B)
    fill = (m + pp_ - 1.0) / pp_
    Tp, Ap, Kd = B * isl, B * isl * (isl + 1.0) * 0.5, B * (isl + 0.5 * osl)
    if spec is None:
        zero = np.zeros(())
        prompt = {**forward_parts(p.coeffs, collect, Tp / m, Ap / m, 0.0, 0.0, B / m), "draft_prefill": zero}
        decode = {**forward_parts(p.coeffs, collect, 0.0, 0.0, B / m, Kd / m, B / m), "draft_prefill": zero}
        prompt["draft"] = decode["draft"] = zero
    else:
        prompt = _speculative_parts(p, collect, (Tp, Ap, 0.0, 0.0, B), B, False)
        decode = _speculative_parts(p, collect, (0.0, 0.0, B, Kd, B), B, False)
    n = len(df)
    out: dict[str, Any] = {"row": np.repeat(np.arange(n, dtype=np.int64), 2),
                           "phase": pd.Categorical.from_codes(np.tile([0, 1], n), categories=PHASES)}

    def rows_of(x: Any) -> np.ndarray:
        return np.broadcast_to(x, shape).ravel() if shape else np.ravel(x)
    for name in _FORWARD:
        f = fill if name in COMPONENTS else 1.0
        out[name] = np.column_stack([rows_of(prompt[name] * f * 1e3), rows_of(decode[name] * 1e3)]).ravel()
    out["total_ms"] = np.sum([out[name] for name in _FORWARD], axis=0)
    cfg = df[config].iloc[np.repeat(np.arange(n), 2)].reset_index(drop=True)
    return pd.concat([pd.DataFrame(out), cfg], axis=1)


__all__ = ["breakdown", "forward_parts", "COMPONENTS", "PHASES", "SPEC_TERMS"]


# ---------------------------------------------------------------------------------------------------------------
# The served steady state: `max_throughput`'s iterations
# ---------------------------------------------------------------------------------------------------------------

#: the phases of `served_breakdown`: prefill_iteration / decode_step: ms per iteration of each kind;
#: ttft: ms per request; tpot: ms per output token
SERVED_PHASES = ("prefill_iteration", "decode_step", "ttft", "tpot")
#: the TTFT's own terms beside the kernels': startup_wave: what the closed-loop run's start-up wave adds to the
#: mean TTFT beyond the steady state's prompt wait (measured-profile rows, `estimate._run_ttft_s`); front_end: the
#: engine's host time before it schedules a request (`engine_ttft_ms`), the model's own (`attn_ttft_ms`) and the
#: running streams' that its first token waits behind (`engine_stream_us`: `estimate.host_ttft_s`);
#: queue: the wait for a free slot when more clients than slots (`concurrency`; less the front end's host time, which
#: a client spends outside the queue: `estimate.queue_waits`; with SGLang's retraction churn the
#: first of its stints), and behind vLLM's preempted requests (SGLang's retracted ones) where a wave overflows the
#: cache (`admission.overflow_wait`, `admission.retraction_wait`)
TTFT_TERMS = ("startup_wave", "front_end", "queue")
#: SGLang's retraction churn and vLLM's preemption churn where the cache bounds the batch below the clients
#: (`estimate.retraction_churn`):
#: recompute: the retracted requests' prompts and outputs so far prefilled again, their share of the request cycle
#: (in the TPOT; in the TTFT the half mean iteration a prompt waits for on measured rows); requeue: a retracted
#: request's later stints in the queue and its prompt wait again, per output token (TPOT only)
CHURN_TERMS = ("recompute", "requeue")
#: attention-DP ranks in lockstep (`estimate.lockstep_wait_s`): rank_wait: what a rank waits for the other ranks'
#: prompt chunks, per prefill iteration of its own (and its share of the tpot; in the ttft the half mean iteration a
#: prompt waits for on measured rows); balance_hold: with TensorRT-LLM's attention-DP balance (``adp_balance``), what
#: the balance adds to a prompt's wait: its hold and release less the prompt wait priced without it (ttft only,
#: `estimate.balance_hold_s`)
LOCKSTEP_TERMS = ("rank_wait", "balance_hold")
SERVED_COMPONENTS = COMPONENTS + TTFT_TERMS + CHURN_TERMS + LOCKSTEP_TERMS + SPEC_TERMS


def _replica_parts(p: Any, collect: dict[str, Any], w: tuple[Num, Num, Num, Num, Num], n: Num,
                   whole: bool = False) -> dict[str, np.ndarray]:
    """`estimate.replica_time_s` (s) of work w = (T, A, D, K, S) over `n` sequences, without the prefill's fill
    factor (the steady state rotates its micro-batches), by component (`_FORWARD`); with speculative decoding
    (``p.spec``) as `estimate.speculative_time_s` prices it, `whole` as there (`_speculative_parts`)."""
    if p.spec is not None:
        return _speculative_parts(p, collect, w, n, whole)
    m = micro_batches(p.pp, n)
    parts = forward_parts(p.coeffs, collect, *(np.asarray(x, dtype=float) / m for x in w))
    zero = np.zeros(())
    return {**parts, **{k: zero for k in SPEC_TERMS}}


def _speculative_parts(p: Any, collect: dict[str, Any], w: tuple[Num, Num, Num, Num, Num], n: Num, whole: bool
                       ) -> dict[str, np.ndarray]:
    """`estimate.speculative_time_s` (s) of work w = (T, A, D, K, S) over `n` sequences by component (keep in step
    with it and `estimate.speculative_full_s`): the verify forward (the D decodes at k + 1 tokens and logit rows
    each, less the host time per extra token, `speculative.host_excess_s`) in the kernel components, the k draft
    forwards in ``draft``, the draft layer's prefill of the prompts in ``draft_prefill``; the prompt work in full
    and the rest over E = `Speculative.expected_tokens` (`whole`: an iteration carrying prompt tokens counts
    whole), the prompt work alone where there are no decodes."""
    spec, c = p.spec, p.coeffs
    T, A, D, K, S = (np.asarray(x, dtype=float) for x in w)
    k, L = spec.draft_tokens, p.shape.n_layers
    V = spec_mod.verify_rows(spec, D)
    m, m_pf = _split(p, n), _split(p, S - D)
    full = forward_parts(c, collect, T / m, A / m, V / m, K / m, (S + V - D) / m)
    full["host_seq"] = full["host_seq"] - spec_mod.host_excess_s(c, spec, D) / m
    full["draft"] = k * spec_mod.draft_s(c, L, D / m, K / m)
    full["draft_prefill"] = spec_mod.draft_extend_s(c, L, T / m, A / m, (S - D) / m)
    has_t = T > 0
    pre = forward_parts(c, collect, T / m_pf, A / m_pf, 0.0 * D, 0.0 * K, (S - D) / m_pf)
    pre["draft"] = np.zeros(())
    pre["draft_prefill"] = spec_mod.draft_extend_s(c, L, T / m_pf, A / m_pf, (S - D) / m_pf)
    return {name: _token_time(p, T, D, full[name], np.where(has_t, pre[name], 0.0), whole) for name in _FORWARD}


def _chunk_parts(p: Any, collect: dict[str, Any], t: Num, parts: dict[str, np.ndarray], T: Num, A: Num, D: Num,
                 K: Num, N: Num) -> dict[str, np.ndarray]:
    """`estimate.chunk_pass_s` by component: `parts` (an iteration of `t` s), or where pp > 1 and the prompt
    chunk's own micro-batch passing every stage takes longer, that pass's parts."""
    piped = np.asarray(p.pp) > 1
    if not np.any(piped):
        return parts
    lone_w = chunk_work(p, T, A, D, K, N)
    take = piped & (forward_s(p.coeffs, *lone_w) > t)
    lone = forward_parts(p.coeffs, collect, *lone_w)     # one token a decode, as `chunk_pass_s`: no draft
    return {k: np.where(take, lone.get(k, 0.0), v) for k, v in parts.items()}


def _scaled_sum(*terms: tuple[Num, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """sum of factor x parts, component by component (`_FORWARD`)."""
    return {k: sum(f * parts[k] for f, parts in terms) for k in _FORWARD}


def _served_columns(args: dict[str, Any], moe_dp: float | None, N: np.ndarray, isl: Num, osl: Num, mnt: Num,
                    conc: Num, ms: float | None, balance: AdpBalance | None = None, cached: Num = True,
                    solo: StepCoeffs | None = None, balance_on: Num = True, spec: Any = None
                    ) -> tuple[dict[str, np.ndarray], tuple[int, ...], StepCoeffs | None]:
    """`served_breakdown`'s columns (iterations, prompt_tokens, decode_seqs, `SERVED_COMPONENTS` in ms), flat in
    its row order (configuration-major, `SERVED_PHASES` within), of the configurations `prepare(**args, moe_dp=)`
    gives, at `max_throughput`'s batch in flight N (flat, one per row); their row shape; and the lone rank's
    coefficients of attention-DP ranks in lockstep (`Prepared.solo`, None where none steps so). `ms`: the engine's
    memory setting (None: its default), for where the cache bounds the batch (`estimate.served_batch`);
    `balance`: TensorRT-LLM's attention-DP balance (None: off) on the rows `balance_on` holds true (per row; True:
    every row); `cached` (per row): vLLM's prefix cache on (`estimate.retraction_churn`); `solo`: the lone rank's
    coefficients an earlier call prepared (prepared here where None and the ranks step in lockstep: `max_throughput`
    prepares them once for every busy-rank count); `spec`: speculative decoding (an `inference.Speculative`; None:
    off), attached as `max_throughput` attaches it (`speculative.with_speculative`)."""
    from .estimate import (
        _engine_budgets,
        arrival_decode_rows,
        arrival_iter_s,
        arrival_wait_iters,
        balance_hold_s,
        chunk_pass_s,
        cycle_held,
        cycle_split,
        decode_step_work,
        decode_window,
        group_prompt_work,
        host_ttft_s,
        lockstep_spill_s,
        lockstep_steady_terms,
        lockstep_wait_s,
        per_window_token,
        pipeline_budget,
        prefill_chunk,
        queue_waits,
        released_prompt_s,
        released_prompt_work,
        replica_time_s,
        retraction_churn,
        round_lag,
        round_prompt_work,
        run_prompt_work,
        saturated_share,
        served_batch,
        split_rows,
        split_work,
        steady_lanes,
        steady_work,
        steps_in_lockstep,
    )

    collect: dict[str, Any] = {}
    p = prepare(**args, moe_dp=moe_dp, collect=collect)
    assert p is not None  # max_throughput returned rows
    # budgets not given: each row's engine's own, as `max_throughput` takes them
    mbs, mnt = _engine_budgets(p, args["rows"].get("max_batch_size"), mnt)
    if solo is None and steps_in_lockstep(p):
        # attention-DP ranks in lockstep (`estimate.rank_wait_s`): one rank's prompt chunk alone at the experts
        one = prepare(**args, moe_dp=1.0)
        assert one is not None  # the same arguments as `p`
        solo = one.coeffs
    if solo is not None:
        p = replace(p, solo=solo)
    p = spec_mod.with_speculative(p, spec)
    if p.coeffs.curves is not None:
        collect["curves"] = {k: collect[k] for k in ("tok", "ctx_lin", "gen_lin")}
    shape = p.row_shape
    c = p.coeffs
    N = N.reshape(shape)
    mnt_it = pipeline_budget(p, mnt)     # `estimate._max_throughput_rows` (keep in step): pp batches' budgets
    # `estimate.steady_state` (keep in step): the mean iteration, or the prefill iteration and the pure decode step
    n_it, T, A, D, K, S = steady_work(N, isl, osl, mnt_it, c.prefill_alone)
    split = split_rows(p)
    mean = _replica_parts(p, collect, (T, A, D, K, S), N)
    w_pf, w_dec, n_pf, n_dec = split_work(N, isl, osl, mnt_it, n_it, c.prefill_alone)
    L = steady_lanes(p, N, isl, osl, mnt_it, w_pf=w_pf)   # pp > 1: the batches in flight (`estimate.steady_state`)
    # `estimate.split_steps`: the prefill iteration is one iteration (`whole`), not a mean one
    t_pf = replica_time_s(p, w_pf[0], w_pf[1], w_pf[2], w_pf[3], w_pf[4], L, whole=True)
    pf = _chunk_parts(p, collect, t_pf, _replica_parts(p, collect, w_pf, L, True), *prefill_chunk(w_pf, isl, osl),
                      L)
    dec = _replica_parts(p, collect, w_dec, L)
    zero = np.zeros(())
    it_pf, it_dec = np.where(split, n_pf, n_it), np.where(split, n_dec, 0.0)
    pre = {k: np.where(split, pf[k], mean[k]) for k in _FORWARD}
    step = {k: np.where(split, dec[k], zero) for k in _FORWARD}
    # `estimate.steady_cycle` (keep in step): the cycle's iterations, and TPOT's decode window of them per output
    # token after the first: the cycle less the request's own prompt iterations (`estimate.decode_window`)
    cyc: dict[str, Any] = _scaled_sum((it_pf, pre), (it_dec, step))
    a_pf, a_dec, a_own = decode_window(c.prefill_alone, isl, osl, n_it, it_pf, w_pf[0])
    tpot: dict[str, Any] = _scaled_sum((a_pf, pre), (a_dec, step))
    # `estimate.steady_state`: attention-DP ranks in lockstep wait for each other's prompt chunks
    pre["rank_wait"] = zero
    steps = None      # `estimate.split_steps`' full prefill iteration and decode step without the ranks' wait
    spill: Any = zero
    if p.solo is not None:
        t_chunk = chunk_pass_s(p, t_pf, *prefill_chunk(w_pf, isl, osl), L)
        t_dec = replica_time_s(p, w_dec[0], w_dec[1], w_dec[2], w_dec[3], w_dec[4], L)
        steps = (t_chunk, t_dec)
        rank_wait = lockstep_wait_s(p, t_chunk, t_dec, w_pf, isl, osl, N, n_it, balance=balance, balance_on=balance_on)
        pre["rank_wait"] = np.where(split, rank_wait, 0.0)
        spill = lockstep_spill_s(p, t_chunk, w_pf, isl, osl, N, balance, balance_on)
    tpot["rank_wait"] = (a_pf + a_own) * pre["rank_wait"]     # the own iterations' waits stall its decodes
    cyc["rank_wait"] = it_pf * pre["rank_wait"]
    # `estimate._max_throughput_rows` (keep in step): SGLang's retraction (vLLM's preemption) churn adds its
    # prefills again to the cycle
    rows = args["rows"]
    kv = rows.get("kv_capacity_tokens")
    _, kv_bound, _, _, cap = served_batch(p, isl, osl, np.asarray(mbs, dtype=float), mnt, ms,
                                          None if kv is None else np.asarray(kv, dtype=float))
    per = None if conc is None else conc / (p.dp * p.attn_dp)      # clients per replica
    rho, redo_s, hold = retraction_churn(p, N, isl, osl, mnt, per, kv_bound, np.asarray(cached) > 0, cap=cap)
    cycle_s = sum(cyc.values()) + redo_s
    per_tok = per_window_token(osl, n_it)
    iter_s = cycle_s / n_it           # the mean iteration (s): cycle time / n_it
    # `estimate.gpu_ttft_s` (keep in step): measured rows, a run's steady wait and its start-up wave; with more
    # clients than slots the share `sat` of the prompts admitted as a slot frees (`estimate._max_throughput_rows`)
    front = host_ttft_s(p, N)
    tpot["recompute"] = redo_s * per_tok
    # `estimate.steady_split` (keep in step): the decode window's least (pure decode steps) and most (full prefill
    # iterations; where prefill batches run alone, the window above; the mean iteration on rows that do not split)
    # per output token after the first, by component
    windowed = np.asarray(osl) > 1
    alone = np.asarray(c.prefill_alone) > 0
    piped = np.asarray(p.pp) > 1
    lo_c = {k: np.where(piped, tpot[k], np.where(split, step[k], pre[k])) for k in _FORWARD}
    lo_c["rank_wait"] = np.where(piped, tpot["rank_wait"], a_own * pre["rank_wait"])
    mates = np.maximum(a_own - np.minimum(isl / w_pf[0], it_pf) * per_tok, 0.0)   # the own batch's other prompts
    hi_c = {k: np.where(alone, tpot[k] + mates * pre[k], pre[k]) for k in _FORWARD}
    hi_c["rank_wait"] = np.where(alone, tpot["rank_wait"] + mates * pre["rank_wait"], (1.0 + a_own) * pre["rank_wait"])
    hi_c["rank_wait"] = hi_c["rank_wait"] + a_own * spill     # `estimate.lockstep_spill_s`: the other ranks' chunks
    lo_c["recompute"] = hi_c["recompute"] = tpot["recompute"]
    bounds = (np.where(windowed, sum(lo_c.values()), 0.0), np.where(windowed, sum(hi_c.values()), 0.0))
    sat: Any = zero
    if per is not None:
        sat = saturated_share(N, per, front, sum(cycle_split(cycle_s, released_prompt_s(p, N, isl, osl, mnt_it),
                                                             osl, bounds, cycle_held(p))), p.pp)
    measured = np.asarray(p.source_code) > 0
    wait: dict[str, Any] = {k: zero for k in _FORWARD}
    wave_s: Any = zero
    if np.any(measured):
        _, _, ww, k_w, chw = run_prompt_work(N, isl, osl, mnt_it, c.prefill_alone)
        ws, k0, k_own, waits = round_prompt_work(N, isl, osl, mnt_it, c.prefill_alone, n_it,
                                                 *round_lag(p, N, isl, osl, mnt_it, L))
        # `estimate._run_ttft_s`: each of the prompt's iterations is one iteration (`whole`)
        t_s = replica_time_s(p, *ws, L, whole=True)
        own_parts = _replica_parts(p, collect, ws, L, True)
        own = _chunk_parts(p, collect, t_s, own_parts, *ws[:4], L)
        wait_it = arrival_wait_iters(p, N) - 0.5         # mean iterations beyond the window's (`round_prompt_work`)
        # `estimate.arrival_iter_s`: the mean iteration, or where prefill batches run alone a decode step
        mean_it = {k: v / np.maximum(n_it, 1e-300) for k, v in cyc.items()}
        at_dec = arrival_decode_rows(p)
        if np.any(at_dec):
            step_it = _replica_parts(p, collect, decode_step_work(N, isl, osl), L, True)
            mean_it = {k: np.where(at_dec, step_it.get(k, zero), v) for k, v in mean_it.items()}
        steady = _scaled_sum((k0, own), (k_own, own_parts),
                             *((k, _replica_parts(p, collect, w, L, True)) for w, k in waits), (wait_it, mean_it))
        steady["recompute"] = np.where(at_dec, 0.0, wait_it * redo_s / n_it)
        steady["rank_wait"] = wait_it * mean_it["rank_wait"]
        steady_s = (k0 * chunk_pass_s(p, t_s, *ws[:4], L) + k_own * t_s
                    + sum(k * replica_time_s(p, *w, L, whole=True) for w, k in waits)
                    + wait_it * arrival_iter_s(p, N, isl, osl, iter_s, L))
        if p.solo is not None:  # `estimate._run_ttft_s`: the lockstep round's own and window steps, split
            scale, k_dec, k_win, t_dec, excess, on = lockstep_steady_terms(p, N, isl, osl, mnt_it, ws, t_s, L, n_it)
            if np.any(on):
                queued = [(k, _replica_parts(p, collect, w, L, True)) for w, k in waits[1:]]
                dec_parts = _replica_parts(p, collect, decode_step_work(N, isl, osl), L, True)
                ls = _scaled_sum((k0 * scale, own), *queued, (k_dec, dec_parts))
                ls["recompute"] = zero
                ls["rank_wait"] = k_win * excess
                steady = {k: np.where(on, ls[k], v) for k, v in steady.items()}
                steady_s = np.where(on, k0 * chunk_pass_s(p, t_s, *ws[:4], L) * scale
                                    + sum(k * replica_time_s(p, *w, L, whole=True) for w, k in waits[1:])
                                    + k_dec * t_dec + k_win * excess, steady_s)
        t_w = replica_time_s(p, *ww, L, whole=True)
        wave = k_w * t_w + (chunk_pass_s(p, t_w, *chw, L) - t_w)
        if np.any(sat > 0):     # `estimate._run_ttft_s`: the released prompt's own iteration(s) in their share
            wr, k_r = released_prompt_work(N, isl, osl, mnt_it, c.prefill_alone)
            t_r = replica_time_s(p, *wr, L, whole=True)
            rel = _chunk_parts(p, collect, t_r, _replica_parts(p, collect, wr, L, True), *wr[:4], L)
            steady = {k: v + sat * ((k_r * rel[k] if k in rel else 0.0) - v) for k, v in steady.items()}
            steady_s = steady_s + sat * (k_r * chunk_pass_s(p, t_r, *wr[:4], L) - steady_s)
        wait = {k: np.where(measured, v, 0.0) for k, v in steady.items()}
        wave_s = np.where(measured, c.wave * np.maximum(wave - steady_s, 0.0), 0.0)
    if not np.all(measured):   # `estimate._group_ttft_s`: the closed form's group of prompts
        wg, chg, k = group_prompt_work(N, isl, osl, mnt_it, c.prefill_alone)
        own = _chunk_parts(p, collect, replica_time_s(p, *wg, L), _replica_parts(p, collect, wg, L), *chg, L)
        wait = {name: np.where(measured, wait.get(name, zero), k * own.get(name, zero))
                for name in (*_FORWARD, "recompute", "rank_wait")}
    ttft: dict[str, Any] = {**wait, "startup_wave": wave_s, "front_end": front}
    # `estimate._max_throughput_rows`: TensorRT-LLM's attention-DP balance holds the prompt back until its release
    ttft["balance_hold"] = balance_hold_s(p, N, isl, osl, mnt_it, n_it,
                                          sum(v for k, v in ttft.items() if k != "front_end"), None, balance,
                                          balance_on, steps)
    # `estimate._max_throughput_rows`: clients per replica beyond the N slots wait, with churn in 1 + rho stints
    # (vLLM's preempted requests at the front of the queue: `admission.front_stints`)
    # (the front end's host time holds no slot and is spent outside the queue: `estimate.queue_waits`)
    # `estimate.cycle_split` (keep in step): the TTFT and the window split the cycle; the cycle's work the window
    # cannot hold queues before the first token (by the cycle's components), the window between its bounds
    # (a closed loop of clients alone, the attention-DP balance's hold apart: `estimate._max_throughput_rows`)
    if per is not None:
        gpu_s = sum(v for k, v in ttft.items() if k not in ("front_end", "balance_hold"))
        gpu_new, window = cycle_split(cycle_s, gpu_s, osl, bounds, cycle_held(p))
        # the balance's hold beyond the split's queue, both from the prompt's arrival (`estimate`'s max)
        ttft["balance_hold"] = np.maximum(gpu_s + ttft["balance_hold"] - np.maximum(gpu_new, gpu_s), 0.0)
        # a TTFT held to the cycle less the least window keeps its own components, scaled; one that grows takes
        # the queued share of the cycle's
        keep = np.where(gpu_new < gpu_s, gpu_new / np.maximum(gpu_s, 1e-300), 1.0)
        share = np.maximum(gpu_new - gpu_s, 0.0) / np.maximum(cycle_s, 1e-300)
        for k in ttft:
            if k not in ("front_end", "balance_hold"):
                ttft[k] = keep * ttft[k]
        for k, v in cyc.items():
            ttft[k] = ttft[k] + share * v
        ttft["recompute"] = ttft["recompute"] + share * redo_s
        span = (bounds[1] - bounds[0]) * np.maximum(osl - 1.0, 0.0)
        mu = np.clip((window - bounds[0] * np.maximum(osl - 1.0, 0.0)) / np.where(span > 0, span, 1.0), 0.0, 1.0)
        tpot = {k: np.where(windowed, lo_c[k] + mu * (hi_c[k] - lo_c[k]), v) for k, v in tpot.items()}
    ttft["queue"], tpot["requeue"] = queue_waits(N, per, osl, sum(v for k, v in ttft.items() if k != "front_end"),
                                                 cycle_s, (osl - 1.0) * sum(tpot.values()), rho,
                                                 np.asarray(c.kv_preempt) > 0, front)
    ttft["queue"] = np.maximum(ttft["queue"], hold * cycle_s)     # behind a wave's overflow (`retraction_churn`)
    phases = (pre, step, ttft, tpot)
    nan = np.full(N.size, np.nan)
    flat = (lambda x: np.broadcast_to(np.asarray(x, dtype=float), shape).ravel() if shape
            else np.ravel(np.asarray(x, dtype=float)))
    out: dict[str, np.ndarray] = {}
    work = ((it_pf, it_dec, None, None), (np.where(split, w_pf[0], T), zero, None, None),
            (np.where(split, w_pf[2], D), np.where(split, w_dec[2], zero), None, None))
    for name, vals in zip(("iterations", "prompt_tokens", "decode_seqs"), work):
        out[name] = np.column_stack([nan if v is None else flat(v) for v in vals]).ravel()
    for name in SERVED_COMPONENTS:
        out[name] = np.column_stack([flat(ph.get(name, 0.0)) * 1e3 for ph in phases]).ravel()
    return out, shape, solo


def served_breakdown(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None,
                     act_dtype: Any = None, kv_dtype: Any = None, input_len: Any = 1024, output_len: Any = 128,
                     **kwargs: Any) -> pd.DataFrame:
    """`max_throughput`'s served steady state split by component, in ms.

    Arguments: `max_throughput`'s (every one, broadcast the same way, the same errors; no `interval`). Returns
    four rows per configuration, configuration-major in `max_throughput`'s row order: ``row``, ``phase``
    (`SERVED_PHASES`), ``iterations`` (iterations of that kind per request cycle of the N sequences in flight;
    NaN on the ttft / tpot rows), ``prompt_tokens`` and ``decode_seqs`` (the iteration's work; NaN on ttft / tpot),
    one column per `SERVED_COMPONENTS` entry, ``total_ms`` (their sum), then `max_throughput`'s configuration
    columns (batch_size is N).

    - prefill_iteration (ms per iteration): the iteration that carries a chunk of prompts (up to max_num_tokens
      tokens) beside the other sequences' decodes, as `estimate.steady_state` prices it (`split_work`; with pp > 1
      at least the chunk's own pass through every stage). Rows whose closed form prices one mean iteration
      (roofline, dense, pp = 1) show that mean iteration here, every iteration carrying a share of the prompts.
    - decode_step (ms per iteration): the pure decode step (zero, with 0 iterations, on the mean-iteration rows).
    - tpot (ms per output token after the first): the iterations of each kind in the request's decode window
      (its cycle less its own prompt's iterations, `estimate.decode_window`) x their parts / (output_len - 1),
      `max_throughput`'s tpot_ms.
    - ttft (ms per request): the prompt's wait in the steady state by component (`estimate.prefill_wait_s`), then
      its own terms (`TTFT_TERMS`): startup_wave, front_end, queue. Sums to `max_throughput`'s ttft_ms.
    - SGLang's retraction churn where its cache bounds the batch below the clients (`CHURN_TERMS`, zero
      elsewhere, `estimate.retraction_churn` and `estimate.queue_waits`, the functions `max_throughput` calls):
      recompute (the prefills again: their share of the cycle in the tpot, and on measured rows of the half mean
      iteration in the ttft) and requeue (tpot: the later stints in the queue and the prompt wait again); the
      queue is then the first of 1 + rho stints; `prefix_caching` as `max_throughput`'s (vLLM's preempted requests
      find their cached prefix, or prefill it all again).
    - attention-DP ranks of an MoE model in lockstep (`LOCKSTEP_TERMS`): rank_wait (the prefill iteration's wait
      for the other ranks' prompt chunks, `estimate.lockstep_wait_s`, and its share of the tpot and ttft) and, with
      `adp_balance` (as `max_throughput`'s, one value or one per row), balance_hold (ttft: the prompt's wait for
      the balance's release, `estimate.balance_hold_s`).
    - speculative decoding (`speculative`, as `max_throughput`'s; `SPEC_TERMS`): the draft / verify split of each
      iteration, in token time as `max_throughput` prices it: draft (the k draft forwards of a decode iteration),
      draft_prefill (the draft layer's prefill of the prompts it carries), the kernel components then the verify
      forward's (the target's over k + 1 tokens a decode).

    Meant to explain configurations (built as they broadcast, not factorized), not to sweep millions."""
    from .estimate import max_throughput
    if "interval" in kwargs:
        raise TypeError("served_breakdown() takes no interval= (a band has no components); call max_throughput() "
                        "for bands")
    df = max_throughput(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, input_len, output_len, **kwargs)
    metrics = ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "throughput_tok_s_per_gpu", "mem_per_gpu_gib",
               "usd_per_mtok", "joules_per_tok", "weights_gib", "kv_cache_gib")
    config = [k for k in df.columns if k not in metrics]
    extra = ("iterations", "prompt_tokens", "decode_seqs")
    nph = len(SERVED_PHASES)
    if not len(df):
        cols: dict[str, Any] = {"row": np.empty(0, dtype=np.int64),
                                "phase": pd.Categorical([], categories=SERVED_PHASES)}
        cols.update({name: np.empty(0) for name in (*extra, *SERVED_COMPONENTS, "total_ms")})
        return pd.concat([pd.DataFrame(cols), df[config].iloc[:0].reset_index(drop=True)], axis=1)
    kw = dict(kwargs)
    efficiency = _with_profile(kw.pop("efficiency", None), kw.pop("profile", None))
    isl, osl = (np.asarray(positive(k, v), dtype=float) for k, v in
                (("input_len", input_len), ("output_len", output_len)))
    # budgets as `max_throughput`'s: None, each row's engine's own (`_served_columns`)
    mnt_given, mbs_given = kw.pop("max_num_tokens", None), kw.pop("max_batch_size", None)
    mnt = None
    conc = kw.pop("concurrency", None)
    conc = None if conc is None else np.asarray(positive("concurrency", conc), dtype=float)
    rows: dict[str, Any] = dict(input_len=isl, output_len=osl)
    if mnt_given is not None:
        rows["max_num_tokens"] = mnt = np.asarray(positive("max_num_tokens", mnt_given), dtype=float)
    if mbs_given is not None:
        rows["max_batch_size"] = positive("max_batch_size", mbs_given)
    kv = kw.pop("kv_capacity_tokens", None)
    for name, v in (("concurrency", conc), ("kv_capacity_tokens", kv)):
        if v is not None:
            rows[name] = np.asarray(v)
    ms = kw.pop("gpu_memory_utilization", None)   # sizes N (read off max_throughput's batch_size) and the churn
    ms = None if ms is None else float(ms)
    dp, attn_dp = kw.pop("dp", 1), kw.pop("attn_dp", 1)
    # `estimate._max_throughput_eval`'s attention-DP balance and prefix cache, one value or one per row
    balance, on, cached = _knob_rows(rows, kw.pop("adp_balance", None), kw.pop("prefix_caching", True))
    spec = spec_mod.as_speculative(kw.pop("speculative", None))   # checked by max_throughput above
    args = dict(model=model, gpu=gpu, tp=tp, pp=pp, weight_dtype=weight_dtype, act_dtype=act_dtype,
                kv_dtype=kv_dtype, dp=dp, ep=kw.pop("ep", 1), eff=efficiency, prices=kw.pop("prices", None), rows=rows,
                engine_profile=kw.pop("engine_profile", "standard"), engine=kw.pop("engine", None), attn_dp=attn_dp,
                eplb=kw.pop("eplb", False), moe_act_dtype=kw.pop("moe_act_dtype", None),
                moe_a2a=kw.pop("moe_a2a", None))
    N = df["batch_size"].to_numpy(float)
    cols, shape, solo = _served_columns(args, None, N, isl, osl, mnt, conc, ms, balance, cached, None, on, spec)
    if conc is not None:
        # `estimate._max_throughput_eval` (keep in step): fewer clients than a replica's attention-DP ranks, only
        # the busy ranks' tokens reach the routed experts (`prepare`'s moe_dp), one preparation per busy count
        flat_busy = busy_ranks(conc, dp, attn_dp, shape)
        for v in np.unique(flat_busy[flat_busy > 0]):
            sub, _, _ = _served_columns(args, float(v), N, isl, osl, mnt, conc, ms, balance, cached, solo, on, spec)
            sel = np.repeat(flat_busy == v, nph)
            cols = {k: np.where(sel, sub[k], col) for k, col in cols.items()}
    n = len(df)
    out: dict[str, Any] = {"row": np.repeat(np.arange(n, dtype=np.int64), nph),
                           "phase": pd.Categorical.from_codes(np.tile(np.arange(nph), n), categories=SERVED_PHASES)}
    out.update(cols)
    out["total_ms"] = np.sum([out[name] for name in SERVED_COMPONENTS], axis=0)
    cfg = df[config].iloc[np.repeat(np.arange(n), nph)].reset_index(drop=True)
    return pd.concat([pd.DataFrame(out), cfg], axis=1)


#: one colour per component in `served_html`'s bars (the kernels' first, then the host's, the TTFT's own, the churn's)
_COLOURS = dict(zip(SERVED_COMPONENTS, (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac", "#6b4c9a", "#d37295", "#8cd17d", "#499894", "#fabfd2", "#79706e", "#b6992d", "#f1ce63", "#86bcb6",
    "#d4a6c8", "#a0cbe8", "#ffbe7d")))


def served_html(points: list[tuple[str, pd.DataFrame]]) -> str:
    """HTML (a fragment: inline styles, no script) showing `served_breakdown`'s four rows of each point: a stacked
    bar per iteration kind (prefill iteration, decode step; each bar's width is its share of the longest one) and
    a table of every component that is not zero, ms per phase. `points`: (label, that point's four rows) pairs;
    labels and values are escaped."""
    import html

    def esc(v: Any) -> str:
        return html.escape(str(v), quote=True)

    out = []
    for label, bd in points:
        rows = {ph: bd[bd["phase"] == ph].iloc[0] for ph in SERVED_PHASES}
        shown = [c for c in SERVED_COMPONENTS if any(float(r[c]) != 0.0 for r in rows.values())]
        r0 = rows["prefill_iteration"]
        out.append(f'<div class="dse-served" data-label="{esc(label)}"><h3>{esc(label)}: {esc(r0["model"])} on '
                   f'{esc(r0["gpu"])} tp={esc(r0["tp"])} pp={esc(r0["pp"])} ep={esc(r0["ep"])} '
                   f'attn_dp={esc(r0["attn_dp"])}, {esc(r0["engine"])} ({esc(r0["source"])}), '
                   f'{float(r0["batch_size"]):g} sequences in flight</h3>')
        out.append(f'<p class="sub">TTFT {float(rows["ttft"]["total_ms"]):.4g} ms, TPOT {float(rows["tpot"]["total_ms"]):.4g}'
                   f' ms; per request cycle {float(rows["prefill_iteration"]["iterations"]):.4g} prefill iterations '
                   f'of {float(rows["prefill_iteration"]["prompt_tokens"]):.4g} prompt tokens and '
                   f'{float(rows["decode_step"]["iterations"]):.4g} decode steps</p>')
        longest = max(float(rows[ph]["total_ms"]) for ph in ("prefill_iteration", "decode_step")) or 1.0
        for ph in ("prefill_iteration", "decode_step"):
            r = rows[ph]
            tot = float(r["total_ms"])
            segs = "".join(
                f'<span title="{esc(c)}: {float(r[c]):.3g} ms" data-component="{esc(c)}" style="display:inline-block;'
                f'height:18px;width:{100.0 * float(r[c]) / tot:.3f}%;background:{_COLOURS[c]}"></span>'
                for c in shown if tot > 0 and float(r[c]) > 0)
            out.append(f'<div style="margin:4px 0"><span style="display:inline-block;width:220px;text-align:left">'
                       f'{esc(ph.replace("_", " "))}: {tot:.4g} ms</span>'
                       f'<span class="dse-bar" data-phase="{esc(ph)}" style="display:inline-flex;vertical-align:middle;'
                       f'width:{max(60.0 * tot / longest, 0.5):.2f}%">{segs}</span></div>')
        head = "".join(f"<th>{esc(h)}</th>" for h in ("prefill iteration ms", "decode step ms", "TTFT ms", "TPOT ms"))
        body = "".join(
            f'<tr><td class="s"><span style="color:{_COLOURS[c]}">&#9632;</span> {esc(c)}</td>'
            + "".join(f"<td>{float(rows[ph][c]):.4g}</td>" for ph in SERVED_PHASES) + "</tr>" for c in shown)
        body += '<tr><th class="s">total</th>' + "".join(f"<th>{float(rows[ph]['total_ms']):.4g}</th>"
                                                         for ph in SERVED_PHASES) + "</tr>"
        out.append(f'<table class="dse-served-table"><thead><tr><th class="s">component</th>{head}</tr></thead>'
                   f"<tbody>{body}</tbody></table></div>")
    return "".join(out)


__all__ += ["served_breakdown", "served_html", "SERVED_PHASES", "SERVED_COMPONENTS", "TTFT_TERMS", "CHURN_TERMS"]
