"""The guide's quality score Q = consistency x relevance x fluency with tiny models built from configs:
each dimension against a direct transformers computation, identical pairs above mismatched ones,
fluency monotone in perplexity, consistency of a response with itself 1, the filter on Q, the
builder's validate_quality with models and a second-response backend, and FORCE_CPU=1."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

import embedding_models
import synthesis_tiny_vlm
from quality_tiny_models import build_llama

from hf_mmbuilder import models
from hf_mmbuilder.ops import STATS_COLUMN, ImageTextSimilarity, InstructionQualityScore, QualityFilter, apply_filters, fluency_from_perplexity, response_perplexity
from hf_mmbuilder.ops.quality_score import instruction_and_response
from hf_mmbuilder.synthesis.backends import Generation, TransformersBackend
from hf_mmbuilder.synthesis.responses import second_responses
from hf_mmbuilder.workflow import MultiModalDatasetBuilder

FLUENT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    return {"llama": build_llama(root / "llama", train_on=FLUENT), "bert": embedding_models.bert(root / "bert"),
            "clip": embedding_models.clip(root / "clip")}


def conversation(question: str, answer: str, image: bool = False) -> str:
    return f"[[human]]: {'<__dj__image>' + chr(10) if image else ''}{question}\n[[gpt]]: {answer} <|__dj__eoc|>"


def stats(ds, name):
    return np.array([row[name] if row[name] is not None else np.nan for row in ds[STATS_COLUMN]], dtype=np.float64)


def test_instruction_and_response_of_dj_texts():
    assert instruction_and_response(conversation("What is it?", "A red bus.", image=True)) == ("What is it?", "A red bus.")
    text = "[[human]]: Hi\n[[gpt]]: Hello. <|__dj__eoc|>[[human]]: And now?\n[[gpt]]: Still here. <|__dj__eoc|>"
    assert instruction_and_response(text) == ("Hi And now?", "Hello. Still here.")
    assert instruction_and_response("<__dj__image> A cat on a mat. <|__dj__eoc|>") == ("", "A cat on a mat.")


def test_fluency_is_monotone_in_perplexity():
    perplexity = np.concatenate([[1.0], np.geomspace(1.5, 1e6, 200)])
    fluency = fluency_from_perplexity(perplexity)
    assert np.all(np.diff(fluency) < 0) and np.all((fluency > 0) & (fluency <= 1))
    assert fluency_from_perplexity([100.0, 50.0], midpoint=50.0).tolist() == [0.2, 0.5]
    assert fluency_from_perplexity([np.nan]).tolist() == [0.0]
    with pytest.raises(ValueError, match="midpoint and steepness must be > 0"):
        fluency_from_perplexity([1.0], midpoint=0)


def test_fluency_with_a_tiny_llama(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [FLUENT, "mat the on sat cat the", "a dog ran in the park", "cat", ""]
    perplexity = response_perplexity(texts, tiny["llama"], batch_size=2, device="cpu")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny["llama"]), AutoTokenizer.from_pretrained(tiny["llama"])
    with torch.no_grad():
        for text, measured in zip(texts[:4], perplexity[:4]):
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            assert measured == pytest.approx(float(torch.exp(model(input_ids=ids, labels=ids).loss)), rel=1e-5)
    assert np.isnan(perplexity[4])  # nothing after the BOS token to predict
    assert perplexity[0] < 1.1 < 100 < perplexity[1]  # the sentence it was trained on, and the same words shuffled
    ds = Dataset.from_dict({"text": [conversation("Where does the cat sit?", text) for text in texts]})
    scored = ds.map(InstructionQualityScore(fluency_model=tiny["llama"], batch_size=2), batched=True)
    fluency = stats(scored, "fluency")
    assert fluency == pytest.approx(fluency_from_perplexity(perplexity)) and fluency[4] == 0.0
    assert np.argsort(-fluency[:4]).tolist() == np.argsort(perplexity[:4]).tolist()
    assert stats(scored, "Q") == pytest.approx(fluency) and set(scored[0][STATS_COLUMN]) == {"fluency", "Q"}


def test_relevance_of_identical_pairs_above_mismatched(tiny):
    pairs = [("the cat sat on the mat", "the cat sat on the mat"), ("a red bus on the street", "a red bus on the street"),
             ("the cat sat on the mat", "a red bus on the street"), ("blue sky", "the dog is with a green car")]
    ds = Dataset.from_dict({"text": [conversation(q, a) for q, a in pairs]})
    relevance = stats(ds.map(InstructionQualityScore(text_model=tiny["bert"]), batched=True), "relevance")
    assert relevance[:2] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert relevance[2] < 1.0 - 1e-3 and relevance[3] < 1.0 - 1e-3


def test_relevance_times_clip_similarity_in_rows_with_images(tiny, tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    colors = [(200, 30, 30), (30, 200, 30)]
    for index, color in enumerate(colors):
        Image.new("RGB", (40, 32), color).save(tmp_path / f"{index}.png")
    answers = ["a red cat", "a green bus on the street", "the dog"]
    ds = Dataset.from_dict({"text": [conversation("what is in the photo", a, image=i < 2) for i, a in enumerate(answers)],
                            "images": [["0.png"], ["1.png"], []], "media_root": [str(tmp_path)] * 3})
    op = InstructionQualityScore(text_model=tiny["bert"], image_model=tiny["clip"])
    relevance = stats(ds.map(op, batched=True), "relevance")
    text_only = stats(ds.map(InstructionQualityScore(text_model=tiny["bert"]), batched=True), "relevance")
    model, processor = CLIPModel.from_pretrained(tiny["clip"]), CLIPProcessor.from_pretrained(tiny["clip"])
    with torch.no_grad():
        pictures = model.get_image_features(**processor(images=[Image.open(tmp_path / f"{i}.png").convert("RGB") for i in range(2)], return_tensors="pt"))
        captions = model.get_text_features(**processor(text=answers[:2], return_tensors="pt", padding=True))
    pictures = getattr(pictures, "pooler_output", pictures)
    captions = getattr(captions, "pooler_output", captions)
    clip = torch.nn.functional.cosine_similarity(pictures, captions).clamp(min=0).numpy()
    assert relevance[:2] == pytest.approx(text_only[:2] * clip, abs=1e-5)
    assert relevance[2] == pytest.approx(text_only[2], abs=1e-7)


def test_consistency_with_itself_is_one_and_missing_second_responses_are_named(tiny):
    answers = ["the cat sat on the mat", "a red bus on the street", "the dog ran in the park"]
    ds = Dataset.from_dict({"text": [conversation("what is in the picture", a) for a in answers],
                            "second": [answers[0], "a blue sky and a green tree", None]})
    op = InstructionQualityScore(text_model=tiny["bert"], reference_column="second")
    assert op.dimensions == ("consistency", "relevance")
    scored = ds.map(op, batched=True)
    consistency = stats(scored, "consistency")
    assert consistency[0] == pytest.approx(1.0, abs=1e-6) and consistency[1] < 1.0 - 1e-3 and np.isnan(consistency[2])
    q = stats(scored, "Q")
    assert q[:2] == pytest.approx(consistency[:2] * stats(scored, "relevance")[:2]) and np.isnan(q[2])
    result = apply_filters(scored, QualityFilter(min_q=float(q[1]) + 1e-9))
    assert list(result.dropped["__dj__filter__"]) == [f"Q {q[1]:.3f} < {float(q[1]) + 1e-9}", "Q not measured (no consistency)"]
    assert result.reasons == {"Q": 2} and len(result.kept) == 1
    with pytest.raises(ValueError, match="the rows have no __dj__stats__.Q"):
        apply_filters(ds, QualityFilter(min_q=0.5))
    with pytest.raises(ValueError, match="needs at least one model"):
        InstructionQualityScore()


class ScriptedResponder:
    """A backend answering each instruction by repeating it, failing on an instruction that asks it to."""

    name = "scripted"

    def generate(self, requests):
        out = []
        for request in requests:
            text = request.messages[0]["content"][-1]["text"]
            out.append(Generation(error="HTTP 500 from test") if "fail" in text else Generation(text=text))
        return out


def test_second_responses_record_failures():
    ds = Dataset.from_dict({"text": [conversation("the cat", "x"), conversation("please fail", "y")]})
    answered = second_responses(ds, ScriptedResponder())
    assert answered["second_response"][:] == ["the cat", None]
    assert answered["second_response_error"][:] == [None, "HTTP 500 from test"]


def test_builder_keeps_rows_on_q(tiny, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    answers = ["the cat sat on the mat", "mat the on sat cat the"]
    (tmp_path / "captions.json").write_text(json.dumps({f"{i}.png": answer for i, answer in enumerate(answers)}))
    for index in range(2):
        Image.new("RGB", (40, 32), (90 * index, 40, 200)).save(folder / f"{index}.png")
    builder = MultiModalDatasetBuilder(modalities=["text", "image"], output_dir=str(tmp_path / "out"), quality_threshold=0.1)
    builder.add_data_source(images=str(folder), texts=str(tmp_path / "captions.json"))
    rows = builder.generate_instructions(num_samples=2, instruction_types=["caption"])
    score = InstructionQualityScore(text_model=tiny["bert"], fluency_model=tiny["llama"])
    report = builder.validate_quality(rows, quality_score=score, consistency_backend=ScriptedResponder())
    assert report.score.startswith("Q = consistency x relevance x fluency (consistency: ") and report.score.endswith("kept when Q >= 0.1")
    assert set(report.dimensions) >= {"consistency", "relevance", "fluency", "Q"}
    # The fluent caption passes; the shuffled one has a perplexity in the hundreds: fluency, so Q, below 0.02.
    assert [instruction_and_response(text)[1] for text in builder.dataset["text"][:]] == [answers[0]]
    assert "second_response" not in builder.dataset.column_names
    assert "**Score:** Q = consistency x relevance x fluency" in (tmp_path / "out" / "quality_report.md").read_text()
    plain = MultiModalDatasetBuilder(modalities=["text", "image"], output_dir=str(tmp_path / "plain"), quality_threshold=0.5)
    plain.add_data_source(images=str(folder), texts=str(tmp_path / "captions.json"))
    assert plain.validate_quality(plain.generate_instructions(2, ["caption"])).score.startswith("heuristic: mean of the dimensions")
    with pytest.raises(ValueError, match="consistency_backend= needs quality_score"):
        plain.validate_quality(consistency_backend=ScriptedResponder())


def test_force_cpu_keeps_every_model_on_the_cpu(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "accelerator", lambda: "cuda")  # the device query answers an accelerator
    models.clear_cache()
    monkeypatch.delenv("FORCE_CPU", raising=False)
    assert not torch.cuda.is_available()
    with pytest.raises((AssertionError, RuntimeError), match="CUDA"):  # without FORCE_CPU the model would go to that accelerator
        response_perplexity(["the cat"], tiny["llama"])
    monkeypatch.setenv("FORCE_CPU", "1")
    placed = []
    original_to = torch.Tensor.to

    def recording_to(self, *args, **kwargs):
        moved = original_to(self, *args, **kwargs)
        placed.append(moved.device.type)
        return moved

    monkeypatch.setattr(torch.Tensor, "to", recording_to)
    Image.new("RGB", (40, 32), (10, 200, 10)).save(tmp_path / "a.png")
    ds = Dataset.from_dict({"text": [conversation("what is in the photo", "a green cat", image=True)], "images": [["a.png"]],
                            "media_root": [str(tmp_path)], "second": ["a green cat"]})
    scored = ds.map(InstructionQualityScore(text_model=tiny["bert"], image_model=tiny["clip"], fluency_model=tiny["llama"],
                                            reference_column="second"), batched=True)
    assert set(scored[0][STATS_COLUMN]) == {"consistency", "relevance", "fluency", "Q"}
    clip_scored = scored.map(ImageTextSimilarity(tiny["clip"]), batched=True)  # the CLIP score op (Data-Juicer's stat)
    assert len(clip_scored[0][STATS_COLUMN]["image_text_similarity"]) == 1
    model, processor = synthesis_tiny_vlm.build()
    model.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    backend = TransformersBackend.from_pretrained(str(tmp_path / "vlm"), local_files_only=True)
    answered = second_responses(ds, backend, column="again", max_new_tokens=2)
    assert answered["again_error"][:] == [None]
    loaded = list(models._cache.values())
    assert {item.device for item in loaded} == {"cpu"} and len(loaded) == 3  # BERT, CLIP (shared by embed and the score op), Llama
    assert {p.device.type for item in loaded for p in item.model.parameters()} == {"cpu"}
    assert {p.device.type for p in backend.model.parameters()} == {"cpu"}
    # "meta" is transformers' weightless initialisation while loading, not a device data goes to.
    assert placed and set(placed) - {"meta"} == {"cpu"}
    models.clear_cache()
