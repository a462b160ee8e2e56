"""LLaVA end to end: lossless round trip, edits, Data-Juicer parity, registration, bad input."""

import json
import logging
import os
import random
import re

import datasets
import numpy as np
import orjson
import pyarrow as pa
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import ErrorPolicy, RecordError
from hf_mmbuilder.formats.builder import ColumnBuffer
from hf_mmbuilder.formats.records import KEY_ORDER_KEY, iter_batches, scan_records
from hf_mmbuilder.loading_scripts.llava import Llava, Shard
from hf_mmbuilder.media import UnsafePathError

from format_helpers import read_records, write_json


def round_trip(source, tmp_path, cache_dir, num_proc=None, **options):
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, num_proc=num_proc, **options)
    out = tmp_path / ("out" + os.path.splitext(str(source))[1])
    hf_mmbuilder.export(ds, "llava", str(out), **options)
    return ds, out


QUIRKY = [
    {"id": 7, "image": "a/1.jpg", "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A."}]},
    {"id": "x", "model": "", "conversations": [{"from": "human", "value": "  padded  \n"}, {"from": "gpt", "value": "没有图片 \u00e9 😀"}]},
    {"id": "s", "conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
    {"id": "m", "image": ["p/1.png", "p/2.png"], "conversations": [{"from": "human", "value": "A <image> B\n<image>"}, {"from": "gpt", "value": "B"}]},
    {"id": "v", "video": "v/1.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat?"}, {"from": "gpt", "value": "x"}]},
    {"id": "e", "image": "z.jpg", "data_source": "src", "width": 10, "conversations": [
        {"from": "human", "value": "Q\n<image>", "markdown": {"a": 1}, "text": "t"}, {"from": "gpt", "value": "tab\there \"quoted\" back\\slash"}]},
    {"id": "l", "image": ["only.jpg"], "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": ""}]},
    {"conversations": []},
]


@pytest.mark.parametrize("lines", [False, True])
def test_every_quirk_round_trips(tmp_path, cache_dir, lines):
    source = write_json(tmp_path / ("in.jsonl" if lines else "in.json"), QUIRKY, lines=lines)
    ds, out = round_trip(source, tmp_path, cache_dir)
    assert read_records(out) == QUIRKY
    assert ds[0]["id"] == "7" and ds[0]["id_is_int"]
    assert ds[3]["images"] == ["p/1.png", "p/2.png"]
    assert ds[3]["text"].count(hf_mmbuilder.IMAGE_TOKEN) == 2
    assert ds[4]["videos"] == ["v/1.mp4"] and hf_mmbuilder.VIDEO_TOKEN in ds[4]["text"]
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_real_llava_files_round_trip(shared_data, tmp_path, cache_dir):
    files = sorted((shared_data / "formats" / "llava").iterdir())
    assert files
    for number, source in enumerate(files):
        ds, out = round_trip(source, tmp_path / str(number), cache_dir)
        original = read_records(source)
        assert len(ds) == len(original)
        assert read_records(out) == original, source.name
        raw = out.read_bytes()
        assert b"\\u" not in raw or b"\\u" in source.read_bytes()


def test_generated_665k_shaped_sample_round_trips(tmp_path, cache_dir):
    source = testing.write_llava_json(str(tmp_path / "gen.json"), 20_000, seed=3)
    ds, out = round_trip(source, tmp_path, cache_dir, num_proc=2, shard_bytes=4 << 20)
    original = read_records(source)
    exported = read_records(out)
    assert sum(a != b for a, b in zip(original, exported)) == 0 and len(exported) == len(original)
    ints = sum(isinstance(r["id"], int) for r in original)
    assert ints and sum(ds["id_is_int"]) == ints


@pytest.mark.slow
def test_full_665k_shaped_file_round_trips_with_zero_differences(tmp_path):
    source = testing.write_llava_json(str(tmp_path / "llava_665k.json"), 665_298, seed=0)
    ds, out = round_trip(source, tmp_path, str(tmp_path / "cache"), num_proc=2)
    assert len(ds) == 665_298
    differing = 0
    for original, exported in zip(read_records(source), read_records(out)):
        differing += original != exported
    assert differing == 0


def test_compiled_parser_matches_the_careful_path(tmp_path):
    rng = random.Random(5)
    records = list(testing.llava_records(3000, seed=9)) + QUIRKY
    for record in records[:500]:
        turn = record["conversations"][-1]
        turn["value"] += rng.choice(["😀", "\u2028", "\\", '"', "\t", "é", "\ud7ff", "[x]"])
    path = tmp_path / "escaped.json"
    path.write_text(json.dumps(records, ensure_ascii=True), encoding="ascii")
    for options in ({}, {"split_chunk": True, "image_special_token": "<image>", "sent_separator": " | "}):
        builder = Llava(cache_dir=str(tmp_path / "c"), data_files=str(path), **options)
        index = scan_records(str(path))
        shard = Shard(0, str(path), str(path), str(tmp_path), 0, len(index), index)
        compiled = pa.concat_tables(builder._shard_tables(shard, ErrorPolicy()))
        buffer = ColumnBuffer(builder.info.features, constants=builder._constants(shard))
        careful = []
        for batch in iter_batches(index, 0, len(index), None):
            builder._python_rows(batch, range(len(batch.indexes)), buffer, shard, ErrorPolicy(), random.Random(0))
            careful.append(buffer.to_table())
        assert compiled.to_pylist() == pa.concat_tables(careful).to_pylist()


def test_fast_path_off_gives_the_same_table(tmp_path):
    source = write_json(tmp_path / "in.json", list(testing.llava_records(1500, seed=3)) + QUIRKY)
    fast = hf_mmbuilder.load("llava", source, split="train", cache_dir=str(tmp_path / "fast"))
    careful = hf_mmbuilder.load("llava", source, split="train", cache_dir=str(tmp_path / "careful"), fast_path=False)
    assert careful.data.table.equals(fast.data.table)


def test_a_dj_token_written_with_an_escape_is_refused_on_both_paths(tmp_path):
    # json.dumps writes "\u005f" back as "_": the file is written by hand, one escaped character per record.
    good = [orjson.dumps(record) for record in testing.llava_records(40, seed=2)]
    escaped = [rb'{"id": "e%d", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image> see %s"}]}' % (k, spelling)
               for k, spelling in enumerate([rb"<__dj\u005f_image>", rb"<\u005f_dj__image>", rb"<__\u0064j__image>", rb"<|__dj__eoc\u007c>"])]
    path = tmp_path / "escaped.jsonl"
    path.write_bytes(b"\n".join(good[:20] + escaped + good[20:]) + b"\n")
    tables = [hf_mmbuilder.load("llava", str(path), split="train", cache_dir=str(tmp_path / str(fast)), fast_path=fast, on_error="skip").data.table
              for fast in (True, False)]
    assert tables[0].num_rows == tables[1].num_rows == 40
    assert tables[0].equals(tables[1])
    with pytest.raises(RecordError, match=r"escaped\.jsonl: record 20 \(line 21\): turn 0 holds the literal DJ token '<__dj__image>'"):
        hf_mmbuilder.load("llava", str(path), split="train", cache_dir=str(tmp_path / "raise"))


EXPORT_EDGE_CASES = QUIRKY + [
    {"id": -12, "image": "a/b.jpg", "conversations": [{"from": "human", "value": "<image> ctl \u0001\u001f \u2028 \\ \""}, {"from": "gpt", "value": "[[gpt]]: x"}]},
    {"id": 0, "conversations": [{"from": "human", "value": "<image> literal, no image field"}, {"from": "gpt", "value": "<video>"}]},
    {"id": "dots", "image": "../up.jpg", "conversations": [{"from": "human", "value": "<image>"}]},
    {"id": "abs", "image": ["/abs/x.jpg", "./rel.jpg"], "conversations": [{"from": "human", "value": "<image><image>"}]},
    {"id": "both", "image": "i.jpg", "video": ["v.mp4"], "conversations": [{"from": "human", "value": "<video> and <image>"}, {"from": "gpt", "value": "ok"}]},
    {"id": "nested", "meta": {"a": [1, 2.5, None, True], "b": "é"}, "conversations": [{"from": "human", "value": "x"}]},
    {"id": "role", "conversations": [{"from": "we\"ird", "value": "x"}, {"from": "gpt", "value": "\n"}]},
]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_compiled_export_matches_the_careful_path(tmp_path, cache_dir, suffix):
    records = EXPORT_EDGE_CASES + list(testing.llava_records(2000, seed=4))
    source = write_json(tmp_path / "in.json", records)
    ds = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir)
    # Edits: a token removed (an error), an int id with a leading zero (exported as the integer).
    edited = ds.map(lambda row, k: {"text": row["text"].replace(hf_mmbuilder.IMAGE_TOKEN, "", 1) if k == 0 else row["text"],
                                    "id": "007" if k == 3 else row["id"], "id_is_int": row["id_is_int"] or k == 3},
                    with_indices=True)
    outputs = {}
    for name, fast_path in (("fast", True), ("careful", False)):
        out = tmp_path / f"{name}{suffix}"
        written = hf_mmbuilder.export(edited, "llava", str(out), on_error="skip", batch_size=700,
                                      allowed_media_roots=(str(tmp_path),), fast_path=fast_path)
        rejects = [json.loads(line)["record"] for line in open(f"{out}.rejects.jsonl")]
        outputs[name] = (read_records(out), written[str(out)], rejects)
    assert outputs["fast"] == outputs["careful"]
    # Rejected: the row without its token, and the two whose paths leave the media root.
    assert outputs["fast"][2] == [0, 10, 11]
    assert outputs["fast"][0][2]["id"] == 7
    plain = hf_mmbuilder.export(ds, "llava", str(tmp_path / f"plain{suffix}"), allowed_media_roots=("/",))
    assert read_records(tmp_path / f"plain{suffix}") == records and plain[str(tmp_path / f"plain{suffix}")] == len(records)


def test_compiled_export_takes_the_common_rows(cache_dir, tmp_path):
    from hf_mmbuilder.loading_scripts.llava import LlavaConfig, LlavaExporter

    source = testing.write_llava_json(str(tmp_path / "gen.json"), 3000, seed=2)
    ds = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir)
    _, _, fallback = LlavaExporter(LlavaConfig()).encode_table(ds.with_format("arrow")[:], b",\n")
    # Text-only records keep "model" before "conversations" (as in mix665k): the compiled path
    # writes their remembered key order too, so they stay on it.
    reordered = np.array([KEY_ORDER_KEY in (extra or {}) for extra in ds["extra"]])
    assert reordered.sum() == ds["media_layout"].count("") == 169
    assert fallback.sum() == 0


def test_map_edits_survive_export(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json"
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)

    suffix = " " + hf_mmbuilder.EOC_TOKEN

    def shout_answers(row):
        pieces = re.split(r"(\n?\[\[(?:human|gpt)\]\]: )", row["text"][: -len(suffix)])
        for position in range(2, len(pieces), 2):
            if pieces[position - 1].endswith("[[gpt]]: "):
                pieces[position] = pieces[position].upper()
        row["text"] = "".join(pieces) + suffix
        return row

    def drop_image(row):
        row["text"] = row["text"].replace(hf_mmbuilder.IMAGE_TOKEN, "")
        row["images"] = []
        return row

    edited = ds.map(shout_answers).map(lambda row, i: drop_image(row) if i == 0 else row, with_indices=True)
    out = tmp_path / "edited.json"
    hf_mmbuilder.export(edited, "llava", str(out))
    original, exported = read_records(source), read_records(out)
    for before, after in zip(original, exported):
        for turn_before, turn_after in zip(before["conversations"], after["conversations"]):
            expected = turn_before["value"].upper() if turn_before["from"] == "gpt" else turn_before["value"]
            if before is original[0]:
                expected = expected.replace("<image>", "")
            assert turn_after["value"] == expected
    assert "image" not in exported[0] and exported[1]["image"] == original[1]["image"]


def test_removing_only_the_token_is_reported_not_silently_exported(tmp_path, cache_dir):
    source = write_json(tmp_path / "in.json", QUIRKY[:1])
    ds = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir)
    broken = ds.map(lambda row: {"text": row["text"].replace(hf_mmbuilder.IMAGE_TOKEN, "")})
    with pytest.raises(RecordError, match="0 <__dj__image> token"):
        hf_mmbuilder.export(broken, "llava", str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()
    result = hf_mmbuilder.export(broken, "llava", str(tmp_path / "out.json"), on_error="skip")
    assert result == {str(tmp_path / "out.json"): 0}
    rejected = [json.loads(line) for line in open(tmp_path / "out.json.rejects.jsonl")]
    assert rejected[0]["record"] == 0 and "token" in rejected[0]["reason"]


@pytest.mark.parametrize(
    "source_name, golden_name, options",
    [
        ("llava_instruct_150k_slice100.json", "llava_instruct_150k_slice100.dj.jsonl", {}),
        ("llava_instruct_150k_slice100.json", "llava_instruct_150k_slice100.split_chunk.dj.jsonl", {"split_chunk": True}),
        ("llava_v1_5_mix665k.json", "llava_v1_5_mix665k.dj.jsonl", {}),
    ],
)
def test_data_juicer_parity(shared_data, cache_dir, source_name, golden_name, options):
    source = shared_data / "formats" / "llava" / source_name
    golden = read_records(shared_data / "dj_golden" / golden_name)
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, image_special_token="<image>", **options)
    assert [(r["id"], r["text"], r["images"]) for r in ds] == [(g["id"], g["text"], g["images"]) for g in golden]
    canonical = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, **options)
    assert "<__dj__image>" in canonical[0]["text"] and "<image>" not in canonical[0]["text"]


def test_parity_mode_export_reverses_with_the_same_options(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json"
    options = {"image_special_token": "<image>", "split_chunk": True}
    _, out = round_trip(source, tmp_path, cache_dir, **options)
    assert read_records(out) == read_records(source)


def test_load_dataset_registration_split_streaming_and_num_proc(shared_data, cache_dir):
    source = str(shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json")
    full = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train", cache_dir=cache_dir)
    public = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir)
    assert full.to_list() == public.to_list()
    head = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train[:10]", cache_dir=cache_dir)
    assert head.to_list() == full.to_list()[:10]
    streamed = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train", streaming=True)
    assert list(streamed) == full.to_list()
    public_stream = hf_mmbuilder.load("llava", source, split="train", streaming=True)
    assert list(public_stream.take(3)) == full.to_list()[:3]
    two = datasets.load_dataset(
        "hf_mmbuilder/llava", data_files={"train": [source, source]}, split="train", num_proc=2, cache_dir=cache_dir
    )
    assert len(two) == 200 and sorted(two["id"]) == sorted(list(full["id"]) * 2)
    assert len(two.cache_files) == 2


def test_second_load_reads_the_cache_and_a_new_code_hash_rebuilds(shared_data, cache_dir, monkeypatch):
    source = str(shared_data / "formats" / "llava" / "llava_v1_5_mix665k.json")
    calls = []
    original = Llava._shard_tables

    def counting(self, shard, policy):
        calls.append(shard.path)
        yield from original(self, shard, policy)

    monkeypatch.setattr(Llava, "_shard_tables", counting)
    first = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train", cache_dir=cache_dir)
    again = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train", cache_dir=cache_dir)
    assert len(calls) == 1 and first.cache_files == again.cache_files
    code_hash = hf_mmbuilder.formats.fingerprint.code_hash("llava")
    assert code_hash in first.cache_files[0]["filename"]
    # What an edit of any module the builder runs does to the key (tests/test_code_hash.py edits real sources).
    monkeypatch.setattr(hf_mmbuilder.formats.builder, "code_hash", lambda name: "0" * 64)
    edited = datasets.load_dataset("hf_mmbuilder/llava", data_files=source, split="train", cache_dir=cache_dir)
    assert len(calls) == 2 and "0" * 64 in edited.cache_files[0]["filename"]


def test_export_dataset_dict_and_iterable(shared_data, tmp_path, cache_dir):
    source = str(shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json")
    splits = hf_mmbuilder.load("llava", {"train": source, "test": source}, cache_dir=cache_dir)
    written = hf_mmbuilder.export(splits, "llava", str(tmp_path / "out"))
    assert sorted(os.path.basename(p) for p in written) == ["test.json", "train.json"]
    assert read_records(tmp_path / "out" / "test.json") == read_records(source)
    streamed = hf_mmbuilder.load("llava", source, split="train", streaming=True)
    hf_mmbuilder.export(streamed, "llava", str(tmp_path / "streamed.jsonl"))
    assert read_records(tmp_path / "streamed.jsonl") == read_records(source)


def test_non_ascii_is_written_as_utf8_not_escaped(tmp_path, cache_dir):
    source = write_json(tmp_path / "in.json", QUIRKY[1:2])
    _, out = round_trip(source, tmp_path, cache_dir)
    text = out.read_text("utf-8")
    assert "没有图片" in text and "😀" in text and "\\u" not in text


# -- bad input -------------------------------------------------------------------------------


def test_malformed_json_names_file_line_and_byte(tmp_path, cache_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "conversations": []}\n{"id": "b", "conversations": [}\n', encoding="utf-8")
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load("llava", str(path), split="train", cache_dir=cache_dir)
    message = str(raised.value)
    assert str(path) in message and "record 1" in message and "line 2" in message and "malformed JSON" in message
    truncated = tmp_path / "truncated.json"
    truncated.write_text('[{"id": "a", "conversations": []},\n {"id": "b", "conv', encoding="utf-8")
    # A file cut inside a record: that record is the malformed one (the records before it load).
    with pytest.raises(RecordError, match=r"truncated\.json: record 1 \(line 2\): malformed JSON: Input data was truncated"):
        hf_mmbuilder.load("llava", str(truncated), split="train", cache_dir=cache_dir)


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"id": "a"}, "no 'conversations'"),
        ({"id": "a", "conversations": [{"from": "human"}]}, "turn 0 has no 'value'"),
        ({"id": "a", "conversations": [{"from": "human", "value": 3}]}, "'value' must be a string, got int 3"),
        ({"id": "a", "image": "x.jpg", "conversations": [{"from": "human", "value": "no token"}]}, "names 1 file(s) but the conversation has 0 <image>"),
        ({"id": "a", "image": ["x.jpg", "y.jpg"], "conversations": [{"from": "human", "value": "<image>"}]}, "names 2 file(s)"),
        ({"id": 1.5, "conversations": []}, "'id' must be a string or an integer"),
    ],
)
def test_bad_records_raise_with_file_record_and_reason(tmp_path, cache_dir, record, reason):
    records = [QUIRKY[0], record]
    path = write_json(tmp_path / "bad.json", records)
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir)
    assert path in str(raised.value) and "record 1" in str(raised.value) and reason in str(raised.value)


def test_on_error_skip_writes_rejects_and_logs_counts(tmp_path, cache_dir, caplog):
    records = [QUIRKY[0], {"id": "bad"}, QUIRKY[1], {"id": "worse", "conversations": [{"from": "gpt", "value": None}]}]
    path = write_json(tmp_path / "mixed.json", records)
    rejects = tmp_path / "rejects.jsonl"
    with caplog.at_level(logging.WARNING, logger="hf_mmbuilder"):
        ds = hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir, on_error="skip", rejects_path=str(rejects))
    assert ds["id"] == ["7", "x"]
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [e["record"] for e in entries] == [1, 3]
    assert json.loads(entries[0]["raw"]) == records[1] and "no 'conversations'" in entries[0]["reason"]
    assert "skipped 2 malformed record(s)" in caplog.text and str(rejects) in caplog.text


def test_on_error_keep_flags_rows_and_keeps_the_source(tmp_path, cache_dir):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(QUIRKY[0]) + "\n{not json}\n", encoding="utf-8")
    ds = hf_mmbuilder.load("llava", str(path), split="train", cache_dir=cache_dir, on_error="keep")
    assert len(ds) == 2 and ds[0]["record_errors"] is None
    assert "malformed JSON" in ds[1]["record_errors"][0] and ds[1]["extra"]["__raw__"] == "{not json}"
    with pytest.raises(RecordError, match="kept with load errors"):
        hf_mmbuilder.export(ds, "llava", str(tmp_path / "out.json"))


def test_missing_media_file_is_a_bad_record_when_checking(tmp_path, cache_dir):
    testing.write_images(str(tmp_path / "a"), ["1.jpg"])
    path = write_json(tmp_path / "in.json", [QUIRKY[0], {**QUIRKY[0], "id": 8, "image": "a/missing.jpg"}])
    assert len(hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir)) == 2
    with pytest.raises(RecordError, match="record 1.*media file 'a/missing.jpg' not found"):
        hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir, check_media=True)
    kept = hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir, check_media=True, on_error="skip")
    assert kept["id"] == ["7"]


def test_export_refuses_media_paths_escaping_media_root(tmp_path, cache_dir):
    escaping = {**QUIRKY[0], "image": "../../etc/passwd"}
    path = write_json(tmp_path / "in.json", [QUIRKY[0], escaping])
    ds = hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir)
    with pytest.raises(RecordError, match="record 1.*escapes its root"):
        hf_mmbuilder.export(ds, "llava", str(tmp_path / "out.json"))
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(UnsafePathError):
        hf_mmbuilder.media.check_within_root("../x", str(tmp_path))


def test_cli_convert_to_dj_and_back(shared_data, tmp_path):
    from hf_mmbuilder.cli import main

    source = shared_data / "formats" / "llava" / "llava_onevision.json"
    dj = tmp_path / "out.dj.jsonl"
    assert main(["convert", "--from", "llava", "--to", "dj", str(source), str(dj)]) == 0
    rows = read_records(dj)
    assert rows[1]["text"].startswith("[[human]]: <__dj__image>") and rows[1]["images"] == ["azure_dc_zh_92K/000000051920.jpg"]
    assert rows[1]["extra"] == {"data_source": "azure_dc_zh_92K"}
    back = tmp_path / "back.json"
    assert main(["convert", "--from", "llava", "--to", "llava", str(source), str(back)]) == 0
    assert read_records(back) == read_records(source)
    assert main(["convert", "--from", "llava", "--to", "llava", str(tmp_path / "missing.json"), str(back)]) == 2


def test_errors_name_the_file_wide_record_number_across_shards(tmp_path, cache_dir):
    records = list(testing.llava_records(600, seed=1))
    records[450] = {"id": "broken", "conversations": "not a list"}
    path = write_json(tmp_path / "big.json", records)
    with pytest.raises(RecordError, match=r"record 450 \(line \d+\): 'conversations' must be a list"):
        hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir, shard_bytes=20_000)


def test_decode_media_gives_images_read_from_media_root(tmp_path, cache_dir):
    testing.write_images(str(tmp_path / "a"), ["1.jpg"], size=(40, 30))
    path = write_json(tmp_path / "in.json", [{**QUIRKY[0], "image": "a/1.jpg"}, QUIRKY[1]])
    ds = hf_mmbuilder.load("llava", path, split="train", cache_dir=cache_dir)
    decoded = hf_mmbuilder.decode_media(ds)
    assert decoded.features["images"].feature.__class__.__name__ == "Image"
    assert decoded[0]["images"][0].size == (40, 30) and decoded[1]["images"] == []
    assert ds[0]["images"] == ["a/1.jpg"]


@pytest.mark.parametrize("fast_path", [True, False])
def test_real_files_keep_each_records_key_order(shared_data, tmp_path, cache_dir, fast_path):
    folder = shared_data / "formats" / "llava"
    names = sorted(path.name for path in folder.iterdir())
    assert names == ["internvl_chat_llava_style.jsonl", "llava_instruct_150k_slice100.json", "llava_onevision.json", "llava_v1_5_mix665k.json"]
    reordered = 0
    for name in names:
        source = read_records(folder / name)
        ds = hf_mmbuilder.load("llava", str(folder / name), split="train", cache_dir=cache_dir, fast_path=fast_path)
        out = tmp_path / f"{fast_path}-{name}"
        hf_mmbuilder.export(ds, "llava", str(out), fast_path=fast_path)
        assert [list(record.items()) for record in read_records(out)] == [list(record.items()) for record in source]
        reordered += sum(KEY_ORDER_KEY in (extra or {}) for extra in ds["extra"])
    # "model" in the mix665k sample; "height_list"/"width_list" in the InternVL-style file.
    assert reordered == 2


def test_key_order_of_unusual_records_survives_edits(tmp_path, cache_dir):
    records = [
        {"conversations": [{"from": "human", "value": "<image>x"}, {"from": "gpt", "value": "y"}], "model": "m", "image": "a.jpg", "id": 3},
        {"meta": 1, "id": "b", "conversations": [{"from": "human", "value": "x"}]},
    ]
    ds = hf_mmbuilder.load("llava", write_json(tmp_path / "in.json", records), split="train", cache_dir=cache_dir)
    out = tmp_path / "out.json"
    hf_mmbuilder.export(ds.map(lambda row: {"text": row["text"].replace("<__dj__image>", ""), "images": []}), "llava", str(out))
    assert [list(record) for record in read_records(out)] == [["conversations", "model", "id"], ["meta", "id", "conversations"]]
