"""``hf-mmbuilder convert``: load a file of one format and write it in another (DJ included)."""

from __future__ import annotations

import argparse

from ..formats.catalog import available_formats
from ..formats.exporting import export
from ._arguments import add_input_arguments, add_option_argument, parse_options
from ._io import read_dataset

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
    parser = subparsers.add_parser(
        "convert",
        help="convert a dataset file between formats (source formats and Data-Juicer's DJ format)",
        description="Load INPUT (one or more files of --from) and write OUTPUT in --to, losslessly.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s) or glob pattern(s)")
    parser.add_argument("output", metavar="OUTPUT", help="output file (.json or .jsonl)")
    add_input_arguments(parser, from_required=True, from_help="format of INPUT")
    parser.add_argument("--to", dest="target", required=True, choices=available_formats(), help="format of OUTPUT (dj = Data-Juicer JSON lines)")
    add_option_argument(parser, "a loader option, and an exporter option when --to is --from (e.g. split_chunk=true)")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Convert ``args.inputs`` to ``args.output``; prints counts and any rejects file."""
    options = parse_options(args.options)
    with read_dataset(args, args.inputs, options) as dataset:
        export_options = options if args.target == args.source_format else {}
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
