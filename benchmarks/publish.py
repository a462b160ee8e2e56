"""Publish at scale (issue 22): ``publish`` against ``export(ds, "llava")`` and against ``pyarrow``.

Three comparisons, one run:

1. 665,298 LLaVA-shaped rows (the mix665k shape), local folder, no media (``embed_media=False``),
   train/validation/test splits: publish time against ``export(ds, "llava")`` of the same rows
   (target <= 3x), and the peak RSS of the whole publishing process (target <= 1.5 GB).
2. 2M generated rows, the same call: peak anonymous memory (``RssAnon``, sampled every 10 ms
   during the call) against the 665k run's (target within 10%). Pages of the memory-mapped Arrow
   cache that publish reads are file-backed and not counted.
3. Embedded media: 20k rows with generated JPEGs on disk (page cache warm), each 640x480 at
   quality 90 (about 110 KB: a gradient under Gaussian noise, as photos compress): publish with
   ``embed_media=True`` against ``pyarrow.parquet.write_table`` of the same rows with their
   image bytes already embedded (target <= 1.5x); publish writes datasets' Parquet options (media
   uncompressed and PLAIN, page index; no content-defined chunking in shards with media, see
   ``write_shards``), the anchor pyarrow's defaults (snappy, dictionary). Encoding 20k such JPEGs
   takes half an hour on this machine, so a pool of distinct ones is encoded and each file is one
   of them with its own JPEG comment segment: every file's bytes differ, within their first block
   too, while many share a size (the split tells them apart by size and first 4 KiB, see
   ``splits.content_keys``). The anchor and publish run ``--media-repeat`` times, alternating, and
   the fastest run of each counts: writing 2 GB into the page cache varies by several seconds from
   run to run on this machine, more than either side's own work. Publish's process samples no
   ``RssAnon`` here (a thread polling ``/proc`` every 10 ms takes the GIL from the threads feeding
   its writer, and the anchor runs without one); its ``VmHWM`` is reported.

Every measured call runs in its own fresh process after the dataset is loaded there (a cache hit of
the Arrow files prepared beforehand), so peaks never mix; ``VmHWM`` is the whole process's peak.
Each starts after ``sync`` (no dirty pages of an earlier run left to write back during it) with its
own last output removed before its clock.

Run: ``.venv/bin/python -P benchmarks/publish.py [--rows N] [--large-rows N] [--media-rows N] [--only-media]``
(``--only-media`` measures the third comparison alone and keeps the other results of the JSON file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RESULTS, machine, write_result  # noqa: E402

ROWS = 665_298
LARGE_ROWS = 2_000_000
MEDIA_ROWS = 20_000
IMAGE_SIZE = (640, 480)
IMAGE_POOL = 256
RATIOS = {"train": 0.98, "validation": 0.01, "test": 0.01}

MEASURE = r"""
import json, os, shutil, sys, threading, time

def status():
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

import hf_mmbuilder
from hf_mmbuilder.publishing import publish

job = json.loads(sys.argv[1])
ds = hf_mmbuilder.load("llava", job["source"], split="train", cache_dir=job["cache"],
                       media_root=job.get("media_root"))
before = status()
peak_anon = [before["RssAnon"]]
done = threading.Event()

def sample():
    while not done.is_set():
        peak_anon[0] = max(peak_anon[0], status()["RssAnon"])
        time.sleep(0.01)

sampler = threading.Thread(target=sample, daemon=True)
# The embedded-media runs sample nothing: a thread waking every 10 ms takes the GIL from the threads
# that feed publish's writer (and the pyarrow anchor has no such thread); VmHWM is the kernel's own.
if job.get("sample_anon", True):
    sampler.start()
shutil.rmtree(job["out"], ignore_errors=True)
start = time.perf_counter()
if job["what"] == "export":
    hf_mmbuilder.export(ds, "llava", job["out"])
else:
    publish(ds, split_ratio=job["ratios"], seed=0, local_dir=job["out"], embed_media=job["embed"], progress=False)
seconds = time.perf_counter() - start
done.set()
if sampler.is_alive():
    sampler.join()
after = status()
measured = {"rows": len(ds), "seconds": seconds, "peak_rss_bytes": after["VmHWM"]}
if job.get("sample_anon", True):
    measured.update(rss_anon_before_bytes=before["RssAnon"], peak_rss_anon_bytes=max(peak_anon[0], after["RssAnon"]))
print("RESULT " + json.dumps(measured))
"""

PREPARE = r"""
import json, shutil, sys
from pathlib import Path
import hf_mmbuilder
job = json.loads(sys.argv[1])
ds = hf_mmbuilder.load("llava", job["source"], split="train", cache_dir=job["cache"], media_root=job.get("media_root"))
# A change to the loader's sources keys its cache anew: the Arrow files of the keys before are never
# read again, and at 2M rows each is GBs that would fill the disk.
current = Path(ds.cache_files[0]["filename"]).parent
for stale in current.parent.iterdir():
    if stale.is_dir() and stale != current:
        shutil.rmtree(stale)
print(len(ds))
"""

ANCHOR = r"""
import json, os, sys, time
import pyarrow as pa, pyarrow.parquet as pq
import hf_mmbuilder
from hf_mmbuilder.media import resolve_media_path
job = json.loads(sys.argv[1])
ds = hf_mmbuilder.load("llava", job["source"], split="train", cache_dir=job["cache"], media_root=job["media_root"])
table = ds.with_format("arrow")[:].drop_columns(["media_root", "source_file"])
images = []
for paths in ds.with_format("arrow")[:].column("images").to_pylist():
    items = []
    for path in paths:
        with open(resolve_media_path(path, job["media_root"]), "rb") as handle:
            items.append({"bytes": handle.read(), "path": path})
    images.append(items)
kind = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
table = table.set_column(table.column_names.index("images"), "images", pa.array(images, kind))
# The last run's file goes before the clock, as publish's measure removes its last output.
if os.path.exists(job["out"]):
    os.remove(job["out"])
start = time.perf_counter()
pq.write_table(table, job["out"], row_group_size=100)
print("RESULT " + json.dumps({"rows": table.num_rows, "seconds": time.perf_counter() - start}))
"""


def run(script: str, job: dict) -> dict:
    # Every run starts without dirty pages: the 2 GB that a run before it wrote would otherwise be
    # written back (and throttle writers) during whichever run comes next.
    os.sync()
    completed = subprocess.run([sys.executable, "-P", "-c", script, json.dumps(job)], capture_output=True, text=True)
    if completed.returncode:
        raise RuntimeError(f"{job}: exit {completed.returncode}\n{completed.stderr[-3000:]}")
    return json.loads(next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])


def write_photos(folder: str, names: list, seed: int) -> int:
    """Write a JPEG (``IMAGE_SIZE``, quality 90) at ``folder/name`` for each name; returns the bytes written."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = IMAGE_SIZE[1], IMAGE_SIZE[0]
    y, x = np.mgrid[0:height, 0:width]
    pool = []
    for _ in range(min(IMAGE_POOL, len(names))):
        base = (x[..., None] * rng.uniform(0.1, 0.4, 3) + y[..., None] * rng.uniform(0.1, 0.4, 3)) % 256
        pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        pool.append(buffer.getvalue())
    total = 0
    for number, name in enumerate(names):
        jpeg, comment = pool[number % len(pool)], f"file {number}".encode()
        # A COM segment right after SOI: a valid JPEG whose bytes are this file's own.
        data = jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        total += len(data)
    return total


def dataset(rows: int, seed: int, media: bool = False) -> dict:
    """Generate (once) a LLaVA file of ``rows`` records and its Arrow cache; with ``media``, a JPEG
    for every image path under a media folder."""
    from hf_mmbuilder.testing import llava_records, write_llava_json

    folder = DATA / f"publish-{rows}-{seed}{'-photos' if media else ''}"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "llava.json"
    job = {"source": str(source), "cache": str(folder / "cache")}
    if media:
        job["media_root"] = str(folder / "media")
    if not source.exists():
        write_llava_json(str(source) + ".tmp", rows, seed=seed)
        if media:
            names = [record["image"] for record in llava_records(rows, seed=seed) if "image" in record]
            write_photos(job["media_root"], names, seed=seed)
        os.replace(str(source) + ".tmp", source)
    subprocess.run([sys.executable, "-P", "-c", PREPARE, json.dumps(job)], check=True, capture_output=True)
    return {**job, "folder": str(folder)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--large-rows", type=int, default=LARGE_ROWS)
    parser.add_argument("--media-rows", type=int, default=MEDIA_ROWS)
    parser.add_argument("--media-repeat", type=int, default=3,
                        help="alternating runs of the pyarrow anchor and publish with media; the fastest of each counts")
    parser.add_argument("--only-media", action="store_true", help="measure the embedded media case only")
    args = parser.parse_args()
    result = {"machine": machine(), "split_ratio": RATIOS}
    if args.only_media:
        kept = json.loads((RESULTS / "publish.json").read_text())
        result.update(no_media=kept["no_media"], memory_scaling=kept["memory_scaling"],
                      kept_from_earlier_run=["no_media", "memory_scaling"])
    else:
        measure_without_media(args, result)
    media = dataset(args.media_rows, seed=2, media=True)
    anchors, publishes = [], []
    for _ in range(args.media_repeat):
        anchors.append(run(ANCHOR, {**media, "out": media["folder"] + "/anchor.parquet"}))
        publishes.append(run(MEASURE, {**media, "what": "publish", "out": media["folder"] + "/published", "ratios": RATIOS, "embed": True,
                                       "sample_anon": False}))
    anchor = min(anchors, key=lambda measured: measured["seconds"])
    embedded = min(publishes, key=lambda measured: measured["seconds"])
    files = [entry.stat().st_size for entry in Path(media["media_root"]).rglob("*.jpg")]
    result["embedded_media"] = {"image_size": list(IMAGE_SIZE), "jpeg_quality": 90, "media_files": len(files),
                                "media_files_bytes": sum(files), "mean_file_bytes": sum(files) / max(1, len(files)),
                                "pyarrow_write_embedded": anchor, "publish": embedded, "runs": args.media_repeat,
                                "pyarrow_seconds_all_runs": [measured["seconds"] for measured in anchors],
                                "publish_seconds_all_runs": [measured["seconds"] for measured in publishes],
                                "publish_over_pyarrow": embedded["seconds"] / anchor["seconds"]}
    print(json.dumps(result["embedded_media"], indent=2), flush=True)
    published = result["no_media"]["publish"]
    result["targets"] = {"publish_over_export <= 3": result["no_media"]["publish_over_export"] <= 3,
                         "peak_rss <= 1.5 GB": published["peak_rss_bytes"] <= 1.5e9,
                         "rss_anon within 10%": result["memory_scaling"]["rss_anon_large_over_small"] <= 1.10,
                         "publish_over_pyarrow <= 1.5": result["embedded_media"]["publish_over_pyarrow"] <= 1.5}
    print(write_result("publish", result))


def measure_without_media(args, result: dict) -> None:
    """The first two comparisons (no media), into ``result``."""
    base = dataset(args.rows, seed=0)
    export = run(MEASURE, {**base, "what": "export", "out": base["folder"] + "/export.json"})
    published = run(MEASURE, {**base, "what": "publish", "out": base["folder"] + "/published", "ratios": RATIOS, "embed": False})
    result["no_media"] = {"export": export, "publish": published,
                          "publish_over_export": published["seconds"] / export["seconds"],
                          "peak_rss_gb": published["peak_rss_bytes"] / 1e9}
    print(json.dumps(result["no_media"], indent=2), flush=True)

    large = dataset(args.large_rows, seed=1)
    large_published = run(MEASURE, {**large, "what": "publish", "out": large["folder"] + "/published", "ratios": RATIOS, "embed": False})
    result["memory_scaling"] = {"rows": args.rows, "large_rows": args.large_rows, "publish": published, "large_publish": large_published,
                                "rss_anon_large_over_small": large_published["peak_rss_anon_bytes"] / published["peak_rss_anon_bytes"]}
    print(json.dumps(result["memory_scaling"], indent=2), flush=True)


if __name__ == "__main__":
    main()
