"""Wide EP that does not divide the experts: redundant expert copies (EPLB slots) in the rule, the memory, the
cost model's measured and closed-form paths, the simulator and the launch commands."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from objectives import deploy, inference, serving
from objectives.deploy import DeployError
from objectives.inference.resolve import ep_invalid, expert_slots, redundant_experts

DSV3 = "DeepSeek-V3"          # 256 routed experts, top-8
QWEN = "Qwen3-235B-A22B"      # 128 routed experts


def test_the_rule_takes_an_ep_that_does_not_divide_the_experts_but_not_one_the_gpus_do_not_take():
    # (n_experts, ep, tp, attn_dp) -> invalid
    cases = [((256, 72, 1, 72), False), ((256, 48, 8, 6), False), ((256, 64, 1, 64), False),
             ((256, 72, 1, 64), True),     # 72 does not divide 64 GPUs
             ((8, 16, 1, 16), True),       # more ranks than experts
             ((0, 2, 2, 1), True),         # dense
             ((0, 1, 2, 1), False)]
    got = ep_invalid(*(np.array(c) for c in zip(*[k for k, _ in cases])))
    assert got.tolist() == [v for _, v in cases]


def test_expert_slots_round_each_rank_up_to_whole_experts():
    assert np.asarray(expert_slots(np.array([256, 256, 256, 128, 0]), np.array([72, 64, 48, 6, 4]))).tolist() == \
        [288, 256, 288, 132, 0]
    assert expert_slots(384, 72) == 432.0 and redundant_experts(384, 72) == 48
    assert redundant_experts(256, 64) == 0 and redundant_experts(0, 8) == 0


@given(n_experts=st.integers(1, 1024), ep=st.integers(1, 1024))
def test_expert_slots_are_the_fewest_whole_experts_per_rank_that_hold_every_expert(n_experts, ep):
    slots = int(expert_slots(n_experts, ep))
    assert slots % ep == 0 and n_experts <= slots < n_experts + ep
    assert (slots == n_experts) == (n_experts % ep == 0)
    assert redundant_experts(n_experts, ep) == slots - n_experts


@pytest.mark.parametrize("engine", ["roofline", "trtllm"])
def test_memory_counts_the_redundant_copies_each_gpu_holds(engine):
    # tp 1 with attention DP: every GPU holds the dense weights and ep-th of the expert slots, so the expert part of
    # a GPU's weights is linear in the experts it holds: 8 (EP 32), 6 (EP 48: 288 slots), 4 (EP 64 and EP 72)
    w = {ep: float(inference.estimate(DSV3, "GB200", tp=1, attn_dp=ep, ep=ep, weight_dtype="fp8", engine=engine)
                   ["weights_gib"].iloc[0]) for ep in (32, 48, 64, 72)}
    per_expert = (w[32] - w[64]) / 4
    assert per_expert > 0
    assert w[48] == pytest.approx(w[64] + 2 * per_expert, rel=1e-9)
    assert w[72] == pytest.approx(w[64], rel=1e-9)


def test_a_measured_profile_prices_uneven_ep_from_its_measured_neighbours_not_the_balanced_closed_form():
    # GB200 TensorRT-LLM profile: EP 64 is a measured MoE shape, EP 72 is not. At the same tokens per rank EP 72
    # must not come out faster than EP 64 (the balanced grouped-GEMM closed form would make it ~20 % faster: a
    # front point that exists only in the model). Its redundant copies are placed by the load balancer, so it
    # compares with EP 64 under the balancer (the balanced-routing tables)
    t = {ep: inference.estimate(DSV3, "GB200", tp=1, attn_dp=ep, ep=ep, weight_dtype="fp8", batch_size=ep,
                                input_len=1024, output_len=1024, engine="trtllm", eplb=True) for ep in (64, 72)}
    # priced from the tables, but at a neighbour's EP size: extrapolated, never as certain as a measured shape
    assert str(t[72]["source"].iloc[0]) == "extrapolated" and str(t[64]["source"].iloc[0]) != "roofline"
    assert bool(inference.estimate(DSV3, "GB200", tp=1, attn_dp=72, ep=72, engine="trtllm")["eplb"].iloc[0])
    tpot64, tpot72 = (float(t[e]["tpot_ms"].iloc[0]) for e in (64, 72))
    assert tpot64 <= tpot72 <= 1.25 * tpot64


def test_the_simulator_runs_wide_ep_with_redundant_slots_and_names_a_bad_one():
    w = serving.Workload(concurrency=12, input_len=512, output_len=64, n_requests=36)
    m = serving.simulate(QWEN, "H200", tp=1, attn_dp=6, ep=6, weight_dtype="fp8", workload=w, engine="sglang")
    assert np.isfinite(m["ttft_ms_mean"]) and m["tpot_ms_mean"] > 0
    with pytest.raises(ValueError, match=r"ep=4 must divide the tp x attn_dp = 1 x 6 = 6 GPUs it spreads the 128 "
                                         r"experts of Qwen3-235B-A22B over, and be at most 128; valid ep: 1, 2, 3, 6$"):
        serving.simulate(QWEN, "H200", tp=1, attn_dp=6, ep=4, weight_dtype="fp8", workload=w)


def test_a_trtllm_release_without_the_moe_load_balancer_is_refused_by_name(monkeypatch):
    from objectives.deploy import flags
    lists = flags._all()
    old = [fl for fl in lists if fl.engine == "trtllm"]
    y = {**old[0].yaml, "extra_llm_api_options": {
        k: v for k, v in old[0].yaml["extra_llm_api_options"].items() if not k.startswith("moe_config")}}
    y["extra_llm_api_options"]["keys"] = [k for k in y["extra_llm_api_options"]["keys"] if k != "moe_config"]
    patched = tuple(dataclasses.replace(fl, yaml=y) if fl.engine == "trtllm" else fl for fl in lists)
    monkeypatch.setattr(flags, "_all", lambda: patched)
    cfg = {"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 6, "ep": 6, "weight_dtype": "fp8", "kv_dtype": "bf16"}
    with pytest.raises(DeployError, match=r"cannot run ep=6 on the 128 experts of Qwen3-235B-A22B: it needs the MoE "
                                          r"load balancer's 132 expert slots .*: \[1, 2\]$"):
        deploy.commands(cfg, engine="trtllm", model=QWEN)


def test_launch_commands_ask_the_engine_for_the_redundant_experts_the_model_charged():
    cfg = {"gpu": "H200-SXM-141GB", "tp": 1, "attn_dp": 6, "ep": 6, "weight_dtype": "fp8", "kv_dtype": "bf16",
           "max_batch_size": 64, "max_num_tokens": 4096}
    v = deploy.commands(cfg, engine="vllm", model=QWEN).servers[0].argv
    assert "--enable-eplb" in v and v[v.index("--eplb-config") + 1] == '{"num_redundant_experts":4}'
    g = [str(x) for x in deploy.commands(cfg, engine="sglang", model=QWEN).servers[0].argv]
    assert "--enable-eplb" in g and g[g.index("--ep-num-redundant-experts") + 1] == "4"
    # TensorRT-LLM: its MoE load balancer's slots (which its LLM API asks to divide by the EP size)
    t = deploy.commands(cfg, engine="trtllm", model=QWEN)
    opts = yaml.safe_load(t.files["serve_options.yaml"])
    assert opts["moe_config"] == {"load_balancer": {"num_slots": 132, "layer_updates_per_iter": 1}} and 132 % 6 == 0
    assert not t.check()
    # an EP that divides the experts asks for nothing extra
    even = deploy.commands({**cfg, "attn_dp": 8, "ep": 8}, engine="trtllm", model=QWEN)
    assert "moe_config" not in yaml.safe_load(even.files["serve_options.yaml"])
    assert "--enable-eplb" not in deploy.commands({**cfg, "attn_dp": 8, "ep": 8}, engine="vllm", model=QWEN).servers[0].argv
