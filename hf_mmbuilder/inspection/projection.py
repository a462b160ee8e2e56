"""The selection section: a 2-D PCA projection of the embeddings with the selected rows marked, and
the selection's share of each k-means cluster of the embeddings (its per-cluster quotas).
"""

from __future__ import annotations

import numpy as np

from ..kernels.cluster_sampling import kmeans_labels

PCA_ROWS = 50_000      # rows the principal axes are fitted on (all rows are projected)
POINTS = 4_000         # unselected points drawn (a seeded sample); selected ones up to this many too
MAX_CLUSTERS = 16      # k-means clusters of the quota table


def selected_mask(selection, n: int, column=None) -> np.ndarray:
    """The selection as a boolean mask over ``n`` rows: from row numbers (``select``'s order), a
    boolean sequence of length ``n``, or the values of a boolean column (``column``).

    Raises ``ValueError`` for a row number out of range.

    Example:
        >>> selected_mask([3, 0], 5).tolist()
        [True, False, False, True, False]
        >>> selected_mask([7], 5)
        Traceback (most recent call last):
            ...
        ValueError: selection: row 7 is out of range for 5 rows
    """
    values = np.asarray(column if column is not None else selection)
    if values.dtype == bool:
        if values.shape != (n,):
            raise ValueError(f"selection: a boolean mask needs {n} values, got {values.shape[0]}")
        return values
    rows = values.astype(np.int64).ravel()
    outside = rows[(rows < 0) | (rows >= n)]
    if outside.size:
        raise ValueError(f"selection: row {int(outside[0])} is out of range for {n} rows")
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return mask


def principal_axes(matrix: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, axes)``: the mean row and the two principal axes (2, d), fitted on at most
    :data:`PCA_ROWS` seeded rows. O(PCA_ROWS * d^2) at most."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(matrix), PCA_ROWS, replace=False)) if len(matrix) > PCA_ROWS else slice(None)
    fit = np.asarray(matrix[rows], dtype=np.float64)
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:2]
    if axes.shape[0] < 2:
        axes = np.vstack([axes, np.zeros((2 - axes.shape[0], fit.shape[1]))])
    return mean, axes


def projection(matrix: np.ndarray, mask: np.ndarray, seed: int = 0) -> dict:
    """Plot data and quota table of the selection section.

    Returns ``points`` (``[[x, y, row, selected, cluster], ...]``: up to :data:`POINTS` selected
    and :data:`POINTS` unselected rows, seeded), ``quotas`` (``[{"cluster", "rows", "selected"}]``
    per k-means cluster of the embeddings, ``min(16, sqrt(n))`` clusters, largest first) and the
    counts ``rows`` and ``selected``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> matrix = np.vstack([rng.normal(0, 1, (50, 8)), rng.normal(9, 1, (50, 8))]).astype(np.float32)
        >>> mask = np.zeros(100, dtype=bool); mask[[0, 1, 60]] = True
        >>> result = projection(matrix, mask)
        >>> len(result["points"]), result["selected"], len(result["quotas"]), sum(quota["selected"] for quota in result["quotas"])
        (100, 3, 10, 3)
    """
    n = len(matrix)
    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(mask)
    others = np.flatnonzero(~mask)
    shown = np.sort(np.concatenate([
        rng.choice(chosen, POINTS, replace=False) if chosen.size > POINTS else chosen,
        rng.choice(others, POINTS, replace=False) if others.size > POINTS else others,
    ]))
    mean, axes = principal_axes(matrix, seed)
    xy = (np.asarray(matrix[shown], dtype=np.float64) - mean) @ axes.T
    clusters = min(MAX_CLUSTERS, max(1, int(round(np.sqrt(n)))))
    labels, _ = kmeans_labels(np.ascontiguousarray(matrix, dtype=np.float32), clusters, metric="l2", seed=seed)
    rows_per = np.bincount(labels, minlength=clusters)
    selected_per = np.bincount(labels[chosen], minlength=clusters)
    quotas = sorted(({"cluster": c, "rows": int(rows_per[c]), "selected": int(selected_per[c])} for c in range(clusters) if rows_per[c]),
                    key=lambda quota: (-quota["rows"], quota["cluster"]))
    points = [[round(float(x), 4), round(float(y), 4), int(row), bool(mask[row]), int(labels[row])]
              for (x, y), row in zip(xy, shown)]
    return {"points": points, "quotas": quotas, "rows": n, "selected": int(chosen.size)}
