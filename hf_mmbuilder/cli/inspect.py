"""``hf-mmbuilder inspect``: the self-contained HTML inspection report of a dataset."""

from __future__ import annotations

import argparse

import numpy as np

from ..duplicates.removal import METHODS
from ..inspection import inspect
from ._arguments import add_input_arguments
from ._io import read_dataset

EPILOG = """Examples:
  hf-mmbuilder inspect --from llava llava.json report/
  hf-mmbuilder inspect clusters.parquet report/ --clusters cluster_id --rejects rejects.jsonl dropped.parquet
  hf-mmbuilder inspect --from mmc4 docs.jsonl report/ --clusters minhash --sample 500
  hf-mmbuilder inspect data.parquet report/ --selection-file chosen.npy --embeddings clip_embedding
Open REPORT/index.html in a browser: no server and no network are needed."""


def register(subparsers) -> None:
    """Add the ``inspect`` sub-command.

    Example:
        >>> import argparse
        >>> register(argparse.ArgumentParser().add_subparsers())
    """
    parser = subparsers.add_parser(
        "inspect",
        help="write an HTML report to look at the rows, duplicates, selection and rejects",
        description="Write a static HTML report of DATA into OUT_DIR (index.html plus local assets): the overview of every "
                    "row, a sample rendered with its media, duplicate clusters, the selection and the rejects.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="DATA", help="a save_to_disk folder, .parquet / .jsonl / .json / .arrow files, or files of --from")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the report's folder")
    add_input_arguments(parser)
    parser.add_argument("--clusters", metavar="COLUMN|METHOD",
                        help=f"duplicate clusters: a cluster id column, or a dedup method to compute them ({', '.join(METHODS)}); "
                             "default: the cluster_id column when present")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--selection", metavar="COLUMN", help="boolean column of the selected rows")
    selection.add_argument("--selection-file", metavar="NPY", help="a .npy array of selected row numbers (select's order) or a mask")
    parser.add_argument("--embeddings", default="embedding", help="embedding column the selection is projected from (default: embedding)")
    parser.add_argument("--rejects", nargs="+", default=None, metavar="PATH",
                        help="loader rejects files (.jsonl), dropped rows (.parquet with __dj__filter__) or save_to_disk folders of them")
    parser.add_argument("--sample", type=int, default=2000, help="rows rendered in the Rows section (default: 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--title", help="the page's title (default: the row count)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder holding other files (nothing else is deleted)")
    parser.set_defaults(func=run)


def _rejects(paths):
    """Rejects files as given; dropped rows in Parquet are read as a dataset."""
    if paths is None:
        return None
    import datasets

    return [datasets.Dataset.from_parquet(path) if path.endswith(".parquet") else path for path in paths]


def run(args) -> int:
    """Read DATA, write the report; returns 0.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["inspect", "--from", "llava", "llava.json", "report"])  # doctest: +SKIP
        report of 120 rows (120 shown) -> report/index.html
        0
    """
    selection = np.load(args.selection_file) if args.selection_file else args.selection
    with read_dataset(args, args.inputs) as ds:
        summary = inspect(ds, args.out_dir, clusters=args.clusters, selection=selection, rejects=_rejects(args.rejects),
                          embeddings=args.embeddings, sample=args.sample, seed=args.seed, title=args.title, overwrite=args.overwrite)
    print(f"report of {summary['rows']:,} rows ({summary['rows_shown']:,} shown) -> {summary['path']}/index.html")
    return 0
