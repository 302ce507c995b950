"""The one check of a Hub repository id: ``ORG/NAME``, both parts non-empty."""

from __future__ import annotations

from bnnzoo.errors import HubError

__all__ = ["check_repo_id", "is_repo_id"]


def is_repo_id(text: str) -> bool:
    """Whether ``text`` looks like ``ORG/NAME`` (one slash, nothing empty around it)."""
    return text.count("/") == 1 and all(text.split("/"))


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` itself, or a :class:`HubError` saying it must look like ``ORG/NAME``."""
    if not is_repo_id(repo_id):
        raise HubError(f"repo id '{repo_id}' must look like ORG/NAME")
    return repo_id
