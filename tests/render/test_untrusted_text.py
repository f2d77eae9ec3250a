"""Text the tool did not write itself cannot drive the terminal (issue 12).

Addresses come from manifests and data rows, reasons and messages from server answers: any of them may hold an
ANSI escape sequence (a colour, a screen clear, a window title), a carriage return that overwrites the line, a
newline that forges one, or a bidirectional control that reorders it. Output shows every such character as an
escape (``\\x1b[31m``), with colour or without, while the tool's own colours stay; JSON output escapes them the
JSON way, so a reader decodes the very text that came in.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.applier import ApplyEvent, ApplyResult
from reconciler.cli import cli
from reconciler.plan import Action, ActionType, FieldChange, Plan
from reconciler.render import ApplyReporter, Printer, render_plan, write_event

#: Any text at all, lone surrogates included (a JSONL row can carry one as ``\\ud800``).
UNTRUSTED = st.text(st.characters(exclude_categories=()), max_size=24)
#: The styles the tool itself writes (click.style): colours, bold, reset.
TOOL_STYLE = re.compile(r"\x1b\[(?:0|1|22|3[0-7])m")
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def drives_the_terminal(char: str) -> bool:
    """Whether a terminal would act on ``char`` rather than show it (the tab aside, which only moves along)."""
    return char != "\t" and (unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI)


def raw_controls(output: str) -> list[str]:
    """The characters of ``output`` a terminal would act on, besides its line breaks and the tool's styles."""
    return [c for c in TOOL_STYLE.sub("", output) if c != "\n" and drives_the_terminal(c)]


def plan_with(name: str, reason: str, value: str) -> Plan:
    actions = (
        Action(ActionType.CREATE, f"TaskSuiteSet/set/{name}", "TaskSuiteSet", "toloka", reason, attempt=1),
        Action(
            ActionType.CHANGE,
            f"TaskSuite/{name}",
            "TaskSuite",
            "toloka",
            reason,
            diff=(FieldChange(f"tasks[0].input_values.{name}", "changed", value, name),),
        ),
    )
    return Plan(lineage="l", serial=1, workspace="default", manifest_digest="d", actions=actions, noop_count=0)


def rendered(the_plan: Plan, *, color: bool) -> str:
    out = io.StringIO()
    render_plan(the_plan, Printer(out, color=color), verbose=True)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(name=UNTRUSTED, reason=UNTRUSTED, value=UNTRUSTED, color=st.booleans())
def test_a_plan_shows_untrusted_text_escaped_on_the_lines_it_belongs_to(
    name: str, reason: str, value: str, color: bool
) -> None:
    output = rendered(plan_with(name, reason, value), color=color)

    assert raw_controls(output) == []
    assert output.count("\n") == rendered(plan_with("n", "r", "v"), color=color).count("\n")
    if "\x1b" in name:
        assert "\\x1b" in output


@settings(max_examples=100, deadline=None)
@given(address=UNTRUSTED, message=UNTRUSTED)
def test_apply_lines_show_a_servers_message_escaped_one_line_per_event(address: str, message: str) -> None:
    out = io.StringIO()
    reporter = ApplyReporter(Printer(out, color=True), as_json=False, total=3, verbose=True)
    with reporter:
        reporter.event(ApplyEvent("failed", f"TaskSuite/{address}", "op", message=message))
        reporter.event(ApplyEvent("warning", f"TaskSuite/{address}", "op", message=message))
    reporter.summary(ApplyResult(failed=[(address, message)], stopped_by=f"the server said {message}"))
    output = out.getvalue()

    assert raw_controls(output) == []
    assert output.count("\n") == 5  # two events, a blank line, the summary, the reason it stopped


@settings(max_examples=100, deadline=None)
@given(address=UNTRUSTED, message=UNTRUSTED)
def test_json_events_carry_untrusted_text_escaped_and_decode_back_to_it(address: str, message: str) -> None:
    out = io.StringIO()
    write_event(out, {"type": "apply_failed", "address": address, "message": message})
    [line] = out.getvalue().splitlines()

    assert not any(drives_the_terminal(c) for c in line)
    assert json.loads(line) == {"type": "apply_failed", "address": address, "message": message}


# --- through the command line ---------------------------------------------------------------------------------

PROVIDER_AND_SET = """\
apiVersion: reconciler/v1
kind: TolokaProvider
metadata: {name: toloka}
spec: {endpoint: "http://127.0.0.1:9", credentials: {token_env: TOLOKA_KEY}}
---
apiVersion: reconciler/v1
kind: TaskSuiteSet
metadata: {name: reviews}
spec:
  source: rows.jsonl
  key: id
  template: {pool_id: "5", overlap: 1}
"""
#: Data keys that become addresses: a colour, and a window title set by an OSC sequence ended by BEL.
ROWS = '{"id": "a\\u001b[31mred", "text": "x"}\n{"id": "b\\u001b]0;pwned\\u0007", "text": "y"}\n'


def on_a_terminal(args: list[str], cwd: Path) -> str:
    """What ``reconciler ARGS`` writes to a terminal (a pseudo-terminal here, so colours are on)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "RECONCILER_FAILPOINT")}
    controller, terminal = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    ) as process:
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end closed: the process is done writing
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_escape_sequences_in_data_keys_are_shown_escaped_by_plan_with_and_without_colour(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(PROVIDER_AND_SET)
    (tmp_path / "rows.jsonl").write_text(ROWS)

    coloured = on_a_terminal(["plan", "."], tmp_path)
    plain = on_a_terminal(["plan", ".", "--no-color"], tmp_path)

    for output in (coloured, plain):
        assert "TaskSuiteSet/reviews/a\\x1b[31mred" in output, output
        assert "TaskSuiteSet/reviews/b\\x1b]0;pwned\\x07" in output, output
        assert raw_controls(output) == []
    assert TOOL_STYLE.search(coloured), "the tool's own colours are gone"
    assert "\x1b" not in plain


def test_an_error_naming_a_file_with_an_escape_sequence_shows_it_escaped(tmp_path: Path) -> None:
    bad = tmp_path / "evil\x1b[2J\x1b[31m.yaml"
    bad.write_text('apiVersion: reconciler/v1\nkind: TaskSuite\nmetadata: {name: x}\nspec: {"\\e[32mkey": 1}\n')

    done = CliRunner().invoke(cli, ["validate", str(tmp_path), "--no-color"], catch_exceptions=False)

    assert done.exit_code == 1
    assert "evil\\x1b[2J\\x1b[31m.yaml" in done.stderr, done.stderr
    assert "\\x1b[32mkey" in done.stderr
    assert raw_controls(done.stderr) == [] and "\x1b" not in done.stderr
