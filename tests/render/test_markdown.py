"""`plan` and `show --format markdown`: a plan as a pull-request or issue comment (issue 14).

A comment must fit GitHub's limit (65,536 characters) however large the plan, and text from manifests, data
files, plan files or servers must show as text: never a table cell of its own, an HTML tag, or a line of its own.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.redaction import safe_line
from reconciler.render_markdown import SET_EXAMPLES, plan_markdown

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases" / "markdown"
GITHUB_COMMENT_LIMIT = 65_536

#: Any text at all, lone surrogates and control characters included.
UNTRUSTED = st.text(st.characters(exclude_categories=()), min_size=1, max_size=40)
OWN_TAGS = {"details", "/details", "summary", "/summary", "code", "/code"}
TAG = re.compile(r"<(/?[A-Za-z!?][^\s>/]*)")
#: A pipe that ends a table cell: not escaped, that is after an even number of backslashes.
CELL_PIPE = re.compile(r"(?<!\\)(?:\\\\)*\|")
CODE = re.compile(r"<code>(.*?)</code>")


def action(action_type: ActionType, address: str, reason: str = "why", **fields: object) -> Action:
    return Action(action_type, address, address.split("/")[0], "toloka", reason, **fields)  # type: ignore[arg-type]


def plan_of(*actions: Action, noop: int = 0) -> Plan:
    return Plan(
        lineage="lin", serial=7, workspace="default", manifest_digest="digest", actions=actions, noop_count=noop
    )


def hostile_plan(text: str) -> Plan:
    """``text`` wherever untrusted text goes: addresses, a set's name and keys, reasons, remote ids, diffs."""
    return plan_of(
        action(ActionType.RESOLVE, f"TaskSuite/{text}", text, operation_id="op"),
        action(ActionType.CREATE, f"TaskSuite/{text}", attempt=2, reason=text),
        *(action(ActionType.CREATE, f"TaskSuiteSet/{text}/{text}{i}") for i in range(5)),
        action(
            ActionType.CHANGE,
            f"PerfTestTask/{text}",
            text,
            remote_id=text,
            diff=(FieldChange(text, "changed", text, {text: [text]}), FieldChange(text, "added", None, text)),
        ),
        action(ActionType.ORPHAN, f"{text}/{text}", text, remote_id=text),
        noop=2,
    )


def unescaped(shown: str) -> str:
    """What a reader of the rendered comment sees of text the module escaped."""
    return html.unescape(re.sub(r"\\(.)", r"\1", shown))


def tables(markdown: str) -> list[list[str]]:
    """Each table's lines: runs of lines that start (after indentation) with a pipe."""
    found: list[list[str]] = []
    previous = False
    for line in markdown.splitlines():
        row = line.lstrip(" ").startswith("|")
        if row and not previous:
            found.append([])
        if row:
            found[-1].append(line)
        previous = row
    return found


# --- size -----------------------------------------------------------------------------------------------------


def one_set_of(count: int) -> list[Action]:
    return [action(ActionType.CREATE, f"TaskSuiteSet/labels/row-{i:06}", "not in the state") for i in range(count)]


def many_sets(count: int) -> list[Action]:
    return [action(ActionType.CREATE, f"TaskSuiteSet/set-{i // 100:04}/row-{i:06}") for i in range(count)]


def single_changes_with_long_hostile_text(count: int) -> list[Action]:
    long = "<&|`\x1b" * 100
    diff = tuple(FieldChange(long, "changed", long, long) for _ in range(12))
    return [action(ActionType.CHANGE, f"TaskSuite/{i}{long}", long, remote_id=long, diff=diff) for i in range(count)]


@pytest.mark.parametrize(
    "actions",
    [one_set_of, many_sets, single_changes_with_long_hostile_text],
    ids=["one set of 100,000 suites", "1,000 sets of 100 suites", "100,000 changes with long escaped diffs"],
)
def test_a_plan_of_100000_suites_fits_in_one_github_comment(actions) -> None:  # type: ignore[no-untyped-def]
    plan = plan_of(*actions(100_000), noop=5)

    comment = plan_markdown(plan, notes=["State: " + "<&|" * 400, "Warning: " + "`" * 2000])

    assert len(comment) < GITHUB_COMMENT_LIMIT - 1024
    assert "100,000" in comment
    assert comment.count("<details>") == comment.count("</details>") == 1
    assert comment.endswith("\n\nWarning: " + "\\`" * 490 + "…\n\n")


def test_a_set_of_100000_suites_is_one_line_with_its_count_and_its_first_few_addresses() -> None:
    comment = plan_markdown(plan_of(*one_set_of(100_000)))

    (line,) = (line for line in comment.splitlines() if line.startswith("- "))
    assert line.startswith("- <code>TaskSuiteSet/labels</code>: 100,000 suites: <code>TaskSuiteSet/labels/row-000000")
    assert comment.count("<code>TaskSuiteSet/labels/") == SET_EXAMPLES


def test_a_block_lists_the_first_actions_and_says_how_many_more_and_where_to_see_them() -> None:
    comment = plan_markdown(plan_of(*many_sets(100_000)))

    listed = [line for line in comment.splitlines() if line.startswith("- <code>TaskSuiteSet/set-")]
    assert 0 < len(listed) < 1000
    more = 100_000 - 100 * len(listed)
    assert f"- … and {more:,} more, not listed here (`reconciler plan -v` or `--json` lists every one)" in comment


# --- untrusted text -------------------------------------------------------------------------------------------


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=UNTRUSTED)
def test_untrusted_text_shows_as_text_and_cannot_break_a_table_open_a_tag_or_forge_a_line(text: str) -> None:
    comment = plan_markdown(hostile_plan(text), heading=text, notes=[text])
    benign = plan_markdown(hostile_plan("x"), heading="x", notes=["x"])

    assert not [c for c in comment if c != "\n" and unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]
    assert {tag.lower() for tag in TAG.findall(comment)} <= OWN_TAGS
    assert len(comment.splitlines()) == len(benign.splitlines())
    for table in tables(comment):
        widths = {len(CELL_PIPE.findall(row)) for row in table}
        assert len(widths) == 1, table
    first_address = CODE.search(comment.split("<details>", 1)[1].split("\n- ", 1)[1])
    assert first_address is not None
    assert unescaped(first_address.group(1)) == safe_line(f"TaskSuite/{text}").replace("\t", "\\x09")


def test_an_address_with_a_pipe_backticks_a_script_tag_a_newline_and_an_ansi_escape_is_shown_escaped() -> None:
    comment = plan_markdown(plan_of(action(ActionType.CREATE, "TaskSuite/a|b`c`<script>alert(1)</script>\nd\x1b[31m")))

    assert "- <code>TaskSuite/a\\|b\\`c\\`&lt;script&gt;alert(1)&lt;/script&gt;\\\\x0ad\\\\x1b\\[31m</code>" in comment
    assert "<script>" not in comment and "\x1b" not in comment


# --- the whole comment ----------------------------------------------------------------------------------------

SMALL_PLAN = plan_of(
    action(ActionType.RESOLVE, "TaskSuite/interrupted", "an earlier apply was interrupted", operation_id="op-3"),
    action(ActionType.CREATE, "PerfTestTask/checkout-smoke", "not in the state"),
    action(ActionType.CREATE, "TaskSuite/retried", "the last attempt failed; trying again", attempt=2),
    *(action(ActionType.CREATE, f"TaskSuiteSet/reviews/rv-{i}", "not in the state") for i in range(120)),
    action(ActionType.REPLACE, "TaskSuite/replaced", "replacement requested", attempt=1, remote_id="r-1"),
    action(
        ActionType.CHANGE,
        "TaskSuite/changed|<b>*bold*</b>",
        "the manifest differs",
        remote_id="r-2",
        diff=(
            FieldChange("overlap", "changed", 1, 2),
            FieldChange("tasks[0].input_values.lang", "removed", "en", None),
            FieldChange("tasks[0].input_values.product", "added", None, {"name": "Чайник | `x`", "id": 7}),
        ),
    ),
    action(ActionType.ORPHAN, "TaskSuite/gone", "no longer in the manifests", remote_id="r-3"),
    noop=4,
)


def test_a_small_plan_renders_as_the_expected_comment() -> None:
    expected = (CASES / "small_plan.md").read_text(encoding="utf-8")

    assert plan_markdown(SMALL_PLAN, notes=["State: state/default.db (workspace default)."]) == expected


def test_a_plan_without_changes_says_so_in_one_line() -> None:
    comment = plan_markdown(plan_of(noop=12))

    assert comment == "### reconciler plan\n\n**No changes.** The state matches the manifests (12 up to date).\n\n"


# --- through the command line ---------------------------------------------------------------------------------


def run_reconciler(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_FAILPOINT"}
    env.update({"NO_COLOR": "1", "RECONCILER_STATE": f"{cwd / 'state'}/"})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_plan_and_show_of_the_examples_print_the_same_comment_and_json_still_means_json(tmp_path: Path) -> None:
    examples = str(ROOT / "examples")
    planned = run_reconciler("plan", examples, "--sandbox", "--format", "markdown", "--out", "p.json", cwd=tmp_path)
    shown = run_reconciler("show", "p.json", "--format", "markdown", cwd=tmp_path)
    both = run_reconciler("show", "p.json", "--json", "--format", "markdown", cwd=tmp_path)
    as_json = run_reconciler("show", "p.json", "--format", "json", cwd=tmp_path)
    alias = run_reconciler("show", "p.json", "--json", cwd=tmp_path)

    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.startswith("### reconciler plan\n\n**Plan: ")
    assert "<details><summary>+ to create: " in planned.stdout
    assert "\nNo state yet at " in planned.stdout
    assert shown.returncode == 0, shown.stderr
    details = planned.stdout.split("<details>", 1)[1].split("</details>", 1)[0]
    assert details == shown.stdout.split("<details>", 1)[1].split("</details>", 1)[0]
    assert both.returncode == 1
    assert "Error: --json and --format markdown ask for two formats; pass one of them" in both.stderr
    assert as_json.returncode == alias.returncode == 0
    assert as_json.stdout == alias.stdout and as_json.stdout.startswith('{"type":"planned_change"')
