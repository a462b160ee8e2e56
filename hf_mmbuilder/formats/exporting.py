"""The public ``export`` door: a DJ dataset written back to a source format."""

from __future__ import annotations

import os
from typing import Optional, Union

import datasets
from tqdm.auto import tqdm

from ..errors import ErrorPolicy, check_on_error
from .catalog import builder_class, script_module
from .exporter import AtomicWriter


def export(
    dataset: Union[datasets.Dataset, datasets.IterableDataset, datasets.DatasetDict],
    format_name: str,
    path: str,
    *,
    on_error: str = "raise",
    rejects_path: Optional[str] = None,
    suffix: Optional[str] = None,
    allowed_media_roots: tuple = (),
    keep_dj_columns: bool = False,
    batch_size: int = 10_000,
    progress: bool = False,
    **options,
) -> dict:
    """Write ``dataset`` in ``format_name`` to ``path``; returns ``{path: records written}``.

    ``options`` are the format's config options (the same names the loader takes, e.g.
    ``image_special_token="<image>"`` for text loaded in Data-Juicer parity mode), so the text is
    read back exactly as it was built. A ``DatasetDict`` is written as one file per split inside the
    folder ``path`` (``<path>/<split><suffix>``). Rows that cannot be exported (misaligned media
    tokens, a media path escaping its root, a row kept with load errors) follow ``on_error``; with
    ``"skip"`` they are listed in ``rejects_path`` (default ``<path>.rejects.jsonl``).

    Keys Data-Juicer adds to the rows it processes (``__dj__stats__``, ``__dj__hash``, any
    ``__dj__*`` key) are not part of a source format: they are left out of its records unless
    ``keep_dj_columns=True`` (then they are written as top-level keys); the DJ export keeps them.

    Example:
        >>> ds = hf_mmbuilder.load("llava", "in.json", split="train")  # doctest: +SKIP
        >>> export(ds, "llava", "out.json")  # doctest: +SKIP
        {'out.json': 100}
    """
    check_on_error(on_error)
    if on_error == "keep":
        raise ValueError("export takes on_error='raise' or 'skip' (a record that cannot be written cannot be kept)")
    config = builder_class(format_name).BUILDER_CONFIG_CLASS(**options)
    exporter = script_module(format_name).EXPORTER(config, allowed_media_roots, keep_dj_columns=keep_dj_columns)
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        suffix = suffix or exporter.suffixes[0]
        written = {}
        for split, split_dataset in dataset.items():
            written.update(
                export(
                    split_dataset,
                    format_name,
                    os.path.join(path, f"{split}{suffix}"),
                    on_error=on_error,
                    rejects_path=rejects_path and f"{rejects_path}.{split}",
                    allowed_media_roots=allowed_media_roots,
                    keep_dj_columns=keep_dj_columns,
                    batch_size=batch_size,
                    progress=progress,
                    **options,
                )
            )
        return written
    suffix = suffix or os.path.splitext(path)[1] or exporter.suffixes[0]
    if suffix not in exporter.suffixes:
        raise ValueError(f"{format_name} exports to {', '.join(exporter.suffixes)}, not {suffix!r} ({path})")
    if on_error == "skip" and rejects_path is None:
        rejects_path = f"{path}.rejects.jsonl"
    if rejects_path and os.path.exists(rejects_path):
        os.remove(rejects_path)
    total = getattr(dataset, "num_rows", None)
    with ErrorPolicy(on_error, rejects_path) as policy, AtomicWriter(path) as handle, tqdm(
        total=total, disable=not progress, unit="rows", desc=f"export {format_name}"
    ) as bar:
        count = exporter.write_dataset(dataset, handle, suffix, policy, path, bar, batch_size)
    return {path: count}
