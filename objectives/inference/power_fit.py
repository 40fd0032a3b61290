"""Fit the power model's factors (objectives/inference/power.py) to published board-power readings.

    python -m objectives.inference.power_fit            # print the fit and every anchor's residual
    python -m objectives.inference.power_fit --write    # also store the factors in objectives/data/power.json

The anchors (objectives/data/power.json, ``anchors``) are board-power readings in W, each with its source, the
serving setup it was read under and, where the publication does not state them, the request lengths assumed.
``role = "fit"`` anchors set ``mem_bound_frac`` (least squares on relative error; the model power is linear in
the factor, so the fit is closed-form); ``role = "check"`` anchors are bands [lo_w, hi_w] the fitted model must
fall inside (reported, never fitted). ``idle_frac`` is the median idle / TDP ratio of the catalog GPUs with a
published ``idle_w``; ``compute_frac`` stays 1.0 (compute-bound prefill runs at the board power limit, the TDP).
No anchor is an energy-per-token figure: those are what the model predicts.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from objectives import catalog

from .core import prepare
from .estimate import DEFAULT_MAX_NUM_TOKENS, _estimate_rows, _evaluate, _max_throughput_rows
from .power import POWER_FILE, PowerFactors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Anchor:
    """One published power reading: the setup (model, gpu, dtype, batch, lengths; ``phase`` "serve" for a whole
    benchmark run (prefill and decode, `max_throughput` at that batch) or "decode" (decode steps only, `estimate`
    with a one-token prompt)), the reading (`power_w`, or a band lo_w..hi_w for checks), its role and source."""

    name: str
    gpu: str
    model: str
    batch_size: int
    input_len: int
    output_len: int
    phase: str
    role: str
    source: str
    power_w: float = float("nan")
    lo_w: float = float("nan")
    hi_w: float = float("nan")
    weight_dtype: str = "bf16"
    note: str = ""

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> Anchor:
        if d.get("phase") not in ("serve", "decode"):
            raise ValueError(f"power anchor {d.get('name')!r}: phase = {d.get('phase')!r} is invalid; expected "
                             "'serve' or 'decode'")
        if d.get("role") not in ("fit", "check"):
            raise ValueError(f"power anchor {d.get('name')!r}: role = {d.get('role')!r} is invalid; expected "
                             "'fit' or 'check'")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def predicted_power_w(a: Anchor, factors: PowerFactors) -> float:
    """Mean board power per GPU (W) the model predicts for anchor `a` under `factors`."""
    p = prepare(a.model, a.gpu, 1, 1, a.weight_dtype, None, None, 1, 1, None, None, engine="roofline")
    if p is None:
        raise ValueError(f"power anchor {a.name!r}: model {a.model!r} on {a.gpu!r} gives no configuration")
    if a.phase == "serve":
        res = _evaluate(p, dict(isl=float(a.input_len), osl=float(a.output_len), mbs=float(a.batch_size),
                                    mnt=float(DEFAULT_MAX_NUM_TOKENS), conc=float(a.batch_size)),
                            partial(_max_throughput_rows, factors=factors))
    else:
        res = _evaluate(p, dict(B=float(a.batch_size), isl=float(a.input_len), osl=float(a.output_len),
                                    mnt=float(DEFAULT_MAX_NUM_TOKENS)),
                            partial(_estimate_rows, factors=factors))
    return float(res["joules_per_tok"][0] * res["throughput_tok_s"][0])


def idle_fraction() -> tuple[float, list[str]]:
    """Median idle / TDP over the catalog GPUs with a published idle_w, and their names."""
    gs = [catalog.gpu(n) for n in catalog.gpus()]
    ratios = {g.name: g.idle_w / g.tdp_w for g in gs if g.idle_w is not None}
    if not ratios:
        raise ValueError("no catalog GPU has a published idle_w: the idle fraction cannot be derived")
    return float(np.median(list(ratios.values()))), list(ratios)


def fit(anchors: Sequence[Anchor], compute_frac: float = 1.0) -> tuple[PowerFactors, list[dict[str, Any]]]:
    """Least-squares `mem_bound_frac` on the relative error of the "fit" anchors (closed form: the model power
    is P = a + b x m per anchor), then every anchor's prediction under the fitted factors."""
    idle, _ = idle_fraction()
    fits = [a for a in anchors if a.role == "fit"]
    if not fits:
        raise ValueError("no anchor with role 'fit': mem_bound_frac cannot be fitted")
    f0 = PowerFactors(mem_bound_frac=0.25, compute_frac=compute_frac, idle_frac=idle)
    f1 = PowerFactors(mem_bound_frac=0.75, compute_frac=compute_frac, idle_frac=idle)
    p0 = np.array([predicted_power_w(a, f0) for a in fits])
    p1 = np.array([predicted_power_w(a, f1) for a in fits])
    b = (p1 - p0) / 0.5
    a0 = p0 - 0.25 * b
    y = np.array([a.power_w for a in fits])
    m = float(np.sum(b / y * (y - a0) / y) / np.sum((b / y) ** 2))
    m = float(np.clip(m, 1e-3, compute_frac))
    factors = PowerFactors(mem_bound_frac=m, compute_frac=compute_frac, idle_frac=idle)
    rows = []
    for a in anchors:
        pred = predicted_power_w(a, factors)
        row: dict[str, Any] = {"name": a.name, "role": a.role, "gpu": a.gpu, "model": a.model,
                               "batch_size": a.batch_size, "predicted_w": round(pred, 1)}
        if a.role == "fit":
            row.update(measured_w=a.power_w, error_pct=round(100 * (pred - a.power_w) / a.power_w, 1))
        else:
            row.update(lo_w=a.lo_w, hi_w=a.hi_w, inside=bool(a.lo_w <= pred <= a.hi_w))
        rows.append(row)
    return factors, rows


def load_anchors(path: Path = POWER_FILE) -> list[Anchor]:
    """The anchors stored in the power file."""
    return [Anchor.from_mapping(d) for d in json.loads(path.read_text())["anchors"]]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the fitted factors in objectives/data/power.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    anchors = load_anchors()
    factors, rows = fit(anchors)
    _, idle_gpus = idle_fraction()
    log.info("mem_bound_frac = %.4f  compute_frac = %.2f  idle_frac = %.4f (median of %s)",
             factors.mem_bound_frac, factors.compute_frac, factors.idle_frac, ", ".join(idle_gpus))
    for r in rows:
        log.info("  %s", r)
    if args.write:
        data = json.loads(POWER_FILE.read_text())
        fitted = [r["name"] for r in rows if r["role"] == "fit"]
        data["factors"] = {
            "mem_bound_frac": {"value": round(factors.mem_bound_frac, 4), "source": "fit",
                               "note": "least squares on relative error of the 'fit' anchors: " + ", ".join(fitted)},
            "compute_frac": {"value": factors.compute_frac,
                             "source": "https://factryze.ai/scale-atlas/power/power-capping",
                             "note": "compute-bound (matmul-heavy) kernels run at the board power limit, the datasheet "
                                     "TDP: an uncapped H100 SXM peaks at ~720 W against its 700 W default cap in "
                                     "matmul-heavy training steps (source); 1.0 = the whole idle-to-TDP range"},
            "idle_frac": {"value": round(factors.idle_frac, 4), "source": "objectives/data/gpus.toml idle_w",
                          "note": "median idle_w / tdp_w of " + ", ".join(idle_gpus)},
        }
        data["fit_report"] = rows
        POWER_FILE.write_text(json.dumps(data, indent=2) + "\n")
        log.info("wrote %s", POWER_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
