"""The public ``load`` door: a source format's files as DJ-format Arrow, without the private registry."""

from __future__ import annotations

import os
from typing import Optional, Union

from datasets.data_files import DataFilesDict, sanitize_patterns

from .catalog import builder_class
from .failures import check_special_files
from .fingerprint import NAMESPACE


def folder_files(pattern: str) -> str:
    """A pattern for the files under ``pattern`` when it names a folder (recursively, hidden files
    left out, as ``datasets`` resolves ``folder/**``); any other pattern as it is (a FIFO or socket
    is refused before, by :func:`~hf_mmbuilder.formats.failures.check_special_files`).

    Example:
        >>> folder_files("/")
        '/**'
        >>> folder_files("data/*.jsonl")
        'data/*.jsonl'
    """
    return os.path.join(pattern, "**") if os.path.isdir(pattern) else pattern


def load(
    format_name: str,
    data_files: Union[str, list, dict],
    split: Optional[str] = None,
    *,
    streaming: bool = False,
    num_proc: Optional[int] = None,
    cache_dir: Optional[str] = None,
    download_mode: Optional[str] = None,
    **config,
):
    """Load ``data_files`` of a source format into DJ-format Arrow, without the private registry.

    Equivalent to ``datasets.load_dataset("hf_mmbuilder/<format_name>", data_files=..., **config)``:
    same rows, same cache, same ``split`` slicing, ``streaming`` and ``num_proc``; a folder in
    ``data_files`` stands for the files under it. ``config`` holds
    the format's options (tokens, ``media_root``, ``on_error``, ...).

    Example:
        >>> ds = load("llava", "llava.json", split="train")  # doctest: +SKIP
        >>> ds.column_names[:4]  # doctest: +SKIP
        ['text', 'images', 'audios', 'videos']
    """
    check_special_files(data_files)
    patterns = {split: [folder_files(pattern) for pattern in split_patterns] for split, split_patterns in sanitize_patterns(data_files).items()}
    files = DataFilesDict.from_patterns(patterns, base_path=os.getcwd())
    builder = builder_class(format_name)(
        cache_dir=cache_dir,
        dataset_name=f"{NAMESPACE}/{format_name}",
        data_files=files,
        **config,
    )
    if streaming:
        return builder.as_streaming_dataset(split=split)
    builder.download_and_prepare(download_mode=download_mode, num_proc=num_proc)
    return builder.as_dataset(split=split)
