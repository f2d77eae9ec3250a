"""`reconciler apply` of 100,000 generated suites against the sandbox, next to a plain httpx loop.

The plain loop is the least a script could do: read the same JSONL, post the same batches of 5,000 in async
mode, and wait for every operation to finish; no state, no intents, no logs read. `reconciler apply` does the
whole job: load and validate the manifests, plan, commit an intent per batch, send, wait, read each operation's
log and commit every suite's id. Each run gets a fresh sandbox in its own process (so the server does not share
our interpreter's lock). Targets: apply at most 1.25x the plain loop, and under 60 s.

    python bench/bench_apply.py [--rows 100000] [--parallelism 10]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from reconciler.sandbox import DEFAULT_TOLOKA_TOKEN

POOL = "36502086"
BATCH = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", str(port), "--auto-create"]
        + ["--suite-quota", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sandbox/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("the sandbox did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def generate(root: Path, rows: int, url: str) -> None:
    (root / "providers.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TolokaProvider\nmetadata: {name: toloka}\n"
        f"spec: {{endpoint: '{url}', credentials: {{token_env: BENCH_TOLOKA_KEY}}, rate_limit: 250}}\n"
    )
    (root / "reviews.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata: {name: reviews}\n"
        f"spec: {{source: reviews.jsonl, key: id, template: {{pool_id: '{POOL}', overlap: 3}}}}\n"
    )
    with (root / "reviews.jsonl").open("w") as out:
        for n in range(rows):
            out.write(json.dumps({"id": f"r{n:07d}", "text": f"Review {n}: fine", "product": f"p{n % 97}"}) + "\n")


def plain_loop(url: str, data: Path) -> float:
    start = time.perf_counter()
    suites = []
    with data.open() as rows:
        for line in rows:
            row = json.loads(line)
            suites.append({"pool_id": POOL, "overlap": 3, "tasks": [{"input_values": row}]})
    headers = {"Authorization": f"ApiKey {DEFAULT_TOLOKA_TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        operations = []
        for first in range(0, len(suites), BATCH):
            op = str(uuid.uuid4())
            client.post(
                "/api/v1/task-suites",
                params={"async_mode": "true", "operation_id": op},
                json=suites[first : first + BATCH],
            ).raise_for_status()
            operations.append(op)
        for op in operations:
            while client.get(f"/api/v1/operations/{op}").json()["status"] not in ("SUCCESS", "FAIL"):
                time.sleep(0.05)
    return time.perf_counter() - start


def reconciler_apply(url: str, root: Path, parallelism: int) -> float:
    env = {**os.environ, "BENCH_TOLOKA_KEY": DEFAULT_TOLOKA_TOKEN}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(root), "--auto-approve", "--state", str(root / "s.db")]
        + ["--parallelism", str(parallelism)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"apply failed: {done.stderr[-2000:]}")
    return elapsed


def count_suites(url: str) -> int:
    return len(httpx.get(f"{url}/_sandbox/objects", timeout=120).json()["task_suites"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--parallelism", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        root = Path(tmp)
        with sandbox() as url:
            generate(root, args.rows, url)
            plain = plain_loop(url, root / "reviews.jsonl")
            print(
                f"plain httpx loop:   {plain:6.2f} s  ({args.rows / plain:8.0f} suites/s, {count_suites(url)} created)"
            )
        with sandbox() as url:
            generate(root, args.rows, url)
            ours = reconciler_apply(url, root, args.parallelism)
            print(f"reconciler apply:   {ours:6.2f} s  ({args.rows / ours:8.0f} suites/s, {count_suites(url)} created)")
        print(f"ratio apply/plain:  {ours / plain:6.2f}x  (target <= 1.25x, and apply under 60 s)")


if __name__ == "__main__":
    main()
