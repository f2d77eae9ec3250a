"""Answers of an unexpected shape at the client boundary (issue 11, items 2 and 3): unknown is not no.

A create answered 2xx means the server acted, whatever the body says: the outcome is unknown (never a refusal,
which would have it sent again). A listing that cannot be read proves nothing absent: an error, never ``[]``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers.fake_server import FakeServer, Handler, Reply, Seen, script

from reconciler.errors import OutcomeUnknownError, PermanentProviderError, ProviderError, TransientProviderError
from reconciler.providers.perftest import PerfTestClient
from reconciler.providers.toloka import TolokaClient

StartServer = Callable[[Handler], FakeServer]
OP_ID = str(uuid.UUID(int=11))
CLOUD = "0123456789abcdef0123456789abcdef"
SUITES = [{"pool_id": "12", "overlap": 1, "tasks": [{"input_values": {"text": "a"}}]}]
TASK = {"name": "t", "parallel": True, "project_id": 42, "operate_mode": 2, "case_id_list": [1]}


def toloka(url: str, sleeps: list[float]) -> TolokaClient:
    return TolokaClient(name="toloka", endpoint=url, token="k", rate_limit=1000.0, sleep=sleeps.append)


def perftest(url: str, sleeps: list[float]) -> PerfTestClient:
    return PerfTestClient(
        name="perftest",
        endpoint=url,
        cloud_project_id=CLOUD,
        access_key="AK",
        secret_key="SK",
        rate_limit=1000.0,
        sleep=sleeps.append,
    )


def operation(**fields: Any) -> dict[str, Any]:
    return {"id": OP_ID, "type": "TASK_SUITE.BATCH_CREATE", "status": "PENDING", **fields}


ODD_TOLOKA_CREATES = {
    "200 {}": Reply(200, {}),
    "202 foo": Reply(202, {"foo": 1}),
    "201 list": Reply(201, [operation()]),
    "202 no id": Reply(202, {k: v for k, v in operation().items() if k != "id"}),
    "202 no status": Reply(202, {k: v for k, v in operation().items() if k != "status"}),
    "202 error shape": Reply(202, {"request_id": "r", "code": "ACCEPTED", "message": "Accepted"}),
    "202 another id": Reply(202, operation(id=str(uuid.UUID(int=12)))),
    "202 untyped": Reply(202, {k: v for k, v in operation().items() if k != "type"}),
}


@pytest.mark.parametrize("reply", ODD_TOLOKA_CREATES.values(), ids=ODD_TOLOKA_CREATES.keys())
def test_a_toloka_create_answered_2xx_in_an_odd_shape_is_outcome_unknown(
    fake_server: StartServer, sleeps: list[float], reply: Reply
) -> None:
    server = fake_server(script(reply))
    with toloka(server.url, sleeps) as client, pytest.raises(OutcomeUnknownError) as caught:
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert not isinstance(caught.value, PermanentProviderError)
    assert caught.value.operation_id == OP_ID
    assert OP_ID in str(caught.value)
    assert len(server.requests) == 1


def test_a_409_whose_operation_cannot_be_read_is_never_a_refusal(fake_server: StartServer, sleeps: list[float]) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(409, {"code": "OPERATION_ALREADY_EXISTS", "message": "exists"})
        return Reply(200, {"code": "OK"})

    server = fake_server(handler)
    with toloka(server.url, sleeps) as client, pytest.raises(ProviderError) as caught:
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert not isinstance(caught.value, PermanentProviderError)
    assert f"could not read operation {OP_ID}" in str(caught.value)


ODD_PERFTEST_CREATES = {
    "200 {}": Reply(200, {}),
    "202 foo": Reply(202, {"foo": 1}),
    "201 list": Reply(201, [{"task_id": 5}]),
    "201 code and message": Reply(201, {"code": "SVCSTG.CPTS.0000000", "message": "success"}),
    "201 task_id not a number": Reply(201, {"task_id": "abc"}),
    "201 task_id true": Reply(201, {"task_id": True}),
}


@pytest.mark.parametrize("reply", ODD_PERFTEST_CREATES.values(), ids=ODD_PERFTEST_CREATES.keys())
def test_a_perftest_create_answered_2xx_in_an_odd_shape_is_outcome_unknown(
    fake_server: StartServer, sleeps: list[float], reply: Reply
) -> None:
    server = fake_server(script(reply))
    with perftest(server.url, sleeps) as client, pytest.raises(OutcomeUnknownError):
        client.create_task(TASK)
    assert len(server.requests) == 1  # and never resent: it has no idempotency key


ODD_LISTINGS = {
    "code and message only": {"code": "SVCSTG.CPTS.0000000", "message": "success"},
    "tasks null": {"code": "ok", "message": "ok", "tasks": None},
    "tasks an object": {"tasks": {"id": 1, "name": "t"}},
    "a list": [{"id": 1, "name": "t"}],
    "a row without an id": {"tasks": [{"name": "t"}]},
    "a row without a name": {"tasks": [{"id": 1}]},
    "a row not an object": {"tasks": ["t"]},
}


@pytest.mark.parametrize("body", ODD_LISTINGS.values(), ids=ODD_LISTINGS.keys())
def test_a_perftest_listing_that_cannot_be_read_is_an_error_never_no_tasks(
    fake_server: StartServer, sleeps: list[float], body: Any
) -> None:
    server = fake_server(script(Reply(200, body)))
    with perftest(server.url, sleeps) as client:
        with pytest.raises(TransientProviderError) as caught:
            client.list_tasks(42)
        assert "could not read the task listing of test project 42" in str(caught.value)
        with pytest.raises(TransientProviderError):
            client.find_tasks_by_name(42, "t")


def test_a_perftest_listing_unreadable_on_a_later_page_is_an_error_too(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.query["offset"] == "0":
            return Reply(200, {"tasks": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]})
        return Reply(200, {"code": "SVCSTG.CPTS.0000000", "message": "success"})

    server = fake_server(handler)
    with perftest(server.url, sleeps) as client, pytest.raises(TransientProviderError):
        client.list_tasks(42)


def test_a_toloka_suite_listing_without_items_is_an_error(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, {"code": "OK"})))
    with toloka(server.url, sleeps) as client, pytest.raises(TransientProviderError) as caught:
        list(client.iter_pool_suites("12"))
    assert "could not read the task suites of pool 12" in str(caught.value)
