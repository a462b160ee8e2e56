"""Models: the one place a model is found, loaded and given a device and a precision.

A model is named by a local folder, a Hugging Face Hub id (read from the local Hub cache; nothing
is downloaded unless ``local_files_only=False`` is asked for), or the spec ``"model:<folder or
id>"`` that ``dedup`` / ``select`` / ``embed`` accept in place of an embedding column.

The device is chosen by :func:`resolve_device`: ``"auto"`` asks :func:`accelerator`, which answers
CUDA, then Apple's MPS, then the CPU. ``FORCE_CPU=1`` in the environment puts every model on the
CPU, whatever the caller asked for (a shared machine, a reproducible run, a test). Tests patch
:func:`accelerator` to pretend an accelerator is present.

torch and transformers are imported on first use only (the ``vlm`` extra), so importing this
module is cheap.

Example:
    >>> model_reference("model:/models/clip"), is_model_spec("embedding")
    ('/models/clip', False)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from typing import Any, Optional

MODEL_PREFIX = "model:"
FORCE_CPU_VARIABLE = "FORCE_CPU"
DEVICE_KINDS = ("cpu", "cuda", "mps")
DTYPES = ("float32", "float16", "bfloat16")
# Files whose presence marks a sentence-transformers folder (its modules pipeline, pooling included).
_SENTENCE_TRANSFORMERS_FILES = ("modules.json", "config_sentence_transformers.json")
# Loaded models kept per (reference, class, device, dtype): an op called once per batch, or
# dedup then select on the same model, loads it once. Small: models are large.
_CACHE_SIZE = 4
_cache: dict = {}
_cache_lock = threading.Lock()


def is_model_spec(value: Any) -> bool:
    """Whether ``value`` is a ``"model:<folder or Hub id>"`` spec (rather than a column name).

    Example:
        >>> is_model_spec("model:openai/clip-vit-base-patch32"), is_model_spec("clip_embedding")
        (True, False)
    """
    return isinstance(value, str) and value.startswith(MODEL_PREFIX)


def model_reference(spec: str) -> str:
    """The folder or Hub id a model spec names (``"model:"`` stripped; a plain name is returned as is).

    Example:
        >>> model_reference("model:openai/clip-vit-base-patch32"), model_reference("/models/clip")
        ('openai/clip-vit-base-patch32', '/models/clip')
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"a model is named by a folder, a Hub id or 'model:<folder or id>', got {spec!r}")
    reference = spec[len(MODEL_PREFIX):] if spec.startswith(MODEL_PREFIX) else spec
    if not reference:
        raise ValueError(f"model spec {spec!r} names no model (expected 'model:<folder or Hub id>')")
    return reference


def force_cpu() -> bool:
    """Whether ``FORCE_CPU`` is set to a true value (anything but empty, ``0``, ``false``, ``no``).

    Example:
        >>> import os
        >>> os.environ["FORCE_CPU"] = "1"; force_cpu()
        True
        >>> del os.environ["FORCE_CPU"]; force_cpu()
        False
    """
    return os.environ.get(FORCE_CPU_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def accelerator() -> str:
    """The best device this machine offers: ``"cuda"``, then ``"mps"``, else ``"cpu"``.

    The one device query of the package (tests patch it). It does not read ``FORCE_CPU``:
    :func:`resolve_device` does, so that a patched query still loses to ``FORCE_CPU=1``.

    Example:
        >>> accelerator() in DEVICE_KINDS  # doctest: +SKIP
        True
    """
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(device: Optional[str] = "auto") -> str:
    """The device a model runs on: ``"cpu"`` under ``FORCE_CPU=1``; :func:`accelerator` for
    ``"auto"`` (or ``None``); otherwise ``device`` itself (``"cpu"``, ``"mps"``, ``"cuda"`` or
    ``"cuda:N"``), checked.

    Example:
        >>> resolve_device("cpu")
        'cpu'
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got 'tpu'
    """
    if device is None:
        device = "auto"
    kind, _, index = str(device).partition(":")
    if device != "auto" and (kind not in DEVICE_KINDS or (index and (kind != "cuda" or not index.isdigit()))):
        raise ValueError(f"device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N', got {device!r}")
    if force_cpu():
        return "cpu"
    return accelerator() if device == "auto" else str(device)


def resolve_dtype(dtype: Optional[str], device: str) -> str:
    """The precision a model runs in: ``dtype`` if given, else half precision (``"float16"``) on
    an accelerator and ``"float32"`` on the CPU (where half precision is slow and inexact).

    Example:
        >>> resolve_dtype(None, "cpu"), resolve_dtype(None, "cuda:0"), resolve_dtype("bfloat16", "cpu")
        ('float32', 'float16', 'bfloat16')
    """
    if dtype is None:
        return "float32" if device == "cpu" else "float16"
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return name


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: ``model`` (in eval mode, on ``device``, in ``dtype``), its
    ``processor`` (processor, tokenizer or feature extractor; ``None`` for sentence-transformers,
    which tokenizes itself), and where it came from.

    ``kind`` is ``"transformers"`` or ``"sentence-transformers"``.
    """

    model: Any
    processor: Any
    kind: str
    reference: str
    device: str
    dtype: str

    @property
    def torch_dtype(self):
        """The ``torch.dtype`` of :attr:`dtype`."""
        import torch

        return getattr(torch, self.dtype)


def is_sentence_transformers_folder(reference: str) -> bool:
    """Whether ``reference`` is a local sentence-transformers folder (it has ``modules.json``).

    Example:
        >>> is_sentence_transformers_folder("/nonexistent")
        False
    """
    return os.path.isdir(reference) and any(os.path.isfile(os.path.join(reference, name)) for name in _SENTENCE_TRANSFORMERS_FILES)


def model_identity(spec: str) -> str:
    """A short digest that changes when the model a spec names changes, for cache keys.

    For a local folder: the names, sizes and modification times of its files (weights are not
    read); for a Hub id: the id (the Hub cache pins a revision per id).

    Example:
        >>> model_identity("model:org/name") == model_identity("org/name")
        True
    """
    reference = model_reference(spec)
    digest = hashlib.sha256(reference.encode())
    if os.path.isdir(reference):
        for folder, subfolders, names in os.walk(reference):
            subfolders.sort()
            for name in sorted(names):
                status = os.stat(os.path.join(folder, name))
                digest.update(f"\0{os.path.relpath(os.path.join(folder, name), reference)}\0{status.st_size}\0{status.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_model(
    spec: str,
    *,
    device: Optional[str] = "auto",
    dtype: Optional[str] = None,
    model_class: Any = None,
    processor_class: Any = None,
    local_files_only: bool = True,
    cache: bool = True,
) -> LoadedModel:
    """Load the model ``spec`` names, with its processor, on its device, in eval mode.

    Parameters
    ----------
    spec : str
        A local folder, a Hub id, or ``"model:<folder or id>"``.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"mps"``, ``"cuda"``, ``"cuda:N"``;
        ``FORCE_CPU=1`` overrides it (:func:`resolve_device`).
    dtype : {"float32", "float16", "bfloat16"}, optional
        Default: float16 on an accelerator, float32 on the CPU.
    model_class : transformers auto class, optional
        ``transformers.AutoModel`` by default (CLIP, SigLIP, CLAP, BERT...);
        ``AutoModelForCausalLM`` etc. for other heads. A folder with ``modules.json`` is loaded
        with sentence-transformers unless a class is given.
    processor_class : transformers auto class, optional
        ``AutoProcessor`` by default, falling back to ``AutoTokenizer``, ``AutoImageProcessor``
        then ``AutoFeatureExtractor`` for models that ship only one of them.
    local_files_only : bool
        Hub ids are read from the local cache only (default); ``False`` allows a download.
    cache : bool
        Keep the loaded model for the next call with the same arguments (a few models at most).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ValueError
        A spec that names no model, a bad device or dtype.
    OSError
        The model cannot be found or read: the message names the spec and the reason.

    Example:
        >>> loaded = load_model("model:/models/tiny-clip", device="cpu")  # doctest: +SKIP
        >>> loaded.kind, loaded.device, loaded.dtype  # doctest: +SKIP
        ('transformers', 'cpu', 'float32')
    """
    reference = model_reference(spec)
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    key = (reference, model_identity(reference), model_class, processor_class, resolved_device, resolved_dtype, local_files_only)
    if cache:
        with _cache_lock:
            if key in _cache:
                return _cache[key]
    if model_class is None and is_sentence_transformers_folder(reference):
        loaded = _load_sentence_transformer(reference, resolved_device, resolved_dtype)
    else:
        loaded = _load_transformers(reference, resolved_device, resolved_dtype, model_class, processor_class, local_files_only)
    if cache:
        with _cache_lock:
            _cache[key] = loaded
            while len(_cache) > _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
    return loaded


def clear_cache() -> None:
    """Forget the loaded models kept by :func:`load_model` (frees their memory).

    Example:
        >>> clear_cache()
    """
    with _cache_lock:
        _cache.clear()


def _missing(reference: str, error: Exception) -> OSError:
    where = "folder" if os.path.isdir(reference) else "Hub id (read from the local Hugging Face cache)"
    return OSError(f"model {reference!r}: cannot load this {where}: {type(error).__name__}: {error}")


def _load_sentence_transformer(reference: str, device: str, dtype: str) -> LoadedModel:
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise ImportError(f"model {reference!r} is a sentence-transformers folder: install the 'vlm' extra") from error
    try:
        model = SentenceTransformer(reference, device=device, local_files_only=True)
    except (OSError, ValueError) as error:
        raise _missing(reference, error) from error
    model = model.to(getattr(torch, dtype)).eval()
    return LoadedModel(model, None, "sentence-transformers", reference, device, dtype)


def _load_transformers(reference: str, device: str, dtype: str, model_class, processor_class, local_files_only: bool) -> LoadedModel:
    try:
        import torch
        import transformers
    except ImportError as error:
        raise ImportError(f"loading model {reference!r} needs torch and transformers (the 'vlm' extra)") from error
    model_class = model_class or transformers.AutoModel
    try:
        model = model_class.from_pretrained(reference, dtype=getattr(torch, dtype), local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        raise _missing(reference, error) from error
    model = model.to(device).eval()
    processor = _load_processor(reference, processor_class, local_files_only)
    return LoadedModel(model, processor, "transformers", reference, device, dtype)


def _load_processor(reference: str, processor_class, local_files_only: bool):
    import transformers

    candidates = (
        [processor_class]
        if processor_class is not None
        else [transformers.AutoProcessor, transformers.AutoTokenizer, transformers.AutoImageProcessor, transformers.AutoFeatureExtractor]
    )
    failures = []
    for candidate in candidates:
        try:
            return candidate.from_pretrained(reference, local_files_only=local_files_only)
        except (OSError, ValueError, KeyError, TypeError) as error:
            failures.append(f"{candidate.__name__}: {error}")
    raise OSError(f"model {reference!r}: no processor, tokenizer or feature extractor could be loaded ({'; '.join(failures)})")
