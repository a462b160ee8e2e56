"""MSR-VTT (official JSON, CLIP4Clip CSV, Hugging Face JSON lines): round trips, parity, bad input."""

import json

import pytest
from format_helpers import check_unreadable_member, load_and_export, read_csv, read_records, rejects, typed, write_jsonl, zip_with_corrupt_member

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError


def test_real_files_round_trip(shared_data, tmp_path, cache_dir):
    folder = shared_data / "formats" / "msrvtt"
    ds = load_and_export("msrvtt", folder / "msrvtt_JSFUSION_test.csv", tmp_path / "out.csv", cache_dir)
    assert read_csv(tmp_path / "out.csv") == read_csv(folder / "msrvtt_JSFUSION_test.csv")
    assert ds[0]["videos"] == ["video9770.mp4"] and ds[0]["extra"] == {"key": "ret0", "vid_key": "msr9770"}
    load_and_export("msrvtt", folder / "msrvtt_hf_alexzigma_row.jsonl", tmp_path / "out.jsonl", cache_dir)
    assert typed(read_records(tmp_path / "out.jsonl")) == typed(read_records(folder / "msrvtt_hf_alexzigma_row.jsonl"))


def test_data_juicer_parity(shared_data, cache_dir):
    source = shared_data / "formats" / "msrvtt" / "msrvtt_hf_alexzigma_row.jsonl"
    golden = read_records(shared_data / "dj_golden" / "msrvtt_hf_alexzigma_row.dj.jsonl")
    ds = hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir)
    assert len(ds) == len(golden)
    for row, expected in zip(ds, golden):
        assert (row["text"], row["videos"]) == (expected["text"], expected["videos"])
        assert typed(row["extra"]) == typed({k: v for k, v in expected.items() if k not in ("text", "videos")})


@pytest.mark.parametrize("layout, suffix", [("official", ".json"), ("jsonl", ".jsonl"), ("csv", ".csv")])
def test_generated_layouts_with_every_quirk_round_trip(tmp_path, cache_dir, layout, suffix):
    source = testing.write_msrvtt(str(tmp_path / f"in{suffix}"), layout, 10_000, seed=6)
    out = tmp_path / f"out{suffix}"
    ds = load_and_export("msrvtt", source, out, cache_dir, num_proc=2, shard_bytes=1 << 20)
    assert set(ds["layout"]) == {layout}
    if layout == "csv":
        assert read_csv(out) == read_csv(source)
    elif layout == "jsonl":
        original, exported = read_records(source), read_records(out)
        assert len(exported) == 10_000 and sum(typed(a) != typed(b) for a, b in zip(original, exported)) == 0
    else:
        original, exported = read_records(source), read_records(out)
        assert typed(exported) == typed(original)
        silent = len(original["videos"]) - len({s["video_id"] for s in original["sentences"]})
        assert silent > 0 and len(ds) == 10_000 + silent
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_official_rows_are_one_per_caption_and_convert_to_the_other_layouts(tmp_path, cache_dir):
    source = testing.write_msrvtt(str(tmp_path / "in.json"), "official", 1000, seed=1)
    document = read_records(source)
    ds = hf_mmbuilder.load("msrvtt", source, split="train", cache_dir=cache_dir)
    first = document["sentences"][0]
    video = next(v for v in document["videos"] if v["video_id"] == first["video_id"])
    assert ds[0]["video_id"] == first["video_id"] and ds[0]["sentence_extra"] == {"sen_id": 0}
    assert ds[0]["extra"]["start time"] == video["start time"] and ds[0]["file_extra"] == {"info": document["info"]}
    described = ds.filter(lambda row: row["sentence_index"] is not None)
    hf_mmbuilder.export(described, "msrvtt", str(tmp_path / "out.jsonl"))
    records = read_records(tmp_path / "out.jsonl")
    assert records[0] == {"video_id": first["video_id"], "caption": first["caption"], **{k: v for k, v in video.items() if k != "video_id"}, "sen_id": 0}
    hf_mmbuilder.export(described, "msrvtt", str(tmp_path / "out.csv"))
    assert read_csv(tmp_path / "out.csv")[1] == [first["video_id"], first["caption"]]
    with pytest.raises(RecordError, match="official-layout video without a sentence"):
        hf_mmbuilder.export(ds, "msrvtt", str(tmp_path / "all.jsonl"))


def test_edits_and_filters_survive_official_export(tmp_path, cache_dir):
    source = testing.write_msrvtt(str(tmp_path / "in.json"), "official", 100, seed=2)
    ds = hf_mmbuilder.load("msrvtt", source, split="train", cache_dir=cache_dir)
    edited = ds.map(lambda row: {"text": row["text"].replace("dog", "[PET]")}).filter(lambda row, i: i % 2 == 0, with_indices=True)
    hf_mmbuilder.export(edited, "msrvtt", str(tmp_path / "out.json"))
    original, exported = read_records(source), read_records(tmp_path / "out.json")
    assert exported["sentences"] == [dict(s, caption=s["caption"].replace("dog", "[PET]")) for s in original["sentences"][::2]]
    kept_ids = {s["video_id"] for s in exported["sentences"]}
    assert [v["video_id"] for v in exported["videos"] if v["video_id"] in kept_ids] == [
        v["video_id"] for v in original["videos"] if v["video_id"] in kept_ids
    ]


def test_csv_without_sentences_and_streaming(tmp_path, cache_dir):
    source = tmp_path / "train.9k.csv"
    source.write_text("video_id\nvideo1\nvideo2\n", encoding="utf-8")
    ds = load_and_export("msrvtt", source, tmp_path / "out.csv", cache_dir)
    assert read_csv(tmp_path / "out.csv") == [["video_id"], ["video1"], ["video2"]]
    assert list(hf_mmbuilder.load("msrvtt", str(source), split="train", streaming=True)) == ds.to_list()
    captioned = ds.map(lambda row: {"text": row["text"].replace(hf_mmbuilder.VIDEO_TOKEN, hf_mmbuilder.VIDEO_TOKEN + " new")})
    with pytest.raises(RecordError, match="has no sentence column"):
        hf_mmbuilder.export(captioned, "msrvtt", str(tmp_path / "bad.csv"))


# -- bad input -------------------------------------------------------------------------------


def test_bad_json_records_raise_skip_or_keep(tmp_path, cache_dir):
    source = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"video_id": "video1", "caption": "ok"}),
        "{not json",
        json.dumps({"caption": "no id"}),
        json.dumps({"video_id": "video2", "caption": 7}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl: record 1 \(line 2\): malformed JSON"):
        hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir)
    rejects_path = tmp_path / "rejects.jsonl"
    ds = hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path))
    assert ds["video_id"] == ["video1"]
    reasons = [entry["reason"] for entry in rejects(rejects_path)]
    assert reasons[1:] == ["record has no 'video_id'", "record: 'caption' must be a string, got int 7"]
    kept = hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir, on_error="keep")
    assert [errors is None for errors in kept["record_errors"]] == [True, False, False, False]


def test_bad_official_document_and_csv_header(tmp_path, cache_dir):
    document = {"videos": [{"video_id": "video1"}], "sentences": [{"video_id": "video1", "caption": "ok"}, {"video_id": "video9", "caption": "x"}]}
    source = tmp_path / "official.json"
    source.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(RecordError, match="record 1: sentence 1 names video 'video9', which is not in 'videos'"):
        hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir)
    assert len(hf_mmbuilder.load("msrvtt", str(source), split="train", cache_dir=cache_dir, on_error="skip")) == 1
    header = tmp_path / "bad.csv"
    header.write_text("vid,sentence\nvideo1,a\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.csv \(line 1\): file unreadable: CSV header \['vid', 'sentence'\] is not an MSR-VTT"):
        hf_mmbuilder.load("msrvtt", str(header), split="train", cache_dir=cache_dir)


def test_missing_video_with_check_media(tmp_path, cache_dir):
    (tmp_path / "video1.webm").write_bytes(b"")
    source = write_jsonl(tmp_path / "in.jsonl", [{"video_id": "video1", "caption": "a"}, {"video_id": "video2", "caption": "b"}])
    with pytest.raises(RecordError, match="record 1 .*media file 'video2.mp4' not found"):
        hf_mmbuilder.load("msrvtt", source, split="train", cache_dir=cache_dir, check_media=True)
    ds = hf_mmbuilder.load("msrvtt", source, split="train", cache_dir=cache_dir, check_media=True, on_error="skip")
    assert ds["videos"] == [["video1.webm"]]


@pytest.mark.parametrize("layout, suffix", [("official", ".json"), ("jsonl", ".jsonl"), ("csv", ".csv")])
def test_unreadable_zip_member(tmp_path, cache_dir, layout, suffix):
    data = open(testing.write_msrvtt(str(tmp_path / f"in{suffix}"), layout, 200, seed=3), "rb").read()
    archive = zip_with_corrupt_member(tmp_path / "msrvtt.zip", f"good{suffix}", data, f"bad{suffix}", data)
    check_unreadable_member("msrvtt", archive, f"bad{suffix}", 200, tmp_path, cache_dir)
