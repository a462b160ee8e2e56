"""A copy of the installed package laid out as a wheel installs it, for tests that must see it whole.

In the checkout, ``kernels/`` and ``loading_scripts/`` are top-level folders that setup.py maps
into ``hf_mmbuilder``; tools that walk the package folder (import-linter) or tests that edit
sources (the cache-key test) need them inside it, and must never touch the real sources.
"""

import shutil
from pathlib import Path

import hf_mmbuilder
import hf_mmbuilder.kernels
import hf_mmbuilder.loading_scripts


def installed_copy(root: Path) -> Path:
    """The package as a wheel lays it out (``kernels/`` and ``loading_scripts/`` inside it) under ``root``.

    Returns ``root``, the folder to put on ``sys.path`` of a fresh process.
    """
    ignore = shutil.ignore_patterns("__pycache__")
    target = root / "hf_mmbuilder"
    shutil.copytree(Path(hf_mmbuilder.__file__).parent, target, ignore=ignore)
    for package in (hf_mmbuilder.kernels, hf_mmbuilder.loading_scripts):
        inside = target / package.__name__.rpartition(".")[2]
        if not inside.exists():
            shutil.copytree(package.__path__[0], inside, ignore=ignore)
    return root
