"""Manifest documents: what is read, what is skipped, and every problem reported at its file and line."""

from __future__ import annotations

import json

from reconciler.encoding import content_hash

TASK = """\
apiVersion: reconciler/v1
kind: PerfTestTask
metadata:
  name: checkout-smoke
spec:
  project_id: 393862
  parallel: false
  case_id_list: [810021]
"""


def test_a_valid_task_becomes_a_resource_with_its_defaults_filled_in(workdir):
    workdir.write("m.yaml", TASK)

    state = workdir.load()

    resource = state.resources["PerfTestTask/checkout-smoke"]
    assert resource.spec == {
        "name": "checkout-smoke",
        "project_id": 393862,
        "parallel": False,
        "operate_mode": 2,
        "case_id_list": [810021],
    }
    assert resource.provider == "perftest"
    assert resource.spec_hash == content_hash(resource.spec)
    assert (resource.source.path, resource.source.line) == ("m.yaml", 1)
    assert set(state.providers) == {"perftest", "toloka"}
    assert state.providers["toloka"].type == "toloka"
    assert state.providers["toloka"].spec["endpoint"] == "https://toloka.dev"
    assert state.root == workdir.root.resolve()


def test_wrong_type_is_reported_with_file_and_line(workdir):
    workdir.write("m.yaml", TASK.replace("project_id: 393862", "project_id: abc"))

    assert workdir.problems() == [
        "m.yaml:6: PerfTestTask/checkout-smoke: spec.project_id: 'abc' is not of type 'integer'"
    ]


def test_missing_required_field_is_reported_at_its_parent(workdir):
    workdir.write("m.yaml", TASK.replace("  parallel: false\n", ""))

    assert workdir.problems() == ["m.yaml:5: PerfTestTask/checkout-smoke: spec: 'parallel' is a required property"]


def test_out_of_range_overlap_is_reported(workdir):
    workdir.write(
        "suite.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata:
          name: s1
        spec:
          pool_id: "36502086"
          overlap: 30001
          tasks:
            - input_values: {text: hello}
              known_solutions:
                - output_values: {sentiment: positive}
                  correctness_weight: 1.5
        """,
    )

    assert workdir.problems() == [
        "suite.yaml:7: TaskSuite/s1: spec.overlap: 30001 is greater than the maximum of 30000",
        "suite.yaml:12: TaskSuite/s1: spec.tasks.0.known_solutions.0.correctness_weight: "
        "1.5 is greater than the maximum of 1",
    ]


def test_unknown_field_is_reported_at_its_own_line_with_a_suggestion(workdir):
    workdir.write(
        "suite.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata:
          name: s1
        spec:
          pool_id: "36502086"
          overlapp: 3
          tasks: [{input_values: {text: hello}}]
        """,
    )

    assert workdir.problems() == [
        "suite.yaml:7: TaskSuite/s1: spec: unknown field 'overlapp' (did you mean 'overlap'?)"
    ]


def test_overlap_is_required_unless_infinite_or_defaults_allowed(workdir):
    workdir.write(
        "suite.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata:
          name: s1
        spec:
          pool_id: "36502086"
          tasks: [{input_values: {text: hello}}]
        ---
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata:
          name: s2
        spec:
          pool_id: "36502086"
          tasks: [{input_values: {text: hello}}]
          options: {allow_defaults: true}
        """,
    )

    assert workdir.problems() == [
        "suite.yaml:5: TaskSuite/s1: spec: overlap is required unless infinite_overlap or "
        "options.allow_defaults is true"
    ]


def test_a_numeric_pool_id_is_told_to_be_quoted(workdir):
    workdir.write(
        "suite.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata: {name: s1}
        spec:
          pool_id: 36502086
          overlap: 1
          tasks: [{input_values: {text: hello}}]
        """,
    )

    assert workdir.problems() == [
        "suite.yaml:5: TaskSuite/s1: spec.pool_id: 36502086 is not of type 'string' (quote it: \"36502086\")"
    ]


def test_duplicate_name_reports_both_places(workdir):
    workdir.write("a.yaml", TASK)
    workdir.write("b.yaml", "# the same task again\n" + TASK.replace("810021", "810022"))

    assert workdir.problems() == [
        "b.yaml:5: PerfTestTask/checkout-smoke: metadata.name: PerfTestTask/checkout-smoke is declared "
        "twice: here and at a.yaml:4"
    ]


def test_two_perftest_tasks_with_same_project_and_name_are_an_error(workdir):
    workdir.write(
        "m.yaml",
        TASK
        + """\
---
apiVersion: reconciler/v1
kind: PerfTestTask
metadata:
  name: smoke-again
spec:
  name: checkout-smoke
  project_id: 393862
  parallel: true
  case_id_list: [810022]
""",
    )

    assert workdir.problems() == [
        "m.yaml:15: PerfTestTask/smoke-again: spec.name: test project 393862 already gets a task named "
        "'checkout-smoke' from PerfTestTask/checkout-smoke at m.yaml:4; task names must be unique in a "
        "test project"
    ]


def test_the_same_task_name_in_two_test_projects_is_fine(workdir):
    workdir.write(
        "m.yaml",
        TASK
        + """\
---
apiVersion: reconciler/v1
kind: PerfTestTask
metadata:
  name: search-smoke
spec:
  name: checkout-smoke
  project_id: 393863
  parallel: false
  case_id_list: [820011]
""",
    )

    names = {a: r.spec["name"] for a, r in workdir.load().resources.items()}
    assert names == {
        "PerfTestTask/checkout-smoke": "checkout-smoke",
        "PerfTestTask/search-smoke": "checkout-smoke",
    }


def test_unknown_kind_lists_the_valid_kinds(workdir):
    workdir.write("m.yaml", TASK.replace("kind: PerfTestTask", "kind: PerfTestTsak"))

    assert workdir.problems() == [
        "m.yaml:2: kind: unknown kind 'PerfTestTsak' (did you mean 'PerfTestTask'?); valid kinds: "
        "PerfTestTask, TaskSuite, TaskSuiteSet, PerfTestProvider, TolokaProvider, StateBackend"
    ]


def test_broken_yaml_is_one_problem_with_the_parsers_line(workdir):
    workdir.write("m.yaml", TASK.replace("parallel: false", "parallel: false\n   bad: [indent"))

    problems = workdir.problems()

    assert len(problems) == 1
    assert problems[0].startswith("m.yaml:8: invalid YAML: ")


def test_broken_yaml_that_does_not_mention_reconciler_is_skipped(workdir):
    workdir.write("chart/templates/deploy.yaml", "metadata:\n  name: {{ .Release.Name }}\n  x: [\n")
    workdir.write("m.yaml", TASK)

    state = workdir.load()

    assert state.skipped == ["chart/templates/deploy.yaml"]


def test_non_manifest_yaml_is_skipped(workdir):
    workdir.write(".github/workflows/ci.yml", "on: push\njobs: {}\n")  # hidden directories are not read
    workdir.write("ci/pipeline.yml", "stages: [plan, apply]\n")
    workdir.write("k8s/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\n")
    workdir.write("data/labels.json", json.dumps([{"a": 1}]))
    workdir.write("m.yaml", TASK)

    state = workdir.load()

    assert state.skipped == ["ci/pipeline.yml", "data/labels.json", "k8s/deploy.yaml"]
    assert list(state.resources) == ["PerfTestTask/checkout-smoke"]


def test_a_document_without_api_version_inside_a_manifest_file_is_an_error(workdir):
    workdir.write(
        "m.yaml",
        TASK
        + "---\nkind: PerfTestTask\nmetadata: {name: b}\n---\n"
        + TASK.replace("reconciler/v1", "reconciler/v2").replace("checkout-smoke", "c"),
    )

    assert workdir.problems() == [
        "m.yaml:10: PerfTestTask/b: no apiVersion; every document of a manifest file needs apiVersion: reconciler/v1",
        "m.yaml:13: PerfTestTask/c: apiVersion: unsupported apiVersion 'reconciler/v2'; this reconciler "
        "reads reconciler/v1",
    ]


def test_a_duplicate_yaml_key_is_an_error(workdir):
    workdir.write("m.yaml", TASK.replace("parallel: false", "parallel: false\n  parallel: true"))

    assert workdir.problems() == [
        "m.yaml:8: PerfTestTask/checkout-smoke: spec.parallel: duplicate key 'parallel'; YAML would keep "
        "only the last value"
    ]


def test_all_errors_reported_at_once(workdir):
    workdir.write("b.yaml", TASK.replace("393862", "-1").replace("[810021]", "[0, x]"))
    workdir.write("a.yaml", "apiVersion: reconciler/v1\nkind: Nope\n---\n" + TASK.replace("false", "'no'"))
    workdir.write(
        "c.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata: {name: 's 1', provider: nobody}
        spec: {pool_id: "1", overlap: 0, tasks: []}
        """,
    )

    assert workdir.problems() == [
        "a.yaml:2: kind: unknown kind 'Nope'; valid kinds: PerfTestTask, TaskSuite, TaskSuiteSet, "
        "PerfTestProvider, TolokaProvider, StateBackend",
        "a.yaml:10: PerfTestTask/checkout-smoke: spec.parallel: 'no' is not of type 'boolean'",
        "b.yaml:4: PerfTestTask/checkout-smoke: metadata.name: PerfTestTask/checkout-smoke is declared "
        "twice: here and at a.yaml:7",
        "b.yaml:6: PerfTestTask/checkout-smoke: spec.project_id: -1 is less than the minimum of 1",
        "b.yaml:8: PerfTestTask/checkout-smoke: spec.case_id_list.0: 0 is less than the minimum of 1",
        "b.yaml:8: PerfTestTask/checkout-smoke: spec.case_id_list.1: 'x' is not of type 'integer'",
        "c.yaml:3: TaskSuite/s 1: metadata.name: 's 1' is not a valid name: letters, digits, '.', '_' "
        "and '-', starting with a letter or digit, at most 128 characters",
        "c.yaml:4: TaskSuite/s 1: spec.overlap: 0 is less than the minimum of 1",
        "c.yaml:4: TaskSuite/s 1: spec.tasks: [] should be non-empty",
    ]


def test_a_missing_path_is_an_error(workdir):
    workdir.write("m.yaml", TASK)

    assert workdir.problems(".", "nowhere") == ["nowhere: no such file or directory"]


def test_json_manifests_hold_one_document_or_a_list(workdir):
    docs = [
        {
            "apiVersion": "reconciler/v1",
            "kind": "PerfTestTask",
            "metadata": {"name": f"t{i}"},
            "spec": {"project_id": 1, "parallel": True, "case_id_list": [1]},
        }
        for i in range(2)
    ]
    docs[1]["spec"]["parallel"] = "yes"
    workdir.write("list.json", json.dumps(docs, indent=2))
    workdir.write("one.json", json.dumps({**docs[0], "metadata": {"name": "t9"}}))

    assert workdir.problems() == ["list.json:24: PerfTestTask/t1: spec.parallel: 'yes' is not of type 'boolean'"]
    workdir.write("list.json", json.dumps(docs[:1], indent="\t"))  # tabs: YAML refuses, JSON reads it
    assert list(workdir.load().resources) == ["PerfTestTask/t0", "PerfTestTask/t9"]


def test_resources_come_in_file_order(workdir):
    workdir.write("b.yaml", TASK.replace("checkout-smoke", "b1") + "---\n" + TASK.replace("checkout-smoke", "b0"))
    workdir.write("a/z.yaml", TASK.replace("checkout-smoke", "a"))

    assert list(workdir.load().resources) == ["PerfTestTask/a", "PerfTestTask/b1", "PerfTestTask/b0"]


def test_digest_follows_content_not_layout(workdir):
    workdir.write("m.yaml", TASK + "---\n" + TASK.replace("checkout-smoke", "b"))
    first = workdir.load().digest

    (workdir.root / "m.yaml").unlink()
    workdir.write("x.yaml", TASK.replace("checkout-smoke", "b"))
    workdir.write("y.yaml", "# moved\n" + TASK)
    assert workdir.load().digest == first

    workdir.write("y.yaml", TASK.replace("810021", "810029"))
    assert workdir.load().digest != first


def test_yaml_dates_stay_strings(workdir):
    workdir.write(
        "suite.yaml",
        """\
        apiVersion: reconciler/v1
        kind: TaskSuite
        metadata: {name: s1}
        spec:
          pool_id: "1"
          overlap: 1
          tasks: [{input_values: {published: 2024-05-01}}]
        """,
    )

    spec = workdir.load().resources["TaskSuite/s1"].spec
    assert spec["tasks"] == [{"input_values": {"published": "2024-05-01"}}]
    assert spec["options"] == {"allow_defaults": False, "open_pool": False, "skip_invalid_items": False}


# --- providers ----------------------------------------------------------------------------------------------


def test_no_provider_of_the_needed_type_is_an_error(workdir):
    workdir.write("providers.yaml", workdir.root.joinpath("providers.yaml").read_text().split("---")[0])
    workdir.write(
        "suite.yaml",
        "apiVersion: reconciler/v1\nkind: TaskSuite\nmetadata: {name: s1}\n"
        "spec: {pool_id: '1', overlap: 1, tasks: [{input_values: {a: 1}}]}\n",
    )

    assert workdir.problems() == [
        "suite.yaml:3: TaskSuite/s1: metadata: no TolokaProvider document; add one (see "
        "examples/providers.yaml) or pass the file holding it"
    ]


def test_several_providers_of_a_type_need_metadata_provider(workdir):
    workdir.write(
        "more.yaml",
        "apiVersion: reconciler/v1\nkind: PerfTestProvider\nmetadata: {name: staging}\n"
        "spec: {region: r, cloud_project_id: 0123456789abcdef0123456789abcdef, "
        "credentials: {token_env: T}}\n",
    )
    workdir.write("m.yaml", TASK + "---\n" + TASK.replace("checkout-smoke", "b\n  provider: staging"))

    assert workdir.problems() == [
        "m.yaml:3: PerfTestTask/checkout-smoke: metadata: several PerfTestProvider documents "
        "(perftest, staging); set metadata.provider"
    ]


def test_metadata_provider_must_name_a_provider_of_the_right_type(workdir):
    workdir.write(
        "m.yaml",
        TASK.replace("checkout-smoke", "a\n  provider: toloka")
        + "---\n"
        + TASK.replace("checkout-smoke", "b\n  provider: prod"),
    )

    assert workdir.problems() == [
        "m.yaml:5: PerfTestTask/a: metadata.provider: provider 'toloka' is a TolokaProvider; a PerfTestTask "
        "needs a PerfTestProvider",
        "m.yaml:15: PerfTestTask/b: metadata.provider: no provider named 'prod' (providers: perftest, toloka)",
    ]


def test_duplicate_provider_names_are_an_error(workdir):
    workdir.write(
        "toloka.yaml",
        "apiVersion: reconciler/v1\nkind: TolokaProvider\nmetadata: {name: perftest}\n"
        "spec: {credentials: {token_env: T}}\n",
    )

    assert workdir.problems() == [
        "toloka.yaml:3: TolokaProvider/perftest: metadata.name: provider name 'perftest' is already "
        "declared at providers.yaml:4 (PerfTestProvider/perftest)"
    ]


LONG_NAME = "checkout-smoke-test-for-the-black-friday-weekend"  # 48 characters, a valid metadata.name


def test_a_task_name_defaulted_from_a_too_long_metadata_name_is_reported_at_metadata_name(workdir):
    workdir.write("m.yaml", TASK.replace("checkout-smoke", LONG_NAME))

    assert workdir.problems() == [
        f"m.yaml:4: PerfTestTask/{LONG_NAME}: metadata.name: used as the task name, since spec.name is not set, "
        f"but a PerfTest task name is 1-42 characters long and {LONG_NAME!r} has 48; set spec.name to a name "
        "CodeArts PerfTest accepts, or shorten metadata.name"
    ]


def test_a_long_metadata_name_is_fine_when_spec_name_is_what_is_sent(workdir):
    workdir.write("m.yaml", TASK.replace("checkout-smoke", LONG_NAME) + "  name: checkout-smoke\n")

    resource = workdir.load().resources[f"PerfTestTask/{LONG_NAME}"]

    assert resource.spec["name"] == "checkout-smoke"


def test_a_metadata_name_of_exactly_42_characters_is_a_valid_task_name(workdir):
    name = "x" * 42
    workdir.write("m.yaml", TASK.replace("checkout-smoke", name))

    assert workdir.load().resources[f"PerfTestTask/{name}"].spec["name"] == name


def test_a_too_long_spec_name_is_still_reported_at_spec_name(workdir):
    workdir.write("m.yaml", TASK + f"  name: {LONG_NAME}\n")

    assert workdir.problems() == [
        f"m.yaml:9: PerfTestTask/checkout-smoke: spec.name: {LONG_NAME!r} is too long",
    ]


def test_a_lifecycle_carries_its_guards_and_a_misspelt_ignored_field_is_an_error(workdir):
    guarded = TASK.replace(
        "  name: checkout-smoke\n",
        "  name: checkout-smoke\n  lifecycle: {prevent_destroy: true, ignore_changes: [case_id_list]}\n",
    )
    workdir.write("m.yaml", guarded)
    resource = workdir.load().resources["PerfTestTask/checkout-smoke"]
    assert resource.prevent_destroy and resource.ignore_changes == {"case_id_list"}

    workdir.write("m.yaml", guarded.replace("[case_id_list]", "[case_ids]"))
    [problem] = workdir.problems()
    assert problem.startswith(
        "m.yaml:5: PerfTestTask/checkout-smoke: metadata.lifecycle.ignore_changes.0: 'case_ids' is not a field of "
        "a PerfTestTask spec; one of: case_id_list,"
    )
