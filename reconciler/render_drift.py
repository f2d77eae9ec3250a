"""A drift report for a person at a terminal, or as the one JSON object a cron job sends on.

Everything a finding holds came from manifests or a server: ``Printer`` passes each line through
``safe_line`` (credentials masked, control characters escaped), and the JSON goes through ``safe_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from reconciler.redaction import safe_json
from reconciler.refresh.report import DriftFinding, DriftReport
from reconciler.render import Printer

#: Findings listed per type, unless ``verbose``; the JSON report lists every one.
LIST_AT_MOST = 100

_HOW = {
    "changed": ("~", "yellow", "changed remotely"),
    "gone": ("-", "red", "gone remotely; `reconciler apply --refresh` creates it again"),
    "unreadable": ("?", "magenta", "could not be read"),
    "unapplied": ("+", "cyan", "not applied"),
}


def summary_text(report: DriftReport) -> str:
    s = report.summary
    counts = f"{s['changed']} changed, {s['gone']} gone, {s['unreadable']} unreadable, {s['unapplied']} not applied"
    read = f"{report.read:,} remote objects read, workspace {report.workspace}"
    if report.in_sync:
        return f"No drift: the remote, the state and the manifests agree ({read})."
    return f"Drift: {counts} ({read})."


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _by_address(findings: list[DriftFinding]) -> Iterator[list[DriftFinding]]:
    """Consecutive findings of one address and type, together: a changed object's fields under it."""
    group: list[DriftFinding] = []
    for finding in findings:
        if group and (finding.address, finding.type) != (group[0].address, group[0].type):
            yield group
            group = []
        group.append(finding)
    if group:
        yield group


def render_drift(report: DriftReport, printer: Printer, *, verbose: bool = False) -> None:
    printer.line(summary_text(report), bold=not report.in_sync)
    for kind in ("unreadable", "gone", "changed", "unapplied"):
        groups = list(_by_address([f for f in report.findings if f.type == kind]))
        if not groups:
            continue
        sign, colour, what = _HOW[kind]
        printer.line()
        shown = groups if verbose else groups[:LIST_AT_MOST]
        for group in shown:
            first = group[0]
            remote = f" (remote id {first.remote_id})" if first.remote_id else ""
            detail = what
            if kind == "unreadable":
                detail = f"{what}: {first.error}"
            elif kind == "unapplied":
                detail = f"{what}: {first.action}: {first.reason}"
            printer.line(f"  {sign} {first.address}{remote}: {detail}", fg=colour)
            for finding in group if kind == "changed" else ():
                printer.line(
                    f"      ~ {finding.path}: {_value(finding.sent)} (sent) -> {_value(finding.remote)} (remote)"
                )
        if len(groups) > len(shown):
            printer.line(f"  ... and {len(groups) - len(shown):,} more ({kind}); -v or --json lists every one")


def write_drift_json(report: DriftReport, out: TextIO) -> None:
    out.write(safe_json(json.dumps(report.as_json(), ensure_ascii=False, sort_keys=True)) + "\n")
