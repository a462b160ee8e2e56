"""MMC4 similarity realignment: kernel vs a per-document numpy/scipy reference, real and generated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset
from scipy.optimize import linear_sum_assignment

import hf_mmbuilder

# The public door first: importing the submodule before it would bind the package attribute
# ``hf_mmbuilder.realign`` to the module for every later test in the session.
realign = hf_mmbuilder.realign
from hf_mmbuilder.realignment import OUTPUT_COLUMNS, realign_batch  # noqa: E402

MMC4_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "formats" / "mmc4"
METHODS = ("repoint", "argmax", "assignment")


def read_mmc4(name: str) -> list[dict]:
    path = MMC4_DIR / name
    if not path.exists():
        pytest.skip(f"real MMC4 sample {path} is absent (shared data lives beside the checkout)")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def reference(matrix, matched, image_index, sentence_index, method):
    """The obvious per-document implementation: numpy slicing, scipy for the assignment."""
    matrix = np.asarray(matrix, dtype=np.float64).reshape(len(matched), -1)
    sub = np.full((len(image_index), len(sentence_index)), np.nan)
    for position, original in enumerate(image_index):
        if original >= 0:
            sub[position] = matrix[original, sentence_index]
    chosen = np.full(len(image_index), -1)
    aligned = [position for position, original in enumerate(image_index) if original >= 0]
    if sentence_index:
        for position in aligned:
            best = int(np.argmax(sub[position]))
            if method == "repoint" and matched[image_index[position]] in sentence_index:
                best = sentence_index.index(matched[image_index[position]])
            chosen[position] = best
        if method == "assignment" and aligned:
            rows, cols = linear_sum_assignment(sub[aligned], maximize=True)
            # MMC4: images left over when they outnumber the sentences keep their argmax.
            for row, col in zip(rows, cols):
                chosen[aligned[row]] = col
    sim = np.array([sub[p, c] if c >= 0 else np.nan for p, c in enumerate(chosen)])
    unaligned = [position for position, original in enumerate(image_index) if original < 0]
    return sub, chosen, sim, unaligned


def random_edit(rng, n_images, n_sentences, add_images=True):
    """Drop and reorder images and sentences, sometimes add a new image (-1) or duplicate a sentence."""
    images = list(rng.permutation(n_images)[: rng.integers(0, n_images + 1)])
    if add_images and rng.random() < 0.3:
        images.insert(int(rng.integers(0, len(images) + 1)), -1)
    sentences = list(rng.permutation(n_sentences)[: rng.integers(0, n_sentences + 1)])
    if sentences and rng.random() < 0.1:
        sentences.append(sentences[0])
    return [int(i) for i in images], [int(s) for s in sentences]


def check_against_reference(docs, edits, method, out):
    for row, (doc, (images, sentences)) in enumerate(zip(docs, edits)):
        sub, chosen, sim, unaligned = reference(doc["similarity_matrix"], doc["matched_text_index"], images, sentences, method)
        got_matrix = np.array(out["realigned_similarity_matrix"][row], dtype=np.float64).reshape(len(images), len(sentences))
        np.testing.assert_array_equal(got_matrix, sub, err_msg=f"row {row}")
        assert out["realigned_matched_text_index"][row] == chosen.tolist(), f"row {row} ({method})"
        np.testing.assert_array_equal(np.array(out["realigned_matched_sim"][row], dtype=np.float64), sim, err_msg=f"row {row}")
        assert out["unaligned_images"][row] == unaligned


def batch_of(docs, edits, value_type=pa.float64()):
    return pa.table(
        {
            "similarity_matrix": pa.array([d["similarity_matrix"] for d in docs], type=pa.list_(pa.list_(value_type))),
            "matched_text_index": pa.array([d["matched_text_index"] for d in docs], type=pa.list_(pa.int64())),
            "image_index": pa.array([e[0] for e in edits], type=pa.list_(pa.int64())),
            "sentence_index": pa.array([e[1] for e in edits], type=pa.list_(pa.int64())),
        }
    )


def as_row(record):
    return {
        "similarity_matrix": record["similarity_matrix"],
        "matched_text_index": [info["matched_text_index"] for info in record["image_info"]],
    }


@pytest.mark.parametrize("method", METHODS)
def test_real_mmc4_documents_under_random_drops_and_reorders(method):
    docs = [as_row(r) for r in read_mmc4("docs_shard_151_v3.jsonl")]
    assert len(docs) == 107
    rng = np.random.default_rng(151)
    for trial in range(5):
        edits = [random_edit(rng, len(d["matched_text_index"]), len(d["similarity_matrix"][0])) for d in docs]
        table = realign_batch(batch_of(docs, edits), method=method)
        check_against_reference(docs, edits, method, table.to_pydict())


def test_identity_edit_reproduces_the_original_matrix_and_repoints_to_original_match():
    docs = [as_row(r) for r in read_mmc4("docs_shard_151_v3.jsonl")]
    edits = [(list(range(len(d["matched_text_index"]))), list(range(len(d["similarity_matrix"][0])))) for d in docs]
    out = realign_batch(batch_of(docs, edits), method="repoint").to_pydict()
    for row, doc in enumerate(docs):
        assert out["realigned_similarity_matrix"][row] == doc["similarity_matrix"]
        assert out["realigned_matched_text_index"][row] == doc["matched_text_index"]


def test_shared_sentence_document_keeps_repeated_matches():
    record = read_mmc4("mmc4_core_ff_v3_shared_sentence.jsonl")[0]
    doc = as_row(record)
    assert doc["matched_text_index"] == [1, 3, 3, 4, 1]
    # Reverse the sentences and drop sentence 4: images 0, 1, 2, 4 keep their (shared) sentence.
    edit = ([0, 1, 2, 3, 4], [3, 2, 1, 0])
    out = realign_batch(batch_of([doc], [edit]), method="repoint").to_pydict()
    chosen = out["realigned_matched_text_index"][0]
    assert chosen[0] == chosen[4] == 2 and chosen[1] == chosen[2] == 0
    sims = [info["matched_sim"] for info in record["image_info"]]
    assert out["realigned_matched_sim"][0][0] == sims[0] and out["realigned_matched_sim"][0][2] == sims[2]
    for method in METHODS:
        check_against_reference([doc], [edit], method, realign_batch(batch_of([doc], [edit]), method=method).to_pydict())


def test_assignment_repeats_indexes_only_when_images_outnumber_sentences():
    doc = as_row(read_mmc4("mmc4_core_ff_v3_shared_sentence.jsonl")[0])
    few = realign_batch(batch_of([doc], [([0, 1, 2, 3, 4], [1, 3])]), method="assignment").to_pydict()
    assert sorted(set(few["realigned_matched_text_index"][0])) == [0, 1]
    many = realign_batch(batch_of([doc], [([0, 1], [0, 1, 2, 3, 4])]), method="assignment").to_pydict()
    assert len(set(many["realigned_matched_text_index"][0])) == 2


def generated_docs(n_docs, seed):
    rng = np.random.default_rng(seed)
    docs, edits = [], []
    for _ in range(n_docs):
        n_images, n_sentences = int(rng.integers(1, 12)), int(rng.integers(1, 40))
        matrix = rng.random((n_images, n_sentences))
        matched = rng.integers(0, n_sentences, n_images)
        docs.append({"similarity_matrix": matrix.tolist(), "matched_text_index": matched.tolist()})
        edits.append(random_edit(rng, n_images, n_sentences))
    return docs, edits


@pytest.mark.parametrize("method", METHODS)
def test_generated_documents_match_reference(method):
    docs, edits = generated_docs(3000, seed=7)
    check_against_reference(docs, edits, method, realign_batch(batch_of(docs, edits), method=method).to_pydict())


@pytest.mark.parametrize("method", METHODS)
def test_tied_similarities_follow_the_reference(method):
    """Similarities of only three levels tie everywhere: argmax and assignment must break ties as numpy and scipy do."""
    rng = np.random.default_rng(21)
    docs, edits = [], []
    for _ in range(3000):
        n_images, n_sentences = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        matrix = rng.integers(0, 3, (n_images, n_sentences)) / 2
        docs.append({"similarity_matrix": matrix.tolist(), "matched_text_index": rng.integers(0, n_sentences, n_images).tolist()})
        edits.append(random_edit(rng, n_images, n_sentences))
    check_against_reference(docs, edits, method, realign_batch(batch_of(docs, edits), method=method).to_pydict())


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_100k_generated_documents_match_reference(method):
    docs, edits = generated_docs(100_000, seed=100)
    check_against_reference(docs, edits, method, realign_batch(batch_of(docs, edits), method=method).to_pydict())


def test_float32_matrices_keep_their_type():
    docs, edits = generated_docs(50, seed=3)
    out = realign_batch(batch_of(docs, edits, pa.float32()), method="argmax")
    assert out.schema.field("realigned_similarity_matrix").type == pa.list_(pa.list_(pa.float32()))
    for row, (images, sentences) in enumerate(edits):
        matrix = np.asarray(docs[row]["similarity_matrix"], dtype=np.float32)
        expected = [[float(matrix[i, s]) for s in sentences] if i >= 0 else [np.nan] * len(sentences) for i in images]
        np.testing.assert_array_equal(np.array(out["realigned_similarity_matrix"][row].as_py(), dtype=np.float64).reshape(len(images), len(sentences)), np.array(expected).reshape(len(images), len(sentences)))


def test_sliced_chunked_arrow_input_is_read_at_its_offsets():
    docs, edits = generated_docs(40, seed=5)
    table = pa.concat_tables([batch_of(docs[:25], edits[:25]), batch_of(docs[25:], edits[25:])]).slice(10, 25)
    out = realign_batch(table, method="repoint").to_pydict()
    check_against_reference(docs[10:35], edits[10:35], "repoint", out)


def test_realign_dataset_front_door_and_python_batches_agree():
    docs, edits = generated_docs(120, seed=11)
    ds = Dataset(batch_of(docs, edits))
    via_front_door = realign(ds, "assignment", batch_size=32)
    via_python_map = ds.map(realign_batch, batched=True, batch_size=17, fn_kwargs={"method": "assignment"})
    assert via_front_door.column_names == ds.column_names + list(OUTPUT_COLUMNS)
    check_against_reference(docs, edits, "assignment", via_front_door.to_dict())
    check_against_reference(docs, edits, "assignment", via_python_map.to_dict())


@pytest.mark.parametrize(
    "matrix, matched, images, sentences, message",
    [
        ([[0.1, 0.2], [0.3]], [0, 1], [0], [0], "row 1 has 1 values but row 0 has 2"),
        ([[0.1, 0.2], [0.3, 0.4]], [0], [0], [0], "2 rows but matched_text_index has 1"),
        ([[0.1, 0.2]], [5], [0], [0], "matched_text_index[0] = 5"),
        ([[0.1, 0.2]], [0], [0, 3], [0], "image_index[1] = 3"),
        ([[0.1, 0.2]], [0], [0], [1, 2], "sentence_index[1] = 2"),
    ],
)
def test_bad_documents_are_named(matrix, matched, images, sentences, message):
    good = {"similarity_matrix": [[0.5]], "matched_text_index": [0]}
    table = batch_of([good, good, {"similarity_matrix": matrix, "matched_text_index": matched}], [([0], [0]), ([0], [0]), (images, sentences)])
    with pytest.raises(ValueError, match=r"row 2: .*" + message.replace("[", r"\[").replace("]", r"\]")):
        realign_batch(table)
    with pytest.raises(ValueError, match=r"row 12: "):
        realign_batch(table, [10, 11, 12])


def test_missing_columns_nulls_and_non_finite_assignment_are_errors():
    with pytest.raises(ValueError, match="missing \\['sentence_index'\\]"):
        realign_batch({"similarity_matrix": [], "matched_text_index": [], "image_index": []})
    table = batch_of([{"similarity_matrix": [[0.5]], "matched_text_index": [0]}] * 2, [([0], [0])] * 2)
    nulls = table.set_column(3, "sentence_index", pa.array([[0], None], type=pa.list_(pa.int64())))
    with pytest.raises(ValueError, match="sentence_index is missing \\(null\\) in row 1"):
        realign_batch(nulls)
    nan_doc = batch_of([{"similarity_matrix": [[0.5, float("nan")]], "matched_text_index": [0]}], [([0], [0, 1])])
    with pytest.raises(ValueError, match="row 0: .*not finite"):
        realign_batch(nan_doc, method="assignment")
    with pytest.raises(ValueError, match="method must be one of"):
        realign_batch(table, method="hungarian")


def test_null_inside_a_matrix_and_wrong_types_are_named():
    good = {"similarity_matrix": [[0.5]], "matched_text_index": [0]}
    table = batch_of([good, good], [([0], [0])] * 2)
    holed = table.set_column(0, "similarity_matrix", pa.array([[[0.5]], [[None]]], type=pa.list_(pa.list_(pa.float64()))))
    with pytest.raises(ValueError, match="row 1: similarity_matrix has a null value"):
        realign_batch(holed)
    null_row = table.set_column(0, "similarity_matrix", pa.array([[[0.5]], [None]], type=pa.list_(pa.list_(pa.float64()))))
    with pytest.raises(ValueError, match="row 1: similarity_matrix row 0 is null"):
        realign_batch(null_row)
    as_text = table.set_column(2, "image_index", pa.array([["0"], ["0"]]))
    with pytest.raises(ValueError, match="image_index must hold integers"):
        realign_batch(as_text)
