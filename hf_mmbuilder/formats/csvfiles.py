"""CSV source files: opening them (UTF-8, BOM accepted), their rows as source records, and their
batches as Arrow tables.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
from typing import Callable, Iterator, Optional

from ..errors import ErrorPolicy
from .builder import ColumnBuffer
from .columns import SourceRecord, rows_to_tables, table_from_arrays
from .failures import READ_ERRORS


def csv_fast_tables(
    header: list,
    reader,
    features,
    constants: dict,
    fast_columns: Optional[Callable[[list], Optional[dict]]],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
    batch_rows: int = 20_000,
) -> Iterator[pa.Table]:
    """:func:`rows_to_tables` over the data rows of a CSV ``reader``, ``batch_rows`` rows at a
    time: ``fast_columns(rows)`` (``rows``: lists of cells) builds a batch's columns at once, or
    returns ``None`` to send the batch record by record through ``convert`` (with the records of
    :func:`csv_batch_records`). A read failure inside a batch is raised after the rows read
    before it went through ``convert`` (their errors come first, as they are read first).

    Complexity: O(rows); memory O(batch_rows).

    Example:
        >>> tables = csv_fast_tables(header, reader, features, {}, columns, convert, policy, "a.csv")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    width = len(header)
    first = 0
    while True:
        rows, lines = [], []
        try:
            for cells in itertools.islice(reader, batch_rows):
                rows.append(cells)
                lines.append(reader.line_num)
        except READ_ERRORS:
            # The rows of an unfinished batch are not kept (as rows_to_tables drops its buffer).
            for _ in rows_to_tables(features, constants, csv_batch_records(header, rows, lines, first), convert, policy, source, batch_rows + 1):
                pass
            raise
        if not rows:
            return
        arrays = None
        if fast_columns is not None and all(len(cells) == width for cells in rows):
            arrays = fast_columns(rows)
        if arrays is not None:
            yield table_from_arrays(buffer, arrays, len(rows))
        else:
            yield from rows_to_tables(features, constants, csv_batch_records(header, rows, lines, first), convert, policy, source, batch_rows + 1)
        first += len(rows)


def open_csv(path: str, opener: Callable):
    """``(handle, reader, header)`` of a UTF-8 CSV file (a BOM is accepted); ``header`` is ``None``
    for an empty file. ``opener``: the loading script's ``open`` (see :func:`json_fast_tables`).

    Example:
        >>> handle, reader, header = open_csv("youku_pretrain.csv", open)  # doctest: +SKIP
        >>> header  # doctest: +SKIP
        ['video_id:FILE', 'title']
    """
    handle = io.TextIOWrapper(opener(path, "rb"), encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    header = next(reader, None)
    return handle, reader, header


def csv_source_records(header: list, reader) -> Iterator[SourceRecord]:
    """The data rows of a CSV ``reader`` (positioned after the header) as ``{column: cell}``
    records; a row with the wrong number of cells comes back as its cells (a list), to be rejected.

    Example:
        >>> rows = csv.reader(io.StringIO("v/1.mp4,hi\\n"))
        >>> next(csv_source_records(["video_id:FILE", "title"], rows)).value
        {'video_id:FILE': 'v/1.mp4', 'title': 'hi'}
    """
    width = len(header)
    for index, cells in enumerate(reader):
        raw = functools.partial(_csv_line, cells)
        yield SourceRecord(index, reader.line_num, dict(zip(header, cells)) if len(cells) == width else cells, raw)


def csv_batch_records(header: list, rows: list, lines: list, first: int) -> Iterator[SourceRecord]:
    """The CSV rows ``rows`` (read at 1-based ``lines``, the first being data row ``first``) as
    :class:`~hf_mmbuilder.formats.columns.SourceRecord` s, like :func:`csv_source_records`."""
    width = len(header)
    for k, cells in enumerate(rows):
        yield SourceRecord(first + k, lines[k], dict(zip(header, cells)) if len(cells) == width else cells, functools.partial(_csv_line, cells))


def _csv_line(cells: list) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue().encode("utf-8")


def check_cells(value, header: list) -> dict:
    """A CSV record as ``{column: cell}``, or ``ValueError`` for a row with the wrong cell count.

    Example:
        >>> check_cells(["a"], ["x", "y"])
        Traceback (most recent call last):
        ...
        ValueError: row has 1 cell(s), the header has 2
    """
    if isinstance(value, list):
        raise ValueError(f"row has {len(value)} cell(s), the header has {len(header)}")
    return value
