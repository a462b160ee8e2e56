"""Cost of bad input in files (issue 15, part B): odd MMC4 documents, and clean CSV loads.

- MMC4: a generated file of ``--docs`` documents (default 40,000), then the same file with one
  odd document per thousand of each kind: an image whose ``matched_text_index`` is a string, a
  sentence that is a number (both rejected), an unknown top-level key (kept, careful path), a DJ
  token in a sentence (rejected). Each is loaded with ``on_error="skip"`` into a fresh cache;
  the anchor is the clean file, measured in the same run: ratio = odd / clean load time (the
  fallback must cost in proportion to the odd documents, so about 1).
- CSV: Youku-mPLUG (classification; batched fast path and ``fast_path=False``) and MSR-VTT
  CLIP4Clip CSV, ``--rows`` rows each (default 200,000), loaded clean. Before/after numbers come
  from running this script with each checkout's interpreter (``--label``): the CSV reader is the
  code that changed.

Each load runs ``--repeat`` times in this process (fresh cache each time) and the fastest counts,
as the machine is shared. Writes ``benchmarks/results/bad_input_files.json`` (one entry per
``--label``, earlier labels kept).

Example:
    python -P benchmarks/bad_input_files.py --label after
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_result  # noqa: E402

ODD_KINDS = ("string_match", "number_sentence", "unknown_key", "dj_token")


def _odd(kind: str, document: dict) -> dict:
    if kind == "string_match":
        info = document["image_info"] or [{"image_name": "x.jpg", "matched_text_index": 0}]
        return {**document, "image_info": [{**entry, "matched_text_index": str(entry["matched_text_index"])} for entry in info]}
    if kind == "number_sentence":
        return {**document, "text_list": [*document["text_list"], 7]}
    if kind == "unknown_key":
        return {**document, "odd_key": 1}
    return {**document, "text_list": [*document["text_list"], "see <__dj__image> here"]}


def write_mmc4(folder: Path, docs: int) -> dict:
    from hf_mmbuilder import testing

    documents = list(testing.mmc4_records(docs, seed=1))
    files = {"clean": folder / "clean.jsonl"}
    files["clean"].write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in documents))
    for kind in ODD_KINDS:
        files[kind] = folder / f"{kind}.jsonl"
        files[kind].write_bytes(b"".join(orjson.dumps(_odd(kind, d) if k % 1000 == 500 else d) + b"\n" for k, d in enumerate(documents)))
    return files


def timed_load(format_name: str, path: Path, scratch: Path, repeat: int, **options) -> tuple[float, int]:
    import hf_mmbuilder

    best, rows = float("inf"), 0
    for _ in range(repeat):
        cache = scratch / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        ds = hf_mmbuilder.load(format_name, str(path), split="train", cache_dir=str(cache), **options)
        best = min(best, time.perf_counter() - start)
        rows = len(ds)
    return best, rows


def run(docs: int, rows: int, repeat: int) -> dict:
    from hf_mmbuilder import testing

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        rejects = str(scratch / "rejects.jsonl")
        # Warm-up: compiled kernels load from their cache once per process.
        warm = scratch / "warm.jsonl"
        warm.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in testing.mmc4_records(20)))
        timed_load("mmc4", warm, scratch, 1)
        mmc4 = {}
        files = write_mmc4(scratch, docs)
        for kind, path in files.items():
            seconds, loaded = timed_load("mmc4", path, scratch, repeat, on_error="skip", rejects_path=rejects)
            mmc4[kind] = {"seconds": round(seconds, 3), "rows": loaded}
        for kind in ODD_KINDS:
            mmc4[kind]["ratio_to_clean"] = round(mmc4[kind]["seconds"] / mmc4["clean"]["seconds"], 2)
        youku = testing.write_youku_csv(str(scratch / "youku.csv"), "classification", rows)
        msrvtt = testing.write_msrvtt(str(scratch / "msrvtt.csv"), "csv", rows)
        csv = {}
        for name, format_name, path, options in [
            ("youku_fast", "youku", youku, {}),
            ("youku_careful", "youku", youku, {"fast_path": False}),
            ("msrvtt_csv", "msrvtt", msrvtt, {}),
        ]:
            seconds, loaded = timed_load(format_name, Path(path), scratch, repeat, **options)
            csv[name] = {"seconds": round(seconds, 3), "rows": loaded, "mb_per_s": round(os.path.getsize(path) / seconds / 1e6, 1)}
    return {"mmc4_documents": docs, "csv_rows": rows, "mmc4": mmc4, "csv": csv}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=40_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--label", default="after", help="name of this run in the result file (e.g. before/after)")
    args = parser.parse_args()
    entry = {"machine": machine(), **run(args.docs, args.rows, args.repeat), "load_average_at_end": os.getloadavg()}
    previous = RESULTS / "bad_input_files.json"
    result = json.loads(previous.read_text()) if previous.exists() else {"benchmark": "bad_input_files"}
    result[args.label] = entry
    path = write_result("bad_input_files", result)
    for kind, values in entry["mmc4"].items():
        print(f"mmc4 {kind:16s} {values['seconds']:7.2f} s  rows {values['rows']}  " + (f"x{values['ratio_to_clean']}" if "ratio_to_clean" in values else "(anchor)"))
    for name, values in entry["csv"].items():
        print(f"csv  {name:16s} {values['seconds']:7.2f} s  rows {values['rows']}  {values['mb_per_s']} MB/s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
