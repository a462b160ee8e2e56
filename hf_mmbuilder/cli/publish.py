"""``hf-mmbuilder publish``: split, card, shard and publish a dataset to a folder and/or the Hub."""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from ._arguments import add_alias, add_input_arguments
from ._io import read_dataset

EPILOG = """Example:
  hf-mmbuilder publish --from llava llava.json --media-root images/ \\
      --split-ratio train=0.8,validation=0.1,test=0.1 --seed 0 --card card.yaml \\
      --local-dir out/llava-clean --repo-id my-org/llava-clean --dry-run

card.yaml holds CardSpec fields: license, language, sources, history, sections, template, ...

Publishing never deletes files it did not write: in --local-dir only its README.md, assets/ plots
and data shards are replaced; on the Hub only the stale shards of the configs and splits published
and stale plots are deleted (--prune deletes every other file of the revision too).
"""


def parse_split_ratio(text: str) -> dict:
    """``"train=0.8,test=0.2"`` -> ``{"train": 0.8, "test": 0.2}``.

    Example:
        >>> parse_split_ratio("train=0.9,test=0.1")
        {'train': 0.9, 'test': 0.1}
    """
    ratios = {}
    for item in text.split(","):
        name, separator, value = item.partition("=")
        try:
            ratios[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--split-ratio: {item!r} is not name=ratio") from None
        if not separator:
            raise ValueError(f"--split-ratio: {item!r} is not name=ratio")
    return ratios


def register(subparsers) -> None:
    """Add the ``publish`` sub-command.

    Example:
        >>> import argparse
        >>> register(argparse.ArgumentParser().add_subparsers())
    """
    parser = subparsers.add_parser(
        "publish", help="split, card, shard and publish a dataset (local folder and/or Hub)",
        description="Publish a dataset with seeded group-aware splits, a generated card and Parquet shards.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="data files of --from FORMAT, DJ rows, or one save_to_disk folder")
    add_input_arguments(parser)
    parser.add_argument("--repo-id", help="Hub dataset repo, namespace/name")
    parser.add_argument("--local-dir", help="write the repo layout to this folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a --local-dir holding files publish did not write (they are kept; only "
                             "files with the names publish writes are replaced)")
    split_ratio = parser.add_argument("--split-ratio", default="train=1", type=parse_split_ratio, help="ratios, e.g. train=0.8,test=0.2")
    add_alias(parser, "--split", split_ratio)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group-by", default="auto",
                        help="'auto' (cluster_id + media files), 'none', or comma-separated columns")
    parser.add_argument("--media-identity", choices=("content", "path"), default="content",
                        help="group rows sharing a media file by its bytes (default; the path where the file cannot "
                             "be read) or by its path only")
    parser.add_argument("--near-duplicate-radius", type=int, metavar="BITS",
                        help="also group rows whose images' perceptual hashes are within this Hamming distance")
    parser.add_argument("--stratify-by", help="column to stratify on")
    parser.add_argument("--config-by", help="also publish one config per value of this column")
    parser.add_argument("--card", help="YAML file of card fields (license, sources, history, sections, template)")
    embed = parser.add_argument("--no-embed-media", dest="embed_media", action="store_false",
                                help="publish media paths instead of embedding bytes")
    add_alias(parser, "--reference-media", embed)
    parser.add_argument("--max-shard-size", default="500MB")
    parser.add_argument("--keep-empty-columns", action="store_true",
                        help="also publish columns empty in every row (left out by default, listed in the card)")
    # Without --private the namespace's default visibility applies (None), as push_to_hub does.
    parser.add_argument("--private", action="store_true", default=None,
                        help="make a new repo private (default: the namespace's default visibility)")
    parser.add_argument("--revision", help="branch to commit to (created if needed)")
    message = parser.add_argument("--commit-message", help="commit message")
    add_alias(parser, "--message", message)
    parser.add_argument("--prune", action="store_true",
                        help="on the Hub, also delete every file of the revision this publish did not write")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the logged-in token)")
    parser.add_argument("--dry-run", action="store_true", help="print the card and the split table; write nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Run ``hf-mmbuilder publish``; returns 0, or 1 when the Hub upload failed."""
    from ..publishing import PublishError, publish

    card = None
    if args.card:
        with open(args.card, encoding="utf-8") as handle:
            card = yaml.safe_load(handle) or {}
        if not isinstance(card, dict):
            raise ValueError(f"{args.card}: the card file must be a YAML mapping of card fields")
    group_by = None if args.group_by == "none" else args.group_by if args.group_by == "auto" else args.group_by.split(",")
    with read_dataset(args, args.inputs) as dataset:
        try:
            result = publish(
                dataset, args.repo_id, split_ratio=args.split_ratio, seed=args.seed, group_by=group_by,
                stratify_by=args.stratify_by, media_identity=args.media_identity,
                near_duplicate_radius=args.near_duplicate_radius, keep_empty_columns=args.keep_empty_columns, card=card, local_dir=args.local_dir, embed_media=args.embed_media,
                max_shard_size=args.max_shard_size, config_by=args.config_by, private=args.private,
                revision=args.revision, commit_message=args.commit_message, token=args.token, overwrite=args.overwrite,
                prune=args.prune, dry_run=args.dry_run,
            )
        except PublishError as error:
            print(f"hf-mmbuilder publish: error: {error}", file=sys.stderr)
            return 1
    if args.dry_run:
        print(result.card)
    print(result.split_table)
    if result.local_dir:
        print(f"card: {os.path.join(result.local_dir, 'README.md')}")
    if result.repo_url:
        print(f"hub: {result.repo_url} @ {result.commit}" + ("" if result.changed else " (nothing changed)"))
    elif not args.dry_run and not result.changed:
        print("nothing changed")
    return 0
