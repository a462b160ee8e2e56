"""``datasets`` features for audio and video that decode through PyAV: :class:`PyAVAudio` and
:class:`PyAVVideo`.

``datasets``' own ``Audio``/``Video`` features decode with torchcodec, which loads FFmpeg's shared
libraries from the system and whose PyPI wheels are CUDA builds that cannot load beside the CPU
torch this project pins. PyAV ships FFmpeg inside its wheel (the ``video`` extra), so these
features decode on any machine the package installs on. They store exactly what ``Audio``/``Video``
store (``{"bytes", "path"}``) and are registered with ``datasets.features.register_feature`` when
``hf_mmbuilder`` is imported, so a decoded dataset survives caching, ``num_proc`` workers and
``save_to_disk``/``load_from_disk`` in any process that imported ``hf_mmbuilder``.

Values decode lazily, on first use, through :mod:`hf_mmbuilder.frames` (the one place media is
decoded) and are described by :func:`hf_mmbuilder.probe.probe_media`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import datasets
from datasets.features.features import register_feature

from .frames import DecodedAudio, MediaDecodeError, VideoFrames, decode_audio, sample_video_frames
from .probe import MediaInfo, probe_media


class _Clip:
    """A media file, by path or by its bytes, opened on demand (never held open)."""

    def __init__(self, path: Optional[str], data: Optional[bytes]):
        self.path = path
        self._bytes = data

    def _source(self):
        return io.BytesIO(self._bytes) if self._bytes is not None else self.path

    def _named(self, read):
        # Bytes are opened as a file object, whose repr names no file: errors name the path the
        # row recorded for them instead.
        try:
            return read(self._source())
        except MediaDecodeError as error:
            if self._bytes is None:
                raise
            raise MediaDecodeError(self.path or "<embedded bytes>", error.reason) from error

    @property
    def metadata(self) -> MediaInfo:
        """Container metadata (duration, codec, rates, size), read without decoding."""
        return self._named(probe_media)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path or '<embedded bytes>'!r})"


class AudioClip(_Clip):
    """One decoded value of a :class:`PyAVAudio` column. ``clip["array"]`` (float32 PCM, the mean
    of the channels, as ``datasets``' audio decoder gives it), ``clip["sampling_rate"]`` and
    ``clip["path"]`` are the keys ``datasets``' ``Audio`` values answer; the PCM is decoded on first
    use and kept. :meth:`decode` gives every channel.
    """

    def __init__(self, path: Optional[str], data: Optional[bytes], sample_rate: Optional[int]):
        super().__init__(path, data)
        self.sample_rate = sample_rate
        self._mono: Optional[DecodedAudio] = None

    def decode(self, *, mono: bool = True) -> DecodedAudio:
        """The PCM, resampled to the feature's ``sampling_rate`` when it has one."""
        if mono and self._mono is not None:
            return self._mono
        decoded = self._named(lambda source: decode_audio(source, sample_rate=self.sample_rate, mono=mono))
        if mono:
            self._mono = decoded
        return decoded

    def __getitem__(self, key: str):
        if key == "array":
            return self.decode().samples
        if key == "sampling_rate":
            return self.decode().sample_rate
        if key == "path":
            return self.path
        raise KeyError(f"{key!r}: an audio value has 'array', 'sampling_rate' and 'path'")


class VideoClip(_Clip):
    """One decoded value of a :class:`PyAVVideo` column: :attr:`metadata` from the container and
    frames sampled at fixed times by :meth:`sample_frames`."""

    def sample_frames(self, num_frames: int = 8, *, times: Optional[Sequence[float]] = None) -> VideoFrames:
        """``num_frames`` RGB frames spread evenly over the video, or the frames shown at ``times``
        (seconds); see :func:`hf_mmbuilder.frames.sample_video_frames`."""
        return self._named(lambda source: sample_video_frames(source, num_frames, times=times))


def _stored(value, kind: str) -> dict:
    """``{"bytes", "path"}`` of a value given to a column (a path, bytes or such a dict)."""
    if isinstance(value, str):
        return {"bytes": None, "path": value}
    if isinstance(value, Path):
        return {"bytes": None, "path": str(value.absolute())}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value), "path": None}
    if isinstance(value, _Clip):
        return {"bytes": value._bytes, "path": value.path}
    if isinstance(value, dict) and (value.get("path") is not None or value.get("bytes") is not None):
        path = value.get("path")
        # As datasets does: a readable local file is stored by path, not duplicated as bytes.
        return {"bytes": None if path and os.path.isfile(path) else value.get("bytes"), "path": path}
    raise ValueError(f"{kind} value is a path, bytes or a dict with 'path' or 'bytes', not {type(value).__name__}")


@dataclasses.dataclass
class PyAVAudio(datasets.Audio):
    """``datasets.Audio`` decoded through PyAV: a row's value is an :class:`AudioClip`.
    ``sampling_rate`` resamples on decode (as ``Audio(sampling_rate=...)`` does).

    Example:
        >>> import os, tempfile, wave
        >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> with wave.open(path, "wb") as out:
        ...     out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)
        ...     out.writeframes(b"\\0\\0" * 800)
        >>> ds = datasets.Dataset.from_dict({"audio": [path]}, features=datasets.Features({"audio": PyAVAudio(sampling_rate=4000)}))
        >>> clip = ds[0]["audio"]
        >>> clip["array"].shape, clip["sampling_rate"], clip.metadata.duration
        ((400,), 4000, 0.1)
    """

    _type: str = dataclasses.field(default="PyAVAudio", init=False, repr=False)

    def encode_example(self, value) -> dict:
        return _stored(value, "an audio")

    def decode_example(self, value, token_per_repo_id=None) -> AudioClip:
        if not self.decode:
            raise RuntimeError("decoding is disabled for this feature: use PyAVAudio(decode=True)")
        if isinstance(value, AudioClip):
            return value
        stored = _stored(value, "an audio")
        return AudioClip(stored["path"], stored["bytes"], self.sampling_rate)


@dataclasses.dataclass
class PyAVVideo(datasets.Video):
    """``datasets.Video`` decoded through PyAV: a row's value is a :class:`VideoClip`.

    Example:
        >>> ds = datasets.Dataset.from_dict({"video": ["/data/clip.mp4"]}, features=datasets.Features({"video": PyAVVideo()}))
        >>> ds[0]["video"]
        VideoClip('/data/clip.mp4')
    """

    _type: str = dataclasses.field(default="PyAVVideo", init=False, repr=False)

    def encode_example(self, value) -> dict:
        return _stored(value, "a video")

    def decode_example(self, value, token_per_repo_id=None) -> VideoClip:
        if not self.decode:
            raise RuntimeError("decoding is disabled for this feature: use PyAVVideo(decode=True)")
        if isinstance(value, VideoClip):
            return value
        stored = _stored(value, "a video")
        return VideoClip(stored["path"], stored["bytes"])


with warnings.catch_warnings():
    # register_feature is marked experimental and warns on every call; the warning says nothing a
    # user of hf_mmbuilder can act on.
    warnings.simplefilter("ignore")
    register_feature(PyAVAudio, "PyAVAudio")
    register_feature(PyAVVideo, "PyAVVideo")
