"""A ``postgresql://`` state location: what libpq is given, what a person is shown, and which schema holds it.

A URL given as ``--state`` or ``RECONCILER_STATE`` may carry a password (a StateBackend document never should:
libpq reads ``PGPASSWORD`` and ``PGPASSFILE`` by itself). The password reaches libpq and nothing else: every
message, ``repr`` and ``str`` shows ``display``, the URL without it, and the password is registered with
``reconciler.redaction`` so that no output shows it even if a server's message quotes it.

One query parameter is reconciler's own and is taken out before libpq sees the rest: ``schema``, the
PostgreSQL schema whose tables hold the states (default ``reconciler``), one state per workspace in it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from reconciler.errors import StateError
from reconciler.redaction import register

__all__ = ["DEFAULT_SCHEMA", "SCHEMES", "PostgresLocation", "is_postgres_url"]

SCHEMES = ("postgresql://", "postgres://")
DEFAULT_SCHEMA = "reconciler"

#: Lower case, so the name is the same quoted or not, and short enough for PostgreSQL's 63-byte identifiers.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SECRET_PARAMETERS = frozenset({"password"})
#: Set unless the URL sets them: libpq waits forever for an unreachable host by default, and an unnamed
#: session is hard to find in ``pg_stat_activity``.
_DEFAULTS = {"connect_timeout": "10", "application_name": "reconciler"}


def is_postgres_url(location: str) -> bool:
    return location.startswith(SCHEMES)


@dataclass(frozen=True)
class PostgresLocation:
    """A parsed state URL. ``conninfo`` holds the password, if any, and must never be shown."""

    conninfo: str
    display: str
    schema: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, url: str) -> PostgresLocation:
        if not is_postgres_url(url):
            raise StateError("a PostgreSQL state location starts with postgresql://")
        parts = urlsplit(url)
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        params = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in params if key == "schema"]
        schema = schemas[-1] if schemas else DEFAULT_SCHEMA
        passwords = [unquote(password)] if password else []
        passwords += [value for key, value in params if key in _SECRET_PARAMETERS]
        register(*passwords, os.environ.get("PGPASSWORD"))
        shown = [(key, value) for key, value in params if key not in _SECRET_PARAMETERS]
        display = urlunsplit((parts.scheme, f"{user}{at}{hosts}", parts.path, urlencode(shown, quote_via=quote), ""))
        if not _SCHEMA_NAME.fullmatch(schema):
            raise StateError(
                f"{display}: schema={schema!r} is not a schema name reconciler uses: give 1-63 lower-case letters, "
                "digits or '_', starting with a letter or '_'"
            )
        given = {key for key, _ in params}
        passed = [(key, value) for key, value in params if key != "schema"]
        passed += [(key, value) for key, value in _DEFAULTS.items() if key not in given]
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(passed, quote_via=quote), ""))
        return cls(conninfo=conninfo, display=display, schema=schema, secrets=tuple(filter(None, passwords)))

    def hide(self, text: str) -> str:
        """``text`` (a driver's message) with the passwords of this URL, as given or percent-encoded, masked."""
        for secret in self.secrets:
            for form in (secret, quote(secret, safe=""), quote(secret)):
                text = text.replace(form, "***")
        return text

    def __repr__(self) -> str:
        return f"PostgresLocation({self.display!r})"

    def __str__(self) -> str:
        return self.display
