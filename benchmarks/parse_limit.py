"""Every format's load against the parse limit: ``hf_mmbuilder.load`` of a generated clean file
against parsing the same file with orjson (JSON) or ``pyarrow.csv.read_csv`` (CSV), the ratio from
the same run.

Target (issue "Every format as fast as LLaVA"): every JSON format's load of 200k records (single
process, fresh cache, Arrow written) within 3x of an orjson parse of the same file, line by line for
JSON lines and whole-document for a JSON array; CSV formats within 3x of ``pyarrow.csv.read_csv``.

Both sides run as fresh processes and are timed inside the process (interpreter start and imports
excluded on both sides: ours imports the format's loader before the clock starts, see ``LOAD``;
``import hf_mmbuilder`` has its own target). Runs alternate load / parse so
that a shared machine's drift falls on both alike; the fastest run of each side counts. The inputs
are :func:`clean_load.inputs` (the same generated files as the clean-load benchmark).

Writes ``benchmarks/results/parse_limit.json``.

Run: ``.venv/bin/python -P benchmarks/parse_limit.py [--records N] [--repeat R] [--formats sharegpt,dj,...]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import clean_load  # noqa: E402
from common import DATA, machine, run_measured, write_result  # noqa: E402

TARGET = 3.0

# Our side imports the format's loader (its loading script, the builder base, Numba) before the
# clock starts, as the anchor imports orjson or pyarrow.csv: ``import hf_mmbuilder`` is lazy, so
# without this the loader's imports would be timed as load. That includes the imports `datasets`
# makes when it patches a builder's modules for streaming on their first builder instance (pandas,
# scipy.io: 0.10-0.17 s here, paid once per process): the loader's module and those of its base
# classes are patched before the clock, as datasets' builder set-up patches them. The compiled
# kernels are still loaded from Numba's cache inside the timed call: that is a first call's cost,
# not an import.
LOAD = """
import json, sys, time, hf_mmbuilder
from datasets import DatasetBuilder
from datasets.streaming import extend_module_for_streaming
from hf_mmbuilder.formats.catalog import builder_class
for cls in builder_class(sys.argv[1]).__mro__:
    if issubclass(cls, DatasetBuilder) and cls.__module__ != DatasetBuilder.__module__:
        extend_module_for_streaming(cls.__module__)
start = time.perf_counter()
ds = hf_mmbuilder.load(sys.argv[1], sys.argv[2], split="train", cache_dir=sys.argv[3], **json.loads(sys.argv[4]))
print("rows", len(ds), "load_seconds", time.perf_counter() - start)
"""

PARSE = """
import sys, time
path, layout = sys.argv[1], sys.argv[2]
if layout == "csv":
    import pyarrow.csv
    start = time.perf_counter()
    rows = pyarrow.csv.read_csv(path).num_rows
else:
    import orjson
    start = time.perf_counter()
    with open(path, "rb") as handle:
        if layout == "array":
            rows = len(orjson.loads(handle.read()))
        else:
            rows = sum(1 for line in handle if line.strip() and orjson.loads(line) is not None)
print("rows", rows, "parse_seconds", time.perf_counter() - start)
"""


def layout_of(path: str) -> str:
    """How the anchor reads ``path``: ``csv``, ``array`` (one JSON document) or ``lines``."""
    if path.endswith((".csv", ".tsv")):
        return "csv"
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "array" if head.startswith(b"[") else "lines"


def seconds(command: list, label: str) -> tuple[float, int]:
    run = run_measured(command)
    if run["returncode"] != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{run['output_tail']}")
    tail = run["output_tail"].split()
    return float(tail[tail.index(label) + 1]), int(tail[tail.index("rows") + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs per side; the fastest counts")
    parser.add_argument("--formats", default="", help="comma-separated labels to measure (default: all)")
    args = parser.parse_args()
    wanted = {name for name in args.formats.split(",") if name}
    info = machine()
    results = {}
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        for entry in clean_load.inputs(args.records):
            label = entry.get("label", entry["format"])
            if wanted and label not in wanted and entry["format"] not in wanted:
                continue
            layout = layout_of(entry["file"])
            loads, parses = [], []
            for _ in range(args.repeat):
                cache = tempfile.mkdtemp(dir=scratch, prefix="cache-")
                load, rows = seconds([sys.executable, "-P", "-c", LOAD, entry["format"], entry["file"], cache,
                                      json.dumps(entry["ours"])], "load_seconds")
                loads.append(load)
                parse, parsed = seconds([sys.executable, "-P", "-c", PARSE, entry["file"], layout], "parse_seconds")
                parses.append(parse)
            ratio = min(loads) / min(parses)
            results[label] = {"file_bytes": os.path.getsize(entry["file"]), "anchor": "pyarrow.csv.read_csv" if layout == "csv"
                              else f"orjson ({'whole document' if layout == 'array' else 'line by line'})",
                              "rows_loaded": rows, "records_parsed": parsed, "load_seconds": loads, "parse_seconds": parses,
                              "ratio_load_to_parse": ratio, "within_target": ratio <= TARGET}
            print(f"{label:<22} load {min(loads):6.2f} s  parse {min(parses):6.2f} s  ratio {ratio:5.2f}"
                  f"  {'ok' if ratio <= TARGET else 'OVER'}", flush=True)
    path = write_result("parse_limit", {
        "benchmark": "load (fresh process, fresh cache, single process) vs orjson / pyarrow.csv parse of the same file, "
                     "fastest of alternating runs, in-process seconds (imports, including datasets' streaming patch "
                     "of the loader's module, before the clock on both sides)",
        "target_ratio": TARGET,
        "machine": info,
        "load_average_at_end": os.getloadavg(),
        "records": args.records,
        "results": results,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
