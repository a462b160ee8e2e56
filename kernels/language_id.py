"""Naive Bayes language identification over a byte DFA (py3langid's model), many texts at once.

Arrays in, arrays out: a text is ``data[offsets[i]:offsets[i + 1]]`` (its UTF-8 bytes, prepared as
the model's owner prepares them). :func:`feature_counts` walks the DFA over every text in one
compiled pass and keeps, per text, each feature's count in the order the features are first seen;
:func:`naive_bayes_scores` scores each text with the same float32 numpy operations, on operands of
the same values, shapes and layout, as py3langid 0.4.0's ``_sparse_score`` and ``_decide``, so the
scores are bit-identical and so are the labels (a summation in another order could flip a near tie).
"""

from __future__ import annotations

import numba
import numpy as np


# Texts walked at once, interleaved byte by byte: each step of a walk waits on two dependent loads
# from a 39 MB transition table, mostly cache misses; independent walks side by side overlap them
# (2000 LLaVA texts, 1.5 MB: 15 ms walked one after the other, 5-6 ms eight at a time; 4 to 32
# lanes measure alike).
LANES = 8


@numba.njit(cache=True, nogil=True)
def _walk(data: np.ndarray, offsets: np.ndarray, nextmove: np.ndarray, rows: np.ndarray,
          outputs: np.ndarray) -> np.ndarray:
    """The feature each byte's DFA state emits (-1: none), each text walked from state 0."""
    n_texts = offsets.shape[0] - 1
    emitted = np.empty(data.shape[0], dtype=np.int32)
    # Lane ``lane`` walks the texts [first[lane], first[lane + 1]), about an equal share of bytes.
    first = np.empty(LANES + 1, dtype=np.int64)
    text = 0
    for lane in range(LANES):
        while text < n_texts and offsets[text] < offsets[n_texts] * lane // LANES:
            text += 1
        first[lane] = text
    first[LANES] = n_texts
    position = np.empty(LANES, dtype=np.int64)
    end = np.empty(LANES, dtype=np.int64)
    current = np.empty(LANES, dtype=np.int64)
    state = np.zeros(LANES, dtype=np.int64)
    for lane in range(LANES):
        position[lane] = offsets[first[lane]]
        end[lane] = offsets[first[lane + 1]]
        current[lane] = first[lane]
    walking = True
    while walking:
        walking = False
        for lane in range(LANES):
            at = position[lane]
            if at >= end[lane]:
                continue
            walking = True
            now = state[lane]
            while offsets[current[lane] + 1] <= at:  # a new text (past any empty ones) starts here
                current[lane] += 1
                now = 0
            now = np.int64(nextmove[(np.int64(rows[now]) << 8) + np.int64(data[at])])
            emitted[at] = outputs[now]
            state[lane] = now
            position[lane] = at + 1
    return emitted


@numba.njit(cache=True, nogil=True)
def feature_counts(data: np.ndarray, offsets: np.ndarray, nextmove: np.ndarray, rows: np.ndarray,
                   outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each text's features, in the order first seen in the text, and how often each occurs.

    The DFA starts in state 0 for every text; from state ``s`` the byte ``b`` leads to
    ``nextmove[(rows[s] << 8) + b]``, and a state ``s`` with ``outputs[s] >= 0`` emits that feature.

    Parameters
    ----------
    data : ndarray of uint8, shape (n_bytes,)
        The texts' bytes, one after the other.
    offsets : ndarray of int64, shape (n_texts + 1,)
        Text ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
    nextmove : ndarray of unsigned int, shape (n_rows * 256,)
        The distinct transition rows, 256 next states each.
    rows : ndarray of unsigned int, shape (n_states,)
        The transition row of each state.
    outputs : ndarray of int32, shape (n_states,)
        The feature a state emits, -1 for none.

    Returns
    -------
    starts : ndarray of int64, shape (n_texts + 1,)
        Text ``i``'s features are ``local[starts[i]:starts[i + 1]]``; none for a featureless text.
    local : ndarray of int32, shape (starts[-1],)
        Each text's distinct features in the order first seen, as positions in ``distinct``.
    counts : ndarray of int32, shape (starts[-1],)
        How often the feature at the same position of ``local`` occurs in its text.
    distinct : ndarray of int64, shape (n_distinct,)
        The model's feature ids of all the texts, in the order first seen over all the texts.

    Raises ``ValueError`` for 2 GiB of bytes or more (positions are int32).

    Complexity: O(n_bytes + n_states) time; O(n_bytes + n_features) memory, n_features being
    ``outputs.max() + 1``.

    Example
    -------
    A two-state DFA whose state 1 (reached by the byte ``a``) emits feature 0:

    >>> nextmove = np.zeros(512, dtype=np.uint32); nextmove[ord("a")] = nextmove[256 + ord("a")] = 1
    >>> rows = np.array([0, 1], dtype=np.uint16); outputs = np.array([-1, 0], dtype=np.int32)
    >>> data = np.frombuffer(b"abaxy", dtype=np.uint8); offsets = np.array([0, 3, 5])
    >>> [a.tolist() for a in feature_counts(data, offsets, nextmove, rows, outputs)]
    [[0, 1, 1], [0], [2], [0]]
    """
    if data.shape[0] >= 2**31:
        raise ValueError("language_id.feature_counts: 2 GiB of text or more")
    emitted = _walk(data, offsets, nextmove, rows, outputs)
    n_texts = offsets.shape[0] - 1
    n_features = 0
    n_emitted = 0
    for state in range(outputs.shape[0]):
        n_features = max(n_features, outputs[state] + 1)
    for position in range(emitted.shape[0]):
        n_emitted += emitted[position] >= 0
    # Per feature: the last text it was seen in, its position in ``local`` in that text, and its
    # position in ``distinct`` (-1 until first seen).
    seen_in = np.full(n_features, -1, dtype=np.int32)
    slot = np.empty(n_features, dtype=np.int32)
    local_of = np.full(n_features, -1, dtype=np.int32)
    starts = np.empty(n_texts + 1, dtype=np.int64)
    local = np.empty(n_emitted, dtype=np.int32)
    counts = np.zeros(n_emitted, dtype=np.int32)
    distinct = np.empty(min(n_features, n_emitted), dtype=np.int64)
    n_out = 0
    n_distinct = 0
    for text in range(n_texts):
        starts[text] = n_out
        for position in range(offsets[text], offsets[text + 1]):
            feature = emitted[position]
            if feature < 0:
                continue
            if seen_in[feature] != text:
                seen_in[feature] = text
                slot[feature] = n_out
                if local_of[feature] < 0:
                    local_of[feature] = n_distinct
                    distinct[n_distinct] = feature
                    n_distinct += 1
                local[n_out] = local_of[feature]
                n_out += 1
            counts[slot[feature]] += 1
    starts[n_texts] = n_out
    return starts, local[:n_out], counts[:n_out], distinct[:n_distinct]


def naive_bayes_scores(starts: np.ndarray, local: np.ndarray, counts: np.ndarray, table: np.ndarray,
                       prior: np.ndarray, alias_pairs: np.ndarray, floor: float) -> np.ndarray:
    """Each text's score per class, from :func:`feature_counts`' output; a text's label is its argmax.

    A text's score is ``np.log1p(counts) @ table[features] + prior`` in float32, or ``floor`` for
    every class when it has no feature; then, for each alias pair ``(i, j)`` (one label, two
    columns), column ``i`` takes the larger of the two (``i``'s on a tie) and ``j`` becomes ``floor``.

    Parameters
    ----------
    starts : ndarray of int64, shape (n_texts + 1,)
    local, counts : ndarray of int32, shape (starts[-1],)
        As returned by :func:`feature_counts`.
    table : ndarray of float32, shape (n_distinct, n_classes)
        The log-probability row of each feature of ``distinct``, in that order (py3langid stores
        them as float16; float32 holds them exactly, and its matmul casts them so).
    prior : ndarray of float32, shape (n_classes,)
    alias_pairs : ndarray of int64, shape (n_pairs, 2)
    floor : float
        The score of every class of a featureless text, and of a folded alias column.

    Returns
    -------
    scores : ndarray of float32, shape (n_texts, n_classes)

    Complexity: O(starts[-1] * n_classes) time; O(n_texts * n_classes) memory. One matmul per
    text, as py3langid does: BLAS sums a single matmul of all the texts in another order.

    Example
    -------
    Columns 0 and 2 are one label; the second text has no feature:

    >>> table = np.array([[-1.0, -2.0, -0.5]], dtype=np.float32)
    >>> naive_bayes_scores(np.array([0, 1, 1]), np.array([0]), np.array([3]), table,
    ...                    np.zeros(3, dtype=np.float32), np.array([[0, 2]]), -9.0).astype(float).round(3).tolist()
    [[-0.693, -2.773, -9.0], [-9.0, -9.0, -9.0]]
    """
    n_texts = starts.shape[0] - 1
    scores = np.zeros((n_texts, prior.shape[0]), dtype=np.float32)
    featured = starts[1:] > starts[:-1]
    weights = counts.astype(np.float32)
    gathered = np.empty((int((starts[1:] - starts[:-1]).max(initial=0)), table.shape[1]), dtype=np.float32)
    log1p, matmul = np.log1p, np.matmul
    bounds = starts.tolist()
    for text in np.flatnonzero(featured).tolist():
        start, end = bounds[text], bounds[text + 1]
        _gather_rows(table, local, start, end, gathered)
        matmul(log1p(weights[start:end]), gathered[: end - start], out=scores[text])
    # A float32 addition rounds the same wherever it is done: one for all the texts.
    scores += prior
    scores[~featured] = floor
    for first, dupe in alias_pairs.tolist():
        # Python's max(first, dupe), as py3langid folds: the first unless the dupe is larger.
        scores[:, first] = np.where(scores[:, dupe] > scores[:, first], scores[:, dupe], scores[:, first])
        scores[:, dupe] = floor
    return scores


# Keeps the GIL, unlike numpy's take and fancy indexing: they let it go and take it back once per
# text, and beside a thread running Python each taking back waits up to the 5 ms switch interval
# (2000 LLaVA texts: 2.5 s instead of 0.05 s beside a busy thread; 0.04 s with this).
@numba.njit(cache=True, _nrt=False)
def _gather_rows(table: np.ndarray, local: np.ndarray, start: int, end: int, out: np.ndarray) -> None:
    """``out[:end - start] = table[local[start:end]]``."""
    for row in range(end - start):
        source = local[start + row]
        for column in range(table.shape[1]):
            out[row, column] = table[source, column]
