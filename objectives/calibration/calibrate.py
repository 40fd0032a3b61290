"""`dse calibrate`: fit the engine-level factors of the measured-profile path on the user's own end-to-end results.

    dse calibrate RESULTS [RESULTS ...] [--layout silicon|vllm_json] [--gpu H200-SXM-141GB --tp 4 ...] -o my.json

RESULTS are files in the layouts `measurements.read_measurements` reads (the aiconfigurator silicon CSV, vLLM
`bench serve --save-result` JSON with the deployment in --metadata or given here). The output is a calibrated
profile: the fitted factors with the inputs' hashes, accepted as `profile=` by `inference.estimate`,
`inference.max_throughput`, and through them by studies (`efficiency` of the objective).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from objectives.inference.efficiency import Efficiency, from_params

FORMAT = "dse-calibrated-profile/1"


def fit(paths: Sequence[str | Path], out: str | Path, *, layout: str | None = None, max_nfev: int = 30,
        **defaults: Any) -> dict[str, Any]:
    """Read `paths`, fit the engine factors on their predictable rows, write the calibrated profile JSON to `out`
    and return it. Raises ValueError when no row can be predicted (naming why)."""
    from .measurements import read_measurements
    from .silicon import fit_engine_factors, mdape_by, scored, usable

    frames = [read_measurements(p, layout=layout, **defaults) for p in paths]
    rows = pd.concat(frames, ignore_index=True)
    ok = usable(rows)
    if not ok.any():
        raise ValueError(f"no predictable rows in {', '.join(map(str, paths))}: each needs a GPU with a kernel profile "
                         f"(systems {sorted(__import__('objectives').profiles.SYSTEMS.values())}), a TTFT and a TPOT")
    rows = rows[ok]
    eff, info = fit_engine_factors(rows, max_nfev=max_nfev)
    d = scored(rows, eff)
    factors = {n: _get(eff.params, n) for n in info["names"]}
    doc = {"format": FORMAT, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "inputs": [{"file": str(p), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in paths],
           "rows": int(len(rows)), "factors": factors,
           "mdape_in_sample": {"ttft": float(d["ttft_ape"].median()), "tpot": float(d["tpot_ape"].median())},
           "by_engine": mdape_by(d, ["engine"]).reset_index().to_dict(orient="records")}
    doc["sha256"] = hashlib.sha256(json.dumps(factors, sort_keys=True).encode()).hexdigest()
    Path(out).write_text(json.dumps(doc, indent=1, default=float) + "\n")
    return doc


def _get(params: Any, dotted: str) -> float:
    v = params
    for k in dotted.split("."):
        v = v[k]
    return float(v)


def load_profile(path: str | Path, base: Efficiency | None = None) -> Efficiency:
    """The factors of a calibrated profile file over `base` (default: the shipped fit). Bad files name the file
    and what is wrong."""
    from objectives.inference.core import default_eff

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a calibrated profile (JSON written by `dse calibrate`): {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("factors"), dict):
        raise ValueError(f"{p}: not a calibrated profile: expected format {FORMAT!r} with a 'factors' mapping")
    import copy
    params = copy.deepcopy(dict((base or default_eff()).params))
    for dotted, v in doc["factors"].items():
        if not isinstance(v, (int, float)) or v != v or v <= 0:
            raise ValueError(f"{p}: factor {dotted!r} = {v!r} is not a positive number")
        keys = dotted.split(".")
        d = params
        for k in keys[:-1]:
            if k not in d:
                raise ValueError(f"{p}: unknown factor {dotted!r}")
            d[k] = dict(d[k])
            d = d[k]
        d[keys[-1]] = float(v)
    meta = {"calibrated_profile": str(p), "sha256": doc.get("sha256", "")}
    return from_params(params, meta)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dse calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", help="measurement files (silicon CSV, vLLM bench JSON, or a folder of them)")
    ap.add_argument("-o", "--out", required=True, help="calibrated profile JSON to write")
    ap.add_argument("--layout", choices=["silicon", "vllm_json"], default=None)
    for k in ("gpu", "engine", "engine_version", "model", "weight_dtype"):
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, default=None, help=f"{k} for files that do not say")
    ap.add_argument("--tp", type=int, default=None)
    ap.add_argument("--max-nfev", type=int, default=30)
    a = ap.parse_args(list(argv) if argv is not None else None)
    defaults = {k: getattr(a, k) for k in ("gpu", "engine", "engine_version", "model", "weight_dtype", "tp")
                if getattr(a, k) is not None}
    try:
        doc = fit(a.results, a.out, layout=a.layout, max_nfev=a.max_nfev, **defaults)
    except (ValueError, FileNotFoundError) as exc:
        print(f"dse calibrate: error: {exc}", file=sys.stderr)
        return 2
    print(f"{doc['rows']} rows; TTFT MdAPE {doc['mdape_in_sample']['ttft']:.1f} %, TPOT MdAPE "
          f"{doc['mdape_in_sample']['tpot']:.1f} % (in sample); wrote {a.out} (sha256 {doc['sha256'][:12]})")
    return 0
