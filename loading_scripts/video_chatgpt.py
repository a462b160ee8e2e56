"""Video-ChatGPT (VideoInstruct-100K): config, builder and exporter.

Source layout (a JSON array, or JSON lines)::

    {"q": "What are the main activities ...?", "a": "The main activities ...", "video_id": "v_k_ZXmr8pmrs"}

``video_id`` is ``v_`` + a YouTube id that may itself contain ``_`` (``v_k_ZXmr8pmrs`` is the
video ``k_ZXmr8pmrs``). The video file is looked up in ``media_root`` (default: the data file's
folder) as ``<youtube id>.<any common video extension>``; when there is none the path is the bare
YouTube id, as Data-Juicer writes it (``os.path.join(<data folder>, youtube_id)``).

DJ text, as Data-Juicer's ``video_chatgpt_to_dj.py`` writes it: ``[[q]]:<q> \\n[[a]]:<a>`` with the
video token before it (``video_special_token_insert_pos``) and `` <eoc>`` after it, joined by
``sent_separator`` (a space). Round-trip columns: ``video_id`` (as written), ``youtube_id``
(Data-Juicer's field) and ``extra`` (any other key).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Value

from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.builder import Shard
from hf_mmbuilder.formats.captioned import (
    STRING,
    CaptionConfig,
    CaptionExporter,
    CaptionedVideoBuilder,
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
from hf_mmbuilder.formats.columns import json_fast_tables, one_path_lists
from hf_mmbuilder.formats.failures import guarded_tables, plan_json_file


QUESTION_MARKER = "[[q]]:"
ANSWER_MARKER = " \n[[a]]:"
_KNOWN_KEYS = ("q", "a", "video_id")
SPEC = FieldSpec(tuple((key, STRING) for key in _KNOWN_KEYS))


@dataclasses.dataclass
class VideoChatgptConfig(CaptionConfig):
    """Video-ChatGPT options: Data-Juicer's caption options (see :class:`CaptionConfig`)."""


def youtube_id(video_id: str) -> str:
    """The YouTube id inside a Video-ChatGPT ``video_id`` (the ``v_`` prefix removed; the id may
    contain ``_``).

    Example:
        >>> youtube_id("v_k_ZXmr8pmrs")
        'k_ZXmr8pmrs'
    """
    return video_id[2:] if video_id.startswith("v_") else video_id


def _check_record(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    for key in _KNOWN_KEYS:
        if key not in record:
            raise ValueError(f"record has no {key!r}")
        if not isinstance(record[key], str):
            raise ValueError(f"{key!r} must be a string, got {type(record[key]).__name__} {record[key]!r}")
    if ANSWER_MARKER in record["q"]:
        raise ValueError(f"'q' contains {ANSWER_MARKER!r}: the DJ text could not be cut back into q and a")
    return record


class VideoChatgpt(CaptionedVideoBuilder):
    """``load_dataset("hf_mmbuilder/video_chatgpt", data_files=...)``: VideoInstruct JSON to DJ rows."""

    BUILDER_CONFIG_CLASS = VideoChatgptConfig

    def _format_features(self) -> dict:
        return {"video_id": Value("string"), "youtube_id": Value("string")}

    def _plan_file(self, shard_id, path, original, media_root):
        return plan_json_file(self, shard_id, path, original, media_root, open)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        rng = self.shard_rng(shard)
        finder = self.video_finder(shard)
        token = config.video_special_token

        def convert(record) -> dict:
            record = _check_record(record)
            video = youtube_id(record["video_id"])
            path = self.video_path(finder, video, shard)
            text = wrap_caption(f"{QUESTION_MARKER}{record['q']}{ANSWER_MARKER}{record['a']}", token, config, rng)
            other = {key: value for key, value in record.items() if key not in _KNOWN_KEYS}
            return {
                "text": text,
                "videos": [path],
                "video_id": record["video_id"],
                "youtube_id": video,
                "extra": (other or None) if config.keep_other_fields else None,
            }

        videos_type = self.info.features.arrow_schema.field("videos").type

        def build(parsed, batch) -> Optional[dict]:
            questions, answers, video_ids = (parsed.fields[key] for key in _KNOWN_KEYS)
            captions = pc.binary_join_element_wise(QUESTION_MARKER, questions, ANSWER_MARKER, answers, "")
            # A question holding the answer marker could not be cut back, a caption holding a DJ
            # token would read as one: convert reports them.
            flag(parsed.status, np.asarray(pc.match_substring(questions, ANSWER_MARKER), dtype=bool) | dj_token_rows(captions, config))
            text = wrapped_captions([captions], len(questions), token, config, rng, parsed.status)
            if text is None:
                return None
            youtube_ids = pc.if_else(pc.starts_with(video_ids, "v_"), pc.utf8_slice_codeunits(video_ids, 2), video_ids)
            return {
                "text": text,
                "videos": one_path_lists(paths_by_stem(finder, youtube_ids), videos_type),
                "video_id": video_ids,
                "youtube_id": youtube_ids,
                "extra": extra_column(parsed, config),
            }

        constants = self.shard_constants(shard, ("images", "audios"))
        features = self.info.features
        if config.fast_path and not config.check_media:
            tables = compiled_tables(shard_batches(shard, open), SPEC, build, batch_record, features, constants, convert, policy, shard.original)
        else:
            tables = json_fast_tables(shard, open, features, constants, None, convert, policy, shard.original)
        yield from guarded_tables(shard, policy, config.on_error, tables)


class VideoChatgptExporter(CaptionExporter):
    """DJ row -> Video-ChatGPT record: ``q`` and ``a`` cut back out of ``text`` (edits kept), the
    ``video_id`` as written, every other key."""

    suffixes = (".json", ".jsonl")

    def row_to_record(self, row: dict) -> dict:
        path = self.video(row)
        body = self.caption(row)
        if not body.startswith(QUESTION_MARKER):
            raise ValueError(f"text does not start with {QUESTION_MARKER!r} after the video token")
        question, found, answer = body[len(QUESTION_MARKER) :].partition(ANSWER_MARKER)
        if not found:
            raise ValueError(f"text has no {ANSWER_MARKER!r} between question and answer")
        video_id = row.get("video_id")
        if video_id is None:
            video_id = "v_" + (row.get("youtube_id") or path)
        return {"q": question, "a": answer, "video_id": video_id, **(row.get("extra") or {})}


EXPORTER = VideoChatgptExporter
