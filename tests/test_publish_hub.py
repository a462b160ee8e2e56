"""Publishing to the Hub, end to end against the local Hub-protocol server (tests/hub_server.py).

``huggingface_hub`` and ``datasets`` read ``HF_ENDPOINT`` when they are imported, and other test
modules import them first in this pytest process, so the server runs here (a thread on 127.0.0.1)
and each client scenario runs in a fresh subprocess whose environment sets ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1`` (unless the scenario runs with Xet, ``hf_xet`` being installed) and a private
``HF_HOME``; the scenario sets ``datasets.config.USE_PARQUET_EXPORT = False``. Scenarios print one
JSON line that the test checks; ``WARNINGS`` collects what hf_mmbuilder logged at warning level.
Faults come from the server's switches (tests/hub_server.py), set with ``set_faults``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

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
WARNINGS = []


class Collect(logging.Handler):
    def emit(self, record):
        WARNINGS.append(record.getMessage())


logging.getLogger("hf_mmbuilder").addHandler(Collect(logging.WARNING))
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


def run_scenario(hub: HubServer, tmp_path: Path, body: str, *, needs_shared_data: bool = True, xet: bool = False) -> dict:
    if needs_shared_data and not (SHARED / "formats" / "llava").exists():
        pytest.skip(f"shared sample data absent: {SHARED / 'formats' / 'llava'}")
    script = PRELUDE.format(tests=str(TESTS), token=TOKEN, work=str(tmp_path)) + textwrap.dedent(body)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **({} if xet else {"HF_HUB_DISABLE_XET": "1"}))
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
        from hf_mmbuilder.publishing import load_published
        decoded = load_published("my-org/llava-sample", split="train")
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
            "extra_features": [str(from_hub["train"].features["extra"]), str(decoded.features["extra"])],
            "decoded_rows": decoded.num_rows,
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
    assert outcome["extra_features"] == ["Value('string')", "Json(decode=True)"]
    assert outcome["decoded_rows"] == outcome["splits"]["train"]
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


LOAD_WITHOUT_HF_MMBUILDER = """
import json, sys
import datasets
datasets.config.USE_PARQUET_EXPORT = False
loaded = datasets.load_dataset(sys.argv[1])
assert "hf_mmbuilder" not in sys.modules
print(json.dumps({split: sorted(part["text"]) for split, part in loaded.items()}))
"""


def load_without_hf_mmbuilder(hub: HubServer, tmp_path: Path, repo_id: str, *, xet: bool, token: str | None = TOKEN) -> dict:
    """``load_dataset(repo_id)`` in a fresh process that never imports hf_mmbuilder."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / f"hf_home_load_{xet}"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1", no_proxy="127.0.0.1", **({"HF_TOKEN": token} if token else {}),
               **({} if xet else {"HF_HUB_DISABLE_XET": "1"}))
    completed = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HF_MMBUILDER, repo_id], env=env, capture_output=True,
                               text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def commit_posts(hub: HubServer, repo_id: str) -> int:
    return hub.requests.count(f"POST /api/datasets/{repo_id}/commit/main")


def test_lost_commit_answer_reads_the_head_and_reports_the_applied_commit(hub, tmp_path):
    """Issue 17 point 1: the commit is applied, the connection drops before the answer."""
    outcome = run_scenario(hub, tmp_path, """
        from test_publish_local_folder import OPTIONS, text_dataset
        set_faults(drop_after_commit=1)
        first = publish(text_dataset("hub", 20), "my-org/dropped", token=TOKEN, **OPTIONS)
        again = publish(text_dataset("hub", 20), "my-org/dropped", token=TOKEN, **OPTIONS)
        print(json.dumps({"first": first.commit, "changed": first.changed, "again": again.commit,
                          "again_changed": again.changed, "files": first.files, "warnings": WARNINGS}))
    """, needs_shared_data=False)
    commits = hub.commits("dataset", "my-org/dropped")
    assert len(commits) == 2 and commits[0] == outcome["first"] == outcome["again"]
    assert outcome["changed"] is True and outcome["again_changed"] is False
    assert sorted(hub.files("dataset", "my-org/dropped")) == sorted([".gitattributes", *outcome["files"]])
    assert outcome["warnings"] == [
        "my-org/dropped: the answer to the commit was lost (RemoteProtocolError: Server disconnected without sending a "
        f"response.), but the commit was applied (branch 'main' is now at {commits[0][:12]})"]


def test_commit_500_not_applied_says_nothing_was_committed_after_reading_the_head(hub, tmp_path):
    """Issue 17 point 1, the other way: the head did not move, so nothing was committed."""
    outcome = run_scenario(hub, tmp_path, """
        from test_publish_local_folder import OPTIONS, text_dataset
        set_faults(commit_500=1)
        try:
            publish(text_dataset("hub", 20), "my-org/refused", token=TOKEN, **OPTIONS)
        except PublishError as error:
            print(json.dumps({"error": str(error)}))
    """, needs_shared_data=False)
    head = hub.commits("dataset", "my-org/refused")
    assert len(head) == 1
    assert outcome["error"] == (
        "publishing 'my-org/refused' failed while uploading and committing: 500: Server error '500 Internal Server Error' "
        f"for url '{hub.url}/api/datasets/my-org/refused/commit/main'; nothing was committed "
        f"(branch 'main' is still at {head[0][:12]}), retry")


def test_lfs_batch_error_is_a_publish_error_naming_the_file(hub, tmp_path):
    """Issue 17 point 2."""
    outcome = run_scenario(hub, tmp_path, """
        import hashlib
        from test_publish_local_folder import OPTIONS, text_dataset
        local = publish(text_dataset("hub", 20), local_dir=str(WORK / "out"), **OPTIONS)
        shard = next(path for path in local.files if path.startswith("data/train-"))
        oid = hashlib.sha256((WORK / "out" / shard).read_bytes()).hexdigest()
        set_faults(lfs_object_errors={oid: "Your storage quota is exhausted"})
        try:
            publish(text_dataset("hub", 20), "my-org/quota", token=TOKEN, **OPTIONS)
        except PublishError as error:
            print(json.dumps({"error": str(error), "shard": shard}))
    """, needs_shared_data=False)
    assert outcome["error"] == (
        f"publishing 'my-org/quota' failed while uploading and committing: the Hub refused to store {outcome['shard']}: "
        "Your storage quota is exhausted; nothing was committed, retry when fixed")
    assert len(hub.commits("dataset", "my-org/quota")) == 1


def test_commit_429_is_retried_after_retry_after_and_bounded(hub, tmp_path):
    """Issue 17 point 3."""
    outcome = run_scenario(hub, tmp_path, """
        from test_publish_local_folder import OPTIONS, text_dataset
        set_faults(commit_429=2, retry_after=1)
        retried = publish(text_dataset("hub", 20), "my-org/limited", token=TOKEN, **OPTIONS)
        errors = {}
        for name, count, wait in (("exhausted", 6, 0), ("too_long", 1, 3600)):
            set_faults(commit_429=count, retry_after=wait)
            try:
                publish(text_dataset(name, 20), "my-org/limited", token=TOKEN, **OPTIONS)
            except PublishError as error:
                errors[name] = str(error)
        print(json.dumps({"commit": retried.commit, "errors": errors, "warnings": WARNINGS}))
    """, needs_shared_data=False)
    commits = hub.commits("dataset", "my-org/limited")
    assert commits == [outcome["commit"], commits[1]]
    assert commit_posts(hub, "my-org/limited") == 3 + 6 + 1
    assert outcome["warnings"][:2] == [
        "my-org/limited: the Hub rate-limited the commit (429); retrying in 1 s (1 of 5)",
        "my-org/limited: the Hub rate-limited the commit (429); retrying in 1 s (2 of 5)"]
    assert outcome["errors"] == {
        "exhausted": "publishing 'my-org/limited' failed while uploading and committing: the Hub rate-limited the "
                     "commit (429) 6 times in a row; nothing was committed, retry later",
        "too_long": "publishing 'my-org/limited' failed while uploading and committing: the Hub rate-limits commits "
                    "(429) and asks to wait 3600 s, more than publish waits (60 s); nothing was committed, retry later",
    }


def test_small_split_is_sharded_by_its_own_rows_and_card_sizes_mean_what_datasets_means(hub, tmp_path):
    """Issue 17 point 4 and the card sizes: num_bytes/dataset_size are Arrow bytes, download_size Parquet bytes."""
    outcome = run_scenario(hub, tmp_path, """
        from datasets import DatasetDict
        from test_publish_local_folder import text_dataset
        from hf_mmbuilder.publishing.shards import arrow_nbytes
        rows = text_dataset("hub", 100)
        # Every tenth row for validation: a selection through an indices mapping, as publish's own splits are.
        splits = DatasetDict({"train": rows.select([row for row in range(100) if row % 10]),
                              "validation": rows.select(range(0, 100, 10))})
        result = publish(splits, "my-org/sharded", token=TOKEN, progress=False, embed_media=False,
                         max_shard_size=rows.data.nbytes // 5)
        print(json.dumps({"files": result.files, "arrow": {name: arrow_nbytes(part) for name, part in splits.items()},
                          "table": rows.data.nbytes}))
    """, needs_shared_data=False)
    files = hub.files("dataset", "my-org/sharded")
    shards = {split: sorted(path for path in files if path.startswith(f"data/{split}-")) for split in ("train", "validation")}
    assert [len(paths) for paths in shards.values()] == [5, 1]
    assert outcome["arrow"] == {"train": outcome["table"] * 90 // 100, "validation": outcome["table"] * 10 // 100}
    card = yaml.safe_load(files["README.md"].decode().split("---\n")[1])
    info = card["dataset_info"]
    assert {split["name"]: (split["num_examples"], split["num_bytes"]) for split in info["splits"]} == {
        "train": (90, outcome["arrow"]["train"]), "validation": (10, outcome["arrow"]["validation"])}
    assert info["dataset_size"] == outcome["arrow"]["train"] + outcome["arrow"]["validation"]
    assert info["download_size"] == sum(len(files[path]) for paths in shards.values() for path in paths)


def test_without_xet_on_the_endpoint_publish_falls_back_to_lfs_and_loads_back(hub, tmp_path):
    """Issue 17 point 5, and the acceptance's load_dataset with and without HF_HUB_DISABLE_XET."""
    outcome = run_scenario(hub, tmp_path, """
        from huggingface_hub import constants
        from test_publish_local_folder import OPTIONS, text_dataset
        result = publish(text_dataset("xet", 20), "my-org/no-xet", token=TOKEN, **OPTIONS)
        print(json.dumps({"commit": result.commit, "warnings": WARNINGS, "xet_disabled_after": constants.HF_HUB_DISABLE_XET}))
    """, needs_shared_data=False, xet=True)
    assert outcome["warnings"] == [
        f"{hub.url} offers no Xet storage (404 on xet-write-token): uploading my-org/no-xet through the LFS protocol"]
    assert outcome["xet_disabled_after"] is False
    assert hub.commits("dataset", "my-org/no-xet")[0] == outcome["commit"]
    assert "GET /api/datasets/my-org/no-xet/xet-write-token/main" in hub.requests
    expected = {split: sorted(texts) for split, texts in load_without_hf_mmbuilder(hub, tmp_path, "my-org/no-xet", xet=False).items()}
    assert sum(len(texts) for texts in expected.values()) == 20
    assert load_without_hf_mmbuilder(hub, tmp_path, "my-org/no-xet", xet=True) == expected


def test_private_publish_is_invisible_to_anonymous_clients_and_visibility_defaults_to_the_namespace(hub, tmp_path):
    """Acceptance: publish(private=True) cannot be listed, resolved or downloaded anonymously; with no
    ``private``, publish leaves visibility to the namespace default, as push_to_hub."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    hub.private_by_default.add("test-user")
    outcome = run_scenario(hub, tmp_path, """
        from test_publish_local_folder import OPTIONS, text_dataset
        secret = publish(text_dataset("secret", 20), "my-org/secret", token=TOKEN, private=True, **OPTIONS)
        publish(text_dataset("open", 20), "my-org/open", token=TOKEN, **OPTIONS)
        publish(text_dataset("quiet", 20), "test-user/quiet", token=TOKEN, **OPTIONS)
        print(json.dumps({"files": secret.files}))
    """, needs_shared_data=False)
    visibility = {repo: hub.store.load("dataset", repo)["private"] for repo in ("my-org/secret", "my-org/open", "test-user/quiet")}
    assert visibility == {"my-org/secret": True, "my-org/open": False, "test-user/quiet": True}
    anonymous = HfApi(endpoint=hub.url, token=False)
    shard = next(path for path in outcome["files"] if path.endswith(".parquet"))
    for attempt in (lambda: anonymous.list_repo_files("my-org/secret", repo_type="dataset"),
                    lambda: anonymous.repo_info("my-org/secret", repo_type="dataset"),
                    lambda: hf_hub_download("my-org/secret", shard, repo_type="dataset", endpoint=hub.url, token=False,
                                            cache_dir=str(tmp_path / "anonymous"))):
        with pytest.raises(RepositoryNotFoundError) as caught:
            attempt()
        assert caught.value.response.status_code == 404
    assert sum(len(texts) for texts in load_without_hf_mmbuilder(hub, tmp_path, "my-org/secret", xet=False).values()) == 20
