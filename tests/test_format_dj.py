"""Data-Juicer's own format: its outputs load and write back unchanged (JSON lines and Parquet with
``image_bytes``/``__dj__meta__``/``__dj__stats__``), other formats go through DJ and back with their
round-trip columns promoted, and bad input is reported."""

import functools
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hf_mmbuilder
from hf_mmbuilder.cli import main
from hf_mmbuilder.errors import RecordError
from hf_mmbuilder.loading_scripts.dj import detect_format

from format_helpers import load as load_format, read_records

load = functools.partial(load_format, "dj")


def test_every_data_juicer_output_round_trips(shared_data, tmp_path, cache_dir):
    files = sorted((shared_data / "dj_golden").glob("*.dj.jsonl"))
    assert len(files) >= 10
    for number, source in enumerate(files):
        ds = load(source, cache_dir)
        out = tmp_path / f"{number}.jsonl"
        hf_mmbuilder.export(ds, "dj", str(out))
        assert read_records(out) == read_records(source), source.name
    wavcaps = load(shared_data / "dj_golden" / "soundbible_sb_final.dj.jsonl", cache_dir)
    assert "__dj__meta__" in wavcaps[0]["extra"] and wavcaps[0]["audios"]


DJ_ROWS = [
    {"id": 0, "text": "<__dj__image> a cat <|__dj__eoc|>", "images": ["cat.jpg"], "image_bytes": [b"\x89PNG\x00\x01"],
     "__dj__meta__": {"source": "web", "lang": "en"}, "__dj__stats__": {"text_len": 7, "image_width": [64]}},
    {"id": 1, "text": "plain 文本 <|__dj__eoc|>", "images": [], "image_bytes": [],
     "__dj__meta__": {"source": "book", "lang": "zh"}, "__dj__stats__": {"text_len": 9, "image_width": []}},
]


def test_parquet_with_image_bytes_meta_and_stats_round_trips(tmp_path, cache_dir):
    source = tmp_path / "dj_output.parquet"
    pq.write_table(pa.Table.from_pylist(DJ_ROWS), source)
    ds = load(source, cache_dir)
    assert ds[0]["image_bytes"] == [b"\x89PNG\x00\x01"] and ds[0]["images"] == ["cat.jpg"]
    assert ds[1]["extra"]["__dj__meta__"] == {"source": "book", "lang": "zh"}
    out = tmp_path / "back.parquet"
    hf_mmbuilder.export(ds, "dj", str(out))
    assert pq.read_table(out).to_pylist() == DJ_ROWS
    with pytest.raises(RecordError, match="record 0: .*(bytes|JSON serializable)"):
        hf_mmbuilder.export(ds, "dj", str(tmp_path / "back.jsonl"))


def test_dj_json_lines_with_stats_round_trip_and_num_proc_streaming(tmp_path, cache_dir):
    rows = [{key: value for key, value in row.items() if key != "image_bytes"} for row in DJ_ROWS] * 50
    source = tmp_path / "processed.jsonl"
    source.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    ds = load([str(source), str(source)], cache_dir, num_proc=2)
    assert len(ds) == 200
    out = tmp_path / "out.jsonl"
    hf_mmbuilder.export(ds, "dj", str(out))
    assert read_records(out) == rows * 2
    streamed = list(hf_mmbuilder.load("dj", str(source), split="train", streaming=True))
    assert [row["text"] for row in streamed] == [row["text"] for row in rows]


@pytest.mark.parametrize("name", ["llava_onevision.json", "llava_v1_5_mix665k.json", "internvl_chat_llava_style.jsonl", "llava_instruct_150k_slice100.json"])
def test_cli_llava_to_dj_to_llava_promotes_the_round_trip_columns(shared_data, tmp_path, name):
    source = shared_data / "formats" / "llava" / name
    dj = tmp_path / "mid.dj.jsonl"
    back = tmp_path / ("back" + source.suffix)
    assert main(["convert", "--from", "llava", "--to", "dj", str(source), str(dj)]) == 0
    assert detect_format(read_records(dj)[0]) == "llava"
    assert main(["convert", "--from", "dj", "--to", "llava", str(dj), str(back)]) == 0
    assert read_records(back) == read_records(source)
    again = tmp_path / "again.dj.jsonl"
    assert main(["convert", "--from", "dj", "--to", "dj", str(dj), str(again)]) == 0
    assert read_records(again) == read_records(dj)


@pytest.mark.parametrize(
    "fmt, relative",
    [("mmc4", "mmc4/docs_shard_151_v3.jsonl"), ("sharegpt", "sharegpt/sharegpt_messages_llamafactory.json"), ("oasis", "oasis/oasis_mm_inf_input.jsonl")],
)
def test_my_formats_go_through_dj_and_back(shared_data, tmp_path, cache_dir, fmt, relative):
    source = shared_data / "formats" / relative
    ds = hf_mmbuilder.load(fmt, str(source), split="train", cache_dir=cache_dir)
    dj = tmp_path / "mid.dj.jsonl"
    hf_mmbuilder.export(ds, "dj", str(dj))
    back = tmp_path / ("back" + source.suffix)
    hf_mmbuilder.export(load(dj, cache_dir), fmt, str(back))
    assert read_records(back) == read_records(source)


def test_mmc4_dj_export_keeps_the_fields_data_juicer_keeps(shared_data, tmp_path, cache_dir):
    golden = read_records(shared_data / "dj_golden" / "docs_shard_151_v3.dj.jsonl")
    ds = hf_mmbuilder.load("mmc4", str(shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl"), split="train", cache_dir=cache_dir)
    out = tmp_path / "docs.dj.jsonl"
    hf_mmbuilder.export(ds, "dj", str(out))
    for ours, theirs in zip(read_records(out), golden, strict=True):
        assert {key: ours[key] for key in theirs} == theirs


def test_promotion_can_be_turned_off(shared_data, tmp_path, cache_dir):
    dj = tmp_path / "mid.dj.jsonl"
    assert main(["convert", "--from", "llava", "--to", "dj", str(shared_data / "formats" / "llava" / "llava_onevision.json"), str(dj)]) == 0
    plain = load(dj, cache_dir, promote_format=None)
    assert "roles" not in plain.column_names and "roles" in plain[0]["extra"]
    promoted = load(dj, cache_dir)
    assert promoted[0]["roles"] == ["human", "gpt"] and promoted[0]["extra"] is None


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"text": "a"', "malformed JSON"),
        (json.dumps({"text": 3}), "'text' must be a string"),
        (json.dumps({"text": "a", "images": "x.jpg"}), "'images' must be a list of path strings"),
        (json.dumps([1, 2]), "a DJ record must be a JSON object"),
    ],
)
def test_bad_records_raise_skip_or_keep(tmp_path, cache_dir, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "ok"}) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=f"bad.jsonl: record 1 \\(line 2\\): .*{reason}"):
        load(path, cache_dir)
    rejects = tmp_path / "rejects.jsonl"
    assert len(load(path, cache_dir, on_error="skip", rejects_path=str(rejects))) == 1
    assert reason.split("'")[0] in rejects.read_text()
    kept = load(path, cache_dir, on_error="keep")
    assert kept[1]["record_errors"] and kept[0]["record_errors"] is None
