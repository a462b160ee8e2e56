"""LLaVA conversations: config, builder and exporter.

Source layout (a top-level JSON array in ``.json``, or JSON lines)::

    {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat ...?"},
                       {"from": "gpt", "value": "The bus ..."}]}

Variants handled: int or string ids; text-only records (no ``image``, often ``"model": ""``);
``image`` as a list (one ``<image>`` per entry); ``video`` records; the token anywhere in any turn;
any roles (``system`` ...); extra top-level keys (``data_source``, ``width`` ...) and extra per-turn
keys (``markdown``, ``text``); non-ASCII text.

DJ text, as Data-Juicer's ``llava_to_dj.py`` writes it: each turn becomes ``[[role]]: value``;
turns are joined by ``sent_separator``; with ``split_chunk`` each (human, robot) round ends with
`` <eoc>``; ``add_eoc_at_last`` appends `` <eoc>``. ``<image>``/``<video>`` in values become
``image_special_token``/``video_special_token`` (the canonical DJ tokens by default; pass
``image_special_token="<image>"`` for Data-Juicer's own output). Values are kept byte for byte,
so the exporter cuts the text back into turns at the role markers, using the ``roles`` column.

Round-trip columns: ``id`` (string; ``id_is_int`` remembers an int id), ``roles``,
``media_layout`` (which of ``image``/``video`` the record had, and whether as a list),
``turn_extras`` (extra keys per turn) and ``extra`` (extra top-level keys, ``model`` included, and
``__key_order__`` when the record's keys were in another order than ``id``, ``image``, ``video``,
``conversations``, others).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Iterator, NamedTuple, Optional

import msgspec
import numpy as np
import pyarrow as pa
from datasets import Json, List, Value

from hf_mmbuilder.arrow import string_buffers, string_list_buffers, string_lists_from_buffers, strings_from_buffers
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard, map_in_threads, parse_threads, rows_in_file_order
from hf_mmbuilder.errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError, raw_text
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.records import (
    KEY_ORDER_KEY,
    MalformedJSON,
    bracketed_token,
    check_no_dj_tokens,
    invalid_json,
    remember_key_order,
    restore_key_order,
)
from hf_mmbuilder.kernels import llava_export, llava_parse
from hf_mmbuilder.media import check_media_exists, media_missing
from hf_mmbuilder.schema import ROLE_FORMAT, split_role_turns

SOURCE_IMAGE_TOKEN = "<image>"
SOURCE_VIDEO_TOKEN = "<video>"
MEDIA_KEYS = ("image", "video")
_KNOWN_KEYS = {"id", "conversations", *MEDIA_KEYS}
# The order export writes a record's own keys in (its other keys follow, in their source order).
_WRITTEN_ORDER = ("id", *MEDIA_KEYS, "conversations")


@dataclasses.dataclass
class LlavaConfig(DJBuilderConfig):
    """LLaVA options, named and defaulted as in Data-Juicer's ``llava_to_dj.py`` (except the
    image token, which defaults to the canonical DJ token).

    - ``str_id``: ids become strings in ``id`` (an int id is remembered for export); ``False``
      keeps ids as JSON values (``id`` is then a ``Json`` column).
    - ``split_chunk``: end each (human, robot) round with the eoc token.
    - ``image_broadcast`` / ``image_broadcast_pos``: repeat the image token (and path) in every
      round, ``"before"``/``"after"``/``"random"``/``"follow"``; ``"random"`` uses ``seed``.
      Lossy: such rows export with the repeated images.
    - ``add_eoc_at_last``, ``sent_separator``: as in Data-Juicer.
    - ``only_keep_caption``: keep only ``image token + sep + answer`` per round (lossy; such rows
      cannot be exported back).
    """

    str_id: bool = True
    split_chunk: bool = False
    image_broadcast: bool = False
    image_broadcast_pos: str = "random"
    add_eoc_at_last: bool = True
    sent_separator: str = "\n"
    only_keep_caption: bool = False
    seed: int = 42

    def __post_init__(self):
        super().__post_init__()
        if self.image_broadcast and not self.split_chunk:
            raise ValueError("image_broadcast=True needs split_chunk=True (as in Data-Juicer)")
        if self.image_broadcast_pos not in ("random", "before", "after", "follow"):
            raise ValueError(f"image_broadcast_pos must be random, before, after or follow, got {self.image_broadcast_pos!r}")


class Parsed(NamedTuple):
    """A record reduced to what the DJ row needs, whichever path decoded it (``UNSET`` = absent)."""

    id: object
    image: object
    video: object
    roles: list
    values: list
    extra: Optional[dict]
    turn_extras: Optional[list]


class _RoleMarkers(dict):
    def __missing__(self, role: str) -> str:
        marker = self[role] = ROLE_FORMAT % role
        return marker


def _from_dict(record) -> Parsed:
    """Validate a record that did not fit the fast type and say exactly what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
    if "conversations" not in record:
        raise ValueError("record has no 'conversations'")
    conversations = record["conversations"]
    if not isinstance(conversations, list):
        raise ValueError(f"'conversations' must be a list, got {type(conversations).__name__}")
    record_id = record.get("id", msgspec.UNSET)
    if "id" in record and (isinstance(record_id, bool) or not isinstance(record_id, (int, str))):
        raise ValueError(f"'id' must be a string or an integer, got {record_id!r}")
    media = {}
    for key in MEDIA_KEYS:
        value = record.get(key, msgspec.UNSET)
        if value is not msgspec.UNSET and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise ValueError(f"'{key}' must be a path string or a list of path strings, got {value!r}")
        media[key] = value
    roles, values, turn_extras = [], [], []
    for position, turn in enumerate(conversations):
        if not isinstance(turn, dict):
            raise ValueError(f"turn {position} must be an object, got {type(turn).__name__}")
        if "from" not in turn:
            raise ValueError(f"turn {position} has no 'from'")
        if "value" not in turn:
            raise ValueError(f"turn {position} has no 'value'")
        if not isinstance(turn["from"], str):
            raise ValueError(f"turn {position}: 'from' must be a string, got {turn['from']!r}")
        if not isinstance(turn["value"], str):
            raise ValueError(f"turn {position}: 'value' must be a string, got {type(turn['value']).__name__} {turn['value']!r}")
        roles.append(turn["from"])
        values.append(turn["value"])
        extras = {key: value for key, value in turn.items() if key not in ("from", "value")}
        turn_extras.append(extras or None)
    extra = {key: value for key, value in record.items() if key not in _KNOWN_KEYS}
    if KEY_ORDER_KEY not in record:  # an Oasis input record carries its own
        keys = list(record)
        extra = remember_key_order(keys, [key for key in _WRITTEN_ORDER if key in record] + list(extra), extra)
    return Parsed(
        record_id,
        media["image"],
        media["video"],
        roles,
        values,
        extra or None,
        turn_extras if any(e is not None for e in turn_extras) else None,
    )


_LAYOUT_NAMES = ["", "image", "image[]", "video", "image,video", "image[],video", "video[]", "image,video[]", "image[],video[]"]


def _media_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _media_layout(image, video) -> str:
    """``"image"``, ``"image[]"`` (a list), ``"video"``, ``"image,video[]"`` ... or ``""``."""
    if video is msgspec.UNSET:
        if image is msgspec.UNSET:
            return ""
        return "image" if type(image) is str else "image[]"
    layout = "video" if type(video) is str else "video[]"
    if image is msgspec.UNSET:
        return layout
    return ("image," if type(image) is str else "image[],") + layout


class Llava(DJBuilder):
    """``load_dataset("hf_mmbuilder/llava", data_files=...)``: LLaVA JSON / JSON lines to DJ rows."""

    BUILDER_CONFIG_CLASS = LlavaConfig

    def _format_features(self) -> dict:
        return {
            "id": Value("string") if self.config.str_id else Json(),
            "id_is_int": Value("bool"),
            "roles": List(Value("string")),
            "media_layout": Value("string"),
            "turn_extras": Json(),
        }

    def _plan_file(self, shard_id, path, original, media_root):
        return self._plan_json_records(shard_id, path, original, media_root, open, scan_while_parsing=True)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        # The compiled parser covers every option except Data-Juicer's lossy corner modes.
        compiled = config.fast_path and config.str_id and not config.image_broadcast and not config.only_keep_caption
        buffer = ColumnBuffer(self.info.features, constants=self._constants(shard))
        rng = self.shard_rng(shard)
        # Records are decoded as dicts (never structs) on the careful path: a dict keeps the key order.
        batches = self._record_batches(shard, None, open, decode=not compiled)
        if not compiled:
            for batch in batches:
                self._python_rows(batch, range(len(batch.indexes)), buffer, shard, policy, rng)
                if len(buffer):
                    yield buffer.to_table()
            return
        for batch, (fast_table, status) in map_in_threads(lambda batch: self._compiled_table(batch, shard), batches, parse_threads()):
            if config.check_media:
                # A row with a missing file goes the careful way, which reports it per on_error.
                for row, (images, videos) in enumerate(zip(fast_table.column("images").to_pylist(), fast_table.column("videos").to_pylist())):
                    if any(media_missing(path, shard.media_root) for path in images + videos):
                        status[row] = llava_parse.FALLBACK
            fallback = np.flatnonzero(status)
            if fallback.size == 0:
                yield fast_table
                continue
            kept = set(self._python_rows(batch, fallback.tolist(), buffer, shard, policy, rng))
            yield from rows_in_file_order(fast_table, fallback.tolist(), kept, buffer.to_table())

    def _constants(self, shard: Shard) -> dict:
        return self.shard_constants(shard, ("audios",))

    def _python_rows(self, batch, positions, buffer: ColumnBuffer, shard: Shard, policy: ErrorPolicy, rng) -> list:
        """Convert the records at ``positions`` of ``batch`` on the careful path; returns the kept ones."""
        columns = buffer.columns
        errors_column = columns.get(ERRORS_COLUMN)
        kept = []
        for k in positions:
            record = batch.records[k] if batch.records is not None else batch.decode(k)
            try:
                if type(record) is MalformedJSON:
                    raise RecordError(shard.original, batch.indexes[k], record.reason, line=int(batch.lines[k]), byte=record.byte)
                else:
                    parsed = _from_dict(record)
                text, images, videos = self._dj_text(parsed, rng)
                if self.config.check_media:
                    check_media_exists(images + videos, shard.media_root)
                errors = None
            except (ValueError, OSError) as error:
                if not isinstance(error, RecordError):
                    error = RecordError(shard.original, batch.indexes[k], str(error), line=int(batch.lines[k]))
                if not policy.handle(error, batch.raw(k)):
                    continue
                errors = [error.reason]
                parsed = Parsed(msgspec.UNSET, msgspec.UNSET, msgspec.UNSET, [], [], {KEPT_RAW_KEY: raw_text(batch.raw(k))}, None)
                text, images, videos = "", [], []
            kept.append(k)
            record_id = parsed.id
            columns["text"].append(text)
            columns["images"].append(images)
            columns["videos"].append(videos)
            if record_id is msgspec.UNSET:
                columns["id"].append(None)
                columns["id_is_int"].append(False)
            else:
                columns["id"].append(str(record_id) if self.config.str_id else record_id)
                columns["id_is_int"].append(type(record_id) is int)
            columns["roles"].append(parsed.roles)
            columns["media_layout"].append(_media_layout(parsed.image, parsed.video))
            columns["turn_extras"].append(parsed.turn_extras)
            columns["extra"].append(parsed.extra)
            if errors_column is not None:
                errors_column.append(errors)
        return kept

    def _compiled_table(self, batch, shard: Shard) -> tuple[pa.Table, np.ndarray]:
        """Run the compiled parser on a raw batch; returns the table (placeholder rows where
        ``status`` is ``FALLBACK``) and the status per record.

        Records holding a literal DJ token are left to the careful path up front (the kernel
        refuses values nested too deep itself). Bytes that are not UTF-8 are found by the validation of the output strings (every
        byte of a record the kernel takes is copied into one): then the batch is parsed again,
        with its undecodable records left to the careful path, so clean input pays nothing.
        """
        careful = batch.holding(self._literal_tokens)
        try:
            return self._parsed_table(batch, shard, careful)
        except pa.ArrowInvalid:
            return self._parsed_table(batch, shard, np.union1d(careful, batch.invalid_utf8()))

    def _parsed_table(self, batch, shard: Shard, careful: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        config = self.config
        buf = np.frombuffer(batch.buffer, dtype=np.uint8)
        starts = batch.offsets - batch.buffer_offset
        ends = batch.ends - batch.buffer_offset
        n, size = len(starts), len(buf)
        encode = lambda value: np.frombuffer(value.encode(), dtype=np.uint8)  # noqa: E731
        suffix = encode(f" {config.eoc_special_token}" if config.add_eoc_at_last else "")
        between = encode(f" {config.eoc_special_token}" if config.split_chunk else "")
        separator = encode(config.sent_separator)
        image_token, video_token = encode(config.image_special_token), encode(config.video_special_token)
        token_growth = max(len(image_token), len(video_token), 7) / 7
        text = np.empty(int(size * token_growth) + n * (len(suffix) + 8) + 64, np.uint8)
        items = size // 2 + 2
        roles, role_offsets, turn_offsets = np.empty(size, np.uint8), np.empty(items, np.int32), np.empty(n + 1, np.int32)
        images, image_offsets, image_lists = np.empty(size, np.uint8), np.empty(items, np.int32), np.empty(n + 1, np.int32)
        videos, video_offsets, video_lists = np.empty(size, np.uint8), np.empty(items, np.int32), np.empty(n + 1, np.int32)
        ids, id_offsets, id_kind = np.empty(size, np.uint8), np.empty(n + 1, np.int32), np.empty(n, np.int8)
        # Extra keys, plus the key list of a reordered record (at most the record's bytes again).
        extra, extra_offsets = np.empty(2 * size + 24 * n, np.uint8), np.empty(n + 1, np.int32)
        text_offsets, layout, status = np.empty(n + 1, np.int32), np.empty(n, np.int8), np.empty(n, np.int8)
        if careful.size:
            # Empty ranges: the kernel writes nothing for them and flags them FALLBACK.
            ends = ends.copy()
            ends[careful.astype(np.int64)] = starts[careful.astype(np.int64)]
        llava_parse.parse_llava(
            buf, starts, ends, separator, image_token, video_token, between, suffix,
            text, text_offsets, roles, role_offsets, turn_offsets,
            images, image_offsets, image_lists, videos, video_offsets, video_lists,
            ids, id_offsets, id_kind, layout, extra, extra_offsets, status,
        )
        features = self.info.features
        extra_column = strings_from_buffers(extra_offsets, extra, valid=np.diff(extra_offsets) > 0)
        # The kernel copies unknown keys' values as they are: a value that is not JSON (NaN, a
        # stray comma) sends its record to the careful path, which reports it.
        status[invalid_json(extra_column)] = llava_parse.FALLBACK
        columns = {
            "text": strings_from_buffers(text_offsets, text),
            "images": string_lists_from_buffers(image_lists, image_offsets, images),
            "videos": string_lists_from_buffers(video_lists, video_offsets, videos),
            "id": strings_from_buffers(id_offsets, ids, valid=id_kind != 0),
            "id_is_int": pa.array(id_kind == 2),
            "roles": string_lists_from_buffers(turn_offsets, role_offsets, roles),
            "media_layout": pa.array(_LAYOUT_NAMES).take(pa.array(layout)),
            "turn_extras": pa.ExtensionArray.from_storage(pa.json_(), pa.nulls(n, pa.string())),
            "extra": pa.ExtensionArray.from_storage(pa.json_(), extra_column),
        }
        if ERRORS_COLUMN in features:
            columns[ERRORS_COLUMN] = pa.nulls(n, pa.list_(pa.string()))
        table = ColumnBuffer(features, constants=self._constants(shard)).table_with(columns, n)
        return table, status

    def _dj_text(self, parsed: Parsed, rng: random.Random) -> tuple[str, list, list]:
        """Build the DJ text and media lists of one record (Data-Juicer's layout, see module doc)."""
        config = self.config
        separator = config.sent_separator
        images = [] if parsed.image is msgspec.UNSET else _media_list(parsed.image)
        videos = [] if parsed.video is msgspec.UNSET else _media_list(parsed.video)
        roles, values = parsed.roles, parsed.values
        if config.image_broadcast and images:
            values, images = self._broadcast(values, images, rng)
        if config.only_keep_caption:
            text = separator.join([SOURCE_IMAGE_TOKEN + separator + values[i] for i in range(1, len(values), 2)])
        elif config.split_chunk:
            round_end = f" {config.eoc_special_token}" + separator
            text = round_end.join(
                separator.join(self._markers[roles[i]] + values[i] for i in range(start, min(start + 2, len(values))))
                for start in range(0, len(values), 2)
            )
        else:
            markers = self._markers
            text = separator.join([markers[role] + value for role, value in zip(roles, values)])
        if text.count("[[") > len(roles):
            self._check_unambiguous(roles, values)
        literal = self._literal_tokens
        for position, value in enumerate(values):
            check_no_dj_tokens(value, literal, f"turn {position}")
        # Counted on the whole text (one call per record): role markers cannot hold a media token.
        for paths, source_token, token, key in (
            (images, SOURCE_IMAGE_TOKEN, config.image_special_token, "image"),
            (videos, SOURCE_VIDEO_TOKEN, config.video_special_token, "video"),
        ):
            if paths:
                found = text.count(source_token)
                if found != len(paths) and not config.only_keep_caption:
                    raise ValueError(f"'{key}' names {len(paths)} file(s) but the conversation has {found} {source_token} token(s)")
                if token != source_token:
                    text = text.replace(source_token, token)
        if config.add_eoc_at_last:
            text += f" {config.eoc_special_token}"
        return text, images, videos

    @functools.cached_property
    def _markers(self) -> dict:
        return _RoleMarkers()

    @functools.cached_property
    def _literal_tokens(self) -> tuple:
        """The DJ tokens a source value may not hold: all four, except a media token spelled as
        the source's own tag (``image_special_token="<image>"``, Data-Juicer's parity mode)."""
        config = self.config
        tokens = (config.image_special_token, config.video_special_token, config.audio_special_token, config.eoc_special_token)
        return tuple(token for token in dict.fromkeys(tokens) if token not in (SOURCE_IMAGE_TOKEN, SOURCE_VIDEO_TOKEN))

    def _broadcast(self, values: list, images: list, rng: random.Random) -> tuple[list, list]:
        config = self.config
        token, separator = SOURCE_IMAGE_TOKEN, config.sent_separator
        values = list(values)
        first_before = values[0].startswith(token) if values else True
        broadcast_images = list(images)
        for position in range(2, len(values), 2):
            where = config.image_broadcast_pos
            if where == "random":
                where = "before" if rng.random() < 0.5 else "after"
            elif where == "follow":
                where = "before" if first_before else "after"
            values[position] = token + separator + values[position] if where == "before" else values[position] + separator + token
            broadcast_images.append(images[0])
        return values, broadcast_images

    def _check_unambiguous(self, roles: list, values: list) -> None:
        separator = self.config.sent_separator
        for position, value in enumerate(values):
            for role in roles:
                if separator + ROLE_FORMAT % role in value:
                    raise ValueError(
                        f"turn {position} contains the role marker {ROLE_FORMAT % role!r} after a separator; "
                        "the DJ text could not be cut back into turns (use another sent_separator)"
                    )


def _flags(array: pa.Array) -> np.ndarray:
    """uint8 per row: 1 where a bool array is true (null counts as false)."""
    return array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)


def _valid(array: pa.Array) -> np.ndarray:
    return array.is_valid().to_numpy(zero_copy_only=False).astype(np.uint8)


class LlavaExporter(RowExporter):
    """DJ row -> LLaVA record: cuts ``text`` back into turns at the role markers of ``roles``,
    restores ``<image>``/``<video>``, the id type, the media fields and every extra key.

    Whole Arrow batches go through :func:`hf_mmbuilder.kernels.llava_export.export_llava`; the rows
    it leaves (per-turn extras, load errors, anything unusual) come here one by one.
    """

    suffixes = (".json", ".jsonl")
    _STRING, _STRINGS = pa.string(), pa.list_(pa.string())

    def encode_table(self, table: pa.Table, separator: bytes) -> Optional[tuple]:
        config = self.options
        types = {"text": self._STRING, "roles": self._STRINGS, "images": self._STRINGS, "videos": self._STRINGS,
                 "id": self._STRING, "id_is_int": pa.bool_(), "media_layout": self._STRING}
        tokens = (config.image_special_token, SOURCE_IMAGE_TOKEN, config.video_special_token, SOURCE_VIDEO_TOKEN)
        if (
            config.split_chunk or config.only_keep_caption
            or any(name not in table.column_names or table.schema.field(name).type != kind for name, kind in types.items())
            or not all(bracketed_token(token) for token in tokens)
            or set(tokens[:2]) & set(tokens[2:])
        ):
            return None
        columns = {name: table.column(name).combine_chunks() for name in table.column_names}
        n = table.num_rows
        careful = np.zeros(n, np.uint8)
        for name in ("text", "roles", "images", "videos"):
            careful |= 1 - _valid(columns[name])
        for name in ("turn_extras", ERRORS_COLUMN):
            if name in columns:
                careful |= _valid(columns[name])
        extra = columns.get("extra")
        if extra is None:
            extra_offsets, extra_data, extra_valid = np.zeros(n + 1, np.int32), np.zeros(0, np.uint8), np.zeros(n, np.uint8)
        else:
            storage = extra.storage if isinstance(extra, pa.ExtensionArray) else extra
            if storage.type != self._STRING:
                return None
            extra_offsets, extra_data = string_buffers(storage)
            extra_valid = _valid(storage)
        layouts = columns["media_layout"].fill_null("").dictionary_encode()
        names = layouts.dictionary.to_pylist()
        codes = layouts.indices.to_numpy(zero_copy_only=False)
        layout_flags = np.array(
            [[key in name, f"{key}[]" in name.split(",")] for name in names for key in ("image", "video")], np.uint8
        ).reshape(len(names), 4)[codes] if names else np.zeros((n, 4), np.uint8)
        text_offsets, text = string_buffers(columns["text"])
        roles = string_list_buffers(columns["roles"])
        images = string_list_buffers(columns["images"])
        videos = string_list_buffers(columns["videos"])
        id_offsets, ids = string_buffers(columns["id"])
        encode = lambda value: np.frombuffer(value.encode(), np.uint8)  # noqa: E731
        eoc_suffix = encode(f" {config.eoc_special_token}" if config.add_eoc_at_last else "")
        growth = max(0, len(SOURCE_IMAGE_TOKEN) - len(config.image_special_token)) + max(0, len(SOURCE_VIDEO_TOKEN) - len(config.video_special_token))
        size = llava_export.output_bound(
            n, int(text_offsets[-1] - text_offsets[0]), int(roles[1][roles[0][-1]] - roles[1][roles[0][0]]),
            int(images[1][images[0][-1]] - images[1][images[0][0]] + videos[1][videos[0][-1]] - videos[1][videos[0][0]]),
            int(id_offsets[-1] - id_offsets[0]), int(extra_offsets[-1] - extra_offsets[0]),
            int(roles[0][-1] - roles[0][0]), int(images[0][-1] - images[0][0] + videos[0][-1] - videos[0][0]),
            len(separator), growth * int(text_offsets[-1] - text_offsets[0]),
        )
        out, row_offsets, status = np.empty(size, np.uint8), np.empty(n + 1, np.int64), np.empty(n, np.int8)
        llava_export.export_llava(
            text_offsets, text, *roles, *images, *videos,
            id_offsets, ids, _valid(columns["id"]), _flags(columns["id_is_int"]),
            np.ascontiguousarray(layout_flags[:, 0]), np.ascontiguousarray(layout_flags[:, 1]),
            np.ascontiguousarray(layout_flags[:, 2]), np.ascontiguousarray(layout_flags[:, 3]),
            extra_offsets, extra_data, extra_valid, careful,
            encode(config.sent_separator), eoc_suffix, *(encode(token) for token in tokens[::2]),
            encode(SOURCE_IMAGE_TOKEN), encode(SOURCE_VIDEO_TOKEN),
            np.frombuffer(separator, np.uint8), out, row_offsets, status,
        )
        return out, row_offsets, status == llava_export.FALLBACK

    def row_to_record(self, row: dict) -> dict:
        return restore_key_order(self._record(row), "conversations")

    def _record(self, row: dict) -> dict:
        """The record in the exporter's key order (``id``, media, ``conversations``, other keys)."""
        config = self.options
        extra = row.get("extra") or {}
        roles = row.get("roles") or []
        values = self._split_turns(row["text"] or "", roles)
        media = {}
        layout = row.get("media_layout") or ""
        for column, key, source_token, token in (
            ("images", "image", SOURCE_IMAGE_TOKEN, config.image_special_token),
            ("videos", "video", SOURCE_VIDEO_TOKEN, config.video_special_token),
        ):
            paths = row.get(column) or []
            found = sum(value.count(token) for value in values) if paths or key in layout else 0
            if found != len(paths):
                raise ValueError(f"text has {found} {token} token(s) but {column} has {len(paths)} path(s)")
            for path in paths:
                self.check_media_path(path, row.get("media_root"))
            # A list field stays a list, even empty: "image": [] and no "image" are different records.
            as_list = f"{key}[]" in layout.split(",") or len(paths) > 1
            if paths or as_list:
                if token != source_token:
                    values = [value.replace(token, source_token) for value in values]
                media[key] = list(paths) if as_list else paths[0]
        record = {}
        if row.get("id") is not None:
            record["id"] = int(row["id"]) if row.get("id_is_int") and isinstance(row["id"], str) else row["id"]
        record.update(media)
        turn_extras = row.get("turn_extras") or [None] * len(roles)
        record["conversations"] = [
            {"from": role, "value": value, **(turn_extra or {})} for role, value, turn_extra in zip(roles, values, turn_extras)
        ]
        record.update(extra)
        return record

    def _split_turns(self, text: str, roles: list) -> list:
        config = self.options
        if config.only_keep_caption:
            raise ValueError("rows loaded with only_keep_caption=True have no turns to export")
        eoc_suffix = f" {config.eoc_special_token}"
        separator = config.sent_separator
        if config.add_eoc_at_last and text.endswith(eoc_suffix):
            text = text[: -len(eoc_suffix)]
        if config.split_chunk:
            text = text.replace(eoc_suffix + separator, separator)
        return split_role_turns(text, roles, separator, "turn")


EXPORTER = LlavaExporter
