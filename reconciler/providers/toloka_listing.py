"""Every task suite of a pool, read back for refresh: complete, or an error.

Refresh concludes "gone" and "changed" from this listing, so a listing that ended early would report drift
that is not there, and recovery would create again what exists. Unknown is not "no": a page that cannot be
read, a ``has_more`` that is not a boolean, a page that claims more but brings nothing new, or a suite of
another pool is an error, never the end of the listing.

Pages follow Toloka's own advice (``sort=id``, the last id seen as ``id_gt``, until ``has_more`` is false).
Nothing is inferred from a page's length: a server may send fewer suites than asked (the API overview caps
``limit`` at 300, toloka-kit allows 100,000) and still have more, or a full page and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.errors import PermanentProviderError, TransientProviderError
from reconciler.providers.http import HttpClient
from reconciler.providers.quoting import excerpt

#: Suites asked for per page: ten times fewer requests than the documented 300 allow, yet a page of ordinary
#: suites (1-5 KB each) stays far under the listing's response cap. A server that refuses it gets ``FALLBACK``.
PAGE_SIZE = 1000
#: The largest ``limit`` the API overview documents, asked instead when a server answers 400 to a larger one.
FALLBACK_PAGE_SIZE = 300
#: A pool listing that has not ended after this many pages is a server leading us on: stop, do not spin.
MAX_PAGES = 1_000_000
PATH = "/task-suites"


def iter_pool_suites(
    http: HttpClient, *, provider: str, pool_id: str, page_size: int = PAGE_SIZE, max_bytes: int
) -> Iterator[dict[str, Any]]:
    """The pool's suites in the server's id order, each once; one request per page, never one per suite."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    seen: set[str] = set()
    after: str | None = None
    size = page_size
    for _ in range(MAX_PAGES):
        params: dict[str, str | int] = {"pool_id": pool_id, "sort": "id", "limit": size}
        if after is not None:
            params["id_gt"] = after
        try:
            answer = http.request_json("GET", PATH, params=params, idempotent=True, max_bytes=max_bytes)
        except PermanentProviderError as err:
            if err.status != 400 or size <= FALLBACK_PAGE_SIZE:
                raise
            size = FALLBACK_PAGE_SIZE
            continue
        items, more = _read_page(answer, provider=provider, pool_id=pool_id, seen=seen)
        yield from items
        if not more:
            return
        after = items[-1]["id"]
    raise TransientProviderError(
        f"the task suites of pool {pool_id} did not end after {MAX_PAGES} pages; the server keeps answering "
        f"has_more, so the listing cannot be trusted",
        provider=provider,
    )


def _read_page(answer: Any, *, provider: str, pool_id: str, seen: set[str]) -> tuple[list[dict[str, Any]], bool]:
    """A page's suites and its ``has_more``, checked; ``seen`` gains the page's ids."""

    def unreadable(why: str) -> TransientProviderError:
        return TransientProviderError(
            f"could not read the task suites of pool {pool_id}: GET /api/v1{PATH} answered {why} ({excerpt(answer)})",
            provider=provider,
        )

    items = answer.get("items") if isinstance(answer, dict) else None
    more = answer.get("has_more") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise unreadable("without an items list")
    if not isinstance(more, bool):
        raise unreadable("without a boolean has_more")
    if more and not items:
        raise unreadable("has_more with no items")
    for item in items:
        suite_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(suite_id, str) or not suite_id:
            raise unreadable("a suite without an id")
        if str(item.get("pool_id")) != pool_id:
            raise unreadable(f"suite {suite_id} of pool {item.get('pool_id')!r}")
        if suite_id in seen:
            raise unreadable(f"suite {suite_id} a second time (is id_gt ignored?)")
        seen.add(suite_id)
    return items, more
