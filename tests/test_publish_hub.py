"""Publishing to the Hub, end to end against the local Hub-protocol server (tests/hub_server.py).

``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT`` when they are imported, and other test
modules import them first in this pytest process, so the server runs here (a thread on 127.0.0.1)
and each client scenario runs in a fresh subprocess whose environment sets ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1`` and a private ``HF_HOME``; the scenario sets
``datasets.config.USE_PARQUET_EXPORT = False``. Scenarios print one JSON line that the test checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub_server import HubServer

pytestmark = pytest.mark.integration

TOKEN = "hf_tEsTsEcReTtOkEn1234567890"
TESTS = Path(__file__).resolve().parent
SHARED = TESTS.parents[1] / "shared" / "data"

PRELUDE = """
import json, logging, os, sys
import datasets
datasets.config.USE_PARQUET_EXPORT = False
from huggingface_hub.utils import _http
# Real retries, short waits: a dropped upload is retried 6 times in well under a second.
_http.http_backoff.__kwdefaults__.update(base_wait_time=0.01, max_wait_time=0.02)
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
sys.path.insert(0, {tests!r})
from pathlib import Path
import urllib.request
from test_publish import build_llava_dataset, embedded_rows, RATIOS
from hf_mmbuilder.publishing import publish, PublishError
TOKEN = {token!r}
WORK = Path({work!r})

def set_faults(**faults):
    request = urllib.request.Request(os.environ["HF_ENDPOINT"] + "/_test/faults", data=json.dumps(faults).encode(),
                                     headers={{"Content-Type": "application/json"}}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()
"""


@pytest.fixture()
def hub(tmp_path):
    with HubServer(tmp_path / "hub", token=TOKEN, idle_timeout=300) as server:
        yield server


def run_scenario(hub: HubServer, tmp_path: Path, body: str, *, needs_shared_data: bool = True) -> dict:
    if needs_shared_data and not (SHARED / "formats" / "llava").exists():
        pytest.skip(f"shared sample data absent: {SHARED / 'formats' / 'llava'}")
    script = PRELUDE.format(tests=str(TESTS), token=TOKEN, work=str(tmp_path)) + textwrap.dedent(body)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    completed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert TOKEN not in completed.stdout + completed.stderr, "the token leaked into the output"
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_push_then_load_from_hub_and_folder_agree(hub, tmp_path):
    outcome = run_scenario(hub, tmp_path, """
        from datasets import load_dataset
        from huggingface_hub import DatasetCard
        dataset, images = build_llava_dataset(WORK / "media")
        first = publish(dataset, "my-org/llava-sample", split_ratio=RATIOS, seed=3, local_dir=str(WORK / "out"),
                        card={"license": "cc-by-4.0"}, token=TOKEN, progress=False)
        again = publish(dataset, "my-org/llava-sample", split_ratio=RATIOS, seed=3, card={"license": "cc-by-4.0"},
                        token=TOKEN, progress=False)
        for path in (WORK / "media").rglob("*.jpg"):
            path.unlink()
        from_hub = load_dataset("my-org/llava-sample")
        from_folder = load_dataset(str(WORK / "out"))
        card = DatasetCard.load("my-org/llava-sample", repo_type="dataset")
        card.validate(repo_type="dataset")
        first_image = next(row for row in from_hub["train"] if row["images"])["images"][0]
        local_files = sorted(str(path.relative_to(WORK / "out")) for path in (WORK / "out").rglob("*")
                             if path.is_file() and path.name != ".hf_mmbuilder-manifest.json")
        resharded = publish(dataset, "my-org/llava-sample", split_ratio=RATIOS, seed=3, card={"license": "cc-by-4.0"},
                            token=TOKEN, progress=False, embed_media=False, max_shard_size="20KB")
        print(json.dumps({
            "hub_rows": embedded_rows(from_hub) == embedded_rows(from_folder),
            "features": from_hub["train"].features == from_folder["train"].features,
            "splits": {name: len(part) for name, part in from_hub.items()},
            "plan": first.plan.counts(),
            "image_feature": str(from_hub["train"].features["images"]),
            "decoded": list(first_image.size),
            "card_license": card.data.license,
            "card_configs": card.data.configs,
            "first_commit": first.commit, "second_commit": again.commit, "second_changed": again.changed,
            "repo_url": first.repo_url, "local_files": local_files,
            "resharded_files": resharded.files, "resharded_commit": resharded.commit,
        }))
    """)
    assert outcome["hub_rows"] and outcome["features"]
    assert outcome["splits"] == outcome["plan"] and sum(outcome["splits"].values()) == 103
    assert outcome["image_feature"].startswith("List(Image(")
    assert min(outcome["decoded"]) >= 16
    assert outcome["card_license"] == "cc-by-4.0"
    assert outcome["card_configs"][0]["config_name"] == "default"
    assert not outcome["second_changed"] and outcome["second_commit"] == outcome["first_commit"]
    assert hub.commits("dataset", "my-org/llava-sample")[1] == outcome["first_commit"]
    assert len(hub.commits("dataset", "my-org/llava-sample")) == 3
    first_files = hub.files("dataset", "my-org/llava-sample", revision=outcome["first_commit"])
    assert sorted(first_files) == sorted([".gitattributes", *outcome["local_files"]])
    assert TOKEN.encode() not in first_files["README.md"]
    # Re-sharding deletes the shards the new layout no longer has, in the same commit.
    latest = hub.files("dataset", "my-org/llava-sample")
    assert hub.commits("dataset", "my-org/llava-sample")[0] == outcome["resharded_commit"]
    assert sorted(latest) == sorted([".gitattributes", *outcome["resharded_files"]])
    assert len([name for name in latest if name.startswith("data/train-")]) > 1


def test_faults_give_clear_errors_no_partial_commit_and_retry_succeeds(hub, tmp_path):
    hub.store.create("model", "my-org/taken", private=False)
    outcome = run_scenario(hub, tmp_path, """
        from huggingface_hub import HfApi
        dataset, _ = build_llava_dataset(WORK / "media")
        dataset = dataset.select(range(30))
        errors = {}

        def attempt(name, **options):
            try:
                publish(dataset, options.pop("repo", "my-org/faulty"), split_ratio={"train": 0.8, "test": 0.2},
                        progress=False, **options)
            except (PublishError, ValueError) as error:
                errors[name] = f"{type(error).__name__}: {error}"

        attempt("wrong_token", token="hf_wrong_token_value")
        set_faults(drop_lfs_upload=1000)
        attempt("dropped_upload", token=TOKEN)
        set_faults(drop_lfs_upload=0, commit_500=1)
        attempt("commit_500", token=TOKEN)
        set_faults(commit_500=0)
        attempt("other_type", repo="my-org/taken", token=TOKEN)
        attempt("private_on_public", token=TOKEN, private=True)
        commits_before_retry = len(HfApi(token=TOKEN).list_repo_commits("my-org/faulty", repo_type="dataset"))
        retry = publish(dataset, "my-org/faulty", split_ratio={"train": 0.8, "test": 0.2}, token=TOKEN, progress=False,
                        revision="release", commit_message="retry")
        print(json.dumps({"errors": errors, "commits_before_retry": commits_before_retry, "retry": retry.commit}))
    """)
    errors = outcome["errors"]
    assert set(errors) == {"wrong_token", "dropped_upload", "commit_500", "other_type", "private_on_public"}
    assert "already exists and is public" in errors["private_on_public"]
    assert "401" in errors["wrong_token"] and "token" in errors["wrong_token"]
    assert "hf_wrong_token_value" not in errors["wrong_token"]
    assert "while uploading and committing" in errors["dropped_upload"] and "nothing was committed" in errors["dropped_upload"]
    assert "500" in errors["commit_500"] and "nothing was committed" in errors["commit_500"]
    assert errors["other_type"].startswith("ValueError: repo_id 'my-org/taken' is already a model repo")
    # Only the repo's initial commit existed before the retry: no fault left a partial commit.
    assert outcome["commits_before_retry"] == 1
    assert hub.commits("dataset", "my-org/faulty", branch="release")[0] == outcome["retry"]
    assert len(hub.commits("dataset", "my-org/faulty")) == 1
    assert "README.md" in hub.files("dataset", "my-org/faulty", revision="release")


def test_publish_keeps_the_repo_files_it_did_not_write_unless_pruning(hub, tmp_path):
    outcome = run_scenario(hub, tmp_path, """
        from huggingface_hub import CommitOperationAdd, HfApi
        from test_publish_local_folder import OPTIONS, text_dataset
        api = HfApi(token=TOKEN)
        api.create_repo("my-org/mixed", repo_type="dataset")
        seeded = {
            "scripts/train.py": b"print('train')\\n",
            "images/banner.png": b"banner bytes",
            "other/train-00000-of-00001.parquet": b"the other config's shard",
            "data/other-config/train-00000-of-00001.parquet": b"a shard under data/, of another config",
            "data/validation-00000-of-00001.parquet": b"a split this publish does not write",
            "data/train-00000-of-00001.parquet": b"a stale shard of the default config's train split",
            "assets/turns.png": b"a stale plot",
            "README.md": b"---\\nlicense: mit\\n---\\n# A hand-written card\\n",
        }
        seed = api.create_commit("my-org/mixed", [CommitOperationAdd(path, content) for path, content in seeded.items()],
                                 commit_message="seed", repo_type="dataset")
        kept = publish(text_dataset("hub", 20), "my-org/mixed", token=TOKEN, **OPTIONS)
        pruned = publish(text_dataset("hub", 20), "my-org/mixed", token=TOKEN, prune=True, **OPTIONS)
        print(json.dumps({"seed": seed.oid, "kept": kept.commit, "kept_files": kept.files,
                          "pruned": pruned.commit, "pruned_files": pruned.files}))
    """, needs_shared_data=False)
    seeded = hub.files("dataset", "my-org/mixed", revision=outcome["seed"])
    kept = hub.files("dataset", "my-org/mixed", revision=outcome["kept"])
    others = ["scripts/train.py", "images/banner.png", "other/train-00000-of-00001.parquet",
              "data/other-config/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    assert sorted(kept) == sorted([".gitattributes", *others, *outcome["kept_files"]])
    assert {path: kept[path] for path in others} == {path: seeded[path] for path in others}
    assert kept["README.md"].startswith(b"---\n")
    assert hub.commits("dataset", "my-org/mixed")[:3] == [outcome["pruned"], outcome["kept"], outcome["seed"]]
    assert sorted(hub.files("dataset", "my-org/mixed", revision=outcome["pruned"])) == sorted([".gitattributes", *outcome["pruned_files"]])
    assert outcome["pruned_files"] == outcome["kept_files"]
