"""toloka-kit 1.2.3 and refresh read a pool the same way: the same suites, in the same order, page for page."""

from __future__ import annotations

from typing import Any

from reconciler.providers import TolokaClient

LISTING = "GET /api/v1/task-suites"
POOL = "4343"
KIT = """
import json, sys
import toloka.client as toloka

args = json.load(sys.stdin)
client = toloka.TolokaClient(args["token"], url=args["url"], retries=0)
print(json.dumps([s.id for s in client.get_task_suites(pool_id=args["pool"], batch_size=args["batch_size"])]))
"""


def listing_requests(sandbox: Any) -> int:
    return sum(sandbox.stats()["routes"].get(LISTING, {}).values())


def test_refresh_lists_a_pool_as_toloka_kit_does_page_for_page(sandbox: Any, official_clients: Any) -> None:
    with TolokaClient(name="toloka", endpoint=sandbox.url, token=sandbox.toloka_token, rate_limit=1000.0) as client:
        items = [{"pool_id": POOL, "overlap": 1, "tasks": [{"input_values": {"n": n}}]} for n in range(11)]
        client.create_task_suites_async(operation_id="6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e", items=items, options={})
        client.wait_operation("6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e", poll_initial=0.01)
        before = listing_requests(sandbox)
        ours = [s["id"] for s in client.iter_pool_suites(POOL, page_size=4)]
        our_requests = listing_requests(sandbox) - before
    kit = official_clients.run(KIT, {"url": sandbox.url, "token": sandbox.toloka_token, "pool": POOL, "batch_size": 4})
    assert len(ours) == 11 and kit == ours
    assert our_requests == listing_requests(sandbox) - before - our_requests == 3
