"""``MultiModalDatasetBuilder``: the whole building workflow in five calls, each a thin layer over the
core functions (loaders, template/Oasis synthesis, ops, quality report, splits, exporters, publisher).

Example:
    >>> builder = MultiModalDatasetBuilder(modalities=["image"], output_dir="out", quality_threshold=0.6)  # doctest: +SKIP
    >>> builder.add_data_source("llava.json")                                  # doctest: +SKIP
    >>> builder.add_data_source("photos/")        # images + captions           # doctest: +SKIP
    >>> builder.generate_instructions(100, ["qa", "caption", "reasoning"])     # doctest: +SKIP
    >>> report = builder.validate_quality()                                    # doctest: +SKIP
    >>> builder.export(format="llava", split_ratio={"train": .8, "validation": .1, "test": .1})  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import datasets
from datasets import Dataset, Features, List, Value, concatenate_datasets

from .ops import ComputeStats, InstructionQualityScore, QualityFilter, RedactPII, apply_filters
from .output_folder import OutputFolder
from .formats.catalog import available_formats
from .formats.loading import load
from .schema import DEFAULT_TOKENS, EOC_TOKEN, IMAGE_TOKEN, SpecialTokens
from .synthesis.report import QualityReport, quality_report
from .synthesis.responses import second_responses
from .synthesis.templates import INSTRUCTION_TYPES, generate_template_instructions

logger = logging.getLogger(__name__)

# Modality -> its DJ media column; "text" has none (every row has text), so it restricts nothing.
MODALITIES = {"text": None, "image": "images", "audio": "audios", "video": "videos"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Field names that, in a captions or metadata file, name the media file a record is about.
FILE_FIELDS = ("file_name", "filename", "file", "image", "image_path", "image_file", "audio", "audio_path",
               "video", "video_path", "path", "media")
CAPTION_FIELDS = ("caption", "text", "description", "sentence")

# The columns every source is projected onto so that sources of different formats concatenate.
COMMON_FEATURES = Features({
    "text": Value("string"),
    "images": List(Value("string")),
    "audios": List(Value("string")),
    "videos": List(Value("string")),
    "id": Value("string"),
    "roles": List(Value("string")),
    "media_layout": Value("string"),
    "media_root": Value("string"),
    "source_file": Value("string"),
    "metadata": Value("string"),
    "source": Value("string"),
})

# Media each conversation exporter can write back; rows with other media cannot go to that format.
EXPORT_MEDIA = {"llava": ("images", "videos"), "oasis": ("images", "videos")}

# Keys whose presence in a record's head tells its format apart.
_FORMAT_KEYS = (("mmc4", ('"text_list"', '"image_info"')), ("sharegpt", ('"messages"',)), ("oasis", ('"instruction"', '"response"')), ("llava", ('"conversations"',)))


def sniff_format(path: str) -> str:
    """Guess the source format of a JSON / JSON-lines file from the keys of its first records.

    Reads the first 64 KiB only. Raises ``ValueError`` when no known layout matches.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
        >>> _ = open(path, "w").write('{"messages": [], "images": []}\\n')
        >>> sniff_format(path)
        'sharegpt'
    """
    with open(path, "rb") as handle:
        head = handle.read(65536).decode("utf-8", "replace")
    for name, keys in _FORMAT_KEYS:
        if all(key in head for key in keys):
            return name
    raise ValueError(f"{path}: cannot tell its format from the first records; pass format=... (one of {available_formats()})")


def image_folder_dataset(folder: str, *, require_captions: bool = True) -> Dataset:
    """DJ rows for a folder of images with captions: one row per image (sorted, recursive).

    Captions and metadata come from ``metadata.jsonl`` or ``metadata.csv`` (the Hugging Face
    ImageFolder convention: a ``file_name`` column, a ``caption``/``text`` column, any other
    columns become the row's ``metadata``), or else from a ``<image stem>.txt`` file beside the
    image. ``text`` is ``<__dj__image> caption <|__dj__eoc|>``. O(number of files).

    Raises ``ValueError`` naming the images that have no caption (``require_captions=False``
    keeps them with an empty caption) and the metadata rows naming missing images.

    Example:
        >>> ds = image_folder_dataset("photos/")  # doctest: +SKIP
        >>> ds[0]["text"]  # doctest: +SKIP
        '<__dj__image> A red bus. <|__dj__eoc|>'
    """
    root = Path(folder).resolve()
    metadata = next((str(root / name) for name in ("metadata.jsonl", "metadata.csv") if (root / name).exists()), None)
    return media_folder_dataset(images=folder, metadata=metadata, require_captions=require_captions, source=f"imagefolder:{root.name}")


def _read_records(path: str) -> list[tuple[str, object]]:
    """``(label, record)`` pairs of a captions or metadata file: a JSON object keyed by file name (its
    values a caption string or a record), a JSON array of records, JSON lines, or CSV with a header.
    ``label`` says where the record stands in the file, for error messages."""
    suffix = Path(path).suffix.lower()
    with open(path, encoding="utf-8-sig", newline="" if suffix == ".csv" else None) as handle:
        if suffix == ".csv":
            return [(f"row {number}", row) for number, row in enumerate(csv.DictReader(handle), 2)]
        if suffix == ".jsonl":
            records = []
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        records.append((f"line {number}", json.loads(line)))
                    except ValueError as error:
                        raise ValueError(f"{path} line {number}: not JSON ({error})") from None
            return records
        try:
            document = json.load(handle)
        except ValueError as error:
            raise ValueError(f"{path}: not JSON ({error}); captions and metadata files are JSON, JSON lines (.jsonl) or CSV") from None
    if isinstance(document, dict):
        # {file: caption} or {file: {field: value}}: the key is the file name.
        return [(f"key {key!r}", {"file_name": key, **(value if isinstance(value, dict) else {"caption": value})}) for key, value in document.items()]
    if isinstance(document, list):
        return [(f"record {index}", record) for index, record in enumerate(document)]
    raise ValueError(f"{path}: a JSON {type(document).__name__} at the top; expected an object keyed by file name or an array of records")


def _keyed_records(path: str, what: str) -> dict[str, tuple[str, dict]]:
    """File name (as written) -> (label, record without its file field) for every record of ``path``."""
    keyed: dict[str, tuple[str, dict]] = {}
    for label, record in _read_records(path):
        if not isinstance(record, dict):
            raise ValueError(f"{path} {label}: a {type(record).__name__}, expected a record with a file field and a {what}")
        field = next((name for name in FILE_FIELDS if isinstance(record.get(name), str) and record[name]), None)
        if field is None:
            raise ValueError(f"{path} {label}: no file field (one of {', '.join(FILE_FIELDS)}) naming the media file")
        name = record[field].replace("\\", "/").removeprefix("./")
        if name in keyed:
            raise ValueError(f"{path} {label}: a second record for {name!r} (the first is {keyed[name][0]})")
        keyed[name] = (label, {key: value for key, value in record.items() if key != field})
    return keyed


def _media_files(folders: Mapping[str, str]) -> tuple[list[tuple[str, Path, str]], dict[str, int]]:
    """The media files of each modality's folder, sorted, as ``(column, root, relative path)``, and
    every name a captions file may use for one of them -> its position: the path relative to the
    folder, the same under the folder's own name (``images/a.jpg``), the absolute path, and the bare
    file name when no other file has it."""
    from .formats.captioned import VIDEO_EXTENSIONS
    from .loading_scripts.wavcaps import AUDIO_EXTENSIONS

    extensions = {"images": IMAGE_EXTENSIONS, "audios": AUDIO_EXTENSIONS, "videos": VIDEO_EXTENSIONS}
    files: list[tuple[str, Path, str]] = []
    for column, folder in folders.items():
        root = Path(folder).resolve()
        if not root.is_dir():
            raise ValueError(f"{folder}: not a folder ({column}=)")
        found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in extensions[column] and p.is_file())
        if not found:
            raise ValueError(f"{folder}: no {column[:-1]} files ({', '.join(extensions[column])})")
        files.extend((column, root, name) for name in found)
    names: dict[str, int] = {}
    basenames: dict[str, list[int]] = {}
    for position, (column, root, name) in enumerate(files):
        for alias in (name, f"{root.name}/{name}", (root / name).as_posix()):
            names.setdefault(alias, position)
        basenames.setdefault(name.rsplit("/", 1)[-1], []).append(position)
    for base, positions in basenames.items():
        if len(positions) == 1:
            names.setdefault(base, positions[0])
    return files, names


def _match(keyed: Mapping[str, tuple[str, dict]], names: Mapping[str, int], path: str, what: str) -> dict[int, tuple[str, dict]]:
    """Media position -> (label, record) for every record of ``keyed``; raises naming the records
    whose file is in none of the folders."""
    matched: dict[int, tuple[str, dict]] = {}
    orphans = []
    for name, (label, record) in keyed.items():
        position = names.get(name)
        if position is None:
            orphans.append(f"{name!r} ({label})")
        elif position in matched:
            raise ValueError(f"{path} {label}: {name!r} is a file {matched[position][0]} already named")
        else:
            matched[position] = (label, record)
    if orphans:
        raise ValueError(f"{path}: {len(orphans)} {what} record(s) name files in none of the media folders: {', '.join(orphans[:5])}")
    return matched


def _pop_caption(record: dict, path: Optional[str], label: str) -> Optional[str]:
    """Remove every caption field from ``record`` and return the first non-empty caption (``None``
    without one); a caption that is not a string is an error naming the file and the record."""
    caption = None
    for key in CAPTION_FIELDS:
        value = record.pop(key, None)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{path} {label}: {key!r} is a {type(value).__name__}, expected the caption as a string")
        caption = caption or value or None
    return caption


def media_folder_dataset(*, images: Optional[str] = None, audios: Optional[str] = None, videos: Optional[str] = None,
                         texts: Optional[str] = None, metadata: Optional[str] = None, require_captions: bool = True,
                         tokens: SpecialTokens = DEFAULT_TOKENS, source: Optional[str] = None) -> Dataset:
    """DJ rows for media folders joined with a captions file and a metadata file: one row per media
    file (each folder sorted, recursive), ``text`` = ``<media token> caption <|__dj__eoc|>``.

    ``texts`` is a ``{file: caption}`` JSON object, or a JSON array / JSON lines / CSV of records
    with a file field (``file_name``, ``file``, ``image``, ``path`` ... see :data:`FILE_FIELDS`) and
    a caption field (``caption``, ``text``, ``description``, ``sentence``). ``metadata`` is CSV or
    JSON keyed by file name the same ways; its fields become the row's ``metadata`` (the
    templates' facts), and its caption field captions files the captions file does not. A file
    is named by its path relative to its folder, that path under the folder's name, its absolute
    path, or its bare name when unique. Without a caption anywhere, a ``<stem>.txt`` beside the
    file is read. ``source`` names the rows' origin (default ``mediafolder:<folder name>``).
    O(files + records).

    Raises ``ValueError`` naming the orphans on either side: records naming files in no folder,
    and files without a caption (``require_captions=False`` keeps them with an empty caption).

    Example:
        >>> ds = media_folder_dataset(images="data/images", texts="data/captions.json", metadata="data/metadata.csv")  # doctest: +SKIP
        >>> ds[0]["text"]  # doctest: +SKIP
        '<__dj__image> A red bus. <|__dj__eoc|>'
    """
    folders = {column: folder for column, folder in (("images", images), ("audios", audios), ("videos", videos)) if folder is not None}
    if not folders:
        raise ValueError("add_data_source(texts=..., metadata=...) needs a media folder to join them with: images=, audios= or videos=")
    files, names = _media_files(folders)
    captions = _match(_keyed_records(texts, "caption"), names, texts, "caption") if texts is not None else {}
    extras = _match(_keyed_records(metadata, "metadata"), names, metadata, "metadata") if metadata is not None else {}
    columns: dict[str, list] = {name: [] for name in COMMON_FEATURES}
    missing = []
    for position, (column, root, name) in enumerate(files):
        label, record = captions.get(position, ("", {}))
        captioned = dict(record)
        caption = _pop_caption(captioned, texts, label)
        # A captions record's other fields are kept as metadata; the metadata file's win on a clash.
        label, record = extras.get(position, ("", {}))
        record = {**captioned, **record}
        caption = caption or _pop_caption(record, metadata, label)
        sidecar = (root / name).with_suffix(".txt")
        if not caption and sidecar.exists():
            caption = sidecar.read_text(encoding="utf-8").strip()
        if not caption:
            missing.append(name)
            caption = ""
        for media in ("images", "audios", "videos"):
            columns[media].append([name] if media == column else [])
        columns["text"].append(f"{tokens.for_column(column)} {caption} {tokens.eoc}")
        columns["id"].append(None)
        columns["roles"].append([])
        columns["media_layout"].append(column[:-1])
        columns["media_root"].append(str(root))
        columns["source_file"].append(str(root / name))
        columns["metadata"].append(json.dumps(record, ensure_ascii=False) if record else None)
        columns["source"].append(source or f"mediafolder:{root.name}")
    if missing and require_captions:
        kind = f"{next(iter(folders))[:-1]}(s)" if len(folders) == 1 else "media file(s)"
        raise ValueError(f"{', '.join(folders.values())}: {len(missing)} {kind} without a caption (not in {texts or 'a captions file'}, "
                         f"no metadata caption, no .txt beside them): {missing[:5]}")
    return Dataset.from_dict(columns, features=COMMON_FEATURES)


def mmc4_caption_rows(dataset: Dataset, source: str) -> Dataset:
    """One caption row per image of MMC4 documents: the image with the sentence it was matched to.

    The k-th image of a row is original image ``image_index[k]``, whose sentence is
    ``text_list[matched_text_index[image_index[k]]]``; this is the material templates need (an
    image and its own caption), where the whole document would describe many images at once.
    O(images).

    Example:
        >>> rows = mmc4_caption_rows(hf_mmbuilder.load("mmc4", "docs.jsonl", split="train"), "mmc4")  # doctest: +SKIP
    """
    texts, images, roots, files = [], [], [], []
    for row in dataset.select_columns(["images", "image_index", "matched_text_index", "text_list", "media_root", "source_file"]):
        for position, path in enumerate(row["images"]):
            original = row["image_index"][position]
            if original < 0 or original >= len(row["matched_text_index"]):
                continue
            sentence = row["text_list"][row["matched_text_index"][original]]
            texts.append(f"{IMAGE_TOKEN} {sentence} {EOC_TOKEN}")
            images.append([path])
            roots.append(row["media_root"])
            files.append(row["source_file"])
    n = len(texts)
    return Dataset.from_dict({
        "text": texts, "images": images, "audios": [[] for _ in range(n)], "videos": [[] for _ in range(n)], "id": [None] * n,
        "roles": [[] for _ in range(n)], "media_layout": ["image"] * n, "media_root": roots, "source_file": files,
        "metadata": [None] * n, "source": [source] * n,
    }, features=COMMON_FEATURES)


def project(dataset: Dataset, source: str) -> Dataset:
    """``dataset`` reduced (or padded with nulls/empty lists) to :data:`COMMON_FEATURES`; ``source``
    is filled with the given name unless the dataset has that column.

    Example:
        >>> project(Dataset.from_dict({"text": ["hi"]}), "demo").column_names[-1]
        'source'
    """
    keep = [name for name in COMMON_FEATURES if name in dataset.column_names]
    dataset = dataset.select_columns(keep)
    n = len(dataset)
    for name, feature in COMMON_FEATURES.items():
        if name in dataset.column_names:
            continue
        if name == "source":
            dataset = dataset.add_column(name, [source] * n, feature=feature)
        elif isinstance(feature, List):
            dataset = dataset.add_column(name, [[] for _ in range(n)], feature=feature)
        else:
            dataset = dataset.add_column(name, [None] * n, feature=feature)
    return dataset.select_columns(list(COMMON_FEATURES)).cast(COMMON_FEATURES)


class MultiModalDatasetBuilder:
    """Build a multimodal instruction dataset: add sources, generate instructions, validate, export.

    Parameters
    ----------
    modalities : sequence of {"text", "image", "audio", "video"}
        What the dataset may hold; a source with media of another modality is refused (naming its
        rows). Every row has text, so ``"text"`` restricts nothing (``["text"]`` alone: no media).
    output_dir : str
        Where exports, the Oasis work folder and the quality report are written.
    quality_threshold : float
        Minimum per-row quality (mean of the dimension scores of
        :func:`hf_mmbuilder.ops.quality_dimensions`, 0..1) kept by :meth:`validate_quality`.
    seed : int
        Seed of instruction generation and of the splits.
    num_proc : int, optional
        Worker processes for the ``.map`` passes.
    cache_dir : str, optional
        ``datasets`` cache for the loaders.

    Attributes
    ----------
    sources : dict
        Name -> the loaded source dataset (its own format's columns).
    dataset : datasets.Dataset
        The working dataset: instruction-shaped source rows (LLaVA, ShareGPT, Oasis) plus the
        generated instructions, in :data:`COMMON_FEATURES`; after :meth:`validate_quality`, the
        rows that passed.

    Example:
        >>> builder = MultiModalDatasetBuilder(modalities=["image"], output_dir="out")  # doctest: +SKIP
        >>> builder.add_data_source("data/llava.json").num_rows  # doctest: +SKIP
        100
    """

    def __init__(self, modalities: Sequence[str] = ("image",), output_dir: str = "mm_dataset", quality_threshold: float = 0.0, *,
                 seed: int = 0, num_proc: Optional[int] = None, cache_dir: Optional[str] = None, tokens: SpecialTokens = DEFAULT_TOKENS):
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modalities {sorted(unknown)}; known: {sorted(MODALITIES)}")
        if not 0.0 <= quality_threshold <= 1.0:
            raise ValueError(f"quality_threshold must be within [0, 1], got {quality_threshold}")
        self.modalities = tuple(modalities)
        self.output_dir = output_dir
        self.quality_threshold = quality_threshold
        self.seed = seed
        self.num_proc = num_proc
        self.cache_dir = cache_dir
        self.tokens = tokens
        self.sources: dict[str, Dataset] = {}
        self._material: list[Dataset] = []
        self._instructions: list[Dataset] = []
        self.dataset: Optional[Dataset] = None
        self.filter_result = None
        self.report: Optional[QualityReport] = None

    def add_data_source(self, path: Optional[str] = None, format: Optional[str] = None, *, images: Optional[str] = None,
                        texts: Optional[str] = None, metadata: Optional[str] = None, audios: Optional[str] = None,
                        videos: Optional[str] = None, name: Optional[str] = None, **options) -> Dataset:
        """Load a source: a file of any supported format (guessed when ``format`` is None), a folder
        of images with captions/metadata inside it (see :func:`image_folder_dataset`), or media
        folders joined with a captions file and a metadata file beside them (``images=``,
        ``audios=``, ``videos=``, ``texts=``, ``metadata=``; see :func:`media_folder_dataset`).

        ``options`` go to the format's loader (``media_root``, tokens, ``on_error`` ...) or to the
        folder reader (``require_captions``). Returns the source in the common columns (MMC4
        documents as one caption row per image, see :func:`mmc4_caption_rows`). Conversation
        sources (LLaVA, ShareGPT, Oasis, DJ rows with role markers) join the working dataset as
        they are; every source with media is material for :meth:`generate_instructions`.
        O(source size).

        Example:
            >>> builder.add_data_source("llava.json", media_root="/data/coco")  # doctest: +SKIP
            >>> builder.add_data_source("photos/")  # doctest: +SKIP
            >>> builder.add_data_source(images="data/images", texts="data/captions.json", metadata="data/metadata.csv")  # doctest: +SKIP
        """
        folders = {"images": images, "audios": audios, "videos": videos}
        if path is not None and any(value is not None for value in (*folders.values(), texts, metadata)):
            raise ValueError("add_data_source takes either one path or images=/audios=/videos= with texts=/metadata=, not both")
        if path is None:
            projected = loaded = media_folder_dataset(texts=texts, metadata=metadata, tokens=self.tokens, **folders, **options)
            first = next((folder for folder in folders.values() if folder is not None), None)
            source_name = name or f"mediafolder:{Path(first).resolve().name if first else ''}"
        elif os.path.isdir(path):
            source_name = name or f"imagefolder:{Path(path).resolve().name}"
            projected = image_folder_dataset(path, **options)
            loaded = projected
        else:
            format = format or sniff_format(path)
            source_name = name or f"{format}:{Path(path).name}"
            loaded = load(format, path, split="train", cache_dir=self.cache_dir, **options)
            projected = mmc4_caption_rows(loaded, source_name) if format == "mmc4" else project(loaded, source_name)
        if source_name in self.sources:
            raise ValueError(f"a source named {source_name!r} was already added; pass name=...")
        self._check_modalities(projected, source_name)
        self.sources[source_name] = loaded
        self._material.append(projected)
        if any(projected["roles"][:]):
            conversations = projected.filter(lambda roles: bool(roles), input_columns=["roles"])
            self._instructions.append(conversations)
            self.dataset = self._combined()
        return projected

    def _check_modalities(self, dataset: Dataset, source_name: str) -> None:
        for modality, column in MODALITIES.items():
            if column is None or modality in self.modalities:
                continue
            rows = [index for index, paths in enumerate(dataset[column][:]) if paths]
            if rows:
                raise ValueError(f"source {source_name!r}: {len(rows)} row(s) hold {column} (first rows {rows[:5]}) "
                                 f"but the builder's modalities are {list(self.modalities)}")

    def _combined(self) -> Optional[Dataset]:
        return concatenate_datasets(self._instructions) if self._instructions else None

    def generate_instructions(self, num_samples: int, instruction_types: Sequence[str] = INSTRUCTION_TYPES, *,
                              languages: Sequence[str] = ("en",), method: str = "template", backend=None,
                              judge_backend=None, **oasis_options) -> Dataset:
        """Generate ``num_samples`` instructions from the media rows of every source and add them.

        ``method="template"`` writes rule-based question-answer / caption / reasoning samples in
        ``languages`` (:func:`hf_mmbuilder.synthesis.generate_template_instructions`);
        ``method="oasis"`` runs :class:`hf_mmbuilder.synthesis.oasis.OasisPipeline` with ``backend``
        (and ``judge_backend``) over up to ``num_samples`` distinct images, resumable in
        ``output_dir/oasis``. Returns the new rows (common columns).

        Example:
            >>> builder.generate_instructions(1000, ["qa", "reasoning"], languages=["en", "fr"])  # doctest: +SKIP
            >>> builder.generate_instructions(500, method="oasis",
            ...     backend=OpenAIChatBackend("http://127.0.0.1:8000/v1", "qwen2-vl"))  # doctest: +SKIP
        """
        if not self._material:
            raise ValueError("add a data source first (add_data_source)")
        material = concatenate_datasets(self._material)
        if method == "template":
            generated = generate_template_instructions(material, num_samples, instruction_types, languages, seed=self.seed, num_proc=self.num_proc)
            generated = generated.map(lambda kinds, langs: {"source": [f"template:{k}:{l}" for k, l in zip(kinds, langs)]},
                                      input_columns=["instruction_type", "language"], batched=True)
            generated = project(generated, "template")
        elif method == "oasis":
            generated = self._oasis(material, num_samples, backend, judge_backend, **oasis_options)
        else:
            raise ValueError(f"unknown method {method!r}; use 'template' or 'oasis'")
        self._instructions.append(generated)
        self.dataset = self._combined()
        return generated

    def _oasis(self, material: Dataset, num_samples: int, backend, judge_backend, **options) -> Dataset:
        from .media import resolve_media_path
        from .synthesis.oasis import OasisPipeline

        if backend is None:
            raise ValueError("method='oasis' needs backend=... (a TransformersBackend or OpenAIChatBackend)")
        seen, images = set(), []
        for paths, root in zip(material["images"][:], material["media_root"][:]):
            for path in paths or ():
                resolved = os.path.abspath(resolve_media_path(path, root))
                if resolved not in seen:
                    seen.add(resolved)
                    images.append(resolved)
        if not images:
            raise ValueError("no images in the sources for Oasis synthesis")
        work_dir = os.path.join(self.output_dir, "oasis")
        result = OasisPipeline(backend, work_dir, judge_backend=judge_backend, **options).run(images[:num_samples])
        if not result.records:
            raise ValueError(f"Oasis kept no sample; see the stage logs in {work_dir} (rejections: {result.rejected[:3]})")
        return project(load("oasis", result.final_path, split="train", cache_dir=self.cache_dir), "oasis")

    def validate_quality(self, dataset: Optional[Dataset] = None, quality_filter: Optional[QualityFilter] = None, *,
                         redact_pii: bool = True, check_media: bool = True, quality_score: Optional[InstructionQualityScore] = None,
                         consistency_backend=None) -> QualityReport:
        """Redact PII (optional), compute stats, score, filter, and report; the passing rows become
        the working dataset, which :meth:`export` writes.

        ``dataset`` is the rows to validate (e.g. what :meth:`generate_instructions` returned);
        by default the working dataset. A :class:`QualityFilter` passed first is taken as
        ``quality_filter``. The default filter: alignment invariant, at least 10 characters, word
        repetition at most 0.5, unreadable media dropped when ``check_media``, and
        ``quality_threshold`` on the score: the guide's ``Q = consistency x relevance x fluency``
        when ``quality_score`` (an :class:`~hf_mmbuilder.ops.InstructionQualityScore` naming the
        models) is given, else the mean of the heuristic dimensions
        (:func:`hf_mmbuilder.ops.quality_dimensions`); the report's ``score`` says which.
        ``consistency_backend`` (a synthesis backend) writes each row's second response
        (:func:`hf_mmbuilder.synthesis.responses.second_responses`), which consistency is measured
        against. The report is written to ``output_dir/quality_report.json`` and ``.md``; dropped
        rows with their reasons to ``output_dir/rejected`` (a saved dataset).

        Example:
            >>> instructions = builder.generate_instructions(1000, ["qa", "caption"])  # doctest: +SKIP
            >>> report = builder.validate_quality(instructions)  # doctest: +SKIP
            >>> report = builder.validate_quality(QualityFilter(min_text_len=20, languages=["en"]))  # doctest: +SKIP
            >>> report.pass_rates["overall"]  # doctest: +SKIP
            0.97
        """
        if isinstance(dataset, QualityFilter):
            dataset, quality_filter = quality_filter, dataset
        dataset = self.dataset if dataset is None else dataset
        if dataset is None:
            raise ValueError("nothing to validate: add a conversation source or generate_instructions first")
        if consistency_backend is not None:
            if quality_score is None or quality_score.text_model is None:
                raise ValueError("consistency_backend= needs quality_score=InstructionQualityScore(text_model=...) to compare the responses with")
            quality_score = dataclasses.replace(quality_score, reference_column=quality_score.reference_column or "second_response")
        if quality_score is not None:
            score = f"{quality_score.describe()}, kept when Q >= {self.quality_threshold}"
        else:
            score = (f"heuristic: mean of the dimensions (length, alignment, language, repetition, media), kept when >= {self.quality_threshold}"
                     " (no quality models given: validate_quality(quality_score=InstructionQualityScore(...)) measures Q)")
        quality_filter = quality_filter or QualityFilter(min_text_len=10, max_word_rep_ratio=0.5, drop_unreadable_media=check_media,
                                                         min_quality=None if quality_score else self.quality_threshold or None,
                                                         min_q=self.quality_threshold if quality_score else None, tokens=self.tokens)
        if redact_pii:
            dataset = dataset.map(RedactPII(tokens=self.tokens), batched=True, num_proc=self.num_proc, desc="PII")
        dataset = dataset.map(ComputeStats(media=check_media, tokens=self.tokens), batched=True, num_proc=self.num_proc, desc="stats")
        added = []
        if consistency_backend is not None:
            dataset = second_responses(dataset, consistency_backend, column=quality_score.reference_column, tokens=self.tokens)
            added = [quality_score.reference_column, quality_score.reference_column + "_error"]
        if quality_score is not None:
            dataset = dataset.map(quality_score, batched=True, batch_size=max(quality_score.batch_size * 8, 256), desc="quality score Q")
        self.filter_result = apply_filters(dataset, quality_filter, num_proc=self.num_proc)
        self.report = quality_report(dataset, self.filter_result, quality_filter, tokens=self.tokens, score=score)
        os.makedirs(self.output_dir, exist_ok=True)
        self.report.to_json(os.path.join(self.output_dir, "quality_report.json"))
        with open(os.path.join(self.output_dir, "quality_report.md"), "w", encoding="utf-8") as handle:
            handle.write(self.report.to_markdown())
        if len(self.filter_result.dropped):
            self.filter_result.dropped.save_to_disk(os.path.join(self.output_dir, "rejected"))
        self.dataset = self.filter_result.kept.remove_columns(added)
        return self.report

    def export(self, format: str = "huggingface", split_ratio: Optional[Mapping[str, float]] = None, *,
               path: Optional[str] = None, on_unsupported: str = "raise", overwrite: bool = False, **options) -> datasets.DatasetDict:
        """Write the working dataset with seeded, group-aware splits.

        ``format="huggingface"`` publishes a Hub-layout folder (``output_dir/huggingface``, Parquet
        shards and a dataset card carrying the quality report) with
        :func:`hf_mmbuilder.publish`; ``options`` go to it (``repo_id``, ``embed_media`` ...). Any
        other format writes one file per split with :func:`hf_mmbuilder.export`
        (``output_dir/<format>/<split>.json``). Rows holding media the format cannot carry (audio
        in LLaVA) raise a ``ValueError`` naming them, or with ``on_unsupported="skip"`` are left
        out and written with the reason to ``<format>/rejects.jsonl``. Returns the rows written as
        a ``DatasetDict`` keyed by the names of ``split_ratio`` (``train`` alone without it), and
        logs the rows per split.

        The target folder (``path``, default ``output_dir/<format>``) follows
        :class:`hf_mmbuilder.output_folder.OutputFolder`: an earlier export's files are replaced, a
        folder holding other files is refused unless ``overwrite=True``, and files this export did
        not write are never deleted.

        Example:
            >>> dataset = builder.export(format="llava", split_ratio={"train": .8, "val": .1, "test": .1})  # doctest: +SKIP
            >>> {name: len(split) for name, split in dataset.items()}  # doctest: +SKIP
            {'train': 243, 'val': 30, 'test': 30}
        """
        from .publishing import split_dataset

        if self.dataset is None or len(self.dataset) == 0:
            raise ValueError("nothing to export: the working dataset is empty")
        dataset = self.dataset.remove_columns([c for c in ("__dj__stats__",) if c in self.dataset.column_names])
        target = path or os.path.join(self.output_dir, format)
        if format == "huggingface":
            from .publishing import publish

            card = options.pop("card", None) or {}
            if isinstance(card, dict):
                card = {**card, "sections": {**self._card_sections(dataset), **card.get("sections", {})}}
            result = publish(dataset, split_ratio=split_ratio, seed=self.seed, local_dir=target, card=card, overwrite=overwrite,
                             progress=False, **options)
            if result.plan is None:
                return self._written(datasets.DatasetDict({"train": dataset}), target)
            return self._written(datasets.DatasetDict({name: dataset.select(rows) for name, rows in result.plan.indices.items()}), target)
        from .formats.exporting import export as export_format

        if format not in available_formats():
            raise ValueError(f"unknown export format {format!r}; use 'huggingface' or one of {available_formats()}")
        folder = OutputFolder(target, "export", overwrite=overwrite, label="export folder")
        dataset, rejects = self._exportable(dataset, format, on_unsupported)
        splits = split_dataset(dataset, split_ratio, seed=self.seed)[0] if split_ratio else datasets.DatasetDict({"train": dataset})
        with folder.staging() as staging:
            if rejects:
                with open(staging.files / "rejects.jsonl", "w", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(reject, ensure_ascii=False) + "\n" for reject in rejects)
                logger.warning("export to %s: %d row(s) left out (unsupported media), see %s", format, len(rejects), folder.path / "rejects.jsonl")
            for name, split in splits.items():
                export_format(split, format, str(staging.files / f"{name}.json"), **options)
            folder.commit(staging)
        return self._written(splits, target)

    @staticmethod
    def _written(splits: datasets.DatasetDict, target: str) -> datasets.DatasetDict:
        logger.info("exported to %s: %s", target, ", ".join(f"{name} {len(split):,} rows" for name, split in splits.items()))
        return splits

    def _exportable(self, dataset: Dataset, format: str, on_unsupported: str) -> tuple[Dataset, list[dict]]:
        """The rows ``format`` can carry, and a reject (row, reason, record) for each row left out."""
        if on_unsupported not in ("raise", "skip"):
            raise ValueError(f"on_unsupported must be 'raise' or 'skip', got {on_unsupported!r}")
        unsupported = [column for column in ("images", "audios", "videos") if column not in EXPORT_MEDIA.get(format, ("images", "audios", "videos"))]
        bad = {}
        for column in unsupported:
            for row, paths in enumerate(dataset[column][:]):
                if paths:
                    bad.setdefault(row, f"{format} cannot hold {column} ({len(paths)} in this row)")
        if not bad:
            return dataset, []
        if on_unsupported == "raise":
            first = sorted(bad)[:5]
            raise ValueError(f"{len(bad)} row(s) hold media the {format} format cannot carry, e.g. rows {first}: {bad[first[0]]}; "
                             "pass on_unsupported='skip' to leave them out (recorded in rejects.jsonl) or export to 'huggingface'")
        rejects = [{"row": row, "reason": bad[row], "record": {key: value for key, value in dataset[row].items() if key != "__dj__stats__"}}
                   for row in sorted(bad)]
        keep = sorted(set(range(len(dataset))) - set(bad))
        return dataset.select(keep), rejects

    def _card_sections(self, dataset: Dataset) -> dict:
        """Dataset-card prose for what this builder did: synthesis, PII handling, quality report."""
        from collections import Counter

        sections = {}
        counts = Counter(source.split(":", 1)[0] for source in dataset["source"][:] if source.startswith(("template:", "oasis")))
        if counts:
            sections["synthesis"] = (
                f"{sum(counts.values()):,} rows were synthesised with hf_mmbuilder: "
                + ", ".join(f"{count:,} by {method}" for method, count in counts.items())
                + " (rule-based templates write question-answer, caption and reasoning samples from captions and "
                "metadata; Oasis prompts a vision-language model with the image alone, then classifies, scores and answers)."
            )
        if self.report is not None:
            redacted = {kind: count for kind, count in self.report.pii.items() if count}
            if self.report.pii:
                sections["pii"] = ("Text was scanned for e-mail addresses, phone numbers, national id numbers, IP addresses and "
                                   "Luhn-valid card numbers, replaced by typed placeholders such as [EMAIL]. Redacted: "
                                   + (", ".join(f"{kind} {count:,}" for kind, count in redacted.items()) or "none found") + ". Media were not inspected.")
            sections["processing"] = "### Quality validation\n\n" + self.report.to_markdown()
        return sections
