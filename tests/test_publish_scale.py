"""Publishing at scale (issue 22): splits identical to those before the streaming writer, shards
written straight from the Arrow table, card statistics from the same pass, media checks once per
distinct file, embedded media read on threads."""

from __future__ import annotations

import hashlib
import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xxhash
from datasets import Dataset, Image, List, load_dataset

from hf_mmbuilder.probe import image_size
from hf_mmbuilder.publishing.card import CardStatistics
from hf_mmbuilder.publishing import publish
from hf_mmbuilder.publishing.shards import SplitRows, embedded_features, tag_generation, text_features, write_shards
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


def test_histogram_summary_is_summarize_of_the_values():
    from hf_mmbuilder.publishing.card import Histogram, summarize

    rng = np.random.default_rng(4)
    for size in (1, 2, 3, 20, 1001, 5000):
        values = rng.integers(0, rng.integers(1, 3000), size)
        histogram = Histogram.of([values[: size // 2], values[size // 2:]])
        assert histogram.summary() == summarize(values)
        assert histogram.size == size


def test_shards_hold_the_rows_of_a_shuffled_split_in_its_order(tmp_path):
    from datasets import DatasetDict

    rows = Dataset.from_dict({"text": [f"row {index}" for index in range(3000)], "number": list(range(3000))})
    # Written in small record batches, so a split's rows span many chunks of the table.
    rows = rows.map(lambda batch: batch, batched=True, writer_batch_size=97, cache_file_name=str(tmp_path / "rows.arrow"))
    shuffled = rows.shuffle(seed=5)
    splits = DatasetDict({"train": shuffled.select(range(2500)), "test": shuffled.select(range(2500, 3000))})
    result = publish(splits, local_dir=str(tmp_path / "out"), max_shard_size=rows.data.nbytes // 4,
                     group_by=None, progress=False)
    assert sorted(path for path in result.files if path.startswith("data/train-"))[-1].startswith("data/train-00003-of-00004-")
    loaded = load_dataset(str(tmp_path / "out"))
    assert loaded["train"]["number"][:] == splits["train"]["number"][:]
    assert loaded["test"]["text"][:] == splits["test"]["text"][:]


def test_a_symlink_out_of_the_root_is_refused_per_folder_and_per_file(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    write_images(str(outside), ["secret.jpg"])
    write_images(str(root / "real"), ["ok.jpg"])
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "real" / "file.jpg").symlink_to(outside / "secret.jpg")
    for bad in ("linked/secret.jpg", "real/file.jpg"):
        dataset = Dataset.from_dict({"text": ["<__dj__image>"] * 3, "images": [["real/ok.jpg"], ["real/ok.jpg"], [bad]],
                                     "media_root": [str(root)] * 3})
        with pytest.raises(ValueError, match=rf"^split 'train' row 2: images\[0\] '{bad}': media path '{bad}' escapes its root"):
            publish(dataset, local_dir=str(tmp_path / "out"), embed_media=False, group_by=None, progress=False)
        assert not (tmp_path / "out").exists()


def test_embedded_media_across_shards_are_the_files_bytes(tmp_path):
    names = [f"img/{index}.jpg" for index in range(40)]
    written = write_images(str(tmp_path / "media"), names, seed=9)
    dataset = Dataset.from_dict({
        "text": ["<__dj__image> a photo"] * 40,
        "images": [[name] if index % 5 else [name, names[0]] for index, name in enumerate(names)],
        "media_root": [str(tmp_path / "media")] * 40,
    })
    result = publish(dataset, split_ratio={"train": 0.75, "test": 0.25}, seed=1, group_by=None,
                     local_dir=str(tmp_path / "out"), max_shard_size=20_000, progress=False)
    assert len([path for path in result.files if path.startswith("data/train-")]) > 1
    loaded = load_dataset(str(tmp_path / "out")).cast_column("images", List(Image(decode=False)))
    for split, rows in result.plan.indices.items():
        for row, images in zip(rows, loaded[split]["images"]):
            expected = dataset[int(row)]["images"]
            assert [image["path"] for image in images] == expected
            assert [image["bytes"] for image in images] == [Path(written[names.index(name)]).read_bytes() for name in expected]


def jpeg_bytes(size: tuple, **options) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 60)).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_image_size_reads_the_frame_header_of_jpegs_and_falls_back_to_pillow():
    from PIL import Image as PILImage

    baseline = jpeg_bytes((641, 479), quality=90)
    progressive = jpeg_bytes((33, 17), progressive=True)
    exif = PILImage.Exif()
    exif[0x010F] = "camera" * 2000
    with_exif = jpeg_bytes((320, 240), exif=exif.tobytes())
    comment = baseline[:2] + b"\xff\xfe\x00\x06file" + baseline[2:]
    png = io.BytesIO()
    PILImage.new("RGBA", (7, 5)).save(png, "PNG")
    # An Arrow buffer's view holds signed bytes: the walk reads it as unsigned.
    from_arrow = pa.array([baseline], pa.binary())[0].as_buffer()
    sizes = [image_size(data) for data in (baseline, progressive, with_exif, comment, png.getvalue(), from_arrow)]
    assert sizes == [(641, 479), (33, 17), (320, 240), (641, 479), (7, 5), (641, 479)]
    with pytest.raises(OSError, match="cannot identify image file"):
        image_size(b"\xff\xd8 not a jpeg")


def test_shard_digests_are_the_digests_of_the_shard_files_which_hold_each_media_file_verbatim(tmp_path):
    names = [f"img/{index}.jpg" for index in range(30)]
    write_images(str(tmp_path / "media"), names, seed=4)
    dataset = Dataset.from_dict({"text": ["<__dj__image> a photo"] * 30, "images": [[name] for name in names],
                                 "media_root": [str(tmp_path / "media")] * 30})
    features = text_features(embedded_features(dataset.features, ["images"]))
    features = type(features)({name: features[name] for name in ("text", "images")})
    shards = write_shards(SplitRows.of(dataset), features, tmp_path / "repo", "data", "train", 20_000,
                          nbytes=60_000, read_columns=["media_root"], embed=["images"])
    assert [path.name for path in shards] == [f"train-{index:05d}-of-00003.parquet" for index in range(3)]
    assert {path: xxhash.xxh3_128(path.read_bytes()).digest() for path in shards} == shards
    # What writing them without content-defined chunking rests on: the Hub's byte-level dedup
    # finds each file's bytes as they are, uncompressed, in one run.
    written = b"".join(path.read_bytes() for path in shards)
    assert all((tmp_path / "media" / name).read_bytes() in written for name in names)
    tag = tag_generation(tmp_path / "repo", shards)
    assert sorted(path.name for path in (tmp_path / "repo" / "data").iterdir()) == \
        [f"train-{index:05d}-of-00003-{tag}.parquet" for index in range(3)]


def test_card_image_sizes_come_from_the_embedded_bytes_and_a_broken_one_is_named(tmp_path):
    # No file exists under this root: every size must come from the embedded bytes.
    sizes = {"a.jpg": (64, 48), "b.jpg": (640, 480), "c.jpg": (100, 30)}
    lists = [["a.jpg"], ["b.jpg", "a.jpg"], ["c.jpg"], []]
    batch = pa.table({"text": ["<__dj__image> one"] * 4, "images": lists, "media_root": [str(tmp_path / "nowhere")] * 4})
    item = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    embedded = pa.table({"images": pa.array([[{"bytes": jpeg_bytes(sizes[name]), "path": name} for name in names] for names in lists],
                                            pa.list_(item))})
    statistics = CardStatistics({"train": 4})
    statistics.add("train", batch, 0, embedded)
    stats = statistics.result(Counter())
    assert (stats["image_files"], stats["image_unmeasured"]) == (3, 0)
    assert sorted(zip(stats["values"]["image_width"].tolist(), stats["values"]["image_height"].tolist())) == \
        [(64, 48), (100, 30), (640, 480)]

    media = tmp_path / "media"
    media.mkdir()
    for name, size in sizes.items():
        (media / name).write_bytes(jpeg_bytes(size))
    (media / "c.jpg").write_bytes(b"this is no image")
    rows = {"text": ["<__dj__image> one"] * 4, "images": lists, "media_root": [str(media)] * 4}
    with pytest.raises(ValueError, match=r"^split 'train' row 2: image 'c.jpg' \(.*/media/c.jpg\) cannot be read: cannot identify image file"):
        publish(Dataset.from_dict(rows), local_dir=str(tmp_path / "out"), progress=False)


def test_card_image_sizes_come_from_the_embedded_bytes_of_sliced_chunks(tmp_path):
    # The embedded column is read through views of its buffers: slices (a decoy row before and
    # inside) and several chunks, binary or large_binary, must measure each row's own bytes.
    sizes = [(64, 48), (640, 480), (100, 30), (7, 9)]
    names = [f"{index}.jpg" for index in range(4)]
    batch = pa.table({"text": ["<__dj__image> one"] * 4, "images": [[name] for name in names],
                      "media_root": [str(tmp_path / "nowhere")] * 4})
    for binary in (pa.binary(), pa.large_binary()):
        item = pa.struct([("bytes", binary), ("path", pa.string())])
        rows = [[{"bytes": jpeg_bytes((1, 1)), "path": "decoy.jpg"}]] + \
            [[{"bytes": jpeg_bytes(size), "path": name}] for size, name in zip(sizes, names)]
        whole = pa.array(rows, pa.list_(item))
        embedded = pa.table({"images": pa.chunked_array([whole.slice(1, 2), whole.slice(3)])})
        statistics = CardStatistics({"train": 4})
        statistics.add("train", batch, 0, embedded)
        stats = statistics.result(Counter())
        assert list(zip(stats["values"]["image_width"].tolist(), stats["values"]["image_height"].tolist())) == sizes


@pytest.mark.parametrize("failing", ["creating", "writing", "closing"])
def test_a_shard_writer_that_fails_leaves_no_shard_open_and_its_error_is_raised(tmp_path, monkeypatch, failing):
    import pyarrow.parquet as pq

    dataset = Dataset.from_dict({"text": [f"row {index}" for index in range(40)]})
    features = text_features(dataset.features)
    sinks = []
    monkeypatch.setattr(pa, "OSFile", lambda *args, _open=pa.OSFile, **kwargs: sinks.append(_open(*args, **kwargs)) or sinks[-1])

    class FailingWriter(pq.ParquetWriter):
        def __init__(self, *args, **kwargs):
            if failing == "creating":
                raise OSError("creating failed")
            super().__init__(*args, **kwargs)

        def write_table(self, *args, **kwargs):
            if failing == "writing":
                raise OSError("writing failed")
            super().write_table(*args, **kwargs)

        def close(self):
            super().close()
            # Every close fails: the first one, where the shard is done, and the one after the error.
            if failing == "closing":
                raise OSError("closing failed")

    monkeypatch.setattr(pq, "ParquetWriter", FailingWriter)
    with pytest.raises(OSError, match=rf"^{failing} failed$"):
        write_shards(SplitRows.of(dataset), features, tmp_path / "repo", "data", "train", 1_000, nbytes=500)
    assert len(sinks) == 1 and sinks[0].closed
