"""Stats and quality filters: values on real LLaVA rows and generated media, reasons for every
dropped row, unreadable media recorded, num_proc=2 and cache reuse."""

import wave

import pytest
from datasets import Dataset
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder import IMAGE_TOKEN
from hf_mmbuilder.ops import FILTER_COLUMN, STATS_COLUMN, ComputeStats, QualityFilter, RedactPII, apply_filters


@pytest.fixture
def media(tmp_path):
    Image.new("RGB", (64, 48)).save(tmp_path / "wide.png")
    Image.new("RGB", (300, 20)).save(tmp_path / "strip.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with wave.open(str(tmp_path / "a.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 24000)
    return tmp_path


def rows(media):
    return {
        "text": [
            "[[human]]: What is shown here?\n" + IMAGE_TOKEN + "\n[[gpt]]: A small black picture with nothing in it.",
            "[[human]]: " + IMAGE_TOKEN + " Décrivez cette image, s'il vous plaît.\n[[gpt]]: C'est une bande très étroite et la couleur est noire.",
            "[[human]]: " + IMAGE_TOKEN + " 这张图片是什么？\n[[gpt]]: 这是一张损坏的图片。",
            "<__dj__audio> spam spam spam spam spam spam spam spam spam spam spam spam spam spam",
            "short",
        ],
        "images": [["wide.png"], ["strip.jpg"], ["broken.jpg"], [], ["extra.png"]],
        "audios": [[], [], [], ["a.wav"], []],
        "videos": [[], [], [], [], []],
        "media_root": [str(media)] * 5,
    }


def test_stats_values(media):
    ds = Dataset.from_dict(rows(media)).map(ComputeStats(ngram=2), batched=True)
    stats = ds[STATS_COLUMN][:]
    assert [s["lang"] for s in stats[:3]] == ["en", "fr", "zh"]
    assert [s["num_turns"] for s in stats] == [2, 2, 2, 0, 0]
    assert [s["aligned"] for s in stats] == [True, True, True, True, False]
    assert stats[0]["image_width"] == [64] and stats[0]["image_height"] == [48]
    assert stats[1]["image_width"] == [300] and stats[1]["image_height"] == [20]
    assert stats[2]["image_width"] == [-1] and "broken.jpg" in stats[2]["media_errors"][0]
    assert stats[3]["audio_duration"] == [1.5]
    assert stats[3]["word_rep_ratio"] == 1.0 and stats[0]["word_rep_ratio"] == 0.0
    assert stats[4]["text_len"] == 5 and stats[4]["num_words"] == 1
    # Role markers and tokens are not words.
    assert stats[0]["num_words"] == len("What is shown here? A small black picture with nothing in it.".split())


def test_filters_record_every_reason(media):
    ds = Dataset.from_dict(rows(media))
    quality = QualityFilter(min_text_len=10, min_image_width=32, min_image_height=32, max_aspect_ratio=3.0, languages=["en", "fr", "zh"], max_word_rep_ratio=0.5, ngram=2)
    result = apply_filters(ds.map(ComputeStats(ngram=2), batched=True), quality, num_proc=2, batch_size=2)
    assert result.kept["text"][:] == ds["text"][:1]
    reasons = result.dropped[FILTER_COLUMN][:]
    assert "image height 20 < 32" in reasons[0] and "image aspect ratio 15.00 > 3.0" in reasons[0]
    assert reasons[1].startswith("unreadable media: images 'broken.jpg'")
    assert "word_rep_ratio 1.00 > 0.5" in reasons[2] and "language 'en'" not in reasons[2]
    assert "text_len 5 < 10" in reasons[3] and "misaligned (images tokens != paths)" in reasons[3]
    assert len(result.kept) + len(result.dropped) == len(ds)
    assert result.reasons["unreadable media"] == 2 and "extra.png" in reasons[3] and result.reasons["text_len"] == 1
    # Without precomputed stats, the filter computes what it needs and agrees.
    direct = apply_filters(ds, quality)
    assert direct.dropped[FILTER_COLUMN][:] == reasons


def test_language_filter_rejects_other_languages(media):
    ds = Dataset.from_dict(rows(media))
    result = apply_filters(ds, QualityFilter(languages=["fr"], require_aligned=False))
    assert [text[:12] for text in result.kept["text"][:]] == ["[[human]]: " + IMAGE_TOKEN[0]]
    assert "language 'zh'" in result.dropped[FILTER_COLUMN][1]


def test_chain_on_real_llava_hits_cache_with_num_proc(shared_data, cache_dir):
    source = shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json"
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    ops = [RedactPII(), ComputeStats(media=False), QualityFilter(min_text_len=20)]
    runs = []
    for _ in range(2):
        current = ds
        for op in ops:
            current = current.map(op, batched=True, batch_size=16, num_proc=2)
        runs.append(current)
    assert [f["filename"] for f in runs[0].cache_files] == [f["filename"] for f in runs[1].cache_files]
    stats = runs[0][STATS_COLUMN][:]
    assert all(row["aligned"] for row in stats)
    assert sum(row["lang"] == "en" for row in stats) >= 95
    assert [row["num_turns"] for row in stats] == [len(roles) for roles in ds["roles"][:]]
    assert runs[0]["images"][:] == ds["images"][:]
    assert set(runs[0][FILTER_COLUMN][:]) == {""}


def test_real_media_headers(shared_data):
    folder = shared_data / "media"
    names = ["cat.jpg", "img1.png"]
    ds = Dataset.from_dict({"text": [IMAGE_TOKEN + "<__dj__audio><__dj__video>"] * 2, "images": [[n] for n in names],
                            "audios": [["audio1.wav"], ["audio3.ogg"]], "videos": [["video1.mp4"], ["video4.mp4"]]})
    stats = ds.map(ComputeStats(media_root=str(folder)), batched=True)[STATS_COLUMN][:]
    for row, name in zip(stats, names):
        with Image.open(folder / name) as image:
            assert (row["image_width"][0], row["image_height"][0]) == image.size
        assert row["audio_duration"][0] > 0 and row["video_duration"][0] > 0
        assert row["media_errors"] == []


def test_quality_cli(tmp_path, capsys):
    import json

    from hf_mmbuilder.cli import main

    source = tmp_path / "in.json"
    records = [{"id": "a", "image": "x.jpg", "conversations": [{"from": "human", "value": "<image>\nWhat is this? Mail me: a@b.org"}, {"from": "gpt", "value": "A cat sitting on the mat by the door."}]},
               {"id": "b", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}]
    source.write_text(json.dumps(records))
    assert main(["quality", "--from", "llava", str(source), "--min-text-len", "60", "--report", str(tmp_path / "r.json"),
                 "--dropped", str(tmp_path / "dropped.parquet")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows"] == 2 and report["pii"]["email"] == 1 and report["pass_rates"]["text_len"] == 0.5
    assert "1 kept, 1 dropped" in capsys.readouterr().out
    assert (tmp_path / "dropped.parquet").exists()
    assert main(["quality", "--from", "llava", str(tmp_path / "missing.json")]) == 2
