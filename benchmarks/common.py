"""Helpers shared by the benchmark scripts: machine facts, timed subprocesses with peak memory, and
the JSON result file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parent / "data"


def machine() -> dict:
    """Cores, CPU model, memory and the load average when the benchmark started (other work on the
    machine slows both sides of a ratio alike, but absolute numbers less so).

    Example:
        >>> "cores" in machine()
        True
    """
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_bytes": memory,
        "python": sys.version.split()[0],
        "load_average_at_start": os.getloadavg(),
    }


def _tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (bytes)."""
    total = 0
    pending = [pid]
    children_of: dict = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children_of.setdefault(parent, []).append(int(entry.name))
    while pending:
        current = pending.pop()
        pending.extend(children_of.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def run_measured(command: list, env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``command``; return wall seconds, peak RSS of its whole process tree (sampled every
    20 ms), exit code and the tail of its output.

    Example:
        >>> run_measured([sys.executable, "-c", "pass"])["returncode"]
        0
    """
    peak = 0
    done = threading.Event()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {
        "seconds": seconds,
        "peak_rss_bytes": peak,
        "returncode": process.returncode,
        "output_tail": output.decode("utf-8", "replace")[-2000:],
    }


def corpus(n: int, rng, min_words: int, max_words: int, duplicate_rate: float) -> list[str]:
    """Short documents as the dedup benchmarks use them: Zipf-distributed words; a
    ``duplicate_rate`` share of documents copy an earlier one with one word replaced (``rng`` is a
    ``numpy.random.Generator``)."""
    # numpy on use: the cold-start benchmark's children import this module before they time anything.
    import numpy as np

    vocabulary = np.array([f"w{i}" for i in range(30_000)])
    weights = 1.0 / np.arange(1, vocabulary.size + 1)
    lengths = rng.integers(min_words, max_words + 1, size=n)
    words = rng.choice(vocabulary, size=int(lengths.sum()) + n, p=weights / weights.sum()).tolist()
    duplicate = rng.random(n) < duplicate_rate
    docs: list[str] = []
    position = 0
    for i in range(n):
        if docs and duplicate[i]:
            copied = docs[rng.integers(len(docs))].split(" ")
            copied[rng.integers(len(copied))] = words[position]
            position += 1
            docs.append(" ".join(copied))
        else:
            docs.append(" ".join(words[position : position + lengths[i]]))
            position += lengths[i]
    return docs


def write_result(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path
