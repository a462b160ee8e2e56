"""CLIP image-text similarity per chunk, as Data-Juicer's ``image_text_similarity_filter`` scores it.

:class:`ImageTextSimilarity` writes ``__dj__stats__["image_text_similarity"]``: for each chunk of
``text`` (split at ``<|__dj__eoc|>``) that holds image tokens, the CLIP score of the chunk's text
(DJ tokens removed) against the chunk's images, ``logits_per_text / 100`` reduced over the images
by ``reduce_mode`` (``avg``, ``max``, ``min``), after the optional flips. ``logits_per_text`` is
``exp(logit_scale) * cos(text, image)``, and a trained CLIP's ``exp(logit_scale)`` is 100, so the
score is the cosine similarity. Rows without images get ``[]`` (Data-Juicer keeps them).
:class:`hf_mmbuilder.ops.QualityFilter` filters on it (``min_image_text_similarity`` /
``max_image_text_similarity``: Data-Juicer's ``min_score`` / ``max_score``, ``any_or_all``).

Unlike Data-Juicer, which runs the model once per chunk, the op embeds every image and chunk text
of a batch in a few batched forward passes and takes the scores from the two embedding matrices:
the same numbers (CLIP's towers see each image and text on its own; padding is masked out).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pyarrow as pa

from ..embedding import open_image, strip_special_tokens
from ..media import resolve_media_path
from ..models import load_model, model_identity, model_reference
from ..schema import DEFAULT_TOKENS, SpecialTokens
from ._batch import STATS_COLUMN, column, merge_stats, num_rows, output, text_column

STAT_KEY = "image_text_similarity"
REDUCE_MODES = ("avg", "max", "min")


@dataclasses.dataclass(frozen=True)
class ImageTextSimilarity:
    """Batched ``.map`` op: Data-Juicer's ``image_text_similarity`` stat with a CLIP model.

    Parameters
    ----------
    model : str
        A CLIP-like model with ``get_image_features``, ``get_text_features`` and ``logit_scale``:
        a folder, a Hub id (local cache) or ``"model:<...>"`` (Data-Juicer's ``hf_clip``).
    reduce_mode : {"avg", "max", "min"}
        How a chunk's several images reduce to one score.
    horizontal_flip, vertical_flip : bool
        Mirror / flip each image before scoring (both: mirrored, then flipped).
    batch_size : int
        Images (and texts) per forward pass.
    device, dtype : str, optional
        As :func:`hf_mmbuilder.models.load_model` (``FORCE_CPU=1`` forces the CPU).
    media_root : str, optional
        Folder relative paths are read from (default: each row's ``media_root`` column).
    tokens : SpecialTokens
        The DJ tokens of ``text``.

    An image that cannot be read gives its chunk a ``NaN`` score and a message in the stats'
    ``media_errors`` list (so ``QualityFilter`` drops the row, saying why), never a made-up score.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image> a red bus <|__dj__eoc|>"], "images": [["bus.jpg"]]})
        >>> scored = ds.map(ImageTextSimilarity("model:openai/clip-vit-base-patch32"), batched=True)  # doctest: +SKIP
        >>> scored[0]["__dj__stats__"]["image_text_similarity"]  # doctest: +SKIP
        [0.31]
    """

    model: str
    reduce_mode: str = "avg"
    horizontal_flip: bool = False
    vertical_flip: bool = False
    batch_size: int = 32
    device: Optional[str] = "auto"
    dtype: Optional[str] = None
    media_root: Optional[str] = None
    tokens: SpecialTokens = DEFAULT_TOKENS
    # Part of the datasets fingerprint: a changed model folder is a new cache entry.
    model_identity: str = ""

    def __post_init__(self):
        if self.reduce_mode not in REDUCE_MODES:
            raise ValueError(f"reduce_mode must be one of {REDUCE_MODES} (Data-Juicer's), got {self.reduce_mode!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        object.__setattr__(self, "model", model_reference(self.model))
        if not self.model_identity:
            object.__setattr__(self, "model_identity", model_identity(self.model))

    def __call__(self, batch):
        n = num_rows(batch)
        texts = text_column(batch).to_pylist()
        images = column(batch, "images")
        image_lists = images.to_pylist() if images is not None else [[] for _ in range(n)]
        root_column = column(batch, "media_root")
        roots = root_column.to_pylist() if root_column is not None and self.media_root is None else [self.media_root] * n
        # (row, chunk text, [image indices]) for every chunk with images, as Data-Juicer walks them.
        chunks, paths, owners = [], [], []
        for row in range(n):
            offset = 0
            paths_of_row = image_lists[row] or []
            for chunk in texts[row].split(self.tokens.eoc):
                count = chunk.count(self.tokens.image)
                if count and chunk:
                    wanted = paths_of_row[offset:offset + count]
                    first = len(paths)
                    paths.extend(resolve_media_path(path, roots[row]) for path in wanted)
                    owners.extend([row] * len(wanted))
                    chunks.append((row, self._chunk_text(chunk), list(range(first, first + len(wanted)))))
                offset += count
        loaded = load_model(self.model, device=self.device, dtype=self.dtype)
        errors: dict = {}
        pictures = []
        for index, path in enumerate(paths):
            try:
                pictures.append(self._flipped(open_image(path, draft=False)))
            except ValueError as error:
                errors.setdefault(owners[index], []).append(f"{path}: {error}")
                pictures.append(None)
        image_vectors = self._image_vectors(loaded, pictures)
        text_vectors = self._text_vectors(loaded, [text for _, text, _ in chunks])
        scale = float(loaded.model.logit_scale.detach().float().exp()) if hasattr(loaded.model, "logit_scale") else 100.0
        scores: list = [[] for _ in range(n)]
        for (row, _, members), text_vector in zip(chunks, text_vectors):
            if not members:
                # A chunk whose image tokens outnumber the row's paths: Data-Juicer fails here.
                scores[row].append(float("nan"))
                errors.setdefault(row, []).append("image tokens without image paths")
                continue
            logits = [scale * float(image_vectors[member] @ text_vector) / 100.0 if image_vectors[member] is not None else float("nan")
                      for member in members]
            reduce = {"avg": np.mean, "max": np.max, "min": np.min}[self.reduce_mode]
            scores[row].append(float(reduce(logits)))
        existing = column(batch, STATS_COLUMN)
        has_errors = existing is not None and pa.types.is_struct(existing.type) and existing.type.get_field_index("media_errors") >= 0
        fields = {STAT_KEY: pa.array(scores, type=pa.list_(pa.float64()))}
        if errors or has_errors:
            # Added to the errors ComputeStats may have recorded, never replacing them.
            before = existing.field("media_errors").to_pylist() if has_errors else [[] for _ in range(n)]
            fields["media_errors"] = pa.array([(before[row] or []) + errors.get(row, []) for row in range(n)], type=pa.list_(pa.string()))
        return output(batch, {STATS_COLUMN: merge_stats(batch, fields)})

    def _chunk_text(self, chunk: str) -> str:
        for token in (self.tokens.image, self.tokens.audio, self.tokens.video, self.tokens.eoc):
            chunk = chunk.replace(token, "")
        return chunk.strip()

    def _flipped(self, image):
        from PIL import ImageOps

        if self.horizontal_flip:
            image = ImageOps.mirror(image)
        if self.vertical_flip:
            image = ImageOps.flip(image)
        return image

    def _image_vectors(self, loaded, pictures: list) -> list:
        import torch

        processor = getattr(loaded.processor, "image_processor", loaded.processor)
        readable = [index for index, picture in enumerate(pictures) if picture is not None]
        vectors: list = [None] * len(pictures)
        for start in range(0, len(readable), self.batch_size):
            members = readable[start:start + self.batch_size]
            pixels = processor(images=[pictures[index] for index in members], return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                features = _pooled(loaded.model.get_image_features(pixel_values=pixels.to(loaded.device, loaded.torch_dtype)))
            for index, vector in zip(members, _unit(features)):
                vectors[index] = vector
        return vectors

    def _text_vectors(self, loaded, texts: list) -> list:
        import torch

        tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
        config = loaded.model.config
        max_length = getattr(getattr(config, "text_config", config), "max_position_embeddings", None)
        vectors = []
        for start in range(0, len(texts), self.batch_size):
            tokens = tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                features = _pooled(loaded.model.get_text_features(**{name: value.to(loaded.device) for name, value in tokens.items()}))
            vectors.extend(_unit(features))
        return vectors


def _pooled(output):
    return output if hasattr(output, "shape") else output.pooler_output


def _unit(features) -> np.ndarray:
    vectors = features.float().cpu().numpy().astype(np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
