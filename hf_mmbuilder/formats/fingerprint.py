"""The cache key of a loading script: a hash over the source of every project module it runs.

``datasets`` keys its cache on the hash a builder carries; :class:`~hf_mmbuilder.formats.builder.DJBuilder`
sets it to :func:`code_hash` of its own module when it is made. This module finds the sources by
reading import statements, without importing anything, and imports no loading script itself, so
the builder base can use it without an import circle through the scripts.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import pkgutil
import re
from pathlib import Path

NAMESPACE = "hf_mmbuilder"
SCRIPTS_PACKAGE = "hf_mmbuilder.loading_scripts"
# The module that imports loading scripts by their names (see `source_modules`).
CATALOG_MODULE = "hf_mmbuilder.formats.catalog"

# What `register` writes as the hash of a table entry. `datasets` hands it to the builder, and
# `DJBuilder.__init__` replaces it with `code_hash` of the builder's own module: hashing is done
# when a builder is prepared, so `import hf_mmbuilder` reads no source.
DEFERRED_HASH = "code-hash-computed-by-the-builder"


def script_names() -> list[str]:
    """Names of the loading scripts (the public modules of the scripts package), found in its
    folder without importing any of them.

    Example:
        >>> "llava" in script_names()
        True
    """
    spec = _find_spec(SCRIPTS_PACKAGE)
    return sorted(info.name for info in pkgutil.iter_modules(spec.submodule_search_locations) if not info.name.startswith("_"))


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

    The catalog imports loading scripts by name at run time (``builder_class``), so a module that
    imports the catalog runs every loading script too.

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
        if name == CATALOG_MODULE:
            pending.extend(f"{SCRIPTS_PACKAGE}.{script}" for script in script_names())
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
