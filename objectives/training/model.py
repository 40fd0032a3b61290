"""`estimate`: step time, throughput, memory and cost of LLM training under TP/SP/CP/EP/PP/DP, ZeRO/FSDP, recompute,
low precision and offload; vectorized (every argument broadcasts, one row per configuration).

The model, per configuration (bottleneck pipeline stage = the first, which holds the embedding and the most
activations; with pp = 1 the only stage):

Compute per micro-batch of ``b`` sequences of ``s`` tokens on one GPU (``b s / cp`` tokens, ``L / pp`` layers):
- GEMMs: 2 x (active layer parameters) FLOPs per token forward (MoE: top_k routed + shared experts + router; the
  routed experts' grouped GEMMs have top_k x ep / experts of the tokens as rows, which gemm_m_half slows),
  split over tp (experts over ep x tp: each GPU computes its local tokens' top_k experts, Megatron's expert
  tensor parallel = tp), the LM head on the last stage; at ``peak(precision) x gemm_eff x d / (d + gemm_dim_half)``
  with d = hidden / tp, times the recipe's cost. Backward = 2 x forward (LoRA: 1 x, no weight gradients).
- Attention (flash, causal): 2 x c x heads x (d_qk + d_v) FLOPs per token per layer, c = mean attended context
  (s / 2, or the sliding window), at the 16-bit peak x attn_eff; backward 2.5 x forward (flash recomputes). The
  kernel computes with head dimensions rounded up as FlashAttention-2 does (`_fa_dim`: to a multiple of 32 up to
  192, else 256; MPT-30B's 112 runs as 128), which the time counts and the MFU does not. With
  ``flash_attention=False`` (attention before FlashAttention, Dao et al. 2022: Megatron-LM 2020-2022) every score is
  computed (c = s) and the b x heads x s x s scores cross HBM, SCORE_BYTES per score forward and backward (scores,
  masked softmax, dropout and its mask); selective recompute then reruns the core attention and "none" stores the
  5 heads s bytes per token of Korthikanti et al.'s s^2 terms.
- Memory-bound kernels: elementwise_bytes x hidden bytes per token per layer per pass over HBM x mem_eff.
- Recompute: "full" reruns the forward once more; "selective" (Megatron's, Korthikanti et al. 2022) recomputes core
  attention, which flash attention already does in its backward, so it costs no extra time and stores what "none"
  stores without the s^2 terms; "selective-op" (torchtitan's op-level selective activation checkpointing) reruns
  every second matmul of a layer (K, output and up / fc2 projections: `op_rec` of its GEMM FLOPs) and its
  memory-bound kernels, plus the TP all-gathers (half of full recompute's extra TP traffic) and the EP all-to-all.
Communication (each collective priced on the link it crosses: inside the scale-up domain at the catalog link
bandwidth, else at the scale-out network per GPU, both x their bandwidth efficiency, + collective_latency_us):
- TP (with or without SP): 2 all-reduces (or all-gather + reduce-scatter) of b s h / cp 16-bit values per layer
  forward, 2 backward, 2 more when fully recomputed; (1 - tp_overlap) of it is exposed, (1 - tp_comm_overlap_eff)
  with ``tp_comm_overlap=True`` (Megatron-Core's --tp-comm-overlap / NeMo's ub_tp_comm_overlap: the collectives
  split into chunks pipelined with the GEMMs that produce and consume them).
- CP (ring attention): (cp - 1) K/V blocks per layer forward, twice that backward, hidden behind attention.
- EP: 2 all-to-all of the top_k routed tokens per MoE layer forward, 2 backward, exposed; with
  ``ep_comm_overlap=True`` (DeepSeek-V3's DualPipe, Megatron-Core's overlap of the expert-parallel all-to-all with
  another micro-batch's compute) only what exceeds the micro-batch's compute: max(0, t_ep - t_compute), an upper
  bound on what the overlap buys (the SMs such schedules give to communication are not charged).
- PP: one activation send per micro-batch per direction (vp per micro-batch when interleaved).
- DP (gradients over dp x cp; MoE expert gradients over dp x cp / ep): ZeRO 0 all-reduce; ZeRO 1/2 reduce-scatter
  + all-gather of the updated weights; ZeRO 3/FSDP all-gather forward and backward + reduce-scatter per
  micro-batch. Exposed with ZeRO 0-2: max(0, t_dp - dp_overlap x window) (gradient buckets hide behind the last
  micro-batch's backward); with ZeRO 3/FSDP: t_dp - dp_overlap x min(t_dp, window): the gathers and
  reduce-scatters run beside every layer's compute, and NCCL's kernels take SMs and HBM bandwidth from it, so a
  (1 - dp_overlap) share of them shows in the step even when the compute window is longer.
Pipeline: 1F1B step = (m + (pp - 1) / vp) x t_micro-batch with m = global_batch / (dp x micro_batch) micro-batches
per replica (interleaved: vp model chunks per GPU shrink the bubble vp-fold).
Optimizer: Adam with fp32 master weights, 30 bytes of HBM traffic per local parameter (sharded by ZeRO >= 1); with
``offload="optimizer"`` the gradients go to the host and the weights come back over the host link instead.

Memory per GPU (bytes, mixed-precision Adam as in ZeRO, Rajbhandari et al. 2020, arXiv 1910.02054: 2 bytes of
weights + 2 of gradients + 12 of optimizer states per parameter): weights at the precision's storage size (fp8
recipes keep fp8 primary weights, embeddings/LM head/norm weights stay 16-bit), sharded by ZeRO 3; gradients sharded
by ZeRO >= 2; optimizer states by ZeRO >= 1 (and absent with optimizer offload); activations after Korthikanti et al.
2022 (arXiv 2205.05198) generalized to GQA, gated MLPs and MoE, without dropout masks (modern LLM pre-training uses
none) and with flash attention (no s^2 terms): per layer per token 4h (norm inputs) + GEMM inputs, Q/K/V, attention
output, MLP intermediates, split by tp (the norm part only with SP) and by cp; "full" keeps the 2h layer input per
layer plus one layer's working set; 1F1B keeps min(pp, m) micro-batches in flight on the first stage (interleaved:
x (1 + (pp - 1) / (pp vp))); "selective-op" keeps the layer input, Q, V, the attention output and its fp32
log-sum-exp, the gate / fc1 output and the down projection's output (with tp > 1 its full-size partial sum), all
16-bit. The peak on the stage holding the LM head (the only one with pp = 1) is at the start of the backward: the
stored activations + the loss's buffers (LOGIT_BYTES per vocabulary entry per token with a fused cross-entropy,
EAGER_LOGIT_BYTES with PyTorch's eager one) + the final norm's and the head's inputs + one layer's forward
temporaries whose cached blocks the loss cannot reuse (the caching allocator's reserve), or the recomputed layer's
working set if larger; communication buffers: the SP/TP gather buffer, the ZeRO-3 gather of up to two layers'
non-resident weights and of the embedding / LM head, and a 2 GiB runtime reserve outside the caching allocator (CUDA
context, NCCL buffers: an assumption, not a measurement).

MFU convention (PaLM, Chowdhery et al. 2022; Megatron-LM and llm-foundry count alike): model FLOPs per token =
6 x N + 6 x L x s x heads x (d_qk + d_v) (non-causal attention), N = active parameters without the input
embedding (with the LM head); recompute is not counted; the peak is the GPU's dense 16-bit (bf16, or fp16 on
Volta) peak whatever the training precision.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from objectives.catalog import GPU, Model, model_math
from objectives.inference.power import idle_power_w

from .factors import FAMILIES, Factors, default_factors
from .systems import DEFAULT_SCALE_UP, system

GIB = float(2**30)
#: training precisions (compute group, bytes per stored weight, bytes per saved GEMM input)
PRECISIONS: dict[str, tuple[str, float, float]] = {
    "bf16": ("16bit", 2.0, 2.0),
    "fp16": ("16bit", 2.0, 2.0),
    "fp8": ("fp8", 1.0, 1.0),                                   # per-tensor (delayed or current) scaling
    "fp8-rowwise": ("fp8", 1.0 + 4.0 / 4096, 1.0 + 4.0 / 4096),  # one fp32 scale per row (hidden ~ 4096)
    "fp8-block": ("fp8", 1.0 + 4.0 / (128 * 128), 1.0 + 4.0 / 128),  # 128x128 weight blocks, 1x128 activation tiles
    "mxfp8": ("fp8", 1.0 + 1.0 / 32, 1.0 + 1.0 / 32),           # one E8M0 scale per 32 elements
    "nvfp4": ("fp4", 0.5 + 1.0 / 16, 0.5 + 1.0 / 16),          # one E4M3 scale per 16 elements
}
RECOMPUTE = ("none", "selective", "full", "selective-op")
#: cross-entropy implementations: "fused" (Megatron-Core's fused vocab-parallel kernel), "eager" (PyTorch's
#: F.cross_entropy on fp32 logits, as torchtitan calls it; with tp > 1 under torch's loss_parallel)
CROSS_ENTROPY = ("fused", "eager")
ZERO_STAGES = (0, 1, 2, 3)
OFFLOAD = (None, "optimizer", "weights", "both")
FINETUNE = (None, "full", "lora")
#: GPU families that compute in each group (the peak key of the catalog)
_PEAK_KEY = {"16bit": "bf16", "fp8": "fp8", "fp4": "fp4"}
_MX_FAMILIES = ("blackwell", "blackwell-ultra", "cdna4")       # hardware-scaled MX formats (mxfp8, nvfp4)
#: HBM traffic of one Adam step per local parameter, bytes: read fp32 grad (4), master (4), m (4), v (4);
#: write master, m, v (12) and the 16-bit weight (2)
ADAM_BYTES = 30.0
RESERVE_GIB = 2.0
#: bytes per vocabulary entry per token at the loss with a fused vocab-parallel cross-entropy (Megatron-Core): the LM
#: head's 16-bit logits (2) and the fp32 softmax the kernel keeps for its backward (4)
LOGIT_BYTES = 6.0
#: the same with cross_entropy="eager", PyTorch's F.cross_entropy(logits.float()) (torchtitan's train.py loss_fn at
#: 9dec370, `del pred` before backward): at the start of the backward the fp32 log-softmax output autograd saved (4),
#: nll_loss's dense fp32 gradient (4) and log_softmax's fp32 input gradient (4) are alive at once (12); the freed
#: 16-bit logits' block (2) is too small for any of those fp32 buffers and stays in the caching allocator's pool
#: (reserved, not allocated): 14. With tp > 1 torchtitan runs it under torch.distributed.tensor.parallel.loss_parallel,
#: whose decomposed backward (_nll_loss_and_log_softmax_backward: zeros_like, exp, add, mul) keeps four fp32 buffers
#: (16) + the cached 16-bit block: 18
EAGER_LOGIT_BYTES = (14.0, 18.0)
#: HBM bytes per attention score of an unfused (pre-flash) attention, forward and backward: forward writes the
#: scores (2), the masked softmax reads and writes them (4), dropout reads, writes and stores its mask (5), the
#: probabilities x values GEMM reads them (2); backward: dropout (5), softmax (6), the two score-gradient GEMM
#: operands (4). Counted from Megatron-LM's fused scale-mask-softmax and dropout, not fitted.
SCORE_BYTES = (13.0, 15.0)
#: configurations evaluated per chunk (every intermediate array of a chunk stays in cache)
CHUNK = 8192
#: gradient bucket of Megatron-Core's distributed data parallel (parameters per bucket; its default 40M)
BUCKET = 4.0e7
COLUMNS = ("step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "model_tflops_per_gpu", "mfu_pct",
           "mem_per_gpu_gib", "mem_weights_gib", "mem_gradients_gib", "mem_optimizer_gib", "mem_activations_gib",
           "mem_comm_buffers_gib", "fits", "dp", "n_micro_batches", "bubble_pct", "exposed_comm_pct",
           "time_to_train_h", "usd_per_run", "mwh_per_run")


FLOAT_COLUMNS = tuple(c for c in COLUMNS if c != "fits")


class TrainingError(ValueError):
    """A training configuration that cannot be evaluated (the message names the bad value and what is valid)."""


# ------------------------------------------------------------------------------------------------ arguments
def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask).ravel())[0])


def _at(x: Any, i: int) -> Any:
    """Row `i` of a per-configuration value (a scalar is the same for every row)."""
    return x if np.ndim(x) == 0 else x[i]


def _num(name: str, x: Any, *, integer: bool = True, minimum: float = 1) -> np.ndarray:
    """A numeric argument as an array, checked (integers >= minimum)."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrainingError(f"{name}={x!r} is not a number or an array of numbers") from None
    bad = ~np.isfinite(a) | (a < minimum)
    if integer:
        bad |= a != np.round(a)
    if bad.any():
        v = float(a.ravel()[_first_bad(bad)])
        kind = "an integer" if integer else "a number"
        raise TrainingError(f"{name}={v:g} is invalid: {name} must be {kind} >= {minimum:g}")
    return a


def _categories(name: str, x: Any, valid: tuple, normalize=None) -> tuple[list, np.ndarray]:
    """(distinct values, codes shaped like x) for a categorical argument; unknown values list the valid ones."""
    scalar = x is None or isinstance(x, (str, bytes, int, float, bool, np.generic, Model, GPU, dict))
    if not scalar and valid and isinstance(x, np.ndarray) and x.dtype.kind in "Uiu" and x.size:
        # fast path for large arrays of plain values: one vectorized comparison per valid value
        keys = [v for v in valid if (isinstance(v, str) if x.dtype.kind == "U" else isinstance(v, int))]
        c = np.full(x.shape, -1, dtype=np.int64)
        for j, v in enumerate(keys):
            c[x == v] = j
        if (c >= 0).all():
            return keys, c
    arr = np.empty((), dtype=object) if scalar else np.asarray(x, dtype=object)
    if scalar:
        arr[()] = x
    flat = arr.ravel()
    if flat.size == 0:
        return [], np.zeros(arr.shape, dtype=np.int64)
    if scalar:
        uniq, codes = [x], np.zeros(arr.shape, dtype=np.int64)
    else:
        try:
            codes, u = pd.factorize(flat, use_na_sentinel=False)
        except TypeError:
            raise TrainingError(f"{name} must hold hashable values, got {x!r}") from None
        uniq, codes = list(u), codes.reshape(arr.shape)
    out = []
    for u in uniq:
        v = normalize(u) if normalize else u
        if valid and v not in valid:
            raise TrainingError(f"unknown {name} {u!r}; valid: {', '.join(repr(t) for t in valid)}")
        out.append(v)
    return out, codes


def _zero(v: Any) -> Any:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("fsdp", "full_shard"):
            return 3
        if s in ("hybrid_shard", "hsdp"):
            return "hybrid_shard"
        if s.isdigit():
            return int(s)
        return s
    if isinstance(v, (bool, np.bool_)):
        return v
    if isinstance(v, (int, np.integer, float, np.floating)) and float(v).is_integer():
        return int(v)
    return v


def _opt_none(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.strip().lower() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


def _runs(precision: str, g: GPU) -> bool:
    """True when `g` computes in `precision`: bf16 needs a bf16 peak (not Volta), fp8 recipes an fp8 peak
    (Ada/Hopper/CDNA 3 or newer), nvfp4 an fp4 peak, and the MX formats (mxfp8, nvfp4) hardware block scaling."""
    key = {"bf16": "bf16", "fp16": "fp16"}.get(precision, _PEAK_KEY[PRECISIONS[precision][0]])
    if g.peak_tflops.get(key, 0.0) <= 0:
        return False
    return precision not in ("mxfp8", "nvfp4") or g.family in _MX_FAMILIES


def _model_record(m: Any) -> Model:
    from objectives import catalog
    if isinstance(m, Model):
        return m
    if isinstance(m, dict):
        return catalog.model_from_hf_config(m)
    return catalog.model(m)


def _gpu_record(g: Any) -> GPU:
    from objectives import catalog
    return g if isinstance(g, GPU) else catalog.gpu(g)


def _model_numbers(m: Model) -> dict[str, float]:
    """Per-model scalars of the cost model (parameter counts per layer, attention shape)."""
    L = m.n_layers
    # softmax attention sits on La of the L layers (the others: linear attention, or no token mixer at all)
    La = float(model_math.n_attention_layers(m))
    attn_body = float(model_math.mixer_params(m))
    dense_mlp = model_math.dense_mlp_params_per_layer(m)
    n_moe = model_math.n_moe_layers(m)
    n_dense = L - n_moe
    moe_active = model_math.moe_params_per_layer(m, active=True) if m.n_experts else 0.0
    gate = 3.0 if m.gated_mlp else 2.0
    # a latent MoE's experts work at its latent width, between two hidden x latent projections
    expert = gate * float(model_math.expert_width(m.hidden, m.moe_latent)) * m.moe_ffn if m.n_experts else 0.0
    moe_nonexpert = (m.hidden * m.n_experts + gate * m.hidden * m.shared_ffn + 2.0 * m.hidden * m.moe_latent
                     if m.n_experts else 0.0)
    hq: float  # query width per token and layer (averaged over the layers' kinds)
    d_win = 0.0  # QK^T + PV dims of a window layer whose heads have a width of their own (0: as the full layers')
    if m.kv_lora_rank:
        d_qk, d_v = m.qk_nope_head_dim + m.qk_rope_head_dim, m.v_head_dim
        hq, hkv = m.n_heads * d_qk, m.n_heads * (d_qk + d_v) / 2.0
    else:
        d_qk, d_v = m.head_dim, int(model_math.v_head_dim(m))
        # K and V widths averaged, over the layers: window layers may have KV heads of their own (MiMo-V2-Flash)
        n_sw = float(model_math.n_sliding_layers(m))
        kv_heads = (m.n_kv_heads * (La - n_sw) + float(model_math.sliding_kv_heads(m)) * n_sw) / max(La, 1.0)
        hq, hkv = m.n_heads * m.head_dim, kv_heads * (d_qk + d_v) / 2.0
        if m.swa_head_dim and n_sw and m.swa_head_dim != m.head_dim:
            # window layers with heads of their own width (Gemma 4: 256 beside 512): q and the K/V widths averaged
            # over the layers; the attention kernels' dims per kind below (d_win)
            d_w, skv = float(m.swa_head_dim), float(model_math.sliding_kv_heads(m))
            hq = m.n_heads * (m.head_dim * (La - n_sw) + d_w * n_sw) / max(La, 1.0)
            hkv = (m.n_kv_heads * (d_qk + d_v) * (La - n_sw) + skv * 2.0 * d_w * n_sw) / 2.0 / max(La, 1.0)
            d_win = 2.0 * d_w
    n_slide = model_math.n_sliding_layers(m)
    # MLP intermediates per token per layer (averaged over the layers): elements produced by fc1 (gate and up)
    f_dense = m.ffn
    f_moe = m.top_k * m.moe_ffn + m.shared_ffn if m.n_experts else 0.0
    f_avg = (n_dense * f_dense + n_moe * f_moe) / L
    return dict(
        L=float(L), La=La, h=float(m.hidden), heads=float(m.n_heads), kv_heads=float(m.n_kv_heads), vocab=float(m.vocab),
        d_qk=float(d_qk), d_v=float(d_v), d_qk_k=_fa_dim(d_qk), d_v_k=_fa_dim(d_v), hq=float(hq), hkv=float(hkv),
        d_win=float(d_win), d_win_k=2.0 * _fa_dim(d_win / 2.0) if d_win else 0.0,
        gated=float(m.gated_mlp), tied=float(m.tie_embeddings),
        # per-token forward GEMM parameters of all layers (active), and their stored counts
        lin_active=float(attn_body + n_dense * dense_mlp + n_moe * moe_active),
        lin_routed=float(n_moe * m.top_k * expert),     # the routed experts' share of lin_active
        dense_body=float(attn_body + n_dense * dense_mlp + n_moe * moe_nonexpert),
        expert_body=float(n_moe * m.n_experts * expert),
        n_moe=float(n_moe), n_experts=float(m.n_experts), top_k=float(m.top_k),
        f_avg=float(f_avg), window=float(m.sliding_window), n_slide=float(n_slide),
        # share of the layers' forward GEMM FLOPs that selective-op recomputes: every second matmul of a layer in the
        # order q, k, v, o, gate, up, down (or q, k, v, o, fc1, fc2) is not saved: k, o and up (or fc2), h x f both
        op_rec=float(min(1.0, L * (m.hidden * hkv + hq * m.hidden + m.hidden * f_avg)
                         / max(attn_body + n_dense * dense_mlp + n_moe * moe_active, 1.0))),
        mlp_mats=gate,
    )


def _fa_dim(d: float) -> float:
    """Head dimension a flash-attention kernel computes with (FlashAttention-2's flash_api.cpp: rounded up to a
    multiple of 32 up to 192, else 256; larger dimensions as they are)."""
    return float(math.ceil(d / 32.0) * 32 if d <= 192 else max(256.0, d))


def _gpu_numbers(g: GPU) -> dict[str, Any]:
    s = system(g.name)
    return dict(
        peak16=float(g.peak_tflops.get("bf16", g.peak_tflops.get("fp16", 0.0))),
        peak_fp8=float(g.peak_tflops.get("fp8", 0.0)), peak_fp4=float(g.peak_tflops.get("fp4", 0.0)),
        has_bf16=float("bf16" in g.peak_tflops), mem_gib=g.mem_gib, hbm_tbs=float(g.mem_bw_tbs),
        link_gbs=float(g.link_bw_gbs), tdp=float(g.tdp_w), idle=idle_power_w(g),
        price=float(g.price_usd_per_hour), family=g.family,
        scale_up=float(s.scale_up_gpus if s else DEFAULT_SCALE_UP),
        scale_out_gbps=float(s.scale_out_gbps if s else np.nan),
        host_gbs=float(s.host_link_gbs if s else g.link_bw_gbs),
    )


def _table(records: list, fn) -> dict[str, np.ndarray]:
    rows = [fn(r) for r in records]
    return {k: np.array([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str) else np.float64)
            for k in rows[0]}


# ------------------------------------------------------------------------------------------------ the model
def estimate(model: Any, gpu: Any, n_gpus: Any, *, tp: Any = 1, pp: Any = 1, cp: Any = 1, ep: Any = 1, vp: Any = 1,
             sequence_parallel: Any = True, zero_stage: Any = 1, recompute: Any = "selective", seq_len: Any = 4096,
             micro_batch: Any = 1, global_batch: Any = 1024, precision: Any = "bf16", offload: Any = None,
             finetune: Any = None, tokens: Any = None, lora_rank: Any = 16, scale_up_gpus: Any = None,
             scale_out_gbps: Any = None, tp_comm_overlap: Any = False, ep_comm_overlap: Any = False,
             flash_attention: Any = True, cross_entropy: Any = "fused", uneven_pp: bool = False,
             factors: Factors | None = None, interval: float | None = None) -> pd.DataFrame:
    """Step time, throughput, memory and cost of training `model` on `n_gpus` `gpu`s; one row per configuration.

    Arguments (scalars or arrays, broadcast together):
    - model: catalog name / alias / Hugging Face id, a `catalog.Model` (e.g. from `catalog.model_from_hf_config`),
      or a config.json dict. gpu: catalog name or alias, or a `catalog.GPU`.
    - n_gpus, tp, pp, cp, ep, vp: GPU count and tensor / pipeline / context / expert parallel degrees and
      interleaved pipeline chunks per GPU. dp = n_gpus / (tp x pp x cp); expert parallelism lives inside dp x cp
      (as in Megatron-Core: ep divides dp x cp and the experts).
    - sequence_parallel: bool (norm/dropout activations split over tp). zero_stage: 0-3, "fsdp" (= 3) or
      "hybrid_shard" (HSDP: ZeRO-3 among the data-parallel ranks of one scale-up domain, replicated across domains,
      with one all-reduce of the sharded gradients per step). recompute: "none" | "selective" (Megatron's: core
      attention) | "full" | "selective-op" (torchtitan's op-level selective checkpointing: saves every second
      matmul's output and the attention output).
    - seq_len (tokens), micro_batch (sequences per micro-batch per replica), global_batch (sequences per step).
    - precision: "bf16" | "fp16" | "fp8" (per-tensor scaling) | "fp8-rowwise" | "fp8-block" | "mxfp8" | "nvfp4".
    - offload: None | "optimizer" (states and step on the host) | "weights" (weights streamed from the host) | "both".
    - finetune: None (pre-training) | "full" | "lora" (base weights frozen: no weight gradients, LoRA adapters of
      rank `lora_rank` on every attention and MLP projection hold the gradients and optimizer states).
    - tokens: training tokens of the run (optional): adds time_to_train_h, usd_per_run, mwh_per_run.
    - scale_up_gpus / scale_out_gbps: override the training system of the GPU (objectives/data/systems/
      systems.toml): GPUs per NVLink/Infinity-Fabric domain, scale-out Gb/s per GPU per direction.
    - tp_comm_overlap: bool, TP/SP collectives pipelined with their GEMMs (Megatron-Core ``--tp-comm-overlap``,
      NeMo ``ub_tp_comm_overlap``); False: NCCL collectives between the GEMMs.
    - ep_comm_overlap: bool, the expert all-to-all overlapped with another micro-batch's compute (DualPipe-style);
      False: exposed.
    - flash_attention: bool (default True); False: unfused attention that materializes its scores (pre-2022
      Megatron-LM; see the module docstring).
    - cross_entropy: "fused" (default: a fused vocab-parallel kernel, Megatron-Core's, LOGIT_BYTES per logit) |
      "eager" (PyTorch's F.cross_entropy on fp32 logits, as torchtitan calls it, EAGER_LOGIT_BYTES: memory only).
    - uneven_pp: allow pp x vp not dividing the layers (uneven stages, as DeepSeek-V3's 61 layers on pp 16): the
      slowest stage holds ceil(layers / (pp x vp)) x vp layers and sets the pipeline's pace and memory.
    - factors: a `Factors` (default: the fitted objectives/data/training/factors.json).
    - interval: a band level strictly between 0 and 1 (e.g. 0.8): adds `<col>_lo` / `<col>_hi` for step_time_s,
      tokens_per_s(_per_gpu), model_tflops_per_gpu, mfu_pct, time_to_train_h, usd_per_run and mwh_per_run, the
      split-conformal prediction interval from the leave-one-source-out calibration residuals of the GPU's family
      (`objectives.uncertainty`; None: no band columns).

    Columns: step_time_s, tokens_per_s, tokens_per_s_per_gpu, model_tflops_per_gpu (model FLOPs, see the module
    docstring), mfu_pct (of the dense 16-bit peak), mem_per_gpu_gib and its parts mem_weights_gib,
    mem_gradients_gib, mem_optimizer_gib, mem_activations_gib, mem_comm_buffers_gib (the runtime reserve
    included), fits (bool), dp, n_micro_batches (per replica per step), bubble_pct (pipeline bubble, % of the step),
    exposed_comm_pct (communication not hidden, % of the step), time_to_train_h, usd_per_run (GPU-hours x the
    catalog price), mwh_per_run (GPU board energy) - the last three NaN without `tokens`.

    Raises `TrainingError` naming the numbers for a layout that does not divide (tp vs heads, pp x vp vs layers,
    n_gpus vs tp x pp x cp, global batch vs dp x micro_batch, cp vs seq_len, ep vs experts or dp x cp), for an
    unknown precision / recompute / zero_stage / offload / finetune / cross_entropy (listing the valid ones), for a
    precision the GPU cannot compute in, and for a layout that leaves the scale-up domain of a GPU without a
    scale-out network.
    """
    names = ("model", "gpu", "n_gpus", "tp", "pp", "cp", "ep", "vp", "sequence_parallel", "zero_stage", "recompute",
             "seq_len", "micro_batch", "global_batch", "precision", "offload", "finetune", "tokens", "lora_rank",
             "scale_up_gpus", "scale_out_gbps", "tp_comm_overlap", "ep_comm_overlap", "flash_attention",
             "cross_entropy")
    vals = (model, gpu, n_gpus, tp, pp, cp, ep, vp, sequence_parallel, zero_stage, recompute, seq_len, micro_batch,
            global_batch, precision, offload, finetune, tokens, lora_rank, scale_up_gpus, scale_out_gbps,
            tp_comm_overlap, ep_comm_overlap, flash_attention, cross_entropy)
    args = dict(zip(names, vals))
    shapes = {k: np.shape(v) for k, v in args.items() if not _is_scalar(v)}
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise TrainingError("the array arguments do not broadcast together: "
                            + ", ".join(f"{k} {v}" for k, v in shapes.items())) from None
    N = int(np.prod(shape))
    if N <= CHUNK:
        block, fits = _estimate_block(**args, uneven_pp=uneven_pp, factors=factors)
    else:
        # chunks of configurations: each chunk's intermediate arrays stay in cache (a memory-bound numpy pipeline
        # runs several times faster on thousands of rows than on millions); one Python call per chunk, not per row
        flat = {k: (_flat_arg(v, shape) if k in shapes else v) for k, v in args.items()}
        block = np.empty((len(FLOAT_COLUMNS), N))
        fits = np.empty(N, dtype=bool)
        for a in range(0, N, CHUNK):
            sl = slice(a, min(N, a + CHUNK))
            block[:, sl], fits[sl] = _estimate_block(**{k: (v[sl] if k in shapes else v) for k, v in flat.items()},
                                                     uneven_pp=uneven_pp, factors=factors)
    df = pd.DataFrame(block.T, columns=list(FLOAT_COLUMNS), copy=False)
    df.insert(COLUMNS.index("fits"), "fits", fits)
    if interval is not None:
        from objectives.uncertainty import training_intervals
        df = training_intervals(df, interval, _flat_arg(gpu, shape) if "gpu" in shapes else gpu)
    return df


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, bytes, int, float, bool, np.generic, Model, GPU, dict)) or np.ndim(v) == 0


def _flat_arg(v: Any, shape: tuple) -> np.ndarray:
    """An array argument broadcast to `shape` and flattened (object arrays for names and records)."""
    a = v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object if _holds_objects(v) else None)
    return a.ravel() if a.shape == shape else np.broadcast_to(a, shape).ravel()


def _holds_objects(v: Any) -> bool:
    try:
        a = np.asarray(v)
    except (ValueError, TypeError):
        return True
    return a.dtype.kind == "O"


def _estimate_block(model: Any, gpu: Any, n_gpus: Any, *, tp: Any, pp: Any, cp: Any, ep: Any, vp: Any,
                    sequence_parallel: Any, zero_stage: Any, recompute: Any, seq_len: Any, micro_batch: Any,
                    global_batch: Any, precision: Any, offload: Any, finetune: Any, tokens: Any, lora_rank: Any,
                    scale_up_gpus: Any, scale_out_gbps: Any, tp_comm_overlap: Any, ep_comm_overlap: Any,
                    flash_attention: Any, cross_entropy: Any, uneven_pp: bool,
                    factors: Factors | None) -> tuple[np.ndarray, np.ndarray]:
    """`estimate` on at most a few chunks of configurations: (float block, one row per column of FLOAT_COLUMNS;
    fits). Arguments as in `estimate`, every one given (their defaults are `estimate`'s)."""
    fac = factors or default_factors()
    # ---------------------------------------------------------------- categorical arguments
    m_recs, m_code = _categories("model", model, (), None)
    m_recs = [_model_record(m) for m in m_recs]
    g_recs, g_code = _categories("gpu", gpu, (), None)
    g_recs = [_gpu_record(g) for g in g_recs]
    precs, p_code = _categories("precision", precision, tuple(PRECISIONS), _lower)
    recs, r_code = _categories("recompute", recompute, RECOMPUTE, _lower)
    zeros, z_code = _categories("zero_stage", zero_stage, ZERO_STAGES + ("fsdp", "hybrid_shard"), _zero)
    offs, o_code = _categories("offload", offload, OFFLOAD, _opt_none)
    fts, f_code = _categories("finetune", finetune, FINETUNE, _opt_none)
    ces, c_code = _categories("cross_entropy", cross_entropy, CROSS_ENTROPY, _lower)
    nums = dict(n_gpus=_num("n_gpus", n_gpus), tp=_num("tp", tp), pp=_num("pp", pp), cp=_num("cp", cp),
                ep=_num("ep", ep), vp=_num("vp", vp), seq_len=_num("seq_len", seq_len),
                micro_batch=_num("micro_batch", micro_batch), global_batch=_num("global_batch", global_batch),
                lora_rank=_num("lora_rank", lora_rank))
    sp_arr = np.asarray(sequence_parallel)
    if sp_arr.dtype.kind not in "bui" or ((sp_arr != 0) & (sp_arr != 1)).any():
        raise TrainingError(f"sequence_parallel={sequence_parallel!r} is invalid: valid: True, False")
    tpo_arr = np.asarray(tp_comm_overlap)
    if tpo_arr.dtype.kind not in "bui" or ((tpo_arr != 0) & (tpo_arr != 1)).any():
        raise TrainingError(f"tp_comm_overlap={tp_comm_overlap!r} is invalid: valid: True, False")
    fa_arr = np.asarray(flash_attention)
    if fa_arr.dtype.kind not in "bui" or ((fa_arr != 0) & (fa_arr != 1)).any():
        raise TrainingError(f"flash_attention={flash_attention!r} is invalid: valid: True, False")
    epo_arr = np.asarray(ep_comm_overlap)
    if epo_arr.dtype.kind not in "bui" or ((epo_arr != 0) & (epo_arr != 1)).any():
        raise TrainingError(f"ep_comm_overlap={ep_comm_overlap!r} is invalid: valid: True, False")
    tok = None if tokens is None else _num("tokens", tokens, integer=False, minimum=0)
    su = None if scale_up_gpus is None else _num("scale_up_gpus", scale_up_gpus)
    so = None if scale_out_gbps is None else _num("scale_out_gbps", scale_out_gbps, integer=False, minimum=0)
    shape = np.broadcast_shapes(m_code.shape, g_code.shape, p_code.shape, r_code.shape, z_code.shape, o_code.shape,
                                f_code.shape, c_code.shape, sp_arr.shape, tpo_arr.shape, epo_arr.shape, fa_arr.shape,
                                *(a.shape for a in nums.values()),
                                *(a.shape for a in (tok, su, so) if a is not None))

    N = int(np.prod(shape))

    def flat(a: np.ndarray) -> np.ndarray:
        """A scalar stays a 0-d value (numpy broadcasts it for free); an array becomes one flat row per config."""
        if a.ndim == 0:
            return a[()]
        return a.ravel() if a.shape == shape else np.broadcast_to(a, shape).ravel()

    def codes(c: np.ndarray, k: int) -> Any:
        """Category codes per configuration, or the scalar 0 when the argument has a single value."""
        return 0 if k <= 1 else flat(c)

    M = _table(m_recs, _model_numbers)
    G = _table(g_recs, _gpu_numbers)
    mi, gi = codes(m_code, len(m_recs)), codes(g_code, len(g_recs))
    mv = {k: v[mi] for k, v in M.items()}
    gv = {k: v[gi] for k, v in G.items()}
    n, tp_, pp_, cp_, ep_, vp_ = (flat(nums[k]) for k in ("n_gpus", "tp", "pp", "cp", "ep", "vp"))
    s, b, B, rank = (flat(nums[k]) for k in ("seq_len", "micro_batch", "global_batch", "lora_rank"))
    sp = np.asarray(flat(sp_arr)).astype(bool)
    tpo = np.asarray(flat(tpo_arr)).astype(bool)
    epo = np.asarray(flat(epo_arr)).astype(bool)
    fa = np.asarray(flat(fa_arr)).astype(bool)
    p_idx = codes(p_code, len(precs))
    gcol = np.array([("16bit", "fp8", "fp4").index(PRECISIONS[p][0]) for p in precs])[p_idx]   # 0 16-bit, 1 fp8, 2 fp4
    wbytes = np.array([PRECISIONS[p][1] for p in precs])[p_idx]
    abytes = np.array([PRECISIONS[p][2] for p in precs])[p_idx]
    recipe = np.array([fac.params["recipe_cost"].get(p, 1.0) for p in precs])[p_idx]
    rc = np.array([RECOMPUTE.index(r) for r in recs])[codes(r_code, len(recs))]   # 0 none, 1 selective, 2 full, 3 op
    z_i = codes(z_code, len(zeros))
    zs = np.array([3.0 if z == "hybrid_shard" else float(z) for z in zeros])[z_i]
    hyb = np.array([z == "hybrid_shard" for z in zeros])[z_i]          # ZeRO-3 within a domain, replicated across
    off = np.array([OFFLOAD.index(o) for o in offs])[codes(o_code, len(offs))]
    off_opt, off_w = (off == 1) | (off == 3), (off == 2) | (off == 3)
    lora = (np.array([FINETUNE.index(f) for f in fts])[codes(f_code, len(fts))] == 2)
    eager_ce = (np.array([CROSS_ENTROPY.index(c) for c in ces])[codes(c_code, len(ces))] == 1)
    if su is not None:
        gv["scale_up"] = flat(su)
    if so is not None:
        gv["scale_out_gbps"] = flat(so)

    # ---------------------------------------------------------------- validity (clear errors naming the numbers)
    tpc = tp_ * pp_ * cp_
    dp = n / tpc
    checks = [
        (mv["heads"] % tp_ != 0, lambda i: f"tp={_at(tp_, i):.0f} does not divide the {_at(mv['heads'], i):.0f} attention heads "
                                           f"of {m_recs[_at(mi, i)].name}"),
        ((mv["kv_heads"] % tp_ != 0) & (tp_ % mv["kv_heads"] != 0),
         lambda i: f"tp={_at(tp_, i):.0f} neither divides nor is a multiple of the {_at(mv['kv_heads'], i):.0f} KV heads of "
                   f"{m_recs[_at(mi, i)].name}"),
        ((mv["L"] % (pp_ * vp_) != 0) & (not uneven_pp),
         lambda i: f"pp x vp = {_at(pp_, i):.0f} x {_at(vp_, i):.0f} does not divide the {_at(mv['L'], i):.0f} layers of "
                   f"{m_recs[_at(mi, i)].name} (pass uneven_pp=True for uneven stages: the slowest holds "
                   f"ceil(layers / (pp x vp)) x vp layers)"),
        ((pp_ * vp_ > mv["L"]), lambda i: f"pp x vp = {_at(pp_, i):.0f} x {_at(vp_, i):.0f} exceeds the "
                                          f"{_at(mv['L'], i):.0f} layers of {m_recs[_at(mi, i)].name}"),
        (n % tpc != 0, lambda i: f"n_gpus={_at(n, i):.0f} is not a multiple of tp x pp x cp = {_at(tp_, i):.0f} x {_at(pp_, i):.0f} x "
                                 f"{_at(cp_, i):.0f} = {_at(tpc, i):.0f}"),
        (B % (np.maximum(dp, 1) * b) != 0, lambda i: f"global_batch={_at(B, i):.0f} is not divisible by dp x micro_batch = "
                                                     f"{_at(dp, i):.0f} x {_at(b, i):.0f} = {_at(dp, i) * _at(b, i):.0f}"),
        ((s % (2 * cp_) != 0) & (cp_ > 1), lambda i: f"cp={_at(cp_, i):.0f} does not split seq_len={_at(s, i):.0f} into 2 x cp "
                                                     f"equal chunks (load-balanced ring attention)"),
        ((ep_ > 1) & (mv["n_experts"] == 0), lambda i: f"ep={_at(ep_, i):.0f} but {m_recs[_at(mi, i)].name} is dense (no experts)"),
        ((mv["n_experts"] > 0) & (mv["n_experts"] % ep_ != 0),
         lambda i: f"ep={_at(ep_, i):.0f} does not divide the {_at(mv['n_experts'], i):.0f} experts of {m_recs[_at(mi, i)].name}"),
        ((dp * cp_) % ep_ != 0, lambda i: f"ep={_at(ep_, i):.0f} does not divide dp x cp = {_at(dp, i):.0f} x {_at(cp_, i):.0f} "
                                          f"(expert parallelism lives inside data parallelism)"),
        ((vp_ > 1) & (pp_ == 1), lambda i: f"vp={_at(vp_, i):.0f} needs pipeline parallelism (pp={_at(pp_, i):.0f})"),
    ]
    for bad, msg in checks:
        if bad.any():
            raise TrainingError(msg(_first_bad(bad)))
    m_mb = B / (dp * b)                                        # micro-batches per replica per step
    bad = (vp_ > 1) & (m_mb % pp_ != 0)
    if bad.any():
        i = _first_bad(bad)
        raise TrainingError(f"interleaved pipeline (vp={_at(vp_, i):.0f}) needs the {_at(m_mb, i):.0f} micro-batches per replica "
                            f"to be a multiple of pp={_at(pp_, i):.0f}")
    peak_g = np.where(gcol == 1, gv["peak_fp8"], np.where(gcol == 2, gv["peak_fp4"], gv["peak16"]))
    runs = np.array([[_runs(p, g) for p in precs] for g in g_recs], dtype=bool)
    bad = ~runs[gi, p_idx]
    if bad.any():
        i = _first_bad(bad)
        g = g_recs[_at(gi, i)]
        ok = [p for p in PRECISIONS if _runs(p, g)]
        raise TrainingError(f"precision {precs[_at(p_idx, i)]!r} cannot run on {g.name} ({g.family}); valid there: {ok}")
    bad = (n > gv["scale_up"]) & ~(gv["scale_out_gbps"] > 0)
    if bad.any():
        i = _first_bad(bad)
        raise TrainingError(f"{_at(n, i):.0f} GPUs exceed the {_at(gv['scale_up'], i):.0f}-GPU scale-up domain of "
                            f"{g_recs[_at(gi, i)].name}, which has no scale-out network in "
                            f"objectives/data/systems/systems.toml: pass scale_out_gbps= (Gb/s per GPU)")

    # ---------------------------------------------------------------- factors per row
    eff_tab = {f: fac.params["gemm_eff"].get(f, fac.params["gemm_eff"]["hopper"]) for f in FAMILIES}
    fams = list(G["family"])
    geff_g = np.array([[eff_tab.get(f, eff_tab["hopper"])[k] for k in ("16bit", "fp8", "fp4")] for f in fams])
    gemm_eff = geff_g[gi, gcol]
    F = {k: fac.get(k) for k in ("gemm_dim_half", "gemm_m_half", "hop_latency_us", "elementwise_bytes", "layer_overhead_us",
                                 "step_overhead_s", "scale_up_bw_eff", "scale_out_bw_eff", "tp_overlap",
                                 "tp_comm_overlap_eff",
                                 "dp_overlap", "mem_eff", "collective_latency_us")}
    lat = F["collective_latency_us"] * 1e-6
    hop = F["hop_latency_us"] * 1e-6

    attn_eff = np.array([fac.params["attn_eff"].get(f, fac.params["attn_eff"]["hopper"]) for f in fams])[gi]
    tok_row = None if tok is None else flat(tok)

    def core(n: Any, tp_: Any, pp_: Any, cp_: Any, ep_: Any, vp_: Any, s: Any, b: Any, B: Any, rank: Any, sp: Any,
             gcol: Any, wbytes: Any, abytes: Any, recipe: Any, rc: Any, zs: Any, off_opt: Any, off_w: Any, lora: Any,
             dp: Any, m_mb: Any, peak_g: Any, gemm_eff: Any, attn_eff: Any, tok: Any, hyb: Any, tpo: Any, epo: Any,
             fa: Any, eager_ce: Any, mv: dict, gv: dict) -> dict[str, Any]:
        """Every output column for one chunk of configurations (arguments: per-row arrays or scalars)."""
        # ---------------------------------------------------------------- compute per micro-batch on the stage
        L, h, V = mv["L"], mv["h"], mv["vocab"]
        # layers per GPU: even stages L / pp; uneven (stated with uneven_pp) the slowest stage's ceil(L / (pp vp)) x vp
        Ls = np.ceil(L / (pp_ * vp_)) * vp_ if uneven_pp else L / pp_
        tok_mb = b * s / cp_                                      # tokens per micro-batch per GPU
        d_loc = h / tp_
        m_rows = tok_mb                                           # GEMM rows: tokens of the micro-batch on this GPU
        gemm_rate = (peak_g * 1e12 * gemm_eff * d_loc / (d_loc + F["gemm_dim_half"]) * m_rows / (m_rows + F["gemm_m_half"])
                     / recipe)
        lin_fwd = 2.0 * tok_mb * (mv["lin_active"] / L * Ls + np.where(pp_ == 1, V * h, 0.0)) / tp_
        # LM head on the last stage: counted on the bottleneck only when it is the single stage (pp = 1); with pp > 1
        # the stages are taken as balanced for it (Megatron-Core's account_for_loss_in_pipeline_split); counting it on
        # top of an even split improves NeMo's Nemotron-22B (pp 4, 256k vocabulary) but raises the leave-one-source-out
        # MdAPE (docs/training.md)
        # routed experts: a grouped GEMM per local expert whose rows are the tokens routed to it, top_k x ep / experts
        # of the micro-batch's tokens (the ep GPUs of the group send theirs), not all of them
        m_exp = np.maximum(tok_mb * mv["top_k"] * ep_ / np.maximum(mv["n_experts"], 1.0), 1.0)
        exp_fwd = 2.0 * tok_mb * mv["lin_routed"] / L * Ls / tp_
        exp_slow = (m_rows / (m_rows + F["gemm_m_half"])) / (m_exp / (m_exp + F["gemm_m_half"]))
        t_gemm = (lin_fwd + exp_fwd * np.where(mv["n_experts"] > 0, exp_slow - 1.0, 0.0)) / gemm_rate
        c_full = s / 2.0
        w = mv["window"]
        c_win = np.where(s > w, w - w * w / (2.0 * s), s / 2.0)
        frac_slide = np.where(w > 0, mv["n_slide"] / np.maximum(mv["La"], 1.0), 0.0)  # of the attention layers
        ctx = np.where(fa, (1 - frac_slide) * c_full + frac_slide * c_win, s)   # unfused: every score computed
        a_share = mv["La"] / L  # the stage's layers that attend (hybrid and pruned models: fewer than all)
        attn_fwd = 2.0 * tok_mb * ctx * mv["heads"] * (mv["d_qk_k"] + mv["d_v_k"]) * Ls * a_share / tp_  # kernel dims
        # window layers whose heads have a width of their own (Gemma 4): each kind's pairs at its own dims
        own_d = mv["d_win_k"] > 0
        if np.any(own_d):
            full_d, win_d = mv["d_qk_k"] + mv["d_v_k"], mv["d_win_k"]
            ctx_d = np.where(fa, (1 - frac_slide) * c_full * full_d + frac_slide * c_win * win_d,
                             s * ((1 - frac_slide) * full_d + frac_slide * win_d))
            attn_fwd = np.where(own_d, 2.0 * tok_mb * ctx_d * mv["heads"] * Ls * a_share / tp_, attn_fwd)
        t_attn = attn_fwd / (gv["peak16"] * 1e12 * attn_eff)
        hbm = gv["hbm_tbs"] * 1e12 * F["mem_eff"]
        t_elem = tok_mb * h * Ls * F["elementwise_bytes"] / np.where(sp | (tp_ == 1), tp_, 1.0) / hbm
        t_ovh = Ls * F["layer_overhead_us"] * 1e-6
        # unfused attention (no flash): the b x heads x s x s scores cross HBM (SCORE_BYTES per score forward and
        # backward); selective recompute reruns the core attention
        scores = np.where(fa, 0.0, tok_mb * s * mv["heads"] / tp_ * Ls * a_share)
        t_sm_f, t_sm_b = scores * SCORE_BYTES[0] / hbm, scores * SCORE_BYTES[1] / hbm
        t_fwd = t_gemm + t_attn + t_elem + t_ovh + t_sm_f
        t_bwd = np.where(lora, 1.0, 2.0) * t_gemm + np.where(fa, 2.5, 2.0) * t_attn + 2.0 * t_elem + t_ovh + t_sm_b
        # selective-op (torchtitan's op-level SAC) reruns the matmuls whose outputs it does not save (every second one:
        # the K and output projections and the MLP's up / fc2 projection, `op_rec` of the layer's GEMM FLOPs) and the
        # memory-bound kernels, not the attention kernel (its output is saved)
        t_rec = np.where(rc == 2, t_fwd, np.where((rc == 1) & ~fa, t_attn + t_sm_f,
                                                  np.where(rc == 3, mv["op_rec"] * t_gemm + t_elem + t_ovh, 0.0)))
        t_compute_mb = t_fwd + t_bwd + t_rec

        # ---------------------------------------------------------------- communication per micro-batch
        so_bytes_s = gv["scale_out_gbps"] / 8.0 * 1e9 * F["scale_out_bw_eff"]
        su_bytes_s = gv["link_gbs"] * 1e9 * F["scale_up_bw_eff"]

        def bw(size: Any, stride: Any) -> Any:
            """Bytes/s per GPU of a ring collective over `size` GPUs placed `stride` ranks apart (Megatron's rank order:
            tp fastest, then cp, dp, pp). Inside one scale-up domain: the link. Across domains, a rail-optimized ring
            sends each domain's share through the NICs of its k members of the group: min(link, k x NIC per GPU)."""
            inside = size * stride <= gv["scale_up"]
            k = np.clip(gv["scale_up"] / stride, 1.0, size)
            return np.where(inside, su_bytes_s, np.minimum(su_bytes_s, k * so_bytes_s))

        def bw_a2a(size: Any, stride: Any) -> Any:
            """Bytes/s per GPU of an all-to-all: the share of a GPU's payload bound for other domains leaves through
            its own NIC."""
            inside = size * stride <= gv["scale_up"]
            k = np.clip(gv["scale_up"] / stride, 1.0, size)
            cross = np.maximum(1.0 - k / size, 1.0 / size) / np.maximum((size - 1) / size, 1e-9)
            return np.where(inside, su_bytes_s, np.minimum(su_bytes_s, so_bytes_s / cross))

        act16 = tok_mb * h * 2.0                                  # one 16-bit activation tensor of the micro-batch
        # full recompute reruns the forward's two all-reduce-sized TP/SP collectives; selective-op its all-gathers only
        # (reduce-scatter outputs are in its save list)
        n_tp_coll = Ls * np.where(rc == 2, 6.0, np.where(rc == 3, 5.0, 4.0))
        t_tp = np.where(tp_ > 1, n_tp_coll * (act16 * 2.0 * (tp_ - 1) / tp_ / bw(tp_, 1.0) + lat), 0.0)
        t_tp_exp = (1.0 - np.where(tpo, F["tp_comm_overlap_eff"], F["tp_overlap"])) * t_tp
        kv_blk = tok_mb * 2.0 * mv["hkv"] / np.minimum(tp_, mv["kv_heads"]) * 2.0
        t_cp1 = np.where(cp_ > 1, Ls * (cp_ - 1) * (kv_blk / bw(cp_, tp_) + lat), 0.0)
        t_cp_exp = (np.maximum(0.0, t_cp1 - t_attn) + np.maximum(0.0, 2.0 * t_cp1 - 2.5 * t_attn)
                    + np.where(rc == 2, np.maximum(0.0, t_cp1 - t_attn), 0.0))
        moe_frac = mv["n_moe"] / L
        a2a = tok_mb * mv["top_k"] * h * 2.0 / tp_ * (ep_ - 1) / ep_
        t_ep = np.where(ep_ > 1, Ls * moe_frac * np.where(rc >= 2, 6.0, 4.0) * (a2a / bw_a2a(ep_, tp_) + lat), 0.0)
        t_ep = np.where(epo, np.maximum(0.0, t_ep - t_compute_mb), t_ep)     # exposed share
        p2p = act16 / np.where(sp, tp_, 1.0)
        t_pp = np.where(pp_ > 1, 2.0 * vp_ * (p2p / bw(np.full_like(n, 2.0), n / pp_) + lat), 0.0)
        t_mb = t_compute_mb + t_tp_exp + t_cp_exp + t_ep + t_pp
        n_slots = m_mb + (pp_ - 1) / vp_
        t_pipe = n_slots * t_mb
        # offloaded weights stream from the host twice per micro-batch (forward, backward)

        # ---------------------------------------------------------------- parameters per GPU
        emb = V * h / tp_
        dense_stage = mv["dense_body"] * Ls / L / tp_ + emb * np.where((pp_ == 1) & (mv["tied"] == 0), 2.0, 1.0)
        exp_stage = mv["expert_body"] * Ls / L / (ep_ * tp_)
        body_stage = dense_stage - emb * np.where((pp_ == 1) & (mv["tied"] == 0), 2.0, 1.0)
        dp_dense, dp_exp = dp * cp_, dp * cp_ / ep_
        # hybrid sharding: ZeRO-3 over the group's members inside one scale-up domain, replicas across domains
        g_d = np.where(hyb, np.clip(gv["scale_up"] / tp_, 1.0, dp_dense), dp_dense)
        g_e = np.where(hyb, np.clip(gv["scale_up"] / (tp_ * ep_), 1.0, dp_exp), dp_exp)
        r_d, r_e = dp_dense / g_d, dp_exp / g_e                   # replicas (1 without hybrid sharding)
        # LoRA adapters: rank r on the attention projections (q, k, v, o) and the MLP matrices of each layer
        lora_params = np.where(lora, rank * Ls * (4.0 * h + 2.0 * mv["hq"] + 2.0 * mv["hkv"]
                                                   + mv["mlp_mats"] * (h + mv["f_avg"])) / tp_, 0.0)
        train_dense = np.where(lora, lora_params, dense_stage)
        train_exp = np.where(lora, 0.0, exp_stage)

        # ---------------------------------------------------------------- data-parallel communication and optimizer
        w_comm = wbytes                                           # weights gathered at their storage precision
        g_bytes = np.where(zs >= 3, 4.0, 2.0)                     # FSDP reduces in fp32, Megatron-Core in bf16
        ring_dense = np.where(g_d > 1, (g_d - 1) / g_d, 0.0)
        ring_exp = np.where(g_e > 1, (g_e - 1) / g_e, 0.0)
        grad_vol = train_dense * ring_dense + train_exp * ring_exp
        weight_vol = np.where(lora, 0.0, (dense_stage * ring_dense + exp_stage * ring_exp) * w_comm)
        bw_dp = bw(g_d, tp_)                                       # the dp x cp group strides over tp
        # collectives of the step: ZeRO 0-2 reduce gradients in buckets of BUCKET parameters (all-gather the updated
        # weights in as many with ZeRO 1/2); ZeRO 3/FSDP gathers twice and reduce-scatters once per layer per
        # micro-batch. Each pays the fixed latency plus the ring's per-hop latency over the dp x cp group.
        n_buckets = np.maximum(1.0, np.ceil((train_dense + train_exp) / BUCKET))
        n_coll_dp = np.where(zs >= 3, 3.0 * Ls * m_mb, np.where(zs >= 1, 2.0, 1.0) * n_buckets)
        lat_dp = n_coll_dp * (lat + hop * np.maximum(g_d - 1.0, 0.0)) * (grad_vol > 0)
        # hybrid sharding: once per step, an all-reduce of each shard's gradients across the replicas
        rep_vol = 2.0 * (np.where(r_d > 1, (r_d - 1) / r_d, 0.0) * train_dense / g_d
                         + np.where(r_e > 1, (r_e - 1) / r_e, 0.0) * train_exp / g_e) * g_bytes
        t_rep = np.where(hyb & (r_d > 1), rep_vol / bw(r_d, tp_ * g_d) + n_buckets * (lat + hop * (r_d - 1.0)), 0.0)
        t_dp_z0 = 2.0 * grad_vol * g_bytes / bw_dp
        t_dp_z12 = (grad_vol * g_bytes + np.where(lora, 0.0, weight_vol)) / bw_dp
        t_dp_z3 = m_mb * (grad_vol * g_bytes + 2.0 * np.where(lora, lora_params * ring_dense * 2.0, weight_vol)) / bw_dp
        t_dp = np.where(zs >= 3, t_dp_z3, np.where(zs >= 1, t_dp_z12, t_dp_z0)) + lat_dp + t_rep
        window = np.where(zs >= 3, t_pipe, t_fwd + t_bwd)
        # ZeRO 0-2: buckets hide behind the backward window; ZeRO 3/FSDP: collectives beside every layer, a
        # (1 - dp_overlap) share exposed by SM/HBM contention even when the window is longer
        t_dp_exp = np.where(zs >= 3, t_dp - F["dp_overlap"] * np.minimum(t_dp, window),
                            np.maximum(0.0, t_dp - F["dp_overlap"] * window))
        opt_params = (train_dense / np.where(zs >= 1, g_d, 1.0) + train_exp / np.where(zs >= 1, g_e, 1.0))
        t_opt_gpu = opt_params * ADAM_BYTES / hbm
        t_opt_host = opt_params * 4.0 / (gv["host_gbs"] * 1e9)    # 16-bit gradients down, 16-bit weights up
        t_opt = np.where(off_opt, t_opt_host, t_opt_gpu)
        w_stream = 2.0 * (dense_stage + exp_stage) * wbytes / (gv["host_gbs"] * 1e9)
        t_w_off = np.where(off_w, np.maximum(0.0, w_stream - t_compute_mb) * m_mb, 0.0)
        step = t_pipe + t_dp_exp + t_opt + t_w_off + F["step_overhead_s"]

        # ---------------------------------------------------------------- memory per GPU
        shard_w = np.where(zs >= 3, 1.0, 0.0)
        weights = (body_stage * wbytes + (dense_stage - body_stage) * 2.0) / np.where(shard_w > 0, g_d, 1.0) \
            + exp_stage * wbytes / np.where(shard_w > 0, g_e, 1.0) + lora_params * 2.0
        weights = np.where(off_w, 0.0, weights)
        grads = 2.0 * (train_dense / np.where(zs >= 2, g_d, 1.0) + train_exp / np.where(zs >= 2, g_e, 1.0))
        optim = np.where(off_opt, 0.0, 12.0 * opt_params)
        hq, hkv, f = mv["hq"], mv["hkv"], mv["f_avg"]
        repl = 4.0 * h + abytes * h + abytes * h                  # norm inputs; QKV and fc1 GEMM inputs
        fc1_out = np.where(mv["gated"] > 0, 2.0 * 2.0 * f, 2.0 * f)
        tpart = 2.0 * (hq + 2.0 * hkv) + 2.0 * hq + fc1_out + abytes * f
        per_layer_tok = repl / np.where(sp, tp_, 1.0) + tpart / tp_
        per_layer = tok_mb * per_layer_tok + np.where(fa | (rc > 0), 0.0, tok_mb * 5.0 * mv["heads"] / tp_ * s)
        inflight = np.minimum(pp_, m_mb) * np.where(vp_ > 1, 1.0 + (pp_ - 1) / (pp_ * vp_), 1.0)
        layer_in = tok_mb * 2.0 * h / np.where(sp, tp_, 1.0)
        # selective-op (torchtitan's op-level selective checkpointing, parallelize_llama.py at 9dec370: MUST_SAVE the
        # outputs of every second aten.mm, of flash / efficient SDPA, of reduce_scatter, abs and max; recompute the
        # rest): the layer input (16-bit, split over tp with SP), Q and V (1st and 3rd matmuls), the attention output
        # and its fp32 log-sum-exp, the MLP's gate / fc1 output (5th) and the down projection's output (7th: with
        # tp > 1 the row-parallel matmul's full-size partial sum, plus the reduce-scatter's share with SP); all
        # 16-bit whatever the GEMM precision (fp8 GEMMs output bf16)
        op_tok = (2.0 * h / np.where(sp, tp_, 1.0) + (4.0 * hq + 2.0 * hkv + 4.0 * mv["heads"] + 2.0 * f) / tp_
                  + 2.0 * h * (1.0 + np.where(sp & (tp_ > 1), 1.0 / tp_, 0.0)))
        op_layer = tok_mb * op_tok
        stage_acts = np.where(rc == 2, Ls * layer_in, np.where(rc == 3, Ls * op_layer, Ls * per_layer))
        # the layer being recomputed in the backward: with full recompute all of its activations, with selective-op
        # those it did not save
        work = np.where(rc == 2, per_layer, np.where(rc == 3, np.maximum(per_layer - op_layer, 0.0), 0.0))
        # a layer's forward temporaries that are not stored: the MLP's 16-bit intermediates that checkpointing drops
        # (full: gate, up and their product; selective-op: up and the product; non-gated: one fewer) and, with tp > 1,
        # the row-parallel GEMM's full-size partial sum before its reduce-scatter / all-reduce. Freed after each layer,
        # their blocks stay in the caching allocator's pool, too small for the loss's buffers, so they are reserved
        # when the loss allocates (torch.cuda.max_memory_reserved counts them)
        n_tmp = np.where(rc == 2, 2.0, np.where(rc == 3, 1.0, 0.0)) + np.where((rc >= 2) & (mv["gated"] > 0), 1.0, 0.0)
        fwd_tmp = tok_mb * (n_tmp * 2.0 * f / tp_ + np.where(tp_ > 1, 2.0 * h, 0.0))
        # outside the layers: the final norm's 16-bit input (split over tp with SP) and, with tp = 1, the LM head's
        # input (with tp > 1 the head's all-gathered input is the TP buffer of `comm`), kept until the head's backward
        head_in = tok_mb * 2.0 * h * (1.0 / np.where(sp, tp_, 1.0) + np.where(tp_ > 1, 0.0, 1.0))
        # the loss on the stage holding the LM head (the last; the only one with pp = 1), which 1F1B reaches with one
        # micro-batch in flight while the first stage holds min(pp, m): bytes per vocabulary entry per token of the
        # cross-entropy implementation, at the start of the backward, before any layer is recomputed
        ce_bytes = np.where(eager_ce, np.where(tp_ > 1, EAGER_LOGIT_BYTES[1], EAGER_LOGIT_BYTES[0]), LOGIT_BYTES)
        logits = tok_mb * V / tp_ * ce_bytes
        last = stage_acts + np.maximum(logits + fwd_tmp + head_in, work)
        acts = np.where(pp_ == 1, last, np.maximum(inflight * stage_acts + work, last))
        # ZeRO-3 gathers (and prefetches) up to two layers' weights that are not resident, (1 - 1/dp) of them, and
        # the embedding / LM head (FSDP's root unit) while it computes
        gather = np.minimum(2.0, Ls) * wbytes * (mv["dense_body"] / L / tp_ * (1.0 - 1.0 / g_d)
                                                 + mv["expert_body"] / L / (ep_ * tp_) * (1.0 - 1.0 / g_e)) \
            + 2.0 * V * h / tp_ * (1.0 - 1.0 / g_d)
        comm = np.where(tp_ > 1, act16, 0.0) + np.where(zs >= 3, gather, 0.0) + RESERVE_GIB * GIB
        total = weights + grads + optim + acts + comm
        mem_gib = total / GIB

        # ---------------------------------------------------------------- throughput, MFU, cost
        tokens_step = B * s
        tps = tokens_step / step
        tps_gpu = tps / n
        n_model = mv["lin_active"] + V * h                         # active parameters with the LM head, no embedding
        attn_model = 6.0 * mv["La"] * mv["heads"] * (mv["d_qk"] + mv["d_v"]) * (
            (1 - frac_slide) * s + frac_slide * np.where(w > 0, np.minimum(s, w), s))
        if np.any(mv["d_win"] > 0):  # window layers of their own head width
            attn_model = np.where(mv["d_win"] > 0, 6.0 * mv["La"] * mv["heads"] * (
                (1 - frac_slide) * s * (mv["d_qk"] + mv["d_v"])
                + frac_slide * np.where(w > 0, np.minimum(s, w), s) * mv["d_win"]), attn_model)
        flops_tok = 6.0 * n_model * np.where(lora, 2.0 / 3.0, 1.0) + attn_model
        model_tflops = tps_gpu * flops_tok / 1e12
        busy = np.clip((n_slots * t_compute_mb + t_opt) / step, 0.0, 1.0)
        power = gv["idle"] + (gv["tdp"] - gv["idle"]) * busy
        return {
            "step_time_s": step, "tokens_per_s": tps, "tokens_per_s_per_gpu": tps_gpu, "model_tflops_per_gpu": model_tflops,
            "mfu_pct": 100.0 * model_tflops / gv["peak16"], "mem_per_gpu_gib": mem_gib, "mem_weights_gib": weights / GIB,
            "mem_gradients_gib": grads / GIB, "mem_optimizer_gib": optim / GIB, "mem_activations_gib": acts / GIB,
            "mem_comm_buffers_gib": comm / GIB, "fits": mem_gib <= gv["mem_gib"], "dp": dp, "n_micro_batches": m_mb,
            "bubble_pct": 100.0 * (pp_ - 1) / vp_ * t_mb / step,
            "exposed_comm_pct": 100.0 * (n_slots * (t_tp_exp + t_cp_exp + t_ep + t_pp) + t_dp_exp) / step,
            **({"time_to_train_h": np.nan, "usd_per_run": np.nan, "mwh_per_run": np.nan} if tok is None else {
                "time_to_train_h": tok / tps / 3600.0, "usd_per_run": tok / tps / 3600.0 * n * gv["price"],
                "mwh_per_run": tok / tps / 3600.0 * n * power / 1e6}),
        }

    # chunks of CHUNK configurations keep every intermediate array in cache (a memory-bound numpy pipeline is
    # several times faster on 64k rows than on a million); one float block without pandas consolidating columns
    floats = FLOAT_COLUMNS
    block = np.empty((len(floats), N))
    fits = np.empty(N, dtype=bool)
    per_row = dict(n=n, tp_=tp_, pp_=pp_, cp_=cp_, ep_=ep_, vp_=vp_, s=s, b=b, B=B, rank=rank, sp=sp, gcol=gcol,
                   wbytes=wbytes, abytes=abytes, recipe=recipe, rc=rc, zs=zs, off_opt=off_opt, off_w=off_w, lora=lora,
                   dp=dp, m_mb=m_mb, peak_g=peak_g, gemm_eff=gemm_eff, attn_eff=attn_eff, tok=tok_row, hyb=hyb, tpo=tpo,
                   epo=epo, fa=fa, eager_ce=eager_ce)
    for a in range(0, N, CHUNK):
        sl = slice(a, min(N, a + CHUNK))

        def cut(x: Any, sl: slice = sl) -> Any:   # bound now (B023); used only within this iteration
            return x[sl] if np.ndim(x) else x

        out = core(**{k: cut(v) for k, v in per_row.items()}, mv={k: cut(v) for k, v in mv.items()},
                   gv={k: cut(v) for k, v in gv.items()})
        for j, c in enumerate(floats):
            block[j, sl] = out[c]
        fits[sl] = out["fits"]
    return block, fits
