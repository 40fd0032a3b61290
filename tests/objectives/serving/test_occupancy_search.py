"""`ServingModel`'s open-loop occupancy search: a deployment past its capacity holds its full batch without being
searched, and a batch of mixed deployments (riding prompts, prefill batches alone, pipelines) prices each one as
it is priced alone, so searching some rows of a batch gives the numbers of searching all of them."""
from __future__ import annotations

import numpy as np
import pytest

import objectives.serving.analytical as analytical
from objectives import serving
from objectives.serving.analytical import Deployments, ServingModel

MODEL = "Llama-3.1-70B"
W = serving.Workload(rate=4.0, input_len=2048, output_len=256)
SLO = serving.SLO(ttft_ms=2000, tpot_ms=200, percentile="p99")
#: vLLM pp 1 (prompts ride beside the decodes), SGLang pp 1 (prefill batches alone), vLLM and SGLang pipelines
MIXED = dict(gpu="H100-SXM-80GB", tp=[4, 4, 2, 2, 4], pp=[1, 1, 2, 4, 2], weight_dtype="fp8",
             engine=["vllm", "sglang", "vllm", "sglang", "vllm"], max_batch_size=[256, 128, 256, 64, 32],
             max_num_tokens=8192)
COLS = ("ttft_ms", "tpot_ms", "ttft_ms_p99", "tpot_ms_p99", "batch_size", "requests_per_s")


@pytest.fixture(scope="module")
def model_and_deployments() -> tuple[ServingModel, Deployments]:
    return ServingModel(MODEL, W), Deployments.of(**MIXED)


def test_rows_past_capacity_are_not_searched(model_and_deployments, monkeypatch) -> None:
    sm, d = model_and_deployments
    cap = sm.evaluate(d, rate=np.full(len(d), 1e9))["requests_per_s"].to_numpy(float)
    rate = np.where(np.arange(len(d)) % 2 == 0, 0.5 * cap, 3.0 * cap)     # rows 1 and 3 cannot keep up
    searched: list[int] = []
    real = analytical.bisect

    def counting(lo, hi, go_up, steps, **kw):
        if kw.get("geometric"):            # the occupancy search (on log N)
            searched.append(len(lo))
        return real(lo, hi, go_up, steps, **kw)

    monkeypatch.setattr(analytical, "bisect", counting)
    out = sm.evaluate(d, SLO, rate=rate)
    assert searched and max(searched) <= 3                              # never the two past capacity
    over = out.iloc[[1, 3]]
    assert (over["requests_per_s"].to_numpy(float) < rate[[1, 3]]).all()    # they serve their capacity only
    monkeypatch.setattr(analytical, "bisect", real)
    for i in range(len(d)):                                             # each row as it is priced alone
        alone = sm.evaluate(d.take(np.array([i])), SLO, rate=rate[i:i + 1])
        for c in COLS:
            assert alone[c].iloc[0] == out[c].iloc[i], (i, c)


def test_capacity_of_a_mixed_batch_is_each_rows_own(model_and_deployments) -> None:
    sm, d = model_and_deployments
    cap = sm.capacity(d, SLO, tol=0.05)
    assert (cap > 0).all()
    for i in range(len(d)):
        assert sm.capacity(d.take(np.array([i])), SLO, tol=0.05)[0] == cap[i]


def test_the_burst_loop_reprices_only_the_rows_that_opened_a_batch_and_prices_each_row_as_alone(monkeypatch):
    """pp > 1: each pass of `ServingModel._open_loop`'s burst loop prices again only the deployments whose
    occupancy moved (those that opened a batch), the others keeping the numbers of their last pass: every row as
    it is priced alone (`_at` is elementwise over deployments)."""
    from objectives.serving import analytical
    from objectives.serving.analytical import Deployments, ServingModel

    w = serving.Workload(rate=12.0, input_len=2048, output_len=256, n_requests=1200)
    d = Deployments.of(gpu=["H100-SXM-80GB"] * 4 + ["H200-SXM-141GB"] * 2, tp=[2, 2, 4, 2, 2, 4],
                       pp=[4, 2, 2, 1, 4, 2], weight_dtype="fp8", kv_dtype="fp8",
                       engine=["vllm", "sglang", "vllm", "vllm", "trtllm", "vllm"])
    sizes: list[tuple[int, int]] = []
    real = analytical.ServingModel._at

    def counted(self, dd, N, *a, **k):
        sizes.append((len(dd), np.ndim(N)))
        return real(self, dd, N, *a, **k)

    monkeypatch.setattr(analytical.ServingModel, "_at", counted)
    sm = ServingModel("Llama-3.1-70B", w)
    together = sm.evaluate(d)
    # the burst loop's passes are the one-dimensional calls below the 5 pipelined rows (`held` prices those 5, the
    # final and decode passes all 6; the occupancy searches are two-dimensional): at this load 3, then 1 and 1
    # row(s) opened a batch
    # (3, 1, 1 before the thirty-seventh refit's factors: which rows open a batch is the load's)
    assert sorted(s for s, nd in sizes if nd == 1 and s < 5) == [1, 1, 2]
    cols = ["ttft_ms", "tpot_ms", "ttft_ms_p99", "tpot_ms_p99", "requests_per_s", "batch_size"]
    for i in range(len(d)):
        alone = ServingModel("Llama-3.1-70B", w).evaluate(d.take(np.array([i])))
        assert alone[cols].iloc[0].tolist() == together[cols].iloc[i].tolist(), i
