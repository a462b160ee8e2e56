"""LLaVA JSON records -> DJ Arrow buffers in one compiled pass, no Python object per record.

The kernel reads the raw bytes of a batch of records (byte ranges from
:mod:`hf_mmbuilder.kernels.json_scan`) and writes Arrow-layout buffers directly: the DJ ``text``
(``[[role]]: value`` turns joined by a separator, media tokens substituted, optional end-of-chunk
tokens), and the ``images``/``videos``/``roles`` lists, ``id`` and the raw JSON of unknown
top-level keys. It accepts the common shape only: a record it is not sure about (an unknown key
inside a turn, a non-string value, a ``[[`` in a value, a token count that disagrees with the media
list, any JSON it would have to guess at) is flagged ``FALLBACK`` with nothing written, and the
caller converts that record on the careful Python path, which also produces the error messages.

A record whose top-level keys are not in the order the exporter writes them (``id``, ``image``,
``video``, ``conversations``, then the others) gets its key list, raw, under ``__key_order__`` at
the end of its extra keys, as the careful path does (``hf_mmbuilder.formats.records.KEY_ORDER_KEY``).
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import ends_with, key_is, put_bytes, skip_whitespace, starts_with, string_end, string_items, unescape_escape, unescape_string, value_end

FAST = 0
FALLBACK = 1

LAYOUT_NONE = 0
LAYOUT_IMAGE = 1
LAYOUT_IMAGE_LIST = 2
LAYOUT_VIDEO = 3
LAYOUT_VIDEO_LIST = 4

_QUOTE = 34
_BACKSLASH = 92

# Rank of a top-level key in the exporter's order; every other key ranks after these.
_RANK_ID = 0
_RANK_IMAGE = 1
_RANK_VIDEO = 2
_RANK_CONVERSATIONS = 3
_RANK_OTHER = 4
# A reordered record with more keys than this goes to the careful path.
_MAX_ORDERED_KEYS = 64
_KEY_ORDER_MEMBER = np.frombuffer(b'"__key_order__":[', dtype=np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _copy_value(buf, k, end, text, t, special, source_image, source_video, image_token, video_token):
    """Unescape the JSON string body starting at ``buf[k]`` (just after its opening quote) into
    ``text[t:]``, substituting ``<image>`` and ``<video>`` as they complete. Returns ``(position
    after the closing quote, new t, images found, videos found, ok)``; not ok for a control byte, a
    bad escape, no closing quote before ``end``, or ``[[`` (which could fake a role marker)."""
    lower = t
    found_images = 0
    found_videos = 0
    while k < end:
        # Plain bytes (most of them) are copied in a tight loop; only a quote, a backslash, a
        # control byte, "[" or ">" need a closer look.
        c = buf[k]
        while special[c] == 0:
            text[t] = c
            t += 1
            k += 1
            if k == end:
                return k, t, found_images, found_videos, False
            c = buf[k]
        if c == _QUOTE:
            return k + 1, t, found_images, found_videos, True
        if c == _BACKSLASH:
            k, t = unescape_escape(buf, k, end, text, t)
            if k < 0:
                return k, t, found_images, found_videos, False
        elif c < 32:
            return k, t, found_images, found_videos, False
        else:
            text[t] = c
            t += 1
            k += 1
        last = text[t - 1]
        if last == 91 and t - lower >= 2 and text[t - 2] == 91:
            return k, t, found_images, found_videos, False
        if last == 62:
            if ends_with(text, t, lower, source_image):
                t = put_bytes(text, t - source_image.shape[0], image_token)
                lower = t
                found_images += 1
            elif ends_with(text, t, lower, source_video):
                t = put_bytes(text, t - source_video.shape[0], video_token)
                lower = t
                found_videos += 1
    return k, t, found_images, found_videos, False


# Key names as constants compiled into the code: no allocation (nor reference count) per record.
_FROM_WORD = np.frombuffer(b"from", np.uint8)
_VALUE_WORD = np.frombuffer(b"value", np.uint8)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _conversation(buf, i, end, separator, eoc_between_rounds, text, t, roles, role_offsets, n_roles, d_roles,
                  special, source_image, source_video, image_token, video_token):
    """Parse the ``conversations`` array starting at ``buf[i]`` straight into the DJ text.

    Returns ``(position after the array, t, n_roles, d_roles, images found, videos found, ok)``.
    """
    from_word = _FROM_WORD
    value_word = _VALUE_WORD
    found_images = 0
    found_videos = 0
    if buf[i] != 91:
        return i, t, n_roles, d_roles, 0, 0, False
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1, t, n_roles, d_roles, 0, 0, True
    turn = 0
    while i < end:
        if buf[i] != 123:
            return i, t, n_roles, d_roles, 0, 0, False
        i = skip_whitespace(buf, i + 1, end)
        has_role = False
        has_value = False
        while True:
            if i >= end or buf[i] != _QUOTE:
                return i, t, n_roles, d_roles, 0, 0, False
            key_start = i
            key_end = string_end(buf, i, end)
            if key_end < 0:
                return i, t, n_roles, d_roles, 0, 0, False
            i = skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                return i, t, n_roles, d_roles, 0, 0, False
            field_start = skip_whitespace(buf, i + 1, end)
            if field_start >= end or buf[field_start] != _QUOTE:
                return i, t, n_roles, d_roles, 0, 0, False
            # The turn is written as it is read: the role marker first, so "from" must come before
            # "value" (it always does in LLaVA files; other orders take the careful path).
            if key_is(buf, key_start, key_end, from_word) and not has_role:
                if turn > 0:
                    if turn % 2 == 0:
                        t = put_bytes(text, t, eoc_between_rounds)
                    t = put_bytes(text, t, separator)
                role_begin = d_roles
                field_end, d_roles = unescape_string(buf, field_start, end, roles, d_roles)
                if field_end < 0:
                    return i, t, n_roles, d_roles, 0, 0, False
                n_roles += 1
                role_offsets[n_roles] = d_roles
                text[t] = 91
                text[t + 1] = 91
                t += 2
                for k in range(role_begin, d_roles):
                    text[t] = roles[k]
                    t += 1
                text[t] = 93
                text[t + 1] = 93
                text[t + 2] = 58
                text[t + 3] = 32
                t += 4
                has_role = True
            elif key_is(buf, key_start, key_end, value_word) and has_role and not has_value:
                field_end, t, images, videos, ok = _copy_value(
                    buf, field_start + 1, end, text, t, special, source_image, source_video, image_token, video_token
                )
                if not ok:
                    return i, t, n_roles, d_roles, 0, 0, False
                found_images += images
                found_videos += videos
                has_value = True
            else:
                return i, t, n_roles, d_roles, 0, 0, False
            i = skip_whitespace(buf, field_end, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125:
                i = skip_whitespace(buf, i + 1, end)
                break
            return i, t, n_roles, d_roles, 0, 0, False
        if not has_value:
            return i, t, n_roles, d_roles, 0, 0, False
        turn += 1
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1, t, n_roles, d_roles, found_images, found_videos, True
        return i, t, n_roles, d_roles, 0, 0, False
    return i, t, n_roles, d_roles, 0, 0, False


@numba.njit(cache=True, nogil=True)
def parse_llava(
    buf,
    starts,
    ends,
    separator,
    image_token,
    video_token,
    eoc_between_rounds,
    suffix,
    text,
    text_offsets,
    roles,
    role_offsets,
    turn_offsets,
    images,
    image_offsets,
    image_lists,
    videos,
    video_offsets,
    video_lists,
    ids,
    id_offsets,
    id_kind,
    layout,
    extra,
    extra_offsets,
    status,
):
    """Convert the LLaVA records ``buf[starts[r]:ends[r]]`` into DJ Arrow buffers, one pass each.

    Parameters
    ----------
    buf : uint8 array, the batch's bytes (``starts``/``ends`` are offsets into it, int64, shape (n,)).
    separator, image_token, video_token, eoc_between_rounds, suffix : uint8 arrays
        The turn separator, the DJ media tokens, what ends a (human, robot) round before the
        separator (empty unless ``split_chunk``), and what ends the text (e.g. `` <|__dj__eoc|>``).
    text, roles, images, videos, ids, extra : uint8 arrays
        Output UTF-8 data, sized by the caller (``text`` at least
        ``len(buf) * len(token) / 7 + n * (len(suffix) + 8)``).
    text_offsets, id_offsets, extra_offsets, turn_offsets, image_lists, video_lists : int32, shape (n+1,)
        Arrow offsets per record (``turn_offsets`` index ``role_offsets``, ``*_lists`` index
        ``*_offsets``).
    role_offsets, image_offsets, video_offsets : int32, shape (max items + 1,)
        Arrow offsets per role / path.
    id_kind : int8, shape (n,) -- 0 absent, 1 string, 2 integer.
    layout : int8, shape (n,) -- image layout (``LAYOUT_*``, 0-2) + 3 * video layout (0-2).
    status : int8, shape (n,) -- ``FAST`` or ``FALLBACK`` (nothing written for that record).

    Complexity: O(len(buf)) time; every byte is read once (keys and skipped values twice).
    """
    image_word = np.array([105, 109, 97, 103, 101], dtype=np.uint8)
    video_word = np.array([118, 105, 100, 101, 111], dtype=np.uint8)
    id_word = np.array([105, 100], dtype=np.uint8)
    conv_word = np.array([99, 111, 110, 118, 101, 114, 115, 97, 116, 105, 111, 110, 115], dtype=np.uint8)
    source_image = np.array([60, 105, 109, 97, 103, 101, 62], dtype=np.uint8)
    source_video = np.array([60, 118, 105, 100, 101, 111, 62], dtype=np.uint8)
    special = np.zeros(256, dtype=np.uint8)
    special[:32] = 1
    special[_QUOTE] = 1
    special[_BACKSLASH] = 1
    special[91] = 1
    special[62] = 1
    key_starts = np.empty(_MAX_ORDERED_KEYS, dtype=np.int64)
    key_ends = np.empty(_MAX_ORDERED_KEYS, dtype=np.int64)
    t = 0
    n_roles = 0
    n_images = 0
    n_videos = 0
    d_roles = 0
    d_images = 0
    d_videos = 0
    d_ids = 0
    d_extra = 0
    text_offsets[0] = 0
    role_offsets[0] = 0
    turn_offsets[0] = 0
    image_offsets[0] = 0
    image_lists[0] = 0
    video_offsets[0] = 0
    video_lists[0] = 0
    id_offsets[0] = 0
    extra_offsets[0] = 0
    for r in range(starts.shape[0]):
        start = starts[r]
        end = ends[r]
        # Checkpoint: a FALLBACK record rolls every output back to here.
        t0, nr0, dr0, ni0, di0, nv0, dv0, dd0, de0 = t, n_roles, d_roles, n_images, d_images, n_videos, d_videos, d_ids, d_extra
        ok = True
        has_conversation = False
        kind = 0
        record_layout = 0
        extra_count = 0
        has_images = False
        has_videos = False
        found_images = 0
        found_videos = 0
        n_keys = 0
        last_rank = _RANK_ID
        reordered = False
        i = skip_whitespace(buf, start, end)
        if i >= end or buf[i] != 123:
            ok = False
        else:
            i = skip_whitespace(buf, i + 1, end)
            if i < end and buf[i] == 125:
                ok = False
        while ok and i < end:
            if buf[i] != _QUOTE:
                ok = False
                break
            key_start = i
            key_end = string_end(buf, i, end)
            if key_end < 0:
                ok = False
                break
            i = skip_whitespace(buf, key_end, end)
            if i >= end or buf[i] != 58:
                ok = False
                break
            value_start = skip_whitespace(buf, i + 1, end)
            if value_start >= end:
                ok = False
                break
            if key_is(buf, key_start, key_end, conv_word):
                rank = _RANK_CONVERSATIONS
            elif key_is(buf, key_start, key_end, image_word):
                rank = _RANK_IMAGE
            elif key_is(buf, key_start, key_end, video_word):
                rank = _RANK_VIDEO
            elif key_is(buf, key_start, key_end, id_word):
                rank = _RANK_ID
            else:
                rank = _RANK_OTHER
            if rank < last_rank:
                reordered = True
            else:
                last_rank = rank
            if n_keys < _MAX_ORDERED_KEYS:
                key_starts[n_keys] = key_start
                key_ends[n_keys] = key_end
            n_keys += 1
            if rank == _RANK_CONVERSATIONS:
                if has_conversation:
                    ok = False
                    break
                has_conversation = True
                value_stop, t, n_roles, d_roles, found_images, found_videos, ok = _conversation(
                    buf, value_start, end, separator, eoc_between_rounds, text, t, roles, role_offsets, n_roles, d_roles,
                    special, source_image, source_video, image_token, video_token,
                )
                if not ok:
                    break
            else:
                value_stop = value_end(buf, value_start, end)
                if value_stop < 0:
                    ok = False
                    break
                if key_is(buf, key_start, key_end, image_word) and not has_images:
                    has_images = True
                    as_list, d_images, n_images, ok = string_items(buf, value_start, value_stop, images, d_images, image_offsets, n_images)
                    record_layout += LAYOUT_IMAGE_LIST if as_list else LAYOUT_IMAGE
                elif key_is(buf, key_start, key_end, video_word) and not has_videos:
                    has_videos = True
                    as_list, d_videos, n_videos, ok = string_items(buf, value_start, value_stop, videos, d_videos, video_offsets, n_videos)
                    record_layout += 3 * (LAYOUT_VIDEO_LIST - 2 if as_list else LAYOUT_VIDEO - 2)
                elif key_is(buf, key_start, key_end, id_word) and kind == 0:
                    c = buf[value_start]
                    if c == _QUOTE:
                        position, d_ids = unescape_string(buf, value_start, end, ids, d_ids)
                        ok = position >= 0
                        kind = 1
                    elif c == 45 or 48 <= c <= 57:
                        digits = value_start + 1 if c == 45 else value_start
                        if digits >= value_stop or (buf[digits] == 48 and value_stop - digits > 1):
                            ok = False
                        for k in range(value_start, value_stop):
                            if k >= digits and not (48 <= buf[k] <= 57):
                                ok = False
                            ids[d_ids] = buf[k]
                            d_ids += 1
                        kind = 2
                    else:
                        ok = False
                elif (
                    key_is(buf, key_start, key_end, image_word)
                    or key_is(buf, key_start, key_end, video_word)
                    or key_is(buf, key_start, key_end, id_word)
                ):
                    ok = False
                else:
                    # Unknown top-level key: its raw JSON goes to `extra` verbatim (valid JSON as is).
                    extra[d_extra] = 44 if extra_count else 123
                    d_extra += 1
                    for k in range(key_start, key_end):
                        extra[d_extra] = buf[k]
                        d_extra += 1
                    extra[d_extra] = 58
                    d_extra += 1
                    for k in range(value_start, value_stop):
                        extra[d_extra] = buf[k]
                        d_extra += 1
                    extra_count += 1
                if not ok:
                    break
            i = skip_whitespace(buf, value_stop, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125:
                ok = skip_whitespace(buf, i + 1, end) == end
                break
            ok = False
        # Every media token must name a listed file and vice versa; a token without any media
        # field is left to the careful path (which keeps it as literal text).
        if ok and (
            not has_conversation
            or found_images != n_images - ni0
            or found_videos != n_videos - nv0
            or (reordered and n_keys > _MAX_ORDERED_KEYS)
        ):
            ok = False
        if ok:
            t = put_bytes(text, t, suffix)
            if reordered:
                extra[d_extra] = 44 if extra_count else 123
                d_extra = put_bytes(extra, d_extra + 1, _KEY_ORDER_MEMBER)
                for q in range(n_keys):
                    if q:
                        extra[d_extra] = 44
                        d_extra += 1
                    for k in range(key_starts[q], key_ends[q]):
                        extra[d_extra] = buf[k]
                        d_extra += 1
                extra[d_extra] = 93
                d_extra += 1
                extra_count += 1
            if extra_count:
                extra[d_extra] = 125
                d_extra += 1
            status[r] = FAST
        else:
            t, n_roles, d_roles, n_images, d_images, n_videos, d_videos, d_ids, d_extra = t0, nr0, dr0, ni0, di0, nv0, dv0, dd0, de0
            kind = 0
            record_layout = 0
            status[r] = FALLBACK
        text_offsets[r + 1] = t
        turn_offsets[r + 1] = n_roles
        image_lists[r + 1] = n_images
        video_lists[r + 1] = n_videos
        id_offsets[r + 1] = d_ids
        extra_offsets[r + 1] = d_extra
        id_kind[r] = kind
        layout[r] = record_layout
