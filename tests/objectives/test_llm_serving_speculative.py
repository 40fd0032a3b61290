"""Speculative decoding as a study knob: `llm_serving_objective`'s ``speculative`` (defaults and column),
`spaces.llm_serving(speculative=)`, per row through the analytical serving model and the simulated confirmation."""
import numpy as np
import pandas as pd
import pytest

import dse
import objectives
import spaces
from dse import ObjectiveError, SpaceError
from objectives import serving
from objectives.inference import Speculative
from objectives.serving.analytical import Deployments, ServingModel

MTP_MODEL = "MiMo-7B-Base"       # a small dense model whose config declares an MTP module
WORKLOAD = dict(rate=2.0, input_len=1000, output_len=200)
SLO = dict(ttft_ms=5000, tpot_ms=200)


def _space(model=MTP_MODEL, **kw):
    return spaces.llm_serving(model, ["H100"], 1, formats=["bf16"], kv_dtypes=["bf16"], max_batch_sizes=(64,),
                              max_num_tokens=(8192,), chunked_prefill=(True,), engines=["vllm"], **kw)


def test_a_study_row_with_it_on_decodes_faster_at_high_acceptance_and_slower_at_none(tmp_path):
    space = _space(speculative=[None, Speculative("mtp", 3, (0.9,)), "mtp:3:0"])
    assert space.params["speculative"].choices == ("off", "mtp:3:0.9", "mtp:3:0")
    obj = objectives.llm_serving_objective(MTP_MODEL, WORKLOAD, SLO)
    study = dse.create_study("spec", space, {"tok_s_per_user": "max", "usd_per_mtok": "min"},
                             constraints=obj.constraints, storage=f"sqlite:///{tmp_path / 's.db'}")
    study.optimize(obj, optimizer="grid", progress=False)
    t = study.trials.set_index("speculative")   # the knob is a stored parameter, as its label
    assert set(t.index) == {"off", "mtp:3:0.9", "mtp:3:0"}
    tpot = t["tpot_ms"].astype(float)
    assert tpot["mtp:3:0.9"] < tpot["off"] < tpot["mtp:3:0"]
    assert (t["fits"].astype(float) == 1).all()
    # the draft layer's weights and KV are held beside the model's
    mem = t["mem_per_gpu_gib"].astype(float)
    assert mem["mtp:3:0.9"] > mem["off"]


def test_rows_without_it_are_priced_as_before_in_a_mixed_batch():
    """Off rows go the path they went before (bit-identical), also beside rows with the knob on; each value's
    rows are priced together and come back in the batch's order."""
    obj = objectives.llm_serving_objective(MTP_MODEL, WORKLOAD, SLO, defaults={"gpu": "H100", "engine": "vllm"})
    base = pd.DataFrame({"max_batch_size": [16, 64, 32]})
    plain = obj(base)
    mixed = obj(base.assign(speculative=["mtp:2:0.8", None, "off"]))
    for c in ("ttft_ms", "tpot_ms", "throughput_tok_s", "mem_per_gpu_gib", "usd_per_mtok"):
        np.testing.assert_array_equal(mixed[c].to_numpy()[1:], plain[c].to_numpy()[1:])
    assert mixed["tpot_ms"][0] < plain["tpot_ms"][0]
    # one value per call reaches `max_throughput` as its own argument
    sm = ServingModel(MTP_MODEL, serving.Workload(**WORKLOAD))
    one = sm.evaluate(Deployments.of(gpu="H100", engine="vllm", max_batch_size=16,
                                     speculative=Speculative("mtp", 2, (0.8,))))
    assert one["tpot_ms"][0] == mixed["tpot_ms"][0]


def test_defaults_and_columns_refuse_what_the_model_cannot_run():
    with pytest.raises(ObjectiveError, match="Llama-3.1-8B.*n_mtp_layers"):
        objectives.llm_serving_objective("Llama-3.1-8B", defaults={"speculative": "mtp:2:0.7"})
    with pytest.raises(ObjectiveError, match="defaults speculative"):
        objectives.llm_serving_objective(MTP_MODEL, defaults={"speculative": "mtp:0:0.7"})
    with pytest.raises(ObjectiveError, match="defaults speculative"):
        objectives.llm_serving_objective(MTP_MODEL, defaults={"speculative": 3})
    obj = objectives.llm_serving_objective("Llama-3.1-8B", WORKLOAD, SLO, defaults={"gpu": "H100"})
    with pytest.raises(ObjectiveError, match="Model.n_mtp_layers 0"):
        obj(pd.DataFrame({"speculative": ["mtp:2:0.7"]}))
    # an EAGLE head runs on any model; a mapping of the fields reads as the dataclass
    on = objectives.llm_serving_objective("Llama-3.1-8B", WORKLOAD, SLO, defaults={
        "gpu": "H100", "speculative": {"method": "eagle", "draft_tokens": 2, "acceptance": [0.8, 0.6]}})
    off = objectives.llm_serving_objective("Llama-3.1-8B", WORKLOAD, SLO, defaults={"gpu": "H100"})
    row = pd.DataFrame({"max_batch_size": [32]})
    assert on(row)["tpot_ms"][0] < off(row)["tpot_ms"][0]


def test_space_refuses_mtp_without_the_module_and_bad_values():
    with pytest.raises(SpaceError, match="Llama-3.1-8B.*Model.n_mtp_layers 0"):
        _space("Llama-3.1-8B", speculative=[None, "mtp:2:0.7"])
    with pytest.raises(SpaceError, match="in \\[0, 1\\]"):
        _space(speculative=[None, {"method": "eagle", "acceptance": [1.5]}])
    with pytest.raises(SpaceError, match="sequence"):
        _space(speculative=Speculative("mtp", 1, (0.8,)))
    assert _space("Llama-3.1-8B", speculative=["eagle:2:0.7", None]).params["speculative"].choices == \
        ("eagle:2:0.7", "off")


def test_the_label_reads_back_as_the_knob():
    s = Speculative("mtp", 3, (0.8, 0.6, 0.4))
    from objectives.inference.speculative import as_speculative
    assert s.label == "mtp:3:0.8,0.6,0.4" and as_speculative(s.label) == s
    assert Speculative("eagle", 2, (0.7,)).label == "eagle:2:0.7"
    assert as_speculative("off") is None and as_speculative(float("nan")) is None
    with pytest.raises(ValueError, match="method:draft_tokens:acceptance"):
        as_speculative("mtp-3")


def test_the_simulated_confirmation_runs_it():
    """The simulated fidelity passes each row's value to `serving.simulate(speculative=)`: TPOT follows it."""
    obj = objectives.llm_serving_objective(MTP_MODEL, dict(concurrency=8, input_len=1000, output_len=200),
                                           SLO, fidelity="simulated", n_requests=48,
                                           defaults={"gpu": "H100", "engine": "vllm", "max_batch_size": 64})
    out = obj(pd.DataFrame({"speculative": ["off", "mtp:3:0.9", "mtp:3:0"]}))
    assert (out["fits"] == 1).all()
    t = out["tpot_ms"].to_numpy(float)
    assert t[1] < t[0] < t[2]
    ana = obj.at_fidelity("analytical")(pd.DataFrame({"speculative": ["mtp:3:0.9"]}))
    assert t[1] == pytest.approx(float(ana["tpot_ms"][0]), rel=0.25)
