"""Load throughput of the MMC4, ShareGPT, Oasis and DJ loaders on generated 100k-record files, with
Data-Juicer's converter for the same format where one exists (MMC4: ``mmc4_to_dj.py``).

Target (issue 3): MMC4 load >= 5x Data-Juicer's ``mmc4_to_dj.py`` on a generated 100k-document file
(5.6 images x 20 sentences per document on average). ShareGPT, Oasis and DJ have no Data-Juicer
converter; their throughput is reported alone.

Each side runs as its own process on the same file in the same run; wall time includes interpreter
start and imports for both; peak RSS is the process tree's, sampled. Files are generated once into
``benchmarks/data/`` by :mod:`hf_mmbuilder.testing.interleaved` (seeded).

Run through ``benchmarks/formats.py`` (all formats, one result file).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DJ_PYTHON = ROOT / ".venv-dj" / "bin" / "python"
RECORDS = 100_000
FORMATS = ("mmc4", "sharegpt", "oasis", "dj")
DJ_CONVERTERS = {"mmc4": ("mmc4_to_dj", "--mmc4_ds_path")}

LOAD = """
import sys, time, hf_mmbuilder
start = time.perf_counter()
ds = hf_mmbuilder.load(sys.argv[1], sys.argv[2], split="train", cache_dir=sys.argv[3], num_proc=int(sys.argv[4]) or None)
print("rows", len(ds), "load_seconds", time.perf_counter() - start)
"""


def source_file(fmt: str, records: int) -> Path:
    """The generated input of ``fmt`` (written on first use; the DJ input is our ShareGPT -> DJ export)."""
    from hf_mmbuilder import testing

    path = DATA / f"{fmt}_{records}.jsonl"
    if path.exists():
        return path
    print(f"generating {records} {fmt} records into {path} ...", flush=True)
    if fmt == "dj":
        import hf_mmbuilder

        with tempfile.TemporaryDirectory() as scratch:
            ds = hf_mmbuilder.load("sharegpt", str(source_file("sharegpt", records)), split="train", cache_dir=scratch)
            hf_mmbuilder.export(ds, "dj", str(path))
        return path
    testing.write_jsonl(str(path), testing.GENERATORS[fmt](records, seed=0))
    return path


def measure(fmt: str, source: Path, scratch: str, procs: int) -> dict:
    run = run_measured([sys.executable, "-c", LOAD, fmt, str(source), os.path.join(scratch, f"{fmt}-cache{procs}"), str(procs)])
    if run["returncode"] != 0:
        raise SystemExit(f"hf_mmbuilder load of {fmt} failed:\n{run['output_tail']}")
    run["load_seconds_in_process"] = float(run["output_tail"].split("load_seconds")[1].split()[0])
    return run


def _fastest(runs: list) -> dict:
    return {**min(runs, key=lambda run: run["seconds"]), "seconds_all_runs": [run["seconds"] for run in runs]}


def run(records: int, formats: tuple = FORMATS, repeat: int = 1) -> dict:
    """Measure each of ``formats`` on a generated ``records``-record file (Data-Juicer's converter
    where there is one, then ours with ``num_proc`` 1 and 2, in ``repeat`` alternating rounds; each
    side's fastest run counts); prints them and returns ``{format: entry}``."""
    results = {}
    for fmt in formats:
        source = source_file(fmt, records)
        entry = {"bytes": source.stat().st_size}
        dj_runs, dj_error, our_runs = [], None, {1: [], 2: []}
        with tempfile.TemporaryDirectory() as scratch:
            for round_number in range(repeat):
                if fmt not in DJ_CONVERTERS:
                    dj_error = {"error": "Data-Juicer has no converter for this format"}
                elif not DJ_PYTHON.exists():
                    dj_error = {"error": f"peer not installed ({DJ_PYTHON} missing)"}
                elif dj_error is None:
                    module, flag = DJ_CONVERTERS[fmt]
                    dj = run_measured(
                        [str(DJ_PYTHON), "-m", f"tools.fmt_conversion.multimodal.source_format_to_data_juicer_format.{module}",
                         flag, str(source), "--target_ds_path", os.path.join(scratch, "dj.jsonl")],
                        env={**os.environ, "PYTHONWARNINGS": "ignore"},
                    )
                    if dj["returncode"] == 0:
                        dj_runs.append(dj)
                    else:
                        dj_error = {"error": dj["output_tail"]}
                for procs in (1, 2):
                    our_runs[procs].append(measure(fmt, source, os.path.join(scratch, str(round_number)), procs))
        entry["data_juicer"] = dj_error if dj_error is not None else _fastest(dj_runs)
        for procs, runs in our_runs.items():
            entry[f"hf_mmbuilder_num_proc_{procs}"] = _fastest(runs)
        results[fmt] = entry
        report(fmt, entry, records)
    return results


def report(fmt: str, entry: dict, records: int) -> None:
    megabytes = entry["bytes"] / 1e6
    print(f"{fmt}: {records} records, {megabytes:.0f} MB")
    dj = entry["data_juicer"]
    if "seconds" in dj:
        dj["records_per_second"] = records / dj["seconds"]
        dj["megabytes_per_second"] = megabytes / dj["seconds"]
        print(f"  Data-Juicer: {dj['seconds']:.2f} s wall, {dj['records_per_second']:.0f} records/s, {dj['megabytes_per_second']:.1f} MB/s, peak RSS {dj['peak_rss_bytes'] / 2**20:.0f} MiB")
    else:
        print(f"  Data-Juicer: {dj['error'].strip().splitlines()[-1] if dj['error'].strip() else 'failed'}")
    for procs in (1, 2):
        ours = entry[f"hf_mmbuilder_num_proc_{procs}"]
        ours["records_per_second"] = records / ours["seconds"]
        ours["megabytes_per_second"] = megabytes / ours["seconds"]
        line = (f"  hf_mmbuilder num_proc={procs}: {ours['seconds']:.2f} s wall ({ours['load_seconds_in_process']:.2f} s in load), "
                f"{ours['records_per_second']:.0f} records/s, {ours['megabytes_per_second']:.1f} MB/s, peak RSS {ours['peak_rss_bytes'] / 2**20:.0f} MiB")
        if "seconds" in dj:
            ours["speedup_vs_data_juicer"] = dj["seconds"] / ours["seconds"]
            line += f" -> {ours['speedup_vs_data_juicer']:.1f}x Data-Juicer"
        print(line)
