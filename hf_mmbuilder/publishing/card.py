"""The dataset card (``README.md``) of a published dataset: Hub YAML metadata and a body computed
from the data.

:func:`collect_statistics` measures the splits (rows, media counts, text length, turns, images per
row, image sizes, audio/video durations, languages); :func:`render_plots` draws them as PNGs with
matplotlib's Agg backend; :func:`build_card` puts metadata, tables, plots and the user's own text
(:class:`CardSpec`) together through a Jinja template, the package's or the user's.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import logging
import lzma
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Mapping, Optional, Sequence

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
import yaml

from ..arrow import iter_tables, string_buffers
from ..frames import MediaDecodeError
from ..kernels.exact_hash import digests128, first_occurrence_labels
from ..kernels.language_id import feature_counts, naive_bayes_scores
from ..media import locate_media, resolve_media_paths
from ..probe import MediaInfo, image_size, image_sizes, probe_media
from ..schema import DEFAULT_TOKENS, MEDIA_COLUMNS, SpecialTokens

logger = logging.getLogger("hf_mmbuilder")

# The templates stay package data of hf_mmbuilder.templates, one level up.
TEMPLATE_PATH = Path(__file__).parents[1] / "templates" / "dataset_card.md.j2"
SECTION_NAMES = ("summary", "uses", "processing", "synthesis", "pii", "limitations", "citation", "license")
# The card's own YAML key: what hf_mmbuilder.publishing.load_published needs to restore the columns.
METADATA_KEY = "hf_mmbuilder"
TASKS_BY_MEDIA = {"images": "image-text-to-text", "videos": "video-text-to-text", "audios": "audio-text-to-text"}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
LANGUAGE_SAMPLE_ROWS = 2000
PLOT_DPI = 80
# Every plot render_plots can draw (file name -> title): publish replaces exactly these names in the plot folder.
PLOT_TITLES = {"text_length.png": "Text length", "turns.png": "Turns per row", "images_per_row.png": "Images per row",
               "image_sizes.png": "Image sizes", "audio_duration.png": "Audio durations", "video_duration.png": "Video durations"}


@dataclasses.dataclass
class CardSpec:
    """What the data cannot say about itself: licence, provenance, processing history, prose.

    Attributes:
        pretty_name: title of the card (default: the repo name).
        license: Hub licence id (``"cc-by-4.0"``, ``"apache-2.0"``, ``"other"``...).
        language: ISO 639-1 codes; default: the languages detected in the text.
        task_categories: default: one per media type present (``image-text-to-text``...).
        tags, source_datasets, annotations_creators: Hub metadata lists.
        sources: one dict per source: ``name``, ``format``, ``license``, ``url``, ``rows``.
        history: one entry per processing step: a dict (``step``, ``method``, ``rows_before``,
            ``removed``) or the report of ``hf_mmbuilder.dedup(..., return_report=True)``.
        sections: your text for any of ``summary``, ``uses``, ``processing``, ``synthesis``, ``pii``,
            ``limitations``, ``citation``, ``license``; replaces the generated text of that section.
        template: path of a Jinja template for the whole card (same context as the package's).

    Example:
        >>> CardSpec(license="cc-by-4.0", sections={"pii": "Faces are blurred."}).license
        'cc-by-4.0'
    """

    pretty_name: Optional[str] = None
    license: Optional[str] = None
    language: Optional[Sequence[str]] = None
    task_categories: Optional[Sequence[str]] = None
    tags: Sequence[str] = ()
    source_datasets: Sequence[str] = ()
    annotations_creators: Sequence[str] = ()
    sources: Sequence[Mapping] = ()
    history: Sequence[Mapping] = ()
    sections: Mapping[str, str] = dataclasses.field(default_factory=dict)
    template: Optional[str] = None

    @classmethod
    def coerce(cls, value) -> "CardSpec":
        """Accept a ``CardSpec``, a dict of its fields, or ``None``.

        Example:
            >>> CardSpec.coerce({"license": "mit"}).license
            'mit'
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {field.name for field in dataclasses.fields(cls)}
            if unknown:
                raise ValueError(f"card: unknown field(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(cls)]}")
            return cls(**value)
        raise ValueError(f"card must be a CardSpec, a dict or None, got {type(value).__name__}")

    def __post_init__(self):
        unknown = set(self.sections) - set(SECTION_NAMES)
        if unknown:
            raise ValueError(f"card sections {sorted(unknown)} unknown; known: {list(SECTION_NAMES)}")
        history_rows(self.history)
        if self.template is not None and not os.path.isfile(self.template):
            raise ValueError(f"card template {self.template!r} not found")


def summarize(values: np.ndarray) -> Optional[dict]:
    """count/min/mean/median/p95/max of a 1-D numeric array (``None`` when empty).

    Example:
        >>> summarize(np.array([1, 2, 3, 4]))["mean"]
        2.5
    """
    if values.size == 0:
        return None
    values = values.astype(np.float64)
    return {
        "count": int(values.size),
        "min": float(values.min()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket of a row count.

    Example:
        >>> size_category(12_345)
        '10K<n<100K'
    """
    for limit, name in SIZE_CATEGORIES:
        if rows < limit:
            return name
    return "1B<n<10B"


def media_format(info: MediaInfo) -> str:
    """One line describing an audio or video file for the card's formats table.

    Example:
        >>> media_format(MediaInfo("audio", 1.0, "flac", "flac", sample_rate=22050, channels=2))
        'flac, 22050 Hz, 2 ch'
        >>> media_format(MediaInfo("video", 1.0, "h264", "mp4", width=640, height=360, frame_rate=23.976))
        'h264, 640x360, 23.98 fps'
    """
    if info.kind == "video":
        return f"{info.codec}, {info.width}x{info.height}, {info.frame_rate:.4g} fps"
    return f"{info.codec}, {info.sample_rate} Hz, {info.channels} ch"


def detect_languages(texts: Sequence[str], tokens: SpecialTokens = DEFAULT_TOKENS) -> Counter:
    """Rows per language code (py3langid) of ``texts``, the DJ tokens left out; blank texts are not counted."""
    return Counter(language for language in text_languages(texts, tokens) if language is not None)


def text_languages(texts: Sequence[str], tokens: SpecialTokens = DEFAULT_TOKENS) -> list[Optional[str]]:
    """The language code of each text, its DJ tokens replaced by spaces; ``None`` for a blank text.

    Each code is ``py3langid.classify(text)[0]`` (py3langid 0.4.0, whose model and text preparation
    this reads), from one compiled walk over all the texts' bytes and the same float32 arithmetic
    per text (:mod:`hf_mmbuilder.kernels.language_id`), not py3langid's walk in Python per text:
    2000 LLaVA texts of 750 characters in 0.04-0.06 s of CPU instead of 0.39-0.45 s. O(bytes + features * classes).

    Example:
        >>> text_languages(["<__dj__image> Where is the train station?", " <__dj__image>", "Où est la gare ?"])
        ['en', None, 'fr']
    """
    from py3langid import langid

    model = _language_model()
    prepared, positions = [], []
    for position, text in enumerate(texts):
        for token in (tokens.image, tokens.audio, tokens.video, tokens.eoc):
            text = text.replace(token, " ")
        if text.strip():
            prepared.append(langid.LanguageIdentifier._encode(text))
            positions.append(position)
    languages: list[Optional[str]] = [None] * len(texts)
    if not prepared:
        return languages
    offsets = np.zeros(len(prepared) + 1, dtype=np.int64)
    np.cumsum([len(data) for data in prepared], out=offsets[1:])
    starts, local, counts, distinct = feature_counts(
        np.frombuffer(b"".join(prepared), dtype=np.uint8), offsets, model.nextmove, model.rows, model.outputs)
    scores = naive_bayes_scores(starts, local, counts, model.feature_scores[distinct].astype(np.float32),
                                model.class_scores, model.alias_pairs, langid.RAW_FLOOR)
    for position, label in zip(positions, scores.argmax(axis=1).tolist()):
        languages[position] = model.classes[label]
    return languages


@dataclasses.dataclass(frozen=True)
class _LanguageModel:
    """py3langid's model as arrays.

    Attributes:
        classes: language code of each class (a code may name two classes: its aliases).
        feature_scores: ``(features, classes)`` ``float16``, as stored.
        class_scores: ``(classes,)`` ``float32`` priors.
        nextmove, rows, outputs: the DFA: 256 transitions per distinct row, each state's row, each
            state's feature (-1: none), ``int32``.
        alias_pairs: ``(k, 2)`` ``int64``: (first, duplicate) class of each label named twice.
    """

    classes: list
    feature_scores: np.ndarray
    class_scores: np.ndarray
    nextmove: np.ndarray
    rows: np.ndarray
    outputs: np.ndarray
    alias_pairs: np.ndarray


# The arrays of py3langid's model file, each kept as an ``.npy`` file of its own in the cache.
_MODEL_ARRAYS = ("classes", "ptc", "pc", "nextmove", "nextmove_row", "out_feat")


@functools.lru_cache(maxsize=1)
def _language_model() -> _LanguageModel:
    """py3langid's model (``py3langid.modelio.load_model`` reads the same arrays), memory-mapped
    from a decompressed copy in the ``datasets`` cache,
    ``<HF_DATASETS_CACHE>/hf_mmbuilder/py3langid-<xxh3 of the model file>/``, which the first
    use writes (all or nothing, by a rename of its folder). Decompressing the 4 MB file into its
    65 MB of arrays takes 0.37 s of CPU in every process, a mapping a few milliseconds; where the
    cache cannot be written, the decompressed arrays are used as they are. Decompressed in one
    call: py3langid's own loader streams the file in 1 MB pieces and takes the GIL back for each
    (688 times), each time waiting up to a switch interval behind any thread running Python."""
    from datasets import config
    from py3langid import langid

    packed = (langid.MODEL_DIR / langid.MODEL_FILE).read_bytes()
    folder = Path(config.HF_DATASETS_CACHE) / "hf_mmbuilder" / f"py3langid-{xxhash.xxh3_128_hexdigest(packed)}"
    if folder.is_dir():
        # Mapped copy-on-write (nothing writes to them): writable arrays, the type the kernels are
        # compiled for, where read-only ones would have them compiled anew (1.5 s).
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False) for name in _MODEL_ARRAYS}
    else:
        with np.load(io.BytesIO(lzma.decompress(packed)), allow_pickle=False) as data:
            arrays = {name: data[name] for name in _MODEL_ARRAYS}
        try:
            _store_arrays(folder, arrays)
        except OSError as error:
            logger.debug("py3langid's model not cached in %s: %s", folder, error)
    return _model_of(arrays)


def _store_arrays(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as ``folder/<name>.npy``, the folder appearing whole or not at all (a
    process writing it at the same time leaves one of the two copies)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        os.replace(staging, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _model_of(arrays: Mapping[str, np.ndarray]) -> _LanguageModel:
    classes = arrays["classes"].tolist()
    first: dict = {}
    aliases = []
    for position, name in enumerate(classes):
        if name in first:
            aliases.append((first[name], position))
        else:
            first[name] = position
    return _LanguageModel(classes, arrays["ptc"], arrays["pc"], arrays["nextmove"], arrays["nextmove_row"],
                          arrays["out_feat"].astype(np.int32, copy=False), np.array(aliases, dtype=np.int64).reshape(-1, 2))


@dataclasses.dataclass(frozen=True)
class Histogram:
    """Exact counts of integer values (``values`` sorted, ``counts`` per value): a per-row measure
    kept in O(distinct values) memory, however many rows there are.

    Example:
        >>> histogram = Histogram.of([np.array([3, 1, 3])])
        >>> histogram.values.tolist(), histogram.counts.tolist(), histogram.summary()["median"]
        ([1, 3], [1, 2], 3.0)
    """

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, parts) -> "Histogram":
        """The histogram of the values of several integer arrays."""
        return cls.merged(np.unique(np.asarray(part), return_counts=True) for part in parts)

    @classmethod
    def merged(cls, pairs) -> "Histogram":
        """The histogram of several ``(values, counts)`` pairs (as ``np.unique(..., return_counts=True)`` gives)."""
        merged: Counter = Counter()
        for values, counts in pairs:
            merged.update(dict(zip(values.tolist(), counts.tolist())))
        keys = sorted(merged)
        return cls(np.asarray(keys, dtype=np.int64), np.asarray([merged[key] for key in keys], dtype=np.int64))

    @classmethod
    def empty(cls) -> "Histogram":
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def plus(self, values: np.ndarray, counts: np.ndarray) -> "Histogram":
        """This histogram with ``counts`` more of each of ``values`` (``np.unique(...,
        return_counts=True)`` of a batch): a pass's running histogram holds its distinct values,
        however many batches it counted.

        Example:
            >>> Histogram.empty().plus(np.array([1, 3]), np.array([1, 2])).plus(np.array([3]), np.array([4])).counts.tolist()
            [1, 6]
        """
        merged, inverse = np.unique(np.concatenate([self.values, np.asarray(values, dtype=np.int64)]), return_inverse=True)
        total = np.zeros(merged.shape[0], dtype=np.int64)
        np.add.at(total, inverse.reshape(-1), np.concatenate([self.counts, np.asarray(counts, dtype=np.int64)]))
        return Histogram(merged, total)

    @property
    def size(self) -> int:
        return int(self.counts.sum())

    def summary(self) -> Optional[dict]:
        """:func:`summarize` of the values the histogram counts, without expanding them (the same
        numbers: integer sums are exact in float64, and the percentile is numpy's linear one)."""
        total = self.size
        if not total:
            return None
        cumulative = np.cumsum(self.counts)

        def order(rank: int) -> float:
            return float(self.values[int(np.searchsorted(cumulative, rank, side="right"))])

        if total % 2:
            median = order(total // 2)
        else:
            median = float(np.mean(np.array([order(total // 2 - 1), order(total // 2)], dtype=np.float64)))
        virtual = (total - 1) * (np.float64(95) / 100)
        below = np.floor(virtual)
        gamma = virtual - below
        low, high = order(int(below)), order(min(int(below) + 1, total - 1))
        p95 = low + (high - low) * gamma if gamma < 0.5 else high - (high - low) * (1 - gamma)
        return {"count": total, "min": float(self.values[0]),
                "mean": float(np.float64(int(np.dot(self.values, self.counts))) / total),
                "median": median, "p95": float(p95), "max": float(self.values[-1])}


class SpilledDigests:
    """Distinct 64-bit digests counted in memory bounded by a batch, not by the digests: each
    batch's distinct digests go to a temporary file (page cache, not the process's memory), and
    :meth:`count` reads it back once per partition of the digest space, each partition small
    enough to sort in a few MB.

    Example:
        >>> spilled = SpilledDigests()
        >>> spilled.add(np.array([5, 7, 5], dtype=np.uint64)); spilled.add(np.array([7, 9], dtype=np.uint64))
        >>> spilled.count()
        3
    """

    PARTITION_DIGESTS = 1 << 18

    def __init__(self):
        # Opened on the first digest (deleted when closed, or when this object is collected).
        self._file = None
        self._written = 0

    def add(self, digests: np.ndarray) -> None:
        """Add ``digests`` (``uint64``, any shape ``(k,)``)."""
        distinct = np.unique(np.asarray(digests, dtype=np.uint64))
        if not len(distinct):
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="hf_mmbuilder-digests-")
        distinct.tofile(self._file)
        self._written += len(distinct)

    def count(self) -> int:
        """The number of distinct digests added. O(written * partitions) reads of the file,
        O(written log written) to sort the partitions."""
        if not self._written:
            return 0
        self._file.flush()
        bits = max(0, math.ceil(math.log2(self._written / self.PARTITION_DIGESTS))) if self._written > self.PARTITION_DIGESTS else 0
        distinct = 0
        for partition in range(1 << bits):
            self._file.seek(0)
            pieces = []
            while len(block := np.fromfile(self._file, dtype=np.uint64, count=self.PARTITION_DIGESTS)):
                pieces.append(block[(block >> np.uint64(64 - bits)) == partition] if bits else block)
            distinct += len(np.unique(np.concatenate(pieces)))
        return distinct


def _media_keys(table: pa.Table, column: str) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """(resolved path, row in table, path as written) of every media item of ``column``."""
    lists = table.column(column).combine_chunks()
    rows = pc.list_parent_indices(lists)
    paths = pc.list_flatten(lists).cast(pa.string())
    roots = pc.take(table.column("media_root").combine_chunks(), rows) if "media_root" in table.column_names and len(paths) else None
    return resolve_media_paths(paths, roots), rows.to_numpy(zero_copy_only=False), paths


class CardStatistics:
    """The card's statistics, accumulated batch by batch in the pass that writes the shards.

    Per-row measures (text length, turns, images per row) are kept as :class:`Histogram`\\ s, the
    language sample as the few texts it picks, and media files as the distinct files found (told
    apart by the 128-bit digest of their resolved path, found with array operations per batch;
    embedded images measured from their bytes' headers as they are found, files on disk kept by
    path, to be measured once): memory grows with distinct values and files, not with rows. ``split_rows``: split name -> rows,
    in the order the splits are fed (it fixes the evenly spaced language sample).
    """

    def __init__(self, split_rows: Mapping[str, int], tokens: SpecialTokens = DEFAULT_TOKENS,
                 language_sample: int = LANGUAGE_SAMPLE_ROWS):
        self.tokens = tokens
        self.split_rows = dict(split_rows)
        total_rows = sum(self.split_rows.values())
        # An evenly spaced sample over all splits, taken without materialising every text.
        step = max(1, total_rows // max(1, language_sample))
        self._picks, rows_before, picked = {}, 0, 0
        for name, rows in self.split_rows.items():
            first = (-rows_before) % step
            picks = np.arange(first, rows, step, dtype=np.int64)[: max(0, language_sample - picked)]
            self._picks[name] = picks
            picked += len(picks)
            rows_before += rows
        self._per_split = {name: {"rows": rows, **{key: 0 for column in MEDIA_COLUMNS for key in (column, f"rows_with_{column}")}}
                           for name, rows in self.split_rows.items()}
        self._text_lengths, self._turns, self._images_per_row = Histogram.empty(), Histogram.empty(), Histogram.empty()
        self._sample: list = []
        # The 16-byte digests of the resolved paths of the files found so far, and the files in the
        # order first found, batch by batch.
        self._seen: dict[str, set] = {column: set() for column in MEDIA_COLUMNS}
        self._found: dict[str, list[_FoundFiles]] = {column: [] for column in MEDIA_COLUMNS}
        self._absent = {column: SpilledDigests() for column in MEDIA_COLUMNS}
        self._listings: dict = {}

    def add(self, split: str, batch: pa.Table, offset: int, embedded: Optional[pa.Table] = None) -> None:
        """Count the rows ``offset .. offset + len(batch)`` of ``split``. ``batch`` holds the
        split's ``text``, ``roles``, media and ``media_root`` columns that exist (more are ignored);
        ``embedded``: the same rows as written, their embedded media columns holding each file's
        ``{"bytes", "path"}`` (images are measured from those bytes)."""

        rows = batch.num_rows
        counts = self._per_split[split]
        names = batch.column_names
        text = pc.fill_null(batch.column("text"), "") if "text" in names else pa.chunked_array([pa.array([""] * rows)])
        lengths = pc.utf8_length(text).to_numpy()
        self._text_lengths = self._text_lengths.plus(*np.unique(lengths, return_counts=True))
        if "roles" in names:
            self._turns = self._turns.plus(*np.unique(pc.fill_null(pc.list_value_length(batch.column("roles")), 0).to_numpy(), return_counts=True))
        else:
            chunk_counts = pc.fill_null(pc.count_substring(text, self.tokens.eoc), 0).to_numpy()
            ends_with_eoc = pc.fill_null(pc.ends_with(text, self.tokens.eoc), False).to_numpy()
            self._turns = self._turns.plus(*np.unique(chunk_counts + (~ends_with_eoc).astype(np.int64), return_counts=True))
        picks = self._picks[split]
        inside = picks[(picks >= offset) & (picks < offset + rows)] - offset
        if len(inside):
            self._sample.extend(value for value in pc.take(batch.column("text"), pa.array(inside)).to_pylist() if value)
        for column in MEDIA_COLUMNS:
            if column not in names:
                if column == "images" and rows:
                    self._images_per_row = self._images_per_row.plus(np.zeros(1, np.int64), np.asarray([rows]))
                continue
            media_lengths = pc.fill_null(pc.list_value_length(batch.column(column)), 0).to_numpy()
            counts[column] += int(media_lengths.sum())
            counts[f"rows_with_{column}"] += int((media_lengths > 0).sum())
            if column == "images":
                self._images_per_row = self._images_per_row.plus(*np.unique(media_lengths, return_counts=True))
            if not media_lengths.any():
                continue
            resolved, item_rows, written = _media_keys(batch.select([name for name in (column, "media_root") if name in names]), column)
            contents = None
            if embedded is not None and column in embedded.column_names:
                # Embedding read every file (it refuses missing ones): no lookup on disk, and an
                # image is measured from the header of the bytes embedded, not opened again.
                contents = pc.struct_field(pc.list_flatten(embedded.column(column)), "bytes")
                present = np.ones(len(resolved), dtype=bool)
            else:
                present = locate_media(resolved, listings=self._listings).is_file
            buffers = string_buffers(resolved)
            digests = digests128(buffers.data, buffers.offsets)
            new = self._new_files(column, digests, present)
            if len(new):
                rows_found = offset + item_rows[new]
                if contents is not None and column == "images":
                    # Measured here: no path is needed later.
                    sizes = _embedded_sizes(contents, new, split, rows_found, resolved, written)
                    self._found[column].append(_FoundFiles(split, rows_found, None, None, sizes))
                else:
                    self._found[column].append(_FoundFiles(split, rows_found, resolved.take(new), written.take(new)))
            absent = np.flatnonzero(~present)
            if len(absent):
                self._absent[column].add(digests[absent, 0])

    def _new_files(self, column: str, digests: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Positions of the present files of ``digests`` (``(n, 2)`` ``uint64``, one per media item)
        not seen in an earlier batch, the first item of each, in order; marks them seen.
        O(n log n) for the batch, plus set look-ups in C (O(1) each)."""
        positions = np.flatnonzero(present)
        firsts = positions[first_occurrence_labels(digests[positions]) == np.arange(len(positions))]
        keys = np.ascontiguousarray(digests[firsts]).view("V16").ravel().tolist()
        seen = self._seen[column]
        known = np.fromiter(map(seen.__contains__, keys), dtype=bool, count=len(keys))
        seen.update(keys)
        return firsts[~known]

    def _absent_files(self, column: str) -> int:
        """Distinct files absent from disk, told apart by 64 bits of their path's digest (two
        paths share 64 bits with odds of 1 in 1e7 among two million files), spilled to a temporary
        file batch by batch: 8 bytes per file on disk, not in memory."""
        return self._absent[column].count()

    @property
    def sample_positions(self) -> dict[str, np.ndarray]:
        """Split -> positions (in the split) of the rows of the language sample, in order."""
        return dict(self._picks)

    def result(self, languages: Optional[Counter] = None) -> dict:
        """The statistics (see :func:`collect_statistics`); measures each file on disk once.
        ``languages``: :func:`detect_languages` of the sample's texts when the caller ran it
        already (publish detects them from the sample it reads before the pass)."""
        from PIL import Image

        widths, heights = [], []
        for found in self._found["images"]:
            if found.sizes is not None:
                widths.append(found.sizes[:, 0])
                heights.append(found.sizes[:, 1])
                continue
            sizes = []
            for split, row, path, resolved in found.files():
                try:
                    with Image.open(resolved) as image:
                        sizes.append(image.size)
                except (OSError, Image.DecompressionBombError) as error:
                    raise ValueError(f"split {split!r} row {row}: image {path!r} ({resolved}) cannot be read: {error}") from error
            sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
            widths.append(sizes[:, 0])
            heights.append(sizes[:, 1])
        widths = np.concatenate(widths) if widths else np.asarray([])
        heights = np.concatenate(heights) if heights else np.asarray([])
        durations, formats = {}, {}
        for column in ("audios", "videos"):
            infos, unmeasured = [], self._absent_files(column)
            for found in self._found[column]:
                for split, row, path, resolved in found.files():
                    try:
                        infos.append(probe_media(resolved))
                    except MediaDecodeError as error:
                        raise ValueError(f"split {split!r} row {row}: {column[:-1]} {path!r} ({resolved}) cannot be read: {error.reason}") from error
            seconds = np.asarray([info.duration for info in infos])
            durations[column] = {"summary": summarize(seconds), "unmeasured": unmeasured, "values": seconds}
            counted = Counter(media_format(info) for info in infos)
            formats[column] = dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))

        text_length, turn_counts, image_counts = self._text_lengths, self._turns, self._images_per_row
        languages = detect_languages(self._sample, self.tokens) if languages is None else languages
        return {
            "splits": self._per_split,
            "rows": text_length.size,
            "text_length": text_length.summary(),
            "turns": turn_counts.summary(),
            "images_per_row": {int(k): int(v) for k, v in zip(image_counts.values, image_counts.counts)},
            "image_files": len(widths),
            "image_unmeasured": self._absent_files("images"),
            "image_width": summarize(widths),
            "image_height": summarize(heights),
            "audio_duration": durations["audios"]["summary"],
            "audio_unmeasured": durations["audios"]["unmeasured"],
            "video_duration": durations["videos"]["summary"],
            "video_unmeasured": durations["videos"]["unmeasured"],
            "media_formats": formats,
            "languages": dict(sorted(languages.items(), key=lambda item: (-item[1], item[0]))),
            "language_sample_rows": len(self._sample),
            "values": {
                "text_length": text_length, "turns": turn_counts, "images_per_row": image_counts,
                "image_width": widths, "image_height": heights,
                "audio_duration": durations["audios"]["values"], "video_duration": durations["videos"]["values"],
            },
        }


@dataclasses.dataclass
class _FoundFiles:
    """Files of one column first found in one batch, in order: their split, rows (in the split),
    resolved paths and paths as written, or instead ``sizes`` (``(k, 2)`` ``int64`` width, height)
    when measured from their embedded bytes (nothing is left to measure or name then)."""

    split: str
    rows: np.ndarray
    resolved: Optional[pa.Array]
    written: Optional[pa.Array]
    sizes: Optional[np.ndarray] = None

    def files(self):
        """``(split, row, path as written, resolved path)`` of each file."""
        return zip(itertools.repeat(self.split), self.rows.tolist(), self.written.to_pylist(), self.resolved.to_pylist())


def _embedded_sizes(contents: pa.ChunkedArray, positions: np.ndarray, split: str, rows: np.ndarray,
                    resolved: pa.Array, written: pa.Array) -> np.ndarray:
    """``(k, 2)`` width, height of the images at ``positions`` of ``contents`` (a ``binary`` /
    ``large_binary`` chunked array without nulls: the embedded bytes), read from their headers in
    the chunks' own buffers (copying them would copy every byte embedded, 2 GB over a publish).
    Those the header kernel cannot vouch for are measured one by one, in order, and the first
    unreadable one raises ``ValueError`` naming it: its ``split``, row (``rows``: the row in the
    split of each of ``positions``) and path (``resolved``, ``written``: of every item)."""
    sizes = np.empty((len(positions), 2), dtype=np.int64)
    chunk_starts = np.cumsum([0, *(len(chunk) for chunk in contents.chunks)])
    chunk_of = np.searchsorted(chunk_starts, positions, side="right") - 1
    # Chunk by chunk, so the images measured one by one are measured in the order of positions.
    for index, chunk in enumerate(contents.chunks):
        mine = np.flatnonzero(chunk_of == index)
        if not len(mine):
            continue
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64 if pa.types.is_large_binary(chunk.type) else np.int32)[chunk.offset:]
        data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
        local = positions[mine] - chunk_starts[index]
        starts, ends = offsets[local].astype(np.int64), offsets[local + 1].astype(np.int64)
        sizes[mine] = image_sizes(data, starts, ends)
        for within in np.flatnonzero(sizes[mine, 0] < 0).tolist():
            item = int(mine[within])
            position = int(positions[item])
            where = (split, int(rows[item]), written[position].as_py())
            sizes[item] = _measured_image(data[starts[within]:ends[within]], where, resolved[position].as_py())
    return sizes


def _measured_image(data, where: tuple, resolved: str) -> tuple[int, int]:
    """``(width, height)`` from an image's bytes; ``where``: its (split, row, path as written)."""
    from PIL import Image

    try:
        return image_size(data)
    except (OSError, Image.DecompressionBombError) as error:
        split, row, path = where
        raise ValueError(f"split {split!r} row {row}: image {path!r} ({resolved}) cannot be read: {error}") from error


STATISTICS_COLUMNS = ("text", *MEDIA_COLUMNS, "roles", "media_root")


def collect_statistics(splits: Mapping[str, object], tokens: SpecialTokens = DEFAULT_TOKENS,
                       language_sample: int = LANGUAGE_SAMPLE_ROWS, batch_size: int = 65_536) -> dict:
    """Measure the splits of a dataset for its card (what :class:`CardStatistics` accumulates
    while publish writes the shards, here in a pass of its own).

    ``splits``: split name -> ``datasets.Dataset`` in DJ shape, media as path lists (relative paths
    resolved against ``media_root``). Returns a dict: ``splits`` (per split: rows and media
    counts), ``text_length`` (characters), ``turns`` (length of ``roles`` when present, else
    ``<|__dj__eoc|>`` chunks), ``images_per_row``, ``image_width``/``image_height`` (pixels, each
    distinct file once; files absent when publishing by path are counted in ``image_unmeasured``), ``audio_duration``/``video_duration`` (seconds, any container FFmpeg
    reads, through :func:`~hf_mmbuilder.probe.probe_media`), ``media_formats`` (per media column:
    :func:`media_format` line -> files), ``languages`` (py3langid
    on an evenly spaced sample of ``language_sample`` rows), and ``values`` (:class:`Histogram`\\ s
    of the per-row measures and the arrays of file measures, for plots). Summaries are
    :func:`summarize` dicts. O(rows) vectorised, memory O(distinct values + media files); image
    files are opened for their header only. An unreadable media file raises ``ValueError`` naming it.

    Example:
        >>> from datasets import Dataset
        >>> stats = collect_statistics({"train": Dataset.from_dict({"text": ["hello"], "images": [[]]})})
        >>> stats["splits"]["train"]["rows"], stats["text_length"]["mean"]
        (1, 5.0)
    """
    statistics = CardStatistics({name: len(part) for name, part in splits.items()}, tokens, language_sample)
    for name, part in splits.items():
        present = [column for column in STATISTICS_COLUMNS if column in part.column_names]
        for offset, batch in iter_tables(part, batch_size, present):
            statistics.add(name, batch, offset)
    return statistics.result()


def _png(canvas) -> bytes:
    """The canvas drawn as PNG bytes at the figure's own dpi (``PLOT_DPI``; not ``savefig.dpi``)."""
    buffer = io.BytesIO()
    # No Software/date metadata: the same data must give the same bytes, so re-publishing is a no-op.
    canvas.print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def _shown_tick_labels(axis) -> list:
    """The major tick labels ``axis`` draws: its locator also gives a tick past each end of the view,
    labelled but not drawn (the same closeness test as matplotlib's)."""
    low, high = sorted(axis.get_view_interval())
    slack = (high - low) * 1e-10
    coordinate = 0 if axis.axis_name == "x" else 1
    return [label for label in axis.get_ticklabels() if low - slack <= label.get_position()[coordinate] <= high + slack]


class _PlotCanvas:
    """The card's plots drawn one after another on one Agg figure and axes.

    Making an Axes and its ticks costs about as much as drawing a plot (15-20 ms), so one axes
    serves every plot of a :func:`render_plots` call: each plot resizes the figure, removes the
    artist of the plot before, puts the scales (default locators and formatters) and data limits
    back, and sets its own texts, so a PNG does not depend on the plots drawn before it. The margins
    are tight_layout's (the same border, the texts just clear of the edges) but measured from the
    few texts outside the axes (title, tick labels, axis labels) rather than from a draw of the
    whole figure of its own, and the title and axis labels are placed once, not searched for at
    each draw.
    """

    TIGHT_PAD = 1.08  # tight_layout's border, in font sizes

    def __init__(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(dpi=PLOT_DPI)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0, 0, 1, 1))
        self._drawn = None

    def png(self, size: tuple[float, float], title: str, xlabel: str, ylabel: str, draw) -> bytes:
        """PNG bytes of ``draw(axes)`` in a figure of ``size`` inches with these texts. ``draw``
        adds the plot's one artist or container and returns it (the next plot removes it)."""
        axes = self.axes
        if self._drawn is not None:
            self._drawn.remove()
            axes.relim()
        self.figure.set_size_inches(size)
        axes.set_xscale("linear")
        axes.set_yscale("linear")
        self._drawn = draw(axes)
        # y given, the draw does not search for what the title must clear: nothing is above the
        # axes but the y axis' offset text ("1e6"), at its left end.
        axes.set_title(title, y=1.0)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        self._lay_out()
        return _png(self.canvas)

    def _lay_out(self) -> None:
        """Place the axes so that the texts around it clear the figure's edges by tight_layout's
        border, and pin the axis labels where the draw would put them."""
        import matplotlib

        figure, axes = self.figure, self.axes
        renderer = self.canvas.get_renderer()
        scale = figure.dpi / 72
        border = self.TIGHT_PAD * matplotlib.rcParams["font.size"] * scale
        width, height = figure.bbox.width, figure.bbox.height

        def x_ends():
            # The x tick labels share one height: the outermost two give the depth and the overhangs.
            labels = _shown_tick_labels(axes.xaxis)
            return [label.get_window_extent(renderer) for label in labels[:1] + labels[-1:]]

        # Heights first (from the full figure, whatever the plot before left): the y axis picks its
        # ticks by its length, the x axis by its width.
        axes.set_position((0, 0, 1, 1))
        frame = axes.bbox  # follows the axes' position
        x_ticks_below = frame.y0 - min((box.y0 for box in x_ends()), default=frame.y0)
        bottom = (x_ticks_below + axes.xaxis.labelpad * scale + axes.xaxis.label.get_window_extent(renderer).height
                  + border) / height
        top = (axes.title.get_window_extent(renderer).y1 - frame.y1 + border) / height
        axes.set_position((0, bottom, 1, 1 - bottom - top))
        y_ticks_left = frame.x0 - min((label.get_window_extent(renderer).x0 for label in _shown_tick_labels(axes.yaxis)),
                                      default=frame.x0)
        y_label_left = y_ticks_left + axes.yaxis.labelpad * scale
        left = (y_label_left + axes.yaxis.label.get_window_extent(renderer).width + border) / width
        right = border / width
        # Then the x tick labels past the ends of the axis, at the width they are picked for.
        for _ in range(3):
            axes.set_position((left, bottom, 1 - left - right, 1 - bottom - top))
            ends = x_ends()
            overhang_left = (frame.x0 - min((box.x0 for box in ends), default=frame.x0) + border) / width
            overhang_right = (max((box.x1 for box in ends), default=frame.x1) - frame.x1 + border) / width
            if overhang_left <= left and overhang_right <= right:
                break
            left, right = max(left, overhang_left), max(right, overhang_right)
        else:
            axes.set_position((left, bottom, 1 - left - right, 1 - bottom - top))
        axes.xaxis.set_label_coords(0.5, -(x_ticks_below + axes.xaxis.labelpad * scale) / frame.height)
        axes.yaxis.set_label_coords(-y_label_left / frame.width, 0.5)


def _capped_repeats(widths: np.ndarray, heights: np.ndarray, repeats: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """The points ``(widths[i], heights[i])`` with each distinct point kept at its first ``repeats``
    occurrences, in their order.

    The image-size scatter draws every file as a marker of one colour and alpha: each marker
    drawn over a pixel moves its 8-bit channels towards that colour by at least one level or not
    at all, so after 255 markers on one spot more change no byte; a million 640x480 files are
    drawn as 255 markers. ``widths``, ``heights``: ``(n,)`` integers; O(n log n).

    Example:
        >>> _capped_repeats(np.array([640, 640, 320, 640]), np.array([480, 480, 240, 480]), repeats=2)
        (array([640, 640, 320]), array([480, 480, 240]))
    """
    points = (np.asarray(widths, dtype=np.int64) << 32) | np.asarray(heights, dtype=np.int64)
    _, group = np.unique(points, return_inverse=True)
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group)
    rank = np.empty(len(points), dtype=np.int64)
    rank[order] = np.arange(len(points)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    keep = rank < repeats
    return widths[keep], heights[keep]


def warm_up() -> None:
    """Load what the card's last steps need (py3langid's model, matplotlib and its Agg canvas):
    seconds of fixed cost, which :func:`~hf_mmbuilder.publishing.publish` pays on a thread while
    it splits and writes instead of after."""
    text_languages(["warm up"])
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def render_plots(stats: dict) -> dict[str, bytes]:
    """PNG plots of the statistics: file name -> PNG bytes (deterministic for the same data).

    Draws the text-length and turns histograms, images per row, image width x height, and the
    audio/video duration histograms when there are such files. Each histogram is one filled step
    patch of up to 50 bins (``np.histogram`` of the values, weighted by their counts for a
    :class:`Histogram`); the time is matplotlib's drawing, O(bins + image files).

    Example:
        >>> from datasets import Dataset
        >>> plots = render_plots(collect_statistics({"train": Dataset.from_dict({"text": ["a b"]})}))
        >>> sorted(plots)
        ['text_length.png', 'turns.png']
    """
    from matplotlib.ticker import FixedFormatter, FixedLocator

    values = stats["values"]
    canvas = _PlotCanvas()
    plots = {}

    def histogram(data):
        data, weights = (data.values, data.counts) if isinstance(data, Histogram) else (np.asarray(data), None)
        # The bins Axes.hist would choose: up to 50 over the values' range, NaNs left out.
        counts, edges = np.histogram(data, bins=min(50, max(1, len(np.unique(data)))),
                                     range=(np.nanmin(data), np.nanmax(data)), weights=weights)
        return lambda axes: axes.stairs(counts, edges, fill=True, color="#4C72B0")

    def bars(counts: dict):
        def draw(axes):
            positions = range(len(counts))
            # One labelled tick per bar, as a categorical axis of the counts would place them.
            axes.xaxis.set_major_locator(FixedLocator(positions))
            axes.xaxis.set_major_formatter(FixedFormatter([str(key) for key in counts]))
            return axes.bar(positions, list(counts.values()), color="#55A868")
        return draw

    wide = (6, 3.2)
    if values["text_length"].size:
        plots["text_length.png"] = canvas.png(wide, "Text length per row", "characters", "count", histogram(values["text_length"]))
        plots["turns.png"] = canvas.png(wide, "Turns per row", "turns", "count", histogram(values["turns"]))
    if values["images_per_row"].size and values["images_per_row"].values.any():
        plots["images_per_row.png"] = canvas.png(wide, "Images per row", "images", "rows", bars(stats["images_per_row"]))
    if values["image_width"].size:
        widths, heights = _capped_repeats(values["image_width"], values["image_height"])
        plots["image_sizes.png"] = canvas.png((4.5, 4), "Image sizes", "width (px)", "height (px)",
                                              lambda axes: axes.scatter(widths, heights, s=8, alpha=0.6, color="#C44E52"))
    for column in ("audio", "video"):
        if values[f"{column}_duration"].size:
            plots[f"{column}_duration.png"] = canvas.png(wide, f"{column.capitalize()} duration", "seconds", "count",
                                                         histogram(values[f"{column}_duration"]))
    return plots


def card_metadata(stats: dict, spec: CardSpec, features, split_sizes: Mapping[str, Mapping[str, tuple[int, int, int]]],
                  configs: Mapping[str, Mapping[str, str]], json_columns: Sequence[str] = (),
                  dropped_columns: Sequence[str] = ()):
    """The card's YAML metadata as ``huggingface_hub.DatasetCardData``.

    ``json_columns`` (published as JSON text) and ``dropped_columns`` (empty in every row, left
    out) are recorded under the ``hf_mmbuilder`` key when there are any.

    ``features``: the published ``datasets.Features``; ``split_sizes``: config -> split -> (rows,
    in-memory Arrow bytes, Parquet shard bytes); ``configs``: config name -> {split: data_files glob}.
    The sizes mean what ``datasets`` means: a split's ``num_bytes`` and a config's ``dataset_size``
    are Arrow bytes, its ``download_size`` the Parquet bytes to download.

    Example:
        >>> from datasets import Features, Value  # doctest: +SKIP
        >>> card_metadata(stats, CardSpec(license="mit"), Features({"text": Value("string")}),
        ...               {"default": {"train": (2, 40, 10)}}, {"default": {"train": "data/train-*"}}).license  # doctest: +SKIP
        'mit'
    """
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    media_present = [column for column in MEDIA_COLUMNS if any(split[column] for split in stats["splits"].values())]
    language = list(spec.language) if spec.language is not None else [
        code for code, rows in stats["languages"].items() if rows >= max(1, 0.01 * stats["language_sample_rows"])]
    task_categories = list(spec.task_categories) if spec.task_categories is not None else (
        [TASKS_BY_MEDIA[column] for column in media_present] or ["text-generation"])
    tags = list(dict.fromkeys([*spec.tags, "multimodal", "hf_mmbuilder", "data-juicer-format"]))
    fields = {
        "pretty_name": spec.pretty_name,
        "license": spec.license,
        "language": language or None,
        "task_categories": task_categories,
        "size_categories": [size_category(stats["rows"])],
        "source_datasets": list(spec.source_datasets) or None,
        "annotations_creators": list(spec.annotations_creators) or None,
        "tags": tags,
        METADATA_KEY: {key: list(value) for key, value in (("json_text_columns", json_columns),
                                                           ("empty_columns_left_out", dropped_columns)) if value} or None,
    }
    card_data = DatasetCardData(**{key: value for key, value in fields.items() if value is not None})
    infos = {}
    for name in configs:
        splits = SplitDict()
        for split, (rows, num_bytes, _) in split_sizes[name].items():
            splits.add(SplitInfo(name=split, num_bytes=num_bytes, num_examples=rows))
        infos[name] = DatasetInfo(features=features, splits=splits,
                                  download_size=sum(parquet for _, _, parquet in split_sizes[name].values()),
                                  dataset_size=sum(arrow for _, arrow, _ in split_sizes[name].values()))
    DatasetInfosDict(infos).to_dataset_card_data(card_data)
    MetadataConfigs({
        name: {"data_files": [{"split": split, "path": pattern} for split, pattern in patterns.items()],
               **({"default": True} if name == "default" else {})}
        for name, patterns in configs.items()
    }).to_dataset_card_data(card_data)
    return card_data


def history_rows(history: Sequence) -> tuple[list[dict], list[str]]:
    """Processing steps as table rows, plus the Markdown details of steps that carry a report.

    A step is a dict (``step``, ``method``, ``rows_before``, ``removed``) or a dedup report
    (``hf_mmbuilder.dedup(..., return_report=True)``), whose counts and Markdown are used.

    Example:
        >>> history_rows([{"step": "filter", "method": "text length", "rows_before": 10, "removed": 2}])[0][0]["removed"]
        2
    """
    rows, details = [], []
    for index, step in enumerate(history):
        if isinstance(step, Mapping):
            rows.append(dict(step))
        elif all(hasattr(step, name) for name in ("method", "num_rows", "num_removed", "to_markdown")):
            rows.append({"step": "dedup", "method": step.method, "rows_before": step.num_rows, "removed": step.num_removed})
            details.append(step.to_markdown())
        else:
            raise ValueError(f"card history step {index}: expected a dict or a dedup report, got {type(step).__name__}")
    return rows, details


def _feature_rows(features) -> list[dict]:
    descriptions = {
        "text": "DJ text: media placeholders mark where each media item goes; chunks end with the EOC token",
        "images": "images, in the order of the image tokens in `text`",
        "audios": "audio clips, in the order of the audio tokens in `text`",
        "videos": "videos, in the order of the video tokens in `text`",
        "cluster_id": "near-duplicate cluster (smallest row id of the cluster before splitting)",
    }
    return [{"name": name, "type": re.sub(r"\((?:mode|sampling_rate|decode)=[^()]*\)", "()", repr(feature)).replace("|", "\\|"),
             "description": descriptions.get(name, "")}
            for name, feature in features.items()]


def build_card(*, stats: dict, spec: CardSpec, features, split_sizes, configs, split_table: str,
               plots: Mapping[str, bytes], plot_folder: str = "assets", repo_id: Optional[str] = None,
               tokens: SpecialTokens = DEFAULT_TOKENS, embed_media: bool = True, split_method: str = "",
               json_columns: Sequence[str] = (), dropped_columns: Sequence[str] = ()):
    """Render the whole card: returns a ``huggingface_hub.DatasetCard`` (``str(card)`` is README.md).

    The body is rendered from ``spec.template`` (a Jinja file) or the package's template, with
    the context: ``name``, ``repo_id``, ``spec``, ``sections`` (the user's text per section),
    ``stats``, ``features`` (rows of name/type/description), ``tokens``, ``split_table``,
    ``plots`` (title, path), ``sources``, ``history`` (rows), ``history_details`` (Markdown of
    dedup reports), ``split_method``, ``embed_media``, ``json_columns`` (columns published as JSON
    text), ``dropped_columns`` (columns left out because they are empty in every row), ``metadata``.

    Example:
        >>> card = build_card(stats=stats, spec=CardSpec(), ...)  # doctest: +SKIP
        >>> card.data.size_categories  # doctest: +SKIP
        ['n<1K']
    """
    from huggingface_hub import DatasetCard

    history, history_details = history_rows(spec.history)
    metadata = card_metadata(stats, spec, features, split_sizes, configs, json_columns, dropped_columns)
    name = spec.pretty_name or (repo_id.split("/")[-1] if repo_id else "Multimodal instruction dataset")
    template_text = Path(spec.template).read_text(encoding="utf-8") if spec.template else TEMPLATE_PATH.read_text(encoding="utf-8")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    environment.filters["num"] = lambda value, digits=2: "n/a" if value is None else (
        f"{int(value):,}" if float(value).is_integer() else f"{value:,.{digits}f}")
    try:
        body = environment.from_string(template_text).render(
            name=name, repo_id=repo_id, spec=spec, sections={key: spec.sections.get(key) for key in SECTION_NAMES}, stats=stats,
            features=_feature_rows(features), tokens=tokens, split_table=split_table,
            plots=[(PLOT_TITLES[file], f"{plot_folder}/{file}") for file in plots],
            sources=list(spec.sources), history=history, history_details=history_details, split_method=split_method,
            embed_media=embed_media, json_columns=list(json_columns), dropped_columns=list(dropped_columns),
            metadata=metadata,
        )
    except jinja2.TemplateError as error:
        raise ValueError(f"card template {spec.template or TEMPLATE_PATH}: {error}") from error
    header = yaml.safe_dump(metadata.to_dict(), sort_keys=False, allow_unicode=True)
    return DatasetCard(f"---\n{header}---\n\n{body}")


def sources_from_files(splits: Mapping[str, object], info=None, batch_size: int = 262_144) -> list[dict]:
    """Sources derived from the ``source_file`` column the loaders write: file name and rows.

    Only the file name is kept (the folder is the builder's machine layout); the format is the
    loader's ``builder_name`` when known. Empty when there is no ``source_file`` column.
    ``splits``: split name -> ``datasets.Dataset``, or any object with ``column_names`` and
    ``batches(columns, batch_size)`` (publish's splits); counted in Arrow, a batch at a time.

    Example:
        >>> from datasets import Dataset
        >>> sources_from_files({"train": Dataset.from_dict({"source_file": ["/d/a.json", "/d/a.json"]})})
        [{'name': 'a.json', 'format': '', 'rows': 2}]
    """
    counts: Counter = Counter()
    for part in splits.values():
        if "source_file" not in part.column_names:
            continue
        batches = part.batches(["source_file"], batch_size) if hasattr(part, "batches") else iter_tables(part, batch_size, ["source_file"])
        for _, batch in batches:
            for entry in pc.value_counts(batch.column("source_file")).to_pylist():
                counts[entry["values"]] += entry["counts"]
    builder = getattr(info, "builder_name", None) or ""
    return [{"name": os.path.basename(str(path)), "format": builder, "rows": rows}
            for path, rows in sorted(counts.items(), key=lambda item: str(item[0])) if path is not None]
