"""TaskSuiteSets: data files turned into one resource per suite, and data problems at the data file's line."""

from __future__ import annotations

import gc
import json
import os

from reconciler import datasource
from reconciler.encoding import content_hash


def suite_set(source: str, **spec: object) -> str:
    """A TaskSuiteSet document named ``reviews``: lines 1-5 up to ``spec:``, ``source`` on line 6, then
    ``key``, ``template`` and the given fields, one per line."""
    body = {"source": source, "key": "id", "template": {"pool_id": "36502086", "overlap": 3}, **spec}
    lines = "".join(f"  {name}: {json.dumps(value)}\n" for name, value in body.items())
    return f"apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata:\n  name: reviews\nspec:\n{lines}"


def jsonl(*rows: object) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def rows(count: int, start: int = 0) -> list[dict[str, object]]:
    return [{"id": f"r{i}", "text": f"review {i}", "lang": "en"} for i in range(start, start + count)]


def test_each_row_becomes_a_suite_named_by_its_key(workdir):
    workdir.write("data/reviews.jsonl", jsonl(*rows(3)))
    workdir.write("set.yaml", suite_set(source="data/reviews.jsonl"))

    state = workdir.load()

    assert list(state.resources) == [
        "TaskSuiteSet/reviews/r0",
        "TaskSuiteSet/reviews/r1",
        "TaskSuiteSet/reviews/r2",
    ]
    suite = state.resources["TaskSuiteSet/reviews/r1"]
    assert suite.spec == {
        "pool_id": "36502086",
        "overlap": 3,
        "tasks": [{"input_values": {"id": "r1", "text": "review 1", "lang": "en"}}],
        "options": {"allow_defaults": False, "open_pool": False, "skip_invalid_items": False},
    }
    assert suite.kind == "TaskSuiteSet"
    assert suite.provider == "toloka"
    assert (suite.source.path, suite.source.line) == (os.path.join("data", "reviews.jsonl"), 2)


def test_generated_suites_hash_like_any_other_spec(workdir):
    workdir.write("data/reviews.jsonl", jsonl(*rows(7), {"id": "é", "text": "ünïcödé \u2028 \x00", "n": 1.5}))
    workdir.write(
        "set.yaml",
        suite_set(
            source="data/reviews.jsonl",
            tasks_per_suite=3,
            template={
                "pool_id": "1",
                "infinite_overlap": True,
                "reserved_for": ["w1"],
                "traits_any_of": ["a"],
            },
            options={"open_pool": True},
        ),
    )

    resources = workdir.load().resources

    assert len(resources) == 3
    assert all(r.spec_hash == content_hash(r.spec) for r in resources.values())


def test_adding_rows_only_adds_suites(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(10)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", tasks_per_suite=5))
    before = {a: r.spec_hash for a, r in workdir.load().resources.items()}

    workdir.write("reviews.jsonl", jsonl(*rows(10), "", *rows(5, start=10)))
    after = {a: r.spec_hash for a, r in workdir.load().resources.items()}

    assert list(before) == ["TaskSuiteSet/reviews/r0", "TaskSuiteSet/reviews/r5"]
    assert {a: h for a, h in after.items() if a in before} == before
    assert list(after) == [*before, "TaskSuiteSet/reviews/r10"]


def test_tasks_per_suite_groups_consecutive_rows_named_by_the_first_key(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(5)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", tasks_per_suite=2, input_fields=["text"]))

    resources = workdir.load().resources

    assert {a: [t["input_values"]["text"] for t in r.spec["tasks"]] for a, r in resources.items()} == {
        "TaskSuiteSet/reviews/r0": ["review 0", "review 1"],
        "TaskSuiteSet/reviews/r2": ["review 2", "review 3"],
        "TaskSuiteSet/reviews/r4": ["review 4"],
    }


def test_group_by_gathers_rows_by_value_in_order_of_first_appearance(workdir):
    workdir.write(
        "reviews.jsonl",
        jsonl(
            {"id": 1, "product": "kettle", "text": "a"},
            {"id": 2, "product": "blender", "text": "b"},
            {"id": 3, "product": "kettle", "text": "c"},
        ),
    )
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", group_by="product", input_fields=["id", "text"]))

    resources = workdir.load().resources

    assert {a: [t["input_values"] for t in r.spec["tasks"]] for a, r in resources.items()} == {
        "TaskSuiteSet/reviews/kettle": [{"id": 1, "text": "a"}, {"id": 3, "text": "c"}],
        "TaskSuiteSet/reviews/blender": [{"id": 2, "text": "b"}],
    }
    assert resources["TaskSuiteSet/reviews/kettle"].source.line == 1


def test_csv_rows_become_string_inputs_with_quoted_values_kept_whole(workdir):
    workdir.write(
        "reviews.csv",
        'id,text,stars\nr1,"Loud, but works",4\n\nr2,"Two\nlines ""quoted""",5\n',
    )
    workdir.write("set.yaml", suite_set(source="reviews.csv"))

    resources = workdir.load().resources

    assert [r.spec["tasks"][0]["input_values"] for r in resources.values()] == [
        {"id": "r1", "text": "Loud, but works", "stars": "4"},
        {"id": "r2", "text": 'Two\nlines "quoted"', "stars": "5"},
    ]
    assert [r.source.line for r in resources.values()] == [2, 4]


def test_tsv_rows_keep_quotes_as_typed(workdir):
    workdir.write("reviews.tsv", 'id\ttext\nr1\tsaid "great"\nr2\tfine\n')
    workdir.write("set.yaml", suite_set(source="reviews.tsv"))

    resources = workdir.load().resources

    assert [r.spec["tasks"][0]["input_values"] for r in resources.values()] == [
        {"id": "r1", "text": 'said "great"'},
        {"id": "r2", "text": "fine"},
    ]


def test_format_comes_from_the_spec_when_the_extension_does_not_say(workdir):
    workdir.write("reviews.txt", "id\ttext\nr1\thi\n")
    workdir.write("set.yaml", suite_set(source="reviews.txt"))
    assert workdir.problems() == [
        "set.yaml:6: TaskSuiteSet/reviews: spec.source: cannot tell the format of 'reviews.txt' from its "
        "extension; set spec.format to jsonl, csv or tsv"
    ]

    workdir.write("set.yaml", suite_set(source="reviews.txt", format="tsv"))
    assert list(workdir.load().resources) == ["TaskSuiteSet/reviews/r1"]


def test_repeated_key_in_data_file_names_both_lines(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(3), "", {"id": "r1", "text": "again"}))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))

    assert workdir.problems() == ["reviews.jsonl:5: TaskSuiteSet/reviews: key 'r1' repeated; first used on line 2"]


def test_bad_rows_are_reported_with_their_lines(workdir):
    workdir.write(
        "d/reviews.jsonl",
        jsonl(
            {"id": "r0"},
            "{not json",
            "",
            "[1, 2]",
            {"text": "no key"},
            {"id": None},
            {"id": "has space"},
            {"id": "a/b"},
            {"id": "r9"},
        ),
    )
    workdir.write("d/set.yaml", suite_set(source="reviews.jsonl"))

    assert workdir.problems() == [
        "d/reviews.jsonl:2: TaskSuiteSet/reviews: invalid JSON: Expecting property name enclosed in double "
        "quotes (column 2)",
        "d/reviews.jsonl:4: TaskSuiteSet/reviews: a row must be a JSON object, not an array",
        "d/reviews.jsonl:5: TaskSuiteSet/reviews: the row has no 'id' column (spec.key)",
        "d/reviews.jsonl:6: TaskSuiteSet/reviews: 'id' must be a string or an integer, not null",
        "d/reviews.jsonl:7: TaskSuiteSet/reviews: key 'has space' cannot name a suite: it must be non-empty, "
        "without '/' or whitespace",
        "d/reviews.jsonl:8: TaskSuiteSet/reviews: key 'a/b' cannot name a suite: it must be non-empty, "
        "without '/' or whitespace",
    ]


def test_a_csv_row_with_the_wrong_number_of_fields_is_reported(workdir):
    workdir.write("reviews.csv", "id,text\nr1,ok\nr2,too,many\nr3\n")
    workdir.write("set.yaml", suite_set(source="reviews.csv", input_fields=["text", "stars"]))

    assert workdir.problems() == [
        "reviews.csv:1: TaskSuiteSet/reviews: spec.input_fields: the header has no column 'stars'; its columns: "
        "'id', 'text'",
        "reviews.csv:3: TaskSuiteSet/reviews: the row has 3 fields; the header has 2",
        "reviews.csv:4: TaskSuiteSet/reviews: the row has 1 fields; the header has 2",
    ]


def test_a_flood_of_bad_rows_is_summarised(workdir):
    workdir.write("reviews.jsonl", jsonl({"id": "r0"}, *[{"text": "no key"}] * 80))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))

    problems = workdir.problems()

    assert len(problems) == datasource.MAX_PROBLEMS_PER_FILE + 1
    assert problems[-1] == "reviews.jsonl: TaskSuiteSet/reviews: ... and 30 more problems in this file"


def test_source_outside_manifest_root_is_refused(workdir):
    workdir.write("secrets.jsonl", jsonl(*rows(1)))
    workdir.write_providers("manifests")
    workdir.write("manifests/set.yaml", suite_set(source="../secrets.jsonl"))

    assert workdir.problems("manifests") == [
        f"manifests/set.yaml:6: TaskSuiteSet/reviews: spec.source: '../secrets.jsonl' resolves outside the "
        f"manifest root {workdir.root.resolve() / 'manifests'}; data files must live under the directory of "
        "the manifests"
    ]


def test_a_symlink_out_of_the_manifest_root_is_refused(workdir):
    workdir.write("secrets.jsonl", jsonl(*rows(1)))
    workdir.write_providers("manifests")
    (workdir.root / "manifests" / "data.jsonl").symlink_to(workdir.root / "secrets.jsonl")
    workdir.write("manifests/set.yaml", suite_set(source="data.jsonl"))

    problems = workdir.problems("manifests")

    assert len(problems) == 1
    assert "'data.jsonl' resolves outside the manifest root" in problems[0]


def test_a_missing_source_is_reported_at_the_source_line(workdir):
    workdir.write("set.yaml", suite_set(source="nope.jsonl"))

    problems = workdir.problems()

    assert len(problems) == 1
    assert problems[0].startswith("set.yaml:6: TaskSuiteSet/reviews: spec.source: 'nope.jsonl': no such file")


def test_giving_both_tasks_per_suite_and_group_by_is_an_error(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(1)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", tasks_per_suite=2, group_by="lang"))

    assert workdir.problems() == ["set.yaml:5: TaskSuiteSet/reviews: spec: give tasks_per_suite or group_by, not both"]


def test_template_problems_point_into_the_template(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(1)))
    workdir.write(
        "set.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuiteSet
        metadata:
          name: reviews
        spec:
          source: reviews.jsonl
          key: id
          template:
            pool_id: "36502086"
            overlap: 30001
            latitude: 91
        """,
    )

    assert workdir.problems() == [
        "set.yaml:10: TaskSuiteSet/reviews: spec.template.overlap: 30001 is greater than the maximum of 30000",
        "set.yaml:11: TaskSuiteSet/reviews: spec.template.latitude: 91 is greater than the maximum of 90",
    ]


def test_data_problems_and_manifest_problems_are_reported_together(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(2), {"id": "r0"}))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))
    workdir.write("task.yaml", "apiVersion: reconciler/v1\nkind: PerfTestTask\nmetadata: {name: t}\nspec: {}\n")

    assert workdir.problems() == [
        "reviews.jsonl:3: TaskSuiteSet/reviews: key 'r0' repeated; first used on line 1",
        "task.yaml:4: PerfTestTask/t: spec: 'parallel' is a required property",
        "task.yaml:4: PerfTestTask/t: spec: 'project_id' is a required property",
        "task.yaml:4: PerfTestTask/t: spec: 'case_id_list' is a required property",
    ]


def test_byte_order_marks_and_windows_line_endings_are_read(workdir):
    workdir.root.joinpath("a.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "r1"}\r\n{"id": "r2"}\r\n')
    workdir.root.joinpath("b.csv").write_bytes(b"\xef\xbb\xbfid,text\r\nr1,hi\r\n")
    workdir.write("a.yaml", suite_set(source="a.jsonl"))
    workdir.write("b.yaml", suite_set(source="b.csv").replace("reviews", "csv"))

    assert list(workdir.load().resources) == [
        "TaskSuiteSet/reviews/r1",
        "TaskSuiteSet/reviews/r2",
        "TaskSuiteSet/csv/r1",
    ]


def test_rows_orjson_reads_differently_keep_the_standard_library_values_and_hashes(workdir):
    """orjson decodes and hashes the common rows; floats, integers beyond 64 bits and nested values must
    still come out, and hash, exactly as the standard library reads and writes them."""
    lines = [
        '{"id": "plain", "text": "caf\\u00e9 \\ud83d\\ude00 \\u2028 \\u0000 \\"q\\" \\\\", "n": -9223372036854775808}',
        '{"id": "floats", "a": 0.1, "b": 1e16, "c": -0.0, "d": 1E300, "e": 18446744073709551615}',
        '{"id": "big", "a": 18446744073709551616, "b": -9223372036854775809}',
        '{"id": "nested", "a": {"z": [1, 2.5, {"y": null}], "b": true}, "": ""}',
        '{"id": "dup", "a": 1, "a": 2}',
        '{"id": 7, "text": "an integer key"}',
    ]
    workdir.write("reviews.jsonl", "\n".join(lines) + "\n")
    workdir.write("one.yaml", suite_set(source="reviews.jsonl"))
    workdir.write(
        "three.yaml", suite_set(source="reviews.jsonl", tasks_per_suite=3).replace("name: reviews", "name: three")
    )

    resources = workdir.load().resources

    expected = [json.loads(line) for line in lines]
    ones = [r for a, r in resources.items() if a.startswith("TaskSuiteSet/reviews/")]
    assert [r.address for r in ones][-1] == "TaskSuiteSet/reviews/7"
    assert repr([r.spec["tasks"][0]["input_values"] for r in ones]) == repr(expected)
    threes = [r for a, r in resources.items() if a.startswith("TaskSuiteSet/three/")]
    assert repr([t["input_values"] for r in threes for t in r.spec["tasks"]]) == repr(expected)
    assert all(r.spec_hash == content_hash(r.spec) for r in resources.values())


def test_loading_leaves_the_garbage_collector_as_it_was(workdir):
    """The load pauses the collector and ages what it kept; enabled or not, frozen objects or not, as before."""
    workdir.write("reviews.jsonl", jsonl(*rows(3)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))
    was_enabled = gc.isenabled()
    froze = gc.get_freeze_count() == 0
    try:
        gc.enable()
        workdir.load()
        assert gc.isenabled()

        gc.disable()
        workdir.load()
        assert not gc.isenabled()

        if froze:
            gc.freeze()
        workdir.load()
        assert gc.get_freeze_count() > 0
    finally:
        if froze:
            gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


# --- a column the spec names that the data does not have ------------------------------------------------------


def test_a_misspelt_key_over_a_csv_is_one_problem_at_the_header_with_a_suggestion(workdir):
    workdir.write("reviews.csv", "review_id,text\n" + "".join(f"r{i},review {i}\n" for i in range(5000)))
    workdir.write("set.yaml", suite_set(source="reviews.csv", key="reviw_id"))

    assert workdir.problems() == [
        "reviews.csv:1: TaskSuiteSet/reviews: spec.key: the header has no column 'reviw_id' (did you mean "
        "'review_id'?); its columns: 'review_id', 'text'"
    ]


def test_misspelt_input_fields_over_a_tsv_are_one_problem_each_at_the_header(workdir):
    workdir.write("reviews.tsv", "\n\nid\ttext\tstars\n" + "".join(f"r{i}\tok\t5\n" for i in range(300)))
    workdir.write("set.yaml", suite_set(source="reviews.tsv", input_fields=["txet", "stars", "lang"]))

    assert workdir.problems() == [
        "reviews.tsv:3: TaskSuiteSet/reviews: spec.input_fields: the header has no column 'txet' (did you mean "
        "'text'?); its columns: 'id', 'text', 'stars'",
        "reviews.tsv:3: TaskSuiteSet/reviews: spec.input_fields: the header has no column 'lang'; its columns: "
        "'id', 'text', 'stars'",
    ]


def test_a_group_by_column_missing_from_the_header_is_one_problem(workdir):
    workdir.write("reviews.csv", "id,product\n" + "".join(f"r{i},kettle\n" for i in range(100)))
    workdir.write("set.yaml", suite_set(source="reviews.csv", group_by="products"))

    assert workdir.problems() == [
        "reviews.csv:1: TaskSuiteSet/reviews: spec.group_by: the header has no column 'products' (did you mean "
        "'product'?); its columns: 'id', 'product'"
    ]


def test_a_key_no_jsonl_row_has_is_one_problem(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(5000)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", key="ID"))

    assert workdir.problems() == [
        "reviews.jsonl:1: TaskSuiteSet/reviews: spec.key: none of the 5000 rows has the column 'ID' (did you mean "
        "'id'?); this one has 'id', 'text', 'lang'"
    ]


def test_a_key_no_jsonl_row_has_is_one_problem_on_every_path_of_the_reader(workdir):
    workdir.write("reviews.jsonl", jsonl(*rows(200)))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", key="ID", tasks_per_suite=2))
    workdir.write(
        "grouped.yaml",
        suite_set(source="reviews.jsonl", key="ID", group_by="lang").replace("name: reviews", "name: grouped"),
    )

    assert workdir.problems() == [
        "reviews.jsonl:1: TaskSuiteSet/grouped: spec.key: none of the 200 rows has the column 'ID' (did you mean "
        "'id'?); this one has 'id', 'text', 'lang'",
        "reviews.jsonl:1: TaskSuiteSet/reviews: spec.key: none of the 200 rows has the column 'ID' (did you mean "
        "'id'?); this one has 'id', 'text', 'lang'",
    ]


def test_a_key_only_some_jsonl_rows_lack_is_a_problem_per_row_among_the_others_in_line_order(workdir):
    workdir.write(
        "reviews.jsonl",
        jsonl({"text": "no key"}, {"id": "r1"}, "{broken", {"text": "no key"}, {"id": "r1"}),
    )
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))

    assert workdir.problems() == [
        "reviews.jsonl:1: TaskSuiteSet/reviews: the row has no 'id' column (spec.key)",
        "reviews.jsonl:3: TaskSuiteSet/reviews: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 2)",
        "reviews.jsonl:4: TaskSuiteSet/reviews: the row has no 'id' column (spec.key)",
        "reviews.jsonl:5: TaskSuiteSet/reviews: key 'r1' repeated; first used on line 2",
    ]


def test_jsonl_input_fields_fold_only_the_column_no_row_has(workdir):
    workdir.write(
        "reviews.jsonl",
        jsonl({"id": "a", "text": "x"}, {"id": "b", "text": "y", "stars": 4}, {"id": "c", "text": "z"}),
    )
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", input_fields=["txt", "stars"]))

    assert workdir.problems() == [
        "reviews.jsonl:1: TaskSuiteSet/reviews: spec.input_fields: none of the 3 rows has the column 'txt' (did you "
        "mean 'text'?); this one has 'id', 'text'",
        "reviews.jsonl:1: TaskSuiteSet/reviews: the row has no 'stars' column (listed in spec.input_fields)",
        "reviews.jsonl:3: TaskSuiteSet/reviews: the row has no 'stars' column (listed in spec.input_fields)",
    ]


def test_the_problem_limit_keeps_the_first_problems_of_the_file_whichever_way_they_were_found(workdir):
    lines = [{"id": "r0"}]
    for i in range(1, 61):
        lines.append({"text": "no key"} if i % 2 else "[1]")
    workdir.write("reviews.jsonl", jsonl(*lines))
    workdir.write("set.yaml", suite_set(source="reviews.jsonl"))

    problems = workdir.problems()

    assert len(problems) == datasource.MAX_PROBLEMS_PER_FILE + 1
    assert [int(p.split(":")[1]) for p in problems[:-1]] == list(range(2, 52))
    assert problems[-1] == "reviews.jsonl: TaskSuiteSet/reviews: ... and 10 more problems in this file"
