"""LSH banding of MinHash signatures: band keys, then candidate edges by sorting the keys.

Two stages, arrays in -> arrays out, so each can run on its own over shards:

1. :func:`band_keys`: one 64-bit key per (document, band), a hash of the band's ``r`` signature
   values; rows of any shard, computed independently;
2. :func:`band_edges`: for one band's keys (all rows with equal keys must be in the same call,
   e.g. after a shuffle by key), the edges ``(first row, row)`` linking every row to the first row
   of its equal-key run. Feed the edges of all bands to ``unionfind.connected_components``.

Grouping is a plain ``np.sort`` of packed ``(key prefix | local index)`` words rather than an
argsort; runs of equal prefixes are then split by the full 64-bit key, so the result is exact at the
64-bit key level. Distinct bands colliding on a 64-bit key happens with probability ~n^2 / 2^65 per
band.
"""

from __future__ import annotations

import numba
import numpy as np

from .hashing import GOLDEN64, fmix64


def _s_curve(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s**rows) ** bands


def optimal_param(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """Bands ``b`` and rows ``r`` (``b * r <= num_perm``) minimising the weighted LSH error.

    The rule of datasketch's ``_optimal_param`` (also Data-Juicer's): the false-positive area is
    the integral of the S-curve ``1 - (1 - s^r)^b`` over [0, threshold], the false-negative area
    the integral of ``(1 - s^r)^b`` over [threshold, 1]. Integrals use the midpoint rule on
    0.001-wide cells (datasketch's own integration).

    Returns
    -------
    (bands, rows) : tuple of int

    Complexity: O(num_perm log num_perm / 0.001) floating-point operations.

    Example
    -------
    >>> optimal_param(0.7, 256)
    (25, 10)
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    step = 0.001
    below = np.arange(0.0, threshold, step) + step / 2
    above = np.arange(threshold, 1.0, step) + step / 2
    best, best_error = (0, 0), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = _s_curve(below, bands, rows).sum() * step
            false_negative = (1.0 - _s_curve(above, bands, rows)).sum() * step
            error = false_positive * false_positive_weight + false_negative * false_negative_weight
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


# Odd 64-bit multipliers, one per signature position (signatures up to 4096 values).
_POSITION_MULTIPLIERS = np.random.RandomState(1122).randint(0, 2**62, size=4096, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _band_keys(signatures, bands, rows, multipliers, out):
    for i in range(signatures.shape[0]):
        for band in range(bands):
            # Multilinear hash of the band's values (universal; independent multiplies vectorise),
            # then a finaliser so the high bits that band_edges sorts on are well mixed.
            h = np.uint64(band + 1) * GOLDEN64
            for j in range(band * rows, (band + 1) * rows):
                h += np.uint64(signatures[i, j]) * multipliers[j]
            out[band, i] = fmix64(h)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit LSH keys: one hash per (band, document) of its ``rows`` signature values.

    Parameters
    ----------
    signatures : ndarray of uint32, shape (n, k), with ``bands * rows <= k``
    bands, rows : int

    Returns
    -------
    keys : ndarray of uint64, shape (bands, n)
        Band-major, so ``keys[band]`` is contiguous for :func:`band_edges`.

    Complexity: O(n * bands * rows).

    Example
    -------
    >>> sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9]], dtype=np.uint32)
    >>> keys = band_keys(sig, bands=2, rows=2)
    >>> bool(keys[0, 0] == keys[0, 1]), bool(keys[1, 0] == keys[1, 1])
    (True, False)
    """
    signatures = np.ascontiguousarray(signatures, dtype=np.uint32)
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"bands * rows = {bands * rows} exceeds the signature length {signatures.shape[1]}")
    if signatures.shape[1] > _POSITION_MULTIPLIERS.size:
        raise ValueError(f"signatures longer than {_POSITION_MULTIPLIERS.size} values are not supported")
    out = np.empty((bands, signatures.shape[0]), dtype=np.uint64)
    _band_keys(signatures, bands, rows, _POSITION_MULTIPLIERS, out)
    return out


@numba.njit(cache=True, nogil=True)
def _runs_to_edges(packed, keys, row_ids, bits):
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    m = packed.shape[0]
    left = np.empty(m, dtype=np.int64)
    right = np.empty(m, dtype=np.int64)
    representatives = np.empty(8, dtype=np.int64)
    used = 0
    start = 0
    while start < m:
        prefix = packed[start] >> np.uint64(bits)
        end = start + 1
        while end < m and (packed[end] >> np.uint64(bits)) == prefix:
            end += 1
        if end - start > 1:
            # Within one prefix run, rows group by their full key; a run almost always holds one.
            nrep = 0
            for p in range(start, end):
                local = np.int64(packed[p] & mask)
                found = -1
                for q in range(nrep):
                    if keys[representatives[q]] == keys[local]:
                        found = representatives[q]
                        break
                if found < 0:
                    if nrep == representatives.shape[0]:
                        bigger = np.empty(nrep * 2, dtype=np.int64)
                        bigger[:nrep] = representatives[:nrep]
                        representatives = bigger
                    representatives[nrep] = local
                    nrep += 1
                else:
                    left[used] = row_ids[found]
                    right[used] = row_ids[local]
                    used += 1
        start = end
    return left[:used].copy(), right[:used].copy()


def band_edges(keys: np.ndarray, row_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate-duplicate edges of one band: rows with equal keys are linked.

    Parameters
    ----------
    keys : ndarray of uint64, shape (m,)
        One band's keys (a row of :func:`band_keys`, or any subset holding every row of each key).
    row_ids : ndarray of int64, shape (m,), optional
        Global row id of each key (default ``arange(m)``).

    Returns
    -------
    left, right : ndarray of int64, shape (e,)
        Each row of an equal-key group linked to the group's first row in sort order (the
        smallest local index); ``e = m - number of distinct keys``.

    Complexity: O(m log m) for one ``np.sort`` of m words, plus O(m).

    Example
    -------
    >>> band_edges(np.array([7, 3, 7, 7], dtype=np.uint64))
    (array([0, 0]), array([2, 3]))
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    m = keys.shape[0]
    row_ids = np.arange(m, dtype=np.int64) if row_ids is None else np.ascontiguousarray(row_ids, dtype=np.int64)
    if row_ids.shape != keys.shape:
        raise ValueError(f"keys and row_ids differ in shape: {keys.shape} vs {row_ids.shape}")
    bits = max(1, int(m - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    packed = (keys & ~low) | np.arange(m, dtype=np.uint64)
    packed.sort()
    return _runs_to_edges(packed, keys, row_ids, bits)
