"""Exact dedup: 128-bit digests on Arrow buffers, text normalisation, media bytes, DJ parity."""

import json
import re
import string
import unicodedata

import datasets
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from hf_mmbuilder.duplicates import ExactParams, TextDigest, dedup, drop_repeated_media, exact_clusters, normalize_texts, text_digests
from hf_mmbuilder.kernels.exact_hash import digests128, first_occurrence_labels

# MurmurHash3 x64-128 reference values (seed 0), as printed by the reference C implementation.
MURMUR3_VECTORS = {
    b"": (0x0, 0x0),
    b"hello": (0xCBD8A7B341BD9B02, 0x5B1E906A48AE1D19),
    b"0123456789abcdefg": (0x8E32612DAA45F9DE, 0x0800F4C206C372EE),
    "héllo wörld".encode(): (0x6B757453F10A333B, 0x4432D052F7788963),
}


def test_digests_match_murmur3_reference_vectors():
    strings = list(MURMUR3_VECTORS)
    data = np.frombuffer(b"".join(strings), dtype=np.uint8)
    offsets = np.cumsum([0] + [len(s) for s in strings])
    digests = digests128(data, offsets)
    assert [tuple(int(v) for v in row) for row in digests] == list(MURMUR3_VECTORS.values())


def test_digests_read_sliced_arrow_arrays_at_their_offset():
    array = pa.array(["x", "same text", "other", "same text"], pa.large_string())
    whole = text_digests(array)
    sliced = text_digests(array.slice(1, 3))
    np.testing.assert_array_equal(whole[1:], sliced)
    assert (sliced[0] == sliced[2]).all() and not (sliced[0] == sliced[1]).all()


def test_normalisation_options_apply_in_documented_order():
    texts = ["  Hello, <__dj__image> World!<|__dj__eoc|> ", "hello world"]
    assert normalize_texts(texts).to_pylist()[0] == "Hello, <__dj__image> World!<|__dj__eoc|>"
    everything = ExactParams(lowercase=True, ignore_non_character=True, drop_special_tokens=True)
    assert normalize_texts(texts, everything).to_pylist() == ["helloworld", "helloworld"]
    # Without dropping the tokens first, the token letters would survive the non-character filter.
    assert normalize_texts(texts, ExactParams(lowercase=True, ignore_non_character=True)).to_pylist()[0] == "hellodjimageworlddjeoc"
    d = text_digests(texts, everything)
    assert (d[0] == d[1]).all()
    assert not (text_digests(texts)[0] == text_digests(texts)[1]).all()


def test_unicode_letters_survive_drop_non_alnum():
    with pytest.warns(FutureWarning, match=r"ExactParams\(drop_non_alnum=\.\.\.\) is deprecated; use ignore_non_character="):
        params = ExactParams(drop_non_alnum=True)
    assert normalize_texts(["Ünïcødé 数据 123 !"], params).to_pylist() == ["Ünïcødé数据123"]


def test_deprecated_drop_non_alnum_keeps_its_old_rule():
    texts = ["  Hello, <__dj__image> World!<|__dj__eoc|> 42 \u2192 x", "hello world"]
    with pytest.warns(FutureWarning, match="drop_non_alnum"):
        old = ExactParams(lowercase=True, drop_non_alnum=True)
    # Letters and digits of every script stay; everything else goes (the arrow too).
    assert normalize_texts(texts, old).to_pylist() == ["hellodjimageworlddjeoc42x", "helloworld"]
    with pytest.warns(FutureWarning, match="drop_non_alnum"):
        report = dedup(datasets.Dataset.from_dict({"text": texts}), "exact", drop_non_alnum=True, return_report=True)[1]
    assert report.params["drop_non_alnum"] is True and report.params["ignore_non_character"] is False


def test_ignore_non_character_drops_what_data_juicer_drops():
    # document_deduplicator: `\s+|\d+|[string.punctuation]` with Python's Unicode classes.
    data_juicer = re.compile(f"\\s+|\\d+|[{re.escape(string.punctuation)}]")
    # Every code point Python's Unicode database knows (RE2's is newer: it also knows a few newer digits).
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn"]
    ours = normalize_texts(chars, ExactParams(ignore_non_character=True, strip=False)).to_pylist()
    assert ours == [data_juicer.sub("", c) for c in chars]
    text = "Ünïcødé 数据 123 ! x\u2192y ٣"
    assert normalize_texts([text], ExactParams(ignore_non_character=True)).to_pylist() == [data_juicer.sub("", text)] == ["Ünïcødé数据x\u2192y"]


def test_first_occurrence_labels_match_a_dictionary():
    rng = np.random.default_rng(1)
    digests = rng.integers(0, 50, size=(5000, 2)).astype(np.uint64)
    first = {}
    expected = [first.setdefault(tuple(row), i) for i, row in enumerate(digests.tolist())]
    assert first_occurrence_labels(digests).tolist() == expected


def test_exact_dedup_keeps_13_rows_of_the_data_juicer_demo(shared_data):
    ds = datasets.Dataset.from_list([json.loads(line) for line in open(shared_data / "dedup" / "demo-dataset-deduplication.jsonl")])
    out = dedup(ds, "exact")
    assert len(out) == 13
    assert out["text"][:] == list(dict.fromkeys(ds["text"][:]))


def test_null_text_raises_naming_the_row():
    ds = datasets.Dataset.from_dict({"text": ["a", None, "b"]})
    with pytest.raises(ValueError, match="row 1: 'text' is null"):
        exact_clusters(ds)


def test_zero_rows_and_empty_texts():
    empty = datasets.Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")}))
    assert len(dedup(empty, "exact")) == 0
    ds = datasets.Dataset.from_dict({"text": ["", "  ", "x", ""]})
    assert exact_clusters(ds).tolist() == [0, 0, 2, 0]


def _image(path, color, size=(24, 16)):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def media_dataset(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    _image(root / "red.png", (255, 0, 0))
    _image(root / "red_copy.png", (255, 0, 0))
    _image(root / "blue.png", (0, 0, 255))
    rows = {
        "text": ["<__dj__image> a", "<__dj__image> b", "<__dj__image> c", "<__dj__image><__dj__image> d", "<__dj__image><__dj__image> e"],
        "images": [["red.png"], ["red_copy.png"], ["blue.png"], ["red.png", "blue.png"], ["blue.png", "red_copy.png"]],
        "media_root": [str(root)] * 5,
    }
    return datasets.Dataset.from_dict(rows), root


def test_exact_image_dedup_compares_bytes_in_order(media_dataset):
    ds, _ = media_dataset
    # red.png and red_copy.png have identical bytes; [red, blue] and [blue, red] are different rows.
    assert exact_clusters(ds, ExactParams(on=("images",))).tolist() == [0, 0, 2, 3, 4]
    assert exact_clusters(ds, ExactParams(on=("text", "images"))).tolist() == [0, 1, 2, 3, 4]
    assert len(dedup(ds, "exact", column="images")) == 4


def test_exact_image_dedup_finds_the_byte_identical_copies_in_the_shared_media(shared_data):
    # img4..img7 are byte-identical copies of img1, img2, img3, img3 (SOURCES.md).
    names = ["img1.png", "img2.jpg", "img3.jpg", "img8.jpg", "img4.png", "img5.jpg", "img6.jpg", "img7.jpg"]
    ds = datasets.Dataset.from_dict({
        "text": ["<__dj__image>"] * len(names),
        "images": [[name] for name in names],
        "media_root": [str(shared_data / "media")] * len(names),
    })
    assert exact_clusters(ds, ExactParams(on=("images",))).tolist() == [0, 1, 2, 3, 0, 1, 2, 2]
    assert dedup(ds, "exact", column="images")["images"] == [[name] for name in names[:4]]


def test_exact_image_dedup_names_row_and_path_of_missing_file(media_dataset):
    ds, _ = media_dataset
    broken = ds.add_item({"text": "<__dj__image>", "images": ["gone.png"], "media_root": ds["media_root"][0]})
    with pytest.raises(FileNotFoundError, match="row 5: cannot read media file 'gone.png'"):
        exact_clusters(broken, ExactParams(on=("images",)))


def test_within_row_media_dedup_drops_repeats_and_their_tokens(media_dataset, tmp_path):
    ds, root = media_dataset
    repeated = datasets.Dataset.from_dict(
        {
            "text": ["first <__dj__image> then <__dj__image> and <__dj__image> end"],
            "images": [["red.png", "red_copy.png", "blue.png"]],
            "media_root": [str(root)],
        }
    )
    out = drop_repeated_media(repeated, ["images"])
    assert out[0]["images"] == ["red.png", "blue.png"]
    assert out[0]["text"] == "first <__dj__image> then  and <__dj__image> end"
    # Off by default: the front door leaves rows alone unless asked.
    assert dedup(repeated, "exact")[0]["images"] == ["red.png", "red_copy.png", "blue.png"]
    assert dedup(repeated, "exact", within_row_media=["images"])[0]["images"] == ["red.png", "blue.png"]


def test_within_row_media_dedup_refuses_misaligned_rows(media_dataset):
    _, root = media_dataset
    bad = datasets.Dataset.from_dict({"text": ["<__dj__image>"], "images": [["red.png", "red_copy.png"]], "media_root": [str(root)]})
    with pytest.raises(ValueError, match="row 0: text has 1"):
        drop_repeated_media(bad, ["images"])


def test_text_digest_map_function_is_cached_by_fingerprint(tmp_path):
    ds = datasets.Dataset.from_dict({"text": ["a", " a", "b"]}).flatten_indices(cache_file_name=str(tmp_path / "base.arrow"))
    first = ds.map(TextDigest(), batched=True)
    second = ds.map(TextDigest(), batched=True)
    assert first._fingerprint == second._fingerprint
    assert first.cache_files and first.cache_files == second.cache_files
    assert first["text_digest"][0] == first["text_digest"][1] != first["text_digest"][2]
    assert ds.map(TextDigest(lowercase=True), batched=True)._fingerprint != first._fingerprint
