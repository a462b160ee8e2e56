"""The card's statistics per batch (issue 22): CPU time of ``CardStatistics.add`` over the batches
of the embedded-media publish benchmark (20k LLaVA rows, 18,810 JPEGs of 112 KB).

Two measures, in one process:

1. Replay: the rows cut in batches of ``--batch-rows`` (150: what publish's 16 MB batches hold
   here), each batch's images embedded beforehand (``embed_media_batch``, the bytes held in
   memory), then ``add`` called on every batch, ``--rounds`` times with fresh statistics; the CPU
   time of the calling thread inside ``add`` is summed per round (the thread's own time: the
   machine's other work does not count, its cache misses do).
2. In the pass: one ``publish(..., embed_media=True)`` of the same rows into a temporary folder,
   ``add`` wrapped to sum its thread CPU time and wall time on the main thread, beside the reader
   and writer threads.

Needs the data of ``benchmarks/publish.py --only-media`` (``benchmarks/data/publish-20000-2-photos``).
Run: ``.venv/bin/python -P benchmarks/card_statistics.py [--batch-rows N] [--rounds N]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, machine, write_result  # noqa: E402

FOLDER = DATA / "publish-20000-2-photos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-rows", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    result = {"benchmark": "card_statistics", "machine": machine()}

    import hf_mmbuilder
    from hf_mmbuilder.arrow import iter_tables
    from hf_mmbuilder.publishing import card, publish
    from hf_mmbuilder.publishing.shards import embed_media_batch

    dataset = hf_mmbuilder.load("llava", str(FOLDER / "llava.json"), split="train", cache_dir=str(FOLDER / "cache"),
                                media_root=str(FOLDER / "media"))
    columns = [name for name in card.STATISTICS_COLUMNS if name in dataset.column_names]
    batches = [(offset, batch, embed_media_batch(batch, ["images"])) for offset, batch in iter_tables(dataset, args.batch_rows, columns)]
    rounds = []
    for _ in range(args.rounds):
        statistics = card.CardStatistics({"train": len(dataset)})
        spent = 0.0
        for offset, batch, embedded in batches:
            start = time.thread_time()
            statistics.add("train", batch, offset, embedded)
            spent += time.thread_time() - start
        rounds.append(round(spent, 4))
    files = statistics.result({})["image_files"]
    del batches
    # The first round loads the compiled kernels from their cache (or compiles them).
    result["replay"] = {"rows": len(dataset), "batch_rows": args.batch_rows, "image_files": files,
                        "add_cpu_seconds_per_round": rounds, "fastest": min(rounds[1:] or rounds),
                        "median": sorted(rounds[1:] or rounds)[len(rounds[1:] or rounds) // 2]}

    add, spent = card.CardStatistics.add, {"cpu": 0.0, "wall": 0.0, "calls": 0}

    def timed(self, *arguments, **options):
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return add(self, *arguments, **options)
        finally:
            spent["cpu"] += time.thread_time() - cpu
            spent["wall"] += time.perf_counter() - wall
            spent["calls"] += 1

    card.CardStatistics.add = timed
    out = Path(tempfile.mkdtemp(prefix="card-statistics-"))
    try:
        start = time.perf_counter()
        publish(dataset, split_ratio={"train": 0.98, "validation": 0.01, "test": 0.01}, seed=0,
                local_dir=str(out / "published"), embed_media=True, progress=False)
        elapsed = time.perf_counter() - start
    finally:
        card.CardStatistics.add = add
        shutil.rmtree(out)
    result["in_pass"] = {"publish_seconds": round(elapsed, 3), "add_calls": spent["calls"],
                         "add_cpu_seconds": round(spent["cpu"], 4), "add_wall_seconds": round(spent["wall"], 4)}
    result["load_average_at_end"] = os.getloadavg()
    print(result)
    write_result("card_statistics", result)


if __name__ == "__main__":
    main()
