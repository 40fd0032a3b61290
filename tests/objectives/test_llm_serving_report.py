"""The LLM serving objective's report section: where the served latency of the front's knee and cheapest point
goes (`LLMServingObjective.report_sections`, `inference.served_breakdown`), in the report opened headless."""
from __future__ import annotations

import re

import numpy as np
import pytest

import dse
import objectives
import spaces
from dse import report
from objectives.inference.breakdown import SERVED_PHASES, served_breakdown
from tests.dse.test_report import chromium, js_errors, run_chromium  # noqa: F401  (chromium: a fixture)

MODEL = "Llama-3.1-8B"


@pytest.fixture(scope="module")
def study_and_objective():
    space = spaces.llm_serving(MODEL, ["H100", "H200"], 2, formats=["fp8", "bf16"], kv_dtypes=["fp8"],
                               max_batch_sizes=(16, 256), max_num_tokens=(8192,), chunked_prefill=(True,))
    obj = objectives.llm_serving_objective(MODEL, n_requests=100)
    study = dse.create_study("served", space, {"tok_s_per_user": "max", "usd_per_mtok": "min"},
                             constraints=obj.constraints, storage=":memory:")
    study.optimize(obj, optimizer="grid", progress=False)
    return study, obj


def test_the_section_shows_the_knee_and_the_cheapest_point(study_and_objective):
    study, obj = study_and_objective
    sections = report.objective_sections(obj, study)
    (title, body), prices = sections                    # then the GPU prices (`test_the_gpu_prices_are_shown`)
    # the shipped studies evaluate with the objective confirmed in the simulator: the same sections
    assert report.objective_sections(obj.confirming({"tok_s_per_user": "max"}), study) == sections
    assert "served steady state" in title
    knee, cheap = int(study.knee()["number"]), int(study.pareto().sort_values("usd_per_mtok").iloc[0]["number"])
    labels = re.findall(r'<div class="dse-served" data-label="([^"]+)">', body)
    assert labels == ([f"knee and cheapest (trial {knee})"] if knee == cheap else
                      [f"knee (trial {knee})", f"cheapest (trial {cheap})"])
    # the knee's table holds served_breakdown's numbers at its deployment and batch in flight
    row = study.trials.set_index("number").loc[knee]
    bd = served_breakdown(MODEL, row["gpu"], tp=int(row["tp"]), weight_dtype=row["weight_dtype"],
                          kv_dtype=row["kv_dtype"], input_len=obj.input_len, output_len=obj.output_len,
                          max_batch_size=int(np.ceil(row["batch_size"])), max_num_tokens=int(row["max_num_tokens"]))
    first = body.split('<div class="dse-served"')[1]
    totals = re.search(r'<th class="s">total</th>(.*?)</tr>', first).group(1)
    want = [f"{float(bd.loc[bd['phase'] == ph, 'total_ms'].iloc[0]):.4g}" for ph in SERVED_PHASES]
    assert re.findall(r"<th>([^<]*)</th>", totals) == want
    # the served TPOT is the study's own for a plain aggregated deployment at the workload's mean lengths
    assert float(want[3]) == pytest.approx(row["tpot_ms"], rel=2e-3)
    for ph in ("prefill_iteration", "decode_step"):    # a stacked bar per iteration kind, its parts 100 % of it
        bar = re.search(rf'<span class="dse-bar" data-phase="{ph}"[^>]*>(.*?)</span></div>', first).group(1)
        widths = [float(w) for w in re.findall(r"width:([0-9.]+)%", bar)]
        assert len(widths) >= 3 and sum(widths) == pytest.approx(100.0, abs=0.02)


def test_no_front_no_section(study_and_objective):
    _, obj = study_and_objective
    empty = dse.create_study("none", spaces.llm_serving(MODEL, ["H200"], 1), {"tok_s_per_user": "max"},
                             storage=":memory:")
    assert obj.report_sections(empty) == []


def test_the_report_opens_with_the_section_drawn(study_and_objective, chromium, tmp_path):  # noqa: F811
    study, obj = study_and_objective
    page = report.write(study.view(), tmp_path / "served.html", sections=report.objective_sections(obj, study))
    out = run_chromium(chromium, page, tmp_path, "--dump-dom")
    dom = out.stdout
    assert js_errors(out, dom) == []
    section = re.search(r'<section class="dse-objective-section" id="objective-section-0">(.*?)</section>', dom,
                        re.S).group(1)
    assert section.count('class="dse-bar"') == 2 * section.count('class="dse-served"') >= 2
    assert 'data-component="gemm"' in section and 'data-component="attention_decode"' in section
    assert section.count("<table") == section.count('class="dse-served"')


def test_a_speculative_point_shows_its_draft_and_verify():
    """A front point with speculative decoding on gets its section (skipped before: the breakdown priced plain
    decodes): its label names the knob and its table the draft layer's forwards, at `served_breakdown`'s numbers."""
    space = spaces.llm_serving(MODEL, ["H100"], 1, formats=["bf16"], max_batch_sizes=(16,), max_num_tokens=(8192,),
                               chunked_prefill=(True,), speculative=["eagle:3:0.8"])
    obj = objectives.llm_serving_objective(MODEL, n_requests=100)
    study = dse.create_study("spec", space, {"tok_s_per_user": "max"}, constraints=obj.constraints,
                             storage=":memory:")
    study.optimize(obj, optimizer="grid", progress=False)
    (_, body), _ = report.objective_sections(obj, study)
    knee = int(study.knee()["number"])
    assert re.findall(r'<div class="dse-served" data-label="([^"]+)">', body) == [
        f"knee and cheapest (trial {knee}, speculative eagle:3:0.8)"]
    row = study.trials.set_index("number").loc[knee]
    bd = served_breakdown(MODEL, "H100", tp=1, weight_dtype="bf16", input_len=obj.input_len,
                          output_len=obj.output_len, max_batch_size=int(np.ceil(row["batch_size"])),
                          max_num_tokens=8192, speculative="eagle:3:0.8", kv_dtype=row["kv_dtype"])
    tpot = float(bd.loc[bd["phase"] == "tpot", "total_ms"].iloc[0])
    assert tpot == pytest.approx(row["tpot_ms"], rel=2e-3)
    draft = float(bd.loc[bd["phase"] == "tpot", "draft"].iloc[0])
    assert draft > 0 and re.search(rf"draft</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>{draft:.4g}</td>",
                                   body)


def test_a_closed_loop_front_point_has_its_own_tpot_in_the_section():
    """Under a closed-loop workload (``concurrency``) the section priced `max_throughput`'s open-loop steady state:
    TPOT 13.69 ms for a trial the front table gives 13.29 (its TTFT + (output - 1) x TPOT past the cycle the
    study's own throughput implies). The study's number is the consistent one (mean e2e = TTFT + (output - 1) x
    TPOT = the clients' cycle): the section now prices the clients as the objective does
    (`served_breakdown(concurrency=...)`), so its TTFT and TPOT are the front's."""
    w = objectives.serving.Workload(concurrency=24, input_len=2048, output_len=256)
    space = spaces.llm_serving(MODEL, ["H100"], 2, formats=["fp8"], kv_dtypes=["fp8"], max_batch_sizes=(16, 64),
                               max_num_tokens=(8192,), chunked_prefill=(True,))
    obj = objectives.llm_serving_objective(MODEL, workload=w, n_requests=100)
    study = dse.create_study("closed", space, {"tok_s_per_user": "max", "usd_per_mtok": "min"},
                             constraints=obj.constraints, storage=":memory:")
    study.optimize(obj, optimizer="grid", progress=False)
    (_, body), _ = report.objective_sections(obj, study)
    trials = study.trials.set_index("number")
    shown = re.findall(r'data-label="[^"]*trial (\d+)[^"]*">.*?TTFT ([0-9.]+) ms, TPOT ([0-9.]+) ms', body, re.S)
    assert shown
    for number, ttft, tpot in shown:
        row = trials.loc[int(number)]
        assert float(tpot) == pytest.approx(row["tpot_ms"], rel=2e-3), number
        assert float(ttft) == pytest.approx(row["ttft_ms"], rel=2e-3), number
    # the open-loop steady state at the same batch prices another TPOT: the clients make the difference here
    row = trials.loc[int(shown[0][0])]
    bd = served_breakdown(MODEL, row["gpu"], tp=int(row["tp"]), weight_dtype="fp8", kv_dtype="fp8",
                          input_len=2048, output_len=256, max_batch_size=int(np.ceil(row["batch_size"])),
                          max_num_tokens=8192)
    assert float(bd.loc[bd["phase"] == "tpot", "total_ms"].iloc[0]) != pytest.approx(row["tpot_ms"], rel=1e-3)


def test_the_gpu_prices_are_shown(study_and_objective):
    """usd_per_mtok came with no word of the USD per GPU-hour behind it: a section lists each GPU type of the
    study's trials with its price and source (the catalog's quote and month, or the ``prices=`` given)."""
    from objectives import catalog

    study, obj = study_and_objective
    (title, body), = obj.price_section(study)
    assert title == "GPU prices behind usd_per_mtok"
    for name in ("H100-SXM-80GB", "H200-SXM-141GB"):
        g = catalog.gpu(name)
        row = re.search(rf"<tr><td>{name}</td><td>([^<]*)</td><td>([^<]*)</td></tr>", body)
        assert row and row.group(1) == f"{g.price_usd_per_hour:.2f}"
        assert g.price_date in row.group(2) and g.sources["price_usd_per_hour"] in row.group(2)
    given = objectives.llm_serving_objective(MODEL, n_requests=100, prices={"H100": 1.25})
    (_, body), = given.price_section(study)
    assert "<tr><td>H100-SXM-80GB</td><td>1.25</td><td>prices= given to llm_serving_objective</td></tr>" in body
