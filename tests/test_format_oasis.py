"""Oasis synthesis records (inputs and outputs): lossless round trip, LLaVA-identical DJ text for
output records, edits, streaming, num_proc and bad input."""

import functools
import json

import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError

from format_helpers import export_records, load as load_format, read_records, write_jsonl

load = functools.partial(load_format, "oasis")
export = functools.partial(export_records, "oasis")


def test_real_input_records_round_trip(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "oasis" / "oasis_mm_inf_input.jsonl"
    ds = load(source, cache_dir)
    original = read_records(source)
    assert export(ds, tmp_path) == original
    assert ds[0]["images"] == ["./images/100624450.jpeg"]
    assert ds[0]["text"].startswith("[[human]]: <__dj__image>\nWhere is this scene taking place?\n[[gpt]]: This scene")
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_generated_inputs_and_outputs_round_trip_with_zero_differences(tmp_path, cache_dir):
    records = list(testing.oasis_records(10_000, seed=6))
    source = testing.write_jsonl(str(tmp_path / "in.jsonl"), records)
    ds = load(source, cache_dir, num_proc=2, shard_bytes=1 << 20)
    out = export(ds, tmp_path)
    assert len(out) == len(records) and sum(a != b for a, b in zip(out, records)) == 0
    assert any(isinstance(r.get("id"), int) for r in records)


def test_output_records_get_the_llava_text(tmp_path, cache_dir):
    records = [r for r in testing.oasis_records(20, seed=1) if "conversations" in r]
    source = write_jsonl(tmp_path / "out.jsonl", records)
    oasis = load(source, cache_dir)
    llava = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir)
    assert oasis["text"] == llava["text"] and oasis["id"] == llava["id"]
    assert oasis[0]["extra"] == {"data_source": records[0]["data_source"]}


def test_edits_survive_export(shared_data, tmp_path, cache_dir):
    ds = load(shared_data / "formats" / "oasis" / "oasis_mm_inf_input.jsonl", cache_dir)
    out = export(ds.map(lambda row: {"text": row["text"].replace("Upjohn", "[REDACTED]")}), tmp_path)
    assert out[1]["instruction"] == "Which segment brought the most revenue [REDACTED] or Biopharma?"
    assert "Upjohn" not in out[1]["response"]


def test_streaming_matches_the_built_dataset(shared_data, cache_dir):
    source = str(shared_data / "formats" / "oasis" / "oasis_mm_inf_input.jsonl")
    streamed = list(hf_mmbuilder.load("oasis", source, split="train", streaming=True))
    assert [row["text"] for row in streamed] == load(source, cache_dir)["text"]


GOOD = {"instruction": "Q?", "response": "A.", "image": "./images/1.png"}


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{bad", "malformed JSON"),
        (json.dumps({"instruction": "Q?", "image": "x.png"}), "record has no 'response'"),
        (json.dumps({"instruction": 3, "response": "A"}), "'instruction' must be a string"),
        (json.dumps({"id": 1, "image": "x.png", "conversations": [{"from": "human", "value": "no token"}]}), "1 file.*0 <image> token"),
        (json.dumps({"image": "x.png"}), "record has no 'conversations'"),
    ],
)
def test_bad_records_raise_with_file_record_and_reason(tmp_path, cache_dir, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=f"bad.jsonl: record 1 \\(line 2\\): .*{reason}"):
        load(path, cache_dir)


def test_on_error_skip_and_keep_and_missing_media(tmp_path, cache_dir):
    from hf_mmbuilder import testing

    testing.write_images(str(tmp_path / "images"), ["1.png"])
    path = write_jsonl(tmp_path / "in.jsonl", [GOOD, {"instruction": 1, "response": "x"}, {**GOOD, "image": "./images/gone.png"}])
    rejects = tmp_path / "rejects.jsonl"
    skipped = load(path, cache_dir, on_error="skip", rejects_path=str(rejects), check_media=True)
    assert len(skipped) == 1
    assert [entry["record"] for entry in read_records(rejects)] == [1, 2]
    kept = load(path, cache_dir, on_error="keep")
    assert len(kept) == 3 and "'instruction' must be a string" in kept[1]["record_errors"][0]


def test_key_order_of_inputs_and_outputs_is_kept(tmp_path, cache_dir):
    records = [
        {"image": "1.jpg", "data_source": "oasis", "instruction": "Where?", "response": "Here."},
        {"instruction": "Where?", "response": "Here.", "image": "1.jpg"},
        {"data_source": "oasis", "id": "o1", "image": "1.jpg",
         "conversations": [{"from": "human", "value": "<image>\nWhere?"}, {"from": "gpt", "value": "Here."}]},
    ]
    ds = load(write_jsonl(tmp_path / "in.jsonl", records), cache_dir)
    assert [list(record.items()) for record in export(ds, tmp_path)] == [list(record.items()) for record in records]
