"""Shared pytest fixtures for bnnzoo's tests."""

from __future__ import annotations

import os

import pytest
import torch
from hub_server import olah_available, start_local_hub

# The tests run tiny models, where one thread is fastest and timings don't depend on other load.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory):
    """A real Hub-compatible server (olah) on loopback, shared by the session: see tests/hub_server.py.

    Use a repo id of your own in each test (``hub.add_repo("ORG/NAME", folder)``) and point
    huggingface_hub at the server with ``hub_server.hub_env(hub, tmp_path / "hf")``.
    """
    if not olah_available():
        if os.environ.get("BNNZOO_REQUIRE_HUB"):  # set by .ci/run: in CI a missing server is a failure
            pytest.fail("olah-cli is not installed (pip install olah): the local Hub server needs it")
        pytest.skip("olah-cli is not installed (pip install olah): the local Hub server needs it")
    hub = start_local_hub(tmp_path_factory.mktemp("local_hub"))
    try:
        yield hub
    finally:
        hub.stop()
