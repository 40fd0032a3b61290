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

from typing import Any

import numpy as np
import pandas as pd

from .core import prepare
from .estimate import DEFAULT_MAX_NUM_TOKENS, _with_profile, estimate
from .measured import (
    TOK_PARTS,
    context_points,
    context_s,
    curve_at,
    generation_s,
    share_at,
    share_grid_at,
)
from .ops import StepCoeffs, sparse_prefill_pairs
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
    ne = np.asarray(c.n_experts, dtype=float)
    E = ne * (1.0 - np.power(1.0 - c.top_k / np.maximum(ne, 1.0), M))
    v4 = parts["tok_s"]["attention"]
    span = c.sparse_span
    return {
        "gemm": np.maximum(c.lin_s_tok * M + c.lin_s_half, c.lin_mem_s),
        "moe": np.where(ne > 0, np.maximum(c.exp_s_tok * M * c.top_k + c.exp_s_half * E, c.exp_mem_s * E), 0.0),
        "attention_prefill": (A * c.attn_s_pair + sparse_prefill_pairs(c, T, A) * c.sparse_s_pair + T * v4),
        "attention_decode": K * c.dec_kv_s + np.minimum(K, D * span) * c.sparse_dec_s + D * v4,
        "lm_head": np.maximum(c.head_s_row * S + c.head_s_half, c.head_mem_s),
    }


def breakdown(model: Any, gpu: Any, tp: Any = 1, pp: Any = 1, weight_dtype: Any = None, act_dtype: Any = None,
              kv_dtype: Any = None, batch_size: Any = 1, input_len: Any = 1024, output_len: Any = 128,
              **kwargs: Any) -> pd.DataFrame:
    """`estimate`'s prompt forward (ttft_ms) and mean decode step (tpot_ms) split by component, in ms.

    Arguments: `estimate`'s (every one of them, broadcast the same way; `interval` is not taken), and the same
    errors for bad ones. Returns one row per configuration and phase, configuration-major in `estimate`'s row
    order: ``row`` (`estimate`'s row number), ``phase`` ("prefill", "decode"), one column per `COMPONENTS` entry
    (ms per forward), ``total_ms`` (their sum: `estimate`'s ttft_ms for prefill, tpot_ms for decode), then
    `estimate`'s configuration columns (model, gpu, tp, ..., engine, source, fits, reason, batch_size, input_len,
    output_len). The prefill forward runs every prompt of the batch at once; with pp > 1 a phase's components are
    one micro-batch's forward through every stage times the pipeline's fill factor, as `estimate` prices it.
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
        cols.update({name: np.empty(0) for name in COMPONENTS})
        cols["total_ms"] = np.empty(0)
        return pd.concat([pd.DataFrame(cols), df[config].iloc[:0].reset_index(drop=True)], axis=1)
    kw = dict(kwargs)
    efficiency = _with_profile(kw.pop("efficiency", None), kw.pop("profile", None))
    B, isl, osl = (np.asarray(positive(k, v), dtype=float) for k, v in
                   (("batch_size", batch_size), ("input_len", input_len), ("output_len", output_len)))
    mnt = positive("max_num_tokens", kw.pop("max_num_tokens", DEFAULT_MAX_NUM_TOKENS))
    collect: dict[str, Any] = {}
    p = prepare(model, gpu, tp, pp, weight_dtype, act_dtype, kv_dtype, kw.pop("dp", 1), kw.pop("ep", 1), efficiency,
                kw.pop("prices", None), rows=dict(batch_size=B, input_len=isl, output_len=osl, max_num_tokens=mnt),
                engine_profile=kw.pop("engine_profile", "standard"), engine=kw.pop("engine", None),
                attn_dp=kw.pop("attn_dp", 1), moe_dp=kw.pop("moe_dp", None), eplb=kw.pop("eplb", False),
                moe_act_dtype=kw.pop("moe_act_dtype", None), collect=collect)
    assert p is not None  # estimate returned rows
    if p.coeffs.curves is not None:
        collect["curves"] = {k: collect[k] for k in ("tok", "ctx_lin", "gen_lin")}
    shape = p.row_shape
    # estimate's two forwards (`_estimate_rows`), each split into pipeline micro-batches as `replica_time_s` does
    pp_ = np.asarray(p.pp, dtype=float)
    m = np.minimum(pp_, np.maximum(B, 1.0))
    fill = (m + pp_ - 1.0) / pp_
    prompt = forward_parts(p.coeffs, collect, B * isl / m, B * isl * (isl + 1.0) * 0.5 / m, 0.0, 0.0, B / m)
    decode = forward_parts(p.coeffs, collect, 0.0, 0.0, B / m, B * (isl + 0.5 * osl) / m, B / m)
    n = len(df)
    out: dict[str, Any] = {"row": np.repeat(np.arange(n, dtype=np.int64), 2),
                           "phase": pd.Categorical.from_codes(np.tile([0, 1], n), categories=PHASES)}
    for name in COMPONENTS:
        pre = np.broadcast_to(prompt[name] * fill * 1e3, shape).ravel() if shape else np.ravel(prompt[name] * fill * 1e3)
        dec = np.broadcast_to(decode[name] * 1e3, shape).ravel() if shape else np.ravel(decode[name] * 1e3)
        out[name] = np.column_stack([pre, dec]).ravel()
    out["total_ms"] = np.sum([out[name] for name in COMPONENTS], axis=0)
    cfg = df[config].iloc[np.repeat(np.arange(n), 2)].reset_index(drop=True)
    return pd.concat([pd.DataFrame(out), cfg], axis=1)


__all__ = ["breakdown", "forward_parts", "COMPONENTS", "PHASES"]
