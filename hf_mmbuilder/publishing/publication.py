"""Publish a dataset the way others can ``load_dataset`` and trust it.

:func:`publish` splits (seeded, group-aware, see :mod:`hf_mmbuilder.publishing.splits`), checks every
media file, embeds media into Parquet shards sized by bytes (:mod:`hf_mmbuilder.publishing.shards`),
writes a dataset card with statistics and plots (:mod:`hf_mmbuilder.publishing.card`), and lays it
all out exactly like a Hub dataset repo: in a local folder and/or on the Hub in one commit through
``huggingface_hub`` (:mod:`hf_mmbuilder.publishing.hub`).
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

import ctypes
import ctypes.util
import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._deprecated import renamed
from ..output_folder import OutputFolder, temporary_staging
from ..schema import DEFAULT_TOKENS, SpecialTokens
from ..schema import MEDIA_COLUMNS
from .card import (
    METADATA_KEY,
    STATISTICS_COLUMNS,
    CardSpec,
    CardStatistics,
    build_card,
    detect_languages,
    render_plots,
    sources_from_files,
    warm_up,
)
from .hub import PublishError, check_repo_id, push_folder
from .shards import (
    CARD_FILE,
    CHECK_BATCH_ROWS,
    DATA_FOLDER,
    PLOT_FOLDER,
    SplitRows,
    check_media,
    config_name,
    embedded_features,
    empty_columns,
    json_text_columns,
    published_names,
    tag_generation,
    text_features,
    write_shards,
)
from .splits import SplitPlan, check_split_ratio, plan_splits

# PublishError is raised by publish (through push_folder) and caught by its callers from here.
__all__ = ["DEFAULT_DROP_COLUMNS", "PublishError", "PublishResult", "load_published", "publish"]


logger = logging.getLogger("hf_mmbuilder")


DEFAULT_DROP_COLUMNS = ("media_root", "source_file")
# The inspection report's folder in local_dir (publish(report=True)); local only, never uploaded.
REPORT_FOLDER = "inspection"


@dataclasses.dataclass
class PublishResult:
    """What :func:`publish` did.

    Attributes:
        card: the README.md text.
        split_table: Markdown table of rows per split against the requested ratios.
        plan: the :class:`~hf_mmbuilder.publishing.splits.SplitPlan` (``None`` when a DatasetDict was given).
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


def _release_freed_memory() -> None:
    """Hand the memory planning (or checking) freed back to the system before the next step.

    They work on O(rows) arrays; once freed, Arrow's allocator keeps the pages for reuse, and
    glibc's ``malloc`` keeps heap pages it cannot trim from the top (freeing a large block
    raises its mmap threshold, so later blocks of the same size land on the heap). The pass
    that follows needs a few batches only, so without this publishing's resident memory would
    grow with the dataset although what it uses does not.
    """
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        # Not glibc (musl, macOS): its allocator returns freed memory by its own rules.
        pass


def _special_tokens(special_tokens: Optional[SpecialTokens], deprecated: dict) -> SpecialTokens:
    """``special_tokens``, or the deprecated ``tokens=`` of :func:`publish` (which warns).

    ``tokens`` was renamed: next to the Hub ``token`` it read as a second credential.
    """
    given = {} if special_tokens is None else {"special_tokens": special_tokens}
    # stacklevel 4: the warning points at publish()'s caller.
    keywords = renamed({**given, **deprecated}, "tokens", "special_tokens", where="publish", stacklevel=4)
    unexpected = sorted(set(keywords) - {"special_tokens"})
    if unexpected:
        raise TypeError(f"publish() got an unexpected keyword argument {unexpected[0]!r}")
    return keywords.get("special_tokens", DEFAULT_TOKENS)


def publish(
    dataset,
    repo_id: Optional[str] = None,
    *,
    split_ratio: Optional[Mapping[str, float]] = None,
    seed: int = 0,
    group_by: Union[str, Sequence[str], None] = "auto",
    stratify_by: Optional[str] = None,
    media_identity: str = "content",
    near_duplicate_radius: Optional[int] = None,
    card: Union[CardSpec, Mapping, None] = None,
    local_dir: Optional[str] = None,
    embed_media: bool = True,
    max_shard_size: Union[int, str] = "500MB",
    config_by: Optional[str] = None,
    drop_columns: Sequence[str] = DEFAULT_DROP_COLUMNS,
    keep_empty_columns: bool = False,
    private: Optional[bool] = None,
    revision: Optional[str] = None,
    commit_message: Optional[str] = None,
    token: Optional[str] = None,
    overwrite: bool = False,
    prune: bool = False,
    dry_run: bool = False,
    special_tokens: Optional[SpecialTokens] = None,
    progress: bool = True,
    report: Union[bool, Mapping] = False,
    **deprecated,
) -> PublishResult:
    """Split, card, shard and publish a DJ-format dataset to a local folder and/or the Hub.

    Parameters:
        dataset: ``datasets.Dataset`` (split here by ``split_ratio``; one ``train`` split when
            ``split_ratio`` is None) or ``DatasetDict`` (published with its own splits).
        repo_id: ``namespace/name`` of the Hub dataset repo; ``None`` to skip the Hub.
        split_ratio, seed, group_by, stratify_by: see :func:`hf_mmbuilder.publishing.splits.plan_splits`.
        media_identity, near_duplicate_radius: how rows sharing media are grouped (by default the
            bytes of each readable file, so copies under other paths never span two splits; the
            path of a file that cannot be read); see :func:`hf_mmbuilder.publishing.splits.row_groups`.
            The card says which key was used.
        card: :class:`~hf_mmbuilder.publishing.card.CardSpec` or dict of its fields (licence, sources, history,
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
        keep_empty_columns: also publish the columns that hold nothing in any row (all null, or
            every list empty, e.g. ``audios`` of an image dataset); by default they are left out
            and the card lists them.
        private: ``True``/``False`` sets a new repo's visibility; ``None`` (the default) leaves it
            to the namespace's default, as ``push_to_hub`` does.
        revision, commit_message, token: Hub options (``revision`` is a branch, created if needed;
            ``token`` is the Hub token, as in ``huggingface_hub``, and defaults to the logged-in one).
        overwrite: write into a ``local_dir`` that holds files publish did not write, replacing
            only those with exactly the names publish writes (its shards, plots and card).
        prune: on the Hub, also delete every file of ``revision`` this publish did not write
            (``.gitattributes`` excepted). By default the commit deletes only the stale shards of
            the configs and splits published and stale plots, as ``push_to_hub`` does: the
            repo's other files (scripts, images, other configs' data) stay.
        dry_run: build and measure everything, write and upload nothing.
        report: also write the HTML inspection report (:func:`hf_mmbuilder.inspect`) of ``dataset``
            into ``local_dir/inspection/``, as files publish owns there (never uploaded to the Hub);
            a mapping gives its options (``clusters``, ``selection``, ``rejects``, ``sample`` ...).
        special_tokens: the dataset's DJ special tokens (``None``: the defaults), for the card's
            statistics. The old keyword ``tokens=`` still works, with a FutureWarning.

    Every release of ``datasets`` from 4.0 on, and the Hub's viewer, can load what is published:
    ``Json`` columns (``extra``, LLaVA's ``turn_extras`` ...) are written as their JSON text and
    declared ``string``, and the card names them and says how to decode them;
    :func:`load_published` loads such a folder or repo with those columns as ``Json`` again, ready
    for :func:`hf_mmbuilder.export`.

    Returns a :class:`PublishResult`. Input errors (ratios, ``repo_id``, a refused ``local_dir``,
    groups too big for a split, missing or escaping media files) raise ``ValueError`` before
    anything is written or uploaded; Hub failures raise :class:`PublishError`. Cost: when splitting,
    the size of each distinct media file, the first 4 KiB of those that share their size with
    another, and a digest of the few that share both (each in compiled calls that let go of the
    GIL, on threads); media paths checked per distinct folder; then one pass per split straight
    from the dataset's Arrow table, a batch of its sorted rows at a time, that writes the shards,
    embeds media (a batch's files read in one compiled call on reader threads ahead of the writer,
    into memory reused from batch to batch) and accumulates the card's statistics, images measured
    from the header of the bytes embedded; the generation tag is the digest of the shards' bytes,
    read back on a thread right behind the writer and then handed to the disk batch by batch (its
    writeback started, its pages dropped from the page cache, see
    :class:`~hf_mmbuilder.publishing.shards.ShardTrail`). py3langid's model (mapped from a
    decompressed copy in the ``datasets`` cache) and matplotlib load on a thread from the start.
    Memory holds a few batches and O(rows) integers (the split plan), not the split: the rows are
    never gathered into a table of their own.

    Example:
        >>> result = publish(ds, "my-org/llava-clean", split_ratio={"train": .9, "test": .1},
        ...                  seed=0, card={"license": "cc-by-4.0"}, local_dir="out/llava-clean")  # doctest: +SKIP
        >>> print(result.split_table)  # doctest: +SKIP
    """
    from datasets import Dataset, DatasetDict
    from datasets.utils.py_utils import convert_file_size_to_int
    from tqdm.auto import tqdm

    tokens = _special_tokens(special_tokens, deprecated)
    if repo_id is not None:
        check_repo_id(repo_id)
    if repo_id is None and local_dir is None and not dry_run:
        raise ValueError("publish needs a target: repo_id=..., local_dir=..., or dry_run=True")
    if report and local_dir is None:
        raise ValueError("report=True writes the inspection report into local_dir: give local_dir=...")
    local = OutputFolder(local_dir, "publish", overwrite=overwrite, label="local_dir") if local_dir is not None else None
    spec = CardSpec.coerce(card)
    try:
        max_shard_bytes = convert_file_size_to_int(max_shard_size)
    except (ValueError, TypeError):
        raise ValueError(f"max_shard_size {max_shard_size!r} is not a size like '500MB' or a byte count") from None
    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_size must be positive, got {max_shard_size!r}")

    # The language model and the plotting library load on a thread while the dataset is split,
    # checked and written (a bounded job: it ends on its own if publish raises before the card).
    warming = ThreadPoolExecutor(max_workers=1)
    warmed = warming.submit(warm_up)
    warming.shutdown(wait=False)
    plan = None
    if isinstance(dataset, DatasetDict):
        if split_ratio is not None:
            raise ValueError("split_ratio is for a Dataset; this DatasetDict is already split")
        splits = {name: SplitRows.of(part) for name, part in dataset.items()}
        features_in = next(iter(dataset.values())).features
        split_table = "\n".join(["| split | rows |", "|---|---:|", *(f"| {name} | {len(part):,} |" for name, part in splits.items())])
        split_method = "The splits were given by the publisher of this dataset."
    elif isinstance(dataset, Dataset):
        plan = plan_splits(dataset, check_split_ratio(split_ratio or {"train": 1.0}), seed=seed,
                           group_by=group_by, stratify_by=stratify_by, media_identity=media_identity,
                           near_duplicate_radius=near_duplicate_radius)
        # Each split is the dataset's table and the split's sorted rows: nothing is gathered until
        # the writer takes a batch of rows.
        splits = {name: SplitRows.of(dataset, rows) for name, rows in plan.indices.items()}
        _release_freed_memory()
        features_in = dataset.features
        split_table = plan.table()
        media_keys = plan.media_keys.describe()
        split_method = (
            f"Splits are seeded (seed {seed}) and group-aware: rows sharing "
            f"{', '.join(f'`{column}`' for column in plan.group_by) or 'nothing (every row is its own group)'} "
            "never span two splits" + (f"; {media_keys}" if media_keys else "")
            + (f"; stratified by `{stratify_by}`." if stratify_by else ".")
        )
    else:
        raise ValueError(f"publish takes a datasets.Dataset or DatasetDict, got {type(dataset).__name__}")
    if config_by is not None and any(config_by not in part.column_names for part in splits.values()):
        raise ValueError(f"config_by column {config_by!r} not in the dataset")
    media_bytes = check_media(splits, require_files=embed_media)
    _release_freed_memory()
    published_columns = [name for name in next(iter(splits.values())).column_names if name not in drop_columns]
    dropped_empty = [] if keep_empty_columns else empty_columns(
        {split: dataclasses.replace(part, table=part.table.select(published_columns)) for split, part in splits.items()})
    left_out = {*drop_columns, *dropped_empty}
    if not spec.sources:
        spec = dataclasses.replace(spec, sources=sources_from_files(splits, getattr(dataset, "info", None)))

    extra_configs: dict[str, dict[str, SplitRows]] = {}
    if config_by is not None:
        for split, part in splits.items():
            values = pa.concat_arrays([batch.column(config_by).combine_chunks() for _, batch in part.batches([config_by], CHECK_BATCH_ROWS)]) \
                if len(part) else pa.array([], part.table.schema.field(config_by).type)
            for value in pc.unique(values).to_pylist():
                rows = np.flatnonzero(pc.equal(values, value).to_numpy(zero_copy_only=False)) if value is not None else \
                    np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False))
                extra_configs.setdefault(config_name(value), {})[split] = SplitRows(
                    part.table, rows if part.rows is None else part.rows[rows])

    columns = [name for name in features_in if name not in left_out]
    media_columns = [column for column in MEDIA_COLUMNS if column in columns] if embed_media else []
    features = text_features(embedded_features(features_in, media_columns).copy())
    features = type(features)({name: features[name] for name in columns})
    json_columns = json_text_columns({name: features_in[name] for name in columns})
    statistics = CardStatistics({name: len(part) for name, part in splits.items()}, tokens)
    statistics_columns = [name for name in STATISTICS_COLUMNS if name in features_in]

    # The language sample is a few thousand rows known up front, detected once the shards are
    # written: py3langid on a thread beside the pass took the GIL from the threads that feed the
    # writer, and cost the pass more than the detection takes alone.
    sample = [text for split, part in splits.items() for positions in [statistics.sample_positions[split]] if len(positions)
              for _, batch in SplitRows(part.table, positions if part.rows is None else part.rows[positions]).batches(["text"], len(positions))
              for text in batch.column("text").to_pylist() if text] if "text" in features_in else []
    # Finding the empty columns and the sample took per-row flags and rows of the table too.
    _release_freed_memory()
    with local.staging() if local is not None and not dry_run else temporary_staging() as staging:
        repo = staging.files
        folders = {"default": DATA_FOLDER, **{name: name for name in extra_configs}}
        parts = {("default", split): part for split, part in splits.items()}
        for name, config_parts in extra_configs.items():
            parts.update({(name, split): part for split, part in config_parts.items()})
        split_sizes: dict[str, dict[str, tuple[int, int, int]]] = {name: {} for name in folders}
        shards: dict = {}
        with tqdm(total=len(parts), desc="writing shards", unit="split", disable=not progress) as bar:
            for (config, split), part in parts.items():
                share = len(part) / len(splits[split]) if len(splits[split]) else 0.0
                nbytes = part.estimate_nbytes(columns) + int(media_bytes[split] * share)
                counted = config == "default"
                paths = write_shards(
                    part, features, repo, folders[config], split, max_shard_bytes, nbytes=nbytes, embed=media_columns,
                    read_columns=[*statistics_columns, *(["media_root"] if "media_root" in features_in else [])] if counted or media_columns else [],
                    on_batch=(lambda start, batch, written, split=split: statistics.add(
                        split, batch, start, written if media_columns else None)) if counted else None)
                split_sizes[config][split] = (len(part), nbytes, sum(path.stat().st_size for path in paths))
                shards.update(paths)
                bar.update(1)
        warmed.result()
        stats = statistics.result(detect_languages(sample, tokens))
        plots = render_plots(stats)
        tag = tag_generation(repo, shards)
        configs = {config: {split: f"{folders[config]}/{split}-*-{tag}.parquet" for split in sizes}
                   for config, sizes in split_sizes.items()}
        for file_name, png in plots.items():
            (repo / PLOT_FOLDER).mkdir(exist_ok=True)
            (repo / PLOT_FOLDER / file_name).write_bytes(png)
        dataset_card = build_card(stats=stats, spec=spec, features=features, split_sizes=split_sizes, configs=configs,
                                  split_table=split_table, split_method=split_method, plots=plots,
                                  plot_folder=PLOT_FOLDER, repo_id=repo_id, tokens=tokens, embed_media=embed_media,
                                  json_columns=json_columns, dropped_columns=dropped_empty)
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
            if report:
                from ..inspection import build_report

                build_report(dataset, repo / REPORT_FOLDER, final_folder=local.path / REPORT_FOLDER,
                             **(dict(report) if isinstance(report, Mapping) else {}), tokens=tokens)
                result.files = sorted(path.relative_to(repo).as_posix() for path in repo.rglob("*") if path.is_file())
            local_changed = local.commit(staging, names=names, last=[CARD_FILE])
            result.local_dir = str(local.path)
            result.changed = local_changed if repo_id is None else (result.changed or local_changed)
            logger.info("%s: %s", local.path, "written" if local_changed else "nothing changed")
        return result


def load_published(path: str, name: Optional[str] = None, **options):
    """``datasets.load_dataset`` of a dataset :func:`publish` wrote (a local folder or a Hub repo
    id), with the columns it published as JSON text decoded as ``Json`` again.

    The columns are those the card's ``hf_mmbuilder.json_text_columns`` metadata names; ``name``
    and ``options`` go to ``load_dataset`` (``split=``, ``cache_dir=``, ``token=`` ...). The result
    exports back to its source format with :func:`hf_mmbuilder.export`. A folder or repo without
    such a card loads as ``load_dataset`` loads it.

    Example:
        >>> splits = load_published("out/llava-clean")  # doctest: +SKIP
        >>> splits["train"].features["extra"]  # doctest: +SKIP
        Json(decode=True)
    """
    from datasets import Json, Value, load_dataset
    from datasets.features.features import _visit
    from huggingface_hub import DatasetCard

    card_file = os.path.join(path, CARD_FILE)
    if os.path.isdir(path):
        metadata = DatasetCard.load(card_file).data.to_dict() if os.path.isfile(card_file) else {}
    else:
        metadata = DatasetCard.load(path, repo_type="dataset", token=options.get("token")).data.to_dict()
    json_columns = (metadata.get(METADATA_KEY) or {}).get("json_text_columns", [])
    loaded = load_dataset(path, name, **options)
    features = next(iter(loaded.values())).features if hasattr(loaded, "values") else loaded.features
    for column in json_columns:
        if column in features:
            loaded = loaded.cast_column(column, _visit(features[column], lambda inner: Json() if inner == Value("string") else inner))
    return loaded
