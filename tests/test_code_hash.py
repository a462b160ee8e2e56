"""The datasets cache key of a builder covers every project module it runs.

The edits are made on a copy of the installed package (laid out as a wheel installs it) in a fresh
process, so the real sources are never touched.
"""

import json
import os
import subprocess
import sys

import datasets
from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

from hf_mmbuilder.formats import fingerprint, registration
from package_copy import installed_copy

EDIT_AND_HASH = r"""
import json, sys
from pathlib import Path
import hf_mmbuilder
from hf_mmbuilder.formats import fingerprint

assert hf_mmbuilder.__file__.startswith(sys.argv[1]), hf_mmbuilder.__file__
package = Path(hf_mmbuilder.__file__).parent
formats = ["llava", "oasis", "mmc4"]
keys = {"before": {name: fingerprint.code_hash(name) for name in formats}}
for label, relative in [("kernel", "kernels/llava_parse.py"), ("parent_format", "loading_scripts/llava.py"),
                        ("unrelated_kernel", "kernels/kcenter.py")]:
    path = package / relative
    path.write_text(path.read_text() + "\n# edited\n")
    keys[label] = {name: fingerprint.code_hash(name) for name in formats}
print(json.dumps(keys))
"""


def test_editing_a_kernel_or_a_parent_format_changes_the_key(tmp_path):
    site = installed_copy(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    completed = subprocess.run([sys.executable, "-P", "-c", EDIT_AND_HASH, str(site)], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    keys = json.loads(completed.stdout.strip().splitlines()[-1])
    before, kernel, parent, unrelated = keys["before"], keys["kernel"], keys["parent_format"], keys["unrelated_kernel"]
    # llava's compiled parser: llava and oasis (which builds on llava) change.
    assert kernel["llava"] != before["llava"] and kernel["oasis"] != before["oasis"]
    # The parent format's script: oasis changes again.
    assert parent["oasis"] != kernel["oasis"] and parent["llava"] != kernel["llava"]
    # A kernel no builder runs (k-center selection) leaves every key alone.
    assert unrelated == parent


def test_the_key_is_computed_when_a_builder_is_made_not_at_import(tmp_path):
    source = tmp_path / "llava.json"
    source.write_text(json.dumps([{"id": "1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}]))
    assert _PACKAGED_DATASETS_MODULES["hf_mmbuilder/llava"] == ("hf_mmbuilder.loading_scripts.llava", registration.DEFERRED_HASH)
    through_datasets = datasets.load_dataset_builder("hf_mmbuilder/llava", data_files=str(source), cache_dir=str(tmp_path / "cache"))
    assert through_datasets.hash == fingerprint.code_hash("llava")
    assert fingerprint.code_hash("llava") in through_datasets.cache_dir


def test_source_modules_follow_imports_transitively():
    modules = fingerprint.source_modules("hf_mmbuilder.loading_scripts.oasis")
    # oasis -> llava (parent format) -> the compiled parser and exporter -> the JSON scanner they share.
    assert {"hf_mmbuilder.loading_scripts.llava", "hf_mmbuilder.kernels.llava_parse", "hf_mmbuilder.kernels.llava_export",
            "hf_mmbuilder.kernels.json_scan", "hf_mmbuilder.formats.builder", "hf_mmbuilder.schema"} <= set(modules)
    assert "hf_mmbuilder.kernels.kcenter" not in modules
    assert all(path.is_file() and path.suffix == ".py" for path in modules.values())
