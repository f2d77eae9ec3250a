"""Fixtures of the state suite: ``backend`` (one fresh state per backend of ``BACKENDS``) and ``store``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper modules beside this file, under any import mode

from state_backends import BACKENDS, Backend  # noqa: E402

from reconciler.state import StateStore  # noqa: E402


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = BACKENDS[request.param](tmp_path)
    yield made
    made.close()


@pytest.fixture
def store(backend: Backend) -> StateStore:
    return backend.open()
