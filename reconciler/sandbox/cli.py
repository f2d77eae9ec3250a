"""``reconciler sandbox serve``: run the emulator in the foreground until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import gc
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from .app import is_loopback
from .faults import FaultSpec, FaultSpecError
from .persistence import StoreError
from .seed import Credentials, SandboxSeed, SeedError
from .server import SandboxServer


def _limit(value: float) -> float | None:
    return None if value <= 0 else value


@click.group(name="sandbox")
def sandbox() -> None:
    """A local emulator of the CodeArts PerfTest and Toloka APIs, for trying reconciler without an account."""


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option(
    "--seed",
    "seed_path",
    type=click.Path(path_type=Path),
    help="YAML file with pools, test_projects and credentials the world starts with.",
)
@click.option("--auto-create", is_flag=True, help="Any pool or test project a request names exists.")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep the world in this SQLite file so it survives a restart (default: memory only).",
)
@click.option(
    "--faults",
    default="",
    metavar="SPEC",
    help="Inject faults, e.g. '500=0.05,429=0.05,retry_after=1,lost_ack=0.02,latency_ms=5-50,seed=7' "
    "(see reconciler.sandbox.faults for the grammar).",
)
@click.option("--toloka-rps", default=300.0, show_default=True, help="Toloka requests per second (0: unlimited).")
@click.option(
    "--perftest-rps",
    default=200.0,
    show_default=True,
    help="Calls per second per PerfTest API (0: unlimited).",
)
@click.option("--suite-quota", default=100_000, show_default=True, help="Task suites per minute (0: unlimited).")
@click.option(
    "--expose-admin",
    is_flag=True,
    help="Let clients on other machines use the admin routes (/_sandbox: credentials, reset, faults); by "
    "default only this machine's may.",
)
def serve(
    host: str,
    port: int,
    seed_path: Path | None,
    auto_create: bool,
    data_path: Path | None,
    faults: str,
    toloka_rps: float,
    perftest_rps: float,
    suite_quota: int,
    expose_admin: bool,
) -> None:
    """Serve both APIs on one port: PerfTest under /v1 and /v3, Toloka under /api/v1, admin under /_sandbox.

    Without credentials in the seed, it accepts the access key SANDBOXAK with secret key SANDBOXSK for the
    cloud project 0123456789abcdef0123456789abcdef (or the IAM token sandbox-iam-token), and the Toloka key
    sandbox-token.
    """
    try:
        spec = FaultSpec.parse(faults)
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    try:
        seed = SandboxSeed.from_yaml(seed_path) if seed_path is not None else None
    except SeedError as exc:
        raise click.BadParameter(str(exc), param_hint="--seed") from None
    server = SandboxServer(
        host=host,
        port=port,
        seed=seed,
        auto_create=auto_create,
        data_path=data_path,
        faults=spec,
        toloka_requests_per_second=_limit(toloka_rps),
        perftest_requests_per_second=_limit(perftest_rps),
        suites_per_minute=int(suite_quota) if suite_quota > 0 else None,
        log_level="warning",
        admin_anywhere=expose_admin,
    )
    # A busy sandbox holds hundreds of thousands of long-lived objects that the default thresholds make the
    # cyclic garbage collector rescan all the time (40% of the time spent on a large batch). This process is
    # the sandbox's own, so it can afford fewer collections; in-process servers leave the host's settings alone.
    gc.set_threshold(50_000, 20, 100)
    try:
        server.start()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"sandbox listening on {server.url} (Ctrl-C to stop)")
    if not is_loopback(host):
        for line in exposure_warning(host, expose_admin):
            click.echo(f"Warning: {line}", err=True)
    click.echo("Point reconciler at it (for providers named perftest and toloka, as in examples/) with:")
    for line in environment_lines(server.url, server.credentials):
        click.echo(f"  {line}")
    if data_path is not None:
        click.echo(f"world kept in {data_path}")
    if not spec.is_empty:
        click.echo(f"faults: {spec}")
    _wait_for_interrupt(server)


#: The credential variables the example providers name (examples/providers.yaml).
EXAMPLE_CREDENTIAL_VARIABLES = {
    "access_key": "HUAWEICLOUD_SDK_AK",
    "secret_key": "HUAWEICLOUD_SDK_SK",
    "toloka_token": "TOLOKA_API_KEY",
}


def environment_lines(url: str, credentials: Credentials) -> list[str]:
    """``export NAME=value`` lines that point the example providers (named perftest and toloka) at this sandbox.

    The override names follow ``reconciler.providers.factory.override_variable`` (``RECONCILER_<NAME>_<FIELD>``);
    they are spelled here because the emulator imports nothing of the tool but request signing. The values
    are the sandbox's own credentials (public defaults unless seeded), not anyone's secrets.
    """
    pairs = [
        ("RECONCILER_PERFTEST_ENDPOINT", url),
        ("RECONCILER_PERFTEST_CLOUD_PROJECT_ID", credentials.cloud_project_id),
        ("RECONCILER_TOLOKA_ENDPOINT", url),
        (EXAMPLE_CREDENTIAL_VARIABLES["access_key"], credentials.access_key),
        (EXAMPLE_CREDENTIAL_VARIABLES["secret_key"], credentials.secret_key),
    ]
    if credentials.toloka_tokens:
        pairs.append((EXAMPLE_CREDENTIAL_VARIABLES["toloka_token"], credentials.toloka_tokens[0]))
    return [f"export {name}={shlex.quote(value)}" for name, value in pairs]


def exposure_warning(host: str, expose_admin: bool) -> list[str]:
    """What a bind beyond loopback lets other machines do, said before anyone does it."""
    lines = [
        f"listening on {host}, not only on this machine: other machines can use both emulated APIs, whose "
        "credentials are the sandbox's public defaults unless seeded."
    ]
    if expose_admin:
        lines.append(
            "--expose-admin: other machines can also read the credentials (/_sandbox/info), reset the world and "
            "set faults."
        )
    else:
        lines.append("The admin routes (/_sandbox) still answer this machine only (--expose-admin to change that).")
    return lines


def _wait_for_interrupt(server: SandboxServer) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(0.2) and server.is_running:
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        click.echo("sandbox stopped", err=True)
    sys.stdout.flush()
