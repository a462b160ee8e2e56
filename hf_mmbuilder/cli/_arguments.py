"""The arguments every command shares, and the deprecated spellings of renamed flags.

One vocabulary across the commands (issue 14): a flag is its API parameter with ``_`` -> ``-``,
Data-Juicer's name where Data-Juicer has one; ``--from`` names the input format wherever a dataset
is read. An old spelling stays for one release as a hidden alias that warns on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..formats.catalog import available_formats

REMOVAL = "the old spelling goes in the next minor release"


class DeprecatedFlag(argparse.Action):
    """A hidden old spelling of another option: warns once on stderr, then acts as that option.

    ``values`` maps an old value to its new one, for flags whose values were renamed too.

    Example (the warning goes to stderr):
        >>> parser = argparse.ArgumentParser(prog="tool")
        >>> new = parser.add_argument("--from", dest="source_format")
        >>> _ = parser.add_argument("--format", action=DeprecatedFlag, target=new)
        >>> parser.parse_args(["--format", "llava"]) == parser.parse_args(["--from", "llava"])
        True
    """

    def __init__(self, option_strings, dest, target: argparse.Action, choices=None, values: dict | None = None, **kwargs):
        super().__init__(option_strings, target.dest, nargs=target.nargs, const=target.const, type=target.type,
                         choices=choices if choices is not None else target.choices, metavar=target.metavar,
                         help=argparse.SUPPRESS)
        self.target = target
        self.values = values or {}
        self.warned = False

    def __call__(self, parser, namespace, values, option_string=None):
        if not self.warned:
            print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.target.option_strings[0]} ({REMOVAL})",
                  file=sys.stderr)
            self.warned = True
        self.target(parser, namespace, self.values.get(values, values) if isinstance(values, str) else values, option_string)


def add_alias(parser, old: str, target: argparse.Action, **kwargs) -> None:
    """Add ``old`` as a hidden deprecated spelling of ``target`` (an action ``add_argument`` returned)."""
    parser.add_argument(old, action=DeprecatedFlag, target=target, **kwargs)


def parse_options(pairs: list, flag: str = "--option") -> dict:
    """``NAME=JSON`` pairs -> keyword arguments; a value that is not JSON stays a string.

    Example:
        >>> parse_options(["radius=4", 'hash_method="dhash"', "column=text"])
        {'radius': 4, 'hash_method': 'dhash', 'column': 'text'}
        >>> parse_options(["radius"])
        Traceback (most recent call last):
            ...
        ValueError: --option takes NAME=JSON, got 'radius'
    """
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"{flag} takes NAME=JSON, got {pair!r}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def add_option_argument(parser, help: str) -> argparse.Action:
    """``--option NAME=JSON`` (repeatable): the command's free keyword arguments, as in the API."""
    return parser.add_argument("--option", dest="options", action="append", default=[], metavar="NAME=JSON",
                               help=f"{help}, value as JSON; repeatable")


def add_input_arguments(parser, *, from_required: bool = False, from_help: str | None = None) -> dict:
    """The shared input group of every command that reads a dataset; returns its actions by name.

    Without ``--from``, INPUT is Data-Juicer rows: ``.parquet``, ``.jsonl``/``.json`` or ``.arrow``
    files, or one folder written by ``save_to_disk`` (read by ``cli._io.read_dataset``).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> sorted(add_input_arguments(parser))
        ['cache_dir', 'from', 'load_option', 'media_root', 'num_proc', 'on_error']
        >>> args = parser.parse_args(["--from", "llava", "--load-option", "split_chunk=true"])
        >>> args.source_format, args.load_options, args.on_error
        ('llava', ['split_chunk=true'], 'raise')
    """
    group = parser.add_argument_group("input")
    return {
        "from": group.add_argument(
            "--from", dest="source_format", required=from_required, choices=available_formats(),
            help=from_help or "source format of INPUT (default: Data-Juicer rows by suffix: .parquet, .jsonl/.json, "
                              ".arrow, or a save_to_disk folder)"),
        "media_root": group.add_argument("--media-root", help="folder relative media paths are read from (default: each file's folder)"),
        "on_error": group.add_argument("--on-error", choices=("raise", "skip", "keep"), default="raise",
                                       help="bad records: stop, skip into a rejects file, or keep flagged (default: raise)"),
        "num_proc": group.add_argument("--num-proc", type=int, default=None, help="worker processes"),
        "cache_dir": group.add_argument("--cache-dir", default=None, help="datasets cache folder (default: a temporary folder)"),
        "load_option": group.add_argument("--load-option", dest="load_options", action="append", default=[], metavar="NAME=JSON",
                                          help="a loader option of --from, value as JSON; repeatable"),
    }
