"""Record boundaries in JSON text, found without parsing values.

A top-level JSON array of objects (LLaVA, Video-ChatGPT, WavCaps ``data``) is cut into one byte
range per element, so each range can be decoded on its own, in batches, by any process. The scan
tracks only string state and bracket depth, at several hundred MB/s, with memory bounded by the
caller's output arrays.
"""

from __future__ import annotations

import numba
import numpy as np

OK = 0
OUTPUT_FULL = 1
UNEXPECTED_CLOSE = 2
JUNK_BETWEEN_RECORDS = 3

_QUOTE = 34
_BACKSLASH = 92
_NEWLINE = 10


@numba.njit(cache=True, nogil=True, _nrt=False)
def _is_space(byte: np.uint8) -> bool:
    return byte == 32 or byte == 9 or byte == 10 or byte == 13


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def skip_whitespace(buf, i, end):
    """First index >= ``i`` of ``buf[:end]`` that is not JSON whitespace (or ``end``); for the
    compiled parsers."""
    while i < end and (buf[i] == 32 or buf[i] == 10 or buf[i] == 13 or buf[i] == 9):
        i += 1
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def scan_array_elements(buf, position, state, starts, ends, lines):
    """Find the elements of the outermost JSON array in ``buf[position:]``, resuming from ``state``.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n,)
        A chunk of the file; byte ``i`` of it is at file offset ``state[5] + i``.
    position : int
        Where to start in ``buf``.
    state : ndarray of int64, shape (7,)
        Scanner state, updated in place: ``[depth, in_string, escaped, current_start,
        line, base_offset, current_line]``. Start with ``[0, 0, 0, -1, 1, 0, 0]``.
    starts, ends, lines : ndarray of int64, shape (m,)
        Output: file offsets of each element's first byte and one past its last byte, and the
        1-based line it starts on.

    Returns
    -------
    (status, position, count) : tuple of int
        ``status`` is ``OK`` when ``buf`` is consumed, ``OUTPUT_FULL`` when the outputs filled up
        (call again from ``position``), or an error code with ``position`` at the offending byte.
        ``count`` elements were written.

    Complexity: O(n) time, one pass, no allocation.

    Example
    -------
    >>> buf = np.frombuffer(b'[{"a": "]"}, {"b": [1]}]', dtype=np.uint8)
    >>> state = np.array([0, 0, 0, -1, 1, 0, 0], dtype=np.int64)
    >>> out = np.zeros(4, dtype=np.int64)
    >>> status, pos, count = scan_array_elements(buf, 0, state, out, out.copy(), out.copy())
    >>> (status, count)
    (0, 2)
    """
    depth = state[0]
    in_string = state[1]
    escaped = state[2]
    current = state[3]
    line = state[4]
    base = state[5]
    current_line = state[6]
    count = 0
    n = buf.shape[0]
    status = OK
    i = position
    while i < n:
        if in_string:
            if escaped:
                escaped = 0
                i += 1
                continue
            # Strings hold most of the bytes: skip to the next quote or backslash in a tight loop
            # (JSON strings cannot contain raw newlines, so no line counting here).
            while i < n and buf[i] != _QUOTE and buf[i] != _BACKSLASH:
                i += 1
            if i == n:
                break
            if buf[i] == _BACKSLASH:
                escaped = 1
            else:
                in_string = 0
            i += 1
            continue
        byte = buf[i]
        if byte == 32:
            # Indentation of pretty-printed files: most bytes outside strings.
            i += 1
            continue
        if byte == _NEWLINE:
            line += 1
        if byte == _QUOTE:
            in_string = 1
            if depth == 1 and current < 0:
                current = base + i
                current_line = line
        elif byte == 123 or byte == 91:  # { [
            if depth == 1 and current < 0:
                current = base + i
                current_line = line
            depth += 1
        elif byte == 125 or byte == 93:  # } ]
            depth -= 1
            if depth < 0:
                status = UNEXPECTED_CLOSE
                break
            # Closing an element (depth 1), or the array itself with a scalar element pending.
            if current >= 0 and depth <= 1:
                if count == starts.shape[0]:
                    depth += 1
                    status = OUTPUT_FULL
                    break
                starts[count] = current
                ends[count] = base + i + 1 if depth == 1 else base + i
                lines[count] = current_line
                count += 1
                current = -1
        elif depth == 1:
            if byte == 44:  # a comma ends a scalar element
                if current >= 0:
                    if count == starts.shape[0]:
                        status = OUTPUT_FULL
                        break
                    starts[count] = current
                    ends[count] = base + i
                    lines[count] = current_line
                    count += 1
                    current = -1
            elif current < 0 and not _is_space(byte):
                current = base + i
                current_line = line
        elif depth == 0 and not _is_space(byte):
            status = JUNK_BETWEEN_RECORDS
            break
        i += 1
    state[0] = depth
    state[1] = in_string
    state[2] = escaped
    state[3] = current
    state[4] = line
    state[6] = current_line
    return status, i, count


def line_ranges(buf: np.ndarray, base_offset: int, first_line: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Byte ranges of the non-blank lines of a JSON-lines chunk (each line one record).

    Parameters
    ----------
    buf : ndarray of uint8, shape (n,)
        Whole lines (the caller cuts chunks after a newline).
    base_offset : int
        File offset of ``buf[0]``.
    first_line : int
        1-based line number of ``buf[0]``.

    Returns
    -------
    starts, ends, lines : ndarray of int64
        File offsets of each non-blank line (without its newline) and its 1-based line number.
    next_line : int
        Line number of the byte after ``buf`` (``first_line`` + the newlines in ``buf``).

    Complexity: two compiled passes over ``buf`` (a vectorised newline count, then the ranges) and
    no temporary of its size.

    Example
    -------
    >>> s, e, l, after = line_ranges(np.frombuffer(b'{"a":1}\\n\\n{"b":2}\\n', np.uint8), 0, 1)
    >>> s.tolist(), e.tolist(), l.tolist(), after
    ([0, 9], [7, 16], [1, 3], 4)
    """
    newlines = _count_newlines(buf)
    starts = np.empty(newlines + 1, np.int64)
    ends = np.empty(newlines + 1, np.int64)
    lines = np.empty(newlines + 1, np.int64)
    count = _fill_line_ranges(buf, base_offset, first_line, starts, ends, lines)
    return starts[:count], ends[:count], lines[:count], first_line + newlines


@numba.njit(cache=True, nogil=True, _nrt=False)
def _count_newlines(buf):
    count = 0
    for i in range(buf.shape[0]):
        count += buf[i] == _NEWLINE
    return count


@numba.njit(cache=True, nogil=True, _nrt=False)
def _fill_line_ranges(buf, base_offset, first_line, starts, ends, lines):
    """Write the non-blank lines' ranges; returns how many."""
    count = 0
    line = first_line
    start = 0
    blank = True
    for i in range(buf.shape[0] + 1):
        if i == buf.shape[0] or buf[i] == _NEWLINE:
            if not blank:
                starts[count] = start + base_offset
                ends[count] = i + base_offset
                lines[count] = line
                count += 1
            line += 1
            start = i + 1
            blank = True
        elif blank and not _is_space(buf[i]):
            blank = False
    return count
