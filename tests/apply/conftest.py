"""The ``project`` fixture: a manifests folder whose providers point at the shared sandbox."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.apply_project import Project, providers_yaml, suite_set_yaml, tasks_yaml


@pytest.fixture
def project(tmp_path: Path, sandbox: Any) -> Callable[..., Project]:
    """``project(tasks=5, rows=40, batch_size=10)`` writes such manifests and returns the Project."""

    def make(*, tasks: int = 6, rows: int = 40, batch_size: int = 10, rate_limit: float = 250) -> Project:
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "TEST_CPTS_AK": sandbox.access_key,
            "TEST_CPTS_SK": sandbox.secret_key,
            "TEST_TOLOKA_KEY": sandbox.toloka_token,
        }
        env.pop("RECONCILER_FAILPOINT", None)
        proj = Project(root=tmp_path, sandbox=sandbox, env=env)
        proj.write("providers.yaml", providers_yaml(sandbox, batch_size=batch_size, rate_limit=rate_limit))
        if tasks:
            proj.write("perftest/tasks.yaml", tasks_yaml(tasks))
        if rows:
            manifest, data = suite_set_yaml(rows)
            proj.write("toloka/reviews.yaml", manifest)
            proj.write("toloka/data/reviews.jsonl", data)
        return proj

    return make
