"""``python -m objectives.deploy STUDY --trial N --engine vllm|sglang|trtllm [--storage URL] [-o DIR]``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dse import DSEError

from .builders import ENGINES


def build_parser(prog: str = "dse deploy") -> argparse.ArgumentParser:
    """The argument parser of the deploy command (``dse deploy`` takes the same arguments)."""
    ap = argparse.ArgumentParser(prog=prog, description="Launch commands (serve, router, benchmark) of a study's "
                                 "trial, in the engine's own flag spelling.")
    ap.add_argument("study", metavar="STUDY", help="study name")
    ap.add_argument("--trial", type=int, required=True, help="trial number")
    ap.add_argument("--engine", required=True, help=f"serving engine: {', '.join(ENGINES)}")
    ap.add_argument("--storage", default=None, help="SQLAlchemy URL or .db path (default: studies/<STUDY>.db)")
    ap.add_argument("-o", "--output", default=None, help="write launch.sh, YAML files and deployment.json into DIR")
    ap.add_argument("--version", default=None, help="engine release (default: the GPU's kernel-profile release)")
    ap.add_argument("--model", default=None, help="model (default: the study's; see --study-file)")
    ap.add_argument("--study-file", default=None, help="the study file naming the model and workload "
                    "(default: <STUDY>.py beside the database, or studies/<STUDY>.py)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap


def main(argv: Sequence[str] | None = None, prog: str = "dse deploy") -> int:
    """Print (or with -o write) the launch commands; 0 on success, 2 with one clear line on stderr on error.
    ``prog``: the command's name in usage and argument errors."""
    from . import for_trial

    args = build_parser(prog).parse_args(list(argv) if argv is not None else None)
    try:
        d = for_trial(args.study, args.trial, args.engine, storage=args.storage, model=args.model,
                      version=args.version, study_file=args.study_file)
    except (DSEError, ValueError, KeyError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if args.output:
        for p in d.write(args.output):
            print(p)
    else:
        print(d, end="")
    return 0
