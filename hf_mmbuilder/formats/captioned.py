"""What the one-clip-one-caption formats share (WavCaps, Video-ChatGPT, Youku-mPLUG, InternVid,
MSR-VTT): Data-Juicer's caption layout and its options.

Data-Juicer's video converters all build the text the same way (``convert_text_to_dj`` in its
``tools/fmt_conversion/multimodal/utils.py``): the video token goes ``before`` or ``after`` the
caption (or either at ``random``), joined by ``sent_separator``, and ``add_eoc_at_last`` appends
``sent_separator + eoc``. :func:`wrap_caption` builds that text and :func:`unwrap_caption` reads the
caption back out of it for export (the token position is recognised, so ``random`` needs nothing
stored).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Iterable, Iterator, NamedTuple, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ErrorPolicy
from ..kernels import caption_parse
from ..media import MediaFinder, check_media_exists
from .builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard, rows_in_file_order
from .columns import SourceRecord, rows_to_tables, table_from_arrays
from .records import MalformedJSON, RecordBatch, check_no_dj_tokens, gc_paused, iter_batches
from .exporter import CsvExporter, RowExporter


INSERT_POSITIONS = ("before", "after", "random")


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv", ".m4v", ".wmv", ".mpg", ".mpeg", ".3gp", ".ts")


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
    check_no_dj_tokens(caption, dj_tokens(config), "the caption")
    separator = config.sent_separator
    position = config.video_special_token_insert_pos
    if position == "random":
        position = "before" if rng.random() < 0.5 else "after"
    text = token + separator + caption if position == "before" else caption + separator + token
    if config.add_eoc_at_last:
        text += separator + config.eoc_special_token
    return text


def dj_tokens(config) -> tuple:
    """The four DJ tokens of a config (a caption may hold none of them, see
    :func:`~hf_mmbuilder.formats.records.check_no_dj_tokens`).

    Example:
        >>> dj_tokens(CaptionConfig())
        ('<__dj__image>', '<__dj__audio>', '<__dj__video>', '<|__dj__eoc|>')
    """
    return tuple(dict.fromkeys((config.image_special_token, config.audio_special_token, config.video_special_token, config.eoc_special_token)))


def hold_dj_tokens(parts: list, config) -> bool:
    """Whether a string array of ``parts`` (captions of a batch; ``str`` parts are markers and
    skipped) holds a DJ token: the batched paths then leave the batch to :func:`wrap_caption`,
    which reports each such record. O(total caption length).

    Example:
        >>> hold_dj_tokens(["[[q]]:", pa.array(["a <|__dj__eoc|> b"])], CaptionConfig())
        True
    """
    arrays = [part for part in parts if isinstance(part, (pa.Array, pa.ChunkedArray))]
    return any(dj_token_rows(array, config).any() for array in arrays)


def dj_token_rows(texts: pa.Array, config) -> np.ndarray:
    """The mask of the values of a string array that hold one of the config's DJ tokens (as
    :func:`~hf_mmbuilder.formats.records.check_no_dj_tokens` finds them), in one pass of one
    RE2 pattern. O(total text length).

    Example:
        >>> dj_token_rows(pa.array(["a <__dj__video> b", "a <__dj__vid", ""]), CaptionConfig()).tolist()
        [True, False, False]
    """
    # Every ASCII punctuation character escaped: RE2 reads "\\" + punctuation as that character.
    pattern = "|".join("".join("\\" + c if c.isascii() and not c.isalnum() and c != "_" else c for c in token) for token in dj_tokens(config))
    return np.asarray(pc.match_substring_regex(texts, pattern), dtype=bool)


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
        # Neighbouring constants joined first: each piece costs Arrow a pass over the rows.
        merged = []
        for piece in pieces:
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] += piece
            else:
                merged.append(piece)
        return pc.binary_join_element_wise(*merged, "")

    before = [token, separator, *parts, *eoc]
    after = [*parts, separator, token, *eoc]
    if position == "before":
        return join(before)
    if position == "after":
        return join(after)
    draws = pa.array([rng.random() < 0.5 for _ in range(rows)], pa.bool_())
    return pc.if_else(draws, join(before), join(after))


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


class CaptionedVideoBuilder(DJBuilder):
    """Base of the builders of one-video-one-caption records named by a video id: the shard's
    videos are found by stem in its media root, as Data-Juicer's converters look them up.

    The lookup itself (:class:`~hf_mmbuilder.media.MediaFinder`) lives in :mod:`hf_mmbuilder.media`:
    ``datasets`` patches the file functions of every builder class's module for streaming.
    """

    def video_finder(self, shard: Shard) -> MediaFinder:
        """The video files directly in the shard's media root, listed once (lazily)."""
        return MediaFinder(shard.media_root, recursive=False, extensions=VIDEO_EXTENSIONS)

    def video_path(self, finder: MediaFinder, stem: str, shard: Shard, suffix: str = "") -> str:
        """The file of the media root with that stem, else ``stem + suffix``; with ``check_media``
        a missing file is a ``ValueError`` (a bad record)."""
        path = finder.by_stem(stem) or stem + suffix
        if self.config.check_media:
            check_media_exists([path], shard.media_root)
        return path


class CaptionExporter(RowExporter):
    """Base of the one-video-one-caption exporters: the row's one video and its caption, cut back
    out of ``text`` as :func:`wrap_caption` built it (edits kept)."""

    def video(self, row: dict) -> str:
        """The row's one video path (:func:`single_media`), refused if it leaves its media root."""
        path = single_media(row, "videos", self.options.video_special_token)
        self.check_media_path(path, row.get("media_root"))
        return path

    def caption(self, row: dict) -> str:
        """The caption inside the row's text (:func:`unwrap_caption`)."""
        return unwrap_caption(row["text"], self.options.video_special_token, self.options)


class CsvCaptionExporter(CsvExporter, CaptionExporter):
    """Base of the caption exporters that write CSV rows under the source file's header."""

    @staticmethod
    def cells(header: list, known: dict, other: dict) -> list:
        """The cells of ``header``: a column's value from ``known`` (the media and caption
        columns), else from ``other`` (the row's other source fields); ``ValueError`` names a
        column found in neither.

        Example:
            >>> CsvCaptionExporter.cells(["video", "title", "tag"], {"video": "v.mp4", "title": "hi"}, {"tag": "x"})
            ['v.mp4', 'hi', 'x']
        """
        cells = []
        for column in header:
            if column in known:
                cells.append(known[column])
            elif column in other:
                cells.append(other[column])
            else:
                raise ValueError(f"row has no value for the CSV column {column!r}")
        return cells


STRING, STRING_OR_INT, ABSENT = caption_parse.STRING, caption_parse.STRING_OR_INT, caption_parse.ABSENT
KIND_INT = caption_parse.KIND_INT


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What the compiled caption parser takes out of each record: ``fields`` maps a member name to
    :data:`STRING` (a string), :data:`STRING_OR_INT` (an id) or :data:`ABSENT` (a member whose
    presence sends the record to the careful path); every other member goes to the record's
    ``extra`` JSON object; ``key_order`` also lists every key in order."""

    fields: tuple
    key_order: bool = False


class ParsedBatch(NamedTuple):
    """A batch through the compiled parser: each named field as a string array (an integer id as
    its digits; ``int_fields`` says which rows hold one), the other members as JSON object text
    (null when there are none), the key order (if asked) and the status per record
    (``status[k] != 0``: record ``k`` goes the careful way; its row here is a placeholder)."""

    fields: dict
    int_fields: dict
    extra: pa.Array
    key_order: Optional[pa.Array]
    status: np.ndarray




def _strings(offsets: np.ndarray, data: np.ndarray, valid: Optional[np.ndarray] = None) -> pa.Array:
    count = len(offsets) - 1
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    array = pa.StringArray.from_buffers(count, pa.py_buffer(np.ascontiguousarray(offsets)), pa.py_buffer(data[: offsets[-1]]), bitmap)
    # Bytes that are not UTF-8 were copied as they are: the validation finds them.
    array.validate(full=True)
    return array


def parse_batch(batch: RecordBatch, spec: FieldSpec, careful: np.ndarray) -> ParsedBatch:
    """Run the compiled caption parser on a raw batch (records at ``careful`` are left to the
    careful path up front). A record that is not UTF-8 goes the careful way too (found when the
    output is validated: the batch is then parsed again without those records, so clean input
    pays nothing). O(batch bytes).

    Example:
        >>> parsed = parse_batch(batch, FieldSpec((("caption", STRING),)), np.zeros(0, np.int64))  # doctest: +SKIP
    """
    try:
        return _parse(batch, spec, careful)
    except pa.ArrowInvalid:
        return _parse(batch, spec, np.union1d(careful, batch.invalid_utf8()))


def _parse(batch: RecordBatch, spec: FieldSpec, careful: np.ndarray) -> ParsedBatch:
    buf = np.frombuffer(batch.buffer, np.uint8)
    starts = batch.offsets - batch.buffer_offset
    ends = batch.ends - batch.buffer_offset
    if careful.size:
        # Empty ranges: the kernel writes nothing for them and flags them FALLBACK.
        ends = ends.copy()
        ends[careful.astype(np.int64)] = starts[careful.astype(np.int64)]
    n, size = len(starts), len(buf)
    names = [name.encode() for name, _ in spec.fields]
    keys = np.frombuffer(b"".join(names), np.uint8) if any(names) else np.zeros(0, np.uint8)
    key_offsets = np.concatenate(([0], np.cumsum([len(name) for name in names]))).astype(np.int64)
    kinds = np.array([kind for _, kind in spec.fields], np.int8)
    m = len(names)
    # Untouched pages of these buffers are never allocated: each is as large as it may need.
    fields = np.empty((m, size + 1), np.uint8)
    field_offsets = np.empty((m, n + 1), np.int32)
    field_kinds = np.zeros((m, n), np.int8)
    extra, extra_offsets = np.empty(size + 2 * n + 1, np.uint8), np.empty(n + 1, np.int32)
    if spec.key_order:
        key_names, name_offsets = np.empty(size + 1, np.uint8), np.empty(size // 2 + 2, np.int32)
    else:
        key_names, name_offsets = np.zeros(0, np.uint8), np.zeros(1, np.int32)
    name_lists, status = np.empty(n + 1, np.int32), np.empty(n, np.int8)
    caption_parse.parse_captions(buf, starts, ends, keys, key_offsets, kinds, fields, field_offsets, field_kinds,
                                 extra, extra_offsets, key_names, name_offsets, name_lists, status)
    columns, int_fields = {}, {}
    for k, (name, kind) in enumerate(spec.fields):
        if kind == ABSENT:
            continue
        columns[name] = _strings(field_offsets[k], fields[k])
        if kind == STRING_OR_INT:
            int_fields[name] = field_kinds[k] == KIND_INT
    extra_column = _strings(extra_offsets, extra, valid=np.diff(extra_offsets) > 0)
    key_order = None
    if spec.key_order:
        items = _strings(name_offsets[: name_lists[-1] + 1], key_names)
        key_order = pa.ListArray.from_arrays(pa.array(name_lists, pa.int32()), items)
    return ParsedBatch(columns, int_fields, extra_column, key_order, status)


def lookup(found: dict, keys: pa.Array) -> pa.Array:
    """``found.get(key)`` for a whole string array (null where absent). O(n) dict lookups: an
    Arrow hash lookup would hash all of ``found`` again for every batch.

    Example:
        >>> lookup({"a": "x/a.mp4"}, pa.array(["a", "b"])).to_pylist()
        ['x/a.mp4', None]
    """
    if not found:
        return pa.nulls(len(keys), pa.string())
    get = found.get
    return pa.array([get(key) for key in keys.to_pylist()], pa.string())


def paths_by_stem(finder: MediaFinder, stems: pa.Array, fallback_suffix: str = "") -> pa.Array:
    """``finder.by_stem(stem) or stem + fallback_suffix`` for a whole string array; no lookup
    when the folder holds no matching file (the usual case: media elsewhere).

    Example:
        >>> paths_by_stem(MediaFinder("/nonexistent", False, (".mp4",)), pa.array(["video7"]), ".mp4").to_pylist()
        ['video7.mp4']
    """
    missing = pc.binary_join_element_wise(stems, fallback_suffix, "") if fallback_suffix else stems
    found = finder.stems()
    if not found:
        return missing
    return pc.coalesce(lookup(found, stems), missing)


def wrapped_captions(parts: list, rows: int, token: str, config: CaptionConfig, rng: random.Random, status: np.ndarray) -> Optional[pa.Array]:
    """:func:`wrap_captions` for the compiled path; ``None`` when the batch has records for the
    careful path and ``random`` positions are drawn (the draws must follow the records in order,
    as :func:`wrap_caption` makes them: the whole batch then goes the careful way)."""
    if config.video_special_token_insert_pos == "random" and status.any():
        return None
    return wrap_captions(parts, rows, token, config, rng)


def compiled_tables(
    batches: Iterable[RecordBatch],
    spec: FieldSpec,
    build: Callable[[ParsedBatch, RecordBatch], Optional[dict]],
    careful_record: Callable[[RecordBatch, int], SourceRecord],
    features,
    constants: dict,
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    source: str,
) -> Iterator[pa.Table]:
    """The tables of raw JSON batches through the compiled caption parser: ``build(parsed,
    batch)`` makes the batch's columns (``Json`` columns as JSON text) and may flag more records
    (``parsed.status``, e.g. those whose caption holds a DJ token: :func:`dj_token_rows`) for the
    careful path, or returns ``None`` to send the whole batch there. The careful rows
    (``convert`` of ``careful_record(batch, k)``, reporting every bad record through ``policy``)
    take their places among the fast rows. O(batch bytes) per batch.

    Example:
        >>> tables = compiled_tables(batches, spec, build, record, features, {}, convert, policy, "a.jsonl")  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    for batch in batches:
        with gc_paused():
            parsed = parse_batch(batch, spec, np.zeros(0, np.int64))
            arrays = build(parsed, batch)
        n = len(batch.indexes)
        if arrays is None:
            positions = list(range(n))
        else:
            positions = np.flatnonzero(parsed.status).tolist()
            fast_table = table_from_arrays(buffer, arrays, n)
            if not positions:
                yield fast_table
                continue
        with gc_paused():
            records = [_tagged(careful_record(batch, k), k) for k in positions]
        converted = set()

        def converting(tagged):
            position, value = tagged
            row = convert(value)
            converted.add(position)
            return row

        tables = list(rows_to_tables(features, constants, records, converting, policy, source, n + 1))
        if arrays is None:
            yield from tables
            continue
        # Under one policy the bad records are all kept (with their errors) or all left out.
        kept = set(positions) if sum(len(table) for table in tables) == len(positions) else converted
        yield from rows_in_file_order(fast_table, positions, kept, pa.concat_tables(tables) if tables else None)


def _tagged(record: SourceRecord, position: int) -> SourceRecord:
    # The value with its position, so the positions converted are known (a malformed record is
    # never converted: rows_to_tables reports it as it is).
    if isinstance(record.value, MalformedJSON):
        return record
    return record._replace(value=(position, record.value))


def batch_record(batch: RecordBatch, k: int) -> SourceRecord:
    """Record ``k`` of a raw batch, decoded alone, for the careful path (its source bytes for the
    rejects file)."""
    return SourceRecord(batch.indexes[k], int(batch.lines[k]), batch.decode(k), lambda: batch.raw(k))


def shard_batches(shard: Shard, opener: Callable) -> Iterator[RecordBatch]:
    """The raw batches of a JSON shard planned by ``plan_json_file`` (records numbered file-wide).
    ``opener`` is the loading script's ``open``: ``datasets`` swaps it for one that reads archive
    members in the builder's modules."""
    return iter_batches(shard.index, shard.first, shard.stop, None, opener, decode=False, record_offset=shard.record_offset)


def flag(status: np.ndarray, mask) -> None:
    """Send the records where the boolean array ``mask`` is true to the careful path."""
    status[np.asarray(mask, dtype=bool)] = caption_parse.FALLBACK


def extra_column(parsed: ParsedBatch, config: CaptionConfig) -> Optional[pa.Array]:
    """The ``extra`` column of a caption row: the record's other members (``keep_other_fields``)."""
    return parsed.extra if config.keep_other_fields else None
