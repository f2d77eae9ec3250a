"""Manifest files in, the validated desired state out, or every problem at once.

``load`` runs four stages and raises one ``ManifestError`` holding every problem of every stage, sorted by
file and line, so a user fixes a pull request in one pass instead of one error per CI run:

1. discover (``files``): the given files and directories (recursively, ``*.yaml``/``*.yml``/``*.json``,
   sorted; hidden directories such as ``.git`` or ``.venv`` are not entered) and their common root;
2. parse (``files``): YAML (JSON is YAML) composed node by node so every key keeps its line; a file none of
   whose documents says ``apiVersion: reconciler/...`` is not ours (a CI workflow, a data file) and is skipped;
3. check each document (``validation``): ``apiVersion`` and ``kind``, then JSON Schema (the same schema users
   get from ``reconciler schema``, so messages name fields as the schema does), then the pydantic model for
   the rules a schema cannot say (``overlap`` is required unless ...); a document failing a stage goes no
   further;
4. check across documents (``assembly``): unique addresses, unique (test project, task name), provider
   references; then build the resources, reading TaskSuiteSet data files through ``reconciler.datasource``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ManifestError, Problem
from reconciler.kinds import STATE_BACKEND
from reconciler.manifest.assembly import Assembler, manifest_digest, state_backend
from reconciler.manifest.files import Document, ManifestFile, discover, parse_file
from reconciler.manifest.validation import validate
from reconciler.resources import ProviderConfig, Resource, StateBackendConfig
from reconciler.speedups import cycle_collection_paused

__all__ = ["DesiredState", "find_backend", "load"]


@dataclass
class DesiredState:
    """What the manifests ask for, validated.

    ``resources`` maps address to resource in file order (a TaskSuiteSet's suites in data-file order);
    ``providers`` maps provider name to its config; ``skipped`` lists the YAML/JSON files that are not
    manifests (shown with ``-v``); ``digest`` identifies the content (not the layout) of the manifests, for
    plan files; ``roots`` are the directories data files may come from (a manifest file's own directory only
    for that file, when it was named itself), ``root`` the first of them.
    """

    resources: dict[str, Resource]
    providers: dict[str, ProviderConfig]
    skipped: list[str]
    digest: str
    roots: tuple[Path, ...]
    backend: StateBackendConfig | None = None

    @property
    def root(self) -> Path:
        return self.roots[0] if self.roots else Path.cwd().resolve()


def load(paths: Sequence[Path | str]) -> DesiredState:
    """Read, validate and expand the manifests under ``paths``; raise ``ManifestError`` with every problem."""
    with cycle_collection_paused():
        return _load(paths)


def _load(paths: Sequence[Path | str]) -> DesiredState:
    problems: list[Problem] = []
    files, directories = discover(paths, problems)
    documents: list[Document] = []
    skipped: list[str] = []
    for file in files:
        parsed = parse_file(file, problems)
        if parsed is None:
            skipped.append(file.display)
        else:
            documents.extend(parsed)
    checked = [(doc, validate(doc, problems)) for doc in documents]
    rank = {file.display: float(i) for i, file in enumerate(files)}
    assembler = Assembler(directories, problems, rank)
    resources, providers = assembler.assemble(checked)
    backend = assembler.backend(checked)
    if problems:
        problems.sort(key=lambda p: (rank.get(p.path, -1.0), p.line if p.line is not None else math.inf))
        raise ManifestError(problems)
    return DesiredState(
        resources=resources,
        providers=providers,
        skipped=skipped,
        digest=manifest_digest(resources, providers),
        roots=_roots(directories, files),
        backend=backend,
    )


def find_backend(paths: Sequence[Path | str]) -> StateBackendConfig | None:
    """The ``StateBackend`` of the manifests under ``paths``, reading no data file: what the commands that take
    no manifests of their own (``state list``, ``apply PLANFILE``) need to find the state. Only that document is
    validated; a problem in it is raised as ``ManifestError``."""
    problems: list[Problem] = []
    files, _ = discover(paths, problems)
    documents = [doc for file in files for doc in parse_file(file, problems) or () if doc.kind == STATE_BACKEND]
    checked = [(doc, validate(doc, problems)) for doc in documents]
    backend = state_backend(checked, problems)
    if problems:
        raise ManifestError(problems)
    return backend


def _roots(directories: list[Path], files: Sequence[ManifestFile]) -> tuple[Path, ...]:
    own = [file.path.parent.resolve() for file in files if file.named]
    return tuple(dict.fromkeys([*directories, *own]))
