"""Which state a command uses, and how it was chosen: the same manifests reach the same state from anywhere.

In order: ``--state`` (or ``RECONCILER_STATE``); the manifests' ``StateBackend`` document (a SQLite path
relative to its manifest, or a PostgreSQL URL); else a SQLite state in ``.reconciler/`` beside the manifests:
in a git repository, the nearest folder at or above the manifests' directory that already holds a
``.reconciler/`` (as git finds ``.git``, never above the repository's top); else that directory itself.
Commands without manifests of their own (``state list``, ...) start that search from ``--manifests`` or the
current directory.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler import redaction
from reconciler.errors import StateError
from reconciler.kinds import POSTGRES_SCHEMES
from reconciler.resources import StateBackendConfig
from reconciler.state import state_path

#: The folder beside the manifests that holds the default state (and ``--sandbox``'s emulator data).
STATE_DIR = ".reconciler"


@dataclass(frozen=True)
class StatePlace:
    """Where the state is: ``location`` as ``open_store`` takes it (None: the default under ``root``), and
    ``source``, how it was chosen, for the line ``plan`` and ``apply`` print."""

    location: str | None
    root: Path
    source: str
    password_env: str | None = None

    @property
    def is_database(self) -> bool:
        return self.location is not None and self.location.startswith(POSTGRES_SCHEMES)

    def file(self, workspace: str) -> Path | None:
        """The SQLite file of ``workspace``'s state, None for a database."""
        if self.is_database:
            return None
        return state_path(self.location, workspace=workspace, root=self.root)

    def shown(self, workspace: str) -> str:
        """The state as a person may read it: a path relative to here where that is shorter; a URL without
        its password."""
        if self.is_database:
            return redaction.safe_line(_without_password(self.location or ""))
        path = self.file(workspace)
        assert path is not None
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)

    def password(self, environ: Mapping[str, str] = os.environ) -> None:
        """Hand a ``StateBackend``'s ``password_env`` to libpq (as ``PGPASSWORD``), registered for masking."""
        if self.password_env is None:
            return
        value = environ.get(self.password_env)
        if not value:
            raise StateError(
                f"the StateBackend names password_env {self.password_env}, which is not set; set it, or remove "
                "password_env to use libpq's PGPASSWORD or PGPASSFILE"
            )
        redaction.register(value)
        os.environ["PGPASSWORD"] = value

    def legacy_check(self, workspace: str) -> None:
        """A state left by an earlier reconciler in ``./state/`` is never silently replaced by a new one here."""
        if self.location is not None:
            return
        new = self.file(workspace)
        old = Path.cwd() / "state" / f"{workspace}.db"
        if new is not None and not new.exists() and old.exists() and old.resolve() != new.resolve():
            raise StateError(
                f"no state at {new}, but {old} holds one made by an earlier reconciler (the state now lives beside "
                f"the manifests): move it there (mkdir -p {shlex.quote(str(new.parent))} && mv "
                f"{shlex.quote(str(old))} {shlex.quote(str(new))}), or name it with --state {shlex.quote(str(old))}"
            )


def place_of(
    *,
    flag: str | None,
    flag_typed: bool,
    backend: StateBackendConfig | None,
    near: Iterable[Path],
) -> StatePlace:
    """The state for a command given ``--state`` (``flag``, typed or from ``RECONCILER_STATE``), the manifests'
    ``StateBackend`` and the paths the manifests were named by (or where the command runs)."""
    root = default_root(list(near))
    if flag is not None:
        return StatePlace(flag, root, "--state" if flag_typed else "RECONCILER_STATE")
    if backend is not None:
        where = f"StateBackend at {backend.source.path}:{backend.source.line}"
        return StatePlace(backend.location, root, where, backend.password_env)
    return StatePlace(None, root, "beside the manifests")


def default_root(near: list[Path]) -> Path:
    """The folder whose ``.reconciler/`` holds the default state for manifests named by ``near``."""
    starts = [(p if p.is_dir() else p.parent).resolve() for p in near if str(p) != "-"] or [Path.cwd().resolve()]
    start = Path(os.path.commonpath(starts)) if len(starts) > 1 else starts[0]
    within: list[Path] = []
    for folder in (start, *start.parents):
        within.append(folder)
        if (folder / ".git").exists():
            break
    else:
        return start  # outside a repository nothing above is known to belong to these manifests
    return next((folder for folder in within if (folder / STATE_DIR).is_dir()), start)


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"
