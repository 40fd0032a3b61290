"""Pareto extraction, hypervolume and decision making against brute-force references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dse import pareto

directions_st = st.lists(st.sampled_from(["min", "max"]), min_size=2, max_size=4)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dirs=directions_st)
def test_nondominated_equals_brute_force(data, dirs):
    n = data.draw(st.integers(0, 40))
    # few distinct values, so that ties and duplicates are frequent
    F = data.draw(arrays(float, (n, len(dirs)), elements=st.sampled_from([0.0, 1.0, 2.0, 3.5, -1.0, np.nan])))
    fast = pareto.nondominated_mask(F, dirs)
    slow = pareto.brute_force_nondominated(F, dirs)
    assert fast.tolist() == slow.tolist()


def test_nondominated_respects_directions():
    F = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 5.0]])
    assert pareto.nondominated_mask(F, ["min", "max"]).tolist() == [True, True, False]
    assert pareto.nondominated_mask(F, ["min", "min"]).tolist() == [True, False, True]


def test_hypervolume_of_known_staircase():
    # two points, minimization, ref (4, 4): union of [1,4]x[3,4] and [3,4]x[1,4] = 3 + 3 - 1 = 5
    hv = pareto.hypervolume(np.array([[1.0, 3.0], [3.0, 1.0]]), ["a", "b"], ["min", "min"], ref=[4.0, 4.0])
    assert hv.value == pytest.approx(5.0)
    assert hv.ref == {"a": 4.0, "b": 4.0}


def test_hypervolume_with_maximized_objective_matches_negated_problem():
    F = np.array([[1.0, 3.0], [3.0, 1.0]])
    G = F.copy()
    G[:, 1] *= -1  # maximize -b  == minimize b
    hv_min = pareto.hypervolume(F, ["a", "b"], ["min", "min"], ref=[4.0, 4.0]).value
    hv_max = pareto.hypervolume(G, ["a", "b"], ["min", "max"], ref={"a": 4.0, "b": -4.0}).value
    assert hv_min == pytest.approx(hv_max)


def test_hypervolume_default_reference_is_returned_and_contains_points():
    F = np.array([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0]])
    hv = pareto.hypervolume(F, ["a", "b"], ["min", "min"])
    assert hv.ref["a"] > 3.0 and hv.ref["b"] > 3.0 and hv.value > 0


def test_hypervolume_rejects_bad_reference():
    with pytest.raises(ValueError, match="lacks"):
        pareto.hypervolume(np.ones((1, 2)), ["a", "b"], ["min", "min"], ref={"a": 1.0})
    with pytest.raises(ValueError, match="expected 2"):
        pareto.hypervolume(np.ones((1, 2)), ["a", "b"], ["min", "min"], ref=[1.0, 2.0, 3.0])


def test_knee_of_convex_front_is_interior():
    x = np.linspace(0, 1, 21)
    F = np.column_stack([x, (1 - np.sqrt(x)) ** 2])  # strongly bent front
    k = pareto.knee_index(F, ["min", "min"])
    assert 0 < k < 20


def test_weighted_choice_follows_weights():
    x = np.linspace(0, 1, 11)
    F = np.column_stack([x, 1 - x])
    assert F[pareto.weighted_index(F, ["min", "min"], [1.0, 0.0])][0] == pytest.approx(0.0)
    assert F[pareto.weighted_index(F, ["min", "min"], [0.0, 1.0])][1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="non-negative"):
        pareto.weighted_index(F, ["min", "min"], [-1.0, 1.0])


def test_direction_spellings():
    assert pareto.normalize_direction("x", "Minimize") == "min"
    assert pareto.normalize_direction("x", "max") == "max"
    with pytest.raises(ValueError, match="'up'"):
        pareto.normalize_direction("x", "up")
