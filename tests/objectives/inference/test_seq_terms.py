"""The per-sequence terms of a forward (`ops.forward_s`): the engine's host time per sequence and the GPU's state
traffic per decoding sequence of linear-attention layers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from objectives import catalog
from objectives.inference import core
from objectives.inference.efficiency import FAMILIES
from objectives.inference.ops import busy_s, forward_s, idle_s
from objectives.inference.resolve import eff_lookup


def _seq_terms_only(c):
    """`c` with every term but the per-sequence ones at zero (no GEMMs, experts, attention, head, fixed time)."""
    zero = dict(lin_s_tok=0.0, lin_s_half=0.0, lin_mem_s=0.0, exp_s_tok=0.0, exp_s_half=0.0, exp_mem_s=0.0,
                n_experts=0.0, attn_s_pair=0.0, dec_kv_s=0.0, tok_s=0.0, head_s_row=0.0, head_s_half=0.0,
                head_mem_s=0.0, fixed_s=0.0, comm_fixed_s=0.0, sparse_span=0.0, curves=None)
    return dataclasses.replace(c, **zero)


@pytest.mark.parametrize("model", ["Qwen3.5-35B-A3B", "Nemotron-3-Nano-30B-A3B"])
def test_a_decoding_sequence_reads_and_writes_its_linear_attention_state_once_per_step(model):
    """Gated DeltaNet / Mamba-2 layers hold a constant state per sequence: each decode step reads it and writes it
    back once, 2 x its bytes at the KV read bandwidth per decoding sequence. The host's time per sequence is off
    here (`overhead_seq_us` 0), so what is left of a decode step's per-sequence terms is that traffic alone."""
    eff = core.default_eff()
    quiet = type(eff)({**eff.params, "overhead_seq_us": 0.0}, eff.meta)
    p = core.prepare(model, "H200", tp=1, engine="roofline", eff=quiet)
    c = _seq_terms_only(p.coeffs)
    g = catalog.gpu("H200")
    kv_bw = g.mem_bw_tbs * 1e12 * float(eff_lookup(quiet, "kv_read_eff", FAMILIES.index(g.family)))
    per_seq = 2.0 * float(np.squeeze(p.lc.state_bytes_per_seq)) / kv_bw
    assert per_seq > 0
    for b in (1.0, 64.0, 1024.0):
        assert float(forward_s(c, 0.0, 0.0, b, 0.0, b)) == pytest.approx(b * per_seq, rel=1e-9)
    # ... GPU work, not host time: the power model counts it busy
    assert float(idle_s(c, 64.0, 64.0)) == 0.0
    assert float(busy_s(c, 0.0, 0.0, 64.0, 0.0, 64.0)) == pytest.approx(64.0 * per_seq, rel=1e-9)


def test_the_host_time_per_sequence_is_paid_per_decode_and_per_logit_row_and_the_gpu_waits_for_it():
    """`engine_seq_us` on a profile row (`overhead_seq_us` on the roofline): a decode step of B sequences pays it
    2 B times (each sequence is scheduled and sampled), a prompt that finishes its prefill once; no linear
    attention here, so nothing else is per sequence, and all of it is time the GPU waits."""
    for engine, name in (("vllm", "engine_seq_us"), ("roofline", "overhead_seq_us")):
        p = core.prepare("Qwen3-30B-A3B", "H200", tp=1, engine=engine)
        per = p.eff[name]["vllm"] if engine == "vllm" else p.eff[name]
        c = _seq_terms_only(p.coeffs)
        assert float(np.squeeze(c.state_seq_s)) == 0.0
        for b in (1.0, 256.0, 1024.0):
            assert float(np.squeeze(forward_s(c, 0.0, 0.0, b, 0.0, b))) == pytest.approx(2.0 * b * per * 1e-6)
            assert float(np.squeeze(forward_s(c, 4096.0, 0.0, 0.0, 0.0, b))) == pytest.approx(b * per * 1e-6)
            assert float(np.squeeze(idle_s(c, b, b))) == pytest.approx(2.0 * b * per * 1e-6)
