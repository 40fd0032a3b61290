"""GPU counts a user asks for explicitly (helper u14c's pass): a count no layout of the space reaches is refused by
name, not dropped from the grid."""
from __future__ import annotations

import pytest

import spaces
from dse import SpaceError


def test_explicit_gpu_counts_no_layout_reaches_are_refused_by_name():
    # n_gpus=[4, 6] for Llama-3.1-70B gave a grid of 4-GPU deployments only (6 = tp x pp has no valid tp / pp
    # pair, and without replicas no dp): the 6 the user asked for vanished without a word
    with pytest.raises(SpaceError, match=r"n_gpus \[6\].*reach.*\[4\]"):
        spaces.llm_serving("Llama-3.1-70B", ["H100"], max_gpus=8, n_gpus=[4, 6])
    with pytest.raises(SpaceError, match=r"n_gpus \[3\].*replicas=True"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=8, n_gpus=[2, 3])
    # with replicas every odd count is a number of TP 1 replicas
    g = spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=8, n_gpus=[2, 3, 5], replicas=True).grid()
    assert sorted(g["n_gpus"].unique()) == [2, 3, 5]


def test_default_counts_follow_node_shapes_without_complaint():
    g = spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=16).grid()
    assert sorted(g["n_gpus"].unique()) == [1, 2, 4, 8, 16]


def test_counts_none_of_which_is_reached_are_named_too():
    with pytest.raises(SpaceError, match=r"n_gpus \[3, 5, 6\].*replicas=True.*node-shape counts.*\[1, 2, 4, 8\]"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=8, n_gpus=[3, 5, 6])
    # a space empty for another reason keeps the rules' own message
    with pytest.raises(SpaceError, match="no feasible point"):
        spaces.llm_serving("Llama-3.1-8B", ["H100"], max_gpus=8, n_gpus=[2], max_batch_sizes=(512,),
                           max_num_tokens=(256,))
