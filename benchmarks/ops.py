"""Stats + PII redaction + quality filters over 100k LLaVA-shaped rows: our batched ops vs a
per-row Python implementation of the same ops, both through ``Dataset.map`` in the same run.

Rows are generated (multi-turn ``[[human]]``/``[[gpt]]`` text with an image token, 5% carrying an
e-mail, phone or card number, some repetitive or short rows); images are 8 generated files referenced
round-robin, so both sides read the same headers (each memoises per path). Ours runs on
``with_format("arrow")`` batches of 1,000; the anchor is ``ds.map(per_row)`` calling plain Python
per row (``str.split``, ``collections.Counter``, ``re`` per row, the same PII regex). Caching is
off on both sides, single process.

Run: python benchmarks/ops.py [--rows N]
"""

from __future__ import annotations

import argparse
import re
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from datasets import Dataset, disable_progress_bars
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from hf_mmbuilder import IMAGE_TOKEN  # noqa: E402
from hf_mmbuilder.ops import FILTER_COLUMN, STATS_COLUMN, ComputeStats, QualityFilter, RedactPII, image_size, redact_text  # noqa: E402
from hf_mmbuilder.schema import ROLE_MARKER_PATTERN  # noqa: E402
from hf_mmbuilder.kernels.text_stats import _STOPWORDS  # noqa: E402

WORDS = "the a man woman dog cat sits stands on in near table street car red blue large small picture shows there is are what color how many people".split()
PII = ["write to alice.smith@example.com", "call +1 (555) 123-4567 now", "card 4111 1111 1111 1111", "ip 10.0.0.12 logged"]
QUALITY = QualityFilter(min_text_len=40, min_image_width=32, min_image_height=32, max_aspect_ratio=4.0, languages=["en"], max_word_rep_ratio=0.3)


def generate(n: int, folder: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(8):
        Image.new("RGB", (64 + 40 * k, 48 + 30 * k)).save(folder / f"img{k}.png")
        paths.append(f"img{k}.png")
    texts = []
    for row in range(n):
        turns = []
        for turn in range(1 + rng.poisson(2)):
            question = " ".join(rng.choice(WORDS, 6 + rng.integers(0, 8)))
            answer = " ".join(rng.choice(WORDS, 10 + rng.integers(0, 30)))
            if turn == 0:
                question = question + "?\n" + IMAGE_TOKEN
            turns.append(f"[[human]]: {question}\n[[gpt]]: {answer}.")
        text = "\n".join(turns)
        if rng.random() < 0.05:
            text += " " + PII[rng.integers(0, len(PII))]
        if rng.random() < 0.02:
            text += " the cat sits on the table" * 4
        texts.append(text)
    return {"text": texts, "images": [[paths[row % 8]] for row in range(n)], "audios": [[] for _ in range(n)], "videos": [[] for _ in range(n)], "media_root": [str(folder)] * n}


_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ORDER = {code: position for position, code in enumerate(_STOPWORDS)}
_STOP = {}
for _lang, _words in _STOPWORDS.items():
    for _word in _words.split():
        _STOP.setdefault(_word, set()).add(_lang)
_ROLE = re.compile(ROLE_MARKER_PATTERN)
_PROTECTED = re.compile(r"<__dj__image>|<__dj__audio>|<__dj__video>|<\|__dj__eoc\|>|" + ROLE_MARKER_PATTERN)
_SIZES: dict = {}


def per_row(example: dict) -> dict:
    """The same three ops written the obvious way, one row at a time."""
    text, counts = redact_text(example["text"])
    prose = _PROTECTED.sub(" ", text)
    words = prose.split()
    # Words compare lower-cased without ASCII punctuation, as in the kernel.
    normal = [word.lower().translate(_PUNCTUATION) for word in words]
    votes = Counter(lang for word in normal for lang in _STOP.get(word, ()))
    letters = sum(char.isalpha() for char in prose)
    # Ties go to the earlier language of the detector's list, as in the kernel.
    lang = max(votes, key=lambda code: (votes[code], -_ORDER[code])) if votes else "und"
    grams = Counter(tuple(normal[i : i + 10]) for i in range(len(normal) - 9))
    total = sum(grams.values())
    repetition = sum(c for c in grams.values() if c > 1) / total if total > 1 else 0.0
    sizes = []
    for path in example["images"]:
        full = example["media_root"] + "/" + path
        if full not in _SIZES:
            _SIZES[full] = image_size(full)
        sizes.append(_SIZES[full])
    stats = {"text_len": len(text), "num_words": len(words), "num_turns": len(_ROLE.findall(text)), "lang": lang, "letters": letters,
             "word_rep_ratio": repetition, "aligned": text.count(IMAGE_TOKEN) == len(example["images"]), **{f"pii_{k}": v for k, v in counts.items()}}
    reasons = []
    if len(text) < QUALITY.min_text_len:
        reasons.append("text_len")
    if not stats["aligned"]:
        reasons.append("misaligned")
    if lang not in QUALITY.languages:
        reasons.append("language")
    if repetition > QUALITY.max_word_rep_ratio:
        reasons.append("word_rep_ratio")
    for width, height in sizes:
        if width < QUALITY.min_image_width or height < QUALITY.min_image_height or max(width, height) / min(width, height) > QUALITY.max_aspect_ratio:
            reasons.append("image")
    return {"text": text, STATS_COLUMN: stats, FILTER_COLUMN: "; ".join(reasons)}


def ours(ds: Dataset, timings: dict | None = None) -> Dataset:
    arrow = ds.with_format("arrow")
    for op in (RedactPII(), ComputeStats(), QUALITY):
        start = time.perf_counter()
        arrow = arrow.map(op, batched=True, batch_size=1000, load_from_cache_file=False)
        if timings is not None:
            timings[type(op).__name__] = time.perf_counter() - start
    return arrow.with_format(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    disable_progress_bars()
    with tempfile.TemporaryDirectory() as folder:
        ds = Dataset.from_dict(generate(args.rows, Path(folder)))
        ours(ds.select(range(2000)))  # compile the Numba kernels outside the timing
        timings: dict = {}
        start = time.perf_counter()
        fast = ours(ds, timings)
        ours_seconds = time.perf_counter() - start
        start = time.perf_counter()
        slow = ds.map(per_row, load_from_cache_file=False)
        anchor_seconds = time.perf_counter() - start
        same_text = fast["text"][:] == slow["text"][:]
        fast_dropped = sum(bool(r) for r in fast[FILTER_COLUMN][:])
        slow_dropped = sum(bool(r) for r in slow[FILTER_COLUMN][:])
        pii_rows = sum(any(v for k, v in s.items() if k.startswith("pii_")) for s in fast[STATS_COLUMN][:])
    info = machine()
    ratio = anchor_seconds / ours_seconds
    print(f"machine: {info['cores']} cores, {info['cpu']}, load {info['load_average_at_start']}")
    print(f"{'implementation':<36}{'seconds':>10}{'rows/s':>14}")
    print(f"{'ours (batched ops, arrow format)':<36}{ours_seconds:>10.2f}{args.rows / ours_seconds:>14,.0f}")
    print(f"{'per-row Python (ds.map per row)':<36}{anchor_seconds:>10.2f}{args.rows / anchor_seconds:>14,.0f}")
    print("ours per op (s): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items()))
    print(f"speed-up: {ratio:.1f}x (target >= 10x); same redacted text: {same_text}; dropped ours/anchor: {fast_dropped}/{slow_dropped}; rows with PII: {pii_rows}")
    path = write_result("ops", {
        "benchmark": "stats + PII + quality filters, Dataset.map",
        "rows": args.rows,
        "ours_seconds": ours_seconds,
        "ours_seconds_per_op": timings,
        "anchor": "per-row Python implementation through ds.map (non-batched)",
        "anchor_seconds": anchor_seconds,
        "speedup": ratio,
        "target_speedup": 10,
        "same_redacted_text": same_text,
        "dropped_ours": fast_dropped,
        "dropped_anchor": slow_dropped,
        "rows_with_pii": pii_rows,
        "machine": info,
        "note": "machine shared with other jobs (2 cores); both sides ran in this process one after the other",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
