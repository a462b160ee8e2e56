"""The files of a published dataset repo: media checks, media bytes embedded into Parquet shards
sized by bytes, columns every reader can load (JSON as text, no column empty in every row), config
names, the generation tag in shard names, and the pattern of the names a publish owns (the only
remote files it may delete)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import mmap
import os
import re
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from ..formats.serialization import STYLE_COLUMN, proven_styles
from ..media import UnsafePathError, file_sizes, locate_media, read_files, resolve_media_paths, split_folders
from ..schema import MEDIA_COLUMNS
from .card import PLOT_TITLES


DATA_FOLDER = "data"


PLOT_FOLDER = "assets"


MISSING_MEDIA_SHOWN = 10


CONFIG_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


CARD_FILE = "README.md"


GENERATION_DIGITS = 8


EMBED_THREADS = min(8, (os.cpu_count() or 1) + 2)


CHECK_BATCH_ROWS = 65_536


WRITE_BATCH_BYTES = 16 << 20


# The window a shard is digested through: a mapping, not a read into a buffer (which copied every
# byte once more, half the time of the digest), and of a few MB, so that a shard's pages are never
# all counted in the process's RSS at once.
DIGEST_BLOCK_BYTES = 4 << 20


@dataclasses.dataclass(frozen=True)
class SplitRows:
    """A split as rows of an Arrow table, never gathered into a table of its own.

    Attributes:
        table: the (memory-mapped) ``pa.Table`` behind the dataset.
        rows: integer (``int32`` or ``int64``) table row of each row of the split, in the split's
            order; ``None``: all of ``table`` in order.
        ids: integer row id of each row of the split in error messages (the row of the dataset
            that was split); ``None``: its position in the split.
    """

    table: pa.Table
    rows: Optional[np.ndarray] = None
    ids: Optional[np.ndarray] = None

    @classmethod
    def of(cls, dataset, selection: Optional[np.ndarray] = None) -> "SplitRows":
        """The rows of a ``datasets.Dataset`` (through its indices mapping, if any), or of its
        rows ``selection`` (row ids of the dataset, which also name them in error messages)."""
        if isinstance(dataset, cls):
            return dataset
        table = dataset.data.table
        # A select/filter/shuffle result reads its rows through an indices mapping; gathering them
        # through datasets' formatter is what made publishing slow, so its row ids are used directly.
        mapping = dataset._indices
        rows = None if mapping is None else mapping.column(0).to_numpy().astype(np.int64, copy=False)
        if selection is not None:
            # A plan's int32 row ids are kept as they are: a copy as int64 would double them.
            selection = np.asarray(selection)
            if selection.dtype.kind not in "iu":
                selection = selection.astype(np.int64)
            rows = selection if rows is None else rows[selection]
        return cls(table, rows, selection)

    def __len__(self) -> int:
        return self.table.num_rows if self.rows is None else int(self.rows.shape[0])

    @property
    def column_names(self) -> list[str]:
        return self.table.column_names

    def row_id(self, position: int) -> int:
        return int(position if self.ids is None else self.ids[position])

    def window(self, start: int, stop: int) -> "SplitRows":
        """Rows ``start .. stop`` of the split."""
        if self.rows is None:
            return SplitRows(self.table.slice(start, stop - start), None, np.arange(start, stop, dtype=np.int64) if self.ids is None else self.ids[start:stop])
        return SplitRows(self.table, self.rows[start:stop], None if self.ids is None else self.ids[start:stop])

    def batches(self, columns: Sequence[str], batch_size: int) -> Iterator[tuple[int, pa.Table]]:
        """``(position of the first row, table)`` per ``batch_size`` rows of ``columns``: a
        zero-copy slice where the rows are a contiguous run, else the rows taken chunk by chunk."""
        table = self.table.select(list(columns))
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if self.rows is None:
                yield start, table.slice(start, stop - start)
                continue
            rows = self.rows[start:stop]
            if rows[-1] - rows[0] == stop - start - 1 and (np.diff(rows) == 1).all():
                yield start, table.slice(int(rows[0]), stop - start)
                continue
            # The record batches under these rows only: the whole table's would be an object per
            # record batch of the dataset for every batch taken (memory and time growing with it).
            low, high = int(rows.min()), int(rows.max()) + 1
            chunks = table.slice(low, high - low).to_batches()
            bounds = np.cumsum([0, *(chunk.num_rows for chunk in chunks)])
            yield start, _gather(table.schema, chunks, bounds, rows - low)

    def estimate_nbytes(self, columns: Sequence[str]) -> int:
        """The Arrow size of these rows of ``columns`` as ``datasets`` estimates a selection (the
        table's size times the share of its rows); what ``push_to_hub`` shards by."""
        if not self.table.num_rows:
            return 0
        return self.table.select(list(columns)).nbytes * len(self) // self.table.num_rows


def _gather(schema: pa.Schema, chunks: list, bounds: np.ndarray, rows: np.ndarray) -> pa.Table:
    """The table rows ``rows`` of a table given as its record batches (``bounds``: their first
    rows, and the row count last), taken from each batch on its own: ``Table.take`` would first
    concatenate every chunk of each column, a copy of the whole table per call."""
    order = None if (np.diff(rows) >= 0).all() else np.argsort(rows, kind="stable")
    ordered = rows if order is None else rows[order]
    chunk_of = np.searchsorted(bounds, ordered, side="right") - 1
    cuts = np.flatnonzero(np.diff(chunk_of)) + 1
    pieces = [chunks[int(chunk_of[low])].take(pa.array(ordered[low:high] - bounds[chunk_of[low]]))
              for low, high in zip([0, *cuts], [*cuts, len(ordered)])]
    gathered = pa.Table.from_batches(pieces, schema=schema)
    if order is None:
        return gathered
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return gathered.combine_chunks().take(pa.array(inverse))


def _first(mask: np.ndarray) -> int:
    found = np.flatnonzero(mask)
    return int(found[0]) if len(found) else -1


def check_media(splits: Mapping[str, object], row_ids: Optional[Mapping[str, np.ndarray]] = None, *,
                require_files: bool) -> dict[str, int]:
    """Refuse media paths escaping their ``media_root`` and, with ``require_files``, missing files.

    ``splits``: split name -> ``datasets.Dataset`` or :class:`SplitRows`; ``row_ids``: split ->
    row id of each of its rows in error messages (default: a SplitRows' ``ids``, else the
    position). Raises a ``ValueError`` naming the first offending row (split, row, column, path).
    Vectorised: paths are resolved, checked and looked up per distinct folder
    (:func:`hf_mmbuilder.media.locate_media`), in batches of rows. Returns split -> bytes of the
    media files its rows name (each occurrence; 0 without ``require_files``), for sizing shards.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image>"], "images": [["nope.jpg"]], "media_root": ["/tmp"]})
        >>> check_media({"train": ds}, {"train": np.array([0])}, require_files=True)
        Traceback (most recent call last):
        ...
        ValueError: 1 media file(s) missing (embedding needs them; pass embed_media=False to publish paths): split 'train' row 0: images[0] 'nope.jpg' -> /tmp/nope.jpg
    """
    missing, total_missing, media_bytes, listings = [], 0, {}, {}
    for split, dataset in splits.items():
        part = SplitRows.of(dataset)
        if row_ids is not None and split in row_ids:
            part = dataclasses.replace(part, ids=np.asarray(row_ids[split], dtype=np.int64))
        media_bytes[split] = 0
        columns = [column for column in MEDIA_COLUMNS if column in part.column_names]
        if not columns:
            continue
        for column in columns:
            if not pc.sum(pc.fill_null(pc.list_value_length(part.table.column(column)), 0)).as_py():
                continue
            needed = [column] + (["media_root"] if "media_root" in part.column_names else [])
            for offset, batch in part.batches(needed, CHECK_BATCH_ROWS):
                lists = batch.column(column).combine_chunks()
                paths = pc.list_flatten(lists)
                if not len(paths):
                    continue
                parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
                starts = lists.offsets.to_numpy()[:-1] - lists.offsets[0].as_py()

                def where(position: int) -> str:
                    row = parents[position]
                    return (f"split {split!r} row {part.row_id(offset + int(row))}: {column}[{position - starts[row]}] "
                            f"{paths[position].as_py()!r}")

                nulls = paths.is_null().to_numpy(zero_copy_only=False)
                roots = pc.take(batch.column("media_root").combine_chunks(), pa.array(parents)) if "media_root" in needed else None
                found = locate_media(pc.fill_null(paths, ""), roots, listings=listings)
                first_null, first_escape = _first(nulls), _first(found.escaped & ~nulls)
                if first_null >= 0 and (first_escape < 0 or first_null < first_escape):
                    raise ValueError(f"{where(first_null)}: null media path")
                if first_escape >= 0:
                    error = UnsafePathError(f"media path {paths[first_escape].as_py()!r} escapes its root {roots[first_escape].as_py()!r}")
                    raise ValueError(f"{where(first_escape)}: {error}")
                if not require_files:
                    continue
                absent = np.flatnonzero(~found.is_file)
                total_missing += len(absent)
                missing.extend(f"{where(int(position))} -> {found.resolved[int(position)].as_py()}"
                               for position in absent[: max(0, MISSING_MEDIA_SHOWN - len(missing))])
                media_bytes[split] += _total_size(found.resolved, found.is_file)
    if total_missing:
        shown = "; ".join(missing)
        more = f" (and {total_missing - MISSING_MEDIA_SHOWN} more)" if total_missing > MISSING_MEDIA_SHOWN else ""
        raise ValueError(
            f"{total_missing} media file(s) missing (embedding needs them; pass embed_media=False to publish paths): {shown}{more}"
        )
    return media_bytes


def _total_size(paths: pa.Array, present: np.ndarray) -> int:
    """Sum of the sizes of the files at ``paths[present]`` (each occurrence; each distinct file stat'ed once)."""
    from pyarrow.fs import LocalFileSystem

    encoded = pc.dictionary_encode(pc.filter(paths, pa.array(present)))
    distinct = encoded.dictionary.to_pylist()
    # One call stats them all with the GIL let go once: a stat per call lets it go and takes it
    # back per file, and waits up to a switch interval (5 ms) each time another thread holds it
    # (beside publish's warm-up thread importing matplotlib, 18,810 stats took 0.45 s, not 0.04 s).
    sizes = np.fromiter((info.size for info in LocalFileSystem().get_file_info(distinct)), dtype=np.int64, count=len(distinct))
    return int(sizes[encoded.indices.to_numpy(zero_copy_only=False)].sum()) if len(distinct) else 0


class MediaBuffers:
    """Memory the media files of a batch are read into, reused once the batch is written.

    Each batch of a publish with media reads megabytes of files; memory taken afresh for every
    batch is paid per page (a fault and the zeroing of 4 KB, and on a virtual machine the host's
    fault too), however Arrow's allocator is set. The arrays here are allocated once and handed out
    again when nothing refers to them any more (the Arrow arrays over them are gone), so a pass
    touches new memory only for the batches in flight: a publish of 2.1 GB of photos took 250k
    page faults with its batches in Arrow's pool (mimalloc or jemalloc), 72k with these, and
    0.2-0.4 s less of the kernel's time. Thread-safe.
    """

    def __init__(self, kept: int):
        self._free: list[np.ndarray] = []
        self._kept = kept
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        """``size`` writable bytes (``uint8``), valid while the returned array, or an Arrow
        buffer made from it, is alive."""
        with self._lock:
            fitting = [index for index, array in enumerate(self._free) if array.nbytes >= size]
            array = self._free.pop(min(fitting, key=lambda index: self._free[index].nbytes)) if fitting else None
        if array is None:
            # A quarter more than asked: the next batches' sizes vary around this one's.
            array = np.empty(max(1, size + size // 4), dtype=np.uint8)
        view = array[:size]
        weakref.finalize(view, self._give_back, array)
        return view

    def _give_back(self, array: np.ndarray) -> None:
        with self._lock:
            self._free.append(array)
            if len(self._free) > self._kept:
                del self._free[min(range(len(self._free)), key=lambda index: self._free[index].nbytes)]


def _read_all(paths: pa.Array, buffers: Optional[MediaBuffers] = None) -> pa.Array:
    """The bytes of the files at ``paths`` (a string array) as one binary array, each file read
    straight into the array's data buffer (taken from ``buffers``), all in one compiled call that
    lets go of the GIL (:func:`hf_mmbuilder.media.read_files`)."""
    # A file that cannot be opened any more gets no bytes here; read_files then raises its error.
    sizes = np.maximum(file_sizes(paths), 0)
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8) if buffers is None else buffers.take(int(offsets[-1]))
    read_files(paths, offsets, data)
    if offsets[-1] < 2**31:
        return pa.BinaryArray.from_buffers(pa.binary(), len(paths), [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(paths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def embed_media_batch(batch: pa.Table, columns: Sequence[str], buffers: Optional[MediaBuffers] = None) -> pa.Table:
    """``batch`` with each media path list of ``columns`` replaced by ``[{"bytes", "path"}]`` (the
    Arrow storage of ``List(Image())``/``List(Audio())``/``List(Video())``): the bytes of the
    file each path names (relative ones read under the row's ``media_root``), and the path as
    stored (an absolute path keeps its file name only, the rest is the builder's machine layout).
    """
    for column in columns:
        lists = batch.column(column).combine_chunks()
        # A column without any path in the dataset may be typed list<null>.
        paths = pc.list_flatten(lists).cast(pa.string())
        parents = pc.list_parent_indices(lists)
        roots = pc.take(batch.column("media_root").combine_chunks(), parents) if "media_root" in batch.column_names else None
        # check_media found every file and refused escaping paths before the pass.
        contents = _read_all(resolve_media_paths(paths, roots), buffers)
        _, names = split_folders(paths)
        stored = pc.if_else(pc.starts_with(paths, "/"), names, paths)
        items = pa.StructArray.from_arrays([contents, stored], names=["bytes", "path"])
        offsets = pc.subtract(lists.offsets, lists.offsets[0])
        embedded = pa.ListArray.from_arrays(offsets, items, mask=lists.is_null() if lists.null_count else None)
        batch = batch.set_column(batch.column_names.index(column), column, embedded)
    return batch


def embedded_features(features, columns: Sequence[str]):
    """``features`` with the media path columns of ``columns`` as ``List(Image())``/``List(Audio())``/``List(Video())``."""
    from datasets import Audio, Image, List, Video

    feature_of = {"images": Image(), "audios": Audio(), "videos": Video()}
    features = features.copy()
    for column in columns:
        features[column] = List(feature_of[column])
    return features


def _holds_json(feature) -> bool:
    from datasets import Json
    from datasets.features.features import _visit

    found = []
    _visit(feature, lambda inner: found.append(inner) if isinstance(inner, Json) else None)
    return bool(found)


def json_text_columns(features) -> list[str]:
    """The columns whose feature is, or holds, ``Json``.

    ``datasets`` before 5.0 has no ``Json`` type (a card declaring ``dtype: json`` fails to load
    there), so :func:`with_json_as_text` publishes them as their JSON text.

    Example:
        >>> from datasets import Features, Json, List, Value
        >>> json_text_columns(Features({"text": Value("string"), "extra": Json(), "turns": List(Json())}))
        ['extra', 'turns']
    """
    return [name for name, feature in features.items() if _holds_json(feature)]


def text_features(features):
    """``features`` with every ``Json`` feature (also inside lists) as ``Value("string")``: the
    JSON text its Arrow storage already holds, so the published columns are written unchanged
    under this schema.

    Example:
        >>> from datasets import Features, Json, List, Value
        >>> text_features(Features({"extra": Json(), "turns": List(Json()), "text": Value("string")}))
        {'extra': Value('string'), 'turns': List(Value('string')), 'text': Value('string')}
    """
    from datasets import Json, Value
    from datasets.features.features import _visit

    features = features.copy()
    for name in json_text_columns(features):
        features[name] = _visit(features[name], lambda inner: Value("string") if isinstance(inner, Json) else inner)
    return features


def empty_columns(splits: Mapping[str, object]) -> list[str]:
    """The columns that hold nothing in any row of any split: every value null, or (list columns)
    every list empty or null. Nothing is empty in a dataset without rows. ``splits``: split name ->
    ``datasets.Dataset`` or :class:`SplitRows`; a column empty in a split's whole table is empty in
    the split, and for the others one flag per table row is computed and looked up at its rows.

    Example:
        >>> from datasets import Dataset
        >>> empty_columns({"train": Dataset.from_dict({"text": ["a", "b"], "images": [["x.png"], []],
        ...                                            "audios": [[], None], "note": [None, None]})})
        ['audios', 'note']
    """
    parts = [part for part in (SplitRows.of(part) for part in splits.values()) if len(part)]
    if not parts:
        return []
    empty = list(parts[0].column_names)
    for part in parts:
        for name in [name for name in empty if _holds_values(part.table.column(name))]:
            if part.rows is None or _row_holds_values(part.table.column(name))[part.rows].any():
                empty.remove(name)
    return empty


def _row_holds_values(column) -> np.ndarray:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.greater(pc.fill_null(pc.list_value_length(column), 0), 0).to_numpy()
    return pc.is_valid(column).to_numpy()


def _holds_values(column) -> bool:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return bool(pc.sum(pc.fill_null(pc.list_value_length(column), 0)).as_py())
    return column.null_count < len(column)


def config_name(value) -> str:
    text = str(value)
    if "/" in text or os.sep in text:
        text = Path(text).stem
    name = CONFIG_NAME.sub("_", text).strip("_.") or "empty"
    if name in ("default", DATA_FOLDER, PLOT_FOLDER):
        name = f"{name}_config"
    return name


def arrow_nbytes(dataset) -> int:
    """The in-memory Arrow size of a dataset's rows, as ``datasets`` measures it to shard a
    ``push_to_hub`` and for ``SplitInfo.num_bytes``: a selection (a split, ``select``, ``shard``)
    counts its own rows, not the whole table its indices point into."""
    return dataset._estimate_nbytes()


def shard_bounds(rows: int, num_shards: int, index: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``index``, as ``Dataset.shard(num_shards, index, contiguous=True)`` cuts them.

    Example:
        >>> [shard_bounds(10, 3, index) for index in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    size, extra = divmod(rows, num_shards)
    start = size * index + min(index, extra)
    return start, start + size + (index < extra)


class ShardTrail:
    """Follows the writer through the shards it writes: digests each shard's bytes as they are
    written (xxh3-128: a tenth of SHA-256's time, and the shards of a dataset with embedded media
    are as large as its media) and hands them to the disk behind it.

    The writer reports each shard's length after every batch (:meth:`written`; a shard is only
    ever appended to) and its final length when closed (:meth:`closed`, which returns the future
    digest). Bytes are digested from the page cache, through a mapping of at most
    ``DIGEST_BLOCK_BYTES`` at a time, while they are fresh there. Each range is then advised
    ``POSIX_FADV_DONTNEED`` twice: once digested, which starts its writeback, and at the next
    report, which drops its pages once they are on disk. So:

    - the dirty pages of a publish stay at a few batches instead of piling up to the kernel's
      background threshold (10% of the memory it can use for files, ~2 GB on a 24 GB machine),
      past which the writer was throttled to the disk's speed;
    - the writer's next pages are those just dropped. Pages taken afresh cost the kernel more:
      on a virtual machine, memory free for a while goes back to the host, and each page of it
      costs a fault on the host when taken again;
    - what a publish writes does not evict the page cache the media and the user's data live in.

    Digests and advice run on two threads of their own: starting a writeback waits when the
    disk's queue is full, and a digest never waits for the disk. No advice is given where
    ``posix_fadvise`` does not exist (the digests are the same). One writer reports, in order.
    """

    def __init__(self) -> None:
        self._digester = ThreadPoolExecutor(max_workers=1)
        self._adviser = ThreadPoolExecutor(max_workers=1)
        self._shards: dict[Path, _Trail] = {}

    def written(self, path: Path, length: int) -> None:
        """The writer has written ``path`` up to byte ``length``."""
        self._digester.submit(self._follow, path, length)

    def closed(self, path: Path, length: int) -> Future:
        """The writer closed ``path`` at ``length`` bytes. Returns the future digest of its bytes
        (or the ``OSError`` met reading them), set before its last pages are handed to the disk:
        the caller may rename the shard as soon as the digest is known."""
        digest: Future = Future()
        self._digester.submit(self._close, path, length, digest)
        return digest

    def shutdown(self) -> None:
        """Close the shards still open (after an error) once the reports queued are followed;
        returns without waiting for the last advice."""
        self._digester.submit(self._close_all)
        self._digester.shutdown(wait=False)

    def _trail(self, path: Path) -> "_Trail":
        if path not in self._shards:
            self._shards[path] = _Trail.of(path)
        return self._shards[path]

    def _follow(self, path: Path, length: int) -> None:
        trail = self._trail(path)
        # From where the report before this one began: that range's writeback is started by now.
        cached_from = trail.cached_from
        if trail.follow(length):
            self._advise(trail, cached_from, length)

    def _close(self, path: Path, length: int, digest: Future) -> None:
        trail = self._trail(path)
        trail.follow(length)
        del self._shards[path]
        if trail.error is not None:
            self._release(trail)
            digest.set_exception(trail.error)
            return
        if not hasattr(os, "posix_fadvise"):
            # Where there is no advice to give (Windows), an open file cannot be renamed either.
            trail.handle.close()
        digest.set_result(trail.digest.digest())
        self._advise(trail, 0, length)
        self._release(trail)

    def _advise(self, trail: "_Trail", start: int, stop: int) -> None:
        if hasattr(os, "posix_fadvise"):
            self._adviser.submit(_not_needed, trail.handle, start, stop)

    def _release(self, trail: "_Trail") -> None:
        # After the advice queued for it, on the same thread.
        if trail.handle is not None:
            self._adviser.submit(trail.handle.close)

    def _close_all(self) -> None:
        for trail in self._shards.values():
            self._release(trail)
        self._shards.clear()
        self._adviser.shutdown(wait=False)


def _not_needed(handle, start: int, stop: int) -> None:
    """Advise bytes ``[start, stop)`` of an open shard as not needed: dirty pages start their
    writeback, clean ones leave the page cache."""
    # Advice only: the shard is whole and digested whatever the kernel does with it.
    with contextlib.suppress(OSError):
        os.posix_fadvise(handle.fileno(), start, stop - start, os.POSIX_FADV_DONTNEED)


@dataclasses.dataclass
class _Trail:
    """One shard followed by :class:`ShardTrail`: its open file, its digest so far, how far it is
    digested, and where the range digested at the last report began."""

    handle: Optional[object]
    digest: object
    error: Optional[BaseException] = None
    digested: int = 0
    cached_from: int = 0

    @classmethod
    def of(cls, path: Path) -> "_Trail":
        try:
            return cls(open(path, "rb", buffering=0), xxhash.xxh3_128())
        except OSError as error:
            return cls(None, None, error)

    def follow(self, length: int) -> bool:
        """Digest the shard up to ``length``; ``False`` once reading it failed (``error``)."""
        if self.error is not None:
            return False
        self.cached_from = self.digested
        try:
            while self.digested < length:
                # Mappings start at a multiple of the allocation granularity.
                start = self.digested - self.digested % mmap.ALLOCATIONGRANULARITY
                stop = min(length, start + DIGEST_BLOCK_BYTES)
                with mmap.mmap(self.handle.fileno(), stop - start, access=mmap.ACCESS_READ, offset=start) as window:
                    with memoryview(window)[self.digested - start:] as fresh:
                        # xxhash lets go of the GIL while it hashes a large buffer.
                        self.digest.update(fresh)
                self.digested = stop
        except (OSError, ValueError) as error:
            self.error = OSError(f"{self.handle.name}: cannot read the shard back to digest it: {error}")
            return False
        return True


def write_shards(part: SplitRows, features, folder: Path, prefix: str, split: str, max_shard_bytes: int, *,
                 nbytes: int, read_columns: Sequence[str] = (), embed: Sequence[str] = (),
                 on_batch: Optional[Callable[[int, pa.Table, pa.Table], None]] = None) -> dict[Path, bytes]:
    """Write a split's Parquet shards straight from its table: ``ceil(nbytes / max_shard_bytes)``
    shards of contiguous rows, each written batch by batch (a ``take`` of the split's sorted rows,
    or a slice), so memory holds a few batches, never the split.

    ``features``: the published columns and their features (the Parquet schema, with the
    ``datasets`` metadata); ``nbytes``: the split's estimated Arrow size (media bytes included when
    embedding); ``read_columns``: more columns to read along (for ``on_batch``, or ``media_root``
    to embed); ``embed``: media columns whose files are read into the rows (on threads, ahead of
    the writer); ``on_batch(position, batch, written)`` sees each batch of the read columns, in
    order, and the same rows as written (media embedded). Parquet options are those
    ``Dataset.to_parquet`` writes, except that shards embedding media are written without
    content-defined chunking (it gains nothing on verbatim media bytes, see below). Returns each
    shard's path -> the digest of its bytes (xxh3-128, hashed from the page cache on a thread
    behind the writer, then handed to the disk: see :class:`ShardTrail`), in shard order.
    """
    import pyarrow.parquet as pq
    from datasets import config
    from datasets.arrow_writer import (
        get_parquet_column_options,
        get_writer_batch_size_from_data_size,
        get_writer_batch_size_from_features,
    )

    rows = len(part)
    num_shards = max(1, math.ceil(nbytes / max_shard_bytes)) if rows else 1
    num_shards = min(num_shards, max(1, rows))
    schema = features.arrow_schema
    # Row groups as Dataset.to_parquet cuts them, but at most WRITE_BATCH_BYTES: the batches in
    # flight (read ahead, embedded, written) are what publishing holds in memory.
    batch_size = get_writer_batch_size_from_features(features) or min(
        get_writer_batch_size_from_data_size(rows, nbytes), max(1, rows * WRITE_BATCH_BYTES // max(1, nbytes)))
    columns = list(features)
    wanted = list(dict.fromkeys([*columns, *read_columns]))
    jobs = [(index, start, min(start + batch_size, stop)) for index in range(num_shards)
            for start, stop in [shard_bounds(rows, num_shards, index)] for start in range(start, stop, batch_size)]

    def prepare(job):
        index, start, stop = job
        _, batch = next(part.window(start, stop).batches(wanted, stop - start))
        if STYLE_COLUMN in batch.column_names:
            # A loader's style claims name local files: what is published is the proven style.
            batch = batch.set_column(batch.schema.get_field_index(STYLE_COLUMN), STYLE_COLUMN,
                                     proven_styles(batch.column(STYLE_COLUMN)))
        return index, start, batch, embed_media_batch(batch, embed, buffers) if embed else batch

    paths = []
    for index in range(num_shards):
        path = folder / prefix / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(path)
    writers: dict = {}
    sinks: dict = {}
    digests: dict = {}

    def close(index: int) -> None:
        writers.pop(index).close()
        sink = sinks.pop(index)
        length = sink.tell()
        sink.close()
        digests[index] = trail.closed(paths[index], length)

    def write(index: int, table: pa.Table) -> None:
        if index not in writers:
            for done in [key for key in writers if key < index]:
                close(done)
            # Content-defined chunking makes Parquet pages start where the content says, so the
            # Hub's Xet storage (byte-level CDC itself) dedups a new version's pages against the
            # old ones even after rows moved: it pays for compressed pages, whose bytes change with
            # any shift of their bounds. Embedded media are written uncompressed and PLAIN (as
            # datasets writes them): each file's bytes sit verbatim in the shard, where Xet finds
            # them whatever the page bounds, so chunking them again gains nothing there and costs a
            # rolling hash over every media byte (a third of the writing). The sink is a native
            # file: the writer thread never needs the GIL (a Python sink took it for every page
            # written, waiting behind the threads that read media and count statistics); opened
            # here, it tells how far the shard is written.
            sinks[index] = pa.OSFile(str(paths[index]), "wb")
            writers[index] = pq.ParquetWriter(sinks[index], schema,
                                              use_content_defined_chunking=False if embed else config.DEFAULT_CDC_OPTIONS,
                                              write_page_index=True,
                                              **get_parquet_column_options(features, schema))
        writers[index].write_table(table)
        trail.written(paths[index], sinks[index].tell())

    threads = EMBED_THREADS if embed else 2
    # Batches handed to the writer ahead of it. With media, three: the writer is what bounds the
    # pass, and with one it waited for this thread (statistics, the GIL) 0.3-0.44 s of a 3.7-4.7 s
    # pass, 0.2-0.3 s with three (three alternating runs each). Without media, one: the memory
    # of publishing is the batches in flight.
    writes_ahead = 3 if embed else 1
    # As many as batches in flight: read ahead, in this thread's hands, queued and being written.
    buffers = MediaBuffers(kept=threads + writes_ahead + 2)
    trail = ShardTrail()
    try:
        # Readers take (and embed) batches ahead; one writer thread encodes them in order, while
        # this thread counts the statistics of the batch it just handed over.
        with ThreadPoolExecutor(max_workers=threads) as pool, ThreadPoolExecutor(max_workers=1) as writer:
            try:
                pending: deque = deque(pool.submit(prepare, job) for job in jobs[:threads])
                upcoming = iter(jobs[threads:])
                writes: deque = deque()
                while pending:
                    index, start, read, batch = pending.popleft().result()
                    next_job = next(upcoming, None)
                    if next_job is not None:
                        pending.append(pool.submit(prepare, next_job))
                    written = batch.select(columns).cast(schema)
                    writes.append(writer.submit(write, index, written))
                    if on_batch is not None:
                        on_batch(start, read, written)
                    while len(writes) > writes_ahead:
                        writes.popleft().result()
                    # Arrow's allocator keeps the pages of the batches freed for reuse, a few
                    # batches' worth per thread that touched them: handed back here, what the pass
                    # holds is the batches in flight, however many batches it writes. Not with
                    # media: the writer's pages are then kept for its next batch of a few MB
                    # (fresh pages cost a fault and the zeroing of every page), and the media
                    # bytes are in the reused arrays of MediaBuffers.
                    if not embed:
                        pa.default_memory_pool().release_unused()
                while writes:
                    writes.popleft().result()
                for index in list(writers):
                    close(index)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                writer.shutdown(wait=False, cancel_futures=True)
                raise
        for index, path in enumerate(paths):
            if index not in digests:
                # An empty split still gets its (empty) shard, as Dataset.to_parquet writes one.
                pq.write_table(schema.empty_table(), str(path))
                digests[index] = trail.closed(path, path.stat().st_size)
    finally:
        # Only after an error (its shards are discarded with the staging folder): every writer
        # closed, then every sink (one may be open without its writer, whose creation failed),
        # whatever the closes before raised, so that the error that stopped the pass is raised.
        for closing in [*(writer_of_shard.close for writer_of_shard in writers.values()), *(sink.close for sink in sinks.values())]:
            with contextlib.suppress(Exception):
                closing()
        trail.shutdown()
    return {path: digests[index].result() for index, path in enumerate(paths)}


def tag_generation(root: Path, shards: Mapping[Path, bytes]) -> str:
    """Append the generation tag to every shard's name (``train-00000-of-00001-<tag>.parquet``).

    ``shards``: each shard's path -> the digest of its bytes (:func:`write_shards`
    computes it beside the writing). The tag is a digest of the shards'
    paths and bytes' digests: a new publish of other data never reuses the names the current card
    points at, and the same data always gets the same names.
    """
    digest = hashlib.sha256()
    ordered = sorted(shards)
    for path in ordered:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + shards[path])
    tag = digest.hexdigest()[:GENERATION_DIGITS]
    for path in ordered:
        path.rename(path.with_name(f"{path.stem}-{tag}{path.suffix}"))
    return tag


def published_names(splits_by_folder: Mapping[str, Iterable[str]]) -> re.Pattern:
    """The repo paths ``publish`` writes for these shard folders and splits: their Parquet shards
    (with or without a generation tag, as ``push_to_hub`` names them), ``README.md`` and the plots.

    These are the only files it replaces or deletes in a target it keeps no manifest of (the Hub,
    or a local folder with ``overwrite=True``).

    Example:
        >>> names = published_names({"data": ["train", "test"]})
        >>> [bool(names.fullmatch(path)) for path in ("data/train-00000-of-00002-0f3a9c1e.parquet",
        ...  "data/test-00001-of-00002.parquet", "data/notes.md", "other/train-00000-of-00001.parquet",
        ...  "assets/turns.png", "README.md", "scripts/train.py")]
        [True, True, False, False, True, True, False]
    """
    shards = "|".join(f"{re.escape(folder)}/(?:{'|'.join(re.escape(split) for split in splits)})"
                      for folder, splits in splits_by_folder.items())
    plots = "|".join(re.escape(name) for name in PLOT_TITLES)
    return re.compile(rf"(?:{shards})-\d{{5}}-of-\d{{5}}(?:-[0-9a-f]{{{GENERATION_DIGITS}}})?\.parquet"
                      rf"|{re.escape(CARD_FILE)}|{re.escape(PLOT_FOLDER)}/(?:{plots})")
