"""Compare raw GEMM tables measured on a GPU with another profile of the same GPU, shape by shape.

    python -m objectives.profiles.crosscheck RAW_ROOT [--gpu H200-SXM-141GB] [--against vllm,sglang,trtllm]

RAW_ROOT is a collector output (`<system>/gemm/<engine>/<version>/gemm_perf.parquet`, e.g. the shipped
objectives/data/profiles/collected). For every measured (dtype, m, n, k) the ratio measured / the other profile's
interpolated latency is summarized: median and 10th/90th percentiles, on large GEMMs (> 1e11 FLOP) and small ones
(< 1e8 FLOP), and by m. Two tables of the same kernels on the same part should agree; where they do not, one of them
includes work the other does not (an activation quantization kernel, launch gaps outside a CUDA graph).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .build import GEMM_DTYPES
from .profile import SYSTEMS, load

M_SHOWN = (1, 16, 128, 1024, 8192, 16384)


def gemm_ratios(raw_root: str | Path, gpu: str, against: str) -> pd.DataFrame:
    """Rows of the raw GEMM tables of `gpu`'s system under `raw_root` with `ratio` = latency / the `against`
    profile's latency at the same (m, n, k) and `flop`; dtypes the other profile lacks are left out."""
    system = SYSTEMS.get(gpu)
    if system is None:
        raise ValueError(f"{gpu!r} has no profiled system; valid: {', '.join(SYSTEMS)}")
    files = sorted(Path(raw_root).glob(f"{system}/gemm/*/*/gemm_perf.parquet"))
    if not files:
        raise ValueError(f"no {system}/gemm/<engine>/<version>/gemm_perf.parquet under {raw_root}")
    other = load(gpu, against, full=False)
    assert other is not None  # SYSTEMS holds gpu
    out = []
    for f in files:
        df = pd.read_parquet(f)
        for dt, grp in df.groupby("gemm_dtype"):
            t = other.table(f"gemm.{GEMM_DTYPES.get(str(dt), str(dt))}")
            if t is None:
                continue
            m, n, k = (grp[c].to_numpy(float) for c in ("m", "n", "k"))
            out.append(grp.assign(against=other.key, ratio=grp["latency"].to_numpy() / t(m, n, k),
                                  flop=2.0 * m * n * k))
    if not out:
        raise ValueError(f"the {against} profile of {gpu} has none of the measured GEMM dtypes")
    return pd.concat(out, ignore_index=True)


def summary(r: pd.DataFrame) -> pd.DataFrame:
    """Per (against, dtype): median ratio, p10, p90, median on large (> 1e11 FLOP) and small (< 1e8 FLOP) GEMMs
    and by m (M_SHOWN)."""
    rows = []
    for (ag, dt), g in r.groupby(["against", "gemm_dtype"], sort=False):
        row = {"against": ag, "dtype": dt, "shapes": len(g), "median": g["ratio"].median(),
               "p10": g["ratio"].quantile(0.1), "p90": g["ratio"].quantile(0.9),
               "large": g.loc[g["flop"] > 1e11, "ratio"].median(), "small": g.loc[g["flop"] < 1e8, "ratio"].median()}
        by_m = g.groupby("m")["ratio"].median()
        row.update({f"m={m}": by_m.get(m, np.nan) for m in M_SHOWN})
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m objectives.profiles.crosscheck", description=__doc__.split("\n")[0])
    p.add_argument("root", help="collector output root (<system>/gemm/<engine>/<version>/gemm_perf.parquet)")
    p.add_argument("--gpu", default="H200-SXM-141GB", help="catalog GPU (default: H200-SXM-141GB)")
    p.add_argument("--against", default="vllm,sglang,trtllm", help="comma-separated engines to compare with")
    a = p.parse_args(argv)
    try:
        r = pd.concat([gemm_ratios(a.root, a.gpu, e.strip()) for e in a.against.split(",") if e.strip()])
    except ValueError as e:
        p.error(str(e))
    print(summary(r).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
