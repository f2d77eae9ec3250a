"""`reconciler validate` as a user meets it (a real subprocess) on mistakes that used to pass or to flood:
a task name defaulted from a metadata.name the API refuses, and a misspelt column of a data file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def suite_set(source: str, key: str) -> str:
    return f"""\
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata:
  name: reviews
spec:
  source: {source}
  key: {key}
  template: {{pool_id: "36502086", overlap: 3}}
"""


def validate(workdir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "."],
        cwd=workdir.root,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_validate_refuses_a_task_whose_name_defaulted_from_metadata_name_is_longer_than_the_api_takes(workdir):
    name = "checkout-smoke-test-for-the-black-friday-weekend"  # 48 characters
    workdir.write("tasks.yaml", TASK.replace("checkout-smoke", name))

    done = validate(workdir)

    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"tasks.yaml:4: PerfTestTask/{name}: metadata.name: used as the task name, since spec.name is not set, "
        f"but a PerfTest task name is 1-42 characters long and {name!r} has 48" in done.stderr
    )


def test_validate_reports_a_misspelt_csv_key_once_at_the_header_not_once_per_row(workdir):
    workdir.write("reviews.csv", "review_id,text\n" + "".join(f"r{i},review {i}\n" for i in range(5000)))
    workdir.write("set.yaml", suite_set(source="reviews.csv", key="reviw_id"))

    done = validate(workdir)

    assert done.returncode == 1, done.stdout + done.stderr
    about_the_data = [line for line in done.stderr.splitlines() if line.startswith("reviews.csv")]
    assert about_the_data == [
        "reviews.csv:1: TaskSuiteSet/reviews: spec.key: the header has no column 'reviw_id' (did you mean "
        "'review_id'?); its columns: 'review_id', 'text'"
    ]
    assert "more problems" not in done.stderr


def test_validate_reports_a_key_no_jsonl_row_has_once(workdir):
    workdir.write(
        "reviews.jsonl", "".join(json.dumps({"id": f"r{i}", "text": "t", "lang": "en"}) + "\n" for i in range(5000))
    )
    workdir.write("set.yaml", suite_set(source="reviews.jsonl", key="review_id"))

    done = validate(workdir)

    assert done.returncode == 1, done.stdout + done.stderr
    about_the_data = [line for line in done.stderr.splitlines() if line.startswith("reviews.jsonl")]
    assert about_the_data == [
        "reviews.jsonl:1: TaskSuiteSet/reviews: spec.key: none of the 5000 rows has the column 'review_id'; this "
        "one has 'id', 'text', 'lang'"
    ]
