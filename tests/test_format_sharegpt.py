"""ShareGPT ``messages`` (LLaMA-Factory, ms-swift, OpenAI/Qwen parts): lossless round trip, style
detection and conversion, edits surviving export, streaming, num_proc and bad input."""

import functools
import json

import datasets
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError

from format_helpers import export_records, load as load_format, read_records, write_jsonl

IMAGE = hf_mmbuilder.IMAGE_TOKEN
load = functools.partial(load_format, "sharegpt")
export = functools.partial(export_records, "sharegpt")


QUIRKY = [
    {"messages": [{"role": "user", "content": "A <image> mid\n<image>"}, {"role": "assistant", "content": "  spaced \n"}],
     "images": ["a.jpg", "a.jpg"]},
    {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "<video><audio>what?"}, {"role": "assistant", "content": "没有 😀"}],
     "videos": ["v.mp4"], "audios": ["a.wav"], "id": 7},
    {"messages": [{"role": "user", "content": "text only"}, {"role": "assistant", "content": "ok"}], "images": []},
    {"messages": [{"role": "user", "content": "<image>x"}, {"role": "assistant", "content": "y", "loss": False}],
     "images": "single.jpg", "objects": {"ref": ["dog"], "bbox": [[1, 2, 3, 4]]}},
    {"tools": "[{\"name\": \"f\"}]", "messages": [{"role": "user", "content": "call"}, {"role": "tool_call", "content": "{\"name\": \"f\"}"},
                                                 {"role": "tool_response", "content": "1"}, {"role": "assistant", "content": "one"}]},
    {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "p/1.png", "detail": "high"}},
        {"type": "text", "text": "first "}, {"type": "text", "text": "second"},
        {"type": "image", "image": "p/2.png"}, {"type": "video", "video": "p/v.mp4"}, {"type": "audio", "audio": "p/a.wav"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
        {"role": "tool", "content": "42", "tool_call_id": "c"},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}]}]},
    {"messages": []},
]


def test_every_quirk_round_trips_and_styles_are_detected(tmp_path, cache_dir):
    ds = load(write_jsonl(tmp_path / "in.jsonl", QUIRKY), cache_dir)
    assert export(ds, tmp_path) == QUIRKY
    assert ds["style"] == ["llamafactory", "llamafactory", "llamafactory", "swift", "swift", "openai", "llamafactory"]
    assert ds[0]["images"] == ["a.jpg", "a.jpg"] and ds[0]["text"].count(IMAGE) == 2
    assert ds[5]["images"] == ["p/1.png", "p/2.png"] and ds[5]["videos"] == ["p/v.mp4"] and ds[5]["audios"] == ["p/a.wav"]
    assert ds[5]["text"].startswith(f"[[user]]: {IMAGE}first second{IMAGE}<__dj__video><__dj__audio>\n")
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_real_llamafactory_file_round_trips(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "sharegpt" / "sharegpt_messages_llamafactory.json"
    ds = load(source, cache_dir)
    assert export(ds, tmp_path, "out.json") == read_records(source)
    assert ds[4]["videos"] == ["mllm_demo_data/4.mp4"] and ds[4]["audios"] == ["mllm_demo_data/4.mp3"]
    assert ds[4]["text"].startswith("[[user]]: <__dj__video><__dj__audio>What")


def test_generated_quirks_round_trip_with_zero_differences(tmp_path, cache_dir):
    records = list(testing.sharegpt_records(10_000, seed=4))
    source = testing.write_jsonl(str(tmp_path / "in.jsonl"), records)
    ds = load(source, cache_dir, num_proc=2, shard_bytes=1 << 20)
    assert set(ds["style"]) == {"llamafactory", "swift", "openai"}
    out = export(ds, tmp_path)
    assert len(out) == len(records) and sum(a != b for a, b in zip(out, records)) == 0


def test_edits_survive_export_for_tags_and_parts(tmp_path, cache_dir):
    ds = load(write_jsonl(tmp_path / "in.jsonl", QUIRKY), cache_dir)

    def drop_first_image(row):
        if not row["images"]:
            return {"text": row["text"].replace("ok", "OK")}
        return {"text": row["text"].replace(IMAGE, "", 1).replace("second", "2nd"), "images": row["images"][1:]}

    out = export(ds.map(drop_first_image), tmp_path)
    assert out[0]["messages"][0]["content"] == "A  mid\n<image>" and out[0]["images"] == ["a.jpg"]
    assert out[2]["messages"][1]["content"] == "OK"
    assert out[3]["images"] == [] and out[3]["messages"][0]["content"] == "x"
    parts = out[5]["messages"][0]["content"]
    assert parts == [{"type": "text", "text": "first 2nd"}, {"type": "image", "image": "p/2.png"},
                     {"type": "video", "video": "p/v.mp4"}, {"type": "audio", "audio": "p/a.wav"}]


def test_style_conversion_between_tags_and_parts(tmp_path, cache_dir):
    ds = load(write_jsonl(tmp_path / "in.jsonl", QUIRKY[:1] + QUIRKY[5:6]), cache_dir)
    as_tags = export(ds, tmp_path, "tags.jsonl", style="llamafactory")
    assert as_tags[1]["messages"][0]["content"] == "<image>first second<image><video><audio>"
    assert as_tags[1]["images"] == ["p/1.png", "p/2.png"] and as_tags[1]["videos"] == ["p/v.mp4"]
    as_parts = export(ds, tmp_path, "parts.jsonl", style="openai")
    assert as_parts[0]["messages"][0]["content"] == [
        {"type": "text", "text": "A "}, {"type": "image", "image": "a.jpg"}, {"type": "text", "text": " mid\n"}, {"type": "image", "image": "a.jpg"}]
    assert "images" in as_parts[0] and as_parts[0]["images"] == []
    assert as_parts[1] == QUIRKY[5]


def test_streaming_num_proc_and_provenance(shared_data, tmp_path, cache_dir):
    first = write_jsonl(tmp_path / "a.jsonl", QUIRKY)
    second = write_jsonl(tmp_path / "b.jsonl", QUIRKY[:2])
    streamed = list(hf_mmbuilder.load("sharegpt", [first, second], split="train", streaming=True))
    built = datasets.load_dataset("hf_mmbuilder/sharegpt", data_files=[first, second], split="train", cache_dir=cache_dir, num_proc=2)
    assert [row["text"] for row in streamed] == built["text"]
    assert built["source_file"] == [first] * len(QUIRKY) + [second] * 2


@pytest.mark.parametrize(
    "line, reason",
    [
        ("[1, 2", "malformed JSON"),
        (json.dumps({"conversations": []}), "record has no 'messages'"),
        (json.dumps({"messages": "hi"}), "'messages' must be a list"),
        (json.dumps({"messages": [{"role": 1, "content": "x"}]}), "'role' must be a string"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}), "must be a string, a list of parts or null"),
        (json.dumps({"messages": [{"role": "user", "content": "<image>"}], "images": []}), "more <image> tags than 'images' paths"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "images": ["a.jpg"]}), "'images' names 1 file.*0 <image> tag"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "images": [3]}), "'images' must be a list of path strings"),
        (json.dumps({"messages": [{"role": "user", "content": [{"type": "file", "file": "x"}]}]}), "unsupported content part type 'file'"),
        (json.dumps({"messages": [{"role": "user", "content": [{"type": "image"}]}]}), "'image' part needs a path string"),
    ],
)
def test_bad_records_raise_with_file_record_and_reason(tmp_path, cache_dir, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(QUIRKY[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=f"bad.jsonl: record 1 \\(line 2\\): .*{reason}"):
        load(path, cache_dir)


def test_on_error_skip_keep_and_missing_media(tmp_path, cache_dir):
    testing.write_images(str(tmp_path), ["a.jpg"])
    path = tmp_path / "bad.jsonl"
    missing = {"messages": [{"role": "user", "content": "<image>"}], "images": ["gone.jpg"]}
    path.write_text(json.dumps(QUIRKY[0]) + "\n{oops\n" + json.dumps(missing) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    skipped = load(path, cache_dir, on_error="skip", rejects_path=str(rejects), check_media=True)
    assert len(skipped) == 1
    assert [json.loads(line)["record"] for line in rejects.read_text().splitlines()] == [1, 2]
    assert "media file 'gone.jpg' not found" in rejects.read_text()
    kept = load(path, cache_dir, on_error="keep")
    assert len(kept) == 3 and kept[1]["record_errors"] and kept[2]["record_errors"] is None
    with pytest.raises(RecordError, match="kept with load errors"):
        export(kept, tmp_path)


def test_token_removed_without_its_media_is_reported(tmp_path, cache_dir):
    ds = load(write_jsonl(tmp_path / "in.jsonl", QUIRKY[:1]), cache_dir)
    with pytest.raises(RecordError, match="text has 1 <__dj__image> token.*images has 2"):
        export(ds.map(lambda row: {"text": row["text"].replace(IMAGE, "", 1)}), tmp_path)


def test_llamafactory_sharegpt_key_names_are_options(tmp_path, cache_dir):
    records = [{"conversations": [{"from": "human", "value": "<image>Who?"}, {"from": "gpt", "value": "Me."}], "images": ["1.jpg"], "system": "s"}]
    options = {"messages_key": "conversations", "role_key": "from", "content_key": "value"}
    ds = load(write_jsonl(tmp_path / "in.jsonl", records), cache_dir, **options)
    assert ds[0]["text"] == f"[[human]]: {IMAGE}Who?\n[[gpt]]: Me. <|__dj__eoc|>" and ds[0]["extra"] == {"system": "s"}
    assert export(ds, tmp_path, **options) == records


def _roles(records):
    return [[message["role"] for message in record["messages"]] for record in records]


def test_each_style_writes_its_own_role_names(tmp_path, cache_dir):
    classic = {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "<image>Who?"},
                                 {"from": "gpt", "value": "Me."}], "images": ["1.jpg"]}
    llava_file = write_jsonl(tmp_path / "llava.jsonl", [{"id": "1", "image": "1.jpg", "conversations": classic["conversations"]}])
    from_llava = hf_mmbuilder.load("llava", llava_file, split="train", cache_dir=cache_dir)
    tools = load(write_jsonl(tmp_path / "tools.jsonl", [QUIRKY[4], QUIRKY[5]]), cache_dir)
    options = {"messages_key": "conversations", "role_key": "from", "content_key": "value"}
    as_classic = load(write_jsonl(tmp_path / "classic.jsonl", [classic]), cache_dir, **options)

    assert _roles(export(from_llava, tmp_path, "auto.jsonl")) == [["system", "user", "assistant"]]
    for style, tool_roles in [
        ("llamafactory", [["user", "function_call", "observation", "assistant"], ["user", "assistant", "observation", "assistant"]]),
        ("swift", [["user", "tool_call", "tool_response", "assistant"], ["user", "assistant", "tool_response", "assistant"]]),
        ("openai", [["user", "tool_call", "tool", "assistant"], ["user", "assistant", "tool", "assistant"]]),
    ]:
        assert _roles(export(from_llava, tmp_path, f"{style}.jsonl", style=style)) == [["system", "user", "assistant"]]
        assert _roles(export(tools, tmp_path, f"tools-{style}.jsonl", style=style)) == tool_roles
        written = export(as_classic, tmp_path, f"classic-{style}.jsonl", style=style, **options)
        assert [[turn["from"] for turn in record["conversations"]] for record in written] == [["system", "user", "assistant"]]
    # Exported in their own style, ShareGPT rows keep the roles they were loaded with.
    assert export(as_classic, tmp_path, "classic.jsonl", **options) == [classic]
    assert _roles(export(tools, tmp_path, "tools.jsonl")) == [["user", "tool_call", "tool_response", "assistant"],
                                                             ["user", "assistant", "tool", "assistant"]]


def test_role_map_names_roles_by_name_or_kind(tmp_path, cache_dir):
    ds = load(write_jsonl(tmp_path / "in.jsonl", [QUIRKY[1], QUIRKY[4]]), cache_dir)
    written = export(ds, tmp_path, style="llamafactory", role_map={"user": "human", "assistant": "gpt", "tool_response": "tool"})
    assert _roles(written) == [["system", "human", "gpt"], ["human", "function_call", "tool", "gpt"]]
    with pytest.raises(ValueError, match="role_map must map role names or kinds to role names"):
        export(ds, tmp_path, role_map={"user": 1})


def test_loader_reads_every_tools_role_names(tmp_path, cache_dir):
    names = ["system", "user", "assistant", "human", "gpt", "observation", "function_call", "tool_call", "tool_response", "tool"]
    record = {"messages": [{"role": name, "content": name} for name in names]}
    ds = load(write_jsonl(tmp_path / "in.jsonl", [record]), cache_dir)
    assert ds[0]["roles"] == names
    assert export(ds, tmp_path) == [record]


def test_key_order_is_kept(tmp_path, cache_dir):
    records = [QUIRKY[4], {"id": 1, "images": ["a.jpg"], "messages": [{"role": "user", "content": "<image>"}], "system": "s"}, QUIRKY[0]]
    ds = load(write_jsonl(tmp_path / "in.jsonl", records), cache_dir)
    assert [list(record.items()) for record in export(ds, tmp_path)] == [list(record.items()) for record in records]
    assert [list(record) for record in export(ds, tmp_path, "named.jsonl", style="swift")] == [
        ["tools", "messages"], ["id", "images", "messages", "system"], ["messages", "images"]]
