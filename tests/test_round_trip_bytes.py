"""``export(load(x)) == x`` byte for byte: every real sample file, both paths, and files written in
every style Python's ``json`` writes (issue 16 point 7, issue 15 class 10)."""

from __future__ import annotations

import json
import random

import numpy as np
import orjson
import pytest

import hf_mmbuilder
from hf_mmbuilder.formats.records import KEY_ORDER_KEY
from hf_mmbuilder.formats import serialization
from hf_mmbuilder.formats.serialization import RecordWriter, SourceStyle, detect_style, proven_style

# Every real sample file (format = its folder); test_every_real_sample_is_listed keeps this complete.
REAL_FILES = [
    "internvid/internvid_10m_flt.jsonl",
    "llava/internvl_chat_llava_style.jsonl",
    "llava/llava_instruct_150k_slice100.json",
    "llava/llava_onevision.json",
    "llava/llava_v1_5_mix665k.json",
    "mmc4/docs_shard_151_v3.jsonl",
    "mmc4/mmc4_core_ff_v3.jsonl",
    "mmc4/mmc4_core_ff_v3_shared_sentence.jsonl",
    "msrvtt/msrvtt_JSFUSION_test.csv",
    "msrvtt/msrvtt_hf_alexzigma_row.jsonl",
    "oasis/oasis_mm_inf_input.jsonl",
    "sharegpt/sharegpt_messages_llamafactory.json",
    "video_chatgpt/video_chatgpt_VideoInstruct100K.json",
    "wavcaps/clotho_test_5captions.json",
    "wavcaps/soundbible_sb_final.json",
    "wavcaps/wavcaps_audioset_sl.json",
    "wavcaps/wavcaps_bbc_sound_effects.json",
    "wavcaps/wavcaps_freesound.json",
    "youku/youku_classification_train.csv",
    "youku/youku_pretrain.csv",
    "youku/youku_retrieval_train.csv",
]


def test_every_real_sample_is_listed(shared_data):
    found = sorted(str(path.relative_to(shared_data / "formats")) for path in (shared_data / "formats").glob("*/*"))
    assert found == sorted(REAL_FILES)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "careful"])
@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_export_byte_identical(shared_data, tmp_path, cache_dir, name, fast_path):
    source = shared_data / "formats" / name
    format_name = name.split("/")[0]
    ds = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=cache_dir, fast_path=fast_path)
    out = tmp_path / f"back{source.suffix}"
    hf_mmbuilder.export(ds, format_name, str(out), fast_path=fast_path)
    assert out.read_bytes() == source.read_bytes()


def test_real_styles_detected(shared_data):
    styles = {name: detect_style(str(shared_data / "formats" / name)) for name in REAL_FILES}
    # json.dump(indent=2): ensure_ascii off where the file holds raw UTF-8, on for mix665k. No
    # real file has a float Python and orjson write differently (1e-05), so each is taken in
    # orjson's notation (python_floats False).
    assert styles["llava/llava_instruct_150k_slice100.json"] == SourceStyle("array", "  ", ",", ": ", False, "\n", True, False)
    assert styles["llava/llava_onevision.json"] == SourceStyle("array", "  ", ",", ": ", False, "\n", False, False)
    assert styles["llava/llava_v1_5_mix665k.json"] == SourceStyle("array", "  ", ",", ": ", True, "\n", False, False)
    # JSON lines from json.dumps defaults; Video-ChatGPT's one-line array; WavCaps' one-line
    # document; CSV with CRLF (Youku) and LF (MSR-VTT).
    assert styles["mmc4/docs_shard_151_v3.jsonl"] == SourceStyle("lines", None, ", ", ": ", True, "\n", True, False)
    assert styles["video_chatgpt/video_chatgpt_VideoInstruct100K.json"] == SourceStyle("array", None, ", ", ": ", True, "\n", False, False)
    assert styles["wavcaps/soundbible_sb_final.json"] == SourceStyle("document", None, ", ", ": ", True, "\n", False, False)
    assert styles["youku/youku_pretrain.csv"] == SourceStyle("csv", None, ",", ":", False, "\r\n", True, False)
    assert styles["msrvtt/msrvtt_JSFUSION_test.csv"] == SourceStyle("csv", None, ",", ":", False, "\n", True, False)
    assert all(style is not None for style in styles.values())


def test_reordered_records_stay_on_the_compiled_path(shared_data, cache_dir):
    from hf_mmbuilder.loading_scripts.llava import LlavaConfig, LlavaExporter

    reordered = fallback = 0
    for name in ("llava/llava_v1_5_mix665k.json", "llava/internvl_chat_llava_style.jsonl"):
        ds = hf_mmbuilder.load("llava", str(shared_data / "formats" / name), split="train", cache_dir=cache_dir)
        reordered += sum(KEY_ORDER_KEY in (extra or {}) for extra in ds["extra"])
        fallback += int(LlavaExporter(LlavaConfig()).encode_table(ds.with_format("arrow")[:], b"\n")[2].sum())
    assert (reordered, fallback) == (2, 0)


def _llava_records() -> list:
    """Records with every feature a style shows: non-ASCII (BMP and astral), escapes, DEL, floats
    of every notation, empty lists and objects, key orders, empty media lists."""
    turns = lambda text: [{"from": "human", "value": "<image>\n" + text}, {"from": "gpt", "value": "ok"}]  # noqa: E731
    return [
        {"id": "1", "image": "a.jpg", "conversations": turns("café 😀 \"q\" \\ \t \x7f / \u2028")},
        {"id": 2, "model": "", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
        {"id": "3", "image": [], "conversations": [{"from": "human", "value": "no image"}]},
        {"id": "4", "video": [], "image": [], "conversations": [{"from": "human", "value": "none"}]},
        {"id": "5", "conversations": [{"from": "human", "value": "text only"}]},
        {"image": ["b.jpg", "c.jpg"], "id": "6", "conversations": turns("<image> two"),
         "scores": [1e-05, 2.5e-07, 0.0001, 100.0, 1e16, 1.5e300, -0.0, 0.1, 12345678.9], "meta": {"w": [], "h": {}}},
        {"id": "7", "data_source": "写真", "conversations": turns("日本語"), "height_list": [23, 22], "width_list": [240, 240]},
    ]


STYLES = {
    "indent2": dict(indent=2),
    "indent4-utf8": dict(indent=4, ensure_ascii=False),
    "tab": dict(indent="\t"),
    "indent2-spaced-items": dict(indent=2, separators=(", ", ": ")),
    "one-line": dict(),
    "one-line-utf8": dict(ensure_ascii=False),
    "compact": dict(separators=(",", ":")),
    "compact-utf8": dict(separators=(",", ":"), ensure_ascii=False),
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("final_newline", [True, False], ids=["eol", "no-eol"])
@pytest.mark.parametrize("style", list(STYLES))
def test_generated_json_arrays_in_every_style(tmp_path, cache_dir, style, final_newline, newline):
    # A JSON string holds no raw line break: every "\n" of json.dumps' text is a line break of
    # the layout, written as the file's own (CRLF from a Windows editor or text-mode write).
    text = (json.dumps(_llava_records(), **STYLES[style]) + ("\n" if final_newline else "")).replace("\n", newline)
    source = tmp_path / "in.json"
    source.write_bytes(text.encode())
    for fast_path in (True, False):
        ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, fast_path=fast_path)
        out = tmp_path / f"out-{fast_path}.json"
        hf_mmbuilder.export(ds, "llava", str(out), fast_path=fast_path)
        assert out.read_bytes() == text.encode()


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("style", [name for name in STYLES if "indent" not in name and name != "tab"])
def test_generated_json_lines_in_every_style(tmp_path, cache_dir, style, newline):
    text = newline.join(json.dumps(record, **STYLES[style]) for record in _llava_records()) + newline
    source = tmp_path / "in.jsonl"
    source.write_bytes(text.encode())
    for fast_path in (True, False):
        ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, fast_path=fast_path)
        out = tmp_path / f"out-{fast_path}.jsonl"
        hf_mmbuilder.export(ds, "llava", str(out), fast_path=fast_path)
        assert out.read_bytes() == text.encode()


def test_empty_media_lists_are_not_absent_keys(tmp_path, cache_dir):
    records = [
        {"id": "a", "image": [], "conversations": [{"from": "human", "value": "x"}]},
        {"id": "b", "conversations": [{"from": "human", "value": "x"}]},
        {"id": "c", "video": [], "conversations": [{"from": "human", "value": "x"}]},
    ]
    chats = [
        {"messages": [{"role": "user", "content": "x"}], "images": []},
        {"messages": [{"role": "user", "content": "x"}], "images": [], "videos": [], "audios": []},
        {"messages": [{"role": "user", "content": "x"}]},
    ]
    for format_name, rows in (("llava", records), ("sharegpt", chats)):
        source = tmp_path / f"{format_name}.json"
        source.write_text(json.dumps(rows, indent=2))
        for fast_path in (True, False):
            ds = hf_mmbuilder.load(format_name, str(source), split="train", cache_dir=cache_dir, fast_path=fast_path)
            out = tmp_path / f"{format_name}-{fast_path}.json"
            hf_mmbuilder.export(ds, format_name, str(out), fast_path=fast_path)
            assert orjson.loads(out.read_bytes()) == rows
            assert out.read_bytes() == source.read_bytes()


def test_style_survives_dataset_operations(tmp_path, cache_dir):
    records = _llava_records()
    source = tmp_path / "in.json"
    source.write_text(json.dumps(records, indent=2))
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    edited = ds.filter(lambda row: row["id"] != "5").map(lambda row: {"text": row["text"].replace("ok", "OK")}).shuffle(seed=0)
    edited = edited.select(np.argsort(edited["id"], kind="stable"))
    out = tmp_path / "out.json"
    hf_mmbuilder.export(edited, "llava", str(out))
    expected = [record for record in records if record["id"] != "5"]
    expected.sort(key=lambda record: str(record["id"]))
    for record in expected:
        for turn in record["conversations"]:
            turn["value"] = turn["value"].replace("ok", "OK")
    assert out.read_text() == json.dumps(expected, indent=2)


def test_a_file_in_no_single_style_is_exported_in_the_default_layout(tmp_path, cache_dir):
    # Two records written with different separators: no style can write both back, so none is
    # recorded and export writes its own compact layout; records, values and key order are kept.
    records = _llava_records()[:2]
    source = tmp_path / "mixed.jsonl"
    source.write_text(json.dumps(records[0]) + "\n" + json.dumps(records[1], separators=(",", ":")) + "\n")
    assert detect_style(str(source)) is None
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    assert [proven_style(claim) for claim in ds["source_style"]] == [None, None]
    out = tmp_path / "out.jsonl"
    hf_mmbuilder.export(ds, "llava", str(out))
    assert out.read_bytes() == b"".join(orjson.dumps(record) + b"\n" for record in records)


def test_rows_of_files_in_two_styles_get_the_default_layout(tmp_path, cache_dir):
    import datasets

    records = _llava_records()
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(records[:3], indent=2))
    second.write_text(json.dumps(records[3:], indent=4))
    both = datasets.concatenate_datasets([hf_mmbuilder.load("llava", str(path), split="train", cache_dir=cache_dir) for path in (first, second)])
    out = tmp_path / "out.json"
    hf_mmbuilder.export(both, "llava", str(out))
    assert out.read_bytes() == b"[\n" + b",\n".join(orjson.dumps(record) for record in records) + b"\n]\n"
    hf_mmbuilder.export(both.select(range(3)), "llava", str(out))
    assert out.read_bytes() == first.read_bytes()


def test_rows_of_two_files_in_one_style_keep_it(tmp_path, cache_dir):
    import datasets

    # Two claims (two files) that prove the same style: both files hold floats in Python's notation.
    records = _llava_records()
    records = [*records[:4], records[5], {**records[5], "id": "8"}, records[4], records[6]]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(records[:5], indent=2))
    second.write_text(json.dumps(records[5:], indent=2))
    both = datasets.concatenate_datasets([hf_mmbuilder.load("llava", str(path), split="train", cache_dir=cache_dir) for path in (first, second)])
    assert len(set(both["source_style"])) == 2
    out = tmp_path / "out.json"
    hf_mmbuilder.export(both, "llava", str(out))
    assert out.read_bytes() == json.dumps(records, indent=2).encode()


def test_the_style_is_proved_at_export_not_at_load(tmp_path, cache_dir, monkeypatch):
    # Loading records a claim on the file (one stat); the whole-file proof runs once, when an
    # exporter needs the style.
    records = _llava_records()
    source = tmp_path / "indented.json"
    source.write_text(json.dumps(records, indent=2))
    proofs = []
    detect = serialization.detect_style
    monkeypatch.setattr(serialization, "detect_style", lambda path: proofs.append(path) or detect(path))
    serialization._cached_style.cache_clear()
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    assert proofs == []
    claim = json.loads(ds[0]["source_style"])
    assert claim == {"file": str(source), "size": source.stat().st_size, "mtime_ns": source.stat().st_mtime_ns}
    for _ in range(2):
        hf_mmbuilder.export(ds, "llava", str(tmp_path / "out.json"))
        assert (tmp_path / "out.json").read_bytes() == source.read_bytes()
    assert proofs == [str(source)]


@pytest.mark.parametrize("change", ["rewritten", "removed"])
def test_a_file_changed_since_load_gives_the_default_layout(tmp_path, cache_dir, change):
    # The claim is on the file as it was read: a file edited or gone since proves nothing, and the
    # rows (which are the loaded ones) are written in the exporter's layout, none lost.
    records = _llava_records()
    source = tmp_path / "indented.json"
    source.write_text(json.dumps(records, indent=2))
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    if change == "rewritten":
        source.write_text(json.dumps(records[:1], indent=4))
    else:
        source.unlink()
    out = tmp_path / "out.json"
    hf_mmbuilder.export(ds, "llava", str(out))
    assert out.read_bytes() == b"[\n" + b",\n".join(orjson.dumps(record) for record in records) + b"\n]\n"


def test_dj_export_round_trips_byte_identical(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json"
    ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir)
    dj_file = tmp_path / "dj.jsonl"
    hf_mmbuilder.export(ds, "dj", str(dj_file))
    for fast_path in (True, False):
        back = hf_mmbuilder.load("dj", str(dj_file), split="train", cache_dir=cache_dir, fast_path=fast_path)
        out = tmp_path / f"again-{fast_path}.jsonl"
        hf_mmbuilder.export(back, "dj", str(out), fast_path=fast_path)
        assert out.read_bytes() == dj_file.read_bytes()
        hf_mmbuilder.export(back, "llava", str(tmp_path / "llava.json"), fast_path=fast_path)
        # Through the DJ file (JSON lines) the rows carry no style of a .json file: the LLaVA
        # export takes the default layout, with the records and their key order equal.
        records = orjson.loads(source.read_bytes())
        assert (tmp_path / "llava.json").read_bytes() == b"[\n" + b",\n".join(map(orjson.dumps, records)) + b"\n]\n"


def test_floats_are_written_as_python_writes_them(tmp_path):
    import io

    rng = random.Random(0)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-320, 308) for _ in range(20_000)]
    values += [0.0, -0.0, 1e-05, 1e-4, 9.999999999999999e15, 1e16, 5e-324, 1.7976931348623157e308, 123.0, 0.5]
    for options in ({}, {"indent": 2}):
        expected = json.dumps(values, **options).encode()
        style = SourceStyle("array", "  " if options else None, "," if options else ", ", ": ", True, "\n", False, True)
        handle = io.BytesIO()
        writer = RecordWriter(handle, style)
        for value in values:
            writer.write(orjson.dumps(value))
        writer.close()
        assert handle.getvalue() == expected


def test_a_file_written_by_orjson_keeps_orjsons_float_notation(tmp_path, cache_dir):
    records = _llava_records()
    text = b"".join(orjson.dumps(record) + b"\n" for record in records)
    assert b"0.00001" in text and b"2.5e-7" in text
    source = tmp_path / "orjson.jsonl"
    source.write_bytes(text)
    assert detect_style(str(source)) == SourceStyle("lines", None, ",", ":", False, "\n", True, False)
    for fast_path in (True, False):
        ds = hf_mmbuilder.load("llava", str(source), split="train", cache_dir=cache_dir, fast_path=fast_path)
        hf_mmbuilder.export(ds, "llava", str(tmp_path / "out.jsonl"), fast_path=fast_path)
        assert (tmp_path / "out.jsonl").read_bytes() == text
