"""A change explained field by field, with paths a person reads (``tasks[0].input_values.text``)."""

from __future__ import annotations

from typing import Any

from reconciler.plan import FieldChange


def explain(before: Any, after: Any) -> tuple[FieldChange, ...]:
    """Field-level differences, with paths a person reads (``tasks[0].input_values.text``). A top-level field
    whose values are not containers is compared here (a changed overlap across 10,000 suites would otherwise
    cost a deepdiff each); containers that differ go to deepdiff."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return _deep(before, after, [])
    changes: list[FieldChange] = []
    for key in sorted({*before, *after}, key=str):
        if key not in after:
            changes.append(FieldChange(_readable_path([key]), "removed", before[key], None))
        elif key not in before:
            changes.append(FieldChange(_readable_path([key]), "added", None, after[key]))
        else:
            old, new = before[key], after[key]
            if type(old) is type(new) and old == new:
                continue
            if isinstance(old, dict | list) and isinstance(new, dict | list):
                changes.extend(_deep(old, new, [key]))
            else:
                changes.append(FieldChange(_readable_path([key]), "changed", old, new))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def _deep(before: Any, after: Any, prefix: list[Any]) -> tuple[FieldChange, ...]:
    from deepdiff import DeepDiff  # only plans with changes to containers pay for importing it

    diff = DeepDiff(before, after, view="tree", ignore_order=False)
    changes: list[FieldChange] = []
    for report_type, items in diff.items():
        for item in items:
            path = _readable_path([*prefix, *item.path(output_format="list")])
            if report_type in ("dictionary_item_added", "iterable_item_added", "attribute_added"):
                changes.append(FieldChange(path, "added", None, item.t2))
            elif report_type in ("dictionary_item_removed", "iterable_item_removed", "attribute_removed"):
                changes.append(FieldChange(path, "removed", item.t1, None))
            else:
                changes.append(FieldChange(path, "changed", item.t1, item.t2))
    changes.sort(key=lambda c: c.path)
    return tuple(changes)


def _readable_path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(whole spec)"
