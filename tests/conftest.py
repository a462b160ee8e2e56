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
