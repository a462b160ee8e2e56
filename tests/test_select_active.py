"""Active-learning selection: special cases reduce to top-k / k-center; each term moves the choice."""

from __future__ import annotations

import numpy as np
import pytest

from hf_mmbuilder.kernels.active import active_select, representativeness
from hf_mmbuilder.kernels.kcenter import kcenter_greedy


def data(n=1500, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, d)) * 3
    x = (centres[rng.integers(0, 12, n)] + rng.normal(size=(n, d))).astype(np.float32)
    return x, rng.gamma(2.0, size=n)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_uncertainty_only_is_top_k_by_uncertainty(metric):
    x, u = data()
    order, score = active_select(x, 40, uncertainty=u, beta=0.0, gamma=0.0, metric=metric)
    assert order.tolist() == np.argsort(-u, kind="stable")[:40].tolist()
    assert np.all(np.diff(score) <= 0)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_diversity_only_is_k_center(metric):
    x, u = data(seed=1)
    order, _ = active_select(x, 60, uncertainty=u, alpha=0.0, gamma=0.0, metric=metric)
    assert order.tolist() == kcenter_greedy(x, 60, metric=metric)[0].tolist()
    start = np.array([3, 99])
    with_start, _ = active_select(x, 30, alpha=0.0, gamma=0.0, metric=metric, start=start)
    assert with_start.tolist() == kcenter_greedy(x, 30, metric=metric, start=start)[0].tolist()


def two_groups():
    """A tight group of 30 near (10, 0), a loose group of 30 near (0, 10), one outlier at (-40, -40)."""
    rng = np.random.default_rng(3)
    tight = np.array([10.0, 0.0]) + 0.1 * rng.normal(size=(30, 2))
    loose = np.array([0.0, 10.0]) + 2.0 * rng.normal(size=(30, 2))
    x = np.concatenate([tight, loose, [[-40.0, -40.0]]]).astype(np.float32)
    u = np.full(61, 0.5)
    u[0], u[1] = 1.0, 0.99
    return x, u


def test_uncertainty_term_picks_the_most_uncertain_rows():
    x, u = two_groups()
    order, _ = active_select(x, 2, uncertainty=u, alpha=1.0, beta=0.0, gamma=0.0, metric="l2")
    assert order.tolist() == [0, 1]
    u[42] = 2.0
    assert active_select(x, 1, uncertainty=u, alpha=1.0, beta=0.0, gamma=0.0, metric="l2")[0].tolist() == [42]


def test_diversity_term_moves_the_second_pick_away_from_the_first():
    x, u = two_groups()
    # Without diversity the two most uncertain rows, both in the tight group, are taken.
    near, _ = active_select(x, 2, uncertainty=u, alpha=1.0, beta=0.0, gamma=0.0, metric="l2")
    far, _ = active_select(x, 2, uncertainty=u, alpha=1.0, beta=2.0, gamma=0.0, metric="l2")
    assert near[1] == 1
    assert far[0] == 0 and far[1] == 60  # the farthest row from row 0: the outlier


def test_representativeness_term_prefers_dense_regions_over_the_outlier():
    x, u = two_groups()
    density = representativeness(x, metric="l2", knn=5)
    assert np.argmin(density) == 60 and density[:30].mean() > density[30:60].mean()
    order, _ = active_select(x, 5, uncertainty=u, alpha=0.0, beta=0.0, gamma=1.0, metric="l2", knn=5)
    assert set(order.tolist()) <= set(range(30))
    # With diversity too the loose group and the outlier come in, but density still ranks them.
    order, _ = active_select(x, 3, alpha=0.0, beta=1.0, gamma=1.0, metric="l2", knn=5)
    assert order[0] < 30


def test_scores_are_the_documented_combination():
    x, u = data(n=300, seed=4)
    order, score = active_select(x, 5, uncertainty=u, alpha=0.7, beta=0.0, gamma=0.3, metric="cosine", knn=7)
    density = representativeness(x, metric="cosine", knn=7)
    rescale = lambda v: (v - v.min()) / (v.max() - v.min())  # noqa: E731
    expected = 0.7 * rescale(u) + 0.3 * rescale(density)
    np.testing.assert_allclose(score, expected[order])
    assert order.tolist() == np.argsort(-expected, kind="stable")[:5].tolist()
    # With an empty selected set the diversity term is 1 for every row.
    order, score = active_select(x, 1, uncertainty=u, alpha=1.0, beta=0.5, gamma=0.0)
    assert score[0] == pytest.approx(1.5) and order[0] == int(np.argmax(u))


def test_bad_active_inputs():
    x, u = data(n=50)
    with pytest.raises(ValueError, match="needs an uncertainty column"):
        active_select(x, 5)
    bad = u.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match="uncertainty of row 7 is nan"):
        active_select(x, 5, uncertainty=bad)
    with pytest.raises(ValueError, match="beta must be a finite non-negative weight"):
        active_select(x, 5, uncertainty=u, beta=-1.0)
    with pytest.raises(ValueError, match="k must be between 1 and 50"):
        active_select(x, 51, uncertainty=u, beta=0.0)
