"""`dse breakdown`: where a configuration's prefill forward and decode step spend their time, by component.

A plugin command (entry-point group ``dse.commands``):

    dse breakdown Llama-3.1-70B --gpu H200 --tp 4 --batch-size 64 --input-len 2048 --output-len 256
    dse breakdown Llama-3.1-70B --gpu H200 --tp 4 --served --input-len 2048 --output-len 256   # max_throughput's
    dse breakdown DeepSeek-V3 --gpu H200 --tp 8 --engine sglang --batch-size 32
    dse breakdown DeepSeek-V3 --gpu H200 --tp 8 --batch-size 32 --speculative mtp:3:0.8,0.6,0.4   # draft / verify
    dse breakdown Qwen3-30B-A3B --gpu H100 --engine roofline          # the closed form
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pandas as pd


def build_parser() -> argparse.ArgumentParser:
    summary = " ".join(__doc__.split("\n\n")[0].split())          # the docstring's first paragraph
    p = argparse.ArgumentParser(prog="dse breakdown", description=summary)
    p.add_argument("model", help="catalog name or Hugging Face id of the LLM")
    p.add_argument("--gpu", required=True, help="GPU (catalog name or alias)")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--ep", type=int, default=1, help="expert parallelism over the tp x attn-dp GPUs of a replica")
    p.add_argument("--attn-dp", type=int, default=1, help="attention data-parallel ranks per replica")
    p.add_argument("--eplb", action="store_true", help="an expert-parallel load balancer (balanced expert load "
                   "where ep > 1)")
    p.add_argument("--moe-act-dtype", default=None, help="activations of MXFP4 experts: auto, bf16 or mxfp8")
    p.add_argument("--moe-a2a", default=None, help="EP token exchange across attention-DP ranks: auto, allgather or "
                   "deepep")
    p.add_argument("--weight-dtype", default=None, help="bf16, fp16, fp8, int8, int4 or fp4 (default: the "
                   "checkpoint's format)")
    p.add_argument("--act-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--kv-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per replica (static batch; default 1)")
    p.add_argument("--served", action="store_true", help="the served steady state instead of a static batch "
                   "(inference.served_breakdown: max_throughput's prefill iteration, decode step, TTFT and TPOT)")
    p.add_argument("--max-batch-size", type=int, default=None, help="--served: most sequences in flight per "
                   "replica (default: max_throughput's)")
    p.add_argument("--max-num-tokens", type=int, default=None, help="tokens per iteration (chunked prefill "
                   "budget; default: the engine default)")
    p.add_argument("--concurrency", type=int, default=None, help="--served: closed-loop clients (default: as many "
                   "as slots)")
    p.add_argument("--no-prefix-caching", action="store_true", help="--served: the engine's prefix cache off (a "
                   "preempted sequence recomputes its whole context; every engine's default is on)")
    p.add_argument("--adp-balance", action="store_true", help="--served: TensorRT-LLM's attention-DP balance "
                   "(attention_dp_config.enable_balance; attn-dp > 1 only)")
    p.add_argument("--speculative", default=None, help="speculative decoding, its label "
                   "method:draft_tokens:acceptance (e.g. mtp:3:0.8,0.6,0.4 or eagle:2:0.7): the draft / verify split "
                   "of the static batch, or with --served of the steady state")
    p.add_argument("--input-len", type=int, default=1024, help="prompt tokens")
    p.add_argument("--output-len", type=int, default=128, help="output tokens (the decode step is their mean)")
    p.add_argument("--engine", default=None, help="measured kernel profile (vllm, sglang, trtllm, name==version, or "
                   "roofline for the closed form); default: the GPU's newest vLLM profile")
    p.add_argument("--engine-profile", default="standard", help="standard, tuned or baseline builds")
    p.add_argument("--profile", default=None, help="a calibrated profile (`dse calibrate RESULTS -o FILE.json`): "
                   "its engine factors over the shipped ones")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def format_table(bd: pd.DataFrame) -> str:
    """`inference.breakdown`'s two rows of one configuration as a table: per component (those not zero in both
    phases; the draft layer's `SPEC_TERMS` after the kernels'), ms and % of the step, prefill and decode side by
    side, then the totals."""
    from .breakdown import COMPONENTS, SPEC_TERMS

    pre, dec = (bd[bd["phase"] == ph].iloc[0] for ph in ("prefill", "decode"))
    lines = [f"{'component':<18} {'prefill ms':>12} {'%':>6} {'decode ms':>12} {'%':>6}"]
    for name in COMPONENTS + SPEC_TERMS:
        a, b = float(pre[name]), float(dec[name])
        if a == 0.0 and b == 0.0:
            continue
        lines.append(f"{name:<18} {a:>12,.3f} {100 * a / pre['total_ms']:>6.1f} {b:>12,.3f} "
                     f"{100 * b / dec['total_ms']:>6.1f}")
    lines.append(f"{'total (ttft, tpot)':<18} {pre['total_ms']:>12,.3f} {100.0:>6.1f} {dec['total_ms']:>12,.3f} "
                 f"{100.0:>6.1f}")
    return "\n".join(lines)


def format_served(bd: pd.DataFrame) -> str:
    """`inference.served_breakdown`'s four rows of one configuration as a table: per component (those not zero in
    every phase), ms and % of the prefill iteration, the decode step, the TTFT and the TPOT, then the totals."""
    from .breakdown import SERVED_COMPONENTS, SERVED_PHASES

    rows = [bd[bd["phase"] == ph].iloc[0] for ph in SERVED_PHASES]
    heads = ("prefill iter", "decode step", "ttft", "tpot")
    lines = [f"{'component':<18}" + "".join(f" {h + ' ms':>15} {'%':>5}" for h in heads)]
    for name in SERVED_COMPONENTS:
        vals = [float(r[name]) for r in rows]
        if not any(vals):
            continue
        lines.append(f"{name:<18}" + "".join(f" {v:>15,.3f} {100 * v / r['total_ms'] if r['total_ms'] else 0.0:>5.1f}"
                                             for v, r in zip(vals, rows)))
    lines.append(f"{'total':<18}" + "".join(f" {r['total_ms']:>15,.3f} {100.0 if r['total_ms'] else 0.0:>5.1f}"
                                         for r in rows))
    return "\n".join(lines)


def _served_header(bd: pd.DataFrame) -> str:
    """One line on the steady state: sequences in flight, each kind of iteration's count and work."""
    pre, dec = (bd[bd["phase"] == ph].iloc[0] for ph in ("prefill_iteration", "decode_step"))
    if float(dec["iterations"]) == 0.0:
        return (f"steady state: {pre['batch_size']:g} sequences in flight; every one of the {pre['iterations']:,.2f} "
                f"iterations per request cycle carries {pre['prompt_tokens']:,.0f} prompt tokens beside "
                f"{pre['decode_seqs']:,.1f} decodes (the closed form's mean iteration)")
    return (f"steady state: {pre['batch_size']:g} sequences in flight; per request cycle {pre['iterations']:,.2f} "
            f"prefill iterations ({pre['prompt_tokens']:,.0f} prompt tokens + {pre['decode_seqs']:,.1f} decodes) and "
            f"{dec['iterations']:,.2f} decode steps ({dec['decode_seqs']:,.1f} decodes)")


def _check_balance(args: argparse.Namespace) -> None:
    """Refuse ``--adp-balance`` where it would change nothing: it balances the prompts of attention-DP ranks of the
    engines that have the balance (`lockstep.ADP_BALANCE_ENGINES`)."""
    from objectives import catalog
    from objectives.profiles import engine_key

    from .core import auto_engine
    from .lockstep import ADP_BALANCE_ENGINES

    given = args.engine not in (None, "auto")
    name = args.engine if given else auto_engine(catalog.gpu(args.gpu).name)
    if engine_key(name) not in ADP_BALANCE_ENGINES:
        raise ValueError(f"--adp-balance: engine {name}{'' if given else ' (the default on ' + args.gpu + ')'} has no "
                         f"attention-DP balance; it is {', '.join(ADP_BALANCE_ENGINES)}'s (--engine trtllm)")
    if args.attn_dp <= 1:
        raise ValueError(f"--adp-balance balances the prompts of attention-DP ranks: --attn-dp {args.attn_dp} has "
                         "one rank (give --attn-dp 2 or more)")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the breakdown table; 0 on success, 2 with one clear line on stderr on error."""
    from .breakdown import breakdown, served_breakdown

    args = build_parser().parse_args(list(argv) if argv is not None else None)
    common = dict(tp=args.tp, pp=args.pp, weight_dtype=args.weight_dtype, act_dtype=args.act_dtype,
                  kv_dtype=args.kv_dtype, input_len=args.input_len, output_len=args.output_len, ep=args.ep,
                  attn_dp=args.attn_dp, eplb=args.eplb, moe_act_dtype=args.moe_act_dtype, moe_a2a=args.moe_a2a,
                  engine=args.engine,
                  engine_profile=args.engine_profile)
    if args.max_num_tokens is not None:
        common["max_num_tokens"] = args.max_num_tokens
    if args.profile is not None:
        common["profile"] = args.profile
    try:
        if args.served:
            if args.batch_size is not None:
                raise ValueError(f"--batch-size {args.batch_size} sizes a static batch; with --served the batch in "
                                 "flight is max_throughput's: give --max-batch-size or --concurrency")
            served = {k: v for k, v in (("max_batch_size", args.max_batch_size), ("concurrency", args.concurrency))
                      if v is not None}
            if args.adp_balance:
                _check_balance(args)
            served.update(prefix_caching=not args.no_prefix_caching, adp_balance=args.adp_balance,
                          speculative=args.speculative)
            bd = served_breakdown(args.model, args.gpu, **common, **served)
        else:
            for flag, v in (("--max-batch-size", args.max_batch_size), ("--concurrency", args.concurrency),
                            ("--no-prefix-caching", args.no_prefix_caching or None),
                            ("--adp-balance", args.adp_balance or None)):
                if v is not None:
                    given = flag if v is True else f"{flag} {v}"
                    raise ValueError(f"{given} applies to the served steady state: add --served")
            bd = breakdown(args.model, args.gpu, batch_size=1 if args.batch_size is None else args.batch_size,
                           speculative=args.speculative, **common)
    except (ValueError, TypeError, KeyError, LookupError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    r = bd.iloc[0]
    layout = f"tp={r['tp']} pp={r['pp']}" + (f" attn_dp={r['attn_dp']}" if r["attn_dp"] != 1 else "") + \
        (f" ep={r['ep']}" if r["ep"] != 1 else "")
    what = ("served" if args.served else f"batch {r['batch_size']}") + \
        (f", speculative {args.speculative} (in token time)" if args.speculative is not None else "")
    print(f"{r['model']} on {r['gpu']} {layout} {r['weight_dtype']} weights, engine {r['engine']} "
          f"({r['source']}): {what}, {r['input_len']} prompt + {r['output_len']} output tokens"
          + (f"; engine factors of the calibrated profile {args.profile}" if args.profile is not None else ""))
    from objectives.catalog import model as model_record
    from objectives.serving.workload import context_refusal

    from .resolve import R_CONTEXT, REASONS
    if not bool(r["fits"]) and str(r["reason"]) != REASONS[R_CONTEXT]:   # the context: the fuller note below
        print(f"note: this configuration does not fit ({r['reason']}); its times are still shown")
    if (long := context_refusal(model_record(args.model), int(r["input_len"]) + int(r["output_len"]),
                                fix="give --input-len and --output-len within it", engine=r["engine"])) is not None:
        print(f"note: {long}; its times are still shown")
    if args.served:
        print(_served_header(bd))
    print(format_served(bd) if args.served else format_table(bd))
    return 0


__all__ = ["main", "build_parser", "format_table", "format_served"]
