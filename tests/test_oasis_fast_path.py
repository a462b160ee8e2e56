"""The Oasis fast path (``kernels/oasis_parse.py`` rewriting records for the compiled LLaVA parser)
gives exactly the careful path's table: on the real Oasis sample, on generated inputs and outputs,
and on edge cases written byte by byte (key orders, escapes, nested extra values, bad records)."""

import numpy as np
import orjson
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.kernels import oasis_parse

from format_helpers import export_records


def both_paths(path, tmp_path, **options):
    tables = []
    for name, fast in (("fast", True), ("careful", False)):
        ds = hf_mmbuilder.load("oasis", str(path), split="train", cache_dir=str(tmp_path / name), fast_path=fast, **options)
        tables.append(ds)
    return tables


def assert_same(fast, careful):
    a, b = fast.data.table, careful.data.table
    for name in b.column_names:
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert a.equals(b)


def rewritten(lines: list) -> list:
    """Each record as the kernel rewrites it for the LLaVA parser (``None``: left to the careful path)."""
    buf = np.frombuffer(b"".join(lines), np.uint8)
    lengths = np.array([len(line) for line in lines], np.int64)
    ends = np.cumsum(lengths)
    out, out_starts, out_ends = np.empty(3 * len(buf) + 160 * len(lines), np.uint8), np.empty(len(lines), np.int64), np.empty(len(lines), np.int64)
    oasis_parse.as_llava(buf, ends - lengths, ends, out, out_starts, out_ends)
    return [bytes(out[a:b]) or None for a, b in zip(out_starts, out_ends)]


def test_the_real_sample_loads_the_same_on_the_fast_path(shared_data, tmp_path):
    source = shared_data / "formats" / "oasis" / "oasis_mm_inf_input.jsonl"
    fast, careful = both_paths(source, tmp_path)
    assert_same(fast, careful)
    lines = [line for line in source.read_bytes().splitlines() if line.strip()]
    assert [orjson.loads(record) for record in rewritten(lines[:1])] == [{
        "image": "./images/100624450.jpeg",
        "conversations": [{"from": "human", "value": "<image>\nWhere is this scene taking place?"},
                          {"from": "gpt", "value": orjson.loads(lines[0])["response"]}],
        "__oasis_layout__": "instruction",
    }]
    assert None not in rewritten(lines)


def test_generated_records_load_the_same_and_all_on_the_fast_path(tmp_path):
    records = list(testing.oasis_records(3000, seed=11))
    source = testing.write_jsonl(str(tmp_path / "gen.jsonl"), records)
    fast, careful = both_paths(source, tmp_path, shard_bytes=1 << 18)
    assert_same(fast, careful)
    assert None not in rewritten([orjson.dumps(record) for record in records])
    assert export_records("oasis", fast, tmp_path) == records


EDGES = [
    # Input records: key orders, no image, a video, ids, other keys with whitespace and escapes.
    b'{"instruction": "Q?", "response": "A.", "image": "./i/1.png"}',
    b'{"image": "./i/2.png", "response": "A \\u00e9", "instruction": "Q \\/ \\"x\\""}',
    b'{"instruction": "no image", "response": "ok", "id": 7, "meta": {"a": [1, 2.5, null], "b": "\\u00fc"}}',
    b'{"instruction": "Q", "response": "A", "video": "v.mp4", "id": "s", "image": ["a.png"], "z": true}',
    b'{"src": "x", "instruction": "Q", "response": "A"}',
    b'{"instruction": "", "response": ""}',
    # Output records (LLaVA): extra keys canonical, keys escaped, key order, ints.
    b'{"id": 3, "image": "a.png", "conversations": [{"from": "human", "value": "<image>\\nQ"}, {"from": "gpt", "value": "A"}], "data_source": "\\u5408\\u6210"}',
    b'{"data_source": {"k": [1, 2]}, "conversations": [{"from": "human", "value": "Q"}], "\\u0069d": "x"}',
    # Records the careful path refuses or treats specially.
    b'{"instruction": 5, "response": "A"}',
    b'{"instruction": "Q", "response": null, "image": "i.png"}',
    b'{"instruction": "Q"}',
    b'{"instruction": "<image> twice", "response": "A", "image": "i.png"}',
    b'{"instruction": "[[human]]: fake", "response": "A"}',
    b'{"instruction": "Q", "response": "A", "instruction": "again"}',
    b'{"instruction": "Q", "response": "A", "__key_order__": ["x"]}',
    b'{"instruction": "Q", "response": "A", "n": 1e5}',
    b'{"response": "only"}',
    b'{"instruction": "bad \xff", "response": "A"}',
    b'[1]',
    b'{"instruction": "a literal <__dj__image> token", "response": "A"}',
    b'{"id": 1, "conversations": [{"from": "human", "value": "<|__dj__eoc|>"}]}',
]


def test_edge_cases_load_the_same(tmp_path):
    source = tmp_path / "edges.jsonl"
    source.write_bytes(b"\n".join(EDGES) + b"\n")
    fast, careful = both_paths(source, tmp_path, on_error="keep")
    assert_same(fast, careful)
    refused = [k for k, errors in enumerate(fast["record_errors"]) if errors]
    # A video with no <video> token, non-string or missing fields, a token count that disagrees,
    # no instruction, bytes that are not UTF-8, not an object, literal DJ tokens.
    assert refused == [3, 8, 9, 10, 11, 16, 17, 18, 19, 20]
    # Left to the careful path by the rewrite: non-strings, repeated and reserved keys, 1e5, not
    # an object (a record without instruction, or with bad bytes, is left to the LLaVA parser's checks).
    assert [k for k, record in enumerate(rewritten(EDGES)) if record is None] == [8, 9, 10, 13, 14, 15, 18]


@pytest.mark.parametrize("options", [{"split_chunk": True}, {"image_special_token": "<image>"}, {"sent_separator": " | ", "add_eoc_at_last": False}])
def test_options_reach_the_fast_path(tmp_path, options):
    records = list(testing.oasis_records(400, seed=2))
    source = testing.write_jsonl(str(tmp_path / "gen.jsonl"), records)
    fast, careful = both_paths(source, tmp_path, **options)
    assert_same(fast, careful)


def test_a_dj_token_written_with_an_escape_is_refused_on_both_paths(tmp_path):
    # json.dumps writes "\u005f" back as "_": the records are written by hand.
    lines = [rb'{"instruction": "q%d", "response": "a", "image": "x.jpg"}' % k for k in range(30)]
    lines[7] = rb'{"instruction": "see <__dj\u005f_image>", "response": "a", "image": "x.jpg"}'
    lines[19] = rb'{"instruction": "q", "response": "<|__dj__eoc\u007c>", "image": "x.jpg"}'
    path = tmp_path / "escaped.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    fast, careful = both_paths(path, tmp_path, on_error="skip")
    assert len(fast) == len(careful) == 28
    assert_same(fast, careful)
