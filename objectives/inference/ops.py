"""Per-layer parameter counts, FLOPs and bytes of one transformer forward pass (per GPU), and the step-time formula.

All functions take numpy arrays (or floats) that broadcast together: one element per configuration.
Units: parameters and FLOPs are counts, bytes are bytes, times are seconds unless the name says ms.

The one step-time formula (`forward_s`) is shared by `estimate` (static batch: prefill, mean decode step),
`max_throughput` (steady-state in-flight batching) and `StepModel.time_ms` (one continuous-batching iteration):
each op costs max(FLOPs / (peak x eff), bytes / (bandwidth x eff)), plus TP all-reduces and per-step overheads.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from objectives.catalog.model_math import expert_width
from objectives.catalog.types import DTYPES

Num = Any  # float or np.ndarray


@dataclass
class ModelShape:
    """Model hyper-parameters as broadcastable arrays (fields of `objectives.catalog.Model`)."""

    n_layers: Num
    hidden: Num
    n_heads: Num
    n_kv_heads: Num
    head_dim: Num
    ffn: Num
    vocab: Num
    gated: Num                # 1.0 gated (3 matrices) / 0.0 plain (2 matrices)
    tie: Num                  # 1.0 tied embeddings
    parallel_residual: Num    # 1.0: one all-reduce per layer
    n_experts: Num
    top_k: Num
    moe_ffn: Num
    shared_ffn: Num
    first_k_dense: Num
    moe_layer_freq: Num
    q_lora_rank: Num
    kv_lora_rank: Num
    qk_nope: Num
    qk_rope: Num
    v_head: Num
    # ---- hybrid / bounded-span attention (issue 13); defaults describe a plain transformer --------------------
    n_lin: Num = 0.0          # linear-attention / SSM layers (no KV cache); the other n_layers - n_lin are softmax
    lin_params: Num = 0.0     # projection parameters of ONE linear layer (whole model, split over tp)
    lin_state_bytes: Num = 0.0  # constant state bytes ONE sequence keeps in ONE linear layer (split over tp)
    lin_flops: Num = 0.0      # recurrence FLOPs per token of ONE linear layer beyond its projections (split over tp)
    n_win: Num = 0.0          # softmax layers whose span is bounded by `window` (sliding window, chunked local)
    window: Num = 0.0         # that bound, tokens
    attn_gate: Num = 0.0      # 1.0: gated query (q_proj twice as wide; Qwen3.5 / Qwen3-Next)
    idx_topk: Num = 0.0       # DeepSeek sparse attention: keys each query attends (0: dense)
    idx_heads: Num = 0.0      # ... lightning-indexer heads
    idx_dim: Num = 0.0        # ... indexer head dim (its key is cached per token, per layer)
    lin_v_heads: Num = 0.0    # linear-attention value heads (whole model; the kernel profile's lookup key)
    moe_latent: Num = 0.0     # latent MoE: the routed experts' width (0: they work on the hidden state)
    swa_pool: Num = 0.0       # 1: SGLang gives this architecture's window layers a pool of their own (kv_pool)
    # ---- DeepSeek-V4 compressed attention (0.0 for every other model; `Model.n_csa_layers` ...) ------------------
    v4: Num = 0.0             # 1.0: compressed attention (CSA / HCA layers)
    v4_rep: Num = 0.0         # attention parameters per layer replicated on every TP rank (catalog v4_attention_split)
    v4_split: Num = 0.0       # ... split over the TP ranks (by heads)
    n_csa: Num = 0.0          # CSA layers (compressed every csa_ratio tokens, top idx_topk attended)
    n_hca: Num = 0.0          # HCA layers (compressed every hca_ratio tokens, all attended)
    csa_ratio: Num = 0.0
    hca_ratio: Num = 0.0
    v4_entry: Num = 0.0       # KV elements of one entry, window or compressed (catalog v4_entry_elements)
    v4_grow: Num = 0.0        # KV elements per token of context beyond the windows (catalog v4_compressed_...)
    v4_state: Num = 0.0       # compressor state bytes ONE sequence keeps (replicated on every TP rank)
    hc_mult: Num = 0.0        # hyper-connection streams of the residual (0: plain residual)
    o_groups: Num = 0.0       # groups of the grouped output projection (TP splits whole groups)
    n_ffn_only: Num = 0.0     # blocks with an MLP and no token mixer (Nemotron-NAS "no_op" attention)
    dense8: Num = 0.0         # 1.0: non-expert weights stay FP8 when the experts are 4-bit (Model.dense_weight_dtype)
    mx4: Num = 0.0            # 1.0: the checkpoint's 4-bit format is MXFP4 (the fused-MoE kernel tables it reads)
    fp8blk: Num = 0.0         # 1.0: the checkpoint's FP8 is block-scaled (the GEMM tables it reads)
    fp8tok: Num = 0.0         # 1.0: the checkpoint's FP8 activations are scaled per token at run time (per-channel)
    # ---- the checkpoint's own format as the engines launch it (0.0: an unquantized checkpoint) ------------------
    ckpt_w: Num = 0.0         # 1 + the code (catalog DTYPES) of the checkpoint's weight format (0: unquantized)
    kv8: Num = 0.0            # 1.0: the checkpoint ships FP8 KV-cache scales (its "auto" KV cache is fp8)
    attn_out: Num = 0.0       # the attention output projection's input, heads x value width (0: not checked)
    dense_ffn: Num = 0.0      # the dense MLP layers' FFN width (0: the model has none)
    sgl_pad: Num = 0.0        # 1.0: SGLang pads this architecture's expert shards on SM100 (block_fp8_invalid)
    dsa: Num = 0.0            # 1.0: DeepSeek sparse attention (Model.is_deepseek_sparse; engine_kv_rule)
    # ---- GQA shapes beyond one head width and one KV-head count (0.0: as head_dim / n_kv_heads) ---------------
    gqa_v_head: Num = 0.0     # value head width where it differs from head_dim (MiMo-V2-Flash: 128 vs 192)
    swa_kv_heads: Num = 0.0   # KV heads of the `n_win` window layers where they differ (MiMo-V2-Flash: 8 vs 4)
    swa_head: Num = 0.0       # head width (q, k, v, o) of the window layers where it differs (Gemma 4: 256 vs 512)
    attn16w: Num = 0.0        # 1.0: a 4-bit checkpoint keeps every attention projection in 16 bits (even dense)
    sh16w: Num = 0.0          # share of the MoE layers whose shared experts the checkpoint keeps in 16 bits
    mlp16w: Num = 0.0         # share of the other layers whose dense MLP the checkpoint keeps in 16 bits
    aq_set: Num = 0.0         # 1.0: a 4-bit MoE checkpoint's config says which attention it quantizes (the 4 below)
    aq_fmt: Num = 0.0         # share of the softmax-attention layers stored in the checkpoint's own format
    aq8: Num = 0.0            # ... stored in FP8
    lq_fmt: Num = 0.0         # share of the linear-attention layers stored in the checkpoint's own format
    lq8: Num = 0.0            # ... stored in FP8
    # ---- Kimi-K3 (0.0 for every other model) ---------------------------------------------------------------------
    lin_kda: Num = 0.0        # 1.0: the linear layers are Kimi Delta Attention (their own kernel tables, `measured`)
    lin_kind: Num = 0.0       # the linear layers' kind, its index in LINEAR_KINDS (0: no linear-attention layers)
    attn_res_bytes: Num = 0.0  # attention-residual mixing traffic per token, all layers, bytes (catalog model_math)
    # ---- MiniMax sparse attention on GQA (0.0 for every other model; `Model.index_block`) ----------------------
    idx_block: Num = 0.0      # the indexer's block, tokens (> 0: MiniMax sparse attention; idx_topk its span)
    n_idx: Num = 0.0          # attention layers with it (the others attend densely)
    # ---- Mamba-2 (Nemotron-H hybrids; 0.0 for every other model) -------------------------------------------------
    mamba_inner: Num = 0.0    # > 0: the linear layers are Mamba-2: heads x head dim (whole model; conv channels)
    mamba_groups: Num = 0.0   # ... B / C groups (n_groups; split over tp, at least one per GPU)
    mamba_state: Num = 0.0    # ... SSM state dim (d_state): each group's B and C add 2 x this conv channels
    # ---- serving ----------------------------------------------------------------------------------------------------
    context: Num = 0.0        # the model's context length, tokens (config max_position_embeddings; 0: unknown)

    @classmethod
    def from_models(cls, models: list, index: np.ndarray | None = None) -> ModelShape:
        """From `Model` records; `index` picks one record per configuration (None: a single model, floats)."""
        f = {
            "n_layers": "n_layers", "hidden": "hidden", "n_heads": "n_heads", "n_kv_heads": "n_kv_heads",
            "head_dim": "head_dim", "ffn": "ffn", "vocab": "vocab", "gated": "gated_mlp", "tie": "tie_embeddings",
            "parallel_residual": "parallel_residual", "n_experts": "n_experts", "top_k": "top_k",
            "moe_ffn": "moe_ffn", "shared_ffn": "shared_ffn", "first_k_dense": "first_k_dense",
            "moe_layer_freq": "moe_layer_freq", "q_lora_rank": "q_lora_rank", "kv_lora_rank": "kv_lora_rank",
            "qk_nope": "qk_nope_head_dim", "qk_rope": "qk_rope_head_dim", "v_head": "v_head_dim",
        }
        vals = {}
        for k, attr in f.items():
            col = np.array([float(getattr(m, attr)) for m in models])
            vals[k] = float(col[0]) if index is None else col[index]
        for k, fn in {**_hybrid_columns(), "context": lambda m: getattr(m, "max_position", 0) or 0}.items():
            col = np.array([float(fn(m)) for m in models])
            # all-equal (usually all-zero) columns stay scalars: plain transformers pay nothing for these fields
            vals[k] = float(col[0]) if index is None or (col == col[0]).all() else col[index]
        return cls(**vals)

    # ---- layer counts ---------------------------------------------------------------------------------------
    def n_moe_layers(self) -> Num:
        """Number of MoE layers (0 for dense models)."""
        is_moe = self.n_experts > 0
        after = np.maximum(self.n_layers - self.first_k_dense, 0)
        freq = np.maximum(self.moe_layer_freq, 1)
        return np.where(is_moe, np.floor(after / freq), 0.0)


def _check_costable(m: Any) -> Any:
    """`m` if the cost model can cost its layer kinds, else `CatalogError` naming the field. A `Model` record (one
    built or edited by hand and handed to the cost model without a catalog) also passes `checks.validate_model`."""
    from objectives.catalog.checks import check_hybrid, validate_model
    from objectives.catalog.errors import CatalogError
    from objectives.catalog.types import Model

    kind = getattr(m, "linear_attn_kind", "")
    if getattr(m, "n_linear_attn_layers", 0) and kind not in ("gdn", "mamba2", "kda"):
        raise CatalogError(f"model {m.name!r}: linear_attn_kind={kind!r} on {m.n_linear_attn_layers} layers cannot "
                           "be costed (known: 'gdn', 'mamba2', 'kda')")
    check_hybrid({f: getattr(m, f, 0) for f in ("n_layers", "n_linear_attn_layers", "linear_attn_kind",
                                                "linear_num_k_heads", "linear_num_v_heads", "linear_head_k_dim",
                                                "linear_head_v_dim")}, f"model {m.name!r}")
    if (getattr(m, "index_topk", 0) and not m.kv_lora_rank and not getattr(m, "n_csa_layers", 0)
            and not getattr(m, "index_block", 0)):
        raise CatalogError(f"model {m.name!r}: index_topk (DeepSeek sparse attention) is only costed on MLA models "
                           "(kv_lora_rank > 0)")
    return validate_model(m) if isinstance(m, Model) else m


def _is_mamba2(m: Any) -> bool:
    """The model's linear layers are Mamba-2 (`linear_num_k_heads` its groups, `linear_head_k_dim` its state dim)."""
    return bool(m.linear_attn_kind == "mamba2" and m.n_linear_attn_layers > 0)


#: the linear-attention kinds (`Model.linear_attn_kind`) by their code in `ModelShape.lin_kind`; "": none
LINEAR_KINDS = ("", "gdn", "kda", "mamba2")


def _hybrid_columns() -> dict[str, Callable[[Any], float]]:
    """ModelShape fields derived from a `Model` for hybrid, windowed and sparse attention (see `layer_costs`)."""
    from objectives.catalog import model_math as mm

    from . import kv_pool

    def ok(fn: Callable[[Any], float]) -> Callable[[Any], float]:
        return lambda m: fn(_check_costable(m))

    return {
        "n_lin": ok(mm.n_linear_layers),
        "lin_params": lambda m: mm.linear_attn_params_per_layer(m) if m.n_linear_attn_layers else 0.0,
        "lin_state_bytes": lambda m: (mm.linear_state_bytes_per_seq(m) / mm.n_linear_layers(m)
                                      if m.n_linear_attn_layers else 0.0),
        "lin_flops": lambda m: mm.linear_flops_per_token_layer(m) if m.n_linear_attn_layers else 0.0,
        "n_win": mm.n_sliding_layers,
        "window": lambda m: float(m.sliding_window) if mm.n_sliding_layers(m) else 0.0,
        "attn_gate": lambda m: float(m.attn_output_gate),
        "idx_topk": lambda m: float(m.index_topk),
        "idx_heads": lambda m: float(m.index_n_heads) if m.index_topk else 0.0,
        "idx_dim": lambda m: float(m.index_head_dim) if m.index_topk else 0.0,
        "lin_v_heads": lambda m: float(m.linear_num_v_heads) if m.n_linear_attn_layers else 0.0,
        "moe_latent": lambda m: float(m.moe_latent),
        "swa_pool": lambda m: float(m.architecture in kv_pool.SGLANG_HYBRID_SWA_ARCHS),
        "v4": lambda m: float(m.is_compressed_attention),
        "v4_rep": lambda m: mm.v4_attention_split(m)[0] if m.is_compressed_attention else 0.0,
        "v4_split": lambda m: mm.v4_attention_split(m)[1] if m.is_compressed_attention else 0.0,
        "n_csa": lambda m: float(m.n_csa_layers),
        "n_hca": lambda m: float(m.n_hca_layers),
        "csa_ratio": lambda m: float(m.csa_ratio),
        "hca_ratio": lambda m: float(m.hca_ratio),
        "v4_entry": lambda m: mm.v4_entry_elements(m) if m.is_compressed_attention else 0.0,
        "v4_grow": mm.v4_compressed_elements_per_token,
        "v4_state": mm.v4_compressor_state_bytes_per_seq,
        "hc_mult": lambda m: float(m.hc_mult),
        "o_groups": lambda m: float(m.o_groups),
        "n_ffn_only": lambda m: float(m.n_ffn_only_layers),
        "dense8": lambda m: float(m.dense_weight_dtype == "fp8"),
        "mx4": lambda m: float(m.quant_scheme == "mxfp4"),
        "fp8blk": lambda m: float(m.quant_scheme == "fp8_block"),
        "fp8tok": lambda m: float(m.quant_scheme == "fp8_per_channel"),
        "ckpt_w": lambda m: float(DTYPES.index(m.quant_weight_dtype) + 1) if m.quant_weight_dtype else 0.0,
        "kv8": lambda m: float(m.quant_kv_dtype == "fp8"),
        "attn_out": lambda m: block_fp8_columns(m)["attn_out"],
        "dense_ffn": lambda m: block_fp8_columns(m)["dense_ffn"],
        "sgl_pad": lambda m: block_fp8_columns(m)["arch_padded"],
        "dsa": lambda m: float(m.is_deepseek_sparse),
        "gqa_v_head": lambda m: float(m.v_head_dim) if not m.kv_lora_rank and m.v_head_dim != m.head_dim else 0.0,
        "swa_kv_heads": lambda m: (float(m.swa_n_kv_heads) if mm.n_sliding_layers(m)
                                   and m.swa_n_kv_heads not in (0, m.n_kv_heads) else 0.0),
        "swa_head": lambda m: (float(m.swa_head_dim) if mm.n_sliding_layers(m)
                               and m.swa_head_dim not in (0, m.head_dim) else 0.0),
        "attn16w": lambda m: float(m.attn_16bit_weights),
        "sh16w": lambda m: float(m.shared_16bit_share),
        "mlp16w": lambda m: float(m.dense_mlp_16bit_share),
        "aq_set": lambda m: float(len(m.attn_quant_shares) == 4),
        "aq_fmt": lambda m: float(m.attn_quant_shares[0]) if m.attn_quant_shares else 0.0,
        "aq8": lambda m: float(m.attn_quant_shares[1]) if m.attn_quant_shares else 0.0,
        "lq_fmt": lambda m: float(m.attn_quant_shares[2]) if m.attn_quant_shares else 0.0,
        "lq8": lambda m: float(m.attn_quant_shares[3]) if m.attn_quant_shares else 0.0,
        "lin_kda": lambda m: float(m.linear_attn_kind == "kda" and m.n_linear_attn_layers > 0),
        "lin_kind": lambda m: float(LINEAR_KINDS.index(m.linear_attn_kind)) if mm.n_linear_layers(m) > 0 else 0.0,
        "attn_res_bytes": mm.attn_res_bytes_per_token,
        "idx_block": lambda m: float(m.index_block) if mm.n_index_layers(m) else 0.0,
        "n_idx": mm.n_index_layers,
        "mamba_inner": lambda m: float(m.linear_num_v_heads * m.linear_head_v_dim) if _is_mamba2(m) else 0.0,
        "mamba_groups": lambda m: float(m.linear_num_k_heads) if _is_mamba2(m) else 0.0,
        "mamba_state": lambda m: float(m.linear_head_k_dim) if _is_mamba2(m) else 0.0,
    }


def block_fp8_columns(m: Any) -> dict[str, float]:
    """The widths of a model record that a block-FP8 checkpoint's TP shards must tile (`resolve.block_fp8_invalid`):
    ``moe_ffn`` and ``n_experts`` (the routed experts), ``attn_out`` (the attention output projection's input,
    heads x value width; 0 for DeepSeek-V4, whose grouped low-rank output projection is split by whole groups),
    ``dense_ffn`` (the FFN of the dense MLP layers: a dense model's, an MoE model's first_k_dense / interleaved
    dense layers'; 0: none), ``shared_ffn`` and ``arch_padded`` (1.0: SGLang's SM100 MoE runner pads this
    architecture's expert shards, `resolve.SGLANG_PADDED_MOE_ARCHS`)."""
    from .resolve import SGLANG_PADDED_MOE_ARCHS
    v_width = m.v_head_dim if m.kv_lora_rank else (m.v_head_dim or m.head_dim)
    dense = (not m.is_moe) or m.first_k_dense > 0 or m.moe_layer_freq > 1
    return {"moe_ffn": float(m.moe_ffn), "n_experts": float(m.n_experts),
            "attn_out": 0.0 if m.is_compressed_attention else float(m.n_heads * v_width),
            "dense_ffn": float(m.ffn) if dense else 0.0, "shared_ffn": float(m.shared_ffn),
            "arch_padded": float(m.architecture in SGLANG_PADDED_MOE_ARCHS)}


@dataclass
class LayerCosts:
    """Per-GPU weights (parameter counts) and per-token work of all layers of a model under TP degree `tp`."""

    dense_params: Num        # attention projections + dense MLPs + shared experts + routers, per GPU, all layers
    expert_params: Num       # one routed expert across all MoE layers, per GPU (sharded over tp)
    embed_params: Num        # embedding + LM head, per GPU (sharded over tp)
    head_params: Num         # LM head per GPU
    attn_flops_prefill: Num  # FLOPs per (query, key) pair, all layers, per GPU
    attn_flops_decode: Num   # FLOPs per cached token read in decode, all layers, per GPU
    kv_elems_per_token: Num  # KV-cache elements per token, all layers, per GPU (x kv bytes = bytes)
    n_allreduce: Num         # all-reduces per forward (2 per layer, 1 with parallel residual)
    n_moe_layers: Num
    act_elems_per_token: Num  # peak activation elements per token in flight (one layer), per GPU
    # ---- issue 13: bounded-span attention, linear attention, sparse attention (0.0 for a plain transformer) ------
    # The fields above cover the softmax-attention layers only (linear layers have no KV and no pairs), with
    # sliding-window / chunked and sparse layers counted as if they attended to every cached token: an upper bound,
    # exact while the context fits the window (or top-k). The fields below let the step model bound them:
    win_kv_elems_per_token: Num = 0.0    # the part of kv_elems_per_token on window-bounded layers
    win_attn_flops_pair: Num = 0.0       # the part of attn_flops_prefill (and _decode) on window-bounded layers
    window_tokens: Num = 0.0             # their bound: each holds and attends to at most this many tokens
    state_bytes_per_seq: Num = 0.0       # constant per-sequence state of linear layers (recurrent + conv), per GPU
    linear_flops_per_token: Num = 0.0    # linear layers' recurrence FLOPs per token, per GPU (projections are in
                                         # dense_params); decode also reads and writes state_bytes_per_seq per step
    sparse_topk: Num = 0.0               # DeepSeek sparse attention: keys each query attends (0: dense)
    sparse_attn_flops_pair: Num = 0.0    # the part of attn_flops_prefill/_decode applied to at most sparse_topk
                                         # keys (the MLA; the rest is the indexer, which scores every key)
    attn_params: Num = 0.0               # the attention projections (softmax and linear layers) inside
                                         # dense_params: what 4-bit MoE checkpoints keep in 16 bits
    shared_params: Num = 0.0             # the MoE layers' shared experts inside dense_params
    dense_mlp_params: Num = 0.0          # the dense MLP layers inside dense_params
    # ---- DeepSeek-V4 (0.0 otherwise): kv_elems_per_token holds every layer's window entry (win_kv_elems_per_token)
    # plus the compressed entries; the attention terms above hold only the work that grows with the context
    # (HCA pairs, the CSA indexer's scores); what each query does in its bounded spans (the window, the CSA top-k)
    # is below, at full span
    bounded_attn_flops_per_token: Num = 0.0  # attention FLOPs per query token within the window and top-k spans
    bounded_kv_elems_per_token: Num = 0.0    # KV elements a query reads there
    held_state_bytes_per_seq: Num = 0.0      # compressor state per sequence, per GPU (memory only: written once a
                                             # token, read once per compression)
    hc_bytes_per_token: Num = 0.0            # hyper-connection mixing traffic per token, all layers (bytes)
    attn_res_bytes_per_token: Num = 0.0      # attention-residual mixing traffic per token, all layers (bytes; not
                                             # split over tp: every rank mixes the whole hidden state)
    # ---- MiniMax sparse attention (0.0 otherwise): the part of kv_elems_per_token (the sparse layers' K and V) a
    # decode reads for at most sparse_topk tokens; their indexer keys (in kv_elems_per_token too) are read in full
    sparse_kv_elems_per_token: Num = 0.0


def layer_costs(m: ModelShape, tp: Num) -> LayerCosts:
    """Parameter counts and per-token FLOP/byte coefficients per GPU for tensor-parallel degree `tp`.

    Rules: attention heads and MLP columns are split over `tp`; KV heads are split when tp <= n_kv_heads and
    replicated (vLLM/TensorRT-LLM behaviour) when tp > n_kv_heads, so each GPU holds ceil(n_kv_heads / tp).
    MLA (DeepSeek) latent KV is replicated on every TP rank. Routed experts are split over the TP group
    (TP or EP inside it: the bytes per GPU are the same).

    GQA values may be narrower than queries and keys (`gqa_v_head`), and window layers may have KV heads and a
    head width of their own (`swa_kv_heads`, `swa_head`: queries, keys, values and the output projection's input
    at that width): they enter the projections, the KV elements and the attention pairs. Full layers whose values
    are their keys (`Model.k_eq_v`) are costed with a value projection: the engines load k_proj into that slot.

    Hybrid models: only the n_layers - n_lin softmax-attention layers hold KV and attend (kv_elems_per_token,
    attn_flops_*); the n_lin linear-attention layers (Gated DeltaNet, Mamba-2) add their projections to
    dense_params (heads split over tp), their recurrence to linear_flops_per_token and a constant per-sequence
    state_bytes_per_seq. Window-bounded layers (sliding window, Llama 4 chunks) and DeepSeek sparse attention are
    inside the dense terms as an upper bound, with their parts in the win_* / sparse_* fields.
    """
    L = m.n_layers
    La = L - m.n_lin - m.n_ffn_only  # softmax-attention layers (full, windowed or sparse); the n_lin others are
    # linear, the n_ffn_only others have no token mixer
    h = m.hidden
    mla = m.kv_lora_rank > 0
    kv_heads_gpu = np.ceil(m.n_kv_heads / tp)
    # the window layers' KV heads per GPU (their own where the model gives them some, else the full layers')
    swa_kv_gpu = np.ceil(np.where(m.swa_kv_heads > 0, m.swa_kv_heads, m.n_kv_heads) / tp)
    vd = np.where(m.gqa_v_head > 0, m.gqa_v_head, m.head_dim)  # GQA value head width
    q_dim = m.n_heads * m.head_dim
    o_dim = m.n_heads * vd
    n_win = np.minimum(m.n_win, La)
    # --- attention projections per layer per GPU (keys of head_dim, values of vd per KV head)
    gqa_attn = (h * q_dim * (1.0 + m.attn_gate) + o_dim * h) / tp + h * kv_heads_gpu * (m.head_dim + vd)
    qk_head = m.qk_nope + m.qk_rope
    q_proj = np.where(m.q_lora_rank > 0, h * m.q_lora_rank + m.q_lora_rank * m.n_heads * qk_head / tp,
                      h * m.n_heads * qk_head / tp)
    # DeepSeek sparse attention's lightning indexer (query from the q latent, one key, head weights), replicated
    indexer = np.where(m.idx_topk > 0, np.where(m.q_lora_rank > 0, m.q_lora_rank, h) * m.idx_heads * m.idx_dim
                       + h * m.idx_dim + h * m.idx_heads, 0.0)
    mla_attn = (q_proj + h * (m.kv_lora_rank + m.qk_rope)
                + m.kv_lora_rank * m.n_heads * (m.qk_nope + m.v_head) / tp + m.n_heads * m.v_head * h / tp + indexer)
    # Kimi-K3's MLA output gate (Model.attn_output_gate on MLA): hidden -> n_heads x v_head, split by heads
    mla_attn = np.where(m.attn_gate > 0, mla_attn + h * m.n_heads * m.v_head / tp, mla_attn)
    attn_params = np.where(mla, mla_attn, gqa_attn)
    v4 = m.v4 > 0
    attn_params = np.where(v4, m.v4_rep + m.v4_split / tp, attn_params)
    # --- MLPs
    n_mat = np.where(m.gated > 0, 3.0, 2.0)
    n_moe = m.n_moe_layers()
    n_dense = L - n_moe
    dense_mlp = n_mat * h * m.ffn / tp
    shared = n_mat * h * m.shared_ffn / tp
    router = h * m.n_experts
    # latent MoE: hidden -> latent before the routed experts and back after, replicated on every TP rank
    latent_proj = 2.0 * h * m.moe_latent
    # a GQA window layer's difference to a full one (its own KV heads; exactly 0 otherwise) ...
    swa_attn = np.where(mla | v4, 0.0, h * (swa_kv_gpu - kv_heads_gpu) * (m.head_dim + vd))
    # ... and where its heads have a width of their own (queries, keys, values and output at swa_hd)
    own_hd = (m.swa_head > 0) & ~mla & ~v4
    swa_hd = np.where(own_hd, m.swa_head, m.head_dim)
    swa_vd = np.where(own_hd, m.swa_head, vd)
    win_attn = ((h * m.n_heads * swa_hd * (1.0 + m.attn_gate) + m.n_heads * swa_vd * h) / tp
                + h * swa_kv_gpu * (swa_hd + swa_vd))
    swa_attn = np.where(own_hd, win_attn - gqa_attn, swa_attn)
    attn_all = La * attn_params + n_win * swa_attn + m.n_lin * m.lin_params / tp
    dense_params = attn_all + n_dense * dense_mlp + n_moe * (shared + router + latent_proj)
    expert_params = n_moe * n_mat * expert_width(h, m.moe_latent) * m.moe_ffn / tp
    head = h * m.vocab / tp
    embed = np.where(m.tie > 0, head, 2 * head)
    # --- attention work (pairs): 2 FLOPs per multiply-add, QK^T and PV
    heads_gpu = m.n_heads / tp
    gqa_pair = 2 * heads_gpu * (m.head_dim + vd)  # QK^T over head_dim, PV over vd
    win_pair = np.where(own_hd, 2 * heads_gpu * (swa_hd + swa_vd), gqa_pair)  # a window layer's (its own widths)
    mla_prefill = 2 * heads_gpu * (qk_head + m.v_head)
    mla_decode = 2 * heads_gpu * (m.kv_lora_rank + m.qk_rope + m.kv_lora_rank)  # absorbed weights
    idx_pair = np.where(m.idx_topk > 0, 2 * m.idx_heads * m.idx_dim, 0.0)  # indexer scores every (query, key)
    attn_prefill = La * (np.where(mla, mla_prefill, gqa_pair) + idx_pair)
    attn_decode = La * (np.where(mla, mla_decode, gqa_pair) + idx_pair)
    # window layers with heads of their own width: their difference to a full layer's pairs
    attn_prefill = np.where(own_hd, attn_prefill + n_win * (win_pair - gqa_pair), attn_prefill)
    attn_decode = np.where(own_hd, attn_decode + n_win * (win_pair - gqa_pair), attn_decode)
    kv_layer = np.where(mla, m.kv_lora_rank + m.qk_rope + np.where(m.idx_topk > 0, m.idx_dim, 0.0),
                        kv_heads_gpu * (m.head_dim + vd))
    # a window layer's KV elements (its own KV heads where it has some)
    kv_win_layer = np.where(mla, kv_layer, swa_kv_gpu * (swa_hd + swa_vd))
    kv_elems = La * kv_layer + n_win * (kv_win_layer - kv_layer)
    # DeepSeek-V4: one head_dim entry is key and value (QK^T and PV over head_dim each); per cached token the HCA
    # layers attend 1 / hca_ratio entries and the CSA indexer scores 1 / csa_ratio; each query also attends its
    # window (every layer) and the CSA top-k: bounded spans, at full span
    v4_pair = 2 * heads_gpu * 2 * m.head_dim
    v4_grow_pairs = (m.n_hca * v4_pair / np.maximum(m.hca_ratio, 1.0)
                     + m.n_csa * 2 * m.idx_heads * m.idx_dim / np.maximum(m.csa_ratio, 1.0))
    attn_prefill = np.where(v4, v4_grow_pairs, attn_prefill)
    attn_decode = np.where(v4, v4_grow_pairs, attn_decode)
    kv_layer = np.where(v4, m.v4_entry, kv_layer)
    kv_win_layer = np.where(v4, m.v4_entry, kv_win_layer)
    kv_elems = np.where(v4, La * m.v4_entry + m.v4_grow, kv_elems)
    bounded = np.where(v4, La * m.window + m.n_csa * m.idx_topk, 0.0)
    # one after the mixer and one after the MLP of each block (one with a parallel residual); none after a mixer a
    # block does not have
    n_ar = np.where(m.parallel_residual > 0, L, 2.0 * L - m.n_ffn_only)
    inter = np.maximum(m.ffn, m.moe_ffn * np.maximum(m.top_k, 1) + m.shared_ffn)
    # q, k and v of the wider of the two layer kinds (full; window layers of their own KV heads or head width)
    act = (4 * h + np.maximum(q_dim + kv_heads_gpu * (m.head_dim + vd) * tp,
                              m.n_heads * swa_hd + swa_kv_gpu * (swa_hd + swa_vd) * tp) / tp + 2 * inter / tp)
    sparse = np.where((m.idx_topk > 0) & ~v4, La * np.where(mla, mla_prefill, gqa_pair), 0.0)
    sparse_kv: Num = 0.0
    if np.any(m.idx_block > 0):
        # MiniMax sparse attention (GQA): on its n_idx layers the indexer's query heads shard over TP as the KV heads
        # do (replicated past them), its one key head is replicated and cached; every (query, cached token) pair
        # costs the index score, the GQA pairs only within the idx_topk span. The dense terms above hold the
        # DeepSeek indexer's all-layer replicated form: replaced here on these rows
        msa = m.idx_block > 0
        ih_gpu = np.ceil(m.idx_heads / tp)
        msa_idx = m.n_idx * (h * ih_gpu * m.idx_dim + h * m.idx_dim)
        msa_pair = La * gqa_pair + m.n_idx * 2 * ih_gpu * m.idx_dim
        dense_params = np.where(msa, dense_params + msa_idx, dense_params)
        attn_all = np.where(msa, attn_all + msa_idx, attn_all)
        attn_prefill = np.where(msa, msa_pair, attn_prefill)
        attn_decode = np.where(msa, msa_pair, attn_decode)
        kv_elems = np.where(msa, kv_elems + m.n_idx * m.idx_dim, kv_elems)
        sparse = np.where(msa, m.n_idx * gqa_pair, sparse)
        sparse_kv = np.where(msa, m.n_idx * kv_heads_gpu * (m.head_dim + vd), 0.0)
    return LayerCosts(dense_params, expert_params, embed, head, attn_prefill, attn_decode, kv_elems, n_ar, n_moe,
                      act, win_kv_elems_per_token=n_win * kv_win_layer, win_attn_flops_pair=n_win * win_pair,
                      window_tokens=m.window, state_bytes_per_seq=m.n_lin * m.lin_state_bytes / tp,
                      linear_flops_per_token=m.n_lin * m.lin_flops / tp, sparse_topk=m.idx_topk,
                      sparse_attn_flops_pair=sparse, attn_params=attn_all, shared_params=n_moe * shared,
                      dense_mlp_params=n_dense * dense_mlp,
                      bounded_attn_flops_per_token=bounded * v4_pair, bounded_kv_elems_per_token=bounded * m.v4_entry,
                      held_state_bytes_per_seq=m.v4_state,
                      # per layer, two sites: mixing the hc_mult FP32 streams into one bf16 input (read them,
                      # write one) and back (read the block's output and the streams, write the streams)
                      hc_bytes_per_token=np.where(m.hc_mult > 0, L * 2.0 * (12.0 * m.hc_mult + 4.0) * h, 0.0),
                      attn_res_bytes_per_token=m.attn_res_bytes,
                      sparse_kv_elems_per_token=sparse_kv)


@dataclass
class StepCoeffs:
    """Everything `forward_s` needs, per GPU of one model replica, as floats or broadcastable arrays.

    Each field is already a time (s) per unit of work after peak rates and efficiency factors are applied,
    so one step costs a handful of multiply-adds and maxima.
    """

    lin_s_tok: Num       # dense linears: compute s per token at full GEMM efficiency
    lin_s_half: Num      # ... extra compute s of the M-saturation (m_half tokens' worth)
    lin_mem_s: Num       # ... weight streaming s per forward
    exp_s_tok: Num       # routed experts: compute s per (token, expert choice)
    exp_s_half: Num      # ... extra compute s per touched expert (M-saturation of grouped GEMMs)
    exp_mem_s: Num       # ... weight streaming s per touched expert
    n_experts: Num
    top_k: Num
    attn_s_pair: Num     # prefill attention s per causal (query, key) pair
    dec_kv_s: Num        # decode attention s per cached token read (max of bytes and math)
    tok_s: Num           # per-token s of elementwise traffic + all-reduce/all-to-all/p2p bandwidth terms
    head_s_row: Num      # LM head compute s per logit row
    head_s_half: Num     # ... M-saturation term
    head_mem_s: Num      # ... weight streaming s
    fixed_s: Num         # per-forward s: host/launch overhead + collective latencies
    comm_fixed_s: Num    # the collective-latency part of fixed_s (GPU waits on the link)
    ovh_seq_s: Num       # the engine's host time per sequence per iteration, s (charged per decode and logit row)
    #: linear-attention (Gated DeltaNet, Mamba-2, KDA) state traffic per decoding sequence per step: its constant
    #: state read and written back once, s; GPU work (0 for plain transformers, and where a kernel table prices it).
    #: A prompt's one state write at the end of its prefill is not charged (small beside the prefill's recurrence)
    state_seq_s: Num = 0.0
    #: attention-DP ranks whose tokens meet at a GPU's routed experts in one forward (`moe_ranks`): each rank runs
    #: its own batch, so the experts see moe_ranks x the forward's tokens while `exp_*` hold the GPU's 1 / attn_dp
    #: share of each expert; 1 without attention DP
    moe_ranks: Num = 1.0
    #: a served request's host time before the engine schedules it (API server, tokenization), s
    ttft_s: Num = 0.0
    #: the API server's host time per sequence running at the request's scheduler that its first token waits
    #: behind (`Efficiency` ``engine_stream_us``: each stream's output processed and sent on the loop that takes in
    #: new requests), s per sequence (`estimate.host_ttft_s`)
    stream_s: Num = 0.0
    #: the attention-DP ranks whose running sequences one API server streams (`profiles.api_server_ranks`: 1 where
    #: the engine starts one a rank, vLLM; the replica's attn_dp where it starts one a replica, SGLang, TensorRT-LLM)
    stream_ranks: Num = 1.0
    #: ... and the model's own time before its first token (`Efficiency` ``attn_ttft_ms``: linear / sparse
    #: attention layers), s; once per request, whatever the engine's front end
    ttft_model_s: Num = 0.0
    #: closed-loop synchronization of a profile row's engine (`Efficiency` ``ttft_wave``); 1 on the roofline
    wave: Num = 1.0
    #: the share of a request's output its engine holds KV blocks for while it runs, on average over a loaded
    #: server (`Efficiency` ``engine_kv_reserve``, else ``kv_reserve_output_frac``): what bounds the batch in flight
    kv_reserve: Num = 1.0
    #: 1.0 where the engine admits by SGLang's new-token ratio (`inference.admission`) instead of ``kv_reserve``
    kv_ratio: Num = 0.0
    #: 1.0 where the engine admits on the blocks a prompt needs now and preempts the newest running request when a
    #: decode step finds none (the engines ``engine_kv_reserve`` lists: vLLM; `admission.preemption_churn`)
    kv_preempt: Num = 0.0
    #: 1.0 where the engine runs a waiting prompt's prefill as a batch of its own, the running decodes paused
    #: (`profiles.PREFILL_ALONE_ENGINES`: SGLang), 0.0 where it mixes prompt chunks into decode iterations
    prefill_alone: Num = 0.0
    #: 1.0 where the engine forms its next batch while the current one runs (`profiles.OVERLAP_ENGINES`: SGLang's
    #: overlap scheduler), so a new request waits one more iteration (`estimate.arrival_wait_iters`), else 0.0
    overlap: Num = 0.0
    #: measured-profile curves (objectives.inference.measured.Curves) replacing the GEMM, MoE, all-reduce,
    #: LM-head and attention terms above; None: the closed form (roofline with fitted factors) alone
    curves: Any = None
    #: MiniMax sparse attention (0.0 otherwise): the span its layers attend at most, tokens, and their attention's
    #: s per attended (query, key) pair in prefill and per attended cached token in decode; `attn_s_pair` and
    #: `dec_kv_s` then hold only the work that grows with the whole context (dense layers, the indexer)
    sparse_span: Num = 0.0
    sparse_s_pair: Num = 0.0
    sparse_dec_s: Num = 0.0


def _zero(x: Num) -> bool:
    return isinstance(x, (int, float)) and x == 0


def forward_s(c: StepCoeffs, T: Num, A: Num, D: Num, K: Num, S: Num, mx: Callable = np.maximum,
              pw: Callable = np.power) -> Num:
    """Time (s) of one forward pass of a replica (all layers, summed over pipeline stages) processing
    T new prompt tokens (A causal query-key pairs among them) and D decode tokens that read K cached tokens,
    S sequences producing logits. `mx`/`pw` are np.maximum/np.power for arrays, builtin max/pow for floats.
    Each op: max(compute time, memory time); terms whose input is a literal 0 are skipped (saves time only).
    The same forward by component: `breakdown.forward_parts` (keep the two in step; its tests check the sum).
    """
    M = D if _zero(T) else (T if _zero(D) else T + D)
    if c.curves is not None:
        return _forward_measured(c, T, A, D, K, S, M, mx is max)
    # `linears_s`, `experts_s` and `lm_head_s` written out (the same operations in the same order, the same bits;
    # test_closed_terms): the simulator's scalar closed-form iterations would pay three more calls a forward
    # (docs/profiles.md, thirty-fourth round)
    t = mx(c.lin_s_tok * M + c.lin_s_half, c.lin_mem_s)
    if not _zero(c.n_experts) and not (isinstance(c.n_experts, np.ndarray) and not c.n_experts.any()):
        Mx = M * c.moe_ranks
        E = c.n_experts * (1.0 - pw(1.0 - c.top_k / mx(c.n_experts, 1.0), Mx))
        t = t + mx(c.exp_s_tok * Mx * c.top_k + c.exp_s_half * E, c.exp_mem_s * E)
    if not _zero(A):
        t = t + A * c.attn_s_pair
    if not _zero(K):
        t = t + K * c.dec_kv_s
    if not _zero(c.sparse_span):
        t = t + sparse_s(c, T, A, D, K, mx)
    t = t + M * c.tok_s + mx(c.head_s_row * S + c.head_s_half, c.head_mem_s) + D * c.state_seq_s
    return t + c.fixed_s + (D + S) * c.ovh_seq_s


# The closed form's terms that a measured profile replaces, one home each (`forward_s` writes them out on its hot
# path): `breakdown.forward_parts` (by component), `measured`'s roofline curves (on its token grid) and
# `speculative`'s draft heads read them.

def linears_s(c: StepCoeffs, M: Num, mx: Callable = np.maximum) -> Num:
    """Seconds of the dense linears (`StepCoeffs.lin_*`) at M tokens: max(compute with its M-saturation, weight
    streaming)."""
    return mx(c.lin_s_tok * M + c.lin_s_half, c.lin_mem_s)


def experts_s(c: StepCoeffs, M: Num, mx: Callable = np.maximum, pw: Callable = np.power) -> Num:
    """Seconds of the routed experts (`StepCoeffs.exp_*`) at M tokens a rank: the Mx = M x `moe_ranks` tokens at
    the experts (every busy attention-DP rank's M) choosing top_k of n_experts touch E = n (1 - (1 - top_k / n)^Mx)
    distinct experts in expectation; max(compute per (token, choice) and per touched expert, streaming the touched
    experts' weights). Only for MoE rows (n_experts > 0)."""
    Mx = M * c.moe_ranks
    E = c.n_experts * (1.0 - pw(1.0 - c.top_k / mx(c.n_experts, 1.0), Mx))
    return mx(c.exp_s_tok * Mx * c.top_k + c.exp_s_half * E, c.exp_mem_s * E)


def lm_head_s(c: StepCoeffs, S: Num, mx: Callable = np.maximum) -> Num:
    """Seconds of the LM head GEMM (`StepCoeffs.head_*`) at S logit rows: max(compute with its M-saturation,
    streaming the vocabulary's weights)."""
    return mx(c.head_s_row * S + c.head_s_half, c.head_mem_s)


def moe_ranks(attn_dp: Num, moe_dp: Num | None = None) -> Num:
    """The attention-DP ranks whose tokens meet at a GPU's routed experts in one forward (`StepCoeffs.moe_ranks`):
    `moe_dp` (the busy ranks, `core.prepare`; a scalar or per row) where given, at most attn_dp; else all attn_dp
    of them."""
    return attn_dp if moe_dp is None else np.minimum(np.asarray(moe_dp, dtype=float), attn_dp)


def sparse_prefill_pairs(c: StepCoeffs, T: Num, A: Num, mx: Callable = np.maximum) -> Num:
    """MiniMax sparse attention's prefill query-key pairs in one forward: each of the T prompt tokens attends at
    most `sparse_span` keys of the A causal pairs, min(A, T x span) (compute-bound work: `power.compute_s`)."""
    return -mx(-A, -T * c.sparse_span)


def sparse_s(c: StepCoeffs, T: Num, A: Num, D: Num, K: Num, mx: Callable = np.maximum) -> Num:
    """Seconds of MiniMax sparse attention's bounded part in one forward: the prompts' pairs within the span
    (`sparse_prefill_pairs`) and each of the D decodes reading at most `sparse_span` of its cached tokens (of the K
    read: min(K, D x span), the span taken against the batch's mean context)."""
    return (sparse_prefill_pairs(c, T, A, mx) * c.sparse_s_pair
            + (-mx(-K, -D * c.sparse_span)) * c.sparse_dec_s)


#: `measured`'s lookups `_forward_measured` reads, bound at its first call (`measured` imports this module; an
#: import statement in the function cost the simulator's scalar iteration ~1 µs of its ~5)
_LOOKUPS: tuple[Callable, Callable, Callable] | None = None


def _forward_measured(c: StepCoeffs, T: Num, A: Num, D: Num, K: Num, S: Num, M: Num, scalar: bool) -> Num:
    """`forward_s` from measured-profile curves: GEMMs, experts and all-reduces at M tokens, the LM head at S rows,
    attention at the prompts' and decodes' shapes; plus elementwise/pipeline terms and the fixed costs."""
    global _LOOKUPS
    if _LOOKUPS is None:
        from .measured import attention_terms, curve_at, curve_at1
        _LOOKUPS = (attention_terms, curve_at, curve_at1)
    attention_terms, curve_at, curve_at1 = _LOOKUPS
    cv = c.curves
    if scalar:  # curve_at1 clamps below one token itself
        t = curve_at1(cv.tok, M) + curve_at1(cv.head, S)
    else:
        t = curve_at(cv.tok, M, cv.rows) + curve_at(cv.head, S, cv.rows)
    t = t + attention_terms(c, T, A, D, K, scalar) + M * c.tok_s + D * c.state_seq_s
    t = t + c.fixed_s + (D + S) * c.ovh_seq_s
    closed = None if scalar else cv.closed_rows()
    if closed is not None:  # rows no profile costs (a GPU without one, in a mixed batch): the closed form exactly
        t = np.where(closed, forward_s(dataclasses.replace(c, curves=None), T, A, D, K, S), t)
    return t


def idle_s(c: StepCoeffs, D: Num, S: Num) -> Num:
    """Seconds of a forward in which the GPU waits (host overhead, collective latencies)."""
    return c.fixed_s + (D + S) * c.ovh_seq_s


def busy_s(c: StepCoeffs, T: Num, A: Num, D: Num, K: Num, S: Num) -> Num:
    """Seconds of the forward in which the GPU is busy on kernels (everything but host overhead and link waits);
    the power model's utilization is busy_s / forward_s."""
    return forward_s(c, T, A, D, K, S) - idle_s(c, D, S)


__all__ = ["ModelShape", "LayerCosts", "layer_costs", "StepCoeffs", "forward_s", "moe_ranks", "busy_s", "idle_s",
           "sparse_s", "sparse_prefill_pairs", "linears_s", "experts_s", "lm_head_s"]
