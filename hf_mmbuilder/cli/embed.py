"""``hf-mmbuilder embed``: add an embedding column (image, text, video or audio) to a dataset."""

from __future__ import annotations

import argparse

from ..embedding import MODALITIES
from ._arguments import add_input_arguments
from ._io import read_dataset, write_dataset

EPILOG = """Examples:
  hf-mmbuilder embed --from llava llava.json clip.parquet --model openai/clip-vit-base-patch32 --media-root images/
  hf-mmbuilder embed rows.dj.jsonl text_vectors.parquet --model ./all-MiniLM-L6-v2 --modality text --column text_embedding
  hf-mmbuilder embed clips.parquet out/ --model ./clip --modality video --num-frames 8 --on-error skip
"""


def register(subparsers) -> None:
    """Add the ``embed`` sub-command.

    Example:
        >>> import argparse
        >>> register(argparse.ArgumentParser().add_subparsers())
    """
    parser = subparsers.add_parser(
        "embed",
        help="add an embedding column computed by a model (image, text, video, audio)",
        description="Embed each row's images, text, video frames or audio with a transformers or sentence-transformers "
                    "model (a local folder or a Hub id in the local cache) and write the rows with a fixed-size float32 "
                    "column; decoding runs on threads ahead of the model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT", help="a save_to_disk folder, a .parquet / .jsonl / .json / .arrow file, or a file of --from")
    parser.add_argument("output", metavar="OUTPUT", help="a .parquet or .jsonl file, or a folder for save_to_disk")
    add_input_arguments(parser)
    parser.add_argument("--model", required=True, help="model folder, Hub id or model:<id>")
    parser.add_argument("--modality", choices=MODALITIES, default="image")
    parser.add_argument("--column", default="embedding", help="name of the new column (default: embedding)")
    parser.add_argument("--source", help="column to read (default: images / text / videos / audios, or a column of Image values)")
    parser.add_argument("--batch-size", type=int, help="items per forward pass (default 32 on CPU, 128 on an accelerator)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU; FORCE_CPU=1 forces CPU), cpu, mps, cuda, cuda:N")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="default: float16 on accelerators, float32 on CPU")
    parser.add_argument("--reduce", choices=("mean", "first", "none"), default="mean",
                        help="several media in a row: their mean, the first, or one output row per item (none)")
    parser.add_argument("--no-normalize", dest="normalize", action="store_false", help="keep the raw vectors (default: L2-normalized)")
    parser.add_argument("--num-workers", type=int, help="decoding threads ahead of the model (default: half the CPUs, 1 to 4)")
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per video")
    parser.add_argument("--no-draft", dest="draft", action="store_false", help="decode JPEGs at full size (default: reduced-size decode)")
    parser.add_argument("--rejects", dest="rejects_path", help="rejects file of --on-error skip")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Read, embed, write; returns 0.

    Example:
        >>> from hf_mmbuilder.cli import main
        >>> main(["embed", "rows.parquet", "out.parquet", "--model", "./clip"])  # doctest: +SKIP
        embedded 120 rows (image, 512 values) -> out.parquet
        0
    """
    from ..embedding import embed

    # --media-root is the loader's with --from; for Data-Juicer rows it is where embed reads media.
    media_root = None
    if args.source_format is None:
        media_root, args.media_root = args.media_root, None
    with read_dataset(args, [args.input]) as ds:
        out = embed(
            ds, args.model, modality=args.modality, column=args.column, batch_size=args.batch_size, device=args.device,
            dtype=args.dtype, normalize=args.normalize, reduce=None if args.reduce == "none" else args.reduce,
            num_workers=args.num_workers, progress=True, source=args.source, media_root=media_root, num_frames=args.num_frames,
            draft=args.draft, on_error=args.on_error, rejects_path=args.rejects_path,
        )
        write_dataset(out, args.output)
    print(f"embedded {len(out)} rows ({args.modality}, {out.features[args.column].length} values) -> {args.output}")
    return 0
