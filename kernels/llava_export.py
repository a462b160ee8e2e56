"""DJ rows -> LLaVA JSON records in one compiled pass over Arrow buffers, no Python object per row.

The inverse of :mod:`hf_mmbuilder.kernels.llava_parse`: the DJ ``text`` is cut back into turns at
the ``[[role]]: `` markers of the ``roles`` list, DJ media tokens become ``<image>`` / ``<video>``,
and each record is written as JSON (UTF-8, never ``\\uXXXX`` for non-ASCII) with its id, media
fields, conversation and the raw JSON of its extra keys, in the record's remembered key order
(``__key_order__`` in ``extra``, as the careful path restores it). A row the kernel is not sure about (a
marker missing where expected, a token count that disagrees with the media list, an unusual media
path, an id that is not a plain integer, extra keys it would have to interpret) is flagged
``FALLBACK`` with nothing written; the caller exports it on the careful Python path, which also
produces the error messages.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import put_bytes, starts_with

FAST = 0
FALLBACK = 1

_QUOTE = 34
_BACKSLASH = 92
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _plain_bytes(*also_special: int) -> np.ndarray:
    """1 for the bytes a JSON string holds as they are (not ``"``, ``\\``, control bytes, nor
    ``also_special``)."""
    table = np.ones(256, np.uint8)
    table[:32] = 0
    table[[_QUOTE, _BACKSLASH, *also_special]] = 0
    return table


_PLAIN = _plain_bytes()
# In values, "<" may start a media token.
_PLAIN_IN_VALUE = _plain_bytes(60)


def _word(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8)


_IMAGE = _word(b"image")
_VIDEO = _word(b"video")
_CONVERSATIONS = _word(b"conversations")
_KEPT_RAW = _word(b"__raw__")
_KEY_ORDER = _word(b"__key_order__")
_ID_KEY = _word(b'{"id":')
_IMAGE_KEY = _word(b'"image":')
_VIDEO_KEY = _word(b'"video":')
_CONVERSATIONS_KEY = _word(b'"conversations":[')
_FROM_KEY = _word(b'{"from":')
_VALUE_KEY = _word(b',"value":')
# Extra members a row may have on the compiled path (a row with more goes to the careful path).
_MAX_EXTRA_MEMBERS = 256


@numba.njit(cache=True, nogil=True, _nrt=False)
def _escaped_byte(c, out, o, hex_digits):
    """Write byte ``c`` of a UTF-8 string as JSON string content."""
    if c == _QUOTE or c == _BACKSLASH:
        out[o] = _BACKSLASH
        out[o + 1] = c
        return o + 2
    if c >= 32:
        out[o] = c
        return o + 1
    out[o] = _BACKSLASH
    if c == 10:
        out[o + 1] = 110
        return o + 2
    if c == 9:
        out[o + 1] = 116
        return o + 2
    if c == 13:
        out[o + 1] = 114
        return o + 2
    out[o + 1] = 117
    out[o + 2] = 48
    out[o + 3] = 48
    out[o + 4] = hex_digits[c >> 4]
    out[o + 5] = hex_digits[c & 15]
    return o + 6


@numba.njit(cache=True, nogil=True, _nrt=False)
def _json_string(data, start, stop, out, o, hex_digits):
    out[o] = _QUOTE
    o += 1
    plain = _PLAIN
    for k in range(start, stop):
        c = data[k]
        if plain[c]:
            out[o] = c
            o += 1
        else:
            o = _escaped_byte(c, out, o, hex_digits)
    out[o] = _QUOTE
    return o + 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _marker_at(text, k, stop, role_data, role_start, role_stop):
    """Does ``[[role]]: `` start at ``text[k]``?"""
    length = role_stop - role_start
    if stop - k < length + 6 or text[k] != 91 or text[k + 1] != 91:
        return False
    for j in range(length):
        if text[k + 2 + j] != role_data[role_start + j]:
            return False
    k += 2 + length
    return text[k] == 93 and text[k + 1] == 93 and text[k + 2] == 58 and text[k + 3] == 32


@numba.njit(cache=True, nogil=True, _nrt=False)
def _plain_path(data, start, stop):
    """A path with nothing to check on export: relative, not starting with ``.``, no ``/..``, no
    backslash (the others are checked against the media roots on the careful path)."""
    if stop > start and (data[start] == 47 or data[start] == 46):
        return False
    for k in range(start, stop):
        if data[k] == _BACKSLASH:
            return False
        if data[k] == 47 and k + 2 < stop and data[k + 1] == 46 and data[k + 2] == 46:
            return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _paths(data, offsets, first, last, as_list, out, o, hex_digits):
    """The media field value: one path string, or a list of them."""
    if not as_list:
        return _json_string(data, offsets[first], offsets[first + 1], out, o, hex_digits)
    out[o] = 91
    o += 1
    for p in range(first, last):
        if p > first:
            out[o] = 44
            o += 1
        o = _json_string(data, offsets[p], offsets[p + 1], out, o, hex_digits)
    out[o] = 93
    return o + 1


@numba.njit(cache=True, nogil=True, _nrt=False)
def _is_space(c):
    return c == 32 or c == 10 or c == 13 or c == 9


@numba.njit(cache=True, nogil=True, _nrt=False)
def _extra_members(data, start, stop, members):
    """The top-level members of the JSON object ``data[start:stop]`` (the ``extra`` column):
    ``(count, order_start, order_stop, ok)``. ``members[m]`` gets member ``m``'s key (without
    quotes) and its whole ``"key":value`` text as ``(key_start, key_stop, member_start,
    member_stop)``; the remembered key order is not a member, its value (a JSON array) is
    ``data[order_start:order_stop]`` (both -1 without one). Not ok if it is not an object, if one
    of its keys is one of the record's own (``id``, ``image``, ``video``, ``conversations``) or the
    kept-raw marker, or holds an escape, if the text has a line break (it would break a JSON-lines
    file), or if it has more members than ``members`` holds."""
    i = start
    while i < stop and _is_space(data[i]):
        i += 1
    j = stop
    while j > i and _is_space(data[j - 1]):
        j -= 1
    if j - i < 2 or data[i] != 123 or data[j - 1] != 125:
        return 0, -1, -1, False
    count = 0
    order_start = order_stop = -1
    depth = 0
    k = i
    member_start = -1
    key_start = key_stop = -1
    is_order = False
    while k < j:
        c = data[k]
        if c == 10 or c == 13:
            return 0, -1, -1, False
        if c == _QUOTE:
            begin = k + 1
            k += 1
            escaped = False
            while k < j and data[k] != _QUOTE:
                if data[k] == _BACKSLASH:
                    escaped = True
                    k += 1
                k += 1
            if k >= j:
                return 0, -1, -1, False
            end = k
            after = k + 1
            while after < j and _is_space(data[after]):
                after += 1
            if depth == 1 and after < j and data[after] == 58:
                if escaped:
                    return 0, -1, -1, False
                length = end - begin
                if length == 2 and data[begin] == 105 and data[begin + 1] == 100:
                    return 0, -1, -1, False
                if length == 5 and (starts_with(data, begin, end, _IMAGE) or starts_with(data, begin, end, _VIDEO)):
                    return 0, -1, -1, False
                if length == 13 and starts_with(data, begin, end, _CONVERSATIONS):
                    return 0, -1, -1, False
                if length == 7 and starts_with(data, begin, end, _KEPT_RAW):
                    return 0, -1, -1, False
                member_start, key_start, key_stop = begin - 1, begin, end
                is_order = length == 13 and starts_with(data, begin, end, _KEY_ORDER)
                k = after
        elif c == 123 or c == 91:
            depth += 1
        elif (c == 44 and depth == 1) or (c == 125 and depth == 1):
            if member_start >= 0:
                stop_at = k
                while stop_at > member_start and _is_space(data[stop_at - 1]):
                    stop_at -= 1
                if is_order:
                    value = member_start
                    while data[value] != 58:
                        value += 1
                    value += 1
                    while _is_space(data[value]):
                        value += 1
                    order_start, order_stop = value, stop_at
                else:
                    if count == members.shape[0]:
                        return 0, -1, -1, False
                    members[count, 0] = key_start
                    members[count, 1] = key_stop
                    members[count, 2] = member_start
                    members[count, 3] = stop_at
                    count += 1
                member_start = -1
            if c == 125:
                depth -= 1
        elif c == 125 or c == 93:
            depth -= 1
        k += 1
    return count, order_start, order_stop, True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _compact_copy(data, start, stop, out, o):
    """Copy JSON ``data[start:stop]`` without whitespace outside strings (the compiled parser
    keeps extra values as the source wrote them; records are written compact, as orjson writes)."""
    in_string = False
    escaped = False
    for k in range(start, stop):
        c = data[k]
        if in_string:
            if escaped:
                escaped = False
            elif c == _BACKSLASH:
                escaped = True
            elif c == _QUOTE:
                in_string = False
        elif _is_space(c):
            continue
        elif c == _QUOTE:
            in_string = True
        out[o] = c
        o += 1
    return o


@numba.njit(cache=True, nogil=True, _nrt=False)
def _same_key(data, start, stop, word_data, word_start, word_stop):
    if stop - start != word_stop - word_start:
        return False
    for k in range(stop - start):
        if data[start + k] != word_data[word_start + k]:
            return False
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _reorder_members(out, first, last, segments, count, extra, members, order_start, order_stop):
    """Rewrite the members ``out[first:last]`` (``segments[s]`` = ``(start, stop, kind)``, kind 0..3
    for ``id``/``image``/``video``/``conversations``, 4 + m for extra member ``m``) in the key
    order listed in ``extra[order_start:order_stop]``; members it does not list follow in their
    written order. The list is used only when it names ``conversations`` (as
    ``records.restore_key_order`` does). Uses ``out[last:2*last-first]`` as scratch. Returns False
    (for the careful path) when the list is not an array of plain strings or there is no room."""
    if 2 * last - first > out.shape[0]:
        return False
    # The listed keys, validated first: '[' then '"key"' separated by ',', then ']'.
    k = order_start
    if k >= order_stop or extra[k] != 91:
        return False
    k += 1
    names_conversations = False
    while k < order_stop:
        c = extra[k]
        if c == 93:
            break
        if c == 44 or _is_space(c):
            k += 1
            continue
        if c != _QUOTE:
            return False
        begin = k + 1
        k = begin
        while k < order_stop and extra[k] != _QUOTE:
            if extra[k] == _BACKSLASH:
                return False
            k += 1
        if k >= order_stop:
            return False
        if starts_with(extra, begin, k, _CONVERSATIONS) and k - begin == 13:
            names_conversations = True
        k += 1
    if not names_conversations:
        return True
    scratch = last
    for p in range(first, last):
        out[scratch + p - first] = out[p]
    o = first
    written = 0
    k = order_start + 1
    while k < order_stop:
        c = extra[k]
        if c != _QUOTE:
            k += 1
            continue
        begin = k + 1
        k = begin
        while extra[k] != _QUOTE:
            k += 1
        for s in range(count):
            kind = segments[s, 2]
            if kind < 0:
                continue
            if kind == 0:
                match = k - begin == 2 and extra[begin] == 105 and extra[begin + 1] == 100
            elif kind == 1:
                match = k - begin == 5 and starts_with(extra, begin, k, _IMAGE)
            elif kind == 2:
                match = k - begin == 5 and starts_with(extra, begin, k, _VIDEO)
            elif kind == 3:
                match = k - begin == 13 and starts_with(extra, begin, k, _CONVERSATIONS)
            else:
                match = _same_key(extra, begin, k, extra, members[kind - 4, 0], members[kind - 4, 1])
            if match:
                if written:
                    out[o] = 44
                    o += 1
                for p in range(segments[s, 0], segments[s, 1]):
                    out[o] = out[scratch + p - first]
                    o += 1
                written += 1
                segments[s, 2] = -1
                break
        k += 1
    for s in range(count):
        if segments[s, 2] >= 0:
            if written:
                out[o] = 44
                o += 1
            for p in range(segments[s, 0], segments[s, 1]):
                out[o] = out[scratch + p - first]
                o += 1
            written += 1
    return True


@numba.njit(cache=True, nogil=True)
def export_llava(
    text_offsets, text,
    role_lists, role_offsets, roles,
    image_lists, image_offsets, images,
    video_lists, video_offsets, videos,
    id_offsets, ids, id_valid, id_is_int,
    image_in_layout, image_as_list, video_in_layout, video_as_list,
    extra_offsets, extra, extra_valid,
    careful,
    separator, eoc_suffix, image_token, video_token, source_image, source_video,
    prefix, out, row_offsets, status,
):
    """Write the LLaVA JSON record of each row into ``out``.

    Parameters
    ----------
    text_offsets, text : the ``text`` column (int32 offsets, UTF-8 bytes); likewise ``roles``,
        ``images``, ``videos`` with their int32 list offsets (``*_lists``), ``id`` and the ``extra``
        column's JSON text.
    id_valid, id_is_int, extra_valid : uint8 per row.
    image_in_layout, image_as_list, video_in_layout, video_as_list : uint8 per row, from
        ``media_layout`` (does it name the field; as a list).
    careful : uint8 per row, 1 for a row left to the Python path from the start (nulls, per-turn
        extras, load errors).
    separator, eoc_suffix : the turn separator and what ends the text (empty without
        ``add_eoc_at_last``), UTF-8.
    image_token, video_token, source_image, source_video : DJ tokens and what they become. Each
        must start with ``<``, end with ``>`` and hold no other ``<``/``>`` (so occurrences never
        overlap), and the image pair must share no token with the video pair.
    prefix : bytes written before each record (``,\\n`` between array elements).
    out : uint8, large enough (see :func:`output_bound`); ``row_offsets`` int64 (n+1,): record
        ``r`` is ``out[row_offsets[r]:row_offsets[r+1]]``, empty for a ``FALLBACK`` row.
    status : int8 per row, ``FAST`` or ``FALLBACK``.

    Complexity: O(bytes of the rows) time, one pass plus one search per turn boundary.
    """
    hex_digits = _HEX
    plain_in_value = _PLAIN_IN_VALUE
    id_key, image_key, video_key = _ID_KEY, _IMAGE_KEY, _VIDEO_KEY
    conversations_key, from_key, value_key = _CONVERSATIONS_KEY, _FROM_KEY, _VALUE_KEY
    # Per row: the extra column's members, and where each member of the record was written.
    members = np.empty((_MAX_EXTRA_MEMBERS, 4), np.int64)
    segments = np.empty((_MAX_EXTRA_MEMBERS + 4, 3), np.int64)
    o = 0
    n = status.shape[0]
    row_offsets[0] = 0
    for r in range(n):
        row_start = o
        record_start = o
        ok = careful[r] == 0
        count = 0
        if ok:
            o = put_bytes(out, o, prefix)
            record_start = o
            if id_valid[r]:
                o = put_bytes(out, o, id_key)
                a, b = id_offsets[r], id_offsets[r + 1]
                if id_is_int[r]:
                    digits = a + 1 if b > a and ids[a] == 45 else a
                    if digits >= b or (ids[digits] == 48 and b - digits > 1):
                        ok = False
                    for k in range(digits, b):
                        if not 48 <= ids[k] <= 57:
                            ok = False
                    for k in range(a, b):
                        out[o] = ids[k]
                        o += 1
                else:
                    o = _json_string(ids, a, b, out, o, hex_digits)
                segments[0, 0], segments[0, 1], segments[0, 2] = record_start + 1, o, 0
                count = 1
            else:
                out[o] = 123
                o += 1
        # Where the text's turns are, checked before anything is written for them.
        t0, t1 = text_offsets[r], text_offsets[r + 1]
        if ok and starts_with(text, t1 - eoc_suffix.shape[0], t1, eoc_suffix) and t1 - eoc_suffix.shape[0] >= t0:
            t1 -= eoc_suffix.shape[0]
        first_role, last_role = role_lists[r], role_lists[r + 1]
        if ok and first_role == last_role and t1 > t0:
            ok = False
        images_first, images_last = image_lists[r], image_lists[r + 1]
        videos_first, videos_last = video_lists[r], video_lists[r + 1]
        count_images = images_last > images_first or image_in_layout[r] == 1
        count_videos = videos_last > videos_first or video_in_layout[r] == 1
        for p in range(images_first, images_last):
            if not _plain_path(images, image_offsets[p], image_offsets[p + 1]):
                ok = False
        for p in range(videos_first, videos_last):
            if not _plain_path(videos, video_offsets[p], video_offsets[p + 1]):
                ok = False
        extra_count = 0
        order_start = order_stop = -1
        if ok and extra_valid[r]:
            extra_count, order_start, order_stop, ok = _extra_members(extra, extra_offsets[r], extra_offsets[r + 1], members)
        # A list field is written even when empty ("image": [] is not the same record as no "image").
        if ok and (images_last > images_first or image_as_list[r] == 1):
            if o > record_start + 1:
                out[o] = 44
                o += 1
            segments[count, 0], segments[count, 2] = o, 1
            o = put_bytes(out, o, image_key)
            o = _paths(images, image_offsets, images_first, images_last,
                       image_as_list[r] == 1 or images_last - images_first > 1, out, o, hex_digits)
            segments[count, 1] = o
            count += 1
        if ok and (videos_last > videos_first or video_as_list[r] == 1):
            if o > record_start + 1:
                out[o] = 44
                o += 1
            segments[count, 0], segments[count, 2] = o, 2
            o = put_bytes(out, o, video_key)
            o = _paths(videos, video_offsets, videos_first, videos_last,
                       video_as_list[r] == 1 or videos_last - videos_first > 1, out, o, hex_digits)
            segments[count, 1] = o
            count += 1
        if ok:
            if o > record_start + 1:
                out[o] = 44
                o += 1
            segments[count, 0], segments[count, 2] = o, 3
            o = put_bytes(out, o, conversations_key)
        found_images = 0
        found_videos = 0
        position = t0
        for turn in range(first_role, last_role):
            if not ok:
                break
            role_start, role_stop = role_offsets[turn], role_offsets[turn + 1]
            if not _marker_at(text, position, t1, roles, role_start, role_stop):
                ok = False
                break
            start = position + role_stop - role_start + 6
            end = t1
            if turn + 1 < last_role:
                next_start, next_stop = role_offsets[turn + 1], role_offsets[turn + 2]
                end = -1
                for k in range(start, t1 - separator.shape[0] + 1):
                    if starts_with(text, k, t1, separator) and _marker_at(text, k + separator.shape[0], t1, roles, next_start, next_stop):
                        end = k
                        break
                if end < 0:
                    ok = False
                    break
                position = end + separator.shape[0]
            if turn > first_role:
                out[o] = 44
                o += 1
            o = put_bytes(out, o, from_key)
            o = _json_string(roles, role_start, role_stop, out, o, hex_digits)
            o = put_bytes(out, o, value_key)
            out[o] = _QUOTE
            o += 1
            k = start
            while k < end:
                c = text[k]
                if plain_in_value[c]:
                    out[o] = c
                    o += 1
                    k += 1
                    continue
                if c == 60:
                    if count_images and starts_with(text, k, end, image_token):
                        found_images += 1
                        o = put_bytes(out, o, source_image if images_last > images_first else image_token)
                        k += image_token.shape[0]
                        continue
                    if count_videos and starts_with(text, k, end, video_token):
                        found_videos += 1
                        o = put_bytes(out, o, source_video if videos_last > videos_first else video_token)
                        k += video_token.shape[0]
                        continue
                o = _escaped_byte(c, out, o, hex_digits)
                k += 1
            out[o] = _QUOTE
            out[o + 1] = 125
            o += 2
        if ok and count_images and found_images != images_last - images_first:
            ok = False
        if ok and count_videos and found_videos != videos_last - videos_first:
            ok = False
        if ok:
            out[o] = 93
            o += 1
            segments[count, 1] = o
            count += 1
            for m in range(extra_count):
                out[o] = 44
                o += 1
                segments[count, 0], segments[count, 2] = o, 4 + m
                o = _compact_copy(extra, members[m, 2], members[m, 3], out, o)
                segments[count, 1] = o
                count += 1
            # A record whose source had its keys in another order: its members moved into that
            # order (the careful path's records.restore_key_order, byte for byte).
            if order_start >= 0 and not _reorder_members(out, record_start + 1, o, segments, count, extra, members, order_start, order_stop):
                ok = False
        if ok:
            out[o] = 125
            o += 1
            status[r] = FAST
        else:
            o = row_start
            status[r] = FALLBACK
        row_offsets[r + 1] = o


def output_bound(rows: int, text_bytes: int, role_bytes: int, path_bytes: int, id_bytes: int, extra_bytes: int,
                 turns: int, paths: int, prefix: int, token_growth: int) -> int:
    """Bytes :func:`export_llava` may write at most (every byte escaped as ``\\u00XX``, tokens grown).

    Example
    -------
    >>> output_bound(1, 10, 3, 5, 2, 0, 1, 1, 2, 0)
    214
    """
    return 6 * (text_bytes + role_bytes + path_bytes + id_bytes) + extra_bytes + token_growth + rows * (64 + prefix) + turns * 24 + paths * 4
