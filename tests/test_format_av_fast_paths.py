"""The batch-at-once paths of the audio/video caption loaders give the rows of the record-by-record
path: ``fast_path=False`` sends every record through the careful path, and both loads must agree
column by column."""

import os
import random

import orjson
import pyarrow as pa
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.formats.captioned import CaptionConfig, wrap_caption, wrap_captions
from hf_mmbuilder.formats.columns import json_objects
from hf_mmbuilder.loading_scripts.internvid import timecode_seconds, timecodes_seconds
from hf_mmbuilder.media import MediaFinder

OPTIONS = [{}, {"video_special_token_insert_pos": "random", "sent_separator": "|"}, {"keep_other_fields": False, "add_eoc_at_last": False}]


def _touch(folder, relative):
    path = os.path.join(str(folder), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def _same_rows(format_name, source, tmp_path, options):
    fast = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=str(tmp_path / "fast"), **options)
    careful = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=str(tmp_path / "careful"), fast_path=False, **options)
    assert len(fast) == len(careful) > 0
    for name in fast.column_names:
        assert fast[name] == careful[name], name
    return fast


def _generated(format_name, folder):
    if format_name == "video_chatgpt":
        return testing.write_video_chatgpt_json(str(folder / "chatgpt.json"), 600, seed=3)
    if format_name == "internvid":
        return testing.write_internvid_jsonl(str(folder / "internvid.jsonl"), 600, seed=3)
    if format_name == "msrvtt":
        return testing.write_msrvtt(str(folder / "msrvtt.jsonl"), "jsonl", 600, seed=3)
    return testing.write_youku_csv(str(folder / "youku.csv"), "classification", 600, seed=3)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("format_name", ["video_chatgpt", "internvid", "msrvtt", "youku"])
def test_video_formats_fast_rows_equal_careful_rows(tmp_path, format_name, options):
    source = _generated(format_name, tmp_path)
    first = hf_mmbuilder.load(format_name, source, split="train", cache_dir=str(tmp_path / "first"))
    for paths in first["videos"]:
        name = paths[0] if format_name == "youku" or paths[0].endswith(".mp4") else paths[0] + ".mp4"
        _touch(tmp_path, name)
    rows = _same_rows(format_name, source, tmp_path, options)
    if format_name != "youku":
        # The files now exist, so the lookup by stem found them (the paths end in .mp4).
        assert all(paths[0].endswith(".mp4") for paths in rows["videos"])


@pytest.mark.parametrize(
    "subset, options",
    [
        ("soundbible", {}),
        ("soundbible", {"target_field": "title", "sent_separator": " "}),
        ("freesound", {"add_target_field_token": True, "add_eoc_at_last": False, "str_id": False}),
        ("audioset_sl", {}),
    ],
)
def test_wavcaps_fast_rows_equal_careful_rows(tmp_path, subset, options):
    source = testing.write_wavcaps_json(str(tmp_path / "wavcaps.json"), subset, 400, seed=5)
    first = hf_mmbuilder.load("wavcaps", source, split="train", cache_dir=str(tmp_path / "first"), wavcaps_audio_path="audio")
    for number, paths in enumerate(first["audios"]):
        # Half the files in a sub-folder, so paths come from the recursive listing.
        stem = os.path.basename(paths[0])
        _touch(tmp_path, os.path.join("audio", f"part{number % 2}", stem) if number % 2 else paths[0])
    _same_rows("wavcaps", source, tmp_path, dict(options, wavcaps_audio_path="audio"))


def test_one_bad_record_leaves_the_other_rows_unchanged(tmp_path):
    source = testing.write_internvid_jsonl(str(tmp_path / "internvid.jsonl"), 300, seed=1)
    lines = open(source, encoding="utf-8").read().rstrip("\n").split("\n")
    good = hf_mmbuilder.load("internvid", source, split="train", cache_dir=str(tmp_path / "good"))
    lines[150] = lines[150].replace('"Start_timestamp":"', '"Start_timestamp":"x')
    with open(source, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    kept = hf_mmbuilder.load("internvid", source, split="train", cache_dir=str(tmp_path / "kept"), on_error="keep")
    assert len(kept) == len(good) and kept["record_errors"][150][0].endswith("is not HH:MM:SS.fff")
    assert kept["record_errors"][:150] + kept["record_errors"][151:] == [None] * (len(good) - 1)
    # source_style is a claim on the file as each load read it: the rewrite changed the file.
    for name in [name for name in good.column_names if name != "source_style"]:
        assert kept[name][:150] + kept[name][151:] == good[name][:150] + good[name][151:], name


def test_wrap_captions_matches_wrap_caption_for_every_position():
    captions = ["a dog", "", "x [[q]]: y", "é\u2028z"]
    for position in ("before", "after", "random"):
        config = CaptionConfig(eoc_special_token="<e>", video_special_token_insert_pos=position, sent_separator="|")
        rng = random.Random(7)
        expected = [wrap_caption("Q:" + caption, "<v>", config, rng) for caption in captions]
        assert wrap_captions(["Q:", pa.array(captions)], len(captions), "<v>", config, random.Random(7)).to_pylist() == expected


def test_tables_of_one_length_share_their_constant_columns():
    from datasets import Features, List, Value

    from hf_mmbuilder.formats.builder import ColumnBuffer

    features = Features({"text": Value("string"), "root": Value("string"), "videos": List(Value("string"))})
    buffer = ColumnBuffer(features, {"root": "/data", "videos": []})
    first, second, third = (buffer.table_with({"text": pa.array(["t"] * rows)}, rows) for rows in (3, 3, 2))
    assert first.column("root").chunk(0).buffers()[2].address == second.column("root").chunk(0).buffers()[2].address
    assert first.to_pylist() == second.to_pylist() == [{"text": "t", "root": "/data", "videos": []}] * 3
    assert third.to_pylist() == [{"text": "t", "root": "/data", "videos": []}] * 2
    assert third.schema == features.arrow_schema


def test_json_objects_matches_orjson_per_value():
    values = [{"a": 1.5, "b": [1, {"c": "x,}]\\\""}]}, None, {}, {"é": "😀", "n": None, "big": 2**62}, [1, 2], "s", None]
    assert json_objects(values).to_pylist() == [None if value is None else orjson.dumps(value).decode() for value in values]
    assert json_objects([None]).to_pylist() == [None]


def test_timecodes_seconds_matches_timecode_seconds():
    rng = random.Random(0)
    codes = [f"{rng.randint(0, 120):02d}:{rng.randint(0, 59):02d}:{rng.uniform(0, 59.999):06.3f}" for _ in range(2000)]
    codes += ["1:2:3", "00:00:07.1234567", "100:59:59.999999"]
    assert timecodes_seconds(pa.array(codes)) == [timecode_seconds(code) for code in codes]
    # Unicode digits match Python's pattern only: the whole column goes record by record.
    assert timecodes_seconds(pa.array(["00:00:0\u0661.5"])) is None
    assert timecodes_seconds(pa.array(["00:61:00.0"])) is None


def test_timecodes_written_as_internvid_writes_them_are_read_from_their_bytes():
    from hf_mmbuilder.loading_scripts.internvid import fixed_timecodes

    rng = random.Random(1)
    codes = [f"{rng.randint(0, 99):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}" for _ in range(20_000)]
    codes += ["00:00:00.000", "00:00:00.001", "99:59:59.999", "00:59:00.500", "12:34:56.789"]
    seconds, fixed = fixed_timecodes(pa.array(codes))
    assert fixed.all() and seconds.tolist() == [timecode_seconds(code) for code in codes]
    others = ["0:07:33.689", "00:60:00.000", "00:00:60.000", "0a:00:00.000", "00:00:00,000", "00:00:0\u0661.500", "", "000:00:00.00"]
    seconds, fixed = fixed_timecodes(pa.array(others).slice(0))
    assert not fixed.any() and not seconds.any()
    # Mixed with them, the others go by the pattern, each as timecode_seconds reads it.
    mixed = pa.array(codes[:3] + ["0:07:33.689", "100:59:59.999999"] + codes[3:6]).slice(1)
    assert timecodes_seconds(mixed) == [timecode_seconds(code) for code in mixed.to_pylist()]


def test_media_finder_stems_match_splitext(tmp_path):
    names = ["a.flac", ".flac", "..flac", ".a.FLAC", "b.c.wav", "x.txt", "y", "z.mp4.flac", "..a.wav", "q.Wav"]
    for folder in ("", "s/t"):
        for name in names:
            _touch(tmp_path, os.path.join(folder, name))
    extensions = (".flac", ".wav")
    expected = {}
    for folder, subfolders, files in os.walk(tmp_path):
        subfolders.sort()
        for name in sorted(files):
            stem, extension = os.path.splitext(name)
            if extension.lower() in extensions:
                expected.setdefault(stem, os.path.relpath(os.path.join(folder, name), tmp_path))
    finder = MediaFinder(str(tmp_path), recursive=True, extensions=extensions)
    assert finder.stems() == expected
    assert finder.by_name("y") == "y" and finder.by_name("x.txt") == "x.txt"
