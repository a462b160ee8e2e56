"""Data-Juicer's own intermediate format (JSON lines or a JSON array): config, builder, exporter.

A DJ record holds ``text`` and the media lists ``images``/``audios``/``videos`` (each optional),
usually an ``id``, and whatever else the producing tool kept (``__dj__meta__``, ``__dj__stats__``,
source fields). Loading keeps ``id`` as a JSON value (int or string) and every other key in
``extra``, so exporting writes the record back unchanged; exporting a dataset of any other format
as DJ writes the DJ columns plus every column of that format, so the result can be processed by
Data-Juicer and still carries what the source format needs for its own export.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import pyarrow as pa
from datasets import Json

from hf_mmbuilder.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard
from hf_mmbuilder.errors import ERRORS_COLUMN, ErrorPolicy, RecordError
from hf_mmbuilder.export import RowExporter
from hf_mmbuilder.jsonrecords import MalformedJSON, iter_batches, scan_records
from hf_mmbuilder.schema import MEDIA_COLUMNS

# Columns that describe where a row came from on this machine, not what the record says.
PROVENANCE_COLUMNS = ("media_root", "source_file")


@dataclasses.dataclass
class DjConfig(DJBuilderConfig):
    """DJ options: only the shared ones (tokens are taken as written in the records)."""


def _check_record(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"a DJ record must be a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    for column in MEDIA_COLUMNS:
        paths = record.get(column)
        if paths is not None and not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise ValueError(f"'{column}' must be a list of path strings, got {paths!r}")
    return record


class Dj(DJBuilder):
    """``load_dataset("hf_mmbuilder/dj", data_files=...)``: Data-Juicer JSON lines to DJ rows."""

    BUILDER_CONFIG_CLASS = DjConfig

    def _format_features(self) -> dict:
        return {"id": Json(), "present_columns": Json()}

    def _plan_file(self, shard_id, path, original, media_root):
        index = scan_records(path, open)
        return [Shard(shard_id + k, path, original, media_root, a, b, index) for k, (a, b) in enumerate(index.shards(self.config.shard_bytes))]

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        buffer = ColumnBuffer(self.info.features, constants={"media_root": shard.media_root, "source_file": shard.original})
        columns = buffer.columns
        for batch in iter_batches(shard.index, shard.first, shard.stop, None, open):
            for k, record in enumerate(batch.records):
                errors = None
                try:
                    if isinstance(record, MalformedJSON):
                        raise RecordError(shard.original, batch.indexes[k], record.reason, line=int(batch.lines[k]), byte=record.byte)
                    record = _check_record(record)
                except ValueError as error:
                    if not isinstance(error, RecordError):
                        error = RecordError(shard.original, batch.indexes[k], str(error), line=int(batch.lines[k]))
                    if not policy.handle(error, batch.raw(k)):
                        continue
                    errors = [error.reason]
                    record = {"__raw__": batch.raw(k).decode("utf-8", "replace")}
                columns["text"].append(record.get("text"))
                for column in MEDIA_COLUMNS:
                    columns[column].append(record.get(column) or [])
                columns["id"].append(record.get("id"))
                columns["present_columns"].append([key for key in ("text", "id", *MEDIA_COLUMNS) if key in record])
                other = {key: value for key, value in record.items() if key not in ("text", "id", *MEDIA_COLUMNS)}
                columns["extra"].append(other or None)
                if ERRORS_COLUMN in columns:
                    columns[ERRORS_COLUMN].append(errors)
            if len(buffer):
                yield buffer.to_table()


class DjExporter(RowExporter):
    """DJ row -> DJ record. Rows loaded from DJ files come back exactly as written; rows of other
    formats keep all their columns (except machine-local provenance) as top-level keys."""

    suffixes = (".jsonl", ".json")

    def row_to_record(self, row: dict) -> dict:
        for column in MEDIA_COLUMNS:
            for path in row.get(column) or []:
                self.check_media_path(path, row.get("media_root"))
        extra = row.get("extra") or {}
        if "__raw__" in extra:
            raise ValueError("row holds an unparsed source record (kept by on_error='keep')")
        present = row.get("present_columns")
        if present is not None:
            record = {key: row[key] for key in present}
            record.update(extra)
            return record
        record = {}
        for key, value in row.items():
            if key in PROVENANCE_COLUMNS or key == ERRORS_COLUMN:
                continue
            record[key] = value
        return record


EXPORTER = DjExporter
