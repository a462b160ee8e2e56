"""k-center greedy: equal to a plain numpy implementation, within the 2-approximation bound."""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest

from hf_mmbuilder.kernels.kcenter import kcenter_greedy


def numpy_kcenter(matrix, k, metric, start=(), weights=None):
    """Textbook k-center greedy in float64: distances to each new centre, running minimum, argmax."""
    x = matrix.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    distance = np.full(len(x), np.inf)
    chosen = np.zeros(len(x), dtype=bool)

    def add(row):
        nonlocal distance
        step = np.sqrt(((x - x[row]) ** 2).sum(axis=1)) if metric == "l2" else 1.0 - x @ x[row]
        distance = np.minimum(distance, step)
        chosen[row] = True

    for row in start:
        add(row)
    w = np.ones(len(x)) if weights is None else weights
    order = []
    for _ in range(k):
        if not chosen.any():
            row = int(np.argmax(w)) if weights is not None else 0
        else:
            row = int(np.argmax(np.where(chosen, -1.0, w * distance)))
        order.append(row)
        add(row)
    return order


def clustered(n, d, clusters, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)) * 4
    return (centres[rng.integers(0, clusters, n)] + rng.normal(size=(n, d))).astype(dtype)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("prune", [True, False])
def test_first_50_centres_equal_numpy(metric, prune):
    x = clustered(4000, 48, 30, seed=1)
    order, radius = kcenter_greedy(x, 60, metric=metric, prune=prune)
    assert order[:50].tolist() == numpy_kcenter(x, 50, metric)
    assert len(set(order.tolist())) == 60
    assert np.isinf(radius[0]) and np.all(np.diff(radius[1:]) <= 1e-5)


def test_float16_storage_matches_numpy_on_the_same_values():
    x = clustered(3000, 64, 20, seed=2, dtype=np.float16)
    order, _ = kcenter_greedy(x, 50, metric="cosine")
    assert order.tolist() == numpy_kcenter(x.astype(np.float32), 50, "cosine")


def test_pruning_skips_nothing_that_matters_on_many_steps():
    x = clustered(5000, 32, 200, seed=3)
    pruned, pruned_radius = kcenter_greedy(x, 400, metric="l2", prune=True)
    full, full_radius = kcenter_greedy(x, 400, metric="l2", prune=False)
    assert pruned.tolist() == full.tolist()
    np.testing.assert_allclose(pruned_radius, full_radius, rtol=1e-6)


def test_start_rows_are_centres_and_never_returned():
    x = clustered(2000, 16, 10, seed=4)
    start = [5, 17, 900]
    order, radius = kcenter_greedy(x, 40, metric="l2", start=np.array(start))
    assert not set(order.tolist()) & set(start)
    assert order.tolist() == numpy_kcenter(x, 40, "l2", start=start)
    assert np.isfinite(radius[0])


def test_weighted_variant_matches_numpy():
    x = clustered(2000, 16, 10, seed=5)
    weights = np.random.default_rng(5).random(2000).astype(np.float32)
    order, _ = kcenter_greedy(x, 40, metric="l2", weights=weights)
    assert order.tolist() == numpy_kcenter(x, 40, "l2", weights=weights.astype(np.float64))
    assert order[0] == int(np.argmax(weights))


def covering_radius(x, centres, metric):
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return float((1.0 - x @ x[list(centres)].T).min(axis=1).max())
    return float(np.sqrt(((x[:, None, :] - x[None, list(centres), :]) ** 2).sum(-1)).min(axis=1).max())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_covering_radius_within_twice_the_brute_force_optimum(seed, metric):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(13, 3)).astype(np.float32)
    x[:, 0] += 3.0 * (np.arange(13) % 3)
    x64 = x.astype(np.float64)
    for k in (2, 3, 4):
        optimum = min(covering_radius(x64, centres, metric) for centres in itertools.combinations(range(13), k))
        order, _ = kcenter_greedy(x, k, metric=metric)
        greedy = covering_radius(x64, order, metric)
        # 1 - cos is not a metric; its square root (proportional to the chord) is, so the bound holds there.
        if metric == "cosine":
            assert np.sqrt(greedy) <= 2 * np.sqrt(optimum) + 1e-6
        else:
            assert greedy <= 2 * optimum + 1e-6
        assert greedy >= optimum - 1e-6


def test_duplicates_beyond_distinct_points_still_return_distinct_rows():
    x = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)
    order, radius = kcenter_greedy(x, 6, metric="l2")
    assert len(set(order.tolist())) == 6 and np.all(radius[3:] == 0)


@pytest.mark.parametrize("k", [0, -1, 11])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be between 1 and 10"):
        kcenter_greedy(np.ones((10, 2), dtype=np.float32), k)


def test_float64_matrix_is_rejected_by_the_kernel():
    with pytest.raises(ValueError, match="float32 or float16"):
        kcenter_greedy(np.ones((10, 2)), 2)


def test_rows_streamed_counts_every_unselected_row_without_skipping():
    x = clustered(3000, 16, 40, seed=6)
    full, skipped = {}, {}
    order, _ = kcenter_greedy(x, 30, metric="l2", prune=False, max_centres_per_pass=1, stats=full)
    pruned, _ = kcenter_greedy(x, 30, metric="l2", prune=True, max_centres_per_pass=1, stats=skipped)
    # Step t (after the first centre) reads the rows not yet selected: n - t of them.
    assert full["rows_streamed"] == sum(3000 - t for t in range(1, 30))
    assert skipped["rows_streamed"] < full["rows_streamed"] and pruned.tolist() == order.tolist()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("shape", ["gaussian", "clustered"])
def test_chained_passes_select_what_one_pass_per_centre_selects(metric, shape):
    x = clustered(6000, 32, 40, seed=8) if shape == "clustered" else np.random.default_rng(8).normal(size=(6000, 32)).astype(np.float32)
    single_stats, chained_stats = {}, {}
    single, single_radius = kcenter_greedy(x, 300, metric=metric, max_centres_per_pass=1, stats=single_stats)
    chained, chained_radius = kcenter_greedy(x, 300, metric=metric, max_centres_per_pass=32, stats=chained_stats)
    assert chained.tolist() == single.tolist()
    np.testing.assert_allclose(chained_radius, single_radius, rtol=1e-6)
    # Chains are what make the saving: far fewer rows read for the same selection.
    assert chained_stats["rows_streamed"] < single_stats["rows_streamed"] / 2


def test_chained_passes_with_start_rows_and_weights_match_numpy():
    x = np.random.default_rng(9).normal(size=(3000, 24)).astype(np.float32)
    weights = np.random.default_rng(9).random(3000).astype(np.float32)
    start = list(range(0, 3000, 60))
    for per_pass in (1, 3, 32):
        assert kcenter_greedy(x, 80, metric="l2", start=np.array(start), max_centres_per_pass=per_pass)[0].tolist() == numpy_kcenter(x, 80, "l2", start=start)
        assert kcenter_greedy(x, 80, metric="l2", weights=weights, max_centres_per_pass=per_pass)[0].tolist() == numpy_kcenter(x, 80, "l2", weights=weights.astype(np.float64))


def test_chain_longer_than_the_rows_left_stops_at_k():
    x = np.random.default_rng(10).normal(size=(40, 8)).astype(np.float32)
    order, radius = kcenter_greedy(x, 40, metric="l2", max_centres_per_pass=32)
    assert sorted(order.tolist()) == list(range(40)) and order.tolist() == numpy_kcenter(x, 40, "l2")


def test_max_centres_per_pass_must_be_positive():
    with pytest.raises(ValueError, match="max_centres_per_pass must be at least 1"):
        kcenter_greedy(np.ones((10, 2), dtype=np.float32), 2, max_centres_per_pass=0)


def test_result_does_not_depend_on_the_thread_count():
    x = clustered(20000, 24, 50, seed=7)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single, single_radius = kcenter_greedy(x, 80, metric="cosine")
    finally:
        numba.set_num_threads(threads)
    order, radius = kcenter_greedy(x, 80, metric="cosine")
    assert order.tolist() == single.tolist()
    np.testing.assert_array_equal(radius, single_radius)
