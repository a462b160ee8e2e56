"""The dataset the inspection report tests draw: conversations with images, audio and video, an
MMC4-style document, a misaligned row, a planted near-duplicate pair, filler rows for paging, loader
rejects and filter failures. Media are generated here unless real files are given."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
from datasets import Dataset
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.ops import ComputeStats, QualityFilter, apply_filters

DUPLICATE_A = ("[[human]]: <__dj__image>\nDescribe the red double-decker bus parked beside the old stone bridge "
               "in the rain this morning, and say where it is going\n[[gpt]]: It is a red bus next to a stone bridge, "
               "wet from the rain, waiting for passengers bound for the city centre.<|__dj__eoc|>")
DUPLICATE_B = DUPLICATE_A.replace("this morning, and say", "this morning and say").replace("city centre.", "city centre!")
SEARCH_WORD = "zeppelin"
FILLER_ROWS = 44


def generated_media(folder: Path) -> dict:
    """Small media files of each kind: PNG and JPEG images (one wide, one with alpha) and a WAV."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (800, 400), (200, 40, 40)).save(folder / "wide.jpg", quality=90)
    Image.new("RGBA", (120, 160), (20, 120, 220, 128)).save(folder / "alpha.png")
    Image.effect_mandelbrot((300, 300), (-2, -1.5, 1, 1.5), 60).save(folder / "fractal.png")
    with wave.open(str(folder / "tone.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        tone = (3000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype(np.int16)
        out.writeframes(tone.tobytes())
    return {"images": ["wide.jpg", "alpha.png", "fractal.png"], "audio": "tone.wav", "video": None}


def report_rows(media: dict) -> dict:
    """The rows (as columns) over the media names in ``media``: ``images`` (three or more), ``audio``
    and ``video`` (or None). Row 1 and row 5 are the planted duplicate pair."""
    images = media["images"]
    rows = [
        ("[[human]]: <__dj__image>\nWhat is in the picture?\n[[gpt]]: A plain red scene.<|__dj__eoc|>", [images[0]], [], []),
        (DUPLICATE_A, [images[1]], [], []),
        ("A lake at dawn. <__dj__image><|__dj__eoc|>Mist rises over the water.<|__dj__eoc|>The sun comes up. <__dj__image><|__dj__eoc|>",
         [images[2], images[0]], [], []),
        (f"[[human]]: <__dj__image>\nIs that a {SEARCH_WORD} in the sky?\n[[gpt]]: Yes, an airship.<|__dj__eoc|>", [images[2]], [], []),
        ("[[human]]: <__dj__image>\nThis row lost its image path.\n[[gpt]]: So it is misaligned.<|__dj__eoc|>", [], [], []),
        (DUPLICATE_B, [images[1]], [], []),
    ]
    if media["audio"]:
        rows.append(("[[human]]: <__dj__audio>\nWhat sound is this?\n[[gpt]]: A steady tone.<|__dj__eoc|>", [], [media["audio"]], []))
    if media["video"]:
        rows.append(("[[human]]: <__dj__video>\nWhat happens in the clip?\n[[gpt]]: Something moves.<|__dj__eoc|>", [], [], [media["video"]]))
    words = ["apple", "river", "castle", "violin", "desert", "harbour", "glacier", "lantern", "meadow", "orbit", "tunnel"]
    for index in range(FILLER_ROWS):
        rows.append((f"[[human]]: Tell me about item {index}.\n[[gpt]]: Item {index} is about the {words[index % len(words)]} "
                     f"number {index * 7 + 3} in a list of {words[(index * 3) % len(words)]}s.<|__dj__eoc|>", [], [], []))
    columns = {"text": [row[0] for row in rows], "images": [row[1] for row in rows], "audios": [row[2] for row in rows],
               "videos": [row[3] for row in rows], "id": [f"r{index}" for index in range(len(rows))],
               "source_file": ["chat.json"] * 2 + ["docs.jsonl"] + ["chat.json"] * (len(rows) - 3)}
    rng = np.random.default_rng(0)
    columns["embedding"] = rng.normal(size=(len(rows), 8)).astype(np.float32).tolist()
    return columns


def report_dataset(media_root: Path, media: dict) -> Dataset:
    """The report's dataset with its ``__dj__stats__`` (media headers read) and ``media_root``."""
    columns = report_rows(media)
    columns["media_root"] = [str(media_root)] * len(columns["text"])
    return Dataset.from_dict(columns).map(ComputeStats(media=True), batched=True)


def report_rejects(tmp_path: Path, ds: Dataset) -> list:
    """A real loader rejects file (a LLaVA file with two bad records loaded with ``on_error="skip"``)
    and the rows a real quality filter drops from ``ds``."""
    source = tmp_path / "bad_llava.json"
    source.write_text(json.dumps([
        {"id": "ok", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nhi"}, {"from": "gpt", "value": "hello"}]},
        {"id": "no-conversations", "image": "b.jpg"},
        {"id": "bad-turns", "conversations": "not a list"},
    ]))
    rejects_path = tmp_path / "rejects.jsonl"
    hf_mmbuilder.load("llava", str(source), split="train", on_error="skip", rejects_path=str(rejects_path),
                      cache_dir=str(tmp_path / "cache"))
    dropped = apply_filters(ds, QualityFilter(min_text_len=90, drop_unreadable_media=False)).dropped
    return [str(rejects_path), dropped]
