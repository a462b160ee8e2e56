"""MSR-VTT in its three common layouts: config, builder and exporter.

- ``official``: the original annotation JSON, ``{"info": ..., "videos": [{"video_id": "video0",
  "category": 9, "url": ..., "start time": 137.72, "end time": 149.44, "split": "train", "id": 0},
  ...], "sentences": [{"caption": ..., "video_id": "video2960", "sen_id": 0}, ...]}`` (keys with
  spaces are kept as written);
- ``csv``: the CLIP4Clip splits, ``key,vid_key,video_id,sentence`` (some copies say ``sentences``;
  ``MSRVTT_train.9k.csv`` has ``video_id`` alone);
- ``jsonl``: the Hugging Face layout Data-Juicer's ``msrvtt_to_dj.py`` reads, one caption per record
  with the video's fields beside it (JSON lines, or a JSON array).

Every layout gives one row per caption (an official video without any sentence gives one row with
no caption). The video is looked up in ``media_root`` as ``<video_id>.<any common video
extension>``; when there is none the path is ``<video_id>.mp4``, as Data-Juicer writes it. DJ text
as Data-Juicer writes it: ``<video> caption <eoc>`` (see :mod:`hf_mmbuilder.formats.captioned`).

Round-trip columns: ``layout``, ``video_id``; ``extra`` (the record's other keys: the video's
fields for ``official``, the other cells for ``csv``); for ``official`` also ``video_index`` /
``sentence_index`` (positions in the two lists), ``sentence_extra`` (the sentence's other keys,
``sen_id``) and ``file_extra`` (the top-level keys other than the two lists, ``info``); for
``csv`` the ``csv_header``. The exporter writes the layout the output suffix names (``.json``
official, ``.csv``, ``.jsonl``), so a dataset can also be converted between the three.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterator, Optional

import msgspec
import orjson
import pyarrow as pa
from datasets import Json, List, Value

from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.builder import Shard
from hf_mmbuilder.formats.captioned import (
    STRING,
    CaptionConfig,
    CaptionedVideoBuilder,
    CsvCaptionExporter,
    FieldSpec,
    batch_record,
    compiled_tables,
    dj_token_rows,
    extra_column,
    flag,
    paths_by_stem,
    shard_batches,
    wrap_caption,
    wrapped_captions,
)
from hf_mmbuilder.formats.columns import SourceRecord, json_fast_tables, one_path_lists, rows_to_tables
from hf_mmbuilder.formats.csvfiles import check_cells, csv_source_records, open_csv
from hf_mmbuilder.formats.failures import READ_ERRORS, Unreadable, file_failure, guarded_tables, plan_json_file, read_failure
from hf_mmbuilder.formats.serialization import DEFAULT_STYLE, StyledText


CSV_TEXT_COLUMNS = ("sentence", "sentences")
# One caption per record of the JSON-lines layout.
SPEC = FieldSpec((("video_id", STRING), ("caption", STRING)))


@dataclasses.dataclass
class MsrvttConfig(CaptionConfig):
    """MSR-VTT options: Data-Juicer's caption options (see :class:`CaptionConfig`)."""


def _official_document(path: str):
    """The parsed document if ``path`` holds one JSON object with a ``sentences`` list, else ``None``."""
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b" \t\r\n\xef\xbb\xbf")
        if not head.startswith(b"{"):
            return None
        data = head + handle.read()
    try:
        document = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    if isinstance(document, dict) and "sentences" in document:
        return document
    return None


def _check_string(record: dict, key: str, what: str) -> str:
    if key not in record:
        raise ValueError(f"{what} has no {key!r}")
    if not isinstance(record[key], str):
        raise ValueError(f"{what}: {key!r} must be a string, got {type(record[key]).__name__} {record[key]!r}")
    return record[key]


class Msrvtt(CaptionedVideoBuilder):
    """``load_dataset("hf_mmbuilder/msrvtt", data_files=...)``: MSR-VTT (official JSON, CLIP4Clip
    CSV or Hugging Face JSON lines) to DJ rows, one per caption."""

    BUILDER_CONFIG_CLASS = MsrvttConfig

    def _format_features(self) -> dict:
        return {
            "layout": Value("string"),
            "video_id": Value("string"),
            "video_index": Value("int64"),
            "sentence_index": Value("int64"),
            "sentence_extra": Json(),
            "file_extra": Json(),
            "csv_header": List(Value("string")),
        }

    def _plan_file(self, shard_id, path, original, media_root):
        # An archive member is "zip://<member>::<archive>": the member's name says the layout.
        name = path.split("::")[0].lower()
        if name.endswith(".csv"):
            return [Shard(shard_id, path, original, media_root, index="csv")]
        if name.endswith(".json"):
            try:
                document = _official_document(path)
            except READ_ERRORS as error:
                return [Shard(shard_id, path, original, media_root, index=Unreadable(read_failure(path, error)))]
            if document is not None:
                return [Shard(shard_id, path, original, media_root, index="official")]
        return plan_json_file(self, shard_id, path, original, media_root, open)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        rng = self.shard_rng(shard)
        finder = self.video_finder(shard)
        token = config.video_special_token
        constants = self.shard_constants(shard, ("images", "audios"))

        def row(video_id: str, caption, other, **columns) -> dict:
            path = self.video_path(finder, video_id, shard, ".mp4")
            if caption is not None and not isinstance(caption, str):
                raise ValueError(f"caption must be a string, got {type(caption).__name__} {caption!r}")
            return {
                "text": wrap_caption(caption or "", token, config, rng),
                "videos": [path],
                "video_id": video_id,
                "extra": (other or None) if config.keep_other_fields else None,
                **columns,
            }

        if shard.index == "csv":
            tables = self._csv_tables(shard, policy, constants, row)
        elif shard.index == "official":
            tables = self._official_tables(shard, policy, constants, row)
        else:

            def convert(record) -> dict:
                if not isinstance(record, dict):
                    raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
                video_id = _check_string(record, "video_id", "record")
                caption = _check_string(record, "caption", "record")
                other = {key: value for key, value in record.items() if key not in ("video_id", "caption")}
                return row(video_id, caption, other, layout="jsonl")

            videos_type = self.info.features.arrow_schema.field("videos").type

            def build(parsed, batch) -> Optional[dict]:
                video_ids, captions = parsed.fields["video_id"], parsed.fields["caption"]
                # A caption holding a DJ token: convert reports it.
                flag(parsed.status, dj_token_rows(captions, config))
                text = wrapped_captions([captions], len(captions), token, config, rng, parsed.status)
                if text is None:
                    return None
                return {
                    "text": text,
                    "videos": one_path_lists(paths_by_stem(finder, video_ids, ".mp4"), videos_type),
                    "video_id": video_ids,
                    "extra": extra_column(parsed, config),
                    "layout": pa.array(["jsonl"] * len(captions), pa.string()),
                }

            features = self.info.features
            if config.fast_path and not config.check_media:
                tables = compiled_tables(shard_batches(shard, open), SPEC, build, batch_record, features, constants, convert, policy, shard.original)
            else:
                tables = json_fast_tables(shard, open, features, constants, None, convert, policy, shard.original)
        yield from guarded_tables(shard, policy, config.on_error, tables)

    def _csv_tables(self, shard, policy, constants, row) -> Iterator[pa.Table]:
        with open_csv(shard.path, open, shard.original) as csv_file:
            header = csv_file.header
            if header is None:
                return
            text_columns = [name for name in CSV_TEXT_COLUMNS if name in header]
            if "video_id" not in header or len(text_columns) > 1 or len(set(header)) != len(header):
                reason = f"CSV header {header} is not an MSR-VTT split header (video_id and at most one of sentence/sentences)"
                file_failure(shard.original, reason, policy, self.config.on_error, ",".join(header).encode("utf-8"))
                return
            text_column = text_columns[0] if text_columns else None

            def convert(cells) -> dict:
                cells = check_cells(cells, header)
                if not cells["video_id"]:
                    raise ValueError("empty 'video_id' cell")
                other = {key: value for key, value in cells.items() if key not in ("video_id", text_column)}
                return row(cells["video_id"], cells.get(text_column), other, layout="csv")

            constants = dict(constants, csv_header=header)
            yield from rows_to_tables(self.info.features, constants, csv_source_records(csv_file), convert, policy, shard.original)

    def _official_tables(self, shard, policy, constants, row) -> Iterator[pa.Table]:
        document = _official_document(shard.path)
        videos, sentences = document.get("videos"), document["sentences"]
        if not isinstance(videos, list) or not isinstance(sentences, list):
            file_failure(shard.original, "'videos' and 'sentences' must be lists", policy, self.config.on_error)
            return
        file_extra = {key: value for key, value in document.items() if key not in ("videos", "sentences")} or None
        by_id = {}
        for position, video in enumerate(videos):
            if isinstance(video, dict) and isinstance(video.get("video_id"), str):
                by_id.setdefault(video["video_id"], position)
        described = {by_id[s.get("video_id")] for s in sentences if isinstance(s, dict) and s.get("video_id") in by_id}

        def convert(item) -> dict:
            kind, position, value = item
            if kind == "video":
                video_position, video, sentence_position, sentence = position, value, None, None
            else:
                if not isinstance(value, dict):
                    raise ValueError(f"sentence {position} must be a JSON object, got {type(value).__name__}")
                video_id = _check_string(value, "video_id", f"sentence {position}")
                _check_string(value, "caption", f"sentence {position}")
                if video_id not in by_id:
                    raise ValueError(f"sentence {position} names video {video_id!r}, which is not in 'videos'")
                video_position, sentence_position, sentence = by_id[video_id], position, value
                video = videos[video_position]
            if not isinstance(video, dict):
                raise ValueError(f"video {video_position} must be a JSON object, got {type(video).__name__}")
            video_id = _check_string(video, "video_id", f"video {video_position}")
            other = {key: val for key, val in video.items() if key != "video_id"}
            sentence_extra = None
            if sentence is not None:
                sentence_extra = {key: val for key, val in sentence.items() if key not in ("video_id", "caption")} or None
            return row(
                video_id,
                None if sentence is None else sentence["caption"],
                other,
                layout="official",
                video_index=video_position,
                sentence_index=sentence_position,
                sentence_extra=sentence_extra,
                file_extra=file_extra,
            )

        def items() -> Iterator[SourceRecord]:
            for position, sentence in enumerate(sentences):
                yield SourceRecord(position, None, ("sentence", position, sentence), functools.partial(orjson.dumps, sentence))
            for position, video in enumerate(videos):
                # A video no sentence describes still gets a row, so export writes it back.
                if position not in described:
                    yield SourceRecord(len(sentences) + position, None, ("video", position, video), functools.partial(orjson.dumps, video))

        yield from rows_to_tables(self.info.features, constants, items(), convert, policy, shard.original)


class MsrvttExporter(CsvCaptionExporter):
    """DJ row -> MSR-VTT, in the layout of the output suffix: ``.jsonl`` (one caption per record,
    the video's fields beside it), ``.csv`` (the row's CSV header, or ``video_id,sentence``) or
    ``.json`` (the official document: videos in their original order, each once, then the
    sentences in theirs). The caption is cut back out of ``text`` (edits kept)."""

    suffixes = (".jsonl", ".json", ".csv")
    _suffix = ".jsonl"

    def _caption(self, row: dict) -> str:
        self.video(row)
        if row.get("video_id") is None:
            raise ValueError("row has no 'video_id'")
        return self.caption(row)

    def row_to_record(self, row: dict):
        caption = self._caption(row)
        if self._suffix == ".csv":
            header = row.get("csv_header") or ["video_id", "sentence"]
            text_column = next((name for name in CSV_TEXT_COLUMNS if name in header), None)
            if text_column is None and caption:
                raise ValueError(f"the CSV header {header} has no sentence column for the caption {caption!r}")
            known = {"video_id": row["video_id"]}
            if text_column is not None:
                known[text_column] = caption
            return header, self.cells(header, known, row.get("extra") or {})
        if row.get("layout") == "official" and row.get("sentence_index") is None:
            raise ValueError("row is an official-layout video without a sentence: it has no JSON-lines record")
        return {"video_id": row["video_id"], "caption": caption, **(row.get("extra") or {}), **(row.get("sentence_extra") or {})}

    def write(self, rows, handle, suffix: str, policy: ErrorPolicy, source: str, progress) -> int:
        self._suffix = suffix
        if suffix != ".json":
            return super().write(rows, handle, suffix, policy, source, progress)
        videos, sentences, file_extra = {}, [], None

        def collect(row: dict) -> None:
            nonlocal file_extra
            caption = self._caption(row)
            row_file_extra = row.get("file_extra")
            if file_extra is None:
                file_extra = row_file_extra
            elif row_file_extra is not None and row_file_extra != file_extra:
                raise ValueError("row comes from an MSR-VTT document with other top-level fields than the first row's")
            # Videos in their source order; rows of other layouts after them, as they come.
            order = (0, row["video_index"]) if row.get("video_index") is not None else (1, len(videos))
            key = ("index", row["video_index"]) if row.get("video_index") is not None else ("id", row["video_id"])
            videos.setdefault(key, (order, {"video_id": row["video_id"], **(row.get("extra") or {})}))
            if row.get("layout") != "official" or row.get("sentence_index") is not None:
                order = row.get("sentence_index")
                sentence = {"caption": caption, "video_id": row["video_id"], **(row.get("sentence_extra") or {})}
                sentences.append((len(sentences) if order is None else order, sentence))

        written = sum(1 for _ in self.records(rows, policy, source, progress, collect))
        document = dict(file_extra or {})
        document["videos"] = [video for _, video in sorted(videos.values(), key=lambda item: item[0])]
        document["sentences"] = [sentence for _, sentence in sorted(sentences, key=lambda item: item[0])]
        style = self.style_for(suffix)
        compact = orjson.dumps(document)
        handle.write(compact if style == DEFAULT_STYLE[suffix] else StyledText(style).feed(compact))
        handle.write(style.newline.encode() if style.final_newline else b"")
        return written


EXPORTER = MsrvttExporter
