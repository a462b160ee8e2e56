"""Seeded, group-aware splits: no group spans two splits, ratios within one group's size, same
seed same splits, stratification, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from hf_mmbuilder.publishing.splits import MediaKeys, plan_splits, row_groups, split_dataset

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


def copies_dataset(root, seed: int, originals: int = 30, copies_each: int = 3):
    """Rows whose images are byte-identical copies of ``originals`` images under other paths, shuffled;
    returns the dataset and, per row, the index of the original its image copies."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = []
    for number in range(originals):
        pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        (root / "src").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / "src" / f"{number}.png")
        sources.append((root / "src" / f"{number}.png").read_bytes())
    original_of_row = rng.permutation(np.repeat(np.arange(originals), copies_each + 1))
    paths = []
    for row, original in enumerate(original_of_row.tolist()):
        path = f"copies/{row}/{original}-{row}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(sources[original])
        paths.append([path])
    rows = len(paths)
    return Dataset.from_dict({"text": [f"<__dj__image> row {row}" for row in range(rows)], "images": paths,
                              "media_root": [str(root)] * rows}), original_of_row


@pytest.mark.parametrize("seed", range(4))
def test_byte_identical_images_under_other_paths_share_a_split(tmp_path, seed):
    dataset, original_of_row = copies_dataset(tmp_path, seed)
    plan = plan_splits(dataset, RATIOS, seed=seed)
    split_of_original = {}
    for name, rows in plan.indices.items():
        for original in original_of_row[rows].tolist():
            assert split_of_original.setdefault(original, name) == name, f"image {original} is in two splits"
    assert plan.media_keys == MediaKeys("content", by_digest=120, by_path=0)
    assert plan.largest_group == 4
    by_path = plan_splits(dataset, RATIOS, seed=seed, media_identity="path")
    assert by_path.media_keys == MediaKeys("path", by_digest=0, by_path=120) and by_path.largest_group == 1


def test_content_groups_equal_to_path_groups_give_the_splits_of_before(tmp_path):
    # Distinct bytes behind distinct paths, some paths shared: the content keys group exactly as the
    # paths do, so the seeded dealing must give the very same splits as grouping by path.
    paths = [["a.png"], ["b.png", "c.png"], ["c.png"], ["d.png"], ["a.png"], [], ["e.png"], ["b.png"]] * 5
    write = {name: bytes([index]) * 10 for index, name in enumerate(["a.png", "b.png", "c.png", "d.png", "e.png"])}
    for name, content in write.items():
        (tmp_path / name).write_bytes(content)
    dataset = {"text": ["t"] * 40, "images": paths, "media_root": [str(tmp_path)] * 40}
    for seed in range(5):
        by_content = plan_splits(dataset, {"train": 0.6, "test": 0.4}, seed=seed)
        by_path = plan_splits(dataset, {"train": 0.6, "test": 0.4}, seed=seed, media_identity="path")
        assert by_content.media_keys == MediaKeys("content", by_digest=5, by_path=0)
        assert np.array_equal(row_groups(dataset)[0], row_groups(dataset, media_identity="path")[0])
        assert by_content.groups == by_path.groups
        assert all(np.array_equal(by_content.indices[name], by_path.indices[name]) for name in ("train", "test"))
    # Files that cannot be read are keyed by path, as before.
    absent = {"text": ["t"] * 40, "images": paths, "media_root": [str(tmp_path / "absent")] * 40}
    assert plan_splits(absent, {"train": 0.6, "test": 0.4}, seed=0).media_keys == MediaKeys("content", by_digest=0, by_path=5)


def test_near_duplicate_radius_groups_a_slightly_altered_copy(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)

    def smooth_image():
        return Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((64, 64), Image.BILINEAR)

    original = smooth_image()
    original.save(tmp_path / "original.png")
    brightened = np.asarray(original).astype(np.int64)
    brightened[20:24, 20:24] += 12
    Image.fromarray(np.clip(brightened, 0, 255).astype(np.uint8)).save(tmp_path / "altered.png")
    for number in range(10):
        smooth_image().save(tmp_path / f"other{number}.png")
    images = [["original.png"], *([f"other{number}.png"] for number in range(10)), ["altered.png"]]
    dataset = Dataset.from_dict({"text": ["t"] * 12, "images": images, "media_root": [str(tmp_path)] * 12})
    assert (tmp_path / "original.png").read_bytes() != (tmp_path / "altered.png").read_bytes()
    assert row_groups(dataset)[0].tolist() == list(range(12))
    groups, _ = row_groups(dataset, near_duplicate_radius=4)
    assert groups.tolist() == [*range(11), 0]
    plan = plan_splits(dataset, {"train": 0.5, "test": 0.5}, seed=0, near_duplicate_radius=4)
    assert plan.media_keys == MediaKeys("content", by_digest=12, by_path=0, near_duplicate_radius=4)
    assert (0 in plan.indices["train"]) == (11 in plan.indices["train"])
    with pytest.raises(ValueError, match=r"near_duplicate_radius must be a Hamming distance >= 0 \(or None\), got -1"):
        row_groups(dataset, near_duplicate_radius=-1)
    with pytest.raises(ValueError, match=r"media_identity must be one of \('content', 'path'\), got 'name'"):
        row_groups(dataset, media_identity="name")


def test_content_keys_read_whole_only_files_sharing_size_and_head(tmp_path, monkeypatch):
    from hf_mmbuilder.publishing import splits

    head = b"h" * splits.HEAD_BYTES
    files = {
        "alone": b"a" * 5,                                  # a size no other file has
        "head_a": head[:-1] + b"a" + b"tail",               # same size as head_b, other head
        "head_b": head[:-1] + b"b" + b"tail",
        "tail_a": head + b"tail_a",                         # same size and head, other bytes
        "tail_b": head + b"tail_b",
        "copy_1": head + b"copy!!",                         # byte-identical to copy_2
        "copy_2": head + b"copy!!",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in [*files, "absent"]]
    read_whole = []
    monkeypatch.setattr(splits, "_file_keys", lambda chunk: read_whole.extend(chunk) or [splits._file_key(path) for path in chunk])
    keys = dict(zip([*files, "absent"], splits.content_keys(paths, num_threads=1)))
    assert sorted(read_whole) == sorted(str(tmp_path / name) for name in ("tail_a", "tail_b", "copy_1", "copy_2"))
    assert {name: key.split(":", 1)[0] for name, key in keys.items() if key} == {
        "alone": "file", "head_a": "file", "head_b": "file", "tail_a": "xxh3", "tail_b": "xxh3", "copy_1": "xxh3", "copy_2": "xxh3"}
    assert keys["copy_1"] == keys["copy_2"] and len({keys[name] for name in files}) == 6 and keys["absent"] is None
    assert keys["alone"] == "file:" + str(tmp_path / "alone")
