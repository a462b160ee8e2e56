"""Video-ChatGPT: lossless round trip, Data-Juicer parity, edits, media lookup, bad input."""

import json

import datasets
import pytest
from format_helpers import check_unreadable_member, load_and_export, read_records, rejects, resolved, write_jsonl, zip_with_corrupt_member

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError

QUIRKY = [
    {"q": "  what?  ", "a": "没有 😀 \"quoted\"\tand\nnewline", "video_id": "v_a_b-c_d"},
    {"q": "[[a]]: looks like a marker", "a": " \n[[a]]: inside the answer", "video_id": "v_k_ZXmr8pmrs", "extra_key": [1, {"x": None}]},
    {"q": "", "a": "", "video_id": "noprefix"},
]


def test_real_file_round_trips_and_matches_data_juicer(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "video_chatgpt" / "video_chatgpt_VideoInstruct100K.json"
    ds = load_and_export("video_chatgpt", source, tmp_path / "out.json", cache_dir)
    assert read_records(tmp_path / "out.json") == read_records(source)
    golden = read_records(shared_data / "dj_golden" / "video_chatgpt_VideoInstruct100K.dj.jsonl")
    assert len(ds) == len(golden)
    for row, expected in zip(ds, golden):
        assert row["text"] == expected["text"]
        assert row["youtube_id"] == expected["youtube_id"]
        # Data-Juicer joins the data file's folder (as given on its command line) to the id.
        assert [resolved(p, row["media_root"]) for p in row["videos"]] == [
            resolved(p, str(shared_data / "formats")) for p in expected["videos"]
        ]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_generated_records_with_every_quirk_round_trip(tmp_path, cache_dir, suffix):
    records = QUIRKY + list(testing.video_chatgpt_records(10_000, seed=1))
    source = tmp_path / f"in{suffix}"
    if suffix == ".json":
        source.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    else:
        write_jsonl(source, records)
    out = tmp_path / f"out{suffix}"
    ds = load_and_export("video_chatgpt", source, out, cache_dir, num_proc=2, shard_bytes=1 << 20)
    exported = read_records(out)
    assert len(exported) == len(records) and sum(a != b for a, b in zip(records, exported)) == 0
    assert ds[1]["youtube_id"] == "k_ZXmr8pmrs" and ds[0]["youtube_id"] == "a_b-c_d"
    assert hf_mmbuilder.validate_alignment(ds) == []
    assert "\\u" not in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("options", [{"video_special_token_insert_pos": "after"}, {"video_special_token_insert_pos": "random", "add_eoc_at_last": False}])
def test_other_token_positions_round_trip(tmp_path, cache_dir, options):
    source = write_jsonl(tmp_path / "in.jsonl", QUIRKY + list(testing.video_chatgpt_records(200, seed=2)))
    ds = load_and_export("video_chatgpt", source, tmp_path / "out.jsonl", cache_dir, **options)
    assert read_records(tmp_path / "out.jsonl") == read_records(source)
    if options["video_special_token_insert_pos"] == "random":
        starts = sum(text.startswith(hf_mmbuilder.VIDEO_TOKEN) for text in ds["text"])
        assert 0 < starts < len(ds)


def test_video_found_by_stem_with_any_extension(tmp_path, cache_dir):
    (tmp_path / "k_ZXmr8pmrs.webm").write_bytes(b"")
    source = write_jsonl(tmp_path / "in.jsonl", QUIRKY[:2])
    ds = hf_mmbuilder.load("video_chatgpt", source, split="train", cache_dir=cache_dir)
    assert ds["videos"] == [["a_b-c_d"], ["k_ZXmr8pmrs.webm"]]
    hf_mmbuilder.export(ds, "video_chatgpt", str(tmp_path / "out.jsonl"))
    assert read_records(tmp_path / "out.jsonl") == QUIRKY[:2]


def test_edits_survive_export_and_a_dropped_video_is_reported(tmp_path, cache_dir):
    source = write_jsonl(tmp_path / "in.jsonl", QUIRKY)
    ds = hf_mmbuilder.load("video_chatgpt", source, split="train", cache_dir=cache_dir)
    edited = ds.map(lambda row: {"text": row["text"].replace("what?", "WHAT?")})
    hf_mmbuilder.export(edited, "video_chatgpt", str(tmp_path / "edited.jsonl"))
    assert read_records(tmp_path / "edited.jsonl")[0]["q"] == "  WHAT?  "
    dropped = ds.map(lambda row, i: {"videos": [] if i == 1 else row["videos"]}, with_indices=True)
    with pytest.raises(RecordError, match="record 1: .*exactly one video"):
        hf_mmbuilder.export(dropped, "video_chatgpt", str(tmp_path / "dropped.jsonl"))
    written = hf_mmbuilder.export(dropped, "video_chatgpt", str(tmp_path / "dropped.jsonl"), on_error="skip")
    assert list(written.values()) == [2]
    assert rejects(tmp_path / "dropped.jsonl.rejects.jsonl")[0]["record"] == 1


def test_registration_streaming_num_proc_and_provenance(tmp_path, cache_dir):
    first = write_jsonl(tmp_path / "a.jsonl", QUIRKY)
    second = write_jsonl(tmp_path / "b.jsonl", QUIRKY[:1])
    ds = datasets.load_dataset("hf_mmbuilder/video_chatgpt", data_files=[first, second], split="train", cache_dir=cache_dir, num_proc=2)
    assert sorted(ds["source_file"]) == sorted([first] * 3 + [second])
    streamed = hf_mmbuilder.load("video_chatgpt", [first, second], split="train", streaming=True)
    assert list(streamed) == ds.to_list()


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"q": "x", "a": "y", "video_id": "v_1"', "malformed JSON"),
        ('{"q": "x", "video_id": "v_1"}', "record has no 'a'"),
        ('{"q": "x", "a": 5, "video_id": "v_1"}', "'a' must be a string, got int 5"),
        ('["q", "a"]', "must be a JSON object"),
    ],
)
def test_bad_records_raise_skip_or_keep(tmp_path, cache_dir, line, reason):
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps(QUIRKY[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load("video_chatgpt", str(source), split="train", cache_dir=cache_dir)
    assert str(source) in str(raised.value) and "record 1 (line 2" in str(raised.value) and reason in str(raised.value)
    rejects_path = tmp_path / "rejects.jsonl"
    skipped = hf_mmbuilder.load(
        "video_chatgpt", str(source), split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path)
    )
    assert len(skipped) == 1 and reason in rejects(rejects_path)[0]["reason"] and rejects(rejects_path)[0]["raw"] == line
    kept = hf_mmbuilder.load("video_chatgpt", str(source), split="train", cache_dir=cache_dir, on_error="keep")
    assert kept["record_errors"][0] is None and reason in kept["record_errors"][1][0]


def test_missing_video_with_check_media(tmp_path, cache_dir):
    (tmp_path / "a_b-c_d.mp4").write_bytes(b"")
    source = write_jsonl(tmp_path / "in.jsonl", QUIRKY[:2])
    with pytest.raises(RecordError, match=r"record 1 \(line 2\): media file 'k_ZXmr8pmrs' not found"):
        hf_mmbuilder.load("video_chatgpt", source, split="train", cache_dir=cache_dir, check_media=True)
    ds = hf_mmbuilder.load("video_chatgpt", source, split="train", cache_dir=cache_dir, check_media=True, on_error="skip")
    assert ds["videos"] == [["a_b-c_d.mp4"]]


def test_unreadable_zip_member(tmp_path, cache_dir):
    records = "".join(json.dumps(record) + "\n" for record in testing.video_chatgpt_records(200, seed=3)).encode()
    archive = zip_with_corrupt_member(tmp_path / "vc.zip", "good.jsonl", records, "bad.jsonl", records)
    check_unreadable_member("video_chatgpt", archive, "bad.jsonl", 200, tmp_path, cache_dir)
