"""Package discovery for the wheel and sdist (the metadata is in pyproject.toml).

Everything installs under ``hf_mmbuilder``: the top-level ``kernels/`` and ``loading_scripts/``
folders become ``hf_mmbuilder.kernels`` and ``hf_mmbuilder.loading_scripts``. Neither may ever
install as a top-level package: ``kernels`` would clobber Hugging Face's package of that name in
site-packages. Subpackages are found, never listed by hand, so a new folder cannot be left out.
"""

from setuptools import find_namespace_packages, setup

MAPPED_FOLDERS = {"kernels": "hf_mmbuilder.kernels", "loading_scripts": "hf_mmbuilder.loading_scripts"}
NOT_PACKAGES = ["*.__pycache__", "__pycache__"]

packages = find_namespace_packages(include=["hf_mmbuilder", "hf_mmbuilder.*"], exclude=NOT_PACKAGES)
package_dir = {}
for folder, package in MAPPED_FOLDERS.items():
    package_dir[package] = folder
    packages += [package] + [f"{package}.{sub}" for sub in find_namespace_packages(where=folder, exclude=NOT_PACKAGES)]

setup(packages=packages, package_dir=package_dir)
