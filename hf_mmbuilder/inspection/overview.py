"""The report's overview, computed from every row (never the sample): rows per source and split,
alignment errors, and the distributions of the ``__dj__stats__`` column as plot data.

Everything is Arrow compute or NumPy over whole columns, so a million rows take a few seconds.
Without a stats column the text length, turns and media counts are measured from the DJ columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..ops import FILTER_COLUMN, STATS_COLUMN, reason_check
from ..schema import MEDIA_COLUMNS, ROLE_MARKER_PATTERN, SpecialTokens, alignment_errors

TOP_CATEGORIES = 20        # categories drawn per categorical plot; the rest are summed as "other"
ALIGNMENT_ROWS_SHOWN = 50  # misaligned rows listed by number (all are counted)


def histogram(values: np.ndarray, *, bins: int = 30, log: bool = False, integer: bool = False) -> dict:
    """Plot data for a numeric distribution: ``{"edges", "counts", "log", "integer"}``.

    ``log`` spaces the bins geometrically (text lengths, image sizes span decades); ``integer``
    gives one bar per value while there are at most ``bins`` of them (then ``"integer"`` is true
    and bar k counts the value ``edges[k]``). Empty input gives no bars.

    Example:
        >>> histogram(np.array([1, 1, 2, 5]), integer=True)
        {'edges': [1, 2, 3, 4, 5, 6], 'counts': [2, 1, 0, 0, 1], 'log': False, 'integer': True}
        >>> histogram(np.array([1.0, 10.0, 100.0]), bins=2, log=True)["counts"]
        [1, 2]
        >>> histogram(np.array([2.5, 2.5]))
        {'edges': [2.5, 2.5], 'counts': [2], 'log': False, 'integer': False}
    """
    values = np.asarray(values)
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if values.size == 0:
        return {"edges": [], "counts": [], "log": log, "integer": False}
    low, high = float(values.min()), float(values.max())
    if integer and high - low < bins:
        edges = np.arange(int(low), int(high) + 2)
        counts = np.bincount((values - int(low)).astype(np.int64), minlength=len(edges) - 1)
        return {"edges": edges.tolist(), "counts": counts.tolist(), "log": False, "integer": True}
    if high == low:
        return {"edges": [round(low, 3), round(high, 3)], "counts": [int(values.size)], "log": False, "integer": False}
    if log and low > 0:
        edges = np.geomspace(low, high, bins + 1)
    else:
        log = False
        edges = np.linspace(low, high, bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [round(float(edge), 3) for edge in edges], "counts": counts.tolist(), "log": log, "integer": False}


def categories(values: pa.Array) -> list:
    """``[[value, rows], ...]`` most frequent first (ties by value), the tail summed as ``"other"``.

    Example:
        >>> categories(pa.array(["en", "zh", "en", None]))
        [['en', 2], ['(none)', 1], ['zh', 1]]
    """
    counted = pc.value_counts(values)
    pairs = sorted(((value if value is not None else "(none)", count)
                    for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist())),
                   key=lambda pair: (-pair[1], str(pair[0])))
    shown = [[str(value), int(count)] for value, count in pairs[:TOP_CATEGORIES]]
    rest = sum(count for _, count in pairs[TOP_CATEGORIES:])
    return shown + ([["other", int(rest)]] if rest else [])


def _numbers(array) -> np.ndarray:
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        array = pc.list_flatten(array)
    return pc.drop_null(array).to_numpy(zero_copy_only=False)


def _field(stats, name: str):
    return stats.field(name) if stats is not None and stats.type.get_field_index(name) >= 0 else None


def overview(table: pa.Table, splits: np.ndarray, split_names: list, tokens: SpecialTokens) -> dict:
    """The overview section of the report for all rows of ``table``.

    ``splits`` gives each row's index into ``split_names``. Returns ``rows``, ``sources`` (rows per
    source format / file and split), ``alignment`` (misaligned rows: count and the first rows) and
    ``plots``: ``[{"title", "kind": "histogram"|"categories", "data"}]`` for text length, turns,
    media per row, languages, image sizes, audio/video durations, PII counts and filter reasons
    (those the data has).
    """
    n = table.num_rows
    stats = table.column(STATS_COLUMN).combine_chunks() if STATS_COLUMN in table.column_names else None
    if isinstance(stats, pa.ChunkedArray):
        stats = stats.chunk(0) if stats.num_chunks else pa.array([], type=stats.type)
    text = table.column("text") if "text" in table.column_names else pa.chunked_array([pa.array([""] * n)])
    sources = _sources(table, splits, split_names)
    misaligned = _misaligned(table, stats, tokens)
    plots = []

    def add(title: str, kind: str, data) -> None:
        if (data["counts"] if kind == "histogram" else data):
            plots.append({"title": title, "kind": kind, "data": data})

    text_len = _field(stats, "text_len")
    add("Text length (characters)", "histogram",
        histogram(_numbers(text_len) if text_len is not None else pc.utf8_length(text).to_numpy(zero_copy_only=False), log=True))
    turns = _field(stats, "num_turns")
    if turns is None:
        turns = pc.count_substring_regex(text, ROLE_MARKER_PATTERN)
    add("Turns per row", "histogram", histogram(_numbers(turns), integer=True))
    for column in MEDIA_COLUMNS:
        counts = _field(stats, f"num_{column}")
        if counts is None and column in table.column_names:
            counts = pc.fill_null(pc.list_value_length(table.column(column)), 0)
        if counts is not None and pc.max(counts).as_py():
            add(f"{column.capitalize()} per row", "histogram", histogram(_numbers(counts), integer=True))
    lang = _field(stats, "lang")
    if lang is not None:
        add("Language", "categories", categories(lang))
    for name, title in (("image_width", "Image width (pixels)"), ("image_height", "Image height (pixels)"),
                        ("audio_duration", "Audio duration (seconds)"), ("video_duration", "Video duration (seconds)")):
        values = _field(stats, name)
        if values is not None:
            numbers = _numbers(values)
            add(title, "histogram", histogram(numbers[numbers >= 0], log=name.startswith("image")))
    pii = [[name[4:], int(pc.sum(stats.field(name)).as_py() or 0)] for name in (stats.type.names if stats is not None else [])
           if name.startswith("pii_")]
    if any(count for _, count in pii):
        add("PII found (items, all rows)", "categories", sorted(pii, key=lambda pair: -pair[1]))
    if FILTER_COLUMN in table.column_names:
        reasons = [reason_check(part) for reason in pc.drop_null(table.column(FILTER_COLUMN)).to_pylist() if reason
                   for part in reason.split("; ")]
        add("Filter failures (rows per check)", "categories", categories(pa.array(reasons, type=pa.string())))
    return {"rows": n, "sources": sources, "alignment": misaligned, "plots": plots}


def _sources(table: pa.Table, splits: np.ndarray, split_names: list) -> list:
    """``[{"format", "file", "split", "rows"}]``, most rows first."""
    n = table.num_rows

    def strings(name: str):
        if name in table.column_names:
            return pc.fill_null(table.column(name).combine_chunks().cast(pa.string()), "")
        return pa.array([""] * n, type=pa.string())

    split_column = pa.DictionaryArray.from_arrays(pa.array(splits, type=pa.int32()), pa.array(split_names, type=pa.string()))
    grouped = pa.table({"format": strings("source_format"), "file": strings("source_file"),
                        "split": split_column.cast(pa.string())}).group_by(["format", "file", "split"]).aggregate([([], "count_all")])
    rows = [{"format": fmt, "file": file, "split": split, "rows": count} for fmt, file, split, count in
            zip(*(grouped.column(name).to_pylist() for name in ("format", "file", "split", "count_all")))]
    return sorted(rows, key=lambda row: (-row["rows"], row["format"], row["file"], row["split"]))


def _misaligned(table: pa.Table, stats, tokens: SpecialTokens) -> dict:
    """Rows whose media-token counts differ from their media lists: from the stats' ``aligned``
    field when present, else counted here by :func:`hf_mmbuilder.schema.alignment_errors`."""
    aligned = _field(stats, "aligned")
    if aligned is not None:
        rows = np.flatnonzero(~pc.fill_null(aligned, False).to_numpy(zero_copy_only=False))
    else:
        columns = [name for name in ("text", *MEDIA_COLUMNS) if name in table.column_names]
        rows = np.unique(np.array([error.row for error in alignment_errors(table.select(columns), tokens)], dtype=np.int64))
    return {"count": int(rows.size), "rows": rows[:ALIGNMENT_ROWS_SHOWN].tolist()}
