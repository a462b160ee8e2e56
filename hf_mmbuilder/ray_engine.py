"""Scale-out on Ray: conversion, ``hf_mmbuilder.ops`` and MinHash-LSH dedup over a Ray cluster.

Ray is an optional extra (``pip install "hf_mmbuilder[ray]"``); ``import hf_mmbuilder`` never
imports it, this module does so only when one of its functions runs. Every stage runs the same
code as the single-machine path: the loading scripts' parsers, the ops' ``__call__``, and the
dedup stages of :mod:`hf_mmbuilder.dedup` with their Numba kernels.

- **Conversion**: :func:`read_sources` reads many source files (MMC4 ``.jsonl.zip`` shards, LLaVA
  JSON ...) as a Ray Dataset of DJ rows, one task per file, through the builder's own
  ``_plan_file`` / ``_shard_tables``; :func:`write_parquet` writes Parquet shards into a staging
  folder renamed into place only when complete; :func:`convert` does both and reports rejects.
- **Ops**: :func:`map_batches` runs any batched op under ``Dataset.map_batches`` (``pyarrow`` or
  ``numpy`` batches); :func:`from_hf` / :func:`to_hf` move data between ``datasets`` and Ray.
- **Near-duplicate dedup**, the four stages of :mod:`hf_mmbuilder.dedup` on Ray:

  1. signatures and band keys: ``map_batches`` with :func:`hf_mmbuilder.dedup.signature_stage`;
  2. candidate edges: a hash-partitioned shuffle of ``(key, row)`` pairs by group ``(band,
     key % buckets)`` (as many buckets per band as keep a group under 256 MB; one for up to 16M
     rows), then ``lsh.band_edges`` per group in each partition, contracted right there by
     union-find into star edges ``(row, smallest row of its local component)``;
  3. connected components: large-star / small-star rounds (Kiveris et al., "Connected Components
     in MapReduce and Beyond", 2014) over partitions owned by ``row % partitions``, until a round
     changes no partition's edge set; no step holds more than one partition;
  4. filter: the driver keeps rows through ``hf_mmbuilder.dedup`` (:func:`minhash_clusters`), or
     ``map_batches`` drops removed rows shard by shard (:func:`dedup_parquet`).

  Components equal those of the single-machine union-find, so the keep set is the same.

Fault tolerance comes from Ray: a task whose worker dies is retried (Ray Data map tasks without
limit, the shuffle and component tasks up to 3 times), every task is deterministic, and outputs
appear (by renaming a staging folder) only once the whole job has succeeded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from typing import Iterator, Optional, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

# Local names kept so that this change stays in the import block (ray_engine is being split apart).
from .arrow import check_column as _check_column, string_array as _string_array
from .duplicates import MinHashParams, signature_stage
from .errors import ErrorPolicy, RecordError, check_on_error
from .kernels import lsh
from .kernels.unionfind import connected_components

logger = logging.getLogger("hf_mmbuilder")

ROW_ID = "row_id"
_ROWS_PER_BLOCK = 65_536
# Target bytes of (key, row) pairs per stage-2 partition: the memory-bound step.
_PARTITION_BYTES = 256 << 20
_PAIR_BYTES = 8 + 8
_MAX_RETRIES = 3
_MAX_FILTER_BUCKETS = 1024
_NODE_BITS = 32
_INSTALL_HINT = 'the Ray engine needs the ray extra: pip install "hf_mmbuilder[ray]" (ray[data])'


# ---------------------------------------------------------------------------------------------
# Session


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return ray


def init(address: Optional[str] = None, **ray_init_kwargs):
    """Connect to a Ray cluster (``address="auto"`` or ``"host:port"``; default ``RAY_ADDRESS``),
    or start a local one.

    Reuses a session that is already running. Usage statistics are off unless the environment
    turns them on, and the dashboard is off for local sessions (neither is needed here).

    Example:
        >>> from hf_mmbuilder import ray_engine
        >>> ray_engine.init(num_cpus=2)  # doctest: +SKIP
    """
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None:
        ray_init_kwargs.setdefault("include_dashboard", False)
    ray.init(address=address, **ray_init_kwargs)
    return ray


def _session():
    # Functions called without init() join RAY_ADDRESS or start a local cluster, as ray.init does.
    return init()


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1).

    Example:
        >>> cluster_cpus()  # doctest: +SKIP
        2
    """
    return max(1, int(_session().cluster_resources().get("CPU", 1)))


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
    ray = _session()
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

    ray = _session()
    if via_parquet is None:
        tables = [table for table in ray.get(ray_ds.to_arrow_refs()) if table.num_rows]
        return datasets.Dataset(pa.concat_tables(tables, promote_options="default") if tables else pa.table({}))
    files = write_parquet(ray_ds, via_parquet)
    return datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)


def write_parquet(ray_ds, output_dir: str, *, rows_per_file: Optional[int] = None, overwrite: bool = False) -> list[str]:
    """Write a Ray Dataset as Parquet shards into ``output_dir``, all or nothing.

    Files are written into a sibling staging folder that is renamed to ``output_dir`` only after
    every write task succeeded (retried tasks rewrite their own file names); a failed job removes
    it, so ``output_dir`` never holds a partial result. Returns the shard paths, sorted.

    Example:
        >>> write_parquet(ray_ds, "out/parquet")  # doctest: +SKIP
        ['out/parquet/..._000000-0.parquet', ...]
    """
    _session()
    with _staging(output_dir, overwrite) as staging:
        kwargs = {"min_rows_per_file": rows_per_file} if rows_per_file else {}
        ray_ds.write_parquet(staging, **kwargs)
    return _parquet_files(output_dir)


class _staging:
    """A staging folder beside ``output_dir``, renamed into place on success, removed on failure."""

    def __init__(self, output_dir: str, overwrite: bool):
        self.output_dir = os.path.abspath(output_dir)
        if os.path.exists(self.output_dir) and not overwrite:
            raise FileExistsError(f"{self.output_dir} exists; remove it or pass overwrite=True")
        parent = os.path.dirname(self.output_dir)
        os.makedirs(parent, exist_ok=True)
        self.overwrite = overwrite
        self.path = os.path.join(parent, f".{os.path.basename(self.output_dir)}.incomplete-{uuid.uuid4().hex[:12]}")

    def __enter__(self) -> str:
        os.makedirs(self.path)
        return self.path

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return False
        if self.overwrite and os.path.exists(self.output_dir):
            shutil.rmtree(self.output_dir)
        os.rename(self.path, self.output_dir)
        return False


def _parquet_files(folder: str) -> list[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".parquet"))


# ---------------------------------------------------------------------------------------------
# Conversion


class SourceFileError(ValueError):
    """A source file that could not be converted, with its path and the reason.

    Example:
        >>> str(SourceFileError("shard_7.jsonl.zip", "not a zip file"))
        'shard_7.jsonl.zip: not a zip file'
    """

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # Ray sends task errors to the driver pickled; rebuild from the fields, not the message.
        return SourceFileError, (self.path, self.reason)


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert` wrote and what it rejected.

    ``rejected_files``: one ``{"file", "reason"}`` per unreadable source file;
    ``rejected_records``: the bad records of readable files (``on_error="skip"``), as the
    builders' rejects files list them. Both are also in ``rejects_path`` (JSON lines).

    Example:
        >>> ConversionReport("out", ["out/a.parquet"], 10, [], [], None).num_rows
        10
    """

    output_dir: str
    files: list[str]
    num_rows: int
    rejected_files: list[dict]
    rejected_records: list[dict]
    rejects_path: Optional[str]


def _source_members(path: str, scratch: str) -> list[str]:
    """The data files inside one source: the file itself, or the members of a ``.zip`` (as
    ``datasets`` extracts MMC4's ``.jsonl.zip`` shards for the builders)."""
    if not path.endswith(".zip"):
        if not os.path.isfile(path):
            raise SourceFileError(path, "no such file")
        return [path]
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                name for name in archive.namelist()
                if not name.endswith("/") and not any(part.startswith((".", "__")) for part in name.split("/"))
            )
            archive.extractall(scratch, members=names)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise SourceFileError(path, f"unreadable zip archive ({type(error).__name__}: {error})") from error
    if not names:
        raise SourceFileError(path, "zip archive holds no data file")
    return [os.path.join(scratch, name) for name in names]


def _convert_files(batch: pa.Table, format_name: str, options: dict, on_error: str, rejects_dir: Optional[str]) -> Iterator[pa.Table]:
    """``map_batches`` function: source files in, their DJ tables out (the builder's parser)."""
    from .formats.catalog import builder_class
    from .formats.fingerprint import code_hash

    with tempfile.TemporaryDirectory(prefix="hf_mmbuilder_ray_") as scratch:
        builder = builder_class(format_name)(
            cache_dir=os.path.join(scratch, "cache"),
            dataset_name=f"hf_mmbuilder/{format_name}",
            hash=code_hash(format_name),
            on_error=on_error,
            **options,
        )
        for path, index in zip(batch.column("path").to_pylist(), batch.column("index").to_pylist()):
            record_rejects = os.path.join(rejects_dir, f"{index:08d}.records.jsonl") if rejects_dir else None
            if record_rejects and os.path.exists(record_rejects):
                os.remove(record_rejects)  # a retried task starts this file's rejects afresh
            extracted = tempfile.mkdtemp(dir=scratch)
            try:
                # A file's rows are released only once the whole file parsed, so a file rejected
                # half way leaves none of its rows behind.
                tables = list(_file_tables(builder, path, record_rejects, extracted, on_error))
            except Exception as error:  # noqa: BLE001 - every failure is reported with its file
                failure = _as_source_error(path, error)
                if on_error == "raise":
                    raise failure from error
                _write_json_atomic(os.path.join(rejects_dir, f"{index:08d}.file.json"), {"file": path, "reason": failure.reason})
                logger.warning("skipped source file %s", failure)
                continue
            finally:
                shutil.rmtree(extracted, ignore_errors=True)
            yield from tables


def _as_source_error(path: str, error: Exception) -> SourceFileError:
    if isinstance(error, SourceFileError):
        return error
    if isinstance(error, RecordError):
        # Its message already starts with the file; the reason keeps the record and line.
        return SourceFileError(path, str(error).removeprefix(f"{error.source}: "))
    return SourceFileError(path, f"{type(error).__name__}: {error}")


def _file_tables(builder, path: str, record_rejects: Optional[str], extracted: str, on_error: str) -> Iterator[pa.Table]:
    media_root = builder.config.media_root or os.path.dirname(path)
    shard_id = 0
    with ErrorPolicy(on_error, record_rejects) as policy:
        for member in _source_members(path, extracted):
            for shard in builder._plan_file(shard_id, member, path, media_root):
                shard_id += 1
                yield from builder._shard_tables(shard, policy)


def _write_json_atomic(path: str, value) -> None:
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(temporary, "wb") as handle:
        handle.write(orjson.dumps(value))
    os.replace(temporary, path)


def read_sources(format_name: str, files: Sequence[str], *, on_error: str = "raise", rejects_dir: Optional[str] = None, **options):
    """Source files of one format as a lazy Ray Dataset of DJ rows, one task per file.

    Each task runs the format's builder (``hf_mmbuilder.load`` gives the same rows); ``.zip``
    sources (MMC4's ``.jsonl.zip`` shards) are extracted in the task. ``options`` are the format's
    config options (tokens, ``media_root``, ...). ``on_error`` applies to bad records as in the
    builders and to whole files that cannot be read (missing, corrupt zip, broken JSON layout):
    ``"raise"`` fails the job with the file and reason; ``"skip"`` / ``"keep"`` leave the file out
    and record it (and, with ``"skip"``, its bad records) in ``rejects_dir``, a folder every node
    can write (required then); :func:`read_rejects` lists them once the dataset has executed.

    Example:
        >>> ds = read_sources("mmc4", ["docs_shard_0_v3.jsonl.zip", "docs_shard_1_v3.jsonl.zip"])  # doctest: +SKIP
        >>> ds.schema().names[:4]  # doctest: +SKIP
        ['text', 'images', 'audios', 'videos']
    """
    check_on_error(on_error)
    if on_error != "raise" and rejects_dir is None:
        raise ValueError(f"on_error={on_error!r} needs rejects_dir=, a folder for the rejected files and records")
    if rejects_dir is not None:
        os.makedirs(rejects_dir, exist_ok=True)
    if not files:
        raise ValueError("no source files given")
    ray = _session()
    items = [{"path": os.path.abspath(path), "index": index} for index, path in enumerate(files)]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _convert_files,
        fn_kwargs={"format_name": format_name, "options": dict(options), "on_error": on_error, "rejects_dir": rejects_dir},
        batch_size=1,
        batch_format="pyarrow",
    )


def read_rejects(rejects_dir: str) -> tuple[list[dict], list[dict]]:
    """``(rejected_files, rejected_records)`` recorded by :func:`read_sources` in ``rejects_dir``,
    in source-file order.

    Example:
        >>> files, records = read_rejects("out.rejects")  # doctest: +SKIP
        >>> files[0]["reason"]  # doctest: +SKIP
        'unreadable zip archive (BadZipFile: File is not a zip file)'
    """
    rejected_files, rejected_records = [], []
    for name in sorted(os.listdir(rejects_dir)):
        path = os.path.join(rejects_dir, name)
        if name.endswith(".file.json"):
            with open(path, "rb") as handle:
                rejected_files.append(orjson.loads(handle.read()))
        elif name.endswith(".records.jsonl"):
            with open(path, "rb") as handle:
                rejected_records.extend(orjson.loads(line) for line in handle if line.strip())
    return rejected_files, rejected_records


def convert(
    format_name: str,
    files: Sequence[str],
    output_dir: str,
    *,
    on_error: str = "raise",
    rows_per_file: Optional[int] = None,
    overwrite: bool = False,
    **options,
) -> ConversionReport:
    """Convert many source files to DJ-format Parquet shards on the Ray cluster.

    ``output_dir`` appears only when the whole job succeeded (:func:`write_parquet`); it loads with
    ``datasets.load_dataset("parquet", data_files=report.files)`` or goes to ``hf_mmbuilder.publish``.
    Unreadable files and bad records follow ``on_error`` (:func:`read_sources`); with ``"skip"`` or
    ``"keep"`` they are listed in the report and in ``<output_dir>.rejects.jsonl``, with a warning
    per file. With ``"raise"`` the first bad file stops the job with a :class:`SourceFileError`.

    Example:
        >>> report = convert("llava", ["a.json", "b.json"], "out/llava", on_error="skip")  # doctest: +SKIP
        >>> report.num_rows, report.rejected_files  # doctest: +SKIP
        (1000, [{'file': '/data/b.json', 'reason': "..."}])
    """
    output_dir = os.path.abspath(output_dir)
    rejects_dir = None if on_error == "raise" else tempfile.mkdtemp(prefix=".rejects-", dir=os.path.dirname(output_dir) or ".")
    try:
        ray_ds = read_sources(format_name, files, on_error=on_error, rejects_dir=rejects_dir, **options)
        try:
            written = write_parquet(ray_ds, output_dir, rows_per_file=rows_per_file, overwrite=overwrite)
        except Exception as error:
            raise _source_error(error) from error
        rejected_files, rejected_records = read_rejects(rejects_dir) if rejects_dir else ([], [])
    finally:
        if rejects_dir:
            shutil.rmtree(rejects_dir, ignore_errors=True)
    rejects_path = None
    if rejected_files or rejected_records:
        rejects_path = output_dir.rstrip(os.sep) + ".rejects.jsonl"
        with open(rejects_path, "wb") as handle:
            for entry in rejected_files + rejected_records:
                handle.write(orjson.dumps(entry) + b"\n")
        logger.warning("%d source file(s) and %d record(s) rejected; listed in %s", len(rejected_files), len(rejected_records), rejects_path)
    num_rows = sum(pq.ParquetFile(path).metadata.num_rows for path in written)
    return ConversionReport(output_dir, written, num_rows, rejected_files, rejected_records, rejects_path)


def _source_error(error: BaseException) -> BaseException:
    """The :class:`SourceFileError` a Ray task raised, out of Ray's wrapping, else ``error``."""
    seen = error
    while seen is not None:
        if isinstance(seen, SourceFileError):
            return SourceFileError(seen.path, seen.reason)
        seen = seen.__cause__ or getattr(seen, "cause", None)
    return error


# ---------------------------------------------------------------------------------------------
# Dedup, stage 1: band keys


def _band_keys(batch: pa.Table, params: MinHashParams, column: str) -> pa.Table:
    """``map_batches`` function: ``row_id`` + text -> ``row_id`` + one uint64 column per band."""
    row_ids = batch.column(ROW_ID).combine_chunks()
    first = int(row_ids[0].as_py()) if len(row_ids) else 0
    keys = signature_stage(_string_array(batch.column(column), first, column), params)
    return keys.set_column(0, ROW_ID, row_ids)


class _all_cpus_to_one_map:
    """Run a one-map Ray Data pipeline with Ray Data's per-operator resource reservation off.

    The reservation keeps a share of the CPUs for each operator of a plan; for a read-then-map
    plan on a small cluster (2 CPUs) it holds the map to one task until the first one finishes.
    The setting is global to the process, so it is restored afterwards."""

    def __enter__(self):
        self.context = _ray().data.DataContext.get_current()
        self.saved = self.context.op_resource_reservation_enabled
        self.context.op_resource_reservation_enabled = False

    def __exit__(self, *exc):
        self.context.op_resource_reservation_enabled = self.saved
        return False


def _band_key_refs(ray_ds, params: MinHashParams, column: str) -> list:
    """Stage 1 on the cluster: object refs of the band-key blocks."""
    blocks = ray_ds.map_batches(
        _band_keys,
        fn_kwargs={"params": params, "column": column},
        batch_size=None,
        batch_format="pyarrow",
        zero_copy_batch=True,
    )
    with _all_cpus_to_one_map():
        return list(blocks.to_arrow_refs())


# ---------------------------------------------------------------------------------------------
# Dedup, stage 2: hash-partitioned shuffle of band keys, candidate edges, local contraction


def _split_band_keys(table: pa.Table, partitions: int, key_buckets: int) -> list:
    """Map side of the shuffle: a band-key block cut into groups ``(band, key % key_buckets)``,
    group ``g = band * key_buckets + bucket`` going to partition ``g % partitions``. With one
    bucket per band a band column moves whole (no per-key work); more buckets bound the memory
    of a group. Returns, per partition, a list of ``(group, keys, rows)``."""
    row_ids = table.column(ROW_ID).to_numpy()
    names = [name for name in table.column_names if name.startswith("band_")]
    out = [[] for _ in range(partitions)]
    for band, name in enumerate(names):
        keys = table.column(name).to_numpy()
        pieces = [(keys, row_ids)] if key_buckets == 1 else _split(key_buckets, keys % np.uint64(key_buckets), keys, row_ids)
        for bucket, (bucket_keys, bucket_rows) in enumerate(pieces):
            group = band * key_buckets + bucket
            out[group % partitions].append((group, bucket_keys, bucket_rows))
    return out


def _split(partitions: int, owner: np.ndarray, *arrays: np.ndarray) -> list:
    # A 16-bit owner makes numpy's stable sort a linear radix sort.
    owner = owner.astype(np.int16 if partitions < (1 << 15) else np.int64)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(partitions + 1, dtype=owner.dtype))
    return [tuple(array[order[bounds[p] : bounds[p + 1]]] for array in arrays) for p in range(partitions)]


def _partition_edges(partitions: int, *pieces) -> list:
    """Reduce side: candidate edges of every (band, key bucket) group of one partition (each
    group holds every row of its keys), contracted by union-find into star edges, then cut by
    owner (``row % partitions``) for stage 3."""
    groups: dict = {}
    for piece in pieces:
        for group, keys, rows in piece:
            groups.setdefault(group, []).append((keys, rows))
    lefts, rights = [], []
    for group in sorted(groups):
        keys = np.concatenate([keys for keys, _ in groups[group]])
        rows = np.concatenate([rows for _, rows in groups[group]])
        left, right = lsh.band_edges(keys, rows)
        lefts.append(left)
        rights.append(right)
    left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
    right = np.concatenate(rights) if rights else np.empty(0, np.int64)
    return _orient_and_split(partitions, *contract_edges(left, right))


def contract_edges(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star edges ``(row, smallest row of its component)`` with the components of the edges
    ``(left, right)``, for every row of a component of two or more rows but its smallest.

    Complexity: O(m log m) (compacting the row ids) + O(m alpha(m)) union-find.

    Example:
        >>> contract_edges(np.array([5, 9, 2]), np.array([9, 7, 4]))
        (array([4, 7, 9]), array([2, 5, 5]))
    """
    nodes, local = np.unique(np.concatenate([left, right]), return_inverse=True)
    labels = connected_components(nodes.size, local[: left.size], local[left.size :])
    leaves = np.flatnonzero(labels != np.arange(nodes.size))
    return nodes[leaves], nodes[labels[leaves]]


def _orient_and_split(partitions: int, a: np.ndarray, b: np.ndarray) -> list:
    """Both orientations of the undirected edges ``(a, b)``, cut by owner of the source."""
    source = np.concatenate([a, b])
    target = np.concatenate([b, a])
    return [piece[0] for piece in _split(partitions, source % partitions, _pack(source, target))]


def _pack(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    return (source.astype(np.uint64) << np.uint64(_NODE_BITS)) | target.astype(np.uint64)


def _unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (packed >> np.uint64(_NODE_BITS)).astype(np.int64), (packed & np.uint64((1 << _NODE_BITS) - 1)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Dedup, stage 3: connected components by large-star / small-star rounds


def _neighbourhood_min(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For edges sorted by source: each edge's group index and, per source, the smallest of the
    source and its targets."""
    starts = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
    group = np.cumsum(np.r_[True, source[1:] != source[:-1]]) - 1
    return group, np.minimum(source[starts], np.minimum.reduceat(target, starts))


def large_star(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Large-star on one partition's directed edges (sorted, unique, packed ``source << 32 |
    target``): every neighbour ``v > u`` of ``u`` is linked to the smallest node of ``u``'s closed
    neighbourhood. Returns undirected edges ``(a, b)``.

    Example:
        >>> large_star(np.array([(3 << 32) | 5, (3 << 32) | 7], dtype=np.uint64))
        (array([5, 7]), array([3, 3]))
    """
    source, target = _unpack(packed)
    if source.size == 0:
        return source, target
    group, smallest = _neighbourhood_min(source, target)
    larger = target > source
    return target[larger], smallest[group][larger]


def small_star(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Small-star on one partition's directed edges: ``u`` and its neighbours ``v < u`` are all
    linked to the smallest of them. Returns undirected edges ``(a, b)``.

    Example:
        >>> small_star(np.array([(7 << 32) | 3, (7 << 32) | 5], dtype=np.uint64))
        (array([5, 7]), array([3, 3]))
    """
    source, target = _unpack(packed)
    smaller = target < source
    source, target = source[smaller], target[smaller]
    if source.size == 0:
        return source, target
    group, smallest = _neighbourhood_min(source, target)
    starts = np.flatnonzero(np.r_[True, source[1:] != source[:-1]])
    others = target != smallest[group]
    return np.concatenate([target[others], source[starts]]), np.concatenate([smallest[group][others], smallest])


def _edge_set(pieces) -> np.ndarray:
    return np.unique(np.concatenate(pieces)) if pieces else np.empty(0, np.uint64)


def _large_star_task(partitions: int, previous: Optional[np.ndarray], *pieces) -> list:
    """One partition's large-star; returns its edge set, whether it changed, and the P outputs."""
    edges = _edge_set(pieces)
    changed = previous is None or not np.array_equal(previous, edges)
    return [edges, changed, *_orient_and_split(partitions, *large_star(edges))]


def _small_star_task(partitions: int, *pieces) -> list:
    return _orient_and_split(partitions, *small_star(_edge_set(pieces)))


def _removed_rows(edges: np.ndarray, buckets: np.ndarray):
    """From a converged partition (stars around each component's smallest row): the rows that are
    not their cluster's smallest, with their cluster id, cut by the row ranges starting at
    ``buckets`` (one ``(rows, cluster_ids)`` pair per range; the pair itself for one range)."""
    source, target = _unpack(edges)
    rows = clusters = np.empty(0, np.int64)
    if source.size:
        _, smallest = _neighbourhood_min(source, target)
        nodes = source[np.flatnonzero(np.r_[True, source[1:] != source[:-1]])]
        removed = smallest < nodes
        rows, clusters = nodes[removed], smallest[removed]
    pieces = _split(buckets.size, np.searchsorted(buckets, rows, side="right") - 1, rows, clusters)
    return pieces[0] if buckets.size == 1 else pieces


@dataclasses.dataclass
class StageTimes:
    """Wall seconds of each distributed dedup stage, and the shape of the run. ``input`` is the
    time to hand the rows to the cluster (object-store puts, or counting Parquet rows).

    Example:
        >>> StageTimes().total
        0.0
    """

    input: float = 0.0
    signatures: float = 0.0
    candidate_edges: float = 0.0
    components: float = 0.0
    filter: float = 0.0
    rounds: int = 0
    partitions: int = 0

    @property
    def total(self) -> float:
        return self.input + self.signatures + self.candidate_edges + self.components + self.filter


_REMOTE_FUNCTIONS: dict = {}


def _remote(function, num_returns: int = 1):
    """``function`` as a Ray task retried on worker failure (made once per process)."""
    if function not in _REMOTE_FUNCTIONS:
        _REMOTE_FUNCTIONS[function] = _ray().remote(max_retries=_MAX_RETRIES)(function)
    return _REMOTE_FUNCTIONS[function].options(num_returns=num_returns)


def cluster_stages(
    rows_ds,
    num_rows: int,
    params: MinHashParams = MinHashParams(),
    *,
    column: str = "text",
    num_partitions: Optional[int] = None,
    filter_buckets: Optional[np.ndarray] = None,
    times: Optional[StageTimes] = None,
) -> list:
    """Stages 1 to 3 on the cluster for a Ray Dataset of ``row_id`` + ``column`` rows.

    Returns, per partition, a list of object refs of ``(rows, cluster_ids)`` pairs: every row that
    is not the smallest of its cluster, with its cluster id (the smallest row); one pair per row
    range of ``filter_buckets`` (sorted first row ids of contiguous ranges; default one range).
    ``times`` receives the stage times.

    Example:
        >>> refs = cluster_stages(rows_ds, 1000)  # doctest: +SKIP
    """
    ray = _session()
    times = times if times is not None else StageTimes()
    if num_rows >= 1 << _NODE_BITS:
        raise ValueError(f"{num_rows} rows: the Ray engine handles up to 2^{_NODE_BITS} rows per dedup")
    bands, _ = params.bands_and_rows()
    if num_partitions is not None and num_partitions < 2:
        raise ValueError(f"num_partitions must be >= 2, got {num_partitions}")
    # Enough (band, key bucket) groups that none exceeds _PARTITION_BYTES of (key, row) pairs.
    key_buckets = max(1, -(-num_rows * _PAIR_BYTES // _PARTITION_BYTES))
    partitions = num_partitions or max(2 * cluster_cpus(), -(-num_rows * bands * _PAIR_BYTES // _PARTITION_BYTES))
    partitions = min(partitions, max(2, bands * key_buckets)) if num_partitions is None else partitions
    times.partitions = partitions

    start = time.perf_counter()
    key_blocks = _band_key_refs(rows_ds, params, column)
    ray.wait(key_blocks, num_returns=len(key_blocks), fetch_local=False)
    times.signatures = time.perf_counter() - start

    start = time.perf_counter()
    split = _remote(_split_band_keys, partitions)
    pieces = [split.remote(block, partitions, key_buckets) for block in key_blocks]
    edges = _remote(_partition_edges, partitions)
    star_edges = [edges.remote(partitions, *(piece[p] for piece in pieces)) for p in range(partitions)]
    inputs = [[star_edges[q][p] for q in range(partitions)] for p in range(partitions)]
    ray.wait([ref for row in inputs for ref in row], num_returns=partitions * partitions, fetch_local=False)
    times.candidate_edges = time.perf_counter() - start

    start = time.perf_counter()
    large = _remote(_large_star_task, partitions + 2)
    small = _remote(_small_star_task, partitions)
    previous = [None] * partitions
    while True:
        results = [large.remote(partitions, previous[p], *inputs[p]) for p in range(partitions)]
        changed = ray.get([result[1] for result in results])
        times.rounds += 1
        if not any(changed):
            break
        previous = [result[0] for result in results]
        after_large = [[results[q][2 + p] for q in range(partitions)] for p in range(partitions)]
        small_results = [small.remote(partitions, *after_large[p]) for p in range(partitions)]
        inputs = [[small_results[q][p] for q in range(partitions)] for p in range(partitions)]
    buckets = np.zeros(1, np.int64) if filter_buckets is None else np.asarray(filter_buckets, dtype=np.int64)
    removed = _remote(_removed_rows, buckets.size)
    out = [removed.remote(previous[p], buckets) for p in range(partitions)]
    out = [[refs] if buckets.size == 1 else list(refs) for refs in out]
    ray.wait([ref for refs in out for ref in refs], num_returns=partitions * buckets.size, fetch_local=False)
    times.components = time.perf_counter() - start
    return out


def _text_blocks(ds, column: str, rows_per_block: int):
    """The ``column`` of a ``datasets.Dataset`` with global row ids, put into the object store in
    blocks (no per-row Python; the indices mapping of a selected/shuffled dataset is applied)."""
    ray = _session()
    refs = []
    arrow = ds.select_columns([column]).with_format("arrow")
    for start in range(0, len(ds), rows_per_block):
        table = arrow[start : start + rows_per_block]
        row_ids = pa.array(np.arange(start, start + table.num_rows, dtype=np.int64))
        refs.append(ray.put(pa.table({ROW_ID: row_ids, column: table.column(column)})))
    return ray.data.from_arrow_refs(refs)


def minhash_clusters(
    ds,
    params: MinHashParams = MinHashParams(),
    *,
    column: str = "text",
    batch_size: int = _ROWS_PER_BLOCK,
    num_partitions: Optional[int] = None,
    times: Optional[StageTimes] = None,
) -> np.ndarray:
    """Cluster labels of MinHash-LSH dedup computed on the Ray cluster; the same labels as
    ``hf_mmbuilder.dedup.minhash_clusters`` (what ``dedup(..., engine="ray")`` runs).

    ``batch_size`` rows of ``column`` go to the cluster per block (through the object store).

    Returns
    -------
    ndarray of int64, shape (len(ds),): the smallest row id of the row's cluster.

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a b c d e f g", "a b c d e f g", "x"]})  # doctest: +SKIP
        >>> minhash_clusters(ds).tolist()  # doctest: +SKIP
        [0, 0, 2]
    """
    ray = _session()
    _check_column(ds, column)
    labels = np.arange(len(ds), dtype=np.int64)
    if not len(ds):
        return labels
    times = times if times is not None else StageTimes()
    start = time.perf_counter()
    rows_ds = _text_blocks(ds, column, batch_size)
    times.input = time.perf_counter() - start
    refs = cluster_stages(rows_ds, len(ds), params, column=column, num_partitions=num_partitions, times=times)
    start = time.perf_counter()
    for rows, clusters in ray.get([partition_refs[0] for partition_refs in refs]):
        labels[rows] = clusters
    times.filter = time.perf_counter() - start
    return labels


# ---------------------------------------------------------------------------------------------
# Dedup, Parquet to Parquet (stage 4 on the cluster)


def _read_rows(batch: pa.Table, column: str) -> Iterator[pa.Table]:
    """``map_batches`` function: Parquet shards' ``column`` with their global row ids."""
    for path, offset in zip(batch.column("path").to_pylist(), batch.column("row_offset").to_pylist()):
        table = pq.read_table(path, columns=[column])
        yield pa.table({ROW_ID: np.arange(offset, offset + table.num_rows, dtype=np.int64), column: table.column(column)})


def _filter_shards(batch: pa.Table, removed_refs: list, staging: str) -> pa.Table:
    """``map_batches`` function: drop each shard's removed rows and write what is left (temporary
    file, then rename, so a killed attempt leaves no shard that looks complete)."""
    ray = _ray()
    written = {"file": [], "kept": [], "removed": []}
    for path, offset, bucket, index in zip(*(batch.column(name).to_pylist() for name in ("path", "row_offset", "bucket", "index"))):
        table = pq.read_table(path)
        removed = np.concatenate([rows for rows, _ in ray.get([refs[bucket] for refs in removed_refs])])
        keep = np.ones(table.num_rows, dtype=bool)
        keep[removed[(removed >= offset) & (removed < offset + table.num_rows)] - offset] = False
        target = os.path.join(staging, f"part-{index:06d}.parquet")
        temporary = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
        pq.write_table(table.filter(pa.array(keep)), temporary)
        os.replace(temporary, target)
        written["file"].append(target)
        written["kept"].append(int(keep.sum()))
        written["removed"].append(int(table.num_rows - keep.sum()))
    return pa.table(written)


def _parquet_row_counts(batch: dict) -> dict:
    return {"path": batch["path"], "rows": np.array([pq.ParquetFile(path).metadata.num_rows for path in batch["path"]], dtype=np.int64)}


def _row_counts(paths: list[str]) -> list[int]:
    ray = _session()
    counts = ray.data.from_items([{"path": path} for path in paths], override_num_blocks=min(len(paths), 4 * cluster_cpus())).map_batches(
        _parquet_row_counts,
        batch_format="numpy",
    )
    by_path = {row["path"]: int(row["rows"]) for row in counts.take_all()}
    return [by_path[path] for path in paths]


@dataclasses.dataclass
class ParquetDedupReport:
    """What :func:`dedup_parquet` wrote: output shards, rows in/kept/removed and stage times.

    Example:
        >>> ParquetDedupReport("out", [], 10, 8, StageTimes()).num_removed
        2
    """

    output_dir: str
    files: list[str]
    num_rows: int
    num_kept: int
    times: StageTimes

    @property
    def num_removed(self) -> int:
        return self.num_rows - self.num_kept


def dedup_parquet(
    files: Sequence[str],
    output_dir: str,
    *,
    column: str = "text",
    num_partitions: Optional[int] = None,
    overwrite: bool = False,
    **minhash_params,
) -> ParquetDedupReport:
    """Near-duplicate dedup of Parquet shards into Parquet shards, every stage on the cluster.

    Rows are numbered in file order, then row order (the order ``load_dataset("parquet",
    data_files=files)`` gives), and the first row of each cluster is kept, as
    ``hf_mmbuilder.dedup(ds, "minhash")`` keeps it; each input shard becomes one output shard
    with its surviving rows in order. ``minhash_params`` are :class:`MinHashParams`'. The output
    folder appears only when complete.

    Example:
        >>> report = dedup_parquet(sorted(glob.glob("mmc4/*.parquet")), "mmc4-dedup")  # doctest: +SKIP
        >>> report.num_removed  # doctest: +SKIP
        1520
    """
    ray = _session()
    params = MinHashParams(**minhash_params)
    paths = [os.path.abspath(path) for path in files]
    if not paths:
        raise ValueError("no Parquet files given")
    staging = _staging(output_dir, overwrite)  # refuses an existing output before any work
    for path in paths:
        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as error:
            raise SourceFileError(path, f"unreadable Parquet file ({type(error).__name__}: {error})") from error
        if column not in names:
            raise ValueError(f"{path}: no column {column!r} (columns: {', '.join(names)})")
    times = StageTimes()
    start = time.perf_counter()
    counts = _row_counts(paths)
    times.input = time.perf_counter() - start
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    num_rows = int(offsets[-1])
    bucket_of_file = (np.arange(len(paths)) * min(len(paths), _MAX_FILTER_BUCKETS)) // len(paths)
    bucket_starts = offsets[:-1][np.r_[True, bucket_of_file[1:] != bucket_of_file[:-1]]]
    items = [{"path": path, "row_offset": int(offsets[i]), "bucket": int(bucket_of_file[i]), "index": i} for i, path in enumerate(paths)]
    rows_ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_rows, fn_kwargs={"column": column}, batch_size=1, batch_format="pyarrow"
    )
    removed = cluster_stages(rows_ds, num_rows, params, column=column, num_partitions=num_partitions, filter_buckets=bucket_starts, times=times)
    start = time.perf_counter()
    with staging as folder, _all_cpus_to_one_map():
        written = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _filter_shards, fn_kwargs={"removed_refs": removed, "staging": folder}, batch_size=1, batch_format="pyarrow"
        ).take_all()
        for name in os.listdir(folder):
            if not name.endswith(".parquet"):  # a temporary file of an attempt killed mid-write
                os.remove(os.path.join(folder, name))
    times.filter = time.perf_counter() - start
    kept = sum(row["kept"] for row in written)
    return ParquetDedupReport(os.path.abspath(output_dir), _parquet_files(os.path.abspath(output_dir)), num_rows, kept, times)


__all__ = [
    "BatchOp",
    "ConversionReport",
    "ParquetDedupReport",
    "SourceFileError",
    "StageTimes",
    "cluster_cpus",
    "cluster_stages",
    "contract_edges",
    "convert",
    "dedup_parquet",
    "from_hf",
    "init",
    "large_star",
    "map_batches",
    "minhash_clusters",
    "read_rejects",
    "read_sources",
    "small_star",
    "to_hf",
    "write_parquet",
]
