"""The default weight format of a checkpoint, from its quantization config; nothing is downloaded.

Two layouts are read:

- ``quantization_config`` inside config.json (Hugging Face transformers): ``quant_method`` ``fp8`` (block scales
  when ``weight_block_size`` is given, e.g. DeepSeek-V3, Qwen3-*-FP8, GLM-5-FP8, MiniMax-M2.5), ``fbgemm_fp8``
  (per channel), ``mxfp4`` (gpt-oss), ``awq`` / ``gptq`` (int4 or int8 by ``bits``), ``bitsandbytes``,
  ``compressed-tensors`` (``config_groups`` weights, or an ``nvfp4``/``mxfp4`` pack format; Kimi-K2.5 int4) and
  ``modelopt`` (a ``quant_algo`` as below);
- NVIDIA ModelOpt ``hf_quant_config.json``: ``{"quantization": {"quant_algo": ..., "kv_cache_quant_algo": ...}}``
  with ``quant_algo`` FP8 (per-tensor scales), NVFP4, W4A16_NVFP4, NVFP4_AWQ, MXFP4, MXFP8, INT4_AWQ, W4A8_AWQ,
  INT8_SQ, FP8_PB_WO / FP8_BLOCK, or MIXED_PRECISION (per-layer ``quantized_layers``: the narrowest format
  present is the checkpoint's default, since it is the one the bulk of the weights - the experts or MLPs - use).

The result is ``(weight_dtype, scheme, kv_dtype)``: a catalog dtype ("fp8", "fp4", "int4", "int8"; "" when not
quantized), the granularity ("fp8_block", "fp8_per_tensor", "fp8_per_channel", "nvfp4", "mxfp4", "int4_awq", ...),
and the KV-cache format the checkpoint carries scales for ("fp8" or ""). Anything else raises `CatalogError`
naming the method or algorithm, so an unknown format never silently costs as 16-bit.
"""
from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from .errors import CatalogError

Quant = tuple[str, str, str]
NONE: Quant = ("", "", "")

#: ModelOpt quant_algo -> (weight dtype, scheme)
MODELOPT_ALGOS: dict[str, tuple[str, str]] = {
    "FP8": ("fp8", "fp8_per_tensor"),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8", "fp8_per_channel"),
    "FP8_PB_WO": ("fp8", "fp8_block"),
    "FP8_BLOCK": ("fp8", "fp8_block"),
    "MXFP8": ("fp8", "mxfp8"),
    "NVFP4": ("fp4", "nvfp4"),
    "NVFP4_AWQ": ("fp4", "nvfp4"),
    "W4A16_NVFP4": ("fp4", "nvfp4_w4a16"),
    "MXFP4": ("fp4", "mxfp4"),
    "W4A8_MXFP4_FP8": ("fp4", "mxfp4"),
    "INT4_AWQ": ("int4", "int4_awq"),
    "W4A16_AWQ": ("int4", "int4_awq"),
    "W4A8_AWQ": ("int4", "int4_awq_w4a8"),
    "INT8_SQ": ("int8", "int8_sq"),
    "W8A8_SQ_PER_CHANNEL": ("int8", "int8_sq"),
    "INT8_WO": ("int8", "int8_wo"),
    "INT4_WO": ("int4", "int4_wo"),
}
#: int8 schemes whose checkpoints engines run weight-only, with 16-bit activations (vLLM's Machete / Marlin
#: W8A16 kernels for compressed-tensors W8A16 and GPTQ 8-bit, TensorRT-LLM's weight-only plugin for ModelOpt's
#: INT8_WO): `inference.core.checkpoint_act_codes` defaults their act_dtype to bf16, not int8 (W8A8)
WEIGHT_ONLY_INT8_SCHEMES = ("int8_wo", "int8_gptq")
_KV_ALGOS = {"FP8": "fp8", "NVFP4": "fp4", "INT8": "int8"}
_BITS = {"fp8": 8, "int8": 8, "fp4": 4, "int4": 4}


def json_mapping(src: Mapping[str, Any] | str | PathLike[str], what: str, expected: str,
                 not_found_hint: str = "") -> dict[str, Any]:
    """A mapping, or the JSON file at a path, as a dict; CatalogError naming `what` (the file's kind) when the file
    is missing (`not_found_hint` appended) or not JSON, and `expected` when `src` is neither."""
    if isinstance(src, Mapping):
        return dict(src)
    if isinstance(src, (str, PathLike)):
        p = Path(src)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise CatalogError(f"{what} file not found: {str(p)!r}{not_found_hint}") from None
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{what} file {str(p)!r} is not valid JSON: {exc}") from None
    raise CatalogError(f"expected {expected}, got {type(src).__name__}")


def load_quant_config(q: Mapping[str, Any] | str | PathLike[str]) -> dict[str, Any]:
    """An hf_quant_config mapping, or the JSON file at a path, as a dict."""
    return json_mapping(q, "hf_quant_config", "an hf_quant_config mapping or a path")


def _modelopt(q: Mapping[str, Any], where: str) -> Quant:
    algo = q.get("quant_algo")
    if algo is None:
        raise CatalogError(f"{where} lacks 'quant_algo' (ModelOpt layout); keys: {', '.join(sorted(q))}")
    algo = str(algo).upper()
    kv = q.get("kv_cache_quant_algo")
    if kv is None and isinstance(q.get("kv_cache_scheme"), Mapping):  # modelopt config.json spelling
        s = q["kv_cache_scheme"]
        kv = "FP8" if s.get("type") == "float" and int(s.get("num_bits", 0)) == 8 else None
    kv_dtype = _KV_ALGOS.get(str(kv).upper(), "") if kv else ""
    if algo == "MIXED_PRECISION":
        layers = q.get("quantized_layers") or {}
        algos = {str(v.get("quant_algo", "")).upper() for v in layers.values() if isinstance(v, Mapping)}
        unknown = sorted(a for a in algos if a not in MODELOPT_ALGOS)
        if unknown or not algos:
            raise CatalogError(f"{where}: MIXED_PRECISION quantized_layers use quant_algo {unknown or 'none'}; "
                               f"known: {', '.join(MODELOPT_ALGOS)}")
        dtype, scheme = min((MODELOPT_ALGOS[a] for a in algos), key=lambda ds: (_BITS[ds[0]], ds[1]))
        return dtype, scheme, kv_dtype
    if algo not in MODELOPT_ALGOS:
        raise CatalogError(f"{where}: quant_algo {algo!r} cannot be costed; known: {', '.join(MODELOPT_ALGOS)}, "
                           "MIXED_PRECISION")
    dtype, scheme = MODELOPT_ALGOS[algo]
    return dtype, scheme, kv_dtype


def _compressed_tensors(q: Mapping[str, Any], where: str) -> Quant:
    fmt = str(q.get("format", ""))
    kv = q.get("kv_cache_scheme")
    kv_dtype = "fp8" if isinstance(kv, Mapping) and kv.get("type") == "float" and int(kv.get("num_bits", 0)) == 8 \
        else ""
    if fmt.startswith("nvfp4"):
        return "fp4", "nvfp4", kv_dtype
    if fmt.startswith("mxfp4"):
        return "fp4", "mxfp4", kv_dtype
    groups = q.get("config_groups") or {}
    weights: list[Mapping[str, Any]] = [g["weights"] for g in groups.values()
                                        if isinstance(g, Mapping) and isinstance(g.get("weights"), Mapping)]
    if not weights:
        raise CatalogError(f"{where}: compressed-tensors config has no config_groups weights to read the format from")
    w = weights[0]
    bits, kind, strategy = int(w.get("num_bits", 0)), str(w.get("type", "")), str(w.get("strategy", ""))
    if kind == "int" and bits == 8 and not any(isinstance(g, Mapping) and g.get("input_activations")
                                               for g in groups.values()):
        return "int8", "int8_wo", kv_dtype  # W8A16: 16-bit activations
    if kind == "int" and bits in (4, 8):
        return f"int{bits}", f"int{bits}_{strategy or 'group'}", kv_dtype
    if kind == "float" and bits == 8:
        gran = {"block": "fp8_block", "channel": "fp8_per_channel", "tensor": "fp8_per_tensor"}.get(strategy)
        if gran:
            return "fp8", gran, kv_dtype
    if kind == "float" and bits == 4:
        return "fp4", "nvfp4" if int(w.get("group_size", 16) or 16) == 16 else "mxfp4", kv_dtype
    raise CatalogError(f"{where}: compressed-tensors weights type={kind!r} num_bits={bits} strategy={strategy!r} "
                       "cannot be costed (known: int 4/8, float 8 block/channel/tensor, float 4)")


def from_quantization_config(q: Mapping[str, Any], where: str = "quantization_config") -> Quant:
    """(weight dtype, scheme, kv dtype) of a transformers `quantization_config` mapping."""
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8":
        return ("fp8", "fp8_block" if q.get("weight_block_size") else "fp8_per_tensor",
                "fp8" if str(q.get("kv_cache_scheme", "")).lower() == "fp8" else "")
    if method == "fbgemm_fp8":
        return "fp8", "fp8_per_channel", ""
    if method == "mxfp4":
        return "fp4", "mxfp4", ""
    if method in ("awq", "gptq"):
        bits = int(q.get("bits", q.get("w_bit", 4)))
        if bits not in (4, 8):
            raise CatalogError(f"{where}: {method} with bits={bits} cannot be costed (4 or 8)")
        return f"int{bits}", f"int{bits}_{method}", ""
    if method == "bitsandbytes":
        if q.get("load_in_4bit"):
            return "int4", "bnb_4bit", ""
        if q.get("load_in_8bit"):
            return "int8", "bnb_int8", ""
        raise CatalogError(f"{where}: bitsandbytes without load_in_4bit/load_in_8bit")
    if method == "compressed-tensors":
        return _compressed_tensors(q, where)
    if method == "modelopt" or (not method and "quant_algo" in q):
        return _modelopt(q, where)
    raise CatalogError(f"{where}: quant_method {q.get('quant_method')!r} cannot be costed; known: fp8, fbgemm_fp8, "
                       "mxfp4, awq, gptq, bitsandbytes, compressed-tensors, modelopt")


def from_hf_quant_config(q: Mapping[str, Any]) -> Quant:
    """(weight dtype, scheme, kv dtype) of a ModelOpt hf_quant_config.json mapping."""
    inner = q.get("quantization", q)
    if not isinstance(inner, Mapping):
        raise CatalogError("hf_quant_config: 'quantization' must be a mapping")
    return _modelopt(inner, "hf_quant_config")


def checkpoint_quant(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None = None) -> Quant:
    """The checkpoint's format: the hf_quant_config when given (it is what the serving engines read for ModelOpt
    checkpoints), else `quantization_config` of the config (top level or its `text_config`), else unquantized."""
    if hf_quant_config is not None:
        return from_hf_quant_config(hf_quant_config)
    q = cfg.get("quantization_config")
    if q is None and isinstance(cfg.get("text_config"), Mapping):
        q = cfg["text_config"].get("quantization_config")
    if q is None:
        return NONE
    if not isinstance(q, Mapping):
        raise CatalogError(f"quantization_config must be a mapping, got {type(q).__name__}")
    return from_quantization_config(q)


def checkpoint_method(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None = None) -> str:
    """The checkpoint's quantization method as the serving engines read it: "modelopt" for an hf_quant_config, else
    `quantization_config`'s lower-cased ``quant_method`` ("compressed-tensors", "awq", "fp8", ...), else "". vLLM
    refuses a ``--quantization`` naming another method at start-up (vllm/config/model.py
    ``ModelConfig._verify_quantization``), so the deploy flags key on it (`deploy.builders._quant_flag`)."""
    if hf_quant_config is not None:
        return "modelopt"
    q = cfg.get("quantization_config")
    if q is None and isinstance(cfg.get("text_config"), Mapping):
        q = cfg["text_config"].get("quantization_config")
    if not isinstance(q, Mapping):
        return ""
    return str(q.get("quant_method", "")).lower() or ("modelopt" if "quant_algo" in q else "")


#: module-name prefixes of a decoder layer in the checkpoints' quantization exclude lists (plain decoders,
#: multimodal wrappers' language models, Nemotron-H's backbone)
_LAYER_PREFIXES = ("model.layers", "model.language_model.layers", "language_model.model.layers", "layers",
                   "backbone.layers")
#: the module classes of a decoder layer whose weight format the cost model prices apart, each with the module
#: paths inside a layer that name it in the checkpoints' conventions (alternatives: a checkpoint has one of them;
#: a projection stands for its module, as the engines refuse a fused layer whose shards differ in format):
#: "attention" (the softmax-attention projections; GQA and MLA both have an o_proj), "shared_experts" (DeepSeek /
#: Kimi / GLM `shared_experts`, Qwen `shared_expert`) and "dense_mlp" (the MLP of a layer without routed experts)
MODULE_NAMES: dict[str, tuple[str, ...]] = {
    "attention": ("self_attn.o_proj", "self_attn.q_proj", "mixer.o_proj"),
    "shared_experts": ("mlp.shared_experts.down_proj", "mlp.shared_expert.down_proj"),
    "dense_mlp": ("mlp.down_proj",),
}
#: the projections that name a linear-attention (Gated DeltaNet `linear_attn`, Mamba-2 `mixer`) layer's module in the
#: checkpoints' conventions, as `MODULE_NAMES` does the softmax attention's
LINEAR_ATTN_NAMES: tuple[str, ...] = ("linear_attn.out_proj", "linear_attn.in_proj_qkv", "mixer.out_proj",
                                      "mixer.in_proj")


def _quant_section(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None) -> Any:
    """The quantization section a checkpoint's config gives: the hf_quant_config's `quantization` (or itself) when
    given, else `quantization_config` at the top level or in its `text_config`; None where there is none (not
    checked to be a mapping: the callers do)."""
    if hf_quant_config is not None:
        return hf_quant_config.get("quantization", hf_quant_config)
    q = cfg.get("quantization_config")
    if q is None and isinstance(cfg.get("text_config"), Mapping):
        q = cfg["text_config"].get("quantization_config")
    return q


def exclude_patterns(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None) -> list[str]:
    """The module patterns a checkpoint keeps out of its weight format: the hf_quant_config's ModelOpt
    `exclude_modules` when given (as `checkpoint_quant` reads it), else `quantization_config`'s (top level or its
    `text_config`) `ignore` (compressed-tensors, ModelOpt's config.json spelling), `exclude_modules` or
    `modules_to_not_convert` (transformers' fp8 / mxfp4 / bitsandbytes); [] where it lists none."""
    q = _quant_section(cfg, hf_quant_config)
    if not isinstance(q, Mapping):
        return []
    pats = q.get("exclude_modules") or q.get("ignore") or q.get("modules_to_not_convert")
    return [str(p) for p in pats] if isinstance(pats, (list, tuple)) else []


def module_excluded(name: str, patterns: list[str]) -> bool:
    """Whether module `name` (a dotted path, e.g. "model.layers.3.mlp.shared_experts.down_proj") is kept out of
    the format by one of `patterns`, matched as the engines match them: "re:<regex>" matched from the name's start
    (compressed-tensors' `ignore`, vLLM `_is_equal_or_regex_match` / SGLang alike), a pattern with `*`, `?` or `[`
    as a glob over the whole name (ModelOpt's `exclude_modules`, vLLM `fnmatch` / SGLang `fullmatch`), any other
    string as the name itself or a run of its dotted segments (vLLM's ModelOpt substring fallback, transformers'
    `modules_to_not_convert`; whole segments, so that the router "mlp.gate" never keeps "mlp.gate_proj" out). A
    glob that names a module keeps its submodules out too (gpt-oss's "model.layers.*.self_attn"; vLLM reads
    ModelOpt's "path*" as "path" and "path.*")."""
    return _matcher(tuple(patterns))(name)


#: module paths a matcher keeps its glob's verdicts for (`_matcher`) before it starts over
_GLOBBED_PATHS = 1 << 16


@functools.lru_cache(maxsize=256)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """`module_excluded` for one pattern list, compiled once: its regexes, its globs as one alternation of their
    `fnmatch.translate` forms (what `fnmatchcase` matches each with), its plain names. An exclude list of a few
    hundred globs (ModelOpt names every layer's modules) is matched in one pass per name."""
    regexes = [re.compile(p[3:]) for p in patterns if p.startswith("re:")]
    globs = [p for p in patterns if not p.startswith("re:") and any(ch in p for ch in "*?[")]
    plain = frozenset(p for p in patterns if not p.startswith("re:") and not any(ch in p for ch in "*?["))
    glob = re.compile("|".join(fnmatch.translate(p) for p in globs)) if globs else None
    # a run of k dotted segments can only be a plain name of k segments: only runs of those lengths are looked up
    spans = sorted({p.count(".") + 1 for p in plain})
    globbed: dict[str, bool] = {}   # the glob's verdict by path: a layer's holders recur for each of its modules

    def excluded(name: str) -> bool:
        if any(r.match(name) for r in regexes):
            return True
        parts = name.split(".")
        if glob is not None:
            for i in range(len(parts), 0, -1):      # the module, its holders
                path = ".".join(parts[:i])
                hit = globbed.get(path)
                if hit is None:
                    if len(globbed) >= _GLOBBED_PATHS:
                        globbed.clear()
                    hit = globbed[path] = glob.match(path) is not None
                if hit:
                    return True
        # a plain name matches a run of whole dotted segments (".p." inside ".name."): each run looked up once
        # in the set, not each of the (hundreds of) names searched in the module's path
        n = len(parts)
        return bool(plain) and any(".".join(parts[i:i + k]) in plain for i in range(n) for k in spans if i + k <= n)

    return excluded


def kept_16bit(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None,
               layers: Mapping[str, range | list[int]],
               names: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, float]:
    """Per module class (`layers`' keys, e.g. those of `MODULE_NAMES`), the share (0-1) of its layers (`layers`'
    indices) whose module the checkpoint's quantization config keeps out of its weight format (`exclude_patterns`,
    `module_excluded`): the engines load those weights as stored, in 16 bits, and run their GEMMs unquantized.
    `names`: the module paths of each class inside a layer (default `MODULE_NAMES`); a layer's module is kept when
    one of them under one of the layer prefixes is. A class without layers reads 0. Kimi-K2.5's compressed-tensors
    int4 `ignore` ("re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*") keeps
    attention, shared experts and the dense first layer's MLP: only its routed experts are int4."""
    counts = _kept_counts(exclude_patterns(cfg, hf_quant_config), layers, MODULE_NAMES if names is None else names)
    return {cls: kept / n if n else 0.0 for cls, (kept, n) in counts.items()}


def _kept_counts(pats: list[str], layers: Mapping[str, range | list[int]], names: Mapping[str, tuple[str, ...]]
                 ) -> dict[str, tuple[int, int]]:
    """Per module class, (layers whose module the exclude patterns `pats` keep out of the format, layers): the
    counts `kept_16bit` and `stored_shares`' exclude-list branch read (a layer's module is kept when one of its
    `names` under one of the layer prefixes is); (0, n) without patterns."""
    excluded = _matcher(tuple(pats))
    out: dict[str, tuple[int, int]] = {}
    for cls, idx in layers.items():
        idx = list(idx)
        kept = sum(1 for i in idx if any(excluded(f"{pre}.{i}.{n}") for pre in _LAYER_PREFIXES
                                         for n in names[cls])) if pats else 0
        out[cls] = (kept, len(idx))
    return out


def stored_shares(cfg: Mapping[str, Any], hf_quant_config: Mapping[str, Any] | None,
                  layers: Mapping[str, range | list[int]], names: Mapping[str, tuple[str, ...]], fmt: str
                  ) -> dict[str, tuple[float, float]] | None:
    """Per module class (`layers`' keys, each with its module paths inside a layer in `names`), the shares (0-1)
    of its layers (`layers`' indices, the checkpoint's numbering) whose module the checkpoint stores in its own
    weight format `fmt` (a catalog dtype, e.g. "fp4") and in FP8; the rest are stored in 16 bits. A ModelOpt
    MIXED_PRECISION config says it module by module (`quantized_layers`: each module's own quant_algo, a module
    it does not list left unquantized; Qwen3.6-35B-A3B-NVFP4's FP8 attention beside its NVFP4 experts); an
    exclude / ignore list (`exclude_patterns`) by what it keeps out (the rest in `fmt`; Nemotron-3-Nano's NVFP4
    Mamba layers beside its 16-bit attention). None where the config says neither (a bare quant_algo: which
    modules it covers is left to the engines)."""
    q = _quant_section(cfg, hf_quant_config)
    listed = q.get("quantized_layers") if isinstance(q, Mapping) else None
    pats = exclude_patterns(cfg, hf_quant_config)
    if not isinstance(listed, Mapping):
        if not pats:
            return None
        # an exclude list: what it keeps out 16-bit (`kept_16bit`'s counts), the rest in the format, none in FP8
        return {cls: ((n - kept) / n if n else 0.0, 0.0)
                for cls, (kept, n) in _kept_counts(pats, layers, names).items()}

    def stored(path: str) -> str:
        """The catalog dtype module `path` is stored in ("" for 16 bits)."""
        parts = path.split(".")
        for i in range(len(parts), 0, -1):      # the module, or a module holding it, listed with its algorithm
            v = listed.get(".".join(parts[:i]))
            if isinstance(v, Mapping):
                return MODELOPT_ALGOS.get(str(v.get("quant_algo", "")).upper(), ("", ""))[0]
        return ""

    out: dict[str, tuple[float, float]] = {}
    for cls, idx in layers.items():
        idx = list(idx)
        if not idx:
            out[cls] = (0.0, 0.0)
            continue
        # a layer's module: its first path the checkpoint lists
        got = []
        for i in idx:
            paths = [f"{pre}.{i}.{n}" for pre in _LAYER_PREFIXES for n in names[cls]]
            kinds = [stored(p) for p in paths]
            got.append(next((k for k in kinds if k), ""))
        out[cls] = (sum(k == fmt for k in got) / len(idx), sum(k == "fp8" and fmt != "fp8" for k in got) / len(idx))
    return out


__all__ = ["LINEAR_ATTN_NAMES", "MODELOPT_ALGOS", "MODULE_NAMES", "checkpoint_quant", "exclude_patterns",
           "from_hf_quant_config", "from_quantization_config", "json_mapping", "kept_16bit", "load_quant_config",
           "module_excluded", "stored_shares"]
