"""Perceptual image hashes (vs imagehash), Hamming-radius search and image near-duplicate clusters."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw

from hf_mmbuilder.duplicates import ImageHashError, default_radius, image_hash_clusters, image_hashes
from hf_mmbuilder.kernels.hamming import hamming_pairs

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
DISTINCT = ["img1.png", "img2.jpg", "img3.jpg", "img8.jpg", "cat.jpg", "blip.jpg", "img_pair_1.jpg", "img_pair_2.jpg"]
KINDS = ["phash", "dhash", "ahash", "whash"]


def needs_media():
    if not MEDIA.is_dir():
        pytest.skip(f"shared test media not found at {MEDIA}")


def needs_imagehash():
    return pytest.importorskip("imagehash", reason="imagehash (bench extra) is the reference for exact mode")


def imagehash_function(imagehash, kind):
    return {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash, "whash": imagehash.whash}[kind]


def as_hex(words: np.ndarray, bits: int) -> str:
    return "".join(f"{int(w):016x}" for w in words)[: -(-bits // 4)]


def synthetic_image(seed: int, size=(320, 240), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        box = [x0, y0, x0 + int(rng.integers(2, size[0] + 3)), y0 + int(rng.integers(2, size[1] + 3))]
        draw.ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image.convert(mode) if mode != "RGB" else image


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hash_size", [8, 16])
def test_exact_mode_is_bit_identical_to_imagehash_on_shared_media(kind, hash_size):
    needs_media()
    imagehash = needs_imagehash()
    files = sorted(str(p) for p in MEDIA.iterdir() if p.suffix in (".jpg", ".png"))
    ours = image_hashes(files, hash_method=kind, hash_size=hash_size)
    reference = imagehash_function(imagehash, kind)
    for path, words in zip(files, ours):
        expected = str(reference(Image.open(path), hash_size=hash_size))
        assert as_hex(words, hash_size * hash_size) == expected, path


@pytest.mark.parametrize("kind", KINDS)
def test_exact_mode_matches_imagehash_across_modes_and_sizes(kind):
    imagehash = needs_imagehash()
    images = [
        synthetic_image(1, mode="RGBA"),
        synthetic_image(2, mode="P"),
        synthetic_image(3, mode="CMYK"),
        synthetic_image(4, mode="L"),
        synthetic_image(5, mode="LA"),
        synthetic_image(6, mode="1"),
        synthetic_image(7, size=(37, 611)),
        synthetic_image(8, size=(12, 9)),
        Image.fromarray((np.arange(200 * 300).reshape(200, 300) * 3 % 4000).astype(np.uint16)),
        Image.linear_gradient("L").rotate(30),
    ]
    ours = image_hashes(images, hash_method=kind)
    reference = imagehash_function(imagehash, kind)
    for k, (image, words) in enumerate(zip(images, ours)):
        assert as_hex(words, 64) == str(reference(image)), f"image {k} ({image.mode} {image.size})"


def test_hash_words_equal_imagehash_integer_and_batches_agree():
    imagehash = needs_imagehash()
    images = [synthetic_image(seed) for seed in range(7)]
    whole = image_hashes(images)
    in_batches = image_hashes(images, batch_size=3, num_threads=2)
    assert np.array_equal(whole, in_batches)
    assert [int(w) for w in whole[:, 0]] == [int(str(imagehash.phash(im)), 16) for im in images]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_mode_drifts_by_few_bits(kind):
    needs_media()
    files = [str(MEDIA / name) for name in DISTINCT]
    exact = image_hashes(files, hash_method=kind, compat="imagehash")
    fast = image_hashes(files, hash_method=kind, compat=None)
    drift = np.bitwise_count(exact ^ fast).sum(axis=1)
    assert drift.max() <= 6, drift.tolist()
    decoded = image_hashes([Image.open(f) for f in files], hash_method=kind, compat=None)
    # Decoded images are sampled from full-resolution pixels, files from a draft decode.
    assert np.bitwise_count(decoded ^ exact).sum(axis=1).max() <= 6


@pytest.fixture(scope="module")
def near_duplicates(tmp_path_factory):
    """Rows: the 8 distinct images, the 4 byte-identical copies, then re-encoded/resized variants."""
    needs_media()
    tmp_path = tmp_path_factory.mktemp("near_duplicates")
    paths, roots, origin = [], [], []
    for k, name in enumerate(DISTINCT):
        paths.append([name]), roots.append(str(MEDIA)), origin.append(k)
    for copy, of in [("img4.png", 0), ("img5.jpg", 1), ("img6.jpg", 2), ("img7.jpg", 2)]:
        paths.append([copy]), roots.append(str(MEDIA)), origin.append(of)
    for k, name in enumerate(DISTINCT):
        image = Image.open(MEDIA / name)
        for quality in (30, 60, 95):
            (tmp_path / f"{k}_q{quality}.jpg").write_bytes(jpeg_bytes(image, quality))
            paths.append([f"{k}_q{quality}.jpg"]), roots.append(str(tmp_path)), origin.append(k)
        for scale in (0.5, 2.0):
            resized = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BICUBIC)
            resized.save(tmp_path / f"{k}_x{scale}.png", compress_level=1)
            paths.append([f"{k}_x{scale}.png"]), roots.append(str(tmp_path)), origin.append(k)
    ds = datasets.Dataset.from_dict({"images": paths, "media_root": roots})
    return ds, np.array(origin)


@pytest.mark.parametrize("compat, hash_size", [("imagehash", 8), ("imagehash", 16), (None, 16)])
def test_near_duplicates_found_and_distinct_images_kept_apart(near_duplicates, compat, hash_size):
    ds, origin = near_duplicates
    labels = image_hash_clusters(ds, hash_method="phash", compat=compat, hash_size=hash_size, progress=False)
    assert labels.dtype == np.int64 and labels.shape == (len(ds),)
    # Every variant lands in its original's cluster; the 8 originals stay 8 clusters.
    assert labels.tolist() == origin.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_every_hash_kind_clusters_the_variants(near_duplicates, kind):
    ds, origin = near_duplicates
    labels = image_hash_clusters(ds, hash_method=kind, hash_size=16, progress=False)
    assert labels.tolist() == origin.tolist()


def test_rows_with_several_images_link_through_any_image(tmp_path):
    a, b, c, d = (synthetic_image(seed) for seed in (10, 11, 12, 13))
    for name, image in zip("abcd", (a, b, c, d)):
        image.save(tmp_path / f"{name}.png")
    (tmp_path / "b_q70.jpg").write_bytes(jpeg_bytes(b, 70))
    ds = datasets.Dataset.from_dict(
        {
            "images": [["a.png", "b.png"], ["c.png"], [], ["d.png", "b_q70.jpg"], ["c.png"]],
            "media_root": [str(tmp_path)] * 5,
        }
    )
    labels = image_hash_clusters(ds, progress=False)
    assert labels.tolist() == [0, 1, 2, 0, 1]


def test_image_feature_columns_are_read_undecoded():
    images = [synthetic_image(seed) for seed in (20, 21)]
    variant = Image.open(io.BytesIO(jpeg_bytes(images[0], 50)))
    single = datasets.Dataset.from_dict(
        {"image": [images[0], images[1], variant]}, features=datasets.Features({"image": datasets.Image()})
    )
    assert image_hash_clusters(single, column="image", progress=False).tolist() == [0, 1, 0]
    listed = datasets.Dataset.from_dict(
        {"images": [[images[1]], [images[0], variant], [variant]]},
        features=datasets.Features({"images": datasets.List(datasets.Image())}),
    )
    assert image_hash_clusters(listed, progress=False).tolist() == [0, 1, 1]


def bad_files(tmp_path: Path) -> dict[str, str]:
    good = synthetic_image(30)
    good.save(tmp_path / "good.png")
    data = jpeg_bytes(synthetic_image(31), 90)
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "not_an_image.jpg").write_text("hello")
    return {"good": "good.png", "truncated": "truncated.jpg", "text": "not_an_image.jpg", "missing": "missing.png"}


@pytest.mark.parametrize("which, reason", [("truncated", "truncated"), ("text", "cannot identify"), ("missing", "No such file")])
def test_unreadable_images_raise_naming_row_and_path(tmp_path, which, reason):
    files = bad_files(tmp_path)
    ds = datasets.Dataset.from_dict({"images": [[files["good"]], [files["good"], files[which]]], "media_root": [str(tmp_path)] * 2})
    with pytest.raises(ImageHashError) as caught:
        image_hash_clusters(ds, progress=False)
    assert caught.value.row == 1 and caught.value.position == 1
    message = str(caught.value)
    assert "row 1, image 1" in message and str(tmp_path / files[which]) in message and reason in message


def test_skipped_images_are_reported_and_rows_stay_their_own_cluster(tmp_path, caplog):
    files = bad_files(tmp_path)
    ds = datasets.Dataset.from_dict(
        {
            "images": [[files["truncated"]], [files["good"]], [files["text"], files["good"]], [files["missing"]]],
            "media_root": [str(tmp_path)] * 4,
        }
    )
    with pytest.warns(UserWarning, match="3 image\\(s\\) could not be hashed"):
        labels = image_hash_clusters(ds, on_error="skip", progress=False)
    assert labels.tolist() == [0, 1, 1, 3]
    logged = caplog.text
    for row, name in [(0, "truncated.jpg"), (2, "not_an_image.jpg"), (3, "missing.png")]:
        assert f"row {row}" in logged and name in logged


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("compat", ["imagehash", None])
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, compat):
    synthetic_image(40, size=(400, 300)).save(tmp_path / "big.png")
    ds = datasets.Dataset.from_dict({"images": [["big.png"]], "media_root": [str(tmp_path)]})
    # Over the limit PIL only warns; over twice the limit it raises. Both must stop the hash.
    for limit in (100_000, 50_000):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageHashError, match="row 0, image 0 .*big.png.*Decompression"):
            image_hash_clusters(ds, compat=compat, progress=False)


def test_sixteen_bit_and_palette_images_hash_in_fast_mode():
    grey16 = Image.fromarray(np.linspace(0, 65535, 300 * 200).reshape(200, 300).astype(np.uint16))
    assert grey16.mode == "I;16"
    palette = synthetic_image(41, mode="P")
    exact = image_hashes([grey16, palette], compat="imagehash")
    fast = image_hashes([grey16, palette], compat=None)
    assert np.bitwise_count(exact ^ fast).sum(axis=1).max() <= 6


def test_argument_errors_are_clear():
    image = synthetic_image(50)
    with pytest.raises(ValueError, match="hash_method must be one of"):
        image_hashes([image], hash_method="md5")
    with pytest.raises(ValueError, match="power-of-two"):
        image_hashes([image], hash_method="whash", hash_size=12)
    with pytest.raises(ValueError, match="compat must be 'imagehash' or None"):
        image_hashes([image], compat="approximate")
    with pytest.warns(FutureWarning, match="compat"), pytest.raises(ValueError, match="mode must be"):
        image_hashes([image], mode="approximate")
    with pytest.raises(TypeError, match="unexpected keyword argument 'kind'"):
        image_hashes([image], kind="phash")
    ds = datasets.Dataset.from_dict({"images": [["a.png"]]})
    with pytest.raises(ValueError, match="column 'pictures' not in dataset"):
        image_hash_clusters(ds, column="pictures", progress=False)
    assert default_radius(8) == 3 and default_radius(16) == 12


def reference_pairs(hashes: np.ndarray, radius: int) -> set:
    hashes = hashes.reshape(len(hashes), -1)
    return {
        (i, j)
        for i, j in itertools.combinations(range(len(hashes)), 2)
        if int(np.bitwise_count(hashes[i] ^ hashes[j]).sum()) <= radius
    }


def clustered_hashes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n // 2, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    flips = np.zeros(n - n // 2, dtype=np.uint64)
    for _ in range(4):
        flips |= np.uint64(1) << rng.integers(0, 64, n - n // 2).astype(np.uint64)
    return np.concatenate([base, base[rng.integers(0, n // 2, n - n // 2)] ^ flips])


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_hamming_brute_force_and_multi_index_agree_with_reference(radius):
    hashes = clustered_hashes(700, seed=radius)
    expected = reference_pairs(hashes, radius)
    for method in ("brute", "mih"):
        left, right = hamming_pairs(hashes, radius, method=method, num_threads=2)
        assert (left < right).all()
        got = list(zip(left.tolist(), right.tolist()))
        assert len(got) == len(set(got)), method
        assert set(got) == expected, method


def test_hamming_multi_word_hashes():
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**63, (300, 4), dtype=np.int64).astype(np.uint64)
    hashes[150:] = hashes[:150] ^ (np.uint64(1) << rng.integers(0, 64, (150, 4)).astype(np.uint64))
    left, right = hamming_pairs(hashes, 6)
    assert set(zip(left.tolist(), right.tolist())) == reference_pairs(hashes, 6)
    with pytest.raises(ValueError, match="single-word"):
        hamming_pairs(hashes, 6, method="mih")


def test_hamming_matches_faiss_range_search():
    faiss = pytest.importorskip("faiss")
    hashes = clustered_hashes(3000, seed=9)
    left, right = hamming_pairs(hashes, 8)
    index = faiss.IndexBinaryFlat(64)
    codes = hashes.astype(">u8").view(np.uint8).reshape(-1, 8)
    index.add(codes)
    # faiss's radius is exclusive.
    limits, _, neighbours = index.range_search(codes, 9)
    expected = {
        (i, int(j)) for i in range(len(hashes)) for j in neighbours[limits[i] : limits[i + 1]] if j > i
    }
    assert set(zip(left.tolist(), right.tolist())) == expected


def test_hamming_edge_cases():
    empty = np.zeros((0, 1), dtype=np.uint64)
    assert [a.size for a in hamming_pairs(empty, 3)] == [0, 0]
    same = np.full(4, 7, dtype=np.uint64)
    left, right = hamming_pairs(same, 0)
    assert sorted(zip(left.tolist(), right.tolist())) == list(itertools.combinations(range(4), 2))
    with pytest.raises(ValueError, match="uint64"):
        hamming_pairs(np.zeros(3, dtype=np.int64), 1)
    with pytest.raises(ValueError, match="radius"):
        hamming_pairs(same, -1)
