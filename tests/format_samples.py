"""One small generated source file per format and layout, for tests/test_format_conformance.py.

Each :class:`Sample` writes its file with the package's generators and reads a file of its layout
back as parsed values (JSON values, CSV cells), the unit in which export must equal the source.
"""

import csv
import dataclasses
import json
from typing import Callable

from hf_mmbuilder import testing

RECORDS = 240


def read_json(path) -> object:
    """A JSON document or array, or JSON lines (as a list), parsed."""
    text = open(path, encoding="utf-8").read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.split("\n") if line.strip()]


def read_csv(path) -> list:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def corrupt(path, record: int) -> None:
    """Make record ``record`` of a source file malformed: the JSON number 5 where an object is due
    (a JSON-lines line, an array element, an element of a WavCaps ``data`` list), or a CSV row of
    the wrong width."""
    path = str(path)
    if path.endswith(".csv"):
        rows = read_csv(path)
        rows[record + 1] = rows[record + 1][:1]
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
        return
    records = read_json(path)
    if isinstance(records, dict):
        records["data"][record] = 5
        text = json.dumps(records, ensure_ascii=False)
    elif path.endswith(".jsonl"):
        records[record] = 5
        text = "".join(json.dumps(value, ensure_ascii=False) + "\n" for value in records)
    else:
        records[record] = 5
        text = json.dumps(records, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclasses.dataclass(frozen=True)
class Sample:
    """A format's source file: ``write(folder) -> path``, the ``read`` comparator of its layout,
    the loader (and exporter) ``options``."""

    format_name: str
    label: str
    write: Callable
    read: Callable = read_json
    options: dict = dataclasses.field(default_factory=dict)
    # Whether corrupt() can break one record of this layout (an MSR-VTT document's records are
    # its sentences and videos, checked by tests/test_format_msrvtt.py).
    corruptible: bool = True

    @property
    def id(self) -> str:
        return f"{self.format_name}-{self.label}"


def _dj_rows():
    rows = [
        {"id": 0, "text": "<__dj__image> a cat <|__dj__eoc|>", "images": ["cat.jpg"],
         "__dj__meta__": {"source": "web", "lang": "en"}, "__dj__stats__": {"text_len": 7, "image_width": [64]}},
        {"id": 1, "text": "plain 文本 <|__dj__eoc|>", "images": [],
         "__dj__meta__": {"source": "book", "lang": "zh"}, "__dj__stats__": {"text_len": 9, "image_width": []}},
    ]
    return [dict(row, id=number) for number in range(RECORDS // 2) for row in rows]


SAMPLES = {
    "llava": [
        Sample("llava", "json", lambda folder: testing.write_llava_json(str(folder / "llava.json"), RECORDS, seed=1)),
        Sample("llava", "jsonl", lambda folder: testing.write_llava_json(str(folder / "llava.jsonl"), RECORDS, seed=2, lines=True)),
    ],
    "mmc4": [
        Sample("mmc4", "jsonl", lambda folder: testing.write_jsonl(str(folder / "docs.jsonl"), testing.mmc4_records(RECORDS // 4, seed=3))),
        Sample("mmc4", "after", lambda folder: testing.write_jsonl(str(folder / "docs.jsonl"), testing.mmc4_records(RECORDS // 4, seed=4)),
               options={"image_special_token_insert_pos": "after"}),
    ],
    "sharegpt": [Sample("sharegpt", "jsonl", lambda folder: testing.write_jsonl(str(folder / "chat.jsonl"), testing.sharegpt_records(RECORDS, seed=5)))],
    "oasis": [Sample("oasis", "jsonl", lambda folder: testing.write_jsonl(str(folder / "oasis.jsonl"), testing.oasis_records(RECORDS, seed=6)))],
    "dj": [Sample("dj", "jsonl", lambda folder: testing.write_jsonl(str(folder / "rows.jsonl"), _dj_rows()))],
    "video_chatgpt": [Sample("video_chatgpt", "json", lambda folder: testing.write_video_chatgpt_json(str(folder / "chatgpt.json"), RECORDS, seed=7))],
    "youku": [
        Sample("youku", subset, lambda folder, subset=subset: testing.write_youku_csv(str(folder / f"youku_{subset}.csv"), subset, RECORDS, seed=8),
               read_csv)
        for subset in ("pretrain", "classification", "retrieval", "captioning")
    ],
    "internvid": [Sample("internvid", "jsonl", lambda folder: testing.write_internvid_jsonl(str(folder / "internvid.jsonl"), RECORDS, seed=9))],
    "msrvtt": [
        Sample("msrvtt", "official", lambda folder: testing.write_msrvtt(str(folder / "msrvtt.json"), "official", RECORDS // 4, seed=10),
               corruptible=False),
        Sample("msrvtt", "jsonl", lambda folder: testing.write_msrvtt(str(folder / "msrvtt.jsonl"), "jsonl", RECORDS, seed=11)),
        Sample("msrvtt", "csv", lambda folder: testing.write_msrvtt(str(folder / "msrvtt.csv"), "csv", RECORDS, seed=12), read_csv),
    ],
    "wavcaps": [
        Sample("wavcaps", subset, lambda folder, subset=subset: testing.write_wavcaps_json(str(folder / f"{subset}.json"), subset, RECORDS, seed=13))
        for subset in testing.WAVCAPS_SUBSETS
    ],
}

ALL = [sample for samples in SAMPLES.values() for sample in samples]
