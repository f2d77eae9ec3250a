"""A scratch manifest directory per test.

``workdir`` is an empty temporary directory, made the current directory so problems read as the user would
see them (``m.yaml:7: ...``), holding ``providers.yaml`` with one provider of each type so a test only writes
the documents it is about.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import DesiredState, load

PROVIDERS = """\
apiVersion: reconciler/v1
kind: PerfTestProvider
metadata:
  name: perftest
spec:
  region: cn-north-4
  cloud_project_id: 0123456789abcdef0123456789abcdef
  credentials: {access_key_env: HUAWEICLOUD_SDK_AK, secret_key_env: HUAWEICLOUD_SDK_SK}
---
apiVersion: reconciler/v1
kind: TolokaProvider
metadata:
  name: toloka
spec:
  credentials: {token_env: TOLOKA_API_KEY}
"""


class Workdir:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        """Write ``text`` (dedented, so tests can indent it) to ``name`` under the directory."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def write_providers(self, directory: str) -> Path:
        """One provider of each type in ``directory``, for tests that load only that directory."""
        return self.write(f"{directory}/providers.yaml", PROVIDERS)

    def load(self, *paths: str) -> DesiredState:
        return load(list(paths) or ["."])

    def problems(self, *paths: str) -> list[str]:
        """The problems ``load`` reports, as the lines the CLI prints."""
        with pytest.raises(ManifestError) as caught:
            load(list(paths) or ["."])
        return [str(problem) for problem in caught.value.problems]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workdir:
    monkeypatch.chdir(tmp_path)
    directory = Workdir(tmp_path)
    directory.write_providers(".")
    return directory
