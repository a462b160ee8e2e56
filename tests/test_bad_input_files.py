"""Adversarial files (issue 15, part B): CSV formats, MMC4 archives, DJ Parquet, interrupted export.

Every input is generated here. Every case asserts the exact outcome: the error type and its first
line, or the exact rows kept and the rejects (kept + rejected = records in the file; each reject
holds the record's raw text and reason; a file-level failure says so, with the records it made
unreachable). Formats with a fast and a careful path run both.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import datasets
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError
from hf_mmbuilder.formats.exporter import stale_temporaries
from hf_mmbuilder.formats.failures import FileFailure

PATHS = [pytest.param(True, id="fast"), pytest.param(False, id="careful")]

# The CSV formats (the loading scripts reading through hf_mmbuilder.formats.csvfiles): header, the
# data row of number i, and the caption that row's text holds.
CSV_FORMATS = {
    "youku": ("video_id:FILE,title", lambda i: f"v/{i}.mp4,title {i}", lambda i: f"title {i}"),
    "msrvtt": ("video_id,sentence", lambda i: f"video{i},caption {i}", lambda i: f"caption {i}"),
}


def first_line(error: BaseException) -> str:
    return str(error).splitlines()[0]


def read_rejects(path) -> list:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load(format_name, files, tmp_path, **options):
    return hf_mmbuilder.load(format_name, files, split="train", cache_dir=str(tmp_path / "cache"), **options)


def load_error(format_name, files, tmp_path, **options) -> BaseException:
    with pytest.raises(RecordError) as caught:
        load(format_name, files, tmp_path, **options)
    return caught.value


def skipped(format_name, files, tmp_path, **options):
    """The rows loaded with on_error="skip" and the rejects file's entries."""
    rejects_path = tmp_path / "rejects.jsonl"
    ds = load(format_name, files, tmp_path, on_error="skip", rejects_path=str(rejects_path), **options)
    return ds, read_rejects(rejects_path) if rejects_path.exists() else []


def csv_file(path, format_name, count, *, replace=None, newline=b"\n", tail=b"") -> str:
    """A CSV file of ``count`` data rows; ``replace``: {row number: the row's bytes instead}."""
    header, row, _ = CSV_FORMATS[format_name]
    replace = replace or {}
    lines = [header.encode()] + [replace.get(i, row(i).encode()) for i in range(count)]
    path.write_bytes(newline.join(lines) + newline + tail)
    return str(path)


def captions(ds, format_name) -> list:
    # The caption between the video token and the end-of-chunk token.
    return [text.split("<__dj__video>", 1)[1].rsplit("<|__dj__eoc|>", 1)[0].strip() for text in ds["text"]]


# -- CSV: class 5, an invalid byte in row 21,000 of 25,000 --------------------------------------


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_invalid_byte_spoils_only_its_row(tmp_path, format_name, fast_path):
    _, row, caption = CSV_FORMATS[format_name]
    bad_row = row(20_999).encode().replace(b" 20999", b" \xff20999")
    path = csv_file(tmp_path / "in.csv", format_name, 25_000, replace={20_999: bad_row})
    escaped = row(20_999).replace(" 20999", " \\xff20999")
    cell = escaped.split(",")[1]

    error = load_error(format_name, path, tmp_path, fast_path=fast_path)
    assert first_line(error) == f"{path}: record 20999 (line 21001): invalid UTF-8 byte 0xff in column 2 ({cell})"

    ds, rejects = skipped(format_name, path, tmp_path, fast_path=fast_path)
    assert len(ds) == 24_999 and len(rejects) == 1
    assert captions(ds.select([20_998, 20_999, 24_998]), format_name) == [caption(20_998), caption(21_000), caption(24_999)]
    assert rejects[0] == {
        "file": path, "record": 20999, "line": 21001, "byte": None,
        "reason": f"invalid UTF-8 byte 0xff in column 2 ({cell})", "raw": escaped,
    }

    kept = load(format_name, path, tmp_path, fast_path=fast_path, on_error="keep")
    assert len(kept) == 25_000
    assert [k for k, errors in enumerate(kept["record_errors"]) if errors] == [20_999]


# -- CSV: class 6, an unterminated quote ---------------------------------------------------------


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_unterminated_quote_is_one_reject_naming_its_line(tmp_path, format_name, fast_path):
    _, row, caption = CSV_FORMATS[format_name]
    media, text = row(100).split(",")
    path = csv_file(tmp_path / "in.csv", format_name, 300, replace={100: f'{media},"{text}'.encode()})
    reason = "unterminated quoted field: the quote opened on line 102 is never closed (the file ends on line 301)"

    error = load_error(format_name, path, tmp_path, fast_path=fast_path)
    assert first_line(error) == f"{path}: record 100 (line 102): {reason}"

    ds, rejects = skipped(format_name, path, tmp_path, fast_path=fast_path)
    assert len(ds) == 100 and captions(ds.select([99]), format_name) == [caption(99)]
    assert [(r["record"], r["line"], r["reason"]) for r in rejects] == [(100, 102, reason)]
    assert rejects[0]["raw"] == f'{media},"{text}\n' + "\n".join(row(i) for i in range(101, 300))


@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_quote_opened_on_a_later_line_of_its_row(tmp_path, format_name):
    # The row starts on line 12 with a closed multi-line field; the unclosed quote opens on line 13.
    _, row, _ = CSV_FORMATS[format_name]
    media, _ = row(10).split(",")
    path = csv_file(tmp_path / "in.csv", format_name, 20, replace={10: f'"{media[:2]}\n{media[2:]}","never closed'.encode()})
    error = load_error(format_name, path, tmp_path)
    assert first_line(error) == (
        f"{path}: record 10 (line 12): unterminated quoted field: the quote opened on line 13 is never closed (the file ends on line 22)"
    )


# -- CSV: truncation, wrong shapes, malformed quoting ----------------------------------------------


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_truncated_mid_character_and_mid_row(tmp_path, format_name, fast_path):
    _, row, _ = CSV_FORMATS[format_name]
    # Cut inside the two bytes of "é": the last row ends in a lone 0xc3.
    cut_char = csv_file(tmp_path / "char.csv", format_name, 50, tail=row(50).encode() + b" caf\xc3")
    ds, rejects = skipped(format_name, cut_char, tmp_path, fast_path=fast_path)
    assert len(ds) == 50
    cell = row(50).split(",")[1] + " caf\\xc3"
    assert [(r["record"], r["line"], r["reason"], r["raw"]) for r in rejects] == [
        (50, 52, f"invalid UTF-8 byte 0xc3 in column 2 ({cell})", row(50) + " caf\\xc3")
    ]
    # Cut before the first comma: a row of one cell.
    cut_row = csv_file(tmp_path / "row.csv", format_name, 50, tail=row(50).split(",")[0][:4].encode())
    error = load_error(format_name, cut_row, tmp_path, fast_path=fast_path)
    assert first_line(error) == f"{cut_row}: record 50 (line 52): row has 1 cell(s), the header has 2"


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_wrong_shapes_each_rejected_with_reason(tmp_path, format_name, fast_path):
    _, row, caption = CSV_FORMATS[format_name]
    media_column = CSV_FORMATS[format_name][0].split(",")[0]
    replace = {
        3: row(3).encode() + b",extra cell",
        5: row(5).split(",")[0].encode(),
        7: b"," + row(7).split(",")[1].encode(),
        9: b'"' + row(9).split(",")[0].encode() + b'"x,' + row(9).split(",")[1].encode(),
        11: b"",
    }
    path = csv_file(tmp_path / "in.csv", format_name, 15, replace=replace)
    ds, rejects = skipped(format_name, path, tmp_path, fast_path=fast_path)
    assert captions(ds, format_name) == [caption(i) for i in range(15) if i not in replace]
    assert [(r["record"], r["line"], r["reason"]) for r in rejects] == [
        (3, 5, "row has 3 cell(s), the header has 2"),
        (5, 7, "row has 1 cell(s), the header has 2"),
        (7, 9, f"empty {media_column!r} cell"),
        (9, 11, "malformed CSV row: ',' expected after '\"'"),
        (11, 13, "row has 0 cell(s), the header has 2"),
    ]
    assert [r["raw"] for r in rejects] == [replace[k].decode() for k in (3, 5, 7, 9, 11)]
    assert len(ds) + len(rejects) == 15


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_crlf_lines_and_quoted_line_breaks(tmp_path, format_name, fast_path):
    _, row, caption = CSV_FORMATS[format_name]
    media = row(4).split(",")[0]
    path = csv_file(tmp_path / "in.csv", format_name, 8, newline=b"\r\n", replace={4: f'{media},"two\r\nlines, one ""cell"""'.encode()})
    ds = load(format_name, path, tmp_path, fast_path=fast_path)
    assert captions(ds, format_name) == [caption(i) for i in range(4)] + ['two\r\nlines, one "cell"'] + [caption(i) for i in range(5, 8)]


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_50_mb_field_loads(tmp_path, format_name, fast_path):
    _, row, caption = CSV_FORMATS[format_name]
    big = "ab" * (25 << 20)
    path = csv_file(tmp_path / "in.csv", format_name, 3, replace={1: f"{row(1).split(',')[0]},{big}".encode()})
    ds = load(format_name, path, tmp_path, fast_path=fast_path)
    assert [len(text) for text in captions(ds, format_name)] == [len(caption(0)), 50 << 20, len(caption(2))]


@pytest.mark.parametrize("format_name", sorted(CSV_FORMATS))
def test_csv_undecodable_header_fails_the_file(tmp_path, format_name, caplog):
    header = CSV_FORMATS[format_name][0]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(header.encode().replace(b",", b",\xff") + b"\n" + CSV_FORMATS[format_name][1](0).encode() + b"\n")
    good = csv_file(tmp_path / "good.csv", format_name, 4)
    cell = "\\xff" + header.split(",")[1]
    reason = f"file unreadable: CSV header: invalid UTF-8 byte 0xff in column 2 ({cell}); records unreachable: unknown"
    error = load_error(format_name, str(bad), tmp_path)
    assert isinstance(error, FileFailure) and first_line(error) == f"{bad} (line 1): {reason}"
    ds, rejects = skipped(format_name, [str(bad), good], tmp_path)
    assert len(ds) == 4
    assert rejects == [{"file": str(bad), "record": None, "line": 1, "byte": None, "reason": reason, "raw": None, "unreachable": None}]
    assert f"{bad} (line 1): {reason}" in caplog.text and "skipped 1 malformed" not in caplog.text


# -- special files as input --------------------------------------------------------------------


@pytest.mark.parametrize("format_name, name", [("youku", "pipe.csv"), ("msrvtt", "pipe.csv"), ("mmc4", "pipe.jsonl"), ("dj", "pipe.parquet")])
def test_fifo_input_is_refused_not_read(tmp_path, format_name, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    for on_error in ("raise", "skip"):
        error = load_error(format_name, str(fifo), tmp_path, on_error=on_error)
        assert first_line(error) == f"{fifo}: file unreadable: a FIFO, not a regular file (copy its data to a file); records unreachable: unknown"


# -- MMC4: archives (class 7), truncation, wrong types, odd documents ----------------------------


def mmc4_documents(count: int, seed: int = 3) -> list:
    return list(testing.mmc4_records(count, seed=seed))


def jsonl_bytes(records, newline=b"\n") -> bytes:
    return b"".join(orjson.dumps(record) + newline for record in records)


def write_zip(path, members: dict) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("damage", ["not_a_zip", "truncated"])
def test_mmc4_archive_that_cannot_be_opened(tmp_path, damage, fast_path, caplog):
    good = write_zip(tmp_path / "docs_shard_0_v3.jsonl.zip", {"docs.jsonl": jsonl_bytes(mmc4_documents(40))})
    bad = tmp_path / "docs_shard_1_v3.jsonl.zip"
    if damage == "not_a_zip":
        bad.write_bytes(jsonl_bytes(mmc4_documents(5)))
    else:
        data = open(write_zip(bad, {"docs.jsonl": jsonl_bytes(mmc4_documents(40, seed=4))}), "rb").read()
        bad.write_bytes(data[: len(data) // 2])
    reason = f"file unreadable: cannot read {bad} (BadZipFile: File is not a zip file); records unreachable: unknown"
    error = load_error("mmc4", str(bad), tmp_path, fast_path=fast_path)
    assert isinstance(error, FileFailure) and first_line(error) == f"{bad}: {reason}"
    ds, rejects = skipped("mmc4", [good, str(bad)], tmp_path, fast_path=fast_path)
    assert len(ds) == 40 and set(ds["source_file"]) == {good}
    assert rejects == [{"file": str(bad), "record": None, "line": None, "byte": None, "reason": reason, "raw": None, "unreachable": None}]
    assert f"{bad}: {reason}" in caplog.text and "skipped 1 malformed" not in caplog.text


@pytest.mark.parametrize("fast_path", PATHS)
def test_mmc4_damaged_member_fails_as_a_file(tmp_path, fast_path):
    archive = write_zip(tmp_path / "docs.zip", {"good.jsonl": jsonl_bytes(mmc4_documents(30)), "bad.jsonl": jsonl_bytes(mmc4_documents(30, seed=5))})
    data = bytearray(open(archive, "rb").read())
    start = data.index(b"bad.jsonl") + len(b"bad.jsonl") + 8
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    open(archive, "wb").write(bytes(data))
    error = load_error("mmc4", archive, tmp_path, fast_path=fast_path)
    assert isinstance(error, FileFailure)
    assert first_line(error).startswith(f"{archive}: file unreadable: cannot read bad.jsonl in {archive} (")
    ds, rejects = skipped("mmc4", archive, tmp_path, fast_path=fast_path)
    assert len(ds) == 30 and len(rejects) == 1 and rejects[0]["record"] is None and rejects[0]["unreachable"] is None
    assert rejects[0]["reason"].startswith(f"file unreadable: cannot read bad.jsonl in {archive} (")


@pytest.mark.parametrize("fast_path", PATHS)
def test_mmc4_wrong_types_and_truncated_last_line(tmp_path, fast_path):
    documents = mmc4_documents(30)
    documents[10] = {**documents[10], "image_info": [{"image_name": "a.jpg", "matched_text_index": "0"}], "similarity_matrix": [[0.1] * len(documents[10]["text_list"])]}
    documents[20] = {**documents[20], "text_list": ["a sentence", 7]}
    data = jsonl_bytes(documents)
    last = orjson.dumps(documents[29])
    path = tmp_path / "docs.jsonl"
    path.write_bytes(data[: data.index(last) + 40])
    error = load_error("mmc4", str(path), tmp_path, fast_path=fast_path)
    assert first_line(error) == f"{path}: record 10 (line 11): image_info[0].matched_text_index must be an integer, got '0'"
    ds, rejects = skipped("mmc4", str(path), tmp_path, fast_path=fast_path)
    assert len(ds) == 27 and len(ds) + len(rejects) == 30
    assert [(r["record"], r["line"], r["reason"]) for r in rejects] == [
        (10, 11, "image_info[0].matched_text_index must be an integer, got '0'"),
        (20, 21, "'text_list' must be a list of strings, got ['a sentence', 7]"),
        (29, 30, "malformed JSON: Input data was truncated"),
    ]
    assert [r["raw"] for r in rejects] == [orjson.dumps(documents[10]).decode(), orjson.dumps(documents[20]).decode(), last[:40].decode()]


def test_mmc4_odd_documents_fast_equals_careful(tmp_path):
    # One odd document of each kind among clean ones in one batch: the compiled path finds them by
    # halving and filters what it parsed; its rows must be the careful path's, in order.
    documents = mmc4_documents(400)
    documents[37] = {**documents[37], "image_info": [{"image_name": "a.jpg", "matched_text_index": "0"}]}
    documents[150] = {**documents[150], "text_list": [*documents[150]["text_list"], 7]}
    documents[151] = {**documents[151], "odd_key": [1, 2]}
    documents[299] = {**documents[299], "text_list": [*documents[299]["text_list"], "a <__dj__image> token"]}
    path = tmp_path / "docs.jsonl"
    path.write_bytes(jsonl_bytes(documents, newline=b"\r\n"))
    fast, fast_rejects = skipped("mmc4", str(path), tmp_path)
    careful = load("mmc4", str(path), tmp_path, fast_path=False, on_error="skip", rejects_path=str(tmp_path / "careful.jsonl"))
    assert len(fast) == 397 and [r["record"] for r in fast_rejects] == [37, 150, 299]
    assert fast.to_list() == careful.to_list()
    # Document 151 follows the two rejected before it.
    assert fast[149]["text_list"] == documents[151]["text_list"] and fast[149]["extra"] == {"odd_key": [1, 2]}


@pytest.mark.parametrize("fast_path", PATHS)
def test_mmc4_50_mb_sentence_loads(tmp_path, fast_path):
    document = {"text_list": ["short", "xy" * (25 << 20)], "image_info": [{"image_name": "a.jpg", "matched_text_index": 1}], "similarity_matrix": [[0.1, 0.2]]}
    path = tmp_path / "docs.jsonl"
    path.write_bytes(jsonl_bytes([document, mmc4_documents(1)[0]]))
    ds = load("mmc4", str(path), tmp_path, fast_path=fast_path)
    assert len(ds) == 2 and [len(s) for s in ds[0]["text_list"]] == [5, 50 << 20]


# -- DJ Parquet: class 8 and 9 -------------------------------------------------------------------


def dj_parquet(path, count: int, row_group_size: int = 2000) -> str:
    table = pa.table({"text": [f"<__dj__image> row {i}" for i in range(count)], "images": [[f"img/{i}.png"] for i in range(count)]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


@pytest.mark.parametrize("damage", ["not_parquet", "truncated"])
def test_dj_parquet_that_cannot_be_opened(tmp_path, damage, caplog):
    good = dj_parquet(tmp_path / "good.parquet", 100)
    bad = tmp_path / "bad.parquet"
    if damage == "not_parquet":
        bad.write_text('{"text": "json, not parquet"}\n', encoding="utf-8")
    else:
        data = open(dj_parquet(bad, 5000), "rb").read()
        bad.write_bytes(data[: len(data) // 2])
    reason = (
        "file unreadable: not a readable Parquet file (ArrowInvalid: Parquet magic bytes not found in footer. Either the file is "
        "corrupted or this is not a parquet file.); records unreachable: unknown"
    )
    error = load_error("dj", str(bad), tmp_path)
    assert isinstance(error, FileFailure) and first_line(error) == f"{bad}: {reason}"
    ds, rejects = skipped("dj", [str(bad), good], tmp_path)
    assert len(ds) == 100 and set(ds["source_file"]) == {good}
    assert rejects == [{"file": str(bad), "record": None, "line": None, "byte": None, "reason": reason, "raw": None, "unreachable": None}]
    assert f"{bad}: {reason}" in caplog.text


def test_dj_archives_that_cannot_be_read(tmp_path):
    good = dj_parquet(tmp_path / "good.parquet", 10)
    not_zip = tmp_path / "rows.zip"
    not_zip.write_bytes(b'{"text": "a"}\n')
    reason = f"file unreadable: cannot read {not_zip} (BadZipFile: File is not a zip file); records unreachable: unknown"
    error = load_error("dj", str(not_zip), tmp_path)
    assert isinstance(error, FileFailure) and first_line(error) == f"{not_zip}: {reason}"
    archive = write_zip(tmp_path / "rows_in.zip", {"rows.jsonl": b"".join(b'{"text": "row %d"}\n' % i for i in range(2000))})
    data = bytearray(open(archive, "rb").read())
    start = data.index(b"rows.jsonl") + len(b"rows.jsonl") + 8
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    open(archive, "wb").write(bytes(data))
    ds, rejects = skipped("dj", [str(not_zip), archive, good], tmp_path)
    assert len(ds) == 10 and set(ds["source_file"]) == {good}
    assert [r["reason"].split(" (")[0] for r in rejects] == [f"file unreadable: cannot read {not_zip}", f"file unreadable: cannot read rows.jsonl in {archive}"]
    assert [(r["record"], r["unreachable"]) for r in rejects] == [(None, None), (None, None)]


def test_dj_parquet_corrupt_row_group_loses_only_its_records(tmp_path):
    path = dj_parquet(tmp_path / "corrupt.parquet", 10_000)
    offset = pq.ParquetFile(path).metadata.row_group(2).column(0).data_page_offset
    data = bytearray(open(path, "rb").read())
    data[offset : offset + 200] = bytes(200)
    open(path, "wb").write(bytes(data))
    error = load_error("dj", path, tmp_path)
    assert isinstance(error, FileFailure) and error.unreachable == 2000
    assert first_line(error).startswith(f"{path}: file unreadable: Parquet row group 2 of 5 (records 4000-5999) cannot be read (OSError: ")
    assert first_line(error).endswith("; 2000 record(s) unreachable")
    ds, rejects = skipped("dj", path, tmp_path)
    assert len(ds) == 8000 and ds[3999]["text"] == "<__dj__image> row 3999" and ds[4000]["text"] == "<__dj__image> row 6000"
    assert len(rejects) == 1 and rejects[0]["unreachable"] == 2000 and rejects[0]["record"] is None
    assert len(ds) + rejects[0]["unreachable"] == 10_000


def test_dj_parquet_wrong_types_and_50_mb_text(tmp_path):
    # Parquet types a whole column: every row of this file has an integer text.
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"text": [1, 2], "images": [["a.png"], None]}), path)
    good = dj_parquet(tmp_path / "good.parquet", 3)
    error = load_error("dj", str(path), tmp_path)
    assert first_line(error) == f"{path}: record 0: 'text' must be a string, got int"
    ds, rejects = skipped("dj", [str(path), good], tmp_path)
    assert ds["text"] == [f"<__dj__image> row {i}" for i in range(3)]
    assert [(r["record"], r["reason"], r["raw"]) for r in rejects] == [
        (0, "'text' must be a string, got int", '{"text":1,"images":["a.png"]}'),
        (1, "'text' must be a string, got int", '{"text":2,"images":null}'),
    ]
    big = tmp_path / "big.parquet"
    pq.write_table(pa.table({"text": ["ab" * (25 << 20), "small"]}), big)
    assert [len(text) for text in load("dj", str(big), tmp_path)["text"]] == [50 << 20, 5]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_dj_check_media(tmp_path, suffix):
    (tmp_path / "here.png").write_bytes(b"")
    records = [
        {"text": "<__dj__image> a", "images": ["here.png"], "image_bytes": None},
        {"text": "<__dj__image> b", "images": ["gone.png"], "image_bytes": None},
        {"text": "<__dj__image> c", "images": ["embedded.png"], "image_bytes": [b"\x89PNG"]},
    ]
    path = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path.write_bytes(b"".join(orjson.dumps({k: v for k, v in r.items() if k != "image_bytes"}) + b"\n" for r in records[:2]))
    reason = f"media file 'gone.png' not found (looked for {tmp_path / 'gone.png'})"
    line = " (line 2)" if suffix == ".jsonl" else ""
    error = load_error("dj", str(path), tmp_path, check_media=True)
    assert first_line(error) == f"{path}: record 1{line}: {reason}"
    assert len(load("dj", str(path), tmp_path)) == (3 if suffix == ".parquet" else 2)
    ds, rejects = skipped("dj", str(path), tmp_path, check_media=True)
    assert ds["text"] == ["<__dj__image> a"] + (["<__dj__image> c"] if suffix == ".parquet" else [])
    assert [(r["record"], r["reason"]) for r in rejects] == [(1, reason)]
    assert json.loads(rejects[0]["raw"])["images"] == ["gone.png"]
    kept = load("dj", str(path), tmp_path, check_media=True, on_error="keep")
    assert kept["record_errors"][:2] == [None, [reason]]


# -- export interrupted by SIGKILL ----------------------------------------------------------------

_SLOW_EXPORT = """
import sys, datasets, hf_mmbuilder
marker, destination = sys.argv[1], sys.argv[2]

def rows():
    for i in range(200_000):
        if i == 50_000:
            open(marker, "w").close()
            sys.stdin.read()  # blocks until the parent kills us: the export is mid-write
        yield {"text": f"row {i} " + "x" * 100, "images": [], "audios": [], "videos": []}

hf_mmbuilder.export(datasets.IterableDataset.from_generator(rows), "dj", destination)
"""


def test_export_killed_mid_write_leaves_no_file_and_next_export_cleans_up(tmp_path):
    destination = tmp_path / "out.jsonl"
    marker = tmp_path / "mid-write"
    child = subprocess.Popen([sys.executable, "-P", "-c", _SLOW_EXPORT, str(marker), str(destination)], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONSAFEPATH": "1"})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the export never got half way"
            time.sleep(0.1)
        temporary = tmp_path / f".out.jsonl.tmp-{child.pid}"
        assert temporary.stat().st_size > 0
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
    assert child.returncode == -signal.SIGKILL
    assert not destination.exists() and temporary.exists()
    assert stale_temporaries(str(destination)) == [str(temporary)]
    # A live process's temporary, and files that only look like ours, are not ours to remove.
    live = tmp_path / f".out.jsonl.tmp-{os.getppid()}"
    others = [tmp_path / ".out.jsonl.tmp-notapid", tmp_path / ".out.jsonl.tmp-0042", tmp_path / ".other.jsonl.tmp-999999999"]
    for path in [live, *others]:
        path.write_bytes(b"partial")
    rows = datasets.Dataset.from_dict({"text": ["a", "b"], "images": [[], []], "audios": [[], []], "videos": [[], []]})
    assert hf_mmbuilder.export(rows, "dj", str(destination)) == {str(destination): 2}
    assert [json.loads(line)["text"] for line in destination.read_text(encoding="utf-8").splitlines()] == ["a", "b"]
    assert not temporary.exists() and live.exists() and all(path.exists() for path in others)
    assert sorted(os.listdir(tmp_path)) == sorted([".other.jsonl.tmp-999999999", ".out.jsonl.tmp-0042", ".out.jsonl.tmp-notapid", live.name, "mid-write", "out.jsonl"])
