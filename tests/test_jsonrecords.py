"""The record index of JSON files: scanned up front or piece by piece while parsing."""

import json

import numpy as np
import pytest

from hf_mmbuilder.formats import records as jsonrecords
from hf_mmbuilder.formats.records import JSONLayoutError, UnreadableFileError, scan_records, scan_records_in_background


def write_lines(path, records, blank_every=7):
    with open(path, "w", encoding="utf-8") as handle:
        for k, record in enumerate(records):
            handle.write(json.dumps(record) + "\n")
            if k % blank_every == 0:
                handle.write("  \n")


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_background_pieces_together_are_the_up_front_index(tmp_path, monkeypatch, layout):
    records = [{"id": k, "text": "x" * (k % 50)} for k in range(3000)]
    path = tmp_path / f"data.{layout}"
    if layout == "lines":
        write_lines(path, records)
    else:
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    # Small chunks: many pieces, records and lines cut at piece edges.
    monkeypatch.setattr(jsonrecords, "SCAN_CHUNK_BYTES", 4096)
    whole = scan_records(str(path))
    pieces = list(scan_records_in_background(str(path)))
    assert len(pieces) > 10
    assert [first for _, first in pieces] == list(np.cumsum([0] + [len(piece) for piece, _ in pieces[:-1]]))
    for name in ("starts", "ends", "lines"):
        assert np.concatenate([getattr(piece, name) for piece, _ in pieces]).tolist() == getattr(whole, name).tolist()
    assert len(whole) == 3000 and {piece.layout for piece, _ in pieces} == {layout}
    data = path.read_bytes()
    assert [json.loads(data[a:b]) for a, b in zip(whole.starts[:3], whole.ends[:3])] == records[:3]


def test_lines_are_numbered_across_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    write_lines(path, [{"k": k} for k in range(5)], blank_every=2)
    # Records 0, 2, 4 are each followed by a blank line.
    assert scan_records(str(path)).lines.tolist() == [1, 3, 4, 6, 7]


def test_layout_error_comes_after_the_records_before_it(tmp_path, monkeypatch):
    path = tmp_path / "broken.json"
    path.write_text("[" + ",".join(json.dumps({"k": "y" * 100}) for _ in range(200)) + '] {"k": 1}', encoding="utf-8")
    monkeypatch.setattr(jsonrecords, "SCAN_CHUNK_BYTES", 4096)
    seen = 0
    with pytest.raises(JSONLayoutError, match="broken.json"):
        for piece, _ in scan_records_in_background(str(path)):
            seen += len(piece)
    assert seen > 100


def test_an_unreadable_file_is_named(tmp_path):
    path = tmp_path / "gone.jsonl"

    def failing_opener(name, mode="rb"):
        raise EOFError("truncated archive member")

    with pytest.raises(UnreadableFileError, match="gone.jsonl: cannot read the file: EOFError"):
        list(scan_records_in_background(str(path), failing_opener))
    with pytest.raises(UnreadableFileError, match="gone.jsonl"):
        scan_records(str(path), failing_opener)


def test_an_empty_file_has_no_pieces(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    assert list(scan_records_in_background(str(path))) == [] and len(scan_records(str(path))) == 0


# Spellings of a DJ token in raw JSON: as it is, or with any of its characters escaped; an escaped
# backslash followed by "u005f" is text, not an escape.
HOLDING_CASES = [
    (rb'{"v": "<__dj__image>"}', True),
    (rb'{"v": "<__dj\u005f_image>"}', True),
    (rb'{"v": "<__dj\u005F_image>"}', True),
    (rb'{"v": "<\u005f_dj__image>"}', True),
    (rb'{"v": "<__\u0064j__image>"}', True),
    (rb'{"v": "<__d\u006A__image>"}', True),
    (rb'{"v": "\u003c__dj__image>"}', True),
    (rb'{"v": "<__dj\\u005f_image>"}', False),
    (rb'{"v": "__d j__ \u00e9 \n \\ \" \/ dj"}', False),
    (rb'{"v": "a bad escape \x"}', True),
    (rb'{"v": "1234567__dj__"}', True),
    (rb'{"v": "12345678901234__d"}', False),
    (rb'{"v_with_underscores": "__dj_ _dj__"}', False),
]


@pytest.mark.parametrize("raw, holds", HOLDING_CASES)
def test_records_holding_finds_every_spelling_of_the_tokens(raw, holds):
    from hf_mmbuilder.formats.records import RecordBatch

    # The record sits between two that hold the core only across the record bounds.
    records = [b'{"v": "x__d"}', raw, b'{"v": "j__"}']
    buffer = b"".join(records)
    ends = np.cumsum([len(record) for record in records])
    batch = RecordBatch(path="x.jsonl", indexes=range(3), lines=np.arange(1, 4), offsets=ends - [len(r) for r in records],
                        ends=ends, records=None, buffer=buffer, buffer_offset=0)
    assert batch.holding(("<__dj__image>", "<|__dj__eoc|>")).tolist() == ([1] if holds else [])
