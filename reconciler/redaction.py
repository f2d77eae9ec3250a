"""The one step every message takes on its way out: secrets masked, control characters shown escaped.

A reconciler runs in CI with credentials in its environment, talks to servers it does not control and reads
files from pull requests. A server may echo the ``Authorization`` header it received into an error message, and
a data row may hold an ANSI escape sequence that repaints the terminal or forges a line. So every text that
reaches the terminal, a log or the state passes through here:

- ``redact`` replaces the value of every credential in use (``register``, called where credentials are read:
  ``providers/factory.py``) and the header forms of credentials it was not told about (the ``Access=`` and
  ``Signature=`` of an SDK-HMAC-SHA256 ``Authorization``, ``ApiKey``/``OAuth``/``Bearer`` tokens,
  ``X-Auth-Token`` and ``X-Security-Token`` values, the password of a URL) with ``MASK``.
- ``safe_line`` is what a person sees: redacted, then every control character written as an escape
  (``\\x1b[31m``), newlines included, so one message stays one line. The tool's own colours are added after.
- ``safe_json`` is the same for a line of JSON output (JSON already escapes C0 controls; the rest become
  ``\\uXXXX``, which JSON readers decode back).
- ``RedactingFilter`` applies it to log records (messages, tracebacks) where the CLI configures logging.

Short values: a value of ``MIN_ANYWHERE`` characters or more is replaced wherever it appears, and, when an error
text was cut short (``...``), so is a cut-off start of it of ``MIN_CUT`` characters or more. A value of
``MIN_WHOLE_WORD`` up to ``MIN_ANYWHERE`` characters is replaced only where it stands alone (not inside a longer
run of letters and digits), since replacing it inside words would mangle ordinary text; a shorter value is not
replaced at all (it would hit digits and syllables everywhere), and only its header forms are masked. Real
credentials are far longer (a Huawei access key has 20 characters, a secret key 40, a Toloka key 39 or more).

This module imports nothing of reconciler's: every layer may use it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "MASK",
    "RedactingFilter",
    "forget_all",
    "printable",
    "redact",
    "register",
    "safe_json",
    "safe_line",
    "safe_lines",
]

MASK = "***"
#: A registered value at least this long is replaced wherever it appears.
MIN_ANYWHERE = 8
#: A registered value at least this long (and shorter than ``MIN_ANYWHERE``) is replaced where it stands alone.
MIN_WHOLE_WORD = 4
#: The shortest cut-off start of a value (just before ``...``) that is replaced.
MIN_CUT = 4

_WORD = "A-Za-z0-9"
_TOKEN_CHARS = r"[^\s,;\"'\\<>()\[\]{}]"

#: Credential forms masked whether or not their value is known; the group ``value`` is what is replaced.
_HEADER_FORMS = re.compile(
    r"(?:(?<=Access=)|(?<=Signature=))(?P<value>" + _TOKEN_CHARS + r"+)"
    r"|(?<![" + _WORD + r"])(?i:apikey|oauth|bearer)\s+"
    r"(?P<token>(?=" + _TOKEN_CHARS + r"*[0-9])" + _TOKEN_CHARS + r"{12,})"
    r"|(?i:x-auth-token|x-security-token)[\"']?\s*[:=,]\s*(?:b?[\"'])?(?P<header>" + _TOKEN_CHARS + r"+)"
    r"|[a-z][a-z0-9+.-]*://[^/\s:@\"'\\]+:(?P<password>[^@\s/\"'\\]+)@"
)

#: Cheap to look for: a text without any of these (lower-cased) holds no header form, and the costly search of
#: ``_HEADER_FORMS`` is skipped (most lines).
_TRIGGERS = ("access=", "signature=", "apikey", "oauth", "bearer", "-token", "://")

#: Characters shown as escapes: C0 and C1 controls but the tab, DEL, lone surrogates, the line and paragraph
#: separators, and the bidirectional controls that reorder what a terminal shows ("Trojan Source").
_BEYOND_ASCII = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL = re.compile(f"[\x00-\x08\x0a-\x1f{_BEYOND_ASCII}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[\x00-\x08\x0b-\x1f{_BEYOND_ASCII}]")
#: What JSON encoding leaves raw of the above (it escapes C0 itself; DEL is ASCII, hence its own test below).
_JSON_RAW = re.compile(f"[{_BEYOND_ASCII}]")


@dataclass(frozen=True)
class _Secret:
    """One registered value, with every form it may take in text, longest first."""

    forms: tuple[str, ...]
    whole_word: re.Pattern[str] | None
    cut: re.Pattern[str] | None


_lock = threading.Lock()
_secrets: tuple[_Secret, ...] = ()
_values: frozenset[str] = frozenset()


def register(*values: str | None) -> None:
    """Remember credentials in use, so that no output, log or state row shows them from now on.

    Called where a credential is read from the environment, before any request carries it.
    """
    global _secrets, _values
    with _lock:
        fresh = {v.strip() for v in values if v and v.strip()} - _values
        if not fresh:
            return
        known = set(_values) | fresh
        _values = frozenset(known)
        ordered = sorted((_secret_of(v) for v in known if len(v) >= MIN_WHOLE_WORD), key=_longest_form, reverse=True)
        _secrets = tuple(ordered)


def forget_all() -> None:
    """Start a command afresh: what an earlier command of this process registered is not in use any more."""
    global _secrets, _values
    with _lock:
        _secrets, _values = (), frozenset()


def redact(text: str) -> str:
    """``text`` with every registered credential and every credential header form replaced by ``MASK``."""
    for secret in _secrets:
        for form in secret.forms:
            if form in text:
                text = secret.whole_word.sub(MASK, text) if secret.whole_word else text.replace(form, MASK)
        if secret.cut is not None and "..." in text:
            text = secret.cut.sub(MASK, text)
    lowered = text.lower()
    if any(trigger in lowered for trigger in _TRIGGERS):
        return _HEADER_FORMS.sub(_mask_value, text)
    return text


def printable(text: str) -> str:
    """Control characters written as Python writes them in a string (``\\x1b``, ``\\u202e``); the rest as is."""
    if (text.isascii() and text.isprintable()) or _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape, text)


def safe_line(text: str) -> str:
    """A message as a person may see it on one line: redacted, control characters (newlines too) escaped."""
    return printable(redact(text))


def safe_lines(text: str) -> str:
    """Like ``safe_line`` for text of several lines (a traceback): its newlines are kept."""
    text = redact(text)
    if _CONTROL_BUT_NEWLINE.search(text) is None:
        return text
    return _CONTROL_BUT_NEWLINE.sub(_escape, text)


def safe_json(line: str) -> str:
    """A line of JSON output, redacted, with what JSON encoders leave raw written as ``\\uXXXX`` escapes.

    Those characters only ever occur inside JSON strings, where the escape means the same character.
    """
    text = redact(line)
    if (text.isascii() and "\x7f" not in text) or _JSON_RAW.search(text) is None:
        return text
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class RedactingFilter(logging.Filter):
    """Passes every record, its message (one line) and traceback (kept in lines) made safe first.

    Installed on the handlers the CLI sets up, so it sees records of every logger, httpx's and httpcore's
    included (httpcore logs the headers of responses).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = safe_line(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = safe_lines(record.exc_text)
        if record.stack_info:
            record.stack_info = safe_lines(record.stack_info)
        return True


def _secret_of(value: str) -> _Secret:
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        repr(value)[1:-1],
    }
    ordered = tuple(sorted(forms, key=len, reverse=True))
    if len(value) < MIN_ANYWHERE:
        words = "|".join(re.escape(form) for form in ordered)
        return _Secret(ordered, re.compile(f"(?<![{_WORD}])(?:{words})(?![{_WORD}])"), None)
    starts = "|".join(re.escape(value[:k]) for k in range(len(value) - 1, MIN_CUT - 1, -1))
    return _Secret(ordered, None, re.compile(f"(?:{starts})(?=\\.\\.\\.)"))


def _longest_form(secret: _Secret) -> int:
    return len(secret.forms[0])


def _mask_value(match: re.Match[str]) -> str:
    """The match with only its value replaced: ``Access=AK...`` becomes ``Access=***``."""
    name = match.lastgroup
    if name is None:
        return match.group()
    start, end = match.span(name)
    whole_start = match.start()
    text = match.group()
    return text[: start - whole_start] + MASK + text[end - whole_start :]


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"
