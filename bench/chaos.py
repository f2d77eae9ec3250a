"""Chaos: SIGKILL and SIGSTOP `reconciler apply` at random moments, restart the emulator, then count what broke.

Exactly-once is a claim about every moment at which a run can die, stall or lose its remote, so this harness
picks those moments at random, many times, over one growing project, then checks the whole world once:

- an emulator (`reconciler sandbox serve --data FILE`) with faults on (5xx, 429, errors after the work was
  done, lost acknowledgements, latency), its world kept in a file so that it survives being killed;
- a mixed workload: two TaskSuiteSets (JSONL, a suite a row; CSV, a suite per two rows) of thousands of rows,
  dozens of PerfTest tasks in two test projects, and small Toloka batches, so that there are many intents;
- rounds, each adding rows and tasks, then starting `reconciler apply` and doing one of (``--mix``):
  ``kill``     SIGKILL apply at a random moment of its expected run time;
  ``suspend``  SIGSTOP apply once it holds the state lock, at a random moment or (``--aimed``, half the
               time) before a PerfTest create whose intent is recorded; once the lock's TTL
               (``RECONCILER_LOCK_TTL``, ``--lock-ttl``) has passed, or after `state unlock` (``--takeover
               unlock``), start another apply that takes the lock over; SIGCONT the first while the second
               runs or after it ended, and wait for both;
  ``restart``  SIGKILL the emulator at a random moment and start it again on its data;
  ``calm``     let apply finish;
- with ``--lifecycle SHARE``, that share of the rounds (drawn from the seed) are lifecycle rounds too: before
  apply they give a third set (``labels``, ``--label-suites`` suites) a new template overlap, so every suite of
  it is an update, give ``--edit-tasks`` tasks a new ``case_id_list``, remove ``--remove`` review rows, photos
  suites, labels rows or tasks for good, and run every apply of the round (and the final ones) with
  ``--prune``; a lifecycle suspension may be aimed before an update, a deletion or a retirement instead;
- then faults off, a final apply (retried as a pipeline would, at most three times), one more that must find
  nothing to do, and the emulator's objects (`/_sandbox/objects`) against the state (`reconciler state list`):
  duplicates (remote objects beyond one per address), missing (addresses of the manifests with no remote
  object), mismatched ids (the state does not name the remote object), unattributed remote objects, field
  mismatches (an object's overlap or case_id_list is not the manifest's), removed addresses still live (a task
  not deleted, a suite not retired to overlap 0) and removed addresses still in the state.

Exit status 1 if any of those is not zero, 2 if the harness could not run. Every process it starts is
reaped before it returns, a stopped one SIGCONTed first, also on failure, Ctrl-C or SIGTERM.

    python bench/chaos.py [--rounds 40] [--seed N] [--mix kill=86,suspend=8,restart=4,calm=2]
                          [--at-least kills=200,suspensions=20] [--faults SPEC] [--lock-ttl 3]
                          [--takeover ttl|unlock] [--lifecycle 0.3] [--workdir DIR] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).parent))  # chaos_world beside it, also when loaded by file path
from chaos_world import (  # noqa: E402 - after the path it is found on
    PHOTOS_PER_SUITE,
    Children,
    Emulator,
    Findings,
    HarnessError,
    Workload,
    attribute,
    compare,
    parse_state_list,
    reconciler_command,
)

from reconciler.errors import StateError
from reconciler.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    DEFAULT_TOLOKA_TOKEN,
    FaultSpec,
    SandboxAdmin,
)
from reconciler.state import LockInfo, StateStore, open_store

T = TypeVar("T")
KINDS = ("kill", "suspend", "restart", "calm")
DEFAULT_MIX = "kill=86,suspend=8,restart=4,calm=2"
DEFAULT_FAULTS = "500=0.02,503=0.02,500_after=0.01,429=0.03,lost_ack=0.02,latency_ms=2-25"


@dataclass(frozen=True)
class Config:
    rounds: int
    at_least: dict[str, float]
    seed: int
    mix: dict[str, float]
    faults: str
    suites: int
    suites_per_round: int
    tasks: int
    tasks_per_round: float
    aimed: float
    suspend_tasks: int
    lifecycle: float
    label_suites: int
    edit_tasks: int
    remove: int
    batch_size: int
    lock_ttl: float
    takeover: str
    apply_timeout: float
    workdir: Path | None
    keep: bool
    as_json: bool


# --- the rounds ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    log: Path
    started: float

    def holds(self, lock: LockInfo | None) -> bool:
        return lock is not None and f" pid {self.process.pid} " in f"{lock.holder} "

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stopped(self) -> bool:
        """Whether the process is stopped (by a signal), as /proc reports it."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] == "T"


def _epoch(utc: str) -> float:
    return datetime.strptime(utc, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Harness:
    def __init__(self, config: Config, root: Path, children: Children) -> None:
        self.config, self.root, self.children = config, root, children
        self.schedule = random.Random(config.seed)  # the kinds of round: the same for a seed, whatever the timing
        self.rng = random.Random(config.seed + 1)
        self.counts: Counter[str] = Counter()
        self.exits: dict[str, Counter[str]] = {"apply": Counter(), "woken": Counter()}
        self.notes: list[str] = []
        self.emulator = Emulator(children, root, config.faults)
        labels = config.label_suites if config.lifecycle > 0 else 0
        self.workload = Workload(root, self.emulator.url, config.batch_size, labels)
        self.edits = random.Random(config.seed + 2)  # what lifecycle rounds edit and remove
        self.prune = False  # a lifecycle round: its applies run with --prune
        self.changes: dict[str, int] = {}  # what this lifecycle round asked of apply, by intent action
        self.state_file = root / "state.db"
        # seconds an undisturbed apply takes, learnt from the runs that end by themselves, for plain and
        # lifecycle rounds apart (those send their updates and deletions after the creates)
        self.expected = {False: 3.0, True: 3.0}
        self.open_intents: dict[str, str] = {}  # operation id -> action, of intents an interrupted run left open
        self._task_credit = 0.0
        self.env = {**os.environ, "NO_COLOR": "1", "RECONCILER_LOCK_TTL": f"{config.lock_ttl:g}"}
        self.env.update(CHAOS_CPTS_AK=DEFAULT_ACCESS_KEY, CHAOS_CPTS_SK=DEFAULT_SECRET_KEY)
        self.env["CHAOS_TOLOKA_KEY"] = DEFAULT_TOLOKA_TOKEN
        for name in ("RECONCILER_FAILPOINT", "RECONCILER_STATE", "RECONCILER_WORKSPACE"):
            self.env.pop(name, None)

    # one apply

    def start_apply(self, parallelism: int | None = None, failpoint: str = "") -> Run:
        self.counts["runs"] += 1
        log = self.root / "logs" / f"apply-{self.counts['runs']:04d}.log"
        args = reconciler_command("apply", "manifests", "--auto-approve", "--state", str(self.state_file))
        args += ["--parallelism", str(parallelism or self.rng.choice((2, 4, 8)))] + ["--prune"] * self.prune
        env = {**self.env, "RECONCILER_FAILPOINT": failpoint} if failpoint else self.env
        return Run(self.children.spawn(args, env=env, cwd=self.root, log=log), log, time.monotonic())

    def finish(self, run: Run, kind: str = "apply") -> int | None:
        status = self.children.reap(run.process, timeout=self.config.apply_timeout)
        self.exits[kind]["hung" if status is None else "killed" if status == -signal.SIGKILL else f"exit {status}"] += 1
        if status is None:
            self.notes.append(f"apply ran past {self.config.apply_timeout:g}s (stacks in {run.log})")
        text = run.text()
        self.counts["resolved"] += sum(int(n) for n in re.findall(r"(\d+) to resolve", text))
        if "stayed busy" in text:
            self.counts["blocked by the state file"] += 1
        for kind, done in re.findall(r"^  [~-] (\w+)/\S+: (updated in place|deleted)", text, re.MULTILINE):
            self.counts[f"{kind} {done}"] += 1  # what the runs say they updated, deleted or retired
        return status

    def running_after(self, run: Run, seconds: float, *, learn: bool = True) -> bool:
        """Sleep ``seconds`` unless the run ends first, then (``learn``) take its length as a sample of how long
        a run takes. A run that took a stopped one's lock over is no sample: it waited, or resolved more."""
        deadline = time.monotonic() + seconds
        while run.process.poll() is None:
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.005)
        if learn:
            self.expected[self.prune] = 0.7 * self.expected_run + 0.3 * (time.monotonic() - run.started)
        return False

    @property
    def expected_run(self) -> float:
        return self.expected[self.prune]

    def read_state(self, read: Callable[[StateStore], T]) -> T | None:
        """``read`` on the state opened read-only, as a run sees it now; None if there is no state (yet)."""
        try:
            store = open_store(str(self.state_file), workspace="default", root=self.root, read_only=True)
        except StateError:
            return None
        try:
            return read(store)
        except StateError:
            return None
        finally:
            store.close()

    def lock(self) -> LockInfo | None:
        return self.read_state(lambda store: store.current_lock())

    def lock_of(self, run: Run, timeout: float) -> LockInfo | None:
        """The state lock once ``run`` holds it; None if the run ends (or ``timeout`` passes) first."""
        deadline = time.monotonic() + timeout
        while run.process.poll() is None and time.monotonic() < deadline:
            if run.holds(held := self.lock()):
                return held
            time.sleep(0.02)
        return None

    # the rounds

    def round(self, kind: str, lifecycle: bool = False) -> None:
        """Grow the project and run the round; a lifecycle round first edits and removes what earlier rounds
        made (``Workload.lifecycle``), and its applies run with ``--prune``."""
        self._task_credit += self.config.tasks_per_round
        tasks, self._task_credit = int(self._task_credit), self._task_credit % 1
        reviews = self.rng.randint(0, self.config.suites_per_round)
        photos = (self.config.suites_per_round - reviews) // PHOTOS_PER_SUITE
        self.changes = {}
        if lifecycle:
            self.changes = self.workload.lifecycle(self.edits, self.config.edit_tasks, self.config.remove)
            self.counts.update({f"edited {k}": v for k, v in self.changes.items()})
        self.workload.grow(reviews, photos, tasks + (self.config.suspend_tasks if kind == "suspend" else 0))
        began, first, self.prune = time.monotonic(), self.counts["runs"] + 1, lifecycle
        getattr(self, f"{kind}_round")()
        self.counts[f"{kind} rounds"] += 1
        self.counts["lifecycle rounds"] += lifecycle
        for intent in self.read_state(lambda store: store.open_intents()) or []:
            self.open_intents[intent.operation_id] = intent.action
        entry = {"kind": kind, "seconds": round(time.monotonic() - began, 2), "runs": [first, self.counts["runs"]]}
        entry.update({"lifecycle": self.changes} if lifecycle else {})
        with (self.root / "logs" / "rounds.jsonl").open("a") as out:
            out.write(json.dumps(entry) + "\n")

    def calm_round(self) -> None:
        self.finish(run := self.start_apply())
        self.running_after(run, 0)

    def kill_round(self) -> None:
        run = self.start_apply()
        if self.running_after(run, self.rng.uniform(0, self.expected_run)):
            run.process.send_signal(signal.SIGKILL)
        self.counts["kills"] += self.finish(run) == -signal.SIGKILL  # not a run that was exiting anyway

    def restart_round(self) -> None:
        run = self.start_apply()
        self.running_after(run, self.rng.uniform(0, self.expected_run))
        self.emulator.kill()
        time.sleep(self.rng.uniform(0, 0.3))
        self.emulator.start(self.fault_seed())
        self.counts["restarts"] += 1
        self.finish(run)

    def suspend_round(self) -> None:
        """Some suspensions (``--aimed``) are aimed: apply stops itself before one of its first PerfTest creates,
        its intent recorded and the create not yet sent, where a woken run that still sent would make a second
        task (Toloka batches carry an operation id). The
        others fall at a random moment once the run holds its lock. Half of the woken runs wake while the run
        that took over runs, half after it ended (it resolved their intents, maybe by sending them again)."""
        aimed = self.rng.random() < self.config.aimed
        action, most = "perftest_create", 3
        if self.prune:  # or before an update or deletion this lifecycle round asked for, if there are any
            action = self.rng.choice(("perftest_create", *sorted(k for k, v in self.changes.items() if v)))
            most = min(3, self.changes.get(action, 3))
        # An aimed run sends one call at a time. A run stopped while another of its threads is between the lease
        # check and the socket write sends that call when it wakes (the window docs/design.md measures), and a
        # stop aimed at a send would fall in it far more often than a real suspension does.
        stop = f"before_send.{action}:{self.rng.randint(1, most)}:stop"
        first = self.start_apply(parallelism=1, failpoint=stop) if aimed else self.start_apply()
        held = self.lock_of(first, timeout=self.config.apply_timeout)
        if aimed:
            moment = self.until(first, self.config.apply_timeout, lambda: first.stopped())
        else:
            moment = self.running_after(first, self.rng.uniform(0, self.expected_run / 2))
        if held is None or not moment:
            self.counts["suspension missed (the run ended first)"] += 1
            self.finish(first)
            return
        if not aimed:
            first.process.send_signal(signal.SIGSTOP)
        if not first.holds(self.lock()):  # stopped after its work was done and its lock released
            os.kill(first.process.pid, signal.SIGCONT)
            self.counts["suspended too late"] += 1
            self.finish(first)
            return
        self.counts["suspensions"] += 1
        self.counts["suspensions aimed at a PerfTest create"] += aimed and action == "perftest_create"
        self.counts["suspensions aimed at an update or deletion"] += aimed and action != "perftest_create"
        wake_after_second = self.rng.random() < 0.5
        try:
            second = self.take_over(held)
            if self.lock_of(second, timeout=self.config.lock_ttl + 30) is not None:
                self.counts["takeovers"] += 1
                wait = self.config.apply_timeout if wake_after_second else self.rng.uniform(0, self.expected_run)
                self.running_after(second, wait, learn=False)
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        self.finish(second)
        if self.finish(first, "woken") != 0:
            woke = first.text()
            self.counts["woken: stopped sending"] += "sends nothing more" in woke
            self.counts["woken: refused to record"] += "records nothing more" in woke

    def until(self, run: Run, timeout: float, condition: Callable[[], bool]) -> bool:
        """Whether ``run`` still runs once ``condition`` holds; False if it ends (or ``timeout`` passes) first."""
        deadline = time.monotonic() + timeout
        while run.process.poll() is None and time.monotonic() < deadline:
            if condition():
                return run.process.poll() is None
            time.sleep(0.01)
        return False

    def take_over(self, held: LockInfo) -> Run:
        """Free the stopped run's lock as its TTL (or an operator) does, then start the run that takes it."""
        if self.config.takeover == "unlock":
            unlock = reconciler_command("state", "unlock", held.lock_id, "--state", str(self.state_file))
            subprocess.run(unlock, cwd=self.root, env=self.env, capture_output=True, timeout=60, check=False)
            return self.start_apply()
        if _epoch(held.expires_at) - time.time() > self.config.lock_ttl + 1:
            raise HarnessError(
                f"apply took a lock until {held.expires_at}, longer than RECONCILER_LOCK_TTL={self.config.lock_ttl:g}"
                "s: this reconciler ignores it; use --takeover unlock"
            )
        while (current := self.lock()) is not None and current.lock_id == held.lock_id:
            left = _epoch(current.expires_at) - time.time()
            if left < -0.05:
                break
            time.sleep(min(0.5, left + 0.06))
        return self.start_apply()

    def fault_seed(self) -> int:
        return self.config.seed * 1000 + self.emulator.starts

    # the end

    def final(self) -> tuple[dict[str, Any], Findings]:
        """Faults off; apply until it succeeds (at most three times); one more must change nothing; compare."""
        admin = SandboxAdmin(self.emulator.url, timeout=300)
        self.prune = self.config.lifecycle > 0
        try:
            admin.set_faults(None)
            for _ in range(3):
                if (status := self.finish(self.start_apply(parallelism=10))) == 0:
                    break
            again = self.start_apply(parallelism=10)
            converged = self.finish(again) == 0 and "No changes" in again.text()
            objects = admin.objects()
        finally:
            admin.close()
        listed = subprocess.run(
            reconciler_command("state", "list", "--state", str(self.state_file)),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if listed.returncode != 0:
            raise HarnessError(f"`reconciler state list` failed: {listed.stderr.strip()[-1500:]}")
        remote, stray = attribute(objects, self.workload.tasks)
        recorded = parse_state_list(listed.stdout)
        findings = compare(self.workload.expected(), remote, stray, recorded, self.workload.removed())
        final = {"final_apply_exit": status, "next_apply_found_nothing_to_do": converged}
        return final, findings

    def run(self) -> tuple[dict[str, Any], Findings]:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.workload.grow(self.config.suites // 2, self.config.suites // 2 // PHOTOS_PER_SUITE, self.config.tasks)
        self.emulator.start(self.fault_seed())
        kinds = [k for k in KINDS if self.config.mix.get(k, 0) > 0]
        for n in range(3 * self.config.rounds):
            short = any(self.counts[name] < least for name, least in self.config.at_least.items())
            if n >= self.config.rounds and not short:
                break
            kind = self.schedule.choices(kinds, [self.config.mix[k] for k in kinds])[0]
            self.round(kind, self.config.lifecycle > 0 and self.schedule.random() < self.config.lifecycle)
        return self.final()

    def figures(self, final: dict[str, Any], findings: Findings, wall: float) -> dict[str, Any]:
        c = self.counts
        return {
            "seed": self.config.seed,
            "rounds": sum(c[f"{k} rounds"] for k in KINDS),
            "rounds_by_kind": {k: c[f"{k} rounds"] for k in KINDS if c[f"{k} rounds"]},
            "kills": c["kills"],
            "suspensions": c["suspensions"],
            "takeovers": c["takeovers"],
            "suspensions_aimed_at_a_perftest_create": c["suspensions aimed at a PerfTest create"],
            "suspensions_aimed_at_an_update_or_deletion": c["suspensions aimed at an update or deletion"],
            "suspended_too_late": c["suspended too late"],
            "suspension_missed": c["suspension missed (the run ended first)"],
            "emulator_restarts": c["restarts"],
            "duplicates": findings.duplicates,
            "missing": findings.missing,
            "mismatches": findings.mismatches,
            "unattributed": findings.unattributed,
            "field_mismatches": findings.field_mismatches,
            "removed_but_live": findings.not_removed,
            "removed_but_in_the_state": findings.still_in_state,
            **final,
            "wall_seconds": round(wall, 1),
            "workload": {"suites": self.workload.suites, "tasks": len(self.workload.live("tasks"))},
            "lifecycle_rounds": c["lifecycle rounds"],
            "edited_in_place": {"suite overlaps": c["edited toloka_patch"], "task cases": c["edited perftest_update"]},
            "removed": {"suites": c["edited toloka_retire"], "tasks": c["edited perftest_delete"]},
            "updated_by_runs": {
                "suites": c["TaskSuiteSet updated in place"],
                "tasks": c["PerfTestTask updated in place"],
            },
            "retired_or_deleted_by_runs": {"suites": c["TaskSuiteSet deleted"], "tasks": c["PerfTestTask deleted"]},
            "removed_found_retired_or_deleted": {"suites": findings.retired, "tasks": findings.deleted},
            "intents_left_open_by_action": dict(sorted(Counter(self.open_intents.values()).items())),
            "takeover_by": self.config.takeover,
            "open_addresses_found_by_later_runs": c["resolved"],
            "apply_exits": dict(self.exits["apply"]),
            "woken_holders_exits": dict(self.exits["woken"]),
            "woken_holders_that_stopped_sending": c["woken: stopped sending"],
            "woken_holders_refused_a_write": c["woken: refused to record"],
            "runs_blocked_by_a_stopped_ones_state_file": c["blocked by the state file"],
        }


def report(figures: dict[str, Any], notes: list[str], findings: Findings) -> list[str]:
    lines = [f"{name.replace('_', ' '):>42}: {value}" for name, value in figures.items()]
    return lines + [f"note: {note}" for note in notes[:10]] + findings.examples[:20]


# --- the command line ------------------------------------------------------------------------------------------


def _pairs(text: str, names: Sequence[str]) -> dict[str, float]:
    try:
        pairs = {name: float(value) for name, _, value in (i.partition("=") for i in text.split(",") if i.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=NUMBER items") from None
    if not set(pairs) <= set(names):
        raise argparse.ArgumentTypeError(f"{text!r}: the names are {', '.join(names)}")
    return pairs


def parse_mix(text: str) -> dict[str, float]:
    mix = _pairs(text, KINDS)
    if not any(w > 0 for w in mix.values()):
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one kind of round a weight above 0")
    return mix


def parse_at_least(text: str) -> dict[str, float]:
    return _pairs(text, ("kills", "suspensions", "takeovers", "restarts"))


def parse_faults(text: str) -> str:
    """The spec without a seed: each emulator start gets its own (``Emulator.start``)."""
    kept = ",".join(i for i in text.split(",") if i.strip() and not i.strip().startswith("seed"))
    try:
        FaultSpec.parse(kept)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return kept


def parse_args(argv: Sequence[str]) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add("--rounds", type=int, default=40)
    add(
        "--at-least", type=parse_at_least, default={}, help="more rounds (up to 3x) until e.g. kills=200,suspensions=20"
    )
    add("--seed", type=int, default=None, help="default: a random one (printed)")
    add("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help=f"weights of the kinds of round ({DEFAULT_MIX})")
    add("--faults", type=parse_faults, default=DEFAULT_FAULTS, help=f"the emulator's --faults ({DEFAULT_FAULTS})")
    add("--suites", type=int, default=2000, help="suites before the first round (2000)")
    add("--suites-per-round", type=int, default=20, help="suites each round adds (20)")
    add("--tasks", type=int, default=24, help="PerfTest tasks before the first round (24)")
    add("--tasks-per-round", type=float, default=0.1, help="PerfTest tasks each round adds (0.1)")
    add("--aimed", type=float, default=0.5, help="the share of suspensions aimed before a send (0.5)")
    add("--suspend-tasks", type=int, default=8, help="more tasks a suspension round adds (8)")
    add("--lifecycle", type=float, default=0.0, help="the share of rounds that edit and remove, then --prune (0)")
    add("--label-suites", type=int, default=60, help="suites of the labels set, with --lifecycle (60)")
    add("--edit-tasks", type=int, default=3, help="tasks a lifecycle round gives new case lists (3)")
    add("--remove", type=int, default=4, help="suites or tasks a lifecycle round removes (4)")
    add("--batch-size", type=int, default=20, help="Toloka suites per batch, i.e. per intent (20)")
    add("--lock-ttl", type=float, default=3.0, help="RECONCILER_LOCK_TTL for every apply, in seconds (3)")
    add("--takeover", choices=("ttl", "unlock"), default="ttl", help="how a suspended run loses its lock (ttl)")
    add("--apply-timeout", type=float, default=120.0, help="seconds after which a run counts as hung (120)")
    add("--workdir", type=Path, default=None, help="where the project lives (default: a temporary folder)")
    add("--keep", action="store_true", help="keep the workdir (always kept after a finding)")
    add("--json", dest="as_json", action="store_true", help="end with the figures as one JSON line")
    args = vars(p.parse_args(argv))
    if args["seed"] is None:
        args["seed"] = random.SystemRandom().randrange(1_000_000)
    return Config(**args)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    root = config.workdir or Path(tempfile.mkdtemp(prefix="chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    children = Children()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    start = time.monotonic()
    try:
        harness = Harness(config, root, children)
        final, findings = harness.run()
    except HarnessError as e:
        print(f"chaos: {e} (seed {config.seed}, files in {root})", file=sys.stderr)
        return 2
    finally:
        children.stop_all()
        signal.signal(signal.SIGTERM, previous)
    figures = harness.figures(final, findings, time.monotonic() - start)
    print("\n".join(report(figures, harness.notes, findings)))
    if config.keep or not findings.clean:
        print(f"files (manifests, state, emulator data, logs): {root}")
    elif config.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    if config.as_json:
        print(json.dumps(figures))
    return 0 if findings.clean else 1


if __name__ == "__main__":
    sys.exit(main())
