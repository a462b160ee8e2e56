"""hf_mmbuilder: multimodal instruction datasets on Hugging Face ``datasets``.

``import hf_mmbuilder`` registers every loading script as ``hf_mmbuilder/<format>`` so that
``datasets.load_dataset("hf_mmbuilder/llava", data_files=...)`` works; the public twin
``hf_mmbuilder.load("llava", data_files)`` does the same without the private registry.

Example:
    >>> import hf_mmbuilder
    >>> "hf_mmbuilder/llava" in hf_mmbuilder.registered_names()
    True
"""

from importlib import import_module

from .export import export
from .media import decode_media
from .registry import available_formats, load, register, registered_names
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

# Public functions whose modules pull in heavy dependencies (numba, faiss, matplotlib) are imported
# on first use, so `import hf_mmbuilder` stays cheap.
_LAZY_ATTRIBUTES = {
    "dedup": "hf_mmbuilder.dedup",
    "select": "hf_mmbuilder.select",
    "realign": "hf_mmbuilder.realign",
    "publish": "hf_mmbuilder.publish",
}


def __getattr__(name):
    if name in _LAZY_ATTRIBUTES:
        function = getattr(import_module(_LAZY_ATTRIBUTES[name]), name)
        # Importing the submodule bound its name on the package; the function must win.
        globals()[name] = function
        return function
    raise AttributeError(f"module 'hf_mmbuilder' has no attribute {name!r}")


register()

__all__ = [
    "AUDIO_TOKEN",
    "EOC_TOKEN",
    "IMAGE_TOKEN",
    "VIDEO_TOKEN",
    "SpecialTokens",
    "available_formats",
    "decode_media",
    "dj_features",
    "export",
    "load",
    "register",
    "registered_names",
    "validate_alignment",
    *_LAZY_ATTRIBUTES,
]
