"""Union-find (disjoint sets) over candidate pairs: the clustering step shared by every dedup.

Arrays in, arrays out: edges are two int64 arrays of row indices; the result labels every row with
the smallest row index of its connected component, so "keep the first occurrence" is
``labels == arange(n)``.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _find(parent: np.ndarray, node: np.int64) -> np.int64:
    root = node
    while parent[root] != root:
        root = parent[root]
    # Path compression keeps later finds O(alpha(n)).
    while parent[node] != root:
        parent[node], node = root, parent[node]
    return root


@numba.njit(cache=True, nogil=True)
def _union_all(parent: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    for i in range(left.shape[0]):
        a = _find(parent, left[i])
        b = _find(parent, right[i])
        # Linking the larger root under the smaller one makes every root its component's minimum.
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b


@numba.njit(cache=True, nogil=True)
def _flatten(parent: np.ndarray) -> None:
    for node in range(parent.shape[0]):
        parent[node] = _find(parent, node)


def connected_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Label ``n`` nodes by connected component over the undirected edges ``(left[i], right[i])``.

    Parameters
    ----------
    n : int
        Number of nodes (rows); node ids are ``0 .. n-1``.
    left, right : ndarray of int64, shape (m,)
        Edge endpoints. Self-loops and repeated edges are allowed.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        ``labels[i]`` is the smallest node id in ``i``'s component.

    Complexity: O(n + m * alpha(n)) time, O(n) extra memory.

    Example
    -------
    >>> connected_components(5, np.array([0, 3]), np.array([2, 4])).tolist()
    [0, 1, 0, 3, 3]
    """
    left = np.ascontiguousarray(left, dtype=np.int64)
    right = np.ascontiguousarray(right, dtype=np.int64)
    if left.shape != right.shape:
        raise ValueError(f"edge arrays differ in shape: {left.shape} vs {right.shape}")
    if left.size and (min(left.min(), right.min()) < 0 or max(left.max(), right.max()) >= n):
        raise ValueError(f"edge endpoints must lie in [0, {n})")
    parent = np.arange(n, dtype=np.int64)
    _union_all(parent, left, right)
    _flatten(parent)
    return parent
