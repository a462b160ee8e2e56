"""``make demo``: the main job end to end on generated data.

Generates a LLaVA sample with real JPEG files (and planted duplicates), converts it to DJ Arrow,
writes Data-Juicer JSON lines, removes near-duplicates with MinHash-LSH, picks a diverse subset with
k-center greedy, exports it back to LLaVA JSON, publishes it with seeded group-aware splits and a
dataset card to a local folder laid out like a Hub repo, and prints where everything is.

Everything is built in a staging folder, then moved into ``--out``
(:class:`hf_mmbuilder.output_folder.OutputFolder`): a re-run replaces the previous run's files; a
folder holding anything else is refused unless ``--overwrite``, and even then only files with the
names the demo writes are replaced. Nothing else in ``--out`` is ever deleted.

Run: ``python -P -m hf_mmbuilder.demo --out demo_output`` (``-P``: the repository root must not shadow packages)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile

import numpy as np

import hf_mmbuilder
from hf_mmbuilder import testing
from hf_mmbuilder.output_folder import OutputFolder, OutputFolderError


def _hashed_bag_of_words(texts, dim: int = 256) -> np.ndarray:
    """A cheap text embedding for the demo: hashed word counts, L2-normalised (float32, (n, dim))."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            vectors[row, hash(word) % dim] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def write_sample(folder: str, records: int, duplicates: int, seed: int) -> str:
    """Write a LLaVA JSON sample with ``duplicates`` near-copies of earlier records and a JPEG for
    every referenced image; returns the JSON path."""
    rng = random.Random(seed)
    sample = list(testing.llava_records(records, seed=seed, image_folder="images"))
    for number in range(duplicates):
        copy = json.loads(json.dumps(sample[rng.randrange(records)]))
        copy["id"] = f"dup-{number}"
        copy["conversations"][-1]["value"] += " Indeed."
        sample.append(copy)
    path = os.path.join(folder, "llava_sample.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(sample, handle, ensure_ascii=False, indent=1)
    names = sorted({record["image"] for record in sample if "image" in record})
    testing.write_images(folder, names, seed=seed)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="folder for everything the demo writes")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an --out folder holding files of its own (only the demo's files are replaced)")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--keep", type=int, default=1000, help="rows the diverse subset keeps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        folder = OutputFolder(args.out, "demo", overwrite=args.overwrite, label="--out")
    except OutputFolderError as error:
        parser.error(str(error))
    with folder.staging() as staging, tempfile.TemporaryDirectory(prefix="hf_mmbuilder_demo_cache_") as cache_dir:
        card = _run(args, str(staging.files), str(folder.path), cache_dir)
        folder.commit(staging, last=[card])
    return 0


def _run(args, build: str, out: str, cache_dir: str) -> str:
    """The demo's steps, writing into ``build``; the messages name each file where it ends up, under
    ``out``. Returns the dataset card's path relative to ``build`` (moved last: it points at the shards)."""

    def final(path: str) -> str:
        return os.path.join(out, os.path.relpath(path, build))

    source_dir = os.path.join(build, "source")
    os.makedirs(source_dir)
    source = write_sample(source_dir, args.records, duplicates=args.records // 10, seed=args.seed)
    print(f"1. generated {final(source)} with images under {final(source_dir)}/images")

    dataset = hf_mmbuilder.load("llava", source, split="train", cache_dir=cache_dir, check_media=True)
    errors = hf_mmbuilder.validate_alignment(dataset)
    print(f"2. loaded {len(dataset)} rows into DJ Arrow ({len(errors)} alignment errors)")

    dj_path = os.path.join(build, "dj", "llava_sample.dj.jsonl")
    hf_mmbuilder.export(dataset, "dj", dj_path)
    print(f"3. wrote Data-Juicer JSON lines: {final(dj_path)}")

    deduplicated, report = hf_mmbuilder.dedup(dataset, method="minhash", return_report=True)
    report_path = os.path.join(build, "dedup_report.json")
    with open(report_path, "w", encoding="utf-8") as handle:
        json.dump(report.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"4. MinHash-LSH dedup kept {len(deduplicated)} of {len(dataset)} rows; report: {final(report_path)}")

    embedded = deduplicated.add_column("embedding", list(_hashed_bag_of_words(deduplicated["text"])))
    keep = min(args.keep, len(embedded))
    subset = hf_mmbuilder.select(embedded, keep, method="kcenter", embeddings="embedding").remove_columns("embedding")
    print(f"5. k-center greedy picked {len(subset)} diverse rows")

    llava_path = os.path.join(build, "llava", "llava_subset.json")
    hf_mmbuilder.export(subset, "llava", llava_path)
    print(f"6. exported the subset back to LLaVA JSON: {final(llava_path)}")

    published_dir = os.path.join(build, "published")
    published = hf_mmbuilder.publish(
        subset,
        split_ratio={"train": 0.8, "validation": 0.1, "test": 0.1},
        seed=args.seed,
        local_dir=published_dir,
        progress=False,
        card={
            "license": "cc-by-4.0",
            "history": [
                report,
                {"step": "select", "method": "k-center greedy", "rows_before": len(deduplicated), "removed": len(deduplicated) - len(subset)},
            ],
        },
    )
    card = os.path.join(published_dir, "README.md")
    print(f"7. published to {final(published_dir)} with seeded group-aware splits:\n{published.split_table}")
    print(f"\nLook at: the dataset card {final(card)}\n         the DJ rows {final(dj_path)}\n         the LLaVA export {final(llava_path)}")
    return os.path.relpath(card, build)


if __name__ == "__main__":
    raise SystemExit(main())
