"""Exact duplicates: 128-bit digests of the normalised text and/or the media files' bytes.

Also the batched ``.map`` functions built on them (:class:`TextDigest`, :class:`RepeatedMediaDropper`)
and media-level dedup inside a row (:func:`drop_repeated_media`).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Optional, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from tqdm.auto import tqdm

from .._deprecated import warn_renamed
from ..arrow import batch_column, check_column, iter_tables, string_array, string_buffers
from ..kernels import exact_hash
from ..media import resolve_media_path
from ..schema import DEFAULT_TOKENS, MEDIA_COLUMNS, SpecialTokens
from .stages import BATCH_SIZE

# Data-Juicer's document_deduplicator drops `\s+|\d+|[string.punctuation]` with Python's Unicode
# classes; in RE2: whatever str.isspace() accepts, Unicode decimal digits, ASCII punctuation.
NON_CHARACTER_PATTERN = r"[\t-\r\x{1c}-\x{20}\x{85}\p{Z}]+|\p{Nd}+|[!-/:-@\[-`{-~]"


@dataclasses.dataclass(frozen=True)
class ExactParams:
    """What makes two rows exact duplicates.

    ``on`` lists the parts of the row key: ``"text"`` (its normalised digest) and/or media columns
    (``"images"``, ``"audios"``, ``"videos"``: the ordered digests of the files' bytes, read from
    the row's ``media_root`` column when present). Text normalisation, in this order: drop DJ
    special tokens, lowercase, drop non-characters, strip surrounding whitespace.

    ``ignore_non_character`` drops what Data-Juicer's ``document_deduplicator`` drops: whitespace,
    decimal digits and ASCII punctuation (other symbols stay). The deprecated ``drop_non_alnum``
    keeps its own rule: drop every character that is not a Unicode letter or digit.

    Example:
        >>> ExactParams(lowercase=True).on
        ('text',)
    """

    on: tuple[str, ...] = ("text",)
    strip: bool = True
    lowercase: bool = False
    drop_non_alnum: bool = False
    drop_special_tokens: bool = False
    special_tokens: SpecialTokens = DEFAULT_TOKENS
    ignore_non_character: bool = False
    # Deprecated spelling of special_tokens (`token=` is the Hub's token elsewhere in the package).
    tokens: dataclasses.InitVar[Optional[SpecialTokens]] = None

    def __post_init__(self, tokens: Optional[SpecialTokens]):
        if tokens is not None:
            warn_renamed("ExactParams", "tokens", "special_tokens", stacklevel=4)
            object.__setattr__(self, "special_tokens", tokens)
        if self.drop_non_alnum:
            warn_renamed("ExactParams", "drop_non_alnum", "ignore_non_character", stacklevel=4,
                         note="which follows Data-Juicer: it also drops digits and keeps non-ASCII symbols")
        on = (self.on,) if isinstance(self.on, str) else tuple(self.on)
        object.__setattr__(self, "on", on)
        unknown = [part for part in on if part != "text" and part not in MEDIA_COLUMNS]
        if unknown or not on:
            raise ValueError(f"exact dedup keys on 'text' and/or {', '.join(MEDIA_COLUMNS)}; got {list(on)}")


def normalize_texts(texts, params: ExactParams = ExactParams()) -> pa.Array:
    """Apply ``params``' text normalisation with Arrow compute kernels (no per-row Python).

    Parameters
    ----------
    texts : pyarrow string array, chunked array or sequence of str, length n

    Returns
    -------
    pyarrow large_string array, length n

    Example:
        >>> normalize_texts(["  Hi, <__dj__image> there 2! "], ExactParams(lowercase=True,
        ...     ignore_non_character=True, drop_special_tokens=True)).to_pylist()
        ['hithere']
    """
    array = string_array(texts)
    if params.drop_special_tokens:
        tokens = params.special_tokens
        for token in (tokens.image, tokens.audio, tokens.video, tokens.eoc):
            array = pc.replace_substring(array, token, "")
    if params.lowercase:
        array = pc.utf8_lower(array)
    if params.drop_non_alnum:
        array = pc.replace_substring_regex(array, r"[^\p{L}\p{N}]+", "")
    if params.ignore_non_character:
        array = pc.replace_substring_regex(array, NON_CHARACTER_PATTERN, "")
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


def exact_row_digests(ds, params: ExactParams = ExactParams(), *, batch_size: int = BATCH_SIZE, progress: bool = False) -> np.ndarray:
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


def exact_clusters(ds, params: ExactParams = ExactParams(), *, batch_size: int = BATCH_SIZE, progress: bool = False) -> np.ndarray:
    """Cluster labels of exact dedup: rows with equal 128-bit keys share a cluster.

    Returns
    -------
    ndarray of int64, shape (len(ds),): the first row with the same key.

    Example:
        >>> exact_clusters(datasets.Dataset.from_dict({"text": ["a", "b", " a"]})).tolist()
        [0, 1, 0]
    """
    return exact_hash.first_occurrence_labels(exact_row_digests(ds, params, batch_size=batch_size, progress=progress))


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


class RepeatedMediaDropper:
    """Batched ``.map`` function dropping, inside each row, media files whose bytes repeat an
    earlier file of the same row, together with their placeholder tokens in ``text`` (so the
    alignment invariant holds). Rows whose token count differs from their media count raise.

    Example:
        >>> ds = datasets.Dataset.from_dict({"text": ["<__dj__image><__dj__image> two"],
        ...                                  "images": [["a.jpg", "a_copy.jpg"]]})
        >>> ds.map(RepeatedMediaDropper(), batched=True, with_indices=True)  # doctest: +SKIP
    """

    def __init__(self, column: str = "images", special_tokens: SpecialTokens = DEFAULT_TOKENS, **deprecated):
        special_tokens = _special_tokens("RepeatedMediaDropper", special_tokens, deprecated)
        if column not in MEDIA_COLUMNS:
            raise ValueError(f"column must be one of {', '.join(MEDIA_COLUMNS)}, got {column!r}")
        self.column = column
        self.special_tokens = special_tokens

    def __call__(self, batch, indices) -> dict:
        roots = batch["media_root"] if "media_root" in batch else None
        digests = media_digests(batch[self.column], roots, row_offset=indices[0] if indices else 0)
        token = self.special_tokens.for_column(self.column)
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
    ds: datasets.Dataset,
    columns: Sequence[str] = ("images",),
    *,
    special_tokens: SpecialTokens = DEFAULT_TOKENS,
    batch_size: int = 1000,
    **deprecated,
) -> datasets.Dataset:
    """Media-level dedup within each row: drop repeated files (equal bytes) and their tokens.

    Complexity: O(media bytes) (each distinct file read once per batch).

    Example:
        >>> drop_repeated_media(ds, ["images"])  # doctest: +SKIP
    """
    special_tokens = _special_tokens("drop_repeated_media", special_tokens, deprecated)
    for column in columns:
        check_column(ds, column)
        ds = ds.map(RepeatedMediaDropper(column, special_tokens), batched=True, batch_size=batch_size, with_indices=True)
    return ds


def _special_tokens(where: str, special_tokens: SpecialTokens, deprecated: dict) -> SpecialTokens:
    """``special_tokens``, or the deprecated ``tokens=`` (with a warning); other keywords raise."""
    unknown = sorted(set(deprecated) - {"tokens"})
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if "tokens" not in deprecated:
        return special_tokens
    # Level 4: the caller of the class or function that got the keyword.
    warn_renamed(where, "tokens", "special_tokens", stacklevel=4)
    return deprecated["tokens"]
