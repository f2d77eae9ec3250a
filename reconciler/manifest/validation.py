"""Checking one document: ``apiVersion`` and ``kind``, then JSON Schema, then the pydantic model.

JSON Schema comes first because it is the schema users get from ``reconciler schema``: its messages name fields
as their editor does, and it reports every error of a document at once. The pydantic model then checks the
rules a schema cannot say (``overlap`` is required unless ...) and builds the typed model later stages use. A
document failing a stage goes no further, so one mistake is not reported three times.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import Problem
from reconciler.kinds import (
    API_VERSION,
    DOCUMENT_MODELS,
    KINDS,
    NAME_PATTERN,
    PerfTestTaskDocument,
    json_schema,
    perftest_task_name_error,
)
from reconciler.manifest.files import Document

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as SchemaError


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    # imported here: jsonschema is 45 ms of start-up, and applying a saved plan or reading the state needs no
    # manifest
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json_schema(kind))


def validate(doc: Document, problems: list[Problem]) -> BaseModel | None:
    """The document's model, or None after adding its problems; later stages only see valid documents."""
    before = len(problems)
    problems.extend(_duplicate_keys(doc))
    if doc.refused:
        problems.extend(doc.refused)
        return None
    data = doc.data
    if not isinstance(data, dict):
        found = type(data).__name__
        problems.append(
            doc.problem((), f"a document must be a mapping with apiVersion, kind, metadata and spec, not {found}")
        )
        return None
    problems.extend(_header_problems(doc, data))
    if len(problems) > before:
        return None
    kind = data["kind"]
    for error in _validator(kind).iter_errors(data):
        problems.extend(_schema_problems(doc, error))
    if len(problems) > before:
        return None
    try:
        model = DOCUMENT_MODELS[kind].model_validate(data)
    except ValidationError as err:
        problems.extend(doc.problem(e["loc"], _pydantic_message(e)) for e in err.errors())
        return None
    problems.extend(_derived_problems(doc, model))
    return model if len(problems) == before else None


def _derived_problems(doc: Document, model: BaseModel) -> Iterator[Problem]:
    """What the API would refuse in a value the document does not write where it is sent: a task without
    ``spec.name`` is created under its ``metadata.name``, which must then pass the rules of a task name."""
    if isinstance(model, PerfTestTaskDocument) and model.spec.name is None:
        error = perftest_task_name_error(model.metadata.name)
        if error is not None:
            yield doc.problem(
                ("metadata", "name"),
                f"used as the task name, since spec.name is not set, but {error}; set spec.name to a name "
                "CodeArts PerfTest accepts, or shorten metadata.name",
            )


def _duplicate_keys(doc: Document) -> Iterator[Problem]:
    for mapping, key in doc.duplicates:
        path = (*doc.lines.path_of(mapping), key.value)
        yield Problem(
            doc.file.display,
            key.start_mark.line + 1,
            doc.address,
            ".".join(path),
            f"duplicate key {key.value!r}; YAML would keep only the last value",
        )


def _header_problems(doc: Document, data: dict[str, Any]) -> Iterator[Problem]:
    """What is wrong with ``apiVersion`` and ``kind``: without both right, no schema applies."""
    version = data.get("apiVersion")
    if version is None:
        yield doc.problem((), f"no apiVersion; every document of a manifest file needs apiVersion: {API_VERSION}")
    elif version != API_VERSION:
        yield doc.problem(("apiVersion",), f"unsupported apiVersion {version!r}; this reconciler reads {API_VERSION}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in DOCUMENT_MODELS:
        yield doc.problem(("kind",) if "kind" in data else (), _kind_message(kind))


def _kind_message(kind: Any) -> str:
    valid = ", ".join(KINDS)
    if kind is None:
        return f"'kind' is a required property; valid kinds: {valid}"
    import difflib  # imported here: only a manifest with errors needs it

    close = difflib.get_close_matches(str(kind), KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown kind {kind!r}{hint}; valid kinds: {valid}"


def _schema_problems(doc: Document, error: SchemaError) -> Iterator[Problem]:
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        import difflib  # imported here: only a manifest with errors needs it

        allowed = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
        for extra in instance:
            if extra not in allowed:
                close = difflib.get_close_matches(str(extra), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield doc.problem([*path, extra], f"unknown field {extra!r}{hint}", field=path)
        return
    message = error.message
    shown = repr(instance)
    if len(shown) > 60:
        message = message.replace(shown, shown[:50] + "...")
    if error.validator == "type" and error.validator_value == "string" and _is_number(instance):
        message += f' (quote it: "{instance}")'
    if error.validator == "pattern" and error.validator_value == NAME_PATTERN:
        message = (
            f"{instance!r} is not a valid name: letters, digits, '.', '_' and '-', starting with a letter or "
            "digit, at most 128 characters"
        )
    yield doc.problem(path, message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pydantic_message(error: ErrorDetails) -> str:
    message = error["msg"]
    return message.removeprefix("Value error, ") if error["type"] == "value_error" else message
