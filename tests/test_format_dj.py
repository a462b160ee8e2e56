"""Data-Juicer's own format: its outputs load and write back unchanged (JSON lines and Parquet with
``image_bytes``/``__dj__meta__``/``__dj__stats__``), other formats go through DJ and back with their
round-trip columns promoted, and bad input is reported."""

import functools
import json
import os

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
    assert promoted[0]["roles"] == ["human", "gpt"]
    media_root = str(shared_data / "formats" / "llava")
    recorded = {"media_root": os.path.relpath(media_root, tmp_path), "relative_paths": {"images": promoted[0]["images"]}}
    assert promoted[0]["extra"] == {"hf_mmbuilder_media_paths": recorded}
    assert promoted[0]["media_root"] == media_root


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


LLAVA_RECORDS = [
    {"id": "a", "image": "./imgs/../imgs/2.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]},
    {"id": 7, "image": "imgs/1.png", "model": "", "conversations": [{"from": "human", "value": "Describe <image>"}, {"from": "gpt", "value": "A dog."}]},
    {"id": "t", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
]


def _as_data_juicer_writes_it(source, target):
    """What ``dj-process`` does to our DJ export (DESIGN.md section 10): relative media paths joined
    to the input file's folder (``rel2abs``, not normalised), stats and hash added, other keys kept."""
    folder = str(source.parent)
    rows = read_records(source)
    for row in rows:
        row["images"] = [path if path.startswith("/") else f"{folder}/{path}" for path in row["images"]]
        row["__dj__stats__"] = {"text_len": len(row["text"])}
        row["__dj__hash"] = "d41d8cd9"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return target


@pytest.mark.parametrize("fmt, fast_path", [("llava", True), ("llava", False), ("mmc4", True)])
def test_media_paths_made_absolute_by_data_juicer_come_back_as_written(shared_data, tmp_path, cache_dir, fmt, fast_path):
    if fmt == "llava":
        source = tmp_path / "src" / "llava.json"
        source.parent.mkdir()
        source.write_text(json.dumps(LLAVA_RECORDS, ensure_ascii=False, indent=2), encoding="utf-8")
    else:
        source = shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3.jsonl"
    ds = hf_mmbuilder.load(fmt, str(source), split="train", cache_dir=cache_dir)
    exported = tmp_path / "dj_in" / "data.dj.jsonl"
    hf_mmbuilder.export(ds, "dj", str(exported))
    recorded = {"media_root": os.path.relpath(source.parent, exported.parent), "relative_paths": {"images": ds[0]["images"]}}
    assert read_records(exported)[0]["hf_mmbuilder_media_paths"] == recorded
    processed = _as_data_juicer_writes_it(exported, tmp_path / "dj_out" / "result.jsonl")
    assert all(path.startswith(str(exported.parent) + "/") for row in read_records(processed) for path in row["images"])
    loaded = load(processed, cache_dir)
    assert {row["media_root"] for row in loaded if row["images"]} == {str(source.parent)}
    back = tmp_path / ("back" + source.suffix)
    hf_mmbuilder.export(loaded, fmt, str(back), fast_path=fast_path)
    assert read_records(back) == read_records(source)
    kept = tmp_path / ("kept" + source.suffix)
    hf_mmbuilder.export(loaded, fmt, str(kept), keep_dj_columns=True, fast_path=fast_path)
    dj_keys = ("__dj__stats__", "__dj__hash", "hf_mmbuilder_media_paths")
    for record, original in zip(read_records(kept), read_records(source), strict=True):
        assert record["__dj__hash"] == "d41d8cd9" and "__dj__stats__" in record
        assert {key: value for key, value in record.items() if key not in dj_keys} == original
    again = tmp_path / "dj_again" / "deeper" / "again.dj.jsonl"
    hf_mmbuilder.export(loaded, "dj", str(again))
    assert [row["__dj__hash"] for row in read_records(again)] == ["d41d8cd9"] * len(loaded)
    media_roots = [row.get("hf_mmbuilder_media_paths", {}).get("media_root") for row in read_records(again)]
    assert {root for root in media_roots if root} == {os.path.relpath(source.parent, again.parent)}


def test_a_path_escaping_media_root_names_it_and_the_fix(tmp_path, cache_dir):
    source = tmp_path / "processed.dj.jsonl"
    source.write_text(json.dumps({"text": "<__dj__image> a cat", "images": ["/elsewhere/gqa/images/7.jpg"], "id": 1}) + "\n", encoding="utf-8")
    ds = load(source, cache_dir)
    with pytest.raises(RecordError) as caught:
        hf_mmbuilder.export(ds, "dj", str(tmp_path / "out.jsonl"))
    assert str(caught.value) == (
        f"{tmp_path / 'out.jsonl'}: record 0: media path '/elsewhere/gqa/images/7.jpg' escapes its root '{tmp_path}': export checks "
        f"media paths against the row's media_root ('{tmp_path}'); load with media_root=<the folder the paths are relative to>, "
        "or pass allowed_media_roots=(<folder>,) to export to allow another folder"
    )
