"""Parse a Hugging Face `config.json` (a mapping or a path) into a `Model`; nothing is downloaded.

Supported architectures (by `model_type`, or `architectures[0]` when `model_type` is absent):

=============  ===========================================================================================
llama          LlamaForCausalLM: GQA, gated (SwiGLU) MLP; `head_dim` from the config or hidden / heads; a
               `layer_types` list puts `sliding_window` on its "sliding_attention" layers (as vLLM reads it)
mistral        MistralForCausalLM: as llama, plus `sliding_window` on every layer (v0.1: 4096)
qwen2, qwen3   Qwen2/Qwen3ForCausalLM: as llama; sliding window only when `use_sliding_window` is true (MiMo-7B,
               model_type mimo: read as qwen2)
mixtral        MixtralForCausalLM: every layer MoE, `num_local_experts`, `num_experts_per_tok`,
               expert size `intermediate_size`
qwen2_moe      Qwen2MoeForCausalLM: as qwen3_moe plus a gated shared expert `shared_expert_intermediate_size`
qwen3_moe      Qwen3MoeForCausalLM: `num_experts`, `num_experts_per_tok`, `moe_intermediate_size`,
               `decoder_sparse_step`, `mlp_only_layers` (dense layers use `intermediate_size`)
gpt_oss        GptOssForCausalLM: `num_local_experts`, `experts_per_token`, expert size `intermediate_size`,
               `sliding_window` on the layers `layer_types` marks "sliding_attention" (alternating)
deepseek_v3    DeepseekV3ForCausalLM: MLA (`q_lora_rank`, `kv_lora_rank`, `qk_nope_head_dim`,
               `qk_rope_head_dim`, `v_head_dim`), `n_routed_experts`, `n_shared_experts`,
               `first_k_dense_replace`, `moe_layer_freq`, `moe_intermediate_size`
gptj           GPTJForCausalLM: `n_embd`, `n_layer`, `n_head`, `n_inner` (None: 4 x n_embd), plain GELU MLP,
               parallel residual, untied LM head
falcon         FalconForCausalLM: `new_decoder_architecture` (GQA with `num_kv_heads`) or `multi_query`
               (one KV head), `parallel_attn`, `ffn_hidden_size` (default 4 x hidden), plain GELU MLP
phi3           Phi3ForCausalLM: as llama (fused qkv / gate_up projections have the same sizes); `sliding_window`
               on every layer when set
gemma2, gemma3 Gemma2/Gemma3ForCausalLM (gemma3: `text_config` of Gemma3ForConditionalGeneration): as llama with
               tied embeddings; `sliding_window` on the layers `layer_types` marks "sliding_attention" (default:
               gemma2 every other layer from layer 0, gemma3 all but every `sliding_window_pattern`-th); logit
               soft-capping does not change the cost and is ignored
minimax_m2     MiniMaxM2ForCausalLM: every layer MoE, `num_local_experts`, `num_experts_per_tok`, expert size
               `intermediate_size`, `shared_intermediate_size` (0 in M2.5)
llama4         Llama4ForConditionalGeneration (`text_config`): MoE every `interleave_moe_layer_step`-th layer
               (expert size `intermediate_size`, one shared expert of the same size), dense layers
               `intermediate_size_mlp`; chunked local attention (`attention_chunk_size`) on the RoPE layers
               (`no_rope_layers`, default 3 of every 4), recorded as a window of that length
qwen3_5,       Qwen3.5 (`text_config`): `layer_types` mixes "linear_attention" (Gated DeltaNet: `linear_num_key_heads`,
qwen3_5_moe    `linear_num_value_heads`, `linear_key_head_dim`, `linear_value_head_dim`, `linear_conv_kernel_dim`)
qwen3_next     with "full_attention" (gated query when `attn_output_gate`); MoE as qwen3_moe plus a shared expert
kimi_k2,       Kimi-K2 / Kimi-K2.5 (KimiK25ForConditionalGeneration, DeepseekV3 `text_config`): as deepseek_v3
kimi_k25
qwen3_vl(_moe) Qwen3-VL: the `text_config` is read as qwen3 / qwen3_moe
glm_moe_dsa,   GLM-5 / DeepSeek-V3.2: DeepSeek-V3 MLA + MoE plus DeepSeek sparse attention (`index_topk`,
deepseek_v32   `index_n_heads`, `index_head_dim`)
deepseek_v4    DeepseekV4ForCausalLM (model_type deepseek_v4, or sgl-project's "deepseek_ref"): compressed attention
               (`compress_ratios` per layer: 0 window only, 4 CSA with the lightning indexer `index_topk`,
               `index_n_heads`, `index_head_dim`, 128 HCA; `sliding_window`; one KV head of `head_dim`),
               `q_lora_rank`, grouped low-rank output (`o_groups`, `o_lora_rank`), mHC (`hc_mult`), every layer MoE
               (`n_routed_experts`, `num_experts_per_tok`, `moe_intermediate_size`, `n_shared_experts`);
               `expert_dtype` "fp4": MXFP4 experts beside FP8 block-scaled weights (`Model.dense_weight_dtype`)
nemotron-nas   DeciLMForCausalLM (Llama-3.3-Nemotron-Super-49B): a Llama decoder pruned block by block
               (`block_configs`): blocks without attention ("no_op": `Model.n_ffn_only_layers`), each block's MLP
               width from its `ffn_mult` (averaged over the blocks: parameters and FLOPs exact), one KV-head group
               (`n_heads_in_group`) for every attention block
nemotron_h     NemotronHForCausalLM: `hybrid_override_pattern` (or `layers_block_type`: "mamba", "attention",
               "mlp", "moe") of "M" (Mamba-2 mixer), "*" (attention) and "-"
               (MLP, squared-ReLU, `intermediate_size`) blocks. Recorded as n_layers = mixer blocks, of which the
               "M" ones are linear (`mamba_num_heads`, `mamba_head_dim`, `n_groups`, `ssm_state_size`,
               `conv_kernel`), and `ffn` = the MLP width averaged over the mixer layers (parameters and FLOPs
               exact; the all-reduce count is per mixer layer). Nemotron-3: "E" (MoE) blocks instead of "-"
               (`n_routed_experts`, `num_experts_per_tok`, `moe_intermediate_size`, a shared expert of
               `moe_shared_expert_intermediate_size`) sit on that many mixer layers, the others have no MLP
               (ffn 0, as leading dense layers). Latent MoE (`moe_latent_size`, Super / Ultra): the routed
               experts work on the token projected down to that width (`Model.moe_latent`).
step3p7        Step3p7FlashForCausalLM (Step-3.7-Flash; step3p5 read alike): GQA, `layer_types` sliding / full
               attention (`sliding_window`), `first_k_dense_replace` dense layers (`intermediate_size`), then MoE
               (`num_experts`, `num_experts_per_tok`, `moe_intermediate_size`) plus a shared expert
               `share_expert_dim`; window layers with their own query heads (`attention_other_setting`) refused
mimo_v2_flash  MiMoV2FlashForCausalLM: `hybrid_layer_pattern` (1 sliding window of `sliding_window`, 0 full), q/k
               `head_dim` and v `v_head_dim`, the window layers' own KV heads `swa_num_key_value_heads`
               (`Model.swa_n_kv_heads`), MoE per `moe_layer_freq` (leading dense layers of `intermediate_size`,
               `n_routed_experts`, `num_experts_per_tok`, `moe_intermediate_size`); attention-sink biases free
gemma4         Gemma4ForConditionalGeneration (`text_config`, model_type gemma4_text): `layer_types` sliding
               (`sliding_window`; `num_key_value_heads` x `head_dim`) / full attention (`global_head_dim`,
               queries too; with `attention_k_eq_v` `num_global_key_value_heads` KV heads and no v_proj:
               `Model.k_eq_v`), recorded as full layers plus the window layers' own `swa_n_kv_heads` /
               `swa_head_dim`; `intermediate_size` gated MLP in every layer, plus with `enable_moe_block` the
               routed experts (`num_experts`, `top_k_experts`, `moe_intermediate_size`) beside it (recorded as
               a shared expert of `intermediate_size`); per-layer input embeddings
               (`hidden_size_per_layer_input`) and KV-shared layers (`num_kv_shared_layers`) refused by name
kimi_linear    Kimi-K3 (KimiK3ForConditionalGeneration, `text_config` KimiLinearForCausalLM): `linear_attn_config`
               `kda_layers` (Kimi Delta Attention, `linear_attn_kind` "kda": `num_heads` x `head_dim` for q, k, v
               and the state, `short_conv_kernel_size`, full-rank output gate `use_full_rank_gate`, bounded decay
               `gate_lower_bound`) beside `full_attn_layers` (MLA: `q_lora_rank`, `kv_lora_rank`,
               `qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`; `mla_use_nope`; output gate
               `mla_use_output_gate`), `first_k_dense_replace` dense layers (`intermediate_size`), then latent MoE
               (`num_experts`, `num_experts_per_token`, `moe_intermediate_size`, `routed_expert_hidden_size`,
               `num_shared_experts` of `moe_intermediate_size`), attention residuals (`attn_res_block_size`);
               a low-rank KDA output gate and unknown `linear_attn_config` keys are refused by name
=============  ===========================================================================================

Quantization: `quantization_config` inside config.json (quant_method fp8 with or without `weight_block_size`,
fbgemm_fp8, mxfp4, awq, gptq, bitsandbytes, compressed-tensors, modelopt) or a ModelOpt `hf_quant_config.json`
(`quant_algo` FP8 / NVFP4 / W4A16_NVFP4 / INT4_AWQ / W4A8_AWQ / MIXED_PRECISION), given as the key
"hf_quant_config" of the config mapping or as the `hf_quant_config=` argument (mapping or path), set
`Model.quant_weight_dtype` / `quant_scheme` / `quant_kv_dtype`. An unknown method or algorithm raises `CatalogError`
naming it.

A config that lacks a field the architecture needs raises `CatalogError` naming the field and the architecture.
Extra keys (the catalog's "name", "hf_id", "aliases", "source") fill the matching `Model` fields; "copied_from"
records where a shipped copy was taken from. Multi-token-prediction heads (`num_nextn_predict_layers`,
`mtp_num_hidden_layers`, `use_mtp`) and vision/audio towers are not part of the costed model; the MTP modules' count
is kept (`Model.n_mtp_layers`) for the speculative-decoding knob (`inference.speculative`).
"""
from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from .checks import check_hybrid, validate_model
from .errors import CatalogError
from .quant import (
    LINEAR_ATTN_NAMES,
    MODELOPT_ALGOS,
    MODULE_NAMES,
    checkpoint_method,
    checkpoint_quant,
    json_mapping,
    kept_16bit,
    load_quant_config,
    stored_shares,
)
from .types import Model

_MISSING = object()


class _Cfg:
    """Read access to one config with errors that name the field and the architecture."""

    def __init__(self, cfg: Mapping[str, Any], arch: str) -> None:
        self.cfg, self.arch = cfg, arch

    def req(self, *keys: str) -> Any:
        for k in keys:
            v = self.cfg.get(k, _MISSING)
            if v is not _MISSING and v is not None:
                return v
        alts = " or ".join(repr(k) for k in keys)
        raise CatalogError(f"config.json for {self.arch} lacks the required field {alts}")

    def opt(self, key: str, default: Any) -> Any:
        v = self.cfg.get(key, _MISSING)
        return default if v is _MISSING or v is None else v

    def _whole(self, key: str, v: Any, minimum: int) -> int:
        """`v` as an int, or `CatalogError` naming the field: a string, a bool, a fraction (a head width of 128.5
        is no head width) or a value below `minimum` (a period of 0 layers) is refused, never truncated."""
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer())
                or v < minimum):
            what = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
            raise CatalogError(f"config.json for {self.arch}: field {key!r} = {v!r} is not {what}")
        return int(v)

    def int(self, *keys: str, minimum: int = 0) -> int:
        """A required integer field (the first of `keys` present), at least `minimum`."""
        v = self.req(*keys)
        key = next(k for k in keys if self.cfg.get(k) is not None)
        return self._whole(key, v, minimum)

    def opt_int(self, key: str, default: builtins.int, minimum: builtins.int = 0) -> builtins.int:
        """An optional integer field (absent or null: `default`), at least `minimum`; anything else raises
        `CatalogError` naming the field."""
        v = self.cfg.get(key, _MISSING)
        return default if v is _MISSING or v is None else self._whole(key, v, minimum)

    def flag(self, key: str, default: bool) -> bool:
        """An optional true/false field (absent or null: `default`). JSON writes booleans as true / false; a string
        ("false" is truthy) or a number raises `CatalogError` naming the field."""
        v = self.cfg.get(key, _MISSING)
        if v is _MISSING or v is None:
            return default
        if not isinstance(v, bool):
            raise CatalogError(f"config.json for {self.arch}: field {key!r} = {v!r} is not true or false")
        return v


def _gqa_common(c: _Cfg) -> dict[str, Any]:
    """Fields shared by the Llama-style decoders (Llama, Mistral, Qwen2/3, Mixtral, Qwen-MoE, gpt-oss)."""
    hidden = c.int("hidden_size")
    n_heads = c.int("num_attention_heads")
    if n_heads == 0:
        raise CatalogError(f"config.json for {c.arch}: num_attention_heads must be > 0")
    head_dim = c.opt_int("head_dim", 0)  # absent, null or 0: hidden / heads
    if not head_dim:
        if hidden % n_heads:
            raise CatalogError(f"config.json for {c.arch} lacks 'head_dim' and hidden_size={hidden} is not a "
                               f"multiple of num_attention_heads={n_heads}")
        head_dim = hidden // n_heads
    return dict(
        n_layers=c.int("num_hidden_layers"),
        hidden=hidden,
        n_heads=n_heads,
        # Hugging Face's default when absent: multi-head attention (as many KV heads as query heads)
        n_kv_heads=c.opt_int("num_key_value_heads", n_heads),
        head_dim=int(head_dim),
        vocab=c.int("vocab_size"),
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0),
    )


def _dense_llama(c: _Cfg) -> dict[str, Any]:
    return dict(_gqa_common(c), ffn=c.int("intermediate_size"), gated_mlp=True)


def _llama(c: _Cfg) -> dict[str, Any]:
    """Llama: `_dense_llama`, plus a window of `sliding_window` tokens on the layers a `layer_types` list marks
    "sliding_attention" (vLLM's LlamaAttention reads them; Hugging Face's LlamaConfig has no such field)."""
    d = _dense_llama(c)
    types = c.opt("layer_types", None)
    if types is not None:
        n_sliding = _sliding_types(c, types, d["n_layers"])
        if n_sliding:
            d.update(sliding_window=c.int("sliding_window", minimum=1), n_sliding_layers=n_sliding)
    return d


def _mistral(c: _Cfg) -> dict[str, Any]:
    d = _dense_llama(c)
    d["sliding_window"] = c.opt_int("sliding_window", 0)
    return d


def _qwen_sliding(c: _Cfg, d: dict[str, Any]) -> dict[str, Any]:
    if c.flag("use_sliding_window", False) and c.opt_int("sliding_window", 0):
        d["sliding_window"] = int(c.cfg["sliding_window"])
        # Qwen2/3: layers with index >= max_window_layers use the sliding window
        d["n_sliding_layers"] = max(0, d["n_layers"] - c.opt_int("max_window_layers", 0))
    return d


def _qwen_dense(c: _Cfg) -> dict[str, Any]:
    return _qwen_sliding(c, _dense_llama(c))


def _mixtral(c: _Cfg) -> dict[str, Any]:
    d = dict(_gqa_common(c), gated_mlp=True)
    moe = c.int("intermediate_size")
    d.update(ffn=moe, moe_ffn=moe, n_experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"))
    d["sliding_window"] = c.opt_int("sliding_window", 0)
    return d


def _leading_dense(c: _Cfg, n_layers: int) -> int:
    """`mlp_only_layers` as a count of leading dense layers (the only layout `Model` represents)."""
    only = sorted(int(i) for i in c.opt("mlp_only_layers", []))
    if only != list(range(len(only))):
        raise CatalogError(f"config.json for {c.arch}: mlp_only_layers={only} is not a leading run of layers "
                           "[0, 1, ..., k-1]; only that layout is supported")
    return min(len(only), n_layers)


def _qwen_moe(c: _Cfg) -> dict[str, Any]:
    d = _qwen_sliding(c, dict(_gqa_common(c), gated_mlp=True))
    d.update(
        ffn=c.int("intermediate_size"),
        moe_ffn=c.int("moe_intermediate_size"),
        n_experts=c.int("num_experts"),
        top_k=c.int("num_experts_per_tok"),
        moe_layer_freq=c.opt_int("decoder_sparse_step", 1, minimum=1),
        first_k_dense=_leading_dense(c, d["n_layers"]),
    )
    shared = c.opt_int("shared_expert_intermediate_size", 0)
    if shared:
        d.update(n_shared_experts=1, shared_ffn=shared)
    return d


def _gpt_oss(c: _Cfg) -> dict[str, Any]:
    d = dict(_gqa_common(c), gated_mlp=True)
    moe = c.int("intermediate_size")
    d.update(ffn=moe, moe_ffn=moe, n_experts=c.int("num_local_experts"),
             top_k=c.int("experts_per_token", "num_experts_per_tok"))
    window = c.opt_int("sliding_window", 0)
    if window:
        types = c.opt("layer_types", None)
        # without layer_types, gpt-oss alternates: even layers sliding, odd layers full; with it, one known kind
        # per layer (`_sliding_types`)
        n_sliding = (_sliding_types(c, types, d["n_layers"]) if types is not None
                     else (d["n_layers"] + 1) // 2)
        d.update(sliding_window=window, n_sliding_layers=n_sliding)
    return d


def _deepseek_v3(c: _Cfg) -> dict[str, Any]:
    hidden = c.int("hidden_size")
    n_heads = c.int("num_attention_heads")
    nope, rope = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim")
    return dict(
        n_layers=c.int("num_hidden_layers"),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=c.opt_int("num_key_value_heads", n_heads),
        head_dim=nope + rope,
        ffn=c.int("intermediate_size"),
        vocab=c.int("vocab_size"),
        gated_mlp=True,
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0),
        n_experts=c.int("n_routed_experts"),
        top_k=c.int("num_experts_per_tok"),
        moe_ffn=c.int("moe_intermediate_size"),
        n_shared_experts=c.opt_int("n_shared_experts", 0),
        shared_ffn=c.opt_int("n_shared_experts", 0) * c.int("moe_intermediate_size"),
        first_k_dense=c.opt_int("first_k_dense_replace", 0),
        moe_layer_freq=c.opt_int("moe_layer_freq", 1, minimum=1),
        q_lora_rank=c.opt_int("q_lora_rank", 0),  # null: full-rank query projection (DeepSeek-V2-Lite)
        kv_lora_rank=c.int("kv_lora_rank"),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        v_head_dim=c.int("v_head_dim"),
    )


def _gptj(c: _Cfg) -> dict[str, Any]:
    hidden, n_heads = c.int("n_embd", "hidden_size"), c.int("n_head", "num_attention_heads")
    return dict(
        n_layers=c.int("n_layer", "num_hidden_layers"),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        head_dim=hidden // n_heads,
        ffn=c.opt_int("n_inner", 4 * hidden),
        vocab=c.int("vocab_size"),
        gated_mlp=False,
        tie_embeddings=c.flag("tie_word_embeddings", False),
        parallel_residual=True,
        max_position=c.opt_int("n_positions", 0),
    )


def _falcon(c: _Cfg) -> dict[str, Any]:
    hidden = c.int("hidden_size")
    n_heads = c.int("num_attention_heads", "n_head")
    if c.flag("new_decoder_architecture", False):
        n_kv = c.int("num_kv_heads", "n_head_kv")
    elif c.flag("multi_query", True):  # Hugging Face FalconConfig default: multi_query=True
        n_kv = 1
    else:
        n_kv = n_heads
    return dict(
        n_layers=c.int("num_hidden_layers", "n_layer"),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=c.opt_int("head_dim", hidden // n_heads),
        ffn=c.opt_int("ffn_hidden_size", 4 * hidden),
        vocab=c.int("vocab_size"),
        gated_mlp=False,
        # Hugging Face FalconConfig default: tie_word_embeddings=True
        tie_embeddings=c.flag("tie_word_embeddings", True),
        # new_decoder_architecture implies parallel attention + MLP
        parallel_residual=c.flag("parallel_attn", True) or c.flag("new_decoder_architecture", False),
        max_position=c.opt_int("max_position_embeddings", 2048),
    )


def _dtype_name(v: Any) -> str:
    """A torch/HF dtype string ("float32", "bfloat16", "auto", None) as a catalog dtype name ("" = 16-bit default)."""
    names = {"float32": "fp32", "fp32": "fp32", "bfloat16": "bf16", "bf16": "bf16", "float16": "fp16", "fp16": "fp16"}
    return names.get(str(v).replace("torch.", "").lower(), "") if v else ""


def _phi3(c: _Cfg) -> dict[str, Any]:
    d = _dense_llama(c)
    window = c.opt_int("sliding_window", 0)
    if window:
        d["sliding_window"] = window  # Phi3Config: the window applies to every layer
    return d


def _sliding_types(c: _Cfg, types: Any, n_layers: int) -> int:
    """Number of "sliding_attention" entries of a `layer_types` list of "sliding_attention" / "full_attention",
    one per layer; anything else raises `CatalogError` naming layer_types."""
    if not isinstance(types, (list, tuple)):
        raise CatalogError(f"config.json for {c.arch}: layer_types={types!r} is not a list")
    bad = sorted({str(t) for t in types} - {"sliding_attention", "full_attention"})
    if bad or len(types) != n_layers:
        raise CatalogError(f"config.json for {c.arch}: layer_types must list 'sliding_attention'/'full_attention' "
                           f"for each of the {n_layers} layers (got {len(types)} entries, unknown kinds {bad})")
    return sum(t == "sliding_attention" for t in types)


def _gemma_pattern(c: _Cfg, n_layers: int, every: int) -> int:
    """Number of sliding layers from `layer_types`, else from the default period (one full layer in `every`)."""
    types = c.opt("layer_types", None)
    if types is None:
        return sum(1 for i in range(n_layers) if (i + 1) % every)
    return _sliding_types(c, types, n_layers)


def _gemma(c: _Cfg, every: int) -> dict[str, Any]:
    d = _dense_llama(c)
    d["tie_embeddings"] = c.flag("tie_word_embeddings", True)  # Gemma ties its LM head (HF default True)
    window = c.opt_int("sliding_window", 0)
    if window:
        d.update(sliding_window=window, n_sliding_layers=_gemma_pattern(c, d["n_layers"], every))
    return d


def _gemma2(c: _Cfg) -> dict[str, Any]:
    return _gemma(c, 2)  # Gemma2Config: layers 0, 2, 4, ... slide


def _gemma3(c: _Cfg) -> dict[str, Any]:
    return _gemma(c, c.opt_int("sliding_window_pattern", 6, minimum=1))  # Gemma3: every 6th layer is global


def _minimax_m2(c: _Cfg) -> dict[str, Any]:
    if c.opt("attn_type_list", None) is not None and not all(int(t) == 1 for t in c.cfg["attn_type_list"]):
        raise CatalogError(f"config.json for {c.arch}: attn_type_list marks lightning (linear) attention layers "
                           "(MiniMax-01/M1); only softmax-attention MiniMax-M2 models are supported")
    d = dict(_gqa_common(c), gated_mlp=True)
    moe = c.int("intermediate_size")
    d.update(ffn=moe, moe_ffn=moe, n_experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"))
    shared = c.opt_int("shared_intermediate_size", 0)
    if shared:
        d.update(n_shared_experts=1, shared_ffn=shared)
    return d


def _minimax_m3(c: _Cfg) -> dict[str, Any]:
    """MiniMax-M3: GQA; `moe_layer_freq` per layer (leading dense layers of `dense_intermediate_size`, then MoE of
    `num_local_experts` x `moe_intermediate_size` with one shared expert of `shared_intermediate_size`); MiniMax
    sparse attention on the layers `sparse_attention_config.sparse_attention_freq` flags (`Model.index_block`).
    MTP modules are not costed (as for DeepSeek / MiniMax-M2.5)."""
    d = dict(_gqa_common(c), gated_mlp=True)
    L = d["n_layers"]
    k = _moe_tail(c, L, c.req("moe_layer_freq"), "moe_layer_freq")
    moe = c.opt_int("moe_intermediate_size", 0) or c.int("intermediate_size")
    d.update(ffn=c.opt_int("dense_intermediate_size", moe), moe_ffn=moe, n_experts=c.int("num_local_experts"),
             top_k=c.int("num_experts_per_tok"), first_k_dense=k)
    shared = c.opt_int("n_shared_experts", 0)
    if shared:
        d.update(n_shared_experts=shared, shared_ffn=shared * c.int("shared_intermediate_size"))
    if c.flag("attention_output_gate", False):
        raise CatalogError(f"config.json for {c.arch}: attention_output_gate=true cannot be costed for minimax_m3")
    sac = c.opt("sparse_attention_config", None)
    if not isinstance(sac, Mapping) or not sac.get("use_sparse_attention", False):
        return d
    sp = [int(x) for x in sac.get("sparse_attention_freq") or [1] * L]
    if len(sp) != L:
        raise CatalogError(f"config.json for {c.arch}: sparse_attention_config.sparse_attention_freq has {len(sp)} "
                           f"entries for {L} layers")
    off = [int(x) for x in sac.get("sparse_disable_index_value") or [0] * L]
    if any(s_ and not o for s_, o in zip(sp, off)):
        # an index value branch (value and output projections of the indexer) is not modelled
        raise CatalogError(f"config.json for {c.arch}: sparse_attention_config.sparse_disable_index_value is 0 on "
                           "a sparse layer (an index value branch) and cannot be costed")
    if str(sac.get("sparse_score_type", "max")) != "max":
        raise CatalogError(f"config.json for {c.arch}: sparse_attention_config.sparse_score_type="
                           f"{sac.get('sparse_score_type')!r} cannot be costed (known: 'max')")
    block = int(sac["sparse_block_size"]) if "sparse_block_size" in sac else 0
    topk = int(sac.get("sparse_topk_blocks", 0))
    if block <= 0 or topk <= 0:
        raise CatalogError(f"config.json for {c.arch}: sparse_attention_config.sparse_block_size and "
                           "sparse_topk_blocks must be > 0")
    # the selected blocks plus the forced initial and local ones (deduplicated in the kernels: an upper bound)
    span = (topk + int(sac.get("sparse_init_block", 0)) + int(sac.get("sparse_local_block", 0))) * block
    d.update(index_topk=span, index_n_heads=int(sac.get("sparse_num_index_heads", 0)),
             index_head_dim=int(sac.get("sparse_index_dim", 0)), index_block=block, n_index_layers=sum(sp))
    return d


def _llama4(c: _Cfg) -> dict[str, Any]:
    d = dict(_gqa_common(c), gated_mlp=True)
    L = d["n_layers"]
    moe = c.int("intermediate_size")
    d.update(ffn=c.opt_int("intermediate_size_mlp", moe), moe_ffn=moe, n_experts=c.int("num_local_experts"),
             top_k=c.int("num_experts_per_tok"), n_shared_experts=1, shared_ffn=moe,
             moe_layer_freq=c.opt_int("interleave_moe_layer_step", 1, minimum=1))
    if c.opt("moe_layers", None) is not None:
        step = d["moe_layer_freq"]
        if sorted(int(i) for i in c.cfg["moe_layers"]) != list(range(step - 1, L, step)):
            raise CatalogError(f"config.json for {c.arch}: moe_layers={c.cfg['moe_layers']} is not every "
                               f"interleave_moe_layer_step={step}-th layer; only that layout is supported")
    chunk = c.opt_int("attention_chunk_size", 0)
    if chunk:
        rope = c.opt("no_rope_layers", None)  # 1: RoPE layer with chunked local attention, 0: global NoPE layer
        if rope is None:
            every = c.opt_int("no_rope_layer_interval", 4, minimum=1)
            rope = [int((i + 1) % every != 0) for i in range(L)]
        bad = sorted({r for r in rope if r not in (0, 1)}, key=str) if isinstance(rope, (list, tuple)) else [rope]
        if bad or len(rope) != L:
            raise CatalogError(f"config.json for {c.arch}: no_rope_layers must hold a 1 (RoPE, chunked attention) "
                               f"or 0 (global NoPE) flag for each of the {L} layers (got "
                               f"{len(rope) if isinstance(rope, (list, tuple)) else rope!r} entries, other values "
                               f"{bad})")
        d.update(sliding_window=chunk, n_sliding_layers=int(sum(1 for r in rope if r)))
    return d


def _moe_tail(c: _Cfg, n_layers: int, moe_layers: Any, field: str) -> int:
    """Leading dense layers of a model whose MoE layers are given per layer (`moe_layers`: a list of 0/1 flags, one
    per layer, or of MoE layer indices when `field` is an index list); only a leading run of dense layers followed
    by MoE layers is represented (`Model.first_k_dense`), anything else raises `CatalogError` naming `field`."""
    if field == "moe_layer_freq":
        flags = [int(f) for f in moe_layers] if isinstance(moe_layers, (list, tuple)) else None
        if flags is None or len(flags) != n_layers or set(flags) - {0, 1}:
            raise CatalogError(f"config.json for {c.arch}: moe_layer_freq must list 0 (dense) / 1 (MoE) for each of "
                               f"the {n_layers} layers")
    else:  # Step-3.5-Flash's moe_layers_enum: "3,4,...,44"
        idx = ([int(t) for t in moe_layers.split(",") if t.strip()] if isinstance(moe_layers, str)
               else [int(t) for t in moe_layers])
        flags = [int(i in set(idx)) for i in range(n_layers)]
    k = flags.index(1) if 1 in flags else n_layers
    if flags != [0] * k + [1] * (n_layers - k):
        raise CatalogError(f"config.json for {c.arch}: {field} is not a leading run of dense layers followed by MoE "
                           "layers; only that layout is supported")
    return k


def _step3p7(c: _Cfg) -> dict[str, Any]:
    """StepFun Step-3.7-Flash (Step3p7FlashForCausalLM): GQA with "sliding_attention" / "full_attention" layers
    (`layer_types`, `sliding_window`), `first_k_dense_replace` dense layers of `intermediate_size`, then MoE layers
    (`num_experts`, `num_experts_per_tok`, `moe_intermediate_size`) with one shared expert of `share_expert_dim`.
    Step-3.5-Flash's spellings are read too (`num_attention_groups`, `moe_num_experts`, `moe_top_k`,
    `moe_layers_enum`, a `layer_types` list that also covers the multi-token-prediction layers). Window layers with
    other query heads or head dims (`attention_other_setting`) cannot be represented and are refused by name; the
    head-wise output gate (`use_head_wise_attn_gate`: hidden x heads per layer, < 0.01 % of the weights) and the
    q/k norms are, like biases and norms elsewhere, not counted."""
    cfg = dict(c.cfg)
    if cfg.get("num_key_value_heads") is None and cfg.get("num_attention_groups") is not None:
        cfg["num_key_value_heads"] = cfg["num_attention_groups"]
    c = _Cfg(cfg, c.arch)
    d = dict(_gqa_common(c), gated_mlp=True)
    L = d["n_layers"]
    types = c.req("layer_types")
    mtp = c.opt_int("num_nextn_predict_layers", 0)
    if isinstance(types, (list, tuple)) and mtp and len(types) == L + mtp:
        types = list(types)[:L]  # the entries of the multi-token-prediction layers (not costed)
    window = c.int("sliding_window")
    n_sliding = _sliding_types(c, types, L)
    if n_sliding and window <= 0:
        raise CatalogError(f"config.json for {c.arch}: sliding_window = {window} must be > 0 for its "
                           f"{n_sliding} sliding_attention layers")
    other = c.opt("attention_other_setting", None)
    if other is not None:
        o = _Cfg(dict(other), f"{c.arch} attention_other_setting")
        if o.int("num_attention_heads") != d["n_heads"] or o.opt_int("head_dim", d["head_dim"]) != d["head_dim"]:
            raise CatalogError(f"config.json for {c.arch}: attention_other_setting gives the sliding layers "
                               f"num_attention_heads={other.get('num_attention_heads')} / head_dim="
                               f"{other.get('head_dim')} beside the full layers' {d['n_heads']} / {d['head_dim']}; "
                               "only window layers of the same query heads and head dims are costed")
        kv = int(o.opt("num_key_value_heads", o.opt("num_attention_groups", d["n_kv_heads"])))
        if kv != d["n_kv_heads"]:
            d["swa_n_kv_heads"] = kv
    moe_enum = c.opt("moe_layers_enum", None)
    first_k = (_moe_tail(c, L, moe_enum, "moe_layers_enum") if moe_enum is not None
               else c.opt_int("first_k_dense_replace", 0))
    share = c.opt_int("share_expert_dim", 0)
    d.update(ffn=c.int("intermediate_size"), moe_ffn=c.int("moe_intermediate_size"),
             n_experts=c.int("num_experts", "moe_num_experts"), top_k=c.int("num_experts_per_tok", "moe_top_k"),
             first_k_dense=min(first_k, L), sliding_window=window if n_sliding else 0, n_sliding_layers=n_sliding,
             # share_expert_dim: the width of the shared expert block every MoE layer runs beside the routed ones
             n_shared_experts=1 if share else 0, shared_ffn=share)
    return d


def _mimo_v2_flash(c: _Cfg) -> dict[str, Any]:
    """Xiaomi MiMo-V2-Flash (MiMoV2FlashForCausalLM): `hybrid_layer_pattern` marks each layer 1 (sliding window of
    `sliding_window` tokens) or 0 (full attention). Queries and keys have `head_dim` (192), values `v_head_dim`
    (128); the window layers have KV heads of their own (`swa_num_key_value_heads`: `Model.swa_n_kv_heads`), and
    must have the full layers' query heads and head dims (`swa_num_attention_heads`, `swa_head_dim`,
    `swa_v_head_dim`: other values are refused by name). MoE per layer (`moe_layer_freq` list: a leading run of
    dense layers of `intermediate_size`, then `n_routed_experts` / `num_experts_per_tok` /
    `moe_intermediate_size`). The attention-sink biases (one scalar per head) add no GEMM and no cache."""
    d = dict(_gqa_common(c), gated_mlp=True)
    L, hd = d["n_layers"], d["head_dim"]
    vd = c.opt_int("v_head_dim", hd)
    pattern = c.req("hybrid_layer_pattern")
    flags = [int(p) for p in pattern] if isinstance(pattern, (list, tuple)) else []
    if len(flags) != L or set(flags) - {0, 1}:
        raise CatalogError(f"config.json for {c.arch}: hybrid_layer_pattern must list 1 (sliding window) / 0 (full "
                           f"attention) for each of the {L} layers")
    n_sliding = sum(flags)
    window = c.int("sliding_window", "sliding_window_size")
    if n_sliding and window <= 0:
        raise CatalogError(f"config.json for {c.arch}: sliding_window = {window} must be > 0 for its {n_sliding} "
                           "sliding-window layers")
    for key, full in (("swa_num_attention_heads", d["n_heads"]), ("swa_head_dim", hd), ("swa_v_head_dim", vd)):
        v = c.opt(key, full)
        if int(v) != full:
            raise CatalogError(f"config.json for {c.arch}: {key}={v!r} differs from the full-attention layers' "
                               f"{full}; only window layers with the same query heads and head dims are costed")
    swa_kv = c.int("swa_num_key_value_heads") if c.opt("swa_num_key_value_heads", None) is not None \
        else d["n_kv_heads"]
    if swa_kv <= 0:
        raise CatalogError(f"config.json for {c.arch}: swa_num_key_value_heads = {swa_kv} must be > 0")
    freq = c.opt("moe_layer_freq", 1)
    first_k = (_moe_tail(c, L, freq, "moe_layer_freq") if isinstance(freq, (list, tuple))
               else c.opt_int("first_k_dense_replace", 0))
    n_shared = c.opt_int("n_shared_experts", 0)
    moe = c.int("moe_intermediate_size")
    d.update(ffn=c.int("intermediate_size"), moe_ffn=moe, n_experts=c.int("n_routed_experts"),
             top_k=c.int("num_experts_per_tok"), first_k_dense=first_k,
             moe_layer_freq=1 if isinstance(freq, (list, tuple)) else int(freq),
             n_shared_experts=n_shared, shared_ffn=n_shared * moe, v_head_dim=vd if vd != hd else 0,
             sliding_window=window if n_sliding else 0, n_sliding_layers=n_sliding,
             swa_n_kv_heads=swa_kv if n_sliding and swa_kv != d["n_kv_heads"] else 0)
    return d


def _gemma4(c: _Cfg) -> dict[str, Any]:
    """Google Gemma 4 (the `text_config` of Gemma4ForConditionalGeneration, model_type gemma4_text; Hugging Face
    transformers' and vLLM's gemma4 modeling code). `layer_types` marks each layer "sliding_attention" (a window of
    `sliding_window` tokens, `num_key_value_heads` KV heads of `head_dim`) or "full_attention" (queries, keys and
    values of `global_head_dim`; with `attention_k_eq_v` `num_global_key_value_heads` KV heads whose values are
    the key projection's output, so the checkpoint has no v_proj there: `Model.k_eq_v`; without it the window
    layers' KV heads). The record holds the full layers' shape, the window layers' own in `swa_n_kv_heads` /
    `swa_head_dim`; query heads are the same on both kinds. Every layer runs a gated MLP of `intermediate_size`;
    with `enable_moe_block` the routed experts (`num_experts`, `top_k_experts`, `moe_intermediate_size`, router
    hidden x experts) run beside it on the same input, i.e. the dense MLP is the catalog's shared expert.
    Per-layer input embeddings (`hidden_size_per_layer_input`, Gemma 4 E2B / E4B) and KV-shared layers
    (`num_kv_shared_layers`, which also switch on `use_double_wide_mlp`) are not costed and are refused by name.
    Q/K/V norms, the router's scales, the layer scalars and the final logit soft-capping add no GEMM and no cache."""
    for key in ("hidden_size_per_layer_input", "num_kv_shared_layers"):
        v = c.opt(key, 0)
        if v:
            raise CatalogError(f"config.json for {c.arch}: {key}={v!r} cannot be costed (per-layer input embeddings "
                               "and KV-shared layers of Gemma 4 E2B / E4B are not modelled); only 0 is supported")
    d = _dense_llama(c)
    d["tie_embeddings"] = c.flag("tie_word_embeddings", True)  # Gemma ties its LM head (HF default True)
    L, hd, kv = d["n_layers"], d["head_dim"], d["n_kv_heads"]
    n_sliding = _sliding_types(c, c.req("layer_types"), L)
    window = c.int("sliding_window") if n_sliding else 0
    if n_sliding and window <= 0:
        raise CatalogError(f"config.json for {c.arch}: sliding_window = {window} must be > 0 for its {n_sliding} "
                           "sliding_attention layers")
    full_hd = c.opt_int("global_head_dim", 0) or hd  # transformers: global_head_dim if set, else head_dim
    k_eq_v = c.flag("attention_k_eq_v", False) and n_sliding < L
    full_kv = c.int("num_global_key_value_heads") if k_eq_v else kv
    if full_kv <= 0:
        raise CatalogError(f"config.json for {c.arch}: num_global_key_value_heads = {full_kv} must be > 0")
    d.update(head_dim=full_hd, n_kv_heads=full_kv, k_eq_v=k_eq_v, sliding_window=window, n_sliding_layers=n_sliding,
             swa_n_kv_heads=kv if n_sliding and kv != full_kv else 0,
             swa_head_dim=hd if n_sliding and hd != full_hd else 0)
    if c.flag("enable_moe_block", False):
        d.update(n_experts=c.int("num_experts"), top_k=c.int("top_k_experts"),
                 moe_ffn=c.int("moe_intermediate_size", "expert_intermediate_size"),
                 # the dense MLP beside the experts in every layer, on the same residual stream
                 n_shared_experts=1, shared_ffn=d["ffn"])
    return d


def _linear_attn_types(c: _Cfg, n_layers: int) -> int:
    """Number of "linear_attention" layers of a Qwen3.5/Qwen3-Next config (`layer_types` or the interval)."""
    types = c.opt("layer_types", None)
    if types is None:
        every = c.int("full_attention_interval", minimum=1)
        types = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(n_layers)]
    bad = sorted(set(types) - {"linear_attention", "full_attention"})
    if bad:
        raise CatalogError(f"config.json for {c.arch}: layer_types has kinds {bad} that cannot be costed; "
                           "supported: 'linear_attention', 'full_attention'")
    if len(types) != n_layers:
        raise CatalogError(f"config.json for {c.arch}: layer_types has {len(types)} entries for "
                           f"num_hidden_layers={n_layers}")
    return sum(t == "linear_attention" for t in types)


def _qwen3_5(c: _Cfg) -> dict[str, Any]:
    if c.opt("num_experts", 0):
        if "intermediate_size" not in c.cfg:  # every layer MoE: no dense MLP width in the config
            c = _Cfg(dict(c.cfg, intermediate_size=c.int("moe_intermediate_size")), c.arch)
        d = _qwen_moe(c)
    else:
        d = _dense_llama(c)
    d.update(
        n_linear_attn_layers=_linear_attn_types(c, d["n_layers"]), linear_attn_kind="gdn",
        linear_num_k_heads=c.int("linear_num_key_heads"), linear_num_v_heads=c.int("linear_num_value_heads"),
        linear_head_k_dim=c.int("linear_key_head_dim"), linear_head_v_dim=c.int("linear_value_head_dim"),
        linear_conv_kernel=c.int("linear_conv_kernel_dim"),
        linear_state_dtype=_dtype_name(c.opt("mamba_ssm_dtype", "")),
        # Qwen3-Next always gates its attention output; Qwen3.5 says so in attn_output_gate
        attn_output_gate=c.flag("attn_output_gate", c.cfg.get("model_type") == "qwen3_next"),
    )
    return d


def _deepseek_dsa(c: _Cfg) -> dict[str, Any]:
    d = _deepseek_v3(c)
    d.update(index_topk=c.int("index_topk"), index_n_heads=c.int("index_n_heads"),
             index_head_dim=c.int("index_head_dim"))
    return d


#: DeepSeek-V4 compression ratios the cost model knows: 0 (sliding window only), the CSA ratio (with the indexer) and
#: the HCA ratio; other values are refused by name
V4_RATIOS = {"swa": 0, "csa": 4, "hca": 128}


def _deepseek_v4(c: _Cfg) -> dict[str, Any]:
    """DeepSeek-V4 (Flash / Pro): compressed attention (`compress_ratios`), mHC, every layer MoE (the first
    `num_hash_layers` routed by a token-id hash: the same expert work, no router GEMM)."""
    hidden = c.int("hidden_size")
    L = c.int("num_hidden_layers")
    ratios = c.req("compress_ratios")
    if not isinstance(ratios, (list, tuple)) or any(isinstance(r, bool) or not isinstance(r, int) for r in ratios):
        raise CatalogError(f"config.json for {c.arch}: compress_ratios={ratios!r} is not a list of integers")
    # the list may carry one more entry for the multi-token-prediction layer, which is not costed
    if len(ratios) not in (L, L + 1):
        raise CatalogError(f"config.json for {c.arch}: compress_ratios has {len(ratios)} entries for "
                           f"num_hidden_layers={L}")
    ratios = list(ratios)[:L]
    bad = sorted(set(ratios) - set(V4_RATIOS.values()))
    if bad:
        raise CatalogError(f"config.json for {c.arch}: compress_ratios has values {bad} that cannot be costed; "
                           f"supported: {sorted(V4_RATIOS.values())} (0: window only, 4: CSA, 128: HCA)")
    for f in ("o_lora_rank", "o_groups", "hc_mult", "sliding_window", "index_topk", "index_n_heads",
              "index_head_dim", "head_dim", "q_lora_rank"):
        if c.int(f) <= 0:
            raise CatalogError(f"config.json for {c.arch}: {f} = {c.cfg[f]!r} must be > 0")
    n_heads = c.int("num_attention_heads")
    if n_heads % c.int("o_groups"):
        raise CatalogError(f"config.json for {c.arch}: num_attention_heads={n_heads} is not a multiple of "
                           f"o_groups={c.cfg['o_groups']}")
    moe = c.int("moe_intermediate_size")
    n_shared = c.opt_int("n_shared_experts", 0)
    return dict(
        n_layers=L, hidden=hidden, n_heads=n_heads, n_kv_heads=c.int("num_key_value_heads"),
        head_dim=c.int("head_dim"), ffn=moe, vocab=c.int("vocab_size"), gated_mlp=True,
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0),
        n_experts=c.int("n_routed_experts"), top_k=c.int("num_experts_per_tok"), moe_ffn=moe,
        n_shared_experts=n_shared, shared_ffn=n_shared * moe, first_k_dense=0, moe_layer_freq=1,
        q_lora_rank=c.int("q_lora_rank"), qk_rope_head_dim=c.int("qk_rope_head_dim"),
        sliding_window=c.int("sliding_window"), n_sliding_layers=-1,
        index_topk=c.int("index_topk"), index_n_heads=c.int("index_n_heads"),
        index_head_dim=c.int("index_head_dim"),
        n_csa_layers=sum(r == V4_RATIOS["csa"] for r in ratios),
        n_hca_layers=sum(r == V4_RATIOS["hca"] for r in ratios),
        csa_ratio=V4_RATIOS["csa"], hca_ratio=V4_RATIOS["hca"],
        o_lora_rank=c.int("o_lora_rank"), o_groups=c.int("o_groups"), hc_mult=c.int("hc_mult"),
    )


def _kept_modules(t: Mapping[str, Any], hfq: Mapping[str, Any] | None, model_type: str,
                  fields: dict[str, Any]) -> None:
    """Which module classes the checkpoint's exclude / ignore list keeps out of its format (`quant.kept_16bit`):
    `attn_16bit_weights` where every layer's attention is, and the shares of the MoE layers' shared experts and of
    the other layers' dense MLPs (MoE layers: index i >= first_k_dense with (i + 1) % moe_layer_freq == 0, as
    `model_math.n_moe_layers`). Gemma 4's MoE layers hold a dense MLP ("mlp") beside the routed experts, recorded as
    the shared expert."""
    L = fields["n_layers"]
    moe = ([i for i in range(L) if i >= fields.get("first_k_dense", 0)
            and (i + 1) % max(int(fields.get("moe_layer_freq", 1) or 1), 1) == 0]
           if fields.get("n_experts", 0) else [])
    names = {**MODULE_NAMES, "shared_experts": ("mlp.down_proj",)} if model_type == "gemma4" else MODULE_NAMES
    share = kept_16bit(t, hfq, {"attention": range(L), "shared_experts": moe if fields.get("shared_ffn") else [],
                                "dense_mlp": sorted(set(range(L)) - set(moe))}, names)
    fields.update(attn_16bit_weights=share["attention"] >= 1.0, shared_16bit_share=share["shared_experts"],
                  dense_mlp_16bit_share=share["dense_mlp"])
    mixers = _mixer_layers(t, model_type, fields)
    if fields.get("n_experts", 0) and fields["quant_weight_dtype"] in ("fp4", "int4") and mixers is not None:
        # a 4-bit MoE checkpoint's attention: in the format (or FP8) where its config says the layers are
        stored = stored_shares(t, hfq, {"attention": mixers[0], "linear": mixers[1]},
                               {"attention": MODULE_NAMES["attention"], "linear": LINEAR_ATTN_NAMES},
                               fields["quant_weight_dtype"])
        if stored is not None:
            fields["attn_quant_shares"] = (*stored["attention"], *stored["linear"])


def _mixer_layers(t: Mapping[str, Any], model_type: str, fields: Mapping[str, Any]
                  ) -> tuple[list[int], list[int]] | None:
    """The checkpoint's layer indices of its softmax-attention and of its linear-attention layers (the module paths
    its quantization config names): Nemotron-H's blocks by `hybrid_override_pattern` / `layers_block_type` ("*" and
    "M"; its MoE and MLP blocks are layers of their own there), Qwen3.5 / Qwen3-Next's by `layer_types` (or the
    full-attention interval), every layer's attention in a model without linear layers; None for other hybrids."""
    L = int(fields["n_layers"])
    if model_type == "nemotron_h":
        blocks = t.get("layers_block_type")
        pattern = (str(t["hybrid_override_pattern"]) if t.get("hybrid_override_pattern") is not None else
                   "".join(_NEMOTRON_BLOCKS.get(str(b), "?") for b in blocks or ()))
        return [i for i, b in enumerate(pattern) if b == "*"], [i for i, b in enumerate(pattern) if b == "M"]
    if not fields.get("n_linear_attn_layers", 0):
        return list(range(L)), []
    if fields.get("linear_attn_kind") == "gdn":
        types = t.get("layer_types")
        if types is None:
            every = max(int(t.get("full_attention_interval", 0) or 0), 1)
            types = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(L)]
        return ([i for i, k in enumerate(types) if k == "full_attention"],
                [i for i, k in enumerate(types) if k == "linear_attention"])
    return None


def _v4_expert_quant(t: Mapping[str, Any], fields: dict[str, Any]) -> None:
    """DeepSeek-V4 checkpoints keep their routed experts in 4 bits (`expert_dtype` "fp4": MXFP4, DeepSeek's own;
    NVIDIA's NVFP4 variants quantize only the experts) and every other weight in FP8 block scales: the checkpoint's
    weight format is the experts' 4 bits and `dense_weight_dtype` records the FP8 of the rest. The KV cache is
    FP8."""
    if not fields.get("n_csa_layers", 0) + fields.get("n_hca_layers", 0):
        return
    ed = str(t.get("expert_dtype", "") or "").lower()
    if ed == "fp4" and fields["quant_weight_dtype"] in ("fp8", ""):
        fields.update(quant_weight_dtype="fp4", quant_scheme="mxfp4")
    elif ed not in ("", "fp4", "fp8"):
        raise CatalogError(f"config.json for DeepseekV4ForCausalLM: expert_dtype={ed!r} cannot be costed; "
                           "known: 'fp4', 'fp8'")
    if fields["quant_weight_dtype"] in ("fp4", "int4"):
        fields["dense_weight_dtype"] = "fp8"
    # the engines keep DeepSeek-V4's KV entries in FP8 (vLLM: 448 FP8 values, the bf16 RoPE part and scales)
    fields["quant_kv_dtype"] = fields["quant_kv_dtype"] or "fp8"


def _msa_dense_quant(t: Mapping[str, Any], hfq: Mapping[str, Any] | None, fields: dict[str, Any]) -> None:
    """MiniMax-M3's ModelOpt MIXED_PRECISION release (nvidia/MiniMax-M3-NVFP4) keeps its routed experts in NVFP4 and
    the attention, indexer, dense-MLP and shared-expert projections in MXFP8: where every layer's q_proj is in an
    8-bit format of `quantized_layers`, `dense_weight_dtype` records that FP8 (as for DeepSeek-V4) instead of the
    16 bits 4-bit MoE checkpoints otherwise keep their attention in. Other models are left as they are."""
    if not fields.get("index_block") or fields.get("quant_weight_dtype") not in ("fp4", "int4"):
        return
    q = hfq.get("quantization", hfq) if isinstance(hfq, Mapping) else t.get("quantization_config")
    layers = q.get("quantized_layers") if isinstance(q, Mapping) else None
    if not isinstance(layers, Mapping):
        return
    algos = {str(v.get("quant_algo", "")).upper() for k, v in layers.items()
             if isinstance(v, Mapping) and str(k).endswith("self_attn.q_proj")}
    n = sum(1 for k in layers if str(k).endswith("self_attn.q_proj"))
    if n >= fields["n_layers"] and algos and all(a in MODELOPT_ALGOS and MODELOPT_ALGOS[a][0] == "fp8"
                                                 for a in algos):
        fields["dense_weight_dtype"] = "fp8"


def _decilm_ffn_width(ffn_mult: float, hidden: int) -> int:
    """DeciLM's MLP width of a block: 2/3 x ffn_mult x hidden rounded up to a multiple of 256 (the model's own
    `_ffn_mult_to_intermediate_size`, modeling_decilm.py of nvidia/Llama-3_3-Nemotron-Super-49B-v1)."""
    inter = int(2 * ffn_mult * hidden / 3)
    return inter if inter % 256 == 0 else inter + 256 - inter % 256


def _nemotron_nas(c: _Cfg) -> dict[str, Any]:
    """Nemotron-NAS (DeciLMForCausalLM: Llama-3.3-Nemotron-Super-49B, Llama-3.1-Nemotron-Ultra-253B): a Llama
    decoder whose blocks were pruned one by one (`block_configs`): a block's attention may be gone ("no_op") and
    its MLP width is its own `ffn_mult`. Recorded as n_layers blocks, n_ffn_only_layers of them without
    attention, and `ffn` = the MLP widths averaged over the blocks (parameter and FLOP totals exact). Attention
    replaced by a linear layer, sparsified or windowed blocks, and blocks of different KV-head counts are refused
    by name."""
    hidden, n_heads = c.int("hidden_size"), c.int("num_attention_heads")
    L = c.int("num_hidden_layers")
    blocks = c.req("block_configs")
    if not isinstance(blocks, (list, tuple)) or len(blocks) != L:
        raise CatalogError(f"config.json for {c.arch}: block_configs must list one block per layer "
                           f"(num_hidden_layers={L})")
    ffn_only, widths, groups = 0, [], set()
    for i, b in enumerate(blocks):
        att, ffn = (b or {}).get("attention") or {}, (b or {}).get("ffn") or {}
        for part, d in (("attention", att), ("ffn", ffn)):
            for key in ("replace_with_linear", "sparsify") + (("window_length",) if part == "attention" else ()):
                if d.get(key):
                    raise CatalogError(f"config.json for {c.arch}: block {i} {part}.{key}={d[key]!r} cannot be "
                                       f"costed (supported: full attention or no_op, an MLP of ffn_mult or no_op)")
        if att.get("no_op"):
            ffn_only += 1
        else:
            g = att.get("n_heads_in_group")
            if not isinstance(g, int) or g <= 0 or n_heads % g:
                raise CatalogError(f"config.json for {c.arch}: block {i} attention.n_heads_in_group={g!r} does not "
                                   f"divide num_attention_heads={n_heads}")
            groups.add(g)
        if not ffn.get("no_op"):
            mult = ffn.get("ffn_mult")
            if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult <= 0:
                raise CatalogError(f"config.json for {c.arch}: block {i} ffn.ffn_mult={mult!r} is not a positive "
                                   "number")
            widths.append(_decilm_ffn_width(float(mult), hidden))
    if len(groups) != 1:
        raise CatalogError(f"config.json for {c.arch}: the attention blocks have KV-head groups "
                           f"{sorted(groups) or 'none'}; costed: one n_heads_in_group for every attention block")
    return dict(
        n_layers=L, hidden=hidden, n_heads=n_heads, n_kv_heads=n_heads // groups.pop(),
        head_dim=c.opt_int("head_dim", hidden // max(n_heads, 1)),
        ffn=int(round(sum(widths) / L)), vocab=c.int("vocab_size"), gated_mlp=True,
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0), n_ffn_only_layers=ffn_only,
    )


#: Nemotron-H's `layers_block_type` names (Nemotron-3 Ultra's config) as `hybrid_override_pattern` letters
_NEMOTRON_BLOCKS = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}


def _nemotron_h(c: _Cfg) -> dict[str, Any]:
    blocks = c.opt("layers_block_type", None) if c.opt("hybrid_override_pattern", None) is None else None
    if blocks is not None:  # the newer spelling: one name per block
        names = [str(b) for b in blocks] if isinstance(blocks, (list, tuple)) else [repr(blocks)]
        bad = sorted(set(names) - set(_NEMOTRON_BLOCKS))
        if bad:
            raise CatalogError(f"config.json for {c.arch}: layers_block_type has block kinds {bad} that cannot be "
                               f"costed; supported: {', '.join(map(repr, _NEMOTRON_BLOCKS))}")
        pattern = "".join(_NEMOTRON_BLOCKS[n] for n in names)
    else:
        pattern = str(c.req("hybrid_override_pattern", "layers_block_type"))
    bad = sorted(set(pattern) - set("M*-E"))
    if bad:
        raise CatalogError(f"config.json for {c.arch}: hybrid_override_pattern has block kinds {bad} that "
                           "cannot be costed; supported: 'M' (Mamba-2), '*' (attention), '-' (MLP), 'E' (MoE)")
    if c.opt("num_hidden_layers", None) is not None and len(pattern) != c.int("num_hidden_layers"):
        raise CatalogError(f"config.json for {c.arch}: hybrid_override_pattern has {len(pattern)} blocks for "
                           f"num_hidden_layers={c.cfg['num_hidden_layers']}")
    n_mamba, n_attn, n_mlp, n_moe = pattern.count("M"), pattern.count("*"), pattern.count("-"), pattern.count("E")
    mixers = n_mamba + n_attn
    if mixers == 0 or n_mlp + n_moe == 0:
        raise CatalogError(f"config.json for {c.arch}: hybrid_override_pattern {pattern!r} needs mixer ('M'/'*') "
                           "and MLP ('-') or MoE ('E') blocks")
    moe: dict[str, Any] = {}
    if n_moe:  # Nemotron-3: MoE blocks between the mixers (squared-ReLU experts plus a shared expert)
        if n_mlp:
            raise CatalogError(f"config.json for {c.arch}: hybrid_override_pattern mixes MLP ('-') and MoE ('E') "
                               "blocks; only one kind of feed-forward block per model is supported")
        if n_moe > mixers:
            raise CatalogError(f"config.json for {c.arch}: hybrid_override_pattern has {n_moe} MoE blocks for "
                               f"{mixers} mixer blocks; at most one feed-forward block per mixer is supported")
        latent = c.opt("moe_latent_size", None)
        if latent is not None and (isinstance(latent, bool) or not isinstance(latent, int) or latent <= 0):
            raise CatalogError(f"config.json for {c.arch}: moe_latent_size={latent!r} must be a positive integer "
                               "(latent MoE) or null")
        n_shared = c.opt_int("n_shared_experts", 0)
        # the MoE blocks sit on n_moe of the mixer layers; the others carry no feed-forward block (ffn 0)
        moe = dict(moe_ffn=c.int("moe_intermediate_size"), n_experts=c.int("n_routed_experts"),
                   top_k=c.int("num_experts_per_tok"), first_k_dense=mixers - n_moe, n_shared_experts=n_shared,
                   shared_ffn=n_shared * c.opt_int("moe_shared_expert_intermediate_size", 0),
                   moe_latent=int(latent or 0))
    hidden, n_heads = c.int("hidden_size"), c.int("num_attention_heads")
    return dict(
        n_layers=mixers, hidden=hidden, n_heads=n_heads,
        n_kv_heads=c.opt_int("num_key_value_heads", n_heads),
        head_dim=int(c.opt("attention_head_dim", c.opt("head_dim", hidden // max(n_heads, 1)))),
        # the MLP blocks' width spread over the mixer layers (exact parameter and FLOP totals); 0 without MLP blocks
        ffn=int(round(n_mlp * c.int("intermediate_size") / mixers)) if n_mlp else 0,
        vocab=c.int("vocab_size"), gated_mlp=False,  # squared-ReLU MLP, two matrices
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0),
        n_linear_attn_layers=n_mamba, linear_attn_kind="mamba2",
        linear_num_k_heads=c.int("n_groups"), linear_num_v_heads=c.int("mamba_num_heads"),
        linear_head_k_dim=c.int("ssm_state_size"), linear_head_v_dim=c.int("mamba_head_dim"),
        linear_conv_kernel=c.int("conv_kernel"),
        linear_state_dtype=_dtype_name(c.opt("mamba_ssm_cache_dtype", "")),
        **moe,
    )


def _gpt2(c: _Cfg) -> dict[str, Any]:
    """GPT-2 / classic GPT-3-style shapes: `n_embd`/`n_layer`/`n_head` (or the hidden_size/num_hidden_layers/
    num_attention_heads names), plain GELU MLP of `n_inner` (or intermediate_size; default 4 x hidden), multi-head
    attention, tied embeddings (GPT-2's default), sequential residual."""
    hidden, n_heads = c.int("n_embd", "hidden_size"), c.int("n_head", "num_attention_heads")
    if n_heads == 0 or hidden % n_heads:
        raise CatalogError(f"config.json for {c.arch}: hidden size {hidden} is not a multiple of the {n_heads} heads")
    return dict(
        n_layers=c.int("n_layer", "num_hidden_layers"), hidden=hidden, n_heads=n_heads,
        n_kv_heads=c.opt_int("num_key_value_heads", n_heads), head_dim=hidden // n_heads,
        ffn=int(c.opt("n_inner", c.opt("intermediate_size", 4 * hidden))), vocab=c.int("vocab_size"),
        gated_mlp=False, tie_embeddings=c.flag("tie_word_embeddings", True),
        max_position=int(c.opt("n_positions", c.opt("max_position_embeddings", 0))),
    )


#: `linear_attn_config` keys of Kimi-K3 and what the cost model makes of them (any other key is refused by name)
KDA_CONFIG_KEYS = {
    "full_attn_layers": "1-based indices of the MLA layers",
    "kda_layers": "1-based indices of the Kimi Delta Attention layers",
    "num_heads": "KDA heads (queries, keys, values and the state)",
    "head_dim": "KDA head width (keys and values)",
    "short_conv_kernel_size": "depthwise causal conv on q, k and v",
    "use_full_rank_gate": "output gate g_proj hidden x heads*head_dim (false: a low-rank pair, refused)",
    "gate_lower_bound": "bounded decay exp(bound * sigmoid(.)): elementwise, no cost",
}
#: Kimi-K3 activations: gated (gate and up projections, then down) whatever the nonlinearity
_KIMI_GATED_ACTS = ("situ", "silu", "swiglu")


def _kimi_layers(c: _Cfg, lac: Mapping[str, Any], key: str, n_layers: int) -> list[int]:
    v = lac.get(key)
    if not isinstance(v, (list, tuple)) or any(isinstance(i, bool) or not isinstance(i, int) for i in v):
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config.{key}={v!r} is not a list of layer numbers")
    if any(not 1 <= i <= n_layers for i in v) or len(set(v)) != len(v):
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config.{key} must list distinct 1-based layers "
                           f"1..{n_layers}")
    return [int(i) for i in v]


def _kimi_linear(c: _Cfg) -> dict[str, Any]:
    """Kimi-K3's language model (KimiLinearForCausalLM): Kimi Delta Attention layers mixed with MLA layers, a
    leading dense MLP, latent MoE. Costed as `linear_attn_kind` "kda" (a Gated DeltaNet with a per-channel decay:
    the same state and recurrence, projections of its own, `model_math.kda_params_per_layer`); the MLA output gate
    as `attn_output_gate`; NoPE MLA (`mla_use_nope`) caches and projects the rope slice all the same, so its
    shapes are DeepSeek's. Multi-token prediction (`num_nextn_predict_layers`) is not costed."""
    lac = c.req("linear_attn_config")
    if not isinstance(lac, Mapping):
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config={lac!r} is not a mapping")
    unknown = sorted(set(lac) - set(KDA_CONFIG_KEYS))
    if unknown:
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config has keys {unknown} that cannot be costed; "
                           f"known: {', '.join(KDA_CONFIG_KEYS)}")
    lc = _Cfg(lac, f"{c.arch} linear_attn_config")
    if lac.get("use_full_rank_gate") is not True:
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config.use_full_rank_gate="
                           f"{lac.get('use_full_rank_gate')!r}: only the full-rank KDA output gate is costed")
    bound = lac.get("gate_lower_bound")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config.gate_lower_bound={bound!r} is not a number")
    L = c.int("num_hidden_layers")
    kda = _kimi_layers(c, lac, "kda_layers", L)
    full = _kimi_layers(c, lac, "full_attn_layers", L)
    if set(kda) & set(full) or len(kda) + len(full) != L:
        raise CatalogError(f"config.json for {c.arch}: linear_attn_config kda_layers ({len(kda)}) and "
                           f"full_attn_layers ({len(full)}) must split the {L} layers between them")
    act = str(c.opt("hidden_act", "silu"))
    if act not in _KIMI_GATED_ACTS:
        raise CatalogError(f"config.json for {c.arch}: hidden_act={act!r} cannot be costed (known gated activations: "
                           f"{', '.join(_KIMI_GATED_ACTS)})")
    hidden, n_heads = c.int("hidden_size"), c.int("num_attention_heads")
    nope, rope = c.int("qk_nope_head_dim"), c.int("qk_rope_head_dim")
    moe_ffn = c.int("moe_intermediate_size")
    n_shared = c.opt_int("num_shared_experts", 0)
    latent = c.int("routed_expert_hidden_size") if c.opt("routed_expert_hidden_size", None) is not None else 0
    heads, hdim = lc.int("num_heads"), lc.int("head_dim")
    return dict(
        n_layers=L, hidden=hidden, n_heads=n_heads, n_kv_heads=c.opt_int("num_key_value_heads", n_heads),
        head_dim=nope + rope, ffn=c.int("intermediate_size"), vocab=c.int("vocab_size"), gated_mlp=True,
        tie_embeddings=c.flag("tie_word_embeddings", False),
        max_position=c.opt_int("max_position_embeddings", 0),
        n_experts=c.int("num_experts"), top_k=c.int("num_experts_per_token", "num_experts_per_tok"),
        moe_ffn=moe_ffn, n_shared_experts=n_shared, shared_ffn=n_shared * moe_ffn,
        first_k_dense=c.opt_int("first_k_dense_replace", 0), moe_layer_freq=c.opt_int("moe_layer_freq", 1, minimum=1),
        # a latent as wide as the hidden state is no latent
        moe_latent=latent if latent != hidden else 0,
        q_lora_rank=c.opt_int("q_lora_rank", 0), kv_lora_rank=c.int("kv_lora_rank"), qk_nope_head_dim=nope,
        qk_rope_head_dim=rope, v_head_dim=c.int("v_head_dim"),
        attn_output_gate=c.flag("mla_use_output_gate", False),
        n_linear_attn_layers=len(kda), linear_attn_kind="kda",
        linear_num_k_heads=heads, linear_num_v_heads=heads, linear_head_k_dim=hdim, linear_head_v_dim=hdim,
        linear_conv_kernel=lc.int("short_conv_kernel_size"),
        # vLLM and SGLang keep the KDA recurrent state in FP32 (the conv windows in the model dtype)
        linear_state_dtype="fp32",
        attn_res_block_size=c.opt_int("attn_res_block_size", 0),
    )


_PARSERS: dict[str, Callable[[_Cfg], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen_dense,
    "qwen3": _qwen_dense,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "gpt_oss": _gpt_oss,
    "deepseek_v3": _deepseek_v3,
    "deepseek_v4": _deepseek_v4,
    "nemotron-nas": _nemotron_nas,
    "gptj": _gptj,
    "falcon": _falcon,
    "phi3": _phi3,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "minimax_m2": _minimax_m2,
    "llama4": _llama4,
    "qwen3_5": _qwen3_5,
    "qwen3_5_moe": _qwen3_5,
    "qwen3_next": _qwen3_5,
    "glm_moe_dsa": _deepseek_dsa,
    "deepseek_v32": _deepseek_dsa,
    "nemotron_h": _nemotron_h,
    "step3p7": _step3p7,
    "mimo_v2_flash": _mimo_v2_flash,
    "gemma4": _gemma4,
    "minimax_m3": _minimax_m3,
}
#: model_type spellings (nested text configs, renamed releases) -> the parser's key
_TYPE_ALIASES = {
    "kimi_k2": "deepseek_v3", "kimi_k25": "deepseek_v3", "gemma3_text": "gemma3", "llama4_text": "llama4",
    "qwen3_5_text": "qwen3_5", "qwen3_5_moe_text": "qwen3_5_moe",
    # Qwen3-VL: the language model is Qwen3 / Qwen3-MoE (the vision tower is not costed)
    "qwen3_vl_text": "qwen3", "qwen3_vl_moe_text": "qwen3_moe",
    # sgl-project's FP8 re-quantization of DeepSeek-V4 names its config "deepseek_ref"
    "deepseek_ref": "deepseek_v4",
    # Xiaomi MiMo-7B: Qwen2's decoder (QKV bias, GQA, SwiGLU) plus multi-token-prediction layers (not costed)
    "mimo": "qwen2",
    # StepFun Step-3.5-Flash: the decoder Step-3.7-Flash's reader reads
    "step3p5": "step3p7",
    # Gemma 4's language model (the text_config of Gemma4ForConditionalGeneration)
    "gemma4_text": "gemma4",
    # MiniMax-M3's multimodal release (nvidia/MiniMax-M3-NVFP4): the language model is MiniMax-M3's
    "minimax_m3_vl": "minimax_m3",
}
_ARCH_TO_TYPE = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3", "MixtralForCausalLM": "mixtral", "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe", "GptOssForCausalLM": "gpt_oss", "DeepseekV3ForCausalLM": "deepseek_v3",
    "GPTJForCausalLM": "gptj", "FalconForCausalLM": "falcon", "RWForCausalLM": "falcon",
    "Phi3ForCausalLM": "phi3", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3", "MiniMaxM2ForCausalLM": "minimax_m2",
    "Llama4ForConditionalGeneration": "llama4", "Llama4ForCausalLM": "llama4",
    "Qwen3_5ForConditionalGeneration": "qwen3_5", "Qwen3_5MoeForConditionalGeneration": "qwen3_5_moe",
    "Qwen3NextForCausalLM": "qwen3_next", "KimiK25ForConditionalGeneration": "deepseek_v3",
    "GlmMoeDsaForCausalLM": "glm_moe_dsa", "DeepseekV32ForCausalLM": "deepseek_v32",
    "DeepseekV4ForCausalLM": "deepseek_v4", "MiMoForCausalLM": "qwen2", "DeciLMForCausalLM": "nemotron-nas",
    "NemotronHForCausalLM": "nemotron_h", "Qwen3VLForConditionalGeneration": "qwen3",
    "Qwen3VLMoeForConditionalGeneration": "qwen3_moe", "Step3p7FlashForCausalLM": "step3p7",
    "Step3p5ForCausalLM": "step3p7", "MiMoV2FlashForCausalLM": "mimo_v2_flash",
    "Gemma4ForConditionalGeneration": "gemma4", "Gemma4ForCausalLM": "gemma4",
    "MiniMaxM3ForCausalLM": "minimax_m3", "MiniMaxM3SparseForCausalLM": "minimax_m3",
    "MiniMaxM3SparseForConditionalGeneration": "minimax_m3",
}
_PARSERS["gpt2"] = _gpt2  # GPT-2 and bare classic-GPT shapes (no model_type: see model_from_hf_config)
_ARCH_TO_TYPE["GPT2LMHeadModel"] = "gpt2"
# Kimi-K3: KDA linear attention + MLA + latent MoE (its text_config's model_type is kimi_linear)
_PARSERS["kimi_linear"] = _kimi_linear
_TYPE_ALIASES["kimi_k3"] = "kimi_linear"
_ARCH_TO_TYPE["KimiK3ForConditionalGeneration"] = "kimi_linear"
_ARCH_TO_TYPE["KimiLinearForCausalLM"] = "kimi_linear"
#: model_type values `model_from_hf_config` understands.
SUPPORTED_MODEL_TYPES = tuple(_PARSERS)
#: Keys the catalog adds to a shipped config.json (not Hugging Face fields).
CATALOG_KEYS = ("name", "hf_id", "aliases", "source", "copied_from")


def checkpoint_files(cfg: Mapping[str, Any] | str | PathLike[str]) -> tuple[Any, Path | None]:
    """(the config to read, the checkpoint's hf_quant_config.json or None) for a `model_from_hf_config` argument: a
    checkpoint folder reads its config.json; a folder's, or a file named config.json's, hf_quant_config.json beside
    it is the checkpoint's ModelOpt quantization (a mapping is returned as given, with None)."""
    if isinstance(cfg, Mapping) or not isinstance(cfg, (str, PathLike)):
        return cfg, None
    p = Path(cfg)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise CatalogError(f"no config.json in {str(p)!r}: pass a checkpoint folder holding one, or the config "
                               "file's own path")
        p = p / "config.json"
    if p.name != "config.json":
        return p, None
    q = p.parent / "hf_quant_config.json"
    return p, (q if q.is_file() else None)


def load_config(cfg: Mapping[str, Any] | str | PathLike[str]) -> dict[str, Any]:
    """A config mapping, or the JSON file at a path, as a dict."""
    return json_mapping(cfg, "config", "a config mapping or a path to config.json",
                        " (model_from_hf_config downloads nothing: pass a local config.json path or a dict)")


#: RoPE types whose `factor` vLLM does not apply to the context (`_rope_context`)
_ROPE_UNSCALED = ("su", "longrope", "llama3")


def _rope_context(t: Mapping[str, Any], model_type: str, max_position: int) -> int:
    """The context a config's RoPE scaling serves, as vLLM derives it (vllm/config/model.py
    `_get_and_verify_max_len`): a `rope_scaling` / `rope_parameters` (one, or one per layer type) of a type other
    than su / longrope / llama3 multiplies the context by its `factor`, a yarn one from its
    `original_max_position_embeddings` (a Qwen config given yarn factor 4 over 32,768: 131,072); Gemma 3's context
    is scaled already. Where that is more than `max_position` (the config's max_position_embeddings) it is the
    context, else `max_position` stays (Kimi-K2-Thinking states 262,144 beside a yarn 32 x 4,096, which SGLang's
    `get_context_length` serves unscaled)."""
    rope = t.get("rope_scaling") or t.get("rope_parameters")
    if not isinstance(rope, Mapping) or "gemma3" in model_type:
        return max_position
    per = list(rope.values()) if rope and all(isinstance(v, Mapping) for v in rope.values()) else [rope]
    derived, factor = float(max_position), 1.0
    for rp in per:
        kind = str(rp.get("rope_type", rp.get("type", "")) or "")
        if kind in _ROPE_UNSCALED:
            continue
        # the last layer type's factor wins, as in vLLM (vllm/config/model.py `_get_and_verify_max_len`:
        # ``scaling_factor = rp.get("factor", scaling_factor)`` per layer type, "This assumes all layer types have
        # the same scaling factor"), not the largest
        f = rp.get("factor", factor)
        factor = float(f) if isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 else factor
        orig = rp.get("original_max_position_embeddings")
        if kind == "yarn" and isinstance(orig, int) and not isinstance(orig, bool) and orig > 0:
            derived = float(orig)
    return max(max_position, int(derived * factor))


def _text_part(d: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The language-model part of a config and its model_type: multimodal wrappers (Llama 4, Qwen3.5, Kimi-K2.5,
    Gemma 3) nest it under `text_config`; top-level keys it lacks (tie_word_embeddings, quantization) carry over."""
    archs = d.get("architectures") or []
    arch = archs[0] if archs else ""
    inner = d.get("text_config")
    if isinstance(inner, Mapping) and "num_hidden_layers" not in d:
        t = dict(inner)
        for k in ("tie_word_embeddings", "quantization_config", "hf_quant_config"):
            if k not in t and k in d:
                t[k] = d[k]
        model_type = t.get("model_type") or d.get("model_type") or _ARCH_TO_TYPE.get(arch, "")
        if model_type not in _PARSERS and model_type not in _TYPE_ALIASES:
            model_type = d.get("model_type") or _ARCH_TO_TYPE.get(arch, "")
    else:
        t = d
        model_type = d.get("model_type") or _ARCH_TO_TYPE.get(arch, "")
    if model_type in ("RefinedWeb", "RefinedWebModel"):  # early Falcon remote-code configs
        model_type = "falcon"
    return t, _TYPE_ALIASES.get(model_type, model_type)


def c_mtp(t: Mapping[str, Any]) -> int:
    """Multi-token-prediction modules a (text) config declares: `num_nextn_predict_layers` (DeepSeek, GLM, Kimi,
    MiMo), else `mtp_num_hidden_layers` (Qwen3.5 / Qwen3-Next); 0 where neither is set."""
    for key in ("num_nextn_predict_layers", "mtp_num_hidden_layers"):
        v = t.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def model_from_hf_config(cfg: Mapping[str, Any] | str | PathLike[str], name: str | None = None,
                         hf_quant_config: Mapping[str, Any] | str | PathLike[str] | None = None) -> Model:
    """A `Model` from a Hugging Face config.json (mapping, local path, or a checkpoint folder; nothing is downloaded).

    `cfg`: a config mapping, the path of a config.json, or a checkpoint folder holding one. `name` defaults to the
    config's "name" (catalog files), else "_name_or_path", else the architecture.
    `hf_quant_config`: a ModelOpt hf_quant_config.json (mapping or path) shipped next to the config; a key
    "hf_quant_config" inside the config mapping is read the same way, and without either the hf_quant_config.json
    of the checkpoint folder (beside a file named config.json) is, as the serving engines read it. It, or the
    config's `quantization_config`, sets `quant_weight_dtype`, `quant_scheme` and `quant_kv_dtype` (see
    `objectives.catalog.quant`). Raises `CatalogError` for an unsupported architecture, quantization or layer kind,
    a missing required field, or a field whose value cannot be costed (naming the field and the architecture); the
    record passes `checks.validate_model`.
    """
    cfg, beside = checkpoint_files(cfg)
    d = load_config(cfg)
    if not d.get("model_type") and not d.get("architectures") and ("n_embd" in d or "hidden_size" in d):
        d = {**d, "model_type": "gpt2"}  # bare shapes of the classic GPT series: GPT-2 conventions
    archs = d.get("architectures") or []
    arch = archs[0] if archs else ""
    t, model_type = _text_part(d)
    label = arch or model_type or "<no architectures/model_type>"
    if model_type not in _PARSERS:
        raise CatalogError(
            f"unsupported architecture {label!r} (model_type={d.get('model_type')!r}); supported model_type: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (architectures: {', '.join(_ARCH_TO_TYPE)})")
    fields = _PARSERS[model_type](_Cfg(t, label))
    for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab"):
        if fields[f] <= 0:
            raise CatalogError(f"config.json for {label}: {f} = {fields[f]} must be > 0")
    for kv in (fields["n_kv_heads"], fields.get("swa_n_kv_heads", 0) or fields["n_kv_heads"]):
        if fields["n_heads"] % kv:
            raise CatalogError(f"config.json for {label}: num_attention_heads={fields['n_heads']} is not a "
                               f"multiple of the KV heads {kv}")
    check_hybrid(fields, f"config.json for {label}")
    fields["max_position"] = _rope_context(t, model_type, int(fields.get("max_position", 0) or 0))
    hfq = hf_quant_config if hf_quant_config is not None else d.get("hf_quant_config", t.get("hf_quant_config"))
    if hfq is None:
        hfq = beside
    hfq_map = None if hfq is None else load_quant_config(hfq)
    w, scheme, kv = checkpoint_quant(t, hfq_map)
    fields.update(quant_weight_dtype=w, quant_scheme=scheme, quant_kv_dtype=kv,
                  quant_method=checkpoint_method(t, hfq_map) if w else "")
    if w:  # the modules a quantized checkpoint leaves in 16 bits
        _kept_modules(t, hfq_map, model_type, fields)
    _v4_expert_quant(t, fields)
    _msa_dense_quant(t, hfq_map, fields)
    fields["n_mtp_layers"] = max(c_mtp(t), 0)
    fields["multimodal"] = any(isinstance(d.get(k), Mapping) for k in ("vision_config", "audio_config"))
    model_name = name or d.get("name") or d.get("_name_or_path") or d.get("hf_id") or label
    return validate_model(Model(
        name=str(model_name),
        hf_id=str(d.get("hf_id", d.get("_name_or_path", "")) or ""),
        aliases=tuple(d.get("aliases", ())),
        architecture=label,
        source=str(d.get("source", "")),
        **fields,
    ))
