"""MinHash-LSH: Data-Juicer parity, the S-curve, shingling edge cases, banding and the stages."""

import hashlib
import json
import pickle
import struct

import datasets
import numpy as np
import pyarrow as pa
import pytest

from hf_mmbuilder.duplicates import (
    MinHashParams,
    MinHashSignature,
    candidate_edge_stage,
    component_stage,
    dedup,
    minhash_clusters,
    minhash_signatures,
    shingle_hashes,
    signature_stage,
)
from hf_mmbuilder.kernels import lsh, minhash

DJ_KEPT = [0, 1, 2, 3, 5, 6, 7, 9, 12]


@pytest.fixture
def demo(shared_data):
    rows = [json.loads(line) for line in open(shared_data / "dedup" / "demo-dataset-deduplication.jsonl")]
    return datasets.Dataset.from_list(rows).add_column("row", list(range(len(rows))))


def test_data_juicer_mode_keeps_exactly_data_juicers_rows(demo):
    assert list(dedup(demo, "minhash", compat="data_juicer")["row"]) == DJ_KEPT


def test_fast_mode_differs_from_data_juicer_only_by_short_texts(demo):
    # Rows 2 and 4 are one-word texts: Data-Juicer gives both the empty signature (so they
    # collide); fast mode hashes each as one shingle, so they stay apart.
    assert list(dedup(demo, "minhash")["row"]) == sorted(DJ_KEPT + [4])


def _dj_reference_signature(text, a, b, window=5):
    words = [w for w in text.lower().split(" ") if w]
    shingles = {" ".join(words[i : i + window]).encode() for i in range(len(words) - window)}
    hv = np.array([struct.unpack("<I", hashlib.sha1(s).digest()[:4])[0] for s in shingles], dtype=np.uint64)
    prime, max_hash = np.uint64((1 << 61) - 1), np.uint64((1 << 32) - 1)
    phv = np.bitwise_and((hv[:, None] * a[None, :] + b[None, :]) % prime, max_hash)
    return np.vstack([phv, np.full((1, a.size), max_hash, dtype=np.uint64)]).min(axis=0)


def test_data_juicer_signatures_are_bit_identical_to_its_numpy_formula():
    texts = ["The quick brown fox jumps over the lazy dog near the bank", "Ünïcødé  words   with  many spaces here and there", "short"]
    params = MinHashParams(compat="data_juicer")
    a, b = minhash.permutations(256, 42)
    ours = minhash_signatures(texts, params)
    for text, row in zip(texts, ours):
        np.testing.assert_array_equal(row.astype(np.uint64), _dj_reference_signature(text, a, b))


def test_permutations_and_band_rule_match_datasketch():
    datasketch = pytest.importorskip("datasketch", reason="datasketch (bench extra) not installed")
    from datasketch.lsh import _optimal_param

    a, b = minhash.permutations(256, 42)
    # datasketch 2 defaults to a new scheme; "legacy" is the one Data-Juicer copied.
    reference = datasketch.MinHash(num_perm=256, seed=42, scheme="legacy")
    np.testing.assert_array_equal(a, reference.permutations[0])
    np.testing.assert_array_equal(b, reference.permutations[1])
    reference.update_batch([s.encode() for s in {"a b c d e", "b c d e f"}])
    ours = minhash_signatures(["a b c d e f g"], MinHashParams(compat="data_juicer"))
    np.testing.assert_array_equal(ours[0], reference.hashvalues)
    for threshold, num_perm in [(0.7, 256), (0.8, 128), (0.5, 64), (0.9, 200)]:
        assert lsh.optimal_param(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert lsh.optimal_param(0.7, 256) == (25, 10)


def _pairs_with_jaccard(rng, pairs, size, shared):
    """``pairs`` set pairs of ``size`` random 64-bit hashes sharing ``shared`` of them (CSR)."""
    n_unique = size - shared
    common = rng.integers(0, 2**63, size=(pairs, shared), dtype=np.uint64)
    left = np.hstack([common, rng.integers(0, 2**63, size=(pairs, n_unique), dtype=np.uint64)])
    right = np.hstack([common, rng.integers(0, 2**63, size=(pairs, n_unique), dtype=np.uint64)])
    offsets = np.arange(0, pairs * size + 1, size, dtype=np.int64)
    return left.reshape(-1), right.reshape(-1), offsets, shared / (2 * size - shared)


def _detection_rate(signatures_left, signatures_right, bands, rows):
    keys_left = lsh.band_keys(signatures_left, bands, rows)
    keys_right = lsh.band_keys(signatures_right, bands, rows)
    return float((keys_left == keys_right).any(axis=0).mean())


def test_lsh_detection_follows_the_s_curve_within_one_percent():
    # 30k pairs per level: the binomial standard error is <= 0.0029, so 1% is >= 3.4 sigma.
    rng = np.random.default_rng(7)
    bands, rows = lsh.optimal_param(0.7, 256)
    a, b = minhash.permutations(256, 42)
    size, pairs = 60, 30_000
    for shared in (40, 46, 49, 52, 56):
        left, right, offsets, jaccard = _pairs_with_jaccard(rng, pairs, size, shared)
        measured = _detection_rate(
            minhash.minhash_signatures(left, offsets, a, b), minhash.minhash_signatures(right, offsets, a, b), bands, rows
        )
        theory = 1 - (1 - jaccard**rows) ** bands
        assert abs(measured - theory) <= 0.01, (jaccard, measured, theory)


def _text_pairs(pairs, words, common):
    """Pairs of texts of distinct words sharing their first ``common`` words: the 5-word shingle
    sets then share exactly ``common - 4`` of ``words - 4`` shingles each."""
    left, right = [], []
    for pair in range(pairs):
        shared = " ".join(f"{pair}c{i}" for i in range(common))
        left.append(shared + " " + " ".join(f"{pair}a{i}" for i in range(words - common)))
        right.append(shared + " " + " ".join(f"{pair}b{i}" for i in range(words - common)))
    both = words - 4
    return left, right, (common - 4) / (2 * both - (common - 4))


def test_text_pipeline_detection_follows_the_s_curve_within_one_percent():
    # The whole fast text path (tokenising, shingle hashes, affine32 permutations, band keys) on
    # generated near-duplicate texts whose Jaccard similarity is known exactly.
    bands, rows = lsh.optimal_param(0.7, 256)
    for common in (48, 50, 54):
        left, right, jaccard = _text_pairs(25_000, 60, common)
        measured = _detection_rate(minhash_signatures(left), minhash_signatures(right), bands, rows)
        theory = 1 - (1 - jaccard**rows) ** bands
        assert abs(measured - theory) <= 0.01, (jaccard, measured, theory)


def test_oph_sketch_follows_the_s_curve_on_long_documents():
    rng = np.random.default_rng(11)
    bands, rows = 25, 10
    size, pairs = 1000, 8000
    for shared in (780, 830, 880):
        left, right, offsets, jaccard = _pairs_with_jaccard(rng, pairs, size, shared)
        measured = _detection_rate(minhash.oph_signatures(left, offsets), minhash.oph_signatures(right, offsets), bands, rows)
        theory = 1 - (1 - jaccard**rows) ** bands
        assert abs(measured - theory) <= 0.02, (jaccard, measured, theory)


def test_oph_estimates_jaccard_without_bias_on_long_documents():
    rng = np.random.default_rng(3)
    left, right, offsets, jaccard = _pairs_with_jaccard(rng, 500, 1000, 600)
    agreement = (minhash.oph_signatures(left, offsets) == minhash.oph_signatures(right, offsets)).mean()
    assert abs(agreement - jaccard) < 0.01


def test_short_empty_and_exactly_window_sized_texts():
    texts = ["one two three", "one two three", "four five six", "", "   ", "a b c d e", "a b c d e f"]
    hashes, offsets = shingle_hashes(texts)
    assert np.diff(offsets).tolist() == [1, 1, 1, 0, 0, 1, 2]
    signatures = minhash_signatures(texts)
    assert (signatures[3] == 0xFFFFFFFF).all() and (signatures[0] == signatures[1]).all()
    assert not (signatures[0] == signatures[2]).all()
    ds = datasets.Dataset.from_dict({"text": texts})
    assert minhash_clusters(ds).tolist() == [0, 0, 2, 3, 3, 5, 6]
    # Data-Juicer's range gives every text of <= window_size words the empty signature.
    assert minhash_clusters(ds, MinHashParams(compat="data_juicer")).tolist() == [0, 0, 0, 0, 0, 0, 6]


def test_words_split_on_spaces_only_and_lowercase_is_unicode_aware():
    texts = ["ÉCOLE Straße one two three four", "école straße one two three four", "école\tstraße one two three four"]
    signatures = minhash_signatures(texts)
    assert (signatures[0] == signatures[1]).all()
    assert not (signatures[1] == signatures[2]).all()
    # ASCII batches are lowercased while hashing, batches with other characters by Arrow first:
    # the same text must get the same signature either way.
    ascii_alone = minhash_signatures(["Hello WORLD one Two three four"])
    in_mixed_batch = minhash_signatures(["hello world one two three four", "Ünïcode row"])
    np.testing.assert_array_equal(ascii_alone[0], in_mixed_batch[0])


def test_character_shingles_count_code_points():
    hashes, offsets = shingle_hashes(["héllo", "日本語テキスト", "ab"], MinHashParams(tokenization="character", window_size=3))
    assert np.diff(offsets).tolist() == [3, 5, 1]
    near = ["数据去重是一个重要的步骤，我们需要认真对待它。", "数据去重是一个重要的步骤，我们需要认真对待它！", "完全不同的一句话，没有任何关系。"]
    ds = datasets.Dataset.from_dict({"text": near})
    assert minhash_clusters(ds, MinHashParams(tokenization="character", window_size=2, jaccard_threshold=0.5)).tolist() == [0, 0, 2]


def test_band_edges_group_exactly_by_full_64_bit_keys():
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 300, size=20_000).astype(np.uint64)
    # Keys differing only in their low bits share a sort prefix and must still be told apart.
    keys = (keys << np.uint64(40)) | (keys & np.uint64(3))
    left, right = lsh.band_edges(keys)
    labels = component_stage(keys.size, pa.table({"left": left, "right": right})).column("cluster_id").to_numpy()
    first = {}
    expected = [first.setdefault(int(k), i) for i, k in enumerate(keys)]
    assert labels.tolist() == expected
    assert left.size == keys.size - len(first)


def test_stages_over_shards_equal_the_one_shot_result():
    rng = np.random.default_rng(2)
    words = np.array([f"w{i}" for i in range(300)])
    base = [" ".join(rng.choice(words, 60)) for _ in range(200)]
    texts = base + [t.replace(t.split()[3], "changed", 1) for t in base[:80]]
    one_shot = minhash_clusters(datasets.Dataset.from_dict({"text": texts}))
    params = MinHashParams()
    shards = [signature_stage(texts[i : i + 97], params, row_offset=i) for i in range(0, len(texts), 97)]
    table = pa.concat_tables(shards)
    edges = [candidate_edge_stage(table, bands=range(0, 12)), candidate_edge_stage(table, bands=range(12, 25))]
    labels = component_stage(len(texts), edges).column("cluster_id").to_numpy()
    np.testing.assert_array_equal(labels, one_shot)
    assert (one_shot[200:] == np.arange(80)).mean() > 0.9


def test_null_text_raises_naming_the_row():
    ds = datasets.Dataset.from_dict({"text": ["a b c d e f", "x y z", None]})
    with pytest.raises(ValueError, match="row 2: 'text' is null"):
        minhash_clusters(ds, batch_size=2)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="tokenization"):
        MinHashParams(tokenization="punctuation")
    with pytest.raises(ValueError, match="exceeds num_permutations"):
        MinHashParams(num_bands=30, num_rows_per_band=10)
    with pytest.raises(ValueError, match="fast mode only"):
        MinHashParams(compat="data_juicer", sketch="oph")


def test_signature_map_function_pickles_and_fingerprints_stably(tmp_path):
    ds = datasets.Dataset.from_dict({"text": ["a b c d e f", "a b c d e f", "z"]}).flatten_indices(cache_file_name=str(tmp_path / "base.arrow"))
    function = MinHashSignature(output="band_keys")
    restored = pickle.loads(pickle.dumps(function))
    first = ds.map(function, batched=True)
    second = ds.map(restored, batched=True)
    assert first._fingerprint == second._fingerprint and first.cache_files == second.cache_files
    keys = np.array(first["band_keys"][:], dtype=np.uint64)
    assert keys.shape == (3, 25) and (keys[0] == keys[1]).all() and not (keys[0] == keys[2]).any()
    arrow_batch = MinHashSignature(num_permutations=32)(pa.table({"text": ["a b c d e f"]}))
    assert len(arrow_batch["minhash"][0]) == 32
