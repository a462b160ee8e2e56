"""Media paths: resolving them for reading, and refusing paths that escape their root.

DJ media columns keep paths exactly as the source wrote them (so exports write them back
unchanged). Relative paths are read from ``media_root`` (by default the data file's folder, stored
per row in the ``media_root`` column so datasets from different folders concatenate).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Iterable, Optional

import pyarrow as pa
import pyarrow.compute as pc


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
        names_found, stems_found = self._names, self._stems
        extensions = tuple(self.extensions)
        walk = os.walk(self.root) if self.recursive else [(self.root, [], os.listdir(self.root))]
        for folder, subfolders, names in walk:
            # A name found twice resolves to its first place in sorted order, the same on every
            # machine (Data-Juicer keeps whichever one os.walk happens to list last).
            subfolders.sort()
            relative_folder = os.path.relpath(folder, self.root)
            prefix = "" if relative_folder == "." else os.path.join(relative_folder, "")
            for name in sorted(names):
                relative = prefix + name
                names_found.setdefault(name, relative)
                # os.path.splitext's extension, for names ending with one of ours (one dot each):
                # the stem must hold more than dots, as a leading dot starts no extension.
                if name.lower().endswith(extensions):
                    stem = name[: name.rfind(".")]
                    if stem.strip("."):
                        stems_found.setdefault(stem, relative)

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

    def paths_by_stem(self, stems: pa.Array, fallback_suffix: str = "") -> pa.Array:
        """``by_stem(stem) or stem + fallback_suffix`` for a whole string array; O(n) dict lookups,
        none when the folder holds no matching file (the usual case: media elsewhere).

        Example:
            >>> MediaFinder("/nonexistent", False, (".mp4",)).paths_by_stem(pa.array(["video7"]), ".mp4").to_pylist()
            ['video7.mp4']
        """
        found = self.stems()
        if not found:
            return pc.binary_join_element_wise(stems, fallback_suffix, "") if fallback_suffix else stems
        return pa.array([found.get(stem) or stem + fallback_suffix for stem in stems.to_pylist()], pa.string())


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
