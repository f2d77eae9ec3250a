"""Fixtures of the state suite: ``backend`` (one fresh state per backend of ``BACKENDS``) and ``store``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.state_backends import BACKENDS, Backend

from reconciler.state import StateStore


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()


@pytest.fixture
def store(backend: Backend) -> StateStore:
    return backend.open()
