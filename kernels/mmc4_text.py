"""MMC4 documents to Data-Juicer text on flat buffers: a whole batch of documents per call.

Input per batch: the sentences of every document as one Arrow-style string array (``offsets``
into UTF-8 ``data``), ``sentence_offsets`` (document -> its sentences), ``image_offsets``
(document -> its images) and each image's ``matches`` (its sentence within the document).
Output: each document's text exactly as Data-Juicer's ``mmc4_to_dj.py`` writes it (the image tokens
of a sentence joined by the separator, before or after the sentence; sentences joined by
``" " + eoc + separator``; ``" " + eoc`` at the end when asked) and the order of the images (stable
by matched sentence), so the caller can take the image names in text order.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from .json_scan import copy_bytes, put_bytes, starts_with


@numba.njit(cache=True, nogil=True, _nrt=False)
def _text_size(sentence_offsets, string_offsets, image_offsets, token_len, eoc_len, separator_len, add_eoc_at_last):
    n_docs = sentence_offsets.shape[0] - 1
    total = string_offsets[sentence_offsets[n_docs]] - string_offsets[sentence_offsets[0]]
    for doc in range(n_docs):
        n_sentences = sentence_offsets[doc + 1] - sentence_offsets[doc]
        if n_sentences > 1:
            total += (n_sentences - 1) * (1 + eoc_len + separator_len)
        if add_eoc_at_last:
            total += 1 + eoc_len
    # Each image adds its token and one separator (between tokens, or between group and sentence).
    total += (image_offsets[n_docs] - image_offsets[0]) * (token_len + separator_len)
    return total


@numba.njit(cache=True, nogil=True, _nrt=False)
def _build(sentence_offsets, string_offsets, data, image_offsets, matches, token, eoc, separator, before, add_eoc_at_last,
           text, text_offsets, order, counts, firsts):
    n_docs = sentence_offsets.shape[0] - 1
    position = 0
    text_offsets[0] = 0
    for doc in range(n_docs):
        first_sentence = sentence_offsets[doc]
        n_sentences = sentence_offsets[doc + 1] - first_sentence
        first_image = image_offsets[doc]
        n_images = image_offsets[doc + 1] - first_image
        for s in range(n_sentences):
            counts[s] = 0
        for i in range(n_images):
            counts[matches[first_image + i]] += 1
        # Counting sort: stable by matched sentence, as Data-Juicer's list.sort.
        running = first_image
        for s in range(n_sentences):
            firsts[s] = running
            running += counts[s]
        for i in range(n_images):
            match = matches[first_image + i]
            order[firsts[match]] = first_image + i
            firsts[match] += 1
        for s in range(n_sentences):
            if s > 0:
                text[position] = 32
                position += 1
                position = put_bytes(text, position, eoc)
                position = put_bytes(text, position, separator)
            count = counts[s]
            start = string_offsets[first_sentence + s]
            stop = string_offsets[first_sentence + s + 1]
            if count > 0 and before:
                for k in range(count):
                    position = put_bytes(text, position, token)
                    position = put_bytes(text, position, separator)
            position = copy_bytes(text, position, data, start, stop)
            if count > 0 and not before:
                for k in range(count):
                    position = put_bytes(text, position, separator)
                    position = put_bytes(text, position, token)
        if add_eoc_at_last:
            text[position] = 32
            position += 1
            position = put_bytes(text, position, eoc)
        text_offsets[doc + 1] = position


def mmc4_texts(sentence_offsets: np.ndarray, string_offsets: np.ndarray, data: np.ndarray, image_offsets: np.ndarray,
               matches: np.ndarray, image_token: bytes, eoc_token: bytes, separator: bytes, before: bool,
               add_eoc_at_last: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data-Juicer MMC4 texts of a batch of documents.

    Parameters
    ----------
    sentence_offsets : int64, shape (n_docs + 1,)
        Document ``d``'s sentences are strings ``sentence_offsets[d]:sentence_offsets[d + 1]``.
    string_offsets : int32 or int64, shape (n_strings + 1,); data : uint8
        The sentences (Arrow string layout).
    image_offsets : int64, shape (n_docs + 1,); matches : int64, shape (n_images,)
        Each image's matched sentence, within its document (checked by the caller: in range).
    image_token, eoc_token, separator : bytes (UTF-8)
    before : bool
        Tokens before (``True``) or after their sentence.

    Returns
    -------
    text_offsets : int64, shape (n_docs + 1,); text : uint8
        The texts (Arrow string layout).
    order : int64, shape (n_images,)
        Global image positions in text order (stable by matched sentence within each document).

    Complexity: O(bytes out + images); one pass, no Python per document.

    Example:
        >>> import numpy as np
        >>> data = np.frombuffer(b"ab", np.uint8)
        >>> offsets, text, order = mmc4_texts(np.array([0, 2]), np.array([0, 1, 2]), data, np.array([0, 1]), np.array([1]),
        ...                                   b"<i>", b"<e>", b" ", True, True)
        >>> bytes(text[offsets[0]:offsets[1]]), order
        (b'a <e> <i> b <e>', array([0]))
    """
    token, eoc, sep = (np.frombuffer(value, np.uint8) for value in (image_token, eoc_token, separator))
    size = _text_size(sentence_offsets, string_offsets, image_offsets, token.shape[0], eoc.shape[0], sep.shape[0], add_eoc_at_last)
    n_docs = sentence_offsets.shape[0] - 1
    n_sentences = np.diff(sentence_offsets)
    widest = int(n_sentences.max()) if n_docs else 0
    text = np.empty(size, np.uint8)
    text_offsets = np.empty(n_docs + 1, np.int64)
    order = np.empty(matches.shape[0], np.int64)
    _build(sentence_offsets, string_offsets, data, image_offsets, matches, token, eoc, sep, before, add_eoc_at_last,
           text, text_offsets, order, np.empty(widest, np.int64), np.empty(widest, np.int64))
    return text_offsets, text, order


@numba.njit(cache=True, nogil=True, _nrt=False)
def _contains(sentence_offsets, string_offsets, data, first, second, out):
    n_docs = sentence_offsets.shape[0] - 1
    for doc in range(n_docs):
        found = False
        for s in range(sentence_offsets[doc], sentence_offsets[doc + 1]):
            end = string_offsets[s + 1]
            for i in range(string_offsets[s], end):
                byte = data[i]
                if (byte == first[0] and starts_with(data, i, end, first)) or (byte == second[0] and starts_with(data, i, end, second)):
                    found = True
                    break
            if found:
                break
        out[doc] = found


def documents_containing(sentence_offsets: np.ndarray, string_offsets: np.ndarray, data: np.ndarray, first: bytes, second: bytes) -> np.ndarray:
    """Which documents have a sentence containing ``first`` or ``second`` (non-empty UTF-8 tokens).

    Same layout as :func:`mmc4_texts`; returns bool, shape (n_docs,). Complexity O(bytes).

    Example:
        >>> import numpy as np
        >>> data = np.frombuffer(b"a<e>b", np.uint8)
        >>> documents_containing(np.array([0, 1, 2]), np.array([0, 1, 5]), data, b"<i>", b"<e>")
        array([False,  True])
    """
    out = np.empty(sentence_offsets.shape[0] - 1, np.bool_)
    _contains(sentence_offsets, string_offsets, data, np.frombuffer(first, np.uint8), np.frombuffer(second, np.uint8), out)
    return out


@numba.njit(cache=True, nogil=True, _nrt=False)
def _gather(buf, starts, ends, out, offsets):
    offsets[0] = 0
    o = 0
    for r in range(starts.shape[0]):
        o = copy_bytes(out, o, buf, starts[r], ends[r])
        offsets[r + 1] = o


def gather_ranges(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``buf[starts[r]:ends[r]]`` for every ``r``, concatenated, with int32 offsets (Arrow string layout).

    Example:
        >>> import numpy as np
        >>> data, offsets = gather_ranges(np.frombuffer(b"abcdef", np.uint8), np.array([4, 0]), np.array([6, 1]))
        >>> bytes(data), offsets.tolist()
        (b'efa', [0, 2, 3])
    """
    out = np.empty(int((ends - starts).sum()), np.uint8)
    offsets = np.empty(starts.shape[0] + 1, np.int32)
    _gather(buf, starts, ends, out, offsets)
    return out, offsets


@numba.njit(cache=True, nogil=True, _nrt=False)
def _objects(buf, names, name_offsets, value_starts, value_ends, out):
    o = 0
    for r in range(value_starts.shape[0]):
        out[o] = 123
        o += 1
        first = True
        for k in range(value_starts.shape[1]):
            if value_starts[r, k] < 0:
                continue
            if not first:
                out[o] = 44
                o += 1
            first = False
            o = copy_bytes(out, o, names, name_offsets[k], name_offsets[k + 1])
            o = copy_bytes(out, o, buf, value_starts[r, k], value_ends[r, k])
        out[o] = 125
        out[o + 1] = 10
        o += 2
    return o


def json_objects(buf: np.ndarray, names: Sequence[bytes], value_starts: np.ndarray, value_ends: np.ndarray) -> np.ndarray:
    """One JSON-lines object per row from value ranges of ``buf``: ``{"<names[k]>":<value k>,...}``.

    Absent values (``value_starts[r, k] < 0``) are left out. Feeds Arrow's JSON reader chosen
    members of records without a Python object per record. Complexity O(bytes out).

    Example:
        >>> import numpy as np
        >>> buf = np.frombuffer(b'[1] "x"', np.uint8)
        >>> bytes(json_objects(buf, [b"a", b"b"], np.array([[0, 4], [-1, 4]]), np.array([[3, 7], [-1, 7]])))
        b'{"a":[1],"b":"x"}\\n{"b":"x"}\\n'
    """
    quoted = [b'"' + name + b'":' for name in names]
    name_bytes = np.frombuffer(b"".join(quoted), np.uint8)
    name_offsets = np.cumsum([0] + [len(name) for name in quoted]).astype(np.int64)
    present = value_starts >= 0
    size = int(np.where(present, value_ends - value_starts, 0).sum()) + int((present * (name_offsets[1:] - name_offsets[:-1] + 1)).sum()) + 3 * value_starts.shape[0]
    out = np.empty(size, np.uint8)
    return out[:_objects(buf, name_bytes, name_offsets, value_starts, value_ends, out)]


@numba.njit(cache=True, nogil=True, _nrt=False)
def _integer_literals(buf, starts, ends, out):
    for r in range(starts.shape[0]):
        i, end = starts[r], ends[r]
        if i < end and buf[i] == 45:
            i += 1
        digits = end - i
        good = 1 <= digits <= 18
        for k in range(i, end):
            if not 48 <= buf[k] <= 57:
                good = False
                break
        # No leading zeros and no "-0": the text must be what printing the integer gives.
        if good and buf[i] == 48 and (digits > 1 or i > starts[r]):
            good = False
        out[r] = good


def integer_literals(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each ``buf[starts[r]:ends[r]]`` is an integer as Python prints it (at most 18 digits).

    Example:
        >>> import numpy as np
        >>> buf = np.frombuffer(b"0 -12 007 -0 1.0", np.uint8)
        >>> integer_literals(buf, np.array([0, 2, 6, 10, 13]), np.array([1, 5, 9, 12, 16])).tolist()
        [True, True, False, False, False]
    """
    out = np.empty(starts.shape[0], np.bool_)
    _integer_literals(buf, starts, ends, out)
    return out
