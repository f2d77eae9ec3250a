"""Input built to hurt the machine that reads it ends in one clear error: exit 1, nothing sent, no traceback.

Each folder under ``hostile_cases/`` is one such input, seen ending otherwise before (issue 12): its files,
``expected.txt`` (the problem lines, one fragment each; the command must print exactly that many) and
optionally ``args.txt`` (the paths given, default ``.``). Every case runs through ``validate`` and through
``plan`` with providers pointing at the sandbox, which must receive nothing. To add a case, add a folder.

The tests after the cases cover what a folder cannot hold (a 16 MiB file, 10,000 aliases, a memory cap) and
what the manifest root is when several paths are given.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers.apply_project import offline_providers_yaml

from reconciler.cli import cli
from reconciler.manifest import load

CASES = Path(__file__).parent / "hostile_cases"
SUMMARY_SUFFIX = "in the manifests; nothing was sent."


def run_cli(directory: Path, *args: str) -> tuple[int, str]:
    """The command in-process, from ``directory``: (exit status, what it printed on standard error)."""
    with contextlib.chdir(directory):
        result = CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args} raised {result.exception!r}") from result.exception
    return result.exit_code, result.stderr


def problem_lines(stderr: str) -> list[str]:
    """The problem lines of a failed load, once its closing summary was checked to count them."""
    lines = stderr.splitlines()
    assert lines and lines[-1].endswith(SUMMARY_SUFFIX), stderr
    problems = lines[:-1]
    count = int(lines[-1].split()[0])
    assert count == len(problems), stderr
    return problems


def assert_clean_failure(stderr: str) -> None:
    """Not what the CLI prints for an error it did not expect (``cli.options.guarded``), nor a raw traceback."""
    assert "Error: unexpected " not in stderr and "This is a bug" not in stderr, stderr
    assert "Traceback (most recent call last)" not in stderr, stderr


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", case_names())
def test_hostile_input_ends_in_exactly_its_expected_problems_and_sends_nothing(
    name: str, tmp_path: Path, sandbox: Any
) -> None:
    case = CASES / name
    project = tmp_path / "project"
    shutil.copytree(case, project, ignore=shutil.ignore_patterns("expected.txt", "args.txt"))
    (project / "providers.yaml").write_text(offline_providers_yaml(sandbox.url))
    expected = [line for line in (case / "expected.txt").read_text().splitlines() if line]
    paths = (case / "args.txt").read_text().split() if (case / "args.txt").exists() else ["."]

    for command in (["validate", *paths], ["plan", *paths, "--state", str(tmp_path / "state.db")]):
        status, stderr = run_cli(project, *command)

        assert status == 1, (command, stderr)
        assert_clean_failure(stderr)
        problems = problem_lines(stderr)
        assert len(problems) == len(expected), stderr
        for fragment, line in zip(expected, problems, strict=True):
            assert fragment in line, (fragment, stderr)
    assert sandbox.stats()["total"] == 0
    assert not (tmp_path / "state.db").exists()


def _limited_to_one_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_the_alias_bomb_is_refused_within_a_gigabyte_of_memory_as_a_real_process(tmp_path: Path) -> None:
    """Before the limits it was reported Valid after 27 s and 3.1 GB; capped at 1 GiB it must still end
    cleanly, naming the file and the limit (a MemoryError would be an "unexpected" error)."""
    shutil.copy(CASES / "alias_bomb" / "bomb.yaml", tmp_path / "bomb.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "bomb.yaml"],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=_limited_to_one_gib,
    )

    assert done.returncode == 1, done.stderr
    assert problem_lines(done.stderr) == [
        "bomb.yaml:14: aliases repeat more than 100,000 values (limit: alias expansion); a manifest needs no "
        "alias repeated that often"
    ]


def test_more_alias_uses_than_the_limit_is_one_problem_naming_the_limit(tmp_path: Path) -> None:
    aliases = "".join("      - *v\n" for _ in range(10_001))
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuite\nmetadata: {name: many}\nspec:\n"
        f"  tasks:\n  - input_values:\n      v: &v x\n      list:\n{aliases}"
    )

    status, stderr = run_cli(tmp_path, "validate", ".")

    assert status == 1
    assert problem_lines(stderr) == ["m.yaml:10009: more than 10,000 alias uses in one file (limit: aliases)"]


def test_a_million_values_written_out_is_one_problem_naming_the_limit(tmp_path: Path) -> None:
    """Without a single alias: composing them would cost seconds and hundreds of megabytes per million."""
    (tmp_path / "m.json").write_text(
        '{"apiVersion": "reconciler/v1", "kind": "TaskSuite", "metadata": {"name": "wide"}, "spec": {"tasks": '
        "[" + ", ".join(["1"] * 1_000_001) + "]}}"
    )

    status, stderr = run_cli(tmp_path, "validate", ".")

    assert status == 1
    assert problem_lines(stderr) == [
        "m.json:1: more than 1,000,000 values in one file (limit: values per file); split it, or give many tasks "
        "as a TaskSuiteSet's data file"
    ]


def test_a_manifest_file_over_16_mib_is_one_problem_naming_the_limit_and_a_huge_data_file_is_skipped(
    tmp_path: Path,
) -> None:
    filler = "#" + "x" * 1022 + "\n"
    (tmp_path / "big.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuite\n" + filler * (16 * 1024 + 1) + "metadata: {name: big}\n"
    )
    (tmp_path / "fixture.json").write_text("[" + ",".join(["1"] * (9 * 1024 * 1024)) + "]")  # not ours

    status, stderr = run_cli(tmp_path, "validate", ".")

    assert status == 1
    assert problem_lines(stderr) == [
        "big.yaml: the file is 16,777,217 bytes or more; a manifest file may be at most 16,777,216 (limit: file size)"
    ]


def test_plain_timestamps_stay_the_text_written_and_csv_cells_reading_nan_are_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user who writes ``2024-01-01`` means that text (JSON has no dates); a CSV cell is text, so ``NaN``
    there is three letters, not a number to refuse."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "providers.yaml").write_text(offline_providers_yaml("https://toloka.example"))
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuite\nmetadata: {name: dated}\nspec:\n  pool_id: '1'\n"
        "  overlap: 1\n  tasks:\n  - input_values: {day: 2024-01-01, at: 2024-01-01 10:00:00+02:00, "
        "explicit: !!timestamp 2001-12-14}\n"
    )
    (tmp_path / "rows.csv").write_text("id,score\nr1,NaN\nr2,Infinity\n")
    (tmp_path / "set.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata: {name: cells}\n"
        "spec: {source: rows.csv, key: id, template: {pool_id: '1', overlap: 1}}\n"
    )

    resources = load(["."]).resources

    assert resources["TaskSuite/dated"].spec["tasks"][0]["input_values"] == {
        "day": "2024-01-01",
        "at": "2024-01-01 10:00:00+02:00",
        "explicit": "2001-12-14",
    }
    assert [r.spec["tasks"][0]["input_values"]["score"] for a, r in resources.items() if "cells" in a] == [
        "NaN",
        "Infinity",
    ]


def test_a_json_manifest_reads_exponent_numbers_as_numbers_not_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """YAML 1.1 reads ``1e5`` as text; in a ``.json`` file it is the number JSON says it is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "providers.yaml").write_text(offline_providers_yaml("https://toloka.example"))
    (tmp_path / "m.json").write_text(
        '{"apiVersion": "reconciler/v1", "kind": "TaskSuite", "metadata": {"name": "j"}, "spec": {"pool_id": "1", '
        '"overlap": 1, "tasks": [{"input_values": {"a": 1e5, "b": -2.5E-3, "c": "1e5"}}]}}'
    )

    values = load(["."]).resources["TaskSuite/j"].spec["tasks"][0]["input_values"]

    assert values == {"a": 100000.0, "b": -0.0025, "c": "1e5"}


# --- the manifest root --------------------------------------------------------------------------------------


def set_yaml(source: str, name: str = "reviews") -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: TaskSuiteSet\nmetadata: {{name: {name}}}\n"
        f"spec: {{source: '{source}', key: id, template: {{pool_id: '1', overlap: 1}}}}\n"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``a/`` and ``b/`` each with a manifest and data; ``outside/`` with data nobody named."""
    for folder in ("a", "b", "outside"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rows.jsonl").write_text('{"id": "r1"}\n')
    (tmp_path / "a" / "providers.yaml").write_text(offline_providers_yaml("https://toloka.example"))
    return tmp_path


def sources_refused(root: Path, *paths: str) -> list[str]:
    status, stderr = run_cli(root, "validate", *paths)
    assert_clean_failure(stderr)
    return [] if status == 0 else problem_lines(stderr)


def test_each_named_directory_is_a_root_and_their_common_parent_is_not(tree: Path) -> None:
    (tree / "a" / "from_b.yaml").write_text(set_yaml("../b/rows.jsonl", "from-b"))
    (tree / "a" / "from_outside.yaml").write_text(set_yaml("../outside/rows.jsonl", "from-outside"))

    refused = sources_refused(tree, "a", "b")

    assert len(refused) == 1
    assert refused[0].startswith(
        f"a/from_outside.yaml:4: TaskSuiteSet/from-outside: spec.source: '../outside/rows.jsonl' resolves outside "
        f"the manifest roots {tree / 'a'}, {tree / 'b'}"
    )


def test_a_manifest_named_as_a_file_reads_data_beside_it_but_not_above_it(tree: Path) -> None:
    (tree / "b" / "beside.yaml").write_text(set_yaml("rows.jsonl", "beside"))
    (tree / "b" / "above.yaml").write_text(set_yaml("../outside/rows.jsonl", "above"))

    refused = sources_refused(tree, "a/providers.yaml", "b/beside.yaml", "b/above.yaml")

    assert len(refused) == 1
    assert refused[0].startswith(
        f"b/above.yaml:4: TaskSuiteSet/above: spec.source: '../outside/rows.jsonl' resolves outside the manifest "
        f"root {tree / 'b'}"
    )


def test_a_file_argument_does_not_let_manifests_of_a_named_directory_read_beside_it(tree: Path) -> None:
    (tree / "a" / "set.yaml").write_text(set_yaml("../outside/rows.jsonl"))
    (tree / "outside" / "unrelated.yaml").write_text("kind: not a manifest\n")

    refused = sources_refused(tree, "a", "outside/unrelated.yaml")

    assert len(refused) == 1
    assert "'../outside/rows.jsonl' resolves outside the manifest root" in refused[0]


def test_a_symlink_leaving_a_named_directory_stays_refused(tree: Path) -> None:
    (tree / "a" / "link.jsonl").symlink_to(tree / "outside" / "rows.jsonl")
    (tree / "a" / "set.yaml").write_text(set_yaml("link.jsonl"))

    refused = sources_refused(tree, "a", "outside/rows.jsonl")

    assert len(refused) == 1
    assert "'link.jsonl' resolves outside the manifest root" in refused[0]
