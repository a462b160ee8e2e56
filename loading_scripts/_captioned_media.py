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
import os
import random
import zipfile
import zlib
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import pyarrow as pa

from hf_mmbuilder.builder import ColumnBuffer, DJBuilderConfig, Shard
from hf_mmbuilder.errors import ERRORS_COLUMN, ErrorPolicy, RecordError
from hf_mmbuilder.export import RowExporter
from hf_mmbuilder.jsonrecords import MalformedJSON, iter_batches
from hf_mmbuilder.media import resolve_media_path
from hf_mmbuilder.schema import MEDIA_COLUMNS

# A record kept by on_error="keep" carries its source text under this key of `extra`.
KEPT_RAW_KEY = "__raw__"
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


class MediaFinder:
    """Files under ``root`` by name and by stem (only files with one of ``extensions``), listed
    once (lazily), as Data-Juicer's WavCaps converter does (``os.walk``); paths are returned
    relative to ``root``. Complexity: one listing of ``root``, then O(1) per lookup.

    Example:
        >>> finder = MediaFinder("/data/videos", recursive=False, extensions=(".mp4",))  # doctest: +SKIP
        >>> finder.by_stem("k_ZXmr8pmrs")  # doctest: +SKIP
        'k_ZXmr8pmrs.mp4'
    """

    def __init__(self, root: str, recursive: bool, extensions: tuple):
        self.root = root
        self.recursive = recursive
        self.extensions = extensions
        self._names: Optional[dict] = None
        self._stems: Optional[dict] = None

    def _scan(self) -> None:
        self._names, self._stems = {}, {}
        if not os.path.isdir(self.root):
            return
        walk = os.walk(self.root) if self.recursive else [(self.root, [], os.listdir(self.root))]
        for folder, subfolders, names in walk:
            # A name found twice resolves to its first place in sorted order, the same on every
            # machine (Data-Juicer keeps whichever one os.walk happens to list last).
            subfolders.sort()
            for name in sorted(names):
                relative = os.path.relpath(os.path.join(folder, name), self.root)
                self._names.setdefault(name, relative)
                stem, extension = os.path.splitext(name)
                if extension.lower() in self.extensions:
                    self._stems.setdefault(stem, relative)

    def by_name(self, name: str) -> Optional[str]:
        if self._names is None:
            self._scan()
        return self._names.get(name)

    def by_stem(self, stem: str) -> Optional[str]:
        if self._stems is None:
            self._scan()
        return self._stems.get(stem)


def check_media_exists(paths: Iterable[str], media_root: str) -> None:
    """Raise ``ValueError`` naming the first path of ``paths`` with no file under ``media_root``.

    Example:
        >>> check_media_exists(["missing.mp4"], "/tmp")
        Traceback (most recent call last):
        ...
        ValueError: media file 'missing.mp4' not found (looked for /tmp/missing.mp4)
    """
    for path in paths:
        resolved = resolve_media_path(path, media_root)
        if not os.path.exists(resolved):
            raise ValueError(f"media file {path!r} not found (looked for {resolved})")


class SourceRecord(NamedTuple):
    """One record read from a source file: its index, 1-based line (if known), value, and a
    function giving its source bytes (only called for a bad record, for the rejects file)."""

    index: int
    line: Optional[int]
    value: object
    raw: Callable[[], bytes]


def json_source_records(shard, opener: Callable) -> Iterator[SourceRecord]:
    """The records of a JSON array / JSON lines shard (a ``MalformedJSON`` value for a bad one).

    ``opener`` is the loading script's ``open``: ``datasets`` swaps it for one that reads archive
    members (``zip://...``) in the builder's modules, not in this helper module.

    Example:
        >>> next(json_source_records(shard, open)).value  # doctest: +SKIP
        {'q': '...', 'a': '...', 'video_id': 'v_k_ZXmr8pmrs'}
    """
    for batch in iter_batches(shard.index, shard.first, shard.stop, None, opener, record_offset=shard.record_offset):
        lines = batch.lines.tolist()
        for k, record in enumerate(batch.records):
            yield SourceRecord(batch.indexes[k], lines[k], record, functools.partial(batch.raw, k))


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
    for an empty file. ``opener``: the loading script's ``open`` (see :func:`json_source_records`).

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
        written = 0
        for position, row in enumerate(rows):
            try:
                errors = row.get(ERRORS_COLUMN)
                if errors:
                    raise ValueError("row was kept with load errors: " + "; ".join(errors))
                row_header, cells = self.row_to_record(row)
                if header is None:
                    header = row_header
                    writer.writerow(header)
                elif row_header != header:
                    raise ValueError(f"row has the CSV header {row_header} but the file was started with {header}")
            except (ValueError, TypeError) as error:
                policy.handle(RecordError(source, position, str(error)), None)
                continue
            finally:
                progress.update(1)
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


def check_not_kept_raw(row: dict) -> None:
    """Refuse a row that only holds an unparsed source record (kept by ``on_error='keep'``).

    Example:
        >>> check_not_kept_raw({"extra": {"id": 1}})
    """
    if KEPT_RAW_KEY in (row.get("extra") or {}):
        raise ValueError("row holds an unparsed source record (kept by on_error='keep')")
