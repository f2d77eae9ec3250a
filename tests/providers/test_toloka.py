"""``TolokaClient`` against fake Toloka servers on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers.fake_server import Drop, FakeServer, Handler, Reply, Seen, script

from reconciler.errors import PermanentProviderError, TransientProviderError
from reconciler.providers.toloka import LogEntry, Operation, TolokaClient

StartServer = Callable[[Handler], FakeServer]
OP_ID = str(uuid.UUID(int=7))


def toloka(url: str, sleeps: list[float], **options: Any) -> TolokaClient:
    settings: dict[str, Any] = {
        "name": "toloka",
        "endpoint": url,
        "token": "secret-key",
        "rate_limit": 1000.0,
        "sleep": sleeps.append,
        **options,
    }
    return TolokaClient(**settings)


def operation(status: str = "PENDING", type_: str = "TASK_SUITE.BATCH_CREATE", **extra: Any) -> dict[str, Any]:
    return {
        "id": OP_ID,
        "type": type_,
        "status": status,
        "submitted": "2024-01-01T00:00:00",
        "parameters": {},
        "details": {"total_count": 2},
        **extra,
    }


SUITES = [
    {"pool_id": "12", "overlap": 1, "tasks": [{"input_values": {"text": "a"}}]},
    {"pool_id": "12", "overlap": 1, "tasks": [{"input_values": {"text": "b"}}]},
]


# --- create -------------------------------------------------------------------------------------------------


def test_toloka_create_sends_the_operation_id_options_and_marked_items(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(202, operation())))
    with toloka(server.url, sleeps, scheme="OAuth") as client:
        op = client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={"open_pool": True})
    assert op == Operation.from_json(operation())
    assert not op.done
    (seen,) = server.requests
    assert (seen.method, seen.path) == ("POST", "/api/v1/task-suites")
    assert seen.query == {
        "async_mode": "true",
        "operation_id": OP_ID,
        "allow_defaults": "false",
        "open_pool": "true",
        "skip_invalid_items": "false",
    }
    assert seen.headers["authorization"] == "OAuth secret-key"
    assert seen.json() == [{**suite, "__item_idx": n} for n, suite in enumerate(SUITES)]


def test_toloka_create_retries_with_the_same_operation_id_and_reads_the_operation_on_409(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    def handler(seen: Seen) -> Reply | Drop:
        if seen.method == "GET":
            return Reply(200, operation("RUNNING"))
        posts = len(server.seen("POST"))
        if posts == 1:
            return Reply(500, {"code": "INTERNAL_ERROR", "message": "oops"})
        if posts == 2:
            return Drop()  # the operation was accepted, the answer lost
        return Reply(409, {"code": "OPERATION_ALREADY_EXISTS", "message": "exists"})

    server = fake_server(handler)
    with toloka(server.url, sleeps) as client:
        op = client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert op.id == OP_ID and op.status == "RUNNING"
    posts = server.seen("POST")
    assert len(posts) == 3
    assert {p.query["operation_id"] for p in posts} == {OP_ID}
    assert len({p.body for p in posts}) == 1  # byte-identical resends
    assert [r.path for r in server.seen("GET")] == [f"/api/v1/operations/{OP_ID}"]


def test_toloka_create_accepts_the_old_spelling_of_the_operation_type(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(202, operation(type_="TASK_SUITE.BATCH.CREATE"))))
    with toloka(server.url, sleeps) as client:
        assert client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={}).id == OP_ID


def test_toloka_create_refuses_an_existing_operation_of_another_type(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.method == "POST":
            return Reply(409, {"code": "OPERATION_ALREADY_EXISTS", "message": "exists"})
        return Reply(200, operation("SUCCESS", type_="POOL.OPEN"))

    server = fake_server(handler)
    with toloka(server.url, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert "POOL.OPEN" in str(caught.value)


def test_toloka_create_keeps_other_conflicts_permanent(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(409, {"code": "CONFLICT_STATE", "message": "pool archived"})))
    with toloka(server.url, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert caught.value.code == "CONFLICT_STATE"
    assert len(server.requests) == 1


def test_toloka_create_validation_errors_show_the_fields(fake_server: StartServer, sleeps: list[float]) -> None:
    body = {
        "request_id": "r-1",
        "code": "VALIDATION_ERROR",
        "message": "Validation failed",
        "payload": {"overlap": {"code": "VALUE_REQUIRED", "message": "Value must be present"}},
    }
    server = fake_server(script(Reply(400, body)))
    with toloka(server.url, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={})
    assert "overlap" in str(caught.value) and "VALUE_REQUIRED" in str(caught.value)
    assert "secret-key" not in str(caught.value)


def test_unknown_options_are_a_programming_error(sleeps: list[float]) -> None:
    with toloka("http://127.0.0.1:9", sleeps) as client, pytest.raises(ValueError):
        client.create_task_suites_async(operation_id=OP_ID, items=SUITES, options={"open_pol": True})


# --- operations ---------------------------------------------------------------------------------------------


def test_get_operation_is_none_only_when_toloka_says_it_does_not_exist(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(404, {"code": "DOES_NOT_EXIST", "message": "no"})))
    with toloka(server.url, sleeps) as client:
        assert client.get_operation(OP_ID) is None
    wrong_endpoint = fake_server(script(Reply(404, raw=b"<html>Not Found</html>")))
    with toloka(wrong_endpoint.url, sleeps) as client, pytest.raises(PermanentProviderError):
        client.get_operation(OP_ID)


def test_wait_operation_polls_with_growing_pauses_until_done(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(
        script(*[Reply(200, operation("RUNNING"))] * 6, Reply(200, operation("SUCCESS", finished="2024-01-01")))
    )
    with toloka(server.url, sleeps) as client:
        op = client.wait_operation(OP_ID, poll_initial=0.05, poll_max=0.4)
    assert op.done and op.status == "SUCCESS" and op.finished == "2024-01-01"
    assert len(server.requests) == 7
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4, 0.4])


def test_wait_operation_polls_when_the_reported_progress_says_it_should_be_done(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(
        script(
            Reply(200, operation("RUNNING", progress=10)),
            Reply(200, operation("RUNNING", progress=10)),
            Reply(200, operation("RUNNING", progress=90)),
            Reply(200, operation("SUCCESS")),
        )
    )
    with toloka(server.url, sleeps) as client:
        assert client.wait_operation(OP_ID, poll_initial=0.05, poll_max=0.4).status == "SUCCESS"
    # 10% done in next to no time: a short pause, at least poll_initial; still 10% after that pause: nine times
    # as long to go, capped at poll_max; 90% done after about 0.45 s: about 0.05 s to go. The elapsed time is
    # the clock's as well as the (injected) sleeps', so a slow machine lengthens the first and last pauses.
    first, second, last = sleeps
    assert 0.05 <= first <= 0.4
    assert second == pytest.approx(0.4)
    assert 0.05 <= last < 0.2


def test_wait_operation_returns_a_failed_operation_too(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, operation("FAIL"))))
    with toloka(server.url, sleeps) as client:
        assert client.wait_operation(OP_ID).status == "FAIL"


def test_wait_operation_times_out_as_transient(fake_server: StartServer, sleeps: list[float]) -> None:
    server = fake_server(script(Reply(200, operation("RUNNING"))))
    with toloka(server.url, sleeps) as client, pytest.raises(TransientProviderError) as caught:
        client.wait_operation(OP_ID, timeout=3, poll_max=1)
    assert "RUNNING" in str(caught.value)
    assert sum(sleeps) >= 3


def test_wait_operation_gives_up_early_on_an_operation_toloka_does_not_know(
    fake_server: StartServer, sleeps: list[float]
) -> None:
    server = fake_server(script(Reply(404, {"code": "DOES_NOT_EXIST", "message": "no"})))
    with toloka(server.url, sleeps) as client, pytest.raises(TransientProviderError) as caught:
        client.wait_operation(OP_ID, timeout=600, missing_timeout=2, poll_max=1)
    assert "unknown to Toloka" in str(caught.value) and "same id" in str(caught.value)
    assert 2 <= sum(sleeps) < 5


def test_operation_log_maps_entries_back_to_item_indexes(fake_server: StartServer, sleeps: list[float]) -> None:
    log = [
        {
            "type": "TASK_SUITE_CREATE",
            "success": True,
            "input": {**SUITES[0], "__item_idx": 0},
            "output": {"task_suite_id": "000000000c--aa"},
        },
        {
            "type": "TASK_SUITE_VALIDATE",
            "success": False,
            "input": {**SUITES[1], "__item_idx": "1"},
            "output": {"overlap": {"code": "VALUE_REQUIRED", "message": "x"}},
        },
        {"type": "TASK_SUITE_CREATE", "success": True, "input": {"pool_id": "12"}, "output": {}},
    ]
    server = fake_server(script(Reply(200, log)))
    with toloka(server.url, sleeps) as client:
        entries = client.operation_log(OP_ID)
    assert server.requests[0].path == f"/api/v1/operations/{OP_ID}/log"
    assert entries[0] == LogEntry(True, 0, log[0]["input"], {"task_suite_id": "000000000c--aa"})
    assert (entries[1].success, entries[1].item_idx) == (False, 1)
    assert entries[2].item_idx is None


# --- task suites --------------------------------------------------------------------------------------------


def test_get_task_suite_reads_one_or_none(fake_server: StartServer, sleeps: list[float]) -> None:
    suite = {"id": "000000000c--aa", "pool_id": "12"}
    server = fake_server(script(Reply(200, suite), Reply(404, {"code": "DOES_NOT_EXIST", "message": "gone"})))
    with toloka(server.url, sleeps) as client:
        assert client.get_task_suite("000000000c--aa") == suite
        assert client.get_task_suite("000000000c--bb") is None
