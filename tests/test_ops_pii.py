"""PII redaction: planted entities in several languages are all redacted; DJ tokens, role markers,
paths and ordinary numbers are untouched; counts land in the stats; the op caches under num_proc."""

import pytest
from datasets import Dataset

from hf_mmbuilder import IMAGE_TOKEN, EOC_TOKEN
from hf_mmbuilder.ops import STATS_COLUMN, RedactPII, redact_text
from hf_mmbuilder.ops.pii import cn_id_valid, luhn_valid

# (text template, planted entities by type). Every entity must disappear; the rest must stay.
PLANTED = [
    ("[[human]]: My email is john.doe@example.com, what is in the picture?\n" + IMAGE_TOKEN, {"email": ["john.doe@example.com"]}),
    ("[[gpt]]: Écrivez à marie.dupont@exemple.fr ou appelez le 01 23 45 67 89.", {"email": ["marie.dupont@exemple.fr"], "phone": ["01 23 45 67 89"]}),
    ("[[human]]: Meine Nummer ist +49 30 12345678, Mail: jürgen.müller@beispiel.de", {"phone": ["+49 30 12345678"], "email": ["jürgen.müller@beispiel.de"]}),
    ("[[human]]: 我的身份证号是11010519491231002X，手机13800138000，邮箱zhang.san@qq.com" + IMAGE_TOKEN, {"id": ["11010519491231002X"], "phone": ["13800138000"], "email": ["zhang.san@qq.com"]}),
    ("[[gpt]]: 電話番号は03-1234-5678、または090-1234-5678です。", {"phone": ["03-1234-5678", "090-1234-5678"]}),
    ("[[human]]: Call me at (555) 123-4567 or 555-987-6543. SSN 123-45-6789.", {"phone": ["(555) 123-4567", "555-987-6543"], "id": ["123-45-6789"]}),
    ("[[human]]: Pay with 4111 1111 1111 1111 or 5500-0000-0000-0004 please " + EOC_TOKEN, {"credit_card": ["4111 1111 1111 1111", "5500-0000-0000-0004"]}),
    ("[[gpt]]: The server at 192.168.1.20 and 2001:db8:85a3::8a2e:370:7334 leaked data.", {"ip": ["192.168.1.20", "2001:db8:85a3::8a2e:370:7334"]}),
    ("[[human]]: Mi correo es ana.garcia@correo.es y mi teléfono +34 612 345 678.", {"email": ["ana.garcia@correo.es"], "phone": ["+34 612 345 678"]}),
    ("[[human]]: UK NI number AB 12 34 56 C on the form", {"id": ["AB 12 34 56 C"]}),
    ("[[human]]: Мой телефон +7 495 123-45-67, почта ivan@mail.ru", {"phone": ["+7 495 123-45-67"], "email": ["ivan@mail.ru"]}),
]

# Ordinary numbers, paths and markup that must survive unchanged.
CLEAN = [
    "[[human]]: " + IMAGE_TOKEN + "\nIn 2019 Biopharma generated $39,419 million while Upjohn made $10,233 million.",
    "[[gpt]]: The photo coco/train2017/000000033471.jpg shows 3 cats; version 1.2.3 released on 2024-05-17 at 12:30:45.",
    "[[human]]: Compare images/13800138000.png and 4111111111111112 (not a card) " + IMAGE_TOKEN + EOC_TOKEN,
    "[[gpt]]: The score was 98.6%, pi is 3.14159, the date 03-12-2020, and id 110105194912310021 fails its check.",
    "[[human]]: 图中有3只猫和12只狗，价格是1999元。" + IMAGE_TOKEN,
]


@pytest.mark.parametrize("text, planted", PLANTED)
def test_every_planted_entity_is_redacted(text, planted):
    redacted, counts = redact_text(text)
    for kind, entities in planted.items():
        for entity in entities:
            assert entity not in redacted, (entity, redacted)
        assert counts[kind] == len(entities), (kind, counts, redacted)
    assert sum(counts.values()) == sum(len(entities) for entities in planted.values())
    assert redacted.count(IMAGE_TOKEN) == text.count(IMAGE_TOKEN)
    assert redacted.count(EOC_TOKEN) == text.count(EOC_TOKEN)
    assert redacted.split(":")[0] == text.split(":")[0]


@pytest.mark.parametrize("text", CLEAN)
def test_no_false_positive_on_tokens_paths_and_numbers(text):
    assert redact_text(text) == (text, {kind: 0 for kind in ("email", "phone", "id", "ip", "credit_card", "url")})


def test_urls_only_when_asked():
    text = "see https://example.com/a?b=1 and www.example.org."
    assert redact_text(text)[0] == text
    assert redact_text(text, urls=True)[0] == "see [URL] and [URL]."


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194912310021")


def test_custom_placeholders_and_unknown_type():
    assert redact_text("x@y.org", replacements={"email": "<mail>"})[0] == "<mail>"
    with pytest.raises(ValueError, match="unknown PII type"):
        RedactPII(replacements={"passport": "x"})


def test_map_num_proc_counts_and_cache(tmp_path):
    texts = [text for text, _ in PLANTED] + CLEAN
    images = [["coco/000000033471.jpg"] * text.count(IMAGE_TOKEN) for text in texts]
    ds = Dataset.from_dict({"text": texts, "images": images}).flatten_indices(cache_file_name=str(tmp_path / "base.arrow"))
    first = ds.map(RedactPII(), batched=True, batch_size=4, num_proc=2)
    second = ds.map(RedactPII(), batched=True, batch_size=4, num_proc=2)
    assert [f["filename"] for f in first.cache_files] == [f["filename"] for f in second.cache_files]
    assert first["images"][:] == images
    stats = first[STATS_COLUMN][:]
    assert [row["pii_email"] for row in stats[: len(PLANTED)]] == [len(p.get("email", [])) for _, p in PLANTED]
    assert all(sum(row.values()) == 0 for row in stats[len(PLANTED):])
    assert first["text"][len(PLANTED):] == CLEAN
    arrow = ds.with_format("arrow").map(RedactPII(), batched=True, batch_size=4)
    assert arrow.with_format(None)["text"][:] == first["text"][:]
    assert arrow.column_names == first.column_names


def test_real_samples_only_true_positives(shared_data):
    import hf_mmbuilder

    changed = {}
    for fmt, name in [("llava", "llava/llava_instruct_150k_slice100.json"), ("sharegpt", "sharegpt/sharegpt_messages_llamafactory.json"),
                      ("oasis", "oasis/oasis_mm_inf_input.jsonl"), ("mmc4", "mmc4/docs_shard_151_v3.jsonl")]:
        ds = hf_mmbuilder.load(fmt, str(shared_data / "formats" / name), split="train")
        redacted = ds.map(RedactPII(), batched=True)
        assert redacted["images"][:] == ds["images"][:]
        changed[fmt] = [(a, b) for a, b in zip(ds["text"][:], redacted["text"][:]) if a != b]
    assert not changed["llava"] and not changed["sharegpt"] and not changed["oasis"]
    # The MMC4 web documents carry two real US phone numbers, and nothing else is touched.
    assert len(changed["mmc4"]) == 2
    for before, after in changed["mmc4"]:
        assert after.count("[PHONE]") == 1 and before.replace("919-202-4428", "[PHONE]").replace("207-581-3818", "[PHONE]") == after
