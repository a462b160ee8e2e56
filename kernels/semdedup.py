"""SemDeDup kernels: spherical FAISS k-means, then near-duplicate pairs inside each cluster.

Pairs are only looked for inside a k-means cluster (SemDeDup's approximation: the cost drops from
n^2 d to sum(c_i^2) d). Clusters are visited in assignment order; clusters smaller than
``small_cluster`` rows are packed side by side into blocks of up to ``block_rows`` rows and each
block costs one GEMM (cross-cluster entries are masked out), so thousands of tiny clusters do not
each pay a BLAS call. Larger clusters get their own GEMMs. Every block is computed in tiles of
rows against the later rows only (half of X X^T) and thresholded while the tile is in cache.
"""

from __future__ import annotations

import faiss
import numba
import numpy as np


def spherical_kmeans(
    x: np.ndarray, n_clusters: int, *, niter: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster unit vectors with FAISS spherical k-means and assign every row to its nearest centroid.

    Parameters
    ----------
    x : ndarray of float32, shape (n, d)
        L2-normalised rows.
    n_clusters : int
        ``1 <= n_clusters <= n``.
    niter, seed : int
        FAISS k-means iterations and seed (deterministic for a given seed and thread count).

    Returns
    -------
    centroids : ndarray of float32, shape (n_clusters, d)
        Unit-norm centroids.
    assignment : ndarray of int64, shape (n,)
    centroid_similarity : ndarray of float32, shape (n,)
        Cosine similarity of each row to its centroid.

    Complexity: O(niter * min(n, 256 k) * k * d) to train (FAISS subsamples 256 points per
    centroid) plus O(n k d) to assign.

    Example
    -------
    >>> x = np.eye(4, dtype=np.float32)[[0, 0, 1, 1]]
    >>> spherical_kmeans(x, 2)[1].tolist() in ([0, 0, 1, 1], [1, 1, 0, 0])
    True
    """
    n, d = x.shape
    kmeans = faiss.Kmeans(d, n_clusters, niter=niter, seed=seed, spherical=True, verbose=False)
    kmeans.train(x)
    _, nearest = kmeans.index.search(x, 1)
    assignment = nearest[:, 0].astype(np.int64)
    # Recomputed rather than read from the search distances, whose meaning depends on the index
    # type FAISS picks for spherical k-means.
    similarity = np.einsum("nd,nd->n", x, kmeans.centroids[assignment])
    return kmeans.centroids, assignment, similarity.astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _pairs_above(similarity, threshold, row_offset, col_offset, sorted_cluster, left, right, count):
    for a in range(similarity.shape[0]):
        # Only entries right of the diagonal: each pair once. Slicing from 0 lets the hit count
        # vectorise; duplicates are rare, so the collecting loop seldom runs.
        later = similarity[a, max(0, row_offset + a + 1 - col_offset) :]
        first = similarity.shape[1] - later.shape[0]
        hits = 0
        for k in range(later.shape[0]):
            hits += 1 if later[k] > threshold else 0
        if hits == 0:
            continue
        i = row_offset + a
        for k in range(later.shape[0]):
            j = col_offset + first + k
            if later[k] > threshold and sorted_cluster[i] == sorted_cluster[j]:
                if count == left.shape[0]:
                    bigger_left = np.empty(2 * count, dtype=np.int64)
                    bigger_right = np.empty(2 * count, dtype=np.int64)
                    bigger_left[:count] = left
                    bigger_right[:count] = right
                    left, right = bigger_left, bigger_right
                left[count] = i
                right[count] = j
                count += 1
    return left, right, count


def _blocks(cluster_sizes: np.ndarray, small_cluster: int, block_rows: int):
    # Yields (start, stop) ranges of the cluster-sorted rows: packed runs of small clusters, or one
    # large cluster.
    starts = np.concatenate([[0], np.cumsum(cluster_sizes)])
    run_start = 0
    for c, size in enumerate(cluster_sizes):
        stop = starts[c + 1]
        if size >= small_cluster:
            if starts[c] > run_start:
                yield run_start, starts[c]
            yield starts[c], stop
            run_start = stop
        elif stop - run_start >= block_rows:
            yield run_start, stop
            run_start = stop
    if starts[-1] > run_start:
        yield run_start, starts[-1]


def within_cluster_pairs(
    x: np.ndarray,
    assignment: np.ndarray,
    threshold: float,
    *,
    small_cluster: int = 128,
    block_rows: int = 512,
    tile_rows: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows in the same cluster whose cosine similarity exceeds ``threshold``.

    Parameters
    ----------
    x : ndarray of float32, shape (n, d)
        L2-normalised rows.
    assignment : ndarray of int64, shape (n,)
        Cluster id of each row.
    threshold : float
        Strict lower bound on the dot product (``1 - eps`` in SemDeDup).
    small_cluster, block_rows : int
        Clusters below ``small_cluster`` rows are packed into GEMM blocks of up to ``block_rows``
        rows (a block may exceed it by one cluster).
    tile_rows : int
        Rows per GEMM tile (each tile against the later rows of its block; sized to stay in L2).

    Returns
    -------
    left, right : ndarray of int64, shape (pairs,)
        Row indices with ``left < right``.

    Complexity: O(sum_c |c|^2 d / 2) flops for large clusters, at most ``block_rows * d`` per row
    for packed small clusters; O(n d) extra memory plus one ``tile_rows x |c|`` similarity tile.

    Example
    -------
    >>> x = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    >>> [a.tolist() for a in within_cluster_pairs(x, np.array([0, 0, 0]), 0.9)]
    [[0], [1]]
    """
    order = np.argsort(assignment, kind="stable")
    sorted_x = np.ascontiguousarray(x[order], dtype=np.float32)
    sorted_cluster = np.ascontiguousarray(assignment[order], dtype=np.int64)
    cluster_sizes = np.bincount(sorted_cluster)
    cluster_sizes = cluster_sizes[cluster_sizes > 0]
    threshold = np.float32(threshold)
    left = np.empty(1024, dtype=np.int64)
    right = np.empty(1024, dtype=np.int64)
    count = 0
    for start, stop in _blocks(cluster_sizes, small_cluster, block_rows):
        for tile_start in range(start, stop, tile_rows):
            # A tile of rows against itself and every later row of its block: half the products of
            # X X^T, and each similarity tile is thresholded while it is still in cache.
            tile = sorted_x[tile_start : min(tile_start + tile_rows, stop)]
            similarity = tile @ sorted_x[tile_start:stop].T
            left, right, count = _pairs_above(similarity, threshold, tile_start, tile_start, sorted_cluster, left, right, count)
    a, b = order[left[:count]], order[right[:count]]
    return np.minimum(a, b), np.maximum(a, b)
