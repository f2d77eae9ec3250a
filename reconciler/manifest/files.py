"""Finding manifest files and parsing them into documents that remember the line of every key.

A user fixes a manifest by its line numbers, and the checks that follow name fields by path
(``spec.template.overlap``): each document therefore keeps the YAML nodes it came from, and turns a path
into a line only when a problem needs one. What YAML may hold, and the limits that keep a hostile file from
exhausting the machine, are ``yaml_input``'s; the same rules hold for JSON read by the standard library.

The directories a TaskSuiteSet's data file may come from are those the user named: every directory given as
an argument, and, for a manifest file given as an argument itself (or read from standard input), its own
directory. They never widen to a common parent: ``reconciler validate . /etc/hostname`` lets no manifest read
``/etc/passwd``.
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

from reconciler.datasource.values import UnusableValue, decode_json, depth_message, dotted, value_problem
from reconciler.errors import Problem
from reconciler.kinds import KINDS
from reconciler.manifest.yaml_input import (
    MAX_FILE_BYTES,
    LimitExceeded,
    Refusal,
    StrictLoader,
    check_limits,
    file_size_message,
)
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
    directory, so that a TaskSuiteSet's relative ``source`` resolves against it. ``named``: given as an argument
    itself (or standard input), not found in a directory, so its own directory is one its data may come from.
    """

    display: str
    path: Path
    content: bytes | None = None
    named: bool = False


def discover(paths: Sequence[Path | str], problems: list[Problem]) -> tuple[list[ManifestFile], list[Path]]:
    """The files under ``paths``, each once, and the directories named among ``paths`` (resolved).

    ``-`` is standard input, read once (at most ``MAX_FILE_BYTES`` and one more byte, so the limit can be told).
    """
    files: list[ManifestFile] = []
    seen: set[Path] = set()
    directories: list[Path] = []
    read_stdin = False
    if not paths:
        problems.append(Problem(".", None, None, None, "no manifest files or directories given"))
    for given in paths:
        path = Path(given)
        if str(given) == STDIN:
            if not read_stdin:
                read_stdin = True
                content = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
                files.append(ManifestFile(STDIN_DISPLAY, Path.cwd() / STDIN_DISPLAY, content, named=True))
            continue
        if path.is_dir():
            directories.append(path.resolve())
            found = _walk(path)
        elif path.is_file():
            found = [ManifestFile(os.path.normpath(path), path, named=True)]
        else:
            problems.append(Problem(str(given), None, None, None, "no such file or directory"))
            continue
        for file in found:
            real = file.path.resolve()
            if real not in seen:
                seen.add(real)
                files.append(file)
    return files, directories


def _walk(directory: Path) -> list[ManifestFile]:
    """Sorted by path components, so the order (and every problem's) is the same on every machine."""
    found: list[tuple[tuple[str, ...], ManifestFile]] = []
    for current, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIPPED_DIRECTORIES]
        for name in filenames:
            path = Path(current, name)
            if name.lower().endswith(MANIFEST_SUFFIXES) and path.is_file():  # not a device or pipe behind a link
                parts = path.relative_to(directory).parts
                found.append((parts, ManifestFile(os.path.normpath(path), path)))
    found.sort(key=lambda item: item[0])
    return [file for _, file in found]


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
    #: Values the document may not hold (``yaml_input``), as problems; a document with any goes no further.
    refused: list[Problem] = field(default_factory=list)

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
        """``KIND/NAME``, unless the name holds what cannot be shown on a line (a newline, an escape sequence):
        that name is reported at its field, and never repeated as the address of every problem of its document."""
        kind, name = self.kind, self.name
        return address_of(kind, name) if kind in KINDS and name and name.isprintable() else None

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
    """The file's documents if it is a manifest file; None if it is not ours.

    A file that cannot be parsed, or crosses a limit, is ours only if it mentions ``reconciler/`` at all: a
    broken template or a huge data file that never does is not ours to judge."""
    raw = _read(file, problems)
    if raw is None:
        return []
    ours = b"reconciler/" in raw
    if len(raw) > MAX_FILE_BYTES:
        if ours:
            problems.append(Problem(file.display, None, None, None, file_size_message(MAX_FILE_BYTES + 1)))
            return []
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if ours:
            problems.append(Problem(file.display, None, None, None, "not UTF-8 text"))
            return []
        return None
    try:
        documents = _compose(file, text)
    except LimitExceeded as err:
        if ours:
            problems.append(Problem(file.display, err.line, None, None, str(err)))
            return []
        return None
    except yaml.YAMLError as err:
        if _too_deep(err):  # libyaml's own nesting limit, met while the events were still being scanned
            if ours:
                problems.append(Problem(file.display, _line_of(err), None, None, depth_message()))
                return []
            return None
        problem, fallback = _json_fallback(file, text, err)
        if fallback is None:
            if not ours:  # a broken file that never mentions us (a template, a fixture) is not ours to judge
                return None
            problems.append(problem)
            return []
        documents = fallback
    if not any(_declares_ours(doc.data) for doc in documents):
        return None
    return documents


def _read(file: ManifestFile, problems: list[Problem]) -> bytes | None:
    """The file's bytes, at most one more than a manifest may have; None after reporting why it cannot be read."""
    if file.content is not None:
        return file.content
    try:
        with file.path.open("rb") as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        problems.append(Problem(file.display, None, None, None, f"cannot read: {err.strerror}"))
        return None


def _declares_ours(data: Any) -> bool:
    version = data.get("apiVersion") if isinstance(data, dict) else None
    return isinstance(version, str) and version.startswith("reconciler/")


def _compose(file: ManifestFile, text: str) -> list[Document]:
    """Node by node rather than ``yaml.load``, so every document keeps the nodes its lines come from; the
    limits are checked on the parser's events first, so nothing oversized is ever composed."""
    check_limits(text)
    loader = StrictLoader(text, json_file=file.path.suffix.lower() == ".json")
    documents: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            first_duplicate, first_refusal = len(loader.duplicates), len(loader.refusals)
            data = loader.construct_document(node)
            duplicates = loader.duplicates[first_duplicate:]
            refusals = loader.refusals[first_refusal:]
            if data is None and not refusals:
                continue
            if isinstance(data, list) and isinstance(node, yaml.SequenceNode):
                items = zip(node.value, data, strict=True)
            else:
                items = zip([node], [data], strict=True)
            for item_node, item in items:
                document = Document(file, item, LineMap(item_node, item_node.start_mark.line + 1), None)
                document.line = item_node.start_mark.line + 1
                document.duplicates = [dup for dup in duplicates if _within(dup[1], item_node)]
                document.refused = [_refusal_problem(document, r) for r in refusals if _within(r.node, item_node)]
                documents.append(document)
    finally:
        loader.dispose()
    return documents


def _refusal_problem(doc: Document, refusal: Refusal) -> Problem:
    if refusal.owner is None:
        path = doc.lines.path_of(refusal.node)
    else:
        path = (*doc.lines.path_of(refusal.owner), *(() if refusal.key is None else (refusal.key,)))
    return Problem(doc.file.display, refusal.line, doc.address, ".".join(path) or None, refusal.message)


def _within(inner: yaml.Node, outer: yaml.Node) -> bool:
    return bool(outer.start_mark.index <= inner.start_mark.index < outer.end_mark.index)


def _json_fallback(file: ManifestFile, text: str, err: yaml.YAMLError) -> tuple[Problem, list[Document] | None]:
    """JSON that YAML 1.1 refuses (tabs before a key, for one): documents without key lines, held to the same
    values as YAML (``values.value_problem``, one problem per document). Else the problem to report if the
    file is ours: YAML's, unless the JSON is nested too deep to be read at all."""
    if file.path.suffix.lower() != ".json":
        return _yaml_problem(file, err), None
    try:
        data = decode_json(text)
    except json.JSONDecodeError:
        return _yaml_problem(file, err), None
    except UnusableValue as refused:
        return Problem(file.display, None, None, None, str(refused)), None
    documents = []
    for item in data if isinstance(data, list) else [data]:
        if item is None:
            continue
        document = Document(file, item, LineMap(None, None), None)
        found = value_problem(item)
        if found is not None:
            field = dotted(found[0]) or None
            document.refused = [Problem(file.display, None, document.address, field, found[1])]
        documents.append(document)
    return _yaml_problem(file, err), documents


def _too_deep(err: yaml.YAMLError) -> bool:
    return "maximum nesting depth" in str(getattr(err, "problem", None) or "")


def _line_of(err: yaml.YAMLError) -> int | None:
    mark = getattr(err, "problem_mark", None)
    return int(mark.line) + 1 if mark is not None else None


def _yaml_problem(file: ManifestFile, err: yaml.YAMLError) -> Problem:
    line = _line_of(err)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    detail = f"{problem} ({context})" if context else problem
    language = "JSON" if file.path.suffix.lower() == ".json" else "YAML"
    return Problem(file.display, line, None, None, f"invalid {language}: {detail}")
