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
from .duplicates import dedup
from .embedding import embed
from .formats.catalog import available_formats
from .formats.exporting import export
from .formats.loading import load
from .formats.registration import register, registered_names
from .media import decode_media
from .publishing import publish
from .realignment import realign
from .selection import select
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


def __getattr__(name: str):
    # The workflow pulls in the ops, language detection and pandas (about 0.5 s): only on first use,
    # so that `import hf_mmbuilder` stays cheap for a loader or a CLI call.
    if name == "MultiModalDatasetBuilder":
        from .workflow import MultiModalDatasetBuilder

        return MultiModalDatasetBuilder
    # An old module path (`hf_mmbuilder.ray_engine`) still works as an attribute, with a warning.
    moved = _deprecated.moved_attribute(__name__, name)
    if moved is not None:
        return moved
    raise AttributeError(f"module 'hf_mmbuilder' has no attribute {name!r}")


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
]
