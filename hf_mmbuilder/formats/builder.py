"""What every loading script shares: the config knobs, the builder skeleton and the row columns.

A loading script subclasses :class:`DJBuilderConfig` (adding its format's Data-Juicer options) and
:class:`DJBuilder`, implementing ``_format_features`` (its round-trip columns) and
``_shard_tables`` (parse one shard into Arrow tables). The base provides: the DJ ``Features`` with
the shared columns (``media_root``, ``source_file``, ``extra``, and ``record_errors`` when
``on_error="keep"``), file discovery (zips and folders included), shards for ``num_proc``, the
error policy with its rejects file, and a ``dataset_name`` safe for the cache folder.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional

import datasets
import numpy as np
import orjson
import pyarrow as pa
from datasets import Json, List, Value
from datasets.arrow_reader import ArrowReader
from datasets.arrow_writer import get_arrow_writer_batch_size_from_features
from datasets.builder import Key
from datasets.exceptions import DatasetGenerationError
from datasets.table import InMemoryTable

from ..errors import ERRORS_COLUMN, ErrorPolicy, RecordError, check_on_error, logger
from ..schema import AUDIO_TOKEN, EOC_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN, SpecialTokens, dj_features
from .failures import READ_ERRORS, FileFailure, Unreadable, file_failure, read_failure, report_file_failure
from .fingerprint import code_hash
from .serialization import STYLE_COLUMN, style_claim
from .records import JSONLayoutError, RecordIndex, iter_batches, scan_records, scan_records_in_background

# Rows per Arrow record batch of a loaded dataset whose rows carry no media bytes (see DJBuilder).
WRITER_BATCH_ROWS = 10_000

SHARED_COLUMNS = {
    "media_root": Value("string"),
    "source_file": Value("string"),
    # A claim on the source file's written style (serialization.style_claim), for byte-identical export.
    STYLE_COLUMN: Value("string"),
    "extra": Json(),
}


@dataclasses.dataclass
class DJBuilderConfig(datasets.BuilderConfig):
    """Options every format accepts.

    - ``image_special_token`` ... ``eoc_special_token``: the tokens written into ``text``
      (Data-Juicer's names; defaults are the canonical DJ tokens).
    - ``media_root``: folder relative media paths are read from (default: each data file's folder).
    - ``check_media``: check that every referenced media file exists (a missing one is a bad record).
    - ``on_error``: ``"raise"``, ``"skip"`` or ``"keep"`` (see :mod:`hf_mmbuilder.errors`).
    - ``rejects_path``: where skipped records go (default: ``<cache>/hf_mmbuilder_rejects/...``).
    - ``shard_bytes``: target size of the pieces big files are cut into for ``num_proc``.
    - ``fast_path``: ``False`` sends every record through the format's record-by-record converter
      on load, and every row through ``row_to_record`` on export: the same rows and bytes, slower.
      For debugging and for tests that compare both paths. Formats without a fast path ignore it.
    """

    image_special_token: str = IMAGE_TOKEN
    audio_special_token: str = AUDIO_TOKEN
    video_special_token: str = VIDEO_TOKEN
    eoc_special_token: str = EOC_TOKEN
    media_root: Optional[str] = None
    check_media: bool = False
    on_error: str = "raise"
    rejects_path: Optional[str] = None
    shard_bytes: int = 64 << 20
    fast_path: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_on_error(self.on_error)

    @property
    def tokens(self) -> SpecialTokens:
        return SpecialTokens(
            image=self.image_special_token,
            audio=self.audio_special_token,
            video=self.video_special_token,
            eoc=self.eoc_special_token,
        )


@dataclasses.dataclass(frozen=True)
class Shard:
    """One unit of work for a worker: a file, optionally a range of its records."""

    shard_id: int
    path: str
    original: str
    media_root: str
    first: int = 0
    stop: Optional[int] = None
    index: object = None
    record_offset: int = 0


class DJBuilder(datasets.ArrowBasedBuilder):
    """Base of every hf_mmbuilder loading script (see the module docstring)."""

    BUILDER_CONFIG_CLASS = DJBuilderConfig

    def __init__(self, *args, dataset_name: Optional[str] = None, hash: Optional[str] = None, **kwargs):
        # "hf_mmbuilder/llava" would make the cache folder a missing sub-folder.
        if dataset_name:
            dataset_name = dataset_name.replace("/", "___")
        # Whatever hash the caller passes (the registration's placeholder, or none), the cache is keyed
        # on every project module this builder runs, so an edit anywhere in its code is a new cache.
        super().__init__(*args, dataset_name=dataset_name, hash=code_hash(type(self).__module__), **kwargs)
        if self._writer_batch_size is None and get_arrow_writer_batch_size_from_features(self.info.features) is None:
            # Each table a loader yields (a parsed batch of a few MB) is written as one Arrow record
            # batch: datasets' 1000 rows cut it into several, and every record batch costs about
            # 13 KB of memory in each process that maps the dataset (25 MB for 2M LLaVA rows).
            # Rows that may carry media bytes keep datasets' smaller batches (features decide).
            self._writer_batch_size = WRITER_BATCH_ROWS

    # -- to implement in a loading script -------------------------------------------------------

    def _format_features(self) -> dict:
        """The format's own columns (round-trip information), beside the DJ and shared columns."""
        raise NotImplementedError

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        """Parse one shard into Arrow tables with exactly ``self.info.features``."""
        raise NotImplementedError

    def _plan_file(self, shard_id: int, path: str, original: str, media_root: str) -> list[Shard]:
        """Cut one file into shards; by default the whole file is one shard."""
        return [Shard(shard_id, path, original, media_root)]

    def unreadable_shard(self, shard_id: int, path: str, original: str, media_root: str, reason: str) -> Shard:
        """A shard standing for a file that cannot be read or listed (its index an
        :class:`~hf_mmbuilder.formats.failures.Unreadable`): reported through ``on_error`` when the shards run."""
        return Shard(shard_id, path, original, media_root, index=Unreadable(reason))

    def shard_rng(self, shard: Shard) -> random.Random:
        """The random source of one shard (Data-Juicer's ``random`` token positions), seeded by the
        config's ``seed`` and the shard: the same draws on every run, whatever ``num_proc``."""
        return random.Random(self.config.seed * 1_000_003 + shard.shard_id)

    def shard_constants(self, shard: Shard, empty_media: tuple = ()) -> dict:
        """The columns with one value for a whole shard (:class:`ColumnBuffer` constants): its
        ``media_root``, ``source_file``, the claim on its style (``source_style``: proved when an
        exporter needs it, not here), and an empty list for each media column of ``empty_media``
        (those the format never fills)."""
        return {**{column: [] for column in empty_media}, "media_root": shard.media_root, "source_file": shard.original,
                # The style of the file as given: an archive's members (extracted here, or on a Ray
                # worker) have none, wherever they were unpacked.
                STYLE_COLUMN: style_claim(shard.original)}

    def _plan_json_records(self, shard_id: int, path: str, original: str, media_root: str, opener=open, *,
                           scan_while_parsing: bool = False) -> list[Shard]:
        """Shards of about ``shard_bytes`` of a JSON array / JSON-lines file, each carrying only
        its own slice of the record index (so workers receive kilobytes, not the whole index).

        With ``scan_while_parsing`` (for a loading script whose ``_shard_tables`` reads its shards
        through :meth:`_record_batches`) and a single-process build, the file is one shard with no
        index: it is scanned as it is parsed.
        """
        if scan_while_parsing and getattr(self, "_single_process", False):
            return [Shard(shard_id, path, original, media_root)]
        index = scan_records(path, opener)
        shards = []
        for k, (first, stop) in enumerate(index.shards(self.config.shard_bytes)):
            fault = index.fault if stop == len(index) else None
            piece = RecordIndex(path, index.layout, index.starts[first:stop], index.ends[first:stop], index.lines[first:stop], fault)
            shards.append(Shard(shard_id + k, path, original, media_root, 0, stop - first, piece, first))
        return shards

    def _record_batches(self, shard: Shard, fast_type, opener=open, *, decode: bool = True):
        """The :class:`~hf_mmbuilder.formats.records.RecordBatch` es of a shard planned by
        :meth:`_plan_json_records`, records numbered file-wide; an index-less shard is scanned
        while its batches are parsed."""
        if shard.index is None:
            for index, first in scan_records_in_background(shard.path, opener):
                yield from iter_batches(index, 0, len(index), fast_type, opener, decode=decode, record_offset=first)
        else:
            yield from iter_batches(shard.index, shard.first, shard.stop, fast_type, opener, decode=decode, record_offset=shard.record_offset)

    # -- shared machinery -----------------------------------------------------------------------

    def features_with_shared(self) -> datasets.Features:
        columns = dict(self._format_features())
        columns.update(SHARED_COLUMNS)
        if self.config.on_error == "keep":
            columns[ERRORS_COLUMN] = List(Value("string"))
        return dj_features(columns)

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(features=self.features_with_shared())

    @property
    def rejects_path(self) -> Optional[str]:
        if self.config.on_error != "skip":
            return None
        if self.config.rejects_path:
            return self.config.rejects_path
        return os.path.join(self._cache_dir_root, "hf_mmbuilder_rejects", f"{self.dataset_name}-{self.config_id}.jsonl")

    def _split_generators(self, dl_manager):
        if not self.config.data_files:
            raise ValueError("no data files given: pass data_files=... (a path, a list, or a dict of splits)")
        dl_manager.download_config.extract_on_the_fly = True
        downloaded = dl_manager.download(self.config.data_files)
        extracted = dl_manager.extract(downloaded)
        if self.rejects_path and os.path.exists(self.rejects_path):
            os.remove(self.rejects_path)
        splits = []
        shard_id = 0
        for split_name, files in extracted.items():
            shards = []
            for file, original in zip(files, self.config.data_files[split_name]):
                media_root = self.config.media_root or os.path.dirname(os.path.abspath(str(original)))
                try:
                    paths = list(dl_manager.iter_files(file))
                except READ_ERRORS as error:
                    # An archive that cannot be opened (not a zip, truncated): one shard stands for it,
                    # reported through on_error when the shards run.
                    shards.append(self.unreadable_shard(shard_id, str(file), str(original), media_root, read_failure(str(original), error)))
                    shard_id += 1
                    continue
                for path in paths:
                    planned = self._plan_file(shard_id, path, str(original), media_root)
                    shard_id += len(planned)
                    shards.extend(planned)
            splits.append(datasets.SplitGenerator(name=split_name, gen_kwargs={"shards": shards}))
        return splits

    def _generate_tables(self, shards: list[Shard]):
        if not getattr(self, "_preparing", False):
            # Streaming: our errors reach the caller as they are.
            yield from self._policy_tables(shards)
            return
        try:
            yield from self._policy_tables(shards)
        except (ValueError, OSError) as error:
            raise CarriedError(error) from error

    def _policy_tables(self, shards: list[Shard]):
        with ErrorPolicy(self.config.on_error, self.rejects_path) as policy:
            for shard in shards:
                if isinstance(shard.index, Unreadable):
                    file_failure(shard.original, shard.index.reason, policy, self.config.on_error)
                    continue
                before = policy.skipped.get(shard.original, 0) + policy.failed.get(shard.original, 0)
                rows = 0
                try:
                    for batch_id, table in enumerate(self._shard_tables(shard, policy)):
                        rows += table.num_rows
                        yield Key(shard.shard_id, batch_id), table
                except JSONLayoutError as error:
                    # The file's records before the fault are in; the rest of it is one failure.
                    layout_failure(shard.original, error, policy)
                # A whole file (its only shard) that gave no row, no reject and no failure holds no record: every
                # format says so here, once (CSV with a header only, `[]`, blanks, `{"data": []}`).
                failures = policy.skipped.get(shard.original, 0) + policy.failed.get(shard.original, 0)
                if rows == 0 and failures == before and shard.record_offset == 0 and shard.first == 0:
                    member = shard.path.split("::", 1)[0].split("://", 1)[-1] if "::" in shard.path else None
                    empty_file(f"{member} in {shard.original}" if member else shard.original, self.config.on_error)

    def _as_dataset(self, split=datasets.Split.TRAIN, in_memory: bool = False) -> datasets.Dataset:
        # datasets refuses a split with no rows ('Instruction "train" corresponds to no data!');
        # files that hold no records under on_error="skip"/"keep" give an empty dataset instead.
        reader = ArrowReader(self._fs._strip_protocol(self._output_dir), self.info)
        if reader.get_file_instructions(self.dataset_name, split, self.info.splits.values()):
            return super()._as_dataset(split=split, in_memory=in_memory)
        table = InMemoryTable.from_batches([], schema=self.info.features.arrow_schema)
        return datasets.Dataset(table, info=self.info.copy(), split=datasets.Split(str(split)), fingerprint=self._get_dataset_fingerprint(split))

    def download_and_prepare(self, *args, num_proc: Optional[int] = None, **kwargs):
        # One process reads a file as one shard, scanned while it is parsed; several need the shards
        # (and so the scan) up front.
        self._single_process = not num_proc or num_proc <= 1
        self._preparing = True
        try:
            return super().download_and_prepare(*args, num_proc=num_proc, **kwargs)
        except DatasetGenerationError as error:
            ours = surfaced(error)
            if ours is error:
                raise
            # Our error keeps its own traceback; datasets' wrapper adds nothing to read.
            raise ours from None


class CarriedError(DatasetGenerationError):
    """Our error (a bad record, an unreadable file) carried through ``datasets``' generation:
    ``datasets`` passes its own error type through unwrapped, also from its worker processes,
    where the chained cause would be lost to a ``RemoteTraceback``; :func:`surfaced` takes it out."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error

    def __reduce__(self):
        return type(self), (self.error,)


def surfaced(error: DatasetGenerationError) -> BaseException:
    """Our error inside ``datasets``' generic ``DatasetGenerationError`` (a :class:`CarriedError`,
    or the chained cause), so that the first line a user reads names the file, record and reason
    (bad records are ``ValueError`` s, unreadable files ``OSError`` s); else ``error`` itself.

    Example:
        >>> cause = RecordError("a.json", 3, "no conversations")
        >>> surfaced(CarriedError(cause)) is cause
        True
    """
    if isinstance(error, CarriedError):
        return error.error
    cause = error.__cause__
    while isinstance(cause, DatasetGenerationError) or (cause is not None and type(cause).__name__ == "RemoteTraceback"):
        cause = cause.__cause__
    return cause if isinstance(cause, (ValueError, OSError)) else error


def layout_failure(source: str, error: JSONLayoutError, policy: ErrorPolicy) -> None:
    """A JSON file whose layout breaks after some records: raised under ``on_error="raise"``; else
    a failure of the rest of the file (a :class:`~.failures.FileFailure` at the fault's line, as
    for any file-level failure: the records read before it stay, and it is reported as the file's
    failure, never as one skipped record).

    Example:
        >>> layout_failure("a.json", JSONLayoutError("a.json", "text outside the top-level array", line=9), ErrorPolicy("skip"))
    """
    if policy.on_error == "raise":
        raise error
    report_file_failure(FileFailure(source, f"the rest of the file: {error.reason}", line=error.line),
                        policy, policy.on_error)


def empty_file(source: str, on_error: str) -> None:
    """A file with no record (empty, blanks only, ``[]``, a CSV header only): a :class:`RecordError`
    naming it under ``on_error="raise"``; else a warning naming it (it adds no rows).

    Example:
        >>> empty_file("a.json", "skip")
        >>> empty_file("a.json", "raise")
        Traceback (most recent call last):
        ...
        hf_mmbuilder.errors.RecordError: a.json: the file holds no records
    """
    if on_error == "raise":
        raise RecordError(source, None, "the file holds no records")
    logger.warning("%s: the file holds no records", source)


def parse_threads() -> int:
    """Threads for the compiled parsers: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_in_threads(function: Callable, items: Iterable, threads: int) -> Iterator[tuple]:
    """``(item, function(item))`` for each item, in order, with ``function`` running on up to
    ``threads`` threads ahead of the consumer (at most ``2 * threads`` results pending, so memory
    stays bounded). Meant for compiled kernels that release the GIL: the caller's thread (which
    writes the Arrow file) and the parsers then run at the same time.

    Example:
        >>> [result for _, result in map_in_threads(lambda x: x * x, range(4), 2)]
        [0, 1, 4, 9]
    """
    if threads <= 1:
        for item in items:
            yield item, function(item)
        return
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(threads) as pool:
        failure = None
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) >= 2 * threads:
                    done, future = pending.popleft()
                    yield done, future.result()
        except Exception as error:
            # Items that came before a failure of ``items`` itself are still delivered, in order.
            failure = error
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
        if failure is not None:
            raise failure


def interleave_rows(first: Optional[pa.Table], first_positions: list, second: Optional[pa.Table], second_positions: list) -> Iterator[pa.Table]:
    """The rows of two tables in the order of their positions (each list ascending, row ``k`` of a
    table at ``positions[k]``), as zero-copy slices: the runs of consecutive rows of each table.

    Example:
        >>> a, b = pa.table({"x": [0, 2, 3]}), pa.table({"x": [1]})
        >>> [t["x"].to_pylist() for t in interleave_rows(a, [0, 2, 3], b, [1])]
        [[0], [1], [2, 3]]
    """
    tagged = sorted([(p, 0, k) for k, p in enumerate(first_positions)] + [(p, 1, k) for k, p in enumerate(second_positions)])
    tables = (first, second)
    run_start = 0
    for index, (_, side, row) in enumerate(tagged):
        next_side = tagged[index + 1][1] if index + 1 < len(tagged) else None
        next_row = tagged[index + 1][2] if index + 1 < len(tagged) else None
        if next_side != side or next_row != row + 1:
            start_row = tagged[run_start][2]
            yield tables[side].slice(start_row, row + 1 - start_row)
            run_start = index + 1


def rows_in_file_order(fast: pa.Table, fallback: Iterable[int], kept: set, careful: Optional[pa.Table]) -> Iterator[pa.Table]:
    """The rows of a batch in file order, as zero-copy slices (the writer copies them into the file
    anyway): the runs of ``fast`` rows (one per record of the batch) around the ``fallback``
    positions (ascending), each of those in ``kept`` taken in turn from ``careful`` (the careful
    path's rows, in order); a fallback record not kept is left out.

    Example:
        >>> fast, careful = pa.table({"x": [0, -1, 2, -1]}), pa.table({"x": [1]})
        >>> [t["x"].to_pylist() for t in rows_in_file_order(fast, [1, 3], {1}, careful)]
        [[0], [1], [2]]
    """
    run_start = careful_row = 0
    for position in fallback:
        if run_start < position:
            yield fast.slice(run_start, position - run_start)
        if position in kept:
            yield careful.slice(careful_row, 1)
            careful_row += 1
        run_start = position + 1
    if run_start < len(fast):
        yield fast.slice(run_start)


class ColumnBuffer:
    """Python lists per column, turned into an Arrow table with the builder's exact schema.

    ``constants`` are columns with one value for every row of the buffer (a shard's
    ``media_root``, an empty media list): they are not appended row by row.

    Example:
        >>> from datasets import Features, Value
        >>> buffer = ColumnBuffer(Features({"text": Value("string"), "lang": Value("string")}), {"lang": "en"})
        >>> buffer.columns["text"].append("hi")
        >>> buffer.to_table().to_pylist()
        [{'text': 'hi', 'lang': 'en'}]
    """

    def __init__(self, features: datasets.Features, constants: Optional[dict] = None):
        self.features = features
        self.schema = features.arrow_schema
        self.constants = dict(constants or {})
        self.columns: dict[str, list] = {name: [] for name in features if name not in self.constants}
        self._json_columns = {name for name, feature in features.items() if isinstance(feature, Json)}
        self._constant_rows: Optional[int] = None
        self._constant_arrays: dict[str, pa.Array] = {}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def to_table(self) -> pa.Table:
        """The buffered rows as a table (the buffer is emptied)."""
        arrays = {}
        for name, values in self.columns.items():
            field_type = self.schema.field(name).type
            if name in self._json_columns:
                storage = pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())
                arrays[name] = pa.ExtensionArray.from_storage(field_type, storage)
            else:
                arrays[name] = pa.array(values, field_type)
        table = self.table_with(arrays, len(self))
        for values in self.columns.values():
            values.clear()
        return table

    def table_with(self, arrays: dict, rows: int) -> pa.Table:
        """A table of ``rows`` rows from ready Arrow ``arrays`` plus this buffer's constants.
        Tables of the length of the one before (a file's batches) share its constant columns:
        they are made once, not once per table."""
        if rows != self._constant_rows:
            self._constant_arrays = {name: constant_column(self.constants[name], field.type, rows)
                                     for name, field in zip(self.schema.names, self.schema) if name in self.constants}
            self._constant_rows = rows
        constants = self._constant_arrays
        return pa.Table.from_arrays([constants[name] if name in constants else arrays[name] for name in self.schema.names], schema=self.schema)


def constant_column(value, field_type: pa.DataType, rows: int) -> pa.Array:
    """``value`` in each of ``rows`` rows, as an array of ``field_type``. O(rows * size of value).

    Example:
        >>> constant_column("/data", pa.string(), 2).to_pylist(), constant_column([], pa.list_(pa.string()), 2).to_pylist()
        (['/data', '/data'], [[], []])
    """
    if pa.types.is_nested(field_type) or isinstance(field_type, pa.ExtensionType):
        # Arrow repeats a nested scalar value by value, several times slower than this take.
        return pa.array([value], field_type).take(pa.array(np.zeros(rows, np.int32)))
    # A flat value is copied buffer-wide, where a take copies it row by row.
    return pa.repeat(pa.scalar(value, field_type), rows)

