"""Media probing: what an audio or video file holds, read from its container through PyAV.

Only headers and stream parameters are read (no frame is decoded), so probing costs one file open
and works for every container FFmpeg reads (WAV, FLAC, MP3, Ogg, MP4/M4A/MOV, WebM, MKV, AVI, ...).
The statistics op, the dataset card and the quality report all describe media through
:func:`probe_media`, so they agree on every number.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .frames import MediaDecodeError

# The values of a measure a file does not have (an audio file's frame rate, a silent video's sample
# rate): numbers, not None, so stats columns stay plain numeric Arrow lists.
ABSENT = -1


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What one audio or video file holds.

    ``kind`` is ``"video"`` when the file has a video stream that is not a cover picture, else
    ``"audio"``. ``duration`` is in seconds; ``codec`` is FFmpeg's canonical name of the main
    stream's codec (the video stream of a video: ``"h264"``, ``"mp3"``, ``"vorbis"``); ``sample_rate`` (Hz) and ``channels`` describe the first audio stream,
    ``width``/``height`` (pixels) and ``frame_rate`` (frames per second) the first video stream;
    a measure the file has no stream for is :data:`ABSENT`. ``container`` is FFmpeg's name of the
    demuxer (``"wav"``, ``"matroska,webm"``, ...).
    """

    kind: str
    duration: float
    codec: str
    container: str
    sample_rate: int = ABSENT
    channels: int = ABSENT
    width: int = ABSENT
    height: int = ABSENT
    frame_rate: float = float(ABSENT)


def _stream_seconds(stream):
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def probe_media(path) -> MediaInfo:
    """Describe the audio or video file at ``path`` (a path, or a binary file object) from its
    container, without decoding frames.

    The duration is the container's (the longest stream, as players show it), or the main stream's
    when the container declares none. Raises :class:`~hf_mmbuilder.frames.MediaDecodeError`, naming
    the file, when it cannot be opened or holds neither audio nor video.

    Example:
        >>> import tempfile, os, wave
        >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
        >>> with wave.open(path, "wb") as out:
        ...     out.setnchannels(2); out.setsampwidth(2); out.setframerate(8000)
        ...     out.writeframes(b"\\0\\0" * 2 * 4000)
        >>> probe_media(path)
        MediaInfo(kind='audio', duration=0.5, codec='pcm_s16le', container='wav', sample_rate=8000, channels=2, width=-1, height=-1, frame_rate=-1.0)
    """
    try:
        import av
    except ImportError as error:
        raise MediaDecodeError(str(path), "probing audio and video needs PyAV: pip install 'hf_mmbuilder[video]'") from error
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError) as error:
        raise MediaDecodeError(str(path), f"cannot open the file: {error}") from error
    with container:
        # A still picture in an audio file (an MP3's cover art) is a video stream to FFmpeg.
        videos = [stream for stream in container.streams.video
                  if not stream.disposition & av.stream.Disposition.attached_pic]
        audio = container.streams.audio[0] if container.streams.audio else None
        video = videos[0] if videos else None
        main = video or audio
        if main is None:
            raise MediaDecodeError(str(path), "the file holds no audio or video stream")
        if container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = _stream_seconds(main)
            if duration is None:
                raise MediaDecodeError(str(path), "neither the container nor its streams declare a duration")
        fields = {}
        if audio is not None:
            fields.update(sample_rate=int(audio.codec_context.sample_rate or ABSENT),
                          channels=int(audio.codec_context.channels or ABSENT))
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            fields.update(width=int(video.codec_context.width), height=int(video.codec_context.height),
                          frame_rate=float(rate) if rate else float(ABSENT))
        return MediaInfo(kind="video" if video is not None else "audio", duration=duration,
                         codec=main.codec_context.codec.canonical_name, container=container.format.name, **fields)


# JPEG start-of-frame markers (baseline, progressive, lossless ...): 0xC0-0xCF except DHT (C4),
# JPG (C8) and DAC (CC), which share the range.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an image from its bytes' header, as ``PIL.Image.open(...).size`` reads it.

    A JPEG's size is read from its start-of-frame segment by walking the segments before it (a few
    microseconds, against Pillow's tenth of a millisecond to parse every header segment: publish
    measures every embedded image this way); other formats, and a JPEG whose segments this walk
    cannot follow, through Pillow. Raises ``OSError`` (Pillow's ``UnidentifiedImageError``) for
    bytes that are no image.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (640, 480)).save(buffer, "JPEG")
        >>> image_size(buffer.getvalue())
        (640, 480)
    """
    # Unsigned bytes whatever the buffer (an Arrow buffer's view holds signed ones).
    data = memoryview(data).cast("B")
    if data[:2] == b"\xff\xd8":
        position, end = 2, len(data)
        while position + 9 <= end and data[position] == 0xFF:
            marker = data[position + 1]
            if marker in _JPEG_FRAME_MARKERS:
                height = int.from_bytes(data[position + 5:position + 7], "big")
                width = int.from_bytes(data[position + 7:position + 9], "big")
                if width and height:
                    return width, height
                break
            if marker == 0xFF:
                # Fill bytes before a marker.
                position += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD9:
                # Markers without a length field.
                position += 2
                continue
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data.tobytes())) as image:
        return image.size


def image_sizes(data, starts, ends):
    """``(width, height)`` of many images from their headers at once, where :func:`image_size`
    would give it from its JPEG walk or from Pillow without a doubt; ``(-1, -1)`` for the others,
    which the caller measures one by one with :func:`image_size` (other formats, headers the
    kernel cannot vouch for, unreadable images: their errors stay :func:`image_size`'s).

    Parameters
    ----------
    data : ndarray of uint8, shape (bytes,)
        The images' bytes (an Arrow binary array's data buffer).
    starts, ends : ndarray of int64, shape (n,)
        Where each image starts and ends in ``data``.

    Returns
    -------
    sizes : ndarray of int64, shape (n, 2)

    Complexity: O(header bytes) per image, compiled (``hf_mmbuilder.kernels.image_header``).

    Example
    -------
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (640, 480)).save(buffer, "JPEG")
    >>> data = np.frombuffer(buffer.getvalue() + b"GIF89a", np.uint8)
    >>> image_sizes(data, np.array([0, data.size - 6]), np.array([data.size - 6, data.size])).tolist()
    [[640, 480], [-1, -1]]
    """
    from PIL import Image

    from .kernels.image_header import PNG, image_sizes as header_sizes

    sizes, kinds = header_sizes(data, starts, ends)
    if Image.MAX_IMAGE_PIXELS is not None:
        # Pillow checks a PNG's pixels when it opens it (a warning above the limit, an error above
        # twice it); its JPEGs are read by the walk, which image_size does not check.
        large = (kinds == PNG) & (sizes[:, 0].astype(np.float64) * sizes[:, 1] > Image.MAX_IMAGE_PIXELS)
        sizes[large] = -1
    return sizes
