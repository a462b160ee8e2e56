"""ImageTextSimilarity: Data-Juicer's image_text_similarity score (per chunk with images,
logits_per_text / 100, reduce_mode, flips) equals a direct transformers computation, and
QualityFilter filters on it with Data-Juicer's min_score / max_score / any_or_all semantics."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the CLIP score needs the vlm extra")
transformers = pytest.importorskip("transformers", reason="the CLIP score needs the vlm extra")

from PIL import Image, ImageOps  # noqa: E402

import embedding_models  # noqa: E402
import hf_mmbuilder  # noqa: E402
from hf_mmbuilder.ops import FILTER_COLUMN, STATS_COLUMN, ComputeStats, ImageTextSimilarity, QualityFilter, apply_filters  # noqa: E402

IMAGE, EOC = "<__dj__image>", "<|__dj__eoc|>"
TEXTS = [
    f"{IMAGE} a red bus on the street {EOC} a cat is on the car {EOC} {IMAGE}{IMAGE} the dog and the cat {EOC}",
    "a photo of the sky",
    f"[[human]]: {IMAGE} a green car with a dog {EOC}",
]
IMAGES = [["0.png", "1.png", "2.png"], [], ["3.png"]]
# Per row: (chunk text as Data-Juicer passes it to CLIP, indices of its images in the row).
CHUNKS = [[("a red bus on the street", [0]), ("the dog and the cat", [1, 2])], [], [("[[human]]:  a green car with a dog", [0])]]


pytestmark = pytest.mark.usefixtures("force_cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (36, 48, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return folder


def dataset(folder):
    return datasets.Dataset.from_dict({"text": TEXTS, "images": IMAGES, "media_root": [str(folder)] * len(TEXTS)})


def direct_scores(model_folder, photo_folder, reduce_mode="avg", flip=lambda image: image):
    """Data-Juicer's computation, chunk by chunk, with the model's own processor and forward pass."""
    model = transformers.AutoModel.from_pretrained(model_folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(model_folder)
    reduce = {"avg": torch.mean, "max": torch.max, "min": torch.min}[reduce_mode]
    rows = []
    for chunks, names in zip(CHUNKS, IMAGES):
        scores = []
        for text, members in chunks:
            images = [flip(Image.open(photo_folder / names[member]).convert("RGB")) for member in members]
            inputs = processor(text=text, images=images, return_tensors="pt", truncation=True,
                               max_length=model.config.text_config.max_position_embeddings, padding=True)
            with torch.inference_mode():
                scores.append(float(reduce(model(**inputs).logits_per_text / 100.0)))
        rows.append(scores)
    return rows


@pytest.mark.parametrize("reduce_mode", ["avg", "max", "min"])
def test_scores_equal_data_juicers_computation(clip_folder, photos, reduce_mode):
    scored = dataset(photos).map(ImageTextSimilarity(f"model:{clip_folder}", reduce_mode=reduce_mode, batch_size=2), batched=True)
    got = [row["image_text_similarity"] for row in scored[STATS_COLUMN]]
    expected = direct_scores(clip_folder, photos, reduce_mode)
    assert [len(scores) for scores in got] == [2, 0, 1]
    assert np.allclose(sum(got, []), sum(expected, []), rtol=0, atol=1e-6)


@pytest.mark.parametrize("horizontal, vertical", [(True, False), (False, True), (True, True)])
def test_flips(clip_folder, photos, horizontal, vertical):
    def flip(image):
        image = ImageOps.mirror(image) if horizontal else image
        return ImageOps.flip(image) if vertical else image

    op = ImageTextSimilarity(clip_folder, horizontal_flip=horizontal, vertical_flip=vertical)
    got = [row["image_text_similarity"] for row in dataset(photos).map(op, batched=True)[STATS_COLUMN]]
    assert np.allclose(sum(got, []), sum(direct_scores(clip_folder, photos, flip=flip), []), rtol=0, atol=1e-6)
    plain = [row["image_text_similarity"] for row in dataset(photos).map(ImageTextSimilarity(clip_folder), batched=True)[STATS_COLUMN]]
    assert not np.allclose(sum(got, []), sum(plain, []), rtol=0, atol=1e-6)


def test_trained_scale_makes_the_score_the_cosine_of_embed_vectors(tmp_path, photos):
    folder = embedding_models.clip(tmp_path / "clip100")
    model = transformers.AutoModel.from_pretrained(folder)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # what training converges to (CLIP clamps it there)
    model.save_pretrained(folder)
    ds = datasets.Dataset.from_dict({"text": [f"{IMAGE} a red bus {EOC}"], "images": [["0.png"]], "media_root": [str(photos)]})
    score = ds.map(ImageTextSimilarity(folder), batched=True)[0][STATS_COLUMN]["image_text_similarity"][0]
    image = np.asarray(hf_mmbuilder.embed(ds, folder, progress=False)["embedding"][0])
    text = np.asarray(hf_mmbuilder.embed(ds, folder, modality="text", progress=False)["embedding"][0])
    assert score == pytest.approx(float(image @ text), abs=1e-5)


def test_quality_filter_bounds_any_or_all(clip_folder, photos):
    scored = dataset(photos).map(ComputeStats(media=False), batched=True).map(ImageTextSimilarity(clip_folder), batched=True)
    (a, b), _, (c,) = [row["image_text_similarity"] for row in scored[STATS_COLUMN]]
    low = min(a, b) + abs(a - b) / 2  # one of row 0's chunks is above, one below
    keep_any = apply_filters(scored, QualityFilter(min_image_text_similarity=low))
    keep_all = apply_filters(scored, QualityFilter(min_image_text_similarity=low, any_or_all="all"))
    row2_passes = c >= low
    assert keep_any.kept["text"] == [TEXTS[0], TEXTS[1]] + ([TEXTS[2]] if row2_passes else [])
    assert keep_all.kept["text"] == [TEXTS[1]] + ([TEXTS[2]] if row2_passes else [])
    assert keep_all.dropped[FILTER_COLUMN][0] == f"image_text_similarity {[round(a, 4), round(b, 4)]} not all in [{low}, inf]"
    assert keep_all.reasons["image_text_similarity"] == (1 if row2_passes else 2)
    above_all = apply_filters(scored, QualityFilter(max_image_text_similarity=min(a, b, c) - 1e-3))
    assert above_all.kept["text"] == [TEXTS[1]]  # no image: no score, kept as Data-Juicer keeps it


def test_unreadable_image_is_nan_and_named(clip_folder, photos, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    ds = datasets.Dataset.from_dict({"text": [f"{IMAGE} a cat {EOC}", f"{IMAGE} a dog {EOC}"], "images": [["broken.png"], [str(photos / "0.png")]],
                                     "media_root": [str(tmp_path)] * 2})
    scored = ds.map(ImageTextSimilarity(clip_folder), batched=True)
    stats = scored[STATS_COLUMN]
    assert math.isnan(stats[0]["image_text_similarity"][0]) and not math.isnan(stats[1]["image_text_similarity"][0])
    assert stats[0]["media_errors"][0].startswith(f"{tmp_path}/broken.png: cannot read the image: UnidentifiedImageError")
    assert stats[1]["media_errors"] == []
    result = apply_filters(scored, QualityFilter(min_image_text_similarity=-1.0, drop_unreadable_media=False))
    assert result.kept["text"] == [f"{IMAGE} a dog {EOC}"]
    assert result.dropped[FILTER_COLUMN][0] == "image_text_similarity [nan] not any in [-1.0, inf]"


def test_filter_without_scores_says_what_to_run():
    ds = datasets.Dataset.from_dict({"text": ["a"], "images": [[]]})
    with pytest.raises(ValueError, match=r"map hf_mmbuilder.ops.ImageTextSimilarity\(model=...\) over the dataset first"):
        ds.map(QualityFilter(min_image_text_similarity=0.1), batched=True)
    with pytest.raises(ValueError, match=r"reduce_mode must be one of \('avg', 'max', 'min'\)"):
        ImageTextSimilarity("model:x", reduce_mode="mean")
