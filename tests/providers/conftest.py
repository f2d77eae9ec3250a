"""Fixtures for the provider tests: fake servers that are closed after each test, and a recording sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from helpers.fake_server import FakeServer, Handler


@pytest.fixture
def fake_server() -> Iterator[Callable[[Handler], FakeServer]]:
    servers: list[FakeServer] = []

    def start(handler: Handler) -> FakeServer:
        server = FakeServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def sleeps() -> list[float]:
    """Pass ``sleep=sleeps.append``: backoffs are recorded, not slept; counting them counts retries."""
    return []
