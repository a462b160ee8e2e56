"""hf_mmbuilder.select and `hf-mmbuilder select`: columns in, subset out, bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, Features, List, Value

import hf_mmbuilder
from hf_mmbuilder.cli import main
from hf_mmbuilder.kernels.kcenter import kcenter_greedy


def embedded_dataset(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(8, d))[rng.integers(0, 8, n)] * 3 + rng.normal(size=(n, d))).astype(np.float32)
    ds = Dataset.from_dict({"id": list(range(n)), "embedding": x.tolist(), "entropy": rng.random(n).tolist()})
    return ds, x


@pytest.mark.parametrize("method", ["kcenter", "cluster", "active"])
def test_select_returns_k_distinct_rows_with_order_and_score(method):
    ds, x = embedded_dataset()
    kwargs = {"uncertainty": "entropy"} if method == "active" else {}
    chosen = hf_mmbuilder.select(ds, 25, method, order_column="rank", score_column="score", **kwargs)
    assert len(chosen) == 25 and len(set(chosen["id"])) == 25
    assert chosen["rank"][:] == list(range(25))
    assert chosen.column_names == ["id", "embedding", "entropy", "rank", "score"]
    np.testing.assert_allclose(np.array(chosen["embedding"][:], dtype=np.float32), x[chosen["id"][:]])


def test_kcenter_front_door_equals_kernel_and_array_input():
    ds, x = embedded_dataset()
    expected = kcenter_greedy(x, 30, metric="l2")[0].tolist()
    assert hf_mmbuilder.select(ds, 30, embeddings="embedding", metric="l2")["id"][:] == expected
    assert hf_mmbuilder.select(ds, 30, embeddings=x.astype(np.float64), metric="l2")["id"][:] == expected


def test_fixed_size_and_float16_columns_and_index_mappings():
    ds, x = embedded_dataset()
    fixed = ds.cast(Features({"id": Value("int64"), "embedding": List(Value("float16"), length=16), "entropy": Value("float64")}))
    chosen = hf_mmbuilder.select(fixed, 20, metric="cosine")
    assert chosen["id"][:] == kcenter_greedy(x.astype(np.float16), 20)[0].tolist()
    # After a shuffle the dataset has an indices mapping: selection must use the visible order.
    shuffled = ds.shuffle(seed=1)
    visible = np.array(shuffled["embedding"][:], dtype=np.float32)
    picked = hf_mmbuilder.select(shuffled, 15, metric="l2")
    assert picked["id"][:] == [shuffled["id"][int(i)] for i in kcenter_greedy(visible, 15, metric="l2")[0]]


def test_start_and_weights_columns():
    ds, x = embedded_dataset()
    ds = ds.add_column("labelled", [i < 5 for i in range(len(ds))])
    chosen = hf_mmbuilder.select(ds, 10, start="labelled", metric="l2")
    assert chosen["id"][:] == kcenter_greedy(x, 10, metric="l2", start=np.arange(5))[0].tolist()
    weighted = hf_mmbuilder.select(ds, 10, weights="entropy", metric="l2")
    weights = np.array(ds["entropy"][:], dtype=np.float32)
    assert weighted["id"][:] == kcenter_greedy(x, 10, metric="l2", weights=weights)[0].tolist()


def test_cluster_front_door_is_seeded():
    ds, _ = embedded_dataset()
    first = hf_mmbuilder.select(ds, 40, "cluster", n_clusters=8, quota="proportional", seed=5)["id"][:]
    again = hf_mmbuilder.select(ds, 40, "cluster", n_clusters=8, quota="proportional", seed=5)["id"][:]
    assert first == again


def test_cluster_front_door_balances_true_clusters_with_kcenter_seeding():
    rng = np.random.default_rng(8)
    sizes = [20, 300, 80]
    truth = np.repeat(np.arange(3), sizes)
    x = (np.eye(3, 16)[truth] * 40 + rng.normal(size=(len(truth), 16))).astype(np.float32)
    ds = Dataset.from_dict({"embedding": x.tolist(), "truth": truth.tolist()})
    chosen = hf_mmbuilder.select(ds, 60, "cluster", n_clusters=3, kmeans_init="kcenter", metric="l2", score_column="distance")
    assert np.bincount(chosen["truth"][:], minlength=3).tolist() == [20, 20, 20]
    # Round-robin: every prefix of the result is balanced.
    assert sorted(chosen["truth"][:3]) == [0, 1, 2]


@pytest.mark.parametrize("k", [0, 401, -3])
def test_bad_k(k):
    ds, _ = embedded_dataset()
    with pytest.raises(ValueError, match="k must be between 1 and 400"):
        hf_mmbuilder.select(ds, k)


def test_bad_embedding_columns_are_named():
    ds, _ = embedded_dataset(n=6, d=3)
    with pytest.raises(ValueError, match="embedding column 'clip' not in the dataset"):
        hf_mmbuilder.select(ds, 2, embeddings="clip")
    ragged = Dataset.from_dict({"embedding": [[1.0, 2.0], [1.0, 2.0], [3.0], [1.0, 0.0]]})
    with pytest.raises(ValueError, match="ragged: row 2 has 1 values, row 0 has 2"):
        hf_mmbuilder.select(ragged, 2)
    missing = Dataset.from_dict({"embedding": [[1.0, 2.0], None, [1.0, 0.0]]})
    with pytest.raises(ValueError, match="missing \\(null\\) in row 1"):
        hf_mmbuilder.select(missing, 2)
    text = Dataset.from_dict({"embedding": ["a", "b"]})
    with pytest.raises(ValueError, match="must hold lists of floats"):
        hf_mmbuilder.select(text, 1)
    with pytest.raises(ValueError, match="shape \\(6, d\\)"):
        hf_mmbuilder.select(ds, 2, embeddings=np.ones((5, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors_are_named(bad):
    values = np.ones((6, 3))
    values[4, 1] = bad
    ds = Dataset.from_dict({"embedding": values.tolist()})
    with pytest.raises(ValueError, match="row 4 has a NaN or infinite value"):
        hf_mmbuilder.select(ds, 2)


def test_float16_overflow_is_reported_as_non_finite():
    ds = Dataset.from_dict({"embedding": [[1.0, 2.0], [1e6, 1.0]]})
    with pytest.raises(ValueError, match="row 1 has a NaN or infinite value"):
        hf_mmbuilder.select(ds, 1, dtype="float16")


def test_zero_vectors_fail_with_cosine_and_work_with_l2():
    ds = Dataset.from_dict({"embedding": [[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]})
    with pytest.raises(ValueError, match="row 1 is a zero vector"):
        hf_mmbuilder.select(ds, 2)
    assert len(hf_mmbuilder.select(ds, 2, metric="l2")) == 2


def test_options_of_another_method_are_rejected():
    ds, _ = embedded_dataset(n=20)
    with pytest.raises(ValueError, match="does not use \\['weights'\\]"):
        hf_mmbuilder.select(ds, 5, "cluster", weights="entropy")
    with pytest.raises(ValueError, match="does not use \\['uncertainty'\\]"):
        hf_mmbuilder.select(ds, 5, "kcenter", uncertainty="entropy")
    with pytest.raises(ValueError, match="weights of row 3 is nan"):
        hf_mmbuilder.select(ds.map(lambda row, i: {"entropy": float("nan") if i == 3 else 1.0}, with_indices=True), 5, weights="entropy")


def test_cli_select_writes_the_subset(tmp_path, capsys):
    ds, x = embedded_dataset(n=120)
    source = tmp_path / "data.parquet"
    ds.to_parquet(str(source))
    target = tmp_path / "subset.parquet"
    assert main(["select", str(source), str(target), "-k", "12", "--metric", "l2", "--order-column", "rank"]) == 0
    subset = Dataset.from_parquet(str(target))
    assert subset["id"][:] == kcenter_greedy(x, 12, metric="l2")[0].tolist() and subset["rank"][:] == list(range(12))
    np.save(tmp_path / "emb.npy", x)
    jsonl = tmp_path / "subset.jsonl"
    assert main(["select", str(source), str(jsonl), "-k", "7", "--method", "active", "--embeddings-file", str(tmp_path / "emb.npy"), "--uncertainty", "entropy"]) == 0
    assert len(Dataset.from_json(str(jsonl))) == 7
    assert main(["select", str(source), str(target), "-k", "500"]) == 2
    assert "k must be between 1 and 120" in capsys.readouterr().err
