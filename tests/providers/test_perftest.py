"""``PerfTestClient`` against fake CPTS servers on loopback: signing, the create rule, reads and paging."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from helpers.fake_server import Drop, FakeServer, Handler, Reply, Seen, script

from reconciler.errors import OutcomeUnknownError, PermanentProviderError
from reconciler.providers import signing
from reconciler.providers.perftest import MISSING_CODE, AkSkAuth, PerfTestClient

StartServer = Callable[[Handler], FakeServer]
CLOUD = "0123456789abcdef0123456789abcdef"
MISSING = Reply(403, {"code": MISSING_CODE, "message": "the task does not exist"})


def perftest(url: str, sleeps: list[float], **options: Any) -> PerfTestClient:
    settings: dict[str, Any] = {
        "name": "perftest",
        "endpoint": url,
        "cloud_project_id": CLOUD,
        "access_key": "AKTEST",
        "secret_key": "SKTEST",
        "rate_limit": 1000.0,
        "sleep": sleeps.append,
        **options,
    }
    return PerfTestClient(**settings)


# --- authentication -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"),
    [
        (
            "POST",
            f"https://cpts.cn-north-4.myhuaweicloud.com/v3/{CLOUD}/tasks",
            b'{"name": "t1", "parallel": true, "project_id": 42, "operate_mode": 2, "case_id_list": [1, 2]}',
            "b7bddfe0a34af69d87d0798efd7ad6ac1fffcb3e4e1cd094a907bda67d0e06b5",
        ),
        (
            "GET",
            f"https://cpts.cn-north-4.myhuaweicloud.com/v1/{CLOUD}/all-tasks/42?limit=10&offset=0",
            b"",
            "89dab730d626545f38409d1c11b484bd867ec96671180d9ab70b773325429b3b",
        ),
    ],
)
def test_aksk_signing_matches_the_official_sdk_test_vectors(method: str, url: str, body: bytes, expected: str) -> None:
    auth = AkSkAuth(
        access_key="AKTEST",
        secret_key="SKTEST",
        cloud_project_id=CLOUD,
        now=lambda: datetime(2024, 1, 1, tzinfo=UTC),
    )
    request = httpx.Request(method, url, content=body)
    signed = next(auth.sync_auth_flow(request))
    assert signed.headers["X-Sdk-Date"] == "20240101T000000Z"
    assert signed.headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access=AKTEST, SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature={expected}"
    )


def test_signed_requests_verify_at_the_server_with_the_port_in_host(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    verdicts: list[bool] = []

    def handler(seen: Seen) -> Reply:
        verdicts.append(
            signing.verify(
                method=seen.method,
                path=seen.path,
                query=seen.query_pairs,
                headers=seen.headers,
                body=seen.body,
                secret_key="SKTEST",
            )
        )
        if seen.method == "POST":
            return Reply(201, {"code": "SVCSTG.CPTS.0000000", "message": "success", "task_id": 5})
        return Reply(200, {"tasks": []})

    server = fake_server(handler)
    with perftest(server.url, sleeps) as client:
        assert client.create_task({"name": "t1", "parallel": True, "project_id": 42, "case_id_list": [1]}) == 5
        assert client.list_tasks(42) == []
    assert verdicts and all(verdicts)
    first = server.requests[0]
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["x-project-id"] == CLOUD
    assert "SKTEST" not in str(first.headers)


def test_token_auth_sends_the_token_and_the_project(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, {"taskInfo": {"name": "t"}})))
    with perftest(server.url, sleeps, access_key=None, secret_key=None, token="tok-123") as client:
        client.get_task(9)
    headers = server.requests[0].headers
    assert headers["x-auth-token"] == "tok-123"
    assert headers["x-project-id"] == CLOUD
    assert "authorization" not in headers


def test_a_client_needs_some_credentials() -> None:
    with pytest.raises(ValueError):
        PerfTestClient(name="p", endpoint="http://x", cloud_project_id=CLOUD, rate_limit=1)


# --- create -------------------------------------------------------------------------------------------------


def test_perftest_create_posts_to_the_cloud_project_and_returns_the_task_id(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(201, {"code": "SVCSTG.CPTS.0000000", "message": "success", "task_id": 184138})))
    body = {"name": "smoke", "parallel": True, "project_id": 42, "operate_mode": 2, "case_id_list": [1, 2]}
    with perftest(server.url, sleeps) as client:
        assert client.create_task(body) == 184138
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", f"/v3/{CLOUD}/tasks")
    assert seen.json() == body
    assert seen.headers["content-type"] == "application/json"


def test_perftest_create_is_not_retried_after_a_dropped_connection(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Drop(), Reply(201, {"task_id": 2})))
    with perftest(server.url, sleeps) as client, pytest.raises(OutcomeUnknownError):
        client.create_task({"name": "t", "parallel": True, "project_id": 42, "case_id_list": [1]})
    assert len(server.seen("POST")) == 1
    assert sleeps == []


def test_perftest_create_answered_without_a_task_id_is_outcome_unknown(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(201, {"code": "SVCSTG.CPTS.0000000", "message": "success"})))
    with perftest(server.url, sleeps) as client, pytest.raises(OutcomeUnknownError):
        client.create_task({"name": "t", "parallel": True, "project_id": 42, "case_id_list": [1]})
    assert len(server.requests) == 1


def test_perftest_create_in_a_missing_test_project_names_the_project(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(MISSING))
    with perftest(server.url, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.create_task({"name": "t", "parallel": True, "project_id": 4242, "case_id_list": [1]})
    assert "test project 4242 does not exist" in str(caught.value)
    assert caught.value.code == MISSING_CODE


# --- reads --------------------------------------------------------------------------------------------------


def test_get_task_returns_task_info_with_its_id(fake_server: StartServer, sleeps: list[float]) -> None:
    info = {"name": "smoke", "project_id": 42, "parallel": True, "case_list": []}
    server = fake_server(script(Reply(200, {"code": "SVCSTG.CPTS.0000000", "message": "ok", "taskInfo": info})))
    with perftest(server.url, sleeps) as client:
        assert client.get_task(77) == {**info, "id": 77}
    assert server.requests[0].path == f"/v1/{CLOUD}/tasks/77"


def test_get_task_of_a_missing_task_is_none(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(MISSING))
    with perftest(server.url, sleeps) as client:
        assert client.get_task(77) is None


def test_get_task_does_not_mistake_an_access_denial_for_a_missing_task(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(403, {"error_code": "APIGW.0302", "error_msg": "denied"})))
    client = perftest(server.url, sleeps, credentials_hint="$CPTS_AK and $CPTS_SK")
    with client, pytest.raises(PermanentProviderError) as caught:
        client.get_task(77)
    assert "$CPTS_AK and $CPTS_SK" in str(caught.value)


# --- listing ------------------------------------------------------------------------------------------------


def paging_server(total: int, semantics: str, *, cap: int | None = None) -> Handler:
    """A CPTS listing of ``total`` tasks under one reading of ``offset``."""
    tasks = [{"id": 1000 + n, "name": f"task-{n}"} for n in range(total)]

    def handler(seen: Seen) -> Reply:
        if not seen.path.endswith("/all-tasks/42"):
            return MISSING
        offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
        limit = min(limit, cap) if cap else limit
        if semantics == "rows":
            start = offset
        elif semantics == "pages from 0":
            start = offset * limit
        elif semantics == "pages from 1, 0 read as 1":
            start = (max(offset, 1) - 1) * limit
        elif semantics == "pages from 1, 0 empty":
            if offset == 0:
                return Reply(200, {"code": "ok", "message": "ok", "tasks": []})
            start = (offset - 1) * limit
        elif semantics == "offset ignored":
            return Reply(200, {"code": "ok", "message": "ok", "tasks": tasks})
        else:
            raise AssertionError(semantics)
        return Reply(200, {"code": "ok", "message": "ok", "extend": None, "tasks": tasks[start : start + limit]})

    return handler


SEMANTICS = ["rows", "pages from 0", "pages from 1, 0 read as 1", "pages from 1, 0 empty", "offset ignored"]


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("total", [0, 1, 2, 9, 10, 11, 20, 35])
@pytest.mark.parametrize("cap", [None, 4], ids=["no cap", "server caps page at 4"])
def test_listing_tasks_works_with_row_or_page_offsets(
    fake_server: StartServer, sleeps: list[float], semantics: str, total: int, cap: int | None
) -> None:
    server = fake_server(paging_server(total, semantics, cap=cap))
    with perftest(server.url, sleeps, page_size=10) as client:
        listed = client.list_tasks(42)
    assert sorted(t["id"] for t in listed) == [1000 + n for n in range(total)]
    pages_needed = -(-total // min(10, cap or 10))
    assert len(server.requests) <= pages_needed + 3


def test_listing_a_missing_test_project_is_a_clear_permanent_error(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(paging_server(3, "rows"))
    with perftest(server.url, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.list_tasks(7)
    assert "test project 7 does not exist" in str(caught.value)
    assert len(server.requests) == 1


def test_find_tasks_by_name_returns_every_task_with_that_name(fake_server: StartServer, sleeps: list[float]) -> None:
    tasks = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "a"}]

    def handler(seen: Seen) -> Reply:
        start = int(seen.query["offset"])
        return Reply(200, {"tasks": tasks[start : start + int(seen.query["limit"])]})

    server = fake_server(handler)
    with perftest(server.url, sleeps) as client:
        assert [t["id"] for t in client.find_tasks_by_name(42, "a")] == [1, 3]
        assert client.find_tasks_by_name(42, "zzz") == []
