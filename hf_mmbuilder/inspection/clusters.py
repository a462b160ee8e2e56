"""Duplicate clusters for the report: which rows ``dedup(..., return_clusters=True)`` put together,
largest cluster first, and each member's text against the kept row's with the differences marked.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

MAX_CLUSTERS = 100      # clusters shown (all are counted)
MAX_MEMBERS = 12        # members shown per cluster (all are counted)
DIFF_CHARACTERS = 4000  # characters of each text compared; longer texts are compared on this prefix

_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


def text_diff(kept: str, other: str) -> list:
    """``other`` against ``kept`` word by word: ``[["=", text], ["-", removed], ["+", added], ...]``.

    Example:
        >>> text_diff("the cat sat on the mat", "The cat sat on the mat!")
        [['-', 'the'], ['+', 'The'], ['=', ' cat sat on the mat'], ['+', '!']]
    """
    old, new = _WORDS.findall(kept[:DIFF_CHARACTERS]), _WORDS.findall(other[:DIFF_CHARACTERS])
    pieces: list = []

    def add(kind: str, words: list) -> None:
        if not words:
            return
        if pieces and pieces[-1][0] == kind:
            pieces[-1][1] += "".join(words)
        else:
            pieces.append([kind, "".join(words)])

    for tag, a0, a1, b0, b1 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            add("=", old[a0:a1])
        else:
            add("-", old[a0:a1])
            add("+", new[b0:b1])
    return pieces


def largest_clusters(cluster_ids: np.ndarray) -> tuple[list, dict]:
    """The clusters of two or more rows, largest first (ties: smallest cluster id first), at most
    :data:`MAX_CLUSTERS` of them with at most :data:`MAX_MEMBERS` rows each, and counts.

    Returns ``(clusters, counts)``: ``clusters`` is ``[{"id", "size", "rows"}]`` (rows ascending;
    the cluster id, the smallest row, is the row ``dedup`` keeps); ``counts`` has
    ``clusters`` (of two or more rows), ``duplicate_rows`` (rows a dedup removes) and
    ``largest``. O(n log n).

    Example:
        >>> clusters, counts = largest_clusters(np.array([0, 1, 0, 3, 1, 0]))
        >>> clusters
        [{'id': 0, 'size': 3, 'rows': [0, 2, 5]}, {'id': 1, 'size': 2, 'rows': [1, 4]}]
        >>> counts
        {'clusters': 2, 'duplicate_rows': 3, 'largest': 3}
    """
    ids = np.asarray(cluster_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    values, starts, sizes = np.unique(ids[order], return_index=True, return_counts=True)
    multi = np.flatnonzero(sizes > 1)
    ranked = multi[np.lexsort((values[multi], -sizes[multi]))]
    clusters = [{"id": int(values[c]), "size": int(sizes[c]),
                 "rows": np.sort(order[starts[c]:starts[c] + sizes[c]])[:MAX_MEMBERS].tolist()} for c in ranked[:MAX_CLUSTERS]]
    counts = {"clusters": int(multi.size), "duplicate_rows": int((sizes[multi] - 1).sum()),
              "largest": int(sizes.max()) if sizes.size else 0}
    return clusters, counts
