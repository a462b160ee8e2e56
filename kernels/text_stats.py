"""Per-row text statistics over Arrow string buffers: words, script mix, language, n-gram repetition.

Arrays in, arrays out: a row is ``data[offsets[i]:offsets[i + 1]]`` (UTF-8 bytes of an Arrow string
array). One pass per row decodes code points, counts words and letters per script, hashes words
for the stopword vote that tells Latin-script languages apart, and counts repeated word n-grams.
"""

from __future__ import annotations

import numba
import numpy as np

# Scripts counted per row; the index is the position in the counts array.
SCRIPT_NAMES = ("latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "thai", "han", "kana", "hangul")
_LATIN, _CYRILLIC, _GREEK, _ARABIC, _HEBREW, _DEVANAGARI, _THAI, _HAN, _KANA, _HANGUL = range(10)

# Language codes the detector can return; index 0 means undetermined.
LANGUAGES = ("und", "en", "fr", "de", "es", "it", "pt", "nl", "ru", "el", "ar", "he", "hi", "th", "zh", "ja", "ko")
_SCRIPT_LANGUAGE = np.array([0, 8, 9, 10, 11, 12, 13, 14, 15, 16], dtype=np.int8)
_LATIN_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl")

# Short, frequent function words: enough to separate the Latin-script languages on a sentence.
_STOPWORDS = {
    "en": "the a of and to in is that it was for on are with as his they be at this have from or by not but what all were when we there can an your which their has would will who been if do how about out them these so its does",
    "fr": "le la les de des du et est un une que qui dans pour pas sur au avec ce il elle sont nous vous par plus ou mais comme cette aux leur été était ont fait",
    "de": "der die das und ist nicht ein eine zu den von mit sich des auf für im dem auch es an als wie aus bei nach wird werden sind war oder aber noch nur",
    "es": "el la los las de y que en un una es por con para del se no al lo como más pero sus su le ya o este sí porque esta entre cuando muy sin sobre también",
    "it": "il di che e la per un una non sono del della le gli con si da nel alla come ma più anche questo dei delle al ha è essere lo suo loro",
    "pt": "o a os as de que e do da em um uma para com não por mais dos das se na no ao é como mas foi ele ela isso seu sua ou quando muito também",
    "nl": "de het een en van is dat op te in zijn met voor niet aan er maar om ook als dan bij nog wel geen naar uit kan door wordt hebben",
}


@numba.njit(cache=True, nogil=True)
def _decode(data: np.ndarray, pos: int, end: int):
    """Code point at ``pos`` and the position after it; malformed bytes decode as U+FFFD, one byte."""
    b0 = np.int64(data[pos])
    if b0 < 0x80:
        return b0, pos + 1
    if b0 >= 0xF0 and pos + 3 < end:
        return ((b0 & 0x07) << 18) | ((np.int64(data[pos + 1]) & 0x3F) << 12) | ((np.int64(data[pos + 2]) & 0x3F) << 6) | (np.int64(data[pos + 3]) & 0x3F), pos + 4
    if b0 >= 0xE0 and pos + 2 < end:
        return ((b0 & 0x0F) << 12) | ((np.int64(data[pos + 1]) & 0x3F) << 6) | (np.int64(data[pos + 2]) & 0x3F), pos + 3
    if b0 >= 0xC0 and pos + 1 < end:
        return ((b0 & 0x1F) << 6) | (np.int64(data[pos + 1]) & 0x3F), pos + 2
    return np.int64(0xFFFD), pos + 1


@numba.njit(cache=True, nogil=True)
def _is_space(cp: np.int64) -> bool:
    return cp == 32 or (9 <= cp <= 13) or cp == 0xA0 or cp == 0x3000 or (0x2000 <= cp <= 0x200A) or cp == 0x2028 or cp == 0x2029


@numba.njit(cache=True, nogil=True)
def _script(cp: np.int64) -> int:
    """Script index of a letter, -1 for anything that is not a letter of a counted script."""
    if cp < 0x80:
        return _LATIN if (65 <= cp <= 90 or 97 <= cp <= 122) else -1
    if 0xC0 <= cp <= 0x24F and cp != 0xD7 and cp != 0xF7:
        return _LATIN
    if 0x370 <= cp <= 0x3FF:
        return _GREEK
    if 0x400 <= cp <= 0x4FF:
        return _CYRILLIC
    if 0x590 <= cp <= 0x5FF:
        return _HEBREW
    if 0x600 <= cp <= 0x6FF or 0x750 <= cp <= 0x77F:
        return _ARABIC
    if 0x900 <= cp <= 0x97F:
        return _DEVANAGARI
    if 0xE00 <= cp <= 0xE7F:
        return _THAI
    if 0x3040 <= cp <= 0x30FF:
        return _KANA
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF:
        return _HAN
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF:
        return _HANGUL
    return -1


@numba.njit(cache=True, nogil=True)
def _lower(cp: np.int64) -> np.int64:
    if 65 <= cp <= 90 or (0xC0 <= cp <= 0xDE and cp != 0xD7) or (0x410 <= cp <= 0x42F):
        return cp + 32
    return cp


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, nogil=True)
def _mix(h: np.uint64, cp: np.int64) -> np.uint64:
    return (h ^ np.uint64(cp)) * _FNV_PRIME


@numba.njit(cache=True, nogil=True)
def _count_repeated(hashes: np.ndarray, n: int, keys: np.ndarray, counts: np.ndarray, used: np.ndarray) -> int:
    """Number of entries of ``hashes[:n]`` whose value occurs more than once.

    Open addressing in ``keys``/``counts`` (size a power of two >= 2n, all zero on entry and left
    zero on return), so a row costs O(n), not a sort.
    """
    if n < 2:
        return 0
    size = 1
    while size < 2 * n:
        size *= 2
    mask = size - 1
    n_used = 0
    for i in range(n):
        key = hashes[i] | np.uint64(1)
        slot = np.int64(key & np.uint64(mask))
        while keys[slot] != 0 and keys[slot] != key:
            slot = (slot + 1) & mask
        if keys[slot] == 0:
            keys[slot] = key
            used[n_used] = slot
            n_used += 1
        counts[slot] += 1
    repeated = 0
    for k in range(n_used):
        slot = used[k]
        if counts[slot] > 1:
            repeated += counts[slot]
        keys[slot] = 0
        counts[slot] = 0
    return repeated


@numba.njit(cache=True, nogil=True)
def _match_token(data, pos, end, tokens, token_offsets) -> int:
    """Index of the special token starting at ``pos``, or -1."""
    for t in range(token_offsets.shape[0] - 1):
        start = token_offsets[t]
        length = token_offsets[t + 1] - start
        if length == 0 or pos + length > end or data[pos] != tokens[start]:
            continue
        same = True
        for k in range(1, length):
            if data[pos + k] != tokens[start + k]:
                same = False
                break
        if same:
            return t
    return -1


@numba.njit(cache=True, nogil=True)
def _role_marker_end(data, pos, start, end) -> int:
    """End of a role marker ``[[name]]:`` at a line start (1-64 characters, no ``]`` or newline), or -1."""
    if pos + 5 >= end or data[pos] != 91 or data[pos + 1] != 91 or (pos != start and data[pos - 1] != 10):
        return -1
    chars = 0
    k = pos + 2
    while k < end and chars <= 64:
        b = data[k]
        if b == 93:
            if chars >= 1 and k + 2 < end and data[k + 1] == 93 and data[k + 2] == 58:
                return k + 3
            return -1
        if b == 10:
            return -1
        if (b & 0xC0) != 0x80:
            chars += 1
        k += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _is_stopword(table, masks, h) -> int:
    slot = np.int64(h & np.uint64(table.shape[0] - 1))
    while table[slot] != 0:
        if table[slot] == h:
            return masks[slot]
        slot = (slot + 1) & (table.shape[0] - 1)
    return 0


# ASCII byte classes for the fast path: 0 punctuation, 1 space, 2 upper-case letter, 3 lower-case
# letter, 4 digit, 5 "<" or "[" (may open a DJ token or a role marker).
_ASCII_CLASS = np.zeros(128, dtype=np.int8)
_ASCII_CLASS[[9, 10, 11, 12, 13, 32]] = 1
_ASCII_CLASS[65:91] = 2
_ASCII_CLASS[97:123] = 3
_ASCII_CLASS[48:58] = 4
_ASCII_CLASS[[60, 91]] = 5


@numba.njit(cache=True, nogil=True)
def _end_word(h, n_words, word_hashes, votes, stop_table, stop_masks, n_latin_languages):
    word_hashes[n_words] = h
    mask = _is_stopword(stop_table, stop_masks, h)
    if mask:
        for lang in range(n_latin_languages):
            if mask & (1 << lang):
                votes[lang] += 1
    return n_words + 1


@numba.njit(cache=True, nogil=True)
def _text_stats(data, offsets, tokens, token_offsets, stop_table, stop_masks, n_latin_languages, ngram,
                words, scripts, language, score, repetition, token_counts, turns):
    n_rows = offsets.shape[0] - 1
    max_len = 0
    for row in range(n_rows):
        max_len = max(max_len, offsets[row + 1] - offsets[row])
    word_hashes = np.empty(max_len + 1, dtype=np.uint64)
    gram_hashes = np.empty(max_len + 1, dtype=np.uint64)
    table_size = 2
    while table_size < 2 * (max_len + 1):
        table_size *= 2
    gram_keys = np.zeros(table_size, dtype=np.uint64)
    gram_counts = np.zeros(table_size, dtype=np.int64)
    gram_used = np.empty(max_len + 1, dtype=np.int64)
    # Polynomial rolling hash of word n-grams: P**(ngram - 1) drops the oldest word in O(1).
    top_power = np.uint64(1)
    for _ in range(ngram - 1):
        top_power *= _FNV_PRIME
    votes = np.zeros(n_latin_languages, dtype=np.int64)
    row_letters = np.zeros(scripts.shape[1], dtype=np.int64)
    ascii_class = _ASCII_CLASS
    for row in range(n_rows):
        start = offsets[row]
        pos = start
        end = offsets[row + 1]
        n_words = 0
        in_word = False
        h = _FNV_OFFSET
        votes[:] = 0
        row_letters[:] = 0
        while pos < end:
            b0 = data[pos]
            if b0 < 128:
                cls = ascii_class[b0]
                if cls == 5:
                    # DJ tokens and role markers are markup, not words: count them and skip.
                    skip_to = -1
                    token = _match_token(data, pos, end, tokens, token_offsets)
                    if token >= 0:
                        token_counts[row, token] += 1
                        skip_to = pos + token_offsets[token + 1] - token_offsets[token]
                    else:
                        skip_to = _role_marker_end(data, pos, start, end)
                        if skip_to >= 0:
                            turns[row] += 1
                    if skip_to >= 0:
                        if in_word:
                            n_words = _end_word(h, n_words, word_hashes, votes, stop_table, stop_masks, n_latin_languages)
                            in_word = False
                            h = _FNV_OFFSET
                        pos = skip_to
                        continue
                    cls = 0
                if cls == 1:
                    if in_word:
                        n_words = _end_word(h, n_words, word_hashes, votes, stop_table, stop_masks, n_latin_languages)
                        in_word = False
                        h = _FNV_OFFSET
                elif cls == 0:
                    # ASCII punctuation glued to a word ("cat," / "(the") is not part of the word.
                    in_word = True
                else:
                    if cls != 4:
                        row_letters[_LATIN] += 1
                    h = (h ^ np.uint64(b0 + 32 if cls == 2 else b0)) * _FNV_PRIME
                    in_word = True
                pos += 1
                continue
            cp, nxt = _decode(data, pos, end)
            script = _script(cp)
            if script >= 0:
                row_letters[script] += 1
            # Han and kana are written without spaces: each character is a word of its own.
            ideograph = script == _HAN or script == _KANA
            if _is_space(cp) or ideograph:
                if in_word:
                    n_words = _end_word(h, n_words, word_hashes, votes, stop_table, stop_masks, n_latin_languages)
                    in_word = False
                    h = _FNV_OFFSET
                if ideograph:
                    word_hashes[n_words] = _mix(_FNV_OFFSET, cp)
                    n_words += 1
            else:
                in_word = True
                h = _mix(h, _lower(cp))
            pos = nxt
        if in_word:
            n_words = _end_word(h, n_words, word_hashes, votes, stop_table, stop_masks, n_latin_languages)
        for s in range(row_letters.shape[0]):
            scripts[row, s] = row_letters[s]
        words[row] = n_words
        n_grams = n_words - ngram + 1
        if n_grams > 1:
            g = np.uint64(0)
            for j in range(ngram):
                g = g * _FNV_PRIME + word_hashes[j]
            gram_hashes[0] = g
            for i in range(1, n_grams):
                g = (g - word_hashes[i - 1] * top_power) * _FNV_PRIME + word_hashes[i + ngram - 1]
                gram_hashes[i] = g
            repetition[row] = _count_repeated(gram_hashes, n_grams, gram_keys, gram_counts, gram_used) / n_grams
        letters = 0
        best = -1
        for s in range(scripts.shape[1]):
            letters += scripts[row, s]
            if best < 0 or scripts[row, s] > scripts[row, best]:
                best = s
        if letters == 0:
            continue
        # Japanese mixes kana into Han text; a tenth of kana is enough to call it Japanese.
        if best == _HAN and scripts[row, _KANA] * 10 >= scripts[row, _HAN] + scripts[row, _KANA]:
            best = _KANA
        if best == _HAN or best == _KANA:
            share = (scripts[row, _HAN] + scripts[row, _KANA]) / letters
        else:
            share = scripts[row, best] / letters
        if best != _LATIN:
            language[row] = _SCRIPT_LANGUAGE[best]
            score[row] = share
            continue
        total_votes = 0
        top = 0
        for lang in range(n_latin_languages):
            total_votes += votes[lang]
            if votes[lang] > votes[top]:
                top = lang
        if votes[top] == 0:
            continue
        language[row] = 1 + top
        score[row] = share * votes[top] / total_votes


@numba.njit(cache=True, nogil=True)
def _word_hash(codepoints: np.ndarray) -> np.uint64:
    h = _FNV_OFFSET
    for cp in codepoints:
        h = _mix(h, _lower(np.int64(cp)))
    return h


def _stopword_table() -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing hash table (linear probing, load < 1/4) of stopword hashes -> language bits."""
    masks: dict[int, int] = {}
    for bit, lang in enumerate(_LATIN_LANGUAGES):
        for word in _STOPWORDS[lang].split():
            key = int(_word_hash(np.array([ord(c) for c in word], dtype=np.int64)))
            masks[key] = masks.get(key, 0) | (1 << bit)
    size = 1 << max(4, (4 * len(masks)).bit_length())
    table = np.zeros(size, dtype=np.uint64)
    values = np.zeros(size, dtype=np.int64)
    for key, mask in masks.items():
        slot = key & (size - 1)
        while table[slot] != 0:
            slot = (slot + 1) & (size - 1)
        table[slot] = key
        values[slot] = mask
    return table, values


_STOP_TABLE, _STOP_MASKS = _stopword_table()


def text_stats(data: np.ndarray, offsets: np.ndarray, ngram: int = 10, tokens: tuple = ()) -> dict[str, np.ndarray]:
    """Words, letters per script, language, word n-gram repetition, special tokens and role markers
    of every row, in one pass.

    Parameters
    ----------
    data : ndarray of uint8
        UTF-8 bytes of an Arrow string array (its data buffer).
    offsets : ndarray of int32 or int64, shape (n + 1,)
        Row ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
    ngram : int
        Length of the word n-grams counted for repetition (Data-Juicer's ``rep_len``, default 10).
    tokens : tuple of str
        Special tokens (e.g. the DJ media and end-of-chunk tokens) counted per row and left out of
        words, scripts and language. Role markers ``[[name]]:`` at a line start (1-64 characters)
        are counted as turns and left out likewise.

    Returns
    -------
    dict of ndarray, each of length n
        ``words`` (int32: whitespace-separated words, each Han/kana character counting as one),
        ``scripts`` (int32, shape (n, len(SCRIPT_NAMES)): letters per script),
        ``language`` (int8 index into ``LANGUAGES``; 0 = undetermined), ``language_score``
        (float64 in [0, 1]: share of letters in the detected script, times the stopword vote
        share for Latin-script languages) and ``repetition`` (float64: share of word n-grams that
        occur more than once in the row, Data-Juicer's word repetition ratio),
        ``token_counts`` (int32, shape (n, len(tokens))) and ``turns`` (int32: role markers).

    Notes
    -----
    O(total bytes): repeated n-grams are counted with a rolling hash and an open-addressing
    table; scratch buffers of the longest row's size. Stopwords are looked up in an open-addressing hash table.

    Example:
        >>> import numpy as np
        >>> data = np.frombuffer("the cat is on the mat 猫がいる".encode(), dtype=np.uint8)
        >>> stats = text_stats(data, np.array([0, 22, data.size]), ngram=2)
        >>> [LANGUAGES[i] for i in stats["language"]], stats["words"].tolist()
        (['en', 'ja'], [6, 4])
        >>> data = np.frombuffer("[[human]]: <img> hi <img>".encode(), dtype=np.uint8)
        >>> stats = text_stats(data, np.array([0, data.size]), tokens=("<img>",))
        >>> stats["turns"].tolist(), stats["token_counts"].tolist(), stats["words"].tolist()
        ([1], [[2]], [1])
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = offsets.shape[0] - 1
    words = np.zeros(n, dtype=np.int32)
    scripts = np.zeros((n, len(SCRIPT_NAMES)), dtype=np.int32)
    language = np.zeros(n, dtype=np.int8)
    score = np.zeros(n, dtype=np.float64)
    repetition = np.zeros(n, dtype=np.float64)
    encoded = [token.encode("utf-8") for token in tokens]
    token_bytes = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
    token_offsets = np.concatenate([[0], np.cumsum([len(token) for token in encoded])]).astype(np.int64)
    token_counts = np.zeros((n, len(encoded)), dtype=np.int32)
    turns = np.zeros(n, dtype=np.int32)
    _text_stats(data, offsets, token_bytes, token_offsets, _STOP_TABLE, _STOP_MASKS, len(_LATIN_LANGUAGES), max(1, int(ngram)),
                words, scripts, language, score, repetition, token_counts, turns)
    return {"words": words, "scripts": scripts, "language": language, "language_score": score, "repetition": repetition,
            "token_counts": token_counts, "turns": turns}
