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


def test_a_point_one_ulp_cheaper_but_slower_is_dominated():
    """The trace study's trials 77 and 69: the same GPUs and tokens, usd_per_mtok summed in another order
    (2.299313215951638 vs 2.2993132159516385, 1 ulp), 77's p99 TTFT 3 ms worse: 77 stayed on the front by that
    ulp alone. Values equal up to rounding (`pareto.TIE_RTOL`) tie, so 69 dominates it; a real difference (1e-9
    relative) still counts."""
    F = np.array([[2.299313215951638, 124.66], [2.2993132159516385, 121.67]])
    assert np.nextafter(F[0, 0], 3.0) == F[1, 0]
    assert pareto.nondominated_mask(F, ["min", "min"]).tolist() == [False, True]
    apart = F.copy()
    apart[0, 0] *= 1 - 1e-9
    assert pareto.nondominated_mask(apart, ["min", "min"]).tolist() == [True, True]
    # both ways of a maximized objective, and the brute-force reference, agree
    assert pareto.nondominated_mask(-F, ["max", "max"]).tolist() == [False, True]
    assert pareto.brute_force_nondominated(F, ["min", "min"]).tolist() == [False, True]


terms_st = st.lists(st.floats(1e-3, 1e3, allow_nan=False), min_size=2, max_size=6)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_front_does_not_depend_on_the_order_an_objective_sums_its_terms(data):
    """Property: each point's first objective a sum of positive terms, the second a value of its own; summing the
    terms in another order (a permutation, or another association: pairwise vs left to right) moves the sums by a
    few ulps, and the front stays the same set of points."""
    n = data.draw(st.integers(2, 12))
    shared = data.draw(terms_st)                       # several points cost the same terms (equal by design)
    rows = [data.draw(st.one_of(st.just(shared), terms_st)) for _ in range(n)]
    second = data.draw(arrays(float, (n,), elements=st.sampled_from([1.0, 2.0, 3.0, 4.0])))

    def left(terms):
        total = 0.0
        for t in terms:
            total += t
        return total

    def pairwise(terms):
        return terms[0] if len(terms) == 1 else pairwise(terms[: len(terms) // 2]) + pairwise(terms[len(terms) // 2:])

    base = np.column_stack([[left(r) for r in rows], second])
    perms = [data.draw(st.permutations(r)) for r in rows]
    for summed in ([left(p) for p in perms], [pairwise(p) for p in perms], [float(np.sum(p)) for p in perms]):
        other = np.column_stack([summed, second])
        assert np.allclose(other[:, 0], base[:, 0], rtol=1e-14, atol=0)
        for dirs in (["min", "min"], ["max", "min"]):
            assert pareto.nondominated_mask(other, dirs).tolist() == pareto.nondominated_mask(base, dirs).tolist()


def test_tied_is_independent_of_the_row_order():
    rng = np.random.default_rng(0)
    v = np.array([1.0, np.nextafter(1.0, 2.0), 1.0 + 1e-6, np.nan, np.inf, 2.0])
    F = v[:, None]
    for _ in range(10):
        order = rng.permutation(len(v))
        assert np.array_equal(pareto.tied(F[order])[np.argsort(order)], pareto.tied(F), equal_nan=True)
    assert pareto.tied(F)[:, 0][:3].tolist() == [1.0, 1.0, 1.0 + 1e-6]


def test_ties_never_chain_beyond_the_tolerance():
    """A run of ties is anchored at its least value: values 0.9e-12 apart do not chain across 1.8e-9 into one, and a
    dominated point within the tolerance of two front points cannot knock one of them off (the third review)."""
    v = 1.0 + 0.9e-12 * np.arange(2000)
    t = pareto.tied(v[:, None])[:, 0]
    assert np.all(t <= v) and np.all(v - t <= pareto.TIE_RTOL * v) and len(np.unique(t)) > 900
    A, B, C = (1.0, 5.0), (1.0 - 1.5e-12, 6.0), (1.0 - 0.75e-12, 100.0)
    assert pareto.nondominated_mask(np.array([A, B]), ["min", "min"]).tolist() == [True, True]
    assert pareto.nondominated_mask(np.array([A, B, C]), ["min", "min"])[:2].tolist() == [True, True]


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
