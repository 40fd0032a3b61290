"""Every reader of a `layer_types` list checks it as the Llama and Gemma readers do: one known kind per layer.
gpt-oss counted "sliding_attention" entries whatever else the list held (or however short it was), so a layer kind
the model cannot cost came back as a full-attention layer: a silent wrong number."""
from __future__ import annotations

import json

import pytest

from objectives import catalog
from objectives.catalog.errors import CatalogError
from objectives.catalog.store import DATA_DIR

MODELS_DIR = DATA_DIR / "models"


def _gpt_oss() -> dict:
    return json.loads((MODELS_DIR / "gpt-oss-120b.json").read_text())


@pytest.mark.parametrize("types,expect", [
    (["chunked_attention"] * 36, "chunked_attention"),
    (["sliding_attention", "full_attention"] * 3, "got 6 entries"),
])
def test_gpt_oss_layer_types_name_what_cannot_be_costed(types, expect):
    cfg = dict(_gpt_oss(), layer_types=types)
    with pytest.raises(CatalogError) as e:
        catalog.model_from_hf_config(cfg, name="x")
    assert "layer_types" in str(e.value) and expect in str(e.value) and "GptOssForCausalLM" in str(e.value)


def test_the_shipped_gpt_oss_configs_read_as_before():
    for name in ("gpt-oss-120b", "gpt-oss-20b"):
        m = catalog.model(name)
        cfg = json.loads((MODELS_DIR / f"{name}.json").read_text())
        assert m.n_sliding_layers == sum(t == "sliding_attention" for t in cfg["layer_types"]) > 0


@pytest.mark.parametrize("rope,expect", [([1, 1, 1, 0] * 3, "12 entries"), ([1, 1, 2, 0] * 12, "[2]")])
def test_llama4_no_rope_layers_are_one_flag_per_layer(rope, expect):
    cfg = json.loads((MODELS_DIR / "Llama-4-Scout.json").read_text())
    cfg["text_config"] = dict(cfg["text_config"], no_rope_layers=rope)
    with pytest.raises(CatalogError) as e:
        catalog.model_from_hf_config(cfg, name="x")
    assert "no_rope_layers" in str(e.value) and expect in str(e.value), str(e.value)
    cfg["text_config"]["no_rope_layers"] = [1, 1, 1, 0] * 12   # what the default interval gives: accepted
    assert catalog.model_from_hf_config(cfg, name="x").n_sliding_layers == catalog.model("Llama-4-Scout").n_sliding_layers
