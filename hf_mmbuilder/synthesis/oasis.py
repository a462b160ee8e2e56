"""Oasis image-only instruction synthesis (after MM_INF's Oasis recipe), resumable stage by stage.

1. **hooking** - the model sees the chat template cut right after the user turn's opening (the
   image, no text), so it writes the user's request itself;
2. **classify** - a few-shot text prompt labels that text an instruction (``Instruction: ...``) or a
   caption (``NO_INST``), parsed exactly;
3. **score** - solvability, clarity and hallucination (with the image) and nonsense (text only),
   each 1-5, read from the last ``[[n]]`` of the judge's reply (no such mark = failure); samples
   are kept by :class:`OasisThresholds`;
4. **respond** - the model answers the kept instruction about the image.

Each stage appends one JSON line per finished sample to ``work_dir/<stage>.jsonl`` (flushed after
every batch), with the raw model text, the parsed values and the status: ``ok``, ``dropped``
(a caption, or scores under the thresholds), ``failed`` (unreadable image, unparseable reply) or
``error`` (the backend failed; retried on the next run). A rerun skips finished samples, so a crash
loses nothing finished. The result is ``work_dir/final_oasis.jsonl`` in Oasis output shape
(loadable with ``hf_mmbuilder.load("oasis", ...)``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Optional, Sequence

from tqdm.auto import tqdm

from ..media import resolve_media_path
from ..ops.stats import image_size
from .backends import Backend, ChatRequest, describe

STAGES = ("hooking", "classify", "score", "respond")
SCORE_NAMES = ("solvability", "clarity", "hallucination", "nonsense")
FINAL_FILE = "final_oasis.jsonl"

CLASSIFY_PROMPT = """You will read a piece of text that a vision-language model wrote when it was asked to start a user's message about an image.
Decide whether the text is a request a user could make about the image (a question, task or instruction) or only a caption or description of the image.
If it is a request, reply with exactly one line: "Instruction: " followed by the request, cleaned of any leading or trailing chatter.
If it is a caption, a description or meaningless text, reply with exactly: NO_INST

Text: What breed is the dog lying on the sofa, and how old does it look?
Instruction: What breed is the dog lying on the sofa, and how old does it look?

Text: A red double-decker bus driving down a busy street in London.
NO_INST

Text: Please write a short poem inspired by the sunset in this photo. Thanks!
Instruction: Please write a short poem inspired by the sunset in this photo.

Text: the the the image image
NO_INST

Text: {text}
"""

SCORE_PROMPTS = {
    "solvability": """Look at the image and the instruction below. Rate from 1 to 5 how well the instruction can be answered using the image: 1 = impossible (it asks about things the image cannot show), 3 = partly answerable, 5 = fully answerable from the image.
Instruction: {instruction}
Explain briefly, then give your rating in double brackets on the last line, for example [[4]].""",
    "clarity": """Look at the image and the instruction below. Rate from 1 to 5 how clear and unambiguous the instruction is: 1 = impossible to understand what is asked, 3 = understandable but vague, 5 = perfectly clear.
Instruction: {instruction}
Explain briefly, then give your rating in double brackets on the last line, for example [[4]].""",
    "hallucination": """Look at the image and the instruction below. Rate from 1 to 5 whether the instruction mentions or assumes things that are not in the image: 1 = it is mostly about things absent from the image, 3 = some details are absent, 5 = everything it mentions is in the image.
Instruction: {instruction}
Explain briefly, then give your rating in double brackets on the last line, for example [[5]].""",
    "nonsense": """Read the instruction below (there is no image). Rate from 1 to 5 whether it is meaningful, fluent language: 1 = gibberish or broken text, 3 = partly garbled, 5 = fully meaningful and fluent.
Instruction: {instruction}
Explain briefly, then give your rating in double brackets on the last line, for example [[5]].""",
}

_SCORE_MARK = re.compile(r"\[\[([^\[\]]*)\]\]")
_INSTRUCTION_PREFIX = "Instruction:"


def parse_classification(text: str) -> tuple[str, Optional[str]]:
    """Parse the classifier's reply: ``("instruction", text)``, ``("caption", None)`` or
    ``("unparseable", None)``.

    The reply (stripped) must be exactly ``NO_INST``, or start with the literal prefix
    ``Instruction:`` followed by a non-empty instruction; the prefix is removed as a whole (unlike
    ``str.lstrip``, which strips characters and eats an instruction's own leading letters).

    Example:
        >>> parse_classification("Instruction: Is the tree on the left?")
        ('instruction', 'Is the tree on the left?')
        >>> parse_classification("Instruction:tonight, which stars are visible?")
        ('instruction', 'tonight, which stars are visible?')
        >>> parse_classification("NO_INST"), parse_classification("NO_INST, it is a caption")
        (('caption', None), ('unparseable', None))
    """
    reply = (text or "").strip()
    if reply == "NO_INST":
        return "caption", None
    if reply.startswith(_INSTRUCTION_PREFIX):
        instruction = reply[len(_INSTRUCTION_PREFIX):].strip()
        if instruction and "\n" not in instruction and instruction != "NO_INST":
            return "instruction", instruction
    return "unparseable", None


def parse_score(text: str) -> Optional[int]:
    """The score in the last ``[[...]]`` of a judge's reply, if it is an integer 1-5; else ``None``.

    Example:
        >>> parse_score("Clear enough [[3]]. On reflection: [[4]]"), parse_score("I'd say 4"), parse_score("[[4.5]]")
        (4, None, None)
    """
    marks = _SCORE_MARK.findall(text or "")
    if not marks:
        return None
    value = marks[-1].strip()
    if not value.isdigit():
        return None
    score = int(value)
    return score if 1 <= score <= 5 else None


@dataclasses.dataclass(frozen=True)
class OasisThresholds:
    """Which scored samples are kept (defaults: Oasis's rule).

    Example:
        >>> OasisThresholds().failures({"solvability": 3, "clarity": 3, "hallucination": 5, "nonsense": 5})
        ['solvability + clarity 6 < 7']
    """

    min_solvability: int = 3
    min_clarity: int = 3
    min_hallucination: int = 5
    min_nonsense: int = 5
    min_solvability_plus_clarity: int = 7

    def failures(self, scores: dict) -> list[str]:
        """Reasons the scores fail the thresholds (empty list: keep).

        Example:
            >>> OasisThresholds(min_hallucination=4).failures({"solvability": 5, "clarity": 5, "hallucination": 4, "nonsense": 5})
            []
        """
        reasons = []
        for name, low in (("solvability", self.min_solvability), ("clarity", self.min_clarity),
                          ("hallucination", self.min_hallucination), ("nonsense", self.min_nonsense)):
            if scores[name] < low:
                reasons.append(f"{name} {scores[name]} < {low}")
        total = scores["solvability"] + scores["clarity"]
        if total < self.min_solvability_plus_clarity:
            reasons.append(f"solvability + clarity {total} < {self.min_solvability_plus_clarity}")
        return reasons


@dataclasses.dataclass
class OasisResult:
    """Outcome of :meth:`OasisPipeline.run`: the final file, the kept records, and per-stage counts
    ``{stage: {status: samples}}`` and rejections ``[(id, stage, status, reason)]``."""

    final_path: str
    records: list
    counts: dict
    rejected: list


class StageLog:
    """The JSON-lines record of one stage: what is finished, and appending new results durably."""

    def __init__(self, path: str):
        self.path = path
        self.records: dict[str, dict] = {}
        if os.path.exists(path):
            with open(path, "rb") as handle:
                data = handle.read()
            # A crash can leave a half-written last line: drop it, keep every complete one.
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) != len(data):
                with open(path, "r+b") as handle:
                    handle.truncate(len(complete))
            for line in complete.splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.records[record["id"]] = record

    def finished(self, sample_id: str) -> bool:
        """Whether the sample has a final status here (``error`` is retried).

        Example:
            >>> StageLog("work/score.jsonl").finished("oasis_00000001")  # doctest: +SKIP
            True
        """
        record = self.records.get(sample_id)
        return record is not None and record["status"] != "error"

    def append(self, records: Sequence[dict]) -> None:
        """Append records and flush them to disk (fsync) before returning.

        Example:
            >>> log.append([{"id": "oasis_00000001", "status": "ok", "reason": ""}])  # doctest: +SKIP
        """
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.records[record["id"]] = record
            handle.flush()
            os.fsync(handle.fileno())


class OasisPipeline:
    """The four Oasis stages over a list of images, resumable through ``work_dir``.

    Parameters
    ----------
    backend : Backend
        The vision-language model for hooking and responses (and judging when ``judge_backend``
        is not given).
    work_dir : str
        Folder of the stage logs and the final file; rerunning with the same folder resumes.
    judge_backend : Backend, optional
        The model for classification and scoring (Oasis uses a separate, larger judge).
    thresholds : OasisThresholds
    batch_size : int
        Samples per backend call (each scoring batch sends 4 requests per sample).
    max_new_tokens : dict, optional
        Per stage (``hooking``, ``classify``, ``score``, ``respond``).

    Notes
    -----
    Cost: 7 model calls per sample that reaches the last stage (hooking, classify, 4 scores,
    respond); finished samples are never sent again.

    Example:
        >>> pipeline = OasisPipeline(OpenAIChatBackend("http://127.0.0.1:8000/v1", "qwen2-vl"), "oasis_work")  # doctest: +SKIP
        >>> result = pipeline.run(["cat.jpg", "dog.jpg"], media_root="/data/images")  # doctest: +SKIP
        >>> hf_mmbuilder.load("oasis", result.final_path, media_root="/data/images")  # doctest: +SKIP
    """

    def __init__(self, backend: Backend, work_dir: str, *, judge_backend: Optional[Backend] = None,
                 thresholds: OasisThresholds = OasisThresholds(), batch_size: int = 16,
                 max_new_tokens: Optional[dict] = None, progress: bool = True):
        self.backend = backend
        self.judge = judge_backend or backend
        self.work_dir = work_dir
        self.thresholds = thresholds
        self.batch_size = batch_size
        self.max_new_tokens = {"hooking": 128, "classify": 160, "score": 256, "respond": 512, **(max_new_tokens or {})}
        self.progress = progress
        os.makedirs(work_dir, exist_ok=True)

    def run(self, images: Sequence[str], *, media_root: Optional[str] = None, ids: Optional[Sequence[str]] = None) -> OasisResult:
        """Run (or resume) every stage over ``images`` and write the final file.

        ``images`` are paths as they should appear in the output (relative ones are read from
        ``media_root``); ``ids`` default to ``oasis_<index>`` and must be unique.

        Example:
            >>> pipeline.run(["1.jpg", "2.jpg"], media_root="/data/images").counts["respond"]  # doctest: +SKIP
            {'ok': 2}
        """
        ids = list(ids) if ids is not None else [f"oasis_{index:08d}" for index in range(len(images))]
        if len(ids) != len(images) or len(set(ids)) != len(ids):
            raise ValueError("ids must be unique and as many as the images")
        samples = [{"id": sample_id, "image": path, "read_path": resolve_media_path(path, media_root)} for sample_id, path in zip(ids, images)]
        logs = {stage: StageLog(os.path.join(self.work_dir, f"{stage}.jsonl")) for stage in STAGES}
        current = samples
        for stage in STAGES:
            step = getattr(self, f"_{stage}")
            pending = [sample for sample in current if not logs[stage].finished(sample["id"])]
            bar = tqdm(total=len(pending), desc=f"oasis {stage}", disable=not self.progress)
            for start in range(0, len(pending), self.batch_size):
                batch = pending[start : start + self.batch_size]
                logs[stage].append(step(batch, logs))
                bar.update(len(batch))
            bar.close()
            current = [sample for sample in current if logs[stage].records.get(sample["id"], {}).get("status") == "ok"]
        return self._finish(samples, logs)

    def _record(self, sample: dict, status: str, reason: str = "", **values) -> dict:
        return {"id": sample["id"], "image": sample["image"], "status": status, "reason": reason, **values}

    def _hooking(self, batch: list, logs) -> list:
        readable, records = [], []
        for sample in batch:
            try:
                image_size(sample["read_path"])
                readable.append(sample)
            except Exception as error:  # any decoder failure: this sample is finished as failed
                records.append(self._record(sample, "failed", f"unreadable image {sample['read_path']}: {type(error).__name__}: {error}"))
        requests = [ChatRequest.user("", [s["read_path"]], continue_last=True, max_new_tokens=self.max_new_tokens["hooking"]) for s in readable]
        for sample, generation in zip(readable, self.backend.generate(requests)):
            if not generation.ok:
                records.append(self._record(sample, "error", generation.error, model=describe(self.backend)))
            elif not generation.text.strip():
                records.append(self._record(sample, "failed", "empty hooking output", raw=generation.text, model=describe(self.backend)))
            else:
                records.append(self._record(sample, "ok", raw=generation.text, model=describe(self.backend)))
        return records

    def _classify(self, batch: list, logs) -> list:
        hooked = [logs["hooking"].records[s["id"]]["raw"] for s in batch]
        requests = [ChatRequest.user(CLASSIFY_PROMPT.format(text=text), max_new_tokens=self.max_new_tokens["classify"]) for text in hooked]
        records = []
        for sample, generation in zip(batch, self.judge.generate(requests)):
            if not generation.ok:
                records.append(self._record(sample, "error", generation.error, model=describe(self.judge)))
                continue
            kind, instruction = parse_classification(generation.text)
            if kind == "instruction":
                records.append(self._record(sample, "ok", raw=generation.text, instruction=instruction, model=describe(self.judge)))
            elif kind == "caption":
                records.append(self._record(sample, "dropped", "classified as a caption (NO_INST)", raw=generation.text, model=describe(self.judge)))
            else:
                records.append(self._record(sample, "failed", f"unparseable classification {generation.text[:200]!r}", raw=generation.text, model=describe(self.judge)))
        return records

    def _score(self, batch: list, logs) -> list:
        requests = []
        for sample in batch:
            instruction = logs["classify"].records[sample["id"]]["instruction"]
            for name in SCORE_NAMES:
                images = [] if name == "nonsense" else [sample["read_path"]]
                requests.append(ChatRequest.user(SCORE_PROMPTS[name].format(instruction=instruction), images, max_new_tokens=self.max_new_tokens["score"]))
        generations = self.judge.generate(requests)
        records = []
        for position, sample in enumerate(batch):
            replies = dict(zip(SCORE_NAMES, generations[position * 4 : position * 4 + 4]))
            errors = [f"{name}: {g.error}" for name, g in replies.items() if not g.ok]
            if errors:
                records.append(self._record(sample, "error", "; ".join(errors), model=describe(self.judge)))
                continue
            raw = {name: g.text for name, g in replies.items()}
            scores = {name: parse_score(text) for name, text in raw.items()}
            unparsed = [name for name, score in scores.items() if score is None]
            if unparsed:
                records.append(self._record(sample, "failed", f"no [[1-5]] score in the {', '.join(unparsed)} reply", raw=raw, scores=scores, model=describe(self.judge)))
                continue
            reasons = self.thresholds.failures(scores)
            status = "dropped" if reasons else "ok"
            records.append(self._record(sample, status, "; ".join(reasons), raw=raw, scores=scores, model=describe(self.judge)))
        return records

    def _respond(self, batch: list, logs) -> list:
        instructions = [logs["classify"].records[s["id"]]["instruction"] for s in batch]
        requests = [ChatRequest.user(text, [s["read_path"]], max_new_tokens=self.max_new_tokens["respond"]) for s, text in zip(batch, instructions)]
        records = []
        for sample, generation in zip(batch, self.backend.generate(requests)):
            if not generation.ok:
                records.append(self._record(sample, "error", generation.error, model=describe(self.backend)))
            elif not generation.text.strip():
                records.append(self._record(sample, "failed", "empty response", raw=generation.text, model=describe(self.backend)))
            else:
                records.append(self._record(sample, "ok", raw=generation.text, response=generation.text.strip(), model=describe(self.backend)))
        return records

    def _finish(self, samples: list, logs) -> OasisResult:
        records, rejected = [], []
        counts = {stage: {} for stage in STAGES}
        for stage in STAGES:
            for record in logs[stage].records.values():
                counts[stage][record["status"]] = counts[stage].get(record["status"], 0) + 1
        for sample in samples:
            for stage in STAGES:
                record = logs[stage].records.get(sample["id"])
                if record is None or record["status"] != "ok":
                    if record is not None:
                        rejected.append((sample["id"], stage, record["status"], record["reason"]))
                    break
            else:
                records.append({
                    "id": sample["id"],
                    "image": sample["image"],
                    "conversations": [
                        {"from": "human", "value": "<image>\n" + logs["classify"].records[sample["id"]]["instruction"]},
                        {"from": "gpt", "value": logs["respond"].records[sample["id"]]["response"]},
                    ],
                    "data_source": "oasis",
                    "oasis_scores": logs["score"].records[sample["id"]]["scores"],
                })
        final_path = os.path.join(self.work_dir, FINAL_FILE)
        temporary = final_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        os.replace(temporary, final_path)
        return OasisResult(final_path=final_path, records=records, counts=counts, rejected=rejected)
