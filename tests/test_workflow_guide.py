"""The guide's MultiModalDatasetBuilder quick start, run verbatim from the README on generated images
with a captions JSON and a metadata CSV beside them; media folders joined with captions and
metadata files; validate_quality on given rows; exports returning a DatasetDict."""

import contextlib
import csv
import io
import json
import re
from pathlib import Path

import pytest
from datasets import DatasetDict, load_dataset

from hf_mmbuilder import testing
from hf_mmbuilder.ops import QualityFilter
from hf_mmbuilder.workflow import MultiModalDatasetBuilder, media_folder_dataset

README = Path(__file__).resolve().parents[1] / "README.md"

# The guide's quick start as issue 21 quotes it (the import line is the project's).
QUICK_START = '''from hf_mmbuilder import MultiModalDatasetBuilder
builder = MultiModalDatasetBuilder(modalities=["text", "image"], output_dir="./my_dataset", quality_threshold=0.9)
builder.add_data_source(images="./data/images", texts="./data/captions.json", metadata="./data/metadata.csv")
instructions = builder.generate_instructions(num_samples=1000, instruction_types=["qa", "caption", "reasoning"])
quality_report = builder.validate_quality(instructions)
dataset = builder.export(format="huggingface", split_ratio={"train": 0.8, "val": 0.1, "test": 0.1})
print(f"数据集构建完成!包含 {len(dataset['train'])} 个训练样本")
'''


def readme_quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Quick start\n")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], re.S)
    return blocks[0]


def test_quick_start_runs_verbatim(tmp_path, monkeypatch):
    assert readme_quick_start() == QUICK_START
    testing.write_captioned_images(str(tmp_path / "data"), 60)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(QUICK_START, "README quick start", "exec"), namespace)
    dataset = namespace["dataset"]
    published = load_dataset(str(tmp_path / "my_dataset" / "huggingface"))
    assert isinstance(dataset, DatasetDict) and list(dataset) == ["train", "val", "test"]
    assert {name: len(split) for name, split in dataset.items()} == {name: len(split) for name, split in published.items()}
    assert len(dataset["train"]) == len(published["train"])
    assert sum(len(split) for split in dataset.values()) == 1000 == len(namespace["instructions"])
    assert printed.getvalue() == f"数据集构建完成!包含 {len(published['train'])} 个训练样本\n"
    assert dataset["train"]["text"][:] == published["train"]["text"][:]
    report = namespace["quality_report"]
    assert report.rows == 1000 and report.pass_rates["overall"] == 1.0
    # Each image's instructions stay in one split (group-aware), and every image was used.
    splits_of_image = {}
    for name, split in dataset.items():
        for images in split["images"][:]:
            splits_of_image.setdefault(images[0], set()).add(name)
    assert len(splits_of_image) == 60 and all(len(names) == 1 for names in splits_of_image.values())


def test_too_few_media_groups_for_the_splits(tmp_path):
    paths = testing.write_captioned_images(str(tmp_path / "data"), 5)
    builder = MultiModalDatasetBuilder(modalities=["text", "image"], output_dir=str(tmp_path / "out"), quality_threshold=0.9)
    builder.add_data_source(**paths)
    builder.validate_quality(builder.generate_instructions(num_samples=1000, instruction_types=["qa", "caption", "reasoning"]))
    with pytest.raises(ValueError, match=r"split 'val' asks for 100.0 of 1000 rows but the largest group .* has 200 rows"):
        builder.export(format="huggingface", split_ratio={"train": 0.8, "val": 0.1, "test": 0.1})


@pytest.fixture
def folder(tmp_path):
    testing.write_images(str(tmp_path / "images"), ["a.jpg", "b.jpg", "sub/c.jpg"])
    return tmp_path


def test_captions_file_layouts(folder):
    images = str(folder / "images")
    captions = {"a.jpg": "A red kite over the beach.", "b.jpg": "Two cups on a table.", "sub/c.jpg": "A dog in the snow."}
    expected = [f"<__dj__image> {captions[name]} <|__dj__eoc|>" for name in ("a.jpg", "b.jpg", "sub/c.jpg")]
    (folder / "mapping.json").write_text(json.dumps(captions))
    # Records under other common field names, paths under the folder's name and bare names.
    records = [{"image": "images/a.jpg", "text": captions["a.jpg"]}, {"file": "b.jpg", "description": captions["b.jpg"]},
               {"path": str(folder / "images" / "sub" / "c.jpg"), "caption": captions["sub/c.jpg"]}]
    (folder / "records.json").write_text(json.dumps(records))
    (folder / "records.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    with open(folder / "captions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "caption"])
        writer.writerows([["a.jpg", captions["a.jpg"]], ["b.jpg", captions["b.jpg"]], ["c.jpg", captions["sub/c.jpg"]]])
    for name in ("mapping.json", "records.json", "records.jsonl", "captions.csv"):
        ds = media_folder_dataset(images=images, texts=str(folder / name))
        assert ds["text"][:] == expected, name
        assert ds["images"][:] == [["a.jpg"], ["b.jpg"], ["sub/c.jpg"]] and ds["media_root"][:] == [str(folder / "images")] * 3
        assert ds["metadata"][:] == [None] * 3


def test_metadata_file_keyed_by_file_name(folder):
    images = str(folder / "images")
    (folder / "captions.json").write_text(json.dumps({"a.jpg": "A red kite.", "b.jpg": "Two cups."}))
    # The metadata captions the file the captions file leaves out, and its other fields become facts.
    (folder / "metadata.json").write_text(json.dumps({"a.jpg": {"location": "beach"}, "b.jpg": {"objects": ["cup", "table"]},
                                                      "sub/c.jpg": {"caption": "A dog in the snow.", "season": "winter"}}))
    ds = media_folder_dataset(images=images, texts=str(folder / "captions.json"), metadata=str(folder / "metadata.json"))
    assert ds["text"][:] == ["<__dj__image> A red kite. <|__dj__eoc|>", "<__dj__image> Two cups. <|__dj__eoc|>",
                             "<__dj__image> A dog in the snow. <|__dj__eoc|>"]
    assert [json.loads(m) for m in ds["metadata"][:]] == [{"location": "beach"}, {"objects": ["cup", "table"]}, {"season": "winter"}]


def test_captions_record_fields_and_caption_types(folder):
    images = str(folder / "images")
    records = [{"file_name": "a.jpg", "caption": "A kite.", "annotator": "ann"}, {"file_name": "b.jpg", "caption": "Cups."},
               {"file_name": "c.jpg", "caption": "A dog.", "annotator": "bob"}]
    (folder / "captions.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (folder / "metadata.csv").write_text("file_name,annotator,location\na.jpg,carol,beach\n")
    ds = media_folder_dataset(images=images, texts=str(folder / "captions.jsonl"), metadata=str(folder / "metadata.csv"))
    assert [json.loads(m) if m else None for m in ds["metadata"][:]] == [{"annotator": "carol", "location": "beach"}, None, {"annotator": "bob"}]
    (folder / "lists.json").write_text(json.dumps({"a.jpg": ["A kite.", "A red kite."], "b.jpg": "Cups.", "c.jpg": "A dog."}))
    with pytest.raises(ValueError, match=r"lists.json key 'a.jpg': 'caption' is a list, expected the caption as a string"):
        media_folder_dataset(images=images, texts=str(folder / "lists.json"))
    (folder / "aliases.json").write_text(json.dumps({"a.jpg": "x", "images/a.jpg": "y"}))
    with pytest.raises(ValueError, match=r"aliases.json key 'images/a.jpg': 'images/a.jpg' is a file key 'a.jpg' already named"):
        media_folder_dataset(images=images, texts=str(folder / "aliases.json"), require_captions=False)


def test_orphans_on_either_side_are_named(folder):
    images = str(folder / "images")
    (folder / "ghost.json").write_text(json.dumps({"a.jpg": "x", "b.jpg": "y", "sub/c.jpg": "z", "ghost.jpg": "boo"}))
    with pytest.raises(ValueError, match=r"ghost.json: 1 caption record\(s\) name files in none of the media folders: 'ghost.jpg' \(key 'ghost.jpg'\)"):
        media_folder_dataset(images=images, texts=str(folder / "ghost.json"))
    (folder / "short.json").write_text(json.dumps({"a.jpg": "x"}))
    with pytest.raises(ValueError, match=r"images: 2 image\(s\) without a caption .*\['b.jpg', 'sub/c.jpg'\]"):
        media_folder_dataset(images=images, texts=str(folder / "short.json"))
    assert media_folder_dataset(images=images, texts=str(folder / "short.json"), require_captions=False)["text"][1] == "<__dj__image>  <|__dj__eoc|>"
    (folder / "meta.csv").write_text("file_name,location\na.jpg,beach\nnowhere.jpg,moon\n")
    with pytest.raises(ValueError, match=r"meta.csv: 1 metadata record\(s\) name files in none of the media folders: 'nowhere.jpg' \(row 3\)"):
        media_folder_dataset(images=images, texts=str(folder / "short.json"), metadata=str(folder / "meta.csv"), require_captions=False)
    (folder / "nofile.jsonl").write_text('{"caption": "x"}\n')
    with pytest.raises(ValueError, match=r"nofile.jsonl line 1: no file field \(one of file_name, "):
        media_folder_dataset(images=images, texts=str(folder / "nofile.jsonl"))
    (folder / "twice.json").write_text(json.dumps([{"file": "a.jpg", "caption": "x"}, {"file": "a.jpg", "caption": "y"}]))
    with pytest.raises(ValueError, match=r"twice.json record 1: a second record for 'a.jpg' \(the first is record 0\)"):
        media_folder_dataset(images=images, texts=str(folder / "twice.json"))
    with pytest.raises(ValueError, match="needs a media folder"):
        media_folder_dataset(texts=str(folder / "twice.json"))


def test_modalities_text_and_media_folders(folder, tmp_path):
    (folder / "captions.json").write_text(json.dumps({"a.jpg": "A red kite.", "b.jpg": "Two cups.", "c.jpg": "A dog."}))
    text_only = MultiModalDatasetBuilder(modalities=["text"], output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match=r"source 'mediafolder:images': 3 row\(s\) hold images .* modalities are \['text'\]"):
        text_only.add_data_source(images=str(folder / "images"), texts=str(folder / "captions.json"))
    builder = MultiModalDatasetBuilder(modalities=["text", "image"], output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="either one path or images="):
        builder.add_data_source("x.json", images=str(folder / "images"))
    rows = builder.add_data_source(images=str(folder / "images"), texts=str(folder / "captions.json"))
    assert len(rows) == 3 and list(builder.sources) == ["mediafolder:images"]


def test_validate_given_rows_and_export_dataset_dict(folder, tmp_path):
    (folder / "captions.json").write_text(json.dumps({"a.jpg": "A red kite flies high over the sandy beach.",
                                                      "b.jpg": "Two white cups stand on a wooden kitchen table.",
                                                      "c.jpg": "A small brown dog runs through the fresh snow."}))
    builder = MultiModalDatasetBuilder(modalities=["image"], output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    builder.add_data_source(images=str(folder / "images"), texts=str(folder / "captions.json"))
    first = builder.generate_instructions(30, ["caption"])
    builder.generate_instructions(30, ["qa"])
    assert len(builder.dataset) == 60
    report = builder.validate_quality(first)
    assert report.rows == 30 and len(builder.dataset) == 30 and set(builder.dataset["id"][:]) == set(first["id"][:])
    exported = builder.export(format="llava", split_ratio={"train": 2 / 3, "dev": 1 / 3})
    assert isinstance(exported, DatasetDict) and list(exported) == ["train", "dev"]
    assert {name: len(split) for name, split in exported.items()} == {"train": 20, "dev": 10}  # 10 instructions per image
    for name, split in exported.items():
        written = json.loads((tmp_path / "out" / "llava" / f"{name}.json").read_text())
        assert [record["id"] for record in written] == split["id"][:]
    lengths = sorted(len(text) for text in first["text"][:])
    assert lengths[0] < lengths[-1]
    report = builder.validate_quality(QualityFilter(min_text_len=lengths[-1]))
    kept = len(builder.dataset)
    assert report.rows == 30 and kept == lengths.count(lengths[-1]) == round(report.pass_rates["overall"] * 30) < 30
    whole = builder.export(format="huggingface", embed_media=False)
    assert list(whole) == ["train"] and whole["train"]["id"][:] == builder.dataset["id"][:] and len(whole["train"]) == kept


def test_audio_and_video_folders_share_one_captions_file(folder, tmp_path):
    (folder / "sounds").mkdir()
    (folder / "clips").mkdir()
    (folder / "sounds" / "rain.flac").write_bytes(b"fLaC")
    (folder / "clips" / "run.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with open(folder / "captions.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["file", "caption"], ["a.jpg", "A kite."], ["b.jpg", "Cups."], ["sub/c.jpg", "A dog."],
                                      ["rain.flac", "Rain on a tin roof."], ["clips/run.mp4", "A man runs."]])
    builder = MultiModalDatasetBuilder(modalities=["text", "image", "audio"], output_dir=str(tmp_path / "out"))
    paths = {"images": str(folder / "images"), "audios": str(folder / "sounds"), "videos": str(folder / "clips"), "texts": str(folder / "captions.csv")}
    with pytest.raises(ValueError, match=r"1 row\(s\) hold videos .* modalities are \['text', 'image', 'audio'\]"):
        builder.add_data_source(**paths)
    ds = media_folder_dataset(**paths)
    assert ds["text"][3:] == ["<__dj__audio> Rain on a tin roof. <|__dj__eoc|>", "<__dj__video> A man runs. <|__dj__eoc|>"]
    assert ds["audios"][3:] == [["rain.flac"], []] and ds["videos"][3:] == [[], ["run.mp4"]] and ds["media_layout"][:] == ["image"] * 3 + ["audio", "video"]
    assert ds["media_root"][3:] == [str(folder / "sounds"), str(folder / "clips")]
