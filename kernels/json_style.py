"""JSON text written in a source file's style: separators, indentation, ``\\uXXXX`` escapes, floats.

The exporters produce compact JSON (orjson's: no whitespace outside strings, UTF-8 as it is,
shortest float digits). :func:`restyle` rewrites such text as Python's ``json.dump`` writes it
with a given ``indent``, ``separators`` and ``ensure_ascii`` (and floats in Python's ``repr``
notation), in one streaming pass: its state (depth, inside a string, a pending ``[``/``{``, a
partly read UTF-8 character, a number token) carries over from one call to the next, so a file
is written in pieces of any size. :func:`in_style` is the loader's side: is a whole file exactly
what ``restyle`` writes for its compact form, with every string escaped as the writer escapes it?
One pass, no output.
"""

from __future__ import annotations

import numba
import numpy as np

_QUOTE = 34
_BACKSLASH = 92
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

# restyle's state: nesting depth, inside a string, after a backslash, a ``[``/``{`` whose layout
# waits for the next byte (``[]`` stays together), the code point being read and its missing
# continuation bytes (``ensure_ascii``), and the bytes of a number token not written yet.
DEPTH, IN_STRING, ESCAPED, PENDING_OPEN, CODE_POINT, MISSING, NUMBER = range(7)
_NUMBER_BYTES = 40
_DIGITS = 7 + _NUMBER_BYTES  # where _put_number keeps the significant digits
STATE_SIZE = _DIGITS + _NUMBER_BYTES


def new_state() -> np.ndarray:
    """A fresh state for :func:`restyle`."""
    return np.zeros(STATE_SIZE, np.int64)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _put_u_escape(out, o, value):
    out[o] = _BACKSLASH
    out[o + 1] = 117
    out[o + 2] = _HEX[(value >> 12) & 15]
    out[o + 3] = _HEX[(value >> 8) & 15]
    out[o + 4] = _HEX[(value >> 4) & 15]
    out[o + 5] = _HEX[value & 15]
    return o + 6


@numba.njit(cache=True, nogil=True, _nrt=False)
def _put_code_point(out, o, code_point):
    """``\\uXXXX`` (lower-case hex, a surrogate pair above U+FFFF), as ``ensure_ascii`` writes."""
    if code_point >= 0x10000:
        code_point -= 0x10000
        o = _put_u_escape(out, o, 0xD800 | (code_point >> 10))
        return _put_u_escape(out, o, 0xDC00 | (code_point & 0x3FF))
    return _put_u_escape(out, o, code_point)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _put_word(out, o, word):
    for k in range(word.shape[0]):
        out[o] = word[k]
        o += 1
    return o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _line_break(out, o, newline, indent, depth):
    o = _put_word(out, o, newline)
    for _ in range(depth):
        o = _put_word(out, o, indent)
    return o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _put_number(out, o, state, count, python_floats):
    """Write the number token held in ``state`` (``count`` bytes); a float in Python's ``repr``
    notation when ``python_floats`` (fixed for decimal exponents -4 .. 15, else ``d.ddde-XX``)."""
    base = 7
    is_float = False
    for k in range(count):
        c = state[base + k]
        if c == 46 or c == 101 or c == 69:
            is_float = True
    if not (python_floats and is_float):
        for k in range(count):
            out[o] = state[base + k]
            o += 1
        return o
    # Significant digits, and the decimal exponent of the first one.
    negative = state[base] == 45
    digits = state[_DIGITS:]
    n_digits = 0
    point = -1
    k = 1 if negative else 0
    exponent = 0
    while k < count:
        c = state[base + k]
        if c == 46:
            point = n_digits
        elif c == 101 or c == 69:
            sign = 1
            k += 1
            if state[base + k] == 45:
                sign = -1
                k += 1
            elif state[base + k] == 43:
                k += 1
            value = 0
            while k < count:
                value = value * 10 + state[base + k] - 48
                k += 1
            exponent = sign * value
            break
        else:
            digits[n_digits] = c
            n_digits += 1
        k += 1
    if point < 0:
        point = n_digits
    # Drop leading zeros (0.00012 -> 12 with the point moved) and trailing zeros.
    lead = 0
    while lead < n_digits - 1 and digits[lead] == 48:
        lead += 1
    last = n_digits
    while last > lead + 1 and digits[last - 1] == 48:
        last -= 1
    decimal_exponent = point - lead - 1 + exponent
    if negative:
        out[o] = 45
        o += 1
    significant = last - lead
    if digits[lead] == 48:
        # Zero: Python writes 0.0.
        out[o] = 48
        out[o + 1] = 46
        out[o + 2] = 48
        return o + 3
    if -4 <= decimal_exponent < 16:
        if decimal_exponent < 0:
            out[o] = 48
            out[o + 1] = 46
            o += 2
            for _ in range(-decimal_exponent - 1):
                out[o] = 48
                o += 1
            for j in range(lead, last):
                out[o] = digits[j]
                o += 1
            return o
        for j in range(decimal_exponent + 1):
            out[o] = digits[lead + j] if j < significant else 48
            o += 1
        out[o] = 46
        o += 1
        if significant > decimal_exponent + 1:
            for j in range(lead + decimal_exponent + 1, last):
                out[o] = digits[j]
                o += 1
        else:
            out[o] = 48
            o += 1
        return o
    out[o] = digits[lead]
    o += 1
    if significant > 1:
        out[o] = 46
        o += 1
        for j in range(lead + 1, last):
            out[o] = digits[j]
            o += 1
    out[o] = 101
    o += 1
    out[o] = 45 if decimal_exponent < 0 else 43
    o += 1
    value = -decimal_exponent if decimal_exponent < 0 else decimal_exponent
    if value >= 100:
        out[o] = 48 + value // 100
        o += 1
    out[o] = 48 + (value // 10) % 10
    out[o + 1] = 48 + value % 10
    return o + 2


@numba.njit(cache=True, nogil=True)
def restyle(data, start, stop, out, o, state, indented, indent, item, key, newline, ascii_only, python_floats):
    """Rewrite compact JSON ``data[start:stop]`` into ``out[o:]`` in a style; returns
    ``(position, o)``: the input consumed and the output written. It stops early (``position <
    stop``) when ``out`` may not hold the next piece: the caller drains ``out`` and calls again.

    Parameters
    ----------
    indented : 1 to break lines inside arrays and objects (``indent`` per level, even empty).
    indent, item, key, newline : uint8 words: one level of indentation, the item separator (``,``
        or ``, `` before the line break), the key separator, the line break.
    ascii_only : 1 to write non-ASCII characters and DEL as ``\\uXXXX`` (``ensure_ascii``).
    python_floats : 1 to write floats as Python's ``repr``.

    A number token is written when the byte after it arrives, so the text must end with a byte
    that is not part of a number (a record ends with ``}``; call :func:`flush_number` after a
    bare number).

    Complexity: O(input + output) time, O(1) memory beside ``out``.
    """
    depth = state[DEPTH]
    in_string = state[IN_STRING]
    escaped = state[ESCAPED]
    pending = state[PENDING_OPEN]
    code_point = state[CODE_POINT]
    missing = state[MISSING]
    count = state[NUMBER]
    capacity = out.shape[0]
    step = 64 + item.shape[0] + key.shape[0] + newline.shape[0] + indent.shape[0] * (depth + 2)
    i = start
    while i < stop:
        if o + step + indent.shape[0] * (depth + 2) > capacity:
            break
        c = data[i]
        if in_string and missing == 0 and not escaped and c != _QUOTE and c != _BACKSLASH and (c < 127 or not ascii_only):
            # A run of plain string bytes, copied in one go (most of a record's bytes).
            run_stop = min(stop, i + capacity - o - step)
            while i < run_stop:
                c = data[i]
                if c == _QUOTE or c == _BACKSLASH or (ascii_only and c >= 127):
                    break
                out[o] = c
                o += 1
                i += 1
            continue
        if in_string:
            if missing > 0:
                code_point = (code_point << 6) | (c & 63)
                missing -= 1
                if missing == 0:
                    o = _put_code_point(out, o, code_point)
            elif escaped:
                out[o] = c
                o += 1
                escaped = 0
            elif c == _BACKSLASH:
                out[o] = c
                o += 1
                escaped = 1
            elif c == _QUOTE:
                out[o] = c
                o += 1
                in_string = 0
            elif ascii_only and c >= 127:
                if c >= 240:
                    code_point, missing = c & 7, 3
                elif c >= 224:
                    code_point, missing = c & 15, 2
                elif c >= 192:
                    code_point, missing = c & 31, 1
                else:
                    o = _put_code_point(out, o, c)
            else:
                out[o] = c
                o += 1
            i += 1
            continue
        is_number_byte = (48 <= c <= 57) or c == 45 or c == 43 or c == 46 or c == 101 or c == 69
        if count > 0:
            if is_number_byte and count < _NUMBER_BYTES:
                state[7 + count] = c
                count += 1
                i += 1
                continue
            o = _put_number(out, o, state, count, python_floats)
            count = 0
        if pending:
            pending = 0
            if c == 93 or c == 125:
                depth -= 1
                out[o] = c
                o += 1
                i += 1
                continue
            if indented:
                o = _line_break(out, o, newline, indent, depth)
        if c == 45 or 48 <= c <= 57:
            state[7] = c
            count = 1
        elif c == _QUOTE:
            in_string = 1
            out[o] = c
            o += 1
        elif c == 123 or c == 91:
            out[o] = c
            o += 1
            depth += 1
            pending = 1
        elif c == 125 or c == 93:
            depth -= 1
            if indented:
                o = _line_break(out, o, newline, indent, depth)
            out[o] = c
            o += 1
        elif c == 44:
            o = _put_word(out, o, item)
            if indented:
                o = _line_break(out, o, newline, indent, depth)
        elif c == 58:
            o = _put_word(out, o, key)
        else:
            out[o] = c
            o += 1
        i += 1
    state[DEPTH] = depth
    state[IN_STRING] = in_string
    state[ESCAPED] = escaped
    state[PENDING_OPEN] = pending
    state[CODE_POINT] = code_point
    state[MISSING] = missing
    state[NUMBER] = count
    return i, o


@numba.njit(cache=True, nogil=True, _nrt=False)
def flush_number(out, o, state, python_floats):
    """Write a number token :func:`restyle` still holds (text that ended with a number)."""
    count = state[NUMBER]
    if count > 0:
        o = _put_number(out, o, state, count, python_floats)
        state[NUMBER] = 0
    return o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _expect(data, i, stop, word, skip):
    """Does ``data[i:]`` continue with ``word[skip:]``? Returns the position after it, or -1."""
    for k in range(skip, word.shape[0]):
        if i >= stop or data[i] != word[k]:
            return -1
        i += 1
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def _expect_break(data, i, stop, newline, indent, depth):
    i = _expect(data, i, stop, newline, 0)
    for _ in range(depth):
        if i < 0:
            return -1
        i = _expect(data, i, stop, indent, 0)
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def _number_matches(data, start, stop, scratch, state, python_floats):
    """Is the number token ``data[start:stop]`` written as :func:`restyle` writes it?"""
    if not python_floats:
        return True
    if stop - start > _NUMBER_BYTES:
        return False
    for k in range(stop - start):
        state[7 + k] = data[start + k]
    written = _put_number(scratch, 0, state, stop - start, python_floats)
    if written != stop - start:
        return False
    for k in range(written):
        if scratch[k] != data[start + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def in_style(data, indented, indent, item, key, newline, ascii_only, python_floats):
    """Is the whole JSON text ``data`` exactly what :func:`restyle` writes for its compact form
    (``restyle(compact(data)) == data``), with every string escaped as the writer escapes it
    (``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, lower-case ``\\u00XX`` for other control bytes; with
    ``ascii_only`` also ``\\uXXXX`` for DEL and non-ASCII and no raw byte above 126, without it no
    ``\\uXXXX`` for a character written as it is; never ``\\/``)? One pass, no output; the bytes
    between top-level values are not checked (the caller checks a file's framing).

    Returns -1 when it is not, else the number of numbers with a negative exponent (``1e-05``),
    the only ones Python and orjson write differently: with none, either notation writes the file.

    Complexity: O(bytes) time, O(1) memory.
    """
    state = np.zeros(STATE_SIZE, np.int64)
    scratch = np.zeros(2 * _NUMBER_BYTES, np.uint8)
    stop = data.shape[0]
    depth = 0
    i = 0
    # After an opening bracket: the next byte closes it (empty) or a line break opens it.
    just_opened = False
    # A line break before a closing bracket was read: the next byte must close.
    closing = False
    negative_exponents = 0
    while i < stop:
        c = data[i]
        if closing and c != 125 and c != 93:
            return -1
        if c == _QUOTE:
            i += 1
            while True:
                while i < stop:
                    c = data[i]
                    if c == _QUOTE or c == _BACKSLASH or c < 32 or (ascii_only and c >= 127):
                        break
                    i += 1
                if i >= stop or c < 32 or (ascii_only and c >= 127):
                    return -1
                if c == _QUOTE:
                    i += 1
                    break
                # An escape: as the writer writes it.
                if i + 1 >= stop:
                    return -1
                e = data[i + 1]
                if e == 117:
                    if i + 6 > stop:
                        return -1
                    value = 0
                    for k in range(i + 2, i + 6):
                        h = data[k]
                        if 48 <= h <= 57:
                            value = value * 16 + h - 48
                        elif 97 <= h <= 102:
                            value = value * 16 + h - 87
                        else:
                            return -1
                    if value < 32:
                        if value == 8 or value == 9 or value == 10 or value == 12 or value == 13:
                            return -1
                    elif not ascii_only or value < 127:
                        return -1
                    i += 6
                elif e == _QUOTE or e == _BACKSLASH or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                    i += 2
                else:
                    return -1
            just_opened = False
            continue
        if depth == 0 and c != 123 and c != 91:
            # Between top-level values (the caller checks a file's framing).
            if c == 125 or c == 93:
                return -1
            i += 1
            continue
        if c == 123 or c == 91:
            depth += 1
            i += 1
            just_opened = True
            if i < stop and (data[i] == 125 or data[i] == 93):
                continue
            if indented:
                i = _expect_break(data, i, stop, newline, indent, depth)
                if i < 0:
                    return -1
            continue
        if c == 125 or c == 93:
            if indented and not just_opened and not closing:
                return -1
            depth -= 1
            closing = False
            just_opened = False
            i += 1
            continue
        just_opened = False
        if c == 44:
            i = _expect(data, i + 1, stop, item, 1)
            if i < 0:
                return -1
            if indented:
                i = _expect_break(data, i, stop, newline, indent, depth)
                if i < 0:
                    return -1
            continue
        if c == 58:
            i = _expect(data, i + 1, stop, key, 1)
            if i < 0:
                return -1
            continue
        if c == newline[0]:
            # The line break before a closing bracket.
            if not indented:
                return -1
            i = _expect_break(data, i, stop, newline, indent, depth - 1)
            if i < 0:
                return -1
            closing = True
            continue
        if c == 32 or c == 9 or c == 10 or c == 13:
            return -1
        if c == 45 or 48 <= c <= 57:
            start = i
            while i < stop and ((48 <= data[i] <= 57) or data[i] == 45 or data[i] == 43 or data[i] == 46 or data[i] == 101 or data[i] == 69):
                i += 1
            if not _number_matches(data, start, i, scratch, state, python_floats):
                return -1
            for k in range(start + 1, i - 1):
                if (data[k] == 101 or data[k] == 69) and data[k + 1] == 45:
                    negative_exponents += 1
            continue
        i += 1
    return negative_exponents if depth == 0 else -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def one_value_per_line(data, crlf):
    """Is every line break of ``data`` (``\\r\\n`` when ``crlf``, else ``\\n`` and no ``\\r``
    at all) between the end of one array or object and the start of the next, with nothing else
    between them (JSON lines without indentation hold no other line break)?"""
    n = data.shape[0]
    for i in range(n):
        c = data[i]
        if c == 13:
            if not crlf or i + 1 >= n or data[i + 1] != 10:
                return False
        elif c == 10:
            before = i - 2 if crlf else i - 1
            if before < 0 or (data[before] != 125 and data[before] != 93):
                return False
            if crlf and data[i - 1] != 13:
                return False
            if i + 1 < n and data[i + 1] != 123 and data[i + 1] != 91:
                return False
    return True
