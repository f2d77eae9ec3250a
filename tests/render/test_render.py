"""What a person or a pipeline sees of a plan and of an apply: ``reconciler.render`` fed plans and events directly."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from reconciler.applier import ApplyEvent, ApplyResult
from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.render import (
    FOLD_AFTER,
    FOLD_GROUPS_LARGER_THAN,
    ApplyReporter,
    Printer,
    plan_events,
    render_plan,
    summary_line,
    write_event,
)

SGR = re.compile(r"\x1b\[(\d+)m")
COLOURS = {"31": "red", "32": "green", "33": "yellow", "35": "magenta", "36": "cyan"}


def looks(line: str) -> tuple[str, str | None, bool]:
    """A line as a terminal shows it: its text, its colour and whether it is bold; a styled line must end by
    resetting the style, so that it does not leak into the next one."""
    codes = SGR.findall(line)
    assert not codes or line.endswith("\x1b[0m"), f"the style of {line!r} is not reset at its end"
    colour = next((COLOURS[code] for code in codes if code in COLOURS), None)
    return SGR.sub("", line), colour, "1" in codes


def action(action_type: ActionType, address: str, reason: str = "why", **fields: Any) -> Action:
    kind = address.split("/")[0]
    return Action(action_type, address, kind, "toloka", reason, **fields)


def plan_of(*actions: Action, noop: int = 0) -> Plan:
    return Plan(
        lineage="lin", serial=7, workspace="default", manifest_digest="digest", actions=actions, noop_count=noop
    )


def creates_of_set(name: str, count: int) -> list[Action]:
    return [action(ActionType.CREATE, f"TaskSuiteSet/{name}/k{i:03}", "not in the state") for i in range(count)]


def rendered(plan: Plan, *, verbose: bool = False, color: bool = False) -> list[str]:
    out = io.StringIO()
    render_plan(plan, Printer(out, color=color), verbose=verbose)
    return out.getvalue().splitlines()


EVERY_KIND = plan_of(
    action(ActionType.RESOLVE, "TaskSuite/interrupted", "an earlier apply was interrupted", operation_id="op-3"),
    action(ActionType.CREATE, "TaskSuite/fresh", "not in the state"),
    action(ActionType.CREATE, "TaskSuite/retried", "the last attempt failed; trying again", attempt=2),
    action(ActionType.REPLACE, "TaskSuite/replaced", "replacement requested", attempt=1, remote_id="r-1"),
    action(
        ActionType.CHANGE,
        "TaskSuite/changed",
        "the manifest differs",
        remote_id="r-2",
        diff=(
            FieldChange("overlap", "changed", 1, 2),
            FieldChange("tasks[0].input_values.lang", "removed", "en", None),
            FieldChange("tasks[0].input_values.product", "added", None, {"name": "Чайник", "id": 7}),
        ),
    ),
    action(ActionType.ORPHAN, "TaskSuite/gone", "no longer in the manifests", remote_id="r-3"),
    noop=4,
)
EVERY_KIND_SUMMARY = (
    "Plan: 2 to create, 1 to replace, 1 changed (refused without --replace), 1 to resolve, 1 orphaned, 4 unchanged."
)


# --- the plan as text -----------------------------------------------------------------------------------------


def test_plan_shows_every_action_with_its_sign_its_reason_and_its_field_diff_then_the_summary() -> None:
    assert rendered(EVERY_KIND) == [
        "reconciler will perform these actions:",
        "",
        "  ? TaskSuite/interrupted",
        "      # an earlier apply was interrupted",
        "  + TaskSuite/fresh",
        "  + TaskSuite/retried",
        "      # the last attempt failed; trying again",
        "  -/+ TaskSuite/replaced (remote id r-1)",
        "      # replacement requested",
        "  ~ TaskSuite/changed (remote id r-2)",
        "      # the manifest differs",
        "      ~ overlap: 1 -> 2",
        '      - tasks[0].input_values.lang: "en"',
        '      + tasks[0].input_values.product: {"id": 7, "name": "Чайник"}',
        "  ! TaskSuite/gone (remote id r-3)",
        "      # no longer in the manifests",
        "",
        EVERY_KIND_SUMMARY,
    ]


def test_a_plan_without_actions_says_there_are_no_changes_and_how_many_resources_are_up_to_date() -> None:
    assert rendered(plan_of(noop=12)) == ["No changes. The state matches the manifests (12 resources up to date)."]


def test_a_long_value_in_a_diff_is_cut_to_one_readable_line() -> None:
    long_text = "x" * 300
    plan = plan_of(action(ActionType.CHANGE, "TaskSuite/a", diff=(FieldChange("text", "changed", "short", long_text),)))

    (diff_line,) = (line for line in rendered(plan) if line.startswith("      ~ "))

    assert diff_line == '      ~ text: "short" -> "' + "x" * 116 + "..."


def test_summary_line_names_resolves_and_orphans_only_when_there_are_some() -> None:
    assert summary_line(plan_of(action(ActionType.CREATE, "TaskSuite/a"))) == (
        "Plan: 1 to create, 0 to replace, 0 changed (refused without --replace), 0 unchanged."
    )
    assert summary_line(EVERY_KIND) == EVERY_KIND_SUMMARY


# --- folding a large set ----------------------------------------------------------------------------------------


def test_a_large_set_shows_its_first_suites_then_one_line_for_the_rest() -> None:
    size = FOLD_GROUPS_LARGER_THAN + 1
    plan = plan_of(*creates_of_set("reviews", size), noop=2)

    lines = rendered(plan)

    shown = [f"  + TaskSuiteSet/reviews/k{i:03}" for i in range(FOLD_AFTER)]
    assert lines == [
        "reconciler will perform these actions:",
        "",
        *shown,
        f"  + ... and {size - FOLD_AFTER} more TaskSuiteSet/reviews/* to create (-v lists every one)",
        "",
        f"Plan: {size} to create, 0 to replace, 0 changed (refused without --replace), 2 unchanged.",
    ]


def test_verbose_lists_every_suite_of_a_large_set() -> None:
    size = FOLD_GROUPS_LARGER_THAN + 1
    plan = plan_of(*creates_of_set("reviews", size))

    lines = rendered(plan, verbose=True)

    assert lines[2:-2] == [f"  + TaskSuiteSet/reviews/k{i:03}" for i in range(size)]
    assert not any("more" in line for line in lines)


def test_a_set_up_to_the_folding_size_is_listed_in_full() -> None:
    plan = plan_of(*creates_of_set("reviews", FOLD_GROUPS_LARGER_THAN))

    assert rendered(plan)[2:-2] == [f"  + TaskSuiteSet/reviews/k{i:03}" for i in range(FOLD_GROUPS_LARGER_THAN)]


def test_only_suites_of_a_set_are_folded_and_each_set_and_action_type_on_its_own() -> None:
    many = FOLD_GROUPS_LARGER_THAN + 5
    suites = [action(ActionType.CREATE, f"TaskSuite/s{i:03}") for i in range(many)]
    changes = [
        action(ActionType.CHANGE, f"TaskSuiteSet/reviews/c{i}", "the manifest differs", remote_id=f"r{i}")
        for i in range(3)
    ]
    plan = plan_of(*suites, *creates_of_set("reviews", many), *creates_of_set("training", many), *changes)

    lines = rendered(plan)

    plain_suites = [line for line in lines if line.startswith("  + TaskSuite/")]
    assert plain_suites == [f"  + TaskSuite/s{i:03}" for i in range(many)]
    for name in ("reviews", "training"):
        assert [line for line in lines if line.startswith(f"  + TaskSuiteSet/{name}/")] == [
            f"  + TaskSuiteSet/{name}/k{i:03}" for i in range(FOLD_AFTER)
        ]
        assert f"  + ... and {many - FOLD_AFTER} more TaskSuiteSet/{name}/* to create (-v lists every one)" in lines
    assert [line for line in lines if line.startswith("  ~ ")] == [
        f"  ~ TaskSuiteSet/reviews/c{i} (remote id r{i})" for i in range(3)
    ]


# --- colour ------------------------------------------------------------------------------------------------------


def test_colour_marks_each_action_by_its_type_and_the_header_and_summary_in_bold() -> None:
    assert [looks(line) for line in rendered(EVERY_KIND, color=True)] == [
        ("reconciler will perform these actions:", None, True),
        ("", None, False),
        ("  ? TaskSuite/interrupted", "cyan", False),
        ("      # an earlier apply was interrupted", None, False),
        ("  + TaskSuite/fresh", "green", False),
        ("  + TaskSuite/retried", "green", False),
        ("      # the last attempt failed; trying again", None, False),
        ("  -/+ TaskSuite/replaced (remote id r-1)", "magenta", False),
        ("      # replacement requested", None, False),
        ("  ~ TaskSuite/changed (remote id r-2)", "yellow", False),
        ("      # the manifest differs", None, False),
        ("      ~ overlap: 1 -> 2", "yellow", False),
        ('      - tasks[0].input_values.lang: "en"', "red", False),
        ('      + tasks[0].input_values.product: {"id": 7, "name": "Чайник"}', "green", False),
        ("  ! TaskSuite/gone (remote id r-3)", "red", False),
        ("      # no longer in the manifests", None, False),
        ("", None, False),
        (EVERY_KIND_SUMMARY, None, True),
    ]
    assert [looks(line) for line in rendered(plan_of(noop=1), color=True)] == [
        ("No changes. The state matches the manifests (1 resource up to date).", "green", True)
    ]


def test_without_colour_there_are_no_escape_codes() -> None:
    out = io.StringIO()
    printer = Printer(out, color=False)

    render_plan(EVERY_KIND, printer)
    render_plan(plan_of(*creates_of_set("reviews", FOLD_GROUPS_LARGER_THAN + 1)), printer)
    render_plan(plan_of(noop=1), printer)

    text = out.getvalue()
    assert "\x1b" not in text
    assert "  ~ TaskSuite/changed (remote id r-2)\n" in text
    assert "more TaskSuiteSet/reviews/* to create" in text
    assert "No changes." in text


# --- the plan as JSON lines -----------------------------------------------------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\n"), f"not whole lines: {text!r}"
    return [json.loads(line) for line in text.splitlines()]


def written(events: Any) -> str:
    out = io.StringIO()
    for event in events:
        write_event(out, event)
    return out.getvalue()


def test_plan_events_are_one_json_object_per_line_per_action_then_a_summary() -> None:
    events = json_lines(written(plan_events(EVERY_KIND)))

    assert events == [
        {
            "type": "planned_change",
            "action": "resolve",
            "address": "TaskSuite/interrupted",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "an earlier apply was interrupted",
        },
        {
            "type": "planned_change",
            "action": "create",
            "address": "TaskSuite/fresh",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "not in the state",
        },
        {
            "type": "planned_change",
            "action": "create",
            "address": "TaskSuite/retried",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "the last attempt failed; trying again",
        },
        {
            "type": "planned_change",
            "action": "replace",
            "address": "TaskSuite/replaced",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "replacement requested",
            "remote_id": "r-1",
        },
        {
            "type": "planned_change",
            "action": "change",
            "address": "TaskSuite/changed",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "the manifest differs",
            "remote_id": "r-2",
            "diff": [
                {"path": "overlap", "change": "changed", "before": 1, "after": 2},
                {"path": "tasks[0].input_values.lang", "change": "removed", "before": "en", "after": None},
                {
                    "path": "tasks[0].input_values.product",
                    "change": "added",
                    "before": None,
                    "after": {"name": "Чайник", "id": 7},
                },
            ],
        },
        {
            "type": "planned_change",
            "action": "orphan",
            "address": "TaskSuite/gone",
            "kind": "TaskSuite",
            "provider": "toloka",
            "reason": "no longer in the manifests",
            "remote_id": "r-3",
        },
        {
            "type": "change_summary",
            "changes": {
                "resolve": 1,
                "import": 0,
                "create": 2,
                "replace": 1,
                "update": 0,
                "change": 1,
                "orphan": 1,
                "delete": 0,
                "noop": 4,
            },
            "has_changes": True,
            "lineage": "lin",
            "serial": 7,
            "manifest_digest": "digest",
        },
    ]


def test_a_plan_without_actions_is_one_summary_event_without_changes() -> None:
    assert json_lines(written(plan_events(plan_of(noop=3)))) == [
        {
            "type": "change_summary",
            "changes": {
                "resolve": 0,
                "import": 0,
                "create": 0,
                "replace": 0,
                "update": 0,
                "change": 0,
                "orphan": 0,
                "delete": 0,
                "noop": 3,
            },
            "has_changes": False,
            "lineage": "lin",
            "serial": 7,
            "manifest_digest": "digest",
        }
    ]


def test_an_event_is_written_as_compact_json_on_one_line_keeping_non_ascii_text() -> None:
    out = io.StringIO()

    write_event(out, {"type": "x", "reason": "two\nlines, Чайник"})

    assert out.getvalue() == '{"type":"x","reason":"two\\nlines, Чайник"}\n'


# --- apply as it goes ---------------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


EVENTS = [
    ApplyEvent("resolving", operation_id="op-0", size=2),
    ApplyEvent("intent", "TaskSuite/a", "op-1"),
    ApplyEvent("created", "TaskSuite/a", "op-1", "101"),
    ApplyEvent("adopted", "TaskSuite/b", "op-0", "102"),
    ApplyEvent("failed", "TaskSuite/c", "op-2", message="pool 1 is closed"),
    ApplyEvent("unresolved", "TaskSuite/d", "op-3", message="the API did not answer"),
    ApplyEvent("warning", "TaskSuite/e", "op-4", message="timed out; nothing was created, resending"),
    ApplyEvent("warning", message="the rate limit is lower than configured"),
]


def reported(events: list[ApplyEvent], *, as_json: bool = False, total: int = 5, color: bool = False) -> str:
    out = io.StringIO()
    with ApplyReporter(Printer(out, color=color), as_json=as_json, total=total) as reporter:
        for event in events:
            reporter.event(event)
    return out.getvalue()


def test_apply_prints_one_plain_line_per_outcome_and_nothing_for_intents() -> None:
    assert reported(EVENTS).splitlines() == [
        "  + TaskSuite/a: created (remote id 101)",
        "  + TaskSuite/b: found the object an interrupted call made (remote id 102)",
        "  x TaskSuite/c: failed: pool 1 is closed",
        "  ? TaskSuite/d: unresolved: the API did not answer",
        "  ! TaskSuite/e: timed out; nothing was created, resending",
        "  ! the rate limit is lower than configured",
    ]


def test_a_large_apply_does_not_list_every_creation_but_still_every_failure() -> None:
    total = ApplyReporter.PER_RESOURCE_LINES_UP_TO + 1
    events = [
        ApplyEvent("created", "TaskSuite/a", "op-1", "101"),
        ApplyEvent("created", operation_id="op-1", size=5000),
        ApplyEvent("failed", "TaskSuite/c", "op-2", message="pool 1 is closed"),
    ]

    assert reported(events, total=total).splitlines() == ["  x TaskSuite/c: failed: pool 1 is closed"]


def test_apply_lines_are_coloured_by_outcome() -> None:
    assert [looks(line) for line in reported(EVENTS, color=True).splitlines()] == [
        ("  + TaskSuite/a: created (remote id 101)", "green", False),
        ("  + TaskSuite/b: found the object an interrupted call made (remote id 102)", "green", False),
        ("  x TaskSuite/c: failed: pool 1 is closed", "red", False),
        ("  ? TaskSuite/d: unresolved: the API did not answer", "yellow", False),
        ("  ! TaskSuite/e: timed out; nothing was created, resending", "yellow", False),
        ("  ! the rate limit is lower than configured", "yellow", False),
    ]


def test_with_json_every_event_is_a_json_line_typed_apply_and_without_empty_fields() -> None:
    lines = reported([*EVENTS, ApplyEvent("created", operation_id="op-5", size=5000)], as_json=True)

    assert json_lines(lines) == [
        {"type": "apply_resolving", "operation_id": "op-0", "size": 2},
        {"type": "apply_intent", "address": "TaskSuite/a", "operation_id": "op-1", "size": 1},
        {"type": "apply_created", "address": "TaskSuite/a", "operation_id": "op-1", "remote_id": "101", "size": 1},
        {"type": "apply_adopted", "address": "TaskSuite/b", "operation_id": "op-0", "remote_id": "102", "size": 1},
        {
            "type": "apply_failed",
            "address": "TaskSuite/c",
            "operation_id": "op-2",
            "message": "pool 1 is closed",
            "size": 1,
        },
        {
            "type": "apply_unresolved",
            "address": "TaskSuite/d",
            "operation_id": "op-3",
            "message": "the API did not answer",
            "size": 1,
        },
        {
            "type": "apply_warning",
            "address": "TaskSuite/e",
            "operation_id": "op-4",
            "message": "timed out; nothing was created, resending",
            "size": 1,
        },
        {"type": "apply_warning", "message": "the rate limit is lower than configured", "size": 1},
        {"type": "apply_created", "operation_id": "op-5", "size": 5000},
    ]


def test_with_json_on_a_terminal_there_is_no_progress_bar_only_json_lines() -> None:
    out = Terminal()
    with ApplyReporter(Printer(out, color=True), as_json=True, total=3) as reporter:
        for event in EVENTS:
            reporter.event(event)
        reporter.summary(ApplyResult(created=1))

    events = json_lines(out.getvalue())
    assert [event["type"] for event in events] == [f"apply_{event.type}" for event in EVENTS] + ["apply_summary"]


def test_on_a_terminal_the_outcome_lines_still_reach_the_user_beside_the_progress_bar() -> None:
    out = Terminal()
    with ApplyReporter(Printer(out, color=False), as_json=False, total=3) as reporter:
        reporter.event(ApplyEvent("created", "TaskSuite/a", "op-1", "101"))
        reporter.event(ApplyEvent("failed", "TaskSuite/c", "op-2", message="pool 1 is closed"))

    text = out.getvalue()
    assert "  + TaskSuite/a: created (remote id 101)\n" in text
    assert "  x TaskSuite/c: failed: pool 1 is closed\n" in text


# --- the apply summary ----------------------------------------------------------------------------------------------


def summarised(result: ApplyResult, *, as_json: bool = False, color: bool = False) -> str:
    out = io.StringIO()
    ApplyReporter(Printer(out, color=color), as_json=as_json, total=5).summary(result)
    return out.getvalue()


def test_a_successful_apply_says_complete_with_its_counts() -> None:
    assert summarised(ApplyResult(created=3)) == "\nApply complete: 3 created, 0 failed.\n"
    assert summarised(ApplyResult(created=3, adopted=1)) == (
        "\nApply complete: 3 created, 1 of them found after an interrupted call, 0 failed.\n"
    )
    assert [looks(line) for line in summarised(ApplyResult(created=3), color=True).splitlines()] == [
        ("", None, False),
        ("Apply complete: 3 created, 0 failed.", "green", True),
    ]


def test_an_apply_with_failures_says_so_and_how_many_need_another_run() -> None:
    result = ApplyResult(
        created=1,
        failed=[("TaskSuite/c", "pool 1 is closed"), ("TaskSuite/f", "bad input")],
        unresolved=[("TaskSuite/d", "the API did not answer")],
    )

    assert summarised(result) == "\nApply finished with errors: 1 created, 2 failed, 1 unresolved (run apply again).\n"
    assert [looks(line) for line in summarised(result, color=True).splitlines()] == [
        ("", None, False),
        ("Apply finished with errors: 1 created, 2 failed, 1 unresolved (run apply again).", "red", True),
    ]


def test_an_interrupted_apply_says_so_and_how_many_were_not_started() -> None:
    result = ApplyResult(created=2, skipped=5, interrupted=True)

    assert summarised(result) == "\nApply interrupted: 2 created, 0 failed, 5 not started.\n"


def test_an_apply_stopped_by_an_error_says_what_stopped_it() -> None:
    result = ApplyResult(created=2, skipped=5, stopped_by="toloka: the token was refused (401)")

    assert summarised(result).splitlines() == [
        "",
        "Apply finished with errors: 2 created, 0 failed, 5 not started.",
        "Stopped: toloka: the token was refused (401)",
    ]
    assert looks(summarised(result, color=True).splitlines()[-1]) == (
        "Stopped: toloka: the token was refused (401)",
        "red",
        False,
    )


def test_with_json_the_summary_is_one_json_line_with_counts_and_ok() -> None:
    result = ApplyResult(
        created=4,
        adopted=1,
        failed=[("TaskSuite/c", "pool 1 is closed")],
        unresolved=[("TaskSuite/d", "no answer"), ("TaskSuite/e", "no answer")],
        skipped=3,
        interrupted=True,
    )

    assert json_lines(summarised(result, as_json=True)) == [
        {
            "type": "apply_summary",
            "created": 4,
            "updated": 0,
            "deleted": 0,
            "adopted": 1,
            "failed": 1,
            "unresolved": 2,
            "skipped": 3,
            "interrupted": True,
            "stopped_by": None,
            "ok": False,
        }
    ]
    assert json_lines(summarised(ApplyResult(created=2), as_json=True))[0]["ok"] is True


# --- one cause, many addresses ----------------------------------------------------------------------------------------

REFUSED = "rejected: toloka: POST /api/v1/task-suites authentication failed: Unauthorized"


def refused(address: str, request: int) -> ApplyEvent:
    return ApplyEvent("failed", address, f"op-{request}", message=f"{REFUSED} [request id {request:04x}] (401 X)")


def reported_and_summarised(
    events: list[ApplyEvent], result: ApplyResult, *, verbose: bool = False, as_json: bool = False
) -> list[str]:
    out = io.StringIO()
    reporter = ApplyReporter(Printer(out, color=False), as_json=as_json, total=len(events), verbose=verbose)
    with reporter:
        for event in events:
            reporter.event(event)
    reporter.summary(result)
    return out.getvalue().splitlines()


def test_failures_of_one_cause_show_the_first_then_one_line_with_their_count_and_a_few_addresses() -> None:
    suites = [f"TaskSuiteSet/reviews/r{i:04}" for i in range(5000)]
    events = [refused(address, n // 10) for n, address in enumerate(suites)]
    events.insert(7, ApplyEvent("failed", "TaskSuite/lost", "op-9", message="pool 999 does not exist (400 X)"))
    result = ApplyResult(failed=[(e.address or "", e.message or "") for e in events])

    lines = reported_and_summarised(events, result)

    assert lines == [
        f"  x TaskSuiteSet/reviews/r0000: failed: {REFUSED} [request id 0000] (401 X)",
        "  x TaskSuite/lost: failed: pool 999 does not exist (400 X)",
        "",
        "  x 4999 more (TaskSuiteSet/reviews/r0001, TaskSuiteSet/reviews/r0002, TaskSuiteSet/reviews/r0003, ...; "
        f"-v lists every one): failed: {REFUSED} (401 X)",
        "Apply finished with errors: 0 created, 5001 failed.",
    ]


def test_a_cause_repeated_once_names_its_one_other_address_without_dots() -> None:
    events = [refused("TaskSuite/a", 1), refused("TaskSuite/b", 2)]

    lines = reported_and_summarised(events, ApplyResult(failed=[("TaskSuite/a", "x"), ("TaskSuite/b", "x")]))

    assert f"  x 1 more (TaskSuite/b; -v lists every one): failed: {REFUSED} (401 X)" in lines


def test_unresolved_addresses_and_warnings_fold_by_cause_too() -> None:
    events = [
        *(ApplyEvent("unresolved", f"TaskSuite/u{i}", "op-1", message="no answer") for i in range(4)),
        *(ApplyEvent("warning", message="the rate limit is lower than configured") for _ in range(3)),
    ]

    lines = reported_and_summarised(
        events, ApplyResult(unresolved=[(f"TaskSuite/u{i}", "no answer") for i in range(4)])
    )

    assert lines == [
        "  ? TaskSuite/u0: unresolved: no answer",
        "  ! the rate limit is lower than configured",
        "",
        "  ? 3 more (TaskSuite/u1, TaskSuite/u2, TaskSuite/u3; -v lists every one): unresolved: no answer",
        "  ! 2 more times (-v lists every one): the rate limit is lower than configured",
        "Apply finished with errors: 0 created, 0 failed, 4 unresolved (run apply again).",
    ]


def test_verbose_lists_every_failure_and_folds_nothing() -> None:
    events = [refused(f"TaskSuite/s{i}", i) for i in range(20)]

    lines = reported_and_summarised(events, ApplyResult(failed=[("a", "b")] * 20), verbose=True)

    assert lines[:20] == [f"  x TaskSuite/s{i}: failed: {REFUSED} [request id {i:04x}] (401 X)" for i in range(20)]
    assert not any("more" in line for line in lines)


def test_with_json_every_failure_stays_an_event_of_its_own() -> None:
    events = [refused(f"TaskSuite/s{i}", i) for i in range(20)]

    lines = reported_and_summarised(events, ApplyResult(failed=[("a", "b")] * 20), as_json=True)

    failed = [json.loads(line) for line in lines if '"apply_failed"' in line]
    assert [event["address"] for event in failed] == [f"TaskSuite/s{i}" for i in range(20)]
    assert json.loads(lines[-1])["failed"] == 20


def test_one_unchanged_resource_is_counted_in_the_singular() -> None:
    assert rendered(plan_of(noop=1)) == ["No changes. The state matches the manifests (1 resource up to date)."]
