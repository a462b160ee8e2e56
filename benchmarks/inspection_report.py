"""The HTML inspection report of 1M rows with a stats column: build time and folder size, against
the dataset card's statistics and plots of the same rows (``collect_statistics`` + ``render_plots``,
the project's other way to see the distributions) in the same run.

Rows are generated: two-turn ``[[human]]``/``[[gpt]]`` text with one image each, 2,000 distinct
640x480 JPEGs referenced round-robin, 5% planted near-duplicates (``cluster_id``), 32-d embeddings
and a 10,000-row selection. ``__dj__stats__`` comes from ``ComputeStats(media=True)`` (setup, not
timed). The report draws its plots from every row and renders a 2,000-row sample with thumbnails,
the 100 largest clusters, the PCA of all rows with the selection and its k-means quotas.
Targets (issue 19): under 60 s and under 100 MB.

Run: python -P benchmarks/inspection_report.py [--rows N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, disable_progress_bars
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from hf_mmbuilder.inspection import inspect  # noqa: E402
from hf_mmbuilder.ops import ComputeStats  # noqa: E402
from hf_mmbuilder.publishing.card import collect_statistics, render_plots  # noqa: E402

IMAGES = 2000
WORDS = ("the a man woman dog cat bus train sits stands on in near table street car red blue large small picture "
         "shows there is are what color how many people river bridge window").split()


def generate(n: int, folder: Path, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir()
    gradient = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None]
    for k in range(IMAGES):
        noise = rng.integers(0, 60, (480, 640, 3), dtype=np.uint8)
        pixels = np.clip(gradient * (0.3 + (k % 7) / 10) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(images / f"{k:04d}.jpg", quality=85)
    words = np.array(WORDS)
    lengths = rng.integers(6, 40, size=n)
    picks = rng.integers(0, len(WORDS), size=int(lengths.sum()))
    texts, start = [], 0
    for row, length in enumerate(lengths.tolist()):
        sentence = " ".join(words[picks[start:start + length]])
        start += length
        texts.append(f"[[human]]: <__dj__image>\nWhat is in image {row}?\n[[gpt]]: {sentence}.<|__dj__eoc|>")
    cluster_id = np.arange(n, dtype=np.int64)
    planted = np.arange(1, n, 20)
    for row in planted.tolist():
        texts[row] = texts[row - 1].replace("?", "? Please", 1)
    cluster_id[planted] = planted - 1
    embedding = rng.normal(size=(n, 32)).astype(np.float32)
    table = pa.table({
        "text": texts,
        "images": pa.array([[f"images/{row % IMAGES:04d}.jpg"] for row in range(n)], type=pa.list_(pa.string())),
        "media_root": pa.array([str(folder)] * n, type=pa.string()),
        "source_file": pa.array(np.where(np.arange(n) % 3 == 0, "part-a.json", "part-b.json")),
        "cluster_id": cluster_id,
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel()), 32),
    })
    return Dataset(table).map(ComputeStats(media=True), batched=True, batch_size=20_000)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    disable_progress_bars()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        started = time.perf_counter()
        ds = generate(args.rows, work)
        setup = time.perf_counter() - started
        selection = np.random.default_rng(1).choice(args.rows, 10_000, replace=False)

        started = time.perf_counter()
        summary = inspect(ds, work / "report", selection=selection, sample=2000, seed=0, title="benchmark")
        ours = time.perf_counter() - started
        size = folder_bytes(work / "report")
        media_files = sum(1 for _ in (work / "report" / "media").iterdir())

        started = time.perf_counter()
        stats = collect_statistics({"train": ds})
        render_plots(stats)
        anchor = time.perf_counter() - started

    result = {
        "benchmark": "inspection report (inspect) of 1M rows with __dj__stats__, 2,000-row sample",
        "rows": args.rows,
        "ours_seconds": ours,
        "folder_bytes": size,
        "folder_mb": size / 1e6,
        "thumbnails": media_files,
        "rows_shown": summary["rows_shown"],
        "clusters": summary["clusters"],
        "selected": summary["selected"],
        "anchor": "the dataset card's collect_statistics + render_plots of the same rows (publishing.card)",
        "anchor_seconds": anchor,
        "ratio_ours_to_anchor": ours / anchor,
        "target_seconds": 60,
        "target_mb": 100,
        "meets_targets": ours < 60 and size < 100e6,
        "setup_seconds": setup,
        "peak_rss_bytes_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "machine": machine(),
        "note": "machine shared with other jobs (2 cores); both sides ran in this process one after the other",
    }
    print(f"inspect: {ours:.1f} s, {size / 1e6:.1f} MB ({media_files} thumbnails); card statistics + plots: {anchor:.1f} s")
    print(write_result("inspection_report", result))


if __name__ == "__main__":
    main()
