"""Output folders shared with the user: which files a writer owns, which targets it refuses, and how
it replaces its own files without touching any other.

Every writer that fills a folder (``publish``'s ``local_dir``, Ray's ``write_parquet`` / ``convert``
/ ``dedup_parquet``, the workflow's exports, the demo) goes through :class:`OutputFolder`, so one
rule holds everywhere:

- **Ownership**: a writer replaces and deletes only its own files: those listed under its name in
  the folder's manifest (:data:`MANIFEST`, kept up to date by every write), or, in a folder it has
  no manifest entry in, files with exactly the names this write produces or that match the
  writer's naming pattern (stale shards of a differently sharded earlier write).
- **Refusals**: the current folder, the home folder and the file-system root are always refused;
  a folder holding anything but no manifest entry of this writer is refused unless
  ``overwrite=True``.
- **Replacement**: the new files are built in a staging folder on the target's file system (beside
  a new target, inside an existing one). A new target is the staging folder renamed: all or
  nothing. In an existing target each file is renamed into place (never a half file), the
  ``last`` files (a card pointing at the others) after everything else, and the writer's stale
  files are deleted only then. While files move, the manifest lists old and new files, so whatever
  a crash leaves is known as ours and removed by the next write, as are the staging folders of
  processes that no longer run.

One write at a time per folder: two writers filling the same folder at once are not supported.

Example:
    >>> work = tempfile.TemporaryDirectory()
    >>> folder = OutputFolder(Path(work.name) / "out", "example")
    >>> with folder.staging() as staging:
    ...     _ = (staging.files / "part-0.txt").write_text("new")
    ...     folder.commit(staging)
    True
    >>> sorted(path.name for path in folder.path.iterdir())
    ['.hf_mmbuilder-manifest.json', 'part-0.txt']
    >>> work.cleanup()
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

MANIFEST = ".hf_mmbuilder-manifest.json"
STAGING_PREFIX = ".hf_mmbuilder-staging-"
ENTRIES_SHOWN = 5
_STAGING_OWNER = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}")


class OutputFolderError(FileExistsError, ValueError):
    """A target folder the writer refuses; the message names the folder and why.

    A ``FileExistsError`` (the folder exists and holds something) and a ``ValueError`` (bad input,
    caught by the command line like every other input error).
    """


@dataclasses.dataclass(frozen=True)
class Staging:
    """A staging folder: ``files`` holds exactly the files to commit; ``scratch`` is private room
    for intermediate files. Both are removed when :meth:`OutputFolder.staging` exits."""

    files: Path
    scratch: Path


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as another user
        pass
    return True


def _relative_files(root: Path) -> list[str]:
    """Files under ``root`` as sorted POSIX relative paths, without our manifest and staging folders."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith(STAGING_PREFIX))
        relative = Path(folder).relative_to(root)
        found.extend((relative / name).as_posix() for name in names if not (folder == str(root) and name == MANIFEST))
    return sorted(found)


class OutputFolder:
    """A folder one writer fills beside whatever else it holds.

    Parameters:
        path: the folder (created when missing).
        writer: the writer's name in the manifest (``"publish"``, ``"parquet"``, ...).
        overwrite: write into a folder holding files this writer did not list in its manifest, and
            replace those with exactly the names it writes; other files are never touched.
        rewrite_own: whether a folder holding this writer's earlier output is rewritten without
            ``overwrite`` (``publish`` re-publishes in place; Ray writers refuse an existing output).
        label: how messages name the folder (``"local_dir"``, ``"output_dir"``, ...).

    The constructor checks the target (nothing is written): the current folder, the home folder
    and the file-system root raise :class:`OutputFolderError`, as does a folder that exists but is
    not one, or holds entries but no manifest entry of ``writer`` while ``overwrite`` is False.

    Example:
        >>> OutputFolder(".", "publish", label="local_dir")
        Traceback (most recent call last):
        ...
        hf_mmbuilder.output_folder.OutputFolderError: local_dir '...' is the current folder: hf_mmbuilder never writes into the current folder, the home folder or the file-system root; choose a folder of its own
    """

    def __init__(self, path, writer: str, *, overwrite: bool = False, rewrite_own: bool = True, label: str = "output folder"):
        self.path = Path(path).expanduser().resolve()
        self.writer = writer
        self.overwrite = overwrite
        self.label = label
        self._check(rewrite_own)

    def _name(self) -> str:
        return f"{self.label} {str(self.path)!r}"

    def _check(self, rewrite_own: bool) -> None:
        for reserved, what in ((Path.cwd().resolve(), "the current folder"), (Path.home().resolve(), "the home folder"),
                               (Path(self.path.anchor), "the file-system root")):
            if self.path == reserved:
                raise OutputFolderError(
                    f"{self._name()} is {what}: hf_mmbuilder never writes into the current folder, the home folder "
                    "or the file-system root; choose a folder of its own")
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise OutputFolderError(f"{self._name()} exists and is not a folder")
        if self.overwrite:
            return
        if self.writer in self.manifest():
            if not rewrite_own:
                raise OutputFolderError(
                    f"{self._name()} exists and holds an earlier {self.writer} output: pass overwrite=True "
                    "(--overwrite on the command line) to replace it; files it did not write are kept")
            return
        entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(self.path)
                         if entry.name != MANIFEST and not entry.name.startswith(STAGING_PREFIX))
        if entries:
            shown = ", ".join(entries[:ENTRIES_SHOWN]) + (f" and {len(entries) - ENTRIES_SHOWN} more" if len(entries) > ENTRIES_SHOWN else "")
            raise OutputFolderError(
                f"{self._name()} exists and holds files hf_mmbuilder {self.writer} did not write ({shown}): pass "
                "overwrite=True (--overwrite on the command line) to write beside them; only files with the "
                "names this writer produces are replaced, nothing else is deleted")

    def manifest(self) -> dict[str, list[str]]:
        """The folder's manifest: writer -> the files it wrote (relative paths); empty when absent."""
        try:
            with open(self.path / MANIFEST, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise OutputFolderError(f"{self._name()}: its manifest {MANIFEST} cannot be read ({error}): "
                                    "remove it and pass overwrite=True") from None
        if not isinstance(manifest, dict) or not all(isinstance(files, list) for files in manifest.values()):
            raise OutputFolderError(f"{self._name()}: its manifest {MANIFEST} is not a mapping of writer to files: "
                                    "remove it and pass overwrite=True")
        return manifest

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """A :class:`Staging` on the target's file system, removed at exit.

        It sits inside the target when the target exists (a rename never crosses file systems),
        else beside it (so the whole folder can appear at once). Staging folders left in either
        place by processes of this machine that no longer run are removed first.
        """
        places = [(self.path.parent, f".{self.path.name}{STAGING_PREFIX}")]
        if self.path.is_dir():
            places.append((self.path, STAGING_PREFIX))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for parent, prefix in places:
            self._remove_dead_staging(parent, prefix)
        parent, prefix = places[-1]
        root = parent / f"{prefix}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        staging = Staging(files=root / "files", scratch=root / "scratch")
        staging.files.mkdir(parents=True)
        staging.scratch.mkdir()
        try:
            yield staging
        finally:
            shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _remove_dead_staging(parent: Path, prefix: str) -> None:
        for entry in parent.iterdir():
            owner = _STAGING_OWNER.fullmatch(entry.name[len(prefix):]) if entry.name.startswith(prefix) else None
            if owner and owner["host"] == _host() and not _pid_running(int(owner["pid"])):
                shutil.rmtree(entry, ignore_errors=True)

    def _write_manifest(self, files: Sequence[str], destination: Path, scratch: Path) -> None:
        """Record ``files`` as the writer's in ``destination`` (other writers' entries kept), atomically."""
        manifest = self.manifest()
        if manifest.get(self.writer) == sorted(files) and destination == self.path / MANIFEST:
            return
        manifest[self.writer] = sorted(files)
        temporary = scratch / MANIFEST
        temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, destination)

    def commit(self, staging: Staging, *, names: Optional[re.Pattern] = None, last: Sequence[str] = ()) -> bool:
        """Put the files of ``staging.files`` into the folder; returns whether anything changed.

        The writer's files from before (its manifest entry, or in a folder without one, the files
        whose relative path fully matches ``names``) that this write does not produce are deleted
        after the new files are in place; ``last`` (relative paths) are moved after all other
        files. A file identical to the one in place is left untouched. An existing file that is
        not the writer's own is replaced only with ``overwrite=True``; otherwise
        :class:`OutputFolderError` names it before anything changes.
        """
        files, scratch = staging.files, staging.scratch
        new = _relative_files(files)
        if not self.path.exists():
            self._write_manifest(new, files / MANIFEST, scratch)
            os.rename(files, self.path)
            return True
        manifest = self.manifest()
        present = _relative_files(self.path)
        if self.writer in manifest:
            listed = set(manifest[self.writer])
            owned = {path for path in present if path in listed}
        else:
            owned = {path for path in present if names is not None and names.fullmatch(path)}
        clashes = sorted(set(new) & set(present) - owned)
        if clashes and not self.overwrite:
            raise OutputFolderError(
                f"{self._name()} holds files this {self.writer} would replace but did not write "
                f"({', '.join(clashes[:ENTRIES_SHOWN])}): move them away or pass overwrite=True")
        # Listed before anything moves: a crash from here on leaves only files the next write knows as ours.
        self._write_manifest(sorted(owned | set(new)), self.path / MANIFEST, scratch)
        changed = False
        order = [path for path in new if path not in last] + [path for path in last if path in new]
        for path in order:
            source, target = files / path, self.path / path
            if target.is_file() and filecmp.cmp(source, target, shallow=False):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            changed = True
        for path in sorted(owned - set(new)):
            (self.path / path).unlink(missing_ok=True)
            self._remove_empty_folders((self.path / path).parent)
            changed = True
        self._write_manifest(new, self.path / MANIFEST, scratch)
        return changed

    def _remove_empty_folders(self, folder: Path) -> None:
        while folder != self.path and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


@contextlib.contextmanager
def temporary_staging() -> Iterator[Staging]:
    """A :class:`Staging` in the system's temporary folder, for a write with no local target
    (a Hub-only publish, a dry run)."""
    with tempfile.TemporaryDirectory(prefix=".hf_mmbuilder-") as root:
        staging = Staging(files=Path(root) / "files", scratch=Path(root) / "scratch")
        staging.files.mkdir()
        staging.scratch.mkdir()
        yield staging
