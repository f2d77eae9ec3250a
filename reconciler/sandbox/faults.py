"""Fault injection: the misbehaviour of real networks and gateways, on demand and replayable.

The exactly-once promise of ``reconciler apply`` is only worth what its tests can break, so the sandbox can
fail requests the ways the real APIs do: an error instead of an answer (nothing done), an error *after* the
work was done, an acknowledgement lost on the wire, a body that does not parse, latency, throttling. Every
random choice comes from one seeded generator drawn a fixed number of times per request, so the same spec and
the same sequence of requests give the same faults.

Spec grammar (comma-separated ``key=value`` items, whitespace ignored, empty spec: no faults)::

    STATUS=P            answer STATUS (400-599) instead of handling the request; nothing is created
    STATUS_after=P      handle the request (objects ARE created), then answer STATUS instead of the result
                        STATUS may also be 200, 201 or 202: a success whose body is well-formed JSON of the wrong
                        shape (the API's error shape: no operation, no task_id, no tasks list), e.g.
                        ``202_after`` on a Toloka create, or ``200`` on a PerfTest task listing
    lost_ack=P          handle the request, then drop the connection in the middle of the answer
    malformed=P         handle the request, then send a 2xx answer whose JSON body is cut short
    at=N:KIND           a scripted fault on the N-th request in scope (1-based, counted since the faults were
                        set); KIND is STATUS, STATUS_after, lost_ack or malformed; may be repeated
    latency_ms=A-B      sleep a uniform A..B milliseconds before handling (or latency_ms=A)
    retry_after=N       injected 429s carry ``Retry-After: N`` (absent: no header)
    interval=MIN        injected Toloka 429s carry ``payload.interval`` (MIN, HOUR or DAY; absent: no payload)
    routes=R            only these APIs are affected: toloka, perftest, or toloka|perftest (default: both)
    methods=M           only these methods are affected, e.g. POST or GET|POST (default: all)
    seed=N              seed of the generator (default 0)

The probabilities of one request's outcomes add up to at most 1: one uniform draw picks at most one of them.
The admin routes (``/_sandbox/...``) are never affected.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Literal

Api = Literal["toloka", "perftest"]
APIS: tuple[Api, ...] = ("toloka", "perftest")
INTERVALS = ("MIN", "HOUR", "DAY")
_STATUS_KEY = re.compile(r"^(20[0-2]|[45]\d\d)(_after)?$")


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message quotes the offending item."""


@dataclass(frozen=True)
class Fault:
    """One way to fail a request.

    ``kind`` is ``error`` (answer ``status``, do nothing), ``error_after`` (do it, answer ``status``),
    ``lost_ack`` or ``malformed``.
    """

    kind: Literal["error", "error_after", "lost_ack", "malformed"]
    status: int = 0

    @property
    def label(self) -> str:
        if self.kind == "error":
            return str(self.status)
        if self.kind == "error_after":
            return f"{self.status}_after"
        return self.kind

    @property
    def does_the_work(self) -> bool:
        return self.kind != "error"


@dataclass(frozen=True)
class FaultSpec:
    """A parsed fault spec; ``str(spec)`` gives back an equivalent spec string."""

    rates: tuple[tuple[Fault, float], ...] = ()
    scripted: tuple[tuple[int, Fault], ...] = ()
    latency_ms: tuple[float, float] | None = None
    retry_after: int | None = None
    interval: str | None = None
    routes: frozenset[str] = field(default_factory=lambda: frozenset(APIS))
    methods: frozenset[str] | None = None
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> FaultSpec:
        """Parse the comma-separated grammar in this module's docstring; raises ``FaultSpecError``."""
        rates: dict[Fault, float] = {}
        scripted: dict[int, Fault] = {}
        options: dict[str, object] = {}
        for raw in (spec or "").split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise FaultSpecError(f"fault spec item {item!r} is not key=value")
            fault = _fault_for_key(key)
            if fault is not None:
                if fault in rates:
                    raise FaultSpecError(f"fault spec item {key!r} is given twice")
                rates[fault] = _probability(item, value)
            elif key == "at":
                position, fault = _scripted(item, value)
                if position in scripted:
                    raise FaultSpecError(f"fault spec has two faults at request {position}")
                scripted[position] = fault
            elif key in options:
                raise FaultSpecError(f"fault spec item {key!r} is given twice")
            else:
                options[key] = _option(item, key, value)
        total = sum(rates.values())
        if total > 1.0 + 1e-9:
            raise FaultSpecError(f"fault probabilities add up to {total:g}, more than 1")
        return cls(
            rates=tuple(rates.items()),
            scripted=tuple(sorted(scripted.items())),
            latency_ms=options.get("latency_ms"),  # type: ignore[arg-type]
            retry_after=options.get("retry_after"),  # type: ignore[arg-type]
            interval=options.get("interval"),  # type: ignore[arg-type]
            routes=options.get("routes", frozenset(APIS)),  # type: ignore[arg-type]
            methods=options.get("methods"),  # type: ignore[arg-type]
            seed=options.get("seed", 0),  # type: ignore[arg-type]
        )

    @property
    def is_empty(self) -> bool:
        return not self.rates and not self.scripted and self.latency_ms is None

    def applies_to(self, api: Api, method: str) -> bool:
        return api in self.routes and (self.methods is None or method in self.methods)

    def __str__(self) -> str:
        items = [f"{fault.label}={rate:g}" for fault, rate in self.rates]
        items += [f"at={n}:{fault.label}" for n, fault in self.scripted]
        if self.latency_ms is not None:
            low, high = self.latency_ms
            items.append(f"latency_ms={low:g}-{high:g}")
        if self.retry_after is not None:
            items.append(f"retry_after={self.retry_after}")
        if self.interval is not None:
            items.append(f"interval={self.interval}")
        if self.routes != frozenset(APIS):
            items.append(f"routes={'|'.join(sorted(self.routes))}")
        if self.methods is not None:
            items.append(f"methods={'|'.join(sorted(self.methods))}")
        if items:
            items.append(f"seed={self.seed}")
        return ",".join(items)


def _fault_for_key(key: str) -> Fault | None:
    if key == "lost_ack":
        return Fault("lost_ack")
    if key == "malformed":
        return Fault("malformed")
    match = _STATUS_KEY.match(key)
    if match is None:
        return None
    return Fault("error_after" if match.group(2) else "error", int(match.group(1)))


def _probability(item: str, value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise FaultSpecError(f"fault spec item {item!r}: {value!r} is not a probability") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError(f"fault spec item {item!r}: a probability is between 0 and 1")
    return rate


def _scripted(item: str, value: str) -> tuple[int, Fault]:
    position, sep, kind = value.partition(":")
    if not sep or not position.strip().isdigit() or int(position) < 1:
        raise FaultSpecError(f"fault spec item {item!r} must be at=N:KIND with N >= 1")
    fault = _fault_for_key(kind.strip())
    if fault is None:
        raise FaultSpecError(
            f"fault spec item {item!r}: {kind.strip()!r} is not a fault (STATUS, STATUS_after, lost_ack, malformed)"
        )
    return int(position), fault


def _option(item: str, key: str, value: str) -> object:
    if key == "latency_ms":
        low, sep, high = value.partition("-")
        try:
            bounds = (float(low), float(high) if sep else float(low))
        except ValueError:
            raise FaultSpecError(f"fault spec item {item!r} must be latency_ms=A-B (milliseconds)") from None
        if bounds[0] < 0 or bounds[1] < bounds[0]:
            raise FaultSpecError(f"fault spec item {item!r}: need 0 <= A <= B")
        return bounds
    if key in ("retry_after", "seed"):
        if not value.isdigit():
            raise FaultSpecError(f"fault spec item {item!r}: {key} must be a non-negative integer")
        return int(value)
    if key == "interval":
        if value.upper() not in INTERVALS:
            raise FaultSpecError(f"fault spec item {item!r}: interval must be one of {', '.join(INTERVALS)}")
        return value.upper()
    if key == "routes":
        routes = frozenset(part.strip().lower() for part in value.split("|"))
        if "all" in routes:
            return frozenset(APIS)
        if not routes <= set(APIS):
            raise FaultSpecError(f"fault spec item {item!r}: routes are toloka, perftest or toloka|perftest")
        return routes
    if key == "methods":
        return frozenset(part.strip().upper() for part in value.split("|") if part.strip())
    raise FaultSpecError(
        f"unknown fault spec item {item!r} (expected STATUS=P, STATUS_after=P, lost_ack=P, malformed=P, "
        "at=N:KIND, "
        "latency_ms=A-B, retry_after=N, interval=MIN|HOUR|DAY, routes=..., methods=..., seed=N)"
    )


@dataclass(frozen=True)
class Decision:
    """What the injector decided for one request."""

    fault: Fault | None = None
    latency_s: float = 0.0


NO_FAULT = Decision()


class FaultInjector:
    """The running state of a spec: its generator and the count of requests in scope."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._random = random.Random(spec.seed)
        self._count = 0
        self._scripted = dict(spec.scripted)

    def decide(self, api: Api, method: str) -> Decision:
        spec = self.spec
        if spec.is_empty or not spec.applies_to(api, method):
            return NO_FAULT
        self._count += 1
        latency = 0.0
        if spec.latency_ms is not None:
            latency = self._random.uniform(*spec.latency_ms) / 1000.0
        chosen = self._scripted.get(self._count)
        draw = self._random.random() if spec.rates else 1.0
        if chosen is None:
            for fault, rate in spec.rates:
                if draw < rate:
                    chosen = fault
                    break
                draw -= rate
        return Decision(fault=chosen, latency_s=latency)
