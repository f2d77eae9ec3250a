"""What each speed trick of reconciler saves, next to the plain code it replaces, for 100,000 suites.

Each trick runs on `plan`'s path; the saving printed here, set against `bench_plan.py`'s figure for the whole
command, is what decides whether it stays (at least 5%; see docs/performance.md):

- ``SpecHasher.of_plain_row`` against ``content_hash`` of the whole spec (the spec hash of a one-row suite);
- ``cycle_collection_paused`` around loading the manifests and around planning, against the collector left on.

    python bench/bench_speedups.py [--rows 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import reconciler.manifest
import reconciler.planner
from reconciler.encoding import SpecHasher, content_hash
from reconciler.planner import make_plan

sys.path.insert(0, str(Path(__file__).parent))
import bench_plan  # noqa: E402

BASE = {"pool_id": "12345", "overlap": 3}
OPTIONS = {"allow_defaults": True, "open_pool": False}


def timed(fn: Callable[[], object], rounds: int) -> float:
    """The median of ``rounds`` runs, each after a full collection."""
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(what: str, trick: float, plain: float) -> None:
    print(f"{what:<42} trick {trick:6.3f} s   plain {plain:6.3f} s   saves {plain - trick:6.3f} s")


def spec_hash(rows: int, rounds: int) -> None:
    data = [{"id": f"r{i}", "text": f"review number {i}", "stars": i % 5, "ok": True} for i in range(rows)]
    hasher = SpecHasher({**BASE, "options": OPTIONS})

    def plain() -> object:
        return [content_hash({**BASE, "options": OPTIONS, "tasks": [{"input_values": row}]}) for row in data]

    report(
        "spec hash of a one-row suite",
        timed(lambda: [hasher.of_plain_row(row) for row in data], rounds),
        timed(plain, rounds),
    )


def cycle_collection(rows: int, rounds: int) -> None:
    """Load and plan with the collector paused as shipped, then with the pause made a no-op."""
    with tempfile.TemporaryDirectory(prefix="bench-speedups-") as tmp:
        root = Path(tmp)
        bench_plan.generate(root, rows)

        def load() -> object:
            return reconciler.manifest.load([root])

        desired = reconciler.manifest.load([root])

        def plan() -> object:
            return make_plan(
                desired=desired.resources,
                providers=desired.providers,
                recorded=[],
                load_specs=lambda addresses: {},
                lineage="l",
                serial=0,
                workspace="default",
                manifest_digest=desired.digest,
            )

        paused = timed(load, rounds), timed(plan, rounds)
        shipped = reconciler.manifest.cycle_collection_paused, reconciler.planner.cycle_collection_paused
        reconciler.manifest.cycle_collection_paused = contextlib.nullcontext  # type: ignore[assignment]
        reconciler.planner.cycle_collection_paused = contextlib.nullcontext  # type: ignore[assignment]
        try:
            running = timed(load, rounds), timed(plan, rounds)
        finally:
            reconciler.manifest.cycle_collection_paused, reconciler.planner.cycle_collection_paused = shipped
    report("collector paused: loading the manifests", paused[0], running[0])
    report("collector paused: planning (all creates)", paused[1], running[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    spec_hash(args.rows, args.rounds)
    cycle_collection(args.rows, args.rounds)


if __name__ == "__main__":
    main()
