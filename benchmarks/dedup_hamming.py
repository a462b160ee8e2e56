"""Hamming all-pairs within a radius: hf_mmbuilder's popcount kernels against faiss IndexBinaryFlat.

100k 64-bit hashes (half random, half copies of them with 1-4 flipped bits), radius 8: our brute
force and multi-index hashing against ``faiss.IndexBinaryFlat.range_search`` (radius 9, as faiss's
bound is exclusive) with the same thread count, checking that all return the same pair set. Then
2M hashes, where ``method="auto"`` switches to multi-index hashing (``--check-large`` also brute
forces them and compares; that takes minutes).

Run: ``python benchmarks/dedup_hamming.py``; writes benchmarks/results/dedup_hamming.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from hf_mmbuilder.kernels.hamming import hamming_pairs


def machine_info() -> dict:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(), "load_avg_1min": load}


def planted_hashes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n // 2, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n // 2).astype(np.uint64)
    flips = np.zeros(n - n // 2, dtype=np.uint64)
    for _ in range(int(rng.integers(1, 5))):
        flips |= np.uint64(1) << rng.integers(0, 64, n - n // 2).astype(np.uint64)
    return np.concatenate([base, base[rng.integers(0, n // 2, n - n // 2)] ^ flips])


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def pair_set(left, right) -> set:
    return set(zip(left.tolist(), right.tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=2_000_000, help="hashes for the multi-index hashing run (0: skip)")
    parser.add_argument("--check-large", action="store_true", help="also brute-force the large set (minutes) and compare")
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dedup_hamming.json"))
    args = parser.parse_args()

    hashes = planted_hashes(args.n)
    hamming_pairs(hashes[:2000], args.radius, method="brute")
    hamming_pairs(hashes[:2000], args.radius, method="mih")
    result: dict = {
        "benchmark": "dedup_hamming",
        "machine": machine_info(),
        "n": args.n,
        "radius": args.radius,
        "threads": args.threads,
        "note": "2-core machine shared with other jobs; single runs",
    }
    brute_s, brute = timed(lambda: hamming_pairs(hashes, args.radius, method="brute", num_threads=args.threads))
    brute1_s, _ = timed(lambda: hamming_pairs(hashes, args.radius, method="brute", num_threads=1))
    mih_s, mih = timed(lambda: hamming_pairs(hashes, args.radius, method="mih", num_threads=args.threads))
    ours = pair_set(*brute)
    result.update(
        ours_brute_s=brute_s,
        ours_brute_1thread_s=brute1_s,
        ours_mih_s=mih_s,
        pairs=len(ours),
        mih_same_result=pair_set(*mih) == ours,
    )
    try:
        import faiss
    except ImportError:
        result["faiss"] = "peer not installed"
        faiss = None
    if faiss is not None:
        faiss.omp_set_num_threads(args.threads)
        codes = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
        index = faiss.IndexBinaryFlat(64)
        index.add(codes)
        faiss_s, (limits, _, neighbours) = timed(lambda: index.range_search(codes, args.radius + 1))
        rows = np.repeat(np.arange(len(hashes)), np.diff(limits).astype(np.int64))
        upper = neighbours > rows
        result.update(
            faiss_version=faiss.__version__,
            faiss_range_search_s=faiss_s,
            faiss_same_result=pair_set(rows[upper], neighbours[upper]) == ours,
            brute_speedup_vs_faiss=faiss_s / brute_s,
            mih_speedup_vs_faiss=faiss_s / mih_s,
        )
    if args.large:
        large = planted_hashes(args.large, seed=1)
        auto_s, auto = timed(lambda: hamming_pairs(large, args.radius, num_threads=args.threads))
        result["large"] = {
            "n": args.large,
            "auto_method": "mih" if args.large > 1_000_000 else "brute",
            "ours_auto_s": auto_s,
            "pairs": int(auto[0].size),
        }
        if args.large <= 1_000_000:
            result["large"]["ours_mih_s"] = timed(lambda: hamming_pairs(large, args.radius, method="mih", num_threads=args.threads))[0]
        if args.check_large:
            brute_large_s, brute_large = timed(lambda: hamming_pairs(large, args.radius, method="brute", num_threads=args.threads))
            result["large"].update(ours_brute_s=brute_large_s, same_result=pair_set(*auto) == pair_set(*brute_large))

    print(f"machine: {result['machine']}")
    print(f"{args.n} hashes, radius {args.radius}, {args.threads} threads:")
    print(f"  faiss IndexBinaryFlat range_search  {result.get('faiss_range_search_s', float('nan')):8.3f} s  same result: {result.get('faiss_same_result')}")
    print(f"  ours brute force                    {brute_s:8.3f} s  x{result.get('brute_speedup_vs_faiss', float('nan')):.2f} vs faiss")
    print(f"  ours brute force, 1 thread          {brute1_s:8.3f} s")
    print(f"  ours multi-index hashing            {mih_s:8.3f} s  x{result.get('mih_speedup_vs_faiss', float('nan')):.2f} vs faiss, same result: {result['mih_same_result']}")
    if args.large:
        print(f"{args.large} hashes: {json.dumps(result['large'])}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
