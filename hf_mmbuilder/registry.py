"""Registration of the loading scripts with ``datasets`` and the public ``load`` door.

``datasets`` 4+ has no plugin hook for loading scripts, so :func:`register` writes each of ours into
``datasets.packaged_modules._PACKAGED_DATASETS_MODULES`` under ``hf_mmbuilder/<format>``. That table
is private: the supported ``datasets`` range is pinned in ``pyproject.toml`` and tested in CI, and
:func:`load` offers the same builders through public API only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
from pathlib import Path
from typing import Optional, Union

import datasets
from datasets.data_files import DataFilesDict, sanitize_patterns
from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

NAMESPACE = "hf_mmbuilder"
SCRIPTS_PACKAGE = "hf_mmbuilder.loading_scripts"

# What `register` writes as the hash of a table entry. `datasets` hands it to the builder, and
# `DJBuilder.__init__` replaces it with `code_hash` of the builder's own module: hashing is done
# when a builder is prepared, so `import hf_mmbuilder` reads no source.
DEFERRED_HASH = "code-hash-computed-by-the-builder"


def available_formats() -> list[str]:
    """Names of the source formats that have a loading script.

    Example:
        >>> "llava" in available_formats()
        True
    """
    package = importlib.import_module(SCRIPTS_PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))


# Import statements at any indentation (lazy imports in functions count). A regular expression,
# not `ast`: parsing the ~25 modules a builder runs took 0.4 s per builder; a docstring line that
# happens to read like an import only widens the hash.
_IMPORT_STATEMENT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^\n#;]+)|import[ \t]+(?P<modules>[^\n#;]+))",
    re.M,
)


def _imported_modules(module_name: str, source: str, is_package: bool) -> set[str]:
    """Project modules named by the import statements of ``source``. ``from package import name``
    counts ``package.name`` when that is a module, else the package itself."""
    found = set()
    package = module_name if is_package else module_name.rpartition(".")[0]
    for statement in _IMPORT_STATEMENT.finditer(source):
        if statement["modules"]:
            candidates = [_first_word(item) for item in statement["modules"].split(",")]
        else:
            base = statement["base"]
            if base.startswith("."):
                base = importlib.util.resolve_name(base, package)
            names = statement["names"].strip("()").replace("\\", " ").split(",")
            candidates = [_submodule_or_package(base, _first_word(name)) for name in names if name.strip()]
        found.update(name for name in candidates if name == NAMESPACE or name.startswith(NAMESPACE + "."))
    return found


def _first_word(text: str) -> str:
    return text.split()[0] if text.split() else ""


def _submodule_or_package(package: str, name: str) -> str:
    # Looked up in the package's folders without importing anything.
    spec = _find_spec(package) if package.startswith(NAMESPACE) else None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / f"{name}.py").is_file() or (Path(folder) / name / "__init__.py").is_file():
            return f"{package}.{name}"
    return package


@functools.lru_cache(maxsize=None)
def _find_spec(module_name: str):
    # Specs (locations) do not change while a process runs; sources may, and are read afresh.
    try:
        return importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None


def source_modules(module_name: str) -> dict[str, Path]:
    """Every project module that ``module_name`` runs: itself and, transitively, each project
    module it imports (kernels and sibling formats included), with its source file.

    The registry imports loading scripts by name at run time (``builder_class``), so a module that
    imports the registry runs every loading script too.

    Example:
        >>> sorted(source_modules("hf_mmbuilder.loading_scripts.oasis"))  # doctest: +ELLIPSIS
        [...'hf_mmbuilder.kernels.llava_parse', ...'hf_mmbuilder.loading_scripts.llava', ...]
    """
    sources: dict[str, Path] = {}
    pending = [module_name]
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        spec = _find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        path = Path(spec.origin)
        sources[name] = path
        pending.extend(_imported_modules(name, path.read_text(encoding="utf-8"), spec.submodule_search_locations is not None))
        if name == __name__:
            pending.extend(f"{SCRIPTS_PACKAGE}.{script}" for script in available_formats())
    return sources


def code_hash(format_name: str) -> str:
    """SHA-256 over the source of every project module the loading script of ``format_name`` runs
    (see :func:`source_modules`): the script, the formats it builds on, the core modules and the
    kernels.

    ``datasets`` keys its cache on this hash, so a builder whose code changed anywhere never reuses
    stale Arrow files. Computed when a builder is created, not at import.

    Example:
        >>> len(code_hash("llava"))
        64
    """
    module_name = format_name if "." in format_name else f"{SCRIPTS_PACKAGE}.{format_name}"
    digest = hashlib.sha256()
    for name, path in sorted(source_modules(module_name).items()):
        digest.update(name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
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

    Called by ``import hf_mmbuilder``. The table's hash is a placeholder: each builder computes
    :func:`code_hash` of its own sources when it is created.

    Example:
        >>> register()
        >>> from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES
        >>> _PACKAGED_DATASETS_MODULES["hf_mmbuilder/llava"][0]
        'hf_mmbuilder.loading_scripts.llava'
    """
    for format_name in available_formats():
        _PACKAGED_DATASETS_MODULES[f"{NAMESPACE}/{format_name}"] = (
            f"{SCRIPTS_PACKAGE}.{format_name}",
            DEFERRED_HASH,
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
