"""JSON numbers to float64, correctly rounded, in compiled code: lists of lists of numbers (MMC4
``similarity_matrix``) straight into Arrow buffers.

Decimal to binary as in Go's ``strconv``: Clinger's exact path when the significand and the power
of ten are both exact doubles (one correctly rounded multiplication or division), else the
Eisel-Lemire algorithm with its exactness checks, and for a tie it cannot settle, the exact path
of a decimal that is a double (``m / 5**k`` exact, times ``2**-k``). The result is the correctly
rounded double, or the number is reported as undecided (more than 19 significant digits, other
half-way cases, subnormal or out-of-range results), and the caller parses that input another way.
The table of 128-bit mantissas of powers of ten is computed exactly at import, with Python integers.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.cpython.unsafe.numbers import leading_zeros
from numba.extending import intrinsic

from .json_scan import load8, skip_whitespace

MIN_EXP10 = -348
MAX_EXP10 = 347


def _powers_of_ten() -> np.ndarray:
    """``table[e - MIN_EXP10] = (low, high)``: the 128-bit mantissa of ``10**e``, rounded down,
    its top bit set."""
    table = np.zeros((MAX_EXP10 - MIN_EXP10 + 1, 2), np.uint64)
    for exponent in range(MIN_EXP10, MAX_EXP10 + 1):
        if exponent >= 0:
            value = 10**exponent
            shift = 128 - value.bit_length()
            mantissa = value << shift if shift >= 0 else value >> -shift
        else:
            divisor = 10**-exponent
            shift = 127 + divisor.bit_length()
            mantissa = (1 << shift) // divisor
            while mantissa >= 1 << 128:
                mantissa >>= 1
            while mantissa < 1 << 127:
                shift += 1
                mantissa = (1 << shift) // divisor
        table[exponent - MIN_EXP10, 0] = mantissa & (2**64 - 1)
        table[exponent - MIN_EXP10, 1] = mantissa >> 64
    return table


_POWERS = _powers_of_ten()
# 10**0 .. 10**22 are exact doubles.
_EXACT_POWERS = np.array([10.0**k for k in range(23)], np.float64)
_EXACT_MANTISSA_LIMIT = np.uint64(1) << np.uint64(53)
# 5**k (exact in uint64) and 2**-k (exact doubles) for k <= 27.
_POWERS_OF_FIVE = np.array([5**k for k in range(28)], np.uint64)
_NEGATIVE_POWERS_OF_TWO = np.array([2.0**-k for k in range(28)], np.float64)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_SIGN = np.uint64(0x8000000000000000)
_LOW9 = np.uint64(0x1FF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_FRACTION = np.uint64(0x000FFFFFFFFFFFFF)


@intrinsic
def _mul64(typingctx, a, b):
    """The 128-bit product of two uint64 as ``(high, low)``: one native multiply."""
    if not (a == types.uint64 and b == types.uint64):
        return None
    signature = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        low = builder.trunc(product, ir.IntType(64))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))
        return context.make_tuple(builder, sig.return_type, (high, low))

    return signature, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def eisel_lemire(mantissa, exp10, negative, powers):
    """The bits of the double nearest ``mantissa * 10**exp10`` (``mantissa`` uint64), and whether
    that is certain (else the caller must parse the number another way)."""
    if mantissa == _ZERO:
        return (_SIGN if negative else _ZERO), True
    if exp10 < MIN_EXP10 or exp10 > MAX_EXP10:
        return _ZERO, False
    leading = np.int64(leading_zeros(mantissa))
    mantissa = mantissa << np.uint64(leading)
    exp2 = np.int64(((217706 * exp10) >> 16) + 64 + 1023 - leading)
    row = exp10 - MIN_EXP10
    x_hi, x_lo = _mul64(mantissa, powers[row, 1])
    if (x_hi & _LOW9) == _LOW9 and x_lo + mantissa < mantissa:
        y_hi, y_lo = _mul64(mantissa, powers[row, 0])
        merged_hi, merged_lo = x_hi, x_lo + y_hi
        if merged_lo < x_lo:
            merged_hi += _ONE
        if (merged_hi & _LOW9) == _LOW9 and merged_lo + _ONE == _ZERO and y_lo + mantissa < mantissa:
            return _ZERO, False
        x_hi, x_lo = merged_hi, merged_lo
    msb = x_hi >> np.uint64(63)
    result = x_hi >> (msb + np.uint64(9))
    exp2 -= 1 - np.int64(msb)
    if x_lo == _ZERO and (x_hi & _LOW9) == _ZERO and (result & np.uint64(3)) == _ONE:
        return _ZERO, False
    result += result & _ONE
    result = result >> _ONE
    if (result >> np.uint64(53)) > _ZERO:
        result = result >> _ONE
        exp2 += 1
    if exp2 <= 0 or exp2 >= 0x7FF:
        return _ZERO, False
    bits = (np.uint64(exp2) << np.uint64(52)) | (result & _FRACTION)
    if negative:
        bits |= _SIGN
    return bits, True


_HUNDRED_MILLION = np.uint64(100_000_000)
_ASCII_ZEROS = np.uint64(0x3030303030303030)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_SIXES = np.uint64(0x0606060606060606)
_THREES = np.uint64(0x3333333333333333)
_BYTE_PAIRS = np.uint64(0x000000FF000000FF)
_MUL_HIGH = np.uint64(100 + (1_000_000 << 32))
_MUL_LOW = np.uint64(1 + (10_000 << 32))


@numba.njit(cache=True, nogil=True, inline="always")
def _eight_digits(chunk):
    """Whether all eight bytes of ``chunk`` are ASCII digits."""
    return ((chunk & _HIGH_NIBBLES) | (((chunk + _SIXES) & _HIGH_NIBBLES) >> np.uint64(4))) == _THREES


@numba.njit(cache=True, nogil=True, inline="always")
def _parse_eight_digits(chunk):
    """The value of eight ASCII digits packed little-endian in ``chunk``: three multiplications."""
    chunk -= _ASCII_ZEROS
    chunk = chunk * np.uint64(10) + (chunk >> np.uint64(8))
    return ((chunk & _BYTE_PAIRS) * _MUL_HIGH + ((chunk >> np.uint64(16)) & _BYTE_PAIRS) * _MUL_LOW) >> np.uint64(32)


@numba.njit(cache=True, nogil=True, inline="always")
def parse_number(buf, i, end):
    """Read the JSON number at ``buf[i]``: ``(position after it, significand (uint64), power of
    ten, negative, ok)``; not ok for anything that is not a JSON number or that has more than 19
    significant digits."""
    negative = False
    if i < end and buf[i] == 45:
        negative = True
        i += 1
    if i >= end or not (48 <= buf[i] <= 57):
        return i, _ZERO, 0, negative, False
    mantissa = _ZERO
    digits = 0
    exp10 = 0
    if buf[i] == 48:
        i += 1
        if i < end and 48 <= buf[i] <= 57:
            return i, _ZERO, 0, negative, False
    else:
        while i < end and 48 <= buf[i] <= 57:
            if digits == 19:
                return i, _ZERO, 0, negative, False
            mantissa = mantissa * np.uint64(10) + np.uint64(buf[i] - 48)
            digits += 1
            i += 1
    is_float = i < end and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69)
    if i < end and buf[i] == 46:
        i += 1
        if i >= end or not (48 <= buf[i] <= 57):
            return i, _ZERO, 0, negative, False
        while i < end and 48 <= buf[i] <= 57:
            # Eight digits at a time once the significand has started (fast_float's SWAR step).
            if mantissa != _ZERO and digits <= 11 and i + 8 <= end:
                chunk = load8(buf, i)
                if _eight_digits(chunk):
                    mantissa = mantissa * _HUNDRED_MILLION + _parse_eight_digits(chunk)
                    digits += 8
                    exp10 -= 8
                    i += 8
                    continue
            if mantissa == _ZERO and buf[i] == 48:
                exp10 -= 1
            elif digits < 19:
                mantissa = mantissa * np.uint64(10) + np.uint64(buf[i] - 48)
                digits += 1
                exp10 -= 1
            else:
                return i, _ZERO, 0, negative, False
            i += 1
    if i < end and (buf[i] == 101 or buf[i] == 69):
        i += 1
        exponent_negative = False
        if i < end and (buf[i] == 43 or buf[i] == 45):
            exponent_negative = buf[i] == 45
            i += 1
        if i >= end or not (48 <= buf[i] <= 57):
            return i, _ZERO, 0, negative, False
        exponent = 0
        while i < end and 48 <= buf[i] <= 57:
            if exponent < 100000:
                exponent = exponent * 10 + (buf[i] - 48)
            i += 1
        exp10 += -exponent if exponent_negative else exponent
    if mantissa == _ZERO and not is_float:
        # "-0" is the integer zero, read as +0.0 (as msgspec and Python's int -> float do).
        negative = False
    return i, mantissa, exp10, negative, True


@numba.njit(cache=True, nogil=True, inline="always")
def to_double(mantissa, exp10, negative, values, values_bits, k, powers):
    """Store the double nearest ``mantissa * 10**exp10`` at ``values[k]`` (``values_bits`` is the
    same memory as uint64); returns False if that cannot be settled here."""
    if mantissa <= _EXACT_MANTISSA_LIMIT and -22 <= exp10 <= 22:
        value = np.float64(mantissa)
        value = value * _EXACT_POWERS[exp10] if exp10 >= 0 else value / _EXACT_POWERS[-exp10]
        values[k] = -value if negative else value
        return True
    bits, ok = eisel_lemire(mantissa, exp10, negative, powers)
    if not ok and -27 <= exp10 < 0:
        # A decimal that is a double exactly (a float32 printed in full, as MMC4's similarities
        # are: 0.27640533447265625) can be what Eisel-Lemire cannot settle, a tie in its 128-bit
        # product. m * 10**-k is (m / 5**k) * 2**-k, exact when 5**k divides m leaving 53 bits.
        five = _POWERS_OF_FIVE[-exp10]
        if mantissa % five == _ZERO and mantissa // five <= _EXACT_MANTISSA_LIMIT:
            value = np.float64(mantissa // five) * _NEGATIVE_POWERS_OF_TWO[-exp10]
            values[k] = -value if negative else value
            return True
    values_bits[k] = bits
    return ok


@numba.njit(cache=True, nogil=True, _nrt=False)
def matrix_value(buf, i, end, values, values_bits, n_values, row_offsets, n_rows, powers):
    """Parse one ``[[num, ...], ...]`` at ``buf[i]`` (rows appended at ``row_offsets[n_rows + 1:]``,
    values at ``values[n_values:]``): ``(position after it, n_values, n_rows)``, the position -1
    if it is not such a list or holds a number :func:`to_double` cannot settle.

    Example
    -------
    >>> buf = np.frombuffer(b"[[0.1, 2e-3], [1]] x", np.uint8)
    >>> values, rows = np.zeros(8), np.zeros(4, np.int64)
    >>> matrix_value(buf, 0, len(buf), values, values.view(np.uint64), 0, rows, 0, POWERS)
    (18, 3, 2)
    >>> values[:3].tolist(), rows[:3].tolist()
    ([0.1, 0.002, 1.0], [0, 2, 3])
    """
    if i >= end or buf[i] != 91:
        return -1, n_values, n_rows
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1, n_values, n_rows
    while i < end:
        if buf[i] != 91:
            return -1, n_values, n_rows
        i = skip_whitespace(buf, i + 1, end)
        if i < end and buf[i] != 93:
            while True:
                i, mantissa, exp10, negative, ok = parse_number(buf, i, end)
                if not ok or not to_double(mantissa, exp10, negative, values, values_bits, n_values, powers):
                    return -1, n_values, n_rows
                n_values += 1
                i = skip_whitespace(buf, i, end)
                if i < end and buf[i] == 44:
                    i = skip_whitespace(buf, i + 1, end)
                    continue
                break
        if i >= end or buf[i] != 93:
            return -1, n_values, n_rows
        n_rows += 1
        row_offsets[n_rows] = n_values
        i = skip_whitespace(buf, i + 1, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1, n_values, n_rows
        return -1, n_values, n_rows
    return -1, n_values, n_rows


POWERS = _POWERS
