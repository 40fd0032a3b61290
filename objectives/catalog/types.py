"""Typed records of the catalog: one GPU, one model.

These two dataclasses are the contract between the catalog (data with sources) and the cost models
(`objectives.inference`, `objectives.serving`). Units are in the field names: TFLOP/s are dense
(no sparsity) 1e12 FLOP/s, TB/s and GB/s are 1e12 and 1e9 bytes per second, GB is 1e9 bytes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Precisions the catalog knows, in the order used by the cost models.
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")

#: Bytes per element of each storage precision (weights, activations, KV cache).
DTYPE_BYTES: Mapping[str, float] = {
    "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5,
}


@dataclass(frozen=True)
class Sourced:
    """A number with the document it was read from."""

    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class GPU:
    """One accelerator. Every number has its source in `sources` (field name -> URL or document)."""

    name: str                         # canonical catalog name, e.g. "H100-SXM-80GB"
    vendor: str                       # "nvidia" | "amd" | "intel"
    family: str                       # architecture: "ampere" | "ada" | "hopper" | "blackwell" | "blackwell-ultra" |
    #                                   "blackwell-rtx" (SM 12.0 RTX parts) | "cdna3" | "cdna4" | "gaudi3" | ...
    peak_tflops: Mapping[str, float]  # dense peak TFLOP/s (TOPS for int8/int4) per precision; missing key = unsupported
    mem_gb: float                     # memory capacity, GB (1e9 bytes) as on the datasheet
    mem_bw_tbs: float                 # memory bandwidth, TB/s
    link_bw_gbs: float                # scale-up bandwidth per GPU per direction, GB/s (NVLink, xGMI, or PCIe)
    link_type: str                    # "nvlink" | "xgmi" | "pcie" | "roce" (Gaudi)
    tdp_w: float                      # board power, W
    price_usd_per_hour: float         # typical on-demand price per GPU-hour, USD
    price_date: str = ""              # YYYY-MM of the price quote
    aliases: tuple[str, ...] = ()
    form_factor: str = ""             # "sxm" | "pcie" | "oam" | "superchip" | ...
    idle_w: float | None = None       # idle power, W (None: the power model's default fraction of TDP)
    sources: Mapping[str, str] = field(default_factory=dict)
    mem_device_mib: float | None = None  # memory the driver reports (nvidia-smi memory.total), MiB; None: unknown

    @property
    def mem_gib(self) -> float:
        """Memory capacity in GiB (2**30 bytes): what the driver reports where the catalog has that figure (the
        capacity engines size their KV cache from), else the datasheet's GB. NVIDIA's datasheet "80 GB" of an
        H100 is 80 GiB of HBM (81,559 MiB reported), 7 % more than 80e9 bytes."""
        if self.mem_device_mib is not None:
            return self.mem_device_mib / 1024.0
        return self.mem_gb * 1e9 / 2**30

    def supports(self, dtype: str) -> bool:
        """True if the GPU has tensor-core support for computing in `dtype`."""
        return dtype in self.peak_tflops and self.peak_tflops[dtype] > 0


@dataclass(frozen=True)
class Model:
    """Shapes of one transformer LLM, as read from its Hugging Face config.json."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int                          # dense MLP intermediate size
    vocab: int
    gated_mlp: bool = True            # SwiGLU-style (3 matrices) vs plain 2-matrix MLP
    tie_embeddings: bool = False
    parallel_residual: bool = False   # GPT-J / Falcon: attention and MLP read the same input
    max_position: int = 0
    # Mixture of experts (n_experts == 0 means dense)
    n_experts: int = 0
    top_k: int = 0
    moe_ffn: int = 0                  # intermediate size of one routed expert
    n_shared_experts: int = 0
    shared_ffn: int = 0               # intermediate size of the shared expert block (all shared experts together)
    first_k_dense: int = 0            # leading layers that are dense (DeepSeek-V3: 3)
    moe_layer_freq: int = 1           # every k-th layer is MoE (1: all non-leading layers)
    # latent MoE (Nemotron-3 Super / Ultra): the routed experts work on a token projected from `hidden` down to
    # this width (one hidden x latent projection before them and one back after, replicated on every TP rank), the
    # router and the shared expert on the hidden state; 0: experts on the hidden state
    moe_latent: int = 0
    # Multi-head latent attention (DeepSeek-V2/V3); kv_lora_rank == 0 means plain MHA/GQA
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    # width of one value head: MLA's (DeepSeek), or a GQA model's whose values are narrower than its queries and
    # keys (MiMo-V2-Flash: head_dim 192 for q/k, 128 for v); 0 on a GQA record: head_dim (`model_math.v_head_dim`)
    v_head_dim: int = 0
    sliding_window: int = 0           # 0: full attention in every layer
    hf_id: str = ""
    aliases: tuple[str, ...] = ()
    architecture: str = ""            # config.json "architectures"[0] / model_type
    source: str = ""                  # URL of the config.json the shapes come from
    # Added by the catalog (default keeps older callers valid): how many layers use `sliding_window`;
    # -1 = all layers (Mistral-7B v0.1). gpt-oss alternates sliding and full layers: 18 of 36.
    n_sliding_layers: int = -1
    # ---- Added for issue 13 (defaults keep every older record and caller valid) ----
    # Default weight format of the checkpoint, read from its quantization config ("" = unquantized, 16-bit).
    quant_weight_dtype: str = ""      # "" | "fp8" | "fp4" | "int4" | "int8" (a catalog dtype of `DTYPES`)
    quant_scheme: str = ""            # granularity: "fp8_block" | "fp8_per_tensor" | "fp8_per_channel" | "nvfp4" |
                                      # "mxfp4" | "int4_awq" | "int4_gptq" | "int4_group" | "int8_gptq" | ...
    quant_kv_dtype: str = ""          # KV-cache format the checkpoint ships scales for ("fp8"), "" = none
    # the quantization method the engines read ("modelopt", "compressed-tensors", "awq", "fp8", ...; "" = none or
    # unknown): `catalog.quant.checkpoint_method`
    quant_method: str = ""
    # Linear-attention / state-space token mixers (Qwen3.5 Gated DeltaNet, Nemotron-H Mamba-2): these layers keep a
    # constant per-sequence state instead of a growing KV cache. n_linear_attn_layers of the n_layers are of this kind;
    # the others are softmax attention (full, or sliding per `sliding_window` / `n_sliding_layers`).
    n_linear_attn_layers: int = 0
    linear_attn_kind: str = ""        # "" | "gdn" (Gated DeltaNet) | "mamba2" | "kda" (Kimi Delta Attention)
    linear_num_k_heads: int = 0       # GDN: query/key heads; Mamba-2: n_groups (B/C groups)
    linear_num_v_heads: int = 0       # GDN: value heads; Mamba-2: SSM heads
    linear_head_k_dim: int = 0        # GDN: key head dim; Mamba-2: ssm_state_size (d_state)
    linear_head_v_dim: int = 0        # GDN: value head dim; Mamba-2: head dim (P)
    linear_conv_kernel: int = 0       # causal depthwise conv width on the mixer's inputs
    linear_state_dtype: str = ""      # dtype of the recurrent state ("fp32" when the config says so; "" = 16-bit)
    attn_output_gate: bool = False    # Qwen3.5 full attention: q_proj also emits a sigmoid gate (2x query width);
                                      # on MLA (Kimi-K3 mla_use_output_gate): a hidden x n_heads*v_head_dim g_proj
    # Bounded-span attention other than a sliding window: Llama 4 chunked local attention is recorded as a window of
    # `sliding_window` = attention_chunk_size on `n_sliding_layers` layers (the KV of a chunk is at most that long).
    # DeepSeek sparse attention (GLM-5, DeepSeek-V3.2): a lightning indexer scores every cached token with
    # index_n_heads x index_head_dim and the MLA attends to the index_topk best; the indexer keys are cached too.
    index_topk: int = 0               # 0: dense attention
    index_n_heads: int = 0
    index_head_dim: int = 0
    # The checkpoint carries an encoder for other modalities (config.json `vision_config` / `audio_config`, e.g.
    # Qwen3.5, Kimi-K2.5). Neither the encoder nor a front-end cost is modelled: engines tokenize a text prompt to
    # such a model as to any other (vLLM's InputPreprocessor runs the multimodal processor only for requests with
    # multi_modal_data).
    multimodal: bool = False
    # DeepSeek-V4 compressed attention (`compress_ratios` per layer in config.json). Every layer attends to its last
    # `sliding_window` tokens plus compressed entries of one head_dim-wide KV head (key and value alike): the
    # n_csa_layers "compressed sparse attention" layers compress every csa_ratio (4) tokens into one entry and
    # attend to the index_topk best of them (a lightning indexer of index_n_heads x index_head_dim scores every
    # entry); the n_hca_layers "heavily compressed" layers compress every hca_ratio (128) tokens and attend to all
    # of them; the other layers (ratio 0) keep the window alone. Queries come from a q_lora_rank latent; the output
    # projection is grouped low-rank: o_groups groups of heads, each projected to o_lora_rank, then to the hidden.
    n_csa_layers: int = 0
    n_hca_layers: int = 0
    csa_ratio: int = 0
    hca_ratio: int = 0
    o_lora_rank: int = 0
    o_groups: int = 0
    # Manifold-constrained hyper-connections (DeepSeek-V4 `hc_mult`): the residual stream is hc_mult copies of the
    # hidden state, mixed into one before each attention / MLP block and expanded after it; 0: a plain residual
    hc_mult: int = 0
    # Blocks with an MLP and no token mixer (Nemotron-NAS / DeciLM's "no_op" attention, e.g. 31 of
    # Llama-3.3-Nemotron-Super-49B's 80 blocks): of the n_layers, neither softmax nor linear attention
    n_ffn_only_layers: int = 0
    # The non-expert weights' format where a checkpoint keeps them wider than its routed experts (DeepSeek-V4: FP4
    # experts, FP8 block-scaled attention, shared expert and head); "": as `quant_weight_dtype` (4-bit MoE
    # checkpoints then keep their attention in 16 bits, `inference.resolve.ATTN_16BIT_WEIGHTS`)
    dense_weight_dtype: str = ""
    # KV heads of the sliding-window layers where they differ from the full-attention layers' n_kv_heads
    # (MiMo-V2-Flash: 8 on its 39 window layers, 4 on its 9 full ones); 0: n_kv_heads on every attention layer.
    # Query heads are the same on both kinds (a config where they differ is refused by name)
    swa_n_kv_heads: int = 0
    # Head width (queries, keys, values and the output projection's input) of the sliding-window layers where it
    # differs from the full-attention layers' head_dim (Gemma 4: 256 beside its full layers' global_head_dim 512);
    # 0: head_dim on every attention layer. Needs values as wide as keys on both kinds (v_head_dim 0)
    swa_head_dim: int = 0
    # The full-attention layers' values come from their key projection (Gemma 4 `attention_k_eq_v`): the checkpoint
    # has no v_proj there, so the parameter counts leave it out; keys and values are still cached apart (the keys
    # normed and rotated, the values only normed), and vLLM / SGLang load k_proj into the value slot of their fused
    # QKV projection, so the serving cost (weights held, QKV GEMM) keeps a value projection
    k_eq_v: bool = False
    # Multi-token-prediction modules the checkpoint ships (config.json `num_nextn_predict_layers`, Qwen3.5 / Qwen3-Next
    # `mtp_num_hidden_layers`): one decoder layer each plus the shared LM head, not part of the costed forward; the
    # speculative-decoding knob (`inference.speculative`, method "mtp") drafts with them
    n_mtp_layers: int = 0
    # The checkpoint's quantization config keeps every layer's attention projections (self_attn) out of its 4-bit
    # format (Gemma-4-31B-IT-NVFP4): they are costed at 16 bits, as 4-bit MoE checkpoints always are
    # (`inference.resolve.ATTN_16BIT_WEIGHTS`); this carries it to dense checkpoints
    attn_16bit_weights: bool = False
    # The share (0-1) of the MoE layers whose shared experts, and of the other layers whose dense MLP, the
    # checkpoint's quantization config keeps out of its weight format (`catalog.quant.kept_16bit`: Kimi-K2.5's int4
    # and Kimi-K2.6's NVFP4 keep both; GLM-5.1-NVFP4 and Qwen3.5-397B-A17B-NVFP4 their shared experts): served in
    # the checkpoint's own format those GEMMs run and stream at 16 bits (`inference.core`, `inference.measured`)
    shared_16bit_share: float = 0.0
    dense_mlp_16bit_share: float = 0.0
    # A 4-bit MoE checkpoint whose quantization config says which attention projections it quantizes
    # (`catalog.quant.stored_shares`): the shares (0-1) of its softmax-attention layers stored in its own weight
    # format and in FP8, then of its linear-attention layers likewise (the rest 16-bit; Qwen3.6-35B-A3B-NVFP4: FP8
    # attention, Nemotron-3-Nano-NVFP4: most Mamba layers in NVFP4). Served in its own format those projections
    # run and stream so (`inference.resolve.attn_weight_params`); (): the config does not say, the engines' rule
    # (`inference.resolve.ATTN_16BIT_WEIGHTS`: 16 bits)
    attn_quant_shares: tuple[float, ...] = ()
    # Attention residuals (Kimi-K3 `attn_res_block_size`): each layer's attention and MLP inputs are a softmax mix
    # of the block-level outputs of earlier layers instead of a plain residual sum; 0: a plain residual. Its
    # weights are one vector per site (not counted, as norms); its cost is elementwise traffic per token
    attn_res_block_size: int = 0
    # MiniMax sparse attention (MiniMax-M3 `sparse_attention_config`) on a GQA model: an indexer of index_n_heads x
    # index_head_dim (query heads sharded over TP like the KV heads, one replicated key head cached per token, no
    # head-weight projection) scores every cached token, max-pools the scores per block of index_block tokens, and
    # each query attends to the best blocks plus its local / initial ones: at most index_topk tokens
    # ((sparse_topk_blocks + sparse_local_block + sparse_init_block) x sparse_block_size). 0: not this kind (the
    # DeepSeek lightning indexer where index_topk > 0)
    index_block: int = 0
    # attention layers with the sparse attention and its indexer (MiniMax-M3: 57 of 60); -1: every attention layer
    n_index_layers: int = -1

    @property
    def is_compressed_attention(self) -> bool:
        """DeepSeek-V4 compressed attention (CSA / HCA layers)."""
        return self.n_csa_layers + self.n_hca_layers > 0

    @property
    def is_deepseek_sparse(self) -> bool:
        """DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): an MLA model with a lightning indexer (index_topk),
        not DeepSeek-V4's compressed attention nor MiniMax's block-sparse GQA."""
        return bool(self.index_topk and self.kv_lora_rank and not self.is_compressed_attention
                    and not self.index_block)

    @property
    def n_attention_layers(self) -> int:
        """Softmax-attention layers (full, sliding-window or sparse): the layers that hold a KV cache."""
        return self.n_layers - self.n_linear_attn_layers - self.n_ffn_only_layers

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def has_mxfp4_experts(self) -> bool:
        """An MoE model whose checkpoint's experts are MXFP4 (gpt-oss): the experts the `moe_act_dtype` knob is for."""
        return self.is_moe and self.quant_scheme == "mxfp4"

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0
