"""Fast, bounded-memory reading of JSON records (a top-level array, or JSON lines).

A local file is read through memory maps (no copy into fresh memory). It is first cut into one
byte range per record by a compiled scan (:mod:`hf_mmbuilder.kernels.json_scan`); ranges are
grouped into shards for ``num_proc`` and into batches of a few MB that msgspec decodes straight
into typed structs (no ``dict`` per record, the garbage collector paused). A batch that does not
fit the fast type (an unknown key, a wrong type, malformed JSON) is decoded again record by
record: records that fit keep the fast type, the others come back as plain ``dict`` s for the
format's careful path, or as :class:`MalformedJSON` with the parser's reason. Python's ``json``
module is never used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import lzma
import mmap
import os
import queue
import re
import tarfile
import threading
import zipfile
import zlib
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets.utils.file_utils import xopen

from ..errors import RecordError
from ..kernels import json_scan

SCAN_CHUNK_BYTES = 64 << 20
# The first piece is smaller, doubling up to SCAN_CHUNK_BYTES: the parsers start on the first
# records while the rest of the file is still being scanned.
FIRST_SCAN_CHUNK_BYTES = 4 << 20
BATCH_BYTES = 4 << 20
BOM = b"\xef\xbb\xbf"
# A record nested deeper than this many arrays/objects is malformed (see json_scan.MAX_NESTING).
MAX_NESTING = json_scan.MAX_NESTING
TOO_DEEP = f"nested deeper than {MAX_NESTING} levels (the limit of hf_mmbuilder.formats.records.MAX_NESTING)"

_BYTE_IN_MESSAGE = re.compile(r"\(byte (\d+)\)")

# Key of ``extra`` holding a record's top-level key order, where export would otherwise write its
# keys in another order (the compiled LLaVA parser and exporter hold their own byte copy).
KEY_ORDER_KEY = "__key_order__"


def remember_key_order(keys: list, written: list, extra: Optional[dict]) -> Optional[dict]:
    """``extra``, plus the record's ``keys`` under :data:`KEY_ORDER_KEY` when the exporter, which
    writes ``written`` (the same keys in its own order), would reorder them.

    Example:
        >>> remember_key_order(["id", "image", "conversations"], ["id", "image", "conversations"], None) is None
        True
        >>> remember_key_order(["id", "model", "conversations"], ["id", "conversations", "model"], {"model": ""})
        {'model': '', '__key_order__': ['id', 'model', 'conversations']}
    """
    if keys == written:
        return extra
    return {**(extra or {}), KEY_ORDER_KEY: keys}


def restore_key_order(record: dict, anchor: str) -> dict:
    """``record`` without :data:`KEY_ORDER_KEY`, its keys in the remembered order when that order
    was remembered for this shape of record (it names ``anchor``, e.g. ``"conversations"``; a row
    exported to another format keeps that format's order). Keys the source did not have (added by
    an edit) follow.

    Example:
        >>> restore_key_order({"id": 1, "conversations": [], "model": "", "__key_order__": ["id", "model", "conversations"]}, "conversations")
        {'id': 1, 'model': '', 'conversations': []}
    """
    order = record.pop(KEY_ORDER_KEY, None)
    if not isinstance(order, list) or anchor not in order:
        return record
    ordered = {key: record[key] for key in order if isinstance(key, str) and key in record}
    ordered.update(record)
    return ordered


@dataclasses.dataclass
class RecordIndex:
    """Byte ranges of the records of one file.

    ``starts``/``ends`` are file offsets (int64, shape (n,)); ``lines`` the 1-based line each record
    starts on; ``layout`` is ``"array"`` (elements of a top-level array) or ``"lines"``. ``fault``
    is the layout error found after the last record (:func:`iter_batches` raises it when it gets
    there, so the records before it are read first).
    """

    path: str
    layout: str
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray
    fault: Optional[JSONLayoutError] = None

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def shards(self, target_bytes: int) -> list[tuple[int, int]]:
        """Split the records into contiguous ``(first, stop)`` index ranges of about ``target_bytes``.

        Example:
            >>> index = RecordIndex("f", "lines", np.array([0, 10, 20]), np.array([9, 19, 29]), np.array([1, 2, 3]))
            >>> index.shards(15)
            [(0, 2), (2, 3)]
        """
        if len(self) == 0:
            return [(0, 0)]
        cuts = np.searchsorted(self.starts, np.arange(self.starts[0], self.ends[-1], target_bytes)[1:], side="left")
        bounds = np.unique(np.concatenate(([0], cuts, [len(self)])))
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def common_part(words: list) -> str:
    """The longest string every one of ``words`` contains (the first one found).

    Example:
        >>> common_part(["<__dj__image>", "<|__dj__eoc|>", "<__dj__video>"])
        '__dj__'
    """
    shortest = min(words, key=len)
    for size in range(len(shortest), 0, -1):
        for start in range(len(shortest) - size + 1):
            part = shortest[start : start + size]
            if all(part in word for word in words):
                return part
    return ""


def check_no_dj_tokens(value: str, tokens, where: str) -> None:
    """``ValueError`` when the source text ``value`` holds one of the DJ ``tokens`` literally: it
    would read as a media token (the k-th image token is no longer ``images[k]``) or a chunk end.
    The way through is Data-Juicer's own: load with other tokens (``image_special_token=...``).

    Example:
        >>> check_no_dj_tokens("a <b> c", ("<__dj__image>",), "turn 0")
        >>> check_no_dj_tokens("see <__dj__image>", ("<__dj__image>",), "turn 0")
        Traceback (most recent call last):
        ...
        ValueError: turn 0 holds the literal DJ token '<__dj__image>' (load with other *_special_token options to keep such text)
    """
    for token in tokens:
        if token in value:
            raise ValueError(f"{where} holds the literal DJ token {token!r} (load with other *_special_token options to keep such text)")


class MalformedJSON:
    """A record the JSON parser rejected, with the parser's reason and the absolute byte offset."""

    __slots__ = ("reason", "byte")

    def __init__(self, reason: str, byte: int):
        self.reason = reason
        self.byte = byte


class JSONLayoutError(RecordError):
    """The file is not a JSON array of records nor JSON lines (junk after the array, an unexpected
    closing bracket, an array that never closes): a failure of the file from that point on, after
    the records before it, which are read.

    Example:
        >>> str(JSONLayoutError("a.json", "text outside the top-level array", line=9))
        'a.json: line 9: text outside the top-level array'
    """

    def __init__(self, source: str, reason: str, *, line: Optional[int] = None, byte: Optional[int] = None):
        super().__init__(source, None, reason, line=line, byte=byte)

    def __reduce__(self):
        # Rebuilt with its keywords in the parent process when a worker raises it.
        return functools.partial(type(self), line=self.line, byte=self.byte), (self.source, self.reason)


class UnreadableFileError(OSError):
    """The file's bytes cannot be read (a corrupt archive member, an I/O error); names the file."""


# What reading a local, archived or compressed file raises when its bytes are bad or gone.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, tarfile.TarError)


@contextmanager
def _reading(path: str):
    """Re-raise a failure to read ``path`` (e.g. ``zipfile.BadZipFile``, ``zlib.error``) as an
    :class:`UnreadableFileError` naming it; anything else passes through."""
    try:
        yield
    except UnreadableFileError:
        raise
    except _READ_ERRORS as error:
        raise UnreadableFileError(f"{path}: cannot read the file: {type(error).__name__}: {error}") from error


def _first_significant_byte(path: str, opener: Callable) -> Optional[int]:
    with opener(path, "rb") as handle:
        while True:
            block = handle.read(1 << 16)
            if not block:
                return None
            stripped = block.lstrip(b" \t\r\n\xef\xbb\xbf")
            if stripped:
                return stripped[0]


def scan_records(path: str, opener: Callable = open) -> RecordIndex:
    """Find the byte range of every record of a JSON file: array elements if the file starts with
    ``[``, else non-blank lines (JSON lines).

    Raises :class:`JSONLayoutError` naming the file, line and byte for a file whose structure is
    broken (unbalanced brackets, a truncated array, text after the array).

    Complexity: one pass over the file in 64 MB chunks; memory O(number of records).

    Example:
        >>> index = scan_records("llava.json")  # doctest: +SKIP
        >>> len(index), index.layout  # doctest: +SKIP
        (100, 'array')
    """
    with _reading(path):
        first = _first_significant_byte(path, opener)
        if first is None:
            return RecordIndex(path, "lines", *(np.zeros(0, np.int64) for _ in range(3)))
        if first == ord("["):
            return _scan_array(path, opener)
        return _scan_lines(path, opener)


def _scan_array(path: str, opener: Callable) -> RecordIndex:
    pieces = [(np.zeros(0, np.int64),) * 3]
    fault = None
    try:
        pieces.extend(_scan_array_pieces(path, opener))
    except JSONLayoutError as error:
        fault = error
    return RecordIndex(path, "array", *(np.concatenate([piece[k] for piece in pieces]) for k in range(3)), fault)


def _scan_array_pieces(path: str, opener: Callable) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(starts, ends, lines)`` of the array elements completed in each chunk of the file, in order."""
    state = np.array([0, 0, 0, -1, 1, 0, 0, 0], dtype=np.int64)
    capacity = 1 << 16
    out_starts = np.empty(capacity, np.int64)
    out_ends = np.empty(capacity, np.int64)
    out_lines = np.empty(capacity, np.int64)
    offset = bom_length(path, opener)
    for chunk in _chunks(path, opener, skip=offset):
        buf = np.frombuffer(chunk, dtype=np.uint8)
        state[5] = offset
        position = 0
        starts_parts, ends_parts, lines_parts = [], [], []
        while True:
            status, position, count = json_scan.scan_array_elements(buf, position, state, out_starts, out_ends, out_lines)
            starts_parts.append(out_starts[:count].copy())
            ends_parts.append(out_ends[:count].copy())
            lines_parts.append(out_lines[:count].copy())
            if status == json_scan.OUTPUT_FULL:
                continue
            if status != json_scan.OK:
                # The records before the fault are read (and kept under on_error="skip").
                yield np.concatenate(starts_parts), np.concatenate(ends_parts), np.concatenate(lines_parts)
                raise JSONLayoutError(
                    path,
                    ("unexpected closing bracket" if status == json_scan.UNEXPECTED_CLOSE else "text outside the top-level array")
                    + f" (byte {offset + position})",
                    line=int(state[4]),
                )
            break
        yield np.concatenate(starts_parts), np.concatenate(ends_parts), np.concatenate(lines_parts)
        offset += len(chunk)
    if (state[0] != 0 or state[1] != 0) and state[3] >= 0:
        # Truncated inside a record: that record, up to the end of the file, is a malformed one.
        yield np.array([state[3]]), np.array([offset]), np.array([state[6]])
    elif state[0] != 0 or state[1] != 0:
        raise JSONLayoutError(path, f"file ends inside the top-level array (truncated?) (byte {offset})", line=int(state[4]))


def member_records(path: str, data: bytes, key: str) -> tuple[RecordIndex, object]:
    """The elements of the array member ``key`` of the JSON document ``data`` (the bytes of
    ``path``) as a record index, and the rest of the document parsed, with ``key`` an empty list:
    for a document whose whole parse failed (a malformed or undecodable record inside its array),
    so that each record is read, and reported, on its own.

    Raises :class:`JSONLayoutError` naming the file when the member cannot be found or the rest
    of the document is malformed.

    Example:
        >>> data = b'{"n": 1, "data": [{"a": 1}, {"a": [}]}'
        >>> index, rest = member_records("w.json", data, "data")  # doctest: +SKIP
        >>> rest, [data[s:e] for s, e in zip(index.starts, index.ends)]  # doctest: +SKIP
        ({'n': 1, 'data': []}, [b'{"a": 1}', b'{"a": [}'])
    """
    buf = np.frombuffer(data, np.uint8)
    start = json_scan.member_value(buf, np.frombuffer(key.encode(), np.uint8))
    if start < 0 or data[start : start + 1] != b"[":
        raise JSONLayoutError(path, f"no {key!r} array found in the document")
    state = np.array([0, 0, 0, -1, 1 + data.count(b"\n", 0, start), 0, 0, 0], dtype=np.int64)
    capacity = len(data) // 2 + 1
    starts, ends, lines = (np.empty(capacity, np.int64) for _ in range(3))
    status, position, count = json_scan.scan_array_elements(buf, start, state, starts, ends, lines)
    # After the array's closing bracket the scan is at depth 0, where the document's next member
    # (a comma) or its closing brace is "junk" to it.
    closed = status == json_scan.JUNK_BETWEEN_RECORDS and state[0] == 0
    if not closed:
        raise JSONLayoutError(path, f"the {key!r} array is not closed (truncated?)", line=int(state[4]))
    stop = data.rindex(b"]", start, position) + 1
    try:
        rest = msgspec.json.decode(data[bom_length_of(data) : start] + b"[]" + data[stop:])
    except (msgspec.DecodeError, RecursionError) as error:
        raise JSONLayoutError(path, f"malformed JSON outside the {key!r} records: {error}") from None
    return RecordIndex(path, "array", starts[:count].copy(), ends[:count].copy(), lines[:count].copy()), rest


def bom_length_of(data: bytes) -> int:
    """:func:`bom_length` of bytes in memory.

    Example:
        >>> bom_length_of(BOM + b"{}")
        3
    """
    return len(BOM) if data.startswith(BOM) else 0


def scan_records_in_background(path: str, opener: Callable = open) -> Iterator[tuple[RecordIndex, int]]:
    """The record index of a JSON file piece by piece, ``(piece, records before it)``, while the
    scan runs on a thread of its own (the compiled scan releases the GIL), so that the records of
    a piece are parsed as the scan goes on through the rest of the file.

    The pieces together are :func:`scan_records`; a layout error is raised when its piece is
    reached, after the records before it. Memory: at most two pieces ahead.

    Example:
        >>> for piece, first in scan_records_in_background("llava.json"):  # doctest: +SKIP
        ...     print(first, len(piece))
    """
    with _reading(path):
        first_byte = _first_significant_byte(path, opener)
    if first_byte is None:
        return
    layout, pieces = ("array", _scan_array_pieces) if first_byte == ord("[") else ("lines", _scan_lines_pieces)
    results: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def scan() -> None:
        try:
            with _reading(path):
                for piece in pieces(path, opener):
                    while not stop.is_set():
                        try:
                            results.put(piece, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            results.put(None)
        except BaseException as error:  # re-raised in the consumer, where the load fails
            results.put(error)

    scanner = threading.Thread(target=scan, name=f"scan {os.path.basename(path)}", daemon=True)
    scanner.start()
    first = 0
    try:
        while True:
            piece = results.get()
            if piece is None:
                return
            if isinstance(piece, BaseException):
                raise piece
            index = RecordIndex(path, layout, *piece)
            yield index, first
            first += len(index)
    finally:
        stop.set()
        scanner.join()


class _MappedFile:
    """Byte ranges of a local file as read-only memory maps.

    Reading copies every byte into freshly allocated memory, which costs more than the scan itself
    on large files; a map shares the page cache. Each range is its own map, released with its last
    view, so resident memory stays that of the ranges in use, not of the whole file.
    """

    def __init__(self, path: str):
        with open(path, "rb") as handle:
            self.size = os.fstat(handle.fileno()).st_size
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
            self._fileno = os.dup(handle.fileno())

    def __del__(self):
        os.close(self._fileno)

    def view(self, start: int, stop: int) -> memoryview:
        """Bytes ``start .. stop-1`` of the file."""
        if stop <= start:
            return memoryview(b"")
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(self._fileno, stop - aligned, access=mmap.ACCESS_READ, offset=aligned)
        return memoryview(mapped)[start - aligned :]

    def rfind_newline(self, start: int, stop: int) -> int:
        return self._map.rfind(b"\n", start, stop)

    def find_newline(self, start: int) -> int:
        return self._map.find(b"\n", start)


def _mapped(path: str, opener: Callable) -> Optional[_MappedFile]:
    """``path`` as a :class:`_MappedFile` when it is a local non-empty file opened by ``open``
    (else ``None``: read it through ``opener``)."""
    # datasets patches `open` in loading scripts with its `xopen`, which opens local paths with `open`.
    if getattr(opener, "__wrapped__", opener) not in (open, xopen) or not os.path.isfile(path):
        return None
    mapped = _MappedFile(path)
    return mapped if mapped.size else None


def bom_length(path: str, opener: Callable = open) -> int:
    """3 when the file starts with a UTF-8 byte order mark (common in files from Windows tools;
    it is not part of the first record), else 0.

    Example:
        >>> bom_length("llava.json")  # doctest: +SKIP
        0
    """
    with opener(path, "rb") as handle:
        return len(BOM) if handle.read(len(BOM)) == BOM else 0


def _chunks(path: str, opener: Callable, whole_lines: bool = False, skip: int = 0) -> Iterator:
    """The file after its first ``skip`` bytes in pieces of about ``FIRST_SCAN_CHUNK_BYTES``, then
    twice as many bytes each up to ``SCAN_CHUNK_BYTES`` (views of memory maps when it can be
    mapped); with ``whole_lines`` every piece but the last ends with a newline."""
    sizes = _chunk_sizes()
    mapped = _mapped(path, opener)
    if mapped is not None:
        start = skip
        while start < mapped.size:
            stop = min(start + next(sizes), mapped.size)
            if whole_lines and stop < mapped.size:
                newline = mapped.rfind_newline(start, stop)
                stop = newline + 1 if newline >= 0 else (mapped.find_newline(stop) + 1 or mapped.size)
            yield mapped.view(start, stop)
            start = stop
        return
    carry = b""
    with opener(path, "rb") as handle:
        handle.read(skip)
        while True:
            chunk = handle.read(next(sizes))
            if not whole_lines:
                if not chunk:
                    return
                yield chunk
                continue
            data = carry + chunk
            cut = len(data) if not chunk else data.rfind(b"\n") + 1
            if cut:
                yield data[:cut]
            carry = data[cut:]
            if not chunk:
                return


def _chunk_sizes() -> Iterator[int]:
    """``FIRST_SCAN_CHUNK_BYTES`` (at most ``SCAN_CHUNK_BYTES``), then doubling up to ``SCAN_CHUNK_BYTES``.

    Example:
        >>> sizes = _chunk_sizes()
        >>> [next(sizes) >> 20 for _ in range(6)]
        [4, 8, 16, 32, 64, 64]
    """
    size = min(FIRST_SCAN_CHUNK_BYTES, SCAN_CHUNK_BYTES)
    while True:
        yield size
        size = min(2 * size, SCAN_CHUNK_BYTES)


def _scan_lines(path: str, opener: Callable) -> RecordIndex:
    pieces = [(np.zeros(0, np.int64),) * 3, *_scan_lines_pieces(path, opener)]
    return RecordIndex(path, "lines", *(np.concatenate([piece[k] for piece in pieces]) for k in range(3)))


def _scan_lines_pieces(path: str, opener: Callable) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(starts, ends, lines)`` of the non-blank lines of each chunk of the file, in order."""
    offset = bom_length(path, opener)
    line = 1
    for chunk in _chunks(path, opener, whole_lines=True, skip=offset):
        starts, ends, lines, line = json_scan.line_ranges(np.frombuffer(chunk, dtype=np.uint8), offset, line)
        offset += len(chunk)
        yield starts, ends, lines


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: decoding millions of small objects otherwise triggers it
    thousands of times for nothing (records hold no cycles).

    Example:
        >>> with gc_paused():
        ...     pass
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclasses.dataclass
class RecordBatch:
    """Decoded records of one batch: ``records[k]`` is a fast-type struct, a ``dict`` (did not fit
    the fast type), or :class:`MalformedJSON`; ``indexes``/``lines``/``offsets`` locate each one.
    ``buffer`` holds the batch's source bytes (a view of the file's memory map for a local file)."""

    path: str
    indexes: range
    lines: np.ndarray
    offsets: np.ndarray
    ends: np.ndarray
    records: Optional[list]
    buffer: Union[bytes, memoryview]
    buffer_offset: int
    layout: str = "lines"
    fast_type: Optional[type] = None
    # 1 for each record nested deeper than MAX_NESTING (decoded as MalformedJSON); None: none is,
    # or (for a batch read with decode=False) not checked yet: decode(k) then checks its record.
    too_deep: Optional[np.ndarray] = None
    depth_checked: bool = False

    def raw(self, k: int) -> bytes:
        """The source bytes of record ``k`` (for the rejects file)."""
        start = int(self.offsets[k]) - self.buffer_offset
        return bytes(self.buffer[start : int(self.ends[k]) - self.buffer_offset])

    def holding(self, tokens) -> np.ndarray:
        """The positions (ascending, int64) of the records whose decoded strings may hold one of
        ``tokens`` (str), written as they are or with any of their characters escaped
        (``<__dj\\u005f_image>`` is a DJ token too): a quick filter, in compiled code over the
        batch's bytes, that sends those records to a careful path, which checks their decoded
        text. Tokens sharing a part (the DJ tokens share ``__dj__``) are looked for through it.
        O(batch bytes)."""
        tokens = [token for token in tokens if token]
        if not tokens:
            return np.zeros(0, np.int64)
        common = common_part(tokens)
        buf = np.frombuffer(self.buffer, dtype=np.uint8)
        starts, ends = self.offsets - self.buffer_offset, self.ends - self.buffer_offset
        flagged = np.zeros(len(starts), np.uint8)
        for core in [common] if common else tokens:
            escaped = np.zeros(128, np.uint8)
            escaped[[ord(c) for c in core if ord(c) < 128]] = 1
            found = np.empty(len(starts), np.uint8)
            json_scan.records_holding(buf, starts, ends, np.frombuffer(core.encode(), np.uint8), escaped,
                                      any(ord(c) >= 128 for c in core), found)
            flagged |= found
        return np.flatnonzero(flagged).astype(np.int64)

    def invalid_utf8(self) -> np.ndarray:
        """The positions (ascending, int64) of the records that are not valid UTF-8, for the
        compiled parsers, which copy bytes as they are: one validation of the whole batch by
        Arrow, then record by record only when it fails."""
        whole = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(self.buffer)], np.int32)), pa.py_buffer(self.buffer))
        try:
            whole.validate(full=True)
            return np.zeros(0, np.int64)
        except pa.ArrowInvalid:
            bad = []
            for k in range(len(self.indexes)):
                try:
                    self.raw(k).decode("utf-8")
                except UnicodeDecodeError:
                    bad.append(k)
            return np.array(bad, np.int64)

    def decode(self, k: int):
        """Decode record ``k`` alone: a ``fast_type`` instance, a plain value, or :class:`MalformedJSON`."""
        if self.too_deep is not None and self.too_deep[k]:
            return MalformedJSON(TOO_DEEP, int(self.offsets[k]))
        if not self.depth_checked:
            # The compiled parsers refuse deep values themselves (json_scan.value_end): only a
            # record they leave to the careful path is measured, here.
            start, end = int(self.offsets[k]) - self.buffer_offset, int(self.ends[k]) - self.buffer_offset
            if json_scan.too_deep(np.frombuffer(self.buffer, np.uint8), np.array([start]), np.array([end]), MAX_NESTING, np.zeros(1, np.uint8)):
                return MalformedJSON(TOO_DEEP, int(self.offsets[k]))
        decoders = _single_decoders(self.fast_type)
        return _decode_one(memoryview(self.buffer)[int(self.offsets[k]) - self.buffer_offset : int(self.ends[k]) - self.buffer_offset], int(self.offsets[k]), *decoders)


@functools.lru_cache(maxsize=None)
def _single_decoders(fast_type):
    return (msgspec.json.Decoder(fast_type) if fast_type is not None else None, msgspec.json.Decoder())


def iter_batches(
    index: RecordIndex,
    first: int,
    stop: int,
    fast_type: Optional[type],
    opener: Callable = open,
    batch_bytes: int = BATCH_BYTES,
    decode: bool = True,
    record_offset: int = 0,
) -> Iterator[RecordBatch]:
    """Read records ``first .. stop-1`` of ``index`` in batches of about ``batch_bytes``.

    With ``decode`` (the default) each batch's ``records`` are decoded: ``fast_type`` is a
    ``msgspec.Struct`` type (records that fit it come back as instances), or ``None`` for plain
    Python values. With ``decode=False`` only the raw bytes are read (``records`` is ``None``), for
    a compiled parser; :meth:`RecordBatch.decode` decodes chosen records later. Memory stays
    O(batch), whatever the file size. ``record_offset`` is added to the reported record numbers
    (for an index that is a slice of a file's).

    Example:
        >>> index = scan_records("data.jsonl")  # doctest: +SKIP
        >>> for batch in iter_batches(index, 0, len(index), None):  # doctest: +SKIP
        ...     print(batch.records[0])
    """
    yield from _batches(index, first, stop, fast_type, opener, batch_bytes, decode, record_offset)
    if index.fault is not None and stop >= len(index):
        raise index.fault


def _batches(index, first, stop, fast_type, opener, batch_bytes, decode, record_offset) -> Iterator[RecordBatch]:
    if stop <= first:
        return
    fast_decoder = msgspec.json.Decoder(list[fast_type]) if fast_type is not None else None
    mapped = _mapped(index.path, opener)
    with contextlib.nullcontext() if mapped is not None else opener(index.path, "rb") as handle:
        position = int(index.starts[first])
        if handle is not None:
            handle.seek(position)
        batch_start = first
        while batch_start < stop:
            limit = index.starts[batch_start] + batch_bytes
            batch_stop = int(np.searchsorted(index.ends, limit, side="right"))
            batch_stop = min(max(batch_stop, batch_start + 1), stop)
            buffer_offset = int(index.starts[batch_start])
            end = int(index.ends[batch_stop - 1])
            if mapped is not None:
                buffer = mapped.view(buffer_offset, end)
            else:
                if position != buffer_offset:
                    handle.seek(buffer_offset)
                buffer = handle.read(end - buffer_offset)
                position = end
            batch = RecordBatch(
                index.path,
                range(record_offset + batch_start, record_offset + batch_stop),
                index.lines[batch_start:batch_stop],
                index.starts[batch_start:batch_stop],
                index.ends[batch_start:batch_stop],
                None,
                buffer,
                buffer_offset,
                index.layout,
                fast_type,
            )
            if decode:
                check_depth(batch)
                with gc_paused():
                    batch.records = _decode_batch(buffer, buffer_offset, batch.offsets, batch.ends, index.layout, fast_decoder, batch)
            yield batch
            batch_start = batch_stop


_ERROR_INDEX = re.compile(r"`\$\[(\d+)\]")


def check_depth(batch: RecordBatch) -> Optional[np.ndarray]:
    """Find the batch's records nested deeper than :data:`MAX_NESTING` (before a decoder that
    takes the whole batch at once): ``batch.too_deep`` becomes their uint8 mask, or ``None``.

    Example:
        >>> check_depth(batch) is None  # doctest: +SKIP
        True
    """
    if not batch.depth_checked:
        mask = np.empty(len(batch.offsets), np.uint8)
        base = batch.buffer_offset
        if json_scan.too_deep(np.frombuffer(batch.buffer, np.uint8), batch.offsets - base, batch.ends - base, MAX_NESTING, mask):
            batch.too_deep = mask
        batch.depth_checked = True
    return batch.too_deep


def _decode_batch(buffer, buffer_offset, starts, ends, layout, fast_decoder, batch) -> list:
    view = memoryview(buffer)
    one_fast, generic = _single_decoders(batch.fast_type)
    if batch.too_deep is not None:
        return [batch.decode(k) for k in range(len(starts))]
    if fast_decoder is None:
        return [_decode_one(view[s - buffer_offset : e - buffer_offset], s, None, generic) for s, e in zip(starts.tolist(), ends.tolist())]
    records: list = []
    first = 0
    count = len(starts)
    # Decode as much as possible in one call; a record that does not fit the fast type (the
    # validation error names its index) takes the per-record path, and decoding resumes after it.
    while first < count:
        if layout == "array":
            payload = b"[" + view[starts[first] - buffer_offset : ends[-1] - buffer_offset] + b"]"
        else:
            payload = b"[" + b",".join(view[s - buffer_offset : e - buffer_offset] for s, e in zip(starts[first:], ends[first:])) + b"]"
        try:
            records.extend(fast_decoder.decode(payload))
            return records
        except msgspec.ValidationError as error:
            match = _ERROR_INDEX.search(str(error))
            failed = first + int(match.group(1)) if match else first
        except msgspec.DecodeError:
            failed = first
        if failed > first:
            records.extend(_decode_batch(buffer, buffer_offset, starts[first:failed], ends[first:failed], layout, fast_decoder, batch))
        start, end = int(starts[failed]), int(ends[failed])
        records.append(_decode_one(view[start - buffer_offset : end - buffer_offset], start, one_fast, generic))
        first = failed + 1
    return records


def _decode_one(raw, start: int, one_fast, generic) -> Union[object, dict, MalformedJSON]:
    if one_fast is not None:
        try:
            return one_fast.decode(raw)
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as error:
            return _malformed(error, start)
    try:
        return generic.decode(raw)
    except msgspec.DecodeError as error:
        return _malformed(error, start)


def _malformed(error: msgspec.DecodeError, start: int) -> MalformedJSON:
    message = str(error)
    match = _BYTE_IN_MESSAGE.search(message)
    byte = start + int(match.group(1)) if match else start
    return MalformedJSON(f"malformed JSON: {message}", byte)


def bracketed_token(token: str) -> bool:
    """``<...>`` with no other ``<``/``>`` and nothing JSON would escape: occurrences of such
    tokens never overlap (nor straddle one another), and they can be written as they are.

    Example:
        >>> bracketed_token("<__dj__image>"), bracketed_token("<a<b>")
        (True, False)
    """
    return (
        len(token) >= 2 and token[0] == "<" and token[-1] == ">" and "<" not in token[1:-1] and ">" not in token[1:-1]
        and all(32 <= ord(c) and c not in '"\\' for c in token)
    )


# Checks JSON without building values (a Raw is the text it spans): several times faster.
JSON_CHECK = msgspec.json.Decoder(msgspec.Raw)


def invalid_json(texts: pa.Array) -> np.ndarray:
    """The positions of the non-null values of a string array that are not JSON (the compiled
    parser copies other members as they are, without checking them): one msgspec check of all of
    them joined into an array, value by value only when it fails. O(total size).

    Example:
        >>> invalid_json(pa.array(['{"a":1}', None, '{"b":NaN}'])).tolist()
        [2]
    """
    present = texts.drop_null()
    if not len(present):
        return np.zeros(0, np.int64)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(present)], pa.int32()), present), ",")[0].as_buffer()
    try:
        JSON_CHECK.decode(b"[" + joined.to_pybytes() + b"]")
        return np.zeros(0, np.int64)
    except msgspec.DecodeError:
        bad = []
        for k, value in enumerate(texts.to_pylist()):
            try:
                if value is not None:
                    JSON_CHECK.decode(value)
            except msgspec.DecodeError:
                bad.append(k)
        return np.array(bad, np.int64)
