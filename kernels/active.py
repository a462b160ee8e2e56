"""Active-learning selection: uncertainty + diversity + representativeness, picked greedily.

For rows ``i`` with embedding ``x_i``, uncertainty ``u_i`` (a model's entropy, a quality score,
...) and the selected set ``S_t`` after ``t`` picks, step ``t`` selects the unselected row with the
highest

    score_t(i) = alpha * U_i + beta * D_t(i) + gamma * R_i

- ``U_i = (u_i - min u) / (max u - min u)``: uncertainty rescaled to [0, 1] (0 when u is constant);
- ``D_t(i) = d_t(i) / max_{j not in S_t} d_t(j)`` with ``d_t(i) = min_{s in S_t} dist(x_i, x_s)``:
  distance to the selected set, relative to the farthest unselected row, so in [0, 1] (1 for
  every row while ``S_t`` is empty). It is updated after every pick, exactly as in weighted
  k-center (:mod:`hf_mmbuilder.kernels.kcenter`);
- ``R_i``: local density, the mean similarity of ``x_i`` to its ``knn`` nearest neighbours
  (cosine similarity for ``"cosine"``; minus the mean Euclidean distance for ``"l2"``), rescaled
  to [0, 1] like ``U``.

Special cases: ``beta = gamma = 0`` is top-k by uncertainty; ``alpha = gamma = 0`` is k-center
greedy; ``alpha = beta = 0`` is top-k by density. Ties go to the lowest row id.
"""

from __future__ import annotations

import faiss
import numpy as np

from .kcenter import greedy_select, row_norms

# Above this many rows, neighbours come from an IVF index (approximate) instead of an exact scan,
# which would cost n^2 * d.
EXACT_KNN_LIMIT = 50_000


def _rescale(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros(values.shape[0], dtype=np.float64)
    return (values.astype(np.float64) - low) / (high - low)


def representativeness(matrix: np.ndarray, *, metric: str = "cosine", knn: int = 10, seed: int = 0) -> np.ndarray:
    """Local density of each row: mean similarity to its ``knn`` nearest other rows (FAISS).

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32 or float16
        Embeddings (finite; non-zero rows for ``"cosine"``).
    metric : {"cosine", "l2"}
        Cosine similarity, or minus the Euclidean distance.
    knn : int
        Neighbours per row (capped at ``n - 1``).
    seed : int
        Seed of the IVF training when ``n > EXACT_KNN_LIMIT``.

    Returns
    -------
    density : ndarray of float64, shape (n,)
        Mean neighbour similarity (higher = denser region).

    Complexity: exact search O(n^2 * d) up to ``EXACT_KNN_LIMIT`` rows; above, an IVF index with
    ``4 * sqrt(n)`` lists and 16 probes, about O(n^1.5 * d). Memory: a float32 copy of the matrix.

    Example
    -------
    >>> x = np.array([[1, 0], [0.99, 0.1], [0.98, 0.2], [0, 1]], dtype=np.float32)
    >>> int(np.argmin(representativeness(x, knn=2)))
    3
    """
    n, d = matrix.shape
    knn = min(knn, n - 1)
    if knn < 1:
        return np.zeros(n, dtype=np.float64)
    vectors = np.ascontiguousarray(matrix, dtype=np.float32)
    cosine = metric == "cosine"
    if cosine:
        vectors = vectors / row_norms(vectors)[0][:, None]
    flat = faiss.IndexFlatIP(d) if cosine else faiss.IndexFlatL2(d)
    if n > EXACT_KNN_LIMIT:
        n_lists = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(flat, d, n_lists, faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2)
        index.cp.seed = seed
        index.train(vectors)
        index.nprobe = 16
    else:
        index = flat
    index.add(vectors)
    # The nearest hit of a row is the row itself; ask for one more and drop it.
    values, labels = index.search(vectors, knn + 1)
    own = labels == np.arange(n)[:, None]
    keep = ~own
    # When duplicates push the row itself out of the first hit, drop the last column instead.
    keep[own.sum(axis=1) == 0, -1] = False
    found = labels >= 0
    values = np.where(keep & found, values, 0.0)
    counts = np.maximum((keep & found).sum(axis=1), 1)
    if cosine:
        return values.sum(axis=1) / counts
    return -np.sqrt(np.maximum(values, 0.0)).sum(axis=1) / counts


def active_select(
    matrix: np.ndarray,
    k: int,
    *,
    uncertainty: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    metric: str = "cosine",
    knn: int = 10,
    start: np.ndarray | None = None,
    seed: int = 0,
    on_step=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy active-learning selection by ``alpha * U + beta * D + gamma * R`` (module docstring).

    Parameters
    ----------
    matrix : ndarray, shape (n, d), float32 or float16
        Embeddings (finite; non-zero rows for ``"cosine"``).
    k : int
        Rows to select.
    uncertainty : ndarray, shape (n,), optional
        Higher = more worth labelling; required when ``alpha != 0``; finite.
    alpha, beta, gamma : float
        Non-negative weights of uncertainty, diversity and representativeness.
    metric : {"cosine", "l2"}
        Distance of the diversity term and similarity of the density term.
    knn : int
        Neighbours of the density term.
    start : ndarray of int64, optional
        Rows already labelled: they count in ``S`` and are never returned.
    seed : int
        Seed of the approximate neighbour index (large inputs only).
    on_step : callable, optional
        Called after each greedy step (progress reporting).

    Returns
    -------
    order : ndarray of int64, shape (k,)
        Selected rows in selection order.
    score : ndarray of float64, shape (k,)
        ``score_t`` of each row when it was selected.

    Complexity: O((s + k) * n * d) for the diversity passes (none when ``beta == 0``) plus the
    neighbour search when ``gamma != 0``; O(n) extra memory besides the search.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> u = np.arange(200, dtype=np.float64)
    >>> active_select(x, 3, uncertainty=u, beta=0.0, gamma=0.0)[0].tolist()
    [199, 198, 197]
    """
    n = matrix.shape[0]
    for name, weight in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{name} must be a finite non-negative weight, got {weight}")
    base = np.zeros(n, dtype=np.float64)
    if alpha:
        if uncertainty is None:
            raise ValueError("alpha > 0 needs an uncertainty column (or set alpha=0)")
        uncertainty = np.asarray(uncertainty, dtype=np.float64)
        if uncertainty.shape != (n,):
            raise ValueError(f"uncertainty has shape {uncertainty.shape}, expected ({n},)")
        bad = np.flatnonzero(~np.isfinite(uncertainty))
        if bad.size:
            raise ValueError(f"uncertainty of row {bad[0]} is {uncertainty[bad[0]]} (must be finite)")
        base += alpha * _rescale(uncertainty)
    if gamma:
        base += gamma * _rescale(representativeness(matrix, metric=metric, knn=knn, seed=seed))
    if beta == 0:
        chosen = np.zeros(n, dtype=np.bool_)
        if start is not None:
            chosen[np.asarray(start, dtype=np.int64)] = True
        if not 1 <= k <= n - int(chosen.sum()):
            raise ValueError(f"k must be between 1 and {n - int(chosen.sum())} (rows not already selected), got {k}")
        candidates = np.flatnonzero(~chosen)
        # A stable sort on the negated score keeps the lowest row id first among ties.
        order = candidates[np.argsort(-base[candidates], kind="stable")[:k]]
        return order.astype(np.int64), base[order]
    return greedy_select(matrix, k, metric=metric, start=start, base=base, beta=beta, on_step=on_step)
