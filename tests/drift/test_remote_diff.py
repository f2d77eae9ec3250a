"""No false alarms: what was sent against what the remote holds (``reconciler.drift``).

Three kinds of test:

- ``cases/<behaviour>/``: ``sent.json`` (``kind``, ``address`` and the recorded ``spec``), ``remote.json`` (the
  view read back, as the API answers it) and ``expected.json`` (the findings, ``path``/``sent``/``remote``, in
  order). To add a behaviour, add a folder.
- generated (hypothesis): a healthy remote, built from the sent spec as the emulator builds its documents and
  given any values of the server's own fields, is never drift; changing any one sent field in it is drift at
  exactly that field's path.
- the sandbox over real HTTP: what it answers for an applied suite or task, then worked on and edited behind
  the tool's back through its admin routes; and proof that the generated healthy remotes have its shapes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.sandbox_clients import PerfTestClient, TolokaClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.drift import (
    PERFTEST_SERVER_MANAGED,
    SUITE_SERVER_MANAGED,
    Finding,
    finding_fingerprint,
    remote_diff,
)
from reconciler.errors import PermanentProviderError, StateError
from reconciler.kinds import PERFTEST_TASK, TASK_SUITE, Metadata, PerfTestTaskSpec, TaskSuiteSpec
from reconciler.resources import perftest_task_spec, task_suite_spec
from reconciler.sandbox.validation import suite_document

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(path.name for path in CASES.iterdir() if path.is_dir())
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SUITE_ADDRESS, TASK_ADDRESS = "TaskSuite/greetings", "PerfTestTask/smoke"
OPTIONAL_SUITE_FIELDS = ("reserved_for", "unavailable_for", "traits_all_of", "traits_any_of", "traits_none_of_any")


def _wire(value: Any) -> Any:
    """A value as it comes back over the wire: through JSON text."""
    return json.loads(json.dumps(value))


def _found(findings: list[Finding]) -> list[dict[str, Any]]:
    return [{"path": f.path, "sent": f.sent, "remote": f.remote} for f in findings]


# --- the cases -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(name: str) -> None:
    folder = CASES / name
    sent = json.loads((folder / "sent.json").read_text())
    remote = json.loads((folder / "remote.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())

    findings = remote_diff(sent["kind"], sent["address"], sent["spec"], remote)

    assert _found(findings) == expected
    for finding in findings:
        assert finding.kind == sent["kind"] and finding.address == sent["address"]
        assert finding.fingerprint == finding_fingerprint(
            finding.kind, finding.address, finding.path, finding.sent, finding.remote
        )
    assert len({f.fingerprint for f in findings}) == len(findings)


def test_fingerprint_is_the_sha256_of_the_findings_canonical_json_so_other_tools_can_recompute_it() -> None:
    text = '{"address":"TaskSuite/greetings","kind":"TaskSuite","path":"overlap","remote":10,"sent":3}'
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()

    assert finding_fingerprint(TASK_SUITE, SUITE_ADDRESS, "overlap", 3, 10) == expected


def test_fingerprint_stays_when_the_server_spells_a_number_differently_and_changes_with_the_drift() -> None:
    one = finding_fingerprint(TASK_SUITE, SUITE_ADDRESS, "overlap", 3, 10)

    assert finding_fingerprint(TASK_SUITE, SUITE_ADDRESS, "overlap", 3.0, 10.0) == one
    assert finding_fingerprint(TASK_SUITE, SUITE_ADDRESS, "overlap", 3, 11) != one
    assert finding_fingerprint(TASK_SUITE, "TaskSuite/other", "overlap", 3, 10) != one
    assert finding_fingerprint(TASK_SUITE, SUITE_ADDRESS, "overlap", True, 10) != one


def test_findings_serialise_to_json_for_an_alerting_job() -> None:
    [finding] = remote_diff(TASK_SUITE, SUITE_ADDRESS, {"pool_id": "1", "overlap": 3}, {"pool_id": "1", "overlap": 4})

    assert json.loads(json.dumps(finding.as_json())) == {
        "kind": TASK_SUITE,
        "address": SUITE_ADDRESS,
        "path": "overlap",
        "sent": 3,
        "remote": 4,
        "fingerprint": finding.fingerprint,
    }


def test_a_remote_view_that_is_not_an_object_is_an_error_naming_the_resource() -> None:
    with pytest.raises(PermanentProviderError, match="TaskSuite/greetings"):
        remote_diff(TASK_SUITE, SUITE_ADDRESS, {"pool_id": "1"}, ["not", "a", "suite"])
    with pytest.raises(PermanentProviderError, match="case_list"):
        remote_diff(PERFTEST_TASK, TASK_ADDRESS, {"case_id_list": [1]}, {"taskInfo": {"case_list": [{"id": 1}]}})
    with pytest.raises(StateError, match="Pool"):
        remote_diff("Pool", "Pool/x", {}, {})


# --- generated: healthy remotes and one changed field -----------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)


def _key(longest: int) -> st.SearchStrategy[str]:
    """A key of input or output values: drift names a field by a dotted path, so a key is never empty and holds
    no dot (Toloka's input specs name fields with letters, digits and underscores)."""
    return st.text(min_size=1, max_size=longest).filter(lambda key: "." not in key)


_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_key(4), inner, max_size=3),
    max_leaves=8,
)
_values = st.dictionaries(_key(6), _json, max_size=4)
_names = st.lists(st.text(min_size=1, max_size=6), max_size=3)
_solution = st.fixed_dictionaries({"output_values": _values}, optional={"correctness_weight": st.floats(0, 1)})
_task = st.fixed_dictionaries(
    {"input_values": _values},
    optional={"known_solutions": st.lists(_solution, min_size=1, max_size=2), "message_on_unknown_solution": st.text()},
)


@st.composite
def suite_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid TaskSuite spec as ``task_suite_spec`` records it."""
    allow_defaults = draw(st.booleans())
    doc: dict[str, Any] = {
        "pool_id": str(draw(st.integers(1, 10**9))),
        "tasks": draw(st.lists(_task, min_size=1, max_size=3)),
        "options": {"allow_defaults": allow_defaults, "open_pool": draw(st.booleans())},
    }
    optional = {
        "overlap": st.integers(1, 30000),
        "infinite_overlap": st.booleans(),
        "mixed": st.booleans(),
        "issuing_order_override": st.floats(-99999.99999, 99999.99999),
        "latitude": st.floats(-90, 90),
        "longitude": st.floats(-180, 180),
        **dict.fromkeys(OPTIONAL_SUITE_FIELDS, _names),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(values)
    if not allow_defaults and not doc.get("infinite_overlap"):
        doc.setdefault("overlap", draw(st.integers(1, 30000)))
    return task_suite_spec(TaskSuiteSpec.model_validate(doc))


_server_suite_fields = st.fixed_dictionaries(
    {
        "id": st.text(max_size=40),
        "created": st.text(max_size=30),
        "remaining_overlap": st.integers(0, 30000),
        "automerged": st.booleans(),
    }
)
_unsent_suite_fields = st.fixed_dictionaries(
    {},
    optional={
        "overlap": st.integers(1, 30000),
        "infinite_overlap": st.booleans(),
        "mixed": st.booleans(),
        "issuing_order_override": st.floats(-99999.99999, 99999.99999),
        "latitude": st.floats(-90, 90),
        "longitude": st.floats(-180, 180),
        **dict.fromkeys(OPTIONAL_SUITE_FIELDS, _names),
    },
)


def healthy_suite(
    sent: dict[str, Any], default_overlap: int, server: dict[str, Any], unsent: dict[str, Any], task_ids: list[str]
) -> dict[str, Any]:
    """The suite the emulator keeps for ``sent`` (its own ``suite_document``), with the server's fields and
    values of fields the tool did not send, read back through JSON."""
    doc = suite_document(sent, default_overlap=default_overlap)
    doc.update({k: v for k, v in unsent.items() if k not in sent})
    doc.update(server)
    for task, task_id in zip(doc["tasks"], task_ids, strict=False):
        task["id"] = task_id
    return dict(_wire(doc))


@SETTINGS
@given(
    sent=suite_specs(),
    default_overlap=st.integers(1, 30000),
    server=_server_suite_fields,
    unsent=_unsent_suite_fields,
    task_ids=st.lists(st.text(max_size=40), max_size=3),
)
def test_suite_with_any_values_of_the_servers_fields_is_never_drift(
    sent: dict[str, Any], default_overlap: int, server: dict[str, Any], unsent: dict[str, Any], task_ids: list[str]
) -> None:
    remote = healthy_suite(sent, default_overlap, server, unsent, task_ids)

    assert remote_diff(TASK_SUITE, SUITE_ADDRESS, sent, remote) == []


def _leaf_paths(value: Any, path: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [p for key, inner in value.items() for p in _leaf_paths(inner, f"{path}.{key}")]
    if isinstance(value, list) and value:
        return [p for index, inner in enumerate(value) for p in _leaf_paths(inner, f"{path}.{index}")]
    return [path]


def suite_field_paths(sent: dict[str, Any]) -> list[str]:
    """Every field the tool sent, at the depth drift names it: a set whole, user values down to each leaf."""
    paths = [key for key in sent if key not in ("tasks", *SUITE_SERVER_MANAGED)]
    for index, task in enumerate(sent["tasks"]):
        prefix = f"tasks.{index}"
        paths += _leaf_paths(task["input_values"], f"{prefix}.input_values")
        if "message_on_unknown_solution" in task:
            paths.append(f"{prefix}.message_on_unknown_solution")
        for number, solution in enumerate(task.get("known_solutions", ())):
            paths += _leaf_paths(solution["output_values"], f"{prefix}.known_solutions.{number}.output_values")
            paths.append(f"{prefix}.known_solutions.{number}.correctness_weight")
    return paths


def changed(value: Any) -> Any:
    return value + "~" if isinstance(value, str) else "changed"


def set_path(doc: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def get_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


@SETTINGS
@given(sent=suite_specs(), server=_server_suite_fields, data=st.data())
def test_any_one_sent_suite_field_changed_remotely_is_drift_at_exactly_that_path(
    sent: dict[str, Any], server: dict[str, Any], data: st.DataObject
) -> None:
    remote = healthy_suite(sent, 1, server, {}, [])
    path = data.draw(st.sampled_from(suite_field_paths(sent)))
    set_path(remote, path, changed(get_path(remote, path)))

    findings = remote_diff(TASK_SUITE, SUITE_ADDRESS, sent, remote)

    assert [f.path for f in findings] == [path]
    assert findings[0].remote == get_path(remote, path)


def healthy_task_info(sent: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
    """The answer of ``GET /v1/{project_id}/tasks/{id}`` for a task created with ``sent``, shaped as the
    emulator shapes it (``test_the_healthy_task_is_shaped_as_the_sandbox_answers`` holds it to that)."""
    info = {key: sent[key] for key in ("name", "project_id", "parallel", "operate_mode")}
    info["case_list"] = [
        {"case_id": case_id, "name": f"case-{case_id}", "case_type": 0, "status": 0, "sort": index}
        for index, case_id in enumerate(sent["case_id_list"])
    ]
    info.update(server)
    return {"code": "SVCSTG.CPTS.0000000", "message": "success", "taskInfo": _wire(info)}


_perftest_specs = st.builds(
    lambda name, spec: perftest_task_spec(Metadata(name=name), PerfTestTaskSpec.model_validate(spec)),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.fixed_dictionaries(
        {
            "parallel": st.booleans(),
            "project_id": st.integers(1, 10**6),
            "case_id_list": st.lists(st.integers(1, 10**6), max_size=5),
        },
        optional={"enable_full_link": st.booleans(), "operate_mode": st.sampled_from([0, 1, 2])},
    ),
)
_server_task_fields = st.fixed_dictionaries(
    {
        "run_status": st.integers(0, 10),
        "create_time": st.text(max_size=20),
        "update_time": st.text(max_size=20),
        "bench_concurrent": st.integers(0, 10**5),
        "description": st.text(max_size=10),
        "related_temp_running_data": st.lists(st.dictionaries(st.text(max_size=4), _scalars, max_size=2), max_size=2),
    },
    optional={"task_run_info": st.dictionaries(st.text(max_size=4), _scalars, max_size=3)},
)


@SETTINGS
@given(sent=_perftest_specs, server=_server_task_fields, shuffled=st.randoms(use_true_random=False))
def test_perftest_task_run_and_worked_on_is_never_drift(
    sent: dict[str, Any], server: dict[str, Any], shuffled: Any
) -> None:
    remote = healthy_task_info(sent, server)
    shuffled.shuffle(remote["taskInfo"]["case_list"])

    assert set(server) <= set(PERFTEST_SERVER_MANAGED)
    assert remote_diff(PERFTEST_TASK, TASK_ADDRESS, sent, remote) == []


@SETTINGS
@given(sent=_perftest_specs, server=_server_task_fields, data=st.data())
def test_any_one_sent_perftest_field_changed_remotely_is_drift_at_exactly_that_path(
    sent: dict[str, Any], server: dict[str, Any], data: st.DataObject
) -> None:
    remote = healthy_task_info(sent, server)
    info = remote["taskInfo"]
    path = data.draw(st.sampled_from(["name", "parallel", "project_id", "operate_mode", "case_id_list"]))
    if path == "case_id_list":
        info["case_list"].append({"case_id": 0, "name": "added", "case_type": 0, "status": 0, "sort": 99})
    else:
        info[path] = changed(info[path])

    assert [f.path for f in remote_diff(PERFTEST_TASK, TASK_ADDRESS, sent, remote)] == [path]


# --- the sandbox over real HTTP ----------------------------------------------------------------------------------

SANDBOX_SUITE: dict[str, Any] = task_suite_spec(
    TaskSuiteSpec.model_validate(
        {
            "pool_id": "1001",
            "overlap": 3,
            "issuing_order_override": 1.5,
            "reserved_for": ["w2", "w1"],
            "latitude": 10.0,
            "tasks": [
                {"input_values": {"text": "hello", "n": 1}},
                {"input_values": {"text": "bye"}, "known_solutions": [{"output_values": {"ok": True}}]},
            ],
            "options": {"open_pool": True},
        }
    )
)


def _apply_suite(sandbox: Any) -> tuple[TolokaClient, str]:
    toloka = TolokaClient(sandbox)
    body = {k: v for k, v in SANDBOX_SUITE.items() if k != "options"}
    response = toloka.create([body], **SANDBOX_SUITE["options"])
    assert response.status_code == 201, response.text
    suite_id: str = response.json()["items"]["0"]["id"]
    return toloka, suite_id


def test_suite_applied_worked_on_and_its_pool_closed_is_in_sync_and_an_overlap_edit_is_drift(sandbox: Any) -> None:
    toloka, suite_id = _apply_suite(sandbox)
    sandbox.patch_object("task_suites", suite_id, {"remaining_overlap": 0, "automerged": True})
    sandbox.patch_object("pools", "1001", {"status": "CLOSED"})

    by_id = toloka.get(f"/task-suites/{suite_id}").json()
    [listed] = toloka.get("/task-suites", pool_id="1001", sort="id", limit=300).json()["items"]
    assert remote_diff(TASK_SUITE, SUITE_ADDRESS, SANDBOX_SUITE, by_id) == []
    assert remote_diff(TASK_SUITE, SUITE_ADDRESS, SANDBOX_SUITE, listed) == []

    sandbox.patch_object("task_suites", suite_id, {"overlap": 7})
    edited = toloka.get(f"/task-suites/{suite_id}").json()
    assert _found(remote_diff(TASK_SUITE, SUITE_ADDRESS, SANDBOX_SUITE, edited)) == [
        {"path": "overlap", "sent": 3, "remote": 7}
    ]


def test_the_healthy_suite_is_shaped_as_the_sandbox_answers(sandbox: Any) -> None:
    toloka, suite_id = _apply_suite(sandbox)
    answered = toloka.get(f"/task-suites/{suite_id}").json()
    server = {key: answered[key] for key in ("id", "created", "remaining_overlap", "automerged")}

    assert healthy_suite(SANDBOX_SUITE, 1, server, {}, []) == answered


def _apply_task(sandbox: Any) -> tuple[PerfTestClient, int, dict[str, Any]]:
    sent = perftest_task_spec(
        Metadata(name="smoke"),
        PerfTestTaskSpec.model_validate({"parallel": True, "project_id": 42, "case_id_list": [3, 1, 2]}),
    )
    perftest = PerfTestClient(sandbox)
    response = perftest.request("POST", f"/v3/{perftest.project}/tasks", body=sent)
    assert response.status_code == 201, response.text
    return perftest, response.json()["task_id"], sent


def test_perftest_task_applied_and_run_is_in_sync_and_a_console_edit_is_drift(sandbox: Any) -> None:
    perftest, task_id, sent = _apply_task(sandbox)
    sandbox.patch_object(
        "perftest_tasks", task_id, {"run_status": 9, "update_time": "2030-01-01T00:00:00Z", "bench_concurrent": 20}
    )

    assert remote_diff(PERFTEST_TASK, TASK_ADDRESS, sent, perftest.show_task(task_id).json()) == []

    sandbox.patch_object("perftest_tasks", task_id, {"name": "smoke-edited", "case_id_list": [3, 1]})
    assert _found(remote_diff(PERFTEST_TASK, TASK_ADDRESS, sent, perftest.show_task(task_id).json())) == [
        {"path": "case_id_list", "sent": [3, 1, 2], "remote": [3, 1]},
        {"path": "name", "sent": "smoke", "remote": "smoke-edited"},
    ]


def test_the_healthy_task_is_shaped_as_the_sandbox_answers(sandbox: Any) -> None:
    perftest, task_id, sent = _apply_task(sandbox)
    answered = perftest.show_task(task_id).json()
    info = answered["taskInfo"]
    server = {key: info[key] for key in info if key in PERFTEST_SERVER_MANAGED and key != "case_list"}

    assert healthy_task_info(sent, server) == answered
