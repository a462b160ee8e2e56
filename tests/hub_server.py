"""A local Hugging Face Hub protocol server for the publisher tests.

It implements the endpoints that ``huggingface_hub`` and ``datasets`` call to create a repo, upload
files through the legacy LFS protocol (preupload, LFS batch + PUT), commit them with one NDJSON
request, list them (tree, paths-info, refs), validate a card's YAML, and download them (resolve),
so the real client code runs end to end. Repos live on disk under ``root``: content-addressed
blobs plus one JSON state file per repo, replaced atomically when a commit is applied, so a failed
or interrupted commit never becomes visible.

Only loopback addresses are served. Faults are injected through :attr:`HubServer.faults` (or by a
client process with ``POST /_test/faults``): ``drop_lfs_upload`` (close the connection half-way
through an LFS PUT) and ``commit_500`` (answer 500 to a commit), each a count of requests to break.

Example:
    >>> with HubServer(tmp_path, token="hf_test") as server:  # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = server.url
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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


class RepoStore:
    """Repos on disk: ``objects/<sha256>`` blobs and ``repos/<type>/<id>.json`` states."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
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

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256

    def put_object(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.object_path(sha256)
        if not path.exists():
            temporary = self.root / "staging" / f"{sha256}.{threading.get_ident()}"
            temporary.write_bytes(content)
            os.replace(temporary, path)
        return sha256

    def create(self, repo_type: str, repo_id: str, private: bool) -> dict:
        sha256 = self.put_object(GITATTRIBUTES)
        files = {".gitattributes": {"sha256": sha256, "size": len(GITATTRIBUTES), "lfs": False,
                                    "oid": git_blob_oid(GITATTRIBUTES)}}
        commit = self.commit_oid(None, files, "initial commit")
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        state = {"private": private, "created": now, "branches": {"main": commit}, "tags": {},
                 "commits": {commit: {"parent": None, "files": files, "title": "initial commit", "date": now}}}
        self.save(repo_type, repo_id, state)
        return state

    @staticmethod
    def commit_oid(parent: str | None, files: dict, title: str) -> str:
        payload = json.dumps([parent, files, title, time.time_ns()], sort_keys=True).encode()
        return hashlib.sha1(payload).hexdigest()


class HubServer:
    """The server: start it (or use it as a context manager), point ``HF_ENDPOINT`` at :attr:`url`.

    ``token`` is the only write token accepted; any other bearer token gets a 401.
    """

    def __init__(self, root: Path, token: str = "hf_test_token", idle_timeout: float = 600.0):
        self.store = RepoStore(root)
        self.token = token
        self.faults = {"drop_lfs_upload": 0, "commit_500": 0}
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

    def commits(self, repo_type: str, repo_id: str, branch: str = "main") -> list[str]:
        """Commit ids of a branch, newest first (empty when the repo does not exist)."""
        state = self.store.load(repo_type, repo_id)
        if state is None or branch not in state["branches"]:
            return []
        chain, oid = [], state["branches"][branch]
        while oid is not None:
            chain.append(oid)
            oid = state["commits"][oid]["parent"]
        return chain

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision, path -> content."""
        state = self.store.load(repo_type, repo_id)
        commit = state["commits"][state["branches"].get(revision, revision)]
        return {path: self.store.object_path(entry["sha256"]).read_bytes() for path, entry in commit["files"].items()}


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


API_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"


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
            ("POST", r"/_test/faults", self.set_faults),
            ("GET", API_REPO + r"(?:/revision/(?P<rev>[^/]+))?", self.repo_info),
            ("POST", API_REPO + r"/preupload/(?P<rev>[^/]+)", self.preupload),
            ("POST", API_REPO + r"/commit/(?P<rev>[^/]+)", self.commit),
            ("GET", API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self.tree),
            ("POST", API_REPO + r"/paths-info/(?P<rev>[^/]+)", self.paths_info),
            ("GET", API_REPO + r"/refs", self.refs),
            ("GET", API_REPO + r"/commits/(?P<rev>[^/]+)", self.list_commits),
            ("POST", API_REPO + r"/branch/(?P<branch>.+)", self.create_branch),
            ("POST", r"/(?P<prefix>datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self.lfs_upload),
            ("GET", r"/(?P<prefix>datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
            ("HEAD", r"/(?P<prefix>datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
        ]

    def _dispatch(self, method: str) -> None:
        self.hub._last_request = time.monotonic()
        split = urlsplit(self.path)
        self.query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        self.hub.requests.append(f"{method} {split.path}")
        try:
            for route_method, pattern, handler in self._routes():
                match = re.fullmatch(pattern, split.path)
                if route_method == method and match:
                    groups = {key: unquote(value) if value else value for key, value in match.groupdict().items()}
                    handler(**groups)
                    return
            raise HubError(404, f"no route for {method} {split.path}")
        except HubError as error:
            self._send_json({"error": error.message, **error.extra}, error.status, error_code=error.code)
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    # --- plumbing -------------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise HubError(413, "request too large")
        return self.rfile.read(length) if length else b""

    def _json_body(self):
        body = self._body()
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError:
            raise HubError(400, "request body is not JSON")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload, status: int = 200, error_code: str | None = None) -> None:
        headers = {"X-Error-Code": error_code, "X-Error-Message": payload.get("error", "")} if error_code else None
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _authorize(self, write: bool) -> None:
        header = self.headers.get("Authorization")
        if header is None:
            if write:
                raise HubError(401, "You must be authenticated to do this", "Unauthorized")
            return
        if header != f"Bearer {self.hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header", "Unauthorized")

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> dict:
        self._authorize(write)
        state = self.hub.store.load(repo_type, repo_id)
        if state is None or (state["private"] and self.headers.get("Authorization") is None):
            raise HubError(404, f"Repository Not Found for url: {self.path}", "RepoNotFound")
        return state

    @staticmethod
    def _commit_of(state: dict, revision: str) -> str:
        revision = unquote(revision)
        if revision in state["branches"]:
            return state["branches"][revision]
        if revision in state["tags"]:
            return state["tags"][revision]
        if revision in state["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _type(plural_or_prefix: str | None) -> str:
        return {"models": "model", "datasets": "dataset", "spaces": "space", None: "model",
                "datasets/": "dataset", "spaces/": "space"}[plural_or_prefix]

    def _entry(self, path: str, file: dict) -> dict:
        entry = {"type": "file", "path": path, "size": file["size"], "oid": file["oid"]}
        if file["lfs"]:
            entry["lfs"] = {"oid": file["sha256"], "size": file["size"], "pointerSize": len(lfs_pointer(file["sha256"], file["size"]))}
        return entry

    # --- endpoints ------------------------------------------------------------------------------

    def create_repo(self):
        self._authorize(write=True)
        body = self._json_body()
        repo_type = body.get("type") or "model"
        name, organization = body.get("name"), body.get("organization")
        if repo_type not in REPO_TYPES or not name or not organization:
            raise HubError(400, "create needs 'name', 'organization' and a valid 'type'")
        repo_id = f"{organization}/{name}"
        if not re.fullmatch(r"[\w.-]{1,96}/[\w.-]{1,96}", repo_id) or ".." in repo_id:
            raise HubError(400, f"invalid repo name {repo_id!r}")
        url = f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self.hub.store.lock:
            for other in REPO_TYPES:
                if self.hub.store.load(other, repo_id) is not None:
                    existing = f"{self.hub.url}/{URL_PREFIXES[other]}{repo_id}"
                    raise HubError(409, f"You already created this {other} repo", "RepoExists", {"url": existing})
            self.hub.store.create(repo_type, repo_id, bool(body.get("private")))
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def set_faults(self):
        body = self._json_body()
        unknown = set(body) - set(self.hub.faults)
        if unknown:
            raise HubError(400, f"unknown faults {sorted(unknown)}")
        self.hub.faults.update({key: int(value) for key, value in body.items()})
        self._send_json(dict(self.hub.faults))

    def validate_yaml(self):
        body = self._json_body()
        errors = validate_card_yaml(body.get("content", ""))
        if errors:
            self._send(400, "\n".join(errors).encode(), "text/plain")
        else:
            self._send_json({"errors": [], "warnings": []})

    def repo_info(self, type, repo, rev=None):
        repo_type = self._type(type)
        state = self._repo(repo_type, repo)
        commit_id = self._commit_of(state, rev or "main")
        files = state["commits"][commit_id]["files"]
        card_data = None
        if "README.md" in files:
            text = self.hub.store.object_path(files["README.md"]["sha256"]).read_text()
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
        state = self._repo(repo_type, repo, write=True)
        files = state["commits"][self._commit_of(state, rev)]["files"]
        answer = []
        for item in self._json_body().get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = item["path"].lower().endswith(LFS_EXTENSIONS) or item["size"] > REGULAR_FILE_LIMIT or b"\x00" in sample
            existing = files.get(item["path"])
            oid = None if existing is None else (existing["sha256"] if existing["lfs"] else existing["oid"])
            answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answer, "commitOid": self._commit_of(state, rev)})

    def lfs_batch(self, prefix, repo):
        self._repo(self._type(prefix), repo, write=True)
        body = self._json_body()
        objects = []
        for item in body.get("objects", []):
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if not self.hub.store.object_path(item["oid"]).exists():
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{item['oid']}?size={item['size']}", "expires_in": 3600}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), "application/vnd.git-lfs+json")

    def lfs_upload(self, oid):
        length = int(self.headers.get("Content-Length") or 0)
        if self.hub.faults["drop_lfs_upload"] > 0:
            self.hub.faults["drop_lfs_upload"] -= 1
            self.rfile.read(length // 2)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        content = self.rfile.read(length)
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not match oid {oid}")
        self.hub.store.put_object(content)
        self._send(200, b"", "text/plain", {"ETag": f'"{oid}"'})

    def commit(self, type, repo, rev):
        repo_type = self._type(type)
        state = self._repo(repo_type, repo, write=True)
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        if self.hub.faults["commit_500"] > 0:
            self.hub.faults["commit_500"] -= 1
            raise HubError(500, "Internal Error - We're working hard to fix this as soon as possible!")
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        branch = unquote(rev)
        if branch not in state["branches"]:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        store = self.hub.store
        with store.lock:
            state = store.load(repo_type, repo)
            parent = state["branches"][branch]
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(state["commits"][parent]["files"])
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file":
                    content = base64.b64decode(value["content"])
                    files[path] = {"sha256": store.put_object(content), "size": len(content), "lfs": False, "oid": git_blob_oid(content)}
                elif key == "lfsFile":
                    if not store.object_path(value["oid"]).exists():
                        raise HubError(400, f"LFS object {value['oid']} of {path} was not uploaded")
                    size = store.object_path(value["oid"]).stat().st_size
                    files[path] = {"sha256": value["oid"], "size": size, "lfs": True, "oid": git_blob_oid(lfs_pointer(value["oid"], size))}
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"cannot delete {path}: no such file", "EntryNotFound")
                elif key == "deletedFolder":
                    for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                        del files[name]
                else:
                    raise HubError(400, f"unknown commit operation {key!r}")
            oid = store.commit_oid(parent, files, header.get("summary", ""))
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            state["commits"][oid] = {"parent": parent, "files": files, "title": header.get("summary", ""), "date": now}
            state["branches"][branch] = oid
            store.save(repo_type, repo, state)
        self._send_json({"commitUrl": f"{self.hub.url}/{URL_PREFIXES[repo_type]}{repo}/commit/{oid}", "commitOid": oid,
                         "success": True, "pullRequestUrl": None})

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
        state = self._repo(self._type(type), repo)
        files = state["commits"][self._commit_of(state, rev)]["files"]
        path = (path or "").strip("/")
        if path and path not in files and not any(name.startswith(path + "/") for name in files):
            raise HubError(404, f"path {path} not found", "EntryNotFound")
        self._send_json(self._listing(files, path, self.query.get("recursive") in ("1", "true", "True")))

    def paths_info(self, type, repo, rev):
        state = self._repo(self._type(type), repo)
        files = state["commits"][self._commit_of(state, rev)]["files"]
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
        state = self._repo(self._type(type), repo)
        self._send_json({
            "branches": [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid} for name, oid in state["branches"].items()],
            "tags": [{"name": name, "ref": f"refs/tags/{name}", "targetCommit": oid} for name, oid in state["tags"].items()],
            "converts": [],
        })

    def list_commits(self, type, repo, rev):
        state = self._repo(self._type(type), repo)
        oid, answer = self._commit_of(state, rev), []
        while oid is not None:
            commit = state["commits"][oid]
            answer.append({"id": oid, "title": commit["title"], "message": "", "date": commit["date"],
                           "authors": [{"user": "test"}]})
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
            state["branches"][branch] = self._commit_of(state, body.get("startingPoint") or "main")
            self.hub.store.save(repo_type, repo, state)
        self._send_json({})

    def resolve(self, prefix, repo, rev, path):
        state = self._repo(self._type(prefix), repo)
        commit_id = self._commit_of(state, rev)
        file = state["commits"][commit_id]["files"].get(path)
        if file is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        content_path = self.hub.store.object_path(file["sha256"])
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

