"""embed() on video frames (sampled by hf_mmbuilder.frames), audio (CLAP, resampled to the
processor's rate) and SigLIP: equal to a plain transformers forward pass on the same inputs."""

from __future__ import annotations

import wave

import datasets
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="embeddings need the vlm extra")
transformers = pytest.importorskip("transformers", reason="embeddings need the vlm extra")
av = pytest.importorskip("av", reason="video and audio need the video extra (PyAV)")

from PIL import Image  # noqa: E402

import embedding_models  # noqa: E402
import hf_mmbuilder  # noqa: E402
from hf_mmbuilder.errors import RecordError  # noqa: E402
from hf_mmbuilder.frames import decode_audio, sample_video_frames  # noqa: E402


pytestmark = pytest.mark.usefixtures("force_cpu")


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def write_video(path, seed: int, frames: int = 20):
    """An MPEG-4 clip, 10 fps, 48x32, each frame a different noise picture."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for _ in range(frames):
            pixels = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    return str(path)


def write_wav(path, seed: int, rate: int = 16000, seconds: float = 0.75, channels: int = 2):
    samples = (np.random.default_rng(seed).uniform(-0.5, 0.5, (int(rate * seconds), channels)) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return str(path)


def test_video_frames_averaged(tmp_path):
    folder = embedding_models.clip(tmp_path / "clip")
    clips = [write_video(tmp_path / f"{index}.mp4", index) for index in range(3)]
    ds = datasets.Dataset.from_dict({"videos": [[clips[0]], [clips[1], clips[2]]]})
    out = hf_mmbuilder.embed(ds, folder, modality="video", num_frames=4, batch_size=3, progress=False)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)

    def per_video(path):
        frames = [Image.fromarray(frame) for frame in sample_video_frames(path, 4).frames]
        with torch.inference_mode():
            vectors = unit(model.get_image_features(**processor(images=frames, return_tensors="pt")).pooler_output.numpy())
        return unit(vectors.mean(axis=0))

    expected = unit([per_video(clips[0]), (per_video(clips[1]) + per_video(clips[2])) / 2])
    got = np.asarray(out["embedding"])
    assert (np.sum(got * expected, axis=1) >= 0.9999).all()
    assert np.abs(got - expected).max() < 1e-5
    again = np.asarray(hf_mmbuilder.embed(ds, folder, modality="video", num_frames=4, batch_size=1, num_workers=2, progress=False)["embedding"])
    assert np.abs(again - got).max() <= 1e-5


def test_unreadable_video_named(tmp_path):
    folder = embedding_models.clip(tmp_path / "clip")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    ds = datasets.Dataset.from_dict({"videos": [[write_video(tmp_path / "ok.mp4", 0)], ["bad.mp4"]], "media_root": [str(tmp_path)] * 2})
    with pytest.raises(RecordError, match=rf"^{tmp_path}/bad.mp4: record 1: cannot open the file"):
        hf_mmbuilder.embed(ds, folder, modality="video", num_frames=2, progress=False)


def test_audio_resampled_to_the_processors_rate(tmp_path):
    folder = embedding_models.clap(tmp_path / "clap")
    sounds = [write_wav(tmp_path / "a.wav", 0), write_wav(tmp_path / "b.wav", 1, rate=22050, seconds=2.5, channels=1)]
    ds = datasets.Dataset.from_dict({"audios": [[sound] for sound in sounds]})
    model = transformers.AutoModel.from_pretrained(folder).eval()
    extractor = transformers.AutoProcessor.from_pretrained(folder).feature_extractor
    expected = []
    for sound in sounds:
        samples = decode_audio(sound, sample_rate=8000).samples
        np.random.seed(0)  # CLAP's fusion crops of audio longer than its window are random; embed seeds them
        with torch.inference_mode():
            expected.append(model.get_audio_features(**extractor(samples, sampling_rate=8000, return_tensors="pt")).pooler_output.numpy()[0])
    got = np.asarray(hf_mmbuilder.embed(ds, folder, modality="audio", batch_size=2, progress=False)["embedding"])
    assert got.shape == (2, 8)
    assert np.abs(got - unit(expected)).max() < 1e-5
    alone = np.asarray(hf_mmbuilder.embed(ds, folder, modality="audio", batch_size=1, progress=False)["embedding"])
    assert np.abs(alone - got).max() <= 1e-5


def test_siglip_image_and_text(tmp_path):
    folder = embedding_models.siglip(tmp_path / "siglip")
    rng = np.random.default_rng(5)
    pictures = [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(3)]
    texts = ["a red bus", "the cat on the car with a dog", "sky"]
    ds = datasets.Dataset.from_dict({"image": pictures, "text": texts}, features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}))
    model = transformers.AutoModel.from_pretrained(folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(folder)
    with torch.inference_mode():
        images = model.get_image_features(**processor(images=[picture.convert("RGB") for picture in pictures], return_tensors="pt")).pooler_output.numpy()
        tokens = processor.tokenizer(texts, padding="max_length", max_length=16, return_tensors="pt")
        assert list(tokens) == ["input_ids"]
        text = model.get_text_features(**tokens).pooler_output.numpy()
    got = hf_mmbuilder.embed(ds, folder, modality="image", batch_size=2, progress=False)
    assert np.abs(np.asarray(got["embedding"]) - unit(images)).max() < 1e-5
    for size in (1, 3):
        got = hf_mmbuilder.embed(ds, folder, modality="text", batch_size=size, progress=False)
        assert np.abs(np.asarray(got["embedding"]) - unit(text)).max() < 1e-5
