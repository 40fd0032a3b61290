"""Tests of objectives.catalog: sourced GPU data, model shapes from config.json, lookups, tables, registration."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objectives import catalog
from objectives.catalog import DATA_DIR, DTYPES, Catalog, CatalogError, model_math
from objectives.catalog.hf_config import CATALOG_KEYS

CAT = catalog.default_catalog()

REQUIRED_GPUS = [
    "A100-SXM-40GB", "A100-SXM-80GB", "A100-PCIe-80GB", "H100-SXM-80GB", "H100-PCIe-80GB", "H100-NVL",
    "H200-SXM-141GB", "GH200-96GB", "B200", "GB200", "B300", "GB300", "L40S", "L4", "A10G", "RTX-4090",
    "MI300X", "MI325X", "MI355X", "Gaudi3", "RTX-PRO-6000", "Arc-Pro-B60",
]
#: GPUs for which no public on-demand price was found: NaN price, documented in gpus.toml.
UNPRICED = {"GB300", "MI355X", "Gaudi3", "Arc-Pro-B60"}
REQUIRED_MODELS = [
    "Llama-2-7B", "Llama-2-13B", "Llama-2-70B", "Llama-3.1-8B", "Llama-3.1-70B", "Llama-3.1-405B", "Llama-3.3-70B",
    "Mistral-7B", "Mixtral-8x7B", "Mixtral-8x22B", "GPT-J-6B", "Falcon-180B", "Qwen3-8B", "Qwen3-32B",
    "Qwen3-30B-A3B", "Qwen3-235B-A22B", "gpt-oss-20b", "gpt-oss-120b", "DeepSeek-V3", "DeepSeek-R1",
]


# ------------------------------------------------------------------------------------------------ GPU data
def test_every_required_gpu_is_shipped():
    assert set(REQUIRED_GPUS) <= set(catalog.gpus())
    assert len(catalog.gpus()) >= 20


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_every_gpu_number_has_a_source_url(name):
    g = catalog.gpu(name)
    keys = [f"peak_tflops.{dt}" for dt in g.peak_tflops] + ["mem_gb", "mem_bw_tbs", "link_bw_gbs", "tdp_w"]
    if name not in UNPRICED:
        keys.append("price_usd_per_hour")
    if g.idle_w is not None:  # optional: a published idle reading (power model, issue 17)
        keys.append("idle_w")
    if g.mem_device_mib is not None:  # optional: the memory the driver reports
        keys.append("mem_device_mib")
    for k in keys:
        assert g.sources.get(k, "").startswith("https://"), (name, k, g.sources.get(k))
    sourced = catalog.gpu_sources(name)
    assert set(keys) == set(sourced)
    for k in keys:
        value = g.peak_tflops[k.split(".")[1]] if k.startswith("peak_tflops.") else getattr(g, k)
        assert sourced[k].value == pytest.approx(value)
    assert g.vendor in ("nvidia", "amd", "intel") and g.family and g.form_factor and g.link_type
    assert set(g.peak_tflops) <= set(DTYPES) and "bf16" in g.peak_tflops


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_prices_have_a_date_or_are_declared_unknown(name):
    g = catalog.gpu(name)
    if name in UNPRICED:
        assert math.isnan(g.price_usd_per_hour) and "price_usd_per_hour" not in g.sources
    else:
        assert 0.1 < g.price_usd_per_hour < 20
        assert re.fullmatch(r"20\d\d-\d\d", g.price_date), g.price_date
        note = catalog.gpu_sources(name)["price_usd_per_hour"].note
        assert "cloud price page" in note or "published comparison" in note or "cloud provider" in note


def test_sparse_datasheet_figures_were_halved():
    """Every note that quotes a "with sparsity" figure must sit beside half of it (dense)."""
    checked = 0
    for name in catalog.gpus():
        for key, s in catalog.gpu_sources(name).items():
            m = re.search(r"([\d,]+(?:\.\d+)?) with sparsity, halved", s.note)
            if m:
                sparse = float(m.group(1).replace(",", ""))
                assert s.value == pytest.approx(sparse / 2, rel=2e-3), (name, key, s)
                checked += 1
    assert checked > 40


def test_datasheet_numbers_are_mutually_consistent():
    for name in catalog.gpus():
        p = catalog.gpu(name).peak_tflops
        if "fp16" in p and "bf16" in p:  # Volta (V100) computes in fp16 only: it has no bf16 peak
            assert p["fp16"] == p["bf16"], name
        if "fp8" in p:
            assert p["fp8"] >= p["bf16"], name
        if "fp4" in p:
            assert p["fp4"] >= p["fp8"], name
        if "tf32" in p:
            assert p["tf32"] <= p["bf16"], name
    # families as the brief names them, and what the cost models rely on
    fam = {n: catalog.gpu(n).family for n in REQUIRED_GPUS}
    assert {fam["A100-SXM-80GB"], fam["H100-SXM-80GB"], fam["L40S"], fam["B200"], fam["B300"], fam["MI300X"],
            fam["MI355X"], fam["Gaudi3"]} == {"ampere", "hopper", "ada", "blackwell", "blackwell-ultra", "cdna3",
                                                "cdna4", "gaudi3"}
    assert not catalog.gpu("A100-SXM-80GB").supports("fp8") and catalog.gpu("H100").supports("fp8")
    assert not catalog.gpu("H100").supports("fp4") and catalog.gpu("B200").supports("fp4")
    assert catalog.gpu("H100").link_bw_gbs == 450  # NVLink 4: 900 GB/s both directions
    # capacity as the driver reports it (nvidia-smi 81,559 MiB), not the datasheet's "80 GB" read as 80e9 bytes
    assert catalog.gpu("H100").mem_gib == pytest.approx(81559 / 1024) and catalog.gpu("H100").mem_gb == 80
    assert catalog.gpu("MI300X").mem_device_mib is None                    # no driver report sourced: datasheet GB
    assert catalog.gpu("MI300X").mem_gib == pytest.approx(192e9 / 2**30)


# ------------------------------------------------------------------------------------------------ lookups
@pytest.mark.parametrize("alias,canonical", [
    ("H100", "H100-SXM-80GB"), ("h100_sxm", "H100-SXM-80GB"), ("h100-sxm5-80gb", "H100-SXM-80GB"),
    ("H100 SXM5 80GB", "H100-SXM-80GB"), ("h100-pcie", "H100-PCIe-80GB"), ("a100", "A100-SXM-80GB"),
    ("A100_40GB", "A100-SXM-40GB"), ("h200", "H200-SXM-141GB"), ("gh200", "GH200-96GB"), ("4090", "RTX-4090"),
    ("gaudi-3", "Gaudi3"), ("mi300x", "MI300X"), ("gb200_nvl72", "GB200"),
])
def test_gpu_aliases_resolve(alias, canonical):
    assert catalog.gpu(alias).name == canonical


@pytest.mark.parametrize("device,canonical", [
    ("NVIDIA H100 80GB HBM3", "H100-SXM-80GB"), ("NVIDIA B200", "B200"), ("NVIDIA GH200 480GB", "GH200-96GB"),
    ("NVIDIA H200", "H200-SXM-141GB"), ("NVIDIA A100-SXM4-40GB", "A100-SXM-40GB"), ("NVIDIA H100 NVL", "H100-NVL"),
    ("NVIDIA A100 80GB PCIe", "A100-PCIe-80GB"), ("AMD Instinct MI300X", "MI300X"),
    ("Tesla V100-SXM2-32GB", "V100-SXM2-32GB"), ("Intel(R) Arc(TM) Pro B60 Graphics", "Arc-Pro-B60"),
])
def test_device_names_as_drivers_print_them_resolve(device, canonical):
    # nvidia-smi --query-gpu=name, rocm-smi, torch.cuda.get_device_name / torch.xpu: the vendor, and after the
    # product the memory the driver counts ("80GB HBM3"; a GH200 module's "480GB" counts the Grace CPU's LPDDR)
    assert catalog.gpu(device).name == canonical


def test_a_device_name_whose_memory_is_not_the_catalog_gpus_is_refused_naming_both():
    # a 144 GB HBM3e GH200 is not the catalog's 96 GB GH200; an 80 GB H800 is no catalog GPU at all
    with pytest.raises(CatalogError, match=r"144 GB.*GH200-96GB.*96 GB"):
        catalog.gpu("NVIDIA GH200 144G HBM3e")
    with pytest.raises(CatalogError, match=r"unknown GPU 'NVIDIA H800 80GB HBM3'"):
        catalog.gpu("NVIDIA H800 80GB HBM3")


def test_estimate_takes_a_device_name_and_the_data_digest_stays():
    from objectives import inference
    from objectives.provenance import SERVING_DATA, data_digest
    before = data_digest(SERVING_DATA)
    a = inference.estimate("Llama-3.1-8B", "NVIDIA H100 80GB HBM3", batch_size=8, input_len=512, output_len=64)
    b = inference.estimate("Llama-3.1-8B", "H100-SXM-80GB", batch_size=8, input_len=512, output_len=64)
    assert a["ttft_ms"].iloc[0] == b["ttft_ms"].iloc[0] and a["tpot_ms"].iloc[0] == b["tpot_ms"].iloc[0]
    assert data_digest(SERVING_DATA) == before


@pytest.mark.parametrize("hf_id,name", [
    ("meta-llama/Llama-3.1-70B", "Llama-3.1-70B"), ("meta-llama/Meta-Llama-3.1-70B", "Llama-3.1-70B"),
    ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-70B"), ("meta-llama/Meta-Llama-3.1-8B-Instruct", "Llama-3.1-8B"),
    ("Qwen/Qwen3-32B", "Qwen3-32B"), ("Qwen/Qwen3-30B-A3B-Instruct-2507", "Qwen3-30B-A3B"),
    ("openai/gpt-oss-120b", "gpt-oss-120b"), ("deepseek-ai/DeepSeek-R1", "DeepSeek-R1"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "Mixtral-8x7B"), ("meta-llama/Llama-2-7b-chat-hf", "Llama-2-7B"),
    ("tiiuae/falcon-180B", "Falcon-180B"), ("EleutherAI/gpt-j-6b", "GPT-J-6B"), ("llama-3.3-70b", "Llama-3.3-70B"),
])
def test_model_names_and_hf_ids_resolve(hf_id, name):
    assert catalog.model(hf_id).name == name


def test_every_required_model_is_shipped_with_its_config_url():
    assert set(REQUIRED_MODELS) <= set(catalog.models())
    for n in REQUIRED_MODELS:
        m = catalog.model(n)
        assert m.source == f"https://huggingface.co/{m.hf_id}/blob/main/config.json"


def test_unknown_names_fail_with_close_matches():
    with pytest.raises(CatalogError) as e:
        catalog.gpu("H1OO-SXM")
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
    assert "'H1OO-SXM'" in str(e.value) and "close matches: H100-SXM-80GB" in str(e.value)
    with pytest.raises(KeyError, match="close matches: .*Llama-3.1-70B"):
        catalog.model("meta-llama/Llama-3.1-7OB")
    with pytest.raises(CatalogError, match="unknown GPU 42"):
        catalog.gpu(42)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(REQUIRED_GPUS), seps=st.lists(st.sampled_from(["-", "_", " ", ""]), min_size=8, max_size=8),
       upper=st.lists(st.booleans(), min_size=24, max_size=24))
def test_gpu_lookup_ignores_case_and_separators(name, seps, upper):
    parts = re.split(r"[-_]", name)
    mangled = "".join(p + seps[i % 8] for i, p in enumerate(parts))
    mangled = "".join(c.upper() if upper[i % 24] else c.lower() for i, c in enumerate(mangled))
    assert catalog.gpu(mangled).name == name


# ------------------------------------------------------------------------------------------------ model math
# Published sizes, each with the convention of its publisher (see model_math's docstring).
PUBLISHED = [  # name, total, active, input embedding counted in "active"?
    ("Llama-3.1-8B", 8.03e9, None, True), ("Llama-3.1-70B", 70.6e9, None, True),
    ("Llama-3.1-405B", 405.9e9, None, True), ("Llama-2-7B", 6.74e9, None, True), ("Llama-2-70B", 68.98e9, None, True),
    ("Mistral-7B", 7.24e9, None, True), ("GPT-J-6B", 6.05e9, None, True), ("Falcon-180B", 180e9, None, True),
    ("Mixtral-8x7B", 46.7e9, 12.9e9, True), ("Mixtral-8x22B", 141e9, 39e9, True),
    ("DeepSeek-V3", 671e9, 37e9, True), ("DeepSeek-R1", 671e9, 37e9, True),
    ("Qwen3-30B-A3B", 30.5e9, 3.3e9, True), ("Qwen3-235B-A22B", 235e9, 22e9, True),
    ("Qwen3-8B", 8.2e9, None, True), ("Qwen3-32B", 32.8e9, None, True),
    ("gpt-oss-120b", 117e9, 5.1e9, False), ("gpt-oss-20b", 21e9, 3.6e9, False),  # OpenAI: active excl. embedding
]


@pytest.mark.parametrize("name,total,active,with_embedding", PUBLISHED)
def test_parameter_counts_match_published_sizes(name, total, active, with_embedding):
    m = catalog.model(name)
    assert model_math.total_params(m) == pytest.approx(total, rel=0.02)
    expected_active = total if active is None else active
    assert model_math.active_params(m, input_embedding=with_embedding) == pytest.approx(expected_active, rel=0.025)


def test_exact_parameter_counts_of_checkpoints():
    # Keras-Hub presets state the exact checkpoint sizes; the difference is the RMSNorm vectors we leave out.
    assert model_math.total_params(catalog.model("Qwen3-30B-A3B")) == pytest.approx(30_532_122_624, rel=1e-4)
    assert model_math.total_params(catalog.model("Qwen3-235B-A22B")) == pytest.approx(235_093_634_560, rel=1e-4)


def test_kv_cache_and_weight_bytes():
    assert model_math.kv_elements_per_token_layer(catalog.model("Llama-3.1-70B")) == 2 * 8 * 128
    assert model_math.kv_elements_per_token_layer(catalog.model("DeepSeek-V3")) == 512 + 64  # MLA latent + rope key
    assert model_math.kv_bytes_per_token_layer(catalog.model("Llama-2-7B"), "fp8") == 2 * 32 * 128
    w = model_math.weight_bytes(catalog.model("Llama-3.1-8B"), "bf16")
    assert w == pytest.approx(2 * 8.03e9, rel=0.01)
    assert model_math.weight_bytes(catalog.model("Llama-3.1-8B"), "int4") == pytest.approx(w / 4)
    assert model_math.weight_bytes(catalog.model("Llama-3.1-8B"), include_embeddings=False) < w
    with pytest.raises(CatalogError, match="unknown dtype 'fp6'"):
        model_math.weight_bytes(catalog.model("Llama-3.1-8B"), "fp6")
    # sliding windows: Mistral-7B v0.1 all 32 layers at 4096; gpt-oss-120b 18 of 36 layers at 128
    mistral, oss = catalog.model("Mistral-7B"), catalog.model("gpt-oss-120b")
    per = model_math.kv_bytes_per_token_layer(mistral)
    assert model_math.kv_cache_bytes(mistral, 10_000) == model_math.kv_cache_bytes(mistral, 4096) == 32 * 4096 * per
    per = model_math.kv_bytes_per_token_layer(oss)
    assert model_math.kv_cache_bytes(oss, 10_000) == (18 * 10_000 + 18 * 128) * per


@settings(max_examples=50, deadline=None)
@given(names=st.lists(st.sampled_from(REQUIRED_MODELS), min_size=1, max_size=12),
       ctx=st.lists(st.integers(0, 200_000), min_size=12, max_size=12), dtype=st.sampled_from(["bf16", "fp8", "int4"]))
def test_model_math_vectorized_equals_scalar(names, ctx, dtype):
    t = catalog.model_table(names)
    c = np.array(ctx[: len(names)])
    vec = model_math.kv_cache_bytes(t, c, dtype)
    for i, n in enumerate(names):
        m = catalog.model(n)
        assert vec[i] == model_math.kv_cache_bytes(m, int(c[i]), dtype)
        assert t["total_params"][i] == model_math.total_params(m)
        assert t["active_params"][i] == model_math.active_params(m)
    # KV cache never shrinks as the context grows
    assert np.all(model_math.kv_cache_bytes(t, c + 1, dtype) >= vec)


def test_moe_layer_layout():
    base = json.loads((DATA_DIR / "models" / "Qwen3-30B-A3B.json").read_text())
    cfg = {k: v for k, v in base.items() if k not in CATALOG_KEYS}
    m = catalog.model_from_hf_config(dict(cfg, decoder_sparse_step=2), name="x")
    assert model_math.n_moe_layers(m) == 24 and model_math.n_dense_layers(m) == 24
    m = catalog.model_from_hf_config(dict(cfg, mlp_only_layers=[0, 1, 2]), name="x")
    assert m.first_k_dense == 3 and model_math.n_moe_layers(m) == 45
    with pytest.raises(CatalogError, match=r"mlp_only_layers=\[1, 5\]"):
        catalog.model_from_hf_config(dict(cfg, mlp_only_layers=[1, 5]))
    ds = catalog.model("DeepSeek-V3")
    assert (model_math.n_moe_layers(ds), model_math.n_dense_layers(ds)) == (58, 3)


# ------------------------------------------------------------------------------------------------ config.json
@pytest.mark.parametrize("path", sorted((DATA_DIR / "models").glob("*.json")), ids=lambda p: p.stem)
def test_model_from_hf_config_round_trips(path, tmp_path):
    raw = json.loads(path.read_text())
    entry = catalog.model(raw["name"])
    published = {k: v for k, v in raw.items() if k not in CATALOG_KEYS}  # the config.json as on the Hub
    m = catalog.model_from_hf_config(published, name=raw["name"])
    same = dataclasses.replace(entry, hf_id=m.hf_id, aliases=m.aliases, source=m.source)
    assert m == same
    f = tmp_path / "config.json"
    f.write_text(json.dumps(published))
    assert catalog.model_from_hf_config(f, name=raw["name"]) == m


@pytest.mark.parametrize("model,field", [
    ("Llama-3.1-8B", "intermediate_size"), ("Mixtral-8x7B", "num_local_experts"),
    ("Qwen3-30B-A3B", "moe_intermediate_size"), ("gpt-oss-120b", "num_local_experts"),
    ("DeepSeek-V3", "kv_lora_rank"), ("GPT-J-6B", "n_embd"), ("Falcon-180B", "num_kv_heads"),
])
def test_missing_required_field_is_named_with_the_architecture(model, field):
    raw = json.loads((DATA_DIR / "models" / f"{model}.json").read_text())
    del raw[field]
    arch = raw["architectures"][0]
    with pytest.raises(CatalogError, match=rf"{arch} lacks the required field '{field}'"):
        catalog.model_from_hf_config(raw)


def test_bad_configs():
    with pytest.raises(CatalogError, match="unsupported architecture 'BertModel'.*supported model_type: llama"):
        catalog.model_from_hf_config({"architectures": ["BertModel"], "model_type": "bert"})
    with pytest.raises(CatalogError, match="config file not found"):
        catalog.model_from_hf_config("/nonexistent/config.json")
    raw = json.loads((DATA_DIR / "models" / "Llama-3.1-8B.json").read_text())
    with pytest.raises(CatalogError, match="not a multiple of the KV heads 5"):
        catalog.model_from_hf_config(dict(raw, num_key_value_heads=5))
    # Falcon-7B (multi-query, old decoder) and GPT-J shapes
    f7 = catalog.model("Falcon-7B")
    assert (f7.n_kv_heads, f7.gated_mlp, f7.parallel_residual, f7.ffn) == (1, False, True, 4 * 4544)
    gj = catalog.model("GPT-J-6B")
    assert (gj.ffn, gj.head_dim, gj.gated_mlp, gj.parallel_residual) == (16384, 256, False, True)


# ------------------------------------------------------------------------------------------------ tables
def test_gpu_table_over_1e5_mixed_names_equals_lookups():
    rng = np.random.default_rng(0)
    pool = REQUIRED_GPUS + ["H100", "h100_sxm", "a100", "mi300x", "Gaudi-3", "rtx4090", "gb200 nvl72"]
    names = np.array(pool, dtype=object)[rng.integers(0, len(pool), 100_000)]
    t = catalog.gpu_table(names)
    assert set(t) >= {f"peak_tflops_{dt}" for dt in DTYPES} | {
        "mem_gb", "mem_gib", "mem_bw_tbs", "link_bw_gbs", "tdp_w", "idle_w", "price_usd_per_hour", "family", "is_pcie"}
    for n in pool:
        g = catalog.gpu(n)
        rows = names == n
        assert np.all(t["name"][rows] == g.name)
        for dt in DTYPES:
            assert np.all(t[f"peak_tflops_{dt}"][rows] == g.peak_tflops.get(dt, 0.0))
        for f in ("mem_gb", "mem_bw_tbs", "link_bw_gbs", "tdp_w"):
            assert np.all(t[f][rows] == getattr(g, f))
        np.testing.assert_array_equal(t["price_usd_per_hour"][rows], g.price_usd_per_hour)
        assert np.all(t["is_pcie"][rows] == (g.form_factor == "pcie")) and np.all(t["family"][rows] == g.family)
    # shapes follow the input; the columns are read-only views of the catalog
    grid = catalog.gpu_table(np.array([["H100", "L4"], ["B200", "a100"]]))
    assert grid["mem_gb"].shape == (2, 2) and catalog.gpu_table("H100")["mem_gb"].shape == ()
    with pytest.raises(CatalogError, match="close matches: H200-SXM-141GB"):
        catalog.gpu_table(["H100", "H2000"])


def test_a_distilled_model_is_its_student_not_its_teacher():
    """'deepseek-ai/DeepSeek-R1-Distill-Llama-70B' (a dense 70B Llama) was unknown with "close matches:
    DeepSeek-R1, DeepSeek-V3" (the 671B MoE teacher): a distill the publisher names the base of resolves to that
    base where the catalog has it (DeepSeek-R1 model card: Llama-3.3-70B-Instruct, Llama-3.1-8B), its quantized
    releases too; where it lacks the base (the Qwen2.5 distills) the error names the base and matches the student."""
    assert catalog.model("deepseek-ai/DeepSeek-R1-Distill-Llama-70B").name == "Llama-3.3-70B"
    assert catalog.model("deepseek-ai/DeepSeek-R1-Distill-Llama-8B").name == "Llama-3.1-8B"
    q = catalog.model("RedHatAI/DeepSeek-R1-Distill-Llama-70B-FP8-dynamic")
    assert q.quant_weight_dtype == "fp8" and q.n_layers == catalog.model("Llama-3.3-70B").n_layers
    with pytest.raises(CatalogError) as e:
        catalog.model("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B")
    msg = str(e.value)
    assert "a distill into Qwen2.5-32B, which the catalog lacks" in msg and "config.json" in msg
    assert "close matches by its student: Qwen3-32B" in msg and "DeepSeek" not in msg.split("close matches")[1]
    with pytest.raises(CatalogError, match=r"its student's, 'Mistral-7B'.*close matches by its student: Mistral-7B"):
        catalog.model("someone/Big-Distill-Mistral-7B")
    assert catalog.model("DeepSeek-R1").name == "DeepSeek-R1"    # the teacher is still itself


def test_model_table_columns():
    t = catalog.model_table(["Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B", "DeepSeek-V3"])
    assert list(t["name"]) == ["Llama-3.1-70B", "Llama-3.1-70B", "DeepSeek-V3"]
    assert t["n_layers"].dtype == np.int64 and t["gated_mlp"].dtype == bool
    assert list(t["is_moe"]) == [False, False, True] and list(t["is_mla"]) == [False, False, True]
    assert t["kv_elements_per_token_layer"][0] == 2048


# ------------------------------------------------------------------------------------------------ registration
GOOD = {
    "name": "TestAccel-1", "vendor": "nvidia", "family": "hopper", "form_factor": "pcie", "link_type": "pcie",
    "aliases": ["ta1"],
    "peak_tflops": {"bf16": {"value": 100.0, "source": "in-house measurement 2026-01"}},
    "mem_gb": {"value": 32, "source": "spec sheet"}, "mem_bw_tbs": {"value": 1.0, "source": "spec sheet"},
    "link_bw_gbs": {"value": 32, "source": "spec sheet"}, "tdp_w": {"value": 300, "source": "spec sheet"},
    "price_usd_per_hour": {"value": 1.0, "source": "quote", "date": "2026-01"},
}


@pytest.mark.parametrize("patch,field", [
    ({"mem_gb": {"value": -1, "source": "x"}}, "mem_gb"),
    ({"mem_gb": 32}, "mem_gb"),                                      # a number without its source
    ({"tdp_w": {"value": 300, "source": ""}}, "tdp_w.source"),
    ({"peak_tflops": {"bf17": {"value": 1, "source": "x"}}}, "peak_tflops.bf17"),
    ({"peak_tflops": {"bf16": {"value": float("nan"), "source": "x"}}}, "peak_tflops.bf16"),
    ({"link_type": "infiniband"}, "link_type"),
    ({"vendor": "acme"}, "vendor"),
    ({"price_usd_per_hour": {"value": 1.0, "source": "q", "date": "Jan 2026"}}, "price_date"),
    ({"idle_w": {"value": 400, "source": "x"}}, "idle_w"),
    ({"mem_device_mib": {"value": 0, "source": "x"}}, "mem_device_mib"),
    ({"mem_device_mib": 30000}, "mem_device_mib"),                    # a number without its source
    ({"tdp": {"value": 1, "source": "x"}}, "tdp"),
])
def test_register_gpu_validation_names_the_bad_field(patch, field):
    cat = Catalog()
    with pytest.raises(CatalogError, match=re.escape(f"'{field}'")):
        cat.register_gpu({**GOOD, **patch})
    assert cat.gpus() == []


def test_register_gpu_and_data_files(tmp_path):
    cat = CAT.copy()
    g = cat.register_gpu(GOOD)
    assert cat.gpu("TA1") is g and g.sources["mem_gb"] == "spec sheet" and g.idle_w is None
    assert "TestAccel-1" not in catalog.gpus()  # the default catalog is untouched
    with pytest.raises(CatalogError, match="already in the catalog"):
        cat.register_gpu(GOOD)
    with pytest.raises(CatalogError, match="'h100' already names GPU 'H100-SXM-80GB'"):
        cat.register_gpu({**GOOD, "name": "Other", "aliases": ["H100"]})
    cat.register_gpu({**GOOD, "mem_gb": {"value": 48, "source": "rev B"}}, overwrite=True)
    assert cat.gpu("ta1").mem_gb == 48 and cat.gpu("ta1").mem_gib == pytest.approx(48e9 / 2**30)
    # the memory the driver reports, where given, is the capacity the cost models use
    cat.register_gpu({**GOOD, "mem_device_mib": {"value": 32768, "source": "nvidia-smi"}}, overwrite=True)
    assert cat.gpu("ta1").mem_gib == 32.0 and cat.gpu("ta1").sources["mem_device_mib"] == "nvidia-smi"
    assert catalog.gpu_table("H100")["mem_gib"] == pytest.approx(81559 / 1024)
    # a GPU record missing a source for one of its numbers
    bad = dataclasses.replace(cat.gpu("ta1"), name="T2", aliases=(), sources={"mem_gb": "x"})
    with pytest.raises(CatalogError, match="sources\\['peak_tflops.bf16'\\]"):
        cat.register_gpu(bad)
    # a user data file in the shipped format
    f = tmp_path / "mine.toml"
    f.write_text('[[gpu]]\nname = "Mine"\nvendor = "amd"\nfamily = "cdna3"\nform_factor = "oam"\nlink_type = "xgmi"\n'
                 'peak_tflops.bf16 = { value = 500, source = "https://example.org/ds" }\n'
                 'mem_gb = { value = 64, source = "https://example.org/ds" }\n'
                 'mem_bw_tbs = { value = 2, source = "https://example.org/ds" }\n'
                 'link_bw_gbs = { value = 100, source = "https://example.org/ds" }\n'
                 'tdp_w = { value = 500, source = "https://example.org/ds" }\n')
    (mine,) = cat.load_gpu_file(f)
    assert math.isnan(mine.price_usd_per_hour) and cat.gpu_table(["mine"])["peak_tflops_bf16"][0] == 500
    f.write_text("[[gpu]]\nname = 'Broken'\n")
    with pytest.raises(CatalogError, match="mine.toml: GPU 'Broken'"):
        cat.load_gpu_file(f)


def test_shipped_data_file_parses_standalone():
    records = catalog.read_gpu_file(DATA_DIR / "gpus.toml")
    assert [g.name for g, _ in records] == catalog.gpus()


def test_register_model():
    cat = CAT.copy()
    raw = json.loads((DATA_DIR / "models" / "Llama-3.1-8B.json").read_text())
    m = cat.register_model({**raw, "name": "My-8B", "hf_id": "me/my-8b", "aliases": []})
    assert cat.model("me/my-8b") is m and "My-8B" not in catalog.models()
    with pytest.raises(CatalogError, match="'llama318b' already names 'Llama-3.1-8B'"):
        cat.register_model({**raw, "name": "Llama_3.1_8B", "hf_id": "", "aliases": []})


# ------------------------------------------------------------------------------------------------ prices
def test_price_overrides_do_not_leak():
    before = catalog.gpu("H100").price_usd_per_hour
    cheap = catalog.with_prices({"H100": 1.5, "gb300": 6.0}, source="my contract", date="2026-10")
    assert cheap.gpu("H100-SXM-80GB").price_usd_per_hour == 1.5 and cheap.gpu("GB300").price_usd_per_hour == 6.0
    assert cheap.gpu("H100").sources["price_usd_per_hour"] == "my contract"
    assert cheap.gpu_table(["H100", "L4"])["price_usd_per_hour"][0] == 1.5
    assert catalog.gpu("H100").price_usd_per_hour == before
    assert catalog.gpu_table(["H100"])["price_usd_per_hour"][0] == before
    assert math.isnan(catalog.gpu("GB300").price_usd_per_hour)
    other = CAT.copy()
    other.register_gpu(GOOD)
    assert other.gpu("H100").price_usd_per_hour == before and "TestAccel-1" not in cheap.gpus()
    with pytest.raises(CatalogError, match="price_usd_per_hour"):
        catalog.with_prices({"H100": -2.0})
    with pytest.raises(CatalogError, match="unknown GPU 'H999'"):
        catalog.with_prices({"H999": 2.0})


def test_default_catalog_is_created_once_across_threads():
    import objectives.catalog.store as store

    saved, store._default = store._default, None
    try:
        got: list[Catalog] = []
        threads = [threading.Thread(target=lambda: got.append(store.default_catalog())) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({id(c) for c in got}) == 1
    finally:
        store._default = saved


def test_the_listed_models_do_not_grow_with_lookups_and_errors_offer_listed_names():
    # a quantized release's derived "<base>-<tag>" record (and a local checkpoint's path) is found by `model` but
    # not listed: `models()` and the unknown-model count stay the shipped catalog's whatever a process looked up
    # before (the count read 97, 101, 104, ... in one process), and close matches are listed names
    cat = Catalog.from_data()
    n = len(cat.models())
    v = cat.model("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic")
    assert v.name not in cat.models() and cat.model(v.name) is v and len(cat.models()) == n
    with pytest.raises(CatalogError, match=rf"\. {n} known") as e:
        cat.model("Llama-3.3-70B-Instruct-FP9")
    assert v.name not in str(e.value)
    mine = dataclasses.replace(v, name="My-70B", hf_id="", aliases=())
    cat.register_model(mine)      # what the user registers is listed
    assert "My-70B" in cat.models() and len(cat.models()) == n + 1


def test_a_checkpoint_folder_named_without_a_slash_is_read_after_the_catalog_names(tmp_path, monkeypatch):
    # model="ck" with ./ck/config.json: the folder's config (it was an unknown catalog name); a catalog name wins
    # over a folder of that name, and an unknown plain name says which folder it looked for too
    cat = Catalog.from_data()
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text((DATA_DIR / "models" / "Llama-3.1-8B.json").read_text())
    (tmp_path / "Qwen3-8B").mkdir()
    (tmp_path / "Qwen3-8B" / "config.json").write_text((DATA_DIR / "models" / "Llama-3.1-8B.json").read_text())
    monkeypatch.chdir(tmp_path)
    ck = cat.model("ck")
    assert ck.name == "ck" and ck.n_layers == cat.model("Llama-3.1-8B").n_layers and "ck" not in cat.models()
    assert cat.model("Qwen3-8B").n_layers == catalog.model("Qwen3-8B").n_layers != ck.n_layers
    with pytest.raises(CatalogError, match=r"unknown model 'nope'.*nor a checkpoint folder: no nope/config\.json"):
        cat.model("nope")
