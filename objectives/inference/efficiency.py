"""Named efficiency factors of the analytical inference model.

Every factor has a name, a physical meaning and (after `python -m objectives.calibration fit`) a fitted value in
`objectives/data/efficiency.json`. The defaults below are hand-set starting points used when that file is absent.

Factors (families: ampere, ada, hopper, blackwell, blackwell-ultra, blackwell-rtx, cdna3, cdna4, gaudi3, xe2; compute
precisions: bf16, fp8, fp4, int8, tf32; links: nvlink, xgmi, pcie, roce):

- ``gemm_eff[family][prec]``: fraction of the datasheet dense peak a large GEMM reaches (fp8/fp4 well below peak).
- ``gemm_m_half[family]``: tokens per GEMM (M) at which the GEMM reaches half of ``gemm_eff``; the saturation curve is
  eff(M) = gemm_eff * M / (M + gemm_m_half) (small-M decode GEMMs are far below peak).
- ``moe_gemm_eff``: extra factor on grouped (MoE expert) GEMMs; tokens per expert drive their M-saturation.
- ``mem_eff[family]``: fraction of the datasheet HBM bandwidth reached when streaming weights.
- ``kv_read_eff[family]``: fraction of HBM bandwidth reached by decode attention reading the paged KV cache.
- ``attn_eff[family]``: fraction of the bf16 peak reached by causal FlashAttention-style prefill attention.
- ``dec_attn_eff[family]``: fraction of the bf16 peak reached by decode attention math (per cached token, per
  query head: GQA groups re-read their KV head; older kernels run on CUDA cores, far below tensor peak).
- ``ar_latency_us[link]``, ``ar_hop_us[link]``: all-reduce latency = ar_latency_us + ar_hop_us * (n - 1), in µs.
- ``ar_bw_eff[link]``: fraction of the per-direction link bandwidth a large ring all-reduce reaches.
- ``tp_eff_loss``: per-GPU kernel efficiency lost to narrower tensor-parallel shards: GEMM throughput and weight
  streaming bandwidth are divided by (1 + tp_eff_loss x log2(tp)).
- ``overhead_step_ms``: fixed host/runtime time per forward pass (scheduling, sampling launch), ms.
- ``overhead_layer_us``: per layer per forward pass (kernel launches not hidden by CUDA graphs), µs.
- ``overhead_seq_us``: per sequence per iteration (sampling, detokenize bookkeeping), µs.
- ``elementwise_passes``: activation tensors read+written per token per layer by norms, rotary, residuals (x hidden).
- ``int4_dequant_eff``: compute-efficiency factor of weight-only int4 GEMMs (dequantize in the main loop).
- ``kv_mem_fraction``: fraction of the memory left after weights and reserve that the engine gives the KV cache.
- ``runtime_reserve_gib``: memory held by the runtime (CUDA context, workspaces) per GPU, GiB.
- ``device_mem_usable``: share of the device memory the fraction-of-free rule (TensorRT-LLM and the roofline,
  `kv_pool`) starts from; the rest is lost beyond the priced terms to runtime buffers sized by the engine's limits
  rather than by the model (decoder state and logits for max_batch_size, CUDA-graph pools); fitted on the published
  tables.
- ``act_mem_scale``: activation-buffer bytes per token in flight, as a multiple of the analytical estimate.
- ``baseline_build_mem_eff``: for ``engine_profile="baseline"`` (an engine built with trtllm-build's default
  flags: no GEMM plugin, one optimization profile, no reduce fusion; the TensorRT-LLM 0.16 tuning guide's
  "Baseline"), the fraction of the standard weight-streaming rate its GEMMs reach; prefill (large-M,
  compute-bound) is unaffected, decode (weight-streaming) slows down. Fitted on the nine rows naming that build.
- ``tuned_build_fixed_eff``: for ``engine_profile="tuned"`` on the roofline (that guide's tuned flags: multiple
  profiles, GEMM plugin, paged context attention, reduce fusion), the factor on the per-forward fixed time
  (host/launch overhead, collective latencies). Hand-set, not fitted: the calibration predicts the rows of that
  build on TensorRT-LLM's measured profile (`calibration.predict.row_engines`), whose tables time the kernels
  those flags switch on; ``engine="trtllm"`` prices such a build.
- ``release_speed_step``: speed ratio of one TensorRT-LLM release over the one before, as the published tables of
  successive releases show it (the same configurations run faster in later releases' tables); the calibration
  predicts a trtllm-bench table of release r (0.13 on, `calibration.predict.TREND_FIRST_RELEASE`; the static-batch
  tables of 0.5-0.9 are another harness, off the trend) at ``release_speed_step ** (r - 16)`` times the fitted model's speed
  (`calibration.predict.release_speed`, `calibration.data.release_index`), so the other factors describe
  TensorRT-LLM 0.16. The model's own predictions do not use it. Fitted on the published tables.
- ``profile_gemm_scale[engine]``, ``profile_attn_scale``: factor from a measured kernel's isolated latency (the
  profile) to its time inside the engine's forward pass; ``profile_moe_eff``: a routed-expert grouped GEMM's
  efficiency relative to a dense GEMM of the same tokens per expert; ``profile_launch_us[engine]``: the part of
  each isolated kernel time (GEMM, all-reduce) that CUDA graphs and overlap hide inside the engine, µs.
- ``ttft_wave[engine]``: the share of a closed-loop run's requests in its start-up wave (all clients send at once,
  their prompts queue first come, first served; the later rounds' prompts arrive in clumps and queue in the
  budget: `inference.estimate._run_ttft_s`, `inference.lockstep.round_queue`): 1 / the requests each client
  sends, 1 / `lockstep.BENCHMARK_ROUNDS` by default (what the silicon runs hold), not fitted (it had been, 0.175,
  as a compensator for a steady state without the later rounds' queue: docs/profiles.md thirty-second round);
  1 replays fixed-length clients whose every round is a wave.
- ``engine_step_ms[engine]``, ``engine_seq_us[engine]``: host time per forward pass (scheduling, sampling, launch
  gaps between CUDA graphs) and per sequence per iteration, for rows costed from a profile;
  ``engine_ttft_ms[engine]``: host time of a served request before the engine schedules it (API server,
  tokenization), added to TTFT and end-to-end latency in `max_throughput`, the serving model (static batching
  too) and the simulator, not to `estimate`'s offline static batch; it holds no GPU slot (a closed loop's wait for
  one leaves it out); ``engine_stream_us[engine]``: the API server's host time per sequence it streams that a new
  request's first token waits behind, µs a sequence (vLLM's ``AsyncLLM.output_handler`` processes an iteration's
  outputs, detokenization included, and each stream's SSE chunk is formatted and written on the same asyncio loop
  that takes in new requests; SGLang's TokenizerManager, one a server, likewise): TTFT grows by it times the
  sequences the request's API server fronts, whatever the prompt's length. vLLM runs an API server a data-parallel
  rank, SGLang and TensorRT-LLM one a replica (`profiles.api_server_ranks`). The closed form and the serving model
  count every running sequence, prefilling ones too (`inference.estimate.host_ttft_s`); the simulator the streams,
  first token out and not finished, as the first token goes out (`serving.simulator.streams_at_first`): they
  agree within tests/objectives/serving/test_api_server_streams.py's tolerances (10 % in a closed loop with more
  clients than slots, 30 % in the open loop); 0, not fitted: fitted on the silicon slice it did not carry from
  one model to another (`calibration.silicon._factor_specs` says why);
  ``attn_ttft_ms[kind]``: what a request of a model with linear or sparse (DSA) attention
  layers adds before its first token on a profile row (ms; 0 for other models). The linear kind's is a Triton
  compile: SGLang's and TensorRT-LLM's Gated DeltaNet / KDA prefill specializes FLA's L2-norm kernel on the
  forward's token count, so a prompt forward of a count not met before compiles it inline
  (`profiles.JIT_PREFILL_KINDS`; not on vLLM, not for Mamba-2); fitted on the silicon slice's SGLang Qwen3.5 rows
  (SGLang's API server then shares vLLM's, as TensorRT-LLM's does: an API server's path does not depend on the
  attention kind), its default the engine sources' compile time (100 ms: ~90 ms a compile in sgl-project/sglang#23448,
  the longest of the bursts in #30403 ~110 ms) and the fit's log-prior centre, so a fit without such rows (the fold
  that holds out Qwen3.5) keeps a compile rather than 0. The sparse kind's, paid on any engine, is not fitted (0: the DSA prefill module prices it); ``profile_layer_us``: time per layer per forward of the small kernels the profile's tables
  do not hold (norms, rotary embedding, KV-cache write, activation), µs, every layer, per engine (the silicon
  fit shares one value among vLLM, SGLang and TensorRT-LLM; `torch`'s is its own unfused layer's);
  ``profile_moe_layer_us``: what an MoE layer adds to it (router GEMM, top-k selection, the experts' input
  quantization: the fused-MoE tables time the experts from given routing), µs. The silicon fit's rows are MoE
  models, which see the sum; the dense part is pinned by the published dense decode steps
  (`calibration.silicon.dense_anchors`).
- ``profile_moe_scale[engine]``: the engine's fused-MoE layer in the engine vs its kernel table's measurement of
  it (the `moe.<format>` tables of `inference.measured.MOE_SCALE_FORMATS`, NVFP4; 1: as measured), fitted only for
  the engines in `calibration.silicon.MOE_SCALE_ENGINES` (see there); unfitted, `MOE_SCALE_PRIOR` (TensorRT-LLM:
  its tables' faster NVFP4 kernel over the one they price) or 1.
- ``engine_kv_gbs[engine]``: GB/s per GPU at which the engine's KV connector moves a prompt's KV cache from a
  prefill worker to a decode worker in a disaggregated deployment, when below the link's (a profile may set it;
  the silicon fit does not, its rows' two prompt lengths leave it unidentified): vLLM's NixlConnector has each decode TP rank post one NIXL READ of one descriptor per (layer,
  KV block) from its prefill rank and polls the transfers' state once per engine step
  (vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py: `_read_blocks`, `_get_block_descs_ids`,
  `_pop_done_transfers`), so many small reads rather than one stream at the link's rate; 0: not known (the link's
  bandwidth, `inference.comm.kv_transfer_gbs`). ``engine_kv_ms[engine]``: the connector's latency per request
  (ms) beside that rate, the alpha of the alpha-beta transfer model (metadata exchange, the read's setup and
  completion notices between the workers); fitted from the disaggregated rows; 0: not known.
- ``kv_reserve_output_frac``: fraction of a request's output length reserved in the KV cache at admission
  (1.0: TensorRT-LLM's guaranteed-no-evict policy reserves prompt + full output); fitted on the published tables
  (TensorRT-LLM and NIM builds), it holds for the roofline and for engines ``engine_kv_reserve`` does not list.
- ``engine_kv_reserve[engine]``: the same share for engines whose scheduler admits on the KV blocks a request holds
  now (not fitted: no measured row here is bound by KV capacity). vLLM 0.5: its scheduler admits a waiting request
  when the free blocks hold its prompt (vllm/v1/core/sched/scheduler.py, `kv_cache_manager.allocate_slots`) and
  preempts the newest running one when a decode step finds none, so under load the running requests hold their
  prompt plus on average half their output; where that bounds the batch below the clients, the engines listed here
  also pay the preemptions' recompute and requeue waits (`StepCoeffs.kv_preempt`, `admission.preemption_churn`).
  SGLang admits by its new-token ratio, not by a share of the output:
  its rows follow `inference.admission` whatever this table says of it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from objectives.profiles import engine_key

FAMILIES = ("ampere", "ada", "hopper", "blackwell", "blackwell-ultra", "blackwell-rtx", "cdna3", "cdna4", "gaudi3", "xe2")
PRECS = ("bf16", "fp8", "fp4", "int8", "tf32")
LINKS = ("nvlink", "xgmi", "pcie", "roce")

#: families without calibration data borrow the factors of the closest family: the fit writes the borrowed
#: values explicitly into efficiency.json (and says so in its meta). B300/GB300 (Blackwell Ultra) have no
#: published rows in the calibration set: they use the B200/GB200 (blackwell) factors on their own datasheet
#: peaks, bandwidth and memory. MI355X (cdna4) and Gaudi 3 have none either and use the cdna3 (MI300X) ones. The
#: RTX PRO 6000 (blackwell-rtx: GB202, SM 12.0, GDDR7 on PCIe) has none: it uses the blackwell factors, its tensor
#: cores' generation (the same 5th-generation FP4/FP8 data paths), on its own peaks, GDDR7 bandwidth and PCIe link;
#: its rows read the measured tables wherever they cover them, so these factors price only what they miss. Intel's
#: Arc Pro B60 (xe2: GDDR6 on PCIe) has none either: it uses the ada factors, those of the other GDDR6 PCIe cards
#: (L40S, L4), on its own peaks and bandwidth.
FAMILY_FALLBACK = {"blackwell-ultra": "blackwell", "blackwell-rtx": "blackwell", "cdna4": "cdna3", "gaudi3": "cdna3",
                   "xe2": "ada"}

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "efficiency.json"

#: the unfitted ``profile_moe_scale`` of an engine whose fused-MoE table times its default kernel where the engine
#: also ships a faster one for the format (the other engines: 1.0, their tables time the kernel they run): a fit
#: without rows of the engine keeps it. TensorRT-LLM's NVFP4 table prices CUTLASS (`profiles.build.MOE_OPT_IN`),
#: and its in-engine MoE, fitted on its only rows (Kimi-K2.5 on GB200), runs well below that table, about where its
#: other NVFP4 kernel, TRTLLM-gen (the tables' min-latency lane; vLLM's and SGLang's GB200 NVFP4 lanes time the
#: same kernel), runs. The prior is that kernel's time over CUTLASS's, the median over every cell both of the
#: engine's lanes time on GB200 and B200 (1.3.0rc20, power-law routing, 1-16k tokens;
#: `profiles.build.opt_in_moe_ratio`), rounded to two digits; docs/profiles.md twenty-sixth round
MOE_SCALE_PRIOR = {"trtllm": 0.57}


def _fam(v: float) -> dict[str, float]:
    return {f: v for f in FAMILIES}


def _default_params() -> dict[str, Any]:
    gemm = {f: {"bf16": 0.70, "fp8": 0.55, "fp4": 0.45, "int8": 0.60, "tf32": 0.60} for f in FAMILIES}
    return {
        "gemm_eff": gemm,
        "gemm_m_half": _fam(64.0),
        "moe_gemm_eff": 0.8,
        "mem_eff": _fam(0.80),
        "kv_read_eff": _fam(0.65),
        "attn_eff": _fam(0.45),
        "dec_attn_eff": _fam(0.2),
        # "roce" (the scale-out network between domains, `comm.Links`): fitted on DeepEP's internode kernels over
        # 2-8 HGX H100 nodes (`python -m objectives.calibration network`, objectives/calibration/network.py)
        "ar_latency_us": {"nvlink": 8.0, "xgmi": 12.0, "pcie": 15.0, "roce": 9.8},
        "ar_hop_us": {"nvlink": 1.0, "xgmi": 2.0, "pcie": 4.0, "roce": 0.86},
        "ar_bw_eff": {"nvlink": 0.7, "xgmi": 0.6, "pcie": 0.6, "roce": 0.81},
        "tp_eff_loss": 0.05,
        "overhead_step_ms": 0.3,
        "overhead_layer_us": 5.0,
        "overhead_seq_us": 1.0,
        "elementwise_passes": 12.0,
        "int4_dequant_eff": 0.85,
        "kv_mem_fraction": 0.9,
        "runtime_reserve_gib": 2.0,
        "device_mem_usable": 1.0,
        "act_mem_scale": 1.0,
        "kv_reserve_output_frac": 1.0,
        "engine_kv_reserve": {"vllm": 0.5},
        "baseline_build_mem_eff": 0.5,
        "tuned_build_fixed_eff": 0.8,
        "release_speed_step": 1.0,
        # measured kernel profiles (engine != "roofline"): in-engine time vs the isolated kernel measurement
        # `torch` (the collector's PyTorch kernels) is not fitted: its tables and a whole step
        # (objectives.profiles.reference_step) are both timed as CUDA-graph replays, so no host or launch time
        "profile_gemm_scale": {"vllm": 1.0, "sglang": 1.0, "trtllm": 1.0, "torch": 1.0},
        "profile_attn_scale": 1.0,
        "profile_moe_eff": 0.8,
        "profile_launch_us": {"vllm": 2.0, "sglang": 2.0, "trtllm": 2.0, "torch": 0.0},
        # 1 / lockstep.BENCHMARK_ROUNDS (lockstep imports this module through resolve)
        "ttft_wave": {"vllm": 0.1, "sglang": 0.1, "trtllm": 0.1, "torch": 1.0},
        "engine_step_ms": {"vllm": 1.0, "sglang": 1.0, "trtllm": 1.0, "torch": 0.0},
        "engine_seq_us": {"vllm": 2.0, "sglang": 2.0, "trtllm": 2.0, "torch": 0.0},
        "engine_ttft_ms": {"vllm": 0.0, "sglang": 0.0, "trtllm": 0.0, "torch": 0.0},
        # 0: no claim (not fitted: `calibration.silicon._factor_specs` says why)
        "engine_stream_us": {"vllm": 0.0, "sglang": 0.0, "trtllm": 0.0, "torch": 0.0},
        # linear: a Triton compile of FLA's L2-norm kernel, "~90 ms each on L20Y" (https://github.com/sgl-project/
        # sglang/pull/23448), the longest of the compile bursts under steady mixed load ~110 ms
        # (https://github.com/sgl-project/sglang/pull/30403): 100 ms, what a fit without linear-attention rows keeps
        "attn_ttft_ms": {"linear": 100.0, "sparse": 0.0},
        # torch: the collected H200 reference steps' unfused PyTorch layer (RMSNorm, rotary, cache write, SiLU x
        # up and residual adds as separate kernels), not an engine's fused ones: the decode steps at KV 1k run
        # 48 us per layer beyond the engines' 19 us (docs/profiles.md, "The GPU-collected H200 profile")
        "profile_layer_us": {"vllm": 10.0, "sglang": 10.0, "trtllm": 10.0, "torch": 67.0},
        "profile_moe_layer_us": 0.0,
        "profile_moe_scale": {"vllm": 1.0, "sglang": 1.0, "torch": 1.0, **MOE_SCALE_PRIOR},
        # 0: not known, the KV handoff runs at the link's bandwidth (see the module docstring)
        "engine_kv_gbs": {"vllm": 0.0, "sglang": 0.0, "trtllm": 0.0, "torch": 0.0},
        "engine_kv_ms": {"vllm": 0.0, "sglang": 0.0, "trtllm": 0.0, "torch": 0.0},
    }


@dataclass(frozen=True)
class Efficiency:
    """The efficiency factors as nested dicts (see module docstring); `meta` holds fit date and data description."""

    params: Mapping[str, Any]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    # -- vectorized lookups -------------------------------------------------------------------------------------
    def fam_table(self, name: str) -> np.ndarray:
        """Per-family factor as an array indexed by family code (FAMILIES order)."""
        d = self.params[name]
        return np.array([float(d.get(f, d.get(FAMILY_FALLBACK.get(f, "hopper"), np.nan))) for f in FAMILIES])

    def gemm_table(self) -> np.ndarray:
        """gemm_eff as a [family, prec] array."""
        g = self.params["gemm_eff"]
        out = np.empty((len(FAMILIES), len(PRECS)))
        for i, f in enumerate(FAMILIES):
            row = g.get(f) or g[FAMILY_FALLBACK.get(f, "hopper")]
            for j, p in enumerate(PRECS):
                out[i, j] = float(row.get(p, row["bf16"]))
        return out

    def engine_table(self, name: str, engines: Any, default: float) -> np.ndarray:
        """Per-engine factor `name` for each entry of `engines` (engine names, optionally "name==version"; array
        of their shape); an engine the factor does not list gets `default`, and a scalar (an older efficiency
        file) holds for every engine."""
        table = self.params[name]
        if not isinstance(table, Mapping):
            return np.full(np.shape(engines), float(table))
        names, inverse = np.unique(np.asarray(engines, dtype=object).astype(str), return_inverse=True)
        vals = np.array([float(table.get(engine_key(e), default)) for e in names])  # per distinct engine
        return vals[inverse].reshape(np.shape(engines))

    def link_table(self, name: str) -> np.ndarray:
        d = self.params[name]
        return np.array([float(d[k]) for k in LINKS])

    def to_json(self) -> str:
        return json.dumps({"meta": dict(self.meta), "params": _plain(self.params)}, indent=1, sort_keys=False)


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (np.floating, np.integer)):
        return float(x)
    return x


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            out[k] = _merge(base[k], v)
        else:
            out[k] = v
    return out


PER_FAMILY = ("gemm_eff", "gemm_m_half", "mem_eff", "kv_read_eff", "attn_eff", "dec_attn_eff")


def with_family_fallbacks(eff: Efficiency) -> Efficiency:
    """`eff` with every FAMILY_FALLBACK family's per-family factors set to its source family's values."""
    import copy

    params = copy.deepcopy(dict(eff.params))
    for fam, src in FAMILY_FALLBACK.items():
        for name in PER_FAMILY:
            if src in params.get(name, {}):
                params[name] = dict(params[name])
                params[name][fam] = copy.deepcopy(params[name][src])
    return Efficiency(params, eff.meta)


def default_efficiency() -> Efficiency:
    """Hand-set factors (no fit)."""
    return Efficiency(_default_params(), {"source": "hand-set defaults (no fit)"})


def load_efficiency(path: str | Path | None = None) -> Efficiency:
    """The fitted factors from `objectives/data/efficiency.json` (or `path`), missing keys filled with defaults."""
    p = Path(path) if path is not None else DATA_FILE
    if not p.exists():
        if path is not None:
            raise FileNotFoundError(f"efficiency file {p} does not exist")
        return default_efficiency()
    raw = json.loads(p.read_text())
    fitted = raw.get("params", {})
    params = _merge(_default_params(), fitted)
    for fam, src in FAMILY_FALLBACK.items():  # a file without the borrowed copies: borrow now (see FAMILY_FALLBACK)
        for name in PER_FAMILY:
            if fam not in fitted.get(name, {}) and src in fitted.get(name, {}):
                params[name] = dict(params[name])
                params[name][fam] = params[name][src]
    return Efficiency(params, raw.get("meta", {}))


def from_params(params: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Efficiency:
    """Efficiency from a (partial) parameter mapping, missing keys filled with defaults."""
    return Efficiency(_merge(_default_params(), params), dict(meta or {}))
