"""Silicon-layout rows beyond the four MoE models of the shipped slice: every quantization scheme aiconfigurator-core
names, dense models that leave the MoE columns empty, and rows the model cannot read, which must not stop the others.
The measured columns hold placeholders: these tests read and predict, they score nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles
from objectives.calibration import silicon
from objectives.calibration.measurements import SILICON_REQUIRED, model_dtypes, quant_dtype, read_measurements
from objectives.inference import resolve

#: aiconfigurator-core 0.12.0's GEMMQuantMode and MoEQuantMode member names (aiconfigurator_core/sdk/common.py)
#: with the weight dtype and the compute dtype each stands for
AIC_SCHEMES = {
    "bfloat16": ("bf16", None), "int8_wo": ("int8", "bf16"), "int4_wo": ("int4", "bf16"), "fp8": ("fp8", None),
    "fp8_static": ("fp8", None), "sq": ("int8", "int8"), "fp8_block": ("fp8", None), "fp8_ootb": ("fp8", None),
    "nvfp4": ("fp4", None), "nvfp4_wo": ("fp4", "bf16"), "w4a16_nvfp4": ("fp4", "bf16"), "w4afp8": ("int4", "fp8"),
    # the MXFP8 activations of gpt-oss's w4a8 schemes are its experts' (moe_act_dtype), not the act_dtype of its
    # 16-bit layers, which the cost model refuses beyond 16 bits there (R_MX_ACT): None, the model's default
    "w4a16_mxfp4": ("fp4", "bf16"), "w4a8_mxfp4_mxfp8": ("fp4", None), "w4a8_mxfp4_mxfp8_trtllm": ("fp4", None),
    "w4a16_mxfp4_cutlass": ("fp4", "bf16"),
}


def _row(**kw) -> dict:
    r = dict.fromkeys(SILICON_REQUIRED, "")
    r.update(id="r_c8_", silicon_data_source="test; silicon_concurrency=8", backend="vllm", backend_version="0.12.0",
             model_path="meta-llama/Meta-Llama-3.1-8B", system="h100_sxm", precision="fp8", mode="agg", isl=1024,
             osl=1024, gemm_quant_mode="fp8", moe_quant_mode="", batch_size=8, tp_size=1, pp_size=1,
             attention_dp_size=1, moe_tp_size=1, moe_ep_size=1, silicon_ttft_ms=1, silicon_tpot_ms=1)
    r.update(kw)
    return r


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "silicon.csv"
    pd.DataFrame(rows, columns=list(SILICON_REQUIRED)).to_csv(p, index=False)
    return p


@pytest.mark.parametrize("scheme", sorted(AIC_SCHEMES))
def test_every_aiconfigurator_scheme_reads_as_its_weight_and_compute_dtype(tmp_path, scheme):
    model = "openai/gpt-oss-120b" if "mxfp4" in scheme else "Qwen/Qwen3-30B-A3B"
    d = read_measurements(_write(tmp_path, [_row(model_path=model, gemm_quant_mode="bfloat16",
                                                 moe_quant_mode=scheme, precision="bf16")]))
    assert d["moe_quant"].iloc[0] == scheme and d["moe_dtype"].iloc[0] == AIC_SCHEMES[scheme][0]
    weight, act = model_dtypes(d, moe=[True])
    want_w, want_a = AIC_SCHEMES[scheme]
    # the experts' format is what the model runs when narrower than the 16-bit attention's (gpt-oss)
    assert weight[0] == (want_w if want_w != "bf16" else "bf16")
    assert act[0] == (want_a if want_w != "bf16" else None)


def test_a_scheme_name_outside_the_list_reads_by_the_format_it_spells_and_nonsense_still_fails():
    assert quant_dtype("fp8_pertensor_dynamic") == "fp8" and quant_dtype("W4A8_NVFP4_FP8") == "fp4"
    assert quant_dtype("fp6") is None


def test_a_dense_model_needs_no_moe_columns_and_its_narrower_moe_column_is_ignored(tmp_path):
    d = read_measurements(_write(tmp_path, [
        _row(moe_tp_size="", moe_ep_size="", attention_dp_size="", pp_size="", tp_size=2),
        _row(id="no_conc", silicon_data_source="test", attention_dp_size=2, tp_size=1),
        _row(moe_quant_mode="nvfp4")]))
    assert d[["tp", "pp", "attn_dp", "moe_tp", "moe_ep"]].iloc[0].tolist() == [2, 1, 1, 2, 1]
    assert d["concurrency"].tolist() == [8, 16, 8]  # row 2: batch per attention-DP rank x ranks
    weight, act = model_dtypes(d, moe=[False, False, False])
    assert weight.tolist() == ["fp8", "fp8", "fp8"] and act.tolist() == [None, None, None]


def test_a_row_without_concurrency_or_batch_names_the_row(tmp_path):
    p = _write(tmp_path, [_row(), _row(batch_size="", id="x", silicon_data_source="test")])
    with pytest.raises(ValueError, match=r"row 2, column 'silicon_data_source': no concurrency.*batch_size"):
        read_measurements(p)


def test_rows_the_model_cannot_read_stay_unpredicted_and_do_not_stop_the_others(tmp_path):
    d = read_measurements(_write(tmp_path, [
        _row(), _row(model_path="example/NotAModel-7B"), _row(system="tpu_v5e"),
        _row(model_path="openai/gpt-oss-20b", gemm_quant_mode="bfloat16", moe_quant_mode="w4a16_mxfp4",
             precision="mxfp4"),
        _row(system="H100-SXM-80GB"), _row(system="H100")]))   # catalog names, as `dse calibrate --gpu` gives
    p = silicon.predict(d)
    assert p["tpot_pred"].notna().tolist() == [True, False, False, True, True, True]
    assert p["tpot_pred"].iloc[4] == p["tpot_pred"].iloc[5] == p["tpot_pred"].iloc[0]
    assert (p["tpot_pred"].dropna() > 0).all() and (p["ttft_pred"].dropna() > 0).all()


def test_mxfp4_experts_on_blackwell_run_tensorrt_llms_mxfp8_kernel_whatever_the_rows_label():
    """gpt-oss on B200 under TensorRT-LLM: the engine quantizes the MXFP4 experts' activations to MXFP8 on
    Blackwell (`inference.measured.MXFP8_MOE_ENGINES`), so rows labelled with 16-bit compute (aiconfigurator-core's
    "w4a16_mxfp4") read the MXFP8 table as fp8-labelled rows do, not the 16-bit kernel its table also times
    (4-6x slower at decode token counts)."""
    r = inference.estimate("openai/gpt-oss-120b", "B200", tp=1, weight_dtype="fp4",
                           act_dtype=np.array(["fp8", "bf16"], dtype=object), batch_size=64, input_len=1024,
                           output_len=1024, engine="trtllm")
    assert (r["source"] != "roofline").all()
    fp8, bf16 = r["tpot_ms"].to_numpy(float)
    assert bf16 == pytest.approx(fp8, rel=0.05)
    prof = profiles.load("B200", "trtllm")
    shape = np.array([[2880.0, 2880.0, 4.0, 128.0, 1.0, 1.0]])   # hidden, expert FFN, top-k, experts, TP, EP

    def layer_ms(fmt: str) -> float:
        i = prof.shape_index(f"moe.{fmt}", shape)[0]
        assert i > 0, fmt
        return float(prof.table(f"moe.{fmt}")(i, 64.0))
    assert layer_ms("w4a16_mxfp4") > 3.0 * layer_ms("w4a8_mxfp4_mxfp8")


def test_the_families_outside_the_slice_are_predicted_in_the_silicon_layout(tmp_path):
    """Rows shaped like the held-out families (Llama-3.1, Qwen3 dense and MoE, DeepSeek-V3, gpt-oss; the three
    engines on H100, H200 and B200; the checkpoints' own schemes) read and predict: every row whose deployment
    fits its GPUs gets finite positive TTFT and TPOT from a measured profile (the independent target asks for
    >= 95 % of rows predicted)."""
    cases = [  # model, precision, gemm / moe scheme, systems, (tp, attention DP, EP)
        ("meta-llama/Meta-Llama-3.1-8B", "bf16", "", "", ("h100_sxm", "b200_sxm"), [(1, 1, 1)]),
        ("meta-llama/Meta-Llama-3.1-70B", "fp8", "fp8", "", ("h200_sxm", "b200_sxm"), [(4, 1, 1), (8, 1, 1)]),
        ("nvidia/Llama-3.1-70B-Instruct-FP8", "fp8", "fp8", "", ("h100_sxm",), [(2, 1, 1)]),
        ("Qwen/Qwen3-32B-FP8-Static-PerTensor", "fp8", "fp8_static", "", ("h200_sxm",), [(2, 1, 1)]),
        # (TP 8 without EP shards the 1536-wide block-FP8 experts 192 wide: refused, R_BLOCK; TP 4 runs it)
        ("Qwen/Qwen3-235B-A22B-FP8", "fp8", "fp8_block", "fp8_block", ("h200_sxm", "b200_sxm"),
         [(4, 1, 1), (8, 1, 8), (4, 1, 4), (1, 8, 8)]),
        ("deepseek-ai/DeepSeek-V3", "fp8", "fp8_block", "fp8_block", ("h200_sxm", "b200_sxm"), [(8, 1, 8)]),
        ("nvidia/DeepSeek-V3.1-NVFP4", "fp4", "nvfp4", "nvfp4", ("b200_sxm",), [(4, 1, 1), (1, 8, 8)]),
        ("openai/gpt-oss-120b", "mxfp4", "bfloat16", "w4a16_mxfp4", ("h100_sxm", "h200_sxm"), [(1, 1, 1), (4, 1, 1)]),
        ("openai/gpt-oss-120b", "mxfp4", "bfloat16", "w4a8_mxfp4_mxfp8", ("b200_sxm",), [(2, 1, 1), (1, 2, 2)]),
    ]
    rows = []
    for model, prec, g, mo, systems, layouts in cases:
        for system in systems:
            for tp, adp, ep in layouts:
                for engine in ("vllm", "sglang", "trtllm"):
                    for c, (isl, osl) in ((1, (1024, 1024)), (64, (8192, 1024)), (256, (1024, 8192))):
                        rows.append(_row(id=f"r_c{c}_", silicon_data_source="test", backend=engine,
                                         model_path=model, system=system, precision=prec, gemm_quant_mode=g,
                                         moe_quant_mode=mo, isl=isl, osl=osl, batch_size=c // adp or 1,
                                         tp_size=tp, attention_dp_size=adp, moe_ep_size=ep,
                                         moe_tp_size=max(tp * adp // ep, 1)))
    d = read_measurements(_write(tmp_path, rows))
    p = silicon.predict(d)
    ok = p["tpot_pred"].notna() & p["ttft_pred"].notna()
    assert ok.all(), d.loc[~ok, ["model", "gpu", "engine", "tp", "attn_dp", "moe_ep"]].drop_duplicates()
    assert (p["tpot_pred"] > 0).all() and (p["ttft_pred"] > 0).all()
    assert set(p["source"]) <= {"interpolated", "extrapolated"}


def test_zero_in_an_optional_size_reads_as_not_used_and_the_row_is_predicted(tmp_path):
    """An exporter's 0 for sizes a deployment does not use (a dense model's expert sizes, an agg row's disagg
    pools): read as empty, the row predicted like the one without them, not the whole file refused by the cost
    model (ep=0 raised from `inference.max_throughput` for every row)."""
    from objectives.calibration.calibrate import check

    plain = _row(silicon_ttft_ms=40, silicon_tpot_ms=4, moe_tp_size="", moe_ep_size="")
    zeros = _row(silicon_ttft_ms=41, silicon_tpot_ms=5, moe_tp_size=0, moe_ep_size=0, pp_size=0,
                 prefill_num_workers=0, decode_tp_size=0)
    d = read_measurements(_write(tmp_path, [plain, zeros]))
    assert d[["pp", "attn_dp", "moe_tp", "moe_ep"]].to_numpy().tolist() == [[1, 1, 1, 1]] * 2
    _, s = check([_write(tmp_path, [plain, zeros])])
    assert (s["not_predicted"] == "").all()
    assert s["tpot_pred"].iloc[1] == pytest.approx(s["tpot_pred"].iloc[0])


def test_check_scores_without_fitting_and_says_why_rows_are_not_predicted(tmp_path):
    """`dse calibrate --check`: the shipped factors on the user's rows, nothing fitted; each row not predicted is
    counted with its reason; the per-row predictions go to a CSV."""
    from dse.cli import main
    from objectives.calibration.calibrate import check
    from objectives.inference.core import default_eff

    before = default_eff().params["engine_ttft_ms"]["vllm"]
    # distinct measured values: equal ones under two deployments would read as one run exported twice
    rows = [_row(silicon_ttft_ms=40, silicon_tpot_ms=4, isl=2048), _row(silicon_ttft_ms=50, silicon_tpot_ms=5),
            _row(model_path="example/NotAModel-7B", silicon_ttft_ms=60),
            _row(system="tpu_v5e", silicon_ttft_ms=70),
            _row(mode="disagg", id="d_c8_", prefill_tp_size=1, decode_tp_size=1, silicon_ttft_ms=80),
            _row(model_path="deepseek-ai/DeepSeek-V3", precision="fp8", gemm_quant_mode="fp8_block",
                 moe_quant_mode="fp8_block", tp_size=1, silicon_ttft_ms=90),
            # attention TP 2 x DP 2 on TensorRT-LLM (whose attention DP runs attention unsplit): the cost model's
            # own reason, not a guess among memory, heads and experts
            _row(model_path="Qwen/Qwen3-30B-A3B", precision="bf16", gemm_quant_mode="", backend="trtllm",
                 tp_size=2, attention_dp_size=2, moe_tp_size=1, moe_ep_size=4, batch_size=4, silicon_ttft_ms=100),
            # a disaggregated deployment whose prefill pool (one H100 for DeepSeek-V3) does not hold the weights
            _row(model_path="deepseek-ai/DeepSeek-V3", precision="fp8", gemm_quant_mode="fp8_block",
                 moe_quant_mode="fp8_block", mode="disagg", id="dd_c8_", prefill_num_workers=1, prefill_tp_size=1,
                 decode_num_workers=1, decode_tp_size=8, decode_moe_ep_size=8, silicon_ttft_ms=110)]
    path = _write(tmp_path, rows)
    text, d = check([path])
    assert default_eff().params["engine_ttft_ms"]["vllm"] == before   # nothing was fitted
    assert "8 distinct measurements" in text and "**2 predicted (25.0 %)**" in text
    assert d["not_predicted"].tolist()[:5] == ["", "", "model not in the catalog", "system without a catalog GPU",
                                               "disaggregated row without worker counts"]
    assert d["not_predicted"].iloc[5].startswith("does not fit: weights + KV cache")
    assert d["not_predicted"].iloc[6].startswith("the engine cannot run this layout: TensorRT-LLM's attention DP")
    assert d["not_predicted"].iloc[7].startswith("prefill pool: does not fit: weights + KV cache")
    assert "- not predicted, the engine cannot run this layout" in text
    # a longer prompt takes longer to its first token; errors against each row's own measurement
    assert d["ttft_pred"].iloc[0] > d["ttft_pred"].iloc[1]
    assert d["ttft_ratio"].iloc[1] == pytest.approx(d["ttft_pred"].iloc[1] / 50)
    assert d["tpot_ape"].iloc[0] == pytest.approx(100 * abs(d["tpot_pred"].iloc[0] / 4 - 1))
    out = tmp_path / "pred.csv"
    assert main(["calibrate", str(path), "--check", "--predictions", str(out)]) == 0
    assert len(pd.read_csv(out)) == 8
    assert main(["calibrate", str(path)]) == 2    # neither --check nor -o: nothing to do, said so


def test_each_engine_runs_its_default_budgets_on_each_gpu():
    """SGLang sizes its default prefill chunk by the GPU's memory (4,096 tokens on an L40S's 48 GB, 8,192 on H100 /
    H200, 16,384 on B200 and larger); vLLM's OpenAI server and trtllm-serve keep theirs everywhere."""
    got = resolve.engine_budgets(["sglang", "sglang", "sglang", "vllm", "trtllm", "sglang"],
                                 ["H100-SXM-80GB", "H200-SXM-141GB", "B200", "B200", "B200", "L40S"])
    assert got.tolist() == [[2048, 8192], [2048, 8192], [2048, 16384], [1024, 8192], [2048, 8192], [2048, 4096]]


def test_rows_measured_from_a_block_fp8_release_run_a_block_scaled_checkpoint() -> None:
    from objectives.calibration.measurements import checkpoints
    rows = pd.DataFrame({"model": ["zhipuai/GLM-5", "zhipuai/GLM-5", "deepseek-ai/DeepSeek-R1", "no/such-model",
                                   "Qwen/Qwen3-32B"],
                         "weight_quant": ["fp8", "nvfp4", "fp8", "fp8_block", "fp8"],
                         "moe_quant": ["fp8_block", "nvfp4", "fp8", "fp8_block", None]})
    got = checkpoints(rows)
    assert got[0].quant_scheme == "fp8_block" and got[0].quant_weight_dtype == "fp8" and got[0].name == "GLM-5"
    assert list(got[1:]) == ["zhipuai/GLM-5", "deepseek-ai/DeepSeek-R1", "no/such-model", "Qwen/Qwen3-32B"]
    # the record prices as the block release does: GLM-5's own FP8 checkpoint under an engine that reads block tables
    est = inference.estimate(model=[got[0], "zai-org/GLM-5-FP8"], gpu="B200", tp=8, weight_dtype="fp8",
                             batch_size=4, input_len=1024, output_len=256, engine="sglang")
    assert est["tpot_ms"].iloc[0] == pytest.approx(est["tpot_ms"].iloc[1], rel=1e-9)


def test_a_block_fp8_expert_shard_the_engine_refuses_reads_as_expert_parallel(tmp_path):
    """MiniMax-M2.5 (block FP8, expert FFN 1,536) at TP 8 without EP shards each expert 192 wide, which vLLM refuses
    at load: such a measured run was launched with expert parallel over its 8 ranks; TP 4 (384, three blocks) and a
    bf16 run keep their label."""
    mm = dict(model_path="MiniMaxAI/MiniMax-M2.5", system="h200_sxm", moe_quant_mode="fp8")
    d = read_measurements(_write(tmp_path, [
        _row(**mm, tp_size=8, moe_tp_size=8), _row(**mm, tp_size=4, moe_tp_size=4),
        _row(**{**mm, "precision": "bf16", "gemm_quant_mode": "", "moe_quant_mode": ""}, tp_size=8, moe_tp_size=8)]))
    wd = silicon.model_dtypes(d, [True] * len(d))[0]
    got = silicon.launched_ep(d, silicon.checkpoints(d), silicon.catalog_gpus(d["gpu"].to_numpy(object)), wd)
    assert got.tolist() == [8.0, 1.0, 1.0]
    p = silicon.predict(d)
    assert p["unfit_reason"].iloc[0] == "" and np.isfinite(p["tpot_pred"].iloc[0])
    # as labelled, the cost model refuses the layout, naming the block rule
    r = inference.estimate("MiniMaxAI/MiniMax-M2.5", "H200-SXM-141GB", tp=8, weight_dtype="fp8", batch_size=8,
                           input_len=1024, output_len=1024, engine="vllm")
    assert not bool(r["fits"].iloc[0]) and "block" in str(r["reason"].iloc[0]).lower()


def test_a_hopper_closed_loop_beyond_the_auto_kv_pool_queues_whole_request_lifetimes(tmp_path):
    """MiniMax-M2.5 fp8 on 4 x H100 (vLLM, TP 4 / EP 4, 8k / 1k): the Hopper rows keep vLLM's "auto" 16-bit cache
    (`measurements.SILICON_AUTO_KV_FAMILIES`), about 30 sequences of 9k, so from 32 clients on the batch stops
    growing (TPOT flat) and at 64 clients the clients beyond the pool wait about a whole request lifetime for a
    finishing request's blocks; the fp8 pool the Blackwell rows keep holds twice as many (TPOT still growing)."""
    rows = [_row(id=f"m_c{c}_", silicon_data_source=f"test; silicon_concurrency={c}", backend_version="0.18.0",
                 model_path="MiniMaxAI/MiniMax-M2.5", system=system, isl=8192, osl=1024, moe_quant_mode="fp8",
                 batch_size=c, tp_size=4, moe_ep_size=4)
            for system in ("h100_sxm", "b200_sxm") for c in (32, 64)]
    d = read_measurements(_write(tmp_path, rows))
    p = silicon.predict(d)
    hop, bw = p.iloc[:2], p.iloc[2:]
    tpot = hop["tpot_pred"].to_numpy()
    assert tpot[1] / tpot[0] < 1.05                                 # the batch stopped growing
    assert hop["ttft_pred"].iloc[1] > 0.5 * 1024 * tpot[1]          # half of 64 clients wait a lifetime
    assert hop["ttft_pred"].iloc[0] < 0.25 * 1024 * tpot[0]         # 32 clients: a few wait
    assert bw["tpot_pred"].iloc[1] / bw["tpot_pred"].iloc[0] > 1.2  # the fp8 pool holds all 64 on B200
    assert d["kv_dtype"].iloc[:2].isna().all() and (d["kv_dtype"].iloc[2:] == "fp8").all()


def test_collected_reads_each_rows_benchmark_day_from_its_source_and_leaves_the_rest_blank(tmp_path):
    src = ["source_file=2026-03-25.csv; model=Kimi-K2.5; silicon_concurrency=8; measured=2026-03-11T16:59:40Z; "
           "wip=False; image=vllm/vllm-openai:v0.17.0",
           "db-dump/2026-04-27; config_id=636; silicon_concurrency=8; measured=2026-04-20T00:00:00.000Z",
           "source_file=qwen3.5-397b-gap-analysis.csv; silicon_concurrency=8"]
    rows = read_measurements(_write(tmp_path, [_row(id=f"r{i}_c8_", silicon_data_source=s) for i, s in enumerate(src)]),
                             layout="silicon")
    assert silicon.collected(rows).tolist() == ["2026-03-11", "2026-04-20", ""]
    with pytest.raises(ValueError, match="note"):
        silicon.collected(rows.drop(columns="note"))
