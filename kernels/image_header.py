"""Image width x height from the header bytes of many images at once (JPEG, PNG).

Arrays in, arrays out: image ``i`` is ``data[starts[i]:ends[i]]`` (a value of an Arrow binary
array). An image the walk cannot vouch for is reported as not recognised (kind ``UNRECOGNISED``),
never guessed: its caller measures it one by one (Pillow), so the sizes the kernel gives are
exactly those of the per-image path and every unreadable image keeps its own error.

- JPEG: the segments before the first start-of-frame marker are walked exactly as
  ``hf_mmbuilder.probe.image_size`` walks them (fill bytes, markers without a length), and the
  frame's size is read there.
- PNG: recognised only where Pillow's reader would give the IHDR's size without a doubt: the
  signature, IHDR first (13 bytes or more, a bit depth and colour type Pillow reads, filter method
  0, width and height not 0), then up to the first IDAT only chunks whose handler in Pillow cannot
  fail once their length and CRC are right (PLTE, gAMA, cHRM, sRGB, pHYs, tRNS, and chunks Pillow
  has no handler for), each whole and with its CRC-32 right.
"""

from __future__ import annotations

import numba
import numpy as np

UNRECOGNISED, JPEG, PNG = 0, 1, 2


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xEDB88320 if value & 1 else value >> 1
        table[byte] = value
    return table


# zlib's CRC-32 (the PNG chunk checksum), one table lookup per byte.
_CRC_TABLE = _crc_table()
_PNG_SIGNATURE = np.frombuffer(b"\x89PNG\r\n\x1a\n", dtype=np.uint8)


def _tag(name: bytes) -> int:
    return int.from_bytes(name, "big")


_IHDR, _IDAT, _PLTE, _TRNS = _tag(b"IHDR"), _tag(b"IDAT"), _tag(b"PLTE"), _tag(b"tRNS")
# Chunks Pillow reads with a handler of its own that may refuse them (text and profile chunks
# decompress or count memory, animation chunks change the frame): the per-image path decides.
_HANDLED = np.array([_tag(name) for name in (b"IEND", b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf", b"acTL", b"fcTL", b"fdAT")],
                    dtype=np.int64)
# Chunks whose Pillow handler refuses them only when shorter than this.
_MINIMUM_LENGTH = {_tag(b"gAMA"): 4, _tag(b"cHRM"): 32, _tag(b"sRGB"): 1, _tag(b"pHYs"): 9}
_SHORT_NAMES = np.array(list(_MINIMUM_LENGTH), dtype=np.int64)
_SHORT_LENGTHS = np.array(list(_MINIMUM_LENGTH.values()), dtype=np.int64)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _u16(data, position):
    return (np.int64(data[position]) << 8) | np.int64(data[position + 1])


@numba.njit(cache=True, nogil=True, _nrt=False)
def _u32(data, position):
    return (_u16(data, position) << 16) | _u16(data, position + 2)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _jpeg_frame(data, start, end, out, row):
    """The walk of ``probe.image_size``: True with ``out[row]`` set when it finds a frame size."""
    position = start + 2
    while position + 9 <= end and data[position] == 0xFF:
        marker = data[position + 1]
        if 0xC0 <= marker <= 0xCF and marker != 0xC4 and marker != 0xC8 and marker != 0xCC:
            height = _u16(data, position + 5)
            width = _u16(data, position + 7)
            if width != 0 and height != 0:
                out[row, 0] = width
                out[row, 1] = height
                return True
            return False
        if marker == 0xFF:
            position += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:
            position += 2
        else:
            position += 2 + _u16(data, position + 2)
    return False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _crc_right(data, position, length):
    """Whether the CRC-32 after the chunk at ``position`` (type and ``length`` data bytes) is right."""
    crc = np.uint32(0xFFFFFFFF)
    for index in range(position + 4, position + 8 + length):
        crc = _CRC_TABLE[(crc ^ np.uint32(data[index])) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    return (crc ^ np.uint32(0xFFFFFFFF)) == np.uint32(_u32(data, position + 8 + length))


@numba.njit(cache=True, nogil=True, _nrt=False)
def _chunk_name_valid(data, position):
    # Pillow's is_cid: four of [A-Za-z0-9_].
    for index in range(position + 4, position + 8):
        byte = data[index]
        if not (48 <= byte <= 57 or 65 <= byte <= 90 or 97 <= byte <= 122 or byte == 95):
            return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _png_mode_known(depth, colour):
    if colour == 0:
        return depth == 1 or depth == 2 or depth == 4 or depth == 8 or depth == 16
    if colour == 3:
        return depth == 1 or depth == 2 or depth == 4 or depth == 8
    if colour == 2 or colour == 4 or colour == 6:
        return depth == 8 or depth == 16
    return False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _png_header(data, start, end, out, row):
    """True with ``out[row]`` set for a PNG Pillow reads as the IHDR says (see the module)."""
    if end - start < 8 + 25:
        return False
    for index in range(8):
        if data[start + index] != _PNG_SIGNATURE[index]:
            return False
    position = start + 8
    length = _u32(data, position)
    if _u32(data, position + 4) != _IHDR or length < 13 or position + 12 + length > end or not _crc_right(data, position, length):
        return False
    width, height = _u32(data, position + 8), _u32(data, position + 12)
    depth, colour = data[position + 16], data[position + 17]
    if width == 0 or height == 0 or not _png_mode_known(depth, colour) or data[position + 19] != 0:
        return False
    position += 12 + length
    while position + 8 <= end:
        if not _chunk_name_valid(data, position):
            return False
        length = _u32(data, position)
        name = _u32(data, position + 4)
        if name == _IDAT:
            out[row, 0] = width
            out[row, 1] = height
            return True
        if name == _IHDR or position + 12 + length > end or not _crc_right(data, position, length):
            return False
        for handled in _HANDLED:
            if name == handled:
                return False
        for index in range(_SHORT_NAMES.shape[0]):
            if name == _SHORT_NAMES[index] and length < _SHORT_LENGTHS[index]:
                return False
        # tRNS of a grey (colour type 0) or RGB (2) image holds one sample of 2 bytes per channel.
        if name == _TRNS and ((colour == 0 and length < 2) or (colour == 2 and length < 6)):
            return False
        position += 12 + length
    return False


@numba.njit(cache=True, nogil=True)
def _measure_all(data, starts, ends, out, kinds):
    for row in range(starts.shape[0]):
        start, end = starts[row], ends[row]
        kinds[row] = UNRECOGNISED
        if end - start >= 2 and data[start] == 0xFF and data[start + 1] == 0xD8:
            if _jpeg_frame(data, start, end, out, row):
                kinds[row] = JPEG
        elif _png_header(data, start, end, out, row):
            kinds[row] = PNG


def image_sizes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of the images ``data[starts[i]:ends[i]]`` from their headers.

    Parameters
    ----------
    data : ndarray of uint8, shape (bytes,)
        The images' bytes (an Arrow binary array's data buffer).
    starts, ends : ndarray of int64, shape (n,)
        Where each image starts and ends in ``data``.

    Returns
    -------
    sizes : ndarray of int64, shape (n, 2)
        ``(width, height)`` of each recognised image; -1 where not recognised.
    kinds : ndarray of uint8, shape (n,)
        ``JPEG``, ``PNG``, or ``UNRECOGNISED`` (another format, or a header the walk cannot vouch
        for: measure it one by one).

    Complexity: O(header bytes) per image: the JPEG segments before the frame header, the PNG
    chunks before the first IDAT (each CRC'd).

    Example
    -------
    >>> png = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d"
    ...                     "0000000049444154")
    >>> sizes, kinds = image_sizes(np.frombuffer(png + b"GIF89a", np.uint8), np.array([0, 41]), np.array([41, 47]))
    >>> sizes.tolist(), kinds.tolist()
    ([[3, 2], [-1, -1]], [2, 0])
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    sizes = np.full((starts.shape[0], 2), -1, dtype=np.int64)
    kinds = np.empty(starts.shape[0], dtype=np.uint8)
    _measure_all(data, starts, ends, sizes, kinds)
    return sizes, kinds
