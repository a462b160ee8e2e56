"""WavCaps (and WavCaps-style retrieval sets): config, builder and exporter.

Source layout, one JSON document per subset (SoundBible, FreeSound, BBC Sound Effects,
AudioSet_SL)::

    {"num_captions_per_audio": 1, "data": [
        {"title": ..., "description": ..., "caption": "An airplane is landing.", "id": "2219",
         "duration": 14.1424375, "audio": "wav_path", "download_link": ...}, ...]}

Fields differ per subset (FreeSound ``tags`` is a list, BBC ``category`` a Python list written as
a string, AudioSet ids end in ``.wav``) and are kept as written, JSON types included (a ``5``
duration stays an int, ``5.0`` a float). The retrieval variant (Clotho, AudioCaps in WavCaps'
``retrieval/`` folder) has ``caption_1`` .. ``caption_N`` and a ``wav`` path instead of ``caption``.

``audio`` is the placeholder ``"wav_path"``: the audio file is found as Data-Juicer's
``wavcaps_to_dj.py`` finds it, by name anywhere under ``wavcaps_audio_path`` (``<id up to the
first dot>.flac``, else the same stem with any audio extension); a retrieval record's ``wav`` is
taken as the path under that folder. A record whose file is not there keeps the expected
``<folder>/<id>.flac`` path (Data-Juicer drops it silently; ``check_media=True`` reports it).

DJ text, as Data-Juicer writes it: ``<audio> + sent_separator + [[field]]: (with
add_target_field_token) + the target field + <eoc>`` (no space before the eoc). The N retrieval
captions are N chunks: ``<audio>\\ncaption_1<eoc>\\ncaption_2<eoc>...``.

Round-trip columns: ``id`` (string with ``str_id``; ``id_is_int`` remembers an int id),
``subset`` (detected from the fields), ``caption_keys`` (the fields held in ``text``),
``key_order`` (the record's keys in order), ``file_extra`` (the document's other top-level keys;
``"data"`` marks where the records go) and ``extra`` (every other field).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterator, Optional

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Json, List, Value

from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.builder import DJBuilder, DJBuilderConfig, Shard
from hf_mmbuilder.formats.captioned import ABSENT, STRING, STRING_OR_INT, FieldSpec, compiled_tables, dj_token_rows, dj_tokens, flag, single_media
from hf_mmbuilder.formats.columns import SourceRecord, json_objects, one_path_lists, rows_to_tables
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.failures import file_failure, guarded_tables
from hf_mmbuilder.kernels import json_scan
from hf_mmbuilder.formats.records import JSON_CHECK, MAX_NESTING, TOO_DEEP, JSONLayoutError, RecordIndex, bom_length_of, check_no_dj_tokens, iter_batches, member_records
from hf_mmbuilder.formats.serialization import DEFAULT_STYLE, StyledText
from hf_mmbuilder.media import MediaFinder, check_media_exists


AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".m4a", ".opus")
TARGET_FIELDS = ("caption", "description", "title")
FIELD_MARKER = "[[%s]]: "
# Records converted at once (and the rows of one Arrow table).
CHUNK_RECORDS = 20_000


@dataclasses.dataclass
class WavcapsConfig(DJBuilderConfig):
    """WavCaps options, named and defaulted as in Data-Juicer's ``wavcaps_to_dj.py``.

    - ``wavcaps_audio_path``: folder searched (recursively) for the audio files; a relative one is
      read from ``media_root`` and written into the paths as given (default: ``media_root``).
    - ``str_id``: ids become strings in ``id`` (an int id is remembered for export).
    - ``target_field``: the field that becomes the text: ``caption``, ``description`` or ``title``.
    - ``add_eoc_at_last``, ``add_target_field_token``, ``sent_separator``: as in Data-Juicer.
    """

    wavcaps_audio_path: Optional[str] = None
    str_id: bool = True
    target_field: str = "caption"
    add_eoc_at_last: bool = True
    add_target_field_token: bool = False
    sent_separator: str = "\n"

    def __post_init__(self):
        super().__post_init__()
        if self.target_field not in TARGET_FIELDS:
            raise ValueError(f"target_field must be one of {TARGET_FIELDS}, got {self.target_field!r}")


def detect_subset(record: dict) -> str:
    """Which WavCaps subset a record's fields belong to.

    Example:
        >>> detect_subset({"id": "Yb0RFKhbpFJA.wav", "caption": "...", "audio": "wav_path", "duration": 10.0})
        'audioset_sl'
        >>> detect_subset({"caption_1": "...", "wav": "x.wav", "id": "1"})
        'retrieval'
    """
    if "caption_1" in record:
        return "retrieval"
    if "category" in record:
        return "bbc_sound_effects"
    if "tags" in record or "file_name" in record:
        return "freesound"
    if "title" in record:
        return "soundbible"
    return "audioset_sl"


def caption_keys(record: dict, target_field: str) -> list:
    """The fields of ``record`` that become the text: ``[target_field]``, or ``caption_1`` ..
    ``caption_N`` for a retrieval record when the target is ``caption``.

    Example:
        >>> caption_keys({"caption_1": "a", "caption_2": "b", "id": "1"}, "caption")
        ['caption_1', 'caption_2']
    """
    if target_field in record or target_field != "caption":
        return [target_field]
    numbered = []
    while f"caption_{len(numbered) + 1}" in record:
        numbered.append(f"caption_{len(numbered) + 1}")
    return numbered or [target_field]


# How _read_document read the document: parsed whole, its records indexed (a valid document, read
# by the compiled path), or its records indexed because one of them is malformed.
WHOLE, INDEXED, MALFORMED = "whole", "indexed", "malformed"


def _read_document(path: str, indexed: bool = False) -> tuple[Optional[dict], Optional[RecordIndex], str]:
    """The document, the index of its ``data`` records (or ``None``) and how it was read; ``(None,
    None, WHOLE)`` for a file of blanks (it holds no records). When the whole parse fails (a
    malformed, undecodable or too deep record): the rest of the document and the index of its
    records, each then read on its own (MALFORMED). With ``indexed``, a valid document with one
    ``data`` array is only checked, not parsed: the rest of it and the index of its records
    (INDEXED), for the compiled path."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data[bom_length_of(data) :].strip():
        return None, None, WHOLE
    if indexed and _is_utf8(data):
        try:
            # Checks the JSON without building it (strings not decoded: the UTF-8 check above).
            JSON_CHECK.decode(data[bom_length_of(data) :])
            index, rest = member_records(path, data, "data")
            # A second top-level "data" (the whole parse keeps the last, member_records takes the
            # first) lies outside the records: there the key is written once.
            if (isinstance(rest, dict) and rest.get("data") == [] and len(index) and _outside_records(data, index).count(b'"data"') == 1
                    and not _too_deep(data, index)):
                return rest, index, INDEXED
        except (msgspec.DecodeError, JSONLayoutError, RecursionError):
            pass
    # The records sit two levels down (the document, its "data" list).
    deep = json_scan.too_deep(np.frombuffer(data, np.uint8), np.array([0]), np.array([len(data)]), MAX_NESTING + 2, np.zeros(1, np.uint8))
    index, kind = None, WHOLE
    try:
        if deep:
            raise msgspec.DecodeError(f"a record is {TOO_DEEP}")
        document = msgspec.json.decode(data[bom_length_of(data) :])
    except (msgspec.DecodeError, RecursionError) as error:
        try:
            index, document = member_records(path, data, "data")
            kind = MALFORMED
        except JSONLayoutError:
            raise ValueError(f"malformed JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError('a WavCaps file is a JSON object with a "data" list of records')
    return document, index, kind


def _too_deep(data: bytes, index: RecordIndex) -> bool:
    """The whole document's depth check of :func:`_read_document`, cut in two: the document
    without its records (two levels above them), and each record alone (its brackets counted
    first, so a shallow record is never scanned)."""
    outside = _outside_records(data, index)
    if json_scan.too_deep(np.frombuffer(outside, np.uint8), np.array([0]), np.array([len(outside)]), MAX_NESTING + 2, np.zeros(1, np.uint8)):
        return True
    return json_scan.too_deep(np.frombuffer(data, np.uint8), index.starts, index.ends, MAX_NESTING, np.zeros(len(index), np.uint8)) > 0


def _outside_records(data: bytes, index: RecordIndex) -> bytes:
    """The document's text around its records (before the first, after the last)."""
    return data[: index.starts[0]] + data[index.ends[-1] :]


def _is_utf8(data: bytes) -> bool:
    try:
        pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], np.int64)), pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


class Wavcaps(DJBuilder):
    """``load_dataset("hf_mmbuilder/wavcaps", data_files=...)``: WavCaps JSON to DJ rows."""

    BUILDER_CONFIG_CLASS = WavcapsConfig

    def _format_features(self) -> dict:
        return {
            "id": Value("string") if self.config.str_id else Json(),
            "id_is_int": Value("bool"),
            "subset": Value("string"),
            "caption_keys": List(Value("string")),
            "key_order": List(Value("string")),
            "file_extra": Json(),
        }

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        yield from guarded_tables(shard, policy, self.config.on_error, self._document_tables(shard, policy))

    def _document_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        audio_folder = config.wavcaps_audio_path or ""
        compiled = config.fast_path and not config.check_media and "::" not in audio_folder
        try:
            document, index, kind = _read_document(shard.path, compiled)
        except ValueError as error:
            file_failure(shard.original, str(error), policy, config.on_error)
            return
        if document is None:
            return
        file_extra = {key: (None if key == "data" else value) for key, value in document.items()}
        search_root = os.path.join(shard.media_root, audio_folder)
        finder = MediaFinder(search_root, recursive=True, extensions=AUDIO_EXTENSIONS)
        token, separator, eoc = config.audio_special_token, config.sent_separator, config.eoc_special_token
        literal = dj_tokens(config)

        def convert(record) -> dict:
            if not isinstance(record, dict):
                raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
            if "id" not in record:
                raise ValueError("record has no 'id'")
            record_id = record["id"]
            if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
                raise ValueError(f"'id' must be a string or an integer, got {record_id!r}")
            keys = caption_keys(record, config.target_field)
            captions = []
            for key in keys:
                if key not in record:
                    raise ValueError(f"record has no {key!r}")
                if not isinstance(record[key], str):
                    raise ValueError(f"{key!r} must be a string, got {type(record[key]).__name__} {record[key]!r}")
                check_no_dj_tokens(record[key], literal, repr(key))
                captions.append((FIELD_MARKER % key if config.add_target_field_token else "") + record[key])
            wav = record.get("wav")
            if isinstance(wav, str):
                path = os.path.join(audio_folder, wav)
            else:
                stem = str(record_id).strip().split(".")[0]
                found = finder.by_name(stem + ".flac") or finder.by_stem(stem)
                path = os.path.join(audio_folder, found or stem + ".flac")
            if config.check_media:
                check_media_exists([path], shard.media_root)
            text = token + separator + (eoc + separator).join(captions) + (eoc if config.add_eoc_at_last else "")
            other = {key: value for key, value in record.items() if key != "id" and key not in keys}
            return {
                "text": text,
                "audios": [path],
                "id": str(record_id) if config.str_id else record_id,
                "id_is_int": type(record_id) is int,
                "subset": detect_subset(record),
                "caption_keys": keys,
                "key_order": list(record),
                "file_extra": file_extra,
                "extra": other or None,
            }

        constants = self.shard_constants(shard, ("images", "videos"))
        if kind == MALFORMED:
            records = (
                SourceRecord(batch.indexes[k], int(batch.lines[k]), batch.records[k], functools.partial(batch.raw, k))
                for batch in iter_batches(index, 0, len(index), None, open)
                for k in range(len(batch.indexes))
            )
            yield from rows_to_tables(self.info.features, constants, records, convert, policy, shard.original)
            return
        if kind == INDEXED:
            build = self._columns_builder(finder, orjson.dumps(file_extra))
            batches = iter_batches(index, 0, len(index), None, open, decode=False)
            yield from compiled_tables(batches, self._spec(), build, _document_record, self.info.features, constants, convert, policy, shard.original)
            return
        data = document["data"]
        for first in range(0, len(data), CHUNK_RECORDS):
            chunk = data[first : first + CHUNK_RECORDS]
            records = (SourceRecord(first + k, None, record, functools.partial(orjson.dumps, record)) for k, record in enumerate(chunk))
            yield from rows_to_tables(self.info.features, constants, records, convert, policy, shard.original, CHUNK_RECORDS + 1)

    def _spec(self) -> FieldSpec:
        # A record with a "wav" path, or without the target field (a retrieval record's numbered
        # captions), goes the careful way.
        return FieldSpec((("id", STRING_OR_INT), (self.config.target_field, STRING), ("wav", ABSENT)), key_order=True)

    def _columns_builder(self, finder: MediaFinder, file_extra_text: bytes):
        """The compiled path's columns of a batch of WavCaps records."""
        config = self.config
        token, separator, eoc = config.audio_special_token, config.sent_separator, config.eoc_special_token
        target = config.target_field
        marker = FIELD_MARKER % target if config.add_target_field_token else ""
        # os.path.join is datasets' xjoin in this module: plain os.path.join for a folder without hops.
        prefix = os.path.join(config.wavcaps_audio_path or "", "")
        schema = self.info.features.arrow_schema

        def build(parsed, batch) -> dict:
            ids, captions = parsed.fields["id"], parsed.fields[target]
            # A caption holding a DJ token: convert reports it.
            flag(parsed.status, dj_token_rows(captions, config))
            rows = len(ids)
            is_int = parsed.int_fields["id"]
            stems = _id_stems(ids)
            by_name, by_stem = finder.names().get, finder.stems().get
            files = pa.array([by_name(stem + ".flac") or by_stem(stem) or stem + ".flac" for stem in stems.to_pylist()], pa.string())
            # os.path.join(audio_folder, name): the name alone when it is absolute.
            paths = pc.if_else(pc.starts_with(files, "/"), files, pc.binary_join_element_wise(prefix, files, ""))
            if config.str_id:
                id_column = ids
            else:
                id_column = json_objects([int(value) if number else value for value, number in zip(ids.to_pylist(), is_int.tolist())])
            return {
                "text": pc.binary_join_element_wise(token, separator, marker, captions, eoc if config.add_eoc_at_last else "", ""),
                "audios": one_path_lists(paths, schema.field("audios").type),
                "id": id_column,
                "id_is_int": pa.array(is_int),
                "subset": _subsets(parsed.key_order),
                "caption_keys": one_path_lists(pa.array([target] * rows, pa.string()), schema.field("caption_keys").type),
                "key_order": parsed.key_order,
                "file_extra": pa.array([file_extra_text] * rows, pa.string()),
                "extra": parsed.extra,
            }

        return build


# The first and last characters of an id that str.strip() leaves alone (printable ASCII).
_STRIPPED = r"(?s)^([!-~]|[!-~].*[!-~])?$"


def _id_stems(ids: pa.Array) -> pa.Array:
    """``str(id).strip().split(".")[0]`` of each id (Data-Juicer's file stem of a record)."""
    if pc.all(pc.match_substring_regex(ids, _STRIPPED)).as_py() is not False:
        return pc.list_element(pc.split_pattern(ids, ".", max_splits=1), 0)
    return pa.array([value.strip().split(".")[0] for value in ids.to_pylist()], pa.string())


# detect_subset's order: the first of these keys a record has names its subset.
_SUBSET_KEYS = (("caption_1", "retrieval"), ("category", "bbc_sound_effects"), ("tags", "freesound"), ("file_name", "freesound"), ("title", "soundbible"))


def _subsets(key_order: pa.Array) -> pa.Array:
    """:func:`detect_subset` of each record from its keys. O(keys)."""
    rows = len(key_order)
    owners = pc.list_parent_indices(key_order).to_numpy()
    keys = pc.list_flatten(key_order)
    choice = np.full(rows, len(_SUBSET_KEYS), np.int64)
    for position in range(len(_SUBSET_KEYS) - 1, -1, -1):
        has = np.zeros(rows, bool)
        has[owners[np.asarray(pc.equal(keys, _SUBSET_KEYS[position][0]), dtype=bool)]] = True
        choice[has] = position
    return pa.array([name for _, name in _SUBSET_KEYS] + ["audioset_sl"], pa.string()).take(pa.array(choice))


def _document_record(batch, k: int) -> SourceRecord:
    # As a record of the parsed document: no line, its rejects text orjson's.
    value = batch.decode(k)
    return SourceRecord(batch.indexes[k], None, value, functools.partial(orjson.dumps, value))


class WavcapsExporter(RowExporter):
    """DJ row -> WavCaps record, inside the document of the first row (``num_captions_per_audio``
    ...): the caption(s) cut back out of ``text`` (edits kept), the id type, every other field."""

    suffixes = (".json",)

    def row_to_record(self, row: dict) -> dict:
        config = self.options
        token, separator, eoc = config.audio_special_token, config.sent_separator, config.eoc_special_token
        path = single_media(row, "audios", token)
        self.check_media_path(path, row.get("media_root"))
        text = row["text"] or ""
        if not text.startswith(token + separator):
            raise ValueError(f"text does not start with {token + separator!r}")
        text = text[len(token + separator) :]
        if config.add_eoc_at_last:
            if not text.endswith(eoc):
                raise ValueError(f"text does not end with {eoc!r}")
            text = text[: -len(eoc)]
        keys = row.get("caption_keys") or [config.target_field]
        captions = text.split(eoc + separator) if len(keys) > 1 else [text]
        if len(captions) != len(keys):
            raise ValueError(f"text has {len(captions)} caption chunk(s) for the {len(keys)} field(s) {keys}")
        values = {}
        for key, caption in zip(keys, captions):
            marker = FIELD_MARKER % key
            if config.add_target_field_token:
                if not caption.startswith(marker):
                    raise ValueError(f"caption does not start with {marker!r}")
                caption = caption[len(marker) :]
            values[key] = caption
        record_id = row.get("id")
        if record_id is None:
            raise ValueError("row has no 'id': a WavCaps record needs it")
        values["id"] = int(record_id) if row.get("id_is_int") and isinstance(record_id, str) else record_id
        values.update(row.get("extra") or {})
        order = row.get("key_order") or list(values)
        record = {key: values.pop(key) for key in order if key in values}
        record.update(values)
        return record

    def write(self, rows, handle, suffix: str, policy: ErrorPolicy, source: str, progress) -> int:
        """One WavCaps document: the first exported row's top-level fields around the records, in
        the source file's style (without one: one record per line)."""
        file_extra = None
        style = self.style_for(suffix)
        styled = None if style == DEFAULT_STYLE[suffix] else StyledText(style)

        def put(piece: bytes, compact: bytes) -> None:
            # The default layout puts each record on its own line; a source style restyles the
            # compact document as one JSON value.
            handle.write(piece if styled is None else styled.feed(compact))

        def line_of(row: dict) -> bytes:
            nonlocal file_extra
            record = self.row_to_record(row)
            row_file_extra = row.get("file_extra") or {"num_captions_per_audio": len(row.get("caption_keys") or [None])}
            row_file_extra = row_file_extra if "data" in row_file_extra else {**row_file_extra, "data": None}
            if file_extra is None:
                file_extra = row_file_extra
                put(_document_head(file_extra), _document_head(file_extra))
            elif row_file_extra != file_extra:
                raise ValueError(f"row comes from a WavCaps document with other top-level fields ({row_file_extra}) than the first row's")
            return orjson.dumps(record)

        written = 0
        for _, line in self.records(rows, policy, source, progress, line_of):
            put((b"\n" if written == 0 else b",\n") + line, (b"" if written == 0 else b",") + line)
            written += 1
        if file_extra is None:
            file_extra = {"data": None}
            put(_document_head(file_extra), _document_head(file_extra))
        tail = _document_tail(file_extra) + b"}"
        put(b"\n]" + tail, b"]" + tail)
        handle.write(style.newline.encode() if style.final_newline else b"")
        return written


def _document_head(file_extra: dict) -> bytes:
    keys = list(file_extra)
    before = orjson.dumps({key: file_extra[key] for key in keys[: keys.index("data")]})
    return before[:-1] + (b"," if len(before) > 2 else b"") + b'"data":['


def _document_tail(file_extra: dict) -> bytes:
    keys = list(file_extra)
    after = orjson.dumps({key: file_extra[key] for key in keys[keys.index("data") + 1 :]})
    return (b"," + after[1:-1]) if len(after) > 2 else b""


EXPORTER = WavcapsExporter
