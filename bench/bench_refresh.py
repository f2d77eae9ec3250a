"""Reading back a large project: `reconciler drift` and `reconciler state refresh` over 100,000 suites in 20
pools and 1,000 PerfTest tasks, against the sandbox in its own process, with the requests it served counted.

Toloka suites are read by a paged listing per pool (never a request per suite), so the listing requests must
stay within suites / page size + pools + a small constant; PerfTest tasks are read one ``GET`` each, in
parallel, within the provider's rate limit (set here to the API's documented 200 calls a second, which makes
1,000 tasks take at least 5 s; the provider's default of 50 would make it 20 s). Target: under 10 s on 2 cores.

    python bench/bench_refresh.py [--suites 100000] [--pools 20] [--tasks 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_apply import sandbox

from reconciler.providers.toloka_listing import PAGE_SIZE
from reconciler.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_CLOUD_PROJECT_ID, DEFAULT_SECRET_KEY, DEFAULT_TOLOKA_TOKEN

LISTING = "GET /api/v1/task-suites"
TASK_READ = "GET /v1/{project_id}/tasks/{task_id}"


def generate(root: Path, url: str, *, suites: int, pools: int, tasks: int) -> None:
    manifests = root / "manifests"
    (manifests / "data").mkdir(parents=True)
    (manifests / "providers.yaml").write_text(
        f"""\
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {{name: toloka}}
spec: {{endpoint: '{url}', credentials: {{token_env: BENCH_TOLOKA_KEY}}, rate_limit: 250}}
---
apiVersion: reconciler/v1
kind: PerfTestProvider
metadata: {{name: perftest}}
spec:
  endpoint: '{url}'
  region: cn-north-4
  cloud_project_id: {DEFAULT_CLOUD_PROJECT_ID}
  credentials: {{access_key_env: BENCH_AK, secret_key_env: BENCH_SK}}
  rate_limit: 200
"""
    )
    per_pool = suites // pools
    for p in range(pools):
        pool = str(7001 + p)
        (manifests / f"pool-{pool}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata: {{name: pool-{pool}}}\n"
            f"spec: {{source: data/pool-{pool}.jsonl, key: id, template: {{pool_id: '{pool}', overlap: 3}}}}\n"
        )
        with (manifests / "data" / f"pool-{pool}.jsonl").open("w") as out:
            for n in range(per_pool):
                out.write(json.dumps({"id": f"p{p}-{n:06d}", "text": f"item {n} of pool {pool}"}) + "\n")
    docs = [
        f"apiVersion: reconciler/v1\nkind: PerfTestTask\nmetadata: {{name: load-{n:04d}}}\n"
        f"spec: {{project_id: {101 + n % 10}, parallel: true, case_id_list: [{n + 1}]}}\n"
        for n in range(tasks)
    ]
    (manifests / "tasks.yaml").write_text("---\n".join(docs))


def run(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {
        **os.environ,
        "BENCH_TOLOKA_KEY": DEFAULT_TOLOKA_TOKEN,
        "BENCH_AK": DEFAULT_ACCESS_KEY,
        "BENCH_SK": DEFAULT_SECRET_KEY,
        "RECONCILER_STATE": str(root / "state") + "/",
    }
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - began, done


def requests(url: str) -> dict[str, int]:
    routes: dict[str, dict[str, int]] = httpx.get(f"{url}/_sandbox/stats", timeout=30).json()["routes"]
    return {route: sum(counts.values()) for route, counts in routes.items()}


def served(url: str, before: dict[str, int]) -> dict[str, int]:
    after = requests(url)
    return {route: n - before.get(route, 0) for route, n in after.items() if n - before.get(route, 0)}


def measure(root: Path, url: str, args: list[str], expect: int) -> tuple[float, dict[str, int]]:
    before = requests(url)
    seconds, done = run(root, *args)
    if done.returncode != expect:
        raise SystemExit(f"`reconciler {' '.join(args)}` exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr}")
    return seconds, served(url, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", type=int, default=100_000)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp, sandbox() as url:
        root = Path(tmp)
        generate(root, url, suites=args.suites, pools=args.pools, tasks=args.tasks)
        seconds, done = run(root, "apply", "manifests", "--auto-approve", "--parallelism", "16")
        if done.returncode != 0:
            raise SystemExit(f"apply failed:\n{done.stdout[-2000:]}{done.stderr}")
        print(
            f"setup: applied {args.suites:,} suites in {args.pools} pools and {args.tasks:,} tasks in {seconds:.1f} s"
        )
        figures: dict[str, Any] = {}
        for label, command in (
            ("drift", ["drift", "manifests", "--json"]),
            ("state refresh", ["state", "refresh", "manifests"]),
        ):
            times, counts = [], {}
            for _ in range(args.repeat):
                took, counts = measure(root, url, command, 0)
                times.append(took)
            figures[label] = (times, counts)
        bound = args.suites // PAGE_SIZE + args.pools + 5
        for label, (times, counts) in figures.items():
            listing, reads = counts.get(LISTING, 0), counts.get(TASK_READ, 0)
            print(
                f"{label:>14}: median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}); "
                f"{listing} suite listing requests (bound {bound}), {reads} task reads, {sum(counts.values())} in all"
            )
            if listing > bound:
                raise SystemExit(f"{label} sent {listing} listing requests, more than {bound}")


if __name__ == "__main__":
    main()
