"""What the report shows for each media item: a bounded JPEG thumbnail of an image (never the full
image), a copy of a small audio or video file for the page's player, or why there is none.

Audio and video files are copied, not linked, up to :data:`MEDIA_FILE_BYTES` each and
:data:`MEDIA_BUDGET_BYTES` in all: a copied report stays playable wherever it is moved or
published. A bigger file is referenced by its path relative to the report's final folder, so the
player still works while the report stays beside the data, and the folder stays bounded. URLs are
never fetched (the report is built and opened without network).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import xxhash
from PIL import Image

from ..media import resolve_media_path

THUMBNAIL_PIXELS = 256            # longest side of an image thumbnail
THUMBNAIL_QUALITY = 80            # JPEG quality of thumbnails (about 10 KB each)
MEDIA_FILE_BYTES = 16 * 2**20     # largest audio/video file copied into the report
MEDIA_BUDGET_BYTES = 64 * 2**20   # all copied audio/video files together
MEDIA_FOLDER = "media"


@dataclasses.dataclass
class Previews:
    """Builds the previews of one report into ``folder/media`` and remembers each item's entry.

    ``final_folder`` is where the report will live (it may be built in a staging folder first):
    links to media too big to copy are relative to it.

    An entry is ``{"kind", "path", "src"}`` (``src`` relative to the report folder, or ``None``)
    plus ``"note"`` saying why an item has no preview or is linked rather than copied.

    Example:
        >>> import tempfile
        >>> work = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (1024, 512), (0, 90, 200)).save(work / "wide.png")
        >>> previews = Previews(work / "report", work / "report")
        >>> entry = previews.entry("image", "wide.png", str(work))
        >>> entry["src"].startswith("media/"), Image.open(work / "report" / entry["src"]).size
        (True, (256, 128))
        >>> previews.entry("image", "http://example.com/a.jpg", None)["note"]
        'remote file, not fetched'
    """

    folder: Path
    final_folder: Path
    copied_bytes: int = 0
    entries: dict = dataclasses.field(default_factory=dict)

    def entry(self, kind: str, path: Optional[str], media_root: Optional[str]) -> dict:
        key = (kind, path, media_root)
        if key not in self.entries:
            self.entries[key] = self._build(kind, path, media_root)
        return self.entries[key]

    def prepare(self, keys) -> None:
        """Build the entries of many ``(kind, path, media_root)`` keys at once: image thumbnails on
        a thread per core (Pillow decodes and resizes without the GIL), audio and video in order
        (their copies share one byte budget)."""
        todo = list(dict.fromkeys(key for key in keys if key not in self.entries))
        images = [key for key in todo if key[0] == "image"]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for key, entry in zip(images, pool.map(lambda key: self._build(*key), images)):
                self.entries[key] = entry
        for key in todo:
            if key[0] != "image":
                self.entry(*key)

    def _build(self, kind: str, path: Optional[str], media_root: Optional[str]) -> dict:
        entry = {"kind": kind, "path": path, "src": None}
        if not path:
            return {**entry, "note": "no path"}
        if "://" in path or path.startswith("data:"):
            return {**entry, "note": "remote file, not fetched"}
        resolved = resolve_media_path(path, media_root)
        try:
            size = os.path.getsize(resolved)
        except OSError as error:
            return {**entry, "note": f"cannot read {resolved}: {error.strerror or error}"}
        digest = xxhash.xxh3_64_hexdigest(f"{kind}\0{os.path.abspath(resolved)}\0{size}".encode())
        media = Path(self.folder) / MEDIA_FOLDER
        media.mkdir(parents=True, exist_ok=True)
        if kind == "image":
            name = f"{digest}.jpg"
            try:
                _thumbnail(resolved, media / name)
            except Exception as error:  # any decoder failure (truncated, not an image, bomb) is shown, not raised
                return {**entry, "note": f"unreadable image {resolved}: {type(error).__name__}: {error}"}
            return {**entry, "src": f"{MEDIA_FOLDER}/{name}"}
        if size > MEDIA_FILE_BYTES or self.copied_bytes + size > MEDIA_BUDGET_BYTES:
            link = os.path.relpath(os.path.abspath(resolved), os.path.abspath(self.final_folder))
            return {**entry, "src": Path(link).as_posix(),
                    "note": f"{size / 2**20:.1f} MB: linked from the report's folder, not copied"}
        name = f"{digest}{os.path.splitext(resolved)[1].lower()}"
        shutil.copyfile(resolved, media / name)
        self.copied_bytes += size
        return {**entry, "src": f"{MEDIA_FOLDER}/{name}"}


def _thumbnail(source: str, target: Path) -> None:
    with Image.open(source) as image:
        # JPEG decodes at a reduced scale straight away (a 4000-pixel photo never decodes in
        # full): the smallest scale still at least the thumbnail's size.
        scale = min(1.0, THUMBNAIL_PIXELS / max(image.size))
        image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        # Bilinear after the draft's reduction: a Lanczos pass costs several times more for no
        # visible gain at thumbnail size.
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS), Image.Resampling.BILINEAR)
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        elif image.mode != "RGB":
            image = image.convert("RGB")
        image.save(target, "JPEG", quality=THUMBNAIL_QUALITY)
