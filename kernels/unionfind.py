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


@numba.njit(cache=True, nogil=True)
def _union(parent: np.ndarray, a, b) -> None:
    a = _find(parent, a)
    b = _find(parent, b)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@numba.njit(cache=True, nogil=True)
def _join_labelled(parent: np.ndarray, rows: np.ndarray, labels: np.ndarray, first: np.ndarray) -> None:
    for i in range(rows.shape[0]):
        label = labels[i]
        if first[label] < 0:
            first[label] = rows[i]
        else:
            _union(parent, rows[i], first[label])


def join_labelled(parent: np.ndarray, rows: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Join the rows that share a label, in place: an edge set given as ``(row, label)`` pairs
    without a node per label.

    Parameters
    ----------
    parent : ndarray of int32 or int64, shape (n,)
        A union-find forest over the rows (``np.arange(n)`` at first), updated in place.
    rows : ndarray of int, shape (m,)
        Row of each pair, in ``0 .. n-1``.
    labels : ndarray of int, shape (m,)
        Label of each pair, in ``0 .. num_labels-1``.
    num_labels : int

    Returns
    -------
    parent : the same array; :func:`component_labels` turns it into labels.

    Complexity: O(m * alpha(n)) time, O(num_labels) extra memory (the first row of each label).

    Example
    -------
    >>> parent = join_labelled(np.arange(4), np.array([0, 1, 3]), np.array([1, 0, 1]), 2)
    >>> component_labels(parent).tolist()
    [0, 1, 2, 0]
    """
    first = np.full(num_labels, -1, dtype=parent.dtype)
    _join_labelled(parent, np.ascontiguousarray(rows), np.ascontiguousarray(labels), first)
    return parent


@numba.njit(cache=True, nogil=True)
def _join_equal_keys(parent, rows, high, low, order, flags) -> np.int64:
    flagged = np.int64(0)
    previous = -1
    for position in range(order.shape[0]):
        item = order[position]
        if previous >= 0 and high[item] == high[previous] and low[item] == low[previous]:
            _union(parent, rows[item], rows[previous])
        elif flags[item]:
            flagged += 1
        previous = item
    return flagged


def join_equal_keys(parent: np.ndarray, rows: np.ndarray, high: np.ndarray, low: np.ndarray,
                    order: np.ndarray, flags: np.ndarray) -> int:
    """Join the rows of items holding equal 128-bit keys, in place, given the items sorted by key.

    Parameters
    ----------
    parent : ndarray of int32 or int64, shape (n,)
        A union-find forest over the rows, updated in place.
    rows : ndarray of int, shape (m,)
        Row of each item.
    high, low : ndarray of uint64, shape (m,)
        The two words of each item's key.
    order : ndarray of int64, shape (m,)
        The items in key order (``np.lexsort((low, high))``): equal keys are neighbours.
    flags : ndarray of bool, shape (m,)
        A mark that items of one key share (for instance "keyed by path").

    Returns
    -------
    flagged : int
        Distinct keys whose items are flagged.

    Complexity: O(m * alpha(n)) time, no extra memory: no node per key, no label per item.

    Example
    -------
    >>> parent = np.arange(3)
    >>> keys = np.array([7, 5, 7], dtype=np.uint64)
    >>> join_equal_keys(parent, np.arange(3), keys, keys, np.argsort(keys, kind="stable"), np.ones(3, bool))
    2
    >>> component_labels(parent).tolist()
    [0, 1, 0]
    """
    return int(_join_equal_keys(parent, np.ascontiguousarray(rows), np.ascontiguousarray(high), np.ascontiguousarray(low),
                                np.ascontiguousarray(order), np.ascontiguousarray(flags)))


def component_labels(parent: np.ndarray) -> np.ndarray:
    """The union-find forest ``parent`` (of :func:`join_labelled`, :func:`join_equal_keys`) as the
    smallest row id of each row's component, in place.

    Parameters
    ----------
    parent : ndarray of int32 or int64, shape (n,)

    Returns
    -------
    labels : the same array, ``labels[i]`` the smallest row in ``i``'s component (roots are
    always the smaller row of a union, so a component's root is its minimum).

    Complexity: O(n * alpha(n)).
    """
    _flatten(parent)
    return parent
