"""objectives.training.estimate: columns, physics, vectorization, clear errors, and the model invariants of issue 16
as hypothesis property tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import catalog, training
from objectives.training import TrainingError, estimate
from objectives.training.factors import default_factors

BASE = dict(model="Llama-3.1-70B", gpu="H100-SXM-80GB", n_gpus=1024, tp=8, pp=4, cp=1, ep=1, vp=1,
            sequence_parallel=True, zero_stage=1, recompute="selective", seq_len=8192, micro_batch=1,
            global_batch=1024, precision="fp8", offload=None)


def one(**kw) -> pd.Series:
    return estimate(**{**BASE, **kw}).iloc[0]


def test_issue_example_has_every_column_and_sane_values():
    r = estimate(**BASE, tokens=15e12)
    assert list(r.columns) == list(training.COLUMNS)
    r = r.iloc[0]
    assert r.dp == 32 and r.n_micro_batches == 32
    assert 0 < r.mfu_pct < 100 and r.fits
    assert r.tokens_per_s == pytest.approx(1024 * 8192 / r.step_time_s)
    assert r.tokens_per_s_per_gpu == pytest.approx(r.tokens_per_s / 1024)
    parts = (r.mem_weights_gib + r.mem_gradients_gib + r.mem_optimizer_gib + r.mem_activations_gib
             + r.mem_comm_buffers_gib)
    assert r.mem_per_gpu_gib == pytest.approx(parts)
    assert r.time_to_train_h == pytest.approx(15e12 / r.tokens_per_s / 3600)
    price = catalog.gpu("H100-SXM-80GB").price_usd_per_hour
    assert r.usd_per_run == pytest.approx(r.time_to_train_h * 1024 * price)
    tdp = catalog.gpu("H100-SXM-80GB").tdp_w
    assert 0 < r.mwh_per_run <= r.time_to_train_h * 1024 * tdp / 1e6 + 1e-9


def test_without_tokens_the_run_columns_are_nan():
    r = one()
    assert np.isnan(r.time_to_train_h) and np.isnan(r.usd_per_run) and np.isnan(r.mwh_per_run)


def test_mfu_uses_6n_plus_attention_and_the_16bit_peak():
    m = catalog.model("Llama-3.1-8B")
    r = estimate("Llama-3.1-8B", "H100", 8, tp=1, seq_len=4096, micro_batch=1, global_batch=64,
                 precision="bf16").iloc[0]
    from objectives.catalog import model_math
    n = model_math.active_params(m, input_embedding=False)
    flops_tok = 6 * n + 12 * m.n_layers * 4096 * m.n_heads * m.head_dim
    assert r.model_tflops_per_gpu == pytest.approx(r.tokens_per_s_per_gpu * flops_tok / 1e12, rel=1e-9)
    assert r.mfu_pct == pytest.approx(100 * r.model_tflops_per_gpu / catalog.gpu("H100").peak_tflops["bf16"])


@pytest.mark.parametrize("name", ["Llama-3.3-Nemotron-Super-49B", "Nemotron-H-56B", "Qwen3.5-27B"])
def test_models_with_layers_that_do_not_attend_count_only_their_attention_layers(name):
    """Pruned (Nemotron-NAS: 31 of 80 blocks without attention) and hybrid models (Mamba-2, Gated DeltaNet layers):
    6N counts the parameters they hold (the catalog's count) and the attention term only the softmax layers."""
    from objectives.catalog import model_math
    m = catalog.model(name)
    r = estimate(name, "H100", 8, tp=1, seq_len=4096, micro_batch=1, global_batch=64, precision="bf16").iloc[0]
    n = model_math.active_params(m, input_embedding=False)
    flops_tok = 6 * n + 12 * model_math.n_attention_layers(m) * 4096 * m.n_heads * m.head_dim
    assert model_math.n_attention_layers(m) < m.n_layers
    assert r.model_tflops_per_gpu == pytest.approx(r.tokens_per_s_per_gpu * flops_tok / 1e12, rel=1e-9)


def test_broadcasting_gives_one_row_per_configuration_equal_to_scalar_calls():
    tps = np.array([1, 2, 4, 8])
    precs = np.array(["bf16", "fp8"])[:, None]
    df = estimate("Llama-3.1-8B", "H100", 64, tp=tps, precision=precs, seq_len=4096, global_batch=512)
    assert len(df) == 8
    for i, (p, t) in enumerate([(p, t) for p in ("bf16", "fp8") for t in tps]):
        s = estimate("Llama-3.1-8B", "H100", 64, tp=int(t), precision=p, seq_len=4096, global_batch=512).iloc[0]
        pd.testing.assert_series_equal(df.iloc[i], s, check_names=False)


def test_interleaving_shrinks_the_bubble_and_more_micro_batches_too():
    a = one(pp=4, vp=1, global_batch=256)
    b = one(pp=4, vp=5, global_batch=256)
    assert b.bubble_pct < a.bubble_pct and b.step_time_s < a.step_time_s
    c = one(pp=4, global_batch=2048)
    assert c.bubble_pct < a.bubble_pct


def test_scale_out_is_slower_than_scale_up_for_the_same_collectives():
    # tp=16 crosses the 8-GPU NVLink domain of an HGX H100: its all-reduces run over the NICs
    r8 = one(tp=8, pp=4, n_gpus=1024)
    r16 = one(tp=16, pp=2, n_gpus=1024, model=catalog.model_from_hf_config(
        {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "vocab_size": 128256}))
    assert r16.exposed_comm_pct > r8.exposed_comm_pct
    slow = one(scale_out_gbps=50)
    assert slow.step_time_s > one().step_time_s


def test_lora_is_faster_and_lighter_than_full_finetuning():
    full = one(finetune="full", n_gpus=16, tp=4, global_batch=32, seq_len=4096)
    lora = one(finetune="lora", n_gpus=16, tp=4, global_batch=32, seq_len=4096)
    assert lora.step_time_s < full.step_time_s
    assert lora.mem_optimizer_gib < 0.05 * full.mem_optimizer_gib


def test_offload_frees_gpu_memory():
    base = one(n_gpus=64, tp=8, pp=1, global_batch=64, zero_stage=0)
    off = one(n_gpus=64, tp=8, pp=1, global_batch=64, zero_stage=0, offload="optimizer")
    assert off.mem_optimizer_gib == 0 and base.mem_optimizer_gib > 0
    assert off.mem_per_gpu_gib < base.mem_per_gpu_gib


def test_moe_with_expert_parallelism_all_to_all_costs_time():
    """EP shards the experts and pays all-to-all; LoRA freezes the experts, so no expert gradient reduction hides the
    all-to-all's cost, which grows when it has to leave the scale-up domain. (It also gives each local expert more
    rows, ep x top_k / experts of the tokens: with gemm_m_half = 0 only the all-to-all differs.)"""
    kw = dict(model="Mixtral-8x7B", gpu="H100", n_gpus=64, tp=1, pp=1, seq_len=4096, global_batch=256,
              precision="bf16", zero_stage=1, finetune="lora")
    r = estimate(ep=np.array([1, 2, 8]), **kw)
    assert np.all(np.diff(r["mem_weights_gib"]) < 0)
    assert np.all(np.diff(r["exposed_comm_pct"]) > 0)
    flat_rows = default_factors().with_values({"gemm_m_half": 0.0})
    assert np.all(np.diff(estimate(ep=np.array([1, 2, 8]), factors=flat_rows, **kw)["step_time_s"]) > 0)
    crossing = estimate(ep=8, scale_up_gpus=4, **kw).iloc[0]
    assert crossing.step_time_s > r["step_time_s"].iloc[2]
    # without LoRA, EP also shrinks the experts' gradient reduction (over dp / ep GPUs): at 64 GPUs it wins
    full = estimate(ep=np.array([1, 8]), **{**kw, "finetune": None})
    assert full["step_time_s"].iloc[1] < full["step_time_s"].iloc[0]


def test_models_from_config_dicts_and_gpt2_keys():
    gpt3 = {"hidden_size": 12288, "num_hidden_layers": 96, "num_attention_heads": 96, "vocab_size": 51200,
            "max_position_embeddings": 2048}
    r = estimate(gpt3, "A100-SXM-80GB", 1024, tp=8, pp=8, seq_len=2048, global_batch=1536, precision="bf16").iloc[0]
    assert r.tokens_per_s_per_gpu > 0
    gpt2 = catalog.model_from_hf_config({"n_embd": 1600, "n_layer": 48, "n_head": 25, "vocab_size": 50257,
                                          "model_type": "gpt2"})
    assert estimate(gpt2, "V100", 8, tp=1, seq_len=1024, global_batch=64, precision="fp16").iloc[0].fits


def test_frontier_gcd_and_v100_are_usable():
    r = estimate("Llama-2-70B", "MI250X", 1024, tp=8, pp=8, seq_len=4096, global_batch=1024, precision="bf16",
                 recompute="full").iloc[0]
    assert r.tokens_per_s_per_gpu > 0 and r.mfu_pct < 100
    with pytest.raises(TrainingError, match="'bf16' cannot run on V100-SXM2-32GB"):
        estimate("Llama-2-7B", "V100", 8, precision="bf16", global_batch=64)


@pytest.mark.parametrize("kw,match", [
    (dict(tp=3), r"tp=3 does not divide the 64 attention heads"),
    (dict(pp=3), r"pp x vp = 3 x 1 does not divide the 80 layers"),
    (dict(global_batch=1000), r"global_batch=1000 is not divisible by dp x micro_batch = 32 x 1 = 32"),
    (dict(n_gpus=1000), r"n_gpus=1000 is not a multiple of tp x pp x cp = 8 x 4 x 1 = 32"),
    (dict(cp=3, n_gpus=96 * 32), r"cp=3 does not split seq_len=8192"),
    (dict(ep=2), r"ep=2 but Llama-3.1-70B is dense"),
    (dict(precision="int4"), r"unknown precision 'int4'; valid: 'bf16', 'fp16', 'fp8', 'fp8-rowwise', 'fp8-block', "
                             r"'mxfp8', 'nvfp4'"),
    (dict(recompute="some"), r"unknown recompute 'some'; valid: 'none', 'selective', 'full', 'selective-op'"),
    (dict(cross_entropy="chunked"), r"unknown cross_entropy 'chunked'; valid: 'fused', 'eager'"),
    (dict(zero_stage=4), r"unknown zero_stage 4"),
    (dict(offload="disk"), r"unknown offload 'disk'"),
    (dict(gpu="A100-SXM-80GB"),
     r"precision 'fp8' cannot run on A100-SXM-80GB \(ampere\); valid there: \['bf16', 'fp16'\]"),
    (dict(precision="nvfp4"), r"'nvfp4' cannot run on H100-SXM-80GB"),
    (dict(micro_batch=0), r"micro_batch=0 is invalid: micro_batch must be an integer >= 1"),
    (dict(vp=5, global_batch=32 * 6), r"interleaved pipeline \(vp=5\) needs the 6 micro-batches"),
    (dict(gpu="L40S", precision="bf16"), r"exceed the 8-GPU scale-up domain of L40S"),
    (dict(tp_comm_overlap="yes"), r"tp_comm_overlap='yes' is invalid: valid: True, False"),
    (dict(ep_comm_overlap=2), r"ep_comm_overlap=2 is invalid: valid: True, False"),
    (dict(flash_attention="no"), r"flash_attention='no' is invalid: valid: True, False"),
])
def test_bad_input_names_the_numbers(kw, match):
    with pytest.raises(TrainingError, match=match):
        estimate(**{**BASE, **kw})


def test_fsdp_alias_is_zero_3():
    a = one(zero_stage="fsdp")
    b = one(zero_stage=3)
    pd.testing.assert_series_equal(a, b)


# ------------------------------------------------------------------------------------------ property tests
MODELS = ("Llama-3.1-8B", "Llama-3.1-70B", "Mixtral-8x7B", "Qwen3-30B-A3B")


@st.composite
def layouts(draw):
    model = draw(st.sampled_from(MODELS))
    m = catalog.model(model)
    tp = draw(st.sampled_from([t for t in (1, 2, 4) if m.n_heads % t == 0 and (m.n_kv_heads % t == 0)]))
    pp = draw(st.sampled_from([p for p in (1, 2, 4) if m.n_layers % (2 * p) == 0]))
    cp = draw(st.sampled_from((1, 2)))
    dp = draw(st.sampled_from((1, 2, 4, 8)))
    ep = draw(st.sampled_from([e for e in (1, 2) if (m.n_experts % e == 0 if m.n_experts else e == 1)
                               and (dp * cp) % e == 0]))
    mb = draw(st.sampled_from((1, 2)))
    m_mb = draw(st.integers(1, 8))
    return dict(model=model, gpu=draw(st.sampled_from(("H100-SXM-80GB", "B200", "H200"))),
                n_gpus=tp * pp * cp * dp, tp=tp, pp=pp, cp=cp, ep=ep, micro_batch=mb, global_batch=dp * mb * m_mb,
                seq_len=draw(st.sampled_from((2048, 4096, 8192))),
                zero_stage=draw(st.sampled_from((0, 1, 2, 3))),
                recompute=draw(st.sampled_from(training.RECOMPUTE)),
                sequence_parallel=draw(st.booleans()), precision=draw(st.sampled_from(("bf16", "fp8"))))


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_more_tp_or_pp_never_raises_weights_per_gpu(kw):
    base = estimate(**kw).iloc[0].mem_weights_gib
    m = catalog.model(kw["model"])
    if m.n_heads % (2 * kw["tp"]) == 0 and m.n_kv_heads % (2 * kw["tp"]) == 0:
        more_tp = estimate(**{**kw, "tp": 2 * kw["tp"], "n_gpus": 2 * kw["n_gpus"]}).iloc[0].mem_weights_gib
        assert more_tp <= base * (1 + 1e-12)
    more_pp = estimate(**{**kw, "pp": 2 * kw["pp"], "n_gpus": 2 * kw["n_gpus"]}).iloc[0].mem_weights_gib
    assert more_pp <= base * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_higher_zero_stage_never_uses_more_memory(kw):
    mems = estimate(**{**kw, "zero_stage": np.array([0, 1, 2, 3])})["mem_per_gpu_gib"].to_numpy()
    assert np.all(np.diff(mems) <= 1e-9)


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_full_recompute_le_selective_le_none_activation_memory(kw):
    acts = estimate(**{**kw, "recompute": np.array(["full", "selective", "none"])})["mem_activations_gib"].to_numpy()
    assert acts[0] <= acts[1] + 1e-12 and acts[1] <= acts[2] + 1e-12


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_full_recompute_le_op_level_selective_activation_memory(kw):
    # torchtitan's op-level policy keeps more than full recompute; with tp > 1 and SP it can keep more than "none"
    # (the row-parallel matmul's full-size partial sum is in its save list), so only full <= selective-op holds
    for ce in ("fused", "eager"):
        acts = estimate(**{**kw, "recompute": np.array(["full", "selective-op"]), "cross_entropy": ce})
        a = acts["mem_activations_gib"].to_numpy()
        assert a[0] <= a[1] + 1e-12


def test_eager_cross_entropy_needs_more_memory_and_no_more_time():
    kw = dict(model="Llama-3.1-8B", gpu="H100", n_gpus=8, zero_stage=3, recompute="selective-op", seq_len=8192,
              micro_batch=2, global_batch=16)
    r = estimate(**kw, cross_entropy=np.array(["fused", "eager"]))
    assert r["step_time_s"].iloc[0] == r["step_time_s"].iloc[1]
    extra = (r["mem_activations_gib"].iloc[1] - r["mem_activations_gib"].iloc[0]) * 2**30
    assert extra == pytest.approx(2 * 8192 * 128256 * (14.0 - 6.0))   # 14 vs 6 bytes per logit, 16,384 tokens


def test_op_level_selective_recompute_costs_time_between_selective_and_full():
    kw = dict(model="Llama-3.1-8B", gpu="H100", n_gpus=8, zero_stage=3, seq_len=8192, micro_batch=2, global_batch=16)
    t = estimate(**kw, recompute=np.array(["selective", "selective-op", "full"]))["step_time_s"].to_numpy()
    assert t[0] < t[1] < t[2]


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_larger_micro_batch_never_lowers_the_arithmetic_per_step(kw):
    mb = kw["micro_batch"]
    kw = {**kw, "global_batch": kw["global_batch"] * 2 // mb * 2}          # divisible by dp x 1, 2 and 4
    rows = estimate(**{**kw, "micro_batch": np.array([1, 2, 4])})
    flops_step = rows["model_tflops_per_gpu"] * rows["step_time_s"]     # model TFLOP per GPU per step
    assert np.all(np.diff(flops_step.to_numpy()) >= -1e-9 * flops_step.max())
    assert np.all(np.diff(rows["mem_activations_gib"].to_numpy()) >= -1e-12)


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_fp8_never_uses_more_memory_than_bf16(kw):
    mems = estimate(**{**kw, "precision": np.array(["bf16", "fp8"])})["mem_per_gpu_gib"].to_numpy()
    assert mems[1] <= mems[0] + 1e-12


def test_published_runs_fit_in_memory():
    """Every calibration configuration ran, so each should fit. Known exception (docs/training.md): NeMo's Llama-2-70B
    SFT on 16 H100 (tp 4, pp 4, dp 1), predicted at 80.3 GiB: with dp = 1 the distributed optimizer cannot shard the
    12 bytes/parameter of Adam states the model assumes, so NeMo must keep leaner states than that."""
    from objectives.calibration import training as cal
    df, _ = cal.load()
    cfg = cal.configurations(df)
    fits = cal.estimate_fits(cfg, training.default_factors())
    assert fits.sum() >= len(fits) - 1


def test_large_sweeps_are_chunked_without_changing_any_row():
    from objectives.training.model import CHUNK
    rng = np.random.default_rng(3)
    n = CHUNK * 2 + 123
    tp = np.array([1, 2, 4, 8])[rng.integers(0, 4, n)]
    dp = np.array([1, 2, 4])[rng.integers(0, 3, n)]
    rec = np.array(training.RECOMPUTE, dtype=object)[rng.integers(0, 3, n)]
    big = estimate("Llama-3.1-8B", "H100", tp * dp, tp=tp, global_batch=dp * 4, micro_batch=2, recompute=rec,
                   seq_len=4096, tokens=1e12)
    assert len(big) == n
    for i in (0, CHUNK - 1, CHUNK, n - 1):
        one_row = estimate("Llama-3.1-8B", "H100", int(tp[i] * dp[i]), tp=int(tp[i]), global_batch=int(dp[i] * 4),
                           micro_batch=2, recompute=rec[i], seq_len=4096, tokens=1e12).iloc[0]
        pd.testing.assert_series_equal(big.iloc[i], one_row, check_names=False)


def test_uneven_pipeline_stages_when_stated():
    """DeepSeek-V3's 61 layers on 16 stages: refused unless uneven_pp=True; then the slowest stage holds 4 layers,
    so it is no faster and needs no less memory than 64 layers on 16 even stages would."""
    kw = dict(model="DeepSeek-V3", gpu="H100", n_gpus=2048, tp=1, pp=16, ep=64, seq_len=4096, global_batch=4096,
              precision="fp8-block", recompute="full")
    with pytest.raises(TrainingError, match=r"does not divide the 61 layers of DeepSeek-V3 \(pass uneven_pp=True"):
        estimate(**kw)
    r = estimate(**kw, uneven_pp=True).iloc[0]
    assert r.fits and r.tokens_per_s_per_gpu > 0
    even = estimate(**{**kw, "pp": 1, "n_gpus": 128, "global_batch": 256}).iloc[0]
    assert r.mem_weights_gib < even.mem_weights_gib


def test_hybrid_sharding_shards_within_a_node_and_replicates_across():
    kw = dict(model="Llama-3.1-70B", gpu="H100", n_gpus=512, tp=1, seq_len=4096, global_batch=1024, recompute="full")
    r = estimate(zero_stage=np.array([3, "hybrid_shard"], dtype=object), **kw)
    fsdp, hsdp = r.iloc[0], r.iloc[1]
    assert hsdp.mem_optimizer_gib == pytest.approx(fsdp.mem_optimizer_gib * 512 / 8)   # 8 shards instead of 512
    assert hsdp.mem_per_gpu_gib > fsdp.mem_per_gpu_gib
    # within one node there is nothing to replicate: hybrid sharding is FSDP
    one_node = estimate(zero_stage=np.array(["fsdp", "hybrid_shard"], dtype=object), **{**kw, "n_gpus": 8,
                                                                                     "global_batch": 16})
    pd.testing.assert_series_equal(one_node.iloc[0], one_node.iloc[1], check_names=False)


@settings(max_examples=60, deadline=None)
@given(layouts())
def test_tp_comm_overlap_never_slows_a_step_and_hides_only_tp_traffic(kw):
    off = estimate(**kw).iloc[0]
    on = estimate(**kw, tp_comm_overlap=True).iloc[0]
    assert on.step_time_s <= off.step_time_s * (1 + 1e-12)
    if kw["tp"] == 1:       # nothing to overlap
        assert on.step_time_s == off.step_time_s
    assert on.mem_per_gpu_gib == off.mem_per_gpu_gib


def test_fsdp_collectives_show_even_when_compute_is_longer():
    # ZeRO-3 gathers beside every layer: a share of them is exposed however long the compute is; ZeRO-1's
    # buckets hide completely behind a long enough backward
    kw = dict(model="Llama-3.1-8B", gpu="H100", n_gpus=64, tp=1, pp=1, seq_len=8192, micro_batch=2,
              global_batch=128, precision="bf16")
    assert one(**kw, zero_stage=3).exposed_comm_pct > 0
    assert one(**kw, zero_stage=1).exposed_comm_pct == 0


def test_attention_time_counts_the_kernel_head_dimension():
    # MPT-30B's 112-dim heads run as 128 in flash attention: slower than 128 x 56 heads of the same FLOPs would be
    from objectives.training.model import _fa_dim
    assert (_fa_dim(112), _fa_dim(128), _fa_dim(96), _fa_dim(192), _fa_dim(200)) == (128, 128, 96, 192, 256)


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_ep_comm_overlap_never_slows_a_step_and_hides_at_most_the_all_to_all(kw):
    off = estimate(**kw).iloc[0]
    on = estimate(**kw, ep_comm_overlap=True).iloc[0]
    assert on.step_time_s <= off.step_time_s * (1 + 1e-12)
    if kw["ep"] == 1:
        assert on.step_time_s == off.step_time_s
    assert on.exposed_comm_pct * on.step_time_s <= off.exposed_comm_pct * off.step_time_s * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(layouts())
def test_unfused_attention_is_never_faster_nor_lighter_and_selective_drops_its_scores(kw):
    fa = estimate(**kw).iloc[0]
    un = estimate(**kw, flash_attention=False).iloc[0]
    assert un.step_time_s > fa.step_time_s
    assert un.mem_activations_gib >= fa.mem_activations_gib * (1 - 1e-12)
    if kw["recompute"] != "none":       # selective and full recompute keep no s x s scores
        assert un.mem_activations_gib == pytest.approx(fa.mem_activations_gib)
    none = estimate(**{**kw, "recompute": "none"}, flash_attention=False).iloc[0]
    sel = estimate(**{**kw, "recompute": "selective"}, flash_attention=False).iloc[0]
    assert sel.mem_activations_gib < none.mem_activations_gib
    assert sel.step_time_s > none.step_time_s          # selective reruns the core attention


def test_routed_experts_with_few_rows_run_slower_per_flop():
    # Qwen3-30B-A3B: 128 experts, top 8. Without expert parallelism each local expert sees 8/128 of the 4096 tokens
    # (256 rows); with ep 8 the group's GPUs send theirs, 2048 rows: the same FLOPs, faster GEMMs
    kw = dict(model="Qwen3-30B-A3B", gpu="H100", n_gpus=64, zero_stage=1, seq_len=4096, global_batch=512,
              precision="bf16")
    slow = estimate(**kw, ep=1, factors=default_factors().with_values({"gemm_m_half": 512.0})).iloc[0]
    fast = estimate(**kw, ep=8, scale_out_gbps=1e6, scale_up_gpus=64,
                    factors=default_factors().with_values({"gemm_m_half": 512.0})).iloc[0]
    base = estimate(**kw, ep=1, factors=default_factors().with_values({"gemm_m_half": 0.0})).iloc[0]
    assert slow.step_time_s > base.step_time_s
    assert fast.n_micro_batches == slow.n_micro_batches
    # ep 8 inside one (hypothetical 64-GPU) domain with a near-free all-to-all: only the GEMM rows differ
    assert fast.step_time_s < slow.step_time_s
