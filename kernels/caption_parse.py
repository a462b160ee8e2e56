"""One compiled pass over a batch of flat JSON records (WavCaps, Video-ChatGPT, InternVid,
MSR-VTT): the named string fields unescaped into their own buffers, every other member checked
and copied into one compact JSON object per record, and the keys in order.

A format is a field spec: the member names, and per name whether it is a string
(:data:`STRING`), a string or an integer (:data:`STRING_OR_INT`, an id), or must be absent
(:data:`ABSENT`). A record the kernel is not sure about (not JSON, not an object, a named field
missing or of another type, a key with an escape or repeated, a value nested deep, a number whose
text a JSON round trip may change) is flagged :data:`FALLBACK`: its rows are empty and the careful
Python path converts it, producing every error message.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import MAX_NESTING, escape_code, same_bytes, skip_whitespace, string_end, unescape_string

FAST = 0
FALLBACK = 1

STRING = 0
STRING_OR_INT = 1
ABSENT = 2

KIND_STRING = 1
KIND_INT = 2

_QUOTE = 34
_BACKSLASH = 92
# Keys per record the kernel compares for repeats; a record with more goes the careful way.
MAX_KEYS = 64
# Numbers the kernel copies as they are: an integer of at most 18 digits is a 64-bit one, a
# float of at most 200 digits and a 2-digit exponent cannot overflow (the careful path writes
# the others as orjson does). An integer id of at most 15 digits is taken as it is written.
_MAX_INTEGER_DIGITS = 18
_MAX_MANTISSA_DIGITS = 200
_MAX_EXPONENT_DIGITS = 2
_MAX_ID_DIGITS = 15
# A value nested this deep (under its record and, for WavCaps, its document) goes the careful
# way, which applies the nesting limit exactly.
_MAX_VALUE_DEPTH = MAX_NESTING - 3


@numba.njit(cache=True, nogil=True, _nrt=False)
def _named(buf, start, stop, keys, key_offsets):
    for k in range(key_offsets.shape[0] - 1):
        length = key_offsets[k + 1] - key_offsets[k]
        if length == stop - start:
            same = True
            for j in range(length):
                if buf[start + j] != keys[key_offsets[k] + j]:
                    same = False
                    break
            if same:
                return k
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_string(buf, i, end, out, o):
    """Copy the JSON string whose opening quote is ``buf[i]`` to ``out[o:]`` as it is written,
    checking its escapes (a ``\\u`` surrogate only as a high-low pair). Returns ``(position after
    the closing quote, new o)``, or ``(-1, o)`` when it is not a JSON string."""
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
        size = escape_code(buf, i, end)[1] - i
        if size <= 0:
            return -1, o
        for j in range(i, i + size):
            out[o] = buf[j]
            o += 1
        i += size
    return -1, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_number(buf, i, end, out, o):
    """Copy the JSON number at ``buf[i]`` to ``out[o:]`` as it is written. Returns ``(position
    after it, new o)``, or ``(-1, o)`` when it is not a JSON number or a JSON round trip may
    change its value (an integer past 64 bits, a float that may overflow)."""
    start = i
    if i < end and buf[i] == 45:
        i += 1
    digits_start = i
    if i < end and buf[i] == 48:
        i += 1
    else:
        while i < end and 48 <= buf[i] <= 57:
            i += 1
    if i == digits_start:
        return -1, o
    digits = i - digits_start
    integer = True
    if i < end and buf[i] == 46:
        integer = False
        i += 1
        fraction_start = i
        while i < end and 48 <= buf[i] <= 57:
            i += 1
        if i == fraction_start:
            return -1, o
        digits += i - fraction_start
    if i < end and (buf[i] == 101 or buf[i] == 69):
        integer = False
        i += 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            i += 1
        exponent_start = i
        while i < end and 48 <= buf[i] <= 57:
            i += 1
        if i == exponent_start or i - exponent_start > _MAX_EXPONENT_DIGITS:
            return -1, o
    if digits > _MAX_MANTISSA_DIGITS or (integer and digits > _MAX_INTEGER_DIGITS):
        return -1, o
    for j in range(start, i):
        out[o] = buf[j]
        o += 1
    return i, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_literal(buf, i, end, out, o, word):
    if i + word.shape[0] > end:
        return -1, o
    for j in range(word.shape[0]):
        if buf[i + j] != word[j]:
            return -1, o
        out[o] = word[j]
        o += 1
    return i + word.shape[0], o


_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_key(buf, i, end, out, o):
    """Copy an object member's key and its colon (``buf[i]`` after the opening brace or a comma,
    whitespace skipped): ``(position after the colon, new o)``, or ``(-1, o)``."""
    if i >= end or buf[i] != _QUOTE:
        return -1, o
    i, o = _copy_string(buf, i, end, out, o)
    if i < 0:
        return -1, o
    i = skip_whitespace(buf, i, end)
    if i >= end or buf[i] != 58:
        return -1, o
    out[o] = 58
    return i + 1, o + 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_value(buf, i, end, out, o, open_brackets):
    """Copy the JSON value starting at ``buf[i]`` (before ``end``) to ``out[o:]`` without its
    whitespace (strings and numbers as they are written), checking that it is JSON. Returns
    ``(position after it, new o)``, or ``(-1, o)`` when it is not JSON, nests deeper than
    ``_MAX_VALUE_DEPTH`` or holds a number a JSON round trip may change. ``open_brackets``
    (uint8, ``_MAX_VALUE_DEPTH``) is scratch: the brackets open at each depth."""
    depth = 0
    while True:
        i = skip_whitespace(buf, i, end)
        if i >= end:
            return -1, o
        c = buf[i]
        if c == _QUOTE:
            i, o = _copy_string(buf, i, end, out, o)
        elif c == 123 or c == 91:
            if depth == _MAX_VALUE_DEPTH:
                return -1, o
            out[o] = c
            o += 1
            i = skip_whitespace(buf, i + 1, end)
            if i < end and buf[i] == c + 2:
                out[o] = c + 2
                o += 1
                i += 1
            else:
                open_brackets[depth] = c
                depth += 1
                if c == 123:
                    i, o = _copy_key(buf, i, end, out, o)
                    if i < 0:
                        return -1, o
                continue
        elif c == 116:
            i, o = _copy_literal(buf, i, end, out, o, _TRUE)
        elif c == 102:
            i, o = _copy_literal(buf, i, end, out, o, _FALSE)
        elif c == 110:
            i, o = _copy_literal(buf, i, end, out, o, _NULL)
        else:
            i, o = _copy_number(buf, i, end, out, o)
        if i < 0:
            return -1, o
        # After a value: close what it ends, or go on to the next member or element.
        while depth > 0:
            i = skip_whitespace(buf, i, end)
            if i >= end:
                return -1, o
            c = buf[i]
            if c == open_brackets[depth - 1] + 2:
                out[o] = c
                o += 1
                i += 1
                depth -= 1
                continue
            if c != 44:
                return -1, o
            out[o] = 44
            o += 1
            i = skip_whitespace(buf, i + 1, end)
            if open_brackets[depth - 1] == 123:
                i, o = _copy_key(buf, i, end, out, o)
                if i < 0:
                    return -1, o
            break
        if depth == 0:
            return i, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _integer_end(buf, i, end):
    """One past a plain non-negative JSON integer at ``buf[i]`` of at most 15 digits (no sign,
    no leading zero, no fraction or exponent), or -1."""
    k = i
    while k < end and 48 <= buf[k] <= 57:
        k += 1
    if k == i or k - i > _MAX_ID_DIGITS or (buf[i] == 48 and k - i > 1):
        return -1
    if k < end and (buf[k] == 46 or buf[k] == 101 or buf[k] == 69):
        return -1
    return k


@numba.njit(cache=True, nogil=True, _nrt=False)
def _record(buf, i, end, keys, key_offsets, kinds, fields, field_offsets, field_kinds, r, positions,
            extra, names, name_offsets, key_starts, key_ends, open_brackets):
    """Parse one record into the outputs; ``positions`` holds each field's write position, then
    the extra's, then the names' data and item counts. Returns False for a record to fall back."""
    m = kinds.shape[0]
    write_names = names.shape[0] > 0
    e = positions[m]
    i = skip_whitespace(buf, i, end)
    if i >= end or buf[i] != 123:
        return False
    for k in range(m):
        field_kinds[k, r] = 0
    extra[e] = 123
    e += 1
    first_extra = True
    count = 0
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 125:
        i += 1
    else:
        while True:
            if i >= end or buf[i] != _QUOTE:
                return False
            key_end = string_end(buf, i, end)
            if key_end < 0:
                return False
            for j in range(i + 1, key_end - 1):
                if buf[j] == _BACKSLASH:
                    return False
            if count == MAX_KEYS:
                return False
            for previous in range(count):
                length = key_ends[previous] - key_starts[previous]
                if length == key_end - i and same_bytes(buf, key_starts[previous], key_starts[previous] + length, buf, i, i + length):
                    return False
            key_starts[count] = i
            key_ends[count] = key_end
            count += 1
            if write_names:
                d = positions[m + 1]
                for j in range(i + 1, key_end - 1):
                    names[d] = buf[j]
                    d += 1
                positions[m + 1] = d
                name_offsets[positions[m + 2] + 1] = d
                positions[m + 2] += 1
            k = _named(buf, i + 1, key_end - 1, keys, key_offsets)
            i = skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                return False
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                return False
            if k >= 0:
                if kinds[k] == ABSENT:
                    return False
                if buf[i] == _QUOTE:
                    stop, o = unescape_string(buf, i, end, fields[k], positions[k])
                    if stop < 0:
                        return False
                    positions[k] = o
                    field_kinds[k, r] = KIND_STRING
                elif kinds[k] == STRING_OR_INT:
                    stop = _integer_end(buf, i, end)
                    if stop < 0:
                        return False
                    o = positions[k]
                    for j in range(i, stop):
                        fields[k, o] = buf[j]
                        o += 1
                    positions[k] = o
                    field_kinds[k, r] = KIND_INT
                else:
                    return False
            else:
                if not first_extra:
                    extra[e] = 44
                    e += 1
                first_extra = False
                for j in range(key_starts[count - 1], key_ends[count - 1]):
                    extra[e] = buf[j]
                    e += 1
                extra[e] = 58
                e += 1
                stop, e = _copy_value(buf, i, end, extra, e, open_brackets)
                if stop < 0:
                    return False
            i = skip_whitespace(buf, stop, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125:
                i += 1
                break
            return False
    if skip_whitespace(buf, i, end) != end:
        return False
    for k in range(m):
        if kinds[k] != ABSENT and field_kinds[k, r] == 0:
            return False
    if first_extra:
        e = positions[m]
    else:
        extra[e] = 125
        e += 1
    positions[m] = e
    return True


@numba.njit(cache=True, nogil=True)
def parse_captions(buf, starts, ends, keys, key_offsets, kinds, fields, field_offsets, field_kinds,
                   extra, extra_offsets, names, name_offsets, name_lists, status):
    """Parse the flat JSON objects ``buf[starts[r]:ends[r]]`` by a field spec.

    Parameters
    ----------
    buf : ndarray of uint8
    starts, ends : ndarray of int64, shape (n,)
        Byte range of each record (an empty range is flagged FALLBACK).
    keys : ndarray of uint8; key_offsets : ndarray of int64, shape (m + 1,); kinds : int8 (m,)
        The named members (as between the quotes) and what each must be (STRING, STRING_OR_INT,
        ABSENT).
    fields : uint8 (m, capacity); field_offsets : int32 (m, n + 1); field_kinds : int8 (m, n)
        Receive each named field's UTF-8 text (an integer's digits) and KIND_STRING/KIND_INT.
    extra : uint8; extra_offsets : int32 (n + 1)
        Receive ``{"key":value,...}`` of the other members (empty when there are none).
    names : uint8 (empty: not written); name_offsets : int32; name_lists : int32 (n + 1)
        Receive every key in order (the record's key order).
    status : int8 (n,)
        FAST, or FALLBACK for a record left to the careful path.

    Capacities: ``fields[k]`` and ``names`` ``len(buf)``, ``extra`` ``len(buf) + 2 n``,
    ``name_offsets`` ``len(buf) // 2 + 2``. Complexity: O(len(buf)), plus O(keys²) per record.

    Example
    -------
    >>> buf = np.frombuffer(b'{"c": "a\\\\u00e9", "n": 1}[1]', np.uint8)
    >>> keys, key_offsets, kinds = np.frombuffer(b"c", np.uint8), np.array([0, 1]), np.array([STRING], np.int8)
    >>> fields, field_offsets, field_kinds = np.zeros((1, 40), np.uint8), np.zeros((1, 3), np.int32), np.zeros((1, 2), np.int8)
    >>> extra, extra_offsets, status = np.zeros(50, np.uint8), np.zeros(3, np.int32), np.zeros(2, np.int8)
    >>> parse_captions(buf, np.array([0, 24]), np.array([24, 27]), keys, key_offsets, kinds, fields, field_offsets,
    ...                field_kinds, extra, extra_offsets, np.zeros(0, np.uint8), np.zeros(1, np.int32), np.zeros(3, np.int32), status)
    >>> bytes(fields[0, :field_offsets[0, 1]]).decode(), bytes(extra[:extra_offsets[1]]), status.tolist()
    ('aé', b'{"n":1}', [0, 1])
    """
    m = kinds.shape[0]
    n = starts.shape[0]
    positions = np.zeros(m + 3, np.int64)
    saved = np.zeros(m + 3, np.int64)
    key_starts = np.empty(MAX_KEYS, np.int64)
    key_ends = np.empty(MAX_KEYS, np.int64)
    open_brackets = np.empty(_MAX_VALUE_DEPTH, np.uint8)
    for k in range(m):
        field_offsets[k, 0] = 0
    extra_offsets[0] = 0
    name_offsets[0] = 0
    name_lists[0] = 0
    for r in range(n):
        for k in range(m + 3):
            saved[k] = positions[k]
        if _record(buf, starts[r], ends[r], keys, key_offsets, kinds, fields, field_offsets, field_kinds, r, positions,
                   extra, names, name_offsets, key_starts, key_ends, open_brackets):
            status[r] = FAST
        else:
            status[r] = FALLBACK
            for k in range(m + 3):
                positions[k] = saved[k]
            for k in range(m):
                field_kinds[k, r] = 0
        for k in range(m):
            field_offsets[k, r + 1] = positions[k]
        extra_offsets[r + 1] = positions[m]
        name_lists[r + 1] = positions[m + 2]
