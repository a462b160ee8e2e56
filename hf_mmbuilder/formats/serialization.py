"""The written style of a source file, found at load and written again on export.

A JSON file is written in one style when restyling its compact form gives the file back for one
:class:`SourceStyle` (layout, indentation, separators, ``ensure_ascii``, Python's float notation,
line break, final newline) and every string is escaped as the writer escapes it
(:mod:`hf_mmbuilder.kernels.json_style`); a CSV file's style is its line break and final newline.
The loaders record per row, in the ``source_style`` column (:data:`STYLE_COLUMN`: one value per
file, so it survives ``map``/``filter``/``select``/``concatenate`` as the rows do), a claim on the
file as it was read (:func:`style_claim`: its path, size and modification time), not the style
itself: finding a style reads the whole file, which loading does not need, so the proof is made
when a writer needs it (:func:`proven_style`, once per file and process) and only if the file is
unchanged since it was loaded. The exporters write a file in the style its rows share
(:func:`dataset_style`), so ``export(load(x)) == x`` byte for byte for a file written in one
style; a file in no single style, rows from files of different styles, or a file changed or gone
since it was loaded get the exporter's own layout, :data:`DEFAULT_STYLE`. Publishing writes the
proven style in place of the claim (:func:`proven_styles`), so no local path leaves the machine.
"""

from __future__ import annotations

import dataclasses
import functools
import mmap
import os
from typing import Optional

import datasets
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..kernels import json_style

STYLE_COLUMN = "source_style"
# Files read through these openers (archives, compression) are not checked: None, the default style.
_PLAIN_SUFFIXES = (".json", ".jsonl", ".csv")


@dataclasses.dataclass(frozen=True)
class SourceStyle:
    """How a file is written.

    - ``layout``: ``"lines"`` (JSON lines), ``"document"`` (one JSON object, ``.json``: WavCaps,
      MSR-VTT; its exporter lays out the records inside), ``"array"`` (one JSON array as
      ``json.dump`` writes it, on one line or indented), ``"array_lines"`` (an array with one
      record per line, the exporter's own), ``"csv"``.
    - ``indent``: the indentation of one level (``None``: no line breaks inside values).
    - ``item``, ``key``: the separators (``json.dump``'s ``separators``).
    - ``ascii``: non-ASCII written as ``\\uXXXX`` (``ensure_ascii``).
    - ``newline``: the line break (``"\\n"`` or ``"\\r\\n"``); ``final_newline``: the file ends with one.
    - ``python_floats``: floats in Python's ``repr`` notation (``1e-05``), else as orjson writes them.

    Example:
        >>> SourceStyle.from_text(SourceStyle("array", "  ", ",", ": ").to_text())
        SourceStyle(layout='array', indent='  ', item=',', key=': ', ascii=False, newline='\\n', final_newline=True, python_floats=True)
    """

    layout: str
    indent: Optional[str] = None
    item: str = ","
    key: str = ":"
    ascii: bool = False
    newline: str = "\n"
    final_newline: bool = True
    python_floats: bool = True

    def to_text(self) -> str:
        """The column value: a short JSON list of the fields."""
        return orjson.dumps(dataclasses.astuple(self)).decode()

    @classmethod
    def from_text(cls, text: str) -> "SourceStyle":
        return cls(*orjson.loads(text))

    def for_suffix(self, suffix: str) -> "SourceStyle":
        """This style for a file of ``suffix``. A file of another kind than the source (JSON lines
        from an array file, JSON from CSV, a DJ export of LLaVA JSON ...) is another file: it gets
        the exporter's default; a one-document file's style (WavCaps, MSR-VTT) stays for ``.json``.

        Example:
            >>> SourceStyle("array", "  ", ",", ": ").for_suffix(".jsonl") == DEFAULT_STYLE[".jsonl"]
            True
        """
        kind = {"lines": ".jsonl", "csv": ".csv"}.get(self.layout, ".json")
        if suffix != kind:
            return DEFAULT_STYLE.get(suffix, DEFAULT_STYLE[".jsonl"])
        if self.layout == "document":
            # Records of a one-document file written as an array: json.dump's.
            return dataclasses.replace(self, layout="array")
        return self


# What the exporters write when rows carry no style: compact orjson, one record per line.
DEFAULT_STYLE = {
    ".jsonl": SourceStyle("lines", python_floats=False),
    ".json": SourceStyle("array_lines", python_floats=False),
    ".csv": SourceStyle("csv", python_floats=False),
}


def dataset_style(dataset, suffix: str) -> SourceStyle:
    """The style to write ``dataset`` in: the one style all its rows' files share, else the
    default of ``suffix``. An ``IterableDataset`` is not read ahead: it gets the default.

    Example:
        >>> import datasets
        >>> style = SourceStyle("lines", None, ", ", ": ").to_text()
        >>> dataset_style(datasets.Dataset.from_dict({"source_style": [style, style]}), ".jsonl").item
        ', '
        >>> dataset_style(datasets.Dataset.from_dict({"text": ["a"]}), ".jsonl") == DEFAULT_STYLE[".jsonl"]
        True
    """
    default = DEFAULT_STYLE.get(suffix, DEFAULT_STYLE[".jsonl"])
    if not isinstance(dataset, datasets.Dataset) or STYLE_COLUMN not in dataset.column_names or len(dataset) == 0:
        return default
    claims, styles = set(), set()
    for batch in dataset.select_columns([STYLE_COLUMN]).with_format("arrow").iter(batch_size=1 << 16):
        for value in pc.unique(batch.column(STYLE_COLUMN)).to_pylist():
            if value not in claims:
                claims.add(value)
                styles.add(proven_style(value))
                if len(styles) > 1:
                    return default
    style = styles.pop()
    return default if style is None else SourceStyle.from_text(style).for_suffix(suffix)


def _words(style: SourceStyle) -> tuple:
    encode = lambda value: np.frombuffer(value.encode(), np.uint8)  # noqa: E731
    return (
        np.uint8(style.indent is not None), encode(style.indent or ""), encode(style.item), encode(style.key),
        encode(style.newline), np.uint8(style.ascii), np.uint8(style.python_floats),
    )


class StyledText:
    """Compact JSON in, styled JSON out, streamed (one state across calls).

    Example:
        >>> text = StyledText(SourceStyle("array", "  ", ",", ": "))
        >>> print((text.feed(b'[{"a":[1,{}],"b":"\\xc3\\xa9"},') + text.feed(b'[]]')).decode())
        [
          {
            "a": [
              1,
              {}
            ],
            "b": "é"
          },
          []
        ]
    """

    def __init__(self, style: SourceStyle):
        self.words = _words(style)
        self.state = json_style.new_state()
        self.buffer = np.empty(1 << 16, np.uint8)

    def feed(self, data) -> bytes:
        source = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
        pieces = []
        position, stop = 0, source.shape[0]
        while True:
            # Room for the usual growth (spaces, indentation, escapes), at most 64 MB at a time.
            needed = min(4 * (stop - position) + 4096, 1 << 26)
            if self.buffer.shape[0] < needed:
                self.buffer = np.empty(needed, np.uint8)
            position, written = json_style.restyle(source, position, stop, self.buffer, 0, self.state, *self.words)
            pieces.append(self.buffer[:written].tobytes())
            if position >= stop:
                return b"".join(pieces)
            if written == 0:
                self.buffer = np.empty(self.buffer.shape[0] * 2, np.uint8)

    @property
    def depth(self) -> int:
        return int(self.state[json_style.DEPTH])


class RecordWriter:
    """JSON records written into a binary handle in a :class:`SourceStyle`: the framing of its
    layout (array brackets, record separators, final newline) around each styled record.

    Example:
        >>> import io
        >>> handle = io.BytesIO()
        >>> writer = RecordWriter(handle, SourceStyle("lines", None, ", ", ": ", final_newline=False))
        >>> writer.write(b'{"a":1,"b":[2.5,0.00001]}'); writer.write(b'{"a":2}'); writer.close()
        >>> handle.getvalue()
        b'{"a": 1, "b": [2.5, 1e-05]}\\n{"a": 2}'
    """

    def __init__(self, handle, style: SourceStyle):
        self.handle = handle
        self.style = style
        self.written = 0
        self.newline = style.newline.encode()
        self.text = StyledText(style)
        # Compact, UTF-8, orjson's floats: the compact records are written as they are.
        self.plain = (style.indent is None and style.item == "," and style.key == ":" and not style.ascii
                      and style.newline == "\n" and not style.python_floats)

    def _styled(self, record) -> bytes:
        return bytes(record) if self.plain else self.text.feed(record)

    @property
    def separator(self) -> Optional[bytes]:
        """What precedes each compact record in a block for :meth:`write_block` (``None``: this
        style takes records one by one, through :meth:`write`)."""
        layout = self.style.layout
        if layout == "lines":
            return self.newline
        if layout == "array":
            return b","
        return b"," + self.newline if self.plain else None

    def write(self, record) -> None:
        """One compact record (bytes or a uint8 array)."""
        layout = self.style.layout
        if layout == "array":
            self.handle.write(self.text.feed(b"," if self.written else b"[") + self.text.feed(record))
        elif layout == "array_lines":
            self.handle.write((b"[" + self.newline if self.written == 0 else b"," + self.newline) + self._styled(record))
        else:
            if self.written:
                self.handle.write(self.newline)
            self.handle.write(self._styled(record))
        self.written += 1

    def write_block(self, block, count: int) -> None:
        """``count`` compact records, each preceded by :attr:`separator` (bytes or a uint8 array)."""
        if count == 0:
            return
        layout = self.style.layout
        body = memoryview(block)
        opening = b""
        if self.written == 0:
            body = body[len(self.separator) :]
            opening = {"lines": b"", "array": b"[", "array_lines": b"[" + self.newline}[layout]
        if self.plain:
            self.handle.write(opening)
            self.handle.write(body)
        else:
            self.handle.write(self.text.feed(opening) + self.text.feed(np.frombuffer(body, np.uint8)))
        self.written += count

    def close(self) -> None:
        layout = self.style.layout
        if layout == "array":
            self.handle.write(self.text.feed(b"]" if self.written else b"[]"))
        elif layout == "array_lines":
            self.handle.write((b"[" if self.written == 0 else b"") + self.newline + b"]")
        if self.style.final_newline and (self.written or layout != "lines"):
            self.handle.write(self.newline)


@functools.lru_cache(maxsize=256)
def _cached_style(path: str, size: int, mtime_ns: int) -> Optional[str]:
    style = detect_style(path)
    return None if style is None else style.to_text()


def style_claim(path: str) -> Optional[str]:
    """The :data:`STYLE_COLUMN` value a loader records for the file at ``path``: the file's
    identity as read (absolute path, size, modification time), for :func:`proven_style` to prove
    its style when a writer needs it. ``None`` for what is not a plain local
    ``.json``/``.jsonl``/``.csv`` file (an archive's member, a remote file): it has no style to keep.
    Costs one ``stat``.

    Example:
        >>> import json, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
        >>> with open(path, "w") as handle:
        ...     _ = handle.write('{"id": 1}\\n')
        >>> sorted(json.loads(style_claim(path)))
        ['file', 'mtime_ns', 'size']
        >>> style_claim(path + ".zip") is None
        True
    """
    if not path.endswith(_PLAIN_SUFFIXES) or not os.path.isfile(path):
        return None
    stat = os.stat(path)
    return orjson.dumps({"file": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}).decode()


def proven_style(value: Optional[str]) -> Optional[str]:
    """The style a :data:`STYLE_COLUMN` value stands for, as :meth:`SourceStyle.to_text`: a
    :func:`style_claim` is proved against its file (:func:`detect_style`, once per file and
    process) when the file is unchanged since the claim (same size and modification time), else
    ``None``; a style already proven (a published dataset's column) is itself.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
        >>> with open(path, "w") as handle:
        ...     _ = handle.write('{"id": 1, "v": "x"}\\n')
        >>> claim = style_claim(path)
        >>> proven_style(claim)
        '["lines",null,", ",": ",true,"\\\\n",true,false]'
        >>> proven_style(proven_style(claim)) == proven_style(claim)
        True
        >>> with open(path, "a") as handle:
        ...     _ = handle.write('{"id": 2, "v": "y"}\\n')
        >>> proven_style(claim) is None
        True
    """
    if value is None or not value.startswith("{"):
        return value
    claim = orjson.loads(value)
    try:
        stat = os.stat(claim["file"])
    except OSError:
        return None
    if stat.st_size != claim["size"] or stat.st_mtime_ns != claim["mtime_ns"]:
        return None
    return _cached_style(claim["file"], claim["size"], claim["mtime_ns"])


def proven_styles(column: pa.Array) -> pa.Array:
    """``column`` (a :data:`STYLE_COLUMN` batch) with every claim replaced by its
    :func:`proven_style`: what publishing writes. One proof per distinct value, vectorised over
    the rows."""
    distinct = pc.unique(column)
    values = distinct.to_pylist()
    proven = [proven_style(value) for value in values]
    if proven == values:
        return column
    return pc.take(pa.array(proven, pa.string()), pc.index_in(column, value_set=distinct))


def detect_style(path: str) -> Optional[SourceStyle]:
    """The one style ``path`` is written in, or ``None``.

    Example:
        >>> import tempfile, json
        >>> path = tempfile.mktemp(suffix=".json")
        >>> with open(path, "w") as handle:
        ...     json.dump([{"id": 1, "v": "é", "f": 1e-05}, {"id": 2, "v": []}], handle, indent=4)
        >>> detect_style(path)
        SourceStyle(layout='array', indent='    ', item=',', key=': ', ascii=True, newline='\\n', final_newline=False, python_floats=True)
    """
    size = os.path.getsize(path)
    if size == 0:
        return None
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        data = np.frombuffer(mapped, np.uint8)
        try:
            if path.endswith(".csv"):
                return _csv_style(data)
            for candidate in _candidates(data, path.endswith(".json")):
                negative_exponents = _proves(data, candidate)
                if negative_exponents == 0 and candidate.python_floats:
                    # No number Python and orjson write differently: orjson's notation, so a
                    # compact file is written as the exporters produce it, without restyling.
                    return dataclasses.replace(candidate, python_floats=False)
                if negative_exponents >= 0:
                    return candidate
            return None
        finally:
            del data


def _csv_style(data: np.ndarray) -> SourceStyle:
    head = bytes(data[: 1 << 16])
    first = head.find(b"\n")
    newline = "\r\n" if first > 0 and head[first - 1 : first] == b"\r" else "\n"
    return SourceStyle("csv", newline=newline, final_newline=bytes(data[-1:]) == b"\n", python_floats=False)


def _candidates(data: np.ndarray, one_document: bool) -> list:
    """The styles the head of the file suggests (to be proven on the whole file)."""
    head = bytes(data[: 1 << 16])
    stripped = head.lstrip()
    if not stripped or stripped[:1] not in b"[{":
        return []
    first_newline = head.find(b"\n")
    newline = "\r\n" if first_newline > 0 and head[first_newline - 1 : first_newline] == b"\r" else "\n"
    final_newline = bytes(data[-1:]) == b"\n"
    # Separators: what follows the first ',' and ':' outside strings (up to a line break).
    item, key, indent = _first_separators(head)
    # ensure_ascii first unless the head already holds raw UTF-8 (a later one disproves it).
    asciis = [False] if any(byte >= 128 for byte in head) else [True, False]
    if stripped[:1] == b"{":
        layouts = [("document" if one_document else "lines", None)]
    else:
        after_bracket = stripped[1:]
        if after_bracket.lstrip(b" ")[:1] in (b"\r", b"\n"):
            spaces = after_bracket.lstrip(b"\r\n")
            unit = spaces[: len(spaces) - len(spaces.lstrip(b" \t"))].decode()
            layouts = [("array", unit)]
        else:
            layouts = [("array", None)]
    candidates = []
    for layout, unit in layouts:
        for ascii_only in asciis:
            # Python's float notation first: the other candidate copies numbers unchecked, so it
            # is taken only for a file whose floats Python would have written otherwise (orjson's).
            for floats in (True, False):
                candidates.append(SourceStyle(layout, unit if layout == "array" else None if layout == "lines" else indent, item, key, ascii_only, newline, final_newline, floats))
    return candidates


def _first_separators(head: bytes) -> tuple:
    """``(item, key, indent)`` as the first ``,`` and ``:`` outside strings are followed (the
    indent is the whitespace after the first line break inside a record, per level)."""
    item = key = None
    indent = None
    in_string = escaped = False
    depth = 0
    for position, byte in enumerate(head):
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char in ",:" and (item is None if char == "," else key is None) and depth >= 1:
            rest = head[position + 1 :]
            spaces = rest[: len(rest) - len(rest.lstrip(b" "))].decode()
            if char == ",":
                item = "," + spaces
            else:
                key = ":" + spaces
        elif char == "\n" and indent is None and depth >= 1:
            rest = head[position + 1 :]
            run = rest[: len(rest) - len(rest.lstrip(b" \t"))].decode()
            if run:
                indent = run[: len(run) // depth] if len(run) % depth == 0 else run
        if item is not None and key is not None and (indent is not None or position > 4096):
            break
    if key is None:
        key = ":"
    if item is None:
        item = ", " if key == ": " and indent is None else ","
    return item, key, indent


def _proves(data: np.ndarray, style: SourceStyle) -> int:
    """Is ``data`` exactly what the writer writes in ``style`` (:func:`~hf_mmbuilder.kernels.json_style.in_style`,
    plus the line breaks between JSON lines and the file's end)? -1 if not, else the count of
    numbers whose notation tells Python's from orjson's. O(file) time, O(1) memory."""
    if style.layout == "lines" and style.indent is None and not json_style.one_value_per_line(data, style.newline == "\r\n"):
        return -1
    end = data.shape[0] - (len(style.newline) if style.final_newline else 0)
    # Nothing before the first value, nothing after the last but the final newline.
    if end <= 0 or data[0] not in (91, 123) or data[end - 1] not in (93, 125):
        return -1
    if bytes(data[end:]) != (style.newline.encode() if style.final_newline else b""):
        return -1
    return json_style.in_style(data, *_words(style))
