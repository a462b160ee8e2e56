"""MMC4 interleaved image-text documents: config, builder and exporter.

Source layout (JSON lines, plain or as MMC4 ships them, ``docs_*_shard_N_v*.jsonl.zip``)::

    {"url": "http://...", "text_list": ["sentence 0", "sentence 1", ...],
     "image_info": [{"image_name": "634a438c86a5.jpg", "raw_url": "...", "matched_text_index": 1,
                     "matched_sim": 0.31, "face_detections": null}, ...],
     "similarity_matrix": [[...len(text_list) floats...], ...one row per image_info entry...],
     "could_have_url_duplicate": 0}

DJ text, as Data-Juicer's ``mmc4_to_dj.py`` writes it: one chunk per sentence, chunks joined by
``" " + eoc + sent_separator``; the images are sorted (stably) by ``matched_text_index`` and each
image's token goes before (or after) its sentence, tokens of one sentence joined by
``sent_separator``; ``add_eoc_at_last`` appends ``" " + eoc``. ``images`` are
``os.path.join(image_dir, image_name)`` in that order. An image whose ``matched_text_index`` is out
of range is a bad record (Data-Juicer lists it without a token).

Round-trip columns: ``url``, ``text_list`` (the original sentences), ``image_info`` (every entry
with every field, original order, kept as the source's JSON text: ``Json(decode=False)``, because
``datasets`` decodes ``Json`` through pandas' ujson, which rounds floats such as ``matched_sim``;
``ds.cast_column("image_info", Json())`` shows it decoded), ``similarity_matrix``, ``could_have_url_duplicate``, ``extra``
(other keys), and the realignment columns of :mod:`hf_mmbuilder.realignment`:
``matched_text_index`` (original, per original image), ``image_index`` (per current image: its
original ``image_info`` entry, -1 for an image added by processing) and ``sentence_index`` (per
current chunk: its original sentence).

Keeping the indexes in step: an op that drops or reorders chunks must drop or reorder
``sentence_index`` the same way; one that drops or reorders images must do the same to
``image_index``; an image it adds gets ``image_index`` -1. :func:`hf_mmbuilder.edits.drop_items` does
this for drops.
The exporter matches images and sentences back to their original entries through these indexes
while they are in step with ``images`` and the chunks; when a tool that knows only the DJ columns
dropped or added some, it matches them by identity (:func:`hf_mmbuilder.edits.image_index_by_path`,
:func:`hf_mmbuilder.edits.sentence_index_by_text`). It slices the similarity matrix to the surviving images x sentences, and re-points
``matched_text_index`` (or re-assigns it by best similarity when the sentence is gone) with
:func:`hf_mmbuilder.realignment.realign_batch`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import random
import warnings
from typing import Iterator, Optional, Union

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Json, List, Value

from hf_mmbuilder import edits
from hf_mmbuilder._deprecated import REMOVAL
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard, interleave_rows, map_in_threads, parse_threads
from hf_mmbuilder.errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError, raw_text
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.failures import guarded_tables, plan_json_file
from hf_mmbuilder.formats.records import MalformedJSON, gc_paused
from hf_mmbuilder.kernels import mmc4_parse, mmc4_text
from hf_mmbuilder.media import check_media_exists

try:
    from hf_mmbuilder.realignment import realign_batch
except ImportError as _error:  # pragma: no cover - the realign module ships with the core
    raise ImportError(
        "hf_mmbuilder.loading_scripts.mmc4 needs hf_mmbuilder.realignment (realign_batch) to export edited "
        f"MMC4 documents; it could not be imported: {_error}"
    ) from _error

logger = logging.getLogger("hf_mmbuilder")

# The row-editing helpers that lived here (hf_mmbuilder.edits now), for one release.
_MOVED_TO_EDITS = ("split_document", "drop_items")


def __getattr__(name: str):
    if name in _MOVED_TO_EDITS:
        warnings.warn(f"{__name__}.{name} is deprecated; use hf_mmbuilder.edits.{name} instead ({REMOVAL})", FutureWarning, stacklevel=2)
        return getattr(edits, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

INSERT_POSITIONS = ("before", "after", "random")
_KNOWN_KEYS = ("url", "text_list", "image_info", "similarity_matrix", "could_have_url_duplicate")


@dataclasses.dataclass
class Mmc4Config(DJBuilderConfig):
    """MMC4 options, named and defaulted as in Data-Juicer's ``mmc4_to_dj.py``.

    - ``image_dir``: folder prefixed to each ``image_name`` in ``images`` (default: none).
    - ``image_special_token_insert_pos``: ``"before"``/``"after"`` the matched sentence, or
      ``"random"`` (per sentence, seeded by ``seed``).
    - ``add_eoc_at_last``, ``sent_separator``: as in Data-Juicer.
    - ``keep_other_fields``: keep ``url``, ``could_have_url_duplicate`` and unknown keys
      (``False`` drops them: such rows export without them).
    - ``realign_method``: exporter only, how a surviving image whose sentence is gone gets a new one
      (``"repoint"``, ``"argmax"``, ``"assignment"``; see :func:`hf_mmbuilder.realignment.realign_batch`).
    """

    image_dir: Optional[str] = None
    image_special_token_insert_pos: str = "before"
    add_eoc_at_last: bool = True
    sent_separator: str = " "
    keep_other_fields: bool = True
    seed: int = 42
    realign_method: str = "repoint"

    def __post_init__(self):
        super().__post_init__()
        if self.image_special_token_insert_pos not in INSERT_POSITIONS:
            raise ValueError(f"image_special_token_insert_pos must be one of {INSERT_POSITIONS}, got {self.image_special_token_insert_pos!r}")
        if self.realign_method not in ("repoint", "argmax", "assignment"):
            raise ValueError(f"realign_method must be repoint, argmax or assignment, got {self.realign_method!r}")


class ImageRef(msgspec.Struct, gc=False):
    """The two fields of an ``image_info`` entry the DJ row needs (the entry itself is kept verbatim)."""

    image_name: str
    matched_text_index: int


class Document(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The common MMC4 document; anything else takes the careful ``dict`` path."""

    text_list: list[str]
    image_info: msgspec.Raw
    similarity_matrix: Union[list[list[float]], msgspec.UnsetType] = msgspec.UNSET
    url: Union[str, msgspec.UnsetType] = msgspec.UNSET
    could_have_url_duplicate: Union[int, msgspec.UnsetType] = msgspec.UNSET


_IMAGE_REFS = msgspec.json.Decoder(list[ImageRef])


def _image_refs(image_info) -> list:
    """An :class:`ImageRef` per entry of a raw or decoded ``image_info``."""
    if isinstance(image_info, msgspec.Raw):
        try:
            return _IMAGE_REFS.decode(image_info)
        except msgspec.ValidationError:
            return _image_refs(msgspec.json.decode(image_info))
    if not isinstance(image_info, list):
        raise ValueError(f"'image_info' must be a list, got {type(image_info).__name__}")
    refs = []
    for position, entry in enumerate(image_info):
        if not isinstance(entry, dict):
            raise ValueError(f"image_info[{position}] must be an object, got {type(entry).__name__}")
        name, match = entry.get("image_name"), entry.get("matched_text_index")
        if not isinstance(name, str):
            raise ValueError(f"image_info[{position}].image_name must be a string, got {name!r}")
        if isinstance(match, bool) or not isinstance(match, int):
            raise ValueError(f"image_info[{position}].matched_text_index must be an integer, got {match!r}")
        refs.append(ImageRef(name, match))
    return refs


def _image_path(image_dir: str, name: str) -> str:
    """``os.path.join(image_dir, name)`` as Data-Juicer computes it, without the per-call cost of
    the ``os.path.join`` that ``datasets`` patches into builder modules for streaming."""
    if not image_dir or name.startswith("/"):
        return name
    return image_dir + name if image_dir.endswith("/") else image_dir + "/" + name


def _check_dict(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"an MMC4 document must be a JSON object, got {type(record).__name__}")
    for key in ("text_list", "image_info"):
        if key not in record:
            raise ValueError(f"document has no '{key}'")
    sentences = record["text_list"]
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise ValueError(f"'text_list' must be a list of strings, got {sentences!r:.200}")
    matrix = record.get("similarity_matrix", msgspec.UNSET)
    if matrix is not msgspec.UNSET and not (
        isinstance(matrix, list)
        and all(isinstance(row, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row) for row in matrix)
    ):
        raise ValueError(f"'similarity_matrix' must be a list of lists of numbers, got {matrix!r:.200}")
    return record


def _strings(offsets: np.ndarray, data: np.ndarray, valid: Optional[np.ndarray] = None) -> pa.StringArray:
    """A string array on the buffers of :func:`hf_mmbuilder.kernels.mmc4_parse.parse_documents`
    (int64 offsets from 0 into UTF-8 ``data``), null where ``valid`` is False."""
    bitmap = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data), bitmap)


def _lists(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


class Mmc4(DJBuilder):
    """``load_dataset("hf_mmbuilder/mmc4", data_files=...)``: MMC4 documents to DJ rows."""

    BUILDER_CONFIG_CLASS = Mmc4Config

    def _format_features(self) -> dict:
        return {
            "url": Value("string"),
            "text_list": List(Value("string")),
            "image_info": Json(decode=False),
            "similarity_matrix": List(List(Value("float64"))),
            "could_have_url_duplicate": Json(),
            "matched_text_index": List(Value("int64")),
            "image_index": List(Value("int64")),
            "sentence_index": List(Value("int64")),
        }

    def _plan_file(self, shard_id, path, original, media_root):
        return plan_json_file(self, shard_id, path, original, media_root, open, scan_while_parsing=True)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        # A shard member that cannot be read (damaged zip data) fails as a file, rows read before it kept.
        yield from guarded_tables(shard, policy, self.config.on_error, self._document_tables(shard, policy))

    def _document_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        buffer = ColumnBuffer(self.info.features, constants=self.shard_constants(shard, ("audios", "videos")))
        rng = self.shard_rng(shard)
        batches = self._record_batches(shard, Document, open, decode=False)
        # The compiled part of each batch runs on parser threads (its parsers release the GIL);
        # the careful part stays here, in file order, so on_error and the random mode see one order.
        for batch, (fast_table, fast) in map_in_threads(lambda batch: self._fast_rows(batch, buffer), batches, parse_threads()):
            if len(fast) == len(batch.indexes):
                yield fast_table
                continue
            # Documents hold no reference cycles: the collector would only rescan the floats.
            with gc_paused():
                fast_set = set(fast)
                careful = [k for k in range(len(batch.indexes)) if k not in fast_set]
                # Documents are decoded one by one: they are large, so the per-call cost is
                # nothing, and one with an unknown key costs one retry, not a re-decode of the batch.
                records = {k: batch.decode(k) for k in careful}
                slow_table, kept = self._careful_table(batch, records, careful, buffer, shard, policy, rng)
            yield from interleave_rows(fast_table, fast, slow_table, kept)

    def _fast_rows(self, batch, buffer: ColumnBuffer) -> tuple[Optional[pa.Table], list]:
        """The table of the common documents of a batch (:meth:`_compiled_table`) and their
        positions; the others (no matrix, anything wrong) are for the careful path."""
        config = self.config
        if not config.fast_path or config.image_special_token_insert_pos == "random" or config.check_media or not config.keep_other_fields:
            return None, []
        return self._compiled_table(batch, buffer)

    def _compiled_table(self, batch, buffer: ColumnBuffer) -> tuple[Optional[pa.Table], list]:
        """The table of the common documents of ``batch``, built on flat buffers, and their batch
        positions.

        One compiled pass (:func:`hf_mmbuilder.kernels.mmc4_parse.parse_documents`) reads each
        document straight into Arrow buffers: no Python object per document, sentence or matrix
        value. A document of another shape, or with a DJ token in a sentence, is left to the
        careful path. Other members (``extra``) are decoded here, as the careful path decodes them.
        The text is built by :mod:`hf_mmbuilder.kernels.mmc4_text`.
        """
        config = self.config
        image_token, eoc = config.image_special_token.encode(), config.eoc_special_token.encode()
        buf = np.frombuffer(batch.buffer, np.uint8)
        starts = np.asarray(batch.offsets - batch.buffer_offset, np.int64)
        ends = np.array(batch.ends - batch.buffer_offset, np.int64)
        # Bytes are copied as they are: a document that is not UTF-8 goes the careful way (an
        # empty range is never a document).
        invalid = batch.invalid_utf8()
        ends[invalid] = starts[invalid]
        status, docs = mmc4_parse.parse_documents(buf, starts, ends, image_token, eoc)
        n_docs = len(docs.positions)
        if not n_docs:
            return None, []
        text_offsets, text, order = mmc4_text.mmc4_texts(
            docs.sentence_offsets, docs.sentence_ends, docs.sentence_data, docs.image_offsets, docs.matches, image_token, eoc,
            config.sent_separator.encode(), config.image_special_token_insert_pos == "before", config.add_eoc_at_last,
        )
        names = _strings(docs.name_ends, docs.name_data)
        image_dir = config.image_dir or ""
        if image_dir:
            joined = pc.binary_join_element_wise(image_dir if image_dir.endswith("/") else image_dir + "/", names, "")
            names = pc.if_else(pc.starts_with(names, "/"), names, joined)
        strings = _strings(docs.sentence_ends, docs.sentence_data)
        sentence_counts = np.diff(docs.sentence_offsets)
        image_counts = np.diff(docs.image_offsets)
        schema = buffer.schema
        info = _strings(docs.info_offsets, docs.info_data)
        extra = pa.nulls(n_docs, pa.string())
        with_extra = np.flatnonzero(status[docs.positions] == mmc4_parse.EXTRA)
        if len(with_extra):
            info, extra = self._extra_members(batch, docs.positions[with_extra], with_extra, info, n_docs)
        columns = {
            "text": _strings(text_offsets, text),
            "images": _lists(docs.image_offsets, names.take(pa.array(order))),
            "url": _strings(docs.url_offsets, docs.url_data, docs.url_valid),
            "text_list": _lists(docs.sentence_offsets, strings),
            "image_info": pa.ExtensionArray.from_storage(schema.field("image_info").type, info),
            "similarity_matrix": _lists(docs.row_offsets, _lists(docs.value_offsets, pa.array(docs.values))),
            "could_have_url_duplicate": pa.ExtensionArray.from_storage(
                schema.field("could_have_url_duplicate").type, _strings(docs.duplicate_offsets, docs.duplicate_data, docs.duplicate_valid)
            ),
            "matched_text_index": _lists(docs.image_offsets, pa.array(docs.matches)),
            "image_index": _lists(docs.image_offsets, pa.array(order - np.repeat(docs.image_offsets[:-1], image_counts))),
            "sentence_index": _lists(
                docs.sentence_offsets, pa.array(np.arange(len(strings), dtype=np.int64) - np.repeat(docs.sentence_offsets[:-1], sentence_counts))
            ),
            "extra": pa.ExtensionArray.from_storage(schema.field("extra").type, extra),
        }
        if ERRORS_COLUMN in schema.names:
            columns[ERRORS_COLUMN] = pa.nulls(n_docs, schema.field(ERRORS_COLUMN).type)
        return buffer.table_with(columns, n_docs), docs.positions.tolist()

    @staticmethod
    def _extra_members(batch, positions: np.ndarray, rows: np.ndarray, info: pa.Array, n_docs: int) -> tuple[pa.Array, pa.Array]:
        """``image_info`` and ``extra`` of the documents with other members (batch ``positions``,
        table ``rows``), as the careful path stores a document it decodes to a ``dict``: its
        ``image_info`` written back by orjson, its other members as a JSON object."""
        infos, extras = [], []
        for k in positions.tolist():
            record = msgspec.json.decode(batch.raw(k))
            infos.append(orjson.dumps(record["image_info"]).decode())
            extras.append(orjson.dumps({key: value for key, value in record.items() if key not in _KNOWN_KEYS}).decode())
        mask = np.zeros(n_docs, bool)
        mask[rows] = True
        extra = pc.replace_with_mask(pa.nulls(n_docs, pa.string()), pa.array(mask), pa.array(extras, pa.string()))
        return pc.replace_with_mask(info, pa.array(mask), pa.array(infos, pa.string())), extra

    def _careful_table(self, batch, records: list, positions: list, buffer: ColumnBuffer, shard: Shard, policy: ErrorPolicy,
                       rng: random.Random) -> tuple[Optional[pa.Table], list]:
        """The table of the records at ``positions`` built one by one, applying ``on_error``, and
        the positions it kept."""
        raw_info, kept = [], []
        for k in positions:
            record = records[k]
            try:
                if type(record) is MalformedJSON:
                    raise RecordError(shard.original, batch.indexes[k], record.reason, line=int(batch.lines[k]), byte=record.byte)
                row = self._row(record, shard, rng)
            except ValueError as error:
                if not isinstance(error, RecordError):
                    error = RecordError(shard.original, batch.indexes[k], str(error), line=int(batch.lines[k]))
                if not policy.handle(error, batch.raw(k)):
                    continue
                row = self._empty_row(raw_text(batch.raw(k)), error.reason)
            kept.append(k)
            info = row.pop("image_info")
            raw_info.append(info if isinstance(info, (bytes, type(None))) else orjson.dumps(info))
            for name, value in row.items():
                buffer.columns[name].append(value)
        if not len(buffer):
            return None, kept
        # image_info is stored as the source's own JSON text: no decode/encode round per entry.
        buffer.columns["image_info"] = [None] * len(raw_info)
        table = buffer.to_table()
        position = table.schema.get_field_index("image_info")
        storage = pa.array([None if raw is None else bytes(raw).decode("utf-8") for raw in raw_info], pa.string())
        return table.set_column(position, table.schema.field(position), pa.ExtensionArray.from_storage(table.schema.field(position).type, storage)), kept

    def _row(self, record, shard: Shard, rng: random.Random) -> dict:
        config = self.config
        if type(record) is Document:
            sentences, image_info, matrix = record.text_list, record.image_info, record.similarity_matrix
            url, duplicate, extra = record.url, record.could_have_url_duplicate, None
            refs = _image_refs(image_info)
            image_info = bytes(image_info)
        else:
            record = _check_dict(record)
            sentences, image_info = record["text_list"], record["image_info"]
            matrix = record.get("similarity_matrix", msgspec.UNSET)
            refs = _image_refs(image_info)
            url = record["url"] if isinstance(record.get("url"), str) else msgspec.UNSET
            duplicate = record.get("could_have_url_duplicate", msgspec.UNSET)
            duplicate = msgspec.UNSET if duplicate is None else duplicate
            extra = {key: value for key, value in record.items() if key not in _KNOWN_KEYS}
            if "url" in record and url is msgspec.UNSET:
                extra["url"] = record["url"]
            if "could_have_url_duplicate" in record and duplicate is msgspec.UNSET:
                extra["could_have_url_duplicate"] = None
            extra = extra or None
        n_sentences = len(sentences)
        for position, ref in enumerate(refs):
            name, match = ref.image_name, ref.matched_text_index
            if not 0 <= match < n_sentences:
                raise ValueError(f"image_info[{position}] ({name!r}) has matched_text_index {match}, out of range for {n_sentences} sentence(s)")
        if matrix is not msgspec.UNSET:
            if len(matrix) != len(refs):
                raise ValueError(f"similarity_matrix has {len(matrix)} row(s) but image_info has {len(refs)} image(s)")
            for position, row in enumerate(matrix):
                if len(row) != n_sentences:
                    raise ValueError(f"similarity_matrix row {position} has {len(row)} value(s) but text_list has {n_sentences} sentence(s)")
        image_token, eoc = config.image_special_token, config.eoc_special_token
        matches = [ref.matched_text_index for ref in refs]
        order = sorted(range(len(refs)), key=matches.__getitem__)
        counts: dict = {}
        for match in matches:
            counts[match] = counts.get(match, 0) + 1
        where = config.image_special_token_insert_pos
        if where == "random":
            where = {position: "before" if rng.random() < 0.5 else "after" for position in sorted(counts)}
        text = edits.join_chunks(sentences, counts, where, (image_token, eoc), config.sent_separator, config.add_eoc_at_last)
        # A sentence holding a DJ token would make the text impossible to cut back: counting the
        # tokens of the whole text finds it in two passes instead of two per sentence.
        expected_eoc = max(n_sentences - 1, 0) + (1 if config.add_eoc_at_last else 0)
        if text.count(eoc) != expected_eoc or text.count(image_token) != len(refs):
            for position, sentence in enumerate(sentences):
                if image_token in sentence or eoc in sentence:
                    raise ValueError(f"sentence {position} contains the DJ token {image_token if image_token in sentence else eoc!r}; the text could not be cut back into sentences (use other tokens)")
            raise ValueError("the sentences and separators form a DJ token across a sentence boundary; use another sent_separator")
        image_dir = config.image_dir or ""
        images = [_image_path(image_dir, refs[i].image_name) for i in order]
        if config.check_media:
            check_media_exists(images, shard.media_root)
        keep = config.keep_other_fields
        row = {
            "text": text,
            "images": images,
            "url": url if keep and url is not msgspec.UNSET else None,
            "text_list": sentences,
            "image_info": image_info,
            "similarity_matrix": None if matrix is msgspec.UNSET else matrix,
            "could_have_url_duplicate": duplicate if keep and duplicate is not msgspec.UNSET else None,
            "matched_text_index": matches,
            "image_index": order,
            "sentence_index": list(range(n_sentences)),
            "extra": extra if keep else None,
        }
        if ERRORS_COLUMN in self.info.features:
            row[ERRORS_COLUMN] = None
        return row

    def _empty_row(self, raw: str, reason: str) -> dict:
        return {
            "text": "", "images": [], "url": None, "text_list": [], "image_info": None, "similarity_matrix": None,
            "could_have_url_duplicate": None, "matched_text_index": [], "image_index": [], "sentence_index": [],
            "extra": {KEPT_RAW_KEY: raw}, ERRORS_COLUMN: [reason],
        }


_REALIGN_SCHEMA = pa.schema([
    ("similarity_matrix", pa.list_(pa.list_(pa.float64()))),
    ("matched_text_index", pa.list_(pa.int64())),
    ("image_index", pa.list_(pa.int64())),
    ("sentence_index", pa.list_(pa.int64())),
])


def _finite_or_none(value: float):
    return None if value is None or math.isnan(value) else value


class Mmc4Exporter(RowExporter):
    """DJ row -> MMC4 document: sentences from the (possibly edited) text, ``image_info`` entries
    and the similarity matrix matched back through ``image_index``/``sentence_index`` and realigned.

    An image added by processing (``image_index`` -1) is written with ``matched_text_index`` set to
    the chunk its token is in, ``matched_sim`` null and a null similarity row; such rows are counted
    and logged, never dropped. An image whose sentences are all gone gets ``matched_text_index`` -1.
    """

    suffixes = (".jsonl",)

    def write(self, rows, handle, suffix, policy, source, progress) -> int:
        self.unaligned_rows = 0
        written = super().write(rows, handle, suffix, policy, source, progress)
        if self.unaligned_rows:
            logger.warning("%s: %d document(s) hold images added by processing (no similarity row): their rows are null", source, self.unaligned_rows)
        return written

    def row_to_record(self, row: dict) -> dict:
        config = self.options
        extra = row.get("extra") or {}
        images = row.get("images") or []
        image_index = row.get("image_index")
        sentence_index = row.get("sentence_index")
        if image_index is None or sentence_index is None:
            raise ValueError("row has no image_index/sentence_index (not an MMC4 row?)")
        split = functools.partial(edits.split_document, row["text"] or "", image_token=config.image_special_token,
                                  eoc_token=config.eoc_special_token, sent_separator=config.sent_separator,
                                  add_eoc_at_last=config.add_eoc_at_last)
        try:
            sentences, image_chunks = split(len(sentence_index))
        except ValueError:
            sentences, image_chunks = split(None)
        if len(image_chunks) != len(images):
            raise ValueError(f"text has {len(image_chunks)} {config.image_special_token} token(s) but images has {len(images)} path(s)")
        for path in images:
            self.check_media_path(path, row.get("media_root"))
        original_info = row.get("image_info")
        original_info = orjson.loads(original_info) if isinstance(original_info, str) else (original_info or [])
        n_original = len(original_info)
        # A tool that knows only the DJ columns leaves the indexes out of step when it drops or
        # adds images or chunks: those items are then matched back by what they are.
        if len(image_index) != len(images):
            image_dir = config.image_dir or ""
            image_index = edits.image_index_by_path(images, [_image_path(image_dir, entry["image_name"]) for entry in original_info])
        if len(sentence_index) != len(sentences):
            sentence_index = edits.sentence_index_by_text(sentences, row.get("text_list") or [])
        for position, original in enumerate(image_index):
            if not -1 <= original < n_original:
                raise ValueError(f"image_index[{position}] = {original} is out of range for {n_original} original image(s)")
        # Original images in their original order, then images added by processing.
        order = sorted(range(len(images)), key=lambda k: image_index[k] if image_index[k] >= 0 else n_original + k)
        ordered_index = [image_index[k] for k in order]
        matrix = row.get("similarity_matrix")
        sentence_index = list(sentence_index)
        unchanged = sentence_index == list(range(len(row.get("text_list") or []))) and ordered_index == list(range(n_original))
        if matrix is not None and unchanged:
            new_matrix = matrix
            matches = [row["matched_text_index"][original] for original in ordered_index]
        elif matrix is not None and matrix and ordered_index:
            # (A document without matrix rows or current images has nothing to realign.)
            realigned = realign_batch(
                pa.table(
                    [[matrix], [row["matched_text_index"]], [ordered_index], [list(sentence_index)]],
                    schema=_REALIGN_SCHEMA,
                ),
                method=config.realign_method,
            ).select(["realigned_similarity_matrix", "realigned_matched_text_index", "realigned_matched_sim"]).to_pylist()[0]
            new_matrix = realigned["realigned_similarity_matrix"]
            matches = realigned["realigned_matched_text_index"]
            sims = realigned["realigned_matched_sim"]
        elif matrix is not None:
            new_matrix = [[math.nan] * len(sentence_index) for _ in ordered_index]
            matches = [-1] * len(ordered_index)
            sims = [math.nan] * len(ordered_index)
        image_dir = config.image_dir or ""
        image_info, unaligned = [], False
        for j, k in enumerate(order):
            original = image_index[k]
            if original < 0 or matrix is None:
                entry = dict(original_info[original]) if original >= 0 else {}
                entry["image_name"] = images[k] if original < 0 or images[k] != _image_path(image_dir, entry["image_name"]) else entry["image_name"]
                entry["matched_text_index"] = image_chunks[k]
                if original < 0:
                    entry["matched_sim"] = None
                    unaligned = True
                image_info.append(entry)
                continue
            entry = dict(original_info[original])
            if images[k] != _image_path(image_dir, entry["image_name"]):
                entry["image_name"] = images[k]
            match = matches[j]
            same_sentence = match >= 0 and sentence_index[match] == entry.get("matched_text_index")
            if not unchanged and (not same_sentence or "matched_sim" not in entry):
                entry["matched_sim"] = _finite_or_none(sims[j])
            entry["matched_text_index"] = match
            image_info.append(entry)
        if unaligned:
            self.unaligned_rows = getattr(self, "unaligned_rows", 0) + 1
        record = {}
        if row.get("url") is not None:
            record["url"] = row["url"]
        record["text_list"] = sentences
        record["image_info"] = image_info
        if matrix is not None:
            record["similarity_matrix"] = [[_finite_or_none(v) for v in values] for values in new_matrix] if unaligned else new_matrix
        if row.get("could_have_url_duplicate") is not None:
            record["could_have_url_duplicate"] = row["could_have_url_duplicate"]
        record.update(extra)
        return record


EXPORTER = Mmc4Exporter
