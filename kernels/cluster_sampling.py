"""Cluster-balanced sampling: FAISS k-means, then per-cluster quotas, deterministic for a seed.

Quotas for ``k`` rows over clusters of sizes ``n_c``:

- ``"uniform"``: max-min fair ("water-filling"): every cluster gets the same share, a cluster
  smaller than its share gives all its rows and the rest is re-spread over the others; the last
  indivisible rows go to the largest clusters;
- ``"proportional"``: ``k * n_c / n`` rounded by largest remainder;
- ``"capped"``: proportional, but no cluster gives more than ``cap`` rows; the excess is
  re-spread proportionally over the clusters still under the cap.

Rounding ties go to the larger cluster, then to the lower cluster id.

Within a cluster, rows are taken in a seeded random order (``within="random"``) or nearest to the
centroid first (``within="nearest"``). The result is interleaved round-robin over clusters (rank 0
of every cluster, then rank 1, ...), so every prefix of it is itself close to balanced.
"""

from __future__ import annotations

import faiss
import numba
import numpy as np

from .kcenter import kcenter_greedy

QUOTAS = ("uniform", "proportional", "capped")
WITHIN = ("random", "nearest")
INITS = ("random", "kcenter")

# FAISS trains on at most this many rows per centroid; farthest-point seeding uses the same sample.
POINTS_PER_CENTROID = 256


def kmeans_labels(
    matrix: np.ndarray, n_clusters: int, *, metric: str = "cosine", n_iter: int = 20, init: str = "random", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows with FAISS k-means and return each row's cluster and distance to its centroid.

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32 or float16
        Embeddings (finite; non-zero rows for ``"cosine"``).
    n_clusters : int
        Number of clusters, ``1 <= n_clusters <= n``.
    metric : {"cosine", "l2"}
        ``"cosine"`` runs spherical k-means on L2-normalised rows.
    n_iter : int
        k-means iterations.
    init : {"random", "kcenter"}
        FAISS's seeded random centroids, or farthest-point (k-center greedy) seeding on the
        training sample, which finds small clusters that random seeding tends to merge.
    seed : int
        Seed of the centroid initialisation; same seed and thread count, same clusters.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        Cluster of each row.
    distance : ndarray of float32, shape (n,)
        Squared L2 distance to the centroid (``"l2"``), or ``1 - cos`` to it (``"cosine"``).

    Complexity: O(n_iter * n * n_clusters * d) time (FAISS, multi-threaded), plus
    O(n_clusters^2 * 256 * d) for ``init="kcenter"``; a float32 copy of the matrix when it is
    float16 or when ``"cosine"`` normalises it.

    Example
    -------
    >>> x = np.concatenate([np.zeros((5, 2)), np.ones((5, 2)) * 9]).astype(np.float32)
    >>> labels, _ = kmeans_labels(x + 0.01 * np.arange(10)[:, None], 2, metric="l2")
    >>> len(set(labels[:5].tolist())), len(set(labels[5:].tolist()))
    (1, 1)
    """
    n, d = matrix.shape
    if not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be between 1 and {n} (the number of rows), got {n_clusters}")
    vectors = np.ascontiguousarray(matrix, dtype=np.float32)
    cosine = metric == "cosine"
    if cosine:
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    kmeans = faiss.Kmeans(d, n_clusters, niter=n_iter, seed=seed, spherical=cosine, verbose=False, max_points_per_centroid=POINTS_PER_CENTROID)
    if init == "kcenter":
        sample_size = min(n, POINTS_PER_CENTROID * n_clusters)
        sample = np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False)) if sample_size < n else np.arange(n)
        seeds, _ = kcenter_greedy(vectors[sample], n_clusters, metric=metric)
        kmeans.train(vectors, init_centroids=np.ascontiguousarray(vectors[sample[seeds]]))
    else:
        kmeans.train(vectors)
    if cosine:
        index = faiss.IndexFlatIP(d)
        index.add(kmeans.centroids)
        similarity, labels = index.search(vectors, 1)
        return labels[:, 0].astype(np.int64), (1.0 - similarity[:, 0]).astype(np.float32)
    distance, labels = kmeans.index.search(vectors, 1)
    return labels[:, 0].astype(np.int64), distance[:, 0].astype(np.float32)


def _largest_remainder(shares: np.ndarray, total: int, limits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    quotas = np.minimum(np.floor(shares).astype(np.int64), limits)
    missing = total - int(quotas.sum())
    remainder = np.where(quotas < limits, shares - np.floor(shares), -1.0)
    # Largest remainder first, then the larger cluster, then the lower cluster id.
    for cluster in np.lexsort((np.arange(shares.shape[0]), -sizes, -remainder))[:missing]:
        quotas[cluster] += 1
    return quotas


def cluster_quotas(sizes: np.ndarray, k: int, *, quota: str = "uniform", cap: int | None = None) -> np.ndarray:
    """Rows to take from each cluster so that the quotas sum to ``k`` (module docstring).

    Parameters
    ----------
    sizes : ndarray of int64, shape (c,)
        Rows per cluster.
    k : int
        Total rows, ``1 <= k <= sum(sizes)`` (``<= sum(min(sizes, cap))`` for ``"capped"``).
    quota : {"uniform", "proportional", "capped"}
        Quota rule.
    cap : int, optional
        Per-cluster maximum of ``"capped"``.

    Returns
    -------
    quotas : ndarray of int64, shape (c,)
        ``0 <= quotas[c] <= sizes[c]``, summing to ``k``.

    Complexity: O(c^2) worst case (one re-spread round per saturated cluster), c = clusters.

    Example
    -------
    >>> cluster_quotas(np.array([2, 50, 48]), 30).tolist()
    [2, 14, 14]
    >>> cluster_quotas(np.array([20, 50, 30]), 10, quota="proportional").tolist()
    [2, 5, 3]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if quota not in QUOTAS:
        raise ValueError(f"quota must be one of {QUOTAS}, got {quota!r}")
    limits = sizes.copy()
    if quota == "capped":
        if cap is None or cap < 1:
            raise ValueError(f"quota='capped' needs cap >= 1, got {cap}")
        limits = np.minimum(limits, cap)
    elif cap is not None:
        raise ValueError(f"cap is only used with quota='capped', got quota={quota!r}")
    if not 1 <= k <= int(limits.sum()):
        raise ValueError(f"k must be between 1 and {int(limits.sum())} (rows available under quota={quota!r}), got {k}")
    quotas = np.zeros(sizes.shape[0], dtype=np.int64)
    open_clusters = limits > 0
    remaining = k
    # Each round fills the clusters whose share exceeds what they can give, then re-spreads.
    while True:
        weights = np.where(open_clusters, 1.0 if quota == "uniform" else sizes.astype(np.float64), 0.0)
        shares = remaining * weights / weights.sum()
        saturated = open_clusters & (shares >= limits)
        if not saturated.any():
            quotas[open_clusters] = _largest_remainder(shares[open_clusters], remaining, limits[open_clusters], sizes[open_clusters])
            return quotas
        quotas[saturated] = limits[saturated]
        remaining -= int(limits[saturated].sum())
        open_clusters &= ~saturated
        if remaining == 0:
            return quotas


@numba.njit(cache=True, nogil=True)
def _interleave(labels, visit, quotas):
    """Round-robin over clusters of each cluster's first ``quota`` rows in ``visit`` order."""
    n = labels.shape[0]
    n_clusters = quotas.shape[0]
    counts = np.zeros(n_clusters, dtype=np.int64)
    for i in range(n):
        counts[labels[i]] += 1
    starts = np.zeros(n_clusters + 1, dtype=np.int64)
    for c in range(n_clusters):
        starts[c + 1] = starts[c] + counts[c]
    # Counting sort by cluster keeps the visit order inside each cluster: O(n), no comparison sort.
    members = np.empty(n, dtype=np.int64)
    fill = starts[:-1].copy()
    for position in range(n):
        row = visit[position]
        members[fill[labels[row]]] = row
        fill[labels[row]] += 1
    total = 0
    longest = 0
    for c in range(n_clusters):
        total += quotas[c]
        longest = max(longest, quotas[c])
    chosen = np.empty(total, dtype=np.int64)
    written = 0
    for rank in range(longest):
        for c in range(n_clusters):
            if rank < quotas[c]:
                chosen[written] = members[starts[c] + rank]
                written += 1
    return chosen


def cluster_sample(
    labels: np.ndarray,
    k: int,
    *,
    quota: str = "uniform",
    cap: int | None = None,
    within: str = "random",
    distance: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Pick ``k`` rows with per-cluster quotas from cluster labels.

    Parameters
    ----------
    labels : ndarray of int64, shape (n,)
        Cluster id of each row, in ``[0, c)``.
    k : int
        Rows to pick.
    quota : {"uniform", "proportional", "capped"}
        Quota rule (:func:`cluster_quotas`).
    cap : int, optional
        Per-cluster maximum for ``"capped"``.
    within : {"random", "nearest"}
        Seeded random rows, or rows nearest their centroid first (needs ``distance``).
    distance : ndarray, shape (n,), optional
        Distance of each row to its centroid.
    seed : int
        Seed of the random order; same inputs and seed, same result.

    Returns
    -------
    chosen : ndarray of int64, shape (k,)
        Rows, round-robin over clusters by within-cluster rank.

    Complexity: O(n) time for ``"random"`` (a permutation and a counting sort), O(n log n) for
    ``"nearest"``; O(n) memory.

    Example
    -------
    >>> cluster_sample(np.array([0, 0, 0, 0, 1, 1]), 4, within="nearest", distance=np.arange(6.0)).tolist()
    [0, 4, 1, 5]
    """
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if within not in WITHIN:
        raise ValueError(f"within must be one of {WITHIN}, got {within!r}")
    sizes = np.bincount(labels)
    quotas = cluster_quotas(sizes, k, quota=quota, cap=cap)
    if within == "nearest":
        if distance is None:
            raise ValueError("within='nearest' needs the distance of each row to its centroid")
        visit = np.argsort(distance, kind="stable")
    else:
        visit = np.random.default_rng(seed).permutation(labels.shape[0])
    return _interleave(labels, visit.astype(np.int64, copy=False), quotas)
