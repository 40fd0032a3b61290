"""objectives.deploy: engine launch commands of a study's trial, every flag checked against the engine's flag list."""
from __future__ import annotations

import json
import shlex
import textwrap

import pytest
import yaml

import dse
from objectives import catalog, deploy
from objectives.deploy import builders, extract_flags
from objectives.deploy.flags import DATA_DIR, DeployError, flag_list, unknown_flags
from tests.helpers import ROOT

LLAMA = "Llama-3.1-70B"
QWEN = "Qwen3-235B-A22B"

#: representative trials: dense aggregated TP x PP, MoE with expert parallelism and attention DP, disaggregated
#: MoE with EP, dense replicas behind a router
TRIALS = {
    "dense_tp_pp": ({"gpu": "H100-SXM-80GB", "tp": 4, "pp": 2, "weight_dtype": "fp8", "act_dtype": "fp8",
                     "kv_dtype": "fp8", "max_batch_size": 128, "max_num_tokens": 8192, "chunked_prefill": True}, LLAMA),
    "moe_ep_attn_dp": ({"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 8, "ep": 8, "weight_dtype": "fp8",
                        "kv_dtype": "bf16", "max_batch_size": 64, "max_num_tokens": 4096}, QWEN),
    "disagg": ({"gpu": "B200", "tp": 2, "dp": 4, "ep": 2, "mode": "disagg", "prefill_replicas": 1,
                "weight_dtype": "fp4", "act_dtype": "fp4", "kv_dtype": "fp8", "max_batch_size": 256}, QWEN),
    "replicas": ({"gpu": "A100-SXM-80GB", "tp": 2, "dp": 2, "weight_dtype": "int4", "act_dtype": "bf16",
                  "max_batch_size": 64, "chunked_prefill": False, "max_num_tokens": 4096}, LLAMA),
}
WORKLOAD = {"concurrency": 64, "input_len": 2048, "output_len": 256}


def _lists() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in DATA_DIR.glob("*.json")}


def _independent_check(cmd: deploy.Command) -> list[str]:
    """Parse the shell line with shlex and look up each --flag in the shipped JSON (not through the module's checker)."""
    tokens = shlex.split(cmd.shell())
    while tokens and "=" in tokens[0] and not tokens[0].startswith("-"):
        tokens.pop(0)   # environment assignments
    tokens = tokens[len(cmd.launcher):]   # a launcher (mpirun ... trtllm-llmapi-launch) is no part of the program
    words = cmd.program.split()
    assert tokens[:len(words)] == words, (tokens[:len(words)], words)
    engine, version = cmd.checked_against.split(" ", 1)
    doc = next(d for d in _lists().values() if d["engine"] == engine and d["version"] == version)
    flags = doc["commands"][cmd.program]["flags"]
    bad = []
    for t in tokens[len(words):]:
        if t.startswith("--") or (t.startswith("-") and not t.lstrip("-").replace(".", "").isdigit() and len(t) > 1):
            name = t.split("=", 1)[0]
            if name in flags or (name.startswith("--no-") and flags.get("--" + name[5:], {}).get("negatable")):
                continue
            bad.append(name)
    return bad


# ------------------------------------------------------------------------------------------------ flag lists
def test_shipped_flag_lists_name_their_release_repository_and_commit():
    docs = _lists()
    by_engine = {(d["engine"], d["version"]) for d in docs.values()}
    assert ("vllm", "0.24.0") in by_engine and ("sglang", "0.5.14") in by_engine
    assert any(e == "trtllm" for e, _ in by_engine)
    for name, d in docs.items():
        assert d["repository"] and d["commit"] and d["source"], name
        assert name == f"{d['engine']}-{d['version']}", name
        for cmd, body in d["commands"].items():
            assert len(body["flags"]) >= 5, (name, cmd)
            assert all(f.startswith("-") for f in body["flags"]), (name, cmd)
    vllm = docs["vllm-0.24.0"]["commands"]["vllm serve"]["flags"]
    assert {"--tensor-parallel-size", "--pipeline-parallel-size", "--max-num-seqs", "--kv-cache-dtype"} <= set(vllm)
    assert vllm["--enable-chunked-prefill"].get("negatable") is True   # a bool config field: BooleanOptionalAction
    assert "fp8" in vllm["--kv-cache-dtype"]["choices"] and "modelopt_fp4" in vllm["--quantization"]["choices"]
    # value types read from the parser source: ints, floats, JSON of a config class with its fields
    assert vllm["--max-num-seqs"]["type"] == "int" and vllm["--gpu-memory-utilization"]["type"] == "float"
    assert vllm["--eplb-config"]["type"] == "json" and "num_redundant_experts" in vllm["--eplb-config"]["json_keys"]
    router = docs["sglang-router-0.3.2"]["commands"]["python -m sglang_router.launch_router"]["flags"]
    assert router["--prefill"]["nargs"] == "+"   # URL [BOOTSTRAP_PORT]
    sgl = docs["sglang-0.5.14"]["commands"]["python -m sglang.launch_server"]["flags"]
    assert {"--tp-size", "--enable-dp-attention", "--ep-size", "--max-running-requests"} <= set(sgl)
    assert sgl["--disaggregation-mode"]["choices"] == ["null", "prefill", "decode"]
    trt = next(d for d in docs.values() if d["engine"] == "trtllm")["commands"]["trtllm-serve"]["flags"]
    assert {"--tp_size", "--pp_size", "--ep_size", "--max_batch_size", "--extra_llm_api_options"} <= set(trt)


def test_flag_list_picks_the_exact_release_or_says_it_did_not():
    fl, exact = flag_list("vllm", "0.24.0")
    assert (fl.version, exact) == ("0.24.0", True)
    fl, exact = flag_list("vllm", "0.26.0")   # the Arc Pro B60 profile's release
    assert (fl.version, exact) == ("0.26.0", True)
    fl, exact = flag_list("vllm", "0.25.1")   # no list of its own: the nearest older one, flagged
    assert fl.version == "0.24.0" and not exact
    with pytest.raises(DeployError, match="'tgi'"):
        flag_list("tgi")


def test_unknown_flags_reads_values_negations_and_choices():
    flags = {"--a": {"switch": False}, "--on": {"switch": True, "negatable": True},
             "--kv": {"switch": False, "choices": ["auto", "fp8"]}}
    assert unknown_flags("--a 3 --on --no-on --kv=fp8 --kv auto", flags) == []
    assert unknown_flags(["--a", "-1", "--b", "x"], flags) == ["--b"]
    assert unknown_flags("--kv int8 --no-a", flags) == ["--kv=int8", "--no-a"]
    typed = {"--n": {"type": "int"}, "--f": {"type": "float"}, "--j": {"type": "json", "json_keys": ["a"]}}
    assert unknown_flags(['--n', '-1', '--f', 'inf', '--j', '{"a": 1}'], typed) == []
    assert unknown_flags(['--n', '1.5', '--f', 'x', '--j', '{"b": 1}'], typed) == ["--n=1.5", "--f=x", '--j={"b": 1}']


# ------------------------------------------------------------------------------------------------ commands
@pytest.mark.parametrize("engine", deploy.ENGINES)
@pytest.mark.parametrize("name", sorted(TRIALS))
def test_every_emitted_flag_is_in_the_engines_flag_list(engine, name):
    config, model = TRIALS[name]
    d = deploy.commands(config, engine=engine, model=model, workload=WORKLOAD,
                        predicted={"ttft_ms": 512.5, "tpot_ms": 31.25})
    assert d.commands, name
    for cmd in d.commands:
        assert _independent_check(cmd) == [], cmd.shell()
        assert cmd.unknown_flags() == []
    assert d.check() == {}
    assert d.benchmark is not None and d.benchmark.role == "benchmark"
    # the script holds every command and the predictions beside the benchmark
    script = d.script()
    assert all(c.shell() in script for c in d.commands)
    assert "predicted ttft_ms = 512.5" in script and "predicted tpot_ms = 31.25" in script


def _words(cmd: deploy.Command) -> str:
    return " ".join(cmd.argv)


def test_dense_tp_pp_in_each_engines_spelling():
    cfg, model = TRIALS["dense_tp_pp"]
    v = deploy.commands(cfg, engine="vllm", model=model, workload=WORKLOAD)
    (s,) = v.servers
    assert s.argv[:3] == ("vllm", "serve", "meta-llama/Llama-3.1-70B")
    for part in ("--tensor-parallel-size 4", "--pipeline-parallel-size 2", "--max-num-seqs 128",
                 "--max-num-batched-tokens 8192", "--enable-chunked-prefill", "--kv-cache-dtype fp8",
                 "--quantization fp8", "--max-model-len 2304"):
        assert part in _words(s), part
    assert s.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert v.router is None and v.version == "0.24.0"
    g = deploy.commands(cfg, engine="sglang", model=model, workload=WORKLOAD)
    for part in ("--tp-size 4", "--pp-size 2", "--max-running-requests 128", "--chunked-prefill-size 8192",
                 "--kv-cache-dtype fp8_e4m3", "--quantization fp8", "--context-length 2304"):
        assert part in _words(g.servers[0]), part
    t = deploy.commands(cfg, engine="trtllm", model=model, workload=WORKLOAD)
    for part in ("--tp_size 4", "--pp_size 2", "--max_batch_size 128", "--max_num_tokens 8192",
                 "--kv_cache_free_gpu_memory_fraction 0.9", "--max_seq_len 2304"):
        assert part in _words(t.servers[0]), part
    assert yaml.safe_load(t.files["serve_options.yaml"])["kv_cache_config"]["dtype"] == "fp8"
    assert yaml.safe_load(t.files["serve_options.yaml"])["enable_chunked_prefill"] is True
    assert t.version == "1.3.0rc20"   # the H100 kernel profile's release
    assert any("no flag list of that release" in n for n in t.notes)   # checked against the named commit instead


def test_moe_expert_parallel_and_attention_dp():
    cfg, model = TRIALS["moe_ep_attn_dp"]
    v = _words(deploy.commands(cfg, engine="vllm", model=model).servers[0])
    assert "--tensor-parallel-size 1" in v and "--data-parallel-size 8" in v and "--enable-expert-parallel" in v
    g = _words(deploy.commands(cfg, engine="sglang", model=model).servers[0])
    assert "--tp-size 8" in g and "--enable-dp-attention --dp-size 8" in g and "--ep-size 8" in g
    assert "--kv-cache-dtype bf16" in g
    t = deploy.commands(cfg, engine="trtllm", model=model)
    assert "--tp_size 8" in _words(t.servers[0]) and "--ep_size 8" in _words(t.servers[0])
    assert yaml.safe_load(t.files["serve_options.yaml"])["enable_attention_dp"] is True


def test_trtllm_attention_dp_balance_is_launched_in_its_yaml_and_refused_elsewhere():
    """adp_balance=True: TensorRT-LLM's attention_dp_config with its default iterations (`inference.lockstep`);
    vLLM and SGLang have no such balance, and without attention DP there is nothing to balance."""
    cfg = {"gpu": "GB200", "tp": 1, "attn_dp": 8, "ep": 8, "weight_dtype": "fp4", "adp_balance": True}
    t = deploy.commands(cfg, engine="trtllm", model="deepseek-ai/DeepSeek-R1", workload=WORKLOAD)
    assert yaml.safe_load(t.files["serve_options.yaml"])["attention_dp_config"] == {
        "enable_balance": True, "batching_wait_iters": 10, "timeout_iters": 50}
    off = deploy.commands({**cfg, "adp_balance": False}, engine="trtllm", model="deepseek-ai/DeepSeek-R1",
                          workload=WORKLOAD)
    assert "attention_dp_config" not in yaml.safe_load(off.files["serve_options.yaml"])
    for engine in ("vllm", "sglang"):
        with pytest.raises(DeployError, match="no attention-DP balance"):
            deploy.commands(cfg, engine=engine, model="deepseek-ai/DeepSeek-R1", workload=WORKLOAD)
    with pytest.raises(DeployError, match="attn_dp=1"):
        deploy.commands({**cfg, "attn_dp": 1, "tp": 8}, engine="trtllm", model="deepseek-ai/DeepSeek-R1",
                        workload=WORKLOAD)


def test_attention_dp_keeps_each_ranks_batch_and_token_budget():
    """The cost model's max_batch_size and max_num_tokens are each attention-DP rank's (every rank schedules its
    own batch). SGLang divides --max-running-requests and --chunked-prefill-size by --dp-size under
    --enable-dp-attention (ModelRunner: max_running_requests // dp_size; ServerArgs._handle_data_parallelism:
    chunked_prefill_size // dp_size), so it is given attn_dp times the rank's; vLLM's --max-num-seqs /
    --max-num-batched-tokens and TensorRT-LLM's --max_batch_size / --max_num_tokens are per rank already."""
    cfg, model = TRIALS["moe_ep_attn_dp"]           # attn_dp 8, max_batch_size 64, max_num_tokens 4096
    g = _words(deploy.commands({**cfg, "chunked_prefill": True}, engine="sglang", model=model).servers[0])
    assert "--max-running-requests 512" in g and "--chunked-prefill-size 32768" in g
    whole = _words(deploy.commands({**cfg, "chunked_prefill": False}, engine="sglang", model=model).servers[0])
    assert "--chunked-prefill-size -1 --max-prefill-tokens 4096" in whole   # off stays off; not divided
    v = _words(deploy.commands(cfg, engine="vllm", model=model).servers[0])
    assert "--max-num-seqs 64" in v and "--max-num-batched-tokens 4096" in v
    t = _words(deploy.commands(cfg, engine="trtllm", model=model).servers[0])
    assert "--max_batch_size 64" in t and "--max_num_tokens 4096" in t
    # without attention DP nothing is scaled; a disaggregated prefill pool uses its own attention DP
    plain = _words(deploy.commands({**cfg, "attn_dp": 1, "ep": 1, "chunked_prefill": True}, engine="sglang",
                                   model=model).servers[0])
    assert "--max-running-requests 64" in plain and "--chunked-prefill-size 4096" in plain
    d = deploy.commands({**cfg, "mode": "disagg", "dp": 2, "prefill_replicas": 1, "prefill_attn_dp": 1,
                         "prefill_ep": 1}, engine="sglang", model=model)
    pre, dec = (_words(s) for s in d.servers[:2])
    assert "--disaggregation-mode prefill" in pre and "--max-running-requests 64" in pre
    assert "--disaggregation-mode decode" in dec and "--max-running-requests 512" in dec


def test_disaggregated_trial_yields_prefill_decode_and_router():
    cfg, model = TRIALS["disagg"]
    for engine in deploy.ENGINES:
        d = deploy.commands(cfg, engine=engine, model=model, workload=WORKLOAD)
        assert [s.role for s in d.servers] == ["prefill", "decode", "decode", "decode"], engine
        assert d.router is not None and d.router.role == "router", engine
        ports = [s.argv[s.argv.index("--port") + 1] for s in d.servers]
        assert ports == ["8001", "8002", "8003", "8004"]
        assert [s.env["CUDA_VISIBLE_DEVICES"] for s in d.servers] == ["0,1", "2,3", "4,5", "6,7"]
        assert any("NVFP4" in n for n in d.notes)   # fp4 needs a pre-quantized checkpoint
        if engine == "vllm":
            assert all("NixlConnector" in _words(s) for s in d.servers)
            r = _words(d.router)
            assert "--vllm-pd-disaggregation" in r and r.count("--decode") == 3 and r.count("--prefill ") == 1
        elif engine == "sglang":
            assert "--disaggregation-mode prefill" in _words(d.servers[0])
            assert all("--disaggregation-mode decode" in _words(s) for s in d.servers[1:])
            assert "--pd-disaggregation" in _words(d.router)
        else:
            assert d.router.argv == ("trtllm-serve", "disaggregated", "-c", "disagg_config.yaml")
            cfg_yaml = yaml.safe_load(d.files["disagg_config.yaml"])
            assert cfg_yaml["context_servers"] == {"num_instances": 1, "urls": ["localhost:8001"]}
            assert cfg_yaml["generation_servers"]["num_instances"] == 3
            assert yaml.safe_load(d.files["ctx_options.yaml"])["cache_transceiver_config"] == {"backend": "DEFAULT"}


def test_replicas_get_a_router_and_weight_only_int4_names_its_checkpoint():
    cfg, model = TRIALS["replicas"]
    d = deploy.commands(cfg, engine="sglang", model=model, workload=WORKLOAD)
    assert len(d.servers) == 2 and "--worker-urls http://localhost:8001 http://localhost:8002" in _words(d.router)
    assert "--quantization awq_marlin" in _words(d.servers[0]) and "--chunked-prefill-size -1" in _words(d.servers[0])
    assert any("AWQ" in n for n in d.notes)
    assert d.version == "0.5.10"   # the A100 profile's SGLang release, whose own flag list ships
    assert d.servers[0].checked_against == "sglang 0.5.10" and not any("flag list" in n for n in d.notes)
    v = deploy.commands(cfg, engine="vllm", model=model, workload=WORKLOAD)
    assert v.version == "0.14.0" and v.servers[0].checked_against == "vllm 0.14.0"   # the A100 profile's vLLM


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_an_int4_trial_of_a_16_bit_model_never_launches_the_16_bit_checkpoint(engine):
    """The new user's `dse deploy` of a weight_dtype int4 trial: the engines do not quantize AWQ online, and the catalog
    ships no int4 checkpoint of Qwen3-30B-A3B, so every command (serve and benchmark) names the placeholder the notes
    say to replace, never Qwen/Qwen3-30B-A3B with --quantization awq_marlin (which fails on a bf16 checkpoint)."""
    d = deploy.commands({"gpu": "H100-SXM-80GB", "tp": 2, "weight_dtype": "int4", "max_batch_size": 128},
                        model="Qwen/Qwen3-30B-A3B", engine=engine, workload=WORKLOAD)
    assert d.checkpoint == builders.QUANTIZED_CHECKPOINT and d.hf_id == "Qwen/Qwen3-30B-A3B"
    assert builders.QUANTIZED_CHECKPOINT in d.servers[0].argv and "--quantization awq_marlin" in _words(d.servers[0])
    assert builders.QUANTIZED_CHECKPOINT in d.benchmark.argv
    assert not any("Qwen/Qwen3-30B-A3B" in c.argv for c in d.commands)
    assert any(builders.QUANTIZED_CHECKPOINT in n and "AWQ int4 checkpoint" in n for n in d.notes)
    assert f"served from {builders.QUANTIZED_CHECKPOINT}" in d.script()


def test_a_quantized_checkpoint_the_catalog_ships_is_served_in_its_format():
    """TensorRT-LLM quantizes nothing online: an fp8 trial of Llama-3.1-70B serves NVIDIA's FP8 checkpoint the catalog
    ships (its FP8 KV scales match the trial's fp8 KV), where vLLM quantizes the 16-bit one online; with a bf16 KV
    cache that checkpoint's scales would store FP8, so the placeholder stands; an NVFP4 trial of GLM-5.1 serves
    NVIDIA's NVFP4 release."""
    cfg, model = TRIALS["dense_tp_pp"]
    t = deploy.commands(cfg, engine="trtllm", model=model, workload=WORKLOAD)
    assert t.checkpoint == "nvidia/Llama-3.1-70B-Instruct-FP8" == t.servers[0].argv[1]
    assert "nvidia/Llama-3.1-70B-Instruct-FP8" in t.benchmark.argv
    assert any("serving nvidia/Llama-3.1-70B-Instruct-FP8" in n for n in t.notes)
    v = deploy.commands(cfg, engine="vllm", model=model, workload=WORKLOAD)
    assert v.checkpoint == catalog.model(model).hf_id in v.servers[0].argv and "--quantization fp8" in _words(v.servers[0])
    bf = deploy.commands({**cfg, "kv_dtype": "bf16"}, engine="trtllm", model=model, workload=WORKLOAD)
    assert bf.checkpoint == builders.QUANTIZED_CHECKPOINT
    assert any("an FP8 (ModelOpt) checkpoint" in n for n in bf.notes)
    g = deploy.commands({"gpu": "B200", "tp": 8, "weight_dtype": "fp4", "act_dtype": "fp4", "kv_dtype": "fp8"},
                        engine="vllm", model="GLM-5.1", workload=WORKLOAD)
    assert g.checkpoint == "nvidia/GLM-5.1-NVFP4" and "--quantization modelopt_fp4" in _words(g.servers[0])


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_models_own_int4_checkpoint_is_served_with_its_own_quantization_config(engine):
    """Kimi-K2.5 ships compressed-tensors W4A16 experts: served as it is, without a --quantization naming another
    method (vLLM's ModelConfig._verify_quantization refuses awq_marlin on it at start-up); an AWQ release keeps
    awq_marlin (AWQMarlinConfig.override_quantization_method converts "awq" checkpoints)."""
    k = deploy.commands({"gpu": "H200", "tp": 8, "weight_dtype": "int4"}, engine=engine, model="Kimi-K2.5",
                        workload=WORKLOAD)
    assert k.checkpoint == "moonshotai/Kimi-K2.5" and "--quantization" not in _words(k.servers[0])
    assert not any("checkpoint" in n for n in k.notes)
    a = deploy.commands({"gpu": "H100", "tp": 1, "weight_dtype": "int4"}, engine=engine, model="Qwen/Qwen3-32B-AWQ",
                        workload=WORKLOAD)
    assert a.checkpoint == "Qwen/Qwen3-32B-AWQ" and "--quantization awq_marlin" in _words(a.servers[0])


def test_benchmark_matches_the_workload():
    cfg, model = TRIALS["dense_tp_pp"]
    b = deploy.commands(cfg, engine="vllm", model=model, workload=WORKLOAD).benchmark
    w = _words(b)
    for part in ("vllm bench serve", "--dataset-name random", "--random-input-len 2048", "--random-output-len 256",
                 "--max-concurrency 64", "--num-prompts 640", "--ignore-eos", "--save-result"):
        assert part in w, part
    b = deploy.commands(cfg, engine="sglang", model=model, workload={"rate": 4.0, "input_len": 1024,
                                                                      "output_len": 128}).benchmark
    w = _words(b)
    assert "python -m sglang.bench_serving" in w and "--request-rate 4" in w and "--max-concurrency" not in w
    assert "--num-prompts 480" in w   # two minutes of arrivals
    from objectives import serving

    wl = serving.Workload(concurrency=8, input_len=serving.Dist("uniform", low=1000, high=3000), output_len=200)
    d = deploy.commands(cfg, engine="vllm", model=model, workload=wl)
    w = _words(d.benchmark)
    assert "--random-input-len 2000" in w and "--random-range-ratio 0.5" in w
    assert "--max-model-len 3200" in _words(d.servers[0])   # the longest request: 3000 + 200 tokens
    # an unbounded length leaves the engine the model's own context (no --max-model-len), benchmarked at the mean
    wl = serving.Workload(concurrency=8, input_len=serving.Dist("lognormal", mean=1000, std=800), output_len=200)
    d = deploy.commands(cfg, engine="vllm", model=model, workload=wl)
    assert "--max-model-len" not in _words(d.servers[0]) and "--random-input-len 1000" in _words(d.benchmark)
    assert any("at their means" in n for n in d.notes)
    # the max-throughput workload (rate=inf) is benchmarked at the batch the study predicts
    w = _words(deploy.commands(cfg, engine="vllm", model=model, predicted={"batch_size": 96.0}).benchmark)
    assert "--max-concurrency 96" in w


def test_write_puts_script_files_and_metadata_in_a_directory(tmp_path):
    cfg, model = TRIALS["disagg"]
    d = deploy.commands(cfg, engine="trtllm", model=model)
    paths = {p.name for p in d.write(tmp_path / "out")}
    assert paths == {"launch.sh", "deployment.json", "ctx_options.yaml", "gen_options.yaml", "disagg_config.yaml"}
    meta = json.loads((tmp_path / "out" / "deployment.json").read_text())
    assert [c["role"] for c in meta["commands"]] == ["prefill", "decode", "decode", "decode", "router", "benchmark"]
    assert (tmp_path / "out" / "launch.sh").read_text().startswith("#!/usr/bin/env bash")


@pytest.mark.parametrize("engine,module", [("vllm", "vllm_router.router_args"), ("sglang", "sglang_router.router_args")])
def test_router_commands_parse_with_the_routers_own_parser(engine, module):
    """The router package's own argument parser (both are pip wheels without a CUDA stack, pinned in the test
    extra) reads the emitted router command and finds the prefill and decode workers (or the replicas)."""
    import argparse
    import importlib

    mod = importlib.import_module(module)
    cfg, model = TRIALS["disagg"]
    d = deploy.commands(cfg, engine=engine, model=model)
    words = len(d.router.program.split())

    def parse(argv):
        p = argparse.ArgumentParser()
        mod.RouterArgs.add_cli_args(p, use_router_prefix=False)
        return mod.RouterArgs.from_cli_args(p.parse_args(list(argv)), use_router_prefix=False)

    a = parse(d.router.argv[words:])
    assert [u for u, _ in a.prefill_urls] == ["http://localhost:8001"]
    assert a.decode_urls == ["http://localhost:8002", "http://localhost:8003", "http://localhost:8004"]
    if engine == "sglang":   # the prefill worker's bootstrap port reaches the router
        assert a.prefill_urls[0][1] == int(d.servers[0].argv[d.servers[0].argv.index("--disaggregation-bootstrap-port") + 1])
    cfg, model = TRIALS["replicas"]
    r = deploy.commands(cfg, engine=engine, model=model).router
    assert parse(r.argv[words:]).worker_urls == ["http://localhost:8001", "http://localhost:8002"]


# ------------------------------------------------------------------------------------------------ errors
def test_unknown_engine_lists_the_valid_ones():
    with pytest.raises(DeployError, match=r"engine='tgi'.*vllm, sglang, trtllm"):
        deploy.commands(TRIALS["dense_tp_pp"][0], engine="tgi", model=LLAMA)


@pytest.mark.parametrize("engine", ["vllm~=0.13.0", "vllm==0.24.0", "vllm@0.24.0", "vllm:0.24.0"])
def test_a_named_release_is_refused_not_dropped(engine):
    """A launch runs the release of the GPU's kernel profile: a row priced as vLLM 0.13 must not deploy the newest."""
    with pytest.raises(DeployError, match=rf"engine='{engine}' not allowed: dse deploy launches.*name alone"):
        deploy.commands(TRIALS["dense_tp_pp"][0], engine=engine, model=LLAMA)


def test_fp4_on_hopper_is_refused_naming_the_value():
    cfg = {**TRIALS["dense_tp_pp"][0], "weight_dtype": "fp4", "act_dtype": "fp4"}
    with pytest.raises(DeployError, match=r"act_dtype='fp4'.*H100-SXM-80GB \(hopper\)"):
        deploy.commands(cfg, engine="vllm", model=LLAMA)


def test_configurations_an_engine_cannot_express():
    moe = TRIALS["moe_ep_attn_dp"][0]
    with pytest.raises(DeployError, match=r"trtllm cannot run attn_dp=4 with tp=2"):
        deploy.commands({**moe, "tp": 2, "attn_dp": 4}, engine="trtllm", model=QWEN)
    with pytest.raises(DeployError, match=r"vllm 0.24.0 cannot run ep=2 with tp=8"):
        deploy.commands({**moe, "tp": 8, "attn_dp": 1, "ep": 2}, engine="vllm", model=QWEN)
    with pytest.raises(DeployError, match=r"ep=2: expert parallelism needs a mixture-of-experts model"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": 2, "ep": 2}, engine="sglang", model=LLAMA)
    with pytest.raises(DeployError, match=r"engine='trtllm' runs on NVIDIA GPUs only; gpu='MI300X'"):
        deploy.commands({"gpu": "MI300X", "tp": 2}, engine="trtllm", model=LLAMA)
    with pytest.raises(DeployError, match=r"sglang cannot store the KV cache as kv_dtype='fp16'"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": 2, "kv_dtype": "fp16"}, engine="sglang", model=LLAMA)
    with pytest.raises(DeployError, match=r"chunked_prefill=False with max_num_tokens=2048"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": 4, "chunked_prefill": False, "max_num_tokens": 2048},
                        engine="vllm", model=LLAMA, workload=WORKLOAD)
    with pytest.raises(DeployError, match=r"tp='four' must be a positive integer"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": "four"}, engine="vllm", model=LLAMA)
    with pytest.raises(DeployError, match=r"n_gpus=4 does not match tp x pp x attn_dp x dp = 2 x 1 x 1 x 1 = 2"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": 2, "n_gpus": 4}, engine="vllm", model=LLAMA)
    with pytest.raises(DeployError, match=r"batching='static'.*Valid: 'continuous'"):
        deploy.commands({"gpu": "H100-SXM-80GB", "tp": 4, "batching": "static"}, engine="vllm", model=LLAMA)
    assert deploy.commands({"gpu": "H100-SXM-80GB", "tp": 4, "batching": "continuous"}, engine="vllm", model=LLAMA)
    with pytest.raises(DeployError, match=r"1 <= prefill_replicas < dp"):
        deploy.commands({"gpu": "B200", "dp": 2, "mode": "disagg", "prefill_replicas": 2}, engine="vllm", model=LLAMA)


def test_an_engine_release_without_attention_dp_is_refused(tmp_path):
    """A flag list without --enable-dp-attention (as an SGLang release before the feature) refuses attn_dp."""
    from objectives.deploy import builders
    from objectives.deploy.flags import FlagList

    sgl, _ = flag_list("sglang", "0.5.14")
    flags = {k: v for k, v in sgl.commands["python -m sglang.launch_server"].items() if k != "--enable-dp-attention"}
    old = FlagList("sglang", "0.0.1", sgl.repository, "x", "test", {**sgl.commands,
                   "python -m sglang.launch_server": flags}, {}, tmp_path / "x.json")
    p = deploy.plan(TRIALS["moe_ep_attn_dp"][0], QWEN, "sglang")
    router, _ = flag_list("sglang-router")
    with pytest.raises(DeployError, match=r"sglang 0.0.1 cannot run attn_dp=8: .* has no --enable-dp-attention"):
        builders.build(p, "sglang", "0.0.1", {"sglang": old, "sglang-router": router}, [])


def test_an_engine_release_without_fp4_is_refused_naming_the_value(tmp_path):
    """Bad input (issue 17): an fp4 checkpoint with an engine release that lacks it (a flag list whose --quantization
    has no modelopt_fp4, as a vLLM release before NVFP4) is refused naming the format and the release; on Hopper it
    is refused whatever the release, naming the GPU and the GPUs that can run it."""
    from objectives.deploy import builders
    from objectives.deploy.flags import FlagList

    vllm, _ = flag_list("vllm", "0.24.0")
    serve = dict(vllm.commands["vllm serve"])
    q = dict(serve["--quantization"])
    q["choices"] = [c for c in q["choices"] if "fp4" not in str(c)]
    serve["--quantization"] = q
    old = FlagList("vllm", "0.0.1", vllm.repository, "x", "test", {**vllm.commands, "vllm serve": serve}, {},
                   tmp_path / "x.json")
    router, _ = flag_list("vllm-router")
    cfg = {"gpu": "B200", "tp": 2, "weight_dtype": "fp4", "act_dtype": "fp4", "kv_dtype": "fp8"}
    with pytest.raises(DeployError, match=r"vllm 0\.0\.1 cannot run weight_dtype='fp4' act_dtype='fp4': "
                                          r"--quantization 'modelopt_fp4' is not among its choices"):
        builders.build(deploy.plan(cfg, LLAMA, "vllm"), "vllm", "0.0.1", {"vllm": old, "vllm-router": router}, [])
    assert builders.build(deploy.plan(cfg, LLAMA, "vllm"), "vllm", "0.24.0", {"vllm": vllm, "vllm-router": router}, [])
    for engine in deploy.ENGINES:
        with pytest.raises(DeployError, match=r"act_dtype='fp4'.*H100-SXM-80GB \(hopper\) has none.*'B200'"):
            deploy.commands({**cfg, "gpu": "H100-SXM-80GB"}, engine=engine, model=LLAMA)
    # fp4 weights computed in 16 bits (FP4 Marlin in vLLM and SGLang) run on Hopper; TensorRT-LLM's FP4 GEMMs do not
    w4a16 = {**cfg, "gpu": "H100-SXM-80GB", "act_dtype": "bf16"}
    for engine in ("vllm", "sglang"):
        assert "--quantization modelopt_fp4" in deploy.commands(w4a16, engine=engine, model=LLAMA).servers[0].shell()
    with pytest.raises(DeployError, match=r"trtllm cannot run .* from an NVFP4 checkpoint with 16-bit compute"):
        deploy.commands(w4a16, engine="trtllm", model=LLAMA)


# ------------------------------------------------------------------------------------------------ stored studies
STUDY_FILE = '''
import math
import dse
from objectives import llm_serving_objective, serving
space = dse.Space(gpu=dse.Categorical(["H100-SXM-80GB", "B200"]), tp=dse.Categorical([2, 4]),
                  pp=dse.Categorical([1]), weight_dtype=dse.Categorical(["fp8"]), act_dtype=dse.Categorical(["fp8"]),
                  kv_dtype=dse.Categorical(["fp8"]), max_batch_size=dse.Categorical([32, 128]),
                  max_num_tokens=dse.Categorical([8192]), chunked_prefill=dse.Categorical([True]))
evaluate = llm_serving_objective("Llama-3.1-70B", workload=serving.Workload(concurrency=32, input_len=1024,
                                 output_len=128))
study = dse.StudySpec(name="tiny_deploy", space=space, objectives={"tok_s_per_gpu": "max", "tok_s_per_user": "max"},
                      constraints=evaluate.constraints, evaluate=evaluate, optimizer="grid")
'''


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    f = d / "tiny_deploy.py"
    f.write_text(textwrap.dedent(STUDY_FILE))
    from dse.spec import load_study_file

    spec = load_study_file(f)
    url = f"sqlite:///{d / 'tiny_deploy.db'}"
    study = spec.run(url, progress=False)
    return study, url, f


def test_for_trial_reads_a_real_study(tiny_study):
    study, url, _ = tiny_study
    t = study.trials
    assert len(t) == 8 and set(t["state"]) == {"complete"}
    row = t[(t["gpu"] == "B200") & (t["tp"] == 4) & (t["max_batch_size"] == 128)].iloc[0]
    for engine in deploy.ENGINES:
        d = deploy.for_trial("tiny_deploy", int(row["number"]), engine, storage=url)
        assert d.model == LLAMA and d.config["gpu"] == "B200" and d.config["tp"] == 4
        assert d.predicted["ttft_ms"] == pytest.approx(row["ttft_ms"])
        assert d.predicted["tpot_ms"] == pytest.approx(row["tpot_ms"])
        assert d.check() == {}
        b = _words(d.benchmark)
        assert "--random-input-len 1024" in b and "--random-output-len 128" in b and "--max-concurrency 32" in b
    # a dse.Study object and an explicit model work too (no study file needed)
    d = deploy.for_trial(study, int(row["number"]), "vllm", model="meta-llama/Llama-3.1-70B",
                         workload={"concurrency": 4, "input_len": 100, "output_len": 10})
    assert "--max-concurrency 4" in _words(d.benchmark)


def test_for_trial_refuses_a_study_file_edited_after_the_run(tiny_study, tmp_path):
    """The study file's workload edited after the run (32 -> 64 clients): `dse deploy` benchmarked the new workload
    beside the predictions of the old one. It refuses that file, naming what changed; the file the study was run
    with, or a model and workload given (no file read), are taken as before."""
    study, url, f = tiny_study
    edited = tmp_path / "tiny_deploy.py"
    edited.write_text(textwrap.dedent(STUDY_FILE).replace("concurrency=32", "concurrency=64"))
    with pytest.raises(DeployError, match=r"evaluates with other arguments than study 'tiny_deploy' was run with "
                                          r"\(version part setup\.\w+ -> setup\.\w+; inputs\.setup\.workload: "
                                          r"Workload\(concurrency=32, .* -> Workload\(concurrency=64, "):
        deploy.for_trial("tiny_deploy", 0, "vllm", storage=url, study_file=str(edited))
    assert "--max-concurrency 32" in _words(deploy.for_trial("tiny_deploy", 0, "vllm", storage=url,
                                                             study_file=str(f)).benchmark)
    given = deploy.for_trial("tiny_deploy", 0, "vllm", storage=url, study_file=str(edited), model=LLAMA,
                             workload={"concurrency": 4, "input_len": 100, "output_len": 10})
    assert "--max-concurrency 4" in _words(given.benchmark)


def test_a_study_stored_before_its_objective_declared_its_setup_is_not_refused(tmp_path):
    """Studies stored before the serving objective declared its arguments (``inputs.setup``) hold only the setup
    part of its version: their study file is taken where that part is the same ("inputs.setup added" is no
    change of arguments) and refused where it differs."""
    import types

    from dse.evaluation import objective_info
    from objectives import llm_serving_objective, serving
    from objectives.deploy.trial import _same_setup

    ev = llm_serving_objective("Llama-3.1-70B", workload=serving.Workload(concurrency=32, input_len=1024,
                                                                           output_len=128))
    now = objective_info(ev)
    assert "setup" in now["inputs"]
    old = {**now, "inputs": {k: v for k, v in now["inputs"].items() if k != "setup"}}
    _same_setup(types.SimpleNamespace(meta={"objective": old}, name="old"), ev, tmp_path / "f.py")
    parts = str(now["version"]).split("+")
    i = next(k for k, x in enumerate(parts) if x.startswith("setup."))
    other = {**old, "version": "+".join(parts[:i] + ["setup.0000"] + parts[i + 1:])}
    with pytest.raises(DeployError, match=r"version part setup\.\w+ -> setup\.\w+"):
        _same_setup(types.SimpleNamespace(meta={"objective": other}, name="old"), ev, tmp_path / "f.py")


def test_for_trial_errors_name_the_trial(tiny_study, tmp_path):
    study, url, _ = tiny_study
    with pytest.raises(DeployError, match=r"trial 999 does not exist in study 'tiny_deploy' \(8 trials; numbers 0..7\)"):
        deploy.for_trial("tiny_deploy", 999, "vllm", storage=url)
    with pytest.raises(DeployError, match="engine='gaudi'"):
        deploy.for_trial("tiny_deploy", 0, "gaudi", storage=url)
    # the same study copied where no study file names its model
    other = dse.create_study("tiny_deploy", study.space, study.objectives, constraints=study.constraints,
                             storage=f"sqlite:///{tmp_path / 'copy.db'}")
    other.optimize(lambda c: {"tok_s_per_gpu": 1.0, "tok_s_per_user": 1.0, "ttft_ms": 1.0, "tpot_ms": 1.0,
                              "fits": 1.0}, optimizer="grid", progress=False)
    with pytest.raises(DeployError, match=r"records no model.*--model"):
        deploy.for_trial(other, 0, "vllm")
    # a model given, the workload still unknown: the benchmark's default workload is said to be one, not the study's
    # (it read "workload sends everything at once (rate=inf)" beside predictions of another workload)
    unknown = deploy.for_trial(other, 0, "vllm", model=LLAMA)
    assert any(n.startswith("the study's workload is not known") and "--study-file" in n for n in unknown.notes)
    assert not any("study's workload is not known" in n for n in deploy.for_trial("tiny_deploy", 0, "vllm",
                                                                                   storage=url).notes)


def test_trials_that_cannot_be_deployed_are_named(tmp_path):
    """Bad input (issue 17): a trial number that does not exist (or is not an integer), a failed trial and one
    that does not fit each get an error naming the value."""
    space = dse.Space(gpu=dse.Categorical(["H100-SXM-80GB"]), tp=dse.Categorical([1, 2, 4]))

    def evaluate(c):
        if c["tp"] == 1:
            raise RuntimeError("boom")
        return {"tok_s_per_gpu": 1.0, "fits": 0.0 if c["tp"] == 2 else 1.0, "reason": "out of memory"
                if c["tp"] == 2 else ""}

    s = dse.create_study("bad_trials", space, {"tok_s_per_gpu": "max"}, storage=f"sqlite:///{tmp_path / 'b.db'}")
    s.optimize(evaluate, optimizer="grid", progress=False)
    by_tp = {int(r["tp"]): int(r["number"]) for _, r in s.trials.iterrows()}
    with pytest.raises(DeployError, match=rf"trial {by_tp[1]} of study 'bad_trials' is 'failed', not complete"):
        deploy.for_trial(s, by_tp[1], "vllm", model=LLAMA)
    with pytest.raises(DeployError, match=rf"trial {by_tp[2]} .* does not fit .*\(fits=0\): out of memory"):
        deploy.for_trial(s, by_tp[2], "vllm", model=LLAMA)
    assert deploy.for_trial(s, by_tp[4], "vllm", model=LLAMA).config["tp"] == 4
    for bad in (-1, 3, 10**6):
        with pytest.raises(DeployError, match=rf"trial {bad} does not exist in study 'bad_trials' \(3 trials; "
                                              r"numbers 0\.\.2\)"):
            deploy.for_trial(s, bad, "vllm", model=LLAMA)
    for bad in (1.5, "two", True, None):
        with pytest.raises(DeployError, match=r"trial=.* must be a trial number \(an integer\)") as e:
            deploy.for_trial(s, bad, "vllm", model=LLAMA)
        assert repr(bad) in str(e.value)
    empty = dse.create_study("empty", space, {"tok_s_per_gpu": "max"}, storage=":memory:")
    with pytest.raises(DeployError, match=r"trial 0 does not exist in study 'empty' \(0 trials; numbers none"):
        deploy.for_trial(empty, 0, "vllm", model=LLAMA)


def test_cli_prints_writes_and_fails_clearly(tiny_study, tmp_path, capsys):
    _, url, _ = tiny_study
    assert deploy.main(["tiny_deploy", "--trial", "0", "--engine", "sglang", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "python -m sglang.launch_server --model-path meta-llama/Llama-3.1-70B" in out
    assert "python -m sglang.bench_serving" in out and "# predicted ttft_ms" in out
    assert deploy.main(["tiny_deploy", "--trial", "1", "--engine", "trtllm", "--storage", url,
                        "-o", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "launch.sh").is_file() and (tmp_path / "d" / "serve_options.yaml").is_file()
    capsys.readouterr()
    assert deploy.main(["tiny_deploy", "--trial", "42", "--engine", "vllm", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: trial 42 does not exist") and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------ extraction
def test_extract_flags_reads_argparse_dataclass_and_click_sources(tmp_path):
    pkg = tmp_path / "src"
    (pkg / "eng" / "config").mkdir(parents=True)
    (pkg / "eng" / "config" / "sched.py").write_text(textwrap.dedent('''
        from typing import Literal
        DType = Literal["auto", "fp8"]
        class SchedConfig:
            chunked: bool = True
            dtype: DType = "auto"
            seqs: int = 8
            lb: LBConfig | None = None
        class LBConfig:
            slots: int = 0
            window: float = 1.0
    '''))
    (pkg / "eng" / "args.py").write_text(textwrap.dedent('''
        import argparse
        CHOICES = ["a", "b"]
        def add(parser, prefix=""):
            kw = get_kwargs(SchedConfig)
            parser.add_argument("--tp", "-tp", type=int)
            parser.add_argument(f"--{prefix}policy", choices=CHOICES + ["c"])
            parser.add_argument("--flag", action="store_true")
            parser.add_argument("--prefill", nargs="+", action="append")
            parser.add_argument("--chunked", **kw["chunked"])
            parser.add_argument("--kv-dtype", **{**kw["dtype"], "default": None})
            parser.add_argument("--seqs", **kw["seqs"])
            parser.add_argument("--lb", **kw["lb"])
            parser.add_argument("--rate", type=float)
        @dataclass
        class Server:
            model_path: A[str, Arg(help="m", aliases=["--model"])]
            hidden: A[int, Arg(help="h", no_cli=True)] = 1
            fast: A[bool, "go fast"] = False
            mode: A[Literal["x", "y"], "mode"] = "x"
        @click.option("--tp_size", "--tensor_parallel_size", type=int)
        @click.option("--fraction", type=float)
        @click.option("--backend", type=click.Choice(["pytorch", "trt"]))
        @click.option("--chunk", is_flag=True)
        def serve(tp_size, backend, chunk):
            pass
    '''))
    recipe = extract_flags.Recipe("eng", "1.0", "eng==1.0", "org/eng", {
        "eng": (extract_flags.Part("eng/args.py", config_dirs=("eng/config/",)),
                extract_flags.Part("eng/args.py", "dataclass", ("Server",))),
        "eng serve": (extract_flags.Part("eng/args.py", "click", ("serve",)),),
    })
    doc = extract_flags.extract(recipe, extract_flags.Source(pkg))
    f = doc["commands"]["eng"]["flags"]
    assert set(f) == {"--tp", "-tp", "--policy", "--flag", "--chunked", "--kv-dtype", "--seqs", "--model-path",
                      "--model", "--fast", "--mode", "--prefill", "--lb", "--rate"}
    assert f["--prefill"] == {"nargs": "+"} and "nargs" not in f["--tp"]
    # the type each value is read as: explicit type=, a config field's annotation, JSON of a config class
    assert f["--tp"]["type"] == "int" and f["--rate"]["type"] == "float" and f["--seqs"]["type"] == "int"
    assert f["--lb"] == {"switch": False, "type": "json", "json_keys": ["slots", "window"]}
    assert "type" not in f["--policy"] and "type" not in f["--kv-dtype"] and "type" not in f["--model-path"]
    assert f["--policy"]["choices"] == ["a", "b", "c"] and f["--flag"]["switch"] is True
    assert f["--chunked"] == {"switch": True, "negatable": True}
    assert f["--kv-dtype"]["choices"] == ["auto", "fp8"] and f["--seqs"] == {"switch": False, "type": "int"}
    assert f["--fast"]["switch"] is True and f["--mode"]["choices"] == ["x", "y"]
    c = doc["commands"]["eng serve"]["flags"]
    assert set(c) == {"--tp_size", "--tensor_parallel_size", "--backend", "--chunk", "--fraction"}
    assert c["--backend"]["choices"] == ["pytorch", "trt"] and c["--chunk"]["switch"] is True
    assert c["--tp_size"]["type"] == "int" and c["--fraction"]["type"] == "float" and "type" not in c["--backend"]
    out = tmp_path / "eng.json"
    # the CLI writes the list with the release, repository and commit
    extract_flags.RECIPES["_test"] = recipe
    try:
        assert extract_flags.main(["_test", str(pkg), "--commit", "abc123", "-o", str(out)]) == 0
    finally:
        del extract_flags.RECIPES["_test"]
    written = json.loads(out.read_text())
    assert (written["version"], written["commit"], written["repository"]) == ("1.0", "abc123", "org/eng")


def test_shipped_lists_match_their_recipes():
    """Each list extracted from a wheel holds the commands (and files) its recipe reads."""
    for key, recipe in extract_flags.RECIPES.items():
        if not recipe.version:
            continue
        doc = json.loads((DATA_DIR / f"{recipe.engine}-{recipe.version}.json").read_text())
        assert set(doc["commands"]) == set(recipe.commands), key
        for cmd, parts in recipe.commands.items():
            assert doc["commands"][cmd]["files"] == list(dict.fromkeys(p.file for p in parts)), (key, cmd)


def test_a_trial_predicted_for_another_engine_says_so(tmp_path):
    space = dse.Space(gpu=dse.Categorical(["H200-SXM-141GB"]), tp=dse.Categorical([2]),
                      engine=dse.Categorical(["sglang", "vllm"]))
    st = dse.create_study("engines", space, {"tpot_ms": "min"}, storage=f"sqlite:///{tmp_path / 'e.db'}")
    st.optimize(lambda c: {"tpot_ms": 20.0 if c["engine"] == "vllm" else 25.0, "ttft_ms": 300.0},
                optimizer="grid", progress=False)
    t = st.trials
    n_sglang = int(t.loc[t["engine"] == "sglang", "number"].iloc[0])
    d = deploy.for_trial(st, n_sglang, "vllm", model=LLAMA)
    assert d.predicted == {"ttft_ms": 300.0, "tpot_ms": 25.0}
    assert any("predicted for engine 'sglang', not 'vllm'" in n for n in d.notes)
    d = deploy.for_trial(st, n_sglang, "sglang", model=LLAMA)
    assert not any("predicted for engine" in n for n in d.notes)


def test_python_dash_m_entry_point(tiny_study, tmp_path):
    import subprocess
    import sys

    _, url, _ = tiny_study
    root = ROOT
    r = subprocess.run([sys.executable, "-m", "objectives.deploy", "tiny_deploy", "--trial", "2", "--engine", "vllm",
                        "--storage", url, "-o", str(tmp_path / "o")], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "o" / "deployment.json").read_text())
    assert meta["engine"] == "vllm" and meta["commands"][0]["argv"][:2] == ["vllm", "serve"]
    r = subprocess.run([sys.executable, "-m", "objectives.deploy", "tiny_deploy", "--trial", "2", "--engine", "tgi",
                        "--storage", url], cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "valid engines: vllm, sglang, trtllm" in r.stderr


# ------------------------------------------------------------------------------------------------ eplb
def test_eplb_switches_each_engines_load_balancer_on_with_an_even_ep():
    """eplb=True with an EP that divides the experts (EP 8 on Qwen3-235B's 128): vLLM and SGLang --enable-eplb (no
    redundant experts to ask for), TensorRT-LLM's MoE load balancer with as many slots as experts; off without it."""
    cfg, model = TRIALS["moe_ep_attn_dp"]
    for lb in (False, True, "true", 1):
        on = lb in (True, "true", 1)
        v = deploy.commands({**cfg, "eplb": lb}, engine="vllm", model=model)
        g = deploy.commands({**cfg, "eplb": lb}, engine="sglang", model=model)
        t = deploy.commands({**cfg, "eplb": lb}, engine="trtllm", model=model)
        for d in (v, g):
            argv = d.servers[0].argv
            assert argv.count("--enable-eplb") == int(on), (d.engine, lb)
            assert "--eplb-config" not in argv and "--ep-num-redundant-experts" not in argv
            assert d.check() == {} and _independent_check(d.servers[0]) == []
            assert d.config["eplb"] is on
        opts = yaml.safe_load(t.files["serve_options.yaml"])
        assert opts.get("moe_config") == ({"load_balancer": {"num_slots": 128, "layer_updates_per_iter": 1}} if on else None)
        assert t.check() == {}


def test_eplb_with_redundant_experts_emits_each_flag_once():
    """EP 6 does not divide the 128 experts (4 redundant copies): the balancer runs whatever eplb says, its flags
    once."""
    cfg, model = TRIALS["moe_ep_attn_dp"]
    for lb in (False, True):
        c = {**cfg, "attn_dp": 6, "ep": 6, "eplb": lb}
        v = deploy.commands(c, engine="vllm", model=model).servers[0].argv
        assert v.count("--enable-eplb") == 1 and v[v.index("--eplb-config") + 1] == '{"num_redundant_experts":4}'
        g = deploy.commands(c, engine="sglang", model=model).servers[0].argv
        assert g.count("--enable-eplb") == 1 and g[g.index("--ep-num-redundant-experts") + 1] == "4"
        opts = yaml.safe_load(deploy.commands(c, engine="trtllm", model=model).files["serve_options.yaml"])
        assert opts["moe_config"] == {"load_balancer": {"num_slots": 132, "layer_updates_per_iter": 1}}


def test_eplb_follows_each_pool_and_says_when_no_worker_runs_ep():
    """Disaggregated: the prefill workers (EP 8) run the balancer, the decode workers (TP 8, no EP) have none; a
    deployment with no EP anywhere launches none and says so; a bad value is refused by name."""
    cfg = {"gpu": "H200-SXM-141GB", "tp": 8, "ep": 1, "dp": 2, "mode": "disagg", "prefill_replicas": 1,
           "prefill_tp": 8, "prefill_ep": 8, "weight_dtype": "fp8", "kv_dtype": "bf16", "eplb": True}
    for engine in ("vllm", "sglang"):
        d = deploy.commands(cfg, engine=engine, model=QWEN)
        pre, dec = (s for s in d.servers)
        assert (pre.role, dec.role) == ("prefill", "decode")
        assert "--enable-eplb" in pre.argv and "--enable-eplb" not in dec.argv and d.check() == {}
    t = deploy.commands(cfg, engine="trtllm", model=QWEN)
    assert yaml.safe_load(t.files["ctx_options.yaml"])["moe_config"] == {"load_balancer": {"num_slots": 128, "layer_updates_per_iter": 1}}
    assert "moe_config" not in yaml.safe_load(t.files["gen_options.yaml"])
    flat = deploy.commands({"gpu": "H200-SXM-141GB", "tp": 8, "weight_dtype": "fp8", "eplb": True}, engine="vllm",
                           model=QWEN)
    assert "--enable-eplb" not in flat.servers[0].argv
    assert any("eplb=True: no worker runs expert parallelism" in n for n in flat.notes)
    for bad in ("maybe", 2, [True]):
        with pytest.raises(DeployError, match=rf"eplb={bad!r} must be True or False".replace("[", r"\[")):
            deploy.commands({**cfg, "eplb": bad}, engine="vllm", model=QWEN)


def test_an_engine_release_without_eplb_is_refused_by_name(tmp_path):
    """A flag list without --enable-eplb (an SGLang release before the feature) refuses eplb=True, not eplb=False."""
    from objectives.deploy import builders
    from objectives.deploy.flags import FlagList

    sgl, _ = flag_list("sglang", "0.5.14")
    flags = {k: v for k, v in sgl.commands["python -m sglang.launch_server"].items() if k != "--enable-eplb"}
    old = FlagList("sglang", "0.0.1", sgl.repository, "x", "test", {**sgl.commands,
                   "python -m sglang.launch_server": flags}, {}, tmp_path / "x.json")
    router, _ = flag_list("sglang-router")
    cfg, model = TRIALS["moe_ep_attn_dp"]
    with pytest.raises(DeployError, match=r"sglang 0\.0\.1 cannot run eplb=True \(ep=8\): .* has no --enable-eplb"):
        builders.build(deploy.plan({**cfg, "eplb": True}, model, "sglang"), "sglang", "0.0.1",
                       {"sglang": old, "sglang-router": router}, [])
    assert builders.build(deploy.plan(cfg, model, "sglang"), "sglang", "0.0.1",
                          {"sglang": old, "sglang-router": router}, [])


EPLB_STUDY = '''
import dse
from objectives import llm_serving_objective, serving
space = dse.Space(gpu=dse.Categorical(["H200-SXM-141GB"]), tp=dse.Categorical([1]), attn_dp=dse.Categorical([8]),
                  ep=dse.Categorical([8]), weight_dtype=dse.Categorical(["fp8"]), kv_dtype=dse.Categorical(["bf16"]),
                  max_batch_size=dse.Categorical([64]){knob})
evaluate = llm_serving_objective("Qwen3-235B-A22B", workload=serving.Workload(concurrency=64, input_len=1024,
                                 output_len=128){defaults})
study = dse.StudySpec(name="{name}", space=space, objectives={{"tok_s_per_gpu": "max"}},
                      constraints=evaluate.constraints, evaluate=evaluate, optimizer="grid")
'''


@pytest.mark.parametrize("name, knob, defaults", [
    ("eplb_knob", ", eplb=dse.Categorical([False, True])", ""),
    ("eplb_default", "", ', defaults={"eplb": True}')])
def test_for_trial_deploys_the_eplb_the_trial_was_evaluated_with(tmp_path, name, knob, defaults):
    """A stored trial's eplb (its knob, or the study's objective defaults for a space without it) reaches `dse
    deploy`."""
    from dse.spec import load_study_file

    f = tmp_path / f"{name}.py"
    f.write_text(EPLB_STUDY.format(name=name, knob=knob, defaults=defaults))
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    study = load_study_file(f).run(url, progress=False)
    t = study.trials
    assert (t["state"] == "complete").all() and (t["fits"] == 1).all()
    for _, row in t.iterrows():
        on = bool(row["eplb"]) if "eplb" in t.columns else True
        d = deploy.for_trial(name, int(row["number"]), "vllm", storage=url)
        assert d.config["eplb"] is on and ("--enable-eplb" in d.servers[0].argv) is on


def test_a_trace_workload_is_deployed_and_benchmarked_at_its_mean_lengths_and_rate():
    """A study driven by a trace (`serving.Workload(trace=...)`) gets its launch commands: the benchmark sends
    random prompts of the trace's mean lengths at its mean rate, the servers hold its longest request, and a note
    says what is not replayed. `dse deploy` refused every such trial before ("pass workload={...}", which the
    command line cannot)."""
    from objectives import serving
    from tests.helpers import SHARED

    cfg, model = TRIALS["dense_tp_pp"]
    t = serving.read_trace(SHARED / "traces" / "mooncake_conversation.jsonl").head(400)
    d = deploy.commands(cfg, engine="vllm", model=model, workload=serving.Workload(trace=t))
    w = _words(d.benchmark)
    n_in, n_out = round(t.input_tokens.mean()), round(t.output_tokens.mean())
    for part in (f"--random-input-len {n_in}", f"--random-output-len {n_out}", "--num-prompts 400",
                 f"--request-rate {t.rate:g}"):
        assert part in w, part
    assert f"--max-model-len {int((t.input_tokens + t.output_tokens).max())}" in _words(d.servers[0])
    assert any("is a trace" in n and "prefix reuse" in n for n in d.notes)
    # the workload's own concurrency wins over the trace's arrivals
    d = deploy.commands(cfg, engine="sglang", model=model, workload=serving.Workload(trace=t, concurrency=16))
    assert "--max-concurrency 16" in _words(d.benchmark) and "--request-rate inf" in _words(d.benchmark)


def test_pools_of_different_gpu_types_number_their_gpus_on_their_own_nodes():
    """xPyD with a prefill pool of another GPU type (B200 prefill, H200 decode): the two pools run on different
    machines, so each numbers its GPUs from 0 (the decode worker got CUDA_VISIBLE_DEVICES=4,5,6,7, continuing
    the B200 node's numbering), and the multi-node note counts each pool's GPUs."""
    cfg = {"gpu": "H200", "tp": 4, "dp": 3, "mode": "disagg", "prefill_replicas": 1, "prefill_gpu": "B200",
           "prefill_tp": 4, "weight_dtype": "fp8", "kv_dtype": "fp8", "max_batch_size": 64}
    for engine in deploy.ENGINES:
        d = deploy.commands(cfg, engine=engine, model="Llama-3.1-70B", workload=WORKLOAD)
        assert [s.role for s in d.servers] == ["prefill", "decode", "decode"]
        assert [s.env["CUDA_VISIBLE_DEVICES"] for s in d.servers] == ["0,1,2,3", "0,1,2,3", "4,5,6,7"], engine
        assert any("8 H200-SXM-141GB GPUs" in n and "4 B200 GPUs" in n for n in d.notes), d.notes
    same = deploy.commands({**cfg, "prefill_gpu": "H200"}, engine="vllm", model="Llama-3.1-70B", workload=WORKLOAD)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in same.servers] == ["0,1,2,3", "4,5,6,7", "0,1,2,3"]


def test_replicas_on_a_gb200_nvl72_number_their_gpus_within_a_4_gpu_compute_tray():
    """A GB200 / GB300 NVL72 host (compute tray) has 4 GPUs (systems.toml gpus_per_host, NVIDIA's DGX GB200 user
    guide), not an HGX server's 8: a TP 4 worker's second replica runs on the next tray's GPUs 0-3 (it got 4-7,
    devices that tray does not have), and 8 GPUs in all is more than one node."""
    from objectives import catalog

    assert (catalog.gpus_per_host("GB200"), catalog.gpus_per_host("GB300"), catalog.gpus_per_host("H200")) == (4, 4, 8)
    assert catalog.system("GB200").sources["gpus_per_host"].startswith("https://docs.nvidia.com/")
    for gpu in ("GB200", "GB300"):
        d = deploy.commands({"gpu": gpu, "tp": 4, "dp": 2, "weight_dtype": "fp8"}, engine="vllm",
                            model="Llama-3.1-70B", workload=WORKLOAD)
        assert [s.env["CUDA_VISIBLE_DEVICES"] for s in d.servers] == ["0,1,2,3", "0,1,2,3"], gpu
        assert any("more than one 4-GPU node" in n for n in d.notes), d.notes
        d = deploy.commands({"gpu": gpu, "tp": 2, "dp": 3, "weight_dtype": "fp8"}, engine="sglang",
                            model="Llama-3.1-70B", workload=WORKLOAD)
        assert [s.env["CUDA_VISIBLE_DEVICES"] for s in d.servers] == ["0,1", "2,3", "0,1"], gpu
    wide = deploy.commands({"gpu": "GB200", "tp": 8, "weight_dtype": "fp8"}, engine="vllm", model="Llama-3.1-70B",
                           workload=WORKLOAD)
    assert any("a worker of 8 GPUs spans 2 hosts of 4 GPUs" in n for n in wide.notes), wide.notes
    # an 8-GPU server still holds two TP 4 replicas
    d = deploy.commands({"gpu": "H200", "tp": 4, "dp": 2}, engine="vllm", model="Llama-3.1-70B", workload=WORKLOAD)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in d.servers] == ["0,1,2,3", "4,5,6,7"]
    # a GPU without a systems entry: the 8-GPU server the catalog assumes for it (DEFAULT_SCALE_UP)
    assert catalog.gpus_per_host("L40S") == catalog.DEFAULT_SCALE_UP == 8


def test_a_configuration_without_weight_dtype_deploys_the_checkpoints_format():
    """A trial that names no weight_dtype serves the checkpoint as it is (no --quantization flag), so the plan says
    its format: fp8 for an FP8 checkpoint (it said bf16), bf16 for an unquantized one; a given dtype still wins."""
    d = deploy.commands({"gpu": "H200", "tp": 4}, engine="vllm", model="nvidia/Llama-3.1-70B-Instruct-FP8")
    assert (d.config["weight_dtype"], d.config["act_dtype"]) == ("fp8", "fp8")
    assert deploy.commands({"gpu": "H200"}, engine="vllm", model="Llama-3.1-8B").config["weight_dtype"] == "bf16"
    d = deploy.commands({"gpu": "H200", "tp": 4, "weight_dtype": "bf16"}, engine="vllm",
                        model="nvidia/Llama-3.1-70B-Instruct-FP8")
    assert d.config["weight_dtype"] == "bf16"


def test_a_worker_spanning_hosts_gets_each_engines_multi_node_launch():
    """A worker larger than one host (TP 8 over two 4-GPU GB200 compute trays, TP 16 over two 8-GPU HGX servers):
    vLLM and SGLang one command per host with their multi-node flags (vLLM --nnodes / --node-rank / --master-addr
    with the mp executor, --headless past node 0; SGLang --nnodes / --node-rank / --dist-init-addr), TensorRT-LLM
    one mpirun over the hosts through trtllm-llmapi-launch with --gpus_per_node; every flag in the release's list.
    It emitted one host's view (CUDA_VISIBLE_DEVICES=0..7 on a 4-GPU tray) and a note to add the options by hand."""
    for gpu, tp, per in (("GB200", 8, 4), ("H200", 16, 8)):
        cfg = {"gpu": gpu, "tp": tp, "weight_dtype": "fp8", "kv_dtype": "fp8", "max_batch_size": 64}
        devices = ",".join(str(i) for i in range(per))
        v = deploy.commands(cfg, engine="vllm", model=LLAMA, workload=WORKLOAD)
        assert [s.node for s in v.servers] == ["node-0", "node-1"]
        for r, s in enumerate(v.servers):
            w = _words(s)
            assert f"--tensor-parallel-size {tp}" in w and "--distributed-executor-backend mp" in w
            assert f"--nnodes 2 --node-rank {r} --master-addr node-0 --master-port " in w, w
            assert ("--headless" in s.argv) == (r > 0)
            assert s.env["CUDA_VISIBLE_DEVICES"] == devices and _independent_check(s) == []
        g = deploy.commands(cfg, engine="sglang", model=LLAMA, workload=WORKLOAD)
        assert [s.node for s in g.servers] == ["node-0", "node-1"]
        port = g.servers[0].argv[g.servers[0].argv.index("--dist-init-addr") + 1]
        for r, s in enumerate(g.servers):
            assert f"--tp-size {tp}" in _words(s) and f"--nnodes 2 --node-rank {r} --dist-init-addr {port}" in _words(s)
            assert port.startswith("node-0:") and s.env["CUDA_VISIBLE_DEVICES"] == devices
        t = deploy.commands(cfg, engine="trtllm", model=LLAMA, workload=WORKLOAD)
        assert len(t.servers) == 1
        s = t.servers[0]
        assert s.shell().startswith(f"mpirun -np {tp} -H node-0:{per},node-1:{per} trtllm-llmapi-launch trtllm-serve ")
        assert f"--gpus_per_node {per}" in _words(s) and "CUDA_VISIBLE_DEVICES" not in s.env
        assert _independent_check(s) == []
        for d in (v, g, t):
            assert d.check() == {} and not any("one node's view" in n for n in d.notes), d.notes
            assert any("spans 2 hosts" in n for n in d.notes), d.notes
    # two such replicas: each on hosts of its own
    two = deploy.commands({"gpu": "GB200", "tp": 8, "dp": 2, "weight_dtype": "fp8"}, engine="sglang", model=LLAMA,
                          workload=WORKLOAD)
    assert [s.node for s in two.servers] == ["node-0", "node-1", "node-2", "node-3"]
    assert "node-2:" in _words(two.servers[2]) and "--node-rank 0" in _words(two.servers[2])


def test_attention_data_parallel_ranks_spread_over_hosts_in_vllms_spelling():
    """vLLM's attention DP over two GB200 trays (tp 1 x attn_dp 8, wide EP): its data-parallel deployment across
    nodes, --data-parallel-size-local ranks on each host, --data-parallel-start-rank and --headless past the first;
    SGLang and TensorRT-LLM span the same hosts as for TP. A DP rank larger than a host is refused by name."""
    cfg = {"gpu": "GB200", "tp": 1, "attn_dp": 8, "ep": 8, "weight_dtype": "fp8", "max_batch_size": 64}
    v = deploy.commands(cfg, engine="vllm", model=QWEN, workload=WORKLOAD)
    assert len(v.servers) == 2
    for r, s in enumerate(v.servers):
        w = _words(s)
        assert "--data-parallel-size 8 --data-parallel-size-local 4 --data-parallel-address node-0" in w, w
        assert ("--headless" in s.argv) == (r > 0) and ("--data-parallel-start-rank 4" in w) == (r > 0)
        assert "--nnodes" not in s.argv
    g = deploy.commands(cfg, engine="sglang", model=QWEN, workload=WORKLOAD)
    assert len(g.servers) == 2 and all("--nnodes 2" in _words(s) for s in g.servers)
    t = deploy.commands(cfg, engine="trtllm", model=QWEN, workload=WORKLOAD)
    assert t.servers[0].launcher[:5] == ("mpirun", "-np", "8", "-H", "node-0:4,node-1:4")
    with pytest.raises(DeployError, match=r"data-parallel rank .*8 GPUs.*4-GPU host"):
        deploy.commands({**cfg, "tp": 8, "attn_dp": 2, "ep": 16}, engine="vllm", model=QWEN, workload=WORKLOAD)


def test_a_worker_that_does_not_fill_whole_hosts_is_refused():
    """A worker spanning hosts must fill each (the engines split its ranks evenly over the nodes): 6 GPUs over
    4-GPU trays is refused naming the host size."""
    with pytest.raises(DeployError, match=r"6 GPUs .* 4-GPU hosts"):
        deploy.commands({"gpu": "GB200", "tp": 2, "pp": 3, "weight_dtype": "fp8"}, engine="vllm", model=LLAMA,
                        workload=WORKLOAD)


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_speculative_decoding_launches_each_engines_own_flags(mode):
    """A trial's ``speculative`` (its label, as a study's column holds it) launches each engine's speculative
    decoding in every worker (a disaggregated prefill worker runs the draft layer over its prompts too), spelled
    as each engine's parser reads it: vLLM's --speculative-config JSON, SGLang's algorithm and steps (a chain:
    top-k 1, k + 1 draft tokens), TensorRT-LLM's speculative_config; every flag in the release's list."""
    extra = {"dp": 2, "prefill_replicas": 1} if mode == "disagg" else {}
    ds = catalog.model("DeepSeek-V3").hf_id
    for engine in deploy.ENGINES:
        d = deploy.commands({"gpu": "H200", "tp": 8, "mode": mode, "speculative": "mtp:3:0.8,0.6,0.4", **extra},
                            engine=engine, model="DeepSeek-V3")
        assert d.check() == {} and d.config["speculative"] == "mtp:3:0.8,0.6,0.4"
        assert any("acceptance rates are the study's assumption" in n for n in d.notes)
        for s in d.servers:
            argv = list(s.argv)
            if engine == "vllm":
                cfg = json.loads(argv[argv.index("--speculative-config") + 1])
                assert cfg == {"method": "mtp", "num_speculative_tokens": 3}
            elif engine == "sglang":
                i = argv.index("--speculative-algorithm")
                assert argv[i:i + 10] == ["--speculative-algorithm", "NEXTN", "--speculative-num-steps", "3",
                                          "--speculative-eagle-topk", "1", "--speculative-num-draft-tokens", "4",
                                          "--speculative-draft-model-path", ds]
        if engine == "trtllm":
            names = [n for n in d.files if n.endswith("_options.yaml")]
            assert len(names) == (2 if mode == "disagg" else 1)
            for n in names:
                assert yaml.safe_load(d.files[n])["speculative_config"] == {"decoding_type": "MTP", "max_draft_len": 3}
    # an EAGLE head is a checkpoint of its own: where the catalog names none, a placeholder the note says exactly
    # how to replace in this engine's command
    assert builders.eagle3_head(catalog.model(LLAMA).hf_id) is None
    d = deploy.commands({"gpu": "H100", "tp": 1, "speculative": "eagle:2:0.7"}, engine="vllm", model=LLAMA)
    argv = list(d.servers[0].argv)
    assert json.loads(argv[argv.index("--speculative-config") + 1]) == {
        "method": "eagle", "num_speculative_tokens": 2, "model": builders.EAGLE_HEAD}
    assert any(builders.EAGLE_HEAD in n and '"method": "eagle3"' in n and catalog.model(LLAMA).hf_id in n
               for n in d.notes)
    t = deploy.commands({"gpu": "H100", "tp": 1, "speculative": "eagle:2:0.7"}, engine="trtllm", model=LLAMA)
    assert yaml.safe_load(t.files["serve_options.yaml"])["speculative_config"] == {
        "decoding_type": "Eagle", "max_draft_len": 2, "speculative_model": builders.EAGLE_HEAD}
    assert any("speculative_config.speculative_model" in n and "EAGLE-3 kind" in n for n in t.notes)
    off = deploy.commands({"gpu": "H100", "tp": 1, "speculative": "off"}, engine="sglang", model=LLAMA)
    assert not any(a.startswith("--speculative") for a in off.servers[0].argv)
    with pytest.raises(DeployError, match="num_nextn_predict_layers"):
        deploy.commands({"gpu": "H100", "tp": 1, "speculative": "mtp:2:0.7"}, engine="vllm", model=LLAMA)
    with pytest.raises(DeployError, match="method:draft_tokens:acceptance"):
        deploy.commands({"gpu": "H100", "tp": 1, "speculative": "fast"}, engine="vllm", model=LLAMA)


def test_an_eagle_draft_launches_the_eagle3_head_the_catalog_names():
    """Where the EAGLE authors list an EAGLE-3 head for the served checkpoint (`builders.EAGLE3_HEADS`), "eagle"
    launches it under each engine's EAGLE-3 name: vLLM method "eagle3" with the head as its model, SGLang
    --speculative-algorithm EAGLE3 with the head as the draft model path, TensorRT-LLM decoding_type Eagle3 with the
    head as speculative_model; the note names the head, no placeholder is left."""
    model = "Llama-3.3-70B"
    head = builders.eagle3_head(catalog.model(model).hf_id)
    assert head == "yuhuili/EAGLE3-LLaMA3.3-Instruct-70B"
    for engine in deploy.ENGINES:
        d = deploy.commands({"gpu": "H200", "tp": 4, "speculative": "eagle:3:0.7"}, engine=engine, model=model)
        assert d.check() == {}
        assert any(head in n for n in d.notes) and not any(builders.EAGLE_HEAD in n for n in d.notes)
        argv = list(d.servers[0].argv)
        assert builders.EAGLE_HEAD not in argv
        if engine == "vllm":
            assert json.loads(argv[argv.index("--speculative-config") + 1]) == {
                "method": "eagle3", "num_speculative_tokens": 3, "model": head}
        elif engine == "sglang":
            i = argv.index("--speculative-algorithm")
            assert argv[i:i + 10] == ["--speculative-algorithm", "EAGLE3", "--speculative-num-steps", "3",
                                      "--speculative-eagle-topk", "1", "--speculative-num-draft-tokens", "4",
                                      "--speculative-draft-model-path", head]
        else:
            assert yaml.safe_load(d.files["serve_options.yaml"])["speculative_config"] == {
                "decoding_type": "Eagle3", "max_draft_len": 3, "speculative_model": head}
    # every listed base is a catalog checkpoint (a renamed or removed model would leave a dead entry)
    ids = {catalog.model(m).hf_id for m in catalog.models()}
    assert set(builders.EAGLE3_HEADS) <= ids


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_disaggregated_pools_serving_different_checkpoints_answer_to_one_name(engine, tmp_path):
    """A prefill pool in fp8 (GLM-5.1's own checkpoint, online fp8) beside an NVFP4 decode pool (nvidia/GLM-5.1-NVFP4):
    the benchmark's requests name one model, which vLLM checks (`OpenAIServing._check_model`: 404 for another) on
    the prefill worker the PD router sends them to first, so every worker serves under that one name."""
    cfg = {"gpu": "B200", "tp": 8, "dp": 2, "mode": "disagg", "prefill_replicas": 1, "weight_dtype": "fp4",
           "act_dtype": "fp4", "kv_dtype": "fp8", "prefill_weight_dtype": "fp8", "prefill_act_dtype": "fp8"}
    d = deploy.commands(cfg, engine=engine, model="GLM-5.1", workload=WORKLOAD)
    pre, dec = d.servers[0], d.servers[-1]
    assert "zai-org/GLM-5.1" in pre.argv and "nvidia/GLM-5.1-NVFP4" in dec.argv
    for s in d.servers:
        assert "--served-model-name nvidia/GLM-5.1-NVFP4" in _words(s)
    assert "--model nvidia/GLM-5.1-NVFP4" in _words(d.benchmark)
    assert not d.check()
    d.write(tmp_path)
    meta = json.loads((tmp_path / "deployment.json").read_text())
    assert meta["pool_checkpoints"] == {"prefill": "zai-org/GLM-5.1", "decode": "nvidia/GLM-5.1-NVFP4"}
    agg = deploy.commands({k: v for k, v in cfg.items() if k not in ("prefill_weight_dtype", "prefill_act_dtype")},
                          engine=engine, model="GLM-5.1", workload=WORKLOAD)
    assert not any("--served-model-name" in s.argv for s in agg.servers)   # one checkpoint: its own name


def _ct_nvfp4_config(tmp_path) -> str:
    """Qwen3-32B's config.json with a compressed-tensors NVFP4 quantization_config, in a folder of its own."""
    src = json.loads((ROOT / "objectives" / "data" / "models" / "Qwen3-32B.json").read_text())
    cfg = {k: v for k, v in src.items() if k not in ("name", "hf_id", "aliases", "source", "copied_from")}
    cfg["quantization_config"] = {"quant_method": "compressed-tensors", "format": "nvfp4-pack-quantized",
                                  "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float",
                                                                            "group_size": 16},
                                                                "input_activations": {"num_bits": 4,
                                                                                      "type": "float"}}}}
    folder = tmp_path / "qwen3-32b-nvfp4-ct"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    return str(folder)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_compressed_tensors_nvfp4_checkpoint_gets_no_modelopt_flag_and_is_served_from_its_folder(engine, tmp_path):
    """vLLM's ModelConfig._verify_quantization refuses --quantization modelopt_fp4 on a compressed-tensors config (only
    ModelOpt configs are overridden): the checkpoint's own quantization_config is read. A model read from a local
    config.json (hf_id "") is served, and benchmarked, from that folder's path, never ``vllm serve ''``."""
    folder = _ct_nvfp4_config(tmp_path)
    d = deploy.commands({"gpu": "B200", "tp": 1, "weight_dtype": "fp4", "act_dtype": "fp4"}, engine=engine,
                        model=folder, workload=WORKLOAD)
    assert "--quantization" not in _words(d.servers[0])
    assert d.checkpoint == folder and folder in d.servers[0].argv and folder in d.benchmark.argv
    assert "" not in d.servers[0].argv and "" not in d.benchmark.argv
    assert catalog.model(folder).quant_method == "compressed-tensors"
    # a ModelOpt NVFP4 release keeps the flag (ModelOptNvFp4Config overrides its own method)
    nv = deploy.commands({"gpu": "B200", "tp": 8, "weight_dtype": "fp4", "act_dtype": "fp4", "kv_dtype": "fp8"},
                         engine=engine, model="GLM-5.1", workload=WORKLOAD)
    assert "--quantization modelopt_fp4" in _words(nv.servers[0])


def test_trtllm_notes_an_fp8_checkpoint_computing_in_fp8_for_a_weight_only_trial():
    """TensorRT-LLM serves Llama-3.1-70B's fp8-weight / bf16-activation trial from NVIDIA's ModelOpt FP8 (W8A8)
    checkpoint: the run computes in fp8, which the plan's notes say (the study priced W8A16)."""
    cfg, model = TRIALS["dense_tp_pp"]
    w8a16 = deploy.commands({**cfg, "act_dtype": "bf16"}, engine="trtllm", model=model, workload=WORKLOAD)
    assert w8a16.checkpoint == "nvidia/Llama-3.1-70B-Instruct-FP8"
    assert any("fp8 activations" in n and "assumed bf16" in n for n in w8a16.notes)
    w8a8 = deploy.commands({**cfg, "act_dtype": "fp8"}, engine="trtllm", model=model, workload=WORKLOAD)
    assert not any("activations: the study" in n for n in w8a8.notes)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_models_own_w4a16_nvfp4_checkpoint_notes_its_16_bit_activations_for_an_fp4_trial(engine):
    """Qwen3.6-27B-NVFP4 is a ModelOpt W4A16_NVFP4 checkpoint: served as it is (no flag) for an fp4 / fp4 trial, the
    engine computes with 16-bit activations, which the notes say."""
    d = deploy.commands({"gpu": "B200", "tp": 1, "weight_dtype": "fp4", "act_dtype": "fp4"}, engine=engine,
                        model="Qwen3.6-27B-NVFP4", workload=WORKLOAD)
    assert "--quantization" not in _words(d.servers[0])
    assert any("bf16 activations" in n and "assumed fp4" in n for n in d.notes)
    w4a16 = deploy.commands({"gpu": "B200", "tp": 1, "weight_dtype": "fp4", "act_dtype": "bf16"}, engine=engine,
                            model="Qwen3.6-27B-NVFP4", workload=WORKLOAD)
    assert not any("activations: the study" in n for n in w4a16.notes)
