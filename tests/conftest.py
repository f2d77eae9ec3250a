"""Shared fixtures: a sandbox to talk to over real HTTP, and the official clients in a virtualenv of its own.

- ``sandbox_server`` (session): one in-process ``SandboxServer`` with ``auto_create=True`` and the default
  (real) rate limits, shared by every test.
- ``sandbox`` (function): that server, reset (no objects, no stats, no faults), as a ``SandboxHandle``.
- ``sandbox_factory`` (function): ``sandbox_factory(**SandboxServer kwargs) -> SandboxHandle`` for tests that
  need their own world (a seed, a data file, ``auto_create=False``, other limits); stopped at teardown.
- ``official_clients`` (session): ``toloka-kit`` and ``huaweicloudsdkcpts`` installed in
  ``.cache/official-clients`` (built once, reused while it works), as an ``OfficialClients``.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("reconciler") is None:  # the package is not installed: use the work tree
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))  # ``helpers`` (tests/helpers/), under any import mode

from reconciler.sandbox import (  # noqa: E402
    DEFAULT_ACCESS_KEY,
    DEFAULT_CLOUD_PROJECT_ID,
    DEFAULT_IAM_TOKEN,
    DEFAULT_SECRET_KEY,
    DEFAULT_TOLOKA_TOKEN,
    SandboxAdmin,
    SandboxServer,
)

OFFICIAL_CLIENTS_DIR = ROOT / ".cache" / "official-clients"
OFFICIAL_CLIENTS_REQUIREMENTS = [
    "toloka-kit==1.2.3",
    "httpx<0.28",
    "cattrs<24",
    "attrs<24",
    "tenacity<9",
    "huaweicloudsdkcpts==3.1.219",
]


@dataclass
class SandboxHandle:
    """A running sandbox as tests see it: its URL, its credentials and its admin routes as methods."""

    server: SandboxServer
    admin: SandboxAdmin
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    cloud_project_id: str = DEFAULT_CLOUD_PROJECT_ID
    toloka_token: str = DEFAULT_TOLOKA_TOKEN
    iam_token: str = DEFAULT_IAM_TOKEN

    @classmethod
    def of(cls, server: SandboxServer) -> SandboxHandle:
        credentials = server.credentials
        return cls(
            server=server,
            admin=SandboxAdmin(server.url),
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            cloud_project_id=credentials.cloud_project_id,
            toloka_token=credentials.toloka_tokens[0] if credentials.toloka_tokens else "",
            iam_token=credentials.iam_tokens[0] if credentials.iam_tokens else "",
        )

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def toloka_headers(self) -> dict[str, str]:
        return {"Authorization": f"ApiKey {self.toloka_token}"}

    @property
    def perftest_headers(self) -> dict[str, str]:
        """IAM-token authentication, for tests that are not about signing."""
        return {"X-Auth-Token": self.iam_token}

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        return self.admin.objects()

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()

    def set_faults(self, spec: str | None) -> None:
        self.admin.set_faults(spec)

    def reset(self) -> None:
        self.admin.reset()

    def delete_object(self, kind: str, object_id: str | int) -> None:
        self.admin.delete_object(kind, object_id)

    def patch_object(self, kind: str, object_id: str | int, fields: dict[str, Any]) -> dict[str, Any]:
        return self.admin.patch_object(kind, object_id, fields)

    def add_pool(self, pool_id: str, *, default_overlap: int | None = None, status: str = "CLOSED") -> dict[str, Any]:
        return self.admin.add_pool(pool_id, default_overlap=default_overlap, status=status)

    def add_test_project(self, project_id: int, name: str) -> dict[str, Any]:
        return self.admin.add_test_project(project_id, name)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(auto_create=True) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxHandle]:
    handle = SandboxHandle.of(sandbox_server)
    handle.reset()
    handle.set_faults(None)
    try:
        yield handle
    finally:
        handle.admin.close()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    started: list[SandboxHandle] = []

    def start(**kwargs: Any) -> SandboxHandle:
        handle = SandboxHandle.of(SandboxServer(**kwargs).start())
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.admin.close()
        handle.server.stop()


# --- the official clients -----------------------------------------------------------------------------------


@dataclass
class OfficialClients:
    """A Python with toloka-kit and huaweicloudsdkcpts; ``run`` executes a script in it."""

    python: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, script: str, args: Any = None, *, timeout: float = 120) -> Any:
        """Run ``script`` with ``args`` as JSON on stdin; return what it printed as JSON on its last line."""
        completed = subprocess.run(
            [str(self.python), "-c", textwrap.dedent(script)],
            input=json.dumps(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if completed.returncode != 0:
            raise AssertionError(f"client script failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
        lines = completed.stdout.strip().splitlines()
        if not lines:
            raise AssertionError(f"client script printed nothing; stderr:\n{completed.stderr[-4000:]}")
        return json.loads(lines[-1])


def _clients_work(python: Path, env: dict[str, str]) -> bool:
    if not python.exists():
        return False
    probe = "import toloka.client, huaweicloudsdkcpts.v1, huaweicloudsdkcore.signer.signer"
    return subprocess.run([str(python), "-c", probe], capture_output=True, env=env, timeout=120).returncode == 0


def _build_official_clients(target: Path, env: dict[str, str]) -> None:
    if target.exists():
        shutil.rmtree(target)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(target)],
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", *OFFICIAL_CLIENTS_REQUIREMENTS],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"building the official clients' virtualenv timed out: {' '.join(step)}", pytrace=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            pytest.fail(
                "could not build the official clients' virtualenv in .cache/official-clients (is PyPI "
                f"reachable?)\ncommand: {' '.join(step)}\n{tail}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def official_clients() -> OfficialClients:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    python = OFFICIAL_CLIENTS_DIR / "bin" / "python"
    OFFICIAL_CLIENTS_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(OFFICIAL_CLIENTS_DIR.parent / "official-clients.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building it right now
        if not _clients_work(python, env):
            _build_official_clients(OFFICIAL_CLIENTS_DIR, env)
            if not _clients_work(python, env):
                pytest.fail(
                    "the official clients' virtualenv was built but toloka-kit or huaweicloudsdkcpts does not import",
                    pytrace=False,
                )
    return OfficialClients(python=python, env=env)
