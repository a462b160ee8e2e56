"""A local Hugging Face Hub protocol server for the publisher tests.

It implements the endpoints that ``huggingface_hub`` and ``datasets`` call to create a repo, upload
files through the legacy LFS protocol (preupload, LFS batch, single-part or multipart PUT, verify),
commit them with one NDJSON request (to a branch, or to a new pull request ``refs/pr/N``), list them
(tree, paths-info, refs, commits), validate a card's YAML, and download them (resolve), so the real
client code runs end to end. Repos live on disk under ``root``: per repo, content-addressed blobs
plus one JSON state file, replaced atomically when a commit is applied, so a failed or interrupted
commit never becomes visible, and an upload to one repo is never "already uploaded" in another.

It answers like the Hub where the client's behaviour depends on it:

- accounts: each token belongs to a user (:meth:`HubServer.add_user`); the server's own ``token``
  is ``test-user``'s, a member of the ``my-org`` organization. An unknown token is a 401
  "Invalid credentials in Authorization header". A user writes only to its own namespace and its
  organizations' (403 otherwise, "pass `create_pr=1`" like the Hub), but any signed-in user who
  can read a repo may open a pull request on it.
- visibility: ``create_repo`` takes ``visibility`` ("public"/"private", what ``huggingface_hub``
  2.x sends) or the legacy ``private``; with neither, the namespace default applies (public, or
  private for the namespaces in ``private_by_default``). A private repo is a 404 "Repository not
  found" for anonymous clients and for users outside its namespace, on every read and write.
- LFS: the batch answers per-object errors, a ``verify`` action (an upload becomes committable only
  once verified) and, for objects of ``multipart_threshold`` bytes or more, a multipart upload
  (``chunk_size`` and one URL per part in the action's ``header``, completed by a POST of the parts'
  ETags to the action's ``href``), as ``huggingface_hub.lfs`` expects.
- no Xet: ``xet-write-token``/``xet-read-token`` are unknown routes (404), as on an endpoint
  without Xet storage; resolve answers carry no Xet headers.
- keep-alive: a request answered before its body was read has the body drained (or the connection
  closed when it is too big to drain), so the next request on the connection is parsed correctly.

Only loopback addresses are served. Faults are injected through :attr:`HubServer.faults` (or by a
client process with ``POST /_test/faults``, whose JSON object replaces the values it names):

- ``drop_lfs_upload``: count of LFS PUTs (single or part) closed half-way through the body;
- ``commit_500``: count of commits answered 500 (after reading them, nothing applied);
- ``drop_after_commit``: count of commits applied whose connection is then closed unanswered;
- ``commit_429``: count of commits answered 429 with ``Retry-After: <retry_after>`` before their
  body is read (``retry_after``: seconds, 1 by default);
- ``lfs_object_errors``: ``{oid: message}``, objects the LFS batch answers with
  ``{"error": {"code": 422, "message": message}}`` instead of actions, until cleared;
- ``server_errors``: ``{endpoint: {"status": 5xx, "count": K}}``, the next K requests to an endpoint
  (a :class:`HubHandler` method name, e.g. ``"preupload"``, ``"lfs_batch"``, ``"commit"``) answered
  with that status before anything is read or done.

:attr:`HubServer.requests` lists every request (``"POST /api/..."``) in arrival order.

Example:
    >>> with HubServer(tmp_path, token="hf_test") as server:  # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = server.url
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_EXTENSIONS = (".parquet", ".png", ".jpg", ".jpeg", ".arrow", ".bin", ".wav", ".mp4", ".zip", ".gz")
REGULAR_FILE_LIMIT = 10 * 1024 * 1024
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
# Values the Hub accepts in a dataset card's YAML (a subset of the Hub's lists, enough to catch typos).
KNOWN_TASK_CATEGORIES = {
    "image-text-to-text", "visual-question-answering", "video-text-to-text", "audio-text-to-text",
    "text-generation", "image-to-text", "text-to-image", "question-answering", "automatic-speech-recognition",
    "audio-classification", "image-classification", "text-classification", "translation", "summarization",
    "any-to-any", "video-classification", "text-to-speech", "text-to-audio", "feature-extraction", "other",
}
KNOWN_SIZE_CATEGORIES = {
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B", "1B<n<10B",
    "10B<n<100B", "100B<n<1T", "n>1T",
}
KNOWN_ANNOTATION_CREATORS = {"crowdsourced", "expert-generated", "found", "machine-generated", "no-annotation", "other"}
LIST_OF_STRINGS_KEYS = ("language", "task_categories", "task_ids", "size_categories", "source_datasets",
                        "annotations_creators", "language_creators", "multilinguality", "tags")
MAX_REQUEST_BYTES = 1 << 31
# An unread request body up to this size is drained after an early answer; a bigger one closes the connection.
MAX_DRAIN_BYTES = 64 << 20
DEFAULT_USER = "test-user"
DEFAULT_ORGS = ("my-org",)
# The Hub's answers, word for word, where huggingface_hub or a user reads them.
REPO_NOT_FOUND = "Repository not found"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
NOT_AUTHENTICATED = "You must be authenticated to do this"
PASS_CREATE_PR = "Forbidden: pass `create_pr=1` as a query parameter to create a Pull Request"
COMMIT_QUOTA = "You have exceeded our hourly quotas for action: commit. We invite you to retry later."
SERVER_ERROR = "Internal Error - We're working hard to fix this as soon as possible!"
UNKNOWN_ROUTE = "Sorry, we can't find the page you are looking for."
DANGLING_LFS = ("Your push was rejected because an LFS pointer pointed to a file that does not exist. For instance, "
                "this can happen if you used git push --no-verify to push your changes. Offending file: - {path}")
DEFAULT_FAULTS = {"drop_lfs_upload": 0, "commit_500": 0, "drop_after_commit": 0, "commit_429": 0, "retry_after": 1,
                  "lfs_object_errors": {}, "server_errors": {}}


def git_blob_oid(content: bytes) -> str:
    """The git object id (SHA-1 of ``blob <size>\\0<content>``) of a file's content."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def validate_card_yaml(content: str) -> list[str]:
    """The reasons a dataset card's YAML header would be refused (empty list when it is valid)."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if not match:
        return ["the card has no YAML header between '---' lines"]
    try:
        metadata = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        return [f"invalid YAML: {error}"]
    if not isinstance(metadata, dict):
        return ["the YAML header is not a mapping"]
    errors = []
    for key in LIST_OF_STRINGS_KEYS:
        value = metadata.get(key)
        if value is not None and not (isinstance(value, str) or all(isinstance(item, str) for item in value)):
            errors.append(f"'{key}' must be a string or a list of strings")
    for key, known in (("task_categories", KNOWN_TASK_CATEGORIES), ("size_categories", KNOWN_SIZE_CATEGORIES),
                       ("annotations_creators", KNOWN_ANNOTATION_CREATORS)):
        values = metadata.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            if value not in known:
                errors.append(f"'{key}' has unknown value {value!r}")
    for config in metadata.get("configs") or []:
        if not isinstance(config, dict) or "config_name" not in config:
            errors.append("every entry of 'configs' needs a 'config_name'")
            continue
        for data_file in config.get("data_files") or []:
            if isinstance(data_file, dict) and not {"split", "path"} <= set(data_file):
                errors.append(f"config {config['config_name']!r}: data_files entries need 'split' and 'path'")
    info = metadata.get("dataset_info")
    for entry in info if isinstance(info, list) else [info] if info else []:
        if not isinstance(entry.get("features", []), list):
            errors.append("'dataset_info.features' must be a list")
        for split in entry.get("splits") or []:
            if not isinstance(split.get("num_examples"), int):
                errors.append(f"split {split.get('name')!r}: 'num_examples' must be an integer")
    return errors


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.extra, self.headers = extra or {}, headers or {}


def commit_of(state: dict, revision: str) -> str:
    """The commit id a revision (branch, tag, ``refs/pr/N`` or commit id) names in a repo state."""
    if revision in state["branches"]:
        return state["branches"][revision]
    if revision in state["tags"]:
        return state["tags"][revision]
    pull = re.fullmatch(r"refs/pr/(\d+)", revision)
    if pull and pull.group(1) in state["pulls"]:
        return state["pulls"][pull.group(1)]["oid"]
    if revision in state["commits"]:
        return revision
    raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


@dataclasses.dataclass(frozen=True)
class Account:
    """The user a token belongs to, and the organizations it may write to."""

    name: str
    orgs: tuple[str, ...] = ()

    @property
    def namespaces(self) -> set[str]:
        return {self.name, *self.orgs}


class RepoStore:
    """Repos on disk: ``repos/<type>/<id>.json`` states and ``objects/<type>/<id>/<sha256>`` blobs.

    Blobs belong to one repo: content uploaded to a repo is unknown to every other. An LFS upload
    waits in ``pending/<type>/<id>/`` until it is verified (when the server asks for verification).
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "staging").mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def state_path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / f"{repo_id}.json"

    def load(self, repo_type: str, repo_id: str) -> dict | None:
        path = self.state_path(repo_type, repo_id)
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, repo_type: str, repo_id: str, state: dict) -> None:
        path = self.state_path(repo_type, repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, path)

    def object_path(self, repo_type: str, repo_id: str, sha256: str) -> Path:
        return self.root / "objects" / repo_type / repo_id / sha256

    def pending_path(self, repo_type: str, repo_id: str, sha256: str) -> Path:
        return self.root / "pending" / repo_type / repo_id / sha256

    def put_object(self, repo_type: str, repo_id: str, content: bytes, *, pending: bool = False) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = (self.pending_path if pending else self.object_path)(repo_type, repo_id, sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.root / "staging" / f"{sha256}.{threading.get_ident()}"
            temporary.write_bytes(content)
            os.replace(temporary, path)
        return sha256

    def create(self, repo_type: str, repo_id: str, private: bool, author: str = DEFAULT_USER) -> dict:
        sha256 = self.put_object(repo_type, repo_id, GITATTRIBUTES)
        files = {".gitattributes": {"sha256": sha256, "size": len(GITATTRIBUTES), "lfs": False,
                                    "oid": git_blob_oid(GITATTRIBUTES)}}
        commit = self.commit_oid(None, files, "initial commit")
        now = _now()
        state = {"private": private, "created": now, "branches": {"main": commit}, "tags": {}, "pulls": {},
                 "commits": {commit: {"parent": None, "files": files, "title": "initial commit", "date": now,
                                      "author": author}}}
        self.save(repo_type, repo_id, state)
        return state

    @staticmethod
    def commit_oid(parent: str | None, files: dict, title: str) -> str:
        payload = json.dumps([parent, files, title, time.time_ns()], sort_keys=True).encode()
        return hashlib.sha1(payload).hexdigest()


class HubServer:
    """The server: start it (or use it as a context manager), point ``HF_ENDPOINT`` at :attr:`url`.

    ``token`` belongs to ``test-user``, member of ``my-org``; :meth:`add_user` adds other accounts.
    ``private_by_default``: namespaces whose new repos are private unless the client asks otherwise.
    ``multipart_threshold``/``multipart_chunk_size``: LFS objects of at least the threshold are
    uploaded in parts of the chunk size. ``lfs_verify``: the LFS batch asks the client to verify
    each upload, and only a verified object can be committed.
    """

    def __init__(self, root: Path, token: str = "hf_test_token", idle_timeout: float = 600.0, *,
                 private_by_default: Iterable[str] = (), multipart_threshold: int = 64 << 20,
                 multipart_chunk_size: int = 16 << 20, lfs_verify: bool = True):
        self.store = RepoStore(root)
        self.token = token
        self.accounts = {token: Account(DEFAULT_USER, DEFAULT_ORGS)}
        self.private_by_default = set(private_by_default)
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk_size = multipart_chunk_size
        self.lfs_verify = lfs_verify
        self.faults = json.loads(json.dumps(DEFAULT_FAULTS))
        self.fault_lock = threading.Lock()
        self.uploads: dict[str, dict] = {}
        self.uploads_lock = threading.Lock()
        self.requests: list[str] = []
        self.idle_timeout = idle_timeout
        self._last_request = time.monotonic()
        handler = type("BoundHubHandler", (HubHandler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._serve, name="hub-server", daemon=True)

    def _serve(self) -> None:
        # Bounded: the loop ends when stopped, or by itself once no request came for idle_timeout.
        self.httpd.timeout = 0.5
        while not getattr(self, "_stopped", False):
            self.httpd.handle_request()
            if time.monotonic() - self._last_request > self.idle_timeout:
                break
        self.httpd.server_close()

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._thread.join(timeout=5)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_user(self, token: str, name: str, orgs: Iterable[str] = ()) -> Account:
        """Give ``token`` to user ``name``, member of ``orgs``."""
        account = self.accounts[token] = Account(name, tuple(orgs))
        return account

    def take_fault(self, name: str) -> bool:
        """Use up one of the ``name`` fault's count; False when none is left."""
        with self.fault_lock:
            if self.faults[name] <= 0:
                return False
            self.faults[name] -= 1
            return True

    def commits(self, repo_type: str, repo_id: str, branch: str = "main") -> list[str]:
        """Commit ids of a branch (or ``refs/pr/N``), newest first (empty when the repo or ref does not exist)."""
        state = self.store.load(repo_type, repo_id)
        if state is None:
            return []
        try:
            oid = commit_of(state, branch)
        except HubError:
            return []
        chain = []
        while oid is not None:
            chain.append(oid)
            oid = state["commits"][oid]["parent"]
        return chain

    def pull_requests(self, repo_type: str, repo_id: str) -> dict[int, str]:
        """Pull request number -> head commit id."""
        state = self.store.load(repo_type, repo_id)
        return {int(number): pull["oid"] for number, pull in (state or {}).get("pulls", {}).items()}

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision, path -> content."""
        state = self.store.load(repo_type, repo_id)
        commit = state["commits"][commit_of(state, revision)]
        return {path: self.store.object_path(repo_type, repo_id, entry["sha256"]).read_bytes()
                for path, entry in commit["files"].items()}


API_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
GIT_REPO = r"/(?P<prefix>datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)"
UPLOAD = r"/lfs-storage/(?P<upload_id>[0-9a-f]{32})"


class HubHandler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _routes(self):
        return [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            ("GET", r"/api/whoami-v2", self.whoami),
            ("POST", r"/_test/faults", self.set_faults),
            ("GET", API_REPO + r"(?:/revision/(?P<rev>[^/]+))?", self.repo_info),
            ("POST", API_REPO + r"/preupload/(?P<rev>[^/]+)", self.preupload),
            ("POST", API_REPO + r"/commit/(?P<rev>[^/]+)", self.commit),
            ("GET", API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self.tree),
            ("POST", API_REPO + r"/paths-info/(?P<rev>[^/]+)", self.paths_info),
            ("GET", API_REPO + r"/refs", self.refs),
            ("GET", API_REPO + r"/commits/(?P<rev>[^/]+)", self.list_commits),
            ("POST", API_REPO + r"/branch/(?P<branch>.+)", self.create_branch),
            ("POST", GIT_REPO + r"\.git/info/lfs/objects/batch", self.lfs_batch),
            ("POST", GIT_REPO + r"\.git/info/lfs/objects/verify", self.lfs_verify),
            ("PUT", UPLOAD, self.lfs_upload),
            ("PUT", UPLOAD + r"/(?P<part>[0-9]+)", self.lfs_upload_part),
            ("POST", UPLOAD + r"/complete", self.lfs_complete),
            ("GET", GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
            ("HEAD", GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
        ]

    def _dispatch(self, method: str) -> None:
        self.hub._last_request = time.monotonic()
        split = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        self._body_read = False
        self.hub.requests.append(f"{method} {split.path}")
        try:
            for route_method, pattern, handler in self._routes():
                match = re.fullmatch(pattern, split.path)
                if route_method == method and match:
                    self._injected_server_error(handler.__name__)
                    groups = {key: unquote(value) if value else value for key, value in match.groupdict().items()}
                    handler(**groups)
                    return
            raise HubError(404, UNKNOWN_ROUTE)
        except HubError as error:
            self._send_json({"error": error.message, **error.extra}, error.status, error_code=error.code,
                            error_message=error.message, headers=error.headers)
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    def _injected_server_error(self, endpoint: str) -> None:
        with self.hub.fault_lock:
            fault = self.hub.faults["server_errors"].get(endpoint)
            if not fault or fault.get("count", 0) <= 0:
                return
            fault["count"] -= 1
        raise HubError(int(fault.get("status", 500)), SERVER_ERROR)

    # --- plumbing -------------------------------------------------------------------------------

    def _chunked_body(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._body_read = True
            return self._chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise HubError(413, "request too large")
        self._body_read = True
        return self.rfile.read(length) if length else b""

    def _json_body(self):
        body = self._body()
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "request body is not JSON")

    def _settle_body(self) -> None:
        # An answer given before the body was read (an auth or permission error, an injected fault)
        # must not leave the body in the stream: it would be parsed as the next request line.
        if self._body_read:
            return
        self._body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked" or length > MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self._settle_body()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, error_code: str | None = None, error_message: str | None = None,
                   headers: dict | None = None, content_type: str = "application/json") -> None:
        headers = dict(headers or {})
        if error_code:
            headers["X-Error-Code"] = error_code
        if error_message:
            headers["X-Error-Message"] = error_message
        self._send(status, json.dumps(payload).encode(), content_type, headers)

    def _drop_connection(self) -> None:
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _account(self) -> Account | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        account = self.hub.accounts.get(header[len("Bearer "):]) if header.startswith("Bearer ") else None
        if account is None:
            raise HubError(401, INVALID_CREDENTIALS)
        return account

    def _signed_in(self) -> Account:
        account = self._account()
        if account is None:
            raise HubError(401, NOT_AUTHENTICATED)
        return account

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False,
              pull_request: bool = False) -> tuple[dict, Account | None]:
        """The repo's state and the caller's account, or the Hub's refusal.

        Reading needs a public repo or membership of its namespace (a private repo is "not found"
        otherwise, as on the Hub); writing needs membership, or only reading for a pull request.
        """
        account = self._signed_in() if write else self._account()
        state = self.hub.store.load(repo_type, repo_id)
        namespace = repo_id.split("/")[0]
        member = account is not None and namespace in account.namespaces
        if state is None or (state["private"] and not member):
            raise HubError(404, REPO_NOT_FOUND, "RepoNotFound")
        if write and not member and not pull_request:
            raise HubError(403, PASS_CREATE_PR)
        return state, account

    @staticmethod
    def _type(plural_or_prefix: str | None) -> str:
        return {"models": "model", "datasets": "dataset", "spaces": "space", None: "model",
                "datasets/": "dataset", "spaces/": "space"}[plural_or_prefix]

    def _flag(self, name: str) -> bool:
        return self.query.get(name) in ("1", "true", "True")

    def _entry(self, path: str, file: dict) -> dict:
        entry = {"type": "file", "path": path, "size": file["size"], "oid": file["oid"]}
        if file["lfs"]:
            entry["lfs"] = {"oid": file["sha256"], "size": file["size"], "pointerSize": len(lfs_pointer(file["sha256"], file["size"]))}
        return entry

    # --- endpoints ------------------------------------------------------------------------------

    def create_repo(self):
        account = self._signed_in()
        body = self._json_body()
        repo_type = body.get("type") or "model"
        name, namespace = body.get("name"), body.get("organization") or account.name
        if repo_type not in REPO_TYPES or not name:
            raise HubError(400, "create needs 'name' and a valid 'type'")
        visibility = body.get("visibility")
        if visibility is None and body.get("private") is not None:
            visibility = "private" if body["private"] else "public"
        if visibility is None:
            visibility = "private" if namespace in self.hub.private_by_default else "public"
        if visibility not in ("public", "private") and not (visibility == "protected" and repo_type == "space"):
            raise HubError(400, f"invalid visibility {visibility!r} for a {repo_type} repo")
        repo_id = f"{namespace}/{name}"
        if not re.fullmatch(r"[\w.-]{1,96}/[\w.-]{1,96}", repo_id) or ".." in repo_id:
            raise HubError(400, f"invalid repo name {repo_id!r}")
        if namespace not in account.namespaces:
            raise HubError(403, f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self.hub.store.lock:
            for other in REPO_TYPES:
                if self.hub.store.load(other, repo_id) is not None:
                    existing = f"{self.hub.url}/{URL_PREFIXES[other]}{repo_id}"
                    raise HubError(409, f"You already created this {other} repo", "RepoExists", {"url": existing})
            self.hub.store.create(repo_type, repo_id, visibility == "private", account.name)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def whoami(self):
        account = self._signed_in()
        self._send_json({
            "type": "user", "id": hashlib.sha1(account.name.encode()).hexdigest()[:24], "name": account.name,
            "fullname": account.name, "orgs": [{"type": "org", "name": org, "roleInOrg": "write"} for org in account.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
        })

    def set_faults(self):
        body = self._json_body()
        unknown = set(body) - set(DEFAULT_FAULTS)
        if unknown:
            raise HubError(400, f"unknown faults {sorted(unknown)}")
        with self.hub.fault_lock:
            for key, value in body.items():
                self.hub.faults[key] = dict(value) if isinstance(DEFAULT_FAULTS[key], dict) else int(value)
            faults = json.loads(json.dumps(self.hub.faults))
        self._send_json(faults)

    def validate_yaml(self):
        body = self._json_body()
        errors = validate_card_yaml(body.get("content", ""))
        if errors:
            self._send(400, "\n".join(errors).encode(), "text/plain")
        else:
            self._send_json({"errors": [], "warnings": []})

    def repo_info(self, type, repo, rev=None):
        repo_type = self._type(type)
        state, _ = self._repo(repo_type, repo)
        commit_id = commit_of(state, rev or "main")
        files = state["commits"][commit_id]["files"]
        card_data = None
        if "README.md" in files:
            text = self.hub.store.object_path(repo_type, repo, files["README.md"]["sha256"]).read_text()
            match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
            card_data = yaml.safe_load(match.group(1)) if match else None
        self._send_json({
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo, "author": repo.split("/")[0],
            "sha": commit_id, "private": state["private"], "disabled": False, "gated": False,
            "createdAt": state["created"], "lastModified": state["commits"][commit_id]["date"],
            "downloads": 0, "likes": 0, "tags": [], "cardData": card_data,
            "siblings": [{"rfilename": path} for path in sorted(files)],
        })

    def preupload(self, type, repo, rev):
        repo_type = self._type(type)
        pull_request = self._flag("create_pr") or rev.startswith("refs/pr/")
        state, _ = self._repo(repo_type, repo, write=True, pull_request=pull_request)
        files = state["commits"][commit_of(state, rev)]["files"]
        answer = []
        for item in self._json_body().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["path"].lower().endswith(LFS_EXTENSIONS) or item["size"] > REGULAR_FILE_LIMIT or b"\x00" in sample
            existing = files.get(item["path"])
            oid = None if existing is None else (existing["sha256"] if existing["lfs"] else existing["oid"])
            answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answer, "commitOid": commit_of(state, rev)})

    def _upload_actions(self, prefix: str | None, repo: str, oid: str, size: int, multipart: bool) -> dict:
        upload_id = secrets.token_hex(16)
        href = f"{self.hub.url}/lfs-storage/{upload_id}"
        session = {"repo_type": self._type(prefix), "repo_id": repo, "oid": oid, "size": size, "parts": None}
        if multipart and size >= self.hub.multipart_threshold:
            chunk = self.hub.multipart_chunk_size
            count = -(-size // chunk)
            session["parts"] = {}
            upload = {"href": f"{href}/complete", "expires_in": 86400,
                      "header": {"chunk_size": str(chunk), **{f"{n:05d}": f"{href}/{n}" for n in range(1, count + 1)}}}
        else:
            upload = {"href": href, "expires_in": 86400}
        with self.hub.uploads_lock:
            self.hub.uploads[upload_id] = session
        actions = {"upload": upload}
        if self.hub.lfs_verify:
            actions["verify"] = {"href": f"{self.hub.url}/{prefix or ''}{repo}.git/info/lfs/objects/verify", "expires_in": 86400}
        return actions

    def lfs_batch(self, prefix, repo):
        repo_type = self._type(prefix)
        body = self._json_body()
        ref = (body.get("ref") or {}).get("name")
        # huggingface_hub names no ref when it opens a pull request: reading the repo is enough then.
        self._repo(repo_type, repo, write=True, pull_request=ref is None or ref.startswith("refs/pr/"))
        if body.get("operation") != "upload":
            raise HubError(400, f"unsupported LFS operation {body.get('operation')!r}: only uploads are served")
        multipart = "multipart" in (body.get("transfers") or ["basic"])
        with self.hub.fault_lock:
            object_errors = dict(self.hub.faults["lfs_object_errors"])
        objects = []
        for item in body.get("objects", []):
            oid, size = item.get("oid"), item.get("size")
            entry = {"oid": oid, "size": size}
            if not isinstance(oid, str) or not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
                entry["error"] = {"code": 422, "message": f"Invalid object: oid {oid!r}, size {size!r}"}
            elif oid in object_errors:
                entry["error"] = {"code": 422, "message": object_errors[oid]}
            elif not self.hub.store.object_path(repo_type, repo, oid).exists():
                entry["authenticated"] = True
                entry["actions"] = self._upload_actions(prefix, repo, oid, size, multipart)
            objects.append(entry)
        chunked = any("chunk_size" in entry.get("actions", {}).get("upload", {}).get("header", {}) for entry in objects)
        self._send_json({"transfer": "multipart" if chunked else "basic", "objects": objects},
                        content_type="application/vnd.git-lfs+json")

    def _upload_session(self, upload_id: str) -> dict:
        with self.hub.uploads_lock:
            session = self.hub.uploads.get(upload_id)
        if session is None:
            raise HubError(403, f"upload {upload_id} is unknown or expired")
        return session

    def _upload_body(self) -> bytes:
        """The uploaded bytes, or the ``drop_lfs_upload`` fault: the connection closed half-way through them."""
        if self.hub.take_fault("drop_lfs_upload"):
            self._body_read = True
            self.rfile.read(int(self.headers.get("Content-Length") or 0) // 2)
            self._drop_connection()
            raise ConnectionAbortedError("drop_lfs_upload fault")
        return self._body()

    def _store_upload(self, session: dict, content: bytes) -> None:
        if len(content) != session["size"] or hashlib.sha256(content).hexdigest() != session["oid"]:
            raise HubError(400, f"uploaded content ({len(content)} bytes) does not match oid {session['oid']} "
                                f"of {session['size']} bytes")
        self.hub.store.put_object(session["repo_type"], session["repo_id"], content, pending=self.hub.lfs_verify)

    def lfs_upload(self, upload_id):
        session = self._upload_session(upload_id)
        if session["parts"] is not None:
            raise HubError(400, f"upload {upload_id} is multipart: PUT its parts")
        content = self._upload_body()
        self._store_upload(session, content)
        self._send(200, b"", "text/plain", {"ETag": f'"{hashlib.md5(content).hexdigest()}"'})

    def lfs_upload_part(self, upload_id, part):
        session = self._upload_session(upload_id)
        count = -(-session["size"] // self.hub.multipart_chunk_size)
        if session["parts"] is None or not 1 <= int(part) <= count:
            raise HubError(400, f"upload {upload_id} has no part {part}")
        content = self._upload_body()
        etag = hashlib.md5(content).hexdigest()
        with self.hub.uploads_lock:
            session["parts"][int(part)] = (etag, content)
        self._send(200, b"", "text/plain", {"ETag": f'"{etag}"'})

    def lfs_complete(self, upload_id):
        session = self._upload_session(upload_id)
        body = self._json_body()
        if session["parts"] is None or body.get("oid") != session["oid"]:
            raise HubError(400, f"upload {upload_id} is not a multipart upload of oid {body.get('oid')!r}")
        count = -(-session["size"] // self.hub.multipart_chunk_size)
        listed = body.get("parts") or []
        if [part.get("partNumber") for part in listed] != list(range(1, count + 1)):
            raise HubError(400, f"the completion must list parts 1 to {count} in order")
        with self.hub.uploads_lock:
            uploaded = dict(session["parts"])
        for part in listed:
            stored = uploaded.get(part["partNumber"])
            if stored is None or stored[0] != str(part.get("etag", "")).strip('"'):
                raise HubError(400, f"part {part['partNumber']}: ETag {part.get('etag')!r} matches no uploaded part")
        self._store_upload(session, b"".join(uploaded[number][1] for number in range(1, count + 1)))
        with self.hub.uploads_lock:
            session["parts"] = {}
        self._send_json({"oid": session["oid"], "size": session["size"]}, content_type="application/vnd.git-lfs+json")

    def lfs_verify(self, prefix, repo):
        repo_type = self._type(prefix)
        self._repo(repo_type, repo, write=True, pull_request=True)
        body = self._json_body()
        oid, size = str(body.get("oid")), body.get("size")
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(422, f"Invalid oid {oid!r}")
        store = self.hub.store
        verified, pending = store.object_path(repo_type, repo, oid), store.pending_path(repo_type, repo, oid)
        if not verified.exists():
            if not pending.exists():
                raise HubError(404, f"Object {oid} was not uploaded")
            if pending.stat().st_size != size:
                raise HubError(422, f"Object {oid} has {pending.stat().st_size} bytes, not {size}")
            verified.parent.mkdir(parents=True, exist_ok=True)
            os.replace(pending, verified)
        self._send_json({"oid": oid, "size": size}, content_type="application/vnd.git-lfs+json")

    def commit(self, type, repo, rev):
        repo_type = self._type(type)
        create_pr = self._flag("create_pr")
        pull = re.fullmatch(r"refs/pr/(\d+)", rev)
        state, account = self._repo(repo_type, repo, write=True, pull_request=create_pr or pull is not None)
        if self.hub.take_fault("commit_429"):
            raise HubError(429, COMMIT_QUOTA, headers={"Retry-After": str(self.hub.faults["retry_after"])})
        try:
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise HubError(400, "the commit payload is not NDJSON")
        if self.hub.take_fault("commit_500"):
            raise HubError(500, SERVER_ERROR)
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        store = self.hub.store
        with store.lock:
            state = store.load(repo_type, repo)
            if pull is not None:
                if pull.group(1) not in state["pulls"]:
                    raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
                member = repo.split("/")[0] in account.namespaces
                if not member and state["pulls"][pull.group(1)]["author"] != account.name:
                    raise HubError(403, f"Forbidden: only the author of {rev} or a member of its namespace may push to it")
                head = state["pulls"][pull.group(1)]["oid"]
            elif rev in state["branches"]:
                head = state["branches"][rev]
            else:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent = head
            if create_pr and header.get("parentCommit"):
                # A pull request starts from the parent the client names, as on the Hub.
                parent = header["parentCommit"]
                if parent not in state["commits"]:
                    raise HubError(404, f"Invalid rev id: {parent}", "RevisionNotFound")
            elif header.get("parentCommit") and header["parentCommit"] != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = self._apply(repo_type, repo, dict(state["commits"][parent]["files"]), lines[1:])
            oid = store.commit_oid(parent, files, header.get("summary", ""))
            state["commits"][oid] = {"parent": parent, "files": files, "title": header.get("summary", ""),
                                     "date": _now(), "author": account.name}
            pull_request_url = None
            if create_pr:
                number = str(max((int(number) for number in state["pulls"]), default=0) + 1)
                state["pulls"][number] = {"oid": oid, "base": rev, "author": account.name,
                                          "title": header.get("summary", "")}
                pull_request_url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo}/discussions/{number}"
            elif pull is not None:
                state["pulls"][pull.group(1)]["oid"] = oid
            else:
                state["branches"][rev] = oid
            store.save(repo_type, repo, state)
        if self.hub.take_fault("drop_after_commit"):
            self._drop_connection()
            return
        self._send_json({"commitUrl": f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo}/commit/{oid}", "commitOid": oid,
                         "success": True, "pullRequestUrl": pull_request_url})

    def _apply(self, repo_type: str, repo: str, files: dict, operations: list[dict]) -> dict:
        store = self.hub.store
        for line in operations:
            key, value = line["key"], line["value"]
            path = value["path"]
            if key == "file":
                content = base64.b64decode(value["content"])
                files[path] = {"sha256": store.put_object(repo_type, repo, content), "size": len(content), "lfs": False,
                               "oid": git_blob_oid(content)}
            elif key == "lfsFile":
                blob = store.object_path(repo_type, repo, value["oid"])
                if not blob.exists():
                    raise HubError(400, DANGLING_LFS.format(path=path))
                size = blob.stat().st_size
                files[path] = {"sha256": value["oid"], "size": size, "lfs": True, "oid": git_blob_oid(lfs_pointer(value["oid"], size))}
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"cannot delete {path}: no such file", "EntryNotFound")
            elif key == "deletedFolder":
                for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                    del files[name]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        return files

    def _listing(self, files: dict, path: str, recursive: bool) -> list[dict]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, folders = [], set()
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    folders.add(folder)
            if recursive or len(rest) == 1:
                entries.append(self._entry(name, files[name]))
        entries.extend({"type": "directory", "path": folder, "size": 0, "oid": git_blob_oid(folder.encode())} for folder in sorted(folders))
        return entries

    def tree(self, type, repo, rev, path=None):
        state, _ = self._repo(self._type(type), repo)
        files = state["commits"][commit_of(state, rev)]["files"]
        path = (path or "").strip("/")
        if path and path not in files and not any(name.startswith(path + "/") for name in files):
            raise HubError(404, f"path {path} not found", "EntryNotFound")
        self._send_json(self._listing(files, path, self._flag("recursive")))

    def paths_info(self, type, repo, rev):
        state, _ = self._repo(self._type(type), repo)
        files = state["commits"][commit_of(state, rev)]["files"]
        body = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        answer = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                answer.append(self._entry(path, files[path]))
            elif any(name.startswith(path + "/") for name in files):
                answer.append({"type": "directory", "path": path, "size": 0, "oid": git_blob_oid(path.encode())})
        self._send_json(answer)

    def refs(self, type, repo):
        state, _ = self._repo(self._type(type), repo)
        answer = {
            "branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in state["branches"].items()],
            "tags": [{"name": name, "ref": f"refs/tags/{name}", "targetCommit": oid} for name, oid in state["tags"].items()],
            "converts": [],
        }
        if self._flag("include_prs"):
            answer["pullRequests"] = [{"name": number, "ref": f"refs/pr/{number}", "targetCommit": pull["oid"]}
                                      for number, pull in sorted(state["pulls"].items(), key=lambda item: int(item[0]))]
        self._send_json(answer)

    def list_commits(self, type, repo, rev):
        state, _ = self._repo(self._type(type), repo)
        oid, answer = commit_of(state, rev), []
        while oid is not None:
            commit = state["commits"][oid]
            answer.append({"id": oid, "title": commit["title"], "message": "", "date": commit["date"],
                           "authors": [{"user": commit["author"]}]})
            oid = commit["parent"]
        self._send_json(answer)

    def create_branch(self, type, repo, branch):
        repo_type = self._type(type)
        self._repo(repo_type, repo, write=True)
        body = self._json_body()
        with self.hub.store.lock:
            state = self.hub.store.load(repo_type, repo)
            if branch in state["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            state["branches"][branch] = commit_of(state, body.get("startingPoint") or "main")
            self.hub.store.save(repo_type, repo, state)
        self._send_json({})

    def resolve(self, prefix, repo, rev, path):
        repo_type = self._type(prefix)
        state, _ = self._repo(repo_type, repo)
        commit_id = commit_of(state, rev)
        file = state["commits"][commit_id]["files"].get(path)
        if file is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content_path = self.hub.store.object_path(repo_type, repo, file["sha256"])
        size = file["size"]
        headers = {"X-Repo-Commit": commit_id, "ETag": f'"{file["sha256"] if file["lfs"] else file["oid"]}"',
                   "Accept-Ranges": "bytes"}
        if file["lfs"]:
            headers.update({"X-Linked-Etag": f'"{file["sha256"]}"', "X-Linked-Size": str(size)})
        start, end, status = 0, size - 1, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and size:
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size:
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        with open(content_path, "rb") as handle:
            handle.seek(start)
            body = handle.read(end - start + 1) if size else b""
        self._send(status, body, "application/octet-stream", headers)
