"""ShareGPT / ``messages`` JSON records -> DJ Arrow buffers in one compiled pass.

The kernel reads the raw bytes of a batch of records (LLaMA-Factory string contents with
``<image>``/``<video>``/``<audio>`` tags and top-level media lists, ms-swift extra keys and roles,
OpenAI/Qwen content parts) and writes what the careful path (``loading_scripts/sharegpt.py``
``_row``) builds: the DJ ``text``, the ``roles`` and media lists, the style, which top-level media
keys the record had, the ``messages_layout`` JSON and the ``extra`` JSON. A record it is not sure
about (a key twice, a non-string where a string belongs, an unknown part type, ``[[`` in a text, a
literal DJ token, a tag count that disagrees with the media list...) is flagged ``FALLBACK`` with
nothing written, and the caller converts it on the careful path, which also produces the errors.

The JSON values the careful path keeps as they are (extra keys, content parts) are copied with the
whitespace between tokens removed; the caller checks that each such text is exactly what orjson
writes for it (no escapes to normalise, no floats to reformat, no repeated keys) and sends the
records whose text is not to the careful path.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import MAX_NESTING, ends_with, key_is, put_bytes, skip_whitespace, starts_with, string_end, string_items, unescape_escape, unescape_string, value_end

FAST = 0
FALLBACK = 1

STYLE_LLAMAFACTORY = 0
STYLE_SWIFT = 1
STYLE_OPENAI = 2
# A forced style (``style=...``) is passed as its code; auto detection as this.
STYLE_AUTO = -1

# How a top-level media key appeared (``media_keys``): absent, a list, a single path string.
MEDIA_ABSENT = 0
MEDIA_LIST = 1
MEDIA_STRING = 2

_QUOTE = 34
_BACKSLASH = 92
# Records with more top-level keys, or messages / content parts with more keys, take the careful path.
MAX_KEYS = 64

# Key names and words compiled into the code as constants: no allocation per record.
_IMAGES = np.frombuffer(b"images", np.uint8)
_VIDEOS = np.frombuffer(b"videos", np.uint8)
_AUDIOS = np.frombuffer(b"audios", np.uint8)
_TOOLS = np.frombuffer(b"tools", np.uint8)
_OBJECTS = np.frombuffer(b"objects", np.uint8)
_TOOL_CALL = np.frombuffer(b"tool_call", np.uint8)
_TOOL_RESPONSE = np.frombuffer(b"tool_response", np.uint8)
_TYPE = np.frombuffer(b"type", np.uint8)
_TEXT = np.frombuffer(b"text", np.uint8)
_IMAGE_URL = np.frombuffer(b"image_url", np.uint8)
_IMAGE = np.frombuffer(b"image", np.uint8)
_VIDEO = np.frombuffer(b"video", np.uint8)
_AUDIO = np.frombuffer(b"audio", np.uint8)
_INPUT_AUDIO = np.frombuffer(b"input_audio", np.uint8)
_URL = np.frombuffer(b"url", np.uint8)
_DATA = np.frombuffer(b"data", np.uint8)
_IMAGE_TAG = np.frombuffer(b"<image>", np.uint8)
_VIDEO_TAG = np.frombuffer(b"<video>", np.uint8)
_AUDIO_TAG = np.frombuffer(b"<audio>", np.uint8)
_KEYS_ENTRY = np.frombuffer(b'"keys":{', np.uint8)
_ABSENT_ENTRY = np.frombuffer(b'"absent":true', np.uint8)
_ORDER_ENTRY = np.frombuffer(b'"order":[', np.uint8)
_NULL_ENTRY = np.frombuffer(b'"null":true', np.uint8)
_PARTS_ENTRY = np.frombuffer(b'"parts":', np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)
_KEY_ORDER_MEMBER = np.frombuffer(b'"__key_order__":[', np.uint8)
_ROLE_OPEN = np.frombuffer(b"[[", np.uint8)
_ROLE_CLOSE = np.frombuffer(b"]]: ", np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _canonical_string(buf, i, stop, out, o):
    """Copy the JSON string whose opening quote is ``buf[i]`` to ``out[o:]`` if it is written as
    orjson writes it (only ``\\"``, ``\\\\``, ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t`` and a lower-case
    ``\\u00xx`` for the other control characters escaped). Returns ``(position after it, new o)``,
    position -1 when it is not."""
    out[o] = _QUOTE
    o += 1
    i += 1
    while i < stop:
        c = buf[i]
        if c == _QUOTE:
            out[o] = c
            return i + 1, o + 1
        if c < 32:
            return -1, o
        if c == _BACKSLASH:
            if i + 1 >= stop:
                return -1, o
            e = buf[i + 1]
            if e == _QUOTE or e == _BACKSLASH or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                out[o] = c
                out[o + 1] = e
                o += 2
                i += 2
                continue
            if e != 117 or i + 6 > stop or buf[i + 2] != 48 or buf[i + 3] != 48 or not (48 <= buf[i + 4] <= 49):
                return -1, o
            low = buf[i + 5]
            if not (48 <= low <= 57 or 97 <= low <= 102):
                return -1, o
            code = (buf[i + 4] - 48) * 16 + (low - 48 if low <= 57 else low - 87)
            if code == 8 or code == 9 or code == 10 or code == 12 or code == 13:
                return -1, o
            for k in range(6):
                out[o + k] = buf[i + k]
            o += 6
            i += 6
            continue
        out[o] = c
        o += 1
        i += 1
    return -1, o


_CONTAINER_OBJECT = 1
_CONTAINER_ARRAY = 2
# Parser states of canonical_copy.
_EXPECT_VALUE = 0
_EXPECT_VALUE_OR_CLOSE = 1
_EXPECT_KEY = 2
_EXPECT_KEY_OR_CLOSE = 3
_AFTER_VALUE = 4
_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def canonical_copy(buf, i, stop, out, o, containers, key_bases, key_starts, key_ends):
    r"""Copy the JSON value ``buf[i:stop]`` to ``out[o:]`` without the whitespace between tokens,
    if it is valid JSON that orjson would write the same way once decoded: strings escaped as
    orjson escapes them, integers of at most 18 digits (no floats, no ``-0``), no key twice in an
    object. Returns ``(new o, ok)``.

    ``containers``/``key_bases`` (one slot per nesting level) and ``key_starts``/``key_ends``
    (one per key of the open objects) are the caller's scratch; deeper or larger values are not ok.

    Example
    -------
    >>> scratch = [np.empty(8, np.int64) for _ in range(4)]
    >>> out = np.zeros(64, np.uint8)
    >>> source = np.frombuffer(b'{ "a" : [1, " x\\n"], "b": null }', np.uint8)
    >>> o, ok = canonical_copy(source, 0, len(source), out, 0, *scratch)
    >>> bytes(out[:o]), ok
    (b'{"a":[1," x\\n"],"b":null}', True)
    >>> [canonical_copy(np.frombuffer(text, np.uint8), 0, len(text), out, 0, *scratch)[1] for text in (b'{"a":1,"a":2}', b'[1.5]', b'"\\u0041"')]
    [False, False, False]
    """
    depth = 0
    n_keys = 0
    state = _EXPECT_VALUE
    while True:
        i = skip_whitespace(buf, i, stop)
        if state == _AFTER_VALUE:
            if depth == 0:
                return o, i == stop
            if i >= stop:
                return o, False
            c = buf[i]
            top = containers[depth - 1]
            if c == 44:
                out[o] = c
                o += 1
                i += 1
                state = _EXPECT_KEY if top == _CONTAINER_OBJECT else _EXPECT_VALUE
            elif (c == 125 and top == _CONTAINER_OBJECT) or (c == 93 and top == _CONTAINER_ARRAY):
                out[o] = c
                o += 1
                i += 1
                depth -= 1
                if top == _CONTAINER_OBJECT:
                    n_keys = key_bases[depth]
            else:
                return o, False
            continue
        if i >= stop:
            return o, False
        c = buf[i]
        if state == _EXPECT_KEY or state == _EXPECT_KEY_OR_CLOSE:
            if c == 125 and state == _EXPECT_KEY_OR_CLOSE:
                out[o] = c
                o += 1
                i += 1
                depth -= 1
                n_keys = key_bases[depth]
                state = _AFTER_VALUE
                continue
            if c != _QUOTE or n_keys == key_starts.shape[0]:
                return o, False
            key_start = o
            i, o = _canonical_string(buf, i, stop, out, o)
            if i < 0:
                return o, False
            # Canonical text is unique per string: a key written twice has the same bytes.
            size = o - key_start
            for k in range(key_bases[depth - 1], n_keys):
                if key_ends[k] - key_starts[k] == size:
                    same = True
                    for j in range(size):
                        if out[key_starts[k] + j] != out[key_start + j]:
                            same = False
                            break
                    if same:
                        return o, False
            key_starts[n_keys] = key_start
            key_ends[n_keys] = o
            n_keys += 1
            i = skip_whitespace(buf, i, stop)
            if i >= stop or buf[i] != 58:
                return o, False
            out[o] = 58
            o += 1
            i += 1
            state = _EXPECT_VALUE
            continue
        if c == 93 and state == _EXPECT_VALUE_OR_CLOSE:
            out[o] = c
            o += 1
            i += 1
            depth -= 1
            state = _AFTER_VALUE
        elif c == 123 or c == 91:
            if depth == containers.shape[0]:
                return o, False
            out[o] = c
            o += 1
            i += 1
            if c == 123:
                containers[depth] = _CONTAINER_OBJECT
                key_bases[depth] = n_keys
                state = _EXPECT_KEY_OR_CLOSE
            else:
                containers[depth] = _CONTAINER_ARRAY
                state = _EXPECT_VALUE_OR_CLOSE
            depth += 1
        elif c == _QUOTE:
            i, o = _canonical_string(buf, i, stop, out, o)
            if i < 0:
                return o, False
            state = _AFTER_VALUE
        elif c == 45 or 48 <= c <= 57:
            digits = i + 1 if c == 45 else i
            k = digits
            while k < stop and 48 <= buf[k] <= 57:
                k += 1
            if k == digits or k - digits > 18 or (buf[digits] == 48 and (k - digits > 1 or c == 45)):
                return o, False
            if k < stop and (buf[k] == 46 or buf[k] == 101 or buf[k] == 69):
                return o, False
            for j in range(i, k):
                out[o] = buf[j]
                o += 1
            i = k
            state = _AFTER_VALUE
        else:
            word = _NULL
            if c == 116:
                word = _TRUE
            elif c == 102:
                word = _FALSE
            if not starts_with(buf, i, stop, word):
                return o, False
            o = put_bytes(out, o, word)
            i += word.shape[0]
            state = _AFTER_VALUE


@numba.njit(cache=True, nogil=True, _nrt=False)
def _holds_token(text, t, lower, dj_words, dj_offsets):
    """Does ``text[lower:t]`` end with one of the DJ tokens (concatenated in ``dj_words``)?"""
    for w in range(dj_offsets.shape[0] - 1):
        n = dj_offsets[w + 1] - dj_offsets[w]
        if t - lower >= n:
            same = True
            for k in range(n):
                if text[t - n + k] != dj_words[dj_offsets[w] + k]:
                    same = False
                    break
            if same:
                return True
    return False


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _copy_text(buf, k, end, text, t, special, substitute, image_token, video_token, audio_token, dj_words, dj_offsets, found):
    """Unescape the JSON string whose opening quote is ``buf[k]`` into ``text[t:]``; with
    ``substitute``, ``<image>``/``<video>``/``<audio>`` become the DJ tokens as they complete
    (counted in ``found[0:3]``). Returns ``(position after the string, new t, ok)``; not ok for a
    control byte, a bad escape, ``[[`` (which could fake a role marker) or a DJ token in the source
    text (the careful path reports it)."""
    lower = t
    k += 1
    while k < end:
        # Plain bytes (most of them) are copied in a tight loop; only a quote, a backslash, a
        # control byte, "[" or ">" need a closer look.
        c = buf[k]
        while special[c] == 0:
            text[t] = c
            t += 1
            k += 1
            if k == end:
                return k, t, False
            c = buf[k]
        if c == _QUOTE:
            return k + 1, t, True
        if c == _BACKSLASH:
            k, t = unescape_escape(buf, k, end, text, t)
            if k < 0:
                return k, t, False
        elif c < 32:
            return k, t, False
        else:
            text[t] = c
            t += 1
            k += 1
        last = text[t - 1]
        if last == 91 and t - lower >= 2 and text[t - 2] == 91:
            return k, t, False
        if last == 62:
            # Tokens are <...> with no other < or >: an occurrence ends here, inside the source
            # text written since the last substitution.
            if _holds_token(text, t, lower, dj_words, dj_offsets):
                return k, t, False
            if substitute:
                if ends_with(text, t, lower, _IMAGE_TAG):
                    t = put_bytes(text, t - 7, image_token)
                    lower = t
                    found[0] += 1
                elif ends_with(text, t, lower, _VIDEO_TAG):
                    t = put_bytes(text, t - 7, video_token)
                    lower = t
                    found[1] += 1
                elif ends_with(text, t, lower, _AUDIO_TAG):
                    t = put_bytes(text, t - 7, audio_token)
                    lower = t
                    found[2] += 1
    return k, t, False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _members(buf, i, end, key_starts, key_ends, value_starts, value_ends):
    """The members of the JSON object whose ``{`` is ``buf[i]``: key and value ranges (the values
    are skipped, not parsed). Returns ``(position after the object, count)``, count -1 when it is
    not a well-formed object or has more than ``MAX_KEYS`` members."""
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 125:
        return i + 1, 0
    count = 0
    while i < end:
        if buf[i] != _QUOTE or count == MAX_KEYS:
            return i, -1
        key_end = string_end(buf, i, end)
        if key_end < 0:
            return i, -1
        key_starts[count] = i
        key_ends[count] = key_end
        i = skip_whitespace(buf, key_end, end)
        if i >= end or buf[i] != 58:
            return i, -1
        i = skip_whitespace(buf, i + 1, end)
        if i >= end:
            return i, -1
        stop = value_end(buf, i, end)
        if stop < 0 or stop == i:
            return i, -1
        value_starts[count] = i
        value_ends[count] = stop
        count += 1
        i = skip_whitespace(buf, stop, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 125:
            return i + 1, count
        return i, -1
    return i, -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _member(buf, key_starts, key_ends, count, word):
    """Index of the member named ``word`` among ``count`` members; -1 when absent, -2 when twice."""
    found = -1
    for m in range(count):
        if key_is(buf, key_starts[m], key_ends[m], word):
            if found >= 0:
                return -2
            found = m
    return found


@numba.njit(cache=True, nogil=True, _nrt=False)
def _path(buf, start, stop, data, d, offsets, n):
    """Unescape the path string at ``buf[start]`` as the next item; returns ``(d, n, ok)``."""
    if buf[start] != _QUOTE:
        return d, n, False
    position, d = unescape_string(buf, start, stop, data, d)
    if position != stop:
        return d, n, False
    n += 1
    offsets[n] = d
    return d, n, True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _nested_path(buf, start, stop, word, scratch):
    """``(value start, value end)`` of member ``word`` of the object at ``buf[start]``, or (-1, -1)."""
    if buf[start] != 123:
        return -1, -1
    after, count = _members(buf, start, stop, scratch[0], scratch[1], scratch[2], scratch[3])
    if count < 0 or after != stop:
        return -1, -1
    m = _member(buf, scratch[0], scratch[1], count, word)
    if m < 0:
        return -1, -1
    return scratch[2][m], scratch[3][m]


@numba.njit(cache=True, nogil=True, _nrt=False)
def _parts(buf, i, end, text, t, special, tokens, dj_words, dj_offsets, media, media_offsets, media_counts, media_d, found,
           part_scratch, nested_scratch):
    """Content parts (the list at ``buf[i]``) into the text and the media lists. Returns
    ``(position after the list, new t, media parts seen, ok)``."""
    image_token, video_token, audio_token = tokens
    media_parts = 0
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1, t, 0, True
    key_starts, key_ends, value_starts, value_ends = part_scratch
    while i < end:
        if buf[i] != 123:
            return i, t, 0, False
        after, count = _members(buf, i, end, key_starts, key_ends, value_starts, value_ends)
        if count < 0:
            return i, t, 0, False
        kind = _member(buf, key_starts, key_ends, count, _TYPE)
        if kind < 0 or buf[value_starts[kind]] != _QUOTE:
            return i, t, 0, False
        a, b = value_starts[kind], value_ends[kind]
        if key_is(buf, a, b, _TEXT):
            m = _member(buf, key_starts, key_ends, count, _TEXT)
            if m < 0 or buf[value_starts[m]] != _QUOTE:
                return i, t, 0, False
            stop, t, ok = _copy_text(buf, value_starts[m], value_ends[m], text, t, special, False,
                                     image_token, video_token, audio_token, dj_words, dj_offsets, found)
            if not ok or stop != value_ends[m]:
                return i, t, 0, False
        else:
            column = -1
            word = _IMAGE_URL
            inner = _URL
            if key_is(buf, a, b, _IMAGE_URL):
                column, word, inner = 0, _IMAGE_URL, _URL
            elif key_is(buf, a, b, _IMAGE):
                column, word, inner = 0, _IMAGE, _URL
            elif key_is(buf, a, b, _VIDEO):
                column, word, inner = 1, _VIDEO, _URL
            elif key_is(buf, a, b, _AUDIO):
                column, word, inner = 2, _AUDIO, _URL
            elif key_is(buf, a, b, _INPUT_AUDIO):
                column, word, inner = 2, _INPUT_AUDIO, _DATA
            if column < 0:
                return i, t, 0, False
            m = _member(buf, key_starts, key_ends, count, word)
            if m < 0:
                return i, t, 0, False
            p, q = value_starts[m], value_ends[m]
            # image_url holds the path itself or {"url": path, ...}; input_audio {"data": path, ...}.
            nested = (word.shape[0] == 9 and buf[p] != _QUOTE) or word.shape[0] == 11
            if nested:
                p, q = _nested_path(buf, p, q, inner, nested_scratch)
                if p < 0:
                    return i, t, 0, False
            media_d[column], media_counts[column], ok = _path(
                buf, p, q, media[column], media_d[column], media_offsets[column], media_counts[column]
            )
            if not ok:
                return i, t, 0, False
            t = put_bytes(text, t, tokens[column])
            media_parts += 1
        i = skip_whitespace(buf, after, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1, t, media_parts, True
        return i, t, 0, False
    return i, t, 0, False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _distinct(buf, key_starts, key_ends, count):
    """Are the ``count`` keys all different? (Compared as written: a key that is not canonical
    fails its copy anyway.)"""
    for a in range(count):
        for b in range(a):
            size = key_ends[a] - key_starts[a]
            if key_ends[b] - key_starts[b] == size:
                same = True
                for j in range(size):
                    if buf[key_starts[a] + j] != buf[key_starts[b] + j]:
                        same = False
                        break
                if same:
                    return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_key(buf, start, stop, out, o):
    """Copy the key string ``buf[start:stop]`` canonically; returns ``(new o, ok)``."""
    position, o = _canonical_string(buf, start, stop, out, o)
    return o, position == stop


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _content(buf, p, stop, text, t, special, tokens, dj_words, dj_offsets, media, media_offsets, media_counts, media_d, found,
             part_scratch, nested_scratch):
    """A message's content at ``buf[p]``: a string (tags substituted), ``null`` or a list of parts.
    Returns ``(position after it, new t, kind: 0 string, 1 null, 2 parts, media parts, ok)``."""
    c = buf[p]
    if c == _QUOTE:
        position, t, ok = _copy_text(buf, p, stop, text, t, special, True, tokens[0], tokens[1], tokens[2], dj_words, dj_offsets, found)
        return position, t, 0, 0, ok
    if c == 91:
        position, t, seen, ok = _parts(buf, p, stop, text, t, special, tokens, dj_words, dj_offsets,
                                       media, media_offsets, media_counts, media_d, found, part_scratch, nested_scratch)
        return position, t, 2, seen, ok
    if starts_with(buf, p, stop, _NULL):
        return p + 4, t, 1, 0, True
    return p, t, 0, 0, False


@numba.njit(cache=True, nogil=True, inline="always", _nrt=False)
def _message(buf, i, stop, index, role_key, content_key, separator, text, roles, role_offsets, layout, cursor, special, tokens,
             dj_words, dj_offsets, media, media_offsets, media_counts, media_d, found, ks, ke, vs, ve, part_scratch, nested_scratch,
             scratch):
    """The message object at ``buf[i]``: its ``[[role]]: content`` into the text (the role first,
    whatever the key order), its role, media and layout entry. Cursors are ``cursor`` (t, roles,
    role bytes, layout bytes). Returns ``(position after it, has a layout entry, content was
    parts, role is an ms-swift tool role, media parts, ok)``."""
    t, n_roles, d_roles, d_layout = cursor[0], cursor[1], cursor[2], cursor[3]
    if index:
        t = put_bytes(text, t, separator)
    i = skip_whitespace(buf, i + 1, stop)
    count = 0
    role = -1
    content = -1
    kind = 0
    media_parts = 0
    swift = False
    while True:
        if i >= stop or buf[i] != _QUOTE or count == MAX_KEYS:
            return i, False, False, False, 0, False
        key_end = string_end(buf, i, stop)
        if key_end < 0:
            return i, False, False, False, 0, False
        ks[count] = i
        ke[count] = key_end
        i = skip_whitespace(buf, key_end, stop)
        if i >= stop or buf[i] != 58:
            return i, False, False, False, 0, False
        v = skip_whitespace(buf, i + 1, stop)
        if v >= stop:
            return i, False, False, False, 0, False
        if key_is(buf, ks[count], key_end, role_key):
            if role >= 0 or buf[v] != _QUOTE:
                return i, False, False, False, 0, False
            role = count
            role_begin = d_roles
            value_stop, d_roles = unescape_string(buf, v, stop, roles, d_roles)
            if value_stop < 0:
                return i, False, False, False, 0, False
            for k in range(role_begin + 1, d_roles):
                if roles[k] == 91 and roles[k - 1] == 91:
                    return i, False, False, False, 0, False
            n_roles += 1
            role_offsets[n_roles] = d_roles
            size = d_roles - role_begin
            if (size == 9 and key_is(roles, role_begin - 1, d_roles + 1, _TOOL_CALL)) or (
                size == 13 and key_is(roles, role_begin - 1, d_roles + 1, _TOOL_RESPONSE)
            ):
                swift = True
            t = put_bytes(text, t, _ROLE_OPEN)
            for k in range(role_begin, d_roles):
                text[t] = roles[k]
                t += 1
            t = put_bytes(text, t, _ROLE_CLOSE)
            if content >= 0:
                # The content came first: it was skipped, it is written now.
                position, t, kind, media_parts, ok = _content(buf, vs[content], ve[content], text, t, special, tokens, dj_words,
                                                              dj_offsets, media, media_offsets, media_counts, media_d, found,
                                                              part_scratch, nested_scratch)
                if not ok or position != ve[content]:
                    return i, False, False, False, 0, False
        elif key_is(buf, ks[count], key_end, content_key):
            if content >= 0:
                return i, False, False, False, 0, False
            content = count
            if role >= 0:
                value_stop, t, kind, media_parts, ok = _content(buf, v, stop, text, t, special, tokens, dj_words, dj_offsets, media,
                                                                media_offsets, media_counts, media_d, found, part_scratch,
                                                                nested_scratch)
                if not ok:
                    return i, False, False, False, 0, False
            else:
                value_stop = value_end(buf, v, stop)
        else:
            value_stop = value_end(buf, v, stop)
        if value_stop < 0 or value_stop == v:
            return i, False, False, False, 0, False
        vs[count] = v
        ve[count] = value_stop
        count += 1
        i = skip_whitespace(buf, value_stop, stop)
        if i < stop and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, stop)
            continue
        if i < stop and buf[i] == 125:
            i += 1
            break
        return i, False, False, False, 0, False
    if role < 0 or not _distinct(buf, ks, ke, count):
        return i, False, False, False, 0, False
    # The layout entry: extra keys, absent content, key order (role, content, others), null or parts.
    extras = count - 1 - (1 if content >= 0 else 0)
    reordered = role != 0 or (content >= 0 and content != 1)
    entry = extras > 0 or content < 0 or reordered or kind != 0
    if index:
        layout[d_layout] = 44
        d_layout += 1
    if not entry:
        d_layout = put_bytes(layout, d_layout, _NULL)
    else:
        layout[d_layout] = 123
        d_layout += 1
        entries = 0
        ok = True
        if extras:
            d_layout = put_bytes(layout, d_layout, _KEYS_ENTRY)
            written = 0
            for k in range(count):
                if k != role and k != content:
                    if written:
                        layout[d_layout] = 44
                        d_layout += 1
                    d_layout, ok = _copy_key(buf, ks[k], ke[k], layout, d_layout)
                    layout[d_layout] = 58
                    if ok:
                        d_layout, ok = canonical_copy(buf, vs[k], ve[k], layout, d_layout + 1, *scratch)
                    if not ok:
                        return i, False, False, False, 0, False
                    written += 1
            layout[d_layout] = 125
            d_layout += 1
            entries += 1
        if content < 0:
            if entries:
                layout[d_layout] = 44
                d_layout += 1
            d_layout = put_bytes(layout, d_layout, _ABSENT_ENTRY)
            entries += 1
        if reordered:
            if entries:
                layout[d_layout] = 44
                d_layout += 1
            d_layout = put_bytes(layout, d_layout, _ORDER_ENTRY)
            for k in range(count):
                if k:
                    layout[d_layout] = 44
                    d_layout += 1
                d_layout, ok = _copy_key(buf, ks[k], ke[k], layout, d_layout)
                if not ok:
                    return i, False, False, False, 0, False
            layout[d_layout] = 93
            d_layout += 1
            entries += 1
        if kind != 0:
            if entries:
                layout[d_layout] = 44
                d_layout += 1
            if kind == 1:
                d_layout = put_bytes(layout, d_layout, _NULL_ENTRY)
            else:
                d_layout = put_bytes(layout, d_layout, _PARTS_ENTRY)
                d_layout, ok = canonical_copy(buf, vs[content], ve[content], layout, d_layout, *scratch)
                if not ok:
                    return i, False, False, False, 0, False
        layout[d_layout] = 125
        d_layout += 1
    cursor[0], cursor[1], cursor[2], cursor[3] = t, n_roles, d_roles, d_layout
    return i, entry, kind == 2, swift, media_parts, True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _record(buf, start, end, messages_key, role_key, content_key, separator, suffix, forced_style, text, roles, role_offsets,
            layout, extra, cursor, special, tokens, dj_words, dj_offsets, media, media_offsets, media_counts, media_d, found,
            top_counts, top, message, part_scratch, nested_scratch, scratch):
    """One record ``buf[start:end]`` into the outputs (cursors in ``cursor``: t, roles, role bytes,
    layout bytes, extra bytes; media in ``media_counts``/``media_d``). Returns ``(media keys code,
    style, ok)``; when not ok the caller rolls every output back."""
    ks, ke, vs, ve = top
    mks, mke, mvs, mve = message
    found[0] = 0
    found[1] = 0
    found[2] = 0
    top_counts[0] = 0
    top_counts[1] = 0
    top_counts[2] = 0
    i = skip_whitespace(buf, start, end)
    if i >= end or buf[i] != 123:
        return 0, 0, False
    i = skip_whitespace(buf, i + 1, end)
    d_extra = cursor[4]
    count = 0
    conversation = -1
    last_rank = 0
    reordered = False
    extra_count = 0
    record_style = STYLE_LLAMAFACTORY
    keys_code = 0
    has_parts = False
    part_media = 0
    while True:
        if i >= end or buf[i] != _QUOTE or count == MAX_KEYS:
            return 0, 0, False
        a = i
        b = string_end(buf, i, end)
        if b < 0:
            return 0, 0, False
        ks[count] = a
        ke[count] = b
        i = skip_whitespace(buf, b, end)
        if i >= end or buf[i] != 58:
            return 0, 0, False
        v = skip_whitespace(buf, i + 1, end)
        if v >= end:
            return 0, 0, False
        rank = 4
        if key_is(buf, a, b, messages_key):
            rank = 0
        elif key_is(buf, a, b, _IMAGES):
            rank = 1
        elif key_is(buf, a, b, _VIDEOS):
            rank = 2
        elif key_is(buf, a, b, _AUDIOS):
            rank = 3
        # Written order: messages, images, videos, audios, then the others as they came.
        if rank < last_rank:
            reordered = True
        else:
            last_rank = rank
        if rank == 0:
            if conversation >= 0 or buf[v] != 91:
                return 0, 0, False
            conversation = count
            layout_start = cursor[3]
            layout[layout_start] = 91
            cursor[3] += 1
            any_entry = False
            index = 0
            j = skip_whitespace(buf, v + 1, end)
            if j < end and buf[j] == 93:
                value_stop = j + 1
            else:
                while True:
                    if j >= end or buf[j] != 123:
                        return 0, 0, False
                    j, entry, parts, swift, seen, ok = _message(
                        buf, j, end, index, role_key, content_key, separator, text, roles, role_offsets, layout, cursor, special,
                        tokens, dj_words, dj_offsets, media, media_offsets, media_counts, media_d, found, mks, mke, mvs, mve,
                        part_scratch, nested_scratch, scratch,
                    )
                    if not ok:
                        return 0, 0, False
                    any_entry = any_entry or entry
                    has_parts = has_parts or parts
                    if swift and record_style == STYLE_LLAMAFACTORY:
                        record_style = STYLE_SWIFT
                    part_media += seen
                    index += 1
                    j = skip_whitespace(buf, j, end)
                    if j < end and buf[j] == 44:
                        j = skip_whitespace(buf, j + 1, end)
                        continue
                    if j < end and buf[j] == 93:
                        value_stop = j + 1
                        break
                    return 0, 0, False
            if any_entry:
                layout[cursor[3]] = 93
                cursor[3] += 1
            else:
                cursor[3] = layout_start
        else:
            value_stop = value_end(buf, v, end)
            if value_stop < 0 or value_stop == v:
                return 0, 0, False
            if rank < 4:
                column = rank - 1
                weight = 1 if column == 0 else (3 if column == 1 else 9)
                if keys_code // weight % 3:
                    return 0, 0, False
                before = media_counts[column]
                is_list, media_d[column], media_counts[column], ok = string_items(
                    buf, v, value_stop, media[column], media_d[column], media_offsets[column], media_counts[column]
                )
                if not ok:
                    return 0, 0, False
                top_counts[column] = media_counts[column] - before
                keys_code += (MEDIA_LIST if is_list else MEDIA_STRING) * weight
            else:
                if key_is(buf, a, b, _TOOLS) or key_is(buf, a, b, _OBJECTS):
                    record_style = STYLE_SWIFT
                extra[d_extra] = 44 if extra_count else 123
                d_extra, ok = _copy_key(buf, a, b, extra, d_extra + 1)
                extra[d_extra] = 58
                if ok:
                    d_extra, ok = canonical_copy(buf, v, value_stop, extra, d_extra + 1, *scratch)
                if not ok:
                    return 0, 0, False
                extra_count += 1
        count += 1
        i = skip_whitespace(buf, value_stop, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 125 and skip_whitespace(buf, i + 1, end) == end:
            break
        return 0, 0, False
    if conversation < 0 or not _distinct(buf, ks, ke, count):
        return 0, 0, False
    # Every tag must name a listed file and every listed file a tag; media parts and non-empty
    # top-level lists do not mix.
    for column in range(3):
        if found[column] != top_counts[column]:
            return 0, 0, False
    if part_media and (top_counts[0] or top_counts[1] or top_counts[2]):
        return 0, 0, False
    cursor[0] = put_bytes(text, cursor[0], suffix)
    if reordered:
        extra[d_extra] = 44 if extra_count else 123
        d_extra = put_bytes(extra, d_extra + 1, _KEY_ORDER_MEMBER)
        for m in range(count):
            if m:
                extra[d_extra] = 44
                d_extra += 1
            d_extra, ok = _copy_key(buf, ks[m], ke[m], extra, d_extra)
            if not ok:
                return 0, 0, False
        extra[d_extra] = 93
        d_extra += 1
        extra_count += 1
    if extra_count:
        extra[d_extra] = 125
        d_extra += 1
    cursor[4] = d_extra
    if forced_style >= 0:
        record_style = forced_style
    elif has_parts:
        record_style = STYLE_OPENAI
    return keys_code, record_style, True


@numba.njit(cache=True, nogil=True)
def parse_sharegpt(
    buf, starts, ends, messages_key, role_key, content_key, separator, suffix,
    image_token, video_token, audio_token, dj_words, dj_offsets, forced_style,
    text, text_offsets, roles, role_offsets, role_lists,
    images, image_offsets, image_lists, videos, video_offsets, video_lists, audios, audio_offsets, audio_lists,
    media_keys, style, layout, layout_offsets, extra, extra_offsets, status,
):
    """Convert the ``messages`` records ``buf[starts[r]:ends[r]]`` into DJ Arrow buffers.

    Parameters
    ----------
    buf : uint8 array, the batch's bytes (``starts``/``ends`` are offsets into it, int64, shape (n,)).
    messages_key, role_key, content_key : uint8 arrays, the key names (as written, no escapes).
    separator, suffix : uint8 arrays, what joins messages and what ends the text.
    image_token, video_token, audio_token : uint8 arrays, the DJ media tokens the tags become.
    dj_words, dj_offsets : the DJ tokens a source text may not hold, concatenated (int64 offsets).
    forced_style : int, a ``STYLE_*`` code, or ``STYLE_AUTO``.
    text, roles, images, videos, audios, layout, extra : uint8 arrays
        Output UTF-8 data, sized by the caller.
    text_offsets, role_lists, image_lists, video_lists, audio_lists, layout_offsets, extra_offsets : int32, (n+1,)
    role_offsets, image_offsets, video_offsets, audio_offsets : int32, (max items + 1,)
    media_keys : int8, (n,) -- ``MEDIA_*`` of images + 3 * videos + 9 * audios.
    style : int8, (n,) -- ``STYLE_*``.
    status : int8, (n,) -- ``FAST`` or ``FALLBACK`` (nothing written for that record).

    ``layout`` / ``extra`` rows are empty where the row's value is null.

    Complexity: O(len(buf)); a content written before its role, media parts and kept JSON are
    read twice, the rest once.
    """
    special = np.zeros(256, dtype=np.uint8)
    special[:32] = 1
    special[_QUOTE] = 1
    special[_BACKSLASH] = 1
    special[91] = 1
    special[62] = 1
    tokens = (image_token, video_token, audio_token)
    top = (np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64))
    message = (np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64))
    part_scratch = (np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64), np.empty(MAX_KEYS, np.int64))
    nested = np.empty((4, MAX_KEYS), dtype=np.int64)
    scratch = (np.empty(MAX_NESTING, dtype=np.int64), np.empty(MAX_NESTING, dtype=np.int64),
               np.empty(4 * MAX_KEYS, dtype=np.int64), np.empty(4 * MAX_KEYS, dtype=np.int64))
    found = np.zeros(3, dtype=np.int64)
    top_counts = np.zeros(3, dtype=np.int64)
    media_counts = np.zeros(3, dtype=np.int64)
    media_d = np.zeros(3, dtype=np.int64)
    cursor = np.zeros(5, dtype=np.int64)
    media = (images, videos, audios)
    media_offsets = (image_offsets, video_offsets, audio_offsets)
    text_offsets[0] = 0
    role_offsets[0] = 0
    role_lists[0] = 0
    image_offsets[0] = 0
    image_lists[0] = 0
    video_offsets[0] = 0
    video_lists[0] = 0
    audio_offsets[0] = 0
    audio_lists[0] = 0
    layout_offsets[0] = 0
    extra_offsets[0] = 0
    saved = np.zeros(11, dtype=np.int64)
    for r in range(starts.shape[0]):
        # Checkpoint: a FALLBACK record rolls every output back to here.
        for k in range(5):
            saved[k] = cursor[k]
        for k in range(3):
            saved[5 + k] = media_counts[k]
            saved[8 + k] = media_d[k]
        keys_code, record_style, ok = _record(
            buf, starts[r], ends[r], messages_key, role_key, content_key, separator, suffix, forced_style, text, roles,
            role_offsets, layout, extra, cursor, special, tokens, dj_words, dj_offsets, media, media_offsets, media_counts,
            media_d, found, top_counts, top, message, part_scratch, nested, scratch,
        )
        if ok:
            status[r] = FAST
        else:
            for k in range(5):
                cursor[k] = saved[k]
            for k in range(3):
                media_counts[k] = saved[5 + k]
                media_d[k] = saved[8 + k]
            keys_code = 0
            record_style = 0
            status[r] = FALLBACK
        text_offsets[r + 1] = cursor[0]
        role_lists[r + 1] = cursor[1]
        image_lists[r + 1] = media_counts[0]
        video_lists[r + 1] = media_counts[1]
        audio_lists[r + 1] = media_counts[2]
        layout_offsets[r + 1] = cursor[3]
        extra_offsets[r + 1] = cursor[4]
        media_keys[r] = keys_code
        style[r] = record_style
