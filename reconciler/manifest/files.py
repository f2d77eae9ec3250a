"""Finding manifest files and parsing them into documents that remember the line of every key.

A user fixes a manifest by its line numbers, and the checks that follow name fields by path
(``spec.template.overlap``): each document therefore keeps the YAML nodes it came from, and turns a path
into a line only when a problem needs one.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import Problem
from reconciler.kinds import KINDS
from reconciler.resources import address_of

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules"})

#: The path that means standard input, as for kubectl: ``cat m.yaml | reconciler validate -``.
STDIN = "-"
#: How problems in manifests read from standard input name their file.
STDIN_DISPLAY = "<stdin>"


@dataclass(frozen=True)
class ManifestFile:
    """A candidate manifest file: the path shown to the user (as they spelled it) and the path to open.

    Manifests read from standard input carry their ``content``; their ``path`` is a name in the current
    directory, so that a TaskSuiteSet's relative ``source`` resolves against it.
    """

    display: str
    path: Path
    content: bytes | None = None


def discover(paths: Sequence[Path | str], problems: list[Problem]) -> tuple[list[ManifestFile], Path]:
    """The files under ``paths``, each once, and their common root (which data files may not leave).

    ``-`` is standard input, read once; the current directory is then a base of the root.
    """
    files: list[ManifestFile] = []
    seen: set[Path] = set()
    bases: list[str] = []
    read_stdin = False
    if not paths:
        problems.append(Problem(".", None, None, None, "no manifest files or directories given"))
    for given in paths:
        path = Path(given)
        if str(given) == STDIN:
            if not read_stdin:
                read_stdin = True
                bases.append(str(Path.cwd().resolve()))
                files.append(ManifestFile(STDIN_DISPLAY, Path.cwd() / STDIN_DISPLAY, sys.stdin.buffer.read()))
            continue
        if path.is_dir():
            bases.append(str(path.resolve()))
            found = _walk(path)
        elif path.is_file():
            bases.append(str(path.resolve().parent))
            found = [ManifestFile(os.path.normpath(path), path)]
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


def _walk(directory: Path) -> list[ManifestFile]:
    """Sorted by path components, so the order (and every problem's) is the same on every machine."""
    found: list[tuple[tuple[str, ...], ManifestFile]] = []
    for current, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES]
        for name in filenames:
            if name.lower().endswith(MANIFEST_SUFFIXES):
                path = Path(current, name)
                parts = path.relative_to(directory).parts
                found.append((parts, ManifestFile(os.path.normpath(path), path)))
    found.sort(key=lambda item: item[0])
    return [file for _, file in found]


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


class LineMap:
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
class Document:
    """One parsed document, valid or not, with what it takes to report a problem at any of its fields."""

    file: ManifestFile
    data: Any
    lines: LineMap
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


def parse_file(file: ManifestFile, problems: list[Problem]) -> list[Document] | None:
    """The file's documents if it is a manifest file; None if it is not ours."""
    try:
        raw = file.path.read_bytes() if file.content is None else file.content
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


def _compose(file: ManifestFile, text: str) -> list[Document]:
    """Node by node rather than ``yaml.load``, so every document keeps the nodes its lines come from."""
    loader = _Loader(text)
    documents: list[Document] = []
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
                lines = LineMap(item_node, item_node.start_mark.line + 1)
                mine = [dup for dup in duplicates if _within(dup[1], item_node)]
                documents.append(Document(file, item, lines, item_node.start_mark.line + 1, mine))
    finally:
        loader.dispose()
    return documents


def _within(inner: yaml.Node, outer: yaml.Node) -> bool:
    return bool(outer.start_mark.index <= inner.start_mark.index < outer.end_mark.index)


def _json_fallback(file: ManifestFile, text: str) -> list[Document] | None:
    """JSON that YAML 1.1 refuses (tabs before a key, for one): documents without key lines."""
    if file.path.suffix.lower() != ".json":
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    items = data if isinstance(data, list) else [data]
    return [Document(file, item, LineMap(None, None), None) for item in items if item is not None]


def _yaml_problem(file: ManifestFile, err: yaml.YAMLError) -> Problem:
    mark = getattr(err, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    language = "JSON" if file.path.suffix.lower() == ".json" else "YAML"
    return Problem(file.display, line, None, None, f"invalid {language}: {detail}")
