"""Cluster-balanced sampling: exact quotas on clustered data, seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest

from hf_mmbuilder.kernels.cluster_sampling import cluster_quotas, cluster_sample, kmeans_labels

SIZES = np.array([40, 400, 160, 900, 300])


def separated_clusters(seed=0, d=24):
    rng = np.random.default_rng(seed)
    centres = np.eye(len(SIZES), d) * 50.0
    truth = np.repeat(np.arange(len(SIZES)), SIZES)
    rng.shuffle(truth)
    return (centres[truth] + rng.normal(size=(len(truth), d))).astype(np.float32), truth


@pytest.mark.parametrize(
    "quota, cap, k, expected",
    [
        ("uniform", None, 500, [40, 115, 115, 115, 115]),
        ("uniform", None, 201, [40, 40, 40, 41, 40]),
        ("proportional", None, 180, [4, 40, 16, 90, 30]),
        ("proportional", None, 181, [4, 40, 16, 91, 30]),
        ("capped", 60, 260, [20, 60, 60, 60, 60]),
    ],
)
def test_exact_quotas_per_cluster_on_clustered_data(quota, cap, k, expected):
    x, truth = separated_clusters()
    labels, distance = kmeans_labels(x, len(SIZES), metric="l2", init="kcenter", seed=0)
    # Well-separated clusters: k-means recovers them exactly (up to renumbering).
    mapping = {int(label): int(truth[labels == label][0]) for label in np.unique(labels)}
    assert all((truth[labels == label] == cluster).all() for label, cluster in mapping.items())
    chosen = cluster_sample(labels, k, quota=quota, cap=cap, seed=3)
    assert len(set(chosen.tolist())) == k
    counts = np.bincount(truth[chosen], minlength=len(SIZES))
    assert counts.tolist() == expected
    assert cluster_quotas(SIZES, k, quota=quota, cap=cap).tolist() == expected


def test_same_seed_same_result_other_seed_other_rows():
    x, _ = separated_clusters(seed=1)
    first = cluster_sample(kmeans_labels(x, 8, seed=4)[0], 300, seed=9)
    again = cluster_sample(kmeans_labels(x, 8, seed=4)[0], 300, seed=9)
    other = cluster_sample(kmeans_labels(x, 8, seed=4)[0], 300, seed=10)
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_round_robin_order_and_nearest_within_cluster():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    distance = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 0.4, 0.3, 0.2, 0.1])
    chosen = cluster_sample(labels, 7, within="nearest", distance=distance)
    assert chosen.tolist() == [1, 4, 8, 2, 3, 7, 6]


def test_cosine_clusters_are_directions():
    x, truth = separated_clusters(seed=2)
    labels, distance = kmeans_labels(x * np.random.default_rng(0).uniform(0.5, 3.0, (len(x), 1)).astype(np.float32), len(SIZES), metric="cosine", init="kcenter")
    assert len({(int(a), int(b)) for a, b in zip(labels, truth)}) == len(SIZES)
    assert np.all((distance >= -1e-5) & (distance <= 2.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be between 1 and 1800"),
        ({"k": 1801}, "k must be between 1 and 1800"),
        ({"k": 10, "quota": "capped"}, "needs cap >= 1"),
        ({"k": 301, "quota": "capped", "cap": 60}, "k must be between 1 and 280"),
        ({"k": 10, "quota": "uniform", "cap": 5}, "only used with quota='capped'"),
        ({"k": 10, "quota": "square"}, "quota must be one of"),
    ],
)
def test_bad_quota_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cluster_quotas(SIZES, **kwargs)


def test_more_clusters_than_rows_is_an_error():
    with pytest.raises(ValueError, match="n_clusters must be between 1 and 3"):
        kmeans_labels(np.ones((3, 2), dtype=np.float32), 4)
