"""Audio/video caption formats -> DJ rows: hf_mmbuilder against Data-Juicer's converters.

For each of WavCaps (SoundBible subset), Video-ChatGPT, Youku-mPLUG (classification), InternVid
and MSR-VTT (Hugging Face JSON lines, the layout Data-Juicer reads) a seeded file of ``--records``
records is generated (:mod:`hf_mmbuilder.testing.captions`), then loaded by ``hf_mmbuilder.load`` (one
process, Arrow written to a fresh cache) and converted by Data-Juicer's
``tools.fmt_conversion.multimodal.source_format_to_data_juicer_format.<fmt>_to_dj`` (its own venv,
``.venv-dj``), each as its own process in the same run. Wall time includes interpreter start and
imports on both sides; ours also prints the load time measured inside the process. WavCaps gets an
audio folder with one empty ``<id>.flac`` per record, which both sides search recursively.

Each side runs ``repeat`` times and its fastest run counts, as the machine is shared. Prints
records/s and MB/s (over wall time) side by side, the time inside each process (our ``load``;
Data-Juicer's ``main()`` call) and both ratios (Data-Juicer time / ours). Ours also records the floor every load pays whatever the
file size (``load`` of a 10-record file in a fresh process: loader imports, datasets' builder
setup, compiled-kernel cache loading) and each side's interpreter + import time (wall - inside). Without ``.venv-dj`` Data-Juicer is reported as "peer not
installed" and ours is still measured.

Run through ``benchmarks/formats.py`` (all formats, one result file).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DJ_PYTHON = ROOT / ".venv-dj" / "bin" / "python"
DJ_MODULE = "tools.fmt_conversion.multimodal.source_format_to_data_juicer_format.{}_to_dj"

LOAD = """
import json, sys, time, hf_mmbuilder
start = time.perf_counter()
ds = hf_mmbuilder.load(sys.argv[1], sys.argv[2], split="train", cache_dir=sys.argv[3], **json.loads(sys.argv[4]))
print("rows", len(ds), "load_seconds", time.perf_counter() - start)
"""


DJ_RUN = """
import importlib, json, sys, time
module = importlib.import_module(sys.argv[1])
start = time.perf_counter()
module.main(**json.loads(sys.argv[2]))
print("convert_seconds", time.perf_counter() - start)
"""


def _seconds_after(label: str, output: str) -> float:
    return float(output.rsplit(label, 1)[1].split()[0])


def prepare(folder: Path, records: int) -> list[dict]:
    """Generate the input files; returns one entry per format with our options and DJ's arguments."""
    from hf_mmbuilder import testing

    wavcaps = testing.write_wavcaps_json(str(folder / "wavcaps_soundbible.json"), "soundbible", records, seed=0)
    audio = folder / "audio"
    for shard in range(10):
        (audio / f"part{shard}").mkdir(parents=True, exist_ok=True)
    for number in range(records):
        (audio / f"part{number % 10}" / f"{number}.flac").touch()
    chatgpt = testing.write_video_chatgpt_json(str(folder / "video_chatgpt.json"), records, seed=0)
    youku = testing.write_youku_csv(str(folder / "youku_classification.csv"), "classification", records, seed=0)
    internvid = testing.write_internvid_jsonl(str(folder / "internvid.jsonl"), records, seed=0)
    msrvtt = testing.write_msrvtt(str(folder / "msrvtt_hf.jsonl"), "jsonl", records, seed=0)
    out = str(folder / "dj_out.jsonl")
    return [
        {
            "format": "wavcaps",
            "file": wavcaps,
            "ours": {"media_root": str(folder), "wavcaps_audio_path": "audio"},
            "dj": {"wavcaps_json_path": wavcaps, "wavcaps_audio_path": str(audio), "target_ds_path": out},
        },
        {"format": "video_chatgpt", "file": chatgpt, "ours": {}, "dj": {"video_chatgpt_ds_path": chatgpt, "target_ds_dj_path": out}},
        {"format": "youku", "file": youku, "ours": {}, "dj": {"youku_ds_path": youku, "target_ds_path": out, "subset_type": "classification"}},
        {"format": "internvid", "file": internvid, "ours": {}, "dj": {"internvid_ds_path": internvid, "target_ds_path": out, "cut_videos": False}},
        {"format": "msrvtt", "file": msrvtt, "ours": {}, "dj": {"msr_vtt_ds_path": msrvtt, "target_ds_path": out}},
    ]


def _rows(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("rows "):
            return int(line.split()[1])
    return -1


def _best(runs: list) -> dict:
    return min(runs, key=lambda run: run["seconds"])


def _our_runs(entry: dict, folder: Path, repeat: int) -> list:
    import json

    runs = []
    for _ in range(repeat):
        cache = tempfile.mkdtemp(dir=folder, prefix="cache-")
        run = run_measured([sys.executable, "-c", LOAD, entry["format"], entry["file"], cache, json.dumps(entry["ours"])])
        if run["returncode"] != 0:
            raise RuntimeError(f"our load of {entry['format']} failed:\n{run['output_tail']}")
        runs.append(run)
    return runs


def measure(entry: dict, small: dict, folder: Path, records: int, repeat: int) -> dict:
    import json

    size = os.path.getsize(entry["file"])
    runs = _our_runs(entry, folder, repeat)
    ours = _best(runs)
    inside = min(_seconds_after("load_seconds", run["output_tail"]) for run in runs)
    floor = min(_seconds_after("load_seconds", run["output_tail"]) for run in _our_runs(small, folder, repeat))
    result = {
        "format": entry["format"],
        "records": records,
        "file_bytes": size,
        "repeat": repeat,
        "ours": {
            "wall_seconds": ours["seconds"],
            "wall_seconds_all_runs": [run["seconds"] for run in runs],
            "load_seconds_in_process": inside,
            "startup_load_seconds_in_process": floor,
            "interpreter_and_import_seconds": ours["seconds"] - inside,
            "rows": _rows(ours["output_tail"]),
            "records_per_second": records / ours["seconds"],
            "records_per_second_in_process": records / inside,
            "mb_per_second": size / 1e6 / ours["seconds"],
            "peak_rss_bytes": ours["peak_rss_bytes"],
        },
    }
    if not DJ_PYTHON.exists():
        result["data_juicer"] = "peer not installed"
        return result
    written = folder / "dj_out.jsonl"
    runs, rows = [], 0
    for _ in range(repeat):
        run = run_measured([str(DJ_PYTHON), "-c", DJ_RUN, DJ_MODULE.format(entry["format"]), json.dumps(entry["dj"])], cwd=str(folder))
        if run["returncode"] != 0:
            raise RuntimeError(f"Data-Juicer's {entry['format']}_to_dj failed:\n{run['output_tail']}")
        runs.append(run)
        rows = sum(1 for _ in open(written, "rb")) if written.exists() else 0
        if written.exists():
            written.unlink()
    dj = _best(runs)
    dj_inside = min(_seconds_after("convert_seconds", run["output_tail"]) for run in runs)
    result["data_juicer"] = {
        "wall_seconds": dj["seconds"],
        "convert_seconds_in_process": dj_inside,
        "interpreter_and_import_seconds": dj["seconds"] - dj_inside,
        "records_per_second_in_process": records / dj_inside,
        "wall_seconds_all_runs": [run["seconds"] for run in runs],
        "rows": rows,
        "returncode": dj["returncode"],
        "records_per_second": records / dj["seconds"],
        "mb_per_second": size / 1e6 / dj["seconds"],
        "peak_rss_bytes": dj["peak_rss_bytes"],
    }
    result["speedup_wall"] = dj["seconds"] / ours["seconds"]
    result["speedup_in_process"] = dj_inside / inside
    return result


def run(records: int, repeat: int) -> list:
    """Measure every audio/video caption format on generated ``records``-record files; prints a
    table and returns one result per format (see :func:`measure`)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="formats_av-") as temporary:
        folder = Path(temporary)
        entries = prepare(folder, records)
        (folder / "startup").mkdir()
        small_entries = prepare(folder / "startup", 10)
        print(
            f"{'format':<14}{'MB':>6} | {'ours rec/s':>10} {'MB/s':>5} {'load s':>6} {'floor s':>7} | {'DJ rec/s':>10} {'MB/s':>5} {'conv s':>6}"
            f" | {'ratio wall':>10} {'ratio in-proc':>13}"
        )
        for entry, small in zip(entries, small_entries):
            result = measure(entry, small, folder, records, repeat)
            results.append(result)
            ours, dj = result["ours"], result["data_juicer"]
            line = (
                f"{entry['format']:<14}{result['file_bytes'] / 1e6:>6.1f} | {ours['records_per_second']:>10,.0f} "
                f"{ours['mb_per_second']:>5.1f} {ours['load_seconds_in_process']:>6.2f} {ours['startup_load_seconds_in_process']:>7.2f} | "
            )
            if isinstance(dj, dict):
                line += (
                    f"{dj['records_per_second']:>10,.0f} {dj['mb_per_second']:>5.1f} {dj['convert_seconds_in_process']:>6.2f}"
                    f" | {result['speedup_wall']:>9.2f}x {result['speedup_in_process']:>12.2f}x"
                )
            else:
                line += dj
            print(line)
    return results


NOTE = (
    "the machine is shared with other running work (see load average): each side runs --repeat times and "
    "the fastest run counts; both sides include interpreter start and imports (rates are records / wall seconds). "
    "ours.startup_load_seconds_in_process is the floor of any load (10 records: loader imports, datasets builder "
    "setup, compiled-kernel cache loading), so a ratio in process is bounded by Data-Juicer's time / that floor, and "
    "a wall ratio by Data-Juicer's wall / our interpreter_and_import_seconds (importing datasets)"
)
