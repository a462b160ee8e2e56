"""The compiled ShareGPT parser (kernels/sharegpt_parse.py) equals the careful path: on the real
``messages`` records, on real ``conversations``/``from``/``value`` records, on generated records
of every style and on edge cases; the records it is not sure about take the careful path."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.formats.builder import ColumnBuffer, Shard
from hf_mmbuilder.formats.records import iter_batches, scan_records
from hf_mmbuilder.kernels import sharegpt_parse
from hf_mmbuilder.loading_scripts.sharegpt import Sharegpt


def both_paths(path, tmp_path, **options):
    """The table of a fast load and of a careful load of ``path`` (errors kept as rows)."""
    options = {"on_error": "keep", **options}
    fast = hf_mmbuilder.load("sharegpt", str(path), split="train", cache_dir=str(tmp_path / "fast"), **options)
    careful = hf_mmbuilder.load("sharegpt", str(path), split="train", cache_dir=str(tmp_path / "careful"), fast_path=False, **options)
    return fast.data.table, careful.data.table


def assert_same(path, tmp_path, **options):
    fast, careful = both_paths(path, tmp_path, **options)
    assert fast.schema == careful.schema
    assert fast.to_pylist() == careful.to_pylist()
    return fast


def statuses(path, tmp_path, **options) -> list:
    """The compiled parser's status per record of ``path`` (``FAST`` or ``FALLBACK``)."""
    builder = Sharegpt(cache_dir=str(tmp_path / "status"), data_files=str(path), **options)
    shard = Shard(0, str(path), str(path), str(tmp_path))
    buffer = ColumnBuffer(builder.info.features, constants=builder.shard_constants(shard))
    index = scan_records(str(path))
    found = []
    for batch in iter_batches(index, 0, len(index), None, decode=False):
        found += builder._compiled_table(batch, buffer)[1].tolist()
    return found


def write_lines(path, lines) -> str:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines) + b"\n")
    return str(path)


def test_real_messages_records_take_the_fast_path_and_equal_the_careful_one(shared_data, tmp_path):
    source = shared_data / "formats" / "sharegpt" / "sharegpt_messages_llamafactory.json"
    table = assert_same(source, tmp_path)
    assert statuses(source, tmp_path) == [sharegpt_parse.FAST] * 5
    first = table.to_pylist()[0]
    assert first["text"] == (
        "[[user]]: <__dj__image>Who are they?\n[[assistant]]: They're Kane and Gretzka from Bayern Munich.\n"
        "[[user]]: What are they doing?<__dj__image>\n[[assistant]]: They are celebrating on the soccer field. <|__dj__eoc|>"
    )
    assert first["images"] == ["mllm_demo_data/1.jpg", "mllm_demo_data/1.jpg"]
    # LLaMA-Factory's demo writes content before role: every message keeps its key order.
    assert json.loads(first["messages_layout"]) == [{"order": ["content", "role"]}] * 4


@pytest.mark.parametrize("name", ["llava_instruct_150k_slice100.json", "llava_v1_5_mix665k.json", "llava_onevision.json",
                                  "internvl_chat_llava_style.jsonl"])
def test_real_conversations_records_equal_the_careful_path(shared_data, tmp_path, name):
    # ShareGPT's own keys; these files name their images under "image", so their tagged records
    # are errors (kept as rows) on both paths alike.
    source = shared_data / "formats" / "llava" / name
    table = assert_same(source, tmp_path, messages_key="conversations", role_key="from", content_key="value")
    assert table.num_rows == len(scan_records(str(source)))


def test_generated_records_of_every_style_take_the_fast_path(tmp_path):
    source = write_lines(tmp_path / "gen.jsonl", testing.GENERATORS["sharegpt"](3000, seed=7))
    table = assert_same(source, tmp_path)
    assert set(statuses(source, tmp_path)) == {sharegpt_parse.FAST}
    assert set(table.column("style").to_pylist()) == {"llamafactory", "swift", "openai"}


# (record bytes, takes the fast path)
EDGE_CASES = [
    (b'{"messages": [{"role": "user", "content": "a\\nb \\u00e9 \\ud83d\\ude00 \\/ \\"q\\" \\\\"}]}', True),
    (b'{"messages": [{"role": "user", "content": "\\u003cimage>x"}], "images": ["a.jpg"]}', True),
    (b'{"messages": [{"role": "user", "content": "<image><video><audio>"}], "images": "a.jpg", "videos": ["v.mp4"], "audios": []}', False),
    (b'{"messages": [{"role": "user", "content": "<image><video><audio>"}], "images": "a.jpg", "videos": ["v.mp4"], "audios": ["w.wav"]}', True),
    (b'{"messages": [{"role": "user", "content": "\\ud800 lone"}]}', False),
    (b'{"messages": []}', True),
    (b'{"messages": [{"role": "", "content": ""}, {"role": "user", "content": []}]}', True),
    (b'{"images": [], "id": 7, "messages": [{"role": "user", "content": "x"}], "tools": "[{\\"a\\": 1}]", "objects": {"ref": ["d"], "bbox": [[1, 2]]}}', True),
    (b'{"messages": [{"content": null, "role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}, {"role": "tool"}]}', True),
    (b'{"messages": [{"role": "user", "content": "x", "loss": false, "score": 1.50}]}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "weight": 1e5}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "big": 1234567890123456789}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "note": "caf\\u00e9"}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "ctl": "\\u0001\\t", "neg": -3, "zero": 0, "t": true}', True),
    (b'{"messages": [{"role": "user", "content": "see <__dj__image> here"}]}', False),
    (b'{"messages": [{"role": "user", "content": "\\u003c__dj__image>"}]}', False),
    (b'{"messages": [{"role": "user", "content": "a\\n[[assistant]]: b"}, {"role": "assistant", "content": "c"}]}', False),
    (b'{"messages": [{"role": "user", "content": "[[not a role"}]}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "messages": []}', False),
    (b'{"messages": [{"role": "user", "role": "assistant", "content": "x"}]}', False),
    (b'{"messages": [{"role": "user", "content": "x", "k": 1, "k": 2}]}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "meta": {"a": 1, "a": 2}}', False),
    (b'{"messages": [{"role": "user", "content": "<image>"}]}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "images": ["a.jpg"]}', False),
    (b'{"messages": [{"role": "user", "content": [{"type": "image", "image": "p.jpg"}]}], "images": ["a.jpg"]}', False),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u.jpg"}, {"type": "image_url", "image_url": {"detail": "high", "url": "v.jpg"}}, {"type": "input_audio", "input_audio": {"data": "s.wav", "format": "wav"}}, {"type": "video", "video": "m.mp4"}, {"type": "text", "text": "<image> stays"}]}]}', True),
    (b'{"messages": [{"role": "user", "content": [{"type": "foo", "foo": "x"}]}]}', False),
    (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}', False),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}]}', False),
    (b'{"messages": [{"role": "user", "content": 5}]}', False),
    (b'{"messages": [{"role": 1, "content": "x"}]}', False),
    (b'{"messages": {"role": "user"}}', False),
    (b'{"conversations": []}', False),
    (b'[1, 2]', False),
    (b'{"messages": [{"role": "user", "content": "x"}', False),
    (b'{"messages": [{"role": "user", "content": "caf\xe9 raw latin-1"}]}', False),
    (b'{"messages": [{"role": "user", "content": "x"}], "deep": ' + b"[" * 200 + b"]" * 200 + b"}", False),
    (b'{"messages": [{"role": "tool_call", "content": "{}"}, {"role": "tool_response", "content": "{}"}]}', True),
    (b'{"messages": [{"role": "\xe7\x94\xa8\xe6\x88\xb7", "content": "\xe4\xbd\xa0\xe5\xa5\xbd <audio>", "\xe9\x94\xae": "\xe5\x80\xbc"}], "audios": "a.wav"}', True),
    (b'  {"id": "s", "messages": [{"role": "user", "content": "x"}], "images": []}  ', True),
    (b'{"messages": [{"role": "user", "content": [{"text": "t", "type": "text", "extra": [1, {"b": null}]}]}]}', True),
]


def test_edge_cases_equal_the_careful_path_and_fall_back_where_unsure(tmp_path):
    source = write_lines(tmp_path / "edge.jsonl", [record for record, _ in EDGE_CASES])
    table = assert_same(source, tmp_path)
    assert table.num_rows == len(EDGE_CASES)
    expected = [sharegpt_parse.FAST if fast else sharegpt_parse.FALLBACK for _, fast in EDGE_CASES]
    assert statuses(source, tmp_path) == expected
    rows = table.to_pylist()
    assert rows[0]["text"] == '[[user]]: a\nb é 😀 / "q" \\ <|__dj__eoc|>'
    assert rows[3]["media_keys"] == ["images=str", "videos", "audios"]
    assert json.loads(rows[7]["extra"]) == {"id": 7, "tools": '[{"a": 1}]', "objects": {"ref": ["d"], "bbox": [[1, 2]]},
                                "__key_order__": ["images", "id", "messages", "tools", "objects"]}
    assert rows[7]["style"] == "swift"
    assert rows[8]["messages_layout"] == (
        '[{"keys":{"tool_calls":[{"id":"c1","function":{"name":"f"}}]},"order":["content","role","tool_calls"],"null":true},'
        '{"absent":true}]'
    )
    assert rows[25]["images"] == ["u.jpg", "v.jpg"] and rows[25]["audios"] == ["s.wav"] and rows[25]["videos"] == ["m.mp4"]
    assert rows[25]["text"] == "[[user]]: <__dj__image><__dj__image><__dj__audio><__dj__video><image> stays <|__dj__eoc|>"
    # Records the careful path refuses are error rows on both paths.
    assert rows[14]["record_errors"] and rows[22]["record_errors"] and rows[35]["record_errors"]


def test_a_json_array_file_with_options_equals_the_careful_path(tmp_path):
    records = list(testing.GENERATORS["sharegpt"](600, seed=11))
    source = tmp_path / "pretty.json"
    source.write_text(json.dumps(records, indent=2, ensure_ascii=False))
    options = {"sent_separator": " ||| ", "add_eoc_at_last": False, "image_special_token": "<img>", "style": "openai"}
    table = assert_same(source, tmp_path, **options)
    assert set(table.column("style").to_pylist()) == {"openai"}
    assert set(statuses(source, tmp_path, **options)) == {sharegpt_parse.FAST}


def test_tokens_the_kernel_cannot_bound_take_the_careful_path(tmp_path):
    source = write_lines(tmp_path / "in.jsonl", [record for record, _ in EDGE_CASES[:10]])
    # A token that is a source tag, or not <...>, could straddle a tag: the whole load is careful.
    for token in ("<video>", "[IMG]"):
        assert Sharegpt(cache_dir=str(tmp_path / "c"), data_files=source, image_special_token=token)._compiled_tokens is None
        assert_same(source, tmp_path / token.strip("<>[]"), image_special_token=token)


@pytest.mark.parametrize("options", [{"messages_key": "tools"}, {"messages_key": "images"}, {"role_key": "content"},
                                     {"content_key": 'te"xt'}])
def test_key_names_the_kernel_cannot_match_take_the_careful_path(tmp_path, options):
    source = write_lines(tmp_path / "in.jsonl", [{"tools": [{"role": "user", "content": "x"}], "messages": []}])
    assert Sharegpt(cache_dir=str(tmp_path / "c"), data_files=source, **options)._compiled_tokens is None
    assert_same(source, tmp_path, **options)


def test_custom_keys_equal_the_careful_path(tmp_path):
    records = [{"conversations": [{"from": "human", "value": "<image>hi"}, {"from": "gpt", "value": "yo", "weight": 0}],
                "images": ["a.jpg"], "system": "s"}] * 3
    source = write_lines(tmp_path / "in.jsonl", records)
    options = {"messages_key": "conversations", "role_key": "from", "content_key": "value"}
    table = assert_same(source, tmp_path, **options)
    assert table.column("text").to_pylist()[0] == "[[human]]: <__dj__image>hi\n[[gpt]]: yo <|__dj__eoc|>"
    assert statuses(source, tmp_path, **options) == [sharegpt_parse.FAST] * 3
    np.testing.assert_array_equal(table.column("roles").to_pylist(), [["human", "gpt"]] * 3)
