"""Publish a dataset the way others can ``load_dataset`` and trust it.

:func:`publish` splits (seeded, group-aware, see :mod:`hf_mmbuilder.splits`), checks every media
file, embeds media into Parquet shards sized by bytes, writes a dataset card with statistics and
plots (:mod:`hf_mmbuilder.card`), and lays it all out exactly like a Hub dataset repo: in a local
folder and/or on the Hub in one commit through ``huggingface_hub``.
Everything that can be wrong with the input is checked before a single byte is uploaded.

Publishing never deletes what it did not write. Its files are ``README.md``, the plots in
``assets/`` and the Parquet shards of the configs and splits published; in a local folder they are
replaced through :class:`hf_mmbuilder.output_folder.OutputFolder`, and every other file stays. Shard
names carry a generation tag (a digest of the shards' bytes) and the card's ``data_files`` globs
name it, so a reader of the folder sees the old card with the old shards, or the new card with the
new ones, even when a publish is killed half way; identical data gives identical names, so
re-publishing it changes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow.compute as pc

from .card import PLOT_TITLES, CardSpec, build_card, collect_statistics, render_plots
from .media import UnsafePathError, check_within_root, resolve_media_path
from .output_folder import OutputFolder, temporary_staging
from .schema import DEFAULT_TOKENS, MEDIA_COLUMNS, SpecialTokens
from .splits import SplitPlan, check_split_ratio, plan_splits

logger = logging.getLogger("hf_mmbuilder")

DATA_FOLDER = "data"
PLOT_FOLDER = "assets"
DEFAULT_DROP_COLUMNS = ("media_root", "source_file")
MISSING_MEDIA_SHOWN = 10
CONFIG_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
CARD_FILE = "README.md"
GENERATION_DIGITS = 8


class PublishError(RuntimeError):
    """Publishing to the Hub failed; the message says at which step and why (never the token)."""


@dataclasses.dataclass
class PublishResult:
    """What :func:`publish` did.

    Attributes:
        card: the README.md text.
        split_table: Markdown table of rows per split against the requested ratios.
        plan: the :class:`~hf_mmbuilder.splits.SplitPlan` (``None`` when a DatasetDict was given).
        files: repo paths written, sorted.
        local_dir: the folder written, or ``None``.
        repo_url: the Hub repo URL, or ``None``.
        commit: the Hub commit id now at ``revision``, or ``None``.
        changed: ``False`` when the target already held exactly these files ("nothing changed").
    """

    card: str
    split_table: str
    plan: Optional[SplitPlan]
    files: list
    local_dir: Optional[str] = None
    repo_url: Optional[str] = None
    commit: Optional[str] = None
    changed: bool = True


def check_repo_id(repo_id: str) -> str:
    """Validate a Hub dataset repo id (``namespace/name``) and return it.

    Example:
        >>> check_repo_id("my-org/llava-clean")
        'my-org/llava-clean'
        >>> check_repo_id("my org/llava")
        Traceback (most recent call last):
        ...
        ValueError: repo_id 'my org/llava' is not valid: ...
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id {repo_id!r} is not valid: use 'namespace/name' (your user or organization, then the name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"repo_id {repo_id!r} is not valid: {error}") from None
    return repo_id


def _stored_path(path: str) -> str:
    # A relative path is the dataset's own naming; an absolute one would publish the builder's
    # filesystem layout, so only its file name is kept.
    return os.path.basename(path) if os.path.isabs(path) else path


def check_media(splits: Mapping[str, object], row_ids: Mapping[str, np.ndarray], *, require_files: bool) -> None:
    """Refuse media paths escaping their ``media_root`` and, with ``require_files``, missing files.

    ``row_ids``: split -> original row id of each of its rows (for the error message). Raises a
    ``ValueError`` listing the first offending rows (split, original row, column, path).

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["<__dj__image>"], "images": [["nope.jpg"]], "media_root": ["/tmp"]})
        >>> check_media({"train": ds}, {"train": np.array([0])}, require_files=True)
        Traceback (most recent call last):
        ...
        ValueError: 1 media file(s) missing (embedding needs them; pass embed_media=False to publish paths): split 'train' row 0: images[0] 'nope.jpg' -> /tmp/nope.jpg
    """
    missing = []
    for split, dataset in splits.items():
        columns = [column for column in MEDIA_COLUMNS if column in dataset.column_names]
        if not columns:
            continue
        has_root = "media_root" in dataset.column_names
        table = dataset.with_format("arrow")[:]
        roots = table.column("media_root").to_pylist() if has_root else [None] * len(dataset)
        for column in columns:
            lists = table.column(column)
            if not pc.sum(pc.fill_null(pc.list_value_length(lists), 0)).as_py():
                continue
            for row, paths in enumerate(lists.to_pylist()):
                for position, path in enumerate(paths or ()):
                    where = f"split {split!r} row {int(row_ids[split][row])}: {column}[{position}] {path!r}"
                    if path is None:
                        raise ValueError(f"{where}: null media path")
                    root = roots[row]
                    if root and not os.path.isabs(path) and "://" not in path:
                        try:
                            resolved = check_within_root(path, root)
                        except UnsafePathError as error:
                            raise ValueError(f"{where}: {error}") from None
                    else:
                        resolved = resolve_media_path(path, root)
                    if require_files and not os.path.isfile(resolved):
                        missing.append(f"{where} -> {resolved}")
    if missing:
        shown = "; ".join(missing[:MISSING_MEDIA_SHOWN])
        more = f" (and {len(missing) - MISSING_MEDIA_SHOWN} more)" if len(missing) > MISSING_MEDIA_SHOWN else ""
        raise ValueError(
            f"{len(missing)} media file(s) missing (embedding needs them; pass embed_media=False to publish paths): {shown}{more}"
        )


def _embed_media(dataset, cache_file: str):
    """Replace media path lists by embedded ``List(Image())``/``List(Audio())``/``List(Video())``.

    The result is written to ``cache_file`` (memory-mapped), so media bytes never pile up in RAM.
    """
    from datasets import Audio, Image, List, Video

    feature_of = {"images": Image(), "audios": Audio(), "videos": Video()}
    columns = [column for column in MEDIA_COLUMNS if column in dataset.column_names]
    if not columns:
        return dataset
    features = dataset.features.copy()
    for column in columns:
        features[column] = List(feature_of[column])
    has_root = "media_root" in dataset.column_names

    def embed(batch):
        roots = batch["media_root"] if has_root else [None] * len(batch[columns[0]])
        for column in columns:
            embedded = []
            for paths, root in zip(batch[column], roots):
                items = []
                for path in paths or ():
                    with open(resolve_media_path(path, root), "rb") as handle:
                        items.append({"bytes": handle.read(), "path": _stored_path(path)})
                embedded.append(items)
            batch[column] = embedded
        return batch

    return dataset.map(embed, batched=True, batch_size=64, writer_batch_size=64, features=features,
                       cache_file_name=cache_file, desc="embedding media", load_from_cache_file=False)


def sources_from_files(splits: Mapping[str, object], info=None) -> list[dict]:
    """Sources derived from the ``source_file`` column the loaders write: file name and rows.

    Only the file name is kept (the folder is the builder's machine layout); the format is the
    loader's ``builder_name`` when known. Empty when there is no ``source_file`` column.

    Example:
        >>> from datasets import Dataset
        >>> sources_from_files({"train": Dataset.from_dict({"source_file": ["/d/a.json", "/d/a.json"]})})
        [{'name': 'a.json', 'format': '', 'rows': 2}]
    """
    from collections import Counter

    counts: Counter = Counter()
    for part in splits.values():
        if "source_file" in part.column_names:
            counts.update(part.with_format("arrow")[:].column("source_file").to_pylist())
    builder = getattr(info, "builder_name", None) or ""
    return [{"name": os.path.basename(str(path)), "format": builder, "rows": rows}
            for path, rows in sorted(counts.items(), key=lambda item: str(item[0])) if path is not None]


def _config_name(value) -> str:
    text = str(value)
    if "/" in text or os.sep in text:
        text = Path(text).stem
    name = CONFIG_NAME.sub("_", text).strip("_.") or "empty"
    if name in ("default", DATA_FOLDER, PLOT_FOLDER):
        name = f"{name}_config"
    return name


def _write_shards(dataset, folder: Path, prefix: str, split: str, max_shard_bytes: int) -> list[Path]:
    num_shards = max(1, math.ceil(dataset.data.nbytes / max_shard_bytes)) if len(dataset) else 1
    num_shards = min(num_shards, max(1, len(dataset)))
    paths = []
    for index in range(num_shards):
        path = folder / prefix / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.shard(num_shards, index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


def _tag_generation(root: Path, shards: Iterable[Path]) -> str:
    """Append the generation tag to every shard's name (``train-00000-of-00001-<tag>.parquet``).

    The tag is a digest of the shards' paths and bytes: a new publish of other data never reuses
    the names the current card points at, and the same data always gets the same names.
    """
    digest = hashlib.sha256()
    shards = sorted(shards)
    for path in shards:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    tag = digest.hexdigest()[:GENERATION_DIGITS]
    for path in shards:
        path.rename(path.with_name(f"{path.stem}-{tag}{path.suffix}"))
    return tag


def published_names(splits_by_folder: Mapping[str, Iterable[str]]) -> re.Pattern:
    """The repo paths ``publish`` writes for these shard folders and splits: their Parquet shards
    (with or without a generation tag, as ``push_to_hub`` names them), ``README.md`` and the plots.

    These are the only files it replaces or deletes in a target it keeps no manifest of (the Hub,
    or a local folder with ``overwrite=True``).

    Example:
        >>> names = published_names({"data": ["train", "test"]})
        >>> [bool(names.fullmatch(path)) for path in ("data/train-00000-of-00002-0f3a9c1e.parquet",
        ...  "data/test-00001-of-00002.parquet", "data/notes.md", "other/train-00000-of-00001.parquet",
        ...  "assets/turns.png", "README.md", "scripts/train.py")]
        [True, True, False, False, True, True, False]
    """
    shards = "|".join(f"{re.escape(folder)}/(?:{'|'.join(re.escape(split) for split in splits)})"
                      for folder, splits in splits_by_folder.items())
    plots = "|".join(re.escape(name) for name in PLOT_TITLES)
    return re.compile(rf"(?:{shards})-\d{{5}}-of-\d{{5}}(?:-[0-9a-f]{{{GENERATION_DIGITS}}})?\.parquet"
                      rf"|{re.escape(CARD_FILE)}|{re.escape(PLOT_FOLDER)}/(?:{plots})")


def _redact(message: str, token: Optional[str]) -> str:
    return message.replace(token, "***") if token else message


def push_folder(folder: Path, repo_id: str, *, names: Optional[re.Pattern] = None, prune: bool = False,
                token: Optional[str] = None, private: bool = False, revision: Optional[str] = None,
                commit_message: str = "Publish dataset with hf_mmbuilder"):
    """Upload a built repo folder to the Hub in one commit; returns ``(repo_url, commit, changed)``.

    Creates the dataset repo (and branch ``revision``) if needed, refuses ``private=True`` for an
    existing public repo (it would stay public), adds every file of ``folder`` and, in the same
    commit, deletes the remote files the folder does not have whose path fully matches ``names``
    (the stale shards and plots of what is published, see :func:`published_names`); every other
    file of the revision stays. ``prune=True`` deletes every remote file the folder does not have
    (``.gitattributes`` excepted). Unchanged files are not re-uploaded; when nothing changed, no
    commit is made and ``changed`` is False. Failures raise :class:`PublishError` naming the step;
    the token is never part of a message.

    Example:
        >>> push_folder(Path("build"), "my-org/llava-clean")  # doctest: +SKIP
        ('https://huggingface.co/datasets/my-org/llava-clean', '3f2a...', True)
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    check_repo_id(repo_id)
    api = HfApi(token=token)
    branch = revision or "main"
    step = "creating the repo"
    try:
        repo_url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        step = "reading the repo"
        try:
            existing = api.repo_info(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            for other in ("model", "space"):
                if api.repo_exists(repo_id, repo_type=other):
                    raise ValueError(
                        f"repo_id {repo_id!r} is already a {other} repo; a dataset cannot be published under "
                        f"that name: choose another repo_id") from None
            raise
        if private and existing.private is False:
            raise ValueError(f"private=True but the dataset repo {repo_id!r} already exists and is public: "
                             "make it private on the Hub first, or publish with private=False")
        if branch != "main":
            step = f"creating branch {branch!r}"
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        step = "listing the repo"
        head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
        remote_files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head))
        local_files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in local_files]
        stale = sorted(remote_files - set(local_files) - {".gitattributes"})
        operations += [CommitOperationDelete(path_in_repo=path) for path in stale
                       if prune or (names is not None and names.fullmatch(path))]
        step = "uploading and committing"
        info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="dataset",
                                 revision=branch, parent_commit=head)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            reason = "the Hub rejected the token (401 Unauthorized): check --token / HF_TOKEN and its write access"
        else:
            reason = f"{status}: {str(error).splitlines()[0]}"
        raise PublishError(_redact(f"publishing {repo_id!r} failed while {step}: {reason}; "
                                   "nothing was committed, retry when fixed", token)) from None
    except (httpx2.HTTPError, OSError, RuntimeError) as error:
        # huggingface_hub wraps a failed LFS upload in a RuntimeError whose cause is the real error.
        cause = error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ is not None else None
        detail = f"{type(error).__name__}: {error}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
        raise PublishError(_redact(f"publishing {repo_id!r} failed while {step}: {detail}; "
                                   "nothing was committed, retry", token)) from None
    return repo_url, info.oid, info.oid != head


def publish(
    dataset,
    repo_id: Optional[str] = None,
    *,
    split_ratio: Optional[Mapping[str, float]] = None,
    seed: int = 0,
    group_by: Union[str, Sequence[str], None] = "auto",
    stratify_by: Optional[str] = None,
    card: Union[CardSpec, Mapping, None] = None,
    local_dir: Optional[str] = None,
    embed_media: bool = True,
    max_shard_size: Union[int, str] = "500MB",
    config_by: Optional[str] = None,
    drop_columns: Sequence[str] = DEFAULT_DROP_COLUMNS,
    private: bool = False,
    revision: Optional[str] = None,
    commit_message: Optional[str] = None,
    token: Optional[str] = None,
    overwrite: bool = False,
    prune: bool = False,
    dry_run: bool = False,
    tokens: SpecialTokens = DEFAULT_TOKENS,
    progress: bool = True,
) -> PublishResult:
    """Split, card, shard and publish a DJ-format dataset to a local folder and/or the Hub.

    Parameters:
        dataset: ``datasets.Dataset`` (split here by ``split_ratio``; one ``train`` split when
            ``split_ratio`` is None) or ``DatasetDict`` (published with its own splits).
        repo_id: ``namespace/name`` of the Hub dataset repo; ``None`` to skip the Hub.
        split_ratio, seed, group_by, stratify_by: see :func:`hf_mmbuilder.splits.plan_splits`.
        card: :class:`~hf_mmbuilder.card.CardSpec` or dict of its fields (licence, sources, history,
            section texts, Jinja template).
        local_dir: folder to write, laid out like the Hub repo (``load_dataset(local_dir)`` works).
            Only publish's own files are written there: ``README.md``, the plots in ``assets/`` and
            the shards of the configs and splits published; every other file stays. The files of
            an earlier publish into it (listed in its manifest) are replaced. A folder holding other
            files but no earlier publish is refused unless ``overwrite=True``; the current folder,
            the home folder and the file-system root are always refused.
        embed_media: embed media bytes (``List(Image())`` etc.); ``False`` keeps path strings.
        max_shard_size: upper bound of a shard's Arrow size (``"500MB"`` or bytes).
        config_by: also publish one config per value of this column (e.g. ``source_file``).
        drop_columns: columns not published (local paths by default); missing ones are ignored.
        private, revision, commit_message, token: Hub options (``revision`` is a branch, created
            if needed; the token defaults to the logged-in one).
        overwrite: write into a ``local_dir`` that holds files publish did not write, replacing
            only those with exactly the names publish writes (its shards, plots and card).
        prune: on the Hub, also delete every file of ``revision`` this publish did not write
            (``.gitattributes`` excepted). By default the commit deletes only the stale shards of
            the configs and splits published and stale plots, as ``push_to_hub`` does: the
            repo's other files (scripts, images, other configs' data) stay.
        dry_run: build and measure everything, write and upload nothing.

    Returns a :class:`PublishResult`. Input errors (ratios, ``repo_id``, a refused ``local_dir``,
    groups too big for a split, missing or escaping media files) raise ``ValueError`` before
    anything is written or uploaded; Hub failures raise :class:`PublishError`. Cost: one pass over
    rows and media to check, measure and embed; shards are written once and read once more for
    their generation tag.

    Example:
        >>> result = publish(ds, "my-org/llava-clean", split_ratio={"train": .9, "test": .1},
        ...                  seed=0, card={"license": "cc-by-4.0"}, local_dir="out/llava-clean")  # doctest: +SKIP
        >>> print(result.split_table)  # doctest: +SKIP
    """
    from datasets import Dataset, DatasetDict
    from datasets.utils.py_utils import convert_file_size_to_int
    from tqdm.auto import tqdm

    if repo_id is not None:
        check_repo_id(repo_id)
    if repo_id is None and local_dir is None and not dry_run:
        raise ValueError("publish needs a target: repo_id=..., local_dir=..., or dry_run=True")
    local = OutputFolder(local_dir, "publish", overwrite=overwrite, label="local_dir") if local_dir is not None else None
    spec = CardSpec.coerce(card)
    try:
        max_shard_bytes = convert_file_size_to_int(max_shard_size)
    except (ValueError, TypeError):
        raise ValueError(f"max_shard_size {max_shard_size!r} is not a size like '500MB' or a byte count") from None
    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_size must be positive, got {max_shard_size!r}")

    plan = None
    if isinstance(dataset, DatasetDict):
        if split_ratio is not None:
            raise ValueError("split_ratio is for a Dataset; this DatasetDict is already split")
        splits = dict(dataset)
        row_ids = {name: np.arange(len(part), dtype=np.int64) for name, part in splits.items()}
        split_table = "\n".join(["| split | rows |", "|---|---:|", *(f"| {name} | {len(part):,} |" for name, part in splits.items())])
        split_method = "The splits were given by the publisher of this dataset."
    elif isinstance(dataset, Dataset):
        plan = plan_splits(dataset, check_split_ratio(split_ratio or {"train": 1.0}), seed=seed,
                           group_by=group_by, stratify_by=stratify_by)
        row_ids = plan.indices
        splits = {name: dataset.select(rows) for name, rows in plan.indices.items()}
        split_table = plan.table()
        split_method = (
            f"Splits are seeded (seed {seed}) and group-aware: rows sharing "
            f"{', '.join(f'`{column}`' for column in plan.group_by) or 'nothing (every row is its own group)'} "
            "never span two splits" + (f"; stratified by `{stratify_by}`." if stratify_by else ".")
        )
    else:
        raise ValueError(f"publish takes a datasets.Dataset or DatasetDict, got {type(dataset).__name__}")
    if config_by is not None and any(config_by not in part.column_names for part in splits.values()):
        raise ValueError(f"config_by column {config_by!r} not in the dataset")
    check_media(splits, row_ids, require_files=embed_media)

    if not spec.sources:
        spec = dataclasses.replace(spec, sources=sources_from_files(splits, getattr(dataset, "info", None)))
    stats = collect_statistics(splits, tokens)
    plots = render_plots(stats)

    extra_configs: dict[str, dict[str, object]] = {}
    if config_by is not None:
        for split, part in splits.items():
            values = part.with_format("arrow")[:].column(config_by)
            for value in pc.unique(values).to_pylist():
                rows = np.flatnonzero(pc.equal(values, value).to_numpy(zero_copy_only=False)) if value is not None else \
                    np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False))
                extra_configs.setdefault(_config_name(value), {})[split] = part.select(rows)

    with local.staging() if local is not None and not dry_run else temporary_staging() as staging:
        repo = staging.files

        def prepared(config, split, part):
            if embed_media:
                part = _embed_media(part, str(staging.scratch / f"{config}-{split}.arrow"))
            return part.remove_columns([name for name in drop_columns if name in part.column_names])

        folders = {"default": DATA_FOLDER, **{name: name for name in extra_configs}}
        ready = {("default", split): prepared("default", split, part) for split, part in splits.items()}
        for name, parts in extra_configs.items():
            ready.update({(name, split): prepared(name, split, part) for split, part in parts.items()})
        features = next(iter(ready.values())).features
        split_sizes: dict[str, dict[str, tuple[int, int]]] = {name: {} for name in folders}
        shards = []
        with tqdm(total=len(ready), desc="writing shards", unit="split", disable=not progress) as bar:
            for (config, split), part in ready.items():
                paths = _write_shards(part, repo, folders[config], split, max_shard_bytes)
                split_sizes[config][split] = (len(part), sum(path.stat().st_size for path in paths))
                shards.extend(paths)
                bar.update(1)
        tag = _tag_generation(repo, shards)
        configs = {config: {split: f"{folders[config]}/{split}-*-{tag}.parquet" for split in sizes}
                   for config, sizes in split_sizes.items()}
        for file_name, png in plots.items():
            (repo / PLOT_FOLDER).mkdir(exist_ok=True)
            (repo / PLOT_FOLDER / file_name).write_bytes(png)
        dataset_card = build_card(stats=stats, spec=spec, features=features, split_sizes=split_sizes, configs=configs,
                                  split_table=split_table, split_method=split_method, plots=plots,
                                  plot_folder=PLOT_FOLDER, repo_id=repo_id, tokens=tokens, embed_media=embed_media)
        card_text = str(dataset_card)
        secret = token
        if secret is None and repo_id is not None:
            from huggingface_hub import get_token

            secret = get_token()
        if secret and secret in card_text:
            raise ValueError("the card text contains the Hub token: remove it from the card sections")
        (repo / CARD_FILE).write_text(card_text, encoding="utf-8")
        files = sorted(path.relative_to(repo).as_posix() for path in repo.rglob("*") if path.is_file())
        result = PublishResult(card=card_text, split_table=split_table, plan=plan, files=files)
        if dry_run:
            return result
        names = published_names({folders[config]: sizes for config, sizes in split_sizes.items()})
        if repo_id is not None:
            result.repo_url, result.commit, hub_changed = push_folder(
                repo, repo_id, names=names, prune=prune, token=token, private=private, revision=revision,
                commit_message=commit_message or f"Publish {sum(len(part) for part in splits.values()):,} rows with hf_mmbuilder",
            )
            result.changed = hub_changed
            logger.info("%s: %s", repo_id, f"committed {result.commit}" if hub_changed else "nothing changed")
        if local is not None:
            local_changed = local.commit(staging, names=names, last=[CARD_FILE])
            result.local_dir = str(local.path)
            result.changed = local_changed if repo_id is None else (result.changed or local_changed)
            logger.info("%s: %s", local.path, "written" if local_changed else "nothing changed")
        return result
