"""`dse calibrate`: fit the engine-level factors of the measured-profile path on the user's own end-to-end results.

    dse calibrate RESULTS [RESULTS ...] [--layout silicon|vllm_json|published] [--gpu H200-SXM-141GB --tp 4 ...] -o my.json

RESULTS are files in the layouts `measurements.read_measurements` reads (the aiconfigurator silicon CSV, vLLM
`bench serve --save-result` JSON, a file or a folder of them, with the deployment in --metadata or given here, the
published-measurements CSV, whose rows are static batches and offered rates this fit cannot use: `python -m
objectives.calibration fit` fits them), in one call whatever their layouts (`read_results`). Each row is priced as
its engine release ran it (`measurements.engine_releases`: vLLM's async scheduling from 0.14.0, TensorRT-LLM's
overlap scheduler from 1.0, `profiles.OVERLAP_SINCE`), with the GPU's newest kernel tables: the silicon CSV's
``backend_version``, the published table's engine label ("TensorRT-LLM 0.13.0"), a vLLM result's ``engine_version``
--metadata key or a version in its engine name ("vllm@0.11.0"); a vLLM result that records none takes
``--engine-version``, else the newest release the model knows (the bare engine name). The output is a calibrated
profile: the fitted factors and their hash, every file read with the sha256 of its bytes, the rows fitted and those
left out by reason; accepted as `profile=` by `inference.estimate`, `inference.max_throughput`,
`serving.simulate` and `llm_serving_objective`, whose studies record the file and its hashes in their provenance
(`profile_provenance`).

    dse calibrate RESULTS [RESULTS ...] --check [--profile my.json] [--predictions rows.csv]

scores the model on RESULTS without fitting anything (`check`): the shipped factors (or a calibrated profile's),
rows read, predicted and why not, TTFT / TPOT MdAPE and the median predicted / measured ratio per engine, GPU,
model, mode and load. This is how measurements nobody fitted to are checked.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from objectives.inference.efficiency import Efficiency, from_params

from .measurements import LAYOUTS

FORMAT = "dse-calibrated-profile/1"


def read_results(paths: Sequence[str | Path], layout: str | None = None, **defaults: Any) -> pd.DataFrame:
    """The normalized rows of every file in `paths` (`measurements.read_measurements`; a folder reads the vLLM
    results in it). `defaults` (the deployment a vLLM result does not record) fill the vLLM results only, so silicon
    or published files may come in the same call; with no vLLM result among `paths` they apply to nothing and
    raise TypeError."""
    from .measurements import detect_layout, read_measurements

    lays = [layout or detect_layout(p) for p in paths]
    if defaults and "vllm_json" not in lays:
        raise TypeError(f"read_measurements: keyword(s) {sorted(defaults)} apply to vLLM JSON results only; "
                        f"{', '.join(f'{p} ({lay})' for p, lay in zip(paths, lays))} record their deployments "
                        "themselves")
    frames = [read_measurements(p, layout=lay, **(defaults if lay == "vllm_json" else {}))
              for p, lay in zip(paths, lays)]
    return pd.concat(frames, ignore_index=True)


def _measured(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: (TTFT and TPOT both measured, a throughput measured, a static batch's TTFT alone measured)."""
    from .silicon import _static, measured_throughput

    both = (rows["ttft_ms"].notna() & rows["tpot_ms"].notna()).to_numpy()
    thr = np.isfinite(measured_throughput(rows)[0])
    ttft_only = (_static(rows) & rows["ttft_ms"].notna()).to_numpy()
    return both, thr, ttft_only


def not_fitted(rows: pd.DataFrame) -> np.ndarray:
    """Why each row cannot enter a fit ("" where it can): `silicon.unpredictable`'s reasons, or nothing measured the
    fit scores (TTFT and TPOT both; an output throughput; a static batch's TTFT)."""
    from .silicon import unpredictable

    why = unpredictable(rows)
    both, thr, ttft_only = _measured(rows)
    return np.where((why == "") & ~(both | thr | ttft_only), "no TTFT and TPOT measured both, nor a throughput",
                    why).astype(object)


def not_predicted(d: pd.DataFrame) -> np.ndarray:
    """`not_fitted`'s reasons for rows scored by `silicon.scored` (predictions in ttft_pred / tpot_pred / thr_ape),
    plus, where the model ran the row and found no prediction for what it measured, the cost model's reason
    (`silicon.predict`'s ``unfit_reason``: memory, a layout the engine does not run, heads or expert split; for a
    disaggregated row its pool's) or, where it gives none, "does not fit (memory, heads or expert split)"."""
    why = not_fitted(d)
    both, thr, ttft_only = _measured(d)
    lat = (d["tpot_pred"].notna() & d["ttft_pred"].notna()).to_numpy()
    ok = np.where(both, lat, True) & np.where(thr, d["thr_ape"].notna().to_numpy(), True) \
        & np.where(ttft_only, d["ttft_pred"].notna().to_numpy(), True)
    reason = d["unfit_reason"].fillna("").astype(str).to_numpy(object) if "unfit_reason" in d else \
        np.full(len(d), "", dtype=object)
    unfit = np.where(reason != "", reason, "does not fit (memory, heads or expert split)")
    return np.where((why == "") & ~ok, unfit, why).astype(object)


def _first_rows(rows: pd.DataFrame, why: np.ndarray) -> str:
    """Each reason with its count and the first row it holds for (file, row, model, GPU)."""
    out = []
    for reason, n in pd.Series(why[why != ""]).value_counts().items():
        r = rows[why == reason].iloc[0]
        out.append(f"{reason}: {n} row(s), the first {r['source_file']}: row {int(r['source_row'])} (model "
                   f"{r['model']!r}, gpu {r['gpu']!r}, engine {r['engine']!r})")
    return "; ".join(out)


def fit(paths: Sequence[str | Path], out: str | Path, *, layout: str | None = None, max_nfev: int = 30,
        **defaults: Any) -> dict[str, Any]:
    """Read `paths` (`read_results`), fit the engine factors on their predictable rows, write the calibrated
    profile JSON to `out` and return it: the factors and their hash, every file read with the sha256 of its bytes,
    the rows fitted and those left out by reason (`skipped`). Raises ValueError when no row can be predicted,
    naming each reason with the first file and row it holds for; nothing is written then."""
    from .silicon import fit_engine_factors, mdape_by, scored

    check_output(out, "-o")
    rows = read_results(paths, layout, **defaults)
    read = [str(Path(f).resolve()) for f in pd.unique(rows["source_file"])]
    why = not_fitted(rows)
    if (why == "").any():  # rows the shipped factors find no prediction for would fit nothing
        why[why == ""] = not_predicted(scored(rows[why == ""]))
    ok = why == ""
    if not ok.any():
        raise ValueError(f"no predictable rows in {', '.join(map(str, paths))}: {_first_rows(rows, why)}")
    skipped = {str(k): int(v) for k, v in pd.Series(why[~ok]).value_counts().items()}
    rows = rows[ok]
    eff, info = fit_engine_factors(rows, max_nfev=max_nfev, scoped=True)
    d = scored(rows, eff)
    factors = {n: _get(eff.params, n) for n in info["names"]}
    scope = fit_scope(rows, factors)
    doc = {"format": FORMAT, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "inputs": [{"file": f, "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()} for f in read],
           "rows": int(len(rows)), "skipped": skipped, "factors": factors,
           "mdape_in_sample": {"ttft": float(d["ttft_ape"].median()), "tpot": float(d["tpot_ape"].median()),
                               "throughput": float(d["thr_ape"].median())},
           "by_engine": mdape_by(d, ["engine"]).reset_index().to_dict(orient="records"), "scope": scope}
    doc["sha256"] = factors_sha256(factors)
    doc = _strict(doc)  # a metric no row measures (NaN) is null: the file is JSON any tool reads
    Path(out).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def fit_scope(rows: pd.DataFrame, factors: dict[str, float]) -> dict[str, Any]:
    """What a calibrated profile of ``factors`` fitted on ``rows`` changes (`fit`'s scoped fit,
    `silicon.fit_engine_factors(scoped=True)`): the engines its factors name (each on every GPU: the engine factors
    have no GPU of their own), the GPUs and models the rows measured, the factors it writes that every engine and GPU
    shares, and those it keeps at the shipped values because the rows do not identify them
    (`silicon.shared_identified`)."""
    from objectives import catalog, profiles

    from .silicon import SHARED_MIN_ENGINES, SHARED_MIN_LENGTHS, _engine, _is_moe
    engines = sorted({n.split(".")[1] for n in factors if n.count(".") == 1
                      and n.split(".")[1] in profiles.ENGINE_NAMES})
    shared = sorted(n for n in factors if n.count(".") == 0)
    could = {"profile_attn_scale"} | ({"profile_moe_layer_us"} if _is_moe(pd.unique(rows["model"])).any() else set())
    kept = sorted(could - set(shared))

    def gpu_name(g: Any) -> str:
        try:
            return str(catalog.gpu(g).name)
        except (KeyError, ValueError):
            return str(g)
    return {"engines": engines, "gpus_measured": sorted({gpu_name(g) for g in pd.unique(rows["gpu"])}),
            "engines_measured": sorted(set(_engine(rows))), "models_measured": sorted(map(str, pd.unique(rows["model"]))),
            "shared_factors": shared, "kept_shipped": kept,
            "kept_why": (f"the factors every engine shares are fitted from rows of {SHARED_MIN_ENGINES}+ engines and "
                         f"{SHARED_MIN_LENGTHS}+ request lengths (silicon.shared_identified)" if kept else "")}


def scope_lines(doc: dict[str, Any]) -> list[str]:
    """`dse calibrate`'s summary of what the written profile changes (`fit_scope`; a file written before the scope
    was recorded says nothing)."""
    sc = doc.get("scope")
    if not sc:
        return []
    lines = [f"  changes engines: {', '.join(sc['engines']) or 'none'} (on every GPU: an engine's factors have no "
             f"GPU of their own; the rows measured {', '.join(sc['gpus_measured'])}); other engines keep the shipped "
             "factors"]
    if sc["shared_factors"]:
        lines.append(f"  changes factors every engine and GPU shares: {', '.join(sc['shared_factors'])}")
    if sc["kept_shipped"]:
        lines.append(f"  keeps the shipped {', '.join(sc['kept_shipped'])}: {sc['kept_why']}")
    return lines


#: what each output option of `dse calibrate` may replace: a file of the kind it writes (a refit replaces its own
#: calibrated profile, a rerun of the check its predictions), told by its content (`_written_by`)
_OUTPUTS = {"-o": "a calibrated profile", "--predictions": "a predictions CSV (--check --predictions)"}


def _written_by(p: Path, flag: str) -> bool:
    """Whether file ``p`` is what ``flag`` writes: a calibrated profile (JSON of `FORMAT`), or a predictions CSV
    (its header holds ttft_pred and tpot_pred)."""
    try:
        if flag == "-o":
            return bool(json.loads(p.read_text()).get("format") == FORMAT)
        with p.open(encoding="utf-8", errors="replace") as f:
            header = f.readline().strip().split(",")
        return {"ttft_pred", "tpot_pred"} <= set(header)
    except (OSError, ValueError, AttributeError):
        return False


def check_output(out: str | Path, flag: str) -> None:
    """Refuse, before any file is read or fitted, an output path (``flag``: "-o" or "--predictions") whose
    writing would lose what it holds: a folder, or an existing file other than one that option wrote (a study
    database, a results file, anything else)."""
    p = Path(out)
    if p.is_dir():
        raise ValueError(f"{flag} {str(p)!r} is a folder; give a file path")
    if p.exists() and not _written_by(p, flag):
        raise ValueError(f"{flag} {str(p)!r} already exists and is not {_OUTPUTS[flag]}: writing there would "
                         f"replace what it holds; give another path, or delete it first")


def _strict(x: Any) -> Any:
    """`x` with every NaN or infinite number (numpy's too) as None and numpy numbers as Python ones: strict JSON."""
    if isinstance(x, dict):
        return {str(k): _strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_strict(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    return x


#: client concurrency bands of the check's load table
_LOAD_BANDS = ((0, 16, "C <= 16"), (16, 64, "16 < C <= 64"), (64, float("inf"), "C > 64"))


def check(paths: Sequence[str | Path], *, layout: str | None = None, profile: str | Path | None = None,
          **defaults: Any) -> tuple[str, pd.DataFrame]:
    """Score the model on measurements without fitting: read `paths` (`read_results`), keep each measurement once
    (`silicon.distinct_measurements`), predict every row with the shipped factors (or those of the calibrated
    `profile`) and return a markdown summary and the rows with ttft_pred / tpot_pred / source and their APE (%).
    Rows the model cannot predict are counted with the reason (`silicon.unpredictable`, or a deployment that does
    not fit)."""
    from .report import _md
    from .silicon import distinct_measurements, mdape_by, scored

    rows = read_results(paths, layout, **defaults)
    n_read = len(rows)
    both, thr, ttft_only = _measured(rows)
    measured = both | thr | ttft_only
    rows = distinct_measurements(rows[measured])
    eff = load_profile(profile) if profile is not None else None
    d = scored(rows, eff)
    why = not_predicted(d)
    d["not_predicted"] = why
    d["source"] = d["source"].where(why == "", "not predicted")
    conc = d["concurrency"].to_numpy(float)
    d["load"] = np.select([(conc > lo) & (conc <= hi) for lo, hi, _ in _LOAD_BANDS],
                          [name for _, _, name in _LOAD_BANDS], "unknown")
    d["ttft_ratio"] = d["ttft_pred"] / d["ttft_ms"]
    d["tpot_ratio"] = d["tpot_pred"] / d["tpot_ms"]
    ok = d["not_predicted"] == ""
    src = "the shipped factors" if profile is None else f"calibrated profile {profile}"
    lines = [f"# Check of the cost model on {', '.join(map(str, paths))} ({src}; nothing fitted)", "",
             f"{n_read} rows read; {int(measured.sum())} with a TTFT and a TPOT, a throughput or a static batch's "
             f"TTFT; {len(d)} distinct measurements; "
             f"**{int(ok.sum())} predicted ({100.0 * ok.mean() if len(d) else 0.0:.1f} %)**.", ""]
    for reason, n in d.loc[~ok, "not_predicted"].value_counts().items():
        models = pd.unique(d.loc[d["not_predicted"] == reason, "model"])[:6]
        lines.append(f"- not predicted, {reason}: {n} ({', '.join(map(str, models))})")
    if ok.any():
        scored_, ratio = {}, {}
        for m in ("ttft", "tpot"):  # a metric no predicted row measures is said so, not printed as "nan %"
            ape, r = d.loc[ok, f"{m}_ape"], d.loc[ok, f"{m}_ratio"]
            scored_[m] = f"{ape.median():.1f} %" if ape.notna().any() else None
            ratio[m] = f"{r.median():.2f}" if r.notna().any() else None
        have = [m for m in scored_ if scored_[m] is not None]
        lines += ["", "**All predicted rows" + "".join(f"{', ' if i else ': '}{m.upper()} MdAPE {scored_[m]}"
                                                    for i, m in enumerate(have)) + "**"
                  + (" (median predicted / measured: " + ", ".join(f"{m.upper()} {ratio[m]}" for m in have) + ")"
                     if have else "")
                  + "".join(f"; {m.upper()}: no row measures one" for m in scored_ if scored_[m] is None)
                  + (f"; throughput MdAPE {d.loc[ok, 'thr_ape'].median():.1f} % on the "
                     f"{int(d.loc[ok, 'thr_ape'].notna().sum())} rows measuring one"
                     if d.loc[ok, "thr_ape"].notna().any() else ""), ""]
        for by in (["engine"], ["gpu"], ["model"], ["mode", "engine"], ["load"], ["source"]):
            t = mdape_by(d, by)
            g = d[ok].groupby(by, observed=True)
            t["ttft_ratio"] = g["ttft_ratio"].median().round(2)
            t["tpot_ratio"] = g["tpot_ratio"].median().round(2)
            lines += [_md(t), ""]
    return "\n".join(lines), d


def factors_sha256(factors: dict[str, Any]) -> str:
    """The hash of a calibrated profile's factors (dotted name -> value, values as floats): what `fit` records in
    the file and `load_profile` recomputes from the factors it reads, so an edited file is another model."""
    plain = {str(k): float(v) for k, v in factors.items()}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def _get(params: Any, dotted: str) -> float:
    v = params
    for k in dotted.split("."):
        v = v[k]
    return float(v)


def load_profile(path: str | Path, base: Efficiency | None = None) -> Efficiency:
    """The factors of a calibrated profile file over `base` (default: the shipped fit). Bad files name the file
    and what is wrong."""
    from objectives.inference.core import default_eff

    if not str(path).strip():
        raise ValueError(f"profile={str(path)!r}: empty; give the calibrated profile file `dse calibrate RESULTS -o "
                         "FILE.json` wrote, or None for the shipped factors")
    p = Path(path)
    if p.suffix.lower() == ".npz":
        raise ValueError(f"{p}: a measured kernel profile (.npz), not a calibrated profile: the model picks a GPU's "
                         "kernel tables with engine= ('vllm', 'sglang==0.5.14', ...; objectives.profiles.available); "
                         "profile= takes the JSON `dse calibrate RESULTS -o FILE.json` writes")
    if not p.is_file():
        raise ValueError(f"profile file {str(p)!r} {'is a folder' if p.is_dir() else 'does not exist'}: give the "
                         f"calibrated profile file `dse calibrate RESULTS -o FILE.json` wrote, or None for the "
                         f"shipped factors")
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a calibrated profile (JSON written by `dse calibrate`): {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("factors"), dict):
        raise ValueError(f"{p}: not a calibrated profile: expected format {FORMAT!r} with a 'factors' mapping")
    import copy
    params = copy.deepcopy(dict((base or default_eff()).params))
    for dotted, v in doc["factors"].items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{p}: factor {dotted!r} = {v!r} is not a positive number")
        keys = dotted.split(".")
        unknown = ValueError(f"{p}: unknown factor {dotted!r}; a factor is a dotted path to one number of the "
                             "efficiency parameters, as `dse calibrate` writes them ('engine_step_ms.vllm')")
        d = params
        # every name down to the number must exist: a misspelt engine ("engine_step_ms.vlm") would otherwise set a
        # factor nothing reads, and a group's name ("engine_step_ms") replace its engines' values by one number
        for k in keys[:-1]:
            if not isinstance(d.get(k), dict):
                raise unknown
            d[k] = dict(d[k])
            d = d[k]
        if keys[-1] not in d:
            raise unknown
        if isinstance(d[keys[-1]], dict):
            raise ValueError(f"{p}: factor {dotted!r} names a group of factors, not one: give "
                             f"{', '.join(f'{dotted}.{k}' for k in d[keys[-1]])}")
        d[keys[-1]] = float(v)
    # the hash of the factors read, not the one the file records: a factor edited after `dse calibrate` wrote the
    # file (or a file written by hand) is a model of its own in a study's version and provenance
    meta = {"calibrated_profile": str(p), "sha256": factors_sha256(doc["factors"])}
    return from_params(params, meta)


def profile_provenance(path: str | Path, eff: Efficiency) -> dict[str, str]:
    """What a study records of the calibrated profile it was costed with: the file (absolute path), the sha256 of
    its bytes, and the hash of the factors read from it (`factors_sha256`; `load_profile` keeps it in `eff.meta`)."""
    p = Path(path).resolve()
    return {"file": str(p), "file_sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "sha256": str(eff.meta.get("sha256", ""))}


def main(argv: Sequence[str] | None = None) -> int:
    from .measurements import _META_ALIASES, VLLM_OPTIONAL, VLLM_REQUIRED
    meta = "; ".join(f"{k} ({', '.join(a for a in al if a != k)})" if len(al) > 1 else k
                     for k, al in _META_ALIASES.items() if not k.startswith(("prefill_", "decode_")))
    ap = argparse.ArgumentParser(
        prog="dse calibrate", description=__doc__.split("\n")[0],
        epilog=f"vLLM results (vllm bench serve --save-result JSON) are read from these keys: {', '.join(VLLM_REQUIRED)} "
               f"(required), {', '.join(VLLM_OPTIONAL)} (where present), and model_id; the deployment from the "
               f"--metadata KEY=VALUE entries recorded with the result, else the flags (--gpu, --tp, ...): {meta} "
               f"(aliases in parentheses; prefill_* / decode_* for a disaggregated run).")
    ap.add_argument("results", nargs="+", help="measurement files (silicon CSV, vLLM bench JSON, or a folder of them)")
    ap.add_argument("-o", "--out", default=None, help="calibrated profile JSON to write (required unless --check)")
    ap.add_argument("--check", action="store_true",
                    help="score the model on RESULTS without fitting (shipped factors, or --profile's)")
    ap.add_argument("--profile", default=None, help="with --check: a calibrated profile whose factors to score")
    ap.add_argument("--predictions", default=None, help="with --check: write every row's prediction to this CSV")
    ap.add_argument("--layout", choices=list(LAYOUTS), default=None,
                    help="the files' layout (default: detected from each file)")
    for k in ("gpu", "engine", "engine_version", "model", "weight_dtype"):
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, default=None,
                        help=f"{k} for files that do not say" + (" (default: the newest release the model knows)"
                                                                  if k == "engine_version" else ""))
    ap.add_argument("--tp", type=int, default=None)
    ap.add_argument("--max-nfev", type=int, default=30)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    a = ap.parse_args(list(argv) if argv is not None else None)
    defaults = {k: getattr(a, k) for k in ("gpu", "engine", "engine_version", "model", "weight_dtype", "tp")
                if getattr(a, k) is not None}
    if a.check:
        try:
            if a.predictions:
                check_output(a.predictions, "--predictions")
            text, rows = check(a.results, layout=a.layout, profile=a.profile, **defaults)
        except (ValueError, TypeError, OSError) as exc:
            if a.debug:
                raise
            print(f"dse calibrate: error: {exc}", file=sys.stderr)
            return 2
        print(text)
        if a.predictions:
            rows.to_csv(a.predictions, index=False)
            print(f"wrote {a.predictions} ({len(rows)} rows)")
        return 0
    if a.out is None:
        print("dse calibrate: error: -o/--out is required to write a calibrated profile (or pass --check to score "
              "without fitting)", file=sys.stderr)
        return 2
    try:
        doc = fit(a.results, a.out, layout=a.layout, max_nfev=a.max_nfev, **defaults)
    except (ValueError, TypeError, OSError) as exc:
        if a.debug:
            raise
        print(f"dse calibrate: error: {exc}", file=sys.stderr)
        return 2
    mdape = doc["mdape_in_sample"]   # None: no row measures that metric
    scores = ", ".join(f"{name} MdAPE {mdape[k]:.1f} %" for k, name in
                       (("ttft", "TTFT"), ("tpot", "TPOT"), ("throughput", "throughput")) if mdape[k] is not None)
    none = "".join(f"; {name}: no row measures one" for k, name in (("ttft", "TTFT"), ("tpot", "TPOT"))
                   if mdape[k] is None)
    print(f"{doc['rows']} rows; {scores} (in sample){none}; wrote {a.out} (sha256 {doc['sha256'][:12]})")
    for line in scope_lines(doc):
        print(line)
    for reason, n in doc["skipped"].items():
        print(f"  left out, {reason}: {n} row(s)")
    return 0
