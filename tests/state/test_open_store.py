"""Turning ``--state`` and ``--workspace`` into a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import SqliteStateStore, open_store


def test_default_state_lives_under_the_project_state_directory(tmp_path: Path) -> None:
    store = open_store(None, workspace="staging", root=tmp_path)
    assert isinstance(store, SqliteStateStore) and store.path == tmp_path / ".reconciler" / "staging.db"
    store.close()


def test_a_path_is_the_state_file_itself(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "my.db"), workspace="staging", root=tmp_path / "elsewhere")
    assert isinstance(store, SqliteStateStore) and store.path == tmp_path / "my.db"
    store.close()


def test_a_directory_holds_one_state_per_workspace(tmp_path: Path) -> None:
    for location in (str(tmp_path), f"{tmp_path}/new/"):
        store = open_store(location, workspace="prod", root=tmp_path)
        assert isinstance(store, SqliteStateStore) and store.path == Path(location) / "prod.db"
        store.close()


@pytest.mark.parametrize("workspace", ["", "-x", ".hidden", "a/b", "../up", "a b", "x" * 65, "é"])
def test_workspace_names_must_be_path_safe(tmp_path: Path, workspace: str) -> None:
    with pytest.raises(StateError, match="invalid workspace name"):
        open_store(None, workspace=workspace, root=tmp_path)
    assert not (tmp_path / ".reconciler").exists()


@pytest.mark.parametrize("workspace", ["default", "prod-eu.1", "A_b", "x" * 64])
def test_workspace_names_that_are_accepted(tmp_path: Path, workspace: str) -> None:
    open_store(None, workspace=workspace, root=tmp_path).close()
