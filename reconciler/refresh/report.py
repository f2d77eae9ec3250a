"""The drift report: every difference between manifests, state and remote, each with a stable fingerprint.

A cron job runs ``drift`` every night and must tell drift it already reported from new drift, so each finding
has a fingerprint made of what the finding is (its type, address, remote id, field, and the two values), never
of when it was read or of an error's wording; the report's fingerprint is made of its findings' fingerprints.
Four types of finding:

- ``changed``: a field of a remote object differs from what was sent (``reconciler.drift.remote_diff``);
- ``gone``: the remote object the state names no longer exists; a refreshed apply creates it again;
- ``unreadable``: the remote object could not be read; nothing is concluded of it (the report is an error);
- ``unapplied``: the manifests differ from the state (an action a plan would show): merged but not applied.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.drift import remote_diff
from reconciler.encoding import canonical_json
from reconciler.errors import ProviderError
from reconciler.plan import ActionType, Plan
from reconciler.refresh import Read

__all__ = ["FINDING_TYPES", "REPORT_FORMAT_VERSION", "DriftFinding", "DriftReport", "drift_report", "read_findings"]

REPORT_FORMAT_VERSION = 1
FINDING_TYPES = ("changed", "gone", "unreadable", "unapplied")


@dataclass(frozen=True, slots=True)
class DriftFinding:
    type: str
    kind: str
    address: str
    remote_id: str | None
    fingerprint: str
    path: str | None = None
    sent: Any = None
    remote: Any = None
    error: str | None = None
    action: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        found = {
            "type": self.type,
            "kind": self.kind,
            "address": self.address,
            "remote_id": self.remote_id,
            "path": self.path,
            "sent": self.sent,
            "remote": self.remote,
            "error": self.error,
            "fingerprint": self.fingerprint,
        }
        if self.action is not None:
            found |= {"action": self.action, "reason": self.reason}
        return found


@dataclass(slots=True)
class DriftReport:
    workspace: str
    #: Remote objects read.
    read: int
    findings: list[DriftFinding] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(f.type for f in self.findings)
        return {kind: counts[kind] for kind in FINDING_TYPES}

    @property
    def in_sync(self) -> bool:
        return not self.findings

    @property
    def fingerprint(self) -> str:
        """The same for the same findings, however they were found; empty when in sync."""
        if not self.findings:
            return ""
        joined = "\n".join(sorted(f.fingerprint for f in self.findings))
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def exit_code(self) -> int:
        """1 when something could not be read (the report may miss drift), else 2 for drift, 0 in sync."""
        if any(f.type == "unreadable" for f in self.findings):
            return 1
        return 2 if self.findings else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "format_version": REPORT_FORMAT_VERSION,
            "workspace": self.workspace,
            "in_sync": self.in_sync,
            "fingerprint": self.fingerprint,
            "summary": self.summary,
            "read": self.read,
            "findings": [f.as_json() for f in self.findings],
        }


def _fingerprint(**what: Any) -> str:
    return hashlib.sha256(canonical_json(what).encode("utf-8")).hexdigest()


def drift_report(*, workspace: str, plan: Plan, read: int, found: Iterable[DriftFinding]) -> DriftReport:
    """What differs: ``found``, the findings of the ``read`` remote objects read back (``read_findings``), and
    ``plan``, the manifests against the state, whose actions are the ``unapplied`` findings."""
    report = DriftReport(workspace=workspace, read=read, findings=list(found))
    for action in plan.actions:
        if action.type is ActionType.NOOP:
            continue
        report.findings.append(
            DriftFinding(
                "unapplied",
                action.kind,
                action.address,
                action.remote_id,
                _fingerprint(type="unapplied", action=action.type.value, address=action.address, spec=action.spec_hash),
                action=action.type.value,
                reason=action.reason,
            )
        )
    return report


def read_findings(reads: Iterable[Read], specs: Mapping[str, dict[str, Any]]) -> list[DriftFinding]:
    """The findings of objects read back, each compared with the spec recorded for its address."""
    return [finding for read in reads for finding in _read_findings(read, specs[read.address])]


def _read_findings(read: Read, spec: dict[str, Any]) -> list[DriftFinding]:
    base = {"kind": read.kind, "address": read.address, "remote_id": read.remote_id}
    if read.error is not None:
        mark = _fingerprint(type="unreadable", **base)
        return [DriftFinding("unreadable", read.kind, read.address, read.remote_id, mark, error=read.error)]
    if read.view is None:
        mark = _fingerprint(type="gone", **base)
        return [DriftFinding("gone", read.kind, read.address, read.remote_id, mark)]
    try:
        found = remote_diff(read.kind, read.address, spec, read.view)
    except ProviderError as err:
        mark = _fingerprint(type="unreadable", **base)
        return [DriftFinding("unreadable", read.kind, read.address, read.remote_id, mark, error=str(err))]
    return [
        DriftFinding(
            "changed", f.kind, f.address, read.remote_id, f.fingerprint, path=f.path, sent=f.sent, remote=f.remote
        )
        for f in found
    ]
