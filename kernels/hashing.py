"""64-bit mixing shared by the hashing kernels (exact digests, MinHash shingles, LSH band keys).

``fmix64`` is MurmurHash3's finaliser (Appleby): every input bit affects every output bit.
``GOLDEN64`` is the 64-bit golden-ratio multiplier (odd, so multiplication by it is invertible)
that the shingle and band hashes fold words with.

Example:
    >>> hex(int(fmix64(np.uint64(1))))
    '0xb456bcfc34c2cb2c'
"""

from __future__ import annotations

import numba
import numpy as np

M1 = np.uint64(0xFF51AFD7ED558CCD)
M2 = np.uint64(0xC4CEB9FE1A85EC53)
GOLDEN64 = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, nogil=True, inline="always")
def fmix64(h):
    """MurmurHash3's 64-bit finaliser of a ``uint64``."""
    h ^= h >> np.uint64(33)
    h *= M1
    h ^= h >> np.uint64(33)
    h *= M2
    h ^= h >> np.uint64(33)
    return h
