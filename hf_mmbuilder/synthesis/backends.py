"""Model backends for instruction synthesis: local ``transformers`` image-text-to-text models and any
OpenAI-compatible chat endpoint (vLLM, SGLang, TGI), behind one ``generate(requests)`` call.

A :class:`ChatRequest` is a list of chat messages whose content parts are ``{"type": "text",
"text": ...}`` and ``{"type": "image", "path": ...}``. ``continue_last=True`` asks for the Oasis
*hooking* prompt: the chat template is cut inside the last (user) turn, right after its content,
so the model goes on writing that turn instead of answering it. Every request gets a
:class:`Generation` back, holding either the text or the error that stopped it, so one bad image
or one failed call never loses the rest of a batch.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import mimetypes
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Protocol, Sequence

from ..models import force_cpu, load_model

# Placeholder text cut out of the rendered template to find where the user's turn would go on.
_HOOK_SENTINEL = "\u2063HOOK\u2063"


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One generation: chat ``messages`` (OpenAI-style roles, content parts of type text/image)."""

    messages: tuple
    continue_last: bool = False
    max_new_tokens: int = 256

    @staticmethod
    def user(text: str = "", images: Sequence[str] = (), **options) -> "ChatRequest":
        """A single user turn: the images first, then the text (omitted when empty).

        Example:
            >>> ChatRequest.user("What is this?", ["a.jpg"]).messages[0]["content"][0]
            {'type': 'image', 'path': 'a.jpg'}
        """
        content = [{"type": "image", "path": path} for path in images]
        if text:
            content.append({"type": "text", "text": text})
        return ChatRequest(messages=({"role": "user", "content": content},), **options)

    def image_paths(self) -> list[str]:
        """Paths of every image part, in order.

        Example:
            >>> ChatRequest.user("Compare.", ["a.jpg", "b.jpg"]).image_paths()
            ['a.jpg', 'b.jpg']
        """
        return [part["path"] for message in self.messages for part in message["content"] if part.get("type") == "image"]


@dataclasses.dataclass(frozen=True)
class Generation:
    """The outcome of one request: ``text`` on success, else ``error`` (never both)."""

    text: Optional[str] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Whether the request succeeded.

        Example:
            >>> Generation(text="hi").ok, Generation(error="HTTP 500").ok
            (True, False)
        """
        return self.error is None


class Backend(Protocol):
    """Anything with ``generate(requests) -> list[Generation]`` (same length and order)."""

    name: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        ...


class TransformersBackend:
    """A local ``transformers`` image-text-to-text model and its processor.

    Parameters
    ----------
    model : PreTrainedModel
        Any model with ``generate`` taking the processor's outputs (LLaVA, Qwen2-VL, Idefics ...).
    processor : ProcessorMixin
        Its processor, with a chat template (``processor.chat_template``).
    batch_size : int
        Requests per ``generate`` call (left padding).
    generation_kwargs : dict, optional
        Passed to ``model.generate`` (``do_sample``, ``temperature``, ``prefix_allowed_tokens_fn``
        to constrain a judge's output format ...). Greedy decoding by default.

    Notes
    -----
    Images are opened with PIL per request; an unreadable image fails that request only. Cost is
    the model's forward passes: ``ceil(n / batch_size)`` generate calls. The processor's tokenizer
    is switched to left padding (batched generation needs it) and given the EOS token as pad token
    when it has none. Inputs go to the model's device; under ``FORCE_CPU=1`` the model is moved to
    the CPU first (:func:`hf_mmbuilder.models.force_cpu`), wherever it was given.

    Example:
        >>> backend = TransformersBackend.from_pretrained("llava-hf/llava-1.5-7b-hf")  # doctest: +SKIP
        >>> backend.generate([ChatRequest.user("Describe.", ["cat.jpg"])])[0].text  # doctest: +SKIP
    """

    def __init__(self, model, processor, *, batch_size: int = 4, generation_kwargs: Optional[dict] = None, name: Optional[str] = None):
        if getattr(processor, "chat_template", None) is None:
            raise ValueError(
                f"the processor of {type(model).__name__} has no chat template; the Oasis prompts need one "
                "(set processor.chat_template to the model's Jinja template)"
            )
        self.model = model.to("cpu") if force_cpu() else model
        self.processor = processor
        self.batch_size = batch_size
        self.generation_kwargs = {"do_sample": False, **(generation_kwargs or {})}
        self.name = name or getattr(model, "name_or_path", None) or type(model).__name__
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str = "auto", dtype: Optional[str] = None, local_files_only: bool = False,
                        **options) -> "TransformersBackend":
        """Load ``AutoModelForImageTextToText`` and ``AutoProcessor`` from a local folder or the Hub
        with :func:`hf_mmbuilder.models.load_model` (``device="auto"``: CUDA, MPS, then CPU; the CPU
        under ``FORCE_CPU=1``).

        Example:
            >>> TransformersBackend.from_pretrained("Qwen/Qwen2-VL-2B-Instruct")  # doctest: +SKIP
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        loaded = load_model(name_or_path, device=device, dtype=dtype, model_class=AutoModelForImageTextToText, processor_class=AutoProcessor,
                            local_files_only=local_files_only, cache=False)
        return cls(loaded.model, loaded.processor, name=name_or_path, **options)

    def render(self, request: ChatRequest) -> str:
        """The prompt text of a request (for ``continue_last``, cut inside the last turn).

        Example:
            >>> backend.render(ChatRequest.user("", ["a.jpg"], continue_last=True))  # doctest: +SKIP
            'USER: <image>\\n'
        """
        messages = [
            {"role": m["role"], "content": [{"type": "image"} if p.get("type") == "image" else {"type": "text", "text": p["text"]} for p in m["content"]]}
            for m in request.messages
        ]
        if not request.continue_last:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        messages[-1]["content"].append({"type": "text", "text": _HOOK_SENTINEL})
        rendered = self.processor.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)
        cut = rendered.rfind(_HOOK_SENTINEL)
        if cut < 0:
            raise ValueError(f"the chat template of {self.name} drops the user's text; cannot build the hooking prompt")
        return rendered[:cut]

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """Generate for every request; failures are per request. See the class notes for cost.

        Example:
            >>> [g.ok for g in backend.generate([ChatRequest.user("Hi")])]  # doctest: +SKIP
            [True]
        """
        import torch
        from PIL import Image

        results: list[Optional[Generation]] = [None] * len(requests)
        prepared = []
        for index, request in enumerate(requests):
            try:
                images = []
                for path in request.image_paths():
                    with Image.open(path) as image:
                        images.append(image.convert("RGB"))
                prepared.append((index, self.render(request), images, request.max_new_tokens))
            except Exception as error:  # unreadable image or template failure: this request only
                results[index] = Generation(error=f"{type(error).__name__}: {error}")
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            # Requests with and without images cannot share one processor call.
            for with_images in (True, False):
                group = [item for item in chunk if bool(item[2]) == with_images]
                if not group:
                    continue
                try:
                    texts = self._generate_group(group, torch)
                    for item, text in zip(group, texts):
                        results[item[0]] = Generation(text=text)
                except Exception as error:
                    for item in group:
                        results[item[0]] = Generation(error=f"{type(error).__name__}: {error}")
        return results

    def _generate_group(self, group, torch) -> list[str]:
        prompts = [item[1] for item in group]
        images = [image for item in group for image in item[2]]
        inputs = self.processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
        # Floating inputs (pixel values) take the model's precision too: half precision on an accelerator.
        inputs = inputs.to(device=self.model.device, dtype=self.model.dtype)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=max(item[3] for item in group), **self.generation_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]


class RateLimiter:
    """At most ``per_second`` acquisitions per second across threads (``None``: unlimited).

    Example:
        >>> limiter = RateLimiter(1000.0)
        >>> limiter.acquire()
    """

    def __init__(self, per_second: Optional[float]):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_time = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        """Block until the next slot (O(1)); slots are ``1 / per_second`` apart."""
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            wait = self.next_time - now
            self.next_time = max(now, self.next_time) + self.interval
        if wait > 0:
            time.sleep(wait)


class OpenAIChatBackend:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, TGI, OpenAI).

    Parameters
    ----------
    base_url : str
        E.g. ``http://127.0.0.1:8000/v1``.
    model : str
        The served model name.
    api_key : str, optional
        Sent as ``Authorization: Bearer``.
    concurrency : int
        Requests in flight at once (threads).
    requests_per_second : float, optional
        Rate limit across all threads.
    max_retries : int
        Retries on connection errors, timeouts, HTTP 429 and 5xx, with exponential backoff
        (``backoff * 2**attempt`` seconds, honouring ``Retry-After``); other HTTP errors and
        malformed replies fail the request at once.
    extra_body : dict, optional
        Merged into every request body (``temperature``, ``top_p`` ...).

    Notes
    -----
    The model runs where the server runs it: ``FORCE_CPU`` concerns local models only.
    Images are sent inline as base64 data URLs. The hooking prompt (``continue_last``) uses the
    ``continue_final_message=True, add_generation_prompt=False`` chat options that vLLM and SGLang
    implement: the server renders the template and leaves the user's turn open.

    Example:
        >>> backend = OpenAIChatBackend("http://127.0.0.1:8000/v1", "Qwen2-VL-7B-Instruct")
        >>> backend.generate([ChatRequest.user("Describe.", ["cat.jpg"])])  # doctest: +SKIP
    """

    def __init__(self, base_url: str, model: str, *, api_key: Optional[str] = None, concurrency: int = 8,
                 requests_per_second: Optional[float] = None, max_retries: int = 3, backoff: float = 0.5,
                 timeout: float = 120.0, extra_body: Optional[dict] = None):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = model
        self.api_key = api_key
        self.concurrency = concurrency
        self.limiter = RateLimiter(requests_per_second)
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})

    def body(self, request: ChatRequest) -> dict:
        """The JSON body of one request (images inlined as data URLs).

        Example:
            >>> OpenAIChatBackend("http://x/v1", "m").body(ChatRequest.user("hi", continue_last=True))["continue_final_message"]
            True
        """
        messages = []
        for message in request.messages:
            parts = []
            for part in message["content"]:
                if part.get("type") == "image":
                    with open(part["path"], "rb") as handle:
                        encoded = base64.b64encode(handle.read()).decode("ascii")
                    mime = mimetypes.guess_type(part["path"])[0] or "image/jpeg"
                    parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{encoded}"}})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            messages.append({"role": message["role"], "content": parts})
        body = {"model": self.model, "messages": messages, "max_tokens": request.max_new_tokens, **self.extra_body}
        if request.continue_last:
            body.update({"continue_final_message": True, "add_generation_prompt": False})
        return body

    def _post(self, body: dict) -> Generation:
        payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            delay = self.backoff * 2**attempt
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url, data=payload, headers=headers), timeout=self.timeout) as reply:
                    raw = reply.read()
                return self._parse(raw)
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                last_error = f"HTTP {error.code} from {self.url}: {detail}"
                if error.code != 429 and error.code < 500:
                    return Generation(error=last_error)
                retry_after = error.headers.get("Retry-After") if error.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = float(retry_after)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last_error = f"{type(error).__name__} calling {self.url}: {error}"
            if attempt < self.max_retries:
                time.sleep(delay)
        return Generation(error=f"{last_error} (after {self.max_retries + 1} attempts)")

    def _parse(self, raw: bytes) -> Generation:
        try:
            reply = json.loads(raw)
            content = reply["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return Generation(error=f"malformed reply from {self.url}: {raw[:200]!r}")
        if not isinstance(content, str):
            return Generation(error=f"reply from {self.url} has no text content: {raw[:200]!r}")
        return Generation(text=content.strip())

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """Send every request (``concurrency`` at a time); failures are per request.

        Example:
            >>> OpenAIChatBackend("http://127.0.0.1:9/v1", "m", max_retries=0).generate(
            ...     [ChatRequest.user("hi")])[0].error.startswith("URLError")
            True
        """

        def one(request: ChatRequest) -> Generation:
            try:
                body = self.body(request)
            except OSError as error:
                return Generation(error=f"{type(error).__name__}: {error}")
            return self._post(body)

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(one, requests))


def describe(backend: Any) -> str:
    """A short name of a backend for records and reports.

    Example:
        >>> describe(OpenAIChatBackend("http://127.0.0.1:8000/v1", "qwen2-vl"))
        'OpenAIChatBackend(qwen2-vl)'
    """
    return f"{type(backend).__name__}({getattr(backend, 'name', '?')})"
