"""Video near-duplicate throughput: ``dedup(ds, "video_phash")`` against decoding the same sampled
frames alone (``hf_mmbuilder.frames.sample_video_frames`` on every video), in the same run.

The videos are the shared clips (``../shared/data/media/video1/4/5/6.mp4``, H.264 at 362x640 to
640x360, 12 to 22 s) listed ``--copies`` times each, so both sides read the same files. Rounds
alternate the two sides so that other work on the shared machine slows both alike; the figure is
the ratio of the medians. Target (issue 24): hashing, candidate search and the aligned frame counts
add at most 20% to the decoding they need.

Writes ``benchmarks/results/video_dedup.json``.

Run: ``.venv/bin/python -P benchmarks/video_dedup.py [--copies N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

import datasets  # noqa: E402

import hf_mmbuilder  # noqa: E402
from hf_mmbuilder.duplicates.recordings import DEFAULT_NUM_FRAMES  # noqa: E402
from hf_mmbuilder.frames import sample_video_frames  # noqa: E402

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
CLIPS = ("video1.mp4", "video4.mp4", "video5.mp4", "video6.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4, help="times each shared clip is listed")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths = [str(MEDIA / name) for name in CLIPS] * args.copies
    ds = datasets.Dataset.from_dict({"videos": [[path] for path in paths]})
    decode_seconds, dedup_seconds = [], []
    labels = None
    for _ in range(args.rounds):
        started = time.perf_counter()
        for path in paths:
            sample_video_frames(path, DEFAULT_NUM_FRAMES)
        decode_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        labels = hf_mmbuilder.dedup(ds, "video_phash", return_clusters=True)["cluster_id"]
        dedup_seconds.append(time.perf_counter() - started)
    decode, dedup = statistics.median(decode_seconds), statistics.median(dedup_seconds)
    result = {
        "machine": machine(),
        "videos": len(paths),
        "frames_per_video": DEFAULT_NUM_FRAMES,
        "clusters": len(set(labels)),
        "decode_sampled_frames": {"seconds": decode_seconds, "videos_per_s": len(paths) / decode},
        "video_phash": {"seconds": dedup_seconds, "videos_per_s": len(paths) / dedup},
        "overhead_vs_decoding": dedup / decode - 1.0,
        "target_overhead": 0.20,
    }
    print(f"{len(paths)} videos: decoding {len(paths) / decode:.1f} videos/s, video_phash {len(paths) / dedup:.1f} "
          f"videos/s, overhead {100 * (dedup / decode - 1):+.1f}% -> {write_result('video_dedup', result)}")


if __name__ == "__main__":
    main()
