"""``SandboxAdmin``: the ``/_sandbox`` routes as Python calls, for tests and anything that drives a sandbox.

It talks HTTP like everyone else, so it works the same against an in-process ``SandboxServer`` and one
started with ``reconciler sandbox serve`` in another process.
"""

from __future__ import annotations

from typing import Any

import httpx

from .faults import FaultSpec


class SandboxAdmin:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/_sandbox{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        """Everything the world holds: perftest_tasks, task_suites, operations, pools, test_projects."""
        result: dict[str, list[dict[str, Any]]] = self._call("GET", "/objects")
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stats(self) -> dict[str, Any]:
        """``{"routes": {"POST /v3/{project_id}/tasks": {"201": n, ...}}, "faults": {...}, ...}``."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def set_faults(self, spec: str | FaultSpec | None) -> None:
        """Replace the faults (None or "" clears them); the fault sequence starts again."""
        self._call("PUT", "/faults", json={"spec": str(spec or "")})

    def delete_object(self, kind: str, object_id: str | int) -> None:
        self._call("DELETE", f"/objects/{kind}/{object_id}")

    def patch_object(self, kind: str, object_id: str | int, fields: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PATCH", f"/objects/{kind}/{object_id}", json=fields)
        return result

    def archive_operation_log(self, operation_id: str) -> None:
        self._call("POST", f"/operations/{operation_id}/archive-log")

    def add_pool(self, pool_id: str, *, default_overlap: int | None = None, status: str = "CLOSED") -> dict[str, Any]:
        body = {"id": pool_id, "default_overlap": default_overlap, "status": status}
        result: dict[str, Any] = self._call("POST", "/pools", json=body)
        return result

    def add_test_project(self, project_id: int, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/test_projects", json={"id": project_id, "name": name})
        return result
