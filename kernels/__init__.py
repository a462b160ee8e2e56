"""Compiled fast paths: arrays in, arrays out.

Modules here import numpy, numba and faiss only, never ``datasets``; the core wraps them.
Installed as ``hf_mmbuilder.kernels`` (a top-level ``kernels`` package exists in the Hugging Face
ecosystem and must not be shadowed).

Helpers called per byte, number, record or row are compiled with ``_nrt=False`` (they allocate
nothing): with Numba's reference counting on, every call increments and decrements each array
argument's count with atomic instructions, and threads working on the same array bounce that
cache line between cores. Measured here: those two instructions were a third of the MMC4 matrix
parse and a tenth of the LLaVA load; the matrix parse ran 2-3x faster without them. Functions
that allocate keep reference counting and hand their scratch arrays down.

Importing the package (before any kernel module) sets up how they are cached and started: every
kernel's on-disk cache entry is stamped with all the kernel sources (Numba's own stamp is the
function's file alone, so an edited callee in another module ran stale from the cache), and
Numba's once-per-process start-up is spared a scipy.linalg import (``benchmarks/cold_start.py``).
"""

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import sys

from numba.core import caching

_FOLDER = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def sources_digest() -> str:
    """SHA-256 of every kernel module's source, in name order: the stamp all their cache entries share."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_FOLDER)):
        if name.endswith(".py"):
            with open(os.path.join(_FOLDER, name), "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read() + b"\0")
    return digest.hexdigest()


def _kernel_locator(base: type) -> type:
    # Numba stamps a cache entry with its own file's content only, so a kernel that calls (and
    # inlines) a function of another module kept running the old callee after that module changed
    # (a pull into an editable checkout, an upgrade of an install). Every kernel's entry is stamped
    # with all the kernel sources instead: any edit here recompiles the kernels once.
    class KernelLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _FOLDER:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return (super().get_source_stamp(), sources_digest())

    KernelLocator.__name__ = KernelLocator.__qualname__ = f"Kernel{base.__name__}"
    return KernelLocator


def _stamp_with_all_sources() -> None:
    # Ahead of Numba's own locators, in their order (NUMBA_CACHE_DIR, the in-tree __pycache__, the
    # user-wide folder for a read-only install); each claims this folder's functions only.
    if any(cls.__name__.startswith("Kernel") for cls in caching.CacheImpl._locator_classes):
        return
    ours = [_kernel_locator(base) for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator)]
    caching.CacheImpl._locator_classes = ours + caching.CacheImpl._locator_classes


def _scipy_blas_present() -> None:
    """Raise ``ImportError`` unless scipy's ``linalg.cython_blas`` extension is installed, without importing it."""
    scipy = importlib.util.find_spec("scipy")
    folder = os.path.join(scipy.submodule_search_locations[0], "linalg") if scipy is not None else ""
    if not any(os.path.exists(os.path.join(folder, "cython_blas" + suffix)) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        raise ImportError("scipy 0.16+ is required for linear algebra")


def _import_arraymath_without_scipy_linalg() -> None:
    # Numba's first compile or cache load in a process imports numba.np.arraymath, which asks at
    # import whether BLAS is there by importing scipy.linalg: 0.25-0.6 s here (scipy's array-API
    # layer walks every numpy submodule, f2py included), a fifth to a half of every kernel family's
    # cold start, for a yes/no answer. The question is answered from the extension file instead,
    # for that one import; code that really calls BLAS (np.dot in a kernel) still goes through
    # Numba's own check, which imports scipy then.
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.np import linalg

    importing = linalg.ensure_blas
    linalg.ensure_blas = _scipy_blas_present
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = importing


_stamp_with_all_sources()
_import_arraymath_without_scipy_linalg()
