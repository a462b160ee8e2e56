"""The sdist and the wheel built from it install and work in a fresh venv, outside the repository.

No editable install: `python -m build` makes the sdist, then the wheel from the unpacked sdist (so a
file missing from the sdist fails here too); the wheel goes into a new venv with the locked
versions of its dependencies, and every command runs from a folder outside the checkout.
"""

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from hf_mmbuilder.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "project.lock"

pytestmark = pytest.mark.integration


def _run(command: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, f"{command}:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    return completed


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    _run([sys.executable, "-P", "-m", "build", "--outdir", dist, ROOT], cwd=dist, env=env)
    wheel, = dist.glob("*.whl")
    sdist, = dist.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed and a working folder outside the repository."""
    base = tmp_path_factory.mktemp("installed")
    venv = base / "venv"
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONSAFEPATH"] = "1"
    _run([sys.executable, "-m", "venv", venv], cwd=base, env=env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "-c", LOCK, built["wheel"]], cwd=base, env=env)
    work = base / "work"
    work.mkdir()
    env["HF_DATASETS_CACHE"] = str(base / "cache")
    return {"bin": venv / "bin", "work": work, "env": env}


def test_the_wheel_holds_only_the_hf_mmbuilder_namespace(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"hf_mmbuilder", "hf_mmbuilder-0.1.0.dist-info"}
    for expected in ("hf_mmbuilder/kernels/minhash.py", "hf_mmbuilder/loading_scripts/llava.py",
                     "hf_mmbuilder/ops/__init__.py", "hf_mmbuilder/synthesis/__init__.py",
                     "hf_mmbuilder/cli/convert.py", "hf_mmbuilder/templates/dataset_card.md.j2",
                     "hf_mmbuilder/inspection/assets/index.html", "hf_mmbuilder/inspection/assets/report.js",
                     "hf_mmbuilder/inspection/assets/report.css"):
        assert expected in names
    assert not [name for name in names if "__pycache__" in name]
    # Every module of the source tree is in the wheel.
    sources = {f"hf_mmbuilder/{path.relative_to(ROOT / 'hf_mmbuilder').as_posix()}" for path in (ROOT / "hf_mmbuilder").rglob("*.py")}
    sources |= {f"hf_mmbuilder/{path.relative_to(ROOT).as_posix()}" for folder in ("kernels", "loading_scripts") for path in (ROOT / folder).rglob("*.py")}
    assert sources <= set(names), sorted(sources - set(names))


def test_the_sdist_holds_the_mapped_folders(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"setup.py", "pyproject.toml", "kernels/minhash.py", "loading_scripts/llava.py", "hf_mmbuilder/ops/pii.py",
            "hf_mmbuilder/templates/dataset_card.md.j2", "hf_mmbuilder/inspection/assets/report.js"} <= names


def test_every_command_helps_from_outside_the_repository(installed):
    cli = installed["bin"] / "hf-mmbuilder"
    top = _run([cli, "--help"], cwd=installed["work"], env=installed["env"]).stdout
    commands = sorted(build_parser()._subparsers._group_actions[0].choices)
    assert commands and all(command in top for command in commands)
    for command in commands:
        text = _run([cli, command, "--help"], cwd=installed["work"], env=installed["env"]).stdout
        assert text.startswith(f"usage: hf-mmbuilder {command}")
    imported = _run([installed["bin"] / "python", "-c", "import importlib.util, hf_mmbuilder.ops, hf_mmbuilder.synthesis, hf_mmbuilder\n"
                     "print(hf_mmbuilder.__file__, importlib.util.find_spec('kernels'), importlib.util.find_spec('loading_scripts'))"],
                    cwd=installed["work"], env=installed["env"]).stdout.split()
    # The package comes from the venv, and it installed no top-level `kernels` or `loading_scripts`.
    assert imported[0].endswith("/site-packages/hf_mmbuilder/__init__.py") and str(ROOT) not in imported[0]
    assert imported[1:] == ["None", "None"]


def test_convert_dedup_export_publish_from_the_wheel(installed):
    work, env, cli = installed["work"], installed["env"], installed["bin"] / "hf-mmbuilder"
    (work / "coco").mkdir()
    for number in range(5):
        Image.new("RGB", (32, 24), (50 * number, 0, 0)).save(work / "coco" / f"{number}.jpg")
    records = [{"id": str(number), "image": f"coco/{number % 5}.jpg",
                "conversations": [{"from": "human", "value": f"<image>\nWhat is shown in picture {number % 5}?"},
                                  {"from": "gpt", "value": f"A red bus number {number % 5}."}]} for number in range(20)]
    (work / "llava.json").write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    _run([cli, "convert", "--from", "llava", "--to", "dj", "llava.json", "dj.jsonl"], cwd=work, env=env)
    assert len((work / "dj.jsonl").read_text(encoding="utf-8").splitlines()) == 20
    _run([cli, "dedup", "--method", "exact", "--column", "text", "dj.jsonl", "unique.jsonl"], cwd=work, env=env)
    unique = [json.loads(line) for line in (work / "unique.jsonl").read_text(encoding="utf-8").splitlines()]
    # 20 records with 5 distinct texts: the first of each text stays.
    assert [row["id"] for row in unique] == ["0", "1", "2", "3", "4"]
    _run([cli, "convert", "--from", "dj", "--to", "llava", "unique.jsonl", "unique.json"], cwd=work, env=env)
    assert json.loads((work / "unique.json").read_text(encoding="utf-8")) == records[:5]
    _run([cli, "publish", "--from", "llava", "--local-dir", "published", "--split-ratio", "train=0.6,test=0.4", "--seed", "0",
          "unique.json"], cwd=work, env=env)
    loaded = _run([installed["bin"] / "python", "-c", "import datasets\n"
                   "splits = datasets.load_dataset('published')\n"
                   "print(sorted((name, split.num_rows) for name, split in splits.items()))"], cwd=work, env=env).stdout
    assert loaded.strip().endswith("[('test', 2), ('train', 3)]")
