"""The shared decoder: frames at fixed times and PCM, the same for every container FFmpeg reads."""

import wave

import av
import numpy as np
import pytest

from hf_mmbuilder.frames import MediaDecodeError, decode_audio, sample_video_frames


def _write_ramp(path, container_rate=10, frames=20, codec="mpeg4", size=(32, 16)):
    """Frame i is a flat grey of level 12 * i, shown at i / container_rate seconds."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=container_rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), index * 12, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())


def _levels(sampled):
    return [int(round(frame.mean() / 12)) for frame in sampled.frames]


def test_frames_at_requested_times_including_past_the_end(tmp_path):
    path = tmp_path / "ramp.mp4"
    _write_ramp(path)
    sampled = sample_video_frames(str(path), times=[0.0, 0.55, 1.0, 5.0])
    assert _levels(sampled) == [0, 6, 10, 19]
    assert sampled.times.tolist() == [0.0, 0.6, 1.0, 1.9]


def test_a_reencode_at_another_rate_and_container_gives_the_same_moments(tmp_path):
    original, copy = tmp_path / "a.mp4", tmp_path / "b.mkv"
    _write_ramp(original, container_rate=10, frames=20)
    with av.open(str(copy), "w") as out:
        stream = out.add_stream("mpeg4", rate=20)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for index in range(40):  # the same 2-second ramp at twice the frame rate
            pixels = np.full((16, 32, 3), (index // 2) * 12, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    assert _levels(sample_video_frames(str(original), 5)) == _levels(sample_video_frames(str(copy), 5)) == [2, 6, 10, 14, 18]


def test_shared_clips_decode(shared_data):
    sampled = sample_video_frames(str(shared_data / "media" / "video1.mp4"), 4)
    assert sampled.frames.shape == (4, 360, 640, 3) and sampled.duration == 11.75
    audio = decode_audio(str(shared_data / "media" / "audio3.ogg"), sample_rate=16000)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32 and audio.samples.ndim == 1


def test_stereo_is_downmixed_to_the_channel_mean_and_resampled(tmp_path):
    path = tmp_path / "tone.wav"
    left = np.full(8000, 16384, dtype="<i2")
    right = np.zeros(8000, dtype="<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2); out.setsampwidth(2); out.setframerate(8000)
        out.writeframes(np.stack([left, right], axis=1).tobytes())
    mono = decode_audio(str(path))
    assert mono.samples.shape == (8000,) and np.allclose(mono.samples, 0.25)
    both = decode_audio(str(path), sample_rate=16000, mono=False)
    assert both.samples.shape == (2, 16000) and both.sample_rate == 16000


def test_unreadable_media_raise_an_error_naming_the_file(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    with pytest.raises(MediaDecodeError, match=rf"^{broken}: cannot open the file"):
        sample_video_frames(str(broken))
    still = tmp_path / "still.png"
    from PIL import Image
    Image.new("RGB", (4, 4)).save(still)
    with pytest.raises(MediaDecodeError, match=rf"^{still}: the file has no audio stream$"):
        decode_audio(str(still))


def test_times_in_any_order_within_one_group_of_pictures(tmp_path):
    # One keyframe for the whole clip: every time after the first decodes on, never seeks back.
    path = tmp_path / "long_gop.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10, options={"g": "100"})
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for index in range(20):
            pixels = np.full((16, 32, 3), index * 12, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    sampled = sample_video_frames(str(path), times=[1.5, 0.2, 1.5, 0.9, 7.0])
    assert _levels(sampled) == [15, 2, 15, 9, 19]
    assert sampled.times.tolist() == [1.5, 0.2, 1.5, 0.9, 1.9]
