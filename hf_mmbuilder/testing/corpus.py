"""A text corpus with planted near duplicates, for the dedup tests and benchmarks.

Documents are Zipf-distributed words ``w0`` ... ``w29999``; a share of them copy an earlier
document with one word replaced by ``planted`` (Jaccard about 0.8-0.9 for 20-60-word documents:
MinHash-LSH finds most, not all, as at any threshold).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

VOCABULARY_SIZE = 30_000


def planted_corpus(
    n: int,
    *,
    seed: int = 0,
    min_words: int = 20,
    max_words: int = 60,
    duplicate_rate: float = 0.08,
    chunk_rows: Optional[int] = None,
) -> list[str]:
    """``n`` documents of ``min_words``-``max_words`` words; ``duplicate_rate`` of them planted copies.

    ``chunk_rows`` draws the words that many documents at a time (bounded memory for millions of
    rows); it changes the random stream, so a given ``(seed, chunk_rows)`` always gives the same
    corpus. Row 0 is never a copy.

    Example:
        >>> docs = planted_corpus(200, seed=3)
        >>> len(docs), all(20 <= len(doc.split()) <= 60 for doc in docs)
        (200, True)
        >>> sum("planted" in doc.split() for doc in docs) > 0
        True
    """
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(VOCABULARY_SIZE)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    step = chunk_rows or max(n, 1)
    docs: list[str] = []
    for start in range(0, n, step):
        size = min(step, n - start)
        lengths = rng.integers(min_words, max_words + 1, size=size)
        ids = rng.choice(len(vocabulary), size=int(lengths.sum()), p=weights / weights.sum()).tolist()
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        docs.extend(" ".join([vocabulary[k] for k in ids[bounds[i] : bounds[i + 1]]]) for i in range(size))
    copies = np.flatnonzero(rng.random(n) < duplicate_rate)
    copies = copies[copies > 0]
    originals = (rng.random(copies.size) * copies).astype(np.int64)
    for row, original in zip(copies.tolist(), originals.tolist()):
        words = docs[original].split(" ")
        words[rng.integers(len(words))] = "planted"
        docs[row] = " ".join(words)
    return docs
