"""hf_mmbuilder: multimodal instruction datasets on Hugging Face ``datasets``.

``import hf_mmbuilder`` registers every loading script as ``hf_mmbuilder/<format>`` so that
``datasets.load_dataset("hf_mmbuilder/llava", data_files=...)`` works; the public twin
``hf_mmbuilder.load("llava", data_files)`` does the same without the private registry.

Example:
    >>> import hf_mmbuilder
    >>> "hf_mmbuilder/llava" in hf_mmbuilder.registered_names()
    True
"""

from .dedup import dedup
from .export import export
from .facade import MultiModalDatasetBuilder
from .media import decode_media
from .publish import publish
from .realign import realign
from .registry import available_formats, load, register, registered_names
from .select import select
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

register()

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
    "select",
    "realign",
    "publish",
]
