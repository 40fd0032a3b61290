"""`serving.simulate` says where its numbers come from, as every `inference` row does: ``source`` (the least
certain of what prices its iterations: interpolated, extrapolated or roofline) and ``engine`` (whose kernel tables
cost them; "roofline" for the closed form). A GPU without a measured profile is simulated on the roofline and says
so, never a crash."""
from __future__ import annotations

import pytest

from objectives import inference, serving

W = serving.Workload(concurrency=4, input_len=512, output_len=32, n_requests=16)


@pytest.mark.parametrize("gpu,engine,source,name", [
    ("H100", None, "interpolated", "vllm"), ("H100", "sglang==0.5.14", "interpolated", "sglang==0.5.14"),
    ("H100", "roofline", "roofline", "roofline"), ("MI300X", None, "roofline", "roofline"),
    ("RTX-4090", "vllm", "roofline", "vllm"),
])
def test_a_simulation_names_its_source_and_engine_as_estimate_does(gpu, engine, source, name):
    m = serving.simulate("Llama-3.1-8B", gpu, tp=1, workload=W, engine=engine)
    row = inference.estimate(model="Llama-3.1-8B", gpu=gpu, tp=1, batch_size=4, input_len=512, output_len=32,
                             engine=engine).iloc[0]
    assert (m["source"], m["engine"]) == (source, name) == (row["source"], row["engine"])
    assert set(m) == set(serving.METRIC_KEYS) | set(serving.LABEL_KEYS)


def test_disaggregated_pools_report_the_least_certain_source():
    # a prefill pool on a GPU without tables (roofline) beside a measured decode pool: the whole run is as certain
    # as its least certain pool
    m = serving.simulate("Llama-3.1-8B", "H100", tp=1, workload=W, mode="disagg",
                         prefill=serving.Pool(gpu="MI300X", tp=1), decode=serving.Pool(tp=1))
    assert m["source"] == "roofline"


def test_a_simulation_past_the_measured_cells_says_extrapolated_as_estimate_does():
    # a 120k-token prompt reads the attention tables past the collector's longest prompt: `estimate` says
    # "extrapolated" for it, and so does the simulation of the same request (it used to report the step model's
    # prepared "interpolated"); a short prompt stays "interpolated" on both
    for isl, want in ((120_000, "extrapolated"), (512, "interpolated")):
        m = serving.simulate("Llama-3.1-8B", "H100", tp=1, workload=serving.Workload(
            concurrency=1, input_len=isl, output_len=16, n_requests=2))
        row = inference.estimate(model="Llama-3.1-8B", gpu="H100", tp=1, batch_size=1, input_len=isl,
                                 output_len=16).iloc[0]
        assert m["source"] == row["source"] == want
