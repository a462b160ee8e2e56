"""Cold start: each kernel family's first call in a fresh process against a warm call, and the import.

Issue 20: the first call of each kernel family in a fresh process (Numba's on-disk cache already
written) costs at most 30% over a warm call; ``import hf_mmbuilder`` under 1 s where ``datasets``
allows it.

Per family, two fresh processes on the same workload (inputs built before any timing, with nothing
compiled touched):
- ``fresh``: the first call pays everything a user's first call pays: loading the family's cached
  machine code and Numba's once-per-process start-up (its target context: ~70 modules of Numba's
  own implementations, the NRT runtime compiled by LLVM);
- ``primed``: Numba's start-up done first (``cpu_target.target_context.refresh()``, what any first
  compiled call in the process does), so the first call shows the family's own cold cost.
Warm is the best of three later calls in the same process. The import is ``import datasets`` and
``import hf_mmbuilder`` in alternating fresh processes (best of ``--repeat``): the floor and our
part above it. A warm-up process per family writes Numba's cache before anything is timed.

Writes benchmarks/results/cold_start.json. Run: ``python -P benchmarks/cold_start.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, corpus, machine, write_result  # noqa: E402

DOCS = 100_000
LLAVA_RECORDS = 50_000
IMAGES = 20_000
TARGET = 0.30


def _documents():
    import numpy as np

    return corpus(DOCS, np.random.default_rng(0), 20, 60, 0.1)


def _utf8(docs):
    import numpy as np
    import pyarrow as pa

    array = pa.array(docs, type=pa.large_string())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[: len(docs) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)
    return data, offsets.copy()


def family_minhash():
    import datasets

    ds = datasets.Dataset.from_dict({"text": _documents()})

    def imports():
        from hf_mmbuilder.duplicates import dedup

        return dedup

    return imports, lambda dedup: len(dedup(ds, "minhash"))


def family_exact_hash():
    import datasets

    ds = datasets.Dataset.from_dict({"text": _documents()})

    def imports():
        from hf_mmbuilder.duplicates import dedup

        return dedup

    return imports, lambda dedup: len(dedup(ds, "exact"))


def family_lsh():
    import numpy as np

    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, size=(DOCS, 256), dtype=np.uint64).astype(np.uint32)
    signatures[1::10] = signatures[::10][: signatures[1::10].shape[0]]

    def imports():
        from hf_mmbuilder.kernels import lsh
        from hf_mmbuilder.kernels.unionfind import connected_components

        return lsh, connected_components

    def run(modules):
        lsh, connected_components = modules
        keys = lsh.band_keys(signatures, 25, 10)
        left, right = [], []
        for band in range(keys.shape[1]):
            pairs = lsh.band_edges(np.ascontiguousarray(keys[:, band]))
            left.append(pairs[0])
            right.append(pairs[1])
        return int(connected_components(DOCS, np.concatenate(left), np.concatenate(right)).max())

    return imports, run


def family_perceptual_hash():
    import numpy as np

    pixels = np.random.default_rng(0).random((IMAGES, 32, 32))

    def imports():
        from hf_mmbuilder.kernels import perceptual_hash

        return perceptual_hash

    def run(perceptual_hash):
        bits = perceptual_hash.above_median(perceptual_hash.dct_lowfreq(pixels, 8).reshape(IMAGES, 64))
        return int(perceptual_hash.pack_bits(bits).sum())

    return imports, run


def family_hamming():
    import numpy as np

    hashes = np.random.default_rng(0).integers(0, 2**63, size=IMAGES, dtype=np.uint64)

    def imports():
        from hf_mmbuilder.kernels import hamming

        return hamming

    return imports, lambda hamming: len(hamming.hamming_pairs(hashes, 4)[0])


def family_text_stats():
    data, offsets = _utf8(_documents())

    def imports():
        from hf_mmbuilder.kernels import text_stats

        return text_stats

    return imports, lambda text_stats: int(text_stats.text_stats(data, offsets)["words"].sum())


def _llava_file() -> str:
    path = DATA / f"cold_start_llava_{LLAVA_RECORDS}.json"
    if not path.exists():
        from hf_mmbuilder.testing import write_llava_json

        DATA.mkdir(parents=True, exist_ok=True)
        write_llava_json(str(path), LLAVA_RECORDS, seed=0)
    return str(path)


def family_llava_load():
    source = _llava_file()
    scratch = os.environ["COLD_START_SCRATCH"]
    runs = iter(range(100))

    def imports():
        import hf_mmbuilder

        return hf_mmbuilder

    # A fresh datasets cache per call: every call parses the file.
    return imports, lambda hf_mmbuilder: len(hf_mmbuilder.load("llava", source, split="train", cache_dir=os.path.join(scratch, str(next(runs)))))


def family_llava_export():
    import hf_mmbuilder

    # Loaded through the front door before timing, which compiles nothing of the exporter's.
    scratch = os.environ["COLD_START_SCRATCH"]
    ds = hf_mmbuilder.load("llava", _llava_file(), split="train", cache_dir=os.path.join(scratch, "export_cache"))
    target = os.path.join(scratch, "out.json")

    def imports():
        from hf_mmbuilder.formats.exporting import export

        return export

    def run(export):
        export(ds, "llava", target)
        return os.path.getsize(target)

    return imports, run


def family_json_scan():
    source = _llava_file()

    def imports():
        from hf_mmbuilder.formats.serialization import detect_style

        return detect_style

    # The whole-file style proof (json_scan + json_style): one compiled pass over the LLaVA file.
    return imports, lambda detect_style: str(detect_style(source))


FAMILIES = {
    "minhash": family_minhash,
    "exact_hash": family_exact_hash,
    "lsh": family_lsh,
    "perceptual_hash": family_perceptual_hash,
    "hamming": family_hamming,
    "text_stats": family_text_stats,
    "json_scan_style": family_json_scan,
    "llava_load": family_llava_load,
    "llava_export": family_llava_export,
}


def child(family: str, primed: bool) -> None:
    """In a fresh process: build the inputs, import, (prime Numba), first call, warm calls; print JSON."""
    imports, run = FAMILIES[family]()
    if "numba" in sys.modules and not primed and family != "llava_export":
        raise SystemExit(f"{family}: building the inputs imported numba, the first call would not be cold")
    start = time.perf_counter()
    modules = imports()
    out = {"import_seconds": time.perf_counter() - start}
    if primed:
        from numba.core.registry import cpu_target

        start = time.perf_counter()
        cpu_target.target_context.refresh()
        out["numba_start_up_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    value = run(modules)
    out["first_seconds"] = time.perf_counter() - start
    warm = []
    for _ in range(3):
        start = time.perf_counter()
        again = run(modules)
        warm.append(time.perf_counter() - start)
        if again != value:
            raise SystemExit(f"{family}: a warm call gave {again}, the first {value}")
    out["warm_seconds"] = min(warm)
    out["first_over_warm"] = out["first_seconds"] / out["warm_seconds"] - 1
    print(json.dumps(out))


def _run_child(family: str, primed: bool) -> dict:
    command = [sys.executable, "-P", __file__, "--child", family] + (["--primed"] if primed else [])
    # A scratch folder per process (the LLaVA families' datasets caches and export), removed after.
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "COLD_START_SCRATCH": scratch}
        completed = subprocess.run(command, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        raise SystemExit(f"{family} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _import_seconds(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-P", "-c", statement], check=True)
    return time.perf_counter() - start


def imports(repeat: int) -> dict:
    # Alternating, so a burst of other work on the shared machine hits both alike.
    timings = {"python": [], "datasets": [], "hf_mmbuilder": []}
    for _ in range(repeat):
        timings["python"].append(_import_seconds("pass"))
        timings["datasets"].append(_import_seconds("import datasets"))
        timings["hf_mmbuilder"].append(_import_seconds("import hf_mmbuilder"))
    best = {name: min(values) for name, values in timings.items()}
    return {
        "process_seconds_best": best,
        "process_seconds_all": timings,
        "import_datasets_seconds": best["datasets"] - best["python"],
        "import_hf_mmbuilder_seconds": best["hf_mmbuilder"] - best["python"],
        "ours_above_datasets_seconds": best["hf_mmbuilder"] - best["datasets"],
        "numba_imported": "numba" in subprocess.run(
            [sys.executable, "-P", "-c", "import sys, hf_mmbuilder; print(' '.join(sorted(sys.modules)))"],
            capture_output=True, text=True, check=True).stdout.split(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--primed", action="store_true")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per side for the import")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.primed)
        return
    _llava_file()
    result = {"benchmark": "cold_start", "machine": machine(), "target_first_over_warm": TARGET, "families": {}}
    for family in args.families.split(","):
        _run_child(family, primed=True)  # writes Numba's cache for this family (a first run after an edit compiles)
        fresh, primed = _run_child(family, primed=False), _run_child(family, primed=True)
        result["families"][family] = {"fresh": fresh, "primed": primed}
        print(f"{family:<16} warm {fresh['warm_seconds']:.3f} s; first call in a fresh process +{fresh['first_over_warm']:.0%}, "
              f"after Numba's start-up ({primed['numba_start_up_seconds']:.2f} s) +{primed['first_over_warm']:.0%}", flush=True)
    result["import"] = imports(args.repeat)
    result["load_average_at_end"] = os.getloadavg()
    found = result["import"]
    print(f"import: datasets {found['import_datasets_seconds']:.2f} s, hf_mmbuilder {found['import_hf_mmbuilder_seconds']:.2f} s "
          f"(ours above datasets {found['ours_above_datasets_seconds']:.2f} s; numba imported: {found['numba_imported']})")
    print("wrote", write_result("cold_start", result))


if __name__ == "__main__":
    main()
