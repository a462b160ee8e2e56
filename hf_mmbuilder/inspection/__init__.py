"""The HTML inspection report: look at the rows, not only at numbers.

:func:`inspect` writes a static folder (``index.html`` plus local assets, no server, no network)
with five sections: the overview of every row (sources, alignment, the stats' distributions), a
paged and searchable sample rendered as conversations or interleaved documents with media in
place, duplicate clusters with their text differences, the selection over a PCA of the
embeddings with per-cluster quotas, and the rejects with their reasons and raw records.

Modules: ``report`` (the front door and the folder), ``overview``, ``conversation`` (DJ text into
turns and chunks), ``previews`` (thumbnails and media copies), ``clusters``, ``projection``,
``rejects``; ``assets/`` holds the page, its stylesheet and its script.
"""

from .report import build_report, inspect

__all__ = ["build_report", "inspect"]
