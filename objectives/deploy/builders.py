"""Launch commands of one serving configuration, in each engine's own flag spelling.

A configuration is what a study's trial holds (``gpu``, ``tp``, ``pp``, ``dp``, ``ep``, ``attn_dp``,
``weight_dtype``, ``act_dtype``, ``kv_dtype``, ``mode``, ``prefill_replicas``, ``max_batch_size``,
``max_num_tokens``, ``chunked_prefill``, ``eplb``, ``moe_act_dtype``, ``moe_a2a``, ``prefix_caching``,
``adp_balance``, ``speculative``) plus the model. One replica runs on tp x pp x attn_dp GPUs;
``dp`` replicas in all (in disaggregated mode ``prefill_replicas`` of them prefill and the rest decode; the prefill
workers take ``prefill_gpu`` / ``prefill_tp`` / ``prefill_ep`` / ``prefill_attn_dp`` / ``prefill_pp`` /
``prefill_weight_dtype`` / ``prefill_act_dtype`` where the trial has them, else the decode workers' gpu / tp / ep /
attn_dp / pp / format, and each worker gets its own pool's EP / attention-DP / PP / quantization flags below; one
KV-cache dtype for both pools, a ``prefill_kv_dtype`` other than ``kv_dtype`` refused: the KV moves as stored).
``eplb`` (an expert-parallel load balancer, as the cost model's ``eplb``) switches each engine's load balancer on
in every worker with ep > 1; a worker whose ep does not divide the experts runs it whatever ``eplb`` says (its R
redundant expert copies are placed by it, R = `objectives.inference.resolve.redundant_experts`), and a worker
without expert parallelism (ep 1) has none to run. ``moe_act_dtype`` ("auto" / None, "bf16", "mxfp8": the
activations MXFP4 experts compute with, as the cost model's knob) sets each engine's MXFP4 MoE precision where the
model's experts are MXFP4 (fp4 weights of an MXFP4 checkpoint: gpt-oss) and the value is not the engine's default
on the worker's GPU (`objectives.inference.measured.moe_act`); elsewhere it launches nothing ("mxfp8" on a GPU
without an MXFP4 x MXFP8 MoE kernel is refused). ``moe_a2a`` ("auto" / None, "allgather", "deepep": how an EP
group across attention-DP ranks exchanges its tokens, as the cost model's knob) launches each engine's all-to-all
backend in every worker; "auto" launches nothing (the engine's default, which the cost model's "auto" prices:
`objectives.inference.measured.MOE_A2A_AUTO`), and a worker whose layout or engine cannot run the value (a dense
model, no EP group across attention-DP ranks, TensorRT-LLM's "deepep": `objectives.inference.resolve.moe_a2a_invalid`)
is refused. ``prefix_caching`` (as the cost model's knob) is on by default in
all three engines, so only False launches a flag, the one that turns each engine's prefix cache off (defaults read
from the engines' sources: vLLM ``CacheConfig.enable_prefix_caching: bool = True``, vllm/config/cache.py @
002f10e0cfa1373a19a0d2756598a34b700d20e5, the V1 engine of both shipped releases, whose parsers make the flag
negatable; SGLang ``--disable-radix-cache`` is a store_true switch of python/sglang/srt/server_args.py, so its radix
cache is on unless given, and a disaggregated decode server runs without one whatever it is told; TensorRT-LLM
``KvCacheConfig.enable_block_reuse: bool = Field(default=True, ...)`` in tensorrt_llm/llmapi/llm_args.py, in every
version of that file the code index holds, the pydantic ``BaseModel`` one of the 1.0 era and the ``StrictBaseModel``
ones since). ``kv_dtype`` not given is the KV cache the study's cost model charged on the engine (`_study_kv`: the
engine's "auto" for a checkpoint served in its own format, else the activation dtype, fp8 for fp4 activations); it
is launched only where the engine's "auto" would store another (`_engine_auto_kv`: the checkpoint's KV format, else
16 bits; SGLang's DeepSeek sparse attention fp8 on Blackwell), and a given "auto" leaves the engine its own. A
block-FP8 checkpoint served in its own format on a layout whose TP shards its 128-wide weight blocks do not tile is
refused (`objectives.inference.resolve.block_fp8_problem`: the shard, the rule, the EP / TP that would run).

How each knob is spelled (the engine's flag list at the profile's release checks every flag emitted):

=================  ===============================  ==================================  ===================================
knob               vLLM (``vllm serve``)            SGLang (``sglang.launch_server``)   TensorRT-LLM (``trtllm-serve``)
=================  ===============================  ==================================  ===================================
tp (per attn rank) --tensor-parallel-size tp        --tp-size tp*attn_dp                --tp_size tp*attn_dp (tp must be 1
                                                                                        with attention DP)
pp                 --pipeline-parallel-size         --pp-size                           --pp_size
attn_dp            --data-parallel-size attn_dp     --enable-dp-attention --dp-size     YAML enable_attention_dp: true
ep                 --enable-expert-parallel (EP     --ep-size ep                        --ep_size ep
                   size is always tp x attn_dp)
eplb, or ep not    --enable-eplb, and when R > 0    --enable-eplb, and when R > 0       YAML moe_config.load_balancer
dividing the       --eplb-config                    --ep-num-redundant-experts R        .num_slots: experts + R
experts (ep > 1)   {"num_redundant_experts": R}                                         (R may be 0),
                                                                                        .layer_updates_per_iter: 1
moe_act_dtype      env VLLM_USE_FLASHINFER_MOE_     --flashinfer-mxfp4-moe-precision    env OVERRIDE_QUANT_ALGO=
(MXFP4 experts,    MXFP4_MXFP8=1 (mxfp8; bf16 is    bf16 (bf16; mxfp8 is its            W4A16_MXFP4 (bf16; mxfp8,
not the default)   its default)                     Blackwell default)                  W4A8_MXFP4_MXFP8, is its
                                                                                        Blackwell default)
moe_a2a            --all2all-backend                --moe-a2a-backend none (allgather)  env TRTLLM_FORCE_ALLTOALL_
(not "auto")       allgather_reducescatter, or      / deepep --deepep-mode auto         METHOD=NotEnabled (allgather;
                   deepep_high_throughput (agg,     (agg; normal on prefill workers,    deepep: refused, its WIDEEP
                   prefill) / deepep_low_latency    low_latency on decode workers)      backend is not in the recorded
                   (decode workers)                                                     LLM API options)
adp_balance        refused (no such balance)        refused (no such balance)           YAML attention_dp_config
(True only; needs                                                                       .enable_balance: true,
attn_dp > 1)                                                                            .batching_wait_iters: 10,
                                                                                        .timeout_iters: 50
prefix_caching     --no-enable-prefix-caching       --disable-radix-cache               YAML kv_cache_config
(False only)                                                                            .enable_block_reuse: false
speculative        --speculative-config             --speculative-algorithm NEXTN       YAML speculative_config
(k draft tokens,   {"method": "mtp" | "eagle3" |    (mtp) | EAGLE3 | EAGLE (eagle)      .decoding_type: MTP | Eagle3
every worker;      "eagle", "num_speculative_       --speculative-num-steps k           | Eagle, .max_draft_len: k
eagle: EAGLE3 with tokens": k} (eagle3 / eagle:     --speculative-eagle-topk 1          (Eagle3 / Eagle:
a catalogued head, "model": the head)               --speculative-num-draft-tokens k+1  .speculative_model: the head)
else a placeholder)                                 --speculative-draft-model-path
                                                    (mtp: the checkpoint)
max_batch_size     --max-num-seqs                   --max-running-requests (x attn_dp:  --max_batch_size
(per attn rank)                                     SGLang divides it by --dp-size)
max_num_tokens     --max-num-batched-tokens         --chunked-prefill-size (chunked, x  --max_num_tokens
(per attn rank)                                     attn_dp, idem) /
                                                    --max-prefill-tokens
chunked_prefill    --[no-]enable-chunked-prefill    --chunked-prefill-size -1 when off  YAML enable_chunked_prefill: true
kv_dtype           --kv-cache-dtype fp8|bfloat16    --kv-cache-dtype fp8_e4m3|bf16      YAML kv_cache_config.dtype: fp8
longest request    --max-model-len                  --context-length                    --max_seq_len
weights            --quantization (QUANT below)     --quantization (QUANT below)        the checkpoint's own quantization
disagg             --kv-transfer-config (NIXL) +    --disaggregation-mode prefill|decode trtllm-serve disaggregated -c
                   vllm-router --vllm-pd-disagg..   + sglang_router --pd-disaggregation YAML (context/generation servers)
worker spanning    one command a host:              one command a host: --nnodes        one mpirun over the hosts: mpirun
hosts (tp x pp x   --distributed-executor-backend   --node-rank --dist-init-addr        -np GPUS -H host:n,...
attn_dp GPUs more  mp --nnodes --node-rank          HOST:PORT                           trtllm-llmapi-launch trtllm-serve
than a host's,     --master-addr --master-port,                                         ... --gpus_per_node n
`_across_hosts`)   --headless past the first; with
                   attn_dp: --data-parallel-size-
                   local/-address/-rpc-port,
                   --data-parallel-start-rank
=================  ===============================  ==================================  ===================================

The model path every command names is the served checkpoint (`served_checkpoint`): the model's own where it runs the
trial's format (16-bit, a format the engine quantizes online, the checkpoint's own format), else a quantized
checkpoint of the model the catalog ships in that format (an NVFP4 / FP8 release), else `QUANTIZED_CHECKPOINT`, a
placeholder the notes say to replace by such a checkpoint (an int4 AWQ release of a 16-bit model): never the 16-bit
checkpoint with a --quantization that cannot load it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from objectives import catalog
from objectives.inference.lockstep import ADP_BALANCE_ENGINES, TRTLLM_BATCHING_WAIT_ITERS, TRTLLM_TIMEOUT_ITERS
from objectives.inference.measured import (
    MOE_A2A,
    MOE_ACT_DTYPES,
    MXFP8_MOE,
    MXFP8_MOE_FAMILIES,
    moe_act,
    mxfp8_moe_able,
)
from objectives.inference.resolve import block_fp8_problem, layout_invalid, valid_ep_sizes

from .flags import DeployError, FlagList, flag_list, unknown_flags

ENGINES = ("vllm", "sglang", "trtllm")

#: The serve, benchmark and router programs of each engine: flag-list command names.
PROGRAMS: dict[str, dict[str, tuple[str, str]]] = {
    "vllm": {"serve": ("vllm", "vllm serve"), "bench": ("vllm", "vllm bench serve"),
             "router": ("vllm-router", "vllm-router")},
    "sglang": {"serve": ("sglang", "python -m sglang.launch_server"), "bench": ("sglang", "python -m sglang.bench_serving"),
               "router": ("sglang-router", "python -m sglang_router.launch_router")},
    "trtllm": {"serve": ("trtllm", "trtllm-serve"), "bench": ("vllm", "vllm bench serve"),
               "router": ("trtllm", "trtllm-serve disaggregated")},
}

#: (weight_dtype, act_dtype) -> --quantization value per engine; None: no flag (bf16 weights). TensorRT-LLM reads
#: the quantization from the checkpoint (no flag): see CHECKPOINT.
QUANT: dict[tuple[str, str], dict[str, str | None]] = {
    ("bf16", "bf16"): {"vllm": None, "sglang": None},
    ("fp16", "fp16"): {"vllm": None, "sglang": None},
    ("fp8", "fp8"): {"vllm": "fp8", "sglang": "fp8"},          # online per-tensor fp8 of a 16-bit checkpoint
    ("fp8", "bf16"): {"vllm": "fp8", "sglang": "fp8"},         # weight-only fp8 (Marlin where the GPU lacks fp8)
    ("int8", "int8"): {"vllm": None, "sglang": "w8a8_int8"},  # vLLM: a compressed-tensors W8A8 checkpoint, detected
    ("int8", "bf16"): {"vllm": None, "sglang": None},  # W8A16 / GPTQ 8-bit: both read the checkpoint's own config
    ("int4", "bf16"): {"vllm": "awq_marlin", "sglang": "awq_marlin"},
    ("fp4", "fp4"): {"vllm": "modelopt_fp4", "sglang": "modelopt_fp4"},
    # an NVFP4 checkpoint before Blackwell: both engines' ModelOpt FP4 path falls back to their FP4 Marlin W4A16
    # kernel (vLLM and SGLang `marlin_utils_fp4.is_fp4_marlin_supported`: compute capability >= 7.5); an MXFP4
    # checkpoint (gpt-oss) takes no flag (`_quant_flag`)
    ("fp4", "bf16"): {"vllm": "modelopt_fp4", "sglang": "modelopt_fp4"},
}

#: What checkpoint a quantized format needs (the engines do not quantize these online).
CHECKPOINT: dict[tuple[str, str], str] = {
    ("int8", "int8"): "a W8A8 int8 (SmoothQuant) checkpoint of the model",
    ("int8", "bf16"): "a W8A16 int8 (compressed-tensors or GPTQ 8-bit) checkpoint of the model",
    ("int4", "bf16"): "an AWQ int4 checkpoint of the model",
    ("fp4", "fp4"): "an NVFP4 (ModelOpt) checkpoint of the model",
    ("fp4", "bf16"): "an NVFP4 (ModelOpt) or MXFP4 checkpoint of the model",
}

#: The checkpoint schemes (`catalog.Model.quant_scheme`) vLLM / SGLang serve with a format's `QUANT` flag (or none)
#: that `CHECKPOINT` asks for: what `served_checkpoint` takes a catalog checkpoint of the model in. TensorRT-LLM
#: reads any of the weight dtype's schemes from the checkpoint.
CHECKPOINT_SCHEMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("int8", "int8"): ("int8_sq",),
    ("int8", "bf16"): ("int8_wo", "int8_gptq"),
    ("int4", "bf16"): ("int4_awq",),            # --quantization awq_marlin
    ("fp4", "fp4"): ("nvfp4",),                 # --quantization modelopt_fp4
    ("fp4", "bf16"): ("nvfp4", "nvfp4_w4a16"),
}

#: The model path a plan serves where its format needs a checkpoint the catalog knows none of (`served_checkpoint`):
#: the commands name it, so that they cannot run the 16-bit checkpoint in its place; the notes say what replaces it
QUANTIZED_CHECKPOINT = "QUANTIZED_CHECKPOINT"

#: kv_dtype -> the engine's KV-cache dtype value (None: not expressible, "": leave the engine's default)
KV: dict[str, dict[str, str | None]] = {
    "auto": {"vllm": "auto", "sglang": "auto", "trtllm": ""},
    "bf16": {"vllm": "bfloat16", "sglang": "bf16", "trtllm": ""},
    "fp16": {"vllm": "float16", "sglang": None, "trtllm": ""},
    "fp8": {"vllm": "fp8", "sglang": "fp8_e4m3", "trtllm": "fp8"},
    "int8": {"vllm": None, "sglang": None, "trtllm": None},
}

DEFAULTS: dict[str, Any] = {"tp": 1, "pp": 1, "dp": 1, "ep": 1, "attn_dp": 1, "weight_dtype": "bf16",
                            "act_dtype": None, "kv_dtype": None, "mode": "agg", "prefill_replicas": None,
                            "max_batch_size": 256, "max_num_tokens": 8192, "chunked_prefill": True, "eplb": False,
                            "moe_act_dtype": None, "prefix_caching": True, "adp_balance": False}
ALIASES = {"batch_size": "max_batch_size", "max_num_seqs": "max_batch_size", "tensor_parallel": "tp"}


@dataclass(frozen=True)
class Command:
    """One process to start: ``argv`` (program and flags), ``env`` (e.g. CUDA_VISIBLE_DEVICES, `device_env`), its role
    ("serve", "prefill", "decode", "router", "benchmark"), and the flag list (command name + release) it was
    checked against."""

    role: str
    argv: tuple[str, ...]
    program: str
    checked_against: str
    env: Mapping[str, str] = field(default_factory=dict)
    #: what starts the program on several hosts (TensorRT-LLM's ``mpirun ... trtllm-llmapi-launch``); its words
    #: precede ``argv`` and are no part of the flag check
    launcher: tuple[str, ...] = ()
    #: the host it runs on where a worker spans hosts ("node-0", ...: placeholders for the hosts' addresses), "" else
    node: str = ""

    def shell(self) -> str:
        """The command as one shell line (environment assignments first, then the launcher)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + shlex.join((*self.launcher, *self.argv))

    def __str__(self) -> str:
        return self.shell()

    def unknown_flags(self) -> list[str]:
        """Flags (or flag=value) of this command that its flag list does not have; the program's own words
        (e.g. ``python -m sglang.launch_server``) must open ``argv``."""
        words = self.program.split()
        if list(self.argv[:len(words)]) != words:
            return [f"program {' '.join(self.argv[:len(words)])!r} is not {self.program!r}"]
        return unknown_flags(self.argv[len(words):], _flags_for(self))


@dataclass
class Deployment:
    """What a platform engineer runs for one configuration: servers, the router (disaggregated or replicated
    deployments), the benchmark, the files they read (YAML), the predicted latencies and notes."""

    engine: str
    version: str
    model: str
    hf_id: str
    config: dict[str, Any]
    servers: list[Command]
    router: Command | None
    benchmark: Command | None
    files: dict[str, str]
    predicted: dict[str, float]
    notes: list[str]
    flag_lists: dict[str, str]
    #: the model path the commands serve (`served_checkpoint`: ``hf_id``, a quantized checkpoint of the model in the
    #: trial's format, or the `QUANTIZED_CHECKPOINT` placeholder); "": ``hf_id``
    checkpoint: str = ""
    #: a disaggregated deployment's served checkpoint per pool ({"prefill": ..., "decode": ...}); empty: one, `checkpoint`
    pool_checkpoints: dict[str, str] = field(default_factory=dict)

    @property
    def commands(self) -> list[Command]:
        """Every command in start order: servers, router, benchmark."""
        return [*self.servers, *([self.router] if self.router else []), *([self.benchmark] if self.benchmark else [])]

    def check(self) -> dict[str, list[str]]:
        """{command line: flags (or flag=value) its engine's flag list does not have}; empty when all are known."""
        out: dict[str, list[str]] = {}
        for c in self.commands:
            bad = c.unknown_flags()
            if bad:
                out[c.shell()] = bad
        return out

    def script(self) -> str:
        """A bash script: header, the files to write, each server in the background, router, benchmark."""
        cfg = ", ".join(f"{k}={v}" for k, v in self.config.items() if v is not None)
        served = f", served from {self.checkpoint}" if self.checkpoint not in ("", self.hf_id) else ""
        lines = ["#!/usr/bin/env bash", f"# {self.engine} {self.version}: {self.model} ({self.hf_id}){served}",
                 f"# {cfg}"]
        lines += [f"# flags checked against: {v}" for v in dict.fromkeys(self.flag_lists.values())]
        lines += [f"# note: {n}" for n in self.notes]
        lines.append("set -euo pipefail")
        if self.files:
            lines.append("# files the commands read (written beside this script by `-o DIR`)")
        for s in self.servers:
            lines += [f"# {s.role} worker" + (f", on host {s.node}" if s.node else ""), s.shell() + " &"]
        if self.router:
            lines += ["# router (clients connect here)", self.router.shell() + " &"]
        if self.benchmark:
            lines.append("# wait until the servers answer, then benchmark the deployment as the study's workload:")
            lines += [f"# predicted {k} = {v:.4g}" for k, v in self.predicted.items()]
            lines.append(self.benchmark.shell())
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        parts = [self.script()]
        for name, text in self.files.items():
            parts.append(f"# ---- {name} ----\n{text}")
        return "\n".join(parts)

    def write(self, directory: str | Path) -> list[Path]:
        """Write launch.sh, the YAML files and deployment.json (commands, config, predictions) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        out = []
        sh = d / "launch.sh"
        sh.write_text(self.script())
        sh.chmod(0o755)
        out.append(sh)
        for name, text in self.files.items():
            p = d / name
            p.write_text(text)
            out.append(p)
        meta = d / "deployment.json"
        meta.write_text(json.dumps({
            "engine": self.engine, "version": self.version, "model": self.model, "hf_id": self.hf_id,
            "checkpoint": self.checkpoint or self.hf_id,
            **({"pool_checkpoints": dict(self.pool_checkpoints)} if self.pool_checkpoints else {}), "config": {k: (v.item() if hasattr(v, "item") else v) for k, v in self.config.items()},
            "commands": [{"role": c.role, "argv": list(c.argv), "env": dict(c.env), "checked_against": c.checked_against,
                          **({"launcher": list(c.launcher)} if c.launcher else {}), **({"node": c.node} if c.node else {})}
                         for c in self.commands],
            "predicted": self.predicted, "notes": self.notes, "flag_lists": self.flag_lists}, indent=1, default=str))
        out.append(meta)
        return out


def _flags_for(c: Command) -> dict[str, dict[str, Any]]:
    engine, version = c.checked_against.split(" ", 1)
    fl, exact = flag_list(engine, version)
    if not exact:
        raise DeployError(f"no flag list of {c.checked_against} ships")
    return fl.flags(c.program)


# ------------------------------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class Plan:
    """A validated configuration (see the module docstring for the meaning of each field)."""

    gpu: catalog.GPU
    model: catalog.Model
    tp: int
    pp: int
    dp: int
    ep: int
    attn_dp: int
    weight_dtype: str
    act_dtype: str
    kv_dtype: str
    mode: str
    prefill_replicas: int
    max_batch_size: int
    max_num_tokens: int
    chunked_prefill: bool
    # disaggregated mode: the prefill workers' own GPU type and degrees (None: the decode workers')
    prefill_gpu: catalog.GPU | None = None
    prefill_tp: int | None = None
    prefill_ep: int | None = None
    prefill_attn_dp: int | None = None
    prefill_pp: int | None = None
    prefill_weight_dtype: str | None = None      # the prefill workers' own format (None: the decode workers')
    prefill_act_dtype: str | None = None
    eplb: bool = False            # an expert-parallel load balancer in every worker with ep > 1
    moe_act_dtype: str = "auto"   # MXFP4 experts' activations (inference.measured.MOE_ACT_DTYPES)
    moe_a2a: str = "auto"         # the EP token exchange across attention-DP ranks (inference.measured.MOE_A2A)
    prefix_caching: bool = True   # the engines' prefix cache (on: every engine's default)
    adp_balance: bool = False     # TensorRT-LLM's attention-DP balance (off: its default; inference.lockstep)
    speculative: Any = None       # speculative decoding (`inference.Speculative`; None: off) in every worker
    kv_default: bool = False      # kv_dtype was not given: the study's own (`_study_kv`), launched where "auto" differs

    @property
    def gpus_per_replica(self) -> int:
        return self.tp * self.pp * self.attn_dp

    def pool(self, role: str) -> Plan:
        """The plan of one worker of ``role``: a prefill worker of a disaggregated deployment runs on its pool's
        GPU type, TP, EP, attention DP, PP and (weight, activation) format; every other worker on the plan's own."""
        if role != "prefill" or self.mode != "disagg":
            return self
        return dataclasses.replace(self, gpu=self.prefill_gpu or self.gpu, tp=self.prefill_tp or self.tp,
                                   ep=self.prefill_ep or self.ep, attn_dp=self.prefill_attn_dp or self.attn_dp,
                                   pp=self.prefill_pp or self.pp,
                                   weight_dtype=self.prefill_weight_dtype or self.weight_dtype,
                                   act_dtype=self.prefill_act_dtype or self.act_dtype)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("tp", "pp", "dp", "ep", "attn_dp", "weight_dtype", "act_dtype", "kv_dtype",
                                           "mode", "max_batch_size", "max_num_tokens", "chunked_prefill", "eplb",
                                           "moe_act_dtype", "moe_a2a", "prefix_caching", "adp_balance")}
        d = {"gpu": self.gpu.name, "model": self.model.name, **d}
        if self.speculative is not None:
            d["speculative"] = self.speculative.label
        if self.mode == "disagg":
            d["prefill_replicas"] = self.prefill_replicas
            pre = self.pool("prefill")
            d.update(prefill_gpu=pre.gpu.name, prefill_tp=pre.tp, prefill_ep=pre.ep, prefill_attn_dp=pre.attn_dp,
                     prefill_pp=pre.pp, prefill_weight_dtype=pre.weight_dtype, prefill_act_dtype=pre.act_dtype)
        return d


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _int(cfg: Mapping[str, Any], key: str) -> int:
    v: Any = cfg.get(key)
    v = DEFAULTS[key] if _missing(v) else v
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DeployError(f"{key}={v!r} must be a positive integer") from None
    if f != int(f) or f < 1:
        raise DeployError(f"{key}={v!r} must be a positive integer")
    return int(f)


def _auto_choice(cfg: Mapping[str, Any], key: str, valid: Sequence[str], what: str) -> str:
    """A knob each engine sets itself unless told: one of ``valid``; missing (None or NaN): "auto". DeployError
    naming the knob, the valid values and ``what`` the knob picks otherwise."""
    v = cfg.get(key)
    v = "auto" if _missing(v) else v
    if v not in valid:
        raise DeployError(f"{key}={v!r} not allowed; valid: {', '.join(valid)} or None ({what})")
    return str(v)


def _bool(cfg: Mapping[str, Any], key: str) -> bool:
    """A yes / no knob: True / False (numpy's too), 0 / 1, or the strings true / false / yes / no / 1 / 0; missing:
    the default. DeployError naming the knob and the value otherwise."""
    v = cfg.get(key)
    if _missing(v):
        return bool(DEFAULTS[key])
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "false", "0", "no"):
        return v.lower() in ("true", "1", "yes")
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1)):
        return bool(v)
    raise DeployError(f"{key}={v!r} must be True or False")


def _default_act(gpu: catalog.GPU, weight: str) -> str:
    """The compute precision when the configuration names none: the weight's where the GPU computes in it (fp8,
    int8, fp4), else bf16 (weight-only)."""
    if weight in ("bf16", "fp16"):
        return weight
    return weight if gpu.supports(weight) else "bf16"


def plan(config: Mapping[str, Any], model: str | None = None, engine: str = "roofline") -> Plan:
    """Validate a configuration mapping into a :class:`Plan`; DeployError naming any bad value. ``engine``: the
    engine whose KV rule a missing ``kv_dtype`` follows (`_study_kv`; "roofline": none), before a
    ``prefill_kv_dtype`` is compared with it."""
    cfg = {ALIASES.get(k, k): v for k, v in dict(config).items()}
    model_name = model or cfg.get("model")
    if _missing(model_name):
        raise DeployError("the configuration names no model: pass model=... (a catalog name or Hugging Face id)")
    m = catalog.model(str(model_name))
    if _missing(cfg.get("gpu")):
        raise DeployError(f"the configuration names no gpu; valid GPUs: {catalog.gpus()}")
    g = catalog.gpu(str(cfg["gpu"]))
    ints = {k: _int(cfg, k) for k in ("tp", "pp", "dp", "ep", "attn_dp", "max_batch_size", "max_num_tokens")}
    mode = cfg.get("mode")
    mode = DEFAULTS["mode"] if _missing(mode) else str(mode)
    if mode not in ("agg", "disagg"):
        raise DeployError(f"mode={mode!r} not allowed; valid modes: 'agg', 'disagg'")
    pr = 0
    if mode == "disagg":
        v = cfg.get("prefill_replicas")
        if _missing(v):
            raise DeployError("mode='disagg' needs prefill_replicas (the replicas that prefill; the rest decode)")
        pr = _int(cfg, "prefill_replicas")
        if pr >= ints["dp"]:
            raise DeployError(f"mode='disagg' needs 1 <= prefill_replicas < dp, got prefill_replicas={pr} dp={ints['dp']}")
    w = cfg.get("weight_dtype")
    # missing: the checkpoint's own format (what the engine serves without a --quantization flag; the cost
    # model's rule for weight_dtype None, `inference.resolve`), bf16 for an unquantized checkpoint
    w = (m.quant_weight_dtype or DEFAULTS["weight_dtype"]) if _missing(w) else str(w)
    a = cfg.get("act_dtype")
    a = _default_act(g, w) if _missing(a) else str(a)
    if (w, a) not in QUANT:
        raise DeployError(f"(weight_dtype, act_dtype)=({w!r}, {a!r}) is not a deployable format; valid: "
                          f"{sorted(QUANT)}")
    batching = cfg.get("batching")
    if not _missing(batching) and batching != "continuous":
        raise DeployError(f"batching={batching!r}: the engines batch continuously (vLLM, SGLang, TensorRT-LLM); a "
                          "static-batching configuration has no launch flag. Valid: 'continuous'")
    kv = cfg.get("kv_dtype")
    kv_default = _missing(kv)
    kv = _study_kv(m, g, w, a, engine) if kv_default else str(kv)
    if kv not in KV:
        raise DeployError(f"kv_dtype={kv!r} not allowed; valid: {sorted(KV)}")
    # disaggregated mode: the prefill pool's own GPU type, degrees and format (missing: the decode pool's)
    pg, pre = g, {"prefill_tp": ints["tp"], "prefill_ep": ints["ep"], "prefill_attn_dp": ints["attn_dp"],
                  "prefill_pp": ints["pp"]}
    pw, pa = w, a
    if mode == "disagg":
        if not _missing(cfg.get("prefill_gpu")):
            pg = catalog.gpu(str(cfg["prefill_gpu"]))
        pre = {k: (v if _missing(cfg.get(k)) else _int(cfg, k)) for k, v in pre.items()}
        pw, pa = _prefill_format(cfg, pg, w, a)
        pkv = cfg.get("prefill_kv_dtype")
        if not _missing(pkv) and str(pkv) != kv:
            raise DeployError(f"prefill_kv_dtype={pkv!r} with kv_dtype={kv!r}: the prefill workers hand their KV "
                              f"cache to the decode workers as stored, so both pools store one dtype (vLLM's "
                              f"NixlConnector refuses a peer whose cache_dtype differs, compute_nixl_compatibility_hash)"
                              f"; drop prefill_kv_dtype or give it kv_dtype's value")
    n_gpus: Any = cfg.get("n_gpus")
    total = ints["tp"] * ints["pp"] * ints["attn_dp"] * ints["dp"]
    if mode == "disagg":
        total = pr * pre["prefill_tp"] * pre["prefill_pp"] * pre["prefill_attn_dp"] + \
            (ints["dp"] - pr) * ints["tp"] * ints["pp"] * ints["attn_dp"]
        if not _missing(n_gpus) and int(float(n_gpus)) != total:
            raise DeployError(f"n_gpus={n_gpus!r} does not match the pools' GPUs: prefill_replicas x prefill_tp x "
                              f"prefill_pp x prefill_attn_dp + (dp - prefill_replicas) x tp x pp x attn_dp = {pr} x "
                              f"{pre['prefill_tp']} x {pre['prefill_pp']} x {pre['prefill_attn_dp']} + "
                              f"{ints['dp'] - pr} x {ints['tp']} x {ints['pp']} x {ints['attn_dp']} = {total}")
    elif not _missing(n_gpus) and int(float(n_gpus)) != total:
        raise DeployError(f"n_gpus={n_gpus!r} does not match tp x pp x attn_dp x dp = {ints['tp']} x {ints['pp']} x "
                          f"{ints['attn_dp']} x {ints['dp']} = {total}")
    for key, ep in (("ep", ints["ep"]), ("prefill_ep", pre["prefill_ep"])):
        if ep > 1 and not m.is_moe:
            raise DeployError(f"{key}={ep}: expert parallelism needs a mixture-of-experts model; {m.name} is dense")
    pools = [(g, w, a, "")]
    if pg.name != g.name or (pw, pa) != (w, a):
        pools.append((pg, pw, pa, "prefill_" if (pw, pa) != (w, a) else ""))
    for gpu, wt, at, key in pools:
        if at in ("fp8", "int8", "fp4") and not gpu.supports(at):
            able = [n for n in catalog.gpus() if catalog.gpu(n).supports(at)]
            raise DeployError(f"{key}act_dtype={at!r} ({key}weight_dtype={wt!r}) needs {at} tensor cores; "
                              f"{gpu.name} ({gpu.family}) has none. GPUs that compute in {at}: {able}")
    mad = _auto_choice(cfg, "moe_act_dtype", MOE_ACT_DTYPES,
                       "the activations MXFP4 experts compute with; None / 'auto': each engine's default")
    if mad == "mxfp8" and _mxfp4_experts(m, w):
        for gpu in ([g] if pg is g or pg.name == g.name else [g, pg]):
            if gpu.family not in MXFP8_MOE_FAMILIES:
                able = [n for n in catalog.gpus() if catalog.gpu(n).family in MXFP8_MOE_FAMILIES]
                raise DeployError(f"moe_act_dtype='mxfp8': no engine runs MXFP4 experts with MXFP8 activations on "
                                  f"{gpu.name} ({gpu.family}); GPUs with that kernel: {able}")
    xa = _auto_choice(cfg, "moe_a2a", MOE_A2A, "how an EP group across attention-DP ranks exchanges its tokens; "
                                              "None / 'auto': each engine's rule")
    return Plan(gpu=g, model=m, tp=ints["tp"], pp=ints["pp"], dp=ints["dp"], ep=ints["ep"], attn_dp=ints["attn_dp"],
                weight_dtype=w, act_dtype=a, kv_dtype=kv, mode=mode, prefill_replicas=pr,
                max_batch_size=ints["max_batch_size"], max_num_tokens=ints["max_num_tokens"],
                chunked_prefill=_bool(cfg, "chunked_prefill"), prefill_gpu=pg, eplb=_bool(cfg, "eplb"),
                moe_act_dtype=mad, prefix_caching=_bool(cfg, "prefix_caching"), kv_default=kv_default,
                moe_a2a=xa, prefill_weight_dtype=pw, prefill_act_dtype=pa,
                adp_balance=_bool(cfg, "adp_balance"), speculative=_speculative(cfg, m), **pre)


def _speculative(cfg: Mapping[str, Any], m: catalog.Model) -> Any:
    """The configuration's ``speculative`` as an `inference.Speculative` (None: off; `speculative.as_speculative`'s
    forms); DeployError for a bad value and for "mtp" on a model without an MTP module
    (`speculative.resolve_speculative`, the cost model's own rule)."""
    from objectives.inference.speculative import resolve_speculative
    v = cfg.get("speculative")
    if _missing(v):
        return None
    try:
        return resolve_speculative(v, m)
    except (TypeError, ValueError) as exc:
        raise DeployError(str(exc)) from None


def _prefill_format(cfg: Mapping[str, Any], pg: catalog.GPU, w: str, a: str) -> tuple[str, str]:
    """The prefill workers' (weight, activation) format: ``prefill_weight_dtype`` / ``prefill_act_dtype`` where the
    configuration gives them (a missing activation dtype: the prefill GPU's default for that weight,
    `_default_act`), else the decode workers' (``w``, ``a``); DeployError for a pair that is no deployable format."""
    pw_raw, pa_raw = cfg.get("prefill_weight_dtype"), cfg.get("prefill_act_dtype")
    if _missing(pw_raw) and _missing(pa_raw):
        return w, a
    pw = w if _missing(pw_raw) else str(pw_raw)
    pa = _default_act(pg, pw) if _missing(pa_raw) else str(pa_raw)
    if (pw, pa) not in QUANT:
        raise DeployError(f"(prefill_weight_dtype, prefill_act_dtype)=({pw!r}, {pa!r}) is not a deployable format; "
                          f"valid: {sorted(QUANT)}")
    return pw, pa


def _study_kv(m: catalog.Model, g: catalog.GPU, weight: str, act: str, engine: str = "roofline") -> str:
    """The KV-cache dtype the study's cost model charges a trial on ``engine`` that names none
    (`inference.resolve.resolve_dtypes`: the engines' "auto" for the checkpoint where the weights are its own
    format, the activation dtype, or fp8 for fp4 activations, elsewhere; fp8 for compressed-attention models;
    SGLang's own rule for DeepSeek sparse attention, `inference.resolve.engine_kv_rule`), the dtype its deployment
    must store."""
    from objectives.catalog.types import DTYPES
    from objectives.inference.resolve import dtype_codes, engine_kv_rule, family_code, gpu_arrays, resolve_dtypes

    eng8, eng16 = engine_kv_rule(engine, family_code(g.family), m.is_deepseek_sparse)
    _, kv, _, _ = resolve_dtypes(gpu_arrays([g], None), dtype_codes("weight_dtype", weight, False),
                                 dtype_codes("act_dtype", act, False), dtype_codes("kv_dtype", None, True),
                                 bool(m.is_compressed_attention) | eng8,
                                 DTYPES.index(m.quant_weight_dtype) if m.quant_weight_dtype else -1,
                                 m.quant_kv_dtype == "fp8", eng16)
    return DTYPES[int(kv)]


def _engine_auto_kv(m: catalog.Model, engine: str, g: catalog.GPU) -> str:
    """The KV-cache dtype ``engine``'s "auto" stores for checkpoint ``m`` on ``g``: the format it ships KV scales
    for (`Model.quant_kv_dtype`: a ModelOpt kv_cache_quant_algo / compressed-tensors kv_cache_scheme), else the
    model's 16-bit dtype (vLLM `resolve_kv_cache_dtype_string` + `CacheConfig.cache_dtype` "auto", vllm/utils/
    torch_utils.py and vllm/config/cache.py; SGLang `configure_kv_cache_dtype`, python/sglang/srt/mem_cache/
    kv_cache_dtype.py; TensorRT-LLM `KvCacheConfig.dtype` "auto", which follows the checkpoint's metadata), except
    where the engine fixes it (SGLang's DeepSeek sparse attention: fp8 on Blackwell, bf16 before;
    `inference.resolve.engine_kv_rule`)."""
    from objectives.inference.resolve import engine_kv_rule, family_code

    eng8, eng16 = engine_kv_rule(engine, family_code(g.family), m.is_deepseek_sparse)
    if eng8 or eng16:
        return "fp8" if eng8 and g.supports("fp8") else "bf16"
    return m.quant_kv_dtype or "bf16"


def _mxfp4_experts(m: catalog.Model, weight_dtype: str) -> bool:
    """True where the served experts are MXFP4 (an MXFP4 MoE checkpoint at fp4 weights): the only ones
    ``moe_act_dtype`` applies to (the cost model's rule, `objectives.inference.core`)."""
    return m.has_mxfp4_experts and weight_dtype == "fp4"


def _moe_act_setting(c: _Ctx) -> tuple[list[Any], dict[str, str]]:
    """(flags, environment) that set a worker's MXFP4 MoE precision to the plan's ``moe_act_dtype``: nothing for
    "auto", experts that are not MXFP4, or the engine's default on the worker's GPU (`measured.moe_act`).
    TensorRT-LLM: OVERRIDE_QUANT_ALGO (tensorrt_llm/_torch/model_config.py, `get_mxfp4_quant_algo`); SGLang:
    --flashinfer-mxfp4-moe-precision (sglang/srt/server_args.py, choices "default" = MXFP8 activations under its
    SM100 flashinfer_mxfp4 runner, "bf16"); vLLM: VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1
    (vllm/model_executor/layers/fused_moe/oracle/mxfp4.py: FLASHINFER_TRTLLM_MXFP4_MXFP8)."""
    p = c.p
    if p.moe_act_dtype == "auto" or not _mxfp4_experts(p.model, p.weight_dtype):
        return [], {}
    want = "fp8" if p.moe_act_dtype == "mxfp8" else "bf16"
    if moe_act(c.engine, p.gpu.family, "fp4", p.act_dtype, True) == want:
        return [], {}
    what = f"moe_act_dtype={p.moe_act_dtype!r} on {p.gpu.name}"
    if want == "fp8" and not mxfp8_moe_able(p.gpu.family, c.engine):   # the kernel exists there, not in this engine
        able = list(MXFP8_MOE.get(p.gpu.family, ((), ()))[1])
        raise DeployError(f"{c.engine} {c.version} cannot run {what}: it has no MXFP4 x MXFP8 MoE kernel on "
                          f"{p.gpu.family} GPUs (inference.measured.MXFP8_MOE); engines that run it there: {able}")
    if c.engine == "trtllm":
        return [], {"OVERRIDE_QUANT_ALGO": "W4A8_MXFP4_MXFP8" if want == "fp8" else "W4A16_MXFP4"}
    if c.engine == "sglang" and want == "bf16":
        c.need("serve", "--flashinfer-mxfp4-moe-precision", what)
        return ["--flashinfer-mxfp4-moe-precision",
                c.choice("serve", "--flashinfer-mxfp4-moe-precision", "bf16", what)], {}
    if c.engine == "vllm" and want == "fp8":
        return [], {"VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8": "1"}
    raise DeployError(f"{c.engine} {c.version} has no setting for {what} (its default there is the other "
                      f"precision)")


def _moe_a2a_setting(c: _Ctx, role: str) -> tuple[list[Any], dict[str, str]]:
    """(flags, environment) that set a worker's EP token exchange to the plan's ``moe_a2a``: nothing for "auto";
    DeployError where the worker's layout or engine cannot run it (`resolve.moe_a2a_invalid`, the cost model's
    rule) or its release's flag list lacks the flag or value. SGLang: --moe-a2a-backend none / deepep with
    --deepep-mode (auto in an aggregated worker, normal on prefill workers, low_latency on decode workers:
    python/sglang/srt/server_args.py); vLLM: --all2all-backend allgather_reducescatter, deepep_high_throughput
    (aggregated and prefill workers: any token count per dispatch) or deepep_low_latency (decode workers);
    TensorRT-LLM "allgather": TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled (the fused-MoE modules'
    select_alltoall_method_type reads it first)."""
    from objectives.inference.resolve import R_MOE_A2A, REASONS, moe_a2a_invalid
    p = c.p
    if p.moe_a2a == "auto":
        return [], {}
    what = f"moe_a2a={p.moe_a2a!r} on {'its ' + role + ' workers' if role in ('prefill', 'decode') else 'a worker'} " \
           f"(tp={p.tp}, attn_dp={p.attn_dp}, ep={p.ep})"
    if moe_a2a_invalid(p.moe_a2a, c.engine, p.model.n_experts, p.tp, p.attn_dp, p.ep):
        raise DeployError(f"{c.engine} {c.version} cannot run {what}: {REASONS[R_MOE_A2A]}")
    deep = p.moe_a2a == "deepep"
    if c.engine == "sglang":
        c.need("serve", "--moe-a2a-backend", what)
        flags = ["--moe-a2a-backend", c.choice("serve", "--moe-a2a-backend", "deepep" if deep else "none", what)]
        if deep:
            mode = {"prefill": "normal", "decode": "low_latency"}.get(role, "auto")
            c.need("serve", "--deepep-mode", what)
            flags += ["--deepep-mode", c.choice("serve", "--deepep-mode", mode, what)]
        return flags, {}
    if c.engine == "vllm":
        c.need("serve", "--all2all-backend", what)
        value = ("deepep_low_latency" if role == "decode" else "deepep_high_throughput") if deep else \
            "allgather_reducescatter"
        return ["--all2all-backend", c.choice("serve", "--all2all-backend", value, what)], {}
    return [], {"TRTLLM_FORCE_ALLTOALL_METHOD": "NotEnabled"}


# ------------------------------------------------------------------------------------------------- builders
@dataclass
class _Ctx:
    """What the builders share: the plan, the flag lists, ports, notes."""

    p: Plan
    engine: str
    version: str
    lists: dict[str, FlagList]
    notes: list[str]
    host: str = "localhost"
    base_port: int = 8000
    max_len: int | None = None        # longest request (input + output tokens) of the workload
    offsets: list[int] | None = None  # first GPU (counted over the whole deployment) of each server
    node_prefix: str = "node-"        # the placeholder names of the hosts a worker spanning hosts runs on
    dp_stride: int = 1                # the largest attention-DP size of the deployment's pools
    served_name: str = ""             # every worker's --served-model-name (`served_name`); "": none given

    @property
    def gpus_per_node(self) -> int:
        """GPUs of one host of the worker's GPU type (an HGX server's 8, a GB200 / GB300 NVL72 compute tray's 4:
        `catalog.gpus_per_host`, from the systems file)."""
        return catalog.gpus_per_host(self.p.gpu.name)

    def fl(self, role: str) -> tuple[FlagList, str]:
        key, program = PROGRAMS[self.engine][role]
        return self.lists[key], program

    def need(self, role: str, flag: str, what: str) -> None:
        fl, program = self.fl(role)
        if not fl.has(program, flag):
            raise DeployError(f"{self.engine} {fl.version} cannot run {what}: its `{program}` has no {flag}")

    def choice(self, role: str, flag: str, value: str, what: str) -> str:
        fl, program = self.fl(role)
        ch = fl.choices(program, flag)
        if ch is not None and value not in [str(c) for c in ch]:
            raise DeployError(f"{self.engine} {fl.version} cannot run {what}: {flag} {value!r} is not among its "
                              f"choices {ch}")
        return value

    def command(self, role: str, which: str, argv: list[Any], env: Mapping[str, str] | None = None) -> Command:
        fl, program = self.fl(which)
        return Command(role, tuple(str(x) for x in argv), program, f"{fl.engine} {fl.version}", dict(env or {}))

    def devices(self, replica: int) -> dict[str, str]:
        """The environment that pins worker ``replica`` to its GPUs of its host (`device_env`)."""
        n = self.p.gpus_per_replica
        first = (self.offsets[replica] if self.offsets else replica * n) % self.gpus_per_node
        if first + n > self.gpus_per_node:
            first = 0
        return {device_env(self.p.gpu): ",".join(str(first + i) for i in range(n))}


def device_env(gpu: catalog.GPU) -> str:
    """The environment variable that selects a process's devices on ``gpu``'s platform, as the engines read it
    (vLLM's ``Platform.device_control_env_var``): CUDA_VISIBLE_DEVICES on NVIDIA (vllm/platforms/cuda.py),
    HIP_VISIBLE_DEVICES on AMD (vllm/platforms/rocm.py `_sync_hip_cuda_env_vars`: CUDA_VISIBLE_DEVICES is
    deprecated there; HIP honors HIP_VISIBLE_DEVICES for SGLang too), ZE_AFFINITY_MASK on Intel GPUs
    (vllm/platforms/xpu.py), HABANA_VISIBLE_MODULES on Gaudi (the variable Ray leaves to vLLM's Gaudi plugin,
    vllm/envs.py RAY_EXPERIMENTAL_NOSET_HABANA_VISIBLE_MODULES)."""
    if gpu.vendor == "amd":
        return "HIP_VISIBLE_DEVICES"
    if gpu.vendor == "intel":
        return "HABANA_VISIBLE_MODULES" if gpu.family.startswith("gaudi") else "ZE_AFFINITY_MASK"
    return "CUDA_VISIBLE_DEVICES"


def _kv_value(c: _Ctx) -> str | None:
    """The engine's KV-cache dtype value ("" / "auto": none given, the engine's "auto"). A kv_dtype the trial did not
    name is the study's (`_study_kv`) and is given only where the engine's "auto" would store another
    (`_engine_auto_kv`); DeployError where the engine cannot store it."""
    p = c.p
    auto = _engine_auto_kv(p.model, c.engine, p.gpu)
    kv = p.kv_dtype     # the study's on this engine where not given (`build`), one dtype for both pools
    if p.kv_default and (kv == auto or {kv, auto} <= {"bf16", "fp16"}):
        return ""   # 16 bits either way: "auto" stores the checkpoint's own 16-bit dtype (no --dtype is launched)
    v = KV[kv][c.engine]
    if v is None:
        raise DeployError(f"{c.engine} cannot store the KV cache as kv_dtype={kv!r}; it can: "
                          f"{[k for k, e in KV.items() if e[c.engine] is not None]}")
    if c.engine == "trtllm" and not v and kv in ("bf16", "fp16") and p.model.quant_kv_dtype == "fp8":
        # TorchLlmArgs.sync_quant_config_with_kv_cache_config_dtype (tensorrt_llm/llmapi/llm_args.py) carries only
        # dtype "fp8" into the quantization config; "auto" keeps the checkpoint's FP8 kv_cache_quant_algo
        raise DeployError(f"trtllm cannot store the KV cache as kv_dtype={kv!r} for {p.model.hf_id}: the "
                          f"checkpoint ships FP8 KV scales (kv_cache_quant_algo FP8), which TensorRT-LLM's "
                          f"kv_cache_config.dtype 'auto' follows and no other value overrides; use kv_dtype='fp8', "
                          f"a checkpoint without FP8 KV, or vllm / sglang")
    return v


def _needs_checkpoint(p: Plan, engine: str) -> str | None:
    """What checkpoint the plan's format needs that the model's own is not (`CHECKPOINT`; TensorRT-LLM, which
    quantizes nothing online, an FP8 one for fp8 weights too), else None (the model's own checkpoint serves it)."""
    fmt = (p.weight_dtype, p.act_dtype)
    if p.model.quant_weight_dtype == p.weight_dtype or _mxfp4_checkpoint(p.model, p.weight_dtype):
        return None
    if engine == "trtllm" and p.weight_dtype == "fp8":
        return "an FP8 (ModelOpt) checkpoint of the model"
    return CHECKPOINT.get(fmt)


def _checkpoint_fits(r: catalog.Model, p: Plan, engine: str) -> bool:
    """Whether catalog checkpoint ``r`` runs the plan's format on ``engine`` with nothing else of the plan changed:
    its weight dtype, a scheme the engine's flag reads (`CHECKPOINT_SCHEMES`), no KV-cache scales that would make
    the engine's "auto" store another KV dtype, 128 x 128 FP8 blocks that tile the plan's shards."""
    if r.quant_weight_dtype != p.weight_dtype or r.quant_kv_dtype not in ("", p.kv_dtype):
        return False
    if engine != "trtllm" and r.quant_scheme not in CHECKPOINT_SCHEMES.get((p.weight_dtype, p.act_dtype), ()):
        return False
    return not (r.quant_scheme == "fp8_block"
                and block_fp8_problem(r, engine, p.gpu.family, p.tp, p.attn_dp, p.ep))


def _own_path(m: catalog.Model) -> str:
    """The model path of ``m``'s own checkpoint: its Hugging Face id, else (a model read from a local config.json,
    registered under its path with hf_id "") that folder's path (the config file's folder for a *.json path)."""
    if m.hf_id:
        return m.hf_id
    return str(Path(m.name).expanduser().parent) if m.name.endswith(".json") else m.name


def _served(p: Plan, engine: str) -> tuple[str, str | None, catalog.Model | None]:
    """`served_checkpoint`, plus the served checkpoint's catalog record (None: the `QUANTIZED_CHECKPOINT`
    placeholder)."""
    m = p.model
    need = _needs_checkpoint(p, engine)
    if need is None:
        return _own_path(m), None, m
    from objectives.catalog.names import quant_from_suffix
    what = f"weight_dtype={p.weight_dtype!r} act_dtype={p.act_dtype!r}"
    for name in catalog.models():
        r = catalog.model(name)
        q = quant_from_suffix(r.hf_id) or quant_from_suffix(r.name)
        if r.name == m.name or not r.hf_id or q is None or not _checkpoint_fits(r, p, engine):
            continue
        try:
            if catalog.model(q[0]).name != m.name:
                continue
        except catalog.CatalogError:
            continue
        return r.hf_id, (f"{what}: serving {r.hf_id}, the catalog's {r.quant_scheme} checkpoint of {m.name}, in "
                         f"place of {_own_path(m)} (which {engine} does not quantize to this format online)"), r
    return QUANTIZED_CHECKPOINT, (f"{what}: {engine} does not quantize {_own_path(m)} to this format online and the "
                                  f"catalog ships no such checkpoint of it: replace {QUANTIZED_CHECKPOINT} in the "
                                  f"serve and benchmark commands by the local path or Hugging Face id of {need}"), None


def served_checkpoint(p: Plan, engine: str) -> tuple[str, str | None]:
    """(the model path ``engine``'s serve and benchmark commands name, a note or None). The model's own Hugging
    Face id (a model read from a local config.json: its folder's path) where its checkpoint runs the plan's (weight,
    activation) format (16-bit, the formats the engines
    quantize online: vLLM's / SGLang's fp8, or the checkpoint's own format); else a quantized checkpoint of the
    same model the catalog ships in that format (its id: "nvidia/Llama-3.1-70B-Instruct-FP8" for Llama-3.1-70B
    fp8 on TensorRT-LLM, `_checkpoint_fits`), else `QUANTIZED_CHECKPOINT`, which the note says to replace: the
    commands never launch the 16-bit checkpoint with a flag that cannot load it (vLLM / SGLang ``--quantization
    awq_marlin`` on a bf16 checkpoint fails at load; TensorRT-LLM would serve it in 16 bits)."""
    path, note, _ = _served(p, engine)
    return path, note


def served_name(p: Plan, engine: str) -> str:
    """The one model name the deployment's API answers to and the benchmark sends: the (decode) plan's served
    checkpoint. A disaggregated deployment's prefill pool may serve another checkpoint (its own format): every
    vLLM / SGLang worker then gets ``--served-model-name`` this name (`_served_name_args`), since vLLM answers a
    request naming a model it does not serve with 404 (vllm/entrypoints/openai/serving_engine.py,
    ``OpenAIServing._check_model``) and the PD router forwards the request body to the prefill worker first."""
    return served_checkpoint(p, engine)[0]


#: The activation dtype a checkpoint scheme's GEMMs compute in where the engine runs it from that checkpoint (None:
#: the plan's own, as vLLM / SGLang choose it by flag): ModelOpt FP8 (W8A8, TensorRT-LLM's FP8 GEMMs), NVFP4 (W4A4),
#: W4A16_NVFP4, INT8_SQ (W8A8) and the weight-only schemes (`catalog.quant.MODELOPT_ALGOS`,
#: `WEIGHT_ONLY_INT8_SCHEMES`)
SCHEME_ACT: dict[str, str] = {"fp8_per_tensor": "fp8", "fp8_per_channel": "fp8", "fp8_block": "fp8",
                              "nvfp4": "fp4", "nvfp4_w4a16": "bf16", "int8_sq": "int8", "int8_wo": "bf16",
                              "int8_gptq": "bf16", "int4_awq": "bf16", "int4_gptq": "bf16", "int4_wo": "bf16"}


def _act_note(p: Plan, engine: str, r: catalog.Model | None) -> str | None:
    """A note where the served checkpoint ``r`` computes in another activation dtype than the plan's, which the
    study's prediction assumed (TensorRT-LLM reads the format from the checkpoint, with no flag; vLLM / SGLang read
    the model's own checkpoint's quantization_config where `_quant_flag` gives none)."""
    if r is None or r.quant_weight_dtype != p.weight_dtype:
        return None
    act = SCHEME_ACT.get(r.quant_scheme)
    mine = p.act_dtype if p.act_dtype not in (None, "fp16") else "bf16"
    if act is None or act == mine:
        return None
    if engine != "trtllm" and r is not p.model:
        return None  # a catalog release for the flag's format (`_checkpoint_fits` keeps its scheme)
    return (f"{engine} runs {_own_path(r)} ({r.quant_scheme}) with {act} activations: the study's "
            f"weight_dtype={p.weight_dtype!r} act_dtype={p.act_dtype!r} prediction assumed {mine} activations")


def _quant_value(c: _Ctx) -> str | None:
    fmt = (c.p.weight_dtype, c.p.act_dtype)
    _, note, r = _served(c.p, c.engine)
    if note is not None:
        c.notes.append(note)
    if c.engine == "trtllm":
        if fmt == ("fp4", "bf16") and not _mxfp4_checkpoint(c.p.model, c.p.weight_dtype):
            raise DeployError(f"trtllm cannot run {c.p.model.name} from an NVFP4 checkpoint with 16-bit compute "
                              "(weight_dtype='fp4', act_dtype='bf16'): its FP4 GEMMs need Blackwell; an MXFP4 "
                              "checkpoint (W4A16_MXFP4) or vLLM / SGLang (FP4 Marlin) can")
        if (act := _act_note(c.p, c.engine, r)) is not None:
            c.notes.append(act)
        return None
    q = _quant_flag(c, r)
    if q is None and r is c.p.model and (act := _act_note(c.p, c.engine, r)) is not None:
        c.notes.append(act)     # the model's own checkpoint, read without a flag: its scheme sets the activations
    if q is not None and fmt == ("fp8", "bf16") and c.p.gpu.supports("fp8"):
        c.notes.append(f"{c.engine} --quantization fp8 computes in fp8 on {c.p.gpu.name} (fp8 tensor cores); the "
                       "study's w8a16 (weight-only) prediction is then pessimistic")
    if q is not None:
        c.choice("serve", "--quantization", q, f"weight_dtype={c.p.weight_dtype!r} act_dtype={c.p.act_dtype!r}")
    return q


def _mxfp4_checkpoint(m: catalog.Model, weight_dtype: str) -> bool:
    """The model is served from its own MXFP4 checkpoint (its quantization_config, quant_method "mxfp4")."""
    return m.quant_scheme == "mxfp4" and m.quant_weight_dtype == weight_dtype


#: The checkpoint quantization method (`catalog.Model.quant_method`) each ``--quantization`` value loads: vLLM
#: refuses a flag naming another method than the checkpoint config's at start-up (vllm/config/model.py
#: ``ModelConfig._verify_quantization``) unless the flag's config overrides it (``awq_marlin`` overrides "awq"
#: checkpoints, AWQMarlinConfig.override_quantization_method; ``modelopt_fp4`` ModelOpt ones,
#: ModelOptNvFp4Config.override_quantization_method)
FLAG_METHOD: dict[str, str] = {"awq_marlin": "awq", "modelopt_fp4": "modelopt", "fp8": "fp8",
                               "w8a8_int8": "w8a8_int8"}


def _quant_flag(c: _Ctx, served: catalog.Model | None = None) -> str | None:
    """vLLM's / SGLang's ``--quantization`` value for the plan's format (`QUANT`): none for an MXFP4 checkpoint,
    whose own quantization_config both engines detect (``--quantization modelopt_fp4`` would load it as NVFP4), nor
    for a served checkpoint (``served``: `_served`'s record; default the model's own) of the format in a scheme
    the flag does not read (`CHECKPOINT_SCHEMES`) or another quantization method than the flag's (`FLAG_METHOD`:
    a compressed-tensors NVFP4 checkpoint, read from its own quantization_config)."""
    m, fmt = c.p.model, (c.p.weight_dtype, c.p.act_dtype)
    r = m if served is None else served
    if _mxfp4_checkpoint(m, c.p.weight_dtype):
        return None
    q = QUANT[fmt][c.engine]
    if r.quant_weight_dtype == c.p.weight_dtype and (
            r.quant_scheme not in CHECKPOINT_SCHEMES.get(fmt, (r.quant_scheme,))
            or (q is not None and r.quant_method not in ("", FLAG_METHOD.get(q, q)))):
        # the checkpoint in another method than the flag's (Kimi-K2.5's compressed-tensors W4A16, a GPTQ
        # release, a compressed-tensors NVFP4 one): the engine reads its quantization_config, and refuses a
        # --quantization naming another method at start-up (vLLM vllm/config/model.py
        # ModelConfig._verify_quantization, "Quantization method specified in the model config (...) does not
        # match ..."; awq_marlin overrides "awq" checkpoints only, AWQMarlinConfig.override_quantization_method)
        return None
    return q


def _check_parallel(c: _Ctx) -> None:
    p = c.p
    if p.model.quant_scheme == "fp8_block" and p.weight_dtype == "fp8":
        # the checkpoint's own 128 x 128 blocks must tile every TP shard (the cost model's R_BLOCK)
        why = block_fp8_problem(p.model, c.engine, p.gpu.family, p.tp, p.attn_dp, p.ep)
        if why:
            raise DeployError(f"{c.engine} {c.version} cannot run tp={p.tp} attn_dp={p.attn_dp} ep={p.ep}: {why}")
    if p.attn_dp > 1:
        if c.engine == "vllm":
            c.need("serve", "--data-parallel-size", f"attn_dp={p.attn_dp}")
            if p.model.is_moe:
                c.need("serve", "--enable-expert-parallel", f"attn_dp={p.attn_dp}")
        elif c.engine == "sglang":
            c.need("serve", "--enable-dp-attention", f"attn_dp={p.attn_dp}")
        else:
            keys = c.lists["trtllm"].yaml.get("extra_llm_api_options", {}).get("keys", [])
            if "enable_attention_dp" not in keys:
                raise DeployError(f"trtllm {c.version} cannot run attn_dp={p.attn_dp}: its LLM API has no "
                                  "enable_attention_dp")
            if layout_invalid("trtllm", p.tp, p.attn_dp):
                raise DeployError(f"trtllm cannot run attn_dp={p.attn_dp} with tp={p.tp}: its attention DP runs "
                                  f"attention unsplit on each of the tp_size ranks (tp must be 1; --tp_size "
                                  f"{p.tp * p.attn_dp} then spans the attention-DP ranks)")
    if p.ep > 1:
        group = p.tp * p.attn_dp
        if layout_invalid(c.engine, p.tp, p.attn_dp, p.ep):
            raise DeployError(f"vllm {c.version} cannot run ep={p.ep} with tp={p.tp} x attn_dp={p.attn_dp}: "
                              f"--enable-expert-parallel spreads the experts over all tp x data-parallel ranks, "
                              f"so its expert-parallel size is {group}")
        if group % p.ep:
            raise DeployError(f"ep={p.ep} must divide tp x attn_dp = {group} for {c.engine}")
    balancer = _balancer(p)
    if balancer is not None and c.engine != "trtllm":   # TensorRT-LLM's: its YAML keys, `_trtllm_options`
        what = f"eplb=True (ep={p.ep})" if balancer == 0 else \
            f"ep={p.ep} on the {p.model.n_experts} experts of {p.model.name} ({balancer} redundant copies)"
        c.need("serve", "--enable-eplb", what)
        if balancer:
            c.need("serve", "--eplb-config" if c.engine == "vllm" else "--ep-num-redundant-experts", what)


def _balancer(p: Any) -> int | None:
    """The redundant expert copies R of a worker that runs its engine's expert-parallel load balancer (EPLB):
    one with ep > 1 and ``eplb`` on, or whose ep does not divide the experts (R > 0); None for a worker without
    one."""
    r = _redundant(p)
    return r if p.ep > 1 and (p.eplb or r > 0) else None


def _redundant(p: Any) -> int:
    """Redundant expert copies a worker needs where its ep does not divide the experts (EPLB slots): what the cost
    model charged (`objectives.inference.resolve.expert_slots`)."""
    from objectives.inference.resolve import redundant_experts
    return redundant_experts(p.model.n_experts, p.ep) if p.ep > 1 else 0


#: what the launch commands hold where an EAGLE draft head goes and the catalog names none for the served model
#: (`EAGLE3_HEADS`): the user replaces it by the path or Hugging Face id of an EAGLE head trained for that model
#: (`_speculative_note` says where and with which method name)
EAGLE_HEAD = "EAGLE_DRAFT_HEAD"

#: EAGLE-3 draft heads published for catalog models, by the served checkpoint's Hugging Face id: each the head's
#: Hugging Face model card id, the first one the EAGLE authors list for that base model (SafeAILab/EAGLE README.md
#: @ cb7e0841fe0c206c6ed74a197ad5e2a1f13f5a2b, table "EAGLE-3 Models on Hugging Face"; the row named beside each).
#: Only exact base checkpoints: a quantized or base (non-instruct) variant of a listed model is not listed there.
EAGLE3_HEADS: dict[str, str] = {
    "meta-llama/Llama-3.3-70B-Instruct": "yuhuili/EAGLE3-LLaMA3.3-Instruct-70B",    # row LLaMA-3.3-70B-Instruct
    "meta-llama/Llama-4-Scout-17B-16E-Instruct":
        "lmsys/sglang-EAGLE3-Llama-4-Scout-17B-16E-Instruct-v1",                    # row LLaMA-4-Scout-17B-16E-Instruct
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct":
        "lmsys/sglang-EAGLE3-Llama-4-Maverick-17B-128E-Instruct-v1",  # row LLaMA-4-Maverick-17B-128E-Instruct
    "Qwen/Qwen3-1.7B": "AngelSlim/Qwen3-1.7B_eagle3",                               # row Qwen3-1.7B
    "Qwen/Qwen3-8B": "Tengyunw/qwen3_8b_eagle3",                                    # row Qwen3-8B
    "Qwen/Qwen3-14B": "AngelSlim/Qwen3-14B_eagle3",                                 # row Qwen3-14B
    "Qwen/Qwen3-30B-A3B": "Tengyunw/qwen3_30b_moe_eagle3",                          # row Qwen3-30B-A3B
    "Qwen/Qwen3-32B": "AngelSlim/Qwen3-32B_eagle3",                                 # row Qwen3-32B
    "Qwen/Qwen3-235B-A22B": "nvidia/Qwen3-235B-A22B-Eagle3",                        # row Qwen3-235B-A22B
    "openai/gpt-oss-120b": "lmsys/EAGLE3-gpt-oss-120b-bf16",                        # row GPT-OSS-120B
}


def eagle3_head(hf_id: str) -> str | None:
    """The EAGLE-3 head `EAGLE3_HEADS` names for the checkpoint `hf_id` (a catalog model's ``hf_id``), else None."""
    return EAGLE3_HEADS.get(hf_id)


def _speculative_note(c: _Ctx) -> None:
    """The notes of the plan's ``speculative`` (once a deployment): the acceptance rates are the study's what-if,
    and an EAGLE draft's head: the catalogued EAGLE-3 head it launches (`EAGLE3_HEADS`), else exactly what replaces
    `EAGLE_HEAD` in this engine's command and under which method name."""
    spec = c.p.speculative
    notes = [f"speculative {spec.label}: the acceptance rates are the study's assumption (the engine logs the "
             f"measured ones); every worker drafts {spec.draft_tokens} tokens an iteration"]
    hf_id = c.p.model.hf_id
    if spec.method == "eagle" and (head := eagle3_head(hf_id)) is not None:
        notes.append(f"speculative method 'eagle': the EAGLE-3 head {head} (huggingface.co/{head}, listed for "
                     f"{hf_id} by the EAGLE authors) drafts; the study's acceptance rates are not that head's "
                     f"measured ones")
    elif spec.method == "eagle":
        head = (f"the local path or Hugging Face id of an EAGLE draft head trained on {hf_id}'s hidden states")
        what = {
            "vllm": f'the "model" of --speculative-config) by {head}: an EAGLE-1 head with "method": "eagle" as '
                    f'launched, an EAGLE-3 head with "method": "eagle3"',
            "sglang": f"--speculative-draft-model-path) by {head}: an EAGLE-1 head with --speculative-algorithm "
                      f"EAGLE as launched, an EAGLE-3 head with --speculative-algorithm EAGLE3",
            # EagleDecodingConfig.spec_dec_mode: EAGLE3 (or EAGLE3_ONE_MODEL) on the PyTorch backend
            "trtllm": f"speculative_config.speculative_model of the LLM API options YAML) by {head} of the "
                      f"EAGLE-3 kind (decoding_type Eagle runs it as EAGLE-3, as Eagle3 does; an EAGLE-1 head does "
                      f"not load)",
        }[c.engine]
        notes.append(f"speculative method 'eagle': the catalog names no EAGLE head for {hf_id}; replace {EAGLE_HEAD} "
                     f"({what}")
    for n in notes:
        if n not in c.notes:
            c.notes.append(n)


def _speculative_args(c: _Ctx) -> list[Any]:
    """vLLM's / SGLang's flags that run the plan's ``speculative`` (none where off; a chain of k drafted tokens,
    as the cost model prices it), checked against the release's flag list:

    - vLLM: --speculative-config, JSON of ``SpeculativeConfig`` fields (vllm/config/speculative.py @
      002e77c1f0ef9b19cff8b9e21cfbd6feb3d6b443): ``method`` "mtp" (the generic of its MTPModelTypes: the model's own
      module, from the served checkpoint), "eagle3" with ``model`` the catalogued EAGLE-3 head (`EAGLE3_HEADS`) or
      "eagle" with ``model`` `EAGLE_HEAD` (EagleModelTypes: "eagle", "eagle3"), and ``num_speculative_tokens`` k.
    - SGLang: --speculative-algorithm NEXTN (the model's MTP module; ``ServerArgs`` turns it into EAGLE, "NEXTN shares
      the same implementation of EAGLE"), EAGLE3 (a catalogued head) or EAGLE, --speculative-num-steps k,
      --speculative-eagle-topk 1 (a chain), --speculative-num-draft-tokens k + 1 (what it sets itself at top-k 1,
      "adjusted to speculative_num_steps + 1 when speculative_eagle_topk == 1") and --speculative-draft-model-path:
      the served checkpoint for NEXTN (which ``ServerArgs`` fills itself only for the DeepSeek / GLM-4 MoE / Bailing
      architectures), the head for EAGLE3 / EAGLE (python/sglang/srt/server_args.py
      ``_handle_speculative_decoding``, where EAGLE3 runs the EAGLE worker as EAGLE does)."""
    spec = c.p.speculative
    if spec is None:
        return []
    _speculative_note(c)
    k, mtp = spec.draft_tokens, spec.method == "mtp"
    head = None if mtp else eagle3_head(c.p.model.hf_id)
    what = f"speculative={spec.label!r}"
    if c.engine == "vllm":
        c.need("serve", "--speculative-config", what)
        cfg: dict[str, Any] = {"method": "mtp" if mtp else "eagle" if head is None else "eagle3",
                               "num_speculative_tokens": k}
        if not mtp:
            cfg["model"] = EAGLE_HEAD if head is None else head
        return ["--speculative-config", json.dumps(cfg, separators=(",", ":"))]
    for flag in ("--speculative-algorithm", "--speculative-num-steps", "--speculative-eagle-topk",
                 "--speculative-num-draft-tokens", "--speculative-draft-model-path"):
        c.need("serve", flag, what)
    algo = c.choice("serve", "--speculative-algorithm", "NEXTN" if mtp else "EAGLE" if head is None else "EAGLE3",
                    what)
    return ["--speculative-algorithm", algo, "--speculative-num-steps", k, "--speculative-eagle-topk", 1,
            "--speculative-num-draft-tokens", k + 1, "--speculative-draft-model-path",
            served_checkpoint(c.p, c.engine)[0] if mtp else EAGLE_HEAD if head is None else head]


def _trtllm_speculative(c: _Ctx) -> dict[str, Any] | None:
    """TensorRT-LLM's ``speculative_config`` of the plan's ``speculative`` in the LLM API options (None where off):
    ``decoding_type`` MTP (``MTPDecodingConfig``, the model's own module; its ``num_nextn_predict_layers`` is
    deprecated there for ``max_draft_len``), Eagle3 (``Eagle3DecodingConfig``, an ``EagleDecodingConfig`` of that
    name) with ``speculative_model`` the catalogued EAGLE-3 head (`EAGLE3_HEADS`), or Eagle with `EAGLE_HEAD`
    (``EagleDecodingConfig``, which needs ``speculative_model``, the head), ``max_draft_len`` k
    (``DecodingBaseConfig``; tensorrt_llm/llmapi/llm_args.py @ 0004396720054fd8e205cbf616f21f0b57c6b412, the
    shipped list's)."""
    spec = c.p.speculative
    if spec is None:
        return None
    _speculative_note(c)
    y = c.lists["trtllm"].yaml.get("extra_llm_api_options", {})
    head = None if spec.method == "mtp" else eagle3_head(c.p.model.hf_id)
    kind = "MTP" if spec.method == "mtp" else "Eagle" if head is None else "Eagle3"
    out: dict[str, Any] = {"decoding_type": kind, "max_draft_len": spec.draft_tokens}
    if kind != "MTP":
        out["speculative_model"] = EAGLE_HEAD if head is None else head
    if ("speculative_config" not in y.get("keys", []) or kind not in y.get("speculative_config.decoding_type", [])
            or any(k not in y.get("speculative_config", []) for k in out)):
        raise DeployError(f"trtllm {c.lists['trtllm'].version} cannot run speculative={spec.label!r}: its recorded "
                          f"LLM API options have no speculative_config {sorted(out)} of decoding_type {kind}")
    return out


def _vllm_serve(c: _Ctx, port: int, role: str, replica: int) -> Command:
    p = c.p
    argv: list[Any] = ["vllm", "serve", served_checkpoint(p, c.engine)[0], "--host", "0.0.0.0", "--port", port,
                       "--tensor-parallel-size", p.tp, "--pipeline-parallel-size", p.pp]
    if c.served_name:
        argv += ["--served-model-name", c.served_name]
    if p.attn_dp > 1:
        argv += ["--data-parallel-size", p.attn_dp]
    if p.ep > 1:
        argv += ["--enable-expert-parallel"]
    if (r := _balancer(p)) is not None:
        argv += ["--enable-eplb"]
        if r:
            argv += ["--eplb-config", json.dumps({"num_redundant_experts": r}, separators=(",", ":"))]
    if p.max_num_tokens < p.max_batch_size:   # SchedulerConfig.verify_max_model_len refuses it at start-up
        raise DeployError(f"vllm {c.version} cannot run max_num_tokens={p.max_num_tokens} with max_batch_size="
                          f"{p.max_batch_size}: its --max-num-batched-tokens must be >= --max-num-seqs "
                          f"(vllm/config/scheduler.py); use max_num_tokens >= {p.max_batch_size}")
    argv += ["--max-num-seqs", p.max_batch_size, "--max-num-batched-tokens", p.max_num_tokens]
    chunked = p.chunked_prefill if p.mode == "agg" else role == "decode"
    max_len = c.max_len
    if not chunked and not max_len and not 0 < p.model.max_position <= p.max_num_tokens:
        # without chunking vLLM refuses a maximum model length above --max-num-batched-tokens
        # (SchedulerConfig.verify_max_model_len); with no longest request known it would be the model's context
        max_len = p.max_num_tokens
        c.notes.append(f"vllm without chunked prefill{' (the prefill workers)' if p.mode == 'disagg' else ''}: "
                       f"--max-model-len {max_len}, the token budget (max_num_tokens), since vLLM refuses a longer "
                       f"maximum model length without chunking; the workload names no longest request")
    if max_len:
        if not chunked and p.max_num_tokens < max_len:
            raise DeployError(f"vllm {c.version} cannot run chunked_prefill=False with max_num_tokens="
                              f"{p.max_num_tokens}: without chunking it needs max_num_tokens >= the longest request "
                              f"({max_len} tokens of input and output)")
        argv += ["--max-model-len", max_len]
    argv += ["--enable-chunked-prefill" if chunked else "--no-enable-chunked-prefill"]
    argv += _prefix_cache_args(c)
    argv += _kv_quant_args(c, replica)
    argv += _speculative_args(c)
    nixl: dict[str, str] = {}
    if role in ("prefill", "decode"):
        argv += ["--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"},
                                                     separators=(",", ":"))]
        # each worker's NIXL handshake listener binds VLLM_NIXL_SIDE_CHANNEL_PORT + its data-parallel index
        # (vllm/distributed/kv_transfer/kv_connector/v1/nixl/base_scheduler.py; vllm/envs.py, default 5600):
        # workers sharing a host need ranges of their own
        nixl = {"VLLM_NIXL_SIDE_CHANNEL_PORT": str(NIXL_SIDE_CHANNEL_PORT + replica * c.dp_stride)}
    flags, env = _moe_act_setting(c)
    xflags, xenv = _moe_a2a_setting(c, role)
    return c.command(role, "serve", argv + flags + xflags, {**c.devices(replica), **nixl, **env, **xenv})


#: vLLM's default VLLM_NIXL_SIDE_CHANNEL_PORT (vllm/envs.py), the first disaggregated worker's
NIXL_SIDE_CHANNEL_PORT = 5600


def _prefix_cache_args(c: _Ctx) -> list[Any]:
    """vLLM's / SGLang's switch that turns the prefix cache off where the plan has ``prefix_caching=False`` (on is
    both engines' default: nothing to add); checked against the engine's flag list."""
    if c.p.prefix_caching:
        return []
    what = "prefix_caching=False"
    if c.engine == "vllm":
        fl, program = c.fl("serve")
        if not fl.flags(program).get("--enable-prefix-caching", {}).get("negatable"):
            raise DeployError(f"vllm {fl.version} cannot run {what}: its `{program}` has no --no-enable-prefix-caching")
        return ["--no-enable-prefix-caching"]
    c.need("serve", "--disable-radix-cache", what)
    return ["--disable-radix-cache"]


def _kv_quant_args(c: _Ctx, replica: int) -> list[Any]:
    """--kv-cache-dtype and --quantization, spelled alike by vLLM and SGLang (notes only once, on replica 0)."""
    argv: list[Any] = []
    kv = _kv_value(c)
    if kv and kv != "auto":
        argv += ["--kv-cache-dtype", c.choice("serve", "--kv-cache-dtype", kv, f"kv_dtype={c.p.kv_dtype!r}")]
    q = _quant_value(c) if replica == 0 else _quant_flag(c, _served(c.p, c.engine)[2])
    if q:
        argv += ["--quantization", q]
    return argv


def _sglang_serve(c: _Ctx, port: int, role: str, replica: int) -> Command:
    p = c.p
    argv: list[Any] = ["python", "-m", "sglang.launch_server", "--model-path", served_checkpoint(p, c.engine)[0],
                       "--host", "0.0.0.0",
                       "--port", port, "--tp-size", p.tp * p.attn_dp, "--pp-size", p.pp]
    if c.served_name:
        argv += ["--served-model-name", c.served_name]
    if p.attn_dp > 1:
        argv += ["--enable-dp-attention", "--dp-size", p.attn_dp]
    if p.ep > 1:
        argv += ["--ep-size", p.ep]
    if (r := _balancer(p)) is not None:
        argv += ["--enable-eplb"]
        if r:
            argv += ["--ep-num-redundant-experts", r]
    # max_batch_size and max_num_tokens are each attention-DP rank's; under --enable-dp-attention SGLang gives
    # each rank --max-running-requests // dp-size (ModelRunner) and --chunked-prefill-size // dp-size
    # (ServerArgs._handle_data_parallelism), so it is handed the deployment's total (--max-prefill-tokens is
    # each scheduler's own and -1, chunking off, stays -1)
    argv += ["--max-running-requests", p.max_batch_size * p.attn_dp]
    if c.max_len:
        argv += ["--context-length", c.max_len]
    if p.mode == "agg" and p.chunked_prefill:
        argv += ["--chunked-prefill-size", p.max_num_tokens * p.attn_dp]
    else:
        argv += ["--chunked-prefill-size", -1, "--max-prefill-tokens", p.max_num_tokens]
    argv += _prefix_cache_args(c)
    argv += _kv_quant_args(c, replica)
    argv += _speculative_args(c)
    if role in ("prefill", "decode"):
        c.choice("serve", "--disaggregation-mode", role, "disaggregated serving")
        argv += ["--disaggregation-mode", role, "--disaggregation-transfer-backend",
                 c.choice("serve", "--disaggregation-transfer-backend", "nixl", "a NIXL KV transfer")]
        if role == "prefill":
            argv += ["--disaggregation-bootstrap-port", _bootstrap_port(c, replica)]
    flags, env = _moe_act_setting(c)
    xflags, xenv = _moe_a2a_setting(c, role)
    return c.command(role, "serve", argv + flags + xflags, {**c.devices(replica), **env, **xenv})


def _bootstrap_port(c: _Ctx, replica: int) -> int:
    return c.base_port + 1000 + replica


def _trtllm_options(c: _Ctx, role: str) -> dict[str, Any]:
    """The --extra_llm_api_options YAML of one worker: what trtllm-serve has no flag for."""
    p = c.p
    opts: dict[str, Any] = {}
    if p.attn_dp > 1:
        opts["enable_attention_dp"] = True
        if p.adp_balance:     # AttentionDpConfig, its default iterations spelled out (`inference.lockstep`)
            opts["attention_dp_config"] = {"enable_balance": True,
                                           "batching_wait_iters": TRTLLM_BATCHING_WAIT_ITERS,
                                           "timeout_iters": TRTLLM_TIMEOUT_ITERS}
    if (p.chunked_prefill and p.mode == "agg") or role == "decode":
        # the LLM API field every release reads (BaseLlmArgs.enable_chunked_prefill): trtllm-serve's
        # --enable_chunked_prefill is newer than TensorRT-LLM 1.1.0 (absent from its documented options)
        opts["enable_chunked_prefill"] = True
    kv = _kv_value(c)
    kvc: dict[str, Any] = {"free_gpu_memory_fraction": 0.9}
    if kv:
        kvc["dtype"] = kv
    if not p.prefix_caching:                  # block reuse is on by default (KvCacheConfig.enable_block_reuse)
        kvc["enable_block_reuse"] = False
    opts["kv_cache_config"] = kvc
    y = c.lists["trtllm"].yaml.get("extra_llm_api_options", {})
    if (r := _balancer(p)) is not None:
        slots = p.model.n_experts + r
        if ("moe_config" not in y.get("keys", []) or "load_balancer" not in y.get("moe_config", [])
                or "num_slots" not in y.get("moe_config.load_balancer", [])):
            if not r:
                raise DeployError(f"trtllm {c.lists['trtllm'].version} cannot run eplb=True (ep={p.ep}): its recorded "
                                  f"LLM API options have no MoE load balancer (moe_config.load_balancer.num_slots)")
            group = p.tp * p.attn_dp
            valid = valid_ep_sizes(p.model.n_experts, group, dividing_experts=True)
            raise DeployError(f"trtllm {c.lists['trtllm'].version} cannot run ep={p.ep} on the {p.model.n_experts} "
                              f"experts of {p.model.name}: it needs the MoE load balancer's {slots} expert slots "
                              f"(moe_config.load_balancer.num_slots), which its recorded LLM API options do not "
                              f"have; ep dividing the experts and tp x attn_dp = {group}: {valid}")
        # online balancing (TensorRT-LLM's wide-EP example): with the default 0 updates per iteration the balancer
        # keeps a static placement, which without initial_global_assignments balances nothing
        lb: dict[str, int] = {"num_slots": slots}
        if "layer_updates_per_iter" in y.get("moe_config.load_balancer", []):
            lb["layer_updates_per_iter"] = 1
        opts["moe_config"] = {"load_balancer": lb}
    if (sp := _trtllm_speculative(c)) is not None:
        opts["speculative_config"] = sp
    if role in ("prefill", "decode"):
        opts["cache_transceiver_config"] = {"backend": "DEFAULT"}
        if role == "prefill":
            opts["disable_overlap_scheduler"] = True
    unknown = [k for k in opts if k not in y.get("keys", [])] + \
              [f"kv_cache_config.{k}" for k in kvc if k not in y.get("kv_cache_config", [])] + \
              [f"attention_dp_config.{k}" for k in opts.get("attention_dp_config", {})
               if k not in y.get("attention_dp_config", [])]
    if unknown:
        raise DeployError(f"trtllm {c.lists['trtllm'].version} LLM API options have no {unknown}")
    return opts


def _trtllm_serve(c: _Ctx, port: int, role: str, replica: int, yaml_name: str) -> Command:
    p = c.p
    argv: list[Any] = ["trtllm-serve", served_checkpoint(p, c.engine)[0], "--host", "0.0.0.0", "--port", port, "--backend", "pytorch",
                       "--tp_size", p.tp * p.attn_dp, "--pp_size", p.pp]
    if p.ep > 1:
        argv += ["--ep_size", p.ep]
    if c.max_len:
        argv += ["--max_seq_len", c.max_len]
    argv += ["--max_batch_size", p.max_batch_size, "--max_num_tokens", p.max_num_tokens,
             "--kv_cache_free_gpu_memory_fraction", 0.9]
    if replica == 0:
        _quant_value(c)
    argv += ["--extra_llm_api_options", yaml_name]
    flags, env = _moe_act_setting(c)
    xflags, xenv = _moe_a2a_setting(c, role)
    return c.command(role, "serve", argv + flags + xflags, {**c.devices(replica), **env, **xenv})


def _across_hosts(c: _Ctx, cmd: Command, replica: int) -> list[Command]:
    """The commands that start worker ``replica`` (``cmd``: its one-host command) on the hosts it spans: itself
    where its tp x pp x attn_dp GPUs fit one host (`_Ctx.gpus_per_node`), else each engine's multi-node launch over
    k = GPUs / host size hosts, named ``node-<i>`` (placeholders for their addresses; the first holds rank 0, the
    HTTP server and the rendezvous). DeployError where the worker does not fill whole hosts or the engine cannot
    split it so. Flags checked against the release's list; where each engine documents the launch:

    - vLLM, tensor / pipeline parallel over nodes: the multiprocessing executor with ``--nnodes --node-rank
      --master-addr --master-port`` on every node and ``--headless`` (no API server) past node 0
      (vllm/config/parallel.py ``ParallelConfig.nnodes`` / ``node_rank`` / ``master_addr``, "multi-node distributed
      inference when distributed_executor_backend is mp", @ 00193b82b0e2d4faea5d3b4ea4f6c4c2bd9d057a; flags in the
      0.14.0 and 0.24.0 lists). Attention data parallel: vLLM's data-parallel deployment over nodes, whole DP ranks
      per node, ``--data-parallel-size-local --data-parallel-address --data-parallel-rpc-port`` and past node 0
      ``--data-parallel-start-rank --headless`` (docs/serving/data_parallel_deployment.md; ``ParallelConfig
      .data_parallel_size_local``, ibid.).
    - SGLang: the same command on every node with ``--nnodes --node-rank --dist-init-addr HOST:PORT``
      (python/sglang/srt/server_args.py ``nnodes``, ``node_rank``, ``dist_init_addr``; in the 0.5.10 and 0.5.14
      lists); node 0 serves HTTP.
    - TensorRT-LLM: one MPI job over the hosts, ``mpirun -np GPUS -H host:slots,... trtllm-llmapi-launch
      trtllm-serve ...`` (docs/source/commands/trtllm-serve/trtllm-serve.rst, multi-node serving through
      trtllm-llmapi-launch under mpirun or srun) with ``--gpus_per_node`` (tensorrt_llm/commands/serve.py
      ``get_llm_args``: its default is the launching node's device_count(), @
      00209af149e7774406881a37283dce303571eb11, the shipped list's commit); rank 0, on the first host, serves HTTP.
      The environment reaches every rank through ``-x NAME``.
    """
    p = c.p
    n, per = p.gpus_per_replica, c.gpus_per_node
    if n <= per:
        return [cmd]
    layout = f"tp={p.tp} x pp={p.pp} x attn_dp={p.attn_dp}"
    if n % per:
        raise DeployError(f"a {p.gpu.name} worker of {n} GPUs ({layout}) spans {per}-GPU hosts without filling them: "
                          f"the engines split a worker's ranks evenly over its hosts, so it needs a multiple of {per} "
                          f"GPUs (catalog.gpus_per_host({p.gpu.name!r}) = {per})")
    k = n // per
    offset = c.offsets[replica] if c.offsets else replica * n
    first = -(-offset // per)                           # the worker starts on a fresh host
    hosts = [f"{c.node_prefix}{first + r}" for r in range(k)]
    what = f"a worker of {n} GPUs ({layout}) over {k} {per}-GPU hosts"
    port = c.base_port + 2000 + replica                 # its rendezvous port on its first host
    env = {key: v for key, v in cmd.env.items() if key != device_env(p.gpu)}
    if c.engine == "trtllm":
        c.need("serve", "--gpus_per_node", what)
        launcher: list[str] = ["mpirun", "-np", str(n), "-H", ",".join(f"{h}:{per}" for h in hosts)]
        for key in env:
            launcher += ["-x", key]
        return [dataclasses.replace(cmd, argv=(*cmd.argv, "--gpus_per_node", str(per)), env=env,
                                    launcher=(*launcher, "trtllm-llmapi-launch"), node=hosts[0])]
    env[device_env(p.gpu)] = ",".join(str(i) for i in range(per))
    out = []
    for r, host in enumerate(hosts):
        if c.engine == "sglang":
            for flag in ("--nnodes", "--node-rank", "--dist-init-addr"):
                c.need("serve", flag, what)
            extra: list[Any] = ["--nnodes", k, "--node-rank", r, "--dist-init-addr", f"{hosts[0]}:{port}"]
        elif p.attn_dp > 1:
            rank = p.tp * p.pp
            if per % rank:
                raise DeployError(f"vllm cannot run {what}: its data-parallel deployment over nodes places whole "
                                  f"data-parallel ranks on each host, and a data-parallel rank (tp x pp = {rank} GPUs) "
                                  f"does not fit a {per}-GPU host; use tp x pp dividing {per}, or sglang / trtllm")
            local = per // rank
            for flag in ("--data-parallel-size-local", "--data-parallel-address", "--data-parallel-rpc-port",
                         "--data-parallel-start-rank", "--headless"):
                c.need("serve", flag, what)
            extra = ["--data-parallel-size-local", local, "--data-parallel-address", hosts[0],
                     "--data-parallel-rpc-port", port]
            if r:
                extra += ["--data-parallel-start-rank", r * local, "--headless"]
        else:
            for flag in ("--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless"):
                c.need("serve", flag, what)
            extra = ["--distributed-executor-backend", c.choice("serve", "--distributed-executor-backend", "mp", what),
                     "--nnodes", k, "--node-rank", r, "--master-addr", hosts[0], "--master-port", port]
            if r:
                extra += ["--headless"]
        argv = list(cmd.argv)
        if c.engine == "vllm" and p.attn_dp > 1:          # right after --data-parallel-size, as vLLM's docs write it
            i = argv.index("--data-parallel-size") + 2
            argv[i:i] = [str(x) for x in extra[:6]]
            argv += [str(x) for x in extra[6:]]
        else:
            argv += [str(x) for x in extra]
        out.append(dataclasses.replace(cmd, argv=tuple(argv), env=dict(env), node=host))
    return out


def _yaml(d: Mapping[str, Any], indent: int = 0) -> str:
    """A small YAML writer for nested mappings of scalars and lists of scalars (what the engines' configs need)."""
    pad = "  " * indent
    out = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.append(f"{pad}{k}:")
            out.append(_yaml(v, indent + 1).rstrip("\n"))
        elif isinstance(v, (list, tuple)):
            out.append(f"{pad}{k}:")
            out += [f"{pad}  - {_scalar(x)}" for x in v]
        else:
            out.append(f"{pad}{k}: {_scalar(v)}")
    return "\n".join(out) + "\n"


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    return json.dumps(s) if (not s or any(ch in s for ch in ":#{}[],&*!|>'\"%@`") or s.strip() != s) else s


def build(p: Plan, engine: str, version: str, lists: dict[str, FlagList], notes: list[str], *,
          host: str = "localhost", base_port: int = 8000, max_len: int | None = None
          ) -> tuple[list[Command], Command | None, dict[str, str]]:
    """Servers, router and files of plan ``p`` on ``engine`` (flag lists ``lists``); ``max_len``: the longest
    request in tokens (the engines' maximum model length). ``p`` is planned for ``engine`` (`plan(config, model,
    engine)`): a missing ``kv_dtype`` is the KV cache the study priced on that engine (`_study_kv`)."""
    c = _Ctx(p, engine, version, lists, notes, host=host, base_port=base_port, max_len=max_len,
             dp_stride=max(p.attn_dp, p.pool("prefill").attn_dp))
    if p.mode == "disagg" and served_checkpoint(p.pool("prefill"), engine)[0] != served_checkpoint(p, engine)[0]:
        # the pools serve different checkpoints (the prefill pool's own format): one API name for both, the one
        # the benchmark sends (`served_name`)
        if engine == "trtllm":
            # trtllm-serve has no served-model-name option (its recorded flags,
            # objectives/data/engine_flags/trtllm-main-*.json): each worker answers to its checkpoint's path
            notes.append(f"the prefill pool serves {served_checkpoint(p.pool('prefill'), engine)[0]} and the "
                         f"decode pool {served_checkpoint(p, engine)[0]}: trtllm-serve has no served-model-name "
                         "option, so requests naming the decode pool's model may be refused by the prefill "
                         "workers; serve both pools from one checkpoint path")
        else:
            c.served_name = served_name(p, engine)
    files: dict[str, str] = {}
    servers: list[Command] = []
    roles = (["prefill"] * p.prefill_replicas + ["decode"] * (p.dp - p.prefill_replicas)) if p.mode == "disagg" \
        else ["serve"] * p.dp
    ports = [base_port + 1 + i for i in range(p.dp)] if (p.dp > 1 or p.mode == "disagg") else [base_port]
    # each worker on its pool's plan (a prefill worker of a disaggregated deployment: its own GPU, TP, EP, attention
    # DP), checked and spelled with that pool's EP / attention-DP flags
    sizes = [p.pool(r).gpus_per_replica for r in roles]
    # pools of different GPU types run on different machines: each numbers its GPUs from its own first node
    types = [p.pool(r).gpu.name for r in roles]
    c.offsets = [sum(n for n, g in zip(sizes[:i], types[:i], strict=True) if g == types[i]) for i in range(len(roles))]
    per_type = {g: sum(n for n, t in zip(sizes, types, strict=True) if t == g) for g in dict.fromkeys(types)}
    # hosts of a worker spanning hosts, named per GPU type where pools run on machines of different types
    ctx = {r: dataclasses.replace(c, p=p.pool(r), node_prefix=f"{p.pool(r).gpu.name}-node-" if len(per_type) > 1
                                  else "node-") for r in dict.fromkeys(roles)}
    for r in ctx.values():
        _check_parallel(r)
    if p.adp_balance and c.engine not in ADP_BALANCE_ENGINES:
        raise DeployError(f"adp_balance=True: {c.engine} has no attention-DP balance (TensorRT-LLM's "
                          f"attention_dp_config.enable_balance); leave it False for {c.engine}")
    if p.adp_balance and all(r.p.attn_dp == 1 for r in ctx.values()):
        raise DeployError("adp_balance=True balances the prompts of attention-DP ranks: no worker runs attention "
                          "DP (attn_dp=1)")
    if p.eplb and all(r.p.ep == 1 for r in ctx.values()):
        notes.append("eplb=True: no worker runs expert parallelism (ep=1), so no expert-parallel load balancer is "
                     "launched (the study's cost model ignores eplb there too)")
    for i, (role, port) in enumerate(zip(roles, ports, strict=True)):
        rc = ctx[role]
        if engine == "vllm":
            cmd = _vllm_serve(rc, port, role, i)
        elif engine == "sglang":
            cmd = _sglang_serve(rc, port, role, i)
        else:
            name = f"{'ctx' if role == 'prefill' else 'gen' if role == 'decode' else 'serve'}_options.yaml"
            cmd = _trtllm_serve(rc, port, role, i, name)   # first: a format it cannot run is the first refusal
            if name not in files:
                files[name] = _yaml(_trtllm_options(rc, role))
        servers += _across_hosts(rc, cmd, i)
    wide = [(n, ctx[r].gpus_per_node) for n, r in zip(sizes, roles, strict=True) if n > ctx[r].gpus_per_node]
    if wide:
        n, per_host = max(wide)
        how = "one mpirun over its hosts (from the first)" if engine == "trtllm" else \
            "one command on each of its hosts (node rank 0 first)"
        notes.append(f"a worker of {n} GPUs spans {n // per_host} hosts of {per_host} GPUs: {engine}'s multi-node "
                     f"launch, {how}; replace node-0, node-1, ... by the hosts' addresses, and {host} in the router's "
                     f"URLs by each worker's first host")
    elif len(per_type) > 1:
        counts = " and ".join(f"{n} {g} GPUs" for g, n in per_type.items())
        notes.append(f"{counts}: each pool on machines of its own GPU type (each numbers its GPUs from 0); start "
                     f"each worker on its node and replace {host} in the router's URLs")
    elif sum(sizes) > c.gpus_per_node:
        notes.append(f"{sum(sizes)} GPUs in all: more than one {c.gpus_per_node}-GPU node; start each "
                     f"replica on its own node and replace {host} in the router's URLs")
    if engine == "vllm" and p.mode == "disagg" and (wide or len(per_type) > 1 or sum(sizes) > c.gpus_per_node):
        # the NIXL handshake listener binds VLLM_NIXL_SIDE_CHANNEL_HOST, "localhost" by default (vllm/envs.py)
        notes.append("disaggregated workers on several hosts: set VLLM_NIXL_SIDE_CHANNEL_HOST to each worker's "
                     "host address (vLLM's default, localhost, is unreachable from the other hosts' workers)")
    router = None
    urls = [f"http://{host}:{port}" for port in ports]
    if p.mode == "disagg":
        pre = [(u, i) for i, (u, r) in enumerate(zip(urls, roles, strict=True)) if r == "prefill"]
        dec = [u for u, r in zip(urls, roles, strict=True) if r == "decode"]
        if engine == "vllm":
            argv: list[Any] = ["vllm-router", "--host", "0.0.0.0", "--port", base_port, "--vllm-pd-disaggregation"]
            for u, _ in pre:
                argv += ["--prefill", u]
            for u in dec:
                argv += ["--decode", u]
            router = c.command("router", "router", argv)
        elif engine == "sglang":
            argv = ["python", "-m", "sglang_router.launch_router", "--host", "0.0.0.0", "--port", base_port,
                    "--pd-disaggregation"]
            for u, i in pre:
                argv += ["--prefill", u, _bootstrap_port(c, i)]
            for u in dec:
                argv += ["--decode", u]
            router = c.command("router", "router", argv)
        else:
            servers_of = lambda role: [f"{host}:{port}" for port, r in zip(ports, roles, strict=True) if r == role]  # noqa: E731
            y = c.lists["trtllm"].yaml.get("disaggregated", {})
            ctx_servers = {"num_instances": p.prefill_replicas, "urls": servers_of("prefill")}
            cfg: dict[str, Any] = {"hostname": "0.0.0.0", "port": base_port, "backend": "pytorch",
                   "context_servers": ctx_servers,
                   "generation_servers": {"num_instances": p.dp - p.prefill_replicas, "urls": servers_of("decode")}}
            unknown = [k for k in cfg if k not in y.get("keys", [])] + \
                      [k for k in ctx_servers if k not in y.get("servers", [])]
            if unknown:
                raise DeployError(f"trtllm {c.lists['trtllm'].version} disaggregated config has no {unknown}")
            files["disagg_config.yaml"] = _yaml(cfg)
            router = c.command("router", "router", ["trtllm-serve", "disaggregated", "-c", "disagg_config.yaml"])
    elif p.dp > 1:
        if engine == "vllm":
            router = c.command("router", "router", ["vllm-router", "--host", "0.0.0.0", "--port", base_port,
                                                    "--worker-urls", *urls])
        elif engine == "sglang":
            router = c.command("router", "router", ["python", "-m", "sglang_router.launch_router", "--host",
                                                    "0.0.0.0", "--port", base_port, "--worker-urls", *urls])
        else:
            notes.append(f"{p.dp} replicas: trtllm-serve has no plain load balancer; put any HTTP load balancer "
                         f"over {', '.join(urls)} (or benchmark one replica at 1/{p.dp} of the load)")
    return servers, router, files
