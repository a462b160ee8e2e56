"""Moving data between ``datasets``, Ray Data and Parquet: batched ops under ``map_batches``,
``from_hf`` / ``to_hf``, and all-or-nothing Parquet shard folders
(:mod:`hf_mmbuilder.output_folder`)."""

from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np
import pyarrow as pa

from ..output_folder import OutputFolder, Staging
from .session import ensure_session



# The Parquet writers' shard names, and their entry in an output folder's manifest.
PART_NAME = re.compile(r"part-\d{6}\.parquet")
PARQUET_WRITER = "parquet"


# ---------------------------------------------------------------------------------------------
# Ops under map_batches


class BatchOp:
    """Adapter running a ``datasets``-style batched op (``hf_mmbuilder.ops``, ``MinHashSignature``
    ...) as a Ray Data ``map_batches`` function, unchanged.

    An op given a ``pyarrow.Table`` returns the whole table (passed through); given a dict it
    returns only its new columns, which ``datasets`` merges into the batch: the adapter does that
    merge, so Ray keeps every column. With ``batch_format="numpy"`` the merged batch goes back as
    an Arrow table, because Ray cannot turn ragged object columns (lists of paths with empty
    lists) back into Arrow lists and would pickle them.

    Example:
        >>> from hf_mmbuilder.ops import ComputeStats
        >>> BatchOp(ComputeStats(media=False))(pa.table({"text": ["hi"]})).column_names
        ['text', '__dj__stats__']
    """

    def __init__(self, op):
        self.op = op

    def __call__(self, batch):
        result = self.op(batch)
        if isinstance(result, pa.Table):
            return result
        if not isinstance(batch, pa.Table):
            batch = pa.table({name: _arrow_values(values) for name, values in batch.items()})
        for name, values in result.items():
            array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else _arrow_values(values)
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, name, array) if index >= 0 else batch.append_column(name, array)
        return batch


def _arrow_values(values) -> pa.Array:
    if isinstance(values, np.ndarray) and values.ndim == 2:
        # A fixed-width matrix per row (MinHash signatures, band keys) is one list per row.
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    if isinstance(values, np.ndarray) and values.dtype == object:
        return pa.array([value.tolist() if isinstance(value, np.ndarray) else value for value in values])
    return pa.array(values)


def map_batches(ray_ds, op, *, batch_format: str = "pyarrow", batch_size: Optional[int] = 4096, **map_batches_kwargs):
    """``ray_ds.map_batches`` with a batched op of ``hf_mmbuilder.ops`` (or any ``datasets``-style
    batched function), see :class:`BatchOp`.

    Example:
        >>> from hf_mmbuilder.ops import RedactPII
        >>> redacted = map_batches(ray.data.from_items([{"text": "a@b.com"}]), RedactPII())  # doctest: +SKIP
        >>> redacted.take(1)[0]["text"]  # doctest: +SKIP
        '[EMAIL]'
    """
    if batch_format not in ("pyarrow", "numpy"):
        raise ValueError(f"batch_format must be 'pyarrow' or 'numpy', got {batch_format!r}")
    return ray_ds.map_batches(BatchOp(op), batch_format=batch_format, batch_size=batch_size, **map_batches_kwargs)


# ---------------------------------------------------------------------------------------------
# datasets <-> Ray


def from_hf(ds, *, via_parquet: Optional[str] = None, rows_per_shard: int = 100_000):
    """A ``datasets.Dataset`` as a Ray Dataset.

    Without ``via_parquet`` the Arrow table goes through the object store in blocks of
    ``rows_per_shard`` rows (``ray.data.from_huggingface``; fine while it fits there).
    With ``via_parquet=FOLDER`` (on storage every node sees, for big data) the rows are written
    there as Parquet files of ``rows_per_shard`` rows and read back by the cluster, never held
    whole in memory.

    Example:
        >>> ray_ds = from_hf(datasets.Dataset.from_dict({"text": ["a", "b"]}))  # doctest: +SKIP
        >>> ray_ds.count()  # doctest: +SKIP
        2
    """
    ray = ensure_session()
    if via_parquet is None:
        # Blocks of rows_per_shard rows, so the cluster works on them in parallel.
        return ray.data.from_huggingface(ds, override_num_blocks=max(1, -(-len(ds) // rows_per_shard)))
    os.makedirs(via_parquet, exist_ok=True)
    paths = []
    num_files = max(1, -(-len(ds) // rows_per_shard))
    for index in range(num_files):
        path = os.path.join(via_parquet, f"part-{index:06d}.parquet")
        ds.select(range(index * rows_per_shard, min(len(ds), (index + 1) * rows_per_shard))).to_parquet(path)
        paths.append(path)
    return ray.data.read_parquet(paths)


def to_hf(ray_ds, *, via_parquet: Optional[str] = None, cache_dir: Optional[str] = None):
    """A Ray Dataset as a ``datasets.Dataset``.

    Rows come in the order Ray's execution gives the blocks; for the input order across blocks,
    set ``ray.data.DataContext.get_current().execution_options.preserve_order = True`` first.
    Without ``via_parquet`` the blocks are fetched into the driver; with ``via_parquet=FOLDER``
    they are written there (:func:`write_parquet`) and loaded with
    ``load_dataset("parquet", ...)``, memory-mapped.

    Example:
        >>> to_hf(ray.data.from_items([{"text": "a"}]))["text"]  # doctest: +SKIP
        ['a']
    """
    import datasets

    ray = ensure_session()
    if via_parquet is None:
        tables = [table for table in ray.get(ray_ds.to_arrow_refs()) if table.num_rows]
        return datasets.Dataset(pa.concat_tables(tables, promote_options="default") if tables else pa.table({}))
    files = write_parquet(ray_ds, via_parquet)
    return datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)


def write_parquet(ray_ds, output_dir: str, *, rows_per_file: Optional[int] = None, overwrite: bool = False) -> list[str]:
    """Write a Ray Dataset as Parquet shards ``part-NNNNNN.parquet`` into ``output_dir``, all or nothing.

    Files are written into a staging folder and moved into ``output_dir`` only after every write
    task succeeded (retried tasks rewrite their own file names); a failed job removes it, so
    ``output_dir`` never holds a partial result. An existing non-empty ``output_dir`` is refused
    unless ``overwrite=True``, which replaces only the shards an earlier write put there and keeps
    every other file (see :mod:`hf_mmbuilder.output_folder`). Returns the shard paths, in Ray's
    block order.

    Example:
        >>> write_parquet(ray_ds, "out/parquet")  # doctest: +SKIP
        ['/abs/out/parquet/part-000000.parquet', ...]
    """
    ensure_session()
    return write_parquet_staged(ray_ds, parquet_folder(output_dir, overwrite), rows_per_file)


def write_parquet_staged(ray_ds, folder: OutputFolder, rows_per_file: Optional[int]) -> list[str]:
    with folder.staging() as staging:
        kwargs = {"min_rows_per_file": rows_per_file} if rows_per_file else {}
        ray_ds.write_parquet(str(staging.files), **kwargs)
        # Ray names files by write id, task and block index: sorted, they are in block order.
        for index, name in enumerate(sorted(name for name in os.listdir(staging.files) if name.endswith(".parquet"))):
            os.rename(staging.files / name, staging.files / f"part-{index:06d}.parquet")
        return commit_parquet(folder, staging)


def parquet_folder(output_dir: str, overwrite: bool) -> OutputFolder:
    return OutputFolder(output_dir, PARQUET_WRITER, overwrite=overwrite, rewrite_own=False, label="output_dir")


def commit_parquet(folder: OutputFolder, staging: Staging) -> list[str]:
    """Move the staged shards into the output folder; returns their final paths, sorted."""
    names = sorted(name for name in os.listdir(staging.files) if PART_NAME.fullmatch(name))
    folder.commit(staging, names=PART_NAME)
    return [str(folder.path / name) for name in names]
