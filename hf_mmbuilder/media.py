"""Media paths: resolving them for reading, and refusing paths that escape their root.

DJ media columns keep paths exactly as the source wrote them (so exports write them back
unchanged). Relative paths are read from ``media_root`` (by default the data file's folder, stored
per row in the ``media_root`` column so datasets from different folders concatenate).
"""

from __future__ import annotations

import os
from typing import Optional


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


def decode_media(dataset, columns=("images", "audios", "videos")):
    """Return ``dataset`` with its media path columns cast to ``List(Image())`` / ``List(Audio())`` /
    ``List(Video())``, for viewing, embedding and training.

    Relative paths are resolved against each row's ``media_root`` first, so the cast reads the
    right files; nothing is read until a row is accessed (datasets decodes lazily). Keep the
    original dataset for export: it has the paths exactly as the source wrote them.

    Example:
        >>> ds = hf_mmbuilder.load("llava", "llava.json", split="train")  # doctest: +SKIP
        >>> decode_media(ds)[0]["images"][0].size  # doctest: +SKIP
        (640, 480)
    """
    from datasets import Audio, Image, List, Video

    feature_of = {"images": Image(), "audios": Audio(), "videos": Video()}
    present = [column for column in columns if column in dataset.column_names]
    if not present:
        return dataset
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
