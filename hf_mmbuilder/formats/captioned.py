"""What the one-clip-one-caption formats share (WavCaps, Video-ChatGPT, Youku-mPLUG, InternVid,
MSR-VTT): Data-Juicer's caption layout and its options.

Data-Juicer's video converters all build the text the same way (``convert_text_to_dj`` in its
``tools/fmt_conversion/multimodal/utils.py``): the video token goes ``before`` or ``after`` the
caption (or either at ``random``), joined by ``sent_separator``, and ``add_eoc_at_last`` appends
``sent_separator + eoc``. :func:`wrap_caption` builds that text and :func:`unwrap_caption` reads the
caption back out of it for export (the token position is recognised, so ``random`` needs nothing
stored).
"""

from __future__ import annotations

import dataclasses
import random

import pyarrow as pa
import pyarrow.compute as pc

from ..media import MediaFinder, check_media_exists
from .builder import DJBuilder, DJBuilderConfig, Shard
from .records import check_no_dj_tokens
from .exporter import CsvExporter, RowExporter


INSERT_POSITIONS = ("before", "after", "random")


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".flv", ".m4v", ".wmv", ".mpg", ".mpeg", ".3gp", ".ts")


@dataclasses.dataclass
class CaptionConfig(DJBuilderConfig):
    """Data-Juicer's caption options (same names and defaults as its ``*_to_dj.py`` converters).

    - ``add_eoc_at_last``: end the text with ``sent_separator + eoc_special_token``.
    - ``sent_separator``: joins the token, the caption and the final eoc.
    - ``video_special_token_insert_pos``: ``"before"``, ``"after"`` or ``"random"`` (seeded by ``seed``).
    - ``keep_other_fields``: keep the record's other fields (``False`` drops them, so such rows
      export without them).
    """

    add_eoc_at_last: bool = True
    sent_separator: str = " "
    video_special_token_insert_pos: str = "before"
    keep_other_fields: bool = True
    seed: int = 42

    def __post_init__(self):
        super().__post_init__()
        if self.video_special_token_insert_pos not in INSERT_POSITIONS:
            raise ValueError(
                f"video_special_token_insert_pos must be one of {INSERT_POSITIONS}, got {self.video_special_token_insert_pos!r}"
            )


def wrap_caption(caption: str, token: str, config: CaptionConfig, rng: random.Random) -> str:
    """Data-Juicer's text for one clip: ``token + sep + caption`` (or ``caption + sep + token``),
    then ``sep + eoc`` with ``add_eoc_at_last``. O(len(caption)).

    Example:
        >>> wrap_caption("a dog", "<v>", CaptionConfig(eoc_special_token="<e>"), random.Random(0))
        '<v> a dog <e>'
    """
    check_no_dj_tokens(caption, dj_tokens(config), "the caption")
    separator = config.sent_separator
    position = config.video_special_token_insert_pos
    if position == "random":
        position = "before" if rng.random() < 0.5 else "after"
    text = token + separator + caption if position == "before" else caption + separator + token
    if config.add_eoc_at_last:
        text += separator + config.eoc_special_token
    return text


def dj_tokens(config) -> tuple:
    """The four DJ tokens of a config (a caption may hold none of them, see
    :func:`~hf_mmbuilder.formats.records.check_no_dj_tokens`).

    Example:
        >>> dj_tokens(CaptionConfig())
        ('<__dj__image>', '<__dj__audio>', '<__dj__video>', '<|__dj__eoc|>')
    """
    return tuple(dict.fromkeys((config.image_special_token, config.audio_special_token, config.video_special_token, config.eoc_special_token)))


def hold_dj_tokens(parts: list, config) -> bool:
    """Whether a string array of ``parts`` (captions of a batch; ``str`` parts are markers and
    skipped) holds a DJ token: the batched paths then leave the batch to :func:`wrap_caption`,
    which reports each such record. O(total caption length) per token.

    Example:
        >>> hold_dj_tokens(["[[q]]:", pa.array(["a <|__dj__eoc|> b"])], CaptionConfig())
        True
    """
    arrays = [part for part in parts if isinstance(part, (pa.Array, pa.ChunkedArray))]
    return any(pc.any(pc.match_substring(array, token)).as_py() for array in arrays for token in dj_tokens(config))


def unwrap_caption(text: str, token: str, config) -> str:
    """The caption inside a text built by :func:`wrap_caption` (edits in between are kept);
    raises ``ValueError`` when the text no longer has that layout. O(len(text)).

    Example:
        >>> unwrap_caption("<v> a dog <e>", "<v>", CaptionConfig(eoc_special_token="<e>"))
        'a dog'
    """
    separator = config.sent_separator
    if config.add_eoc_at_last:
        suffix = separator + config.eoc_special_token
        if not text.endswith(suffix):
            raise ValueError(f"text does not end with {suffix!r}")
        text = text[: -len(suffix)]
    if text.startswith(token + separator):
        caption = text[len(token + separator) :]
    elif text.endswith(separator + token):
        caption = text[: -len(separator + token)]
    elif text == token:
        caption = ""
    else:
        raise ValueError(f"text has no {token!r} at its start or end")
    if token in caption:
        raise ValueError(f"text has more than one {token!r} token")
    return caption


def wrap_captions(parts: list, rows: int, token: str, config: CaptionConfig, rng: random.Random) -> pa.Array:
    """:func:`wrap_caption` of ``rows`` captions at once: each caption is the concatenation of
    ``parts`` (string arrays without nulls, or ``str`` constants). ``random`` draws ``rng`` once
    per row in row order, as :func:`wrap_caption` does. O(total text length).

    Example:
        >>> config = CaptionConfig(eoc_special_token="<e>")
        >>> wrap_captions(["[[q]]:", pa.array(["a dog"])], 1, "<v>", config, random.Random(0)).to_pylist()
        ['<v> [[q]]:a dog <e>']
    """
    separator = config.sent_separator
    eoc = [separator, config.eoc_special_token] if config.add_eoc_at_last else []
    position = config.video_special_token_insert_pos

    def join(pieces: list) -> pa.Array:
        if not any(isinstance(piece, (pa.Array, pa.ChunkedArray)) for piece in pieces):
            return pa.array(["".join(pieces)] * rows, pa.string())
        return pc.binary_join_element_wise(*pieces, "")

    before = [token, separator, *parts, *eoc]
    after = [*parts, separator, token, *eoc]
    if position == "before":
        return join(before)
    if position == "after":
        return join(after)
    draws = pa.array([rng.random() < 0.5 for _ in range(rows)], pa.bool_())
    return pc.if_else(draws, join(before), join(after))


def single_media(row: dict, column: str, token: str) -> str:
    """The one media path of a one-clip row; ``ValueError`` if the row has none or several (an
    edit that dropped the clip cannot be written back to a format that is one clip per record).

    Example:
        >>> single_media({"videos": ["v.mp4"], "text": "<v> hi"}, "videos", "<v>")
        'v.mp4'
    """
    paths = row.get(column) or []
    if len(paths) != 1:
        raise ValueError(f"a record of this format has exactly one {column[:-1]}, the row has {len(paths)}")
    text = row.get("text") or ""
    if text.count(token) != 1:
        raise ValueError(f"text has {text.count(token)} {token} token(s) for 1 path in {column}")
    return paths[0]


class CaptionedVideoBuilder(DJBuilder):
    """Base of the builders of one-video-one-caption records named by a video id: the shard's
    videos are found by stem in its media root, as Data-Juicer's converters look them up.

    The lookup itself (:class:`~hf_mmbuilder.media.MediaFinder`) lives in :mod:`hf_mmbuilder.media`:
    ``datasets`` patches the file functions of every builder class's module for streaming.
    """

    def video_finder(self, shard: Shard) -> MediaFinder:
        """The video files directly in the shard's media root, listed once (lazily)."""
        return MediaFinder(shard.media_root, recursive=False, extensions=VIDEO_EXTENSIONS)

    def video_path(self, finder: MediaFinder, stem: str, shard: Shard, suffix: str = "") -> str:
        """The file of the media root with that stem, else ``stem + suffix``; with ``check_media``
        a missing file is a ``ValueError`` (a bad record)."""
        path = finder.by_stem(stem) or stem + suffix
        if self.config.check_media:
            check_media_exists([path], shard.media_root)
        return path


class CaptionExporter(RowExporter):
    """Base of the one-video-one-caption exporters: the row's one video and its caption, cut back
    out of ``text`` as :func:`wrap_caption` built it (edits kept)."""

    def video(self, row: dict) -> str:
        """The row's one video path (:func:`single_media`), refused if it leaves its media root."""
        path = single_media(row, "videos", self.options.video_special_token)
        self.check_media_path(path, row.get("media_root"))
        return path

    def caption(self, row: dict) -> str:
        """The caption inside the row's text (:func:`unwrap_caption`)."""
        return unwrap_caption(row["text"], self.options.video_special_token, self.options)


class CsvCaptionExporter(CsvExporter, CaptionExporter):
    """Base of the caption exporters that write CSV rows under the source file's header."""

    @staticmethod
    def cells(header: list, known: dict, other: dict) -> list:
        """The cells of ``header``: a column's value from ``known`` (the media and caption
        columns), else from ``other`` (the row's other source fields); ``ValueError`` names a
        column found in neither.

        Example:
            >>> CsvCaptionExporter.cells(["video", "title", "tag"], {"video": "v.mp4", "title": "hi"}, {"tag": "x"})
            ['v.mp4', 'hi', 'x']
        """
        cells = []
        for column in header:
            if column in known:
                cells.append(known[column])
            elif column in other:
                cells.append(other[column])
            else:
                raise ValueError(f"row has no value for the CSV column {column!r}")
        return cells
