"""A space whose GPUs hold the model in none of its layouts and formats is refused when it is built (every trial
would fail out of memory), naming the model, the GPU, the memory needed against the GPU's and what would hold it; so
is a space where only some GPUs hold it nowhere (every trial on those would fail), naming them."""
from __future__ import annotations

import numpy as np
import pytest

import spaces
import spaces.llm
from dse import SpaceError
from objectives import inference


def _grid_fits(space) -> np.ndarray:
    """fits of `inference.max_throughput` on every point of ``space``'s grid, as a trial's cost model sees it."""
    g = space.grid()
    mt = inference.max_throughput("Llama-3.1-70B", g["gpu"].to_numpy(object), tp=g["tp"].to_numpy(),
                                  pp=g["pp"].to_numpy(), weight_dtype=g["weight_dtype"].to_numpy(object),
                                  act_dtype=g["act_dtype"].to_numpy(object), kv_dtype=g["kv_dtype"].to_numpy(object),
                                  input_len=128, output_len=16, max_batch_size=g["max_batch_size"].to_numpy(),
                                  max_num_tokens=g["max_num_tokens"].to_numpy())
    return mt["fits"].to_numpy(bool)


def test_space_no_gpu_holds_is_refused_with_what_would_fit():
    with pytest.raises(SpaceError) as exc:
        spaces.llm_serving("Llama-3.1-70B", ["L4"], max_gpus=1)
    msg = str(exc.value)
    assert "Llama-3.1-70B" in msg and "L4 (22.5 GiB)" in msg and "every trial would fail" in msg
    assert "int4 weights) needs 38.1 GiB per GPU" in msg          # the lightest configuration of the space
    assert "at least 2 L4 GPUs in int4 (max_gpus >= 2" in msg      # what would hold it


def test_refusal_agrees_with_the_trials_cost_model(monkeypatch):
    # without the check the space is built and every point of it is out of memory ...
    monkeypatch.setattr(spaces.llm, "_check_memory", lambda *a, **k: None)
    space = spaces.llm_serving("Llama-3.1-70B", ["L4"], max_gpus=1)
    assert len(space.grid()) > 0 and not _grid_fits(space).any()
    monkeypatch.undo()
    # ... and with the GPU count the refusal names, the space is built and some point fits
    space = spaces.llm_serving("Llama-3.1-70B", ["L4"], max_gpus=2)
    assert _grid_fits(space).any()


def test_smaller_formats_are_named():
    with pytest.raises(SpaceError, match=r"on H100-SXM-80GB .*bf16 weights\) needs .*at least 2 H100-SXM-80GB GPUs "
                                         r"in bf16.*formats=\['fp8', 'int8', 'w8a16', 'w4a16'\]"):
        spaces.llm_serving("Llama-3.1-70B", ["H100"], max_gpus=1, formats=["bf16"])


def test_gpu_type_that_never_holds_it_says_so():
    # an L4 box has no scale-out network: past its 8 GPUs no deployment runs, and 8 L4s do not hold 405B
    with pytest.raises(SpaceError, match=r"Llama-3.1-405B fits on no GPU.*no number of L4 GPUs holds it.*scale-up"):
        spaces.llm_serving("Llama-3.1-405B", ["L4"], max_gpus=8)


def test_some_gpus_hold_it_nowhere_is_refused_naming_them():
    # every trial on the L4s would fail: the space refuses them, naming the most L4s it offers, the memory needed
    # and what is valid (the GPUs that hold it); the H200s alone build
    with pytest.raises(SpaceError) as exc:
        spaces.llm_serving("Llama-3.1-405B", ["L4", "H200"], max_gpus=8)
    msg = str(exc.value)
    assert "Llama-3.1-405B fits on none of ['L4']" in msg and "(at most 8 L4 GPUs)" in msg
    assert "on L4 (22.5 GiB) its lightest configuration" in msg and "every trial on it would fail" in msg
    assert "Valid: the GPUs that hold it, gpus=['H200-SXM-141GB']" in msg
    assert set(spaces.llm_serving("Llama-3.1-405B", ["H200"], max_gpus=8).grid()["gpu"]) == {"H200-SXM-141GB"}


def test_spaces_that_fit_build_and_keep_every_gpu():
    # every GPU holds the model in some layout: the space builds and offers each (none refused, none dropped)
    sp = spaces.llm_serving("Llama-3.1-8B", ["L4", "H100"], max_gpus=2)
    assert set(sp.grid()["gpu"]) == {"L4", "H100-SXM-80GB"}
    assert set(spaces.llm_serving("Llama-3.1-70B", ["L4"], max_gpus=2).grid()["gpu"]) == {"L4"}
