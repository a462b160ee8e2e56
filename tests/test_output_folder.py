"""Every folder writer besides ``publish`` keeps the files it did not write: the demo's ``--out``
and the workflow's exports (Ray's writers are tested in test_ray_engine.py)."""

from __future__ import annotations

import json

import pytest

from hf_mmbuilder import demo
from hf_mmbuilder.workflow import MultiModalDatasetBuilder
from hf_mmbuilder.output_folder import MANIFEST, OutputFolderError
from test_publish_local_folder import tree

DEMO_FILES = {"dedup_report.json", "dj/llava_sample.dj.jsonl", "llava/llava_subset.json", "source/llava_sample.json",
              "published/README.md", f"published/{MANIFEST}"}


def test_demo_out_keeps_the_users_files_and_refuses_the_current_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    (out / "source").mkdir(parents=True)
    mine = {"keep.txt": b"my notes", "source/mine.json": b"{}"}
    for path, content in mine.items():
        (out / path).write_bytes(content)
    arguments = ["--out", str(out), "--records", "30", "--keep", "15"]
    with pytest.raises(SystemExit) as refused:
        demo.main(arguments)
    assert refused.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"error: --out {str(out)!r} exists and holds files hf_mmbuilder demo did not write (keep.txt, source/): pass "
        "overwrite=True (--overwrite on the command line) to write beside them; only files with the names this writer "
        "produces are replaced, nothing else is deleted\n")
    assert tree(out) == mine

    assert demo.main([*arguments, "--overwrite"]) == 0
    first = tree(out)
    written = json.loads(first[MANIFEST])["demo"]
    assert DEMO_FILES <= set(written) and not set(mine) & set(written)
    assert set(first) == {*mine, *written, MANIFEST}
    assert {path: first[path] for path in mine} == mine

    assert demo.main(arguments) == 0  # its own folder: rewritten without --overwrite
    assert tree(out) == first

    monkeypatch.chdir(out)
    with pytest.raises(SystemExit) as current:
        demo.main(["--out", ".", "--overwrite"])
    assert current.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"error: --out {str(out)!r} is the current folder: hf_mmbuilder never writes into the current folder, the home "
        "folder or the file-system root; choose a folder of its own\n")
    assert tree(out) == first


@pytest.fixture()
def builder(tmp_path):
    (tmp_path / "source").mkdir()
    source = demo.write_sample(str(tmp_path / "source"), records=12, duplicates=0, seed=0)
    builder = MultiModalDatasetBuilder(modalities=["image"], output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    builder.add_data_source(source)
    return builder


@pytest.mark.parametrize("format, ours", [
    ("llava", ["train.json", "test.json"]),
    ("huggingface", ["README.md"]),
])
def test_facade_exports_keep_the_users_files(builder, tmp_path, format, ours):
    target = tmp_path / "out" / format
    target.mkdir(parents=True)
    mine = {"notes.md": b"my notes", "train.txt": b"my own split list"}
    for path, content in mine.items():
        (target / path).write_bytes(content)
    label, writer = ("local_dir", "publish") if format == "huggingface" else ("export folder", "export")
    with pytest.raises(OutputFolderError) as refused:
        builder.export(format=format, split_ratio={"train": 0.5, "test": 0.5})
    assert str(refused.value) == (
        f"{label} {str(target)!r} exists and holds files hf_mmbuilder {writer} did not write (notes.md, train.txt): pass "
        "overwrite=True (--overwrite on the command line) to write beside them; only files with the names this writer "
        "produces are replaced, nothing else is deleted")
    assert tree(target) == mine

    splits = builder.export(format=format, split_ratio={"train": 0.5, "test": 0.5}, overwrite=True)
    assert sum(len(rows) for rows in splits.values()) == 12
    files = tree(target)
    assert {path: files[path] for path in mine} == mine
    written = json.loads(files[MANIFEST])[writer]
    assert set(ours) <= set(written) and set(files) == {*mine, *written, MANIFEST}
