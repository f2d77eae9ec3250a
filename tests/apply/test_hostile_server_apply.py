"""`reconciler apply` against a hostile server (issue 12), through the real command line.

Each case points the providers at the hostile server (``helpers/hostile_server.py``, a proxy in front of the
sandbox that misbehaves on one route) with the ``RECONCILER_<PROVIDER>_ENDPOINT`` overrides, and runs apply:
it ends within bounded time either in one clear error (exit 1, nothing that cannot be resolved left behind)
or, when the misbehaving answer can be resolved another way (a create whose answer is lost is found by
listing, or read as its operation), in success. Either way the state says nothing false: every created
resource names an object that exists. Then apply runs again against the healthy sandbox and converges with
exactly one object per resource. Bounds are made small through the environment, as a user would
(``RECONCILER_<PROVIDER>_REQUEST_TIMEOUT``, ``..._OPERATION_TIMEOUT``); caps are the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from helpers.apply_project import Project, assert_exactly_once
from helpers.hostile_server import HostileServer, Misbehaviour

if TYPE_CHECKING:
    from conftest import SandboxHandle  # tests/conftest.py: the shared ``sandbox`` fixtures

#: How long a first apply may take here at most: seconds, where an unbounded one would take minutes or hang.
BOUND = 30.0


@dataclass(frozen=True)
class Case:
    """A misbehaviour on one route, the project it meets, and how apply must end."""

    misbehaviour: Misbehaviour
    route: str
    exit_code: int
    says: str = ""
    tasks: int = 0
    rows: int = 0
    times: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: The statuses the state holds after the first apply (none: nothing was recorded).
    statuses: frozenset[str] = frozenset()


REQUEST_TIMEOUT_1S = {"RECONCILER_PERFTEST_REQUEST_TIMEOUT": "1", "RECONCILER_TOLOKA_REQUEST_TIMEOUT": "1"}
OPERATION_TIMEOUT_1S = {"RECONCILER_TOLOKA_OPERATION_TIMEOUT": "1"}
CREATED = frozenset({"created"})
PENDING = frozenset({"pending"})

CASES = {
    "10 GB listing: nothing sent to that project": Case(
        Misbehaviour.HUGE_CHUNKED, "perftest.list", 1, "more than 32 MiB", tasks=1
    ),
    "10 GB operation read: the batch stays open": Case(
        Misbehaviour.HUGE, "toloka.operation", 1, "more than 1 MiB", rows=2, statuses=PENDING
    ),
    "10 GB create answer: the task is found and adopted": Case(
        Misbehaviour.HUGE_CHUNKED, "perftest.create", 0, tasks=1, statuses=CREATED
    ),
    "trickled create answer: its operation is read": Case(
        Misbehaviour.TRICKLE, "toloka.create", 0, rows=2, env=REQUEST_TIMEOUT_1S, statuses=CREATED
    ),
    "trickled listing headers: nothing sent to that project": Case(
        Misbehaviour.TRICKLE_HEADERS, "perftest.list", 1, "did not complete within 1s", tasks=1, env=REQUEST_TIMEOUT_1S
    ),
    "operation forever running: left for the next run": Case(
        Misbehaviour.RUNNING_FOREVER,
        "toloka.operation",
        1,
        "still RUNNING after 1s",
        rows=2,
        env=OPERATION_TIMEOUT_1S,
        statuses=PENDING,
    ),
    "malformed log, twice: read again": Case(
        Misbehaviour.MALFORMED, "toloka.log", 0, rows=2, times=2, statuses=CREATED
    ),
    "HTML error page on a create, once: resent under its id": Case(
        Misbehaviour.HTML_ERROR, "toloka.create", 0, rows=2, times=1, statuses=CREATED
    ),
    "binary create answer: the task is found and adopted": Case(
        Misbehaviour.WRONG_CONTENT_TYPE, "perftest.create", 0, tasks=1, statuses=CREATED
    ),
    "create redirected to another host: never followed, left open": Case(
        Misbehaviour.REDIRECT_OTHER_HOST,
        "toloka.create",
        1,
        "unknown to Toloka",
        rows=2,
        env=OPERATION_TIMEOUT_1S,
        statuses=PENDING,
    ),
    "401 echoing the key on a create: refused, made again later": Case(
        Misbehaviour.ECHO_401, "toloka.create", 1, "authentication failed", rows=2, statuses=frozenset({"failed"})
    ),
    "403 echoing the signature on a listing: nothing sent": Case(
        Misbehaviour.ECHO_403, "perftest.list", 1, "access denied", tasks=1
    ),
    "operation read of the wrong shape: the batch stays open": Case(
        Misbehaviour.WRONG_SHAPE, "toloka.operation", 1, "could not read operation", rows=2, statuses=PENDING
    ),
}


@pytest.fixture
def hostile(sandbox: SandboxHandle) -> Iterator[HostileServer]:
    with HostileServer(sandbox.url, interval=0.3) as server:
        yield server


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_apply_against_a_hostile_server_ends_clearly_and_a_healthy_run_converges_exactly_once(
    project: Callable[..., Project], hostile: HostileServer, case: Case
) -> None:
    proj = project(tasks=case.tasks, rows=case.rows, batch_size=10)
    hostile.misbehave(case.misbehaviour, case.route, times=case.times)
    pointed = {"RECONCILER_PERFTEST_ENDPOINT": hostile.url, "RECONCILER_TOLOKA_ENDPOINT": hostile.url}

    start = time.monotonic()
    first = proj.apply(extra_env={**pointed, **case.env})
    elapsed = time.monotonic() - start

    output = first.stdout + first.stderr
    assert first.returncode == case.exit_code, output
    assert hostile.misbehaved, "the hostile server was never asked"
    assert elapsed < BOUND
    assert "Traceback" not in output and "This is a bug" not in output, output
    assert case.says in output, output
    assert hostile.other.requests == []  # nothing, credentials least of all, went where a redirect pointed
    _assert_state_says_nothing_false(proj, case)

    second = proj.apply()

    assert second.returncode == 0, second.stdout + second.stderr
    assert_exactly_once(proj, tasks=case.tasks, rows=case.rows)


def _assert_state_says_nothing_false(proj: Project, case: Case) -> None:
    """What the first apply recorded: the statuses the case expects, and every created resource an object that
    exists on the (healthy) server behind the hostile one."""
    recorded = proj.recorded()
    assert {r.status.value for r in recorded.values()} == case.statuses, recorded
    objects = proj.sandbox.objects()
    existing = {str(t["id"]) for t in objects["perftest_tasks"]} | {str(s["id"]) for s in objects["task_suites"]}
    created = {r.remote_id for r in recorded.values() if r.status.value == "created"}
    assert created <= existing
    if case.exit_code == 0:
        assert_exactly_once(proj, tasks=case.tasks, rows=case.rows)
