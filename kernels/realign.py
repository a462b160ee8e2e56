"""MMC4 similarity realignment on flat buffers: a whole batch of documents per call.

An MMC4 document keeps its original ``similarity_matrix`` (original images x original sentences)
and, per original image, its ``matched_text_index``. Processing drops and reorders images and
sentences; ``image_index`` (per current image: its original row, or -1 for an image added by
processing) and ``sentence_index`` (per current sentence: its original column) record how. This
kernel cuts each document's matrix down to current images x current sentences and recomputes
each current image's matched sentence and similarity.

Every ragged column arrives as Arrow-style ``offsets`` (int64, length n_docs + 1, absolute
positions into ``values``) plus flat ``values``; the matrix is doubly nested (document -> rows ->
values). Nothing is materialised per document: one validation pass sizes the outputs, one pass
fills them.

Methods for the matched sentence of a current image with an original row:

- ``"repoint"``: its original match, re-pointed to that sentence's current position (the first
  one if the sentence was duplicated); when that sentence is gone, the best surviving sentence;
- ``"argmax"``: the surviving sentence of highest similarity (first one on ties);
- ``"assignment"``: MMC4's rule (``allenai/mmc4`` ``compute_assignments.py``): a maximum-weight
  linear assignment between images with a row and current sentences, with
  ``scipy.optimize.linear_sum_assignment`` semantics (same shortest-augmenting-path algorithm and
  tie order); when there are more images than sentences, each sentence receives one image and the
  images left over take their argmax, so indexes repeat.

The index is -1 (and the similarity NaN) when no sentence survives or the image has no row; rows
of images without an original row are NaN in the realigned matrix.
"""

from __future__ import annotations

import numba
import numpy as np

METHODS = ("repoint", "argmax", "assignment")
_METHOD_CODE = {name: code for code, name in enumerate(METHODS)}

OK = 0
RAGGED_ROW = 1
ROWS_NOT_MATCHED = 2
MATCH_OUT_OF_RANGE = 3
IMAGE_OUT_OF_RANGE = 4
SENTENCE_OUT_OF_RANGE = 5
NOT_FINITE = 6


@numba.njit(cache=True, nogil=True)
def _validate(doc_rows, row_values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences):
    """Check every document; return (status, doc, detail, detail2, values out, max images, max sentences, max columns)."""
    n_docs = doc_rows.shape[0] - 1
    total_values = 0
    max_images = 0
    max_sentences = 0
    max_cols = 0
    for doc in range(n_docs):
        first_row = doc_rows[doc]
        n_rows = doc_rows[doc + 1] - first_row
        n_cols = row_values[first_row + 1] - row_values[first_row] if n_rows > 0 else 0
        for row in range(n_rows):
            length = row_values[first_row + row + 1] - row_values[first_row + row]
            if length != n_cols:
                return RAGGED_ROW, doc, row, length * (1 << 32) + n_cols, 0, 0, 0, 0
        n_matched = matched_offsets[doc + 1] - matched_offsets[doc]
        if n_matched != n_rows:
            return ROWS_NOT_MATCHED, doc, n_rows, n_matched, 0, 0, 0, 0
        for position in range(matched_offsets[doc], matched_offsets[doc + 1]):
            if matched[position] < 0 or matched[position] >= n_cols:
                return MATCH_OUT_OF_RANGE, doc, position - matched_offsets[doc], matched[position], 0, 0, 0, 0
        n_images = image_offsets[doc + 1] - image_offsets[doc]
        for position in range(image_offsets[doc], image_offsets[doc + 1]):
            if images[position] < -1 or images[position] >= n_rows:
                return IMAGE_OUT_OF_RANGE, doc, position - image_offsets[doc], images[position], 0, 0, 0, 0
        n_sentences = sentence_offsets[doc + 1] - sentence_offsets[doc]
        # Without a single row the original column count is unknown, so columns are unchecked.
        if n_rows > 0:
            for position in range(sentence_offsets[doc], sentence_offsets[doc + 1]):
                if sentences[position] < 0 or sentences[position] >= n_cols:
                    return SENTENCE_OUT_OF_RANGE, doc, position - sentence_offsets[doc], sentences[position], 0, 0, 0, 0
        total_values += n_images * n_sentences
        max_images = max(max_images, n_images)
        max_sentences = max(max_sentences, n_sentences)
        max_cols = max(max_cols, n_cols)
    return OK, -1, 0, 0, total_values, max_images, max_sentences, max_cols


@numba.njit(cache=True, nogil=True)
def _solve_assignment(cost, n_rows, n_cols, col4row, row4col, u, v, shortest, path, remaining, row_seen, col_seen):
    """Minimum-cost assignment of every row (n_rows <= n_cols): scipy's shortest augmenting path.

    Returns False when no finite assignment exists.
    """
    for i in range(n_rows):
        u[i] = 0.0
        col4row[i] = -1
    for j in range(n_cols):
        v[j] = 0.0
        row4col[j] = -1
    for current in range(n_rows):
        min_value = 0.0
        n_remaining = n_cols
        # Columns are scanned in reverse order, as scipy does, so ties resolve identically.
        for position in range(n_cols):
            remaining[position] = n_cols - position - 1
            col_seen[position] = False
            shortest[position] = np.inf
        for i in range(n_rows):
            row_seen[i] = False
        sink = -1
        i = current
        while sink == -1:
            index = -1
            lowest = np.inf
            row_seen[i] = True
            for position in range(n_remaining):
                j = remaining[position]
                reduced = min_value + cost[i, j] - u[i] - v[j]
                if reduced < shortest[j]:
                    path[j] = i
                    shortest[j] = reduced
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    index = position
            min_value = lowest
            if min_value == np.inf:
                return False
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            col_seen[j] = True
            n_remaining -= 1
            remaining[index] = remaining[n_remaining]
        u[current] += min_value
        for i in range(n_rows):
            if row_seen[i] and i != current:
                u[i] += min_value - shortest[col4row[i]]
        for j in range(n_cols):
            if col_seen[j]:
                v[j] -= min_value - shortest[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            previous = col4row[i]
            col4row[i] = j
            j = previous
            if i == current:
                break
    return True


@numba.njit(cache=True, nogil=True)
def _fill(
    doc_rows, row_values, values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences, method,
    max_images, max_sentences, max_cols, out_rows, out_row_values, out_values, out_matched, out_sim, unaligned_offsets, unaligned,
):
    n_docs = doc_rows.shape[0] - 1
    side = max(max_images, max_sentences)
    cost = np.empty((side, side), dtype=np.float64)
    col4row = np.empty(side, dtype=np.int64)
    row4col = np.empty(side, dtype=np.int64)
    u = np.empty(side, dtype=np.float64)
    v = np.empty(side, dtype=np.float64)
    shortest = np.empty(side, dtype=np.float64)
    path = np.empty(side, dtype=np.int64)
    remaining = np.empty(side, dtype=np.int64)
    row_seen = np.empty(side, dtype=np.bool_)
    col_seen = np.empty(side, dtype=np.bool_)
    aligned = np.empty(side, dtype=np.int64)
    position_of = np.full(max_cols, -1, dtype=np.int64)

    out_rows[0] = 0
    out_row_values[0] = 0
    unaligned_offsets[0] = 0
    image_out = 0
    value_out = 0
    unaligned_out = 0
    nan = np.nan
    for doc in range(n_docs):
        first_row = doc_rows[doc]
        first_image = image_offsets[doc]
        n_images = image_offsets[doc + 1] - first_image
        first_sentence = sentence_offsets[doc]
        n_sentences = sentence_offsets[doc + 1] - first_sentence
        n_aligned = 0
        if method == 0:
            for sentence in range(n_sentences):
                column = sentences[first_sentence + sentence]
                if position_of[column] < 0:
                    position_of[column] = sentence
        for image in range(n_images):
            original = images[first_image + image]
            position = image_out + image
            if original < 0:
                for sentence in range(n_sentences):
                    out_values[value_out + sentence] = nan
                unaligned[unaligned_out] = image
                unaligned_out += 1
                out_matched[position] = -1
                out_sim[position] = nan
            else:
                row_start = row_values[first_row + original]
                # The argmax rides along the gather: first maximum, as numpy's argmax.
                best = -1
                best_value = np.float64(0.0)
                for sentence in range(n_sentences):
                    value = values[row_start + sentences[first_sentence + sentence]]
                    out_values[value_out + sentence] = value
                    if best < 0 or value > best_value:
                        best = sentence
                        best_value = value
                if method == 0 and n_sentences > 0:
                    kept = position_of[matched[matched_offsets[doc] + original]]
                    if kept >= 0:
                        best = kept
                elif method == 2:
                    aligned[n_aligned] = image
                    n_aligned += 1
                    best = -1
                out_matched[position] = best
                out_sim[position] = out_values[value_out + best] if best >= 0 else nan
            value_out += n_sentences
            out_row_values[position + 1] = value_out
        if method == 0:
            for sentence in range(n_sentences):
                position_of[sentences[first_sentence + sentence]] = -1
        if method == 2 and n_aligned > 0 and n_sentences > 0:
            # Images are the assignment's rows unless they outnumber the sentences (scipy transposes).
            transposed = n_aligned > n_sentences
            n_rows = n_sentences if transposed else n_aligned
            n_cols = n_aligned if transposed else n_sentences
            for a in range(n_aligned):
                row_start = out_row_values[image_out + aligned[a]]
                for sentence in range(n_sentences):
                    similarity = np.float64(out_values[row_start + sentence])
                    if not np.isfinite(similarity):
                        return NOT_FINITE, doc, aligned[a], sentence, 0
                    if transposed:
                        cost[sentence, a] = -similarity
                    else:
                        cost[a, sentence] = -similarity
            _solve_assignment(cost, n_rows, n_cols, col4row, row4col, u, v, shortest, path, remaining, row_seen, col_seen)
            if transposed:
                for a in range(n_aligned):
                    out_matched[image_out + aligned[a]] = -1
                for sentence in range(n_sentences):
                    out_matched[image_out + aligned[col4row[sentence]]] = sentence
                for a in range(n_aligned):
                    position = image_out + aligned[a]
                    row_start = out_row_values[position]
                    if out_matched[position] < 0:
                        best = 0
                        for sentence in range(1, n_sentences):
                            if out_values[row_start + sentence] > out_values[row_start + best]:
                                best = sentence
                        out_matched[position] = best
                    out_sim[position] = out_values[row_start + out_matched[position]]
            else:
                for a in range(n_aligned):
                    position = image_out + aligned[a]
                    out_matched[position] = col4row[a]
                    out_sim[position] = out_values[out_row_values[position] + col4row[a]]
        image_out += n_images
        out_rows[doc + 1] = image_out
        unaligned_offsets[doc + 1] = unaligned_out
    return OK, -1, 0, 0, unaligned_out


def _reason(status: int, detail: int, detail2: int) -> str:
    if status == RAGGED_ROW:
        return f"similarity_matrix is ragged: row {detail} has {detail2 >> 32} values but row 0 has {detail2 & 0xFFFFFFFF}"
    if status == ROWS_NOT_MATCHED:
        return f"similarity_matrix has {detail} rows but matched_text_index has {detail2} entries (one per original image)"
    if status == MATCH_OUT_OF_RANGE:
        return f"matched_text_index[{detail}] = {detail2} is not a column of similarity_matrix"
    if status == IMAGE_OUT_OF_RANGE:
        return f"image_index[{detail}] = {detail2} is neither -1 nor a row of similarity_matrix"
    if status == SENTENCE_OUT_OF_RANGE:
        return f"sentence_index[{detail}] = {detail2} is not a column of similarity_matrix"
    return f"similarity of current image {detail} and sentence {detail2} is not finite (assignment needs finite values)"


class RealignError(ValueError):
    """A document whose matrix and index lists disagree; ``doc`` is its position in the batch.

    Example:
        >>> str(RealignError(3, "similarity_matrix is ragged"))
        'document 3: similarity_matrix is ragged'
    """

    def __init__(self, doc: int, reason: str):
        self.doc = doc
        self.reason = reason
        super().__init__(f"document {doc}: {reason}")


def realign_flat(
    doc_rows: np.ndarray,
    row_values: np.ndarray,
    values: np.ndarray,
    matched_offsets: np.ndarray,
    matched: np.ndarray,
    image_offsets: np.ndarray,
    images: np.ndarray,
    sentence_offsets: np.ndarray,
    sentences: np.ndarray,
    method: str = "repoint",
) -> dict:
    """Realign a batch of MMC4 similarity matrices given as flat buffers (module docstring).

    Parameters
    ----------
    doc_rows : ndarray of int64, shape (n_docs + 1,)
        Matrix rows of each document: rows ``doc_rows[i]:doc_rows[i + 1]`` of ``row_values``.
    row_values : ndarray of int64, shape (n_rows + 1,)
        Values of each matrix row: ``values[row_values[r]:row_values[r + 1]]``.
    values : ndarray of float64 or float32, shape (n_values,)
        All similarities, row-major.
    matched_offsets, matched : ndarray of int64
        Original ``matched_text_index`` per original image, as offsets (n_docs + 1) and values.
    image_offsets, images : ndarray of int64
        ``image_index`` per current image (-1: no original row).
    sentence_offsets, sentences : ndarray of int64
        ``sentence_index`` per current sentence.
    method : {"repoint", "argmax", "assignment"}
        How the matched sentence is chosen.

    Returns
    -------
    dict of ndarray
        ``doc_rows`` (n_docs + 1) and ``row_values`` (n_current_images + 1), zero-based offsets
        of the realigned matrices, whose flat ``values`` keep the input dtype;
        ``matched_text_index`` (int64) and ``matched_sim`` (float64, NaN for -1), one per current
        image; ``unaligned_offsets`` (n_docs + 1) and ``unaligned`` (int64 positions of images
        with ``image_index == -1``).

    Raises
    ------
    RealignError
        Naming the batch position of the first bad document and the reason (ragged matrix,
        rows != len(matched_text_index), an index out of range, a non-finite similarity with
        ``"assignment"``).

    Complexity: O(total input values + total output values) for ``"repoint"``/``"argmax"``;
    ``"assignment"`` adds O(m^2 * s) per document (m = min side, s = max side). One pass to
    validate and size, one to fill; no per-document allocation.

    Example
    -------
    >>> out = realign_flat(np.array([0, 2]), np.array([0, 3, 6]), np.array([.1, .9, .2, .8, .3, .4]),
    ...                    np.array([0, 2]), np.array([1, 0]), np.array([0, 2]), np.array([1, -1]),
    ...                    np.array([0, 2]), np.array([2, 0]), method="repoint")
    >>> out["matched_text_index"].tolist(), out["unaligned"].tolist()
    ([1, -1], [1])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    code = _METHOD_CODE[method]
    status, doc, detail, detail2, total_values, max_images, max_sentences, max_cols = _validate(
        doc_rows, row_values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences
    )
    if status != OK:
        raise RealignError(int(doc), _reason(status, int(detail), int(detail2)))
    n_docs = doc_rows.shape[0] - 1
    n_images = int(image_offsets[-1] - image_offsets[0])
    # Outputs come from numpy, not from inside the kernel: numpy backs large arrays with
    # transparent huge pages, which saves most of the page faults of first touch.
    out = {
        "doc_rows": np.empty(n_docs + 1, dtype=np.int64),
        "row_values": np.empty(n_images + 1, dtype=np.int64),
        "values": np.empty(total_values, dtype=values.dtype),
        "matched_text_index": np.empty(n_images, dtype=np.int64),
        "matched_sim": np.empty(n_images, dtype=np.float64),
        "unaligned_offsets": np.empty(n_docs + 1, dtype=np.int64),
        "unaligned": np.empty(n_images, dtype=np.int64),
    }
    status, doc, detail, detail2, n_unaligned = _fill(
        doc_rows, row_values, values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences,
        code, max_images, max_sentences, max_cols, *out.values(),
    )
    if status != OK:
        raise RealignError(int(doc), _reason(status, int(detail), int(detail2)))
    out["unaligned"] = out["unaligned"][:n_unaligned]
    return out
