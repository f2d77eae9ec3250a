"""How long `reconciler plan` takes for 100,000 suites, and how much memory it needs.

Generates a TaskSuiteSet over a JSONL of N rows (one suite per row), then times the real command line twice:
against an empty state (100,000 creates) and against a state that holds every suite as created (no
changes). Prints wall time and the child's peak RSS for each. Target: under 10 s each, under 1 GiB.

    python bench/bench_plan.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler import manifest
from reconciler.state import open_store
from reconciler.state.base import Intent, Outcome, PendingResource, Status

PROVIDERS = """\
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {name: toloka}
spec:
  endpoint: https://toloka.dev
  credentials: {token_env: TOLOKA_API_KEY}
"""

SUITE_SET = """\
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata: {name: reviews}
spec:
  source: reviews.jsonl
  key: id
  input_fields: [text, product]
  template: {pool_id: "36502086", overlap: 3}
"""


def generate(root: Path, rows: int) -> None:
    (root / "providers.yaml").write_text(PROVIDERS)
    (root / "reviews.yaml").write_text(SUITE_SET)
    with (root / "reviews.jsonl").open("w") as out:
        for n in range(rows):
            row = {"id": f"r{n:07d}", "text": f"Review {n}: the battery lasts {n % 40} hours", "product": f"p{n % 97}"}
            out.write(json.dumps(row) + "\n")


def record_everything_as_created(root: Path, state: Path) -> None:
    desired = manifest.load([root])
    store = open_store(str(state), workspace="default", root=root)
    resources = list(desired.resources.values())
    try:
        for start in range(0, len(resources), 5000):
            chunk = resources[start : start + 5000]
            op = f"bench-{start}"
            store.record_intent(
                intent=Intent(op, "toloka", "toloka_batch", tuple(r.address for r in chunk), "bench"),
                resources=[PendingResource(r.address, r.kind, r.provider, r.spec, r.spec_hash, 0) for r in chunk],
            )
            store.record_outcomes(
                operation_id=op,
                outcomes=[Outcome(r.address, Status.CREATED, remote_id=f"id-{r.address}") for r in chunk],
                resolved=True,
            )
    finally:
        store.close()


def timed_plan(root: Path, state: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(root), "--state", str(state), "--detailed-exitcode"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 2):
        raise SystemExit(f"plan failed: {done.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak_kib, before) / 1024, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = Path(tmp) / "manifests"
        root.mkdir()
        generate(root, args.rows)
        state = Path(tmp) / "state.db"
        elapsed, peak, code = timed_plan(root, state)
        print(
            f"plan, empty state:        {elapsed:6.2f} s  peak RSS {peak:6.0f} MiB  ({args.rows} creates, exit {code})"
        )
        start = time.perf_counter()
        record_everything_as_created(root, state)
        print(f"(recording {args.rows} created resources took {time.perf_counter() - start:.2f} s)")
        elapsed, peak, code = timed_plan(root, state)
        print(f"plan, everything created: {elapsed:6.2f} s  peak RSS {peak:6.0f} MiB  (no changes, exit {code})")


if __name__ == "__main__":
    main()
