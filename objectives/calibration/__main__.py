"""`python -m objectives.calibration fit|report [--data PATH]`.

fit:    fit the efficiency factors on the calibration CSV, write objectives/data/efficiency.json (parameters, fit
        date, data sha256, row counts, leave-one-source-out MdAPE) and print MdAPE per metric, source and GPU.
report: write objectives/data/fidelity/report.md and predicted_vs_measured.png from the fitted factors (--loso:
        rerun the leave-one-source-out refits from them and report those, per engine version and per metric).
--kind training: the training model instead (objectives/data/training/factors.json; report prints its tables).
--loaded: the fit's objective also holds the loaded-server rows (ITL, throughput) on the analytical serving model.
--hold NAMES: a full fit (or --stability) holds these factors at their hand-set defaults.
--stability N: full refits from the defaults on the rows and on N bootstrap resamples; prints each factor's spread
        and each run's in-sample and loaded-server (simulator) MdAPE; writes nothing.
network: fit the scale-out network's latency and share of line rate (the efficiency file's "roce" link) on
        aiconfigurator-core's internode DeepEP kernel tables and print them (objectives/calibration/network.py);
        writes nothing: the shipped values are in objectives/inference/efficiency.py and efficiency.json.
bands:  held-out (leave-one-source-out / leave-one-model-out) residuals of the published, silicon and training rows
        -> objectives/data/uncertainty.json (split-conformal bands, objectives/uncertainty.py) and the honesty
        check objectives/data/fidelity/bands.md. Run it after any refit (fit, silicon, --kind training).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from objectives.inference.core import reload_default_eff
from objectives.inference.efficiency import DATA_FILE, FAMILY_FALLBACK, load_efficiency

from .data import load, sha256
from .fit import LOADED_CLASSES, fit, held_spec, only_spec
from .predict import STATIC_KINDS, mark_unknown
from .report import TARGETS, itl_table, loso, loso_summary, mdape_table, scored, serving_rows, text_tables, write_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m objectives.calibration", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["fit", "report", "silicon", "bands", "network"],
                    help="silicon: fit the engine-level factors of the measured-profile path on "
                         "serving_silicon.csv (into the efficiency JSON) and write the leave-one-model-out "
                         "report objectives/data/fidelity/silicon.md")
    ap.add_argument("--data", default=None, help="calibration CSV (default <repo>/../shared/calibration/...)")
    ap.add_argument("--out", default=str(DATA_FILE), help="efficiency JSON to write/read")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-source-out refits")
    ap.add_argument("--logo", action="store_true",
                    help="silicon: also leave one GPU out (one more refit per GPU) and report it and the factors "
                         "each GPU's rows pull")
    ap.add_argument("--loso", action="store_true",
                    help="report: rerun the leave-one-source-out refits (about a minute) instead of the ones the "
                         "efficiency file records, and report them per engine version and per metric")
    ap.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                    help="fit: refit only these factors (top-level names, e.g. device_mem_usable) from the factors "
                         "in --out, holding every other factor and keeping the file's fit record")
    ap.add_argument("--loaded", action="store_true",
                    help="fit: bring the loaded-server rows (ITL and throughput of the serving rows, on the analytical "
                         "serving model) into the objective")
    ap.add_argument("--hold", default=None, metavar="NAME[,NAME...]",
                    help="fit (full or --stability): hold these factors at their hand-set defaults instead of fitting "
                         "them (e.g. kv_mem_fraction,kv_reserve_output_frac,device_mem_usable: the engines' documented "
                         "settings, objectives/inference/efficiency.py)")
    ap.add_argument("--stability", type=int, default=None, metavar="N",
                    help="fit: instead of fitting, refit every factor from its default on the rows and on N bootstrap "
                         "resamples and report each factor's spread and each run's scores (writes nothing)")
    ap.add_argument("--max-nfev", type=int, default=400)
    ap.add_argument("--kind", choices=["inference", "training"], default="inference",
                    help="cost model to fit or report (training: objectives/calibration/training.py)")
    args = ap.parse_args(argv)
    if args.command == "bands":
        import logging

        from .bands import run as run_bands
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            print(run_bands())
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "network":
        from .network import run as run_network
        print(run_network())
        return 0
    if args.command == "silicon":
        from .silicon import run as run_silicon
        print(run_silicon(args.data, args.out, loso=not args.no_loso, logo=args.logo))
        return 0
    if args.kind == "training":
        from .training import run as run_training
        try:
            print(run_training(args.command, args.data, None if args.out == str(DATA_FILE) else args.out,
                               no_loso=args.no_loso, max_nfev=args.max_nfev))
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        df, path = load(args.data)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    df = mark_unknown(df)
    hold = tuple(n.strip() for n in (args.hold or "").split(",") if n.strip())
    if args.command == "fit" and args.stability is not None:
        from .stability import run as run_stability
        try:
            start = load_efficiency(args.out)
        except FileNotFoundError:
            start = load_efficiency()
        try:
            factors, scores = run_stability(df, start, n_boot=max(args.stability, 0), loaded=args.loaded,
                                            max_nfev=args.max_nfev, hold=hold)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"full refits from the defaults{' (loaded-server rows in the objective)' if args.loaded else ''}; "
              f"factors per run:\n{factors.to_string(float_format=lambda v: f'{v:.4g}')}\n")
        print(f"MdAPE % per run (fit rows in sample; loaded-server rows on the simulator):\n{scores.to_string()}")
        return 0
    if args.command == "fit":
        base, spec = None, None          # a full fit from the defaults
        if hold and not args.only:       # less the factors held at their defaults
            try:
                spec = held_spec(df[df["kind"].isin(STATIC_KINDS)], list(hold))
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        if args.only:                    # or the named factors from the file's values
            try:
                base = load_efficiency(args.out)
                spec = only_spec(df, [n.strip() for n in args.only.split(",") if n.strip()])
            except (FileNotFoundError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        eff, info = fit(df, base=base, spec=spec, max_nfev=args.max_nfev, loaded=args.loaded)
        d = scored(df, eff)
        if base is not None and spec is not None and args.only:
            # the file's held-out figures were measured on the factors before this refit
            meta = {k: v for k, v in base.meta.items() if not k.startswith("loso")}
            meta["refit_only"] = {
                "date": _dt.date.today().isoformat(), "factors": info["names"], "nfev": info["nfev"],
                "data_sha256": sha256(path), "start": dict(zip(spec.names(), spec.x0(base).tolist())),
                "note": "refit alone (python -m objectives.calibration fit --only ...), every other factor held at the "
                        "values this record's full fit gave"}
        else:
            counts = df["kind"].value_counts().to_dict()
            meta = {
                "fit_date": _dt.date.today().isoformat(),
                "data_file": str(path.name), "data_sha256": sha256(path), "rows_in_file": int(len(df)),
                "rows_fitted": int(len(d)), "rows_by_kind": {k: int(v) for k, v in counts.items()},
                "excluded": {k: int(v) for k, v in df[df["kind"] == "excluded"]["why"].value_counts().items()},
                "method": "scipy.optimize.least_squares, soft-L1 loss on log(pred/measured), metric-class weights, "
                          "light log-prior to the hand-set defaults; bounds in objectives/calibration/fit.py",
                "fitted_factors": info["names"], "nfev": info["nfev"], "held_at_defaults": list(hold),
                "family_fallback": {f: f"no calibration rows: the per-family factors are copies of the fitted {src} "
                                       f"factors (written below under '{f}')" for f, src in FAMILY_FALLBACK.items()},
                "engine_profile": "rows whose notes name the TensorRT-LLM 0.16 tuning guide's Baseline engine "
                                  "(trtllm-build default flags) are predicted with engine_profile='baseline' "
                                  "(factor baseline_build_mem_eff), its tuned engines (multiple profiles, GEMM "
                                  "plugin, reduce fusion) on TensorRT-LLM's measured profile (engine 'trtllm', "
                                  "no factor of their own), all others (build flags not stated) with 'standard'",
            }
        if args.loaded:
            meta["loaded_rows_in_fit"] = {
                "rows": info["n_loaded_rows"], "classes": list(LOADED_CLASSES),
                "model": "serving rows of kind 'serving' predicted by the analytical serving model "
                         "(objectives.serving.fidelity.predict_analytical) inside the objective; scored on the "
                         "simulator (report.serving_rows), so their figures are in sample"}
        meta["mdape"] = {str(k): float(v) for k, v in d.groupby("class")["ape"].median().items()}
        eff = type(eff)(eff.params, meta)
        if not args.no_loso:
            meta.update(loso_summary(loso(df, eff)))
            eff = type(eff)(eff.params, meta)
        Path(args.out).write_text(eff.to_json() + "\n")
        print(f"wrote {args.out} ({len(info['names'])} fitted factors, {info['nfev']} evaluations)")
        print(text_tables(d))
        print(f"overall MdAPE {d['ape'].median():.1f} % over {len(d)} rows; targets {TARGETS}")
        if Path(args.out).resolve() == Path(DATA_FILE).resolve():
            reload_default_eff()  # code that reads the shipped file sees the one just written
        srows, msg = serving_rows(df, eff)
        if srows is None:
            print(msg)
        else:
            print(f"serving rows (simulator) MdAPE per metric:\n{mdape_table(srows, 'class').to_string()}\n")
        print(f"ITL MdAPE, every group:\n{itl_table(d, srows).to_string()}\n")
        if "loso" in meta:
            _print_loso(meta)
        return 0
    eff = load_efficiency(args.out)
    lt = loso(df, eff) if args.loso else None
    md = write_report(df, eff, loso_table=lt)
    print(f"wrote {md} and {md.parent / 'predicted_vs_measured.png'}")
    print(text_tables(scored(df, eff)))
    if lt is not None:
        _print_loso(loso_summary(lt))
    return 0


def _print_loso(meta: dict) -> None:
    print(f"leave-one-source-out MdAPE {meta['loso_overall_mdape']:.1f} % "
          f"(per metric: {', '.join(str(r['class']) + ' ' + str(r['MdAPE_%']) for r in meta['loso_by_class'])}; "
          f"per engine: {', '.join(str(r['engine']) + ' ' + str(r['MdAPE_%']) for r in meta['loso'])})")


if __name__ == "__main__":
    sys.exit(main())
