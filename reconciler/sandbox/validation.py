"""The input checks of both APIs, as pure functions of a request body.

They answer the way each API does: CPTS stops at the first problem and says it in one message; Toloka reports
every field of every suite, keyed by the field's dotted path (``tasks.0.input_values``), each as
``{"code", "message", "params"?}``. Whether a pool exists is the world's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FieldErrors = dict[str, dict[str, Any]]

TASK_NAME_MAX = 42
OVERLAP_MIN, OVERLAP_MAX = 1, 30000
ISSUING_ORDER_LIMIT = 99999.99999

#: Suite fields beyond the three every suite has; anything else in a submitted suite is ignored (but echoed in
#: operation logs, as ``__item_idx`` must be).
_BASIC_FIELDS = frozenset({"pool_id", "tasks", "overlap"})
TASK_FIELDS = ("input_values", "known_solutions", "message_on_unknown_solution")
_STRING_LIST_FIELDS = ("reserved_for", "unavailable_for", "traits_all_of", "traits_any_of", "traits_none_of_any")
_OPTIONAL_ECHOED = (*_STRING_LIST_FIELDS, "longitude", "latitude")


class InvalidTaskBody(ValueError):
    """A CPTS task body the API refuses; the message is the one CPTS would answer."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_task_body(body: Any) -> dict[str, Any]:
    """The CPTS ``POST /v3/{project_id}/tasks`` checks; returns the fields a task keeps."""
    if not isinstance(body, dict):
        raise InvalidTaskBody("the request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidTaskBody("name is required and must be a non-empty string")
    if len(name) > TASK_NAME_MAX:
        raise InvalidTaskBody(f"name must be at most {TASK_NAME_MAX} characters")
    if not isinstance(body.get("parallel"), bool):
        raise InvalidTaskBody("parallel is required and must be a boolean")
    if not _is_int(body.get("project_id")) or body["project_id"] < 1:
        raise InvalidTaskBody("project_id is required and must be a positive integer")
    if not _is_int(body.get("operate_mode")) or not 0 <= body["operate_mode"] <= 2:
        raise InvalidTaskBody("operate_mode is required and must be 0, 1 or 2")
    cases = body.get("case_id_list")
    if not isinstance(cases, list) or not all(_is_int(c) for c in cases):
        raise InvalidTaskBody("case_id_list is required and must be a list of integers")
    full_link = body.get("enable_full_link")
    if full_link is not None and not isinstance(full_link, bool):
        raise InvalidTaskBody("enable_full_link must be a boolean")
    return {
        "name": name,
        "parallel": body["parallel"],
        "project_id": body["project_id"],
        "operate_mode": body["operate_mode"],
        "case_id_list": list(cases),
        "enable_full_link": bool(full_link),
    }


def _required() -> dict[str, Any]:
    return {"code": "VALUE_REQUIRED", "message": "Value must be present and not equal to null"}


def _wrong_type(expected: str) -> dict[str, Any]:
    return {"code": "VALUE_TYPE_MISMATCH", "message": f"Value must be {expected}"}


def _range(value: float, low: float, high: float) -> dict[str, Any] | None:
    if value < low:
        return {
            "code": "VALUE_LESS_THAN_MIN",
            "message": f"Value must be greater or equal to {low:g}",
            "params": [low],
        }
    if value > high:
        return {
            "code": "VALUE_GREATER_THAN_MAX",
            "message": f"Value must be less or equal to {high:g}",
            "params": [high],
        }
    return None


def _check_string_list(suite: dict[str, Any], key: str, errors: FieldErrors) -> None:
    value = suite.get(key)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        errors[key] = _wrong_type("an array of strings")


def _check_number(suite: dict[str, Any], key: str, limit: float, errors: FieldErrors) -> None:
    value = suite.get(key)
    if value is None:
        return
    if not _is_number(value):
        errors[key] = _wrong_type("a number")
    elif (problem := _range(value, -limit, limit)) is not None:
        errors[key] = problem


def _check_task(index: int, task: Any, errors: FieldErrors) -> None:
    where = f"tasks.{index}"
    if not isinstance(task, dict):
        errors[where] = _wrong_type("an object")
        return
    inputs = task.get("input_values")
    if inputs is None:
        errors[f"{where}.input_values"] = _required()
    elif not isinstance(inputs, dict):
        errors[f"{where}.input_values"] = _wrong_type("an object")
    solutions = task.get("known_solutions")
    if solutions is not None:
        if not isinstance(solutions, list):
            errors[f"{where}.known_solutions"] = _wrong_type("an array")
            return
        for s_index, solution in enumerate(solutions):
            s_where = f"{where}.known_solutions.{s_index}"
            if not isinstance(solution, dict):
                errors[s_where] = _wrong_type("an object")
                continue
            if not isinstance(solution.get("output_values"), dict):
                errors[f"{s_where}.output_values"] = (
                    _required() if solution.get("output_values") is None else _wrong_type("an object")
                )
            weight = solution.get("correctness_weight")
            if weight is not None:
                if not _is_number(weight):
                    errors[f"{s_where}.correctness_weight"] = _wrong_type("a number")
                elif (problem := _range(weight, 0, 1)) is not None:
                    errors[f"{s_where}.correctness_weight"] = problem
    message = task.get("message_on_unknown_solution")
    if message is not None and not isinstance(message, str):
        errors[f"{where}.message_on_unknown_solution"] = _wrong_type("a string")


def check_suite(suite: Any, *, default_overlap: int | None, allow_defaults: bool) -> FieldErrors:
    """Every field problem of one submitted suite (empty when it is valid), pool existence aside.

    ``default_overlap`` is the pool's default, used only when ``allow_defaults`` is set and ``overlap`` is
    missing.
    """
    if not isinstance(suite, dict):
        return {"task_suite": _wrong_type("an object")}
    errors: FieldErrors = {}
    pool_id = suite.get("pool_id")
    if pool_id is None:
        errors["pool_id"] = _required()
    elif not isinstance(pool_id, str) or not pool_id:
        errors["pool_id"] = _wrong_type("a non-empty string")
    tasks = suite.get("tasks")
    if tasks is None:
        errors["tasks"] = _required()
    elif not isinstance(tasks, list):
        errors["tasks"] = _wrong_type("an array")
    elif not tasks:
        errors["tasks"] = {"code": "VALUE_REQUIRED", "message": "A task suite needs at least one task"}
    else:
        for index, task in enumerate(tasks):
            _check_task(index, task, errors)
    infinite = suite.get("infinite_overlap")
    if infinite is not None and not isinstance(infinite, bool):
        errors["infinite_overlap"] = _wrong_type("a boolean")
    overlap = suite.get("overlap")
    if overlap is None:
        if not infinite and not (allow_defaults and default_overlap is not None):
            errors["overlap"] = _required()
    elif not _is_int(overlap):
        errors["overlap"] = _wrong_type("an integer")
    elif (problem := _range(overlap, OVERLAP_MIN, OVERLAP_MAX)) is not None:
        errors["overlap"] = problem
    for key in suite.keys() - _BASIC_FIELDS:  # only the optional fields present: most suites have none
        check = _OPTIONAL_CHECKS.get(key)
        if check is not None:
            check(suite, key, errors)
    return errors


def _check_boolean(suite: dict[str, Any], key: str, errors: FieldErrors) -> None:
    value = suite.get(key)
    if value is not None and not isinstance(value, bool):
        errors[key] = _wrong_type("a boolean")


_OPTIONAL_CHECKS: dict[str, Callable[[dict[str, Any], str, FieldErrors], None]] = {
    "mixed": _check_boolean,
    **{key: _check_string_list for key in _STRING_LIST_FIELDS},
    "issuing_order_override": lambda suite, key, errors: _check_number(suite, key, ISSUING_ORDER_LIMIT, errors),
    "latitude": lambda suite, key, errors: _check_number(suite, key, 90, errors),
    "longitude": lambda suite, key, errors: _check_number(suite, key, 180, errors),
}


def _task_document(task: dict[str, Any]) -> dict[str, Any]:
    if len(task) == 1 and "input_values" in task:
        return {"input_values": task["input_values"]}
    doc = {key: task[key] for key in TASK_FIELDS if task.get(key) is not None}
    if "known_solutions" in doc:
        doc["known_solutions"] = [{"correctness_weight": 1, **solution} for solution in doc["known_solutions"]]
    return doc


def suite_document(suite: dict[str, Any], *, default_overlap: int | None) -> dict[str, Any]:
    """The known fields of a valid submitted suite, with the defaults the API echoes back.

    The world adds the server-side fields (``id``, ``created``, ``remaining_overlap``, ``automerged``).
    """
    doc: dict[str, Any] = {"pool_id": suite["pool_id"]}
    doc["tasks"] = [_task_document(task) for task in suite["tasks"]]
    infinite = bool(suite.get("infinite_overlap", False))
    overlap = suite.get("overlap")
    if overlap is None and not infinite:
        overlap = default_overlap
    if overlap is not None:
        doc["overlap"] = overlap
    doc["infinite_overlap"] = infinite
    doc["mixed"] = bool(suite.get("mixed", False))
    doc["issuing_order_override"] = suite.get("issuing_order_override", 0)
    extra = suite.keys() - _BASIC_FIELDS
    if extra:
        for key in _OPTIONAL_ECHOED:  # in a fixed order, so a suite always serialises the same way
            if key in extra and suite[key] is not None:
                doc[key] = suite[key]
    return doc


#: What ``PATCH /api/v1/task-suites/{id}`` may change; anything else is refused, never ignored.
SUITE_PATCH_FIELDS = frozenset({"overlap", "infinite_overlap", "issuing_order_override"})


def _not_patchable() -> dict[str, Any]:
    return {"code": "VALUE_NOT_ALLOWED", "message": "This field cannot be changed on an existing task suite"}


def check_suite_patch(body: Any) -> FieldErrors:
    """The field checks of a suite patch (empty when valid), before the suite itself is looked at.

    ``overlap`` has create's range; ``infinite_overlap: true`` with an ``overlap`` contradicts itself. Whether the
    overlap is below what the suite has already used is the world's to say."""
    if not isinstance(body, dict):
        return {"task_suite_patch": _wrong_type("an object")}
    errors: FieldErrors = {key: _not_patchable() for key in sorted(body.keys() - SUITE_PATCH_FIELDS)}
    overlap, infinite = body.get("overlap"), body.get("infinite_overlap")
    if overlap is not None:
        if not _is_int(overlap):
            errors["overlap"] = _wrong_type("an integer")
        elif (problem := _range(overlap, OVERLAP_MIN, OVERLAP_MAX)) is not None:
            errors["overlap"] = problem
    if infinite is not None and not isinstance(infinite, bool):
        errors["infinite_overlap"] = _wrong_type("a boolean")
    elif infinite is True and overlap is not None:
        errors["infinite_overlap"] = {
            "code": "VALUE_NOT_ALLOWED",
            "message": "An infinite overlap takes no overlap value",
        }
    _check_number(body, "issuing_order_override", ISSUING_ORDER_LIMIT, errors)
    return errors


def check_overlap_patch(body: Any) -> FieldErrors:
    """The checks of ``PATCH .../set-overlap-or-min``: ``{"overlap": N}``, N from 0 (stop) to create's maximum."""
    if not isinstance(body, dict):
        return {"task_suite_overlap_patch": _wrong_type("an object")}
    errors: FieldErrors = {key: _not_patchable() for key in sorted(body.keys() - {"overlap"})}
    overlap = body.get("overlap")
    if overlap is None:
        errors["overlap"] = _required()
    elif not _is_int(overlap):
        errors["overlap"] = _wrong_type("an integer")
    elif (problem := _range(overlap, 0, OVERLAP_MAX)) is not None:
        errors["overlap"] = problem
    return errors
