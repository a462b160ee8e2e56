"""Publishing into a local folder never deletes what it did not write: foreign folders are refused
(or, with ``overwrite=True``, written beside), a re-publish replaces only its own files, dangerous
targets are always refused, and a publish SIGKILLed at any step leaves the old or the new shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset

from hf_mmbuilder.output_folder import MANIFEST, OutputFolderError
from hf_mmbuilder.publishing import publish

TESTS = Path(__file__).resolve().parent
OPTIONS = {"split_ratio": {"train": 0.5, "test": 0.5}, "seed": 0, "group_by": None, "progress": False}
REFUSED_FOREIGN = ("local_dir {folder!r} exists and holds files hf_mmbuilder publish did not write ({entries}): pass "
                   "overwrite=True (--overwrite on the command line) to write beside them; only files with the names "
                   "this writer produces are replaced, nothing else is deleted")


def text_dataset(label: str, rows: int) -> Dataset:
    """``rows`` text-only rows, told apart by ``label``."""
    return Dataset.from_dict({"text": [f"{label} row {index}" for index in range(rows)]})


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> content."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def texts_by_split(loaded) -> dict[str, list[str]]:
    """split -> the sorted texts of a loaded DatasetDict."""
    return {split: sorted(part["text"]) for split, part in loaded.items()}


def published_texts(dataset: Dataset, result) -> dict[str, list[str]]:
    """split -> the sorted texts a publish of ``dataset`` put in each split."""
    return {split: sorted(dataset.select(rows)["text"]) for split, rows in result.plan.indices.items()}


def user_files(folder: Path) -> dict[str, bytes]:
    """Write the user's own files into ``folder`` (top level, in data/ and in assets/); returns them."""
    files = {"keep.txt": b"my notes", "data/notes.md": b"# about the data", "assets/logo.png": b"my logo"}
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return files


def test_a_foreign_folder_is_refused_and_overwrite_keeps_its_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = user_files(out)
    with pytest.raises(OutputFolderError) as refused:
        publish(text_dataset("new", 20), local_dir=str(out), **OPTIONS)
    assert str(refused.value) == REFUSED_FOREIGN.format(folder=str(out), entries="assets/, data/, keep.txt")
    assert tree(out) == mine

    result = publish(text_dataset("new", 20), local_dir=str(out), overwrite=True, **OPTIONS)
    assert tree(out) == {**mine, **{path: (out / path).read_bytes() for path in result.files}, MANIFEST: (out / MANIFEST).read_bytes()}
    assert json.loads((out / MANIFEST).read_text()) == {"publish": result.files}
    assert texts_by_split(load_dataset(str(out), cache_dir=str(tmp_path / "cache"))) == published_texts(text_dataset("new", 20), result)


def test_a_second_publish_replaces_its_own_files_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    first = publish(text_dataset("old", 20), local_dir=str(out), split_ratio={"train": 0.5, "validation": 0.25, "test": 0.25},
                    seed=0, group_by=None, progress=False)
    mine = user_files(out)
    (out / "data" / "train-00000-of-00001.parquet").write_bytes(b"the user's own file, under a name publish could write")
    mine["data/train-00000-of-00001.parquet"] = (out / "data" / "train-00000-of-00001.parquet").read_bytes()

    second = publish(text_dataset("new", 30), local_dir=str(out), **OPTIONS)
    assert second.changed
    assert not {path for path in first.files if path.startswith("data/")} & set(second.files)
    assert tree(out) == {**mine, **{path: (out / path).read_bytes() for path in second.files}, MANIFEST: (out / MANIFEST).read_bytes()}
    assert json.loads((out / MANIFEST).read_text()) == {"publish": second.files}
    assert (out / "README.md").read_text() == second.card
    assert texts_by_split(load_dataset(str(out), cache_dir=str(tmp_path / "cache"))) == published_texts(text_dataset("new", 30), second)


def test_overwrite_replaces_only_the_names_publish_writes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = user_files(out)
    ours = {"README.md": b"# a hand-written card", "assets/turns.png": b"an old plot",
            "data/train-00000-of-00002.parquet": b"a push_to_hub shard", "data/test-00001-of-00002.parquet": b"another"}
    for path, content in ours.items():
        (out / path).write_bytes(content)
    result = publish(text_dataset("new", 20), local_dir=str(out), overwrite=True, **OPTIONS)
    assert tree(out) == {**mine, **{path: (out / path).read_bytes() for path in result.files}, MANIFEST: (out / MANIFEST).read_bytes()}
    assert (out / "README.md").read_text() == result.card


@pytest.mark.parametrize("where", ["current", "home", "root"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_the_current_home_and_root_folders_are_always_refused(tmp_path, monkeypatch, where, overwrite):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    local_dir, folder, what = {"current": (".", str(tmp_path), "the current folder"),
                               "home": ("~", str(home), "the home folder"),
                               "root": ("/", "/", "the file-system root")}[where]
    with pytest.raises(OutputFolderError) as refused:
        publish(text_dataset("new", 4), local_dir=local_dir, overwrite=overwrite, **OPTIONS)
    assert str(refused.value) == (f"local_dir {folder!r} is {what}: hf_mmbuilder never writes into the current folder, "
                                  "the home folder or the file-system root; choose a folder of its own")
    assert sorted(os.listdir(tmp_path)) == ["home", "keep.txt"] and os.listdir(home) == []


def test_cli_refuses_a_foreign_local_dir_and_overwrite_keeps_its_files(tmp_path, capsys):
    from hf_mmbuilder.cli import main

    text_dataset("new", 10).save_to_disk(str(tmp_path / "saved"))
    capsys.readouterr()
    out = tmp_path / "out"
    out.mkdir()
    mine = user_files(out)
    command = ["publish", str(tmp_path / "saved"), "--split-ratio", "train=0.5,test=0.5", "--group-by", "none", "--local-dir", str(out)]
    assert main(command) == 2
    assert capsys.readouterr().err == "hf-mmbuilder publish: error: " + REFUSED_FOREIGN.format(
        folder=str(out), entries="assets/, data/, keep.txt") + "\n"
    assert main([*command, "--overwrite"]) == 0
    written = json.loads((out / MANIFEST).read_text())["publish"]
    assert tree(out) == {**mine, **{path: (out / path).read_bytes() for path in written}, MANIFEST: (out / MANIFEST).read_bytes()}


# A publish of the "new" rows into a folder holding a publish of the "old" rows, SIGKILLed just
# before the given file-system step of its commit: (operation, path prefix, occurrence).
KILLED_PUBLISH = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_publish_local_folder import OPTIONS, text_dataset
from hf_mmbuilder.output_folder import OutputFolder
from hf_mmbuilder.publishing import publish

out, operation, prefix, occurrence = Path({out!r}), {operation!r}, {prefix!r}, {occurrence!r}
seen = 0
replace, unlink, commit = os.replace, Path.unlink, OutputFolder.commit

def reached(step, path):
    global seen
    if step == operation and os.path.relpath(path, out).startswith(prefix):
        seen += 1
        if seen == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)

def counted_replace(source, target):
    reached("replace", target)
    replace(source, target)

def counted_unlink(self, missing_ok=False):
    reached("unlink", self)
    unlink(self, missing_ok=missing_ok)

def counted_commit(self, *args, **kwargs):
    os.replace, Path.unlink = counted_replace, counted_unlink
    return commit(self, *args, **kwargs)

OutputFolder.commit = counted_commit
publish(text_dataset("new", 30), local_dir=str(out), **OPTIONS)
"""


@pytest.mark.parametrize("operation, prefix, occurrence, shards, visible", [
    ("replace", MANIFEST, 1, (2, 0), "old"),      # nothing moved yet: the manifest is about to list old and new files
    ("replace", "data/", 2, (2, 1), "old"),       # one new shard is in place
    ("replace", "README.md", 1, (2, 2), "old"),   # every new shard and plot is in place, the old card still rules
    ("unlink", "data/", 1, (2, 2), "new"),        # the new card is in place, the old shards are still there
    ("replace", MANIFEST, 2, (0, 2), "new"),      # the old shards are gone, the manifest still lists them
])
def test_a_publish_killed_at_any_step_leaves_the_old_or_the_new_shards(tmp_path, operation, prefix, occurrence, shards, visible):
    out = tmp_path / "out"
    old = publish(text_dataset("old", 20), local_dir=str(out), **OPTIONS)
    mine = {"keep.txt": b"my notes", "data/notes.md": b"# about the data"}
    for path, content in mine.items():
        (out / path).write_bytes(content)
    new = publish(text_dataset("new", 30), dry_run=True, **OPTIONS)
    expected = {"old": published_texts(text_dataset("old", 20), old), "new": published_texts(text_dataset("new", 30), new)}

    script = KILLED_PUBLISH.format(tests=str(TESTS), out=str(out), operation=operation, prefix=prefix, occurrence=occurrence)
    killed = subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    present = set(tree(out))
    assert (len(present & set(old.files) - set(new.files)), len(present & set(new.files) - set(old.files) - {"README.md"})) == shards
    assert texts_by_split(load_dataset(str(out), cache_dir=str(tmp_path / "cache"))) == expected[visible]

    again = publish(text_dataset("new", 30), local_dir=str(out), **OPTIONS)
    assert again.files == new.files
    assert tree(out) == {**mine, **{path: (out / path).read_bytes() for path in new.files}, MANIFEST: (out / MANIFEST).read_bytes()}
    assert json.loads((out / MANIFEST).read_text()) == {"publish": new.files}
    assert sorted(os.listdir(tmp_path)) == ["cache", "out"]
