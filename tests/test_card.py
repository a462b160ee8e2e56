"""The dataset card: valid Hub metadata, statistics that equal the data, plots, durations."""

from __future__ import annotations

import re
import wave

import av
import numpy as np
import pytest
import yaml
from datasets import Dataset
from huggingface_hub import DatasetCard, DatasetCardData
from PIL import Image

from hf_mmbuilder.publishing.card import collect_statistics
from hf_mmbuilder.publishing import publish
from hub_server import validate_card_yaml

SIZES = [(32, 20), (64, 48), (40, 40), (100, 30)]


def write_wav(path, seconds: float, rate: int = 8000):
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(seconds * rate))


def write_video(path, seconds: float, fps: int = 4, size=(32, 16)):
    """A real video (PyAV, mpeg4) of ``seconds * fps`` grey frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(int(seconds * fps)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 90, np.uint8), format="rgb24")))
        out.mux(stream.encode())


@pytest.fixture()
def multimodal(tmp_path):
    for index, size in enumerate(SIZES):
        Image.new("RGB", size, (index * 40, 0, 0)).save(tmp_path / f"{index}.png")
    write_wav(tmp_path / "a.wav", 1.5)
    write_video(tmp_path / "v.mp4", 2.25)
    texts, images, audios, videos = [], [], [], []
    rng = np.random.default_rng(0)
    for row in range(40):
        count = row % 3
        chosen = [f"{(row + k) % 4}.png" for k in range(count)]
        words = " ".join(["word"] * int(rng.integers(1, 30)))
        text = "<__dj__image> " * count + words + " <|__dj__eoc|>" + (" answer <|__dj__eoc|>" if row % 2 else "")
        audio = ["a.wav"] if row == 5 else []
        video = ["v.mp4"] if row == 6 else []
        text += " <__dj__audio>" * len(audio) + " <__dj__video>" * len(video)
        texts.append(text)
        images.append(chosen)
        audios.append(audio)
        videos.append(video)
    return Dataset.from_dict({"text": texts, "images": images, "audios": audios, "videos": videos,
                              "media_root": [str(tmp_path)] * 40})


def statistics_table(card: str) -> dict:
    section = card.split("## Statistics", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("statistic", "---"):
            rows[cells[0]] = [float(cell.replace(",", "")) for cell in cells[1:]]
    return rows


def summary(values):
    values = np.asarray(values, dtype=np.float64)
    return [values.size, values.min(), values.mean(), np.median(values), np.percentile(values, 95), values.max()]


def test_card_numbers_equal_the_data(multimodal, tmp_path):
    result = publish(multimodal, split_ratio={"train": 0.75, "test": 0.25}, group_by=None, seed=0, local_dir=str(tmp_path / "out"),
                     card={"license": "mit", "sources": [{"name": "tiny", "format": "dj", "license": "mit", "rows": 40}],
                           "history": [{"step": "dedup", "method": "exact", "rows_before": 45, "removed": 5}]},
                     progress=False)
    card = result.card
    table = statistics_table(card)
    texts = multimodal["text"]
    expected = {
        "text length (characters)": summary([len(text) for text in texts]),
        "turns per row": summary([len(re.findall(r"<\|__dj__eoc\|>", t)) + (not t.endswith("<|__dj__eoc|>")) for t in texts]),
        "image width (px)": summary([width for width, _ in SIZES]),
        "image height (px)": summary([height for _, height in SIZES]),
        "audio duration (s)": summary([1.5]),
        "video duration (s)": summary([2.25]),
    }
    assert set(table) == set(expected)
    for name, values in expected.items():
        assert table[name] == pytest.approx(values, abs=0.006), name
    per_row = {count: sum(1 for images in multimodal["images"] if len(images) == count) for count in range(3)}
    for count, rows in per_row.items():
        assert f"| {count} | {rows} |" in card
    for name, rows in result.plan.indices.items():
        part = multimodal.select(rows)
        images = sum(len(paths) for paths in part["images"])
        with_images = sum(1 for paths in part["images"] if paths)
        assert f"| {name} | {len(part)} | {images} | {with_images} |" in card
    assert "| dedup | exact | 45 | 5 |" in card and "| tiny | dj | mit | 40 |" in card
    plots = re.findall(r"!\[[^\]]*\]\((assets/[\w.]+\.png)\)", card)
    assert {"assets/text_length.png", "assets/image_sizes.png", "assets/audio_duration.png"} <= set(plots)
    for plot in plots:
        assert (tmp_path / "out" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_metadata_is_valid_for_the_hub(multimodal, tmp_path):
    card_text = publish(multimodal, split_ratio={"train": 0.75, "test": 0.25}, group_by=None, dry_run=True, progress=False,
                        card={"license": "cc-by-4.0", "language": ["en"], "annotations_creators": ["machine-generated"],
                              "source_datasets": ["liuhaotian/LLaVA-Instruct-150K"], "tags": ["vqa"]}).card
    assert validate_card_yaml(card_text) == []
    card = DatasetCard(card_text)
    metadata = yaml.safe_load(card_text.split("---\n")[1])
    assert DatasetCardData(**metadata).to_dict() == card.data.to_dict()
    assert card.data.task_categories == ["image-text-to-text", "audio-text-to-text", "video-text-to-text"]
    assert card.data.size_categories == ["n<1K"] and card.data.license == "cc-by-4.0"
    info = metadata["dataset_info"]
    assert {split["name"]: split["num_examples"] for split in info["splits"]} == {"train": 30, "test": 10}
    assert [feature["name"] for feature in info["features"]] == ["text", "images", "audios", "videos"]
    tag = re.search(r"data/train-\*-([0-9a-f]{8})\.parquet", card_text).group(1)
    assert metadata["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": f"data/train-*-{tag}.parquet"}, {"split": "test", "path": f"data/test-*-{tag}.parquet"}],
        "default": True}]
    assert validate_card_yaml(card_text.replace("image-text-to-text", "image-txt")) == [
        "'task_categories' has unknown value 'image-txt'"]


def test_plots_and_card_are_deterministic(multimodal):
    first = publish(multimodal, split_ratio={"train": 0.75, "test": 0.25}, group_by=None, dry_run=True, progress=False)
    second = publish(multimodal, split_ratio={"train": 0.75, "test": 0.25}, group_by=None, dry_run=True, progress=False)
    assert first.card == second.card


def test_durations_and_formats_of_any_container(tmp_path):
    write_wav(tmp_path / "a.wav", 0.75, rate=16000)
    write_video(tmp_path / "v.mkv", 3.5, fps=4, size=(48, 32))
    write_video(tmp_path / "w.mp4", 1.0, fps=4, size=(48, 32))
    ds = Dataset.from_dict({"text": ["<__dj__audio><__dj__video><__dj__video>"], "audios": [["a.wav"]],
                            "videos": [["v.mkv", "w.mp4"]], "media_root": [str(tmp_path)]})
    stats = collect_statistics({"train": ds})
    assert stats["values"]["audio_duration"].tolist() == [0.75]
    assert stats["values"]["video_duration"].tolist() == [3.5, 1.0]
    assert stats["media_formats"] == {"audios": {"pcm_s16le, 16000 Hz, 1 ch": 1}, "videos": {"mpeg4, 48x32, 4 fps": 2}}
    card = publish(ds, dry_run=True, progress=False, group_by=None).card
    assert "| audios | pcm_s16le, 16000 Hz, 1 ch | 1 |" in card and "| videos | mpeg4, 48x32, 4 fps | 2 |" in card
    (tmp_path / "v.mkv").write_bytes(b"\x1aE\xdf\xa3 truncated")
    with pytest.raises(ValueError, match=r"^split 'train' row 0: video 'v.mkv' \(.*v.mkv\) cannot be read: cannot open the file"):
        collect_statistics({"train": ds})


def test_corrupt_image_is_named(multimodal, tmp_path):
    (tmp_path / "2.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"image '2.png' .* cannot be read"):
        publish(multimodal, dry_run=True, progress=False)


def test_audio_and_video_are_embedded_and_load_back(multimodal, tmp_path):
    from datasets import Audio, List, Video, load_dataset

    publish(multimodal, group_by=None, local_dir=str(tmp_path / "out"), progress=False)
    loaded = load_dataset(str(tmp_path / "out"), split="train")
    loaded = loaded.cast_column("audios", List(Audio(decode=False))).cast_column("videos", List(Video(decode=False)))
    assert loaded[5]["audios"] == [{"bytes": (tmp_path / "a.wav").read_bytes(), "path": "a.wav"}]
    assert loaded[6]["videos"] == [{"bytes": (tmp_path / "v.mp4").read_bytes(), "path": "v.mp4"}]


def test_dedup_report_in_history(multimodal):
    from hf_mmbuilder.duplicates import DedupReport

    report = DedupReport.from_labels("minhash", {"threshold": 0.7}, np.array([0, 0, 2, 2, 2]),
                                     np.array([True, False, True, False, False]))
    card = publish(multimodal, group_by=None, dry_run=True, progress=False,
                   card={"history": [report, {"step": "filter", "method": "text length", "rows_before": 3, "removed": 0}]}).card
    assert "| dedup | minhash | 5 | 3 |" in card and "| filter | text length | 3 | 0 |" in card
    assert "### Deduplication (minhash)" in card
    with pytest.raises(ValueError, match="card history step 0"):
        publish(multimodal, dry_run=True, card={"history": ["removed some rows"]})
