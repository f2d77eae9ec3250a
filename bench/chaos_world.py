"""The chaos harness's world: the workload it applies (manifests and data that only ever grow) and the
comparison of what the emulator holds with what the state says. Kept apart from ``chaos.py``, which runs the
rounds, so the comparison can be tested on generated worlds without starting anything."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.sandbox import DEFAULT_CLOUD_PROJECT_ID

PROJECTS = (101, 102)
POOLS = {"reviews": "5001", "photos": "5002"}
#: Rows per suite of the CSV set; rows are added in whole suites, so no suite ever changes.
PHOTOS_PER_SUITE = 2


# --- the workload ----------------------------------------------------------------------------------------------


class Workload:
    """The project's manifests (JSON) and data files, which only ever grow, and the addresses they declare."""

    def __init__(self, root: Path, url: str, batch_size: int) -> None:
        self.manifests = root / "manifests"
        (self.manifests / "data").mkdir(parents=True, exist_ok=True)
        self.reviews = self.photos = self.tasks = 0
        keys = {"access_key_env": "CHAOS_CPTS_AK", "secret_key_env": "CHAOS_CPTS_SK"}
        # PerfTest at 40 requests/s, so that a run's task creates spread over its length, as suspensions need.
        perftest = {"endpoint": url, "region": "cn-north-4", "credentials": keys, "rate_limit": 40}
        perftest["cloud_project_id"] = DEFAULT_CLOUD_PROJECT_ID
        toloka = {"endpoint": url, "credentials": {"token_env": "CHAOS_TOLOKA_KEY"}, "batch_size": batch_size}
        providers = [doc("PerfTestProvider", "perftest", perftest), doc("TolokaProvider", "toloka", toloka)]
        self._write("providers", providers)
        reviews = {"source": "data/reviews.jsonl", "key": "id", "template": {"pool_id": POOLS["reviews"], "overlap": 3}}
        photos = {"source": "data/photos.csv", "key": "id", "tasks_per_suite": PHOTOS_PER_SUITE}
        photos.update(template={"pool_id": POOLS["photos"], "overlap": 1}, options={"allow_defaults": True})
        self._write("suites", [doc("TaskSuiteSet", "reviews", reviews), doc("TaskSuiteSet", "photos", photos)])
        (self.manifests / "data" / "photos.csv").write_text("id,url,caption\r\n")

    def _write(self, name: str, documents: list[dict[str, Any]]) -> None:
        (self.manifests / f"{name}.json").write_text(json.dumps(documents, indent=1))

    def grow(self, reviews: int, photo_suites: int, tasks: int) -> None:
        with (self.manifests / "data" / "reviews.jsonl").open("a") as out:
            for n in range(self.reviews, self.reviews + reviews):
                out.write(json.dumps({"id": f"rv{n:06d}", "text": f"review {n}", "stars": n % 5 + 1}) + "\n")
        with (self.manifests / "data" / "photos.csv").open("a", newline="") as out:
            rows = range(self.photos, self.photos + photo_suites * PHOTOS_PER_SUITE)
            csv.writer(out).writerows([f"ph{n:06d}", f"https://img.example/{n}.jpg", f"photo, {n}"] for n in rows)
        self.reviews += reviews
        self.photos += photo_suites * PHOTOS_PER_SUITE
        if tasks:
            self.tasks += tasks
            self._write("tasks", [task_doc(n) for n in range(self.tasks)])

    @property
    def suites(self) -> int:
        return self.reviews + self.photos // PHOTOS_PER_SUITE

    def addresses(self) -> set[str]:
        found = {f"TaskSuiteSet/reviews/rv{n:06d}" for n in range(self.reviews)}
        found |= {f"TaskSuiteSet/photos/ph{n:06d}" for n in range(0, self.photos, PHOTOS_PER_SUITE)}
        return found | {f"PerfTestTask/{task_name(n)}" for n in range(self.tasks)}


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def task_name(n: int) -> str:
    return f"chaos-{n:04d}"


def task_doc(n: int) -> dict[str, Any]:
    spec = {"project_id": PROJECTS[n % len(PROJECTS)], "parallel": n % 2 == 0, "case_id_list": [n + 1]}
    return doc("PerfTestTask", task_name(n), spec)


# --- the world against the state -------------------------------------------------------------------------------


@dataclass
class Findings:
    duplicates: int = 0
    missing: int = 0
    mismatches: int = 0
    unattributed: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.missing or self.mismatches or self.unattributed)


def attribute(objects: dict[str, list[dict[str, Any]]], tasks: int) -> tuple[dict[str, list[str]], list[str]]:
    """Remote ids by the address they were made for, and the ids no address accounts for. A suite is known by
    its pool and its first task's ``id`` (the set's key), a task by its name in its manifest's test project."""
    sets = {pool: name for name, pool in POOLS.items()}
    projects = {task_name(n): PROJECTS[n % len(PROJECTS)] for n in range(tasks)}
    found: dict[str, list[str]] = {}
    stray: list[str] = []
    for suite in objects.get("task_suites", []):
        key = (suite.get("tasks") or [{}])[0].get("input_values", {}).get("id")
        name = sets.get(str(suite.get("pool_id")))
        if name is None or not isinstance(key, str):
            stray.append(f"suite {suite.get('id')}")
        else:
            found.setdefault(f"TaskSuiteSet/{name}/{key}", []).append(str(suite["id"]))
    for task in objects.get("perftest_tasks", []):
        if projects.get(str(task.get("name"))) != task.get("project_id"):
            stray.append(f"task {task.get('id')} ({task.get('name')} in {task.get('project_id')})")
        else:
            found.setdefault(f"PerfTestTask/{task['name']}", []).append(str(task["id"]))
    return found, stray


def compare(
    expected: Iterable[str], remote: dict[str, list[str]], stray: list[str], recorded: dict[str, tuple[str, str]]
) -> Findings:
    """``recorded``: address -> (status, remote id or ``-``), as `reconciler state list` prints them."""
    findings = Findings(unattributed=len(stray), examples=[f"unattributed: {s}" for s in stray[:5]])
    for address in sorted(expected):
        ids = remote.get(address, [])
        status, remote_id = recorded.get(address, ("absent", "-"))
        if len(ids) > 1:
            findings.duplicates += len(ids) - 1
            findings.examples.append(f"duplicate: {address}: {', '.join(ids)}")
        if not ids:
            findings.missing += 1
            findings.examples.append(f"missing: {address} (state: {status} {remote_id})")
        elif status != "created" or remote_id not in ids:
            findings.mismatches += 1
            findings.examples.append(f"mismatch: {address}: state {status} {remote_id}, remote {', '.join(ids)}")
    return findings


def parse_state_list(text: str) -> dict[str, tuple[str, str]]:
    rows = (line.split("\t") for line in text.splitlines())
    return {parts[0]: (parts[1], parts[2]) for parts in rows if len(parts) == 3}
