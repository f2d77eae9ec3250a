"""Who may use the sandbox's admin routes, and what a bind beyond loopback says it exposes.

The admin routes hand out the sandbox's credentials (``/_sandbox/info``) and rewrite its world; started with
``--host 0.0.0.0`` the sandbox must not give them to other machines unless told to.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.sandbox import SandboxServer
from reconciler.sandbox.app import build_app

ROOT = Path(__file__).resolve().parents[2]
ANOTHER_MACHINE = ("192.0.2.10", 40000)  # TEST-NET-1: never this machine


@pytest.fixture
def open_sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer(host="0.0.0.0", port=0)
    with server:
        yield server


def from_another_machine(server: SandboxServer, path: str) -> httpx.Response:
    """A request as the sandbox sees one from another machine: the same application, a remote peer address."""
    assert server.runtime is not None
    transport = httpx.ASGITransport(app=build_app(server.runtime), client=ANOTHER_MACHINE)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            return await client.get(path)

    return asyncio.run(get())


def test_admin_routes_refuse_a_client_on_another_machine(open_sandbox: SandboxServer) -> None:
    refused = from_another_machine(open_sandbox, "/_sandbox/info")

    assert refused.status_code == 403
    assert "--expose-admin" in refused.json()["error"]
    assert "secret" not in refused.text.lower() and "SANDBOXSK" not in refused.text


def test_admin_routes_answer_a_client_on_this_machine(open_sandbox: SandboxServer) -> None:
    answer = httpx.get(f"http://127.0.0.1:{open_sandbox.port}/_sandbox/info", timeout=5)

    assert answer.status_code == 200
    assert answer.json()["credentials"]["access_key"] == "SANDBOXAK"


def test_the_apis_still_answer_another_machine(open_sandbox: SandboxServer) -> None:
    answer = from_another_machine(open_sandbox, "/api/v1/task-suites?pool_id=1")

    assert answer.status_code == 401  # the API itself, asking for credentials, not the admin refusal
    assert "--expose-admin" not in answer.text


def test_expose_admin_lets_another_machine_in() -> None:
    with SandboxServer(host="0.0.0.0", port=0, admin_anywhere=True) as server:
        assert from_another_machine(server, "/_sandbox/info").status_code == 200


def test_serve_beyond_loopback_says_what_it_exposes() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.sandbox", "serve", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().startswith("sandbox listening on http://0.0.0.0:")
        warning = process.stderr.readline() + process.stderr.readline()
        assert "other machines can use both emulated APIs" in warning
        assert "still answer this machine only (--expose-admin" in warning
    finally:
        process.kill()
        process.wait()
