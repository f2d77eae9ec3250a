"""Discovery adopts one to one (``refresh.settle_matches``), and recognises a suite by its content whatever the
server adds to it (``drift.suite_key``): generated candidate graphs and suites."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.drift import suite_key
from reconciler.refresh import Discovery, settle_matches

ADDRESSES = [f"TaskSuiteSet/s/r{n}" for n in range(6)]
REMOTE_IDS = [f"id-{n}" for n in range(6)]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ADDRESSES), st.lists(st.sampled_from(REMOTE_IDS), unique=True, max_size=3)))
def test_only_a_resource_and_an_object_that_match_each_other_alone_are_adopted(graph: dict[str, list[str]]) -> None:
    found = Discovery()
    settle_matches({a: [(r, {"id": r}) for r in ids] for a, ids in graph.items()}, found)
    claims = {r: sum(r in ids for ids in graph.values()) for r in REMOTE_IDS}
    expected = {a: ids[0] for a, ids in graph.items() if len(ids) == 1 and claims[ids[0]] == 1}
    assert {m.address: m.remote_id for m in found.matches} == expected
    assert set(found.ambiguous) == {a for a, ids in graph.items() if ids and a not in expected}
    assert len({m.remote_id for m in found.matches}) == len(found.matches)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def as_the_server_echoes(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite with the server's own fields, and every integer spelt as a float where JSON allows it."""

    def floats(value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int) and abs(value) < 2**53:
            return float(value)
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, list):
            return [floats(v) for v in value]
        return value

    tasks = [{**floats(t), "id": f"task-{i}", "created": "2026-12-02T10:00:00"} for i, t in enumerate(suite["tasks"])]
    return {**suite, "tasks": tasks, "id": "00001--abc", "created": "2026-12-02T10:00:00", "remaining_overlap": 0}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({"input_values": st.dictionaries(st.text(max_size=4), values, max_size=4)}),
        min_size=1,
        max_size=4,
    )
)
def test_a_suite_is_recognised_by_its_input_values_whatever_the_server_adds(tasks: list[dict[str, Any]]) -> None:
    sent = {"pool_id": "1", "overlap": 2, "tasks": tasks}
    assert suite_key(as_the_server_echoes(sent)) == suite_key(sent)
    other = {**sent, "tasks": [*tasks, {"input_values": {"extra": 1}}]}
    assert suite_key(other) != suite_key(sent)
