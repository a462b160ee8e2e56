"""Deduplication front door: exact digests, MinHash-LSH near duplicates, image and semantic dedup.

``dedup(ds, method=...)`` returns the deduplicated ``Dataset`` (or, with ``return_clusters=True``,
every row plus an int64 ``cluster_id`` column: the smallest row index of the row's cluster, which
the publisher uses for group-aware splits).

Near-duplicate text dedup runs as four stages with Arrow tables between them, each callable on its
own, so a distributed runner (e.g. Ray Data) can run them over shards:

1. :func:`signature_stage` (any shard of rows): ``row_id`` + one ``uint64`` column per LSH band;
2. :func:`candidate_edge_stage` (per band, over every row of that band): ``left``/``right`` edges;
3. :func:`component_stage` (all edges): ``row_id`` + ``cluster_id`` via union-find;
4. :func:`filter_stage`: keep one row per cluster.

MinHash has two hash modes. ``mode="fast"`` (default) hashes shingles in Numba over the Arrow
UTF-8 buffers and applies 32-bit affine permutations; every shingle counts and a text with fewer
words than ``window_size`` is one shingle. ``mode="data_juicer"`` reproduces Data-Juicer's
``document_minhash_deduplicator`` bit for bit (sha1 token hashes in Python, its permutation
arithmetic and its shingle range, which drops the last shingle and gives every text of at most
``window_size`` words the same empty signature, so such texts all land in one cluster).

Bad input: a null text raises ``ValueError`` naming the row (nothing is dropped silently); an empty
or all-space text has no shingles, so all such texts form one cluster; a zero-row dataset is
returned unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import struct
from collections import Counter
from typing import Iterable, Optional, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from tqdm.auto import tqdm

from .arrow import batch_column, check_column, iter_tables, string_array, string_buffers
from .kernels import exact_hash, lsh, minhash
from .kernels.unionfind import connected_components
from .media import resolve_media_path
from .schema import DEFAULT_TOKENS, MEDIA_COLUMNS, SpecialTokens

METHODS = ("exact", "minhash", "phash", "semantic")
CLUSTER_COLUMN = "cluster_id"
_BATCH_SIZE = 65_536
_SIGNATURE_CHUNK = 2048


# ---------------------------------------------------------------------------------------------
# Parameters


@dataclasses.dataclass(frozen=True)
class ExactParams:
    """What makes two rows exact duplicates.

    ``on`` lists the parts of the row key: ``"text"`` (its normalised digest) and/or media columns
    (``"images"``, ``"audios"``, ``"videos"``: the ordered digests of the files' bytes, read from
    the row's ``media_root`` column when present). Text normalisation, in this order: drop DJ
    special tokens, lowercase, drop every character that is not a Unicode letter or digit, strip
    surrounding whitespace.

    Example:
        >>> ExactParams(lowercase=True).on
        ('text',)
    """

    on: tuple[str, ...] = ("text",)
    strip: bool = True
    lowercase: bool = False
    drop_non_alnum: bool = False
    drop_special_tokens: bool = False
    tokens: SpecialTokens = DEFAULT_TOKENS

    def __post_init__(self):
        on = (self.on,) if isinstance(self.on, str) else tuple(self.on)
        object.__setattr__(self, "on", on)
        unknown = [part for part in on if part != "text" and part not in MEDIA_COLUMNS]
        if unknown or not on:
            raise ValueError(f"exact dedup keys on 'text' and/or {', '.join(MEDIA_COLUMNS)}; got {list(on)}")


@dataclasses.dataclass(frozen=True)
class MinHashParams:
    """MinHash-LSH parameters; names and defaults are Data-Juicer's ``document_minhash_deduplicator``.

    ``tokenization`` is ``"space"`` (words between spaces, ``window_size``-word shingles) or
    ``"character"`` (``window_size``-code-point shingles). ``num_bands`` x ``num_rows_per_band``
    default to datasketch's optimal-parameter rule (25 x 10 at 0.7 / 256). ``sketch="oph"`` swaps
    k-permutation MinHash for one-permutation hashing with densification, O(n + k) per document, for
    long documents (fast mode only). ``ignore_pattern`` is removed from the text before shingling
    (RE2 syntax in fast mode, Python ``re`` in Data-Juicer mode).

    Example:
        >>> MinHashParams().bands_and_rows()
        (25, 10)
    """

    tokenization: str = "space"
    window_size: int = 5
    lowercase: bool = True
    ignore_pattern: Optional[str] = None
    num_permutations: int = 256
    jaccard_threshold: float = 0.7
    num_bands: Optional[int] = None
    num_rows_per_band: Optional[int] = None
    seed: int = 42
    mode: str = "fast"
    sketch: str = "minhash"

    def __post_init__(self):
        if self.tokenization not in ("space", "character"):
            raise ValueError(f"tokenization must be 'space' or 'character', got {self.tokenization!r}")
        if self.mode not in ("fast", "data_juicer"):
            raise ValueError(f"mode must be 'fast' or 'data_juicer', got {self.mode!r}")
        if self.sketch not in ("minhash", "oph"):
            raise ValueError(f"sketch must be 'minhash' or 'oph', got {self.sketch!r}")
        if self.sketch == "oph" and self.mode == "data_juicer":
            raise ValueError("sketch='oph' exists in fast mode only (Data-Juicer has no such sketch)")
        if self.window_size < 1 or self.num_permutations < 1:
            raise ValueError("window_size and num_permutations must be >= 1")
        if not 0.0 <= self.jaccard_threshold <= 1.0:
            raise ValueError(f"jaccard_threshold must be in [0, 1], got {self.jaccard_threshold}")
        if (self.num_bands is None) != (self.num_rows_per_band is None):
            raise ValueError("give both num_bands and num_rows_per_band, or neither")
        bands, rows = self.bands_and_rows()
        if bands * rows > self.num_permutations:
            raise ValueError(f"num_bands * num_rows_per_band = {bands * rows} exceeds num_permutations = {self.num_permutations}")

    def bands_and_rows(self) -> tuple[int, int]:
        """``(bands, rows)``: the given ones, or the optimal-parameter rule's.

        Example:
            >>> MinHashParams(jaccard_threshold=0.8, num_permutations=128).bands_and_rows()
            (9, 13)
        """
        if self.num_bands is not None:
            return self.num_bands, self.num_rows_per_band
        return _optimal_param(self.jaccard_threshold, self.num_permutations)


_OPTIMAL_CACHE: dict[tuple[float, int], tuple[int, int]] = {}


def _optimal_param(threshold: float, num_perm: int) -> tuple[int, int]:
    key = (threshold, num_perm)
    if key not in _OPTIMAL_CACHE:
        _OPTIMAL_CACHE[key] = lsh.optimal_param(threshold, num_perm)
    return _OPTIMAL_CACHE[key]


# ---------------------------------------------------------------------------------------------
# Exact digests


def normalize_texts(texts, params: ExactParams = ExactParams()) -> pa.Array:
    """Apply ``params``' text normalisation with Arrow compute kernels (no per-row Python).

    Parameters
    ----------
    texts : pyarrow string array, chunked array or sequence of str, length n

    Returns
    -------
    pyarrow large_string array, length n

    Example:
        >>> normalize_texts(["  Hi, <__dj__image> there! "], ExactParams(lowercase=True,
        ...     drop_non_alnum=True, drop_special_tokens=True)).to_pylist()
        ['hithere']
    """
    array = string_array(texts)
    if params.drop_special_tokens:
        for token in (params.tokens.image, params.tokens.audio, params.tokens.video, params.tokens.eoc):
            array = pc.replace_substring(array, token, "")
    if params.lowercase:
        array = pc.utf8_lower(array)
    if params.drop_non_alnum:
        array = pc.replace_substring_regex(array, r"[^\p{L}\p{N}]+", "")
    if params.strip:
        array = pc.utf8_trim_whitespace(array)
    return array.cast(pa.large_string())


def text_digests(texts, params: ExactParams = ExactParams()) -> np.ndarray:
    """128-bit digests (MurmurHash3 x64-128) of the normalised texts, hashed on the Arrow buffers.

    Returns
    -------
    ndarray of uint64, shape (n, 2)

    Complexity: O(total bytes).

    Example:
        >>> d = text_digests(["a", " a ", "b"])
        >>> bool((d[0] == d[1]).all()), bool((d[0] == d[2]).all())
        (True, False)
    """
    array = normalize_texts(texts, params)
    offsets, data = string_buffers(array)
    return exact_hash.digests128(data, offsets)


def file_digest(path: str) -> bytes:
    """xxh3-128 digest (16 bytes) of a file's bytes, read in 1 MiB blocks.

    Example:
        >>> file_digest("photo.jpg").hex()  # doctest: +SKIP
        '5b1e906a48ae1d19cbd8a7b341bd9b02'
    """
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.digest()


def media_digests(path_lists, media_roots=None, *, row_offset: int = 0, cache: Optional[dict] = None) -> list[list[bytes]]:
    """Per row, the ordered xxh3-128 digests of its media files.

    Relative paths are read from the row's ``media_roots`` entry (``hf_mmbuilder.media
    .resolve_media_path``). A missing or unreadable file raises ``FileNotFoundError`` naming the row
    and path; a null list counts as no media. ``cache`` (resolved path -> digest) avoids re-reading
    files shared by rows.

    Complexity: O(total file bytes), one read per distinct file.

    Example:
        >>> media_digests([["a.jpg", "b.jpg"]], ["/data"])  # doctest: +SKIP
        [[b'...', b'...']]
    """
    cache = {} if cache is None else cache
    roots = media_roots if media_roots is not None else [None] * len(path_lists)
    out = []
    for index, (paths, root) in enumerate(zip(path_lists, roots)):
        row_digests = []
        for path in paths or ():
            resolved = resolve_media_path(path, root)
            if resolved not in cache:
                try:
                    cache[resolved] = file_digest(resolved)
                except OSError as error:
                    raise FileNotFoundError(
                        f"row {row_offset + index}: cannot read media file {path!r} (resolved to {resolved!r}): {error}"
                    ) from error
            row_digests.append(cache[resolved])
        out.append(row_digests)
    return out


def _digest_of_parts(parts: list[bytes]) -> np.ndarray:
    data = np.frombuffer(b"".join(parts), dtype=np.uint8)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(part) for part in parts], out=offsets[1:])
    return exact_hash.digests128(data, offsets)


def exact_row_digests(ds, params: ExactParams = ExactParams(), *, batch_size: int = _BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """One 128-bit key per row over ``params.on`` (text digest and/or ordered media digests).

    Returns
    -------
    ndarray of uint64, shape (len(ds), 2)

    Complexity: O(text bytes + media bytes).

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a", "a "]})
        >>> d = exact_row_digests(ds)
        >>> bool((d[0] == d[1]).all())
        True
    """
    for part in params.on:
        check_column(ds, part)
    has_root = "media_root" in ds.column_names
    columns = list(params.on) + (["media_root"] if has_root and params.on != ("text",) else [])
    out = np.empty((len(ds), 2), dtype=np.uint64)
    cache: dict = {}
    with tqdm(total=len(ds), disable=not progress, unit="rows", desc="exact digests") as bar:
        for offset, table in iter_tables(ds, batch_size, columns):
            text = None
            if "text" in params.on:
                text = text_digests(string_array(table.column("text"), offset), params)
            media_columns = [part for part in params.on if part != "text"]
            if not media_columns:
                out[offset : offset + len(table)] = text
                bar.update(len(table))
                continue
            roots = table.column("media_root").to_pylist() if has_root else None
            per_column = [media_digests(table.column(c).to_pylist(), roots, row_offset=offset, cache=cache) for c in media_columns]
            rows = []
            for i in range(len(table)):
                pieces = [text[i].tobytes()] if text is not None else []
                for column_digests in per_column:
                    # The count separates columns, so [a][b] and [a, b][] hash differently.
                    pieces.append(struct.pack("<q", len(column_digests[i])))
                    pieces.extend(column_digests[i])
                rows.append(b"".join(pieces))
            out[offset : offset + len(table)] = _digest_of_parts(rows)
            bar.update(len(table))
    return out


# ---------------------------------------------------------------------------------------------
# MinHash: shingles and signatures


def _sha1_hash32(data: bytes) -> int:
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def _data_juicer_shingle_hashes(array: pa.Array, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    pattern = re.compile(params.ignore_pattern) if params.ignore_pattern else None
    window = params.window_size
    hashes: list[int] = []
    counts = np.zeros(len(array) + 1, dtype=np.int64)
    for row, text in enumerate(array.to_pylist()):
        if params.lowercase:
            text = text.lower()
        if pattern is not None:
            text = pattern.sub("", text)
        if params.tokenization == "space":
            words = [word for word in text.split(" ") if word]
            # Data-Juicer's range stops one short of the last shingle; parity keeps that.
            shingles = {" ".join(words[i : i + window]).encode() for i in range(len(words) - window)}
        else:
            shingles = {text[i : i + window].encode() for i in range(len(text) - window)}
        hashes.extend(_sha1_hash32(shingle) for shingle in shingles)
        counts[row + 1] = len(shingles)
    return np.array(hashes, dtype=np.uint64), np.cumsum(counts)


def shingle_hashes(texts, params: MinHashParams = MinHashParams()) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every text in CSR layout (flat hashes + per-text offsets).

    Fast mode: 64-bit hashes computed in Numba on the Arrow UTF-8 buffers (lowercasing and
    ``ignore_pattern`` run as Arrow compute kernels first). Data-Juicer mode: 32-bit truncated sha1
    of each distinct shingle, computed in Python.

    Returns
    -------
    hashes : ndarray of uint64, shape (total_shingles,)
    offsets : ndarray of int64, shape (n + 1,)

    Complexity: O(total bytes + total words * window_size).

    Example:
        >>> hashes, offsets = shingle_hashes(["one two three four five six"])
        >>> offsets.tolist()
        [0, 2]
    """
    array = string_array(texts)
    if params.mode == "data_juicer":
        return _data_juicer_shingle_hashes(array, params)
    if params.ignore_pattern:
        array = pc.replace_substring_regex(array, params.ignore_pattern, "").cast(pa.large_string())
    offsets, data = string_buffers(array)
    if params.tokenization == "space":
        # ASCII text is lowercased inside the kernel while hashing; only text with other
        # characters pays for Arrow's Unicode lowercasing pass.
        if params.lowercase and (data[offsets[0] : offsets[-1]] >= 0x80).any():
            offsets, data = string_buffers(pc.utf8_lower(array).cast(pa.large_string()))
        return minhash.word_shingle_hashes(data, offsets, params.window_size, params.seed, ascii_lowercase=params.lowercase)
    if params.lowercase:
        offsets, data = string_buffers(pc.utf8_lower(array).cast(pa.large_string()))
    return minhash.char_shingle_hashes(data, offsets, params.window_size, params.seed)


_PERMUTATION_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _permutations(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    key = (params.num_permutations, params.seed)
    if key not in _PERMUTATION_CACHE:
        _PERMUTATION_CACHE[key] = minhash.permutations(*key)
    return _PERMUTATION_CACHE[key]


def minhash_signatures(texts, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """MinHash signatures of texts.

    Returns
    -------
    ndarray of uint32, shape (n, num_permutations)

    Complexity: O(total_shingles * num_permutations) (``sketch="minhash"``) or
    O(total_shingles + n * num_permutations) (``sketch="oph"``).

    Example:
        >>> minhash_signatures(["a b c d e f"]).shape
        (1, 256)
    """
    return _sketch(*shingle_hashes(texts, params), params)


def _sketch(hashes: np.ndarray, offsets: np.ndarray, params: MinHashParams) -> np.ndarray:
    if params.sketch == "oph":
        return minhash.oph_signatures(hashes, offsets, params.num_permutations, params.seed)
    a, b = _permutations(params)
    scheme = "data_juicer" if params.mode == "data_juicer" else "affine32"
    return minhash.minhash_signatures(hashes, offsets, a, b, scheme)


# ---------------------------------------------------------------------------------------------
# The four near-duplicate stages


def _band_column(band: int) -> str:
    return f"band_{band:03d}"


def signature_stage(texts, params: MinHashParams = MinHashParams(), *, row_offset: int = 0) -> pa.Table:
    """Stage 1, per shard: LSH band keys of each text.

    Parameters
    ----------
    texts : pyarrow string array or sequence of str, length n (a shard)
    params : MinHashParams
    row_offset : int
        Global row id of the shard's first text.

    Returns
    -------
    pyarrow.Table
        ``row_id`` (int64) and one ``uint64`` column ``band_000`` ... per band.

    Complexity: O(total_shingles * num_permutations); memory O(n * bands + total_shingles).

    Example:
        >>> signature_stage(["a b c d e f"], row_offset=10).column("row_id").to_pylist()
        [10]
    """
    bands, rows = params.bands_and_rows()
    hashes, offsets = shingle_hashes(texts, params)
    n = offsets.shape[0] - 1
    keys = np.empty((bands, n), dtype=np.uint64)
    # Signatures are made and banded a cache-sized chunk at a time and never kept whole
    # (256 uint32 per row would be 1 KiB per row).
    for start in range(0, n, _SIGNATURE_CHUNK):
        stop = min(n, start + _SIGNATURE_CHUNK)
        keys[:, start:stop] = lsh.band_keys(_sketch(hashes, offsets[start : stop + 1], params), bands, rows)
    row_ids = np.arange(row_offset, row_offset + n, dtype=np.int64)
    return pa.table([pa.array(row_ids), *(pa.array(keys[band]) for band in range(bands))], names=["row_id", *map(_band_column, range(bands))])


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
        >>> t = signature_stage(["a b c d e f", "a b c d e f", "x y z"])
        >>> candidate_edge_stage(t).to_pydict()["right"][:1]
        [1]
    """
    band_names = [name for name in band_table.column_names if name.startswith("band_")]
    selected = band_names if bands is None else [_band_column(band) for band in bands]
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
    return ds.select(np.flatnonzero(keep_mask(labels, _scores(ds, keep_max))))


def _scores(ds: datasets.Dataset, keep_max: Optional[str]) -> Optional[np.ndarray]:
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


# ---------------------------------------------------------------------------------------------
# Cluster labels per method


def exact_clusters(ds, params: ExactParams = ExactParams(), *, batch_size: int = _BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """Cluster labels of exact dedup: rows with equal 128-bit keys share a cluster.

    Returns
    -------
    ndarray of int64, shape (len(ds),): the first row with the same key.

    Example:
        >>> exact_clusters(datasets.Dataset.from_dict({"text": ["a", "b", " a"]})).tolist()
        [0, 1, 0]
    """
    return exact_hash.first_occurrence_labels(exact_row_digests(ds, params, batch_size=batch_size, progress=progress))


def minhash_clusters(
    ds, params: MinHashParams = MinHashParams(), *, column: str = "text", batch_size: int = _BATCH_SIZE, progress: bool = False
) -> np.ndarray:
    """Cluster labels of MinHash-LSH near-duplicate dedup (stages 1 to 3 in one process).

    Returns
    -------
    ndarray of int64, shape (len(ds),): the smallest row id of the row's cluster.

    Complexity: O(total_shingles * k + bands * n log n).

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a b c d e f g", "a b c d e f g", "x"]})
        >>> minhash_clusters(ds).tolist()
        [0, 0, 2]
    """
    check_column(ds, column)
    shards = []
    with tqdm(total=len(ds), disable=not progress, unit="rows", desc="minhash signatures") as bar:
        for offset, table in iter_tables(ds, batch_size, [column]):
            shards.append(signature_stage(string_array(table.column(column), offset, column), params, row_offset=offset))
            bar.update(len(table))
    if not shards:
        return np.empty(0, dtype=np.int64)
    edges = candidate_edge_stage(pa.concat_tables(shards))
    return component_stage(len(ds), edges).column(CLUSTER_COLUMN).to_numpy()


def _media_module():
    try:
        return importlib.import_module("hf_mmbuilder.dedup_media")
    except ModuleNotFoundError as error:
        if error.name == "hf_mmbuilder.dedup_media":
            raise ValueError("image and semantic dedup need hf_mmbuilder.dedup_media, which is not available") from error
        raise


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


# ---------------------------------------------------------------------------------------------
# Report


@dataclasses.dataclass
class DedupReport:
    """What a dedup removed: counts, cluster sizes and a few example clusters.

    ``size_histogram`` maps a cluster size (>= 2) to how many clusters have it; ``examples`` lists
    the largest clusters (kept row, removed rows, text snippets).

    Example:
        >>> report = DedupReport.from_labels("exact", {}, np.array([0, 0, 2]), np.array([True, False, True]))
        >>> report.to_dict()["num_removed"]
        1
    """

    method: str
    params: dict
    num_rows: int
    num_kept: int
    num_removed: int
    num_duplicate_clusters: int
    rows_in_duplicate_clusters: int
    largest_cluster: int
    size_histogram: dict[int, int]
    examples: list[dict]

    @classmethod
    def from_labels(
        cls,
        method: str,
        params: dict,
        labels: np.ndarray,
        kept: np.ndarray,
        texts: Optional[Sequence[str]] = None,
        max_examples: int = 5,
        members_per_example: int = 5,
    ) -> "DedupReport":
        """Build the report from cluster labels and the keep mask; ``texts`` adds 80-char snippets.

        Example:
            >>> DedupReport.from_labels("exact", {}, np.array([0]), np.array([True])).num_kept
            1
        """
        n = int(labels.shape[0])
        sizes = np.bincount(labels, minlength=n) if n else np.zeros(0, dtype=np.int64)
        duplicate_roots = np.flatnonzero(sizes >= 2)
        histogram = Counter(sizes[duplicate_roots].tolist())
        examples = []
        for root in duplicate_roots[np.argsort(-sizes[duplicate_roots], kind="stable")][:max_examples]:
            members = np.flatnonzero(labels == root)
            kept_rows = members[kept[members]].tolist()
            removed_rows = members[~kept[members]].tolist()
            example = {"cluster_id": int(root), "size": int(members.size), "kept": kept_rows, "removed": removed_rows[:members_per_example]}
            if texts is not None:
                example["texts"] = {int(row): _snippet(texts[int(row)]) for row in members[:members_per_example]}
            examples.append(example)
        return cls(
            method=method,
            params=params,
            num_rows=n,
            num_kept=int(kept.sum()),
            num_removed=int(n - kept.sum()),
            num_duplicate_clusters=int(duplicate_roots.size),
            rows_in_duplicate_clusters=int(sizes[duplicate_roots].sum()),
            largest_cluster=int(sizes.max()) if n else 0,
            size_histogram=dict(sorted(histogram.items())),
            examples=examples,
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict.

        Example:
            >>> sorted(DedupReport.from_labels("exact", {}, np.array([0]), np.array([True])).to_dict())[:3]
            ['examples', 'largest_cluster', 'method']
        """
        out = dataclasses.asdict(self)
        out["size_histogram"] = {str(size): count for size, count in self.size_histogram.items()}
        return out

    def to_markdown(self) -> str:
        """A Markdown section for a dataset card.

        Example:
            >>> print(DedupReport.from_labels("exact", {}, np.array([0]), np.array([True])).to_markdown().splitlines()[0])
            ### Deduplication (exact)
        """
        lines = [
            f"### Deduplication ({self.method})",
            "",
            f"- rows in: {self.num_rows:,}; kept: {self.num_kept:,}; removed: {self.num_removed:,}",
            f"- duplicate clusters: {self.num_duplicate_clusters:,} covering {self.rows_in_duplicate_clusters:,} rows; largest: {self.largest_cluster:,}",
        ]
        if self.params:
            lines.append("- parameters: " + ", ".join(f"`{key}={value}`" for key, value in self.params.items()))
        if self.size_histogram:
            lines += ["", "| cluster size | clusters |", "|---:|---:|"]
            lines += [f"| {size} | {count} |" for size, count in self.size_histogram.items()]
        for example in self.examples:
            lines += ["", f"Cluster {example['cluster_id']} ({example['size']} rows): kept {example['kept']}, removed {example['removed']}"]
            for row, text in example.get("texts", {}).items():
                lines.append(f"- row {row}: {text}")
        return "\n".join(lines) + "\n"


def _snippet(text) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# Batched .map functions


class TextDigest:
    """Batched ``.map`` function adding a 32-hex-char digest column of the normalised text.

    A picklable callable with plain attributes, so ``datasets`` fingerprints it stably and caches
    the mapped dataset. Works on dict batches and on Arrow batches (``with_format("arrow")``).

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a", " a"]})
        >>> out = ds.map(TextDigest(), batched=True)
        >>> out[0]["text_digest"] == out[1]["text_digest"]
        True
    """

    def __init__(self, column: str = "text", output_column: str = "text_digest", **exact_params):
        self.column = column
        self.output_column = output_column
        self.params = ExactParams(**exact_params)

    def __call__(self, batch) -> dict:
        digests = text_digests(batch_column(batch, self.column), self.params)
        hexes = digests.astype("<u8").tobytes().hex()
        return {self.output_column: [hexes[32 * i : 32 * (i + 1)] for i in range(digests.shape[0])]}


class MinHashSignature:
    """Batched ``.map`` function adding a ``minhash`` column (``num_permutations`` uint32 per row)
    or, with ``output="band_keys"``, a ``band_keys`` column (one uint64 per LSH band).

    Picklable with a stable fingerprint (plain attributes), so ``.map`` results are cached.

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["a b c d e f"]})
        >>> len(ds.map(MinHashSignature(num_permutations=64), batched=True)[0]["minhash"])
        64
    """

    def __init__(self, column: str = "text", output: str = "minhash", **minhash_params):
        if output not in ("minhash", "band_keys"):
            raise ValueError(f"output must be 'minhash' or 'band_keys', got {output!r}")
        self.column = column
        self.output = output
        self.params = MinHashParams(**minhash_params)

    def __call__(self, batch) -> dict:
        signatures = minhash_signatures(batch_column(batch, self.column), self.params)
        if self.output == "minhash":
            values = signatures
        else:
            bands, rows = self.params.bands_and_rows()
            values = np.ascontiguousarray(lsh.band_keys(signatures, bands, rows).T)
        return {self.output: values}


class RepeatedMediaDropper:
    """Batched ``.map`` function dropping, inside each row, media files whose bytes repeat an
    earlier file of the same row, together with their placeholder tokens in ``text`` (so the
    alignment invariant holds). Rows whose token count differs from their media count raise.

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["<__dj__image><__dj__image> two"],
        ...                                  "images": [["a.jpg", "a_copy.jpg"]]})
        >>> ds.map(RepeatedMediaDropper(), batched=True, with_indices=True)  # doctest: +SKIP
    """

    def __init__(self, column: str = "images", tokens: SpecialTokens = DEFAULT_TOKENS):
        if column not in MEDIA_COLUMNS:
            raise ValueError(f"column must be one of {', '.join(MEDIA_COLUMNS)}, got {column!r}")
        self.column = column
        self.tokens = tokens

    def __call__(self, batch, indices) -> dict:
        roots = batch["media_root"] if "media_root" in batch else None
        digests = media_digests(batch[self.column], roots, row_offset=indices[0] if indices else 0)
        token = self.tokens.for_column(self.column)
        texts, paths = list(batch["text"]), list(batch[self.column])
        for i, row_digests in enumerate(digests):
            seen, keep = set(), []
            for digest in row_digests:
                keep.append(digest not in seen)
                seen.add(digest)
            if all(keep):
                continue
            pieces = texts[i].split(token)
            if len(pieces) - 1 != len(keep):
                raise ValueError(
                    f"row {indices[i]}: text has {len(pieces) - 1} {token} token(s) but {self.column} has {len(keep)} path(s)"
                )
            text = pieces[0]
            for k, kept in enumerate(keep):
                text += (token if kept else "") + pieces[k + 1]
            texts[i] = text
            paths[i] = [path for path, kept in zip(paths[i], keep) if kept]
        return {"text": texts, self.column: paths}


def drop_repeated_media(
    ds: datasets.Dataset, columns: Sequence[str] = ("images",), *, tokens: SpecialTokens = DEFAULT_TOKENS, batch_size: int = 1000
) -> datasets.Dataset:
    """Media-level dedup within each row: drop repeated files (equal bytes) and their tokens.

    Complexity: O(media bytes) (each distinct file read once per batch).

    Example:
        >>> drop_repeated_media(ds, ["images"])  # doctest: +SKIP
    """
    for column in columns:
        check_column(ds, column)
        ds = ds.map(RepeatedMediaDropper(column, tokens), batched=True, batch_size=batch_size, with_indices=True)
    return ds


# ---------------------------------------------------------------------------------------------
# Front door


_EXACT_KEYS = {field.name for field in dataclasses.fields(ExactParams)}
_MINHASH_KEYS = {field.name for field in dataclasses.fields(MinHashParams)}


def dedup(
    ds: datasets.Dataset,
    method: str = "exact",
    *,
    column: Optional[str] = None,
    keep_max: Optional[str] = None,
    return_clusters: bool = False,
    return_report: bool = False,
    within_row_media: Sequence[str] = (),
    batch_size: int = _BATCH_SIZE,
    progress: bool = False,
    engine: str = "local",
    **params,
):
    """Remove duplicate rows of a ``Dataset``.

    Parameters
    ----------
    ds : datasets.Dataset
    method : {"exact", "minhash", "phash", "semantic"}
        ``"exact"``: equal 128-bit digests of the normalised text and/or media bytes
        (:class:`ExactParams`: ``on``, ``strip``, ``lowercase``, ``drop_non_alnum``,
        ``drop_special_tokens``). ``"minhash"``: MinHash-LSH near duplicates of ``column``
        (:class:`MinHashParams`, Data-Juicer's names and defaults; ``mode="data_juicer"`` for
        bit-for-bit parity). ``"phash"``: perceptual image hashes within a Hamming ``radius``
        (``hash``, ``radius``, ``mode``, ... of ``hf_mmbuilder.dedup_media.image_hash_clusters``).
        ``"semantic"``: embedding clusters (``embeddings``, ``eps``, ... of
        ``hf_mmbuilder.dedup_media.semantic_clusters``).
    column : str, optional
        Text column for exact/minhash (default ``"text"``), image column for phash (default
        ``"images"``).
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
        ``"ray"`` computes the minhash clusters on a Ray cluster (``hf_mmbuilder.ray_engine``: the
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
    if engine not in ("local", "ray"):
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
        report_params = {name: getattr(exact_params, name) for name in ("on", "strip", "lowercase", "drop_non_alnum", "drop_special_tokens")}
        labels = exact_clusters(ds, exact_params, batch_size=batch_size, progress=progress) if n else np.empty(0, np.int64)
        text_column = "text" if "text" in exact_params.on else None
    elif method == "minhash":
        _reject_unknown(params, _MINHASH_KEYS, method)
        text_column = column or "text"
        minhash_params = MinHashParams(**params)
        report_params = dataclasses.asdict(minhash_params)
        report_params["num_bands"], report_params["num_rows_per_band"] = minhash_params.bands_and_rows()
        if engine == "ray":
            from . import ray_engine

            labels = ray_engine.minhash_clusters(ds, minhash_params, column=text_column, batch_size=batch_size)
        else:
            labels = minhash_clusters(ds, minhash_params, column=text_column, batch_size=batch_size, progress=progress)
    elif method == "phash":
        text_column = None
        media = _media_module()
        labels = media.image_hash_clusters(ds, column=column or "images", progress=progress, **params) if n else np.empty(0, np.int64)
    else:
        text_column = None
        media = _media_module()
        labels = media.semantic_clusters(ds, progress=progress, **params) if n else np.empty(0, np.int64)
    representatives = _check_labels(labels, n, method)
    labels = _smallest_member(representatives)
    kept = keep_mask(labels, _scores(ds, keep_max)) if keep_max else representatives == np.arange(n)
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
