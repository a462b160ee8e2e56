"""Oasis records -> LLaVA records, as bytes, in one compiled pass (for the compiled LLaVA parser).

An Oasis output record is a LLaVA record; an input record (``instruction``/``response``/``image``)
becomes the two-turn conversation the careful path of ``loading_scripts/oasis.py`` builds (the
human turn ``<image>\\n`` + instruction when the record has an image), its other keys after
``conversations``, then ``"__oasis_layout__":"instruction"`` and, when its keys were not in the
order export writes them (``instruction``, ``response``, ``id``, ``image``, ``video``, others), its
key list under ``__key_order__``. Every key is written as orjson writes it and every value the
LLaVA parser does not read (the keys it keeps in ``extra``) as orjson writes its decoded value
(:func:`~hf_mmbuilder.kernels.json_scan.canonical_value`), so the compiled LLaVA parser, which
copies those bytes, gives what the careful path gives. A record this pass is not sure about (a
repeated key, a key the careful path treats specially, a value it cannot write canonically, an
instruction or response that is not a string) gets an empty range: the LLaVA parser flags it
``FALLBACK`` and the careful path converts it.
"""

from __future__ import annotations

import numba
import numpy as np

from .json_scan import MAX_NESTING, canonical_string, canonical_value, copy_bytes, key_is, put_bytes, same_bytes, skip_whitespace, value_end

_QUOTE = 34
# A record with more top-level keys than this goes the careful way.
_MAX_KEYS = 64

_INSTRUCTION = np.frombuffer(b"instruction", np.uint8)
_RESPONSE = np.frombuffer(b"response", np.uint8)
_ID = np.frombuffer(b"id", np.uint8)
_IMAGE = np.frombuffer(b"image", np.uint8)
_VIDEO = np.frombuffer(b"video", np.uint8)
_CONVERSATIONS = np.frombuffer(b"conversations", np.uint8)
_LAYOUT = np.frombuffer(b"__oasis_layout__", np.uint8)
_KEY_ORDER = np.frombuffer(b"__key_order__", np.uint8)
_HUMAN = np.frombuffer(b'"conversations":[{"from":"human","value":"', np.uint8)
_IMAGE_PREFIX = np.frombuffer(b"<image>\\n", np.uint8)
_GPT = np.frombuffer(b'{"from":"gpt","value":', np.uint8)
_LAYOUT_MEMBER = np.frombuffer(b'"__oasis_layout__":"instruction"', np.uint8)
_KEY_ORDER_MEMBER = np.frombuffer(b',"__key_order__":[', np.uint8)

# Key ranks: the input record's order on export; the LLaVA keys; everything else.
_R_INSTRUCTION = 0
_R_RESPONSE = 1
_R_ID = 2
_R_IMAGE = 3
_R_VIDEO = 4
_R_OTHER = 5
_R_CONVERSATIONS = 6
_R_REFUSED = 7


@numba.njit(cache=True, nogil=True, _nrt=False)
def _rank(data, a, b):
    if key_is(data, a, b, _INSTRUCTION):
        return _R_INSTRUCTION
    if key_is(data, a, b, _RESPONSE):
        return _R_RESPONSE
    if key_is(data, a, b, _ID):
        return _R_ID
    if key_is(data, a, b, _IMAGE):
        return _R_IMAGE
    if key_is(data, a, b, _VIDEO):
        return _R_VIDEO
    if key_is(data, a, b, _CONVERSATIONS):
        return _R_CONVERSATIONS
    if key_is(data, a, b, _LAYOUT) or key_is(data, a, b, _KEY_ORDER):
        return _R_REFUSED
    return _R_OTHER


@numba.njit(cache=True, nogil=True)
def as_llava(buf, starts, ends, out, out_starts, out_ends):
    """Write each Oasis record ``buf[starts[r]:ends[r]]`` as a LLaVA record at ``out[out_starts[r]:out_ends[r]]``
    (an empty range where the careful path must convert it).

    ``out`` starts with a copy of ``buf``: a LLaVA record already written as this pass would write
    it keeps its own range there; the others are written after it. ``out`` needs
    ``3 * len(buf) + 160 * n`` bytes. Complexity: O(len(buf)) (keys compared with the record's
    earlier keys: O(keys^2)).
    """
    keys = np.empty(buf.shape[0] + 2, np.uint8)
    key_starts = np.empty(_MAX_KEYS, np.int64)
    key_ends = np.empty(_MAX_KEYS, np.int64)
    ranks = np.empty(_MAX_KEYS, np.int64)
    value_starts = np.empty(_MAX_KEYS, np.int64)
    value_stops = np.empty(_MAX_KEYS, np.int64)
    scratch_starts = np.empty(512, np.int64)
    scratch_ends = np.empty(512, np.int64)
    first_keys = np.empty(MAX_NESTING + 1, np.int64)
    raw_key_starts = np.empty(_MAX_KEYS, np.int64)
    out[: buf.shape[0]] = buf
    o = buf.shape[0]
    for r in range(starts.shape[0]):
        end = ends[r]
        out_starts[r] = o
        ok = True
        n_keys = 0
        d_keys = 0
        has_conversations = False
        has_instruction = False
        i = skip_whitespace(buf, starts[r], end)
        if i >= end or buf[i] != 123:
            ok = False
        else:
            i = skip_whitespace(buf, i + 1, end)
            if i < end and buf[i] == 125:
                ok = False
        # The record's members: keys written canonically into `keys`, values located.
        while ok and i < end:
            if buf[i] != _QUOTE or n_keys >= _MAX_KEYS:
                ok = False
                break
            key_start = d_keys
            raw_start = i
            i, d_keys = canonical_string(buf, i, end, keys, d_keys)
            if i < 0:
                ok = False
                break
            for q in range(n_keys):
                if same_bytes(keys, key_starts[q], key_ends[q], keys, key_start, d_keys):
                    ok = False
            rank = _rank(keys, key_start, d_keys)
            if not ok or rank == _R_REFUSED:
                ok = False
                break
            has_conversations = has_conversations or rank == _R_CONVERSATIONS
            has_instruction = has_instruction or rank == _R_INSTRUCTION
            i = skip_whitespace(buf, i, end)
            if i >= end or buf[i] != 58:
                ok = False
                break
            i = skip_whitespace(buf, i + 1, end)
            if i >= end:
                ok = False
                break
            stop = value_end(buf, i, end)
            if stop < 0:
                ok = False
                break
            key_starts[n_keys] = key_start
            key_ends[n_keys] = d_keys
            raw_key_starts[n_keys] = raw_start
            ranks[n_keys] = rank
            value_starts[n_keys] = i
            value_stops[n_keys] = stop
            n_keys += 1
            i = skip_whitespace(buf, stop, end)
            if i < end and buf[i] == 44:
                i = skip_whitespace(buf, i + 1, end)
                continue
            if i < end and buf[i] == 125:
                ok = skip_whitespace(buf, i + 1, end) == end
                break
            ok = False
        if ok and not has_conversations and has_instruction:
            # An input record: id, image, video, the two turns, the others, the layout.
            out[o] = 123
            o += 1
            has_image = False
            instruction = -1
            response = -1
            for wanted in (_R_ID, _R_IMAGE, _R_VIDEO):
                for q in range(n_keys):
                    if ranks[q] == wanted:
                        o = copy_bytes(out, o, keys, key_starts[q], key_ends[q])
                        out[o] = 58
                        o = copy_bytes(out, o + 1, buf, value_starts[q], value_stops[q])
                        out[o] = 44
                        o += 1
                        has_image = has_image or wanted == _R_IMAGE
            for q in range(n_keys):
                if ranks[q] == _R_INSTRUCTION:
                    instruction = q
                elif ranks[q] == _R_RESPONSE:
                    response = q
            if response < 0 or buf[value_starts[instruction]] != _QUOTE or buf[value_starts[response]] != _QUOTE:
                ok = False
            else:
                o = put_bytes(out, o, _HUMAN)
                if has_image:
                    o = put_bytes(out, o, _IMAGE_PREFIX)
                o = copy_bytes(out, o, buf, value_starts[instruction] + 1, value_stops[instruction])
                out[o] = 125
                out[o + 1] = 44
                o = put_bytes(out, o + 2, _GPT)
                o = copy_bytes(out, o, buf, value_starts[response], value_stops[response])
                out[o] = 125
                out[o + 1] = 93
                o += 2
                for q in range(n_keys):
                    if ranks[q] == _R_OTHER and ok:
                        out[o] = 44
                        o = copy_bytes(out, o + 1, keys, key_starts[q], key_ends[q])
                        out[o] = 58
                        position, o = canonical_value(buf, value_starts[q], value_stops[q], out, o + 1, scratch_starts, scratch_ends, first_keys)
                        ok = position == value_stops[q]
                out[o] = 44
                o = put_bytes(out, o + 1, _LAYOUT_MEMBER)
                reordered = False
                for q in range(1, n_keys):
                    if ranks[q] < ranks[q - 1]:
                        reordered = True
                if reordered:
                    o = put_bytes(out, o, _KEY_ORDER_MEMBER)
                    for q in range(n_keys):
                        if q:
                            out[o] = 44
                            o += 1
                        o = copy_bytes(out, o, keys, key_starts[q], key_ends[q])
                    out[o] = 93
                    o += 1
                out[o] = 125
                o += 1
        elif ok:
            # A LLaVA record (or one the LLaVA path rejects): its keys and extra values canonical.
            # When they are already, the record keeps its own bytes.
            verbatim = True
            for q in range(n_keys):
                if not same_bytes(keys, key_starts[q], key_ends[q], buf, raw_key_starts[q], raw_key_starts[q] + key_ends[q] - key_starts[q]):
                    verbatim = False
                    break
                if ranks[q] == _R_OTHER or ranks[q] == _R_INSTRUCTION or ranks[q] == _R_RESPONSE:
                    position, written = canonical_value(buf, value_starts[q], value_stops[q], out, o, scratch_starts, scratch_ends, first_keys)
                    if position != value_stops[q] or written - o != value_stops[q] - value_starts[q] or not same_bytes(out, o, written, buf, value_starts[q], value_starts[q] + written - o):
                        verbatim = False
                        break
            if verbatim:
                out_starts[r] = starts[r]
                out_ends[r] = ends[r]
                continue
            out[o] = 123
            o += 1
            for q in range(n_keys):
                if q:
                    out[o] = 44
                    o += 1
                o = copy_bytes(out, o, keys, key_starts[q], key_ends[q])
                out[o] = 58
                o += 1
                if ranks[q] == _R_OTHER or ranks[q] == _R_INSTRUCTION or ranks[q] == _R_RESPONSE:
                    position, o = canonical_value(buf, value_starts[q], value_stops[q], out, o, scratch_starts, scratch_ends, first_keys)
                    ok = ok and position == value_stops[q]
                else:
                    o = copy_bytes(out, o, buf, value_starts[q], value_stops[q])
            out[o] = 125
            o += 1
        if not ok:
            o = out_starts[r]
        out_ends[r] = o
