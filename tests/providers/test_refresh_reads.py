"""Refresh reads every recorded resource back: a pool's suites by paged listing, a PerfTest task by id.

What refresh concludes from these reads is "in sync", "gone" or "changed", so an incomplete or misread answer
must be an error, never a shorter listing or a "gone"; and the listing must cost one request per page, not
one per suite.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from helpers.fake_server import FakeServer, Reply, Seen, script
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import PermanentProviderError, ProviderError, TransientProviderError
from reconciler.providers import PerfTestClient, TolokaClient
from reconciler.providers.perftest import MISSING_CODE
from reconciler.providers.toloka_listing import FALLBACK_PAGE_SIZE, PAGE_SIZE

if TYPE_CHECKING:
    from conftest import SandboxHandle

StartServer = Callable[[Any], FakeServer]
LISTING = "GET /api/v1/task-suites"
POOL = "12"


def toloka(url: str, token: str = "sandbox-token") -> TolokaClient:
    return TolokaClient(name="toloka", endpoint=url, token=token, rate_limit=10_000.0, sleep=lambda _: None)


def perftest(url: str, sandbox: SandboxHandle | None = None) -> PerfTestClient:
    return PerfTestClient(
        name="perftest",
        endpoint=url,
        cloud_project_id=sandbox.cloud_project_id if sandbox else "0123456789abcdef0123456789abcdef",
        access_key=sandbox.access_key if sandbox else "AK",
        secret_key=sandbox.secret_key if sandbox else "SK",
        rate_limit=10_000.0,
        sleep=lambda _: None,
    )


def listing_requests(sandbox: SandboxHandle) -> int:
    return sum(sandbox.stats()["routes"].get(LISTING, {}).values())


def create_suites(client: TolokaClient, pool: str, count: int) -> set[str]:
    items = [{"pool_id": pool, "overlap": 1, "tasks": [{"input_values": {"n": n}}]} for n in range(count)]
    op_id = str(uuid.uuid4())
    client.create_task_suites_async(operation_id=op_id, items=items, options={})
    assert client.wait_operation(op_id, poll_initial=0.01).status == "SUCCESS"
    return {e.output["task_suite_id"] for e in client.operation_log(op_id) if e.success}


# --- Toloka against the sandbox -----------------------------------------------------------------------------


def test_refresh_reads_a_pool_of_2503_suites_completely_in_one_request_per_page(sandbox: SandboxHandle) -> None:
    with toloka(sandbox.url, sandbox.toloka_token) as client:
        created = create_suites(client, POOL, 2503)
        other = create_suites(client, "13", 7)
        for page_size, pages in ((PAGE_SIZE, 3), (FALLBACK_PAGE_SIZE, 9), (2503, 1), (2502, 2)):
            before = listing_requests(sandbox)
            listed = list(client.iter_pool_suites(POOL, page_size=page_size))
            assert [s["id"] for s in listed] == sorted(created)
            assert listing_requests(sandbox) - before == pages == math.ceil(2503 / page_size)
        assert {s["id"] for s in client.iter_pool_suites("13")} == other


def test_refresh_of_an_empty_pool_is_one_request_and_no_suites(sandbox: SandboxHandle) -> None:
    with toloka(sandbox.url, sandbox.toloka_token) as client:
        before = listing_requests(sandbox)
        assert list(client.iter_pool_suites("404040")) == []
    assert listing_requests(sandbox) - before == 1


# --- Toloka against servers that page their own way ---------------------------------------------------------


def paging_server(suites: list[dict[str, Any]], cap: int, refuse_above: int | None = None) -> Callable[[Seen], Reply]:
    """Toloka's listing, with pages of at most ``cap`` whatever ``limit`` says (and a 400 above ``refuse_above``)."""

    def handler(seen: Seen) -> Reply:
        limit = int(seen.query["limit"])
        if refuse_above is not None and limit > refuse_above:
            return Reply(400, {"code": "VALIDATION_ERROR", "message": "limit", "payload": {"limit": "too big"}})
        after = seen.query.get("id_gt")
        rest = [s for s in suites if after is None or s["id"] > after]
        size = min(limit, cap)
        return Reply(200, {"items": rest[:size], "has_more": len(rest) > size})

    return handler


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 60), cap=st.integers(1, 25), page_size=st.integers(1, 40))
def test_refresh_reads_every_suite_when_the_server_sends_smaller_pages_than_asked(
    count: int, cap: int, page_size: int
) -> None:
    suites = [{"id": f"000000000c--{n:024x}", "pool_id": POOL, "overlap": 1} for n in range(count)]
    server = FakeServer(paging_server(suites, cap))
    try:
        with toloka(server.url) as client:
            assert list(client.iter_pool_suites(POOL, page_size=page_size)) == suites
        pages = max(1, math.ceil(count / min(cap, page_size)))
        assert len(server.requests) == pages
        assert all(r.query["sort"] == "id" and r.query["pool_id"] == POOL for r in server.requests)
        asked_after = [r.query.get("id_gt") for r in server.requests]
        assert asked_after == [None, *(s["id"] for s in suites[min(cap, page_size) - 1 :: min(cap, page_size)])][:pages]
    finally:
        server.close()


def test_refresh_asks_the_documented_maximum_when_a_server_refuses_a_larger_page(fake_server: StartServer) -> None:
    suites = [{"id": f"000000000c--{n:024x}", "pool_id": POOL} for n in range(650)]
    server = fake_server(paging_server(suites, cap=10_000, refuse_above=FALLBACK_PAGE_SIZE))
    with toloka(server.url) as client:
        assert list(client.iter_pool_suites(POOL)) == suites
    assert [int(r.query["limit"]) for r in server.requests] == [PAGE_SIZE, 300, 300, 300]


def test_refresh_ends_at_a_full_page_that_says_there_is_no_more(fake_server: StartServer) -> None:
    suites = [{"id": f"000000000c--{n:024x}", "pool_id": POOL} for n in range(5)]
    server = fake_server(script(Reply(200, {"items": suites, "has_more": False})))
    with toloka(server.url) as client:
        assert list(client.iter_pool_suites(POOL, page_size=5)) == suites
    assert len(server.requests) == 1


ONE = {"id": "000000000c--000000000000000000000001", "pool_id": POOL}
UNREADABLE_PAGES = {
    "has_more with an empty page": Reply(200, {"items": [], "has_more": True}),
    "the same page again (id_gt ignored)": Reply(200, {"items": [ONE], "has_more": True}),
    "no items": Reply(200, {"code": "OK", "message": "fine"}),
    "items not a list": Reply(200, {"items": {"0": ONE}, "has_more": False}),
    "has_more missing": Reply(200, {"items": [ONE]}),
    "has_more a string": Reply(200, {"items": [ONE], "has_more": "false"}),
    "a suite without an id": Reply(200, {"items": [{"pool_id": POOL}], "has_more": False}),
    "a suite that is not an object": Reply(200, {"items": ["x"], "has_more": False}),
    "a suite of another pool": Reply(200, {"items": [{**ONE, "pool_id": "13"}], "has_more": False}),
    "not JSON": Reply(200, raw=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}),
    "a JSON array": Reply(200, [ONE]),
}


@pytest.mark.parametrize("page", UNREADABLE_PAGES.values(), ids=UNREADABLE_PAGES.keys())
def test_refresh_of_a_listing_that_cannot_be_read_is_an_error_not_fewer_suites(
    fake_server: StartServer, page: Reply
) -> None:
    server = fake_server(script(page))
    with toloka(server.url) as client, pytest.raises(ProviderError):
        list(client.iter_pool_suites(POOL))
    assert len(server.requests) <= 10


def test_refresh_of_a_pool_whose_second_page_fails_is_an_error(fake_server: StartServer) -> None:
    first = Reply(200, {"items": [ONE], "has_more": True})
    server = fake_server(script(first, Reply(403, {"code": "ACCESS_DENIED", "message": "no"})))
    with toloka(server.url) as client, pytest.raises(PermanentProviderError):
        list(client.iter_pool_suites(POOL))
    assert [r.query.get("id_gt") for r in server.requests] == [None, ONE["id"]]


# --- PerfTest -----------------------------------------------------------------------------------------------


def test_refresh_reads_a_perftest_task_and_sees_it_gone_once_deleted_behind_our_back(sandbox: SandboxHandle) -> None:
    body = {"name": "smoke", "parallel": True, "project_id": 42, "operate_mode": 2, "case_id_list": [1, 2]}
    with perftest(sandbox.url, sandbox) as client:
        task_id = client.create_task(body)
        read = client.get_task(task_id)
        assert read is not None and read["id"] == task_id and read["name"] == "smoke"
        sandbox.delete_object("perftest_tasks", task_id)
        assert client.get_task(task_id) is None
    assert sum(sandbox.stats()["routes"]["GET /v1/{project_id}/tasks/{task_id}"].values()) == 2


UNREADABLE_TASKS = {
    "success without taskInfo": Reply(200, {"code": "SVCSTG.CPTS.0000000", "message": "success"}),
    "taskInfo not an object": Reply(200, {"code": "SVCSTG.CPTS.0000000", "taskInfo": "smoke"}),
    "the gone code with 404": Reply(404, {"code": MISSING_CODE, "message": "not found"}),
    "the gone code with 400": Reply(400, {"code": MISSING_CODE, "message": "odd"}),
    "another 403": Reply(403, {"code": "SVCSTG.CPTS.4031001", "message": "forbidden"}),
    "the gateway's 403": Reply(403, {"error_code": "APIGW.0302", "error_msg": "denied"}),
    "an HTML page": Reply(200, raw=b"<html></html>", headers={"Content-Type": "text/html"}),
}


@pytest.mark.parametrize("answer", UNREADABLE_TASKS.values(), ids=UNREADABLE_TASKS.keys())
def test_refresh_of_a_perftest_task_that_cannot_be_read_is_an_error_not_gone(
    fake_server: StartServer, answer: Reply
) -> None:
    server = fake_server(script(answer))
    with perftest(server.url) as client, pytest.raises((PermanentProviderError, TransientProviderError)):
        client.get_task(77)
