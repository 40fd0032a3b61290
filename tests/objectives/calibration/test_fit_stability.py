"""The published fit with the loaded-server rows in its objective, and the stability report of full refits."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import data as cdata
from objectives.calibration import stability
from objectives.calibration.fit import LOADED_CLASSES, Spec, fit, loaded_rows, metric_class, predict_loaded
from objectives.calibration.predict import STATIC_KINDS, mark_unknown, predict
from objectives.inference.efficiency import default_efficiency

NIM = 'NIM 1.8.0 "2 x H100 80G / fp8 TP2" tab, 5000 Input / 500 Output Tokens; client-side (AIPerf) measurement'


def _rows(itl_ratio: float = 1.1) -> pd.DataFrame:
    """Static rows (large prefill-heavy batches) that the default factors predict exactly, and loaded-server ITL
    rows (closed loop, 1 and 25 clients) measured `itl_ratio` times as slow as the default factors' analytical serving model says (synthetic)."""
    static = [("Llama-3.1-8B", "H100-SXM-80GB", 1, "fp8", 256, 2048, 128, "throughput_out_tok_s"),
              ("Llama-3.1-70B", "H100-SXM-80GB", 4, "fp8", 256, 2048, 128, "throughput_out_tok_s"),
              ("Llama-3.1-8B", "H100-SXM-80GB", 1, "fp8", 128, 4096, 256, "throughput_out_tok_s")]
    recs = [dict(source_url="u", source_note="static batching", model=m, gpu=g, n_gpus=tp, tp=tp, pp=1,
                 weight_dtype=w, act_dtype=w, kv_dtype=np.nan, engine="TensorRT-LLM 0.9.0", batch_size=b,
                 concurrency=np.nan, input_len=i, output_len=o, metric=metric, value=1.0)
            for m, g, tp, w, b, i, o, metric in static]
    recs += [dict(source_url="u", source_note=NIM, model="Llama-3.3-70B", gpu="H100-SXM-80GB", n_gpus=2, tp=2, pp=1,
                  weight_dtype="fp8", act_dtype="fp8", kv_dtype=np.nan, engine="NVIDIA NIM 1.8.0", batch_size=np.nan,
                  concurrency=c, input_len=5000, output_len=500, metric="itl_ms", value=1.0) for c in (1, 25)]
    df = mark_unknown(cdata.classify(pd.DataFrame(recs)))
    eff = default_efficiency()
    st = df["kind"].isin(STATIC_KINDS).to_numpy()
    df.loc[st, "value"] = predict(df[st], eff)
    ld = (df["kind"] == "serving").to_numpy()
    df.loc[ld, "value"] = predict_loaded(df[ld], eff) * itl_ratio
    return df


def test_loaded_rows_are_the_serving_rows_the_stand_in_tracks():
    df = _rows()
    lr = loaded_rows(df)
    assert len(lr) == 2 and (lr["kind"] == "serving").all()
    assert set(metric_class(lr["metric"])) <= set(LOADED_CLASSES)
    ttft = df[df["kind"] == "serving"].assign(metric="ttft_ms")
    assert loaded_rows(ttft).empty          # their TTFT is the queue's: left to the simulator's check


def test_the_loaded_rows_pull_the_factors_they_see():
    """Static rows the defaults predict exactly hold Hopper's weight-streaming efficiency where it is; loaded-server
    rows 10 % slower per token pull it down only when the fit sees them, and then their error falls."""
    df = _rows()
    spec = Spec([("mem_eff", "hopper")])
    e0, i0 = fit(df, spec=spec, max_nfev=20)
    e1, i1 = fit(df, spec=spec, max_nfev=20, loaded=True)
    assert i0["n_loaded_rows"] == 0 and i1["n_loaded_rows"] == 2
    assert abs(i0["x"][0] / default_efficiency().params["mem_eff"]["hopper"] - 1.0) < 0.01
    assert i1["x"][0] < 0.97 * i0["x"][0]
    lr = loaded_rows(df)
    err = [np.abs(np.log(predict_loaded(lr, e) / lr["value"].to_numpy())).sum() for e in (e0, e1)]
    assert err[1] < 0.7 * err[0]


def test_resample_is_seeded_and_keeps_each_kind_apart():
    df = _rows()
    a, b, c = stability.resample(df, 1), stability.resample(df, 1), stability.resample(df, 2)
    assert a.index.equals(b.index) and len(a) == len(df)
    assert (a["kind"] == "serving").sum() == (df["kind"] == "serving").sum()
    assert set(a.index) <= set(df.index)
    assert not (a.index.equals(c.index) and a.index.equals(df.index))


def test_stability_report_has_one_column_per_run_and_the_spread():
    df = _rows()
    f, s = stability.run(df, default_efficiency(), n_boot=1, max_nfev=2)
    assert list(s.index) == ["all", "boot1"]
    assert {"all", "boot1", "min", "max", "spread_%"} <= set(f.columns)
    assert (f["min"] <= f["max"]).all() and (f["spread_%"] >= 0).all()
    assert "loaded itl" in s.columns and "fit throughput" in s.columns
    assert np.isfinite(s["loaded itl"]).all()


def test_held_factors_stay_at_their_defaults_and_unknown_names_are_refused(tmp_path, capsys):
    from objectives.calibration.__main__ import main
    from objectives.calibration.fit import held_spec

    df = _rows()
    fit_rows = df[df["kind"].isin(STATIC_KINDS)]
    names = {p[0] for p in held_spec(fit_rows, ["kv_mem_fraction", "device_mem_usable"]).paths}
    assert "kv_mem_fraction" not in names and "device_mem_usable" not in names and "mem_eff" in names
    with pytest.raises(ValueError, match="'warp_speed'.*mem_eff"):
        held_spec(fit_rows, ["warp_speed"])
    data, out = tmp_path / "rows.csv", tmp_path / "eff.json"
    df.to_csv(data, index=False)
    assert main(["fit", "--data", str(data), "--out", str(out), "--hold", "kv_mem_fraction", "--no-loso",
                 "--max-nfev", "3"]) == 0
    raw = json.loads(out.read_text())
    assert raw["params"]["kv_mem_fraction"] == default_efficiency()["kv_mem_fraction"]
    assert raw["meta"]["held_at_defaults"] == ["kv_mem_fraction"]
    assert "kv_mem_fraction" not in raw["meta"]["fitted_factors"]
    # the loaded-server rows in the objective: recorded as such, with how many
    assert main(["fit", "--data", str(data), "--out", str(out), "--loaded", "--no-loso", "--max-nfev", "2"]) == 0
    rec = json.loads(out.read_text())["meta"]["loaded_rows_in_fit"]
    assert rec["rows"] == 2 and rec["classes"] == list(LOADED_CLASSES)
    assert main(["fit", "--data", str(data), "--out", str(out), "--hold", "warp_speed", "--no-loso"]) == 2
    assert "'warp_speed'" in capsys.readouterr().err
    # the stability report: one column per run, nothing written
    before = out.read_text()
    assert main(["fit", "--data", str(data), "--out", str(out), "--stability", "1", "--hold", "kv_mem_fraction",
                 "--max-nfev", "2"]) == 0
    printed = capsys.readouterr().out
    assert "spread_%" in printed and "boot1" in printed and "loaded itl" in printed
    assert out.read_text() == before
