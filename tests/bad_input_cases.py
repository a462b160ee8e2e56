"""Adversarial source files, generated at test time, for the bad-input matrix
(tests/test_bad_input.py: the JSON formats; tests/test_bad_input_files.py may share these helpers).

A :class:`Shape` writes a format's file from raw record bytes in its layout (JSON lines, a JSON
array with one record per line, or WavCaps' ``{"num_captions_per_audio": 1, "data": [...]}``),
so a case can put any bytes in one record: invalid UTF-8, ``NaN``, 10,000 levels of nesting.
:func:`check_bad_records` asserts the exact outcome of a file under the three ``on_error`` modes.
"""

import copy
import dataclasses
import json
import os
import re
from typing import Callable, Optional

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.errors import RecordError, raw_text

RECORDS = 4
BAD = 2
DEEP = 10_000


def _first_string(record, keys) -> tuple:
    """The path of the first non-empty string under one of ``keys`` (a source text of the record)."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            return (key,)
        if isinstance(value, list):
            for k, item in enumerate(value):
                if isinstance(item, str) and item:
                    return (key, k)
                if isinstance(item, dict) and item.get("role", item.get("from")) != "system":
                    for inner in ("value", "content"):
                        if isinstance(item.get(inner), str) and item[inner]:
                            return (key, k, inner)
                        # OpenAI-style content parts: the first text part.
                        for p, part in enumerate(item.get(inner) if isinstance(item.get(inner), list) else []):
                            if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                                return (key, k, inner, p, "text")
    raise AssertionError(f"no source text under {keys} in {record}")


def put(record: dict, path: tuple, value) -> dict:
    """A copy of ``record`` with ``value`` at ``path`` (keys and list indexes).

    Example:
        >>> put({"a": [{"b": 1}]}, ("a", 0, "b"), 2)
        {'a': [{'b': 2}]}
    """
    record = copy.deepcopy(record)
    target = record
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return record


def get(record, path: tuple):
    for step in path:
        record = record[step]
    return record


def _dj_records(count: int) -> list:
    return [{"id": k, "text": f"<__dj__image> cat number {k} <|__dj__eoc|>", "images": [f"cat{k}.jpg"], "lang": "en"} for k in range(count)]


@dataclasses.dataclass(frozen=True)
class Shape:
    """A JSON format as the matrix writes it.

    - ``records(n)``: ``n`` good records; ``text_keys``: where a record's source text is;
    - ``layout``: ``"lines"``, ``"array"`` (one record per line) or ``"document"`` (WavCaps);
    - ``wrong_types``: per field the format reads (a path), a wrong value and the reason (regex)
      it is refused with;
    - ``not_an_object``: the reason a record that is a JSON array is refused with;
    - ``tokens_are_text``: the format's text is DJ text (``dj``), so DJ tokens in it are content.
    """

    format_name: str
    layout: str
    records: Callable[[int], list]
    text_keys: tuple
    wrong_types: dict
    tokens_are_text: bool = False
    suffix: str = ".jsonl"
    not_an_object: str = "must be a JSON object, got list"

    @property
    def id(self) -> str:
        return f"{self.format_name}-{self.layout}"

    def good(self) -> list:
        return self.records(RECORDS)

    def text_path(self, record: dict) -> tuple:
        return _first_string(record, self.text_keys)

    def encode(self, record) -> bytes:
        # Compact, as orjson writes a WavCaps record back for the rejects file.
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()

    def file_bytes(self, raws: list, newline: bytes = b"\n") -> bytes:
        if self.layout == "lines":
            return b"".join(raw + newline for raw in raws)
        body = ("," + newline.decode()).encode().join(raws)
        if self.layout == "array":
            return b"[" + newline + body + newline + b"]" + newline
        return b'{"num_captions_per_audio":1,"data":[' + newline + body + newline + b"]}" + newline

    def line(self, k: int) -> int:
        """The line record ``k`` starts on in :meth:`file_bytes`."""
        return k + 1 if self.layout == "lines" else k + 2

    def write(self, folder, raws: list, name: str = "in", newline: bytes = b"\n") -> str:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(str(folder), name + self.suffix)
        with open(path, "wb") as handle:
            handle.write(self.file_bytes(raws, newline))
        return path

    def holding(self, field: tuple) -> int:
        """The first good record that has ``field``."""
        for k, record in enumerate(self.good()):
            try:
                get(record, field)
                return k
            except (KeyError, IndexError, TypeError):
                continue
        raise AssertionError(f"no {self.format_name} record has {field}")

    def empty_file(self) -> bytes:
        """A file of the layout with no record: ``[]``, or WavCaps' document with an empty ``data``."""
        return b'{"num_captions_per_audio":1,"data":[]}' if self.layout == "document" else b"[]"


def _llava(count):
    return list(testing.llava_records(count, seed=11))


SHAPES = [
    Shape("llava", "lines", _llava, ("conversations",), {
        ("conversations",): ("x", "'conversations' must be a list"),
        ("conversations", 0, "value"): (5, "turn 0: 'value' must be a string"),
        ("conversations", 0, "from"): (5, "turn 0: 'from' must be a string"),
        ("id",): ([1], "'id' must be a string or an integer"),
        ("image",): (5, "'image' must be a path string"),
    }),
    Shape("llava", "array", _llava, ("conversations",), {
        ("conversations",): ("x", "'conversations' must be a list"),
        ("conversations", 0, "value"): (5, "turn 0: 'value' must be a string"),
    }, suffix=".json"),
    # A single path string is a valid ShareGPT "images" (LLaMA-Factory writes one): not a wrong type.
    Shape("sharegpt", "lines", lambda count: list(testing.sharegpt_records(count, seed=12)), ("messages",), {
        ("messages",): ("x", "'messages' must be a list"),
        ("messages", 1, "role"): (5, "message 1: 'role' must be a string"),
        ("messages", 1, "content"): (5, "message 1: 'content' must be a string"),
    }),
    Shape("oasis", "lines", lambda count: list(testing.oasis_records(count, seed=13)), ("instruction", "conversations"), {
        ("instruction",): (5, "'instruction' must be a string"),
        ("response",): (5, "'response' must be a string"),
        ("image",): (5, "'image' must be a path string"),
    }),
    Shape("video_chatgpt", "array", lambda count: list(testing.video_chatgpt_records(count, seed=14)), ("q", "a"), {
        ("q",): (5, "'q' must be a string"),
        ("a",): (5, "'a' must be a string"),
        ("video_id",): (5, "'video_id' must be a string"),
    }, suffix=".json"),
    Shape("internvid", "lines", lambda count: list(testing.internvid_records(count, seed=15)), ("Caption",), {
        ("YoutubeID",): (5, "'YoutubeID' must be a string"),
        ("Start_timestamp",): (5, "'Start_timestamp' must be a string"),
        ("End_timestamp",): (5, "'End_timestamp' must be a string"),
        ("Caption",): (5, "'Caption' must be a string"),
    }),
    Shape("msrvtt", "lines", lambda count: list(testing.msrvtt_hf_records(count, seed=16)), ("caption",), {
        ("video_id",): (5, "'video_id' must be a string"),
        ("caption",): (5, "'caption' must be a string"),
    }),
    Shape("wavcaps", "document", lambda count: list(testing.wavcaps_records("soundbible", count, seed=17)), ("caption",), {
        ("id",): ([1], "'id' must be a string or an integer"),
        ("caption",): (5, "'caption' must be a string"),
    }, suffix=".json"),
    Shape("mmc4", "lines", lambda count: list(testing.mmc4_records(count, seed=18)), ("text_list",), {
        ("text_list",): ("x", "'text_list' must be a list of strings"),
        ("image_info",): ("x", "'image_info' must be a list"),
        ("similarity_matrix",): ("x", "'similarity_matrix' must be a list of lists of numbers"),
    }, not_an_object="an MMC4 document must be a JSON object, got list"),
    Shape("dj", "lines", _dj_records, ("text",), {
        ("text",): (5, "'text' must be a string"),
        ("images",): ("x", "'images' must be a list of path strings"),
    }, tokens_are_text=True, not_an_object="a DJ record must be a JSON object, got list"),
]


def load(shape: Shape, path, cache_dir, fast: bool, **options):
    return hf_mmbuilder.load(shape.format_name, path, split="train", cache_dir=str(cache_dir), fast_path=fast, **options)


def read_rejects(path) -> list:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@dataclasses.dataclass(frozen=True)
class Bad:
    """A bad record of a test file: its index, the reason (regex) and its raw bytes (``None``:
    not checked, e.g. a WavCaps record re-serialised)."""

    record: int
    reason: str
    raw: Optional[bytes]
    line: Optional[int] = None


def check_bad_records(shape: Shape, path: str, total: int, bad: list, tmp_path, fast: bool, **options) -> dict:
    """Exact outcomes of a file holding ``total`` records of which ``bad`` are bad:

    - ``raise``: a :class:`RecordError` whose first line names the file, the first bad record (and
      its line) and its reason;
    - ``skip``: the other records as rows, one reject per bad record with its index, reason and
      raw text (undecodable bytes escaped): kept + rejected = records in the file;
    - ``keep``: every record a row, exactly the bad ones flagged; every row reads back.

    Returns the outcome counts per mode, for the closing table.
    """
    with_errors = record_error_of(shape, path, tmp_path / "raise", fast, **options)
    first = str(with_errors).splitlines()[0]
    expected = bad[0]
    where = f"{path}: record {expected.record}" + (f" (line {expected.line})" if expected.line is not None else "")
    assert first.startswith(where), (first, where)
    assert re.search(expected.reason, first), (first, expected.reason)
    rejects_path = tmp_path / "rejects.jsonl"
    skipped = load(shape, path, tmp_path / "skip", fast, on_error="skip", rejects_path=str(rejects_path), **options)
    entries = read_rejects(rejects_path)
    assert len(skipped) + len(entries) == total
    assert [(entry["file"], entry["record"]) for entry in entries] == [(path, item.record) for item in bad]
    for entry, item in zip(entries, bad):
        assert re.search(item.reason, entry["reason"]), (entry["reason"], item.reason)
        if item.raw is not None:
            assert entry["raw"] == raw_text(item.raw)
    kept = load(shape, path, tmp_path / "keep", fast, on_error="keep", **options)
    rows = [kept[k] for k in range(len(kept))]
    assert len(rows) == total
    assert [k for k, row in enumerate(rows) if row["record_errors"]] == [item.record for item in bad]
    return {"rows": total, "kept_on_skip": len(skipped), "rejected_on_skip": len(entries), "flagged_on_keep": len(bad)}


def record_error_of(shape: Shape, path: str, cache_dir, fast: bool, **options) -> RecordError:
    """The :class:`RecordError` loading ``path`` raises (anything else fails the test)."""
    try:
        load(shape, path, cache_dir, fast, **options)
    except RecordError as error:
        return error
    raise AssertionError(f"{path} loaded without a RecordError")
