"""``hf-mmbuilder dedup``: remove exact or near-duplicate rows and write DJ JSON lines or Parquet."""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import datasets
import orjson

from ..duplicates import METHODS, dedup
from ..export import AtomicWriter, iter_rows
from ..registry import available_formats, load

EXAMPLES = """examples:
  hf-mmbuilder dedup --method exact data.dj.jsonl dedup.dj.jsonl
  hf-mmbuilder dedup --method minhash --threshold 0.7 --report report.json data.dj.jsonl dedup.parquet
  hf-mmbuilder dedup --method minhash --mode data_juicer demo.jsonl demo.dedup.jsonl
  hf-mmbuilder dedup --format llava --method exact --on text images --clusters llava.json clusters.parquet
  hf-mmbuilder dedup --method phash --param radius=4 --param hash='"dhash"' data.dj.jsonl out.jsonl
  hf-mmbuilder dedup --method minhash --engine ray --address head-node:6379 data.parquet dedup.parquet
"""

_OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def register(subparsers) -> None:
    """Add the ``dedup`` sub-command.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    """
    parser = subparsers.add_parser(
        "dedup",
        help="remove exact / near-duplicate rows (exact, minhash, phash, semantic)",
        description=(
            "Load INPUT (a DJ .jsonl/.json/.parquet file, or any file of --format), remove duplicate rows "
            "and write OUTPUT as DJ JSON lines (.jsonl) or Parquet (.parquet)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s) or glob pattern(s)")
    parser.add_argument("output", metavar="OUTPUT", help="output file: .jsonl (DJ JSON lines) or .parquet")
    parser.add_argument("--format", choices=available_formats(), default=None, help="source format of INPUT (default: DJ rows by file extension)")
    parser.add_argument("--method", choices=METHODS, default="minhash", help="dedup method (default: minhash)")
    parser.add_argument("--column", default=None, help="column to compare (default: text; images for phash)")
    parser.add_argument("--keep-max", default=None, metavar="COLUMN", help="keep the row maximising this numeric column per cluster (default: first row)")
    parser.add_argument("--clusters", action="store_true", help="keep every row and add an int64 cluster_id column instead of dropping duplicates")
    parser.add_argument("--report", default=None, metavar="PATH", help="write the dedup report (.json, or .md for Markdown)")
    parser.add_argument("--within-row-media", nargs="+", default=(), metavar="COLUMN", help="first drop files repeated inside a row (e.g. images)")
    minhash = parser.add_argument_group("minhash")
    minhash.add_argument("--threshold", dest="jaccard_threshold", type=float, default=None, help="Jaccard threshold (default 0.7)")
    minhash.add_argument("--num-perm", dest="num_permutations", type=int, default=None, help="permutations (default 256)")
    minhash.add_argument("--window-size", type=int, default=None, help="shingle size (default 5)")
    minhash.add_argument("--tokenization", choices=("space", "character"), default=None)
    minhash.add_argument("--num-bands", type=int, default=None)
    minhash.add_argument("--rows-per-band", dest="num_rows_per_band", type=int, default=None)
    minhash.add_argument("--mode", choices=("fast", "data_juicer"), default=None, help="fast hashes (default) or Data-Juicer bit parity")
    minhash.add_argument("--sketch", choices=("minhash", "oph"), default=None, help="oph: O(n+k) sketch for long documents")
    exact = parser.add_argument_group("exact")
    exact.add_argument("--on", nargs="+", default=None, metavar="PART", help="key parts: text and/or images, audios, videos (default: text)")
    exact.add_argument("--lowercase", action="store_true", default=None, help="lowercase text before hashing")
    exact.add_argument("--drop-non-alnum", action="store_true", default=None, help="drop non-letter/digit characters before hashing")
    exact.add_argument("--drop-special-tokens", action="store_true", default=None, help="drop DJ special tokens before hashing")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="any other method parameter, value as JSON; repeatable")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder (default: a temporary folder)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="where minhash clusters are computed (default: local)")
    parser.add_argument("--address", default=None, help="Ray cluster address for --engine ray, e.g. HOST:6379 or auto (default: RAY_ADDRESS, else a local Ray)")
    parser.set_defaults(func=run)


_MINHASH_FLAGS = ("jaccard_threshold", "num_permutations", "window_size", "tokenization", "num_bands", "num_rows_per_band", "mode", "sketch")
_EXACT_FLAGS = ("on", "lowercase", "drop_non_alnum", "drop_special_tokens")


def _params(args) -> dict:
    flags = {"minhash": _MINHASH_FLAGS, "exact": _EXACT_FLAGS}.get(args.method, ())
    params = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    for other_method, names in (("minhash", _MINHASH_FLAGS), ("exact", _EXACT_FLAGS)):
        misplaced = [name for name in names if other_method != args.method and getattr(args, name) is not None]
        if misplaced:
            raise ValueError(f"option(s) {', '.join(misplaced)} belong to --method {other_method}, not {args.method}")
    for pair in args.param:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--param takes NAME=JSON, got {pair!r}")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    if "on" in params:
        params["on"] = tuple(params["on"])
    return params


def _load(args, cache_dir: str) -> datasets.Dataset:
    if args.format is not None:
        return load(args.format, args.inputs, split="train", cache_dir=cache_dir)
    suffixes = {os.path.splitext(path)[1] for path in args.inputs}
    if suffixes <= {".parquet"}:
        builder = "parquet"
    elif suffixes <= {".jsonl", ".json"}:
        builder = "json"
    else:
        raise ValueError(f"cannot tell the format of {', '.join(args.inputs)}: give --format, or DJ .jsonl/.json/.parquet files")
    return datasets.load_dataset(builder, data_files=args.inputs, split="train", cache_dir=cache_dir)


def _write(ds: datasets.Dataset, path: str) -> None:
    suffix = os.path.splitext(path)[1]
    if suffix not in _OUTPUT_SUFFIXES:
        raise ValueError(f"output must end in {' or '.join(_OUTPUT_SUFFIXES)}, not {path!r}")
    with AtomicWriter(path) as handle:
        if suffix == ".parquet":
            ds.to_parquet(handle)
            return
        for row in iter_rows(ds):
            handle.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def _write_report(report, path: str) -> None:
    with AtomicWriter(path) as handle:
        if path.endswith(".md"):
            handle.write(report.to_markdown().encode())
        else:
            handle.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n")


def run(args) -> int:
    """Dedup ``args.inputs`` into ``args.output``; prints the counts and writes the report.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["dedup", "--method", "exact", "in.dj.jsonl", "out.dj.jsonl"])  # doctest: +SKIP
        exact: 14 rows, 13 kept, 1 duplicates in 1 clusters; wrote 13 rows to out.dj.jsonl
        0
    """
    if os.path.splitext(args.output)[1] not in _OUTPUT_SUFFIXES:
        raise ValueError(f"output must end in {' or '.join(_OUTPUT_SUFFIXES)}, not {args.output!r}")
    params = _params(args)
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is the Ray cluster of --engine ray; add --engine ray")
    if args.engine == "ray":
        from ..ray_engine import init

        init(args.address)
    with tempfile.TemporaryDirectory() as scratch:
        dataset = _load(args, args.cache_dir or scratch)
        result, report = dedup(
            dataset,
            args.method,
            column=args.column,
            keep_max=args.keep_max,
            return_clusters=args.clusters,
            return_report=True,
            within_row_media=tuple(args.within_row_media),
            progress=True,
            engine=args.engine,
            **params,
        )
        _write(result, args.output)
    if args.report:
        _write_report(report, args.report)
    print(
        f"{args.method}: {report.num_rows} rows, {report.num_kept} kept, {report.num_removed} duplicates "
        f"in {report.num_duplicate_clusters} clusters; wrote {len(result)} rows to {args.output}"
    )
    return 0
