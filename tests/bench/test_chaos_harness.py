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
    workdir = tmp_path / "chaos"
    args = ["--rounds", "10", "--seed", "8", "--mix", "kill=6,suspend=2,restart=2", "--lock-ttl", "2", "--aimed", "1"]
    args += ["--suites", "300", "--suites-per-round", "20", "--tasks", "8", "--apply-timeout", "60"]
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
    assert figures["takeovers"] == figures["suspensions"] == 2 and figures["emulator_restarts"] >= 1, report
    assert (figures["duplicates"], figures["missing"], figures["mismatches"]) == (0, 0, 0), report
    assert figures["unattributed"] == 0, report
    assert figures["final_apply_exit"] == 0 and figures["next_apply_found_nothing_to_do"], report
    assert done.returncode == 0, report
    assert processes_mentioning(str(workdir)) == [], "the harness left processes behind"


#: What the state says of an address: nothing, pending, created naming a remote object of it, or another id.
STATE_SAYS = ("absent", "pending", "created: its object", "created: another id")


@dataclass
class World:
    """A world made to hold known faults, with the figures the comparison must find in it."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"task_suites": [], "perftest_tasks": []})
    recorded: dict[str, tuple[str, str]] = field(default_factory=dict)
    expected: set[str] = field(default_factory=set)
    figures: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # duplicates, missing, mismatches, strays

    def add(self, address: str, copies: int, state: str, make: Callable[[int], str]) -> None:
        self.expected.add(address)
        ids = [make(n) for n in range(copies)]
        self.figures[0] += max(copies - 1, 0)
        self.figures[1] += copies == 0
        self.figures[2] += copies > 0 and state != "created: its object"
        if state == "pending":
            self.recorded[address] = ("pending", "-")
        elif state.startswith("created"):
            self.recorded[address] = ("created", ids[-1] if ids and state.endswith("object") else "elsewhere")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, int]:
    world, serial = World(), iter(range(1, 10_000))
    each = st.tuples(st.integers(0, 3), st.sampled_from(STATE_SAYS))

    def suite(pool: str, key: str) -> Callable[[int], str]:
        def make(_: int) -> str:
            suite_id = f"s{next(serial)}"
            inputs = {"id": key, "text": "t"}
            world.objects["task_suites"].append({"id": suite_id, "pool_id": pool, "tasks": [{"input_values": inputs}]})
            return suite_id

        return make

    def task(name: str, project: int) -> Callable[[int], str]:
        def make(_: int) -> str:
            task_id = next(serial)
            world.objects["perftest_tasks"].append({"id": task_id, "name": name, "project_id": project})
            return str(task_id)

        return make

    for n in range(draw(st.integers(0, 6))):
        world.add(f"TaskSuiteSet/reviews/rv{n:06d}", *draw(each), suite("5001", f"rv{n:06d}"))
    for n in range(0, 2 * draw(st.integers(0, 4)), 2):
        world.add(f"TaskSuiteSet/photos/ph{n:06d}", *draw(each), suite("5002", f"ph{n:06d}"))
    tasks = draw(st.integers(0, 5))
    for n in range(tasks):
        world.add(f"PerfTestTask/chaos-{n:04d}", *draw(each), task(f"chaos-{n:04d}", 101 + n % 2))
    strays = draw(st.lists(st.sampled_from(["unknown pool", "wrong project", "unknown name"]), max_size=3))
    for stray in strays:
        if stray == "unknown pool":
            suite("9999", "rv000000")(0)
        else:
            task("chaos-0000" if stray == "wrong project" else "someone-elses", 103)(0)
    world.figures[3] = len(strays)
    return world, tasks


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(worlds())
def test_the_comparison_finds_every_duplicate_missing_mismatched_and_stray_object(made: tuple[World, int]) -> None:
    chaos = load_chaos()
    world, tasks = made
    remote, stray = chaos.attribute(world.objects, tasks=tasks)
    findings = chaos.compare(world.expected, remote, stray, world.recorded)
    assert [findings.duplicates, findings.missing, findings.mismatches, findings.unattributed] == world.figures
    assert findings.clean == (world.figures == [0, 0, 0, 0])


def test_state_list_output_is_read_as_address_status_and_remote_id() -> None:
    chaos = load_chaos()
    text = "PerfTestTask/chaos-0000\tcreated\t100001\nTaskSuiteSet/reviews/rv000001\tpending\t-\n"
    assert chaos.parse_state_list(text) == {
        "PerfTestTask/chaos-0000": ("created", "100001"),
        "TaskSuiteSet/reviews/rv000001": ("pending", "-"),
    }
