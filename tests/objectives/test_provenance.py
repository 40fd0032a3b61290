"""The data digest in an objective's version: it follows the shipped files a cost model reads."""
from __future__ import annotations

from objectives import provenance


def test_the_digest_changes_with_any_file_it_covers_and_not_with_others(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "a.npz").write_bytes(b"table")
    (tmp_path / "efficiency.json").write_text('{"k": 1}')
    (tmp_path / "fidelity.md").write_text("a report")
    monkeypatch.setattr(provenance, "DATA_DIR", tmp_path)
    digest = provenance.data_digest.__wrapped__
    parts = ("efficiency.json", "profiles")
    d0 = digest(parts)
    assert len(d0) == 12 and digest(parts) == d0
    (tmp_path / "fidelity.md").write_text("another report")        # not a file the model reads
    assert digest(parts) == d0
    (tmp_path / "profiles" / "a.npz").write_bytes(b"table, rebuilt")
    d1 = digest(parts)
    (tmp_path / "efficiency.json").write_text('{"k": 2}')
    assert len({d0, d1, digest(parts)}) == 3


def test_the_serving_and_training_objectives_carry_the_digest():
    from dse.evaluation import objective_info
    from objectives import llm_serving_objective
    from objectives.training import training_objective
    ev = llm_serving_objective("Llama-3.1-8B")
    assert objective_info(ev)["version"].startswith(f"2+data.{provenance.data_digest(provenance.SERVING_DATA)}+setup.")
    tr = training_objective("Llama-3.1-8B", seq_len=4096, global_batch=256, tokens=1e9)
    assert objective_info(tr)["version"].endswith(f"+data.{provenance.data_digest(provenance.TRAINING_DATA)}")


def test_the_objectives_declare_the_units_of_their_metrics_to_the_engine():
    """The engine's plots know generic units alone (ms, GiB, USD); tokens/s per GPU and USD per million tokens are
    the objectives' own, declared with their provenance (through a confirming wrapper too)."""
    from dse.evaluation import objective_info
    from dse.plot import unit_of
    from objectives import llm_serving_objective
    from objectives.metric_units import METRIC_UNITS
    from objectives.mix import MixObjective
    from objectives.training import training_objective

    want = [list(u) for u in METRIC_UNITS]
    ev = llm_serving_objective("Llama-3.1-8B")
    assert objective_info(ev)["units"] == want
    assert objective_info(ev.confirming({"tok_s_per_gpu": "max"}))["units"] == want
    assert objective_info(training_objective("Llama-3.1-8B", seq_len=4096, global_batch=256, tokens=1e9))["units"] == want
    assert MixObjective.dse_units == METRIC_UNITS
    assert [unit_of(m, METRIC_UNITS) for m in ("tok_s_per_gpu", "usd_per_mtok", "tflops_per_gpu", "tpot_ms")] == [
        "tokens/s per GPU", "USD per million tokens", "TFLOP/s per GPU", "ms"]


def test_a_calibrated_profile_is_named_with_its_hashes_in_the_study_provenance(tmp_path, capsys):
    """`llm_serving_objective(..., profile=f)`: the study's stored objective names the file, its bytes' sha256 and
    the factors' hash (the version carries the hash alone), through `.confirming` and a run too."""
    import hashlib
    import json

    import dse
    import spaces
    from dse.evaluation import objective_info
    from objectives import llm_serving_objective
    from objectives.inference.core import default_eff

    prof = tmp_path / "cal.json"
    factors = {"engine_ttft_ms.vllm": 12.5}
    assert default_eff().params["engine_ttft_ms"]["vllm"] != 12.5
    prof.write_text(json.dumps({"format": "dse-calibrated-profile/1", "factors": factors, "sha256": "ab" * 32}))
    ev = llm_serving_objective("Llama-3.1-8B", profile=str(prof), defaults={"gpu": "H200", "engine": "vllm"})
    # the factors' hash computed from the factors read (the recorded one is a stale copy once the file is edited)
    from objectives.calibration.calibrate import factors_sha256
    want = {"calibrated_profile": {"file": str(prof.resolve()), "file_sha256": hashlib.sha256(prof.read_bytes())
                                   .hexdigest(), "sha256": factors_sha256(factors)}}
    # (beside the objective's setup in words, `test_a_study_resumed_with_another_workload_is_refused_naming_it`)
    assert objective_info(ev)["inputs"]["calibrated_profile"] == want["calibrated_profile"]
    assert objective_info(ev.confirming({"tok_s_per_gpu": "max"}))["inputs"] == objective_info(ev)["inputs"]
    assert "calibrated_profile" not in objective_info(llm_serving_objective("Llama-3.1-8B"))["inputs"]
    space = spaces.llm_serving("Llama-3.1-8B", ["H200-SXM-141GB"], max_gpus=1, input_len=2048)
    study = dse.create_study("prov", space=space, objectives={"tok_s_per_gpu": "max"},
                             storage=f"sqlite:///{tmp_path / 'prov.db'}")
    study.optimize(ev, optimizer="random", n_trials=4, seed=0)
    assert dse.load_study("prov", storage=f"sqlite:///{tmp_path / 'prov.db'}").meta["objective"]["inputs"]["calibrated_profile"] == \
        want["calibrated_profile"]
    from dse.cli import main
    assert main(["show", "prov", "--storage", f"sqlite:///{tmp_path / 'prov.db'}"]) == 0
    assert f"input calibrated_profile: file={prof.resolve()}, file_sha256=" in capsys.readouterr().out


def test_the_serving_objectives_version_follows_its_model_workload_and_prices(tmp_path):
    """A study resumed with another workload (the study file's rate 8 -> 12 req/s) printed the old front, every
    number of it at 8 req/s, without a word: the objective's name and version were the same. The version now
    carries a digest of what the numbers depend on besides the shipped data, and its setup in words, so the engine
    refuses the resume naming the argument that changed (it only warned, and kept the old numbers on the front)."""
    import pytest

    import dse
    import spaces
    from dse.evaluation import objective_info
    from objectives import llm_serving_objective, serving

    def version(model="Llama-3.1-8B", **kw):
        return objective_info(llm_serving_objective(model, **kw))["version"]

    w = serving.Workload(rate=8.0, input_len=2048, output_len=256)
    base = version(workload=w)
    assert base == version(workload=serving.Workload(rate=8.0, input_len=2048, output_len=256))
    assert version(workload=w, fidelity="simulated") == base          # one model, two fidelities
    others = [version(workload=serving.Workload(rate=12.0, input_len=2048, output_len=256)),
              version(workload=serving.Workload(rate=8.0, input_len=1024, output_len=256)),
              version("Llama-3.1-70B", workload=w), version(workload=w, prices={"H100": 9.0}),
              version(workload=w, n_requests=500), version(workload=w, defaults={"engine": "sglang"})]
    assert len({base, *others}) == 1 + len(others)
    assert objective_info(llm_serving_objective("Llama-3.1-8B", workload=w).confirming(
        {"tok_s_per_gpu": "max"}))["version"] == base

    space = spaces.llm_serving("Llama-3.1-8B", ["H100-SXM-80GB"], max_gpus=1, input_len=2048)
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    study = dse.create_study("resume", space=space, objectives={"tok_s_per_gpu": "max"}, storage=url)
    study.optimize(llm_serving_objective("Llama-3.1-8B", workload=w), optimizer="random", n_trials=3, seed=0)
    with pytest.raises(dse.StudyError, match=r"holds 3 complete trials evaluated by .*inputs\.setup\.workload: "
                                             r"Workload\(concurrency=None, rate=8\.0.* -> .*rate=12\.0"):
        dse.load_study("resume", storage=url).optimize(
            llm_serving_objective("Llama-3.1-8B", workload=serving.Workload(rate=12.0, input_len=2048, output_len=256)),
            optimizer="random", n_trials=1, seed=1)
