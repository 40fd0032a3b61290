"""Turning user arguments (names, dtype strings, parallelism; scalars or arrays) into broadcastable numeric arrays.

Rules (documented for `estimate`, `max_throughput`, `StepModel`):
- model / gpu: a catalog name, alias or Hugging Face id (unknown -> the catalog's error with close matches), or a
  `Model` / `GPU` record; arrays of those broadcast like every other argument.
- weight_dtype None -> the checkpoint's format (`Model.quant_weight_dtype`, from its quantization config: an FP8 /
  FP8-block checkpoint fp8, NVFP4 / MXFP4 fp4, int4-group int4), bf16 for an unquantized one.
- act_dtype None -> the weight dtype when the GPU computes in it (fp8 on Ada/Hopper+, fp4 on Blackwell, int8,
  bf16/fp16), else bf16 (int4 weight-only, fp8 weight-only on Ampere, ...); a weight-only int8 checkpoint (W8A16,
  GPTQ 8-bit: `core.checkpoint_act_codes`) bf16. fp32 weights compute in tf32. An MXFP4 checkpoint in its own
  format whose other layers are unquantized (gpt-oss) bf16, its experts' activations by `moe_act_dtype`; another
  act_dtype there is refused (R_MX_ACT).
- kv_dtype None -> what the engines' "auto" stores for the checkpoint where the weights are the checkpoint's own
  quantized format (`Model.quant_weight_dtype`): fp8 where it ships FP8 KV scales (`Model.quant_kv_dtype`: a
  ModelOpt kv_cache_quant_algo / compressed-tensors kv_cache_scheme) and the GPU has fp8, else the model's 16-bit
  dtype (an FP8 block checkpoint such as Qwen3-*-FP8 or MiniMax-M2.5, an MXFP4 one such as gpt-oss). Otherwise
  (an unquantized checkpoint, or weights in a format other than the checkpoint's: a substitute checkpoint) the
  activation dtype for bf16/fp16/fp8; fp8 for fp4 activations (bf16 where the GPU has no fp8); bf16 otherwise,
  int8 activations included (the engines' "auto" KV cache of a W8A8-int8 checkpoint is the model's 16-bit dtype;
  an int8 KV cache is TensorRT-LLM's opt-in). DeepSeek-V4: fp8 wherever the GPU has it (its engines' cache
  layout). SGLang's DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): fp8 on Blackwell, bf16 elsewhere, whatever
  the checkpoint (`engine_kv_rule`).
- Unknown dtype names and non-positive sizes/lengths/parallel degrees raise ValueError. Configurations that are
  well-formed but cannot run give fits=False and a `reason` (never an exception), so a sweep never crashes:
  an activation precision the GPU cannot compute in (fp8 before Ada/Hopper, fp4 before Blackwell), int4
  activations, tp not dividing the attention heads, ep not dividing tp x attn_dp (or above the experts), out
  of memory, and a deployment (tp x pp x attn_dp GPUs) larger than the GPU's scale-up domain where its system
  has no scale-out network, and moe_act_dtype "mxfp8" on MXFP4 experts where the GPU has no MXFP8 MoE kernel
  (before Blackwell), and a moe_a2a other than "auto" where no token exchange across attention-DP ranks runs it
  (`moe_a2a_invalid`), and a block-FP8 checkpoint (128 x 128 weight blocks) whose TP-sharded expert FFN, or a
  dense layer's row-parallel input, is not a whole number of blocks (`block_fp8_invalid`), and a request
  (input_len + output_len) longer than the model's context (`context_invalid`; judged before memory). An ep that
  does not divide the experts is valid (`expert_slots`: redundant copies).
  KV heads: tp > n_kv_heads is allowed (KV heads replicated, as vLLM and TensorRT-LLM do); tp < n_kv_heads must
  divide them.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from objectives.catalog.types import DTYPE_BYTES, DTYPES, GPU, Model

from ..profiles import engine_key
from .efficiency import FAMILIES, LINKS, PRECS, Efficiency
from .power import idle_power_w

Num = Any

#: compute precision group of each activation dtype (index into efficiency.PRECS), -1: cannot compute in it
_PREC_OF = {"bf16": 0, "fp16": 0, "fp8": 1, "fp4": 2, "int8": 3, "fp32": 4, "tf32": 4, "int4": -1}
#: GPU.peak_tflops key of each activation dtype
_PEAK_KEY = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "fp4": "fp4", "int8": "int8", "fp32": "tf32",
             "tf32": "tf32", "int4": "int4"}
_BYTES = np.array([DTYPE_BYTES[d] for d in DTYPES])
_D = {d: i for i, d in enumerate(DTYPES)}
#: weight formats whose MoE checkpoints keep the attention projections (full and linear attention) in 16 bits:
#: ModelOpt's NVFP4 releases list every layer's self_attn (and Qwen3.5's linear_attn) in their quantization
#: `ignore` / `exclude_modules` (objectives/data/models/*-NVFP4.json: Kimi-K2.5, GLM-5, MiniMax-M2.5, Qwen3.5-397B),
#: Kimi-K2.5's int4 (W4A16, compressed-tensors) ignores `self_attn`, and gpt-oss quantizes only its experts to MXFP4
ATTN_16BIT_WEIGHTS = ("fp4", "int4")
_ATTN16_CODES = np.array([_D[d] for d in ATTN_16BIT_WEIGHTS])

REASONS = (
    "",
    "activation precision not supported by the GPU (fp8 needs Ada/Hopper or newer, fp4 needs Blackwell)",
    "int4 is a weight-only format: activations cannot be int4",
    "tp does not divide the attention heads (or tp < n_kv_heads does not divide the KV heads; DeepSeek-V4: or tp "
    "does not divide its o_groups output groups)",
    "ep must divide tp x attn_dp and be at most the number of experts (ep > 1 only for MoE models)",
    "does not fit: weights + KV cache + activations + runtime reserve exceed GPU memory",
    "spans more GPUs than one scale-up domain and the catalog has no scale-out network for this GPU "
    "(objectives/data/systems/systems.toml)",
    "the engine cannot run this layout: TensorRT-LLM's attention DP runs attention unsplit on every rank (tp must "
    "be 1 when attn_dp > 1); vLLM's expert parallelism spans all tp x attn_dp ranks (ep is 1 or tp x attn_dp)",
    "the engine does not run on this GPU's vendor (TensorRT-LLM: NVIDIA GPUs only; objectives.profiles."
    "ENGINE_VENDORS)",
    "moe_act_dtype='mxfp8': no engine runs MXFP4 experts with MXFP8 activations on this GPU (block-scaled MXFP8 "
    "tensor cores: Blackwell only, inference.measured.MXFP8_MOE_FAMILIES), or not this engine (on the RTX PRO 6000: "
    "TensorRT-LLM only, inference.measured.MXFP8_MOE)",
    "moe_a2a 'allgather' / 'deepep' needs an MoE model whose EP group spans attention-DP ranks (ep > 1 with "
    "attn_dp > 1, or ep not dividing tp) on an engine that runs it: vLLM and SGLang 'allgather' or 'deepep', "
    "TensorRT-LLM 'allgather' only, the roofline none (inference.measured.MOE_A2A_ENGINES); 'auto' runs everywhere",
    "a block-FP8 checkpoint's 128 x 128 weight blocks do not tile this layout: its TP-sharded expert FFN "
    "(moe_intermediate_size / (tp x attn_dp / ep)) or a dense layer's sharded input (attention output, dense or "
    "shared-expert FFN over tp) is not a multiple of 128, which vLLM, SGLang (before Blackwell) and TensorRT-LLM "
    "refuse at load (resolve.block_fp8_invalid); raise ep (whole experts per rank) or lower tp",
    "the request (input_len + output_len) is longer than the model's context (max_position_embeddings): the "
    "engines refuse it (vLLM's --max-model-len, SGLang's --context-length; TensorRT-LLM builds the max_seq_len "
    "asked for, resolve.CONTEXT_PAST_ENGINES; resolve.context_invalid); shorten the request",
    "pp exceeds the model's layers (every pipeline stage holds at least one layer)",
    "act_dtype on an MXFP4 checkpoint (gpt-oss): the engines run its unquantized layers in 16 bits and its MXFP4 "
    "experts with the activations moe_act_dtype names ('bf16', or 'mxfp8' on Blackwell; 'auto': the engine's "
    "default); leave act_dtype None (or 'bf16') and set moe_act_dtype",
    "kv_dtype='fp4': the engines store an FP4 (NVFP4) KV cache on datacenter Blackwell only (vLLM's and "
    "TensorRT-LLM's 'nvfp4', SGLang's 'fp4_e2m1'; resolve.FP4_KV_FAMILIES); valid kv_dtype here: bf16, fp16, fp8",
)
(R_OK, R_PREC, R_INT4, R_TP, R_EP, R_MEM, R_NET, R_LAYOUT, R_VENDOR, R_MOE_ACT, R_MOE_A2A,
 R_BLOCK, R_CONTEXT, R_PP, R_MX_ACT, R_KV) = range(16)

#: GPU families whose engines store an FP4 KV cache (R_KV): datacenter Blackwell, SM100 / SM103. vLLM's "nvfp4"
#: `CacheDType` (vllm/config/cache.py) is read only by FlashInfer's trtllm-gen kernels, which
#: `FlashInferBackend.supports_kv_cache_dtype` (vllm/v1/attention/backends/flashinfer.py) admits on capability family
#: 100 alone (`FlashInferMetadataBuilder` refuses "--kv-cache-dtype nvfp4 requires the SM100 trtllm-gen FlashInfer
#: path" elsewhere: not Hopper, Ada, Ampere, nor the SM120 RTX PRO 6000); TensorRT-LLM's `KvCacheConfig.dtype`
#: ("auto", "fp8", "nvfp4": tensorrt_llm/llmapi/llm_args.py, `trtllm-serve --kv_cache_dtype`) runs its NVFP4 KV
#: cache through the same trtllm-gen attention (FP4 tensor cores); SGLang's `--kv-cache-dtype` "fp4_e2m1"
#: (python/sglang/srt/server_args.py; `MHATokenToKVPoolFP4`, torch.float4_e2m1fn_x2) likewise. No engine stores
#: one on AMD or Intel GPUs, and the closed form (roofline) follows the engines.
FP4_KV_FAMILIES = ("blackwell", "blackwell-ultra")


def vendor_invalid(engine: Any, vendor: Any) -> Num:
    """True where the named engine does not run on the GPU vendor (catalog `GPU.vendor`), vectorized over both:
    `profiles.runs_on` over `profiles.ENGINE_VENDORS` (`prepare`'s R_VENDOR and the spaces' engine rules)."""
    from ..profiles import runs_on
    names, vendor = np.broadcast_arrays(np.asarray(engine, dtype=object), np.asarray(vendor, dtype=object))
    eu, ei = np.unique(names.astype(str), return_inverse=True)
    vu, vi = np.unique(vendor.astype(str), return_inverse=True)
    table = np.array([[not runs_on(e, v) for v in vu] for e in eu], dtype=bool)
    return table[ei.reshape(names.shape), vi.reshape(names.shape)]


def layout_invalid(engine: Any, tp: Num, attn_dp: Num, ep: Num = 1) -> Num:
    """The engines' layout rule (R_LAYOUT), vectorized over the engine names (or kinds: "vllm", "trtllm", ...) and
    degrees: True where the engine cannot run the layout. TensorRT-LLM's `enable_attention_dp` runs attention
    unsplit on each of the `tp_size` ranks, which then span the attention-DP ranks: tp > 1 with attn_dp > 1 is not a
    TensorRT-LLM layout. vLLM's `--enable-expert-parallel` spreads the experts over every tp x data-parallel rank:
    its EP is 1 or tp x attn_dp. SGLang (`--ep-size`, `--dp-size` inside `--tp-size`) runs both. The one home of the
    rule: `prepare` (R_LAYOUT), the spaces' engine rules and `dse deploy`."""
    names = np.asarray(engine, dtype=object)
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    kind = np.reshape(np.array([engine_key(u) for u in uniq], dtype=object)[inv], names.shape)
    tp, attn_dp, ep = np.asarray(tp), np.asarray(attn_dp), np.asarray(ep)
    trt = (kind == "trtllm") & (attn_dp > 1) & (tp > 1)
    vllm = (kind == "vllm") & (ep > 1) & (ep != tp * attn_dp)
    return trt | vllm


def moe_a2a_invalid(choice: Any, engine: Any, n_experts: Num, tp: Num, attn_dp: Num, ep: Num) -> Num:
    """The `moe_a2a` rule (R_MOE_A2A), vectorized over the choices (`measured.MOE_A2A` names or codes), engine
    names and degrees: True where a choice other than "auto" cannot run, i.e. the model has no experts, its EP
    group does not span attention-DP ranks (ep 1, or EP inside the TP group without attention DP: every rank
    already holds every token, no token exchange to choose), or the engine does not run that exchange
    (`measured.MOE_A2A_ENGINES`; the roofline none). The one home of the rule: `prepare` (R_MOE_A2A), the spaces'
    rules and `dse deploy`."""
    from .measured import MOE_A2A, MOE_A2A_ENGINES
    c = np.asarray(choice)
    code = c if c.dtype.kind in "iuf" else np.vectorize(MOE_A2A.index, otypes=[int])(c.astype(str))
    if not np.any(code > 0):   # "auto" everywhere (the hot path): nothing to refuse
        return np.zeros(np.broadcast_shapes(np.shape(code), np.shape(engine), np.shape(n_experts), np.shape(tp),
                                            np.shape(attn_dp), np.shape(ep)), dtype=bool)
    names = np.asarray(engine, dtype=object)
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    runs = np.array([[MOE_A2A[i] in MOE_A2A_ENGINES.get(engine_key(u), ()) for i in range(len(MOE_A2A))]
                     for u in uniq], dtype=bool)
    code, eidx = np.broadcast_arrays(np.asarray(code, dtype=int), inv.reshape(names.shape))
    tp, attn_dp, ep = np.asarray(tp), np.asarray(attn_dp), np.asarray(ep)
    with np.errstate(divide="ignore", invalid="ignore"):
        wide = (ep > 1) & ((np.mod(tp, np.maximum(ep, 1)) != 0) | (attn_dp > 1))
    return (code > 0) & ((np.asarray(n_experts) <= 0) | ~wide | ~runs[eidx, code])


#: engine kinds that serve a request past the model's context: TensorRT-LLM builds its engine for the max_seq_len
#: asked for (trtllm-build --max_seq_len, formerly --max_input_len + --max_output_len) and only warns where that
#: exceeds max_position_embeddings x the rotary scaling ("the model accuracy might be affected",
#: tensorrt_llm/builder.py `build`), as its published GPT-J / Falcon-180B / Llama-2 tables ran 2048 + 2048 and
#: 128 + 4096 tokens
CONTEXT_PAST_ENGINES = ("trtllm",)


def context_invalid(context: Num, tokens: Num, past: Num = False) -> Num:
    """The context rule (R_CONTEXT), vectorized: True where a request of ``tokens`` tokens (prompt and output) is
    longer than the model's ``context`` (tokens, its config's max_position_embeddings; 0 where unknown: never
    refused), which the engines refuse rather than truncate, but on the rows ``past`` (their engine serves past
    the context, `serves_past_context`). The one home of the rule: `estimate` and `max_throughput` (R_CONTEXT),
    `serving.workload.context_refusal` (the objective, `simulate`, `capacity`, `dse deploy`)."""
    context = np.asarray(context)
    return (context > 0) & (np.asarray(tokens) > context) & ~np.asarray(past, dtype=bool)


def serves_past_context(engines: Any) -> Num:
    """Mask of the engine names (or kinds) of `CONTEXT_PAST_ENGINES`, vectorized."""
    return np.isin(engine_kinds(engines), CONTEXT_PAST_ENGINES)


def tp_invalid(n_heads: Num, n_kv_heads: Num, tp: Num, o_groups: Num = 0, swa_n_kv_heads: Num = 0) -> Num:
    """The tensor-parallel rule (R_TP), vectorized: True where ``tp`` does not divide the attention heads, or is
    below the KV heads without dividing them (above them KV heads are replicated, as vLLM and TensorRT-LLM do), or
    (``o_groups`` > 0: DeepSeek-V4's grouped output projection, each rank holding whole groups) does not divide the
    groups; ``swa_n_kv_heads`` > 0: the sliding-window layers' own KV heads (MiMo-V2-Flash), held to the same
    rule. The one home of the rule: `prepare` (R_TP) and `spaces.parallelism.tp_ok` use it."""
    n_heads, n_kv_heads, tp, o_groups, swa = (np.asarray(x) for x in (n_heads, n_kv_heads, tp, o_groups,
                                                                       swa_n_kv_heads))
    return ((np.mod(n_heads, tp) != 0) | ((tp < n_kv_heads) & (np.mod(n_kv_heads, tp) != 0))
            | ((o_groups > 0) & (np.mod(o_groups, tp) != 0))
            | ((swa > 0) & (tp < swa) & (np.mod(swa, np.maximum(tp, 1)) != 0)))


def pp_invalid(n_layers: Num, pp: Num) -> Num:
    """The pipeline rule (R_PP), vectorized: True where ``pp`` exceeds the model's ``n_layers`` (a stage without a
    layer: vLLM's `get_pp_indices` and TensorRT-LLM's layer split give every stage at least one; an uneven split
    below that runs, so it is not refused here). `prepare` (R_PP) uses it; the spaces offer only the pp that divide
    the layers (`spaces.parallelism.pp_choices`)."""
    return np.asarray(pp) > np.asarray(n_layers)


def ep_invalid(n_experts: Num, ep: Num, tp: Num, attn_dp: Num = 1) -> Num:
    """The expert-parallel rule (R_EP), vectorized: True where ``ep`` > 1 cannot spread the experts, i.e. the
    model has none, ``ep`` does not divide the ``tp`` x ``attn_dp`` GPUs of a replica, or ``ep`` exceeds the
    experts (each EP rank holds at least one). An ``ep`` that does not divide the experts is valid: each rank
    holds `expert_slots` / ep of them, as engines deploy wide EP (EPLB's redundant experts). The one home of the
    rule: `prepare` (R_EP), `StepModel` and the simulator's pool check (`check_ep`) use it."""
    n_experts, ep = np.asarray(n_experts), np.asarray(ep)
    gpus = np.asarray(tp) * np.asarray(attn_dp)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ep > 1) & ((n_experts <= 0) | (np.mod(gpus, ep) != 0) | (ep > n_experts))


def expert_slots(n_experts: Num, ep: Num) -> Num:
    """Expert copies one replica holds across its ``ep`` ranks: ``n_experts`` where ``ep`` divides them, else the
    next multiple of ``ep`` (ceil(n_experts / ep) a rank). That is how engines run an EP size that does not divide
    the experts: SGLang's ``--ep-num-redundant-experts``, vLLM's EPLB ``num_redundant_experts`` and TensorRT-LLM's
    MoE load balancer ``num_slots`` add copies of the busiest experts until every rank holds as many (vLLM without
    EPLB gives some ranks one expert fewer; its busiest rank holds as many as here). Routing is taken as balanced
    over the slots, EPLB's aim. 0 for a dense model."""
    n_experts = np.asarray(n_experts, dtype=float)
    ep = np.maximum(np.asarray(ep, dtype=float), 1.0)
    out = np.where(n_experts > 0, np.ceil(n_experts / ep) * ep, n_experts)
    return out if out.ndim else float(out)


def expert_tp(tp: Num, attn_dp: Num, ep: Num) -> Num:
    """The tensor-parallel degree inside each expert: the tp x attn_dp GPUs of a replica over its ``ep`` EP ranks
    (at least 1), how vLLM (``FusedMoE``: tp x dp without expert parallelism, 1 with it), SGLang (``--tp-size`` /
    ``--ep-size``) and TensorRT-LLM (``moe_tp_size``) split each expert's FFN."""
    return np.maximum(np.asarray(tp) * np.asarray(attn_dp) / np.maximum(np.asarray(ep), 1), 1.0)


#: the weight block of block-FP8 checkpoints (``weight_block_size`` [128, 128]: DeepSeek-V3, Qwen3-*-FP8,
#: MiniMax-M2.5, GLM-5-FP8, ...), the unit every TP shard of their weights must be a whole number of
FP8_BLOCK = 128
#: GPU families on which SGLang pads an expert shard to the block instead of refusing it: its FlashInfer TRTLLM-gen
#: MoE runner, chosen by default for FP8 checkpoints of the architectures below on SM100 (compute capability 10.x:
#: B200, B300, GB200, GB300; `ServerArgs._handle_model_specific_adjustments`, python/sglang/srt/server_args.py),
#: rounds ``intermediate_size_per_partition`` up to a multiple of 128 (`FusedMoE.__init__`, python/sglang/srt/
#: layers/moe/fused_moe_triton/layer.py)
SGLANG_PADDED_MOE_FAMILIES = ("blackwell", "blackwell-ultra")
SGLANG_PADDED_MOE_ARCHS = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "Qwen3MoeForCausalLM",
                           "Qwen3VLMoeForConditionalGeneration")
#: GPU families on which SGLang's DeepSeek sparse attention (DeepSeek-V3.2, GLM-5: `is_deepseek_nsa`) keeps an fp8
#: KV cache by default ("auto" -> fp8_e4m3 where the compute capability's major is >= 10, else bfloat16, whatever
#: the checkpoint: `ServerArgs._set_default_nsa_kv_cache_dtype`, python/sglang/srt/server_args.py)
SGLANG_DSA_FP8_KV_FAMILIES = ("blackwell", "blackwell-ultra", "blackwell-rtx")


def kv_format_invalid(kv: Num, family: Num) -> Num:
    """True where the KV-cache dtype code ``kv`` (index into `DTYPES`, as resolved) is one no engine stores on the
    GPU family code ``family`` (R_KV): an FP4 KV cache outside `FP4_KV_FAMILIES`. Vectorized; `prepare`'s rule."""
    return (np.asarray(kv) == _D["fp4"]) & ~_family_in(family, FP4_KV_FAMILIES)


def _family_in(family: Num, names: tuple[str, ...]) -> Num:
    """Mask of GPU family codes (indices into `efficiency.FAMILIES`) that are among ``names``."""
    return np.isin(np.asarray(family, dtype=int), [FAMILIES.index(f) for f in names])


def engine_kinds(engines: Any) -> Num:
    """Each engine name's kind ("vllm", "sglang", "trtllm", "roofline", ...: `profiles.engine_key`), vectorized."""
    names = np.asarray(engines, dtype=object)
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    return np.reshape(np.array([engine_key(u) for u in uniq], dtype=object)[inv], names.shape)


def engine_kv_rule(engine: Any, family: Num, dsa: Num) -> tuple[Num, Num]:
    """(fp8, 16-bit): masks of the rows whose engine fixes the default KV cache whatever the checkpoint says, by
    engine name (or kind), GPU family code and whether the model has DeepSeek sparse attention (``dsa``: an MLA
    lightning indexer, DeepSeek-V3.2 / GLM-5). SGLang's "auto" for such models is fp8 on the
    `SGLANG_DSA_FP8_KV_FAMILIES`, bf16 elsewhere; vLLM's and TensorRT-LLM's "auto" follow the checkpoint
    (`resolve_dtypes`). The one home of the rule: `prepare` and `dse deploy`'s KV flags."""
    sgl = (engine_kinds(engine) == "sglang") & np.asarray(dsa, dtype=bool)
    fp8 = _family_in(family, SGLANG_DSA_FP8_KV_FAMILIES)
    return sgl & fp8, sgl & ~fp8


def block_fp8_widths(moe_ffn: Num, n_experts: Num, attn_out: Num, dense_ffn: Num, shared_ffn: Num, tp: Num,
                     attn_dp: Num, ep: Num) -> tuple[Num, Num]:
    """(expert shard, smallest off-block dense shard): the widths a block-FP8 checkpoint's layers take on one GPU.
    The expert shard is ``moe_ffn`` / `expert_tp` (the N of gate/up and the K of down: vLLM and SGLang
    ``Fp8MoEMethod.create_weights`` check both against the block), NaN for a dense model; the dense shard is the
    first of the attention output projection's input (``attn_out``: heads x value width), the dense MLPs' FFN
    (``dense_ffn``, 0: none) and the shared expert's (``shared_ffn``, 0: none), each over ``tp``, that is not a
    multiple of `FP8_BLOCK` where ``tp`` > 1 (row-parallel inputs: vLLM ``validate_fp8_block_shape``, vllm/
    model_executor/layers/quantization/utils/fp8_utils.py; SGLang ``Fp8LinearMethod``), NaN where all are. Merged
    column layers (QKV, gate/up) are split by whole heads / the same FFN, and vLLM skips their check since v0.13
    (``allow_fp8_block_shape_mismatch``)."""
    tp = np.asarray(tp, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = np.where(np.asarray(n_experts) > 0, np.asarray(moe_ffn) / expert_tp(tp, attn_dp, ep), np.nan)
        dense = np.full(np.broadcast_shapes(np.shape(attn_out), np.shape(dense_ffn), np.shape(shared_ffn),
                                            tp.shape), np.nan)
        for width in (shared_ffn, dense_ffn, attn_out):   # the first off-block one wins (attention first)
            w = np.asarray(width, dtype=float) / tp
            dense = np.where((np.asarray(width) > 0) & (tp > 1) & (np.mod(w, FP8_BLOCK) != 0), w, dense)
    return exp, dense


def block_fp8_invalid(engine: Any, family: Num, arch_padded: Num, own_block: Num, moe_ffn: Num, n_experts: Num,
                      attn_out: Num, dense_ffn: Num, shared_ffn: Num, tp: Num, attn_dp: Num, ep: Num) -> Num:
    """The block-FP8 layout rule (R_BLOCK), vectorized: True where a block-FP8 checkpoint served in its own format
    (``own_block``) shards a layer into widths that are not whole 128-wide blocks (`block_fp8_widths`): an expert
    shard (every engine: vLLM ``Fp8MoEMethod.create_weights`` "The output_size of gate's and up's weight = 192 is
    not divisible by weight quantization block_n = 128", the same check in SGLang's; TensorRT-LLM's block-scale
    MoE keeps ceil(N / 128) scales per shard and aiconfigurator's collector skips such shapes, collector/trtllm/
    collect_moe.py), except SGLang on the `SGLANG_PADDED_MOE_FAMILIES` for the `SGLANG_PADDED_MOE_ARCHS`
    (``arch_padded``), whose FlashInfer TRTLLM-gen runner pads the shard; or a dense layer's row-parallel input
    shard (vLLM and SGLang ``Fp8LinearMethod``; TensorRT-LLM likewise). The roofline and "auto" take the rule of
    vLLM and TensorRT-LLM. The one home of the rule: `prepare` (R_BLOCK), the spaces' rules and `dse deploy`."""
    exp, dense = block_fp8_widths(moe_ffn, n_experts, attn_out, dense_ffn, shared_ffn, tp, attn_dp, ep)
    padded = ((engine_kinds(engine) == "sglang") & _family_in(family, SGLANG_PADDED_MOE_FAMILIES)
              & np.asarray(arch_padded, dtype=bool))
    exp_bad = np.isfinite(exp) & (np.mod(np.nan_to_num(exp), FP8_BLOCK) != 0) & ~padded
    return np.asarray(own_block, dtype=bool) & (exp_bad | np.isfinite(dense))


def block_fp8_problem(m: Model, engine: str, family: str, tp: int, attn_dp: int, ep: int) -> str:
    """Why a block-FP8 checkpoint ``m`` served in its own format cannot run at this layout under ``engine`` on a
    GPU of ``family`` (`block_fp8_invalid`): the layer, its shard width, the rule and the layouts that would tile
    (an ep giving whole experts, the expert TP or tp values whose shards are whole blocks); "" where it runs."""
    from .ops import block_fp8_columns
    c = block_fp8_columns(m)
    fam = family_code(family)

    def bad(t: int, a: int, e: int) -> bool:
        return bool(block_fp8_invalid(engine, fam, c["arch_padded"], True, c["moe_ffn"], c["n_experts"],
                                      c["attn_out"], c["dense_ffn"], c["shared_ffn"], t, a, e))

    if not bad(tp, attn_dp, ep):
        return ""
    exp, dense = block_fp8_widths(c["moe_ffn"], c["n_experts"], c["attn_out"], c["dense_ffn"], c["shared_ffn"], tp,
                                  attn_dp, ep)
    if np.isfinite(dense):
        ok = [t for t in range(1, 17) if not tp_invalid(m.n_heads, m.n_kv_heads, t)
              and not np.isfinite(block_fp8_widths(0, 0, c["attn_out"], c["dense_ffn"], c["shared_ffn"], t, 1,
                                                   1)[1])]
        what = f"a dense layer's row-parallel input shard is {float(dense):g} wide at tp={tp}"
        fix = f"use a tp whose shards are whole blocks: {ok}"
    else:
        etp = float(expert_tp(tp, attn_dp, ep))
        whole = [t for t in range(1, 65) if m.moe_ffn % t == 0 and (m.moe_ffn // t) % FP8_BLOCK == 0]
        what = (f"its expert FFN shard is moe_intermediate_size {m.moe_ffn} / expert TP {etp:g} (tp x attn_dp / ep "
                f"= {tp} x {attn_dp} / {ep}) = {float(exp):g} wide")
        fix = f"use ep={tp * attn_dp} (whole experts on every rank) or an expert TP in {whole}"
    return (f"{m.name} is a block-FP8 checkpoint ({FP8_BLOCK} x {FP8_BLOCK} weight blocks): {what}, not a multiple "
            f"of {FP8_BLOCK}, which {engine} refuses at load (vLLM: \"The output_size of gate's and up's weight = "
            f"... is not divisible by weight quantization block_n = {FP8_BLOCK}\"); {fix}")


def redundant_experts(n_experts: int, ep: int) -> int:
    """Redundant expert copies (EPLB) one replica needs for ``ep`` ranks: `expert_slots` - ``n_experts``."""
    return int(expert_slots(n_experts, ep)) - int(n_experts)


def valid_ep_sizes(n_experts: int, gpus: int, *, dividing_experts: bool = False) -> list[int]:
    """The EP sizes `ep_invalid` accepts for a replica of ``gpus`` (tp x attn_dp) GPUs over ``n_experts`` experts;
    ``dividing_experts``: only those that also divide the experts (no redundant copies)."""
    return [e for e in range(1, gpus + 1)
            if gpus % e == 0 and e <= n_experts and (not dividing_experts or n_experts % e == 0)]


def ep_problem(m: Model, ep: int, tp: int = 1, attn_dp: int = 1) -> str:
    """Why ``ep`` cannot spread the experts of ``m`` (`ep_invalid`), naming it and the valid ones; "" where it can."""
    if ep == 1 or not ep_invalid(m.n_experts, ep, tp, attn_dp):
        return ""
    if not m.is_moe:
        return f"ep={ep}: expert parallelism needs a mixture-of-experts model; {m.name} is dense (valid: ep=1)"
    gpus = tp * attn_dp
    valid = valid_ep_sizes(m.n_experts, gpus)
    return (f"ep={ep} must divide the tp x attn_dp = {tp} x {attn_dp} = {gpus} GPUs it spreads the {m.n_experts} "
            f"experts of {m.name} over, and be at most {m.n_experts}; valid ep: {', '.join(map(str, valid))}")


def check_ep(model: Any, ep: int, tp: int = 1, attn_dp: int = 1, *, who: str = "") -> None:
    """`ep_invalid` for one replica, as a ValueError that names the bad ``ep`` and the valid ones (``who``
    prefixes the message, e.g. "decode pool ")."""
    if ep == 1:
        return
    if why := ep_problem(_lookup("model", model), ep, tp, attn_dp):
        raise ValueError(f"{who}{why}")


def valid_tp_sizes(m: Model) -> list[int]:
    """Every tp that `tp_invalid` accepts for ``m`` (its heads, KV heads, DeepSeek-V4's output groups, the
    sliding-window layers' KV heads): divisors of the attention heads, so none above them."""
    t = np.arange(1, max(int(m.n_heads), 1) + 1)
    bad = tp_invalid(m.n_heads, m.n_kv_heads, t, m.o_groups if m.is_compressed_attention else 0, m.swa_n_kv_heads)
    return [int(x) for x in t[~np.asarray(bad)]]


def layout_problem(engine: str, tp: int, attn_dp: int, ep: int) -> str:
    """Why ``engine`` (a name or kind) cannot run this layout (`layout_invalid`), by its own rule, naming the
    values and a layout it runs; "" where it runs."""
    if not layout_invalid(engine, tp, attn_dp, ep):
        return ""
    gpus = tp * attn_dp
    if engine_key(engine) == "trtllm":
        return (f"TensorRT-LLM's attention DP runs attention unsplit on every rank: tp must be 1 when attn_dp > 1, "
                f"got tp={tp} attn_dp={attn_dp} (valid on these {gpus} GPUs: tp=1 attn_dp={gpus}, or tp={gpus} "
                f"attn_dp=1)")
    return (f"vLLM's expert parallelism spans all tp x attn_dp ranks: ep is 1 or tp x attn_dp = {tp} x {attn_dp} = "
            f"{gpus}, got ep={ep} (valid: ep=1 or ep={gpus})")


def reason_text(code: int, m: Model, engine: str, tp: int, pp: int, ep: int, attn_dp: int,
                gpu: GPU | None = None) -> str:
    """The `REASONS` text of ``code`` for one configuration, with what it refuses and the valid values where the
    rule is about a degree (R_TP, R_EP, R_LAYOUT, R_PP: `tp_invalid`, `ep_problem`, `layout_problem`,
    `pp_invalid`) or the KV format (R_KV, on ``gpu``: `kv_format_invalid`); the static text for the other codes.
    `estimate`'s reason column and `StepModel` use it."""
    base = REASONS[code]
    if code == R_KV and gpu is not None:
        return kv_format_problem(engine, gpu)
    if code == R_TP:
        valid = valid_tp_sizes(m)
        kv = f", {m.n_kv_heads} KV heads" if m.n_kv_heads != m.n_heads else ""
        return (f"{base}: tp={tp} on {m.name} ({m.n_heads} attention heads{kv}); valid tp: "
                f"{', '.join(map(str, valid))}")
    if code == R_EP and (why := ep_problem(m, ep, tp, attn_dp)):
        return f"ep must divide tp x attn_dp and be at most the number of experts: {why}"
    if code == R_LAYOUT and (why := layout_problem(engine, tp, attn_dp, ep)):
        return f"the engine cannot run this layout: {why}"
    if code == R_PP:
        return f"{base}: pp={pp} on {m.name} with {m.n_layers} layers; valid pp: 1 to {m.n_layers}"
    return base


def kv_format_problem(engine: str, gpu: GPU) -> str:
    """R_KV's text for an FP4 KV cache asked of ``engine`` on ``gpu``: the value refused, the engine's own name for
    it and the kv_dtype values that run there (`kv_format_invalid`)."""
    kind = engine_key(engine)
    own = {"vllm": "vLLM's --kv-cache-dtype nvfp4", "trtllm": "TensorRT-LLM's KvCacheConfig(dtype='nvfp4')",
           "sglang": "SGLang's --kv-cache-dtype fp4_e2m1"}.get(kind, "an FP4 KV cache")
    return (f"kv_dtype='fp4' on {gpu.name} ({gpu.family}) with {engine}: {own} runs on datacenter Blackwell only "
            f"({', '.join(FP4_KV_FAMILIES)}: resolve.FP4_KV_FAMILIES); valid kv_dtype here: bf16, fp16, fp8")


def _catalog():
    from objectives import catalog
    return catalog


def _lookup(kind: str, x: Any) -> Any:
    if isinstance(x, (GPU, Model)):
        return x
    cat = _catalog()
    fn = getattr(cat, kind, None)
    if fn is None:  # pragma: no cover - catalog lookups not present
        raise RuntimeError(f"objectives.catalog.{kind}() is not available: pass a {kind.upper()} record instead")
    return fn(x)


#: scheduler budgets (max sequences in flight, max tokens per iteration) each engine runs with when its launch does
#: not set them, on a data-center GPU (`engine_budgets` applies the rules by GPU): vLLM's OpenAI server max_num_seqs /
#: max_num_batched_tokens (vllm/engine/arg_utils.py ``EngineArgs.get_batch_defaults``: 1024 / 8192 on a device of
#: >= 70 GiB that is not an A100, else 256 / 2048, `VLLM_SMALL_BUDGETS`); SGLang's chunked_prefill_size
#: (python/sglang/srt/server_args.py ``_handle_gpu_memory_settings``: by GPU memory, `kv_pool.sglang_defaults`) beside
#: its max_running_requests, which follows the KV pool at start-up (`pool_batch` where the pool is known: the closed
#: form's `served_batch`, `serving.Scheduler.for_cost`; 2048, the rule's floor on any pool of >= 4096 tokens, where
#: it is not); TensorRT-LLM's max_batch_size / max_num_tokens (tensorrt_llm/llmapi/llm_args.py ``BaseLlmArgs``: 2048 /
#: 8192, trtllm-serve's defaults)
ENGINE_BUDGETS = {"vllm": (1024, 8192), "sglang": (2048, 8192), "trtllm": (2048, 8192)}
#: engines whose default max sequences follow the KV pool they start with (`pool_batch`)
POOL_BATCH_ENGINES = ("sglang",)
#: vLLM's OpenAI server budgets on a device below `VLLM_LARGE_GIB` or an A100 (``get_batch_defaults``)
VLLM_SMALL_BUDGETS = (256, 2048)
VLLM_LARGE_GIB = 70.0
#: the closed form's budgets where a row names no engine (`inference.max_throughput` and `inference.estimate` on the
#: roofline: the published fit's, TensorRT-LLM's trtllm-bench defaults)
ROOFLINE_BUDGETS = (2048, 8192)


def engine_budget(engine: Any, mem_gib: float | None = None, gpu_name: str = "",
                  fallback: tuple[int, int] = ROOFLINE_BUDGETS) -> tuple[float, float]:
    """(max sequences, max tokens per iteration) `engine` (any spelling `engine_key` takes) runs with by default on
    a GPU of `mem_gib` GiB named `gpu_name` (None: the data-center GPU `ENGINE_BUDGETS` holds for). SGLang's token
    budget is its chunked_prefill_size, which follows the GPU's memory (`kv_pool.sglang_defaults`), and its max
    sequences follow its KV pool (`pool_batch`, where the pool is known; here `ENGINE_BUDGETS`' stand-in); vLLM's
    are smaller below `VLLM_LARGE_GIB` or on an A100 (`VLLM_SMALL_BUDGETS`). `fallback`: an engine that is not one
    of `ENGINE_BUDGETS` (the roofline)."""
    from .kv_pool import sglang_defaults
    k = engine_key(engine)
    b = ENGINE_BUDGETS.get(k, fallback)
    if mem_gib is not None and k == "sglang":
        b = (b[0], int(sglang_defaults(mem_gib, 1)[0]))
    elif mem_gib is not None and k == "vllm" and (mem_gib < VLLM_LARGE_GIB or "a100" in gpu_name.lower()):
        b = VLLM_SMALL_BUDGETS
    return float(b[0]), float(b[1])


def pool_batch(kv_tokens: Any, context_len: Any, max_num_tokens: Any) -> Any:
    """The max sequences of an engine of `POOL_BATCH_ENGINES` (SGLang) on a KV pool of `kv_tokens` tokens per
    attention-DP worker for a model of `context_len` tokens (`kv_pool.sglang_max_running_requests`), at most its
    `max_num_tokens` (the closed form and the simulator give each running sequence a token of the iteration's
    budget). Arrays broadcast."""
    from .kv_pool import sglang_max_running_requests
    return np.minimum(sglang_max_running_requests(kv_tokens, context_len), max_num_tokens)


def default_engine(engine: Any, gpu: Any) -> Any:
    """`engine`, or where it is None or "auto" and `gpu` (a catalog name or `GPU` record) is given, the engine
    that means on that GPU (`core.auto_engine`)."""
    if gpu is None or not (engine is None or engine_key(engine) in ("", "auto")):
        return engine
    from .core import auto_engine
    return auto_engine(_lookup("gpu", gpu).name)


#: the server-wide max running requests an engine resets an unset max sequences to with speculative decoding, shared
#: by its attention-DP ranks (`speculative.rank_running`): SGLang's (`speculative.SGLANG_MAX_RUNNING`); the others
#: keep their own
SPEC_MAX_RUNNING = {"sglang": 48}


@dataclass(frozen=True)
class EngineBehaviour:
    """What an engine release does by default on a GPU, as the cost model reads it (`engine_behaviour`).

    ``engine``: its canonical name (`profiles.engine_key`; "roofline" or "" for none); ``spec_overlap``: it keeps
    its overlap loop with speculative decoding on (``profiles.overlaps(..., speculative=True)``:
    `profiles.SPEC_OVERLAP_SINCE`); ``budgets``: (max sequences, max tokens per iteration) it runs with where its
    launch sets none (`engine_budget`); ``pool_batch``: its max sequences follow its KV pool instead
    (`POOL_BATCH_ENGINES`, `pool_batch`); ``spec_max_running``: the server-wide max sequences it resets an unset max
    sequences to with speculative decoding (`SPEC_MAX_RUNNING`; None: its own); ``named``: the engine as the
    behaviour was resolved for, with its release ('sglang~=0.5.13', `default_engine` where it was None or "auto"),
    the spelling the per-model rules take (`profiles.overlap_rows`). Without speculative decoding the overlap loop
    depends on the model and the serving role as much as on the release: `profiles.overlap_rows` (its
    linear-attention kinds), read once into ``Coeffs.overlap`` (the closed form, `serving.handoff.front_end`,
    `serving.analytical._overlap`) and by the simulator's `Scheduler.overlaps`, and `profiles.overlaps_in_role`;
    with it, ``spec_overlap`` whatever the model (`profiles.NO_OVERLAP_LINEAR_KINDS`: SGLang's hybrid models leave
    the loop to the speculative worker)."""

    engine: str
    spec_overlap: bool
    budgets: tuple[float, float]
    pool_batch: bool
    spec_max_running: int | None
    named: Any = None


def engine_behaviour(engine: Any, gpu: Any = None, fallback: tuple[int, int] = ROOFLINE_BUDGETS) -> EngineBehaviour:
    """The `EngineBehaviour` of `engine` (any spelling `profiles.engine_key` takes, with its release: 'vllm==0.13.0',
    'vllm~=0.13.0'; None or "auto": `gpu`'s default engine, `core.auto_engine`) on `gpu` (a catalog name or `GPU`
    record; its (memory in GiB, name) as a prepared configuration holds it; None: the data-center GPU
    `ENGINE_BUDGETS` holds for). `fallback`: the budgets of a name that is no engine (the roofline). The one
    resolver of an engine release's behaviour: the closed form's budgets (`engine_budgets`), overlap with
    speculative decoding (`speculative.with_speculative`), the serving model's and the simulator's
    (`serving.analytical`, `serving.Scheduler.for_cost`)."""
    from ..profiles import overlaps
    rec = None if gpu is None or isinstance(gpu, tuple) else _lookup("gpu", gpu)
    mem, name = gpu if isinstance(gpu, tuple) else (None, "") if rec is None else (rec.mem_gib, rec.name)
    named = default_engine(engine, rec)
    key = engine_key(named)
    return EngineBehaviour(engine=key, spec_overlap=overlaps(named, speculative=True),
                           budgets=engine_budget(named, mem, name, fallback), pool_batch=key in POOL_BATCH_ENGINES,
                           spec_max_running=SPEC_MAX_RUNNING.get(key), named=named)


def engine_behaviours(engines: Any, gpus: Any, fallback: tuple[int, int] = ROOFLINE_BUDGETS) -> list[EngineBehaviour]:
    """`engine_behaviour` of each row (`engines` and `gpus` of one length, as `engine_behaviour` takes them), each
    distinct pair worked out once (a sweep of millions holds a handful)."""
    seen: dict[tuple[Any, Any], EngineBehaviour] = {}
    out = []
    for e, g in zip(engines, gpus):
        pair = (e, g if g is None or isinstance(g, (str, tuple)) else id(g))
        if pair not in seen:
            seen[pair] = engine_behaviour(e, g, fallback)
        out.append(seen[pair])
    return out


def engine_budgets(engines: Any, gpus: Any, fallback: tuple[int, int] = ROOFLINE_BUDGETS) -> np.ndarray:
    """``EngineBehaviour.budgets`` of each row (`engine_behaviours`), (n, 2) floats."""
    return np.array([b.budgets for b in engine_behaviours(engines, gpus, fallback)], dtype=float).reshape(-1, 2)


#: largest accepted parallel degree (tp, pp, dp, ep) and token/sequence count (batch, lengths, budgets): far
#: beyond any real deployment, small enough that every derived quantity stays finite in float64
MAX_DEGREE = 2 ** 20
MAX_COUNT = 2 ** 31 - 1


def _show(x: Any) -> str:
    """A short repr of an argument value for error messages: an array or a pandas column as the plain list of its
    values (``['fp8', 'fp3']``, not numpy's ``array([...], dtype=object)``), a numpy scalar as its Python value."""
    if isinstance(x, (np.ndarray, pd.Series, pd.Index, np.generic)):
        x = np.asarray(x).tolist()
        if isinstance(x, list):   # an object array's numpy scalars stay numpy in tolist()
            x = [v.item() if isinstance(v, np.generic) else v for v in x]
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def as_array(name: str, x: Any) -> np.ndarray:
    """np.asarray(x) with a clear error for ragged nested sequences."""
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={_show(x)} is not a scalar or a rectangular array ({exc})") from None


def _scalar(x: Any) -> bool:
    """True for a scalar or a 0-d array (not for lists/tuples, even ragged ones)."""
    if isinstance(x, (list, tuple)):
        return False
    return np.ndim(x) == 0 if isinstance(x, np.ndarray) else not hasattr(x, "__len__") or isinstance(x, (str, bytes))


#: arrays of names resolved inside a `reusing_factorized` block, by argument name: (a copy of the array, its
#: resolution: `_factorize`'s, `core.engine_codes`'), newest first
_FACTORIZED: ContextVar[dict[str, list[tuple[np.ndarray, Any]]] | None] = ContextVar(
    "objectives_inference_factorized", default=None)
#: arrays kept per argument name in a block, and the largest array kept
_FACTORIZED_KEEP, _FACTORIZED_MAX = 8, 1 << 16


@contextmanager
def reusing_factorized() -> Iterator[None]:
    """Within the block, `_factorize` hands back its result for an array of names (model, GPU, dtype, engine
    options) equal element by element to one it factorized there before under the same argument name, instead of
    hashing it again: the serving model's searches pass the same deployments' columns to every cost-model call
    (`core.reusing_prepared` enters it). Only arrays whose values are all strings (or None / NaN, coded -1) are
    kept, whose factorization equal elements fix; a copy is kept, so an array changed in place meets its new
    values. Nested blocks share the outermost one's."""
    if _FACTORIZED.get() is not None:
        yield
        return
    token = _FACTORIZED.set({})
    try:
        yield
    finally:
        _FACTORIZED.reset(token)


def _factorize(name: str, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """(unique values as an object array, codes shaped like x); None/NaN get code -1. Hash-based (pandas), so
    a million strings take milliseconds and the per-value work below runs on the distinct values only. Inside a
    `reusing_factorized` block an array equal to one met there before reuses its result (read-only arrays)."""
    return reused(name, x, lambda: _factorize_now(name, x), lambda got: all(isinstance(u, str) for u in got[0]))


def reused(name: str, x: Any, compute: Callable[[], Any], keep: Callable[[Any], bool]) -> Any:
    """``compute()``, the resolution of argument `name`'s array of names `x`, or inside a `reusing_factorized`
    block the result kept for an array equal to `x` element by element (its arrays read-only); a result is kept
    where ``keep(result)`` (values whose resolution equal elements fix). Errors are raised, never kept."""
    kept = _FACTORIZED.get()
    if kept is None or not isinstance(x, np.ndarray) or x.dtype.kind not in "OU" or not 0 < x.size <= _FACTORIZED_MAX:
        return compute()
    seen = kept.setdefault(name, [])
    for i, (old, got) in enumerate(seen):
        if old.shape == x.shape and old.dtype == x.dtype and _same_names(old, x):
            if i:
                seen.insert(0, seen.pop(i))
            return got
    got = compute()
    if keep(got):
        for a in got:
            if isinstance(a, np.ndarray):
                a.setflags(write=False)
        seen.insert(0, (x.copy(), got))
        del seen[_FACTORIZED_KEEP:]
    return got


def _same_names(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether arrays `a` and `b` (of one shape) hold equal elements everywhere (an element that does not compare
    to a bool, pd.NA, reads as different; NaN differs from NaN)."""
    try:
        return bool(np.all(a == b))
    except (TypeError, ValueError):
        return False


def _factorize_now(name: str, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """`_factorize`, computed."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "US":
        arr = x
    else:
        try:
            arr = np.asarray(x, dtype=object)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}={_show(x)} is not a scalar or a rectangular array ({exc})") from None
    flat = arr.ravel()
    if flat.size == 0:
        return np.empty(0, dtype=object), np.zeros(arr.shape, dtype=np.int64)
    try:
        codes, uniq = pd.factorize(flat, use_na_sentinel=True)
    except TypeError:  # unhashable elements (lists, dicts): fall back to their repr as the key
        keys = np.array([repr(v) for v in flat], dtype=object)
        codes, ukeys = pd.factorize(keys)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        uniq = np.array([flat[first[k]] for k in ukeys], dtype=object)
    return np.asarray(uniq, dtype=object), codes.reshape(arr.shape).astype(np.int64)


def resolve_records(kind: str, x: Any) -> tuple[list, np.ndarray | None]:
    """(unique records, per-config index or None for a scalar) for a model/gpu argument. Names are looked up
    once per distinct value; None or NaN entries and non-name values fail with the catalog's error."""
    if isinstance(x, (str, GPU, Model)):
        return [_lookup(kind, x)], None
    if _scalar(x):
        v = x.item() if isinstance(x, np.ndarray) else x
        return [_lookup(kind, v)], None
    uniq, codes = _factorize(kind, x)
    if (codes < 0).any():
        raise ValueError(f"{kind}={_show(x)} contains a missing value (None/NaN); give a catalog name or record")
    recs = [_lookup(kind, v.item() if isinstance(v, np.generic) else v) for v in uniq]
    return recs, codes


def _missing(v: Any) -> bool:
    """True for a scalar missing value other than None: a float NaN or pandas' NA (what `_factorize` codes -1)."""
    return v is pd.NA or (isinstance(v, (float, np.floating)) and bool(np.isnan(v)))


@functools.lru_cache(maxsize=64)
def _choice_table(choices: tuple[str, ...]) -> dict[str, int]:
    """{name: index} of `choices` (built once per tuple: `choice_codes` runs several times a cost-model call)."""
    return {c: i for i, c in enumerate(choices)}


@functools.lru_cache(maxsize=128)
def _choice_words(choices: tuple[str, ...], allow_none: bool) -> str:
    """The valid values of a categorical argument as `choice_codes`' messages name them."""
    return f"one of {', '.join(choices)}" + (" or None (default rule)" if allow_none else "")


def choice_codes(name: str, x: Any, choices: tuple[str, ...], allow_none: bool) -> Num:
    """A categorical argument (a name from `choices`, None where allowed, or an array/list of those) -> index
    into `choices` (int or int array); -1 for None (and for NaN / pd.NA, a scalar or inside an array, where None is
    allowed). Anything else (numbers, bools, nested lists) raises
    TypeError naming the argument and the value; unknown names raise ValueError listing the valid ones."""
    table_of = _choice_table(choices)
    valid = _choice_words(choices, allow_none)
    if x is None:
        if allow_none:
            return -1
        raise ValueError(f"{name} must be {valid}, got None")
    if isinstance(x, str):
        code = table_of.get(x)
        if code is None:
            raise ValueError(f"unknown {name} {x!r}; known: {', '.join(choices)}")
        return code
    if _scalar(x):
        v = x.item() if isinstance(x, np.ndarray) else x
        if isinstance(v, str) or v is None:
            return choice_codes(name, v, choices, allow_none)
        if allow_none and _missing(v):  # NaN / pd.NA: missing, as inside an array (pandas' None of a str column)
            return -1
        raise TypeError(f"{name} must be {valid}, got {_show(x)} ({type(x).__name__})")
    uniq, codes = _factorize(name, x)
    table = np.empty(len(uniq), dtype=np.int64)
    for i, u in enumerate(uniq):
        if not isinstance(u, str):
            raise TypeError(f"{name} must be {valid} (or an array of them), got {_show(u)} in {_show(x)}")
        if u not in table_of:      # the list shown only where it holds other values too
            where = f" in {_show(x)}" if len(uniq) > 1 else ""
            raise ValueError(f"unknown {name} {u!r}{where}; known: {', '.join(choices)}")
        table[i] = table_of[u]
    if (codes < 0).any() and not allow_none:
        raise ValueError(f"{name} must be {valid}, got a missing value (None/NaN) in {_show(x)}")
    return np.where(codes < 0, -1, table[np.maximum(codes, 0)]) if len(table) else codes


def dtype_codes(name: str, x: Any, allow_none: bool) -> Num:
    """Dtype argument -> index into DTYPES (int or int array); -1 for None (the default rule, where allowed)."""
    return choice_codes(name, x, DTYPES, allow_none)


#: engine builds the model distinguishes (`engine_profile`):
#: - "standard" (default): the engines of the published benchmark tables, whose build flags are not stated
#:   (trtllm-bench / perf-overview, Triton, NIM; every calibration row but the 25 of the 0.16 tuning guide);
#: - "tuned": the TensorRT-LLM 0.16 tuning guide's tuned build (multiple optimization profiles, GEMM plugin, paged
#:   context attention, reduce fusion): the per-forward fixed time (launch/host overhead and collective
#:   latencies) scaled by `tuned_build_fixed_eff` (fused all-reduce + norm, fewer launches; hand-set: the
#:   calibration prices that build on TensorRT-LLM's measured profile, `engine="trtllm"`);
#: - "baseline": that guide's Baseline (trtllm-build default flags: no GEMM plugin, one profile, no reduce
#:   fusion), whose GEMMs stream weights at a fraction `baseline_build_mem_eff` of the standard rate (decode
#:   slows down; compute-bound prefill does not).
PROFILES = ("standard", "tuned", "baseline")


def moe_act_codes(x: Any) -> Num:
    """The `moe_act_dtype` argument (None, "auto", "bf16", "mxfp8", or an array of them) -> index into
    `measured.MOE_ACT_DTYPES` (None: 0, "auto"); anything else raises ValueError / TypeError naming the value and
    the valid ones."""
    from .measured import MOE_ACT_DTYPES
    c = choice_codes("moe_act_dtype", x, MOE_ACT_DTYPES, allow_none=True)
    return max(c, 0) if np.ndim(c) == 0 else np.maximum(c, 0).astype(np.int8)


def moe_a2a_codes(x: Any) -> Num:
    """The `moe_a2a` argument (None, "auto", "allgather", "deepep", or an array of them) -> index into
    `measured.MOE_A2A` (None: 0, "auto"); anything else raises ValueError / TypeError naming the value and the
    valid ones."""
    from .measured import MOE_A2A
    c = choice_codes("moe_a2a", x, MOE_A2A, allow_none=True)
    return max(c, 0) if np.ndim(c) == 0 else np.maximum(c, 0).astype(np.int8)


def flag(name: str, x: Any, missing: int | None = None) -> Num:
    """A yes / no argument (a bool, or an array of bools; 0 / 1 numbers accepted) -> 0 / 1 as an int or an int8
    array. ``missing`` (0 or 1): what a None / NaN entry means (None: it is refused). Anything else raises
    TypeError (not a bool or number) or ValueError (a number other than 0 / 1), naming the argument and the
    value."""
    def one(v: Any) -> int:
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, bool):
            return int(v)
        if missing is not None and (v is None or (isinstance(v, float) and np.isnan(v))):
            return missing
        if isinstance(v, (int, float)):
            if v in (0, 1):
                return int(v)
            raise ValueError(f"{name} must be True or False (or 0 / 1), got {_show(v)}")
        raise TypeError(f"{name} must be True or False (or an array of them), got {_show(v)}")
    if isinstance(x, (str, bytes)) or x is None or _scalar(x):
        v = x.item() if isinstance(x, np.ndarray) else x
        if isinstance(v, (float, np.floating)) and not (missing is not None and np.isnan(v)):
            raise TypeError(f"{name} must be True or False (or an array of them), got {_show(v)}")
        return one(v)
    raw = as_array(name, x)
    if raw.dtype.kind == "b":
        return raw.astype(np.int8)
    if raw.dtype.kind in "iu" and np.isin(raw, (0, 1)).all():
        return raw.astype(np.int8)
    return np.array([one(v) for v in raw.ravel()], dtype=np.int8).reshape(raw.shape)


def positive(name: str, x: Any, integer: bool = True, upper: float = MAX_COUNT) -> Num:
    """Validate a size/length/degree argument: real numbers (not bools, strings or None), every value in
    [1, upper] (> 0 when not `integer`) and whole when `integer`. Returns a float or a float64 array.
    Raises TypeError (wrong type) or ValueError (bad value), the message naming the argument and the value.
    Returns a float for scalars; arrays are returned as given when integer (no copy; callers convert blocks to
    float where they compute) and as float64 otherwise."""
    what = "a positive whole number" if integer else "a positive number"
    if x is None or isinstance(x, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be {what} (or an array of them), got {_show(x)}")
    if isinstance(x, (int, float, np.integer, np.floating)):
        a = float(x) if isinstance(x, (float, np.floating)) or abs(int(x)) < 2 ** 62 else float("inf")
        if not (a > 0 and a <= upper and (not integer or a == int(a))):
            raise ValueError(f"{name} must be {what} <= {upper:,.0f}, got {_show(x)}")
        return a
    raw = as_array(name, x)
    k = raw.dtype.kind
    if k == "O":
        flat = raw.ravel()
        wrong = [v for v in flat[:100000] if v is None or isinstance(v, (bool, np.bool_))
                 or not isinstance(v, (int, float, np.integer, np.floating))]
        if wrong:
            raise TypeError(f"{name} must be {what} (or an array of them), got {_show(wrong[0])} in {_show(x)}")
        try:
            raw = raw.astype(float)
        except (OverflowError, ValueError, TypeError) as exc:
            raise ValueError(f"{name}={_show(x)}: values must be {what} ({exc})") from None
        k = "f"
    if k not in "iuf":
        raise TypeError(f"{name} must be {what} (or an array of them), got {_show(x)} (dtype {raw.dtype})")
    if raw.size == 0:
        return raw.astype(float)
    if k in "iu":
        lo, hi = raw.min(), raw.max()
        if lo < 1 or hi > upper:
            bad = raw[(raw < 1) | (raw > upper)].ravel()[:3]
            raise ValueError(f"{name} must be {what} <= {upper:,.0f}, got {bad.tolist()}")
        return float(raw) if raw.ndim == 0 else raw
    arr = raw if raw.dtype == np.float64 else raw.astype(float)
    lo, hi = arr.min(), arr.max()
    if not (lo > 0 and hi <= upper):  # NaN fails both comparisons
        bad = arr[~((arr > 0) & (arr <= upper))].ravel()[:3]
        raise ValueError(f"{name} must be {what} <= {upper:,.0f}, got {bad.tolist()}")
    if integer and not np.array_equal(arr, np.floor(arr)):
        raise ValueError(f"{name} must be a whole number, got {arr[arr != np.floor(arr)].ravel()[:3].tolist()}")
    return float(arr) if arr.ndim == 0 else arr


def broadcast_shape(**named: Any) -> tuple:
    """The broadcast shape of the named arguments, or ValueError naming those whose shapes disagree."""
    shapes = {k: np.shape(v) for k, v in named.items() if v is not None and np.ndim(v) > 0}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"arguments cannot be broadcast to one shape of configurations: {desc}") from None


@dataclass
class GPUArrays:
    mem_bytes: Num
    bw: Num            # bytes/s
    link_gbs: Num
    link: Num          # index into LINKS
    family: Num        # index into FAMILIES
    tdp_w: Num
    idle_w: Num
    price: Num         # USD per GPU-hour
    peaks: np.ndarray  # [n_gpu_records, len(DTYPES)] dense peak FLOP/s (0: unsupported)
    index: Num         # per-config record index (0 for a scalar)


def family_code(family: str) -> int:
    """A GPU family's index in `FAMILIES`, as the cost model's arrays hold it; a family without fitted factors
    ("rdna", a new part) takes hopper's."""
    return FAMILIES.index(family if family in FAMILIES else "hopper")


def gpu_arrays(recs: list, index: np.ndarray | None, prices: Any = None) -> GPUArrays:
    def col(f):
        c = np.array([float(f(g)) for g in recs])
        return float(c[0]) if index is None else c[index]

    def fam(g):
        return family_code(g.family)

    def price(g):
        if prices is not None and g.name in prices:
            return float(prices[g.name])
        return g.price_usd_per_hour

    peaks = np.array([[float(g.peak_tflops.get(_PEAK_KEY[d], 0.0) or 0.0) * 1e12 for d in DTYPES] for g in recs])
    # fp16 and bf16 share tensor-core rates; fill one from the other when a datasheet lists only one
    i16, ib = _D["fp16"], _D["bf16"]
    peaks[:, i16] = np.where(peaks[:, i16] > 0, peaks[:, i16], peaks[:, ib])
    peaks[:, ib] = np.where(peaks[:, ib] > 0, peaks[:, ib], peaks[:, i16])
    return GPUArrays(
        mem_bytes=col(lambda g: g.mem_gib * 2**30), bw=col(lambda g: g.mem_bw_tbs * 1e12),
        link_gbs=col(lambda g: g.link_bw_gbs), link=col(lambda g: LINKS.index(g.link_type) if g.link_type in LINKS
                                                      else LINKS.index("pcie")),
        family=col(fam), tdp_w=col(lambda g: g.tdp_w),
        idle_w=col(idle_power_w), price=col(price), peaks=peaks,
        index=0 if index is None else index,
    )


def _pick(table: np.ndarray, code: Num) -> Num:
    """table[..., code] with broadcasting of the leading dims of `table` against `code`."""
    code = np.asarray(code)
    shape = np.broadcast_shapes(table.shape[:-1], code.shape)
    t = np.broadcast_to(table, shape + table.shape[-1:])
    return np.take_along_axis(t, np.broadcast_to(code, shape)[..., None], axis=-1)[..., 0]


def resolve_dtypes(g: GPUArrays, w: Num, a: Num, kv: Num, kv_fp8: Num = False, ckpt_w: Num = -1,
                   ckpt_kv8: Num = False, kv16: Num = False) -> tuple[Num, Num, Num, Num]:
    """(act code, kv code, precision-group index, reason code) after the default rules (module docstring).
    `ckpt_w`: the code of the checkpoint's own quantized weight format (`Model.quant_weight_dtype`; -1: an
    unquantized checkpoint); where the weights `w` are it, a KV cache not asked for is what the engines' "auto"
    stores for that checkpoint: fp8 where it ships FP8 KV scales (`ckpt_kv8`, `Model.quant_kv_dtype`) and the GPU
    has FP8, else 16 bits (vLLM `resolve_kv_cache_dtype_string`, vllm/utils/torch_utils.py; SGLang
    `configure_kv_cache_dtype`, its kv_cache_quant_algo; TensorRT-LLM `KvCacheConfig.dtype` "auto", the
    checkpoint's kv_cache_quant_algo, None for a block-FP8 checkpoint: `ModelConfig.load_hf_quant_config`).
    `kv_fp8`: rows whose architecture or engine keeps an FP8 KV cache by default (DeepSeek-V4; `engine_kv_rule`)
    where the GPU has FP8; `kv16`: rows whose engine keeps a 16-bit one whatever the checkpoint
    (`engine_kv_rule`)."""
    w, a, kv = np.asarray(w), np.asarray(a), np.asarray(kv)
    supp = g.peaks[g.index] > 0  # [..., len(DTYPES)] per config
    w_supported = _pick(supp, w)
    w_fp32 = (w == _D["fp32"]) | (w == _D["tf32"])
    default_a = np.where(w_fp32, _D["tf32"], np.where(w_supported & (w != _D["int4"]), w, _D["bf16"]))
    act = np.where(a < 0, default_a, a)
    prec = act_prec(act)
    fp8_ok = supp[..., _D["fp8"]]
    kv_for = np.where(np.isin(act, [_D["bf16"], _D["fp16"], _D["fp8"]]), act,
                      np.where(act == _D["fp4"], np.where(fp8_ok, _D["fp8"], _D["bf16"]),
                               _D["bf16"]))
    own = (np.asarray(ckpt_w) >= 0) & (w == np.asarray(ckpt_w))
    kv_for = np.where(own, np.where(np.asarray(ckpt_kv8, dtype=bool) & fp8_ok, _D["fp8"], _D["bf16"]), kv_for)
    kv_for = np.where(np.asarray(kv16, dtype=bool), _D["bf16"], kv_for)
    kv_for = np.where(np.asarray(kv_fp8) & fp8_ok, _D["fp8"], kv_for)
    kvc = np.where(kv < 0, kv_for, kv)
    reason = np.where(act == _D["int4"], R_INT4, np.where(_pick(supp, act), R_OK, R_PREC))
    return act, kvc, prec, reason


def act_prec(act: Num) -> Num:
    """The compute precision group (index into efficiency.PRECS; -1: none) of each activation dtype code."""
    return np.array([_PREC_OF[d] for d in DTYPES])[act]


def dtype_bytes(code: Num) -> Num:
    return _BYTES[code]


def attn_16bit(w: Num, n_moe_layers: Num, kept: Num = 0.0) -> Num:
    """Mask of configurations whose attention projections stay 16-bit: at a weight format in ATTN_16BIT_WEIGHTS
    (weight code `w`), MoE models, and models whose checkpoint keeps them out of its format (`kept` > 0:
    `Model.attn_16bit_weights`, e.g. the dense Gemma-4-31B-IT-NVFP4)."""
    return np.isin(w, _ATTN16_CODES) & ((np.asarray(n_moe_layers) > 0) | (np.asarray(kept) > 0))


def attn_said(m: Any, w: Num, n_moe_layers: Num) -> Num:
    """Mask of the configurations whose attention the 16-bit rule (`attn_16bit`, not where the checkpoint keeps
    every non-expert weight in FP8, ``dense8``) would hold at 16 bits but whose checkpoint's config says which
    layers it quantizes (`ModelShape.aq_set`, `Model.attn_quant_shares`) and which serve it in its own format
    (weight code `w` = `ckpt_w` - 1). The one home of the mask: `attn_weight_params` and the measured curves
    (`core._attach_curves`)."""
    rule = attn_16bit(w, n_moe_layers, m.attn16w) & (np.asarray(m.dense8) <= 0)
    return rule & (np.asarray(m.aq_set) > 0) & (np.asarray(w) == np.asarray(m.ckpt_w) - 1.0)


def attn_weight_params(m: Any, w: Num, n_moe_layers: Num, attn_params: Num, lin_params: Num) -> tuple[Num, Num]:
    """The attention projection parameters (parameters per GPU, all layers, split over tp; `attn_params` all of
    them, `lin_params` the linear-attention layers' among them) a configuration runs and streams at 16 bits and
    at FP8: at a weight format in ATTN_16BIT_WEIGHTS on a MoE model (or a checkpoint that keeps them out,
    `attn_16bit`) all at 16 bits, unless it serves the checkpoint in its own format and the checkpoint's config
    says which layers it quantizes (`attn_said`): those in its own format, FP8 the FP8 ones, 16 bits the rest.
    (0, 0) where the checkpoint keeps every non-expert weight in FP8 (`dense8`)."""
    rule = attn_16bit(w, n_moe_layers, m.attn16w) & (np.asarray(m.dense8) <= 0)
    said = attn_said(m, w, n_moe_layers)
    soft = np.asarray(attn_params) - lin_params
    a16 = np.where(said, soft * (1.0 - m.aq_fmt - m.aq8) + lin_params * (1.0 - m.lq_fmt - m.lq8),
                   np.where(rule, attn_params, 0.0))
    return a16, np.where(said, soft * m.aq8 + lin_params * m.lq8, 0.0)


def kept_mlp_16bit(m: Any, w: Num) -> tuple[Num, Num]:
    """The shares of the MoE layers' shared experts and of the dense MLP layers that stay 16-bit (`ModelShape`
    `sh16w`, `mlp16w`: what the checkpoint's exclude list keeps out of its format, `Model.shared_16bit_share`) where
    the configuration serves the checkpoint in its own quantized format (weight code `w` = `ckpt_w` - 1), not
    where the checkpoint keeps every non-expert weight in FP8 (`dense8`, DeepSeek-V4); 0 elsewhere."""
    own = (np.asarray(m.ckpt_w) > 0) & (np.asarray(w) == np.asarray(m.ckpt_w) - 1.0) & (np.asarray(m.dense8) <= 0)
    return np.where(own, m.sh16w, 0.0), np.where(own, m.mlp16w, 0.0)


def act_peak(g: GPUArrays, act: Num) -> Num:
    """Dense peak FLOP/s of each config's GPU in its activation precision (bf16 peak where unsupported)."""
    pk = g.peaks[g.index, act]
    return np.where(pk > 0, pk, g.peaks[g.index, _D["bf16"]])


def bf16_peak(g: GPUArrays) -> Num:
    return g.peaks[g.index, _D["bf16"]]


def eff_lookup(eff: Efficiency, name: str, family: Num) -> Num:
    return eff.fam_table(name)[np.asarray(family, dtype=int)]


def gemm_eff(eff: Efficiency, family: Num, prec: Num) -> Num:
    return eff.gemm_table()[np.asarray(family, dtype=int), np.maximum(np.asarray(prec, dtype=int), 0)]


def link_lookup(eff: Efficiency, name: str, link: Num) -> Num:
    return eff.link_table(name)[np.asarray(link, dtype=int)]


def int_code(d: str) -> int:
    return _D[d]


def precs() -> tuple[str, ...]:
    return PRECS
