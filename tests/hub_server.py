"""A real Hugging Face Hub-compatible HTTP server on loopback, for tests (no mocks).

The server is `olah <https://pypi.org/project/olah/>`_ (0.5.4), a self-hosted Hub mirror, run with
``[accessibility] offline = true`` so it never contacts huggingface.co and serves only local git
repositories found under ``<workdir>/mirrors/models/ORG/NAME`` (branch ``main``).

Usage::

    hub = start_local_hub(tmp_path)
    hub.add_repo("acme/tiny", folder)            # git repo committed on branch main
    with hub_env(hub, tmp_path / "hf-cache"):
        path = huggingface_hub.hf_hub_download("acme/tiny", "config.json")
        model = timm.create_model("hf-hub:acme/tiny", pretrained=True)
    hub.stop()

Findings (olah 0.5.4, huggingface_hub 2.4.0, checked by experiment):

* Start-up: the server answers HTTP about 0.8 s after ``olah-cli`` is spawned.
* Repositories can be added (and updated with a new commit) while the server runs. olah looks the
  git repository up on disk for every request, and a request for a repository that did not exist yet
  (answered 401) is not cached: adding it afterwards makes it downloadable at once. A new commit on
  ``main`` is served at once, too (``metadata-cache-ttl = 0`` is set anyway).
* A repository olah does not know is answered with **401**, which huggingface_hub turns into
  ``huggingface_hub.errors.RepositoryNotFoundError``. So is a repository whose branch is ``master``,
  and -- unlike the real Hub, which answers 404 (``EntryNotFoundError``) -- so is a file missing from a
  known repository. Consequence: timm's fallback from ``model.safetensors`` to ``pytorch_model.bin``
  (which catches only ``EntryNotFoundError``) fails, so a repository for ``timm.create_model`` must
  hold ``model.safetensors`` (``timm.models.save_for_hf(..., safe_serialization=True)``), and
  ``repo_exists`` is always False (it calls ``repo_info`` without a revision, see below).
* Served: ``hf_hub_download``, ``snapshot_download``, ``list_repo_files``, ``file_exists``,
  ``model_info(repo_id, revision="main")``. NOT served: ``model_info(repo_id)`` without a revision
  (``GET /api/models/ORG/NAME`` needs the upstream to find the latest commit, so it is 401 offline),
  and nothing that writes (``create_repo``, ``upload_file``, ``upload_folder``): olah is read-only.
* olah reads every file of 121..149 bytes as UTF-8 to check whether it is a git-lfs pointer. A file of
  that size that is not valid UTF-8 (a tiny binary file) makes every request about it fail with 500
  (``UnicodeDecodeError`` in olah), and huggingface_hub retries a 500 five times with back-off (about
  23 s) before it raises. :meth:`LocalHub.add_repo` therefore refuses such files (``ValueError``).
* ``HF_ENDPOINT`` and the other ``HF_*`` variables are read once, when ``huggingface_hub.constants``
  is imported. Setting the environment variable later has no effect in the running process: the
  module attributes must be patched as well (see :func:`hub_env`). In particular
  ``hf_hub_url``/``hf_hub_download`` build URLs from ``constants.HUGGINGFACE_CO_URL_TEMPLATE``, not from
  ``constants.ENDPOINT``, and the module-level functions (``huggingface_hub.model_info``,
  ``list_repo_files`` ...) are bound methods of one ``HfApi`` object created at import, whose
  ``endpoint`` attribute must be patched too. timm (``timm.create_model("hf-hub:ORG/NAME")``) calls
  ``huggingface_hub.hf_hub_download`` and so follows the same patches.
* Offline mode: with ``HF_HUB_OFFLINE=1`` (i.e. ``constants.HF_HUB_OFFLINE = True``; again the env
  var alone is not enough after import), ``hf_hub_download`` of a file that is not in the cache raises
  ``huggingface_hub.errors.LocalEntryNotFoundError`` (a subclass of ``EntryNotFoundError`` and of
  ``FileNotFoundError``) in under a millisecond, without any network request and without hanging. A
  file already in the cache is returned from the cache (timm loads a cached model the same way).
  ``HfApi`` calls (``model_info``, ``list_repo_files``) raise ``OfflineModeIsEnabled`` at once.
  ``hub_env(..., offline=True)`` sets this up.
* An ``HfApi()`` made inside ``hub_env`` takes the local endpoint; one made before keeps its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocalHub", "hub_env", "olah_available", "start_local_hub"]

OLAH_CLI = "olah-cli"
_REPO_TYPE_DIRS = {"model": "models", "dataset": "datasets", "space": "spaces"}
# A path that olah answers quickly (401 "Repository not found") without touching any repository and
# without logging a traceback (``GET /`` answers 500 in olah 0.5.4 because of a template bug).
_PROBE_PATH = "/api/models/local-hub-probe/ready/revision/main"


def olah_executable() -> str | None:
    """``olah-cli`` beside this Python (pip's scripts folder), else on PATH, else None."""
    beside = Path(sys.executable).with_name(OLAH_CLI)
    return str(beside) if beside.exists() else shutil.which(OLAH_CLI)


def olah_available() -> bool:
    """True when the ``olah-cli`` executable can be found."""
    return olah_executable() is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(repo_dir: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=repo_dir,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def _check_olah_can_serve(folder: Path) -> None:
    """Refuse files that olah 0.5.4 answers with 500: 121..149 bytes long and not valid UTF-8."""
    for path in folder.rglob("*"):
        if ".git" in path.relative_to(folder).parts or not path.is_file():
            continue
        if 120 < path.stat().st_size < 150:
            try:
                path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(
                    f"{path}: olah cannot serve a file of 121..149 bytes that is not UTF-8 (it parses it as a"
                    " git-lfs pointer and answers 500); make the file smaller or larger"
                ) from None


@dataclass
class LocalHub:
    """A running olah server that serves the git repositories under ``mirrors_path``."""

    endpoint: str
    port: int
    workdir: Path
    mirrors_path: Path
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def repo_dir(self, repo_id: str, repo_type: str = "model") -> Path:
        org, sep, name = repo_id.partition("/")
        if not sep or not org or not name or "/" in name:
            raise ValueError(f"repo_id must be 'ORG/NAME', got {repo_id!r}")
        return self.mirrors_path / _REPO_TYPE_DIRS[repo_type] / org / name

    def add_repo(self, repo_id: str, folder: Path, repo_type: str = "model") -> str:
        """Copy ``folder``'s files into the repository ``repo_id`` and commit them on branch ``main``.

        Works while the server runs. If the repository exists already, its files are replaced by those of
        ``folder`` in a new commit. Returns the commit's SHA (what the Hub calls the revision).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise NotADirectoryError(folder)
        _check_olah_can_serve(folder)
        repo_dir = self.repo_dir(repo_id, repo_type)
        if (repo_dir / ".git").is_dir():
            for child in repo_dir.iterdir():
                if child.name == ".git":
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            repo_dir.mkdir(parents=True, exist_ok=True)
            _git(repo_dir, "init", "-q")
            # `git init -b main` needs git >= 2.28; this works with any version.
            _git(repo_dir, "symbolic-ref", "HEAD", "refs/heads/main")
            _git(repo_dir, "config", "user.name", "bnnzoo tests")
            _git(repo_dir, "config", "user.email", "bnnzoo-tests@localhost")
        shutil.copytree(folder, repo_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
        _git(repo_dir, "add", "-A")
        _git(repo_dir, "commit", "-q", "--allow-empty", "-m", f"Update {repo_id}")
        return _git(repo_dir, "rev-parse", "HEAD")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            # The server runs in its own session: also end its `git cat-file` helpers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (urllib.error.URLError, OSError):
        return False


def _write_config(path: Path, port: int, repos_path: Path, mirrors_path: Path) -> None:
    path.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{repos_path.as_posix()}"\n'
        f'mirrors-path = ["{mirrors_path.as_posix()}"]\n'
        "metadata-cache-ttl = 0\n"
        "\n"
        "[accessibility]\n"
        "offline = true\n"
    )


def start_local_hub(workdir: Path, timeout: float = 60) -> LocalHub:
    """Start olah on a free loopback port, serving ``workdir/mirrors``; wait until it answers HTTP.

    Files written under ``workdir``: ``config.toml``, ``olah.log`` (stdout and stderr), ``logs/``
    (olah's own log), ``repos/`` (olah's cache) and ``mirrors/`` (the git repositories).
    Raises ``RuntimeError`` with the end of the log if the server does not answer within ``timeout``
    seconds, and ``FileNotFoundError`` if ``olah-cli`` is not installed.
    """
    exe = olah_executable()
    if exe is None:
        raise FileNotFoundError(f"{OLAH_CLI} not found on PATH (pip install olah)")
    workdir = Path(workdir).resolve()
    repos_path = workdir / "repos"
    mirrors_path = workdir / "mirrors"
    for path in (repos_path, mirrors_path / "models", workdir / "logs"):
        path.mkdir(parents=True, exist_ok=True)

    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        port = _free_port()
        config = workdir / "config.toml"
        _write_config(config, port, repos_path, mirrors_path)
        log_path = workdir / "olah.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [exe, "-c", str(config), "--log-path", str(workdir / "logs")],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        hub = LocalHub(
            endpoint=f"http://127.0.0.1:{port}",
            port=port,
            workdir=workdir,
            mirrors_path=mirrors_path,
            log_path=log_path,
            process=proc,
        )
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers_http(hub.endpoint + _PROBE_PATH):
                return hub
            time.sleep(0.1)
        exited = proc.poll() is not None
        hub.stop()
        # The free port may have been taken between probing and binding: try again with another one.
        if exited and attempts < 3 and time.monotonic() < deadline:
            continue
        state = f"exited with code {proc.returncode}" if exited else f"did not answer in {timeout:g} s"
        raise RuntimeError(f"olah ({hub.endpoint}) {state}. End of {log_path}:\n{hub.log_tail()}")


@contextlib.contextmanager
def hub_env(hub: LocalHub, cache_dir: Path, offline: bool = False) -> Iterator[Path]:
    """Point huggingface_hub (and so timm) at ``hub``, with a private cache; restore everything after.

    Sets the environment variables (for subprocesses and for code that reads them late) and patches the
    values that ``huggingface_hub.constants`` computed at import time, plus the endpoint of the shared
    ``HfApi`` behind the module-level functions. ``HF_HOME`` is ``cache_dir`` and ``HF_HUB_CACHE`` is
    ``cache_dir/hub``; no token is sent (``HF_TOKEN`` is removed and the token file is in ``cache_dir``).
    With ``offline=True``, ``HF_HUB_OFFLINE`` is on: see the module docstring for what that does.
    Yields the hub cache directory.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub.utils import _cache_assets, _cache_manager

    cache_dir = Path(cache_dir).resolve()
    hub_cache = cache_dir / "hub"
    hub_cache.mkdir(parents=True, exist_ok=True)
    endpoint = hub.endpoint.rstrip("/")
    home = str(cache_dir)

    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": home,
        "HF_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(cache_dir / "assets"),
        "HF_XET_CACHE": str(cache_dir / "xet"),
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_TOKEN": None,
        "HUGGING_FACE_HUB_TOKEN": None,
        "HUGGINGFACE_CO_STAGING": None,
        "TRANSFORMERS_OFFLINE": None,
    }
    attrs = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HUGGINGFACE_CO_URL_HOME": endpoint + "/",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HOME": home,
        "HF_HUB_CACHE": str(hub_cache),
        "HUGGINGFACE_HUB_CACHE": str(hub_cache),
        "HF_ASSETS_CACHE": str(cache_dir / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(cache_dir / "assets"),
        "HF_XET_CACHE": str(cache_dir / "xet"),
        "HF_TOKEN_PATH": str(cache_dir / "token"),
        "HF_STORED_TOKENS_PATH": str(cache_dir / "stored_tokens"),
        "HF_HUB_OFFLINE": offline,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": True,
        "CHECK_FOR_UPDATE_DONE_PATH": str(cache_dir / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(cache_dir / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(cache_dir / ".agent_harnesses.json"),
    }
    targets = [(constants, name, value) for name, value in attrs.items() if hasattr(constants, name)]
    targets.append((hf_api.api, "endpoint", endpoint))
    # Modules that did `from ..constants import NAME` keep their own copy.
    if hasattr(_cache_manager, "HF_HUB_CACHE"):
        targets.append((_cache_manager, "HF_HUB_CACHE", str(hub_cache)))
    if hasattr(_cache_assets, "HF_ASSETS_CACHE"):
        targets.append((_cache_assets, "HF_ASSETS_CACHE", str(cache_dir / "assets")))

    saved_env = {name: os.environ.get(name) for name in env}
    saved_attrs = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]
    try:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for obj, name, value in targets:
            setattr(obj, name, value)
        yield hub_cache
    finally:
        for obj, name, value in saved_attrs:
            setattr(obj, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
