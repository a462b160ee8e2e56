"""Publishing to a local folder: layout loadable by plain ``load_dataset``, embedded media, no-op
re-publish, extra configs, and bad input refused before anything is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, load_dataset
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.publishing import publish

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LLAVA_FILES = [SHARED / "formats" / "llava" / "llava_instruct_150k_slice100.json",
               SHARED / "formats" / "llava" / "llava_v1_5_mix665k.json"]
RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def write_images(root: Path, paths, seed: int = 0) -> dict:
    """Generated images at ``root/path`` for each path; returns path -> file bytes."""
    rng = np.random.default_rng(seed)
    written = {}
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (int(rng.integers(16, 48)), int(rng.integers(16, 48)), 3), dtype=np.uint8)
        Image.fromarray(pixels).save(target, format="PNG")
        written[path] = target.read_bytes()
    return written


def build_llava_dataset(media_root: Path):
    """The real LLaVA sample records, loaded with our loader, with generated images under media_root."""
    missing = [str(path) for path in LLAVA_FILES if not path.exists()]
    if missing:
        pytest.skip(f"shared sample data absent: {missing}")
    assert "llava" in hf_mmbuilder.available_formats(), "the llava loader is missing from the registered formats"
    paths = sorted({path for path in json_images(LLAVA_FILES)})
    images = write_images(media_root, paths)
    dataset = hf_mmbuilder.load("llava", [str(path) for path in LLAVA_FILES], split="train", media_root=str(media_root))
    return dataset, images


def json_images(files):
    for file in files:
        for record in json.loads(Path(file).read_text()):
            if "image" in record:
                yield record["image"]


def generation(card: str) -> str:
    """The generation tag the card's ``data_files`` globs name (``data/<split>-*-<tag>.parquet``)."""
    return re.search(r"path: data/\w+-\*-([0-9a-f]{8})\.parquet", card).group(1)


def embedded_rows(dataset_dict):
    """split -> rows with media as their embedded bytes (not decoded), for exact comparison."""
    from datasets import Image as ImageFeature, List

    rows = {}
    for split, part in dataset_dict.items():
        rows[split] = part.cast_column("images", List(ImageFeature(decode=False))).to_list()
    return rows


def test_local_folder_is_a_loadable_hub_layout_with_embedded_media(tmp_path):
    dataset, images = build_llava_dataset(tmp_path / "media")
    out = tmp_path / "published"
    result = publish(dataset, split_ratio=RATIOS, seed=7, local_dir=str(out), card={"license": "cc-by-4.0"}, progress=False)
    assert result.changed
    assert (out / "README.md").read_text().startswith("---\n")
    assert "| llava_instruct_150k_slice100.json | llava | unknown | 100 |" in result.card
    assert str(tmp_path) not in result.card
    tag = generation(result.card)
    assert sorted(path.name for path in (out / "data").iterdir()) == [
        f"test-00000-of-00001-{tag}.parquet", f"train-00000-of-00001-{tag}.parquet", f"validation-00000-of-00001-{tag}.parquet"]
    for path in (tmp_path / "media").rglob("*.jpg"):
        path.unlink()

    loaded = load_dataset(str(out))
    assert {split: len(part) for split, part in loaded.items()} == result.plan.counts()
    assert "media_root" not in loaded["train"].column_names and "source_file" not in loaded["train"].column_names
    rows = embedded_rows(loaded)
    for split, indices in result.plan.indices.items():
        expected = dataset.select(indices)
        assert [row["text"] for row in rows[split]] == expected["text"]
        assert [row["id"] for row in rows[split]] == expected["id"]
        for row, paths in zip(rows[split], expected["images"]):
            assert [image["path"] for image in row["images"]] == paths
            assert [image["bytes"] for image in row["images"]] == [images[path] for path in paths]
    decoded = next(row for row in loaded["train"] if row["images"])["images"][0]
    assert decoded.size[0] >= 16 and decoded.mode == "RGB"


def test_republishing_the_same_data_changes_nothing(tmp_path):
    dataset, _ = build_llava_dataset(tmp_path / "media")
    out = tmp_path / "published"
    publish(dataset, split_ratio=RATIOS, seed=1, local_dir=str(out), progress=False)
    before = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    again = publish(dataset, split_ratio=RATIOS, seed=1, local_dir=str(out), progress=False)
    assert not again.changed
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == before
    changed = publish(dataset, split_ratio=RATIOS, seed=2, local_dir=str(out), progress=False)
    assert changed.changed


def test_extra_config_per_source_and_referenced_media(tmp_path):
    dataset, _ = build_llava_dataset(tmp_path / "media")
    out = tmp_path / "published"
    publish(dataset, split_ratio={"train": 0.9, "test": 0.1}, seed=0, local_dir=str(out), config_by="source_file",
            embed_media=False, progress=False)
    whole = load_dataset(str(out))
    per_source = {name: load_dataset(str(out), name) for name in ("llava_instruct_150k_slice100", "llava_v1_5_mix665k")}
    assert whole["train"].features["images"].feature.dtype == "string"
    for split in ("train", "test"):
        parts = [config[split] for config in per_source.values() if split in config]
        assert sorted(text for part in parts for text in part["text"]) == sorted(whole[split]["text"])


def test_dry_run_writes_nothing_and_returns_card_and_table(tmp_path):
    dataset, _ = build_llava_dataset(tmp_path / "media")
    result = publish(dataset, "my-org/sample", split_ratio=RATIOS, local_dir=str(tmp_path / "out"), dry_run=True, progress=False)
    assert not (tmp_path / "out").exists()
    assert "| train |" in result.split_table and "## Statistics" in result.card
    assert not list(tmp_path.glob(".hf_mmbuilder-publish-*"))


def _small_dataset(tmp_path, rows=20):
    paths = [f"img/{index}.png" for index in range(rows)]
    write_images(tmp_path, paths)
    return Dataset.from_dict({
        "text": [f"<__dj__image> row {index}" for index in range(rows)],
        "images": [[path] for path in paths],
        "audios": [[] for _ in range(rows)],
        "videos": [[] for _ in range(rows)],
        "media_root": [str(tmp_path)] * rows,
    })


@pytest.mark.parametrize("ratios, message", [
    ({"train": 0.8, "test": 0.1}, "must sum to 1"),
    ({"train": 1.1, "test": -0.1}, "ratio must be a number > 0"),
    ({"train": 0.5, "bad name": 0.5}, "split name 'bad name' is not valid"),
])
def test_bad_ratios_are_refused_before_writing(tmp_path, ratios, message):
    with pytest.raises(ValueError, match=message):
        publish(_small_dataset(tmp_path), split_ratio=ratios, local_dir=str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_split_too_small_for_its_group_is_refused(tmp_path):
    dataset = _small_dataset(tmp_path).add_column("cluster_id", [0] * 5 + list(range(5, 20)))
    with pytest.raises(ValueError, match=r"split 'test' asks for 2.0 of 20 rows but the largest group .* has 5 rows"):
        publish(dataset, split_ratio={"train": 0.9, "test": 0.1}, local_dir=str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_media_with_embedding_names_rows_and_paths(tmp_path):
    dataset = _small_dataset(tmp_path)
    (tmp_path / "img" / "3.png").unlink()
    with pytest.raises(ValueError, match=r"1 media file\(s\) missing .* row 3: images\[0\] 'img/3.png'"):
        publish(dataset, local_dir=str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()
    result = publish(dataset, local_dir=str(tmp_path / "out"), embed_media=False, progress=False)
    assert "1 image, 0 audio, 0 video files" in result.card


def test_media_path_escaping_its_root_is_refused(tmp_path):
    dataset = _small_dataset(tmp_path, rows=3).map(
        lambda row, index: {"images": ["../../etc/passwd"] if index == 1 else row["images"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"row 1: images\[0\] '../../etc/passwd'.*escapes its root"):
        publish(dataset, local_dir=str(tmp_path / "out"), embed_media=False, progress=False)


@pytest.mark.parametrize("repo_id", ["my org/name", "no-namespace", "org/na--me", "org/name.git", "a/b/c"])
def test_bad_repo_id_is_refused_before_anything(tmp_path, repo_id):
    with pytest.raises(ValueError, match="repo_id .* is not valid"):
        publish(_small_dataset(tmp_path), repo_id, local_dir=str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_user_sections_and_template(tmp_path):
    template = tmp_path / "card.j2"
    template.write_text("# {{ name }}\n\nrows: {{ stats.rows }}\n\n{{ sections.pii }}\n")
    result = publish(_small_dataset(tmp_path), dry_run=True, progress=False,
                     card={"pretty_name": "Tiny", "sections": {"pii": "Faces blurred."}, "template": str(template)})
    assert result.card.split("---\n", 2)[2] == "\n# Tiny\n\nrows: 20\n\nFaces blurred.\n"
    with pytest.raises(ValueError, match="unknown"):
        publish(_small_dataset(tmp_path), dry_run=True, card={"sections": {"nonsense": "x"}})


def test_cli_dry_run_prints_card_and_table_and_bad_input_exits_2(tmp_path, capsys):
    from hf_mmbuilder.cli import main

    _small_dataset(tmp_path).save_to_disk(str(tmp_path / "saved"))
    assert main(["publish", str(tmp_path / "saved"), "--split-ratio", "train=0.5,test=0.5", "--group-by", "none",
                 "--local-dir", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "## Statistics" in printed and "| test | 10 | 10 | 50.00% | 50.00% |" in printed
    assert not (tmp_path / "out").exists()
    assert main(["publish", str(tmp_path / "saved"), "--split-ratio", "train=0.5,test=0.6", "--dry-run"]) == 2
    assert "must sum to 1" in capsys.readouterr().err


def test_shards_are_sized_by_bytes(tmp_path):
    dataset = _small_dataset(tmp_path, rows=40)
    out = tmp_path / "out"
    result = publish(dataset, split_ratio={"train": 0.5, "test": 0.5}, group_by=None, local_dir=str(out),
                     max_shard_size="20KB", progress=False)
    shards = sorted((out / "data").glob("train-*.parquet"))
    assert len(shards) > 1
    assert shards[0].name == f"train-00000-of-{len(shards):05d}-{generation(result.card)}.parquet"
    loaded = load_dataset(str(out))
    assert len(loaded["train"]) == 20 and len(loaded["test"]) == 20
    assert sorted([*loaded["train"]["text"], *loaded["test"]["text"]]) == sorted(dataset["text"])
    with pytest.raises(ValueError, match="max_shard_size"):
        publish(dataset, dry_run=True, max_shard_size="lots")


def test_card_never_carries_the_token(tmp_path):
    secret = "hf_SecretTokenForTheCardTest"
    with pytest.raises(ValueError, match="contains the Hub token") as caught:
        publish(_small_dataset(tmp_path), "my-org/tiny", token=secret, dry_run=True, progress=False,
                card={"sections": {"summary": f"uploaded with {secret}"}})
    assert secret not in str(caught.value)


def test_special_tokens_and_the_deprecated_tokens_keyword(tmp_path):
    dataset = Dataset.from_dict({"text": [f"<image> row {index}" for index in range(6)],
                                 "images": [[] for _ in range(6)], "audios": [[] for _ in range(6)], "videos": [[] for _ in range(6)]})
    special = hf_mmbuilder.SpecialTokens(image="<image>")
    new = publish(dataset, dry_run=True, special_tokens=special, progress=False)
    with pytest.warns(FutureWarning, match=r"publish\(tokens=\.\.\.\) is deprecated; use special_tokens=\.\.\.") as caught:
        old = publish(dataset, dry_run=True, tokens=special, progress=False)
    assert caught[0].filename == __file__
    assert old.card == new.card and new.card != publish(dataset, dry_run=True, progress=False).card
    with pytest.raises(TypeError, match="got both special_tokens= and its deprecated name tokens="):
        publish(dataset, dry_run=True, tokens=special, special_tokens=special)
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_option'"):
        publish(dataset, dry_run=True, no_such_option=1)


@pytest.mark.parametrize("seed", range(3))
def test_no_identical_image_bytes_in_two_published_splits(tmp_path, seed):
    rng = np.random.default_rng(seed)
    originals = write_images(tmp_path / "media", [f"src/{number}.png" for number in range(25)], seed=seed)
    contents = list(originals.values())
    rows = []
    for row, original in enumerate(rng.permutation(np.repeat(np.arange(25), 4)).tolist()):
        path = f"copies/{row}.png"
        (tmp_path / "media" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "media" / path).write_bytes(contents[original])
        rows.append(path)
    dataset = Dataset.from_dict({"text": [f"<__dj__image> row {row}" for row in range(100)], "images": [[path] for path in rows],
                                 "media_root": [str(tmp_path / "media")] * 100})
    out = tmp_path / "published"
    result = publish(dataset, split_ratio=RATIOS, seed=seed, local_dir=str(out), progress=False)
    assert ("never span two splits; media files are keyed by the xxh3-128 digest of their bytes (100 files)."
            in result.card)
    loaded = embedded_rows(load_dataset(str(out), cache_dir=str(tmp_path / "cache")))
    split_of_bytes = {}
    for split, split_rows in loaded.items():
        for row in split_rows:
            for image in row["images"]:
                assert split_of_bytes.setdefault(image["bytes"], split) == split, "identical image bytes in two splits"
    assert len(split_of_bytes) == 25 and sum(len(part) for part in loaded.values()) == 100


def test_json_columns_published_as_text_load_back_as_json_and_export_unchanged(tmp_path):
    from datasets import Json, Value

    from hf_mmbuilder.publishing import load_published

    dataset, _ = build_llava_dataset(tmp_path / "media")
    out = tmp_path / "published"
    result = publish(dataset, split_ratio=RATIOS, seed=5, local_dir=str(out), embed_media=False, progress=False)
    metadata = yaml.safe_load(result.card.split("---\n")[1])
    assert metadata["hf_mmbuilder"] == {"json_text_columns": ["extra"],
                                        "empty_columns_left_out": ["audios", "videos", "turn_extras"]}
    assert "Left out because they are empty in every row: `audios`, `videos`, `turn_extras`." in result.card
    plain = load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert plain["train"].features["extra"] == Value("string")
    assert list(plain["train"].features) == ["text", "images", "id", "id_is_int", "roles", "media_layout", "source_style", "extra"]
    loaded = load_published(str(out), cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].features["extra"] == Json()
    for split, rows in result.plan.indices.items():
        hf_mmbuilder.export(loaded[split], "llava", str(tmp_path / f"back-{split}.json"))
        hf_mmbuilder.export(dataset.select(rows), "llava", str(tmp_path / f"original-{split}.json"))
        assert (tmp_path / f"back-{split}.json").read_bytes() == (tmp_path / f"original-{split}.json").read_bytes()

    kept = publish(dataset, split_ratio=RATIOS, seed=5, local_dir=str(tmp_path / "kept"), embed_media=False,
                   keep_empty_columns=True, progress=False)
    assert "Left out because" not in kept.card
    assert list(load_dataset(str(tmp_path / "kept"), cache_dir=str(tmp_path / "cache"))["train"].features) == [
        "text", "images", "audios", "videos", "id", "id_is_int", "roles", "media_layout", "turn_extras", "source_style", "extra"]


def test_cli_media_identity_and_empty_columns_options(tmp_path, capsys):
    from hf_mmbuilder.cli import main

    _small_dataset(tmp_path).save_to_disk(str(tmp_path / "saved"))
    assert main(["publish", str(tmp_path / "saved"), "--split-ratio", "train=0.5,test=0.5", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "media files are keyed by the xxh3-128 digest of their bytes (20 files)." in printed
    assert "Left out because they are empty in every row: `audios`, `videos`." in printed
    assert main(["publish", str(tmp_path / "saved"), "--split-ratio", "train=0.5,test=0.5", "--dry-run",
                 "--media-identity", "path", "--near-duplicate-radius", "3", "--keep-empty-columns"]) == 0
    printed = capsys.readouterr().out
    assert ("media files are keyed by their path (20 files); images whose perceptual hashes (phash, 64 bits) are "
            "within Hamming distance 3 are grouped too.") in printed
    assert "Left out because" not in printed
