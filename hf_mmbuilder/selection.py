"""Pick the most diverse / most useful ``k`` rows of a dataset by their embeddings.

Methods (kernels in :mod:`hf_mmbuilder.kernels`):

- ``"kcenter"``: k-center greedy (Sener & Savarese 2018): each row is the farthest from those
  picked before it (optionally weighted by a column, optionally starting from already chosen rows);
- ``"cluster"``: FAISS k-means, then per-cluster quotas (``"uniform"``, ``"proportional"`` or
  ``"capped"``), seeded;
- ``"active"``: greedy ``alpha * uncertainty + beta * diversity + gamma * representativeness``
  (:mod:`hf_mmbuilder.kernels.active` documents the terms).
"""

from __future__ import annotations


import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from .embedding import model_embeddings
from .kernels.active import active_select
from .kernels.cluster_sampling import cluster_sample, kmeans_labels
from .kernels.kcenter import METRICS, kcenter_greedy, row_norms
from .models import is_model_spec

METHODS = ("kcenter", "cluster", "active")
DTYPES = ("float32", "float16")


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def embedding_matrix(ds, embeddings, *, dtype: str | None = None) -> np.ndarray:
    """The (n, d) embedding matrix of ``ds``: from a list / fixed-size-list column, or checked array.

    Parameters
    ----------
    ds : datasets.Dataset
        The dataset (its indices mapping, if any, is respected).
    embeddings : str or array_like, shape (n, d)
        A column of float lists (all of one length), or the matrix itself.
    dtype : {"float32", "float16"}, optional
        Storage of the result; default keeps float16 and stores everything else as float32.

    Returns
    -------
    ndarray, shape (n, d), float32 or float16, C-contiguous
        Zero-copy from the Arrow buffer when the column already has the target type.

    Raises
    ------
    ValueError
        Missing column (listing the columns), a null or ragged row (naming it), a non-list type.

    Complexity: O(n * d) at most (one conversion), O(n) to validate lengths.

    Example
    -------
    >>> from datasets import Dataset
    >>> embedding_matrix(Dataset.from_dict({"e": [[1.0, 2.0], [3.0, 4.0]]}), "e").shape
    (2, 2)
    """
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    n = len(ds)
    if isinstance(embeddings, str):
        if embeddings not in ds.column_names:
            raise ValueError(f"embedding column {embeddings!r} not in the dataset (columns: {ds.column_names})")
        column = ds.with_format("arrow")[embeddings]
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
            raise ValueError(f"embedding column {embeddings!r} must hold lists of floats, got {kind}")
        if column.null_count:
            raise ValueError(f"embedding column {embeddings!r} is missing (null) in row {_first_row(column.is_null().to_numpy(zero_copy_only=False))}")
        if pa.types.is_fixed_size_list(kind):
            width = kind.list_size
            flat = column.flatten()
        else:
            lengths = np.diff(column.offsets.to_numpy())
            width = int(lengths[0]) if n else 0
            if np.any(lengths != width):
                row = _first_row(lengths != width)
                raise ValueError(f"embedding column {embeddings!r} is ragged: row {row} has {lengths[row]} values, row 0 has {width}")
            flat = column.flatten()
        if flat.null_count:
            position = _first_row(flat.is_null().to_numpy(zero_copy_only=False))
            raise ValueError(f"embedding column {embeddings!r} has a null value in row {position // max(width, 1)}")
        if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
            raise ValueError(f"embedding column {embeddings!r} must hold numbers, got {flat.type}")
        matrix = flat.to_numpy(zero_copy_only=False).reshape(n, width)
    else:
        matrix = np.asarray(embeddings)
        if matrix.ndim != 2 or matrix.shape[0] != n:
            raise ValueError(f"embeddings array must have shape ({n}, d) for a dataset of {n} rows, got {matrix.shape}")
        if not np.issubdtype(matrix.dtype, np.number):
            raise ValueError(f"embeddings array must be numeric, got {matrix.dtype}")
    target = dtype or ("float16" if matrix.dtype == np.float16 else "float32")
    # Values beyond the target's range become inf here; the row check reports them by row.
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(matrix, dtype=target)


def _check_rows(matrix: np.ndarray, metric: str, source) -> None:
    stored = matrix.view(np.uint16) if matrix.dtype == np.float16 else matrix
    norms, first_bad, first_zero = row_norms(stored)
    name = f"embedding column {source!r}" if isinstance(source, str) else "embeddings"
    if first_bad >= 0:
        raise ValueError(f"{name}: row {first_bad} has a NaN or infinite value (or overflows {matrix.dtype})")
    if metric == "cosine" and first_zero >= 0:
        raise ValueError(f"{name}: row {first_zero} is a zero vector, which has no cosine distance; drop it or use metric='l2'")


def _per_row(ds, values, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if isinstance(values, str):
        if values not in ds.column_names:
            raise ValueError(f"{name} column {values!r} not in the dataset (columns: {ds.column_names})")
        column = ds.with_format("arrow")[values]
        if column.null_count:
            mask = column.is_null()
            mask = mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
            raise ValueError(f"{name} column {values!r} is missing (null) in row {_first_row(mask.to_numpy(zero_copy_only=False))}")
        values = column.to_numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(ds),):
        raise ValueError(f"{name} must have one value per row ({len(ds)}), got shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name} of row {_first_row(bad)} is {values[_first_row(bad)]} (must be finite)")
    return values


def _start_rows(ds, start) -> np.ndarray | None:
    if start is None:
        return None
    if isinstance(start, str):
        if start not in ds.column_names:
            raise ValueError(f"start column {start!r} not in the dataset (columns: {ds.column_names})")
        return np.flatnonzero(np.asarray(ds.with_format("arrow")[start].to_numpy(), dtype=bool))
    rows = np.asarray(start, dtype=np.int64)
    if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= len(ds))):
        raise ValueError(f"start must list row ids in [0, {len(ds)})")
    return rows


def select(
    ds,
    k: int,
    method: str = "kcenter",
    *,
    embeddings="embedding",
    metric: str = "cosine",
    dtype: str | None = None,
    start=None,
    weights=None,
    uncertainty=None,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 1.0,
    knn: int = 10,
    n_clusters: int | None = None,
    kmeans_init: str = "random",
    quota: str = "uniform",
    cap: int | None = None,
    within: str = "random",
    seed: int = 0,
    order_column: str | None = None,
    score_column: str | None = None,
    progress: bool = False,
    modality: str = "text",
    device: str = "auto",
    batch_size: int | None = None,
    media_root: str | None = None,
):
    """Return the ``k`` rows of ``ds`` chosen by ``method``, in selection order.

    Parameters
    ----------
    ds : datasets.Dataset
        Rows to choose from.
    k : int
        Rows to return, ``1 <= k <= len(ds)`` (minus ``start`` rows).
    method : {"kcenter", "cluster", "active"}
        k-center greedy, cluster-balanced sampling, or active-learning score (module docstring).
    embeddings : str or array_like, shape (n, d)
        Column of float lists (or fixed-size lists), the matrix, or ``"model:<folder or Hub id>"``
        to embed the rows' ``modality`` on the fly with :func:`hf_mmbuilder.embed` (cached like
        any ``.map``; a row that cannot be embedded raises, naming the file and the row).
    metric : {"cosine", "l2"}
        ``1 - cos`` or Euclidean distance (cosine rejects zero vectors).
    dtype : {"float32", "float16"}, optional
        Storage of the matrix; float16 halves the memory read per k-center step.
    start : str or sequence of int, optional
        Rows already selected (ids, or a boolean column): centres that are never returned
        (``"kcenter"``, ``"active"``).
    weights : str or array_like, optional
        Per-row weights of weighted k-center (``"kcenter"``): picks ``argmax w * distance``.
    uncertainty : str or array_like, optional
        Per-row uncertainty of ``"active"`` (e.g. model entropy, or a quality score).
    alpha, beta, gamma : float
        ``"active"`` weights of uncertainty, diversity and representativeness.
    knn : int
        Neighbours of the representativeness term.
    n_clusters : int, optional
        ``"cluster"``: k-means clusters (default ``min(k, round(sqrt(n)))``).
    kmeans_init : {"random", "kcenter"}
        ``"cluster"``: FAISS's random seeding, or farthest-point seeding, which keeps small
        clusters apart instead of merging them (costs about ``n_clusters`` passes over a sample).
    quota : {"uniform", "proportional", "capped"}
        ``"cluster"``: per-cluster quota rule; ``cap`` bounds each cluster with ``"capped"``.
    cap : int, optional
        Per-cluster maximum of ``quota="capped"``.
    within : {"random", "nearest"}
        ``"cluster"``: seeded random rows, or rows nearest their centroid first.
    seed : int
        Seed of k-means and of the random order; same seed, same result.
    order_column, score_column : str, optional
        Add the selection rank (0-based) and the score at selection (k-center: distance to the
        rows before, ``inf`` for the first; active: the combined score; cluster: distance to the
        centroid) as columns under these names.
    progress : bool
        Show a tqdm bar over the greedy steps (and the embedding map's bar).
    modality, device, batch_size, media_root : optional
        :func:`hf_mmbuilder.embed`'s, for ``embeddings="model:..."``: ``"text"`` (default),
        ``"image"``, ``"video"`` or ``"audio"``.

    Returns
    -------
    datasets.Dataset
        ``ds.select(order)``: the chosen rows in selection order (cluster: round-robin over
        clusters), with the optional columns.

    Raises
    ------
    ValueError
        Bad ``k`` (0, negative, larger than the rows available), a missing, null or ragged
        embedding column, NaN/inf values, zero vectors with cosine, bad weights/uncertainty; each
        message names the column and row.

    Complexity: kcenter/active O((s + k) * n * d) worst case in one streaming pass per step
    (memory-bound; far less on clustered data), cluster O(n_iter * n * n_clusters * d) in FAISS.

    Example
    -------
    >>> import numpy as np
    >>> from datasets import Dataset
    >>> ds = Dataset.from_dict({"embedding": np.random.default_rng(0).normal(size=(100, 8)).tolist()})
    >>> len(select(ds, 10, "kcenter", order_column="rank"))
    10
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= len(ds):
        raise ValueError(f"k must be between 1 and {len(ds)} (the number of rows), got {k}")
    unused = {
        "weights": weights is not None and method != "kcenter",
        "uncertainty": uncertainty is not None and method != "active",
        "start": start is not None and method == "cluster",
        "n_clusters": n_clusters is not None and method != "cluster",
        "cap": cap is not None and method != "cluster",
        "kmeans_init": kmeans_init != "random" and method != "cluster",
    }
    if any(unused.values()):
        raise ValueError(f"method={method!r} does not use {[name for name, flag in unused.items() if flag]}")
    if is_model_spec(embeddings):
        vectors = model_embeddings(ds, embeddings, modality=modality, device=device, batch_size=batch_size, media_root=media_root, progress=progress)
        matrix = embedding_matrix(ds, vectors, dtype=dtype)
        _check_rows(matrix, metric, None)
    else:
        matrix = embedding_matrix(ds, embeddings, dtype=dtype)
        _check_rows(matrix, metric, embeddings)

    bar = tqdm(total=k, desc=f"select ({method})", disable=not progress)
    with bar:
        if method == "kcenter":
            weight_values = _per_row(ds, weights, "weights")
            if weight_values is not None and (weight_values < 0).any():
                raise ValueError(f"weights of row {_first_row(weight_values < 0)} is negative")
            order, score = kcenter_greedy(matrix, k, metric=metric, start=_start_rows(ds, start), weights=weight_values, on_step=bar.update)
        elif method == "active":
            order, score = active_select(
                matrix, k, uncertainty=_per_row(ds, uncertainty, "uncertainty"), alpha=alpha, beta=beta, gamma=gamma,
                metric=metric, knn=knn, start=_start_rows(ds, start), seed=seed, on_step=bar.update,
            )
        else:
            clusters = n_clusters if n_clusters is not None else min(k, max(1, int(round(np.sqrt(len(ds))))))
            labels, distance = kmeans_labels(matrix, clusters, metric=metric, init=kmeans_init, seed=seed)
            order = cluster_sample(labels, k, quota=quota, cap=cap, within=within, distance=distance, seed=seed)
            score = distance[order].astype(np.float64)
        bar.update(k - bar.n)
    chosen = ds.select(order)
    if order_column is not None:
        chosen = chosen.add_column(order_column, np.arange(k, dtype=np.int64))
    if score_column is not None:
        chosen = chosen.add_column(score_column, np.asarray(score, dtype=np.float64))
    return chosen
