"""What a dedup removed: counts, cluster sizes and example clusters, as JSON or Markdown."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections import Counter
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger("hf_mmbuilder")


def warn_left_out(failures: Sequence[tuple], item: str, files: str, problem: str, *, stacklevel: int) -> None:
    """Report the media a dedup left out (``on_error="skip"``): one log line per
    ``(row, position, where, reason)``, then one warning with their count and the first three.
    ``item`` names one medium in a row (``"image"``), ``files`` what was counted (``"image(s)"``),
    ``problem`` what failed (``"hashed"``); ``stacklevel`` is the caller's, as for ``warnings.warn``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_left_out([(4, 0, "a.mp4", "no video stream")], "video", "video file(s)", "read", stacklevel=1)
        >>> str(caught[0].message)
        "1 video file(s) could not be read and were left out (first: row 4, video 0 ('a.mp4'): no video stream)"
    """
    for row, position, where, reason in failures:
        logger.warning("dedup left out row %d, %s %d (%r): %s", row, item, position, where, reason)
    first = "; ".join(f"row {row}, {item} {position} ({where!r}): {reason}" for row, position, where, reason in failures[:3])
    warnings.warn(f"{len(failures)} {files} could not be {problem} and were left out (first: {first})", stacklevel=stacklevel + 1)


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
