"""The public ``load`` door: a source format's files as DJ-format Arrow, without the private registry."""

from __future__ import annotations

import os
from typing import Optional, Union

import datasets
from datasets.data_files import DataFilesDict, sanitize_patterns

from .catalog import builder_class
from .failures import check_special_files
from .fingerprint import NAMESPACE


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
    same rows, same cache, same ``split`` slicing, ``streaming`` and ``num_proc``. ``config`` holds
    the format's options (tokens, ``media_root``, ``on_error``, ...).

    Example:
        >>> ds = load("llava", "llava.json", split="train")  # doctest: +SKIP
        >>> ds.column_names[:4]  # doctest: +SKIP
        ['text', 'images', 'audios', 'videos']
    """
    check_special_files(data_files)
    patterns = sanitize_patterns(data_files)
    files = DataFilesDict.from_patterns(patterns, base_path=os.getcwd())
    builder = builder_class(format_name)(
        cache_dir=cache_dir,
        dataset_name=f"{NAMESPACE}/{format_name}",
        data_files=files,
        **config,
    )
    if streaming:
        return builder.as_streaming_dataset(split=split)
    try:
        builder.download_and_prepare(download_mode=download_mode, num_proc=num_proc)
    except datasets.exceptions.DatasetGenerationError as error:
        # datasets wraps every generation error; ours already name the file, record and reason
        # (bad records: ValueError; unreadable files: OSError).
        cause = error.__cause__
        while isinstance(cause, datasets.exceptions.DatasetGenerationError) or (cause is not None and type(cause).__name__ == "RemoteTraceback"):
            cause = cause.__cause__
        if isinstance(cause, (ValueError, OSError)):
            raise cause from None
        raise
    return builder.as_dataset(split=split)
