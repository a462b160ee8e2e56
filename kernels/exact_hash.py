"""128-bit digests of byte strings given as one buffer plus offsets (Arrow string/binary layout).

The digest is MurmurHash3 x64-128 (Appleby), bit-identical to the reference C implementation
(``mmh3.hash64(x, seed, x64arch=True)`` gives the same two words), in the xxh3 speed class and
non-cryptographic: it finds duplicates, it does not resist crafted collisions.
"""

from __future__ import annotations

import numba
import numpy as np

from .hashing import fmix64

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)


@numba.njit(cache=True, nogil=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(cache=True, nogil=True, inline="always")
def _word(data, start, count):
    w = np.uint64(0)
    for i in range(count):
        w |= np.uint64(data[start + i]) << np.uint64(8 * i)
    return w


@numba.njit(cache=True, nogil=True)
def digest_into(data, start, end, seed, out, row):
    """Write the digest of ``data[start:end]`` (see :func:`digests128`) into ``out[row]``
    (``uint64 (n, 2)``); for compiled callers digesting bytes as they get them."""
    length = end - start
    h1 = seed
    h2 = seed
    nblocks = length // 16
    for block in range(nblocks):
        base = start + block * 16
        k1 = _word(data, base, 8)
        k2 = _word(data, base + 8, 8)
        k1 *= _C1
        k1 = _rotl(k1, 31)
        k1 *= _C2
        h1 ^= k1
        h1 = _rotl(h1, 27)
        h1 += h2
        h1 = h1 * np.uint64(5) + np.uint64(0x52DCE729)
        k2 *= _C2
        k2 = _rotl(k2, 33)
        k2 *= _C1
        h2 ^= k2
        h2 = _rotl(h2, 31)
        h2 += h1
        h2 = h2 * np.uint64(5) + np.uint64(0x38495AB5)
    tail = start + nblocks * 16
    rest = length & 15
    if rest > 8:
        k2 = _word(data, tail + 8, rest - 8)
        k2 *= _C2
        k2 = _rotl(k2, 33)
        k2 *= _C1
        h2 ^= k2
    if rest > 0:
        k1 = _word(data, tail, min(rest, 8))
        k1 *= _C1
        k1 = _rotl(k1, 31)
        k1 *= _C2
        h1 ^= k1
    h1 ^= np.uint64(length)
    h2 ^= np.uint64(length)
    h1 += h2
    h2 += h1
    h1 = fmix64(h1)
    h2 = fmix64(h2)
    h1 += h2
    h2 += h1
    out[row, 0] = h1
    out[row, 1] = h2


@numba.njit(cache=True, nogil=True)
def _digest_all(data, offsets, seed, out):
    for row in range(offsets.shape[0] - 1):
        digest_into(data, offsets[row], offsets[row + 1], seed, out, row)


def digests128(data: np.ndarray, offsets: np.ndarray, seed: int = 0) -> np.ndarray:
    """MurmurHash3 x64-128 of every byte string ``data[offsets[i]:offsets[i + 1]]``.

    Parameters
    ----------
    data : ndarray of uint8, shape (bytes,)
        Concatenated byte strings (an Arrow string array's data buffer).
    offsets : ndarray of int64, shape (n + 1,)
    seed : int
        32-bit seed (the reference implementation's ``seed``).

    Returns
    -------
    digests : ndarray of uint64, shape (n, 2)
        ``(h1, h2)`` per string; the 16-byte digest is ``h1`` then ``h2``, little-endian.

    Complexity: O(bytes + n).

    Example
    -------
    >>> data = np.frombuffer(b"hello", dtype=np.uint8)
    >>> digests128(data, np.array([0, 5])).shape
    (1, 2)
    """
    data = np.ascontiguousarray(data, dtype=np.uint8)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    out = np.empty((offsets.shape[0] - 1, 2), dtype=np.uint64)
    _digest_all(data, offsets, np.uint64(seed & 0xFFFFFFFF), out)
    return out


def first_occurrence_labels(digests: np.ndarray) -> np.ndarray:
    """Label each row with the first row holding the same 128-bit digest.

    Parameters
    ----------
    digests : ndarray of uint64, shape (n, 2)

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        ``labels[i]`` = smallest ``j`` with ``digests[j] == digests[i]`` (the convention of
        ``unionfind.connected_components``).

    Complexity: O(n log n) (one stable argsort of the packed digests).

    Example
    -------
    >>> first_occurrence_labels(np.array([[1, 2], [3, 4], [1, 2]], dtype=np.uint64)).tolist()
    [0, 1, 0]
    """
    digests = np.ascontiguousarray(digests, dtype=np.uint64)
    n = digests.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((digests[:, 1], digests[:, 0]))
    ordered = digests[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.any(ordered[1:] != ordered[:-1], axis=1, out=new_group[1:])
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    labels = np.empty(n, dtype=np.int64)
    # lexsort is stable, so the first element of each group is its smallest row id.
    labels[order] = order[group_start]
    return labels
