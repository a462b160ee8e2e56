"""The ``hf-mmbuilder`` command line.

Each sub-command lives in its own module of ``hf_mmbuilder/commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it;
this file only discovers them, so features add commands without touching a shared file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command found in ``hf_mmbuilder.commands``.

    Example:
        >>> "convert" in build_parser().format_help()
        True
    """
    parser = argparse.ArgumentParser(
        prog="hf-mmbuilder",
        description="Build multimodal instruction datasets: convert, dedup, select, publish.",
        epilog="Example: hf-mmbuilder convert --from llava --to dj llava.json llava.dj.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda info: info.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 on success, 2 on a user error).

    Example:
        >>> main(["--help"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"hf-mmbuilder {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
