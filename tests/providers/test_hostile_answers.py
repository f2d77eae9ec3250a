"""Hostile answers at the client boundary (issue 12): every misbehaviour, on every route the tool calls, ends in
one clear error within bounded time and memory, of the class that says what it proves.

The hostile server (``helpers/hostile_server.py``) stands in front of the sandbox: a misbehaviour that acts lets
the create happen and spoils only its answer. The rule the classes encode is "unknown is not no": an answer to
a create that cannot be read (too large, too late, redirected) is ``OutcomeUnknownError``, resolved by the
caller, never a refusal; a read that cannot be read proves nothing (``TransientProviderError``), and a refusal
(``PermanentProviderError``) is only what the server plainly said. Deadlines are small here (a fraction of a
second, trickles a byte every 0.05 s) so the whole matrix runs in seconds; the default caps are the real ones.
"""

from __future__ import annotations

import gzip
import json
import math
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from helpers.fake_server import FakeServer, Reply, Seen
from helpers.hostile_server import CREATES, ROUTES, HostileServer, Misbehaviour
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import (
    ConfigError,
    OutcomeUnknownError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from reconciler.kinds import MAX_REQUEST_TIMEOUT, TolokaProviderSpec
from reconciler.providers.perftest import RESPONSE_CAPS as PERFTEST_CAPS
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.settings import check_environment, effective_settings
from reconciler.providers.toloka import RESPONSE_CAPS as TOLOKA_CAPS
from reconciler.providers.toloka import TolokaClient
from reconciler.resources import ProviderConfig

if TYPE_CHECKING:
    from conftest import SandboxHandle  # tests/conftest.py: the shared ``sandbox`` fixtures

    from reconciler.sandbox import SandboxServer

#: The deadline of one request in these tests (when the deadline is what is tested), and a trickle's pace.
DEADLINE = 0.2
TRICKLE_INTERVAL = 0.05
#: Far more than any of these answers takes on a loaded 2-core machine, far less than a hang.
BOUND = 8.0
SUITES = [{"pool_id": "12", "overlap": 1, "tasks": [{"input_values": {"text": "a"}}]}]
TASK = {"name": "hostile", "parallel": True, "project_id": 101, "operate_mode": 2, "case_id_list": [1]}
SUITE_ID = "000000000c--" + "0" * 24


@dataclass(frozen=True)
class Credentials:
    """What the clients authenticate with: the sandbox's, or anything for a fake server (which checks none)."""

    toloka_token: str = "key"
    cloud_project_id: str = "0123456789abcdef0123456789abcdef"
    access_key: str = "AK"
    secret_key: str = "SK"


@dataclass
class Clients:
    toloka: TolokaClient
    perftest: PerfTestClient


def clients(
    url: str,
    credentials: SandboxHandle | Credentials,
    sleeps: list[float],
    *,
    deadline: float = DEADLINE,
    toloka: dict[str, Any] | None = None,
    perftest: dict[str, Any] | None = None,
) -> Clients:
    """Both clients pointed at ``url``, with a short deadline by default; backoffs are recorded, not slept."""
    return Clients(
        TolokaClient(
            name="toloka",
            endpoint=url,
            token=credentials.toloka_token,
            rate_limit=1000.0,
            request_timeout=deadline,
            sleep=sleeps.append,
            **(toloka or {}),
        ),
        PerfTestClient(
            name="perftest",
            endpoint=url,
            cloud_project_id=credentials.cloud_project_id,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            rate_limit=1000.0,
            request_timeout=deadline,
            sleep=sleeps.append,
            **(perftest or {}),
        ),
    )


#: What the tool calls on each route, as the applier and ``state import`` call it.
CALLS: dict[str, Callable[[Clients], Any]] = {
    "toloka.create": lambda c: c.toloka.create_task_suites_async(
        operation_id=str(uuid.uuid4()), items=SUITES, options={}
    ),
    "toloka.operation": lambda c: c.toloka.get_operation(str(uuid.uuid4())),
    "toloka.log": lambda c: c.toloka.operation_log_json(str(uuid.uuid4())),
    "toloka.list": lambda c: list(c.toloka.iter_pool_suites("12")),
    "toloka.suite": lambda c: c.toloka.get_task_suite(SUITE_ID),
    "perftest.create": lambda c: c.perftest.create_task(TASK),
    "perftest.list": lambda c: c.perftest.list_tasks(101),
    "perftest.task": lambda c: c.perftest.get_task(1),
}
assert set(CALLS) == set(ROUTES)

#: What each misbehaviour's message says, whatever the route.
SAYS = {
    Misbehaviour.HUGE: "with more than",
    Misbehaviour.HUGE_CHUNKED: "with more than",
    Misbehaviour.TRICKLE: f"did not complete within {DEADLINE:g}s",
    Misbehaviour.TRICKLE_HEADERS: f"did not complete within {DEADLINE:g}s",
    Misbehaviour.MALFORMED: "not JSON",
    Misbehaviour.HTML_PAGE: "not JSON",
    Misbehaviour.WRONG_CONTENT_TYPE: "not JSON",
    Misbehaviour.HTML_ERROR: "502",
    Misbehaviour.REDIRECT: "redirect",
    Misbehaviour.REDIRECT_OTHER_HOST: "redirect",
    Misbehaviour.ECHO_401: "authentication failed",
    Misbehaviour.ECHO_403: "access denied",
}
#: Routes whose answer of the wrong shape is a plain refusal (the object read is not what was asked for).
WRONG_SHAPE_REFUSED = frozenset({"toloka.log", "toloka.suite", "perftest.task"})


def expected(misbehaviour: Misbehaviour, route: str) -> type[ProviderError]:
    """The error each misbehaviour must end in on each route: what the answer proves, and no more."""
    create = route in CREATES
    if misbehaviour in (Misbehaviour.ECHO_401, Misbehaviour.ECHO_403):
        return PermanentProviderError  # the server said no, and a refused create made nothing
    if misbehaviour in (Misbehaviour.REDIRECT, Misbehaviour.REDIRECT_OTHER_HOST):
        return OutcomeUnknownError if create else PermanentProviderError
    if misbehaviour is Misbehaviour.WRONG_SHAPE:
        if create:
            return OutcomeUnknownError
        return PermanentProviderError if route in WRONG_SHAPE_REFUSED else TransientProviderError
    if misbehaviour in (Misbehaviour.HUGE, Misbehaviour.HUGE_CHUNKED, Misbehaviour.TRICKLE):
        return OutcomeUnknownError if create else TransientProviderError
    if misbehaviour is Misbehaviour.TRICKLE_HEADERS:
        return OutcomeUnknownError if create else TransientProviderError
    # Not JSON, or a 502 page: a PerfTest create has no idempotency key, so it is not resent; the rest are
    # retried (a Toloka create under the same operation id) until the retries run out.
    return OutcomeUnknownError if route == "perftest.create" else TransientProviderError


@pytest.fixture(scope="module")
def shared_hostile(sandbox_server: SandboxServer) -> Iterator[HostileServer]:
    with HostileServer(sandbox_server.url, interval=TRICKLE_INTERVAL) as server:
        yield server


@pytest.fixture
def hostile(shared_hostile: HostileServer) -> HostileServer:
    """The hostile server in front of the shared sandbox, healthy and with nothing recorded."""
    shared_hostile.reset()
    return shared_hostile


@pytest.fixture(scope="module")
def sandbox_credentials(sandbox_server: SandboxServer) -> Credentials:
    """The shared sandbox's credentials, for the tests that need no clean sandbox (each uses ids of its own)."""
    given = sandbox_server.credentials
    return Credentials(given.toloka_tokens[0], given.cloud_project_id, given.access_key, given.secret_key)


MATRIX = [
    pytest.param(misbehaviour, route, id=f"{misbehaviour.value}-{route}")
    for misbehaviour in Misbehaviour
    if misbehaviour is not Misbehaviour.RUNNING_FOREVER
    for route in ROUTES
]


@pytest.mark.parametrize(("misbehaviour", "route"), MATRIX)
def test_every_hostile_answer_on_every_route_ends_in_one_clear_error_in_bounded_time(
    hostile: HostileServer,
    sandbox_credentials: Credentials,
    sleeps: list[float],
    misbehaviour: Misbehaviour,
    route: str,
) -> None:
    trickle = misbehaviour in (Misbehaviour.TRICKLE, Misbehaviour.TRICKLE_HEADERS)
    hostile.misbehave(misbehaviour, route)
    both = clients(hostile.url, sandbox_credentials, sleeps, deadline=DEADLINE if trickle else BOUND)
    start = time.monotonic()
    with both.toloka, both.perftest, pytest.raises(ProviderError) as caught:
        CALLS[route](both)
    elapsed = time.monotonic() - start

    message = str(caught.value)
    assert type(caught.value) is expected(misbehaviour, route), message
    assert message.isprintable(), message  # one line, and no escape sequence reaches the terminal
    assert misbehaviour not in SAYS or SAYS[misbehaviour] in message, message
    assert hostile.misbehaved, "the hostile server was never asked"
    assert elapsed < (DEADLINE + 2.0 if trickle else BOUND)
    assert hostile.other.requests == []  # a redirect is never followed, so credentials never go elsewhere


def test_an_answer_over_the_cap_to_a_create_that_acted_leaves_the_object_to_be_resolved(
    hostile: HostileServer, sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    hostile.misbehave(Misbehaviour.HUGE_CHUNKED, "perftest.create")
    perftest = clients(hostile.url, sandbox, sleeps, deadline=BOUND).perftest
    with perftest:
        with pytest.raises(OutcomeUnknownError, match="may have taken effect"):
            perftest.create_task(TASK)
        assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["hostile"]  # it did act
        hostile.healthy()
        assert [t["name"] for t in perftest.find_tasks_by_name(101, "hostile")] == ["hostile"]
    assert len(hostile.seen("perftest.create")) == 1  # never resent


def test_an_operation_forever_running_ends_at_the_configured_bound_and_says_what_to_do(
    hostile: HostileServer, sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    op_id = str(uuid.uuid4())
    both = clients(hostile.url, sandbox, sleeps, toloka={"operation_timeout": 1.5})
    hostile.misbehave(Misbehaviour.RUNNING_FOREVER, "toloka.operation")
    with both.toloka:
        both.toloka.create_task_suites_async(operation_id=op_id, items=SUITES, options={})
        with pytest.raises(TransientProviderError) as caught:
            both.toloka.wait_operation(op_id)
    message = str(caught.value)
    assert f"operation {op_id} is still RUNNING after 1.5s" in message
    assert "run apply again later" in message
    assert "operation_timeout" in message and "RECONCILER_TOLOKA_OPERATION_TIMEOUT" in message
    assert 1.5 <= sum(sleeps) < 1.5 + 0.1  # the bound is kept, not overslept by a whole poll


def test_an_operation_toloka_does_not_know_is_never_waited_for_longer_than_the_bound(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    both = clients(sandbox.url, sandbox, sleeps, toloka={"operation_timeout": 0.5})
    with both.toloka, pytest.raises(TransientProviderError, match="unknown to Toloka"):
        both.toloka.wait_operation(str(uuid.uuid4()))
    assert sum(sleeps) < 0.5 + 0.1


# --- real answers fit the caps ------------------------------------------------------------------------------


def test_the_largest_real_answers_fit_the_default_caps(fake_server: Callable[..., FakeServer]) -> None:
    """A listing of 5,000 tasks at once (a server ignoring ``limit``), and the log of a 5,000-suite batch whose
    inputs fill Toloka's 1 MiB."""
    tasks = [{"id": n, "name": f"load-test-task-{n:05d}", "description": "x" * 200} for n in range(1, 5001)]
    value = "v" * (1024 * 1024 // 5000 - 20)
    log = [
        {
            "type": "TASK_SUITE_CREATE",
            "success": True,
            "input": {"pool_id": "12", "overlap": 3, "tasks": [{"input_values": {"text": value}}], "__item_idx": n},
            "output": {"task_suite_id": f"000000000c--{n:024x}"},
        }
        for n in range(5000)
    ]

    def handler(seen: Seen) -> Reply:
        if "all-tasks" in seen.path:
            return Reply(200, {"tasks": tasks[int(seen.query["offset"]) :]})
        return Reply(200, log)

    server = fake_server(handler)
    assert len(json.dumps(log)) > 1024 * 1024
    both = clients(server.url, Credentials(), [])
    with both.toloka, both.perftest:
        assert len(both.perftest.list_tasks(101)) == 5000
        assert len(both.toloka.operation_log_json(str(uuid.uuid4()))) == 5000
    assert PERFTEST_CAPS["listing"] > 10 * len(json.dumps({"tasks": tasks}))
    assert TOLOKA_CAPS["log"] > 10 * len(json.dumps(log))


def test_a_body_without_end_is_read_in_bounded_memory(hostile: HostileServer, sandbox_credentials: Credentials) -> None:
    hostile.misbehave(Misbehaviour.HUGE_CHUNKED, "perftest.list")
    both = clients(hostile.url, sandbox_credentials, [], deadline=BOUND)
    tracemalloc.start()
    try:
        with both.perftest, pytest.raises(TransientProviderError, match="more than 32 MiB"):
            both.perftest.list_tasks(101)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PERFTEST_CAPS["listing"] * 1.5


@settings(max_examples=40, deadline=None)
@given(size=st.integers(0, 3000), cap=st.integers(2, 3000), compressed=st.booleans())
def test_an_answer_is_read_exactly_up_to_its_cap_counted_after_decoding(size: int, cap: int, compressed: bool) -> None:
    body = json.dumps({"tasks": [], "pad": "p" * size}).encode()
    raw = gzip.compress(body) if compressed else body
    headers = {"Content-Encoding": "gzip"} if compressed else {}
    server = FakeServer(lambda _: Reply(200, raw=raw, headers=headers))
    perftest = clients(server.url, Credentials(), [], perftest={"response_caps": {"listing": cap}}).perftest
    try:
        with perftest:
            if len(body) <= cap:
                assert perftest.list_tasks(101) == []
            else:
                with pytest.raises(TransientProviderError, match="more than"):
                    perftest.list_tasks(101)
    finally:
        server.close()


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=2000), status=st.sampled_from([400, 401, 403, 404, 409, 422]))
def test_whatever_an_error_answer_says_is_shown_on_one_line_without_control_characters(text: str, status: int) -> None:
    server = FakeServer(lambda _: Reply(status, {"code": "E", "message": text}))
    toloka = clients(server.url, Credentials(), []).toloka
    try:
        with toloka, pytest.raises(PermanentProviderError) as caught:
            toloka.get_task_suite(SUITE_ID)
    finally:
        server.close()
    assert str(caught.value).isprintable()
    assert len(str(caught.value)) < 600


# --- the bounds are settings ------------------------------------------------------------------------------------


def test_the_bounds_are_provider_settings_with_environment_overrides() -> None:
    config = ProviderConfig(
        name="toloka",
        type="toloka",
        spec={"credentials": {"token_env": "K"}, "request_timeout": 30.0, "operation_timeout": 1200.0},
    )
    assert effective_settings(config, {}) == {**config.spec}
    environ = {"RECONCILER_TOLOKA_REQUEST_TIMEOUT": "2.5", "RECONCILER_TOLOKA_OPERATION_TIMEOUT": "60"}
    check_environment({"toloka": config}, environ)
    chosen = effective_settings(config, environ)
    assert (chosen["request_timeout"], chosen["operation_timeout"]) == (2.5, 60.0)


@settings(max_examples=80)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12)))
def test_a_bound_from_the_environment_is_a_number_of_seconds_or_one_clear_error(value: str) -> None:
    config = ProviderConfig(name="cpts", type="perftest", spec={"region": "cn-north-4"})
    environ = {"RECONCILER_CPTS_REQUEST_TIMEOUT": value}
    try:
        number = float(value.strip())
    except ValueError:
        number = math.nan
    if 0 < number <= MAX_REQUEST_TIMEOUT:
        check_environment({"cpts": config}, environ)
        assert effective_settings(config, environ)["request_timeout"] == number
    else:
        with pytest.raises(ConfigError) as caught:
            check_environment({"cpts": config}, environ)
        assert "RECONCILER_CPTS_REQUEST_TIMEOUT" in str(caught.value)
        assert "number of seconds" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("field", ["request_timeout", "operation_timeout"])
@pytest.mark.parametrize("value", [0, -1, 1e9])
def test_a_provider_document_refuses_a_bound_out_of_range(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TolokaProviderSpec.model_validate({"credentials": {"token_env": "K"}, field: value})
