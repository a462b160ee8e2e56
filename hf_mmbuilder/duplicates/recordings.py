"""Audio and video near-duplicates: perceptual hashes of video frames sampled at fixed times
(``dedup(ds, "video_phash")``) and digests of decoded PCM (``dedup(ds, "audio_pcm")``).

Data-Juicer's ``video_deduplicator`` hashes file bytes, so a re-encoded, resized or re-muxed clip
is a new clip to it. Here a video is described by the 64-bit pHash (the image pHash of
:mod:`.images`, fast mode: a box-filtered 32x32 grey grid, its 8x8 low DCT band against its median)
of ``num_frames`` frames taken at the same fractions of its duration by
:func:`hf_mmbuilder.frames.sample_video_frames`; the frames of a copy at another bitrate, size,
frame rate or container show the same moments, so their hashes sit within a few bits. Two videos
are near-duplicates when at least ``min_matching`` of their frames (frame k against frame k) are
within ``radius`` bits. Candidate pairs come from a Hamming-radius search over all frame hashes
(multi-index hashing for large sets, as for images); the aligned count runs in Numba.

An audio file is decoded to mono PCM at one sample rate (:func:`hf_mmbuilder.frames.decode_audio`)
and quantised to 16 bits; equal digests of those samples are one sound, whatever the container
(WAV, FLAC, ...) or the bit depth it was stored with. A lossy re-encode (MP3, Vorbis) changes the
samples and is not matched by a digest.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
import xxhash

from ..frames import decode_audio, sample_video_frames
from ..kernels import perceptual_hash
from ..kernels.hamming import aligned_matches, hamming_pairs
from ..kernels.unionfind import connected_components
from ..media import resolve_media_path
from .report import warn_left_out


DEFAULT_NUM_FRAMES = 8
# Measured on the shared clips (video1/4/5) and their re-encodes (half size in H.264, 150 kbit/s
# MPEG-4 in MKV, VP9 WebM at half size and half the frame rate): aligned frames of a copy differ by
# at most 4 of 64 bits, frames of distinct clips by 24 or more.
DEFAULT_VIDEO_RADIUS = 8
DEFAULT_SAMPLE_RATE = 16_000
_GRID = 32  # pHash input side: 4x the 8x8 hash, as imagehash's highfreq_factor


class MediaHashError(ValueError):
    """A media file that cannot be hashed, with its row, position in the row, path and reason.

    Example:
        >>> str(MediaHashError(3, 0, "video", "a.mp4", "a.mp4: cannot open the file"))
        "row 3, video 0 ('a.mp4'): a.mp4: cannot open the file"
    """

    def __init__(self, row: int, position: int, kind: str, where: str, reason: str):
        self.row, self.position, self.kind, self.where, self.reason = row, position, kind, where, reason
        super().__init__(f"row {row}, {kind} {position} ({where!r}): {reason}")


def frame_hashes(frames: np.ndarray) -> np.ndarray:
    """64-bit pHash of each RGB frame of ``frames`` (uint8 ``[n, height, width, 3]``), uint64 ``[n]``.

    Example:
        >>> frames = np.zeros((2, 48, 64, 3), np.uint8)
        >>> frames[1, :, :32] = 255
        >>> hashes = frame_hashes(frames)
        >>> hashes.shape, hashes.dtype, bool(hashes[0] != hashes[1])
        ((2,), dtype('uint64'), True)
    """
    if len(frames) == 0:
        return np.zeros(0, dtype=np.uint64)
    grey = np.stack([perceptual_hash.sampled_box_gray(frame, _GRID, _GRID) for frame in frames])
    bits = perceptual_hash.above_median(perceptual_hash.dct_lowfreq(grey, 8).reshape(len(frames), -1))
    return perceptual_hash.pack_bits(bits)[:, 0]


def video_signature(path: str, num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """The pHashes of ``num_frames`` frames spread evenly over the video at ``path``, uint64
    ``[num_frames]``; raises :class:`~hf_mmbuilder.frames.MediaDecodeError` naming the file."""
    return frame_hashes(sample_video_frames(path, num_frames).frames)


def audio_digest(path: str, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
    """xxh3-128 digest of the audio at ``path`` decoded to mono PCM at ``sample_rate`` Hz and
    quantised to 16 bits (so a 16-bit sound stored as 24-bit or float digests alike).

    Example:
        >>> import os, tempfile, wave
        >>> folder = tempfile.mkdtemp()
        >>> for name, rate in (("a.wav", 8000), ("b.wav", 16000)):
        ...     with wave.open(os.path.join(folder, name), "wb") as out:
        ...         out.setnchannels(1); out.setsampwidth(2); out.setframerate(rate)
        ...         out.writeframes(np.zeros(rate // 10, "<i2").tobytes())
        >>> audio_digest(os.path.join(folder, "a.wav"), 8000) == audio_digest(os.path.join(folder, "b.wav"), 8000)
        True
    """
    samples = decode_audio(path, sample_rate=sample_rate, mono=True).samples
    quantised = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    return xxhash.xxh3_128_digest(quantised.tobytes())


def _media_rows(ds, column: str, batch_size: int):
    """Yield (row, resolved paths of the row) of a DJ path-list column (or a single path column)."""
    if column not in ds.column_names:
        raise ValueError(f"column {column!r} not in dataset columns {ds.column_names}")
    columns = [column] + (["media_root"] if "media_root" in ds.column_names else [])
    row = 0
    for batch in ds.select_columns(columns).with_format(None).iter(batch_size=batch_size):
        roots = batch.get("media_root") or [None] * len(batch[column])
        for value, root in zip(batch[column], roots):
            paths = [value] if isinstance(value, str) else (value or [])
            yield row, [resolve_media_path(path, root) for path in paths]
            row += 1


def _describe_all(ds, column, kind, describe, on_error, num_threads, batch_size, progress):
    """``describe(path)`` of every file of ``column``: (owners, results) for the files described,
    failures raised or, with ``on_error="skip"``, logged and warned about."""
    from tqdm.auto import tqdm

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    owners, results, failures = [], [], []

    def one(item):
        row, position, path = item
        try:
            return describe(path)
        except Exception as error:  # noqa: BLE001 - every decoder failure is reported per file
            reason = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            if on_error == "raise":
                raise MediaHashError(row, position, kind, path, reason) from error
            failures.append((row, position, path, reason))
            return None

    pool = ThreadPoolExecutor(max_workers=num_threads) if num_threads > 1 else None
    pending = []

    def flush():
        described = list(pool.map(one, pending)) if pool else [one(item) for item in pending]
        for (row, _, _), result in zip(pending, described):
            if result is not None:
                owners.append(row)
                results.append(result)
        pending.clear()

    try:
        for row, paths in tqdm(_media_rows(ds, column, batch_size), total=len(ds), disable=not progress, desc=kind):
            pending.extend((row, position, path) for position, path in enumerate(paths))
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        if pool:
            pool.shutdown()
    if failures:
        warn_left_out(failures, kind, f"{kind} file(s)", "read", stacklevel=3)
    return np.asarray(owners, dtype=np.int64), results


def video_hash_clusters(
    ds,
    column: str = "videos",
    num_frames: int = DEFAULT_NUM_FRAMES,
    radius: int = DEFAULT_VIDEO_RADIUS,
    min_matching: Optional[int] = None,
    *,
    on_error: str = "raise",
    num_threads: int = 1,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Cluster rows whose videos are near-duplicates: at least ``min_matching`` (default: more than
    half) of ``num_frames`` frames sampled at the same fractions of their durations within
    ``radius`` bits of each other, frame k against frame k.

    Two rows are linked when any video of one is a near-duplicate of any video of the other;
    clusters are the connected components. A row without videos is its own cluster.

    Parameters
    ----------
    ds : datasets.Dataset
    column : str
        DJ path lists (relative paths read from the row's ``media_root``) or a path column.
    num_frames, radius, min_matching
        Frames per video, Hamming radius per frame (of 64 bits), frames that must match.
    on_error : {"raise", "skip"}
        ``"raise"``: :class:`MediaHashError` naming the row, video position and path; ``"skip"``:
        the video is left out, each failure logged and one warning gives the count.
    num_threads : int
        Videos decoded at once (PyAV releases the GIL while decoding).
    batch_size : int
        Videos read per batch.

    Returns
    -------
    labels : ndarray of int64, shape (len(ds),)
        Smallest row index of each row's cluster.

    Complexity: ``num_frames`` seeks and short decodes per video; candidate search over
    ``num_frames * videos`` hashes, then O(num_frames) per candidate pair.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if not 0 <= radius <= 64:
        raise ValueError(f"radius must be within 0..64 bits, got {radius}")
    needed = num_frames // 2 + 1 if min_matching is None else int(min_matching)
    if not 1 <= needed <= num_frames:
        raise ValueError(f"min_matching must be within 1..num_frames ({num_frames}), got {min_matching}")
    owners, signatures = _describe_all(ds, column, "video", lambda path: video_signature(path, num_frames),
                                       on_error, num_threads, batch_size, progress)
    n = len(ds)
    if not signatures:
        return connected_components(n, np.zeros(0, np.int64), np.zeros(0, np.int64))
    signatures = np.stack(signatures)
    # Any frame within the radius of any other makes a candidate pair of videos; the aligned count
    # then decides. Frame k of a video never pairs with its own frames.
    flat = signatures.reshape(-1)
    left, right = hamming_pairs(flat, radius, num_threads=num_threads)
    video_left, video_right = left // num_frames, right // num_frames
    distinct = video_left != video_right
    pairs = np.unique(np.stack([video_left[distinct], video_right[distinct]], axis=1), axis=0)
    if pairs.size == 0:
        return connected_components(n, np.zeros(0, np.int64), np.zeros(0, np.int64))
    matched = aligned_matches(signatures, pairs[:, 0], pairs[:, 1], radius) >= needed
    return connected_components(n, owners[pairs[matched, 0]], owners[pairs[matched, 1]])


def audio_digest_clusters(
    ds,
    column: str = "audios",
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    *,
    on_error: str = "raise",
    num_threads: int = 1,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Cluster rows sharing a sound: equal :func:`audio_digest` of any of their audio files (the
    same samples in any container or bit depth). Parameters as :func:`video_hash_clusters`.

    Returns
    -------
    labels : ndarray of int64, shape (len(ds),)
        Smallest row index of each row's cluster.

    Example:
        >>> import datasets, os, tempfile, wave
        >>> folder = tempfile.mkdtemp()
        >>> for name, level in (("a.wav", 100), ("b.wav", 100), ("c.wav", 900)):
        ...     with wave.open(os.path.join(folder, name), "wb") as out:
        ...         out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)
        ...         out.writeframes(np.full(800, level, "<i2").tobytes())
        >>> ds = datasets.Dataset.from_dict({"audios": [["a.wav"], ["c.wav"], ["b.wav"], []], "media_root": [folder] * 4})
        >>> audio_digest_clusters(ds, sample_rate=8000).tolist()
        [0, 1, 0, 3]
    """
    owners, digests = _describe_all(ds, column, "audio", lambda path: audio_digest(path, sample_rate),
                                    on_error, num_threads, batch_size, progress)
    first_owner: dict[bytes, int] = {}
    left, right = [], []
    for owner, digest in zip(owners.tolist(), digests):
        seen = first_owner.setdefault(digest, owner)
        if seen != owner:
            left.append(seen)
            right.append(owner)
    return connected_components(len(ds), np.asarray(left, np.int64), np.asarray(right, np.int64))
