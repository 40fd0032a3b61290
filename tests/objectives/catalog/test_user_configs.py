"""A user's own checkpoint configs (issue 13 item 5): a checkpoint directory, and configs broken the way real ones
are. Every bad value fails with `CatalogError` naming the field; nothing is silently costed as something else."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from objectives import catalog, inference
from objectives.catalog import CatalogError
from tests.conftest import fresh_catalog

#: a made-up dense GQA decoder (not in the catalog)
DENSE = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 5120,
         "intermediate_size": 17408, "num_hidden_layers": 48, "num_attention_heads": 40, "num_key_value_heads": 8,
         "head_dim": 128, "vocab_size": 131072, "max_position_embeddings": 131072, "tie_word_embeddings": False,
         "_name_or_path": "acme/Acme-24B-Instruct"}
#: a made-up MoE decoder (Qwen3-MoE layout)
MOE = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 3072,
       "intermediate_size": 8192, "moe_intermediate_size": 1024, "num_experts": 96, "num_experts_per_tok": 6,
       "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
       "vocab_size": 151936, "decoder_sparse_step": 1, "mlp_only_layers": []}
#: a made-up Gemma-3 text model
GEMMA3 = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 2560,
          "intermediate_size": 10240, "num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4,
          "head_dim": 256, "vocab_size": 262208, "sliding_window": 1024, "sliding_window_pattern": 6}
NVFP4 = {"producer": {"name": "modelopt", "version": "0.31.0"},
         "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8", "group_size": 16,
                          "exclude_modules": ["lm_head"]}}


@pytest.fixture(autouse=True)
def _own_default_catalog(monkeypatch):
    """Each test registers its models (paths, own configs) in a copy of the default catalog, not the session's."""
    from objectives.catalog import store
    monkeypatch.setattr(store, "_default", store.default_catalog().copy())


def _checkpoint(tmp_path: Path, cfg: dict, quant: dict | None = None, name: str = "ckpt") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    if quant is not None:
        (d / "hf_quant_config.json").write_text(json.dumps(quant))
    return d


def test_a_checkpoint_directory_reads_its_config_and_hf_quant_config(tmp_path):
    d = _checkpoint(tmp_path, DENSE, NVFP4)
    m = catalog.model_from_hf_config(d)
    assert (m.name, m.n_layers, m.n_kv_heads) == ("acme/Acme-24B-Instruct", 48, 8)
    assert (m.quant_weight_dtype, m.quant_scheme, m.quant_kv_dtype) == ("fp4", "nvfp4", "fp8")
    # the config.json path of that checkpoint reads the hf_quant_config.json beside it too, as the engines do
    assert catalog.model_from_hf_config(d / "config.json") == m
    # an explicit hf_quant_config wins over the one in the folder
    fp8 = {"quantization": {"quant_algo": "FP8"}}
    assert catalog.model_from_hf_config(d, hf_quant_config=fp8).quant_scheme == "fp8_per_tensor"
    # without one the checkpoint is unquantized
    plain = catalog.model_from_hf_config(_checkpoint(tmp_path, DENSE, name="plain"))
    assert plain.quant_weight_dtype == ""
    r = inference.estimate(model=m, gpu=["H200", "B200"], tp=2, batch_size=16, input_len=2048, output_len=256)
    assert list(r["weight_dtype"]) == ["fp4", "fp4"] and r["fits"].all()


def test_a_folder_without_config_json_names_what_it_looked_for(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match=r"no config\.json in .*empty"):
        catalog.model_from_hf_config(tmp_path / "empty")


@pytest.mark.parametrize("cfg,edit,field", [
    (DENSE, {"tie_word_embeddings": "false"}, "tie_word_embeddings"),   # a string is not a flag ("false" is truthy)
    (DENSE, {"head_dim": 128.5}, "head_dim"),                           # not silently truncated to 128
    (DENSE, {"max_position_embeddings": "big"}, "max_position_embeddings"),
    (DENSE, {"num_key_value_heads": 2.5}, "num_key_value_heads"),
    (MOE, {"decoder_sparse_step": 0}, "decoder_sparse_step"),            # every 0th layer: HF divides by it
    (MOE, {"num_experts_per_tok": 200}, "top_k"),                        # more experts per token than experts
    (GEMMA3, {"sliding_window_pattern": 0}, "sliding_window_pattern"),  # was a ZeroDivisionError
    (GEMMA3, {"sliding_window": -4}, "sliding_window"),
])
def test_bad_values_name_the_field(cfg, edit, field):
    bad = {**copy.deepcopy(cfg), **edit}
    with pytest.raises(CatalogError, match=field):
        catalog.model_from_hf_config(bad)
    # the same config, unbroken, reads
    catalog.model_from_hf_config(cfg)


def test_a_record_built_by_hand_is_checked_before_it_is_costed():
    import dataclasses
    m = catalog.model_from_hf_config(MOE, name="made-up-moe")
    bad = dataclasses.replace(m, top_k=200)
    with pytest.raises(CatalogError, match="top_k"):
        inference.estimate(model=bad, gpu="H200", tp=1, batch_size=1, input_len=128, output_len=16)


def test_a_study_of_a_registered_model_runs_in_worker_processes(tmp_path):
    """A model registered from the user's config.json in the study file's process is costed in the study's
    worker processes too (they start with the shipped catalog only): the objective carries its record."""
    import dse
    import spaces
    from objectives import llm_serving_objective

    cat = catalog.default_catalog()
    m = cat.register_model(catalog.model_from_hf_config({**DENSE, "_name_or_path": "acme/Acme-24B-u13"}),
                           overwrite=True)
    space = spaces.llm_serving(m.name, ["H200-SXM-141GB"], max_gpus=2, input_len=1024)
    ev = llm_serving_objective(m.name, workload={"concurrency": 8, "input_len": 1024, "output_len": 128})
    study = dse.create_study("own", space=space, objectives={"tok_s_per_gpu": "max"},
                             storage=f"sqlite:///{tmp_path / 'own.db'}")
    study.optimize(ev, optimizer="random", n_trials=8, n_jobs=2, batch_size=4, seed=0)
    t = study.trials
    assert (t["state"] == "complete").all(), t["error"].dropna().head(1).tolist()


def test_a_llama_config_with_sliding_layers_is_costed_with_its_window():
    """vLLM's Llama reads `layer_types`: the window layers cache `sliding_window` tokens, not the whole context."""
    types = ["sliding_attention", "sliding_attention", "full_attention"] * 16
    m = catalog.model_from_hf_config({**DENSE, "layer_types": types, "sliding_window": 4096}, name="swa-llama")
    assert (m.sliding_window, m.n_sliding_layers) == (4096, 32)
    full = catalog.model_from_hf_config(DENSE, name="full-llama")
    kw = dict(gpu="H200", tp=1, batch_size=1, input_len=65536, output_len=16, engine="roofline")
    assert (inference.estimate(model=m, **kw)["kv_cache_gib"].iloc[0]
            < 0.5 * inference.estimate(model=full, **kw)["kv_cache_gib"].iloc[0])
    with pytest.raises(CatalogError, match="layer_types"):
        catalog.model_from_hf_config({**DENSE, "layer_types": ["chunked_attention"] * 48, "sliding_window": 4096})
    with pytest.raises(CatalogError, match="sliding_window"):
        catalog.model_from_hf_config({**DENSE, "layer_types": types})


def test_a_checkpoint_path_is_a_model_name_everywhere(tmp_path):
    """The path of a config.json or of a checkpoint folder names the model in every API that takes a name (the
    catalog registers it under that path, without the config's Hub id, which may name a shipped model)."""
    from objectives import llm_serving_objective, serving

    d = _checkpoint(tmp_path, {**DENSE, "_name_or_path": "meta-llama/Llama-3.1-8B"}, NVFP4)
    m = catalog.model(str(d))
    assert m.name == str(d) and m.n_layers == 48 and m.quant_scheme == "nvfp4"
    assert catalog.model(str(d / "config.json")).n_layers == 48
    assert catalog.model("meta-llama/Llama-3.1-8B").n_layers == 32      # the shipped model keeps its id
    r = inference.estimate(model=str(d), gpu="B200", tp=2, batch_size=8, input_len=1024, output_len=64)
    assert r["model"].iloc[0] == str(d) and r["weight_dtype"].iloc[0] == "fp4"
    wl = serving.Workload(concurrency=2, input_len=256, output_len=16, n_requests=8)
    assert serving.simulate(str(d), "B200", tp=2, workload=wl)["tpot_ms_mean"] > 0
    assert llm_serving_objective(str(d)).model == str(d)
    with pytest.raises(CatalogError, match="unknown model"):
        catalog.model(str(tmp_path / "nowhere"))


def test_a_local_folder_named_like_a_shipped_model_is_read_from_its_own_config(tmp_path):
    d = tmp_path / "models" / "Llama-3.1-8B"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({**DENSE, "num_hidden_layers": 20}))
    assert catalog.model(str(d)).n_layers == 20
    assert catalog.model("Llama-3.1-8B").n_layers == 32


@pytest.mark.parametrize("hub_id,base,dtype,scheme", [
    ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "Llama-3.1-70B", "int4", "int4_awq"),
    ("unsloth/Llama-3.1-8B-Instruct-bnb-4bit", "Llama-3.1-8B", "int4", "bnb_4bit"),
    ("someone/Qwen3-8B-bnb-8bit", "Qwen3-8B", "int8", "bnb_int8"),
])
def test_quantized_release_ids_with_compound_format_tags(hub_id, base, dtype, scheme):
    m = fresh_catalog().model(hub_id)
    ref = catalog.model(base)
    assert (m.quant_weight_dtype, m.quant_scheme) == (dtype, scheme)
    assert (m.n_layers, m.hidden, m.n_kv_heads) == (ref.n_layers, ref.hidden, ref.n_kv_heads)


@pytest.mark.parametrize("name", ["Qwen/Qwen3-4B", "microsoft/phi-4", "acme/NoSuchModel-FP8"])
def test_an_unknown_model_says_a_config_json_path_names_it(name, tmp_path):
    """A model the catalog does not ship (Qwen3-4B, phi-4, ...) is costed from its config.json: the error says so,
    and the path it suggests works."""
    with pytest.raises(catalog.CatalogError, match=r"unknown model .*config\.json"):
        fresh_catalog().model(name)
    d = tmp_path / name.split("/")[1]
    d.mkdir()
    (d / "config.json").write_text(json.dumps(DENSE))
    assert fresh_catalog().model(str(d)).n_layers == DENSE["num_hidden_layers"]


def test_a_training_study_of_a_registered_model_runs_in_worker_processes(tmp_path):
    """The training objective (and every other objective naming its model: `catalog.carry.CarriesModel`) carries
    a model registered at run time into the study's worker processes, as the serving objective does; it kept the
    name only, and each worker's shipped catalog did not know it."""
    import pickle

    import dse
    import spaces
    from objectives import mix, serving
    from objectives.catalog.carry import CarriesModel
    from objectives.llm_serving import LLMServingObjective
    from objectives.training import training_objective
    from objectives.training.objective import TrainingObjective

    cat = catalog.default_catalog()
    m = cat.register_model(catalog.model_from_hf_config({**DENSE, "_name_or_path": "acme/Acme-24B-train"}),
                           overwrite=True)
    space = spaces.training(m.name, ["H100"], max_gpus=16, global_batch=64, seq_len=4096, n_gpus=[8, 16],
                            tp=[1, 2, 4], pp=[1], cp=[1], ep=[1], vp=[1], micro_batches=[1])
    ev = training_objective(m.name, seq_len=4096, global_batch=64, tokens=1e9)
    study = dse.create_study("own-train", space=space, objectives={"time_to_train_h": "min"},
                             storage=f"sqlite:///{tmp_path / 'own.db'}")
    study.optimize(ev, optimizer="random", n_trials=6, n_jobs=2, batch_size=3, seed=0)
    t = study.trials
    assert len(t) == 6 and (t["state"] == "complete").all(), t["error"].dropna().head(1).tolist()
    assert t["time_to_train_h"].notna().all() and ev.record == m
    # one helper: every objective that names a model carries it the same way
    for cls in (TrainingObjective, LLMServingObjective, mix.MixObjective):
        assert issubclass(cls, CarriesModel)
    mo = mix.MixObjective(m.name, serving.Workload(rate=1.0, input_len=512, output_len=64, n_requests=50),
                          serving.SLO(ttft_ms=2000, tpot_ms=100), ["H100"])
    assert mo.record == m
    # a record passed as the model itself pickles as it is: nothing to carry
    assert training_objective(m, seq_len=4096, global_batch=64, tokens=1e9).record is None
    # in a fresh catalog (a worker's) the unpickled objective registers the record it carries
    blob = pickle.dumps(ev)
    catalog.store._default = None
    try:
        with pytest.raises(CatalogError):
            catalog.model(m.name)
        back = pickle.loads(blob)
        assert catalog.model(m.name) == m and back.record == m
    finally:
        catalog.store._default = cat


def test_a_yarn_rope_scaling_serves_the_scaled_context(tmp_path):
    """A config that states yarn RoPE scaling (Qwen's long-context recipe: factor 4 over 32,768 positions) serves
    original_max_position_embeddings x factor, as vLLM derives it (`_get_and_verify_max_len`), in the record and in
    what the cost model checks a request against; llama3 scaling, which vLLM does not apply, and a yarn below the
    stated max_position_embeddings leave it as stated."""
    short = {**DENSE, "max_position_embeddings": 32768, "_name_or_path": "acme/Acme-24B-yarn"}
    yarn = {**short, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
    m, base = (catalog.model_from_hf_config(_checkpoint(tmp_path, c, name=n)) for n, c in (("y", yarn), ("s", short)))
    assert (m.max_position, base.max_position) == (131072, 32768)
    # the older "type" spelling and transformers v5's rope_parameters read alike
    old = {**short, "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
    v5 = {**short, "rope_parameters": yarn["rope_scaling"]}
    assert {catalog.model_from_hf_config(_checkpoint(tmp_path, c, name=n)).max_position
            for n, c in (("o", old), ("v", v5))} == {131072}
    df = inference.estimate([m, base], gpu="H200", tp=2, batch_size=1, input_len=65536, output_len=1024)
    assert df["fits"].tolist() == [True, False]
    llama3 = {**short, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0}}
    below = {**DENSE, "rope_scaling": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}}
    assert [catalog.model_from_hf_config(_checkpoint(tmp_path, c, name=n)).max_position
            for n, c in (("l3", llama3), ("b", below))] == [32768, 131072]


def test_rope_context_per_layer_type_and_dynamic():
    """`_rope_context` with one RoPE entry per layer type (transformers v5's nested rope_parameters) and a
    "dynamic" type: as vLLM's `_get_and_verify_max_len` (vllm/config/model.py), the last layer type's factor wins
    (it assumes they agree), a type without a factor ("default") keeps the one before, a yarn entry scales its
    original_max_position_embeddings, llama3 / longrope entries are skipped; "dynamic" multiplies the context."""
    from objectives.catalog.hf_config import _rope_context
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert _rope_context({"rope_parameters": {"full_attention": yarn, "sliding_attention": {"rope_type": "default"}}},
                         "qwen3", 32768) == 131072
    two = {"full_attention": {"rope_type": "linear", "factor": 2.0},
           "sliding_attention": {"rope_type": "linear", "factor": 4.0}}
    assert _rope_context({"rope_parameters": two}, "x", 4096) == 16384
    assert _rope_context({"rope_parameters": dict(reversed(list(two.items())))}, "x", 4096) == 8192
    assert _rope_context({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "llama", 4096) == 8192
    assert _rope_context({"rope_parameters": {"full_attention": {"rope_type": "llama3", "factor": 8.0},
                                              "sliding_attention": {"rope_type": "longrope", "factor": 4.0}}},
                         "x", 8192) == 8192
    assert _rope_context({"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, "gemma3_text", 4096) == 4096


def test_mixer_layers_interval_fallback_and_other_hybrids():
    """`_mixer_layers`: a Gated DeltaNet hybrid without `layer_types` reads its softmax layers off
    `full_attention_interval` (every 4th: 3, 7); a plain transformer's every layer is attention; a hybrid of
    another kind (KDA) gives None (its modules' paths are not read)."""
    from objectives.catalog.hf_config import _mixer_layers
    gdn = {"n_layers": 8, "n_linear_attn_layers": 6, "linear_attn_kind": "gdn"}
    assert _mixer_layers({"full_attention_interval": 4}, "qwen3_next", gdn) == ([3, 7], [0, 1, 2, 4, 5, 6])
    assert _mixer_layers({}, "llama", {"n_layers": 3}) == ([0, 1, 2], [])
    assert _mixer_layers({}, "kimi_linear", {**gdn, "linear_attn_kind": "kda"}) is None
