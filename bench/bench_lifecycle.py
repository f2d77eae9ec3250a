"""Changing and retiring 10,000 Toloka suites: `reconciler apply` of an overlap edited in a TaskSuiteSet, then
`reconciler apply --prune` of the set cut down to one row, against the sandbox in its own process, with the
requests it served counted.

Toloka has no batch patch and no delete: an update in place is one ``PATCH /task-suites/{id}`` per suite, and
a retirement one ``PATCH .../set-overlap-or-min`` to 0 per suite. So both take at least suites / rate_limit
seconds whatever reconciler does; the bench prints each time next to that bound and their ratio, and checks
that the sandbox holds what it should afterwards (same ids, overlap changed; retired suites at 0 and gone from
the state). The Toloka provider's ``rate_limit`` defaults here to the provider's own default (100 a second);
the sandbox allows ``--toloka-rps`` (300 by default), so a higher ``--rate-limit`` needs a matching one.

    python bench/bench_lifecycle.py [--rows 10000] [--rate-limit 100] [--toloka-rps 300] [--parallelism 16]
                                    [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path

import bench_apply
import httpx
from bench_refresh import measure, run

POOL = "7001"
PATCH = "PATCH /api/v1/task-suites/{suite_id}"
RETIRE = "PATCH /api/v1/task-suites/{suite_id}/set-overlap-or-min"


def sandbox(toloka_rps: float) -> AbstractContextManager[str]:
    return bench_apply.sandbox("--toloka-rps", str(toloka_rps))


def generate(root: Path, url: str, *, rows: int, rate_limit: float, overlap: int) -> None:
    manifests = root / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "providers.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TolokaProvider\nmetadata: {name: toloka}\n"
        f"spec: {{endpoint: '{url}', credentials: {{token_env: BENCH_TOLOKA_KEY}}, rate_limit: {rate_limit:g}}}\n"
    )
    (manifests / "lifecycle.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata: {name: lifecycle}\n"
        f"spec: {{source: lifecycle.jsonl, key: id, template: {{pool_id: '{POOL}', overlap: {overlap}}}}}\n"
    )
    with (manifests / "lifecycle.jsonl").open("w") as out:
        for n in range(rows):
            out.write(json.dumps({"id": f"s{n:06d}", "text": f"item {n}"}) + "\n")


def overlaps(url: str) -> dict[str, int]:
    """Every suite of the pool in the sandbox: id -> overlap."""
    found = httpx.get(f"{url}/_sandbox/objects", timeout=120).json()["task_suites"]
    return {str(suite["id"]): int(suite["overlap"]) for suite in found if str(suite["pool_id"]) == POOL}


def throttled(url: str) -> int:
    """The requests the sandbox has answered 429 so far (each is sent again, and counted again)."""
    return int(httpx.get(f"{url}/_sandbox/stats", timeout=30).json()["throttled"])


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"verification failed: {what}")


def one_round(args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """Setup, update and retirement on a fresh sandbox and project: each measure's seconds and requests."""
    apply = ["apply", "manifests", "--auto-approve", "--parallelism", str(args.parallelism)]
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp, sandbox(args.toloka_rps) as url:
        root = Path(tmp)
        generate(root, url, rows=args.rows, rate_limit=args.rate_limit, overlap=3)
        seconds, _ = measure(root, url, apply, 0)
        print(f"  setup: created {args.rows:,} suites in {seconds:.1f} s")
        created = overlaps(url)
        check(len(created) == args.rows and set(created.values()) == {3}, "setup did not create every suite")

        generate(root, url, rows=args.rows, rate_limit=args.rate_limit, overlap=4)
        before = throttled(url)
        update, counts = measure(root, url, apply, 0)
        print(f"  update: {update:.1f} s, requests {counts}, {throttled(url) - before} answered 429")
        check(overlaps(url) == dict.fromkeys(created, 4), "not every suite has overlap 4 under its old id")
        _, done = run(root, "plan", "manifests", "--detailed-exitcode")
        check(done.returncode == 0, f"plan after the update exited {done.returncode}:\n{done.stdout[-2000:]}")
        figures = {"update": (update, counts.get(PATCH, 0))}

        data = root / "manifests" / "lifecycle.jsonl"
        data.write_text(data.read_text().splitlines(keepends=True)[0])
        before = throttled(url)
        retire, counts = measure(root, url, [*apply, "--prune"], 0)
        print(f"  retirement: {retire:.1f} s, requests {counts}, {throttled(url) - before} answered 429")
        now = overlaps(url)
        kept = [suite for suite, overlap in now.items() if overlap == 4]
        check(len(kept) == 1 and set(now) == set(created), "one suite should keep overlap 4, under the same ids")
        check(all(overlap == 0 for suite, overlap in now.items() if suite not in kept), "a removed suite is live")
        _, done = run(root, "state", "list", "--manifests", "manifests")
        listed = [line for line in done.stdout.splitlines() if "TaskSuite" in line]
        check(done.returncode == 0 and len(listed) == 1, f"the state lists {len(listed)} suites, not 1")
        figures["retirement"] = (retire, counts.get(RETIRE, 0))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="suites in the set (one row each)")
    parser.add_argument("--rate-limit", type=float, default=100.0, help="the Toloka provider's rate_limit")
    parser.add_argument("--toloka-rps", type=float, default=300.0, help="the sandbox's Toloka requests/s")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="rounds, each on a fresh sandbox and project")
    args = parser.parse_args()
    rounds = []
    for number in range(args.repeat):
        print(f"round {number + 1} of {args.repeat}:")
        rounds.append(one_round(args))
    for label in ("update", "retirement"):
        times = [figures[label][0] for figures in rounds]
        sent = statistics.median(figures[label][1] for figures in rounds)
        bound = sent / args.rate_limit
        median = statistics.median(times)
        print(
            f"{label:>10}: median {median:.1f} s (runs: {', '.join(f'{t:.1f}' for t in times)}); "
            f"{sent:,.0f} requests, rate-limit bound {bound:.1f} s at {args.rate_limit:g}/s, "
            f"ratio {median / bound:.2f}"
        )


if __name__ == "__main__":
    main()
