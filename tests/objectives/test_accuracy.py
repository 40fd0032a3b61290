import numpy as np
import pytest

from objectives import accuracy


def test_known_formats_and_ordering():
    assert accuracy.quality("bf16") == 100.0
    assert accuracy.quality("fp8") > accuracy.quality("int8", "int8") > 90
    assert accuracy.quality("int4") == accuracy.quality("int4", "bf16")
    assert accuracy.quality("fp8", kv_dtype="fp8") < accuracy.quality("fp8")


def test_vectorized():
    q = accuracy.quality(np.array(["bf16", "fp8", "int4", "fp4"]), kv_dtype="fp8")
    assert q.shape == (4,) and (q <= 100).all() and q[0] == pytest.approx(99.8)


def test_unknown_format_lists_known():
    with pytest.raises(ValueError, match="known"):
        accuracy.quality("int3")
    with pytest.raises(ValueError, match="kv_dtype"):
        accuracy.quality("fp8", kv_dtype="int2")


def test_sources_are_cited():
    s = accuracy.sources()
    assert len(s) >= 10 and s["source"].str.len().min() > 10
    assert s["source"].str.contains("2411.02355").any()
