"""Source records to Arrow tables with a builder's exact schema: record by record (reporting each
bad record through the error policy), or a whole batch at once from ready columns.
"""

from __future__ import annotations

import functools
import io
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError, raw_text
from ..schema import MEDIA_COLUMNS
from .builder import ColumnBuffer
from .records import MalformedJSON, check_depth, gc_paused, iter_batches, scan_records


class SourceRecord(NamedTuple):
    """One record read from a source file: its index, 1-based line (if known), value, and a
    function giving its source bytes (only called for a bad record, for the rejects file)."""

    index: int
    line: Optional[int]
    value: object
    raw: Callable[[], bytes]


def rows_to_tables(
    features,
    constants: dict,
    records: Iterable[SourceRecord],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
    batch_rows: int = 20_000,
) -> Iterator[pa.Table]:
    """Turn source records into Arrow tables of ``features``: ``convert(value) -> {column: value}``
    (absent columns are null, absent media lists empty); a ``ValueError``/``OSError`` from it, or a
    malformed record, goes through ``policy`` with the file, record index, line and reason.

    Complexity: O(records); memory O(batch_rows).

    Example:
        >>> tables = rows_to_tables(features, {}, records, convert, ErrorPolicy(), "a.jsonl")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    columns = buffer.columns
    plain = [(name, values) for name, values in columns.items() if name not in MEDIA_COLUMNS and name != ERRORS_COLUMN]
    media = [(name, values) for name, values in columns.items() if name in MEDIA_COLUMNS]
    errors_column = columns.get(ERRORS_COLUMN)
    count = 0
    for record in records:
        errors = None
        try:
            if isinstance(record.value, MalformedJSON):
                raise RecordError(source, record.index, record.value.reason, line=record.line, byte=record.value.byte)
            row = convert(record.value)
        except (ValueError, OSError) as error:
            if not isinstance(error, RecordError):
                error = RecordError(source, record.index, str(error), line=record.line)
            raw = record.raw()
            if not policy.handle(error, raw):
                continue
            errors = [error.reason]
            row = {"text": "", "extra": {KEPT_RAW_KEY: raw_text(raw)}}
        get = row.get
        for name, values in plain:
            values.append(get(name))
        for name, values in media:
            values.append(get(name) or [])
        if errors_column is not None:
            errors_column.append(errors)
        count += 1
        if count == batch_rows:
            yield buffer.to_table()
            count = 0
    if count:
        yield buffer.to_table()


def table_from_arrays(buffer: ColumnBuffer, arrays: dict, rows: int) -> pa.Table:
    """A table of ``buffer``'s schema from ready ``arrays`` (``Json`` columns given as their JSON
    text storage): constants repeated, absent media lists empty, other absent columns null.

    Example:
        >>> table = table_from_arrays(buffer, {"text": pa.array(["<v> hi <e>"])}, 1)  # doctest: +SKIP
    """
    full = {}
    for name, field in zip(buffer.schema.names, buffer.schema):
        if name in buffer.constants:
            continue
        array = arrays.get(name)
        if name in buffer._json_columns:
            storage = array if array is not None else pa.nulls(rows, pa.string())
            full[name] = pa.ExtensionArray.from_storage(field.type, storage)
        elif array is not None:
            full[name] = array
        elif name in MEDIA_COLUMNS:
            full[name] = pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], pa.string()), type=field.type)
        else:
            full[name] = pa.nulls(rows, field.type)
    return buffer.table_with(full, rows)


def json_objects(values: list) -> pa.Array:
    """The storage (JSON text, null for ``None``) of a ``Json`` column: each value as
    ``orjson.dumps`` writes it (what :class:`~hf_mmbuilder.formats.builder.ColumnBuffer` stores), made by
    one ``orjson.dumps`` of the whole list cut at its elements (about ten times faster than one
    call per value). O(total size).

    Example:
        >>> json_objects([{"a": 1}, None]).to_pylist()
        ['{"a":1}', None]
    """
    if not values:
        return pa.array([], pa.string())
    data = orjson.dumps(values)
    if len(data) >= 1 << 31:
        return pa.array([None if value is None else orjson.dumps(value) for value in values], pa.string())
    index = scan_records("<values>", lambda _path, _mode: io.BytesIO(data))
    starts, ends = index.starts, index.ends
    # Element k plus the "," (or final "]") after it (orjson writes no spaces), which the slice drops.
    offsets = np.append(starts, ends[-1] + 1).astype(np.int32)
    texts = pc.utf8_slice_codeunits(pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data)), 0, -1)
    missing = pa.array([value is None for value in values], pa.bool_())
    return pc.if_else(missing, pa.scalar(None, pa.string()), texts) if missing.true_count else texts


def one_path_lists(paths: pa.Array, field_type: pa.DataType) -> pa.Array:
    """A list array holding ``[paths[i]]`` in row i (a one-clip media column).

    Example:
        >>> one_path_lists(pa.array(["v.mp4"]), pa.list_(pa.string())).to_pylist()
        [['v.mp4']]
    """
    return pa.ListArray.from_arrays(pa.array(np.arange(len(paths) + 1, dtype=np.int32)), paths, type=field_type)


def _decode_values(batch) -> Optional[list]:
    """Every record of an undecoded JSON batch as a plain value, in one msgspec call; ``None``
    when one is malformed, nested too deep or is not one JSON value (the careful path then
    reports it)."""
    if check_depth(batch) is not None:
        return None
    view = memoryview(batch.buffer)
    base = batch.buffer_offset
    starts, ends = batch.offsets.tolist(), batch.ends.tolist()
    try:
        if batch.layout == "array":
            values = msgspec.json.decode(b"[" + view[starts[0] - base : ends[-1] - base] + b"]")
        else:
            values = msgspec.json.Decoder().decode_lines(b"\n".join([view[s - base : e - base] for s, e in zip(starts, ends)]))
    except msgspec.DecodeError:
        return None
    return values if len(values) == len(starts) else None


def json_fast_tables(
    shard,
    opener: Callable,
    features,
    constants: dict,
    fast_columns: Optional[Callable[[list], Optional[dict]]],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
) -> Iterator[pa.Table]:
    """:func:`rows_to_tables` over a JSON shard, a batch of a few MB at a time: the batch is
    decoded in one call and ``fast_columns(values)`` builds its columns at once (Arrow arrays,
    ``Json`` columns as JSON text); when it returns ``None`` (a record it cannot take as is: bad,
    or unusual) or ``fast_columns`` is ``None``, the batch goes record by record through
    ``convert``, which reports each bad record exactly. ``fast_columns`` may consume its values.
    ``opener`` is the loading script's ``open``: ``datasets`` swaps it for one that reads archive
    members (``zip://...``) in the builder's modules, not in this helper module.

    Complexity: O(records); memory O(batch).

    Example:
        >>> tables = json_fast_tables(shard, open, features, {}, columns, convert, policy, "a.jsonl")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    for batch in iter_batches(shard.index, shard.first, shard.stop, None, opener, decode=False, record_offset=shard.record_offset):
        arrays = None
        if fast_columns is not None:
            with gc_paused():
                values = _decode_values(batch)
                arrays = fast_columns(values) if values is not None else None
        if arrays is not None:
            yield table_from_arrays(buffer, arrays, len(batch.indexes))
            continue
        with gc_paused():
            batch.records = [batch.decode(k) for k in range(len(batch.indexes))]
        yield from rows_to_tables(features, constants, _batch_records(batch), convert, policy, source)


def _batch_records(batch) -> Iterator[SourceRecord]:
    lines = batch.lines.tolist()
    for k, record in enumerate(batch.records):
        yield SourceRecord(batch.indexes[k], lines[k], record, functools.partial(batch.raw, k))
