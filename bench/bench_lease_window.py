"""How long the window is between the state lock's lease check and the request's first byte on the socket.

A suspension that lands in that window, and lasts past the lock's TTL, is the one a woken apply cannot catch
(``docs/design.md``, "A holder that was suspended"). The check runs in ``HttpClient`` after the rate limiter;
this measures from the check's return to httpcore's first socket write, for create requests of one suite
(POST, the requests that matter) against the sandbox over a kept-alive connection, in one thread and with ten
threads sharing the client as apply's workers do.

    python bench/bench_lease_window.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpcore._backends.sync as sync_backend
from bench_apply import sandbox

from reconciler.providers.toloka import TolokaClient
from reconciler.sandbox import DEFAULT_TOLOKA_TOKEN

_checked = threading.local()
windows: list[float] = []
_original_write = sync_backend.SyncStream.write


def _guard() -> None:
    _checked.at = time.perf_counter()


def _timed_write(self: sync_backend.SyncStream, buffer: bytes, timeout: float | None = None) -> None:
    at = getattr(_checked, "at", None)
    if at is not None:
        windows.append(time.perf_counter() - at)
        _checked.at = None
    _original_write(self, buffer, timeout)


def _run(client: TolokaClient, requests: int, threads: int) -> list[float]:
    windows.clear()

    def one(_: int) -> None:
        suite = {"pool_id": "5001", "overlap": 1, "tasks": [{"input_values": {"text": uuid.uuid4().hex}}]}
        client.http.request("POST", "/task-suites", json=suite, idempotent=False)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests)))
    return sorted(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    sync_backend.SyncStream.write = _timed_write  # type: ignore[method-assign]
    with sandbox() as url:
        client = TolokaClient(name="toloka", endpoint=url, token=DEFAULT_TOLOKA_TOKEN, rate_limit=100000)
        client.http.send_guard = _guard
        with client:
            _run(client, 50, 1)  # connections opened, code warmed
            for threads in (1, 10):
                got = _run(client, args.requests, threads)
                micro = [w * 1e6 for w in got]
                print(
                    f"{threads:>2} thread(s), {len(micro)} creates: window median {statistics.median(micro):.0f} us, "
                    f"p99 {micro[int(len(micro) * 0.99)]:.0f} us, max {micro[-1]:.0f} us"
                )


if __name__ == "__main__":
    main()
