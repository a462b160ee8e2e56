"""Youku-mPLUG CSV files: config, builder and exporter.

Source layout (one CSV per subset; a ``:FILE`` suffix marks the media column)::

    pretrain        video_id:FILE,title
    classification  video_id:FILE,title,label
    retrieval       clip_name:FILE,caption
    captioning      video_id:FILE,golden_caption      (golden_caption is a stringified list)

The subset is detected from the header (or forced with ``subset_type``, Data-Juicer's knob; its
required columns must then be present). The media cell is the video path (relative paths are read
from ``media_root``); the caption cell becomes the DJ text exactly as written (``golden_caption``
stays the string it is); every other cell goes to ``extra``. DJ text as Data-Juicer's
``youku_to_dj.py`` writes it: ``<video> caption <eoc>`` (see :mod:`hf_mmbuilder.formats.captioned`).

Round-trip columns: ``subset``, ``csv_header`` (the header names in order) and ``extra`` (the
other cells by column name), so the exported CSV has the same header and cells.
"""

from __future__ import annotations

import codecs
import dataclasses
import mmap
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from datasets import List, Value

from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, Shard
from hf_mmbuilder.formats.captioned import CaptionConfig, CsvCaptionExporter, dj_tokens, hold_dj_tokens, wrap_caption, wrap_captions
from hf_mmbuilder.formats.columns import one_path_lists, table_from_arrays
from hf_mmbuilder.formats.csvfiles import check_cells, csv_fast_tables, open_csv, plain_csv
from hf_mmbuilder.formats.failures import file_failure, guarded_tables
from hf_mmbuilder.media import check_media_exists


# Rows per table of a plain file read whole by Arrow.
TABLE_ROWS = 20_000

# Data-Juicer's table (youku_to_dj.py / dj_to_youku.py): media column, caption column, other
# columns its reverse converter requires.
SUBSETS = {
    "pretrain": ("video_id:FILE", "title", ()),
    "classification": ("video_id:FILE", "title", ("label",)),
    "retrieval": ("clip_name:FILE", "caption", ()),
    "captioning": ("video_id:FILE", "golden_caption", ()),
}


@dataclasses.dataclass
class YoukuConfig(CaptionConfig):
    """Youku-mPLUG options: Data-Juicer's caption options (:class:`CaptionConfig`) and
    ``subset_type`` (``pretrain``, ``classification``, ``retrieval``, ``captioning``; ``None``, the
    default, detects it from each file's header; Data-Juicer's default is ``classification``)."""

    subset_type: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.subset_type is not None and self.subset_type not in SUBSETS:
            raise ValueError(f"subset_type must be one of {tuple(SUBSETS)} or None, got {self.subset_type!r}")


def detect_subset(header: list, subset_type: Optional[str] = None) -> str:
    """The Youku-mPLUG subset a CSV header belongs to (checked against ``subset_type`` if given);
    ``ValueError`` for a header that fits no subset.

    Example:
        >>> detect_subset(["video_id:FILE", "title", "label"])
        'classification'
        >>> detect_subset(["clip_name:FILE", "caption"])
        'retrieval'
    """
    if subset_type is None:
        if "clip_name:FILE" in header:
            subset_type = "retrieval"
        elif "golden_caption" in header:
            subset_type = "captioning"
        elif "label" in header:
            subset_type = "classification"
        else:
            subset_type = "pretrain"
    video_key, text_key, required = SUBSETS[subset_type]
    missing = [key for key in (video_key, text_key, *required) if key not in header]
    if missing:
        raise ValueError(f"CSV header {header} is not a Youku-mPLUG {subset_type} header: no column {', '.join(map(repr, missing))}")
    if len(set(header)) != len(header):
        raise ValueError(f"CSV header {header} repeats a column name")
    return subset_type


class Youku(DJBuilder):
    """``load_dataset("hf_mmbuilder/youku", data_files=...)``: Youku-mPLUG CSV to DJ rows."""

    BUILDER_CONFIG_CLASS = YoukuConfig

    def _format_features(self) -> dict:
        return {"subset": Value("string"), "csv_header": List(Value("string"))}

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        yield from guarded_tables(shard, policy, self.config.on_error, self._csv_tables(shard, policy))

    def _csv_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        with open_csv(shard.path, open, shard.original) as csv_file:
            header = csv_file.header
            if header is None:
                return
            try:
                subset = detect_subset(header, config.subset_type)
            except ValueError as error:
                file_failure(shard.original, str(error), policy, config.on_error, ",".join(header).encode("utf-8"))
                return
            video_key, text_key, _ = SUBSETS[subset]
            rng = self.shard_rng(shard)
            token = config.video_special_token

            def convert(cells) -> dict:
                cells = check_cells(cells, header)
                video = cells[video_key]
                if not video:
                    raise ValueError(f"empty {video_key!r} cell")
                if config.check_media:
                    check_media_exists([video], shard.media_root)
                other = {key: value for key, value in cells.items() if key not in (video_key, text_key)}
                return {
                    "text": wrap_caption(cells[text_key], token, config, rng),
                    "videos": [video],
                    "extra": (other or None) if config.keep_other_fields else None,
                }

            constants = {**self.shard_constants(shard, ("images", "audios")), "subset": subset, "csv_header": header}
            video_column, text_column = header.index(video_key), header.index(text_key)
            other_columns = [k for k, name in enumerate(header) if name not in (video_key, text_key)]
            other_names = [header[k] for k in other_columns]
            videos_type = self.info.features.arrow_schema.field("videos").type

            if config.fast_path and not config.check_media:
                with open(shard.path, "rb") as handle:
                    data = file_bytes(handle)
                table = plain_table(data, header)
                if table is not None and self._plain_cells(table, data, video_key, text_key):
                    buffer = ColumnBuffer(self.info.features, constants)

                    def columns_of(start: int) -> pa.Table:
                        piece = table.slice(start, TABLE_ROWS)
                        return table_from_arrays(buffer, self._plain_columns(piece, video_key, text_key, rng), piece.num_rows)

                    # The rows in slices, each slice's columns made on a thread while the writer
                    # writes the slice before it (one thread: the slices, and their draws of rng,
                    # come in order).
                    with ThreadPoolExecutor(max_workers=1) as maker:
                        made = None
                        for start in range(0, table.num_rows, TABLE_ROWS):
                            following = maker.submit(columns_of, start)
                            if made is not None:
                                yield made.result()
                            made = following
                        if made is not None:
                            yield made.result()
                    return

            def fast_columns(rows: list) -> Optional[dict]:
                # The whole batch at once (rows of the header's width); an empty media cell or a
                # media check sends it to convert.
                columns = list(zip(*rows))
                if not config.fast_path or config.check_media or not all(columns[video_column]):
                    return None
                captions = pa.array(columns[text_column], pa.string())
                if hold_dj_tokens([captions], config):
                    return None
                extra = None
                if config.keep_other_fields and other_columns:
                    # Other cells repeat (labels): each distinct row of them is written once.
                    texts = {}
                    others = zip(*(columns[k] for k in other_columns))
                    extra = pa.array([texts.get(cells) or texts.setdefault(cells, orjson.dumps(dict(zip(other_names, cells)))) for cells in others], pa.string())
                return {
                    "text": wrap_captions([captions], len(rows), token, config, rng),
                    "videos": one_path_lists(pa.array(columns[video_column], pa.string()), videos_type),
                    "extra": extra,
                }

            yield from csv_fast_tables(csv_file, self.info.features, constants, fast_columns, convert, policy)


    def _plain_cells(self, table: pa.Table, data, video_key: str, text_key: str) -> bool:
        """Whether the rows of a plain file read by Arrow (``data``: the file's bytes) go the fast
        way: no empty media cell, no caption holding a DJ token (else the strict reader reads the
        file and reports them)."""
        if pc.any(pc.equal(table.column(video_key), "")).as_py():
            return False
        # A cell holding a token holds its first byte: a file without the first byte of any token
        # (one memchr per distinct byte, ~1 ms a byte) spares the search of every caption.
        if all(data.find(first) < 0 for first in {token.encode("utf-8")[:1] for token in dj_tokens(self.config)}):
            return True
        return not hold_dj_tokens([table.column(text_key)], self.config)

    def _plain_columns(self, table: pa.Table, video_key: str, text_key: str, rng) -> dict:
        """The columns of rows of a plain file read by Arrow (see :meth:`_plain_cells`)."""
        config = self.config
        videos, captions = table.column(video_key).combine_chunks(), table.column(text_key).combine_chunks()
        others = [name for name in table.column_names if name not in (video_key, text_key)]
        extra = None
        if config.keep_other_fields and others:
            extra = other_cells(table.select(others))
        return {
            "text": wrap_captions([captions], table.num_rows, config.video_special_token, config, rng),
            "videos": one_path_lists(videos, self.info.features.arrow_schema.field("videos").type),
            "extra": extra,
        }


def plain_table(data, header: list) -> Optional[pa.Table]:
    """The data rows of the bytes ``data`` of a plain CSV file (see
    :func:`~hf_mmbuilder.formats.csvfiles.plain_csv`, UTF-8 without a BOM, at least two columns,
    every row as wide as ``header``) read by Arrow's CSV reader as strings, or ``None``: the
    strict reader then reads it and names every problem."""
    # With one column an empty line would be one empty cell to Arrow, no cell to the csv module.
    if len(header) < 2 or data[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8:
        return None
    # The check runs on a thread of its own while Arrow reads (the read is thrown away if the file
    # is not plain): told line feeds may lie in quotes, Arrow reads a file without any the same.
    with ThreadPoolExecutor(max_workers=1) as checker:
        plain = checker.submit(plain_csv, data)
        try:
            table = pa_csv.read_csv(
                pa.BufferReader(data),
                read_options=pa_csv.ReadOptions(column_names=header, skip_rows=1),
                parse_options=pa_csv.ParseOptions(newlines_in_values=True),
                convert_options=pa_csv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=False,
                                                      quoted_strings_can_be_null=False, check_utf8=True),
            )
        except pa.ArrowInvalid:
            table = None
        return table if plain.result() else None


def file_bytes(handle):
    """The bytes of an open binary file: a read-only memory map of a file on disk (its pages are
    the page cache's, where a copy would be as many fresh pages, each costly to fault in), else
    (an archive member, a remote or empty file) its bytes read whole."""
    try:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError):
        return handle.read()


def other_cells(table: pa.Table) -> pa.Array:
    """The ``extra`` JSON text of each row: its cells by column name, as ``orjson`` writes them;
    each distinct row of cells (labels repeat) is written once."""
    if table.num_columns == 1:
        name = table.column_names[0]
        encoded = table.column(0).combine_chunks().dictionary_encode()
        texts = [orjson.dumps({name: value}).decode() for value in encoded.dictionary.to_pylist()]
        return pa.array(texts, pa.string()).take(encoded.indices)
    texts = {}
    names = table.column_names
    rows = zip(*(column.to_pylist() for column in table.columns))
    return pa.array([texts.get(cells) or texts.setdefault(cells, orjson.dumps(dict(zip(names, cells))).decode()) for cells in rows], pa.string())


class YoukuExporter(CsvCaptionExporter):
    """DJ row -> Youku-mPLUG CSV row with the source header; the caption is cut back out of
    ``text`` (edits kept), the media cell is the row's video path. Rows of other formats need
    ``subset_type`` and get Data-Juicer's header for it."""

    suffixes = (".csv",)

    def row_to_record(self, row: dict) -> tuple:
        path = self.video(row)
        caption = self.caption(row)
        subset = row.get("subset") or self.options.subset_type
        if subset is None:
            raise ValueError("row has no Youku-mPLUG subset: pass subset_type=...")
        video_key, text_key, required = SUBSETS[subset]
        header = row.get("csv_header") or [video_key, text_key, *required]
        return header, self.cells(header, {video_key: path, text_key: caption}, row.get("extra") or {})


EXPORTER = YoukuExporter
