"""Reading a stored study's trial: its parameters, metrics, model and workload."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dse

from .flags import DeployError


def _open(study: Any, storage: str | None) -> Any:
    if isinstance(study, dse.Study):
        return study
    if not isinstance(study, str):
        raise DeployError(f"study must be a study name or a dse.Study, got {type(study).__name__}")
    return dse.load_study(study, storage=storage)


def _study_files(study: Any, study_file: str | None) -> list[Path]:
    if study_file is not None:
        p = Path(study_file)
        if not p.is_file():
            raise DeployError(f"study_file={study_file!r} does not exist")
        return [p]
    out = []
    url = str(study.storage_url)
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        out.append(db.with_name(f"{study.name}.py"))
    out.append(Path("studies") / f"{study.name}.py")
    return [p for p in dict.fromkeys(out) if p.is_file()]


def _from_study_file(study: Any, study_file: str | None) -> tuple[str | None, Any, dict[str, Any]]:
    """(model, workload, knob defaults) named by the evaluate of the study file that defines ``study`` (its
    ``llm_serving_objective(defaults=...)``, the values its trials were evaluated with for knobs the space lacks);
    (None, None, {}) without one."""
    from dse.spec import load_study_file

    for f in _study_files(study, study_file):
        spec = load_study_file(f)
        if spec.name != study.name:
            if study_file is not None:
                raise DeployError(f"study file {str(f)!r} defines study {spec.name!r}, not {study.name!r}")
            continue
        ev = spec.evaluate
        _same_setup(study, ev, f)
        defaults = getattr(ev, "defaults", None)
        if defaults is None:   # a confirming objective (`objective.confirming(...)`) holds the objective
            defaults = getattr(getattr(ev, "objective", None), "defaults", None)
        return getattr(ev, "model", None), getattr(ev, "workload", None), dict(defaults or {})
    return None, None, {}


def _same_setup(study: Any, evaluate: Any, path: Path) -> None:
    """Refuse a study file whose objective's arguments (model, workload, SLO, defaults...: the setup part of its
    version and the ``setup`` it declares, `llm_serving`) are not those the study's trials were evaluated with:
    its workload would be benchmarked beside predictions made for another (e.g. the file edited after the run)."""
    from dse.evaluation import objective_differences, objective_info

    stored = study.meta.get("objective") or {}
    if not stored:
        return
    changed = [d for d in objective_differences(stored, objective_info(evaluate))
               if d.startswith(("inputs.setup.", "version part setup."))]
    if changed:
        raise DeployError(f"study file {str(path)!r} evaluates with other arguments than study {study.name!r} was "
                          f"run with ({'; '.join(changed)}): its trials' predictions are for the stored ones; pass "
                          f"the study file it was run with (--study-file), or the model and workload (--model, "
                          f"workload=)")


def trial_inputs(study: Any, trial: int, *, storage: str | None = None, model: str | None = None,
                 workload: Any = None, study_file: str | None = None
                 ) -> tuple[dict[str, Any], dict[str, float], str, Any, str | None]:
    """(configuration, metrics, model, workload, the engine the trial was predicted for when it has an ``engine``
    parameter) of trial number ``trial`` of ``study``. Knobs the trial lacks (not in the space, or inactive) take
    the study file's objective ``defaults`` where the file is read (no ``model`` / ``workload`` given), as its
    evaluate did (e.g. ``defaults={"eplb": True}``).

    DeployError when the trial does not exist, did not complete, or does not fit in its GPUs' memory, and when no
    model can be found (pass ``model=``).
    """
    st = _open(study, storage)
    try:
        number = int(trial)
    except (TypeError, ValueError):
        raise DeployError(f"trial={trial!r} must be a trial number (an integer)") from None
    if number != trial or isinstance(trial, bool):
        raise DeployError(f"trial={trial!r} must be a trial number (an integer)")
    t = st.trials
    rows = t[t["number"] == number]
    if rows.empty:
        rng = f"0..{int(t['number'].max())}" if len(t) else "none (the study is empty)"
        raise DeployError(f"trial {number} does not exist in study {st.name!r} ({len(t)} trials; numbers {rng})")
    row = rows.iloc[0]
    if row["state"] != "complete":
        raise DeployError(f"trial {number} of study {st.name!r} is {row['state']!r}, not complete: it has no "
                          f"configuration evaluated to deploy")
    names = list(st.space.names)
    config = {k: row[k] for k in names if k in row.index and not _nan(row[k])}
    metrics = {k: float(row[k]) for k in row.index if k not in names and k not in ("number", "grid_point")
               and isinstance(row[k], (int, float)) and not isinstance(row[k], bool) and not _nan(row[k])}
    if "fits" in metrics and metrics["fits"] < 1:
        why = f": {row['reason']}" if "reason" in row.index and isinstance(row["reason"], str) and row["reason"] else ""
        raise DeployError(f"trial {number} of study {st.name!r} does not fit in its GPUs' memory (fits=0){why}; "
                          "the engine would fail to start it")
    mdl = model or config.pop("model", None)
    wl = workload
    if mdl is None or wl is None:
        f_model, f_workload, defaults = _from_study_file(st, study_file)
        mdl = mdl or f_model
        wl = wl if wl is not None else f_workload
        for k, v in defaults.items():
            if k not in config and not _nan(v):
                config[k] = v
    predicted_for = config.pop("engine", None)
    if mdl is None:
        raise DeployError(f"study {st.name!r} records no model (no 'model' parameter, no study file "
                          f"{st.name}.py beside its database or under studies/): pass model=... (--model)")
    return config, metrics, str(mdl), wl, None if predicted_for is None else str(predicted_for)


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
