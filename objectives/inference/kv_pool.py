"""How each serving engine sizes its KV-cache pool from the GPU's memory, by default (bytes unless the name says).

Three rules, as the engines' own code applies them at start-up:

- **vLLM**: the pool is ``gpu_memory_utilization`` (default 0.9) of the device's total memory, less the weights,
  the activation peak of a profiling forward of ``max_num_batched_tokens`` tokens and the memory outside PyTorch's
  allocator (vllm/config/cache.py ``CacheConfig.gpu_memory_utilization = 0.9``; vllm/v1/worker/gpu_worker.py
  ``determine_available_memory``: ``requested_memory - non_kv_cache_memory``, requested = total x utilization).
- **SGLang**: ``mem_fraction_static`` of the total holds the weights and the pool; the rest is a reservation for
  activations and CUDA graphs that SGLang sizes from the GPU's memory, its chunked-prefill size, its CUDA-graph batch
  and its parallel sizes (sglang/srt/server_args.py ``_handle_gpu_memory_settings``: reserved MiB = 512 + 1.5 x
  max(chunked_prefill_size, 2048) + 2 x cuda_graph_max_bs + tp_size x pp_size / 8 x 1024, with DP attention
  3 x cuda_graph_max_bs x dp_size more (and 1.5 x more again when cuda_graph_max_bs > 300), at least 10 GiB on a
  GPU over 60 GiB; mem_fraction_static = (total - reserved) / total). Activations come out of that reservation,
  not out of the pool.
- **TensorRT-LLM** and the roofline: the fitted ``kv_mem_fraction`` (TensorRT-LLM's
  ``kv_cache_free_gpu_memory_fraction``, default 0.9) of the memory left after the weights, the activations, the
  runtime reserve and what the fitted ``device_mem_usable`` leaves of the device (TensorRT-LLM sizes its runtime buffers for
  its max_batch_size, which its benchmark sets from the memory).

Every rule also leaves the fitted ``runtime_reserve_gib`` (CUDA context, communication and GEMM workspaces) out.
The device's total is what the driver reports (`catalog.GPU.mem_gib`), the figure the engines read.

What one sequence takes of that pool (`seq_tokens`, in `kv_capacity_tokens`' unit: tokens' worth of every
layer's KV), by the engine's own layout for hybrid models:

- **vLLM, TensorRT-LLM, the roofline**: one pool. A window-bounded layer (gpt-oss, Gemma, Llama 4's chunks) holds at
  most its window, as the hybrid KV managers free its blocks beyond it (`memory.held_tokens`; vLLM's
  ``HybridKVCacheCoordinator``, TensorRT-LLM's variable sliding window); the linear-attention layers' constant state
  (Gated DeltaNet, Mamba-2) takes its bytes from the same pool per running sequence (vLLM allocates it as a block of
  each Mamba group; TensorRT-LLM reserves it for ``max_batch_size`` sequences up front, which equals this when the
  batch is full).
- **SGLang**: the window layers of its hybrid-SWA architectures (gpt-oss, Llama 4) get a pool of their own,
  ``swa_full_tokens_ratio`` (0.8) tokens per token of the full-attention pool
  (sglang/srt/model_executor/model_runner_kv_cache_mixin.py ``set_num_tokens_hybrid_swa``); its other windowed
  models keep every layer at full length. DeepSeek-V4 is counted as on the other engines (windows bounded, one
  pool): SGLang serves it from a cache layout of the model's own, not the hybrid-SWA split, and holding its 128-token
  windows at full length would price 8x its cache per token. The linear layers' state is counted per sequence as on the other
  engines. SGLang's own rule splits it off (``handle_max_mamba_cache``: ``mamba_full_memory_ratio`` 0.9 bytes of
  state per byte of KV pool, and with the radix cache on one running request per 3 state slots), but the only
  measurements of it here contradict that default: Qwen3.5-397B FP8 on SGLang 0.5.9, four B200s, 256 clients
  (../shared/calibration/serving_silicon.csv) runs as if all 256 were in flight (TPOT 48 ms, TTFT 2.5 s), where
  the split with those ratios admits about 196 and queues the rest (TTFT over 11 s). The benchmark's flags are
  not recorded (``--disable-radix-cache`` or ``--mamba-ssm-dtype bfloat16`` would both lift the cap), so the
  split is not modelled.

The closed forms (`estimate`, `max_throughput`) apply `seq_tokens` exactly; the simulator's paged cache applies its
slope per token of context (`seq_slope`) and reserves the rest as a constant per request from its admission.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..profiles import engine_key
from . import memory

Num = Any
MIB = float(2**20)

#: engines whose memory setting is a share of the whole device (vLLM's gpu_memory_utilization, SGLang's
#: mem_fraction_static); TensorRT-LLM's (kv_cache_free_gpu_memory_fraction) is a share of the memory left
SHARE_OF_DEVICE = ("vllm", "sglang")
#: vLLM's default share of the device memory it may use (vllm/config/cache.py CacheConfig.gpu_memory_utilization)
VLLM_GPU_MEMORY_UTILIZATION = 0.9
#: each engine's own name of its memory setting (what `Scheduler(gpu_memory_utilization=)` and `max_throughput(
#: gpu_memory_utilization=)` stand for on it); the roofline's is the fitted ``kv_mem_fraction``
MEMORY_FLAGS = {"vllm": "gpu_memory_utilization", "sglang": "mem_fraction_static",
                "trtllm": "kv_cache_free_gpu_memory_fraction", "roofline": "kv_mem_fraction"}


def memory_flag(engine: str) -> str:
    """The name of `engine`'s memory setting in its own spelling (`MEMORY_FLAGS`; a name or "name==version")."""
    key = engine_key(engine)
    return MEMORY_FLAGS.get(key, MEMORY_FLAGS["roofline"])

def fits_from(engine: str, need: float) -> str:
    """The advice of a refusal for want of memory on an engine whose setting is a share of the device (vLLM,
    SGLang: `SHARE_OF_DEVICE`): the smallest setting ``need`` (in (0, 1]) in the engine's own spelling
    (`memory_flag`) and how to pass it (the value rounded up to 2 decimals). One text for `StepModel`'s
    (simulate's) refusal and `estimate`'s / `max_throughput`'s reason column."""
    up = np.ceil(need * 100.0) / 100.0
    return (f"it fits from {memory_flag(engine)} {need:.3g}: pass gpu_memory_utilization={up:.2f} "
            f"(estimate, max_throughput, serving.Scheduler)")


#: SGLang's defaults by the GPU's memory (sglang/srt/server_args.py `_handle_gpu_memory_settings`): (below this
#: many GiB, chunked_prefill_size, cuda_graph_max_bs at tp_size < 4, at tp_size >= 4)
SGLANG_BY_MEM_GIB = ((20.0, 2048, 8, 8), (35.0, 2048, 24, 80), (60.0, 4096, 32, 160), (90.0, 8192, 256, 512),
                     (160.0, 8192, 256, 512), (float("inf"), 16384, 512, 512))


def sglang_defaults(mem_gib: Num, tp_size: Num) -> tuple[Num, Num]:
    """SGLang's default (chunked_prefill_size tokens, cuda_graph_max_bs) on a GPU of `mem_gib` GiB with `tp_size`
    GPUs per instance (SGLang's tp_size: attention TP x DP-attention ranks). Arrays broadcast."""
    mem = np.asarray(mem_gib, dtype=float)
    lims = np.array([r[0] for r in SGLANG_BY_MEM_GIB])
    i = np.minimum(np.searchsorted(lims, mem, side="right"), len(lims) - 1)
    chunk = np.array([r[1] for r in SGLANG_BY_MEM_GIB], dtype=float)[i]
    bs = np.where(np.asarray(tp_size) < 4, np.array([r[2] for r in SGLANG_BY_MEM_GIB], dtype=float)[i],
                  np.array([r[3] for r in SGLANG_BY_MEM_GIB], dtype=float)[i])
    return chunk, bs


def sglang_reserved_bytes(mem_bytes: Num, tp: Num, pp: Num, attn_dp: Num) -> Num:
    """What SGLang keeps out of ``mem_fraction_static`` by default (activations, CUDA graphs), bytes per GPU: the
    rule of `_handle_gpu_memory_settings` (module docstring) with tp_size = tp x attn_dp."""
    mem_mib = np.asarray(mem_bytes, dtype=float) / MIB
    tp_size = np.asarray(tp, dtype=float) * np.asarray(attn_dp, dtype=float)
    chunk, bs = sglang_defaults(mem_mib / 1024.0, tp_size)
    adp = np.asarray(attn_dp, dtype=float)
    res = 512.0 + 1.5 * np.maximum(chunk, 2048.0) + 2.0 * bs + tp_size * np.asarray(pp, dtype=float) / 8.0 * 1024.0
    res = res + np.where(adp > 1, 3.0 * bs * adp + np.where(bs > 300, 1.5 * bs * adp, 0.0), 0.0)
    res = np.where(mem_mib > 60.0 * 1024.0, np.maximum(res, 10.0 * 1024.0), res)
    return res * MIB


#: SGLang's request pool when ``--max-running-requests`` is unset (python/sglang/srt/mem_cache/
#: kv_cache_configurator.py ``resolve_max_num_reqs``; model_runner.py ``init_memory_pool`` with tp_worker.py's
#: ``min(max_total_num_tokens // 2, req_to_token_pool.size)`` before it): int(KV tokens / context_len x
#: `SGLANG_REQS_PER_CONTEXT`) clipped to `SGLANG_REQ_POOL`, at most KV tokens // 2, per attention-DP worker
SGLANG_REQS_PER_CONTEXT = 512
SGLANG_REQ_POOL = (2048, 4096)
#: SGLang's context length where the model's config states none (configs/model_config.py ``get_context_length``)
SGLANG_DEFAULT_CONTEXT = 2048


def sglang_max_running_requests(kv_tokens: Num, context_len: Num) -> Num:
    """SGLang's max_running_requests at start-up without the flag (sequences per attention-DP worker): its request
    pool, int(`kv_tokens` / `context_len` x 512) clipped to [2048, 4096], at most `kv_tokens` // 2 (`kv_tokens`: the
    worker's KV pool in tokens; `context_len`: the model's context, 0 where unknown: 2048 as SGLang's own fallback),
    at least 1. The linear-attention state pool's cap (``max_mamba_cache_size`` / ratio) is not applied, as its
    split is not modelled (module docstring). Arrays broadcast."""
    kv = np.floor(np.asarray(kv_tokens, dtype=float))
    ctx = np.asarray(context_len, dtype=float)
    ctx = np.where(ctx > 0, ctx, float(SGLANG_DEFAULT_CONTEXT))
    pool = np.clip(np.floor(kv / ctx * SGLANG_REQS_PER_CONTEXT), *SGLANG_REQ_POOL)
    return np.maximum(np.minimum(pool, np.floor(kv / 2.0)), 1.0)


#: SGLang's window pool: tokens per token of its full-attention pool (sglang/srt/server_args.py
#: ``swa_full_tokens_ratio``)
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8
#: architectures whose window layers SGLang pools apart (sglang/srt/configs/model_config.py
#: ``is_hybrid_swa_model``, which also lists MiMo-V2-Flash); its other windowed models (Gemma 2 / 3, Mistral, and
#: Step-3.7-Flash's Step3p7FlashForCausalLM, which that list does not name: it has Step3p5ForCausalLM) keep every
#: layer's KV at full length
SGLANG_HYBRID_SWA_ARCHS = frozenset({"GptOssForCausalLM", "Llama4ForConditionalGeneration", "Gemma4ForCausalLM",
                                     "Gemma4ForConditionalGeneration", "MiMoV2FlashForCausalLM"})


def is_sglang(engines: Any) -> np.ndarray:
    """For each engine name: whether it is SGLang (whose window pool `seq_tokens` sizes apart)."""
    return np.array([engine_key(e) == "sglang" for e in engines], dtype=bool)


def seq_tokens(sglang: Num, context: Num, win_share: Num, window: Num, state_tok: Num) -> Num:
    """What one sequence of `context` tokens takes of its replica's KV capacity, in tokens' worth of every layer's
    KV (the unit of `kv_capacity_tokens`), under its engine's layout (module docstring). `sglang`: bool per row;
    `win_share`, `window`: `memory.held_tokens`' arguments; `state_tok`: the linear layers' constant state per
    sequence in tokens' worth of KV (0 for a plain transformer). Equals `context` for a plain transformer."""
    ctx = np.asarray(context, dtype=np.float64)
    w = np.asarray(win_share, dtype=np.float64)
    st = np.asarray(state_tok, dtype=np.float64)
    if not np.any(w > 0) and not np.any(st > 0):      # plain transformers (most sweeps): the context
        return ctx
    one_pool = memory.held_tokens(ctx, w, window) + st
    r = SGLANG_SWA_FULL_TOKENS_RATIO
    win = np.where(np.asarray(window) > 0, np.minimum(ctx, window), ctx)
    # SGLang's window pool holds r tokens per full-pool token: the full pool binds unless the windowed part does;
    # a model of window layers only has that pool alone
    swa = np.where(w <= 0, ctx, np.where(w >= 1, win, ((1.0 - w) + r * w) * np.maximum(ctx, win / r)))
    return np.where(sglang, swa + st, one_pool)


def seq_slope(sglang: Num, win_share: Num, window: Num) -> Num:
    """How much of the capacity (as in `seq_tokens`) each further token of a long context takes: the slope of
    `seq_tokens` beyond every window (1 for a plain transformer; 0 where every layer is window-bounded and the
    engine frees beyond the window)."""
    w = np.where(np.asarray(window) > 0, np.asarray(win_share, dtype=np.float64), 0.0)
    sgl = np.where(w >= 1, 0.0, (1.0 - w) + SGLANG_SWA_FULL_TOKENS_RATIO * w)
    return np.where(sglang, sgl, 1.0 - w)


def share_of_device(engines: Any) -> np.ndarray:
    """For each engine name: whether its memory setting is a share of the whole device (`SHARE_OF_DEVICE`)."""
    return np.array([engine_key(e) in SHARE_OF_DEVICE for e in engines], dtype=bool)


def pool_terms(engines: Any, mem_bytes: Num, tp: Num, pp: Num, attn_dp: Num, kv_mem_fraction: float,
               usable: float = 1.0) -> tuple[Num, Num, Num]:
    """Per row of `engines` (engine names): (memory the engine lets weights, KV cache, pooled activations and the
    runtime reserve take, bytes per GPU; share of what they leave that becomes the KV cache; 1.0 where the
    activations come out of that memory, 0.0 where the engine reserves them outside it). The KV pool is
    share x (memory - weights - reserve - pooled x activations). `usable`: the fitted share of the device the
    fraction-of-free rule starts from (``device_mem_usable``; the rest goes to buffers the memory model does not
    price)."""
    keys = np.asarray(engines, dtype=object)
    names, inv = np.unique(keys.astype(str), return_inverse=True)
    kinds = [engine_key(n) for n in names]

    def rows(flags: list[bool]) -> np.ndarray:
        return np.array(flags, dtype=bool)[inv].reshape(keys.shape)

    vllm, sgl = rows([k == "vllm" for k in kinds]), rows([k == "sglang" for k in kinds])
    mem = np.asarray(mem_bytes, dtype=float)
    pool = np.where(vllm, VLLM_GPU_MEMORY_UTILIZATION * mem,
                    np.where(sgl, mem - sglang_reserved_bytes(mem, tp, pp, attn_dp), usable * mem))
    share = np.where(rows(share_of_device(names).tolist()), 1.0, kv_mem_fraction)
    pooled = np.where(sgl, 0.0, 1.0)
    return pool, share, pooled
