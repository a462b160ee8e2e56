"""Pinned virtual environments: the project's own and the peer tools' (Data-Juicer, ...).

Each environment has a recipe here (what to install, in which order) and a lock file beside this
script (``<name>.lock``: ``pip freeze`` of an environment built from the recipe). Installs read the
lock with ``--no-deps``, so an environment holds exactly the locked versions whatever was released
since; ``refresh`` rebuilds a lock from its recipe when we choose to move.

torch comes first in every recipe, pinned to the CPU wheel on this machine's disk: anything that
admits a newer torch pulls a multi-GB CUDA build.

Standard library only: it runs before any environment exists.

Usage (from the repository root)::

    python -P requirements/venvs.py install project .venv      # what `make test` does
    python -P requirements/venvs.py ensure dj                   # .venv-dj, rebuilt when its lock changes
    python -P requirements/venvs.py refresh project dj          # `make lock`
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PIP_VERSION = "26.3"
TORCH = "torch==2.13.0"
PROJECT_EXTRAS = "dev,bench,vlm,video,ray"

# name -> steps; each step is (pip arguments); "{root}" is the repository root.
RECIPES: dict[str, list[list[str]]] = {
    "project": [
        [TORCH],
        [f"{{root}}[{PROJECT_EXTRAS}]"],
    ],
    # Data-Juicer 1.6.1: its declared dependency set is huge and its lazy loader installs packages at
    # run time, so it goes in without its dependencies, with the ones its formatters, converters and
    # `dj-process` import (DESIGN.md section 7).
    "dj": [
        [TORCH],
        ["--no-deps", "py-data-juicer==1.6.1"],
        ["fire", "jsonlines", "loguru", "tqdm", "psutil", "tomli", "zstandard", "datasets", "pydantic", "aiohttp",
         "regex", "pillow", "numpy", "httpx", "wget", "emoji", "requests", "jsonargparse", "bs4", "tabulate",
         # `dj-process` imports its Ray executor (`@ray.remote` in ray_tracer.py, at import time) even
         # with the default executor; without ray the lazy loader pip-installs it (~80 MB) at start-up.
         "ray"],
    ],
    # LLaMA-Factory's data module (converter, parser, mm_plugin, loader) and the hparams it needs, for
    # tests/peer_scripts/llamafactory_convert.py. Its declared set is large (gradio, torchvision, ...),
    # so it goes in without dependencies, then what those modules import, within the ranges its
    # metadata declares. torchaudio stays out: PyPI's wheels are CUDA builds that cannot load beside
    # the CPU torch (libc10_cuda.so), and mm_plugin uses it for audio only (the script stubs it).
    "llamafactory": [
        [TORCH],
        ["--no-deps", "llamafactory==0.9.5"],
        ["datasets==4.0.0", "transformers>=4.55.0,<=5.6.0,!=4.52.0,!=4.57.0", "peft>=0.18.0,<=0.18.1",
         "accelerate>=1.3.0,<=1.11.0", "trl>=0.18.0,<=0.24.0", "omegaconf", "pillow", "numpy"],
    ],
    # Plain `datasets` 4.0.0 (what LLaMA-Factory's newest release pins), for
    # tests/peer_scripts/datasets_load.py. Nothing in it can pull torch, so no torch step.
    "datasets4": [
        ["datasets==4.0.0", "pillow"],
    ],
}

# Where `ensure` builds each peer environment (the benchmarks and tests look there).
LOCATIONS = {"project": ROOT / ".venv", "dj": ROOT / ".venv-dj", "llamafactory": ROOT / ".venv-llamafactory",
             "datasets4": ROOT / ".venv-datasets4"}


def lock_path(name: str) -> Path:
    return HERE / f"{name}.lock"


def _pip(python: Path, *arguments: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *arguments], check=True)


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def locked_requirements(name: str) -> list[str]:
    """The ``name==version`` lines of a lock file (comments and blanks dropped)."""
    lines = lock_path(name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def install(name: str, venv: Path) -> None:
    """Create ``venv`` (if needed) and install exactly the locked set into it."""
    if not _python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = _python(venv)
    requirements = locked_requirements(name)
    pip_pin = [line for line in requirements if line.startswith("pip==")]
    _pip(python, *pip_pin)
    _pip(python, "--no-deps", "-r", str(lock_path(name)))
    if name == "project":
        _pip(python, "--no-deps", "-e", str(ROOT))
    _check(name, python)


def _canonical(project: str) -> str:
    return project.lower().replace("_", "-").replace(".", "-")


def no_deps_packages(name: str) -> set[str]:
    """The packages a recipe installs with ``--no-deps`` (their declared requirements stay unmet on purpose)."""
    return {_canonical(argument.split("==")[0].split("[")[0])
            for step in RECIPES[name] if "--no-deps" in step for argument in step if not argument.startswith("-")}


def _check(name: str, python: Path) -> None:
    """``pip check``, leaving out what the recipe's ``--no-deps`` packages themselves declare."""
    completed = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    skipped = no_deps_packages(name)
    problems = [line for line in completed.stdout.splitlines()
                if line.strip() and not line.startswith("No broken") and _canonical(line.split()[0]) not in skipped]
    if problems or (completed.returncode and not completed.stdout.strip()):
        raise RuntimeError(f"pip check failed in {python}:\n" + "\n".join(problems or [completed.stderr]))


def ensure(name: str) -> Path:
    """The Python of the peer environment ``name``, built or rebuilt when its lock changed."""
    venv = LOCATIONS[name]
    stamp = venv / ".lock-sha256"
    digest = hashlib.sha256(lock_path(name).read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and _python(venv).exists():
        return _python(venv)
    shutil.rmtree(venv, ignore_errors=True)
    install(name, venv)
    stamp.write_text(digest)
    return _python(venv)


def refresh(name: str) -> None:
    """Resolve the recipe afresh in a scratch venv and write its ``pip freeze`` as the lock."""
    with tempfile.TemporaryDirectory(prefix=f"lock-{name}-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = _python(venv)
        _pip(python, f"pip=={PIP_VERSION}")
        for step in RECIPES[name]:
            _pip(python, *(argument.format(root=ROOT) for argument in step))
        # --all: pip and setuptools too (torch needs a newer setuptools than a new venv brings).
        frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--exclude-editable", "--exclude", "hf_mmbuilder"],
                                check=True, capture_output=True, text=True).stdout
    header = [
        f"# The {name} environment, exactly. Written by `python -P requirements/venvs.py refresh {name}`",
        "# (`make lock`) from the recipe in requirements/venvs.py; do not edit by hand.",
    ]
    lock_path(name).write_text("\n".join(header + sorted(frozen.split(), key=str.lower)) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_parser = commands.add_parser("install", help="install a lock into a venv")
    install_parser.add_argument("name", choices=sorted(RECIPES))
    install_parser.add_argument("venv", type=Path)
    ensure_parser = commands.add_parser("ensure", help="build a peer venv at its place unless its lock is unchanged")
    ensure_parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    refresh_parser = commands.add_parser("refresh", help="re-resolve recipes into their lock files")
    refresh_parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    args = parser.parse_args(argv)
    os.environ["PYTHONSAFEPATH"] = "1"
    if args.command == "install":
        install(args.name, args.venv)
    elif args.command == "ensure":
        for name in args.names:
            print(ensure(name))
    else:
        for name in args.names:
            refresh(name)
            print(f"wrote {lock_path(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
