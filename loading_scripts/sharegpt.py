"""ShareGPT-style ``messages`` records (LLaMA-Factory, ms-swift, OpenAI/Qwen content parts): config,
builder and exporter.

Source layouts, one builder (``style`` detected per record by default)::

    LLaMA-Factory  {"messages": [{"role": "user", "content": "<image>Who are they?"}, ...],
                    "images": ["1.jpg"], "videos": [...], "audios": [...]}
    ms-swift       the same, plus "tools" (a JSON string), "objects" (grounding), roles
                   "tool_call"/"tool_response", per-message keys such as "loss"
    OpenAI / Qwen  {"messages": [{"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "1.jpg", "detail": "high"}},
                        {"type": "image", "image": "2.jpg"}, {"type": "video", "video": "v.mp4"},
                        {"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "Compare."}]}]}

DJ text (no Data-Juicer converter exists for this format; the LLaVA layout is reused, so both
concatenate with one convention): each message becomes ``[[role]]: content``, messages joined by
``sent_separator``, `` <eoc>`` appended with ``add_eoc_at_last``. ``<image>``/``<video>``/``<audio>``
tags (glued to the text, anywhere, repeated) and media content parts become the DJ tokens; the
k-th image token is ``images[k]`` (top-level list or part, in conversation order).

Round-trip columns: ``roles``, ``style`` (``llamafactory``, ``swift`` or ``openai``),
``media_keys`` (top-level media keys present; ``=str`` marks a single path string),
``messages_layout`` (per message: extra keys, the original content parts, a null content, the key order
when it is not role, content, others; JSON text,
``Json(decode=False)``, so floats are never rounded) and ``extra`` (other top-level keys: ``id``,
``tools``, ``objects`` ...; ``__key_order__`` when the record's keys were in another order than
``messages``, media lists, others). Edits to ``text`` and dropped media are written back; a part list
whose media changed is rebuilt part by part.

Loading runs the compiled parser (:mod:`hf_mmbuilder.kernels.sharegpt_parse`) on raw batches of
records; a record it is not sure about, and every record when the tokens or key names are ones it
cannot bound (``fast_path=False`` too), is converted by ``_row``, which also writes every error.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterator, Optional

import numpy as np
import orjson
import pyarrow as pa
from datasets import Json, List, Value

from hf_mmbuilder.arrow import string_lists_from_buffers, strings_from_buffers
from hf_mmbuilder.formats.builder import ColumnBuffer, DJBuilder, DJBuilderConfig, Shard, map_in_threads, parse_threads, rows_in_file_order
from hf_mmbuilder.errors import ERRORS_COLUMN, KEPT_RAW_KEY, ErrorPolicy, RecordError, raw_text
from hf_mmbuilder.formats.exporter import RowExporter
from hf_mmbuilder.formats.records import MalformedJSON, bracketed_token, remember_key_order, restore_key_order
from hf_mmbuilder.kernels import sharegpt_parse
from hf_mmbuilder.media import check_media_exists, media_missing
from hf_mmbuilder.schema import ROLE_FORMAT, split_role_turns

STYLES = ("auto", "llamafactory", "swift", "openai")
MEDIA_COLUMNS = ("images", "videos", "audios")
SOURCE_TAGS = {"images": "<image>", "videos": "<video>", "audios": "<audio>"}
_SWIFT_KEYS = ("tools", "objects")
_SWIFT_ROLES = ("tool_call", "tool_response")
# Where the path sits in each media content part, and which media column it belongs to.
_PART_PATHS = {
    "image_url": ("images", ("image_url", "url")),
    "image": ("images", ("image",)),
    "video": ("videos", ("video",)),
    "audio": ("audios", ("audio",)),
    "input_audio": ("audios", ("input_audio", "data")),
}
# What a loaded role is, whichever tool named it: a turn of the user, the assistant, the system
# prompt, a tool's result or a tool call. A role not listed here is written as loaded.
ROLE_KINDS = {
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant",
    "system": "system",
    "tool": "tool", "observation": "tool", "tool_response": "tool",
    "tool_call": "tool_call", "function_call": "tool_call",
}
# The role each style writes per kind. LLaMA-Factory: the tags of its ``dataset_info.json``
# (observation and function_call are its default observation_tag / function_tag); ms-swift: its
# ``messages`` format and agent roles; OpenAI: chat roles. OpenAI has no role for a tool call (calls
# live in an assistant message's ``tool_calls``), so a tool_call turn keeps its role there.
STYLE_ROLES = {
    "llamafactory": {"user": "user", "assistant": "assistant", "system": "system", "tool": "observation", "tool_call": "function_call"},
    "swift": {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool_response", "tool_call": "tool_call"},
    "openai": {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool"},
}


@dataclasses.dataclass
class SharegptConfig(DJBuilderConfig):
    """ShareGPT options.

    - ``style``: ``"auto"`` (detected per record: content parts -> ``openai``; ``tools``/``objects``
      or tool roles -> ``swift``; else ``llamafactory``) or one of them. On export, ``"auto"``
      writes each row in its own style; a named style converts (string contents + top-level media
      lists, or content parts).
    - ``messages_key``, ``role_key``, ``content_key``: the record's key names.
    - ``role_map`` (export): the role to write, per loaded role name (``"gpt"``) or per kind of
      turn (``"user"``, ``"assistant"``, ``"system"``, ``"tool"`` for a tool's result,
      ``"tool_call"``); a name wins over its kind. Without an entry, a named ``style`` (or a row
      not loaded as ShareGPT) gets the style's roles (``STYLE_ROLES``: ``human``/``gpt`` become
      ``user``/``assistant``), and a ShareGPT row exported with ``style="auto"`` keeps its roles.
    - ``sent_separator``, ``add_eoc_at_last``: as for LLaVA.
    """

    style: str = "auto"
    messages_key: str = "messages"
    role_key: str = "role"
    content_key: str = "content"
    role_map: Optional[dict] = None
    sent_separator: str = "\n"
    add_eoc_at_last: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.role_map is not None and not (
            isinstance(self.role_map, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in self.role_map.items())
        ):
            raise ValueError(f"role_map must map role names or kinds to role names (strings), got {self.role_map!r:.200}")


def _path_in(part: dict, keys: tuple):
    value = part
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _with_path(part: dict, keys: tuple, path) -> dict:
    part = dict(part)
    if len(keys) == 1:
        part[keys[0]] = path
    else:
        part[keys[0]] = {**part[keys[0]], keys[1]: path}
    return part


def _part_path(part: dict):
    kind = part.get("type")
    if kind == "image_url" and isinstance(part.get("image_url"), str):
        return part["image_url"]
    return _path_in(part, _PART_PATHS[kind][1])


def _part_media(part: dict, position: int, index: int) -> Optional[tuple]:
    """``(column, path keys)`` of a media part, ``None`` for a text part; raises for anything else."""
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise ValueError(f"message {index} part {position}: a text part needs a string 'text'")
        return None
    if kind not in _PART_PATHS:
        raise ValueError(f"message {index} part {position}: unsupported content part type {kind!r}")
    column, keys = _PART_PATHS[kind]
    if kind == "image_url" and isinstance(part.get("image_url"), str):
        keys = ("image_url",)
    if not isinstance(_path_in(part, keys), str):
        raise ValueError(f"message {index} part {position}: {kind!r} part needs a path string at {'.'.join(keys)}")
    return column, keys


_STYLE_NAMES = pa.array(STYLES[1:])
# media_keys per kernel code (sharegpt_parse.MEDIA_*: images + 3 * videos + 9 * audios).
_MEDIA_KEY_LISTS = pa.array(
    [[column + ("=str" if kind == sharegpt_parse.MEDIA_STRING else "") for column, kind in zip(MEDIA_COLUMNS, (code % 3, code // 3 % 3, code // 9)) if kind]
     for code in range(27)],
    pa.list_(pa.string()),
)


class Sharegpt(DJBuilder):
    """``load_dataset("hf_mmbuilder/sharegpt", data_files=...)``: ``messages`` records to DJ rows."""

    BUILDER_CONFIG_CLASS = SharegptConfig

    def _format_features(self) -> dict:
        return {
            "roles": List(Value("string")),
            "style": Value("string"),
            "media_keys": List(Value("string")),
            "messages_layout": Json(decode=False),
        }

    def _plan_file(self, shard_id, path, original, media_root):
        return self._plan_json_records(shard_id, path, original, media_root, open, scan_while_parsing=True)

    def _shard_tables(self, shard: Shard, policy: ErrorPolicy) -> Iterator[pa.Table]:
        config = self.config
        compiled = config.fast_path and self._compiled_tokens is not None
        buffer = ColumnBuffer(self.info.features, constants=self.shard_constants(shard))
        # The careful rows' messages_layout values, beside the buffer (written as orjson text).
        layouts = []
        batches = self._record_batches(shard, None, open, decode=not compiled)
        if not compiled:
            for batch in batches:
                self._python_rows(batch, range(len(batch.indexes)), buffer, layouts, shard, policy)
                if len(buffer):
                    yield self._buffered_table(buffer, layouts)
            return
        for batch, (fast_table, status) in map_in_threads(lambda batch: self._compiled_table(batch, buffer), batches, parse_threads()):
            if config.check_media:
                # A row with a missing file goes the careful way, which reports it per on_error.
                rows = zip(*(fast_table.column(column).to_pylist() for column in MEDIA_COLUMNS))
                for row, lists in enumerate(rows):
                    if any(media_missing(path, shard.media_root) for paths in lists for path in paths):
                        status[row] = sharegpt_parse.FALLBACK
            fallback = np.flatnonzero(status)
            if fallback.size == 0:
                yield fast_table
                continue
            kept = set(self._python_rows(batch, fallback.tolist(), buffer, layouts, shard, policy))
            yield from rows_in_file_order(fast_table, fallback.tolist(), kept, self._buffered_table(buffer, layouts) if kept else None)

    def _python_rows(self, batch, positions, buffer: ColumnBuffer, layouts: list, shard: Shard, policy: ErrorPolicy) -> list:
        """Convert the records at ``positions`` of ``batch`` on the careful path into ``buffer``
        (their ``messages_layout`` values into ``layouts``); returns the kept positions."""
        kept = []
        for k in positions:
            record = batch.records[k] if batch.records is not None else batch.decode(k)
            try:
                if isinstance(record, MalformedJSON):
                    raise RecordError(shard.original, batch.indexes[k], record.reason, line=int(batch.lines[k]), byte=record.byte)
                row = self._row(record, shard)
            except ValueError as error:
                if not isinstance(error, RecordError):
                    error = RecordError(shard.original, batch.indexes[k], str(error), line=int(batch.lines[k]))
                if not policy.handle(error, batch.raw(k)):
                    continue
                row = {"text": "", "images": [], "videos": [], "audios": [], "roles": [], "style": None, "media_keys": [],
                       "messages_layout": None, "extra": {KEPT_RAW_KEY: raw_text(batch.raw(k))}, ERRORS_COLUMN: [error.reason]}
            kept.append(k)
            layouts.append(row.pop("messages_layout"))
            for name, value in row.items():
                buffer.columns[name].append(value)
        return kept

    def _buffered_table(self, buffer: ColumnBuffer, layouts: list) -> pa.Table:
        """The careful rows of ``buffer`` as a table (both are emptied); ``messages_layout`` is
        JSON text as orjson writes it (a ``Json(decode=False)`` column keeps its text)."""
        buffer.columns["messages_layout"] = [None] * len(layouts)
        table = buffer.to_table()
        position = table.schema.get_field_index("messages_layout")
        storage = pa.array([None if layout is None else orjson.dumps(layout).decode() for layout in layouts], pa.string())
        layouts.clear()
        return table.set_column(position, table.schema.field(position), pa.ExtensionArray.from_storage(table.schema.field(position).type, storage))

    @functools.cached_property
    def _compiled_tokens(self) -> Optional[tuple]:
        """The DJ tokens for the compiled parser, or ``None`` where it cannot be exact: each
        token must be ``<...>`` with no other ``<``/``>`` and not a source tag, so no occurrence
        of a token or a tag can straddle another."""
        config = self.config
        tokens = (config.image_special_token, config.video_special_token, config.audio_special_token, config.eoc_special_token)
        if not all(bracketed_token(token) and token not in SOURCE_TAGS.values() for token in tokens):
            return None
        # The kernel finds keys by their bytes as written: names JSON would escape, a messages
        # key that is also a media or ms-swift key, or one name for role and content take the
        # careful path.
        keys = (config.messages_key, config.role_key, config.content_key)
        if (
            config.messages_key in (*MEDIA_COLUMNS, *_SWIFT_KEYS) or config.role_key == config.content_key
            or not all(orjson.dumps(key)[1:-1] == key.encode() for key in keys)
        ):
            return None
        return tokens

    def _compiled_table(self, batch, buffer: ColumnBuffer) -> tuple[pa.Table, np.ndarray]:
        """Run the compiled parser on a raw batch; returns the table (placeholder rows where
        ``status`` is ``FALLBACK``) and the status per record. Bytes that are not UTF-8 are found
        by the validation of the output strings: then the batch is parsed again with its
        undecodable records left to the careful path, so clean input pays nothing."""
        try:
            return self._parsed_table(batch, buffer, np.zeros(0, np.int64))
        except pa.ArrowInvalid:
            return self._parsed_table(batch, buffer, batch.invalid_utf8())

    def _parsed_table(self, batch, buffer: ColumnBuffer, careful: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """The compiled parser's table of ``batch`` (``buffer`` gives the schema and the shard's
        constants; its rows are not touched) and the status per record."""
        config = self.config
        buf = np.frombuffer(batch.buffer, dtype=np.uint8)
        starts = batch.offsets - batch.buffer_offset
        ends = batch.ends - batch.buffer_offset
        if careful.size:
            # Empty ranges: the kernel writes nothing for them and flags them FALLBACK.
            ends = ends.copy()
            ends[careful] = starts[careful]
        n, size = len(starts), len(buf)
        encode = lambda value: np.frombuffer(value.encode(), dtype=np.uint8)  # noqa: E731
        tokens = self._compiled_tokens
        words = [encode(token) for token in tokens]
        dj_offsets = np.cumsum([0] + [len(word) for word in words]).astype(np.int64)
        separator, suffix = encode(config.sent_separator), encode(f" {config.eoc_special_token}" if config.add_eoc_at_last else "")
        # Bounds (see kernels/sharegpt_parse.py): a message of k source bytes writes at most
        # 2k + separator text bytes, a 7-byte tag a token; layouts hold parts, keys and orders.
        text = np.empty(int(size * (2 + max(len(word) for word in words) / 7 + len(separator))) + n * len(suffix) + 64, np.uint8)
        items = size // 2 + 2
        roles, role_offsets, role_lists = np.empty(size, np.uint8), np.empty(items, np.int32), np.empty(n + 1, np.int32)
        media = [(np.empty(size, np.uint8), np.empty(items, np.int32), np.empty(n + 1, np.int32)) for _ in MEDIA_COLUMNS]
        layout, layout_offsets = np.empty(4 * size + 64, np.uint8), np.empty(n + 1, np.int32)
        extra, extra_offsets = np.empty(2 * size + 32 * n + 64, np.uint8), np.empty(n + 1, np.int32)
        media_keys, style, status = np.empty(n, np.int8), np.empty(n, np.int8), np.empty(n, np.int8)
        forced = sharegpt_parse.STYLE_AUTO if config.style == "auto" else STYLES.index(config.style) - 1
        sharegpt_parse.parse_sharegpt(
            buf, starts, ends, encode(config.messages_key), encode(config.role_key), encode(config.content_key),
            separator, suffix, *words[:3], np.concatenate(words), dj_offsets, forced,
            text, text_offsets := np.empty(n + 1, np.int32), roles, role_offsets, role_lists,
            *media[0], *media[1], *media[2], media_keys, style, layout, layout_offsets, extra, extra_offsets, status,
        )
        layout_column = strings_from_buffers(layout_offsets, layout, valid=np.diff(layout_offsets) > 0)
        extra_column = strings_from_buffers(extra_offsets, extra, valid=np.diff(extra_offsets) > 0)
        columns = {
            "text": strings_from_buffers(text_offsets, text),
            **{column: string_lists_from_buffers(lists, offsets, data) for column, (data, offsets, lists) in zip(MEDIA_COLUMNS, media)},
            "roles": string_lists_from_buffers(role_lists, role_offsets, roles),
            "style": _STYLE_NAMES.take(pa.array(style)),
            "media_keys": _MEDIA_KEY_LISTS.take(pa.array(media_keys)),
            "messages_layout": pa.ExtensionArray.from_storage(buffer.schema.field("messages_layout").type, layout_column),
            "extra": pa.ExtensionArray.from_storage(pa.json_(), extra_column),
        }
        if ERRORS_COLUMN in self.info.features:
            columns[ERRORS_COLUMN] = pa.nulls(n, pa.list_(pa.string()))
        return buffer.table_with(columns, n), status

    def _row(self, record, shard: Shard) -> dict:
        config = self.config
        if not isinstance(record, dict):
            raise ValueError(f"a record must be a JSON object, got {type(record).__name__}")
        messages = record.get(config.messages_key)
        if messages is None:
            raise ValueError(f"record has no '{config.messages_key}'")
        if not isinstance(messages, list):
            raise ValueError(f"'{config.messages_key}' must be a list, got {type(messages).__name__}")
        top_media, media_keys = {}, []
        for column in MEDIA_COLUMNS:
            if column not in record:
                continue
            value = record[column]
            if isinstance(value, str):
                value, marker = [value], f"{column}=str"
            else:
                marker = column
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise ValueError(f"'{column}' must be a list of path strings, got {value!r:.200}")
            top_media[column] = value
            media_keys.append(marker)
        tokens = {"images": config.image_special_token, "videos": config.video_special_token, "audios": config.audio_special_token}
        used = {column: 0 for column in MEDIA_COLUMNS}
        media = {column: [] for column in MEDIA_COLUMNS}
        roles, values, layout = [], [], []
        part_media = False
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise ValueError(f"message {index} must be an object, got {type(message).__name__}")
            role, content = message.get(config.role_key), message.get(config.content_key, "")
            if not isinstance(role, str):
                raise ValueError(f"message {index}: '{config.role_key}' must be a string, got {role!r}")
            entry = {}
            extras = {key: value for key, value in message.items() if key not in (config.role_key, config.content_key)}
            if extras:
                entry["keys"] = extras
            if config.content_key not in message:
                entry["absent"] = True
            written = [config.role_key, *([config.content_key] if config.content_key in message else []), *extras]
            if list(message) != written:
                # LLaMA-Factory's own demo files write content before role: keep each message's key order.
                entry["order"] = list(message)
            if content is None:
                entry["null"] = True
                value = ""
            elif isinstance(content, str):
                self._check_no_dj_tokens(content, tokens, index)
                value = content
                for column, tag in SOURCE_TAGS.items():
                    count = content.count(tag)
                    if count:
                        value = value.replace(tag, tokens[column])
                        used[column] += count
                        if used[column] > len(top_media.get(column, ())):
                            raise ValueError(f"message {index}: more {tag} tags than '{column}' paths ({len(top_media.get(column, ()))})")
                        media[column].extend(top_media[column][used[column] - count: used[column]])
            elif isinstance(content, list):
                template, pieces = [], []
                for position, part in enumerate(content):
                    if not isinstance(part, dict):
                        raise ValueError(f"message {index} part {position} must be an object, got {type(part).__name__}")
                    found = _part_media(part, position, index)
                    if found is None:
                        self._check_no_dj_tokens(part["text"], tokens, index)
                        pieces.append(part["text"])
                        template.append(part)
                    else:
                        column, keys = found
                        media[column].append(_path_in(part, keys))
                        pieces.append(tokens[column])
                        template.append(part)
                        part_media = True
                entry["parts"] = template
                value = "".join(pieces)
            else:
                raise ValueError(f"message {index}: '{config.content_key}' must be a string, a list of parts or null, got {type(content).__name__}")
            roles.append(role)
            values.append(value)
            layout.append(entry or None)
        for column, paths in top_media.items():
            if used[column] != len(paths):
                raise ValueError(f"'{column}' names {len(paths)} file(s) but the messages have {used[column]} {SOURCE_TAGS[column]} tag(s)")
        if part_media and any(top_media.values()):
            raise ValueError("record has media both in content parts and in top-level lists")
        if config.check_media:
            for column in MEDIA_COLUMNS:
                check_media_exists(media[column], shard.media_root)
        text = config.sent_separator.join(ROLE_FORMAT % role + value for role, value in zip(roles, values))
        if text.count("[[") > len(roles):
            for index, value in enumerate(values):
                for role in roles:
                    if config.sent_separator + ROLE_FORMAT % role in value:
                        raise ValueError(
                            f"message {index} contains the role marker {ROLE_FORMAT % role!r} after a separator; "
                            "the DJ text could not be cut back into messages (use another sent_separator)"
                        )
        if config.add_eoc_at_last:
            text += f" {config.eoc_special_token}"
        style = config.style
        if style == "auto":
            if any(entry and "parts" in entry for entry in layout):
                style = "openai"
            elif any(key in record for key in _SWIFT_KEYS) or any(role in _SWIFT_ROLES for role in roles):
                style = "swift"
            else:
                style = "llamafactory"
        extra = {key: value for key, value in record.items() if key != config.messages_key and key not in MEDIA_COLUMNS}
        written = [config.messages_key, *(column for column in MEDIA_COLUMNS if column in record), *extra]
        extra = remember_key_order(list(record), written, extra)
        row = {
            "text": text,
            **media,
            "roles": roles,
            "style": style,
            "media_keys": media_keys,
            "messages_layout": layout if any(entry is not None for entry in layout) else None,
            "extra": extra or None,
        }
        if ERRORS_COLUMN in self.info.features:
            row[ERRORS_COLUMN] = None
        return row

    def _check_no_dj_tokens(self, content: str, tokens: dict, index: int) -> None:
        for token in (*tokens.values(), self.config.eoc_special_token):
            if token in content:
                raise ValueError(f"message {index} contains the DJ token {token!r}; the text could not be cut back (use other tokens)")


class SharegptExporter(RowExporter):
    """DJ row -> ``messages`` record in the row's style (or the ``style`` option): cuts ``text``
    back into messages at the role markers, turns DJ tokens back into tags or content parts, and
    restores media keys, per-message keys and top-level keys."""

    suffixes = (".json", ".jsonl")

    def row_to_record(self, row: dict) -> dict:
        config = self.options
        extra = row.get("extra") or {}
        roles = row.get("roles") or []
        values = self._split_messages(row["text"] or "", roles)
        layout = row.get("messages_layout")
        layout = orjson.loads(layout) if isinstance(layout, str) else (layout or [None] * len(roles))
        tokens = {"images": config.image_special_token, "videos": config.video_special_token, "audios": config.audio_special_token}
        token_column = {token: column for column, token in tokens.items()}
        token_pattern = re.compile("|".join(re.escape(token) for token in tokens.values()))
        media = {column: list(row.get(column) or []) for column in MEDIA_COLUMNS}
        for column, paths in media.items():
            found = sum(value.count(tokens[column]) for value in values)
            if found != len(paths):
                raise ValueError(f"text has {found} {tokens[column]} token(s) but {column} has {len(paths)} path(s)")
            for path in paths:
                self.check_media_path(path, row.get("media_root"))
        style = (row.get("style") or "llamafactory") if config.style == "auto" else config.style
        written_roles = self._written_roles(roles, style if config.style != "auto" or not row.get("style") else None)
        cursor = {column: 0 for column in MEDIA_COLUMNS}
        top_level = {column: [] for column in MEDIA_COLUMNS}
        messages = []
        for role, value, entry in zip(written_roles, values, layout):
            entry = entry or {}
            message = {config.role_key: role}
            parts = entry.get("parts") if style == "openai" else None
            if style == "openai" and (parts is not None or token_pattern.search(value)):
                content = self._parts(value, parts or [], token_pattern, token_column, media, cursor)
            else:
                content = value
                for match in token_pattern.finditer(value):
                    column = token_column[match.group()]
                    top_level[column].append(media[column][cursor[column]])
                    cursor[column] += 1
                for column, token in tokens.items():
                    content = content.replace(token, SOURCE_TAGS[column])
            if entry.get("null") and content in ("", []):
                content = None
            if not (entry.get("absent") and content in ("", [])):
                message[config.content_key] = content
            message.update(entry.get("keys") or {})
            if entry.get("order"):
                message = {key: message[key] for key in entry["order"] if key in message} | message
            messages.append(message)
        record = {config.messages_key: messages}
        keys = {marker.split("=")[0]: marker.endswith("=str") for marker in row.get("media_keys") or []}
        for column in MEDIA_COLUMNS:
            paths = top_level[column]
            if column in keys or paths:
                record[column] = paths[0] if keys.get(column) and len(paths) == 1 else paths
        record.update(extra)
        return restore_key_order(record, config.messages_key)

    def _written_roles(self, roles: list, style: Optional[str]) -> list:
        """The roles to write: ``role_map``'s entry for the name, else for its kind, else the
        style's role for the kind (``style`` is ``None`` where the loaded roles stay)."""
        role_map = self.options.role_map or {}
        defaults = STYLE_ROLES[style] if style else {}
        written = []
        for role in roles:
            kind = ROLE_KINDS.get(role)
            written.append(role_map.get(role) or role_map.get(kind) or defaults.get(kind, role))
        return written

    def _parts(self, value: str, template: list, token_pattern, token_column: dict, media: dict, cursor: dict) -> list:
        """Content parts for one message: the template's parts where the text between media is
        unchanged, rebuilt text parts where it was edited, current paths in the media parts."""
        segments = token_pattern.split(value)
        kinds = [token_column[match.group()] for match in token_pattern.finditer(value)]
        runs, media_parts, run = [], [], []
        for part in template:
            if part.get("type") == "text":
                run.append(part)
            else:
                runs.append(run)
                media_parts.append(part)
                run = []
        runs.append(run)
        same_media = [_PART_PATHS[part["type"]][0] for part in media_parts] == kinds
        unused = list(media_parts)
        parts = []
        for position, segment in enumerate(segments):
            run = runs[position] if same_media else []
            if run and "".join(part["text"] for part in run) == segment:
                parts.extend(run)
            elif segment:
                parts.append({**(run[0] if run else {"type": "text"}), "text": segment})
            if position < len(kinds):
                column = kinds[position]
                path = media[column][cursor[column]]
                cursor[column] += 1
                if same_media:
                    shape = media_parts[position]
                else:
                    # Media changed: the template part that held this very path, else one of its kind.
                    same_kind = [part for part in unused if _PART_PATHS[part["type"]][0] == column]
                    holding = [part for part in same_kind if _part_path(part) == path]
                    shape = (holding or same_kind or [{"type": {"images": "image", "videos": "video", "audios": "audio"}[column]}])[0]
                    if shape in unused:
                        unused.remove(shape)
                kind = shape["type"]
                keys = ("image_url",) if kind == "image_url" and not isinstance(shape.get("image_url"), dict) else _PART_PATHS[kind][1]
                parts.append(_with_path(shape, keys, path) if len(keys) == 1 or keys[0] in shape else {**shape, keys[0]: {keys[1]: path}})
        return parts

    def _split_messages(self, text: str, roles: list) -> list:
        config = self.options
        suffix = f" {config.eoc_special_token}"
        if config.add_eoc_at_last and text.endswith(suffix):
            text = text[: -len(suffix)]
        separator = config.sent_separator
        return split_role_turns(text, roles, separator, "message")


EXPORTER = SharegptExporter
