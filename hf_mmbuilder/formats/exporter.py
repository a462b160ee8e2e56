"""The exporter base: DJ rows back to a source format, streamed, atomic, nothing lost silently.

Each loading script defines an exporter class (``EXPORTER`` in its module, a :class:`RowExporter`)
that turns one DJ row into one source record; the base streams the dataset through it in batches
(never the whole dataset as Python objects), writes JSON / JSON lines in the style of the rows'
source file (:mod:`hf_mmbuilder.formats.serialization`; compact UTF-8 without one) into a
temporary file beside the target (:class:`AtomicWriter`), renamed into place only when everything
succeeded. The ``export`` door is :mod:`hf_mmbuilder.formats.exporting`.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Optional

import datasets
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ErrorPolicy, RecordError, check_exportable
from ..media import check_within_root
from .serialization import DEFAULT_STYLE, RecordWriter, SourceStyle, dataset_style


class AtomicWriter:
    """A binary file written under a temporary name (``.<name>.tmp-<pid>`` beside it) and renamed
    into place on success, so an interrupted write (even SIGKILL) never leaves a partial file at
    the destination. Opening removes the temporaries of earlier writes to the same destination whose
    process is gone (:func:`stale_temporaries`).

    Example:
        >>> with AtomicWriter("/tmp/out.jsonl") as handle:  # doctest: +SKIP
        ...     handle.write(b"{}\\n")
    """

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        self.temporary = os.path.join(directory, f".{os.path.basename(self.path)}.tmp-{os.getpid()}")

    def __enter__(self):
        for stale in stale_temporaries(self.path):
            try:
                os.remove(stale)
            except FileNotFoundError:
                continue  # another export to this destination removed it first
        self.handle = open(self.temporary, "wb")
        return self.handle

    def __exit__(self, exc_type, exc, traceback):
        self.handle.close()
        if exc_type is None:
            os.replace(self.temporary, self.path)
        else:
            os.remove(self.temporary)
        return False


def stale_temporaries(path: str) -> list:
    """The temporaries :class:`AtomicWriter` left beside ``path`` (``.<name>.tmp-<pid>``) in
    processes that no longer run (killed mid-write). Only files of exactly that name with a pid
    of no live process: another program's files, and a live export's, are never listed.

    Example:
        >>> stale_temporaries("/tmp/no-such-folder/out.jsonl")
        []
    """
    directory, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    stale = []
    for entry in entries:
        pid = entry[len(prefix) :]
        if entry.startswith(prefix) and pid.isdigit() and pid == str(int(pid)) and not _process_exists(int(pid)):
            stale.append(os.path.join(directory, entry))
    return sorted(stale)


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # A killed process its parent has not reaped yet still answers kill(pid, 0): state Z.
            return handle.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


# Keys Data-Juicer adds to a row (``__dj__stats__``, ``__dj__hash``, ``__dj__meta__``, ...), and the
# one our DJ export adds (``hf_mmbuilder_media_paths``): they land in ``extra`` when Data-Juicer's
# output is loaded, and belong to the DJ format, not to the source formats.
DJ_KEY_PREFIX = "__dj__"
DJ_MEDIA_PATHS_KEY = "hf_mmbuilder_media_paths"


def is_dj_key(key: str) -> bool:
    """Whether ``key`` is a key Data-Juicer (or our DJ export) adds to a record.

    Example:
        >>> [is_dj_key(key) for key in ("__dj__stats__", "__dj__hash", "hf_mmbuilder_media_paths", "model")]
        [True, True, True, False]
    """
    return key.startswith(DJ_KEY_PREFIX) or key == DJ_MEDIA_PATHS_KEY


class RowExporter:
    """Base of the per-format exporters: ``row_to_record`` (implemented by each format) plus the
    shared checks. ``options`` are the format's config values (tokens, separators ...), so export
    reads text exactly as the builder wrote it.

    Data-Juicer's own keys (:func:`is_dj_key`) in a row's ``extra`` are left out of the records
    unless ``keep_dj_columns`` (or the exporter is the DJ format's, ``keeps_dj_keys``).
    """

    suffixes: tuple = (".jsonl", ".json")
    keeps_dj_keys: bool = False
    # The style the file being written takes (set by write_dataset from the rows' source_style).
    style: Optional[SourceStyle] = None

    def __init__(self, options, allowed_media_roots: tuple = (), *, keep_dj_columns: bool = False):
        self.options = options
        self.allowed_media_roots = tuple(allowed_media_roots)
        self.drops_dj_keys = not (keep_dj_columns or self.keeps_dj_keys)

    def row_to_record(self, row: dict):
        raise NotImplementedError

    def check_media_path(self, path: str, media_root: Optional[str]) -> None:
        """Refuse a media path that leaves the row's ``media_root`` (and any extra allowed root).

        The check is lexical: an export writes the path string and never opens the file.
        """
        if not os.path.isabs(path) and not path.startswith(".") and "/.." not in path and "\\" not in path:
            return
        roots = [root for root in (media_root, *self.allowed_media_roots) if root]
        if not roots:
            return
        errors = []
        for root in roots:
            try:
                check_within_root(path, root, follow_links=False)
                return
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(
            f"{errors[0]}: export checks media paths against the row's media_root ({media_root!r}); load with "
            "media_root=<the folder the paths are relative to>, or pass allowed_media_roots=(<folder>,) to export "
            "to allow another folder"
        )

    def encode_table(self, table: pa.Table, separator: bytes) -> Optional[tuple]:
        """A compiled fast path: the records of ``table`` as ``(data, offsets, fallback)``, where
        record ``k`` is ``data[offsets[k]:offsets[k+1]]`` (uint8 array, int64 offsets), starting
        with ``separator``, and ``fallback[k]`` marks a row (written as nothing) left to
        :meth:`row_to_record`. ``None`` (the default): every row takes :meth:`row_to_record`."""
        return None

    def records(self, rows, policy: ErrorPolicy, source: str, progress=None, convert=None, first: int = 0):
        """``(position, convert(row))`` for each row of ``rows`` that can be written (``convert``
        defaults to :meth:`row_to_record`; positions count from ``first``). A row refused by
        :func:`~hf_mmbuilder.errors.check_exportable`, or whose ``convert`` raises ``ValueError`` /
        ``TypeError``, goes through ``policy`` as a :class:`RecordError` naming ``source`` and its
        position. ``progress`` (if given) counts every row, written or not.

        Example:
            >>> class Texts(RowExporter):
            ...     def row_to_record(self, row):
            ...         return {"text": row["text"]}
            >>> rows = [{"text": "a"}, {"text": "b", "record_errors": ["bad"]}]
            >>> list(Texts(None).records(rows, ErrorPolicy("skip"), "out.jsonl"))
            [(0, {'text': 'a'})]
        """
        convert = convert or self.row_to_record
        for position, row in enumerate(rows, first):
            try:
                check_exportable(row)
                record = convert(row)
            except (ValueError, TypeError) as error:
                policy.handle(RecordError(source, position, str(error)), None)
                continue
            finally:
                if progress is not None:
                    progress.update(1)
            yield position, record

    def _encode(self, row: dict) -> bytes:
        return orjson.dumps(self.row_to_record(row))

    def style_for(self, suffix: str) -> SourceStyle:
        """The style of the file being written: the rows' source style, else ``suffix``'s default."""
        default = DEFAULT_STYLE.get(suffix, DEFAULT_STYLE[".jsonl"])
        return default if self.style is None else self.style.for_suffix(suffix)

    def write(self, rows, handle, suffix: str, policy: ErrorPolicy, source: str, progress) -> int:
        """Serialise ``rows`` (an iterable of row dicts) into ``handle`` in :meth:`style_for`
        ``suffix``; returns records written."""
        writer = RecordWriter(handle, self.style_for(suffix))
        for _, line in self.records(rows, policy, source, progress, self._encode):
            writer.write(line)
        writer.close()
        return writer.written

    def write_dataset(self, dataset, handle, suffix: str, policy: ErrorPolicy, source: str, progress, batch_size: int) -> int:
        """Serialise ``dataset`` into ``handle``, in the style its rows share
        (:func:`~hf_mmbuilder.formats.serialization.dataset_style`): Arrow batch by batch through
        :meth:`encode_table` where the exporter has one (a plain ``Dataset``, and ``fast_path`` not
        turned off in the options), else row by row through :meth:`write`."""
        self.style = dataset_style(dataset, suffix)
        tables = _arrow_batches(dataset, batch_size)
        if tables is None or not self.options.fast_path or type(self).encode_table is RowExporter.encode_table:
            rows = iter_rows(dataset, batch_size)
            if self.drops_dj_keys and "extra" in (dataset.column_names or ()):
                rows = map(_without_dj_keys, rows)
            return self.write(rows, handle, suffix, policy, source, progress)
        if self.drops_dj_keys:
            tables = map(_table_without_dj_keys, tables)
        writer = RecordWriter(handle, self.style_for(suffix))
        # Each fast record starts with the separator of the style's framing, so a run of them is
        # written (or restyled) in one piece; a style that frames records one by one gets none.
        separator = writer.separator
        json_columns = _json_columns(dataset)
        position = 0
        for table in tables:
            encoded = self.encode_table(table, separator or b"")
            if encoded is None:
                data, offsets, fallback = np.zeros(0, np.uint8), np.zeros(table.num_rows + 1, np.int64), np.ones(table.num_rows, bool)
            else:
                data, offsets, fallback = encoded
            careful = np.flatnonzero(fallback).tolist()
            careful_rows = _table_rows(table.take(pa.array(careful, pa.int64())), json_columns)
            run_start = 0
            for row_number in careful + [table.num_rows]:
                if run_start < row_number:
                    if separator is None:
                        for k in range(run_start, row_number):
                            writer.write(data[offsets[k] : offsets[k + 1]])
                    else:
                        writer.write_block(data[offsets[run_start] : offsets[row_number]], row_number - run_start)
                if row_number == table.num_rows:
                    break
                for _, line in self.records([next(careful_rows)], policy, source, None, self._encode, position + row_number):
                    writer.write(line)
                run_start = row_number + 1
            position += table.num_rows
            progress.update(table.num_rows)
        writer.close()
        return writer.written


def _without_dj_keys(row: dict) -> dict:
    extra = row.get("extra")
    if isinstance(extra, dict) and any(is_dj_key(key) for key in extra):
        row["extra"] = {key: value for key, value in extra.items() if not is_dj_key(key)} or None
    return row


def _table_without_dj_keys(table: pa.Table) -> pa.Table:
    """``table`` with Data-Juicer's keys taken out of its ``extra`` column (JSON text); only the rows
    that mention one are decoded."""
    if "extra" not in table.column_names:
        return table
    column = table.column("extra")
    if not isinstance(column.type, pa.BaseExtensionType):
        return table
    storage = pa.chunked_array([chunk.storage for chunk in column.chunks], column.type.storage_type)
    mentions = pc.or_(pc.match_substring(storage, f'"{DJ_KEY_PREFIX}'), pc.match_substring(storage, f'"{DJ_MEDIA_PATHS_KEY}"'))
    if not pc.any(mentions).as_py():
        return table
    values = storage.to_pylist()
    for position in np.flatnonzero(pc.fill_null(mentions, False).to_numpy(zero_copy_only=False)).tolist():
        extra = orjson.loads(values[position])
        if isinstance(extra, dict):
            kept = {key: value for key, value in extra.items() if not is_dj_key(key)}
            values[position] = orjson.dumps(kept).decode() if kept else None
    new_storage = pa.array(values, column.type.storage_type)
    position = table.schema.get_field_index("extra")
    return table.set_column(position, table.schema.field(position), pa.ExtensionArray.from_storage(column.type, new_storage))


def _arrow_batches(dataset, batch_size: int):
    """Arrow tables of ``batch_size`` rows of a plain ``Dataset`` (``None`` for any other dataset)."""
    if isinstance(dataset, datasets.Dataset) and dataset.format["type"] is None:
        return dataset.with_format("arrow").iter(batch_size=batch_size)
    return None


def _json_columns(dataset) -> list:
    return [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Json)]


def _table_rows(table: pa.Table, json_columns: list):
    """The rows of an Arrow table as dicts, converted in C (``Json`` columns decoded with orjson)."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if name in json_columns:
            columns[name] = [None if v is None else orjson.loads(v) for v in column.cast(pa.string()).to_pylist()]
        else:
            columns[name] = column.to_pylist()
    names = list(columns)
    for values in zip(*(columns[name] for name in names)):
        yield dict(zip(names, values))


def iter_rows(dataset, batch_size: int = 10_000):
    """Yield rows as dicts, one Arrow batch at a time (``Dataset`` or ``IterableDataset``).

    A ``Dataset`` is read as Arrow record batches converted in C (``Json`` columns decoded with
    orjson), which is several times faster than the Python formatter.

    Example:
        >>> from datasets import Dataset
        >>> next(iter_rows(Dataset.from_dict({"text": ["a"]})))
        {'text': 'a'}
    """
    tables = _arrow_batches(dataset, batch_size)
    if tables is not None:
        json_columns = _json_columns(dataset)
        for table in tables:
            yield from _table_rows(table, json_columns)
        return
    for batch in dataset.iter(batch_size=batch_size):
        names = list(batch)
        for values in zip(*(batch[name] for name in names)):
            yield dict(zip(names, values))


class CsvExporter(RowExporter):
    """Base of the CSV exporters: ``row_to_record`` returns ``(header, cells)``; every row of one
    file must share the header of the first (a different one is a row error)."""

    def write(self, rows, handle, suffix: str, policy: ErrorPolicy, source: str, progress) -> int:
        if suffix != ".csv":
            return super().write(rows, handle, suffix, policy, source, progress)
        style = self.style_for(suffix)
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        # Without a final newline each row's line break is written before the next row instead.
        rows_text = text if style.final_newline else _LineBreaksBetween(text, style.newline)
        writer = csv.writer(rows_text, lineterminator=style.newline)
        header = None

        def cells_of(row: dict) -> list:
            nonlocal header
            row_header, cells = self.row_to_record(row)
            if header is None:
                header = row_header
                writer.writerow(header)
            elif row_header != header:
                raise ValueError(f"row has the CSV header {row_header} but the file was started with {header}")
            return cells

        written = 0
        for _, cells in self.records(rows, policy, source, progress, cells_of):
            writer.writerow(cells)
            written += 1
        rows_text.flush()
        text.detach()
        return written


class _LineBreaksBetween:
    """A text sink for ``csv.writer`` that holds back each row's final line break until the next
    row comes (a file without a final newline)."""

    def __init__(self, text, newline: str):
        self.text = text
        self.newline = newline
        self.pending = ""

    def write(self, piece: str) -> int:
        body = piece[: -len(self.newline)] if piece.endswith(self.newline) else piece
        self.text.write(self.pending + body)
        self.pending = piece[len(body) :]
        return len(piece)

    def flush(self) -> None:
        self.text.flush()
