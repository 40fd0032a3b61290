"""The `engine` knob as a user writes it (issue 13 item 3): versions, bad names, missing values in a column, and a
mixed column costed in one vectorized call equal to the one-at-a-time calls."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from objectives import inference, profiles
from objectives.inference.core import engine_codes

KW = dict(model="Llama-3.1-8B", tp=1, batch_size=8, input_len=1024, output_len=128)


def test_missing_engine_in_a_column_means_the_default_as_none_does():
    # a study or CSV column with an empty cell holds NaN (pandas), not None
    col = pd.Series(["sglang", np.nan, None, "vllm"], dtype=object)
    names, codes = engine_codes(col)
    assert names == ("sglang", "auto", "vllm") and list(codes) == [0, 1, 1, 2]
    r = inference.estimate(**KW, gpu="H200", engine=col)
    assert list(r["engine"]) == ["sglang", "vllm", "vllm", "vllm"]
    assert r["tpot_ms"].iloc[1] == r["tpot_ms"].iloc[2] == r["tpot_ms"].iloc[3]


def test_engine_codes_of_a_long_column_match_the_scalar_codes():
    rng = np.random.default_rng(0)
    vals = np.array(["vllm", "SGLang", "trtllm==1.3.0rc20", "roofline", "auto", "tensorrt-llm"],
                    dtype=object)[rng.integers(0, 6, 5000)]
    names, codes = engine_codes(vals)
    assert [names[c] for c in codes] == [engine_codes(v)[0][0] for v in vals]
    assert codes.shape == vals.shape and codes.dtype == np.int64


def test_unknown_engine_lists_every_accepted_value():
    with pytest.raises(ValueError) as e:
        inference.estimate(**KW, gpu="H200", engine="tgi")
    msg = str(e.value)
    assert "'tgi'" in msg and all(n in msg for n in ("vllm", "sglang", "trtllm", "roofline", "auto"))


@pytest.mark.parametrize("spelling", ["sglang==", "sglang@", "vllm: "])
def test_an_empty_version_is_refused_not_read_as_the_newest(spelling):
    with pytest.raises(ValueError, match="empty version"):
        profiles.resolve_engine(spelling)


def test_version_forms_and_an_unknown_version_on_that_gpu():
    have = profiles.available("H200")["vllm"]
    a = inference.estimate(**KW, gpu="H200", engine=[f"vllm@{have[0]}", f"vllm=={have[0]}", "vllm"])
    assert a["tpot_ms"].nunique() == 1
    with pytest.raises(ValueError, match=rf"versions available: {have[0]}"):
        inference.estimate(**KW, gpu="H200", engine="vllm@0.1.0")
