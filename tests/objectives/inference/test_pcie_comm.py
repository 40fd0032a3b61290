"""Collectives on PCIe boxes and across nodes: are the measured tables read as what the engines run?

Physics checked here: a ring all-reduce of M bytes over n GPUs moves 2 (n - 1) / n x M through each GPU's link, so
on one box its bus bandwidth (that traffic over the time) stays near the link rate as n grows (PCIe Gen4 x16:
~25 GB/s per direction; NVLink: hundreds). aiconfigurator-core's L40S tables instead fall from 19-20 GB/s over
2 GPUs to 1.5-5 GB/s over 4 and 8 (the collection machine's degraded path, `profiles.build.DEGRADED_COMM_RANKS`);
the builder keeps their 2-GPU rows and re-derives the others by the ring relation. A TP group spanning two nodes
runs NCCL in every engine (their own all-reduce kernels need one node's IPC buffers or one NVLink fabric).
"""
from __future__ import annotations

import numpy as np
import pytest

from objectives import catalog, inference, profiles
from objectives.profiles.build import ring_from_ranks
from objectives.profiles.grid import Table

ENGINES = ("vllm", "sglang", "trtllm")
BIG = 2.0 ** 24  # message elements: a 2,048-token prefill of an 8,192-wide model, 32 MiB in bf16


def _busbw_gbs(table: Table, n: float, elems: float = BIG) -> float:
    """All-reduce bus bandwidth (GB/s) of `table` over `n` GPUs at `elems` bf16 elements."""
    return 2.0 * (n - 1.0) / n * elems * 2.0 / (float(table(n, elems)) * 1e-3) / 1e9


@pytest.mark.parametrize("engine", ENGINES)
def test_l40s_collectives_keep_the_pcie_rate_its_gpu_pairs_reach(engine):
    """The L40S engine and NCCL all-reduce tables: over 4 and 8 GPUs at least half the bus bandwidth of 2 GPUs
    (before: 3.7-5.1 and 1.5-2.3 GB/s against 19-20, a 32 MiB all-reduce over 8 GPUs taking 26-39 ms), the 2-GPU
    cells as measured, the 8-GPU small-message latency as measured (~25 µs), and lookups beyond 2 GPUs flagged as
    not measured."""
    prof = profiles.load("L40S", engine)
    for name in ("comm.custom_allreduce", "comm.nccl_all_reduce"):
        t = prof.table(name)
        pair = _busbw_gbs(t, 2.0)
        assert 15.0 < pair < 25.0, (name, pair)                      # PCIe Gen4 x16 between two GPUs
        for n in (4.0, 8.0):
            assert _busbw_gbs(t, n) > 0.5 * pair, (name, n, _busbw_gbs(t, n), pair)
            assert float(t.reach(1, n)) == 0.0                       # re-derived: not a measured cell
        assert 0.015 < float(t(8.0, 256.0)) < 0.04                    # small messages: latency as measured
        assert float(t.reach(1, 2.0)) >= BIG


def test_every_profile_keeps_at_least_half_its_two_gpu_bus_bandwidth_at_its_largest_group():
    """A guard on every shipped comm table: one box's collectives do not lose more than half their bus bandwidth
    from 2 GPUs to the table's largest group (NVLink boxes gain; the RTX PRO 6000's PCIe Gen5 box keeps 65 %, the
    Arc Pro B60's ~93 %). A table that does names a degraded collection machine for `DEGRADED_COMM_RANKS`."""
    checked = 0
    for gpu in profiles.SYSTEMS:
        for engine in profiles.available(gpu):
            prof = profiles.load(gpu, engine)
            for name in ("comm.custom_allreduce", "comm.nccl_all_reduce"):
                t = prof.table(name) if prof is not None else None
                if t is None or 2.0 not in t.axes[0]:
                    continue
                top = float(t.axes[0][-1])
                assert _busbw_gbs(t, top) > 0.5 * _busbw_gbs(t, 2.0), (gpu, engine, name)
                checked += 1
    assert checked > 20


def test_l40s_measured_prefill_gets_faster_with_tensor_parallelism():
    """Llama-3.1-70B fp8, one 2,048-token prompt on L40S: the 160 all-reduces of 32 MiB no longer dominate at TP 4
    / 8 (before: TTFT 0.7 / 2.5 / 5.0 s at TP 2 / 4 / 8 on vLLM), TP 8 is no slower than TP 2 on any engine, and the
    rows beyond the 2-GPU cells say they are extrapolated."""
    for engine in ENGINES:
        r = inference.estimate("Llama-3.1-70B", "L40S", tp=[2, 4, 8], weight_dtype="fp8", batch_size=1,
                               input_len=2048, output_len=1, engine=engine)
        t = r.ttft_ms.to_numpy()
        assert t[1] < 1.1 * t[0] and t[2] < 1.1 * t[1], (engine, t)
        assert list(r.source) == ["interpolated", "extrapolated", "extrapolated"]


def test_ring_from_ranks_rederives_the_rows_beyond_the_healthy_ones():
    ranks, sizes = np.array([2.0, 4.0, 8.0]), np.array([1e3, 1e6, 1e9])
    ms = np.array([[0.01, 0.1, 10.0],     # 2 GPUs
                   [0.02, 1.0, 100.0],    # 4 GPUs: degraded
                   [0.03, 0.05, 500.0]])  # 8 GPUs: one cell faster than the ring relation gives
    t = ring_from_ranks(Table(("num_gpus", "message_size"), (ranks, sizes), np.log(ms)), 2)
    out = np.exp(t.log_ms)
    assert np.allclose(out[0], ms[0])
    # (n - 1) / n over 1 / 2: 1.5 at 4 GPUs, 1.75 at 8, on the time above the row's smallest-message latency
    assert out[1] == pytest.approx([0.02, 0.02 + 1.5 * 0.09, 0.02 + 1.5 * 9.99])
    assert out[2] == pytest.approx([0.03, 0.05, 0.03 + 1.75 * 9.99])
    assert t.covered is not None and t.covered[0].all() and not t.covered[1:].any()
    with pytest.raises(ValueError, match="good = 8"):
        ring_from_ranks(t, 8)


def test_tp_groups_spanning_hgx_nodes_run_nccl_not_the_engines_own_all_reduce(monkeypatch):
    """TP 16 over two HGX H100 nodes: vLLM's CustomAllreduce is disabled for a group spanning nodes, TensorRT-LLM's
    AllreduceOp falls back to NCCL without P2P / NVLink across the group, so the in-node stage of each of a decode
    step's 252 all-reduces is NCCL's table (before: the engine's own, ~2x faster for one token's message). Inside
    one node (TP 8) the engine's own table still prices them."""
    kw = dict(model="Llama-3.1-405B", gpu="H100", weight_dtype="fp8", batch_size=1, input_len=2048, output_len=256)
    one = 16384.0  # one token's hidden state
    for engine in ENGINES:
        prof = profiles.load("H100-SXM-80GB", engine)
        own, nccl = prof.table("comm.custom_allreduce"), prof.table("comm.nccl_all_reduce")
        base = inference.estimate(tp=[8, 16], engine=engine, **kw).tpot_ms.to_numpy()
        with monkeypatch.context() as mp:
            mp.setitem(prof.tables, "comm.nccl_all_reduce", own)   # NCCL priced as the engine's own kernel
            swapped = inference.estimate(tp=[8, 16], engine=engine, **kw).tpot_ms.to_numpy()
        gap_ms = float(nccl(8.0, one) - own(8.0, one))
        assert gap_ms > 0.005, (engine, gap_ms)
        assert swapped[0] == pytest.approx(base[0], rel=1e-12)       # TP 8: the engine's own all-reduce
        assert base[1] - swapped[1] > 0.5 * 252 * gap_ms, (engine, base, swapped, gap_ms)


def _scale_out_systems() -> list[str]:
    return [g for g, s in catalog.systems().items() if s.scale_out_gbs > 0 and s.scale_up_gpus == 8]


def test_tp16_across_two_nodes_never_serves_a_prompt_token_cheaper_per_gpu_than_tp8_in_one():
    """On every catalog system of 8-GPU nodes with a scale-out network, every engine: TP 16 over two nodes with 64
    prompts has the per-GPU work of TP 8 with 32 (the same GEMM FLOPs and attention per GPU) and strictly more
    communication (twice the message inside the node plus the network stage), so its prefill is no faster.

    TP 16 at the same batch as TP 8 may prefill faster where the GPU's compute is slow against its NIC: on A100
    (312 dense TFLOP/s, 200 Gb/s per GPU) Llama-3.1-70B's 131k-token prefill halves ~10 s of GEMMs and adds ~3.5 s of
    network stage. That is the physics of the two-level all-reduce (its network stage moves each GPU's 1/8 shard
    through its own NIC), not a formula error: the model's network time equals a flat 16-GPU NCCL ring's at ~94 %
    of the NICs' line rate, and it adds the in-node stage in series."""
    for gpu in _scale_out_systems():
        for engine in ("roofline", *profiles.available(gpu)):
            r = inference.estimate("Llama-3.1-70B", gpu, tp=[8, 16], batch_size=[32, 64], weight_dtype="bf16",
                                   input_len=2048, output_len=256, engine=engine)
            assert r.fits.all(), (gpu, engine, list(r.reason))
            t8, t16 = r.ttft_ms.to_numpy()
            assert t16 > 1.2 * t8, (gpu, engine, t8, t16)
