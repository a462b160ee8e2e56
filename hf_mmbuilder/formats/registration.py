"""Registration of the loading scripts with ``datasets``.

``datasets`` 4+ has no plugin hook for loading scripts, so :func:`register` writes each of ours into
``datasets.packaged_modules._PACKAGED_DATASETS_MODULES`` under ``hf_mmbuilder/<format>``. That table
is private: the supported ``datasets`` range is pinned in ``pyproject.toml`` and tested in CI, and
:func:`hf_mmbuilder.load` offers the same builders through public API only.
"""

from __future__ import annotations

from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

from .catalog import available_formats
from .fingerprint import DEFERRED_HASH, NAMESPACE, SCRIPTS_PACKAGE


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
