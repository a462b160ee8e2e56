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


@numba.njit(cache=True, nogil=True, _nrt=False)
def unescape_escape(buf, k, end, out, o):
    """Decode the escape sequence starting at the backslash ``buf[k]`` (``end`` bounds it) into
    ``out[o:]``. Returns ``(position after it, new o)``, or ``(-1, o)`` for a bad escape or a lone
    surrogate."""
    if k + 1 >= end:
        return -1, o
    e = buf[k + 1]
    if e == 110:
        out[o] = 10
    elif e == _QUOTE or e == _BACKSLASH or e == 47:
        out[o] = e
    elif e == 116:
        out[o] = 9
    elif e == 114:
        out[o] = 13
    elif e == 98:
        out[o] = 8
    elif e == 102:
        out[o] = 12
    elif e == 117:
        if k + 6 > end:
            return -1, o
        code = hex4(buf, k + 2)
        k += 6
        if code < 0 or 0xDC00 <= code <= 0xDFFF:
            return -1, o
        if 0xD800 <= code <= 0xDBFF:
            if k + 6 > end or buf[k] != _BACKSLASH or buf[k + 1] != 117:
                return -1, o
            low = hex4(buf, k + 2)
            if not (0xDC00 <= low <= 0xDFFF):
                return -1, o
            k += 6
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        return k, write_utf8(code, out, o)
    else:
        return -1, o
    return k + 2, o + 1


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


MEMBERS_OK = 0
MEMBERS_FALLBACK = 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _key_index(buf, start, stop, keys, key_offsets):
    for k in range(key_offsets.shape[0] - 1):
        if key_offsets[k + 1] - key_offsets[k] == stop - start and starts_with(buf, start, stop, keys[key_offsets[k]:key_offsets[k + 1]]):
            return k
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def object_members(buf, starts, ends, keys, key_offsets, value_starts, value_ends, status):
    """Where each known member's value lies in each JSON object ``buf[starts[r]:ends[r]]``.

    Parameters
    ----------
    buf : ndarray of uint8
    starts, ends : ndarray of int64, shape (n,)
        Byte range of each record (one JSON object, whitespace around allowed).
    keys : ndarray of uint8; key_offsets : ndarray of int64, shape (m + 1,)
        The known member names, concatenated (as they appear between the quotes, no escapes).
    value_starts, value_ends : ndarray of int64, shape (n, m)
        Receive each member's value range (``-1`` when the member is absent).
    status : ndarray of int8, shape (n,)
        ``MEMBERS_OK``, or ``MEMBERS_FALLBACK`` for a record that is not an object whose members
        are all known and distinct (the caller reads those another way).

    Complexity: O(len(buf)), the values are skipped (:func:`value_end`), not parsed.

    Example
    -------
    >>> buf = np.frombuffer(b'{"a": [1, {"b": 2}], "b": "x"}{"c": 1}', np.uint8)
    >>> keys, offsets = np.frombuffer(b"ab", np.uint8), np.array([0, 1, 2])
    >>> vs, ve, st = np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64), np.zeros(2, np.int8)
    >>> object_members(buf, np.array([0, 30]), np.array([30, 38]), keys, offsets, vs, ve, st)
    >>> [bytes(buf[a:b]) for a, b in zip(vs[0], ve[0])], st.tolist()
    ([b'[1, {"b": 2}]', b'"x"'], [0, 1])
    """
    n_keys = key_offsets.shape[0] - 1
    for r in range(starts.shape[0]):
        end = ends[r]
        for k in range(n_keys):
            value_starts[r, k] = -1
            value_ends[r, k] = -1
        status[r] = MEMBERS_FALLBACK
        i = skip_whitespace(buf, starts[r], end)
        if i >= end or buf[i] != 123:
            continue
        i = skip_whitespace(buf, i + 1, end)
        if i < end and buf[i] == 125:
            status[r] = MEMBERS_OK if skip_whitespace(buf, i + 1, end) == end else MEMBERS_FALLBACK
            continue
        while i < end and buf[i] == _QUOTE:
            key_end = string_end(buf, i, end)
            if key_end < 0:
                break
            k = _key_index(buf, i + 1, key_end - 1, keys, key_offsets)
            if k < 0 or value_starts[r, k] >= 0:
                break
            i = skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                break
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                break
            value_stop = value_end(buf, i, end)
            if value_stop < 0 or value_stop == i:
                break
            value_starts[r, k] = i
            value_ends[r, k] = value_stop
            i = skip_whitespace(buf, value_stop, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125 and skip_whitespace(buf, i + 1, end) == end:
                status[r] = MEMBERS_OK
            break


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
def _newline_bytes(word):
    """0x80 in each byte of ``word`` that is a newline, 0 in the others (exact: no borrow crosses bytes)."""
    x = word ^ _NEWLINES
    return ~(((x & _LOW7) + _LOW7) | x | _LOW7)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _count_newlines(buf):
    n = buf.shape[0]
    count = 0
    i = 0
    while i + 8 <= n:
        # One 0x01 per newline byte, summed into the top byte by the multiplication.
        count += np.int64((((_newline_bytes(load8(buf, i)) >> np.uint64(7)) * _ONES) >> np.uint64(56)))
        i += 8
    while i < n:
        count += buf[i] == _NEWLINE
        i += 1
    return count


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _find_newline(buf, i, n):
    """Index of the first newline in ``buf[i:n]`` (or ``n``), eight bytes at a time."""
    while i + 8 <= n and _newline_bytes(load8(buf, i)) == 0:
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
