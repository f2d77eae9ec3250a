"""How suites are cut into Toloka batches: by provider, pool and options, at most N items and 1 MiB of inputs.

Toloka does not say how it counts "1 MiB of input values", so a batch must fit however it is counted: the
values compact or spaced, non-ASCII as UTF-8 or as ``\\uXXXX`` escapes, with or without each task's key and
object, and as the sandbox counts them. Numbers count as they are sent (no numbers are generated whose
standard-library text differs from orjson's, such as ``1e+16``).
"""

from __future__ import annotations

import json
from itertools import product
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.applier.toloka import BatchBudget, cut_batches
from reconciler.plan import Action, ActionType
from reconciler.providers.toloka import MAX_BATCH_INPUT_BYTES, MAX_BATCH_ITEMS, inputs_bound
from reconciler.sandbox.toloka_suites import input_values_bytes

DEFAULT_OPTIONS = {"allow_defaults": False, "open_pool": False, "skip_invalid_items": False}


def suite(
    n: int,
    *,
    pool: str = "1",
    text: str = "x",
    options: dict[str, bool] | None = None,
    inputs: list[dict[str, Any]] | None = None,
) -> Action:
    spec: dict[str, Any] = {
        "pool_id": pool,
        "overlap": 1,
        "tasks": [{"input_values": values} for values in (inputs or [{"text": text}])],
        "options": options or DEFAULT_OPTIONS,
    }
    return Action(ActionType.CREATE, f"TaskSuite/s{n}", "TaskSuite", "toloka", "new", spec, f"h{n}")


def batches_of(
    actions: list[Action], *, batch_size: int = MAX_BATCH_ITEMS, max_input_bytes: int = MAX_BATCH_INPUT_BYTES
) -> list[list[Action]]:
    return list(cut_batches(actions, BatchBudget(batch_size, max_input_bytes)))


def sizes(batches: list[list[Action]]) -> list[int]:
    return [len(b) for b in batches]


def plausible_counts(batch: list[Action]) -> dict[str, int]:
    """The size of a batch's input values by every way a server might plausibly count them."""
    values = [task["input_values"] for action in batch for task in (action.spec or {})["tasks"]]
    counts = {"sandbox": input_values_bytes([action.spec for action in batch])}
    for ascii_only, spaced, enveloped in product((False, True), repeat=3):
        separators = (", ", ": ") if spaced else (",", ":")
        shown = [{"input_values": v} for v in values] if enveloped else values
        texts = [json.dumps(v, ensure_ascii=ascii_only, separators=separators) for v in shown]
        name = f"{'ascii' if ascii_only else 'utf8'} {'spaced' if spaced else 'compact'} {'enveloped' * enveloped}"
        counts[name] = sum(len(t.encode("utf-8")) for t in texts) + len(separators[0]) * (len(texts) - 1)
    return counts


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


def test_a_suite_larger_than_the_limit_by_itself_goes_alone() -> None:
    batches = batches_of([suite(0), suite(1, text="z" * 5000), suite(2)], max_input_bytes=1000)
    assert sizes(batches) == [1, 1, 1]


def test_a_shrunk_budget_cuts_the_batches_still_to_come_smaller() -> None:
    budget = BatchBudget(4, MAX_BATCH_INPUT_BYTES)
    batches = cut_batches([suite(n) for n in range(10)], budget)
    first = next(batches)
    budget.shrink_below(len(first), inputs_bound([a.spec or {} for a in first]))
    assert [len(first), *sizes(list(batches))] == [4, 2, 2, 2]


def test_five_rows_to_a_suite_at_forty_five_bytes_a_row_fit_every_count_of_the_emulator_limit() -> None:
    rows = [{"id": f"r{n:06d}", "text": f"review {n} says it is quite fine", "lang": "en"} for n in range(20_000)]
    actions = [suite(n, inputs=rows[n * 5 : n * 5 + 5]) for n in range(4_000)]
    batches = batches_of(actions)
    assert all(max(plausible_counts(b).values()) <= MAX_BATCH_INPUT_BYTES for b in batches)
    # Not needlessly small: the batches are filled to the limit by the most generous count.
    assert len(batches) <= 4


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
INPUTS = st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), JSON_VALUES, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    suites=st.lists(st.lists(INPUTS, min_size=1, max_size=2), min_size=1, max_size=16),
    limit=st.integers(min_value=50, max_value=3_000),
    batch_size=st.integers(min_value=1, max_value=12),
)
def test_every_batch_of_several_suites_fits_however_its_inputs_are_counted(
    suites: list[list[dict[str, Any]]], limit: int, batch_size: int
) -> None:
    actions = [suite(n, inputs=inputs) for n, inputs in enumerate(suites)]
    batches = batches_of(actions, batch_size=batch_size, max_input_bytes=limit)

    assert [a.address for b in batches for a in b] == [a.address for a in actions]
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        if len(batch) > 1:
            counts = plausible_counts(batch)
            assert max(counts.values()) <= limit, counts
    for batch, following in zip(batches, batches[1:], strict=False):
        if len(batch) < batch_size:  # cut by size: the next suite would not have fitted
            assert inputs_bound([a.spec or {} for a in [*batch, following[0]]]) > limit
