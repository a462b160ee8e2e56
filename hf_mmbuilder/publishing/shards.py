"""The files of a published dataset repo: media checks, media bytes embedded into Parquet shards
sized by bytes, columns every reader can load (JSON as text, no column empty in every row), config
names, the generation tag in shard names, and the pattern of the names a publish owns (the only
remote files it may delete)."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..media import UnsafePathError, check_within_root, resolve_media_path
from ..schema import MEDIA_COLUMNS
from .card import PLOT_TITLES


DATA_FOLDER = "data"


PLOT_FOLDER = "assets"


MISSING_MEDIA_SHOWN = 10


CONFIG_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


CARD_FILE = "README.md"


GENERATION_DIGITS = 8


def _stored_path(path: str) -> str:
    # A relative path is the dataset's own naming; an absolute one would publish the builder's
    # filesystem layout, so only its file name is kept.
    return os.path.basename(path) if os.path.isabs(path) else path


def check_media(splits: Mapping[str, object], row_ids: Mapping[str, np.ndarray], *, require_files: bool) -> None:
    """Refuse media paths escaping their ``media_root`` and, with ``require_files``, missing files.

    ``row_ids``: split -> original row id of each of its rows (for the error message). Raises a
    ``ValueError`` listing the first offending rows (split, original row, column, path).

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image>"], "images": [["nope.jpg"]], "media_root": ["/tmp"]})
        >>> check_media({"train": ds}, {"train": np.array([0])}, require_files=True)
        Traceback (most recent call last):
        ...
        ValueError: 1 media file(s) missing (embedding needs them; pass embed_media=False to publish paths): split 'train' row 0: images[0] 'nope.jpg' -> /tmp/nope.jpg
    """
    missing = []
    for split, dataset in splits.items():
        columns = [column for column in MEDIA_COLUMNS if column in dataset.column_names]
        if not columns:
            continue
        has_root = "media_root" in dataset.column_names
        table = dataset.with_format("arrow")[:]
        roots = table.column("media_root").to_pylist() if has_root else [None] * len(dataset)
        for column in columns:
            lists = table.column(column)
            if not pc.sum(pc.fill_null(pc.list_value_length(lists), 0)).as_py():
                continue
            for row, paths in enumerate(lists.to_pylist()):
                for position, path in enumerate(paths or ()):
                    where = f"split {split!r} row {int(row_ids[split][row])}: {column}[{position}] {path!r}"
                    if path is None:
                        raise ValueError(f"{where}: null media path")
                    root = roots[row]
                    if root and not os.path.isabs(path) and "://" not in path:
                        try:
                            resolved = check_within_root(path, root)
                        except UnsafePathError as error:
                            raise ValueError(f"{where}: {error}") from None
                    else:
                        resolved = resolve_media_path(path, root)
                    if require_files and not os.path.isfile(resolved):
                        missing.append(f"{where} -> {resolved}")
    if missing:
        shown = "; ".join(missing[:MISSING_MEDIA_SHOWN])
        more = f" (and {len(missing) - MISSING_MEDIA_SHOWN} more)" if len(missing) > MISSING_MEDIA_SHOWN else ""
        raise ValueError(
            f"{len(missing)} media file(s) missing (embedding needs them; pass embed_media=False to publish paths): {shown}{more}"
        )


def embed_media_files(dataset, cache_file: str):
    """Replace media path lists by embedded ``List(Image())``/``List(Audio())``/``List(Video())``.

    The result is written to ``cache_file`` (memory-mapped), so media bytes never pile up in RAM.
    """
    from datasets import Audio, Image, List, Video

    feature_of = {"images": Image(), "audios": Audio(), "videos": Video()}
    columns = [column for column in MEDIA_COLUMNS if column in dataset.column_names]
    if not columns:
        return dataset
    features = dataset.features.copy()
    for column in columns:
        features[column] = List(feature_of[column])
    has_root = "media_root" in dataset.column_names

    def embed(batch):
        roots = batch["media_root"] if has_root else [None] * len(batch[columns[0]])
        for column in columns:
            embedded = []
            for paths, root in zip(batch[column], roots):
                items = []
                for path in paths or ():
                    with open(resolve_media_path(path, root), "rb") as handle:
                        items.append({"bytes": handle.read(), "path": _stored_path(path)})
                embedded.append(items)
            batch[column] = embedded
        return batch

    return dataset.map(embed, batched=True, batch_size=64, writer_batch_size=64, features=features,
                       cache_file_name=cache_file, desc="embedding media", load_from_cache_file=False)


def _holds_json(feature) -> bool:
    from datasets import Json
    from datasets.features.features import _visit

    found = []
    _visit(feature, lambda inner: found.append(inner) if isinstance(inner, Json) else None)
    return bool(found)


def json_text_columns(features) -> list[str]:
    """The columns whose feature is, or holds, ``Json``.

    ``datasets`` before 5.0 has no ``Json`` type (a card declaring ``dtype: json`` fails to load
    there), so :func:`with_json_as_text` publishes them as their JSON text.

    Example:
        >>> from datasets import Features, Json, List, Value
        >>> json_text_columns(Features({"text": Value("string"), "extra": Json(), "turns": List(Json())}))
        ['extra', 'turns']
    """
    return [name for name, feature in features.items() if _holds_json(feature)]


def with_json_as_text(dataset, cache_file: Optional[str] = None):
    """``dataset`` with every ``Json`` feature (also inside lists) cast to ``Value("string")``, the
    JSON text it stores; other columns unchanged. ``cache_file``: where the result is written
    (memory-mapped); ``None`` leaves that to ``datasets``.

    Example:
        >>> from datasets import Dataset, Features, Json
        >>> ds = Dataset.from_dict({"extra": [{"model": "gpt-4"}, None]}, features=Features({"extra": Json()}))
        >>> text = with_json_as_text(ds)
        >>> text.features["extra"], text["extra"][:]
        (Value('string'), ['{"model":"gpt-4"}', None])
    """
    from datasets import Json, Value
    from datasets.features.features import _visit

    columns = json_text_columns(dataset.features)
    if not columns:
        return dataset
    features = dataset.features.copy()
    for name in columns:
        features[name] = _visit(features[name], lambda inner: Value("string") if isinstance(inner, Json) else inner)
    # Json's Arrow storage is the JSON text already: a cast of the table's types, no value re-encoded.
    return dataset.cast(features, cache_file_name=cache_file, load_from_cache_file=False)


def empty_columns(splits: Mapping[str, object]) -> list[str]:
    """The columns that hold nothing in any row of any split: every value null, or (list columns)
    every list empty or null. Nothing is empty in a dataset without rows.

    Example:
        >>> from datasets import Dataset
        >>> empty_columns({"train": Dataset.from_dict({"text": ["a", "b"], "images": [["x.png"], []],
        ...                                            "audios": [[], None], "note": [None, None]})})
        ['audios', 'note']
    """
    parts = [part for part in splits.values() if len(part)]
    if not parts:
        return []
    empty = list(parts[0].column_names)
    for part in parts:
        table = part.with_format("arrow")[:]
        empty = [name for name in empty if not _holds_values(table.column(name))]
    return empty


def _holds_values(column) -> bool:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return bool(pc.sum(pc.fill_null(pc.list_value_length(column), 0)).as_py())
    return column.null_count < len(column)


def config_name(value) -> str:
    text = str(value)
    if "/" in text or os.sep in text:
        text = Path(text).stem
    name = CONFIG_NAME.sub("_", text).strip("_.") or "empty"
    if name in ("default", DATA_FOLDER, PLOT_FOLDER):
        name = f"{name}_config"
    return name


def arrow_nbytes(dataset) -> int:
    """The in-memory Arrow size of a dataset's rows, as ``datasets`` measures it to shard a
    ``push_to_hub`` and for ``SplitInfo.num_bytes``: a selection (a split, ``select``, ``shard``)
    counts its own rows, not the whole table its indices point into."""
    return dataset._estimate_nbytes()


def write_shards(dataset, folder: Path, prefix: str, split: str, max_shard_bytes: int) -> list[Path]:
    num_shards = max(1, math.ceil(arrow_nbytes(dataset) / max_shard_bytes)) if len(dataset) else 1
    num_shards = min(num_shards, max(1, len(dataset)))
    paths = []
    for index in range(num_shards):
        path = folder / prefix / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.shard(num_shards, index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


def tag_generation(root: Path, shards: Iterable[Path]) -> str:
    """Append the generation tag to every shard's name (``train-00000-of-00001-<tag>.parquet``).

    The tag is a digest of the shards' paths and bytes: a new publish of other data never reuses
    the names the current card points at, and the same data always gets the same names.
    """
    digest = hashlib.sha256()
    shards = sorted(shards)
    for path in shards:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    tag = digest.hexdigest()[:GENERATION_DIGITS]
    for path in shards:
        path.rename(path.with_name(f"{path.stem}-{tag}{path.suffix}"))
    return tag


def published_names(splits_by_folder: Mapping[str, Iterable[str]]) -> re.Pattern:
    """The repo paths ``publish`` writes for these shard folders and splits: their Parquet shards
    (with or without a generation tag, as ``push_to_hub`` names them), ``README.md`` and the plots.

    These are the only files it replaces or deletes in a target it keeps no manifest of (the Hub,
    or a local folder with ``overwrite=True``).

    Example:
        >>> names = published_names({"data": ["train", "test"]})
        >>> [bool(names.fullmatch(path)) for path in ("data/train-00000-of-00002-0f3a9c1e.parquet",
        ...  "data/test-00001-of-00002.parquet", "data/notes.md", "other/train-00000-of-00001.parquet",
        ...  "assets/turns.png", "README.md", "scripts/train.py")]
        [True, True, False, False, True, True, False]
    """
    shards = "|".join(f"{re.escape(folder)}/(?:{'|'.join(re.escape(split) for split in splits)})"
                      for folder, splits in splits_by_folder.items())
    plots = "|".join(re.escape(name) for name in PLOT_TITLES)
    return re.compile(rf"(?:{shards})-\d{{5}}-of-\d{{5}}(?:-[0-9a-f]{{{GENERATION_DIGITS}}})?\.parquet"
                      rf"|{re.escape(CARD_FILE)}|{re.escape(PLOT_FOLDER)}/(?:{plots})")
