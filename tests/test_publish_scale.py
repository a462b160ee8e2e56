"""Publishing at scale (issue 22): splits identical to those before the streaming writer, shards
written straight from the Arrow table, card statistics from the same pass, media checks once per
distinct file, embedded media read on threads."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset, load_dataset

from hf_mmbuilder.publishing import publish
from hf_mmbuilder.publishing.splits import plan_splits
from hf_mmbuilder.testing import llava_records, write_images

RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}
# sha256 of each split's sorted row ids (int64 little-endian), computed with the publisher as it was
# before issue 22 (main at 6d670c4) on split_fixture(): the same seed must keep giving these splits.
SPLIT_DIGESTS = {
    "publish_content": {
        "train": "fab469ddb725ce800a09d930e9ddff28aea1366aa9820a05b07632be21aeb65c",
        "validation": "8d5d82b28c1bf2a8c0fd2ca1fa4a5b61abc82ba3e52f2b4da2b3f958a926eb28",
        "test": "48e192bbbea8fe04db0dae248308c8bdf5cc90a07d2a379b378596ea8d05040a",
    },
    "plan_path_stratified": {
        "train": "2520c80ee1be51f2d4a51675e531272fbc532ca65eff3524fcda808a329db004",
        "validation": "8842643738786550ac8553f33cd320451005cc774d1d98bb0f9e7c095c3646e1",
        "test": "04cc1134a19fc97f55ae45157162819f451393a207215a80eb6037b3281518d4",
    },
}


def split_fixture(folder: Path) -> Dataset:
    """1,500 generated LLaVA-shaped rows (seed 3) with 400 of their images on disk, 40 of which are
    byte-identical copies of another row's image, and a seeded ``cluster_id`` joining some rows."""
    records = list(llava_records(1500, seed=3))
    images = [[record["image"]] if "image" in record else [] for record in records]
    paths = sorted(path for paths in images for path in paths)[:400]
    write_images(str(folder / "media"), paths[:360], seed=5)
    for copy, original in zip(paths[360:], paths[:40]):
        shutil.copyfile(folder / "media" / original, folder / "media" / copy)
    clusters = np.arange(len(records), dtype=np.int64)
    rng = np.random.default_rng(11)
    members = rng.choice(len(records), 300, replace=False)
    clusters[members] = members[rng.integers(0, 60, 300)]
    return Dataset.from_dict({
        "text": [" ".join(turn["value"] for turn in record["conversations"]) for record in records],
        "images": images,
        "id_is_int": [isinstance(record["id"], int) for record in records],
        "media_root": [str(folder / "media")] * len(records),
        "cluster_id": clusters.tolist(),
    })


def digests(indices: dict) -> dict:
    return {name: hashlib.sha256(np.sort(np.asarray(rows, dtype="<i8")).tobytes()).hexdigest()
            for name, rows in indices.items()}


def test_splits_are_those_of_the_publisher_before_issue_22(tmp_path):
    dataset = split_fixture(tmp_path)
    result = publish(dataset, split_ratio=RATIOS, seed=7, dry_run=True, embed_media=False, progress=False)
    plan = plan_splits(dataset, RATIOS, seed=123, media_identity="path", stratify_by="id_is_int")
    assert result.plan.media_keys.by_digest == 400 and result.plan.media_keys.by_path == 1007
    assert {"publish_content": digests(result.plan.indices), "plan_path_stratified": digests(plan.indices)} == SPLIT_DIGESTS
