"""Load a local folder laid out like a Hub dataset repo with the ``datasets`` release of this venv.

Runs in the ``datasets4`` peer venv (requirements/venvs.py: ``datasets==4.0.0``), never in the
project's::

    .venv-datasets4/bin/python -P tests/peer_scripts/datasets_load.py FOLDER [--config NAME]

``FOLDER`` holds what a Hub dataset repo holds (README.md with YAML ``configs``/``dataset_info``,
``data/*.parquet`` ...). Runs ``datasets.load_dataset(FOLDER)`` offline with a fresh cache and prints
one JSON object on stdout: ``{"ok": true, "splits": {name: {"num_rows", "features", "first_row"}}}``
(features as ``Features.to_dict()``; bytes and images in the first row summarised), or
``{"ok": false, "error_type", "error", "where"}`` when loading fails. Exit status 0 either way: a
failure to load is a result.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Keep fd 1 for our JSON; progress bars and library prints go to stderr.
_JSON_OUT = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
sys.stdout = sys.stderr


def _summary(value):
    """JSON-safe form of a decoded value: bytes and images become short descriptions."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"<bytes>": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16]}
    if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "getdata"):  # a PIL image
        return {"<image>": {"mode": value.mode, "size": list(value.size), "format": getattr(value, "format", None)}}
    if isinstance(value, dict):
        return {str(key): _summary(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_summary(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _summary(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--config", default=None, help="config name (the README's `configs`)")
    args = parser.parse_args(argv)

    import datasets

    report: dict = {"datasets_version": datasets.__version__, "folder": str(args.folder.resolve()),
                    "config": args.config}
    with tempfile.TemporaryDirectory(prefix="ds-cache-") as cache:
        try:
            loaded = datasets.load_dataset(str(args.folder.resolve()), args.config, cache_dir=cache)
            splits = {}
            for name, split in loaded.items():
                splits[name] = {
                    "num_rows": split.num_rows,
                    "features": split.features.to_dict(),
                    "first_row": _summary(split[0]) if split.num_rows else None,
                }
            report.update(ok=True, splits=splits)
        except Exception as error:
            frames = traceback.extract_tb(error.__traceback__)
            report.update(ok=False, error_type=type(error).__name__, error=str(error),
                          where=[f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in frames[-4:]])
    return report


if __name__ == "__main__":
    result = main()
    _JSON_OUT.write(json.dumps(result, ensure_ascii=False) + "\n")
    _JSON_OUT.close()
