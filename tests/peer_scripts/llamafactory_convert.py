"""Run LLaMA-Factory's own dataset loading and multimodal checks on a local dataset file.

Runs in the ``llamafactory`` peer venv (requirements/venvs.py), never in the project's::

    .venv-llamafactory/bin/python -P tests/peer_scripts/llamafactory_convert.py DATA.json INFO.json
        [--name NAME] [--plugin llava] [--image-token "<image>"] [--media-dir DIR] [--no-expand]

``INFO.json`` is either a ``dataset_info.json`` (name -> entry; ``--name`` picks one, default the only
one) or a bare entry such as ``{"formatting": "sharegpt", "columns": {...}, "tags": {...}}``. The
entry's ``file_name`` is replaced by ``DATA``'s name and the dataset folder is ``DATA``'s folder, so
relative media paths resolve the way LLaMA-Factory resolves them (``media_dir`` defaults to it).

The path is LLaMA-Factory's: ``parser.get_dataset_list`` (DatasetAttr from the entry) ->
``loader._load_single_dataset`` (``datasets.load_dataset`` + ``converter.align_dataset``, i.e.
``SharegptDatasetConverter`` for sharegpt). A row is accepted when it passes the check its SFT
processor applies next (odd prompt length, one response); the converter empties rows it logs as
"Invalid role tag"/"Invalid message count". Each accepted row then goes through
``get_mm_plugin(plugin).process_messages`` (``_validate_input`` + ``_validate_messages``: the
``<image>`` count must equal len(images); with token expansion the images are opened and run through
a tiny CLIP image processor built here, nothing downloaded).

Prints one JSON object on stdout; everything the libraries print goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import logging
import os
import sys
import tempfile
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "INFO")

# LLaMA-Factory's logger writes to stdout: keep fd 1 for our JSON and send everything else to stderr.
_JSON_OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr

TORCHAUDIO = "real"
try:  # mm_plugin imports torchaudio at module level, for audio only
    import torchaudio  # noqa: F401
except ImportError as error:
    # PyPI's torchaudio wheels are CUDA builds (they need libc10_cuda.so) and the CPU ones live on
    # download.pytorch.org, out of reach here; the venv has none. Audio is never exercised.
    TORCHAUDIO = f"stub ({type(error).__name__}: {error})"
    _stub = types.ModuleType("torchaudio")
    _stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)

    def _missing(name: str):
        raise AttributeError(f"torchaudio.{name}: torchaudio is not installed in this venv (audio is not supported here)")

    _stub.__getattr__ = _missing
    sys.modules["torchaudio"] = _stub


def _tiny_processor(image_token: str):
    """A LLaVA processor built locally: a word-level tokenizer and a 28x28 CLIP image processor."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPImageProcessor, LlavaProcessor, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1, image_token: 2, "<s>": 3, "</s>": 4}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>",
                                        extra_special_tokens={"image_token": image_token})
    image_processor = CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          image_token=image_token)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "logger": record.name, "message": record.getMessage()})


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text)} chars]"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("info", type=Path)
    parser.add_argument("--name")
    parser.add_argument("--plugin", default="llava")
    parser.add_argument("--image-token", default="<image>")
    parser.add_argument("--media-dir")
    parser.add_argument("--no-expand", action="store_true", help="count tags only, do not open the images")
    args = parser.parse_args(argv)

    import datasets
    import transformers

    import llamafactory
    from llamafactory.data.loader import _load_single_dataset
    from llamafactory.data.mm_plugin import get_mm_plugin
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.extras import logging as lf_logging
    from llamafactory.hparams import DataArguments

    collect = _Collect()
    lf_logging.add_handler(collect)

    data = args.data.resolve()
    info = json.loads(args.info.read_text(encoding="utf-8"))
    if not ({"formatting", "columns", "tags", "file_name"} & set(info)):  # a dataset_info.json
        name = args.name or (next(iter(info)) if len(info) == 1 else None)
        if name is None:
            raise SystemExit(f"{args.info} holds several datasets ({sorted(info)}); pass --name")
        entry = dict(info[name])
    else:
        name, entry = args.name or data.stem, dict(info)
    entry["file_name"] = data.name

    dataset_attr = get_dataset_list([name], {name: entry})[0]
    data_args = DataArguments(dataset=[name], dataset_dir=str(data.parent), media_dir=args.media_dir,
                              overwrite_cache=True, preprocessing_num_workers=None)
    with tempfile.TemporaryDirectory(prefix="lf-cache-") as cache:
        model_args = types.SimpleNamespace(cache_dir=cache, hf_hub_token=None, ms_hub_token=None, om_hub_token=None)
        training_args = types.SimpleNamespace(local_process_index=0, dataloader_num_workers=0)
        aligned = _load_single_dataset(dataset_attr, model_args, data_args, training_args)
        aligned_rows = aligned.to_list()

    plugin = get_mm_plugin(args.plugin, image_token=args.image_token)
    plugin.expand_mm_tokens = not args.no_expand
    processor = _tiny_processor(args.image_token)
    rows = []
    for index, row in enumerate(aligned_rows):
        prompt, response = row["_prompt"] or [], row["_response"] or []
        accepted = len(prompt) % 2 == 1 and len(response) == 1  # the SFT processor's own test
        result = {"index": index, "accepted": accepted, "roles": [m["role"] for m in prompt + response],
                  "images": row.get("_images") or [], "plugin": None}
        if accepted:
            try:
                messages = plugin.process_messages(prompt + response, row.get("_images") or [],
                                                   row.get("_videos") or [], row.get("_audios") or [], processor)
                result["plugin"] = {"ok": True, "error": None,
                                    "image_tokens": sum(m["content"].count(args.image_token) for m in messages)}
            except Exception as error:  # the plugin's ValueError, or an image that does not open
                result["plugin"] = {"ok": False, "error": _short(f"{type(error).__name__}: {error}"),
                                    "image_tokens": None}
        rows.append(result)

    lf_logging.remove_handler(collect)
    accepted = sum(row["accepted"] for row in rows)
    return {
        "versions": {"llamafactory": llamafactory.__version__, "datasets": datasets.__version__,
                     "transformers": transformers.__version__},
        "torchaudio": TORCHAUDIO,
        "dataset_attr": {key: value for key, value in vars(dataset_attr).items() if value is not None},
        "plugin": f"{args.plugin} ({type(plugin).__name__}, expand_mm_tokens={plugin.expand_mm_tokens})",
        "rows_in": len(rows),
        "rows_accepted": accepted,
        "rows_skipped": len(rows) - accepted,
        "plugin_ok": sum(1 for row in rows if row["plugin"] and row["plugin"]["ok"]),
        "log": [dict(record, message=_short(record["message"])) for record in collect.records],
        "rows": rows,
    }


if __name__ == "__main__":
    report = main()
    _JSON_OUT.write(json.dumps(report, ensure_ascii=False) + "\n")
    _JSON_OUT.close()
