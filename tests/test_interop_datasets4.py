"""What ``publish`` writes loads with ``datasets`` 4.0.0 (the newest LLaMA-Factory allows
``datasets<=4.0.0``), in a venv of its own (``requirements/datasets4.lock``): no ``Json`` feature
(JSON text columns declared ``string``), no column that is empty in every row, media embedded or
referenced (issue 16, point 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peer_tools import run_peer_script
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.publishing import publish

pytestmark = pytest.mark.integration

RECORDS = [
    {"id": "r0", "image": "coco/red.png", "model": "gpt-4",
     "conversations": [{"from": "human", "value": "<image>\nWhat colour is it?", "weight": 0},
                       {"from": "gpt", "value": "Red.", "weight": 1}]},
    {"id": "r1", "image": "coco/blue.png",
     "conversations": [{"from": "human", "value": "<image>\nAnd this one?"}, {"from": "gpt", "value": "Blue."}]},
    {"id": "r2", "image": "coco/green.png", "model": "llava-1.5",
     "conversations": [{"from": "human", "value": "<image>\nName the colour."}, {"from": "gpt", "value": "Green."}]},
    {"id": "r3",
     "conversations": [{"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello.", "weight": 1}]},
]
COLOURS = {"coco/red.png": (200, 0, 0), "coco/blue.png": (0, 0, 200), "coco/green.png": (0, 200, 0)}
COMMON_FEATURES = {
    "text": {"dtype": "string", "_type": "Value"},
    "id": {"dtype": "string", "_type": "Value"},
    "id_is_int": {"dtype": "bool", "_type": "Value"},
    "roles": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
    "media_layout": {"dtype": "string", "_type": "Value"},
    "turn_extras": {"dtype": "string", "_type": "Value"},
    # The source file's written style, kept so that a published dataset exports byte for byte.
    "source_style": {"dtype": "string", "_type": "Value"},
    "extra": {"dtype": "string", "_type": "Value"},
}


@pytest.fixture
def llava_dataset(tmp_path):
    for path, colour in COLOURS.items():
        (tmp_path / "media" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 16), colour).save(tmp_path / "media" / path)
    (tmp_path / "llava.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    return hf_mmbuilder.load("llava", str(tmp_path / "llava.json"), split="train", media_root=str(tmp_path / "media"),
                             cache_dir=str(tmp_path / "cache"))


def first_rows(report: dict) -> dict:
    return {split: part["first_row"] for split, part in report["splits"].items()}


@pytest.mark.parametrize("embed_media", [True, False], ids=["embedded", "referenced"])
def test_datasets_4_loads_a_published_folder(llava_dataset, tmp_path, embed_media):
    features = llava_dataset.features
    assert type(features["turn_extras"]).__name__ == "Json" and type(features["extra"]).__name__ == "Json"
    assert {"audios", "videos"} <= set(features)
    out = tmp_path / "published"
    result = publish(llava_dataset, split_ratio={"train": 0.5, "test": 0.5}, seed=0, local_dir=str(out),
                     embed_media=embed_media, progress=False)
    assert result.plan.indices["train"].tolist() == [0, 1] and result.plan.indices["test"].tolist() == [2, 3]

    report = run_peer_script("datasets4", "datasets_load.py", out)

    assert report["ok"], report
    assert report["datasets_version"] == "4.0.0"
    assert {split: part["num_rows"] for split, part in report["splits"].items()} == {"train": 2, "test": 2}
    image = {"_type": "Image"} if embed_media else {"dtype": "string", "_type": "Value"}
    expected_features = {"text": COMMON_FEATURES["text"], "images": {"feature": image, "_type": "List"},
                         **{name: value for name, value in COMMON_FEATURES.items() if name != "text"}}
    for part in report["splits"].values():
        assert part["features"] == expected_features
        assert list(part["features"]) == list(expected_features)
    decoded = {"<image>": {"mode": "RGB", "size": [24, 16], "format": "PNG"}}
    # json.dumps' own layout: one line, ", " and ": ", ASCII escapes, no final newline.
    style = '["array",null,", ",": ",true,"\\n",false,false]'
    assert first_rows(report) == {
        "train": {"text": "[[human]]: <__dj__image>\nWhat colour is it?\n[[gpt]]: Red. <|__dj__eoc|>",
                  "images": [decoded if embed_media else "coco/red.png"], "id": "r0", "id_is_int": False,
                  "roles": ["human", "gpt"], "media_layout": "image", "turn_extras": '[{"weight":0},{"weight":1}]',
                  "source_style": style, "extra": '{"model":"gpt-4","__key_order__":["id","image","model","conversations"]}'},
        "test": {"text": "[[human]]: <__dj__image>\nName the colour.\n[[gpt]]: Green. <|__dj__eoc|>",
                 "images": [decoded if embed_media else "coco/green.png"], "id": "r2", "id_is_int": False,
                 "roles": ["human", "gpt"], "media_layout": "image", "turn_extras": None, "source_style": style,
                 "extra": '{"model":"llava-1.5","__key_order__":["id","image","model","conversations"]}'},
    }
    assert "Left out because they are empty in every row: `audios`, `videos`." in result.card
    assert "`turn_extras`, `extra` hold JSON text" in result.card
