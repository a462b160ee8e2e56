"""InternVid: lossless round trip, Data-Juicer parity, timestamps, clip cutting, bad input."""

import json
import os

import pytest
from format_helpers import check_unreadable_member, load_and_export, read_records, rejects, write_jsonl, zip_with_corrupt_member

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError
from hf_mmbuilder.loading_scripts.internvid import clip_name, timecode_seconds

RECORD = {
    "YoutubeID": "a-b_c",
    "Start_timestamp": "00:00:02.000",
    "End_timestamp": "00:00:05.500",
    "Caption": "  一个 caption\twith \"quotes\" ",
    "Aesthetic_Score": 5,
    "UMT_Score": 0.5,
    "extra": {"nested": [1, 2.0]},
}


def test_real_file_round_trips_and_matches_data_juicer(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "internvid" / "internvid_10m_flt.jsonl"
    ds = load_and_export("internvid", source, tmp_path / "out.jsonl", cache_dir)
    assert read_records(tmp_path / "out.jsonl") == read_records(source)
    golden = read_records(shared_data / "dj_golden" / "internvid_10m_flt.dj.jsonl")
    assert len(ds) == len(golden)
    for row, expected in zip(ds, golden):
        assert (row["text"], row["videos"], row["is_cut"]) == (expected["text"], expected["videos"], expected["is_cut"])
        kept = {key: value for key, value in expected.items() if key not in ("text", "videos", "is_cut")}
        assert {"Start_timestamp": row["start_timestamp"], "End_timestamp": row["end_timestamp"], **row["extra"]} == kept
    assert ds[0]["start_seconds"] == pytest.approx(453.689) and ds[0]["end_seconds"] == pytest.approx(471.085)


def test_generated_records_with_every_quirk_round_trip(tmp_path, cache_dir):
    source = testing.write_internvid_jsonl(str(tmp_path / "in.jsonl"), 10_000, seed=5)
    with open(source, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(RECORD, ensure_ascii=False) + "\n")
    out = tmp_path / "out.jsonl"
    ds = load_and_export("internvid", source, out, cache_dir, num_proc=2, shard_bytes=512 << 10)
    original, exported = read_records(source), read_records(out)
    assert len(exported) == len(original) == 10_001
    assert sum(a != b for a, b in zip(original, exported)) == 0
    ints = [r["Aesthetic_Score"] for r in exported if type(r["Aesthetic_Score"]) is int]
    assert ints and all(type(r["Aesthetic_Score"]) is type(o["Aesthetic_Score"]) for r, o in zip(exported, original))
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_timecodes_and_portable_clip_names():
    assert timecode_seconds("01:02:03.5") == 3723.5
    assert clip_name("qJrOyggIB-w", "00:07:33.689", "00:07:51.085") == "qJrOyggIB-w_00-07-33.689_00-07-51.085.mp4"
    with pytest.raises(ValueError, match="not HH:MM:SS.fff"):
        timecode_seconds("7:33")


def test_cut_videos_writes_a_clip_of_the_right_length(shared_data, tmp_path, cache_dir):
    av = pytest.importorskip("av")
    videos = tmp_path / "videos"
    videos.mkdir()
    os.symlink(shared_data / "media" / "video1.mp4", videos / "a-b_c.mp4")
    source = write_jsonl(tmp_path / "in.jsonl", [RECORD])
    clips = tmp_path / "clips"
    ds = hf_mmbuilder.load(
        "internvid", source, split="train", cache_dir=cache_dir, media_root=str(videos), cut_videos=True, cut_video_store_path=str(clips)
    )
    clip = clips / "a-b_c_00-00-02.000_00-00-05.500.mp4"
    assert ds["videos"] == [[str(clip)]] and ds["is_cut"] == [True]
    with av.open(str(clip)) as container:
        assert container.streams.video[0].frames == 84
        assert container.duration / 1e6 == pytest.approx(3.5, abs=0.1)
    hf_mmbuilder.export(ds, "internvid", str(tmp_path / "out.jsonl"))
    assert read_records(tmp_path / "out.jsonl") == [RECORD]
    missing = write_jsonl(tmp_path / "missing.jsonl", [dict(RECORD, YoutubeID="nope")])
    with pytest.raises(RecordError, match="media file 'nope' not found"):
        hf_mmbuilder.load("internvid", missing, split="train", cache_dir=cache_dir, media_root=str(videos), cut_videos=True)


def test_edits_survive_export_and_streaming(tmp_path, cache_dir):
    source = testing.write_internvid_jsonl(str(tmp_path / "in.jsonl"), 50, seed=2)
    ds = hf_mmbuilder.load("internvid", source, split="train", cache_dir=cache_dir)
    edited = ds.map(lambda row: {"text": row["text"].replace("man", "person")})
    hf_mmbuilder.export(edited, "internvid", str(tmp_path / "out.jsonl"))
    for before, after in zip(read_records(source), read_records(tmp_path / "out.jsonl")):
        assert after == dict(before, Caption=before["Caption"].replace("man", "person"))
    streamed = hf_mmbuilder.load("internvid", source, split="train", streaming=True)
    assert list(streamed) == ds.to_list()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"YoutubeID": "x", "Start_timestamp": "00:00:01.0", "End_timestamp": "00:00:02.0"}, "record has no 'Caption'"),
        (dict(RECORD, Start_timestamp=3.5), "'Start_timestamp' must be a string, got float 3.5"),
        (dict(RECORD, End_timestamp="00:00:61.000"), "timestamp '00:00:61.000' is not HH:MM:SS.fff"),
        (dict(RECORD, End_timestamp="00:00:01.000"), "is not after Start_timestamp"),
    ],
)
def test_bad_records_raise_skip_or_keep(tmp_path, cache_dir, record, reason):
    source = write_jsonl(tmp_path / "bad.jsonl", [RECORD, record])
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load("internvid", source, split="train", cache_dir=cache_dir)
    assert f"{source}: record 1 (line 2): " in str(raised.value) and reason in str(raised.value)
    rejects_path = tmp_path / "rejects.jsonl"
    ds = hf_mmbuilder.load("internvid", source, split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path))
    assert len(ds) == 1 and reason in rejects(rejects_path)[0]["reason"]
    kept = hf_mmbuilder.load("internvid", source, split="train", cache_dir=cache_dir, on_error="keep")
    assert reason in kept["record_errors"][1][0]


def test_malformed_line_and_missing_media(tmp_path, cache_dir):
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps(RECORD) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"record 1 \(line 2\): malformed JSON"):
        hf_mmbuilder.load("internvid", str(source), split="train", cache_dir=cache_dir)
    good = write_jsonl(tmp_path / "good.jsonl", [RECORD])
    with pytest.raises(RecordError, match="media file 'a-b_c' not found"):
        hf_mmbuilder.load("internvid", good, split="train", cache_dir=cache_dir, check_media=True)


def test_unreadable_zip_member(tmp_path, cache_dir):
    records = "".join(json.dumps(record) + "\n" for record in testing.internvid_records(200, seed=3)).encode()
    archive = zip_with_corrupt_member(tmp_path / "iv.zip", "good.jsonl", records, "bad.jsonl", records)
    check_unreadable_member("internvid", archive, "bad.jsonl", 200, tmp_path, cache_dir)
