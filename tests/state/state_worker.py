"""A separate process that uses a state, so tests can race it or SIGKILL it.

python state_worker.py race LOCATION      print "ready", wait for a line on stdin, try the lock, print
                                           "won LOCK_ID" or "lost HOLDER"
python state_worker.py intent LOCATION    record one intent, print its operation id, then wait to be killed
python state_worker.py churn LOCATION     record intents and their outcomes until killed, printing a line
                                           after each commit
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, for ``helpers``: this runs as a script

from helpers.state_builders import create, record  # noqa: E402

from reconciler.errors import StateLockedError  # noqa: E402
from reconciler.state import open_store  # noqa: E402


def main(command: str, location: str) -> None:
    store = open_store(location, workspace="default", root=Path.cwd())
    if command == "race":
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            info = store.acquire_lock(holder=f"worker pid {os.getpid()}", operation="race", ttl=30)
        except StateLockedError as e:
            print(f"lost {e.holder}", flush=True)
        else:
            print(f"won {info.lock_id}", flush=True)
    elif command == "intent":
        intent = record(store, "TaskSuite/a", "TaskSuite/b", "TaskSuite/c")
        print(intent.operation_id, flush=True)
        time.sleep(60)
    elif command == "churn":
        n = 0
        while True:
            create(store, *(f"TaskSuite/churn-{n}-{i}" for i in range(50)))
            n += 1
            print(n, flush=True)
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
