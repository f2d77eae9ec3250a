"""``SandboxServer``: the emulator on a real loopback port, run by uvicorn in a background thread.

The socket is bound before the thread starts, so ``port=0`` yields a free port that is known (``url``) as soon
as ``start()`` returns, and a port already in use fails in the caller's thread with an ``OSError``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from types import TracebackType

import uvicorn

from .app import build_app
from .faults import FaultSpec
from .limits import Limits
from .persistence import MemoryStore, SqliteStore, Store
from .runtime import SandboxRuntime
from .seed import Credentials, SandboxSeed
from .world import World

_STARTUP_TIMEOUT_S = 10.0


class SandboxServer:
    """A running (once started) sandbox.

    ``seed``: pools, test projects and credentials; ``auto_create``: any referenced pool or test project
    exists; ``data_path``: keep the world in this SQLite file (default: memory); ``faults``: a spec string or
    ``FaultSpec``. The keyword-only arguments tune the rate limits (``None`` turns one off) and how long an
    asynchronous operation takes (``operation_base_s + operation_per_item_s * items``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: SandboxSeed | None = None,
        auto_create: bool = False,
        data_path: Path | str | None = None,
        faults: FaultSpec | str | None = None,
        *,
        toloka_requests_per_second: float | None = 300,
        perftest_requests_per_second: float | None = 200,
        suites_per_minute: int | None = 100_000,
        operation_base_s: float = 0.03,
        operation_per_item_s: float = 0.00001,
        log_level: str = "warning",
        admin_anywhere: bool = False,
    ) -> None:
        self.host = host
        self.admin_anywhere = admin_anywhere
        self.port = port
        self.seed = seed or SandboxSeed()
        self.auto_create = auto_create
        self.data_path = Path(data_path) if data_path is not None else None
        self.faults = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.limits = Limits(
            toloka_requests_per_second=toloka_requests_per_second,
            perftest_requests_per_second=perftest_requests_per_second,
            suites_per_minute=suites_per_minute,
        )
        self.operation_base_s = operation_base_s
        self.operation_per_item_s = operation_per_item_s
        self.log_level = log_level
        self.runtime: SandboxRuntime | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    @property
    def credentials(self) -> Credentials:
        return self.seed.credentials

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def world(self) -> World:
        """The live world, for in-process inspection (prefer ``/_sandbox/objects`` in tests)."""
        if self.runtime is None:
            raise RuntimeError("the sandbox is not started")
        return self.runtime.world

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox is already started")
        store: Store = SqliteStore(self.data_path) if self.data_path is not None else MemoryStore()
        world = World(
            self.seed,
            auto_create=self.auto_create,
            store=store,
            operation_base_s=self.operation_base_s,
            operation_per_item_s=self.operation_per_item_s,
        )
        try:
            sock = self._bind()
        except OSError:
            world.close()
            raise
        self.port = sock.getsockname()[1]
        self.runtime = SandboxRuntime(world, self.limits, self.faults, admin_anywhere=self.admin_anywhere)
        config = uvicorn.Config(
            build_app(self.runtime),
            http="auto",
            loop="asyncio",
            lifespan="off",
            log_config=None,
            log_level=self.log_level,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name=f"sandbox:{self.port}", daemon=True)
        self._thread.start()
        self._wait_until_serving()
        return self

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it every answer waits ~40 ms for the client's delayed ACK (headers and body are two writes).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _run(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start() or stop(), never lost in the thread
            self._crash = exc
        finally:
            sock.close()

    def _wait_until_serving(self) -> None:
        assert self._server is not None and self._thread is not None
        self._thread.join(0)
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive() or waited > _STARTUP_TIMEOUT_S:
                crash = self._crash
                self.stop()
                raise RuntimeError(f"the sandbox did not start: {crash or 'timed out'}")
            self._thread.join(0.01)
            waited += 0.01

    def stop(self) -> None:
        """Stop serving and close the data file; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runtime is not None:
            self.runtime.world.close()
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
