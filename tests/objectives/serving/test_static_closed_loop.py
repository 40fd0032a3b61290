"""A static batch's closed loop: the closed form agrees with the simulator and with Little's law (second review of
session 36, finding 3)."""
import warnings

import pytest

from objectives import serving
from objectives.inference.core import default_eff
from objectives.inference.efficiency import from_params
from objectives.serving.analytical import Deployments, ServingModel

MODEL = "Llama-3.1-8B"


def _deploy(engine: str, mbs: int = 32) -> Deployments:
    return Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False, engine=engine,
                          batching="static", max_batch_size=mbs)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "roofline"])
def test_a_few_clients_static_closed_loop_matches_the_simulator(engine):
    """An engine's API server passes the clients' requests one by one, so the first starts a batch alone and two
    groups alternate (each client's cycle is both batches); the roofline's arrive together and stay one batch."""
    w = serving.Workload(concurrency=4, input_len=1024, output_len=128, n_requests=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ServingModel(MODEL, w).evaluate(_deploy(engine)).iloc[0]
        s = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", engine=engine, workload=w,
                             scheduler=serving.Scheduler(prefix_caching=False, batching="static", max_batch_size=32))
    assert a["requests_per_s"] == pytest.approx(s["requests_per_s"], rel=0.03)
    # (the roofline's lone batch of four prompts: its prefill priced 12 ms below the simulator's, as before)
    assert a["ttft_ms"] == pytest.approx(s["ttft_ms_mean"], rel=0.05 if engine != "roofline" else 0.2)


@pytest.mark.parametrize("host_ms", [None, 300.0])
@pytest.mark.parametrize("conc, mbs", [(4, 32), (64, 16)])
def test_static_closed_loop_keeps_littles_law(host_ms, conc, mbs):
    """clients = X x the client's cycle (its e2e, host time included), whatever the host time."""
    p = default_eff().params
    eff = None if host_ms is None else from_params({**p, "engine_ttft_ms": {k: host_ms for k in p["engine_ttft_ms"]}})
    w = serving.Workload(concurrency=conc, input_len=1024, output_len=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ServingModel(MODEL, w, efficiency=eff).evaluate(_deploy("vllm", mbs)).iloc[0]
    e2e_s = (a["ttft_ms"] + 127 * a["tpot_ms"]) / 1e3
    assert a["throughput_tok_s"] / 128 * e2e_s == pytest.approx(conc, rel=1e-6)
