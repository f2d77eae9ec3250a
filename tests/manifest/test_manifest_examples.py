"""The shipped examples are what a newcomer runs first: they must validate and match the sandbox seed."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.manifest import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_examples_validate():
    state = load([EXAMPLES])

    kinds = [resource.kind for resource in state.resources.values()]
    assert kinds.count("PerfTestTask") == 5
    assert kinds.count("TaskSuite") == 3
    assert kinds.count("TaskSuiteSet") == 13  # 65 reviews, 5 per suite
    assert {name: p.type for name, p in state.providers.items()} == {
        "perftest": "perftest",
        "toloka": "toloka",
    }
    assert str(EXAMPLES / "sandbox-seed.yaml") in state.skipped
    assert state.root == EXAMPLES


def test_sandbox_seed_holds_every_pool_and_test_project_the_examples_use():
    seed = yaml.safe_load((EXAMPLES / "sandbox-seed.yaml").read_text(encoding="utf-8"))
    specs = [resource.spec for resource in load([EXAMPLES]).resources.values()]

    pools = {spec["pool_id"] for spec in specs if "pool_id" in spec}
    projects = {spec["project_id"] for spec in specs if "project_id" in spec}

    assert pools <= {str(pool["id"]) for pool in seed["pools"]}
    assert projects <= {project["id"] for project in seed["test_projects"]}
