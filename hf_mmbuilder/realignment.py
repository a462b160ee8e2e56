"""Realign MMC4 similarity matrices to the images and sentences that survived processing.

An MMC4 row keeps its original ``similarity_matrix`` (original images x original sentences) and
original per-image ``matched_text_index``, plus ``image_index`` (per current image: its original
row, -1 for an image added by processing) and ``sentence_index`` (per current sentence: its original
column), which processing keeps in step with ``images`` and the text chunks. :func:`realign_batch`
adds, per row:

- ``realigned_similarity_matrix``: current images x current sentences, the exact sub-matrix of the
  original (rows of images without an original row are NaN);
- ``realigned_matched_text_index``: per current image, the position of its sentence among the
  current sentences (``method``: ``"repoint"``, ``"argmax"`` or ``"assignment"``; see
  :mod:`hf_mmbuilder.kernels.realign`), -1 when no sentence survives or the image has no row;
- ``realigned_matched_sim``: the similarity of that pair, NaN with -1;
- ``unaligned_images``: positions of the images with ``image_index == -1`` (flagged, never dropped).

The work runs in one compiled kernel per batch on the Arrow buffers (list offsets + flat values).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from .kernels.realign import METHODS, RealignError, realign_flat

INPUT_COLUMNS = ("similarity_matrix", "matched_text_index", "image_index", "sentence_index")
OUTPUT_COLUMNS = ("realigned_similarity_matrix", "realigned_matched_text_index", "realigned_matched_sim", "unaligned_images")

_INT32_MAX = 2**31 - 1


def _single_array(column) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    return pa.array(column)


def _row_name(position: int, indices: Sequence[int] | None) -> str:
    return f"row {indices[position] if indices is not None else position}"


def _list_level(array: pa.Array, name: str) -> tuple[np.ndarray, pa.Array]:
    """Zero-based offsets (int32, or int64 for a large list) and the slice of child values this
    (possibly sliced) list array uses.

    ``ListArray.values`` ignores the parent's slice, and a ``Dataset.map`` batch is a slice of the
    whole table: cutting the child to the batch keeps every batch's cost proportional to its size.
    The kernel reads either offset width, so they are rebased when needed, never widened.
    """
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise ValueError(f"column {name!r} must be a list column, got {array.type}")
    offsets = array.offsets.to_numpy()
    start = int(offsets[0]) if offsets.size else 0
    end = int(offsets[-1]) if offsets.size else 0
    return (offsets - start if start else offsets), array.values.slice(start, end - start)


def _first_null(array: pa.Array) -> int:
    return int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0]) if array.null_count else -1


def _doc_of(offsets: np.ndarray, position: int) -> int:
    return int(np.searchsorted(offsets, position, side="right")) - 1


def realign_batch(batch, indices: Sequence[int] | None = None, *, method: str = "repoint"):
    """Realign a batch of MMC4 rows; use with ``Dataset.map(batched=True)``.

    Parameters
    ----------
    batch : pyarrow.Table or mapping of column -> values
        Columns ``similarity_matrix`` (list of list of float), ``matched_text_index``,
        ``image_index`` and ``sentence_index`` (list of int). A ``pyarrow.Table`` (a dataset in
        ``"arrow"`` format) is read zero-copy; a mapping of Python lists (the default ``.map``
        format) is converted first.
    indices : sequence of int, optional
        Dataset row of each batch row (``with_indices=True``), used in error messages.
    method : {"repoint", "argmax", "assignment"}
        How each image's sentence is chosen (module docstring).

    Returns
    -------
    pyarrow.Table or dict
        For a table: the input table with the four ``realigned_*``/``unaligned_images`` columns
        appended (what an ``"arrow"``-formatted ``.map`` expects). For a mapping: a dict of the
        four new columns as Python lists.

    Raises
    ------
    ValueError
        A missing column, a null, a ragged matrix, rows != ``len(matched_text_index)``, or an
        index out of range, naming the row.

    Complexity: O(values in + values out) for ``"repoint"``/``"argmax"``, plus a small linear
    assignment per document for ``"assignment"``; no per-row Python.

    Example
    -------
    >>> out = realign_batch({"similarity_matrix": [[[0.1, 0.9, 0.2], [0.8, 0.3, 0.4]]],
    ...                      "matched_text_index": [[1, 0]], "image_index": [[1, -1]],
    ...                      "sentence_index": [[2, 0]]}, method="argmax")
    >>> out["realigned_matched_text_index"], out["unaligned_images"]
    ([[1, -1]], [[1]])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    columns = batch.column_names if isinstance(batch, pa.Table) else list(batch.keys())
    missing = [name for name in INPUT_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"MMC4 realignment needs columns {list(INPUT_COLUMNS)}; missing {missing} (have {columns})")
    arrays = {name: _single_array(batch[name]) for name in INPUT_COLUMNS}

    for name, array in arrays.items():
        if (position := _first_null(array)) >= 0:
            raise ValueError(f"{name} is missing (null) in {_row_name(position, indices)}")
    doc_rows, matrix_rows = _list_level(arrays["similarity_matrix"], "similarity_matrix")
    if not (pa.types.is_list(matrix_rows.type) or pa.types.is_large_list(matrix_rows.type)):
        raise ValueError(f"similarity_matrix must be a list of lists of float, got {arrays['similarity_matrix'].type}")
    if (row := _first_null(matrix_rows)) >= 0:
        doc = _doc_of(doc_rows, row)
        raise ValueError(f"{_row_name(doc, indices)}: similarity_matrix row {row - doc_rows[doc]} is null")
    row_values, matrix_values = _list_level(matrix_rows, "similarity_matrix")
    if (position := _first_null(matrix_values)) >= 0:
        raise ValueError(f"{_row_name(_doc_of(doc_rows, _doc_of(row_values, position)), indices)}: similarity_matrix has a null value")
    if not pa.types.is_floating(matrix_values.type):
        raise ValueError(f"similarity_matrix must hold floats, got {matrix_values.type}")
    values = matrix_values.to_numpy(zero_copy_only=False)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    flat = {}
    for name in INPUT_COLUMNS[1:]:
        offsets, child = _list_level(arrays[name], name)
        if (position := _first_null(child)) >= 0:
            raise ValueError(f"{_row_name(_doc_of(offsets, position), indices)}: {name} has a null value")
        if not pa.types.is_integer(child.type):
            raise ValueError(f"{name} must hold integers, got {child.type}")
        flat[name] = (offsets, child.to_numpy(zero_copy_only=False).astype(np.int64, copy=False))
    try:
        out = realign_flat(doc_rows, row_values, values, *flat["matched_text_index"], *flat["image_index"], *flat["sentence_index"], method=method)
    except RealignError as error:
        raise ValueError(f"{_row_name(error.doc, indices)}: {error.reason}") from None

    if out["row_values"][-1] > _INT32_MAX:
        raise ValueError(f"the realigned matrices of this batch hold {out['row_values'][-1]} values, more than a list column can; use a smaller batch_size")
    value_type = pa.float32() if values.dtype == np.float32 else pa.float64()
    matrix = pa.ListArray.from_arrays(
        pa.array(out["doc_rows"].astype(np.int32)),
        pa.ListArray.from_arrays(pa.array(out["row_values"].astype(np.int32)), pa.array(out["values"], type=value_type)),
    )
    image_offsets = pa.array(out["doc_rows"].astype(np.int32))
    new_columns = {
        "realigned_similarity_matrix": matrix,
        "realigned_matched_text_index": pa.ListArray.from_arrays(image_offsets, pa.array(out["matched_text_index"])),
        "realigned_matched_sim": pa.ListArray.from_arrays(image_offsets, pa.array(out["matched_sim"])),
        "unaligned_images": pa.ListArray.from_arrays(pa.array(out["unaligned_offsets"].astype(np.int32)), pa.array(out["unaligned"])),
    }
    if isinstance(batch, pa.Table):
        table = batch
        for name, array in new_columns.items():
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, array)
            else:
                table = table.append_column(name, array)
        return table
    return {name: array.to_pylist() for name, array in new_columns.items()}


def realign(ds, method: str = "repoint", *, batch_size: int = 1000, num_proc: int | None = None, **map_kwargs):
    """Add realigned MMC4 similarity columns to every row of ``ds`` (see :func:`realign_batch`).

    Parameters
    ----------
    ds : datasets.Dataset
        Rows with ``similarity_matrix``, ``matched_text_index``, ``image_index`` and
        ``sentence_index``.
    method : {"repoint", "argmax", "assignment"}
        How each image's sentence is chosen.
    batch_size, num_proc : int
        Passed to ``Dataset.map``.
    **map_kwargs
        Other ``Dataset.map`` arguments (``desc``, ``load_from_cache_file``, ...).

    Returns
    -------
    datasets.Dataset
        ``ds`` with ``realigned_similarity_matrix``, ``realigned_matched_text_index``,
        ``realigned_matched_sim`` and ``unaligned_images`` (replaced if present), in ``ds``'s format.

    Complexity: one compiled pass per batch, O(total matrix values).

    Example
    -------
    >>> from datasets import Dataset
    >>> ds = Dataset.from_dict({"similarity_matrix": [[[0.1, 0.9], [0.8, 0.3]]], "matched_text_index": [[1, 0]],
    ...                         "image_index": [[1, 0]], "sentence_index": [[1]]})
    >>> realign(ds, "argmax")[0]["realigned_matched_text_index"]
    [0, 0]
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    missing = [name for name in INPUT_COLUMNS if name not in ds.column_names]
    if missing:
        raise ValueError(f"MMC4 realignment needs columns {list(INPUT_COLUMNS)}; missing {missing} (have {ds.column_names})")
    map_kwargs.setdefault("desc", f"realign ({method})")
    original_format = ds.format
    out = ds.with_format("arrow").map(
        realign_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        num_proc=num_proc,
        fn_kwargs={"method": method},
        **map_kwargs,
    )
    columns = original_format["columns"]
    if columns is not None and set(columns) != set(ds.column_names):
        columns = list(columns) + [name for name in OUTPUT_COLUMNS if name not in columns]
    else:
        columns = None
    return out.with_format(original_format["type"], columns=columns, output_all_columns=original_format["output_all_columns"], **original_format["format_kwargs"])
