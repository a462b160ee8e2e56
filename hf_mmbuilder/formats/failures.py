"""Files (or archive members) that cannot be read or turned into rows: their reason text, and
reporting them through ``on_error`` as one failure of the whole file.
"""

from __future__ import annotations

import dataclasses
import zipfile
import zlib
from typing import Callable, Iterator, Optional

import pyarrow as pa

from ..errors import ErrorPolicy, RecordError
from .builder import Shard


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


def file_failure(source: str, reason: str, policy: ErrorPolicy, on_error: str, raw: Optional[bytes] = None) -> None:
    """A whole file that cannot be turned into rows (unreadable, wrong header, wrong layout): raised,
    or skipped into the rejects file; ``on_error="keep"`` raises too (there is no row to keep).

    Example:
        >>> file_failure("a.csv", "CSV header ['x'] is not ...", ErrorPolicy("skip"), "skip", b"x")
    """
    failure = RecordError(source, 0, reason, line=1 if raw is not None else None)
    if on_error == "keep":
        raise failure
    policy.handle(failure, raw)


def plan_json_file(builder, shard_id: int, path: str, original: str, media_root: str, opener: Callable) -> list:
    """``builder._plan_json_records(...)``; a file that cannot be read becomes one shard whose
    index is :class:`Unreadable`, so the failure follows ``on_error`` when the shard runs.

    Example:
        >>> plan_json_file(builder, 0, "a.jsonl", "a.jsonl", "/data", open)  # doctest: +SKIP
        [Shard(shard_id=0, path='a.jsonl', ...)]
    """
    try:
        return builder._plan_json_records(shard_id, path, original, media_root, opener)
    except READ_ERRORS as error:
        return [Shard(shard_id, path, original, media_root, index=Unreadable(read_failure(path, error)))]


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
    except READ_ERRORS as error:
        file_failure(shard.original, read_failure(shard.path, error), policy, on_error)
