"""Near-duplicate images: perceptual image hashes with Hamming-radius search.

The front door returns cluster labels (int64, shape ``(len(ds),)``) built with the shared
:func:`hf_mmbuilder.kernels.unionfind.connected_components`, so ``labels == np.arange(len(ds))``
selects the rows to keep and equal labels group duplicates (used for leakage-free splits).

Image hashes (:func:`image_hashes`):

- ``compat="imagehash"`` (default): bit-identical to ``imagehash`` 4.3 (``phash``, ``dhash``, ``average_hash``,
  ``whash``): the same PIL grayscale conversion and LANCZOS resize, the same transforms
  (``scipy.fftpack`` DCT, ``pywt`` wavelets), batched over many images at once.
- ``compat=None`` (fast): reads only a 128 x 128 lattice of pixel samples (zero-copy through Pillow's
  Arrow export; JPEG files are draft-decoded by libjpeg straight to a reduced-scale grayscale
  image), box-averages them to the hash grid and computes only the kept DCT frequencies by GEMM.
  It drifts from imagehash by about 1 bit of 64 on average (p99 6 bits for phash, measured in
  ``benchmarks/results/dedup_phash.json``); hashes of the two modes should not be mixed in one
  index, and the fast hashes want ``hash_size=16`` for near-duplicate search (see :func:`default_radius`).

Rows with several images: every image is hashed and two rows are linked when any of their images
are within the radius.

``hash_method`` is Data-Juicer's ``image_deduplicator`` ``method`` (qualified, as ``dedup`` has a
``method`` of its own). The old keywords ``hash=`` and ``mode="exact"|"fast"`` still work, with a
warning.
"""

from __future__ import annotations

import importlib.util
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import pyarrow as pa
from PIL import Image

from .._deprecated import warn_renamed
from ..kernels import perceptual_hash
from ..kernels.hamming import hamming_pairs
from ..kernels.unionfind import connected_components
from ..media import resolve_media_path
from .report import warn_left_out


HASH_KINDS = ("phash", "dhash", "ahash", "whash")
# Internal names of the two hash paths; compat="imagehash" is "exact", compat=None is "fast".
HASH_MODES = ("exact", "fast")
_MODE_OF_COMPAT = {"imagehash": "exact", None: "fast"}
DEFAULT_RADIUS_FRACTION = 3 / 64
_HIGHFREQ_FACTOR = 4
# Fast mode averages about this many pixel samples per side (at least 4 per hash-grid cell).
_FAST_LATTICE = 128


class ImageHashError(ValueError):
    """An image that cannot be hashed, with its row, position in the row, path and the reason.

    Example:
        >>> str(ImageHashError(3, 0, "a.jpg", "cannot identify image file"))
        "row 3, image 0 ('a.jpg'): cannot identify image file"
    """

    def __init__(self, row: int, position: int, where: str, reason: str):
        self.row = row
        self.position = position
        self.where = where
        self.reason = reason
        super().__init__(f"row {row}, image {position} ({where!r}): {reason}")


def default_radius(hash_size: int = 8) -> int:
    """Default Hamming radius: 3 of 64 bits, scaled with the number of hash bits.

    Measured on the test images (exact phash): re-encoding (JPEG quality 20..95) and resizing
    (0.25x..2x) move a 64-bit hash by at most 2 bits (a 256-bit one by at most 4), while an edited
    pair of one scene (an aeroplane swapped for a boat) is 4 bits apart (38 of 256) and unrelated
    images 20+ (100+). 64-bit hashes leave little margin: ``hash_size=16`` (radius 12) separates
    both cases widely, and fast mode needs it (its drift brings that edited pair to 2 bits of 64).

    Example:
        >>> default_radius(8), default_radius(16)
        (3, 12)
    """
    return int(round(hash_size * hash_size * DEFAULT_RADIUS_FRACTION))


def _describe(item: Any, media_root: Optional[str]) -> str:
    if isinstance(item, str):
        return resolve_media_path(item, media_root)
    if isinstance(item, dict):
        if item.get("path"):
            return resolve_media_path(item["path"], media_root)
        return "<embedded bytes>"
    if isinstance(item, Image.Image):
        return f"<PIL {item.mode} {item.width}x{item.height}>"
    return f"<{type(item).__name__}>"


def open_image(item: Any, media_root: Optional[str] = None, *, draft_size: Optional[tuple[int, int]] = None) -> Image.Image:
    """Open and fully decode one image from a path, a datasets ``Image`` dict, bytes or a PIL image.

    Truncated files and decompression bombs (over ``PIL.Image.MAX_IMAGE_PIXELS``, where PIL itself
    only warns up to twice that) raise; nothing is decoded lazily later.

    Parameters
    ----------
    item : str | dict | bytes | PIL.Image.Image
        A path (relative paths are read from ``media_root``), ``{"bytes": ..., "path": ...}`` as
        datasets stores ``Image`` features, raw encoded bytes, or a decoded image.
    media_root : str, optional
    draft_size : (width, height), optional
        For JPEG, let libjpeg decode straight to grayscale at the smallest DCT scale that is at
        least this large (fast mode only: the pixels differ from a full decode).

    Example:
        >>> open_image(Image.new("RGB", (4, 4))).size
        (4, 4)
    """
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, dict):
        data, path = item.get("bytes"), item.get("path")
        source = io.BytesIO(data) if data is not None else resolve_media_path(path, media_root) if path else None
        if source is None:
            raise ValueError("image dict has neither 'bytes' nor 'path'")
    elif isinstance(item, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(item))
    elif isinstance(item, (str, os.PathLike)):
        source = resolve_media_path(os.fspath(item), media_root)
    else:
        raise TypeError(f"cannot read an image from {type(item).__name__}")
    image = Image.open(source)
    try:
        pixels, limit = image.width * image.height, Image.MAX_IMAGE_PIXELS
        # PIL raises only above twice its limit and merely warns in between; refuse both.
        if limit and pixels > limit:
            raise Image.DecompressionBombError(
                f"{image.width}x{image.height} = {pixels} pixels exceeds PIL.Image.MAX_IMAGE_PIXELS ({limit}): "
                "possible decompression bomb"
            )
        if draft_size is not None and image.format == "JPEG":
            image.draft("L", draft_size)
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _gray_exact(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("L").resize(size, Image.Resampling.LANCZOS))


def _pixel_view(image: Image.Image) -> np.ndarray:
    # Pillow exports its pixel block through the Arrow C interface without a copy (RGB as RGBX),
    # where np.asarray would serialise the whole image through tobytes().
    try:
        values = pa.array(image).buffers()[-1]
    except (ValueError, TypeError, pa.ArrowException):
        # Images stored in several memory blocks have no single buffer to export.
        return np.asarray(image)
    channels = 1 if image.mode == "L" else 4
    if values is None or values.size != image.width * image.height * channels:
        return np.asarray(image)
    return np.frombuffer(values, dtype=np.uint8).reshape(image.height, image.width, channels)


def _gray_fast(image: Image.Image, size: tuple[int, int], refine: bool) -> np.ndarray:
    if image.mode not in ("L", "RGB", "RGBA", "RGBX"):
        # Palette, CMYK, 16-bit, float: PIL's own conversion, as in exact mode.
        image = image.convert("L")
    pixels = _pixel_view(image)
    if not refine:
        return perceptual_hash.sampled_box_gray(pixels, size[1], size[0], lattice=_FAST_LATTICE)
    # dhash and ahash read single cells of a tiny grid, where a box filter and imagehash's LANCZOS
    # differ most: box-average to 4x the grid, then finish with LANCZOS on that tiny image.
    fine = perceptual_hash.sampled_box_gray(pixels, 4 * size[1], 4 * size[0], lattice=_FAST_LATTICE)
    return np.asarray(Image.fromarray(fine.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS))


def _whash_scale(image_size: tuple[int, int], hash_size: int) -> int:
    return max(2 ** int(np.log2(min(image_size))), hash_size)


def _whash_low_band(pixels: np.ndarray, hash_size: int) -> np.ndarray:
    import pywt

    # imagehash's whash (haar, remove_max_haar_ll=True), call for call.
    levels = int(np.log2(pixels.shape[0]))
    coeffs = list(pywt.wavedec2(pixels / 255.0, "haar", level=levels))
    coeffs[0] *= 0
    flattened = pywt.waverec2(coeffs, "haar")
    return pywt.wavedec2(flattened, "haar", level=levels - int(np.log2(hash_size)))[0]


def _prepare(item: Any, media_root: Optional[str], kind: str, mode: str, hash_size: int) -> np.ndarray:
    if kind == "phash":
        size = (hash_size * _HIGHFREQ_FACTOR,) * 2
    elif kind == "dhash":
        size = (hash_size + 1, hash_size)
    elif kind == "ahash":
        size = (hash_size, hash_size)
    else:
        size = None
    if mode == "exact":
        image = open_image(item, media_root)
        if size is None:
            # The wavelet grid grows with the image (up to its largest power of two), so the
            # transform runs here, per image, and only the small low band is batched.
            return _whash_low_band(_gray_exact(image, (_whash_scale(image.size, hash_size),) * 2), hash_size)
        return _gray_exact(image, size)
    if size is None:
        size = (hash_size * _HIGHFREQ_FACTOR,) * 2
    image = open_image(item, media_root, draft_size=(_FAST_LATTICE, _FAST_LATTICE))
    return _gray_fast(image, size, refine=kind in ("dhash", "ahash"))


def _bits(pixels: np.ndarray, kind: str, mode: str, hash_size: int) -> np.ndarray:
    n = pixels.shape[0]
    if kind == "dhash":
        return perceptual_hash.horizontal_gradient_bits(pixels)
    if kind == "ahash":
        return perceptual_hash.above_mean(pixels.reshape(n, -1))
    if kind == "phash":
        if mode == "exact":
            import scipy.fftpack

            # The same pocketfft calls as imagehash, batched: each slice is transformed alike.
            dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=1), axis=2)
            low = dct[:, :hash_size, :hash_size]
        else:
            low = perceptual_hash.dct_lowfreq(pixels, hash_size)
        return perceptual_hash.above_median(low.reshape(n, -1))
    if mode == "exact":
        return perceptual_hash.above_median(pixels.reshape(n, -1))
    return perceptual_hash.above_median(perceptual_hash.haar_lowfreq(pixels / 255.0, hash_size))


def _hash_options(where: str, deprecated: dict, hash_method: str, compat: Optional[str]) -> tuple[str, str]:
    """``(hash kind, internal mode)`` from the keywords, honouring the deprecated ``hash=`` and ``mode=``."""
    unknown = sorted(set(deprecated) - {"hash", "mode"})
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if "hash" in deprecated:
        # Level 4: the caller of image_hashes / image_hash_clusters.
        warn_renamed(where, "hash", "hash_method", stacklevel=4)
        hash_method = deprecated["hash"]
    if "mode" in deprecated:
        warn_renamed(where, "mode", "compat", stacklevel=4, note='mode="exact" is compat="imagehash", mode="fast" is compat=None')
        if deprecated["mode"] not in HASH_MODES:
            raise ValueError(f"mode must be one of {HASH_MODES}, got {deprecated['mode']!r}")
        return hash_method, deprecated["mode"]
    if compat not in _MODE_OF_COMPAT:
        raise ValueError(f"compat must be 'imagehash' or None, got {compat!r}")
    return hash_method, _MODE_OF_COMPAT[compat]


def _check_hash_args(kind: str, mode: str, hash_size: int) -> None:
    if kind not in HASH_KINDS:
        raise ValueError(f"hash_method must be one of {HASH_KINDS}, got {kind!r}")
    if mode not in HASH_MODES:
        raise ValueError(f"mode must be one of {HASH_MODES}, got {mode!r}")
    if hash_size < 2:
        raise ValueError(f"hash_size must be >= 2, got {hash_size}")
    if kind == "whash" and hash_size & (hash_size - 1):
        raise ValueError(f"whash needs a power-of-two hash_size, got {hash_size}")
    library = {"phash": "scipy", "whash": "pywt"}.get(kind)
    if mode == "exact" and library and importlib.util.find_spec(library) is None:
        raise ImportError(
            f"exact {kind} uses the same transform library as imagehash ({library}); install imagehash "
            f"(which brings it) or use compat=None"
        )


def _hash_batch(
    items: Sequence[Any],
    media_roots: Sequence[Optional[str]],
    rows: Sequence[int],
    positions: Sequence[int],
    kind: str,
    mode: str,
    hash_size: int,
    on_error: str,
    pool: Optional[ThreadPoolExecutor],
    failures: list,
) -> tuple[np.ndarray, np.ndarray]:
    def prepare(k: int):
        try:
            return _prepare(items[k], media_roots[k], kind, mode, hash_size)
        except Exception as error:  # noqa: BLE001 - every decoder failure is reported per image
            where = _describe(items[k], media_roots[k])
            reason = f"{type(error).__name__}: {error}"
            if on_error == "raise":
                raise ImageHashError(rows[k], positions[k], where, reason) from error
            failures.append((rows[k], positions[k], where, reason))
            return None

    prepared = list(pool.map(prepare, range(len(items)))) if pool else [prepare(k) for k in range(len(items))]
    ok = np.array([p is not None for p in prepared], dtype=bool)
    words = -(-(hash_size * hash_size) // 64)
    hashes = np.zeros((len(items), words), dtype=np.uint64)
    if ok.any():
        stack = np.stack([p for p in prepared if p is not None])
        hashes[ok] = perceptual_hash.pack_bits(_bits(stack, kind, mode, hash_size))
    return hashes, ok


def image_hashes(
    images: Iterable[Any],
    *,
    hash_method: str = "phash",
    compat: Optional[str] = "imagehash",
    hash_size: int = 8,
    media_root: Optional[str] = None,
    num_threads: int = 1,
    batch_size: int = 512,
    **deprecated,
) -> np.ndarray:
    """Perceptual hashes of many images, packed MSB-first into big-endian 64-bit words.

    Parameters
    ----------
    images : iterable of str | dict | bytes | PIL.Image.Image
        See :func:`open_image`.
    hash_method : {"phash", "dhash", "ahash", "whash"}
        imagehash's ``phash``, ``dhash``, ``average_hash`` and ``whash`` (haar) respectively.
    compat : {"imagehash", None}
        ``"imagehash"`` is bit-identical to imagehash 4.3; ``None`` hashes decoded images about 4x
        faster than imagehash and drifts by a few bits (module docstring).
    hash_size : int
        Bits per side (whash: a power of two).
    media_root : str, optional
        Folder relative paths are read from.
    num_threads : int
        Threads decoding and shrinking images (PIL releases the GIL while doing so).
    batch_size : int
        Images transformed per batch.

    Returns
    -------
    ndarray of uint64, shape (n, ceil(hash_size^2 / 64))
        For ``hash_size=8``, ``out[i, 0] == int(str(imagehash.phash(img_i)), 16)``.

    Raises
    ------
    ImageHashError
        Naming the image's index and path, for an unreadable, truncated or oversized image.

    Complexity: one decode and one shrink per image, then O(batch * s^2 * hash_size) for the
    transform (s = 4 * hash_size for phash).

    Example
    -------
    >>> img = Image.linear_gradient("L").resize((64, 64))
    >>> hex(int(image_hashes([img], hash_method="dhash")[0, 0]))
    '0x0'
    """
    kind, mode = _hash_options("image_hashes", deprecated, hash_method, compat)
    _check_hash_args(kind, mode, hash_size)
    items = list(images)
    batches = []
    pool = ThreadPoolExecutor(max_workers=num_threads) if num_threads > 1 else None
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            indices = list(range(start, start + len(chunk)))
            hashes, _ = _hash_batch(
                chunk, [media_root] * len(chunk), indices, [0] * len(chunk), kind, mode, hash_size, "raise", pool, []
            )
            batches.append(hashes)
    finally:
        if pool:
            pool.shutdown()
    words = -(-(hash_size * hash_size) // 64)
    return np.concatenate(batches) if batches else np.zeros((0, words), dtype=np.uint64)


def _image_rows(ds, column: str, batch_size: int):
    """Yield (row, images of the row, media_root) with datasets ``Image`` features left undecoded."""
    import datasets

    if column not in ds.column_names:
        raise ValueError(f"column {column!r} not in dataset columns {ds.column_names}")
    feature = ds.features[column]
    single = not isinstance(feature, (datasets.List, datasets.LargeList, datasets.Sequence, list))
    if isinstance(feature, datasets.Image):
        ds = ds.cast_column(column, datasets.Image(decode=False))
    elif not single:
        inner = feature[0] if isinstance(feature, list) else feature.feature
        if isinstance(inner, datasets.Image):
            undecoded = datasets.Image(decode=False)
            container = [undecoded] if isinstance(feature, list) else type(feature)(undecoded)
            ds = ds.cast_column(column, container)
    columns = [column] + (["media_root"] if "media_root" in ds.column_names else [])
    row = 0
    for batch in ds.select_columns(columns).iter(batch_size=batch_size):
        roots = batch.get("media_root") or [None] * len(batch[column])
        for value, root in zip(batch[column], roots):
            if value is None:
                value = []
            yield row, ([value] if single else value), root
            row += 1


def image_hash_clusters(
    ds,
    column: str = "images",
    hash_method: str = "phash",
    radius: Optional[int] = None,
    compat: Optional[str] = "imagehash",
    hash_size: int = 8,
    *,
    on_error: str = "raise",
    num_threads: int = 1,
    batch_size: int = 512,
    progress: bool = True,
    **deprecated,
) -> np.ndarray:
    """Cluster rows whose images are perceptual near-duplicates (Hamming distance <= ``radius``).

    Every image of a row is hashed; two rows are linked when any image of one is within ``radius``
    of any image of the other, and clusters are the connected components of those links (so
    duplicates chain: A~B and B~C put A, B, C together). A row without images is its own cluster.

    Parameters
    ----------
    ds : datasets.Dataset
    column : str
        DJ path lists (``List(Value("string"))``, relative paths read from the row's ``media_root``
        column when present), a path string column, or ``Image`` / ``List(Image())`` features
        (read undecoded, from their bytes or path).
    hash_method, compat, hash_size
        See :func:`image_hashes`.
    radius : int, optional
        Largest Hamming distance counted as a duplicate; default :func:`default_radius`.
    on_error : {"raise", "skip"}
        ``"raise"``: :class:`ImageHashError` naming the row, image position and path.
        ``"skip"``: the image is left out (a row whose images all fail is its own cluster), every
        failure is logged with row, path and reason, and one warning gives the count.
    num_threads : int
        Threads for decoding (and for the Hamming search).
    batch_size : int
        Rows read and images transformed per batch.
    progress : bool
        Show a tqdm progress bar over rows.

    Returns
    -------
    labels : ndarray of int64, shape (len(ds),)
        Smallest row index of each row's cluster.

    Complexity: one decode per image; Hamming search O(m^2) for m images up to 1e6, multi-index
    hashing above.

    Example
    -------
    >>> import datasets
    >>> img = Image.effect_mandelbrot((256, 256), (-2, -1.5, 1, 1.5), 100)
    >>> other = Image.linear_gradient("L")
    >>> ds = datasets.Dataset.from_dict({"image": [img, img.resize((128, 128)), other]},
    ...                                 features=datasets.Features({"image": datasets.Image()}))
    >>> image_hash_clusters(ds, column="image", progress=False).tolist()
    [0, 0, 2]
    """
    from tqdm.auto import tqdm

    kind, mode = _hash_options("image_hash_clusters", deprecated, hash_method, compat)
    _check_hash_args(kind, mode, hash_size)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    radius = default_radius(hash_size) if radius is None else int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    n = len(ds)
    owners: list[int] = []
    hashes: list[np.ndarray] = []
    failures: list[tuple] = []
    pending: tuple[list, list, list, list] = ([], [], [], [])
    pool = ThreadPoolExecutor(max_workers=num_threads) if num_threads > 1 else None

    def flush():
        items, roots, rows, positions = pending
        if items:
            batch_hashes, ok = _hash_batch(items, roots, rows, positions, kind, mode, hash_size, on_error, pool, failures)
            hashes.append(batch_hashes[ok])
            owners.extend(np.asarray(rows)[ok].tolist())
            for part in pending:
                part.clear()

    try:
        for row, images, root in tqdm(_image_rows(ds, column, batch_size), total=n, disable=not progress, desc=f"{kind} {mode}"):
            for position, item in enumerate(images):
                pending[0].append(item)
                pending[1].append(root)
                pending[2].append(row)
                pending[3].append(position)
            if len(pending[0]) >= batch_size:
                flush()
        flush()
    finally:
        if pool:
            pool.shutdown()
    if failures:
        warn_left_out(failures, "image", "image(s)", "hashed", stacklevel=2)
    words = -(-(hash_size * hash_size) // 64)
    all_hashes = np.concatenate(hashes) if hashes else np.zeros((0, words), dtype=np.uint64)
    owner = np.asarray(owners, dtype=np.int64)
    left, right = hamming_pairs(all_hashes, radius, num_threads=num_threads)
    return connected_components(n, owner[left], owner[right])
