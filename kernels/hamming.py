"""Hamming-radius search over packed binary hashes: every pair of rows within ``radius`` bits.

Two strategies with the same result set:

- brute force: a popcount over every pair, in blocks that the compiler vectorises (AVX-512
  VPOPCNTQ where the CPU has it); a block is rescanned for its hits only when it has any, so the
  common no-hit case is branch free. O(n^2 w) time, the right choice up to ~1e6 hashes.
- multi-index hashing (Norouzi et al., 2012), for single-word (<= 64-bit) hashes: split the bits into
  ``m`` substrings; two hashes within ``radius`` agree within ``radius // m`` bits on at least one
  substring (pigeonhole), so only those candidates are verified. Each pair is reported by the first
  substring that finds it, so no deduplication pass is needed. Sub-quadratic on spread-out hashes.

Hashes are ``uint64`` arrays of shape (n, words) as written by ``perceptual_hash.pack_bits``.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_BLOCK = 256


@numba.njit(cache=True, nogil=True, inline="always")
def _popcount(x):
    # LLVM turns this SWAR idiom into a ctpop instruction (and vectorises it).
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(cache=True, nogil=True)
def _grow(buffer: np.ndarray) -> np.ndarray:
    bigger = np.empty(buffer.shape[0] * 2, dtype=buffer.dtype)
    bigger[: buffer.shape[0]] = buffer
    return bigger


@numba.njit(cache=True, nogil=True)
def _brute_single_word(hashes, radius, row_start, row_stop):
    n = hashes.shape[0]
    left = np.empty(1024, dtype=np.int64)
    right = np.empty(1024, dtype=np.int64)
    count = 0
    for i in range(row_start, row_stop):
        query = hashes[i]
        block_start = i + 1
        while block_start < n:
            block_stop = min(block_start + _BLOCK, n)
            # Indexing a slice from 0 lets LLVM prove the indices non-negative and emit contiguous
            # vector loads; indexing `hashes[j]` directly compiles to gathers, 5x slower.
            block = hashes[block_start:block_stop]
            hits = 0
            for k in range(block.shape[0]):
                hits += 1 if _popcount(query ^ block[k]) <= radius else 0
            if hits > 0:
                for k in range(block.shape[0]):
                    j = block_start + k
                    if _popcount(query ^ block[k]) <= radius:
                        if count == left.shape[0]:
                            left = _grow(left)
                            right = _grow(right)
                        left[count] = i
                        right[count] = j
                        count += 1
            block_start = block_stop
    return left[:count].copy(), right[:count].copy()


@numba.njit(cache=True, nogil=True)
def _brute_multi_word(hashes, radius, row_start, row_stop):
    n, words = hashes.shape
    left = np.empty(1024, dtype=np.int64)
    right = np.empty(1024, dtype=np.int64)
    count = 0
    for i in range(row_start, row_stop):
        for j in range(i + 1, n):
            distance = 0
            for w in range(words):
                distance += _popcount(hashes[i, w] ^ hashes[j, w])
            if distance <= radius:
                if count == left.shape[0]:
                    left = _grow(left)
                    right = _grow(right)
                left[count] = i
                right[count] = j
                count += 1
    return left[:count].copy(), right[:count].copy()


@numba.njit(cache=True, nogil=True)
def _mih_single_word(radius, shifts, masks, sub_radius, flips, order, sorted_hashes, offsets, position_start, position_stop):
    substrings = shifts.shape[0]
    left = np.empty(1024, dtype=np.int64)
    right = np.empty(1024, dtype=np.int64)
    count = 0
    for s in range(substrings):
        # Queries in bucket order: consecutive queries probe neighbouring buckets (cache friendly),
        # and each bucket's hashes are stored contiguously.
        for position in range(position_start, position_stop):
            i = order[s, position]
            query = sorted_hashes[s, position]
            key = (query >> shifts[s]) & masks[s]
            for f in range(flips.shape[1]):
                flip = flips[s, f]
                if flip == np.uint64(0xFFFFFFFFFFFFFFFF):
                    break
                probe = np.int64(key ^ flip)
                for slot in range(offsets[s, probe], offsets[s, probe + 1]):
                    j = order[s, slot]
                    if j <= i:
                        continue
                    difference = query ^ sorted_hashes[s, slot]
                    if _popcount(difference) > radius:
                        continue
                    # Report the pair only from the first substring that can see it.
                    first = True
                    for earlier in range(s):
                        if _popcount((difference >> shifts[earlier]) & masks[earlier]) <= sub_radius:
                            first = False
                            break
                    if first:
                        if count == left.shape[0]:
                            left = _grow(left)
                            right = _grow(right)
                        left[count] = i
                        right[count] = j
                        count += 1
    return left[:count].copy(), right[:count].copy()


def _balanced_row_ranges(n: int, pieces: int) -> list[tuple[int, int]]:
    # Row i is compared with the n - i - 1 rows after it: cut the triangle into equal areas.
    if n == 0:
        return []
    cuts = [0]
    for k in range(1, pieces):
        row = int(n - n * np.sqrt(1.0 - k / pieces))
        if row > cuts[-1]:
            cuts.append(row)
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


def _run_ranges(kernel, ranges, num_threads: int):
    if num_threads <= 1 or len(ranges) <= 1:
        parts = [kernel(start, stop) for start, stop in ranges]
    else:
        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            parts = list(pool.map(lambda r: kernel(*r), ranges))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _mih_tables(hashes: np.ndarray, substrings: int, sub_radius: int):
    widths = [64 // substrings + (1 if s < 64 % substrings else 0) for s in range(substrings)]
    shifts = np.array([64 - sum(widths[: s + 1]) for s in range(substrings)], dtype=np.uint64)
    masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
    flip_lists = []
    for width in widths:
        flips = [0]
        for weight in range(1, sub_radius + 1):
            for bits in itertools.combinations(range(width), weight):
                flips.append(sum(1 << b for b in bits))
        flip_lists.append(flips)
    longest = max(len(f) for f in flip_lists)
    flips = np.full((substrings, longest), np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for s, values in enumerate(flip_lists):
        flips[s, : len(values)] = np.array(values, dtype=np.uint64)
    n = hashes.shape[0]
    order = np.empty((substrings, n), dtype=np.int64)
    sorted_hashes = np.empty((substrings, n), dtype=np.uint64)
    offsets = np.zeros((substrings, (1 << max(widths)) + 1), dtype=np.int32 if n < 2**31 else np.int64)
    for s in range(substrings):
        keys = ((hashes >> shifts[s]) & masks[s]).astype(np.int64)
        order[s] = np.argsort(keys, kind="stable")
        sorted_hashes[s] = hashes[order[s]]
        counts = np.bincount(keys, minlength=1 << widths[s])
        offsets[s, 1 : (1 << widths[s]) + 1] = np.cumsum(counts)
        offsets[s, (1 << widths[s]) + 1 :] = n
    return shifts, masks, flips, order, sorted_hashes, offsets


def hamming_pairs(
    hashes: np.ndarray,
    radius: int,
    *,
    method: str = "auto",
    num_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` whose Hamming distance is at most ``radius``.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (n, words) or (n,)
        Packed bit strings, one row per item.
    radius : int
        Largest distance reported (inclusive; faiss's ``range_search`` radius is exclusive, so it
        equals ``radius + 1`` there).
    method : {"auto", "brute", "mih"}
        ``"auto"`` uses brute force up to 1e6 single-word hashes (or for multi-word hashes) and
        multi-index hashing above.
    num_threads : int
        Threads over row ranges (the kernels release the GIL).

    Returns
    -------
    left, right : ndarray of int64, shape (pairs,)
        ``left < right``; each pair once, grouped by ``left`` for brute force.

    Complexity: brute force O(n^2 words / 2); multi-index hashing O(n * probes * bucket size) with
    ``probes = sum_{k <= radius // m} C(64 / m, k)`` per substring.

    Example
    -------
    >>> h = np.array([0b1111, 0b0111, 0xFF00], dtype=np.uint64)
    >>> [a.tolist() for a in hamming_pairs(h, 1)]
    [[0], [1]]
    """
    hashes = np.asarray(hashes)
    if hashes.ndim == 1:
        hashes = hashes[:, None]
    if hashes.dtype != np.uint64 or hashes.ndim != 2:
        raise ValueError(f"hashes must be uint64 of shape (n, words), got {hashes.dtype} {hashes.shape}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if method not in ("auto", "brute", "mih"):
        raise ValueError(f"method must be 'auto', 'brute' or 'mih', got {method!r}")
    n, words = hashes.shape
    if method == "mih" and words != 1:
        raise ValueError(f"multi-index hashing needs single-word (<= 64-bit) hashes, got {words} words")
    use_mih = method == "mih" or (method == "auto" and words == 1 and n > 1_000_000)
    if use_mih:
        flat = np.ascontiguousarray(hashes[:, 0])
        # Substrings of ~log2(n) bits keep buckets near one item on spread-out hashes; at least 3
        # keep each bucket table within 2^22 entries.
        substrings = int(max(3, round(64 / max(8.0, np.log2(max(n, 2))))))
        sub_radius = radius // substrings
        shifts, masks, flips, order, sorted_hashes, offsets = _mih_tables(flat, substrings, sub_radius)

        def kernel(start, stop):
            return _mih_single_word(radius, shifts, masks, sub_radius, flips, order, sorted_hashes, offsets, start, stop)

        pieces = 8 * max(1, num_threads)
        cuts = [n * k // pieces for k in range(pieces + 1)]
        ranges = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        left, right = _run_ranges(kernel, ranges, num_threads)
        if left.size:
            by_row = np.lexsort((right, left))
            left, right = left[by_row], right[by_row]
        return left, right
    ranges = _balanced_row_ranges(n, 8 * max(1, num_threads))
    if words == 1:
        flat = np.ascontiguousarray(hashes[:, 0])
        return _run_ranges(lambda s, e: _brute_single_word(flat, radius, s, e), ranges, num_threads)
    contiguous = np.ascontiguousarray(hashes)
    return _run_ranges(lambda s, e: _brute_multi_word(contiguous, radius, s, e), ranges, num_threads)


@numba.njit(cache=True, nogil=True)
def _aligned_matches(signatures, left, right, radius):
    pairs = left.shape[0]
    positions = signatures.shape[1]
    counts = np.zeros(pairs, dtype=np.int64)
    for p in range(pairs):
        a = signatures[left[p]]
        b = signatures[right[p]]
        matched = 0
        for k in range(positions):
            if _popcount(a[k] ^ b[k]) <= radius:
                matched += 1
        counts[p] = matched
    return counts


def aligned_matches(signatures: np.ndarray, left: np.ndarray, right: np.ndarray, radius: int) -> np.ndarray:
    """For each pair ``(left[p], right[p])`` of rows of ``signatures``, how many positions ``k`` hold
    hashes within ``radius`` bits of each other (position against the same position only).

    A signature row is a sequence of single-word hashes taken at the same places of two items (the
    frames of two videos at the same fractions of their durations), so two items match where most
    positions do. O(pairs * positions).

    Example
    -------
    >>> signatures = np.array([[0b1111, 0b0000, 0xFF], [0b0111, 0xFFFF, 0xFF]], dtype=np.uint64)
    >>> aligned_matches(signatures, np.array([0]), np.array([1]), 1).tolist()
    [2]
    """
    signatures = np.ascontiguousarray(signatures, dtype=np.uint64)
    if signatures.ndim != 2:
        raise ValueError(f"signatures must be uint64 of shape (n, positions), got shape {signatures.shape}")
    return _aligned_matches(signatures, np.ascontiguousarray(left, dtype=np.int64),
                            np.ascontiguousarray(right, dtype=np.int64), int(radius))
