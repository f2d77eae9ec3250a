"""What the sandbox world holds before anyone talks to it: pools, test projects and the accepted credentials.

A seed is what a tester would have set up by hand in the real consoles (a Toloka pool, a CPTS test project, an
access key). ``POST /_sandbox/reset`` returns the world to its seed, so a seed is configuration, never data
that the APIs created.

Seed file (YAML)::

    pools:
      - {id: "1086170", default_overlap: 3, status: OPEN}
    test_projects:
      - {id: 42, name: checkout}
    credentials:
      access_key: SANDBOXAK
      secret_key: SANDBOXSK
      cloud_project_id: 0123456789abcdef0123456789abcdef
      toloka_tokens: [sandbox-token]
      iam_tokens: [sandbox-iam-token]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ACCESS_KEY = "SANDBOXAK"
DEFAULT_SECRET_KEY = "SANDBOXSK"
DEFAULT_CLOUD_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEFAULT_TOLOKA_TOKEN = "sandbox-token"
DEFAULT_IAM_TOKEN = "sandbox-iam-token"

POOL_STATUSES = ("OPEN", "CLOSED", "ARCHIVED", "LOCKED")
_CLOUD_PROJECT_RE = re.compile(r"^[0-9a-f]{32}$")


class SeedError(ValueError):
    """A seed file or mapping that cannot describe a world; the message names the offending field."""


@dataclass(frozen=True)
class PoolSeed:
    """A Toloka pool. ``default_overlap`` is what ``allow_defaults=true`` falls back to (None: no default)."""

    id: str
    default_overlap: int | None = None
    status: str = "CLOSED"

    def as_record(self) -> dict[str, Any]:
        return {"id": self.id, "default_overlap": self.default_overlap, "status": self.status}


@dataclass(frozen=True)
class PerfTestProjectSeed:
    """A CPTS test project (the integer ``project_id`` of a task body)."""

    id: int
    name: str
    description: str = ""


@dataclass(frozen=True)
class Credentials:
    """The secrets the sandbox accepts; the defaults are public on purpose: the quickstart needs none."""

    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    cloud_project_id: str = DEFAULT_CLOUD_PROJECT_ID
    toloka_tokens: tuple[str, ...] = (DEFAULT_TOLOKA_TOKEN,)
    iam_tokens: tuple[str, ...] = (DEFAULT_IAM_TOKEN,)


@dataclass(frozen=True)
class SandboxSeed:
    pools: tuple[PoolSeed, ...] = ()
    test_projects: tuple[PerfTestProjectSeed, ...] = ()
    credentials: Credentials = field(default_factory=Credentials)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SandboxSeed:
        """Read a seed file; every problem is a ``SeedError`` whose message starts with the file name."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SeedError(f"{path}: cannot read the seed file: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise SeedError(f"{path}: not valid YAML: {_one_line(str(exc))}") from None
        try:
            return cls.from_dict(data if data is not None else {})
        except SeedError as exc:
            raise SeedError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Any) -> SandboxSeed:
        if not isinstance(data, dict):
            raise SeedError("a seed must be a mapping with pools, test_projects and credentials")
        unknown = set(data) - {"pools", "test_projects", "credentials"}
        if unknown:
            raise SeedError(f"unknown seed key(s): {', '.join(sorted(map(str, unknown)))}")
        pools = tuple(_pool(i, p) for i, p in enumerate(_list(data, "pools")))
        projects = tuple(_test_project(i, p) for i, p in enumerate(_list(data, "test_projects")))
        _no_duplicates("pools", [p.id for p in pools])
        _no_duplicates("test_projects", [p.id for p in projects])
        return cls(pools=pools, test_projects=projects, credentials=_credentials(data.get("credentials")))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise SeedError(f"{key} must be a list")
    return value


def _no_duplicates(key: str, ids: list[Any]) -> None:
    seen: set[Any] = set()
    for value in ids:
        if value in seen:
            raise SeedError(f"{key}: id {value} appears twice")
        seen.add(value)


def _pool(index: int, item: Any) -> PoolSeed:
    where = f"pools[{index}]"
    if not isinstance(item, dict) or "id" not in item:
        raise SeedError(f"{where} must be a mapping with at least an id")
    pool_id = item["id"]
    if isinstance(pool_id, bool) or not isinstance(pool_id, int | str) or not str(pool_id).strip():
        raise SeedError(f"{where}.id must be a non-empty string or an integer")
    overlap = item.get("default_overlap")
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1):
        raise SeedError(f"{where}.default_overlap must be a positive integer")
    status = str(item.get("status", "CLOSED")).upper()
    if status not in POOL_STATUSES:
        raise SeedError(f"{where}.status must be one of {', '.join(POOL_STATUSES)}")
    return PoolSeed(id=str(pool_id), default_overlap=overlap, status=status)


def _test_project(index: int, item: Any) -> PerfTestProjectSeed:
    where = f"test_projects[{index}]"
    if not isinstance(item, dict):
        raise SeedError(f"{where} must be a mapping with id and name")
    project_id = item.get("id")
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        raise SeedError(f"{where}.id must be a positive integer (the CPTS test project id)")
    name = item.get("name", f"project-{project_id}")
    if not isinstance(name, str) or not name:
        raise SeedError(f"{where}.name must be a non-empty string")
    return PerfTestProjectSeed(id=project_id, name=name, description=str(item.get("description", "")))


def _credentials(item: Any) -> Credentials:
    if item is None:
        return Credentials()
    if not isinstance(item, dict):
        raise SeedError("credentials must be a mapping")
    known = {"access_key", "secret_key", "cloud_project_id", "toloka_tokens", "iam_tokens"}
    unknown = set(item) - known
    if unknown:
        raise SeedError(f"unknown credentials key(s): {', '.join(sorted(map(str, unknown)))}")
    defaults = Credentials()
    values: dict[str, Any] = {}
    for key in ("access_key", "secret_key", "cloud_project_id"):
        value = item.get(key, getattr(defaults, key))
        if not isinstance(value, str) or not value:
            raise SeedError(f"credentials.{key} must be a non-empty string")
        values[key] = value
    if not _CLOUD_PROJECT_RE.match(values["cloud_project_id"]):
        raise SeedError("credentials.cloud_project_id must be 32 lower-case hex digits")
    for key in ("toloka_tokens", "iam_tokens"):
        tokens = item.get(key, list(getattr(defaults, key)))
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise SeedError(f"credentials.{key} must be a list of non-empty strings")
        values[key] = tuple(tokens)
    return Credentials(**values)
