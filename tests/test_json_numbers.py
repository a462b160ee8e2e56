"""The compiled JSON number parser: correctly rounded doubles, or an honest "undecided"."""

import random
import struct
from decimal import Decimal

import msgspec
import numpy as np

from hf_mmbuilder.kernels import json_numbers


def parse_rows(rows):
    """Parse ``[[...], ...]`` text per document with ``matrix_value``; returns values per document,
    or None where it is not such a list, leaves text after it, or holds an undecided number."""
    out = []
    for text in rows:
        buf = np.frombuffer(text.encode(), np.uint8)
        values = np.zeros(len(buf) // 2 + 1)
        row_offsets = np.zeros(len(buf) // 2 + 2, np.int64)
        start = len(text) - len(text.lstrip())
        after, _, n_rows = json_numbers.matrix_value(buf, start, len(buf), values, values.view(np.uint64), 0, row_offsets, 0, json_numbers.POWERS)
        if after < 0 or text[after:].strip():
            out.append(None)
            continue
        out.append([values[row_offsets[r] : row_offsets[r + 1]].tolist() for r in range(n_rows)])
    return out


def test_every_decided_number_is_the_correctly_rounded_double():
    rng = random.Random(7)
    numbers = [repr(rng.random()) for _ in range(20_000)]
    numbers += [repr(struct.unpack("d", struct.pack("Q", rng.getrandbits(63)))[0]) for _ in range(20_000)]
    numbers += [str(rng.randrange(10**rng.randint(1, 19))) + f"e{rng.randint(-320, 300)}" for _ in range(20_000)]
    for _ in range(5_000):
        low = struct.unpack("d", struct.pack("Q", rng.getrandbits(62)))[0]
        high = float(np.nextafter(low, np.inf))
        numbers.append(format((Decimal(low) + Decimal(high)) / 2, ".17e"))  # near the half-way point
    numbers = [n for n in numbers if "inf" not in n and "nan" not in n]
    parsed = parse_rows([f"[[{n}]]" for n in numbers])
    decided = 0
    for text, result in zip(numbers, parsed):
        if result is not None:
            decided += 1
            assert result[0][0] == float(text) and np.signbit(result[0][0]) == np.signbit(float(text)), text
    assert decided > 0.95 * len(numbers)


def test_matrices_match_msgspec_and_odd_shapes_fall_back():
    rows = ["[]", "[[]]", "[[0.5, -0.0, 1E2, -0], [3]]", " [ [ 1 , 2 ] ] ", "[[true]]", "[[1, null]]", "[[01]]", "[[1.]]",
            "[[1e400]]", "[[12345678901234567890123]]", "[1]", "[[1]] x"]
    parsed = parse_rows(rows)
    decoder = msgspec.json.Decoder(list[list[float]])
    for text, result in zip(rows[:4], parsed[:4]):
        expected = decoder.decode(text)
        assert result == expected and [np.signbit(v) for r in result for v in r] == [np.signbit(v) for r in expected for v in r]
    assert parsed[4:] == [None] * 8


def test_doubles_written_out_exactly_are_decided():
    """Float32 similarities printed in full (MMC4's ``0.27640533447265625``) are exact doubles that
    Eisel-Lemire alone leaves undecided (a tie in its product): each one with at most 19
    significant digits is read, exactly."""
    rng = random.Random(5)
    numbers = ["0.27640533447265625", "-0.29338836669921875", "0.10591888427734375"]
    for _ in range(20_000):
        scale = rng.randint(1, 27)
        text = format(Decimal(rng.getrandbits(24)) / Decimal(2**scale), "f")
        if len(text.replace("-", "").replace(".", "").lstrip("0")) <= 19:
            numbers.append(text)
    parsed = parse_rows([f"[[{n}]]" for n in numbers])
    assert [result[0][0] if result is not None else None for result in parsed] == [float(text) for text in numbers]
