"""Recovery a month on: an apply killed after Toloka ran its batch, resumed once the operation's log is
archived (Toloka keeps logs for a month; a state restored from an old backup holds such intents). The suites
are recognised by their content and recorded under their ids; nothing is sent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.apply_project import assert_exactly_once, make_project
from helpers.sandbox_clients import TolokaClient

from reconciler.providers.toloka import batch_request
from reconciler.state import open_store

ROWS = 12


def archive_logs(sandbox: Any, intents: list[Any]) -> int:
    """Archive the log of each intent's operation that Toloka accepted; how many there were."""
    accepted = {op["id"] for op in sandbox.objects().get("operations", [])}
    archived = [i.operation_id for i in intents if i.operation_id in accepted]
    for operation_id in archived:
        sandbox.admin.archive_operation_log(operation_id)
    return len(archived)


def open_intents(state_file: Path) -> list[Any]:
    store = open_store(str(state_file), workspace="default", root=state_file.parent)
    try:
        return store.open_intents()
    finally:
        store.close()


def test_a_batch_whose_log_is_archived_is_settled_by_its_suites_content(tmp_path: Path, sandbox: Any) -> None:
    proj = make_project(tmp_path, sandbox, tasks=0, rows=ROWS, batch_size=5)
    killed = proj.apply(extra_env={"RECONCILER_FAILPOINT": "after_send:1"})
    assert killed.returncode == -9, killed.stderr
    assert archive_logs(sandbox, open_intents(proj.state_file)) >= 1
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly_once(proj, tasks=0, rows=ROWS)
    assert open_intents(proj.state_file) == []


def test_a_suite_copied_by_hand_since_leaves_the_address_unresolved_and_sends_nothing(
    tmp_path: Path, sandbox: Any
) -> None:
    proj = make_project(tmp_path, sandbox, tasks=0, rows=ROWS, batch_size=5)
    killed = proj.apply(extra_env={"RECONCILER_FAILPOINT": "after_send:1"})
    assert killed.returncode == -9
    intents = open_intents(proj.state_file)
    suites = sandbox.objects()["task_suites"]
    first = next(s for s in suites if s["tasks"][0]["input_values"]["id"] == "r00000")
    item = {k: v for k, v in first.items() if k in ("pool_id", "overlap")} | {
        "tasks": [{"input_values": t["input_values"]} for t in first["tasks"]]
    }
    items, options = batch_request([item])
    assert TolokaClient(sandbox).create(items, **options).status_code in (200, 201)
    assert archive_logs(sandbox, intents) >= 1

    done = proj.apply()

    assert done.returncode == 1
    assert "is archived" in done.stdout + done.stderr
    texts = [s["tasks"][0]["input_values"]["id"] for s in sandbox.objects()["task_suites"]]
    assert texts.count("r00000") == 2 and len(texts) == ROWS + 1  # the copy, and nothing sent again
    recorded = proj.recorded()
    assert recorded["TaskSuiteSet/reviews/r00000"].status.value == "pending"
    assert all(r.status.value == "created" for a, r in recorded.items() if not a.endswith("r00000"))
