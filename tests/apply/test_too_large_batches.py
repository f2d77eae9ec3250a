"""Batches Toloka refuses as too large (413): apply measures them so the emulator accepts every one, and when a
server refuses one anyway, nothing was created, so apply splits it and sends the halves until they fit, every
suite created exactly once, even when the process is killed in the middle of a split."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.apply_project import Project, assert_exactly_once, make_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CREATE_ROUTE = "POST /api/v1/task-suites"
#: Under the 40 suites of ``make_project`` (1,600 bytes of inputs as the sandbox counts them), over 20 of them.
HALF_FITS = 1_000


def refusals(sandbox: Any) -> int:
    return int(sandbox.stats()["routes"].get(CREATE_ROUTE, {}).get("413", 0))


def limit_of(sandbox: Any, max_input_bytes: int) -> None:
    runtime = sandbox.server.runtime
    runtime.limits = dataclasses.replace(runtime.limits, max_input_bytes=max_input_bytes)


@pytest.fixture
def strict_sandbox(sandbox_factory: Callable[..., Any]) -> Callable[[int], Any]:
    """``strict_sandbox(max_input_bytes)``: a sandbox of the test's own that takes that many bytes of input values
    a request (as ``toloka_suites.input_values_bytes`` counts them); started once per test."""

    started: list[Any] = []

    def start(max_input_bytes: int) -> Any:
        if not started:
            started.append(sandbox_factory(auto_create=True))
        limit_of(started[0], max_input_bytes)
        return started[0]

    return start


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
INPUT_VALUES = st.dictionaries(TEXT, TEXT | st.integers() | st.booleans() | st.none(), min_size=1, max_size=4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(INPUT_VALUES, min_size=1, max_size=6), spaced=st.booleans(), escaped=st.booleans())
def test_the_emulator_counts_input_values_as_compact_utf8_however_the_request_spells_them(
    strict_sandbox: Callable[[int], Any], values: list[dict[str, Any]], spaced: bool, escaped: bool
) -> None:
    """The count api-notes.md leaves open, as the sandbox documents it: each task's values, compact, in UTF-8."""
    sandbox = strict_sandbox(1024 * 1024)
    size = sum(len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) for v in values)
    suites = [{"pool_id": "7001", "overlap": 1, "tasks": [{"input_values": v}]} for v in values]
    body = json.dumps(suites, ensure_ascii=escaped, separators=(", ", ": ") if spaced else (",", ":"))
    with httpx.Client(base_url=sandbox.url, headers=sandbox.toloka_headers) as client:
        answers = []
        for limit in (size, size - 1):
            limit_of(sandbox, limit)
            params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
            answer = client.post(
                "/api/v1/task-suites", params=params, content=body, headers={"Content-Type": "application/json"}
            )
            answers.append(answer.status_code)
    assert answers == [202, 413]


def rows_project(root: Path, sandbox: Any, rows: int) -> Project:
    """A CSV of ``rows`` rows of about 45 bytes, five rows to a suite."""
    proj = make_project(root, sandbox, tasks=0, rows=0, batch_size=5000)
    proj.write(
        "toloka/rows.yaml",
        """\
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata: {name: rows}
spec:
  source: data/rows.csv
  key: id
  tasks_per_suite: 5
  template: {pool_id: "7001", overlap: 1}
""",
    )
    lines = [f"r{n:06d},review {n} says it is quite fine,en\n" for n in range(rows)]
    proj.write("toloka/data/rows.csv", "id,text,lang\n" + "".join(lines))
    return proj


def test_a_hundred_thousand_rows_five_to_a_suite_apply_completely_in_one_run(tmp_path: Path, sandbox: Any) -> None:
    proj = rows_project(tmp_path, sandbox, 100_000)

    done = proj.apply()

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "20000 created, 0 failed" in done.stdout
    suites = sandbox.objects()["task_suites"]
    ids = [task["input_values"]["id"] for s in suites for task in s["tasks"]]
    assert len(suites) == 20_000
    assert sorted(ids) == [f"r{n:06d}" for n in range(100_000)]
    recorded = proj.recorded()
    assert len(recorded) == 20_000
    assert {r.status.value for r in recorded.values()} == {"created"}
    assert refusals(sandbox) == 0


def test_a_batch_the_server_refuses_as_too_large_is_split_until_it_fits(
    tmp_path: Path, strict_sandbox: Callable[[int], Any]
) -> None:
    sandbox = strict_sandbox(300)  # seven or so suites a request: the batch of 40 is halved three times
    proj = make_project(tmp_path, sandbox, tasks=0, rows=40, batch_size=5000)

    done = proj.apply()

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "40 created, 0 failed" in done.stdout
    assert_exactly_once(proj, tasks=0, rows=40)
    assert refusals(sandbox) >= 3


def test_a_refusal_whatever_its_cause_splits_the_batch_and_fails_no_suite(tmp_path: Path, sandbox: Any) -> None:
    sandbox.set_faults("at=1:413,routes=toloka,methods=POST")
    proj = make_project(tmp_path, sandbox, tasks=0, rows=40, batch_size=5000)

    done = proj.apply()

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert refusals(sandbox) == 1
    assert sandbox.stats()["routes"][CREATE_ROUTE].get("202") == 2
    assert_exactly_once(proj, tasks=0, rows=40)


def test_a_suite_too_large_by_itself_fails_alone_and_the_rest_are_created(
    tmp_path: Path, strict_sandbox: Callable[[int], Any]
) -> None:
    sandbox = strict_sandbox(HALF_FITS)
    proj = make_project(tmp_path, sandbox, tasks=0, rows=0, batch_size=5000)
    proj.write(
        "toloka/big.yaml",
        f"""\
apiVersion: reconciler/v1
kind: TaskSuite
metadata: {{name: big}}
spec:
  pool_id: "5001"
  overlap: 1
  tasks: [{{input_values: {{text: "{"x" * 2000}"}}}}]
""",
    )
    proj.write("toloka/small.yaml", "---\n".join(small_suite(n) for n in range(6)))

    done = proj.apply()

    assert done.returncode == 1
    assert "TaskSuite/big" in done.stdout + done.stderr
    assert "too large" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    recorded = proj.recorded()
    assert recorded["TaskSuite/big"].status.value == "failed"
    assert {recorded[f"TaskSuite/small-{n}"].status.value for n in range(6)} == {"created"}
    assert len(sandbox.objects()["task_suites"]) == 6


def small_suite(n: int) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: TaskSuite
metadata: {{name: small-{n}}}
spec:
  pool_id: "5001"
  overlap: 1
  tasks: [{{input_values: {{text: "small {n}"}}}}]
"""


@pytest.mark.parametrize(
    "failpoint",
    [
        "after_intent:1",  # the batch recorded, not sent: the next run resends it, is refused, and splits it
        "after_intent:2",  # refused; the first half recorded, the batch still open
        "after_intent:3",  # both halves recorded, the batch still open
        "after_outcome:1",  # the batch closed, neither half sent
        "after_send:2",  # a half created, its outcome not recorded
    ],
)
def test_apply_after_a_kill_in_the_middle_of_a_split_creates_nothing_twice(
    tmp_path: Path, strict_sandbox: Callable[[int], Any], failpoint: str
) -> None:
    sandbox = strict_sandbox(HALF_FITS)
    proj = make_project(tmp_path, sandbox, tasks=0, rows=40, batch_size=5000)

    killed = proj.apply(extra_env={"RECONCILER_FAILPOINT": failpoint})
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    done = proj.apply()

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert_exactly_once(proj, tasks=0, rows=40)
    assert refusals(sandbox) == 1
