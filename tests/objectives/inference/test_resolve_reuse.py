"""`resolve.reusing_factorized`: inside a block (every `core.reusing_prepared` one) an array of names equal to
one resolved there before reuses its resolution; changed values, missing values and bad values are resolved (and
refused) as outside it."""
from __future__ import annotations

import numpy as np
import pytest

from objectives import inference
from objectives.inference import core, resolve


def test_an_equal_array_reuses_its_resolution_and_a_changed_one_does_not() -> None:
    x = np.array(["fp8", None, "bf16", "fp8"], dtype=object)
    with resolve.reusing_factorized():
        a = resolve._factorize("kv_dtype", x)
        b = resolve._factorize("kv_dtype", x.copy()[:, None][:, 0])   # another object, equal values
        assert b is a and not a[1].flags.writeable
        x[1] = "fp8"                                                   # changed in place: resolved again
        c = resolve._factorize("kv_dtype", x)
        assert c is not a and c[1].tolist() == [0, 0, 1, 0] and a[1].tolist() == [0, -1, 1, 0]
        assert resolve._factorize("weight_dtype", x) is not c            # kept by argument name
        nan = np.array(["fp8", np.nan], dtype=object)                  # NaN differs from NaN: never reused
        assert resolve._factorize("kv_dtype", nan) is not resolve._factorize("kv_dtype", nan)
        mixed = np.array(["fp8", 1], dtype=object)                     # a value that is no name: not kept
        assert resolve._factorize("kv_dtype", mixed) is not resolve._factorize("kv_dtype", mixed)
    y = np.array(["fp8", "bf16"], dtype=object)
    assert resolve._factorize("kv_dtype", y) is not resolve._factorize("kv_dtype", y)   # outside a block


def test_codes_inside_a_block_equal_those_outside_and_bad_values_still_raise() -> None:
    good = np.array(["fp8", "bf16", None], dtype=object)
    bad = np.array(["fp8", "fp3", None], dtype=object)
    engines = np.array(["vllm", "SGLang", None, "trtllm==1.3.0rc20"], dtype=object)
    plain = (resolve.dtype_codes("kv_dtype", good, allow_none=True), core.engine_codes(engines))
    with core.reusing_prepared():
        for _ in range(2):
            assert resolve.dtype_codes("kv_dtype", good, allow_none=True).tolist() == plain[0].tolist()
            names, codes = core.engine_codes(engines)
            assert names == plain[1][0] and codes.tolist() == plain[1][1].tolist()
            with pytest.raises(ValueError, match=r"unknown kv_dtype 'fp3' in \['fp8', 'fp3', None\]"):
                resolve.dtype_codes("kv_dtype", bad, allow_none=True)
            with pytest.raises(ValueError, match="must be one of .* got a missing value"):
                resolve.dtype_codes("kv_dtype", good, allow_none=False)
            with pytest.raises(ValueError, match="unknown engine"):
                core.engine_codes(np.array(["vllm", "tgi"], dtype=object))


def test_a_sweep_priced_inside_a_block_equals_the_one_priced_outside() -> None:
    kw = dict(model="Llama-3.1-8B", gpu=np.array(["H100-SXM-80GB", "H200-SXM-141GB", "H100-SXM-80GB"], dtype=object),
              tp=1, input_len=1024, output_len=128, batch_size=np.array([8, 16, 32]),
              kv_dtype=np.array(["fp8", None, "bf16"], dtype=object),
              engine=np.array(["vllm", "sglang", "vllm"], dtype=object))
    out = inference.estimate(**kw)
    with core.reusing_prepared():
        first = inference.estimate(**kw)
        again = inference.estimate(**{**kw, "gpu": kw["gpu"].copy(), "engine": list(kw["engine"])})
    for col in ("ttft_ms", "tpot_ms", "throughput_tok_s"):
        assert first[col].tolist() == out[col].tolist() == again[col].tolist()
