"""Files (or archive members) that cannot be read or turned into rows: their reason text, and
reporting them through ``on_error`` as one failure of the whole file (never as "skipped 1 record":
the error, the log and the rejects file say the file is unreadable and how many of its records
that made unreachable, where that can be known).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import zipfile
import zlib
from typing import Callable, Iterator, Optional

import orjson
import pyarrow as pa

from ..errors import ErrorPolicy, RecordError, append_line

logger = logging.getLogger("hf_mmbuilder")


# What reading a damaged file or archive member raises (a corrupt zip member raises zlib.error).
READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, UnicodeDecodeError)


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """Stands for a shard's record index when the file could not even be scanned."""

    reason: str


def read_failure(path: str, error: BaseException) -> str:
    """The reason text for a file or archive member (``zip://member::archive``) that cannot be read.

    Example:
        >>> read_failure("zip://a.jsonl::/data/d.zip", EOFError("truncated"))
        'cannot read a.jsonl in /data/d.zip (EOFError: truncated)'
    """
    if "::" in path:
        member, archive = path.split("::", 1)
        where = f"{member.split('://', 1)[-1]} in {archive}"
    else:
        where = path
    return f"cannot read {where} ({type(error).__name__}: {error})"


class FileFailure(RecordError):
    """A whole file (or archive member) that cannot be turned into rows, with the reason and how
    many of its records it made unreachable (``None``: unknown). ``record`` is ``None``.

    Example:
        >>> str(FileFailure("d.zip", "not a zip file", unreachable=None))
        'd.zip: file unreadable: not a zip file; records unreachable: unknown'
        >>> str(FileFailure("a.parquet", "row group 1 is corrupt", unreachable=40))
        'a.parquet: file unreadable: row group 1 is corrupt; 40 record(s) unreachable'
    """

    def __init__(self, source: str, reason: str, *, unreachable: Optional[int] = None, line: Optional[int] = None):
        count = "records unreachable: unknown" if unreachable is None else f"{unreachable} record(s) unreachable"
        full = f"file unreadable: {reason}; {count}"
        ValueError.__init__(self, f"{source}{f' (line {line})' if line is not None else ''}: {full}")
        self.source, self.record, self.reason, self.line, self.byte = source, None, full, line, None
        self.unreachable = unreachable


def report_file_failure(failure: FileFailure, policy: ErrorPolicy, on_error: str, raw: Optional[bytes] = None) -> None:
    """Apply ``on_error`` to a :class:`FileFailure`: raised for ``"raise"``; otherwise logged as a
    failure of the file (a file has no row to keep, so ``"keep"`` keeps the rows read before it)
    and, for ``"skip"``, written to the policy's rejects file (``record`` null, ``unreachable`` the
    count or null) without counting as a skipped record.

    Example:
        >>> report_file_failure(FileFailure("d.zip", "not a zip file"), ErrorPolicy("keep"), "keep")
    """
    if on_error == "raise":
        raise failure
    policy.failed[failure.source] = policy.failed.get(failure.source, 0) + 1
    logger.warning("%s", failure)
    if on_error == "skip" and policy.rejects_path:
        entry = {
            "file": failure.source,
            "record": None,
            "line": failure.line,
            "byte": None,
            "reason": failure.reason,
            "raw": raw.decode("utf-8", "replace") if raw is not None else None,
            "unreachable": failure.unreachable,
        }
        append_line(policy.rejects_path, orjson.dumps(entry) + b"\n")


def file_failure(source: str, reason: str, policy: ErrorPolicy, on_error: str, raw: Optional[bytes] = None, *,
                 unreachable: Optional[int] = None) -> None:
    """A whole file that cannot be turned into rows (unreadable, wrong header, wrong layout), as a
    :class:`FileFailure` (at line 1 when ``raw``, its header, is given) through
    :func:`report_file_failure`.

    Example:
        >>> file_failure("a.csv", "CSV header ['x'] is not ...", ErrorPolicy("skip"), "skip", b"x")
    """
    report_file_failure(FileFailure(source, reason, unreachable=unreachable, line=1 if raw is not None else None), policy, on_error, raw)


def check_special_files(data_files) -> None:
    """Refuse local paths among ``data_files`` (a path, a list, or a dict of splits) that exist
    but are neither regular files nor folders (a FIFO, a socket, a device): reading one may block
    forever or never end, and ``datasets`` would call it missing.

    Example:
        >>> check_special_files({"train": ["/dev/null"]})
        Traceback (most recent call last):
        ...
        hf_mmbuilder.formats.failures.FileFailure: /dev/null: file unreadable: a character device, not a regular file (copy its data to a file); records unreachable: unknown
    """
    values = data_files.values() if isinstance(data_files, dict) else [data_files]
    for value in values:
        for path in [value] if isinstance(value, (str, os.PathLike)) else value:
            try:
                mode = os.stat(path).st_mode
            except (OSError, ValueError, TypeError):
                continue  # not a local path (a pattern, a URL): datasets resolves it
            kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
            kind = next((name for test, name in kinds.items() if test(mode)), None)
            if kind is not None:
                raise FileFailure(os.fspath(path), f"{kind}, not a regular file (copy its data to a file)")


def plan_json_file(builder, shard_id: int, path: str, original: str, media_root: str, opener: Callable, **options) -> list:
    """``builder._plan_json_records(..., **options)``; a file that cannot be read becomes one shard whose
    index is :class:`Unreadable`, so the failure follows ``on_error`` when the shard runs.

    Example:
        >>> plan_json_file(builder, 0, "a.jsonl", "a.jsonl", "/data", open)  # doctest: +SKIP
        [Shard(shard_id=0, path='a.jsonl', ...)]
    """
    try:
        return builder._plan_json_records(shard_id, path, original, media_root, opener, **options)
    except READ_ERRORS as error:
        return [builder.unreadable_shard(shard_id, path, original, media_root, read_failure(path, error))]


def guarded_tables(shard, policy: ErrorPolicy, on_error: str, tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The (lazy) ``tables`` of a shard, with a read failure of its file (or of its scan, see
    :class:`Unreadable`) reported through :func:`file_failure`; rows read before it are kept.

    Example:
        >>> tables = guarded_tables(shard, policy, "raise", rows_to_tables(...))  # doctest: +SKIP
    """
    if isinstance(shard.index, Unreadable):
        file_failure(shard.original, shard.index.reason, policy, on_error)
        return
    try:
        yield from tables
    except FileFailure as failure:
        report_file_failure(failure, policy, on_error)
    except READ_ERRORS as error:
        file_failure(shard.original, read_failure(shard.path, error), policy, on_error)
