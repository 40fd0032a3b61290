"""`dse capacity`: the highest request rate a deployment holds under an SLO, or the smallest deployment that holds a
target rate.

A plugin command (entry-point group ``dse.commands``):

    dse capacity Llama-3.1-70B --gpu H200 --tp 4 --weight-dtype fp8 --ttft-ms 2000 --tpot-ms 200 --percentile p99
    dse capacity Llama-3.1-70B --target-rate 20 --gpus H100,H200,B200 --max-gpus 8 --ttft-ms 2000 --tpot-ms 200
    dse capacity Llama-3.1-8B --gpu H100 --ttft-ms 1000 --trace AzureLLMInferenceTrace_conv.csv   # a trace replayed
    dse capacity Llama-3.1-70B --mode disagg --prefill-gpu H100 --prefill-tp 4 --prefill-workers 1 \
        --gpu H200 --tp 4 --decode-workers 2 --weight-dtype fp8 --ttft-ms 2000 --tpot-ms 200   # xPyD pools
    dse capacity Llama-3.1-70B --target-rate 20 --gpus H100,H200 --modes agg,disagg --ttft-ms 2000 --tpot-ms 200
    dse capacity Llama-3.1-70B --target-rate 20 --gpus H200,B200 --formats bf16,fp8 --ttft-ms 2000 --analytical
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .scheduler import SLO, SLO_STATISTICS, Pool, Scheduler
from .workload import Workload


def build_parser() -> argparse.ArgumentParser:
    summary = " ".join(__doc__.split("\n\n")[0].split())          # the docstring's first paragraph
    p = argparse.ArgumentParser(prog="dse capacity", description=summary)
    p.add_argument("model", help="catalog name or Hugging Face id of the LLM")
    p.add_argument("--gpu", help="GPU of the deployment (capacity of one deployment)")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--dp", type=int, default=1, help="replicas (aggregated mode)")
    p.add_argument("--mode", default="agg", help="agg (replicas of --tp x --pp x --attn-dp GPUs) or disagg: a prefill "
                   "pool of --prefill-workers and a decode pool of --decode-workers (--gpu, --tp, --ep and --attn-dp "
                   "are the decode pool's; serving.capacity mode=, prefill=, decode=)")
    p.add_argument("--prefill-workers", type=int, default=None, help="disagg: prefill workers (default 1)")
    p.add_argument("--decode-workers", type=int, default=None, help="disagg: decode workers (default 1)")
    p.add_argument("--prefill-gpu", default=None, help="disagg: the prefill pool's GPU type (default --gpu)")
    p.add_argument("--prefill-tp", type=int, default=None, help="disagg: the prefill pool's TP (default --tp)")
    p.add_argument("--prefill-ep", type=int, default=None, help="disagg: the prefill pool's EP (default --ep)")
    p.add_argument("--prefill-attn-dp", type=int, default=None, help="disagg: the prefill pool's attention DP "
                   "(default --attn-dp)")
    p.add_argument("--prefill-pp", type=int, default=None, help="disagg: the prefill pool's PP (default --pp)")
    p.add_argument("--prefill-weight-dtype", default=None, help="disagg: the prefill pool's weight dtype (default "
                   "--weight-dtype)")
    p.add_argument("--prefill-act-dtype", default=None, help="disagg: the prefill pool's activation dtype (default "
                   "--act-dtype)")
    p.add_argument("--prefill-kv-dtype", default=None, help="disagg: the prefill pool's KV dtype (default "
                   "--kv-dtype)")
    p.add_argument("--prefill-max-batch-size", type=int, default=None, help="disagg: the prefill pool's "
                   "max_batch_size (default --max-batch-size)")
    p.add_argument("--prefill-max-num-tokens", type=int, default=None, help="disagg: the prefill pool's token budget "
                   "per iteration (default --max-num-tokens)")
    p.add_argument("--ep", type=int, default=1, help="expert parallelism over the tp x attn-dp GPUs of a replica")
    p.add_argument("--attn-dp", type=int, default=1, help="attention data-parallel ranks per replica (each "
                   "schedules its own requests; e.g. --tp 1 --attn-dp 8 --ep 8, wide EP)")
    p.add_argument("--adp-balance", action="store_true", help="TensorRT-LLM's attention-DP balance "
                   "(attention_dp_config.enable_balance, its default iterations; needs --attn-dp > 1 in a pool): "
                   "in every simulation and the analytical estimate (serving.capacity adp_balance=)")
    p.add_argument("--eplb", action="store_true", help="an expert-parallel load balancer (vLLM / SGLang "
                   "--enable-eplb, TensorRT-LLM's MoE load balancer): balanced expert load where ep > 1")
    p.add_argument("--moe-act-dtype", default=None, help="activations of MXFP4 experts (gpt-oss): auto (the "
                   "engine's default kernel), bf16 or mxfp8 (objectives.inference.measured.MOE_ACT_DTYPES)")
    p.add_argument("--moe-a2a", default=None, help="how an EP group across attention-DP ranks exchanges its "
                   "tokens: auto (the engine's rule), allgather or deepep (objectives.inference.measured.MOE_A2A)")
    p.add_argument("--weight-dtype", default=None, help="bf16, fp16, fp8, int8, int4 or fp4 (default: the "
                   "checkpoint's format, e.g. fp8 for an FP8 checkpoint, bf16 for an unquantized one; "
                   "inference.estimate's rule)")
    p.add_argument("--act-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--kv-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--batching", default=None, help="continuous (default: requests join and leave the running batch "
                   "every iteration) or static (request-level batches run to their last request: serving.Scheduler "
                   "batching=; aggregated mode only); with --target-rate, comma-separated values the space searches "
                   "(spaces.llm_serving batching=)")
    p.add_argument("--max-batch-size", type=int, default=None, help="most sequences in flight per replica "
                   "(default: the engine's own, serving.Scheduler max_batch_size=None)")
    p.add_argument("--max-num-tokens", type=int, default=None, help="tokens per iteration (default: the engine's "
                   "own, serving.Scheduler max_num_tokens=None)")
    p.add_argument("--engine", default=None, help="measured kernel profile (vllm, sglang, trtllm, or roofline for the "
                   "closed form); default: the GPU's newest vLLM profile, the roofline where it has none")
    p.add_argument("--profile", default=None, help="a calibrated profile (`dse calibrate RESULTS -o FILE.json`): "
                   "its factors cost the analytical screen and the simulations (serving.capacity profile=)")
    p.add_argument("--ttft-ms", type=float, default=None, help="TTFT bound (ms)")
    p.add_argument("--tpot-ms", type=float, default=None, help="TPOT bound (ms)")
    p.add_argument("--e2e-ms", type=float, default=None, help="end-to-end latency bound (ms)")
    p.add_argument("--percentile", default="p99", help=f"statistic the bounds constrain: {', '.join(SLO_STATISTICS)}")
    p.add_argument("--input-len", type=int, default=None, help="prompt tokens (default 2048; not with --trace)")
    p.add_argument("--output-len", type=int, default=None, help="output tokens (default 256; not with --trace)")
    p.add_argument("--arrival", default=None, help="poisson (default) or gamma (not with --trace)")
    p.add_argument("--cv", type=float, default=None, help="coefficient of variation of gamma arrival gaps (default "
                   "1; not with --trace)")
    p.add_argument("--trace", default=None, help="a request trace (any layout serving.read_trace knows: Azure "
                   "2023/2024, Mooncake JSONL, BurstGPT, Vidur, dse): its lengths, and its arrivals replayed at each "
                   "rate searched (instead of --input-len / --output-len / --arrival)")
    p.add_argument("--shared-prefix", type=int, default=0, help="tokens (counted in --input-len) that every prompt "
                   "starts with, e.g. a system prompt: served from the prefix cache after the first request "
                   "(serving.Workload shared_prefix; not with a --trace that carries its own hash blocks)")
    p.add_argument("--no-prefix-caching", action="store_true", help="turn the prefix cache off (vLLM "
                   "--no-enable-prefix-caching, SGLang --disable-radix-cache, TensorRT-LLM enable_block_reuse: "
                   "false); on by default, as every engine defaults it (serving.Scheduler prefix_caching)")
    p.add_argument("--n-requests", type=int, default=None, help="requests per simulated rate (default 1000; "
                   "capacity raises it where the runs would end in their warm-up, and refuses one given too few)")
    p.add_argument("--analytical", action="store_true", help="the analytical estimate only (no simulation; with "
                   "--target-rate: the smallest deployment as the analytical model ranks it, unconfirmed)")
    p.add_argument("--target-rate", type=float, default=None,
                   help="requests/s: find the smallest deployment (over --gpus, --max-gpus) that holds it")
    p.add_argument("--gpus", default=None, help="comma-separated GPU types for --target-rate")
    p.add_argument("--max-gpus", type=int, default=8, help="largest deployment for --target-rate")
    p.add_argument("--formats", default=None, help="comma-separated weight formats --target-rate searches "
                   "(spaces.quantization.FORMATS: bf16, fp8, int8, w8a16, w4a16, fp4, w4a16_fp4; spaces.llm_serving "
                   "formats=); default: the checkpoint's own (bf16 for an unquantized one; fp8 and w8a16 for an FP8 "
                   "one: the formats of its weight dtype), as --weight-dtype's default for one deployment")
    p.add_argument("--modes", default="agg", help="comma-separated deployment modes --target-rate searches: agg, "
                   "disagg (spaces.llm_serving modes=; disagg: prefill and decode pools, each its GPU type and TP)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Print the capacity (or the smallest deployment); 0 on success, 2 with one clear line on stderr on error."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        _synthetic_defaults(args)
        slo = SLO(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, e2e_ms=args.e2e_ms, percentile=args.percentile)
        if not slo.constraints:
            raise ValueError("give at least one bound: --ttft-ms, --tpot-ms or --e2e-ms")
        if args.target_rate is not None:
            return _smallest(args, slo)
        if not args.gpu:
            raise ValueError("give --gpu (capacity of one deployment) or --target-rate with --gpus (smallest deployment)")
        from .capacity import MIN_RATE, capacity, deployment_words

        if args.trace is not None:       # the trace's own arrivals, replayed at each rate (serving.capacity)
            w = _trace_workload(args)
            trace = f" on {w.trace!r}" + ("" if w.rate is None else " (its lengths at Poisson arrivals)")
        else:
            w = Workload(rate=1.0, arrival=args.arrival, cv=args.cv, input_len=args.input_len,
                         output_len=args.output_len, n_requests=args.n_requests, shared_prefix=args.shared_prefix)
            trace = ""
        trace += _prefix_words(args)
        s = Scheduler(max_batch_size=args.max_batch_size, max_num_tokens=args.max_num_tokens,
                      prefix_caching=not args.no_prefix_caching, batching=_batching(args)[0])
        if s.batching != "continuous":
            trace += f" ({s.batching} batching)"
        pools = _pools(args, s)
        r = capacity(args.model, args.gpu, args.tp, args.pp, args.weight_dtype, args.act_dtype, args.kv_dtype,
                     slo=slo, workload=w, scheduler=s, dp=args.dp, engine=args.engine, ep=args.ep,
                     attn_dp=args.attn_dp, eplb=args.eplb, moe_act_dtype=args.moe_act_dtype, moe_a2a=args.moe_a2a,
                     n_requests=args.n_requests, fidelity="analytical" if args.analytical else "simulated",
                     profile=args.profile, mode=args.mode, prefill=pools.get("prefill"),
                     decode=pools.get("decode"), adp_balance=args.adp_balance)
    except (ValueError, TypeError, KeyError, LookupError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bounds = ", ".join(f"{m} <= {b:g} ms" for m, (_, b) in slo.constraints.items())
    weights = args.weight_dtype or _checkpoint_dtype(args.model)
    how = ("analytical" if args.analytical else f"simulated, {r['n_simulations']} runs of {r['n_requests']} requests") \
        + _profile_words(args)
    where = deployment_words(args.gpu, args.tp, args.pp, args.dp, args.ep, args.attn_dp, pools.get("prefill"),
                             pools.get("decode"))
    if args.adp_balance:
        where += " with TensorRT-LLM's attention-DP balance"
    if pools:   # rate matching: which pool binds (analytical; NaN where the pools' schedulers differ in a knob held once)
        pre = r["prefill_pool_req_s"]
        how += ("; analytical pools: prefill " + (f"{pre:.3g}" if pre == pre else "not priced (its own scheduler)")
                + f", decode {r['decode_pool_req_s']:.3g} requests/s")
    if r["capacity_req_s"] == 0 and r["metrics"]:
        got = ", ".join(f"{m} = {r['metrics'][m.replace('_ms', '_ms_mean') if m.endswith('_ms') else m]:.4g} ms"
                        for m in slo.constraints)
        print(f"{args.model} on {where} {weights}: meets {bounds}{trace} at no "
              f"request rate: even at {MIN_RATE:g} requests/s it gives {got} ({how})")
        return 0
    print(f"{args.model} on {where} {weights}: holds "
          f"{r['capacity_req_s']:.3g} requests/s at {bounds}{trace} ({how}; analytical estimate "
          f"{r['analytical_req_s']:.3g})")
    return 0


def _batching(args: argparse.Namespace) -> tuple[str, ...]:
    """The batching policies of --batching (default continuous): one for the capacity of one deployment, the
    space's knob values (comma-separated) for --target-rate; an unknown one refused listing the valid ones
    (`Scheduler`'s)."""
    from .scheduler import _BATCHING

    vals = tuple(dict.fromkeys(v.strip() for v in (args.batching or "continuous").split(",") if v.strip()))
    bad = [v for v in vals if v not in _BATCHING]
    if bad or not vals:
        raise ValueError(f"--batching {args.batching}: valid values are {', '.join(_BATCHING)}")
    if len(vals) > 1 and args.target_rate is None:
        raise ValueError(f"--batching {args.batching}: one deployment has one batching policy; several are for "
                         f"--target-rate (the space's knob)")
    return vals


#: the disaggregated pools' flags (`_pools`): refused in aggregated mode, where nothing would read them
_POOL_FLAGS = ("prefill_workers", "decode_workers", "prefill_gpu", "prefill_tp", "prefill_ep", "prefill_attn_dp",
               "prefill_pp", "prefill_weight_dtype", "prefill_act_dtype", "prefill_kv_dtype", "prefill_max_batch_size",
               "prefill_max_num_tokens")


def _pools(args: argparse.Namespace, sched: Scheduler) -> dict[str, Pool]:
    """`capacity`'s ``prefill`` / ``decode`` pools of --mode disagg (the decode pool takes --gpu, --tp, --pp, --ep,
    --attn-dp and the dtypes, as `serving.capacity`'s pools inherit them; the prefill pool its --prefill-* flags,
    default the same; --prefill-max-batch-size / --prefill-max-num-tokens: the prefill pool's own scheduler,
    ``sched`` with them); {} in aggregated mode, where a pool flag given is refused. A bad --mode lists the valid ones (`simulate`'s)."""
    from .simulator import _MODES

    if args.mode not in _MODES:
        raise ValueError(f"--mode {args.mode}: valid modes are {', '.join(_MODES)}")
    given = ["--" + k.replace("_", "-") for k in _POOL_FLAGS if getattr(args, k) is not None]
    if args.mode == "agg":
        if given:
            raise ValueError(f"{', '.join(given)}: pools are for --mode disagg (an aggregated deployment of --dp "
                             f"replicas would ignore them); add --mode disagg or drop them")
        return {}
    if args.dp != 1:
        raise ValueError(f"--dp {args.dp}: a disaggregated deployment counts its workers per pool; give "
                         f"--prefill-workers and --decode-workers instead")
    return {"prefill": Pool(gpu=args.prefill_gpu, tp=args.prefill_tp, ep=args.prefill_ep, attn_dp=args.prefill_attn_dp,
                            pp=args.prefill_pp, weight_dtype=args.prefill_weight_dtype,
                            act_dtype=args.prefill_act_dtype, kv_dtype=args.prefill_kv_dtype,
                            n_workers=args.prefill_workers if args.prefill_workers is not None else 1,
                            scheduler=_prefill_scheduler(args, sched)),
            "decode": Pool(n_workers=args.decode_workers if args.decode_workers is not None else 1)}


def _prefill_scheduler(args: argparse.Namespace, sched: Scheduler) -> Scheduler | None:
    """The prefill pool's own scheduler: ``sched`` with --prefill-max-batch-size / --prefill-max-num-tokens; None
    (capacity's scheduler) without them."""
    own = {k: v for k, v in (("max_batch_size", args.prefill_max_batch_size),
                             ("max_num_tokens", args.prefill_max_num_tokens)) if v is not None}
    return dataclasses.replace(sched, **own) if own else None


def _trace_workload(args: argparse.Namespace, n_requests: int | None = None) -> Workload:
    """The workload of --trace: its own arrivals replayed at each rate searched, or, for a trace of lengths only
    (a Vidur length file), its lengths at Poisson arrivals of each rate (`capacity._at_rate` sets the rate)."""
    from .traces import read_trace

    t = read_trace(args.trace)
    return Workload(trace=t, n_requests=n_requests, shared_prefix=args.shared_prefix,
                    rate=None if t.has_arrivals else 1.0)


#: the synthetic workload's options and their defaults (a trace gives its own lengths and arrivals)
_SYNTHETIC = {"input_len": 2048, "output_len": 256, "arrival": "poisson", "cv": 1.0}


def _synthetic_defaults(args: argparse.Namespace) -> None:
    """Refuse synthetic-workload options beside --trace (its lengths and arrivals are the trace's: they were
    dropped without a word), then fill their defaults."""
    given = [k for k in _SYNTHETIC if getattr(args, k) is not None]
    if args.trace is not None and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags}: --trace {args.trace} gives the prompt and output lengths and the arrivals; drop "
                         f"{flags} (or drop --trace for a synthetic workload)")
    for k, v in _SYNTHETIC.items():
        if getattr(args, k) is None:
            setattr(args, k, v)


def _profile_words(args: argparse.Namespace) -> str:
    """What the printed line says of the model's factors: a calibrated profile's, where one was given."""
    return f"; engine factors of the calibrated profile {args.profile}" if args.profile is not None else ""


def _prefix_words(args: argparse.Namespace) -> str:
    """What the printed line says of the prefix cache: the shared prefix given, the cache turned off."""
    words = f" with a {args.shared_prefix}-token shared prefix" if args.shared_prefix else ""
    return words + (" (prefix caching off)" if args.no_prefix_caching else "")


def _checkpoint_dtype(model: str) -> str:
    """The weight dtype a run without --weight-dtype is costed in: the checkpoint's format (`inference.resolve`'s
    rule for weight_dtype None), bf16 for an unquantized checkpoint."""
    from ..catalog import model as model_record

    return model_record(model).quant_weight_dtype or "bf16"


def _formats(args: argparse.Namespace, gpus: Sequence[str]) -> list[str]:
    """The weight formats --target-rate searches: --formats (comma-separated names of `spaces.quantization.FORMATS`),
    default the checkpoint's own: the formats of its weight dtype (`_checkpoint_dtype`) that one of ``gpus`` runs
    (fp8 on Hopper, w8a16 where a GPU has no fp8 tensor cores), so a bf16 checkpoint is not quantized unasked."""
    from spaces.quantization import FORMATS, computes

    from ..catalog import gpu as gpu_record

    if args.formats is not None:
        vals = list(dict.fromkeys(v.strip() for v in args.formats.split(",") if v.strip()))
        bad = [v for v in vals if v not in FORMATS]
        if bad or not vals:
            raise ValueError(f"--formats {args.formats}: valid formats are {', '.join(FORMATS)}")
        return vals
    w = _checkpoint_dtype(args.model)
    recs = [gpu_record(g) for g in gpus]
    own = [f for f, (fw, fa) in FORMATS.items() if fw == w and any(computes(g, fa) for g in recs)]
    if not own:
        raise ValueError(f"no GPU of --gpus {','.join(gpus)} runs the checkpoint's {w} weights in a format of "
                         f"spaces.quantization.FORMATS; give --formats")
    return own


#: deployment flags of one configuration and their defaults: --target-rate searches these over the space
_ONE_DEPLOYMENT = {"gpu": None, "tp": 1, "pp": 1, "dp": 1, "ep": 1, "attn_dp": 1, "eplb": False, "adp_balance": False,
                   "moe_act_dtype": None, "moe_a2a": None,
                   "weight_dtype": None, "act_dtype": None, "kv_dtype": None, "max_batch_size": None,
                   "max_num_tokens": None, "engine": None, "mode": "agg",
                   **{k: None for k in _POOL_FLAGS}}


def _smallest(args: argparse.Namespace, slo: SLO) -> int:
    import spaces

    given = ["--" + k.replace("_", "-") for k, v in _ONE_DEPLOYMENT.items() if getattr(args, k) != v]
    if given:
        dtypes = " (the weight formats searched: --formats)" if {"--weight-dtype", "--act-dtype"} & set(given) else ""
        raise ValueError(f"{', '.join(given)}: --target-rate searches GPUs (--gpus), parallelism, precision "
                         f"(--formats) and batching over spaces.llm_serving's space (up to --max-gpus) and would "
                         f"ignore them{dtypes}; drop them, or drop --target-rate for the capacity of that one "
                         f"deployment")

    from ..llm_serving import llm_serving_objective
    from .capacity import DEFAULT_N_REQUESTS, smallest_deployment

    if not args.gpus:
        raise ValueError("--target-rate needs --gpus (comma-separated GPU types to search)")
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    # a trace's prompts vary in length: no whole-prompt rule from one input length then
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    n = args.n_requests if args.n_requests is not None else DEFAULT_N_REQUESTS
    # a disaggregated deployment's pools each choose their GPU type and TP (the space's default TP values)
    formats = _formats(args, gpus)
    space = spaces.llm_serving(args.model, gpus, max_gpus=args.max_gpus, modes=modes, formats=formats,
                               input_len=args.input_len if args.trace is None else None, batching=_batching(args),
                               prefill_gpus=gpus if "disagg" in modes else None)
    if args.trace is not None:        # replayed at the target rate (serving.capacity.smallest_deployment)
        w = _trace_workload(args, n_requests=n)
    else:
        w = Workload(rate=float(args.target_rate), arrival=args.arrival, cv=args.cv, input_len=args.input_len,
                     output_len=args.output_len, n_requests=n, shared_prefix=args.shared_prefix)
    # the knob for every configuration of the space (which has no prefix_caching column): on is the default
    defaults = {"prefix_caching": False} if args.no_prefix_caching else {}
    obj = llm_serving_objective(args.model, workload=w, slo=slo, n_requests=n, defaults=defaults,
                                profile=args.profile)
    fidelity = "analytical" if args.analytical else "simulated"
    row = smallest_deployment(space, obj, float(args.target_rate), fidelity=fidelity)
    keys = [k for k in ("mode", "gpu", "n_gpus", "tp", "pp", "ep", "dp", "prefill_replicas", "prefill_gpu",
                        "prefill_tp", "prefill_ep", "prefill_attn_dp", "prefill_pp", "prefill_weight_dtype",
                        "prefill_act_dtype", "engine", "weight_dtype", "act_dtype", "kv_dtype",
                        "max_batch_size", "max_num_tokens", "chunked_prefill", "batching", *slo.constraints, "usd_per_mtok",
                        "slo_attainment", "source")
            if k in row.index and k != "fits"]
    how = "analytical, not confirmed in simulation" if args.analytical else "simulated"
    print(f"smallest deployment holding {args.target_rate:g} requests/s{_prefix_words(args)} ({how}, formats "
          f"{', '.join(formats)}{_profile_words(args)}):")
    print(row[keys].to_string())
    return 0


__all__ = ["main", "build_parser"]
