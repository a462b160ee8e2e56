"""Shared fixtures: the real public samples beside the checkout, and an isolated datasets cache."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Every Python process the tests start (`python -c`, `-m hf_mmbuilder...`, Ray workers), often with
# the repository root as its folder, keeps that folder off sys.path: the root's `kernels/` must never
# shadow Hugging Face's `kernels` package (test_environment.py). `make test` exports it as well.
os.environ["PYTHONSAFEPATH"] = "1"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real public records); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (CI places shared/ beside the checkout)")
    return SHARED_DATA


@pytest.fixture
def cache_dir(tmp_path) -> str:
    """A fresh datasets cache folder, so tests never reuse each other's Arrow files."""
    path = tmp_path / "hf_cache"
    path.mkdir()
    return str(path)


@pytest.fixture
def force_cpu(monkeypatch):
    """``FORCE_CPU=1`` for one test: every model stays on the CPU, whatever the machine has."""
    from hf_mmbuilder.models import FORCE_CPU_VARIABLE

    monkeypatch.setenv(FORCE_CPU_VARIABLE, "1")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny CLIP (random weights) and its processor, saved once per test module."""
    import embedding_models

    return embedding_models.clip(tmp_path_factory.mktemp("clip") / "model")

