"""The ``project`` fixture: a manifests folder whose providers point at the shared sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, make_project


@pytest.fixture
def project(tmp_path: Path, sandbox: Any) -> Callable[..., Project]:
    """``project(tasks=5, rows=40, batch_size=10)`` writes such manifests and returns the Project."""

    def make(*, tasks: int = 6, rows: int = 40, batch_size: int = 10, rate_limit: float = 250) -> Project:
        return make_project(tmp_path, sandbox, tasks=tasks, rows=rows, batch_size=batch_size, rate_limit=rate_limit)

    return make
