"""Manifest files in, the validated desired state out, or every problem at once.

``load`` runs four stages and raises one ``ManifestError`` holding every problem of every stage, sorted by
file and line, so a user fixes a pull request in one pass instead of one error per CI run:

1. discover: the given files and directories (recursively, ``*.yaml``/``*.yml``/``*.json``, sorted; hidden
   directories such as ``.git`` or ``.venv`` are not entered) and their common root;
2. parse: YAML (JSON is YAML) composed node by node so every key keeps its line; a file none of whose
   documents says ``apiVersion: reconciler/...`` is not ours (a CI workflow, a data file) and is skipped;
3. check each document: ``apiVersion`` and ``kind``, then JSON Schema (the same schema users get from
   ``reconciler schema``, so messages name fields as the schema does), then the pydantic model for the rules
   a schema cannot say (``overlap`` is required unless ...); a document failing a stage goes no further;
4. check across documents: unique addresses, unique (test project, task name), provider references; then
   build the resources, reading TaskSuiteSet data files through ``reconciler.datasource``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler import datasource
from reconciler.errors import ManifestError, Problem
from reconciler.resources import (
    API_VERSION,
    DOCUMENT_MODELS,
    KINDS,
    NAME_PATTERN,
    PERFTEST_TASK,
    PROVIDER_KIND_OF_TYPE,
    PROVIDER_KINDS,
    PROVIDER_TYPE_OF_KIND,
    TASK_SUITE,
    TASK_SUITE_SET,
    PerfTestTaskDocument,
    ProviderConfig,
    Resource,
    SourceRef,
    TaskSuiteDocument,
    TaskSuiteSetDocument,
    address_of,
    canonical_json,
    json_schema,
    make_resource,
    perftest_task_spec,
    task_suite_spec,
)

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as SchemaError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules"})
_PROVIDER_TYPE_OF_PROVIDER_KIND = {kind: type_ for type_, kind in PROVIDER_KIND_OF_TYPE.items()}


@dataclass
class DesiredState:
    """What the manifests ask for, validated.

    ``resources`` maps address to resource in file order (a TaskSuiteSet's suites in data-file order);
    ``providers`` maps provider name to its config; ``skipped`` lists the YAML/JSON files that are not
    manifests (shown with ``-v``); ``digest`` identifies the content (not the layout) of the manifests, for
    plan files; ``root`` is the common directory of the given paths, which data files may not leave.
    """

    resources: dict[str, Resource]
    providers: dict[str, ProviderConfig]
    skipped: list[str]
    digest: str
    root: Path


def load(paths: Sequence[Path | str]) -> DesiredState:
    """Read, validate and expand the manifests under ``paths``; raise ``ManifestError`` with every problem."""
    with _gc_paused():
        return _load(paths)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading 100,000 suites allocates millions of containers and none of them is garbage, yet Python's
    cycle collector would rescan all of them again and again: a third of the load time. Paused, then
    restored as it was.

    Re-enabled alone, the collector would still scan all of them once more at the next allocation, and
    again when they age: freezing then unfreezing puts every young object straight into the oldest
    generation (which is what surviving those scans would do) at no cost. Skipped if something else froze
    objects, so as not to thaw them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _load(paths: Sequence[Path | str]) -> DesiredState:
    problems: list[Problem] = []
    files, root = _discover(paths, problems)
    documents: list[_Document] = []
    skipped: list[str] = []
    for file in files:
        parsed = _parse_file(file, problems)
        if parsed is None:
            skipped.append(file.display)
        else:
            documents.extend(parsed)
    checked = [(doc, _validate(doc, problems)) for doc in documents]
    rank = {file.display: float(i) for i, file in enumerate(files)}
    assembler = _Assembler(root, problems, rank)
    resources, providers = assembler.assemble(checked)
    if problems:
        problems.sort(key=lambda p: (rank.get(p.path, -1.0), p.line if p.line is not None else math.inf))
        raise ManifestError(problems)
    return DesiredState(
        resources=resources,
        providers=providers,
        skipped=skipped,
        digest=_digest(resources, providers),
        root=root,
    )


def _digest(resources: dict[str, Resource], providers: dict[str, ProviderConfig]) -> str:
    """Independent of file layout and order: moving a document to another file keeps the digest.

    The resources go in as three columns (addresses, providers, spec hashes, in address order) rather than a
    line each: formatting 100,000 lines took 50 ms of every plan."""
    digest = hashlib.sha256()
    for name in sorted(providers):
        provider = providers[name]
        digest.update(f"provider\t{name}\t{provider.type}\t{canonical_json(provider.spec)}\n".encode())
    addresses = sorted(resources)
    chosen = [resources[address] for address in addresses]
    digest.update(f"resources\t{len(addresses)}\n".encode())
    for column in (addresses, [r.provider for r in chosen], [r.spec_hash for r in chosen]):
        digest.update("\n".join(column).encode())
        digest.update(b"\0")
    return digest.hexdigest()


# --- 1. discover --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """A candidate manifest file: the path shown to the user (as they spelled it) and the path to open."""

    display: str
    path: Path


def _discover(paths: Sequence[Path | str], problems: list[Problem]) -> tuple[list[_File], Path]:
    files: list[_File] = []
    seen: set[Path] = set()
    bases: list[str] = []
    if not paths:
        problems.append(Problem(".", None, None, None, "no manifest files or directories given"))
    for given in paths:
        path = Path(given)
        if path.is_dir():
            bases.append(str(path.resolve()))
            found = _walk(path)
        elif path.is_file():
            bases.append(str(path.resolve().parent))
            found = [_File(os.path.normpath(path), path)]
        else:
            problems.append(Problem(str(given), None, None, None, "no such file or directory"))
            continue
        for file in found:
            real = file.path.resolve()
            if real not in seen:
                seen.add(real)
                files.append(file)
    root = Path(os.path.commonpath(bases)) if bases else Path.cwd().resolve()
    return files, root


def _walk(directory: Path) -> list[_File]:
    found: list[tuple[tuple[str, ...], _File]] = []
    for current, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES]
        for name in filenames:
            if name.lower().endswith(MANIFEST_SUFFIXES):
                path = Path(current, name)
                parts = path.relative_to(directory).parts
                found.append((parts, _File(os.path.normpath(path), path)))
    found.sort(key=lambda item: item[0])
    return [file for _, file in found]


# --- 2. parse -----------------------------------------------------------------------------------------------


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """The safe loader, plus: timestamps stay strings (JSON has no dates, and the APIs want text), and
    repeated keys are noted, since YAML would silently keep only the last one."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[yaml.Node, yaml.Node]] = []

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        self.duplicates.append((node, key))
                    seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


class _LineMap:
    """The line of every key and list item of one document, by path; built only when a problem needs it."""

    def __init__(self, root: yaml.Node | None, default: int | None) -> None:
        self._root = root
        self._default = default
        self._lines: dict[tuple[str, ...], int] | None = None
        self._paths: dict[int, tuple[str, ...]] = {}

    def line(self, path: Sequence[Any]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is written in the file."""
        lines = self._build()
        parts = tuple(str(part) for part in path)
        while parts:
            if parts in lines:
                return lines[parts]
            parts = parts[:-1]
        return self._default

    def path_of(self, node: yaml.Node) -> tuple[str, ...]:
        self._build()
        return self._paths.get(id(node), ())

    def _build(self) -> dict[tuple[str, ...], int]:
        if self._lines is None:
            self._lines = {}
            if self._root is not None:
                self._visit(self._root, (), set())
        return self._lines

    def _visit(self, node: yaml.Node, path: tuple[str, ...], active: set[int]) -> None:
        assert self._lines is not None
        if id(node) in active:  # a recursive alias
            return
        self._paths.setdefault(id(node), path)
        if isinstance(node, yaml.MappingNode):
            active.add(id(node))
            for key, value in node.value:
                child = (*path, str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
                self._lines[child] = key.start_mark.line + 1  # the last one wins, as in YAML
                self._visit(value, child, active)
            active.discard(id(node))
        elif isinstance(node, yaml.SequenceNode):
            active.add(id(node))
            for index, item in enumerate(node.value):
                child = (*path, str(index))
                self._lines[child] = item.start_mark.line + 1
                self._visit(item, child, active)
            active.discard(id(node))


@dataclass
class _Document:
    file: _File
    data: Any
    lines: _LineMap
    line: int | None
    duplicates: list[tuple[yaml.Node, yaml.Node]] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        return kind if isinstance(kind, str) else None

    @property
    def name(self) -> str | None:
        metadata = self.data.get("metadata") if isinstance(self.data, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None

    @property
    def address(self) -> str | None:
        kind, name = self.kind, self.name
        return address_of(kind, name) if kind in KINDS and name else None

    def where(self, path: Sequence[Any] = ()) -> str:
        line = self.lines.line(path) if path else self.line
        return f"{self.file.display}:{line}" if line is not None else self.file.display

    def problem(self, path: Sequence[Any], message: str, *, field: Sequence[Any] | None = None) -> Problem:
        """A problem at ``path`` (its line); ``field`` names it when that differs from ``path``."""
        shown = path if field is None else field
        dotted = ".".join(str(part) for part in shown) or None
        line = self.lines.line(path) if path else self.line
        return Problem(self.file.display, line, self.address, dotted, message)


def _parse_file(file: _File, problems: list[Problem]) -> list[_Document] | None:
    """The file's documents if it is a manifest file; None if it is not ours."""
    try:
        raw = file.path.read_bytes()
    except OSError as err:
        problems.append(Problem(file.display, None, None, None, f"cannot read: {err.strerror}"))
        return []
    ours = b"reconciler/" in raw
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if ours:
            problems.append(Problem(file.display, None, None, None, "not UTF-8 text"))
            return []
        return None
    try:
        documents = _compose(file, text)
    except yaml.YAMLError as err:
        fallback = _json_fallback(file, text)
        if fallback is None:
            if not ours:  # a broken file that never mentions us (a template, a fixture) is not ours to judge
                return None
            problems.append(_yaml_problem(file, err))
            return []
        documents = fallback
    if not any(_declares_ours(doc.data) for doc in documents):
        return None
    return documents


def _declares_ours(data: Any) -> bool:
    version = data.get("apiVersion") if isinstance(data, dict) else None
    return isinstance(version, str) and version.startswith("reconciler/")


def _compose(file: _File, text: str) -> list[_Document]:
    loader = _Loader(text)
    documents: list[_Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            first_duplicate = len(loader.duplicates)
            data = loader.construct_document(node)
            duplicates = loader.duplicates[first_duplicate:]
            if data is None:
                continue
            if isinstance(data, list) and isinstance(node, yaml.SequenceNode):
                items = zip(node.value, data, strict=True)
            else:
                items = zip([node], [data], strict=True)
            for item_node, item in items:
                lines = _LineMap(item_node, item_node.start_mark.line + 1)
                mine = [dup for dup in duplicates if _within(dup[1], item_node)]
                documents.append(_Document(file, item, lines, item_node.start_mark.line + 1, mine))
    finally:
        loader.dispose()
    return documents


def _within(inner: yaml.Node, outer: yaml.Node) -> bool:
    return bool(outer.start_mark.index <= inner.start_mark.index < outer.end_mark.index)


def _json_fallback(file: _File, text: str) -> list[_Document] | None:
    """JSON that YAML 1.1 refuses (tabs before a key, for one): documents without key lines."""
    if file.path.suffix.lower() != ".json":
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    items = data if isinstance(data, list) else [data]
    return [_Document(file, item, _LineMap(None, None), None) for item in items if item is not None]


def _yaml_problem(file: _File, err: yaml.YAMLError) -> Problem:
    mark = getattr(err, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    language = "JSON" if file.path.suffix.lower() == ".json" else "YAML"
    return Problem(file.display, line, None, None, f"invalid {language}: {detail}")


# --- 3. check each document ---------------------------------------------------------------------------------


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    # imported here: jsonschema is 45 ms of start-up, and applying a saved plan or reading the state needs no
    # manifest
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json_schema(kind))


def _validate(doc: _Document, problems: list[Problem]) -> BaseModel | None:
    """The document's model, or None after adding its problems; later stages only see valid documents."""
    before = len(problems)
    for mapping, key in doc.duplicates:
        path = (*doc.lines.path_of(mapping), key.value)
        problems.append(
            Problem(
                doc.file.display,
                key.start_mark.line + 1,
                doc.address,
                ".".join(path),
                f"duplicate key {key.value!r}; YAML would keep only the last value",
            )
        )
    data = doc.data
    if not isinstance(data, dict):
        found = type(data).__name__
        problems.append(
            doc.problem((), f"a document must be a mapping with apiVersion, kind, metadata and spec, not {found}")
        )
        return None
    version = data.get("apiVersion")
    if version is None:
        problems.append(
            doc.problem((), f"no apiVersion; every document of a manifest file needs apiVersion: {API_VERSION}")
        )
    elif version != API_VERSION:
        problems.append(
            doc.problem(("apiVersion",), f"unsupported apiVersion {version!r}; this reconciler reads {API_VERSION}")
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in DOCUMENT_MODELS:
        problems.append(doc.problem(("kind",) if "kind" in data else (), _kind_message(kind)))
    if len(problems) > before:
        return None
    assert isinstance(kind, str)
    for error in _validator(kind).iter_errors(data):
        problems.extend(_schema_problems(doc, error))
    if len(problems) > before:
        return None
    try:
        return DOCUMENT_MODELS[kind].model_validate(data)
    except ValidationError as err:
        problems.extend(doc.problem(e["loc"], _pydantic_message(e)) for e in err.errors())
        return None


def _kind_message(kind: Any) -> str:
    valid = ", ".join(KINDS)
    if kind is None:
        return f"'kind' is a required property; valid kinds: {valid}"
    import difflib  # imported here: only a manifest with errors needs it

    close = difflib.get_close_matches(str(kind), KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown kind {kind!r}{hint}; valid kinds: {valid}"


def _schema_problems(doc: _Document, error: SchemaError) -> Iterator[Problem]:
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


# --- 4. check across documents, build -----------------------------------------------------------------------


def _task_name_path(doc: _Document) -> tuple[str, str]:
    """Where a task's effective name is written: ``spec.name`` if given, else ``metadata.name``."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    return ("spec", "name") if isinstance(spec, dict) and spec.get("name") else ("metadata", "name")


class _Assembler:
    """The checks that need every document at once, and the resources of the documents that pass them."""

    def __init__(self, root: Path, problems: list[Problem], rank: dict[str, float]) -> None:
        self.root = root
        self.problems = problems
        self.rank = rank
        self.declared: dict[str, _Document] = {}  # provider name -> first document declaring it

    def assemble(
        self, checked: list[tuple[_Document, BaseModel | None]]
    ) -> tuple[dict[str, Resource], dict[str, ProviderConfig]]:
        providers = self._providers(checked)
        repeated = self._unique_addresses(doc for doc, _ in checked if doc.kind not in PROVIDER_KINDS)
        self._unique_task_names([(doc, model) for doc, model in checked if id(doc) not in repeated])
        resources: dict[str, Resource] = {}
        for doc, model in checked:
            if model is None or doc.kind in PROVIDER_KINDS:
                continue
            provider = self._provider_of(doc, model)
            made = self._resources(doc, model, provider or "")
            if resources.keys().isdisjoint(made):  # true in any valid manifest; then 100,000 suites merge in one call
                resources.update(made)
            else:
                for address, resource in made.items():
                    resources.setdefault(address, resource)
        return resources, providers

    def _providers(self, checked: list[tuple[_Document, BaseModel | None]]) -> dict[str, ProviderConfig]:
        providers: dict[str, ProviderConfig] = {}
        for doc, model in checked:
            if doc.kind not in PROVIDER_KINDS or doc.name is None:
                continue
            first = self.declared.setdefault(doc.name, doc)
            if first is not doc:
                where = first.where(("metadata", "name"))
                message = f"provider name {doc.name!r} is already declared at {where} ({first.address})"
                self.problems.append(doc.problem(("metadata", "name"), message))
                continue
            if model is None:
                continue
            if model.metadata.provider is not None:  # type: ignore[attr-defined]
                message = "a provider document does not name a provider; remove metadata.provider"
                self.problems.append(doc.problem(("metadata", "provider"), message))
            spec = model.spec.model_dump(exclude_none=True)  # type: ignore[attr-defined]
            source = SourceRef(doc.file.display, doc.line)
            providers[doc.name] = ProviderConfig(doc.name, _PROVIDER_TYPE_OF_PROVIDER_KIND[doc.kind], spec, source)
        return providers

    def _unique_addresses(self, docs: Iterator[_Document]) -> set[int]:
        """Report every repeated address; the ids of the repeating documents, so no other check repeats it."""
        first: dict[str, _Document] = {}
        repeated: set[int] = set()
        for doc in docs:
            address = doc.address
            if address is None:
                continue
            earlier = first.setdefault(address, doc)
            if earlier is not doc:
                message = f"{address} is declared twice: here and at {earlier.where(('metadata', 'name'))}"
                self.problems.append(doc.problem(("metadata", "name"), message))
                repeated.add(id(doc))
        return repeated

    def _unique_task_names(self, checked: list[tuple[_Document, BaseModel | None]]) -> None:
        """PerfTest has no idempotency key: recovery finds a task by (test project, name), so both must be
        unique among the manifests."""
        first: dict[tuple[int, str], _Document] = {}
        for doc, model in checked:
            if not isinstance(model, PerfTestTaskDocument):
                continue
            name = model.spec.name or model.metadata.name
            earlier = first.setdefault((model.spec.project_id, name), doc)
            if earlier is not doc:
                message = (
                    f"test project {model.spec.project_id} already gets a task named {name!r} from "
                    f"{earlier.address} at {earlier.where(_task_name_path(earlier))}; task names must be "
                    "unique in a test project"
                )
                self.problems.append(doc.problem(_task_name_path(doc), message))

    def _provider_of(self, doc: _Document, model: BaseModel) -> str | None:
        assert doc.kind is not None
        wanted = PROVIDER_KIND_OF_TYPE[PROVIDER_TYPE_OF_KIND[doc.kind]]
        named: str | None = model.metadata.provider  # type: ignore[attr-defined]
        if named is not None:
            target = self.declared.get(named)
            if target is None:
                known = ", ".join(sorted(self.declared)) or "none"
                message = f"no provider named {named!r} (providers: {known})"
            elif target.kind != wanted:
                message = f"provider {named!r} is a {target.kind}; a {doc.kind} needs a {wanted}"
            else:
                return named
            self.problems.append(doc.problem(("metadata", "provider"), message))
            return None
        candidates = sorted(name for name, d in self.declared.items() if d.kind == wanted)
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            message = f"several {wanted} documents ({', '.join(candidates)}); set metadata.provider"
        else:
            message = f"no {wanted} document; add one (see examples/providers.yaml) or pass the file holding it"
        self.problems.append(doc.problem(("metadata",), message))
        return None

    def _resources(self, doc: _Document, model: BaseModel, provider: str) -> dict[str, Resource]:
        source = SourceRef(doc.file.display, doc.line)
        address = doc.address
        assert address is not None
        if isinstance(model, TaskSuiteSetDocument):
            return self._suites(doc, model, provider)
        if isinstance(model, PerfTestTaskDocument):
            kind, spec = PERFTEST_TASK, perftest_task_spec(model.metadata, model.spec)
        elif isinstance(model, TaskSuiteDocument):
            kind, spec = TASK_SUITE, task_suite_spec(model.spec)
        else:
            return {}
        return {address: make_resource(address=address, kind=kind, provider=provider, spec=spec, source=source)}

    def _suites(self, doc: _Document, model: TaskSuiteSetDocument, provider: str) -> dict[str, Resource]:
        spec = model.spec
        try:
            data = datasource.resolve_source(spec.source, doc.file.path, self.root)
            fmt = datasource.data_format(spec, data)
        except datasource.SourceError as err:
            self.problems.append(doc.problem(("spec", "source"), str(err)))
            return {}
        display = datasource.display_source(doc.file.display, spec.source)
        self.rank.setdefault(display, self.rank.get(doc.file.display, -1.0) + 0.5)
        address = address_of(TASK_SUITE_SET, model.metadata.name)
        made = datasource.generate_suites(spec, data, fmt, display=display, address=address, provider=provider)
        self.problems.extend(made.problems)
        return made.suites
