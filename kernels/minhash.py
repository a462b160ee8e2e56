"""MinHash signatures of texts given as Arrow string buffers (UTF-8 bytes + int64 offsets).

Two stages, each arrays in -> arrays out:

1. shingle hashes: :func:`word_shingle_hashes` / :func:`char_shingle_hashes` scan the UTF-8 bytes and
   return one flat ``uint64`` array of shingle hashes plus per-document offsets (CSR layout);
2. sketches: :func:`minhash_signatures` (k independent permutations, O(n k) per document) or
   :func:`oph_signatures` (one-permutation hashing with optimal densification, O(n + k)).

Permutations come from :func:`permutations`, drawn exactly like datasketch / Data-Juicer
(``np.random.RandomState(seed)``, ``a`` in [1, 2^61-1), ``b`` in [0, 2^61-1)). Two ways to apply them:

- ``"data_juicer"``: ``((h * a + b) mod 2^64 mod (2^61-1)) & (2^32-1)`` on 32-bit token hashes, the
  exact arithmetic of Data-Juicer's ``document_minhash_deduplicator`` (bit-for-bit with its sha1
  token hashes);
- ``"affine32"`` (fast default): ``(a' * x + b') mod 2^32`` on the low 32 bits ``x`` of a 64-bit
  shingle hash, with ``a' = (a mod 2^32) | 1`` (odd, so each map is a bijection of 32-bit values)
  and ``b' = b mod 2^32``: the affine family datasketch 2 uses by default. It needs no modulo and
  runs in 32-bit vector lanes. Affine maps have weak low bits, which is harmless here because the
  inputs are already uniform 64-bit hashes; the test suite checks that LSH detection rates match
  the theoretical S-curve within 1%.

Empty documents get the all-``2^32-1`` signature (Data-Juicer's value for a text without shingles).
"""

from __future__ import annotations

import numba
import numpy as np

from .hashing import GOLDEN64, fmix64

MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)
_SPACE = np.uint8(32)


def permutations(num_perm: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The MinHash permutation coefficients ``a, b`` of datasketch / Data-Juicer.

    Parameters
    ----------
    num_perm : int
        Number of permutations ``k``.
    seed : int
        Seed of ``np.random.RandomState`` (Data-Juicer uses 42).

    Returns
    -------
    a, b : ndarray of uint64, shape (k,)
        ``a`` in [1, 2^61-1), ``b`` in [0, 2^61-1), drawn as alternating pairs.

    Example
    -------
    >>> a, b = permutations(256, seed=42)
    >>> a.shape, a.dtype.name
    ((256,), 'uint64')
    """
    generator = np.random.RandomState(seed)
    pairs = np.array(
        [
            (generator.randint(1, MERSENNE_PRIME, dtype=np.uint64), generator.randint(0, MERSENNE_PRIME, dtype=np.uint64))
            for _ in range(num_perm)
        ],
        dtype=np.uint64,
    )
    return np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])


@numba.njit(cache=True, nogil=True, inline="always")
def _hash_bytes(data, start, end, seed):
    # Bytes are packed into 64-bit words so the multiply chain runs once per 8 bytes, not per byte.
    h = seed
    word = np.uint64(0)
    shift = np.uint64(0)
    for i in range(start, end):
        word |= np.uint64(data[i]) << shift
        shift += np.uint64(8)
        if shift == np.uint64(64):
            h = (h ^ word) * GOLDEN64
            h ^= h >> np.uint64(29)
            word = np.uint64(0)
            shift = np.uint64(0)
    h = (h ^ word ^ np.uint64(end - start)) * GOLDEN64
    return fmix64(h)


# Odd 64-bit multipliers, one per position in a shingle (windows up to 64 words).
_POSITION_MULTIPLIERS = np.random.RandomState(20261122).randint(0, 2**62, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


@numba.njit(cache=True, nogil=True, inline="always")
def _combine(tokens, first, count, multipliers):
    # Multilinear hashing of the token hashes: the products are independent, so they run in
    # parallel instead of as one serial multiply chain.
    h = np.uint64(count)
    for j in range(count):
        h += tokens[first + j] * multipliers[j]
    return fmix64(h)


@numba.njit(cache=True, nogil=True)
def _shingle_counts(data, offsets, window):
    n = offsets.shape[0] - 1
    counts = np.empty(n, dtype=np.int64)
    longest = 0
    for row in range(n):
        # Branch-free count of word starts (a non-space byte after a space or the row start).
        words = 0
        previous_space = True
        for i in range(offsets[row], offsets[row + 1]):
            space = data[i] == _SPACE
            words += previous_space and not space
            previous_space = space
        longest = max(longest, words)
        counts[row] = 0 if words == 0 else (1 if words < window else words - window + 1)
    return counts, longest


@numba.njit(cache=True, nogil=True)
def _word_shingles(data, offsets, window, seed, multipliers, ascii_lowercase, shingle_offsets, longest):
    # A counting pass sized every buffer exactly: nothing is reallocated or copied here.
    tokens = np.empty(max(longest, 1), dtype=np.uint64)
    out = np.empty(shingle_offsets[-1], dtype=np.uint64)
    for row in range(offsets.shape[0] - 1):
        # One branch-light pass over the bytes (the same hash as _hash_bytes on each word): a
        # for-loop over the range compiles far tighter than nested scans for word boundaries.
        ntok = 0
        h = seed
        word = np.uint64(0)
        shift = np.uint64(0)
        length = 0
        for i in range(offsets[row], offsets[row + 1]):
            c = data[i]
            if ascii_lowercase and c >= np.uint8(65) and c <= np.uint8(90):
                c += np.uint8(32)
            if c != _SPACE:
                word |= np.uint64(c) << shift
                shift += np.uint64(8)
                length += 1
                if shift == np.uint64(64):
                    h = (h ^ word) * GOLDEN64
                    h ^= h >> np.uint64(29)
                    word = np.uint64(0)
                    shift = np.uint64(0)
            elif length > 0:
                tokens[ntok] = fmix64((h ^ word ^ np.uint64(length)) * GOLDEN64)
                ntok += 1
                h = seed
                word = np.uint64(0)
                shift = np.uint64(0)
                length = 0
        if length > 0:
            tokens[ntok] = fmix64((h ^ word ^ np.uint64(length)) * GOLDEN64)
            ntok += 1
        first = shingle_offsets[row]
        if 0 < ntok < window:
            out[first] = _combine(tokens, 0, ntok, multipliers)
        else:
            for s in range(ntok - window + 1):
                out[first + s] = _combine(tokens, s, window, multipliers)
    return out


@numba.njit(cache=True, nogil=True)
def _char_shingles(data, offsets, window, seed):
    n = offsets.shape[0] - 1
    counts = np.empty(n, dtype=np.int64)
    longest = 0
    for row in range(n):
        longest = max(longest, offsets[row + 1] - offsets[row])
    starts = np.empty(longest + 1, dtype=np.int64)
    out = np.empty(offsets[n] - offsets[0] + n + 1, dtype=np.uint64)
    used = 0
    for row in range(n):
        start = offsets[row]
        end = offsets[row + 1]
        ncp = 0
        for i in range(start, end):
            # UTF-8 continuation bytes are 0b10xxxxxx; every other byte starts a code point.
            if (data[i] & np.uint8(0xC0)) != np.uint8(0x80):
                starts[ncp] = i
                ncp += 1
        starts[ncp] = end
        if ncp == 0:
            count = 0
        elif ncp < window:
            count = 1
            out[used] = _hash_bytes(data, start, end, seed)
        else:
            count = ncp - window + 1
            for s in range(count):
                out[used + s] = _hash_bytes(data, starts[s], starts[s + window], seed)
        used += count
        counts[row] = count
    return out[:used].copy(), counts


def _csr(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def word_shingle_hashes(data: np.ndarray, offsets: np.ndarray, window: int = 5, seed: int = 0, ascii_lowercase: bool = False):
    """64-bit hashes of the ``window``-word shingles of every document.

    Words are the non-empty runs between ASCII spaces (Data-Juicer's ``split_on_whitespace``: tabs
    and newlines stay inside words). A document with ``w >= window`` words has ``w - window + 1``
    shingles; one with ``1 <= w < window`` words is one shingle of all its words; an empty or
    all-space document has none. ``ascii_lowercase`` folds A-Z while hashing; Unicode lowercasing
    is the caller's job (on the Arrow array).

    Parameters
    ----------
    data : ndarray of uint8, shape (bytes,)
        Concatenated UTF-8 text (an Arrow string array's data buffer).
    offsets : ndarray of int64, shape (n + 1,)
        Document ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
    window : int
        Words per shingle.
    seed : int
        Seed of the byte hash.
    ascii_lowercase : bool
        Hash ``A``-``Z`` as ``a``-``z``.

    Returns
    -------
    hashes : ndarray of uint64, shape (total_shingles,)
    shingle_offsets : ndarray of int64, shape (n + 1,)
        Document ``i``'s shingles are ``hashes[shingle_offsets[i]:shingle_offsets[i + 1]]``.

    Complexity: O(bytes + total_words * window).

    Example
    -------
    >>> data = np.frombuffer(b"a b c d e f", dtype=np.uint8)
    >>> hashes, shingle_offsets = word_shingle_hashes(data, np.array([0, 11]), window=5)
    >>> shingle_offsets.tolist()
    [0, 2]
    """
    if not 1 <= window <= _POSITION_MULTIPLIERS.size:
        raise ValueError(f"window must be in [1, {_POSITION_MULTIPLIERS.size}], got {window}")
    data, offsets = _bytes(data), _offsets(offsets)
    counts, longest = _shingle_counts(data, offsets, window)
    shingle_offsets = _csr(counts)
    hashes = _word_shingles(data, offsets, window, np.uint64(seed), _POSITION_MULTIPLIERS, ascii_lowercase, shingle_offsets, longest)
    return hashes, shingle_offsets


def char_shingle_hashes(data: np.ndarray, offsets: np.ndarray, window: int = 5, seed: int = 0):
    """64-bit hashes of the ``window``-code-point shingles of every document.

    A document with ``c >= window`` code points has ``c - window + 1`` shingles; a shorter non-empty
    one is one shingle; an empty one has none. Same inputs and outputs as :func:`word_shingle_hashes`.

    Complexity: O(bytes * window).

    Example
    -------
    >>> data = np.frombuffer("héllo".encode(), dtype=np.uint8)
    >>> char_shingle_hashes(data, np.array([0, data.size]), window=3)[1].tolist()
    [0, 3]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    hashes, counts = _char_shingles(_bytes(data), _offsets(offsets), window, np.uint64(seed))
    return hashes, _csr(counts)


def _bytes(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data, dtype=np.uint8)


def _offsets(offsets: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(offsets, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _affine32(hashes, offsets, a, b, out):
    k = a.shape[0]
    for row in range(offsets.shape[0] - 1):
        signature = out[row]
        for j in range(k):
            signature[j] = np.uint32(0xFFFFFFFF)
        for s in range(offsets[row], offsets[row + 1]):
            x = np.uint32(hashes[s] & np.uint64(0xFFFFFFFF))
            # 32-bit lanes: twice as many per vector as 64-bit ones, and a branch-free min.
            for j in range(k):
                signature[j] = min(signature[j], np.uint32(a[j] * x + b[j]))


@numba.njit(cache=True, nogil=True)
def _data_juicer(hashes, offsets, a, b, out):
    k = a.shape[0]
    for row in range(offsets.shape[0] - 1):
        signature = out[row]
        for j in range(k):
            signature[j] = np.uint32(0xFFFFFFFF)
        for s in range(offsets[row], offsets[row + 1]):
            x = hashes[s]
            for j in range(k):
                value = np.uint32(((x * a[j] + b[j]) % MERSENNE_PRIME) & MAX_HASH)
                if value < signature[j]:
                    signature[j] = value


def minhash_signatures(
    hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str = "affine32"
) -> np.ndarray:
    """k-permutation MinHash signatures of documents given as CSR shingle hashes.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (total_shingles,)
        Shingle hashes (64-bit for ``"affine32"``, which uses their low 32 bits; 32-bit values
        for ``"data_juicer"``).
    offsets : ndarray of int64, shape (n + 1,)
        Document ``i``'s shingles are ``hashes[offsets[i]:offsets[i + 1]]``.
    a, b : ndarray of uint64, shape (k,)
        Permutation coefficients from :func:`permutations`.
    scheme : {"affine32", "data_juicer"}
        How a permutation is applied (see the module docstring).

    Returns
    -------
    signatures : ndarray of uint32, shape (n, k)
        Per permutation, the minimum over the document's shingles; ``2^32-1`` for a document
        without shingles.

    Complexity: O(total_shingles * k) time, O(n * k) memory.

    Example
    -------
    >>> a, b = permutations(8)
    >>> sig = minhash_signatures(np.array([1, 2, 3], dtype=np.uint64), np.array([0, 3, 3]), a, b)
    >>> sig.shape, int(sig[1, 0])
    ((2, 8), 4294967295)
    """
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = np.ascontiguousarray(b, dtype=np.uint64)
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    offsets = _offsets(offsets)
    out = np.empty((offsets.shape[0] - 1, a.shape[0]), dtype=np.uint32)
    if scheme == "affine32":
        _affine32(hashes, offsets, a.astype(np.uint32) | np.uint32(1), b.astype(np.uint32), out)
    elif scheme == "data_juicer":
        _data_juicer(hashes, offsets, a, b, out)
    else:
        raise ValueError(f"unknown permutation scheme {scheme!r}; use 'affine32' or 'data_juicer'")
    return out


@numba.njit(cache=True, nogil=True)
def _oph(hashes, offsets, k, seed, out):
    empty = np.uint32(0xFFFFFFFF)
    k64 = np.uint64(k)
    for row in range(offsets.shape[0] - 1):
        signature = out[row]
        for j in range(k):
            signature[j] = empty
        for s in range(offsets[row], offsets[row + 1]):
            h = fmix64(hashes[s] ^ seed)
            # High 32 bits choose the bin (Lemire's multiply-shift range reduction), low 32 bits
            # are the value; the two are independent bits of one good hash.
            bin_ = np.int64(((h >> np.uint64(32)) * k64) >> np.uint64(32))
            value = np.uint32(h & np.uint64(0xFFFFFFFE))
            # A branch-free min: the branch on random values mispredicts about half the time.
            signature[bin_] = min(value, signature[bin_])
        if offsets[row + 1] == offsets[row]:
            continue
        # Optimal densification (Shrivastava, 2017): an empty bin copies the bin found by a
        # per-bin hash sequence, so two documents fill the same empty bin from the same source.
        for j in range(k):
            if signature[j] != empty:
                continue
            attempt = np.uint64(1)
            while True:
                h = fmix64((np.uint64(j) << np.uint64(32)) ^ attempt ^ seed)
                source = np.int64(((h >> np.uint64(32)) * k64) >> np.uint64(32))
                if signature[source] != empty and (signature[source] & np.uint32(1)) == 0:
                    signature[j] = signature[source] | np.uint32(1)
                    break
                attempt += np.uint64(1)
        for j in range(k):
            signature[j] &= np.uint32(0xFFFFFFFE)


def oph_signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 256, seed: int = 42) -> np.ndarray:
    """One-permutation hashing with optimal densification: an O(n + k) MinHash for long documents.

    Each shingle hash goes to one of ``k`` bins and the bin keeps its minimum; empty bins borrow
    from non-empty bins along a per-bin hash sequence shared by all documents (Shrivastava, 2017),
    so ``P[sig_x[j] == sig_y[j]]`` is the Jaccard similarity as for k-permutation MinHash. Bins
    are less independent than k permutations when documents have fewer shingles than bins: use
    :func:`minhash_signatures` for short documents.

    Parameters
    ----------
    hashes : ndarray of uint64, shape (total_shingles,)
    offsets : ndarray of int64, shape (n + 1,)
    num_perm : int
        Number of bins ``k``.
    seed : int

    Returns
    -------
    signatures : ndarray of uint32, shape (n, k)
        Even values (the lowest bit is used while densifying); ``2^32-2`` everywhere for a
        document without shingles.

    Complexity: O(total_shingles + n * k) expected time.

    Example
    -------
    >>> hashes = np.arange(1000, dtype=np.uint64)
    >>> oph_signatures(hashes, np.array([0, 1000]), num_perm=64).shape
    (1, 64)
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    offsets = _offsets(offsets)
    out = np.empty((offsets.shape[0] - 1, num_perm), dtype=np.uint32)
    _oph(hashes, offsets, num_perm, np.uint64(seed), out)
    return out
