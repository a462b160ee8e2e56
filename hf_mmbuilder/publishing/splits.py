"""Seeded, group-aware train/validation/test splits.

Rows that share a group key (a dedup ``cluster_id``, a media file, a video id, any ``group_by``
column) are joined into one group with union-find, and whole groups are dealt to the splits, so
near-duplicates and the same image never leak between train and test.

Media files are told apart by content: a file that can be read is keyed by the xxh3-128 digest of
its bytes, so byte-identical copies under different paths are one key; a file whose size, or size
and first 4 KiB, no other file shares is known to hold unique bytes and is not read whole (see
:func:`content_keys`); a file that cannot be read (absent, a URL) is keyed by its path. On request,
images within a perceptual-hash Hamming radius are joined too (``near_duplicate_radius``).

Dealing: groups are visited in a seeded random order (grouped by stratum when stratifying), and
each goes to the split that is furthest below its running target ``ratio * rows_dealt_so_far``.
A split is therefore never more than one group's size away from its target, and each stratum
is dealt in proportion too. Same data, ratios and seed give the same splits.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..duplicates.exact import file_digest
from ..arrow import string_buffers
from ..kernels.dealing import deal
from ..kernels.exact_hash import digests128
from ..kernels.unionfind import component_labels, join_equal_keys, join_labelled
from ..media import file_sizes, head_digests, locate_media
from ..schema import MEDIA_COLUMNS

SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
RATIO_TOLERANCE = 1e-6
MEDIA_IDENTITIES = ("content", "path")
DIGEST_THREADS = min(8, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class MediaKeys:
    """How the media files of the grouping columns were told apart.

    Attributes:
        identity: ``"content"`` (bytes where readable) or ``"path"``.
        by_digest: distinct files keyed by the xxh3-128 digest of their bytes.
        by_path: distinct files keyed by their path (unreadable ones, or all with ``"path"``).
        near_duplicate_radius: Hamming radius of the perceptual image hashes joined, or ``None``.

    Example:
        >>> MediaKeys("content", by_digest=3, by_path=1).describe()
        'media files are keyed by the xxh3-128 digest of their bytes (3 files), by their path where they could not be read (1 file)'
    """

    identity: str = "content"
    by_digest: int = 0
    by_path: int = 0
    near_duplicate_radius: Optional[int] = None

    def describe(self) -> str:
        """One phrase for the dataset card: which key each media file was grouped by ("" without media)."""
        def files(count: int) -> str:
            return f"{count:,} file{'' if count == 1 else 's'}"

        keys = []
        if self.by_digest:
            keys.append(f"the xxh3-128 digest of their bytes ({files(self.by_digest)})")
        if self.by_path:
            where = "" if self.identity == "path" else " where they could not be read"
            keys.append(f"their path{where} ({files(self.by_path)})")
        text = f"media files are keyed by {', by '.join(keys)}" if keys else ""
        if self.near_duplicate_radius is not None:
            text += (f"{'; ' if text else ''}images whose perceptual hashes (phash, 64 bits) are within Hamming "
                     f"distance {self.near_duplicate_radius} are grouped too")
        return text


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """Which rows go to which split, and how that compares to the request.

    Attributes:
        indices: split name -> sorted row ids, shape ``(rows_in_split,)``: ``int32`` below 2**31
            rows, half the memory of ``int64``, else ``int64``.
        requested: split name -> requested ratio.
        groups: split name -> number of groups dealt to it.
        num_rows: rows of the dataset that was split.
        largest_group: rows in the largest group (0 for an empty dataset).
        group_by: the columns that defined the groups.
        stratify_by: the stratification column, or ``None``.
        seed: the seed the groups were dealt with.
        media_keys: :class:`MediaKeys`, how media files were told apart.

    Memory: the row ids only. Each row's group (:func:`row_groups`) is not kept: publish holds the
    plan through its pass, and a second array per row would make its memory grow with the dataset.

    Example:
        >>> plan = plan_splits({"text": ["a", "b", "c", "d"]}, {"train": .5, "test": .5}, seed=0)
        >>> plan.counts()
        {'train': 2, 'test': 2}
    """

    indices: dict
    requested: dict
    groups: dict
    num_rows: int
    largest_group: int
    group_by: tuple
    stratify_by: Optional[str]
    seed: int
    media_keys: MediaKeys = MediaKeys()

    def counts(self) -> dict:
        """Split name -> number of rows.

        Example:
            >>> plan_splits({"text": ["a"] * 10}, {"train": .8, "test": .2}).counts()
            {'train': 8, 'test': 2}
        """
        return {name: int(rows.shape[0]) for name, rows in self.indices.items()}

    def report(self) -> list[dict]:
        """One dict per split: rows, groups, requested and actual ratio, target rows, deviation.

        Example:
            >>> plan_splits({"text": ["a"] * 10}, {"train": .8, "test": .2}).report()[1]["rows"]
            2
        """
        rows = []
        for name, indices in self.indices.items():
            target = self.requested[name] * self.num_rows
            rows.append({
                "split": name,
                "rows": int(indices.shape[0]),
                "groups": self.groups[name],
                "requested_ratio": self.requested[name],
                "actual_ratio": indices.shape[0] / self.num_rows if self.num_rows else 0.0,
                "target_rows": target,
                "deviation_rows": indices.shape[0] - target,
            })
        return rows

    def table(self) -> str:
        """The report as a Markdown table (what the CLI prints and the card shows).

        Example:
            >>> print(plan_splits({"text": ["a"] * 4}, {"train": .5, "test": .5}).table().splitlines()[0])
            | split | rows | groups | requested | actual | target rows | deviation |
        """
        lines = ["| split | rows | groups | requested | actual | target rows | deviation |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for row in self.report():
            lines.append(
                f"| {row['split']} | {row['rows']:,} | {row['groups']:,} | {row['requested_ratio']:.2%} | "
                f"{row['actual_ratio']:.2%} | {row['target_rows']:,.1f} | {row['deviation_rows']:+,.1f} |"
            )
        return "\n".join(lines)


def check_split_ratio(split_ratio: Mapping[str, float]) -> dict:
    """Validate split names and ratios (positive, summing to 1) and return them as a plain dict.

    Example:
        >>> check_split_ratio({"train": .9, "test": .1})
        {'train': 0.9, 'test': 0.1}
        >>> check_split_ratio({"train": .9, "test": .2})
        Traceback (most recent call last):
        ...
        ValueError: split_ratio must sum to 1, got 1.1 ({'train': 0.9, 'test': 0.2})
    """
    if not isinstance(split_ratio, Mapping) or not split_ratio:
        raise ValueError(f"split_ratio must be a non-empty mapping of split name -> ratio, got {split_ratio!r}")
    ratios = {}
    for name, ratio in split_ratio.items():
        if not isinstance(name, str) or not SPLIT_NAME.match(name):
            raise ValueError(f"split name {name!r} is not valid: use letters, digits, '_' (and '.' between words)")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"split {name!r}: ratio must be a number > 0, got {ratio!r}")
        ratios[name] = float(ratio)
    total = sum(ratios.values())
    if abs(total - 1.0) > RATIO_TOLERANCE:
        raise ValueError(f"split_ratio must sum to 1, got {total:.6g} ({ratios})")
    return ratios


def _table(dataset, columns: Sequence[str]) -> pa.Table:
    if isinstance(dataset, pa.Table):
        return dataset.select(list(columns))
    if hasattr(dataset, "with_format"):
        return dataset.with_format("arrow")[:].select(list(columns)) if len(dataset) else pa.table(
            {name: pa.array([], type=dataset.data.schema.field(name).type) for name in columns})
    return pa.table({name: dataset[name] for name in columns})


def _column_names(dataset) -> list[str]:
    if isinstance(dataset, pa.Table):
        return dataset.column_names
    if hasattr(dataset, "column_names"):
        return list(dataset.column_names)
    return list(dataset)


def _num_rows(dataset) -> int:
    if isinstance(dataset, pa.Table):
        return dataset.num_rows
    if hasattr(dataset, "num_rows"):
        return dataset.num_rows
    return len(next(iter(dataset.values()))) if dataset else 0


def default_group_by(column_names: Sequence[str]) -> list[str]:
    """The grouping columns used by ``group_by="auto"``: ``cluster_id`` and the media path columns
    that exist.

    Example:
        >>> default_group_by(["text", "images", "cluster_id", "videos"])
        ['cluster_id', 'images', 'videos']
    """
    return [name for name in ("cluster_id", *MEDIA_COLUMNS) if name in column_names]


def _file_key(path: str) -> Optional[str]:
    """A media file's content key (the digest of its bytes), or ``None`` when it cannot be read."""
    try:
        return "xxh3:" + file_digest(path).hex()
    except OSError:
        return None


def _file_keys(paths: Sequence[str]) -> list[Optional[str]]:
    return [_file_key(path) for path in paths]


KEY_CHUNK_ROWS = 65_536


# Files per task of a step of content_keys on threads: at least this many (a task costs a future
# and the GIL, taken back between tasks), else a share of a thread's part, so that threads finish
# together.
KEY_FILES_PER_TASK = 256
KEY_TASKS_PER_THREAD = 4


# Enough of a file to tell apart files of one size (photos differ in their first blocks: metadata,
# tables, the first rows of pixels) for a read of one page; files alike there too are read whole,
# so a smaller head costs time on such files, never a wrong key. 16 KiB read 300 MB for 18,810
# photos of shared sizes, a third of the time of their keys.
HEAD_BYTES = 4 << 10


def _on_threads(function, count: int, num_threads: int) -> list:
    """``function(low, high)`` over the items ``0 .. count`` a range per task, on ``num_threads``
    threads; the results of the ranges, in order."""
    # A few tasks per thread, each a compiled call that lets go of the GIL: the fewer tasks, the
    # less Python between them (a task holds one file's head at a time, see head_digests, so
    # memory does not bound them).
    per_task = max(KEY_FILES_PER_TASK, -(-count // (num_threads * KEY_TASKS_PER_THREAD)))
    ranges = [(low, min(count, low + per_task)) for low in range(0, count, per_task)]
    if num_threads <= 1 or len(ranges) <= 1:
        return [function(low, high) for low, high in ranges]
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        return list(pool.map(lambda bounds: function(*bounds), ranges))


def _unique(keys: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``keys`` (a 1-D array, or rows of a 2-D one) no other row equals."""
    if not len(keys):
        return np.zeros(0, dtype=bool)
    _, inverse, counts = np.unique(keys, axis=0 if keys.ndim > 1 else None, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)] == 1


def content_keys(paths: Sequence[str], num_threads: int = 1) -> list[Optional[str]]:
    """The content key of each distinct media file at ``paths``, ``None`` for one that cannot be
    read (it is keyed by its path).

    Two files with the same bytes get the same key, two with different bytes different keys:
    ``xxh3:<digest of the bytes>``, or ``file:<path>`` for a file whose bytes no other file of
    ``paths`` can hold, told by its size, or its size and the digest of its first ``HEAD_BYTES``,
    that no other file shares. Only files sharing both with another are read whole (as
    duplicate finders do), so the files are grouped exactly as by the digest of every file's bytes
    for a stat per file, a small read per file of a shared size, and a read of the few others.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> for name, data in [("a", b"xy"), ("b", b"xyz"), ("c", b"xyz"), ("d", b"xyw")]:
        ...     _ = open(os.path.join(folder, name), "wb").write(data)
        >>> keys = content_keys([os.path.join(folder, name) for name in "abcde"])
        >>> keys[0].startswith("file:"), keys[1] == keys[2], keys[1].startswith("xxh3:"), keys[3] != keys[1], keys[4]
        (True, True, True, True, None)
    """
    return _content_keys(pa.array(list(paths), pa.string()), num_threads).to_pylist()


def _content_keys(paths: pa.Array, num_threads: int) -> pa.Array:
    """:func:`content_keys` of a string array of distinct paths, as a string array (null: the
    file cannot be read). Sizes, then heads, each in one compiled call per task that lets go of
    the GIL, and no Python object per file."""
    sizes = np.concatenate([np.zeros(0, np.int64), *_on_threads(lambda low, high: file_sizes(paths[low:high]), len(paths), num_threads)])
    readable = np.flatnonzero(sizes >= 0)
    shared = readable[~_unique(sizes[readable])]
    shared_paths = paths.take(pa.array(shared, pa.int64()))
    lengths = np.minimum(sizes[shared], HEAD_BYTES)
    heads = _on_threads(lambda low, high: head_digests(shared_paths[low:high], lengths[low:high]), len(shared), num_threads)
    read = np.concatenate([np.zeros(0, np.int64), *(part[0] for part in heads)])
    head_rows = np.concatenate([np.zeros((0, 2), np.uint64), *(part[1] for part in heads)])
    # A file of a shared size whose head cannot be read now is keyed by its path, as one that
    # cannot be opened.
    kept = read == lengths
    sizes[shared[~kept]] = -1
    shared, head_rows = shared[kept], head_rows[kept]
    # Each file as its size and the 128 bits of its head's digest, one row of three uint64 per file.
    alike = shared[~_unique(np.column_stack([sizes[shared].astype(np.uint64), head_rows]))]
    keys = pc.if_else(pa.array(sizes >= 0), pc.binary_join_element_wise("file:", paths, ""), pa.scalar(None, pa.string()))
    if len(alike):
        alike_paths = paths.take(pa.array(alike, pa.int64())).to_pylist()
        whole = [key for part in _on_threads(lambda low, high: _file_keys(alike_paths[low:high]), len(alike_paths), num_threads)
                 for key in part]
        mask = np.zeros(len(paths), dtype=bool)
        mask[alike] = True
        keys = pc.replace_with_mask(keys, pa.array(mask), pa.array(whole, pa.string()))
    return keys


def _resolved_paths(chunk: pa.Table, column: str, has_root: bool) -> tuple[np.ndarray, pa.Array]:
    """(row in ``chunk``, path the file is read from) of each non-null media item of ``column``."""
    values = chunk.column(column).combine_chunks()
    flat = pc.list_flatten(values).cast(pa.string())
    rows = pc.list_parent_indices(values).to_numpy(zero_copy_only=False).astype(np.int64)
    if has_root and len(flat):
        # The same file written relative to two different roots is two files; the same relative
        # path under two roots is two files too: group on the path the file is read from.
        roots = pc.take(chunk.column("media_root").combine_chunks(), pa.array(rows))
        joined = pc.binary_join_element_wise(roots, flat, "/", null_handling="replace", null_replacement="")
        absolute = pc.or_(pc.starts_with(flat, "/"), pc.match_substring(flat, "://"))
        flat = pc.if_else(pc.or_kleene(absolute, pc.is_null(roots)), flat, joined)
    valid = flat.is_valid().to_numpy(zero_copy_only=False)
    if not valid.all():
        rows, flat = rows[valid], flat.filter(pa.array(valid))
    return rows, flat


def _row_dtype(n: int) -> type:
    """The integer type of row ids of a dataset of ``n`` rows: ``int32`` up to 2**31 rows (half the
    memory per row of ``int64``), ``int64`` beyond."""
    return np.int32 if n < 2**31 else np.int64


def _join_media(parent: np.ndarray, table: pa.Table, column: str, media_identity: str, num_threads: int,
                counts: list) -> None:
    """Join the rows (``parent``, a union-find forest, in place) sharing a media file of a path
    column, a chunk of rows at a time.

    A file's key is its content key (``"content"``, a readable file, see :func:`content_keys`: the
    distinct files found in their folder's listing are collected in a first pass over the chunks
    and keyed together, on ``num_threads`` threads, as copies may sit in any chunk) or
    ``path:<the path it is read from>``; each key is held as its 128-bit digest, so memory holds
    the digest, the row and a flag per media item (21 bytes with int32 rows), not its strings;
    items are sorted by key and neighbours with equal keys joined, without a node or a label per
    key. ``counts`` (``[by_digest, by_path]``) is increased by the files keyed each way.
    """
    has_root = "media_root" in table.column_names
    total = int(pc.sum(pc.list_value_length(table.column(column))).as_py() or 0)
    # The files read (a readable file's path, and its content key), as string arrays.
    known = known_keys = pa.array([], pa.string())
    if media_identity == "content":
        listings: dict = {}
        found = [pa.array([], pa.string())]
        for start in range(0, table.num_rows, KEY_CHUNK_ROWS):
            _, flat = _resolved_paths(table.slice(start, KEY_CHUNK_ROWS), column, has_root)
            distinct = pc.unique(flat)
            found.append(pc.filter(distinct, pa.array(locate_media(distinct, listings=listings).is_file)))
        on_disk = pc.unique(pa.concat_arrays(found))
        keys = _content_keys(on_disk, num_threads)
        known, known_keys = on_disk.filter(keys.is_valid()), keys.drop_null()
    item_rows = np.empty(total, dtype=parent.dtype)
    # The two words of each key's digest in rows of their own: np.lexsort sorts them in place of a copy.
    digests = np.empty((2, total), dtype=np.uint64)
    by_path = np.empty(total, dtype=bool)
    filled = 0
    for start in range(0, table.num_rows, KEY_CHUNK_ROWS):
        rows, flat = _resolved_paths(table.slice(start, KEY_CHUNK_ROWS), column, has_root)
        if not len(flat):
            continue
        keys = pc.binary_join_element_wise("path:", flat, "")
        if len(known):
            mask = pc.is_in(flat, value_set=known)
            keys = pc.replace_with_mask(keys, mask, pc.filter(pc.take(known_keys, pc.index_in(flat, value_set=known)), mask))
        buffers = string_buffers(keys)
        end = filled + len(keys)
        item_rows[filled:end] = rows + start
        digests[:, filled:end] = digests128(buffers.data, buffers.offsets).T
        by_path[filled:end] = pc.starts_with(keys, "path:").to_numpy(zero_copy_only=False)
        filled = end
    high, low = digests[0, :filled], digests[1, :filled]
    counts[0] += len(known)
    counts[1] += join_equal_keys(parent, item_rows[:filled], high, low, np.lexsort((low, high)), by_path[:filled])


def _join_column(parent: np.ndarray, table: pa.Table, column: str, media_identity: str = "path", num_threads: int = 1,
                 counts: Optional[list] = None) -> None:
    """Join the rows (``parent``, in place) sharing a key of one grouping column; nulls and empty
    lists join nothing.

    Media path columns are keyed by ``media_identity`` (``"content"``: the digest of a readable
    file's bytes, else the path; see :func:`_join_media`); ``counts`` (``[by_digest, by_path]``)
    is increased accordingly.
    """
    kind = table.schema.field(column).type
    if column in MEDIA_COLUMNS and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        _join_media(parent, table, column, media_identity, num_threads, [0, 0] if counts is None else counts)
        return
    values = table.column(column).combine_chunks()
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        rows = pc.list_parent_indices(values).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(values)
    else:
        rows = np.arange(len(values), dtype=parent.dtype)
        flat = values
    if pa.types.is_floating(flat.type):
        flat = pc.if_else(pc.is_nan(flat), pa.scalar(None, flat.type), flat)
    encoded = pc.dictionary_encode(flat).combine_chunks() if isinstance(flat, pa.ChunkedArray) else pc.dictionary_encode(flat)
    keys = encoded.indices
    valid = pc.is_valid(keys).to_numpy(zero_copy_only=False)
    join_labelled(parent, rows[valid], pc.drop_null(keys).to_numpy(), len(encoded.dictionary))


def row_groups(dataset, group_by: Union[str, Sequence[str], None] = "auto", *, media_identity: str = "content",
               near_duplicate_radius: Optional[int] = None, num_threads: int = DIGEST_THREADS) -> tuple[np.ndarray, list[str]]:
    """Group id of every row: rows sharing any key of any ``group_by`` column are one group.

    ``group_by`` is ``"auto"`` (see :func:`default_group_by`), a column name, a list of names, or
    ``None``/``[]`` (every row alone). Scalar columns group equal values; list columns group rows
    sharing any element, transitively. Media path columns (``images``, ``audios``, ``videos``)
    group rows sharing a file: relative paths are resolved against the ``media_root`` column, and
    with ``media_identity="content"`` (the default) a readable file is keyed by the digest of its
    bytes, so copies under other paths group together; an unreadable one (absent, a URL) by its
    path; ``media_identity="path"`` keys every file by its path. ``near_duplicate_radius`` also
    joins rows whose images' perceptual hashes (phash) are within that Hamming distance. Nulls
    group nothing.

    Returns ``(group_ids, columns)``: array of shape ``(n_rows,)`` (``int32`` below 2**31 rows,
    else ``int64``) holding the smallest row id of each row's group, and the columns used.
    O(n + keys) with union-find over the rows (a media column: O(items log items), its items sorted
    by key digest), plus one read of each distinct media file on ``num_threads`` threads. Memory:
    the row ids, and 21 bytes per media item of the column being joined.

    Example:
        >>> groups, used = row_groups({"text": ["a", "b", "c"], "images": [["x.jpg"], ["y.jpg"], ["x.jpg"]]})
        >>> groups.tolist(), used
        ([0, 1, 0], ['images'])
    """
    group_ids, columns, _ = _grouping(dataset, group_by, media_identity, near_duplicate_radius, num_threads)
    return group_ids, columns


def _grouping(dataset, group_by, media_identity: str, near_duplicate_radius: Optional[int],
              num_threads: int) -> tuple[np.ndarray, list[str], MediaKeys]:
    """:func:`row_groups`, with the :class:`MediaKeys` telling how media files were keyed."""
    if media_identity not in MEDIA_IDENTITIES:
        raise ValueError(f"media_identity must be one of {MEDIA_IDENTITIES}, got {media_identity!r}")
    if near_duplicate_radius is not None and (isinstance(near_duplicate_radius, bool) or not isinstance(near_duplicate_radius, int)
                                              or near_duplicate_radius < 0):
        raise ValueError(f"near_duplicate_radius must be a Hamming distance >= 0 (or None), got {near_duplicate_radius!r}")
    names = _column_names(dataset)
    if group_by == "auto":
        columns = default_group_by(names)
    elif group_by is None:
        columns = []
    elif isinstance(group_by, str):
        columns = [group_by]
    else:
        columns = list(group_by)
    missing = [name for name in columns if name not in names]
    if missing:
        raise ValueError(f"group_by column(s) {missing} not in the dataset (columns: {names})")
    if near_duplicate_radius is not None and "images" not in names:
        raise ValueError(f"near_duplicate_radius needs an 'images' column (columns: {names})")
    n = _num_rows(dataset)
    radius = near_duplicate_radius if n else None
    if (not columns and radius is None) or n == 0:
        return np.arange(n, dtype=_row_dtype(n)), columns, MediaKeys(media_identity, near_duplicate_radius=near_duplicate_radius)
    media_columns = set(columns) | ({"images"} if radius is not None else set())
    needed = columns + (["media_root"] if "media_root" in names and media_columns & set(MEDIA_COLUMNS) else [])
    table = _table(dataset, list(dict.fromkeys(needed)))
    parent = np.arange(n, dtype=_row_dtype(n))
    counts = [0, 0]
    for column in columns:
        _join_column(parent, table, column, media_identity, num_threads, counts)
    if radius is not None:
        labels = _near_duplicate_labels(table, radius, num_threads)
        join_labelled(parent, np.arange(n, dtype=parent.dtype), labels, int(labels.max()) + 1)
    return component_labels(parent), columns, MediaKeys(media_identity, counts[0], counts[1], near_duplicate_radius)


def _near_duplicate_labels(table: pa.Table, radius: int, num_threads: int) -> np.ndarray:
    """Row -> perceptual-hash cluster label (images within ``radius``); unreadable images are left out."""
    import datasets

    from ..duplicates.images import image_hash_clusters

    columns = ["images"] + (["media_root"] if "media_root" in table.column_names else [])
    rows = datasets.Dataset(table.select(columns))
    return np.asarray(image_hash_clusters(rows, "images", radius=radius, on_error="skip", num_threads=num_threads,
                                          progress=False), dtype=np.int64)


def deal_groups(group_sizes: np.ndarray, strata: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """Assign each group to a split index.

    ``group_sizes``: ``int64 (n_groups,)``; ``strata``: ``int64 (n_groups,)`` stratum code per group
    (all zeros without stratification); ``ratios``: one float per split, summing to 1. Returns the
    ``int64 (n_groups,)`` split index of each group. Visits groups stratum by stratum in a seeded
    random order and gives each to the split furthest below ``ratio * rows_dealt``; O(n_groups * k).

    Example:
        >>> deal_groups(np.ones(4, np.int64), np.zeros(4, np.int64), [.5, .5], seed=0).tolist().count(0)
        2
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(group_sizes.shape[0]), strata))
    return deal(order.astype(np.int64), np.asarray(group_sizes, dtype=np.int64), np.asarray([float(ratio) for ratio in ratios], dtype=np.float64))


def plan_splits(
    dataset,
    split_ratio: Mapping[str, float],
    *,
    seed: int = 0,
    group_by: Union[str, Sequence[str], None] = "auto",
    stratify_by: Optional[str] = None,
    media_identity: str = "content",
    near_duplicate_radius: Optional[int] = None,
    num_threads: int = DIGEST_THREADS,
) -> SplitPlan:
    """Plan seeded, group-aware (optionally stratified) splits of a dataset.

    ``dataset`` is a ``datasets.Dataset``, an Arrow table or a dict of columns. ``stratify_by`` may
    be a column of any scalar type; a group whose rows disagree on it is placed by its first row.
    Raises ``ValueError`` for bad ratios, unknown columns, or a split whose target is smaller than
    the largest group (it could not hold that group without missing its ratio by more than 100%).
    ``media_identity``, ``near_duplicate_radius``, ``num_threads``: how rows sharing media are
    grouped, see :func:`row_groups`; the plan's ``media_keys`` tells which key each file got.

    Example:
        >>> data = {"text": list("abcdefghij"), "cluster_id": [0, 0, 2, 3, 4, 5, 6, 7, 8, 9]}
        >>> plan = plan_splits(data, {"train": .8, "test": .2}, seed=1)
        >>> bool(set(plan.indices["train"]) & {0}) == bool(set(plan.indices["train"]) & {1})
        True
    """
    ratios = check_split_ratio(split_ratio)
    group_ids, columns, media_keys = _grouping(dataset, group_by, media_identity, near_duplicate_radius, num_threads)
    n = group_ids.shape[0]
    # Group ids are row ids: counting them per row gives np.unique's answer without sorting.
    rows_per_id = np.bincount(group_ids, minlength=n)
    unique_groups = np.flatnonzero(rows_per_id)
    sizes = rows_per_id[unique_groups]
    del rows_per_id
    # Each row's group as the rank of its group id, in the row ids' type (a flag at each group's
    # first row, counted).
    group_of_row = np.zeros(n, dtype=group_ids.dtype)
    group_of_row[unique_groups] = 1
    np.cumsum(group_of_row, out=group_of_row)
    group_of_row -= 1
    group_of_row = group_of_row[group_ids]
    row_type = group_ids.dtype
    del group_ids
    largest = int(sizes.max()) if n else 0
    for name, ratio in ratios.items():
        target = ratio * n
        if n and target < largest:
            raise ValueError(
                f"split {name!r} asks for {target:.1f} of {n} rows but the largest group (rows sharing "
                f"{'/'.join(columns) or 'nothing'}, starting at row {int(unique_groups[sizes.argmax()])}) has "
                f"{largest} rows: raise its ratio, regroup, or dedup first"
            )
    if stratify_by is not None:
        if stratify_by not in _column_names(dataset):
            raise ValueError(f"stratify_by column {stratify_by!r} not in the dataset")
        labels = _table(dataset, [stratify_by]).column(stratify_by).combine_chunks()
        first_row_labels = pc.take(labels, pa.array(unique_groups))
        strata = pc.dictionary_encode(first_row_labels).indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        strata = np.zeros(unique_groups.shape[0], dtype=np.int64)
    split_of_group = deal_groups(sizes.astype(np.int64), strata, list(ratios.values()), seed)
    groups = dict(zip(ratios, np.bincount(split_of_group, minlength=len(ratios)).tolist()))
    # A byte per row for its split: the plan's memory is its row ids, not the dealing's arrays.
    split_of_row = split_of_group.astype(np.min_scalar_type(len(ratios) - 1))[group_of_row]
    del group_of_row, split_of_group
    indices = {name: np.flatnonzero(split_of_row == position).astype(row_type) for position, name in enumerate(ratios)}
    return SplitPlan(indices, ratios, groups, n, largest, tuple(columns), stratify_by, seed, media_keys)


def split_dataset(dataset, split_ratio: Mapping[str, float], **options):
    """Split a ``datasets.Dataset`` into a ``DatasetDict`` by :func:`plan_splits`.

    Returns ``(dataset_dict, plan)``; each split keeps the original row order.

    Example:
        >>> from datasets import Dataset
        >>> splits, plan = split_dataset(Dataset.from_dict({"text": list("abcd")}), {"train": .5, "test": .5})
        >>> {name: len(part) for name, part in splits.items()}
        {'train': 2, 'test': 2}
    """
    from datasets import DatasetDict

    plan = plan_splits(dataset, split_ratio, **options)
    return DatasetDict({name: dataset.select(rows) for name, rows in plan.indices.items()}), plan
