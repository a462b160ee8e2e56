"""The ``hf-mmbuilder`` command line.

Each sub-command lives in its own module of this package (``hf_mmbuilder/cli/<command>.py``) and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs
it; this file only discovers them, so features add commands without touching a shared file. Modules
whose names start with ``_`` are the commands' shared helpers, not commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command module of ``hf_mmbuilder.cli``.

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
    commands = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    for command in commands:
        importlib.import_module(f"{__name__}.{command}").register(subparsers)
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
