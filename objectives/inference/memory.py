"""Memory footprint per GPU: weights, KV cache, activations, runtime reserve (bytes unless the name says GiB)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .ops import LayerCosts

Num = Any
GIB = float(2**30)


def embed_bytes_per_param(wb: Num) -> Num:
    """Embedding and LM head stay 16-bit when the transformer weights are quantized (8/4-bit), as in
    TensorRT-LLM / vLLM / ModelOpt checkpoints."""
    return np.maximum(wb, 2.0)


def dense_bytes_gpu(lc: LayerCosts, wb: Num, attn16_params: Num = 0.0, attn8_params: Num = 0.0) -> Num:
    """Bytes of one GPU's dense (non-expert) transformer weights, all layers: `wb` bytes a parameter, except
    `attn16_params` of them (a 4-bit MoE checkpoint's attention projections) at 16 bits and `attn8_params` (those
    its config stores in FP8, `resolve.attn_weight_params`) at 8."""
    return (lc.dense_params - attn16_params - attn8_params) * wb + attn16_params * 2.0 + attn8_params * 1.0


def weights_bytes_gpu(lc: LayerCosts, n_experts: Num, wb: Num, pp: Num, attn16_params: Num = 0.0,
                      dense_wb: Num | None = None, attn8_params: Num = 0.0) -> Num:
    """Weight bytes held by one GPU: transformer layers split over TP (in `lc`) and PP, embeddings/LM head too;
    `attn16_params` and `attn8_params` as in `dense_bytes_gpu`; `dense_wb`: bytes per non-expert parameter where a checkpoint keeps
    them wider than its experts (None: `wb`)."""
    body = (dense_bytes_gpu(lc, wb if dense_wb is None else dense_wb, attn16_params, attn8_params)
            + lc.expert_params * n_experts * wb)
    return (body + lc.embed_params * embed_bytes_per_param(wb)) / pp


def kv_bytes_per_token_gpu(lc: LayerCosts, kvb: Num, pp: Num) -> Num:
    """KV-cache bytes one GPU holds per token of context (its layers, its KV heads)."""
    return lc.kv_elems_per_token * kvb / pp


def act_bytes_per_token_gpu(lc: LayerCosts) -> Num:
    """Peak activation bytes per token in flight in one forward (one layer's 16-bit buffers), per GPU."""
    return lc.act_elems_per_token * 2.0


def logits_bytes(n_rows: Num, vocab: Num, tp: Num) -> Num:
    """fp32 logits of the sequences sampled in one step, per GPU."""
    return n_rows * vocab / tp * 4.0


def state_bytes_per_seq_gpu(lc: LayerCosts, pp: Num) -> Num:
    """Constant state bytes one GPU holds per sequence in the linear-attention layers (Gated DeltaNet / Mamba-2
    recurrent and conv state) and DeepSeek-V4's compressors, independent of the context length; 0 for a plain
    transformer."""
    return (lc.state_bytes_per_seq + lc.held_state_bytes_per_seq) / pp


def held_tokens(context: Num, win_share: Num, window: Num) -> Num:
    """KV of one sequence of `context` tokens, in tokens' worth of every layer's KV: the window-bounded layers
    (`win_share` of the KV bytes per token) hold at most `window` tokens (0: no window), the others all of them.
    Equals `context` for a model without window-bounded layers."""
    ctx = np.asarray(context, dtype=np.float64)
    return np.where(win_share > 0, (1.0 - win_share) * ctx
                    + win_share * np.minimum(ctx, np.where(window > 0, window, np.inf)), ctx)


def window_share(lc: LayerCosts) -> Num:
    """Share of the KV bytes per token on window-bounded layers (`held_tokens`' `win_share`)."""
    return lc.win_kv_elems_per_token / np.maximum(lc.kv_elems_per_token, 1e-30)


def seq_cache_bytes_gpu(lc: LayerCosts, kvb: Num, pp: Num, context: Num) -> Num:
    """Bytes one GPU holds for ONE sequence of `context` tokens: KV of the full-attention layers (all tokens), KV of
    the window-bounded layers (at most `window_tokens`), and the linear layers' constant state. Equals
    `kv_bytes_per_token_gpu(...) * context` for a plain transformer."""
    kv = lc.kv_elems_per_token * held_tokens(context, window_share(lc), lc.window_tokens)
    return (kv * kvb + lc.state_bytes_per_seq + lc.held_state_bytes_per_seq) / pp
