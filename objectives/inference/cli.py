"""`dse breakdown`: where a configuration's prefill forward and decode step spend their time, by component.

A plugin command (entry-point group ``dse.commands``):

    dse breakdown Llama-3.1-70B --gpu H200 --tp 4 --batch-size 64 --input-len 2048 --output-len 256
    dse breakdown DeepSeek-V3 --gpu H200 --tp 8 --engine sglang --batch-size 32
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
    p.add_argument("--weight-dtype", default=None, help="bf16, fp16, fp8, int8, int4 or fp4 (default: the "
                   "checkpoint's format)")
    p.add_argument("--act-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--kv-dtype", default=None, help="default: the inference model's rule (inference.resolve)")
    p.add_argument("--batch-size", type=int, default=1, help="sequences per replica (static batch)")
    p.add_argument("--input-len", type=int, default=1024, help="prompt tokens")
    p.add_argument("--output-len", type=int, default=128, help="output tokens (the decode step is their mean)")
    p.add_argument("--engine", default=None, help="measured kernel profile (vllm, sglang, trtllm, name==version, or "
                   "roofline for the closed form); default: the GPU's newest vLLM profile")
    p.add_argument("--engine-profile", default="standard", help="standard, tuned or baseline builds")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def format_table(bd: pd.DataFrame) -> str:
    """`inference.breakdown`'s two rows of one configuration as a table: per component (those not zero in both
    phases), ms and % of the step, prefill and decode side by side, then the totals."""
    from .breakdown import COMPONENTS

    pre, dec = (bd[bd["phase"] == ph].iloc[0] for ph in ("prefill", "decode"))
    lines = [f"{'component':<18} {'prefill ms':>12} {'%':>6} {'decode ms':>12} {'%':>6}"]
    for name in COMPONENTS:
        a, b = float(pre[name]), float(dec[name])
        if a == 0.0 and b == 0.0:
            continue
        lines.append(f"{name:<18} {a:>12,.3f} {100 * a / pre['total_ms']:>6.1f} {b:>12,.3f} "
                     f"{100 * b / dec['total_ms']:>6.1f}")
    lines.append(f"{'total (ttft, tpot)':<18} {pre['total_ms']:>12,.3f} {100.0:>6.1f} {dec['total_ms']:>12,.3f} "
                 f"{100.0:>6.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the breakdown table; 0 on success, 2 with one clear line on stderr on error."""
    from .breakdown import breakdown

    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        bd = breakdown(args.model, args.gpu, tp=args.tp, pp=args.pp, weight_dtype=args.weight_dtype,
                       act_dtype=args.act_dtype, kv_dtype=args.kv_dtype, batch_size=args.batch_size,
                       input_len=args.input_len, output_len=args.output_len, ep=args.ep, attn_dp=args.attn_dp,
                       eplb=args.eplb, moe_act_dtype=args.moe_act_dtype, engine=args.engine,
                       engine_profile=args.engine_profile)
    except (ValueError, TypeError, KeyError, LookupError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    r = bd.iloc[0]
    layout = f"tp={r['tp']} pp={r['pp']}" + (f" attn_dp={r['attn_dp']}" if r["attn_dp"] != 1 else "") + \
        (f" ep={r['ep']}" if r["ep"] != 1 else "")
    print(f"{r['model']} on {r['gpu']} {layout} {r['weight_dtype']} weights, engine {r['engine']} "
          f"({r['source']}): batch {r['batch_size']}, {r['input_len']} prompt + {r['output_len']} output tokens")
    if not bool(r["fits"]):
        print(f"note: this configuration does not fit ({r['reason']}); its times are still shown")
    print(format_table(bd))
    return 0


__all__ = ["main", "build_parser", "format_table"]
