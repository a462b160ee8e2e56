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

import numba
import numpy as np

from .json_scan import copy_bytes, put_bytes


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
