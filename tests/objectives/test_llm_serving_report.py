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
    (title, body), = report.objective_sections(obj, study)
    # the shipped studies evaluate with the objective confirmed in the simulator: the same section
    assert report.objective_sections(obj.confirming({"tok_s_per_user": "max"}), study) == [(title, body)]
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
    (_, body), = report.objective_sections(obj, study)
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
