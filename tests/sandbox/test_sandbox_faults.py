"""Fault injection: the grammar, what each fault does to the world and the answer, and replay by seed."""

from __future__ import annotations

import httpx
import pytest
from helpers.sandbox_clients import PerfTestClient, TolokaClient, suite

from reconciler.sandbox import FaultSpec, FaultSpecError


def test_a_full_spec_parses_and_prints_back():
    spec = FaultSpec.parse(
        "500=0.05,503=0.02,429=0.05,retry_after=1,lost_ack=0.02,latency_ms=5-50,malformed=0.01,seed=7"
    )
    assert spec.seed == 7 and spec.retry_after == 1 and spec.latency_ms == (5.0, 50.0)
    assert dict((f.label, rate) for f, rate in spec.rates) == {
        "500": 0.05,
        "503": 0.02,
        "429": 0.05,
        "lost_ack": 0.02,
        "malformed": 0.01,
    }
    assert FaultSpec.parse(str(spec)) == spec


def test_an_empty_spec_means_no_faults():
    assert FaultSpec.parse("").is_empty and FaultSpec.parse(None).is_empty


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("500", "not key=value"),
        ("500=2", "between 0 and 1"),
        ("500=abc", "not a probability"),
        ("600=0.1", "unknown fault spec item"),
        ("500=0.6,503=0.6", "add up to 1.2"),
        ("latency_ms=50-5", "A <= B"),
        ("routes=billing", "routes are"),
        ("interval=WEEK", "MIN, HOUR, DAY"),
        ("at=0:500", "N >= 1"),
        ("at=1:explode", "not a fault"),
        ("seed=x", "non-negative integer"),
        ("500=0.1,500=0.2", "given twice"),
    ],
)
def test_a_bad_spec_is_a_value_error_naming_the_item(spec, fragment):
    with pytest.raises(ValueError, match=fragment) as caught:
        FaultSpec.parse(spec)
    assert isinstance(caught.value, FaultSpecError)


def test_an_injected_error_creates_nothing(sandbox):
    sandbox.set_faults("500=1")
    answer = PerfTestClient(sandbox).create_task()
    assert answer.status_code == 500 and answer.json()["code"] == "SVCSTG.CPTS.5000001"
    assert TolokaClient(sandbox).create([suite()]).json()["code"] == "INTERNAL_ERROR"
    objects = sandbox.objects()
    assert objects["perftest_tasks"] == [] and objects["task_suites"] == []


def test_an_error_after_the_work_leaves_the_object_created(sandbox):
    sandbox.set_faults("503_after=1")
    answer = PerfTestClient(sandbox).create_task(name="did-it-happen")
    assert answer.status_code == 503 and answer.json()["error_code"].startswith("APIGW.")
    assert [t["name"] for t in sandbox.objects()["perftest_tasks"]] == ["did-it-happen"]


def test_lost_ack_creates_the_object_but_drops_the_answer(sandbox):
    sandbox.set_faults("lost_ack=1")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        PerfTestClient(sandbox).create_task(name="lost")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        TolokaClient(sandbox).create([suite()], async_mode=True, operation_id="6d84114f-fcfc-473d-8249-1a4f3ea550eb")
    sandbox.set_faults(None)
    objects = sandbox.objects()
    assert [t["name"] for t in objects["perftest_tasks"]] == ["lost"]
    assert [op["id"] for op in objects["operations"]] == ["6d84114f-fcfc-473d-8249-1a4f3ea550eb"]


def test_malformed_is_a_2xx_whose_body_does_not_parse(sandbox):
    sandbox.set_faults("malformed=1")
    answer = PerfTestClient(sandbox).create_task()
    assert answer.status_code == 201
    with pytest.raises(ValueError):
        answer.json()
    assert len(sandbox.objects()["perftest_tasks"]) == 1


def test_injected_429_carries_retry_after_and_interval_only_when_configured(sandbox):
    toloka = TolokaClient(sandbox)
    sandbox.set_faults("429=1")
    bare = toloka.get("/task-suites")
    assert bare.status_code == 429 and "Retry-After" not in bare.headers and "payload" not in bare.json()
    sandbox.set_faults("429=1,retry_after=3,interval=MIN")
    full = toloka.get("/task-suites")
    assert full.headers["Retry-After"] == "3" and full.json()["payload"] == {"interval": "MIN"}
    cpts = PerfTestClient(sandbox).create_task()
    assert cpts.status_code == 429 and cpts.json()["error_code"] == "APIGW.0308"
    assert cpts.headers["Retry-After"] == "3"


def _statuses(sandbox, count):
    toloka = TolokaClient(sandbox)
    return [toloka.get("/task-suites").status_code for _ in range(count)]


def test_the_same_seed_replays_the_same_faults(sandbox):
    spec = "500=0.3,503=0.2,429=0.1,seed=7"
    sandbox.set_faults(spec)
    first = _statuses(sandbox, 40)
    sandbox.set_faults(spec)
    second = _statuses(sandbox, 40)
    sandbox.set_faults(spec.replace("seed=7", "seed=8"))
    other = _statuses(sandbox, 40)
    assert first == second
    assert first != other
    assert {500, 503, 429, 200} <= set(first)


def test_scripted_faults_hit_exactly_the_nth_request_in_scope(sandbox):
    sandbox.set_faults("at=2:500,at=4:503,routes=toloka")
    PerfTestClient(sandbox).create_task()  # out of scope: not counted
    assert _statuses(sandbox, 5) == [200, 500, 200, 503, 200]


def test_routes_and_methods_restrict_the_faults(sandbox):
    sandbox.set_faults("500=1,routes=perftest,methods=POST")
    assert _statuses(sandbox, 3) == [200, 200, 200]
    cpts = PerfTestClient(sandbox)
    assert cpts.show_task(1).status_code == 403  # a GET: untouched, answered by the API
    assert cpts.create_task().status_code == 500


def test_admin_routes_are_never_faulted(sandbox):
    sandbox.set_faults("500=1,lost_ack=0")
    assert httpx.get(f"{sandbox.url}/_sandbox/objects").status_code == 200
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").status_code == 200


def test_latency_delays_the_answer(sandbox):
    import time

    sandbox.set_faults("latency_ms=60-60")
    started = time.monotonic()
    _statuses(sandbox, 2)
    assert time.monotonic() - started >= 0.12


def test_a_bad_spec_over_http_is_a_400_and_keeps_the_old_faults(sandbox):
    sandbox.set_faults("503=1")
    answer = httpx.put(f"{sandbox.url}/_sandbox/faults", json={"spec": "500=7"})
    assert answer.status_code == 400 and "between 0 and 1" in answer.json()["error"]
    assert httpx.get(f"{sandbox.url}/_sandbox/faults").json()["spec"].startswith("503=1")


def test_faults_given_at_start_apply_from_the_first_request(sandbox_factory):
    sandbox = sandbox_factory(auto_create=True, faults="at=1:500")
    assert _statuses(sandbox, 2) == [500, 200]


def test_stats_count_requests_per_route_and_status_and_faults(sandbox):
    cpts = PerfTestClient(sandbox)
    cpts.create_task()
    cpts.create_task(name="")
    sandbox.set_faults("at=1:lost_ack")
    with pytest.raises(httpx.HTTPError):
        cpts.create_task()
    stats = sandbox.stats()
    assert stats["routes"]["POST /v3/{project_id}/tasks"] == {"201": 2, "400": 1}
    assert stats["faults"] == {"lost_ack": 1}
