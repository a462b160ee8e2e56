"""Rule-based instruction generation: question-answer, caption and reasoning samples written from a
row's caption and metadata, in several languages, seeded.

Output rows are LLaVA-shaped DJ rows (``[[human]]: <__dj__image>\\n<question>\\n[[gpt]]: <answer>
<|__dj__eoc|>`` with ``roles``), so they concatenate with loaded LLaVA/Oasis data and export with
the LLaVA or Oasis exporter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Mapping, Optional, Sequence

import numpy as np

from ..schema import DEFAULT_TOKENS, ROLE_MARKER_PATTERN, SpecialTokens

INSTRUCTION_TYPES = ("qa", "caption", "reasoning")

# Per language: question templates per type, answer templates, and the words used to list facts.
TEMPLATES: dict[str, dict] = {
    "en": {
        "caption": ["Describe this image briefly.", "What does this picture show?", "Write a short caption for this image.", "Summarize the content of the image in one sentence."],
        "caption_answer": ["{caption}"],
        "qa_subject": ["What is the main subject of this image?", "What can be seen in this picture?"],
        "qa_key": ["What is the {key} shown in this image?", "Can you tell the {key} of this image?"],
        "qa_key_answer": ["The {key} is {value}."],
        "qa_list": ["Which {key} appear in this image?", "List the {key} you can find in the picture."],
        "qa_list_answer": ["The image contains {value}."],
        "reasoning": ["Look at the image carefully. What is happening, and which details support your answer?", "Explain step by step what this image shows and how you can tell."],
        "reasoning_answer": ["Let me go through the image step by step. First, the overall scene: {caption}{facts} Putting these observations together, the image shows {short}."],
        "facts": " Next, the details: {facts}.",
        "and": " and ",
    },
    "zh": {
        "caption": ["请简要描述这张图片。", "这张图片展示了什么？", "为这张图片写一句简短的说明。"],
        "caption_answer": ["{caption}"],
        "qa_subject": ["这张图片的主要内容是什么？", "图中能看到什么？"],
        "qa_key": ["图中的{key}是什么？"],
        "qa_key_answer": ["{key}是{value}。"],
        "qa_list": ["图中出现了哪些{key}？"],
        "qa_list_answer": ["图中有{value}。"],
        "reasoning": ["仔细观察这张图片：发生了什么？哪些细节支持你的判断？"],
        "reasoning_answer": ["我们一步一步地分析这张图片。首先看整体场景：{caption}{facts}综合这些观察，图片展示的是{short}。"],
        "facts": "其次看细节：{facts}。",
        "and": "和",
    },
    "fr": {
        "caption": ["Décrivez brièvement cette image.", "Que montre cette photo ?", "Rédigez une courte légende pour cette image."],
        "caption_answer": ["{caption}"],
        "qa_subject": ["Quel est le sujet principal de cette image ?", "Que voit-on sur cette photo ?"],
        "qa_key": ["Quel est le {key} visible sur cette image ?"],
        "qa_key_answer": ["Le {key} est {value}."],
        "qa_list": ["Quels {key} apparaissent sur cette image ?"],
        "qa_list_answer": ["L'image contient {value}."],
        "reasoning": ["Observez attentivement l'image. Que se passe-t-il, et quels détails le montrent ?"],
        "reasoning_answer": ["Analysons l'image étape par étape. D'abord, la scène dans son ensemble : {caption}{facts} En rassemblant ces observations, l'image montre {short}."],
        "facts": " Ensuite, les détails : {facts}.",
        "and": " et ",
    },
    "de": {
        "caption": ["Beschreibe dieses Bild kurz.", "Was zeigt dieses Foto?", "Schreibe eine kurze Bildunterschrift für dieses Bild."],
        "caption_answer": ["{caption}"],
        "qa_subject": ["Was ist das Hauptmotiv dieses Bildes?", "Was ist auf diesem Bild zu sehen?"],
        "qa_key": ["Was ist die {key} auf diesem Bild?"],
        "qa_key_answer": ["Die {key} ist {value}."],
        "qa_list": ["Welche {key} kommen auf diesem Bild vor?"],
        "qa_list_answer": ["Das Bild enthält {value}."],
        "reasoning": ["Sieh dir das Bild genau an. Was passiert, und welche Details sprechen dafür?"],
        "reasoning_answer": ["Gehen wir das Bild Schritt für Schritt durch. Zuerst die Gesamtszene: {caption}{facts} Zusammengenommen zeigt das Bild {short}."],
        "facts": " Dann die Details: {facts}.",
        "and": " und ",
    },
    "es": {
        "caption": ["Describe brevemente esta imagen.", "¿Qué muestra esta foto?", "Escribe un pie de foto breve para esta imagen."],
        "caption_answer": ["{caption}"],
        "qa_subject": ["¿Cuál es el tema principal de esta imagen?", "¿Qué se ve en esta foto?"],
        "qa_key": ["¿Cuál es el {key} que se ve en esta imagen?"],
        "qa_key_answer": ["El {key} es {value}."],
        "qa_list": ["¿Qué {key} aparecen en esta imagen?"],
        "qa_list_answer": ["La imagen contiene {value}."],
        "reasoning": ["Observa la imagen con atención. ¿Qué está pasando y qué detalles lo indican?"],
        "reasoning_answer": ["Analicemos la imagen paso a paso. Primero, la escena general: {caption}{facts} Juntando estas observaciones, la imagen muestra {short}."],
        "facts": " Luego, los detalles: {facts}.",
        "and": " y ",
    },
}
LANGUAGES = tuple(TEMPLATES)

_ANSWER_MARKER = re.compile(r"(?m:^\[\[(?:gpt|assistant|model|bot)\]\]: ?)")
_CAPTION_KEYS = ("caption", "text", "description")


def caption_of(text: Optional[str], tokens: SpecialTokens = DEFAULT_TOKENS) -> str:
    """The caption a DJ text carries: the first assistant turn of a conversation, else the prose.

    Media tokens, end-of-chunk tokens and role markers are removed; whitespace is collapsed.
    O(len(text)).

    Example:
        >>> caption_of("[[human]]: <__dj__image>\\nWhat is it?\\n[[gpt]]: A red bus. <|__dj__eoc|>")
        'A red bus.'
        >>> caption_of("<__dj__image> A cat on a mat. <|__dj__eoc|>")
        'A cat on a mat.'
    """
    text = text or ""
    answer = _ANSWER_MARKER.search(text)
    if answer:
        text = text[answer.end():]
        following = re.search(ROLE_MARKER_PATTERN, text)
        text = text[: following.start()] if following else text
    for token in (tokens.image, tokens.audio, tokens.video, tokens.eoc):
        text = text.replace(token, " ")
    text = re.sub(ROLE_MARKER_PATTERN, " ", text)
    return " ".join(text.split())


def _choose(options: Sequence[str], seed: int, *key) -> str:
    digest = hashlib.blake2b(repr((seed, *key)).encode("utf-8"), digest_size=8).digest()
    return options[int.from_bytes(digest, "little") % len(options)]


def _metadata_items(metadata) -> list[tuple[str, object]]:
    if metadata is None or metadata == "":
        return []
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return []
    if not isinstance(metadata, Mapping):
        return []
    items = []
    for key, value in metadata.items():
        if key in _CAPTION_KEYS or key == "file_name" or value in (None, "", []):
            continue
        if isinstance(value, (str, int, float)) or (isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value)):
            items.append((str(key).replace("_", " "), value))
    return items


def _join(values: list, conjunction: str) -> str:
    values = [str(value) for value in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + conjunction + values[-1]


def write_instruction(caption: str, metadata, instruction_type: str, language: str, seed: int, key: str) -> tuple[str, str]:
    """One (question, answer) pair of ``instruction_type`` in ``language`` from a caption and metadata.

    The template is picked by a hash of ``(seed, key, type, language)``, so the output depends on
    the row, never on batch size or worker count. O(len(caption) + size of metadata).

    Example:
        >>> write_instruction("A red bus on a street.", {"objects": ["bus", "street"]}, "qa", "en", 0, "r1")
        ('Which objects appear in this image?', 'The image contains bus and street.')
    """
    if instruction_type not in INSTRUCTION_TYPES:
        raise ValueError(f"unknown instruction type {instruction_type!r}; known: {INSTRUCTION_TYPES}")
    if language not in TEMPLATES:
        raise ValueError(f"no templates for language {language!r}; available: {LANGUAGES}")
    words = TEMPLATES[language]
    items = _metadata_items(metadata)
    pick = lambda name, *extra: _choose(words[name], seed, key, instruction_type, language, name, *extra)  # noqa: E731
    if instruction_type == "caption":
        return pick("caption"), pick("caption_answer").format(caption=caption)
    if instruction_type == "qa":
        if items:
            item_key, value = _choose(items, seed, key, "item")
            if isinstance(value, list):
                return pick("qa_list").format(key=item_key), pick("qa_list_answer").format(value=_join(value, words["and"]))
            return pick("qa_key").format(key=item_key), pick("qa_key_answer").format(key=item_key, value=value)
        return pick("qa_subject"), caption
    facts = [f"{k}: {_join(v, words['and']) if isinstance(v, list) else v}" for k, v in items]
    # The closing summary names the gist (first sentence, a few words) rather than repeating the
    # caption, which would read badly and trip the repeated-n-gram filter.
    first = re.split(r"(?<=[.!?。！？])\s*", caption.strip(), maxsplit=1)[0].rstrip(".。!！?？")
    words_of_first = first.split()
    short = " ".join(words_of_first[:8]) if len(words_of_first) > 1 else first[:24]
    short = short[:1].lower() + short[1:] if language in ("en", "fr", "es") else short
    facts_text = words["facts"].format(facts="; ".join(facts)) if facts else ""
    return pick("reasoning"), pick("reasoning_answer").format(caption=caption, facts=facts_text, short=short)


@dataclasses.dataclass(frozen=True)
class TemplateInstructions:
    """Batched ``.map`` op turning captioned media rows into LLaVA-shaped instruction rows.

    Reads ``text`` (the caption, see :func:`caption_of`), the media columns, an optional
    ``metadata`` column (dict or JSON string) and the per-row ``instruction_type`` and
    ``language`` columns (see :func:`plan_instructions`); writes ``text`` (``[[human]]:`` question
    with the row's media tokens, ``[[gpt]]:`` answer, final end-of-chunk token), ``roles``,
    ``id`` and ``media_layout``. Media lists are kept, so the alignment invariant holds.

    Notes
    -----
    O(total text length) per batch; deterministic for a seed, so ``datasets`` caches it.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image> A red bus."], "images": [["bus.jpg"]],
        ...                         "instruction_type": ["caption"], "language": ["en"], "source_row": [0]})
        >>> ds.map(TemplateInstructions(seed=1), batched=True)[0]["text"]
        '[[human]]: <__dj__image>\\nWhat does this picture show?\\n[[gpt]]: A red bus. <|__dj__eoc|>'
    """

    seed: int = 0
    tokens: SpecialTokens = DEFAULT_TOKENS

    def __call__(self, batch: dict) -> dict:
        n = len(batch["text"])
        metadata = batch.get("metadata") or [None] * n
        source_rows = batch.get("source_row") or list(range(n))
        texts, roles, ids, layouts = [], [], [], []
        for row in range(n):
            caption = caption_of(batch["text"][row], self.tokens)
            key = f"{source_rows[row]}:{caption}"
            question, answer = write_instruction(caption, metadata[row], batch["instruction_type"][row], batch["language"][row], self.seed, key)
            placeholders = "".join(
                self.tokens.for_column(name) * len(batch.get(name, [None] * n)[row] or []) for name in ("images", "videos", "audios")
            )
            prompt = f"{placeholders}\n{question}" if placeholders else question
            texts.append(f"[[human]]: {prompt}\n[[gpt]]: {answer} {self.tokens.eoc}")
            roles.append(["human", "gpt"])
            ids.append(f"{batch['instruction_type'][row]}-{batch['language'][row]}-{source_rows[row]}-{hashlib.blake2b(key.encode(), digest_size=4).hexdigest()}")
            layouts.append("image" if len(batch.get("images", [None] * n)[row] or []) == 1 else ("image[]" if batch.get("images", [None] * n)[row] else ""))
        return {"text": texts, "roles": roles, "id": ids, "media_layout": layouts}


def plan_instructions(num_rows: int, num_samples: int, instruction_types: Sequence[str] = INSTRUCTION_TYPES,
                      languages: Sequence[str] = ("en",), seed: int = 0) -> dict[str, np.ndarray]:
    """Which source row, instruction type and language each of ``num_samples`` samples uses.

    Rows are visited in a seeded random order, cycling when ``num_samples > num_rows``; each visit
    of a row takes the next (type, language) pair of its own seeded cycle, so no row repeats a pair
    before it has used them all. O(num_samples).

    Returns
    -------
    dict with ``source_row`` (int64), ``instruction_type`` and ``language`` (object arrays), each of
    length ``num_samples``.

    Example:
        >>> plan = plan_instructions(2, 4, ["qa", "caption"], ["en"], seed=0)
        >>> sorted(zip(plan["source_row"].tolist(), plan["instruction_type"].tolist()))
        [(0, 'caption'), (0, 'qa'), (1, 'caption'), (1, 'qa')]
    """
    if num_rows <= 0:
        raise ValueError("no rows with media to generate instructions from")
    for kind in instruction_types:
        if kind not in INSTRUCTION_TYPES:
            raise ValueError(f"unknown instruction type {kind!r}; known: {INSTRUCTION_TYPES}")
    for language in languages:
        if language not in TEMPLATES:
            raise ValueError(f"no templates for language {language!r}; available: {LANGUAGES}")
    rng = np.random.default_rng(seed)
    pairs = [(kind, language) for kind in instruction_types for language in languages]
    order = np.concatenate([rng.permutation(num_rows) for _ in range(-(-num_samples // num_rows))])[:num_samples]
    offsets = rng.integers(0, len(pairs), num_rows)
    visits = np.zeros(num_rows, dtype=np.int64)
    kinds, langs = [], []
    for row in order.tolist():
        kind, language = pairs[(offsets[row] + visits[row]) % len(pairs)]
        visits[row] += 1
        kinds.append(kind)
        langs.append(language)
    return {"source_row": order.astype(np.int64), "instruction_type": np.array(kinds, dtype=object), "language": np.array(langs, dtype=object)}


def generate_template_instructions(dataset, num_samples: int, instruction_types: Sequence[str] = INSTRUCTION_TYPES,
                                   languages: Sequence[str] = ("en",), seed: int = 0, num_proc: Optional[int] = None):
    """Generate ``num_samples`` template instructions from the rows of ``dataset`` that have media.

    Parameters
    ----------
    dataset : datasets.Dataset
        DJ rows; ``text`` holds the caption (or a conversation whose first answer is used),
        an optional ``metadata`` column feeds the question-answer and reasoning templates.
    num_samples : int
    instruction_types : sequence of {"qa", "caption", "reasoning"}
    languages : sequence of str
        Any of ``LANGUAGES`` (en, zh, fr, de, es).
    seed : int

    Returns
    -------
    datasets.Dataset
        LLaVA-shaped DJ rows with ``instruction_type``, ``language`` and ``source_row`` (index
        into ``dataset``) columns. O(num_samples) template work plus one ``select``.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image> A red bus."], "images": [["bus.jpg"]]})
        >>> out = generate_template_instructions(ds, 3, ["caption", "qa"], ["en", "zh"], seed=0)
        >>> len(out), out[0]["images"]
        (3, ['bus.jpg'])
    """
    from datasets import Value

    media_columns = [name for name in ("images", "videos", "audios") if name in dataset.column_names]
    if not media_columns:
        raise ValueError("the dataset has no media column (images/videos/audios) to write instructions about")
    lengths = np.zeros(len(dataset), dtype=np.int64)
    for name in media_columns:
        lengths += np.asarray([len(paths or []) for paths in dataset[name]], dtype=np.int64)
    with_media = np.flatnonzero(lengths > 0)
    plan = plan_instructions(len(with_media), num_samples, instruction_types, languages, seed)
    rows = with_media[plan["source_row"]]
    selected = dataset.select(rows.tolist())
    for name in ("source_row", "instruction_type", "language"):
        if name in selected.column_names:
            selected = selected.remove_columns(name)
    selected = selected.add_column("source_row", rows.tolist(), feature=Value("int64"))
    selected = selected.add_column("instruction_type", plan["instruction_type"].tolist(), feature=Value("string"))
    selected = selected.add_column("language", plan["language"].tolist(), feature=Value("string"))
    return selected.map(TemplateInstructions(seed=seed), batched=True, num_proc=num_proc, desc="template instructions")
