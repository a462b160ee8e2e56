"""The one dataset reader and the one writer of the CLI, and the report writer.

Every command reads its INPUT through ``read_dataset`` (the shared input group of
``cli._arguments``) and writes rows through ``write_dataset``, so the same INPUT and OUTPUT mean
the same thing in every command.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator, Optional, Sequence

import datasets
import orjson

from ..formats.exporter import AtomicWriter, iter_rows
from ..formats.loading import load
from ._arguments import parse_options

# Suffix of Data-Juicer row files -> the datasets builder that reads them.
_ROW_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow"}


@contextlib.contextmanager
def read_dataset(args, inputs: Sequence[str], options: Optional[dict] = None) -> Iterator[datasets.Dataset]:
    """The dataset ``inputs`` name, read with the shared input arguments of ``args``.

    With ``--from FORMAT``: ``hf_mmbuilder.load`` of the files (``--media-root``, ``--on-error``,
    ``--num-proc``, ``--load-option``, then the command's own loader ``options``). Without: one
    ``save_to_disk`` folder, or Data-Juicer rows in ``.parquet``, ``.jsonl``/``.json`` or ``.arrow``
    files (one kind per call). The datasets cache is ``--cache-dir``, else a temporary folder
    removed when the block ends.

    Example:
        >>> import argparse
        >>> from datasets import Dataset
        >>> _ = Dataset.from_dict({"text": ["a", "b"]}).to_json("rows.jsonl")
        >>> args = argparse.Namespace(source_format=None, cache_dir=None, num_proc=None, load_options=[], media_root=None)
        >>> with read_dataset(args, ["rows.jsonl"]) as ds:
        ...     ds["text"][:]
        ['a', 'b']
    """
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or scratch
        if args.source_format is not None:
            config = parse_options(args.load_options, "--load-option")
            if args.media_root is not None:
                config["media_root"] = args.media_root
            yield load(args.source_format, list(inputs), split="train", num_proc=args.num_proc, cache_dir=cache_dir,
                       on_error=args.on_error, **{**config, **(options or {})})
            return
        if args.load_options or args.media_root is not None or options:
            raise ValueError("--media-root and loader options apply to files of --from FORMAT")
        if len(inputs) == 1 and os.path.isdir(inputs[0]):
            yield datasets.load_from_disk(inputs[0])
            return
        builders = {_ROW_BUILDERS.get(os.path.splitext(path)[1]) for path in inputs}
        if len(builders) != 1 or None in builders:
            raise ValueError(
                f"cannot tell the format of {', '.join(inputs)}: give --from FORMAT, or Data-Juicer rows "
                f"(.parquet, .jsonl/.json or .arrow files of one kind, or one save_to_disk folder)"
            )
        missing = [path for path in inputs if not any(char in path for char in "*?[") and not os.path.exists(path)]
        if missing:
            raise FileNotFoundError(f"no such dataset file or folder: {', '.join(missing)}")
        yield datasets.load_dataset(builders.pop(), data_files=list(inputs), split="train", cache_dir=cache_dir,
                                    num_proc=args.num_proc)


def check_output(path: str, suffixes: Sequence[str]) -> None:
    """Refuse an OUTPUT whose suffix is not one of ``suffixes`` (before any work is done).

    Example:
        >>> check_output("out.csv", (".jsonl", ".parquet"))
        Traceback (most recent call last):
            ...
        ValueError: output must end in .jsonl or .parquet, not 'out.csv'
    """
    if os.path.splitext(path)[1] not in suffixes:
        raise ValueError(f"output must end in {' or '.join(suffixes)}, not {path!r}")


def write_dataset(ds: datasets.Dataset, path: str) -> None:
    """Write ``ds`` to ``path``: ``.parquet``, ``.jsonl``/``.json`` (Data-Juicer JSON lines) or,
    for any other path, a ``save_to_disk`` folder. Files appear only when complete.

    Example:
        >>> from datasets import Dataset
        >>> write_dataset(Dataset.from_dict({"text": ["é"]}), "out.jsonl")
        >>> open("out.jsonl", encoding="utf-8").read()
        '{"text":"é"}\\n'
    """
    suffix = os.path.splitext(path)[1]
    if suffix not in (".parquet", ".jsonl", ".json"):
        ds.save_to_disk(path)
        return
    with AtomicWriter(path) as handle:
        if suffix == ".parquet":
            ds.to_parquet(handle)
            return
        for row in iter_rows(ds):
            handle.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def write_report(report, path: str) -> None:
    """Write a report (dedup's or quality's): Markdown for ``.md``, otherwise indented JSON.

    Example:
        >>> class Report:
        ...     def to_dict(self): return {"rows": 2}
        ...     def to_markdown(self): return "**Rows:** 2"
        >>> write_report(Report(), "report.json"); open("report.json").read()
        '{\\n  "rows": 2\\n}\\n'
    """
    with AtomicWriter(path) as handle:
        if path.endswith(".md"):
            handle.write(report.to_markdown().encode())
        else:
            handle.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
