"""Template instructions (types, languages, seeding, alignment, LLaVA export) and the quality report."""

import json

import pytest
from datasets import Dataset

import hf_mmbuilder
from hf_mmbuilder import IMAGE_TOKEN
from hf_mmbuilder.ops import ComputeStats, QualityFilter, RedactPII, apply_filters
from hf_mmbuilder.synthesis import generate_template_instructions, plan_instructions, quality_report, write_instruction
from hf_mmbuilder.synthesis.templates import caption_of


def captions():
    return Dataset.from_dict({
        "text": [IMAGE_TOKEN + " A red bus parked beside a bakery. <|__dj__eoc|>", "no media here",
                 "[[human]]: " + IMAGE_TOKEN + "\nWhat is it?\n[[gpt]]: Two cats sleeping on a sofa. <|__dj__eoc|>"],
        "images": [["bus.jpg"], [], ["cats.jpg"]],
        "metadata": [json.dumps({"objects": ["bus", "bakery"], "city": "Lyon"}), None, None],
    })


def test_caption_extraction():
    assert caption_of(captions()[2]["text"]) == "Two cats sleeping on a sofa."
    assert caption_of(captions()[0]["text"]) == "A red bus parked beside a bakery."


def test_every_type_and_language():
    for language in ("en", "zh", "fr", "de", "es"):
        for kind in ("qa", "caption", "reasoning"):
            question, answer = write_instruction("A red bus.", {"objects": ["bus", "road"]}, kind, language, 0, "k")
            assert question and answer and question != answer
    assert write_instruction("A red bus.", {"city": "Lyon"}, "qa", "en", 0, "k")[1] == "The city is Lyon."
    with pytest.raises(ValueError, match="no templates for language"):
        write_instruction("x", None, "qa", "xx", 0, "k")
    with pytest.raises(ValueError, match="unknown instruction type"):
        plan_instructions(3, 3, ["poem"])


def test_generation_is_seeded_aligned_and_exports(tmp_path):
    ds = captions()
    first = generate_template_instructions(ds, 12, ["qa", "caption", "reasoning"], ["en", "zh"], seed=7)
    again = generate_template_instructions(ds, 12, ["qa", "caption", "reasoning"], ["en", "zh"], seed=7, num_proc=2)
    other = generate_template_instructions(ds, 12, ["qa", "caption", "reasoning"], ["en", "zh"], seed=8)
    assert first["text"][:] == again["text"][:]
    assert first["text"][:] != other["text"][:]
    assert len(first) == 12 and set(first["source_row"][:]) == {0, 2}
    assert set(zip(first["instruction_type"][:], first["language"][:])) == {(k, l) for k in ("qa", "caption", "reasoning") for l in ("en", "zh")}
    assert hf_mmbuilder.validate_alignment(first) == []
    bus_qa = [t for t, k, l, r in zip(first["text"][:], first["instruction_type"][:], first["language"][:], first["source_row"][:]) if (k, l, r) == ("qa", "en", 0)]
    assert all(("Lyon" in t) or ("bus and bakery" in t) for t in bus_qa)
    out = tmp_path / "llava.json"
    hf_mmbuilder.export(first, "llava", str(out))
    records = json.loads(out.read_text())
    assert len(records) == 12 and records[0]["conversations"][0]["value"].startswith("<image>\n")
    assert records[0]["image"] in ("bus.jpg", "cats.jpg")


def test_quality_report(tmp_path):
    ds = Dataset.from_dict({
        "text": ["[[human]]: " + IMAGE_TOKEN + " What is the man doing? Call 555-123-4567.\n[[gpt]]: He is riding a horse along the beach.",
                 "[[human]]: " + IMAGE_TOKEN + " 这是什么？\n[[gpt]]: 这是一只在沙发上睡觉的猫。",
                 "spam spam spam spam spam spam spam spam spam spam spam spam spam", "x " + IMAGE_TOKEN],
        "images": [["a.jpg"], ["b.jpg"], [], []],
    })
    ds = ds.map(RedactPII(), batched=True).map(ComputeStats(media=False, ngram=2), batched=True)
    quality = QualityFilter(min_text_len=10, max_word_rep_ratio=0.5)
    result = apply_filters(ds, quality)
    report = quality_report(ds, result, quality)
    assert report.rows == 4
    assert report.alignment_errors["count"] == 1 and "row 3" in report.alignment_errors["first"][0]
    assert report.languages["zh"] == 1 and report.languages["en"] >= 1
    assert report.pii["phone"] == 1
    assert report.pass_rates["overall"] == 0.5
    assert report.pass_rates["misaligned"] == 0.75 and report.pass_rates["word_rep_ratio"] == 0.75
    assert 0 < report.dimensions["alignment"] < 1 and report.dimensions["alignment"] == 0.75
    assert sum(report.length["chars_histogram"].values()) == 4
    parsed = json.loads(report.to_json(str(tmp_path / "report.json")))
    assert parsed == json.loads((tmp_path / "report.json").read_text()) and parsed["rows"] == 4
    markdown = report.to_markdown()
    assert "| alignment | 0.750 |" in markdown and "phone 1" in markdown and "**Alignment errors:** 1" in markdown


def test_report_includes_oasis_judge_scores():
    ds = Dataset.from_dict({"text": ["a b"] * 3, "images": [[]] * 3, "solvability": [5, 2, 4], "clarity": [3, 3, 3], "hallucination": [5, 5, 4], "nonsense": [5, 5, 5]})
    report = quality_report(ds)
    assert report.judge_scores["solvability"]["pass_rate"] == pytest.approx(2 / 3)
    assert report.judge_scores["hallucination"]["histogram"]["4"] == 1


def test_template_op_num_proc_and_cache(tmp_path):
    from hf_mmbuilder.synthesis import TemplateInstructions

    ds = Dataset.from_dict({
        "text": [IMAGE_TOKEN + f" A photo number {i} of a red bus." for i in range(8)],
        "images": [[f"{i}.jpg"] for i in range(8)],
        "instruction_type": ["qa", "caption", "reasoning", "qa"] * 2,
        "language": ["en", "zh", "fr", "de"] * 2,
        "source_row": list(range(8)),
    }).flatten_indices(cache_file_name=str(tmp_path / "base.arrow"))
    first = ds.map(TemplateInstructions(seed=3), batched=True, batch_size=2, num_proc=2)
    second = ds.map(TemplateInstructions(seed=3), batched=True, batch_size=2, num_proc=2)
    assert [f["filename"] for f in first.cache_files] == [f["filename"] for f in second.cache_files]
    other = ds.map(TemplateInstructions(seed=4), batched=True, batch_size=2, num_proc=2)
    assert [f["filename"] for f in other.cache_files] != [f["filename"] for f in first.cache_files]
    assert first["text"][:] == ds.map(TemplateInstructions(seed=3), batched=True, batch_size=8)["text"][:]
    assert hf_mmbuilder.validate_alignment(first) == []
