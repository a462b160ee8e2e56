"""Batched, cache-friendly ``.map`` / ``.filter`` ops on DJ columns: stats, PII redaction, filters,
the guide's quality score Q.

Each op is a frozen dataclass (picklable, so ``datasets`` fingerprints it and reuses the cache, and
``num_proc`` workers receive it) that takes a batch and returns new columns.

Example:
    >>> from datasets import Dataset
    >>> from hf_mmbuilder.ops import ComputeStats, RedactPII
    >>> ds = Dataset.from_dict({"text": ["mail me at a.b@example.com"], "images": [[]]})
    >>> ds = ds.map(RedactPII(), batched=True).map(ComputeStats(media=False), batched=True)
    >>> ds[0]["text"], ds[0]["__dj__stats__"]["pii_email"]
    ('mail me at [EMAIL]', 1)
"""

from ._batch import STATS_COLUMN
from .filters import FILTER_COLUMN, FilterResult, QualityFilter, apply_filters, quality_dimensions
from .pii import PII_TYPES, RedactPII, redact_text
from .quality_score import Q_FIELD, QUALITY_DIMENSIONS, InstructionQualityScore, fluency_from_perplexity, instruction_and_response, response_perplexity
from .similarity import ImageTextSimilarity
from .stats import ComputeStats, image_size, media_duration

__all__ = [
    "FILTER_COLUMN",
    "PII_TYPES",
    "QUALITY_DIMENSIONS",
    "Q_FIELD",
    "STATS_COLUMN",
    "ComputeStats",
    "FilterResult",
    "ImageTextSimilarity",
    "InstructionQualityScore",
    "QualityFilter",
    "RedactPII",
    "apply_filters",
    "fluency_from_perplexity",
    "image_size",
    "instruction_and_response",
    "media_duration",
    "quality_dimensions",
    "redact_text",
    "response_perplexity",
]
