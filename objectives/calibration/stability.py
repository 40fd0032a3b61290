"""How stable the published fit is: full refits from the defaults on resampled rows, and what each lands on.

`run` refits every factor `fit.build_spec` names from its hand-set default (the factors of the silicon fit and
every other factor held at `eff`'s values, so that a refit does not reset them) on the rows as given and on
`n_boot` bootstrap resamples of them (fit rows and, with ``loaded``, loaded-server rows drawn with replacement,
seeded), then scores each run on all the rows: MdAPE per metric class of the fit rows, and of the loaded-server rows
on the simulator (`report.serving_rows`, the check the fit does not see unless ``loaded``). A factor the rows
identify lands on nearly the same value in every run; a flat valley shows as a wide spread, and as loaded-server
figures that move from run to run.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from objectives.inference.efficiency import Efficiency, default_efficiency

from .fit import Spec, build_spec, fit, held_spec
from .predict import STATIC_KINDS
from .report import scored, serving_rows


def resample(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A bootstrap resample of `df`'s fit rows (kind in STATIC_KINDS) and, apart, of its loaded-server rows (kind
    "serving"), each as many as given, drawn with replacement (numpy Generator seeded with `seed`)."""
    rng = np.random.default_rng(seed)
    parts = []
    for rows in (df[df["kind"].isin(STATIC_KINDS)], df[df["kind"] == "serving"]):
        parts.append(rows.iloc[rng.integers(0, len(rows), len(rows))])
    return pd.concat(parts)


def run(df: pd.DataFrame, eff: Efficiency, n_boot: int = 3, loaded: bool = False, seed: int = 0,
        max_nfev: int = 400, hold: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Full refits from the defaults on `df` and on `n_boot` resamples (`resample`, seeds seed + 1 ...); `loaded`
    as in `fit.fit`; `hold`: factor names held at their defaults (`fit.held_spec`).

    Returns (factors: one column per run, "all" then "boot<seed>", one row per fitted factor, plus "min", "max" and
    "spread_%" = (max - min) / median x 100; scores: one row per run, columns nfev, "fit <class>" (MdAPE % of the
    fit rows per metric class) and "loaded <class>" (MdAPE % of the loaded-server rows on the simulator))."""
    rows = df[df["kind"].isin(STATIC_KINDS)]
    spec = build_spec(rows)
    start = spec.to_eff(spec.x0(default_efficiency()), eff, dict(eff.meta))
    spec = held_spec(rows, list(hold))
    runs: list[tuple[str, pd.DataFrame]] = [("all", df)]
    runs += [(f"boot{seed + i}", resample(df, seed + i)) for i in range(1, n_boot + 1)]
    factors: dict[str, pd.Series] = {}
    scores: list[dict[str, Any]] = []
    for name, train in runs:
        seen = set(build_spec(train[train["kind"].isin(STATIC_KINDS)]).paths)
        sub = Spec([p for p in spec.paths if p in seen])
        e, info = fit(train, base=start, spec=sub, max_nfev=max_nfev, loaded=loaded)
        factors[name] = pd.Series(info["x"], index=info["names"])
        d = scored(df, e)
        s, _ = serving_rows(df, e)
        row: dict[str, Any] = {"run": name, "nfev": info["nfev"]}
        row.update({f"fit {c}": round(float(v), 2) for c, v in d.groupby("class")["ape"].median().items()})
        if s is not None:
            row.update({f"loaded {c}": round(float(v), 2) for c, v in s.groupby("class")["ape"].median().items()})
        scores.append(row)
    f = pd.DataFrame(factors)
    f["min"], f["max"] = f.min(axis=1), f.max(axis=1)
    f["spread_%"] = ((f["max"] - f["min"]) / f[list(factors)].median(axis=1) * 100.0).round(1)
    return f, pd.DataFrame(scores).set_index("run")
