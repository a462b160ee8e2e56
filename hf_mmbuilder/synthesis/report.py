"""Quality validation report: per-dimension scores, pass rates, language and length distributions,
alignment errors, PII and media failures, and Oasis judge scores when present; as JSON and as a
short Markdown summary for the dataset card.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Optional

import numpy as np
import pyarrow.compute as pc

from ..ops import Q_FIELD, QUALITY_DIMENSIONS, STATS_COLUMN, ComputeStats, FilterResult, QualityFilter, quality_dimensions
from ..schema import DEFAULT_TOKENS, SpecialTokens, validate_alignment

LENGTH_BUCKETS = (0, 64, 256, 1024, 4096)
OASIS_SCORES = ("solvability", "clarity", "hallucination", "nonsense")


@dataclasses.dataclass
class QualityReport:
    """The measured quality of a dataset; ``to_json()`` for machines, ``to_markdown()`` for the card.

    Attributes: ``rows``; ``dimensions`` ({name: mean score in [0, 1]}); ``pass_rates``
    ({check: share of rows passing}, plus ``overall``); ``languages`` ({code: rows});
    ``length`` (quantiles of characters and words, and a histogram of characters);
    ``alignment_errors`` (count and the first messages); ``pii`` ({type: entities redacted});
    ``media_errors`` (rows with an unreadable file); ``judge_scores`` (Oasis 1-5 scores:
    mean and histogram per dimension, when the dataset has them); ``score`` (which score the
    rows were kept on: the guide's ``Q`` with its models, or the heuristic mean).
    """

    rows: int
    dimensions: dict
    pass_rates: dict
    languages: dict
    length: dict
    alignment_errors: dict
    pii: dict
    media_errors: int
    judge_scores: dict
    score: str = ""

    def to_dict(self) -> dict:
        """Plain-JSON dictionary of the report.

        Example:
            >>> quality_report(Dataset.from_dict({"text": ["a cat"]})).to_dict()["rows"]  # doctest: +SKIP
            1
        """
        return dataclasses.asdict(self)

    def to_json(self, path: Optional[str] = None) -> str:
        """The report as UTF-8 JSON; also written to ``path`` when given.

        Example:
            >>> report.to_json("quality_report.json")  # doctest: +SKIP
        """
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    def to_markdown(self) -> str:
        """A short Markdown summary (a few tables) for the dataset card.

        Example:
            >>> print(report.to_markdown())  # doctest: +SKIP
            **Rows checked:** 305
        """
        lines = [f"**Rows checked:** {self.rows:,}", ""]
        if self.score:
            lines += [f"**Score:** {self.score}", ""]
        lines += ["| dimension | mean score |", "|---|---|"]
        lines += [f"| {name} | {score:.3f} |" for name, score in self.dimensions.items()]
        lines += ["", "| check | pass rate |", "|---|---|"]
        lines += [f"| {name} | {rate:.1%} |" for name, rate in self.pass_rates.items()]
        top = ", ".join(f"{code} {count:,}" for code, count in list(self.languages.items())[:8])
        chars = self.length.get("chars", {})
        lines += ["", f"**Languages:** {top or 'none'}",
                  f"**Text length (chars):** median {chars.get('p50', 0):,.0f}, p10 {chars.get('p10', 0):,.0f}, p90 {chars.get('p90', 0):,.0f}, max {chars.get('max', 0):,.0f}",
                  f"**Alignment errors:** {self.alignment_errors['count']:,}; **unreadable media rows:** {self.media_errors:,}"]
        if any(self.pii.values()):
            lines.append("**PII redacted:** " + ", ".join(f"{kind} {count:,}" for kind, count in self.pii.items() if count))
        if self.judge_scores:
            lines += ["", "| judge score (1-5) | mean | pass rate |", "|---|---|---|"]
            lines += [f"| {name} | {values['mean']:.2f} | {values['pass_rate']:.1%} |" for name, values in self.judge_scores.items()]
        return "\n".join(lines) + "\n"


def _quantiles(values: np.ndarray) -> dict:
    if values.size == 0:
        return {}
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {"min": float(values.min()), "p10": float(p10), "p50": float(p50), "p90": float(p90), "max": float(values.max()), "mean": float(values.mean())}


def quality_report(
    dataset,
    filter_result: Optional[FilterResult] = None,
    quality_filter: Optional[QualityFilter] = None,
    *,
    tokens: SpecialTokens = DEFAULT_TOKENS,
    judge_thresholds: Optional[dict] = None,
    max_errors: int = 10,
    score: str = "",
) -> QualityReport:
    """Measure a DJ dataset and return a :class:`QualityReport`.

    Parameters
    ----------
    dataset : datasets.Dataset
        Rows to measure (all rows, before filtering); ``__dj__stats__`` is computed (text only)
        when absent.
    filter_result : FilterResult, optional
        The outcome of :func:`hf_mmbuilder.ops.apply_filters` on ``dataset``, for pass rates.
    quality_filter : QualityFilter, optional
        Its bounds define the ``length`` dimension.
    judge_thresholds : dict, optional
        Minimum passing Oasis score per dimension (default solvability 3, clarity 3,
        hallucination 5, nonsense 5).
    score : str
        Which score the rows were kept on, for the report's readers. When the stats carry the
        guide's quality dimensions and ``Q`` (:class:`hf_mmbuilder.ops.InstructionQualityScore`),
        their means over the rows measured join ``dimensions``.

    Notes
    -----
    O(n) over the stats columns plus one alignment pass in Arrow compute.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image> a cat", "the dog is on the sofa"], "images": [[], []]})
        >>> report = quality_report(ds)
        >>> report.alignment_errors["count"], report.languages
        (1, {'en': 2})
    """
    if STATS_COLUMN not in dataset.column_names:
        dataset = dataset.map(ComputeStats(media=False, tokens=tokens), batched=True, desc="stats")
    stats = dataset.with_format("arrow")[STATS_COLUMN]
    stats = stats.combine_chunks() if hasattr(stats, "combine_chunks") else stats
    rows = len(dataset)
    dimensions = {name: float(values.mean()) if rows else 0.0 for name, values in quality_dimensions(stats, quality_filter).items()}
    for name in (*QUALITY_DIMENSIONS, Q_FIELD):
        if stats.type.get_field_index(name) >= 0:
            values = stats.field(name).to_numpy(zero_copy_only=False).astype(np.float64)
            measured = values[~np.isnan(values)]
            dimensions[name] = float(measured.mean()) if measured.size else 0.0
    pass_rates = {}
    if filter_result is not None and rows:
        pass_rates = {check: 1.0 - failed / rows for check, failed in sorted(filter_result.reasons.items())}
        pass_rates["overall"] = len(filter_result.kept) / rows
    languages = dict(Counter(stats.field("lang").to_pylist()).most_common())
    chars = stats.field("text_len").to_numpy(zero_copy_only=False)
    words = stats.field("num_words").to_numpy(zero_copy_only=False)
    edges = list(LENGTH_BUCKETS) + [np.inf]
    histogram = {f"{int(lo)}-{'' if hi == np.inf else int(hi)}": int(((chars >= lo) & (chars < hi)).sum()) for lo, hi in zip(edges[:-1], edges[1:])}
    errors = validate_alignment(dataset.select_columns([c for c in ("text", "images", "audios", "videos") if c in dataset.column_names]), tokens)
    pii = {}
    for index in range(stats.type.num_fields):
        name = stats.type.field(index).name
        if name.startswith("pii_"):
            pii[name[4:]] = int(pc.sum(stats.field(index)).as_py() or 0)
    media_errors = 0
    if stats.type.get_field_index("media_errors") >= 0:
        media_errors = int((pc.fill_null(pc.list_value_length(stats.field("media_errors")), 0).to_numpy(zero_copy_only=False) > 0).sum())
    thresholds = {"solvability": 3, "clarity": 3, "hallucination": 5, "nonsense": 5, **(judge_thresholds or {})}
    judge_scores = {}
    for name in OASIS_SCORES:
        if name in dataset.column_names:
            values = np.asarray([v for v in dataset[name] if v is not None], dtype=np.float64)
            if values.size:
                judge_scores[name] = {"mean": float(values.mean()), "pass_rate": float((values >= thresholds[name]).mean()),
                                      "histogram": {str(score): int((values == score).sum()) for score in range(1, 6)}, "scored_rows": int(values.size)}
    return QualityReport(
        rows=rows,
        dimensions=dimensions,
        pass_rates=pass_rates,
        languages=languages,
        length={"chars": _quantiles(chars), "words": _quantiles(words), "chars_histogram": histogram},
        alignment_errors={"count": len(errors), "first": [str(error) for error in errors[:max_errors]]},
        pii=pii,
        media_errors=media_errors,
        judge_scores=judge_scores,
        score=score,
    )
