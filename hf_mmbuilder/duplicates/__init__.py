"""Deduplication: exact digests, MinHash-LSH near duplicates, image hashes and semantic clusters.

``dedup(ds, method=...)`` (:mod:`.removal`) is the front door; every method yields cluster labels,
and one row per cluster is kept. The modules, one per concern:

- :mod:`.exact`: normalised-text and media-byte digests, and the ``.map`` functions built on them;
- :mod:`.minhash`: shingles, signatures, LSH band keys and one-process MinHash clusters;
- :mod:`.stages`: the stages after the signatures (candidate edges, components, filter), which a
  distributed runner can run over shards;
- :mod:`.report`: what a dedup removed;
- :mod:`.images`, :mod:`.semantic`: perceptual image hashes and SemDeDup;
- :mod:`.recordings`: video frame hashes and audio PCM digests.

Example:
    >>> import datasets
    >>> from hf_mmbuilder.duplicates import dedup
    >>> len(dedup(datasets.Dataset.from_dict({"text": ["a", "a", "b"]})))
    2
"""

from ..schema import CLUSTER_COLUMN
from .exact import (
    ExactParams,
    RepeatedMediaDropper,
    TextDigest,
    drop_repeated_media,
    exact_clusters,
    exact_row_digests,
    file_digest,
    media_digests,
    normalize_texts,
    text_digests,
)
from .minhash import MinHashParams, MinHashSignature, minhash_clusters, minhash_signatures, shingle_hashes, signature_stage
from .removal import ENGINES, METHODS, dedup, engine_clusters
from .report import DedupReport
from .stages import BATCH_SIZE, band_column, candidate_edge_stage, component_stage, filter_stage, keep_mask, keep_max_scores

# Image and semantic dedup bring Pillow, SciPy and FAISS code paths: their modules load on first use
# of one of their names, so that `import hf_mmbuilder` stays cheap.
_IMAGE_NAMES = ("DEFAULT_RADIUS_FRACTION", "HASH_KINDS", "HASH_MODES", "ImageHashError", "default_radius", "image_hash_clusters",
                "image_hashes", "open_image")
_SEMANTIC_NAMES = ("semantic_clusters",)


def __getattr__(name: str):
    if name in _IMAGE_NAMES:
        from . import images

        return getattr(images, name)
    if name in _SEMANTIC_NAMES:
        from . import semantic

        return getattr(semantic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BATCH_SIZE",
    "CLUSTER_COLUMN",
    "ENGINES",
    "METHODS",
    "DedupReport",
    "ExactParams",
    "MinHashParams",
    "MinHashSignature",
    "RepeatedMediaDropper",
    "TextDigest",
    "band_column",
    "candidate_edge_stage",
    "component_stage",
    "dedup",
    "drop_repeated_media",
    "engine_clusters",
    "exact_clusters",
    "exact_row_digests",
    "file_digest",
    "filter_stage",
    "keep_mask",
    "keep_max_scores",
    "media_digests",
    "minhash_clusters",
    "minhash_signatures",
    "normalize_texts",
    "shingle_hashes",
    "signature_stage",
    "text_digests",
    *_IMAGE_NAMES,
    *_SEMANTIC_NAMES,
]
