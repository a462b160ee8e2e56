"""Second responses: each row's instruction (and its images) answered again, independently, by a
synthesis backend, for the consistency dimension of the quality score
(:class:`hf_mmbuilder.ops.InstructionQualityScore` with ``reference_column``).
"""

from __future__ import annotations

import logging
from typing import Optional

from ..media import resolve_media_path
from ..ops.quality_score import instruction_and_response
from ..schema import DEFAULT_TOKENS, SpecialTokens
from .backends import ChatRequest, describe

logger = logging.getLogger(__name__)


def second_responses(dataset, backend, *, column: str = "second_response", batch_size: int = 32, max_new_tokens: int = 256,
                     tokens: SpecialTokens = DEFAULT_TOKENS):
    """``dataset`` with ``column`` holding a second response to each row's instruction, written by
    ``backend`` (a :class:`~hf_mmbuilder.synthesis.backends.TransformersBackend`, an
    :class:`~hf_mmbuilder.synthesis.backends.OpenAIChatBackend`, or anything with ``generate``)
    from the instruction text and the row's images, and ``column + "_error"`` holding why a
    request failed (the response is then null and the row's consistency is not measured: the
    quality filter names it). Never drops a row.

    Cost: ``ceil(n / batch_size)`` ``generate`` calls; media paths are resolved under ``media_root``.

    Example:
        >>> scored = second_responses(ds, OpenAIChatBackend("http://127.0.0.1:8000/v1", "qwen2-vl"))  # doctest: +SKIP
        >>> scored = scored.map(InstructionQualityScore(text_model="...", reference_column="second_response"), batched=True)  # doctest: +SKIP
    """
    from datasets import Value

    responses: list[Optional[str]] = []
    errors: list[Optional[str]] = []
    names = [name for name in ("text", "images", "media_root") if name in dataset.column_names]
    for batch in dataset.select_columns(names).iter(batch_size=batch_size):
        requests = []
        for row, text in enumerate(batch["text"]):
            instruction, _ = instruction_and_response(text, tokens)
            root = batch["media_root"][row] if "media_root" in batch else None
            images = [resolve_media_path(path, root) for path in (batch["images"][row] or [])] if "images" in batch else []
            requests.append(ChatRequest.user(instruction, images, max_new_tokens=max_new_tokens))
        for generation in backend.generate(requests):
            responses.append(generation.text if generation.ok else None)
            errors.append(None if generation.ok else generation.error)
    failed = sum(error is not None for error in errors)
    if failed:
        logger.warning("second responses by %s: %d of %d request(s) failed; first: %s", describe(backend), failed, len(errors),
                       next(error for error in errors if error is not None))
    for name in (column, column + "_error"):
        if name in dataset.column_names:
            dataset = dataset.remove_columns(name)
    dataset = dataset.add_column(column, responses, feature=Value("string"))
    return dataset.add_column(column + "_error", errors, feature=Value("string"))
