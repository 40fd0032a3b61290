"""The analytical serving model under prompt-length mixtures and trace arrivals (`ServingModel._mixture`,
`Workload.arrival_dispersion`) against the simulator, the reference: TTFT from each prompt's own prefill plus a
wait with the moments of the actual prefill times, TPOT percentiles from long prompts' chunks stalling the decodes,
and a trace's burstiness as its index of dispersion of counts. Fixed prompt lengths keep the closed form, bit for
bit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import serving
from objectives.serving import Trace, traces
from objectives.serving.analytical import Deployments, ServingModel, quantile_nodes

MODEL = "Llama-3.1-8B"
D8 = Deployments.of(gpu="H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", prefix_caching=False)
PAIRS = (("ttft_ms", "ttft_ms_mean"), ("ttft_ms_p50", "ttft_ms_p50"), ("ttft_ms_p99", "ttft_ms_p99"),
         ("tpot_ms_p99", "tpot_ms_p99"))


def _ratios(w: serving.Workload) -> dict[str, float]:
    ana = ServingModel(MODEL, w).evaluate(D8).iloc[0]
    sim = serving.simulate(MODEL, "H100", tp=1, weight_dtype="fp8", kv_dtype="fp8", workload=w,
                           scheduler=serving.Scheduler(prefix_caching=False))
    return {a: float(ana[a]) / float(sim[s]) for a, s in PAIRS}


@pytest.mark.parametrize("name,make,bounds", [
    # Mooncake conversation (40-120k-token prompts among short ones; requests arriving in clumps), Llama-3.1-8B
    # H100 fp8 at 0.5 req/s. Before: mean TTFT 0.21x, p50 0.23x, p99 0.29x, p99 TPOT 0.05x the simulator's
    # (the mean prompt's prefill priced; long prompts' chunks stalling the decodes unseen). Now 1.33 / 1.77 / 0.99 /
    # 1.50
    ("mooncake", lambda: traces.load_sample("mooncake_conversation").to_rate(0.5),
     {"ttft_ms": (0.6, 2.0), "ttft_ms_p50": (0.5, 2.5), "ttft_ms_p99": (0.7, 1.5), "tpot_ms_p99": (0.6, 2.0)}),
    # Azure 2023 code, its own arrivals x 8 (rate swings over minutes, a few long pauses). Before: 1.38 / 0.45 /
    # 2.67 / 0.19; now 0.77 / 0.58 / 1.43 / 0.63
    ("azure code", lambda: traces.load_sample("azure_code_2023").scale_rate(8.0),
     {"ttft_ms": (0.5, 1.5), "ttft_ms_p50": (0.3, 1.5), "ttft_ms_p99": (0.6, 1.7), "tpot_ms_p99": (0.4, 1.5)}),
])
def test_analytical_ttft_and_tpot_track_the_simulator_on_real_traces(name, make, bounds):
    r = _ratios(serving.Workload(trace=make()))
    for metric, (lo, hi) in bounds.items():
        assert lo < r[metric] < hi, (name, metric, r)


def test_poisson_arrivals_of_a_length_mixture_track_the_simulator():
    """Mooncake's prompt lengths with Poisson arrivals at 0.5 req/s: the waits' mean from the prefill times'
    second moment (superlinear in the prompt: attention), TTFT percentiles from the mixture of each prompt's own
    prefill and the wait. Before: mean 0.43x, p50 1.24x, p99 0.15x, p99 TPOT 0.10x; now 1.01x, 1.16x, 0.84x,
    1.68x."""
    w = serving.Workload(trace=traces.load_sample("mooncake_conversation"), rate=0.5)
    r = _ratios(w)
    assert 0.8 < r["ttft_ms"] < 1.25, r
    assert 0.7 < r["ttft_ms_p99"] < 1.3, r
    assert 0.7 < r["ttft_ms_p50"] < 1.6, r
    assert 0.5 < r["tpot_ms_p99"] < 2.5, r


def test_fixed_prompt_lengths_keep_the_closed_form_bit_for_bit():
    """A length mixture of one length (a trace of equal prompts, a normal Dist of zero spread) is priced by the
    fixed-length closed form, bit for bit: the flagship and the calibration rows (Poisson arrivals of fixed
    lengths) do not move."""
    d = Deployments.of(gpu=["H100", "H200"], tp=[1, 2], weight_dtype="fp8", kv_dtype="fp8")
    fixed = serving.Workload(rate=4.0, input_len=2048, output_len=256, n_requests=500)
    zero = serving.Workload(rate=4.0, input_len=serving.Dist("normal", mean=2048, std=0), output_len=256,
                            n_requests=500)
    rng = np.random.default_rng(0)
    flat = serving.Workload(trace=Trace(None, np.full(500, 2048), rng.integers(1, 512, 500)), rate=4.0)
    assert ServingModel(MODEL, zero)._len_nodes is None and ServingModel(MODEL, flat)._len_nodes is None
    pd.testing.assert_frame_equal(ServingModel(MODEL, fixed).evaluate(d), ServingModel(MODEL, zero).evaluate(d),
                                  check_exact=True)
    # the mixture path is taken as soon as prompts differ
    assert ServingModel(MODEL, serving.Workload(rate=4.0, input_len=serving.Dist("uniform", low=2000, high=2100))
                        )._len_nodes is not None


DEPS = Deployments.of(gpu=["H100", "H200", "H200"], tp=[1, 1, 2], weight_dtype="fp8", kv_dtype="fp8",
                      prefix_caching=False)


@pytest.mark.parametrize("workload", [
    lambda scale: serving.Workload(rate=3.0, input_len=serving.Dist("lognormal", mean=1024 * scale,
                                                                    std=1500 * scale, max=64000), output_len=200),
    lambda scale: serving.Workload(trace=(lambda t: Trace(t.arrival_s, np.minimum(t.input_tokens * scale, 100_000),
                                                          t.output_tokens))(
        traces.load_sample("azure_conv_2023").scale_rate(2.0))),
])
def test_longer_prompts_never_lower_ttft_percentiles(workload):
    prev = None
    for scale in (1, 2, 4):
        m = ServingModel("Llama-3.1-8B", workload(scale)).evaluate(DEPS)
        cur = m[["ttft_ms", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99"]].to_numpy(float)
        if prev is not None:
            assert np.all(cur >= prev * (1 - 1e-9)), (scale, prev, cur)
        prev = cur


@pytest.mark.parametrize("make", [
    lambda k: serving.Workload(rate=k, input_len=serving.Dist("lognormal", mean=2048, std=3000, max=32000),
                               output_len=256),
    lambda k: serving.Workload(trace=traces.load_sample("mooncake_conversation").to_rate(0.1 * k)),
    lambda k: serving.Workload(trace=traces.load_sample("azure_code_2023").scale_rate(k)),
])
def test_more_load_never_lowers_ttft_or_tpot_percentiles(make):
    prev = None
    for k in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        m = ServingModel("Llama-3.1-8B", make(k)).evaluate(DEPS)
        cur = m[["ttft_ms", "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p99"]].to_numpy(float)
        if prev is not None:
            assert np.all(cur >= prev * (1 - 1e-9)), (k, prev, cur)
        prev = cur


def test_index_of_dispersion_counts_clumps_not_long_pauses():
    """`Workload.arrival_dispersion`: Poisson arrivals read ~1 at every window; requests arriving five at a time
    read ~5 in windows shorter than the gaps between clumps; a few long pauses inserted into Poisson arrivals
    blow the gaps' squared CV up (`variability`, > 40) but not the index over windows of a second or less (< 2: the
    empty windows of a pause count only as a share of all windows)."""
    rng = np.random.default_rng(1)
    n = 4000
    lens = np.full(n, 100)
    poisson = np.cumsum(rng.exponential(1.0, n))
    windows = np.array([0.01, 0.1, 1.0, 10.0])
    idc = serving.Workload(trace=Trace(poisson - poisson[0], lens, lens)).arrival_dispersion(windows)
    assert idc is not None and np.all(np.abs(idc - 1.0) < 0.15), idc
    clumps = np.repeat(np.cumsum(rng.exponential(5.0, n // 5)), 5)
    idc = serving.Workload(trace=Trace(clumps - clumps[0], lens, lens)).arrival_dispersion(np.array([0.01, 0.1]))
    assert idc is not None and np.all(np.abs(idc - 5.0) < 0.5), idc
    gaps = rng.exponential(1.0, n)
    gaps[::1000] = 2000.0                                           # four pauses of ~half an hour
    paused = np.cumsum(gaps)
    w = serving.Workload(trace=Trace(paused - paused[0], lens, lens))
    assert w.variability()[0] > 40
    idc = w.arrival_dispersion(np.array([0.1, 1.0]))
    assert idc is not None and np.all(idc < 2.0), idc
    # the analytical model reads it only for a trace's own arrivals
    assert serving.Workload(rate=2.0).arrival_dispersion(windows) is None
    assert serving.Workload(trace=Trace(paused, lens, lens), rate=1.0).arrival_dispersion(windows) is None


def test_quantile_nodes_keep_the_mean_and_weights():
    x = np.random.default_rng(0).lognormal(7.0, 1.2, 10_000)
    nodes, w = quantile_nodes(x)
    assert w.sum() == pytest.approx(1.0) and np.all(np.diff(nodes) >= 0)
    assert nodes @ w == pytest.approx(x.mean(), rel=1e-9)
    assert nodes[-1] > np.quantile(x, 0.999)                       # the top bin: the longest prompts' mean
