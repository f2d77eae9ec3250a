"""Plans: what an apply will do, and the plan file that carries it from a pull request to a merge.

An action *is* its sign, as in OpenTofu: ``+`` create, ``~`` change (refused unless replaced), ``-/+`` replace,
``!`` orphan, ``?`` resolve. Each action records why it happens, so ``plan`` can say it and ``apply`` can check
it. A plan file holds the full desired spec of every action plus the provider settings (environment variable
names, never secrets), the state's lineage and serial (a plan applies only to the state it was made
against, unchanged), and the digest of the manifests it came from.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.errors import PlanFileError, StalePlanError

PLAN_FORMAT_VERSION = 2

#: Plan files come from CI artifacts, which anyone with a pull request may shape: larger is refused unread.
MAX_PLAN_FILE_BYTES = 512 * 1024 * 1024


class ActionType(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CHANGE = "change"
    REPLACE = "replace"
    ORPHAN = "orphan"
    DELETE = "delete"
    RESOLVE = "resolve"
    IMPORT = "import"
    NOOP = "noop"

    @property
    def sign(self) -> str:
        return _SIGNS[self]


_SIGNS = {
    ActionType.CREATE: "+",
    ActionType.UPDATE: "~",
    ActionType.CHANGE: "~",
    ActionType.REPLACE: "-/+",
    ActionType.ORPHAN: "!",
    ActionType.DELETE: "-",
    ActionType.RESOLVE: "?",
    ActionType.IMPORT: "<=",
    ActionType.NOOP: " ",
}

#: The order apply takes actions in and the summary lists them in.
ACTION_ORDER = (
    ActionType.RESOLVE,
    ActionType.IMPORT,
    ActionType.CREATE,
    ActionType.REPLACE,
    ActionType.UPDATE,
    ActionType.CHANGE,
    ActionType.ORPHAN,
    ActionType.DELETE,
    ActionType.NOOP,
)

#: What apply acts on; the rest of a plan is reported, not done.
APPLIED_TYPES = (
    ActionType.RESOLVE,
    ActionType.IMPORT,
    ActionType.CREATE,
    ActionType.REPLACE,
    ActionType.UPDATE,
    ActionType.DELETE,
)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between the applied spec and the manifest; ``path`` like ``tasks[0].overlap``."""

    path: str
    change: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


@dataclass(frozen=True, slots=True)
class Action:
    type: ActionType
    address: str
    kind: str
    provider: str
    reason: str
    spec: dict[str, Any] | None = None
    spec_hash: str | None = None
    attempt: int = 0
    remote_id: str | None = None
    operation_id: str | None = None
    diff: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    lineage: str
    serial: int
    workspace: str
    manifest_digest: str
    actions: tuple[Action, ...]
    noop_count: int
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: str = ""
    manifests: tuple[str, ...] = ()
    _runs: tuple[tuple[ActionType, int], ...] | None = field(default=None, init=False, repr=False, compare=False)

    def _type_runs(self) -> tuple[tuple[ActionType, int], ...]:
        """The actions as runs of one type, ``(type, length)``, worked out once per plan.

        A made plan has a handful of runs (resolves, creates, replaces, changes, orphans), so counting and
        selecting by type cost a few slices instead of a pass over every action each time apply asks.
        """
        runs = self._runs
        if runs is None:
            runs = tuple((t, len(list(run))) for t, run in groupby(map(_action_type, self.actions)))
            object.__setattr__(self, "_runs", runs)
        return runs

    def count(self, action_type: ActionType) -> int:
        if action_type is ActionType.NOOP:
            return self.noop_count
        return sum(n for t, n in self._type_runs() if t is action_type)

    def counts(self) -> dict[str, int]:
        counts = {t.value: 0 for t in ACTION_ORDER}
        for action_type, n in self._type_runs():
            counts[action_type.value] += n
        counts[ActionType.NOOP.value] = self.noop_count
        return counts

    @property
    def has_changes(self) -> bool:
        """Whether the plan shows anything at all, orphans and refused changes included."""
        return bool(self.actions)

    @property
    def would_apply(self) -> bool:
        """Whether apply would act on something (``APPLIED_TYPES``): what ``--detailed-exitcode`` answers with 2.

        Orphans are reported, not acted on, and a ``change`` is refused (see ``workflows.refusal``), so a plan of
        those alone would change nothing.
        """
        return any(t in APPLIED_TYPES for t, _ in self._type_runs())

    def applied(self) -> list[Action]:
        """The actions apply acts on (``APPLIED_TYPES``), in plan order."""
        return self.of_type(*APPLIED_TYPES)

    def of_type(self, *types: ActionType) -> list[Action]:
        """The actions of these types, in plan order."""
        selected: list[Action] = []
        start = 0
        for action_type, n in self._type_runs():
            if action_type in types:
                selected += self.actions[start : start + n]
            start += n
        return selected


_action_type = attrgetter("type")


# --- The plan file -----------------------------------------------------------------------------------------


class PlanFileModel(BaseModel):
    """The JSON plan file; its JSON Schema is committed as ``schemas/plan.json``."""

    model_config = ConfigDict(extra="forbid")
    format_version: int
    lineage: str
    serial: int
    workspace: str
    manifest_digest: str
    created_at: str
    manifests: list[str]
    providers: dict[str, dict[str, Any]]
    summary: dict[str, int]
    actions: list[Action]


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "workspace": plan.workspace,
        "manifest_digest": plan.manifest_digest,
        "created_at": plan.created_at,
        "manifests": list(plan.manifests),
        "providers": plan.providers,
        "summary": plan.counts(),
        "actions": [_action_to_dict(a) for a in plan.actions],
    }


def _action_to_dict(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": action.type.value,
        "address": action.address,
        "kind": action.kind,
        "provider": action.provider,
        "reason": action.reason,
    }
    for key in ("spec", "spec_hash", "remote_id", "operation_id"):
        value = getattr(action, key)
        if value is not None:
            out[key] = value
    if action.attempt:
        out["attempt"] = action.attempt
    if action.diff:
        out["diff"] = [{"path": c.path, "change": c.change, "before": c.before, "after": c.after} for c in action.diff]
    return out


def write_plan(plan: Plan, path: Path) -> None:
    """Write atomically: a pipeline that is killed mid-write must not leave a half plan to apply later."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(plan_to_dict(plan), out, ensure_ascii=False, separators=(",", ":"))
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_plan_file(path: Path) -> bool:
    """Whether ``path`` looks like a plan file rather than a manifest: ``apply`` takes either."""
    if not path.is_file() or path.suffix != ".json":
        return False
    with path.open("rb") as head:
        start = head.read(4096)
    return b'"format_version"' in start and b'"lineage"' in start


def check_current(plan: Plan, *, lineage: str, serial: int, workspace: str, path: Path, select: str) -> None:
    """A saved plan applies only to the state it was made against, unchanged since.

    Each refusal says what differs: the workspace (``select`` is how to choose the plan's, such as
    ``--workspace staging``), the state itself (its lineage), or only the serial (the state moved on).
    """
    if plan.workspace != workspace:
        raise StalePlanError(
            f"{path} was made for workspace {plan.workspace!r} (state lineage {plan.lineage}), but this is "
            f"workspace {workspace!r} (lineage {lineage}): apply it with {select}, or make a new plan"
        )
    if plan.lineage != lineage:
        raise StalePlanError(
            f"{path} was made against another state of workspace {workspace!r} (lineage {plan.lineage}) than "
            f"this one (lineage {lineage}): apply it with the --state it was made with, or make a new plan"
        )
    if plan.serial != serial:
        raise StalePlanError(
            f"{path} is stale: it was made against state serial {plan.serial}, and the state is now at "
            f"serial {serial}; make a new plan with `reconciler plan ... --out {path}`"
        )


def read_plan(path: Path) -> Plan:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PLAN_FILE_BYTES + 1)
        if len(data) > MAX_PLAN_FILE_BYTES:
            raise PlanFileError(
                f"{path}: larger than {MAX_PLAN_FILE_BYTES >> 20} MiB; not a plan file this reconciler made"
            )
        raw = orjson.loads(data)
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except (OSError, orjson.JSONDecodeError) as err:
        raise PlanFileError(f"{path}: not a plan file ({err})") from None
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise PlanFileError(f"{path}: not a plan file (no format_version); make one with `reconciler plan --out`")
    version = raw["format_version"]
    if not isinstance(version, int) or version > PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: plan format {version} is newer than this reconciler understands "
            f"({PLAN_FORMAT_VERSION}); upgrade reconciler"
        )
    if version < PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: plan format {version} was made by an older reconciler and does not name the manifests it "
            "came from; make the plan again with `reconciler plan ... --out`"
        )
    try:
        model = PlanFileModel.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanFileError(f"{path}: damaged plan file: {where}: {first['msg']}") from None
    return Plan(
        lineage=model.lineage,
        serial=model.serial,
        workspace=model.workspace,
        manifest_digest=model.manifest_digest,
        actions=tuple(model.actions),
        noop_count=model.summary.get(ActionType.NOOP.value, 0),
        providers=model.providers,
        created_at=model.created_at,
        manifests=tuple(model.manifests),
    )
