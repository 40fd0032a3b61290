"""studies/*.py: every study file runs into a temporary database and yields a non-empty feasible front; the
flagship through the real CLI (`dse run` and `python studies/llm_serving.py`) in a subprocess, which is its run here:
the same checks of its front as the other studies', on the study that run stored (one flagship run, not two)."""
import sys

import pytest

import dse
from tests.helpers import ROOT, FlagshipRun, run_command, studies_state

STUDIES = sorted((ROOT / "studies").glob("*.py"))


def test_the_four_studies_exist():
    assert {p.stem for p in STUDIES} >= {"llm_serving", "moe_serving", "gpu_mix", "quantization_tradeoff"}


def _check_front(spec: dse.StudySpec, study: dse.Study, out: str) -> None:
    """A study's stored front: non-empty, feasible, within its constraints, its objective recorded; a study that
    confirms its front in simulation (`out`: what its run printed) shows the simulated values."""
    front = study.pareto()
    assert len(front) >= 1
    assert front["feasible"].astype(bool).all()
    for metric, (op, bound) in study.constraints.items():
        v = front[metric].astype(float)
        assert {"<=": (v <= bound), ">=": (v >= bound), "==": (v == bound)}[op].all(), metric
    # provenance: the cost model that produced the trials is recorded under its own name
    from dse.objective import objective_info
    assert study.meta["objective"]["name"] == objective_info(spec.evaluate)["name"] != ""
    if spec.show:
        assert set(spec.show) <= set(front.columns)
    assert spec.name in set(dse.list_studies(study.storage_url)["name"])
    if spec.name in ("llm_serving", "moe_serving", "quantization_tradeoff"):   # fronts confirmed by simulation
        assert (front["fidelity"] == "simulated").all() and (front["confirm_reason"] == "").all()
        assert (spec.evaluate.objective.at_fidelity("simulated").slo.constraints.keys() <= set(front.columns))
        if spec.name != "quantization_tradeoff":
            assert "front confirmed in simulation" in out
            # and how far the analytical screen was from the simulator on that front (issue 14's front gap)
            assert f"analytical vs simulated on the front's {len(front)} simulated points" in out
    if spec.name == "gpu_mix":   # its after-step simulates the cheapest mix and the best single type
        assert "simulated cost: mix" in out and "best single type" in out


#: the flagship (studies/llm_serving.py) runs once, through the CLI (test_flagship_through_the_cli)
IN_PROCESS = [p for p in STUDIES if p.stem != "llm_serving"]


@pytest.mark.parametrize("path", IN_PROCESS, ids=[p.stem for p in IN_PROCESS])
def test_study_runs_and_has_a_feasible_front(path, tmp_path, capsys):
    spec = dse.load_study_file(path)
    assert spec.space.size > 1000, "a study should explore a real space"
    before = studies_state()
    study = spec.run(f"sqlite:///{tmp_path / 'study.db'}", progress=False)
    _check_front(spec, study, capsys.readouterr().out)
    # the study lands in the temporary folder, and this run wrote nothing into the repository's studies/ (files a
    # user's earlier `dse run` left there are no concern of this test, so compare before and after)
    assert study.storage_url == f"sqlite:///{tmp_path / 'study.db'}"
    assert studies_state() == before


def test_flagship_through_the_cli(flagship_run: FlagshipRun):
    # `dse run` on a copy of the study file (the session's one flagship run: tests.conftest.flagship_run), so that
    # the report the CLI writes beside it lands in a temporary folder
    study_file, db, r = flagship_run.study_file, flagship_run.db, flagship_run.result
    assert r.returncode == 0, r.stderr
    assert flagship_run.studies_after == flagship_run.studies_before
    out = r.stdout
    assert "study 'llm_serving'" in out and "feasible; front of" in out
    header = next(line for line in out.splitlines() if "tok_s_per_gpu" in line and "gpu" in line)
    for col in ("gpu", "n_gpus", "tp", "weight_dtype", "max_batch_size", "tok_s_per_user", "usd_per_mtok"):
        assert col in header.split()
    # the front keeps the analytical objectives beside simulated SLO metrics: the table says which is which, and
    # shows the simulated tokens/s per user beside the analytical one
    assert "tok_s_per_user_simulated" in header.split()
    assert ("front checked at fidelity 'simulated': tok_s_per_gpu, tok_s_per_user, usd_per_mtok: screening values "
            "(the simulated ones in tok_s_per_gpu_simulated, tok_s_per_user_simulated, usd_per_mtok_simulated); "
            "ttft_ms_p99, tpot_ms_p99: simulated values") in out
    assert (flagship_run.folder / "llm_serving.html").stat().st_size > 10_000
    assert db.exists()
    study = dse.load_study("llm_serving", storage=f"sqlite:///{db}")
    assert study.storage_url == f"sqlite:///{db}"
    assert len(study.pareto()) >= 3
    spec = dse.load_study_file(study_file)
    assert spec.space.size > 1000, "a study should explore a real space"
    assert study.summary()["grid"]["n_points"] == spec.space.size
    _check_front(spec, study, out)   # what test_study_runs_and_has_a_feasible_front checks of the other studies
    # `python studies/llm_serving.py` does the same through dse.cli (the finished study is reopened, not redone)
    r2 = run_command([sys.executable, str(study_file), "--storage", f"sqlite:///{db}", "--no-progress",
                      "--no-report"], flagship_run.folder)
    assert r2.returncode == 0, r2.stderr
    assert header in r2.stdout


def test_flagship_space_holds_no_unchunked_budget_below_the_longest_request():
    # max_num_tokens=2048 without chunked prefill for 2,048 + 256-token requests was in the grid: `dse deploy`
    # (vLLM) refuses it, the screen rated it ~10 req/s and the simulator under 1 (15 front points left in
    # confirmation with p99 TTFT ~2,000 s)
    spec = dse.load_study_file(ROOT / "studies" / "llm_serving.py")
    g = spec.space.grid()
    w = spec.evaluate.workload
    unchunked = g[g["chunked_prefill"] == False]  # noqa: E712
    assert len(unchunked) and (unchunked["max_num_tokens"] >= w.input_len + w.output_len).all()
