"""MMC4 similarity realignment on flat buffers: a whole batch of documents per call.

An MMC4 document keeps its original ``similarity_matrix`` (original images x original sentences)
and, per original image, its ``matched_text_index``. Processing drops and reorders images and
sentences; ``image_index`` (per current image: its original row, or -1 for an image added by
processing) and ``sentence_index`` (per current sentence: its original column) record how. This
kernel cuts each document's matrix down to current images x current sentences and recomputes
each current image's matched sentence and similarity.

Every ragged column arrives as Arrow-style ``offsets`` (int32 or int64, length n_docs + 1, absolute
positions into ``values``) plus flat ``values``; the matrix is doubly nested (document -> rows ->
values). Nothing is materialised per document: the output sizes follow from the offsets alone,
and a single pass validates each document and writes its realignment.

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
METHOD_REPOINT, METHOD_ARGMAX, METHOD_ASSIGNMENT = range(len(METHODS))

OK = 0
RAGGED_ROW = 1
ROWS_NOT_MATCHED = 2
MATCH_OUT_OF_RANGE = 3
IMAGE_OUT_OF_RANGE = 4
SENTENCE_OUT_OF_RANGE = 5
NOT_FINITE = 6

# Hot loops index with unsigned positions: numba then skips its negative-index wraparound, which
# otherwise costs three instructions per access (and a register) on every load and store.
U = np.uint64


@numba.njit(cache=True, nogil=True, _nrt=False)
def _solve_assignment(cost, n_rows, n_cols, col4row, row4col, u, v, shortest, path, remaining, row_seen, col_seen):
    """Minimum-cost assignment of every row (n_rows <= n_cols): scipy's shortest augmenting path.

    Returns False when no finite assignment exists.

    While every row so far took its own cheapest column, the duals ``v`` are all zero, so the next
    row's first search step sees its plain costs: if its cheapest column (lowest index on ties) is
    free, that step ends there, exactly as scipy's would. Such rows skip the search set-up; the
    first row that meets a taken column runs the full search, and so does every row after it.
    """
    for i in range(n_rows):
        u[i] = 0.0
        col4row[i] = -1
    for j in range(n_cols):
        v[j] = 0.0
        row4col[j] = -1
    direct = True
    for current in range(n_rows):
        if direct:
            best = 0
            lowest = cost[current, 0]
            for j in range(1, n_cols):
                if cost[current, j] < lowest:
                    best = j
                    lowest = cost[current, j]
            if row4col[best] == -1:
                u[current] += lowest
                row4col[best] = current
                col4row[current] = best
                continue
            direct = False
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


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _first_outside(array, start, stop, low, high):
    """Position (relative to ``start``) of the first ``array[start:stop]`` value outside [low, high), or -1.

    The common all-valid case is a branch-free reduction; only a bad span is scanned again.
    """
    outside = False
    for position in range(start, stop):
        value = array[U(position)]
        outside |= (value < low) | (value >= high)
    if outside:
        for position in range(start, stop):
            if array[U(position)] < low or array[U(position)] >= high:
                return position - start
    return -1


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _first_ragged(row_values, first_row, n_rows, n_cols):
    """First row of a document whose length differs from ``n_cols``, or -1 (same two-step scan)."""
    ragged = False
    for row in range(first_row, first_row + n_rows):
        ragged |= row_values[U(row + 1)] - row_values[U(row)] != n_cols
    if ragged:
        for row in range(first_row, first_row + n_rows):
            if row_values[U(row + 1)] - row_values[U(row)] != n_cols:
                return row - first_row
    return -1


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _argmax(row, start, length):
    """First position of the maximum of ``row[start:start + length]`` (length >= 1), as numpy's
    argmax on NaN-free rows; a NaN never wins unless it is at position 0."""
    best = 0
    best_value = row[U(start)]
    for position in range(1, length):
        value = row[U(start + position)]
        if value > best_value:
            best = position
            best_value = value
    return best


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _gather_argmax(values, row_start, sentences, first_sentence, n_sentences, out_values, value_out):
    """Copy one realigned row and return :func:`_argmax` of it, in the same loop (the compare
    rides on the load: cheaper than a second pass over the row)."""
    best = 0
    best_value = values[U(row_start + sentences[U(first_sentence)])]
    out_values[U(value_out)] = best_value
    for sentence in range(1, n_sentences):
        value = values[U(row_start + sentences[U(first_sentence + sentence)])]
        out_values[U(value_out + sentence)] = value
        if value > best_value:
            best = sentence
            best_value = value
    return best


@numba.njit(cache=True, nogil=True, _nrt=False)
def _sizes(doc_rows, row_values, image_offsets, sentence_offsets):
    """(values of all realigned matrices, largest current side, largest original column count)."""
    total = 0
    max_side = 0
    max_cols = 0
    for doc in range(image_offsets.shape[0] - 1):
        n_images = image_offsets[doc + 1] - image_offsets[doc]
        n_sentences = sentence_offsets[doc + 1] - sentence_offsets[doc]
        total += n_images * n_sentences
        max_side = max(max_side, n_images, n_sentences)
        if doc_rows[doc + 1] > doc_rows[doc]:
            max_cols = max(max_cols, row_values[doc_rows[doc] + 1] - row_values[doc_rows[doc]])
    return total, max_side, max_cols


@numba.njit(cache=True, nogil=True)
def _realign(
    doc_rows, row_values, values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences, method,
    max_side, max_cols, out_rows, out_row_values, out_values, out_matched, out_sim, unaligned_offsets, unaligned,
):
    """Validate and realign every document in one pass; return (status, doc, detail, detail2, unaligned count)."""
    n_docs = doc_rows.shape[0] - 1
    # position_of[column] = doc << 32 | first current position of that column in ``doc``: tagged
    # with the document, stale entries are harmless, so nothing is reset between documents.
    position_of = np.full(max_cols if method == METHOD_REPOINT else 0, -1, dtype=np.int64)
    side = max_side if method == METHOD_ASSIGNMENT else 0
    cost = np.empty((side, side), dtype=np.float64)
    scratch_int = np.empty((4, side), dtype=np.int64)
    scratch_float = np.empty((3, side), dtype=np.float64)
    scratch_bool = np.empty((2, side), dtype=np.bool_)
    aligned = np.empty(side, dtype=np.int64)

    out_rows[0] = 0
    out_row_values[0] = 0
    unaligned_offsets[0] = 0
    image_out = 0
    value_out = 0
    unaligned_out = 0
    nan = np.nan
    for doc in range(n_docs):
        first_row = doc_rows[doc]
        n_rows = doc_rows[doc + 1] - first_row
        n_cols = row_values[first_row + 1] - row_values[first_row] if n_rows > 0 else 0
        first_match = matched_offsets[doc]
        first_image = image_offsets[doc]
        n_images = image_offsets[doc + 1] - first_image
        first_sentence = sentence_offsets[doc]
        n_sentences = sentence_offsets[doc + 1] - first_sentence

        bad = _first_ragged(row_values, first_row, n_rows, n_cols)
        if bad >= 0:
            length = row_values[first_row + bad + 1] - row_values[first_row + bad]
            return RAGGED_ROW, doc, bad, length * (1 << 32) + n_cols, 0
        n_matched = matched_offsets[doc + 1] - first_match
        if n_matched != n_rows:
            return ROWS_NOT_MATCHED, doc, n_rows, n_matched, 0
        bad = _first_outside(matched, first_match, first_match + n_matched, 0, n_cols)
        if bad >= 0:
            return MATCH_OUT_OF_RANGE, doc, bad, matched[first_match + bad], 0
        bad = _first_outside(images, first_image, first_image + n_images, -1, n_rows)
        if bad >= 0:
            return IMAGE_OUT_OF_RANGE, doc, bad, images[first_image + bad], 0
        # Without a single row the original column count is unknown, so columns are unchecked
        # (no image has a row then, so no column is ever read).
        if n_rows > 0:
            bad = _first_outside(sentences, first_sentence, first_sentence + n_sentences, 0, n_cols)
            if bad >= 0:
                return SENTENCE_OUT_OF_RANGE, doc, bad, sentences[first_sentence + bad], 0

        if method == METHOD_REPOINT and n_rows > 0:
            tag = doc << 32
            # Backwards, so a duplicated sentence ends up at its first position.
            for sentence in range(n_sentences - 1, -1, -1):
                position_of[U(sentences[U(first_sentence + sentence)])] = tag | sentence

        n_aligned = 0
        for image in range(n_images):
            original = images[U(first_image + image)]
            position = image_out + image
            if original < 0:
                for sentence in range(n_sentences):
                    out_values[U(value_out + sentence)] = nan
                unaligned[unaligned_out] = image
                unaligned_out += 1
                out_matched[U(position)] = -1
                out_sim[U(position)] = nan
            else:
                row_start = row_values[U(first_row + original)]
                best = -1
                if method == METHOD_REPOINT and n_sentences > 0:
                    kept = position_of[U(matched[U(first_match + original)])]
                    best = kept & 0xFFFFFFFF if kept >> 32 == doc else -1
                if method != METHOD_ASSIGNMENT and n_sentences > 0 and best < 0:
                    best = _gather_argmax(values, row_start, sentences, first_sentence, n_sentences, out_values, value_out)
                else:
                    for sentence in range(n_sentences):
                        out_values[U(value_out + sentence)] = values[U(row_start + sentences[U(first_sentence + sentence)])]
                if method == METHOD_ASSIGNMENT:
                    aligned[n_aligned] = image
                    n_aligned += 1
                out_matched[U(position)] = best
                out_sim[U(position)] = out_values[U(value_out + best)] if best >= 0 else nan
            value_out += n_sentences
            out_row_values[U(position + 1)] = value_out

        if method == METHOD_ASSIGNMENT and n_aligned > 0 and n_sentences > 0:
            status, detail, detail2 = _assign(
                out_values, out_row_values, image_out, aligned, n_aligned, n_sentences, out_matched, out_sim,
                cost, scratch_int, scratch_float, scratch_bool,
            )
            if status != OK:
                return status, doc, detail, detail2, 0
        image_out += n_images
        out_rows[doc + 1] = image_out
        unaligned_offsets[doc + 1] = unaligned_out
    return OK, -1, 0, 0, unaligned_out


@numba.njit(cache=True, nogil=True, _nrt=False)
def _assign(out_values, out_row_values, image_out, aligned, n_aligned, n_sentences, out_matched, out_sim, cost, scratch_int, scratch_float, scratch_bool):
    """MMC4's assignment for one document whose realigned rows are already written; (status, image, sentence)."""
    # Images are the assignment's rows unless they outnumber the sentences (scipy transposes).
    transposed = n_aligned > n_sentences
    n_rows = n_sentences if transposed else n_aligned
    n_cols = n_aligned if transposed else n_sentences
    for a in range(n_aligned):
        row_start = out_row_values[image_out + aligned[a]]
        finite = True
        for sentence in range(n_sentences):
            similarity = np.float64(out_values[row_start + sentence])
            finite &= np.isfinite(similarity)
            if transposed:
                cost[sentence, a] = -similarity
            else:
                cost[a, sentence] = -similarity
        if not finite:
            for sentence in range(n_sentences):
                if not np.isfinite(out_values[row_start + sentence]):
                    return NOT_FINITE, aligned[a], sentence
    col4row = scratch_int[0]
    _solve_assignment(cost, n_rows, n_cols, col4row, scratch_int[1], scratch_float[0], scratch_float[1], scratch_float[2],
                      scratch_int[2], scratch_int[3], scratch_bool[0], scratch_bool[1])
    if transposed:
        for a in range(n_aligned):
            out_matched[image_out + aligned[a]] = -1
        for sentence in range(n_sentences):
            out_matched[image_out + aligned[col4row[sentence]]] = sentence
        for a in range(n_aligned):
            position = image_out + aligned[a]
            row_start = out_row_values[position]
            if out_matched[position] < 0:
                out_matched[position] = _argmax(out_values, row_start, n_sentences)
            out_sim[position] = out_values[row_start + out_matched[position]]
    else:
        for a in range(n_aligned):
            position = image_out + aligned[a]
            out_matched[position] = col4row[a]
            out_sim[position] = out_values[out_row_values[position] + col4row[a]]
    return OK, 0, 0


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
    doc_rows : ndarray of int32 or int64, shape (n_docs + 1,)
        Matrix rows of each document: rows ``doc_rows[i]:doc_rows[i + 1]`` of ``row_values``.
    row_values : ndarray of int32 or int64, shape (n_rows + 1,)
        Values of each matrix row: ``values[row_values[r]:row_values[r + 1]]``.
    values : ndarray of float64 or float32, shape (n_values,)
        All similarities, row-major.
    matched_offsets, matched : ndarray of int32 or int64 (offsets), int64 (values)
        Original ``matched_text_index`` per original image, as offsets (n_docs + 1) and values;
        likewise for the two below.
    image_offsets, images : ndarray
        ``image_index`` per current image (-1: no original row).
    sentence_offsets, sentences : ndarray
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
    ``"assignment"`` adds O(m^2 * s) per document (m = min side, s = max side). One pass over
    the data, validating as it writes; no per-document allocation.

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
    n_docs = doc_rows.shape[0] - 1
    n_images = int(image_offsets[-1] - image_offsets[0])
    total_values, max_side, max_cols = _sizes(doc_rows, row_values, image_offsets, sentence_offsets)
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
    status, doc, detail, detail2, n_unaligned = _realign(
        doc_rows, row_values, values, matched_offsets, matched, image_offsets, images, sentence_offsets, sentences,
        METHODS.index(method), max_side, max_cols, *out.values(),
    )
    if status != OK:
        raise RealignError(int(doc), _reason(status, int(detail), int(detail2)))
    out["unaligned"] = out["unaligned"][:n_unaligned]
    return out
