"""Dealing groups of rows to splits: each group, in the order given, goes to the split furthest
below its running target ``ratio * rows_dealt``.

Arrays in, arrays out; the same float64 arithmetic, in the same order, as the Python loop it
replaces, so the same inputs give the same splits.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def deal(order: np.ndarray, sizes: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Split index of each group.

    Parameters
    ----------
    order : ndarray of int64, shape (n_groups,)
        The groups in the order they are dealt.
    sizes : ndarray of int64, shape (n_groups,)
        Rows per group.
    ratios : ndarray of float64, shape (k,)
        Requested share of each split.

    Returns
    -------
    split_of_group : ndarray of int64, shape (n_groups,)

    Complexity: O(n_groups * k).

    Example
    -------
    >>> deal(np.array([1, 0, 2]), np.array([1, 1, 2]), np.array([0.5, 0.5])).tolist()
    [1, 0, 0]
    """
    counts = np.zeros(ratios.shape[0], dtype=np.float64)
    split_of_group = np.empty(sizes.shape[0], dtype=np.int64)
    dealt = 0
    for position in range(order.shape[0]):
        group = order[position]
        size = sizes[group]
        dealt += size
        best = 0
        best_deficit = -np.inf
        for split in range(ratios.shape[0]):
            deficit = ratios[split] * dealt - counts[split]
            if deficit > best_deficit:
                best = split
                best_deficit = deficit
        counts[best] += size
        split_of_group[group] = best
    return split_of_group
