"""MMC4 end to end: lossless round trip (plain and zipped shards), Data-Juicer parity, realignment
of the similarity matrix after drops/reorders/additions, streaming, num_proc and bad input."""

import functools
import json
import logging
import math
import zipfile

import datasets
import pytest

import hf_mmbuilder
from hf_mmbuilder import edits, testing
from hf_mmbuilder.edits import drop_items, split_document
from hf_mmbuilder.errors import RecordError

from format_helpers import export_records, load as load_format, read_records

load = functools.partial(load_format, "mmc4")
export = functools.partial(export_records, "mmc4")


@pytest.mark.parametrize("name", ["docs_shard_151_v3.jsonl", "mmc4_core_ff_v3.jsonl", "mmc4_core_ff_v3_shared_sentence.jsonl"])
def test_real_files_round_trip(shared_data, tmp_path, cache_dir, name):
    source = shared_data / "formats" / "mmc4" / name
    ds = load(source, cache_dir)
    original = read_records(source)
    assert len(ds) == len(original)
    assert export(ds, tmp_path) == original
    assert hf_mmbuilder.validate_alignment(ds) == []


def test_generated_quirks_round_trip_with_zero_differences(tmp_path, cache_dir):
    records = list(testing.mmc4_records(10_000, seed=3))
    assert any("url" not in r for r in records) and any("doc_id" in r for r in records)
    assert any(not r["image_info"] for r in records) and any(not r["text_list"] for r in records)
    assert any(len({i["matched_text_index"] for i in r["image_info"]}) < len(r["image_info"]) for r in records)
    source = testing.write_jsonl(str(tmp_path / "docs.jsonl"), records)
    ds = load(source, cache_dir, num_proc=2, shard_bytes=8 << 20)
    out = export(ds, tmp_path)
    assert sum(a != b for a, b in zip(out, records)) == 0 and len(out) == len(records)


def test_zipped_shards_many_per_load_keep_provenance(tmp_path, cache_dir):
    first = list(testing.mmc4_records(30, seed=1))
    second = list(testing.mmc4_records(20, seed=2))
    shards = [
        testing.write_jsonl(str(tmp_path / "docs_no_face_shard_0_v3.jsonl.zip"), first, zip_member="docs_no_face_shard_0_v3.jsonl"),
        testing.write_jsonl(str(tmp_path / "docs_no_face_shard_1_v3.jsonl.zip"), second, zip_member="docs_no_face_shard_1_v3.jsonl"),
    ]
    ds = load(shards, cache_dir)
    assert len(ds) == 50
    assert set(ds["source_file"]) == set(shards)
    assert ds["source_file"][0] == shards[0] and ds["source_file"][-1] == shards[1]
    assert export(ds, tmp_path) == first + second


def test_data_juicer_parity_on_the_golden_output(shared_data, cache_dir):
    golden = read_records(shared_data / "dj_golden" / "docs_shard_151_v3.dj.jsonl")
    ds = load(shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl", cache_dir)
    assert len(ds) == len(golden)
    for row, expected in zip(ds.cast_column("image_info", datasets.Json()), golden):
        assert row["text"] == expected["text"]
        assert row["images"] == expected["images"]
        assert row["url"] == expected["url"] and row["text_list"] == expected["text_list"]
        assert row["similarity_matrix"] == expected["similarity_matrix"]
        assert [i["image_name"] for i in row["image_info"]] == [i["image_name"] for i in expected["image_info"]]


def test_parity_options_after_and_image_dir(tmp_path, cache_dir):
    record = next(r for r in testing.mmc4_records(50, seed=5) if len(r["image_info"]) >= 2)
    source = testing.write_jsonl(str(tmp_path / "d.jsonl"), [record])
    options = {"image_special_token_insert_pos": "after", "image_dir": "imgs", "sent_separator": "\n", "add_eoc_at_last": False}
    ds = load(source, cache_dir, **options)
    row = ds[0]
    assert all(path.startswith("imgs/") for path in row["images"])
    assert not row["text"].endswith("<|__dj__eoc|>")
    first_match = min(i["matched_text_index"] for i in record["image_info"])
    chunk = row["text"].split(" <|__dj__eoc|>\n")[first_match]
    assert chunk.startswith(record["text_list"][first_match] + "\n<__dj__image>")
    assert export(ds, tmp_path, **options) == [record]


def test_drops_and_reorders_slice_the_matrix_and_realign(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl"
    original = read_records(source)
    ds = load(source, cache_dir)

    def edit(row):
        n_images, n_chunks = len(row["images"]), len(row["sentence_index"])
        dropped = [c for c in range(1, n_chunks, 3)]
        updated = drop_items(row, images=[0] if n_images > 2 else [], sentences=dropped, keep_images=row["url"] < "m")
        updated["text"] = updated["text"].replace("Black Friday", "BLACK FRIDAY")
        return updated

    edited = ds.map(edit)
    out = export(edited, tmp_path)
    assert len(out) == len(original)
    changed = 0
    for row, doc, source_doc in zip(edited, out, original):
        kept_sentences = row["sentence_index"]
        kept_images = sorted(row["image_index"])
        assert doc["text_list"] == [source_doc["text_list"][s].replace("Black Friday", "BLACK FRIDAY") for s in kept_sentences]
        expected_matrix = [[source_doc["similarity_matrix"][i][s] for s in kept_sentences] for i in kept_images]
        assert doc["similarity_matrix"] == expected_matrix
        assert [info["raw_url"] for info in doc["image_info"]] == [source_doc["image_info"][i]["raw_url"] for i in kept_images]
        for position, info in enumerate(doc["image_info"]):
            match = info["matched_text_index"]
            assert 0 <= match < len(kept_sentences)
            assert info["matched_sim"] == doc["similarity_matrix"][position][match]
            original_match = source_doc["image_info"][kept_images[position]]["matched_text_index"]
            if original_match in kept_sentences:
                assert kept_sentences[match] == original_match
            else:
                changed += 1
                assert info["matched_sim"] == max(doc["similarity_matrix"][position])
    assert changed > 0


def test_shared_sentence_document_round_trips_and_survives_a_drop(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3_shared_sentence.jsonl"
    original = read_records(source)[0]
    ds = load(source, cache_dir)
    assert [i["matched_text_index"] for i in original["image_info"]] == [1, 3, 3, 4, 1]
    assert export(ds, tmp_path) == [original]
    dropped = ds.map(lambda row: drop_items(row, sentences=[0]))
    doc = export(dropped, tmp_path, "dropped.jsonl")[0]
    assert [i["matched_text_index"] for i in doc["image_info"]] == [0, 2, 2, 3, 0]
    assert doc["text_list"] == original["text_list"][1:]


def test_images_added_by_processing_are_flagged_not_dropped(shared_data, tmp_path, cache_dir, caplog):
    source = shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3.jsonl"
    ds = load(source, cache_dir)

    def add_image(row):
        return {
            "text": "<__dj__image> " + row["text"],
            "images": ["generated/new.png"] + row["images"],
            "image_index": [-1] + row["image_index"],
        }

    with caplog.at_level(logging.WARNING, logger="hf_mmbuilder"):
        out = export(ds.map(add_image), tmp_path)
    assert "3 document(s) hold images added by processing" in caplog.text
    for doc, original in zip(out, read_records(source)):
        assert len(doc["image_info"]) == len(original["image_info"]) + 1
        added = doc["image_info"][-1]
        assert added["image_name"] == "generated/new.png" and added["matched_text_index"] == 0 and added["matched_sim"] is None
        assert doc["similarity_matrix"][-1] == [None] * len(original["text_list"])
        assert doc["similarity_matrix"][:-1] == original["similarity_matrix"]


def test_the_edit_helpers_old_home_warns_and_gives_them():
    from hf_mmbuilder.loading_scripts import mmc4

    for name in ("drop_items", "split_document"):
        with pytest.warns(FutureWarning, match=f"use hf_mmbuilder.edits.{name} instead"):
            assert getattr(mmc4, name) is getattr(edits, name)
    with pytest.raises(AttributeError):
        mmc4.join_chunks


def test_split_document_and_token_mismatch_is_reported(shared_data, tmp_path, cache_dir):
    assert split_document(" <|__dj__eoc|>", 0) == ([], [])
    assert split_document(" <|__dj__eoc|>", 1) == ([""], [])
    assert split_document("", None) == ([], [])
    assert split_document(" <|__dj__eoc|>", None) == ([""], [])
    ds = load(shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3.jsonl", cache_dir)
    cut = ds.map(lambda row: {"text": row["text"].split(" <|__dj__eoc|> ", 1)[1]})
    with pytest.raises(RecordError, match=r"record 0: text has 1 <__dj__image> token\(s\) but images has 2 path\(s\)$"):
        export(cut, tmp_path)


def _dj_columns_only_edit(row):
    """Drop every third image (token and path) and the last chunk, touching ``text`` and ``images``
    only, as a Data-Juicer op or user code that knows nothing of the index columns would."""
    edited = drop_items(row, images=list(range(2, len(row["images"]), 3)), sentences=[len(row["sentence_index"]) - 1])
    return {"text": edited["text"], "images": edited["images"]}


def test_dj_columns_only_edit_realigns_by_identity_on_the_real_documents(shared_data, tmp_path, cache_dir):
    source = shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl"
    original = read_records(source)
    ds = load(source, cache_dir)
    edited = ds.map(_dj_columns_only_edit)
    # The direct computation: the same drops through drop_items, which keeps the indexes in step.
    in_step = ds.map(lambda row: drop_items(row, images=list(range(2, len(row["images"]), 3)), sentences=[len(row["sentence_index"]) - 1]))
    assert [len(i) for i in edited["image_index"]] != [len(i) for i in edited["images"]]
    out = export(edited, tmp_path)
    assert out == export(in_step, tmp_path, "in_step.jsonl")
    repeating = 0
    for doc, source_doc, row in zip(out, original, in_step):
        kept_sentences, kept_images = row["sentence_index"], sorted(row["image_index"])
        assert kept_sentences == list(range(len(source_doc["text_list"]) - 1))
        repeating += len(set(source_doc["text_list"])) < len(source_doc["text_list"])
        assert doc["text_list"] == source_doc["text_list"][:-1]
        assert doc["similarity_matrix"] == [[source_doc["similarity_matrix"][i][s] for s in kept_sentences] for i in kept_images]
        assert [info["image_name"] for info in doc["image_info"]] == [source_doc["image_info"][i]["image_name"] for i in kept_images]
        for position, info in enumerate(doc["image_info"]):
            original_match = source_doc["image_info"][kept_images[position]]["matched_text_index"]
            if original_match in kept_sentences:
                assert (info["matched_text_index"], info["matched_sim"]) == (original_match, source_doc["image_info"][kept_images[position]]["matched_sim"])
            else:
                assert info["matched_sim"] == max(doc["similarity_matrix"][position])
                assert doc["similarity_matrix"][position][info["matched_text_index"]] == info["matched_sim"]
    assert repeating == 9


def test_repeated_sentences_match_their_next_unmatched_occurrence(tmp_path, cache_dir):
    doc = {"text_list": ["A.", "B.", "A.", "C.", "A."], "image_info": [{"image_name": "x.jpg", "matched_text_index": 4, "matched_sim": 0.4}],
           "similarity_matrix": [[0.0, 0.1, 0.2, 0.3, 0.4]]}
    ds = load(testing.write_jsonl(str(tmp_path / "docs.jsonl"), [doc]), cache_dir)
    # Drop the second "A." (chunk 2): the survivors are A. B. C. A. = sentences 0, 1, 3, 4.
    edited = ds.map(lambda row: {"text": drop_items(row, sentences=[2])["text"]})
    out = export(edited, tmp_path)[0]
    assert out["text_list"] == ["A.", "B.", "C.", "A."]
    assert out["similarity_matrix"] == [[0.0, 0.1, 0.3, 0.4]]
    assert out["image_info"] == [{"image_name": "x.jpg", "matched_text_index": 3, "matched_sim": 0.4}]


def test_identity_is_ambiguous_only_for_a_removed_copy_of_a_repeated_path(tmp_path, cache_dir):
    doc = {"text_list": ["a", "b"], "similarity_matrix": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
           "image_info": [{"image_name": "same.jpg", "matched_text_index": 0}, {"image_name": "same.jpg", "matched_text_index": 1},
                          {"image_name": "other.jpg", "matched_text_index": 1}]}
    ds = load(testing.write_jsonl(str(tmp_path / "docs.jsonl"), [doc]), cache_dir)

    def drop_image(position):
        return lambda row: {key: value for key, value in drop_items(row, images=[position]).items() if key in ("text", "images")}

    out = export(ds.map(drop_image(2)), tmp_path)[0]
    assert [info["image_name"] for info in out["image_info"]] == ["same.jpg", "same.jpg"]
    assert out["similarity_matrix"] == [[0.1, 0.2], [0.3, 0.4]]
    with pytest.raises(RecordError, match=r"out\.jsonl: record 0: image 'same\.jpg' stands 2 times in the original document and 1 time\(s\) now"):
        export(ds.map(drop_image(0)), tmp_path)


def test_a_dropped_chunk_with_edited_text_is_reported(shared_data, tmp_path, cache_dir):
    ds = load(shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3.jsonl", cache_dir)
    edited = ds.map(lambda row: {"text": "Edited: " + drop_items(row, sentences=[0], keep_images=True)["text"]})
    with pytest.raises(RecordError, match=r"record 0: chunk 0 \(.*\) matches no unmatched original sentence"):
        export(edited, tmp_path)


def test_streaming_and_load_dataset_registration(shared_data, cache_dir):
    source = str(shared_data / "formats" / "mmc4" / "mmc4_core_ff_v3.jsonl")
    streamed = list(hf_mmbuilder.load("mmc4", source, split="train", streaming=True))
    built = load(source, cache_dir)
    assert [row["text"] for row in streamed] == built["text"]
    via_datasets = datasets.load_dataset("hf_mmbuilder/mmc4", data_files=source, split="train", cache_dir=cache_dir)
    assert via_datasets["images"] == built["images"]


GOOD = {"url": "u", "text_list": ["a", "b"], "image_info": [{"image_name": "x.jpg", "matched_text_index": 1}], "similarity_matrix": [[0.1, 0.2]]}


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "malformed JSON"),
        (json.dumps({"image_info": []}), "document has no 'text_list'"),
        (json.dumps({"text_list": ["a"]}), "document has no 'image_info'"),
        (json.dumps({**GOOD, "text_list": "a b"}), "'text_list' must be a list of strings"),
        (json.dumps({**GOOD, "image_info": [{"image_name": 3, "matched_text_index": 0}]}), "image_name must be a string"),
        (json.dumps({**GOOD, "image_info": [{"image_name": "x.jpg", "matched_text_index": 5}]}), "matched_text_index 5, out of range for 2"),
        (json.dumps({**GOOD, "similarity_matrix": [[0.1]]}), "similarity_matrix row 0 has 1 value"),
        (json.dumps({**GOOD, "text_list": ["a <|__dj__eoc|> b", "c"]}), "sentence 0 contains the DJ token"),
    ],
)
def test_bad_records_raise_with_file_record_and_reason(tmp_path, cache_dir, line, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=f"bad.jsonl: record 1 \\(line 2\\): .*{reason}"):
        load(path, cache_dir)


def test_on_error_skip_writes_rejects_and_keep_flags(tmp_path, cache_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{broken\n" + json.dumps({"text_list": []}) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"
    skipped = load(path, cache_dir, on_error="skip", rejects_path=str(rejects))
    assert len(skipped) == 1
    assert [entry["record"] for entry in read_records(rejects)] == [1, 2]
    kept = load(path, cache_dir, on_error="keep")
    assert len(kept) == 3 and kept[0]["record_errors"] is None and "no 'image_info'" in kept[2]["record_errors"][0]
    with pytest.raises(RecordError, match="kept with load errors"):
        export(kept, tmp_path)


def test_missing_media_with_checking_and_unreadable_zip(tmp_path, cache_dir):
    testing.write_images(str(tmp_path), ["x.jpg"])
    path = tmp_path / "docs.jsonl"
    missing = {**GOOD, "image_info": [{"image_name": "gone.jpg", "matched_text_index": 0}]}
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(missing) + "\n", encoding="utf-8")
    assert len(load(path, cache_dir, check_media=True, on_error="skip")) == 1
    with pytest.raises(RecordError, match="record 1.*media file 'gone.jpg' not found"):
        load(path, cache_dir, check_media=True)
    broken = tmp_path / "docs_shard_9_v3.jsonl.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("docs_shard_9_v3.jsonl", json.dumps(GOOD) * 50)
    data = bytearray(broken.read_bytes())
    data[40:80] = b"\0" * 40
    broken.write_bytes(bytes(data))
    with pytest.raises(Exception, match="docs_shard_9_v3"):
        load(broken, cache_dir)


def test_realigned_values_are_finite_for_surviving_pairs(shared_data, tmp_path, cache_dir):
    ds = load(shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl", cache_dir)
    reversed_images = ds.map(lambda row: drop_items(row, sentences=list(range(0, len(row["sentence_index"]), 2))))
    for doc in export(reversed_images, tmp_path):
        assert all(math.isfinite(v) for values in doc["similarity_matrix"] for v in values)


def test_argmax_realignment_picks_the_best_surviving_sentence(shared_data, tmp_path, cache_dir):
    ds = load(shared_data / "formats" / "mmc4" / "docs_shard_151_v3.jsonl", cache_dir)
    edited = ds.map(lambda row: drop_items(row, sentences=list(range(1, len(row["sentence_index"]), 2)), keep_images=True))
    for doc in export(edited, tmp_path, realign_method="argmax"):
        for position, info in enumerate(doc["image_info"]):
            assert info["matched_sim"] == max(doc["similarity_matrix"][position])
            assert doc["similarity_matrix"][position][info["matched_text_index"]] == info["matched_sim"]


@pytest.mark.parametrize("options", [{}, {"image_special_token_insert_pos": "after", "image_dir": "img"}])
def test_fast_path_off_gives_the_same_table_and_export(tmp_path, options):
    source = testing.write_jsonl(str(tmp_path / "docs.jsonl"), testing.mmc4_records(400, seed=4))
    fast = load(source, str(tmp_path / "fast"), **options)
    careful = load(source, str(tmp_path / "careful"), fast_path=False, **options)
    assert careful.data.table.equals(fast.data.table)
    assert export(careful, tmp_path, "careful.jsonl", fast_path=False, **options) == export(fast, tmp_path, **options) == read_records(source)


def test_compiled_path_matches_the_careful_path(tmp_path):
    import random

    from hf_mmbuilder.formats.builder import ColumnBuffer
    from hf_mmbuilder.errors import ErrorPolicy
    from hf_mmbuilder.formats.records import iter_batches
    from hf_mmbuilder.loading_scripts.mmc4 import Document, Mmc4

    records = list(testing.mmc4_records(600, seed=9))
    # Shapes the compiled path must leave to the careful one (which reports or converts them).
    records[1]["similarity_matrix"] = records[1]["similarity_matrix"][:-1] or [[0.5]]
    records[2]["image_info"] = [{"image_name": "x.jpg", "matched_text_index": 10_000}]
    records[3]["text_list"] = ["a", 5]
    records[4]["similarity_matrix"] = [[True]]
    records[5]["image_info"] = [{"image_name": "y.jpg", "matched_text_index": 1.0}]
    records[6]["image_info"] = [{"image_name": "z.jpg"}]
    records[7]["similarity_matrix"] = [[0.1, None]]
    records[8]["url"] = None
    records[9]["could_have_url_duplicate"] = True
    # Shapes it must take, and build exactly as the careful path does.
    for record in records[10:13]:
        record.pop("doc_id", None)
    records[10]["could_have_url_duplicate"] = -3
    records[11]["url"] = 'https://x.org/a"b\\c/é\u2028'
    records[12].pop("could_have_url_duplicate", None)
    records[12].pop("url", None)
    source = testing.write_jsonl(str(tmp_path / "docs.jsonl"), records)
    for options in ({}, {"image_special_token_insert_pos": "after", "image_dir": "img", "sent_separator": "\n", "add_eoc_at_last": False}):
        builder = Mmc4(cache_dir=str(tmp_path / "cache"), data_files=source, **options)
        shard = builder._plan_file(0, source, source, str(tmp_path))[0]
        constants = {"audios": [], "videos": [], "media_root": "m", "source_file": "s", "source_style": None}
        for number, batch in enumerate(iter_batches(shard.index, shard.first, shard.stop, Document, open, decode=False)):
            fast, positions = builder._compiled_table(batch, ColumnBuffer(builder.info.features, constants))
            assert len(positions) > 0.9 * len(batch.indexes)
            if number == 0:
                assert not {1, 2, 3, 4, 5, 6, 7, 8, 9} & set(positions) and {10, 11, 12} <= set(positions)
            decoded = {k: batch.decode(k) for k in positions}
            slow, kept = builder._careful_table(batch, decoded, positions, ColumnBuffer(builder.info.features, constants), shard,
                                                ErrorPolicy(), random.Random(0))
            assert kept == positions
            assert fast.equals(slow), options
