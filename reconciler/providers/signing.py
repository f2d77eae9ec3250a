"""SDK-HMAC-SHA256, the AK/SK request signature of Huawei Cloud's API gateway.

This follows ``huaweicloudsdkcore``'s signer byte for byte (checked against it in
``tests/conformance/test_signing_matches_sdk.py``), because the gateway recomputes the signature from the
request it receives and any divergence (a missing trailing slash, a differently escaped query) is a 401.
The sandbox verifies with the same functions, so both ends share one definition of the canonical request.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"


def _encode(value: str) -> str:
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    segments = path.split("/")
    uri = "/".join(_encode(s) for s in segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: list[tuple[str, str]]) -> str:
    """Sorted on the raw pairs, then escaped, as the SDK does (escaping first would reorder ``a:`` and ``a5``)."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """The SDK signs every header it set whose name has no underscore."""
    return sorted({name.lower() for name in headers if "_" not in name})


def canonical_request(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    header_lines = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_lines,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(sdk_date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def signature(secret_key: str, string_to_sign: str) -> str:
    return hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(access_key: str, signed_headers: list[str], sig: str) -> str:
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an Authorization header into (access key, signed header names, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM or not rest:
        raise ValueError(f"not an {ALGORITHM} authorization header")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            raise ValueError(f"malformed authorization field {part.strip()!r}")
        fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError as missing:
        raise ValueError(f"authorization header lacks {missing.args[0]}") from None


def sign(*, method: str, url: str, headers: dict[str, str], body: bytes, access_key: str, secret_key: str) -> str:
    """The Authorization value for a request whose other headers (X-Sdk-Date, Host, ...) are already set.

    The path is unquoted before each segment is escaped again, as the SDK does, so ``%2F`` stays ``%2F``.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    names = signed_header_names(headers)
    sdk_date = next(v for k, v in headers.items() if k.lower() == "x-sdk-date")
    canonical = canonical_request(method, unquote(parts.path) or "/", query, headers, names, body)
    return authorization(access_key, names, signature(secret_key, string_to_sign(sdk_date, canonical)))


def verify(
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_key: str,
) -> bool:
    """Recompute the signature of a received request; ``headers`` may be any case-insensitive mapping."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        _, names, sig = parse_authorization(lowered.get("authorization", ""))
    except ValueError:
        return False
    sdk_date = lowered.get("x-sdk-date", "")
    canonical = canonical_request(method, path, query, lowered, names, body)
    expected = signature(secret_key, string_to_sign(sdk_date, canonical))
    return hmac.compare_digest(expected, sig)
