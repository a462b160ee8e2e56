"""Run Data-Juicer's ``dj-process`` on a DJ JSON-lines file and report what it wrote.

Runs in the ``dj`` peer venv (requirements/venvs.py), never in the project's::

    .venv-dj/bin/python -P tests/peer_scripts/dj_process.py IN.jsonl OUT.jsonl OPS [--set KEY=JSON ...]

``OPS`` is a JSON list of ops (``[{"clean_email_mapper": {}}, {"text_length_filter": {"min_len": 10}}]``),
inline or as a file path. The recipe written beside ``OUT.jsonl`` (``recipe.yaml``) has ``np: 1``,
``keep_stats_in_res_ds`` and ``keep_hashes_in_res_ds`` on, ``text_keys: text``, ``image_key: images``;
``--set`` overrides or adds any recipe key. ``dj-process --config recipe.yaml`` runs offline with the
folder of ``OUT.jsonl`` as its working folder (it also writes ``OUT_stats.jsonl`` and a timestamped
work folder there).

Prints one JSON object: the recipe, the rows written, the union of their keys, and the distributions
installed or removed while it ran (Data-Juicer's lazy loader pip-installs missing packages at run
time; a complete venv installs nothing). Exits 1, with its log's tail on stderr, when dj-process fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml


def _installed() -> set[str]:
    importlib.invalidate_caches()
    return {f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path)
    parser.add_argument("export", type=Path)
    parser.add_argument("ops")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)

    ops = json.loads(Path(args.ops).read_text(encoding="utf-8") if os.path.isfile(args.ops) else args.ops)
    export = args.export.resolve()
    export.parent.mkdir(parents=True, exist_ok=True)
    recipe = {
        "project_name": "hf-mmbuilder-peer-check",
        "dataset_path": str(args.input.resolve()),
        "export_path": str(export),
        "np": 1,
        "open_tracer": False,
        "keep_stats_in_res_ds": True,
        "keep_hashes_in_res_ds": True,
        "text_keys": "text",
        "image_key": "images",
        "process": ops,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        recipe[key] = json.loads(value)
    recipe_path = export.parent / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), encoding="utf-8")

    before = _installed()
    env = dict(os.environ, PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    completed = subprocess.run([str(Path(sys.executable).parent / "dj-process"), "--config", str(recipe_path)],
                               cwd=export.parent, env=env, capture_output=True, text=True, timeout=args.timeout)
    after = _installed()
    log = (completed.stdout + completed.stderr).splitlines()
    if completed.returncode != 0:
        sys.stderr.write("\n".join(log[-80:]) + "\n")
        return 1
    rows = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys = sorted({key for row in rows for key in row})
    print(json.dumps({
        "recipe": recipe,
        "rows": rows,
        "keys": keys,
        "installed_during_run": sorted(after - before),
        "removed_during_run": sorted(before - after),
        "files": sorted(path.name for path in export.parent.iterdir()),
        "log_tail": [line for line in log if "| WARNING" in line or "| ERROR" in line][-20:],
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
