"""`bench/chaos.py`, the chaos harness: a few seeded rounds in CI, and its comparison of the world with the state.

The harness runs as a user runs it, as a script whose processes (apply runs, the emulator) are real; a short
lock TTL lets a suspended apply lose its lock to another within the round. Every suspension is aimed (the run
stops itself before a PerfTest create), so each one lands with the lock held however slow the machine is.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
CHAOS = ROOT / "bench" / "chaos.py"


@functools.cache
def load_chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos_harness", CHAOS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_killed_and_suspended_applies_and_a_restarted_emulator_leave_each_address_one_object(tmp_path: Path) -> None:
    """Half the rounds also edit, remove and prune (``--lifecycle``), so kills and suspensions land in updates,
    deletions and retirements too."""
    workdir = tmp_path / "chaos"
    args = ["--rounds", "10", "--seed", "10", "--mix", "kill=6,suspend=2,restart=2", "--lock-ttl", "2", "--aimed", "1"]
    args += ["--suites", "300", "--suites-per-round", "20", "--tasks", "8", "--apply-timeout", "60"]
    args += ["--lifecycle", "0.5"]
    done = subprocess.run(
        [sys.executable, str(CHAOS), *args, "--workdir", str(workdir), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")},
    )
    assert done.stdout.strip(), done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    report = done.stdout + done.stderr
    assert figures["kills"] >= 1 and figures["suspensions"] >= 1, report
    # A takeover can wait in vain for a state file the stopped run was writing (docs/chaos.md): at least one lands.
    assert figures["takeovers"] >= 1 and figures["emulator_restarts"] >= 1, report
    assert figures["updated_by_runs"]["suites"] >= 1 and figures["retired_or_deleted_by_runs"]["tasks"] >= 1, report
    assert (figures["duplicates"], figures["missing"], figures["mismatches"]) == (0, 0, 0), report
    assert (figures["field_mismatches"], figures["removed_but_live"], figures["removed_but_in_the_state"]) == (0, 0, 0)
    assert figures["unattributed"] == 0, report
    assert figures["final_apply_exit"] == 0 and figures["next_apply_found_nothing_to_do"], report
    assert done.returncode == 0, report
    assert processes_mentioning(str(workdir)) == [], "the harness left processes behind"


#: What the state says of an address: nothing, pending, created naming a remote object of it, or another id.
STATE_SAYS = ("absent", "pending", "created: its object", "created: another id")
#: The figures, in order: duplicates, missing, mismatches, strays, field mismatches, removed but live, removed
#: but in the state.
FIGURES = 7


@dataclass
class World:
    """A world made to hold known faults, with the figures the comparison must find in it."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"task_suites": [], "perftest_tasks": []})
    recorded: dict[str, tuple[str, str]] = field(default_factory=dict)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    figures: list[int] = field(default_factory=lambda: [0] * FIGURES)

    def add(self, address: str, copies: int, state: str, stale: bool, make: Make, want: dict[str, Any]) -> None:
        """``copies`` objects made for a manifest address, the last with another value of ``want`` if ``stale``."""
        self.expected[address] = want
        ids = [make(want if n < copies - 1 or not stale else None) for n in range(copies)]
        self.figures[0] += max(copies - 1, 0)
        self.figures[1] += copies == 0
        self.figures[2] += copies > 0 and state != "created: its object"
        self.figures[4] += copies > 0 and stale
        self.record(address, state, ids)

    def remove(self, address: str, live: list[bool], state: str, make: Make, want: dict[str, Any]) -> None:
        """Objects made for an address taken out of the manifests: each left live, or retired (a suite)."""
        self.removed.add(address)
        suite = address.startswith("TaskSuiteSet/")
        ids = [make(want if alive else {"overlap": 0}) for alive in live if alive or suite]
        self.figures[0] += max(len(ids) - 1, 0)
        self.figures[5] += any(live)
        self.figures[6] += state != "absent"
        self.record(address, state, ids)

    def record(self, address: str, state: str, ids: list[str]) -> None:
        if state == "pending":
            self.recorded[address] = ("pending", "-")
        elif state.startswith("created"):
            self.recorded[address] = ("created", ids[-1] if ids and state.endswith("object") else "elsewhere")


Make = Callable[["dict[str, Any] | None"], str]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, int]:
    world, serial = World(), iter(range(1, 10_000))
    each = st.tuples(st.integers(0, 3), st.sampled_from(STATE_SAYS), st.booleans())
    gone = st.tuples(st.lists(st.booleans(), max_size=3), st.sampled_from(STATE_SAYS))

    def suite(pool: str, key: str) -> Make:
        def make(fields: dict[str, Any] | None) -> str:
            suite_id, overlap = f"s{next(serial)}", (fields or {"overlap": 7})["overlap"]
            inputs = {"id": key, "text": "t"}
            doc = {"id": suite_id, "pool_id": pool, "overlap": overlap, "tasks": [{"input_values": inputs}]}
            world.objects["task_suites"].append(doc)
            return suite_id

        return make

    def task(name: str, project: int) -> Make:
        def make(fields: dict[str, Any] | None) -> str:
            task_id, cases = next(serial), (fields or {"case_id_list": [99, 98]})["case_id_list"]
            doc = {"id": task_id, "name": name, "project_id": project, "case_id_list": cases}
            world.objects["perftest_tasks"].append(doc)
            return str(task_id)

        return make

    sets = {"reviews": ("5001", "rv", 1), "photos": ("5002", "ph", 2), "labels": ("5003", "lb", 1)}
    for name, (pool, prefix, step) in sets.items():
        overlap = draw(st.integers(1, 5))
        for n in range(0, step * draw(st.integers(0, 5)), step):
            address, key = f"TaskSuiteSet/{name}/{prefix}{n:06d}", f"{prefix}{n:06d}"
            if draw(st.booleans()):
                world.add(address, *draw(each), suite(pool, key), {"overlap": overlap})
            else:
                world.remove(address, *draw(gone), suite(pool, key), {"overlap": overlap})
    tasks = draw(st.integers(0, 5))
    for n in range(tasks):
        name, want = f"chaos-{n:04d}", {"case_id_list": [n + 1, *draw(st.lists(st.integers(1, 9), max_size=2))]}
        if draw(st.booleans()):
            world.add(f"PerfTestTask/{name}", *draw(each), task(name, 101 + n % 2), want)
        else:
            world.remove(f"PerfTestTask/{name}", *draw(gone), task(name, 101 + n % 2), want)
    strays = draw(st.lists(st.sampled_from(["unknown pool", "wrong project", "unknown name"]), max_size=3))
    for stray in strays:
        if stray == "unknown pool":
            suite("9999", "rv000000")(None)
        else:
            task("chaos-0000" if stray == "wrong project" else "someone-elses", 103)(None)
    world.figures[3] = len(strays)
    return world, tasks


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(worlds())
def test_the_comparison_finds_every_duplicate_missing_mismatched_stale_unremoved_and_stray_object(
    made: tuple[World, int],
) -> None:
    chaos = load_chaos()
    world, tasks = made
    remote, stray = chaos.attribute(world.objects, tasks=tasks)
    f = chaos.compare(world.expected, remote, stray, world.recorded, world.removed)
    found = [f.duplicates, f.missing, f.mismatches, f.unattributed, f.field_mismatches, f.not_removed, f.still_in_state]
    assert found == world.figures
    assert f.clean == (world.figures == [0] * FIGURES)


def test_state_list_output_is_read_as_address_status_and_remote_id() -> None:
    chaos = load_chaos()
    text = "PerfTestTask/chaos-0000\tcreated\t100001\nTaskSuiteSet/reviews/rv000001\tpending\t-\n"
    assert chaos.parse_state_list(text) == {
        "PerfTestTask/chaos-0000": ("created", "100001"),
        "TaskSuiteSet/reviews/rv000001": ("pending", "-"),
    }
