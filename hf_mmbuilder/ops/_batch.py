"""Batch plumbing shared by the ops: Arrow views of a ``.map(batched=True)`` batch, and the stats struct.

A batch arrives as a dict of Python lists (default format) or as a ``pyarrow.Table`` (after
``ds.with_format("arrow")``); the ops read both through Arrow, so the hot loops run on buffers.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import DEFAULT_TOKENS, ROLE_MARKER_PATTERN, SpecialTokens

STATS_COLUMN = "__dj__stats__"


def column(batch, name: str, default=None) -> pa.Array | None:
    """Column ``name`` of a batch as one Arrow array (``default`` when the batch lacks it)."""
    if isinstance(batch, pa.Table):
        if name not in batch.column_names:
            return default
        values = batch.column(name)
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if name not in batch:
        return default
    values = batch[name]
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values)


def num_rows(batch) -> int:
    """Number of rows of a batch (dict of columns or Arrow table)."""
    if isinstance(batch, pa.Table):
        return batch.num_rows
    return len(batch["text"])


def text_column(batch) -> pa.Array:
    """The ``text`` column as ``large_string`` with nulls read as empty strings."""
    text = column(batch, "text")
    if text is None:
        raise ValueError("the batch has no 'text' column (the DJ text column is required)")
    return pc.fill_null(text.cast(pa.large_string()), "")


def protected_pattern(tokens: SpecialTokens = DEFAULT_TOKENS, role_pattern: str = ROLE_MARKER_PATTERN) -> str:
    """Regex (RE2 and Python ``re`` compatible) matching the DJ tokens and role markers of a text."""
    escaped = [re.escape(token) for token in (tokens.image, tokens.audio, tokens.video, tokens.eoc)]
    return "|".join([*escaped, role_pattern])


def media_counts(batch, name: str) -> np.ndarray:
    """Length of each row's media list (0 for a missing column or a null list), int32."""
    values = column(batch, name)
    if values is None:
        return np.zeros(num_rows(batch), dtype=np.int32)
    return pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False).astype(np.int32)


def merge_stats(batch, fields: Mapping[str, pa.Array]) -> pa.StructArray:
    """The batch's ``__dj__stats__`` struct with ``fields`` added (or replaced), as one StructArray."""
    existing = column(batch, STATS_COLUMN)
    merged: dict[str, pa.Array] = {}
    if existing is not None and pa.types.is_struct(existing.type):
        for index in range(existing.type.num_fields):
            name = existing.type.field(index).name
            if name not in fields:
                merged[name] = existing.field(index)
    merged.update(fields)
    return pa.StructArray.from_arrays(list(merged.values()), names=list(merged))


def output(batch, columns: Mapping[str, pa.Array]):
    """The op's return value for ``.map``: the whole batch table with ``columns`` set (Arrow
    batches, zero copy; ``datasets`` replaces the batch with what an Arrow-formatted map returns) or
    the new columns as Python lists (dict batches, which ``datasets`` merges into the row)."""
    if isinstance(batch, pa.Table):
        for name, values in columns.items():
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, name, values) if index >= 0 else batch.append_column(name, values)
        return batch
    return {name: values.to_pylist() for name, values in columns.items()}
