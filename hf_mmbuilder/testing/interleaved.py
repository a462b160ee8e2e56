"""Seeded generators for the interleaved and conversation formats: MMC4, ShareGPT-style
``messages`` (LLaMA-Factory, ms-swift, OpenAI/Qwen content parts) and Oasis.

Each generator yields records with every quirk its format's loader must keep (listed in its
docstring), so the tests and benchmarks exercise the careful paths as well as the fast ones.
Files are written as JSON lines in bounded memory.
"""

from __future__ import annotations

import os
import random
import zipfile
from typing import Callable, Iterator

import orjson

_WORDS = (
    "the a page photo news price review city garden road car house dog travel recipe market team "
    "season world local best new guide how why when what school music art water light "
    "图片 新闻 Straße café naïve 😀"
).split()


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high))) + "."


def mmc4_records(count: int, seed: int = 0, images_mean: float = 5.6, sentences_mean: float = 20.0) -> Iterator[dict]:
    """Yield ``count`` MMC4 documents (about ``images_mean`` images x ``sentences_mean`` sentences).

    Quirks: documents with no image (and one with no sentence), repeated ``matched_text_index``,
    sentences with surrounding whitespace, an empty sentence, non-ASCII text, ``url`` absent,
    ``could_have_url_duplicate`` 0/1/absent, ``face_detections`` null or a list of boxes, extra
    per-image and top-level keys; ``similarity_matrix`` is images x sentences, ``matched_sim`` its
    value at ``matched_text_index``.

    Example:
        >>> sorted(next(mmc4_records(1)))
        ['could_have_url_duplicate', 'image_info', 'similarity_matrix', 'text_list', 'url']
    """
    rng = random.Random(seed)
    for number in range(count):
        n_sentences = max(1, int(rng.expovariate(1 / sentences_mean))) if number % 997 else 0
        n_images = min(int(rng.expovariate(1 / images_mean)) if n_sentences else 0, 3 * n_sentences)
        sentences = [_sentence(rng, 3, 25) for _ in range(n_sentences)]
        if n_sentences and rng.random() < 0.05:
            sentences[rng.randrange(n_sentences)] = "  " + sentences[0] + " \n"
        if n_sentences and rng.random() < 0.01:
            sentences[rng.randrange(n_sentences)] = ""
        matrix = [[rng.uniform(0.05, 0.45) for _ in range(n_sentences)] for _ in range(n_images)]
        image_info = []
        for image in range(n_images):
            match = rng.randrange(n_sentences) if rng.random() < 0.3 or not image_info else image_info[-1]["matched_text_index"]
            entry = {
                "image_name": f"{rng.getrandbits(48):012x}.{rng.choice(('jpg', 'png', 'jpeg'))}",
                "raw_url": f"http://example.com/img/{number}/{image}.jpg",
                "matched_text_index": match,
                "matched_sim": matrix[image][match],
                "face_detections": None if rng.random() < 0.9 else [[0.1, 0.2, 0.3, 0.4, 0.99]],
            }
            if rng.random() < 0.01:
                entry["clip_score"] = 0.25
            image_info.append(entry)
        record = {}
        if rng.random() < 0.98:
            record["url"] = f"https://site{number % 101}.example.org/p/{number}?q=ü"
        record["text_list"] = sentences
        record["image_info"] = image_info
        record["similarity_matrix"] = matrix
        roll = rng.random()
        if roll < 0.9:
            record["could_have_url_duplicate"] = int(roll < 0.05)
        if rng.random() < 0.01:
            record["doc_id"] = number
        yield record


def _media_path(rng: random.Random, kind: str, number: int) -> str:
    extension = {"image": "jpg", "video": "mp4", "audio": "wav"}[kind]
    return f"mllm_demo_data/{kind}s/{number % 5000}_{rng.randrange(100)}.{extension}"


def sharegpt_records(count: int, seed: int = 0) -> Iterator[dict]:
    """Yield ``count`` ``messages`` records mixing the three styles.

    Quirks: LLaMA-Factory (tokens glued to text at the start, the end and mid-conversation, the
    same image twice, video+audio, text-only, a system message); ms-swift (``tools`` as a JSON
    string, ``tool_call``/``tool_response`` roles, ``objects`` grounding boxes, ``loss`` per
    message); OpenAI/Qwen parts (``image_url`` with ``detail``, ``image``/``video``/``audio``
    parts, consecutive text parts, ``content: null`` with ``tool_calls``); extra top-level keys,
    non-ASCII, surrounding whitespace.

    Example:
        >>> "messages" in next(sharegpt_records(1))
        True
    """
    rng = random.Random(seed)
    for number in range(count):
        style = ("llamafactory", "swift", "openai")[number % 3]
        record: dict = {}
        if style == "openai":
            messages = []
            if rng.random() < 0.2:
                messages.append({"role": "system", "content": "You are a helpful assistant."})
            parts = []
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(("image_url", "image", "video", "audio", "text", "text"))
                if kind == "image_url":
                    part = {"type": "image_url", "image_url": {"url": _media_path(rng, "image", number)}}
                    if rng.random() < 0.5:
                        part["image_url"]["detail"] = "high"
                elif kind == "text":
                    part = {"type": "text", "text": _sentence(rng, 2, 12)}
                else:
                    part = {"type": kind, kind: _media_path(rng, kind, number)}
                parts.append(part)
            parts.append({"type": "text", "text": _sentence(rng, 3, 15) + "?"})
            messages.append({"role": "user", "content": parts})
            if rng.random() < 0.1:
                messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
                messages.append({"role": "tool", "content": "42", "tool_call_id": "c1"})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": _sentence(rng, 5, 30)}] if rng.random() < 0.3 else _sentence(rng, 5, 30)})
            record["messages"] = messages
        else:
            messages = []
            if rng.random() < 0.15:
                messages.append({"role": "system", "content": " Answer briefly.\n"})
            media = {"images": [], "videos": [], "audios": []}
            for turn in range(rng.choice((1, 1, 2, 3))):
                content = _sentence(rng, 3, 15) + "?"
                roll = rng.random()
                if roll < 0.55:
                    path = media["images"][0] if media["images"] and rng.random() < 0.3 else _media_path(rng, "image", number)
                    media["images"].append(path)
                    content = "<image>" + content if rng.random() < 0.6 else content + "<image>"
                elif roll < 0.65:
                    media["videos"].append(_media_path(rng, "video", number))
                    media["audios"].append(_media_path(rng, "audio", number))
                    content = "<video><audio>" + content
                elif roll < 0.7:
                    media["audios"].append(_media_path(rng, "audio", number))
                    content = "<audio>" + content
                user = {"role": "user", "content": content}
                assistant = {"role": "assistant", "content": _sentence(rng, 4, 30)}
                if style == "swift" and rng.random() < 0.2:
                    assistant["loss"] = False
                messages += [user, assistant]
            if style == "swift" and rng.random() < 0.2:
                record["tools"] = orjson.dumps([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]).decode()
                messages += [{"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"city": "北京"}}'},
                             {"role": "tool_response", "content": '{"temperature": 21}'},
                             {"role": "assistant", "content": "It is 21 degrees."}]
            record["messages"] = messages
            for key, paths in media.items():
                if paths or rng.random() < 0.05:
                    record[key] = paths
            if style == "swift" and media["images"] and rng.random() < 0.2:
                record["objects"] = {"ref": ["dog"], "bbox": [[10, 20, 110, 220]]}
        if rng.random() < 0.05:
            record["id"] = number if rng.random() < 0.5 else f"conv-{number}"
        yield record


def oasis_records(count: int, seed: int = 0) -> Iterator[dict]:
    """Yield ``count`` Oasis records: synthesis inputs (``instruction``/``response``/``image``) and
    outputs (``id``, ``image``, ``conversations``, ``data_source``), int and string ids, multi-turn,
    non-ASCII.

    Example:
        >>> sorted(next(oasis_records(1)))
        ['image', 'instruction', 'response']
    """
    rng = random.Random(seed)
    for number in range(count):
        image = f"./images/{number}.{rng.choice(('jpeg', 'png'))}"
        if number % 2 == 0:
            yield {"instruction": _sentence(rng, 4, 15) + "?", "response": _sentence(rng, 10, 60), "image": image}
            continue
        conversations = []
        for turn in range(rng.choice((1, 1, 2))):
            question = _sentence(rng, 4, 15) + "?"
            conversations.append({"from": "human", "value": ("<image>\n" + question) if turn == 0 else question})
            conversations.append({"from": "gpt", "value": _sentence(rng, 10, 60)})
        record_id = number if rng.random() < 0.3 else f"oasis_{number:08d}"
        yield {"id": record_id, "image": image, "conversations": conversations, "data_source": rng.choice(("oasis", "mm_inf", "合成"))}


def write_jsonl(path: str, records, zip_member: str | None = None) -> str:
    """Write ``records`` as JSON lines (UTF-8, unescaped) to ``path``; with ``zip_member``, as that
    member of a zip archive (as MMC4 ships its shards). Returns ``path``.

    Example:
        >>> write_jsonl("/tmp/docs.jsonl", mmc4_records(10))  # doctest: +SKIP
        '/tmp/docs.jsonl'
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if zip_member is None:
        with open(path, "wb") as handle:
            for record in records:
                handle.write(orjson.dumps(record) + b"\n")
        return path
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open(zip_member, "w") as handle:
        for record in records:
            handle.write(orjson.dumps(record) + b"\n")
    return path


GENERATORS: dict[str, Callable] = {"mmc4": mmc4_records, "sharegpt": sharegpt_records, "oasis": oasis_records}
