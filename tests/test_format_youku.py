"""Youku-mPLUG CSV: lossless round trip, subset detection, Data-Juicer parity, edits, bad input."""


import pytest
from format_helpers import check_unreadable_member, load_and_export, read_csv, read_records, rejects, write_csv, zip_with_corrupt_member

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError

REAL = {
    "youku_pretrain": "pretrain",
    "youku_classification_train": "classification",
    "youku_retrieval_train": "retrieval",
}


@pytest.mark.parametrize("name, subset", sorted(REAL.items()))
def test_real_files_round_trip_and_match_data_juicer(shared_data, tmp_path, cache_dir, name, subset):
    source = shared_data / "formats" / "youku" / f"{name}.csv"
    out = tmp_path / "out.csv"
    ds = load_and_export("youku", source, out, cache_dir)
    assert read_csv(out) == read_csv(source)
    assert set(ds["subset"]) == {subset}
    golden = read_records(shared_data / "dj_golden" / f"{name}.dj.jsonl")
    parity = hf_mmbuilder.load("youku", str(source), split="train", cache_dir=cache_dir, subset_type=subset)
    header, *rows = read_csv(out)
    assert len(parity) == len(golden) == len(rows)
    for row, cells, expected in zip(parity, rows, golden):
        assert (row["text"], row["videos"]) == (expected["text"], expected["videos"])
        assert dict(zip(header, cells)) == {k: v for k, v in expected.items() if k not in ("text", "videos")}


@pytest.mark.parametrize("subset", ["pretrain", "classification", "retrieval", "captioning"])
def test_generated_subsets_with_every_quirk_round_trip(tmp_path, cache_dir, subset):
    source = testing.write_youku_csv(str(tmp_path / "in.csv"), subset, 10_000, seed=4)
    out = tmp_path / "out.csv"
    ds = load_and_export("youku", source, out, cache_dir, num_proc=2)
    original, exported = read_csv(source), read_csv(out)
    assert len(exported) == len(original) == 10_001
    assert sum(a != b for a, b in zip(original, exported)) == 0
    assert set(ds["subset"]) == {subset} and ds[0]["csv_header"] == testing.YOUKU_HEADERS[subset]
    assert hf_mmbuilder.validate_alignment(ds) == []
    if subset == "captioning":
        assert ds[0]["text"].startswith(hf_mmbuilder.VIDEO_TOKEN + " ['")


def test_extra_columns_bom_and_header_names_survive(tmp_path, cache_dir):
    rows = [["video_id:FILE", "title", "label", "note"], ["v/1.mp4", " 标题, \"引号\"\n换行 ", "宠物", ""], ["v/2.flv", "", "x", "n"]]
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbf" + open(write_csv(tmp_path / "plain.csv", rows), "rb").read())
    out = tmp_path / "out.csv"
    ds = load_and_export("youku", source, out, cache_dir)
    assert read_csv(out) == rows and ds[0]["extra"] == {"label": "宠物", "note": ""}


def test_edits_survive_export_and_paths_are_checked(tmp_path, cache_dir):
    source = testing.write_youku_csv(str(tmp_path / "in.csv"), "retrieval", 20, seed=1)
    ds = hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir)
    edited = ds.map(lambda row: {"text": row["text"].replace("dog", "[PET]"), "videos": ["moved/" + row["videos"][0]]})
    hf_mmbuilder.export(edited, "youku", str(tmp_path / "out.csv"))
    for before, after in zip(read_csv(source)[1:], read_csv(tmp_path / "out.csv")[1:]):
        assert after == ["moved/" + before[0], before[1].replace("dog", "[PET]")]
    escaping = ds.map(lambda row: {"videos": ["../../etc/passwd"]})
    with pytest.raises(RecordError, match="escapes its root"):
        hf_mmbuilder.export(escaping, "youku", str(tmp_path / "bad.csv"))


def test_streaming_and_files_with_different_headers(tmp_path, cache_dir):
    first = testing.write_youku_csv(str(tmp_path / "a.csv"), "pretrain", 5, seed=1)
    second = testing.write_youku_csv(str(tmp_path / "b.csv"), "retrieval", 3, seed=2)
    ds = hf_mmbuilder.load("youku", [first, second], split="train", cache_dir=cache_dir)
    assert ds["subset"] == ["pretrain"] * 5 + ["retrieval"] * 3 and ds["source_file"] == [first] * 5 + [second] * 3
    streamed = hf_mmbuilder.load("youku", [first, second], split="train", streaming=True)
    assert list(streamed) == ds.to_list()
    with pytest.raises(RecordError, match="record 5: row has the CSV header"):
        hf_mmbuilder.export(ds, "youku", str(tmp_path / "mixed.csv"))
    hf_mmbuilder.export(ds.select(range(5, 8)), "youku", str(tmp_path / "b_out.csv"))
    assert read_csv(tmp_path / "b_out.csv") == read_csv(second)


# -- bad input -------------------------------------------------------------------------------


def test_wrong_header_raises_or_skips_the_file(tmp_path, cache_dir, caplog):
    bad = write_csv(tmp_path / "bad.csv", [["video", "title"], ["v/1.mp4", "x"]])
    good = testing.write_youku_csv(str(tmp_path / "good.csv"), "pretrain", 3)
    with pytest.raises(RecordError, match=r"bad\.csv \(line 1\): file unreadable: CSV header .* no column 'video_id:FILE'; records unreachable: unknown"):
        hf_mmbuilder.load("youku", bad, split="train", cache_dir=cache_dir)
    with pytest.raises(RecordError, match="not a Youku-mPLUG classification header: no column 'label'"):
        hf_mmbuilder.load("youku", good, split="train", cache_dir=cache_dir, subset_type="classification")
    rejects_path = tmp_path / "rejects.jsonl"
    ds = hf_mmbuilder.load("youku", [bad, good], split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path))
    assert len(ds) == 3 and rejects(rejects_path)[0]["file"] == bad
    # A file has no row to keep: "keep" keeps the other files' rows and logs the file's failure.
    ds = hf_mmbuilder.load("youku", [bad, good], split="train", cache_dir=cache_dir, on_error="keep")
    assert len(ds) == 3 and f"{bad} (line 1): file unreadable: CSV header ['video', 'title']" in caplog.text


def test_bad_rows_raise_skip_or_keep(tmp_path, cache_dir):
    source = write_csv(tmp_path / "in.csv", [["video_id:FILE", "title"], ["v/1.mp4", "ok"], ["v/2.mp4", "x", "extra cell"], ["", "no video"]])
    with pytest.raises(RecordError, match=r"record 1 \(line 3\): row has 3 cell\(s\), the header has 2"):
        hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir)
    rejects_path = tmp_path / "rejects.jsonl"
    ds = hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects_path))
    assert ds["videos"] == [["v/1.mp4"]]
    assert [r["reason"] for r in rejects(rejects_path)] == ["row has 3 cell(s), the header has 2", "empty 'video_id:FILE' cell"]
    assert rejects(rejects_path)[0]["raw"] == "v/2.mp4,x,extra cell"
    kept = hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir, on_error="keep")
    assert [errors is None for errors in kept["record_errors"]] == [True, False, False]
    with pytest.raises(RecordError, match="kept with load errors"):
        hf_mmbuilder.export(kept, "youku", str(tmp_path / "out.csv"))


def test_missing_video_with_check_media(tmp_path, cache_dir):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "1.mp4").write_bytes(b"")
    source = write_csv(tmp_path / "in.csv", [["video_id:FILE", "title"], ["v/1.mp4", "a"], ["v/2.mp4", "b"]])
    with pytest.raises(RecordError, match="record 1 .*media file 'v/2.mp4' not found"):
        hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir, check_media=True)
    ds = hf_mmbuilder.load("youku", source, split="train", cache_dir=cache_dir, check_media=True, on_error="skip")
    assert ds["videos"] == [["v/1.mp4"]]


def test_unreadable_zip_member(tmp_path, cache_dir):
    rows = open(testing.write_youku_csv(str(tmp_path / "in.csv"), "classification", 300, seed=3), "rb").read()
    archive = zip_with_corrupt_member(tmp_path / "youku.zip", "good.csv", rows, "bad.csv", rows)
    check_unreadable_member("youku", archive, "bad.csv", 300, tmp_path, cache_dir)
