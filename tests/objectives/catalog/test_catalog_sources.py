"""The catalog's numbers against the public documents they were checked against (review of 2026-11).

Each row below is a figure read from a named document during the review, not from the catalog. A change to the
data files that departs from a checked figure fails here and has to come with a new document. Every GPU number
must also say in its note whether it was verified, left unverified (and why), or only confirmed at authoring.
"""
from __future__ import annotations

import re

import pytest

from objectives import catalog

# (GPU, field, value as read in the document (dense; TOPS for int8), document). Sparse "*" figures are halved.
H100_DS = "NVIDIA H100 datasheet table (HPCTech reproduction, archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html)"
NVL_DS = "NVIDIA H100 datasheet, H100 NVL column (quoted by several independent copies)"
A100_DS = "NVIDIA A100 datasheet r4 table (reproduced in public copies)"
ROCM_MI300 = "ROCm docs, AMD Instinct MI300 microarchitecture, peak-performance table (ROCm/legacy-rocm-build)"
CDNA4 = "AMD CDNA 4 white paper Table 1 / endnote MI350-007 (dense and sparse as tabulated by glennklockwood.com)"
GAUDI3 = "Intel Hot Chips 2024, 'Intel Gaudi 3 AI Accelerator: Architected for Gen AI Training and Inference'"
RTX_YAML = "aiconfigurator-core 0.12.0 systems/rtx_pro_6000_server.yaml (the node its RTX PRO 6000 tables were measured on)"
B60_YAML = "aiconfigurator-core 0.12.0 systems/b60.yaml"
CHECKED_GPU_FIGURES = [
    ("H100-SXM-80GB", "peak_tflops.bf16", 1979 / 2, H100_DS), ("H100-SXM-80GB", "peak_tflops.fp8", 3958 / 2, H100_DS),
    ("H100-SXM-80GB", "peak_tflops.tf32", 989 / 2, H100_DS), ("H100-SXM-80GB", "mem_bw_tbs", 3.35, H100_DS),
    ("H100-SXM-80GB", "link_bw_gbs", 900 / 2, H100_DS), ("H100-SXM-80GB", "tdp_w", 700, H100_DS),
    ("H100-PCIe-80GB", "peak_tflops.fp32", 51, H100_DS), ("H100-PCIe-80GB", "peak_tflops.tf32", 756 / 2, H100_DS),
    ("H100-PCIe-80GB", "peak_tflops.bf16", 1513 / 2, H100_DS), ("H100-PCIe-80GB", "peak_tflops.fp8", 3026 / 2, H100_DS),
    ("H100-PCIe-80GB", "peak_tflops.int8", 3026 / 2, H100_DS), ("H100-PCIe-80GB", "mem_gb", 80, H100_DS),
    ("H100-PCIe-80GB", "mem_bw_tbs", 2.0, H100_DS), ("H100-PCIe-80GB", "tdp_w", 350, H100_DS),
    ("H100-PCIe-80GB", "link_bw_gbs", 128 / 2, H100_DS),
    ("H100-NVL", "peak_tflops.fp32", 60, NVL_DS), ("H100-NVL", "peak_tflops.tf32", 835 / 2, NVL_DS),
    ("H100-NVL", "peak_tflops.bf16", 1671 / 2, NVL_DS), ("H100-NVL", "peak_tflops.fp8", 3341 / 2, NVL_DS),
    ("H100-NVL", "mem_gb", 94, NVL_DS), ("H100-NVL", "mem_bw_tbs", 3.9, NVL_DS), ("H100-NVL", "tdp_w", 400, NVL_DS),
    ("H100-NVL", "link_bw_gbs", 600 / 2, NVL_DS),
    ("H200-SXM-141GB", "mem_gb", 141, "NVIDIA H200 product page"), ("H200-SXM-141GB", "mem_bw_tbs", 4.8, "NVIDIA H200 product page"),
    ("H200-SXM-141GB", "peak_tflops.fp8", 3958 / 2, "NVIDIA H200 product page"),
    ("A100-SXM-80GB", "mem_bw_tbs", 2.039, A100_DS), ("A100-PCIe-80GB", "mem_bw_tbs", 1.935, A100_DS),
    ("A100-SXM-40GB", "mem_bw_tbs", 1.555, A100_DS), ("A100-PCIe-80GB", "tdp_w", 300, A100_DS),
    ("A100-SXM-80GB", "tdp_w", 400, A100_DS), ("A100-SXM-80GB", "peak_tflops.tf32", 156, A100_DS),
    ("A100-SXM-80GB", "peak_tflops.int8", 624, A100_DS), ("A100-SXM-80GB", "link_bw_gbs", 600 / 2, A100_DS),
    ("L40S", "peak_tflops.bf16", 362.05, "NVIDIA L40S datasheet"), ("L40S", "peak_tflops.fp8", 733, "NVIDIA L40S datasheet"),
    ("L40S", "mem_bw_tbs", 0.864, "NVIDIA L40S datasheet"), ("L40S", "tdp_w", 350, "NVIDIA L40S datasheet"),
    ("L4", "peak_tflops.fp8", 485 / 2, "NVIDIA L4 datasheet"), ("L4", "peak_tflops.tf32", 120 / 2, "NVIDIA L4 datasheet"),
    ("L4", "mem_bw_tbs", 0.3, "NVIDIA L4 datasheet"), ("L4", "tdp_w", 72, "NVIDIA L4 datasheet"),
    ("RTX-4090", "peak_tflops.int8", 1321.2 / 2, "Ada whitepaper (waredb.com table)"),
    ("RTX-4090", "mem_bw_tbs", 1.008, "Ada whitepaper (waredb.com table)"),
    ("MI300X", "peak_tflops.tf32", 653.7, ROCM_MI300), ("MI300X", "peak_tflops.bf16", 1307.4, ROCM_MI300),
    ("MI300X", "peak_tflops.fp8", 2614.9, ROCM_MI300), ("MI300X", "peak_tflops.int8", 2614.9, ROCM_MI300),
    ("MI300X", "peak_tflops.fp32", 163.4, ROCM_MI300), ("MI300X", "mem_bw_tbs", 5.3, ROCM_MI300),
    ("MI300X", "link_bw_gbs", 896 / 2, "AMD CDNA 3 white paper (7 links, 896 GB/s peer-to-peer aggregate)"),
    ("MI325X", "mem_gb", 256, "AMD MI325X specifications"), ("MI325X", "mem_bw_tbs", 6.0, "AMD MI325X specifications"),
    ("MI325X", "tdp_w", 1000, "AMD MI325X specifications"),
    ("MI355X", "peak_tflops.bf16", 5033.2 / 2, CDNA4), ("MI355X", "peak_tflops.fp8", 10066.4 / 2, CDNA4),
    ("MI355X", "peak_tflops.int8", 10066.4 / 2, CDNA4), ("MI355X", "peak_tflops.fp4", 20132.6 / 2, CDNA4),
    ("MI355X", "peak_tflops.fp32", 157.3, CDNA4), ("MI355X", "link_bw_gbs", 1075.2 / 2, CDNA4),
    ("MI355X", "mem_gb", 288, CDNA4), ("MI355X", "mem_bw_tbs", 8.0, CDNA4), ("MI355X", "tdp_w", 1400, CDNA4),
    ("Gaudi3", "peak_tflops.bf16", 1835, GAUDI3), ("Gaudi3", "peak_tflops.fp8", 1835, GAUDI3),
    ("Gaudi3", "mem_gb", 128, GAUDI3), ("Gaudi3", "mem_bw_tbs", 3.67, GAUDI3), ("Gaudi3", "tdp_w", 900, GAUDI3),
    ("RTX-PRO-6000", "peak_tflops.bf16", 467.8, RTX_YAML), ("RTX-PRO-6000", "peak_tflops.fp8", 935.6, RTX_YAML),
    ("RTX-PRO-6000", "peak_tflops.int8", 935.6, RTX_YAML), ("RTX-PRO-6000", "peak_tflops.fp4", 1871.2, RTX_YAML),
    ("RTX-PRO-6000", "mem_device_mib", 97887, RTX_YAML), ("RTX-PRO-6000", "mem_bw_tbs", 1.792, RTX_YAML),
    ("RTX-PRO-6000", "link_bw_gbs", 128 / 2, RTX_YAML), ("RTX-PRO-6000", "tdp_w", 600, RTX_YAML),
    ("RTX-PRO-6000", "mem_gb", 96, "NVIDIA MIG user guide, supported GPUs (RTX PRO 6000 Blackwell Server Edition)"),
    ("Arc-Pro-B60", "peak_tflops.bf16", 98.3, B60_YAML), ("Arc-Pro-B60", "peak_tflops.int8", 197, B60_YAML),
    ("Arc-Pro-B60", "peak_tflops.fp32", 12.28, B60_YAML), ("Arc-Pro-B60", "mem_bw_tbs", 0.456, B60_YAML),
    ("Arc-Pro-B60", "link_bw_gbs", 64 / 2, B60_YAML), ("Arc-Pro-B60", "tdp_w", 200, B60_YAML),
    ("Arc-Pro-B60", "mem_gb", 24, "hmc-tech.com Arc Pro B60 table"),
]


@pytest.mark.parametrize("gpu,field,value,document", CHECKED_GPU_FIGURES,
                         ids=[f"{g}:{f}" for g, f, _, _ in CHECKED_GPU_FIGURES])
def test_gpu_figure_matches_the_document_it_was_checked_against(gpu, field, value, document):
    stored = catalog.gpu_sources(gpu)[field].value
    assert stored == pytest.approx(value, rel=1e-3), f"{gpu} {field}: catalog {stored}, {document} says {value}"


_MARK = re.compile(r"(?<!un)verified 20\d\d-\d\d against \S|unverified: \S|confirmed by search when the catalog was written")


def test_every_gpu_number_says_how_it_was_checked():
    """Each note names the document it was verified against, says why it is unverified, or says it was only
    confirmed at authoring (prices: say they were not re-verified)."""
    unmarked = []
    for name in catalog.gpus():
        for key, s in catalog.gpu_sources(name).items():
            ok = ("not re-verified" in s.note) if key == "price_usd_per_hour" else bool(_MARK.search(s.note))
            if not ok:
                unmarked.append((name, key, s.note))
    assert not unmarked, unmarked


def test_unverified_marks_give_a_reason():
    for name in catalog.gpus():
        for key, s in catalog.gpu_sources(name).items():
            for m in re.finditer(r"unverified:(.{0,40})", s.note):
                assert len(m.group(1).strip()) >= 20, (name, key, s.note)


# Model shapes as read in documents that restate the published config.json (hidden, layers, heads, KV heads,
# head_dim, ffn, vocab, experts, top-k, expert ffn, MLA ranks). 0 = not applicable.
MEGATRON = "epfLLM/Megatron-LLM weights_conversion/hf_to_megatron.py (HF config values for Llama-2, Mistral, Falcon)"
TRTLLM = "NVIDIA TensorRT-LLM perf-benchmarking docs (Falcon-180B ckpt_config)"
CHECKED_MODELS = {
    # name: (n_layers, hidden, n_heads, n_kv_heads, head_dim, ffn, vocab, n_experts, top_k, moe_ffn, document)
    "Llama-2-7B": (32, 4096, 32, 32, 128, 11008, 32000, 0, 0, 0, MEGATRON),
    "Llama-2-13B": (40, 5120, 40, 40, 128, 13824, 32000, 0, 0, 0, MEGATRON),
    "Llama-2-70B": (80, 8192, 64, 8, 128, 28672, 32000, 0, 0, 0, MEGATRON),
    "Mistral-7B": (32, 4096, 32, 8, 128, 14336, 32000, 0, 0, 0, MEGATRON),
    "Falcon-7B": (32, 4544, 71, 1, 64, 4 * 4544, 65024, 0, 0, 0, MEGATRON),
    "Falcon-40B": (60, 8192, 128, 8, 64, 4 * 8192, 65024, 0, 0, 0, MEGATRON),
    "Falcon-180B": (80, 14848, 232, 8, 64, 4 * 14848, 65024, 0, 0, 0, TRTLLM),
    "Llama-3.1-405B": (126, 16384, 128, 8, 128, 53248, 128256, 0, 0, 0, "several restatements of the HF config"),
    "Mixtral-8x7B": (32, 4096, 32, 8, 128, 14336, 32000, 8, 2, 14336, "several restatements of the HF config"),
    "Qwen3-235B-A22B": (94, 4096, 64, 4, 128, 12288, 151936, 128, 8, 1536, "several restatements of the HF config"),
    "Qwen3-30B-A3B": (48, 2048, 32, 4, 128, 6144, 151936, 128, 8, 768, "several restatements of the HF config"),
}


@pytest.mark.parametrize("name", sorted(CHECKED_MODELS))
def test_model_shape_matches_the_published_config(name):
    *want, document = CHECKED_MODELS[name]
    m = catalog.model(name)
    got = (m.n_layers, m.hidden, m.n_heads, m.n_kv_heads, m.head_dim, m.ffn, m.vocab, m.n_experts, m.top_k, m.moe_ffn)
    fields = ("n_layers", "hidden", "n_heads", "n_kv_heads", "head_dim", "ffn", "vocab", "n_experts", "top_k", "moe_ffn")
    diff = {f: (g, w) for f, g, w in zip(fields, got, want) if g != w}
    assert not diff, f"{name}: catalog vs {document}: {diff}"


def test_deepseek_mla_and_moe_shape_matches_the_published_config():
    for name in ("DeepSeek-V3", "DeepSeek-R1"):
        m = catalog.model(name)
        assert (m.n_layers, m.hidden, m.n_heads, m.vocab) == (61, 7168, 128, 129280)
        assert (m.q_lora_rank, m.kv_lora_rank, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim) == (1536, 512, 128, 64, 128)
        assert (m.n_experts, m.top_k, m.moe_ffn, m.n_shared_experts, m.first_k_dense, m.ffn) == (256, 8, 2048, 1, 3, 18432)
