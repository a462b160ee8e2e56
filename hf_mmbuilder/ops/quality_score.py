"""The guide's instruction quality score, per row: ``Q = Consistency(r, r̂) · Relevance(r, I) · Fluency(r)``
for a response ``r`` to an instruction ``I`` (and its media), ``r̂`` a second, independently
written response.

- **Relevance** is the cosine similarity of the response and instruction embeddings under a text
  model, times the CLIP similarity of the response and the row's images for rows with images;
- **Fluency** maps a causal language model's per-token perplexity of the response to [0, 1] by
  :func:`fluency_from_perplexity` (``1 / (1 + (ppl / midpoint) ** steepness)``: decreasing in
  perplexity, 0.5 at ``midpoint``);
- **Consistency** is the cosine similarity of the response and ``r̂`` embeddings under the text
  model (``r̂`` from a column: a reference answer, or a second response written by a synthesis
  backend, see :func:`hf_mmbuilder.synthesis.second_responses`).

Similarities below 0 count as 0, so every dimension and ``Q`` lie in [0, 1].
:class:`InstructionQualityScore` writes each measured dimension and ``Q`` into ``__dj__stats__``;
:class:`hf_mmbuilder.ops.QualityFilter` ``(min_q=...)`` keeps the rows whose ``Q`` reaches a threshold.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from ..embedding import embed
from ..models import load_model, model_identity
from ..schema import DEFAULT_TOKENS, ROLE_MARKER_PATTERN, SpecialTokens
from ._batch import STATS_COLUMN, column, merge_stats, num_rows, output, text_column

QUALITY_DIMENSIONS = ("consistency", "relevance", "fluency")
Q_FIELD = "Q"
# Role names of the answering side of a conversation (LLaVA, ShareGPT, Oasis and chat templates).
ASSISTANT_ROLES = ("gpt", "assistant", "model", "bot")

_ROLE_MARKER = re.compile(ROLE_MARKER_PATTERN)


def instruction_and_response(text: Optional[str], tokens: SpecialTokens = DEFAULT_TOKENS) -> tuple[str, str]:
    """The instruction (every non-assistant turn) and the response (every assistant turn) of a DJ
    conversation text, media tokens and role markers removed, whitespace collapsed. A text without
    role markers (a caption) is all response, with an empty instruction. O(len(text)).

    Example:
        >>> instruction_and_response("[[human]]: <__dj__image>\\nWhat is it?\\n[[gpt]]: A red bus. <|__dj__eoc|>")
        ('What is it?', 'A red bus.')
        >>> instruction_and_response("<__dj__image> A cat on a mat. <|__dj__eoc|>")
        ('', 'A cat on a mat.')
    """
    text = (text or "").replace(tokens.eoc, "\n")  # a chunk end may run straight into the next role marker
    for token in (tokens.image, tokens.audio, tokens.video):
        text = text.replace(token, " ")
    markers = list(_ROLE_MARKER.finditer(text))
    if not markers:
        return "", " ".join(text.split())
    instruction, response = [], []
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        role = marker.group(0)[2:-3].strip().lower()
        (response if role in ASSISTANT_ROLES else instruction).append(text[marker.end():end])
    return " ".join(" ".join(instruction).split()), " ".join(" ".join(response).split())


def fluency_from_perplexity(perplexity, midpoint: float = 100.0, steepness: float = 2.0) -> np.ndarray:
    """Fluency in [0, 1] from per-token perplexity: ``1 / (1 + (ppl / midpoint) ** steepness)``.

    Strictly decreasing in perplexity: 1 at perplexity 0 (never reached: perplexity >= 1), 0.5 at
    ``midpoint``, towards 0 as perplexity grows; ``steepness`` sets how fast. With the defaults a
    language model's perplexity of fluent prose (10-30) scores 0.99-0.92, of word salad
    (thousands) below 0.01. A NaN perplexity (nothing to measure) scores 0.

    Example:
        >>> fluency_from_perplexity([1.0, 20.0, 100.0, 1000.0]).round(3).tolist()
        [1.0, 0.962, 0.5, 0.01]
    """
    if midpoint <= 0 or steepness <= 0:
        raise ValueError(f"fluency midpoint and steepness must be > 0, got {midpoint} and {steepness}")
    perplexity = np.asarray(perplexity, dtype=np.float64)
    return np.where(np.isnan(perplexity), 0.0, 1.0 / (1.0 + (np.nan_to_num(perplexity) / midpoint) ** steepness))


def response_perplexity(texts: Sequence[str], model: str, *, batch_size: int = 16, device: str = "auto", max_length: int = 1024) -> np.ndarray:
    """Per-token perplexity of each text under the causal language model ``model`` (a folder, a Hub
    id or ``model:<...>``, any ``transformers`` causal LM), ``exp`` of the mean negative
    log-likelihood of its tokens; NaN for a text with no token to predict. Texts are cut at
    ``max_length`` tokens. Runs in ``ceil(n / batch_size)`` forward passes, on
    :func:`hf_mmbuilder.models.resolve_device` (the CPU under ``FORCE_CPU=1``).

    Example:
        >>> response_perplexity(["The cat sat on the mat."], "/models/tiny-llama")  # doctest: +SKIP
        array([87.1])
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_model(model, device=device, dtype="float32", model_class=AutoModelForCausalLM, processor_class=AutoTokenizer)
    tokenizer = loaded.processor
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = np.full(len(texts), np.nan)
    for start in range(0, len(texts), batch_size):
        encoded = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts[start:start + batch_size]]
        width = max(max((len(ids) for ids in encoded), default=0), 2)
        # Right padding by hand: the tokenizer may have been switched to left padding for generation.
        ids = torch.full((len(encoded), width), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, row_ids in enumerate(encoded):
            ids[row, :len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            mask[row, :len(row_ids)] = 1
        ids, mask = ids.to(loaded.device), mask.to(loaded.device)
        with torch.no_grad():
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
        scored = mask[:, 1:].to(nll.dtype)
        counts = scored.sum(dim=1)
        mean = (nll * scored).sum(dim=1) / counts.clamp(min=1)
        values = torch.exp(mean).cpu().numpy().astype(np.float64)
        values[counts.cpu().numpy() == 0] = np.nan
        result[start:start + len(encoded)] = values
    return result


def cosine_rows(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` arrays, clipped to [0, 1] (0 for a zero vector,
    NaN where either row has a NaN: an embedding that could not be computed).

    Example:
        >>> cosine_rows(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 1.0], [np.nan, 0.0]])).tolist()
        [1.0, 0.0, nan]
    """
    left = np.asarray(left, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    dots = np.einsum("ij,ij->i", left, right)
    similarity = np.clip(np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0), 0.0, 1.0)
    similarity[np.isnan(norms)] = np.nan
    return similarity


@dataclasses.dataclass(frozen=True)
class InstructionQualityScore:
    """Batched ``.map`` op writing the guide's quality dimensions and ``Q`` into ``__dj__stats__``.

    Each dimension is measured when its model (and, for consistency, its column) is given; ``Q``
    is the product of the measured ones (see the module docstring), null in a row where one of
    them could not be measured (no second response), so a ``QualityFilter(min_q=...)`` names it.

    Parameters
    ----------
    text_model : str, optional
        Text embedding model (folder, Hub id or ``model:<...>``; sentence-transformers or any
        ``transformers`` text encoder) for relevance and consistency.
    image_model : str, optional
        CLIP-style image-text model: relevance is multiplied by the image-response similarity
        in rows with images (a row's images averaged).
    fluency_model : str, optional
        Causal language model for fluency (:func:`response_perplexity`).
    reference_column : str, optional
        Column holding the second response ``r̂`` (or a reference answer) for consistency.
    fluency_midpoint, fluency_steepness : float
        The perplexity -> fluency rule of :func:`fluency_from_perplexity`.
    batch_size : int
        Texts per model forward pass.
    device : str
        ``"auto"`` (CUDA, MPS, CPU; the CPU under ``FORCE_CPU=1``), ``"cpu"``, ``"cuda:N"`` ...

    Notes
    -----
    Cost per batch: one embedding pass over instructions, responses and references, one over the
    images, one language-model pass over the responses. Models are loaded once per process
    (:func:`hf_mmbuilder.models.load_model` keeps them). The models' identities (their folders'
    file sizes and times) are part of the op, so the ``datasets`` cache sees a changed model.

    Example:
        >>> op = InstructionQualityScore(fluency_model="/models/tiny-llama")  # doctest: +SKIP
        >>> ds.map(op, batched=True)[0]["__dj__stats__"]["Q"]  # doctest: +SKIP
        0.93
    """

    text_model: Optional[str] = None
    image_model: Optional[str] = None
    fluency_model: Optional[str] = None
    reference_column: Optional[str] = None
    fluency_midpoint: float = 100.0
    fluency_steepness: float = 2.0
    batch_size: int = 16
    device: str = "auto"
    tokens: SpecialTokens = DEFAULT_TOKENS
    model_identities: tuple = ()

    def __post_init__(self):
        if self.text_model is None and self.image_model is None and self.fluency_model is None:
            raise ValueError("InstructionQualityScore needs at least one model: text_model=, image_model= or fluency_model=")
        if self.reference_column is not None and self.text_model is None:
            raise ValueError(f"consistency against {self.reference_column!r} is measured with text_model=, which is not given")
        fluency_from_perplexity([1.0], self.fluency_midpoint, self.fluency_steepness)
        identities = tuple(model_identity(name) for name in (self.text_model, self.image_model, self.fluency_model) if name is not None)
        object.__setattr__(self, "model_identities", identities)

    @property
    def dimensions(self) -> tuple:
        """The dimensions this op measures (``Q`` is their product).

        Example:
            >>> InstructionQualityScore(text_model="m", reference_column="r", model_identities=("x",)).dimensions  # doctest: +SKIP
            ('consistency', 'relevance')
        """
        measured = {"consistency": self.reference_column is not None, "relevance": self.text_model is not None or self.image_model is not None,
                    "fluency": self.fluency_model is not None}
        return tuple(name for name in QUALITY_DIMENSIONS if measured[name])

    def describe(self) -> str:
        """What ``Q`` is made of, for reports and dataset cards.

        Example:
            >>> InstructionQualityScore(fluency_model="/models/tiny-llama").describe()  # doctest: +SKIP
            'Q = fluency (fluency: /models/tiny-llama, midpoint 100.0, steepness 2.0)'
        """
        parts = []
        if "consistency" in self.dimensions:
            parts.append(f"consistency: {self.text_model} against {self.reference_column!r}")
        if "relevance" in self.dimensions:
            parts.append("relevance: " + " x ".join(f"{kind} {name}" for kind, name in (("text", self.text_model), ("image-text", self.image_model)) if name))
        if self.fluency_model is not None:
            parts.append(f"fluency: {self.fluency_model}, midpoint {self.fluency_midpoint}, steepness {self.fluency_steepness}")
        return f"Q = {' x '.join(self.dimensions)} ({'; '.join(parts)})"

    def __call__(self, batch):
        n = num_rows(batch)
        pairs = [instruction_and_response(text, self.tokens) for text in text_column(batch).to_pylist()]
        instructions = [pair[0] for pair in pairs]
        responses = [pair[1] for pair in pairs]
        fields: dict[str, np.ndarray] = {}
        if self.reference_column is not None:
            references = column(batch, self.reference_column)
            if references is None:
                raise ValueError(f"InstructionQualityScore: the rows have no column {self.reference_column!r} (the second responses)")
            references = references.to_pylist()
            present = [row for row in range(n) if references[row] is not None]
            consistency = np.full(n, np.nan)
            if present:
                consistency[present] = cosine_rows(self._text_vectors([responses[row] for row in present]),
                                                   self._text_vectors([" ".join(str(references[row]).split()) for row in present]))
            fields["consistency"] = consistency
        if "relevance" in self.dimensions:
            fields["relevance"] = self._relevance(batch, instructions, responses)
        if self.fluency_model is not None:
            perplexity = response_perplexity(responses, self.fluency_model, batch_size=self.batch_size, device=self.device)
            fields["fluency"] = fluency_from_perplexity(perplexity, self.fluency_midpoint, self.fluency_steepness)
        q = np.prod(np.stack([fields[name] for name in self.dimensions]), axis=0)
        fields[Q_FIELD] = q
        arrays = {name: pa.array(values, type=pa.float64(), from_pandas=True) for name, values in fields.items()}
        return output(batch, {STATS_COLUMN: merge_stats(batch, arrays)})

    def _vectors(self, values: dict, model: str, modality: str) -> np.ndarray:
        """Embeddings of ``values`` (a ``text`` column, or ``images`` with ``media_root``) by
        :func:`hf_mmbuilder.embedding.embed`; a row it could not embed (an unreadable image) is NaN."""
        from datasets import Dataset

        embedded = embed(Dataset.from_dict(values), model, modality=modality, batch_size=self.batch_size, device=self.device,
                         progress=False, on_error="keep")["embedding"]
        width = len(next((vector for vector in embedded if vector is not None), [np.nan]))
        return np.array([vector if vector is not None else [np.nan] * width for vector in embedded], dtype=np.float64)

    def _text_vectors(self, texts: list) -> np.ndarray:
        return self._vectors({"text": texts}, self.text_model, "text")

    def _relevance(self, batch, instructions: list, responses: list) -> np.ndarray:
        """Text relevance (1 for a row without an instruction: a caption) times, in rows with
        images, the image-response similarity."""
        n = len(responses)
        relevance = np.ones(n)
        if self.text_model is not None:
            asked = [row for row in range(n) if instructions[row]]
            if asked:
                relevance[asked] = cosine_rows(self._text_vectors([responses[row] for row in asked]),
                                               self._text_vectors([instructions[row] for row in asked]))
        images = column(batch, "images")
        if self.image_model is not None and images is not None:
            images = images.to_pylist()
            roots = column(batch, "media_root")
            roots = roots.to_pylist() if roots is not None else [None] * n
            shown = [row for row in range(n) if images[row]]
            if shown:
                pictures = self._vectors({"images": [images[row] for row in shown], "media_root": [roots[row] for row in shown]}, self.image_model, "image")
                captions = self._vectors({"text": [responses[row] for row in shown]}, self.image_model, "text")
                relevance[shown] *= cosine_rows(captions, pictures)
        return relevance
