"""The sandbox's public surface, which other parts of reconciler and its tests build on."""

from __future__ import annotations

import inspect

import reconciler.sandbox as sandbox_package
from reconciler.sandbox import SandboxSeed, SandboxServer


def test_the_package_exports_exactly_its_public_names():
    assert set(sandbox_package.__all__) == {
        "DEFAULT_ACCESS_KEY",
        "DEFAULT_CLOUD_PROJECT_ID",
        "DEFAULT_IAM_TOKEN",
        "DEFAULT_SECRET_KEY",
        "DEFAULT_TOLOKA_TOKEN",
        "Credentials",
        "FaultSpec",
        "FaultSpecError",
        "PerfTestProjectSeed",
        "PoolSeed",
        "SandboxAdmin",
        "SandboxSeed",
        "SandboxServer",
        "SeedError",
        "StoreError",
    }
    assert all(hasattr(sandbox_package, name) for name in sandbox_package.__all__)


def test_sandbox_server_keeps_its_constructor():
    parameters = list(inspect.signature(SandboxServer).parameters)
    assert parameters[:6] == ["host", "port", "seed", "auto_create", "data_path", "faults"]


def test_the_default_credentials_are_the_documented_ones():
    credentials = SandboxSeed().credentials
    assert (credentials.access_key, credentials.secret_key) == ("SANDBOXAK", "SANDBOXSK")
    assert credentials.cloud_project_id == "0123456789abcdef0123456789abcdef"
    assert credentials.toloka_tokens == ("sandbox-token",) and credentials.iam_tokens == ("sandbox-iam-token",)


def test_a_started_server_answers_on_its_url():
    with SandboxServer() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.is_running
    assert not server.is_running
