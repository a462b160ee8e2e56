"""Seeded, group-aware splits: no group spans two splits, ratios within one group's size, same
seed same splits, stratification, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hf_mmbuilder.publishing.splits import plan_splits, row_groups, split_dataset

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def planted_clusters(seed: int, n_clusters: int = 400):
    """Rows with planted duplicate clusters of 1-6 rows (as dedup(return_clusters=True) labels them),
    shuffled, with a label column for stratification."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_clusters)
    members = np.repeat(np.arange(n_clusters), sizes)
    rng.shuffle(members)
    first_row = {}
    cluster_id = np.array([first_row.setdefault(member, row) for row, member in enumerate(members)], dtype=np.int64)
    return Dataset.from_dict({
        "text": [f"near-duplicate text of cluster {member}" for member in members],
        "cluster_id": cluster_id,
        "label": [["cat", "dog", "bird"][member % 3] for member in members],
    })


@pytest.mark.parametrize("seed", range(20))
def test_no_cluster_spans_two_splits_and_ratios_hold(seed):
    dataset = planted_clusters(seed)
    plan = plan_splits(dataset, RATIOS, seed=seed)
    cluster_id = np.asarray(dataset["cluster_id"])
    split_of_cluster = {}
    for name, rows in plan.indices.items():
        for cluster in np.unique(cluster_id[rows]).tolist():
            assert split_of_cluster.setdefault(cluster, name) == name, f"cluster {cluster} spans two splits"
    assert sorted(np.concatenate(list(plan.indices.values())).tolist()) == list(range(len(dataset)))
    largest = int(np.bincount(cluster_id).max())
    for row in plan.report():
        assert abs(row["rows"] - row["requested_ratio"] * len(dataset)) <= largest
    again = plan_splits(dataset, RATIOS, seed=seed)
    assert all(np.array_equal(plan.indices[name], again.indices[name]) for name in RATIOS)
    other = plan_splits(dataset, RATIOS, seed=seed + 100)
    assert not np.array_equal(plan.indices["test"], other.indices["test"])


def test_rows_sharing_an_image_file_share_a_split():
    paths = [["a.jpg"], ["b.jpg", "c.jpg"], ["c.jpg"], ["d.jpg"], ["a.jpg"], [], ["e.jpg"], ["b.jpg"]] * 5
    roots = ["/data/x"] * 40
    roots[0] = "/data/y"  # same relative path under another root is another file
    dataset = {"text": ["t"] * 40, "images": paths, "media_root": roots}
    groups, used = row_groups(dataset)
    assert used == ["images"]
    assert groups[1] == groups[2] == groups[7] == 1
    assert groups[4] == 4 and groups[0] == 0
    plan = plan_splits(dataset, {"train": 0.5, "test": 0.5}, seed=3)
    train = set(plan.indices["train"].tolist())
    for row in range(40):
        assert (row in train) == (groups[row] in train)


def test_group_by_user_column_and_none():
    data = {"text": ["x"] * 6, "video_id": ["v1", "v1", "v2", None, None, "v3"]}
    groups, _ = row_groups(data, "video_id")
    assert groups.tolist() == [0, 0, 2, 3, 4, 5]
    assert row_groups(data, None)[0].tolist() == list(range(6))
    with pytest.raises(ValueError, match=r"group_by column\(s\) \['nope'\] not in the dataset"):
        row_groups(data, ["nope"])


def test_stratified_split_keeps_each_label_in_proportion():
    dataset = planted_clusters(5, n_clusters=900)
    plan = plan_splits(dataset, RATIOS, seed=1, stratify_by="label")
    labels = np.asarray(dataset["label"])
    largest = int(np.bincount(np.asarray(dataset["cluster_id"])).max())
    for label in ("cat", "dog", "bird"):
        total = int((labels == label).sum())
        for name, rows in plan.indices.items():
            assert abs(int((labels[rows] == label).sum()) - RATIOS[name] * total) <= 2 * largest


def test_stratify_by_float_column():
    data = {"text": ["x"] * 100, "score": [0.5, 1.5] * 50}
    plan = plan_splits(data, {"train": 0.5, "test": 0.5}, group_by=None, stratify_by="score")
    scores = np.asarray(data["score"])
    assert (scores[plan.indices["test"]] == 0.5).sum() == 25


def test_split_dataset_returns_dataset_dict_and_table():
    splits, plan = split_dataset(planted_clusters(0, 50), {"train": 0.7, "test": 0.3}, seed=0)
    assert {name: len(part) for name, part in splits.items()} == plan.counts()
    assert plan.table().splitlines()[2].startswith("| train |")


@pytest.mark.parametrize("ratios, message", [
    ({"train": 0.5, "test": 0.4}, "must sum to 1"),
    ({"train": 1.0, "test": 0.0}, "must be a number > 0"),
    ({}, "non-empty mapping"),
    ({"train/x": 1.0}, "is not valid"),
])
def test_bad_ratios(ratios, message):
    with pytest.raises(ValueError, match=message):
        plan_splits({"text": ["a"] * 10}, ratios)


def test_split_too_small_for_a_group():
    data = {"text": ["a"] * 30, "cluster_id": [0] * 10 + list(range(10, 30))}
    with pytest.raises(ValueError, match="split 'test' asks for 3.0 of 30 rows but the largest group"):
        plan_splits(data, {"train": 0.9, "test": 0.1})
