"""Semantic dedup (SemDeDup): rows whose embeddings are nearly parallel inside one k-means cluster.

:func:`semantic_clusters` returns cluster labels (int64, shape ``(len(ds),)``) built with the shared
:func:`hf_mmbuilder.kernels.unionfind.connected_components`, so ``labels == np.arange(len(ds))``
selects the rows to keep and equal labels group duplicates (used for leakage-free splits).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Optional, Union

import numpy as np
import pyarrow as pa

from ..embedding import model_embeddings
from ..kernels.semdedup import spherical_kmeans, within_cluster_pairs
from ..kernels.unionfind import connected_components
from ..models import is_model_spec

logger = logging.getLogger("hf_mmbuilder")


def _embedding_matrix(ds, embeddings, text_column: str, batch_size: int, progress: bool, model_options: dict) -> np.ndarray:
    n = len(ds)
    if is_model_spec(embeddings):
        modality = model_options.get("modality", "text")
        source = text_column if modality == "text" else model_options.get("source")
        if modality == "text" and text_column not in ds.column_names:
            raise ValueError(f"text column {text_column!r} not in dataset columns {ds.column_names}")
        options = {key: value for key, value in model_options.items() if key not in ("modality", "source")}
        return model_embeddings(ds, embeddings, modality=modality, source=source, batch_size=batch_size, progress=progress, **options)
    if isinstance(embeddings, str):
        if embeddings not in ds.column_names:
            raise ValueError(f"embedding column {embeddings!r} not in dataset columns {ds.column_names}")
        array = ds.with_format("arrow")[embeddings]
        if isinstance(array, pa.Table):
            array = array.column(0)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks() if array.num_chunks else pa.array([], type=array.type)
        if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)):
            raise ValueError(f"embedding column {embeddings!r} must hold float vectors, got {array.type}")
        if array.null_count:
            row = int(np.flatnonzero(np.asarray(array.is_null()))[0])
            raise ValueError(f"embedding column {embeddings!r}: row {row} is null")
        lengths = np.asarray(array.value_lengths(), dtype=np.int64) if n else np.zeros(0, np.int64)
        if n and (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValueError(
                f"embedding column {embeddings!r}: row {row} has {lengths[row]} values, row 0 has {lengths[0]}"
            )
        dim = int(lengths[0]) if n else 0
        values = np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        return values.reshape(n, dim)
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise ValueError(f"embeddings must have shape ({n}, d) for {n} rows, got {matrix.shape}")
    return matrix


def _keep_scores(ds, keep, centroid_similarity: np.ndarray) -> Optional[np.ndarray]:
    if isinstance(keep, str) and keep == "first":
        return None
    if isinstance(keep, str) and keep == "centroid":
        return centroid_similarity.astype(np.float64)
    if isinstance(keep, str):
        if keep not in ds.column_names:
            raise ValueError(f"keep must be 'centroid', 'first', a score column or an array; no column {keep!r}")
        scores = np.asarray(ds.with_format("numpy")[keep], dtype=np.float64)
    else:
        scores = np.asarray(keep, dtype=np.float64)
    if scores.shape != centroid_similarity.shape:
        raise ValueError(f"keep scores must have shape {centroid_similarity.shape}, got {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"keep scores: row {int(np.flatnonzero(np.isnan(scores))[0])} is NaN")
    return scores


def semantic_clusters(
    ds,
    embeddings: Union[str, np.ndarray] = "embedding",
    eps: float = 0.05,
    n_clusters: Optional[int] = None,
    keep: Union[str, np.ndarray] = "centroid",
    *,
    text_column: str = "text",
    niter: int = 20,
    seed: int = 0,
    on_error: str = "raise",
    batch_size: int = 64,
    progress: bool = True,
    modality: str = "text",
    device: str = "auto",
    source: Optional[str] = None,
    media_root: Optional[str] = None,
) -> np.ndarray:
    """SemDeDup: rows whose embeddings have cosine similarity above ``1 - eps`` in one k-means cluster.

    Embeddings are L2-normalised and clustered with FAISS spherical k-means; inside each cluster
    every pair above the threshold is linked (small clusters share GEMM blocks), and clusters of
    duplicates are the connected components of those links. Pairs split across k-means clusters
    are not compared (SemDeDup's approximation: more clusters are faster and miss more).

    Parameters
    ----------
    ds : datasets.Dataset
    embeddings : str or ndarray
        A column of float vectors (``List(Value("float32"))`` or fixed-size lists), an array of
        shape (len(ds), d), or ``"model:<folder or Hub id>"`` to embed the rows on the fly with
        :func:`hf_mmbuilder.embed` (any ``modality``; a sentence-transformers or CLIP-like model;
        no download; the ``vlm`` extra). The embeddings are cached like any ``.map``.
    eps : float
        Rows with cosine similarity ``> 1 - eps`` are duplicates; in (0, 2).
    n_clusters : int, optional
        k-means clusters; default ``round(sqrt(n))``, capped at n.
    keep : "centroid" | "first" | str | ndarray
        Which member of a duplicate cluster survives: nearest to its k-means centroid (SemDeDup),
        the first row, or the highest value of a score column / array of shape (n,) (ties: the
        earlier row).
    text_column : str
        Text encoded for ``"model:..."`` embeddings.
    niter, seed : int
        k-means iterations and seed.
    on_error : {"raise", "skip"}
        Rows whose embedding has NaN/inf values or is all zeros: ``"raise"`` names the first such
        row and the count; ``"skip"`` gives each its own cluster, logs each row and warns once.
    batch_size : int
        Encoding batch size for ``"model:..."``.
    progress : bool
        Progress bar while encoding.
    modality : {"text", "image", "video", "audio"}
        What ``"model:..."`` embeds: ``text_column``, or the row's media (DJ ``images`` /
        ``videos`` / ``audios``, several per row averaged, or ``source``).
    device, source, media_root : optional
        Passed to :func:`hf_mmbuilder.embed` for ``"model:..."``. With ``on_error="skip"`` a row
        whose media cannot be read is logged with its reason and kept as its own cluster.

    Returns
    -------
    labels : ndarray of int64, shape (len(ds),)
        For each row, the row kept for its cluster (the ``keep`` rule). With ``keep="first"`` this
        is the smallest row index of the cluster, as for the other dedup methods; in every case
        ``labels == np.arange(n)`` selects the kept rows and equal labels mean one cluster.

    Complexity: k-means O(niter * 256 k * k * d) plus O(n k d) assignment; pair search
    O(sum_c |c|^2 d) by BLAS.

    Example
    -------
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"embedding": [[1.0, 0.0], [0.999, 0.01], [0.0, 1.0]]})
    >>> semantic_clusters(ds, eps=0.01, n_clusters=1, keep="first").tolist()
    [0, 0, 2]
    """
    if not 0 < eps < 2:
        raise ValueError(f"eps must be in (0, 2), got {eps}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    n = len(ds)
    model_options = {"modality": modality, "device": device, "source": source, "media_root": media_root,
                     "on_error": "raise" if on_error == "raise" else "keep"}
    x = _embedding_matrix(ds, embeddings, text_column, batch_size, progress, model_options)
    if n and x.shape[1] == 0:
        raise ValueError("embeddings have zero length: nothing to compare")
    norms = np.linalg.norm(x, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        reason = lambda r: "NaN or inf values" if not np.isfinite(norms[r]) else "all zeros"  # noqa: E731
        if on_error == "raise":
            raise ValueError(f"embedding of row {rows[0]} has {reason(rows[0])} ({rows.size} bad row(s) in all)")
        for r in rows:
            logger.warning("semantic dedup: row %d has %s; kept as its own cluster", r, reason(r))
        warnings.warn(f"{rows.size} row(s) with NaN/inf/zero embeddings kept as their own clusters (first: row {rows[0]})", stacklevel=2)
    good = np.flatnonzero(~bad)
    labels = np.arange(n, dtype=np.int64)
    if good.size == 0:
        return labels
    unit = np.ascontiguousarray(x[good] / norms[good, None], dtype=np.float32)
    k = int(n_clusters) if n_clusters is not None else int(round(math.sqrt(good.size)))
    if k < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    k = min(k, good.size)
    _, assignment, similarity = spherical_kmeans(unit, k, niter=niter, seed=seed)
    left, right = within_cluster_pairs(unit, assignment, 1.0 - eps)
    components = connected_components(n, good[left], good[right])
    centroid_similarity = np.full(n, -np.inf)
    centroid_similarity[good] = similarity
    scores = _keep_scores(ds, keep, centroid_similarity)
    if scores is None:
        return components
    # Best score per component, ties to the earlier row: sort by (component, -score, row).
    order = np.lexsort((np.arange(n), -scores, components))
    first_of_component = np.ones(n, dtype=bool)
    first_of_component[1:] = components[order][1:] != components[order][:-1]
    representative = np.empty(n, dtype=np.int64)
    representative[components[order][first_of_component]] = order[first_of_component]
    return representative[components]
