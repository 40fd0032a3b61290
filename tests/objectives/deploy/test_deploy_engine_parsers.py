"""`dse deploy` commands parsed the way each engine parses them, over a matrix of configurations, and the launch
settings an engine would take otherwise than the study predicted (the engines' own start-up checks).

Every emitted command is parsed by an ``argparse`` parser built from the shipped flag list of the release it was
checked against (objectives/data/engine_flags/, extracted from the release's own parser source): a flag the
release lacks, a value outside a flag's choices, a value given to a switch or a value missing after an option each
fail the parse (a switch's stray value becomes an extra positional, which the parser refuses)."""
from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import NoReturn

import pytest
import yaml

from objectives import catalog, deploy, inference
from objectives.deploy.flags import DeployError, flag_list

LLAMA = "Llama-3.1-70B"
QWEN = "Qwen3-235B-A22B"
GPT = "gpt-oss-120b"
WORKLOAD = {"concurrency": 16, "input_len": 1000, "output_len": 100}

#: positional arguments each program takes after its own words (the model of `vllm serve` and `trtllm-serve`)
POSITIONALS = {"vllm serve": 1, "trtllm-serve": 1}


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


@functools.cache
def _parser(engine: str, version: str, program: str) -> argparse.ArgumentParser:
    """An argparse parser of ``program`` holding exactly the flags of the shipped list of ``engine`` ``version``:
    switches take no value (negatable ones also --no-FLAG), every other flag its nargs of values (one where the
    list records none) within its choices, each read as its recorded type (`_reader`)."""
    fl, exact = flag_list(engine, version)
    assert exact, (engine, version)
    ap = _Parser(prog=program, add_help=False, allow_abbrev=False)
    for i in range(POSITIONALS.get(program, 0)):
        ap.add_argument(f"positional{i}")
    for name, rec in fl.flags(program).items():
        dest = "f_" + name.lstrip("-").replace("-", "_")
        if rec.get("switch"):
            action = argparse.BooleanOptionalAction if rec.get("negatable") and name.startswith("--") else "store_true"
            ap.add_argument(name, action=action, dest=dest)
        else:
            ch = rec.get("choices")
            nargs = rec.get("nargs")
            ap.add_argument(name, dest=dest, choices=None if ch is None else [str(c) for c in ch],
                            type=_reader(rec), **({} if nargs is None else {"nargs": nargs}))
    return ap


def _reader(rec: dict) -> Callable[[str], object]:
    """How the release reads a flag's value: int, float, JSON (holding only the recorded config fields), else a
    string; a value it cannot read raises, which argparse reports as an invalid value."""
    kind = rec.get("type")
    if kind == "int":
        return int
    if kind == "float":
        return float
    if kind == "json":
        keys = rec.get("json_keys")

        def read_json(v: str) -> object:
            doc = json.loads(v)
            if keys is not None and not set(doc) <= set(keys):
                raise ValueError(f"keys {sorted(set(doc) - set(keys))} are not fields {keys}")
            return doc

        return read_json
    return str


def _parse(cmd: deploy.Command) -> argparse.Namespace:
    engine, version = cmd.checked_against.split(" ", 1)
    words = cmd.program.split()
    assert list(cmd.argv[:len(words)]) == words, cmd.shell()
    return _parser(engine, version, cmd.program).parse_args(list(cmd.argv[len(words):]))


def _configs() -> list[tuple[dict, str]]:
    """Dense and MoE, TP / PP / attention DP / EP, EPLB with and without redundant experts, every weight format,
    the EP token exchange (moe_a2a), KV dtypes, chunked prefill and prefix caching off, speculative decoding,
    disaggregated, multi-host workers, on each profiled GPU
    generation (its own releases: A100 the 0.14.0 / 0.5.10 lists, the Arc Pro B60 vLLM 0.26.0, the others 0.24.0 /
    0.5.14) and an AMD GPU."""
    out: list[tuple[dict, str]] = []
    for gpu in ("A100-SXM-80GB", "H200-SXM-141GB", "B200", "GB200", "MI300X", "Arc-Pro-B60"):
        for model in (LLAMA, QWEN, GPT):
            for tp, pp, attn, ep in ((1, 1, 1, 1), (4, 2, 1, 1), (8, 1, 1, 1), (1, 1, 8, 8), (2, 1, 4, 8),
                                     (1, 1, 6, 6), (16, 1, 1, 1)):
                if ep > 1 and model == LLAMA:
                    continue
                for mode in ("agg", "disagg"):
                    for extra in ({}, {"eplb": True, "prefix_caching": False, "chunked_prefill": False},
                                  {"kv_dtype": "bf16", "weight_dtype": "fp8"}, {"kv_dtype": "fp8"},
                                  {"weight_dtype": "int4", "act_dtype": "bf16"}, {"weight_dtype": "fp4"},
                                  {"weight_dtype": "fp4", "moe_act_dtype": "bf16"},
                                  {"weight_dtype": "fp4", "act_dtype": "fp4"},
                                  {"weight_dtype": "int8", "act_dtype": "int8"},
                                  {"weight_dtype": "int8", "act_dtype": "bf16"},
                                  {"moe_a2a": "allgather"}, {"moe_a2a": "deepep"}, {"adp_balance": True},
                                  {"speculative": "eagle:2:0.7"}):
                        if extra.get("adp_balance") and attn == 1:
                            continue          # a balance of attention-DP ranks: refused without them
                        c = {"gpu": gpu, "tp": tp, "pp": pp, "attn_dp": attn, "ep": ep, "mode": mode, **extra}
                        if mode == "disagg":
                            c.update(dp=2, prefill_replicas=1)
                        out.append((c, model))
    return out


@functools.cache
def _deployments(engine: str) -> tuple[tuple[dict, deploy.Deployment | None], ...]:
    """`deploy.commands` of each `_configs()` configuration on ``engine`` (None where it raises DeployError), built
    once per process: the parse test and the YAML test read the same TensorRT-LLM matrix (~3,000 deployments, most
    of either test's time), and neither changes what it reads."""
    out: list[tuple[dict, deploy.Deployment | None]] = []
    for cfg, model in _configs():
        try:
            out.append((cfg, deploy.commands(cfg, engine=engine, model=model, workload=WORKLOAD)))
        except DeployError:
            out.append((cfg, None))
    return tuple(out)


@pytest.mark.parametrize("engine", deploy.ENGINES)
def test_every_command_parses_with_its_releases_flag_list(engine):
    """Hundreds of deployments per engine: each server, router and benchmark command parses with the parser of
    the release it names (every flag known, every value among the flag's choices, switches without values), the
    model is the one positional, and what the parser reads back is what the builder meant."""
    parsed = refused = 0
    versions = set()
    for cfg, d in _deployments(engine):
        if d is None:
            refused += 1
            continue
        versions.add(d.version)
        for cmd in d.commands:
            try:
                ns = _parse(cmd)
            except _Refused as e:
                pytest.fail(f"{cmd.checked_against} refuses {cmd.shell()}: {e}")
            parsed += 1
            if cmd.program == "vllm serve":
                # the served checkpoint: the model's own, the catalog's in the trial's format, or the placeholder
                assert ns.positional0 == d.checkpoint and ns.f_tensor_parallel_size == cfg["tp"]
            if cmd.program == "trtllm-serve":
                assert ns.positional0 == d.checkpoint
            if cmd.program == "python -m sglang.launch_server":
                assert ns.f_model_path == d.checkpoint
    assert parsed > 1000 and refused < parsed / 2, (parsed, refused)
    assert len(versions) >= 2, versions   # the A100 profile's release and the newer GPUs' one (vLLM: and 0.26.0)


def test_eagle_drafts_parse_as_each_release_reads_them():
    """An EAGLE draft on a model the catalog lists an EAGLE-3 head for (QWEN, GPT) and on one it does not (LLAMA):
    each server command parses with its release's parser (A100: the older lists, whose SGLang records the algorithm
    choices), and reads back the method and the head meant: vLLM's JSON "eagle3" + head or "eagle" + placeholder,
    SGLang's EAGLE3 / EAGLE and its draft model path."""
    from objectives.deploy.builders import EAGLE_HEAD, eagle3_head
    for gpu in ("A100-SXM-80GB", "H200-SXM-141GB"):
        for model in (LLAMA, QWEN, GPT):
            head = eagle3_head(catalog.model(model).hf_id)
            assert (head is None) == (model == LLAMA)
            for engine in ("vllm", "sglang"):
                d = deploy.commands({"gpu": gpu, "tp": 8, "speculative": "eagle:2:0.7"}, engine=engine, model=model,
                                    workload=WORKLOAD)
                ns = _parse(d.servers[0])
                if engine == "vllm":
                    assert ns.f_speculative_config == {"method": "eagle" if head is None else "eagle3",
                                                       "num_speculative_tokens": 2, "model": head or EAGLE_HEAD}
                else:
                    assert ns.f_speculative_algorithm == ("EAGLE" if head is None else "EAGLE3")
                    assert ns.f_speculative_draft_model_path == (head or EAGLE_HEAD)


def test_the_parser_refuses_what_an_engine_would():
    """The check itself: an unknown flag, a value outside the choices, a value after a switch and a missing value
    are each refused."""
    base = deploy.commands({"gpu": "H200", "tp": 2}, engine="vllm", model=LLAMA, workload=WORKLOAD).servers[0]
    for extra in (["--no-such-flag", "1"], ["--kv-cache-dtype", "fp9"], ["--enable-expert-parallel", "yes"],
                  ["--max-num-seqs"], ["--max-num-seqs", "many"], ["--eplb-config", '{"num_redundant": 4}'],
                  ["--kv-transfer-config", "NixlConnector"]):
        bad = deploy.Command(base.role, (*base.argv, *extra), base.program, base.checked_against)
        with pytest.raises(_Refused):
            _parse(bad)
    assert _parse(base).f_tensor_parallel_size == 2


def test_the_yaml_files_hold_only_keys_of_the_release():
    """TensorRT-LLM's YAML files: every key (and nested key) is one the recorded LLM API / disaggregated config
    has, and each cache transceiver backend is among the recorded choices."""
    fl, _ = flag_list("trtllm")
    api = fl.yaml["extra_llm_api_options"]
    seen: set[str] = set()     # what the configurations exercised: each branch below is checked at least once
    for _, d in _deployments("trtllm"):
        if d is None:
            continue
        for name, text in d.files.items():
            doc = yaml.safe_load(text)
            if name == "disagg_config.yaml":
                assert set(doc) <= set(fl.yaml["disaggregated"]["keys"]), doc
                seen.add(name)
                continue
            assert set(doc) <= set(api["keys"]), (name, doc)
            assert set(doc["kv_cache_config"]) <= set(api["kv_cache_config"]), doc
            seen.add("extra_llm_api_options")
            if "moe_config" in doc:
                assert set(doc["moe_config"]["load_balancer"]) <= set(api["moe_config.load_balancer"])
                seen.add("moe_config")
            if "attention_dp_config" in doc:
                assert set(doc["attention_dp_config"]) <= set(api["attention_dp_config"]), doc
                seen.add("attention_dp_config")
            if "cache_transceiver_config" in doc:
                assert doc["cache_transceiver_config"]["backend"] in api["cache_transceiver_config"]["backend"]
                seen.add("cache_transceiver_config")
            if "speculative_config" in doc:
                assert set(doc["speculative_config"]) <= set(api["speculative_config"]), doc
                assert doc["speculative_config"]["decoding_type"] in api["speculative_config.decoding_type"]
                seen.add("speculative_config " + doc["speculative_config"]["decoding_type"])
    # the placeholder head (LLAMA: decoding_type Eagle) and a catalogued EAGLE-3 head (QWEN, GPT: Eagle3)
    assert seen == {"disagg_config.yaml", "extra_llm_api_options", "moe_config", "cache_transceiver_config",
                    "attention_dp_config", "speculative_config Eagle", "speculative_config Eagle3"}, seen


# ------------------------------------------------------------------------------------------------ KV cache dtype
def _kv_flag(d: deploy.Deployment) -> str | None:
    """The KV-cache dtype each server is launched with (None: the engine's "auto")."""
    out = set()
    for s in d.servers:
        if d.engine == "trtllm":
            name = [a for a in s.argv if a.endswith(".yaml")][0]
            out.add(yaml.safe_load(d.files[name])["kv_cache_config"].get("dtype"))
        else:
            out.add(s.argv[s.argv.index("--kv-cache-dtype") + 1] if "--kv-cache-dtype" in s.argv else None)
    assert len(out) == 1, out
    return out.pop()


@pytest.mark.parametrize("engine, fp8", [("vllm", "fp8"), ("sglang", "fp8_e4m3"), ("trtllm", "fp8")])
def test_a_trial_without_kv_dtype_gets_the_kv_cache_the_study_predicted(engine, fp8):
    """The cost model's kv_dtype None is the activation dtype (fp8 for an fp8 trial, fp8 for fp4 activations;
    `inference.resolve`); the engines' "auto" is the checkpoint's KV format (its kv_cache_quant_algo) else the
    model's 16-bit dtype (vLLM `resolve_kv_cache_dtype_string` / `CacheConfig.cache_dtype`, SGLang
    `ModelRunner.configure_kv_cache_dtype`, TensorRT-LLM `KvCacheConfig.dtype` "auto"). An fp8 trial of a 16-bit
    checkpoint launched no KV flag: the engines ran a bf16 KV cache, half the tokens the study's batch was sized
    for. Where "auto" already gives the predicted dtype no flag is added."""
    fp8_trial = deploy.commands({"gpu": "H200", "tp": 4, "weight_dtype": "fp8"}, engine=engine, model=LLAMA,
                                workload=WORKLOAD)
    assert fp8_trial.config["kv_dtype"] == "fp8"
    assert _kv_flag(fp8_trial) == fp8
    # an FP8 checkpoint that ships FP8 KV scales: "auto" already stores fp8
    ckpt = deploy.commands({"gpu": "H200", "tp": 4}, engine=engine, model="nvidia/Llama-3.1-70B-Instruct-FP8",
                           workload=WORKLOAD)
    assert catalog.model("nvidia/Llama-3.1-70B-Instruct-FP8").quant_kv_dtype == "fp8"
    assert ckpt.config["kv_dtype"] == "fp8" and _kv_flag(ckpt) is None
    # a 16-bit trial: the predicted bf16 is every engine's "auto"
    plain = deploy.commands({"gpu": "H200", "tp": 4}, engine=engine, model=LLAMA, workload=WORKLOAD)
    assert plain.config["kv_dtype"] == "bf16" and _kv_flag(plain) is None
    # a 16-bit trial of either 16-bit dtype keeps "auto" (the checkpoint's own 16 bits: no --dtype is launched,
    # so there is nothing to match; vLLM 0.14.0 has no "float16" KV value at all)
    fp16 = deploy.commands({"gpu": "A100-SXM-80GB", "tp": 4, "weight_dtype": "fp16"}, engine=engine, model=LLAMA,
                           workload=WORKLOAD)
    assert fp16.config["kv_dtype"] == "fp16" and _kv_flag(fp16) is None
    # a given kv_dtype is launched as given ("auto": the engine's own)
    assert deploy.commands({"gpu": "H200", "tp": 4, "weight_dtype": "fp8", "kv_dtype": "auto"}, engine=engine,
                           model=LLAMA).config["kv_dtype"] == "auto"


def test_fp4_weights_on_hopper_price_the_fp8_kv_cache_of_a_checkpoint_with_fp8_kv_scales():
    """W4A16 (NVFP4 Marlin on Hopper) of a checkpoint that ships FP8 KV scales (`Model.quant_kv_dtype`): vLLM's and
    SGLang's "auto" store its KV cache in fp8 whatever the activations (the checkpoint's kv_cache_quant_algo), so the
    study prices fp8 (`inference.resolve.resolve_dtypes`) and the deployment leaves the engine its "auto"; a bf16
    KV cache asked for is launched as bf16. TensorRT-LLM cannot run this format at all (its FP4 GEMMs need
    Blackwell)."""
    model = "nvidia/DeepSeek-R1-0528-FP4"
    assert catalog.model(model).quant_kv_dtype == "fp8"
    cfg = {"gpu": "H200", "tp": 8, "weight_dtype": "fp4", "act_dtype": "bf16"}
    for engine, bf16 in (("vllm", "bfloat16"), ("sglang", "bf16")):
        priced = inference.estimate(model, "H200", tp=8, weight_dtype="fp4", act_dtype="bf16", engine=engine,
                                    batch_size=1, input_len=128, output_len=16)
        d = deploy.commands(cfg, engine=engine, model=model, workload=WORKLOAD)
        assert priced["kv_dtype"].iloc[0] == d.config["kv_dtype"] == "fp8" and _kv_flag(d) is None, engine
        d = deploy.commands({**cfg, "kv_dtype": "bf16"}, engine=engine, model=model, workload=WORKLOAD)
        assert d.config["kv_dtype"] == "bf16" and _kv_flag(d) == bf16, engine


def test_trtllm_refuses_a_16_bit_kv_cache_it_would_store_in_fp8():
    """TensorRT-LLM's kv_cache_config.dtype "auto" follows the checkpoint's kv_cache_quant_algo and its LLM API
    syncs only "fp8" back into the quantization config (TorchLlmArgs.sync_quant_config_with_kv_cache_config_dtype):
    a bf16 KV cache of a checkpoint with FP8 KV scales cannot be asked for; it is refused by name, not launched as
    fp8 silently."""
    with pytest.raises(DeployError, match=r"trtllm cannot store the KV cache as kv_dtype='bf16'.*FP8 KV"):
        deploy.commands({"gpu": "H200", "tp": 4, "kv_dtype": "bf16"}, engine="trtllm",
                        model="nvidia/Llama-3.1-70B-Instruct-FP8", workload=WORKLOAD)


# ------------------------------------------------------------------------------------------------ vLLM start-up
def test_vllm_without_chunked_prefill_caps_the_model_length_at_the_token_budget():
    """vLLM refuses to start without chunked prefill when --max-num-batched-tokens < the maximum model length
    (SchedulerConfig.verify_max_model_len, vllm/config/scheduler.py); with no longest request known that length is
    the model's context (131072 tokens for Llama-3.1-70B), so every such deployment failed at start-up: a
    disaggregated prefill worker (chunking off) included. It is now capped at the token budget, with a note."""
    from objectives import serving

    unbounded = {"concurrency": 8, "input_len": serving.Dist("lognormal", mean=1000, std=800), "output_len": 100}
    d = deploy.commands({"gpu": "H200", "tp": 4, "chunked_prefill": False, "max_num_tokens": 16384}, engine="vllm",
                        model=LLAMA, workload=unbounded)
    (s,) = d.servers
    assert "--no-enable-chunked-prefill" in s.argv and s.argv[s.argv.index("--max-model-len") + 1] == "16384"
    assert any("--max-model-len 16384" in n for n in d.notes), d.notes
    dis = deploy.commands({"gpu": "H200", "tp": 4, "dp": 2, "mode": "disagg", "prefill_replicas": 1}, engine="vllm",
                          model=LLAMA, workload=unbounded)
    pre, dec = dis.servers
    assert pre.argv[pre.argv.index("--max-model-len") + 1] == "8192" and "--no-enable-chunked-prefill" in pre.argv
    assert "--enable-chunked-prefill" in dec.argv
    # a known longest request within the budget sets the length itself, as before
    ok = deploy.commands({"gpu": "H200", "tp": 4, "chunked_prefill": False}, engine="vllm", model=LLAMA,
                         workload=WORKLOAD)
    assert ok.servers[0].argv[ok.servers[0].argv.index("--max-model-len") + 1] == "1100"


def test_vllm_refuses_a_token_budget_below_its_batch():
    """vLLM refuses --max-num-batched-tokens < --max-num-seqs at start-up (SchedulerConfig.verify_max_model_len);
    such a trial is refused by name."""
    with pytest.raises(DeployError, match=r"vllm .* max_num_tokens=128 .* max_batch_size=256"):
        deploy.commands({"gpu": "H200", "tp": 4, "max_batch_size": 256, "max_num_tokens": 128}, engine="vllm",
                        model=LLAMA, workload=WORKLOAD)
    assert deploy.commands({"gpu": "H200", "tp": 4, "max_batch_size": 256, "max_num_tokens": 128}, engine="sglang",
                           model=LLAMA, workload=WORKLOAD)


def test_json_valued_flags_hold_the_engines_config_keys():
    """vLLM's --eplb-config and --kv-transfer-config are JSON of EPLBConfig / KVTransferConfig (vllm/config/
    parallel.py, vllm/config/kv_transfer.py): the list records their fields (json_keys) and the parse above reads
    every emitted value against them; here the values themselves (KVRole's "kv_both", NixlConnector)."""
    for version in ("0.14.0", "0.24.0", "0.26.0"):
        flags = flag_list("vllm", version)[0].flags("vllm serve")
        assert "num_redundant_experts" in flags["--eplb-config"]["json_keys"]
        assert {"kv_connector", "kv_role"} <= set(flags["--kv-transfer-config"]["json_keys"])
    d = deploy.commands({"gpu": "H200", "tp": 1, "attn_dp": 6, "ep": 6, "dp": 2, "mode": "disagg",
                         "prefill_replicas": 1, "weight_dtype": "fp8"}, engine="vllm", model=QWEN, workload=WORKLOAD)
    for s in d.servers:
        eplb = json.loads(s.argv[s.argv.index("--eplb-config") + 1])
        kvt = json.loads(s.argv[s.argv.index("--kv-transfer-config") + 1])
        assert set(eplb) == {"num_redundant_experts"} and eplb["num_redundant_experts"] == 4
        assert kvt == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}


# ------------------------------------------------------------------------------------------------ TensorRT-LLM
def test_trtllm_chunked_prefill_is_set_in_the_llm_api_yaml_every_release_reads():
    """trtllm-serve's --enable_chunked_prefill is newer than the A100 profile's TensorRT-LLM 1.0.0: the 1.1.0
    release's documented options end at --fail_fast_on_attention_window_too_large (docs/source/commands/trtllm-serve/
    trtllm-serve.rst as published for 1.1.0), the flag first appears in the 1.3.0 release candidates' (1.3.0rc7),
    so `trtllm-serve ... --enable_chunked_prefill` stopped a 1.0.0 server at start-up ("no such option"). The LLM
    API field ``enable_chunked_prefill`` (BaseLlmArgs, tensorrt_llm/llmapi/llm_args.py) is read from the
    --extra_llm_api_options YAML by every release: it is set there (aggregated workers with chunked prefill, and
    decode workers), and nowhere when chunking is off."""
    for gpu in ("A100-SXM-80GB", "H200"):
        d = deploy.commands({"gpu": gpu, "tp": 4, "weight_dtype": "bf16"}, engine="trtllm", model=LLAMA,
                            workload=WORKLOAD)
        assert "--enable_chunked_prefill" not in d.servers[0].argv
        assert yaml.safe_load(d.files["serve_options.yaml"])["enable_chunked_prefill"] is True
        off = deploy.commands({"gpu": gpu, "tp": 4, "chunked_prefill": False}, engine="trtllm", model=LLAMA,
                              workload=WORKLOAD)
        assert "enable_chunked_prefill" not in yaml.safe_load(off.files["serve_options.yaml"])
    dis = deploy.commands({"gpu": "H200", "tp": 4, "dp": 2, "mode": "disagg", "prefill_replicas": 1},
                          engine="trtllm", model=LLAMA, workload=WORKLOAD)
    assert "enable_chunked_prefill" not in yaml.safe_load(dis.files["ctx_options.yaml"])
    assert yaml.safe_load(dis.files["gen_options.yaml"])["enable_chunked_prefill"] is True
    assert not any("--enable_chunked_prefill" in s.argv for s in dis.servers)


# ------------------------------------------------------------------------------------------------ device selection
@pytest.mark.parametrize("gpu, var", [("H200", "CUDA_VISIBLE_DEVICES"), ("MI300X", "HIP_VISIBLE_DEVICES"),
                                      ("Arc-Pro-B60", "ZE_AFFINITY_MASK")])
def test_each_replica_is_pinned_to_its_gpus_by_its_platforms_variable(gpu, var):
    """vLLM selects devices through its platform's ``device_control_env_var``: CUDA_VISIBLE_DEVICES on NVIDIA
    (vllm/platforms/cuda.py), ZE_AFFINITY_MASK on Intel XPUs (vllm/platforms/xpu.py), and on ROCm it reads
    HIP_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES there being deprecated (vllm/platforms/rocm.py
    `_sync_hip_cuda_env_vars`). Two replicas on an Arc Pro B60 host (the vLLM 0.26.0 profile's GPU) were both given
    CUDA_VISIBLE_DEVICES, which the XPU runtime ignores: both started on devices 0-1."""
    d = deploy.commands({"gpu": gpu, "tp": 2, "dp": 2}, engine="vllm", model="Llama-3.1-8B", workload=WORKLOAD)
    assert [s.env for s in d.servers] == [{var: "0,1"}, {var: "2,3"}]
    assert all(var in s.shell() for s in d.servers)


def test_vllm_disaggregated_workers_on_one_host_get_their_own_nixl_side_channel_ports():
    """Each vLLM NixlConnector worker listens for NIXL handshakes on VLLM_NIXL_SIDE_CHANNEL_PORT (default 5600) plus
    its data-parallel index (vllm/distributed/kv_transfer/kv_connector/v1/nixl/base_scheduler.py @0.24.0,
    nixl_connector.py @0.14.0; vllm/envs.py): the four TP 2 workers of a 1P3D deployment on one 8-GPU host all bound
    port 5600, and all but the first failed to start. Each now has a range of its own, as wide as the largest
    attention-DP size (its data-parallel indices)."""
    d = deploy.commands({"gpu": "B200", "tp": 2, "dp": 4, "mode": "disagg", "prefill_replicas": 1,
                         "weight_dtype": "fp8"}, engine="vllm", model=LLAMA, workload=WORKLOAD)
    assert [s.env.get("VLLM_NIXL_SIDE_CHANNEL_PORT") for s in d.servers] == ["5600", "5601", "5602", "5603"]
    wide = deploy.commands({"gpu": "H200", "tp": 1, "attn_dp": 4, "ep": 4, "dp": 2, "mode": "disagg",
                            "prefill_replicas": 1, "weight_dtype": "fp8"}, engine="vllm", model=QWEN,
                           workload=WORKLOAD)
    assert [s.env.get("VLLM_NIXL_SIDE_CHANNEL_PORT") for s in wide.servers] == ["5600", "5604"]
    assert not any("VLLM_NIXL_SIDE_CHANNEL_HOST" in n for n in d.notes)   # one host: localhost reaches them
    # workers on several hosts: vLLM's default side-channel host (localhost, vllm/envs.py) reaches no other host
    multi = deploy.commands({"gpu": "B200", "tp": 4, "dp": 4, "mode": "disagg", "prefill_replicas": 1,
                             "weight_dtype": "fp8"}, engine="vllm", model=LLAMA, workload=WORKLOAD)
    assert any("VLLM_NIXL_SIDE_CHANNEL_HOST" in n for n in multi.notes), multi.notes
    # aggregated replicas run no connector
    agg = deploy.commands({"gpu": "B200", "tp": 2, "dp": 4}, engine="vllm", model=LLAMA, workload=WORKLOAD)
    assert not any("VLLM_NIXL_SIDE_CHANNEL_PORT" in s.env for s in agg.servers)
