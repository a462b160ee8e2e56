"""Audio and video near-duplicates: re-encodes of the shared clips (another bitrate, half the size,
another container) are found, the distinct shared clips stay apart; a WAV and its FLAC copy are one
sound."""

import av
import numpy as np
import pytest
from datasets import Dataset

import hf_mmbuilder
from conftest import SHARED_DATA
from hf_mmbuilder.duplicates.recordings import MediaHashError, audio_digest, video_hash_clusters, video_signature
from hf_mmbuilder.kernels.hamming import aligned_matches


def reencode(source, target, codec, *, scale=1.0, bit_rate=None, options=None):
    """Decode every frame of ``source`` and encode it again with ``codec`` (resized by ``scale``)."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        width = int(video.codec_context.width * scale) // 2 * 2
        height = int(video.codec_context.height * scale) // 2 * 2
        stream = out.add_stream(codec, rate=video.average_rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        for frame in inp.decode(video):
            out.mux(stream.encode(frame.reformat(width=width, height=height, format="yuv420p")))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The shared clips by name (video6 is a byte copy of video1) and one re-encode of each,
    encoded once for the module (the shared_data fixture is per test)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (CI places shared/ beside the checkout)")
    folder = tmp_path_factory.mktemp("reencodes")
    media = SHARED_DATA / "media"
    reencode(media / "video1.mp4", folder / "video1_half.mp4", "libx264", scale=0.5, options={"preset": "ultrafast"})
    reencode(media / "video4.mp4", folder / "video4_low.mkv", "mpeg4", bit_rate=150_000)
    reencode(media / "video5.mp4", folder / "video5_half.webm", "libvpx", scale=0.5, bit_rate=200_000,
             options={"deadline": "realtime", "cpu-used": "8"})
    paths = {name: str(media / f"{name}.mp4") for name in ("video1", "video4", "video5", "video6")}
    paths.update({path.stem: str(path) for path in folder.iterdir()})
    return paths


def test_reencodes_are_found_and_distinct_clips_stay_apart(clips):
    order = ["video1", "video4", "video5_half", "video1_half", "video6", "video4_low", "video5"]
    ds = Dataset.from_dict({"text": [f"<__dj__video> clip {name}" for name in order], "videos": [[clips[name]] for name in order]})
    clustered = hf_mmbuilder.dedup(ds, "video_phash", return_clusters=True)
    assert clustered["cluster_id"] == [0, 1, 2, 0, 0, 1, 2]
    kept = hf_mmbuilder.dedup(ds, "video_phash")
    assert [text.split()[-1] for text in kept["text"]] == ["video1", "video4", "video5_half"]


def test_frames_of_a_copy_are_within_a_few_bits_and_of_other_clips_far(clips):
    signatures = np.stack([video_signature(clips[name]) for name in ("video1", "video1_half", "video4", "video5")])
    distances = [[bin(int(a) ^ int(b)).count("1") for a, b in zip(signatures[0], other)] for other in signatures[1:]]
    assert max(distances[0]) <= 4
    assert min(distances[1] + distances[2]) >= 16
    assert aligned_matches(signatures, np.array([0, 0]), np.array([1, 2]), 8).tolist() == [8, 0]


def test_min_matching_and_rows_without_videos(clips):
    ds = Dataset.from_dict({"videos": [[clips["video1"]], [], [clips["video4"], clips["video1_half"]]]})
    assert video_hash_clusters(ds).tolist() == [0, 1, 0]
    # No frame pair is within 0 bits for the half-size copy on every frame: demanding all 8 splits them.
    assert video_hash_clusters(ds, radius=0, min_matching=8).tolist() == [0, 1, 2]


def test_unreadable_video_is_named_or_skipped(clips, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    ds = Dataset.from_dict({"videos": [[clips["video1"]], [str(broken)], [clips["video6"]]]})
    with pytest.raises(MediaHashError, match=rf"^row 1, video 0 \('{broken}'\): {broken}: cannot open the file"):
        hf_mmbuilder.dedup(ds, "video_phash")
    with pytest.warns(UserWarning, match=r"1 video file\(s\) could not be read and were left out \(first: row 1, video 0"):
        labels = hf_mmbuilder.dedup(ds, "video_phash", on_error="skip", return_clusters=True)["cluster_id"]
    assert labels == [0, 1, 0]


def write_tone(path, codec, rate, layout, seconds=1.5, sample_format="s16"):
    times = np.arange(int(rate * seconds)) / rate
    channels = 1 if layout == "mono" else 2
    wave = np.round(0.25 * np.sin(2 * np.pi * 330 * times) * 32767).astype(np.int16)
    pcm = np.tile(wave, (channels, 1)).T.reshape(1, -1)  # packed (interleaved) s16
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_format
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
        frame.sample_rate = rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_a_wav_and_its_flac_copy_are_one_sound(shared_data, tmp_path):
    media = shared_data / "media"
    # The shared WAV's samples, losslessly in FLAC (re-muxed through PyAV: same codec-level samples).
    with av.open(str(media / "audio1.wav")) as inp, av.open(str(tmp_path / "audio1.flac"), "w") as out:
        stream = out.add_stream("flac", rate=44100, layout="stereo")
        stream.format = "s16"
        for frame in inp.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        out.mux(stream.encode(None))
    write_tone(tmp_path / "tone.wav", "pcm_s16le", 22050, "stereo")
    write_tone(tmp_path / "tone.flac", "flac", 22050, "stereo")
    write_tone(tmp_path / "tone_mono.mp3", "libmp3lame", 22050, "mono", sample_format="s16p")
    assert audio_digest(str(media / "audio1.wav")) == audio_digest(str(tmp_path / "audio1.flac"))
    ds = Dataset.from_dict({
        "text": ["a", "b", "c", "d", "e", "f"],
        "audios": [["audio1.wav"], ["audio2.wav"], ["tone.wav"], ["audio1.flac"], ["tone.flac"], ["tone_mono.mp3"]],
        "media_root": [str(media), str(media), str(tmp_path), str(tmp_path), str(tmp_path), str(tmp_path)],
    })
    # The lossy MP3 of the tone is another sound to a PCM digest.
    assert hf_mmbuilder.dedup(ds, "audio_pcm", return_clusters=True)["cluster_id"] == [0, 1, 2, 0, 2, 5]
    assert hf_mmbuilder.dedup(ds, "audio_pcm")["text"] == ["a", "b", "c", "f"]
