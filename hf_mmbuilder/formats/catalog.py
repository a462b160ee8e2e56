"""Which source formats exist and where their code is: one loading script per format, found by name.

The loading scripts are plugins: a format is a public module of ``hf_mmbuilder.loading_scripts``
holding a ``datasets`` builder and an ``EXPORTER``. This is the one module that imports them by
name; the doors (:mod:`~hf_mmbuilder.formats.loading`, :mod:`~hf_mmbuilder.formats.exporting`,
:mod:`~hf_mmbuilder.formats.mixture`) and the DJ format's promotion go through it.
"""

from __future__ import annotations

import importlib
import inspect
import types

import datasets

from .fingerprint import SCRIPTS_PACKAGE, script_names


def available_formats() -> list[str]:
    """Names of the source formats that have a loading script.

    Example:
        >>> "llava" in available_formats()
        True
    """
    return script_names()


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


def format_columns(format_name: str) -> dict:
    """The round-trip columns (name -> feature) a format adds to the DJ columns, with its default
    options.

    Example:
        >>> sorted(format_columns("llava"))
        ['id', 'id_is_int', 'media_layout', 'roles', 'turn_extras']
    """
    cls = builder_class(format_name)
    return cls._format_features(types.SimpleNamespace(config=cls.BUILDER_CONFIG_CLASS()))
