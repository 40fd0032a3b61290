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
    assert objective_info(ev)["version"] == f"2+data.{provenance.data_digest(provenance.SERVING_DATA)}"
    tr = training_objective("Llama-3.1-8B", seq_len=4096, global_batch=256, tokens=1e9)
    assert objective_info(tr)["version"].endswith(f"+data.{provenance.data_digest(provenance.TRAINING_DATA)}")
