"""Upload a staged folder to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path

from bnnzoo.errors import HubError
from bnnzoo.hub.repo_id import check_repo_id

__all__ = ["upload_repo"]

REQUIRED = ("config.json", "model.safetensors", "README.md")


def upload_repo(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload bnnzoo model",
) -> str:
    """Create ``repo_id`` if needed (``exist_ok=True``) and upload ``folder`` to it; return the commit URL.

    ``token`` defaults to huggingface_hub's (``HF_TOKEN`` or ``hf auth login``). Every failure (not
    logged in, no write access, no network, a read-only endpoint) raises :class:`HubError`.
    """
    from huggingface_hub import HfApi

    from bnnzoo import __version__
    from bnnzoo.hub.load import hub_error

    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"{folder}: no such folder to upload")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise HubError(f"{folder}: not a staged model folder (missing {', '.join(missing)}); stage it with stage_repo")
    check_repo_id(repo_id)
    api = HfApi(token=token, library_name="bnnzoo", library_version=__version__)
    step = "create_repo"
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        step = "upload_folder"
        commit = api.upload_folder(
            repo_id=getattr(url, "repo_id", repo_id),
            folder_path=str(folder),
            repo_type="model",
            commit_message=commit_message,
        )
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"hf-hub:{repo_id} ({step}): the Hub refused ({status}): log in with `hf auth login`, set HF_TOKEN "
                "or pass token=, with write access to the organisation"
            ) from None
        error = hub_error(exc, f"hf-hub:{repo_id}", step)
        if error is None:
            raise HubError(f"hf-hub:{repo_id} ({step}): upload failed: {type(exc).__name__}: {exc}") from None
        raise HubError(f"{error}; nothing was uploaded" if step == "create_repo" else str(error)) from None
    return str(getattr(commit, "commit_url", commit))
