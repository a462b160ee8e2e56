"""``hf-mmbuilder select``: keep the k most diverse / most useful rows of a dataset."""

from __future__ import annotations

import argparse

import numpy as np

from ._arguments import add_input_arguments
from ._io import read_dataset, write_dataset

EPILOG = """Examples:
  hf-mmbuilder select data.parquet subset.parquet -k 500 --embeddings clip_embedding
  hf-mmbuilder select --from llava llava.json subset.parquet -k 500 --embeddings model:./clip --modality image
  hf-mmbuilder select saved_dataset/ subset.jsonl -k 1000 --method cluster --n-clusters 50 --quota proportional
  hf-mmbuilder select data.jsonl subset/ -k 200 --method active --embeddings-file emb.npy --uncertainty entropy --gamma 0.5
"""


def register(subparsers) -> None:
    """Add the ``select`` sub-command.

    Example:
        >>> import argparse
        >>> register(argparse.ArgumentParser().add_subparsers())
    """
    parser = subparsers.add_parser(
        "select",
        help="choose a diverse / informative subset (k-center, cluster-balanced, active learning)",
        description="Choose k rows by their embeddings and write them, in selection order.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT", help="a save_to_disk folder, a .parquet / .jsonl / .json / .arrow file, or a file of --from")
    parser.add_argument("output", metavar="OUTPUT", help="a .parquet or .jsonl file, or a folder for save_to_disk")
    add_input_arguments(parser)
    parser.add_argument("-k", type=int, required=True, help="rows to keep")
    parser.add_argument("--method", choices=("kcenter", "cluster", "active"), default="kcenter")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--embeddings", default="embedding", help="embedding column (default: embedding), or model:<folder or Hub id> to embed on the fly")
    source.add_argument("--embeddings-file", help="a .npy (n, d) matrix, row i = dataset row i")
    parser.add_argument("--modality", choices=("text", "image", "video", "audio"), default="text",
                        help="what --embeddings model:<id> embeds (default: text)")
    parser.add_argument("--metric", choices=("cosine", "l2"), default="cosine")
    parser.add_argument("--dtype", choices=("float32", "float16"), help="matrix storage (float16 halves memory traffic)")
    parser.add_argument("--start", help="boolean column marking rows already selected")
    parser.add_argument("--weights", help="kcenter: column of per-row weights (weighted k-center)")
    parser.add_argument("--uncertainty", help="active: column of per-row uncertainty")
    parser.add_argument("--alpha", type=float, default=1.0, help="active: weight of uncertainty")
    parser.add_argument("--beta", type=float, default=1.0, help="active: weight of diversity")
    parser.add_argument("--gamma", type=float, default=1.0, help="active: weight of representativeness")
    parser.add_argument("--knn", type=int, default=10, help="active: neighbours of the density term")
    parser.add_argument("--n-clusters", type=int, help="cluster: k-means clusters (default min(k, sqrt(n)))")
    parser.add_argument("--kmeans-init", choices=("random", "kcenter"), default="random", help="cluster: k-means seeding (kcenter keeps small clusters)")
    parser.add_argument("--quota", choices=("uniform", "proportional", "capped"), default="uniform")
    parser.add_argument("--cap", type=int, help="cluster: per-cluster maximum with --quota capped")
    parser.add_argument("--within", choices=("random", "nearest"), default="random", help="cluster: row order inside a cluster")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order-column", help="add the selection rank under this name")
    parser.add_argument("--score-column", help="add the score at selection under this name")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Read, select, write; returns 0.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["select", "in.parquet", "out.parquet", "-k", "10"])  # doctest: +SKIP
        kept 10 of 120 rows (kcenter) -> out.parquet
        0
    """
    # Through the package's public name: importing the submodule first would bind
    # ``hf_mmbuilder.select`` to the module instead of the function.
    from .. import select

    embeddings = np.load(args.embeddings_file) if args.embeddings_file else args.embeddings
    with read_dataset(args, [args.input]) as ds:
        chosen = select(
            ds,
            args.k,
            args.method,
            embeddings=embeddings,
            metric=args.metric,
            dtype=args.dtype,
            start=args.start,
            weights=args.weights,
            uncertainty=args.uncertainty,
            alpha=args.alpha,
            beta=args.beta,
            gamma=args.gamma,
            knn=args.knn,
            n_clusters=args.n_clusters,
            kmeans_init=args.kmeans_init,
            quota=args.quota,
            cap=args.cap,
            within=args.within,
            seed=args.seed,
            order_column=args.order_column,
            score_column=args.score_column,
            progress=True,
            modality=args.modality,
        )
        write_dataset(chosen, args.output)
    print(f"kept {len(chosen)} of {len(ds)} rows ({args.method}) -> {args.output}")
    return 0
