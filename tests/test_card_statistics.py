"""The card's media statistics per batch, vectorised (issue 22): distinct files found by the digests
of their resolved paths, embedded images measured by the header kernel, and the same numbers and
errors as measuring every file one by one."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset
from PIL import Image

from hf_mmbuilder.kernels.image_header import JPEG, PNG, UNRECOGNISED, image_sizes as header_sizes
from hf_mmbuilder.probe import image_size, image_sizes
from hf_mmbuilder.publishing.card import CardStatistics, collect_statistics
from hf_mmbuilder.publishing.shards import embed_media_batch


def encoded(size: tuple, format: str = "JPEG", mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 30, 60) if mode == "RGB" else 0).save(buffer, format, **options)
    return buffer.getvalue()


def chunk(name: bytes, data: bytes, crc: int | None = None) -> bytes:
    return struct.pack(">I", len(data)) + name + data + struct.pack(">I", zlib.crc32(name + data) if crc is None else crc)


def png(width: int = 5, height: int = 3, depth: int = 8, colour: int = 2, filter_method: int = 0, before_idat: bytes = b"",
        ihdr_extra: bytes = b"") -> bytes:
    """A PNG of the given header whose pixels (an IDAT Pillow never reads to size it) are nonsense."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, filter_method, 0) + ihdr_extra
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + before_idat + chunk(b"IDAT", b"\x00" * 4) + chunk(b"IEND", b"")


def exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "camera" * 2000
    return encoded((320, 240), exif=exif.tobytes())


def packed(blobs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(data, starts, ends)`` of byte strings laid end to end, as an Arrow binary array holds them."""
    lengths = np.array([len(blob) for blob in blobs], dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.frombuffer(b"".join(blobs), np.uint8), ends - lengths, ends


def measured(blobs: list) -> tuple[list, list]:
    sizes, kinds = header_sizes(*packed(blobs))
    return [tuple(size) for size in sizes.tolist()], kinds.tolist()


def per_image(blob: bytes):
    """What the per-image path gives: a size, or the error it raises (with any warning)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return image_size(blob), [str(warning.message) for warning in caught]
        except Exception as error:  # noqa: BLE001 - the error itself is the outcome compared
            return f"{type(error).__name__}: {error}", [str(warning.message) for warning in caught]


BASELINE = encoded((641, 479), quality=90)

RECOGNISED = {
    "baseline": (BASELINE, (641, 479), JPEG),
    "progressive": (encoded((33, 17), progressive=True), (33, 17), JPEG),
    "exif": (exif_jpeg(), (320, 240), JPEG),
    "comment": (BASELINE[:2] + b"\xff\xfe\x00\x06file" + BASELINE[2:], (641, 479), JPEG),
    "fill bytes": (BASELINE[:2] + b"\xff\xff\xff" + BASELINE[3:], (641, 479), JPEG),
    "markers without length": (BASELINE[:2] + b"\xff\xd0\xff\x01" + BASELINE[2:], (641, 479), JPEG),
    "truncated after the frame header": (BASELINE[:BASELINE.index(b"\xff\xc0") + 9], (641, 479), JPEG),
    "pillow png": (encoded((7, 5), "PNG", "RGBA"), (7, 5), PNG),
    "png with dpi": (encoded((9, 4), "PNG", dpi=(72, 72)), (9, 4), PNG),
    "png palette": (encoded((6, 2), "PNG", "P"), (6, 2), PNG),
    "png 16-bit grey": (png(3, 8, 16, 0), (3, 8), PNG),
    "png unknown chunk": (png(before_idat=chunk(b"prVt", b"private")), (5, 3), PNG),
    "png gAMA sRGB cHRM": (png(before_idat=chunk(b"gAMA", b"\0\0\xb1\x8f") + chunk(b"sRGB", b"\0") + chunk(b"cHRM", b"\0" * 32)), (5, 3), PNG),
    "png tRNS": (png(before_idat=chunk(b"tRNS", b"\0" * 6)), (5, 3), PNG),
    "png longer IHDR": (png(ihdr_extra=b"\0\0"), (5, 3), PNG),
}

UNRECOGNISED_BLOBS = {
    "empty": b"",
    "one byte": b"\xff",
    "no image": b"this is no image",
    "jpeg without frame": b"\xff\xd8 not a jpeg",
    "jpeg truncated before the frame": BASELINE[:100],
    "jpeg truncated inside the frame header": BASELINE[:BASELINE.index(b"\xff\xc0") + 8],
    "jpeg frame of width 0": BASELINE.replace(b"\xff\xc0\x00\x11\x08\x01\xdf\x02\x81", b"\xff\xc0\x00\x11\x08\x01\xdf\x00\x00"),
    "jpeg with garbage between segments": BASELINE[:2] + b"\x00" + BASELINE[2:],
    "gif": encoded((4, 3), "GIF"),
    "bmp": encoded((4, 3), "BMP"),
    "webp": encoded((4, 3), "WEBP"),
    "png bad IHDR crc": png()[:29] + b"\0\0\0\0" + png()[33:],
    "png bad chunk crc": png(before_idat=chunk(b"prVt", b"private", crc=1)),
    "png truncated before IDAT": png()[:40],
    "png depth 3": png(depth=3),
    "png colour 5": png(colour=5),
    "png filter method 1": png(filter_method=1),
    "png width 0": png(width=0),
    "png short IHDR": b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\0" * 12) + chunk(b"IDAT", b""),
    "png chunk before IHDR": b"\x89PNG\r\n\x1a\n" + chunk(b"prVt", b"") + png()[8:],
    "png second IHDR": png(before_idat=chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 9, 8, 2, 0, 0, 0))),
    "png text": png(before_idat=chunk(b"tEXt", b"key\0value")),
    "png compressed text": png(before_idat=chunk(b"zTXt", b"key\0\0broken")),
    "png short gAMA": png(before_idat=chunk(b"gAMA", b"\0")),
    "png short tRNS of RGB": png(before_idat=chunk(b"tRNS", b"\0\0")),
    "png invalid chunk name": png(before_idat=chunk(b"p-Vt", b"")),
    "png animation": png(before_idat=chunk(b"acTL", b"\0" * 8)),
    "png of more pixels than Pillow opens quietly": png(10_000, 10_000),
    "png of more pixels than Pillow opens": png(20_000, 20_000),
}


@pytest.mark.parametrize("name", list(RECOGNISED))
def test_the_kernel_reads_the_size_image_size_reads(name):
    blob, size, kind = RECOGNISED[name]
    assert measured([b"decoy", blob, b"\xff\xd8"]) == ([(-1, -1), size, (-1, -1)], [UNRECOGNISED, kind, UNRECOGNISED])
    assert per_image(blob) == (size, [])


@pytest.mark.parametrize("name", list(UNRECOGNISED_BLOBS))
def test_what_the_kernel_cannot_vouch_for_is_left_to_image_size(name):
    assert image_sizes(*packed([UNRECOGNISED_BLOBS[name]])).tolist() == [[-1, -1]]


def test_a_huge_png_is_vouched_for_by_the_kernel_but_measured_by_pillow():
    # Pillow warns past MAX_IMAGE_PIXELS and refuses past twice it: the per-image path must say so.
    warned, refused = UNRECOGNISED_BLOBS["png of more pixels than Pillow opens quietly"], UNRECOGNISED_BLOBS["png of more pixels than Pillow opens"]
    assert measured([warned, refused]) == ([(10_000, 10_000), (20_000, 20_000)], [PNG, PNG])
    size, warnings_given = per_image(warned)
    assert size == (10_000, 10_000) and "decompression bomb" in warnings_given[0]
    assert per_image(refused)[0].startswith("DecompressionBombError: Image size (400000000 pixels) exceeds limit")


def test_every_damaged_header_the_kernel_vouches_for_gives_that_size_through_image_size():
    # Truncations and byte flips of each recognised image: wherever the kernel still gives a size,
    # the per-image path gives the same size, quietly; elsewhere the kernel leaves it to that path.
    rng = np.random.default_rng(22)
    checked = 0
    for blob, _, _ in RECOGNISED.values():
        header = min(len(blob), 700)
        variants = [blob[:cut] for cut in range(0, header, 7)]
        for _ in range(150):
            damaged = bytearray(blob)
            damaged[int(rng.integers(0, header))] = int(rng.integers(0, 256))
            variants.append(bytes(damaged))
        for variant, size in zip(variants, image_sizes(*packed(variants)).tolist()):
            if size != [-1, -1]:
                assert per_image(variant) == (tuple(size), [])
                checked += 1
    assert checked > 1000


def media_folder(tmp_path) -> dict[str, bytes]:
    """Files of several formats, damaged ones among them, written under ``tmp_path/media``."""
    files = {
        "a.jpg": BASELINE, "b.jpg": exif_jpeg(), "c.jpg": encoded((33, 17), progressive=True),
        "d.png": encoded((7, 5), "PNG", "RGBA"), "e.gif": encoded((4, 3), "GIF"), "f.bmp": encoded((6, 2), "BMP"),
        "g.webp": encoded((8, 8), "WEBP"), "h.png": png(before_idat=chunk(b"tEXt", b"key\0value")),
        "sub/a.jpg": encoded((10, 20)),
    }
    for name, blob in files.items():
        (tmp_path / "media" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "media" / name).write_bytes(blob)
    return files


def pillow_size(blob: bytes) -> tuple:
    with Image.open(io.BytesIO(blob)) as image:
        return image.size


def rows_of(names: list, root) -> Dataset:
    # Repeated files within and across batches, a file under two written paths ("./a.jpg"), rows
    # without images.
    images = [[names[(row * 3) % len(names)], names[(row * 5 + 1) % len(names)]][: row % 3] for row in range(60)]
    images[7] = ["./a.jpg"]
    return Dataset.from_dict({"text": ["<__dj__image> text"] * 60, "images": images, "media_root": [str(root)] * 60})


def embedded_statistics(splits: dict, batch_size: int) -> dict:
    statistics = CardStatistics({name: len(part) for name, part in splits.items()})
    for name, part in splits.items():
        for offset in range(0, len(part), batch_size):
            batch = part.data.table.slice(offset, batch_size)
            statistics.add(name, batch, offset, embed_media_batch(batch, ["images"]))
    return statistics.result(Counter())


def test_statistics_from_embedded_bytes_equal_those_of_the_files_on_disk(tmp_path):
    files = media_folder(tmp_path)
    names = sorted(files)
    splits = {"train": rows_of(names, tmp_path / "media"), "test": rows_of(names[::-1], tmp_path / "media")}
    on_disk = collect_statistics(splits)
    # Each distinct file once, in the order first found, measured as Pillow opens it.
    # "./a.jpg" resolves to another path than "a.jpg": the card tells files apart by resolved path.
    order = list(dict.fromkeys(name for part in splits.values() for row in part["images"] for name in row))
    assert order.count("./a.jpg") == 1 and order.count("a.jpg") == 1
    expected = [pillow_size(files[name.removeprefix("./")]) for name in order]
    assert list(zip(on_disk["values"]["image_width"].tolist(), on_disk["values"]["image_height"].tolist())) == expected
    assert on_disk["image_files"] == len(order) and on_disk["image_unmeasured"] == 0
    for batch_size in (1, 7, 60):
        embedded = embedded_statistics(splits, batch_size)
        for key in ("image_files", "image_unmeasured", "image_width", "image_height", "images_per_row", "splits", "rows"):
            assert embedded[key] == on_disk[key]
        for key in ("image_width", "image_height"):
            assert embedded["values"][key].tolist() == on_disk["values"][key].tolist()
            assert embedded["values"][key].dtype == on_disk["values"][key].dtype


def test_an_embedded_jpeg_cut_after_its_frame_header_has_the_size_image_size_reads(tmp_path):
    # Pillow refuses to open this file on disk ("Truncated File Read"); embedded, its size comes
    # from the frame header, as image_size reads it.
    (tmp_path / "cut.jpg").write_bytes(RECOGNISED["truncated after the frame header"][0])
    part = Dataset.from_dict({"text": ["x"], "images": [["cut.jpg"]], "media_root": [str(tmp_path)]})
    assert embedded_statistics({"train": part}, 1)["values"]["image_width"].tolist() == [641]


def test_no_image_gives_the_same_empty_measures():
    stats = collect_statistics({"train": Dataset.from_dict({"text": ["a"], "images": [[]]})})
    assert stats["image_files"] == 0 and stats["image_width"] is None
    assert stats["values"]["image_width"].dtype == np.float64 and stats["values"]["image_width"].size == 0


@pytest.mark.parametrize("batch_size", [1, 4, 60])
def test_an_unreadable_embedded_image_is_named_by_its_first_row(tmp_path, batch_size):
    media_folder(tmp_path)
    (tmp_path / "media" / "broken.png").write_bytes(png()[:40])
    images = [["a.jpg"], ["e.gif", "a.jpg"], [], ["broken.png"], ["broken.png"], ["d.png"]]
    part = Dataset.from_dict({"text": ["x"] * 6, "images": images, "media_root": [str(tmp_path / "media")] * 6})
    assert per_image(png()[:40])[0].startswith("UnidentifiedImageError: cannot identify image file")
    with pytest.raises(ValueError, match=rf"^split 'validation' row 3: image 'broken.png' \(.*/media/broken.png\) cannot be read: cannot identify image file"):
        embedded_statistics({"validation": part}, batch_size)


def test_absent_files_are_counted_apart_and_known_files_once_across_splits(tmp_path):
    media_folder(tmp_path)
    root = str(tmp_path / "media")
    first = Dataset.from_dict({"text": ["x"] * 3, "images": [["a.jpg", "gone.jpg"], ["gone.jpg"], ["b.jpg"]], "media_root": [root] * 3})
    second = Dataset.from_dict({"text": ["x"] * 2, "images": [["b.jpg", "also-gone.jpg"], [str(tmp_path / "media" / "a.jpg")]],
                                "media_root": [root] * 2})
    stats = collect_statistics({"train": first, "test": second}, batch_size=1)
    assert (stats["image_files"], stats["image_unmeasured"]) == (2, 2)
    assert stats["values"]["image_width"].tolist() == [641, 320]
