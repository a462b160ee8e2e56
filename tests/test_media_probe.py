"""Media probing: stats of FLAC/MP3/WAV audio and MP4/WebM/MKV video written here with PyAV equal
what was written (durations within 50 ms, as encoders add priming samples and padding)."""

import av
import numpy as np
import pytest
from datasets import Dataset

from hf_mmbuilder.frames import MediaDecodeError
from hf_mmbuilder.ops import ComputeStats
from hf_mmbuilder.ops._batch import STATS_COLUMN
from hf_mmbuilder.probe import MediaInfo, probe_media

# name -> (codec, sample rate, channels, seconds)
AUDIO = {
    "tone.flac": ("flac", 22050, 2, 2.5),
    "tone.mp3": ("libmp3lame", 44100, 1, 3.25),
    "tone.wav": ("pcm_s16le", 16000, 2, 1.75),
}
# name -> (codec, frames per second, width, height, frames)
VIDEO = {
    "clip.mp4": ("libx264", 25, 160, 96, 50),
    "clip.webm": ("libvpx-vp9", 30, 128, 72, 45),
    "clip.mkv": ("mpeg4", 24, 96, 64, 60),
}


def write_audio(path, codec, rate, channels, seconds):
    layout = "mono" if channels == 1 else "stereo"
    times = np.arange(int(rate * seconds)) / rate
    pcm = np.tile((0.3 * np.sin(2 * np.pi * 440 * times)).astype(np.float32), (channels, 1))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout=layout)
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_video(path, codec, fps, width, height, frames):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[:, : (index * 7) % width] = 200
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    for name, spec in AUDIO.items():
        write_audio(folder / name, *spec)
    for name, spec in VIDEO.items():
        write_video(folder / name, *spec)
    (folder / "broken.mkv").write_bytes(b"\x1aE\xdf\xa3 truncated")
    return folder


def test_probe_reads_what_was_written(media):
    for name, (_, rate, channels, seconds) in AUDIO.items():
        info = probe_media(str(media / name))
        assert (info.kind, info.sample_rate, info.channels, info.width, info.frame_rate) == ("audio", rate, channels, -1, -1.0), name
        assert info.duration == pytest.approx(seconds, abs=0.05), name
    for name, (_, fps, width, height, frames) in VIDEO.items():
        info = probe_media(str(media / name))
        assert (info.kind, info.width, info.height, info.frame_rate, info.sample_rate) == ("video", width, height, fps, -1), name
        assert info.duration == pytest.approx(frames / fps, abs=0.05), name
    assert [probe_media(str(media / name)).codec for name in [*AUDIO, *VIDEO]] == ["flac", "mp3", "pcm_s16le", "h264", "vp9", "mpeg4"]
    assert probe_media(str(media / "clip.webm")).container == "matroska,webm"


def test_probe_of_the_shared_clips(shared_data):
    folder = shared_data / "media"
    assert probe_media(str(folder / "audio3.ogg")) == MediaInfo(
        kind="audio", duration=119.875918, codec="vorbis", container="ogg", sample_rate=22050, channels=1)
    # A video with a sound track: both described.
    assert probe_media(str(folder / "video1.mp4")) == MediaInfo(
        kind="video", duration=11.75, codec="h264", container="mov,mp4,m4a,3gp,3g2,mj2", sample_rate=44100, channels=2,
        width=640, height=360, frame_rate=24.0)


def test_unreadable_file_names_itself(media):
    with pytest.raises(MediaDecodeError, match=rf"^{media / 'broken.mkv'}: cannot open the file"):
        probe_media(str(media / "broken.mkv"))


def test_stats_of_generated_audio_and_video(media):
    audio_names, video_names = list(AUDIO), list(VIDEO)
    ds = Dataset.from_dict({
        "text": ["<__dj__audio>" * 3 + "<__dj__video>" * 3, "<__dj__video>"],
        "audios": [audio_names, []],
        "videos": [video_names, ["broken.mkv"]],
        "media_root": [str(media)] * 2,
    })
    stats = ds.map(ComputeStats(), batched=True)[STATS_COLUMN][:]
    first, second = stats
    assert first["audio_sample_rate"] == [22050, 44100, 16000]
    assert first["audio_channels"] == [2, 1, 2]
    assert first["audio_codec"] == ["flac", "mp3", "pcm_s16le"]
    np.testing.assert_allclose(first["audio_duration"], [2.5, 3.25, 1.75], atol=0.05)
    assert (first["video_width"], first["video_height"]) == ([160, 128, 96], [96, 72, 64])
    assert first["video_fps"] == [25.0, 30.0, 24.0]
    assert first["video_codec"] == ["h264", "vp9", "mpeg4"]
    np.testing.assert_allclose(first["video_duration"], [2.0, 1.5, 2.5], atol=0.05)
    assert first["media_errors"] == []
    # An unreadable file: -1 / "" in its slots and its reason in media_errors, the row kept.
    assert (second["video_duration"], second["video_width"], second["video_codec"]) == ([-1.0], [-1], [""])
    assert second["audio_duration"] == [] and len(second["media_errors"]) == 1
    assert second["media_errors"][0].startswith(f"videos 'broken.mkv' ({media / 'broken.mkv'}): MediaDecodeError: ")
