"""Concatenate datasets loaded from different source formats, and export each row back to its own.

Every builder writes the same DJ columns with the same default tokens, so the texts already share
one vocabulary; what differs is the round-trip columns each format adds. :func:`concat_formats`
takes the union of the columns (a column a dataset lacks is added as nulls of the other datasets'
feature) and tags each row with ``source_format``; :func:`export_formats` writes the rows of each
format with that format's exporter.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Union

import datasets

from .catalog import builder_class, script_module
from .exporting import export

SOURCE_FORMAT_COLUMN = "source_format"


def concat_formats(parts: Union[Mapping[str, datasets.Dataset], Sequence[tuple]]) -> datasets.Dataset:
    """Concatenate datasets of different formats into one, rows tagged with their format.

    Parameters
    ----------
    parts : mapping of format name -> Dataset, or sequence of (format name, Dataset)
        A format may appear several times in the sequence form.

    Returns
    -------
    datasets.Dataset
        All rows, in order; columns: the union of the parts' columns (DJ columns first) plus
        ``source_format`` (string). A column missing from a part is null in its rows.

    Raises
    ------
    ValueError
        An unknown format, or two parts giving one column different features (named).

    Complexity: O(rows) for the added null columns; the data itself is not copied.

    Example:
        >>> both = concat_formats({"llava": llava_ds, "mmc4": mmc4_ds})  # doctest: +SKIP
        >>> both.unique("source_format")  # doctest: +SKIP
        ['llava', 'mmc4']
    """
    items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
    if not items:
        raise ValueError("concat_formats needs at least one (format, dataset)")
    features: dict = {}
    owner: dict = {}
    for name, dataset in items:
        builder_class(name)
        for column, feature in dataset.features.items():
            if column == SOURCE_FORMAT_COLUMN:
                continue
            if column in features and features[column] != feature:
                raise ValueError(
                    f"column {column!r} is {features[column]} in the {owner[column]} dataset but {feature} in the {name} "
                    "dataset: cast or rename one of them before concatenating"
                )
            features.setdefault(column, feature)
            owner.setdefault(column, name)
    aligned = []
    for name, dataset in items:
        if SOURCE_FORMAT_COLUMN in dataset.column_names:
            dataset = dataset.remove_columns(SOURCE_FORMAT_COLUMN)
        for column, feature in features.items():
            if column not in dataset.column_names:
                dataset = dataset.add_column(column, [None] * len(dataset), feature=feature)
        dataset = dataset.add_column(SOURCE_FORMAT_COLUMN, [name] * len(dataset), feature=datasets.Value("string"))
        aligned.append(dataset.select_columns([*features, SOURCE_FORMAT_COLUMN]))
    return datasets.concatenate_datasets(aligned)


def export_formats(dataset: datasets.Dataset, folder: str, *, options: Optional[Mapping[str, dict]] = None, **export_options) -> dict:
    """Write the rows of each ``source_format`` to ``folder/<format><suffix>`` with that format's
    exporter; returns ``{path: records written}``.

    ``options`` maps a format to its loader options (tokens, separators ...) when it was not
    loaded with the defaults; ``export_options`` (``on_error``, ``allowed_media_roots`` ...) go
    to every :func:`hf_mmbuilder.export` call. Complexity: one filtering pass per format.

    Example:
        >>> export_formats(concat_formats({"llava": a, "mmc4": b}), "out")  # doctest: +SKIP
        {'out/llava.json': 100, 'out/mmc4.jsonl': 107}
    """
    if SOURCE_FORMAT_COLUMN not in dataset.column_names:
        raise ValueError(f"dataset has no {SOURCE_FORMAT_COLUMN!r} column: build it with concat_formats")
    written = {}
    for name in dataset.unique(SOURCE_FORMAT_COLUMN):
        rows = dataset.filter(lambda values: [value == name for value in values], input_columns=SOURCE_FORMAT_COLUMN, batched=True)
        suffix = script_module(name).EXPORTER.suffixes[0]
        path = os.path.join(folder, f"{name}{suffix}")
        written.update(export(rows, name, path, **(options or {}).get(name, {}), **export_options))
    return written
