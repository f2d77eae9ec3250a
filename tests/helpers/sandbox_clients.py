"""Small clients for the sandbox tests: signed CPTS calls and authenticated Toloka calls over httpx."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from reconciler.providers import signing


def sdk_date(offset_s: float = 0.0) -> str:
    return time.strftime(signing.DATE_FORMAT, time.gmtime(time.time() + offset_s))


class PerfTestClient:
    """Signs every request with SDK-HMAC-SHA256 as huaweicloudsdkcore would."""

    def __init__(self, sandbox: Any, *, secret_key: str | None = None, access_key: str | None = None) -> None:
        self.sandbox = sandbox
        self.project = sandbox.cloud_project_id
        self.access_key = access_key or sandbox.access_key
        self.secret_key = secret_key or sandbox.secret_key
        self.http = httpx.Client(base_url=sandbox.url, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        date_offset_s: float = 0.0,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        raw = json.dumps(body).encode() if body is not None else b""
        url = f"{self.sandbox.url}{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {
            "Content-Type": "application/json",
            "Host": httpx.URL(self.sandbox.url).netloc.decode(),
            "X-Sdk-Date": sdk_date(date_offset_s),
            "X-Project-Id": self.project,
            **(extra_headers or {}),
        }
        headers["Authorization"] = signing.sign(
            method=method,
            url=url,
            headers=headers,
            body=raw,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )
        return self.http.request(method, url, content=raw, headers=headers)

    def create_task(self, *, project_id: int = 42, name: str = "smoke", **fields: Any) -> httpx.Response:
        body = {
            "name": name,
            "parallel": True,
            "project_id": project_id,
            "operate_mode": 2,
            "case_id_list": [1, 2],
        }
        body.update(fields)
        return self.request("POST", f"/v3/{self.project}/tasks", body=body)

    def show_task(self, task_id: int | str) -> httpx.Response:
        return self.request("GET", f"/v1/{self.project}/tasks/{task_id}")

    def list_tasks(self, test_project_id: int, **params: Any) -> httpx.Response:
        return self.request("GET", f"/v1/{self.project}/all-tasks/{test_project_id}", params=params or None)


class TolokaClient:
    def __init__(self, sandbox: Any, *, token: str | None = None, scheme: str = "ApiKey") -> None:
        self.http = httpx.Client(
            base_url=sandbox.url,
            headers={"Authorization": f"{scheme} {token or sandbox.toloka_token}"},
            timeout=30,
        )

    def create(self, suites: Any, **params: Any) -> httpx.Response:
        query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
        return self.http.post("/api/v1/task-suites", json=suites, params=query)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v1{path}", params=params)

    def wait(self, operation_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            operation: dict[str, Any] = self.get(f"/operations/{operation_id}").json()
            if operation["status"] in ("SUCCESS", "FAIL") or time.monotonic() > deadline:
                return operation
            time.sleep(0.01)


def suite(pool_id: str = "1001", overlap: int | None = 1, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"pool_id": pool_id, "tasks": [{"input_values": {"text": "hello"}}]}
    if overlap is not None:
        doc["overlap"] = overlap
    doc.update(fields)
    return doc
