"""Datasets of different formats concatenate (one token vocabulary, aligned features) and every row
still exports to its own source format."""

import json

import pytest

import hf_mmbuilder
from hf_mmbuilder.formats.catalog import available_formats
from hf_mmbuilder.formats.mixture import SOURCE_FORMAT_COLUMN, concat_formats, export_formats

from format_helpers import read_records


def canonical(records):
    """Records as sorted canonical JSON strings (rows come back grouped by format, not in order)."""
    return sorted(json.dumps(record, sort_keys=True) for record in records)


SOURCES = {
    "llava": "llava/llava_onevision.json",
    "mmc4": "mmc4/mmc4_core_ff_v3.jsonl",
    "sharegpt": "sharegpt/sharegpt_messages_llamafactory.json",
    "video_chatgpt": "video_chatgpt/video_chatgpt_VideoInstruct100K.json",
}


@pytest.fixture
def loaded(shared_data, cache_dir):
    # A format that went missing is a failure, never a skip.
    assert set(SOURCES) <= set(available_formats()), f"no loading script for {sorted(set(SOURCES) - set(available_formats()))}"
    return {name: hf_mmbuilder.load(name, str(shared_data / "formats" / SOURCES[name]), split="train", cache_dir=cache_dir) for name in SOURCES}


def test_concatenated_formats_share_one_vocabulary_and_export_back(loaded, shared_data, tmp_path):
    combined = concat_formats(loaded)
    assert len(combined) == sum(len(ds) for ds in loaded.values())
    assert combined.unique(SOURCE_FORMAT_COLUMN) == list(loaded)
    assert hf_mmbuilder.validate_alignment(combined) == []
    for column in ("roles", "similarity_matrix", "video_id"):
        assert column in combined.column_names
    mmc4_rows = combined.filter(lambda row: row[SOURCE_FORMAT_COLUMN] == "mmc4")
    assert mmc4_rows["images"] == loaded["mmc4"]["images"]
    llava_row = combined[0]
    assert llava_row["similarity_matrix"] is None and llava_row["roles"] == ["human", "gpt"]
    tokens = {hf_mmbuilder.IMAGE_TOKEN: 0, hf_mmbuilder.VIDEO_TOKEN: 0}
    for text in combined["text"]:
        for token in tokens:
            tokens[token] += text.count(token)
    assert tokens[hf_mmbuilder.IMAGE_TOKEN] == sum(len(paths) for paths in combined["images"]) > 0
    assert tokens[hf_mmbuilder.VIDEO_TOKEN] == sum(len(paths) for paths in combined["videos"]) > 0

    written = export_formats(combined.shuffle(seed=0), str(tmp_path))
    assert sorted(written.values()) == sorted(len(ds) for ds in loaded.values())
    for path in written:
        name = path.rsplit("/", 1)[1].split(".")[0]
        original = read_records(shared_data / "formats" / SOURCES[name])
        assert canonical(read_records(path)) == canonical(original), name


def test_edits_on_the_concatenation_reach_each_format(loaded, tmp_path):
    combined = concat_formats(loaded)
    edited = combined.map(lambda row: {"text": row["text"].replace("Bayern Munich", "FC Bayern")})
    written = export_formats(edited, str(tmp_path))
    sharegpt = next(path for path in written if "sharegpt" in path)
    assert "FC Bayern" in json.dumps(read_records(sharegpt)) and "Bayern Munich" not in json.dumps(read_records(sharegpt))


def test_conflicting_features_are_named(loaded):
    llava = loaded["llava"]
    clash = loaded["mmc4"].rename_column("text_list", "media_layout")
    with pytest.raises(ValueError, match="column 'media_layout' is .* in the llava dataset but .* in the mmc4 dataset"):
        concat_formats([("llava", llava), ("mmc4", clash)])
    with pytest.raises(ValueError, match="unknown format"):
        concat_formats({"nope": llava})
