"""The retry and error policy of ``HttpClient``, over real HTTP on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from helpers.fake_server import Drop, FakeServer, Handler, Hang, Reply, script

from reconciler.errors import OutcomeUnknownError, PermanentProviderError, TransientProviderError
from reconciler.providers.http import HttpClient, RateLimiter, api_error, parse_retry_after

StartServer = Callable[[Handler], FakeServer]


def client(url: str, sleeps: list[float], **options: object) -> HttpClient:
    defaults: dict[str, object] = {"rate_limit": 1000.0, "sleep": sleeps.append}
    return HttpClient(url, provider="test", auth=None, **{**defaults, **options})  # type: ignore[arg-type]


# --- the exactly-once rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(Drop(), id="dropped connection"),
        pytest.param(Reply(500, {"code": "INTERNAL_ERROR", "message": "boom"}), id="500"),
        pytest.param(Reply(503, {"error_code": "APIGW.0001", "error_msg": "busy"}), id="503"),
        pytest.param(Reply(408, {"code": "TIMEOUT", "message": "slow"}), id="408"),
        pytest.param(Reply(201, raw=b"<html>not json"), id="2xx that is not JSON"),
    ],
)
def test_a_request_that_is_not_idempotent_is_never_resent_once_it_may_have_arrived(
    fake_server: StartServer, sleeps: list[float], failure: Reply | Drop
) -> None:
    server = fake_server(script(failure, Reply(201, {"task_id": 1})))
    with client(server.url, sleeps) as http, pytest.raises(OutcomeUnknownError) as caught:
        http.request_json("POST", "/tasks", json={"name": "t"}, idempotent=False)
    assert len(server.seen("POST")) == 1
    assert sleeps == []
    assert "resolve" in str(caught.value)


def test_a_request_that_is_not_idempotent_is_not_resent_after_a_read_timeout(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Hang(1.0), Reply(201, {"task_id": 1})))
    timeout = httpx.Timeout(connect=1, read=0.2, write=1, pool=1)
    with client(server.url, sleeps, timeout=timeout) as http, pytest.raises(OutcomeUnknownError):
        http.request_json("POST", "/tasks", json={"name": "t"}, idempotent=False)
    assert len(server.seen("POST")) == 1
    assert sleeps == []


def test_a_request_that_is_not_idempotent_is_resent_after_429_because_the_gateway_answered_it(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    throttled = Reply(429, {"error_code": "APIGW.0308", "error_msg": "throttled"})
    server = fake_server(script(throttled, throttled, Reply(201, {"task_id": 7})))
    with client(server.url, sleeps) as http:
        assert http.request_json("POST", "/tasks", json={"n": 1}, idempotent=False) == {"task_id": 7}
    assert len(server.seen("POST")) == 3
    assert len(sleeps) == 2


def test_a_request_is_resent_when_the_connection_cannot_be_made_and_then_gives_up_as_transient(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    # The host answered once, then went away: a refusal now may be a restart, so it is retried. (A refusal
    # before the host ever answered is a wrong endpoint, not retried: test_connect_and_environment.py.)
    server = fake_server(script(Reply(200, {"ok": True}, headers={"Connection": "close"})))
    http = client(server.url, sleeps, max_retries=3)
    http.request("GET", "/ping", idempotent=True)
    server.close()
    with http, pytest.raises(TransientProviderError) as caught:
        http.request("POST", "/tasks", json={"n": 1}, idempotent=False)
    assert len(sleeps) == 3
    assert "could not connect" in str(caught.value)
    assert "4 attempts" in str(caught.value)


def test_idempotent_requests_retry_every_transient_failure(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(
        script(
            Reply(500, {"code": "INTERNAL_ERROR", "message": "x"}),
            Drop(),
            Reply(503, {"code": "REMOTE_SERVICE_UNAVAILABLE", "message": "x"}),
            Reply(200, raw=b"{truncated"),
            Reply(408),
            Reply(200, {"ok": True}),
        )
    )
    with client(server.url, sleeps) as http:
        assert http.request_json("GET", "/thing", idempotent=True) == {"ok": True}
    assert len(server.requests) == 6
    assert len(sleeps) == 5


def test_idempotent_requests_resend_after_a_read_timeout(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Hang(1.0), Reply(200, {"ok": True})))
    timeout = httpx.Timeout(connect=1, read=0.2, write=1, pool=1)
    with client(server.url, sleeps, timeout=timeout) as http:
        assert http.request_json("GET", "/thing", idempotent=True) == {"ok": True}
    assert len(server.requests) == 2


def test_retries_are_exhausted_into_a_transient_error_with_exponential_full_jitter_backoff(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(500, {"code": "INTERNAL_ERROR", "message": "down"})))
    http = client(server.url, sleeps, max_retries=5, backoff_base=0.5, backoff_max=4)
    with http, pytest.raises(TransientProviderError) as caught:
        http.request("GET", "/thing", idempotent=True)
    assert len(server.requests) == 6
    assert len(sleeps) == 5
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= min(4, 0.5 * 2**attempt)
    assert caught.value.status == 500 and caught.value.code == "INTERNAL_ERROR"


# --- Retry-After and Toloka's quota intervals ---------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("3", id="seconds"),
        pytest.param("date", id="http date"),
    ],
)
def test_retry_after_is_honoured(fake_server: StartServer, sleeps: list[float], header: str) -> None:
    if header == "date":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    server = fake_server(
        script(Reply(503, {"code": "X", "message": "later"}, headers={"Retry-After": header}), Reply(200, {}))
    )
    with client(server.url, sleeps, backoff_base=0.1) as http:
        http.request("GET", "/thing", idempotent=True)
    assert len(sleeps) == 1
    assert 2 <= sleeps[0] <= 4.2


def test_retry_after_is_capped(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(429, {}, headers={"Retry-After": "86400"}), Reply(200, {})))
    with client(server.url, sleeps, backoff_base=0.1) as http:
        http.request("GET", "/thing", idempotent=True)
    assert 60 <= sleeps[0] <= 60.1


def test_retry_after_parsing() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:10 GMT", now=now) == 10
    assert parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_429_with_interval_min_waits_and_retries(fake_server: StartServer, sleeps: list[float]) -> None:
    minute = Reply(429, {"code": "TOO_MANY_REQUESTS", "message": "slow down", "payload": {"interval": "MIN"}})
    server = fake_server(script(minute, Reply(202, {"id": "op"})))
    with client(server.url, sleeps) as http:
        assert http.request_json("POST", "/task-suites", json=[], idempotent=True) == {"id": "op"}
    assert len(server.requests) == 2
    assert len(sleeps) == 1 and 10 <= sleeps[0] <= 60


@pytest.mark.parametrize("interval", ["HOUR", "DAY"])
def test_429_with_interval_hour_or_day_stops_and_says_the_quota_is_exhausted(
    fake_server: StartServer, sleeps: list[float], interval: str
) -> None:
    body = {"code": "TOO_MANY_REQUESTS", "message": "quota", "payload": {"interval": interval}}
    server = fake_server(script(Reply(429, body), Reply(202, {"id": "op"})))
    with client(server.url, sleeps) as http, pytest.raises(TransientProviderError) as caught:
        http.request("POST", "/task-suites", json=[], idempotent=True)
    assert len(server.requests) == 1
    assert sleeps == []
    assert "quota is exhausted" in str(caught.value) and "retry later" in str(caught.value)
    assert caught.value.status == 429


# --- errors the API meant -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (
            400,
            {"code": "SVCSTG.CPTS.4001001", "message": "name too long"},
            "SVCSTG.CPTS.4001001",
            "name too long",
        ),
        (
            400,
            {"error_code": "APIGW.0101", "error_msg": "api not found", "request_id": "r1"},
            "APIGW.0101",
            "r1",
        ),
        (
            400,
            {
                "code": "VALIDATION_ERROR",
                "message": "bad",
                "payload": {"overlap": {"code": "VALUE_REQUIRED"}},
            },
            "VALIDATION_ERROR",
            "VALUE_REQUIRED",
        ),
        (409, {"code": "CONFLICT_STATE", "message": "pool is archived"}, "CONFLICT_STATE", "archived"),
        (404, {"code": "DOES_NOT_EXIST", "message": "no such thing"}, "DOES_NOT_EXIST", "no such thing"),
    ],
)
def test_client_errors_are_permanent_with_the_apis_code_and_message(
    fake_server: StartServer,
    sleeps: list[float],
    status: int,
    body: dict[str, object],
    code: str,
    message: str,
) -> None:
    server = fake_server(script(Reply(status, body)))
    with client(server.url, sleeps) as http, pytest.raises(PermanentProviderError) as caught:
        http.request("POST", "/thing", json={}, idempotent=False)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert message in str(caught.value)
    assert len(server.requests) == 1 and sleeps == []


def test_huge_error_bodies_are_trimmed(fake_server: StartServer, sleeps: list[float]) -> None:
    page = b"<html>" + b"x" * 100_000 + b"</html>"
    server = fake_server(script(Reply(400, raw=page, headers={"Content-Type": "text/html"})))
    with client(server.url, sleeps) as http, pytest.raises(PermanentProviderError) as caught:
        http.request("GET", "/thing", idempotent=True)
    assert len(str(caught.value)) < 500


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_say_which_credentials_to_check(
    fake_server: StartServer, sleeps: list[float], status: int
) -> None:
    server = fake_server(script(Reply(status, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM"})))
    hint = "the access key in $CPTS_AK and the secret key in $CPTS_SK"
    with client(server.url, sleeps, auth_hint=hint) as http, pytest.raises(PermanentProviderError) as caught:
        http.request("GET", "/thing", idempotent=True)
    assert hint in str(caught.value)
    assert "APIGW.0301" in str(caught.value)


def test_api_error_reads_the_request_id_header() -> None:
    response = httpx.Response(400, json={"code": "C", "message": "m"}, headers={"X-Request-Id": "abc"})
    assert api_error(response).request_id == "abc"


def test_an_unsupported_endpoint_scheme_is_a_permanent_error(sleeps: list[float]) -> None:
    with client("ftp://example.invalid", sleeps) as http, pytest.raises(PermanentProviderError):
        http.request("GET", "/thing", idempotent=True)
    assert sleeps == []


def test_booleans_in_query_parameters_are_spelled_true_and_false(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, {})))
    with client(server.url, sleeps) as http:
        http.request("GET", "/thing", params={"a": True, "b": False, "n": 3}, idempotent=True)
    assert server.requests[0].query == {"a": "true", "b": "false", "n": "3"}


# --- rate limit ---------------------------------------------------------------------------------------------


def test_rate_limit_spaces_requests(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, {})))
    with client(server.url, sleeps, rate_limit=20.0) as http:
        started = time.monotonic()
        for _ in range(6):
            http.request("GET", "/thing", idempotent=True)
        elapsed = time.monotonic() - started
    assert elapsed >= 5 / 20 - 0.01
    assert sleeps == []  # the limiter's waits are not retries


def test_rate_limit_is_shared_by_every_thread_using_a_client(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, {})))
    with client(server.url, sleeps, rate_limit=40.0) as http:

        def work() -> None:
            for _ in range(3):
                http.request("GET", "/thing", idempotent=True)

        threads = [threading.Thread(target=work) for _ in range(4)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    assert len(server.requests) == 12
    assert elapsed >= 11 / 40 - 0.01


def test_rate_limiter_allows_a_burst_then_one_request_per_interval() -> None:
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(10, burst=3, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire() == pytest.approx(0.1)
    assert limiter.acquire() == pytest.approx(0.2)
    now[0] += 10  # idle long enough to refill the bucket
    assert [limiter.acquire() for _ in range(3)] == [0, 0, 0]
    assert waits == pytest.approx([0.1, 0.2])
