"""Exports of a study: a labelled xarray.Dataset, Parquet / CSV / netCDF files, a copy in Optuna's storage."""
from __future__ import annotations

import json
import logging
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
logger = logging.getLogger(__name__)


#: layouts of `to_xarray`
LAYOUTS = ("auto", "grid", "trials")
#: `to_xarray(layout="auto")` lays the results on a grid when at least this share of its cells holds a point
GRID_MIN_DENSITY = 0.25
#: ... and the grid has at most this many cells (a cell is 8 bytes per metric)
GRID_MAX_CELLS = 20_000_000


def to_xarray(study: Study, layout: str = "auto") -> Any:
    """Labelled results as an xarray.Dataset, one variable per metric.

    `layout`: "grid" gives one dimension per parameter (a point the study did not evaluate is NaN); "trials"
    one dimension ``trial`` (the trial numbers) with each parameter a coordinate along it; "auto" (default) the
    grid when its cells are mostly filled (a full grid search: at least `GRID_MIN_DENSITY` of them, and at most
    `GRID_MAX_CELLS`), else the trials (a random or evolutionary search over continuous parameters would make a
    grid of every distinct value of every parameter, almost all of it empty: 60 trials over three floats and an
    integer are 9 million cells). "grid" on more than `GRID_MAX_CELLS` cells raises StudyError.
    """
    import xarray as xr

    if layout not in LAYOUTS:
        raise StudyError(f"to_xarray layout {layout!r} is not supported; valid layouts are {', '.join(LAYOUTS)}")
    df = study.results()
    if "state" in df.columns:
        df = df[df["state"] == "complete"]
    names = study.space.names
    metric_cols = [c for c in df.columns if c not in names and c not in _TRIAL_COLUMNS]
    metric_cols = [c for c in metric_cols if pd.api.types.is_numeric_dtype(df[c]) or c == "feasible"]
    attrs = {"study": study.name, "objectives": json.dumps(study.objectives), "dse_version": __version__}
    data = df[names + metric_cols].copy()
    for n in names:
        if data[n].isna().any():
            data[n] = data[n].astype(object).where(data[n].notna(), "inactive")
    points = data.drop_duplicates(subset=names, keep="last")
    cells = 1
    for n in names:
        cells *= max(int(points[n].nunique()), 1)
    dense = cells <= GRID_MAX_CELLS and len(points) >= GRID_MIN_DENSITY * cells
    if layout == "grid" and cells > GRID_MAX_CELLS:
        raise StudyError(f"the results of study {study.name!r} on a grid would hold {cells:,} cells for "
                         f"{len(points):,} points (at most {GRID_MAX_CELLS:,}); use layout='trials'")
    if layout == "trials" or (layout == "auto" and not dense):
        if layout == "auto":
            logger.info("study %r: %d points would fill %.2g%% of a %s-cell grid; laid out along 'trial'",
                        study.name, len(points), 100.0 * len(points) / cells, f"{cells:,}")
        data = df[names + metric_cols].copy()
        for n in names:  # a parameter a condition switched off: NaN where numeric, "inactive" where not
            if not pd.api.types.is_numeric_dtype(data[n]) and data[n].isna().any():
                data[n] = data[n].astype(object).where(data[n].notna(), "inactive")
        data.index = pd.Index(df["number"].to_numpy(int) if "number" in df.columns else range(len(df)),
                              name="trial")
        ds = xr.Dataset.from_dataframe(data).set_coords(names)
        ds.attrs.update({**attrs, "layout": "trials"})
        return ds
    ds = xr.Dataset.from_dataframe(points.set_index(names))
    ds.attrs.update({**attrs, "layout": "grid"})
    return ds


def export(study: Study, path: str | os.PathLike, format: str | None = None, layout: str = "auto") -> Path:
    """Write the trials (or full grid results) to Parquet, CSV or netCDF, chosen by `format` or the extension;
    netCDF holds `to_xarray(study, layout)`."""
    path = Path(path)
    aliases = {"parquet": "parquet", "pq": "parquet", "csv": "csv", "netcdf": "netcdf", "nc": "netcdf"}
    by_ext = aliases.get(path.suffix.lstrip(".").lower())
    if format is None and by_ext is None:
        raise StudyError(f"export to {str(path)!r}: its extension names no format; give the format (--format "
                         f"parquet, csv or netcdf) or an extension .parquet, .csv or .nc")
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in aliases:
        raise StudyError(f"export format {fmt!r} is not supported; valid formats are parquet, csv, netcdf")
    fmt = aliases[fmt]
    if by_ext is not None and by_ext != fmt:
        raise StudyError(f"export to {str(path)!r}: format {format!r} contradicts the file's extension (a {by_ext} "
                         f"file); drop the format to write {by_ext}, or name the file for {fmt}")
    if _is_sqlite(path):
        raise StudyError(f"export to {str(path)!r}: that file is a SQLite database (a study storage, perhaps this "
                         f"study's own), which the {fmt} file would overwrite; give another output path (-o) or "
                         f"delete it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "netcdf":
        ds = to_xarray(study, layout)
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

#: the first bytes of every SQLite 3 database file (sqlite.org/fileformat.html, "The Database Header")
SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` is an existing SQLite database file (its header), e.g. a study's storage."""
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


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
