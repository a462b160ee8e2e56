"""MinHash-LSH near-duplicate dedup on Ray: the four stages of :mod:`hf_mmbuilder.duplicates` over a
cluster (signatures, candidate edges by a partitioned shuffle, connected components by
large-star / small-star rounds, the filter), for a ``datasets.Dataset`` or Parquet shards."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from typing import Iterator, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..arrow import check_column, string_array
from ..duplicates import MinHashParams, signature_stage
from ..kernels import lsh
from ..kernels.unionfind import connected_components
from .conversion import SourceFileError
from .io import commit_parquet, parquet_folder
from .session import all_cpus_to_one_map, cluster_cpus, ensure_session, ray_library, remote_task


ROW_ID = "row_id"
_ROWS_PER_BLOCK = 65_536
# Target bytes of (key, row) pairs per stage-2 partition: the memory-bound step.
_PARTITION_BYTES = 256 << 20
_PAIR_BYTES = 8 + 8
_MAX_FILTER_BUCKETS = 1024
_NODE_BITS = 32


# ---------------------------------------------------------------------------------------------
# Dedup, stage 1: band keys


def _band_keys(batch: pa.Table, params: MinHashParams, column: str) -> pa.Table:
    """``map_batches`` function: ``row_id`` + text -> ``row_id`` + one uint64 column per band."""
    row_ids = batch.column(ROW_ID).combine_chunks()
    first = int(row_ids[0].as_py()) if len(row_ids) else 0
    keys = signature_stage(string_array(batch.column(column), first, column), params)
    return keys.set_column(0, ROW_ID, row_ids)


def _band_key_refs(ray_ds, params: MinHashParams, column: str) -> list:
    """Stage 1 on the cluster: object refs of the band-key blocks."""
    blocks = ray_ds.map_batches(
        _band_keys,
        fn_kwargs={"params": params, "column": column},
        batch_size=None,
        batch_format="pyarrow",
        zero_copy_batch=True,
    )
    with all_cpus_to_one_map():
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
    ray = ensure_session()
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
    split = remote_task(_split_band_keys, partitions)
    pieces = [split.remote(block, partitions, key_buckets) for block in key_blocks]
    edges = remote_task(_partition_edges, partitions)
    star_edges = [edges.remote(partitions, *(piece[p] for piece in pieces)) for p in range(partitions)]
    inputs = [[star_edges[q][p] for q in range(partitions)] for p in range(partitions)]
    ray.wait([ref for row in inputs for ref in row], num_returns=partitions * partitions, fetch_local=False)
    times.candidate_edges = time.perf_counter() - start

    start = time.perf_counter()
    large = remote_task(_large_star_task, partitions + 2)
    small = remote_task(_small_star_task, partitions)
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
    removed = remote_task(_removed_rows, buckets.size)
    out = [removed.remote(previous[p], buckets) for p in range(partitions)]
    out = [[refs] if buckets.size == 1 else list(refs) for refs in out]
    ray.wait([ref for refs in out for ref in refs], num_returns=partitions * buckets.size, fetch_local=False)
    times.components = time.perf_counter() - start
    return out


def _text_blocks(ds, column: str, rows_per_block: int):
    """The ``column`` of a ``datasets.Dataset`` with global row ids, put into the object store in
    blocks (no per-row Python; the indices mapping of a selected/shuffled dataset is applied)."""
    ray = ensure_session()
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
    ``hf_mmbuilder.duplicates.minhash_clusters`` (what ``dedup(..., engine="ray")`` runs).

    ``batch_size`` rows of ``column`` go to the cluster per block (through the object store).

    Returns
    -------
    ndarray of int64, shape (len(ds),): the smallest row id of the row's cluster.

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a b c d e f g", "a b c d e f g", "x"]})  # doctest: +SKIP
        >>> minhash_clusters(ds).tolist()  # doctest: +SKIP
        [0, 0, 2]
    """
    ray = ensure_session()
    check_column(ds, column)
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
    ray = ray_library()
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
    ray = ensure_session()
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
    folder appears only when complete; ``overwrite`` as in :func:`write_parquet`.

    Example:
        >>> report = dedup_parquet(sorted(glob.glob("mmc4/*.parquet")), "mmc4-dedup")  # doctest: +SKIP
        >>> report.num_removed  # doctest: +SKIP
        1520
    """
    ray = ensure_session()
    params = MinHashParams(**minhash_params)
    paths = [os.path.abspath(path) for path in files]
    if not paths:
        raise ValueError("no Parquet files given")
    folder = parquet_folder(output_dir, overwrite)  # refuses an existing output before any work
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
    with folder.staging() as staging, all_cpus_to_one_map():
        written = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _filter_shards, fn_kwargs={"removed_refs": removed, "staging": str(staging.files)}, batch_size=1, batch_format="pyarrow"
        ).take_all()
        for name in os.listdir(staging.files):
            if not name.endswith(".parquet"):  # a temporary file of an attempt killed mid-write
                os.remove(staging.files / name)
        files = commit_parquet(folder, staging)
    times.filter = time.perf_counter() - start
    kept = sum(row["kept"] for row in written)
    return ParquetDedupReport(str(folder.path), files, num_rows, kept, times)
