"""`dse deploy` and ``moe_act_dtype``: each engine's MXFP4 MoE precision setting where the value is not its
default on the GPU, nothing elsewhere, and a value no engine can run refused."""
from __future__ import annotations

import pytest

from objectives import deploy
from objectives.deploy.flags import DeployError

GPT = "gpt-oss-120b"


def _serve(engine: str, value, gpu: str = "B200", **kw):
    d = deploy.commands({"gpu": gpu, "tp": 1, "weight_dtype": "fp4", "moe_act_dtype": value, **kw}, engine=engine,
                        model=GPT)
    assert d.check() == {}
    return d


@pytest.mark.parametrize("engine, value, setting", [
    ("trtllm", "bf16", "OVERRIDE_QUANT_ALGO=W4A16_MXFP4"),
    ("sglang", "bf16", "--flashinfer-mxfp4-moe-precision bf16"),
    ("vllm", "mxfp8", "VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1"),
])
def test_each_engine_gets_its_setting_where_the_value_is_not_its_default(engine, value, setting):
    d = _serve(engine, value)
    assert all(setting in s.shell() for s in d.servers)
    assert d.config["moe_act_dtype"] == value
    assert setting in d.script()
    # its default there, "auto", None, or experts that are not MXFP4: no setting at all
    default = {"trtllm": "mxfp8", "sglang": "mxfp8", "vllm": "bf16"}[engine]
    plain = _serve(engine, None).servers[0].shell()
    for other in (_serve(engine, default), _serve(engine, "auto"), _serve(engine, value, weight_dtype="bf16")):
        line = other.servers[0].shell()
        assert setting not in line and "MXFP4" not in line and "mxfp4" not in line
    assert _serve(engine, default).servers[0].shell() == plain


def test_every_disaggregated_worker_gets_it():
    d = _serve("trtllm", "bf16", mode="disagg", dp=2, prefill_replicas=1)
    assert len(d.servers) == 2 and all(s.env.get("OVERRIDE_QUANT_ALGO") == "W4A16_MXFP4" for s in d.servers)


def test_values_that_cannot_run_are_refused_by_name():
    with pytest.raises(DeployError, match=r"moe_act_dtype='fp8' not allowed; valid: auto, bf16, mxfp8"):
        _serve("vllm", "fp8")
    with pytest.raises(DeployError, match=r"moe_act_dtype='mxfp8': no engine runs MXFP4 experts with MXFP8 "
                                          r"activations on MI355X \(cdna4\); GPUs with that kernel: \['B200'"):
        _serve("vllm", "mxfp8", gpu="MI355X")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_an_mxfp4_checkpoint_is_served_with_its_own_quantization_not_modelopt_fp4(engine):
    # gpt-oss ships MXFP4 experts (quantization_config quant_method "mxfp4"), which both engines detect; their
    # --quantization modelopt_fp4 would load it as an NVFP4 (ModelOpt) checkpoint. An NVFP4 checkpoint keeps it.
    line = _serve(engine, None).servers[0].shell()
    assert "--quantization" not in line
    nv = deploy.commands({"gpu": "B200", "tp": 8, "weight_dtype": "fp4", "act_dtype": "fp4"}, engine=engine,
                         model="nvidia/DeepSeek-R1-0528-FP4")
    assert "--quantization modelopt_fp4" in nv.servers[0].shell()


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_gpt_oss_on_hopper_runs_its_mxfp4_checkpoint_with_16_bit_compute_in_every_replica(engine):
    # the MXFP4 checkpoint before Blackwell (TensorRT-LLM W4A16_MXFP4, vLLM / SGLang Marlin or Triton MXFP4): no
    # replica gets a --quantization flag, no engine refuses it
    d = deploy.commands({"gpu": "H200", "tp": 1, "dp": 2, "weight_dtype": "fp4", "act_dtype": "bf16"}, engine=engine,
                        model=GPT)
    assert d.check() == {} and len(d.servers) == 2
    assert all("--quantization" not in s.shell() for s in d.servers)


def test_on_the_rtx_pro_6000_only_tensorrt_llm_runs_mxfp8_experts():
    """SM 12.0: TensorRT-LLM's MXFP8 default holds there (its SM >= 100 rule); SGLang's and vLLM's MXFP8 MoE
    kernels are SM100 ones, so 16-bit is their only setting and "mxfp8" is refused naming the engine that has it."""
    gpu = "RTX-PRO-6000"
    for engine, default in (("trtllm", "mxfp8"), ("sglang", "bf16"), ("vllm", "bf16")):
        plain = _serve(engine, None, gpu=gpu).servers[0].shell()
        assert _serve(engine, default, gpu=gpu).servers[0].shell() == plain
        assert "MXFP4" not in plain and "mxfp4" not in plain
    for engine in ("vllm", "sglang"):
        with pytest.raises(DeployError, match=rf"{engine} \S+ cannot run moe_act_dtype='mxfp8' on RTX-PRO-6000: it has "
                                              r"no MXFP4 x MXFP8 MoE kernel on blackwell-rtx GPUs .*: \['trtllm'\]"):
            _serve(engine, "mxfp8", gpu=gpu)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_rtx_pro_6000_commands_name_its_profile_release_and_carry_no_nvlink_setting(engine):
    d = deploy.commands({"gpu": "RTX-PRO-6000", "tp": 4, "weight_dtype": "fp8", "kv_dtype": "fp8",
                         "max_batch_size": 64}, engine=engine, model="Llama-3.1-70B")
    assert d.check() == {} and d.version == {"vllm": "0.24.0", "sglang": "0.5.14", "trtllm": "1.3.0rc20"}[engine]
    line = d.servers[0].shell()
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in line and "nvlink" not in line.lower()
