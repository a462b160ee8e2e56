"""``hf-mmbuilder quality``: PII redaction, stats and quality filters over a data file, with the
quality report (JSON and Markdown) and the kept / dropped rows as Parquet."""

from __future__ import annotations

import argparse
import os

from ..ops import ComputeStats, QualityFilter, RedactPII, apply_filters
from ..registry import available_formats, load
from ..synthesis.report import quality_report

EXAMPLES = """examples:
  hf-mmbuilder quality --format llava llava.json --report report.json
  hf-mmbuilder quality --format sharegpt data.json --min-text-len 20 --languages en zh --kept kept.parquet --dropped dropped.parquet
  hf-mmbuilder quality --format mmc4 docs.jsonl --no-redact --check-media --min-image-size 64 --max-aspect-ratio 4 --report report.md
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
        description="Load INPUT (any supported --format), redact PII, compute the __dj__stats__ column, apply the quality "
                    "filters and write the quality report; optionally the kept and dropped rows (with reasons) as Parquet.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT", help="data file")
    parser.add_argument("--format", required=True, choices=available_formats(), help="source format of INPUT")
    parser.add_argument("--report", default=None, metavar="PATH", help="write the report (.json, or .md for Markdown); default: print Markdown")
    parser.add_argument("--kept", default=None, metavar="PARQUET", help="write the kept rows")
    parser.add_argument("--dropped", default=None, metavar="PARQUET", help="write the dropped rows with their __dj__filter__ reasons")
    parser.add_argument("--no-redact", dest="redact", action="store_false", help="skip PII redaction")
    parser.add_argument("--urls", action="store_true", help="also redact URLs")
    parser.add_argument("--check-media", action="store_true", help="read media headers (sizes, durations, unreadable files)")
    parser.add_argument("--min-text-len", type=int, default=None)
    parser.add_argument("--max-text-len", type=int, default=None)
    parser.add_argument("--languages", nargs="+", default=None, metavar="CODE", help="allowed language codes")
    parser.add_argument("--max-word-rep-ratio", type=float, default=None)
    parser.add_argument("--min-image-size", type=int, default=None, metavar="PIXELS", help="minimum width and height")
    parser.add_argument("--max-aspect-ratio", type=float, default=None)
    parser.add_argument("--min-quality", type=float, default=None, help="minimum mean dimension score (0..1)")
    parser.add_argument("--num-proc", type=int, default=None)
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run the ``quality`` command; returns the exit code.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["quality", "--format", "llava", "llava.json", "--report", "r.md"])  # doctest: +SKIP
        0
    """
    if not os.path.exists(args.input):
        raise ValueError(f"{args.input}: no such file")
    ds = load(args.format, args.input, split="train")
    if args.redact:
        ds = ds.map(RedactPII(urls=args.urls), batched=True, num_proc=args.num_proc, desc="PII")
    quality = QualityFilter(min_text_len=args.min_text_len, max_text_len=args.max_text_len, languages=args.languages,
                            max_word_rep_ratio=args.max_word_rep_ratio, min_image_width=args.min_image_size,
                            min_image_height=args.min_image_size, max_aspect_ratio=args.max_aspect_ratio, min_quality=args.min_quality)
    ds = ds.map(ComputeStats(media=args.check_media or quality.checks_images), batched=True, num_proc=args.num_proc, desc="stats")
    result = apply_filters(ds, quality, num_proc=args.num_proc)
    report = quality_report(ds, result, quality)
    if args.report is None:
        print(report.to_markdown())
    elif args.report.endswith(".md"):
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(report.to_markdown())
    else:
        report.to_json(args.report)
    if args.kept:
        result.kept.to_parquet(args.kept)
    if args.dropped:
        result.dropped.to_parquet(args.dropped)
    print(f"{len(result.kept):,} kept, {len(result.dropped):,} dropped {result.reasons}")
    return 0
