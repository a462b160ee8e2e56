"""LLaVA export with remembered key order and source styles: the compiled exporter against the
careful path it used to leave such rows to.

About 6% of LLaVA-665k-shaped records (the text-only ones, ``"model"`` before
``"conversations"`` as in mix665k) carry ``__key_order__``. The compiled exporter now writes them
itself; the anchor, measured in the same run on the same dataset, is the previous behaviour: those
rows sent to the careful Python path (``row_to_record`` + orjson) one by one. Both are measured
on a compact JSON-lines source (written as it is) and on a ``json.dump(indent=2)`` source (every
record restyled by ``kernels/json_style.py``); both outputs are checked byte-identical to the
source. Also measured: the style proof (``proven_style``: the whole file read once, at the first
export since loading only records a claim on the file), against the load.

Run: ``.venv/bin/python -P benchmarks/llava_export.py [--records N] [--repeat R]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

import hf_mmbuilder  # noqa: E402
from hf_mmbuilder.errors import ErrorPolicy  # noqa: E402
from hf_mmbuilder.formats.exporter import AtomicWriter  # noqa: E402
from hf_mmbuilder.formats.records import KEY_ORDER_KEY  # noqa: E402
from hf_mmbuilder.formats.serialization import proven_style  # noqa: E402
from hf_mmbuilder.loading_scripts.llava import LlavaConfig, LlavaExporter  # noqa: E402
from hf_mmbuilder.testing.llava import llava_records  # noqa: E402


class CarefulForKeyOrder(LlavaExporter):
    """The anchor: the previous compiled exporter, which left every row with a remembered key
    order to the careful path."""

    def encode_table(self, table, separator):
        data, offsets, fallback = super().encode_table(table, separator)
        extra = table.column("extra").combine_chunks()
        reordered = pc.match_substring(extra.storage, f'"{KEY_ORDER_KEY}"').fill_null(False).to_numpy(zero_copy_only=False)
        return data, offsets, fallback | reordered


class _Progress:
    def update(self, count):
        pass


def export_seconds(exporter_class, dataset, path: str, suffix: str) -> tuple[float, float]:
    """Wall and CPU seconds of one export (CPU time: less disturbed by other work on a shared machine)."""
    exporter = exporter_class(LlavaConfig())
    wall, cpu = time.perf_counter(), time.process_time()
    with ErrorPolicy("raise", None) as policy, AtomicWriter(path) as handle:
        exporter.write_dataset(dataset, handle, suffix, policy, path, _Progress(), 10_000)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds; each side's fastest run counts (the machine is shared)")
    args = parser.parse_args()
    result = {"benchmark": "llava_export", "machine": machine(), "records": args.records}
    with tempfile.TemporaryDirectory() as scratch:
        records = list(llava_records(args.records, 0))
        sources = {"compact.jsonl": b"".join(orjson.dumps(record) + b"\n" for record in records),
                   "indent2.json": json.dumps(records, indent=2, ensure_ascii=False).encode() + b"\n"}
        for name, text in sources.items():
            source = os.path.join(scratch, name)
            Path(source).write_bytes(text)
            suffix = os.path.splitext(name)[1]
            start = time.perf_counter()
            dataset = hf_mmbuilder.load("llava", source, split="train", cache_dir=os.path.join(scratch, "cache"))
            load_seconds = time.perf_counter() - start
            start = time.perf_counter()
            style = proven_style(dataset[0]["source_style"])
            detect_seconds = time.perf_counter() - start
            reordered = int(np.sum([KEY_ORDER_KEY in (extra or {}) for extra in dataset["extra"]]))
            runs = {"careful_for_key_order": [], "compiled_key_order": []}
            for _ in range(args.repeat):
                for side, exporter_class in (("careful_for_key_order", CarefulForKeyOrder), ("compiled_key_order", LlavaExporter)):
                    out = os.path.join(scratch, f"{side}{suffix}")
                    runs[side].append(export_seconds(exporter_class, dataset, out, suffix))
                    if Path(out).read_bytes() != text:
                        raise SystemExit(f"{side}: export of {name} is not byte-identical to its source")
            best = {side: (min(wall for wall, _ in timings), min(cpu for _, cpu in timings)) for side, timings in runs.items()}
            (before, before_cpu), (after, after_cpu) = best["careful_for_key_order"], best["compiled_key_order"]
            result[name] = {
                "bytes": len(text), "rows_with_key_order": reordered, "share_with_key_order": reordered / len(dataset),
                "style": style, "load_seconds": load_seconds,
                "style_proof_seconds": detect_seconds, "style_proof_share_of_load": detect_seconds / load_seconds,
                "export_seconds_careful_for_key_order": before, "export_seconds_compiled_key_order": after,
                "export_cpu_seconds_careful_for_key_order": before_cpu, "export_cpu_seconds_compiled_key_order": after_cpu,
                "speedup_wall": before / after, "speedup_cpu": before_cpu / after_cpu,
                "all_runs_wall_cpu": runs, "byte_identical": True,
            }
            print(f"{name}: {len(text) / 1e6:.0f} MB, {reordered} rows ({reordered / len(dataset):.1%}) with key order; "
                  f"export CPU {before_cpu:.2f} s (those rows careful) -> {after_cpu:.2f} s (compiled): {before_cpu / after_cpu:.2f}x "
                  f"(wall {before:.2f} -> {after:.2f} s); style proof {detect_seconds:.2f} s of a {load_seconds:.2f} s load")
    result["load_average_at_end"] = os.getloadavg()
    print("wrote", write_result("llava_export", result))


if __name__ == "__main__":
    main()
