"""``hf-mmbuilder convert``: load a file of one format and write it in another (DJ included)."""

from __future__ import annotations

import argparse
import json
import tempfile

from ..export import export
from ..registry import available_formats, load

EXAMPLES = """examples:
  hf-mmbuilder convert --from llava --to dj llava_v1_5_mix665k.json mix665k.dj.jsonl
  hf-mmbuilder convert --from llava --to llava --option image_special_token='"<image>"' in.json out.json
  hf-mmbuilder convert --from llava --to dj --on-error skip --num-proc 2 in.json out.dj.jsonl
"""


def register(subparsers) -> None:
    """Add the ``convert`` sub-command.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    """
    formats = available_formats()
    parser = subparsers.add_parser(
        "convert",
        help="convert a dataset file between formats (source formats and Data-Juicer's DJ format)",
        description="Load INPUT (one or more files of --from) and write OUTPUT in --to, losslessly.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="source", required=True, choices=formats, help="format of INPUT")
    parser.add_argument("--to", dest="target", required=True, choices=formats, help="format of OUTPUT (dj = Data-Juicer JSON lines)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s) or glob pattern(s)")
    parser.add_argument("output", metavar="OUTPUT", help="output file (.json or .jsonl)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a loader/exporter option, value as JSON (e.g. split_chunk=true); repeatable",
    )
    parser.add_argument("--on-error", choices=("raise", "skip", "keep"), default="raise", help="bad records: stop, skip into a rejects file, or keep flagged")
    parser.add_argument("--num-proc", type=int, default=None, help="worker processes for loading")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder (default: a temporary folder)")
    parser.set_defaults(func=run)


def _options(pairs: list) -> dict:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--option takes NAME=JSON, got {pair!r}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def run(args) -> int:
    """Convert ``args.inputs`` to ``args.output``; prints counts and any rejects file."""
    options = _options(args.option)
    with tempfile.TemporaryDirectory() as scratch:
        dataset = load(
            args.source,
            args.inputs,
            split="train",
            num_proc=args.num_proc,
            cache_dir=args.cache_dir or scratch,
            on_error=args.on_error,
            **options,
        )
        export_options = options if args.target == args.source else {}
        written = export(
            dataset,
            args.target,
            args.output,
            on_error="skip" if args.on_error == "skip" else "raise",
            progress=True,
            **export_options,
        )
    for path, count in written.items():
        print(f"wrote {count} records to {path} (from {dataset.num_rows} loaded rows)")
    return 0
