"""Data-Juicer's own intermediate format (JSON lines, a JSON array, or Parquet): config, builder,
exporter.

A DJ record holds ``text`` and the media lists ``images``/``audios``/``videos`` (each optional),
usually an ``id``, and whatever else the producing tool kept (``__dj__meta__``, ``__dj__stats__``,
``image_bytes`` in Parquet, source fields). Loading keeps ``id`` as a JSON value (int or string),
``image_bytes`` as binary and every other key in ``extra``, so exporting writes the record back
unchanged (``.jsonl``/``.json``, or ``.parquet`` for records with bytes). Exporting a dataset of
any other format as DJ writes the DJ columns plus every column of that format, so the result can be
processed by Data-Juicer and still carries what the source format needs for its own export.

Such a file loads back with those columns promoted: with ``promote_format="auto"`` (default) the
first record of the first file is compared with the round-trip columns of every format; when it
carries all the columns of one (e.g. ``roles``, ``media_layout``, ``id_is_int``, ``turn_extras``
for LLaVA), they become typed columns again and the nested ``extra`` is merged back, so
``hf-mmbuilder convert --from dj --to llava`` restores the LLaVA records.

Data-Juicer's ``dj-process`` rewrites relative media paths to absolute ones under its input file's
folder. A DJ export of another format therefore records, per row with relative paths, its
``media_root`` (relative to the exported file's folder, so the pair can move) and those paths as
written (``hf_mmbuilder_media_paths``, a plain key, which Data-Juicer keeps); loading gives each
absolute path that ends with ``/`` + a recorded path that path back, and reads media from that
``media_root`` (resolved against the folder Data-Juicer joined the paths to, else the loaded
file's folder; an explicit ``media_root=`` wins), so source-format exports write the paths exactly
as the source did, wherever the file was processed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterator, Optional

import datasets
import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Json, List, Value

from hf_mmbuilder.arrow import strings_from_buffers as _strings
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard, map_in_threads, parse_threads, rows_in_file_order
from hf_mmbuilder.errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError, raw_text
from hf_mmbuilder.formats.exporter import DJ_MEDIA_PATHS_KEY, RowExporter
from hf_mmbuilder.formats.failures import READ_ERRORS, FileFailure, guarded_tables, read_failure, report_file_failure
from hf_mmbuilder.formats.records import MalformedJSON, RecordIndex, bom_length, remember_key_order, restore_key_order
from hf_mmbuilder.formats.catalog import available_formats, format_columns
from hf_mmbuilder.kernels import dj_parse
from hf_mmbuilder.media import check_media_exists
from hf_mmbuilder.schema import MEDIA_COLUMNS

logger = logging.getLogger("hf_mmbuilder")

# Columns that describe where a row came from on this machine, not what the record says.
PROVENANCE_COLUMNS = ("media_root", "source_file", "source_style")
# Columns some formats keep as JSON text (``Json(decode=False)``, exact floats): written as JSON values.
RAW_JSON_COLUMNS = ("image_info", "messages_layout")
BYTES_COLUMN = "image_bytes"
# The key a DJ export adds to a record with relative media paths: the folder they are relative to
# (``media_root``, relative to the exported file's folder) and the paths as written (``relative_paths``, per media column), which
# Data-Juicer's ``dj-process`` joins to its input file's folder (``os.path.join``, not normalised).
# The paths rather than that folder: a file may be written in a staging folder and moved, or
# processed elsewhere. A plain top-level key because Data-Juicer keeps unknown keys of a row, while
# it drops ``__dj__meta__`` from its result unless ``keep_stats_in_res_ds`` is on. Source-format
# exports leave it out (a DJ key).
MEDIA_PATHS_KEY = DJ_MEDIA_PATHS_KEY
_DJ_KEYS = ("text", "id", *MEDIA_COLUMNS, BYTES_COLUMN)
# What pyarrow raises for a damaged Parquet file (no footer: ArrowInvalid; a bad page: OSError).
PARQUET_ERRORS = (pa.ArrowException, OSError)
_OWN_COLUMNS = {"text", "id", *MEDIA_COLUMNS, BYTES_COLUMN, "present_columns", "promoted", "extra", *PROVENANCE_COLUMNS, ERRORS_COLUMN}


@dataclasses.dataclass
class DjConfig(DJBuilderConfig):
    """DJ options (tokens are taken as written in the records).

    - ``promote_format``: ``"auto"`` (detect the format whose round-trip columns the records
      carry), a format name, or ``None`` to keep every non-DJ key in ``extra``.
    """

    promote_format: Optional[str] = "auto"


def _check_record(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"a DJ record must be a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    for column in MEDIA_COLUMNS:
        paths = record.get(column)
        if paths is not None and not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise ValueError(f"'{column}' must be a list of path strings, got {paths!r:.200}")
    data = record.get(BYTES_COLUMN)
    if data is not None and not (isinstance(data, list) and all(isinstance(b, bytes) for b in data)):
        raise ValueError(f"'{BYTES_COLUMN}' must be a list of bytes (Parquet binary), got {type(data).__name__}")
    return record


def detect_format(record: dict) -> Optional[str]:
    """The format whose round-trip columns (beyond ``id``) are all keys of ``record``; the one
    with most such columns wins, ``None`` when none fits.

    Example:
        >>> detect_format({"text": "", "roles": [], "media_layout": "", "id_is_int": False, "turn_extras": None})
        'llava'
    """
    best, best_size = None, 0
    for name in available_formats():
        if name == "dj":
            continue
        try:
            columns = set(format_columns(name)) - _OWN_COLUMNS
        except Exception as error:  # noqa: BLE001 - a broken loading script must not stop DJ loading
            logger.warning("format %s not considered for column promotion: %s", name, error)
            continue
        if columns and columns <= record.keys() and len(columns) > best_size:
            best, best_size = name, len(columns)
    return best


def _fits(value, feature) -> bool:
    if value is None or isinstance(feature, Json):
        return True
    if isinstance(feature, List):
        return isinstance(value, list)
    if isinstance(feature, Value):
        if feature.dtype == "string":
            return isinstance(value, str)
        if feature.dtype == "bool":
            return isinstance(value, bool)
        if feature.dtype.startswith("int"):
            return isinstance(value, int) and not isinstance(value, bool)
    return True


def _kind(feature) -> int:
    """What the compiled parser checks a promoted column's value against (as :func:`_fits`)."""
    if isinstance(feature, List):
        return dj_parse.KIND_STRING_LIST if isinstance(feature.feature, Value) and feature.feature.dtype == "string" else dj_parse.KIND_LIST
    if isinstance(feature, Value):
        if feature.dtype == "string":
            return dj_parse.KIND_STRING
        if feature.dtype == "bool":
            return dj_parse.KIND_BOOL
        if feature.dtype.startswith("int"):
            return dj_parse.KIND_INT
    return dj_parse.KIND_ANY


# What _first_record gives for a JSON file without records (the next file's first record counts).
_NO_RECORD = object()
# Promoted columns' values from their JSON text, decoded as the careful path decodes records.
_JSON_VALUES = msgspec.json.Decoder()


def _restored_paths(paths: list, written: list) -> tuple[list, Optional[str]]:
    """``paths`` as our DJ export wrote them (``written``: its relative paths of one media column).

    Data-Juicer's ``dj-process`` turned each relative path ``p`` into ``os.path.join(folder, p)``:
    a path ending with ``/`` + a written path not given back yet becomes that path (the longest
    such one, then the first), exactly, ``./imgs/../imgs/2.png`` included. Also returns that
    ``folder`` (``None`` when no path was joined). O(paths x written).

    Example:
        >>> _restored_paths(["/in/./imgs/../imgs/2.png", "/elsewhere/1.png", "/in/x/a.jpg"], ["./imgs/../imgs/2.png", "a.jpg", "x/a.jpg"])
        (['./imgs/../imgs/2.png', '/elsewhere/1.png', 'x/a.jpg'], '/in')
    """
    remaining = list(written)
    restored, folder = [], None
    for path in paths:
        candidates = [original for original in remaining if path == original or path.endswith("/" + original)]
        if not candidates:
            restored.append(path)
            continue
        original = max(candidates, key=len)
        remaining.remove(original)
        restored.append(original)
        if path != original and folder is None:
            folder = path[: len(path) - len(original) - 1]
    return restored, folder


class Dj(DJBuilder):
    """``load_dataset("hf_mmbuilder/dj", data_files=...)``: Data-Juicer records to DJ rows."""

    BUILDER_CONFIG_CLASS = DjConfig

    def _format_features(self) -> dict:
        columns = {"id": Json(), "present_columns": Json(), BYTES_COLUMN: List(Value("binary")), "promoted": Json()}
        columns.update(getattr(self, "_promoted_columns", {}))
        return columns

    def _split_generators(self, dl_manager):
        splits = super()._split_generators(dl_manager)
        if not any(_is_parquet(shard) for split in splits for shard in split.gen_kwargs["shards"]):
            # JSON records never carry image_bytes, so datasets' 100-row Arrow record batches for a
            # binary column (its guard against media bytes overflowing a 2 GB buffer) would only
            # multiply the writes: 1000-row batches write 200k records in a tenth of the calls.
            self._writer_batch_size = self._writer_batch_size or datasets.config.DEFAULT_MAX_BATCH_SIZE
        promote = self.config.promote_format
        if promote == "auto":
            candidates = (shard for split in splits for shard in split.gen_kwargs["shards"] if shard.index is None or (isinstance(shard.index, RecordIndex) and len(shard.index)))
            # The first record of the first file that holds one.
            record = next((record for record in map(self._first_record, candidates) if record is not _NO_RECORD), None)
            promote = detect_format(record) if isinstance(record, dict) else None
        if promote:
            self._promoted_columns = {name: feature for name, feature in format_columns(promote).items() if name not in _OWN_COLUMNS}
            self.info.features = self.features_with_shared()
        return splits

    def _first_record(self, shard: Shard):
        """The first record of ``shard`` (``None`` when it cannot be read, ``_NO_RECORD`` for a JSON
        file that holds none)."""
        if _is_parquet(shard):
            try:
                parquet = pq.ParquetFile(shard.path)
                table = parquet.read_row_group(0) if parquet.num_row_groups else None
            except PARQUET_ERRORS:
                # Reported with on_error when the shard runs; nothing to promote from.
                return None
            return table.slice(0, 1).to_pylist()[0] if table is not None and table.num_rows else None
        if shard.index is None:
            # A file scanned while it is parsed: JSON lines give their first line without a scan.
            try:
                with open(shard.path, "rb") as handle:
                    handle.seek(bom_length(shard.path))
                    for line in handle:
                        if line.lstrip().startswith(b"["):
                            break
                        if line.strip():
                            return msgspec.json.decode(line) if len(line) < 1 << 24 else None
            except (OSError, msgspec.DecodeError):
                return None
        for batch in self._record_batches(shard, None, open):
            return batch.records[0]
        return _NO_RECORD

    def _plan_file(self, shard_id, path, original, media_root):
        if path.endswith(".parquet"):
            return [Shard(shard_id, path, original, media_root)]
        try:
            # A single-process load scans the file as it parses it (one shard, no index yet).
            return self._plan_json_records(shard_id, path, original, media_root, open, scan_while_parsing=True)
        except READ_ERRORS as error:
            return [self.unreadable_shard(shard_id, path, original, media_root, read_failure(path, error))]

    def _located_batches(self, shard: Shard, policy: ErrorPolicy):
        """``(records, locate)`` per batch; ``locate(k)`` gives the record number, line and raw bytes.
        A Parquet file that cannot be opened is a file failure; a row group that cannot be read is
        one (its rows unreachable), reported through ``on_error`` before the next row group is read."""
        if _is_parquet(shard):
            try:
                parquet = pq.ParquetFile(shard.path)
            except PARQUET_ERRORS as error:
                raise FileFailure(shard.original, f"not a readable Parquet file ({_one_line(error)})") from error
            first = 0
            for group in range(parquet.num_row_groups):
                rows = parquet.metadata.row_group(group).num_rows
                try:
                    batches = [batch.to_pylist() for batch in parquet.iter_batches(batch_size=4096, row_groups=[group])]
                except PARQUET_ERRORS as error:
                    reason = f"Parquet row group {group} of {parquet.num_row_groups} (records {first}-{first + rows - 1}) cannot be read ({_one_line(error)})"
                    report_file_failure(FileFailure(shard.original, reason, unreachable=rows), policy, self.config.on_error)
                    first += rows
                    continue
                for records in batches:
                    yield records, (lambda k, first=first: (first + k, None, None))
                    first += len(records)
            return
        for batch in self._record_batches(shard, None, open):
            yield batch.records, (lambda k, batch=batch: (batch.indexes[k], int(batch.lines[k]), batch.raw(k)))

    def _media(self, record: dict, shard: Shard) -> tuple[dict, str]:
        """The record's media lists (paths our DJ export recorded given back as written) and its
        ``media_root``; with ``check_media``, ``ValueError`` for a path with no file (an image
        whose bytes the record embeds, ``image_bytes[k]``, needs none)."""
        media_paths = record.get(MEDIA_PATHS_KEY) if isinstance(record.get(MEDIA_PATHS_KEY), dict) else None
        media, joined_to = {}, None
        for column in MEDIA_COLUMNS:
            paths = record.get(column) or []
            written = (media_paths or {}).get("relative_paths", {}).get(column)
            if written:
                paths, folder = _restored_paths(paths, written)
                joined_to = joined_to or folder
            media[column] = paths
        media_root = self._row_media_root(media_paths, joined_to, shard)
        if self.config.check_media:
            embedded = record.get(BYTES_COLUMN) or []
            for column, paths in media.items():
                check_media_exists([path for k, path in enumerate(paths) if not (column == "images" and k < len(embedded) and embedded[k])], media_root)
        return media, media_root

    def _row_media_root(self, media_paths: Optional[dict], joined_to: Optional[str], shard: Shard) -> str:
        """The recorded ``media_root`` of a record our DJ export wrote, resolved against the folder
        Data-Juicer joined its paths to (else the loaded file's folder); ``shard.media_root`` for
        other records, or when ``media_root`` was given to the loader."""
        recorded = (media_paths or {}).get("media_root")
        if not isinstance(recorded, str) or self.config.media_root:
            return shard.media_root
        if os.path.isabs(recorded) or "://" in recorded:
            return recorded
        return os.path.normpath(os.path.join(joined_to or shard.media_root, recorded))

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        yield from guarded_tables(shard, policy, self.config.on_error, self._record_tables(shard, policy))

    def _record_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        buffer = self._buffer(shard)
        if not _is_parquet(shard) and self.config.fast_path and not self.config.check_media:
            yield from self._compiled_tables(shard, policy, buffer)
            return
        for records, locate in self._located_batches(shard, policy):
            self._careful_rows(records, locate, range(len(records)), buffer, shard, policy)
            if len(buffer):
                yield buffer.to_table()

    def _buffer(self, shard: Shard) -> ColumnBuffer:
        constants = self.shard_constants(shard)
        # media_root is per row here: a record written by our DJ export says where its paths were relative to.
        constants.pop("media_root")
        return ColumnBuffer(self.info.features, constants=constants)

    def _careful_rows(self, records, locate, positions, buffer: ColumnBuffer, shard: Shard, policy: ErrorPolicy) -> list:
        """Convert ``records[k]`` for each of ``positions`` into ``buffer``; returns the kept positions."""
        columns = buffer.columns
        promoted = getattr(self, "_promoted_columns", {})
        kept = []
        for k in positions:
            record = records[k]
            errors = None
            try:
                if isinstance(record, MalformedJSON):
                    number, line, _ = locate(k)
                    raise RecordError(shard.original, number, record.reason, line=line, byte=record.byte)
                record = _check_record(record)
                media, media_root = self._media(record, shard)
            except ValueError as error:
                number, line, raw = locate(k)
                if not isinstance(error, RecordError):
                    error = RecordError(shard.original, number, str(error), line=line)
                if raw is None and isinstance(record, dict):
                    # A Parquet row has no source text: the rejects file gets the row as JSON.
                    raw = orjson.dumps(record, default=_json_default)
                if not policy.handle(error, raw):
                    continue
                errors = [error.reason]
                record = {KEPT_RAW_KEY: raw_text(raw) if raw is not None else None}
                media, media_root = self._media(record, shard)
            kept.append(k)
            columns["text"].append(record.get("text"))
            for column in MEDIA_COLUMNS:
                columns[column].append(media[column])
            columns["media_root"].append(media_root)
            columns[BYTES_COLUMN].append(record.get(BYTES_COLUMN) or [])
            columns["id"].append(record.get("id"))
            columns["present_columns"].append([key for key in record if key in _DJ_KEYS])
            other = {key: value for key, value in record.items() if key not in _DJ_KEYS}
            moved = [name for name in promoted if name in other and _fits(other[name], promoted[name])]
            if not moved:
                # A plain DJ record's key order, where export would write another (the DJ keys
                # first, then the others). Rows of another format's DJ export keep that
                # format's own order instead.
                other = remember_key_order(list(record), [key for key in record if key in _DJ_KEYS] + list(other), other) or {}
            for name in promoted:
                columns[name].append(other.pop(name) if name in moved else None)
            if moved:
                top_level = list(other)
                nested = other.pop("extra", None)
                if isinstance(nested, dict):
                    other = {**other, **nested}
                elif nested is not None:
                    other["extra"] = nested
                columns["promoted"].append({"columns": moved, "top_level": top_level})
            else:
                columns["promoted"].append(None)
            columns["extra"].append(other or None)
            if ERRORS_COLUMN in columns:
                columns[ERRORS_COLUMN].append(errors)
        return kept

    def _compiled_tables(self, shard: Shard, policy: ErrorPolicy, buffer: ColumnBuffer) -> Iterator[pa.Table]:
        """The JSON records of ``shard`` through :func:`hf_mmbuilder.kernels.dj_parse.parse_dj`;
        the records it leaves go the careful way, in file order."""
        # Parsed on threads as on the LLaVA path: the kernel releases the GIL, so the next batches
        # are parsed while this thread writes Arrow (200k records, 2 cores, load average 2-3,
        # fastest of 10 fresh loads: 0.76 s, one thread 1.11 s). The records of the careful path
        # stay on this thread, so rejects are written in file order.
        batches = self._record_batches(shard, None, open, decode=False)
        for batch, (table, status) in map_in_threads(lambda batch: self._compiled_table(batch, shard), batches, parse_threads()):
            fallback = np.flatnonzero(status)
            if fallback.size == 0:
                yield table
                continue
            records = dict.fromkeys(range(len(status)))
            for k in fallback.tolist():
                records[k] = batch.decode(k)
            kept = self._careful_rows(records, lambda k, batch=batch: (batch.indexes[k], int(batch.lines[k]), batch.raw(k)),
                                      fallback.tolist(), buffer, shard, policy)
            # Zero-copy slices of the kernel's rows around the others (no take of the whole table).
            yield from rows_in_file_order(table, fallback.tolist(), set(kept), buffer.to_table() if kept else None)

    def _compiled_table(self, batch, shard: Shard) -> tuple[pa.Table, np.ndarray]:
        """The batch's table (placeholder rows where ``status`` is ``FALLBACK``) and the status per
        record. Bytes that are not UTF-8 are found by the validation of the output strings (every
        byte of a record the kernel takes is copied into one): the batch is then parsed again with
        those records left to the careful path."""
        try:
            return self._parsed_table(batch, shard, np.zeros(0, np.int64))
        except pa.ArrowInvalid:
            return self._parsed_table(batch, shard, batch.invalid_utf8())

    def _parsed_table(self, batch, shard: Shard, careful: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        buf = np.frombuffer(batch.buffer, dtype=np.uint8)
        starts = batch.offsets - batch.buffer_offset
        ends = batch.ends - batch.buffer_offset
        if careful.size:
            # Empty ranges: the kernel writes nothing for them and flags them FALLBACK.
            ends = ends.copy()
            ends[careful] = starts[careful]
        n, size = len(starts), len(buf)
        promoted = getattr(self, "_promoted_columns", {})
        names = list(promoted)
        encoded = [name.encode() for name in names]
        name_offsets = np.cumsum([0] + [len(name) for name in encoded]).astype(np.int64)
        kinds = np.array([_kind(feature) for feature in promoted.values()], np.int64)
        items = size // 2 + 2
        text, text_offsets, text_valid = np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.uint8)
        media, media_items, media_lists = np.empty((3, size), np.uint8), np.empty((3, items), np.int32), np.empty((3, n + 1), np.int32)
        ids, id_offsets, id_valid = np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.uint8)
        present, present_offsets = np.empty(64 * n + 2, np.uint8), np.empty(n + 1, np.int32)
        # Every other key, plus the key list of a reordered record (at most the record's bytes again).
        extra, extra_offsets = np.empty(2 * size + 24 * n + 2, np.uint8), np.empty(n + 1, np.int32)
        values, value_starts, value_ends = np.empty(size + 2, np.uint8), np.empty((n, len(names)), np.int64), np.empty((n, len(names)), np.int64)
        described = np.empty(size + n * (32 + int(name_offsets[-1]) + 3 * len(names)) + 2, np.uint8)
        described_offsets = np.empty(n + 1, np.int32)
        roots, root_offsets, root_valid = np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.uint8)
        status = np.empty(n, np.int8)
        dj_parse.parse_dj(
            buf, starts, ends, np.frombuffer(b"".join(encoded), np.uint8), name_offsets, kinds,
            text, text_offsets, text_valid, media, media_items, media_lists, ids, id_offsets, id_valid,
            present, present_offsets, extra, extra_offsets, values, value_starts, value_ends,
            described, described_offsets, roots, root_offsets, root_valid, status,
        )
        json_text = lambda offsets, data, valid: pa.ExtensionArray.from_storage(pa.json_(), _strings(offsets, data, valid))  # noqa: E731
        columns = {
            "text": _strings(text_offsets, text, text_valid),
            "id": json_text(id_offsets, ids, id_valid),
            "present_columns": json_text(present_offsets, present, None),
            BYTES_COLUMN: pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.binary())),
            "promoted": json_text(described_offsets, described, np.diff(described_offsets) > 0),
            "extra": json_text(extra_offsets, extra, np.diff(extra_offsets) > 0),
            "media_root": self._media_roots(shard, _strings(root_offsets, roots, root_valid)),
        }
        for c, column in enumerate(MEDIA_COLUMNS):
            lists = media_lists[c]
            columns[column] = pa.ListArray.from_arrays(pa.array(lists), _strings(media_items[c][: lists[-1] + 1], media[c]))
        for j, (name, feature) in enumerate(promoted.items()):
            offsets = np.empty(n + 1, np.int32)
            data = np.empty(int((value_ends[:, j] - value_starts[:, j]).sum()) + 1, np.uint8)
            dj_parse.gather(values, value_starts[:, j], value_ends[:, j], data, offsets)
            columns[name] = self._promoted_array(name, feature, offsets, data)
        if ERRORS_COLUMN in self.info.features:
            columns[ERRORS_COLUMN] = pa.nulls(n, pa.list_(pa.string()))
        return self._buffer(shard).table_with(columns, n), status

    def _promoted_array(self, name: str, feature, offsets: np.ndarray, data: np.ndarray) -> pa.Array:
        """A promoted column from its values' JSON text per row (empty where the record has no
        such key): strings and string lists decoded by the kernel, other types as the careful
        path decodes them."""
        n = len(offsets) - 1
        kind = _kind(feature)
        status = np.empty(n, np.int8)
        if kind == dj_parse.KIND_STRING:
            out, out_offsets = np.empty(len(data), np.uint8), np.empty(n + 1, np.int32)
            dj_parse.json_strings(data, offsets, out, out_offsets, status)
            if not status.any():
                return _strings(out_offsets, out, _present(offsets, data))
        elif kind == dj_parse.KIND_STRING_LIST:
            out, items, lists = np.empty(len(data), np.uint8), np.empty(len(data) // 2 + 2, np.int32), np.empty(n + 1, np.int32)
            dj_parse.json_string_lists(data, offsets, out, items, lists, status)
            if not status.any():
                valid = _present(offsets, data)
                return pa.ListArray.from_arrays(pa.array(lists), _strings(items[: lists[-1] + 1], out), mask=pa.array(~valid))
        texts = _strings(offsets, data, None)
        # Null where the column is absent (a plain record) or the value is null.
        texts = pc.if_else(pa.array(_present(offsets, data)), texts, pa.scalar(None, pa.string()))
        if isinstance(feature, Json):
            return pa.ExtensionArray.from_storage(pa.json_(), texts)
        decoded = _JSON_VALUES.decode(b"[" + b",".join(value or b"null" for value in texts.cast(pa.binary()).to_pylist()) + b"]")
        return pa.array(decoded, self.info.features.arrow_schema.field(name).type)

    def _media_roots(self, shard: Shard, recorded: pa.Array) -> pa.Array:
        """Each row's ``media_root`` from the root our DJ export recorded (null: none), as
        :meth:`_row_media_root` resolves it for a row whose paths were not rewritten."""
        if self.config.media_root or recorded.null_count == len(recorded):
            return pa.array([shard.media_root], pa.string()).take(pa.array(np.zeros(len(recorded), np.int32)))
        encoded = recorded.dictionary_encode()
        resolved = [self._row_media_root({"media_root": value} if value is not None else None, None, shard)
                    for value in encoded.dictionary.to_pylist()]
        return pc.fill_null(pa.array(resolved, pa.string()).take(encoded.indices), shard.media_root)


def _is_parquet(shard: Shard) -> bool:
    return shard.path.endswith(".parquet")


def _present(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Rows whose JSON text (``data`` between ``offsets``) is neither empty nor ``null``."""
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    null = (lengths == 4) & (data[np.minimum(starts, len(data) - 1)] == ord("n"))
    return (lengths > 0) & ~null


def _one_line(error: BaseException) -> str:
    # pyarrow's messages span lines; the first line of ours must say it all.
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _json_default(value):
    # Parquet binary (image_bytes) in a rejected row: written as text with its bytes escaped.
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_relative(path: str) -> bool:
    return not (os.path.isabs(path) or "://" in path or path.startswith("data:"))


class DjExporter(RowExporter):
    """DJ row -> DJ record. Rows loaded from DJ files come back exactly as written; rows of other
    formats keep all their columns (except machine-local provenance) as top-level keys, and a row
    with relative media paths gets ``hf_mmbuilder_media_paths`` (its ``media_root`` and those
    paths as written), from which loading Data-Juicer's output restores the paths as written.
    Writes JSON lines, a JSON array, or Parquet (needed for ``image_bytes``)."""

    suffixes = (".jsonl", ".json", ".parquet")
    keeps_dj_keys = True
    # The folder of the file being written (media_root is recorded relative to it).
    output_folder: str = os.curdir

    def row_to_record(self, row: dict) -> dict:
        for column in MEDIA_COLUMNS:
            for path in row.get(column) or []:
                self.check_media_path(path, row.get("media_root"))
        extra = row.get("extra") or {}
        present = row.get("present_columns")
        if present is not None:
            record = {key: row[key] for key in present}
            promoted = row.get("promoted")
            if promoted:
                for name in promoted["columns"]:
                    value = row[name]
                    record[name] = orjson.loads(value) if name in RAW_JSON_COLUMNS and isinstance(value, str) else value
                # The record's other keys in their order; a nested "extra" object is rebuilt in its place.
                top_level = promoted["top_level"]
                nested = {key: value for key, value in extra.items() if key not in top_level}
                extra = {key: extra[key] if key in extra else nested or None for key in top_level if key in extra or key == "extra"}
            record.update(extra)
            record = restore_key_order(record, "text")
            media_root = row.get("media_root")
            if isinstance(record.get(MEDIA_PATHS_KEY), dict) and media_root and "://" not in media_root:
                # Our own key, read back: media_root is recorded relative to the file written now.
                record[MEDIA_PATHS_KEY] = {**record[MEDIA_PATHS_KEY], "media_root": os.path.relpath(os.path.abspath(media_root), self.output_folder)}
            return record
        record = {}
        for key, value in row.items():
            if key in PROVENANCE_COLUMNS or key == ERRORS_COLUMN:
                continue
            record[key] = orjson.loads(value) if key in RAW_JSON_COLUMNS and isinstance(value, str) else value
        relative = {column: [path for path in row.get(column) or [] if _is_relative(path)] for column in MEDIA_COLUMNS}
        relative = {column: paths for column, paths in relative.items() if paths}
        if relative:
            media_root = row.get("media_root")
            if media_root and "://" not in media_root:
                media_root = os.path.relpath(os.path.abspath(media_root), self.output_folder)
            record[MEDIA_PATHS_KEY] = {"media_root": media_root, "relative_paths": relative}
        return record

    def write(self, rows, handle, suffix, policy, source, progress) -> int:
        self.output_folder = os.path.dirname(os.path.abspath(source))
        if suffix != ".parquet":
            return super().write(rows, handle, suffix, policy, source, progress)
        writer, batch, written = None, [], 0
        for _, record in self.records(rows, policy, source, progress):
            batch.append(record)
            if len(batch) == 4096:
                writer = self._write_parquet(batch, handle, writer, source)
                written += len(batch)
                batch = []
        if batch or writer is None:
            writer = self._write_parquet(batch, handle, writer, source)
            written += len(batch)
        writer.close()
        return written

    def _write_parquet(self, records: list, handle, writer, source: str):
        table = pa.Table.from_pylist(records, schema=writer.schema if writer is not None else None)
        if writer is None:
            writer = pq.ParquetWriter(handle, table.schema)
        writer.write_table(table)
        return writer


EXPORTER = DjExporter
