"""Load throughput of every supported format on generated 100k-record files, against Data-Juicer's
converter for the same format where one exists, the ratio from the same run.

Audio/video caption formats (WavCaps, Video-ChatGPT, Youku-mPLUG, InternVid, MSR-VTT) are measured
by :mod:`formats_av`, the interleaved, chat and DJ formats (MMC4, ShareGPT, Oasis, DJ) by
:mod:`formats_interleaved`; LLaVA has its own benchmark (``llava_convert.py``, 665k records).
Target (issue "Every supported format"): MMC4 load >= 5x Data-Juicer's ``mmc4_to_dj.py``.

Writes ``benchmarks/results/formats.json``: the machine (with its load average, as the machine is
shared), a summary per format (records/s and MB/s over wall time, Data-Juicer's, the ratio) and
each module's detailed measurements.

Run: ``.venv/bin/python benchmarks/formats.py [--records N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import formats_av  # noqa: E402
import formats_interleaved  # noqa: E402
from common import machine, write_result  # noqa: E402


def summary_av(result: dict) -> dict:
    ours, dj = result["ours"], result["data_juicer"]
    row = {
        "records": result["records"],
        "file_bytes": result["file_bytes"],
        "records_per_second": ours["records_per_second"],
        "mb_per_second": ours["mb_per_second"],
        "peak_rss_bytes": ours["peak_rss_bytes"],
    }
    if isinstance(dj, dict):
        row.update(data_juicer_records_per_second=dj["records_per_second"], data_juicer_mb_per_second=dj["mb_per_second"],
                   data_juicer_peak_rss_bytes=dj["peak_rss_bytes"], speedup_vs_data_juicer=result["speedup_wall"])
    else:
        row["data_juicer"] = dj
    return row


def summary_interleaved(entry: dict, records: int) -> dict:
    runs = [entry[f"hf_mmbuilder_num_proc_{procs}"] for procs in (1, 2)]
    best = min(runs, key=lambda run: run["seconds"])
    row = {
        "records": records,
        "file_bytes": entry["bytes"],
        "records_per_second": best["records_per_second"],
        "mb_per_second": best["megabytes_per_second"],
        "peak_rss_bytes": best["peak_rss_bytes"],
        "num_proc": 1 + runs.index(best),
    }
    dj = entry["data_juicer"]
    if "seconds" in dj:
        row.update(data_juicer_records_per_second=dj["records_per_second"], data_juicer_mb_per_second=dj["megabytes_per_second"],
                   data_juicer_peak_rss_bytes=dj["peak_rss_bytes"], speedup_vs_data_juicer=dj["seconds"] / best["seconds"])
    else:
        row["data_juicer"] = dj["error"].strip().splitlines()[-1] if dj["error"].strip() else "failed"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per side; the fastest counts (the machine is shared)")
    args = parser.parse_args()
    info = machine()
    interleaved = formats_interleaved.run(args.records, repeat=args.repeat)
    av = formats_av.run(args.records, args.repeat)
    summary = {fmt: summary_interleaved(entry, args.records) for fmt, entry in interleaved.items()}
    summary.update({result["format"]: summary_av(result) for result in av})
    print(f"{'format':<14}{'rec/s':>10} {'MB/s':>6} | {'DJ rec/s':>10} | {'ratio':>6}")
    for fmt, row in summary.items():
        ratio = f"{row['speedup_vs_data_juicer']:>5.1f}x" if "speedup_vs_data_juicer" in row else "  (no converter)"
        dj = f"{row['data_juicer_records_per_second']:>10,.0f}" if "data_juicer_records_per_second" in row else f"{'-':>10}"
        print(f"{fmt:<14}{row['records_per_second']:>10,.0f} {row['mb_per_second']:>6.1f} | {dj} | {ratio}")
    print(f"machine: {info['cores']} cores, load average at start {info['load_average_at_start']}, at end {os.getloadavg()}")
    path = write_result(
        "formats",
        {
            "benchmark": "per-format load throughput: hf_mmbuilder.load vs Data-Juicer's *_to_dj.py where it exists (same run)",
            "machine": info,
            "load_average_at_end": os.getloadavg(),
            "records": args.records,
            "summary": summary,
            "interleaved": interleaved,
            "audio_video": {"note": formats_av.NOTE, "results": av},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
