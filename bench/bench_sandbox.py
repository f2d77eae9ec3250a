"""How fast the sandbox is: Toloka suites/s through async batches, and signed PerfTest creates/s.

    .venv/bin/python bench/bench_sandbox.py [--suites 100000] [--batch 5000] [--submitters 4]
                                           [--tasks 5000] [--threads 10] [--in-process] [--data FILE]

By default the sandbox runs as its own process (``python -m reconciler.sandbox serve``), as a remote API would:
in one process the clients' threads and the server would share one GIL and each figure would measure both.
Rate limits and the suite quota are turned off; request bodies are serialised before the clock starts, but
every PerfTest request is signed inside the timed loop, as a real client signs it.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.providers import signing  # noqa: E402
from reconciler.sandbox import (  # noqa: E402
    DEFAULT_ACCESS_KEY,
    DEFAULT_CLOUD_PROJECT_ID,
    DEFAULT_SECRET_KEY,
    DEFAULT_TOLOKA_TOKEN,
    SandboxServer,
)


@contextmanager
def sandbox(in_process: bool, data: Path | None) -> Iterator[str]:
    if in_process:
        server = SandboxServer(
            data_path=data,
            auto_create=True,
            toloka_requests_per_second=None,
            perftest_requests_per_second=None,
            suites_per_minute=None,
        )
        with server:
            yield server.url
        return
    command = [sys.executable, "-m", "reconciler.sandbox", "serve", "--port", "0", "--auto-create"]
    command += ["--toloka-rps", "0", "--perftest-rps", "0", "--suite-quota", "0"]
    if data is not None:
        command += ["--data", str(data)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("sandbox listening on "):
            raise SystemExit(f"the sandbox did not start: {line!r}")
        yield line.split()[3]
    finally:
        process.terminate()
        process.wait(timeout=10)


def bench_suites(url: str, total: int, batch: int, submitters: int) -> float:
    """Suites per second from the first POST until every operation reports SUCCESS."""
    headers = {"Authorization": f"ApiKey {DEFAULT_TOLOKA_TOKEN}", "Content-Type": "application/json"}
    bodies = []
    for start in range(0, total, batch):
        suites = [
            {
                "pool_id": "777",
                "overlap": 1,
                "tasks": [{"input_values": {"text": f"item {i}", "n": i}}],
                "__item_idx": str(i),
            }
            for i in range(start, min(start + batch, total))
        ]
        bodies.append((str(uuid.uuid4()), json.dumps(suites).encode()))

    def run(chunk: list[tuple[str, bytes]]) -> int:
        created = 0
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            pending = []
            for operation_id, body in chunk:
                params = {"async_mode": "true", "operation_id": operation_id}
                answer = http.post("/api/v1/task-suites", content=body, params=params)
                answer.raise_for_status()
                pending.append(operation_id)
            for operation_id in pending:
                while True:
                    operation = http.get(f"/api/v1/operations/{operation_id}").json()
                    if operation["status"] == "SUCCESS":
                        created += operation["details"]["success_count"]
                        break
                    if operation["status"] == "FAIL":
                        raise SystemExit(f"operation {operation_id} failed")
                    time.sleep(0.005)
        return created

    chunks = [bodies[i::submitters] for i in range(submitters)]
    started = time.perf_counter()
    with ThreadPoolExecutor(submitters) as pool:
        created = sum(pool.map(run, chunks))
    elapsed = time.perf_counter() - started
    if created != total:
        raise SystemExit(f"expected {total} suites, the operations report {created}")
    return total / elapsed


def bench_tasks(url: str, total: int, threads: int) -> float:
    """Signed ``POST /v3/{project_id}/tasks`` per second with ``threads`` concurrent keep-alive clients.

    The clients use ``http.client``: httpx costs the client process more CPU per request than the sandbox
    spends answering it, and on two cores that would measure the client, not the sandbox.
    """
    parts = httpx.URL(url)
    host = parts.netloc.decode()
    path = f"/v3/{DEFAULT_CLOUD_PROJECT_ID}/tasks"
    target = f"{url}{path}"
    counter = iter(range(total))
    lock = threading.Lock()

    def run() -> int:
        done = 0
        connection = http.client.HTTPConnection(parts.host, parts.port, timeout=30)
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return done
                body = json.dumps(
                    {"name": f"bench-{n}", "parallel": True, "project_id": 1, "operate_mode": 2, "case_id_list": [1]}
                ).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Host": host,
                    "X-Sdk-Date": time.strftime(signing.DATE_FORMAT, time.gmtime()),
                    "X-Project-Id": DEFAULT_CLOUD_PROJECT_ID,
                }
                headers["Authorization"] = signing.sign(
                    method="POST",
                    url=target,
                    headers=headers,
                    body=body,
                    access_key=DEFAULT_ACCESS_KEY,
                    secret_key=DEFAULT_SECRET_KEY,
                )
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                if answer.status != 201:
                    raise SystemExit(f"create failed: {answer.status} {content[:200]!r}")
                done += 1
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        created = sum(pool.map(lambda _: run(), range(threads)))
    elapsed = time.perf_counter() - started
    assert created == total
    return total / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--submitters", type=int, default=4, help="concurrent clients submitting batches")
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--in-process", action="store_true", help="run the sandbox in this process")
    parser.add_argument("--data", type=Path, help="keep the world in this SQLite file (default: memory)")
    args = parser.parse_args()
    where = "in-process" if args.in_process else "separate process"
    where += f", data in {args.data}" if args.data else ", in memory"
    parser_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if args.data is not None and args.data.exists():
        args.data.unlink()
    with sandbox(args.in_process, args.data) as url:
        print(f"sandbox ({where}, uvicorn with {parser_impl}) at {url}")
        for submitters in sorted({1, args.submitters}):
            rate = bench_suites(url, args.suites, args.batch, submitters)
            label = f"{args.suites} suites in async batches of {args.batch}, {submitters} submitter(s)"
            print(f"toloka: {label}: {rate:,.0f} suites/s")
        rate = bench_tasks(url, args.tasks, args.threads)
        print(f"perftest: {args.tasks} signed creates with {args.threads} client threads: {rate:,.0f} creates/s")


if __name__ == "__main__":
    main()
