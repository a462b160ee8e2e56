"""The package's import rules (issue #14), checked on every ``make test``.

Two kinds of check:

- import-linter runs the contracts of ``[tool.importlinter]`` in pyproject.toml. It walks the
  package folder it finds with ``importlib``, so it runs in a fresh process on a wheel-layout copy
  (``kernels/`` and ``loading_scripts/`` inside ``hf_mmbuilder/``); in this process the already
  imported package would answer instead.
- What import-linter cannot express, read with ``ast`` from the sources: kernels import nothing of
  the package, no module imports another module's underscore names, and modules are imported by a
  name computed at run time only where that is the design.

Each list of known exceptions below must match the sources exactly, so the commit that removes an
exception also deletes its line.
"""

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import hf_mmbuilder
import hf_mmbuilder.kernels
import hf_mmbuilder.loading_scripts
from package_copy import installed_copy

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PACKAGES = (hf_mmbuilder, hf_mmbuilder.kernels, hf_mmbuilder.loading_scripts)

LINT = r"""
import sys
import hf_mmbuilder
assert hf_mmbuilder.__file__.startswith(sys.argv[1]), hf_mmbuilder.__file__
from importlinter.cli import lint_imports
sys.exit(lint_imports(config_filename=sys.argv[2], no_cache=True))
"""

# (importing module, imported module, name): underscore names imported across modules today.
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()

# Modules that import a module by a name computed at run time, and why that is the design.
DYNAMIC_IMPORTS = {
    "hf_mmbuilder.formats.catalog": "loading scripts are plugins, found by format name",
    "hf_mmbuilder.cli": "each command module registers its subcommand",
    "hf_mmbuilder.duplicates.removal": "the Ray engine is found by name, only when asked for",
    "hf_mmbuilder._deprecated": "old module paths resolve to their new homes",
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, from the folders the installed package uses."""
    modules = {}
    for package in PACKAGES:
        folder = Path(package.__path__[0])
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package.__name__, *parts])
            if name.startswith("hf_mmbuilder.kernels.") and package is hf_mmbuilder:
                continue
            modules[name] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path):
    """``(node, imported module, imported name or None)`` for each import of ``name``'s source."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield node, module, alias.name


def test_import_contracts_hold(tmp_path):
    site = installed_copy(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    completed = subprocess.run([sys.executable, "-P", "-c", LINT, str(site), str(PYPROJECT)], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in completed.stdout, completed.stdout[-3000:]


def test_every_module_is_read():
    assert {"hf_mmbuilder", "hf_mmbuilder.ops._batch", "hf_mmbuilder.kernels.minhash", "hf_mmbuilder.loading_scripts.llava"} <= set(MODULES)
    assert all(path.is_file() for path in MODULES.values())


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name.startswith("hf_mmbuilder.kernels")))
def test_kernels_import_nothing_of_the_package_but_kernels(name):
    project = [(node.lineno, module) for node, module, _ in _imports(name, MODULES[name])
               if module.split(".")[0] == "hf_mmbuilder" and not module.startswith("hf_mmbuilder.kernels")]
    assert project == [], f"{MODULES[name]}: kernels import only numpy, numba, faiss and other kernels"


def test_no_module_imports_another_modules_underscore_names():
    found = set()
    for name, path in MODULES.items():
        for node, module, imported in _imports(name, path):
            if imported is None or not imported.startswith("_") or imported.startswith("__"):
                continue
            # A private submodule (`from . import _batch`) is the private-modules contract's business.
            if module in MODULES and module != name and f"{module}.{imported}" not in MODULES:
                found.add((name, module, imported))
    assert found == KNOWN_PRIVATE_IMPORTS, (
        f"new: {sorted(found - KNOWN_PRIVATE_IMPORTS)}; fixed, delete from KNOWN_PRIVATE_IMPORTS: {sorted(KNOWN_PRIVATE_IMPORTS - found)}"
    )


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    function = node.func
    called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    return called in ("import_module", "__import__")


def test_modules_are_imported_by_computed_name_only_where_sanctioned():
    found = {}
    for name, path in MODULES.items():
        lines = [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path))) if _is_dynamic_import(node)]
        if lines:
            found[name] = lines
    assert set(found) == set(DYNAMIC_IMPORTS), (
        f"not sanctioned: { {name: found[name] for name in set(found) - set(DYNAMIC_IMPORTS)} }; "
        f"no longer dynamic, delete from DYNAMIC_IMPORTS: {sorted(set(DYNAMIC_IMPORTS) - set(found))}"
    )


def test_the_compiled_exporter_knows_the_one_kept_raw_key():
    # Kernels import nothing of the package, so the LLaVA exporter keeps its own byte copy of
    # errors.KEPT_RAW_KEY (a kept row's unparsed record, which export must refuse): held equal here.
    from hf_mmbuilder.errors import KEPT_RAW_KEY
    from hf_mmbuilder.kernels import llava_export

    assert bytes(llava_export._KEPT_RAW) == KEPT_RAW_KEY.encode()


def test_the_compiled_llava_paths_know_the_one_key_order_key():
    # Likewise the LLaVA parser (which writes a reordered record's keys) and exporter (which leaves
    # such rows to the careful path) hold byte copies of records.KEY_ORDER_KEY.
    from hf_mmbuilder.formats.records import KEY_ORDER_KEY
    from hf_mmbuilder.kernels import llava_export, llava_parse

    assert bytes(llava_export._KEY_ORDER) == KEY_ORDER_KEY.encode()
    assert bytes(llava_parse._KEY_ORDER_MEMBER) == f'"{KEY_ORDER_KEY}":['.encode()
