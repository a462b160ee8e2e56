"""Media paths: resolving them for reading, and refusing paths that escape their root.

DJ media columns keep paths exactly as the source wrote them (so exports write them back
unchanged). Relative paths are read from ``media_root`` (by default the data file's folder, stored
per row in the ``media_root`` column so datasets from different folders concatenate).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
from typing import Iterable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow import string_buffers
from .kernels import file_bytes
from .kernels.exact_hash import digests128


class UnsafePathError(ValueError):
    """A media path points outside the roots it may be read from or written to."""


def resolve_media_path(path: str, media_root: Optional[str]) -> str:
    """Return the path a media file is read from: ``path`` itself if absolute or a URL, else
    ``media_root/path``.

    Example:
        >>> resolve_media_path("coco/1.jpg", "/data/llava")
        '/data/llava/coco/1.jpg'
        >>> resolve_media_path("/abs/1.jpg", "/data/llava")
        '/abs/1.jpg'
    """
    if os.path.isabs(path) or "://" in path or not media_root:
        return path
    return os.path.join(media_root, path)


def check_within_root(path: str, root: str, *, what: str = "media path", follow_links: bool = True) -> str:
    """Resolve ``path`` against ``root`` and raise :class:`UnsafePathError` if the result leaves it.

    With ``follow_links`` (for code that reads the file) symlinks are resolved, so a link pointing
    outside the root is refused too; without it (for code that only writes the path string, such as
    an export) the check is lexical and touches no file. Returns the resolved absolute path.

    Example:
        >>> check_within_root("a/b.jpg", "/data")
        '/data/a/b.jpg'
        >>> check_within_root("../../etc/passwd", "/data")
        Traceback (most recent call last):
        ...
        hf_mmbuilder.media.UnsafePathError: media path '../../etc/passwd' escapes its root '/data'
    """
    if not follow_links:
        root_norm = os.path.normpath(os.path.abspath(root))
        resolved = os.path.normpath(os.path.join(root_norm, path))
        if resolved != root_norm and not resolved.startswith(root_norm.rstrip(os.sep) + os.sep):
            raise UnsafePathError(f"{what} {path!r} escapes its root {root!r}")
        return resolved
    root_real = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(root_real, path))
    if resolved != root_real and not resolved.startswith(root_real.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"{what} {path!r} escapes its root {root!r}")
    return resolved


@dataclasses.dataclass(frozen=True)
class MediaLocations:
    """Where a batch of media paths is read from, computed per distinct folder.

    Attributes:
        resolved: ``pa.string()`` array, the path each file is read from (symlinks resolved for
            paths checked against their root, as :func:`check_within_root` resolves them).
        escaped: ``bool`` array: the path leaves its root (through ``..`` or a symlink).
        is_file: ``bool`` array: a regular file (links followed) is there.
    """

    resolved: pa.Array
    escaped: np.ndarray
    is_file: np.ndarray


def split_folders(paths: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(folder with its trailing ``/`` or "", file name) of every path.

    Example:
        >>> [part.to_pylist() for part in split_folders(pa.array(["a/b/c.jpg", "d.png", "/e.wav"]))]
        [['a/b/', '', '/'], ['c.jpg', 'd.png', 'e.wav']]
    """
    # A split at the last "/" (no regex: capturing regexes cost microseconds per path).
    parts = pc.split_pattern(paths, "/", max_splits=1, reverse=True)
    parts = parts.combine_chunks() if isinstance(parts, pa.ChunkedArray) else parts
    ends = parts.offsets.to_numpy()
    flat = parts.values
    names = flat.take(pa.array(ends[1:] - 1))
    has_folder = pa.array(np.diff(ends) == 2)
    folders = pc.if_else(has_folder, pc.binary_join_element_wise(flat.take(pa.array(ends[:-1])), "/", ""), "")
    return folders, names


def _listing(folder: str) -> tuple[set, set]:
    """(regular file names, symlink names) of a folder, links followed; empty when unreadable."""
    files, links = set(), set()
    try:
        with os.scandir(folder or ".") as entries:
            for entry in entries:
                try:
                    if entry.is_file():
                        files.add(entry.name)
                    if entry.is_symlink():
                        links.add(entry.name)
                except OSError:
                    continue
    except OSError:
        pass
    return files, links


def resolve_media_paths(paths: pa.Array, roots: Optional[pa.Array]) -> pa.Array:
    """:func:`resolve_media_path` of a whole array: ``root/path`` for a relative path with a
    root, the path as written otherwise (absolute, a URL, no root).

    Example:
        >>> resolve_media_paths(pa.array(["a.jpg", "/b.jpg", "c.jpg"]), pa.array(["/r", "/r", None])).to_pylist()
        ['/r/a.jpg', '/b.jpg', 'c.jpg']
    """
    if roots is None or not len(paths):
        return paths
    roots = pc.fill_null(roots, "")
    relative = pc.and_(pc.invert(pc.or_(pc.starts_with(paths, "/"), pc.match_substring(paths, "://"))),
                       pc.not_equal(pc.utf8_length(roots), 0))
    # os.path.join's single separator between a root and a relative path.
    joined = pc.binary_join_element_wise(roots, pc.if_else(pc.ends_with(roots, "/"), "", "/"), paths, "")
    return pc.if_else(relative, joined, paths)


def locate_media(paths: pa.Array, roots: Optional[pa.Array] = None, listings: Optional[dict] = None) -> MediaLocations:
    """:func:`resolve_media_path`, :func:`check_within_root` and ``os.path.isfile`` for a whole
    array of paths, with one ``realpath`` per distinct folder and one listing of each folder
    instead of two ``realpath`` and a ``stat`` per path.

    ``paths``: ``pa.string()`` array without nulls; ``roots``: the ``media_root`` of each path (or
    ``None``). A relative path under a root is checked against it (a symlinked folder or file
    that leads out of the root is refused as :func:`check_within_root` refuses it); absolute
    paths, URLs and rows without a root are read as written. Cost: O(paths) Arrow compute plus
    one ``realpath`` and one directory listing per distinct folder, and one ``realpath`` per
    symlinked file. ``listings``: a dict caching folder listings between calls (a pass over a
    dataset in batches lists each folder once).

    Example:
        >>> found = locate_media(pa.array(["a/b.jpg", "../../etc/passwd", "/abs.png"]), pa.array(["/data"] * 3))
        >>> found.resolved.to_pylist(), found.escaped.tolist()
        (['/data/a/b.jpg', '/etc/passwd', '/abs.png'], [False, True, False])
    """
    paths = (paths.combine_chunks() if isinstance(paths, pa.ChunkedArray) else paths).cast(pa.string())
    if roots is None:
        roots = pa.nulls(len(paths), pa.string())
    roots = roots.combine_chunks() if isinstance(roots, pa.ChunkedArray) else roots
    absolute = pc.or_(pc.starts_with(paths, "/"), pc.match_substring(paths, "://"))
    under_root = pc.and_(pc.invert(absolute), pc.and_(pc.is_valid(roots), pc.not_equal(pc.utf8_length(pc.fill_null(roots, "")), 0)))
    under_root = pc.fill_null(under_root, False)
    checked = under_root.to_numpy(zero_copy_only=False)
    # resolve_media_path's os.path.join: one separator between a root and a relative path.
    separator = pc.if_else(pc.ends_with(pc.fill_null(roots, ""), "/"), "", "/")
    joined = pc.binary_join_element_wise(pc.fill_null(roots, ""), separator, paths, "")
    read_from = pc.if_else(under_root, joined, paths)
    folders, names = split_folders(read_from)
    keys = pc.binary_join_element_wise(pc.if_else(under_root, pc.fill_null(roots, ""), ""), folders, "\0")
    encoded = pc.dictionary_encode(keys)
    distinct = encoded.dictionary.to_pylist()
    real_folders, escaped_folders = [], []
    for key in distinct:
        root, folder = key.split("\0", 1)
        if root:
            root_real = os.path.realpath(root)
            real = os.path.realpath(os.path.join(root_real, folder))
            escaped_folders.append(real != root_real and not real.startswith(root_real.rstrip(os.sep) + os.sep))
            real_folders.append(real.rstrip(os.sep) + os.sep)
        else:
            escaped_folders.append(False)
            real_folders.append(folder)
    cache = {} if listings is None else listings
    for folder in real_folders:
        if folder not in cache:
            cache[folder] = _listing(folder)
    listings = [cache[folder] for folder in real_folders]
    folder_of = encoded.indices.to_numpy(zero_copy_only=False)
    escaped = np.asarray(escaped_folders, dtype=bool)[folder_of] if len(distinct) else np.zeros(0, bool)
    resolved = pc.binary_join_element_wise(pc.take(pa.array(real_folders, pa.string()), encoded.indices), names, "")
    existing = pa.array([folder + name for folder, (files, _) in zip(real_folders, listings) for name in files], pa.string())
    is_file = pc.is_in(resolved, value_set=existing).to_numpy(zero_copy_only=False)
    linked = pa.array([folder + name for folder, (_, links) in zip(real_folders, listings) for name in links], pa.string())
    if len(linked):
        # A symlinked file may point out of its root: those few get check_within_root's full check.
        for position in np.flatnonzero(pc.is_in(resolved, value_set=linked).to_numpy(zero_copy_only=False) & checked):
            root = roots[int(position)].as_py()
            real = os.path.realpath(resolved[int(position)].as_py())
            root_real = os.path.realpath(root)
            escaped[position] |= real != root_real and not real.startswith(root_real.rstrip(os.sep) + os.sep)
    if not checked.all():
        # Paths read as written keep their spelling (resolve_media_path does not touch them).
        resolved = pc.if_else(under_root, resolved, read_from)
    return MediaLocations(resolved, escaped, np.asarray(is_file, dtype=bool))


class MediaFinder:
    """Files under ``root`` by name and by stem (only files with one of ``extensions``), listed
    once (lazily), as Data-Juicer's WavCaps converter does (``os.walk``); paths are returned
    relative to ``root``. Complexity: one listing of ``root``, then O(1) per lookup.

    Example:
        >>> finder = MediaFinder("/data/videos", recursive=False, extensions=(".mp4",))  # doctest: +SKIP
        >>> finder.by_stem("k_ZXmr8pmrs")  # doctest: +SKIP
        'k_ZXmr8pmrs.mp4'
    """

    def __init__(self, root: str, recursive: bool, extensions: tuple):
        self.root = root
        self.recursive = recursive
        self.extensions = extensions
        self._names: Optional[dict] = None
        self._stems: Optional[dict] = None

    def _scan(self) -> None:
        self._names, self._stems = {}, {}
        if not os.path.isdir(self.root):
            return
        extensions = tuple(self.extensions)
        walk = os.walk(self.root) if self.recursive else [(self.root, [], os.listdir(self.root))]
        found_names, found_paths = [], []
        for folder, subfolders, names in walk:
            # A name found twice resolves to its first place in sorted order, the same on every
            # machine (Data-Juicer keeps whichever one os.walk happens to list last).
            subfolders.sort()
            names.sort()
            relative_folder = os.path.relpath(folder, self.root)
            prefix = "" if relative_folder == "." else os.path.join(relative_folder, "")
            found_names += names
            found_paths += [prefix + name for name in names] if prefix else names
        # Dicts built from the listing reversed keep each name's first place; built in C, as a
        # folder of 200k recordings costs a quarter second name by name.
        self._names = dict(zip(reversed(found_names), reversed(found_paths)))
        # os.path.splitext's extension, for names ending with one of ours (one dot each): the
        # stem must hold more than dots, as a leading dot starts no extension.
        with_extension = [k for k, name in enumerate(found_names) if name.lower().endswith(extensions)]
        stems = [found_names[k][: found_names[k].rfind(".")] for k in with_extension]
        kept = [(stem, found_paths[k]) for stem, k in zip(stems, with_extension) if stem.strip(".")]
        self._stems = dict(reversed(kept))

    def by_name(self, name: str) -> Optional[str]:
        return self.names().get(name)

    def by_stem(self, stem: str) -> Optional[str]:
        return self.stems().get(stem)

    def names(self) -> dict:
        """``{file name: path relative to root}`` of every file (for lookups of a whole batch)."""
        if self._names is None:
            self._scan()
        return self._names

    def stems(self) -> dict:
        """``{stem: path relative to root}`` of the files with one of ``extensions``."""
        if self._stems is None:
            self._scan()
        return self._stems


# The flags of the compiled reads: close-on-exec as Python's own open, and non-blocking so that a
# FIFO where a file was expected cannot hang the open (no effect on a regular file).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)

# The compiled reads call POSIX open, lseek, pread and close; where those are not the system's
# (Windows), the same reads run in Python, file by file.
COMPILED_READS = os.name == "posix"


def _size_in_python(path: str) -> int:
    try:
        handle = os.open(path, _READ_FLAGS)
    except OSError:
        return -1
    try:
        return os.lseek(handle, 0, os.SEEK_END)
    except OSError:
        return -1
    finally:
        os.close(handle)


def _open_for_reading(path: str):
    """``path`` opened for reading with the compiled reads' flags (a FIFO does not block)."""
    return open(os.open(path, _READ_FLAGS | getattr(os, "O_BINARY", 0)), "rb", buffering=0)


def _read_in_python(paths: list, offsets: np.ndarray, into: np.ndarray) -> np.ndarray:
    """What :func:`hf_mmbuilder.kernels.file_bytes.read_files` returns, read in Python."""
    read = np.zeros(len(paths), dtype=np.int64)
    view = memoryview(into)
    for position, path in enumerate(paths):
        start, stop = int(offsets[position]), int(offsets[position + 1])
        try:
            handle = _open_for_reading(path)
        except OSError:
            read[position] = -1
            continue
        with handle, contextlib.suppress(OSError):
            while start + read[position] < stop:
                got = handle.readinto(view[start + read[position]:stop])
                if not got:
                    break
                read[position] += got
    return read


def _path_names(paths: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The paths (a string array without nulls) as the NUL-terminated bytes and start offsets of
    :mod:`hf_mmbuilder.kernels.file_bytes`; a path holding a NUL byte is refused as ``open`` refuses it."""
    if paths.null_count:
        raise ValueError(f"a null among {len(paths)} file paths")
    holding_nul = np.flatnonzero(pc.match_substring(paths, "\0").to_numpy(zero_copy_only=False))
    if len(holding_nul):
        raise ValueError(f"{paths[int(holding_nul[0])].as_py()!r}: embedded null byte in a file path")
    buffers = string_buffers(pc.binary_join_element_wise(paths, "", "\0"))
    return buffers.data, buffers.offsets.astype(np.int64)


def file_sizes(paths: pa.Array) -> np.ndarray:
    """The size in bytes (``int64``) of the file at each of ``paths`` (a string array), -1 for
    one that cannot be opened for reading (absent, not permitted). One compiled call for all
    (:func:`hf_mmbuilder.kernels.file_bytes.file_sizes`), the GIL let go throughout.

    Example:
        >>> file_sizes(pa.array([__file__, "/no/such/file"])).tolist() == [os.path.getsize(__file__), -1]
        True
    """
    if not len(paths):
        return np.zeros(0, dtype=np.int64)
    names, offsets = _path_names(paths)
    if not COMPILED_READS:
        return np.array([_size_in_python(path) for path in paths.to_pylist()], dtype=np.int64)
    return file_bytes.file_sizes(names, offsets, _READ_FLAGS)


def head_digests(paths: pa.Array, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit digest (:func:`hf_mmbuilder.kernels.exact_hash.digests128`) of the first
    ``lengths[i]`` bytes of the file at ``paths[i]`` (a string array), for every file in one
    compiled call (:func:`hf_mmbuilder.kernels.file_bytes.head_digests`) that lets go of the GIL
    and holds one head at a time. Returns ``(read, digests)``: the bytes read of each file
    (``int64``, -1: it could not be opened; never raised) and the ``uint64 (n, 2)`` digest of
    those bytes.

    Example:
        >>> read, digests = head_digests(pa.array([__file__, "/no/such/file"]), np.array([4, 4]))
        >>> read.tolist(), digests.shape
        ([4, -1], (2, 2))
    """
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    if lengths.shape != (len(paths),) or (lengths < 0).any():
        raise ValueError(f"{len(paths)} files need as many lengths >= 0, got shape {lengths.shape}")
    if not len(paths):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.uint64)
    if not COMPILED_READS:
        offsets = np.zeros(len(paths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        heads = np.zeros(int(offsets[-1]), dtype=np.uint8)
        read = _read_in_python(paths.to_pylist(), offsets, heads)
        # Each head's bytes read and the gap after them (what a short read left unread) as
        # strings of their own: every other digest is a head's.
        bounds = np.stack([offsets[:-1], offsets[:-1] + np.maximum(read, 0)], axis=1).reshape(-1)
        return read, digests128(heads, np.append(bounds, offsets[-1]))[::2]
    names, name_offsets = _path_names(paths)
    return file_bytes.head_digests(names, name_offsets, _READ_FLAGS, lengths, np.uint64(0))


def read_files(paths: pa.Array, offsets: np.ndarray, into: np.ndarray, *, strict: bool = True) -> np.ndarray:
    """Read the first ``offsets[i + 1] - offsets[i]`` bytes of the file at ``paths[i]`` (a string
    array) into ``into[offsets[i]:offsets[i + 1]]`` (``uint8``), for every file in one compiled
    call (:func:`hf_mmbuilder.kernels.file_bytes.read_files`), the GIL let go throughout. Returns
    the bytes read of each file (``int64``; -1: it could not be opened).

    ``strict``: a file that cannot be opened, or ends before its bytes are read, is read again in
    Python: the ``OSError`` that raises (``FileNotFoundError``, ``PermissionError``, ...) names its
    path, and a file still too short raises an ``OSError`` naming the path and both sizes.

    Example:
        >>> into = np.zeros(4, dtype=np.uint8)
        >>> read_files(pa.array([__file__]), np.array([0, 4]), into).tolist()
        [4]
        >>> bytes(into) == open(__file__, "rb").read(4)
        True
        >>> read_files(pa.array(["/no/such/file"]), np.array([0, 1]), into)
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: '/no/such/file'
    """
    if not len(paths):
        return np.zeros(0, dtype=np.int64)
    names, name_offsets = _path_names(paths)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets.shape[0] != len(paths) + 1 or (offsets[-1] > into.shape[0]) or (np.diff(offsets) < 0).any() or offsets[0] < 0:
        raise ValueError(f"offsets of {len(paths)} files do not lie within {into.shape[0]} bytes")
    read = file_bytes.read_files(names, name_offsets, _READ_FLAGS, into, offsets) if COMPILED_READS else \
        _read_in_python(paths.to_pylist(), offsets, into)
    for position in np.flatnonzero(read != np.diff(offsets)) if strict else ():
        path, start, stop = paths[int(position)].as_py(), int(offsets[position]), int(offsets[position + 1])
        view = memoryview(into)[start:stop]
        with _open_for_reading(path) as handle:
            done = 0
            while done < stop - start:
                # None: nothing to read now (a FIFO opened without blocking).
                got = handle.readinto(view[done:])
                if not got:
                    raise OSError(f"{path}: the file ended after {done} of the {stop - start} bytes to read (it changed while it was read)")
                done += got
        read[position] = done
    return read


def media_missing(path: str, media_root: Optional[str]) -> bool:
    """Whether ``path`` (resolved against ``media_root``) names a local file that does not exist.
    A URL or ``data:`` URI (as the path, or as the resolved path of a remote ``media_root``) is
    never missing: checking media is about local files, and probing a URL would cost a request
    per record.

    Example:
        >>> media_missing("missing.mp4", "/tmp"), media_missing("https://example.com/a.jpg", "/tmp")
        (True, False)
    """
    resolved = resolve_media_path(path, media_root)
    if "://" in resolved or path.startswith("data:"):
        return False
    return not os.path.exists(resolved)


def check_media_exists(paths: Iterable[str], media_root: Optional[str]) -> None:
    """Raise ``ValueError`` naming the first path of ``paths`` with no file under ``media_root``
    (see :func:`media_missing`).

    Example:
        >>> check_media_exists(["missing.mp4"], "/tmp")
        Traceback (most recent call last):
        ...
        ValueError: media file 'missing.mp4' not found (looked for /tmp/missing.mp4)
    """
    for path in paths:
        if media_missing(path, media_root):
            raise ValueError(f"media file {path!r} not found (looked for {resolve_media_path(path, media_root)})")


def decode_media(dataset, columns=("images", "audios", "videos")):
    """Return ``dataset`` with its media path columns cast to ``List(Image())`` /
    ``List(PyAVAudio())`` / ``List(PyAVVideo())``, for viewing, embedding and training.

    Relative paths are resolved against each row's ``media_root`` first, so the cast reads the
    right files; nothing is read until a row is accessed (datasets decodes lazily). Audio and video
    decode through PyAV (:mod:`hf_mmbuilder.decoders`): ``row["audios"][0]["array"]`` is the PCM,
    ``row["videos"][0].sample_frames(8)`` eight frames. Keep the original dataset for export: it
    has the paths exactly as the source wrote them.

    Raises ``ImportError`` naming the extra to install when the dataset has audio or video columns
    and PyAV is missing, here rather than at the first row read.

    Example:
        >>> ds = hf_mmbuilder.load("llava", "llava.json", split="train")  # doctest: +SKIP
        >>> decode_media(ds)[0]["images"][0].size  # doctest: +SKIP
        (640, 480)
    """
    from datasets import Image, List

    from .decoders import PyAVAudio, PyAVVideo

    feature_of = {"images": Image(), "audios": PyAVAudio(), "videos": PyAVVideo()}
    present = [column for column in columns if column in dataset.column_names]
    if not present:
        return dataset
    if {"audios", "videos"} & set(present) and importlib.util.find_spec("av") is None:
        raise ImportError("decode_media: decoding the audios/videos columns needs PyAV, which ships FFmpeg in its "
                          "wheel: pip install 'hf_mmbuilder[video]' (or pass columns=('images',))")
    has_root = "media_root" in dataset.column_names

    def resolve(batch):
        roots = batch["media_root"] if has_root else [None] * len(batch[present[0]])
        return {
            column: [[resolve_media_path(path, root) for path in paths or ()] for paths, root in zip(batch[column], roots)]
            for column in present
        }

    resolved = dataset.map(resolve, batched=True, desc="resolving media paths")
    features = resolved.features.copy()
    for column in present:
        features[column] = List(feature_of[column])
    return resolved.cast(features)
