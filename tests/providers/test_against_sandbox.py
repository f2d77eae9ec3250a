"""The clients end to end against ``reconciler.sandbox`` over real HTTP, with its faults switched on.

The fault tests play the caller's side of the idempotency protocol in a few lines (resend Toloka batches with
the same operation id; resolve an unknown PerfTest outcome by name before resending) and then count what the
sandbox holds: every object exactly once is the promise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.errors import OutcomeUnknownError, PermanentProviderError, TransientProviderError
from reconciler.providers import PerfTestClient, SandboxTarget, TolokaClient, build_clients
from reconciler.resources import ProviderConfig, SourceRef

if TYPE_CHECKING:
    from conftest import SandboxHandle  # tests/conftest.py: the shared ``sandbox`` fixtures

CLOUD = "0123456789abcdef0123456789abcdef"


def perftest(url: str, sleeps: list[float], **options: Any) -> PerfTestClient:
    return PerfTestClient(
        name="perftest",
        endpoint=url,
        cloud_project_id=CLOUD,
        access_key="SANDBOXAK",
        secret_key="SANDBOXSK",
        rate_limit=1000.0,
        sleep=sleeps.append,
        **options,
    )


def toloka(url: str, sleeps: list[float], **options: Any) -> TolokaClient:
    return TolokaClient(
        name="toloka", endpoint=url, token="sandbox-token", rate_limit=1000.0, sleep=sleeps.append, **options
    )


def task(name: str, project: int = 42) -> dict[str, Any]:
    return {"name": name, "parallel": True, "project_id": project, "operate_mode": 2, "case_id_list": [1, 2]}


def suites(pool: str, count: int, tag: str) -> list[dict[str, Any]]:
    return [{"pool_id": pool, "overlap": 1, "tasks": [{"input_values": {"text": f"{tag}-{n}"}}]} for n in range(count)]


# --- PerfTest -----------------------------------------------------------------------------------------------


def test_perftest_creates_reads_and_lists_tasks_in_the_sandbox(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    with perftest(sandbox.url, sleeps, page_size=7) as client:
        ids = [client.create_task(task(f"t{n}")) for n in range(16)]
        first = client.get_task(ids[0])
        assert first is not None and first["id"] == ids[0] and first["name"] == "t0"
        assert client.get_task(987654321) is None
        assert sorted(t["id"] for t in client.list_tasks(42)) == sorted(ids)
        assert [t["id"] for t in client.find_tasks_by_name(42, "t11")] == [ids[11]]
    assert sleeps == []


def test_perftest_missing_test_project_in_the_sandbox_is_a_clear_error(
    sandbox_factory: Callable[..., SandboxHandle], sleeps: list[float]
) -> None:
    strict = sandbox_factory(auto_create=False)
    with perftest(strict.url, sleeps) as client:
        with pytest.raises(PermanentProviderError, match="test project 4242 does not exist"):
            client.list_tasks(4242)
        with pytest.raises(PermanentProviderError, match="test project 4242 does not exist"):
            client.create_task(task("t", project=4242))


def test_perftest_create_after_a_lost_answer_is_not_resent_and_the_task_is_found_by_name(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    sandbox.set_faults("at=1:lost_ack,methods=POST")
    with perftest(sandbox.url, sleeps) as client:
        with pytest.raises(OutcomeUnknownError):
            client.create_task(task("lost"))
        found = client.find_tasks_by_name(42, "lost")
    assert len(found) == 1
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["lost"]


@pytest.mark.parametrize("fault", ["malformed", "500_after", "503"])
def test_perftest_create_with_an_unreadable_or_failed_answer_is_outcome_unknown(
    sandbox: SandboxHandle, sleeps: list[float], fault: str
) -> None:
    sandbox.set_faults(f"at=1:{fault},methods=POST")
    with perftest(sandbox.url, sleeps) as client, pytest.raises(OutcomeUnknownError):
        client.create_task(task("t"))
    assert sandbox.stats()["routes"]["POST /v3/{project_id}/tasks"] == {"201" if fault == "malformed" else fault[:3]: 1}


def test_perftest_creates_under_random_faults_never_duplicate(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    sandbox.set_faults("500=0.1,503=0.05,500_after=0.05,429=0.1,retry_after=1,lost_ack=0.1,malformed=0.05,seed=11")
    names = [f"load-{n}" for n in range(30)]
    unknown = 0
    with perftest(sandbox.url, sleeps) as client:
        for name in names:
            while True:
                try:
                    client.create_task(task(name))
                    break
                except OutcomeUnknownError:
                    unknown += 1
                    found = client.find_tasks_by_name(42, name)
                    assert len(found) <= 1
                    if found:
                        break  # adopt it; resending would make a duplicate
    created = [t["name"] for t in sandbox.objects()["perftest_tasks"]]
    assert sorted(created) == sorted(names)
    assert unknown > 0 and sleeps  # the faults did bite, both kinds


def test_perftest_creates_from_many_threads_under_faults_never_duplicate(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    sandbox.set_faults("500=0.1,500_after=0.05,429=0.1,lost_ack=0.1,seed=3")
    names = [f"par-{n}" for n in range(40)]
    with perftest(sandbox.url, sleeps, max_connections=8) as client:

        def create(name: str) -> None:
            while True:
                try:
                    client.create_task(task(name))
                    return
                except OutcomeUnknownError:
                    if client.find_tasks_by_name(42, name):
                        return

        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(create, names))
    assert sorted(t["name"] for t in sandbox.objects()["perftest_tasks"]) == sorted(names)


def test_a_wrong_secret_key_names_the_variables_never_the_secret(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    config = ProviderConfig(
        name="perftest",
        type="perftest",
        spec={
            "endpoint": sandbox.url,
            "cloud_project_id": CLOUD,
            "region": "local",
            "credentials": {"access_key_env": "MY_AK", "secret_key_env": "MY_SK"},
            "rate_limit": 100.0,
        },
        source=SourceRef("p.yaml", 1),
    )
    environ = {"MY_AK": "SANDBOXAK", "MY_SK": "not-the-right-secret"}
    client = build_clients({"perftest": config}, environ=environ, sleep=sleeps.append)["perftest"]
    assert isinstance(client, PerfTestClient)
    with client, pytest.raises(PermanentProviderError) as caught:
        client.get_task(1)
    assert caught.value.status == 401
    assert "$MY_AK" in str(caught.value) and "$MY_SK" in str(caught.value)
    assert "not-the-right-secret" not in str(caught.value)


# --- Toloka -------------------------------------------------------------------------------------------------


def test_toloka_batch_round_trip_in_the_sandbox(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    op_id = str(uuid.uuid4())
    items = suites("12", 5, "a")
    with toloka(sandbox.url, sleeps) as client:
        accepted = client.create_task_suites_async(operation_id=op_id, items=items, options={"allow_defaults": False})
        assert accepted.id == op_id
        done = client.wait_operation(op_id, poll_initial=0.01)
        assert done.status == "SUCCESS" and done.details["success_count"] == 5
        log = client.operation_log(op_id)
        assert sorted(e.item_idx for e in log if e.success) == [0, 1, 2, 3, 4]
        created = {e.output["task_suite_id"] for e in log}
        listed = list(client.iter_pool_suites("12", page_size=2))
        assert {s["id"] for s in listed} == created
        one = client.get_task_suite(sorted(created)[0])
        assert one is not None and one["pool_id"] == "12"
        assert client.get_task_suite("000000000c--000000000000000000000000") is None
        assert client.get_operation(str(uuid.uuid4())) is None
        again = client.create_task_suites_async(operation_id=op_id, items=items, options={})
        assert again.id == op_id and again.done


def test_toloka_create_after_a_lost_answer_is_resent_and_answered_by_the_existing_operation(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    sandbox.set_faults("at=1:lost_ack,methods=POST")
    op_id = str(uuid.uuid4())
    with toloka(sandbox.url, sleeps) as client:
        op = client.create_task_suites_async(operation_id=op_id, items=suites("12", 3, "x"), options={})
        assert op.id == op_id
        assert client.wait_operation(op_id, poll_initial=0.01).status == "SUCCESS"
    routes = sandbox.stats()["routes"]["POST /api/v1/task-suites"]
    assert routes.get("409") == 1
    assert len(sandbox.objects()["task_suites"]) == 3


def test_toloka_batches_under_random_faults_are_created_exactly_once(
    sandbox: SandboxHandle, sleeps: list[float]
) -> None:
    sandbox.set_faults("500=0.15,503=0.05,500_after=0.1,429=0.1,lost_ack=0.1,malformed=0.05,seed=5")
    batches = {str(uuid.uuid4()): suites("7", 4, f"b{n}") for n in range(10)}
    with toloka(sandbox.url, sleeps, max_retries=10) as client:
        for op_id, items in batches.items():
            client.create_task_suites_async(operation_id=op_id, items=items, options={})
        for op_id in batches:
            assert client.wait_operation(op_id, poll_initial=0.01).status == "SUCCESS"
    objects = sandbox.objects()
    texts = sorted(s["tasks"][0]["input_values"]["text"] for s in objects["task_suites"])
    assert texts == sorted(f"b{n}-{k}" for n in range(10) for k in range(4))
    assert sleeps  # the faults did bite


def test_toloka_429_per_minute_waits_and_per_hour_stops(sandbox: SandboxHandle, sleeps: list[float]) -> None:
    sandbox.set_faults("at=1:429,interval=MIN,routes=toloka")
    with toloka(sandbox.url, sleeps) as client:
        assert client.get_operation(str(uuid.uuid4())) is None
        assert len(sleeps) == 1 and sleeps[0] >= 10
        sandbox.set_faults("at=1:429,interval=HOUR,routes=toloka")
        with pytest.raises(TransientProviderError, match="quota is exhausted"):
            client.get_operation(str(uuid.uuid4()))
    assert len(sleeps) == 1


def test_build_clients_with_a_sandbox_target_talks_to_the_sandbox(sandbox: SandboxHandle) -> None:
    configs = {
        "perftest": ProviderConfig(
            name="perftest",
            type="perftest",
            spec={
                "cloud_project_id": "f" * 32,
                "region": "cn-north-4",
                "credentials": {"token_env": "UNSET"},
                "rate_limit": 50.0,
            },
            source=SourceRef("p.yaml", 1),
        ),
        "toloka": ProviderConfig(
            name="toloka",
            type="toloka",
            spec={
                "endpoint": "https://toloka.dev",
                "credentials": {"token_env": "UNSET"},
                "rate_limit": 100.0,
            },
            source=SourceRef("p.yaml", 2),
        ),
    }
    clients = build_clients(configs, environ={}, sandbox=SandboxTarget(url=sandbox.url))
    perftest_client, toloka_client = clients["perftest"], clients["toloka"]
    assert isinstance(perftest_client, PerfTestClient) and isinstance(toloka_client, TolokaClient)
    with perftest_client, toloka_client:
        assert perftest_client.get_task(perftest_client.create_task(task("via-build"))) is not None
        assert toloka_client.get_operation(str(uuid.uuid4())) is None
