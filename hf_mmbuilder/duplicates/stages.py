"""The four stages of near-duplicate dedup, with Arrow tables between them.

Each stage is callable on its own, so a distributed runner (e.g. Ray Data) can run them over shards:

1. :func:`hf_mmbuilder.duplicates.minhash.signature_stage` (any shard of rows): ``row_id`` + one
   ``uint64`` column per LSH band;
2. :func:`candidate_edge_stage` (per band, over every row of that band): ``left``/``right`` edges;
3. :func:`component_stage` (all edges): ``row_id`` + ``cluster_id`` via union-find;
4. :func:`filter_stage`: keep one row per cluster (:func:`keep_mask`).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrow import check_column
from ..kernels import lsh
from ..kernels.unionfind import connected_components
from ..schema import CLUSTER_COLUMN

# Rows per Arrow batch read from a Dataset.
BATCH_SIZE = 65_536


def band_column(band: int) -> str:
    return f"band_{band:03d}"


def candidate_edge_stage(band_table: pa.Table, bands: Optional[Iterable[int]] = None) -> pa.Table:
    """Stage 2, per band: edges between rows whose band keys are equal.

    ``band_table`` holds the stage-1 rows of every shard (``pa.concat_tables``); each band is
    independent, so bands can be split across workers (``bands`` selects them).

    Returns
    -------
    pyarrow.Table
        ``left``, ``right`` (int64 row ids): each row linked to the first row of its group.

    Complexity: O(m log m) per band (one ``np.sort``).

    Example:
        >>> band_table = pa.table({"row_id": [0, 1, 2], "band_000": pa.array([7, 9, 7], pa.uint64())})
        >>> candidate_edge_stage(band_table).to_pydict()
        {'left': [0], 'right': [2]}
    """
    band_names = [name for name in band_table.column_names if name.startswith("band_")]
    selected = band_names if bands is None else [band_column(band) for band in bands]
    row_ids = band_table.column("row_id").to_numpy()
    lefts, rights = [], []
    for name in selected:
        left, right = lsh.band_edges(band_table.column(name).to_numpy(), row_ids)
        lefts.append(left)
        rights.append(right)
    left = np.concatenate(lefts) if lefts else np.empty(0, dtype=np.int64)
    right = np.concatenate(rights) if rights else np.empty(0, dtype=np.int64)
    return pa.table({"left": left, "right": right})


def component_stage(num_rows: int, edge_tables: pa.Table | Sequence[pa.Table]) -> pa.Table:
    """Stage 3: clusters as connected components of all candidate edges.

    Returns
    -------
    pyarrow.Table
        ``row_id`` and ``cluster_id`` (int64, the smallest row id of the row's cluster).

    Complexity: O(num_rows + edges * alpha(num_rows)).

    Example:
        >>> edges = pa.table({"left": [0], "right": [2]})
        >>> component_stage(3, edges).column("cluster_id").to_pylist()
        [0, 1, 0]
    """
    tables = [edge_tables] if isinstance(edge_tables, pa.Table) else list(edge_tables)
    edges = pa.concat_tables(tables) if tables else pa.table({"left": pa.array([], pa.int64()), "right": pa.array([], pa.int64())})
    labels = connected_components(num_rows, edges.column("left").to_numpy(), edges.column("right").to_numpy())
    return pa.table({"row_id": np.arange(num_rows, dtype=np.int64), CLUSTER_COLUMN: labels})


def keep_mask(labels: np.ndarray, scores: Optional[np.ndarray] = None) -> np.ndarray:
    """Which rows survive: the first row of each cluster, or the one with the highest score.

    Parameters
    ----------
    labels : ndarray of int64, shape (n,)
        Cluster labels (smallest row id of the cluster).
    scores : ndarray of numbers, shape (n,), optional
        Keep the row maximising the score per cluster; ties keep the earliest row. NaN raises.

    Returns
    -------
    ndarray of bool, shape (n,)

    Complexity: O(n) (first occurrence) or O(n log n) (scores).

    Example:
        >>> keep_mask(np.array([0, 0, 2]), np.array([1.0, 5.0, 0.0])).tolist()
        [False, True, True]
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    if scores is None:
        return labels == np.arange(n)
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError(f"row {int(np.flatnonzero(np.isnan(scores))[0])}: keep_max score is null or NaN")
    order = np.lexsort((np.arange(n), -scores, labels))
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    mask = np.zeros(n, dtype=bool)
    mask[order[first]] = True
    return mask


def filter_stage(ds: datasets.Dataset, clusters: pa.Table | np.ndarray, *, keep_max: Optional[str] = None) -> datasets.Dataset:
    """Stage 4: keep one row per cluster (see :func:`keep_mask`).

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a", "a", "b"]})
        >>> len(filter_stage(ds, np.array([0, 0, 2])))
        2
    """
    labels = clusters.column(CLUSTER_COLUMN).to_numpy() if isinstance(clusters, pa.Table) else np.asarray(clusters)
    return ds.select(np.flatnonzero(keep_mask(labels, keep_max_scores(ds, keep_max))))


def keep_max_scores(ds: datasets.Dataset, keep_max: Optional[str]) -> Optional[np.ndarray]:
    """The ``keep_max`` column as float64 scores for :func:`keep_mask` (``None`` when not given).

    A null value or a non-numeric column raises ``ValueError`` naming the row or the column.

    Example:
        >>> keep_max_scores(datasets.Dataset.from_dict({"q": [1, 3]}), "q").tolist()
        [1.0, 3.0]
    """
    if keep_max is None:
        return None
    check_column(ds, keep_max)
    column = ds.with_format("arrow")[keep_max]
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        raise ValueError(f"row {first}: keep_max column {keep_max!r} is null")
    try:
        return column.to_numpy().astype(np.float64)
    except (TypeError, ValueError, pa.ArrowInvalid) as error:
        raise ValueError(f"keep_max column {keep_max!r} must be numeric, not {column.type}") from error
