"""Tests of objectives.catalog: sourced GPU data, model shapes, lookups, tables, registration."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import catalog
from objectives.catalog import CatalogError, model_math


def test_lookup_aliases_and_unknown_names():
    assert catalog.gpu("h100_sxm").name == "H100-SXM-80GB"
    assert catalog.gpu("H100").name == "H100-SXM-80GB"
    with pytest.raises(CatalogError, match="close matches: H100-SXM-80GB"):
        catalog.gpu("H1000")
    assert catalog.model("meta-llama/Meta-Llama-3.1-70B").name == "Llama-3.1-70B"
    assert catalog.model("meta-llama/Llama-3.1-70B-Instruct").name == "Llama-3.1-70B"


def test_param_counts():
    assert model_math.total_params(catalog.model("Llama-3.1-8B")) == pytest.approx(8.03e9, rel=0.02)
    assert model_math.total_params(catalog.model("Llama-3.1-70B")) == pytest.approx(70.6e9, rel=0.02)


def test_gpu_table_matches_lookup():
    names = np.array(["H100", "L40S", "a100", "H100"], dtype=object)
    t = catalog.gpu_table(names)
    assert list(t["name"]) == ["H100-SXM-80GB", "L40S", "A100-SXM-80GB", "H100-SXM-80GB"]
    assert t["peak_tflops_fp8"][2] == 0.0
