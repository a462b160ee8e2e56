"""``inspect()``: the self-contained HTML inspection report of a DJ-format dataset.

The report is a static folder: ``index.html``, ``report.css`` and ``report.js`` (hand-written,
shipped with the package: no CDN, no network), ``data.js`` (the report's data assigned to a global,
because browsers refuse ``fetch`` of a local JSON file from ``file://``) and ``media/`` (bounded
thumbnails and small audio/video copies, see :mod:`.previews`). The overview is computed from every
row; rows are shown from a seeded sample; clusters, selection and rejects come from what the caller
gives (or, for clusters, computes on request).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import orjson

from ..duplicates import dedup
from ..duplicates.removal import METHODS
from ..output_folder import OutputFolder
from ..schema import CLUSTER_COLUMN, DEFAULT_TOKENS, MEDIA_COLUMNS, SpecialTokens
from ..selection import embedding_matrix
from .clusters import largest_clusters, text_diff
from .conversation import conversation
from .overview import overview
from .previews import Previews
from .projection import projection, selected_mask
from .rejects import rejects_section

ASSETS = ("index.html", "report.css", "report.js")
DATA_FILE = "data.js"
DATA_GLOBAL = "HF_MMBUILDER_REPORT"
WRITER = "inspect"
_KINDS = {"images": "image", "audios": "audio", "videos": "video"}


def _parts(ds) -> tuple[list, list]:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        return list(ds.keys()), list(ds.values())
    if isinstance(ds, datasets.Dataset):
        return [str(ds.split) if ds.split is not None else "train"], [ds]
    raise ValueError(f"inspect takes a datasets.Dataset or DatasetDict, got {type(ds).__name__}")


def _row_view(record: dict, row: int, split: str, previews: Previews, tokens: SpecialTokens) -> dict:
    """One row as the page draws it: its conversation or document, its media previews in list
    order, and where it came from."""
    root = record.get("media_root")
    view = {"row": row, "split": split, **conversation(record.get("text"), tokens),
            "media": {_KINDS[column]: [previews.entry(_KINDS[column], path, root) for path in (record.get(column) or [])]
                      for column in MEDIA_COLUMNS}}
    for name in ("id", "source_file", "source_format"):
        if record.get(name) is not None:
            view[name] = str(record[name])
    return view


def build_report(ds, folder: Union[str, Path], *, final_folder: Union[str, Path, None] = None, clusters=None,
                 selection=None, rejects=None, embeddings="embedding", sample: int = 2000, seed: int = 0,
                 title: Optional[str] = None, tokens: SpecialTokens = DEFAULT_TOKENS) -> dict:
    """Write the report's files into ``folder`` (created if needed; nothing else in it is
    touched) and return the report's summary: rows, rows shown, clusters, selected, rejects.

    ``final_folder`` is where the files end up when ``folder`` is a staging folder (links to big
    media are relative to it). The other parameters are :func:`inspect`'s.
    """
    import datasets

    names, parts = _parts(ds)
    whole = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    n = len(whole)
    # The caller's clusters and selection are checked before any file is written.
    cluster_ids = _cluster_ids(whole, clusters)
    mask = selected_mask(selection, n, _column(whole, selection) if isinstance(selection, str) else None) if selection is not None else None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = np.repeat(np.arange(len(parts), dtype=np.int32), [len(part) for part in parts])
    table = whole.with_format("arrow")[:] if n else whole.data.table
    data = {"title": title or f"{n:,} rows", "overview": overview(table, splits, names, tokens)}
    previews = Previews(folder, Path(final_folder or folder))

    shown_columns = [name for name in ("text", *MEDIA_COLUMNS, "media_root", "id", "source_file", "source_format")
                     if name in whole.column_names]
    texts: dict = {}

    def views(rows: Sequence[int]) -> dict:
        rows = sorted(set(int(row) for row in rows))
        # One Arrow take of the columns drawn, not a formatted read per row.
        records = whole.select_columns(shown_columns).select(rows).with_format("arrow")[:].to_pylist() if rows else []
        texts.update((row, record.get("text") or "") for row, record in zip(rows, records))
        previews.prepare((_KINDS[column], path, record.get("media_root")) for record in records
                         for column in MEDIA_COLUMNS for path in (record.get(column) or []))
        return {row: _row_view(record, row, names[splits[row]], previews, tokens) for row, record in zip(rows, records)}

    rng = np.random.default_rng(seed)
    sampled = np.sort(rng.choice(n, min(sample, n), replace=False)) if n else np.zeros(0, dtype=np.int64)
    shown = views(sampled)
    data["rows"] = [shown[int(row)] for row in sampled]

    if cluster_ids is None:
        data["duplicates"] = None
    else:
        found, counts = largest_clusters(cluster_ids)
        member_rows = sorted({row for cluster in found for row in cluster["rows"]})
        members = views(member_rows)
        for cluster in found:
            # dedup keeps the cluster's first row, whose index is the cluster id.
            kept = texts.get(cluster["id"])
            # Each member's DJ text, marked against the kept row's (the kept row: all unchanged).
            cluster["members"] = [{**members[row], "kept": row == cluster["id"],
                                   "diff": text_diff(kept, texts[row]) if kept is not None else [["=", texts[row]]]}
                                  for row in cluster["rows"]]
        data["duplicates"] = {**counts, "shown": found}

    data["selection"] = None
    if mask is not None:
        matrix = _embeddings(whole, embeddings)
        data["selection"] = projection(matrix, mask, seed) if matrix is not None else {
            "points": [], "quotas": [], "rows": n, "selected": int(mask.sum()),
            "note": f"no embeddings ({embeddings!r} is not a column): no projection"}
    data["rejects"] = rejects_section(rejects) if rejects is not None else None

    for name in ASSETS:
        (folder / name).write_bytes(resources.files(__package__).joinpath("assets", name).read_bytes())
    payload = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    # "</" never appears raw in the script (orjson escapes no slashes), so a text holding
    # "</script>" cannot end it early when data.js is inlined anywhere.
    payload = payload.replace(b"</", b"<\\/")
    (folder / DATA_FILE).write_bytes(b"window." + DATA_GLOBAL.encode() + b" = " + payload + b";\n")
    return {"rows": n, "rows_shown": len(data["rows"]),
            "clusters": data["duplicates"]["clusters"] if data["duplicates"] else None,
            "selected": data["selection"]["selected"] if data["selection"] else None,
            "rejects": (data["rejects"]["loader"]["count"] + data["rejects"]["filtered"]["count"]) if data["rejects"] else None}


def _column(ds, name: str) -> np.ndarray:
    """A scalar column as one NumPy array (an Arrow read, never a Python object per row)."""
    if name not in ds.column_names:
        raise ValueError(f"the dataset has no column {name!r} (its columns: {', '.join(ds.column_names)})")
    return ds.with_format("arrow")[name].to_numpy()


def _cluster_ids(whole, clusters) -> Optional[np.ndarray]:
    """Per-row cluster ids: the given array, a column, or ``dedup(method, return_clusters=True)``;
    by default the dataset's ``cluster_id`` column when it has one."""
    if clusters is None:
        clusters = CLUSTER_COLUMN if CLUSTER_COLUMN in whole.column_names else None
        if clusters is None:
            return None
    if isinstance(clusters, str):
        if clusters in whole.column_names:
            return _column(whole, clusters).astype(np.int64)
        if clusters in METHODS:
            computed = dedup(whole.remove_columns([c for c in (CLUSTER_COLUMN,) if c in whole.column_names]), clusters,
                             return_clusters=True, progress=False)
            return _column(computed, CLUSTER_COLUMN).astype(np.int64)
        raise ValueError(f"clusters={clusters!r} is neither a column of the dataset nor a dedup method ({', '.join(METHODS)})")
    ids = np.asarray(clusters, dtype=np.int64)
    if ids.shape != (len(whole),):
        raise ValueError(f"clusters: {len(whole)} cluster ids needed (one per row), got {ids.shape[0] if ids.ndim else 0}")
    return ids


def _embeddings(whole, embeddings) -> Optional[np.ndarray]:
    if isinstance(embeddings, str) and embeddings not in whole.column_names:
        return None
    return embedding_matrix(whole, embeddings)


def inspect(ds, out_dir: Union[str, os.PathLike], *, clusters=None, selection=None, rejects=None, embeddings="embedding",
            sample: int = 2000, seed: int = 0, title: Optional[str] = None, tokens: SpecialTokens = DEFAULT_TOKENS,
            overwrite: bool = False) -> dict:
    """Write a self-contained HTML report of ``ds`` into ``out_dir``; open ``out_dir/index.html``.

    Parameters:
        ds: ``datasets.Dataset`` or ``DatasetDict`` of DJ rows (``text``, ``images``/``audios``/
            ``videos``, ``media_root``; ``__dj__stats__``, ``source_file``, ``cluster_id`` when present).
        out_dir: the report's folder. Written through :class:`hf_mmbuilder.output_folder.OutputFolder`:
            a new folder appears whole; an earlier report there is replaced; a folder holding other
            files is refused unless ``overwrite=True`` (which still deletes nothing it did not write).
        clusters: duplicate clusters: per-row cluster ids (``dedup(..., return_clusters=True)``'s
            ``cluster_id``), a column name, or a dedup method (``"exact"``, ``"minhash"``, ...) to
            compute them with its defaults. Default: the ``cluster_id`` column when present.
        selection: selected rows: row numbers (``select``'s output order does not matter), a
            boolean mask, or a boolean column's name.
        rejects: a loader rejects file, a ``FilterResult`` / dataset of dropped rows, a
            ``save_to_disk`` folder of them, or a list of these.
        embeddings: the column (or ``(n, d)`` matrix) the selection is projected from.
        sample: rows rendered in the Rows section (seeded); the overview uses every row.
        seed: seed of the sample, the projection's points and its k-means quotas.
        title: the page's title (default: the row count).
        tokens: the dataset's DJ special tokens.

    Returns the summary: ``rows``, ``rows_shown``, ``clusters``, ``selected``, ``rejects``, ``path``.

    Example:
        >>> import datasets, tempfile
        >>> ds = datasets.Dataset.from_dict({"text": ["[[human]]: hi\\n[[gpt]]: hello", "a plain document"]})
        >>> summary = inspect(ds, Path(tempfile.mkdtemp()) / "report", clusters=[0, 0])
        >>> summary["rows"], summary["rows_shown"], summary["clusters"], sorted(os.listdir(summary["path"]))
        (2, 2, 1, ['.hf_mmbuilder-manifest.json', 'data.js', 'index.html', 'report.css', 'report.js'])
    """
    target = OutputFolder(out_dir, WRITER, overwrite=overwrite, label="inspect out_dir")
    with target.staging() as staging:
        summary = build_report(ds, staging.files, final_folder=target.path, clusters=clusters, selection=selection,
                               rejects=rejects, embeddings=embeddings, sample=sample, seed=seed, title=title, tokens=tokens)
        target.commit(staging, last=["index.html"])
    return {**summary, "path": str(target.path)}
