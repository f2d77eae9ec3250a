"""How suites are cut into Toloka batches: by provider, pool and options, at most N items and 1 MiB of inputs."""

from __future__ import annotations

from typing import Any

from reconciler.applier.toloka import cut_batches
from reconciler.plan import Action, ActionType
from reconciler.providers.toloka import MAX_BATCH_INPUT_BYTES, MAX_BATCH_ITEMS


def suite(n: int, *, pool: str = "1", text: str = "x", options: dict[str, bool] | None = None) -> Action:
    spec: dict[str, Any] = {
        "pool_id": pool,
        "overlap": 1,
        "tasks": [{"input_values": {"text": text}}],
        "options": options or {"allow_defaults": False, "open_pool": False, "skip_invalid_items": False},
    }
    return Action(ActionType.CREATE, f"TaskSuite/s{n}", "TaskSuite", "toloka", "new", spec, f"h{n}")


def batches_of(
    actions: list[Action], *, batch_size: int = MAX_BATCH_ITEMS, max_input_bytes: int = MAX_BATCH_INPUT_BYTES
) -> list[list[Action]]:
    return list(cut_batches(actions, batch_size=batch_size, max_input_bytes=max_input_bytes))


def sizes(batches: list[list[Action]]) -> list[int]:
    return [len(b) for b in batches]


def test_batches_never_exceed_the_item_limit() -> None:
    batches = batches_of([suite(n) for n in range(10)], batch_size=4)
    assert sizes(batches) == [4, 4, 2]


def test_suites_of_different_pools_or_options_never_share_a_batch() -> None:
    actions = [suite(0), suite(1, pool="2"), suite(2), suite(3, options={"open_pool": True})]
    batches = batches_of(actions)
    assert sorted(sorted(a.address for a in b) for b in batches) == [
        ["TaskSuite/s0", "TaskSuite/s2"],
        ["TaskSuite/s1"],
        ["TaskSuite/s3"],
    ]


def test_batches_are_cut_before_their_inputs_pass_the_size_limit() -> None:
    big = "y" * 400
    batches = batches_of([suite(n, text=big) for n in range(5)], max_input_bytes=1000)
    assert sizes(batches) == [2, 2, 1]
    assert [a.address for b in batches for a in b] == [f"TaskSuite/s{n}" for n in range(5)]
