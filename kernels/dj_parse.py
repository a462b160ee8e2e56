"""Data-Juicer (DJ) JSON records -> DJ Arrow buffers in one compiled pass, no Python object per record.

The kernel reads the raw bytes of a batch of records (byte ranges from
:mod:`hf_mmbuilder.kernels.json_scan`) and writes what the careful path of
``loading_scripts/dj.py`` builds: ``text``, the ``images``/``audios``/``videos`` lists, ``id`` and
every other key as the JSON text ``orjson`` writes for the decoded value
(:func:`~hf_mmbuilder.kernels.json_scan.canonical_value`), the DJ keys present, the key list of a
reordered record, and, when the loader promotes a format's round-trip columns, those columns' JSON
text, the ``promoted`` description and the record's nested ``extra`` merged back. A record it is not
sure about (a wrong type, a number orjson would spell otherwise, a repeated key, ``image_bytes``,
some but not all promoted columns, media paths Data-Juicer rewrote) is flagged ``FALLBACK`` with
nothing written, and the caller converts it on the careful path, which also words every error.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import MAX_NESTING, canonical_string, canonical_value, key_is, put_bytes, same_bytes, skip_whitespace, string_end, unescape_string, value_end

FAST = 0
FALLBACK = 1

# What a promoted column's feature accepts (the careful path's ``_fits``); anything else leaves
# the value in ``extra``, which the kernel leaves to the careful path.
KIND_ANY = 0
KIND_STRING = 1
KIND_STRING_LIST = 2
KIND_LIST = 3
KIND_BOOL = 4
KIND_INT = 5

_QUOTE = 34
# A record with more top-level keys than this, or more members in ``extra``, goes the careful way.
_MAX_KEYS = 256

_TEXT = np.frombuffer(b"text", np.uint8)
_ID = np.frombuffer(b"id", np.uint8)
_IMAGES = np.frombuffer(b"images", np.uint8)
_AUDIOS = np.frombuffer(b"audios", np.uint8)
_VIDEOS = np.frombuffer(b"videos", np.uint8)
_IMAGE_BYTES = np.frombuffer(b"image_bytes", np.uint8)
_EXTRA = np.frombuffer(b"extra", np.uint8)
_KEY_ORDER = np.frombuffer(b"__key_order__", np.uint8)
_MEDIA_PATHS = np.frombuffer(b"hf_mmbuilder_media_paths", np.uint8)
_MEDIA_ROOT = np.frombuffer(b"media_root", np.uint8)
_RELATIVE_PATHS = np.frombuffer(b"relative_paths", np.uint8)
_KEY_ORDER_MEMBER = np.frombuffer(b'"__key_order__":[', np.uint8)
_COLUMNS_MEMBER = np.frombuffer(b'{"columns":[', np.uint8)
_TOP_LEVEL_MEMBER = np.frombuffer(b'],"top_level":[', np.uint8)
_EXTRA_MEMBER = np.frombuffer(b'"extra":', np.uint8)

# Key classes (the DJ keys are 0-5; a promoted column j is _PROMOTED + j).
_K_TEXT = 0
_K_ID = 1
_K_IMAGES = 2
_K_AUDIOS = 3
_K_VIDEOS = 4
_K_BYTES = 5
_K_OTHER = 6
_K_PROMOTED = 7


@numba.njit(cache=True, nogil=True, _nrt=False)
def _key_class(data, a, b, names, name_offsets):
    if key_is(data, a, b, _TEXT):
        return _K_TEXT
    if key_is(data, a, b, _ID):
        return _K_ID
    if key_is(data, a, b, _IMAGES):
        return _K_IMAGES
    if key_is(data, a, b, _AUDIOS):
        return _K_AUDIOS
    if key_is(data, a, b, _VIDEOS):
        return _K_VIDEOS
    if key_is(data, a, b, _IMAGE_BYTES):
        return _K_BYTES
    for j in range(name_offsets.shape[0] - 1):
        if key_is(data, a, b, names[name_offsets[j]:name_offsets[j + 1]]):
            return _K_PROMOTED + j
    return _K_OTHER


@numba.njit(cache=True, nogil=True, _nrt=False)
def _string_list(data, a, b):
    """Is the compact JSON ``data[a:b]`` an array of strings?"""
    if data[a] != 91:
        return False
    i = a + 1
    if data[i] == 93:
        return i + 1 == b
    while i < b:
        if data[i] != _QUOTE:
            return False
        i = string_end(data, i, b)
        if i < 0 or i >= b:
            return False
        if data[i] == 93:
            return i + 1 == b
        if data[i] != 44:
            return False
        i += 1
    return False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _fits(data, a, b, kind):
    """Does the compact JSON value ``data[a:b]`` fit a promoted column of ``kind`` (null always does)?"""
    c = data[a]
    if c == 110:
        return True
    if kind == KIND_STRING:
        return c == _QUOTE
    if kind == KIND_STRING_LIST:
        return _string_list(data, a, b)
    if kind == KIND_LIST:
        return c == 91
    if kind == KIND_BOOL:
        return c == 116 or c == 102
    if kind == KIND_INT:
        for k in range(a, b):
            if not (48 <= data[k] <= 57 or (k == a and data[k] == 45)):
                return False
        return True
    return True


@numba.njit(cache=True, nogil=True, _nrt=False)
def _paths(buf, i, end, data, d, item_offsets, n_items):
    """The JSON array of path strings at ``buf[i]`` (or ``null``: no path) into ``data``/``item_offsets``.
    Returns ``(position after it, d, n_items)``; position -1 for anything else."""
    if buf[i] == 110:
        if end - i >= 4 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
            return i + 4, d, n_items
        return -1, d, n_items
    if buf[i] != 91:
        return -1, d, n_items
    i = skip_whitespace(buf, i + 1, end)
    if i < end and buf[i] == 93:
        return i + 1, d, n_items
    while i < end:
        if buf[i] != _QUOTE:
            return -1, d, n_items
        i, d = unescape_string(buf, i, end, data, d)
        if i < 0:
            return -1, d, n_items
        n_items += 1
        item_offsets[n_items] = d
        i = skip_whitespace(buf, i, end)
        if i < end and buf[i] == 44:
            i = skip_whitespace(buf, i + 1, end)
            continue
        if i < end and buf[i] == 93:
            return i + 1, d, n_items
        return -1, d, n_items
    return -1, d, n_items


@numba.njit(cache=True, nogil=True, _nrt=False)
def _same_paths(canonical, a, b, scratch, data, item_offsets, first_item, stop_item):
    """Is the compact JSON array ``canonical[a:b]`` the path list ``first_item .. stop_item - 1``?"""
    if canonical[a] != 91:
        return False
    i = a + 1
    item = first_item
    if canonical[i] == 93:
        return item == stop_item
    while i < b:
        if item >= stop_item or canonical[i] != _QUOTE:
            return False
        i, length = unescape_string(canonical, i, b, scratch, 0)
        if i < 0 or not same_bytes(scratch, 0, length, data, item_offsets[item], item_offsets[item + 1]):
            return False
        item += 1
        if canonical[i] == 93:
            return item == stop_item
        i += 1
    return False


@numba.njit(cache=True, nogil=True, _nrt=False)
def _media_paths(canonical, a, b, roots, d_roots, scratch, media, media_items, first_items, stop_items):
    """Read our DJ export's ``hf_mmbuilder_media_paths`` (compact JSON ``canonical[a:b]``):
    returns ``(ok, has_root, d_roots)``. ``ok`` is false where the careful path would do more
    than read ``media_root`` (a written path list that differs from the record's: Data-Juicer
    rewrote the paths) or would fail (``relative_paths`` not an object)."""
    if canonical[a] != 123:
        return True, False, d_roots
    has_root = False
    i = a + 1
    if canonical[i] == 125:
        return True, False, d_roots
    while i < b:
        key_start = i
        key_end = string_end(canonical, i, b)
        value_start = key_end + 1
        value_stop = value_end(canonical, value_start, b)
        if key_is(canonical, key_start, key_end, _MEDIA_ROOT):
            if canonical[value_start] == _QUOTE:
                position, d_roots = unescape_string(canonical, value_start, b, roots, d_roots)
                has_root = position >= 0
            else:
                has_root = False
        elif key_is(canonical, key_start, key_end, _RELATIVE_PATHS):
            if canonical[value_start] != 123:
                return False, has_root, d_roots
            j = value_start + 1
            while canonical[j] != 125:
                inner_key_end = string_end(canonical, j, value_stop)
                inner_start = inner_key_end + 1
                inner_stop = value_end(canonical, inner_start, value_stop)
                column = -1
                if key_is(canonical, j, inner_key_end, _IMAGES):
                    column = 0
                elif key_is(canonical, j, inner_key_end, _AUDIOS):
                    column = 1
                elif key_is(canonical, j, inner_key_end, _VIDEOS):
                    column = 2
                if column >= 0 and not (inner_stop - inner_start == 2 and canonical[inner_start] == 91) and not _same_paths(
                    canonical, inner_start, inner_stop, scratch, media[column], media_items[column], first_items[column], stop_items[column]
                ):
                    return False, has_root, d_roots
                j = inner_stop + 1 if canonical[inner_stop] == 44 else inner_stop
        i = value_stop + 1
    return True, has_root, d_roots


@numba.njit(cache=True, nogil=True)
def parse_dj(
    buf, starts, ends, promoted_names, promoted_offsets, promoted_kinds,
    text, text_offsets, text_valid,
    media, media_items, media_lists,
    ids, id_offsets, id_valid,
    present, present_offsets,
    extra, extra_offsets,
    values, value_starts, value_ends,
    promoted, promoted_offsets_out,
    roots, root_offsets, root_valid,
    status,
):
    """Convert the DJ records ``buf[starts[r]:ends[r]]`` into Arrow buffers, one pass each.

    Parameters
    ----------
    buf : uint8, the batch's bytes; ``starts``/``ends`` (int64, shape (n,)) are offsets into it.
    promoted_names, promoted_offsets, promoted_kinds : the m promoted columns (names concatenated,
        int64 offsets (m + 1,), ``KIND_*`` (m,)); m = 0 when nothing is promoted.
    text, ids, present, extra, promoted, roots, values : uint8 output data.
    media : uint8 (3, size); media_items : int32 (3, items + 1); media_lists : int32 (3, n + 1)
        ``images``, ``audios``, ``videos`` as Arrow list buffers.
    text_offsets, id_offsets, present_offsets, extra_offsets, promoted_offsets_out, root_offsets :
        int32 (n + 1,) Arrow offsets; ``text_valid``/``id_valid``/``root_valid`` uint8 (n,).
        ``extra``/``promoted`` rows are null where empty; ``roots`` holds the recorded media root.
    value_starts, value_ends : int64 (n, m), each promoted column's JSON text in ``values``.
    status : int8 (n,), ``FAST`` or ``FALLBACK`` (nothing written for that record).

    Complexity: O(len(buf)) time (each key compared with the record's earlier keys: O(keys^2)).
    """
    m = promoted_offsets.shape[0] - 1
    keys = np.empty(buf.shape[0] + 2, np.uint8)
    key_starts = np.empty(_MAX_KEYS, np.int64)
    key_ends = np.empty(_MAX_KEYS, np.int64)
    key_classes = np.empty(_MAX_KEYS, np.int64)
    member_starts = np.empty(_MAX_KEYS, np.int64)
    member_ends = np.empty(_MAX_KEYS, np.int64)
    scratch_starts = np.empty(512, np.int64)
    scratch_ends = np.empty(512, np.int64)
    first_keys = np.empty(MAX_NESTING + 1, np.int64)
    scratch = np.empty(buf.shape[0] + 8, np.uint8)
    first_items = np.empty(3, np.int64)
    stop_items = np.empty(3, np.int64)
    n_items = np.zeros(3, np.int64)
    d_media = np.zeros(3, np.int64)
    t = 0
    d_ids = 0
    d_present = 0
    d_extra = 0
    d_values = 0
    d_promoted = 0
    d_roots = 0
    text_offsets[0] = 0
    id_offsets[0] = 0
    present_offsets[0] = 0
    extra_offsets[0] = 0
    promoted_offsets_out[0] = 0
    root_offsets[0] = 0
    for c in range(3):
        media_items[c, 0] = 0
        media_lists[c, 0] = 0
    for r in range(starts.shape[0]):
        end = ends[r]
        t0, di0, dp0, de0, dv0, dpr0, dr0 = t, d_ids, d_present, d_extra, d_values, d_promoted, d_roots
        for c in range(3):
            first_items[c] = n_items[c]
            stop_items[c] = n_items[c]
        dm0, dm1, dm2 = d_media[0], d_media[1], d_media[2]
        ok = True
        has_text = False
        has_id = False
        n_keys = 0
        d_keys = 0
        n_members = 0
        n_promoted = 0
        nested_start = -1
        nested_stop = -1
        extra_member = -1
        has_root = False
        media_paths_seen = False
        for j in range(m):
            value_starts[r, j] = 0
            value_ends[r, j] = 0
        present[d_present] = 91
        d_present += 1
        extra[d_extra] = 123
        d_extra += 1
        i = skip_whitespace(buf, starts[r], end)
        if i >= end or buf[i] != 123:
            ok = False
        else:
            i = skip_whitespace(buf, i + 1, end)
            if i < end and buf[i] == 125:
                ok = skip_whitespace(buf, i + 1, end) == end
                i = end
        while ok and i < end:
            if buf[i] != _QUOTE or n_keys >= _MAX_KEYS:
                ok = False
                break
            key_start = d_keys
            i, d_keys = canonical_string(buf, i, end, keys, d_keys)
            if i < 0:
                ok = False
                break
            for q in range(n_keys):
                if same_bytes(keys, key_starts[q], key_ends[q], keys, key_start, d_keys):
                    ok = False
            if not ok or key_is(keys, key_start, d_keys, _KEY_ORDER):
                ok = False
                break
            kind = _key_class(keys, key_start, d_keys, promoted_names, promoted_offsets)
            key_starts[n_keys] = key_start
            key_ends[n_keys] = d_keys
            key_classes[n_keys] = kind
            n_keys += 1
            i = skip_whitespace(buf, i, end)
            if i >= end or buf[i] != 58:
                ok = False
                break
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                ok = False
                break
            if kind <= _K_BYTES:
                if d_present - dp0 > 1:
                    present[d_present] = 44
                    d_present += 1
                for k in range(key_start, d_keys):
                    present[d_present] = keys[k]
                    d_present += 1
            if kind == _K_TEXT:
                if buf[i] == _QUOTE:
                    i, t = unescape_string(buf, i, end, text, t)
                    has_text = True
                elif end - i >= 4 and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108 and buf[i] == 110:
                    i += 4
                else:
                    i = -1
            elif kind == _K_ID:
                i, d_ids = canonical_value(buf, i, end, ids, d_ids, scratch_starts, scratch_ends, first_keys)
                has_id = i >= 0 and not (d_ids - di0 == 4 and ids[di0] == 110)
                if not has_id:
                    d_ids = di0
            elif kind <= _K_VIDEOS:
                c = kind - _K_IMAGES
                if media_paths_seen:
                    i = -1
                else:
                    count = n_items[c]
                    i, d, count = _paths(buf, i, end, media[c], d_media[c], media_items[c], count)
                    d_media[c] = d
                    n_items[c] = count
                    stop_items[c] = count
            elif kind == _K_BYTES:
                i = -1
            elif kind >= _K_PROMOTED:
                j = kind - _K_PROMOTED
                value_starts[r, j] = d_values
                i, d_values = canonical_value(buf, i, end, values, d_values, scratch_starts, scratch_ends, first_keys)
                value_ends[r, j] = d_values
                if i >= 0 and not _fits(values, value_starts[r, j], d_values, promoted_kinds[j]):
                    i = -1
                n_promoted += 1
            else:
                if n_members:
                    extra[d_extra] = 44
                    d_extra += 1
                member_starts[n_members] = d_extra
                d_extra = put_bytes(extra, d_extra, keys[key_start:d_keys])
                extra[d_extra] = 58
                d_extra += 1
                value_start = d_extra
                if m and key_is(keys, key_start, d_keys, _EXTRA):
                    extra_member = n_members
                    nested_start = i
                i, d_extra = canonical_value(buf, i, end, extra, d_extra, scratch_starts, scratch_ends, first_keys)
                if extra_member == n_members:
                    nested_stop = i
                member_ends[n_members] = d_extra
                n_members += 1
                if i >= 0 and key_is(keys, key_start, d_keys, _MEDIA_PATHS):
                    media_paths_seen = True
                    taken, has_root, d_roots = _media_paths(extra, value_start, d_extra, roots, d_roots, scratch, media, media_items, first_items, stop_items)
                    if not taken:
                        i = -1
            if i < 0:
                ok = False
                break
            i = skip_whitespace(buf, i, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125:
                ok = skip_whitespace(buf, i + 1, end) == end
                break
            ok = False
        if ok and n_promoted and n_promoted != m:
            ok = False
        if ok and n_promoted:
            # The format's columns move out; the record's other keys are described, and a nested
            # "extra" object is merged back (as the careful path does).
            promoted[d_promoted:d_promoted + _COLUMNS_MEMBER.shape[0]] = _COLUMNS_MEMBER
            d_promoted += _COLUMNS_MEMBER.shape[0]
            for j in range(m):
                if j:
                    promoted[d_promoted] = 44
                    d_promoted += 1
                promoted[d_promoted] = _QUOTE
                d_promoted = put_bytes(promoted, d_promoted + 1, promoted_names[promoted_offsets[j]:promoted_offsets[j + 1]])
                promoted[d_promoted] = _QUOTE
                d_promoted += 1
            d_promoted = put_bytes(promoted, d_promoted, _TOP_LEVEL_MEMBER)
            first = True
            for q in range(n_keys):
                if key_classes[q] == _K_OTHER:
                    if not first:
                        promoted[d_promoted] = 44
                        d_promoted += 1
                    d_promoted = put_bytes(promoted, d_promoted, keys[key_starts[q]:key_ends[q]])
                    first = False
            promoted[d_promoted] = 93
            promoted[d_promoted + 1] = 125
            d_promoted += 2
            if extra_member >= 0:
                # Cut the "extra" member out, then append its members (or itself, last, when it
                # is not an object; nothing when it is null).
                cut_start = member_starts[extra_member]
                cut_stop = member_ends[extra_member]
                if extra_member + 1 < n_members:
                    cut_stop = member_starts[extra_member + 1]
                elif extra_member > 0:
                    cut_start -= 1
                shift = cut_stop - cut_start
                for k in range(cut_stop, d_extra):
                    extra[k - shift] = extra[k]
                d_extra -= shift
                for q in range(extra_member + 1, n_members):
                    member_starts[q - 1] = member_starts[q] - shift
                    member_ends[q - 1] = member_ends[q] - shift
                n_members -= 1
                c = buf[nested_start]
                if c == 123:
                    k = skip_whitespace(buf, nested_start + 1, nested_stop)
                    if buf[k] == 125:
                        k = nested_stop
                    while ok and k < nested_stop:
                        if n_members >= _MAX_KEYS:
                            ok = False
                            break
                        if n_members:
                            extra[d_extra] = 44
                            d_extra += 1
                        member_start = d_extra
                        k, d_extra = canonical_string(buf, k, nested_stop, extra, d_extra)
                        for q in range(n_members):
                            if same_bytes(extra, member_start, d_extra, extra, member_starts[q], member_starts[q] + d_extra - member_start):
                                ok = False
                        member_starts[n_members] = member_start
                        k = skip_whitespace(buf, k, nested_stop)
                        extra[d_extra] = 58
                        d_extra += 1
                        k, d_extra = canonical_value(buf, skip_whitespace(buf, k + 1, nested_stop), nested_stop, extra, d_extra,
                                                     scratch_starts, scratch_ends, first_keys)
                        if k < 0:
                            ok = False
                            break
                        member_ends[n_members] = d_extra
                        n_members += 1
                        k = skip_whitespace(buf, k, nested_stop)
                        k = skip_whitespace(buf, k + 1, nested_stop) if buf[k] == 44 else nested_stop
                elif c != 110:
                    if n_members:
                        extra[d_extra] = 44
                        d_extra += 1
                    d_extra = put_bytes(extra, d_extra, _EXTRA_MEMBER)
                    k, d_extra = canonical_value(buf, nested_start, nested_stop, extra, d_extra, scratch_starts, scratch_ends, first_keys)
                    n_members += 1
        elif ok:
            # A plain DJ record: its key list when an other key comes before a DJ key.
            reordered = False
            seen_other = False
            for q in range(n_keys):
                if key_classes[q] == _K_OTHER:
                    seen_other = True
                elif seen_other:
                    reordered = True
            if reordered:
                extra[d_extra] = 44
                d_extra = put_bytes(extra, d_extra + 1, _KEY_ORDER_MEMBER)
                for q in range(n_keys):
                    if q:
                        extra[d_extra] = 44
                        d_extra += 1
                    d_extra = put_bytes(extra, d_extra, keys[key_starts[q]:key_ends[q]])
                extra[d_extra] = 93
                d_extra += 1
                n_members += 1
        if ok:
            present[d_present] = 93
            d_present += 1
            if n_members:
                extra[d_extra] = 125
                d_extra += 1
            else:
                d_extra = de0
            status[r] = FAST
        else:
            t, d_ids, d_present, d_extra, d_values, d_promoted, d_roots = t0, di0, dp0, de0, dv0, dpr0, dr0
            for c in range(3):
                n_items[c] = first_items[c]
            d_media[0], d_media[1], d_media[2] = dm0, dm1, dm2
            has_text = False
            has_id = False
            has_root = False
            for j in range(m):
                value_starts[r, j] = d_values
                value_ends[r, j] = d_values
            status[r] = FALLBACK
        text_offsets[r + 1] = t
        text_valid[r] = has_text
        id_offsets[r + 1] = d_ids
        id_valid[r] = has_id
        present_offsets[r + 1] = d_present
        extra_offsets[r + 1] = d_extra
        promoted_offsets_out[r + 1] = d_promoted
        root_offsets[r + 1] = d_roots
        root_valid[r] = has_root
        for c in range(3):
            media_lists[c, r + 1] = n_items[c]


@numba.njit(cache=True, nogil=True, _nrt=False)
def gather(data, starts, ends, out, offsets):
    """Concatenate ``data[starts[k]:ends[k]]`` into ``out`` with Arrow ``offsets`` (int32, n + 1)."""
    o = 0
    offsets[0] = 0
    for k in range(starts.shape[0]):
        for p in range(starts[k], ends[k]):
            out[o] = data[p]
            o += 1
        offsets[k + 1] = o


@numba.njit(cache=True, nogil=True, _nrt=False)
def json_strings(data, offsets, out, out_offsets, status):
    """The JSON strings ``data[offsets[k]:offsets[k + 1]]`` (an empty range or ``null``: none)
    unescaped into ``out`` with Arrow ``out_offsets``; ``status[k]`` is ``FALLBACK`` for anything else."""
    o = 0
    out_offsets[0] = 0
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        status[k] = FAST
        if a < b and data[a] == _QUOTE:
            i, o2 = unescape_string(data, a, b, out, o)
            if i == b:
                o = o2
            else:
                status[k] = FALLBACK
        elif a < b and data[a] != 110:
            status[k] = FALLBACK
        out_offsets[k + 1] = o


@numba.njit(cache=True, nogil=True, _nrt=False)
def json_string_lists(data, offsets, out, item_offsets, list_offsets, status):
    """The JSON arrays of strings ``data[offsets[k]:offsets[k + 1]]`` (an empty range or ``null``:
    none) into Arrow list buffers (``item_offsets`` sized for one item per two bytes);
    ``status[k]`` is ``FALLBACK`` for anything else."""
    o = 0
    n_items = 0
    item_offsets[0] = 0
    list_offsets[0] = 0
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        status[k] = FAST
        if a < b and data[a] == 91:
            i, o, count = _paths(data, a, b, out, o, item_offsets, n_items)
            if i == b:
                n_items = count
            else:
                status[k] = FALLBACK
                o = item_offsets[n_items]
        elif a < b and data[a] != 110:
            status[k] = FALLBACK
        list_offsets[k + 1] = n_items
