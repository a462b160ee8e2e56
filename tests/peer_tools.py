"""Run real peer tools (Data-Juicer, LLaMA-Factory, ``datasets`` 4.0) in their own pinned venvs.

Each peer has a recipe and a lock in ``requirements/`` and a place (``.venv-dj``,
``.venv-llamafactory``, ``.venv-datasets4``); ``requirements/venvs.py``'s ``ensure`` builds it from the
lock, or returns at once when its stamp matches the lock. Tests use::

    from peer_tools import peer_python, peer_executable, run_peer_script

    report = run_peer_script("datasets4", "datasets_load.py", folder)        # parsed JSON
    report = run_peer_script("llamafactory", "llamafactory_convert.py", data, info)
    report = run_peer_script("dj", "dj_process.py", data, export, ops_json)

A venv is ensured at most once per test session (per process). A test is skipped only when the venv
cannot be built for a reason outside the code (no network to PyPI, full disk), with pip's own words;
any other build failure (a bad lock, a broken ``pip check``) fails the test.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "peer_scripts"
VENVS_PY = ROOT / "requirements" / "venvs.py"

# What pip prints when the index (or the disk) is out of reach: the only reasons to skip.
_ENVIRONMENTAL = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "Connection refused", "ConnectTimeoutError",
    "ReadTimeoutError", "Read timed out", "ProxyError", "SSLError", "No space left on device",
)

_built: dict[str, Path] = {}
_unbuildable: dict[str, str] = {}


@functools.cache
def venvs():
    """``requirements/venvs.py`` as a module, loaded by path (the repository root stays off sys.path)."""
    spec = importlib.util.spec_from_file_location("_hf_mmbuilder_requirements_venvs", VENVS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peer_python(name: str) -> Path:
    """The Python of peer venv ``name``, built from its lock on first use in this session."""
    if name in _built:
        return _built[name]
    if name in _unbuildable:
        pytest.skip(_unbuildable[name])
    module = venvs()
    place = str(module.LOCATIONS[name])
    # One builder at a time per venv, across processes (two suites, or xdist workers).
    guard = Path(tempfile.gettempdir()) / f"hf_mmbuilder-venv-{hashlib.sha256(place.encode()).hexdigest()[:16]}.lock"
    with open(guard, "w") as guard_file, tempfile.TemporaryFile(mode="w+b") as output:
        fcntl.flock(guard_file, fcntl.LOCK_EX)
        # pip runs as a child writing to fd 1/2: route those into a file to read its reasons back.
        saved = os.dup(1), os.dup(2)
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        try:
            python = module.ensure(name)
            error = None
        except (subprocess.CalledProcessError, OSError, RuntimeError) as caught:
            error = caught
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    if error is None:
        _built[name] = python
        return python
    lines = [line for line in text.splitlines() if "WARNING: Location 'file:" not in line]
    tail = "\n".join(lines[-25:])
    probe = _index_unreachable(text)
    if any(marker in text or marker in str(error) for marker in _ENVIRONMENTAL) or probe:
        _unbuildable[name] = (f"peer venv {name!r} cannot be built here ({type(error).__name__}): {tail[-1500:]}"
                              + (f"\npip, asked again: {probe}" if probe else ""))
        pytest.skip(_unbuildable[name])
    raise AssertionError(f"building peer venv {name!r} at {place} failed: {error}\n{tail}")


def _index_unreachable(pip_output: str) -> str | None:
    """Whether "No matching distribution" came from an index out of reach rather than a bad pin.

    The recipes run pip with ``--quiet``, which hides its connection warnings; ask pip again, loudly,
    for the one requirement it could not find, and look for them.
    """
    match = re.search(r"No matching distribution found for (\S+)", pip_output)
    if not match:
        return None
    with tempfile.TemporaryDirectory(prefix="peer-probe-") as scratch:
        probe = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", scratch,
                                "--retries", "1", "--timeout", "15", match.group(1)],
                               capture_output=True, text=True, timeout=300)
    if probe.returncode == 0:
        return None
    said = [line.strip() for line in (probe.stdout + probe.stderr).splitlines()
            if any(marker in line for marker in _ENVIRONMENTAL)]
    return said[0][:500] if said else None


def peer_executable(name: str, program: str) -> Path:
    """A console script of peer venv ``name`` (``peer_executable("dj", "dj-process")``)."""
    path = peer_python(name).parent / program
    assert path.exists(), f"{program} not found in {path.parent}"
    return path


def peer_env(**extra: str) -> dict[str, str]:
    """The environment peer processes run with: offline, no PYTHONPATH, the root never on sys.path."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_peer_script(name: str, script: str, *args, timeout: float = 600, env: dict[str, str] | None = None) -> dict:
    """Run ``tests/peer_scripts/<script>`` in peer venv ``name`` (``python -P``); its stdout's JSON."""
    python = peer_python(name)
    command = [str(python), "-P", str(SCRIPTS / script), *(str(argument) for argument in args)]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                   cwd=tempfile.gettempdir(), env=peer_env(**(env or {})))
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr.decode("utf-8", "replace") if isinstance(expired.stderr, bytes) else expired.stderr
        raise AssertionError(f"{script} in {name} timed out after {timeout} s\n{(stderr or '')[-4000:]}") from None
    if completed.returncode != 0:
        raise AssertionError(f"{script} in {name} exited {completed.returncode}\n{completed.stderr[-4000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"{script} in {name} printed no JSON\nstdout: {completed.stdout[-2000:]}\n"
                             f"stderr: {completed.stderr[-4000:]}") from None
