"""Oasis (MM_INF synthesis pipeline) records: config, builder and exporter.

Two record shapes, one file may mix them::

    input   {"instruction": "Where is this scene?", "response": "In a classroom ...", "image": "./images/1.jpeg"}
    output  {"id": "oasis_00000001", "image": "./images/1.jpeg", "data_source": "oasis",
             "conversations": [{"from": "human", "value": "<image>\\nWhere ...?"}, {"from": "gpt", "value": "..."}]}

Output records are LLaVA records and get exactly the LLaVA DJ text (same options, see
:mod:`hf_mmbuilder.loading_scripts.llava`); ``data_source`` and other keys are kept in ``extra``.
An input record becomes the two-turn conversation ``human: <image>\\n + instruction`` /
``gpt: response`` (the LLaVA layout of a single-image question), remembered in ``extra`` under
``__oasis_layout__`` so the exporter writes ``instruction``/``response`` back.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hf_mmbuilder.formats.builder import ColumnBuffer, Shard
from hf_mmbuilder.errors import ErrorPolicy
from hf_mmbuilder.formats.records import KEY_ORDER_KEY, MalformedJSON, restore_key_order
from hf_mmbuilder.kernels import oasis_parse
from hf_mmbuilder.loading_scripts.llava import SOURCE_IMAGE_TOKEN, Llava, LlavaConfig, LlavaExporter

LAYOUT_KEY = "__oasis_layout__"
INSTRUCTION_LAYOUT = "instruction"
_PROMPT_PREFIX = SOURCE_IMAGE_TOKEN + "\n"
_INPUT_OWN_KEYS = ("instruction", "response", "id", "image", "video")


@dataclasses.dataclass
class OasisConfig(LlavaConfig):
    """Oasis options: those of LLaVA (``str_id``, ``split_chunk``, ``sent_separator`` ...)."""


def _as_conversation(record):
    """An input record as a LLaVA record carrying its layout; anything else unchanged."""
    if not isinstance(record, dict) or "conversations" in record or "instruction" not in record:
        return record
    instruction, response = record["instruction"], record.get("response")
    if not isinstance(instruction, str):
        raise ValueError(f"'instruction' must be a string, got {instruction!r:.100}")
    if not isinstance(response, str):
        raise ValueError("record has no 'response'" if "response" not in record else f"'response' must be a string, got {response!r:.100}")
    prompt = _PROMPT_PREFIX + instruction if "image" in record else instruction
    # In the LLaVA exporter's key order, so the LLaVA path remembers no order of its own.
    converted = {key: record[key] for key in ("id", "image", "video") if key in record}
    converted["conversations"] = [{"from": "human", "value": prompt}, {"from": "gpt", "value": response}]
    converted.update((key, value) for key, value in record.items() if key not in _INPUT_OWN_KEYS)
    converted[LAYOUT_KEY] = INSTRUCTION_LAYOUT
    # Export writes instruction, response, then the rest in that order; remember any other order.
    written = ["instruction", "response", *(key for key in converted if key not in ("conversations", LAYOUT_KEY))]
    if list(record) != written:
        converted[KEY_ORDER_KEY] = list(record)
    return converted


class Oasis(Llava):
    """``load_dataset("hf_mmbuilder/oasis", data_files=...)``: Oasis records to DJ rows."""

    BUILDER_CONFIG_CLASS = OasisConfig

    def _compiled_table(self, batch, shard: Shard) -> tuple[pa.Table, np.ndarray]:
        """The LLaVA parser's table of the batch's records rewritten as LLaVA records
        (:func:`hf_mmbuilder.kernels.oasis_parse.as_llava`); a record the rewrite leaves (an empty
        range) is ``FALLBACK`` there and comes back to :meth:`_python_rows` from the source bytes.
        Records holding a literal DJ token and bytes that are not UTF-8 are found in the source
        bytes and left to the careful path, as on the LLaVA path."""
        buf = np.frombuffer(batch.buffer, dtype=np.uint8)
        n = len(batch.offsets)
        out, starts, ends = np.empty(3 * len(buf) + 160 * n, np.uint8), np.empty(n, np.int64), np.empty(n, np.int64)
        oasis_parse.as_llava(buf, batch.offsets - batch.buffer_offset, batch.ends - batch.buffer_offset, out, starts, ends)
        # A view of the kernel's output, not a copy: the LLaVA parser only reads it.
        rewritten = dataclasses.replace(batch, offsets=starts, ends=ends, buffer=memoryview(out[: int(ends.max(initial=0))]), buffer_offset=0)
        # As the LLaVA path does, on the source bytes (the rewritten ranges are not in file order).
        careful = batch.holding(self._literal_tokens)
        try:
            return self._parsed_table(rewritten, shard, careful)
        except pa.ArrowInvalid:
            return self._parsed_table(rewritten, shard, np.union1d(careful, batch.invalid_utf8()))

    def _python_rows(self, batch, positions, buffer: ColumnBuffer, shard: Shard, policy: ErrorPolicy, rng) -> list:
        # A record that cannot be converted is handed on as _Invalid, so the LLaVA careful path
        # reports it per on_error like any other bad record.
        records = list(batch.records) if batch.records is not None else [None] * len(batch.indexes)
        for k in positions:
            record = batch.records[k] if batch.records is not None else batch.decode(k)
            if type(record) is not MalformedJSON:
                try:
                    record = _as_conversation(record)
                except ValueError as error:
                    record = _Invalid(str(error))
            records[k] = record
        return super()._python_rows(dataclasses.replace(batch, records=records), positions, buffer, shard, policy, rng)


class _Invalid(dict):
    """An input record that cannot be converted: the first key lookup of the LLaVA validation
    raises ``reason``."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def __contains__(self, key):
        raise ValueError(self.reason)


class OasisExporter(LlavaExporter):
    """DJ row -> Oasis record: the LLaVA record, turned back into ``instruction``/``response``
    for rows that were input records."""

    def encode_table(self, table: pa.Table, separator: bytes) -> Optional[tuple]:
        encoded = super().encode_table(table, separator)
        if encoded is None or "extra" not in table.column_names:
            return encoded
        data, offsets, fallback = encoded
        # The compiled exporter writes LLaVA records; input records are rebuilt by row_to_record.
        extra = table.column("extra").combine_chunks()
        storage = extra.storage if isinstance(extra, pa.ExtensionArray) else extra
        inputs = pc.match_substring(storage.cast(pa.string()), f'"{LAYOUT_KEY}"').fill_null(False)
        return data, offsets, fallback | inputs.to_numpy(zero_copy_only=False)

    def row_to_record(self, row: dict) -> dict:
        record = self._record(row)
        if record.pop(LAYOUT_KEY, None) != INSTRUCTION_LAYOUT:
            return restore_key_order(record, "conversations")
        turns = record.pop("conversations")
        if len(turns) != 2:
            raise ValueError(f"an instruction/response row must have 2 turns, has {len(turns)}")
        instruction = turns[0]["value"]
        if "image" in record:
            if not instruction.startswith(_PROMPT_PREFIX):
                raise ValueError(f"an instruction/response row with an image must start with {_PROMPT_PREFIX!r}")
            instruction = instruction[len(_PROMPT_PREFIX):]
        rebuilt = {"instruction": instruction, "response": turns[1]["value"]}
        rebuilt.update(record)
        return restore_key_order(rebuilt, "instruction")


EXPORTER = OasisExporter
