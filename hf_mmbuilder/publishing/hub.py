"""The Hub side of publishing: repo ids, and one commit that uploads a built repo folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional


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


def _redact(message: str, token: Optional[str]) -> str:
    return message.replace(token, "***") if token else message


def push_folder(folder: Path, repo_id: str, *, names: Optional[re.Pattern] = None, prune: bool = False,
                token: Optional[str] = None, private: bool = False, revision: Optional[str] = None,
                commit_message: str = "Publish dataset with hf_mmbuilder"):
    """Upload a built repo folder to the Hub in one commit; returns ``(repo_url, commit, changed)``.

    Creates the dataset repo (and branch ``revision``) if needed, refuses ``private=True`` for an
    existing public repo (it would stay public), adds every file of ``folder`` and, in the same
    commit, deletes the remote files the folder does not have whose path fully matches ``names``
    (the stale shards and plots of what is published, see :func:`published_names`); every other
    file of the revision stays. ``prune=True`` deletes every remote file the folder does not have
    (``.gitattributes`` excepted). Unchanged files are not re-uploaded; when nothing changed, no
    commit is made and ``changed`` is False. Failures raise :class:`PublishError` naming the step;
    the token is never part of a message.

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
        info = api.create_commit(repo_id, operations, commit_message=commit_message, repo_type="dataset",
                                 revision=branch, parent_commit=head)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            reason = "the Hub rejected the token (401 Unauthorized): check --token / HF_TOKEN and its write access"
        else:
            reason = f"{status}: {str(error).splitlines()[0]}"
        raise PublishError(_redact(f"publishing {repo_id!r} failed while {step}: {reason}; "
                                   "nothing was committed, retry when fixed", token)) from None
    except (httpx2.HTTPError, OSError, RuntimeError) as error:
        # huggingface_hub wraps a failed LFS upload in a RuntimeError whose cause is the real error.
        cause = error.__cause__ if isinstance(error, RuntimeError) and error.__cause__ is not None else None
        detail = f"{type(error).__name__}: {error}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
        raise PublishError(_redact(f"publishing {repo_id!r} failed while {step}: {detail}; "
                                   "nothing was committed, retry", token)) from None
    return repo_url, info.oid, info.oid != head
