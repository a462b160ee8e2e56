"""Old module paths and keyword names keep working for one release, each with a FutureWarning.

Each old path is imported in a fresh process: a module is imported once per process, so only a
fresh one sees the warning, and the imports of other tests cannot hide it.
"""

import json
import subprocess
import sys
import types
import warnings

import pytest

import hf_mmbuilder
from hf_mmbuilder import _deprecated

IMPORT_OLD_PATH = r"""
import importlib, json, sys, warnings
old = sys.argv[1]
origin = importlib.util.find_spec(old).origin
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    exec(f"import {old}")
    import hf_mmbuilder
    from hf_mmbuilder import _deprecated
    new = _deprecated.MOVED[old]
    targets = [new] if isinstance(new, str) else list(new)
    module = sys.modules[old]
    print(json.dumps({
        "warnings": [[w.category.__name__, str(w.message), w.filename] for w in caught if issubclass(w.category, FutureWarning)],
        "identical": isinstance(new, str) and module is importlib.import_module(new),
        "names_found": all(all(hasattr(module, name) for name in dir(importlib.import_module(t)) if not name.startswith("_"))
                           for t in targets),
        "front_doors": {name: type(getattr(hf_mmbuilder, name)).__name__ for name in sorted(_deprecated.FRONT_DOORS)},
        "origin": origin,
        "new_origins": [importlib.util.find_spec(t).origin for t in targets],
    }))
"""

# A stand-in row: the machinery is tested even while MOVED is empty.
TEST_ROWS = r"""
import sys, warnings
from hf_mmbuilder import _deprecated
_deprecated.MOVED.update({"hf_mmbuilder.old_schema": "hf_mmbuilder.schema", "hf_mmbuilder.dedup_old": "hf_mmbuilder.schema",
                          "hf_mmbuilder.old_split": ("hf_mmbuilder.errors", "hf_mmbuilder.media")})
"""


def _run(code: str, *args: str, flags: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", *flags, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("old", sorted(_deprecated.MOVED))
def test_an_old_module_path_warns_and_gives_the_new_module(old):
    completed = _run(IMPORT_OLD_PATH, old)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    new = _deprecated.MOVED[old]
    homes = [new] if isinstance(new, str) else list(new)
    assert len(result["warnings"]) == 1, result["warnings"]
    category, message, filename = result["warnings"][0]
    assert category == "FutureWarning" and old in message and all(home in message for home in homes)
    # The warning points at the import statement, not at the import machinery.
    assert filename == "<string>", filename
    assert result["identical"] or not isinstance(new, str)
    assert result["names_found"]
    # The cache key of a loading script that still imports the old path covers the new module's source.
    assert result["origin"] == (result["new_origins"][0] if isinstance(new, str) else None)
    assert set(result["front_doors"].values()) == {"function"}, result["front_doors"]


@pytest.mark.parametrize("old", sorted(_deprecated.MOVED))
def test_an_old_module_path_fails_under_error_warnings(old):
    completed = _run(f"import {old}", flags=("-W", "error::FutureWarning"))
    assert completed.returncode != 0 and "FutureWarning" in completed.stderr, completed.stderr[-2000:]


def test_the_alias_machinery_on_stand_in_rows():
    code = TEST_ROWS + r"""
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import hf_mmbuilder.old_schema as old
    import hf_mmbuilder.schema as new
    assert old is new, (old, new)
    assert sys.modules["hf_mmbuilder.old_schema"] is new
    assert new.__spec__.name == "hf_mmbuilder.schema", new.__spec__
    import hf_mmbuilder
    assert hf_mmbuilder.old_schema is new
    from hf_mmbuilder.old_split import ERRORS_COLUMN, resolve_media_path
    from hf_mmbuilder.errors import ERRORS_COLUMN as errors_column
    assert ERRORS_COLUMN == errors_column and callable(resolve_media_path)
    assert "resolve_media_path" in dir(sys.modules["hf_mmbuilder.old_split"])
    try:
        sys.modules["hf_mmbuilder.old_split"].no_such_name
    except AttributeError as error:
        assert "hf_mmbuilder.old_split" in str(error) and "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
assert len(messages) == 2, messages
assert "hf_mmbuilder.old_schema is deprecated; import hf_mmbuilder.schema instead" in messages[0], messages
assert "hf_mmbuilder.errors or hf_mmbuilder.media" in messages[1], messages
print("ok")
"""
    completed = _run(code)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "ok"


def test_an_unknown_attribute_of_the_package_still_raises():
    with pytest.raises(AttributeError, match="no attribute 'no_such_module'"):
        hf_mmbuilder.no_such_module


def test_importing_a_module_never_rebinds_a_front_door_function():
    for name in sorted(_deprecated.FRONT_DOORS):
        function = getattr(hf_mmbuilder, name)
        assert callable(function) and not isinstance(function, types.ModuleType), name
        setattr(hf_mmbuilder, name, types.ModuleType(f"hf_mmbuilder.{name}"))
        assert getattr(hf_mmbuilder, name) is function, name
    # Other attributes stay settable, modules included.
    module = types.ModuleType("stand_in")
    hf_mmbuilder.stand_in_module = module
    assert hf_mmbuilder.stand_in_module is module
    del hf_mmbuilder.stand_in_module


def test_a_front_door_import_of_an_old_path_keeps_the_function():
    code = TEST_ROWS + r"""
_deprecated.FRONT_DOORS = _deprecated.FRONT_DOORS | {"dedup_old"}
import hf_mmbuilder
sentinel = object()
object.__setattr__(hf_mmbuilder, "dedup_old", sentinel)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import hf_mmbuilder.dedup_old
assert hf_mmbuilder.dedup_old is sentinel
print("ok")
"""
    completed = _run(code)
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_renamed_moves_an_old_keyword_with_a_warning():
    with pytest.warns(FutureWarning, match=r"f\(old=\.\.\.\) is deprecated; use new=\.\.\.") as caught:
        assert _deprecated.renamed({"old": 1, "other": 2}, "old", "new", where="f", stacklevel=2) == {"other": 2, "new": 1}
    assert caught[0].filename == __file__


def test_renamed_leaves_new_keywords_alone_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kwargs = {"new": 1}
        assert _deprecated.renamed(kwargs, "old", "new", where="f") is kwargs


def test_renamed_refuses_both_names():
    with pytest.raises(TypeError, match=r"f\(\) got both new= and its deprecated name old="):
        _deprecated.renamed({"old": 1, "new": 2}, "old", "new", where="f")


def test_minhash_mode_is_now_compat():
    from hf_mmbuilder.duplicates import MinHashParams, dedup

    with pytest.warns(FutureWarning, match=r'MinHashParams\(mode=\.\.\.\) is deprecated; use compat=\.\.\., mode="fast" is compat=None') as caught:
        assert MinHashParams(mode="data_juicer") == MinHashParams(compat="data_juicer")
    assert caught[0].filename == __file__
    with pytest.warns(FutureWarning, match="compat"):
        assert MinHashParams(mode="fast") == MinHashParams()
    with pytest.raises(TypeError, match="both compat= and its deprecated name mode="):
        MinHashParams(mode="fast", compat="data_juicer")
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="mode must be 'fast' or 'data_juicer'"):
        MinHashParams(mode="approximate")
    with pytest.raises(ValueError, match="compat must be None or 'data_juicer'"):
        MinHashParams(compat="fast")
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["a b c d e", "a b c d e f", "x y"]})
    with pytest.warns(FutureWarning, match="compat"):
        old, old_report = dedup(ds, "minhash", mode="data_juicer", return_clusters=True, return_report=True)
    new, new_report = dedup(ds, "minhash", compat="data_juicer", return_clusters=True, return_report=True)
    assert old["cluster_id"] == new["cluster_id"] and old_report.params == new_report.params
    assert new_report.params["compat"] == "data_juicer" and "mode" not in new_report.params


def test_image_hash_keywords_are_now_hash_method_and_compat():
    from PIL import Image

    from hf_mmbuilder.duplicates import image_hash_clusters, image_hashes

    images = [Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 50), Image.linear_gradient("L").resize((64, 64))]
    for old, new in [({"hash": "dhash"}, {"hash_method": "dhash"}), ({"mode": "fast"}, {"compat": None}),
                     ({"mode": "exact"}, {"compat": "imagehash"}), ({"hash": "ahash", "mode": "fast"}, {"hash_method": "ahash", "compat": None})]:
        with pytest.warns(FutureWarning, match=r"image_hashes\((hash|mode)=\.\.\.\) is deprecated") as caught:
            assert (image_hashes(images, **old) == image_hashes(images, **new)).all(), old
        assert all(warning.filename == __file__ for warning in caught)
    import datasets

    ds = datasets.Dataset.from_dict({"image": images + images[:1]}, features=datasets.Features({"image": datasets.Image()}))
    with pytest.warns(FutureWarning, match=r"image_hash_clusters\(hash=\.\.\.\) is deprecated; use hash_method="):
        old = image_hash_clusters(ds, column="image", hash="dhash", progress=False)
    assert old.tolist() == image_hash_clusters(ds, column="image", hash_method="dhash", progress=False).tolist() == [0, 1, 0]
    with pytest.warns(FutureWarning, match="hash_method"):
        assert len(hf_mmbuilder.dedup(ds, "phash", column="image", hash="dhash")) == 2


def test_dedup_tokens_are_now_special_tokens(tmp_path):
    import datasets
    from PIL import Image

    from hf_mmbuilder.duplicates import ExactParams, RepeatedMediaDropper, drop_repeated_media
    from hf_mmbuilder.schema import SpecialTokens

    tokens = SpecialTokens(image="<image>")
    with pytest.warns(FutureWarning, match=r"ExactParams\(tokens=\.\.\.\) is deprecated; use special_tokens=") as caught:
        assert ExactParams(tokens=tokens, drop_special_tokens=True) == ExactParams(special_tokens=tokens, drop_special_tokens=True)
    assert caught[0].filename == __file__
    with pytest.warns(FutureWarning, match=r"RepeatedMediaDropper\(tokens="):
        assert RepeatedMediaDropper("images", tokens=tokens).special_tokens == tokens
    with pytest.raises(TypeError, match="unexpected keyword argument 'token'"):
        RepeatedMediaDropper("images", token=tokens)
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    ds = datasets.Dataset.from_dict({"text": ["<image><image> two"], "images": [[str(tmp_path / "a.png")] * 2]})
    with pytest.warns(FutureWarning, match=r"drop_repeated_media\(tokens=") as caught:
        old = drop_repeated_media(ds, ["images"], tokens=tokens)
    assert caught[0].filename == __file__
    assert old[0] == drop_repeated_media(ds, ["images"], special_tokens=tokens)[0] == {"text": "<image> two", "images": [str(tmp_path / "a.png")]}
    with pytest.warns(FutureWarning, match="special_tokens"):
        assert len(hf_mmbuilder.dedup(ds, "exact", tokens=tokens, drop_special_tokens=True)) == 1
