"""Parse a Hugging Face `config.json` (a mapping or a path) into a `Model`; nothing is downloaded.

Supported architectures (by `model_type`, or `architectures[0]` when `model_type` is absent):

=============  ===========================================================================================
llama          LlamaForCausalLM: GQA, gated (SwiGLU) MLP; `head_dim` from the config or hidden / heads
mistral        MistralForCausalLM: as llama, plus `sliding_window` on every layer (v0.1: 4096)
qwen2, qwen3   Qwen2/Qwen3ForCausalLM: as llama; sliding window only when `use_sliding_window` is true
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
=============  ===========================================================================================

A config that lacks a field the architecture needs raises `CatalogError` naming the field and the architecture.
Extra keys (the catalog's "name", "hf_id", "aliases", "source") fill the matching `Model` fields.
"""
from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import CatalogError
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

    def int(self, *keys: str) -> int:
        v = self.req(*keys)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < 0:
            raise CatalogError(f"config.json for {self.arch}: field {keys[0]!r} = {v!r} is not a non-negative integer")
        return int(v)


def _gqa_common(c: _Cfg) -> dict[str, Any]:
    """Fields shared by the Llama-style decoders (Llama, Mistral, Qwen2/3, Mixtral, Qwen-MoE, gpt-oss)."""
    hidden = c.int("hidden_size")
    n_heads = c.int("num_attention_heads")
    if n_heads == 0:
        raise CatalogError(f"config.json for {c.arch}: num_attention_heads must be > 0")
    head_dim = c.opt("head_dim", None)
    if head_dim is None:
        if hidden % n_heads:
            raise CatalogError(f"config.json for {c.arch} lacks 'head_dim' and hidden_size={hidden} is not a "
                               f"multiple of num_attention_heads={n_heads}")
        head_dim = hidden // n_heads
    return dict(
        n_layers=c.int("num_hidden_layers"),
        hidden=hidden,
        n_heads=n_heads,
        # Hugging Face's default when absent: multi-head attention (as many KV heads as query heads)
        n_kv_heads=int(c.opt("num_key_value_heads", n_heads)),
        head_dim=int(head_dim),
        vocab=c.int("vocab_size"),
        tie_embeddings=bool(c.opt("tie_word_embeddings", False)),
        max_position=int(c.opt("max_position_embeddings", 0)),
    )


def _dense_llama(c: _Cfg) -> dict[str, Any]:
    return dict(_gqa_common(c), ffn=c.int("intermediate_size"), gated_mlp=True)


def _mistral(c: _Cfg) -> dict[str, Any]:
    d = _dense_llama(c)
    d["sliding_window"] = int(c.opt("sliding_window", 0))
    return d


def _qwen_sliding(c: _Cfg, d: dict[str, Any]) -> dict[str, Any]:
    if c.opt("use_sliding_window", False) and c.opt("sliding_window", 0):
        d["sliding_window"] = int(c.cfg["sliding_window"])
        # Qwen2/3: layers with index >= max_window_layers use the sliding window
        d["n_sliding_layers"] = max(0, d["n_layers"] - int(c.opt("max_window_layers", 0)))
    return d


def _qwen_dense(c: _Cfg) -> dict[str, Any]:
    return _qwen_sliding(c, _dense_llama(c))


def _mixtral(c: _Cfg) -> dict[str, Any]:
    d = dict(_gqa_common(c), gated_mlp=True)
    moe = c.int("intermediate_size")
    d.update(ffn=moe, moe_ffn=moe, n_experts=c.int("num_local_experts"), top_k=c.int("num_experts_per_tok"))
    d["sliding_window"] = int(c.opt("sliding_window", 0))
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
        moe_layer_freq=int(c.opt("decoder_sparse_step", 1)),
        first_k_dense=_leading_dense(c, d["n_layers"]),
    )
    shared = int(c.opt("shared_expert_intermediate_size", 0))
    if shared:
        d.update(n_shared_experts=1, shared_ffn=shared)
    return d


def _gpt_oss(c: _Cfg) -> dict[str, Any]:
    d = dict(_gqa_common(c), gated_mlp=True)
    moe = c.int("intermediate_size")
    d.update(ffn=moe, moe_ffn=moe, n_experts=c.int("num_local_experts"),
             top_k=c.int("experts_per_token", "num_experts_per_tok"))
    window = int(c.opt("sliding_window", 0))
    if window:
        types = c.opt("layer_types", None)
        # without layer_types, gpt-oss alternates: even layers sliding, odd layers full
        n_sliding = (sum(t == "sliding_attention" for t in types) if types is not None
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
        n_kv_heads=int(c.opt("num_key_value_heads", n_heads)),
        head_dim=nope + rope,
        ffn=c.int("intermediate_size"),
        vocab=c.int("vocab_size"),
        gated_mlp=True,
        tie_embeddings=bool(c.opt("tie_word_embeddings", False)),
        max_position=int(c.opt("max_position_embeddings", 0)),
        n_experts=c.int("n_routed_experts"),
        top_k=c.int("num_experts_per_tok"),
        moe_ffn=c.int("moe_intermediate_size"),
        n_shared_experts=int(c.opt("n_shared_experts", 0)),
        shared_ffn=int(c.opt("n_shared_experts", 0)) * c.int("moe_intermediate_size"),
        first_k_dense=int(c.opt("first_k_dense_replace", 0)),
        moe_layer_freq=int(c.opt("moe_layer_freq", 1)),
        q_lora_rank=int(c.opt("q_lora_rank", 0)),  # null: full-rank query projection (DeepSeek-V2-Lite)
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
        ffn=int(c.opt("n_inner", 4 * hidden)),
        vocab=c.int("vocab_size"),
        gated_mlp=False,
        tie_embeddings=bool(c.opt("tie_word_embeddings", False)),
        parallel_residual=True,
        max_position=int(c.opt("n_positions", 0)),
    )


def _falcon(c: _Cfg) -> dict[str, Any]:
    hidden = c.int("hidden_size")
    n_heads = c.int("num_attention_heads", "n_head")
    if c.opt("new_decoder_architecture", False):
        n_kv = c.int("num_kv_heads", "n_head_kv")
    elif c.opt("multi_query", True):  # Hugging Face FalconConfig default: multi_query=True
        n_kv = 1
    else:
        n_kv = n_heads
    return dict(
        n_layers=c.int("num_hidden_layers", "n_layer"),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=int(c.opt("head_dim", hidden // n_heads)),
        ffn=int(c.opt("ffn_hidden_size", 4 * hidden)),
        vocab=c.int("vocab_size"),
        gated_mlp=False,
        # Hugging Face FalconConfig default: tie_word_embeddings=True
        tie_embeddings=bool(c.opt("tie_word_embeddings", True)),
        # new_decoder_architecture implies parallel attention + MLP
        parallel_residual=bool(c.opt("parallel_attn", True)) or bool(c.opt("new_decoder_architecture", False)),
        max_position=int(c.opt("max_position_embeddings", 2048)),
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
        n_kv_heads=int(c.opt("num_key_value_heads", n_heads)), head_dim=hidden // n_heads,
        ffn=int(c.opt("n_inner", c.opt("intermediate_size", 4 * hidden))), vocab=c.int("vocab_size"),
        gated_mlp=False, tie_embeddings=bool(c.opt("tie_word_embeddings", True)),
        max_position=int(c.opt("n_positions", c.opt("max_position_embeddings", 0))),
    )


_PARSERS: dict[str, Callable[[_Cfg], dict[str, Any]]] = {
    "llama": _dense_llama,
    "mistral": _mistral,
    "qwen2": _qwen_dense,
    "qwen3": _qwen_dense,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "gpt_oss": _gpt_oss,
    "deepseek_v3": _deepseek_v3,
    "gptj": _gptj,
    "falcon": _falcon,
}
_ARCH_TO_TYPE = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3", "MixtralForCausalLM": "mixtral", "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe", "GptOssForCausalLM": "gpt_oss", "DeepseekV3ForCausalLM": "deepseek_v3",
    "GPTJForCausalLM": "gptj", "FalconForCausalLM": "falcon", "RWForCausalLM": "falcon",
}
_PARSERS["gpt2"] = _gpt2  # GPT-2 and bare classic-GPT shapes (no model_type: see model_from_hf_config)
_ARCH_TO_TYPE["GPT2LMHeadModel"] = "gpt2"
#: model_type values `model_from_hf_config` understands.
SUPPORTED_MODEL_TYPES = tuple(_PARSERS)
#: Keys the catalog adds to a shipped config.json (not Hugging Face fields).
CATALOG_KEYS = ("name", "hf_id", "aliases", "source")


def load_config(cfg: Mapping[str, Any] | str | PathLike[str]) -> dict[str, Any]:
    """A config mapping, or the JSON file at a path, as a dict."""
    if isinstance(cfg, Mapping):
        return dict(cfg)
    if isinstance(cfg, (str, PathLike)):
        p = Path(cfg)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise CatalogError(f"config file not found: {str(p)!r} (model_from_hf_config downloads nothing: "
                               "pass a local config.json path or a dict)") from None
        except json.JSONDecodeError as exc:
            raise CatalogError(f"config file {str(p)!r} is not valid JSON: {exc}") from None
    raise CatalogError(f"expected a config mapping or a path to config.json, got {type(cfg).__name__}")


def model_from_hf_config(cfg: Mapping[str, Any] | str | PathLike[str], name: str | None = None) -> Model:
    """A `Model` from a Hugging Face config.json (mapping or local path; nothing is downloaded).

    `name` defaults to the config's "name" (catalog files), else "_name_or_path", else the architecture.
    Raises `CatalogError` for an unsupported architecture or a missing required field (naming both).
    """
    d = load_config(cfg)
    if not d.get("model_type") and not d.get("architectures") and ("n_embd" in d or "hidden_size" in d):
        d = {**d, "model_type": "gpt2"}  # bare shapes of the classic GPT series: GPT-2 conventions
    archs = d.get("architectures") or []
    arch = archs[0] if archs else ""
    model_type = d.get("model_type") or _ARCH_TO_TYPE.get(arch, "")
    if model_type == "RefinedWeb" or model_type == "RefinedWebModel":  # early Falcon remote-code configs
        model_type = "falcon"
    label = arch or model_type or "<no architectures/model_type>"
    if model_type not in _PARSERS:
        raise CatalogError(
            f"unsupported architecture {label!r} (model_type={d.get('model_type')!r}); supported model_type: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (architectures: {', '.join(_ARCH_TO_TYPE)})")
    fields = _PARSERS[model_type](_Cfg(d, label))
    for f in ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "vocab"):
        if fields[f] <= 0:
            raise CatalogError(f"config.json for {label}: {f} = {fields[f]} must be > 0")
    if fields["n_heads"] % fields["n_kv_heads"]:
        raise CatalogError(f"config.json for {label}: num_attention_heads={fields['n_heads']} is not a multiple "
                           f"of the KV heads {fields['n_kv_heads']}")
    model_name = name or d.get("name") or d.get("_name_or_path") or d.get("hf_id") or label
    return Model(
        name=str(model_name),
        hf_id=str(d.get("hf_id", d.get("_name_or_path", "")) or ""),
        aliases=tuple(d.get("aliases", ())),
        architecture=label,
        source=str(d.get("source", "")),
        **fields,
    )
