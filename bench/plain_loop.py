"""The least a script could do to create a JSONL file's suites on Toloka: no state, no intents, no logs read.

bench_apply.py times it twice: imported and run inside its own process, and run as a script in a fresh
interpreter (start-up and httpx's import included), the way `reconciler apply` is timed.

    python bench/plain_loop.py URL DATA.jsonl TOKEN
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import httpx

POOL = "36502086"
BATCH = 5000


def run(url: str, data: Path, token: str) -> None:
    suites = []
    with data.open() as rows:
        for line in rows:
            row = json.loads(line)
            suites.append({"pool_id": POOL, "overlap": 3, "tasks": [{"input_values": row}]})
    headers = {"Authorization": f"ApiKey {token}"}
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


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
