"""Every format, through the same checks (issue 14): both load doors, streaming, ``num_proc``,
a lossless round trip, the careful path (``fast_path=False``) giving the same table and bytes, a
trip through the DJ format and back, and media-token alignment.

The suite is parametrised over the formats that must exist, and checks that they are exactly
``available_formats()``: a format that goes missing fails here, it is never skipped.
"""

import json
import os
import re

import datasets
import pytest

import hf_mmbuilder
from format_samples import ALL, SAMPLES, corrupt
from hf_mmbuilder.errors import KEPT_RAW_KEY, RecordError

EXPECTED = {"dj", "internvid", "llava", "mmc4", "msrvtt", "oasis", "sharegpt", "video_chatgpt", "wavcaps", "youku"}


def test_the_formats_are_exactly_the_expected_ones():
    assert set(hf_mmbuilder.available_formats()) == EXPECTED


def test_every_format_has_a_sample():
    assert set(SAMPLES) == EXPECTED and all(SAMPLES[name] for name in EXPECTED)


@pytest.fixture(params=ALL, ids=[sample.id for sample in ALL])
def sample(request):
    return request.param


@pytest.fixture
def source(sample, tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    return sample.write(folder)


def _load(sample, source, cache, **options):
    return hf_mmbuilder.load(sample.format_name, source, split="train", cache_dir=str(cache), **sample.options, **options)


def _export(sample, dataset, path, **options):
    hf_mmbuilder.export(dataset, sample.format_name, str(path), **sample.options, **options)
    return path


def test_both_doors_give_the_same_rows(sample, source, tmp_path):
    public = _load(sample, source, tmp_path / "public")
    registered = datasets.load_dataset(f"hf_mmbuilder/{sample.format_name}", data_files=source, split="train",
                                       cache_dir=str(tmp_path / "registered"), **sample.options)
    assert len(public) > 0
    assert registered.data.table.equals(public.data.table)


def test_streaming_gives_the_built_rows(sample, source, tmp_path):
    built = _load(sample, source, tmp_path / "built")
    streamed = hf_mmbuilder.load(sample.format_name, source, split="train", streaming=True, **sample.options)
    assert list(streamed) == list(built)


def test_num_proc_gives_the_single_process_rows(sample, source, tmp_path):
    single = _load(sample, source, tmp_path / "single")
    parallel = _load(sample, source, tmp_path / "parallel", num_proc=2, shard_bytes=4096)
    assert list(parallel) == list(single)


def test_export_gives_back_the_source(sample, source, tmp_path):
    dataset = _load(sample, source, tmp_path / "cache")
    out = _export(sample, dataset, tmp_path / ("out" + os.path.splitext(source)[1]))
    assert sample.read(out) == sample.read(source)
    assert hf_mmbuilder.validate_alignment(dataset) == []


def test_the_careful_path_gives_the_same_table_and_bytes(sample, source, tmp_path):
    fast = _load(sample, source, tmp_path / "fast")
    careful = _load(sample, source, tmp_path / "careful", fast_path=False)
    assert careful.data.table.equals(fast.data.table)
    suffix = os.path.splitext(source)[1]
    fast_out = _export(sample, fast, tmp_path / f"fast{suffix}")
    careful_out = _export(sample, fast, tmp_path / f"careful{suffix}", fast_path=False)
    assert careful_out.read_bytes() == fast_out.read_bytes()


def test_a_trip_through_the_dj_format_comes_back_unchanged(sample, source, tmp_path):
    dataset = _load(sample, source, tmp_path / "cache")
    middle = tmp_path / "middle.dj.jsonl"
    hf_mmbuilder.export(dataset, "dj", str(middle))
    promoted = hf_mmbuilder.load("dj", str(middle), split="train", cache_dir=str(tmp_path / "dj"))
    back = _export(sample, promoted, tmp_path / ("back" + os.path.splitext(source)[1]))
    assert sample.read(back) == sample.read(source)


BAD = 7


@pytest.mark.parametrize("sample", [sample for sample in ALL if sample.corruptible], ids=lambda sample: sample.id)
def test_a_bad_record_is_raised_skipped_or_kept(sample, tmp_path):
    folder = tmp_path / "source"
    folder.mkdir()
    source = sample.write(folder)
    good = _load(sample, source, tmp_path / "good")
    corrupt(source, BAD)
    with pytest.raises(RecordError) as raised:
        _load(sample, source, tmp_path / "raise")
    assert raised.value.record == BAD and os.path.basename(source) in str(raised.value)
    skipped = _load(sample, source, tmp_path / "skip", on_error="skip", rejects_path=str(tmp_path / "rejects.jsonl"))
    assert len(skipped) == len(good) - 1
    rejects = [json.loads(line) for line in open(tmp_path / "rejects.jsonl", encoding="utf-8")]
    assert [reject["record"] for reject in rejects] == [BAD] and rejects[0]["reason"]
    kept = _load(sample, source, tmp_path / "keep", on_error="keep")
    rows = list(kept)
    assert len(rows) == len(good) and rows[BAD]["record_errors"] and KEPT_RAW_KEY in rows[BAD]["extra"]
    assert sum(1 for row in rows if row["record_errors"]) == 1
    out = tmp_path / ("out" + os.path.splitext(source)[1])
    written = _export(sample, kept, out, on_error="skip")
    assert written.exists()
    exported = [json.loads(line) for line in open(f"{out}.rejects.jsonl", encoding="utf-8")]
    assert [reject["record"] for reject in exported] == [BAD] and "kept with load errors" in exported[0]["reason"]


# Media tokens, eoc tokens and role markers: an edit of the words must leave them alone.
MARKUP = re.compile(r"(<[^>]*>|\[\[[^\]]*\]\]:?)")


def _replace_words(text: str, word: str) -> str:
    parts = MARKUP.split(text)
    return "".join(part if k % 2 else part.replace(word, word.upper() + "Q") for k, part in enumerate(parts))


def test_an_edit_of_the_text_survives_export(sample, source, tmp_path):
    dataset = _load(sample, source, tmp_path / "cache")
    words = (re.findall(r"[a-z]{4,}", MARKUP.sub(" ", text)) for text in dataset["text"])
    word = max(next(found for found in words if found), key=len)
    edited = dataset.map(lambda row: {"text": _replace_words(row["text"], word)})
    assert edited["text"] != dataset["text"]
    out = _export(sample, edited, tmp_path / ("out" + os.path.splitext(source)[1]))
    again = hf_mmbuilder.load(sample.format_name, str(out), split="train", cache_dir=str(tmp_path / "again"), **sample.options)
    assert again["text"] == edited["text"]
