"""Files read in one compiled call (``hf_mmbuilder.kernels.file_bytes`` and its callers in
``hf_mmbuilder.media``): the bytes of every file, and for each file that cannot be read the error
Python's own ``open`` raises, naming it."""

import gc
import os
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
import xxhash

from hf_mmbuilder.kernels import file_bytes
from hf_mmbuilder.kernels.exact_hash import digests128
from hf_mmbuilder.media import file_sizes, head_digests, read_files
from hf_mmbuilder.publishing.shards import MediaBuffers, ShardTrail, _read_all


@pytest.fixture
def files(tmp_path):
    contents = {"empty": b"", "one": b"1", "photo.jpg": os.urandom(300_000), "café é.txt": "über".encode()}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    return {str(tmp_path / name): data for name, data in contents.items()}


def test_sizes_of_files_and_of_what_cannot_be_read(files, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    paths = [*files, str(tmp_path / "absent"), str(tmp_path / "fifo")]
    # A FIFO neither blocks the open (no writer) nor has a size.
    assert file_sizes(pa.array(paths)).tolist() == [*(len(data) for data in files.values()), -1, -1]
    assert file_sizes(pa.array([], pa.string())).tolist() == []


def test_read_files_reads_every_byte(files):
    paths = pa.array(list(files))
    offsets = np.concatenate([[0], np.cumsum([len(data) for data in files.values()])])
    into = np.full(int(offsets[-1]) + 3, 7, dtype=np.uint8)
    assert read_files(paths, offsets, into).tolist() == [len(data) for data in files.values()]
    assert bytes(into[:-3]) == b"".join(files.values()) and into[-3:].tolist() == [7, 7, 7]
    # A head: the first bytes of each file, all of a shorter one.
    heads = np.concatenate([[0], np.cumsum([min(len(data), 4) for data in files.values()])])
    into = np.zeros(int(heads[-1]), dtype=np.uint8)
    read_files(paths, heads, into)
    assert bytes(into) == b"".join(data[:4] for data in files.values())


def test_a_missing_file_raises_pythons_error_naming_it(files, tmp_path):
    absent = str(tmp_path / "absent.jpg")
    paths = pa.array([*files, absent])
    # A byte of each (none of the empty file), then of the absent one.
    offsets = np.array([0, 0, 1, 2, 3, 4])
    with pytest.raises(FileNotFoundError) as raised:
        read_files(paths, offsets, np.zeros(4, dtype=np.uint8))
    assert raised.value.filename == absent and raised.value.errno == 2
    # Not strict: what was read of each file, -1 where it could not be opened.
    assert read_files(paths, offsets, np.zeros(4, dtype=np.uint8), strict=False).tolist() == [0, 1, 1, 1, -1]


def test_a_file_shorter_than_asked_raises_naming_it_and_both_sizes(files):
    path = next(name for name in files if name.endswith("one"))
    with pytest.raises(OSError, match=rf"^{path}: the file ended after 1 of the 5 bytes to read \(it changed while it was read\)$"):
        read_files(pa.array([path]), np.array([0, 5]), np.zeros(5, dtype=np.uint8))


def test_a_path_with_a_nul_byte_is_refused_as_open_refuses_it(files):
    path = next(iter(files)) + "\0/etc/passwd"
    with pytest.raises(ValueError, match=r"embedded null byte in a file path"):
        read_files(pa.array([path]), np.array([0, 1]), np.zeros(1, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"embedded null byte in a file path"):
        file_sizes(pa.array([path]))


def test_the_kernel_refuses_offsets_and_names_out_of_bounds(files):
    path = next(iter(files)).encode()
    names = np.frombuffer(path + b"\0", dtype=np.uint8)
    with pytest.raises(ValueError, match="offsets do not lie within data"):
        file_bytes.read_files(names, np.array([0, len(names)]), os.O_RDONLY, np.zeros(4, dtype=np.uint8), np.array([0, 5]))
    with pytest.raises(ValueError, match="offsets decrease"):
        file_bytes.read_files(names, np.array([0, len(names)]), os.O_RDONLY, np.zeros(4, dtype=np.uint8), np.array([2, 1]))
    unterminated = np.frombuffer(path, dtype=np.uint8)
    with pytest.raises(ValueError, match="not a NUL-terminated run"):
        file_bytes.file_sizes(unterminated, np.array([0, len(unterminated)]), os.O_RDONLY)


def test_media_buffers_are_reused_only_once_nothing_refers_to_them():
    buffers = MediaBuffers(kept=2)
    small = buffers.take(1000)
    small_base = small.base
    assert small.nbytes == 1000 and small_base.nbytes == 1250  # a quarter more, for the next batches
    array = pa.BinaryArray.from_buffers(pa.binary(), 1, [None, pa.py_buffer(np.array([0, 1000], np.int32)), pa.py_buffer(small)])
    del small
    # The Arrow array still holds the memory: another request gets memory of its own.
    large = buffers.take(2000)
    large_base = large.base
    assert large_base is not small_base
    del large
    # Free again, and the only free array: handed out for any size it holds.
    assert buffers.take(1200).base is large_base
    del array
    gc.collect()
    # Both free: the smallest that fits is handed out; what none fits is allocated.
    assert buffers.take(10).base is small_base
    new = buffers.take(3000)
    assert new.base is not small_base and new.base is not large_base
    del new
    # At most ``kept`` arrays are kept free, the largest ones.
    assert sorted(kept.nbytes for kept in buffers._free) == [2500, 3750]


def test_read_all_gives_each_files_bytes_from_reused_memory(files):
    paths = pa.array(list(files))
    buffers = MediaBuffers(kept=1)
    for _ in range(3):
        contents = _read_all(paths, buffers)
        assert contents.to_pylist() == list(files.values())
        base = np.frombuffer(contents.buffers()[2], dtype=np.uint8)
        del contents, base
    # One array served all three batches.
    assert len(buffers._free) == 1


def test_shard_trail_digests_behind_the_writer_and_hands_each_range_over_twice(tmp_path, monkeypatch):
    advice = []
    if hasattr(os, "posix_fadvise"):
        real = os.posix_fadvise
        monkeypatch.setattr(os, "posix_fadvise", lambda fd, start, length, how: (advice.append((start, length, how)), real(fd, start, length, how)))
    shard = tmp_path / "train-00000-of-00001.parquet"
    data = os.urandom(9 << 20)
    trail = ShardTrail()
    renamed = threading.Event()
    with open(shard, "wb") as handle:
        # Reports at lengths that are not multiples of a page, as a writer's are.
        for length in (1000, 5 << 20, (5 << 20) + 3, len(data) - 17):
            handle.write(data[handle.tell():length])
            handle.flush()
            trail.written(shard, length)
        handle.write(data[handle.tell():])
    digest = trail.closed(shard, len(data))

    def rename_once_known(future):
        # As publish does with the generation tag, as soon as the digest is known.
        shard.rename(tmp_path / "tagged.parquet")
        renamed.set()

    digest.add_done_callback(rename_once_known)
    missing = trail.closed(tmp_path / "absent.parquet", 10)
    trail.shutdown()
    assert digest.result() == xxhash.xxh3_128(data).digest()
    with pytest.raises(FileNotFoundError):
        missing.result()
    assert renamed.wait(10) and (tmp_path / "tagged.parquet").read_bytes() == data
    if hasattr(os, "posix_fadvise"):
        for _ in range(100):
            if len(advice) == 5:
                break
            time.sleep(0.05)
        dontneed = os.POSIX_FADV_DONTNEED
        # Each report: from the start of the range digested at the one before (its writeback
        # started then, its pages dropped now) to the new length; the whole shard when closed.
        assert advice == [(0, 1000, dontneed), (0, 5 << 20, dontneed), (1000, (5 << 20) + 3 - 1000, dontneed),
                          (5 << 20, len(data) - 17 - (5 << 20), dontneed), (0, len(data), dontneed)]


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system: nothing is advised")
def test_shard_digests_never_wait_for_the_disk(tmp_path, monkeypatch):
    # Starting a writeback waits while the disk's queue is full: here, until the test lets it go.
    disk = threading.Event()
    monkeypatch.setattr(os, "posix_fadvise", lambda *args: disk.wait(30))
    shard = tmp_path / "train-00000-of-00001.parquet"
    data = os.urandom(3 << 20)
    shard.write_bytes(data)
    trail = ShardTrail()
    trail.written(shard, 1 << 20)
    digest = trail.closed(shard, len(data))
    trail.shutdown()
    try:
        assert digest.result(timeout=10) == xxhash.xxh3_128(data).digest()
    finally:
        disk.set()


def test_the_python_reads_give_what_the_compiled_ones_give(files, tmp_path, monkeypatch):
    # Where POSIX reads are not the system's (Windows), media.py reads in Python, file by file.
    from hf_mmbuilder import media

    os.mkfifo(tmp_path / "fifo")
    paths = pa.array([*files, str(tmp_path / "absent"), str(tmp_path / "fifo")])
    wanted = [*(len(data) + 2 for data in files.values()), 3, 0]  # more than each file holds
    offsets = np.concatenate([[0], np.cumsum(wanted)])
    compiled_into = np.zeros(int(offsets[-1]), dtype=np.uint8)
    compiled = (file_sizes(paths), read_files(paths, offsets, compiled_into, strict=False))
    compiled_heads = [part.tolist() for part in head_digests(paths, wanted)]
    monkeypatch.setattr(media, "COMPILED_READS", False)
    python_into = np.zeros(int(offsets[-1]), dtype=np.uint8)
    python = (file_sizes(paths), read_files(paths, offsets, python_into, strict=False))
    assert [part.tolist() for part in python] == [part.tolist() for part in compiled]
    assert [part.tolist() for part in head_digests(paths, wanted)] == compiled_heads
    assert compiled[1].tolist() == [*(len(data) for data in files.values()), -1, 0]
    assert bytes(python_into) == bytes(compiled_into)
    with pytest.raises(FileNotFoundError) as raised:
        read_files(paths.slice(len(files), 1), np.array([0, 3]), np.zeros(3, dtype=np.uint8))
    assert raised.value.filename == str(tmp_path / "absent")
    fifo = str(tmp_path / "fifo")
    with pytest.raises(OSError, match=rf"^{fifo}: the file ended after 0 of the 1 bytes to read"):
        read_files(pa.array([fifo]), np.array([0, 1]), np.zeros(1, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"^offsets of 1 files do not lie within 2 bytes$"):
        read_files(paths.slice(0, 1), np.array([0, 3]), np.zeros(2, dtype=np.uint8))


def test_head_digests_digest_each_files_first_bytes_as_read(files, tmp_path):
    paths = pa.array([*files, str(tmp_path / "absent")])
    contents = list(files.values())
    # Less than a file holds, all of it, and more than it holds (the read stops at its end).
    lengths = np.array([0, 1, 4096, 3, 9], dtype=np.int64)
    read, digests = head_digests(paths, lengths)
    heads = [data[:length] for data, length in zip(contents, lengths)]
    assert read.tolist() == [0, 1, 4096, 3, -1]
    joined = np.frombuffer(b"".join(heads), dtype=np.uint8)
    expected = digests128(joined, np.concatenate([[0], np.cumsum([len(head) for head in heads])]))
    assert (digests[:4] == expected).all() and (digests[4] == 0).all()
    with pytest.raises(ValueError, match=r"^5 files need as many lengths >= 0, got shape \(4,\)$"):
        head_digests(paths, lengths[:4])
