"""Planner cases: each folder under ``cases/`` is one behaviour, written as data, and this is their one runner.

A case folder holds:

- ``manifests/``: the manifests, read with ``reconciler.manifest.load`` as ``reconciler plan`` reads them;
- ``state.json``: the recorded resources, a list of summaries (``address``, ``kind``, ``provider``, ``status``,
  ``remote_id``, ``operation_id``, ``attempt``), each with either its ``spec`` (hashed as the store hashes it,
  and what ``load_specs`` returns for it) or only a ``spec_hash`` (then the planner may not ask for its spec);
- ``options.json`` (optional): ``targets`` and ``replace``, as ``--target`` and ``--replace`` give them, and
  ``remote``, what a refresh read (``gone``: addresses; ``drifted``: address to ``[path, sent, remote]``
  triples; ``imports``: address to remote id), and ``prune`` and ``destroy`` as ``--prune`` and ``destroy``;
- ``expected.txt``: the plan as the stable text ``plan_text`` writes, or ``expected_error.txt``: the message
  of the ``PlanError`` the planner must raise instead.

Besides its text, every plan must ask ``load_specs`` for the resources it reports as changed and for no
resource the manifests hold unchanged (the recorded specs are read, and deepdiff runs, only where content
differs: a changed resource, or a suite that grew), and must come back unchanged from a plan file.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.encoding import content_hash
from reconciler.errors import PlanError
from reconciler.manifest import load
from reconciler.plan import Action, ActionType, FieldChange, Plan, read_plan, write_plan
from reconciler.planner import RemoteFacts, make_plan
from reconciler.state.base import ResourceSummary, Status

CASES = Path(__file__).parent / "cases"
CASE_NAMES = sorted(path.name for path in CASES.iterdir() if path.is_dir())
SUMMARY_FIELDS = ("address", "kind", "provider", "status", "remote_id", "operation_id", "attempt")
LINEAGE, SERIAL, WORKSPACE = "lin", 7, "default"


def plan_text(plan: Plan) -> str:
    """One line per action, ``SIGN ADDRESS  reason``; beneath it what the action carries besides (attempt,
    remote and operation ids, when set) and its field diff; then the counts."""
    lines: list[str] = []
    for action in plan.actions:
        lines.append(f"{action.type.sign} {action.address}  {action.reason}")
        carried = _carried(action)
        if carried:
            lines.append(f"    {carried}")
        lines.extend(f"    {_change_text(change)}" for change in action.diff)
    if lines:
        lines.append("")
    lines.append("counts: " + " ".join(f"{name}={n}" for name, n in plan.counts().items()))
    lines.append(f"has_changes: {json.dumps(plan.has_changes)}")
    return "\n".join(lines) + "\n"


def _carried(action: Action) -> str:
    parts = [f"attempt={action.attempt}"] if action.attempt else []
    parts += [f"{key}={getattr(action, key)}" for key in ("remote_id", "operation_id") if getattr(action, key)]
    return " ".join(parts)


def _change_text(change: FieldChange) -> str:
    before, after = (json.dumps(v, ensure_ascii=False, sort_keys=True) for v in (change.before, change.after))
    if change.change == "added":
        return f"+ {change.path}: {after}"
    if change.change == "removed":
        return f"- {change.path}: {before}"
    return f"~ {change.path}: {before} -> {after}"


def _summary(entry: dict[str, Any], where: str) -> ResourceSummary:
    extra = set(entry) - {*SUMMARY_FIELDS, "spec", "spec_hash"}
    missing = set(SUMMARY_FIELDS) - set(entry)
    if extra or missing or ("spec" in entry) == ("spec_hash" in entry):
        pytest.fail(
            f"{where}: {entry.get('address')!r} needs {', '.join(SUMMARY_FIELDS)} and one of spec or spec_hash "
            f"(missing: {sorted(missing)}, unknown: {sorted(extra)})",
            pytrace=False,
        )
    fields = {key: entry[key] for key in SUMMARY_FIELDS}
    fields["status"] = Status(entry["status"])
    spec_hash = content_hash(entry["spec"]) if "spec" in entry else entry["spec_hash"]
    return ResourceSummary(**fields, spec_hash=spec_hash)


def _same_text(actual: str, expected_file: Path) -> None:
    expected = expected_file.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(expected_file), "actual"
        )
        pytest.fail(f"the planner's result differs from {expected_file}:\n{''.join(diff)}", pytrace=False)


def test_the_cases_are_found() -> None:
    assert len(CASE_NAMES) >= 10, f"expected the planner's case folders under {CASES}, found {CASE_NAMES}"


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case(name: str, tmp_path: Path) -> None:
    case = CASES / name
    expected_file, error_file = case / "expected.txt", case / "expected_error.txt"
    assert expected_file.is_file() != error_file.is_file(), f"{case}: give expected.txt or expected_error.txt"

    desired = load([case / "manifests"])
    entries = json.loads((case / "state.json").read_text(encoding="utf-8"))
    recorded = [_summary(entry, str(case / "state.json")) for entry in entries]
    specs = {entry["address"]: entry["spec"] for entry in entries if "spec" in entry}
    options_file = case / "options.json"
    options = json.loads(options_file.read_text(encoding="utf-8")) if options_file.is_file() else {}
    known = {"targets", "replace", "remote", "prune", "destroy"}
    assert set(options) <= known, f"{options_file}: only {', '.join(sorted(known))}"
    remote = options.get("remote", {})
    facts = RemoteFacts(
        gone=frozenset(remote.get("gone", ())),
        drifted={
            a: tuple(FieldChange(p, "changed", x, y) for p, x, y in d) for a, d in remote.get("drifted", {}).items()
        },
        imports=remote.get("imports", {}),
    )

    asked: list[str] = []

    def load_specs(addresses: list[str]) -> dict[str, dict[str, Any]]:
        asked.extend(addresses)
        unknown = [a for a in addresses if a not in specs]
        assert not unknown, f"the planner asked for recorded specs that state.json gives only a hash of: {unknown}"
        return {a: specs[a] for a in addresses}

    try:
        plan = make_plan(
            desired=desired.resources,
            providers=desired.providers,
            recorded=recorded,
            load_specs=load_specs,
            lineage=LINEAGE,
            serial=SERIAL,
            workspace=WORKSPACE,
            manifest_digest=desired.digest,
            targets=options.get("targets", ()),
            replace=options.get("replace", ()),
            remote=facts if remote else None,
            prune=options.get("prune", False),
            destroy=options.get("destroy", False),
        )
    except PlanError as err:
        if not error_file.is_file():
            raise
        _same_text(f"{err}\n", error_file)
        return
    if error_file.is_file():
        pytest.fail(f"expected a PlanError as in {error_file}, got a plan:\n{plan_text(plan)}", pytrace=False)

    _same_text(plan_text(plan), expected_file)

    changed = {a.address for a in plan.of_type(ActionType.CHANGE) if a.address not in facts.drifted}
    differ = {r.address for r in recorded if r.address not in desired.resources} | {
        r.address for r in recorded if (d := desired.resources.get(r.address)) and d.spec_hash != r.spec_hash
    }
    assert changed <= set(asked) <= differ, f"recorded specs were read for {asked}; the changed are {changed}"

    assert (plan.lineage, plan.serial, plan.workspace, plan.manifest_digest) == (
        LINEAGE,
        SERIAL,
        WORKSPACE,
        desired.digest,
    )
    write_plan(plan, tmp_path / "plan.json")
    again = read_plan(tmp_path / "plan.json")
    assert again == plan, f"the plan file did not carry the plan unchanged:\n{plan_text(again)}"
    assert again.counts() == plan.counts()
