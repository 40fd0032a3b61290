"""`spaces.llm_serving`'s list-valued knobs given a single value, and an `ep` no replica's tp x attn_dp can hold:
a TypeError ("'int' object is not iterable"), `formats="fp8"` read as ['f', 'p', '8'], or "the space has no
feasible point" with the whole constraint list were what came back. Each is refused naming the knob, the value
and what is valid."""
from __future__ import annotations

import pytest

import spaces
from dse.errors import SpaceError

MOE = "Qwen3-30B-A3B"


@pytest.mark.parametrize("knob,value", [("tp", 8), ("pp", 2), ("ep", 8), ("attn_dp", 8), ("formats", "fp8"),
                                        ("kv_dtypes", "fp8"), ("max_batch_sizes", 64), ("max_num_tokens", 8192),
                                        ("modes", "agg"), ("n_gpus", 8)])
def test_a_single_value_where_a_list_goes_is_refused_naming_the_knob(knob, value):
    with pytest.raises(SpaceError) as e:
        spaces.llm_serving(MOE, ["H100-SXM-80GB"], max_gpus=8, **{knob: value})
    msg = str(e.value)
    assert msg.startswith(f"{knob}={value!r}") and f"[{value!r}]" in msg, msg


def test_an_ep_no_replica_can_hold_names_the_valid_ones():
    # tp in 1, 2, 4, 8 and no attention DP: EP 3 divides no replica's GPUs, every configuration would fail
    with pytest.raises(SpaceError) as e:
        spaces.llm_serving(MOE, ["H100-SXM-80GB"], max_gpus=8, ep=[3, 4])
    msg = str(e.value)
    assert "ep=[3]" in msg and "[1, 2, 4, 8]" in msg and "no feasible point" not in msg, msg
    # with attention DP 3 it is a layout (tp 1 x attn_dp 3), so the space stands
    g = spaces.llm_serving(MOE, ["H100-SXM-80GB"], max_gpus=8, ep=[3], attn_dp=[3], n_gpus=[3, 6]).grid()
    assert set(g["ep"]) == {3} and len(g)
