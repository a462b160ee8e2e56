"""One compiled pass over a batch of flat JSON records (WavCaps, Video-ChatGPT, InternVid,
MSR-VTT): the named string fields unescaped into their own buffers, every other member copied
into one compact JSON object per record, and the keys in order.

A format is a field spec: the member names, and per name whether it is a string
(:data:`STRING`), a string or an integer (:data:`STRING_OR_INT`, an id), or must be absent
(:data:`ABSENT`). A record the kernel is not sure about (not an object, a named field missing or
of another type, a key with an escape or repeated, a value nested deep, a number whose text a
JSON round trip may change) is flagged :data:`FALLBACK`: its rows are empty and the careful
Python path converts it, producing every error message.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import MAX_NESTING, same_bytes, skip_whitespace, string_end, unescape_string, value_end

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
def _copy_plain_value(buf, i, stop, out, o):
    """Copy the JSON value ``buf[i:stop]`` to ``out[o:]``; -1 when a number in it may not keep
    its value through a JSON round trip (an integer past 64 bits, a float that may overflow) or
    it nests too deep. Strings are copied as they are."""
    depth = 0
    k = i
    while k < stop:
        c = buf[k]
        if c == _QUOTE:
            end = string_end(buf, k, stop)
            if end < 0:
                return -1
            for j in range(k, end):
                out[o] = buf[j]
                o += 1
            k = end
            continue
        if c == 45 or 48 <= c <= 57:
            digits = 0
            exponent = -1
            fraction = False
            while k < stop:
                c = buf[k]
                if 48 <= c <= 57:
                    if exponent >= 0:
                        exponent += 1
                    else:
                        digits += 1
                elif c == 46:
                    fraction = True
                elif c == 101 or c == 69:
                    exponent = 0
                elif c != 43 and c != 45:
                    break
                out[o] = c
                o += 1
                k += 1
            if exponent > _MAX_EXPONENT_DIGITS or digits > _MAX_MANTISSA_DIGITS:
                return -1
            if exponent < 0 and not fraction and digits > _MAX_INTEGER_DIGITS:
                return -1
            continue
        if c == 123 or c == 91:
            depth += 1
            if depth > _MAX_VALUE_DEPTH:
                return -1
        elif c == 125 or c == 93:
            depth -= 1
        out[o] = c
        o += 1
        k += 1
    return o


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
            extra, names, name_offsets, key_starts, key_ends):
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
                stop = value_end(buf, i, end)
                if stop < 0 or stop == i:
                    return False
                if not first_extra:
                    extra[e] = 44
                    e += 1
                first_extra = False
                for j in range(key_starts[count - 1], key_ends[count - 1]):
                    extra[e] = buf[j]
                    e += 1
                extra[e] = 58
                e += 1
                e = _copy_plain_value(buf, i, stop, extra, e)
                if e < 0:
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
    for k in range(m):
        field_offsets[k, 0] = 0
    extra_offsets[0] = 0
    name_offsets[0] = 0
    name_lists[0] = 0
    for r in range(n):
        for k in range(m + 3):
            saved[k] = positions[k]
        if _record(buf, starts[r], ends[r], keys, key_offsets, kinds, fields, field_offsets, field_kinds, r, positions,
                   extra, names, name_offsets, key_starts, key_ends):
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
