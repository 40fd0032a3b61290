"""spaces.training, objectives.training.training_objective and studies/llm_training.py."""
from __future__ import annotations

import itertools

import pytest

import dse
import spaces
from objectives.training import TrainingError, estimate, training_objective
from tests.helpers import ROOT


def test_every_grid_point_is_accepted_by_the_model_and_the_rules_are_exact():
    """The space's constraints are exactly the model's validity rules: the grid holds every valid combination
    of the knobs (checked against estimate() raising or not on the full cross product) and nothing else."""
    s = spaces.training("Mixtral-8x7B", ["H100-SXM-80GB", "A100-SXM-80GB"], max_gpus=64, n_gpus=[16, 64],
                        global_batch=64, seq_len=4096, vp=(1, 2), zero_stages=(1,), recompute=("selective",),
                        micro_batches=(1, 2), precisions=("bf16", "fp8"))
    grid = s.grid()
    names = list(s.names)
    got = {tuple(r) for r in grid[names].itertuples(index=False)}
    choices = [s.params[n].choices for n in names]
    want = set()
    for combo in itertools.product(*choices):
        kw = dict(zip(names, combo, strict=True))
        try:
            estimate("Mixtral-8x7B", kw.pop("gpu"), kw.pop("n_gpus"), seq_len=4096, global_batch=64, **kw)
        except TrainingError:
            continue
        want.add(combo)
    assert got == want and len(got) > 100


def test_space_rejects_bad_knobs_with_the_valid_values():
    with pytest.raises(dse.SpaceError, match=r"tp=\[3\]: \[3\] not allowed \(must divide the 64 heads"):
        spaces.training("Llama-3.1-70B", ["H100"], global_batch=1024, seq_len=8192, tp=[3])
    with pytest.raises(dse.SpaceError, match=r"pp=\[3\]: \[3\] not allowed \(must divide the 80 layers"):
        spaces.training("Llama-3.1-70B", ["H100"], global_batch=1024, seq_len=8192, pp=[3])
    with pytest.raises(dse.SpaceError, match=r"dense \(no experts\)"):
        spaces.training("Llama-3.1-70B", ["H100"], global_batch=1024, seq_len=8192, ep=[2])
    with pytest.raises(dse.SpaceError, match=r"none of precisions=\['fp8'\] runs on \['A100-SXM-80GB'\]"):
        spaces.training("Llama-3.1-70B", ["A100"], global_batch=1024, seq_len=8192, precisions=["fp8"])


def test_gpus_without_a_scale_out_network_stay_in_one_node():
    s = spaces.training("Llama-3.1-8B", ["L40S", "H100"], max_gpus=64, global_batch=256, seq_len=4096)
    g = s.grid()
    assert (g.loc[g["gpu"] == "L40S", "n_gpus"] <= 8).all() and (g.loc[g["gpu"] == "H100-SXM-80GB", "n_gpus"] > 8).any()


def test_objective_matches_estimate_and_marks_fits():
    s = spaces.training("Llama-3.1-8B", ["H100"], max_gpus=64, global_batch=256, seq_len=4096)
    g = s.grid().head(500)
    obj = training_objective("Llama-3.1-8B", seq_len=4096, global_batch=256, tokens=1e12)
    out = obj(g)
    assert len(out) == len(g) and set(out["fits"].unique()) <= {0.0, 1.0}
    assert (out["gpus"].to_numpy() == g["n_gpus"].to_numpy()).all()
    r = g.iloc[7]
    e = estimate("Llama-3.1-8B", r.gpu, r.n_gpus, tp=r.tp, pp=r.pp, cp=r.cp, vp=r.vp, zero_stage=r.zero_stage,
                 recompute=r.recompute, micro_batch=r.micro_batch, precision=r.precision, seq_len=4096,
                 global_batch=256, tokens=1e12).iloc[0]
    assert out.iloc[7]["time_to_train_h"] == pytest.approx(e.time_to_train_h)
    assert obj.constraints == {"fits": (">=", 1.0)}


def test_flagship_study_runs_and_its_front_fits(tmp_path):
    spec = dse.load_study_file(ROOT / "studies" / "llm_training.py")
    study = spec.run(f"sqlite:///{tmp_path / 'llm_training.db'}", progress=False)
    front = study.pareto()
    assert len(front) >= 3
    assert (front["fits"] == 1.0).all() and (front["mem_per_gpu_gib"] > 0).all()
    # more GPUs on the front buy a shorter run
    f = front.sort_values("gpus")
    assert f.groupby("gpus")["time_to_train_h"].min().is_monotonic_decreasing


def test_moe_space_with_uneven_stages_evaluates_every_point():
    s = spaces.training("DeepSeek-V3", ["H100", "B200"], max_gpus=2048, n_gpus=[1024, 2048], global_batch=4096,
                        seq_len=4096, uneven_pp=True, zero_stages=(1,), recompute=("full",), micro_batches=(1,),
                        precisions=("fp8-block",), vp=(1,))
    g = s.grid()
    assert (g["pp"] == 16).any() and (g["ep"] > 1).any()
    out = training_objective("DeepSeek-V3", seq_len=4096, global_batch=4096, tokens=14.8e12, uneven_pp=True)(g)
    assert len(out) == len(g) and out["fits"].sum() > 0
    with pytest.raises(dse.SpaceError, match=r"pass uneven_pp=True"):
        spaces.training("DeepSeek-V3", ["H100"], global_batch=4096, seq_len=4096, pp=[16])


def test_hybrid_sharding_is_a_choice_active_only_with_zero_3():
    s = spaces.training("Llama-3.1-8B", ["H100"], max_gpus=256, n_gpus=[64, 256], global_batch=256, seq_len=4096,
                        zero_stages=(1, 3, "hybrid_shard"), recompute=("selective",), micro_batches=(1,), vp=(1,),
                        precisions=("bf16",))
    g = s.grid()
    assert g.loc[g["zero_stage"] == 1, "hybrid_shard"].isna().all()
    assert set(g.loc[g["zero_stage"] == 3, "hybrid_shard"]) == {False, True}
    out = training_objective("Llama-3.1-8B", seq_len=4096, global_batch=256, tokens=1e12)(g)
    r = g[(g["hybrid_shard"] == True) & (g["n_gpus"] == 256)].iloc[0]  # noqa: E712
    e = estimate("Llama-3.1-8B", r.gpu, r.n_gpus, tp=r.tp, pp=r.pp, cp=r.cp, zero_stage="hybrid_shard",
                 recompute="selective", micro_batch=1, seq_len=4096, global_batch=256, tokens=1e12).iloc[0]
    assert out.loc[r.name, "time_to_train_h"] == pytest.approx(e.time_to_train_h)
    f = estimate("Llama-3.1-8B", r.gpu, r.n_gpus, tp=r.tp, pp=r.pp, cp=r.cp, zero_stage=3,
                 recompute="selective", micro_batch=1, seq_len=4096, global_batch=256, tokens=1e12).iloc[0]
    assert e.mem_per_gpu_gib > f.mem_per_gpu_gib      # replicas hold more than a full shard
    # only hybrid: zero_stage 3 rows are all hybrid
    h = spaces.training("Llama-3.1-8B", ["H100"], max_gpus=64, global_batch=256, seq_len=4096,
                        zero_stages=("hybrid_shard",)).grid()
    assert (h["zero_stage"] == 3).all() and (h["hybrid_shard"] == True).all()  # noqa: E712
    with pytest.raises(dse.SpaceError, match=r"\['hsdp2'\] not allowed .* valid: \[0, 1, 2, 3, 'hybrid_shard'\]"):
        spaces.training("Llama-3.1-8B", ["H100"], global_batch=256, seq_len=4096, zero_stages=(1, "hsdp2"))
