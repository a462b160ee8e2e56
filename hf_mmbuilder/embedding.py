"""Embeddings of images, text, video and audio as a fixed-size float column, with the model kept busy.

:func:`embed` maps an :class:`Embedder` over the dataset (``.map(batched=True)``, so the
``datasets`` cache reuses the column on a rerun). Inside each map batch the work runs as a
pipeline: worker threads read, decode and preprocess the next model batches (JPEGs decoded at
reduced size when the model's input is smaller, collated by the model's own processor, pinned in
page-locked memory for CUDA) while the calling thread runs the model on the current one, so the
model never waits on decoding once the pipeline is full. Decoding (PIL, PyAV) and the forward pass
(torch) release the GIL, so threads give real overlap without pickling the model to processes.

Video frames and audio samples come from :mod:`hf_mmbuilder.frames` (PyAV, the ``video`` extra).
Models come from :mod:`hf_mmbuilder.models` (``device="auto"``: CUDA, then MPS, then CPU;
``FORCE_CPU=1`` wins; half precision on accelerators).

A row whose media cannot be read is never given a zero vector: ``on_error="raise"`` stops with the
file, the row and the reason; ``"skip"`` leaves the row out and writes it to a rejects file;
``"keep"`` keeps it with a null embedding and its reason in ``record_errors``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import logging
import math
import os
import threading
from typing import Any, Optional

import numpy as np

from .errors import ERRORS_COLUMN, ErrorPolicy, RecordError, check_on_error
from .frames import MediaDecodeError, decode_audio, sample_video_frames
from .media import resolve_media_path
from .models import LoadedModel, load_model, model_identity, model_reference, resolve_device, resolve_dtype
from .schema import AUDIO_TOKEN, EOC_TOKEN, IMAGE_TOKEN, VIDEO_TOKEN

logger = logging.getLogger("hf_mmbuilder")

MODALITIES = ("image", "text", "video", "audio")
REDUCTIONS = ("mean", "first", None)
# The DJ media column each modality reads by default.
MEDIA_COLUMNS = {"image": "images", "video": "videos", "audio": "audios", "text": "text"}
# Column of the item's position in its row's media list, with reduce=None.
ITEM_COLUMN = "media_index"
# Temporary per-row error column of the map, resolved by the error policy after it.
_ERRORS = "__embed_errors__"
_SPECIAL_TOKENS = (IMAGE_TOKEN, AUDIO_TOKEN, VIDEO_TOKEN, EOC_TOKEN)
# CLAP's feature extractor picks random crops of audio longer than its window ("fusion"); it is
# seeded per item, under a lock because the seed is numpy's global one.
_AUDIO_SEED = 0
_audio_lock = threading.Lock()


def strip_special_tokens(text: str) -> str:
    """``text`` without DJ media tokens and chunk ends, stripped (Data-Juicer's
    ``remove_special_tokens``): what a text encoder should read.

    Example:
        >>> strip_special_tokens("<__dj__image> a red bus <|__dj__eoc|>")
        'a red bus'
    """
    for token in _SPECIAL_TOKENS:
        text = text.replace(token, "")
    return text.strip()


def draft_size(width: int, height: int, target: tuple) -> tuple:
    """The smallest size a JPEG may be decoded at (``PIL.Image.draft``) and still cover ``target``.

    ``target`` is ``("shortest_edge", n)`` or ``("size", width, height)``; the answer keeps the
    aspect ratio and covers it on both axes, so the processor's own resize still sets the pixels.

    Example:
        >>> draft_size(640, 480, ("shortest_edge", 224)), draft_size(640, 480, ("size", 224, 224))
        ((299, 224), (299, 224))
    """
    if target[0] == "shortest_edge":
        scale = target[1] / min(width, height)
    else:
        scale = max(target[1] / width, target[2] / height)
    return (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))


def _image_target(image_processor) -> Optional[tuple]:
    size = getattr(image_processor, "size", None) or {}
    if not getattr(image_processor, "do_resize", True):
        return None
    if "shortest_edge" in size:
        return ("shortest_edge", int(size["shortest_edge"]))
    if "height" in size and "width" in size:
        return ("size", int(size["width"]), int(size["height"]))
    return None


def _where(item) -> str:
    """How an error names a media item: its path, or what kind of value it was."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return item.get("path") or "<image bytes>"
    if isinstance(item, (bytes, bytearray)):
        return "<bytes>"
    return f"<{type(item).__name__}>"


def open_image(item, target: Optional[tuple] = None, draft: bool = True):
    """An RGB ``PIL.Image`` from a path, ``{"bytes", "path"}`` dict (``Image(decode=False)``),
    bytes or a PIL image; JPEGs decoded at the smallest DCT scale covering ``target`` when ``draft``.

    Raises ``ValueError`` (unreadable, truncated, a decompression bomb) with the reason.

    Example:
        >>> from PIL import Image
        >>> buffer = io.BytesIO(); Image.new("RGB", (640, 480), "red").save(buffer, "JPEG")
        >>> open_image(buffer.getvalue(), ("shortest_edge", 100)).size
        (160, 120)
    """
    from PIL import Image

    if isinstance(item, Image.Image):
        image = item
    else:
        if isinstance(item, dict):
            source = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else item.get("path")
        elif isinstance(item, (bytes, bytearray)):
            source = io.BytesIO(item)
        else:
            source = item
        if source is None:
            raise ValueError("the image has neither bytes nor a path")
        try:
            image = Image.open(source)
            if draft and target is not None and image.format == "JPEG":
                image.draft("RGB", draft_size(image.width, image.height, target))
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"cannot read the image: {type(error).__name__}: {error}") from error
    return image if image.mode == "RGB" else image.convert("RGB")


@dataclasses.dataclass
class _Prepared:
    """One model batch, ready: model inputs (CPU, pinned for CUDA), units per item (frames of a
    video, 1 otherwise), and the items that failed with their reasons."""

    inputs: Optional[dict]
    units: list
    failures: dict


class _Encoder:
    """What one modality does with one loaded model: ``prepare`` (worker threads) and ``forward``."""

    def __init__(self, loaded: LoadedModel, modality: str, *, num_frames: int, draft: bool):
        self.loaded = loaded
        self.modality = modality
        self.num_frames = num_frames
        self.draft = draft
        self.pin = loaded.device.startswith("cuda")
        processor = loaded.processor
        if loaded.kind == "sentence-transformers":
            if modality != "text":
                raise ValueError(f"model {loaded.reference!r} is a sentence-transformers text model; it cannot embed {modality}")
            return
        if modality in ("image", "video"):
            self.image_processor = getattr(processor, "image_processor", processor)
            if not callable(self.image_processor) or not hasattr(self.image_processor, "preprocess"):
                raise ValueError(f"model {loaded.reference!r} has no image processor: it cannot embed {modality}")
            self.target = _image_target(self.image_processor)
        elif modality == "audio":
            self.feature_extractor = getattr(processor, "feature_extractor", processor)
            self.sample_rate = getattr(self.feature_extractor, "sampling_rate", None)
            if not self.sample_rate:
                raise ValueError(f"model {loaded.reference!r} has no audio feature extractor with a sampling rate: it cannot embed audio")
        else:
            self.tokenizer = getattr(processor, "tokenizer", processor)
            if not callable(self.tokenizer):
                raise ValueError(f"model {loaded.reference!r} has no tokenizer: it cannot embed text")

    # -- worker side ---------------------------------------------------------------------------

    def prepare(self, items: list) -> _Prepared:
        decoded, units, failures = [], [], {}
        for position, item in enumerate(items):
            try:
                value = self._decode(item)
            except ValueError as error:
                failures[position] = str(error)
                continue
            if self.modality == "video":
                decoded.extend(value)
                units.append(len(value))
            else:
                decoded.append(value)
                units.append(1)
        if not decoded:
            return _Prepared(None, units, failures)
        inputs = self._collate(decoded)
        if self.pin:
            inputs = {name: value.pin_memory() if hasattr(value, "pin_memory") else value for name, value in inputs.items()}
        return _Prepared(inputs, units, failures)

    def _decode(self, item):
        if self.modality == "text":
            if item is None:
                raise ValueError("the text is null")
            return strip_special_tokens(item)
        if self.modality == "image":
            return open_image(item, self.target, self.draft)
        path = item.get("path") if isinstance(item, dict) else item
        if not isinstance(path, str):
            raise ValueError(f"{self.modality} is read from a file path, got {_where(item)}")
        try:
            if self.modality == "video":
                return list(sample_video_frames(path, self.num_frames).frames)
            return decode_audio(path, sample_rate=self.sample_rate, mono=True).samples
        except MediaDecodeError as error:
            raise ValueError(error.reason) from error

    def _collate(self, decoded: list) -> dict:
        if self.loaded.kind == "sentence-transformers":
            return dict(self.loaded.model.tokenize(decoded))
        if self.modality in ("image", "video"):
            return dict(self.image_processor(images=decoded, return_tensors="pt"))
        if self.modality == "audio":
            return self._audio_features(decoded)
        model_type = getattr(self.loaded.model.config, "model_type", "")
        # SigLIP pools the last position and was trained on max_length padding: a shorter padding
        # would change its vectors with the batch's longest text.
        padding = "max_length" if model_type.startswith("siglip") else True
        return dict(self.tokenizer(decoded, padding=padding, truncation=True, max_length=self._max_length(), return_tensors="pt"))

    def _max_length(self) -> Optional[int]:
        config = self.loaded.model.config
        text_config = getattr(config, "text_config", None) or config
        limits = [getattr(text_config, "max_position_embeddings", None), getattr(self.tokenizer, "model_max_length", None)]
        limits = [int(limit) for limit in limits if limit and limit < 1_000_000]
        return min(limits) if limits else None

    def _audio_features(self, decoded: list) -> dict:
        import torch

        parts = []
        with _audio_lock:
            state = np.random.get_state()
            try:
                for samples in decoded:
                    np.random.seed(_AUDIO_SEED)
                    parts.append(self.feature_extractor(samples, sampling_rate=self.sample_rate, return_tensors="pt"))
            finally:
                np.random.set_state(state)
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0].keys()}

    # -- model side ----------------------------------------------------------------------------

    def forward(self, inputs: dict) -> np.ndarray:
        import torch

        loaded = self.loaded
        device = torch.device(loaded.device)
        moved = {}
        for name, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=self.pin)
                if value.is_floating_point():
                    value = value.to(loaded.torch_dtype)
            moved[name] = value
        model = loaded.model
        with torch.inference_mode():
            if loaded.kind == "sentence-transformers":
                output = model(moved)["sentence_embedding"]
            elif self.modality in ("image", "video"):
                output = self._pooled(model.get_image_features(**moved) if hasattr(model, "get_image_features") else model(**moved), "image_embeds")
            elif self.modality == "audio":
                output = self._pooled(model.get_audio_features(**moved) if hasattr(model, "get_audio_features") else model(**moved), "audio_embeds")
            elif hasattr(model, "get_text_features"):
                output = self._pooled(model.get_text_features(**moved), "text_embeds")
            else:
                # A plain text encoder (BERT-like): the mean of its token states over the mask,
                # as sentence-transformers pools.
                states = model(**moved).last_hidden_state
                mask = moved["attention_mask"].unsqueeze(-1).to(states.dtype)
                output = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
        return output.float().cpu().numpy()

    @staticmethod
    def _pooled(output, name: str):
        if hasattr(output, "shape"):
            return output
        for key in (name, "pooler_output"):
            value = getattr(output, key, None)
            if value is not None:
                return value
        raise ValueError(f"the model's output has neither {name} nor pooler_output")


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def _run_pipeline(encoder: _Encoder, chunks: list, num_workers: int, prefetch: int):
    """Yield ``(chunk index, prepared, vectors)`` in order: ``prepare`` on ``num_workers`` threads,
    up to ``prefetch`` batches ahead, ``forward`` on this thread."""
    if not chunks:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="embed-data") as pool:
        pending = {}
        submitted = 0
        for index in range(len(chunks)):
            while submitted < len(chunks) and submitted < index + prefetch:
                pending[submitted] = pool.submit(encoder.prepare, chunks[submitted])
                submitted += 1
            prepared = pending.pop(index).result()
            vectors = encoder.forward(prepared.inputs) if prepared.inputs is not None else None
            yield index, prepared, vectors


@dataclasses.dataclass(frozen=True)
class Embedder:
    """The batched ``.map`` op :func:`embed` runs: embeds the media (or text) of a batch's rows.

    A frozen dataclass, so ``datasets`` fingerprints it (the model enters the fingerprint through
    ``model_identity``: a changed model folder is a new cache entry). Returns the embedding column
    (``float32`` vectors, null for a failed row) and ``__embed_errors__`` (reasons per row), which
    :func:`embed` resolves with the error policy.
    """

    model: str
    model_identity: str
    modality: str
    source: str
    column: str = "embedding"
    batch_size: int = 32
    device: str = "auto"
    dtype: Optional[str] = None
    normalize: bool = True
    reduce: Optional[str] = "mean"
    num_workers: int = 1
    prefetch: int = 2
    media_root: Optional[str] = None
    num_frames: int = 8
    draft: bool = True
    on_error: str = "raise"
    single: bool = False

    def __call__(self, batch: dict, indices: list) -> dict:
        loaded = load_model(self.model, device=self.device, dtype=self.dtype)
        encoder = _Encoder(loaded, self.modality, num_frames=self.num_frames, draft=self.draft)
        values = batch[self.source]
        roots = batch.get("media_root") if self.media_root is None else None
        owners, items, positions = [], [], []
        errors: list = [[] for _ in values]
        for row, value in enumerate(values):
            if self.single:
                row_items = [] if value is None else [value]
            else:
                row_items = list(value or ())
            if not row_items:
                errors[row].append({"file": self.source, "reason": f"the row has no {self.modality}"})
            root = self.media_root if roots is None else roots[row]
            for position, item in enumerate(row_items):
                if isinstance(item, str) and self.modality != "text":
                    item = resolve_media_path(item, root)
                owners.append(row)
                items.append(item)
                positions.append(position)
        chunks = [items[start:start + self.batch_size] for start in range(0, len(items), self.batch_size)]
        item_vectors: list = [None] * len(items)
        for index, prepared, vectors in _run_pipeline(encoder, chunks, self.num_workers, self.prefetch):
            start = index * self.batch_size
            for position, reason in sorted(prepared.failures.items()):
                errors[owners[start + position]].append({"file": _where(items[start + position]), "reason": reason})
            offset = 0
            good = [position for position in range(len(chunks[index])) if position not in prepared.failures]
            for position, units in zip(good, prepared.units):
                item_vectors[start + position] = self._reduce_units(vectors[offset:offset + units])
                offset += units
        if self.on_error == "raise" and any(errors):
            # The batch's first bad row, whatever its kind of failure (the rows before it are fine).
            row = next(row for row, reasons in enumerate(errors) if reasons)
            raise RecordError(errors[row][0]["file"], indices[row], errors[row][0]["reason"])
        members: list = [[] for _ in values]
        for item, owner in enumerate(owners):
            members[owner].append(item)
        return self._rows(batch, members, positions, item_vectors, errors)

    def _reduce_units(self, block: np.ndarray) -> np.ndarray:
        """One vector per item: a video's frames averaged (unit vectors first when normalizing)."""
        if self.normalize:
            block = _normalized(block)
        vector = block.mean(axis=0) if len(block) > 1 else block[0]
        return _normalized(vector) if self.normalize else vector

    def _rows(self, batch, members, positions, item_vectors, errors) -> dict:
        n = len(errors)
        if self.reduce is None:
            take, vectors, media_index = [], [], []
            for row in range(n):
                if errors[row]:
                    take.append(row)
                    vectors.append(None)
                    media_index.append(None)
                    continue
                for member in members[row]:
                    take.append(row)
                    vectors.append(item_vectors[member])
                    media_index.append(positions[member])
            out = {name: [values[row] for row in take] for name, values in batch.items()}
            out[ITEM_COLUMN] = media_index
            row_errors = [errors[row] for row in take]
        else:
            vectors = []
            for row in range(n):
                if errors[row]:
                    vectors.append(None)
                elif self.reduce == "first" or len(members[row]) == 1:
                    vectors.append(item_vectors[members[row][0]])
                else:
                    vector = np.mean([item_vectors[member] for member in members[row]], axis=0)
                    vectors.append(_normalized(vector) if self.normalize else vector)
            out = {}
            row_errors = errors
        out[self.column] = vectors
        out[_ERRORS] = row_errors
        return out



def output_dimension(encoder: _Encoder) -> int:
    """The model's output width, from one forward pass on a blank input: the column's type is
    fixed before the map (``List(Value("float32"), length=d)``), so that every batch writes it.

    Example:
        >>> output_dimension(_Encoder(load_model("model:/models/tiny-clip"), "image", num_frames=1, draft=True))  # doctest: +SKIP
        8
    """
    from PIL import Image

    blank = {"image": Image.new("RGB", (32, 32)), "video": Image.new("RGB", (32, 32)), "text": "a",
             "audio": np.zeros(getattr(encoder, "sample_rate", 0) or 16000, np.float32)}[encoder.modality]
    return int(encoder.forward(encoder._collate([blank])).shape[-1])


def default_source(ds, modality: str) -> str:
    """The column ``embed`` reads for ``modality``: the DJ column (``images``, ``videos``,
    ``audios``, ``text``) if present, else the first column holding ``Image`` / ``Audio`` /
    ``Video`` values (one or a list per row).

    Example:
        >>> import datasets
        >>> default_source(datasets.Dataset.from_dict({"text": ["a"], "images": [["a.jpg"]]}), "image")
        'images'
    """
    import datasets

    name = MEDIA_COLUMNS[modality]
    if name in ds.column_names:
        return name
    kinds = {"image": datasets.Image, "audio": datasets.Audio, "video": datasets.Video}
    if modality in kinds:
        for column, feature in ds.features.items():
            inner = getattr(feature, "feature", feature)
            if isinstance(feature, kinds[modality]) or isinstance(inner, kinds[modality]):
                return column
    raise ValueError(f"no {modality} column: expected {name!r} or a column of {modality} features (columns: {ds.column_names})")


def _undecoded(feature):
    """The feature with media decoding turned off (workers decode, not the map's formatter)."""
    import datasets

    if isinstance(feature, (datasets.Image, datasets.Audio, datasets.Video)):
        return dataclasses.replace(feature, decode=False)
    if isinstance(feature, datasets.List) and isinstance(feature.feature, (datasets.Image, datasets.Audio, datasets.Video)):
        return datasets.List(dataclasses.replace(feature.feature, decode=False), length=feature.length)
    return None


def _single_item_column(ds, source: str) -> bool:
    """Whether each row holds one media value (an ``Image()`` column) rather than a list."""
    import datasets

    feature = ds.features[source]
    return isinstance(feature, (datasets.Image, datasets.Audio, datasets.Video)) or (
        isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string", "binary", "large_binary")
    )


def embed(
    ds,
    model: str,
    *,
    modality: str = "image",
    column: str = "embedding",
    batch_size: Optional[int] = None,
    device: str = "auto",
    dtype: Optional[str] = None,
    normalize: bool = True,
    reduce: Optional[str] = "mean",
    num_workers: Optional[int] = None,
    progress: bool = True,
    source: Optional[str] = None,
    media_root: Optional[str] = None,
    num_frames: int = 8,
    draft: bool = True,
    on_error: str = "raise",
    rejects_path: Optional[str] = None,
):
    """Return ``ds`` with a fixed-size float32 embedding column computed by ``model``.

    Parameters
    ----------
    ds : datasets.Dataset
    model : str
        A local folder, a Hub id (from the local cache) or ``"model:<folder or id>"``: a
        ``transformers`` model with ``get_image_features`` / ``get_text_features`` /
        ``get_audio_features`` (CLIP, SigLIP, CLAP), a plain text encoder (mean of its token
        states), or a sentence-transformers folder (text).
    modality : {"image", "text", "video", "audio"}
        What to embed. Images: paths (DJ ``images``, relative to each row's ``media_root``),
        ``Image`` values or bytes; video: frames sampled by PyAV (``num_frames`` evenly spaced),
        embedded as images and averaged; audio: decoded and resampled to the processor's rate;
        text: the text with DJ tokens removed.
    column : str
        Name of the new column: ``List(Value("float32"), length=d)``.
    batch_size : int, optional
        Items per forward pass (default 32 on the CPU, 128 on an accelerator).
    device, dtype : str, optional
        ``"auto"`` picks CUDA, then MPS, then CPU (``FORCE_CPU=1`` forces the CPU); the dtype
        defaults to float16 on accelerators and float32 on the CPU.
    normalize : bool
        L2-normalize each vector (and each mean again after averaging).
    reduce : {"mean", "first", None}
        Several media in a row: their mean, the first, or (``None``) one output row per media
        item, with its position in the list in ``media_index``.
    num_workers : int, optional
        Threads reading and preprocessing ahead of the model (default: half the CPUs, 1 to 4).
    progress : bool
        Show the ``datasets`` progress bar.
    source : str, optional
        Column to read (default: :func:`default_source`).
    media_root : str, optional
        Folder relative paths are read from (default: each row's ``media_root`` column).
    num_frames : int
        Frames sampled per video.
    draft : bool
        Decode JPEGs at the smallest 1/2, 1/4 or 1/8 scale that still covers the model's input
        size (``PIL.Image.draft``); the processor's resize then sets the pixels. This halves the
        decode cost of photos larger than twice the input size, and changes pixel values a
        little (DCT scaling instead of a full-size decode); ``False`` decodes at full size.
    on_error : {"raise", "skip", "keep"}
        A row whose media cannot be read, or which has none: raise (naming the file, the row and
        the reason), leave it out (written to ``rejects_path``, count logged), or keep it with a
        null embedding and the reasons in ``record_errors``.
    rejects_path : str, optional
        Rejects file of ``on_error="skip"`` (default ``<datasets cache>/hf_mmbuilder_rejects/embed-<fingerprint>.jsonl``).

    Returns
    -------
    datasets.Dataset
        Cached like any ``.map``: the same call on the same data reuses the column. On the CPU the
        values are the same for the same input and batch size; other batch sizes or worker counts
        change no value by more than ~1e-6.

    Example
    -------
    >>> with_vectors = embed(ds, "model:openai/clip-vit-base-patch32", modality="image")  # doctest: +SKIP
    >>> with_vectors.features["embedding"]  # doctest: +SKIP
    List(Value('float32'), length=512)
    """
    import datasets

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    check_on_error(on_error)
    if modality == "text" and reduce is None:
        raise ValueError("reduce=None (one row per media item) applies to media, not text")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if column in ds.column_names:
        raise ValueError(f"column {column!r} already exists; pass column= another name or remove it first")
    reference = model_reference(model)
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    batch_size = batch_size or (32 if resolved_device == "cpu" else 128)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    workers = num_workers if num_workers is not None else min(4, max(1, (os.cpu_count() or 2) // 2))
    if workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    source = source or default_source(ds, modality)
    if source not in ds.column_names:
        raise ValueError(f"source column {source!r} not in the dataset (columns: {ds.column_names})")

    original_feature = ds.features[source]
    undecoded = _undecoded(original_feature)
    working = ds.cast_column(source, undecoded) if undecoded is not None else ds
    single = modality == "text" or _single_item_column(working, source)
    # Loaded before the map (and kept by the models cache for it): a wrong model fails here, and
    # one forward pass gives the width of the column's fixed-size type.
    loaded = load_model(reference, device=resolved_device, dtype=resolved_dtype)
    dimension = output_dimension(_Encoder(loaded, modality, num_frames=num_frames, draft=draft))
    features = working.features.copy()
    if reduce is None:
        features[ITEM_COLUMN] = datasets.Value("int32")
    features[column] = datasets.List(datasets.Value("float32"), length=dimension)
    features[_ERRORS] = datasets.List({"file": datasets.Value("string"), "reason": datasets.Value("string")})

    op = Embedder(
        model=reference, model_identity=model_identity(reference), modality=modality, source=source, column=column,
        batch_size=batch_size, device=resolved_device, dtype=resolved_dtype, normalize=normalize, reduce=reduce,
        num_workers=workers, prefetch=2 * workers, media_root=media_root, num_frames=num_frames, draft=draft,
        on_error=on_error, single=single,
    )
    disabled = not progress and not datasets.are_progress_bars_disabled()
    if disabled:
        datasets.disable_progress_bars()
    try:
        mapped = working.map(
            op, batched=True, with_indices=True, batch_size=max(batch_size * 8, 256), features=features,
            remove_columns=working.column_names if reduce is None else None, desc=f"embedding {modality}",
        )
    finally:
        if disabled:
            datasets.enable_progress_bars()
    if undecoded is not None:
        mapped = mapped.cast_column(source, original_feature)
    return _apply_policy(mapped, on_error, rejects_path)


def _apply_policy(mapped, on_error: str, rejects_path: Optional[str]):
    """Resolve the per-row errors of the map: skip (rejects file) or keep (``record_errors``)."""
    import datasets

    errors = mapped[_ERRORS]
    failed = [row for row, reasons in enumerate(errors) if reasons]
    if not failed:
        return mapped.remove_columns(_ERRORS)
    if on_error == "keep":
        has_column = ERRORS_COLUMN in mapped.column_names

        def merge(batch):
            earlier = batch[ERRORS_COLUMN] if has_column else [None] * len(batch[_ERRORS])
            return {ERRORS_COLUMN: [list(before or []) + [f"{error['file']}: {error['reason']}" for error in reasons]
                                    for before, reasons in zip(earlier, batch[_ERRORS])]}

        features = mapped.features.copy()
        features[ERRORS_COLUMN] = datasets.List(datasets.Value("string"))
        kept = mapped.map(merge, batched=True, features=features, desc="recording embedding errors")
        logger.warning("embed: kept %d row(s) that could not be embedded, with a null embedding, flagged in column %r", len(failed), ERRORS_COLUMN)
        return kept.remove_columns(_ERRORS)
    path = rejects_path or os.path.join(datasets.config.HF_DATASETS_CACHE, "hf_mmbuilder_rejects", f"embed-{mapped._fingerprint}.jsonl")
    if os.path.exists(path):
        os.remove(path)
    with ErrorPolicy("skip", path) as policy:
        for row in failed:
            first = errors[row][0]
            reason = "; ".join(f"{error['file']}: {error['reason']}" for error in errors[row][1:])
            policy.handle(RecordError(first["file"], row, first["reason"] + (f" (and {reason})" if reason else "")))
    failed_rows = set(failed)
    kept = mapped.filter(lambda _, index: index not in failed_rows, with_indices=True, desc="leaving out rows that failed")
    return kept.remove_columns(_ERRORS)


def model_embeddings(ds, model: str, *, modality: str = "text", on_error: str = "raise", **options) -> np.ndarray:
    """The ``(len(ds), d)`` float32 matrix :func:`embed` computes for ``ds``, for the callers that
    take ``embeddings="model:<id>"`` (semantic dedup, selection). Rows are those of ``ds``.

    ``on_error="raise"`` stops at the first row that cannot be embedded (naming the file, the row
    and the reason); ``"keep"`` logs each such row with its reason and gives it a NaN vector, for
    callers that set such rows apart. ``options`` are :func:`embed`'s (``batch_size``, ``device``,
    ``source``, ``media_root``, ``progress``, ...).

    Example:
        >>> model_embeddings(ds, "model:/models/tiny-clip", modality="image").shape  # doctest: +SKIP
        (120, 512)
    """
    if on_error not in ("raise", "keep"):
        raise ValueError(f"on_error must be 'raise' or 'keep' here (one vector per row), got {on_error!r}")
    name = "__hf_mmbuilder_embedding__"
    out = embed(ds, model, modality=modality, column=name, on_error=on_error, **options)
    vectors = out.with_format("arrow")[name]
    vectors = vectors.combine_chunks() if hasattr(vectors, "combine_chunks") else vectors
    width = vectors.type.list_size
    # The child values of every slot, null ones included (flatten() would leave those out).
    values = vectors.values.slice(vectors.offset * width, len(vectors) * width)
    matrix = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(out), width).copy()
    if vectors.null_count:
        reasons = out[ERRORS_COLUMN]
        for row in np.flatnonzero(np.asarray(vectors.is_null())).tolist():
            logger.warning("row %d has no %s embedding: %s", row, modality, "; ".join(reasons[row]))
            matrix[row] = np.nan
    return matrix
