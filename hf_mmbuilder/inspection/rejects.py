"""The rejects section: records a loader skipped (its rejects JSON-lines files: file, record, line,
reason, raw text) and rows a quality filter dropped (``__dj__filter__`` reasons, the row as JSON).

Every reject is counted by reason; at most :data:`MAX_SHOWN` of each kind are listed, each raw
record cut at :data:`RAW_CHARACTERS`.
"""

from __future__ import annotations

import os
from collections import Counter

import orjson

from ..ops import FILTER_COLUMN, STATS_COLUMN, FilterResult, reason_check

MAX_SHOWN = 1000
RAW_CHARACTERS = 4000


def _cut(text: str) -> str:
    return text if len(text) <= RAW_CHARACTERS else text[:RAW_CHARACTERS] + f"... ({len(text) - RAW_CHARACTERS:,} more characters)"


def loader_rejects(path: str) -> list:
    """The entries of a loader's rejects file (``on_error="skip"``), in file order.

    Raises ``ValueError`` naming the file and line of a line that is not a rejects entry.

    Example:
        >>> import tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "rejects.jsonl")
        >>> _ = open(path, "w").write('{"file": "a.json", "record": 3, "line": 9, "byte": null, "reason": "no conversations", "raw": "{}"}\\n')
        >>> loader_rejects(path)[0]["reason"]
        'no conversations'
    """
    entries = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number}: not a rejects entry: {error}") from None
            if not isinstance(entry, dict) or "reason" not in entry:
                raise ValueError(f"{path}: line {number}: not a rejects entry: it has no 'reason'")
            entries.append(entry)
    return entries


def rejects_section(rejects) -> dict:
    """The section from ``rejects``: a rejects file path, a ``FilterResult`` or a dataset of dropped
    rows (with ``__dj__filter__``), a ``save_to_disk`` folder of such rows, or a list of these.

    Returns ``{"loader": {"count", "reasons", "shown"}, "filtered": {"count", "reasons", "shown"}}``;
    a loader entry shown is ``{"file", "record", "line", "reason", "raw"}``, a filtered one
    ``{"row", "id", "reason", "raw"}`` (``row``: its position among the dropped rows; ``id`` its
    ``id`` column, when it has one).
    """
    import datasets

    loader, filtered = [], []
    loader_count, filtered_count = 0, 0
    loader_reasons, filtered_reasons = Counter(), Counter()
    items = rejects if isinstance(rejects, (list, tuple)) else ([] if rejects is None else [rejects])
    for item in items:
        if isinstance(item, FilterResult):
            item = item.dropped
        if isinstance(item, (str, os.PathLike)) and os.path.isdir(item):
            item = datasets.load_from_disk(str(item))
        if isinstance(item, (str, os.PathLike)):
            for entry in loader_rejects(str(item)):
                loader_count += 1
                loader_reasons[str(entry.get("reason"))] += 1
                if len(loader) < MAX_SHOWN:
                    loader.append({"file": entry.get("file"), "record": entry.get("record"), "line": entry.get("line"),
                                   "reason": entry.get("reason"), "raw": _cut(entry.get("raw") or "")})
            continue
        if not isinstance(item, datasets.Dataset) or FILTER_COLUMN not in item.column_names:
            raise ValueError(f"rejects: {type(item).__name__} is neither a rejects file, a FilterResult nor rows with "
                             f"a {FILTER_COLUMN!r} column")
        reasons = item[FILTER_COLUMN]
        for reason in reasons:
            for part in (reason or "").split("; "):
                filtered_reasons[reason_check(part)] += 1
        filtered_count += len(item)
        shown = item.select(range(min(len(item), MAX_SHOWN - len(filtered))))
        shown = shown.remove_columns([name for name in (STATS_COLUMN,) if name in shown.column_names])
        for row, record in enumerate(shown):
            reason = record.pop(FILTER_COLUMN)
            raw = orjson.dumps(record, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
            filtered.append({"row": row, "id": None if record.get("id") is None else str(record["id"]), "reason": reason, "raw": _cut(raw)})

    def ranked(counter: Counter) -> list:
        return sorted(([reason, count] for reason, count in counter.items()), key=lambda pair: (-pair[1], pair[0]))

    return {"loader": {"count": loader_count, "reasons": ranked(loader_reasons), "shown": loader},
            "filtered": {"count": filtered_count, "reasons": ranked(filtered_reasons), "shown": filtered}}
