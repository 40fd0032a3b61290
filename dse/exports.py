"""Exports of a study: a labelled xarray.Dataset, Parquet / CSV / netCDF files, a copy in Optuna's storage."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import __version__
from .errors import StudyError
from .vocabulary import TRIAL_COLUMNS

if TYPE_CHECKING:
    from .study import Study

_TRIAL_COLUMNS = TRIAL_COLUMNS


def to_xarray(study: Study) -> Any:
    """Labelled results as an xarray.Dataset: one dimension per parameter, one variable per metric.

    A full grid becomes a dense Dataset; other studies give a sparse one (missing points are NaN).
    """
    import xarray as xr

    df = study.results()
    if "state" in df.columns:
        df = df[df["state"] == "complete"]
    metric_cols = [c for c in df.columns if c not in study.space.names and c not in _TRIAL_COLUMNS]
    metric_cols = [c for c in metric_cols if pd.api.types.is_numeric_dtype(df[c]) or c == "feasible"]
    data = df[study.space.names + metric_cols].copy()
    for n in study.space.names:
        if data[n].isna().any():
            data[n] = data[n].astype(object).where(data[n].notna(), "inactive")
    data = data.drop_duplicates(subset=study.space.names, keep="last").set_index(study.space.names)
    ds = xr.Dataset.from_dataframe(data)
    ds.attrs.update({"study": study.name, "objectives": json.dumps(study.objectives), "dse_version": __version__})
    return ds

def export(study: Study, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write the trials (or full grid results) to Parquet, CSV or netCDF, chosen by `format` or the extension."""
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    aliases = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "netcdf": "netcdf", "nc": "netcdf"}
    if fmt not in aliases:
        raise StudyError(f"export format {fmt!r} is not supported; valid formats are parquet, csv, netcdf")
    fmt = aliases[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "netcdf":
        ds = study.to_xarray()
        for name in list(ds.coords):
            if ds[name].dtype == object:
                ds[name] = ds[name].astype(str)
        ds.to_netcdf(path, engine="h5netcdf" if _has("h5netcdf") else None)
        return path
    df = study.results()
    if fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path

def to_optuna(study: Study, url: Any = None, study_name: str | None = None) -> Any:
    """Copy the study into an Optuna storage (for optuna-dashboard); returns the optuna.Study.

    ``url`` is any Optuna storage URL (e.g. ``sqlite:///optuna.db``) or an ``optuna.storages.BaseStorage``;
    None gives an in-memory storage.
    Failed trials are copied as FAIL; metric values that are not objectives become user attributes.
    """
    import optuna

    from .encoding import optuna_distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions: list[Any] = ["minimize" if d == "min" else "maximize" for d in study.spec.directions]
    ostudy = optuna.create_study(
        storage=url, study_name=study_name or study.name, directions=directions, load_if_exists=False
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ostudy.set_metric_names(study.spec.names)
    ostudy.set_user_attr("dse_storage", study.storage_url)
    dists = optuna_distributions(study.space)
    trials = []
    for row in study._storage.load_trials(study._id, states=["complete", "failed"]).itertuples():
        params = {k: v for k, v in row.params.items() if v is not None and k in dists}
        metrics = row.metrics or {}
        ok = row.state == "complete"
        values = [float(metrics[n]) for n in study.spec.names] if ok else None
        attrs = {k: v for k, v in metrics.items() if k not in study.spec.names}
        attrs.update({"dse_number": int(row.number), "feasible": bool(row.feasible) if ok else False})
        if row.error:
            attrs["error"] = str(row.error)
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: dists[k] for k in params},
                values=values,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
                user_attrs=attrs,
            )
        )
    ostudy.add_trials(trials)
    return ostudy


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
