"""A saved plan is input, not authority: where credentials go, and which variables hold them, come from the
manifests as they are where apply runs, never from the plan file (an artifact a pull request may shape)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from helpers.apply_project import Project


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A port that records whatever connects to it: where an edited plan would send the credentials."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(65536))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def _saved_plan(proj: Project) -> dict[str, object]:
    made = proj.run("plan", "manifests", "--out", "plan.json")
    assert made.returncode == 0, made.stdout + made.stderr
    return json.loads((proj.root / "plan.json").read_text())


@pytest.mark.parametrize(
    ("provider", "path", "value"),
    [
        ("toloka", "endpoint", "http://127.0.0.1:{port}"),
        ("toloka", "credentials.token_env", "SOME_OTHER_SECRET"),
        ("perftest", "endpoint", "http://127.0.0.1:{port}"),
        ("perftest", "credentials.secret_key_env", "SOME_OTHER_SECRET"),
    ],
)
def test_a_plan_edited_to_send_credentials_elsewhere_is_refused_before_anything_is_sent(
    project: Callable[..., Project], listener: tuple[int, list[bytes]], provider: str, path: str, value: str
) -> None:
    port, received = listener
    proj = project(tasks=2, rows=4)
    saved = _saved_plan(proj)
    providers = saved["providers"]
    assert isinstance(providers, dict)
    *parents, field = path.split(".")
    edited = providers[provider]["spec"]
    for key in parents:
        edited = edited[key]
    edited[field] = value.format(port=port)
    (proj.root / "plan.json").write_text(json.dumps(saved))

    applied = proj.run(
        "apply", "plan.json", "--auto-approve", extra_env={"SOME_OTHER_SECRET": "do-not-send-me-anywhere"}
    )

    assert applied.returncode == 1
    assert f"provider {provider!r} is not as the manifests declare it ({path.split('.')[0]} differ)" in applied.stderr
    assert "Traceback" not in applied.stderr
    assert received == []
    objects = proj.sandbox.objects()
    assert objects["perftest_tasks"] == [] and objects["task_suites"] == []
    assert proj.recorded() == {}


def test_a_plan_applied_where_its_manifests_are_not_is_refused(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=2)
    _saved_plan(proj)
    (proj.root / "manifests").rename(proj.root / "elsewhere")

    applied = proj.run("apply", "plan.json", "--auto-approve")

    assert applied.returncode == 1
    assert "made from the manifests at manifests, which are not here" in applied.stderr
    assert proj.sandbox.objects()["perftest_tasks"] == []


def test_a_plan_of_an_older_format_is_refused_with_what_to_do(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    saved = _saved_plan(proj)
    saved["format_version"] = 1
    del saved["manifests"]
    (proj.root / "plan.json").write_text(json.dumps(saved))

    applied = proj.run("apply", "plan.json", "--auto-approve")

    assert applied.returncode == 1 and "make the plan again" in applied.stderr
    assert proj.sandbox.objects()["perftest_tasks"] == []


def test_an_unedited_plan_applies_with_the_providers_of_the_manifests(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=4)
    _saved_plan(proj)

    applied = proj.run("apply", "plan.json", "--auto-approve")

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 2
