"""The suite runs against the installed package and the locked environment.

The repository's top-level ``kernels/`` folder is ``hf_mmbuilder.kernels``; run from the repository
root with the root on ``sys.path`` it would shadow Hugging Face's ``kernels`` package, which
``transformers`` imports. ``make test`` runs Python with ``-P`` and exports ``PYTHONSAFEPATH=1``
(conftest.py sets it too), so neither the suite nor the processes it starts put the root there.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import hf_mmbuilder.kernels

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "project.lock"


def _inside_repository(path) -> bool:
    return Path(path).resolve().is_relative_to(ROOT) and ".venv" not in Path(path).resolve().relative_to(ROOT).parts[:1]


def test_the_repository_root_is_not_on_sys_path():
    assert not [entry for entry in sys.path if Path(entry or os.getcwd()).resolve() == ROOT]


def test_kernels_is_hugging_faces_package_and_ours_is_namespaced():
    spec = importlib.util.find_spec("kernels")
    assert spec is not None and "site-packages" in spec.origin and not _inside_repository(spec.origin)
    assert hf_mmbuilder.kernels.__name__ == "hf_mmbuilder.kernels"
    shadowing = [name for name, module in list(sys.modules.items())
                 if (name == "kernels" or name.startswith("kernels.")) and _inside_repository(getattr(module, "__file__", None) or "/")]
    assert shadowing == []


def test_a_process_started_from_the_repository_root_sees_the_installed_kernels():
    # What the demo, the README's examples and the CLI tests do: `python -c/-m` with cwd = root.
    completed = subprocess.run([sys.executable, "-c", "import kernels, sys; print(kernels.__file__)"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "site-packages/kernels/__init__.py" in completed.stdout


def test_transformers_model_code_runs_beside_the_kernels_package():
    # transformers imports `kernels` (hub_kernels) when the package is installed; the shadowing bug
    # broke exactly this with "cannot import name 'CUDAProperties' from 'kernels'".
    code = (
        "import torch, transformers, kernels\n"
        "from transformers.integrations import hub_kernels\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "assert transformers.utils.import_utils.is_kernels_available()\n"
        "config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,\n"
        "                     num_attention_heads=2, num_key_value_heads=2)\n"
        "torch.manual_seed(0)\n"
        "logits = LlamaForCausalLM(config)(torch.tensor([[1, 2, 3]])).logits\n"
        "print(tuple(logits.shape))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "(1, 3, 64)"


def _normalised(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{name.lower().replace('_', '-').replace('.', '-')}=={version}"


def test_the_environment_is_exactly_the_lock():
    locked = {_normalised(line.strip()) for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")}
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], capture_output=True, text=True,
                            check=True).stdout.split()
    installed = {_normalised(line) for line in frozen}
    assert installed == locked, {"not locked": sorted(installed - locked), "missing": sorted(locked - installed)}
