"""hf_mmbuilder: multimodal instruction datasets on Hugging Face ``datasets``.

``import hf_mmbuilder`` registers every loading script as ``hf_mmbuilder/<format>`` so that
``datasets.load_dataset("hf_mmbuilder/llava", data_files=...)`` works; the public twin
``hf_mmbuilder.load("llava", data_files)`` does the same without the private registry.

Example:
    >>> import hf_mmbuilder
    >>> "hf_mmbuilder/llava" in hf_mmbuilder.registered_names()
    True
"""

import sys

from . import _deprecated

# Old module paths (hf_mmbuilder._deprecated.MOVED) resolve before any other import can ask for one.
_deprecated.install()

# Registers the PyAV-decoded audio/video features with datasets, so decoded datasets reload anywhere.
from . import decoders  # noqa: F401
from .formats.catalog import available_formats
from .formats.loading import load
from .formats.registration import register, registered_names
from .schema import (
    AUDIO_TOKEN,
    EOC_TOKEN,
    IMAGE_TOKEN,
    VIDEO_TOKEN,
    SpecialTokens,
    dj_features,
    validate_alignment,
)

__version__ = "0.1.0"


# Front doors imported on first use (PEP 562). Importing them all up front cost 0.8 s over
# `import datasets` (numba 0.3 s, faiss 0.1 s, jinja2, the ops' language detection, pandas):
# `import hf_mmbuilder` keeps what registration and `load` need, and a loader or a CLI call pays
# only for what it uses (benchmarks/cold_start.py measures it). Static imports, one per name, so
# the import contracts see them.
_LAZY = ("dedup", "embed", "export", "decode_media", "publish", "realign", "select", "inspect", "MultiModalDatasetBuilder")


def _front_door(name: str):
    if name == "dedup":
        from .duplicates import dedup as door
    elif name == "embed":
        from .embedding import embed as door
    elif name == "export":
        from .formats.exporting import export as door
    elif name == "decode_media":
        from .media import decode_media as door
    elif name == "publish":
        from .publishing import publish as door
    elif name == "realign":
        from .realignment import realign as door
    elif name == "select":
        from .selection import select as door
    elif name == "inspect":
        from .inspection import inspect as door
    else:
        from .workflow import MultiModalDatasetBuilder as door
    return door


def __getattr__(name: str):
    if name in _LAZY:
        value = _front_door(name)
        # Into the module's namespace directly: the package class refuses to bind a module to a
        # front door's name, and the next lookup should not come back here.
        globals()[name] = value
        return value
    # An old module path (`hf_mmbuilder.ray_engine`) still works as an attribute, with a warning.
    moved = _deprecated.moved_attribute(__name__, name)
    if moved is not None:
        return moved
    raise AttributeError(f"module 'hf_mmbuilder' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


register()
# From here on, importing an old module path that shares a front door's name keeps the function.
sys.modules[__name__].__class__ = _deprecated.Package

__all__ = [
    "AUDIO_TOKEN",
    "EOC_TOKEN",
    "IMAGE_TOKEN",
    "VIDEO_TOKEN",
    "MultiModalDatasetBuilder",
    "SpecialTokens",
    "available_formats",
    "decode_media",
    "dj_features",
    "export",
    "load",
    "register",
    "registered_names",
    "validate_alignment",
    "dedup",
    "embed",
    "select",
    "realign",
    "publish",
    "inspect",
]
