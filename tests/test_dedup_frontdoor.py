"""The ``hf_mmbuilder.dedup`` front door (all methods), its report, and the ``hf-mmbuilder dedup`` CLI."""

import importlib.util
import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import hf_mmbuilder
from hf_mmbuilder.cli import main
from hf_mmbuilder.duplicates import DedupReport

TEXTS = [
    "the cat sat on the mat and looked out of the window at the birds",
    "a completely different sentence about compilers and their optimisation passes",
    "the cat sat on the mat and looked out of the window at the birds",
    "The cat sat on the mat and looked out of the window at the birds!",
    "another unrelated line of text that talks about trains and their timetables today",
]

needs_media = pytest.mark.skipif(
    importlib.util.find_spec("hf_mmbuilder.duplicates.images") is None, reason="hf_mmbuilder.duplicates.images (image/semantic dedup) not available"
)


@pytest.fixture
def ds():
    return datasets.Dataset.from_dict({"text": TEXTS, "quality": [0.1, 0.9, 0.5, 0.7, 0.3]})


def test_public_name_dispatches_to_the_front_door(ds):
    assert hf_mmbuilder.dedup is hf_mmbuilder.dedup  # lazily bound once
    assert len(hf_mmbuilder.dedup(ds, "exact")) == 4
    # MinHash lowercases by default; the trailing "!" changes one word, so row 3 is a near duplicate.
    assert list(hf_mmbuilder.dedup(ds, "minhash", jaccard_threshold=0.5)["text"]) == [TEXTS[0], TEXTS[1], TEXTS[4]]


def test_return_clusters_adds_int64_cluster_ids_of_smallest_rows(ds):
    out = hf_mmbuilder.dedup(ds, "minhash", jaccard_threshold=0.5, return_clusters=True)
    assert len(out) == len(ds)
    assert out.features["cluster_id"] == datasets.Value("int64")
    assert list(out["cluster_id"]) == [0, 1, 0, 0, 4]
    with pytest.raises(ValueError, match="already has a 'cluster_id'"):
        hf_mmbuilder.dedup(out, "exact", return_clusters=True)


def test_keep_max_keeps_the_best_row_of_each_cluster(ds):
    out = hf_mmbuilder.dedup(ds, "minhash", jaccard_threshold=0.5, keep_max="quality")
    assert sorted(out["quality"]) == [0.3, 0.7, 0.9]
    with pytest.raises(ValueError, match="no column 'missing'"):
        hf_mmbuilder.dedup(ds, "exact", keep_max="missing")


def test_report_counts_sizes_examples_and_renders(ds):
    out, report = hf_mmbuilder.dedup(ds, "minhash", jaccard_threshold=0.5, return_report=True)
    assert isinstance(report, DedupReport)
    assert (report.num_rows, report.num_kept, report.num_removed) == (5, 3, 2)
    assert report.num_duplicate_clusters == 1 and report.size_histogram == {3: 1}
    assert report.examples[0]["kept"] == [0] and report.examples[0]["removed"] == [2, 3]
    assert report.params["num_bands"] * report.params["num_rows_per_band"] <= 256
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["size_histogram"] == {"3": 1}
    markdown = report.to_markdown()
    assert "kept: 3; removed: 2" in markdown and "| 3 | 1 |" in markdown


def test_zero_rows_returns_an_empty_dataset_and_report():
    empty = datasets.Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")}))
    for method in ("exact", "minhash"):
        out, report = hf_mmbuilder.dedup(empty, method, return_report=True)
        assert len(out) == 0 and report.num_rows == 0 and report.largest_cluster == 0


def test_user_errors_are_value_errors(ds):
    with pytest.raises(ValueError, match="unknown dedup method"):
        hf_mmbuilder.dedup(ds, "simhash")
    with pytest.raises(ValueError, match="unknown parameter"):
        hf_mmbuilder.dedup(ds, "minhash", threshold=0.5)
    with pytest.raises(ValueError, match="row 1: 'text' is null"):
        hf_mmbuilder.dedup(datasets.Dataset.from_dict({"text": ["a", None]}), "minhash")
    with pytest.raises(ValueError, match="DatasetDict"):
        hf_mmbuilder.dedup(datasets.DatasetDict({"train": ds}), "exact")


def test_result_of_a_selected_dataset_follows_its_indices(ds):
    shuffled = ds.select([4, 3, 2, 1, 0])
    assert list(hf_mmbuilder.dedup(shuffled, "exact", return_clusters=True)["cluster_id"]) == [0, 1, 2, 3, 2]


@needs_media
def test_phash_method_clusters_identical_images(tmp_path):
    top = np.zeros((32, 32, 3), dtype=np.uint8)
    top[:16] = 200
    left = np.zeros((32, 32, 3), dtype=np.uint8)
    left[:, :16] = 200
    for name, pixels in [("a.png", top), ("b.png", top.copy()), ("c.png", left)]:
        Image.fromarray(pixels).save(tmp_path / name)
    images = datasets.Dataset.from_dict(
        {"text": ["<__dj__image>"] * 3, "images": [["a.png"], ["b.png"], ["c.png"]], "media_root": [str(tmp_path)] * 3}
    )
    out = hf_mmbuilder.dedup(images, "phash", radius=0, return_clusters=True)
    assert list(out["cluster_id"]) == [0, 0, 2]


@needs_media
def test_semantic_method_uses_smallest_row_cluster_ids_and_its_keep_rule():
    vectors = datasets.Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0], [0.9999, 0.001], [0.0, 0.999]]})
    clusters = hf_mmbuilder.dedup(vectors, "semantic", eps=0.01, n_clusters=1, return_clusters=True)
    assert list(clusters["cluster_id"]) == [0, 1, 0, 1]
    assert len(hf_mmbuilder.dedup(vectors, "semantic", eps=0.01, n_clusters=1)) == 2


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def test_cli_writes_dj_jsonl_and_a_json_report(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    _write_jsonl(source, [{"text": t, "images": []} for t in TEXTS + ["données non-ASCII ünïcödé"]])
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    code = main(["dedup", "--method", "minhash", "--threshold", "0.5", "--report", str(report), str(source), str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == [TEXTS[0], TEXTS[1], TEXTS[4], "données non-ASCII ünïcödé"]
    assert "ünïcödé" in out.read_text(encoding="utf-8")
    assert json.loads(report.read_text())["num_removed"] == 2
    assert "2 duplicates" in capsys.readouterr().out


def test_cli_writes_parquet_with_cluster_ids(tmp_path):
    source = tmp_path / "in.jsonl"
    _write_jsonl(source, [{"text": t} for t in TEXTS])
    out = tmp_path / "clusters.parquet"
    assert main(["dedup", "--method", "exact", "--clusters", "--lowercase", "--drop-non-alnum", str(source), str(out)]) == 0
    assert pq.read_table(out).column("cluster_id").to_pylist() == [0, 1, 0, 0, 4]


def test_cli_user_errors_exit_2(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    _write_jsonl(source, [{"text": "x"}])
    assert main(["dedup", str(source), str(tmp_path / "out.csv")]) == 2
    assert main(["dedup", "--method", "exact", "--threshold", "0.5", str(source), str(tmp_path / "o.jsonl")]) == 2
    assert "belong to --method minhash" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
