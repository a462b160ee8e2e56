"""MMC4 documents (JSON text) straight into Arrow buffers: one compiled pass over a batch.

Each document of the common shape (an object with ``text_list``, ``image_info`` and
``similarity_matrix``, an optional string ``url`` and integer ``could_have_url_duplicate``) is read
once: its sentences and image names are unescaped into string buffers, each image's
``matched_text_index`` read, its ``image_info`` text copied as it is (every other value in it checked
to be valid JSON), its matrix parsed into float64 (:func:`hf_mmbuilder.kernels.json_numbers.matrix_value`).
Members with other names are checked and flagged (``EXTRA``): the caller decodes those itself.

Anything the pass is not sure about leaves the document to the careful path (``FALLBACK``: nothing
written for it): a wrong type, an escaped key, a repeated member, a match out of range, a matrix
that is not images x sentences, a sentence holding a DJ token, a number it cannot settle, nesting
deeper than :data:`DEPTH`. Bytes are copied as they are: the caller checks UTF-8 beforehand.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from .json_numbers import POWERS, matrix_value
from .json_scan import copy_bytes, skip_whitespace, starts_with, string_end, unescape_escape, unescape_string

FAST = 0
FALLBACK = 1
EXTRA = 2

# Nesting accepted inside a value the pass only checks (deeper ones go the careful way, which
# applies the reader's real limit).
DEPTH = 64

_KEYS = (b"text_list", b"image_info", b"similarity_matrix", b"url", b"could_have_url_duplicate", b"image_name", b"matched_text_index")
_KEY_BYTES = np.frombuffer(b"".join(_KEYS), np.uint8)
_KEY_OFFSETS = np.cumsum([0] + [len(key) for key in _KEYS]).astype(np.int64)
_TEXT_LIST, _IMAGE_INFO, _MATRIX, _URL, _DUPLICATE, _IMAGE_NAME, _MATCH = range(len(_KEYS))
_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)

# Counters of the output buffers (one int64 array, saved and restored around a document).
_N_SENTENCES, _SENTENCE_BYTES, _N_IMAGES, _NAME_BYTES, _INFO_BYTES, _URL_BYTES, _DUPLICATE_BYTES, _N_VALUES, _N_ROWS = range(9)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _key(buf, start, stop, first, last):
    """Index among ``_KEYS[first:last]`` of the key ``buf[start:stop]`` (no quotes), -1 if none,
    -2 if it holds an escape (its decoded name is for the careful path to see)."""
    for j in range(start, stop):
        if buf[j] == 92:
            return -2
    for k in range(first, last):
        a, b = _KEY_OFFSETS[k], _KEY_OFFSETS[k + 1]
        if b - a == stop - start and starts_with(buf, start, stop, _KEY_BYTES[a:b]):
            return k
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _checked_string_end(buf, i, end, scratch):
    """``buf[i]`` is a quote: one past the closing quote of a valid JSON string, else -1."""
    i += 1
    while i < end:
        c = buf[i]
        if c == 34:
            return i + 1
        if c < 32:
            return -1
        if c == 92:
            i, _ = unescape_escape(buf, i, end, scratch, 0)
            if i < 0:
                return -1
            continue
        i += 1
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _member_key(buf, i, end, scratch):
    """Check the member key at ``buf[i]`` and the colon after it; the position after the colon,
    or -1."""
    if i >= end or buf[i] != 34:
        return -1
    key_end = _checked_string_end(buf, i, end, scratch)
    if key_end < 0:
        return -1
    i = skip_whitespace(buf, key_end, end)
    if i >= end or buf[i] != 58:
        return -1
    return i + 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _number_end(buf, i, end):
    """One past a JSON number at ``buf[i]`` every reader takes alike (at most 18 integer digits,
    a two-digit exponent), else -1."""
    if i < end and buf[i] == 45:
        i += 1
    if i >= end or not 48 <= buf[i] <= 57:
        return -1
    if buf[i] == 48:
        i += 1
    else:
        digits = 0
        while i < end and 48 <= buf[i] <= 57:
            i += 1
            digits += 1
        if digits > 18:
            return -1
    if i < end and buf[i] == 46:
        i += 1
        if i >= end or not 48 <= buf[i] <= 57:
            return -1
        while i < end and 48 <= buf[i] <= 57:
            i += 1
    if i < end and (buf[i] == 101 or buf[i] == 69):
        i += 1
        if i < end and (buf[i] == 43 or buf[i] == 45):
            i += 1
        digits = 0
        while i < end and 48 <= buf[i] <= 57:
            i += 1
            digits += 1
        if digits == 0 or digits > 2:
            return -1
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def _integer(buf, i, end):
    """A non-negative integer written as Python prints it (at most 18 digits) at ``buf[i]``:
    ``(position after it, value)``, the position -1 otherwise."""
    value = 0
    start = i
    while i < end and 48 <= buf[i] <= 57:
        value = value * 10 + (buf[i] - 48)
        i += 1
    digits = i - start
    if digits == 0 or digits > 18 or (buf[start] == 48 and digits > 1):
        return -1, 0
    if i < end and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69):
        return -1, 0
    return i, value


@numba.njit(cache=True, nogil=True, _nrt=False)
def valid_value_end(buf, i, end, stack, scratch):
    """One past the valid JSON value at ``buf[i]`` (nested at most ``len(stack)`` levels), else -1.

    Unlike :func:`hf_mmbuilder.kernels.json_scan.value_end` it checks the whole grammar: escapes,
    surrogate pairs, numbers (as :func:`_number_end`), literals, separators.
    """
    depth = 0
    while True:
        # A value starts at i.
        i = skip_whitespace(buf, i, end)
        if i >= end:
            return -1
        c = buf[i]
        opened = False
        if c == 123 or c == 91:
            j = skip_whitespace(buf, i + 1, end)
            if j < end and buf[j] == c + 2:
                i = j + 1
            else:
                if depth == stack.shape[0]:
                    return -1
                stack[depth] = c
                depth += 1
                i = j
                opened = True
        elif c == 34:
            i = _checked_string_end(buf, i, end, scratch)
        elif c == 45 or 48 <= c <= 57:
            i = _number_end(buf, i, end)
        elif c == 116 and starts_with(buf, i, end, _TRUE):
            i += 4
        elif c == 102 and starts_with(buf, i, end, _FALSE):
            i += 5
        elif c == 110 and starts_with(buf, i, end, _NULL):
            i += 4
        else:
            return -1
        if i < 0:
            return -1
        if opened and stack[depth - 1] == 123:
            # The first member's key.
            i = _member_key(buf, i, end, scratch)
            if i < 0:
                return -1
            continue
        if opened:
            continue
        # After a complete value: close containers or move to the next element.
        while True:
            if depth == 0:
                return i
            i = skip_whitespace(buf, i, end)
            if i >= end:
                return -1
            c = buf[i]
            if c == 44:
                i = skip_whitespace(buf, i + 1, end)
                if stack[depth - 1] == 123:
                    i = _member_key(buf, i, end, scratch)
                    if i < 0:
                        return -1
                break
            if c == stack[depth - 1] + 2:
                depth -= 1
                i += 1
                continue
            return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _holds_token(data, start, stop, first, second):
    for i in range(start, stop):
        byte = data[i]
        if (byte == first[0] and starts_with(data, i, stop, first)) or (byte == second[0] and starts_with(data, i, stop, second)):
            return True
    return False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _sentences(buf, i, end, counters, sentence_data, sentence_offsets, image_token, eoc_token):
    """The ``text_list`` at ``buf[i]``: its strings appended; the position after it, or -1."""
    if buf[i] != 91:
        return -1
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1
    while i < end:
        if buf[i] != 34:
            return -1
        o = counters[_SENTENCE_BYTES]
        i, o_end = unescape_string(buf, i, end, sentence_data, o)
        if i < 0 or _holds_token(sentence_data, o, o_end, image_token, eoc_token):
            return -1
        counters[_SENTENCE_BYTES] = o_end
        counters[_N_SENTENCES] += 1
        sentence_offsets[counters[_N_SENTENCES]] = o_end
        i = skip_whitespace(buf, i, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1
        return -1
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _images(buf, i, end, counters, name_data, name_offsets, matches, stack, scratch):
    """The ``image_info`` at ``buf[i]``: each entry's ``image_name`` and ``matched_text_index``
    appended, its other members checked; the position after it, or -1."""
    if buf[i] != 91:
        return -1
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1
    while i < end:
        if buf[i] != 123:
            return -1
        i = skip_whitespace(buf, i + 1, end)
        has_name = False
        has_match = False
        while i < end and buf[i] == 34:
            key_end = string_end(buf, i, end)
            if key_end < 0:
                return -1
            k = _key(buf, i + 1, key_end - 1, _IMAGE_NAME, _MATCH + 1)
            if k == -2:
                return -1
            i = skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                return -1
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                return -1
            if k == _IMAGE_NAME:
                if has_name or buf[i] != 34:
                    return -1
                has_name = True
                i, o = unescape_string(buf, i, end, name_data, counters[_NAME_BYTES])
                counters[_NAME_BYTES] = o
            elif k == _MATCH:
                if has_match:
                    return -1
                has_match = True
                i, value = _integer(buf, i, end)
                matches[counters[_N_IMAGES]] = value
            else:
                i = valid_value_end(buf, i, end, stack, scratch)
            if i < 0:
                return -1
            i = skip_whitespace(buf, i, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                if i >= end or buf[i] != 34:
                    return -1
                continue
            break
        if i >= end or buf[i] != 125 or not has_name or not has_match:
            return -1
        counters[_N_IMAGES] += 1
        name_offsets[counters[_N_IMAGES]] = counters[_NAME_BYTES]
        i = skip_whitespace(buf, i + 1, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1
        return -1
    return -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _document(buf, i, end, counters, sentence_data, sentence_offsets, name_data, name_offsets, matches, info_data,
              url_data, duplicate_data, values, values_bits, row_offsets, image_token, eoc_token, stack, scratch, powers):
    """Read one document into the buffers: ``(status, has url, has duplicate)``; on ``FALLBACK``
    the counters are left where the document's writes stopped (the caller restores them)."""
    first_sentence, first_image, first_row = counters[_N_SENTENCES], counters[_N_IMAGES], counters[_N_ROWS]
    i = skip_whitespace(buf, i, end)
    if i >= end or buf[i] != 123:
        return FALLBACK, False, False
    i = skip_whitespace(buf, i + 1, end)
    seen = np.uint8(0)
    extra = False
    while i < end and buf[i] == 34:
        key_end = string_end(buf, i, end)
        if key_end < 0:
            return FALLBACK, False, False
        k = _key(buf, i + 1, key_end - 1, _TEXT_LIST, _DUPLICATE + 1)
        if k == -2:
            return FALLBACK, False, False
        i = skip_whitespace(buf, key_end, end)
        if i >= end or buf[i] != 58:
            return FALLBACK, False, False
        i = skip_whitespace(buf, i + 1, end)
        if i >= end:
            return FALLBACK, False, False
        if k >= 0:
            bit = np.uint8(1 << k)
            if seen & bit:
                return FALLBACK, False, False
            seen |= bit
        if k == _TEXT_LIST:
            i = _sentences(buf, i, end, counters, sentence_data, sentence_offsets, image_token, eoc_token)
        elif k == _IMAGE_INFO:
            start = i
            i = _images(buf, i, end, counters, name_data, name_offsets, matches, stack, scratch)
            if i >= 0:
                counters[_INFO_BYTES] = copy_bytes(info_data, counters[_INFO_BYTES], buf, start, i)
        elif k == _MATRIX:
            i, n_values, n_rows = matrix_value(buf, i, end, values, values_bits, counters[_N_VALUES], row_offsets, counters[_N_ROWS], powers)
            counters[_N_VALUES] = n_values
            counters[_N_ROWS] = n_rows
        elif k == _URL:
            if buf[i] != 34:
                return FALLBACK, False, False
            i, o = unescape_string(buf, i, end, url_data, counters[_URL_BYTES])
            counters[_URL_BYTES] = o
        elif k == _DUPLICATE:
            start = i
            i = _integer(buf, i + 1 if buf[i] == 45 else i, end)[0]
            if i >= 0:
                if buf[start] == 45 and i == start + 2 and buf[start + 1] == 48:
                    # "-0" is printed back as "0": not the source's text.
                    return FALLBACK, False, False
                counters[_DUPLICATE_BYTES] = copy_bytes(duplicate_data, counters[_DUPLICATE_BYTES], buf, start, i)
        else:
            extra = True
            i = valid_value_end(buf, i, end, stack, scratch)
        if i < 0:
            return FALLBACK, False, False
        i = skip_whitespace(buf, i, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            if i >= end or buf[i] != 34:
                return FALLBACK, False, False
            continue
        break
    if i >= end or buf[i] != 125 or skip_whitespace(buf, i + 1, end) != end:
        return FALLBACK, False, False
    required = np.uint8((1 << _TEXT_LIST) | (1 << _IMAGE_INFO) | (1 << _MATRIX))
    if seen & required != required:
        return FALLBACK, False, False
    n_sentences = counters[_N_SENTENCES] - first_sentence
    n_images = counters[_N_IMAGES] - first_image
    if counters[_N_ROWS] - first_row != n_images:
        return FALLBACK, False, False
    for row in range(first_row, counters[_N_ROWS]):
        if row_offsets[row + 1] - row_offsets[row] != n_sentences:
            return FALLBACK, False, False
    for image in range(first_image, counters[_N_IMAGES]):
        if matches[image] >= n_sentences:
            return FALLBACK, False, False
    return EXTRA if extra else FAST, (seen >> _URL) & 1 == 1, (seen >> _DUPLICATE) & 1 == 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _parse(buf, starts, ends, status, counters, positions, doc_sentences, doc_images, doc_rows, info_offsets, url_offsets, url_valid,
           duplicate_offsets, duplicate_valid, sentence_data, sentence_offsets, name_data, name_offsets, matches, info_data, url_data,
           duplicate_data, values, values_bits, row_offsets, image_token, eoc_token, stack, scratch, powers, saved):
    n = 0
    sentence_offsets[0] = 0
    name_offsets[0] = 0
    row_offsets[0] = 0
    doc_sentences[0] = 0
    doc_images[0] = 0
    doc_rows[0] = 0
    info_offsets[0] = 0
    url_offsets[0] = 0
    duplicate_offsets[0] = 0
    for r in range(starts.shape[0]):
        for k in range(counters.shape[0]):
            saved[k] = counters[k]
        result, has_url, has_duplicate = _document(buf, starts[r], ends[r], counters, sentence_data, sentence_offsets, name_data, name_offsets,
                                                   matches, info_data, url_data, duplicate_data, values, values_bits, row_offsets,
                                                   image_token, eoc_token, stack, scratch, powers)
        status[r] = result
        if result == FALLBACK:
            for k in range(counters.shape[0]):
                counters[k] = saved[k]
            continue
        positions[n] = r
        url_valid[n] = has_url
        duplicate_valid[n] = has_duplicate
        n += 1
        doc_sentences[n] = counters[_N_SENTENCES]
        doc_images[n] = counters[_N_IMAGES]
        doc_rows[n] = counters[_N_ROWS]
        info_offsets[n] = counters[_INFO_BYTES]
        url_offsets[n] = counters[_URL_BYTES]
        duplicate_offsets[n] = counters[_DUPLICATE_BYTES]
    return n


@dataclasses.dataclass
class Documents:
    """The documents :func:`parse_documents` read, in Arrow layouts (offsets start at 0).

    ``positions``: each one's record in the batch. Per document: ``sentence_offsets`` into
    ``sentence_ends`` (the sentences: ``sentence_data`` cut at ``sentence_ends``, which start at
    0), ``image_offsets`` into ``name_ends``/``matches``, ``row_offsets`` into ``value_offsets``
    (the matrix rows, cutting ``values``), ``info_offsets`` into ``info_data`` (each
    ``image_info`` as its source text), ``url_offsets``/``url_valid`` and
    ``duplicate_offsets``/``duplicate_valid`` (``could_have_url_duplicate`` as its source text).
    """

    positions: np.ndarray
    sentence_offsets: np.ndarray
    sentence_ends: np.ndarray
    sentence_data: np.ndarray
    image_offsets: np.ndarray
    name_ends: np.ndarray
    name_data: np.ndarray
    matches: np.ndarray
    row_offsets: np.ndarray
    value_offsets: np.ndarray
    values: np.ndarray
    info_offsets: np.ndarray
    info_data: np.ndarray
    url_offsets: np.ndarray
    url_valid: np.ndarray
    url_data: np.ndarray
    duplicate_offsets: np.ndarray
    duplicate_valid: np.ndarray
    duplicate_data: np.ndarray


def parse_documents(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, image_token: bytes, eoc_token: bytes) -> tuple[np.ndarray, Documents]:
    """Read the MMC4 documents ``buf[starts[r]:ends[r]]`` (valid UTF-8) in one compiled pass.

    Returns ``status`` (int8 per record: ``FAST``, ``EXTRA`` (read, and it has other members
    for the caller to decode) or ``FALLBACK`` (nothing read: for the careful path)) and the
    :class:`Documents` read. Complexity O(len(buf)); memory a few times the batch.

    Example:
        >>> buf = np.frombuffer(b'{"text_list": ["a\\\\n", "b"], "image_info": [{"image_name": "x.jpg", "matched_text_index": 1, '
        ...                     b'"s": [1e-3, null]}], "similarity_matrix": [[0.5, 1]], "url": "u", "k": {}}{"text_list": 1}', np.uint8)
        >>> status, docs = parse_documents(buf, np.array([0, 166]), np.array([166, 182]), b"<i>", b"<e>")
        >>> status.tolist(), docs.positions.tolist(), bytes(docs.sentence_data), docs.sentence_ends.tolist()
        ([2, 1], [0], b'a\\nb', [0, 2, 3])
        >>> bytes(docs.name_data), docs.matches.tolist(), docs.values.tolist(), docs.url_valid.tolist(), docs.duplicate_valid.tolist()
        (b'x.jpg', [1], [0.5, 1.0], [True], [False])
    """
    size = buf.shape[0]
    n = starts.shape[0]
    # A sentence, name, value or row takes at least two bytes of the source with its separator.
    items = size // 2 + 2
    status = np.empty(n, np.int8)
    counters = np.zeros(9, np.int64)
    positions = np.empty(n, np.int64)
    per_doc = [np.empty(n + 1, np.int64) for _ in range(6)]
    url_valid, duplicate_valid = np.empty(n, np.bool_), np.empty(n, np.bool_)
    sentence_data, name_data, info_data, url_data, duplicate_data = (np.empty(size, np.uint8) for _ in range(5))
    sentence_offsets, name_offsets, matches = np.empty(items, np.int64), np.empty(items, np.int64), np.empty(items, np.int64)
    values, row_offsets = np.empty(items, np.float64), np.empty(items, np.int64)
    doc_sentences, doc_images, doc_rows, info_offsets, url_offsets, duplicate_offsets = per_doc
    found = _parse(buf, starts, ends, status, counters, positions, doc_sentences, doc_images, doc_rows, info_offsets, url_offsets, url_valid,
                   duplicate_offsets, duplicate_valid, sentence_data, sentence_offsets, name_data, name_offsets, matches, info_data, url_data,
                   duplicate_data, values, values.view(np.uint64), row_offsets, np.frombuffer(image_token, np.uint8),
                   np.frombuffer(eoc_token, np.uint8), np.empty(DEPTH, np.uint8), np.empty(8, np.uint8), POWERS, np.empty(9, np.int64))
    c = counters
    return status, Documents(
        positions[:found], doc_sentences[: found + 1], sentence_offsets[: c[_N_SENTENCES] + 1], sentence_data[: c[_SENTENCE_BYTES]],
        doc_images[: found + 1], name_offsets[: c[_N_IMAGES] + 1], name_data[: c[_NAME_BYTES]], matches[: c[_N_IMAGES]],
        doc_rows[: found + 1], row_offsets[: c[_N_ROWS] + 1], values[: c[_N_VALUES]], info_offsets[: found + 1], info_data[: c[_INFO_BYTES]],
        url_offsets[: found + 1], url_valid[:found], url_data[: c[_URL_BYTES]],
        duplicate_offsets[: found + 1], duplicate_valid[:found], duplicate_data[: c[_DUPLICATE_BYTES]],
    )
