"""Arrow plumbing shared by the package: string columns as NumPy buffer views, and table batches.

The compiled kernels take a string column as its UTF-8 bytes plus offsets; these helpers make
those views without copying. ``string_buffers`` returns a named pair, so callers read ``.offsets``
and ``.data`` by name and can never swap them.
"""

from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class StringBuffers(NamedTuple):
    """A string array's offsets (``len + 1``, int32 for ``string``, int64 for ``large_string``) and bytes."""

    offsets: np.ndarray
    data: np.ndarray


def string_array(column, row_offset: int = 0, name: str = "text") -> pa.Array:
    """One contiguous ``large_string`` array; raises on nulls, naming the first null row.

    ``column`` is an Arrow array, a chunked array or a sequence of str; ``row_offset`` is the global
    row of its first value, for the error message.

    Example:
        >>> string_array(["a", "b"]).type
        DataType(large_string)
        >>> string_array(["a", None], row_offset=10)
        Traceback (most recent call last):
            ...
        ValueError: row 11: 'text' is null; fill or filter null texts before dedup
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    elif not isinstance(column, pa.Array):
        column = pa.array(list(column), type=pa.large_string())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ValueError(f"column {name!r} must hold strings, not {column.type}")
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        raise ValueError(f"row {row_offset + first}: {name!r} is null; fill or filter null texts before dedup")
    return column.cast(pa.large_string())


def string_buffers(array: pa.Array) -> StringBuffers:
    """Zero-copy views of a ``string`` or ``large_string`` array without nulls.

    The offsets start wherever the (possibly sliced) array starts in the data buffer; a null data
    buffer (every string empty) gives zero bytes.

    Example:
        >>> buffers = string_buffers(pa.array(["ab", "c", "def"]).slice(1))
        >>> buffers.offsets.tolist(), buffers.offsets.dtype.name, bytes(buffers.data[buffers.offsets[0]:buffers.offsets[-1]])
        ([2, 3, 6], 'int32', b'cdef')
        >>> string_buffers(pa.array([""], pa.large_string())).offsets.dtype.name
        'int64'
    """
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    return StringBuffers(offsets, data)


def string_list_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(list offsets, string offsets, bytes)`` of a ``list<string>`` array.

    The list offsets (slice offset applied) index the strings of the whole child array.

    Example:
        >>> lists, offsets, data = string_list_buffers(pa.array([["a"], ["bc", "d"]]).slice(1))
        >>> lists.tolist(), offsets.tolist(), bytes(data)
        ([1, 3], [0, 1, 3, 4], b'abcd')
    """
    width = np.int64 if pa.types.is_large_list(array.type) else np.int32
    lists = np.frombuffer(array.buffers()[1], dtype=width)[array.offset : array.offset + len(array) + 1]
    return (lists, *string_buffers(array.values))


def iter_tables(data, batch_size: int, columns: Optional[Sequence[str]] = None) -> Iterator[tuple[int, pa.Table]]:
    """``(row offset, table)`` batches of a ``pa.Table`` (one batch), a Dataset, or an iterable of tables.

    ``columns`` keeps only those columns (a Dataset reads only them).

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "n": [1, 2, 3]})
        >>> [(offset, table.column_names, len(table)) for offset, table in iter_tables(ds, 2, ["text"])]
        [(0, ['text'], 2), (2, ['text'], 1)]
    """
    if isinstance(data, pa.Table):
        yield 0, data.select(list(columns)) if columns is not None else data
        return
    if hasattr(data, "with_format"):
        dataset = data.select_columns(list(columns)) if columns is not None else data
        tables: Iterable[pa.Table] = dataset.with_format("arrow").iter(batch_size=batch_size)
    else:
        tables = (table.select(list(columns)) if columns is not None else table for table in data)
    offset = 0
    for table in tables:
        yield offset, table
        offset += len(table)


def check_column(data, column: str) -> None:
    """Raise ``ValueError`` naming the columns when a Dataset or table lacks ``column``.

    Example:
        >>> check_column(pa.table({"text": ["a"]}), "images")
        Traceback (most recent call last):
            ...
        ValueError: dataset has no column 'images' (columns: text)
    """
    if column not in data.column_names:
        raise ValueError(f"dataset has no column {column!r} (columns: {', '.join(data.column_names)})")


def batch_column(batch, column: str):
    """Column ``column`` of a ``.map`` batch: an Arrow column of a table, else the dict's value.

    Example:
        >>> batch_column({"text": ["a"]}, "text"), batch_column(pa.table({"text": ["a"]}), "text").type
        (['a'], DataType(string))
    """
    if isinstance(batch, pa.Table):
        return batch.column(column)
    return batch[column]


def strings_from_buffers(offsets: np.ndarray, data: np.ndarray, valid: Optional[np.ndarray] = None) -> pa.Array:
    """An Arrow string array over int32 ``offsets`` into UTF-8 ``data`` (a compiled parser's
    output), null where ``valid`` is false; validated, so bytes that are not UTF-8 raise
    ``pyarrow.ArrowInvalid``.

    Example:
        >>> strings_from_buffers(np.array([0, 2, 2], np.int32), np.frombuffer(b"hi", np.uint8), np.array([True, False])).to_pylist()
        ['hi', None]
    """
    count = len(offsets) - 1
    bitmap = None if valid is None else pa.py_buffer(np.packbits(np.asarray(valid, bool), bitorder="little"))
    array = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data[: offsets[-1]]), bitmap)
    array.validate(full=True)
    return array


def string_lists_from_buffers(list_offsets: np.ndarray, item_offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A ``list<string>`` array: row ``r`` holds items ``list_offsets[r]:list_offsets[r + 1]``,
    item ``k`` the bytes ``data[item_offsets[k]:item_offsets[k + 1]]``.

    Example:
        >>> lists = string_lists_from_buffers(np.array([0, 2, 2], np.int32), np.array([0, 1, 3], np.int32), np.frombuffer(b"abc", np.uint8))
        >>> lists.to_pylist()
        [['a', 'bc'], []]
    """
    items = strings_from_buffers(item_offsets[: list_offsets[-1] + 1], data)
    return pa.ListArray.from_arrays(pa.array(list_offsets, pa.int32()), items)
