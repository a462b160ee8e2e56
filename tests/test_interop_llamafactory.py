"""LLaMA-Factory reads our ShareGPT export: its own converter (``SharegptDatasetConverter`` through
``_load_single_dataset``) and its multimodal plugin's image-count check, run in its own venv
(``requirements/llamafactory.lock``) by ``tests/peer_scripts/llamafactory_convert.py``."""

import json
import random

import pytest

import hf_mmbuilder
from hf_mmbuilder import testing

from format_helpers import read_records, write_jsonl
from peer_tools import run_peer_script

pytestmark = pytest.mark.integration

# The README's entry: the one LLaMA-Factory ships for its multimodal demos, with every tag listed
# (with a "tags" block a tag left out is None, and a row starting with a system message is then an
# "Invalid role tag").
DATASET_INFO = {
    "formatting": "sharegpt",
    "columns": {"messages": "messages", "images": "images"},
    "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
             "system_tag": "system", "observation_tag": "observation", "function_tag": "function_call"},
}


def _conversations(count: int) -> list:
    """LLaVA-665k-shaped records, with a system prompt in every third and a second image (in a
    later question) in every fourth, so the export has multi-image rows and system messages."""
    rng = random.Random(7)
    records = list(testing.llava_records(count, seed=3, image_folder="images"))
    for number, record in enumerate(records):
        if number % 3 == 0:
            record["conversations"].insert(0, {"from": "system", "value": "You are a careful visual assistant."})
        if number % 4 == 1 and "image" in record and len(record["conversations"]) >= 4:
            question = next(k for k in range(2, len(record["conversations"])) if record["conversations"][k]["from"] == "human")
            record["conversations"][question]["value"] += rng.choice(("\n<image>", " Compare with <image>."))
            record["image"] = [record["image"], f"images/extra_{number}.jpg"]
    return records


def test_llamafactory_accepts_every_row_of_a_llamafactory_style_export(tmp_path, cache_dir):
    records = _conversations(60)
    paths = [path for record in records for path in ([record["image"]] if isinstance(record.get("image"), str) else record.get("image", []))]
    testing.write_images(str(tmp_path), sorted(set(paths)))
    ds = hf_mmbuilder.load("llava", write_jsonl(tmp_path / "llava.jsonl", records), split="train", cache_dir=cache_dir)
    out = tmp_path / "export" / "chats.json"
    hf_mmbuilder.export(ds, "sharegpt", str(out), style="llamafactory")
    exported = read_records(out)
    assert {message["role"] for record in exported for message in record["messages"]} == {"system", "user", "assistant"}
    assert sum(record["messages"][0]["role"] == "system" for record in exported) == 20
    assert [len(record.get("images", [])) for record in exported].count(2) == 9
    assert ["images" in record for record in exported].count(False) == 5  # text-only rows
    # The export's media paths are relative to the LLaVA file's folder: LLaMA-Factory reads them from media_dir.
    info = tmp_path / "export" / "dataset_info.json"
    info.write_text(json.dumps({"chats": DATASET_INFO}), encoding="utf-8")

    report = run_peer_script("llamafactory", "llamafactory_convert.py", out, info, "--media-dir", tmp_path)

    assert report["versions"]["llamafactory"] == "0.9.5"
    assert [message for message in report["log"] if "Invalid" in message["message"]] == []
    assert (report["rows_in"], report["rows_accepted"], report["plugin_ok"]) == (60, 60, 60)
    assert [row["images"] for row in report["rows"]] == [[str(tmp_path / path) for path in record.get("images", [])] for record in exported]
    assert [row["plugin"]["error"] for row in report["rows"]] == [None] * 60
    assert [row["roles"] for row in report["rows"]] == [
        [{"system": "system", "user": "user", "assistant": "assistant"}[message["role"]] for message in record["messages"] if message["role"] != "system"]
        for record in exported
    ]
