"""`dse deploy` and ``moe_a2a``: each engine's all-to-all backend in every worker (by its role where the engine
splits DeepEP's kernels), nothing for "auto", and workers that cannot run the value refused by name."""
from __future__ import annotations

import pytest

from objectives import deploy
from objectives.deploy.flags import DeployError

DSV3 = "DeepSeek-V3"


def _deploy(engine: str, value, **kw):
    cfg = {"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 8, "ep": 8, "weight_dtype": "fp8", "moe_a2a": value, **kw}
    d = deploy.commands(cfg, engine=engine, model=DSV3)
    assert d.check() == {}
    return d


@pytest.mark.parametrize("engine, value, agg, prefill, decode", [
    ("sglang", "allgather", "--moe-a2a-backend none", "--moe-a2a-backend none", "--moe-a2a-backend none"),
    ("sglang", "deepep", "--moe-a2a-backend deepep --deepep-mode auto", "--deepep-mode normal",
     "--deepep-mode low_latency"),
    ("vllm", "allgather", "--all2all-backend allgather_reducescatter", "--all2all-backend allgather_reducescatter",
     "--all2all-backend allgather_reducescatter"),
    ("vllm", "deepep", "--all2all-backend deepep_high_throughput", "--all2all-backend deepep_high_throughput",
     "--all2all-backend deepep_low_latency"),
    ("trtllm", "allgather", "TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled", "TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled",
     "TRTLLM_FORCE_ALLTOALL_METHOD=NotEnabled"),
])
def test_each_engine_gets_its_backend_in_every_worker(engine, value, agg, prefill, decode):
    d = _deploy(engine, value)
    assert all(agg in s.shell() for s in d.servers) and d.config["moe_a2a"] == value and agg in d.script()
    dis = _deploy(engine, value, mode="disagg", dp=2, prefill_replicas=1)
    roles = {s.role: s.shell() for s in dis.servers}
    assert prefill in roles["prefill"] and decode in roles["decode"]
    plain = _deploy(engine, None).servers[0].shell()
    assert _deploy(engine, "auto").servers[0].shell() == plain
    assert "a2a" not in plain and "all2all" not in plain and "ALLTOALL" not in plain


@pytest.mark.parametrize("engine, value, kw, msg", [
    ("trtllm", "deepep", {}, r"trtllm \S+ cannot run moe_a2a='deepep' on a worker \(tp=1, attn_dp=8, ep=8\): "
                             r"moe_a2a 'allgather' / 'deepep' needs"),
    ("sglang", "deepep", dict(tp=8, attn_dp=1), r"sglang \S+ cannot run moe_a2a='deepep' on a worker \(tp=8, "
                                                 r"attn_dp=1, ep=8\)"),
    ("vllm", "allgather", dict(mode="disagg", dp=2, prefill_replicas=1, prefill_tp=8, prefill_attn_dp=1),
     r"vllm \S+ cannot run moe_a2a='allgather' on its prefill workers \(tp=8, attn_dp=1, ep=8\)"),
    ("vllm", "pplx", {}, r"moe_a2a='pplx' not allowed; valid: auto, allgather, deepep"),
])
def test_workers_that_cannot_run_it_are_refused_by_name(engine, value, kw, msg):
    with pytest.raises(DeployError, match=msg):
        _deploy(engine, value, **kw)


def test_a_dense_model_is_refused():
    with pytest.raises(DeployError, match=r"cannot run moe_a2a='deepep'"):
        deploy.commands({"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 8, "moe_a2a": "deepep"}, engine="sglang",
                        model="Llama-3.1-70B")
