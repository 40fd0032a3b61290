"""Calibration: classification of the published rows, predictions from the model only, fit/report command."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from objectives.calibration import data as cdata
from objectives.calibration.__main__ import main
from objectives.calibration.fit import fit
from objectives.calibration.predict import STATIC_KINDS, mark_unknown, predict
from objectives.inference.efficiency import DATA_FILE, load_efficiency

needs_data = pytest.mark.skipif(not cdata.DEFAULT_DATA.exists(), reason="calibration CSV not in this workplace")


@needs_data
def test_classification_rules():
    df, _ = cdata.load()
    assert len(df) == 1149
    k = df["kind"]
    # concurrency (NIM) and offered request-rate rows go to the serving simulator
    assert (k[df["concurrency"].notna()] == "serving").all()
    assert (k[df["source_note"].str.contains("QPS", na=False)] == "serving").all()
    assert (k[df["engine"].str.contains("MLPerf")] == "excluded").all()
    assert (k[df["source_note"].str.contains("all requests issued at once", na=False)
              & df["concurrency"].isna()].isin(["ifb", "excluded"])).all()
    assert set(k) <= set(cdata.KINDS)


def test_missing_data_file_errors_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="calibration data not found"):
        cdata.data_path(tmp_path / "nope.csv")
    assert main(["fit", "--data", str(tmp_path / "nope.csv")]) == 2


def _tiny(tmp_path: Path) -> Path:
    rows = [
        # model, gpu, n_gpus, tp, w, batch, isl, osl, metric, value (made-up but plausible magnitudes)
        ("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, "fp8", "", 128, 128, "throughput_out_tok_s", 27000),
        ("Llama-3.1-8B", "H100-SXM-80GB", 1, 1, "fp8", "", 2048, 2048, "throughput_out_tok_s", 9000),
        ("Llama-3.1-70B", "H100-SXM-80GB", 4, 4, "fp8", "", 128, 2048, "throughput_out_tok_s", 9300),
        ("Llama-2-7B", "A100-SXM-80GB", 1, 1, "fp16", 1, 2048, 1, "ttft_ms", 130),
    ]
    note = "max-throughput scenario (trtllm-bench throughput, all requests issued at once)"
    recs = []
    for m, g, n, tp, w, b, i, o, metric, v in rows:
        recs.append(dict(source_url="u", source_note=note if metric != "ttft_ms" else "static batching",
                         model=m, gpu=g, n_gpus=n, tp=tp, pp=1, weight_dtype=w, act_dtype=w, kv_dtype="",
                         engine="TensorRT-LLM 0.13.0", batch_size=b, concurrency="", input_len=i, output_len=o,
                         metric=metric, value=v, unit=""))
    p = tmp_path / "tiny.csv"
    pd.DataFrame(recs).to_csv(p, index=False)
    return p


def test_fit_improves_and_never_copies_measurements(tmp_path):
    df = mark_unknown(cdata.classify(pd.read_csv(_tiny(tmp_path))))
    assert set(df["kind"]) <= set(STATIC_KINDS)
    eff, info = fit(df, max_nfev=15)
    pred = predict(df, eff)
    # changing the measured values must not change the predictions (no measured number enters a prediction)
    df2 = df.copy()
    df2["value"] = df2["value"] * 3
    assert np.allclose(predict(df2, eff), pred)
    err = np.abs(np.log(pred / df["value"]))
    from objectives.inference.efficiency import default_efficiency
    err0 = np.abs(np.log(predict(df, default_efficiency()) / df["value"]))
    assert err.sum() <= err0.sum() + 1e-9
    assert info["names"] and len(info["x"]) == len(info["names"])


def test_cli_fit_writes_json(tmp_path):
    out = tmp_path / "eff.json"
    assert main(["fit", "--data", str(_tiny(tmp_path)), "--out", str(out), "--no-loso", "--max-nfev", "5"]) == 0
    raw = json.loads(out.read_text())
    assert raw["meta"]["data_sha256"] and raw["meta"]["fit_date"] and raw["meta"]["rows_fitted"] == 4
    assert 0 < raw["params"]["gemm_eff"]["hopper"]["fp8"] <= 1
    assert load_efficiency(out).params["mem_eff"]["hopper"] > 0


def test_cli_refits_only_the_named_factors_and_keeps_the_rest(tmp_path, capsys):
    """`fit --only NAME`: the named factor is refit from the file's value, every other factor and the file's fit
    record stay as they were, and the refit is recorded beside it."""
    out = tmp_path / "eff.json"
    out.write_text(DATA_FILE.read_text() if DATA_FILE.exists() else load_efficiency().to_json())
    before = json.loads(out.read_text())
    data = str(_tiny(tmp_path))
    # the tiny rows ask for less throughput than the shipped factors give: less usable memory is the only lever
    assert main(["fit", "--data", data, "--out", str(out), "--only", "device_mem_usable", "--no-loso",
                 "--max-nfev", "8"]) == 0
    after = json.loads(out.read_text())
    old_p = {**load_efficiency().params, **before["params"]}
    changed = {k for k in after["params"] if after["params"][k] != old_p.get(k)}
    assert changed == {"device_mem_usable"}
    assert after["params"]["device_mem_usable"] < old_p["device_mem_usable"]
    rec = after["meta"]["refit_only"]
    assert rec["factors"] == ["device_mem_usable"] and rec["start"]["device_mem_usable"] == old_p["device_mem_usable"]
    # the full fit's record stays; its held-out figures, measured on the factors before, do not
    kept = ("refit_only", "mdape", "loso", "loso_by_class", "loso_overall_mdape")
    assert {k: v for k, v in after["meta"].items() if k not in kept} == \
        {k: v for k, v in before["meta"].items() if k not in kept}
    assert not any(k.startswith("loso") for k in after["meta"])
    # a name that is not a factor these rows identify: an error naming it and the ones that are, file untouched
    assert main(["fit", "--data", data, "--out", str(out), "--only", "mem_eff,warp_speed", "--no-loso"]) == 2
    err = capsys.readouterr().err
    assert "'warp_speed'" in err and "device_mem_usable" in err and "mem_eff" in err
    assert json.loads(out.read_text()) == after


def test_shipped_factors_are_inspectable():
    eff = load_efficiency()      # the shipped objectives/data/efficiency.json, read through the package
    assert "fit_date" in eff.meta and "data_sha256" in eff.meta
    for fam in ("ampere", "hopper", "blackwell"):
        assert 0 < eff["mem_eff"][fam] <= 1


def test_silicon_fit_moves_a_front_end_time_whose_default_is_zero():
    """engine_ttft_ms defaults to 0 (outside its fit bounds): the fit starts it mid-range without a prior, so the
    data, not a prior pinned at the lower bound, decide it."""
    from objectives.calibration import silicon
    from objectives.inference.efficiency import Efficiency, default_efficiency

    rows, _ = silicon.load_rows()
    rows = rows[(rows["engine"] == "sglang") & (rows["concurrency"] <= 8) & (rows["isl"] == 1024)]
    assert len(rows) >= 10
    fresh = default_efficiency()
    assert fresh.params["engine_ttft_ms"]["sglang"] == 0.0
    eff, info = silicon.fit_engine_factors(rows, Efficiency(dict(fresh.params), fresh.meta), max_nfev=8)
    # off its lower bound (0.1 ms) by an order of magnitude: a prior pinned there would hold it at the bound. These
    # 30 rows alone settle near 3 ms since the thirty-second round (GLM-5's H200 rows run SGLang's bf16 DSA cache,
    # `measurements.SILICON_AUTO_KV_FAMILIES`, and the subset trades the front end against profile_attn_scale);
    # the fit over every row keeps ~35 ms
    assert eff.params["engine_ttft_ms"]["sglang"] > 1.0


def test_allreduce_beyond_measured_ranks_follows_the_ring():
    """GB200's all-reduce tables stop at 4 ranks (one tray): a wider TP group costs the 4-rank all-reduce scaled by
    the ring's traffic per rank 2 (n - 1) / n, so a large-batch decode step cannot grow with TP beyond what the
    smaller TP group's step costs (a linear extrapolation over the rank count made TP16 ~30 % slower than TP4)."""
    from objectives.inference.step import StepModel

    def step(tp: int) -> float:
        s = StepModel("Kimi-K2.5", "GB200", tp=tp, ep=tp, weight_dtype="fp4", engine="vllm")
        return float(s.time_ms(0.0, 0.0, 1024.0, 1024.0 * 1536.0))
    t4, t8, t16 = step(4), step(8), step(16)
    assert t16 <= t8 <= t4


def test_report_shows_the_silicon_scores_its_last_fit_stored(tmp_path):
    from objectives.calibration import silicon
    from objectives.calibration.report import _silicon_section

    rows, p = silicon.load_rows()
    d = pd.concat([rows[rows["mode"] == "agg"].head(30), rows[rows["mode"] == "disagg"].head(10)])
    d = d.assign(ttft_pred=d["ttft_ms"] * 1.1, tpot_pred=d["tpot_ms"] * 0.8)
    d = d.assign(ttft_ape=(d["ttft_pred"] / d["ttft_ms"] - 1).abs() * 100,
                 tpot_ape=(d["tpot_pred"] / d["tpot_ms"] - 1).abs() * 100)
    scores = {"in_sample": silicon._summary(d), "leave_one_model_out": silicon._summary(d)}
    # the stored summary survives the efficiency file's JSON
    scores = json.loads(json.dumps(scores))
    fit = {"data_file": p.name, "data_sha256": cdata.sha256(p), "rows": 40, "fit_date": "2026-12-04",
           "scores": scores}
    text = "\n".join(_silicon_section({"silicon_fit": fit}))
    assert "Leave one model out (fit on three models, predict the fourth): TTFT MdAPE 10.0 %, TPOT MdAPE 20.0 %" in text
    for name in set(d["engine"]) | set(d["gpu"]) | set(d["model"]):
        assert f"| {name} |" in text
    # aggregated and disaggregated deployments apart, per engine (issue 14's disaggregated target)
    for mode, eng in set(zip(d["mode"], d["engine"])):
        assert f"| ('{mode}', '{eng}') |" in text
    assert "changed since" not in text
    assert "changed since" in "\n".join(_silicon_section({"silicon_fit": {**fit, "data_sha256": "0" * 64}}))
    assert "run `python -m objectives.calibration silicon`" in "\n".join(_silicon_section({}))


def _ifb_rows(rows: list[tuple]) -> pd.DataFrame:
    """Published-style ifb rows: (engine, note, model, gpu, tp, weight dtype, isl, osl)."""
    out = []
    for eng, note, m, g, tp, w, isl, osl in rows:
        out.append(dict(source_url="", source_note=note, model=m, gpu=g, n_gpus=tp, tp=tp, pp=1, weight_dtype=w,
                        act_dtype=w, kv_dtype=w, engine=eng, batch_size=np.nan, concurrency=np.nan, input_len=isl,
                        output_len=osl, metric="throughput_out_tok_s", value=1.0, unit="tok/s", kind="ifb", why="",
                        output_len_eff=osl, max_batch_size=np.nan, max_num_tokens=np.nan, engine_profile="standard",
                        engine_family="trtllm"))
    return pd.DataFrame(out)


BENCH = "max-throughput scenario (trtllm-bench throughput, in-flight batching, all requests issued at once)"


def test_perf_overview_rows_run_with_trtllm_bench_heuristic_settings():
    from objectives import inference
    from objectives.calibration.predict import bench_settings

    d = _ifb_rows([("TensorRT-LLM 0.13.0", BENCH, "Llama-3.1-70B", "H100-SXM-80GB", 2, "fp16", 128, 2048),
                   ("TensorRT-LLM 0.13.0", BENCH, "Llama-3.1-8B", "H200-SXM-141GB", 1, "fp8", 128, 128),
                   ("TensorRT-LLM 0.13.0", BENCH, "Llama-3.1-70B", "H100-SXM-80GB", 8, "fp8", 2048, 128),
                   ("TensorRT-LLM 0.16.0", "tuning-guide page, Baseline", "Llama-3.1-70B", "H100-SXM-80GB", 2,
                    "fp16", 128, 2048)])
    mbs, mnt = bench_settings(d)
    # tuning.py by hand, 70B fp16 TP2 (NVML's 81,559 MiB = 79.6 GiB per H100): 0.95 x (2 x 79.6 GiB - 141.1 "GB"
    # engine) / (2 x 80 x 8 x 128 x 2 B per token x 2176 tokens) = 26 requests -> max_batch_size 64 (minimum),
    # 26 x (1 + 128 / 2048) tokens -> 2048 (minimum)
    assert (mbs[0], mnt[0]) == (64, 2048)
    assert (mbs[1], mnt[1]) == (4096, 8192)         # 8B FP8 on H200: the 4096-request cap, 4096 x 2 tokens
    # a 2048/128 table: about 1,600 requests fit -> batch 1792 (a multiple of 256), tokens 1,600 x 17 -> 27,648 (a
    # multiple of 1024 below the 32768 cap)
    assert (mbs[2], mnt[2]) == (1792, 27648)
    eff = load_efficiency()
    got = predict(d, eff)
    ref = inference.max_throughput(
        ["Llama-3.1-70B", "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.1-70B"],
        ["H100-SXM-80GB", "H200-SXM-141GB", "H100-SXM-80GB", "H100-SXM-80GB"], tp=[2, 1, 8, 2],
        weight_dtype=["fp16", "fp8", "fp8", "fp16"], act_dtype=["fp16", "fp8", "fp8", "fp16"],
        kv_dtype=["fp16", "fp8", "fp8", "fp16"], input_len=[128, 128, 2048, 128], output_len=[2048, 128, 128, 2048],
        max_batch_size=[64, 4096, 1792, 2048], max_num_tokens=[2048, 8192, 27648, 8192], efficiency=eff, engine="roofline")
    # the perf-overview rows with the heuristic's settings, the tuning-guide row with the engine defaults; each at
    # its release's speed on the fitted trend (0.13 runs release_speed_step ** -3 as fast as 0.16)
    step = float(eff["release_speed_step"])
    speed = np.array([step ** -3.0, step ** -3.0, step ** -3.0, 1.0])
    np.testing.assert_allclose(got, ref["throughput_tok_s"].to_numpy() * speed, rtol=1e-9)



def test_held_out_figures_are_reported_per_metric_against_their_targets(tmp_path):
    """The held-out targets are per metric class (throughput 7 %, TTFT 12 %, ITL 8 %): the report states each
    class's leave-one-source-out MdAPE beside its target, not only the median over every row."""
    from objectives.calibration.report import HELD_OUT_TARGETS, _loso_sections, loso_summary

    lt = pd.DataFrame({"engine": ["A", "A", "B", "B"], "class": ["throughput", "throughput", "ttft", "throughput"],
                       "ape": [10.0, 6.0, 3.0, 9.0]})
    s = loso_summary(lt)
    assert s["loso_overall_mdape"] == pytest.approx(7.5)
    assert {r["class"]: r["MdAPE_%"] for r in s["loso_by_class"]} == {"throughput": 9.0, "ttft": 3.0}
    assert {r["engine"]: r["rows"] for r in s["loso"]} == {"A": 2, "B": 2}
    assert {r["class"]: r["sources"] for r in s["loso_by_class"]} == {"throughput": 2, "ttft": 1}
    md = "\n".join(_loso_sections(s))
    line = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| t")}
    assert f"| {HELD_OUT_TARGETS['throughput']} | no |" in line["throughput"]      # 9.0 > 7
    assert f"| {HELD_OUT_TARGETS['ttft']} | yes |" in line["ttft"]                 # 3.0 <= 12
    assert _loso_sections({}) == []


def test_report_writes_the_leave_one_source_out_it_is_given(tmp_path):
    from objectives.calibration.report import loso, write_report

    df = mark_unknown(cdata.classify(pd.read_csv(_tiny(tmp_path))))
    df.loc[df["model"] == "Llama-3.1-70B", "engine"] = "TensorRT-LLM 0.14.0"
    eff, _ = fit(df, max_nfev=5)
    lt = loso(df, eff, max_nfev=3)
    assert set(lt["engine"]) == {"TensorRT-LLM 0.13.0", "TensorRT-LLM 0.14.0"} and len(lt) == len(df)
    text = write_report(df, eff, out_dir=tmp_path, loso_table=lt).read_text()
    assert "## Leave-one-source-out" in text and "TensorRT-LLM 0.14.0" in text
    assert "Per metric, against the held-out targets" in text
    thr = lt[lt["class"] == "throughput"]
    assert f"| throughput | 3 | 2 | {round(float(thr['ape'].median()), 1)} |" in text      # rows, sources, MdAPE


@needs_data
def test_a_held_out_source_is_predicted_without_the_factors_only_it_identifies():
    """Leave-one-source-out starts each refit from the full fit, except the factors that only the held-out source
    identifies: those return to their unfitted defaults (TensorRT-LLM 0.16's tuning guide is the one source with
    baseline builds, and its tuned builds' batch-1 decode steps are the silicon fit's dense anchors, so every factor
    that fit sets returns to its default too), so no part of the held-out rows' own fit enters their prediction."""
    from objectives.calibration import silicon
    from objectives.calibration.report import fold_base
    from objectives.inference.efficiency import default_efficiency

    df = mark_unknown(cdata.load()[0])
    eff = load_efficiency()
    base, reset = fold_base(df, df[df["engine"] != "TensorRT-LLM 0.16.0"], eff)
    assert reset[0] == "baseline_build_mem_eff" and "tuned_build_fixed_eff" not in reset
    assert reset[1:] == [".".join(p) for p in silicon.fitted_paths()]
    assert {"profile_layer_us.trtllm", "profile_launch_us.trtllm", "engine_step_ms.trtllm"} <= set(reset)
    dflt = default_efficiency().params
    assert base.params["baseline_build_mem_eff"] == dflt["baseline_build_mem_eff"] != eff.params["baseline_build_mem_eff"]
    assert base.params["profile_layer_us"] == dflt["profile_layer_us"] != eff.params["profile_layer_us"]
    assert base.params["mem_eff"] == eff.params["mem_eff"]          # what the other sources identify stays
    same, none = fold_base(df, df[df["engine"] != "TensorRT-LLM 0.13.0"], eff)
    assert same is eff and none == []


def _tuned_rows() -> pd.DataFrame:
    """The tuning guide's batch-1 latency rows of one configuration (Llama-3.3-70B bf16, four H100s, 2048 / 2048):
    a tuned build's ITL and TTFT, and the Baseline build's ITL."""
    out = []
    for prof, metric in (("tuned", "itl_ms"), ("tuned", "ttft_ms"), ("baseline", "itl_ms")):
        out.append(dict(model="Llama-3.3-70B", gpu="H100-SXM-80GB", n_gpus=4, tp=4, pp=1, weight_dtype="bf16",
                        act_dtype="bf16", kv_dtype=np.nan, engine="TensorRT-LLM 0.16.0", batch_size=1.0,
                        input_len=2048.0, output_len=2048.0, output_len_eff=2048.0, metric=metric, value=1.0,
                        kind="latency", source_note="trtllm-bench latency", engine_profile=prof,
                        max_batch_size=np.nan, max_num_tokens=np.nan))
    return pd.DataFrame(out)


def test_tuned_builds_are_predicted_on_tensorrt_llm_measured_profile():
    """A tuned build (GEMM plugin, reduce fusion, multiple profiles, paged context attention) runs the kernels
    TensorRT-LLM's tables time: its rows are predicted on that measured profile, not by the closed form with a factor
    only that source's rows could fit; the Baseline build stays on the closed form."""
    import copy

    from objectives import inference
    from objectives.calibration.fit import build_spec
    from objectives.calibration.predict import TUNED_BUILD_ENGINE, row_engines
    from objectives.inference.efficiency import Efficiency

    d = _tuned_rows()
    assert TUNED_BUILD_ENGINE == "trtllm"
    assert list(row_engines(d)) == ["trtllm", "trtllm", "roofline"]
    assert list(row_engines(d, "vllm")) == ["vllm"] * 3                  # another engine asked for: every row
    eff = load_efficiency()
    got = predict(d, eff)
    ref = inference.estimate("Llama-3.3-70B", "H100-SXM-80GB", tp=4, weight_dtype="bf16", batch_size=1,
                             input_len=2048, output_len=2048, engine=["trtllm", "roofline"],
                             engine_profile=["tuned", "baseline"], efficiency=eff)
    np.testing.assert_allclose(got, [ref["tpot_ms"][0], ref["ttft_ms"][0], ref["tpot_ms"][1]], rtol=1e-9)
    # no closed-form build factor reaches a tuned row, and none is fitted for it
    params = copy.deepcopy(dict(eff.params))
    params["tuned_build_fixed_eff"] = 0.2
    np.testing.assert_allclose(predict(d, Efficiency(params, eff.meta))[:2], got[:2], rtol=1e-12)
    names = [p[0] for p in build_spec(d).paths]
    assert "tuned_build_fixed_eff" not in names and "baseline_build_mem_eff" in names


def test_release_index_orders_the_tensorrt_llm_releases():
    from objectives.calibration.data import release_index

    assert release_index("TensorRT-LLM 0.13.0") == 13 and release_index("TensorRT-LLM 0.7a") == 7
    assert release_index("TensorRT-LLM 1.0 (doc revision 00f37686)") == 22        # 1.0 follows 0.21
    assert release_index("TensorRT-LLM 1.1/1.2 (doc revision 03e27c7d)") == 23.5   # a range: its middle
    assert release_index("TensorRT-LLM 0.14.0 + Triton") == 14
    for other in ("vLLM 0.5.4", "NVIDIA NIM 1.8.0", "TensorRT-LLM (MLPerf v4.1)", "TensorRT-LLM 2.0"):
        assert np.isnan(release_index(other))
    with pytest.raises(TypeError, match="engine label"):
        release_index(13.0)  # type: ignore[arg-type]


def test_a_table_of_another_release_runs_at_the_release_trend_speed():
    """The closed form's factors describe TensorRT-LLM 0.16 (`REFERENCE_RELEASE`); a table of release r is
    predicted release_speed_step ** (r - 16) times as fast: throughputs up, latencies down. Rows on a measured
    profile (tuned builds) and rows of other engines keep their prediction; the factor is fitted only where the
    fit rows hold tables of more than one release."""
    import copy

    from objectives.calibration.fit import build_spec
    from objectives.calibration.predict import REFERENCE_RELEASE, release_speed, row_engines
    from objectives.inference.efficiency import Efficiency

    assert REFERENCE_RELEASE == 16.0
    d = pd.concat([_ifb_rows([("TensorRT-LLM 0.13.0", BENCH, "Llama-3.1-8B", "H100-SXM-80GB", 1, "fp8", 128, 128),
                              ("vLLM 0.5.4", "", "Llama-3.1-8B", "H100-SXM-80GB", 1, "fp8", 128, 128)]),
                   _tuned_rows().assign(engine="TensorRT-LLM 0.20.0")], ignore_index=True)
    d.loc[4, "engine_profile"] = "standard"                 # the third latency row: the closed form, release 20
    eff = load_efficiency()
    params = copy.deepcopy(dict(eff.params))
    params["release_speed_step"] = 1.02
    fast = Efficiency(params, eff.meta)
    flat = Efficiency({**params, "release_speed_step": 1.0}, eff.meta)
    ratio = predict(d, fast) / predict(d, flat)
    np.testing.assert_allclose(ratio, [1.02 ** -3, 1.0, 1.0, 1.0, 1.02 ** -4], rtol=1e-9)
    np.testing.assert_allclose(release_speed(d, fast, row_engines(d)), [1.02 ** -3, 1.0, 1.0, 1.0, 1.02 ** 4])
    names = lambda rows: [p[0] for p in build_spec(rows).paths]  # noqa: E731
    assert "release_speed_step" in names(d) and "release_speed_step" not in names(d.iloc[:1])
    # gptSessionBenchmark's static-batch tables (0.5-0.9) are another harness: off the trend, and no release of
    # theirs makes the factor identifiable
    old = d.iloc[:1].assign(engine="TensorRT-LLM 0.9.0")
    np.testing.assert_allclose(release_speed(old, fast, row_engines(old)), [1.0])
    assert "release_speed_step" not in names(pd.concat([d.iloc[:1], old], ignore_index=True))
