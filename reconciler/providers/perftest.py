"""CodeArts PerfTest (CPTS): create a task, read one, list a test project's tasks, change or delete one.

The create has no idempotency key, so it is sent with ``idempotent=False``: ``HttpClient`` resends it only
when it certainly never reached the server, and otherwise raises ``OutcomeUnknownError``. The listing and
``find_tasks_by_name`` exist for what the caller does next: find the one task with that name and adopt it.
That only works if the listing is complete, which is why ``list_tasks`` is careful about paging.

A change (``PUT`` with the full body) and a delete are safe to resend, unlike the create: the same full body
leaves the same task whatever happened to an earlier attempt, and a task deleted twice is simply gone.

Two IDs must not be confused: the path's ``{cloud}`` is the 32-hex *cloud* project id; a task body's
``project_id`` (and ``test_project_id`` here) is the integer id of a CPTS *test project*.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, Unpack

import httpx

from reconciler.errors import OutcomeUnknownError, PermanentProviderError, TransientProviderError
from reconciler.providers import signing
from reconciler.providers.http import HttpClient, HttpOptions
from reconciler.providers.quoting import excerpt

#: The code CPTS answers (with HTTP 403) for a task or test project that does not exist or was deleted.
MISSING_CODE = "SVCSTG.CPTS.4032002"
#: The code of every CPTS success answer.
OK_CODE = "SVCSTG.CPTS.0000000"
#: Rows asked for per listing page; a server that caps lower is handled (see ``list_tasks``).
PAGE_SIZE = 100
#: A listing that has not ended after this many pages is a server ignoring our paging: stop, do not spin.
MAX_PAGES = 10_000
#: The most read of one answer, per route, far above any real one (a create answers ~100 bytes, a task ~2 KB,
#: a page of 100 tasks ~50 KB, and a server that ignores ``limit`` and lists 5,000 at once ~2.5 MB; a change
#: answers the task, a delete ~100 bytes), so that a server sending without end meets an error, not the machine's
#: memory.
RESPONSE_CAPS = {"create": 1 << 20, "task": 4 << 20, "listing": 32 << 20, "update": 4 << 20, "delete": 1 << 20}


class AkSkAuth(httpx.Auth):
    """SDK-HMAC-SHA256 request signing, computed per attempt so that a retry carries a fresh ``X-Sdk-Date``.

    Only the headers set here are signed, exactly as ``huaweicloudsdkcore`` does; the gateway recomputes the
    signature from what it receives, so the ``Host`` signed is the one httpx sends.
    """

    requires_request_body = True

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        cloud_project_id: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._cloud_project_id = cloud_project_id
        self._now = now

    def __repr__(self) -> str:
        return "AkSkAuth(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = {
            "Content-Type": "application/json",
            "Host": request.headers["Host"],
            "X-Sdk-Date": self._now().strftime(signing.DATE_FORMAT),
            "X-Project-Id": self._cloud_project_id,
        }
        request.headers.update(signed)
        request.headers["Authorization"] = signing.sign(
            method=request.method,
            url=str(request.url),
            headers=signed,
            body=request.content,
            access_key=self._access_key,
            secret_key=self._secret_key,
        )
        yield request


class TokenAuth(httpx.Auth):
    """An IAM token in ``X-Auth-Token``, with the same project and content headers the SDK sends."""

    def __init__(self, *, token: str, cloud_project_id: str) -> None:
        self._token = token
        self._cloud_project_id = cloud_project_id

    def __repr__(self) -> str:
        return "TokenAuth(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Content-Type"] = "application/json"
        request.headers["X-Project-Id"] = self._cloud_project_id
        request.headers["X-Auth-Token"] = self._token
        yield request


class PerfTestClient:
    """One CPTS endpoint and cloud project, authenticated by AK/SK or by token."""

    def __init__(
        self,
        *,
        name: str,
        endpoint: str,
        cloud_project_id: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        rate_limit: float,
        credentials_hint: str | None = None,
        page_size: int = PAGE_SIZE,
        request_timeout: float | None = None,
        response_caps: Mapping[str, int] | None = None,
        **http_options: Unpack[HttpOptions],
    ) -> None:
        """``request_timeout``: seconds each request may take in all (None: ``http``'s default);
        ``response_caps``: caps that replace some of ``RESPONSE_CAPS``."""
        auth: httpx.Auth
        if access_key and secret_key:
            auth = AkSkAuth(access_key=access_key, secret_key=secret_key, cloud_project_id=cloud_project_id)
            hint = credentials_hint or "the access key and secret key"
        elif token:
            auth = TokenAuth(token=token, cloud_project_id=cloud_project_id)
            hint = credentials_hint or "the IAM token"
        else:
            raise ValueError("PerfTestClient needs access_key and secret_key, or token")
        self.name = name
        self.cloud_project_id = cloud_project_id
        self.page_size = page_size
        self.caps = {**RESPONSE_CAPS, **(response_caps or {})}
        self.http = HttpClient(
            endpoint,
            provider=name,
            auth=auth,
            rate_limit=rate_limit,
            auth_hint=hint,
            request_timeout=request_timeout,
            **http_options,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PerfTestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- create --------------------------------------------------------------------------------------------

    def create_task(self, body: dict[str, Any]) -> int:
        """Create a task and return its id; never resent once it may have reached the server."""
        path = f"/v3/{self.cloud_project_id}/tasks"
        try:
            answer = self.http.request_json("POST", path, json=body, idempotent=False, max_bytes=self.caps["create"])
        except PermanentProviderError as err:
            if err.code == MISSING_CODE:
                raise self._missing_project(body.get("project_id"), err) from err
            raise
        task_id = answer.get("task_id") if isinstance(answer, dict) else None
        if isinstance(task_id, bool) or not isinstance(task_id, int | str) or not str(task_id).isdigit():
            # 2xx means the server acted; without an id we cannot know what it made.
            raise OutcomeUnknownError(
                f"POST {path} answered success without a task_id ({excerpt(answer)}); the task may exist, "
                f"resolve it before resending",
                provider=self.name,
            )
        return int(task_id)

    # --- change and delete ---------------------------------------------------------------------------------

    def update_task(self, task_id: int, body: dict[str, Any]) -> None:
        """Change a task in place with ``body``, the full create body (CPTS has no partial update).

        Resent freely (``idempotent=True``): a PUT carries the whole desired value, so a second copy after a
        lost answer leaves the same task. A 2xx that is not CPTS's success answer proves nothing about the task,
        so it is ``OutcomeUnknownError`` (read the task back), never taken as done. A 403 ``MISSING_CODE`` keeps
        its status and code: CPTS says it of the task and of the body's test project alike, and only the caller
        can tell which it meant (by reading the task)."""
        path = f"/v3/{self.cloud_project_id}/tasks/{task_id}"
        try:
            answer = self.http.request_json("PUT", path, json=body, idempotent=True, max_bytes=self.caps["update"])
        except PermanentProviderError as err:
            if err.status == 403 and err.code == MISSING_CODE:
                raise PermanentProviderError(
                    f"task {task_id} or its test project {body.get('project_id')} does not exist in cloud project "
                    f"{self.cloud_project_id} (or was deleted); nothing was changed",
                    provider=self.name,
                    status=err.status,
                    code=err.code,
                ) from err
            raise
        if not _succeeded(answer) or (answer.get("code") is None and not isinstance(answer.get("taskInfo"), dict)):
            raise OutcomeUnknownError(
                f"PUT {path} answered success, but not CPTS's success answer ({excerpt(answer)}); whether task "
                f"{task_id} changed is unknown: read it back before relying on it",
                provider=self.name,
            )

    def delete_task(self, task_id: int) -> bool:
        """Delete a task: True when CPTS confirmed the delete, False when it found the task already gone (403
        ``MISSING_CODE``); the task is gone either way.

        Resent freely (``idempotent=True``): deleting twice leaves the task as gone as once, and "already gone"
        is an answer, not an error, because a resend after a lost answer to our own delete meets exactly that.
        The SDK models no field of the answer, so an empty body is success; a 2xx in another API's shape (an
        error code) proves nothing and is ``OutcomeUnknownError``."""
        path = f"/v3/{self.cloud_project_id}/tasks/{task_id}"
        try:
            response = self.http.request("DELETE", path, idempotent=True, max_bytes=self.caps["delete"])
        except PermanentProviderError as err:
            if err.status == 403 and err.code == MISSING_CODE:
                return False
            raise
        content = response.content.strip()
        try:
            answer = json.loads(content) if content else {}
        except ValueError:
            answer = response.text
        if not _succeeded(answer):
            raise OutcomeUnknownError(
                f"DELETE {path} answered success, but not CPTS's success answer ({excerpt(answer)}); whether task "
                f"{task_id} is gone is unknown: read it back before relying on it",
                provider=self.name,
            )
        return True

    # --- reads ---------------------------------------------------------------------------------------------

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        """The task's ``taskInfo`` with its ``id`` added, or None for CPTS's "gone" (403 ``MISSING_CODE``).

        Refresh reports None as deleted behind the tool's back, and the next apply recreates it; so only that
        exact answer is None, and an answer without a readable ``taskInfo`` is an error, never "gone"."""
        path = f"/v1/{self.cloud_project_id}/tasks/{task_id}"
        try:
            answer = self.http.request_json("GET", path, idempotent=True, max_bytes=self.caps["task"])
        except PermanentProviderError as err:
            if err.status == 403 and err.code == MISSING_CODE:
                return None
            raise
        info = answer.get("taskInfo") if isinstance(answer, dict) else None
        if not isinstance(info, dict):
            raise PermanentProviderError(
                f"GET {path} answered without taskInfo ({excerpt(answer)})", provider=self.name
            )
        return {**info, "id": task_id}

    def list_tasks(self, test_project_id: int) -> list[dict[str, Any]]:
        """Every task of a test project, each once.

        Whether ``offset`` counts rows or pages is unconfirmed, and an incomplete listing would make recovery
        create a duplicate, so this asks for offsets 0 and 1 and reads the answer: page 1 starting with page
        0's second row means row offsets; the same rows again means pages numbered from 1 (0 read as 1);
        anything else means page numbers. It then walks on until a page is empty, brings no new id, or is
        shorter than the longest page seen (not than ``limit``: a server may cap the page size below it).

        A page that cannot be read (no ``tasks`` list, a row without an id or a name) raises
        ``TransientProviderError``, never reads as "no tasks": a listing that cannot be read proves nothing absent.
        """
        fetch = self._page_fetcher(test_project_id)
        found: dict[Any, dict[str, Any]] = {}

        def take(page: list[dict[str, Any]]) -> int:
            new = 0
            for task in page:
                key = task.get("id")
                if key not in found:
                    found[key] = task
                    new += 1
            return new

        first, second = fetch(0), fetch(1)
        by_rows = len(first) >= 2 and bool(second) and second[0].get("id") == first[1].get("id")
        take(first)
        if not take(second) and (by_rows or not second):
            return list(found.values())
        longest, last = max(len(first), len(second)), second
        offset = 1 + len(second) if by_rows else 2
        for _ in range(MAX_PAGES):
            if len(last) < longest:
                break
            page = fetch(offset)
            if not page or not take(page):
                break
            longest, last = max(longest, len(page)), page
            offset = offset + len(page) if by_rows else offset + 1
        return list(found.values())

    def find_tasks_by_name(self, test_project_id: int, name: str) -> list[dict[str, Any]]:
        """The test project's tasks called ``name``: exactly one is an adoptable create, more is ambiguous."""
        return [task for task in self.list_tasks(test_project_id) if task.get("name") == name]

    def _page_fetcher(self, test_project_id: int) -> Callable[[int], list[dict[str, Any]]]:
        path = f"/v1/{self.cloud_project_id}/all-tasks/{test_project_id}"

        def fetch(offset: int) -> list[dict[str, Any]]:
            params = {"offset": offset, "limit": self.page_size}
            try:
                answer = self.http.request_json(
                    "GET", path, params=params, idempotent=True, max_bytes=self.caps["listing"]
                )
            except PermanentProviderError as err:
                if err.code == MISSING_CODE:
                    raise self._missing_project(test_project_id, err) from err
                raise
            tasks = answer.get("tasks") if isinstance(answer, dict) else None
            if not isinstance(tasks, list) or not all(_listed_task(t) for t in tasks):
                # Never "no tasks": recovery would conclude that nothing was created and send it again.
                what = "without a tasks list" if tasks is None else "an unexpected tasks list"
                raise TransientProviderError(
                    f"could not read the task listing of test project {test_project_id}: GET {path} answered "
                    f"{what} ({excerpt(answer)})",
                    provider=self.name,
                )
            return tasks

        return fetch

    def _missing_project(self, test_project_id: object, err: PermanentProviderError) -> PermanentProviderError:
        return PermanentProviderError(
            f"test project {test_project_id} does not exist in cloud project {self.cloud_project_id} "
            f"(or was deleted); create it in CodeArts PerfTest or fix the task's project_id",
            provider=self.name,
            status=err.status,
            code=err.code,
        )


def _succeeded(answer: Any) -> bool:
    """Whether a 2xx answer is CPTS's success: an object with the success code, or no code at all (an answer the
    SDK models without fields), and never the gateway's error shape."""
    if not isinstance(answer, dict) or "error_code" in answer:
        return False
    return answer.get("code") in (None, OK_CODE)


def _listed_task(task: Any) -> bool:
    """Whether a listing's row can be read: an object with an id and a name, what recovery matches on."""
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        return False
    task_id = task.get("id")
    return not isinstance(task_id, bool) and isinstance(task_id, int | str) and str(task_id).isdigit()
