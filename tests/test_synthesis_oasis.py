"""Oasis pipeline with a scripted backend: each stage's parsing, the thresholds, recorded failures,
resume after a crash, and final records that load with hf_mmbuilder/oasis."""

import json

import pytest
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.synthesis.backends import Generation
from hf_mmbuilder.synthesis.oasis import (
    FINAL_FILE,
    SCORE_NAMES,
    SCORE_PROMPTS,
    OasisPipeline,
    OasisThresholds,
    parse_classification,
    parse_score,
)


class Crash(RuntimeError):
    pass


class ScriptedBackend:
    """Answers each request from the image name and prompt, like a model would, and logs calls."""

    name = "scripted"

    def __init__(self, script, crash_after=None):
        self.script = script
        self.calls = []
        self.crash_after = crash_after

    def generate(self, requests):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise Crash("simulated crash")
        out = []
        for request in requests:
            images = request.image_paths()
            text = request.messages[-1]["content"][-1].get("text", "") if request.messages[-1]["content"] else ""
            self.calls.append((request.continue_last, images, text[:40]))
            out.append(self.script(request, images, text))
        return out


# Per image stem: hooked text, classifier reply, scores (solvability, clarity, hallucination, nonsense).
PLAN = {
    "keep": ("What color is the car?", "Instruction: What color is the car?", (5, 4, 5, 5)),
    "caption": ("A red car parked on a street.", "NO_INST", None),
    "garbled": ("What color", "The text is an instruction.", None),
    "lstrip": ("nice question", "Instruction:nice weather today, isn't it?", (4, 3, 5, 5)),
    "lowsum": ("Is it sunny?", "Instruction: Is it sunny?", (3, 3, 5, 5)),
    "halluc": ("Who is the pilot?", "Instruction: Who is the pilot?", (5, 5, 4, 5)),
    "noscore": ("Why?", "Instruction: Why?", "no brackets"),
}


def script(request, images, text):
    if request.continue_last:
        return Generation(text=PLAN[images[0].rsplit("/", 1)[1].split(".")[0]][0])
    if text.startswith("You will read"):
        hooked = text.rsplit("Text: ", 1)[1].strip()
        return Generation(text=next(reply for hook, reply, _ in PLAN.values() if hook == hooked))
    for position, name in enumerate(SCORE_NAMES):
        if text.startswith(SCORE_PROMPTS[name].split("{instruction}")[0]):
            instruction = text.split("Instruction: ", 1)[1].split("\n", 1)[0]
            scores = next(s for _, reply, s in PLAN.values() if reply.startswith("Instruction:") and reply[12:].strip() == instruction)
            if scores == "no brackets":
                return Generation(text="I would rate it 4.")
            return Generation(text=f"Reasoning [[1]] then final [[{scores[position]}]]")
    return Generation(text=f"The answer to '{text}' is visible in the image.")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = []
    for stem in PLAN:
        Image.new("RGB", (32, 24), (len(stem) * 20, 50, 90)).save(folder / f"{stem}.png")
        names.append(f"{stem}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    names.append("broken.png")
    return folder, names


def test_parsers():
    assert parse_classification("  Instruction: Describe the sky. ") == ("instruction", "Describe the sky.")
    # lstrip("Instruction:") would eat "nic" from "nice".
    assert parse_classification("Instruction:nice view?") == ("instruction", "nice view?")
    assert parse_classification("NO_INST") == ("caption", None)
    for garbage in ("no_inst", "Instruction:", "Sure! Instruction: x", "Instruction: a\nb", "", "NO_INST."):
        assert parse_classification(garbage) == ("unparseable", None), garbage
    assert parse_score("[[2]] ... final answer [[5]]") == 5
    for garbage in ("5", "[[6]]", "[[0]]", "[[ ]]", "[[five]]", "[[3]] and [[x]]", None):
        assert parse_score(garbage) is None, garbage
    assert parse_score("[[ 3 ]]") == 3


def test_thresholds_configurable():
    scores = {"solvability": 4, "clarity": 3, "hallucination": 5, "nonsense": 5}
    assert OasisThresholds().failures(scores) == []
    assert OasisThresholds(min_solvability_plus_clarity=8).failures(scores) == ["solvability + clarity 7 < 8"]
    assert OasisThresholds(min_hallucination=4).failures({**scores, "hallucination": 4}) == []
    assert OasisThresholds().failures({**scores, "hallucination": 4, "clarity": 2}) == ["clarity 2 < 3", "hallucination 4 < 5", "solvability + clarity 6 < 7"]


def run(folder, names, work, backend, **options):
    pipeline = OasisPipeline(backend, str(work), batch_size=3, progress=False, **options)
    return pipeline.run(names, media_root=str(folder))


def test_stages_parse_filter_and_record(images, tmp_path, cache_dir):
    folder, names = images
    backend = ScriptedBackend(script)
    result = run(folder, names, tmp_path / "work", backend)
    assert [r["image"] for r in result.records] == ["keep.png", "lstrip.png"]
    assert result.records[1]["conversations"][0]["value"] == "<image>\nnice weather today, isn't it?"
    assert result.records[0]["oasis_scores"] == {"solvability": 5, "clarity": 4, "hallucination": 5, "nonsense": 5}
    rejected = {sample_id: (stage, status, reason) for sample_id, stage, status, reason in result.rejected}
    by_name = dict(zip(names, [f"oasis_{i:08d}" for i in range(len(names))]))
    assert rejected[by_name["caption.png"]][:2] == ("classify", "dropped")
    assert rejected[by_name["garbled.png"]][:2] == ("classify", "failed")
    assert rejected[by_name["lowsum.png"]] == ("score", "dropped", "solvability + clarity 6 < 7")
    assert rejected[by_name["halluc.png"]] == ("score", "dropped", "hallucination 4 < 5")
    assert rejected[by_name["noscore.png"]][:2] == ("score", "failed")
    assert rejected[by_name["broken.png"]][0:2] == ("hooking", "failed") and "unreadable image" in rejected[by_name["broken.png"]][2]
    assert len(result.records) + len(result.rejected) == len(names)
    # Every stage log records raw outputs; the nonsense judge never saw the image.
    score_log = [json.loads(line) for line in (tmp_path / "work" / "score.jsonl").read_text().splitlines()]
    assert all(set(r["raw"]) == {"solvability", "clarity", "hallucination", "nonsense"} for r in score_log if r["status"] != "error")
    nonsense_calls = [c for c in backend.calls if c[2].startswith("Read the instruction")]
    assert nonsense_calls and all(images == [] for _, images, _ in nonsense_calls)
    ds = hf_mmbuilder.load("oasis", str(tmp_path / "work" / FINAL_FILE), split="train", cache_dir=cache_dir, media_root=str(folder))
    assert len(ds) == 2 and ds[0]["images"] == ["keep.png"]
    assert hf_mmbuilder.validate_alignment(ds) == []
    assert ds[0]["extra"]["oasis_scores"]["clarity"] == 4


def test_resume_after_crash_loses_nothing(images, tmp_path):
    folder, names = images
    reference = run(folder, names, tmp_path / "reference", ScriptedBackend(script))
    work = tmp_path / "work"
    crashing = ScriptedBackend(script, crash_after=12)
    with pytest.raises(Crash):
        run(folder, names, work, crashing)
    finished_before = (work / "hooking.jsonl").read_text().splitlines()
    assert finished_before
    # A torn last line from the crash is dropped on resume, complete lines are kept.
    with open(work / "classify.jsonl", "a") as handle:
        handle.write('{"id": "oasis_0000')
    resumed_backend = ScriptedBackend(script)
    resumed = run(folder, names, work, resumed_backend)
    assert resumed.records == reference.records
    hooked_again = [c for c in resumed_backend.calls if c[0]]
    assert len(hooked_again) == len(names) - 1 - len(finished_before) + sum('"failed"' in line for line in finished_before)
    # A third run has nothing left to do.
    idle = ScriptedBackend(script)
    assert run(folder, names, work, idle).records == reference.records and idle.calls == []


def test_backend_errors_are_recorded_and_retried(images, tmp_path):
    folder, names = images
    failing = ScriptedBackend(lambda request, images, text: Generation(error="HTTP 500 from server"))
    result = run(folder, names, tmp_path / "work", failing)
    assert result.records == []
    assert result.counts["hooking"] == {"failed": 1, "error": len(names) - 1}
    assert all(status in ("error", "failed") for _, _, status, _ in result.rejected)
    healed = run(folder, names, tmp_path / "work", ScriptedBackend(script))
    assert [r["image"] for r in healed.records] == ["keep.png", "lstrip.png"]


def test_ids_must_be_unique(images, tmp_path):
    folder, names = images
    with pytest.raises(ValueError, match="unique"):
        OasisPipeline(ScriptedBackend(script), str(tmp_path / "w"), progress=False).run(names[:2], ids=["a", "a"])
