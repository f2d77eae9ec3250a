"""``--lock-timeout``: wait for a state another run holds instead of failing at once (Terraform's -lock-timeout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from helpers.apply_project import Project

from reconciler.state import StateStore, open_store

ELSEWHERE = "ci@build-agent-7.example.com pid 4242"


def _hold_lock(proj: Project, ttl: float = 60) -> tuple[StateStore, str]:
    assert proj.run("plan", "manifests").returncode == 0
    created = proj.apply("--target", "PerfTestTask/load-000")
    assert created.returncode == 0, created.stdout + created.stderr
    store = open_store(str(proj.state_file), workspace="default", root=proj.root)
    lock = store.acquire_lock(holder=ELSEWHERE, operation="apply", ttl=ttl)
    return store, lock.lock_id


def test_apply_without_lock_timeout_fails_at_once_naming_the_holder(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=0)
    store, _ = _hold_lock(proj)
    started = time.monotonic()
    refused = proj.apply()
    assert refused.returncode == 1
    assert time.monotonic() - started < 20
    assert ELSEWHERE in refused.stderr and "--lock-timeout" in refused.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 1
    store.close()


def test_apply_with_lock_timeout_gives_up_after_it_saying_how_long_it_waited(project: Callable[..., Project]) -> None:
    proj = project(tasks=2, rows=0)
    store, _ = _hold_lock(proj)
    started = time.monotonic()
    refused = proj.apply("--lock-timeout", "2s")
    assert refused.returncode == 1
    assert time.monotonic() - started >= 2
    assert "waiting up to 2s" in refused.stderr and "waited 2s" in refused.stderr and ELSEWHERE in refused.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 1
    store.close()


def test_apply_with_lock_timeout_proceeds_once_the_holder_releases(project: Callable[..., Project]) -> None:
    proj = project(tasks=3, rows=0)
    store, lock_id = _hold_lock(proj)
    releaser = threading.Timer(1.5, lambda: store.release_lock(lock_id=lock_id))
    releaser.start()
    try:
        done = proj.apply("--lock-timeout", "1m")
    finally:
        releaser.join()
        store.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "waiting up to 60s" in done.stderr
    assert len(proj.sandbox.objects()["perftest_tasks"]) == 3


def test_a_malformed_lock_timeout_is_a_usage_error(project: Callable[..., Project]) -> None:
    proj = project(tasks=1, rows=0)
    refused = proj.apply("--lock-timeout", "soon")
    assert refused.returncode == 1
    assert "'soon' is not a duration" in refused.stderr
    assert proj.sandbox.objects()["perftest_tasks"] == []
