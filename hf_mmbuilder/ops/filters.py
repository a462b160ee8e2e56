"""Quality filters with a recorded reason per dropped row: text length, alignment, image size and
aspect ratio, language, repeated word n-grams.

:class:`QualityFilter` is a batched ``.map`` op writing the ``__dj__filter__`` column (empty string =
keep, else every failed check with its measured value); :func:`apply_filters` runs it and splits the
dataset into kept rows and dropped rows with their reasons, so nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import DEFAULT_TOKENS, SpecialTokens
from ._batch import STATS_COLUMN, column, media_counts, num_rows, output, text_column
from .quality_score import Q_FIELD, QUALITY_DIMENSIONS
from .stats import ComputeStats

FILTER_COLUMN = "__dj__filter__"

_TEXT_FIELDS = ("text_len", "aligned", "lang", "lang_score", "word_rep_ratio", "num_images", "num_audios", "num_videos")
_MEDIA_FIELDS = ("image_width", "image_height", "media_errors")


@dataclasses.dataclass(frozen=True)
class QualityFilter:
    """Batched ``.map`` op that records why a row fails the quality checks (``""`` when it passes).

    Reads ``__dj__stats__`` when the batch has it (run :class:`ComputeStats` first to share the
    work and the cache), otherwise computes the statistics it needs. A check whose threshold is
    ``None`` is off.

    Parameters
    ----------
    min_text_len, max_text_len : int, optional
        Bounds on ``text`` length in characters.
    require_aligned : bool
        Drop rows whose media-token counts differ from their media lists.
    min_image_width, min_image_height : int, optional
        Every image of the row must be at least this large (pixels, read from the header).
    max_aspect_ratio : float, optional
        Every image's ``max(w, h) / min(w, h)`` must not exceed this.
    drop_unreadable_media : bool
        Drop rows with a media file that cannot be read (when the stats carry media fields:
        computed with ``ComputeStats(media=True)`` or because an image check is on).
    languages : sequence of str, optional
        Allowed language codes (see ``hf_mmbuilder.kernels.text_stats.LANGUAGES``).
    min_lang_score : float
        Minimum detector confidence for the language check.
    max_word_rep_ratio : float, optional
        Maximum share of repeated word n-grams (Data-Juicer's word repetition filter).
    min_quality : float, optional
        Minimum mean of the per-dimension scores of :func:`quality_dimensions` (0..1).
    min_q : float, optional
        Minimum of the guide's quality score ``Q`` (the stats' ``Q`` field written by
        :class:`hf_mmbuilder.ops.InstructionQualityScore`, 0..1); a row without ``Q`` fails,
        naming the dimension that was not measured.
    min_image_text_similarity, max_image_text_similarity : float, optional
        Bounds on the CLIP scores of :class:`hf_mmbuilder.ops.ImageTextSimilarity` (run it
        first): Data-Juicer's ``image_text_similarity_filter`` ``min_score`` / ``max_score``. A
        row without scores (no image) passes, as in Data-Juicer.
    any_or_all : {"any", "all"}
        The similarity check passes when any chunk's score is within the bounds, or all are.
    ngram : int
        n-gram length for the repetition check when statistics are computed here.

    Notes
    -----
    Vectorised over the batch (NumPy/Arrow); reason strings are built for failing rows only.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["hi", "<__dj__image> a long enough text"],
        ...                         "images": [[], []]})
        >>> list(ds.map(QualityFilter(min_text_len=5), batched=True)[FILTER_COLUMN])
        ['text_len 2 < 5', 'misaligned (images tokens != paths)']
    """

    min_text_len: Optional[int] = None
    max_text_len: Optional[int] = None
    require_aligned: bool = True
    min_image_width: Optional[int] = None
    min_image_height: Optional[int] = None
    max_aspect_ratio: Optional[float] = None
    drop_unreadable_media: bool = True
    languages: Optional[Sequence[str]] = None
    min_lang_score: float = 0.0
    max_word_rep_ratio: Optional[float] = None
    min_quality: Optional[float] = None
    min_q: Optional[float] = None
    min_image_text_similarity: Optional[float] = None
    max_image_text_similarity: Optional[float] = None
    any_or_all: str = "any"
    ngram: int = 10
    media_root: Optional[str] = None
    tokens: SpecialTokens = DEFAULT_TOKENS

    def __post_init__(self):
        if self.any_or_all not in ("any", "all"):
            raise ValueError(f"any_or_all must be 'any' or 'all', got {self.any_or_all!r}")
        if self.languages is not None:
            object.__setattr__(self, "languages", tuple(self.languages))

    @property
    def checks_images(self) -> bool:
        """Whether any check needs image headers.

        Example:
            >>> QualityFilter(max_aspect_ratio=3).checks_images, QualityFilter().checks_images
            (True, False)
        """
        return any(value is not None for value in (self.min_image_width, self.min_image_height, self.max_aspect_ratio))

    def _stats(self, batch) -> pa.StructArray:
        stats = column(batch, STATS_COLUMN)
        needed = _TEXT_FIELDS + (_MEDIA_FIELDS if self.checks_images else ())
        if stats is not None and pa.types.is_struct(stats.type) and all(stats.type.get_field_index(name) >= 0 for name in needed):
            return stats
        computed = ComputeStats(media=self.checks_images, media_root=self.media_root, ngram=self.ngram, tokens=self.tokens)
        # The stats already there (a quality score's Q) are kept beside the computed ones.
        table = pa.table({key: column(batch, key) for key in ("text", "images", "audios", "videos", "media_root", STATS_COLUMN) if column(batch, key) is not None})
        return computed(table).column(STATS_COLUMN).combine_chunks()

    def __call__(self, batch) -> dict:
        n = num_rows(batch)
        stats = self._stats(batch)
        field = lambda name: stats.field(name)  # noqa: E731
        failures: list[tuple[np.ndarray, callable]] = []
        text_len = field("text_len").to_numpy(zero_copy_only=False)
        if self.min_text_len is not None:
            failures.append((text_len < self.min_text_len, lambda row: f"text_len {text_len[row]} < {self.min_text_len}"))
        if self.max_text_len is not None:
            failures.append((text_len > self.max_text_len, lambda row: f"text_len {text_len[row]} > {self.max_text_len}"))
        if self.require_aligned:
            aligned = field("aligned").to_numpy(zero_copy_only=False)
            if not aligned.all():
                mismatched = self._mismatched_columns(batch)
                failures.append((~aligned, lambda row: f"misaligned ({', '.join(mismatched[row])} tokens != paths)"))
        if self.languages is not None:
            lang = np.asarray(field("lang").to_pylist(), dtype=object)
            score = field("lang_score").to_numpy(zero_copy_only=False)
            allowed = np.isin(lang, list(self.languages)) & (score >= self.min_lang_score)
            failures.append((~allowed, lambda row: f"language {lang[row]!r} (score {score[row]:.2f}) not in {list(self.languages)} with score >= {self.min_lang_score}"))
        if self.max_word_rep_ratio is not None:
            repetition = field("word_rep_ratio").to_numpy(zero_copy_only=False)
            failures.append((repetition > self.max_word_rep_ratio, lambda row: f"word_rep_ratio {repetition[row]:.2f} > {self.max_word_rep_ratio}"))
        if self.drop_unreadable_media and stats.type.get_field_index("media_errors") >= 0:
            errors = stats.field("media_errors")
            has_error = pc.fill_null(pc.list_value_length(errors), 0).to_numpy(zero_copy_only=False) > 0
            failures.append((has_error, lambda row: "unreadable media: " + " | ".join(errors[row].as_py())))
        if self.checks_images:
            failures.extend(self._image_failures(stats, n))
        if self.min_image_text_similarity is not None or self.max_image_text_similarity is not None:
            failures.append(self._similarity_failure(batch))
        if self.min_quality is not None:
            quality = np.mean(list(quality_dimensions(stats, self).values()), axis=0)
            failures.append((quality < self.min_quality, lambda row: f"quality {quality[row]:.2f} < {self.min_quality}"))
        if self.min_q is not None:
            failures.append(self._q_failure(stats))
        reasons = [""] * n
        for failed, describe in failures:
            for row in np.flatnonzero(failed).tolist():
                reasons[row] = describe(row) if not reasons[row] else reasons[row] + "; " + describe(row)
        return output(batch, {FILTER_COLUMN: pa.array(reasons, type=pa.string())})

    def _q_failure(self, stats: pa.StructArray) -> tuple:
        if stats.type.get_field_index(Q_FIELD) < 0:
            raise ValueError(f"QualityFilter(min_q={self.min_q}): the rows have no {STATS_COLUMN}.{Q_FIELD}; "
                             "run hf_mmbuilder.ops.InstructionQualityScore(...) first")
        q = stats.field(Q_FIELD).to_numpy(zero_copy_only=False).astype(np.float64)
        unmeasured = {name: stats.field(name).to_numpy(zero_copy_only=False).astype(np.float64)
                      for name in QUALITY_DIMENSIONS if stats.type.get_field_index(name) >= 0}

        def describe(row: int) -> str:
            if np.isnan(q[row]):
                missing = [name for name, values in unmeasured.items() if np.isnan(values[row])]
                return f"Q not measured (no {', '.join(missing) or 'score'})"
            return f"Q {q[row]:.3f} < {self.min_q}"

        return ~(q >= self.min_q), describe

    def _similarity_failure(self, batch):
        stats = column(batch, STATS_COLUMN)
        if stats is None or not pa.types.is_struct(stats.type) or stats.type.get_field_index("image_text_similarity") < 0:
            raise ValueError("the image-text similarity check reads __dj__stats__['image_text_similarity']: "
                             "map hf_mmbuilder.ops.ImageTextSimilarity(model=...) over the dataset first")
        scores = stats.field("image_text_similarity").to_pylist()
        low = -np.inf if self.min_image_text_similarity is None else self.min_image_text_similarity
        high = np.inf if self.max_image_text_similarity is None else self.max_image_text_similarity
        combine = any if self.any_or_all == "any" else all
        # NaN (an unreadable image) is within no bounds.
        failed = np.array([bool(values) and not combine(low <= value <= high for value in values) for values in scores], dtype=bool)
        return failed, lambda row: f"image_text_similarity {[round(value, 4) for value in scores[row]]} not {self.any_or_all} in [{low}, {high}]"

    def _mismatched_columns(self, batch) -> list[list[str]]:
        text = text_column(batch)
        names: list[list[str]] = [[] for _ in range(len(text))]
        for name in ("images", "audios", "videos"):
            tokens = pc.count_substring(text, self.tokens.for_column(name)).to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(tokens != media_counts(batch, name)).tolist():
                names[row].append(name)
        return names

    def _image_failures(self, stats: pa.StructArray, n: int) -> list:
        widths = stats.field("image_width")
        heights = stats.field("image_height")
        rows = pc.list_parent_indices(widths).to_numpy(zero_copy_only=False)
        flat_w = pc.list_flatten(widths).to_numpy(zero_copy_only=False).astype(np.float64)
        flat_h = pc.list_flatten(heights).to_numpy(zero_copy_only=False).astype(np.float64)
        readable = flat_w >= 0
        failures = []
        min_w = np.full(n, np.inf)
        min_h = np.full(n, np.inf)
        max_ratio = np.zeros(n)
        np.minimum.at(min_w, rows[readable], flat_w[readable])
        np.minimum.at(min_h, rows[readable], flat_h[readable])
        ratio = np.maximum(flat_w, flat_h) / np.maximum(np.minimum(flat_w, flat_h), 1)
        np.maximum.at(max_ratio, rows[readable], ratio[readable])
        if self.min_image_width is not None:
            failures.append((min_w < self.min_image_width, lambda row: f"image width {int(min_w[row])} < {self.min_image_width}"))
        if self.min_image_height is not None:
            failures.append((min_h < self.min_image_height, lambda row: f"image height {int(min_h[row])} < {self.min_image_height}"))
        if self.max_aspect_ratio is not None:
            failures.append((max_ratio > self.max_aspect_ratio, lambda row: f"image aspect ratio {max_ratio[row]:.2f} > {self.max_aspect_ratio}"))
        return failures


def quality_dimensions(stats: pa.StructArray, quality_filter: Optional[QualityFilter] = None) -> dict[str, np.ndarray]:
    """Per-row scores in [0, 1] for each quality dimension, from ``__dj__stats__`` fields.

    ``length`` (1 when the text length is within the filter's bounds, or non-empty without
    bounds), ``alignment`` (1 when aligned), ``language`` (detector confidence), ``repetition``
    (1 - word repetition ratio) and, when the stats carry media fields, ``media`` (share of
    readable media files; 1 without media). O(n).

    Example:
        >>> from datasets import Dataset
        >>> from hf_mmbuilder.ops import ComputeStats
        >>> table = ComputeStats(media=False)(Dataset.from_dict({"text": ["the cat is on the mat"]}).data.table)
        >>> {k: round(float(v[0]), 2) for k, v in quality_dimensions(table.column("__dj__stats__").combine_chunks()).items()}
        {'length': 1.0, 'alignment': 1.0, 'language': 0.8, 'repetition': 1.0}
    """
    quality_filter = quality_filter or QualityFilter()
    text_len = stats.field("text_len").to_numpy(zero_copy_only=False)
    low = quality_filter.min_text_len if quality_filter.min_text_len is not None else 1
    high = quality_filter.max_text_len if quality_filter.max_text_len is not None else np.inf
    dimensions = {
        "length": ((text_len >= low) & (text_len <= high)).astype(np.float64),
        "alignment": stats.field("aligned").to_numpy(zero_copy_only=False).astype(np.float64),
        "language": stats.field("lang_score").to_numpy(zero_copy_only=False).astype(np.float64),
        "repetition": 1.0 - stats.field("word_rep_ratio").to_numpy(zero_copy_only=False).astype(np.float64),
    }
    if stats.type.get_field_index("media_errors") >= 0:
        files = sum(stats.field(name).to_numpy(zero_copy_only=False) for name in ("num_images", "num_audios", "num_videos")).astype(np.float64)
        failed = pc.fill_null(pc.list_value_length(stats.field("media_errors")), 0).to_numpy(zero_copy_only=False)
        dimensions["media"] = np.where(files > 0, 1.0 - failed / np.maximum(files, 1), 1.0)
    return dimensions


@dataclasses.dataclass
class FilterResult:
    """Outcome of :func:`apply_filters`: the kept rows, the dropped rows with ``__dj__filter__``
    reasons, and the number of rows per failed check (the reason text before its value)."""

    kept: object
    dropped: object
    reasons: dict

    def __repr__(self) -> str:
        return f"FilterResult(kept={len(self.kept)}, dropped={len(self.dropped)}, reasons={self.reasons})"


def apply_filters(dataset, quality_filter: QualityFilter, *, num_proc: Optional[int] = None, batch_size: int = 1000) -> FilterResult:
    """Run ``quality_filter`` over a ``Dataset`` and split it into kept and dropped rows.

    Parameters
    ----------
    dataset : datasets.Dataset
        DJ rows (``text`` and media columns; ``__dj__stats__`` is reused when present).
    quality_filter : QualityFilter
    num_proc : int, optional
        Worker processes for the ``.map`` and ``.filter`` passes.

    Returns
    -------
    FilterResult
        ``kept`` (the input columns), ``dropped`` (plus ``__dj__filter__``) and ``reasons``
        ({check: rows}). O(n) plus the statistics; both passes hit the ``datasets`` cache on rerun.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["hi", "hello there"], "images": [[], []]})
        >>> result = apply_filters(ds, QualityFilter(min_text_len=5))
        >>> len(result.kept), list(result.dropped[FILTER_COLUMN]), result.reasons
        (1, ['text_len 2 < 5'], {'text_len': 1})
    """
    marked = dataset.map(quality_filter, batched=True, batch_size=batch_size, num_proc=num_proc, desc="quality filters")
    kept = marked.filter(_passes, input_columns=[FILTER_COLUMN], batched=True, batch_size=batch_size, num_proc=num_proc).remove_columns(FILTER_COLUMN)
    dropped = marked.filter(_fails, input_columns=[FILTER_COLUMN], batched=True, batch_size=batch_size, num_proc=num_proc)
    reasons: Counter = Counter()
    for reason in dropped[FILTER_COLUMN]:
        for part in reason.split("; "):
            reasons[_check_name(part)] += 1
    return FilterResult(kept=kept, dropped=dropped, reasons=dict(reasons))


def _check_name(reason: str) -> str:
    for prefix in ("unreadable media", "image_text_similarity", "quality", "Q", "image aspect ratio", "image width", "image height", "language", "misaligned"):
        if reason.startswith(prefix):
            return prefix
    return reason.split(" ", 1)[0]


def _passes(reasons: list) -> list:
    return [reason == "" for reason in reasons]


def _fails(reasons: list) -> list:
    return [reason != "" for reason in reasons]
