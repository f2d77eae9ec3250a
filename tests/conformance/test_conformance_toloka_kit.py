"""toloka-kit 1.2.3, unchanged, against the sandbox: creation (sync, async, via async), reads, and retries."""

from __future__ import annotations

import pytest

CLIENT = """
import json, sys, datetime
import toloka.client as toloka
from toloka.client.exceptions import ValidationApiError

args = json.load(sys.stdin)
client = toloka.TolokaClient(args["token"], url=args["url"], retries=3)

def suites(count, pool=args["pool"], overlap=1):
    return [toloka.TaskSuite(pool_id=pool, overlap=overlap, tasks=[toloka.Task(input_values={"n": i})])
            for i in range(count)]

mode = args["mode"]
if mode == "create":  # toloka-kit's default: async_mode=True, then waits and reads the log
    result = client.create_task_suites(suites(args["count"]), operation_id=args.get("operation_id"))
    out = {"indexes": sorted(result.items), "ids": sorted(s.id for s in result.items.values()),
           "errors": sorted(result.validation_errors)}
elif mode == "create_sync":
    result = client.create_task_suites(suites(args["count"]), async_mode=False)
    out = {"indexes": sorted(result.items), "ids": sorted(s.id for s in result.items.values())}
elif mode == "create_async":
    operation = client.create_task_suites_async(suites(args["count"]), operation_id=args["operation_id"])
    submitted = {"id": operation.id, "status": operation.status.value, "type": type(operation).__name__}
    done = client.wait_operation(operation, timeout=datetime.timedelta(seconds=30), disable_progress=True)
    log = client.get_operation_log(done.id)
    out = {"submitted": submitted, "status": done.status.value, "details": done.details,
           "log_ids": sorted(item.output["task_suite_id"] for item in log if item.success)}
elif mode == "read":
    found = list(client.get_task_suites(pool_id=args["pool"], batch_size=args["batch_size"]))
    one = client.get_task_suite(found[0].id)
    out = {"ids": [s.id for s in found], "one": {"id": one.id, "overlap": one.overlap,
           "remaining_overlap": one.remaining_overlap, "created": one.created.isoformat()}}
elif mode == "patch":  # patch_task_suite, then patch_task_suite_overlap_or_min, on suites made here
    made = client.create_task_suites(suites(2, overlap=3), async_mode=False)
    first, second = (made.items[key].id for key in sorted(made.items))
    patched = client.patch_task_suite(first, overlap=5, issuing_order_override=2.5, open_pool=True)
    infinite = client.patch_task_suite(second, infinite_overlap=True)
    stopped = client.patch_task_suite_overlap_or_min(first, overlap=0)
    out = {"first": first, "second": second,
           "patched": {"id": patched.id, "overlap": patched.overlap, "remaining_overlap": patched.remaining_overlap,
                       "issuing_order_override": patched.issuing_order_override},
           "infinite": {"id": infinite.id, "infinite_overlap": infinite.infinite_overlap, "overlap": infinite.overlap},
           "stopped": {"id": stopped.id, "overlap": stopped.overlap, "remaining_overlap": stopped.remaining_overlap}}
elif mode == "invalid":
    try:
        client.create_task_suites(suites(2, overlap=0), async_mode=args["async_mode"])
        out = {"raised": None}
    except ValidationApiError as exc:
        out = {"raised": type(exc).__name__, "payload_keys": sorted(exc.payload)}
print(json.dumps(out))
"""


@pytest.fixture
def run_kit(sandbox, official_clients):
    def run(mode, **args):
        return official_clients.run(
            CLIENT, {"url": sandbox.url, "token": sandbox.toloka_token, "pool": "4242", "mode": mode, **args}
        )

    return run


def _suite_ids(sandbox):
    return sorted(s["id"] for s in sandbox.objects()["task_suites"])


def test_create_task_suites_via_an_async_operation(run_kit, sandbox):
    out = run_kit("create", count=5)
    assert out["indexes"] == ["0", "1", "2", "3", "4"] and out["errors"] == []
    assert out["ids"] == _suite_ids(sandbox)


def test_create_task_suites_synchronously(run_kit, sandbox):
    out = run_kit("create_sync", count=3)
    assert out["indexes"] == ["0", "1", "2"] and out["ids"] == _suite_ids(sandbox)


def test_create_task_suites_async_and_wait_operation(run_kit, sandbox):
    operation_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    out = run_kit("create_async", count=4, operation_id=operation_id)
    assert out["submitted"] == {
        "id": operation_id,
        "status": "PENDING",
        "type": "TaskSuiteCreateBatchOperation",
    }
    assert out["status"] == "SUCCESS" and out["details"]["success_count"] == 4
    assert out["log_ids"] == _suite_ids(sandbox)


def test_get_task_suites_pages_through_everything(run_kit, sandbox):
    run_kit("create_sync", count=7)
    out = run_kit("read", batch_size=3)
    assert out["ids"] == _suite_ids(sandbox)
    assert out["one"]["overlap"] == 1 and out["one"]["remaining_overlap"] == 1
    assert out["one"]["created"].endswith("+00:00")  # the client reads the zoneless time as UTC


def test_patch_task_suite_and_overlap_or_min_change_suites_in_place(run_kit, sandbox):
    sandbox.add_pool("4242", default_overlap=1, status="CLOSED")
    out = run_kit("patch")
    first, second = out["first"], out["second"]
    assert out["patched"] == {"id": first, "overlap": 5, "remaining_overlap": 5, "issuing_order_override": 2.5}
    assert out["infinite"] == {"id": second, "infinite_overlap": True, "overlap": None}
    assert out["stopped"] == {"id": first, "overlap": 0, "remaining_overlap": 0}
    held = {s["id"]: s for s in sandbox.objects()["task_suites"]}
    assert sorted(held) == sorted([first, second])
    stopped = held[first]
    assert (stopped["overlap"], stopped["remaining_overlap"], stopped["issuing_order_override"]) == (0, 0, 2.5)
    assert held[second]["infinite_overlap"] is True and "overlap" not in held[second]
    pools = {p["id"]: p["status"] for p in sandbox.objects()["pools"]}
    assert pools["4242"] == "OPEN"  # open_pool=true reached the sandbox
    routes = sandbox.stats()["routes"]
    assert routes["PATCH /api/v1/task-suites/{suite_id}"] == {"200": 2}
    assert routes["PATCH /api/v1/task-suites/{suite_id}/set-overlap-or-min"] == {"200": 1}


@pytest.mark.parametrize("async_mode", [False, True])
def test_invalid_suites_raise_validation_api_error(run_kit, sandbox, async_mode):
    out = run_kit("invalid", async_mode=async_mode)
    assert out == {"raised": "ValidationApiError", "payload_keys": ["0", "1"]}
    assert sandbox.objects()["task_suites"] == []


@pytest.mark.parametrize("fault", ["500_after", "lost_ack"])
def test_a_retry_after_the_work_was_done_meets_409_and_creates_one_set(run_kit, sandbox, fault):
    """The first POST creates the operation and then fails (a 500 or a dropped answer); toloka-kit retries
    with the same operation id, gets 409 OPERATION_ALREADY_EXISTS, reads the operation, and reports the
    suites of the first attempt. Exactly one set exists."""
    sandbox.set_faults(f"at=1:{fault},routes=toloka")
    out = run_kit("create", count=3, operation_id="9f0c4e3a-7a43-4e8e-9d55-0e1f5b7c2a10")
    assert out["indexes"] == ["0", "1", "2"] and out["errors"] == []
    assert out["ids"] == _suite_ids(sandbox) and len(out["ids"]) == 3
    stats = sandbox.stats()
    assert stats["faults"] == {fault: 1}
    assert stats["routes"]["POST /api/v1/task-suites"].get("409") == 1
    assert len(sandbox.objects()["operations"]) == 1
