"""Checks of a model record the cost model can cost, shared by every way a `Model` is made: a config read by
`hf_config.model_from_hf_config`, a record registered in a `Catalog`, and a record handed to the cost model directly
(`inference`). Each raises `CatalogError` naming the bad field and what is valid."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import CatalogError
from .types import Model


def check_hybrid(fields: Mapping[str, Any], label: str) -> None:
    """A linear-attention layout the cost model can cost, or `CatalogError` naming the bad field."""
    n_lin = fields.get("n_linear_attn_layers", 0)
    if not n_lin:
        return
    if fields.get("linear_attn_kind") not in ("gdn", "mamba2", "kda"):
        raise CatalogError(f"{label}: linear_attn_kind {fields.get('linear_attn_kind')!r} "
                           "cannot be costed (known: 'gdn', 'mamba2', 'kda')")
    if n_lin > fields["n_layers"]:
        raise CatalogError(f"{label}: {n_lin} linear-attention layers > n_layers={fields['n_layers']}")
    for f in ("linear_num_k_heads", "linear_num_v_heads", "linear_head_k_dim", "linear_head_v_dim"):
        if fields.get(f, 0) <= 0:
            raise CatalogError(f"{label}: {f} = {fields.get(f)} must be > 0 for linear attention")


def validate_model(model: Model) -> Model:
    """`model` if its shapes are consistent and its layer kinds can be costed, else `CatalogError` naming the field:
    positive sizes (ffn 0 only for an MoE model), 0 < top_k <= n_experts, the hybrid / sparse / windowed / compressed
    attention fields' combinations."""
    for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab"):
        v = getattr(model, f)
        # ffn 0: an MoE model whose layers without experts have no MLP block (Nemotron-3)
        zero_ok = f == "ffn" and model.n_experts > 0
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not zero_ok):
            raise CatalogError(f"model {model.name!r}: field {f!r} = {v!r} must be a positive integer"
                               + (" (0 only for an MoE model)" if f == "ffn" else ""))
    if model.n_experts and not (0 < model.top_k <= model.n_experts and model.moe_ffn > 0):
        raise CatalogError(f"model {model.name!r}: MoE needs 0 < top_k <= n_experts and moe_ffn > 0 "
                           f"(got top_k={model.top_k}, n_experts={model.n_experts}, moe_ffn={model.moe_ffn})")
    if model.moe_latent and not (model.n_experts and 0 < model.moe_latent < model.hidden):
        raise CatalogError(f"model {model.name!r}: moe_latent={model.moe_latent!r} needs an MoE model and "
                           f"0 < moe_latent < hidden ({model.hidden})")
    s = model.attn_quant_shares
    if s and (len(s) != 4 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1
                                      for x in s) or s[0] + s[1] > 1 or s[2] + s[3] > 1):
        raise CatalogError(f"model {model.name!r}: attn_quant_shares={s!r} must be () or 4 shares in 0-1 (softmax "
                           "attention in the checkpoint's format, in FP8, then linear attention in its format, in "
                           "FP8), each pair summing to at most 1")
    check_hybrid({f: getattr(model, f) for f in ("n_layers", "n_linear_attn_layers", "linear_attn_kind",
                                                  "linear_num_k_heads", "linear_num_v_heads", "linear_head_k_dim",
                                                  "linear_head_v_dim")}, f"model {model.name!r}")
    if model.index_block and not (model.index_topk > 0 and not model.kv_lora_rank and not model.n_csa_layers
                                  and not model.n_linear_attn_layers and not model.sliding_window
                                  and model.index_n_heads > 0 and model.index_head_dim > 0
                                  and model.n_index_layers != 0):
        raise CatalogError(f"model {model.name!r}: index_block={model.index_block} (MiniMax sparse attention) "
                           "needs a GQA model without MLA, compressed, linear or sliding-window layers, "
                           "index_topk, index_n_heads, index_head_dim > 0 and n_index_layers != 0")
    if model.index_topk and not model.index_block and not (
            (model.kv_lora_rank or model.n_csa_layers) and model.index_n_heads > 0 and model.index_head_dim > 0):
        raise CatalogError(f"model {model.name!r}: index_topk={model.index_topk} (DeepSeek sparse attention) needs "
                           "an MLA model (kv_lora_rank > 0) or DeepSeek-V4 CSA layers (n_csa_layers > 0) and "
                           "index_n_heads, index_head_dim > 0")
    if model.n_ffn_only_layers and not (0 <= model.n_ffn_only_layers
                                         <= model.n_layers - model.n_linear_attn_layers - 1):
        raise CatalogError(f"model {model.name!r}: n_ffn_only_layers={model.n_ffn_only_layers} must leave at least "
                           f"one attention layer of the {model.n_layers} (n_linear_attn_layers="
                           f"{model.n_linear_attn_layers})")
    if model.swa_n_kv_heads and not (model.swa_n_kv_heads > 0 and model.n_heads % model.swa_n_kv_heads == 0
                                     and model.sliding_window > 0 and model.n_sliding_layers != 0
                                     and not model.is_mla and not model.is_compressed_attention):
        raise CatalogError(f"model {model.name!r}: swa_n_kv_heads={model.swa_n_kv_heads} (the sliding-window "
                           "layers' own KV heads) needs GQA sliding-window layers (sliding_window > 0, "
                           f"n_sliding_layers != 0) and must divide n_heads={model.n_heads}")
    if model.swa_head_dim and not (model.swa_head_dim > 0 and model.sliding_window > 0
                                   and model.n_sliding_layers != 0 and model.v_head_dim in (0, model.head_dim)
                                   and not model.is_mla and not model.is_compressed_attention):
        raise CatalogError(f"model {model.name!r}: swa_head_dim={model.swa_head_dim} (the sliding-window layers' "
                           "own head width) needs GQA sliding-window layers (sliding_window > 0, "
                           "n_sliding_layers != 0) with values as wide as keys (v_head_dim 0)")
    if model.k_eq_v and (model.is_mla or model.is_compressed_attention):
        raise CatalogError(f"model {model.name!r}: k_eq_v (values from the key projection) needs GQA attention")
    v4 = model.n_csa_layers + model.n_hca_layers
    if v4 and not (v4 <= model.n_layers and model.o_groups > 0 and model.o_lora_rank > 0 and model.q_lora_rank > 0
                   and model.sliding_window > 0 and model.n_heads % model.o_groups == 0
                   and (model.n_csa_layers == 0 or (model.csa_ratio > 0 and model.index_topk > 0))
                   and (model.n_hca_layers == 0 or model.hca_ratio > 0)):
        raise CatalogError(f"model {model.name!r}: DeepSeek-V4 compressed attention needs n_csa_layers + "
                           f"n_hca_layers <= n_layers, o_groups dividing n_heads, o_lora_rank, q_lora_rank and "
                           f"sliding_window > 0, and each compressed layer kind's ratio (CSA also index_topk) > 0 "
                           f"(got n_csa_layers={model.n_csa_layers}, n_hca_layers={model.n_hca_layers}, "
                           f"o_groups={model.o_groups}, csa_ratio={model.csa_ratio}, hca_ratio={model.hca_ratio})")
    return model
