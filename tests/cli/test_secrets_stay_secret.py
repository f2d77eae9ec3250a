"""No credential ever leaves the process in anything the tool writes, whatever the server says back (issue 12).

A project with recognisable credentials in its environment (a PerfTest AK/SK and a Toloka key) is applied
against a server that accepts them, one that refuses them, and servers that answer 401, 403 and 503 while
quoting the received ``Authorization`` (Toloka's ``ApiKey``, PerfTest's signed ``SDK-HMAC-SHA256 Access=...``)
in every place an error answer can carry text (``helpers/echo_server.py``). Then every byte the tool wrote is
searched for the credentials: standard output and error of ``apply`` (text, ``--json``, ``--debug``), ``plan
--out`` and its file, ``show``, ``state list``, ``state show`` of every address, ``state history``, every file
under the project (the state with its ``-wal``/``-shm``, the plan file) and any debug log the tool left in its
temporary directory. A search also looks for the first and the last ten characters of each credential, so that
a message cut short in the middle of one counts as a leak.
"""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from helpers.apply_project import Project, make_project
from helpers.echo_server import echoing
from helpers.fake_server import FakeServer
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import redaction
from reconciler.cli import cli
from reconciler.cli.options import guarded
from reconciler.sandbox import DEFAULT_CLOUD_PROJECT_ID, Credentials, SandboxSeed

ACCESS_KEY = "AKLEAKCANARY7Q2W9E4R"
SECRET_KEY = "SKLEAKCANARY0aZ5xC8vB1nM4kJ7hG2fD5sA9pL3"
TOLOKA_KEY = "AQAAAAtolokaLEAKCANARY0x7Rk2Vw9Lp4Tq8Zm3"
SECRETS = (ACCESS_KEY, SECRET_KEY, TOLOKA_KEY)
TASKS, ROWS = 2, 3


@dataclass(frozen=True)
class Remote:
    """Where the project's providers point, and the credentials its environment holds (``make_project``'s
    ``sandbox`` argument)."""

    url: str
    cloud_project_id: str = DEFAULT_CLOUD_PROJECT_ID
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    toloka_token: str = TOLOKA_KEY


@dataclass(frozen=True)
class World:
    name: str
    remote: Remote
    sandbox: Any = None


def needles() -> list[bytes]:
    found = []
    for secret in SECRETS:
        found += [secret.encode(), secret[:10].encode(), secret[-10:].encode()]
    return found


def leaks(blobs: dict[str, bytes]) -> list[str]:
    return [
        f"{needle.decode()!r} in {where}" for where, blob in blobs.items() for needle in needles() if needle in blob
    ]


@pytest.fixture(params=["sandbox_accepts", "sandbox_refuses", "echo_401", "echo_403", "echo_503"])
def world(request: pytest.FixtureRequest, sandbox_factory: Callable[..., Any]) -> Iterator[World]:
    name: str = request.param
    if name.startswith("sandbox"):
        credentials = Credentials(access_key=ACCESS_KEY, secret_key=SECRET_KEY, toloka_tokens=(TOLOKA_KEY,))
        seed = SandboxSeed(credentials=credentials) if name == "sandbox_accepts" else SandboxSeed()
        handle = sandbox_factory(seed=seed, auto_create=True)
        yield World(name, Remote(url=handle.url), handle)
        return
    status = int(name.removeprefix("echo_"))
    server = FakeServer(echoing(status, answer_listings=status == 403))
    try:
        yield World(name, Remote(url=server.url))
    finally:
        assert server.requests, "the echoing server was never asked anything"
        assert any(ACCESS_KEY in r.headers.get("authorization", "") for r in server.requests)
        assert any(TOLOKA_KEY in r.headers.get("authorization", "") for r in server.requests)
        server.close()


def in_process(proj: Project, *args: str) -> tuple[int, bytes, bytes]:
    """The command as ``reconciler`` runs it, in this process (a fraction of a subprocess's start-up)."""
    done = CliRunner().invoke(cli, list(args), env=proj.env, catch_exceptions=False)
    return done.exit_code, done.stdout_bytes, done.stderr_bytes


def test_no_credential_reaches_output_logs_plans_or_state(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = make_project(tmp_path / "project", world.remote, tasks=TASKS, rows=ROWS)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.chdir(proj.root)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # where a bug's debug log would go, in process
    blobs: dict[str, bytes] = {}

    first = proj.apply("--debug", extra_env={"TMPDIR": str(temporary)})
    blobs["apply --debug: stdout"] = first.stdout.encode()
    blobs["apply --debug: stderr"] = first.stderr.encode()
    assert "DEBUG" in first.stderr, "no debug log was written"
    for name, args in {
        "apply --json": ("apply", "manifests", "--auto-approve", "--json", "--debug"),
        "plan --out": ("plan", "manifests", "--out", "plan.json"),
        "show --json": ("show", "plan.json", "--json"),
        "state list": ("state", "list"),
        "state history": ("state", "history", "--limit", "1000"),
    }.items():
        _, blobs[f"{name}: stdout"], blobs[f"{name}: stderr"] = in_process(proj, *args)
    for address in proj.recorded():
        _, blobs[f"state show {address}"], _ = in_process(proj, "state", "show", address)
    for path in [*proj.root.rglob("*"), *temporary.rglob("*")]:
        if path.is_file():
            blobs[str(path.relative_to(tmp_path))] = path.read_bytes()

    assert not leaks(blobs), "credentials written: " + "; ".join(leaks(blobs))
    if world.name == "sandbox_accepts":
        assert first.returncode == 0, first.stderr
        assert len(world.sandbox.objects()["task_suites"]) == ROWS
    else:
        assert first.returncode == 1
    if world.name.startswith("echo"):
        assert "Access=***" in first.stdout and "ApiKey ***" in first.stdout, first.stdout


def test_a_bugs_debug_log_masks_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    redaction.register(TOLOKA_KEY)

    @guarded
    def crash() -> None:
        raise RuntimeError(f"the server said: Authorization: ApiKey {TOLOKA_KEY}")

    try:
        with pytest.raises(SystemExit) as exited:
            crash()
    finally:
        redaction.forget_all()

    assert exited.value.code == 1
    assert "ApiKey ***" in capsys.readouterr().err
    [log] = tmp_path.glob("reconciler-debug-*.log")
    text = log.read_text()
    assert "RuntimeError" in text and "ApiKey ***" in text
    assert TOLOKA_KEY not in text


# --- the redaction step itself ----------------------------------------------------------------------------------

#: Credentials as providers issue them: letters, digits and a few separators.
CREDENTIAL = st.text(st.sampled_from(string.ascii_letters + string.digits + "-_./+="), min_size=8, max_size=48)
#: Text around a quoted credential: anything but the mask's own character.
AROUND = st.text(st.characters(exclude_characters="*"), max_size=40)
#: Plain prose around a cut-off credential (no header form, which would mask the cut along with its name).
PROSE = st.text(st.sampled_from(string.ascii_letters + string.digits + " ,.;()-"), max_size=40)


@pytest.fixture
def registry() -> Iterator[Callable[..., None]]:
    redaction.forget_all()
    yield redaction.register
    redaction.forget_all()


def quoted(credential: str, form: str) -> str:
    """``credential`` as a message may carry it: as is, inside JSON, in a URL, as Python's repr shows it."""
    return {
        "raw": credential,
        "json": json.dumps(credential)[1:-1],
        "url": quote(credential, safe=""),
        "repr": repr(credential)[1:-1],
    }[form]


@settings(max_examples=200, deadline=None)
@given(
    credential=CREDENTIAL,
    before=AROUND,
    after=AROUND,
    form=st.sampled_from(["raw", "json", "url", "repr"]),
)
def test_a_credential_is_masked_wherever_a_message_quotes_it(
    credential: str, before: str, after: str, form: str
) -> None:
    redaction.forget_all()
    redaction.register(credential)
    try:
        masked = redaction.redact(before + quoted(credential, form) + after)
    finally:
        redaction.forget_all()

    assert credential not in masked and quoted(credential, form) not in masked
    assert redaction.MASK in masked


@settings(max_examples=200, deadline=None)
@given(credential=CREDENTIAL, before=PROSE, data=st.data())
def test_a_message_cut_short_inside_a_credential_shows_none_of_its_start(
    credential: str, before: str, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(redaction.MIN_CUT, len(credential) - 1))
    redaction.forget_all()
    redaction.register(credential)
    try:
        masked = redaction.redact(before + credential[:cut] + "...")
    finally:
        redaction.forget_all()

    assert credential[:cut] not in masked and redaction.MASK in masked  # the cut may leave it whole, then masked


def test_a_short_credential_is_masked_only_where_it_stands_alone(registry: Callable[..., None]) -> None:
    registry("k3y9", "7")

    assert redaction.redact("token k3y9, again:k3y9") == "token ***, again:***"
    assert redaction.redact("monk3y9x stays a word") == "monk3y9x stays a word"
    assert redaction.redact("17 errors in 7 files") == "17 errors in 7 files"


@pytest.mark.parametrize(
    ("said", "shown"),
    [
        (
            "Authorization: SDK-HMAC-SHA256 Access=OTHERKEY0123, SignedHeaders=host;x-sdk-date, Signature=89dab730d626",
            "Authorization: SDK-HMAC-SHA256 Access=***, SignedHeaders=host;x-sdk-date, Signature=***",
        ),
        ("Authorization: ApiKey AQAAAAunknownKey42xyz", "Authorization: ApiKey ***"),
        ("Authorization: OAuth y0_AgAAAAunknown", "Authorization: OAuth ***"),
        (
            '{"X-Auth-Token": "MIIunknown", "x-security-token": "abc"}',
            '{"X-Auth-Token": "***", "x-security-token": "***"}',
        ),
        ("(b'X-Auth-Token', b'MIIunknown')", "(b'X-Auth-Token', b'***')"),
        ("postgresql://ci:hunter2@db.internal/state", "postgresql://ci:***@db.internal/state"),
        ("check the Toloka OAuth token in $TOLOKA_TOKEN", "check the Toloka OAuth token in $TOLOKA_TOKEN"),
        ("Bearer authentication is not supported", "Bearer authentication is not supported"),
    ],
)
def test_credential_headers_are_masked_even_for_keys_never_registered(
    registry: Callable[..., None], said: str, shown: str
) -> None:
    assert redaction.redact(said) == shown
