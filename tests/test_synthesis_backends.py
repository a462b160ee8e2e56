"""Model backends: the OpenAI-compatible endpoint against a local test server (batching, retries,
errors, garbage, hooking options) and a tiny transformers VLM built from a config (hooking prompt,
missing chat template, unreadable images, the whole Oasis pipeline on the shared media images)."""

import base64
import json

import pytest
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.synthesis.backends import ChatRequest, OpenAIChatBackend, RateLimiter
from hf_mmbuilder.synthesis.oasis import FINAL_FILE, OasisPipeline

from openai_server import OpenAIServer

pytestmark = pytest.mark.integration


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (20, 10), (200, 0, 0)).save(path)
    return str(path)


def test_endpoint_batch_order_images_and_hooking(image):
    def reply(body):
        text = body["messages"][-1]["content"][-1].get("text", "")
        return f"echo {text}" if text else "hooked"

    with OpenAIServer(reply) as server:
        backend = OpenAIChatBackend(server.base_url, "tiny", api_key="k", concurrency=4, extra_body={"temperature": 0})
        requests = [ChatRequest.user(f"q{i}") for i in range(10)] + [ChatRequest.user("", [image], continue_last=True)]
        out = backend.generate(requests)
    assert [g.text for g in out] == [f"echo q{i}" for i in range(10)] + ["hooked"]
    hook = next(body for body in server.bodies if body.get("continue_final_message"))
    assert hook["add_generation_prompt"] is False and hook["temperature"] == 0 and hook["model"] == "tiny"
    url = hook["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == open(image, "rb").read()
    assert not any(body.get("continue_final_message") for body in server.bodies if body["messages"][0]["content"][-1].get("text"))


def test_endpoint_retries_then_succeeds():
    failures = {"left": 3}

    def reply(body):
        if failures["left"]:
            failures["left"] -= 1
            return (429, b"slow down", {"Retry-After": "0"}) if failures["left"] == 2 else (503, b"busy", {})
        return "fine"

    with OpenAIServer(reply) as server:
        out = OpenAIChatBackend(server.base_url, "m", max_retries=3, backoff=0.01, concurrency=1).generate([ChatRequest.user("x")])
    assert out[0].text == "fine" and len(server.bodies) == 4


@pytest.mark.parametrize("answer, expected", [
    ((500, b"boom", {}), "HTTP 500"),
    ((400, b'{"error": "bad request"}', {}), "HTTP 400"),
    ((200, b"<html>not json</html>", {}), "malformed reply"),
    ((200, json.dumps({"choices": []}).encode(), {}), "malformed reply"),
    ((200, json.dumps({"choices": [{"message": {"content": None}}]}).encode(), {}), "no text content"),
])
def test_endpoint_errors_and_garbage_are_per_request(answer, expected, image):
    with OpenAIServer(lambda body: answer if body["messages"][0]["content"][-1].get("text") == "bad" else "ok") as server:
        backend = OpenAIChatBackend(server.base_url, "m", max_retries=1, backoff=0.01)
        out = backend.generate([ChatRequest.user("bad"), ChatRequest.user("good"), ChatRequest.user("x", [image + ".missing"])])
    assert expected in out[0].error and out[0].text is None
    assert out[1].text == "ok"
    assert "FileNotFoundError" in out[2].error
    # 400 is not retried; 5xx and garbage-free transport errors are.
    assert sum(body["messages"][0]["content"][-1].get("text") == "bad" for body in server.bodies) == (1 if "400" in expected or answer[0] == 200 else 2)


def test_rate_limiter_spaces_acquisitions():
    limiter = RateLimiter(50.0)
    limiter.acquire()
    first = limiter.next_time
    limiter.acquire()
    assert limiter.next_time == pytest.approx(first + 0.02, abs=1e-3)
    assert RateLimiter(None).interval == 0.0


def test_oasis_through_the_endpoint(tmp_path, shared_data, cache_dir):
    def reply(body):
        content = body["messages"][0]["content"]
        text = content[-1].get("text", "")
        if body.get("continue_final_message"):
            return "What is the main object in this picture?"
        if text.startswith("You will read"):
            return "Instruction: " + text.rsplit("Text: ", 1)[1].strip()
        if "[[" in text:
            return "Looks fine. [[5]]"
        return "It is a photo of an everyday scene."

    images = ["cat.jpg", "img2.jpg", "missing.jpg"]
    with OpenAIServer(reply) as server:
        result = OasisPipeline(OpenAIChatBackend(server.base_url, "vlm", concurrency=4), str(tmp_path / "w"), progress=False).run(images, media_root=str(shared_data / "media"))
    assert [r["image"] for r in result.records] == ["cat.jpg", "img2.jpg"]
    assert result.rejected[0][1:3] == ("hooking", "failed")
    ds = hf_mmbuilder.load("oasis", result.final_path, split="train", cache_dir=cache_dir, media_root=str(shared_data / "media"))
    assert ds[0]["text"].startswith("[[human]]: <__dj__image>\nWhat is the main object in this picture?")


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch", reason="the transformers backend needs the vlm extra (torch, transformers)")
    from synthesis_tiny_vlm import build

    return build()


def test_transformers_hooking_prompt_and_errors(tiny, image):
    from hf_mmbuilder.synthesis.backends import TransformersBackend

    model, processor = tiny
    backend = TransformersBackend(model, processor, generation_kwargs={"suppress_tokens": list(range(5))})
    assert backend.render(ChatRequest.user("", [image], continue_last=True)) == "USER: <image> "
    assert backend.render(ChatRequest.user("hi", [image])) == "USER: <image> hi </s> ASSISTANT: "
    out = backend.generate([ChatRequest.user("What is in the image ?", [image], max_new_tokens=3), ChatRequest.user("x", [image + ".nope"]),
                            ChatRequest.user("What ?", max_new_tokens=2)])
    assert out[0].ok and len(out[0].text.split()) == 3
    assert "FileNotFoundError" in out[1].error
    assert out[2].ok and len(out[2].text.split()) == 2


def test_transformers_needs_a_chat_template():
    pytest.importorskip("torch", reason="the transformers backend needs the vlm extra (torch, transformers)")
    from hf_mmbuilder.synthesis.backends import TransformersBackend
    from synthesis_tiny_vlm import build

    model, processor = build(chat_template=None)
    with pytest.raises(ValueError, match="has no chat template"):
        TransformersBackend(model, processor)


def test_oasis_end_to_end_with_tiny_model(tiny, shared_data, tmp_path, cache_dir):
    from hf_mmbuilder.synthesis.backends import TransformersBackend
    from synthesis_tiny_vlm import judge_format

    model, processor = tiny
    free = TransformersBackend(model, processor, batch_size=4, generation_kwargs={"suppress_tokens": list(range(5))})
    judge = TransformersBackend(model, processor, batch_size=8, generation_kwargs={"prefix_allowed_tokens_fn": judge_format(processor)})
    media = shared_data / "media"
    images = sorted(p.name for p in media.iterdir() if p.suffix in (".jpg", ".png"))[:6]
    pipeline = OasisPipeline(free, str(tmp_path / "work"), judge_backend=judge, batch_size=4, progress=False,
                             max_new_tokens={"hooking": 6, "classify": 10, "score": 3, "respond": 6})
    result = pipeline.run(images, media_root=str(media))
    assert len(result.records) == len(images), result.rejected
    record = result.records[0]
    assert record["conversations"][0]["value"] == "<image>\nWhat is in the image?"
    assert record["oasis_scores"] == {"solvability": 5, "clarity": 5, "hallucination": 5, "nonsense": 5}
    assert len(record["conversations"][1]["value"].split()) == 6
    hooking = [json.loads(line) for line in (tmp_path / "work" / "hooking.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" and r["raw"] for r in hooking)
    ds = hf_mmbuilder.load("oasis", str(tmp_path / "work" / FINAL_FILE), split="train", cache_dir=cache_dir, media_root=str(media))
    assert len(ds) == len(images) and hf_mmbuilder.validate_alignment(ds) == []
    assert ds["images"][:] == [[name] for name in images]
