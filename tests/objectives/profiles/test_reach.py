"""What a kernel table measured (`grid.Table.covered`, `Table.reach`): recorded by the builder, stored in the
profile file, absent from older files (every cell then counts as measured)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import profiles
from objectives.profiles import build
from objectives.profiles.grid import Table, covered_cells
from objectives.profiles.profile import KernelProfile, read, save


def _staircase() -> pd.DataFrame:
    """A generation-attention-like table stopping at a total of batch x length = 4096 (one KV-head count), one
    interior cell missing (batch 2, length 64)."""
    rows = [(b, s, 1.0, 1e-3 * b * s) for b in (1, 2, 4, 8) for s in (16, 64, 256, 1024, 4096) if b * s <= 4096]
    rows = [r for r in rows if (r[0], r[1]) != (2, 64)]
    return pd.DataFrame(rows, columns=["batch_size", "kv_len", "heads", "latency"])


def test_covered_cells_are_the_measured_ones_and_the_gaps_between_them():
    m = np.array([[True, False, True, False],
                  [False, False, False, False],
                  [True, True, False, False]])
    got = covered_cells(m)
    # (0, 1) lies between measured cells of its row, (1, 0) of its column; the ends beyond a line's measured
    # cells were extended, not measured
    assert got.tolist() == [[True, True, True, False],
                            [True, False, False, False],
                            [True, True, False, False]]


def test_the_builder_keeps_what_was_measured_beside_its_fills():
    df = _staircase()
    # two head counts (a Table axis needs two values): the same cells at 1 and 2 heads
    both = pd.concat([df, df.assign(heads=2.0, latency=df["latency"] * 2)])
    t = build._table(both, ["batch_size", "kv_len", "heads"], [1, 0, 2], trend_axis=1)
    assert t is not None and t.covered is not None
    # the interior gap (batch 2, length 64) counts as measured; the trend fill beyond each batch's last length not
    b2, s64 = list(t.axes[0]).index(2.0), list(t.axes[1]).index(64.0)
    assert t.covered[b2, s64, 0]
    assert np.isfinite(t.log_ms).all()
    for b, top in ((1.0, 4096.0), (2.0, 1024.0), (4.0, 1024.0), (8.0, 256.0)):
        assert t.reach(1, b, 1.0) == top, b
    # between two batches the shorter line bounds the lookup; beyond the largest batch nothing is measured
    assert t.reach(1, 3.0, 1.0) == 1024.0 and t.reach(1, 6.0, 1.5) == 256.0
    assert t.reach(1, 16.0, 1.0) == 0.0


def test_the_covered_mask_round_trips_through_a_profile_file_and_an_old_file_loads(tmp_path):
    df = _staircase()
    both = pd.concat([df, df.assign(heads=2.0, latency=df["latency"] * 2)])
    t = build._table(both, ["batch_size", "kv_len", "heads"], [1, 0, 2], trend_axis=1)
    full = Table(("m", "n"), (np.array([1.0, 2.0]), np.array([8.0, 16.0])), np.zeros((2, 2)),
                 np.ones((2, 2), dtype=bool))
    prof = KernelProfile("h200_sxm", "vllm", "0.0", "test", {"generation_attention.bf16": t, "gemm.bf16": full})
    f = tmp_path / "p.npz"
    save(prof, f)
    with np.load(f) as z:
        names = set(z.files)
    # bit-packed, and only for a table with unmeasured cells
    assert "generation_attention.bf16|covered" in names and "gemm.bf16|covered" not in names
    back = read(f)
    assert np.array_equal(back.table("generation_attention.bf16").covered, t.covered)
    assert back.table("gemm.bf16").covered is None
    # an old file (written before the mask was recorded): loads, every cell counts as measured
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files if not k.endswith("|covered")}
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **arrays)
    o = read(old).table("generation_attention.bf16")
    assert o.covered is None and np.array_equal(o.log_ms, back.table("generation_attention.bf16").log_ms)
    assert o.reach(1, 8.0, 1.0) == 4096.0       # the grid's last length: as before, only the grid edge bounds it


def test_reach_rejects_a_wrong_number_of_coordinates():
    t = Table(("m", "n"), (np.array([1.0, 2.0]), np.array([8.0, 16.0])), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="1 other coordinates needed, got 2"):
        t.reach(0, 8.0, 1.0)
    with pytest.raises(ValueError, match="covered mask of shape"):
        Table(("m", "n"), (np.array([1.0, 2.0]), np.array([8.0, 16.0])), np.zeros((2, 2)), np.ones(3, dtype=bool))


def test_a_shipped_generation_table_knows_where_its_collector_stopped():
    """H200 under vLLM 0.24.0: aiconfigurator-core's generation-attention table measured batch 256 at 8 KV heads
    up to 2,048 tokens of KV (batch x KV length stops at a total); the profile fills the longer contexts on the
    line's trend (`grid.extend_trend`) and records that they were not measured."""
    p = profiles.load("H200-SXM-141GB", "vllm")
    t = p.table("generation_attention.bf16")
    assert t.covered is not None
    b, h = list(t.axes[0]).index(256.0), list(t.axes[2]).index(8.0)
    s = t.axes[1]
    assert t.covered[b, s <= 2048, h].all() and not t.covered[b, s > 2048, h].any()
    assert t.reach(1, 256.0, 8.0) == 2048.0 and t.reach(1, 128.0, 8.0) == 8192.0
    root = build.aiconfigurator_root()
    if root is not None:   # the raw table says the same
        f = root / "h200_sxm" / "attention" / "vllm" / "0.24.0" / "generation_attention_perf.parquet"
        if f.exists():
            d = pd.read_parquet(f)
            d = d[(d["batch_size"] == 256) & (d["num_key_value_heads"] == 8) & (d["head_dim"] == 128)]
            assert int((d["step"] + d["isl"]).max()) == 2048
