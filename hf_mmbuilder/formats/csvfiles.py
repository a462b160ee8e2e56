"""CSV source files: opening them (UTF-8, BOM accepted), their rows as source records (each bad
row accounted for with its real line), and their batches as Arrow tables.

Every data row of a file becomes a row or a reject, never a silent loss:

- an invalid UTF-8 byte spoils only its row: bytes are decoded with an error handler that keeps
  them (as ``surrogateescape`` does) and counts them, so a batch is searched for them only when
  the count moved (clean files pay nothing); the row is rejected with its raw text, bytes
  escaped (``\\xff``), and its line;
- the reader is strict: a quote that is never closed is one reject naming the line where it
  opened (not a row that swallows the rest of the file), a character after a closing quote is a
  reject of its row, and reading resumes on the next line;
- line numbers are those where each row starts (a quoted field may span lines).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import io
import itertools
import re
from typing import Callable, Iterator, Optional

import numpy as np
import pyarrow as pa

from ..errors import ErrorPolicy
from .builder import ColumnBuffer
from .columns import SourceRecord, rows_to_tables, table_from_arrays
from .failures import READ_ERRORS, FileFailure

# Fields up to this many characters load (the csv module's default, 131,072, would reject a long
# caption); beyond it a row is a reject, so an unclosed quote in a huge file cannot take it all in.
FIELD_LIMIT = 256 << 20

_ESCAPED_BYTES = [0]
_ESCAPES = re.compile("[\udc80-\udcff]")


def _escape_and_count(error: UnicodeDecodeError) -> tuple:
    # As "surrogateescape" (each bad byte b becomes U+DC00+b, which valid UTF-8 never decodes to),
    # counting the bytes so a reader knows when to look for them.
    bad = error.object[error.start : error.end]
    _ESCAPED_BYTES[0] += len(bad)
    return "".join(chr(0xDC00 + b) for b in bad), error.end


_ERRORS = "hf_mmbuilder.csv_escape"
codecs.register_error(_ERRORS, _escape_and_count)


def escaped_text(text: str) -> str:
    """``text`` with each undecodable byte (kept by the decoder) written as ``\\xNN``.

    Example:
        >>> escaped_text("caf\\udce9 au lait")
        'caf\\\\xe9 au lait'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class BadRow:
    """A data row that cannot be a record (undecodable bytes, malformed CSV), with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


@dataclasses.dataclass
class CsvBatch:
    """Consecutive data rows: ``rows`` (lists of cells, or :class:`BadRow`), the 1-based line
    each ends on (``ends``), the line the first starts on, the first's data-row index, and
    ``clean`` (no :class:`BadRow`)."""

    rows: list
    ends: list
    first_line: int
    first: int
    clean: bool


class CsvFile:
    """An open UTF-8 CSV file (a BOM is accepted) read in batches of rows: ``header`` (``None``
    for an empty file), :meth:`read` for the data rows, :meth:`raw` for a bad row's source text.
    A read failure (a damaged archive member) ends the rows; :meth:`check` raises it afterwards.
    A header that cannot be read is a :class:`~hf_mmbuilder.formats.failures.FileFailure`.

    ``opener``: the loading script's ``open`` (``datasets`` swaps it for one that reads archive
    members in the builder's modules, not in this helper module).

    Example:
        >>> with CsvFile("youku_pretrain.csv", open) as source:  # doctest: +SKIP
        ...     source.header, len(source.read(100).rows)
        (['video_id:FILE', 'title'], 100)
    """

    def __init__(self, path: str, opener: Callable, source: Optional[str] = None):
        self.path = path
        self.source = source or path
        self._opener = opener
        self._handle = self._open()
        if csv.field_size_limit() < FIELD_LIMIT:
            csv.field_size_limit(FIELD_LIMIT)
        self._reader = csv.reader(self._handle, strict=True)
        self._escaped_seen = _ESCAPED_BYTES[0]
        self._index = 0
        self._last_line = 0
        self.error: Optional[BaseException] = None
        self._raw_handle = None
        self._raw_line = 0
        self.header = None
        try:
            batch = self.read(1)
            self.check()
            if batch.rows and not batch.clean:
                raise FileFailure(self.source, f"CSV header: {batch.rows[0].reason}", line=1)
        except BaseException:
            self.close()
            raise
        if batch.rows:
            self._index = 0
            self.header = batch.rows[0]

    def _open(self, errors: str = _ERRORS):
        return io.TextIOWrapper(self._opener(self.path, "rb"), encoding="utf-8-sig", errors=errors, newline="")

    def read(self, count: int) -> CsvBatch:
        """The next ``count`` data rows (fewer at the end of the file, or before a read failure)."""
        reader = self._reader
        rows, ends = [], []
        add_row, add_end = rows.append, ends.append
        first_line = self._last_line + 1
        clean = True
        while len(rows) < count and self.error is None:
            try:
                for cells in itertools.islice(reader, count - len(rows)):
                    add_row(cells)
                    add_end(reader.line_num)
                break
            except csv.Error as error:
                rows.append(self._malformed(error, (ends[-1] if ends else self._last_line) + 1, reader.line_num))
                ends.append(reader.line_num)
                clean = False
            except READ_ERRORS as error:
                self.error = error
        if rows:
            self._last_line = ends[-1]
        pending = _ESCAPED_BYTES[0] - self._escaped_seen
        if pending > 0:
            # Bytes were escaped since the last rows found holding them (the decoder reads ahead, so
            # they may lie in a later batch): look for them in these rows.
            for k, cells in enumerate(rows):
                if type(cells) is list:
                    found = sum(len(_ESCAPES.findall(cell)) for cell in cells)
                    if found:
                        self._escaped_seen += found
                        rows[k] = self._undecodable(cells)
                        clean = False
        batch = CsvBatch(rows, ends, first_line, self._index, clean)
        self._index += len(rows)
        return batch

    def _undecodable(self, cells: list) -> BadRow:
        where = [f"column {k + 1} ({escaped_text(cell)[:80]})" for k, cell in enumerate(cells) if _ESCAPES.search(cell)]
        first = next(_ESCAPES.finditer("".join(cells))).group()
        return BadRow(f"invalid UTF-8 byte 0x{ord(first) - 0xDC00:02x} in {', '.join(where)}")

    def _malformed(self, error: csv.Error, start: int, end: int) -> BadRow:
        if str(error) != "unexpected end of data":
            return BadRow(f"malformed CSV row (lines {start}-{end}): {error}" if end > start else f"malformed CSV row: {error}")
        opened = _unclosed_quote_line(self.raw_text(start, end), start)
        return BadRow(f"unterminated quoted field: the quote opened on line {opened} is never closed (the file ends on line {end})")

    def raw_text(self, start: int, end: int) -> str:
        """The source text of lines ``start`` to ``end`` (1-based, inclusive; the final line
        break left out), undecodable bytes kept as escapes. Read through a second handle that only
        moves forward, so fetching the rows rejected in one pass reads the file once more at most."""
        if self._raw_handle is None or start <= self._raw_line:
            if self._raw_handle is not None:
                self._raw_handle.close()
            # The same text, but its escaped bytes are not counted again (they are accounted for).
            self._raw_handle, self._raw_line = self._open("surrogateescape"), 0
        handle, lines = self._raw_handle, []
        for line in handle:
            self._raw_line += 1
            if self._raw_line >= start:
                lines.append(line)
            if self._raw_line == end:
                break
        text = "".join(lines)
        return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith(("\n", "\r")) else text

    def raw(self, start: int, end: int) -> bytes:
        """:meth:`raw_text` as UTF-8 bytes, undecodable bytes written ``\\xNN`` (rejects files are text)."""
        return escaped_text(self.raw_text(start, end)).encode("utf-8")

    def check(self) -> None:
        """Raise the read failure that ended the rows, if one did."""
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._handle.close()
        if self._raw_handle is not None:
            self._raw_handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def plain_csv(data) -> bool:
    """Whether the CSV text ``data`` (``bytes`` or a memory map) reads the same with any RFC 4180
    reader: a quote only opens a field (at its start) and closes it (before a comma, a line end or
    the end of the text), ``""`` inside; lines end in ``\\n`` or ``\\r\\n``; no empty line outside
    quotes; no NUL byte. Such a file can be read by a fast reader (Arrow's, which checks each
    row's cell count itself); any other goes to the strict one, which names each problem by line.

    The rules are checked on the positions of the quotes (with the byte before and after each)
    and of the line feeds that could end an empty line, found by :func:`_quotes_and_line_feeds`.
    Complexity: O(len(data)) time in C and NumPy, no Python per byte or per row; memory O(quotes).

    Example:
        >>> plain_csv(b'a,b\\n1,"x\\n""y"\\r\\n2,'), plain_csv(b'a,b\\n1,x"y\\n'), plain_csv(b'a,b\\n1,2\\n\\n')
        (True, False, False)
    """
    # memchr: a NUL or a carriage return is found (or not) at memory speed before any NumPy pass.
    if data.find(b"\0") >= 0:
        return False
    buf = np.frombuffer(data, np.uint8)
    size = len(buf)
    found = _quotes_and_line_feeds(buf, data.find(b"\r") >= 0)
    if found is None:
        return False
    quotes, before, after, empty = found
    if len(quotes) % 2:
        return False
    # Counted from the start, even quotes open a quoted field, odd ones close it; a doubled quote
    # inside a field is a close and an open next to each other.
    opening, closing = quotes[0::2], quotes[1::2]
    doubled = closing[:-1] + 1 == opening[1:]
    opens = (opening == 0) | (before[0::2] == ord(",")) | (before[0::2] == ord("\n"))
    opens[1:] |= doubled
    closes = (closing + 1 == size) | (after[1::2] == ord(",")) | (after[1::2] == ord("\n")) | (after[1::2] == ord("\r"))
    closes[:-1] |= doubled
    if not (opens.all() and closes.all()):
        return False
    # An empty line is no row to the csv module, a row of empty cells to Arrow's reader; the line
    # feed ending one after an even number of quotes lies outside quotes.
    return not (np.searchsorted(quotes, empty) % 2 == 0).any()


# Bytes searched at a time by _quotes_and_line_feeds: a block and its masks stay in the CPU's
# cache, where masks of the whole text would be fresh pages (costly here) and a second read from memory.
_SEARCH_BLOCK = 1 << 18


def _quotes_and_line_feeds(buf: np.ndarray, returns: bool) -> Optional[tuple]:
    """What :func:`plain_csv` checks in the ``uint8`` text ``buf``, read block by block while the
    block is in the cache: the quotes' positions (ascending, ``int32`` below 2 GiB, else
    ``intp``), the bytes before and after each (``uint8``; at the ends of the text, a byte of the
    other end), and the positions of the line feeds that end an empty line if they lie outside
    quotes (right after a line feed, after a carriage return that follows one, or at the start).
    With ``returns`` (the text holds a carriage return), ``None`` when one is not followed by a
    line feed. O(len(buf)) time."""
    size = len(buf)
    index_type = np.int32 if size < 1 << 31 else np.intp
    width = min(size, _SEARCH_BLOCK)
    quote_mask, feed_mask, return_mask, pair_mask = (np.empty(width, bool) for _ in range(4))
    positions, before, after = [np.zeros(0, index_type)], [np.zeros(0, np.uint8)], [np.zeros(0, np.uint8)]
    empty = [np.zeros(0, np.intp)]
    for start in range(0, size, _SEARCH_BLOCK):
        block = buf[start : start + _SEARCH_BLOCK]
        n = len(block)
        feeds = np.equal(block, ord("\n"), out=feed_mask[:n])
        if returns:
            carriage = np.equal(block, ord("\r"), out=return_mask[:n])
            # A carriage return only before a line feed (the next block's first byte for the last).
            if np.greater(carriage[:-1], feeds[1:], out=pair_mask[: n - 1]).any():
                return None
            if carriage[-1] and (start + n == size or buf[start + n] != ord("\n")):
                return None
        # A line feed right after a line feed, or after the carriage return of one; the block's
        # first one or two bytes look back into the block before.
        ends = np.logical_and(feeds[1:], feeds[:-1], out=pair_mask[: n - 1])
        if returns:
            ends[1:] |= feeds[2:] & carriage[1:-1] & feeds[:-2]
        if ends.any():
            empty.append(np.flatnonzero(ends) + (start + 1))
        if feeds[0] and (start == 0 or buf[start - 1] == ord("\n") or (buf[start - 1] == ord("\r") and (start == 1 or buf[start - 2] == ord("\n")))):
            empty.append(np.array([start]))
        if returns and n > 1 and feeds[1] and carriage[0] and (start == 0 or buf[start - 1] == ord("\n")):
            empty.append(np.array([start + 1]))
        local = np.flatnonzero(np.equal(block, ord('"'), out=quote_mask[:n]))
        here = (local + start).astype(index_type)
        positions.append(here)
        before.append(buf[here - 1])
        after.append(buf[np.minimum(here + 1, size - 1)])
    return np.concatenate(positions), np.concatenate(before), np.concatenate(after), np.concatenate(empty)


def _unclosed_quote_line(text: str, first_line: int) -> int:
    """The line (``text`` starting on ``first_line``) of the field-opening quote that is never
    closed; ``first_line`` when there is none (the csv module found another reason)."""
    position, opened, quoted = 0, None, False
    while True:
        quote = text.find('"', position)
        if quote < 0:
            break
        position = quote + 1
        if quoted:
            if text.startswith('"', position):
                position += 1
            else:
                quoted = False
        elif quote == 0 or text[quote - 1] in ",\r\n":
            quoted, opened = True, quote
    if not quoted:
        return first_line
    return first_line + text.count("\n", 0, opened) + text.count("\r", 0, opened) - text.count("\r\n", 0, opened)


def open_csv(path: str, opener: Callable, source: Optional[str] = None) -> CsvFile:
    """A :class:`CsvFile` (to use with ``with``); ``source`` is the name errors give the file.

    Example:
        >>> with open_csv("youku_pretrain.csv", open) as csv_file:  # doctest: +SKIP
        ...     csv_file.header
        ['video_id:FILE', 'title']
    """
    return CsvFile(path, opener, source)


def csv_fast_tables(
    source: CsvFile,
    features,
    constants: dict,
    fast_columns: Optional[Callable[[list], Optional[dict]]],
    convert: Callable[[object], dict],
    policy: ErrorPolicy,
    batch_rows: int = 20_000,
) -> Iterator[pa.Table]:
    """:func:`rows_to_tables` over the data rows of ``source``, ``batch_rows`` rows at a time:
    ``fast_columns(rows)`` (``rows``: lists of cells) builds a clean batch's columns at once, or
    returns ``None`` to send the batch record by record through ``convert`` (with the records of
    :func:`csv_batch_records`; ``convert`` rejects a :class:`BadRow` through :func:`check_cells`).
    A read failure is raised after the rows read before it went through.

    Complexity: O(rows); memory O(batch_rows).

    Example:
        >>> tables = csv_fast_tables(csv_file, features, {}, columns, convert, policy)  # doctest: +SKIP
    """
    buffer = ColumnBuffer(features, constants)
    width = len(source.header)
    while True:
        batch = source.read(batch_rows)
        if not batch.rows:
            source.check()
            return
        arrays = None
        if fast_columns is not None and batch.clean and all(len(cells) == width for cells in batch.rows):
            arrays = fast_columns(batch.rows)
        if arrays is not None:
            yield table_from_arrays(buffer, arrays, len(batch.rows))
        else:
            yield from rows_to_tables(features, constants, csv_batch_records(source, batch), convert, policy, source.source, batch_rows + 1)


def csv_source_records(source: CsvFile, batch_rows: int = 1000) -> Iterator[SourceRecord]:
    """The data rows of ``source`` as ``{column: cell}`` records; a row with the wrong number of
    cells comes back as its cells (a list), a bad one as a :class:`BadRow`, both to be rejected
    by :func:`check_cells`. A read failure is raised after the rows read before it.

    Example:
        >>> with CsvFile("ids.csv", open) as csv_file:  # doctest: +SKIP
        ...     next(csv_source_records(csv_file)).value
        {'video_id': 'video0', 'sentence': 'a man is driving'}
    """
    while True:
        batch = source.read(batch_rows)
        if not batch.rows:
            source.check()
            return
        yield from csv_batch_records(source, batch)


def csv_batch_records(source: CsvFile, batch: CsvBatch) -> Iterator[SourceRecord]:
    """The rows of ``batch`` as :class:`~hf_mmbuilder.formats.columns.SourceRecord` s (line: where
    the row starts; raw: its source lines), like :func:`csv_source_records`."""
    header, raw = source.header, source.raw
    width = len(header)
    index, start = batch.first, batch.first_line
    for cells, end in zip(batch.rows, batch.ends):
        value = dict(zip(header, cells)) if type(cells) is list and len(cells) == width else cells
        yield SourceRecord(index, start, value, functools.partial(raw, start, end))
        index, start = index + 1, end + 1


def check_cells(value, header: list) -> dict:
    """A CSV record as ``{column: cell}``, or ``ValueError`` for a bad row or one with the wrong
    cell count.

    Example:
        >>> check_cells(["a"], ["x", "y"])
        Traceback (most recent call last):
        ...
        ValueError: row has 1 cell(s), the header has 2
    """
    if type(value) is BadRow:
        raise ValueError(value.reason)
    if isinstance(value, list):
        raise ValueError(f"row has {len(value)} cell(s), the header has {len(header)}")
    return value
