"""Batched, cache-friendly ``.map`` / ``.filter`` ops on DJ columns: stats, PII redaction, filters.

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
from .filters import FILTER_COLUMN, FilterResult, QualityFilter, apply_filters, quality_dimensions, reason_check
from .pii import PII_TYPES, RedactPII, redact_text
from .stats import ComputeStats, image_size, media_duration

__all__ = [
    "FILTER_COLUMN",
    "PII_TYPES",
    "STATS_COLUMN",
    "ComputeStats",
    "FilterResult",
    "QualityFilter",
    "RedactPII",
    "apply_filters",
    "image_size",
    "media_duration",
    "quality_dimensions",
    "reason_check",
    "redact_text",
]
