"""Toloka: create task suites as one asynchronous operation, follow it, read its log, list suites.

A create carries the caller's ``operation_id``, and Toloka refuses a second operation with the same id
(``409 OPERATION_ALREADY_EXISTS``), so it is safe to resend after any failure: ``HttpClient`` retries it like
a read, and a 409 simply means "the first attempt got through; read that operation". Each submitted item is
marked with ``__item_idx`` (as the official client does); Toloka echoes it in the operation log, which is how
log entries map back to the caller's items. This module is the one place that knows those shapes: what a
batch request holds (``batch_request``) and what its log says of each item (``created_ids``, ``item_results``).

Every answer is read up to its route's cap (``RESPONSE_CAPS``) within the request's deadline (``http``), and an
operation is waited for up to the provider's ``operation_timeout``; past it, the batch is left for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Unpack

import httpx

from reconciler.encoding import dumps
from reconciler.errors import OutcomeUnknownError, PermanentProviderError, ProviderError, TransientProviderError
from reconciler.kinds import DEFAULT_OPERATION_TIMEOUT, TOLOKA_MAX_BATCH_ITEMS
from reconciler.providers import toloka_suites_patch as suites_patch
from reconciler.providers.http import HttpClient, HttpOptions
from reconciler.providers.quoting import excerpt
from reconciler.providers.settings import override_variable
from reconciler.providers.toloka_listing import PAGE_SIZE, iter_pool_suites

API_PATH = "/api/v1"
#: The official client sends the first; one old example spells it the second way.
BATCH_CREATE_TYPES = frozenset({"TASK_SUITE.BATCH_CREATE", "TASK_SUITE.BATCH.CREATE"})
DONE_STATUSES = frozenset({"SUCCESS", "FAIL"})
#: The most read of one answer, per route, far above any real one (an operation is ~1 KB; a log echoes a batch
#: of at most 5,000 suites, some MiB; a page of suites is at most ``toloka_listing.PAGE_SIZE``, 1,000), so that a server
#: sending without end meets an error, not the machine's memory.
RESPONSE_CAPS = {"create": 1 << 20, "operation": 1 << 20, "log": 64 << 20, "listing": 64 << 20, "suite": 16 << 20}
#: How long an operation Toloka does not know is waited for, at most: then it was not accepted after all.
MISSING_OPERATION_WAIT = 30.0
#: What is kept of Toloka's reasons for refusing one item.
MAX_VALIDATION_TEXT = 1000
ITEM_IDX = "__item_idx"
OPTION_NAMES = ("allow_defaults", "open_pool", "skip_invalid_items")
#: Suites per create request, at most.
MAX_BATCH_ITEMS = TOLOKA_MAX_BATCH_ITEMS
#: Input values per create request, at most: "1 MiB", in Toloka's words, which do not say how they are counted;
#: so a batch is measured by ``input_bytes_bound``, which no plausible way of counting them exceeds.
MAX_BATCH_INPUT_BYTES = 1024 * 1024
#: What counting a task's values with their key and object adds: ``{"input_values": `` and ``}, ``.
TASK_ENVELOPE_BYTES = 20
_NON_ASCII = bytes(range(0x80, 0x100))


def input_bytes_bound(encoded: bytes, tasks: int) -> int:
    """At least the size of the input values in ``encoded`` (compact UTF-8 JSON, as ``dumps`` writes it) of
    ``tasks`` tasks, however a server counts them: compact, or with a space after every ``,`` and ``:``; in
    UTF-8, or in ASCII with ``\\uXXXX`` escapes (2, 3 and 4 UTF-8 bytes become 6, 6 and 12: two more per byte at
    most); with or without each task's key and object. Every comma and colon counts, those inside strings too,
    so it errs on the large side, at the cost of one pass of C per count."""
    size = len(encoded) + encoded.count(b",") + encoded.count(b":") + TASK_ENVELOPE_BYTES * tasks
    if not encoded.isascii():
        size += 2 * (len(encoded) - len(encoded.translate(None, _NON_ASCII)))
    return size


def inputs_bound(suites: Sequence[Mapping[str, Any]]) -> int:
    """``input_bytes_bound`` of the suites' input values alone."""
    inputs = [task.get("input_values") for suite in suites for task in suite.get("tasks") or ()]
    return input_bytes_bound(dumps(inputs), len(inputs))


def too_large(err: ProviderError) -> bool:
    """Whether Toloka refused a request as too large (413, ``REQUEST_ENTITY_TOO_LARGE``, or a gateway's bare
    413): it created nothing, and smaller requests may pass."""
    return err.status == 413


def batch_request(suites: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """The items and query options of a batch create of ``suites`` (each a suite's fields plus its ``options``,
    which go to the query and which a batch's suites share): each item is a suite's fields marked with its
    index, so that the operation log maps back to it."""
    items: list[dict[str, Any]] = []
    for index, suite in enumerate(suites):
        item = dict(suite)
        item.pop("options", None)
        item[ITEM_IDX] = index
        items.append(item)
    return items, dict(suites[-1].get("options") or {}) if suites else {}


class ItemResult(NamedTuple):
    """What a log says of one item: created (``suite_id``) or refused (``error``, Toloka's reasons)."""

    suite_id: str | None = None
    error: str | None = None


def created_ids(log: Sequence[Any], count: int) -> list[str] | None:
    """The suite ids of a log that says, once for each of ``count`` items, that it was created; None for any
    other log. That is a healthy log, and reading it here costs no ``LogEntry`` per entry; anything else is
    left to ``item_results``, which gives such a log the very same reading."""
    if len(log) != count:
        return None
    suite_ids: list[Any] = [None] * count
    try:
        for entry in log:
            index, output = entry["input"][ITEM_IDX], entry["output"]
            if type(index) is not int or not 0 <= index < count or suite_ids[index] is not None:
                return None
            if entry.get("success") is not True or type(output) is not dict:
                return None
            suite_id = output.get("task_suite_id")
            if not suite_id:
                return None
            suite_ids[index] = suite_id
    except (KeyError, TypeError):
        return None
    return [str(suite_id) for suite_id in suite_ids]


def item_results(log: Sequence[Any], count: int) -> list[ItemResult | None]:
    """What the log says of each of ``count`` items, by index; None where it says nothing usable (no entry,
    or a success without a suite id). Entries are as Toloka sent them, or ``LogEntry`` objects."""
    by_index: dict[int, LogEntry] = {}
    for raw in log:
        logged = raw if isinstance(raw, LogEntry) else LogEntry.from_json(raw)
        if logged.item_idx is not None:
            by_index[logged.item_idx] = logged
    results: list[ItemResult | None] = []
    for index in range(count):
        entry = by_index.get(index)
        if entry is None:
            results.append(None)
        elif entry.success:
            suite_id = (entry.output or {}).get("task_suite_id")
            results.append(ItemResult(suite_id=str(suite_id)) if suite_id else None)
        else:
            results.append(ItemResult(error=_validation_message(entry.output)))
    return results


def _validation_message(output: Any) -> str:
    """Toloka's reasons for refusing an item, as the state records them: server text, so quoted by ``excerpt``."""
    if not isinstance(output, dict) or not output:
        return "rejected by Toloka validation"
    parts = []
    for field_name, problem in output.items():
        if isinstance(problem, dict):
            parts.append(f"{field_name}: {problem.get('code', '')} {problem.get('message', '')}".strip())
        else:
            parts.append(f"{field_name}: {problem}")
    return excerpt("; ".join(parts), MAX_VALIDATION_TEXT)


@dataclass(frozen=True)
class Operation:
    """An asynchronous Toloka operation; ``raw`` keeps every field, including ones not modelled here."""

    id: str
    status: str
    type: str
    submitted: str | None
    started: str | None
    finished: str | None
    details: dict[str, Any]
    raw: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @classmethod
    def from_json(cls, raw: Any, *, provider: str = "") -> Operation:
        """An answer that is no operation cannot be read: a ``TransientProviderError`` (it proves nothing)."""
        operation = cls.read(raw)
        if operation is None:
            raise TransientProviderError(f"could not read an operation from {excerpt(raw)}", provider=provider)
        return operation

    @classmethod
    def read(cls, raw: Any) -> Operation | None:
        """The operation ``raw`` describes, or None if it is not one (no ``id`` or ``status``)."""
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("status"):
            return None
        details = raw.get("details")
        return cls(
            id=str(raw["id"]),
            status=str(raw["status"]),
            type=str(raw.get("type") or ""),
            submitted=raw.get("submitted"),
            started=raw.get("started"),
            finished=raw.get("finished"),
            details=details if isinstance(details, dict) else {},
            raw=raw,
        )


def _time_left(operation: Operation | None, elapsed: float) -> float | None:
    """Seconds until a running operation should finish, from the share of it done in ``elapsed``; None when it
    does not say (no or zero ``progress``)."""
    progress = None if operation is None else operation.raw.get("progress")
    if not isinstance(progress, int | float) or isinstance(progress, bool) or not 0 < progress < 100:
        return None
    return float(elapsed * (100 - progress) / progress)


class LogEntry(NamedTuple):
    """One line of an operation log: a suite created (``output.task_suite_id``) or an item refused.

    A named tuple: a log has an entry per suite, and a 5,000-suite batch should not pay for more.
    """

    success: bool
    item_idx: int | None
    input: dict[str, Any]
    output: dict[str, Any]

    @classmethod
    def from_json(cls, raw: Any) -> LogEntry:
        try:  # the shape of every entry of a healthy log, checked by type at the cost of a few lookups
            item, output, index = raw["input"], raw["output"], raw["input"][ITEM_IDX]
            if type(item) is dict and type(output) is dict and type(index) is int:
                return cls(raw.get("success") is True, index, item, output)
        except (KeyError, TypeError):
            pass
        raw = raw if isinstance(raw, dict) else {}
        given = raw.get("input")
        output = raw.get("output")
        item = given if isinstance(given, dict) else {}
        return cls(
            raw.get("success") is True,
            _int_or_none(item.get(ITEM_IDX)),
            item,
            output if isinstance(output, dict) else {},
        )


class ApiKeyAuth(httpx.Auth):
    """``Authorization: {scheme} {token}``, kept out of the client's default headers and its repr."""

    def __init__(self, *, token: str, scheme: str = "ApiKey") -> None:
        self._value = f"{scheme} {token}"

    def __repr__(self) -> str:
        return "ApiKeyAuth(<redacted>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._value
        yield request


class TolokaClient:
    """One Toloka endpoint (``https://toloka.dev`` or the sandbox), authenticated by an API key or OAuth."""

    def __init__(
        self,
        *,
        name: str,
        endpoint: str,
        token: str,
        scheme: str = "ApiKey",
        rate_limit: float,
        batch_size: int = MAX_BATCH_ITEMS,
        credentials_hint: str | None = None,
        request_timeout: float | None = None,
        operation_timeout: float | None = None,
        response_caps: Mapping[str, int] | None = None,
        **http_options: Unpack[HttpOptions],
    ) -> None:
        """``batch_size``: suites per create request; ``request_timeout``: seconds each request may take in all;
        ``operation_timeout``: seconds ``wait_operation`` waits; each as the provider document sets it, None for
        the default. ``response_caps``: caps that replace some of ``RESPONSE_CAPS``."""
        if not token:
            raise ValueError("TolokaClient needs a token")
        self.name = name
        self.batch_size = min(batch_size, MAX_BATCH_ITEMS)
        self.operation_timeout = DEFAULT_OPERATION_TIMEOUT if operation_timeout is None else operation_timeout
        self.caps = {**RESPONSE_CAPS, **(response_caps or {})}
        self._sleep = http_options.get("sleep", time.sleep)
        self.http = HttpClient(
            endpoint.rstrip("/") + API_PATH,
            provider=name,
            auth=ApiKeyAuth(token=token, scheme=scheme),
            rate_limit=rate_limit,
            auth_hint=credentials_hint or f"the Toloka {'API key' if scheme == 'ApiKey' else 'OAuth token'}",
            request_timeout=request_timeout,
            **http_options,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TolokaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- create --------------------------------------------------------------------------------------------

    def create_task_suites_async(
        self, *, operation_id: str, items: list[dict[str, Any]], options: dict[str, bool]
    ) -> Operation:
        """Submit ``items`` as one operation named ``operation_id``; safe to call again with the same id.

        Items without ``__item_idx`` (``batch_request`` marks them) get their index in ``items``.
        """
        unknown = set(options) - set(OPTION_NAMES)
        if unknown:
            raise ValueError(f"unknown task suite options: {sorted(unknown)}")
        params: dict[str, str | bool] = {"async_mode": True, "operation_id": operation_id}
        params.update({name: bool(options.get(name, False)) for name in OPTION_NAMES})
        body = [item if ITEM_IDX in item else {**item, ITEM_IDX: idx} for idx, item in enumerate(items)]
        try:
            answer = self.http.request_json(
                "POST", "/task-suites", params=params, json=body, idempotent=True, max_bytes=self.caps["create"]
            )
        except PermanentProviderError as err:
            if err.status != 409 or err.code != "OPERATION_ALREADY_EXISTS":
                raise
            existing = self.get_operation(operation_id)
            if existing is None:
                raise TransientProviderError(
                    f"operation {operation_id} was reported as existing but cannot be read yet; retry later",
                    provider=self.name,
                    operation_id=operation_id,
                ) from err
            return self._check_type(existing)
        return self._accepted(operation_id, answer)

    def _accepted(self, operation_id: str, answer: Any) -> Operation:
        """The operation a create's 2xx answer describes. A 2xx means Toloka acted, so an answer that is not our
        batch create operation (not an operation, another id, another type) leaves the outcome unknown, to be
        read by the operation's id: never a refusal, which would have the suites sent again under a new id."""
        operation = Operation.read(answer)
        if operation is not None and operation.id == operation_id and operation.type in BATCH_CREATE_TYPES:
            return operation
        raise OutcomeUnknownError(
            f"POST {API_PATH}/task-suites answered success, but not with batch create operation {operation_id} "
            f"({excerpt(answer)}); Toloka acted on it: read the operation by its id before anything else",
            provider=self.name,
            operation_id=operation_id,
        )

    def _check_type(self, operation: Operation) -> Operation:
        """An id shared with some other kind of operation is a collision, never our batch."""
        if operation.type not in BATCH_CREATE_TYPES:
            raise PermanentProviderError(
                f"operation {operation.id} is a {operation.type or 'untyped'} operation, not a task suite "
                f"batch create; operation ids must not be reused",
                provider=self.name,
                operation_id=operation.id,
            )
        return operation

    # --- operations ----------------------------------------------------------------------------------------

    def get_operation(self, operation_id: str) -> Operation | None:
        """The operation, or None if Toloka never accepted it (then it is safe to send)."""
        answer = self._get_or_none(f"/operations/{operation_id}", self.caps["operation"])
        if answer is None:
            return None
        operation = Operation.read(answer)
        if operation is None:  # it exists (Toloka answered 2xx), but what it says cannot be read
            raise TransientProviderError(
                f"could not read operation {operation_id}: GET {API_PATH}/operations/{operation_id} answered "
                f"{excerpt(answer)}",
                provider=self.name,
                operation_id=operation_id,
            )
        return operation

    def wait_operation(
        self,
        operation_id: str,
        *,
        timeout: float | None = None,
        missing_timeout: float = MISSING_OPERATION_WAIT,
        poll_initial: float = 0.05,
        poll_max: float = 2.0,
    ) -> Operation:
        """Poll until the operation is SUCCESS or FAIL, for ``timeout`` seconds at most (None: the provider's
        ``operation_timeout``); polls grow from ``poll_initial`` to ``poll_max``.

        An operation that reports its ``progress`` is polled again when, at the pace it has gone so far, it
        should be done (kept within ``poll_initial`` and ``poll_max``): a pause that only doubles oversleeps the
        end by up to half the wait, and apply's last batches are waited for with nothing else left to do.

        An operation that stays unknown for ``missing_timeout`` (never longer than ``timeout``) was not accepted
        after all: waiting the full ``timeout`` for it would only delay the next run, which resends it under the
        same id. An operation still running at ``timeout`` raises ``TransientProviderError`` saying what the user
        can do: nothing is lost, as the next apply picks up its result.
        """
        limit = self.operation_timeout if timeout is None else timeout
        missing_timeout = min(missing_timeout, limit)
        start = time.monotonic()
        waited = 0.0
        delay = poll_initial
        while True:
            operation = self.get_operation(operation_id)
            if operation is not None and operation.done:
                return operation
            # Counting our own sleeps as well keeps the timeout meaningful when tests inject a fake sleep.
            elapsed = max(waited, time.monotonic() - start)
            if operation is None and elapsed >= missing_timeout:
                raise TransientProviderError(
                    f"operation {operation_id} is unknown to Toloka {elapsed:.0f}s after it was sent; "
                    "run again to resend it under the same id",
                    provider=self.name,
                    operation_id=operation_id,
                )
            if elapsed >= limit and operation is not None:
                raise self._still_running(operation, limit)
            pause = delay
            expected = _time_left(operation, elapsed)
            if expected is not None:
                pause = min(max(expected, poll_initial), poll_max)
            pause = min(pause, max(limit - elapsed, poll_initial))  # so the bound is kept, not overslept
            self._sleep(pause)
            waited += pause
            delay = min(poll_max, delay * 2)

    def _still_running(self, operation: Operation, waited: float) -> TransientProviderError:
        """Why apply leaves a batch open after ``waited`` seconds, and what the user can do about it."""
        variable = override_variable(self.name, "operation_timeout")
        return TransientProviderError(
            f"operation {operation.id} is still {operation.status} after {waited:g}s, the provider's "
            f"operation_timeout; it keeps running on Toloka and nothing is lost: its batch stays pending in the "
            f"state, and the next apply picks up its result (run apply again later), or raise operation_timeout "
            f"in the provider document (or {variable}) to wait longer",
            provider=self.name,
            operation_id=operation.id,
        )

    def operation_log(self, operation_id: str) -> list[LogEntry]:
        return [LogEntry.from_json(entry) for entry in self.operation_log_json(operation_id)]

    def operation_log_json(self, operation_id: str) -> list[Any]:
        """The log's entries as Toloka sent them: a reader that recognises a healthy log by itself spares a
        5,000-suite batch as many ``LogEntry`` objects, and leaves any other log to ``LogEntry.from_json``."""
        answer = self.http.request_json(
            "GET", f"/operations/{operation_id}/log", idempotent=True, max_bytes=self.caps["log"]
        )
        if not isinstance(answer, list):
            raise PermanentProviderError(
                f"the log of operation {operation_id} is not a list ({excerpt(answer)})",
                provider=self.name,
                operation_id=operation_id,
            )
        return answer

    # --- task suites ---------------------------------------------------------------------------------------

    def get_task_suite(self, suite_id: str) -> dict[str, Any] | None:
        """The suite, or None if Toloka says it does not exist. An answer that is not that suite (not an
        object, or without its id) is an error: ``state import`` records what this returns as proof."""
        answer = self._get_or_none(f"/task-suites/{suite_id}", self.caps["suite"])
        if answer is not None and (not isinstance(answer, dict) or str(answer.get("id")) != suite_id):
            raise PermanentProviderError(
                f"could not read task suite {suite_id}: GET {API_PATH}/task-suites/{suite_id} answered "
                f"{excerpt(answer)}",
                provider=self.name,
            )
        return answer

    def iter_pool_suites(self, pool_id: str, *, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every suite of a pool, in id order: complete or an error (``toloka_listing`` says why)."""
        caps = self.caps["listing"]
        return iter_pool_suites(self.http, provider=self.name, pool_id=pool_id, page_size=page_size, max_bytes=caps)

    def patch_task_suite(self, suite_id: str, changes: dict[str, Any], *, open_pool: bool = False) -> dict[str, Any]:
        """A suite's only in-place change; safe to resend, as it carries the new values (``toloka_suites_patch``)."""
        return suites_patch.patch_task_suite(self.http, self.name, suite_id, changes, open_pool, self.caps["suite"])

    def set_overlap_or_min(self, suite_id: str, overlap: int) -> dict[str, Any]:
        """How a suite is stopped (``overlap=0``) without a delete; safe to resend (``toloka_suites_patch``)."""
        return suites_patch.set_overlap_or_min(self.http, self.name, suite_id, overlap, self.caps["suite"])

    def _get_or_none(self, path: str, max_bytes: int) -> Any:
        """GET, with Toloka's ``404 DOES_NOT_EXIST`` as None; another 404 (wrong endpoint) stays an error."""
        try:
            return self.http.request_json("GET", path, idempotent=True, max_bytes=max_bytes)
        except ProviderError as err:
            if err.status == 404 and err.code == "DOES_NOT_EXIST":
                return None
            raise


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
