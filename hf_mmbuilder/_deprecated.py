"""Old module paths and keyword names, kept working for one release with a FutureWarning.

``MOVED`` maps an old module path to its new home. Importing the old path warns once, naming the
new one, and gives the new module object itself (``sys.modules[old] is new``), so attribute
patches and identity checks made through either path agree. An old path whose names were split
over several modules maps to a tuple; it gives a module that looks names up in each, in order.

``renamed`` accepts an old keyword name in place of its new one, with the same warning.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed({"mode": "data_juicer"}, "mode", "compat", where="MinHashParams")
    {'compat': 'data_juicer'}
    >>> print(caught[0].message)
    MinHashParams(mode=...) is deprecated; use compat=... (the old name goes in the next minor release)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Union

# Old module path -> new module path (or the new modules to search, in order, for a split module).
MOVED: dict[str, Union[str, tuple[str, ...]]] = {
    "hf_mmbuilder.builder": "hf_mmbuilder.formats.builder",
    "hf_mmbuilder.card": "hf_mmbuilder.publishing.card",
    "hf_mmbuilder.commands": "hf_mmbuilder.cli",
    "hf_mmbuilder.concat": "hf_mmbuilder.formats.mixture",
    "hf_mmbuilder.datagen": "hf_mmbuilder.testing.llava",
    "hf_mmbuilder.datagen_av": "hf_mmbuilder.testing.captions",
    "hf_mmbuilder.datagen_interleaved": "hf_mmbuilder.testing.interleaved",
    "hf_mmbuilder.dedup": "hf_mmbuilder.duplicates",
    "hf_mmbuilder.dedup_media": "hf_mmbuilder.duplicates",
    "hf_mmbuilder.export": ("hf_mmbuilder.formats.exporter", "hf_mmbuilder.formats.exporting"),
    "hf_mmbuilder.facade": "hf_mmbuilder.workflow",
    "hf_mmbuilder.jsonrecords": "hf_mmbuilder.formats.records",
    "hf_mmbuilder.publish": ("hf_mmbuilder.publishing", "hf_mmbuilder.publishing.publication",
                             "hf_mmbuilder.publishing.shards", "hf_mmbuilder.publishing.hub"),
    "hf_mmbuilder.ray_engine": "hf_mmbuilder.ray",
    "hf_mmbuilder.realign": "hf_mmbuilder.realignment",
    "hf_mmbuilder.registry": (
        "hf_mmbuilder.formats.catalog",
        "hf_mmbuilder.formats.fingerprint",
        "hf_mmbuilder.formats.registration",
        "hf_mmbuilder.formats.loading",
    ),
    "hf_mmbuilder.select": "hf_mmbuilder.selection",
    "hf_mmbuilder.splits": "hf_mmbuilder.publishing.splits",
}

# Functions of the root package whose names older module paths share; importing such an old path
# must not replace the function by the module (the import system binds every submodule it loads
# as an attribute of its parent package).
FRONT_DOORS = frozenset({"dedup", "export", "load", "publish", "realign", "select"})

REMOVAL = "the old name goes in the next minor release"


def _warn_moved(old: str, new: Union[str, tuple[str, ...]]) -> None:
    homes = new if isinstance(new, str) else " or ".join(new)
    # Level 3 is the import statement (1: here, 2: the loader); warnings skips the import system's frames.
    warnings.warn(f"{old} is deprecated; import {homes} instead ({REMOVAL})", FutureWarning, stacklevel=3)


class SplitModule(types.ModuleType):
    """An old module path whose names now live in several modules; looks each name up in order."""

    def __init__(self, name: str, targets: tuple[str, ...]):
        super().__init__(name, f"Deprecated alias of {', '.join(targets)}.")
        self._targets = [importlib.import_module(target) for target in targets]

    def __getattr__(self, name: str):
        for target in self._targets:
            if hasattr(target, name):
                return getattr(target, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self):
        return sorted(set().union(*(dir(target) for target in self._targets)))


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        old = module.__name__
        new = MOVED[old]
        _warn_moved(old, new)
        # The import system returns whatever sys.modules holds for the name after this call; the
        # placeholder module it made is dropped, and the new module keeps its own __spec__.
        sys.modules[old] = importlib.import_module(new) if isinstance(new, str) else SplitModule(old, new)


class _SubmoduleAliasLoader(importlib.abc.Loader):
    """A submodule of a moved package (``hf_mmbuilder.commands.convert``): the same submodule of the
    new home, without a second warning (importing the old package, which comes first, warned)."""

    def __init__(self, new: str):
        self._new = new

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        sys.modules[module.__name__] = importlib.import_module(self._new)


class AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of ``MOVED`` and their submodules; installed first on ``sys.meta_path``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            new = MOVED[fullname]
            # The new module's source file as the origin: the datasets cache key follows a loading
            # script's imports by spec origin (registry.source_modules), so a script that still
            # imports an old path keeps the moved code in its key.
            found = importlib.util.find_spec(new) if isinstance(new, str) else None
            return importlib.util.spec_from_loader(fullname, _AliasLoader(), origin=found.origin if found else None)
        parent, _, child = fullname.rpartition(".")
        new_parent = MOVED.get(parent)
        if isinstance(new_parent, str):
            found = importlib.util.find_spec(f"{new_parent}.{child}")
            if found is not None:
                return importlib.util.spec_from_loader(fullname, _SubmoduleAliasLoader(found.name), origin=found.origin)
        return None


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once), ahead of the path finders.

    Ahead, because an old path must never load a stale copy of its module from disk.
    """
    if not any(isinstance(finder, AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())


def moved_attribute(package: str, name: str):
    """The module an old attribute path such as ``hf_mmbuilder.ray_engine`` names, or ``None``.

    The package's ``__getattr__`` calls it, so that ``hf_mmbuilder.<old>`` works without an
    import statement; the import warns.
    """
    if f"{package}.{name}" not in MOVED:
        return None
    return importlib.import_module(f"{package}.{name}")


class Package(types.ModuleType):
    """The root package's module class: submodule imports never rebind a front-door function."""

    def __setattr__(self, name: str, value) -> None:
        if name in FRONT_DOORS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


def warn_renamed(where: str, old: str, new: str, *, stacklevel: int = 3, note: str = "") -> None:
    """Warn that keyword ``old`` of ``where`` is now ``new`` (``stacklevel`` counts from here).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_renamed("ExactParams", "drop_non_alnum", "ignore_non_character", note="it also drops digits")
        >>> print(caught[0].message)
        ExactParams(drop_non_alnum=...) is deprecated; use ignore_non_character=..., it also drops digits (the old name goes in the next minor release)
    """
    detail = f", {note}" if note else ""
    warnings.warn(f"{where}({old}=...) is deprecated; use {new}=...{detail} ({REMOVAL})", FutureWarning, stacklevel=stacklevel)


def renamed(kwargs: dict, old: str, new: str, *, where: str, stacklevel: int = 3) -> dict:
    """``kwargs`` with ``old`` renamed to ``new`` (warning when ``old`` was given).

    Giving both raises ``TypeError``, as Python does for a keyword given twice. ``stacklevel``
    counts from this function: 3 is the caller of the function that calls ``renamed``.

    Example:
        >>> renamed({"compat": None}, "mode", "compat", where="dedup")
        {'compat': None}
        >>> renamed({"mode": "fast", "compat": None}, "mode", "compat", where="dedup")
        Traceback (most recent call last):
            ...
        TypeError: dedup() got both compat= and its deprecated name mode=
    """
    if old not in kwargs:
        return kwargs
    if new in kwargs:
        raise TypeError(f"{where}() got both {new}= and its deprecated name {old}=")
    warn_renamed(where, old, new, stacklevel=stacklevel + 1)
    out = dict(kwargs)
    out[new] = out.pop(old)
    return out
