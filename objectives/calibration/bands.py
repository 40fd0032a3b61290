"""Building the uncertainty bands (`objectives.uncertainty`) from held-out calibration residuals, and checking
their honesty: ``python -m objectives.calibration bands``.

Residuals ``log(measured / predicted)``, each from a model that never saw the row's unit:

- published inference rows (../shared/calibration/published_measurements.csv, the static fit rows): the
  leave-one-source-out refits of `report.loso` (one engine version out at a time); path "roofline";
  metrics ttft, tpot (the itl_ms rows), e2e, throughput.
- silicon serving rows (serving_silicon.csv): `silicon.leave_one_model_out` (engine factors fitted on the other
  models); path = the prediction's `source` with the row's engine; metrics ttft, tpot and e2e (= TTFT + (osl - 1)
  TPOT for the measured and the predicted means alike).
- training rows (training_measurements.csv): `training.loso` (one source out at a time); tokens/s/GPU, as metric
  throughput.

The honesty check holds out each unit in turn (an engine version, a silicon model, a training source, and, on the
silicon rows, each engine): its rows' residuals are scored against bands built from the other units only, and the
fraction inside the band is reported per set and metric (objectives/data/fidelity/bands.md).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from objectives import uncertainty as U

from .data import sha256

log = logging.getLogger(__name__)

REPORT = Path(__file__).resolve().parents[1] / "data" / "fidelity" / "bands.md"
#: band levels reported by the honesty check
LEVELS = (0.5, 0.8, 0.9)
COLUMNS = ["kind", "set", "source", "engine", "family", "metric", "unit", "resid"]


def _frame(**cols: Any) -> pd.DataFrame:
    d = pd.DataFrame(cols)
    d = d[np.isfinite(d["resid"].to_numpy(float))]
    return d[COLUMNS].reset_index(drop=True)


def published_residuals(path: str | None = None, max_nfev: int = 10) -> tuple[pd.DataFrame, Path]:
    """Leave-one-source-out residuals of the published static rows (roofline path, the tuned builds' rows on
    TensorRT-LLM's measured profile; shipped factors as the start)."""
    from objectives.inference.efficiency import load_efficiency

    from .data import load
    from .predict import mark_unknown
    from .report import loso

    df, p = load(path)
    df = mark_unknown(df)
    d = loso(df, load_efficiency(), max_nfev=max_nfev)
    metric = d["class"].astype(str).replace({"itl": "tpot"}).to_numpy(object)
    path = d["path"].astype(str).to_numpy(object)   # the closed form, or a tuned build's measured profile
    return _frame(kind="inference", set="published", source=np.where(path == "roofline", "roofline", "measured"),
                  engine=path,
                  family=d["family"].astype(str).to_numpy(object), metric=metric,
                  unit="published:" + d["engine"].astype(str),
                  resid=np.log(d["value"].to_numpy(float) / d["pred"].to_numpy(float))), p


def silicon_residuals(path: str | None = None, max_nfev: int = 30) -> tuple[pd.DataFrame, Path]:
    """Leave-one-model-out residuals of the silicon serving rows (measured-profile path of each row's engine)."""
    from objectives.inference.efficiency import Efficiency, default_efficiency, load_efficiency

    from .silicon import ENGINE_FACTOR_NAMES, GPU_OF_SYSTEM, leave_one_model_out, load_rows

    rows, p = load_rows(path)
    # the same starting point as `silicon.run`: the shipped factors with the engine factors at their defaults, so
    # that no held-out model shaped the start or the prior of the refits
    loaded, fresh = load_efficiency(), default_efficiency().params
    base = Efficiency({**loaded.params, **{k: fresh[k] for k in ENGINE_FACTOR_NAMES}}, loaded.meta)
    d = leave_one_model_out(rows, base, max_nfev=max_nfev)
    src = d["source"].astype(str).to_numpy(object)
    eng = np.where(src == "roofline", "roofline", d["engine"].astype(str).str.lower().to_numpy(object))
    fam = d["gpu"].map(lambda s: U.gpu_family(GPU_OF_SYSTEM[s])).to_numpy(object)
    osl = d["osl"].to_numpy(float)
    e2e_m = d["ttft_ms"].to_numpy(float) + (osl - 1.0) * d["tpot_ms"].to_numpy(float)
    e2e_p = d["ttft_pred"].to_numpy(float) + (osl - 1.0) * d["tpot_pred"].to_numpy(float)
    parts = []
    for metric, meas, pred in (("ttft", d["ttft_ms"], d["ttft_pred"]), ("tpot", d["tpot_ms"], d["tpot_pred"]),
                               ("e2e", e2e_m, e2e_p)):
        parts.append(_frame(kind="inference", set="silicon", source=src, engine=eng, family=fam, metric=metric,
                            unit="silicon:" + d["model"].astype(str),
                            resid=np.log(np.asarray(meas, float) / np.asarray(pred, float))))
    return pd.concat(parts, ignore_index=True), p


def training_residuals(path: str | None = None, max_nfev: int = 60) -> tuple[pd.DataFrame, Path]:
    """Leave-one-source-out residuals of the training configurations (tokens/s/GPU)."""
    from objectives.training import Factors

    from .training import configurations, load, loso

    df, p = load(path)
    cfg = configurations(df)
    d = loso(cfg, Factors.load(), max_nfev=max_nfev)
    fam = d["c_gpu"].map(lambda g: U.gpu_family(str(g))).to_numpy(object)
    return _frame(kind="training", set="training", source="analytical", engine="-", family=fam, metric="throughput",
                  unit="training:" + d["source"].astype(str),
                  resid=np.log(d["tokens_meas"].to_numpy(float) / d["pred"].to_numpy(float))), p


def to_json(res: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """The document `objectives.uncertainty.from_json` reads: residuals sorted per group, with their unit."""
    units = sorted(res["unit"].unique())
    idx = {u: i for i, u in enumerate(units)}
    groups = []
    for key, g in res.groupby(["kind", "set", "source", "engine", "family", "metric"], sort=True):
        g = g.sort_values("resid")
        groups.append({**dict(zip(["kind", "set", "source", "engine", "family", "metric"], key)), "n": int(len(g)),
                       "residuals": [round(float(x), 5) for x in g["resid"]],
                       "units": [idx[u] for u in g["unit"]]})
    return {"meta": meta, "units": units, "groups": groups}


def random_split(res: pd.DataFrame, seed: int = 1, levels: tuple[float, ...] = LEVELS) -> pd.DataFrame:
    """A random half of the rows scored against bands built from the other half (split conformal's own setting:
    rows exchangeable with the calibration rows); the scored rows with `cov_<level>` columns."""
    m = np.random.default_rng(seed).random(len(res)) < 0.5
    test = res[m].reset_index(drop=True).copy()
    b = bands_of(res[~m])
    for lv in levels:
        test[f"cov_{lv:g}"] = covered(b, test, lv)
    return test


def bands_of(res: pd.DataFrame) -> U.Bands:
    return U.Bands(res.drop(columns=["set"], errors="ignore").reset_index(drop=True))


def covered(b: U.Bands, rows: pd.DataFrame, level: float) -> np.ndarray:
    """Whether each row's residual lies inside the band `b` gives it at `level` (NaN where no band)."""
    out = np.full(len(rows), np.nan)
    keys = ["kind", "source", "engine", "family", "metric"]
    for key, g in rows.groupby(keys, sort=False):
        kind, source, engine, family, metric = key
        try:
            lo, hi, _ = b.lookup(kind, source, engine, family, metric, level)
        except ValueError:
            continue
        i = rows.index.get_indexer(g.index)
        r = g["resid"].to_numpy(float)
        out[i] = (r >= lo) & (r <= hi)
    return out


def held_out(res: pd.DataFrame, by: str = "unit", levels: tuple[float, ...] = LEVELS) -> pd.DataFrame:
    """Each value of column `by` held out in turn: its rows scored against bands built from the others. Returns
    the rows with `cov_<level>` columns (1.0 inside, 0.0 outside, NaN no band)."""
    res = res.reset_index(drop=True)
    out = res.copy()
    for lv in levels:
        out[f"cov_{lv:g}"] = np.nan
    for u in res[by].unique():
        m = (res[by] == u).to_numpy()
        b = bands_of(res[~m])
        test = res[m]
        for lv in levels:
            out.loc[m, f"cov_{lv:g}"] = covered(b, test, lv)
    return out


def coverage_table(h: pd.DataFrame, by: list[str], levels: tuple[float, ...] = LEVELS,
                   bias: bool = False) -> pd.DataFrame:
    """Rows and held-out coverage (% of rows inside the band) per group of `by`, per band level; `bias`: also the
    median measured / predicted ratio of the group."""
    g = h.groupby(by, sort=True)
    t = pd.DataFrame({"rows": g.size().astype(int)})
    if bias:
        t["median measured / predicted"] = np.exp(g["resid"].median()).map(lambda v: f"{v:.2f}")
    for lv in levels:
        t[f"{lv:.0%} band"] = (g[f"cov_{lv:g}"].mean() * 100).map(lambda v: "-" if np.isnan(v) else f"{v:.1f}")
    t.index = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in t.index]
    t.index.name = " / ".join(by)
    return t


def width_table(b: U.Bands, res: pd.DataFrame, level: float = 0.8) -> pd.DataFrame:
    """The shipped band per group: its residual count, the pool it came from and the band as factors of the
    prediction."""
    rows = []
    for key, g in res.groupby(["kind", "source", "engine", "family", "metric"], sort=True):
        kind, source, engine, family, metric = key
        try:
            lo, hi, used = b.lookup(kind, source, engine, family, metric, level)
            band = f"{np.exp(lo):.2f} - {np.exp(hi):.2f}"
        except ValueError as exc:
            used, band = str(exc), "none"
        rows.append({"group": "/".join(key), "rows": len(g), "band from": used,
                     f"{level:.0%} band (x prediction)": band})
    return pd.DataFrame(rows).set_index("group")


def _md(t: pd.DataFrame) -> str:
    from .report import _md as md
    return md(t)


def run(published: str | None = None, silicon: str | None = None, training: str | None = None,
        out: str | Path = U.DATA_FILE, report: str | Path = REPORT) -> str:
    """Compute the held-out residuals, write the bands (`out`) and the honesty report (`report`); returns the
    report text."""
    t0 = _dt.datetime.now()
    parts, inputs = [], {}
    for name, fn, arg in (("published", published_residuals, published), ("silicon", silicon_residuals, silicon),
                          ("training", training_residuals, training)):
        r, p = fn(arg)
        log.info("%s: %d residuals", name, len(r))
        parts.append(r)
        inputs[p.name] = sha256(p)
    res = pd.concat(parts, ignore_index=True)
    for name, f in U.model_files().items():
        inputs[name] = sha256(f) if f.exists() else ""
    meta = {"built": _dt.date.today().isoformat(), "command": U.BUILD_COMMAND,
            "residual": "log(measured / predicted); each row predicted by a refit that did not see its unit",
            "held_out_units": {"published": "engine version (report.loso, 10 evaluations per refit)",
                               "silicon": "model (silicon.leave_one_model_out, 30 evaluations per refit)",
                               "training": "source (training.loso, 60 evaluations per refit)"},
            "method": "split-conformal equal-tailed bands per (kind, source, engine, GPU family, metric), pooled "
                      f"when a group has fewer than max({U.MIN_GROUP}, 2/(1-level)-1) residuals or residuals of "
                      f"fewer than {U.MIN_UNITS} held-out units (objectives/uncertainty.py)",
            "inputs": inputs, "rows": {k: int(v) for k, v in res["set"].value_counts().items()}}
    doc = to_json(res, meta)
    Path(out).write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    U.load_bands.cache_clear()
    text = honesty_report(res, meta)
    Path(report).parent.mkdir(parents=True, exist_ok=True)
    Path(report).write_text(text)
    log.info("bands built in %.0f s", (_dt.datetime.now() - t0).total_seconds())
    return text


def honesty_report(res: pd.DataFrame, meta: dict[str, Any]) -> str:
    """bands.md: held-out coverage per set, metric and unit, and the shipped bands."""
    h = held_out(res, "unit")
    sil = res[res["set"] == "silicon"]
    he = held_out(sil, "engine")
    lines = ["# Uncertainty bands: honesty check", "",
             f"Built {meta['built']} by `{meta['command']}`; inputs (sha256): "
             + ", ".join(f"{k} `{v[:12]}`" for k, v in meta["inputs"].items()) + ".", "",
             "Residuals are log(measured / predicted), each from a refit that did not see the row's unit "
             "(published: engine version left out; silicon: model left out; training: source left out). For the "
             "check below each unit is held out once more: its rows are scored against bands built from the other "
             "units' residuals only (split-conformal, `objectives/uncertainty.py`). Target: the 80 % band holds "
             "70-90 % of the held-out measurements.", "",
             "## Held-out coverage per set (leave one unit out)", "", _md(coverage_table(h, ["set"])), "",
             "## Per set and metric", "", _md(coverage_table(h, ["set", "metric"])), "",
             "## All rows", "", _md(coverage_table(h.assign(all="all"), ["all"])), "",
             "## Silicon rows, leave one engine out", "", _md(coverage_table(he, ["engine"])), "",
             "## Per held-out unit", "",
             "The median ratio shows each unit's bias under its leave-one-out refit: where units differ by more than "
             "their own spread (as the silicon models may), bands built from the other units miss the held-out one; "
             "with four silicon models no band can be certified for a fifth (split conformal needs at least "
             "2 / (1 - level) - 1 exchangeable units for that).", "",
             _md(coverage_table(h, ["set", "unit"], bias=True)), "",
             "## A random half of the rows held out (split conformal's own setting)", "",
             "Rows exchangeable with the calibration rows (configurations of engines, models and sources the "
             "residuals include): bands from one random half, coverage of the other.", "",
             _md(coverage_table(random_split(res), ["set"])), "",
             "## Shipped 80 % bands per group", "", _md(width_table(bands_of(res), res)), ""]
    return "\n".join(lines)
