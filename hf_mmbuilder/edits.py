"""Edits of DJ rows that keep a format's round-trip indexes in step, for ``ds.map``.

MMC4 rows carry ``image_index`` (per image: its original ``image_info`` entry) and
``sentence_index`` (per chunk: its original sentence); an edit that drops chunks or images must
update them the same way, so that export can realign the similarity matrix
(:mod:`hf_mmbuilder.loading_scripts.mmc4`). :func:`drop_items` does that; :func:`split_document`
and :func:`join_chunks` cut a DJ text into its chunks and build it back. For rows edited by tools
that know only the DJ columns, :func:`image_index_by_path` and :func:`sentence_index_by_text`
rebuild the indexes from what the surviving items are.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Optional, Sequence

from .schema import EOC_TOKEN, IMAGE_TOKEN


def join_chunks(sentences: Sequence[str], counts: dict, positions, tokens, separator: str, add_eoc_at_last: bool) -> str:
    """Data-Juicer's MMC4 text: image tokens around each sentence, chunks joined by the eoc token.

    ``counts`` maps a sentence position to its number of images; ``positions`` is ``"before"``,
    ``"after"``, or a mapping of sentence position to one of them; ``tokens`` is
    ``(image_token, eoc_token)``. O(len(text)).

    Example:
        >>> join_chunks(["a", "b"], {0: 1}, "before", ("<img>", "<eoc>"), " ", True)
        '<img> a <eoc> b <eoc>'
    """
    image_token, eoc = tokens
    chunks = list(sentences) if counts else sentences
    for position, count in counts.items():
        group = separator.join([image_token] * count)
        where = positions if isinstance(positions, str) else positions[position]
        sentence = chunks[position]
        chunks[position] = group + separator + sentence if where == "before" else sentence + separator + group
    text = f" {eoc}{separator}".join(chunks)
    if add_eoc_at_last:
        text += f" {eoc}"
    return text


def split_document(text: str, n_chunks: Optional[int], *, image_token: str = IMAGE_TOKEN, eoc_token: str = EOC_TOKEN,
                   sent_separator: str = " ", add_eoc_at_last: bool = True) -> tuple[list, list]:
    """Cut an MMC4 DJ text back into sentences and the chunk of each image token.

    Parameters
    ----------
    text : str
        DJ text as the builder wrote it (possibly edited).
    n_chunks : int or None
        Expected number of chunks (``len(sentence_index)``); tells ``[]`` from ``[""]``. ``None``
        takes the chunks the text has (an empty text has none).

    Returns
    -------
    sentences : list of str, length ``n_chunks``
        Chunks without their image tokens.
    image_chunks : list of int
        For the k-th image token of ``text``, the chunk it is in.

    Raises ``ValueError`` when the text does not have ``n_chunks`` chunks. Complexity O(len(text)).

    Example:
        >>> split_document("<__dj__image> a <|__dj__eoc|> b <|__dj__eoc|>", 2)
        (['a', 'b'], [0])
        >>> split_document("a <|__dj__eoc|>", None)
        (['a'], [])
    """
    body = text
    suffix = f" {eoc_token}"
    if add_eoc_at_last and body.endswith(suffix):
        body = body[: -len(suffix)]
    empty = body == "" and (n_chunks == 0 or (n_chunks is None and text == ""))
    chunks = [] if empty else body.split(f" {eoc_token}{sent_separator}")
    if n_chunks is not None and len(chunks) != n_chunks:
        raise ValueError(
            f"text has {len(chunks)} chunk(s) but sentence_index has {n_chunks}: an op that drops or adds a chunk "
            "must update sentence_index the same way (see hf_mmbuilder.edits.drop_items)"
        )
    before, after = image_token + sent_separator, sent_separator + image_token
    sentences, image_chunks = [], []
    for position, chunk in enumerate(chunks):
        count = chunk.count(image_token)
        if count:
            while chunk.startswith(before):
                chunk = chunk[len(before):]
            while chunk.endswith(after):
                chunk = chunk[: -len(after)]
            if image_token in chunk:
                chunk = chunk.replace(image_token + sent_separator, "").replace(image_token, "")
            image_chunks.extend([position] * count)
        sentences.append(chunk)
    return sentences, image_chunks


def drop_items(row: dict, images: Sequence[int] = (), sentences: Sequence[int] = (), *, keep_images: bool = False,
               image_token: str = IMAGE_TOKEN, eoc_token: str = EOC_TOKEN, sent_separator: str = " ",
               add_eoc_at_last: bool = True) -> dict:
    """Drop images and/or whole chunks (sentences) of one MMC4 row, keeping the indexes in step.

    Dropping a chunk drops the images whose tokens are in it, or with ``keep_images=True`` moves
    them to the nearest surviving chunk before it (after it for the first chunks); on export such
    an image gets a new sentence by similarity. Use as ``ds.map(lambda row:
    drop_items(row, sentences=[0]))``; pass the tokens/separator the dataset was loaded with.

    Parameters
    ----------
    row : dict
        An MMC4 row (``text``, ``images``, ``image_index``, ``sentence_index``).
    images, sentences : sequence of int
        Current positions (in ``images`` / among the chunks) to drop.

    Returns
    -------
    dict
        New ``text``, ``images``, ``image_index`` and ``sentence_index``.

    Complexity O(len(text) + images + chunks).

    Example:
        >>> row = {"text": "<__dj__image> a <|__dj__eoc|> b <|__dj__eoc|>", "images": ["x.jpg"],
        ...        "image_index": [0], "sentence_index": [0, 1]}
        >>> drop_items(row, sentences=[0])["text"], drop_items(row, images=[0])["text"]
        ('b <|__dj__eoc|>', 'a <|__dj__eoc|> b <|__dj__eoc|>')
    """
    texts, image_chunks = split_document(row["text"], len(row["sentence_index"]), image_token=image_token, eoc_token=eoc_token,
                                         sent_separator=sent_separator, add_eoc_at_last=add_eoc_at_last)
    if len(image_chunks) != len(row["images"]):
        raise ValueError(f"text has {len(image_chunks)} image token(s) but images has {len(row['images'])} path(s)")
    drop_chunks, drop_images = set(sentences), set(images)
    kept_chunks = [c for c in range(len(texts)) if c not in drop_chunks]
    new_position = {chunk: position for position, chunk in enumerate(kept_chunks)}
    if keep_images and kept_chunks:
        for chunk in range(len(texts)):
            if chunk not in new_position:
                earlier = [c for c in kept_chunks if c < chunk]
                new_position[chunk] = new_position[earlier[-1]] if earlier else 0
    kept_images = [k for k, chunk in enumerate(image_chunks) if k not in drop_images and image_chunks[k] in new_position]
    # Tokens are written chunk by chunk, so the image order follows the chunk order.
    kept_images.sort(key=lambda k: new_position[image_chunks[k]])
    counts: dict = {}
    for k in kept_images:
        chunk = new_position[image_chunks[k]]
        counts[chunk] = counts.get(chunk, 0) + 1
    text = join_chunks([texts[c] for c in kept_chunks], counts, "before", (image_token, eoc_token), sent_separator, add_eoc_at_last)
    return {
        "text": text,
        "images": [row["images"][k] for k in kept_images],
        "image_index": [row["image_index"][k] for k in kept_images],
        "sentence_index": [row["sentence_index"][c] for c in kept_chunks],
    }


class AmbiguousIdentityError(ValueError):
    """An edited MMC4 row whose images or sentences cannot be matched back to their originals."""


def image_index_by_path(images: Sequence[str], original_images: Sequence[str]) -> list:
    """``image_index`` of an MMC4 row rebuilt from its image paths, for a row whose images were
    dropped or added by a tool that knows only the DJ columns (``text``, ``images``).

    An image is its exact path string within the document: the original image with that path, in
    order, or -1 (added by processing) when no unmatched original has it. Raises
    :class:`AmbiguousIdentityError` when a path stands more than once among the originals and
    some of those images were removed: which one survives cannot be told. Complexity O(images).

    Example:
        >>> image_index_by_path(["c.jpg", "new.png", "a.jpg"], ["a.jpg", "b.jpg", "c.jpg"])
        [2, -1, 0]
    """
    original_count, current_count = Counter(original_images), Counter(images)
    for path, count in current_count.items():
        if 1 < original_count[path] and count < original_count[path]:
            raise AmbiguousIdentityError(
                f"image {path!r} stands {original_count[path]} times in the original document and {count} time(s) now: "
                "which one was removed cannot be told; keep image_index in step with images"
            )
    positions_of_path = defaultdict(deque)
    for position, path in enumerate(original_images):
        positions_of_path[path].append(position)
    # A path beyond its original copies (or never in the document) is an image added by processing.
    return [positions_of_path[path].popleft() if positions_of_path[path] else -1 for path in images]


def sentence_index_by_text(sentences: Sequence[str], original_sentences: Sequence[str]) -> list:
    """``sentence_index`` of an MMC4 row rebuilt from its chunks' sentences, for a row whose
    chunks were dropped by a tool that knows only the DJ columns.

    A sentence is its text, matched in order: a repeated sentence is its next unmatched occurrence
    after the previous chunk's sentence (or, for chunks moved before it, the first unmatched one).
    Raises :class:`AmbiguousIdentityError` when a sentence matches no unmatched original (its text
    was edited as well). Complexity O(sentences x repeats of a sentence).

    Example:
        >>> sentence_index_by_text(["s0", "s1", "s1"], ["s0", "s1", "s2", "s1"])
        [0, 1, 3]
    """
    positions_of_sentence = defaultdict(list)
    for position, sentence in enumerate(original_sentences):
        positions_of_sentence[sentence].append(position)
    matched = set()
    sentence_index, previous = [], -1
    for chunk, sentence in enumerate(sentences):
        unmatched = [position for position in positions_of_sentence.get(sentence, ()) if position not in matched]
        if not unmatched:
            raise AmbiguousIdentityError(
                f"chunk {chunk} ({sentence!r:.80}) matches no unmatched original sentence: chunks were dropped or added and "
                "this one's text was edited too; keep sentence_index in step with the chunks"
            )
        previous = next((position for position in unmatched if position > previous), unmatched[0])
        matched.add(previous)
        sentence_index.append(previous)
    return sentence_index
