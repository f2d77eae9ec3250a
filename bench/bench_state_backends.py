"""The state in SQLite and in PostgreSQL, side by side in one run: `reconciler apply` of 100,000 suites against
the sandbox, then a no-op `reconciler plan` of the same manifests against the full state, for each backend,
interleaved round by round (SQLite first in even rounds, PostgreSQL first in odd ones).

Each round gets a fresh sandbox, a fresh SQLite file and a fresh PostgreSQL schema (dropped afterwards).
Targets (issue 13): apply with PostgreSQL at most 1.3x SQLite's time; a no-op plan of 100,000 suites under
3 s on each.

    python bench/bench_state_backends.py [--rows 100000] [--repeat 3] [--server postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from bench_apply import generate, sandbox

import reconciler
from reconciler.sandbox import DEFAULT_TOLOKA_TOKEN


def timed(args: list[str], state: str) -> float:
    env = {**os.environ, "BENCH_TOLOKA_KEY": DEFAULT_TOLOKA_TOKEN, "RECONCILER_STATE": state}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {done.stderr[-2000:]}")
    if args[0] == "plan" and "No changes" not in done.stdout:
        raise SystemExit(f"the plan against the full state is not empty: {done.stdout[-500:]}")
    return elapsed


def one_round(backend: str, rows: int, server: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp, sandbox() as url:
        root = Path(tmp)
        generate(root, rows, url)
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        state = str(root / "state.db") if backend == "sqlite" else f"{server}?schema={schema}"
        try:
            applied = timed(["apply", str(root), "--auto-approve"], state)
            planned = timed(["plan", str(root)], state)
        finally:
            if backend == "postgresql":
                with psycopg.connect(server, autocommit=True) as admin:
                    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"{backend:10}  apply {applied:6.2f} s   no-op plan {planned:5.2f} s", flush=True)
    return applied, planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)
    times: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
    for n in range(args.repeat):
        order = ["sqlite", "postgresql"] if n % 2 == 0 else ["postgresql", "sqlite"]
        for backend in order:
            times[backend].append(one_round(backend, args.rows, args.server))
    apply = {b: statistics.median(a for a, _ in t) for b, t in times.items()}
    plan = {b: statistics.median(p for _, p in t) for b, t in times.items()}
    print(
        f"medians: apply SQLite {apply['sqlite']:.2f} s, PostgreSQL {apply['postgresql']:.2f} s "
        f"({apply['postgresql'] / apply['sqlite']:.2f}x; target <= 1.3x)"
    )
    print(f"         no-op plan SQLite {plan['sqlite']:.2f} s, PostgreSQL {plan['postgresql']:.2f} s (target < 3 s)")


if __name__ == "__main__":
    main()
