"""DJ text cut into what the report shows: role turns (LLaVA, ShareGPT ...) or, without role
markers, a document of chunks (MMC4), each a list of text pieces and media slots in place.

The k-th ``<__dj__image>`` of a row is its ``images[k]`` (likewise audio and video), so a media
slot carries the kind and its index in the row's list; the report puts the item's preview there.
A token without an item (a misaligned row) keeps its slot and is shown as missing.
"""

from __future__ import annotations

import re
from typing import Optional

from ..schema import DEFAULT_TOKENS, SpecialTokens

# A role marker as the builders write it, at the start of the text or of a line: "[[human]]: ".
_ROLE = re.compile(r"(?:^|\n)\[\[([^\[\]\n]{1,64})\]\]: ?")


def _pieces(text: str, tokens: SpecialTokens, counters: dict) -> list:
    """``text`` as ``["t", str]`` / ``[kind, index]`` / ``["eoc"]`` pieces; ``counters`` carries
    the media indices across the turns of one row."""
    kinds = {tokens.image: "image", tokens.audio: "audio", tokens.video: "video"}
    pattern = "|".join(re.escape(token) for token in sorted([*kinds, tokens.eoc], key=len, reverse=True))
    pieces: list = []
    position = 0
    for match in re.finditer(pattern, text):
        if match.start() > position:
            pieces.append(["t", text[position:match.start()]])
        token = match.group(0)
        if token == tokens.eoc:
            pieces.append(["eoc"])
        else:
            kind = kinds[token]
            pieces.append([kind, counters[kind]])
            counters[kind] += 1
        position = match.end()
    if position < len(text):
        pieces.append(["t", text[position:]])
    return pieces


def conversation(text: Optional[str], tokens: SpecialTokens = DEFAULT_TOKENS) -> dict:
    """The shape of one row's DJ ``text`` for the report.

    Returns ``{"turns": [[role, pieces], ...]}`` when the text has role markers (text before the
    first marker is a turn with role ``None``), else ``{"chunks": [pieces, ...]}``: the document's
    chunks, split at the end-of-chunk token, media in place. A piece is ``["t", text]`` or
    ``[kind, k]`` (the k-th item of the row's ``images``/``audios``/``videos``); in turns an
    end-of-chunk token is the piece ``["eoc"]``. O(len(text)).

    Example:
        >>> conversation("[[human]]: <__dj__image>\\nWhat is it?\\n[[gpt]]: A bus.<|__dj__eoc|>")
        {'turns': [['human', [['image', 0], ['t', '\\nWhat is it?']]], ['gpt', [['t', 'A bus.'], ['eoc']]]]}
        >>> conversation("A bridge. <__dj__image><|__dj__eoc|>It spans a river.<|__dj__eoc|>")
        {'chunks': [[['t', 'A bridge. '], ['image', 0]], [['t', 'It spans a river.']]]}
    """
    text = text or ""
    counters = {"image": 0, "audio": 0, "video": 0}
    markers = list(_ROLE.finditer(text))
    if not markers:
        chunks: list = [[]]
        for piece in _pieces(text, tokens, counters):
            if piece[0] == "eoc":
                chunks.append([])
            else:
                chunks[-1].append(piece)
        return {"chunks": [chunk for chunk in chunks if chunk]}
    turns = []
    if markers[0].start() > 0:
        turns.append([None, _pieces(text[:markers[0].start()], tokens, counters)])
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        turns.append([marker.group(1), _pieces(text[marker.end():end], tokens, counters)])
    return {"turns": turns}
