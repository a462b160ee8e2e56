"""The ``dedup`` front door: cluster the rows with one method, then keep one row per cluster.

``dedup(ds, method=...)`` returns the deduplicated ``Dataset`` (or, with ``return_clusters=True``,
every row plus an int64 ``cluster_id`` column: the smallest row index of the row's cluster, which
the publisher uses for group-aware splits). A zero-row dataset is returned unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Optional, Sequence

import datasets
import numpy as np
import pyarrow as pa

from ..schema import CLUSTER_COLUMN
from .exact import ExactParams, drop_repeated_media, exact_clusters
from .minhash import MinHashParams, minhash_clusters
from .report import DedupReport
from .stages import BATCH_SIZE, keep_mask, keep_max_scores

METHODS = ("exact", "minhash", "phash", "semantic", "video_phash", "audio_pcm")

# The function each engine computes MinHash clusters with. The Ray one is named "module:function"
# and imported on first use: single-machine code never imports the Ray layer (an import contract
# checks it), and `import hf_mmbuilder` must not pull in Ray.
ENGINES = {"local": minhash_clusters, "ray": "hf_mmbuilder.ray.duplicates:minhash_clusters"}


def engine_clusters(engine: str):
    """The MinHash cluster function of an engine of :data:`ENGINES`, imported on first use.

    Example:
        >>> engine_clusters("local") is minhash_clusters
        True
    """
    clusters = ENGINES[engine]
    if isinstance(clusters, str):
        module, _, function = clusters.partition(":")
        clusters = getattr(importlib.import_module(module), function)
    return clusters


def _check_labels(labels, n: int, method: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise RuntimeError(f"{method} clustering returned labels of shape {labels.shape} / {labels.dtype}, expected ({n},) int64")
    labels = labels.astype(np.int64, copy=False)
    if n and ((labels < 0).any() or (labels >= n).any() or (labels[labels] != labels).any()):
        raise RuntimeError(f"{method} clustering returned labels that do not name a member of their own cluster")
    return labels


def _smallest_member(labels: np.ndarray) -> np.ndarray:
    # Methods may label a cluster by the row they keep (SemDeDup: nearest to the centroid);
    # cluster_id is always the smallest row of the cluster.
    n = labels.shape[0]
    smallest = np.full(n, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    return smallest[labels]


_EXACT_KEYS = {field.name for field in dataclasses.fields(ExactParams)}
# Plus the deprecated spellings the parameter classes still accept (with a warning).
_EXACT_KEYS |= {"tokens"}
_MINHASH_KEYS = {field.name for field in dataclasses.fields(MinHashParams)} | {"mode"}


def dedup(
    ds: datasets.Dataset,
    method: str = "exact",
    *,
    column: Optional[str] = None,
    keep_max: Optional[str] = None,
    return_clusters: bool = False,
    return_report: bool = False,
    within_row_media: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
    engine: str = "local",
    **params,
):
    """Remove duplicate rows of a ``Dataset``.

    Parameters
    ----------
    ds : datasets.Dataset
    method : {"exact", "minhash", "phash", "semantic", "video_phash", "audio_pcm"}
        ``"exact"``: equal 128-bit digests of the normalised text and/or media bytes
        (:class:`ExactParams`: ``on``, ``strip``, ``lowercase``, ``ignore_non_character``,
        ``drop_special_tokens``; deprecated ``drop_non_alnum``). ``"minhash"``: MinHash-LSH near duplicates of ``column``
        (:class:`MinHashParams`, Data-Juicer's names and defaults; ``compat="data_juicer"`` for
        bit-for-bit parity). ``"phash"``: perceptual image hashes within a Hamming ``radius``
        (``hash_method``, ``radius``, ``compat``, ... of ``hf_mmbuilder.duplicates.image_hash_clusters``).
        ``"semantic"``: embedding clusters (``embeddings``, ``eps``, ... of
        ``hf_mmbuilder.duplicates.semantic_clusters``). ``"video_phash"``: videos whose frames
        sampled at fixed times mostly match within a Hamming radius (``num_frames``, ``radius``,
        ``min_matching``, ... of ``hf_mmbuilder.duplicates.recordings.video_hash_clusters``).
        ``"audio_pcm"``: audio files with equal decoded PCM (mono, resampled) in any container
        (``sample_rate``, ... of ``hf_mmbuilder.duplicates.recordings.audio_digest_clusters``).
    column : str, optional
        Text column for exact/minhash (default ``"text"``), image column for phash (default
        ``"images"``), ``"videos"`` / ``"audios"`` for video_phash / audio_pcm.
    keep_max : str, optional
        Keep the row with the largest value of this numeric column in each cluster (ties: first);
        default keeps the first occurrence (semantic: the method's own ``keep`` rule, SemDeDup's
        row nearest to the k-means centroid unless ``keep="first"``).
    return_clusters : bool
        Return every row plus an int64 ``cluster_id`` column (smallest row index of the cluster)
        instead of dropping duplicates.
    return_report : bool
        Also return a :class:`DedupReport`: ``(dataset, report)``.
    within_row_media : sequence of str
        Media columns (e.g. ``["images"]``) in which a file repeated inside one row (equal bytes) is
        dropped with its placeholder token before rows are compared (:func:`drop_repeated_media`).
        Off by default.
    batch_size : int
        Rows per Arrow batch.
    progress : bool
        Show tqdm progress bars.
    engine : {"local", "ray"}
        ``"ray"`` computes the minhash clusters on a Ray cluster (``hf_mmbuilder.ray``: the
        running Ray session, else ``RAY_ADDRESS``, else a local one), with the same result.

    Returns
    -------
    datasets.Dataset, or (datasets.Dataset, DedupReport) with ``return_report=True``.

    Complexity: exact O(bytes + n log n); minhash O(total_shingles * k + bands * n log n).

    Example:
        >>> import hf_mmbuilder, datasets
        >>> ds = datasets.Dataset.from_dict({"text": ["Hello world", "Hello world ", "Bye"]})
        >>> len(hf_mmbuilder.dedup(ds, "exact"))
        2
        >>> list(hf_mmbuilder.dedup(ds, "exact", return_clusters=True)["cluster_id"])
        [0, 0, 2]
    """
    if method not in METHODS:
        raise ValueError(f"unknown dedup method {method!r}; choose one of {', '.join(METHODS)}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray" and method != "minhash":
        raise ValueError(f"engine='ray' runs method='minhash'; method {method!r} runs on engine='local'")
    if not isinstance(ds, datasets.Dataset):
        raise ValueError(f"dedup needs a datasets.Dataset (a DatasetDict: dedup each split), got {type(ds).__name__}")
    if return_clusters and CLUSTER_COLUMN in ds.column_names:
        raise ValueError(f"dataset already has a {CLUSTER_COLUMN!r} column; remove it first")
    if within_row_media:
        ds = drop_repeated_media(ds, [within_row_media] if isinstance(within_row_media, str) else within_row_media)
    n = len(ds)
    report_params = dict(params)
    if method == "exact":
        _reject_unknown(params, _EXACT_KEYS, method)
        if column is not None:
            params = {**params, "on": (column,)}
        exact_params = ExactParams(**params)
        report_params = {name: getattr(exact_params, name) for name in ("on", "strip", "lowercase", "ignore_non_character", "drop_non_alnum", "drop_special_tokens")}
        labels = exact_clusters(ds, exact_params, batch_size=batch_size, progress=progress) if n else np.empty(0, np.int64)
        text_column = "text" if "text" in exact_params.on else None
    elif method == "minhash":
        _reject_unknown(params, _MINHASH_KEYS, method)
        text_column = column or "text"
        minhash_params = MinHashParams(**params)
        report_params = dataclasses.asdict(minhash_params)
        report_params["num_bands"], report_params["num_rows_per_band"] = minhash_params.bands_and_rows()
        # Progress bars are the local engine's; Ray reports its own.
        shown = {"progress": progress} if engine == "local" else {}
        labels = engine_clusters(engine)(ds, minhash_params, column=text_column, batch_size=batch_size, **shown)
    elif method == "phash":
        text_column = None
        from .images import image_hash_clusters

        labels = image_hash_clusters(ds, column=column or "images", progress=progress, **params) if n else np.empty(0, np.int64)
    elif method in ("video_phash", "audio_pcm"):
        text_column = None
        from .recordings import audio_digest_clusters, video_hash_clusters

        if method == "video_phash":
            labels = video_hash_clusters(ds, column=column or "videos", progress=progress, **params)
        else:
            labels = audio_digest_clusters(ds, column=column or "audios", progress=progress, **params)
    else:
        text_column = None
        from .semantic import semantic_clusters

        labels = semantic_clusters(ds, progress=progress, **params) if n else np.empty(0, np.int64)
    representatives = _check_labels(labels, n, method)
    labels = _smallest_member(representatives)
    kept = keep_mask(labels, keep_max_scores(ds, keep_max)) if keep_max else representatives == np.arange(n)
    if return_clusters:
        result = ds.add_column(CLUSTER_COLUMN, pa.array(labels, pa.int64()))
    else:
        result = ds.select(np.flatnonzero(kept)) if n else ds
    if not return_report:
        return result
    texts = _ExampleTexts(ds, text_column) if text_column in ds.column_names else None
    report = DedupReport.from_labels(method, _jsonable(report_params), labels, kept, texts)
    return result, report


class _ExampleTexts:
    """Row-indexed access to a text column that reads only the rows a report quotes."""

    def __init__(self, ds: datasets.Dataset, column: str):
        self.ds = ds
        self.column = column

    def __getitem__(self, row: int):
        return self.ds[row][self.column]


def _reject_unknown(params: dict, known: set, method: str) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) for method {method!r}: {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")


def _jsonable(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [v if isinstance(v, (str, int, float, bool)) else repr(v) for v in value]
        else:
            out[key] = repr(value)
    return out
