"""The chaos harness's world: the processes it starts (apply runs, the emulator), the workload it applies
(manifests and data that grow, and, in lifecycle rounds, are edited in place and lose rows and tasks), and the
comparison of what the emulator holds with what the state says. Kept apart from ``chaos.py``, which runs the
rounds, so the comparison can be tested on generated worlds without starting anything."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reconciler.sandbox import DEFAULT_CLOUD_PROJECT_ID

PROJECTS = (101, 102)
POOLS = {"reviews": "5001", "photos": "5002", "labels": "5003"}
#: Rows per suite of the CSV set; rows are added in whole suites (and removed so), so no suite ever changes.
PHOTOS_PER_SUITE = 2
#: The overlap of each set's template; the labels set's changes in every lifecycle round.
OVERLAPS = {"reviews": 3, "photos": 1}


class HarnessError(Exception):
    """The harness could not do its job (the emulator did not start, the state could not be listed)."""


# --- processes -------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """A harness killed outright cannot reap its children, so Linux is asked to kill them with it: a stray
    stopped apply would keep its state lock, and a stray emulator its port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Children:
    """Every process the harness starts, so that none outlives it, stopped or not."""

    def __init__(self) -> None:
        self._live: list[subprocess.Popen[bytes]] = []

    def spawn(self, args: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": out, "stderr": subprocess.STDOUT}
            process = subprocess.Popen(list(args), cwd=cwd, env=env, preexec_fn=_die_with_parent, **options)
        self._live.append(process)
        return process

    def reap(self, process: subprocess.Popen[bytes], timeout: float) -> int | None:
        """Its exit status, or None for a hang: a run past ``timeout`` gets SIGABRT first, so that Python's
        faulthandler (``-X faulthandler``) writes every thread's stack to its log, then SIGKILL."""
        try:
            status: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for signum in (signal.SIGCONT, signal.SIGABRT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            status = None
        self._end(process)
        return status

    def stop_all(self) -> None:
        for process in list(self._live):
            self._end(process)

    def _end(self, process: subprocess.Popen[bytes]) -> None:
        for signum in (signal.SIGCONT, signal.SIGKILL):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)
        process.wait()
        self._live.remove(process)


def reconciler_command(*args: str) -> list[str]:
    return [sys.executable, "-X", "faulthandler", "-m", "reconciler", *args]


class Emulator:
    """`reconciler sandbox serve` on one port for the whole run, its world in ``remote.db``."""

    def __init__(self, children: Children, root: Path, faults: str) -> None:
        self.children, self.root, self.faults = children, root, faults
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, seed: int) -> None:
        """Each start gets its own fault seed, so that a restarted emulator does not replay its first faults."""
        faults, data = f"{self.faults},seed={seed}" if self.faults else "", str(self.root / "remote.db")
        args = reconciler_command("sandbox", "serve", "--port", str(self.port), "--auto-create", "--data", data)
        args += ["--faults", faults]
        log = self.root / "logs" / "emulator.log"
        self.process = self.children.spawn(args, env=dict(os.environ), cwd=self.root, log=log)
        self.starts += 1
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/_sandbox/stats", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-1500:]
                    raise HarnessError(f"the emulator did not start on port {self.port}:\n{tail}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.children.reap(self.process, timeout=30)
            self.process = None


# --- the workload ----------------------------------------------------------------------------------------------


class Workload:
    """The project's manifests (JSON) and data files, and the addresses they declare. Rows and tasks are only
    ever added, except by ``lifecycle``, which also edits fields the APIs change in place and removes rows and
    tasks for good (``removed``); ``labels`` > 0 adds the set whose template overlap those rounds change."""

    def __init__(self, root: Path, url: str, batch_size: int, labels: int = 0) -> None:
        self.manifests = root / "manifests"
        (self.manifests / "data").mkdir(parents=True, exist_ok=True)
        self.reviews = self.photos = self.tasks = self.labels = 0
        self.label_overlap = 2
        #: Row numbers (the first row's, for photos) and task numbers removed from the manifests, by set.
        self.gone: dict[str, set[int]] = {"reviews": set(), "photos": set(), "labels": set(), "tasks": set()}
        self.cases: dict[int, list[int]] = {}  # edited case lists, by task number
        self.edits: Counter[str] = Counter()
        keys = {"access_key_env": "CHAOS_CPTS_AK", "secret_key_env": "CHAOS_CPTS_SK"}
        # PerfTest at 40 requests/s, so that a run's task creates spread over its length, as suspensions need.
        perftest = {"endpoint": url, "region": "cn-north-4", "credentials": keys, "rate_limit": 40}
        perftest["cloud_project_id"] = DEFAULT_CLOUD_PROJECT_ID
        toloka = {"endpoint": url, "credentials": {"token_env": "CHAOS_TOLOKA_KEY"}, "batch_size": batch_size}
        providers = [doc("PerfTestProvider", "perftest", perftest), doc("TolokaProvider", "toloka", toloka)]
        self._write("providers", providers)
        self._write_sets(with_labels=labels > 0)
        (self.manifests / "data" / "photos.csv").write_text("id,url,caption\r\n")
        self.grow(0, 0, 0, labels)

    def _write(self, name: str, documents: list[dict[str, Any]]) -> None:
        (self.manifests / f"{name}.json").write_text(json.dumps(documents, indent=1))

    def _write_sets(self, *, with_labels: bool) -> None:
        template = {"pool_id": POOLS["reviews"], "overlap": OVERLAPS["reviews"]}
        reviews = {"source": "data/reviews.jsonl", "key": "id", "template": template}
        photos = {"source": "data/photos.csv", "key": "id", "tasks_per_suite": PHOTOS_PER_SUITE}
        template = {"pool_id": POOLS["photos"], "overlap": OVERLAPS["photos"]}
        photos.update(template=template, options={"allow_defaults": True})
        sets = [doc("TaskSuiteSet", "reviews", reviews), doc("TaskSuiteSet", "photos", photos)]
        if with_labels:
            labels = {"source": "data/labels.jsonl", "key": "id"}
            labels["template"] = {"pool_id": POOLS["labels"], "overlap": self.label_overlap}
            sets.append(doc("TaskSuiteSet", "labels", labels))
        self._write("suites", sets)

    def grow(self, reviews: int, photo_suites: int, tasks: int, labels: int = 0) -> None:
        self._rows("reviews", range(self.reviews, self.reviews + reviews), mode="a")
        self._rows("photos", range(self.photos, self.photos + photo_suites * PHOTOS_PER_SUITE), mode="a")
        self._rows("labels", range(self.labels, self.labels + labels), mode="a")
        self.reviews += reviews
        self.photos += photo_suites * PHOTOS_PER_SUITE
        self.labels += labels
        if tasks:
            self.tasks += tasks
            self._write_tasks()

    def _rows(self, name: str, numbers: range, *, mode: str) -> None:
        if mode == "a" and not numbers:
            return
        path = self.manifests / "data" / ("photos.csv" if name == "photos" else f"{name}.jsonl")
        with path.open(mode, newline="" if name == "photos" else None) as out:
            if name == "photos":
                if mode == "w":
                    out.write("id,url,caption\r\n")
                gone = {n + i for n in self.gone["photos"] for i in range(PHOTOS_PER_SUITE)}
                kept = (n for n in numbers if n not in gone)
                csv.writer(out).writerows([f"ph{n:06d}", f"https://img.example/{n}.jpg", f"photo, {n}"] for n in kept)
                return
            for n in numbers:
                if n in self.gone[name]:
                    continue
                row = {"id": f"rv{n:06d}", "text": f"review {n}", "stars": n % 5 + 1}
                if name == "labels":
                    row = {"id": f"lb{n:06d}", "text": f"label {n}"}
                out.write(json.dumps(row) + "\n")

    def _write_tasks(self) -> None:
        self._write("tasks", [task_doc(n, self.cases.get(n)) for n in range(self.tasks) if n not in self.gone["tasks"]])

    def lifecycle(self, rng: random.Random, edit_tasks: int, remove: int) -> dict[str, int]:
        """Before a pruning apply: a new overlap for the labels set (every one of its suites an update), new case
        lists for ``edit_tasks`` tasks, and ``remove`` things removed for good, each a review row, a photos suite
        (its two rows), a labels row or a task, as many labels rows added as were removed. What it did, counted:
        the actions the next apply should take (``toloka_patch``, ``perftest_update``, ``toloka_retire``,
        ``perftest_delete``, for the suites and tasks created by then)."""
        done: Counter[str] = Counter()
        live = {name: self.live(name) for name in self.gone}
        if self.labels:
            self.label_overlap = rng.choice([v for v in range(1, 6) if v != self.label_overlap])
            done["toloka_patch"] = len(live["labels"])
        for n in rng.sample(live["tasks"], min(edit_tasks, len(live["tasks"]))):
            self.edits["case lists"] += 1
            self.cases[n] = [n + 1, 100_000 + self.edits["case lists"]]
            done["perftest_update"] += 1
        kinds = [name for name in ("reviews", "photos", "labels", "tasks") if self.labels or name != "labels"]
        removed: Counter[str] = Counter()
        for _ in range(remove):
            name = rng.choice(kinds)
            if len(live[name]) > 1:  # a set or the tasks never go empty
                self.gone[name].add(live[name].pop(rng.randrange(len(live[name]))))
                removed[name] += 1
                done["perftest_delete" if name == "tasks" else "toloka_retire"] += 1
        self.edits["suite overlaps"] += done["toloka_patch"]
        self._write_sets(with_labels=self.labels > 0)
        for name in ("reviews", "photos", "labels"):
            self._rows(name, range({"reviews": self.reviews, "photos": self.photos}.get(name, self.labels)), mode="w")
        self.grow(0, 0, 0, removed["labels"])
        self._write_tasks()
        return dict(done)

    def live(self, name: str) -> list[int]:
        """The numbers of the rows (the first row of a photos suite) or tasks of ``name`` the manifests hold."""
        size, step = {"reviews": (self.reviews, 1), "photos": (self.photos, PHOTOS_PER_SUITE)}.get(name, (0, 1))
        size = {"labels": self.labels, "tasks": self.tasks}.get(name, size)
        return [n for n in range(0, size, step) if n not in self.gone[name]]

    @property
    def suites(self) -> int:
        return sum(len(self.live(name)) for name in ("reviews", "photos", "labels"))

    def expected(self) -> dict[str, dict[str, Any]]:
        """Every address of the manifests, with the fields changed in place its remote object must hold."""
        found = {f"TaskSuiteSet/reviews/rv{n:06d}": {"overlap": OVERLAPS["reviews"]} for n in self.live("reviews")}
        found |= {f"TaskSuiteSet/photos/ph{n:06d}": {"overlap": OVERLAPS["photos"]} for n in self.live("photos")}
        found |= {f"TaskSuiteSet/labels/lb{n:06d}": {"overlap": self.label_overlap} for n in self.live("labels")}
        cases = {n: {"case_id_list": self.cases.get(n, [n + 1])} for n in self.live("tasks")}
        return found | {f"PerfTestTask/{task_name(n)}": fields for n, fields in cases.items()}

    def removed(self) -> set[str]:
        """Every address removed from the manifests: deleted (retired) by a pruning apply, gone from the state."""
        prefixes = {"reviews": "TaskSuiteSet/reviews/rv", "photos": "TaskSuiteSet/photos/ph"}
        prefixes["labels"] = "TaskSuiteSet/labels/lb"
        found = {f"{prefixes[name]}{n:06d}" for name in prefixes for n in self.gone[name]}
        return found | {f"PerfTestTask/{task_name(n)}" for n in self.gone["tasks"]}

    def addresses(self) -> set[str]:
        return set(self.expected())


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def task_name(n: int) -> str:
    return f"chaos-{n:04d}"


def task_doc(n: int, cases: list[int] | None = None) -> dict[str, Any]:
    spec = {"project_id": PROJECTS[n % len(PROJECTS)], "parallel": n % 2 == 0, "case_id_list": cases or [n + 1]}
    return doc("PerfTestTask", task_name(n), spec)


# --- the world against the state -------------------------------------------------------------------------------


@dataclass
class Findings:
    duplicates: int = 0
    missing: int = 0
    mismatches: int = 0
    unattributed: int = 0
    #: Addresses of the manifests whose remote object holds another value of a field changed in place.
    field_mismatches: int = 0
    #: Removed addresses with a live remote object: a task not deleted, a suite not retired (overlap above 0).
    not_removed: int = 0
    #: Removed addresses the state still holds.
    still_in_state: int = 0
    #: Removed addresses found as they should be: tasks gone, suites retired (made, so neither is vacuous).
    deleted: int = 0
    retired: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        found = (self.duplicates, self.missing, self.mismatches, self.unattributed, self.field_mismatches)
        return not any((*found, self.not_removed, self.still_in_state))


@dataclass(frozen=True)
class Copy:
    """One remote object made for an address: its id and the fields the APIs change in place (a suite's
    ``overlap``, a task's ``case_id_list``)."""

    id: str
    fields: Mapping[str, Any]

    @property
    def retired(self) -> bool:
        return self.fields.get("overlap", -1) == 0


def attribute(objects: dict[str, list[dict[str, Any]]], tasks: int) -> tuple[dict[str, list[Copy]], list[str]]:
    """Remote objects by the address they were made for, and the ids no address accounts for. A suite is known
    by its pool and its first task's ``id`` (the set's key), a task by its name in its manifest's test project
    (``tasks``: how many were ever declared, removed ones too)."""
    sets = {pool: name for name, pool in POOLS.items()}
    projects = {task_name(n): PROJECTS[n % len(PROJECTS)] for n in range(tasks)}
    found: dict[str, list[Copy]] = {}
    stray: list[str] = []
    for suite in objects.get("task_suites", []):
        key = (suite.get("tasks") or [{}])[0].get("input_values", {}).get("id")
        name = sets.get(str(suite.get("pool_id")))
        if name is None or not isinstance(key, str):
            stray.append(f"suite {suite.get('id')}")
        else:
            copy = Copy(str(suite["id"]), {"overlap": suite.get("overlap")})
            found.setdefault(f"TaskSuiteSet/{name}/{key}", []).append(copy)
    for task in objects.get("perftest_tasks", []):
        if projects.get(str(task.get("name"))) != task.get("project_id"):
            stray.append(f"task {task.get('id')} ({task.get('name')} in {task.get('project_id')})")
        else:
            copy = Copy(str(task["id"]), {"case_id_list": task.get("case_id_list")})
            found.setdefault(f"PerfTestTask/{task['name']}", []).append(copy)
    return found, stray


def compare(
    expected: Mapping[str, Mapping[str, Any]],
    remote: dict[str, list[Copy]],
    stray: list[str],
    recorded: dict[str, tuple[str, str]],
    removed: Iterable[str] = (),
) -> Findings:
    """``expected``: each address of the manifests, with the in-place fields its object must hold; ``removed``:
    the addresses taken out of them; ``recorded``: address -> (status, remote id or ``-``), as `reconciler
    state list` prints them. An address of either kind made twice is a duplicate."""
    findings = Findings(unattributed=len(stray), examples=[f"unattributed: {s}" for s in stray[:5]])
    for address in sorted(expected):
        copies = remote.get(address, [])
        ids = [c.id for c in copies]
        status, remote_id = recorded.get(address, ("absent", "-"))
        _duplicates(findings, address, ids)
        if not ids:
            findings.missing += 1
            findings.examples.append(f"missing: {address} (state: {status} {remote_id})")
        elif status != "created" or remote_id not in ids:
            findings.mismatches += 1
            findings.examples.append(f"mismatch: {address}: state {status} {remote_id}, remote {', '.join(ids)}")
        stale = [
            f"{c.id} {k}={c.fields.get(k)}"
            for c in copies
            for k, v in expected[address].items()
            if c.fields.get(k) != v
        ]
        if stale:
            findings.field_mismatches += 1
            want = ", ".join(f"{k}={v}" for k, v in expected[address].items())
            findings.examples.append(f"field mismatch: {address}: manifest {want}, remote {'; '.join(stale)}")
    for address in sorted(set(removed)):
        copies = remote.get(address, [])
        _duplicates(findings, address, [c.id for c in copies])
        suite = address.startswith("TaskSuiteSet/")
        live = [c.id for c in copies if not (suite and c.retired)]
        if live:
            findings.not_removed += 1
            findings.examples.append(f"not {'retired' if suite else 'deleted'}: {address}: {', '.join(live)}")
        elif suite and copies:
            findings.retired += 1
        elif not suite:
            findings.deleted += 1
        if address in recorded:
            findings.still_in_state += 1
            findings.examples.append(f"removed but in the state: {address}: {' '.join(recorded[address])}")
    return findings


def _duplicates(findings: Findings, address: str, ids: list[str]) -> None:
    if len(ids) > 1:
        findings.duplicates += len(ids) - 1
        findings.examples.append(f"duplicate: {address}: {', '.join(ids)}")


def parse_state_list(text: str) -> dict[str, tuple[str, str]]:
    rows = (line.split("\t") for line in text.splitlines())
    return {parts[0]: (parts[1], parts[2]) for parts in rows if len(parts) == 3}
