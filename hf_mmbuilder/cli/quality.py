"""``hf-mmbuilder quality``: PII redaction, stats and quality filters over a data file, with the
quality report (JSON and Markdown) and the kept / dropped rows as Parquet."""

from __future__ import annotations

import argparse

from ..ops import ComputeStats, QualityFilter, RedactPII, apply_filters
from ..synthesis.report import quality_report
from ._arguments import add_alias, add_input_arguments, add_option_argument, parse_options
from ._io import read_dataset, write_report

EXAMPLES = """examples:
  hf-mmbuilder quality --from llava llava.json --report report.json
  hf-mmbuilder quality --from sharegpt data.json --min-text-len 20 --languages en zh --kept kept.parquet --dropped dropped.parquet
  hf-mmbuilder quality --from mmc4 docs.jsonl --no-redact --media-stats --min-image-size 64 --max-aspect-ratio 4 --report report.md
"""


def register(subparsers) -> None:
    """Add the ``quality`` sub-command.

    Example:
        >>> import argparse
        >>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
    """
    parser = subparsers.add_parser(
        "quality",
        help="redact PII, compute stats, filter and report quality",
        description="Load INPUT (any supported --from format), redact PII, compute the __dj__stats__ column, apply the quality "
                    "filters and write the quality report; optionally the kept and dropped rows (with reasons) as Parquet.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="data file(s) or glob pattern(s)")
    # Required, but checked in run(): argparse would not count the deprecated --format as giving it.
    inputs = add_input_arguments(parser, from_help="source format of INPUT (required)")
    add_alias(parser, "--format", inputs["from"])
    parser.add_argument("--report", default=None, metavar="PATH", help="write the report (.json, or .md for Markdown); default: print Markdown")
    parser.add_argument("--kept", default=None, metavar="PARQUET", help="write the kept rows")
    parser.add_argument("--dropped", default=None, metavar="PARQUET", help="write the dropped rows with their __dj__filter__ reasons")
    parser.add_argument("--no-redact", dest="redact", action="store_false", help="skip PII redaction")
    parser.add_argument("--urls", action="store_true", help="also redact URLs")
    media_stats = parser.add_argument("--media-stats", action="store_true",
                                      help="read media headers into the stats (sizes, durations, unreadable files)")
    add_alias(parser, "--check-media", media_stats)
    parser.add_argument("--min-text-len", type=int, default=None)
    parser.add_argument("--max-text-len", type=int, default=None)
    parser.add_argument("--languages", nargs="+", default=None, metavar="CODE", help="allowed language codes")
    parser.add_argument("--max-word-rep-ratio", type=float, default=None)
    parser.add_argument("--min-image-size", type=int, default=None, metavar="PIXELS", help="minimum width and height")
    parser.add_argument("--min-image-width", type=int, default=None, metavar="PIXELS", help="minimum width (overrides --min-image-size)")
    parser.add_argument("--min-image-height", type=int, default=None, metavar="PIXELS", help="minimum height (overrides --min-image-size)")
    parser.add_argument("--max-aspect-ratio", type=float, default=None)
    parser.add_argument("--min-quality", type=float, default=None, help="minimum mean dimension score (0..1)")
    add_option_argument(parser, "any other QualityFilter field (e.g. min_lang_score=0.5)")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run the ``quality`` command; returns the exit code.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["quality", "--from", "llava", "llava.json", "--report", "r.md"])  # doctest: +SKIP
        0
    """
    if args.source_format is None:
        raise ValueError("--from FORMAT is required: the source format of INPUT")
    width = args.min_image_width if args.min_image_width is not None else args.min_image_size
    height = args.min_image_height if args.min_image_height is not None else args.min_image_size
    quality = QualityFilter(**{
        "min_text_len": args.min_text_len, "max_text_len": args.max_text_len, "languages": args.languages,
        "max_word_rep_ratio": args.max_word_rep_ratio, "min_image_width": width, "min_image_height": height,
        "max_aspect_ratio": args.max_aspect_ratio, "min_quality": args.min_quality, **parse_options(args.options),
    })
    with read_dataset(args, args.inputs) as ds:
        if args.redact:
            ds = ds.map(RedactPII(urls=args.urls), batched=True, num_proc=args.num_proc, desc="PII")
        ds = ds.map(ComputeStats(media=args.media_stats or quality.checks_images), batched=True, num_proc=args.num_proc, desc="stats")
        result = apply_filters(ds, quality, num_proc=args.num_proc)
        report = quality_report(ds, result, quality)
        if args.kept:
            result.kept.to_parquet(args.kept)
        if args.dropped:
            result.dropped.to_parquet(args.dropped)
    if args.report is None:
        print(report.to_markdown())
    else:
        write_report(report, args.report)
    print(f"{len(result.kept):,} kept, {len(result.dropped):,} dropped {result.reasons}")
    return 0
