"""Quantities derived from model shapes: parameter counts, weight bytes, KV-cache bytes.

Every function takes either one `Model` (returns a float) or a `model_table(...)` mapping of column arrays
(returns an array, one value per row), so the cost models can evaluate them for a million rows at once.
Counts are of matrix weights (embeddings, attention and MLP projections, routers); biases and norm vectors
are left out (< 0.1 % of any catalog model).

Conventions (documented because published "active parameter" figures differ):
- `total_params`: stored parameters; a tied LM head is counted once.
- `active_params`: parameters used per token: attention, dense MLPs, the top-k routed plus shared experts and
  the router of each MoE layer, and the LM head. The input embedding is a table lookup, not a matmul: it is
  included by default (as Meta, Mistral, Qwen and DeepSeek count), excluded with `input_embedding=False`
  (as OpenAI counts gpt-oss's 5.1B active). With tied embeddings the shared matrix is counted once.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .types import DTYPE_BYTES, Model

ModelLike = Model | Mapping[str, Any]


def _col(m: ModelLike, key: str) -> Any:
    if isinstance(m, Mapping):
        return np.asarray(m[key], dtype=np.float64)
    return float(getattr(m, key))


def _out(m: ModelLike, x: Any) -> Any:
    return float(x) if not isinstance(m, Mapping) else np.asarray(x, dtype=np.float64)


def dtype_bytes(dtype: str | Any) -> Any:
    """Bytes per element of a precision name (or an array of names, or numbers passed through)."""
    if isinstance(dtype, str):
        try:
            return DTYPE_BYTES[dtype]
        except KeyError:
            from .errors import CatalogError
            raise CatalogError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None
    arr = np.asarray(dtype)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64)
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    return np.array([dtype_bytes(str(u)) for u in uniq])[inv].reshape(arr.shape)


def n_moe_layers(m: ModelLike) -> Any:
    """Layers whose MLP is a mixture of experts: index i >= first_k_dense with (i + 1) % moe_layer_freq == 0."""
    L, k, f, e = _col(m, "n_layers"), _col(m, "first_k_dense"), _col(m, "moe_layer_freq"), _col(m, "n_experts")
    f = np.maximum(f, 1)
    count = np.floor(L / f) - np.floor(np.minimum(k, L) / f)
    return _out(m, np.where(e > 0, count, 0.0))


def n_dense_layers(m: ModelLike) -> Any:
    """Layers with a dense MLP (all layers of a dense model)."""
    return _out(m, _col(m, "n_layers") - n_moe_layers(m))


def v_head_dim(m: ModelLike) -> Any:
    """Width of one value head of a GQA / MHA layer: the record's `v_head_dim` where it sets one (MiMo-V2-Flash:
    128 beside q/k heads of 192), else `head_dim`. (MLA's value width is `v_head_dim` itself.)"""
    vd = _col(m, "v_head_dim")
    return _out(m, np.where(vd > 0, vd, _col(m, "head_dim")))


def sliding_kv_heads(m: ModelLike) -> Any:
    """KV heads of a sliding-window layer: `swa_n_kv_heads` where the record sets it, else `n_kv_heads`."""
    s = _col(m, "swa_n_kv_heads")
    return _out(m, np.where(s > 0, s, _col(m, "n_kv_heads")))


def sliding_head_dim(m: ModelLike) -> Any:
    """Head width of a sliding-window layer: `swa_head_dim` where the record sets it (Gemma 4: 256 beside the
    full layers' 512), else `head_dim`."""
    s = _col(m, "swa_head_dim")
    return _out(m, np.where(s > 0, s, _col(m, "head_dim")))


def gqa_head_dims(m: ModelLike, *, sliding: bool = False) -> tuple[Any, Any]:
    """(query/key head width, value head width) of a GQA / MHA full-attention layer, or with `sliding` of a
    sliding-window layer: `head_dim` and `v_head_dim`, or the window layers' own `swa_head_dim` for both (a record
    with window layers of their own head width has values as wide as keys)."""
    if not sliding:
        return _col(m, "head_dim"), v_head_dim(m)
    s = _col(m, "swa_head_dim")
    return np.where(s > 0, s, _col(m, "head_dim")), np.where(s > 0, s, v_head_dim(m))


def attention_params_per_layer(m: ModelLike, *, sliding: bool = False) -> Any:
    """Q, K, V and output projections of one full-attention layer, or with `sliding` of one sliding-window layer
    (they differ where the window layers have KV heads or a head width of their own, `swa_n_kv_heads`,
    `swa_head_dim`). GQA: queries and keys of head_dim, values of `v_head_dim` (full layers with `k_eq_v` have no
    value projection: the checkpoint's count); MLA: the low-rank down/up projections; a gated query
    (`attn_output_gate`) doubles the query projection; DeepSeek sparse attention adds the indexer's query (from
    the q latent), key and head-weight projections."""
    h, nh = _col(m, "hidden"), _col(m, "n_heads")
    hd, vdg = gqa_head_dims(m, sliding=sliding)
    nkv = sliding_kv_heads(m) if sliding else _col(m, "n_kv_heads")
    # Gemma 4's full layers: the values are the key projection's output (no v_proj weights)
    v_proj = vdg if sliding else np.where(np.asarray(_col(m, "k_eq_v")) > 0, 0.0, vdg)
    gate = np.asarray(_col(m, "attn_output_gate")) > 0
    gqa = h * nh * hd * np.where(gate, 2.0, 1.0) + h * nkv * (hd + v_proj) + nh * vdg * h
    qr, kvr = _col(m, "q_lora_rank"), _col(m, "kv_lora_rank")
    nope, rope, vd = _col(m, "qk_nope_head_dim"), _col(m, "qk_rope_head_dim"), _col(m, "v_head_dim")
    q = np.where(qr > 0, h * qr + qr * nh * (nope + rope), h * nh * (nope + rope))
    ih, idim = _col(m, "index_n_heads"), _col(m, "index_head_dim")
    indexer = np.where(_col(m, "index_topk") > 0, np.where(qr > 0, qr, h) * ih * idim + h * idim + h * ih, 0.0)
    mla = q + h * (kvr + rope) + kvr * nh * (nope + vd) + nh * vd * h + indexer
    # Kimi-K3's MLA output gate (mla_use_output_gate): g_proj hidden -> n_heads x v_head_dim
    mla = np.where(gate, mla + h * nh * vd, mla)
    return _out(m, np.where(compressed_attention(m), v4_attention_params_per_layer(m),
                            np.where(kvr > 0, mla, gqa)))


def compressed_attention(m: ModelLike) -> Any:
    """True for DeepSeek-V4 compressed attention (CSA / HCA layers)."""
    return _out(m, (_col(m, "n_csa_layers") + _col(m, "n_hca_layers")) > 0) > 0


def v4_attention_split(m: ModelLike) -> tuple[Any, Any]:
    """(replicated, head-split) parameters of one DeepSeek-V4 attention layer, averaged over the layers (the
    compressors and the indexer sit on some layers only). Head-split over tensor parallelism: the query
    up-projection q_lora x heads x head_dim and the grouped output (heads x head_dim x o_lora_rank in o_groups
    groups, then o_groups x o_lora_rank x hidden). Replicated on every rank: the query down-projection, the one
    KV head (hidden x head_dim, key and value alike), each compressor (KV and gate projections hidden x coff x
    head_dim, coff 2 on the overlapping CSA windows, 1 on HCA) and the CSA layers' indexer (query from the q
    latent, head weights, and its own compressor of coff 2 x index_head_dim)."""
    h, nh, hd, qr = _col(m, "hidden"), _col(m, "n_heads"), _col(m, "head_dim"), _col(m, "q_lora_rank")
    olr, og = _col(m, "o_lora_rank"), _col(m, "o_groups")
    L, ncsa, nhca = _col(m, "n_layers"), _col(m, "n_csa_layers"), _col(m, "n_hca_layers")
    ih, idim = _col(m, "index_n_heads"), _col(m, "index_head_dim")
    split = qr * nh * hd + nh * hd * olr + og * olr * h
    csa = 2.0 * h * 2.0 * hd + qr * ih * idim + h * ih + 2.0 * h * 2.0 * idim
    hca = 2.0 * h * hd
    rep = h * qr + h * hd + (ncsa * csa + nhca * hca) / np.maximum(L, 1.0)
    return _out(m, rep), _out(m, split)


def v4_attention_params_per_layer(m: ModelLike) -> Any:
    """One DeepSeek-V4 attention layer's parameters, averaged over the layers (`v4_attention_split`)."""
    rep, split = v4_attention_split(m)
    return _out(m, rep + split)


#: bytes of DeepSeek-V4's indexer key cache per index_head_dim element of a compressed entry: vLLM's default FP8
#: keys (index_head_dim bytes and a 4-byte scale: 132 B at 128; it allocates as much for MXFP4 keys;
#: vllm/model_executor/models/deepseek_v4.py), counted as 1-byte elements
V4_INDEX_BYTES = 1.0


def v4_compressed_elements_per_token(m: ModelLike) -> Any:
    """KV-cache elements a DeepSeek-V4 model adds per token of context over all layers, beyond the window: one
    entry (`v4_entry_elements`) per csa_ratio tokens on the CSA layers, per hca_ratio tokens on the HCA layers, and
    the CSA indexer's key (index_head_dim FP8 values and a scale per compressed entry, `V4_INDEX_BYTES`)."""
    idim = _col(m, "index_head_dim")
    rc, rh = np.maximum(_col(m, "csa_ratio"), 1.0), np.maximum(_col(m, "hca_ratio"), 1.0)
    ncsa, nhca = _col(m, "n_csa_layers"), _col(m, "n_hca_layers")
    return _out(m, ncsa * (v4_entry_elements(m) + idim * V4_INDEX_BYTES) / rc + nhca * v4_entry_elements(m) / rh)


def v4_entry_elements(m: ModelLike) -> Any:
    """Elements of one DeepSeek-V4 KV entry (window or compressed), as 1-byte elements of an FP8 cache: the
    engines store head_dim - qk_rope_head_dim values in FP8, the RoPE part in bf16, and scales (vLLM: 448 + 128 + 8
    = 584 B at head_dim 512), close to head_dim + qk_rope_head_dim."""
    return _out(m, _col(m, "head_dim") + _col(m, "qk_rope_head_dim"))


def v4_compressor_state_bytes_per_seq(m: ModelLike) -> Any:
    """Bytes of DeepSeek-V4's compressor decode state ONE sequence keeps: per compressing layer, FP32 KV and score
    buffers of coff x ratio tokens x coff x head_dim (coff 2 on the overlapping CSA windows, 1 on HCA: 64 KiB and
    512 KiB at head_dim 512), and the CSA indexer compressor's of index_head_dim (16 KiB at 128) (DeepSeek's
    inference/model.py Compressor; vLLM deepseek_compressor.py)."""
    hd, idim = _col(m, "head_dim"), _col(m, "index_head_dim")
    rc, rh = _col(m, "csa_ratio"), _col(m, "hca_ratio")
    ncsa, nhca = _col(m, "n_csa_layers"), _col(m, "n_hca_layers")
    return _out(m, 4.0 * 2.0 * (ncsa * 4.0 * rc * (hd + idim) + nhca * rh * hd))


def n_linear_layers(m: ModelLike) -> Any:
    """Layers whose token mixer is linear attention / a state-space model (no KV cache)."""
    return _out(m, np.minimum(_col(m, "n_linear_attn_layers"), _col(m, "n_layers")))


def n_attention_layers(m: ModelLike) -> Any:
    """Softmax-attention layers (full or sliding window): the layers that keep a KV cache (neither linear nor
    FFN-only blocks)."""
    return _out(m, np.maximum(_col(m, "n_layers") - n_linear_layers(m) - _col(m, "n_ffn_only_layers"), 0.0))


def _linear_dims(m: ModelLike) -> tuple[Any, Any, Any, Any, Any, Any]:
    nk, nv = _col(m, "linear_num_k_heads"), _col(m, "linear_num_v_heads")
    dk, dv, kern = _col(m, "linear_head_k_dim"), _col(m, "linear_head_v_dim"), _col(m, "linear_conv_kernel")
    kind = m["linear_attn_kind"] if isinstance(m, Mapping) else m.linear_attn_kind
    mamba = np.asarray(kind) == "mamba2"
    return nk, nv, dk, dv, kern, mamba


def linear_attn_params_per_layer(m: ModelLike) -> Any:
    """Projections of one linear-attention layer.

    Gated DeltaNet (Qwen3.5 / Qwen3-Next): in_proj_qkvz h x (2 nk dk + 2 nv dv), in_proj_ba h x 2 nv, depthwise conv
    (2 nk dk + nv dv) x kernel, out_proj nv dv x h. Mamba-2 (nk = n_groups, dk = d_state, nv = heads, dv = head dim):
    in_proj h x (2 nv dv + 2 nk dk + nv) (z, x, B, C, dt), the same conv, out_proj nv dv x h.
    """
    nk, nv, dk, dv, kern, mamba = _linear_dims(m)
    h = _col(m, "hidden")
    conv_ch = 2 * nk * dk + nv * dv
    per_head = np.where(mamba, 1.0, 2.0)  # dt (Mamba-2) vs beta and decay gate a (GDN), one scalar each per head
    out = h * (2 * nk * dk + 2 * nv * dv + per_head * nv) + conv_ch * kern + nv * dv * h
    return _out(m, np.where(_is_kda(m), kda_params_per_layer(m), out))


def _is_kda(m: ModelLike) -> Any:
    kind = m["linear_attn_kind"] if isinstance(m, Mapping) else m.linear_attn_kind
    return np.asarray(kind) == "kda"


def kda_params_per_layer(m: ModelLike) -> Any:
    """Projections of one Kimi Delta Attention layer (Kimi-K3, full-rank output gate; nk = nv = num_heads,
    dk = dv = head_dim): q_proj, k_proj h x nk dk, v_proj and the output gate g_proj h x nv dv, beta b_proj
    h x nv, the channel-wise decay gate as a low-rank pair f_a_proj h x dk and f_b_proj dk x nv dk, the three
    depthwise convs (2 nk dk + nv dv) x kernel, o_proj nv dv x h (A_log, dt_bias and the gated output norm are
    vectors, not counted)."""
    nk, nv, dk, dv, kern, _ = _linear_dims(m)
    h = _col(m, "hidden")
    return _out(m, h * (2 * nk * dk + 2 * nv * dv + nv + dk) + dk * nv * dk + (2 * nk * dk + nv * dv) * kern
                + nv * dv * h)


def linear_state_elements_per_layer(m: ModelLike) -> tuple[Any, Any]:
    """(recurrent state, conv state) elements ONE sequence keeps in one linear-attention layer: nv x dk x dv
    (GDN: a dk x dv matrix per value head; Mamba-2: head dim x d_state per head) and (kernel - 1) inputs of the
    conv channels."""
    nk, nv, dk, dv, kern, _ = _linear_dims(m)
    return _out(m, nv * dk * dv), _out(m, (2 * nk * dk + nv * dv) * np.maximum(kern - 1, 0))


def linear_state_bytes_per_seq(m: ModelLike) -> Any:
    """Bytes of the constant per-sequence state over all linear-attention layers (recurrent state in
    `linear_state_dtype`, 2 bytes when unset; conv state in 2 bytes). Independent of the context length."""
    rec, conv = linear_state_elements_per_layer(m)
    sd = m["linear_state_dtype"] if isinstance(m, Mapping) else m.linear_state_dtype
    sb = np.where(np.asarray(sd) == "fp32", 4.0, 2.0)
    return _out(m, n_linear_layers(m) * (rec * sb + conv * 2.0))


def linear_flops_per_token_layer(m: ModelLike) -> Any:
    """FLOPs per token of one linear-attention layer's recurrence, beyond its projections: about 3 matrix-vector
    products with the nv x dk x dv state (read k/q, rank-1 update) at 2 FLOPs per multiply-add, plus the conv."""
    nk, nv, dk, dv, kern, _ = _linear_dims(m)
    # KDA (channel-wise decay) scales the state row by row where GDN scales it by one scalar: the same count
    return _out(m, 6.0 * nv * dk * dv + 2.0 * (2 * nk * dk + nv * dv) * kern)


def attn_res_bytes_per_token(m: ModelLike) -> Any:
    """Bytes per token of attention residuals (`Model.attn_res_block_size`) over all layers: two mixing sites per
    layer (before attention, before the MLP), each reading 4 x hidden and writing 2 x hidden 16-bit elements, as
    aiconfigurator-core prices Kimi-K3's AttnRes (one elementwise op per site; sdk/models/kimi_k3.py); 0 without."""
    h, L = _col(m, "hidden"), _col(m, "n_layers")
    return _out(m, np.where(_col(m, "attn_res_block_size") > 0, L * 2.0 * (4.0 + 2.0) * h * 2.0, 0.0))


def _mlp_params(m: ModelLike, hidden: Any, inter: Any) -> Any:
    return np.where(np.asarray(_col(m, "gated_mlp")) > 0, 3.0, 2.0) * hidden * inter


def dense_mlp_params_per_layer(m: ModelLike) -> Any:
    """One dense MLP: 3 x hidden x ffn if gated (SwiGLU), else 2 x hidden x ffn."""
    return _out(m, _mlp_params(m, _col(m, "hidden"), _col(m, "ffn")))


def expert_width(hidden: Any, latent: Any) -> Any:
    """Width of the token the routed experts read and write (and the MoE all-to-alls and gathers move): a latent
    MoE's latent (Nemotron-3 Super / Ultra), else the hidden size."""
    return np.where(np.asarray(latent) > 0, latent, hidden)


def moe_params_per_layer(m: ModelLike, *, active: bool = False) -> Any:
    """One MoE layer's MLP: router + experts (all, or the top_k routed when `active`) + shared experts; latent MoE:
    the experts at the latent width, plus the hidden -> latent -> hidden projections."""
    h, e = _col(m, "hidden"), _col(m, "n_experts")
    lat = _col(m, "moe_latent")
    expert = _mlp_params(m, expert_width(h, lat), _col(m, "moe_ffn"))
    n = _col(m, "top_k") if active else e
    return _out(m, h * e + n * expert + _mlp_params(m, h, _col(m, "shared_ffn")) + 2.0 * h * lat)


def embedding_params(m: ModelLike) -> Any:
    """Input embedding table: vocab x hidden."""
    return _out(m, _col(m, "vocab") * _col(m, "hidden"))


def lm_head_params(m: ModelLike) -> Any:
    """Output projection: vocab x hidden (computed per token even when tied to the embedding)."""
    return _out(m, _col(m, "vocab") * _col(m, "hidden"))


def mixer_params(m: ModelLike) -> Any:
    """Token-mixer parameters of all layers: the softmax-attention layers' projections and the linear-attention
    layers' (blocks without a mixer hold none)."""
    # the sliding layers' own KV heads as a difference to the full layers' (exactly 0 where they have none)
    swa = n_sliding_layers(m) * (attention_params_per_layer(m, sliding=True) - attention_params_per_layer(m))
    return _out(m, n_attention_layers(m) * attention_params_per_layer(m) + swa
                + n_linear_layers(m) * linear_attn_params_per_layer(m) + msa_indexer_params(m))


def non_embedding_params(m: ModelLike, *, active: bool = False) -> Any:
    """Parameters of the transformer layers (no embedding, no LM head); `active`: per token (MoE top_k)."""
    body = (mixer_params(m) + n_dense_layers(m) * dense_mlp_params_per_layer(m)
            + n_moe_layers(m) * moe_params_per_layer(m, active=active))
    return _out(m, body)


def total_params(m: ModelLike, *, include_embeddings: bool = True) -> Any:
    """Stored parameters (a tied LM head counted once); `include_embeddings=False`: layers only."""
    body = non_embedding_params(m)
    if not include_embeddings:
        return body
    tied = np.asarray(_col(m, "tie_embeddings")) > 0
    return _out(m, body + embedding_params(m) + np.where(tied, 0.0, lm_head_params(m)))


def active_params(m: ModelLike, *, input_embedding: bool = True) -> Any:
    """Parameters used per token (see the module docstring for the convention)."""
    x = non_embedding_params(m, active=True) + lm_head_params(m)
    if input_embedding:
        tied = np.asarray(_col(m, "tie_embeddings")) > 0
        x = x + np.where(tied, 0.0, embedding_params(m))
    return _out(m, x)


def weight_bytes(m: ModelLike, dtype: str | Any = "bf16", *, include_embeddings: bool = True) -> Any:
    """Bytes of the stored weights in `dtype` (name, array of names, or bytes per element)."""
    return _out(m, total_params(m, include_embeddings=include_embeddings) * dtype_bytes(dtype))


def kv_elements_per_token_layer(m: ModelLike, *, sliding: bool = False) -> Any:
    """Cached elements per token of one full-attention layer (with `sliding`: of one sliding-window layer, whose
    KV heads and head width may be its own, `sliding_kv_heads`, `gqa_head_dims`): n_kv_heads x (head_dim +
    v_head_dim) (GQA/MHA: a key and a value per head; `k_eq_v` layers cache both too), or kv_lora_rank +
    qk_rope_head_dim (MLA: the compressed latent and the shared RoPE key), plus index_head_dim for DeepSeek sparse
    attention (the indexer's key of every token is cached too)."""
    nkv = sliding_kv_heads(m) if sliding else _col(m, "n_kv_heads")
    hd, vd = gqa_head_dims(m, sliding=sliding)
    gqa = nkv * (hd + vd)
    kvr = _col(m, "kv_lora_rank")
    idx = np.where(_col(m, "index_topk") > 0, _col(m, "index_head_dim"), 0.0)
    # DeepSeek-V4: one entry (key and value alike) per token of each layer's window
    return _out(m, np.where(compressed_attention(m), v4_entry_elements(m),
                            np.where(kvr > 0, kvr + _col(m, "qk_rope_head_dim") + idx, gqa)))


def kv_bytes_per_token_layer(m: ModelLike, dtype: str | Any = "bf16", *, sliding: bool = False) -> Any:
    """KV-cache bytes per token of one full-attention layer (`sliding`: of one sliding-window layer) in `dtype`."""
    return _out(m, kv_elements_per_token_layer(m, sliding=sliding) * dtype_bytes(dtype))


def n_sliding_layers(m: ModelLike) -> Any:
    """Attention layers that attend within `sliding_window` (0 when the model has no window; -1 in the record
    means every attention layer). Llama 4's chunked local attention is recorded as such a window."""
    La, w, n = n_attention_layers(m), _col(m, "sliding_window"), _col(m, "n_sliding_layers")
    return _out(m, np.where(w > 0, np.where(n < 0, La, np.minimum(n, La)), 0.0))


def kv_cache_bytes(m: ModelLike, context_len: Any, dtype: str | Any = "bf16") -> Any:
    """KV-cache bytes of ONE sequence holding `context_len` tokens, over all attention layers.

    Sliding-window layers hold at most `sliding_window` tokens; full-attention layers hold all of them;
    linear-attention layers hold no KV (their constant state: `linear_state_bytes_per_seq`). DeepSeek-V4: every
    layer's window plus the compressed entries (`v4_compressed_elements_per_token`).
    """
    ctx = np.asarray(context_len, dtype=np.float64)
    La, w, ns = n_attention_layers(m), _col(m, "sliding_window"), n_sliding_layers(m)
    held = np.minimum(ctx, np.where(w > 0, w, np.inf))
    tokens = (La - ns) * ctx + ns * held
    # sliding layers with KV heads of their own: their difference to a full layer's bytes (0 where none)
    swa = ns * held * (kv_bytes_per_token_layer(m, dtype, sliding=True) - kv_bytes_per_token_layer(m, dtype))
    out = (tokens * kv_bytes_per_token_layer(m, dtype) + swa
           + ctx * v4_compressed_elements_per_token(m) * dtype_bytes(dtype)
           + ctx * msa_index_elements_per_token(m) * dtype_bytes(dtype))
    return float(out) if not isinstance(m, Mapping) and np.ndim(out) == 0 else out


def sequence_cache_bytes(m: ModelLike, context_len: Any, dtype: str | Any = "bf16") -> Any:
    """Everything ONE sequence keeps between steps: its KV cache (`kv_cache_bytes`) plus the constant state of the
    linear-attention layers (`linear_state_bytes_per_seq`) and of DeepSeek-V4's compressors."""
    out = kv_cache_bytes(m, context_len, dtype) + linear_state_bytes_per_seq(m) + v4_compressor_state_bytes_per_seq(m)
    return float(out) if not isinstance(m, Mapping) and np.ndim(out) == 0 else out


def n_index_layers(m: ModelLike) -> Any:
    """Attention layers with MiniMax sparse attention (`index_block` > 0): `n_index_layers`, -1 meaning every
    attention layer; 0 for every other model (DeepSeek's sparse attention is costed per layer in
    `attention_params_per_layer` / `kv_elements_per_token_layer`)."""
    La, n = n_attention_layers(m), _col(m, "n_index_layers")
    msa = (_col(m, "index_block") > 0) & (_col(m, "index_topk") > 0)
    return _out(m, np.where(msa, np.where(n < 0, La, np.minimum(n, La)), 0.0))


def msa_indexer_params(m: ModelLike) -> Any:
    """MiniMax sparse attention's indexer weights over all its layers: per layer a query projection hidden x
    (index_n_heads x index_head_dim) and one key head hidden x index_head_dim (MiniMax-M3's index_q_proj /
    index_k_proj; no head-weight projection, no index value: `sparse_disable_index_value`). 0 for other models."""
    h, ih, idim = _col(m, "hidden"), _col(m, "index_n_heads"), _col(m, "index_head_dim")
    return _out(m, n_index_layers(m) * (h * ih * idim + h * idim))


def msa_index_elements_per_token(m: ModelLike) -> Any:
    """Cached indexer-key elements per token over MiniMax sparse attention's layers: one key head of
    index_head_dim per layer (held beside that layer's K and V, in the KV cache's dtype); 0 for other models."""
    return _out(m, n_index_layers(m) * _col(m, "index_head_dim"))


#: Derived columns added to `model_table` (name -> function of a Model or table).
DERIVED = {
    "total_params": total_params,
    "active_params": active_params,
    "non_embedding_params": non_embedding_params,
    "embedding_params": embedding_params,
    "n_moe_layers": n_moe_layers,
    "n_dense_layers": n_dense_layers,
    "attention_params_per_layer": attention_params_per_layer,
    "kv_elements_per_token_layer": kv_elements_per_token_layer,
    "n_sliding_layers_resolved": n_sliding_layers,
    "n_attention_layers": n_attention_layers,
    "linear_state_bytes_per_seq": linear_state_bytes_per_seq,
}
