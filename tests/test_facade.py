"""MultiModalDatasetBuilder: the shared LLaVA, MMC4 and ShareGPT samples plus an image folder,
template and Oasis instructions, validation, and exports with a 0.8/0.1/0.1 split; bad input."""

import json

import pytest
from datasets import load_dataset
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.workflow import MultiModalDatasetBuilder, image_folder_dataset, sniff_format
from hf_mmbuilder.synthesis.backends import Generation

SPLITS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rows = [("red.png", (200, 30, 30), "A plain red square.", {"colors": ["red"], "location": "studio"}),
            ("sub/sky.png", (90, 150, 230), "A clear blue sky without clouds.", {"colors": ["blue", "white"]})]
    with open(folder / "metadata.jsonl", "w") as handle:
        for name, color, caption, meta in rows:
            Image.new("RGB", (64, 48), color).save(folder / name)
            handle.write(json.dumps({"file_name": name, "caption": caption, **meta}) + "\n")
    return folder


def build(shared_data, photos, tmp_path, **options):
    formats = shared_data / "formats"
    builder = MultiModalDatasetBuilder(modalities=["image", "video", "audio"], output_dir=str(tmp_path / "out"), quality_threshold=0.5,
                                       cache_dir=str(tmp_path / "cache"), **options)
    builder.add_data_source(str(formats / "llava" / "llava_instruct_150k_slice100.json"))
    builder.add_data_source(str(formats / "mmc4" / "docs_shard_151_v3.jsonl"))
    builder.add_data_source(str(formats / "sharegpt" / "sharegpt_messages_llamafactory.json"))
    builder.add_data_source(str(photos))
    return builder


def test_workflow_from_four_sources(shared_data, photos, tmp_path):
    builder = build(shared_data, photos, tmp_path)
    assert set(builder.sources) == {"llava:llava_instruct_150k_slice100.json", "mmc4:docs_shard_151_v3.jsonl",
                                    "sharegpt:sharegpt_messages_llamafactory.json", "imagefolder:photos"}
    assert len(builder.dataset) == 105  # the conversation sources
    generated = builder.generate_instructions(num_samples=120, instruction_types=["qa", "caption", "reasoning"], languages=["en", "zh"])
    assert len(generated) == 120 and len(builder.dataset) == 225
    assert {s.split(":")[0] for s in generated["source"][:]} == {"template"}
    assert hf_mmbuilder.validate_alignment(builder.dataset) == []
    report = builder.validate_quality(check_media=False)
    assert report.rows == 225 and report.alignment_errors["count"] == 0
    assert report.pii["phone"] >= 0 and 0 < report.pass_rates["overall"] <= 1
    assert (tmp_path / "out" / "quality_report.json").exists() and "| alignment |" in (tmp_path / "out" / "quality_report.md").read_text()
    with pytest.raises(ValueError, match=r"2 row\(s\) hold media the llava format cannot carry"):
        builder.export(format="llava", split_ratio=SPLITS)
    kept = len(builder.dataset) - 2
    counts = {name: len(rows) for name, rows in builder.export(format="llava", split_ratio=SPLITS, on_unsupported="skip").items()}
    rejects = [json.loads(line) for line in (tmp_path / "out" / "llava" / "rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == ["llava cannot hold audios (1 in this row)"] * 2
    assert sum(counts.values()) == kept and set(counts) == set(SPLITS)
    assert abs(counts["train"] / kept - 0.8) < 0.05
    for split, rows in counts.items():
        ds = hf_mmbuilder.load("llava", str(tmp_path / "out" / "llava" / f"{split}.json"), split="train", cache_dir=str(tmp_path / "cache"))
        assert len(ds) == rows and hf_mmbuilder.validate_alignment(ds) == []
    hub = {name: len(rows) for name, rows in builder.export(format="huggingface", split_ratio=SPLITS, embed_media=False).items()}
    assert sum(hub.values()) == kept + 2
    published = load_dataset(str(tmp_path / "out" / "huggingface"))
    assert {name: len(split) for name, split in published.items()} == hub
    card = (tmp_path / "out" / "huggingface" / "README.md").read_text()
    assert "Quality validation" in card and "by template" in card


def test_image_folder_captions_metadata_and_errors(photos, tmp_path):
    ds = image_folder_dataset(str(photos))
    assert ds["images"][:] == [["red.png"], ["sub/sky.png"]]
    assert ds[0]["text"] == "<__dj__image> A plain red square. <|__dj__eoc|>"
    assert json.loads(ds[0]["metadata"]) == {"colors": ["red"], "location": "studio"}
    bare = tmp_path / "bare"
    bare.mkdir()
    Image.new("RGB", (8, 8)).save(bare / "a.png")
    Image.new("RGB", (8, 8)).save(bare / "b.png")
    (bare / "b.txt").write_text("A black tile.\n")
    with pytest.raises(ValueError, match=r"1 image\(s\) without a caption.*a.png"):
        image_folder_dataset(str(bare))
    assert image_folder_dataset(str(bare), require_captions=False)["text"][1] == "<__dj__image> A black tile. <|__dj__eoc|>"
    (photos / "metadata.jsonl").open("a").write(json.dumps({"file_name": "ghost.png", "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="ghost.png"):
        image_folder_dataset(str(photos))


def test_bad_input(shared_data, photos, tmp_path):
    builder = MultiModalDatasetBuilder(modalities=["image"], output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="add a data source first"):
        builder.generate_instructions(3)
    with pytest.raises(ValueError, match="nothing to validate"):
        builder.validate_quality()
    with pytest.raises(ValueError, match=r"2 row\(s\) hold audios.*modalities are \['image'\]"):
        builder.add_data_source(str(shared_data / "formats" / "sharegpt" / "sharegpt_messages_llamafactory.json"))
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"foo": 1}\n')
    with pytest.raises(ValueError, match="cannot tell its format"):
        builder.add_data_source(str(odd))
    assert sniff_format(str(shared_data / "formats" / "oasis" / "oasis_mm_inf_input.jsonl")) == "oasis"
    with pytest.raises(ValueError, match="unknown modalities"):
        MultiModalDatasetBuilder(modalities=["smell"])
    builder.add_data_source(str(photos))
    with pytest.raises(ValueError, match="unknown method"):
        builder.generate_instructions(2, method="magic")
    with pytest.raises(ValueError, match="already added"):
        builder.add_data_source(str(photos))
    builder.generate_instructions(4, ["caption"])
    with pytest.raises(ValueError, match="unknown export format"):
        builder.export(format="parquet")


class EchoVLM:
    """A scripted backend that behaves like a cooperative model."""

    name = "echo"

    def generate(self, requests):
        out = []
        for request in requests:
            text = request.messages[-1]["content"][-1].get("text", "") if request.messages[-1]["content"] else ""
            if request.continue_last:
                out.append(Generation(text="What is the dominant color here?"))
            elif text.startswith("You will read"):
                out.append(Generation(text="Instruction: What is the dominant color here?"))
            elif "[[" in text:
                out.append(Generation(text="[[5]]"))
            else:
                out.append(Generation(text="The dominant color is a flat, even tone."))
        return out


def test_oasis_method(photos, tmp_path):
    builder = MultiModalDatasetBuilder(modalities=["image"], output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    builder.add_data_source(str(photos))
    generated = builder.generate_instructions(5, method="oasis", backend=EchoVLM(), progress=False)
    assert len(generated) == 2 and set(generated["source"][:]) == {"oasis"}
    assert generated[0]["text"].startswith("[[human]]: <__dj__image>\nWhat is the dominant color here?")
    assert (tmp_path / "out" / "oasis" / "final_oasis.jsonl").exists()
    report = builder.validate_quality()
    assert report.media_errors == 0 and len(builder.dataset) == 2
