"""InternVid (JSON lines): config, builder and exporter, with optional clip cutting.

Source layout::

    {"YoutubeID": "qJrOyggIB-w", "Start_timestamp": "00:07:33.689", "End_timestamp": "00:07:51.085",
     "Caption": "a screen shot of heroes of the storm ...", "Aesthetic_Score": 4.29, "UMT_Score": 0.45}

The video is looked up in ``media_root`` (default: the data file's folder) as ``<YoutubeID>.<any
common video extension>``; when there is none the path is the bare id, as Data-Juicer writes it.
Without cutting (the default here; Data-Juicer's default is ``cut_videos=True``) the row points at
the whole video and the clip's timestamps travel with it (``start_timestamp``/``end_timestamp``,
``start_seconds``/``end_seconds``). With ``cut_videos=True`` each clip is cut out with PyAV (video
re-encoded frame-exactly, audio re-encoded to AAC, as Data-Juicer's ``cut_video_by_seconds``
does) into ``cut_video_store_path`` (default: beside the source video) under a portable name,
``<id>_<start>_<end><ext>`` with ``:`` written as ``-``; the row then points at the clip. A clip
that cannot be cut is a bad record (``on_error``), where Data-Juicer drops it silently.

DJ text, as Data-Juicer's ``internvid_to_dj.py`` writes it: ``<video> caption <eoc>`` (see
:mod:`hf_mmbuilder.formats.captioned`). Round-trip columns: ``youtube_id``, the timestamps as written,
``is_cut`` (Data-Juicer's field) and ``extra`` (scores and any other key).
"""

from __future__ import annotations

import dataclasses
import fractions
import importlib.util
import os
import re
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Value

from hf_mmbuilder.arrow import string_buffers
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
    single_media,
    wrap_caption,
    wrapped_captions,
)
from hf_mmbuilder.formats.columns import json_fast_tables, one_path_lists
from hf_mmbuilder.formats.failures import guarded_tables, plan_json_file
from hf_mmbuilder.media import check_media_exists, resolve_media_path


_TIMECODE = re.compile(r"(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)")
# _TIMECODE for a whole column (RE2: ASCII digits only, so a timestamp with other Unicode digits,
# which Python's pattern accepts, is left to the record-by-record path).
_TIMECODE_FIELDS = r"^(?P<hours>[0-9]{1,15}):(?P<minutes>[0-5]?[0-9]):(?P<seconds>[0-5]?[0-9](?:\.[0-9]+)?)$"
_REQUIRED = ("YoutubeID", "Start_timestamp", "End_timestamp", "Caption")
SPEC = FieldSpec(tuple((key, STRING) for key in _REQUIRED))


@dataclasses.dataclass
class InternvidConfig(CaptionConfig):
    """InternVid options: Data-Juicer's caption options (:class:`CaptionConfig`), ``cut_videos``
    (cut each clip out of its video with PyAV; default ``False``) and ``cut_video_store_path``
    (folder for the clips; default: the source video's folder)."""

    cut_videos: bool = False
    cut_video_store_path: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        if self.cut_videos and importlib.util.find_spec("av") is None:
            raise ValueError("cut_videos=True needs PyAV: pip install av")


def timecode_seconds(timecode: str) -> float:
    """Seconds of an ``HH:MM:SS.fff`` timecode; ``ValueError`` for anything else.

    Example:
        >>> timecode_seconds("00:07:33.689")
        453.689
    """
    match = _TIMECODE.fullmatch(timecode)
    if match is None:
        raise ValueError(f"timestamp {timecode!r} is not HH:MM:SS.fff")
    hours, minutes, seconds = match.groups()
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 6)


def timecodes_seconds(timecodes: pa.Array) -> Optional[list]:
    """:func:`timecode_seconds` of a whole string array (a list of floats), or ``None`` when one
    is not a plain ASCII ``HH:MM:SS.fff`` (the caller then goes record by record). O(n).

    Example:
        >>> timecodes_seconds(pa.array(["00:07:33.689"]))
        [453.689]
    """
    seconds, plain = timecode_column(timecodes)
    return seconds.to_pylist() if plain.all() else None


def timecode_column(timecodes: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """:func:`timecode_seconds` of each value of a string array (0.0 where it is not a plain ASCII
    ``HH:MM:SS.fff``, which RE2 matches with ASCII digits only: Python's pattern takes other
    Unicode digits too) and the mask of the plain ones. O(n).

    Values written as InternVid writes them (``00:07:33.689``: two-digit hours, milliseconds) are
    read from their bytes (:func:`fixed_timecodes`); the others go through the pattern.

    Example:
        >>> seconds, plain = timecode_column(pa.array(["00:07:33.689", "7"]))
        >>> seconds.to_pylist(), plain.tolist()
        ([453.689, 0.0], [True, False])
    """
    seconds, fixed = fixed_timecodes(timecodes)
    if fixed.all():
        return pa.array(seconds), fixed
    others = np.flatnonzero(~fixed)
    other_seconds, other_plain = _pattern_timecodes(timecodes.take(pa.array(others)))
    seconds[others] = other_seconds
    plain = fixed.copy()
    plain[others] = other_plain
    return pa.array(seconds), plain


def fixed_timecodes(timecodes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Seconds (float64) of the values of a string array without nulls written ``HH:MM:SS.fff``
    (12 ASCII characters, minutes and seconds below 60), and the mask of those values (0.0
    elsewhere). The milliseconds are summed exactly (integers in float64), so ``ms / 1000`` is the
    double nearest the decimal, which is what :func:`timecode_seconds` rounds its sum to. O(n),
    no per-value Python.

    Example:
        >>> seconds, fixed = fixed_timecodes(pa.array(["00:07:33.689", "0:07:33.689", "00:60:00.000"]))
        >>> seconds.tolist(), fixed.tolist()
        ([453.689, 0.0, 0.0], [True, False, False])
    """
    offsets, data = string_buffers(timecodes)
    seconds = np.zeros(len(timecodes), np.float64)
    fixed = np.diff(offsets) == 12
    rows = np.flatnonzero(fixed)
    chars = data[offsets[rows][:, None] + np.arange(12)]
    # A byte below "0" wraps around to above 9.
    digits = chars[:, _DIGIT_COLUMNS] - np.uint8(ord("0"))
    fixed[rows] = ((digits <= 9).all(axis=1) & (chars[:, _SEPARATOR_COLUMNS] == _SEPARATORS).all(axis=1)
                   & (digits[:, 2] <= 5) & (digits[:, 4] <= 5))
    seconds[rows] = digits @ _DIGIT_MILLISECONDS / 1000
    seconds[~fixed] = 0.0
    return seconds, fixed


# HH:MM:SS.fff: where the digits and separators are, and each digit's weight in milliseconds.
_DIGIT_COLUMNS = np.array([0, 1, 3, 4, 6, 7, 9, 10, 11])
_DIGIT_MILLISECONDS = np.array([36_000_000, 3_600_000, 600_000, 60_000, 10_000, 1_000, 100, 10, 1], np.float64)
_SEPARATOR_COLUMNS = np.array([2, 5, 8])
_SEPARATORS = np.frombuffer(b"::.", np.uint8)


def _pattern_timecodes(timecodes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """:func:`timecode_column` of any string array by the pattern (seconds as float64, plain mask)."""
    fields = pc.extract_regex(timecodes, _TIMECODE_FIELDS)
    plain = np.asarray(fields.is_valid(), dtype=bool)

    def part(name: str, kind) -> np.ndarray:
        return pc.fill_null(pc.struct_field(fields, name), "0").cast(kind).to_numpy()

    hours, minutes, seconds = part("hours", pa.int64()), part("minutes", pa.int64()), part("seconds", pa.float64())
    # int + float in Python converts the (exact) int to float first: the same sum, then round().
    totals = (hours * 3600 + minutes * 60).astype(np.float64) + seconds
    return rounded(totals, 6), plain


def rounded(values: np.ndarray, digits: int) -> np.ndarray:
    """Python's ``round(value, digits)`` of each float, vectorised: ``rint(value * 10**digits) /
    10**digits`` is the double nearest the same decimal whenever ``value * 10**digits`` lies well
    within a half of an integer below 2**53 (both are then the correctly rounded quotient of that
    integer); the other values are rounded by Python. O(n).

    Example:
        >>> rounded(np.array([453.689, 0.1 + 0.2, 2.675, 1e300]), 2).tolist() == [round(v, 2) for v in (453.689, 0.1 + 0.2, 2.675, 1e300)]
        True
    """
    scale = 10.0**digits
    scaled = values * scale
    integers = np.rint(scaled)
    result = integers / scale
    with np.errstate(invalid="ignore"):
        unsure = np.flatnonzero(~((np.abs(scaled - integers) < 0.25) & (np.abs(scaled) < 2.0**52)))
    for k in unsure.tolist():
        result[k] = round(float(values[k]), digits)
    return result


def clip_name(video_path: str, start: str, end: str) -> str:
    """File name of a cut clip: ``<stem>_<start>_<end><ext>``, portable (``:`` becomes ``-``).

    Example:
        >>> clip_name("v/qJrOyggIB-w.mp4", "00:07:33.689", "00:07:51.085")
        'qJrOyggIB-w_00-07-33.689_00-07-51.085.mp4'
    """
    stem, extension = os.path.splitext(os.path.basename(video_path))
    return f"{stem}_{start}_{end}".replace(":", "-") + (extension or ".mp4")


def cut_clip(source: str, target: str, start: float, end: float) -> int:
    """Write the frames of ``source`` in ``[start, end)`` seconds to ``target`` (video re-encoded,
    H.264 for H.264 sources; audio re-encoded to AAC); atomic (temp file + rename). Returns the
    number of video frames written; ``ValueError`` when there are none or the file is unreadable.

    Complexity: decodes from the keyframe before ``start`` to ``end``.

    Example:
        >>> cut_clip("video1.mp4", "clip.mp4", 2.0, 5.5)  # doctest: +SKIP
        84
    """
    import av

    temporary = f"{target}.tmp-{os.getpid()}{os.path.splitext(target)[1]}"
    frames = 0
    try:
        with av.open(source) as reader:
            if not reader.streams.video:
                raise ValueError(f"{source} has no video stream")
            video_in = reader.streams.video[0]
            audio_in = reader.streams.audio[0] if reader.streams.audio else None
            with av.open(temporary, "w") as writer:
                rate = video_in.average_rate or video_in.base_rate or 25
                codec = "libx264" if video_in.codec_context.name == "h264" else video_in.codec_context.name
                video_out = writer.add_stream(codec, rate=rate)
                video_out.width, video_out.height = video_in.codec_context.width, video_in.codec_context.height
                video_out.pix_fmt = "yuv420p"
                audio_out = writer.add_stream("aac", rate=audio_in.codec_context.sample_rate) if audio_in is not None else None
                reader.seek(int(start * 1_000_000), backward=True)
                for frame in reader.decode(*([video_in] + ([audio_in] if audio_in is not None else []))):
                    if frame.time is None or frame.time < start:
                        continue
                    is_video = isinstance(frame, av.VideoFrame)
                    if frame.time >= end:
                        if is_video:
                            break
                        continue
                    if is_video:
                        frame = frame.reformat(format="yuv420p")
                        frame.pts, frame.time_base = frames, 1 / fractions.Fraction(rate)
                        frames += 1
                        writer.mux(video_out.encode(frame))
                    else:
                        frame.pts = None
                        writer.mux(audio_out.encode(frame))
                if frames == 0:
                    raise ValueError(f"{source} has no frame between {start} s and {end} s")
                writer.mux(video_out.encode())
                if audio_out is not None:
                    writer.mux(audio_out.encode())
        os.replace(temporary, target)
    except av.FFmpegError as error:
        raise ValueError(f"cannot cut {source}: {error}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return frames


def _check_record(record) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    for key in _REQUIRED:
        if key not in record:
            raise ValueError(f"record has no {key!r}")
        if not isinstance(record[key], str):
            raise ValueError(f"{key!r} must be a string, got {type(record[key]).__name__} {record[key]!r}")
    return record


class Internvid(CaptionedVideoBuilder):
    """``load_dataset("hf_mmbuilder/internvid", data_files=...)``: InternVid JSON lines to DJ rows."""

    BUILDER_CONFIG_CLASS = InternvidConfig

    def _format_features(self) -> dict:
        return {
            "youtube_id": Value("string"),
            "start_timestamp": Value("string"),
            "end_timestamp": Value("string"),
            "start_seconds": Value("float64"),
            "end_seconds": Value("float64"),
            "is_cut": Value("bool"),
        }

    def _plan_file(self, shard_id, path, original, media_root):
        return plan_json_file(self, shard_id, path, original, media_root, open)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        rng = self.shard_rng(shard)
        finder = self.video_finder(shard)
        token = config.video_special_token

        def convert(record) -> dict:
            record = _check_record(record)
            video_id = record["YoutubeID"]
            start, end = record["Start_timestamp"], record["End_timestamp"]
            start_seconds, end_seconds = timecode_seconds(start), timecode_seconds(end)
            if end_seconds <= start_seconds:
                raise ValueError(f"End_timestamp {end!r} is not after Start_timestamp {start!r}")
            path = finder.by_stem(video_id) or video_id
            if config.check_media or config.cut_videos:
                check_media_exists([path], shard.media_root)
            if config.cut_videos:
                source = resolve_media_path(path, shard.media_root)
                folder = config.cut_video_store_path or os.path.dirname(os.path.abspath(source))
                os.makedirs(folder, exist_ok=True)
                target = os.path.join(folder, clip_name(path, start, end))
                if not os.path.exists(target):
                    cut_clip(source, target, start_seconds, end_seconds)
                path = os.path.abspath(target)
            other = {key: value for key, value in record.items() if key not in _REQUIRED}
            return {
                "text": wrap_caption(record["Caption"], token, config, rng),
                "videos": [path],
                "youtube_id": video_id,
                "start_timestamp": start,
                "end_timestamp": end,
                "start_seconds": start_seconds,
                "end_seconds": end_seconds,
                "is_cut": config.cut_videos,
                "extra": (other or None) if config.keep_other_fields else None,
            }

        videos_type = self.info.features.arrow_schema.field("videos").type

        def build(parsed, batch) -> Optional[dict]:
            video_ids, starts, ends, captions = (parsed.fields[key] for key in _REQUIRED)
            start_seconds, start_plain = timecode_column(starts)
            end_seconds, end_plain = timecode_column(ends)
            # A timestamp that is not plain, a clip that ends before it starts, a caption holding a
            # DJ token: convert reports it.
            flag(parsed.status, ~(start_plain & end_plain) | ~np.asarray(pc.greater(end_seconds, start_seconds), dtype=bool)
                 | dj_token_rows(captions, config))
            text = wrapped_captions([captions], len(captions), token, config, rng, parsed.status)
            if text is None:
                return None
            return {
                "text": text,
                "videos": one_path_lists(paths_by_stem(finder, video_ids), videos_type),
                "youtube_id": video_ids,
                "start_timestamp": starts,
                "end_timestamp": ends,
                "start_seconds": start_seconds,
                "end_seconds": end_seconds,
                "is_cut": pa.array(np.zeros(len(captions), np.bool_)),
                "extra": extra_column(parsed, config),
            }

        constants = self.shard_constants(shard, ("images", "audios"))
        features = self.info.features
        if config.fast_path and not config.check_media and not config.cut_videos:
            tables = compiled_tables(shard_batches(shard, open), SPEC, build, batch_record, features, constants, convert, policy, shard.original)
        else:
            tables = json_fast_tables(shard, open, features, constants, None, convert, policy, shard.original)
        yield from guarded_tables(shard, policy, config.on_error, tables)


class InternvidExporter(CaptionExporter):
    """DJ row -> InternVid record: ``Caption`` cut back out of ``text`` (edits kept); the id and
    timestamps as written (a cut clip exports as the clip of its source video); every other key."""

    suffixes = (".jsonl", ".json")

    def row_to_record(self, row: dict) -> dict:
        config = self.options
        path = single_media(row, "videos", config.video_special_token)
        if not row.get("is_cut"):
            self.check_media_path(path, row.get("media_root"))
        for column in ("youtube_id", "start_timestamp", "end_timestamp"):
            if row.get(column) is None:
                raise ValueError(f"row has no {column!r}: an InternVid record needs it")
        record = {"YoutubeID": row["youtube_id"], "Start_timestamp": row["start_timestamp"], "End_timestamp": row["end_timestamp"]}
        record["Caption"] = self.caption(row)
        record.update(row.get("extra") or {})
        return record


EXPORTER = InternvidExporter
