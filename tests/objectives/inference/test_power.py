"""The power model (objectives/inference/power.py): phases, sourced idle power, the stored fit, energy figures."""
import math

import numpy as np
import pytest

from objectives import catalog, inference
from objectives.inference import power, power_fit


def mean_power_w(df):
    """Mean board power per GPU (W) of each row: energy per token x tokens/s / GPUs."""
    return (df["joules_per_tok"] * df["throughput_tok_s"] / df["n_gpus"]).to_numpy(float)


def test_decode_is_memory_bound_and_well_below_tdp_prefill_near_tdp():
    tdp = catalog.gpu("H100").tdp_w
    decode = inference.estimate("Llama-3.1-8B", "H100", batch_size=[1, 8, 32], input_len=1, output_len=2048)
    prefill = inference.estimate("Llama-3.1-8B", "H100", batch_size=8, input_len=8192, output_len=1)
    pd_, pp_ = mean_power_w(decode), mean_power_w(prefill)[0]
    assert (pd_ > catalog.gpu("H100").idle_w).all() and (pd_ < 0.6 * tdp).all(), pd_
    assert np.all(np.diff(pd_) > 0)  # more tensor work per weight byte as the batch grows
    assert 0.85 * tdp < pp_ <= tdp, pp_


def test_energy_per_token_falls_with_batch_and_prefill_costs_energy():
    df = inference.max_throughput("Llama-3.1-8B", "H100", max_batch_size=[1, 8, 64, 256], input_len=1024,
                                  output_len=256)
    j = df["joules_per_tok"].to_numpy()
    assert np.all(np.diff(j) < 0) and j[0] > 10 * j[-1]
    short = inference.estimate("Llama-3.1-8B", "H100", batch_size=16, input_len=[128, 8192], output_len=128)
    assert short["joules_per_tok"].iloc[1] > 2 * short["joules_per_tok"].iloc[0]


def test_idle_power_is_published_where_known_else_the_median_published_ratio():
    f = power.load_power_factors()
    idle, names = power_fit.idle_fraction()
    assert set(names) >= {"H100-SXM-80GB", "H200-SXM-141GB"}
    assert f.idle_frac == pytest.approx(idle, abs=1e-4) and f.idle_frac < 0.2  # the old guess was 0.2 x TDP
    b200 = catalog.gpu("B200")
    assert b200.idle_w is None and power.idle_power_w(b200) == pytest.approx(f.idle_frac * b200.tdp_w)
    assert power.idle_power_w(catalog.gpu("H200")) == catalog.gpu("H200").idle_w
    for name in names:
        assert catalog.gpu_sources(name)["idle_w"].source.startswith("https://")


def test_stored_factors_are_the_fit_of_the_stored_anchors():
    stored = power.load_power_factors()
    fitted, rows = power_fit.fit(power_fit.load_anchors())
    assert fitted.mem_bound_frac == pytest.approx(stored.mem_bound_frac, abs=1e-3)
    assert 0.2 < stored.mem_bound_frac < 0.8 and stored.compute_frac == 1.0
    for r in rows:
        if r["role"] == "fit":
            assert abs(r["error_pct"]) < 15, r


def test_phase_energy_formula_and_clipping():
    f = power.PowerFactors(mem_bound_frac=0.5, compute_frac=1.0, idle_frac=0.1)
    # 1 s span, 0.8 s of kernels, 0.2 s of them compute-bound: 100 + 600 x (0.5 x 0.8 + 0.5 x 0.2)
    assert power.phase_energy_j(100.0, 700.0, 1.0, 0.8, 0.2, f) == pytest.approx(100 + 600 * 0.5)
    assert power.phase_energy_j(100.0, 700.0, 1.0, 2.0, 5.0, f) == pytest.approx(700.0)  # clipped to the span
    assert power.power_w(100.0, 700.0, 1.0, factors=f) == pytest.approx(700.0)
    assert power.power_w(100.0, 700.0, 0.0, factors=f) == pytest.approx(100.0)
    assert power.power_w(100.0, 700.0, np.array([1.0, 1.0]), np.array([0.0, 1.0]), f) == pytest.approx([400, 700])


@pytest.mark.parametrize("kw, bad", [({"mem_bound_frac": 1.5}, "mem_bound_frac"), ({"idle_frac": 0.0}, "idle_frac"),
                                     ({"mem_bound_frac": 0.9, "compute_frac": 0.8}, "exceeds compute_frac"),
                                     ({"compute_frac": math.nan}, "compute_frac")])
def test_bad_factors_name_the_value(kw, bad):
    args = {"mem_bound_frac": 0.5, "compute_frac": 1.0, "idle_frac": 0.1, **kw}
    with pytest.raises(ValueError, match=bad):
        power.PowerFactors(**args)


@pytest.mark.parametrize("engine", ["roofline", "vllm"])
def test_step_model_compute_fraction_and_power(engine):
    # vllm: the measured forward of a 4k-token prompt beats the closed-form GEMM rate compute_s counts at
    sm = inference.StepModel("Llama-3.1-8B", "H100", engine=engine)
    pre = sm.compute_fraction(4096, 4096 * 4097 / 2, 0, 0)
    dec = sm.compute_fraction(0, 0, 8, 8 * 1024)
    assert 0.5 < pre <= 1.0 and dec < 0.2
    u = sm.utilization(0, 0, 8, 8 * 1024)
    tdp, idle = catalog.gpu("H100").tdp_w, catalog.gpu("H100").idle_w
    assert idle < sm.power_w(u, dec) < sm.power_w(u) <= tdp
    assert sm.power_w(1.0) == pytest.approx(tdp)


def test_newer_gpu_spends_less_energy_per_token_on_the_same_work():
    df = inference.max_throughput("Llama-3.1-8B", ["H100", "B200"], max_batch_size=256, input_len=1024,
                                  output_len=512)
    h100, b200 = df["joules_per_tok"].to_numpy()
    assert b200 < h100
