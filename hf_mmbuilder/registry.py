"""Registration of the loading scripts with ``datasets`` and the public ``load`` door.

``datasets`` 4+ has no plugin hook for loading scripts, so :func:`register` writes each of ours into
``datasets.packaged_modules._PACKAGED_DATASETS_MODULES`` under ``hf_mmbuilder/<format>``. That table
is private: the supported ``datasets`` range is pinned in ``pyproject.toml`` and tested in CI, and
:func:`load` offers the same builders through public API only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import pkgutil
from pathlib import Path
from typing import Optional, Union

import datasets
from datasets.data_files import DataFilesDict, sanitize_patterns
from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

NAMESPACE = "hf_mmbuilder"
SCRIPTS_PACKAGE = "hf_mmbuilder.loading_scripts"

# Core modules every builder runs through: editing one of them must invalidate cached datasets
# just like editing the loading script itself.
_CORE_MODULES = ("builder", "schema", "errors", "media", "jsonrecords")


def available_formats() -> list[str]:
    """Names of the source formats that have a loading script.

    Example:
        >>> "llava" in available_formats()
        True
    """
    package = importlib.import_module(SCRIPTS_PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))


def code_hash(format_name: str) -> str:
    """SHA-256 over the loading script's source, the scripts' shared private helpers
    (``loading_scripts/_*.py``) and the core modules it runs through.

    ``datasets`` keys its cache on this hash, so an edited builder never reuses stale Arrow files.

    Example:
        >>> len(code_hash("llava"))
        64
    """
    digest = hashlib.sha256()
    package = importlib.import_module(SCRIPTS_PACKAGE)
    shared_helpers = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if info.name.startswith("_"))
    sources = [
        f"{SCRIPTS_PACKAGE}.{format_name}",
        *(f"{SCRIPTS_PACKAGE}.{name}" for name in shared_helpers),
        *(f"{NAMESPACE}.{name}" for name in _CORE_MODULES),
    ]
    for module_name in sources:
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            continue
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()


def registered_names() -> list[str]:
    """The ``load_dataset`` paths this package registered, e.g. ``hf_mmbuilder/llava``.

    Example:
        >>> "hf_mmbuilder/llava" in registered_names()
        True
    """
    return sorted(name for name in _PACKAGED_DATASETS_MODULES if name.startswith(NAMESPACE + "/"))


def register() -> None:
    """Make ``datasets.load_dataset("hf_mmbuilder/<format>", ...)`` resolve to our loading scripts.

    Called by ``import hf_mmbuilder``; calling it again re-hashes the sources (after an edit).

    Example:
        >>> register()
        >>> from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
        >>> _PACKAGED_DATASETS_MODULES["hf_mmbuilder/llava"][0]
        'hf_mmbuilder.loading_scripts.llava'
    """
    for format_name in available_formats():
        _PACKAGED_DATASETS_MODULES[f"{NAMESPACE}/{format_name}"] = (
            f"{SCRIPTS_PACKAGE}.{format_name}",
            code_hash(format_name),
        )


def builder_class(format_name: str) -> type[datasets.DatasetBuilder]:
    """The ``datasets`` builder class defined by the loading script of ``format_name``.

    Example:
        >>> builder_class("llava").__name__
        'Llava'
    """
    if format_name not in available_formats():
        raise ValueError(f"unknown format {format_name!r}; available: {', '.join(available_formats())}")
    module = importlib.import_module(f"{SCRIPTS_PACKAGE}.{format_name}")
    for obj in vars(module).values():
        if (
            inspect.isclass(obj)
            and issubclass(obj, datasets.DatasetBuilder)
            and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)
        ):
            return obj
    raise LookupError(f"{module.__name__} defines no datasets builder")


def script_module(format_name: str):
    """The imported loading-script module of ``format_name`` (its builder and exporter live there).

    Example:
        >>> script_module("llava").__name__
        'hf_mmbuilder.loading_scripts.llava'
    """
    builder_class(format_name)
    return importlib.import_module(f"{SCRIPTS_PACKAGE}.{format_name}")


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
    patterns = sanitize_patterns(data_files)
    files = DataFilesDict.from_patterns(patterns, base_path=os.getcwd())
    builder = builder_class(format_name)(
        cache_dir=cache_dir,
        dataset_name=f"{NAMESPACE}/{format_name}",
        data_files=files,
        hash=code_hash(format_name),
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
