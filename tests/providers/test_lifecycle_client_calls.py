"""The clients' change and delete calls against ``reconciler.sandbox`` over real HTTP.

``PerfTestClient.update_task``/``delete_task`` and ``TolokaClient.patch_task_suite``/``set_overlap_or_min`` are
all safe to resend, so a failure after the work was done is retried and lands where one call would; a delete
that meets a task already gone says so (False) instead of failing; and a 2xx that is not the API's success
answer is never taken as done: it is ``OutcomeUnknownError``, to be resolved by reading the object back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from helpers.fake_server import FakeServer, Handler, Reply, script
from helpers.sandbox_clients import TolokaClient as SandboxToloka
from helpers.sandbox_clients import suite as helper_suite

from reconciler.errors import OutcomeUnknownError, PermanentProviderError
from reconciler.providers import PerfTestClient, TolokaClient

if TYPE_CHECKING:
    from conftest import SandboxHandle  # tests/conftest.py: the shared ``sandbox`` fixtures

MISSING = "SVCSTG.CPTS.4032002"
OK = {"code": "SVCSTG.CPTS.0000000", "message": "success"}
WRONG_SHAPE = "200=1.0,methods=PUT|PATCH|DELETE"


def perftest(sandbox: SandboxHandle | FakeServer, sleeps: list[float]) -> PerfTestClient:
    return PerfTestClient(
        name="perftest",
        endpoint=sandbox.url,
        cloud_project_id="0123456789abcdef0123456789abcdef",
        access_key="SANDBOXAK",
        secret_key="SANDBOXSK",
        rate_limit=1000.0,
        sleep=sleeps.append,
    )


def toloka(sandbox: SandboxHandle, sleeps: list[float]) -> TolokaClient:
    return TolokaClient(
        name="toloka", endpoint=sandbox.url, token="sandbox-token", rate_limit=1000.0, sleep=sleeps.append
    )


def task(name: str, project: int = 42, cases: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "parallel": True, "project_id": project, "operate_mode": 2, "case_id_list": cases or [1, 2]}


def new_suite(sandbox: SandboxHandle, pool: str = "4242", overlap: int = 3) -> dict[str, Any]:
    """A suite made by a plain synchronous create, so that the calls under test are the only client calls."""
    answer = SandboxToloka(sandbox).create([helper_suite(pool, overlap)])
    assert answer.status_code == 201
    created: dict[str, Any] = answer.json()["items"]["0"]
    return created


# --- PerfTest: update_task ----------------------------------------------------------------------------------


def test_update_task_changes_the_task_in_place(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with perftest(sandbox, sleeps) as client:
        task_id = client.create_task(task("before"))
        assert client.update_task(task_id, task("after", cases=[7])) is None
        shown = client.get_task(task_id)
        assert shown is not None and shown["name"] == "after"
        assert [c["case_id"] for c in shown["case_list"]] == [7]
        assert [(t["id"], t["name"]) for t in client.list_tasks(42)] == [(task_id, "after")]
    assert sleeps == []


def test_update_task_is_resent_after_a_failure_that_did_the_work(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with perftest(sandbox, sleeps) as client:
        task_id = client.create_task(task("before"))
        sandbox.set_faults("at=1:lost_ack,methods=PUT")
        client.update_task(task_id, task("after"))
    assert len(sleeps) == 1
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["after"]
    assert sandbox.stats()["routes"]["PUT /v3/{project_id}/tasks/{task_id}"] == {"200": 2}


def test_update_task_of_a_missing_task_is_a_permanent_error_with_the_cpts_code(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    with perftest(sandbox, sleeps) as client, pytest.raises(PermanentProviderError) as caught:
        client.update_task(987654, task("x"))
    assert (caught.value.status, caught.value.code) == (403, MISSING)
    assert "task 987654 or its test project 42 does not exist" in str(caught.value)
    assert sandbox.objects()["perftest_tasks"] == []


def test_update_task_with_a_body_cpts_refuses_is_a_permanent_error(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with perftest(sandbox, sleeps) as client:
        task_id = client.create_task(task("kept"))
        with pytest.raises(PermanentProviderError) as caught:
            client.update_task(task_id, {**task("x"), "operate_mode": 9})
    assert caught.value.status == 400 and "operate_mode" in str(caught.value)
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["kept"]


# --- PerfTest: delete_task ----------------------------------------------------------------------------------


def test_delete_task_is_true_then_false_once_gone(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with perftest(sandbox, sleeps) as client:
        kept, gone = client.create_task(task("kept")), client.create_task(task("gone"))
        assert client.delete_task(gone) is True
        assert client.get_task(gone) is None
        assert [t["id"] for t in client.list_tasks(42)] == [kept]
        assert client.delete_task(gone) is False
        assert client.delete_task(987654) is False
    assert sleeps == []
    assert sandbox.stats()["routes"]["DELETE /v3/{project_id}/tasks/{task_id}"] == {"200": 1, "403": 2}


def test_delete_task_after_a_lost_answer_is_resent_and_the_task_is_gone(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    with perftest(sandbox, sleeps) as client:
        task_id = client.create_task(task("gone"))
        sandbox.set_faults("at=1:lost_ack,methods=DELETE")
        assert client.delete_task(task_id) is False  # the resend meets what the first attempt did
    assert len(sleeps) == 1 and sandbox.objects()["perftest_tasks"] == []


def test_delete_task_takes_an_empty_or_fieldless_answer_as_done(
    fake_server: Callable[[Handler], FakeServer], sleeps: list[float]
) -> None:
    """The SDK models no field of a delete's answer: a server may send nothing at all, or ``{}``."""
    server = fake_server(script(Reply(200, raw=b""), Reply(204, raw=b""), Reply(200, {}), Reply(200, OK)))
    with perftest(server, sleeps) as client:
        assert [client.delete_task(n) for n in range(4)] == [True, True, True, True]
    assert [r.method for r in server.requests] == ["DELETE"] * 4


def test_perftest_answers_of_the_wrong_shape_are_an_unknown_outcome(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    with perftest(sandbox, sleeps) as client:
        task_id = client.create_task(task("kept"))
        sandbox.set_faults(WRONG_SHAPE)
        with pytest.raises(OutcomeUnknownError, match=f"whether task {task_id} changed is unknown"):
            client.update_task(task_id, task("changed"))
        with pytest.raises(OutcomeUnknownError, match=f"whether task {task_id} is gone is unknown"):
            client.delete_task(task_id)
    assert sleeps == []  # a 2xx is an answer: not retried, resolved by reading back
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["kept"]


@pytest.mark.parametrize(
    "body", [{}, {"code": "SVCSTG.CPTS.4000001", "message": "no"}, {"error_code": "APIGW.0301", "error_msg": "x"}]
)
def test_an_update_answer_that_is_not_cpts_success_is_an_unknown_outcome(
    fake_server: Callable[[Handler], FakeServer], sleeps: list[float], body: dict[str, Any]
) -> None:
    server = fake_server(script(Reply(200, body)))
    with perftest(server, sleeps) as client, pytest.raises(OutcomeUnknownError):
        client.update_task(1, task("x"))
    assert len(server.requests) == 1


# --- Toloka: patch_task_suite and set_overlap_or_min --------------------------------------------------------


def test_patch_task_suite_changes_the_suite(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with toloka(sandbox, sleeps) as client:
        suite = new_suite(sandbox)
        changed = client.patch_task_suite(suite["id"], {"overlap": 5, "issuing_order_override": 7})
        assert changed == {**suite, "overlap": 5, "remaining_overlap": 5, "issuing_order_override": 7}
        assert client.get_task_suite(suite["id"]) == changed
        assert list(client.iter_pool_suites("4242")) == [changed]
    assert sleeps == []


def test_patch_task_suite_with_open_pool_opens_the_pool(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    sandbox.add_pool("77", default_overlap=1, status="CLOSED")
    with toloka(sandbox, sleeps) as client:
        suite = new_suite(sandbox, pool="77")
        client.patch_task_suite(suite["id"], {"infinite_overlap": True}, open_pool=True)
    pools = {p["id"]: p["status"] for p in sandbox.objects()["pools"]}
    assert pools["77"] == "OPEN"
    assert sandbox.objects()["task_suites"][0]["infinite_overlap"] is True


def test_patch_task_suite_refuses_fields_toloka_does_not_change_before_sending(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    with toloka(sandbox, sleeps) as client:
        suite = new_suite(sandbox)
        with pytest.raises(ValueError, match="tasks"):
            client.patch_task_suite(suite["id"], {"tasks": []})
    assert "PATCH /api/v1/task-suites/{suite_id}" not in sandbox.stats()["routes"]


def test_changing_a_missing_suite_is_a_permanent_404_does_not_exist(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    missing = "0000001092--000000000000000000000000"
    with toloka(sandbox, sleeps) as client:
        for call in (
            lambda: client.patch_task_suite(missing, {"overlap": 2}),
            lambda: client.set_overlap_or_min(missing, 0),
        ):
            with pytest.raises(PermanentProviderError) as caught:
                call()
            assert (caught.value.status, caught.value.code) == (404, "DOES_NOT_EXIST")


def test_set_overlap_or_min_answers_what_toloka_kept(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with toloka(sandbox, sleeps) as client:
        untouched, started = new_suite(sandbox, pool="1"), new_suite(sandbox, pool="2", overlap=5)
        sandbox.patch_object("task_suites", started["id"], {"remaining_overlap": 3})  # two assignments done
        stopped = client.set_overlap_or_min(untouched["id"], 0)
        assert (stopped["overlap"], stopped["remaining_overlap"]) == (0, 0)
        kept = client.set_overlap_or_min(started["id"], 0)
        assert (kept["overlap"], kept["remaining_overlap"]) == (2, 0)
        assert client.get_task_suite(started["id"]) == kept


def test_suite_changes_are_resent_after_a_failure_that_did_the_work(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    with toloka(sandbox, sleeps) as client:
        suite = new_suite(sandbox)
        sandbox.set_faults("at=1:500_after,methods=PATCH")
        assert client.patch_task_suite(suite["id"], {"overlap": 4})["overlap"] == 4
        sandbox.set_faults("at=1:lost_ack,methods=PATCH")
        assert client.set_overlap_or_min(suite["id"], 0)["overlap"] == 0
    assert len(sleeps) == 2
    routes = sandbox.stats()["routes"]
    assert routes["PATCH /api/v1/task-suites/{suite_id}"] == {"500": 1, "200": 1}
    assert routes["PATCH /api/v1/task-suites/{suite_id}/set-overlap-or-min"] == {"200": 2}  # one answer was cut
    assert sandbox.objects()["task_suites"][0]["overlap"] == 0


def test_toloka_answers_of_the_wrong_shape_are_an_unknown_outcome(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with toloka(sandbox, sleeps) as client:
        suite = new_suite(sandbox)
        sandbox.set_faults(WRONG_SHAPE)
        with pytest.raises(OutcomeUnknownError, match=f"not with task suite {suite['id']}"):
            client.patch_task_suite(suite["id"], {"overlap": 4})
        with pytest.raises(OutcomeUnknownError, match=f"not with task suite {suite['id']}"):
            client.set_overlap_or_min(suite["id"], 0)
    assert sleeps == []
    assert sandbox.objects()["task_suites"] == [suite]
