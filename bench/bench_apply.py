"""`reconciler apply` of 100,000 generated suites against the sandbox, next to a plain httpx loop.

The plain loop is the least a script could do: read the same JSONL, post the same batches of 5,000 in async
mode, and wait for every operation to finish; no state, no intents, no logs read. It runs the way a user would
run it, as a script in its own interpreter, since `reconciler apply` is timed as the command a user types
(start-up included); the same loop run inside this process is printed too. `reconciler apply` does the whole
job: load and validate the manifests, plan, commit an intent per batch, send, wait, read each operation's log
and commit every suite's id. Each run gets a fresh sandbox in its own process (so the server does not share
our interpreter's lock). Targets: apply at most 1.25x the plain loop, and under 60 s.

    python bench/bench_apply.py [--rows 100000] [--parallelism 10]
"""

from __future__ import annotations

import argparse
import compileall
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import plain_loop

import reconciler
from reconciler.sandbox import DEFAULT_TOLOKA_TOKEN

POOL = plain_loop.POOL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox(*options: str) -> Iterator[str]:
    """A fresh sandbox in its own process (so it does not share our interpreter's lock); ``options`` are more
    of `reconciler sandbox serve`'s."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "serve", "--port", str(port), "--auto-create"]
        + ["--suite-quota", "0", *options],
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


def plain_script(url: str, data: Path) -> float:
    start = time.perf_counter()
    script = Path(__file__).with_name("plain_loop.py")
    subprocess.run([sys.executable, str(script), url, str(data), DEFAULT_TOLOKA_TOKEN], check=True)
    return time.perf_counter() - start


def plain_inline(url: str, data: Path) -> float:
    start = time.perf_counter()
    plain_loop.run(url, data, DEFAULT_TOLOKA_TOKEN)
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


def measure(label: str, root: Path, rows: int, run: Callable[[str], float]) -> float:
    """One run against a fresh sandbox, printed with what the sandbox holds afterwards."""
    with sandbox() as url:
        generate(root, rows, url)
        elapsed = run(url)
        print(f"{label + ':':19} {elapsed:6.2f} s  ({rows / elapsed:8.0f} suites/s, {count_suites(url)} created)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (each runs all three); see the printed ratios")
    args = parser.parse_args()
    # Byte-compiled first, as `pip install` leaves a package: where PYTHONDONTWRITEBYTECODE is set (as on our CI
    # machines) every timed run would otherwise compile reconciler's modules again, which no user's run does.
    compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)
    times: dict[str, list[float]] = {"inline": [], "script": [], "apply": []}
    for round_number in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
            root, data = Path(tmp), Path(tmp) / "reviews.jsonl"
            runs: dict[str, tuple[str, Callable[[str], float]]] = {
                "inline": ("plain loop, inline", functools.partial(plain_inline, data=data)),
                "script": ("plain loop, script", functools.partial(plain_script, data=data)),
                "apply": (
                    "reconciler apply",
                    functools.partial(reconciler_apply, root=root, parallelism=args.parallelism),
                ),
            }
            # Every other round runs apply before the plain script, so a machine slowing down (or speeding up)
            # through a round favours neither.
            order = ["inline", "script", "apply"] if round_number % 2 == 0 else ["inline", "apply", "script"]
            for key in order:
                label, run = runs[key]
                times[key].append(measure(label, root, args.rows, run))
    inline, plain, ours = (statistics.median(times[k]) for k in ("inline", "script", "apply"))
    # A round runs apply and the plain script back to back, so its own ratio is the least disturbed by a machine
    # whose speed drifts between rounds (shared CI runners do); both summaries are printed.
    paired = [a / s for a, s in zip(times["apply"], times["script"], strict=True)]
    print(f"medians: inline {inline:.2f} s, script {plain:.2f} s, apply {ours:.2f} s")
    print(f"ratio apply/script: {ours / plain:6.2f}x of the medians, {statistics.median(paired):.2f}x median of the")
    print(f"                    rounds' own ({', '.join(f'{r:.2f}' for r in paired)})  (target <= 1.25x, and apply")
    print("                    under 60 s)")
    print(f"ratio apply/inline: {ours / inline:6.2f}x")


if __name__ == "__main__":
    main()
