"""Data-Juicer's real ``dj-process`` between our DJ export and our source-format export (issue 16).

LLaVA records (the shared samples plus records with ``./``/``..`` path quirks and e-mail addresses)
and the 107 shared MMC4 documents go to DJ JSON lines, through ``dj-process`` with a recipe that
edits text (``clean_email_mapper``, ``whitespace_normalization_mapper``) and filters rows
(``text_length_filter``), keeping stats and hashes in its result; its output is loaded with
``load("dj", ...)`` and exported back. Every kept record must equal its original with Data-Juicer's
text edits applied: media paths as the source wrote them (Data-Juicer made them absolute), no
``__dj__*`` keys. Data-Juicer runs in its own venv (``tests/peer_tools.py``).
"""

import json

import pytest

import hf_mmbuilder
from format_helpers import read_records
from peer_tools import run_peer_script

pytestmark = pytest.mark.integration

EDITED_LLAVA = [
    {"id": "quirk-1", "image": "./imgs/../imgs/2.png",
     "conversations": [{"from": "human", "value": "<image>\nWho sent this?  Mail bob@example.com\u00a0now."}, {"from": "gpt", "value": "Someone at work."}]},
    {"id": "quirk-2", "image": "imgs/1.png", "model": "",
     "conversations": [{"from": "human", "value": "Describe <image>"}, {"from": "gpt", "value": "A dog, owned by alice@example.org."}]},
]
RECIPE = [{"clean_email_mapper": {}}, {"whitespace_normalization_mapper": {}}]


def _run_dj_process(source_format, source, tmp_path, cache_dir, key):
    """Load ``source``, export it to DJ, run ``dj-process`` (text edits, then a length filter that
    drops the longest fifth), load its output and export it back; returns the original dataset,
    Data-Juicer's report, the exported-back records and the DJ rows keyed by ``key``."""
    original = hf_mmbuilder.load(source_format, str(source), split="train", cache_dir=cache_dir)
    exported = tmp_path / "dj_in" / "data.dj.jsonl"
    hf_mmbuilder.export(original, "dj", str(exported))
    lengths = sorted(len(row["text"]) for row in read_records(exported))
    ops = [*RECIPE, {"text_length_filter": {"min_len": 1, "max_len": lengths[len(lengths) * 4 // 5]}}, {"document_deduplicator": {}}]
    result = tmp_path / "dj_out" / "result.jsonl"
    report = run_peer_script("dj", "dj_process.py", exported, result, json.dumps(ops))
    assert report["installed_during_run"] == [] and report["removed_during_run"] == []
    assert {"__dj__stats__", "__dj__hash", "hf_mmbuilder_media_paths"} <= set(report["keys"])
    assert 0 < len(report["rows"]) < len(original)
    processed = hf_mmbuilder.load("dj", str(result), split="train", cache_dir=cache_dir)
    back = tmp_path / f"back{source.suffix}"
    hf_mmbuilder.export(processed, source_format, str(back))
    return original, report, read_records(back)


def _expected(original, report, source_format, key, tmp_path):
    """The original rows Data-Juicer kept, with its text, exported: what the round trip must give."""
    dj_text = {str(row[key]): row["text"] for row in report["rows"]}
    kept = original.filter(lambda row: str(row[key]) in dj_text).map(lambda row: {"text": dj_text[str(row[key])]})
    path = tmp_path / f"expected.{'json' if source_format == 'llava' else 'jsonl'}"
    hf_mmbuilder.export(kept, source_format, str(path))
    return read_records(path)


def test_llava_through_dj_process_comes_back_with_its_edits(shared_data, tmp_path, cache_dir):
    records = [*read_records(shared_data / "formats" / "llava" / "llava_instruct_150k_slice100.json"),
               *read_records(shared_data / "formats" / "llava" / "llava_v1_5_mix665k.json"), *EDITED_LLAVA]
    source = tmp_path / "src" / "llava.json"
    source.parent.mkdir()
    source.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    original, report, back = _run_dj_process("llava", source, tmp_path, cache_dir, "id")
    assert all(path.startswith(str(tmp_path / "dj_in") + "/") for row in report["rows"] for path in row["images"])
    expected = _expected(original, report, "llava", "id", tmp_path)
    assert back == expected
    assert not [key for record in back for key in record if key.startswith("__dj__") or key == "hf_mmbuilder_media_paths"]
    by_id = {record["id"]: record for record in back}
    assert by_id["quirk-1"]["image"] == "./imgs/../imgs/2.png"
    # The e-mail address is removed, the no-break space becomes a plain one; runs of spaces stay.
    assert by_id["quirk-1"]["conversations"][0]["value"] == "<image>\nWho sent this?  Mail  now."
    assert by_id["quirk-2"]["conversations"][1]["value"] == "A dog, owned by ."
    originals = {str(record.get("id")): record for record in records}
    for record in back:
        source_record = originals[str(record["id"])]
        assert record.get("image") == source_record.get("image")


def test_mmc4_through_dj_process_comes_back_with_its_edits(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl"
    original, report, back = _run_dj_process("mmc4", source, tmp_path, cache_dir, "url")
    expected = _expected(original, report, "mmc4", "url", tmp_path)
    assert back == expected
    sources = {record["url"]: record for record in read_records(source)}
    for record in back:
        assert not [key for key in record if key.startswith("__dj__") or key == "hf_mmbuilder_media_paths"]
        assert [info["image_name"] for info in record["image_info"]] == [info["image_name"] for info in sources[record["url"]]["image_info"]]
        assert record["similarity_matrix"] == sources[record["url"]]["similarity_matrix"]
