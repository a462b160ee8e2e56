"""Issue 15, the JSON formats: every malformed file ends in an error whose first line names the
file, record and line, or in rejects that account for every record (kept + rejected = records
in the file), on the fast and the careful path. The files are generated here, from good records
of each format (tests/bad_input_cases.py).

Decisions the matrix pins down:
- a record nested deeper than ``MAX_NESTING`` (128) arrays/objects is a bad record;
- a literal DJ token in source text is a bad record (the way through: load with other tokens,
  ``image_special_token=...``, as in Data-Juicer); in the ``dj`` format the text *is* DJ text;
- duplicate keys: the last value wins, on both paths, as in Python's ``json`` and Data-Juicer;
- a file cut inside a record: that record is a bad one; the records before it load;
- a JSON array followed by other text: the array's records load and the rest of the file is
  one file-level failure (``on_error="skip"``/``"keep"``), or a ``JSONLayoutError`` naming the line.
"""

import json
import logging
import os

import datasets
import pytest

import hf_mmbuilder
from bad_input_cases import BAD, DEEP, RECORDS, SHAPES, Bad, check_bad_records, get, load, put, read_rejects, record_error_of
from hf_mmbuilder.errors import RecordError
from hf_mmbuilder.formats.failures import FileFailure
from hf_mmbuilder.formats.records import MAX_NESTING, JSONLayoutError

PATHS = [pytest.param(True, id="fast"), pytest.param(False, id="careful")]
TOO_DEEP = f"nested deeper than {MAX_NESTING} levels"


@pytest.fixture(params=SHAPES, ids=[shape.id for shape in SHAPES])
def shape(request):
    return request.param


@pytest.fixture(params=PATHS)
def fast(request):
    return request.param


def _bad_raw(shape, record: dict, case: str) -> tuple:
    """The raw bytes of record ``BAD`` turned bad by ``case``, and the reason it must be refused with."""
    text = shape.text_path(record)
    if case == "deep":
        return shape.encode({**record, "zz_nested": "@@DEEP@@"}).replace(b'"@@DEEP@@"', b"[" * DEEP + b"]" * DEEP), TOO_DEEP
    if case == "dj_token":
        return shape.encode(put(record, text, "see <__dj__image> " + get(record, text))), "DJ token '<__dj__image>'"
    if case == "invalid_utf8":
        return shape.encode(put(record, text, "@@BYTES@@" + get(record, text))).replace(b"@@BYTES@@", b"\xff\xfe"), "Invalid UTF-8"
    if case == "nan":
        return shape.encode({**record, "zz_score": "@@NAN@@"}).replace(b'"@@NAN@@"', b"NaN"), "malformed JSON"
    if case == "infinity":
        return shape.encode({**record, "zz_score": "@@INF@@"}).replace(b'"@@INF@@"', b"-Infinity"), "malformed JSON"
    raise AssertionError(case)


RECORD_CASES = ["deep", "dj_token", "invalid_utf8", "nan", "infinity"]


@pytest.mark.parametrize("case", RECORD_CASES)
def test_a_bad_record_is_raised_skipped_or_kept(shape, fast, case, tmp_path):
    records = shape.good()
    raws = [shape.encode(record) for record in records]
    raws[BAD], reason = _bad_raw(shape, records[BAD], case)
    path = shape.write(tmp_path / "source", raws)
    if case == "dj_token" and shape.tokens_are_text:
        ds = load(shape, path, tmp_path / "cache", fast)
        assert len(ds) == RECORDS and "see <__dj__image>" in ds[BAD]["text"]
        return
    # WavCaps re-reads a record of a document that parsed whole from its parsed value.
    reparsed = shape.layout == "document" and case == "dj_token"
    line = None if reparsed else shape.line(BAD)
    raw = None if reparsed else raws[BAD]
    check_bad_records(shape, path, RECORDS, [Bad(BAD, reason, raw, line)], tmp_path, fast)


def test_a_field_of_the_wrong_type_is_a_bad_record(shape, fast, tmp_path):
    records = shape.good()
    raws, bad = [], []
    for k, (field, (wrong, reason)) in enumerate(shape.wrong_types.items()):
        raws.append(shape.encode(put(records[shape.holding(field)], field, wrong)))
        document = shape.layout == "document"
        bad.append(Bad(k, reason, None if document else raws[-1], None if document else shape.line(k)))
    raws.extend(shape.encode(record) for record in records)
    path = shape.write(tmp_path / "source", raws)
    check_bad_records(shape, path, len(raws), bad, tmp_path, fast)


def test_a_file_cut_inside_a_record_rejects_that_record(shape, fast, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    data = shape.file_bytes(raws)
    last = data.rindex(raws[-1])
    cut = last + len(raws[-1]) // 2
    path = str(tmp_path / f"cut{shape.suffix}")
    with open(path, "wb") as handle:
        handle.write(data[:cut])
    if shape.layout == "document":
        # The document never closes: the whole file fails, named, under every mode.
        error = record_error_of(shape, path, tmp_path / "raise", fast)
        assert str(error).splitlines()[0].startswith(f"{path}: ") and "truncated" in str(error)
        skipped = load(shape, path, tmp_path / "skip", fast, on_error="skip", rejects_path=str(tmp_path / "rejects.jsonl"))
        entries = read_rejects(tmp_path / "rejects.jsonl")
        assert len(skipped) == 0 and len(entries) == 1 and "truncated" in entries[0]["reason"]
        return
    check_bad_records(shape, path, RECORDS, [Bad(RECORDS - 1, "truncated", data[last:cut], shape.line(RECORDS - 1))], tmp_path, fast)


EMPTY_FILES = {"empty": b"", "blanks": b"  \n\t\n\n", "no_records": None}


@pytest.mark.parametrize("kind", EMPTY_FILES)
def test_a_file_with_no_records_is_named(shape, fast, kind, tmp_path, caplog):
    path = str(tmp_path / f"nothing{shape.suffix}")
    with open(path, "wb") as handle:
        handle.write(EMPTY_FILES[kind] if EMPTY_FILES[kind] is not None else shape.empty_file())
    error = record_error_of(shape, path, tmp_path / "raise", fast)
    assert str(error) == f"{path}: the file holds no records"
    good = shape.write(tmp_path / "good", [shape.encode(record) for record in shape.good()])
    for mode in ("skip", "keep"):
        with caplog.at_level(logging.WARNING, logger="hf_mmbuilder"):
            caplog.clear()
            both = load(shape, [path, good], tmp_path / f"both-{mode}", fast, on_error=mode, rejects_path=str(tmp_path / "rejects.jsonl"))
        assert len(both) == RECORDS and set(both["source_file"]) == {good}
        assert [record.getMessage() for record in caplog.records] == [f"{path}: the file holds no records"]
        alone = load(shape, path, tmp_path / f"alone-{mode}", fast, on_error=mode, rejects_path=str(tmp_path / "rejects.jsonl"))
        assert len(alone) == 0 and alone.features == both.features
    assert read_rejects(tmp_path / "rejects.jsonl") == []


CSV_EMPTY = {"youku": "video_id:FILE,title\n", "msrvtt": "key,vid_key,video_id,sentence\n"}


@pytest.mark.parametrize("format_name", sorted(CSV_EMPTY))
@pytest.mark.parametrize("header", [True, False], ids=["header_only", "empty"])
def test_a_csv_file_with_no_rows_is_named(format_name, header, tmp_path):
    path = str(tmp_path / "nothing.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(CSV_EMPTY[format_name] if header else "")
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load(format_name, path, split="train", cache_dir=str(tmp_path / "raise"))
    assert str(raised.value) == f"{path}: the file holds no records"
    skipped = hf_mmbuilder.load(format_name, path, split="train", cache_dir=str(tmp_path / "skip"), on_error="skip")
    assert len(skipped) == 0 and "text" in skipped.features


CSV_TOKEN = {
    "youku": ["video_id:FILE,title", "v0.mp4,a dog runs", "v1.mp4,see <__dj__image> here", "v2.mp4,a cat sits"],
    "msrvtt": ["key,vid_key,video_id,sentence", "k0,v0,video0,a dog runs", "k1,v1,video1,see <__dj__image> here", "k2,v2,video2,a cat sits"],
}


@pytest.mark.parametrize("format_name", sorted(CSV_TOKEN))
def test_a_dj_token_in_a_csv_caption_is_a_bad_record(format_name, fast, tmp_path):
    path = str(tmp_path / "captions.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(CSV_TOKEN[format_name]) + "\n")
    with pytest.raises(RecordError) as raised:
        hf_mmbuilder.load(format_name, path, split="train", cache_dir=str(tmp_path / "raise"), fast_path=fast)
    assert str(raised.value).startswith(f"{path}: record 1 (line 3): the caption holds the literal DJ token '<__dj__image>'")
    rejects_path = tmp_path / "rejects.jsonl"
    skipped = hf_mmbuilder.load(format_name, path, split="train", cache_dir=str(tmp_path / "skip"), fast_path=fast,
                                on_error="skip", rejects_path=str(rejects_path))
    entries = read_rejects(rejects_path)
    assert len(skipped) == 2 and [(entry["record"], entry["line"]) for entry in entries] == [(1, 3)]
    # The way through: other tokens, as Data-Juicer's converters take them.
    custom = hf_mmbuilder.load(format_name, path, split="train", cache_dir=str(tmp_path / "custom"), fast_path=fast,
                               image_special_token="<img>")
    assert len(custom) == 3 and "see <__dj__image> here" in custom[1]["text"]


@pytest.mark.parametrize("newline", [b"\r\n"], ids=["crlf"])
def test_crlf_line_ends_give_the_lf_rows(shape, fast, newline, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    unix = load(shape, shape.write(tmp_path / "lf", raws), tmp_path / "lf-cache", fast)
    windows = load(shape, shape.write(tmp_path / "crlf", raws, newline=newline), tmp_path / "crlf-cache", fast)
    # Where they came from, and how the file was written (line ends, kept for a byte-exact export), differ.
    drop = [column for column in ("source_file", "media_root", "source_style") if column in unix.column_names]
    assert windows.remove_columns(drop).data.table.equals(unix.remove_columns(drop).data.table) and len(windows) == RECORDS


def test_a_byte_order_mark_is_accepted(shape, fast, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    plain = shape.write(tmp_path / "plain", raws)
    marked = str(tmp_path / f"marked{shape.suffix}")
    with open(plain, "rb") as source, open(marked, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + source.read())
    with_bom = load(shape, marked, tmp_path / "bom", fast)
    drop = [column for column in ("source_file", "media_root", "source_style") if column in with_bom.column_names]
    assert len(with_bom) == RECORDS
    assert with_bom.remove_columns(drop).data.table.equals(load(shape, plain, tmp_path / "plain-cache", fast).remove_columns(drop).data.table)


def test_duplicate_keys_keep_the_last_value(shape, fast, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    raws[BAD] = raws[BAD][:-1] + b',"zz_dup":"first","zz_dup":"last"}'
    ds = load(shape, shape.write(tmp_path / "source", raws), tmp_path / "cache", fast)
    assert len(ds) == RECORDS and ds[BAD]["extra"]["zz_dup"] == "last"


@pytest.mark.slow  # 3 to 11 s each on the shared 2-core machine
def test_a_50_mb_string_loads_whole(shape, fast, tmp_path):
    records = shape.good()
    text = shape.text_path(records[BAD])
    long_text = "a" * (50 << 20)
    raws = [shape.encode(record) for record in records]
    raws[BAD] = shape.encode(put(records[BAD], text, long_text + get(records[BAD], text)))
    ds = load(shape, shape.write(tmp_path / "source", raws), tmp_path / "cache", fast)
    assert len(ds) == RECORDS and long_text in ds[BAD]["text"]


LAYOUT_SHAPES = [shape for shape in SHAPES if shape.layout != "document"]


@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=[shape.id for shape in LAYOUT_SHAPES])
def test_an_array_followed_by_json_lines_keeps_the_array(shape, fast, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    path = str(tmp_path / f"mixed{shape.suffix}")
    with open(path, "wb") as handle:
        handle.write(b"[" + b",".join(raws[:2]) + b"]\n" + b"\n".join(raws[2:]) + b"\n")
    with pytest.raises(JSONLayoutError) as raised:
        load(shape, path, tmp_path / "raise", fast)
    assert str(raised.value).startswith(f"{path}: line 2: text outside the top-level array")
    skipped = load(shape, path, tmp_path / "skip", fast, on_error="skip", rejects_path=str(tmp_path / "rejects.jsonl"))
    entries = read_rejects(tmp_path / "rejects.jsonl")
    assert len(skipped) == 2 and [(entry["record"], entry["line"], entry["unreachable"]) for entry in entries] == [(None, 2, None)]
    assert entries[0]["reason"].startswith("file unreadable: the rest of the file: text outside the top-level array")
    kept = load(shape, path, tmp_path / "keep", fast, on_error="keep")
    assert len(kept) == 2


@pytest.mark.parametrize("shape", LAYOUT_SHAPES, ids=[shape.id for shape in LAYOUT_SHAPES])
def test_json_lines_followed_by_an_array_reject_the_array_line(shape, fast, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    path = str(tmp_path / "mixed.jsonl")
    array = b"[" + b",".join(raws[2:]) + b"]"
    with open(path, "wb") as handle:
        handle.write(b"\n".join(raws[:2]) + b"\n" + array + b"\n")
    check_bad_records(shape, path, 3, [Bad(2, shape.not_an_object, array, 3)], tmp_path, fast)


def test_a_folder_loads_its_files(shape, tmp_path):
    raws = [shape.encode(record) for record in shape.good()]
    first = shape.write(tmp_path / "folder", raws, name="a")
    second = shape.write(tmp_path / "folder" / "nested", raws, name="b")
    ds = hf_mmbuilder.load(shape.format_name, str(tmp_path / "folder"), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2 * RECORDS and sorted(set(ds["source_file"])) == sorted([first, second])


def test_a_folder_loads_through_datasets_as_data_dir(tmp_path):
    # datasets resolves data_files before any builder runs and refuses a folder there; its
    # data_dir reaches the same files, recursively.
    shape = SHAPES[0]
    raws = [shape.encode(record) for record in shape.good()]
    first = shape.write(tmp_path / "folder", raws, name="a")
    second = shape.write(tmp_path / "folder" / "nested", raws, name="b")
    ds = datasets.load_dataset(f"hf_mmbuilder/{shape.format_name}", data_dir=str(tmp_path / "folder"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2 * RECORDS and sorted(set(ds["source_file"])) == sorted([first, second])


def test_a_fifo_is_refused_by_name(shape, tmp_path):
    path = str(tmp_path / f"pipe{shape.suffix}")
    os.mkfifo(path)
    with pytest.raises(FileFailure) as raised:
        hf_mmbuilder.load(shape.format_name, path, split="train", cache_dir=str(tmp_path / "cache"))
    assert str(raised.value) == f"{path}: file unreadable: a FIFO, not a regular file (copy its data to a file); records unreachable: unknown"


@pytest.mark.parametrize("num_proc", [None, 2])
def test_the_top_line_of_load_dataset_names_the_file_and_record(num_proc, tmp_path):
    shape = SHAPES[0]
    records = shape.good()
    raws = [shape.encode(record) for record in records]
    raws[BAD], _ = _bad_raw(shape, records[BAD], "invalid_utf8")
    path = shape.write(tmp_path / "source", raws)
    with pytest.raises(RecordError) as raised:
        datasets.load_dataset("hf_mmbuilder/llava", data_files=path, split="train", cache_dir=str(tmp_path / "cache"),
                              num_proc=num_proc, shard_bytes=256)
    assert str(raised.value).splitlines()[0] == f"{path}: record {BAD} (line {BAD + 1}): malformed JSON: Invalid UTF-8 encoded string"


def test_streaming_raises_the_record_error_itself(tmp_path):
    shape = SHAPES[0]
    records = shape.good()
    raws = [shape.encode(record) for record in records]
    raws[BAD], _ = _bad_raw(shape, records[BAD], "invalid_utf8")
    path = shape.write(tmp_path / "source", raws)
    with pytest.raises(RecordError) as raised:
        list(hf_mmbuilder.load("llava", path, split="train", streaming=True))
    assert str(raised.value) == f"{path}: record {BAD} (line {BAD + 1}): malformed JSON: Invalid UTF-8 encoded string"
