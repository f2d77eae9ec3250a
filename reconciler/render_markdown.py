"""A plan as a pull-request or issue comment: a summary table, then one collapsed block per action type.

A comment is read by people who skim, and GitHub refuses one longer than 65,536 characters, so the
comment stays small whatever the plan holds: a TaskSuiteSet's suites are one line (a count and the first few
addresses), each block lists at most ``LIST_AT_MOST`` lines, and the whole body stops growing at
``BUDGET`` characters, saying how much was left out and where to see all of it (``--json``).

Everything that came from manifests, data files, a plan file or a server is untrusted: it goes through
``redaction.safe_line`` (credentials masked, control characters escaped) and is then escaped for Markdown and
HTML, so an address holding ``|``, backticks, ``<script>`` or a newline shows as text and cannot break a table,
open a tag or start a line of its own. Such text is also shown inside ``<code>``, where GitHub links no
``@mention`` or ``#123``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from reconciler.plan import ACTION_ORDER, Action, ActionType, FieldChange, Plan
from reconciler.redaction import safe_line
from reconciler.refresh.report import DriftFinding, DriftReport
from reconciler.render import summary_line
from reconciler.render_drift import summary_text

#: Lines (actions, or sets of suites) listed in one action type's block before the rest is counted.
LIST_AT_MOST = 50
#: Addresses of a set's suites named on its one line.
SET_EXAMPLES = 3
#: Field changes shown per changed resource.
DIFF_ROWS_AT_MOST = 10
#: Untrusted text is cut to this many characters before escaping, so that one line cannot fill the comment.
TEXT_AT_MOST = 200
VALUE_AT_MOST = 80
NOTE_AT_MOST = 500
#: Characters of body after which nothing more is listed; GitHub's limit is 65,536, and the notes after the
#: body (at most a few of ``NOTE_AT_MOST`` characters, escaped) must fit too.
BUDGET = 50_000

_HEADINGS = {
    ActionType.RESOLVE: "? to resolve (an interrupted apply)",
    ActionType.IMPORT: "<= to import (found remotely by refresh)",
    ActionType.CREATE: "+ to create",
    ActionType.REPLACE: "-/+ to replace",
    ActionType.UPDATE: "~ to update in place",
    ActionType.CHANGE: "~ changed (refused without --replace)",
    ActionType.ORPHAN: "! orphaned (in the state, not in the manifests)",
    ActionType.DELETE: "- to delete (PerfTest) or retire (Toloka: overlap set to 0)",
}
_ROW_NAMES = {
    ActionType.RESOLVE: "`?` resolve",
    ActionType.IMPORT: "`<=` import",
    ActionType.CREATE: "`+` create",
    ActionType.REPLACE: "`-/+` replace",
    ActionType.UPDATE: "`~` update in place",
    ActionType.CHANGE: "`~` changed (refused without `--replace`)",
    ActionType.ORPHAN: "`!` orphaned",
    ActionType.DELETE: "`-` delete or retire",
}

#: Markdown punctuation that can start emphasis, code, links, strikethrough, headings or a table cell.
_MARKDOWN = re.compile(r"([\\`*_\[\]|~#])")
#: What ``safe_line`` leaves raw that is still a control character in a comment.
_TAB = "\t"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md(text: str, limit: int = TEXT_AT_MOST) -> str:
    """Untrusted text as Markdown that reads as the text itself, on one line and inside one table cell."""
    shown = safe_line(_cut(text, limit)).replace(_TAB, "\\x09")
    return _MARKDOWN.sub(r"\\\1", html.escape(shown, quote=False))


def code(text: str, limit: int = TEXT_AT_MOST) -> str:
    """Untrusted text shown as code; in ``<code>`` rather than backticks so that its backticks need no fence."""
    return f"<code>{md(text, limit)}</code>"


def _html(text: str) -> str:
    """Untrusted text inside an HTML block (a ``<summary>``), where Markdown escapes would show."""
    return html.escape(safe_line(_cut(text, TEXT_AT_MOST)).replace(_TAB, "\\x09"), quote=False)


def _number(count: int) -> str:
    return f"{count:,}"


def _set_name(address: str) -> str | None:
    parts = address.split("/", 2)
    return "/".join(parts[:2]) if parts[0] == "TaskSuiteSet" and len(parts) > 2 else None


class _Body:
    """Lines of the comment, and how many characters they hold, so that listing stops before the limit."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def add(self, *lines: str) -> None:
        for line in lines:
            self.lines.append(line)
            self.size += len(line) + 1

    def fits(self, lines: Sequence[str]) -> bool:
        return self.size + sum(len(line) + 1 for line in lines) <= BUDGET

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def plan_markdown(plan: Plan, *, heading: str = "reconciler plan", notes: Iterable[str] = ()) -> str:
    """The comment for ``plan``; ``notes`` are lines the text output prints beside the plan (which state, a
    warning), shown after it as text."""
    body = _Body()
    body.add(f"### {md(heading)}", "")
    if not plan.actions:
        body.add(f"**No changes.** The state matches the manifests ({_number(plan.noop_count)} up to date).", "")
    else:
        body.add(f"**{md(summary_line(plan))}**", "")
        groups = _groups(plan.actions)
        _summary_table(body, groups)
        for action_type in ACTION_ORDER:
            if action_type in groups:
                _details(body, action_type, groups[action_type])
    for note in notes:
        body.add(md(note, NOTE_AT_MOST), "")
    return body.text()


class _Group:
    """One action type's actions: single ones in order, and each set's suites as a count and a few of them."""

    __slots__ = ("count", "entries", "kinds")

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.entries: list[Action | _SetEntry] = []


class _SetEntry:
    __slots__ = ("count", "examples", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.examples: list[str] = []


def _groups(actions: Sequence[Action]) -> dict[ActionType, _Group]:
    """The actions by type; a set's suites come one after another, so after its first each costs a prefix check."""
    groups: dict[ActionType, _Group] = {}
    sets: dict[tuple[ActionType, str], _SetEntry] = {}
    current: _SetEntry | None = None
    prefix = ""
    current_type: ActionType | None = None
    for action in actions:
        group = groups.get(action.type)
        if group is None:
            group = groups[action.type] = _Group()
        group.count += 1
        group.kinds[action.kind] = group.kinds.get(action.kind, 0) + 1
        if current is None or action.type is not current_type or not action.address.startswith(prefix):
            name = _set_name(action.address)
            if name is None:
                current = None
                group.entries.append(action)
                continue
            current, current_type, prefix = sets.get((action.type, name)), action.type, name + "/"
            if current is None:
                current = sets[(action.type, name)] = _SetEntry(name)
                group.entries.append(current)
        current.count += 1
        if len(current.examples) < SET_EXAMPLES:
            current.examples.append(action.address)
    return groups


def _summary_table(body: _Body, groups: dict[ActionType, _Group]) -> None:
    kinds = sorted({kind for group in groups.values() for kind in group.kinds})
    body.add(
        "| action | " + " | ".join(code(kind) for kind in kinds) + " | total |",
        "|---|" + "---:|" * (len(kinds) + 1),
    )
    for action_type in ACTION_ORDER:
        group = groups.get(action_type)
        if group is None:
            continue
        cells = [_number(group.kinds[kind]) if kind in group.kinds else "" for kind in kinds]
        body.add(f"| {_ROW_NAMES[action_type]} | " + " | ".join(cells) + f" | {_number(group.count)} |")
    body.add("")


def _details(body: _Body, action_type: ActionType, group: _Group) -> None:
    kinds = ", ".join(f"{_number(n)} <code>{_html(kind)}</code>" for kind, n in sorted(group.kinds.items()))
    body.add(f"<details><summary>{_HEADINGS[action_type]}: {_number(group.count)} ({kinds})</summary>", "")
    listed = 0
    for entry in group.entries:
        lines = list(_entry_lines(entry)) if listed < LIST_AT_MOST else []
        if not lines or not body.fits(lines):
            break
        body.add(*lines)
        listed += 1
    left = sum(entry.count if isinstance(entry, _SetEntry) else 1 for entry in group.entries[listed:])
    if left:
        body.add(f"- … and {_number(left)} more, not listed here (`reconciler plan -v` or `--json` lists every one)")
    body.add("", "</details>", "")


def _entry_lines(entry: Action | _SetEntry) -> Iterator[str]:
    if isinstance(entry, _SetEntry):
        shown = ", ".join(code(address) for address in entry.examples)
        more = ", …" if entry.count > len(entry.examples) else ""
        yield f"- {code(entry.name)}: {_number(entry.count)} suites: {shown}{more}"
        return
    remote = f" (remote id {code(entry.remote_id)})" if entry.remote_id else ""
    why = ""
    if entry.type is not ActionType.CREATE or entry.attempt:
        attempt = f"attempt {entry.attempt}: " if entry.attempt else ""
        why = f": {attempt}{md(entry.reason)}"
    yield f"- {code(entry.address)}{remote}{why}"
    if entry.diff:
        yield from _diff_table(entry.diff)


def _diff_table(diff: Sequence[FieldChange]) -> Iterator[str]:
    """A resource's field changes as a table nested in its list item (indented, after a blank line)."""
    yield ""
    yield "  | field | before | after |"
    yield "  |---|---|---|"
    for change in diff[:DIFF_ROWS_AT_MOST]:
        before = "" if change.change == "added" else _value(change.before)
        after = "" if change.change == "removed" else _value(change.after)
        yield f"  | {code(change.path)} | {before} | {after} |"
    if len(diff) > DIFF_ROWS_AT_MOST:
        yield f"  | … {_number(len(diff) - DIFF_ROWS_AT_MOST)} more fields | | |"
    yield ""


def _value(value: Any) -> str:
    return code(json.dumps(value, ensure_ascii=False, sort_keys=True), VALUE_AT_MOST)


_DRIFT_HEADINGS = {
    "unreadable": "? could not be read (nothing is concluded of them)",
    "gone": "- gone remotely (`reconciler apply --refresh` creates them again)",
    "changed": "~ changed remotely (behind the tool's back)",
    "unapplied": "+ not applied (the manifests differ from the state)",
}


def drift_markdown(report: DriftReport, *, heading: str = "reconciler drift") -> str:
    """The comment or issue body for a drift report: a summary table, then one collapsed block per type of
    finding, each listing at most ``LIST_AT_MOST`` objects. The report's fingerprint ends it, in an HTML comment
    a job can find to tell whether it already reported this drift."""
    body = _Body()
    body.add(f"### {md(heading)}", "")
    body.add(f"**{md(summary_text(report))}**", "")
    if not report.in_sync:
        body.add("| finding | objects | fields |", "|---|---:|---:|")
        for kind, title in _DRIFT_HEADINGS.items():
            found = [f for f in report.findings if f.type == kind]
            if found:
                objects = len({f.address for f in found})
                body.add(f"| {md(title.split(' (')[0])} | {_number(objects)} | {_number(len(found))} |")
        body.add("")
        for kind, title in _DRIFT_HEADINGS.items():
            found = [f for f in report.findings if f.type == kind]
            if found:
                _drift_details(body, title, found)
    body.add(f"<!-- drift-fingerprint: {report.fingerprint or 'in-sync'} -->")
    return body.text()


def _drift_details(body: _Body, title: str, found: list[DriftFinding]) -> None:
    by_address: dict[str, list[DriftFinding]] = {}
    for finding in found:
        by_address.setdefault(finding.address, []).append(finding)
    body.add(f"<details><summary>{title}: {_number(len(by_address))}</summary>", "")
    listed = 0
    for address, findings in by_address.items():
        lines = list(_finding_lines(address, findings)) if listed < LIST_AT_MOST else []
        if not lines or not body.fits(lines):
            break
        body.add(*lines)
        listed += 1
    if len(by_address) > listed:
        body.add(f"- … and {_number(len(by_address) - listed)} more (`reconciler drift --json` lists every one)")
    body.add("", "</details>", "")


def _finding_lines(address: str, findings: list[DriftFinding]) -> Iterator[str]:
    first = findings[0]
    remote = f" (remote id {code(first.remote_id)})" if first.remote_id else ""
    why = ""
    if first.type == "unreadable":
        why = f": {md(first.error or '')}"
    elif first.type == "unapplied":
        why = f": {md(first.action or '')}: {md(first.reason or '')}"
    yield f"- {code(address)}{remote}{why}"
    if first.type == "changed":
        yield from _diff_table([FieldChange(f.path or "", "changed", f.sent, f.remote) for f in findings])
