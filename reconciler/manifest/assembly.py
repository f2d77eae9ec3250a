"""From valid documents to resources and providers: the checks that need every document at once, and the
digest that names the result.

A document is valid on its own, yet two of them may claim one address, one (test project, task name) or one
provider name, and a resource may name a provider that no document declares. Those problems are found here,
after every document was checked, so each is reported once, at the later of the two documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from reconciler import datasource
from reconciler.encoding import canonical_json
from reconciler.errors import Problem
from reconciler.kinds import (
    PERFTEST_TASK,
    PROVIDER_KIND_OF_TYPE,
    PROVIDER_KINDS,
    PROVIDER_TYPE_OF_KIND,
    SETTINGS_KINDS,
    STATE_BACKEND,
    TASK_SUITE,
    TASK_SUITE_SET,
    PerfTestTaskDocument,
    StateBackendDocument,
    TaskSuiteDocument,
    TaskSuiteSetDocument,
    perftest_task_name,
    spec_fields,
)
from reconciler.manifest.files import Document
from reconciler.resources import (
    ProviderConfig,
    Resource,
    SourceRef,
    StateBackendConfig,
    address_of,
    make_resource,
    perftest_task_spec,
    task_suite_spec,
)

_PROVIDER_TYPE_OF_PROVIDER_KIND = {kind: type_ for type_, kind in PROVIDER_KIND_OF_TYPE.items()}

Checked = list[tuple[Document, BaseModel | None]]


def manifest_digest(resources: dict[str, Resource], providers: dict[str, ProviderConfig]) -> str:
    """Independent of file layout and order: moving a document to another file keeps the digest.

    The resources go in as three columns (addresses, providers, spec hashes, in address order) rather than a
    formatted line each, which at 100,000 suites would be a noticeable part of every plan."""
    sha = hashlib.sha256()
    for name in sorted(providers):
        provider = providers[name]
        sha.update(f"provider\t{name}\t{provider.type}\t{canonical_json(provider.spec)}\n".encode())
    addresses = sorted(resources)
    chosen = [resources[address] for address in addresses]
    sha.update(f"resources\t{len(addresses)}\n".encode())
    for column in (addresses, [r.provider for r in chosen], [r.spec_hash for r in chosen]):
        sha.update("\n".join(column).encode())
        sha.update(b"\0")
    return sha.hexdigest()


def state_backend(checked: Checked, problems: list[Problem]) -> StateBackendConfig | None:
    found: tuple[Document, StateBackendConfig] | None = None
    for doc, model in checked:
        if doc.kind != STATE_BACKEND or not isinstance(model, StateBackendDocument):
            continue
        if found is not None:
            where = found[0].where(("kind",))
            problems.append(doc.problem(("kind",), f"a second StateBackend (the first is at {where}); keep one"))
            continue
        spec = model.spec
        path = None
        if spec.path is not None:  # a trailing slash keeps meaning "a folder of <workspace>.db files"
            folder = spec.path.endswith(("/", "\\"))
            path = f"{(doc.file.path.parent / spec.path).expanduser().resolve()}{'/' if folder else ''}"
        config = StateBackendConfig(path, spec.url, spec.password_env, SourceRef(doc.file.display, doc.line))
        found = (doc, config)
    return None if found is None else found[1]


def _task_name_path(doc: Document) -> tuple[str, str]:
    """Where a task's effective name is written: ``spec.name`` if given, else ``metadata.name``."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    return ("spec", "name") if isinstance(spec, dict) and spec.get("name") else ("metadata", "name")


class Assembler:
    """The checks that need every document at once, and the resources of the documents that pass them."""

    def __init__(self, directories: list[Path], problems: list[Problem], rank: dict[str, float]) -> None:
        self.directories = directories
        self.problems = problems
        self.rank = rank
        self.declared: dict[str, Document] = {}  # provider name -> first document declaring it

    def assemble(self, checked: Checked) -> tuple[dict[str, Resource], dict[str, ProviderConfig]]:
        providers = self._providers(checked)
        repeated = self._unique_addresses(doc for doc, _ in checked if doc.kind not in SETTINGS_KINDS)
        self._unique_task_names([(doc, model) for doc, model in checked if id(doc) not in repeated])
        resources: dict[str, Resource] = {}
        for doc, model in checked:
            if model is not None:
                self._check_lifecycle(doc, model)
            if model is None or doc.kind in SETTINGS_KINDS:
                continue
            provider = self._provider_of(doc, model)
            made = self._resources(doc, model, provider or "")
            if resources.keys().isdisjoint(made):  # true in any valid manifest; then 100,000 suites merge in one call
                resources.update(made)
            else:
                for address, resource in made.items():
                    resources.setdefault(address, resource)
        return resources, providers

    def _check_lifecycle(self, doc: Document, model: BaseModel) -> None:
        """A lifecycle names fields that exist, on a document that makes remote objects: a misspelt field in
        ``ignore_changes`` would otherwise be silently ignored, and the change acted on."""
        lifecycle = getattr(getattr(model, "metadata", None), "lifecycle", None)
        if lifecycle is None:
            return
        if doc.kind in SETTINGS_KINDS:
            message = "a settings document creates nothing remotely, so it takes no lifecycle; remove it"
            self.problems.append(doc.problem(("metadata", "lifecycle"), message))
            return
        known = spec_fields(doc.kind or "")
        for index, name in enumerate(lifecycle.ignore_changes):
            if name not in known:
                message = f"{name!r} is not a field of a {doc.kind} spec; one of: {', '.join(sorted(known))}"
                self.problems.append(doc.problem(("metadata", "lifecycle", "ignore_changes", index), message))

    def backend(self, checked: Checked) -> StateBackendConfig | None:
        """The one ``StateBackend`` of the manifests, if any: a second is a problem, since one set of manifests
        has one state."""
        return state_backend(checked, self.problems)

    def _providers(self, checked: Checked) -> dict[str, ProviderConfig]:
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

    def _unique_addresses(self, docs: Iterator[Document]) -> set[int]:
        """Report every repeated address; the ids of the repeating documents, so no other check repeats it."""
        first: dict[str, Document] = {}
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

    def _unique_task_names(self, checked: Checked) -> None:
        """PerfTest has no idempotency key: recovery finds a task by (test project, name), so both must be
        unique among the manifests."""
        first: dict[tuple[int, str], Document] = {}
        for doc, model in checked:
            if not isinstance(model, PerfTestTaskDocument):
                continue
            name = perftest_task_name(model.metadata, model.spec)
            earlier = first.setdefault((model.spec.project_id, name), doc)
            if earlier is not doc:
                message = (
                    f"test project {model.spec.project_id} already gets a task named {name!r} from "
                    f"{earlier.address} at {earlier.where(_task_name_path(earlier))}; task names must be "
                    "unique in a test project"
                )
                self.problems.append(doc.problem(_task_name_path(doc), message))

    def _provider_of(self, doc: Document, model: BaseModel) -> str | None:
        """The provider a resource names, or the only one of its type; None after reporting why there is none."""
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

    def _resources(self, doc: Document, model: BaseModel, provider: str) -> dict[str, Resource]:
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
        lifecycle = model.metadata.lifecycle
        resource = make_resource(
            address=address,
            kind=kind,
            provider=provider,
            spec=spec,
            source=source,
            prevent_destroy=bool(lifecycle and lifecycle.prevent_destroy),
            ignore_changes=frozenset(lifecycle.ignore_changes if lifecycle else ()),
            replace_on_change=bool(lifecycle and lifecycle.replace_on_change),
        )
        return {address: resource}

    def _roots_of(self, doc: Document) -> list[Path]:
        """Where a document's data file may be: the named directories, and its file's own directory if that file
        was named itself (first, so that a refusal names the root the user thinks of)."""
        own = [doc.file.path.parent] if doc.file.named else []
        return [*own, *self.directories]

    def _suites(self, doc: Document, model: TaskSuiteSetDocument, provider: str) -> dict[str, Resource]:
        """A set's suites, read from its data file; the file's problems sort just after the manifest's."""
        spec = model.spec
        try:
            data = datasource.resolve_source(spec.source, doc.file.path, self._roots_of(doc))
            fmt = datasource.data_format(spec, data)
        except datasource.SourceError as err:
            self.problems.append(doc.problem(("spec", "source"), str(err)))
            return {}
        display = datasource.display_source(doc.file.display, spec.source)
        self.rank.setdefault(display, self.rank.get(doc.file.display, -1.0) + 0.5)
        address = address_of(TASK_SUITE_SET, model.metadata.name)
        lifecycle = model.metadata.lifecycle
        made = datasource.generate_suites(
            spec,
            data,
            fmt,
            display=display,
            address=address,
            provider=provider,
            prevent_destroy=bool(lifecycle and lifecycle.prevent_destroy),
            ignore_changes=frozenset(lifecycle.ignore_changes if lifecycle else ()),
            replace_on_change=bool(lifecycle and lifecycle.replace_on_change),
        )
        self.problems.extend(made.problems)
        return made.suites
