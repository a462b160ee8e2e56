"""The compiled DJ parser (``kernels/dj_parse.py``) gives exactly the careful path's table: on every
real Data-Juicer output, on DJ exports of every real sample (promoted columns), and on generated
edge cases written byte by byte (escapes, numbers, key order, nulls, repeated keys, bad bytes...).
Its canonical JSON writer (``json_scan.canonical_value``) is checked against orjson itself."""

import json
import random

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hf_mmbuilder
from hf_mmbuilder.kernels import dj_parse, json_scan

FORMAT_SAMPLES = [
    ("llava", "llava/llava_v1_5_mix665k.json"),
    ("llava", "llava/internvl_chat_llava_style.jsonl"),
    ("sharegpt", "sharegpt/sharegpt_messages_llamafactory.json"),
    ("oasis", "oasis/oasis_mm_inf_input.jsonl"),
    ("mmc4", "mmc4/docs_shard_151_v3.jsonl"),
    ("internvid", "internvid/internvid_10m_flt.jsonl"),
    ("video_chatgpt", "video_chatgpt/video_chatgpt_VideoInstruct100K.json"),
    ("wavcaps", "wavcaps/soundbible_sb_final.json"),
    ("msrvtt", "msrvtt/msrvtt_hf_alexzigma_row.jsonl"),
]


def both_paths(path, tmp_path, **options):
    """The table of ``path`` loaded as DJ with the compiled parser and without it."""
    tables = []
    for name, fast in (("fast", True), ("careful", False)):
        ds = hf_mmbuilder.load("dj", str(path), split="train", cache_dir=str(tmp_path / name), fast_path=fast, **options)
        tables.append(ds.data.table)
    return tables


def assert_same(fast, careful):
    assert fast.schema == careful.schema
    for name in careful.column_names:
        assert fast.column(name).to_pylist() == careful.column(name).to_pylist(), name
    assert fast.equals(careful)


def statuses(lines: list, promoted=()) -> list:
    """The kernel's status per record (no promoted columns unless given as (name, kind) pairs)."""
    buf = np.frombuffer(b"".join(lines), np.uint8)
    lengths = np.array([len(line) for line in lines], np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    n, size = len(lines), len(buf)
    names = b"".join(name.encode() for name, _ in promoted)
    name_offsets = np.cumsum([0] + [len(name) for name, _ in promoted]).astype(np.int64)
    m = len(promoted)
    status = np.empty(n, np.int8)
    dj_parse.parse_dj(
        buf, starts, ends, np.frombuffer(names, np.uint8), name_offsets, np.array([kind for _, kind in promoted], np.int64),
        np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.uint8),
        np.empty((3, size), np.uint8), np.empty((3, size + 2), np.int32), np.empty((3, n + 1), np.int32),
        np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.uint8),
        np.empty(64 * n, np.uint8), np.empty(n + 1, np.int32), np.empty(2 * size + 24 * n, np.uint8), np.empty(n + 1, np.int32),
        np.empty(size + 2, np.uint8), np.empty((n, m), np.int64), np.empty((n, m), np.int64),
        np.empty(size + 256 * n, np.uint8), np.empty(n + 1, np.int32), np.empty(size, np.uint8), np.empty(n + 1, np.int32),
        np.empty(n, np.uint8), status,
    )
    return status.tolist()


def test_every_real_data_juicer_output_loads_the_same_and_on_the_compiled_path(shared_data, tmp_path):
    files = sorted((shared_data / "dj_golden").glob("*.dj.jsonl"))
    assert len(files) == 11
    for number, source in enumerate(files):
        fast, careful = both_paths(source, tmp_path / str(number))
        assert_same(fast, careful)
        lines = [line for line in source.read_bytes().splitlines() if line.strip()]
        assert fast.num_rows == len(lines)
        # MMC4's similarities have 16-17 significant digits, which orjson may spell otherwise:
        # those documents go the careful way; every other real output is read by the kernel.
        expected = dj_parse.FALLBACK if source.name.startswith("docs_shard") else dj_parse.FAST
        assert statuses(lines) == [expected] * len(lines), source.name


@pytest.mark.parametrize("fmt, sample", FORMAT_SAMPLES, ids=[sample for _, sample in FORMAT_SAMPLES])
def test_dj_exports_of_real_samples_load_the_same_with_promoted_columns(shared_data, tmp_path, fmt, sample):
    ds = hf_mmbuilder.load(fmt, str(shared_data / "formats" / sample), split="train", cache_dir=str(tmp_path / "source"))
    middle = tmp_path / "middle.dj.jsonl"
    hf_mmbuilder.export(ds, "dj", str(middle))
    fast, careful = both_paths(middle, tmp_path)
    assert_same(fast, careful)
    assert fast.column("promoted").null_count == 0 and fast.num_rows == len(ds)


PROMOTED_EDGES = [
    # Our LLaVA export read back: nested extra as an object, null, a scalar, absent; key order.
    {"text": "a", "images": [], "id": "1", "id_is_int": False, "roles": ["human"], "media_layout": "", "turn_extras": None, "extra": {"model": ""}},
    {"text": "b", "id": 2, "id_is_int": True, "roles": [], "media_layout": "", "turn_extras": None, "extra": None, "z": 1},
    {"extra": 5, "text": "c", "id_is_int": False, "roles": ["a"], "media_layout": "image", "turn_extras": [{"k": 1.5}], "q": [1, {"r": None}]},
    {"text": "d", "id_is_int": False, "roles": ["a"], "media_layout": "", "turn_extras": None},
    # A promoted key that does not fit its column (stays in extra), some promoted keys missing.
    {"text": "e", "id_is_int": "no", "roles": ["a"], "media_layout": "", "turn_extras": None},
    {"text": "f", "roles": ["a"]},
    # The nested extra repeats a top-level key: the nested value wins.
    {"text": "g", "id_is_int": False, "roles": [], "media_layout": "", "turn_extras": None, "extra": {"w": 1, "model": "m"}, "w": 0},
    {"text": "h", "id_is_int": False, "roles": [], "media_layout": "", "turn_extras": None, "extra": {}},
]


def test_promoted_edge_cases_load_the_same(tmp_path):
    source = tmp_path / "promoted.jsonl"
    source.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in PROMOTED_EDGES))
    fast, careful = both_paths(source, tmp_path)
    assert_same(fast, careful)
    assert json.loads(fast.column("promoted")[0].as_py()) == {"columns": ["id_is_int", "roles", "media_layout", "turn_extras"], "top_level": ["extra"]}
    assert fast.column("extra")[6].as_py() == '{"w":1,"model":"m"}'


# Records as raw bytes: what a JSON writer may produce that orjson would write otherwise, and
# records the careful path rejects (kept with on_error="keep").
RAW_EDGES = [
    b'{"text": "plain", "images": ["a.jpg"], "__dj__stats__": {"text_len": 5, "ratio": 0.25, "flag": true}}',
    b'{"text":"esc \\u00e9 \\/ \\" \\\\ \\n \\t \\u0001 \\b \\f \\r \\ud83d\\ude00","images":["\\u00e9.jpg"],"id":"\\u0041"}',
    b'{"text": "", "images": [], "audios": [], "videos": [], "id": null}',
    b'{"meta": {"a": [1, -2, 3.5, 1e5, 1.50, 0.00001, 12345678901234567890, -0, 0.1]}, "text": "numbers before text"}',
    b'{"text": null, "images": null, "id": {"nested": [true, false, null]}}',
    b'{"text": "<__dj__image> tokens <|__dj__eoc|>", "images": ["x.png"], "__dj__meta__": {"\\u00fcber": "\\u2028"}}',
    b'{}',
    b'{"text": "dup", "text": "twice"}',
    b'{"text": "dup inside", "m": {"a": 1, "a": 2}}',
    b'{"text": "bytes", "image_bytes": ["AAAA"]}',
    b'{"text": 5}',
    b'{"text": "x", "images": "not a list"}',
    b'{"text": "x", "images": [1]}',
    b'[1, 2]',
    b'{"text": "bad utf8 \xff\xfe"}',
    b'{"text": "lone \\ud800 surrogate"}',
    b'{"text": "deep", "d": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"text": "not json", "x": NaN}',
    b'{"text": "key order", "__key_order__": ["x"], "x": 1}',
    b'{"text": "trailing"} x',
    b'{"a":1,"text":"other key first","b":{"c":[]}}',
    # Our DJ export's media key: paths as written (restored as they are) and paths Data-Juicer
    # made absolute (restored by the careful path), a root that is absolute, no root.
    b'{"text":"<__dj__image>","images":["i/1.jpg"],"hf_mmbuilder_media_paths":{"media_root":"../m","relative_paths":{"images":["i/1.jpg"]}}}',
    b'{"text":"<__dj__image>","images":["/in/i/1.jpg"],"hf_mmbuilder_media_paths":{"media_root":"../m","relative_paths":{"images":["i/1.jpg"]}}}',
    b'{"text":"<__dj__image>","images":["i/1.jpg"],"hf_mmbuilder_media_paths":{"media_root":"/abs/root","relative_paths":{"images":["i/1.jpg"]}}}',
    b'{"text":"<__dj__image>","images":["i/1.jpg"],"hf_mmbuilder_media_paths":{"relative_paths":{"images":[]}}}',
    b'{"text":"","hf_mmbuilder_media_paths":7}',
]


# The records above the careful path refuses (wrong types, bad JSON, bad bytes, too deep).
REFUSED = [9, 10, 11, 12, 13, 14, 15, 16, 17, 19]


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_raw_edge_cases_load_the_same(tmp_path, layout):
    source = tmp_path / ("edges.jsonl" if layout == "lines" else "edges.json")
    records = RAW_EDGES if layout == "lines" else [record for record in RAW_EDGES if b"trailing" not in record]
    source.write_bytes(b"\n".join(records) + b"\n" if layout == "lines" else b"[\n" + b",\n".join(records) + b"\n]\n")
    fast, careful = both_paths(source, tmp_path, on_error="keep", promote_format=None)
    assert_same(fast, careful)
    errors = fast.column("record_errors").to_pylist()
    assert fast.num_rows == len(records)
    # Each record the careful path refuses is kept with its reason, whichever path read it.
    refused = [k for k, reason in enumerate(errors) if reason]
    assert [records[k] for k in refused] == [RAW_EDGES[k] for k in REFUSED if RAW_EDGES[k] in records]


def test_the_compiled_path_takes_common_records_and_leaves_unusual_ones():
    common = [orjson.dumps({"text": f"r{k} \u00e9", "images": [f"{k}.jpg"], "id": k, "__dj__stats__": {"len": k, "r": 0.5}}) for k in range(50)]
    assert statuses(common) == [dj_parse.FAST] * 50
    unusual = [b'{"text":"a","text":"b"}', b'{"x":1e5}', b'{"x":0.30000000000000004}', b'{"image_bytes":[]}', b'{"text":"\\ud800"}']
    assert statuses(unusual) == [dj_parse.FALLBACK] * 5
    promoted = [("roles", dj_parse.KIND_STRING_LIST), ("style", dj_parse.KIND_STRING)]
    lines = [b'{"text":"","roles":["a"],"style":"s"}', b'{"text":"","roles":["a"]}', b'{"text":"","roles":[1],"style":"s"}', b'{"text":""}']
    assert statuses(lines, promoted) == [dj_parse.FAST, dj_parse.FALLBACK, dj_parse.FALLBACK, dj_parse.FAST]


def canonical(raw: bytes):
    buf = np.frombuffer(raw, np.uint8)
    out = np.zeros(2 * len(raw) + 16, np.uint8)
    scratch = np.zeros(512, np.int64), np.zeros(512, np.int64), np.zeros(json_scan.MAX_NESTING + 1, np.int64)
    stop, written = json_scan.canonical_value(buf, 0, len(buf), out, 0, *scratch)
    if stop < 0 or json_scan.skip_whitespace(buf, stop, len(buf)) != len(buf):
        return None
    return bytes(out[:written])


def test_canonical_json_is_what_orjson_writes_or_refused():
    rng = random.Random(7)
    words = ["a", "é", "\u2028", "😀", '"', "\\", "\n", "\x01", "\x7f", "/", "<__dj__image>", ""]
    numbers = [0, -1, 7, 2**62, 0.5, -0.0, 1.0, 123.25, 0.0001, 1e-5, 1e16, 3.14159, 2.5e-8, 1 / 3]
    taken = refused = 0
    for _ in range(3000):
        value = {rng.choice(words) + str(k): [rng.choice(numbers), rng.choice(words) * 2, None, True, {"x": rng.choice(numbers)}] for k in range(3)}
        for raw in (json.dumps(value).encode(), json.dumps(value, indent=1, ensure_ascii=False).encode(), orjson.dumps(value)):
            written = canonical(raw)
            if written is None:
                refused += 1
                continue
            taken += 1
            assert written == orjson.dumps(msgspec.json.decode(raw)), raw
    # Values holding 1e-05, 1e+16, 2.5e-08 or 1/3 are refused (orjson's digits or notation may
    # differ from the source's); the others are written, and equal orjson's bytes.
    assert (taken, refused) == (675, 8325)
    for text in ("1.0E5", "1e5", "-0", "1.50", "0.00001", "12345678901234567890", '{"a":1,"a":2}', "[1,]", "tru", '"\\ud800"', "01"):
        assert canonical(text.encode()) is None, text


def test_several_batches_on_threads_keep_file_order_and_the_careful_rows(tmp_path):
    # About 9 MB: three batches of the reader, parsed on threads, each with records the kernel
    # leaves to the careful path (a repeated key) and records that path refuses (kept with reasons).
    filler = "word é " * 100
    lines = []
    for k in range(12_000):
        if k % 997 == 5:
            lines.append(b'{"text":"dup %d","text":"twice"}' % k)
        elif k % 1499 == 7:
            lines.append(b'{"text":%d}' % k)
        else:
            lines.append(orjson.dumps({"text": f"{k} {filler}", "images": [f"{k}.jpg"], "id": k}))
    source = tmp_path / "many.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    fast, careful = both_paths(source, tmp_path, on_error="keep")
    assert_same(fast, careful)
    assert fast.column("id").to_pylist()[:3] == ["0", "1", "2"]
    refused = [k for k, reason in enumerate(fast.column("record_errors").to_pylist()) if reason]
    assert refused == [k for k in range(12_000) if k % 997 != 5 and k % 1499 == 7]


def test_json_sources_are_written_in_1000_row_record_batches_parquet_in_datasets_100(tmp_path):
    # JSON records never carry image_bytes; a Parquet file may (datasets' 100 rows for binary columns).
    source = tmp_path / "rows.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"text": str(k)}) + b"\n" for k in range(2500)))
    ds = hf_mmbuilder.load("dj", str(source), split="train", cache_dir=str(tmp_path / "json"))
    assert [batch.num_rows for batch in ds.data.table.to_batches()] == [1000, 1000, 500]
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": [str(k) for k in range(250)], "image_bytes": [[b"\x00"]] * 250}), parquet)
    ds = hf_mmbuilder.load("dj", str(parquet), split="train", cache_dir=str(tmp_path / "parquet"))
    assert [batch.num_rows for batch in ds.data.table.to_batches()] == [100, 100, 50]
