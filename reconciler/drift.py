"""What was sent against what the remote holds: the field differences that are real drift, and nothing else.

A drift job that cries wolf gets switched off, so this module reports only what someone changed behind the
tool's back. Three rules keep it quiet:

- A field the tool did not send is never drift. The server fills such fields with defaults of its own (a
  pool's ``default_overlap``, ``mixed``, ``latitude``...), and the manifest said nothing about them.
- Fields the server manages, or that change through normal work, are never compared, even when the spec holds
  them (``SUITE_SERVER_MANAGED``, ``SUITE_TASK_SERVER_MANAGED``, ``PERFTEST_SERVER_MANAGED``; each says why).
- Values are compared as JSON means them, not as the server spells them: ``1`` and ``1.0`` are one number
  (``true`` and ``1`` are not), a sent value the server omits because it is its default is the same value,
  and unordered sets compare without their order.

Pure and backend-free: given a kind, an address, the spec recorded in the state and the remote view read back
(``GET /api/v1/task-suites/{id}``, or ``GET /v1/{project_id}/tasks/{id}`` with or without its envelope), it
returns ``Finding`` objects, each with a fingerprint a cron job can keep to tell new drift from reported drift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.encoding import canonical_json
from reconciler.errors import PermanentProviderError, StateError
from reconciler.kinds import PERFTEST_TASK, TASK_SUITE, TASK_SUITE_SET

__all__ = [
    "PERFTEST_SERVER_MANAGED",
    "PERFTEST_UNREADABLE",
    "SUITE_ECHOED_DEFAULTS",
    "SUITE_SERVER_MANAGED",
    "SUITE_TASK_SERVER_MANAGED",
    "UNORDERED_FIELDS",
    "Finding",
    "finding_fingerprint",
    "matching_suites",
    "one_to_one",
    "remote_diff",
    "suite_key",
]

#: Fields of a Toloka task suite that are the server's, with why none of them is drift.
SUITE_SERVER_MANAGED: Mapping[str, str] = {
    "id": "the server names the suite; the state records the id, it is not part of what was sent",
    "created": "the server's clock at creation, never sent",
    "remaining_overlap": "falls as workers complete the suite: normal work, not a change",
    "automerged": "set by the server when it merges duplicate answers",
    "options": "query parameters of the create request (allow_defaults, open_pool, skip_invalid_items), not "
    "fields of the suite; whether the pool is open is opened and closed by normal work",
}

#: Fields of a task inside a suite that are the server's.
SUITE_TASK_SERVER_MANAGED: Mapping[str, str] = {
    "id": "the server names each task of a suite; never sent",
    "origin_task_id": "the server's link to the task a copy was made from; never sent",
    "created": "the server's clock at creation, never sent",
}

#: Values the server may omit from a suite (or a known solution) because they are its defaults: a sent field
#: missing from the remote view holds its default, so sending the default and reading nothing back is no drift.
SUITE_ECHOED_DEFAULTS: Mapping[str, Any] = {
    "infinite_overlap": False,
    "mixed": False,
    "issuing_order_override": 0,
    "reserved_for": [],
    "unavailable_for": [],
    "traits_all_of": [],
    "traits_any_of": [],
    "traits_none_of_any": [],
    "correctness_weight": 1,
}

#: Fields whose value is a set: the server may give the members back in any order.
UNORDERED_FIELDS = frozenset(
    {"reserved_for", "unavailable_for", "traits_all_of", "traits_any_of", "traits_none_of_any", "case_id_list"}
)

#: Fields of a PerfTest task (``taskInfo``) that are the server's, with why none of them is drift.
PERFTEST_SERVER_MANAGED: Mapping[str, str] = {
    "id": "the server names the task; never sent",
    "task_id": "the server names the task; never sent",
    "run_status": "changes whenever someone runs or stops the task: normal work",
    "create_time": "the server's clock at creation, never sent",
    "update_time": "moves with every run and every console edit of things the tool does not send",
    "task_run_info": "the run history: normal work",
    "related_temp_running_data": "the run history: normal work",
    "bench_concurrent": "derived by the server from the cases' settings, never sent",
    "description": "the tool sends none; CPTS fills an empty one",
    "case_list": "read as case_id_list (the case ids in it); the rest of each case is the case's own",
}

#: Sent fields that a read of one task does not give back: nothing can be said of them, so they are skipped
#: when absent (and compared when a server does return them).
PERFTEST_UNREADABLE: Mapping[str, str] = {
    "enable_full_link": "sent on create, but GET of one task does not return it",
}

_ABSENT: Any = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One field the remote holds differently from what was sent. ``remote`` is None when the remote view
    lacks the field. ``path`` is dotted, as Toloka names fields in its errors (``tasks.0.input_values.text``)."""

    kind: str
    address: str
    path: str
    sent: Any
    remote: Any
    fingerprint: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": self.address,
            "path": self.path,
            "sent": self.sent,
            "remote": self.remote,
            "fingerprint": self.fingerprint,
        }


@dataclass(slots=True)
class _Diff:
    """The findings of one resource as they are found, with what every finding is stamped with."""

    kind: str
    address: str
    found: list[Finding]

    def add(self, path: str, sent: Any, remote: Any) -> None:
        fingerprint = finding_fingerprint(self.kind, self.address, path, sent, remote)
        self.found.append(Finding(self.kind, self.address, path, sent, remote, fingerprint))


def finding_fingerprint(kind: str, address: str, path: str, sent: Any, remote: Any) -> str:
    """sha256 of the finding's canonical JSON, numbers in one spelling, so the same drift read twice (or
    echoed as ``1.0`` one night and ``1`` the next) keeps its fingerprint and a cron job reports it once."""
    finding = {"kind": kind, "address": address, "path": path, "sent": _plain(sent), "remote": _plain(remote)}
    return hashlib.sha256(canonical_json(finding).encode("utf-8")).hexdigest()


def suite_key(suite: Mapping[str, Any]) -> str:
    """The input values of a suite's tasks, in order and numbers in one spelling: what tells one suite from
    another. Discovery narrows a pool's suites to a resource's candidates by it before comparing them whole."""
    tasks = suite.get("tasks")
    values = [t.get("input_values") if isinstance(t, Mapping) else t for t in tasks] if isinstance(tasks, list) else []
    return canonical_json(_plain(values))


Candidates = dict[str, list[tuple[str, dict[str, Any]]]]


def matching_suites(
    wanted: Iterable[tuple[str, str, Mapping[str, Any]]], suites: Iterable[dict[str, Any]]
) -> Candidates:
    """For each wanted (address, kind, spec), the (id, suite) pairs among ``suites`` that hold exactly its
    content. Toloka keeps no id of ours on a suite, so content is all there is: candidates are narrowed by their
    input values (``suite_key``), then ``remote_diff`` must find nothing, by the rules drift compares with."""
    index: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    candidates: Candidates = {}
    for address, kind, spec in wanted:
        index.setdefault(suite_key(spec), []).append((address, kind, spec))
        candidates[address] = []
    for suite in suites:
        for address, kind, spec in index.get(suite_key(suite), ()):
            if not remote_diff(kind, address, spec, suite):
                candidates[address].append((str(suite["id"]), suite))
    return candidates


def one_to_one(
    candidates: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
) -> tuple[dict[str, tuple[str, dict[str, Any]]], dict[str, list[str]]]:
    """The addresses matched by exactly one object that matches no other address, and the rest that matched
    anything (each with the ids it matched): those are adopted by no one, as a guess could be a duplicate."""
    claims: dict[str, int] = {}
    for found in candidates.values():
        for remote_id, _ in found:
            claims[remote_id] = claims.get(remote_id, 0) + 1
    matched: dict[str, tuple[str, dict[str, Any]]] = {}
    ambiguous: dict[str, list[str]] = {}
    for address, found in candidates.items():
        if len(found) == 1 and claims[found[0][0]] == 1:
            matched[address] = found[0]
        elif found:
            ambiguous[address] = sorted(remote_id for remote_id, _ in found)
    return matched, ambiguous


def remote_diff(kind: str, address: str, sent: Mapping[str, Any], remote: Any) -> list[Finding]:
    """The real drift between the spec recorded for ``address`` and the remote view read back, in the order
    of the sent spec's fields. An empty list means in sync."""
    diff = _Diff(kind, address, [])
    if kind in (TASK_SUITE, TASK_SUITE_SET):
        _suite_diff(diff, sent, _object(remote, address, "a task suite"))
    elif kind == PERFTEST_TASK:
        _perftest_diff(diff, sent, _task_info(remote, address))
    else:
        raise StateError(f"{address}: the state records kind {kind!r}, which has no remote to compare with")
    return diff.found


def _object(value: Any, address: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PermanentProviderError(f"the remote view is not {what} (a JSON object)", address=address)
    return value


def _task_info(remote: Any, address: str) -> Mapping[str, Any]:
    """The task of a ``GET`` answer, its envelope (``{code, message, taskInfo}``) taken off if present."""
    view = _object(remote, address, "a PerfTest task")
    if "taskInfo" in view:
        view = _object(view["taskInfo"], address, "a PerfTest task")
    return view


def _suite_diff(diff: _Diff, sent: Mapping[str, Any], remote: Mapping[str, Any]) -> None:
    for key, value in sent.items():
        if key in SUITE_SERVER_MANAGED:
            continue
        if key == "tasks":
            _tasks_diff(diff, value, remote.get("tasks"))
        else:
            _sent_field(diff, key, value, remote)


def _sent_field(diff: _Diff, path: str, value: Any, remote: Mapping[str, Any]) -> None:
    """Compare one sent field of an object whose other fields are the server's; ``path`` ends in its key."""
    key = path.rsplit(".", 1)[-1]
    if key in remote:
        _compare(diff, path, value, remote[key], unordered=key in UNORDERED_FIELDS)
    elif key not in SUITE_ECHOED_DEFAULTS or not _equal(value, SUITE_ECHOED_DEFAULTS[key], unordered=False):
        diff.add(path, value, _ABSENT)


def _tasks_diff(diff: _Diff, sent: Any, remote: Any) -> None:
    """Tasks in order: a suite's tasks cannot be added, removed or reordered by the API, so a different count
    is one finding for the whole list, and otherwise each task is compared with its server fields left out."""
    if not isinstance(sent, list) or not isinstance(remote, list) or len(sent) != len(remote):
        diff.add("tasks", sent, _strip_task_ids(remote))
        return
    for index, (task, echoed) in enumerate(zip(sent, remote, strict=True)):
        path = f"tasks.{index}"
        if not isinstance(task, Mapping) or not isinstance(echoed, Mapping):
            _compare(diff, path, task, echoed, unordered=False)
            continue
        for key, value in task.items():
            if key in SUITE_TASK_SERVER_MANAGED:
                continue
            if key == "known_solutions":
                _solutions_diff(diff, f"{path}.known_solutions", value, echoed.get(key))
            else:
                _sent_field(diff, f"{path}.{key}", value, echoed)


def _solutions_diff(diff: _Diff, path: str, sent: Any, remote: Any) -> None:
    if not isinstance(sent, list) or not isinstance(remote, list) or len(sent) != len(remote):
        _compare(diff, path, sent, remote, unordered=False)
        return
    for index, (solution, echoed) in enumerate(zip(sent, remote, strict=True)):
        if not isinstance(solution, Mapping) or not isinstance(echoed, Mapping):
            _compare(diff, f"{path}.{index}", solution, echoed, unordered=False)
            continue
        for key, value in solution.items():
            _sent_field(diff, f"{path}.{index}.{key}", value, echoed)


def _strip_task_ids(tasks: Any) -> Any:
    if not isinstance(tasks, list):
        return tasks
    return [
        {k: v for k, v in task.items() if k not in SUITE_TASK_SERVER_MANAGED} if isinstance(task, Mapping) else task
        for task in tasks
    ]


def _perftest_diff(diff: _Diff, sent: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    view = dict(info)
    if "case_id_list" not in view and "case_list" in view:
        view["case_id_list"] = _case_ids(info["case_list"], diff.address)
    for key, value in sent.items():
        if key in PERFTEST_SERVER_MANAGED or (key in PERFTEST_UNREADABLE and key not in view):
            continue
        if key in view:
            _compare(diff, key, value, view[key], unordered=key in UNORDERED_FIELDS)
        else:
            diff.add(key, value, _ABSENT)


def _case_ids(cases: Any, address: str) -> list[Any]:
    """The ids of a task's cases, from the ``case_list`` a read gives instead of the ``case_id_list`` sent."""
    if not isinstance(cases, list) or not all(isinstance(c, Mapping) and "case_id" in c for c in cases):
        raise PermanentProviderError("the remote task's case_list is not a list of cases", address=address)
    return [case["case_id"] for case in cases]


def _compare(diff: _Diff, path: str, sent: Any, remote: Any, *, unordered: bool) -> None:
    """Values the user wrote (input values, output values) are compared whole: every key counts, so a key
    added remotely is drift; each difference is reported at the deepest path where the two part."""
    if isinstance(sent, Mapping) and isinstance(remote, Mapping):
        for key in [*sent, *(k for k in remote if k not in sent)]:
            if key not in remote or key not in sent:
                diff.add(f"{path}.{key}", sent.get(key, _ABSENT), remote.get(key, _ABSENT))
            else:
                _compare(diff, f"{path}.{key}", sent[key], remote[key], unordered=False)
    elif isinstance(sent, list) and isinstance(remote, list) and not unordered and len(sent) == len(remote):
        for index, (left, right) in enumerate(zip(sent, remote, strict=True)):
            _compare(diff, f"{path}.{index}", left, right, unordered=False)
    elif not _equal(sent, remote, unordered=unordered):
        diff.add(path, sent, remote)


def _equal(left: Any, right: Any, *, unordered: bool) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1`` (Python's ``==`` says otherwise); with ``unordered``,
    two lists are equal when they hold the same members as many times."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[k], right[k], unordered=False) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return False
        if unordered:
            return sorted(canonical_json(_plain(x)) for x in left) == sorted(canonical_json(_plain(x)) for x in right)
        return all(_equal(a, b, unordered=False) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and bool(left == right)


def _plain(value: Any) -> Any:
    """A value with every integral float as an integer: the one spelling of a number used for hashing."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
