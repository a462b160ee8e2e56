"""Record boundaries in JSON text, found without parsing values.

A top-level JSON array of objects (LLaVA, Video-ChatGPT, WavCaps ``data``) is cut into one byte
range per element, so each range can be decoded on its own, in batches, by any process. The scan
tracks only string state and bracket depth, at several hundred MB/s, with memory bounded by the
caller's output arrays.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

OK = 0
OUTPUT_FULL = 1
UNEXPECTED_CLOSE = 2
JUNK_BETWEEN_RECORDS = 3

_QUOTE = 34
_BACKSLASH = 92
_NEWLINE = 10

# Records nested deeper than this are refused (hf_mmbuilder.formats.records.MAX_NESTING): every
# JSON library in the chain has its own limit (orjson writes 254 levels, msgspec stops near
# Python's recursion limit), so one limit below all of them is checked where records are read.
MAX_NESTING = 128


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
def copy_bytes(out, o, source, start, stop):
    """Write ``source[start:stop]`` at ``out[o:]``; returns the position after it."""
    for k in range(start, stop):
        out[o] = source[k]
        o += 1
    return o


@numba.njit(cache=True, nogil=True, _nrt=False)
def put_bytes(out, o, word):
    """Write all of ``word`` at ``out[o:]``; returns the position after it."""
    return copy_bytes(out, o, word, 0, word.shape[0])


@numba.njit(cache=True, nogil=True, _nrt=False)
def same_bytes(data, a, b, other, c, d):
    """Is ``data[a:b]`` equal to ``other[c:d]`` (false when ``other`` ends before ``d``)?"""
    if b - a != d - c or d > other.shape[0]:
        return False
    for k in range(b - a):
        if data[a + k] != other[c + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def ends_with(out, o, lower, word):
    """Does ``out[lower:o]`` end with ``word``?"""
    return o - lower >= word.shape[0] and same_bytes(out, o - word.shape[0], o, word, 0, word.shape[0])


@numba.njit(cache=True, nogil=True, _nrt=False)
def starts_with(data, position, stop, word):
    """Does ``data[position:stop]`` begin with ``word``?"""
    if stop - position < word.shape[0]:
        return False
    for j in range(word.shape[0]):
        if data[position + j] != word[j]:
            return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def string_end(buf, i, end):
    """``buf[i]`` is an opening quote: one past the closing quote, or -1 (a raw control character or
    no closing quote)."""
    i += 1
    while i < end:
        c = buf[i]
        if c == _BACKSLASH:
            i += 2
            continue
        if c == _QUOTE:
            return i + 1
        if c < 32:
            return -1
        i += 1
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def value_end(buf, i, end):
    """One past the end of the JSON value starting at ``buf[i]`` (strings, nesting), or -1 (also
    for a value nested more than :data:`MAX_NESTING` levels: the careful path reports it).

    Finds the end only: the value's contents are checked by whoever parses it.
    """
    c = buf[i]
    if c == _QUOTE:
        return string_end(buf, i, end)
    if c == 123 or c == 91:
        depth = 0
        while i < end:
            c = buf[i]
            if c == _QUOTE:
                i = string_end(buf, i, end)
                if i < 0:
                    return -1
                continue
            if c == 123 or c == 91:
                depth += 1
                if depth > MAX_NESTING:
                    return -1
            elif c == 125 or c == 93:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    while i < end:
        c = buf[i]
        if c == 44 or c == 125 or c == 93 or c == 32 or c == 10 or c == 13 or c == 9:
            return i
        i += 1
    return i

@numba.njit(cache=True, nogil=True, _nrt=False)
def hex_digit(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def write_utf8(code, out, o):
    if code < 0x80:
        out[o] = code
        return o + 1
    if code < 0x800:
        out[o] = 0xC0 | (code >> 6)
        out[o + 1] = 0x80 | (code & 0x3F)
        return o + 2
    if code < 0x10000:
        out[o] = 0xE0 | (code >> 12)
        out[o + 1] = 0x80 | ((code >> 6) & 0x3F)
        out[o + 2] = 0x80 | (code & 0x3F)
        return o + 3
    out[o] = 0xF0 | (code >> 18)
    out[o + 1] = 0x80 | ((code >> 12) & 0x3F)
    out[o + 2] = 0x80 | ((code >> 6) & 0x3F)
    out[o + 3] = 0x80 | (code & 0x3F)
    return o + 4


@numba.njit(cache=True, nogil=True, _nrt=False)
def hex4(buf, k):
    code = 0
    for j in range(4):
        h = hex_digit(buf[k + j])
        if h < 0:
            return -1
        code = code * 16 + h
    return code


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def escape_code(buf, k, end):
    """The code point of the escape sequence starting at the backslash ``buf[k]`` (``end`` bounds
    it) and the position after it: a short escape, ``\\uXXXX``, or a high-low surrogate pair as
    one code point. ``(-1, k)`` for a bad escape or a lone surrogate."""
    if k + 1 >= end:
        return -1, k
    e = buf[k + 1]
    if e == 110:
        return 10, k + 2
    if e == _QUOTE or e == _BACKSLASH or e == 47:
        return e, k + 2
    if e == 116:
        return 9, k + 2
    if e == 114:
        return 13, k + 2
    if e == 98:
        return 8, k + 2
    if e == 102:
        return 12, k + 2
    if e != 117 or k + 6 > end:
        return -1, k
    code = hex4(buf, k + 2)
    if code < 0 or 0xDC00 <= code <= 0xDFFF:
        return -1, k
    if 0xD800 <= code <= 0xDBFF:
        if k + 12 > end or buf[k + 6] != _BACKSLASH or buf[k + 7] != 117:
            return -1, k
        low = hex4(buf, k + 8)
        if not (0xDC00 <= low <= 0xDFFF):
            return -1, k
        return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), k + 12
    return code, k + 6


@numba.njit(cache=True, nogil=True, _nrt=False)
def unescape_escape(buf, k, end, out, o):
    """Decode the escape sequence starting at the backslash ``buf[k]`` (``end`` bounds it) into
    ``out[o:]``. Returns ``(position after it, new o)``, or ``(-1, o)`` for a bad escape or a lone
    surrogate."""
    code, after = escape_code(buf, k, end)
    if code < 0:
        return -1, o
    return after, write_utf8(code, out, o)


@numba.njit(cache=True, nogil=True, _nrt=False)
def unescape_string(buf, i, end, out, o):
    """Copy the JSON string whose opening quote is ``buf[i]`` as UTF-8 into ``out[o:]``.

    Returns ``(position after the closing quote, new o)``, or ``(-1, o)`` for control characters,
    bad escapes or lone surrogates.
    """
    i += 1
    while i < end:
        c = buf[i]
        if c == _QUOTE:
            return i + 1, o
        if c < 32:
            return -1, o
        if c == _BACKSLASH:
            i, o = unescape_escape(buf, i, end, out, o)
            if i < 0:
                return -1, o
            continue
        out[o] = c
        o += 1
        i += 1
    return -1, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def key_is(buf, start, end, word):
    """Is the JSON string ``buf[start:end]`` (quotes included, no escapes) equal to ``word``?"""
    return end - start - 2 == word.shape[0] and starts_with(buf, start + 1, end - 1, word)


@numba.njit(cache=True, nogil=True, _nrt=False)
def string_items(buf, start, stop, data, d, offsets, n):
    """Unescape the JSON string, or list of strings, ``buf[start:stop]`` (a whole value) into
    ``data[d:]``, one item per string: item ``n`` (counting on from ``n``) ends at ``offsets[n]``.
    Returns ``(is_list, new d, new n, ok)``; ``ok`` is false for any other value (a media path or
    a list of them in LLaVA and ShareGPT records).

    Example
    -------
    >>> buf = np.frombuffer(rb'["a.jpg", "b\\u00e9.png"]', np.uint8)
    >>> data, offsets = np.empty(16, np.uint8), np.zeros(3, np.int64)
    >>> string_items(buf, 0, buf.shape[0], data, 0, offsets, 0)
    (True, 12, 2, True)
    >>> bytes(data[:12]).decode(), offsets.tolist()
    ('a.jpgb\xe9.png', [0, 5, 12])
    """
    if buf[start] == _QUOTE:
        position, d = unescape_string(buf, start, stop, data, d)
        if position != stop:
            return False, d, n, False
        n += 1
        offsets[n] = d
        return False, d, n, True
    if buf[start] != 91:
        return False, d, n, False
    i = skip_whitespace(buf, start + 1, stop)
    if i < stop and buf[i] == 93:
        return True, d, n, True
    while i < stop:
        if buf[i] != _QUOTE:
            return True, d, n, False
        i, d = unescape_string(buf, i, stop, data, d)
        if i < 0:
            return True, d, n, False
        n += 1
        offsets[n] = d
        i = skip_whitespace(buf, i, stop)
        if i < stop and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, stop)
            continue
        return True, d, n, i < stop and buf[i] == 93
    return True, d, n, False


@numba.njit(cache=True, nogil=True, _nrt=False)
def too_deep(buf, starts, ends, limit, out):
    """``out[r] = 1`` where ``buf[starts[r]:ends[r]]`` nests arrays/objects more than ``limit``
    levels deep (strings skipped), else 0; returns how many records are too deep.

    Complexity: one branch-free (vectorised) pass counting each record's opening brackets; only
    a record with more than ``limit`` of them (so possibly that deep) is scanned for its depth,
    strings skipped. No allocation.

    Example
    -------
    >>> buf = np.frombuffer(b'[[1]] {"a":"[[["}', dtype=np.uint8)
    >>> out = np.zeros(2, np.uint8)
    >>> too_deep(buf, np.array([0, 6]), np.array([5, 17]), 1, out), out.tolist()
    (1, [1, 0])
    """
    found = 0
    for r in range(starts.shape[0]):
        i = starts[r]
        end = ends[r]
        deep = 0
        opening = 0
        for k in range(i, end):
            # "[" (0x5B) and "{" (0x7B) are the only bytes equal to 0x7B once 0x20 is set.
            opening += (buf[k] | 32) == 123
        if opening <= limit:
            out[r] = 0
            continue
        depth = 0
        while i < end:
            c = buf[i]
            if c == _QUOTE:
                i += 1
                while i < end and buf[i] != _QUOTE:
                    if buf[i] == _BACKSLASH:
                        i += 1
                    i += 1
            elif c == 123 or c == 91:
                depth += 1
                if depth > limit:
                    deep = 1
                    break
            elif c == 125 or c == 93:
                depth -= 1
            i += 1
        out[r] = deep
        found += deep
    return found


@numba.njit(cache=True, nogil=True, _nrt=False)
def member_value(buf, key):
    """Where the value of member ``key`` (bytes between the quotes, no escapes) of the top-level
    JSON object in ``buf`` starts, or -1; nothing but string state and depth is tracked, so the
    rest of the document may be malformed.

    Example
    -------
    >>> member_value(np.frombuffer(b'{"a": {"data": 1}, "data": [1]}', np.uint8), np.frombuffer(b"data", np.uint8))
    27
    """
    n = buf.shape[0]
    depth = 0
    i = 0
    while i < n:
        c = buf[i]
        if c == _QUOTE:
            stop = string_end(buf, i, n)
            if stop < 0:
                return -1
            if depth == 1 and stop - i - 2 == key.shape[0] and starts_with(buf, i + 1, stop - 1, key):
                j = skip_whitespace(buf, stop, n)
                if j < n and buf[j] == 58:
                    return skip_whitespace(buf, j + 1, n)
            i = stop
            continue
        if c == 123 or c == 91:
            depth += 1
        elif c == 125 or c == 93:
            depth -= 1
        i += 1
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def scan_array_elements(buf, position, state, starts, ends, lines):
    """Find the elements of the outermost JSON array in ``buf[position:]``, resuming from ``state``.

    Parameters
    ----------
    buf : ndarray of uint8, shape (n,)
        A chunk of the file; byte ``i`` of it is at file offset ``state[5] + i``.
    position : int
        Where to start in ``buf``.
    state : ndarray of int64, shape (8,)
        Scanner state, updated in place: ``[depth, in_string, escaped, current_start,
        line, base_offset, current_line, opened]``. Start with ``[0, 0, 0, -1, 1, 0, 0, 0]``
        (``opened`` becomes 1 at the array's ``[``: anything but blanks at depth 0 after it,
        a second array or an object after the first, is ``JUNK_BETWEEN_RECORDS``).
        A record still open at the end of the file is at ``current_start`` (truncated).
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
    >>> state = np.array([0, 0, 0, -1, 1, 0, 0, 0], dtype=np.int64)
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
    opened = state[7]
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
        if depth == 0 and not _is_space(byte):
            if byte != 91 or opened:
                status = JUNK_BETWEEN_RECORDS
                break
            opened = 1
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
        i += 1
    state[0] = depth
    state[1] = in_string
    state[2] = escaped
    state[3] = current
    state[4] = line
    state[6] = current_line
    state[7] = opened
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

    Complexity: two compiled passes over ``buf`` (a newline count, then the ranges), eight bytes
    at a time, and no temporary of its size.

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


_ONES = np.uint64(0x0101010101010101)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)


@intrinsic
def load8(typingctx, buf, i):
    """``buf[i:i + 8]`` of a uint8 array as a little-endian uint64: one unaligned load, no bounds check."""
    if not (isinstance(buf, types.Array) and buf.dtype == types.uint8 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        address = builder.gep(array.data, [index])
        word = builder.bitcast(address, ir.IntType(64).as_pointer())
        return builder.load(word, align=1)

    return types.uint64(buf, i), codegen


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _bytes_equal_to(word, byte_times_ones):
    """0x80 in each byte of ``word`` equal to the byte repeated in ``byte_times_ones``, 0 in the
    others (exact: no borrow crosses bytes)."""
    x = word ^ byte_times_ones
    return ~(((x & _LOW7) + _LOW7) | x | _LOW7)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _count_newlines(buf):
    n = buf.shape[0]
    count = 0
    i = 0
    while i + 8 <= n:
        # One 0x01 per newline byte, summed into the top byte by the multiplication.
        count += np.int64((((_bytes_equal_to(load8(buf, i), _NEWLINES) >> np.uint64(7)) * _ONES) >> np.uint64(56)))
        i += 8
    while i < n:
        count += buf[i] == _NEWLINE
        i += 1
    return count


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _find_newline(buf, i, n):
    """Index of the first newline in ``buf[i:n]`` (or ``n``), eight bytes at a time."""
    while i + 8 <= n and _bytes_equal_to(load8(buf, i), _NEWLINES) == 0:
        i += 8
    while i < n and buf[i] != _NEWLINE:
        i += 1
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def _fill_line_ranges(buf, base_offset, first_line, starts, ends, lines):
    """Write the non-blank lines' ranges; returns how many."""
    n = buf.shape[0]
    count = 0
    line = first_line
    start = 0
    while True:
        stop = _find_newline(buf, start, n)
        first = start
        while first < stop and _is_space(buf[first]):
            first += 1
        if first < stop:
            starts[count] = start + base_offset
            ends[count] = stop + base_offset
            lines[count] = line
            count += 1
        if stop >= n:
            return count
        line += 1
        start = stop + 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def records_holding(buf, starts, ends, core, escaped, escaped_above_ascii, out):
    """Flag the records whose decoded strings may hold ``core``: ``out[k] = 1`` where
    ``buf[starts[k]:ends[k]]`` holds the bytes of ``core`` or an escape (``\\uXXXX`` or a short
    one) of a character ``core`` holds (``escaped[code] == 1`` for an ASCII code, any code above
    ASCII when ``escaped_above_ascii``) or a malformed escape; ``out[k] = 0`` elsewhere. A text
    holding ``core`` is written either with its bytes as they are or with one of its characters
    escaped, so no record holding it is missed.

    Parameters: ``buf`` uint8 ``(n,)``; ``starts``, ``ends`` int64 ``(records,)``; ``core`` uint8
    ``(m,)``, ``m >= 1``; ``escaped`` uint8 ``(128,)``; ``out`` uint8 ``(records,)``.
    Returns the number of records flagged. O(n): eight bytes at a time between candidates.
    """
    first = np.uint64(core[0]) * _ONES
    backslash = np.uint64(_BACKSLASH) * _ONES
    m = core.shape[0]
    flagged = 0
    for k in range(starts.shape[0]):
        i, end = starts[k], ends[k]
        hit = 0
        while i < end and hit == 0:
            if i + 8 <= end and (_bytes_equal_to(load8(buf, i), first) | _bytes_equal_to(load8(buf, i), backslash)) == 0:
                i += 8
                continue
            c = buf[i]
            if c == _BACKSLASH:
                code, after = escape_code(buf, i, end)
                if code < 0 or (code < 128 and escaped[code] == 1) or (code >= 128 and escaped_above_ascii):
                    hit = 1
                i = after
                continue
            if c == core[0] and i + m <= end:
                j = 1
                while j < m and buf[i + j] == core[j]:
                    j += 1
                if j == m:
                    hit = 1
            i += 1
        out[k] = hit
        flagged += hit
    return flagged


# -- canonical JSON: a value written as orjson writes what msgspec decodes from it ---------------

_MAX_OBJECT_KEYS = 512
_SIGNIFICANT_DIGITS = 15


@numba.njit(cache=True, nogil=True, _nrt=False)
def canonical_string(buf, i, end, out, o):
    """Write the JSON string whose opening quote is ``buf[i]`` at ``out[o:]`` as orjson writes its
    value: escapes decoded, then only ``"``, ``\\`` and control characters escaped (``\\n``-style
    where JSON has a short form, else ``\\u00xx``). Returns ``(position after the closing quote,
    new o)``, or ``(-1, o)`` where :func:`unescape_string` refuses the string."""
    out[o] = _QUOTE
    o += 1
    i += 1
    while i < end:
        c = buf[i]
        if c == _QUOTE:
            out[o] = _QUOTE
            return i + 1, o + 1
        if c < 32:
            return -1, o
        if c != _BACKSLASH:
            out[o] = c
            o += 1
            i += 1
            continue
        first = o
        i, o = unescape_escape(buf, i, end, out, o)
        if i < 0:
            return -1, o
        if o - first == 1:
            d = out[first]
            if d == _QUOTE or d == _BACKSLASH:
                out[first] = _BACKSLASH
                out[first + 1] = d
                o = first + 2
            elif d < 32:
                out[first] = _BACKSLASH
                short = 98 if d == 8 else 116 if d == 9 else 110 if d == 10 else 102 if d == 12 else 114 if d == 13 else 0
                if short:
                    out[first + 1] = short
                    o = first + 2
                else:
                    out[first + 1] = 117
                    out[first + 2] = 48
                    out[first + 3] = 48
                    out[first + 4] = 48 + (d >> 4)
                    low = d & 15
                    out[first + 5] = 48 + low if low < 10 else 87 + low
                    o = first + 6
    return -1, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def canonical_number(buf, i, end, out, o):
    """Copy the JSON number at ``buf[i]`` to ``out[o:]`` when orjson would write its decoded value
    with the same bytes: an integer of at most 18 digits (not ``-0``), or a decimal fraction with
    at most 15 significant digits, no trailing zero (``1.0`` aside), no exponent, below ``1e15``
    and at least ``1e-4`` (positional in orjson, and the shortest digits that round-trip).
    Returns ``(position after it, new o)``, or ``(-1, o)`` for any other number."""
    j = i
    if j < end and buf[j] == 45:
        j += 1
    digits_start = j
    if j < end and buf[j] == 48:
        j += 1
    else:
        while j < end and 48 <= buf[j] <= 57:
            j += 1
    int_digits = j - digits_start
    if int_digits == 0:
        return -1, o
    if j < end and (buf[j] == 101 or buf[j] == 69):
        return -1, o
    if j >= end or buf[j] != 46:
        if int_digits > 18 or (buf[i] == 45 and buf[digits_start] == 48):
            return -1, o
        return j, copy_bytes(out, o, buf, i, j)
    j += 1
    fraction_start = j
    while j < end and 48 <= buf[j] <= 57:
        j += 1
    fraction_digits = j - fraction_start
    if fraction_digits == 0 or (j < end and (buf[j] == 101 or buf[j] == 69)):
        return -1, o
    if buf[j - 1] == 48 and not (fraction_digits == 1):
        return -1, o
    if buf[digits_start] == 48:
        zeros = 0
        while zeros < fraction_digits and buf[fraction_start + zeros] == 48:
            zeros += 1
        if zeros == fraction_digits:
            significant = 1
        else:
            if zeros > 3:
                return -1, o
            significant = fraction_digits - zeros
    else:
        if buf[j - 1] == 48:
            significant = int_digits
        else:
            significant = int_digits + fraction_digits
        if int_digits > _SIGNIFICANT_DIGITS:
            return -1, o
    if significant > _SIGNIFICANT_DIGITS:
        return -1, o
    return j, copy_bytes(out, o, buf, i, j)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _literal(buf, i, end, word):
    return starts_with(buf, i, end, word)


_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def canonical_value(buf, i, end, out, o, key_starts, key_ends, first_keys):
    """Write the JSON value starting at ``buf[i]`` at ``out[o:]`` exactly as ``orjson.dumps``
    writes ``msgspec.json.decode`` of it: no whitespace, strings as :func:`canonical_string`,
    numbers as :func:`canonical_number`. Returns ``(position after the value, new o)``, or
    ``(-1, o)`` where the two could differ or the value is not JSON: a number in another notation,
    a repeated key in an object (a decoded dict keeps one), nesting beyond :data:`MAX_NESTING`,
    more than 512 keys open at once. ``key_starts``/``key_ends`` (int64, 512) and ``first_keys``
    (int64, ``MAX_NESTING + 1``: per open container, its first key slot, -1 for an array) are
    scratch.

    Example
    -------
    >>> out = np.zeros(64, np.uint8)
    >>> scratch = np.zeros(512, np.int64), np.zeros(512, np.int64), np.zeros(MAX_NESTING + 1, np.int64)
    >>> raw = np.frombuffer(b'{"a": [1, 2.5, null], "b": "\\\\u00e9\\\\/"}', np.uint8)
    >>> stop, o = canonical_value(raw, 0, len(raw), out, 0, *scratch)
    >>> bytes(out[:o]).decode()
    '{"a":[1,2.5,null],"b":"é/"}'
    """
    depth = 0
    n_keys = 0
    need_key = False
    while True:
        i = skip_whitespace(buf, i, end)
        if i >= end:
            return -1, o
        if need_key:
            if buf[i] != _QUOTE:
                return -1, o
            key_start = o
            i, o = canonical_string(buf, i, end, out, o)
            if i < 0:
                return -1, o
            first = first_keys[depth]
            for k in range(first, n_keys):
                if same_bytes(out, key_starts[k], key_ends[k], out, key_start, o):
                    return -1, o
            if n_keys >= key_starts.shape[0]:
                return -1, o
            key_starts[n_keys] = key_start
            key_ends[n_keys] = o
            n_keys += 1
            i = skip_whitespace(buf, i, end)
            if i >= end or buf[i] != 58:
                return -1, o
            out[o] = 58
            o += 1
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                return -1, o
            need_key = False
        c = buf[i]
        if c == 123 or c == 91:
            if depth >= MAX_NESTING:
                return -1, o
            depth += 1
            out[o] = c
            o += 1
            first_keys[depth] = n_keys if c == 123 else -1
            i = skip_whitespace(buf, i + 1, end)
            if i < end and buf[i] == c + 2:
                out[o] = c + 2
                o += 1
                i += 1
                depth -= 1
            elif c == 123:
                need_key = True
                continue
            else:
                continue
        elif c == _QUOTE:
            i, o = canonical_string(buf, i, end, out, o)
        elif c == 116:
            if not _literal(buf, i, end, _TRUE):
                return -1, o
            o = copy_bytes(out, o, buf, i, i + 4)
            i += 4
        elif c == 102:
            if not _literal(buf, i, end, _FALSE):
                return -1, o
            o = copy_bytes(out, o, buf, i, i + 5)
            i += 5
        elif c == 110:
            if not _literal(buf, i, end, _NULL):
                return -1, o
            o = copy_bytes(out, o, buf, i, i + 4)
            i += 4
        else:
            i, o = canonical_number(buf, i, end, out, o)
        if i < 0:
            return -1, o
        # After a value: close containers, or go on to the next member / element.
        while True:
            if depth == 0:
                return i, o
            i = skip_whitespace(buf, i, end)
            if i >= end:
                return -1, o
            c = buf[i]
            is_object = first_keys[depth] >= 0
            if c == 44:
                out[o] = 44
                o += 1
                i += 1
                need_key = is_object
                break
            if c == (125 if is_object else 93):
                out[o] = c
                o += 1
                i += 1
                if is_object:
                    n_keys = first_keys[depth]
                depth -= 1
                continue
            return -1, o
