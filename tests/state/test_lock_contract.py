"""The state lock: one holder at a time, named when refused, never held forever by a dead run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.state_backends import Backend

from reconciler.errors import StateError, StateLockedError
from reconciler.state import StateStore, default_holder, held_lock

WORKER = Path(__file__).with_name("state_worker.py")


def test_lock_is_refused_while_held_and_names_holder(backend: Backend, store: StateStore) -> None:
    lock = store.acquire_lock(holder="alice@ci pid 1", operation="apply", ttl=30)
    with pytest.raises(StateLockedError) as refused:
        backend.open().acquire_lock(holder="bob@laptop pid 2", operation="plan", ttl=30)
    err = refused.value
    assert (err.lock_id, err.holder, err.operation, err.since) == (
        lock.lock_id,
        "alice@ci pid 1",
        "apply",
        lock.started_at,
    )
    assert "alice@ci pid 1" in str(err) and lock.lock_id in str(err)


def test_lock_describes_its_holder(store: StateStore) -> None:
    assert store.current_lock() is None
    lock = store.acquire_lock(holder="alice@ci pid 1", operation="apply", ttl=30)
    assert store.current_lock() == lock
    assert lock.started_at.endswith("Z") and lock.expires_at > lock.started_at
    assert len(lock.lock_id) == 36


def test_released_lock_can_be_taken_again(backend: Backend, store: StateStore) -> None:
    lock = store.acquire_lock(holder="a", operation="apply", ttl=30)
    store.release_lock(lock_id=lock.lock_id)
    assert store.current_lock() is None
    assert backend.open().acquire_lock(holder="b", operation="apply", ttl=30).lock_id != lock.lock_id


def test_expired_lock_is_taken_over(backend: Backend, store: StateStore) -> None:
    dead = store.acquire_lock(holder="killed run", operation="apply", ttl=0.2)
    time.sleep(0.3)
    other = backend.open()
    taken = other.acquire_lock(holder="next run", operation="apply", ttl=30)
    assert other.current_lock() == taken
    with pytest.raises(StateLockedError) as refused:
        store.renew_lock(lock_id=dead.lock_id, ttl=30)
    assert refused.value.holder == "next run"


def test_lapsed_lock_nobody_took_can_still_be_renewed(store: StateStore) -> None:
    lock = store.acquire_lock(holder="slow run", operation="apply", ttl=0.1)
    time.sleep(0.15)
    store.renew_lock(lock_id=lock.lock_id, ttl=30)
    with pytest.raises(StateLockedError):
        store.acquire_lock(holder="next run", operation="apply", ttl=30)


def test_releasing_a_lock_no_longer_ours_leaves_the_new_one(store: StateStore) -> None:
    old = store.acquire_lock(holder="a", operation="apply", ttl=0.1)
    time.sleep(0.15)
    new = store.acquire_lock(holder="b", operation="apply", ttl=30)
    store.release_lock(lock_id=old.lock_id)
    assert store.current_lock() == new


def test_force_unlock_breaks_the_lock_by_id(store: StateStore) -> None:
    lock = store.acquire_lock(holder="stuck run", operation="apply", ttl=3600)
    store.force_unlock(lock_id=lock.lock_id)
    assert store.current_lock() is None
    with pytest.raises(StateError, match="broken"):
        store.renew_lock(lock_id=lock.lock_id, ttl=30)


def test_force_unlock_of_another_id_is_an_error(store: StateStore) -> None:
    with pytest.raises(StateError, match="not locked"):
        store.force_unlock(lock_id="nope")
    lock = store.acquire_lock(holder="a", operation="apply", ttl=30)
    with pytest.raises(StateError, match=lock.lock_id):
        store.force_unlock(lock_id="nope")
    assert store.current_lock() == lock


def test_heartbeat_keeps_lock_alive_past_ttl(backend: Backend, store: StateStore) -> None:
    other = backend.open()
    with held_lock(store, holder="long run", operation="apply", ttl=0.45) as lock:
        time.sleep(1.0)
        with pytest.raises(StateLockedError) as refused:
            other.acquire_lock(holder="next run", operation="apply", ttl=30)
        assert refused.value.lock_id == lock.lock_id
    assert store.current_lock() is None


def test_held_lock_is_released_when_the_run_fails(store: StateStore) -> None:
    with pytest.raises(RuntimeError), held_lock(store, holder="a", operation="apply", ttl=30):
        raise RuntimeError("boom")
    assert store.current_lock() is None


def test_held_lock_refuses_to_start_while_another_run_holds_it(backend: Backend, store: StateStore) -> None:
    store.acquire_lock(holder="first", operation="apply", ttl=30)
    with pytest.raises(StateLockedError), held_lock(backend.open(), holder="second", operation="apply"):
        pytest.fail("ran without the lock")


def test_run_that_lost_its_lock_does_not_end_as_a_success(backend: Backend, store: StateStore) -> None:
    other = backend.open()
    with (
        pytest.raises(StateError, match="lost while apply ran: b took it over"),
        held_lock(store, holder="a", operation="apply", ttl=0.3) as lock,
    ):
        other.force_unlock(lock_id=lock.lock_id)
        other.acquire_lock(holder="b", operation="apply", ttl=30)
        time.sleep(0.25)
    assert other.current_lock().holder == "b"  # type: ignore[union-attr]


def test_run_whose_lock_was_broken_does_not_end_as_a_success(backend: Backend, store: StateStore) -> None:
    with pytest.raises(StateError, match="broken"), held_lock(store, holder="a", operation="apply") as lock:
        backend.open().force_unlock(lock_id=lock.lock_id)
    assert store.current_lock() is None


def test_default_holder_names_user_host_and_process() -> None:
    holder = default_holder()
    assert f"@{socket.gethostname()} pid {os.getpid()} pidns " in holder


def test_two_processes_racing_for_the_lock_only_one_wins(backend: Backend, store: StateStore) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "race", backend.location],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    answers = [worker.communicate(timeout=30)[0].strip() for worker in workers]
    winners = [a for a in answers if a.startswith("won ")]
    assert len(winners) == 1, answers
    holder = store.current_lock()
    assert holder is not None and winners == [f"won {holder.lock_id}"]
    assert sorted(answers)[:-1] == [f"lost {holder.holder}"] * 5


def _holder_on(host: str, pid: int, namespace: str | None = None) -> str:
    namespace = namespace or str(os.stat("/proc/self/ns/pid").st_ino)
    return f"someone@{host} pid {pid} pidns {namespace}"


@pytest.fixture
def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


@pytest.mark.skipif(
    socket.gethostname().split(".")[0] in ("", "localhost"), reason="this host has no name to tell it apart"
)
def test_lock_of_a_dead_process_on_this_machine_is_taken_over(
    backend: Backend, store: StateStore, dead_pid: int
) -> None:
    dead = store.acquire_lock(holder=_holder_on(socket.gethostname(), dead_pid), operation="apply", ttl=3600)
    with held_lock(backend.open(), holder=default_holder(), operation="apply") as lock:
        assert store.current_lock() == lock.info
    [broken] = [e for e in store.history() if e.event == "lock_broken"]
    assert broken.detail["lock_id"] == dead.lock_id


def test_lock_of_a_live_process_is_kept(backend: Backend, store: StateStore) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        store.acquire_lock(holder=_holder_on(socket.gethostname(), alive.pid), operation="apply", ttl=3600)
        with (
            pytest.raises(StateLockedError),
            held_lock(backend.open(), holder=default_holder(), operation="apply"),
        ):
            pytest.fail("ran without the lock")
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize(
    ("host", "namespace"),
    [
        ("build-agent-7.example.com", None),
        ("localhost", None),
        (socket.gethostname(), "1"),  # a container sharing our host name, with its own process ids
    ],
)
def test_lock_of_a_process_elsewhere_is_kept(
    backend: Backend, store: StateStore, dead_pid: int, host: str, namespace: str | None
) -> None:
    store.acquire_lock(holder=_holder_on(host, dead_pid, namespace), operation="apply", ttl=3600)
    with (
        pytest.raises(StateLockedError),
        held_lock(backend.open(), holder=default_holder(), operation="apply"),
    ):
        pytest.fail("ran without the lock")
