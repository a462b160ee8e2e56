"""Generated data in the real formats' shapes, for the demo, the tests and the benchmarks.

Real corpora cannot be downloaded here; these generators reproduce the shapes that matter (record
counts, id types, text-only records, token positions, whitespace, extra keys, non-ASCII text), are
seeded, and write files of any size in bounded memory.
"""

from __future__ import annotations

import os
import random

import orjson

_WORDS = (
    "the a bus red white image man truck sitting street people what is color of in on with and to "
    "could be several reasons kitchen table dog window sign wearing holding standing left right "
    "two three background front small large green blue 公交车 图片 颜色 Straße café"
).split()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))


def llava_records(count: int, seed: int = 0, image_folder: str = "coco/train2017"):
    """Yield ``count`` LLaVA-665k-shaped records.

    Shape (from the real mix665k): 11% int ids (GQA), 6% text-only records with ``"model": ""``,
    ``<image>`` at the start or the end of the first human turn, 2-10 turns, about 0.1% of values
    with surrounding whitespace, one in 10,000 records with extra per-turn keys, some non-ASCII.

    Example:
        >>> record = next(llava_records(1))
        >>> sorted(record)
        ['conversations', 'id', 'image']
    """
    rng = random.Random(seed)
    for number in range(count):
        record = {}
        if rng.random() < 0.11:
            record["id"] = rng.randrange(1, 10**7)
        else:
            record["id"] = f"{number:012d}"
        text_only = rng.random() < 0.06
        if text_only:
            record["model"] = ""
        else:
            record["image"] = f"{image_folder}/{number:012d}.jpg"
        conversations = []
        for turn in range(rng.choice((2, 2, 4, 6, 8, 10))):
            if turn % 2 == 0:
                value = _sentence(rng, 5, 24) + "?"
                if turn == 0 and not text_only:
                    value = f"<image>\n{value}" if rng.random() < 0.5 else f"{value}\n<image>"
                conversations.append({"from": "human", "value": value})
            else:
                conversations.append({"from": "gpt", "value": _sentence(rng, 6, 57) + "."})
        if rng.random() < 0.001:
            conversations[-1]["value"] = " " + conversations[-1]["value"] + "\n"
        if rng.random() < 0.0001:
            conversations[0]["markdown"] = {"answer": conversations[0]["value"]}
            conversations[0]["text"] = conversations[0]["value"]
        record["conversations"] = conversations
        yield record


def write_llava_json(path: str, count: int, seed: int = 0, lines: bool = False) -> str:
    """Write ``count`` generated LLaVA records as a JSON array (pretty-printed like the real files)
    or as JSON lines; returns ``path``.

    Example:
        >>> write_llava_json("/tmp/llava.json", 10)  # doctest: +SKIP
        '/tmp/llava.json'
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as handle:
        if lines:
            for record in llava_records(count, seed):
                handle.write(orjson.dumps(record) + b"\n")
            return path
        handle.write(b"[\n")
        for number, record in enumerate(llava_records(count, seed)):
            if number:
                handle.write(b",\n")
            handle.write(orjson.dumps(record, option=orjson.OPT_INDENT_2))
        handle.write(b"\n]\n")
    return path


def write_images(folder: str, names: list, seed: int = 0, size: tuple = (64, 48)) -> list:
    """Write small distinct JPEG images (gradients with shapes) at ``folder/name``; returns paths.

    Example:
        >>> write_images("/tmp/media", ["a.jpg"])  # doctest: +SKIP
        ['/tmp/media/a.jpg']
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    paths = []
    for name in names:
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
            box = (x0, y0, x0 + rng.randrange(5, size[0]), y0 + rng.randrange(5, size[1]))
            draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
        image.save(path, quality=90)
        paths.append(path)
    return paths
