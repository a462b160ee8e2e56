"""``hf-mmbuilder dedup``: remove exact or near-duplicate rows and write DJ JSON lines or Parquet."""

from __future__ import annotations

import argparse

from ..dedup import METHODS, dedup
from ._arguments import add_alias, add_input_arguments, add_option_argument, parse_options
from ._io import check_output, read_dataset, write_dataset, write_report

EXAMPLES = """examples:
  hf-mmbuilder dedup data.dj.jsonl dedup.dj.jsonl
  hf-mmbuilder dedup --method minhash --jaccard-threshold 0.7 --report report.json data.dj.jsonl dedup.parquet
  hf-mmbuilder dedup --method minhash --compat data_juicer demo.jsonl demo.dedup.jsonl
  hf-mmbuilder dedup --from llava --on text images --return-clusters llava.json clusters.parquet
  hf-mmbuilder dedup --method phash --option radius=4 --option hash='"dhash"' data.dj.jsonl out.jsonl
  hf-mmbuilder dedup --method minhash --engine ray --address head-node:6379 data.parquet dedup.parquet
"""

_OUTPUT_SUFFIXES = (".jsonl", ".parquet")

# Parameters of one method (flag dest -> API keyword): giving one to the other method is a user error.
_MINHASH_FLAGS = {"jaccard_threshold": "jaccard_threshold", "num_permutations": "num_permutations", "window_size": "window_size",
                  "tokenization": "tokenization", "num_bands": "num_bands", "num_rows_per_band": "num_rows_per_band",
                  "ignore_pattern": "ignore_pattern", "seed": "seed", "compat": "mode", "sketch": "sketch"}
_EXACT_FLAGS = {"on": "on", "strip": "strip", "drop_non_alnum": "drop_non_alnum", "drop_special_tokens": "drop_special_tokens"}
# Parameters both text methods take.
_TEXT_FLAGS = {"lowercase": "lowercase"}


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
            "Load INPUT (DJ .jsonl/.json/.parquet/.arrow files, a save_to_disk folder, or any file of --from), remove "
            "duplicate rows and write OUTPUT as DJ JSON lines (.jsonl) or Parquet (.parquet)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s) or glob pattern(s)")
    parser.add_argument("output", metavar="OUTPUT", help="output file: .jsonl (DJ JSON lines) or .parquet")
    inputs = add_input_arguments(parser)
    add_alias(parser, "--format", inputs["from"])
    parser.add_argument("--method", choices=METHODS, default="exact",
                        help="dedup method (default: exact, the safer default: only identical rows; --method minhash for near duplicates)")
    parser.add_argument("--column", default=None, help="column to compare (default: text; images for phash)")
    parser.add_argument("--keep-max", default=None, metavar="COLUMN", help="keep the row maximising this numeric column per cluster (default: first row)")
    clusters = parser.add_argument("--return-clusters", action="store_true",
                                   help="keep every row and add an int64 cluster_id column instead of dropping duplicates")
    add_alias(parser, "--clusters", clusters)
    parser.add_argument("--report", default=None, metavar="PATH", help="write the dedup report (.json, or .md for Markdown)")
    parser.add_argument("--within-row-media", nargs="+", default=(), metavar="COLUMN", help="first drop files repeated inside a row (e.g. images)")
    text = parser.add_argument_group("exact and minhash")
    text.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                      help="lowercase text before hashing (default: exact no, minhash yes)")
    minhash = parser.add_argument_group("minhash (Data-Juicer's document_minhash_deduplicator names)")
    threshold = minhash.add_argument("--jaccard-threshold", type=float, default=None, help="Jaccard threshold (default 0.7)")
    add_alias(minhash, "--threshold", threshold)
    permutations = minhash.add_argument("--num-permutations", type=int, default=None, help="permutations (default 256)")
    add_alias(minhash, "--num-perm", permutations)
    minhash.add_argument("--window-size", type=int, default=None, help="shingle size (default 5)")
    minhash.add_argument("--tokenization", choices=("space", "character"), default=None)
    minhash.add_argument("--num-bands", type=int, default=None)
    rows_per_band = minhash.add_argument("--num-rows-per-band", type=int, default=None)
    add_alias(minhash, "--rows-per-band", rows_per_band)
    minhash.add_argument("--ignore-pattern", default=None, metavar="REGEX", help="remove matches of this pattern before shingling")
    minhash.add_argument("--seed", type=int, default=None, help="permutation seed (default 42)")
    compat = minhash.add_argument("--compat", choices=("data_juicer",), default=None,
                                  help="data_juicer: Data-Juicer's hashes bit for bit (default: the faster hashes)")
    add_alias(minhash, "--mode", compat, choices=("fast", "data_juicer"), values={"fast": None})
    minhash.add_argument("--sketch", choices=("minhash", "oph"), default=None, help="oph: O(n+k) sketch for long documents")
    exact = parser.add_argument_group("exact")
    exact.add_argument("--on", nargs="+", default=None, metavar="PART", help="key parts: text and/or images, audios, videos (default: text)")
    exact.add_argument("--no-strip", dest="strip", action="store_false", default=None, help="keep leading and trailing whitespace")
    exact.add_argument("--drop-non-alnum", action="store_true", default=None, help="drop non-letter/digit characters before hashing")
    exact.add_argument("--drop-special-tokens", action="store_true", default=None, help="drop DJ special tokens before hashing")
    option = add_option_argument(parser, "any other method parameter (e.g. radius=4 for phash)")
    add_alias(parser, "--param", option)
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="where minhash clusters are computed (default: local)")
    parser.add_argument("--address", default=None, help="Ray cluster address for --engine ray, e.g. HOST:6379 or auto (default: RAY_ADDRESS, else a local Ray)")
    parser.set_defaults(func=run)


def _params(args) -> dict:
    own = {"minhash": {**_MINHASH_FLAGS, **_TEXT_FLAGS}, "exact": {**_EXACT_FLAGS, **_TEXT_FLAGS}}.get(args.method, {})
    params = {keyword: getattr(args, dest) for dest, keyword in own.items() if getattr(args, dest) is not None}
    for other_method, flags in (("minhash", _MINHASH_FLAGS), ("exact", _EXACT_FLAGS)):
        misplaced = [dest for dest in flags if dest not in own and getattr(args, dest) is not None]
        if misplaced:
            raise ValueError(f"option(s) {', '.join(misplaced)} belong to --method {other_method}, not {args.method}")
    params.update(parse_options(args.options))
    if "on" in params:
        params["on"] = tuple(params["on"])
    return params


def run(args) -> int:
    """Dedup ``args.inputs`` into ``args.output``; prints the counts and writes the report.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["dedup", "in.dj.jsonl", "out.dj.jsonl"])  # doctest: +SKIP
        exact: 14 rows, 13 kept, 1 duplicates in 1 clusters; wrote 13 rows to out.dj.jsonl
        0
    """
    check_output(args.output, _OUTPUT_SUFFIXES)
    params = _params(args)
    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is the Ray cluster of --engine ray; add --engine ray")
    if args.engine == "ray":
        from ..ray_engine import init

        init(args.address)
    with read_dataset(args, args.inputs) as dataset:
        result, report = dedup(
            dataset,
            args.method,
            column=args.column,
            keep_max=args.keep_max,
            return_clusters=args.return_clusters,
            return_report=True,
            within_row_media=tuple(args.within_row_media),
            progress=True,
            engine=args.engine,
            **params,
        )
        write_dataset(result, args.output)
    if args.report:
        write_report(report, args.report)
    print(
        f"{args.method}: {report.num_rows} rows, {report.num_kept} kept, {report.num_removed} duplicates "
        f"in {report.num_duplicate_clusters} clusters; wrote {len(result)} rows to {args.output}"
    )
    return 0
