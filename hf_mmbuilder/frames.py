"""Decoded media: video frames sampled at fixed times and audio decoded to PCM, through PyAV.

The one place the package decodes audio and video, so that embeddings, perceptual hashes and
statistics all see the same frames and samples. PyAV ships FFmpeg in its wheel (the ``video``
extra), so every container FFmpeg reads works without system libraries; it is imported on first
use only.

Frames are chosen by time, not by index, so that a re-encoded copy of a clip (another frame rate,
bitrate or container) yields frames of the same moments: for each requested time the decoder seeks
to the keyframe at or before it and decodes forward to the first frame whose presentation time
reaches it.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Optional, Sequence

import numpy as np


class MediaDecodeError(ValueError):
    """A media file cannot be opened or decoded; the message starts with the file's path."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class VideoFrames:
    """Frames of one video: ``frames`` uint8 ``[n, height, width, 3]`` (RGB), ``times`` float64
    ``[n]`` (presentation time of each frame, seconds), ``duration`` (seconds)."""

    frames: np.ndarray
    times: np.ndarray
    duration: float


@dataclasses.dataclass(frozen=True)
class DecodedAudio:
    """PCM of one audio file: ``samples`` float32 ``[num_samples]`` (mono) or
    ``[channels, num_samples]``, in [-1, 1]; ``sample_rate`` in Hz."""

    samples: np.ndarray
    sample_rate: int


def _pyav(path: str):
    try:
        import av
    except ImportError as error:
        raise MediaDecodeError(path, "decoding audio and video needs PyAV: pip install 'hf_mmbuilder[video]'") from error
    return av


def _open(path: str):
    av = _pyav(path)
    try:
        return av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise MediaDecodeError(path, f"cannot open the file: {error}") from error


def _video_duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def sample_video_frames(path: str, num_frames: int = 8, *, times: Optional[Sequence[float]] = None) -> VideoFrames:
    """Decode the frames of the video at ``path`` shown at ``times`` (seconds), or at ``num_frames``
    times spread evenly over its duration (the middle of ``num_frames`` equal parts).

    Each frame is the first one whose presentation time is at or after the requested time (the
    last frame when the time is past the end). Times are visited in increasing order: the decoder
    seeks to the keyframe before a time only when that keyframe lies past the frame decoded last,
    else decodes on, so the cost is at most one group of pictures per frame and never more than one
    decode of the file (a list of keyframe times, read from the packets, guides the seeks). Times are returned as
    decoded, so callers can tell when two requests landed on the same frame.

    Example:
        >>> import tempfile, os, av
        >>> path = os.path.join(tempfile.mkdtemp(), "ramp.mp4")
        >>> with av.open(path, "w") as out:
        ...     stream = out.add_stream("mpeg4", rate=10)
        ...     stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        ...     for i in range(20):
        ...         pixels = np.full((16, 32, 3), i * 12, dtype=np.uint8)
        ...         out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        ...     out.mux(stream.encode())
        >>> sampled = sample_video_frames(path, 4)
        >>> sampled.frames.shape, sampled.times.tolist(), sampled.duration
        ((4, 16, 32, 3), [0.3, 0.8, 1.3, 1.8], 2.0)
        >>> [int(round(frame.mean() / 12)) for frame in sampled.frames]
        [3, 8, 13, 18]
    """
    container = _open(path)
    av = _pyav(path)
    try:
        if not container.streams.video:
            raise MediaDecodeError(path, "the file has no video stream")
        stream = container.streams.video[0]
        duration = _video_duration(container, stream)
        if times is None:
            if num_frames < 1:
                raise ValueError(f"num_frames must be at least 1, got {num_frames}")
            times = [(index + 0.5) * duration / num_frames for index in range(num_frames)]
        frames, shown = _frames_at(container, stream, [float(wanted) for wanted in times], path)
    except av.FFmpegError as error:
        raise MediaDecodeError(path, f"cannot decode the video: {error}") from error
    finally:
        container.close()
    return VideoFrames(np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8),
                       np.asarray(shown, dtype=np.float64), duration)


def _keyframe_ticks(container, stream) -> list:
    """Presentation times (stream ticks, sorted) of the stream's keyframes, read from the packets
    alone (no decoding); the container is left at its start."""
    ticks = [packet.pts for packet in container.demux(stream) if packet.is_keyframe and packet.pts is not None]
    container.seek(0, stream=stream, backward=True, any_frame=False)
    return sorted(ticks)


def _frames_at(container, stream, times: list, path: str) -> tuple:
    """For each time, the first frame shown at or after it (the last frame when none is), as RGB
    arrays and presentation times, in the order of ``times``.

    Times are visited in increasing order on one decoder, which seeks only when the keyframe before
    the next time lies beyond the frame decoded last: when two times fall in one group of pictures
    (a long one, as H.264 encoders write), decoding goes on instead of seeking back to the group's
    keyframe and decoding it again, so no frame is decoded twice.
    """
    keyframes = _keyframe_ticks(container, stream)
    half_tick = float(stream.time_base) / 2
    start = stream.start_time or 0
    decoded = None  # the decoder after the last seek
    last = None  # the frame decoded last
    found = {}
    for position in sorted(range(len(times)), key=times.__getitem__):
        seconds = times[position]
        target = int(seconds / stream.time_base) + start
        before = bisect.bisect_right(keyframes, target) - 1
        if decoded is None or last is None or before < 0 or keyframes[before] > last.pts:
            container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
            decoded, last = container.decode(stream), None
        # A half-tick tolerance: times are requested in seconds and rounded to the stream's ticks.
        if last is None or last.time + half_tick < seconds:
            for frame in decoded:
                if frame.pts is None:
                    continue
                last = frame
                if frame.time + half_tick >= seconds:
                    break
        if last is None:
            raise MediaDecodeError(path, f"no frame could be decoded at {seconds:.3f} s")
        found[position] = last
    arrays = {}  # a frame that answers several times is converted once
    for frame in found.values():
        if id(frame) not in arrays:
            arrays[id(frame)] = frame.to_ndarray(format="rgb24")
    return [arrays[id(found[k])] for k in range(len(times))], [float(found[k].time) for k in range(len(times))]


def decode_audio(path: str, *, sample_rate: Optional[int] = None, mono: bool = True) -> DecodedAudio:
    """Decode the first audio stream of ``path`` to float32 PCM, resampled to ``sample_rate`` (Hz)
    when given, downmixed to one channel (the mean of the channels) when ``mono``.

    The samples are the same for one sound in any container or bit depth FFmpeg reads (up to the
    codec's own loss), which is what makes PCM digests and audio embeddings container-blind.

    Example:
        >>> import tempfile, os, wave
        >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
        >>> with wave.open(path, "wb") as out:
        ...     out.setnchannels(2); out.setsampwidth(2); out.setframerate(8000)
        ...     out.writeframes(np.full(8000 * 2, 16384, dtype="<i2").tobytes())
        >>> audio = decode_audio(path)
        >>> audio.samples.shape, audio.sample_rate, float(audio.samples[0])
        ((8000,), 8000, 0.5)
        >>> decode_audio(path, sample_rate=4000, mono=False).samples.shape
        (2, 4000)
    """
    container = _open(path)
    av = _pyav(path)
    try:
        if not container.streams.audio:
            raise MediaDecodeError(path, "the file has no audio stream")
        stream = container.streams.audio[0]
        rate = sample_rate or stream.rate
        if not rate:
            raise MediaDecodeError(path, "the audio stream declares no sample rate")
        # Downmixed here, as the mean of the channels, not by FFmpeg's matrix (which scales
        # stereo by 1/sqrt(2)): the mean is what every decoder agrees on.
        resampler = av.AudioResampler(format="fltp", rate=rate)
        chunks = []
        for frame in container.decode(stream):
            chunks.extend(resampled.to_ndarray() for resampled in resampler.resample(frame))
        chunks.extend(resampled.to_ndarray() for resampled in resampler.resample(None))
    except av.FFmpegError as error:
        raise MediaDecodeError(path, f"cannot decode the audio: {error}") from error
    finally:
        container.close()
    if not chunks:
        raise MediaDecodeError(path, "the audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return DecodedAudio(samples.mean(axis=0, dtype=np.float32) if mono else samples, int(rate))
