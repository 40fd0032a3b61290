"""`vllm bench serve --save-result` files as vLLM writes them (vllm/benchmarks/serve.py: `--metadata` entries as
top-level string keys, `request_rate` "inf" or a number, `max_concurrency` null or a cap, `--ramp-up-strategy`
runs), read the way they were measured: only a closed loop of clients is read as one, the deployment the serve flags
name is the one predicted, and the engine and KV-cache format recorded are the ones the model runs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from objectives.calibration.measurements import read_measurements
from objectives.calibration.silicon import predict
from tests.helpers import DATA

VLLM_A = DATA / "vllm_bench_serve" / "openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20261203-120000.json"


def _result(tmp_path, name="r.json", drop=(), **edit):
    d = json.loads(VLLM_A.read_text())
    for k in drop:
        d.pop(k, None)
    d.update(edit)
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def test_a_ramped_request_rate_is_no_closed_loop_of_every_prompt(tmp_path):
    # vllm bench serve --ramp-up-strategy linear --ramp-up-start-rps 1 --ramp-up-end-rps 20: vLLM requires the
    # default request rate (written "inf") and sends the prompts at the ramping rate, not all at once
    p = _result(tmp_path, max_concurrency=None, num_prompts=200, ramp_up_strategy="linear", ramp_up_start_rps=1,
                ramp_up_end_rps=20)
    r = read_measurements(p).iloc[0]
    assert np.isnan(r["concurrency"]) and np.isnan(r["request_rate"])


def test_an_offered_rate_under_a_concurrency_cap_is_no_closed_loop(tmp_path):
    # --request-rate 4 --max-concurrency 8: the cap bounds the requests in flight, the rate sets them (a fast
    # server holds far fewer than 8); read as 8 clients the fit would see 8 where fewer ran
    r = read_measurements(_result(tmp_path, request_rate=4.0, max_concurrency=8)).iloc[0]
    assert np.isnan(r["concurrency"]) and r["request_rate"] == 4.0
    # the same cap at the default rate (inf) is the closed loop of 8 clients
    assert read_measurements(_result(tmp_path, request_rate="inf", max_concurrency=8,
                                     num_prompts=64))["concurrency"].iloc[0] == 8


def test_a_cap_above_the_prompts_sent_is_the_prompts(tmp_path):
    # --max-concurrency 512 --num-prompts 100: at most 100 requests were ever in flight
    r = read_measurements(_result(tmp_path, max_concurrency=512, num_prompts=100)).iloc[0]
    assert r["concurrency"] == 100


def test_the_serve_flags_data_parallel_size_and_expert_parallel_set_the_deployment(tmp_path):
    # vllm serve --tensor-parallel-size 2 --data-parallel-size 4 --enable-expert-parallel, recorded as
    # --metadata tensor_parallel_size=2 data_parallel_size=4 enable_expert_parallel=true
    p = _result(tmp_path, drop=("tp",), tensor_parallel_size="2", data_parallel_size="4",
                enable_expert_parallel="true")
    r = read_measurements(p).iloc[0]
    assert (r["tp"], r["attn_dp"], r["moe_ep"], r["n_gpus"]) == (2.0, 4.0, 8.0, 8.0)
    # SGLang's --dp-size, and an expert-parallel size given outright, win over the flag's tp x dp
    r = read_measurements(_result(tmp_path, drop=("tp",), tp="4", dp_size="2", enable_expert_parallel="True",
                                  ep_size="4")).iloc[0]
    assert (r["tp"], r["attn_dp"], r["moe_ep"], r["n_gpus"]) == (4.0, 2.0, 4.0, 8.0)
    # the flag off (or absent) leaves the experts inside TP
    r = read_measurements(_result(tmp_path, data_parallel_size="2", enable_expert_parallel="false")).iloc[0]
    assert (r["attn_dp"], r["moe_ep"]) == (2.0, 1.0)
    with pytest.raises(ValueError) as e:
        read_measurements(_result(tmp_path, enable_expert_parallel="maybe"))
    assert str(e.value).startswith(f"{tmp_path / 'r.json'}: row 1, column 'enable_expert_parallel'")
    assert "'maybe'" in str(e.value) and "true" in str(e.value)


@pytest.mark.parametrize("key,value", [("tp", "2.5"), ("data_parallel_size", "1.5"), ("pp", "0.5")])
def test_a_fractional_parallel_size_is_refused_by_file_row_and_key(tmp_path, key, value):
    p = _result(tmp_path, **{key: value})
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    msg = str(e.value)
    col = "attn_dp" if key == "data_parallel_size" else key
    assert msg.startswith(f"{p}: row 1, column {col!r}") and repr(value) in msg and "whole" in msg, msg


@pytest.mark.parametrize("engine,want", [("vllm@0.11.0", ("vllm", "0.11.0")), ("sglang==0.5.14", ("sglang", "0.5.14")),
                                         (" TensorRT-LLM ", ("trtllm", "0.11.0")), ("VLLM", ("vllm", "0.11.0"))])
def test_an_engine_with_its_version_in_one_string(tmp_path, engine, want):
    # --metadata engine=vllm@0.11.0 (the form the cost model's engine= takes); the file's engine_version is 0.11.0
    p = _result(tmp_path, engine=engine, drop=() if engine.strip().lower() in ("vllm", "tensorrt-llm")
                else ("engine_version",))
    r = read_measurements(p).iloc[0]
    assert (r["engine"], r["engine_version"]) == want
    # the keyword default (dse calibrate --engine) reads the same way
    q = _result(tmp_path, "q.json", drop=("engine_version",))
    r = read_measurements(q, engine="vllm==0.10.2").iloc[0]
    assert (r["engine"], r["engine_version"]) == ("vllm", "0.10.2")


def test_an_unknown_engine_in_a_version_string_names_the_valid_ones(tmp_path):
    p = _result(tmp_path, engine="tgi@2.0")
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: row 1, column 'engine'") and "'tgi@2.0'" in msg and "vllm" in msg


@pytest.mark.parametrize("kv,want", [("fp8", "fp8"), ("fp8_e4m3", "fp8"), ("fp8_e5m2", "fp8"), ("auto", None),
                                     ("bfloat16", "bf16")])
def test_the_kv_cache_dtype_is_normalized(tmp_path, kv, want):
    r = read_measurements(_result(tmp_path, kv_cache_dtype=kv)).iloc[0]
    assert r["kv_dtype"] == want


def test_an_unknown_kv_cache_dtype_is_refused_by_file_row_and_key(tmp_path):
    p = _result(tmp_path, kv_cache_dtype="fp6")
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    assert str(e.value).startswith(f"{p}: row 1, column 'kv_dtype'") and "'fp6'" in str(e.value)


def test_the_kv_cache_dtype_a_result_records_is_the_one_predicted(tmp_path):
    # bf16 weights keep a bf16 KV cache by default; a row that records --kv-cache-dtype fp8 ran the FP8 cache (the
    # engine's FP8 attention kernels over half the KV bytes) and is predicted with it
    run = dict(weight_dtype="bf16", max_concurrency=64, num_prompts=256)
    fp8 = predict(read_measurements(_result(tmp_path, kv_cache_dtype="fp8_e4m3", **run))).iloc[0]
    auto = predict(read_measurements(_result(tmp_path, "b.json", kv_cache_dtype="auto", **run))).iloc[0]
    assert np.isfinite(fp8["tpot_pred"]) and np.isfinite(auto["tpot_pred"])
    assert not math.isclose(fp8["tpot_pred"], auto["tpot_pred"], rel_tol=1e-6)


@pytest.mark.parametrize("scheme,want", [("modelopt", "fp8"), ("modelopt_fp4", "fp4"), ("awq_marlin", "int4"),
                                         ("gptq_marlin", "int4"), ("fbgemm_fp8", "fp8")])
def test_vllm_quantization_names_set_the_weight_format(tmp_path, scheme, want):
    # vllm serve --quantization <name>, recorded as --metadata quantization=<name>
    r = read_measurements(_result(tmp_path, drop=("weight_dtype",), quantization=scheme)).iloc[0]
    assert r["weight_dtype"] == want and r["weight_quant"] == scheme


@pytest.mark.parametrize("name,gpu", [("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"), ("NVIDIA H100 NVL", "H100-NVL"),
                                      ("NVIDIA H200", "H200-SXM-141GB"), ("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB"),
                                      ("AMD Instinct MI300X", "MI300X"), ("NVIDIA B200", "B200"),
                                      ("NVIDIA GH200 480GB", "GH200-96GB")])
def test_the_device_name_nvidia_smi_prints_is_the_gpu(name, gpu):
    # --metadata gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" (or torch's device name)
    from objectives.calibration.silicon import catalog_gpus
    assert catalog_gpus([name])[0] == gpu
    assert catalog_gpus(["TPU v5e"])[0] is None


def test_a_results_folder_holding_a_profile_calibrate_wrote_is_read_again(tmp_path):
    # `dse calibrate results/ -o results/cal.json`, then the same command again (more results, another -o): the
    # folder now holds the profile the first run wrote, which is no measurement; it is passed over, not fatal
    import shutil

    from objectives.calibration.calibrate import fit
    folder = tmp_path / "results"
    folder.mkdir()
    shutil.copy(VLLM_A, folder / VLLM_A.name)
    fit([folder], folder / "cal.json", max_nfev=2)
    doc = fit([folder], folder / "cal2.json", max_nfev=2)
    assert [e["file"] for e in doc["inputs"]] == [str(folder / VLLM_A.name)]
    # named on its own it is still refused, saying what it is
    with pytest.raises(ValueError, match="calibrated profile"):
        read_measurements(folder / "cal.json")


def _sweep(tmp_path):
    """What `vllm bench sweep serve -o results` writes (vllm/benchmarks/sweep/serve.py): results/<timestamp>/
    SERVE-...-BENCH-.../run=N.json, each a --save-result object with the serve and bench parameters merged in
    (spelled as the user's sweep JSON spells them), and a summary.json list of those runs beside them."""
    base = json.loads(VLLM_A.read_text())
    for k in ("gpu", "tp", "weight_dtype"):
        base.pop(k)
    root = tmp_path / "results"
    for tp, conc in ((1, 4), (2, 8)):
        comb = root / "20261205_101500" / f"SERVE--tensor-parallel-size={tp}-BENCH--max_concurrency={conc}"
        comb.mkdir(parents=True)
        runs = []
        for run in range(2):
            rec = dict(base, num_prompts=64, **{"tensor-parallel-size": tp, "max_concurrency": conc, "run_number": run})
            (comb / f"run={run}.json").write_text(json.dumps(rec, indent=4))
            runs.append(rec)
        (comb / "summary.json").write_text(json.dumps(runs, indent=4))
    return root


def test_a_vllm_sweep_output_folder_is_read_once_per_run(tmp_path):
    root = _sweep(tmp_path)
    v = read_measurements(root, gpu="h100_sxm", weight_dtype="fp8")
    assert len(v) == 4                                   # 2 combinations x 2 runs, the summaries not again
    assert sorted(zip(v["tp"], v["concurrency"])) == [(1.0, 4.0), (1.0, 4.0), (2.0, 8.0), (2.0, 8.0)]
    assert all(f.endswith(".json") and "run=" in f for f in v["source_file"])
    # a summary named on its own is its runs
    summary = next(root.rglob("summary.json"))
    s = read_measurements(summary, gpu="h100_sxm", weight_dtype="fp8")
    assert list(s["source_row"]) == [1, 2] and len(set(s["tp"])) == 1


@pytest.mark.parametrize("model,dtype,quant", [
    ("nvidia/Llama-3.1-70B-Instruct-FP8", "fp8", "fp8_per_tensor"), ("Qwen/Qwen3-235B-A22B-FP8", "fp8", "fp8_block"),
    ("openai/gpt-oss-120b", "fp4", "mxfp4"), ("meta-llama/Llama-3.1-8B-Instruct", "bf16", "bf16")])
def test_a_result_without_weight_dtype_takes_the_checkpoints_format(tmp_path, model, dtype, quant):
    # vllm serve <checkpoint> runs the checkpoint's own format (its quantization_config / hf_quant_config.json;
    # unquantized: 16-bit): a result that does not record --quantization is that checkpoint's
    r = read_measurements(_result(tmp_path, drop=("weight_dtype",), model_id=model)).iloc[0]
    assert (r["weight_dtype"], r["weight_quant"]) == (dtype, quant)
    # a model the catalog does not know still needs it said
    with pytest.raises(ValueError, match="weight_dtype"):
        read_measurements(_result(tmp_path, "u.json", drop=("weight_dtype",), model_id="acme/NotAModel-7B"))


def test_a_result_of_a_model_the_catalog_does_not_know_says_so_and_how_to_name_its_config(tmp_path):
    """Without weight_dtype the reader takes the checkpoint's format from the catalog: for an unknown model the error
    says that is why, and that its config.json (a path as the model) both gives the format and lets the row be
    predicted; it blamed weight_dtype alone, and with weight_dtype given the row was then refused as unknown."""
    with pytest.raises(ValueError, match=r"u.json: row 1, column 'model_id': 'acme/NotAModel-7B' is not in the "
                                         r"catalog.*config\.json.*weight_dtype"):
        read_measurements(_result(tmp_path, "u.json", drop=("weight_dtype",), model_id="acme/NotAModel-7B"))
    cfg = tmp_path / "NotAModel-7B"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256}))
    r = read_measurements(_result(tmp_path, "p.json", drop=("weight_dtype",), model_id="acme/NotAModel-7B",
                                  model=str(cfg))).iloc[0]
    assert (r["model"], r["weight_dtype"]) == (str(cfg), "bf16")


def test_the_expert_split_of_a_result_covers_its_gpus(tmp_path):
    # COLUMNS: moe_tp x moe_ep = tp x attn_dp (the silicon reader fills moe_tp so); a vLLM row had moe_tp 1 at TP 8
    r = read_measurements(_result(tmp_path, tp="8")).iloc[0]
    assert (r["moe_tp"], r["moe_ep"]) == (8.0, 1.0)
    r = read_measurements(_result(tmp_path, tp="4", data_parallel_size="2", moe_ep="4")).iloc[0]
    assert (r["moe_tp"], r["moe_ep"]) == (2.0, 4.0)
    p = _result(tmp_path, tp="8", moe_tp="2", moe_ep="2")
    with pytest.raises(ValueError) as e:
        read_measurements(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: row 1, column 'moe_tp'") and "2 x 2" in msg and "8" in msg, msg
