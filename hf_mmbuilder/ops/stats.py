"""Per-row statistics into Data-Juicer's ``__dj__stats__`` struct column, as a batched ``.map`` op.

Text statistics run on the Arrow buffers of the whole batch (Arrow compute plus one Numba pass);
media statistics read file headers only (image size without decoding pixels, container duration
for audio and video), once per distinct path in the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from ..arrow import string_buffers
from ..kernels.text_stats import LANGUAGES, text_stats
from ..media import resolve_media_path
from ..probe import ABSENT, MediaInfo, probe_media
from ..schema import DEFAULT_TOKENS, SpecialTokens
from ._batch import STATS_COLUMN, column, media_counts, merge_stats, num_rows, output, text_column

_LANGUAGE_NAMES = pa.array(LANGUAGES, type=pa.string())

# Stats field -> (MediaInfo attribute, Arrow type), per media column.
_MEDIA_FIELDS = {
    "audios": {"audio_duration": ("duration", pa.float64()), "audio_sample_rate": ("sample_rate", pa.int64()),
               "audio_channels": ("channels", pa.int64()), "audio_codec": ("codec", pa.string())},
    "videos": {"video_duration": ("duration", pa.float64()), "video_width": ("width", pa.int64()),
               "video_height": ("height", pa.int64()), "video_fps": ("frame_rate", pa.float64()),
               "video_codec": ("codec", pa.string())},
}
_UNREADABLE = MediaInfo(kind="", duration=float(ABSENT), codec="", container="")


def image_size(path: str) -> tuple[int, int]:
    """``(width, height)`` of an image from its header (PIL opens lazily; no pixel decode).

    Raises ``OSError`` (or ``PIL.UnidentifiedImageError``) for a missing or unreadable file.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("RGB", (40, 30)).save(path)
        >>> image_size(path)
        (40, 30)
    """
    with Image.open(path) as image:
        return image.size


def media_duration(path: str) -> float:
    """Duration in seconds of an audio or video file, from its container (see
    :func:`hf_mmbuilder.probe.probe_media`, which also gives codec, rates, channels and size).

    Example:
        >>> import tempfile, os, wave
        >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> with wave.open(path, "wb") as out:
        ...     out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)
        ...     out.writeframes(b"\\0\\0" * 4000)
        >>> media_duration(path)
        0.5
    """
    return probe_media(path).duration


@dataclasses.dataclass(frozen=True)
class ComputeStats:
    """Batched ``.map`` op writing per-row statistics into the ``__dj__stats__`` struct column.

    Fields (Data-Juicer's names where it has one): ``text_len`` (characters), ``num_words``,
    ``num_turns`` (role markers such as ``[[human]]:``), ``num_images``/``num_audios``/
    ``num_videos``, ``aligned`` (the media-token counts equal the media list lengths),
    ``lang`` and ``lang_score`` (offline script + stopword detector, see
    :mod:`hf_mmbuilder.kernels.text_stats`), ``word_rep_ratio`` (share of repeated word
    ``ngram``-grams) and, with ``media=True``, ``image_width``/``image_height`` (per image, -1
    when unreadable), per audio file ``audio_duration`` (seconds), ``audio_sample_rate`` (Hz),
    ``audio_channels`` and ``audio_codec``, per video file ``video_duration``, ``video_width``,
    ``video_height``, ``video_fps`` and ``video_codec`` (all from the container, see
    :func:`hf_mmbuilder.probe.probe_media`; -1 or ``""`` when unreadable or absent, such as the
    sample rate of a silent video), and ``media_errors`` (one message per unreadable file). Words, language and
    repetition ignore DJ tokens and role markers. Fields already in ``__dj__stats__`` (such as the
    PII counts) are kept.

    Parameters
    ----------
    media : bool
        Read media headers (I/O per distinct path); ``False`` keeps the op text-only.
    media_root : str, optional
        Folder relative media paths are read from when the dataset has no ``media_root`` column.
    ngram : int
        Word n-gram length of ``word_rep_ratio`` (Data-Juicer's ``rep_len``).
    tokens : SpecialTokens
        The DJ tokens of the dataset.

    Notes
    -----
    Text work is one Numba pass over the UTF-8 bytes (tokens, role markers, words, language,
    repetition together); media work is one header read per distinct path per batch, everything
    else vectorised in Arrow. Picklable and deterministic, so ``datasets``
    fingerprints it and a second identical ``.map`` reuses the cache; works with ``num_proc``.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["[[human]]: what is this? <__dj__image>"],
        ...                         "images": [[]]})
        >>> row = ds.map(ComputeStats(media=False), batched=True)[0]["__dj__stats__"]
        >>> row["num_turns"], row["aligned"], row["lang"]
        (1, False, 'en')
    """

    media: bool = True
    media_root: Optional[str] = None
    ngram: int = 10
    tokens: SpecialTokens = DEFAULT_TOKENS

    def __call__(self, batch):
        text = text_column(batch)
        n = num_rows(batch)
        offsets, data = string_buffers(text)
        token_list = (self.tokens.image, self.tokens.audio, self.tokens.video, self.tokens.eoc)
        measured = text_stats(data, offsets, ngram=self.ngram, tokens=token_list)
        aligned = np.ones(n, dtype=bool)
        counts = {}
        for position, name in enumerate(("images", "audios", "videos")):
            counts[name] = media_counts(batch, name)
            aligned &= measured["token_counts"][:, position] == counts[name]
        fields = {
            "text_len": pc.utf8_length(text).cast(pa.int64()),
            "num_words": pa.array(measured["words"].astype(np.int64)),
            "num_turns": pa.array(measured["turns"].astype(np.int64)),
            "num_images": pa.array(counts["images"].astype(np.int64)),
            "num_audios": pa.array(counts["audios"].astype(np.int64)),
            "num_videos": pa.array(counts["videos"].astype(np.int64)),
            "aligned": pa.array(aligned),
            "lang": _LANGUAGE_NAMES.take(pa.array(measured["language"].astype(np.int32))),
            "lang_score": pa.array(measured["language_score"].astype(np.float64)),
            "word_rep_ratio": pa.array(measured["repetition"].astype(np.float64)),
        }
        if self.media:
            fields.update(self._media_fields(batch, n))
        return output(batch, {STATS_COLUMN: merge_stats(batch, fields)})

    def _media_fields(self, batch, n: int) -> dict[str, pa.Array]:
        roots = column(batch, "media_root")
        row_errors: dict[int, list[str]] = {}
        fields = {}
        for kind in ("images", "audios", "videos"):
            lists = column(batch, kind)
            if lists is None:
                lists = pa.array([[]] * n, type=pa.list_(pa.string()))
            if lists.type != pa.list_(pa.string()):
                lists = lists.cast(pa.list_(pa.string()))
            lists = pc.fill_null(lists, pa.scalar([], type=lists.type)) if lists.null_count else lists
            paths = pc.fill_null(pc.list_flatten(lists), "")
            parents = pc.list_parent_indices(lists)
            item_roots = pc.fill_null(roots.take(parents), self.media_root or "") if roots is not None else pa.repeat(pa.scalar(self.media_root or ""), len(paths))
            # Probe each distinct (root, path) once per batch: rows often share files.
            encoded = pc.binary_join_element_wise(item_roots, paths, "\x00").dictionary_encode()
            probed = [self._probe(kind, key) for key in encoded.dictionary.to_pylist()]
            indices = encoded.indices.to_numpy(zero_copy_only=False)
            list_offsets = lists.offsets.to_numpy()
            list_offsets = pa.array((list_offsets - list_offsets[0]).astype(np.int32))
            if kind == "images":
                sizes = np.array([value for value, _ in probed], dtype=np.int64).reshape(-1, 2)[indices] if probed else np.zeros((0, 2), dtype=np.int64)
                fields["image_width"] = pa.ListArray.from_arrays(list_offsets, pa.array(sizes[:, 0]))
                fields["image_height"] = pa.ListArray.from_arrays(list_offsets, pa.array(sizes[:, 1]))
            else:
                infos = [value for value, _ in probed]
                for name, (attribute, arrow_type) in _MEDIA_FIELDS[kind].items():
                    values = pa.array([getattr(info, attribute) for info in infos], type=arrow_type)
                    fields[name] = pa.ListArray.from_arrays(list_offsets, values.take(pa.array(indices, type=pa.int64())))
            failed = [position for position, (_, message) in enumerate(probed) if message is not None]
            if failed:
                parent_rows = parents.to_numpy(zero_copy_only=False)
                for item in np.flatnonzero(np.isin(indices, failed)).tolist():
                    row_errors.setdefault(int(parent_rows[item]), []).append(probed[indices[item]][1])
        fields["media_errors"] = pa.array([row_errors.get(row, []) for row in range(n)], type=pa.list_(pa.string()))
        return fields

    def _probe(self, kind: str, key: str):
        root, path = key.split("\x00", 1)
        resolved = resolve_media_path(path, root or None)
        try:
            return (image_size(resolved) if kind == "images" else probe_media(resolved)), None
        except Exception as error:  # any decoder failure is a per-file, recorded failure
            failed = (-1, -1) if kind == "images" else _UNREADABLE
            return failed, f"{kind} {path!r} ({resolved}): {type(error).__name__}: {error}"
