"""A user's project directory whose providers point at a sandbox, and checks of what apply left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.state import open_store


@dataclass
class Project:
    """A user's checkout: manifests under ``manifests/``, state under ``state/``."""

    root: Path
    sandbox: Any
    env: dict[str, str]

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def apply(self, *extra: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "manifests", "--auto-approve", *extra, extra_env=extra_env)

    def apply_until_done(self, *extra: str, tries: int) -> subprocess.CompletedProcess[str]:
        """Run apply again after each failure, as a pipeline retry would, until it succeeds or tries run out."""
        for _ in range(tries):
            done = self.apply(*extra)
            if done.returncode == 0:
                break
        return done

    @property
    def state_file(self) -> Path:
        """Where the state of ``manifests/`` lives by default: beside them."""
        return self.manifests / ".reconciler" / "default.db"

    def recorded(self) -> dict[str, Any]:
        """address -> summary, read straight from the state file."""
        store = open_store(str(self.state_file), workspace="default", root=self.root)
        try:
            return {s.address: s for s in store.summaries()}
        finally:
            store.close()

    def write(self, relative: str, text: str) -> None:
        path = self.manifests / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_project(
    root: Path, sandbox: Any, *, tasks: int = 6, rows: int = 40, batch_size: int = 10, rate_limit: float = 250
) -> Project:
    """A project under ``root`` with ``tasks`` PerfTest tasks and a TaskSuiteSet of ``rows`` rows, its providers
    pointing at ``sandbox`` with the sandbox's credentials in the environment."""
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "TEST_CPTS_AK": sandbox.access_key,
        "TEST_CPTS_SK": sandbox.secret_key,
        "TEST_TOLOKA_KEY": sandbox.toloka_token,
    }
    env.pop("RECONCILER_FAILPOINT", None)
    # Named, so `state` commands run from the project's folder find it too (plan and apply would find it anyway).
    env["RECONCILER_STATE"] = f"{root / 'manifests' / '.reconciler'}/"
    proj = Project(root=root, sandbox=sandbox, env=env)
    proj.write("providers.yaml", providers_yaml(sandbox, batch_size=batch_size, rate_limit=rate_limit))
    if tasks:
        proj.write("perftest/tasks.yaml", tasks_yaml(tasks))
    if rows:
        manifest, data = suite_set_yaml(rows)
        proj.write("toloka/reviews.yaml", manifest)
        proj.write("toloka/data/reviews.jsonl", data)
    return proj


def applied_project(root: Path, sandbox: Any, *, tasks: int, rows: int, batch_size: int = 10) -> Project:
    """``make_project``, applied once successfully: the starting point of tests of what comes after a create."""
    proj = make_project(root, sandbox, tasks=tasks, rows=rows, batch_size=batch_size)
    done = proj.apply()
    assert done.returncode == 0, done.stdout + done.stderr
    return proj


def offline_providers_yaml(url: str) -> str:
    """Both providers at ``url``, their credentials in variables nobody sets: for tests that plan and must send
    nothing (a send would fail for want of a key, and the test would see it)."""
    return f"""\
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {{name: toloka}}
spec: {{endpoint: "{url}", credentials: {{token_env: UNSET_TOLOKA_KEY}}}}
---
apiVersion: reconciler/v1
kind: PerfTestProvider
metadata: {{name: perftest}}
spec:
  endpoint: "{url}"
  region: cn-north-4
  cloud_project_id: 0123456789abcdef0123456789abcdef
  credentials: {{access_key_env: UNSET_AK, secret_key_env: UNSET_SK}}
"""


def providers_yaml(sandbox: Any, *, batch_size: int = 5000, rate_limit: float = 250) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: PerfTestProvider
metadata: {{name: perftest}}
spec:
  endpoint: {sandbox.url}
  region: cn-north-4
  cloud_project_id: {sandbox.cloud_project_id}
  credentials: {{access_key_env: TEST_CPTS_AK, secret_key_env: TEST_CPTS_SK}}
  rate_limit: {rate_limit}
---
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {{name: toloka}}
spec:
  endpoint: {sandbox.url}
  credentials: {{token_env: TEST_TOLOKA_KEY}}
  rate_limit: {rate_limit}
  batch_size: {batch_size}
"""


def tasks_yaml(count: int, *, project_ids: tuple[int, ...] = (101, 102)) -> str:
    docs = []
    for n in range(count):
        docs.append(
            f"""\
apiVersion: reconciler/v1
kind: PerfTestTask
metadata: {{name: load-{n:03d}}}
spec:
  project_id: {project_ids[n % len(project_ids)]}
  parallel: {str(n % 2 == 0).lower()}
  case_id_list: [{n + 1}, {n + 2}]
"""
        )
    return "---\n".join(docs)


def suite_set_yaml(rows: int, *, pool: str = "5001") -> tuple[str, str]:
    manifest = f"""\
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata: {{name: reviews}}
spec:
  source: data/reviews.jsonl
  key: id
  template: {{pool_id: "{pool}", overlap: 2}}
"""
    data = "".join(json.dumps({"id": f"r{n:05d}", "text": f"review number {n}"}) + "\n" for n in range(rows))
    return manifest, data


def assert_exactly_once(proj: Project, *, tasks: int, rows: int) -> None:
    """The sandbox holds one object per resource, no more, and the state's remote ids are exactly those."""
    objects = proj.sandbox.objects()
    names = [t["name"] for t in objects["perftest_tasks"]]
    assert len(names) == len(set(names)) == tasks, f"duplicate or missing tasks: {sorted(names)}"
    texts = [s["tasks"][0]["input_values"]["text"] for s in objects["task_suites"]]
    assert len(texts) == len(set(texts)) == rows, f"{len(texts)} suites for {rows} rows"
    recorded = proj.recorded()
    assert len(recorded) == tasks + rows
    assert all(r.status.value == "created" for r in recorded.values()), [
        (a, r.status) for a, r in recorded.items() if r.status.value != "created"
    ]
    remote_ids = {r.remote_id for r in recorded.values()}
    sandbox_ids = {str(t["id"]) for t in objects["perftest_tasks"]} | {str(s["id"]) for s in objects["task_suites"]}
    assert remote_ids == sandbox_ids
