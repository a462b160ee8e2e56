"""Numba's on-disk cache of the kernels: an edited callee in another kernel module is never run stale.

Numba stamps a cached function with its own file's content only; ``hf_mmbuilder.kernels`` stamps
every kernel's entry with all the kernel sources. Each test works on a temporary copy of the
kernels package (its ``__init__``, plus a caller and a callee module written here), run in fresh
processes as a user's second call would be.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hf_mmbuilder.kernels

CALLER = """
import numba
from .callee import step


@numba.njit(cache=True)
def advance(x):
    return step(x) * 10
"""

CALLEE = """
import numba


@numba.njit(cache=True)
def step(x):
    return x + {increment}
"""

# Numba names index files by function, line and interpreter (callee.step-5.py311.nbi).
TAG = f"py{sys.version_info.major}{sys.version_info.minor}"

RUN = "import sys; sys.path.insert(0, sys.argv[1]); from copied_kernels.caller import advance; print(advance(1))"


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "copied_kernels"
    package.mkdir()
    shutil.copy(Path(hf_mmbuilder.kernels.__file__), package / "__init__.py")
    (package / "caller.py").write_text(CALLER)
    (package / "callee.py").write_text(CALLEE.format(increment=1))
    return package


def _advance(tmp_path: Path, **env) -> str:
    completed = subprocess.run([sys.executable, "-P", "-c", RUN, str(tmp_path)], capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=600)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def _cache_files(package: Path) -> list[str]:
    return sorted(name for name in os.listdir(package / "__pycache__") if name.endswith((".nbi", ".nbc")))


def test_an_edited_callee_recompiles_its_cached_caller(tmp_path):
    package = _package(tmp_path)
    assert _advance(tmp_path) == "20"
    # The first run wrote both functions' entries: the second run would load them.
    assert [name for name in _cache_files(package) if name.endswith(".nbi")] == [f"callee.step-5.{TAG}.nbi", f"caller.advance-6.{TAG}.nbi"]
    (package / "callee.py").write_text(CALLEE.format(increment=2))
    assert _advance(tmp_path) == "30"


def test_numba_alone_runs_the_stale_callee(tmp_path):
    # The behaviour the stamp fixes, with Numba's own locator chosen explicitly: the caller's entry
    # still matches its unchanged file, and it inlined the old callee.
    package = _package(tmp_path)
    numba_only = {"NUMBA_CACHE_LOCATOR_CLASSES": "InTreeCacheLocator"}
    assert _advance(tmp_path, **numba_only) == "20"
    (package / "callee.py").write_text(CALLEE.format(increment=2))
    assert _advance(tmp_path, **numba_only) == "20"


def test_an_unchanged_copy_loads_from_the_cache(tmp_path):
    package = _package(tmp_path)
    assert _advance(tmp_path) == "20"
    written = {name: (package / "__pycache__" / name).stat().st_mtime_ns for name in _cache_files(package)}
    assert _advance(tmp_path) == "20"
    assert {name: (package / "__pycache__" / name).stat().st_mtime_ns for name in _cache_files(package)} == written
