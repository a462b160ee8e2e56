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
import itertools
import os
from typing import Iterator, Optional

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Json, List, Value

from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard
from hf_mmbuilder.formats.captioned import dj_tokens, hold_dj_tokens, single_media
from hf_mmbuilder.formats.columns import SourceRecord, json_objects, one_path_lists, rows_to_tables, strings_or_none, table_from_arrays
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.failures import file_failure, guarded_tables
from hf_mmbuilder.kernels import json_scan
from hf_mmbuilder.formats.records import MAX_NESTING, TOO_DEEP, JSONLayoutError, RecordIndex, bom_length_of, check_no_dj_tokens, gc_paused, iter_batches, member_records
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


def _read_document(path: str) -> tuple[Optional[dict], Optional[RecordIndex]]:
    """The parsed document, or ``(None, None)`` for a file of blanks (it holds no records); when
    the whole parse fails (a malformed, undecodable or too deep record), the rest of the document
    and the index of its ``data`` records, each then read on its own."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data[bom_length_of(data) :].strip():
        return None, None
    index = None
    try:
        # The records sit two levels down (the document, its "data" list).
        if json_scan.too_deep(np.frombuffer(data, np.uint8), np.array([0]), np.array([len(data)]), MAX_NESTING + 2, np.zeros(1, np.uint8)):
            raise msgspec.DecodeError(f"a record is {TOO_DEEP}")
        document = msgspec.json.decode(data[bom_length_of(data) :])
    except (msgspec.DecodeError, RecursionError) as error:
        try:
            index, document = member_records(path, data, "data")
        except JSONLayoutError:
            raise ValueError(f"malformed JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise ValueError('a WavCaps file is a JSON object with a "data" list of records')
    return document, index


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
        try:
            document, index = _read_document(shard.path)
        except ValueError as error:
            file_failure(shard.original, str(error), policy, config.on_error)
            return
        if document is None:
            return
        file_extra = {key: (None if key == "data" else value) for key, value in document.items()}
        audio_folder = config.wavcaps_audio_path or ""
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

        schema = self.info.features.arrow_schema
        marker = FIELD_MARKER % config.target_field if config.add_target_field_token else ""
        # os.path.join is datasets' xjoin in this module: plain os.path.join for a folder without hops.
        prefix = None if "::" in audio_folder else os.path.join(audio_folder, "")
        file_extra_text = orjson.dumps(file_extra)

        def fast_columns(chunk: list) -> Optional[dict]:
            # The whole chunk at once, for records with an int/str id, a string target field and
            # no "wav" path; anything else (or a media check) sends it to convert.
            if not config.fast_path or config.check_media or prefix is None or not all(type(record) is dict for record in chunk):
                return None
            target = config.target_field
            ids = [record.get("id") for record in chunk]
            if not all(type(record_id) is str or type(record_id) is int for record_id in ids):
                return None
            if any(isinstance(record.get("wav"), str) for record in chunk):
                return None
            captions = strings_or_none([record.get(target) for record in chunk])
            if captions is None or hold_dj_tokens([captions], config):
                return None
            names, stems = finder.names(), finder.stems()
            files = []
            for record_id in ids:
                stem = str(record_id).strip().split(".")[0]
                files.append(names.get(stem + ".flac") or stems.get(stem) or stem + ".flac")
            # os.path.join(audio_folder, name): the name alone when it is absolute.
            paths = pa.array([name if name.startswith("/") else prefix + name for name in files], pa.string())
            rows = len(chunk)
            key_counts = np.fromiter((len(record) for record in chunk), np.int32, rows)
            columns = {
                "text": pc.binary_join_element_wise(token, separator, marker, captions, eoc if config.add_eoc_at_last else "", ""),
                "audios": one_path_lists(paths, schema.field("audios").type),
                "id": pa.array([str(record_id) for record_id in ids], pa.string()) if config.str_id else json_objects(ids),
                "id_is_int": pa.array([type(record_id) is int for record_id in ids], pa.bool_()),
                "subset": pa.array([detect_subset(record) for record in chunk], pa.string()),
                "caption_keys": one_path_lists(pa.array([target] * rows, pa.string()), schema.field("caption_keys").type),
                "key_order": pa.ListArray.from_arrays(
                    pa.array(np.concatenate(([0], np.cumsum(key_counts, dtype=np.int32)))),
                    pa.array(list(itertools.chain.from_iterable(chunk)), pa.string()),
                    type=schema.field("key_order").type,
                ),
                "file_extra": pa.array([file_extra_text] * rows, pa.string()),
            }
            for record in chunk:
                del record["id"], record[target]
            columns["extra"] = json_objects([record or None for record in chunk])
            return columns

        constants = self.shard_constants(shard, ("images", "videos"))
        if index is not None:
            records = (
                SourceRecord(batch.indexes[k], int(batch.lines[k]), batch.records[k], functools.partial(batch.raw, k))
                for batch in iter_batches(index, 0, len(index), None, open)
                for k in range(len(batch.indexes))
            )
            yield from rows_to_tables(self.info.features, constants, records, convert, policy, shard.original)
            return
        buffer = ColumnBuffer(self.info.features, constants)
        data = document["data"]
        for first in range(0, len(data), CHUNK_RECORDS):
            chunk = data[first : first + CHUNK_RECORDS]
            with gc_paused():
                arrays = fast_columns(chunk)
            if arrays is not None:
                yield table_from_arrays(buffer, arrays, len(chunk))
                continue
            records = (SourceRecord(first + k, None, record, functools.partial(orjson.dumps, record)) for k, record in enumerate(chunk))
            yield from rows_to_tables(self.info.features, constants, records, convert, policy, shard.original, CHUNK_RECORDS + 1)


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
