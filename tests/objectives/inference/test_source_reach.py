"""A result row's `source` says "extrapolated" where one of its lookups lands beyond what the kernel tables measured
(`measured.beyond_reach`, `profiles.grid.Table.reach`), not only where a table's shape axes end."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from objectives import inference, profiles
from objectives.inference import measured
from objectives.profiles.grid import Table

LLAMA8 = "Llama-3.1-8B"


def test_decode_past_the_measured_context_of_its_batch_says_extrapolated():
    """H200 / vLLM measured decode attention at batch 256 (8 KV heads) up to 2,048 tokens of KV
    (tests/objectives/profiles/test_reach.py): a batch of 256 decoding at a mean 1,040 tokens of context reads
    measured cells, at 2,064 the trend the builder filled in beyond them."""
    r = inference.estimate(LLAMA8, "H200", engine="vllm", batch_size=256, input_len=16, output_len=[2048, 4096])
    assert list(r["source"]) == ["interpolated", "extrapolated"]
    # at batch 128 the collector went to 8,192 tokens: the same context is measured there
    r = inference.estimate(LLAMA8, "H200", engine="vllm", batch_size=128, input_len=16, output_len=4096)
    assert list(r["source"]) == ["interpolated"]


def test_a_long_forward_reads_the_token_tables_at_one_chunk(monkeypatch):
    """The engines run a forward of more tokens than their chunked-prefill budget in chunks of it
    (`measured.CHUNK_TOKENS`): the H200 vLLM GEMM tables, measured to m = 32,768, price 8 or 32 prompts of 2,048
    tokens (16,384 / 65,536 tokens a forward) from measured cells. A table line measured to fewer tokens than one
    chunk (here the GEMM tables cut to m <= 4,096) says "extrapolated" past its last cell: one prompt of 2,048
    tokens is inside, 8 of them are not."""
    assert profiles.load("H200-SXM-141GB", "vllm").table("gemm.bf16").axes[0][-1] == 32768.0
    kw = dict(model=LLAMA8, gpu="H200", engine="vllm", input_len=2048, output_len=64)
    assert list(inference.estimate(**kw, batch_size=[8, 32])["source"]) == ["interpolated", "interpolated"]
    load = profiles.load

    def short(*a, **k):
        p = load(*a, **k)
        if p is None:
            return p
        cut = {}
        for name, t in p.tables.items():
            if name.startswith("gemm."):
                m = np.broadcast_to((t.axes[0] <= 4096.0).reshape((-1,) + (1,) * (t.log_ms.ndim - 1)), t.log_ms.shape)
                cut[name] = Table(t.names, t.axes, t.log_ms, m if t.covered is None else (t.covered & m))
        return dataclasses.replace(p, tables={**p.tables, **cut})
    monkeypatch.setattr(profiles, "load", short)
    assert list(inference.estimate(**kw, batch_size=[1, 8])["source"]) == ["interpolated", "extrapolated"]


def test_max_throughput_checks_its_steady_state_iterations():
    """In flight, 64 sequences decode within the measured cells; 1,024 (the batch the KV cache admits, up to the
    max batch) read decode attention past the batch x context where the collector stopped."""
    r = inference.max_throughput(LLAMA8, "H200", engine="vllm", input_len=1024, output_len=256,
                                 max_batch_size=[64, 1024])
    assert r["batch_size"].iloc[1] > 512
    assert list(r["source"]) == ["interpolated", "extrapolated"]


def test_only_the_source_moves(monkeypatch):
    kw = dict(model=LLAMA8, gpu="H200", engine="vllm", batch_size=[8, 32, 256], input_len=[2048, 2048, 16],
              output_len=[64, 64, 4096])
    got = inference.estimate(**kw)
    monkeypatch.setattr(sys.modules["objectives.inference.estimate"], "beyond_reach", lambda *a, **k: False)
    blind = inference.estimate(**kw)
    assert list(got["source"]) == ["interpolated", "interpolated", "extrapolated"]
    assert list(blind["source"]) == ["interpolated"] * 3
    cols = ["ttft_ms", "tpot_ms", "throughput_tok_s", "mem_per_gpu_gib"]
    np.testing.assert_array_equal(got[cols].to_numpy(), blind[cols].to_numpy())


def test_a_profile_without_the_measured_cells_reads_as_before(monkeypatch):
    """A profile file written before the mask was recorded (a user's own `dse calibrate` or collector output): its
    cells all count as measured, so only its grid's edges bound the rows, as before."""
    load = profiles.load

    def old(*a, **kw):
        p = load(*a, **kw)
        if p is None:
            return p
        return dataclasses.replace(p, tables={k: Table(t.names, t.axes, t.log_ms) for k, t in p.tables.items()})
    monkeypatch.setattr(profiles, "load", old)
    r = inference.estimate(LLAMA8, "H200", engine="vllm", batch_size=256, input_len=16, output_len=[2048, 4096])
    assert list(r["source"]) == ["interpolated", "interpolated"]


@pytest.mark.parametrize("b, s, beyond", [(256.0, 2048.0, False), (256.0, 2060.0, True), (128.0, 8000.0, False),
                                          (200.0, 2040.0, False), (200.0, 3000.0, True), (4096.0, 16.0, True)])
def test_beyond_reach_reads_the_lines_a_lookup_interpolates_between(b, s, beyond):
    """Between two B_GRID batches the shorter measured line bounds the lookup; past the grid's largest batch every
    length is beyond."""
    from objectives.inference.core import prepare
    p = prepare(LLAMA8, "H200", 1, 1, None, None, None, 1, 1, None, None, engine="vllm")
    got = measured.beyond_reach(p.coeffs, 1.0, 1.0, None, ((b, b * s),))
    assert bool(np.asarray(got).ravel()[0]) == beyond
