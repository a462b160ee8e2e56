"""What the one-clip-one-caption formats share (WavCaps, Video-ChatGPT, Youku-mPLUG, InternVid,
MSR-VTT): Data-Juicer's caption layout, the per-record error loop, media lookup by name, and CSV.

Data-Juicer's video converters all build the text the same way (``convert_text_to_dj`` in its
``tools/fmt_conversion/multimodal/utils.py``): the video token goes ``before`` or ``after`` the
caption (or either at ``random``), joined by ``sent_separator``, and ``add_eoc_at_last`` appends
``sent_separator + eoc``. :func:`wrap_caption` builds that text and :func:`unwrap_caption` reads the
caption back out of it for export (the token position is recognised, so ``random`` needs nothing
stored).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import itertools
import random
import zipfile
import zlib
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilderConfig, Shard
from hf_mmbuilder.errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.records import MalformedJSON, gc_paused, iter_batches, scan_records
from hf_mmbuilder.schema import MEDIA_COLUMNS

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv", ".m4v", ".wmv", ".mpg", ".mpeg", ".3gp", ".ts")
INSERT_POSITIONS = ("before", "after", "random")
# What reading a damaged file or archive member raises (a corrupt zip member raises zlib.error).
READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, UnicodeDecodeError)


@dataclasses.dataclass
class CaptionConfig(DJBuilderConfig):
    """Data-Juicer's caption options (same names and defaults as its ``*_to_dj.py`` converters).

    - ``add_eoc_at_last``: end the text with ``sent_separator + eoc_special_token``.
    - ``sent_separator``: joins the token, the caption and the final eoc.
    - ``video_special_token_insert_pos``: ``"before"``, ``"after"`` or ``"random"`` (seeded by ``seed``).
    - ``keep_other_fields``: keep the record's other fields (``False`` drops them, so such rows
      export without them).
    """

    add_eoc_at_last: bool = True
    sent_separator: str = " "
    video_special_token_insert_pos: str = "before"
    keep_other_fields: bool = True
    seed: int = 42

    def __post_init__(self):
        super().__post_init__()
        if self.video_special_token_insert_pos not in INSERT_POSITIONS:
            raise ValueError(
                f"video_special_token_insert_pos must be one of {INSERT_POSITIONS}, got {self.video_special_token_insert_pos!r}"
            )


def wrap_caption(caption: str, token: str, config: CaptionConfig, rng: random.Random) -> str:
    """Data-Juicer's text for one clip: ``token + sep + caption`` (or ``caption + sep + token``),
    then ``sep + eoc`` with ``add_eoc_at_last``. O(len(caption)).

    Example:
        >>> wrap_caption("a dog", "<v>", CaptionConfig(eoc_special_token="<e>"), random.Random(0))
        '<v> a dog <e>'
    """
    separator = config.sent_separator
    position = config.video_special_token_insert_pos
    if position == "random":
        position = "before" if rng.random() < 0.5 else "after"
    text = token + separator + caption if position == "before" else caption + separator + token
    if config.add_eoc_at_last:
        text += separator + config.eoc_special_token
    return text


def unwrap_caption(text: str, token: str, config) -> str:
    """The caption inside a text built by :func:`wrap_caption` (edits in between are kept);
    raises ``ValueError`` when the text no longer has that layout. O(len(text)).

    Example:
        >>> unwrap_caption("<v> a dog <e>", "<v>", CaptionConfig(eoc_special_token="<e>"))
        'a dog'
    """
    separator = config.sent_separator
    if config.add_eoc_at_last:
        suffix = separator + config.eoc_special_token
        if not text.endswith(suffix):
            raise ValueError(f"text does not end with {suffix!r}")
        text = text[: -len(suffix)]
    if text.startswith(token + separator):
        caption = text[len(token + separator) :]
    elif text.endswith(separator + token):
        caption = text[: -len(separator + token)]
    elif text == token:
        caption = ""
    else:
        raise ValueError(f"text has no {token!r} at its start or end")
    if token in caption:
        raise ValueError(f"text has more than one {token!r} token")
    return caption


class SourceRecord(NamedTuple):
    """One record read from a source file: its index, 1-based line (if known), value, and a
    function giving its source bytes (only called for a bad record, for the rejects file)."""

    index: int
    line: Optional[int]
    value: object
    raw: Callable[[], bytes]


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """Stands for a shard's record index when the file could not even be scanned."""

    reason: str


def read_failure(path: str, error: BaseException) -> str:
    """The reason text for a file or archive member (``zip://member::archive``) that cannot be read.

    Example:
        >>> read_failure("zip://a.jsonl::/data/d.zip", EOFError("truncated"))
        'cannot read a.jsonl in /data/d.zip (EOFError: truncated)'
    """
    if "::" in path:
        member, archive = path.split("::", 1)
        where = f"{member.split('://', 1)[-1]} in {archive}"
    else:
        where = path
    return f"cannot read {where} ({type(error).__name__}: {error})"


def file_failure(source: str, reason: str, policy: ErrorPolicy, on_error: str, raw: Optional[bytes] = None) -> None:
    """A whole file that cannot be turned into rows (unreadable, wrong header, wrong layout): raised,
    or skipped into the rejects file; ``on_error="keep"`` raises too (there is no row to keep).

    Example:
        >>> file_failure("a.csv", "CSV header ['x'] is not ...", ErrorPolicy("skip"), "skip", b"x")
    """
    failure = RecordError(source, 0, reason, line=1 if raw is not None else None)
    if on_error == "keep":
        raise failure
    policy.handle(failure, raw)


def plan_json_file(builder, shard_id: int, path: str, original: str, media_root: str, opener: Callable) -> list:
    """``builder._plan_json_records(...)``; a file that cannot be read becomes one shard whose
    index is :class:`Unreadable`, so the failure follows ``on_error`` when the shard runs.

    Example:
        >>> plan_json_file(builder, 0, "a.jsonl", "a.jsonl", "/data", open)  # doctest: +SKIP
        [Shard(shard_id=0, path='a.jsonl', ...)]
    """
    try:
        return builder._plan_json_records(shard_id, path, original, media_root, opener)
    except READ_ERRORS as error:
        return [Shard(shard_id, path, original, media_root, index=Unreadable(read_failure(path, error)))]


def guarded_tables(shard, policy: ErrorPolicy, on_error: str, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The (lazy) ``tables`` of a shard, with a read failure of its file (or of its scan, see
    :class:`Unreadable`) reported through :func:`file_failure`; rows read before it are kept.

    Example:
        >>> tables = guarded_tables(shard, policy, "raise", rows_to_tables(...))  # doctest: +SKIP
    """
    if isinstance(shard.index, Unreadable):
        file_failure(shard.original, shard.index.reason, policy, on_error)
        return
    try:
        yield from tables
    except READ_ERRORS as error:
        file_failure(shard.original, read_failure(shard.path, error), policy, on_error)


def rows_to_tables(
    features,
    constants: dict,
    records: Iterable[SourceRecord],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
    batch_rows: int = 20_000,
) -> Iterator[pa.Table]:
    """Turn source records into Arrow tables of ``features``: ``convert(value) -> {column: value}``
    (absent columns are null, absent media lists empty); a ``ValueError``/``OSError`` from it, or a
    malformed record, goes through ``policy`` with the file, record index, line and reason.

    Complexity: O(records); memory O(batch_rows).

    Example:
        >>> tables = rows_to_tables(features, {}, records, convert, ErrorPolicy(), "a.jsonl")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    columns = buffer.columns
    plain = [(name, values) for name, values in columns.items() if name not in MEDIA_COLUMNS and name != ERRORS_COLUMN]
    media = [(name, values) for name, values in columns.items() if name in MEDIA_COLUMNS]
    errors_column = columns.get(ERRORS_COLUMN)
    count = 0
    for record in records:
        errors = None
        try:
            if isinstance(record.value, MalformedJSON):
                raise RecordError(source, record.index, record.value.reason, line=record.line, byte=record.value.byte)
            row = convert(record.value)
        except (ValueError, OSError) as error:
            if not isinstance(error, RecordError):
                error = RecordError(source, record.index, str(error), line=record.line)
            raw = record.raw()
            if not policy.handle(error, raw):
                continue
            errors = [error.reason]
            row = {"text": "", "extra": {KEPT_RAW_KEY: raw.decode("utf-8", "replace")}}
        get = row.get
        for name, values in plain:
            values.append(get(name))
        for name, values in media:
            values.append(get(name) or [])
        if errors_column is not None:
            errors_column.append(errors)
        count += 1
        if count == batch_rows:
            yield buffer.to_table()
            count = 0
    if count:
        yield buffer.to_table()


def wrap_captions(parts: list, rows: int, token: str, config: CaptionConfig, rng: random.Random) -> pa.Array:
    """:func:`wrap_caption` of ``rows`` captions at once: each caption is the concatenation of
    ``parts`` (string arrays without nulls, or ``str`` constants). ``random`` draws ``rng`` once
    per row in row order, as :func:`wrap_caption` does. O(total text length).

    Example:
        >>> config = CaptionConfig(eoc_special_token="<e>")
        >>> wrap_captions(["[[q]]:", pa.array(["a dog"])], 1, "<v>", config, random.Random(0)).to_pylist()
        ['<v> [[q]]:a dog <e>']
    """
    separator = config.sent_separator
    eoc = [separator, config.eoc_special_token] if config.add_eoc_at_last else []
    position = config.video_special_token_insert_pos

    def join(pieces: list) -> pa.Array:
        if not any(isinstance(piece, (pa.Array, pa.ChunkedArray)) for piece in pieces):
            return pa.array(["".join(pieces)] * rows, pa.string())
        return pc.binary_join_element_wise(*pieces, "")

    before = [token, separator, *parts, *eoc]
    after = [*parts, separator, token, *eoc]
    if position == "before":
        return join(before)
    if position == "after":
        return join(after)
    draws = pa.array([rng.random() < 0.5 for _ in range(rows)], pa.bool_())
    return pc.if_else(draws, join(before), join(after))


def one_path_lists(paths: pa.Array, field_type: pa.DataType) -> pa.Array:
    """A list array holding ``[paths[i]]`` in row i (a one-clip media column).

    Example:
        >>> one_path_lists(pa.array(["v.mp4"]), pa.list_(pa.string())).to_pylist()
        [['v.mp4']]
    """
    return pa.ListArray.from_arrays(pa.array(np.arange(len(paths) + 1, dtype=np.int32)), paths, type=field_type)


def json_objects(values: list) -> pa.Array:
    """The storage (JSON text, null for ``None``) of a ``Json`` column: each value as
    ``orjson.dumps`` writes it (what :class:`~hf_mmbuilder.formats.builder.ColumnBuffer` stores), made by
    one ``orjson.dumps`` of the whole list cut at its elements (about ten times faster than one
    call per value). O(total size).

    Example:
        >>> json_objects([{"a": 1}, None]).to_pylist()
        ['{"a":1}', None]
    """
    if not values:
        return pa.array([], pa.string())
    data = orjson.dumps(values)
    if len(data) >= 1 << 31:
        return pa.array([None if value is None else orjson.dumps(value) for value in values], pa.string())
    index = scan_records("<values>", lambda _path, _mode: io.BytesIO(data))
    starts, ends = index.starts, index.ends
    # Element k plus the "," (or final "]") after it (orjson writes no spaces), which the slice drops.
    offsets = np.append(starts, ends[-1] + 1).astype(np.int32)
    texts = pc.utf8_slice_codeunits(pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(data)), 0, -1)
    missing = pa.array([value is None for value in values], pa.bool_())
    return pc.if_else(missing, pa.scalar(None, pa.string()), texts) if missing.true_count else texts


def strings_or_none(values: list) -> Optional[pa.Array]:
    """``values`` as a string array, or ``None`` when one is not a string (missing, a number, ...).

    Example:
        >>> strings_or_none(["a", 1]) is None
        True
    """
    try:
        array = pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None
    return None if array.null_count else array


def table_from_arrays(buffer: ColumnBuffer, arrays: dict, rows: int) -> pa.Table:
    """A table of ``buffer``'s schema from ready ``arrays`` (``Json`` columns given as their JSON
    text storage): constants repeated, absent media lists empty, other absent columns null.

    Example:
        >>> table = table_from_arrays(buffer, {"text": pa.array(["<v> hi <e>"])}, 1)  # doctest: +SKIP
    """
    full = {}
    for name, field in zip(buffer.schema.names, buffer.schema):
        if name in buffer.constants:
            continue
        array = arrays.get(name)
        if name in buffer._json_columns:
            storage = array if array is not None else pa.nulls(rows, pa.string())
            full[name] = pa.ExtensionArray.from_storage(field.type, storage)
        elif array is not None:
            full[name] = array
        elif name in MEDIA_COLUMNS:
            full[name] = pa.ListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], pa.string()), type=field.type)
        else:
            full[name] = pa.nulls(rows, field.type)
    return buffer.table_with(full, rows)


def _decode_values(batch) -> Optional[list]:
    """Every record of an undecoded JSON batch as a plain value, in one msgspec call; ``None``
    when one is malformed or is not one JSON value (the careful path then reports it)."""
    view = memoryview(batch.buffer)
    base = batch.buffer_offset
    starts, ends = batch.offsets.tolist(), batch.ends.tolist()
    try:
        if batch.layout == "array":
            values = msgspec.json.decode(b"[" + view[starts[0] - base : ends[-1] - base] + b"]")
        else:
            values = msgspec.json.Decoder().decode_lines(b"\n".join([view[s - base : e - base] for s, e in zip(starts, ends)]))
    except msgspec.DecodeError:
        return None
    return values if len(values) == len(starts) else None


def json_fast_tables(
    shard,
    opener: Callable,
    features,
    constants: dict,
    fast_columns: Optional[Callable[[list], Optional[dict]]],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
) -> Iterator[pa.Table]:
    """:func:`rows_to_tables` over a JSON shard, a batch of a few MB at a time: the batch is
    decoded in one call and ``fast_columns(values)`` builds its columns at once (Arrow arrays,
    ``Json`` columns as JSON text); when it returns ``None`` (a record it cannot take as is: bad,
    or unusual) or ``fast_columns`` is ``None``, the batch goes record by record through
    ``convert``, which reports each bad record exactly. ``fast_columns`` may consume its values.
    ``opener`` is the loading script's ``open``: ``datasets`` swaps it for one that reads archive
    members (``zip://...``) in the builder's modules, not in this helper module.

    Complexity: O(records); memory O(batch).

    Example:
        >>> tables = json_fast_tables(shard, open, features, {}, columns, convert, policy, "a.jsonl")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    for batch in iter_batches(shard.index, shard.first, shard.stop, None, opener, decode=False, record_offset=shard.record_offset):
        arrays = None
        if fast_columns is not None:
            with gc_paused():
                values = _decode_values(batch)
                arrays = fast_columns(values) if values is not None else None
        if arrays is not None:
            yield table_from_arrays(buffer, arrays, len(batch.indexes))
            continue
        with gc_paused():
            batch.records = [batch.decode(k) for k in range(len(batch.indexes))]
        yield from rows_to_tables(features, constants, _batch_records(batch), convert, policy, source)


def _batch_records(batch) -> Iterator[SourceRecord]:
    lines = batch.lines.tolist()
    for k, record in enumerate(batch.records):
        yield SourceRecord(batch.indexes[k], lines[k], record, functools.partial(batch.raw, k))


def csv_fast_tables(
    header: list,
    reader,
    features,
    constants: dict,
    fast_columns: Optional[Callable[[list], Optional[dict]]],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
    batch_rows: int = 20_000,
) -> Iterator[pa.Table]:
    """:func:`rows_to_tables` over the data rows of a CSV ``reader``, ``batch_rows`` rows at a
    time: ``fast_columns(rows)`` (``rows``: lists of cells) builds a batch's columns at once, or
    returns ``None`` to send the batch record by record through ``convert`` (with the records of
    :func:`csv_source_records`). A read failure inside a batch is raised after the rows read
    before it went through ``convert`` (their errors come first, as they are read first).

    Complexity: O(rows); memory O(batch_rows).

    Example:
        >>> tables = csv_fast_tables(header, reader, features, {}, columns, convert, policy, "a.csv")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    width = len(header)
    first = 0
    while True:
        rows, lines = [], []
        try:
            for cells in itertools.islice(reader, batch_rows):
                rows.append(cells)
                lines.append(reader.line_num)
        except READ_ERRORS:
            # The rows of an unfinished batch are not kept (as rows_to_tables drops its buffer).
            for _ in rows_to_tables(features, constants, _csv_records(header, rows, lines, first), convert, policy, source, batch_rows + 1):
                pass
            raise
        if not rows:
            return
        arrays = None
        if fast_columns is not None and all(len(cells) == width for cells in rows):
            arrays = fast_columns(rows)
        if arrays is not None:
            yield table_from_arrays(buffer, arrays, len(rows))
        else:
            yield from rows_to_tables(features, constants, _csv_records(header, rows, lines, first), convert, policy, source, batch_rows + 1)
        first += len(rows)


def _csv_records(header: list, rows: list, lines: list, first: int) -> Iterator[SourceRecord]:
    width = len(header)
    for k, cells in enumerate(rows):
        yield SourceRecord(first + k, lines[k], dict(zip(header, cells)) if len(cells) == width else cells, functools.partial(_csv_line, cells))


def csv_source_records(header: list, reader) -> Iterator[SourceRecord]:
    """The data rows of a CSV ``reader`` (positioned after the header) as ``{column: cell}``
    records; a row with the wrong number of cells comes back as its cells (a list), to be rejected.

    Example:
        >>> rows = csv.reader(io.StringIO("v/1.mp4,hi\\n"))
        >>> next(csv_source_records(["video_id:FILE", "title"], rows)).value
        {'video_id:FILE': 'v/1.mp4', 'title': 'hi'}
    """
    width = len(header)
    for index, cells in enumerate(reader):
        raw = functools.partial(_csv_line, cells)
        yield SourceRecord(index, reader.line_num, dict(zip(header, cells)) if len(cells) == width else cells, raw)


def _csv_line(cells: list) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue().encode("utf-8")


def open_csv(path: str, opener: Callable):
    """``(handle, reader, header)`` of a UTF-8 CSV file (a BOM is accepted); ``header`` is ``None``
    for an empty file. ``opener``: the loading script's ``open`` (see :func:`json_fast_tables`).

    Example:
        >>> handle, reader, header = open_csv("youku_pretrain.csv", open)  # doctest: +SKIP
        >>> header  # doctest: +SKIP
        ['video_id:FILE', 'title']
    """
    handle = io.TextIOWrapper(opener(path, "rb"), encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    header = next(reader, None)
    return handle, reader, header


def check_cells(value, header: list) -> dict:
    """A CSV record as ``{column: cell}``, or ``ValueError`` for a row with the wrong cell count.

    Example:
        >>> check_cells(["a"], ["x", "y"])
        Traceback (most recent call last):
        ...
        ValueError: row has 1 cell(s), the header has 2
    """
    if isinstance(value, list):
        raise ValueError(f"row has {len(value)} cell(s), the header has {len(header)}")
    return value


class CsvExporter(RowExporter):
    """Base of the CSV exporters: ``row_to_record`` returns ``(header, cells)``; every row of one
    file must share the header of the first (a different one is a row error)."""

    def write(self, rows, handle, suffix: str, policy: ErrorPolicy, source: str, progress) -> int:
        if suffix != ".csv":
            return super().write(rows, handle, suffix, policy, source, progress)
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
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
        text.flush()
        text.detach()
        return written


def single_media(row: dict, column: str, token: str) -> str:
    """The one media path of a one-clip row; ``ValueError`` if the row has none or several (an
    edit that dropped the clip cannot be written back to a format that is one clip per record).

    Example:
        >>> single_media({"videos": ["v.mp4"], "text": "<v> hi"}, "videos", "<v>")
        'v.mp4'
    """
    paths = row.get(column) or []
    if len(paths) != 1:
        raise ValueError(f"a record of this format has exactly one {column[:-1]}, the row has {len(paths)}")
    text = row.get("text") or ""
    if text.count(token) != 1:
        raise ValueError(f"text has {text.count(token)} {token} token(s) for 1 path in {column}")
    return paths[0]
