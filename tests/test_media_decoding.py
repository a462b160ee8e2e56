"""decode_media on audio and video: rows decode through PyAV (no torchcodec, no system FFmpeg)."""

import importlib.util
import wave

import datasets
import numpy as np
import pytest

import hf_mmbuilder
from hf_mmbuilder.decoders import AudioClip, PyAVAudio, PyAVVideo, VideoClip
from hf_mmbuilder.frames import MediaDecodeError


def _shared_rows(shared_data):
    return datasets.Dataset.from_dict({
        "text": ["<__dj__audio> <__dj__audio> <__dj__video>"],
        "audios": [["audio1.wav", "audio3.ogg"]],
        "videos": [["video1.mp4"]],
        "media_root": [str(shared_data / "media")],
    })


def test_shared_wav_ogg_and_mp4_decode_from_a_row(shared_data, cache_dir):
    decoded = hf_mmbuilder.decode_media(_shared_rows(shared_data))
    assert decoded.features["audios"] == datasets.List(PyAVAudio())
    assert decoded.features["videos"] == datasets.List(PyAVVideo())
    row = decoded[0]
    wav, ogg = row["audios"]
    assert isinstance(wav, AudioClip) and wav["path"] == str(shared_data / "media" / "audio1.wav")
    # 5.5 s of 44.1 kHz stereo and 119.9 s of 22.05 kHz mono (SOURCES.md), every sample decoded.
    assert (wav["array"].shape, wav["array"].dtype, wav["sampling_rate"]) == ((242624,), np.float32, 44100)
    assert (ogg["array"].shape, ogg["sampling_rate"]) == ((2643264,), 22050)
    assert wav.decode(mono=False).samples.shape == (2, 242624)
    # The mono array is the mean of the channels, as datasets' own audio decoder gives it.
    np.testing.assert_allclose(wav["array"], wav.decode(mono=False).samples.mean(axis=0), atol=1e-7)
    video = row["videos"][0]
    assert isinstance(video, VideoClip)
    sampled = video.sample_frames(4)
    assert sampled.frames.shape == (4, 360, 640, 3) and sampled.duration == 11.75
    assert video.metadata.width == 640 and video.metadata.frame_rate == 24.0


def test_sampling_rate_resamples_on_decode(shared_data):
    features = datasets.Features({"audio": PyAVAudio(sampling_rate=16000)})
    ds = datasets.Dataset.from_dict({"audio": [str(shared_data / "media" / "audio1.wav")]}, features=features)
    clip = ds[0]["audio"]
    assert clip["sampling_rate"] == 16000
    # 242624 samples at 44.1 kHz are 5.501678 s: 88026.8, rounded up by the resampler's flush.
    assert clip["array"].shape == (88027,)


def test_decoded_dataset_reloads_with_its_features(shared_data, tmp_path, cache_dir):
    decoded = hf_mmbuilder.decode_media(_shared_rows(shared_data))
    decoded.save_to_disk(str(tmp_path / "saved"))
    reloaded = datasets.load_from_disk(str(tmp_path / "saved"))
    assert reloaded.features["audios"] == datasets.List(PyAVAudio())
    assert reloaded[0]["audios"][1]["sampling_rate"] == 22050
    # Embedded bytes (what push_to_hub and publishing store) decode as well as paths.
    data = (shared_data / "media" / "audio1.wav").read_bytes()
    embedded = datasets.Dataset.from_dict({"audio": [{"bytes": data, "path": "audio1.wav"}]},
                                          features=datasets.Features({"audio": PyAVAudio()}))
    assert embedded[0]["audio"]["array"].shape == (242624,)


def test_unreadable_audio_names_the_file(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    ds = datasets.Dataset.from_dict({"audio": [{"bytes": broken.read_bytes(), "path": "broken.wav"}]},
                                    features=datasets.Features({"audio": PyAVAudio()}))
    with pytest.raises(MediaDecodeError, match=r"^broken\.wav: cannot open the file"):
        ds[0]["audio"]["array"]
    with pytest.raises(MediaDecodeError, match=rf"^{broken}: cannot open the file"):
        AudioClip(str(broken), None, None)["array"]


def test_decode_media_without_pyav_says_what_to_install_when_called(shared_data, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "av" else find_spec(name, *args))
    with pytest.raises(ImportError, match=r"needs PyAV.*pip install 'hf_mmbuilder\[video\]'"):
        hf_mmbuilder.decode_media(_shared_rows(shared_data))
    # Images alone need no PyAV.
    images = datasets.Dataset.from_dict({"images": [["img1.png"]], "media_root": [str(shared_data / "media")]})
    assert hf_mmbuilder.decode_media(images)[0]["images"][0].size == (336, 336)


def test_values_written_as_paths_bytes_or_dicts_are_stored_as_datasets_stores_them(tmp_path):
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
        out.writeframes(b"\0\0" * 80)
    feature = PyAVAudio()
    assert feature.encode_example(str(path)) == {"bytes": None, "path": str(path)}
    assert feature.encode_example({"path": str(path), "bytes": b"x"}) == {"bytes": None, "path": str(path)}
    assert feature.encode_example(b"abc") == {"bytes": b"abc", "path": None}
    with pytest.raises(ValueError, match="an audio value is a path, bytes or a dict"):
        feature.encode_example(3)
