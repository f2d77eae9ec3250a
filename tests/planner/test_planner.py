"""The planner is a pure function: desired resources and recorded summaries in, actions out."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.errors import PlanError
from reconciler.plan import ActionType, Plan, read_plan, write_plan
from reconciler.planner import explain, make_plan
from reconciler.resources import Resource, SourceRef, make_resource
from reconciler.state.base import ResourceSummary, Status


def suite(name: str, text: str = "hello", overlap: int = 3) -> Resource:
    spec = {
        "pool_id": "1",
        "overlap": overlap,
        "tasks": [{"input_values": {"text": text}}],
        "options": {"allow_defaults": False, "open_pool": False, "skip_invalid_items": False},
    }
    return make_resource(
        address=f"TaskSuite/{name}",
        kind="TaskSuite",
        provider="toloka",
        spec=spec,
        source=SourceRef("m.yaml", 1),
    )


def recorded(resource: Resource, status: Status = Status.CREATED, **overrides: Any) -> ResourceSummary:
    fields: dict[str, Any] = {
        "address": resource.address,
        "kind": resource.kind,
        "provider": resource.provider,
        "spec_hash": resource.spec_hash,
        "status": status,
        "remote_id": "r-" + resource.address,
        "operation_id": "op-1",
        "attempt": 0,
    }
    fields.update(overrides)
    return ResourceSummary(**fields)


def plan_for(
    desired: list[Resource], state: list[ResourceSummary], specs: dict[str, Any] | None = None, **kw: Any
) -> Plan:
    return make_plan(
        desired={r.address: r for r in desired},
        providers={},
        recorded=state,
        load_specs=lambda addresses: {a: (specs or {})[a] for a in addresses},
        lineage="lin",
        serial=7,
        workspace="default",
        manifest_digest="d",
        **kw,
    )


def types(plan: Plan) -> dict[str, ActionType]:
    return {a.address: a.type for a in plan.actions}


def test_resource_missing_from_state_is_a_create() -> None:
    plan = plan_for([suite("a"), suite("b")], [])
    assert types(plan) == {"TaskSuite/a": ActionType.CREATE, "TaskSuite/b": ActionType.CREATE}
    assert plan.has_changes


def test_created_resource_with_same_hash_is_a_noop() -> None:
    a = suite("a")
    plan = plan_for([a], [recorded(a)])
    assert plan.actions == ()
    assert plan.noop_count == 1
    assert not plan.has_changes


def test_edited_spec_is_a_change_with_a_field_diff() -> None:
    old, new = suite("a", text="old"), suite("a", text="new")
    plan = plan_for([new], [recorded(old)], specs={"TaskSuite/a": old.spec})
    (action,) = plan.actions
    assert action.type is ActionType.CHANGE
    assert [(c.path, c.before, c.after) for c in action.diff] == [("tasks[0].input_values.text", "old", "new")]
    assert "--replace TaskSuite/a" in action.reason


def test_replace_flag_turns_a_change_into_a_replacement_with_a_new_attempt() -> None:
    old, new = suite("a", text="old"), suite("a", text="new")
    plan = plan_for([new], [recorded(old, attempt=2)], specs={}, replace=["TaskSuite/a"])
    (action,) = plan.actions
    assert action.type is ActionType.REPLACE
    assert action.attempt == 3
    assert action.remote_id == "r-TaskSuite/a"


def test_resource_only_in_state_is_an_orphan() -> None:
    gone = suite("gone")
    plan = plan_for([], [recorded(gone)])
    (action,) = plan.actions
    assert action.type is ActionType.ORPHAN
    assert "state forget TaskSuite/gone" in action.reason


def test_pending_intent_is_resolved_first_even_when_targeting_something_else() -> None:
    a, b = suite("a"), suite("b")
    plan = plan_for([a, b], [recorded(b, Status.PENDING, remote_id=None)], targets=["TaskSuite/a"])
    assert [x.type for x in plan.actions] == [ActionType.RESOLVE, ActionType.CREATE]
    assert plan.actions[0].operation_id == "op-1"


def test_failed_resource_is_created_again_with_the_next_attempt() -> None:
    a = suite("a")
    plan = plan_for([a], [recorded(a, Status.FAILED, attempt=1, remote_id=None)])
    (action,) = plan.actions
    assert (action.type, action.attempt) == (ActionType.CREATE, 2)


def test_target_limits_the_plan_and_covers_every_suite_of_a_set() -> None:
    a = suite("a")
    members = [
        make_resource(
            address=f"TaskSuiteSet/reviews/{k}",
            kind="TaskSuiteSet",
            provider="toloka",
            spec={"k": k},
            source=SourceRef("m.yaml", 1),
        )
        for k in ("r1", "r2")
    ]
    plan = plan_for([a, *members], [], targets=["TaskSuiteSet/reviews"])
    assert sorted(types(plan)) == ["TaskSuiteSet/reviews/r1", "TaskSuiteSet/reviews/r2"]


def test_unknown_target_is_an_error_that_names_it() -> None:
    with pytest.raises(PlanError, match="--target TaskSuite/nope"):
        plan_for([suite("a")], [], targets=["TaskSuite/nope"])


def test_diff_of_nested_values_is_readable() -> None:
    before = {"tasks": [{"input_values": {"text": "a", "lang": "en"}}], "overlap": 1}
    after = {"tasks": [{"input_values": {"text": "a", "product": "x"}}], "overlap": 2}
    changes = {(c.path, c.change) for c in explain(before, after)}
    assert changes == {
        ("overlap", "changed"),
        ("tasks[0].input_values.lang", "removed"),
        ("tasks[0].input_values.product", "added"),
    }


def test_plan_file_round_trips_every_action(tmp_path: Any) -> None:
    old, new = suite("a", text="old"), suite("a", text="new")
    plan = plan_for([new, suite("b")], [recorded(old), recorded(suite("c"))], specs={"TaskSuite/a": old.spec})
    path = tmp_path / "plan.json"
    write_plan(plan, path)
    again = read_plan(path)
    assert again.actions == plan.actions
    assert (again.lineage, again.serial, again.manifest_digest) == ("lin", 7, "d")
    assert again.counts() == plan.counts()
