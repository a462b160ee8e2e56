"""Every docstring example of the package, the kernels and the loading scripts runs and passes.

Collected from the installed package by module name (``hf_mmbuilder.kernels.minhash``), never from
the repository's folders by path: pytest's own ``--doctest-modules`` on ``kernels/`` would import
that folder as a top-level ``kernels`` package, shadowing Hugging Face's. Each docstring with
examples is one test, so the suite's summary counts them.
"""

import doctest
import importlib
import pkgutil

import pytest

import hf_mmbuilder

PACKAGES = ("hf_mmbuilder", "hf_mmbuilder.kernels", "hf_mmbuilder.loading_scripts")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = set(PACKAGES)
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            names.add(info.name)
    return sorted(names)


def _docstring_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in _module_names():
        module = importlib.import_module(name)
        found.extend(test for test in finder.find(module, name) if test.examples)
    return sorted(found, key=lambda test: test.name)


EXAMPLES = _docstring_examples()


def test_every_module_has_been_searched():
    modules = _module_names()
    assert {"hf_mmbuilder.kernels.minhash", "hf_mmbuilder.loading_scripts.llava", "hf_mmbuilder.ops.pii"} <= set(modules)
    assert len(EXAMPLES) >= 200, f"only {len(EXAMPLES)} docstrings with examples found"


@pytest.mark.parametrize("example", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    result = runner.run(example, out=report.append, clear_globs=False)
    assert result.failed == 0, "".join(report)
