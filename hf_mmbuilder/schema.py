"""The Data-Juicer (DJ) data contract: special tokens, features and the alignment invariant.

Every builder yields the DJ columns ``text``, ``images``, ``audios`` and ``videos``. The k-th image
token in ``text`` refers to ``images[k]`` (likewise for audio and video), and ``text`` is cut into
chunks by the end-of-chunk token. Tokens are configurable per builder; the defaults are
Data-Juicer's canonical tokens so datasets from different formats concatenate with one vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Features, List, Value

from .arrow import iter_tables

IMAGE_TOKEN = "<__dj__image>"
AUDIO_TOKEN = "<__dj__audio>"
VIDEO_TOKEN = "<__dj__video>"
EOC_TOKEN = "<|__dj__eoc|>"

MEDIA_COLUMNS = ("images", "audios", "videos")

# Per row, the smallest row index of its duplicate cluster (dedup's output; the splits keep a
# cluster on one side).
CLUSTER_COLUMN = "cluster_id"

# Role markers as the LLaVA/ShareGPT builders write them at a line start: "[[human]]: ".
ROLE_MARKER_PATTERN = r"(?m:^\[\[[^\]\n]{1,64}\]\]:)"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The tokens a DJ ``text`` uses for media placeholders and chunk ends.

    Example:
        >>> tokens = SpecialTokens(image="<image>")
        >>> tokens.for_column("images")
        '<image>'
    """

    image: str = IMAGE_TOKEN
    audio: str = AUDIO_TOKEN
    video: str = VIDEO_TOKEN
    eoc: str = EOC_TOKEN

    def for_column(self, media_column: str) -> str:
        """Return the placeholder token of a media column (``images``, ``audios`` or ``videos``).

        Example:
            >>> SpecialTokens().for_column("videos")
            '<__dj__video>'
        """
        return {"images": self.image, "audios": self.audio, "videos": self.video}[media_column]


DEFAULT_TOKENS = SpecialTokens()


def dj_features(extra: Mapping | None = None) -> Features:
    """Return the DJ ``Features``: ``text`` plus the three media path lists, then ``extra`` columns.

    Example:
        >>> from datasets import Value
        >>> list(dj_features({"id": Value("string")}))
        ['text', 'images', 'audios', 'videos', 'id']
    """
    features = {
        "text": Value("string"),
        "images": List(Value("string")),
        "audios": List(Value("string")),
        "videos": List(Value("string")),
    }
    features.update(extra or {})
    return Features(features)


def count_tokens(text: str, token: str) -> int:
    """Count non-overlapping occurrences of ``token`` in ``text`` (``None`` text counts 0).

    Example:
        >>> count_tokens("<__dj__image> a <__dj__image> b", IMAGE_TOKEN)
        2
    """
    return text.count(token) if text else 0


def split_chunks(text: str, eoc: str = EOC_TOKEN) -> list[str]:
    """Split a DJ text into its chunks at the end-of-chunk token; a trailing token ends the last chunk.

    Surrounding whitespace of each chunk is kept, so joining the chunks back with ``eoc`` (and the
    trailing token when there was one) restores the text exactly.

    Example:
        >>> split_chunks("a <|__dj__eoc|> b <|__dj__eoc|>")
        ['a ', ' b ']
    """
    parts = text.split(eoc)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


@dataclasses.dataclass(frozen=True)
class AlignmentError:
    """One row whose media-token count differs from the length of its media list."""

    row: int
    column: str
    tokens: int
    media: int

    def __str__(self) -> str:
        return (
            f"row {self.row}: text has {self.tokens} {self.column} token(s) "
            f"but the {self.column} list has {self.media} path(s)"
        )


# How a conversation turn starts in DJ text (Data-Juicer's llava_to_dj.py writes it so).
ROLE_FORMAT = "[[%s]]: "


def split_role_turns(text: str, roles: Sequence[str], separator: str, unit: str = "turn") -> list[str]:
    """Cut DJ conversation text ``[[role]]: value`` + ``separator`` + ... back into its values.

    ``roles`` are the turns' roles in order; turn k ends where ``separator`` + the marker of turn
    k + 1 starts. Raises ``ValueError`` (naming the ``unit``: turn, message ...) when a marker is
    not where expected, or when there is text but no roles. O(len(text)).

    Example:
        >>> split_role_turns("[[human]]: hi\\n[[gpt]]: hello", ["human", "gpt"], "\\n")
        ['hi', 'hello']
    """
    values = []
    position = 0
    for index, role in enumerate(roles):
        marker = ROLE_FORMAT % role
        if not text.startswith(marker, position):
            raise ValueError(f"text does not have the role marker {marker!r} of {unit} {index} where expected")
        start = position + len(marker)
        if index + 1 < len(roles):
            end = text.find(separator + ROLE_FORMAT % roles[index + 1], start)
            if end < 0:
                raise ValueError(f"text has no role marker for {unit} {index + 1} ({roles[index + 1]!r})")
            position = end + len(separator)
        else:
            end = len(text)
        values.append(text[start:end])
    if not roles and text:
        raise ValueError(f"row has text but no roles: cannot cut it into {unit}s")
    return values


def alignment_errors(
    table: pa.Table | Mapping[str, Sequence],
    tokens: SpecialTokens = DEFAULT_TOKENS,
    row_offset: int = 0,
) -> list[AlignmentError]:
    """Check the alignment invariant on a batch and return every offending (row, media column).

    ``table`` is an Arrow table or a dict of columns (a ``.map(batched=True)`` batch). Counting runs
    in Arrow compute kernels, so a million rows take well under a second. Missing media columns
    count as empty lists; a null ``text`` counts as zero tokens.

    Example:
        >>> alignment_errors({"text": ["<__dj__image> hi", "no image"],
        ...                   "images": [["a.jpg"], ["b.jpg"]]})[0].row
        1
    """
    if not isinstance(table, pa.Table):
        table = pa.table({name: table[name] for name in ("text", *MEDIA_COLUMNS) if name in table})
    text = table.column("text")
    errors: list[AlignmentError] = []
    for column in MEDIA_COLUMNS:
        token_counts = pc.fill_null(pc.count_substring(text, tokens.for_column(column)), 0)
        if column in table.column_names:
            media_counts = pc.fill_null(pc.list_value_length(table.column(column)), 0)
        else:
            media_counts = pa.repeat(0, len(table)).cast(token_counts.type)
        mismatched = pc.not_equal(token_counts, media_counts.cast(token_counts.type))
        for row in pc.indices_nonzero(mismatched).to_pylist():
            errors.append(
                AlignmentError(
                    row_offset + row,
                    column,
                    token_counts[row].as_py(),
                    media_counts[row].as_py(),
                )
            )
    errors.sort(key=lambda error: (error.row, error.column))
    return errors


def validate_alignment(dataset, tokens: SpecialTokens = DEFAULT_TOKENS, batch_size: int = 100_000) -> list[AlignmentError]:
    """Check the alignment invariant over a whole ``Dataset`` (or any iterable of Arrow tables).

    Returns the list of offending rows (empty when the dataset is aligned); it never raises for
    misaligned data, so callers decide what to do with the report.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image>"], "images": [[]]})
        >>> [str(e) for e in validate_alignment(ds)]
        ['row 0: text has 1 images token(s) but the images list has 0 path(s)']
    """
    errors: list[AlignmentError] = []
    for offset, table in iter_tables(dataset, batch_size):
        errors.extend(alignment_errors(table, tokens, row_offset=offset))
    return errors
