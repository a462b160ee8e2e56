"""``import hf_mmbuilder`` imports what registration and ``load`` need; the other front doors on first use."""

import subprocess
import sys

import hf_mmbuilder

HEAVY = ("numba", "faiss", "jinja2", "torch", "sklearn", "scipy.linalg", "hf_mmbuilder.kernels")


def _modules_after(statement: str) -> set:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return set(completed.stdout.split())


def test_import_leaves_the_heavy_parts_unimported():
    loaded = _modules_after("import hf_mmbuilder")
    assert [name for name in HEAVY if name in loaded] == []
    assert {"datasets", "hf_mmbuilder.formats.loading", "hf_mmbuilder.decoders"} <= loaded


def test_a_front_door_imports_its_own_parts_on_first_use():
    loaded = _modules_after("import hf_mmbuilder\nhf_mmbuilder.dedup")
    assert [name for name in HEAVY if name in loaded] == ["numba", "hf_mmbuilder.kernels"]


def test_numba_start_up_never_imports_scipy_linalg():
    # Numba's first cache load asks whether BLAS is there; the answer comes from scipy's files.
    loaded = _modules_after(
        "import numpy as np\nfrom hf_mmbuilder.kernels.unionfind import connected_components\n"
        "assert connected_components(3, np.array([0]), np.array([2])).tolist() == [0, 1, 0]\n"
        "import numba.np.arraymath\nassert numba.np.arraymath._HAVE_BLAS"
    )
    assert "numba.np.arraymath" in loaded
    assert "scipy.linalg" not in loaded


def test_every_public_name_resolves_to_its_home():
    from hf_mmbuilder.duplicates import dedup
    from hf_mmbuilder.embedding import embed
    from hf_mmbuilder.formats.exporting import export
    from hf_mmbuilder.inspection import inspect
    from hf_mmbuilder.media import decode_media
    from hf_mmbuilder.publishing import publish
    from hf_mmbuilder.realignment import realign
    from hf_mmbuilder.selection import select
    from hf_mmbuilder.workflow import MultiModalDatasetBuilder

    homes = {"dedup": dedup, "embed": embed, "export": export, "inspect": inspect, "decode_media": decode_media,
             "publish": publish, "realign": realign, "select": select, "MultiModalDatasetBuilder": MultiModalDatasetBuilder}
    assert {name: getattr(hf_mmbuilder, name) for name in homes} == homes
    assert [name for name in hf_mmbuilder.__all__ if name not in dir(hf_mmbuilder)] == []
