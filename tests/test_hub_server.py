"""The local Hub-protocol server (tests/hub_server.py) answers like the Hub where clients depend on it.

Each test drives the server with the real ``huggingface_hub`` client (``HfApi`` and its LFS code,
pointed at the server with ``endpoint=``), so what is asserted is what a publisher would see:
visibility, permissions per namespace, pull requests, keep-alive after early errors, per-repo
blobs, the LFS batch's per-object errors, verify and multipart actions, no Xet, and each fault
switch. Retry waits are shortened, never removed: every retry the client makes still happens.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
from urllib.parse import urlsplit

import httpx2
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.lfs import UploadInfo, post_lfs_batch_info
from huggingface_hub.utils import _http

from hub_server import COMMIT_QUOTA, HubServer

pytestmark = pytest.mark.integration

OWNER_TOKEN = "hf_owner_test_token"
OTHER_TOKEN = "hf_other_test_token"
REPO = "my-org/sample"
CHUNK = 40_000


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setitem(_http.http_backoff.__kwdefaults__, "base_wait_time", 0.01)
    monkeypatch.setitem(_http.http_backoff.__kwdefaults__, "max_wait_time", 0.02)
    with HubServer(tmp_path / "hub", token=OWNER_TOKEN, idle_timeout=120, private_by_default=("quiet-org",),
                   multipart_threshold=100_000, multipart_chunk_size=CHUNK) as server:
        server.add_user(OTHER_TOKEN, "other-user", orgs=("quiet-org",))
        yield server


def clients(hub):
    """(owner, other user, anonymous) clients of the server."""
    return (HfApi(endpoint=hub.url, token=OWNER_TOKEN), HfApi(endpoint=hub.url, token=OTHER_TOKEN),
            HfApi(endpoint=hub.url, token=False))


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def upload(api, data, path="data.bin", repo=REPO, **options):
    return api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo, repo_type="dataset", **options)


def test_private_repo_is_invisible_to_anonymous_and_other_users(hub, tmp_path):
    owner, other, anonymous = clients(hub)
    owner.create_repo(REPO, repo_type="dataset", private=True)
    upload(owner, b"secret rows\n", "rows.txt")
    assert owner.repo_info(REPO, repo_type="dataset").private is True
    assert owner.list_repo_files(REPO, repo_type="dataset") == [".gitattributes", "rows.txt"]
    url = f"{hub.url}/datasets/{REPO}"
    for name, api, token in (("anonymous", anonymous, False), ("other user", other, OTHER_TOKEN)):
        calls = {
            "info": lambda: api.repo_info(REPO, repo_type="dataset"),
            "list": lambda: api.list_repo_files(REPO, repo_type="dataset"),
            "paths-info": lambda: api.get_paths_info(REPO, ["rows.txt"], repo_type="dataset"),
            "refs": lambda: api.list_repo_refs(REPO, repo_type="dataset"),
            "commits": lambda: api.list_repo_commits(REPO, repo_type="dataset"),
            "download": lambda: hf_hub_download(REPO, "rows.txt", repo_type="dataset", endpoint=hub.url, token=token,
                                                cache_dir=str(tmp_path / name)),
        }
        for call_name, call in calls.items():
            with pytest.raises(RepositoryNotFoundError) as caught:
                call()
            assert caught.value.response.status_code == 404, (name, call_name)
            assert caught.value.response.headers["X-Error-Message"] == "Repository not found", (name, call_name)
        assert api.repo_exists(REPO, repo_type="dataset") is False
    with pytest.raises(RepositoryNotFoundError):
        upload(other, b"x", "x.txt", create_pr=True)
    resolved = httpx2.get(f"{url}/resolve/main/rows.txt")
    assert (resolved.status_code, resolved.headers["X-Error-Code"]) == (404, "RepoNotFound")


def test_visibility_follows_the_request_then_the_namespace_default(hub):
    owner, other, anonymous = clients(hub)
    owner.create_repo("my-org/public-by-default", repo_type="dataset")
    owner.create_repo("my-org/said-public", repo_type="dataset", visibility="public")
    owner.create_repo("my-org/said-private", repo_type="dataset", visibility="private")
    other.create_repo("quiet-org/org-default", repo_type="dataset")
    other.create_repo("quiet-org/org-said-public", repo_type="dataset", private=False)
    legacy = httpx2.post(f"{hub.url}/api/repos/create", headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
                         json={"name": "legacy-private", "organization": "my-org", "type": "dataset", "private": True})
    assert legacy.status_code == 200
    expected = {"my-org/public-by-default": False, "my-org/said-public": False, "my-org/said-private": True,
                "quiet-org/org-default": True, "quiet-org/org-said-public": False, "my-org/legacy-private": True}
    assert {repo: hub.store.load("dataset", repo)["private"] for repo in expected} == expected
    assert anonymous.repo_exists("my-org/public-by-default", repo_type="dataset") is True
    assert anonymous.repo_exists("my-org/legacy-private", repo_type="dataset") is False


def test_writes_outside_the_own_namespaces_are_forbidden(hub):
    owner, other, anonymous = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as created:
        other.create_repo("my-org/not-yours", repo_type="dataset")
    assert created.value.response.status_code == 403
    assert first_line(created.value) == ("403 Forbidden: You don't have the rights to create a dataset under the "
                                         'namespace "my-org".')
    with pytest.raises(HfHubHTTPError) as committed:
        upload(other, b"not yours\n", "x.txt")
    assert committed.value.response.status_code == 403
    assert first_line(committed.value) == ("403 Forbidden: Forbidden: pass `create_pr=1` as a query parameter to "
                                           "create a Pull Request.")
    with pytest.raises(HfHubHTTPError) as anonymous_commit:
        upload(anonymous, b"anyone\n", "x.txt")
    assert anonymous_commit.value.response.status_code == 401
    assert anonymous_commit.value.response.headers["X-Error-Message"] == "You must be authenticated to do this"
    with pytest.raises(HfHubHTTPError) as wrong_token:
        HfApi(endpoint=hub.url, token="hf_unknown_token").repo_info(REPO, repo_type="dataset")
    assert wrong_token.value.response.status_code == 401
    assert wrong_token.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert other.create_repo("other-user/mine", repo_type="dataset").repo_id == "other-user/mine"
    assert other.create_repo("no-namespace", repo_type="dataset").repo_id == "other-user/no-namespace"
    assert owner.whoami()["name"] == "test-user" and [org["name"] for org in owner.whoami()["orgs"]] == ["my-org"]
    assert hub.files("dataset", REPO) == {".gitattributes": hub.files("dataset", REPO)[".gitattributes"]}


def test_create_pr_commits_to_a_new_pr_ref_and_leaves_the_branch(hub):
    owner, other, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    main_before = hub.commits("dataset", REPO)
    first = upload(owner, b"proposal one\n", "one.txt", create_pr=True)
    second = upload(other, b"proposal two\n", "two.txt", create_pr=True)
    assert (first.pr_url, first.pr_revision, first.pr_num) == (f"{hub.url}/datasets/{REPO}/discussions/1", "refs/pr/1", 1)
    assert (second.pr_url, second.pr_revision, second.pr_num) == (f"{hub.url}/datasets/{REPO}/discussions/2", "refs/pr/2", 2)
    assert hub.commits("dataset", REPO) == main_before
    assert hub.pull_requests("dataset", REPO) == {1: first.oid, 2: second.oid}
    refs = owner.list_repo_refs(REPO, repo_type="dataset", include_pull_requests=True)
    assert [(ref.ref, ref.target_commit) for ref in refs.pull_requests] == [("refs/pr/1", first.oid), ("refs/pr/2", second.oid)]
    assert owner.list_repo_files(REPO, repo_type="dataset", revision="refs/pr/1") == [".gitattributes", "one.txt"]
    assert hub.commits("dataset", REPO, branch="refs/pr/2")[1:] == main_before
    pushed = upload(other, b"proposal two, revised\n", "two.txt", revision="refs/pr/2")
    assert pushed.pr_url is None and hub.pull_requests("dataset", REPO)[2] == pushed.oid
    assert hub.files("dataset", REPO, revision="refs/pr/2")["two.txt"] == b"proposal two, revised\n"
    assert owner.list_repo_files(REPO, repo_type="dataset") == [".gitattributes"]


def test_an_error_answered_before_the_body_keeps_the_connection_usable(hub):
    HfApi(endpoint=hub.url, token=OWNER_TOKEN).create_repo(REPO, repo_type="dataset")
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    body = b'{"key": "header", "value": {"summary": "x"}}\n' * 2000
    connection.request("POST", f"/api/datasets/{REPO}/commit/main", body=body,
                       headers={"Content-Type": "application/x-ndjson"})
    refused = connection.getresponse()
    assert (refused.status, json.loads(refused.read())) == (401, {"error": "You must be authenticated to do this"})
    socket_after_error = connection.sock
    connection.request("POST", f"/api/datasets/{REPO}/paths-info/main", body=json.dumps({"paths": [".gitattributes"]}),
                       headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    assert (answer.status, [entry["path"] for entry in json.loads(answer.read())]) == (200, [".gitattributes"])
    assert connection.sock is socket_after_error is not None
    connection.close()


def test_blobs_are_stored_per_repo(hub):
    owner, _, _ = clients(hub)
    for repo in ("my-org/first", "my-org/second"):
        owner.create_repo(repo, repo_type="dataset")
    content = os.urandom(5_000)
    upload(owner, content, repo="my-org/first")

    def batch(repo):
        actions, errors, _ = post_lfs_batch_info([UploadInfo.from_bytes(content)], token=OWNER_TOKEN, repo_type="dataset",
                                                 repo_id=repo, revision="main", endpoint=hub.url)
        return errors, "actions" in actions[0]

    assert batch("my-org/first") == ([], False)
    assert batch("my-org/second") == ([], True)
    preupload = httpx2.post(f"{hub.url}/api/datasets/my-org/second/preupload/main", headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
                            json={"files": [{"path": "data.bin", "size": len(content), "sample": ""}]})
    assert preupload.json()["files"][0]["oid"] is None
    # A commit naming an object uploaded to another repo is refused, as the Hub refuses a dangling pointer.
    payload = [{"key": "header", "value": {"summary": "steal"}},
               {"key": "lfsFile", "value": {"path": "data.bin", "algo": "sha256", "size": len(content),
                                            "oid": hashlib.sha256(content).hexdigest()}}]
    stolen = httpx2.post(f"{hub.url}/api/datasets/my-org/second/commit/main", headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
                         content=b"".join(json.dumps(line).encode() + b"\n" for line in payload))
    assert stolen.status_code == 400
    assert stolen.json()["error"] == ("Your push was rejected because an LFS pointer pointed to a file that does not exist. "
                                      "For instance, this can happen if you used git push --no-verify to push your changes. "
                                      "Offending file: - data.bin")
    upload(owner, content, repo="my-org/second")
    assert hub.files("dataset", "my-org/second")["data.bin"] == content
    assert len([request for request in hub.requests if request.startswith("PUT /lfs-storage/")]) == 2


def test_lfs_per_object_error_surfaces_as_huggingface_hub_raises_it(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    content = os.urandom(3_000)
    oid = hashlib.sha256(content).hexdigest()
    hub.faults["lfs_object_errors"] = {oid: "Object size exceeds the repository's limit"}
    with pytest.raises(ValueError) as caught:
        upload(owner, content)
    assert str(caught.value) == ("LFS batch API returned errors:\nEncountered error for file with OID "
                                 f"{oid}: `Object size exceeds the repository's limit")
    assert "data.bin" not in hub.files("dataset", REPO)
    hub.faults["lfs_object_errors"] = {}
    upload(owner, content)
    assert hub.files("dataset", REPO)["data.bin"] == content


def test_multipart_upload_with_verify_end_to_end(hub, tmp_path):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    content = os.urandom(250_000)
    (tmp_path / "big.bin").write_bytes(content)
    upload(owner, str(tmp_path / "big.bin"), "big.bin")
    storage = [request.split("/lfs-storage/")[1] for request in hub.requests if "/lfs-storage/" in request]
    upload_id = storage[0].split("/")[0]
    assert storage == [f"{upload_id}/{part}" for part in range(1, 8)] + [f"{upload_id}/complete"]
    assert hub.requests.count(f"POST /datasets/{REPO}.git/info/lfs/objects/verify") == 1
    assert hub.files("dataset", REPO)["big.bin"] == content
    downloaded = hf_hub_download(REPO, "big.bin", repo_type="dataset", endpoint=hub.url, token=False,
                                 cache_dir=str(tmp_path / "cache"))
    with open(downloaded, "rb") as handle:
        assert handle.read() == content


def test_an_unverified_upload_cannot_be_committed(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    content = os.urandom(4_000)
    hub.faults["server_errors"] = {"lfs_verify": {"status": 500, "count": 6}}
    with pytest.raises(RuntimeError) as caught:
        upload(owner, content)
    assert str(caught.value) == "Error while uploading 'data.bin' to the Hub."
    assert caught.value.__cause__.response.status_code == 500
    assert hub.requests.count(f"POST /datasets/{REPO}.git/info/lfs/objects/verify") == 6
    actions, _, _ = post_lfs_batch_info([UploadInfo.from_bytes(content)], token=OWNER_TOKEN, repo_type="dataset",
                                        repo_id=REPO, revision="main", endpoint=hub.url)
    assert "upload" in actions[0]["actions"]
    assert sorted(hub.files("dataset", REPO)) == [".gitattributes"]


def test_no_xet_the_token_endpoints_are_not_found(hub, monkeypatch, tmp_path):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    for kind in ("write", "read"):
        answer = httpx2.get(f"{hub.url}/api/datasets/{REPO}/xet-{kind}-token/main", headers={"Authorization": f"Bearer {OWNER_TOKEN}"})
        assert (answer.status_code, answer.json()) == (404, {"error": "Sorry, we can't find the page you are looking for."})
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    (tmp_path / "rows.parquet").write_bytes(os.urandom(2_000))
    with pytest.raises(ConnectionError) as caught:
        upload(owner, str(tmp_path / "rows.parquet"), "rows.parquet")
    assert str(caught.value) == ("Network error: Request error: HTTP status client error (404 Not Found), domain: "
                                 f"{hub.url}/api/datasets/{REPO}/xet-write-token/main")
    assert sorted(hub.files("dataset", REPO)) == [".gitattributes"]


def test_fault_drop_after_commit_applies_the_commit_and_gives_no_answer(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    before = hub.commits("dataset", REPO)
    hub.faults["drop_after_commit"] = 1
    with pytest.raises(httpx2.RemoteProtocolError) as caught:
        upload(owner, b"rows\n", "rows.txt")
    assert str(caught.value) == "Server disconnected without sending a response."
    after = hub.commits("dataset", REPO)
    assert after[1:] == before and hub.files("dataset", REPO)["rows.txt"] == b"rows\n"
    assert owner.repo_info(REPO, repo_type="dataset").sha == after[0]
    assert hub.faults["drop_after_commit"] == 0


def test_fault_commit_429_answers_retry_after_then_lets_commits_through(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    before = hub.commits("dataset", REPO)
    hub.faults.update(commit_429=2, retry_after=7)
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as caught:
            upload(owner, b"rows\n", "rows.txt")
        response = caught.value.response
        assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
        assert response.headers["X-Error-Message"] == COMMIT_QUOTA
        assert first_line(caught.value) == f"429 Too Many Requests for url: {hub.url}/api/datasets/{REPO}/commit/main."
    assert hub.commits("dataset", REPO) == before
    committed = upload(owner, b"rows\n", "rows.txt")
    assert hub.commits("dataset", REPO) == [committed.oid, *before]


def test_fault_commit_500_commits_nothing(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    before = hub.commits("dataset", REPO)
    hub.faults["commit_500"] = 1
    with pytest.raises(HfHubHTTPError) as caught:
        upload(owner, b"rows\n", "rows.txt")
    assert caught.value.response.status_code == 500
    assert caught.value.response.headers["X-Error-Message"] == "Internal Error - We're working hard to fix this as soon as possible!"
    assert hub.commits("dataset", REPO) == before


def test_fault_server_errors_on_an_endpoint_k_times(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    preupload = f"POST /api/datasets/{REPO}/preupload/main"
    hub.faults["server_errors"] = {"preupload": {"status": 503, "count": 2}}
    upload(owner, b"first\n", "rows.txt")
    assert hub.requests.count(preupload) == 3
    hub.faults["server_errors"] = {"preupload": {"status": 502, "count": 6}}
    with pytest.raises(HfHubHTTPError) as caught:
        upload(owner, b"second\n", "rows.txt")
    assert caught.value.response.status_code == 502
    assert hub.requests.count(preupload) == 3 + 6
    assert hub.files("dataset", REPO)["rows.txt"] == b"first\n"


def test_fault_drop_lfs_upload_is_retried_by_the_client(hub):
    owner, _, _ = clients(hub)
    owner.create_repo(REPO, repo_type="dataset")
    content = os.urandom(6_000)
    hub.faults["drop_lfs_upload"] = 2
    upload(owner, content)
    puts = [request for request in hub.requests if request.startswith("PUT /lfs-storage/")]
    assert len(puts) == 3 and len(set(puts)) == 1
    assert hub.files("dataset", REPO)["data.bin"] == content


def test_faults_are_set_by_a_client_process_with_post(hub):
    answer = httpx2.post(f"{hub.url}/_test/faults", json={"commit_429": 1, "lfs_object_errors": {"ab" * 32: "no"}})
    assert answer.status_code == 200 and answer.json()["commit_429"] == 1
    assert hub.faults["lfs_object_errors"] == {"ab" * 32: "no"}
    refused = httpx2.post(f"{hub.url}/_test/faults", json={"commit_999": 1})
    assert (refused.status_code, refused.json()) == (400, {"error": "unknown faults ['commit_999']"})
