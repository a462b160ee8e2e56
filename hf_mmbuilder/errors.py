"""Bad input handling: every malformed record is raised, skipped into a rejects file, or kept.

``on_error`` (DESIGN.md section 8):

- ``"raise"`` (default): stop with a :class:`RecordError` naming the file, the record index (and
  line / byte offset where known) and the reason;
- ``"skip"``: drop the record, append it with its reason to a JSON-lines rejects file, and log
  how many records each file lost and where the rejects are;
- ``"keep"``: keep the record and list its problems in the ``record_errors`` column.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Optional

import orjson

logger = logging.getLogger("hf_mmbuilder")

ON_ERROR_CHOICES = ("raise", "skip", "keep")
ERRORS_COLUMN = "record_errors"
# A record kept by on_error="keep" carries its source text under this key of `extra` (the
# compiled LLaVA exporter spells it itself, as kernels import nothing of the package).
KEPT_RAW_KEY = "__raw__"


class RecordError(ValueError):
    """A record that cannot be converted, with where it is and why.

    ``record=None`` is a failure of the whole file (e.g. one that holds no records).

    Example:
        >>> str(RecordError("a.json", 3, "turn 1 has no 'value'", line=20))
        "a.json: record 3 (line 20): turn 1 has no 'value'"
        >>> str(RecordError("a.json", None, "the file holds no records"))
        'a.json: the file holds no records'
    """

    def __init__(self, source: str, record: Optional[int], reason: str, *, line: Optional[int] = None, byte: Optional[int] = None):
        self.source = source
        self.record = record
        self.reason = reason
        self.line = line
        self.byte = byte
        where = [] if record is None else [f"record {record}"]
        if line is not None:
            where.append(f"line {line}")
        elif byte is not None:
            where.append(f"byte {byte}")
        place = f"{where[0]}" + (f" ({', '.join(where[1:])})" if len(where) > 1 else "") + ": " if where else ""
        super().__init__(f"{source}: {place}{reason}")

    def __reduce__(self):
        # Rebuilt from its fields (not from the message) when a worker process raises it.
        return functools.partial(type(self), line=self.line, byte=self.byte), (self.source, self.record, self.reason)


def check_exportable(row: dict) -> None:
    """Refuse a row an exporter cannot write back: one kept with load errors, or one that only
    holds an unparsed source record (both kept by ``on_error="keep"``), in that order.

    Example:
        >>> check_exportable({"text": "hi", "extra": {"id": 1}})
        >>> check_exportable({"extra": {KEPT_RAW_KEY: "{"}})
        Traceback (most recent call last):
        ...
        ValueError: row holds an unparsed source record (kept by on_error='keep')
    """
    errors = row.get(ERRORS_COLUMN)
    if errors:
        raise ValueError("row was kept with load errors: " + "; ".join(errors))
    if KEPT_RAW_KEY in (row.get("extra") or {}):
        raise ValueError("row holds an unparsed source record (kept by on_error='keep')")


def check_on_error(on_error: str) -> str:
    """Validate an ``on_error`` value and return it.

    Example:
        >>> check_on_error("skip")
        'skip'
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    return on_error


@dataclasses.dataclass
class ErrorPolicy:
    """Applies ``on_error`` to :class:`RecordError` s and writes the rejects file.

    ``handle`` returns ``True`` when the record is to be kept (``"keep"``), ``False`` when it was
    skipped, and raises for ``"raise"``. Call ``close`` (or use it as a context manager) to log the
    per-file counts.

    Example:
        >>> policy = ErrorPolicy("skip", rejects_path=None)
        >>> policy.handle(RecordError("a.json", 0, "no conversations"))
        False
        >>> policy.skipped
        {'a.json': 1}
    """

    on_error: str = "raise"
    rejects_path: Optional[str] = None
    skipped: dict = dataclasses.field(default_factory=dict)
    kept: dict = dataclasses.field(default_factory=dict)
    # Failures of whole files per file (formats.failures.report_file_failure counts them).
    failed: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        check_on_error(self.on_error)

    def handle(self, error: RecordError, raw: Optional[bytes] = None) -> bool:
        if self.on_error == "raise":
            raise error
        if self.on_error == "keep":
            self.kept[error.source] = self.kept.get(error.source, 0) + 1
            return True
        self.skipped[error.source] = self.skipped.get(error.source, 0) + 1
        if self.rejects_path:
            entry = {
                "file": error.source,
                "record": error.record,
                "line": error.line,
                "byte": error.byte,
                "reason": error.reason,
                "raw": raw_text(raw) if raw is not None else None,
            }
            append_line(self.rejects_path, orjson.dumps(entry) + b"\n")
        return False

    def close(self) -> None:
        for source, count in self.skipped.items():
            logger.warning(
                "%s: skipped %d malformed record(s)%s",
                source,
                count,
                f"; reasons in {self.rejects_path}" if self.rejects_path else "",
            )
        for source, count in self.kept.items():
            logger.warning("%s: kept %d malformed record(s), flagged in column %r", source, count, ERRORS_COLUMN)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_text(raw: bytes) -> str:
    r"""A record's source bytes as text for a rejects file or ``extra``: bytes that are not UTF-8
    are shown escaped (``\xff``), never replaced, so the reject shows what the file holds.

    Example:
        >>> print(raw_text(b'{"a": "x\xffy"}'))
        {"a": "x\xffy"}
    """
    return raw.decode("utf-8", "backslashreplace")


def append_line(path: str, line: bytes) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor, so lines written by
    parallel worker processes never interleave.

    Example:
        >>> append_line("/tmp/rejects.jsonl", b'{"reason": "x"}\\n')  # doctest: +SKIP
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
