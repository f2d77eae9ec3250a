"""How plans, outcomes and errors look: for a person at a terminal, or as JSON lines for a pipeline.

Human output follows ``terraform plan``: one line per action with its sign, the reason or the field diff
under it, and a summary line. A data-driven set of thousands of suites is folded after a few lines (``-v``
shows every one), because nobody reads 100,000 identical ``+`` lines. JSON output is one object per line,
each with a ``type``, like Terraform's ``-json``.

Every line goes out through ``reconciler.redaction`` (``Printer.line``, ``write_event`` and the progress bar's
lines): a credential a server echoed is masked, and control characters from manifests, data files or server
answers are shown escaped (``\\x1b[31m``), with colour or without; the tool's own colours are added after.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

import click

from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.redaction import safe_json, safe_line

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from reconciler.applier import ApplyEvent, ApplyResult

#: Apply events that move the progress bar (``EventType`` values; render does not import the applier, so that
#: ``plan`` starts without it).
_PROGRESS_EVENTS = frozenset({"created", "updated", "deleted", "failed", "unresolved"})

_COLOURS = {
    ActionType.CREATE: "green",
    ActionType.UPDATE: "yellow",
    ActionType.CHANGE: "yellow",
    ActionType.REPLACE: "magenta",
    ActionType.ORPHAN: "red",
    ActionType.DELETE: "red",
    ActionType.RESOLVE: "cyan",
    ActionType.IMPORT: "blue",
    ActionType.NOOP: None,
}

_VERBS = {
    ActionType.CREATE: "to create",
    ActionType.REPLACE: "to replace",
    ActionType.UPDATE: "to update in place",
    ActionType.CHANGE: "changed (refused without --replace)",
    ActionType.ORPHAN: "orphaned",
    ActionType.DELETE: "to delete or retire",
    ActionType.RESOLVE: "to resolve",
    ActionType.IMPORT: "to import",
    ActionType.NOOP: "unchanged",
}

FOLD_AFTER = 10
FOLD_GROUPS_LARGER_THAN = 50
#: Addresses named on the line that folds the repeats of one apply failure.
FOLD_CAUSE_EXAMPLES = 3

#: The part of an error message that differs between requests of one cause (``providers/http.py`` appends it).
_REQUEST_ID = re.compile(r" \[request id [^\]]*\]")


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 resource``, ``2 resources``."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


class Printer:
    """Writes lines, coloured or not; the only place that decides about colour."""

    def __init__(self, out: TextIO, *, color: bool) -> None:
        self.out = out
        self.color = color

    def line(self, text: str = "", *, fg: str | None = None, bold: bool = False) -> None:
        text = safe_line(text)
        if self.color and (fg or bold):
            text = click.style(text, fg=fg, bold=bold)
        self.out.write(text + "\n")


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _diff_line(change: FieldChange) -> tuple[str, str]:
    if change.change == "added":
        return f"      + {change.path}: {_value(change.after)}", "green"
    if change.change == "removed":
        return f"      - {change.path}: {_value(change.before)}", "red"
    return f"      ~ {change.path}: {_value(change.before)} -> {_value(change.after)}", "yellow"


def _set_name(address: str) -> str | None:
    parts = address.split("/")
    return "/".join(parts[:2]) if parts[0] == "TaskSuiteSet" and len(parts) > 2 else None


def render_plan(plan: Plan, printer: Printer, *, verbose: bool = False) -> None:
    if not plan.actions:
        printer.line(
            f"No changes. The state matches the manifests ({plural(plan.noop_count, 'resource')} up to date).",
            fg="green",
            bold=True,
        )
        return
    printer.line("reconciler will perform these actions:", bold=True)
    printer.line()
    if verbose:
        for action in plan.actions:
            _render_action(action, printer)
    else:
        _render_folded(plan.actions, printer)
    printer.line()
    printer.line(summary_line(plan), bold=True)


def _render_folded(actions: tuple[Action, ...], printer: Printer) -> None:
    """Each (type, set) of more than FOLD_GROUPS_LARGER_THAN suites shows its first FOLD_AFTER, then one line.

    Works on runs rather than on actions, so the suites that are folded away cost nothing past finding the run.
    """
    runs = _runs_by_set(actions)
    sizes: dict[tuple[ActionType, str], int] = {}
    for action_type, group, start, stop in runs:
        if group is not None:
            sizes[(action_type, group)] = sizes.get((action_type, group), 0) + stop - start
    shown: dict[tuple[ActionType, str], int] = {}
    folded: dict[tuple[ActionType, str], int] = {}
    for action_type, group, start, stop in runs:
        if group is None or sizes[(action_type, group)] <= FOLD_GROUPS_LARGER_THAN:
            for action in actions[start:stop]:
                _render_action(action, printer)
            continue
        key = (action_type, group)
        already = shown.get(key, 0)
        show = min(stop - start, max(FOLD_AFTER - already, 0))
        shown[key] = already + show
        for action in actions[start : start + show]:
            _render_action(action, printer)
        if show < stop - start:
            folded[key] = folded.get(key, 0) + stop - start - show
    for (action_type, group), count in folded.items():
        printer.line(
            f"  {action_type.sign} ... and {count} more {group}/* {_VERBS[action_type]} (-v lists every one)",
            fg=_COLOURS[action_type],
        )


def _runs_by_set(actions: tuple[Action, ...]) -> list[tuple[ActionType, str | None, int, int]]:
    """Consecutive actions of one type on suites of one set, as ``(type, set, start, stop)``.

    A set's suites come one after another, so after the first of them each next one costs a prefix check
    instead of splitting its address. An action on anything but a set's suite is a run of its own.
    """
    runs: list[tuple[ActionType, str | None, int, int]] = []
    run_type = ActionType.NOOP
    group: str | None = None
    prefix: str | None = None
    start = 0
    for index, action in enumerate(actions):
        if prefix is not None and action.type is run_type and action.address.startswith(prefix):
            continue
        if index:
            runs.append((run_type, group, start, index))
        run_type, group, start = action.type, _set_name(action.address), index
        prefix = None if group is None else group + "/"
    if actions:
        runs.append((run_type, group, start, len(actions)))
    return runs


def _render_action(action: Action, printer: Printer) -> None:
    colour = _COLOURS[action.type]
    suffix = f" (remote id {action.remote_id})" if action.remote_id else ""
    printer.line(f"  {action.type.sign} {action.address}{suffix}", fg=colour)
    if action.type is not ActionType.CREATE or action.attempt:
        printer.line(f"      # {action.reason}")
    for change in action.diff:
        text, fg = _diff_line(change)
        printer.line(text, fg=fg)


def summary_line(plan: Plan) -> str:
    counts = plan.counts()
    parts = [
        f"{counts['create']} to create",
        f"{counts['replace']} to replace",
        f"{counts['change']} changed (refused without --replace)",
    ]
    for optional in (ActionType.UPDATE, ActionType.RESOLVE, ActionType.IMPORT, ActionType.ORPHAN, ActionType.DELETE):
        if counts[optional.value]:
            parts.append(f"{counts[optional.value]} {_VERBS[optional]}")
    parts.append(f"{counts['noop']} unchanged")
    return "Plan: " + ", ".join(parts) + "."


def plan_events(plan: Plan) -> Iterator[dict[str, Any]]:
    for action in plan.actions:
        event: dict[str, Any] = {
            "type": "planned_change",
            "action": action.type.value,
            "address": action.address,
            "kind": action.kind,
            "provider": action.provider,
            "reason": action.reason,
        }
        if action.remote_id:
            event["remote_id"] = action.remote_id
        if action.diff:
            event["diff"] = [
                {"path": c.path, "change": c.change, "before": c.before, "after": c.after} for c in action.diff
            ]
        yield event
    yield {
        "type": "change_summary",
        "changes": plan.counts(),
        "has_changes": plan.has_changes,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "manifest_digest": plan.manifest_digest,
    }


def write_event(out: TextIO, event: dict[str, Any]) -> None:
    out.write(safe_json(json.dumps(event, ensure_ascii=False, separators=(",", ":"))) + "\n")
    out.flush()


class _Repeats:
    """The events of one cause after the first: how many addresses, and the first few of them."""

    __slots__ = ("count", "examples")

    def __init__(self) -> None:
        self.count = 0
        self.examples: list[str] = []


#: The apply events folded by cause, with the sign, colour and words their lines start with.
_FOLDED_EVENTS = {
    "failed": ("x", "red", "failed: "),
    "unresolved": ("?", "yellow", "unresolved: "),
    "warning": ("!", "yellow", ""),
}


class ApplyReporter:
    """Shows apply as it goes: a progress bar on a terminal, JSON lines with --json, plain lines otherwise.

    One cause often fails many addresses at once (a refused key, a batch too large: thousands of suites). In
    text, the first address of each cause is shown as it happens and the others are counted; the summary then
    gives each repeated cause one line, with its count and a few addresses. ``verbose`` (``-v``) shows every
    line instead; JSON keeps one event per address, for pipelines. A cause is the event's type and message,
    less the request id that differs between the requests of one cause.

    Called from worker threads; rich's progress is thread-safe, and plain writes are serialised here.
    """

    PER_RESOURCE_LINES_UP_TO = 100

    def __init__(self, printer: Printer, *, as_json: bool, total: int, verbose: bool = False) -> None:
        self.printer = printer
        self.as_json = as_json
        self.total = total
        self.verbose = verbose
        self._write_lock = threading.Lock()
        self._causes: dict[tuple[str, str], _Repeats] = {}
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if not as_json and printer.out.isatty() and total > 0:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=printer.out, no_color=not printer.color),
                transient=True,
            )

    def __enter__(self) -> ApplyReporter:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("apply", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: ApplyEvent) -> None:
        if self.as_json:
            payload = {k: v for k, v in event._asdict().items() if v is not None}
            payload["type"] = f"apply_{event.type}"
            with self._write_lock:
                write_event(self.printer.out, payload)
            return
        if event.type in _PROGRESS_EVENTS and self._progress is not None and self._task is not None:
            self._progress.advance(self._task, event.size)
        if event.type in _FOLDED_EVENTS and not self.verbose and self._repeated(event):
            return
        text, colour = self._line(event)
        if text is None:
            return
        if self._progress is not None:
            self._progress.console.print(safe_line(text), style=colour or "", markup=False, highlight=False)
        else:
            with self._write_lock:
                self.printer.line(text, fg=colour)

    def _repeated(self, event: ApplyEvent) -> bool:
        """Whether the event's cause was already shown; if so, it is counted for the summary instead."""
        cause = (event.type, _REQUEST_ID.sub("", event.message or ""))
        with self._write_lock:
            repeats = self._causes.get(cause)
            if repeats is None:
                self._causes[cause] = _Repeats()
                return False
            repeats.count += event.size
            if event.address is not None and len(repeats.examples) < FOLD_CAUSE_EXAMPLES:
                repeats.examples.append(event.address)
            return True

    def _folded_lines(self) -> Iterator[tuple[str, str | None]]:
        """One line per cause that was folded: how many more, the first few of them, and the cause."""
        for (event_type, cause), repeats in self._causes.items():
            if not repeats.count:
                continue
            sign, colour, verb = _FOLDED_EVENTS[event_type]
            if repeats.examples:
                rest = ", ..." if repeats.count > len(repeats.examples) else ""
                which = f"{repeats.count} more ({', '.join(repeats.examples)}{rest}; -v lists every one)"
            else:
                which = f"{plural(repeats.count, 'more time')} (-v lists every one)"
            yield f"  {sign} {which}: {verb}{cause}", colour

    def _line(self, event: ApplyEvent) -> tuple[str | None, str | None]:
        few = self.total <= self.PER_RESOURCE_LINES_UP_TO
        if event.type == "created" and few:
            return f"  + {event.address}: created (remote id {event.remote_id})", "green"
        if event.type == "updated" and few:
            return f"  ~ {event.address}: updated in place (remote id {event.remote_id})", "yellow"
        if event.type == "deleted" and few:
            return f"  - {event.address}: deleted (retired, for a suite) and dropped from the state", "red"
        if event.type == "adopted":
            return (
                f"  + {event.address}: found the object an interrupted call made (remote id {event.remote_id})",
                "green",
            )
        if event.type == "failed":
            return f"  x {event.address}: failed: {event.message}", "red"
        if event.type == "unresolved":
            return f"  ? {event.address}: unresolved: {event.message}", "yellow"
        if event.type == "warning":
            where = f"{event.address}: " if event.address else ""
            return f"  ! {where}{event.message}", "yellow"
        return None, None

    def summary(self, result: ApplyResult) -> None:
        if self.as_json:
            write_event(
                self.printer.out,
                {
                    "type": "apply_summary",
                    "created": result.created,
                    "updated": result.updated,
                    "deleted": result.deleted,
                    "adopted": result.adopted,
                    "failed": len(result.failed),
                    "unresolved": len(result.unresolved),
                    "skipped": result.skipped,
                    "interrupted": result.interrupted,
                    "stopped_by": result.stopped_by,
                    "ok": result.ok,
                },
            )
            return
        self.printer.line()
        for text, colour in self._folded_lines():
            self.printer.line(text, fg=colour)
        parts = [f"{result.created} created"]
        if result.adopted:
            parts.append(f"{result.adopted} of them found after an interrupted call")
        if result.updated:
            parts.append(f"{result.updated} updated in place")
        if result.deleted:
            parts.append(f"{result.deleted} deleted or retired")
        parts.append(f"{len(result.failed)} failed")
        if result.unresolved:
            parts.append(f"{len(result.unresolved)} unresolved (run apply again)")
        if result.skipped:
            parts.append(f"{result.skipped} not started")
        colour = "green" if result.ok else "red"
        head = (
            "Apply complete"
            if result.ok
            else ("Apply interrupted" if result.interrupted else "Apply finished with errors")
        )
        self.printer.line(f"{head}: {', '.join(parts)}.", fg=colour, bold=True)
        if result.stopped_by:
            self.printer.line(f"Stopped: {result.stopped_by}", fg="red")
