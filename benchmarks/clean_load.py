"""Clean input is not slower: every format's load of the same generated clean file, by this
checkout and by an earlier one, alternating run by run, the ratio from the same run.

The earlier code is any Python whose ``hf_mmbuilder`` is the version to compare with (a venv of
another checkout, e.g. a git worktree at the commit before the bad-input work, installed with
``requirements/venvs.py install project``). Each run is a fresh process with a fresh cache,
``import hf_mmbuilder`` and the load timed inside the process (interpreter start excluded).
Runs alternate before / after so that the load of a shared machine drifts over both alike; the
fastest run of each side counts.

Writes ``benchmarks/results/clean_load.json``.

Run: ``.venv/bin/python -P benchmarks/clean_load.py --before ../before/.venv/bin/python [--records N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import formats_av  # noqa: E402
import formats_interleaved  # noqa: E402
from common import DATA, machine, run_measured, write_result  # noqa: E402

# Timed from before ``import hf_mmbuilder``: the import now defers Numba and the kernels to the
# first load (issue 20), so a load-only timer would charge this checkout for work the earlier one
# did at import. Interpreter start is excluded on both sides.
LOAD = """
import time
start = time.perf_counter()
import json, sys, hf_mmbuilder
ds = hf_mmbuilder.load(sys.argv[1], sys.argv[2], split="train", cache_dir=sys.argv[3], **json.loads(sys.argv[4]))
print("rows", len(ds), "load_seconds", time.perf_counter() - start)
"""


def inputs(records: int) -> list[dict]:
    """One clean generated file per format, with the options its load needs."""
    from hf_mmbuilder import testing

    folder = DATA / f"clean_load_{records}"
    folder.mkdir(parents=True, exist_ok=True)
    entries = [{"format": fmt, "file": str(formats_interleaved.source_file(fmt, records)), "ours": {}}
               for fmt in formats_interleaved.FORMATS]
    for name, lines in (("llava.json", False), ("llava.jsonl", True)):
        path = folder / name
        if not path.exists():
            testing.write_llava_json(str(path), records, seed=0, lines=lines)
        entries.append({"format": "llava", "label": f"llava ({name})", "file": str(path), "ours": {}})
    marker = folder / "av.json"
    if marker.exists():
        entries += json.loads(marker.read_text())
    else:
        av = [{"format": entry["format"], "file": entry["file"], "ours": entry["ours"]} for entry in formats_av.prepare(folder, records)]
        marker.write_text(json.dumps(av))
        entries += av
    return entries


def load_seconds(python: str, entry: dict, scratch: str) -> float:
    cache = tempfile.mkdtemp(dir=scratch, prefix="cache-")
    run = run_measured([python, "-P", "-c", LOAD, entry["format"], entry["file"], cache, json.dumps(entry["ours"])])
    if run["returncode"] != 0:
        raise SystemExit(f"{python}: load of {entry['file']} failed:\n{run['output_tail']}")
    return float(run["output_tail"].split("load_seconds")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a Python whose hf_mmbuilder is the earlier code")
    parser.add_argument("--before-label", default="before", help="what the earlier code is (a commit)")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per side; the fastest counts")
    args = parser.parse_args()
    info = machine()
    results = {}
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        for entry in inputs(args.records):
            label = entry.get("label", entry["format"])
            before, after = [], []
            for _ in range(args.repeat):
                before.append(load_seconds(args.before, entry, scratch))
                after.append(load_seconds(sys.executable, entry, scratch))
            results[label] = {"file_bytes": os.path.getsize(entry["file"]), "before_seconds": before, "after_seconds": after,
                              "ratio_after_to_before": min(after) / min(before)}
            print(f"{label:<22} before {min(before):6.2f} s  after {min(after):6.2f} s  ratio {min(after) / min(before):5.2f}", flush=True)
    path = write_result("clean_load", {
        "benchmark": "clean-input load, this checkout vs an earlier one, alternating runs, fastest of each side (in-process seconds)",
        "before": args.before_label,
        "machine": info,
        "load_average_at_end": os.getloadavg(),
        "records": args.records,
        "results": results,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
