"""Near duplicates by MinHash-LSH: shingles, signatures, band keys (stage 1) and the one-process clusters.

MinHash has two hash modes. The fast one (``compat=None``, default) hashes shingles in Numba over
the Arrow UTF-8 buffers and applies 32-bit affine permutations; every shingle counts and a text
with fewer words than ``window_size`` is one shingle. ``compat="data_juicer"`` reproduces Data-Juicer's
``document_minhash_deduplicator`` bit for bit (sha1 token hashes in Python, its permutation
arithmetic and its shingle range, which drops the last shingle and gives every text of at most
``window_size`` words the same empty signature, so such texts all land in one cluster).

Bad input: a null text raises ``ValueError`` naming the row (nothing is dropped silently); an empty
or all-space text has no shingles, so all such texts form one cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct
from typing import Optional

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from .._deprecated import warn_renamed
from ..arrow import batch_column, check_column, iter_tables, string_array, string_buffers
from ..kernels import lsh, minhash
from ..schema import CLUSTER_COLUMN
from .stages import BATCH_SIZE, band_column, candidate_edge_stage, component_stage

# Rows whose signatures are made and banded at a time (see signature_stage).
_SIGNATURE_CHUNK = 2048


@dataclasses.dataclass(frozen=True)
class MinHashParams:
    """MinHash-LSH parameters; names and defaults are Data-Juicer's ``document_minhash_deduplicator``.

    ``tokenization`` is ``"space"`` (words between spaces, ``window_size``-word shingles) or
    ``"character"`` (``window_size``-code-point shingles). ``num_bands`` x ``num_rows_per_band``
    default to datasketch's optimal-parameter rule (25 x 10 at 0.7 / 256). ``sketch="oph"`` swaps
    k-permutation MinHash for one-permutation hashing with densification, O(n + k) per document, for
    long documents (fast mode only). ``ignore_pattern`` is removed from the text before shingling
    (RE2 syntax in fast mode, Python ``re`` in Data-Juicer mode). ``compat="data_juicer"``
    reproduces Data-Juicer's signatures bit for bit (the deprecated ``mode="data_juicer"`` /
    ``mode="fast"`` still work, with a warning).

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
    compat: Optional[str] = None
    sketch: str = "minhash"
    # Deprecated spelling of compat: "fast" is compat=None, "data_juicer" is compat="data_juicer".
    mode: dataclasses.InitVar[Optional[str]] = None

    def __post_init__(self, mode: Optional[str]):
        if mode is not None:
            if self.compat is not None:
                raise TypeError("MinHashParams() got both compat= and its deprecated name mode=")
            warn_renamed("MinHashParams", "mode", "compat", stacklevel=4, note='mode="fast" is compat=None')
            if mode not in ("fast", "data_juicer"):
                raise ValueError(f"mode must be 'fast' or 'data_juicer', got {mode!r}")
            object.__setattr__(self, "compat", None if mode == "fast" else mode)
        if self.tokenization not in ("space", "character"):
            raise ValueError(f"tokenization must be 'space' or 'character', got {self.tokenization!r}")
        if self.compat not in (None, "data_juicer"):
            raise ValueError(f"compat must be None or 'data_juicer', got {self.compat!r}")
        if self.sketch not in ("minhash", "oph"):
            raise ValueError(f"sketch must be 'minhash' or 'oph', got {self.sketch!r}")
        if self.sketch == "oph" and self.compat == "data_juicer":
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
    if params.compat == "data_juicer":
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
    scheme = "data_juicer" if params.compat == "data_juicer" else "affine32"
    return minhash.minhash_signatures(hashes, offsets, a, b, scheme)


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
    return pa.table([pa.array(row_ids), *(pa.array(keys[band]) for band in range(bands))], names=["row_id", *map(band_column, range(bands))])


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


def minhash_clusters(
    ds, params: MinHashParams = MinHashParams(), *, column: str = "text", batch_size: int = BATCH_SIZE, progress: bool = False
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
