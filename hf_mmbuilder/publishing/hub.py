"""The Hub side of publishing: repo ids, and one commit that uploads a built repo folder.

The commit tells the truth under faults: a lost answer is followed by reading the branch head, a
429 is retried after the Hub's ``Retry-After``, files the Hub refuses are named, and an endpoint
without Xet storage gets the LFS protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

logger = logging.getLogger("hf_mmbuilder")


class PublishError(RuntimeError):
    """Publishing to the Hub failed; the message says at which step and why (never the token)."""


def check_repo_id(repo_id: str) -> str:
    """Validate a Hub dataset repo id (``namespace/name``) and return it.

    Example:
        >>> check_repo_id("my-org/llava-clean")
        'my-org/llava-clean'
        >>> check_repo_id("my org/llava")
        Traceback (most recent call last):
        ...
        ValueError: repo_id 'my org/llava' is not valid: ...
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id {repo_id!r} is not valid: use 'namespace/name' (your user or organization, then the name)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"repo_id {repo_id!r} is not valid: {error}") from None
    return repo_id


# Commits answered 429 are retried this many times at most, waiting what the Hub's Retry-After says
# (exponential backoff without one); a longer wait than MAX_COMMIT_WAIT fails at once instead.
COMMIT_RETRIES = 5
MAX_COMMIT_WAIT = 60.0
FIRST_COMMIT_WAIT = 1.0
LFS_BATCH_ERROR = re.compile(r"Encountered error for file with OID ([0-9a-f]{64}): `(.*)")
# Serializes the switch of huggingface_hub's process-wide Xet flag (see _lfs_without_xet).
_XET_SWITCH = threading.Lock()


def _redact(message: str, token: Optional[str]) -> str:
    return message.replace(token, "***") if token else message


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _git_blob_oid(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _holds_commit(api, repo_id: str, revision: str, folder: Path, added: Iterable[str], deleted: Iterable[str]) -> bool:
    """Whether ``revision`` holds exactly this publish's files: every added file with the folder's
    content (LFS sha256 or git blob id) and none of the deleted ones."""
    from huggingface_hub.hf_api import RepoFile

    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision,
                                                                 recursive=True) if isinstance(entry, RepoFile)}
    for path in added:
        entry = remote.get(path)
        if entry is None:
            return False
        if entry.lfs is not None:
            if entry.lfs.sha256 != _sha256(folder / path):
                return False
        elif entry.blob_id != _git_blob_oid(folder / path):
            return False
    return not any(path in remote for path in deleted)


def _after_lost_answer(api, repo_id: str, branch: str, parent: str, folder: Path, operations) -> tuple[Optional[str], str]:
    """What became of a commit whose answer was lost: ``(commit, what happened)``.

    The branch head is read and compared with the parent the commit was sent with: unchanged means
    nothing was committed; moved to a tree holding exactly this publish's files means the commit
    was applied (``commit`` is then the new head); anything else means another commit moved it.
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd

    try:
        now = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
        if now == parent:
            return None, f"nothing was committed (branch {branch!r} is still at {parent[:12]}), retry"
        added = [op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)]
        deleted = [op.path_in_repo for op in operations if not isinstance(op, CommitOperationAdd)]
        if _holds_commit(api, repo_id, now, folder, added, deleted):
            return now, f"the commit was applied (branch {branch!r} is now at {now[:12]})"
    except (httpx2.HTTPError, OSError) as error:
        return None, (f"whether the commit was applied is unknown: branch {branch!r} could not be read "
                      f"({type(error).__name__}: {_first_line(error)}); "
                      "re-run publish, it converges without a duplicate commit")
    return None, (f"this publish's commit was not applied: another commit moved branch {branch!r} "
                  f"from {parent[:12]} to {now[:12]}; retry")


def _retry_after(response) -> Optional[float]:
    value = (response.headers.get("Retry-After") or "").strip() if response is not None else ""
    return float(value) if value.isdigit() else None


def _uses_xet() -> bool:
    # huggingface_hub's own rule (utils._runtime.is_xet_available): hf_xet installed and not disabled.
    import importlib.util

    from huggingface_hub import constants

    return not constants.HF_HUB_DISABLE_XET and importlib.util.find_spec("hf_xet") is not None


@contextlib.contextmanager
def _lfs_without_xet(api, repo_id: str, branch: str):
    """Upload through the LFS protocol when the endpoint offers no Xet storage.

    With ``hf_xet`` installed, ``huggingface_hub`` uploads through Xet and, when the endpoint has
    none (its ``xet-write-token`` answers 404), fails instead of falling back. So the endpoint is
    asked first; without Xet, the process-wide switch ``constants.HF_HUB_DISABLE_XET`` (the one the
    ``HF_HUB_DISABLE_XET`` variable sets) is on for this upload and restored after.
    """
    from urllib.parse import quote

    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    if not _uses_xet():
        yield
        return
    url = f"{api.endpoint}/api/datasets/{repo_id}/xet-write-token/{quote(branch, safe='')}"
    if get_session().get(url, headers=build_hf_headers(token=api.token)).status_code != 404:
        yield
        return
    logger.warning("%s offers no Xet storage (404 on xet-write-token): uploading %s through the LFS protocol",
                   api.endpoint, repo_id)
    with _XET_SWITCH:
        saved, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
        try:
            yield
        finally:
            constants.HF_HUB_DISABLE_XET = saved


def _lfs_refusal(error: ValueError, operations) -> Optional[str]:
    """The files and reasons of huggingface_hub's "LFS batch API returned errors" ValueError, or None."""
    from huggingface_hub import CommitOperationAdd

    found = LFS_BATCH_ERROR.findall(str(error))
    if not str(error).startswith("LFS batch API returned errors") or not found:
        return None
    paths = {op.upload_info.sha256.hex(): op.path_in_repo for op in operations
             if isinstance(op, CommitOperationAdd) and op.upload_info.is_hashed}
    return "; ".join(f"{paths.get(oid, f'the file with sha256 {oid}')}: {message}" for oid, message in found)


def _commit(api, repo_id: str, operations, *, branch: str, head: str, commit_message: str):
    """``create_commit``, retried when the Hub answers 429 (waiting its Retry-After, bounded).

    A refused commit was not applied, and ``parent_commit`` makes any duplicate impossible (a second
    commit on the same parent is refused with 412), so retrying is safe.
    """
    from huggingface_hub.errors import HfHubHTTPError

    wait = FIRST_COMMIT_WAIT
    for attempt in range(COMMIT_RETRIES + 1):
        try:
            return api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="dataset",
                                     revision=branch, parent_commit=head)
        except HfHubHTTPError as error:
            response = error.response
            # Only the commit itself: huggingface_hub already retries a 429 on preupload, LFS batch and PUT.
            if response is None or response.status_code != 429 or "/commit/" not in str(response.url):
                raise
            asked = _retry_after(response)
            if asked is not None and asked > MAX_COMMIT_WAIT:
                raise _RateLimited(f"the Hub rate-limits commits (429) and asks to wait {asked:.0f} s, more than "
                                   f"publish waits ({MAX_COMMIT_WAIT:.0f} s)") from None
            if attempt == COMMIT_RETRIES:
                raise _RateLimited(f"the Hub rate-limited the commit (429) {attempt + 1} times in a row") from None
            pause = asked if asked is not None else wait
            logger.warning("%s: the Hub rate-limited the commit (429); retrying in %.0f s (%d of %d)",
                           repo_id, pause, attempt + 1, COMMIT_RETRIES)
            time.sleep(pause)
            wait = min(wait * 2, MAX_COMMIT_WAIT)


class _RateLimited(Exception):
    """The commit was refused with 429 more, or longer, than publish waits."""


def push_folder(folder: Path, repo_id: str, *, names: Optional[re.Pattern] = None, prune: bool = False,
                token: Optional[str] = None, private: Optional[bool] = None, revision: Optional[str] = None,
                commit_message: str = "Publish dataset with hf_mmbuilder"):
    """Upload a built repo folder to the Hub in one commit; returns ``(repo_url, commit, changed)``.

    Creates the dataset repo (and branch ``revision``) if needed, with the namespace's default
    visibility unless ``private`` says (as ``push_to_hub``), refuses ``private=True`` for an
    existing public repo (it would stay public), adds every file of ``folder`` and, in the same
    commit, deletes the remote files the folder does not have whose path fully matches ``names``
    (the stale shards and plots of what is published, see :func:`published_names`); every other
    file of the revision stays. ``prune=True`` deletes every remote file the folder does not have
    (``.gitattributes`` excepted). Unchanged files are not re-uploaded; when nothing changed, no
    commit is made and ``changed`` is False.

    Uploads go through Xet when the endpoint offers it and through LFS otherwise. A commit answered
    429 is retried after the Hub's ``Retry-After`` (at most :data:`COMMIT_RETRIES` times, waits up
    to :data:`MAX_COMMIT_WAIT` s). When the answer to the commit is lost (connection dropped, 5xx),
    the branch head is read before anything is said: the commit may have been applied, and then
    this returns it. Failures raise :class:`PublishError` naming the step (and the files the Hub
    refused) and whether anything was committed; the token is never part of a message.

    Example:
        >>> push_folder(Path("build"), "my-org/llava-clean")  # doctest: +SKIP
        ('https://huggingface.co/datasets/my-org/llava-clean', '3f2a...', True)
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    check_repo_id(repo_id)
    api = HfApi(token=token)
    branch = revision or "main"
    step = "creating the repo"
    head, operations = None, []

    def failed(reason: str, outcome: str = "nothing was committed, retry when fixed") -> PublishError:
        return PublishError(_redact(f"publishing {repo_id!r} failed while {step}: {reason}; {outcome}", token))

    try:
        repo_url = str(api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True))
        step = "reading the repo"
        try:
            existing = api.repo_info(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            for other in ("model", "space"):
                if api.repo_exists(repo_id, repo_type=other):
                    raise ValueError(
                        f"repo_id {repo_id!r} is already a {other} repo; a dataset cannot be published under "
                        f"that name: choose another repo_id") from None
            raise
        if private and existing.private is False:
            raise ValueError(f"private=True but the dataset repo {repo_id!r} already exists and is public: "
                             "make it private on the Hub first, or publish with private=False")
        if branch != "main":
            step = f"creating branch {branch!r}"
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        step = "listing the repo"
        head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
        remote_files = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head))
        local_files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(folder / path)) for path in local_files]
        stale = sorted(remote_files - set(local_files) - {".gitattributes"})
        operations += [CommitOperationDelete(path_in_repo=path) for path in stale
                       if prune or (names is not None and names.fullmatch(path))]
        step = "uploading and committing"
        with _lfs_without_xet(api, repo_id, branch):
            info = _commit(api, repo_id, operations, branch=branch, head=head, commit_message=commit_message)
        return repo_url, info.oid, info.oid != head
    except _RateLimited as error:
        raise failed(str(error), "nothing was committed, retry later") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            raise failed("the Hub rejected the token (401 Unauthorized): check --token / HF_TOKEN and its write access") from None
        reason = f"{status}: {_first_line(error)}"
        if step != "uploading and committing" or status is None or status < 500:
            raise failed(reason) from None
        commit, outcome = _after_lost_answer(api, repo_id, branch, head, folder, operations)
    except ValueError as error:
        refused = _lfs_refusal(error, operations) if step == "uploading and committing" else None
        if refused is None:
            raise
        raise failed(f"the Hub refused to store {refused}") from None
    except (httpx2.HTTPError, OSError, RuntimeError) as error:
        # huggingface_hub wraps a failed LFS upload in a RuntimeError whose cause is the real error.
        cause = error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ is not None else None
        reason = f"{type(error).__name__}: {error}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
        if step != "uploading and committing":
            raise failed(reason, "nothing was committed, retry") from None
        commit, outcome = _after_lost_answer(api, repo_id, branch, head, folder, operations)
    if commit is None:
        raise failed(reason, outcome) from None
    logger.warning(_redact(f"{repo_id}: the answer to the commit was lost ({reason}), but {outcome}", token))
    return repo_url, commit, True
