"""Conversion on Ray: many source files read as a Ray Dataset of DJ rows, one task per file,
through the format's own builder, with rejected files and records reported."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from typing import Iterator, Optional, Sequence

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ErrorPolicy, RecordError, check_on_error
from .io import parquet_folder, write_parquet_staged
from .session import ensure_session


logger = logging.getLogger("hf_mmbuilder")


class SourceFileError(ValueError):
    """A source file that could not be converted, with its path and the reason.

    Example:
        >>> str(SourceFileError("shard_7.jsonl.zip", "not a zip file"))
        'shard_7.jsonl.zip: not a zip file'
    """

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # Ray sends task errors to the driver pickled; rebuild from the fields, not the message.
        return SourceFileError, (self.path, self.reason)


@dataclasses.dataclass
class ConversionReport:
    """What :func:`convert` wrote and what it rejected.

    ``rejected_files``: one ``{"file", "reason"}`` per unreadable source file;
    ``rejected_records``: the bad records of readable files (``on_error="skip"``), as the
    builders' rejects files list them. Both are also in ``rejects_path`` (JSON lines).

    Example:
        >>> ConversionReport("out", ["out/a.parquet"], 10, [], [], None).num_rows
        10
    """

    output_dir: str
    files: list[str]
    num_rows: int
    rejected_files: list[dict]
    rejected_records: list[dict]
    rejects_path: Optional[str]


def _source_members(path: str, scratch: str) -> list[str]:
    """The data files inside one source: the file itself, or the members of a ``.zip`` (as
    ``datasets`` extracts MMC4's ``.jsonl.zip`` shards for the builders)."""
    if not path.endswith(".zip"):
        if not os.path.isfile(path):
            raise SourceFileError(path, "no such file")
        return [path]
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                name for name in archive.namelist()
                if not name.endswith("/") and not any(part.startswith((".", "__")) for part in name.split("/"))
            )
            archive.extractall(scratch, members=names)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise SourceFileError(path, f"unreadable zip archive ({type(error).__name__}: {error})") from error
    if not names:
        raise SourceFileError(path, "zip archive holds no data file")
    return [os.path.join(scratch, name) for name in names]


def _convert_files(batch: pa.Table, format_name: str, options: dict, on_error: str, rejects_dir: Optional[str]) -> Iterator[pa.Table]:
    """``map_batches`` function: source files in, their DJ tables out (the builder's parser)."""
    from ..formats.catalog import builder_class
    from ..formats.fingerprint import code_hash

    with tempfile.TemporaryDirectory(prefix="hf_mmbuilder_ray_") as scratch:
        builder = builder_class(format_name)(
            cache_dir=os.path.join(scratch, "cache"),
            dataset_name=f"hf_mmbuilder/{format_name}",
            hash=code_hash(format_name),
            on_error=on_error,
            **options,
        )
        for path, index in zip(batch.column("path").to_pylist(), batch.column("index").to_pylist()):
            record_rejects = os.path.join(rejects_dir, f"{index:08d}.records.jsonl") if rejects_dir else None
            if record_rejects and os.path.exists(record_rejects):
                os.remove(record_rejects)  # a retried task starts this file's rejects afresh
            extracted = tempfile.mkdtemp(dir=scratch)
            try:
                # A file's rows are released only once the whole file parsed, so a file rejected
                # half way leaves none of its rows behind.
                tables = list(_file_tables(builder, path, record_rejects, extracted, on_error))
            except Exception as error:  # noqa: BLE001 - every failure is reported with its file
                failure = _as_source_error(path, error)
                if on_error == "raise":
                    raise failure from error
                _write_json_atomic(os.path.join(rejects_dir, f"{index:08d}.file.json"), {"file": path, "reason": failure.reason})
                logger.warning("skipped source file %s", failure)
                continue
            finally:
                shutil.rmtree(extracted, ignore_errors=True)
            yield from tables


def _as_source_error(path: str, error: Exception) -> SourceFileError:
    if isinstance(error, SourceFileError):
        return error
    if isinstance(error, RecordError):
        # Its message already starts with the file; the reason keeps the record and line.
        return SourceFileError(path, str(error).removeprefix(f"{error.source}: "))
    return SourceFileError(path, f"{type(error).__name__}: {error}")


def _file_tables(builder, path: str, record_rejects: Optional[str], extracted: str, on_error: str) -> Iterator[pa.Table]:
    media_root = builder.config.media_root or os.path.dirname(path)
    shard_id = 0
    with ErrorPolicy(on_error, record_rejects) as policy:
        for member in _source_members(path, extracted):
            for shard in builder._plan_file(shard_id, member, path, media_root):
                shard_id += 1
                yield from builder._shard_tables(shard, policy)


def _write_json_atomic(path: str, value) -> None:
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(temporary, "wb") as handle:
        handle.write(orjson.dumps(value))
    os.replace(temporary, path)


def read_sources(format_name: str, files: Sequence[str], *, on_error: str = "raise", rejects_dir: Optional[str] = None, **options):
    """Source files of one format as a lazy Ray Dataset of DJ rows, one task per file.

    Each task runs the format's builder (``hf_mmbuilder.load`` gives the same rows); ``.zip``
    sources (MMC4's ``.jsonl.zip`` shards) are extracted in the task. ``options`` are the format's
    config options (tokens, ``media_root``, ...). ``on_error`` applies to bad records as in the
    builders and to whole files that cannot be read (missing, corrupt zip, broken JSON layout):
    ``"raise"`` fails the job with the file and reason; ``"skip"`` / ``"keep"`` leave the file out
    and record it (and, with ``"skip"``, its bad records) in ``rejects_dir``, a folder every node
    can write (required then); :func:`read_rejects` lists them once the dataset has executed.

    Example:
        >>> ds = read_sources("mmc4", ["docs_shard_0_v3.jsonl.zip", "docs_shard_1_v3.jsonl.zip"])  # doctest: +SKIP
        >>> ds.schema().names[:4]  # doctest: +SKIP
        ['text', 'images', 'audios', 'videos']
    """
    check_on_error(on_error)
    if on_error != "raise" and rejects_dir is None:
        raise ValueError(f"on_error={on_error!r} needs rejects_dir=, a folder for the rejected files and records")
    if rejects_dir is not None:
        os.makedirs(rejects_dir, exist_ok=True)
    if not files:
        raise ValueError("no source files given")
    ray = ensure_session()
    items = [{"path": os.path.abspath(path), "index": index} for index, path in enumerate(files)]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _convert_files,
        fn_kwargs={"format_name": format_name, "options": dict(options), "on_error": on_error, "rejects_dir": rejects_dir},
        batch_size=1,
        batch_format="pyarrow",
    )


def read_rejects(rejects_dir: str) -> tuple[list[dict], list[dict]]:
    """``(rejected_files, rejected_records)`` recorded by :func:`read_sources` in ``rejects_dir``,
    in source-file order.

    Example:
        >>> files, records = read_rejects("out.rejects")  # doctest: +SKIP
        >>> files[0]["reason"]  # doctest: +SKIP
        'unreadable zip archive (BadZipFile: File is not a zip file)'
    """
    rejected_files, rejected_records = [], []
    for name in sorted(os.listdir(rejects_dir)):
        path = os.path.join(rejects_dir, name)
        if name.endswith(".file.json"):
            with open(path, "rb") as handle:
                rejected_files.append(orjson.loads(handle.read()))
        elif name.endswith(".records.jsonl"):
            with open(path, "rb") as handle:
                rejected_records.extend(orjson.loads(line) for line in handle if line.strip())
    return rejected_files, rejected_records


def convert(
    format_name: str,
    files: Sequence[str],
    output_dir: str,
    *,
    on_error: str = "raise",
    rows_per_file: Optional[int] = None,
    overwrite: bool = False,
    **options,
) -> ConversionReport:
    """Convert many source files to DJ-format Parquet shards on the Ray cluster.

    ``output_dir`` appears only when the whole job succeeded (:func:`write_parquet`, whose rules
    for an existing folder and ``overwrite`` apply); it loads with
    ``datasets.load_dataset("parquet", data_files=report.files)`` or goes to ``hf_mmbuilder.publish``.
    Unreadable files and bad records follow ``on_error`` (:func:`read_sources`); with ``"skip"`` or
    ``"keep"`` they are listed in the report and in ``<output_dir>.rejects.jsonl``, with a warning
    per file. With ``"raise"`` the first bad file stops the job with a :class:`SourceFileError`.

    Example:
        >>> report = convert("llava", ["a.json", "b.json"], "out/llava", on_error="skip")  # doctest: +SKIP
        >>> report.num_rows, report.rejected_files  # doctest: +SKIP
        (1000, [{'file': '/data/b.json', 'reason': "..."}])
    """
    folder = parquet_folder(output_dir, overwrite)  # refuses a bad output folder before any work
    output_dir = str(folder.path)
    rejects_dir = None if on_error == "raise" else tempfile.mkdtemp(prefix=".rejects-", dir=folder.path.parent)
    try:
        ray_ds = read_sources(format_name, files, on_error=on_error, rejects_dir=rejects_dir, **options)
        try:
            written = write_parquet_staged(ray_ds, folder, rows_per_file)
        except Exception as error:
            raise _source_error(error) from error
        rejected_files, rejected_records = read_rejects(rejects_dir) if rejects_dir else ([], [])
    finally:
        if rejects_dir:
            shutil.rmtree(rejects_dir, ignore_errors=True)
    rejects_path = None
    if rejected_files or rejected_records:
        rejects_path = output_dir.rstrip(os.sep) + ".rejects.jsonl"
        with open(rejects_path, "wb") as handle:
            for entry in rejected_files + rejected_records:
                handle.write(orjson.dumps(entry) + b"\n")
        logger.warning("%d source file(s) and %d record(s) rejected; listed in %s", len(rejected_files), len(rejected_records), rejects_path)
    num_rows = sum(pq.ParquetFile(path).metadata.num_rows for path in written)
    return ConversionReport(output_dir, written, num_rows, rejected_files, rejected_records, rejects_path)


def _source_error(error: BaseException) -> BaseException:
    """The :class:`SourceFileError` a Ray task raised, out of Ray's wrapping, else ``error``."""
    seen = error
    while seen is not None:
        if isinstance(seen, SourceFileError):
            return SourceFileError(seen.path, seen.reason)
        seen = seen.__cause__ or getattr(seen, "cause", None)
    return error
