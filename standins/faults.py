"""Fault injection and the accepted-message log shared by every stand-in.

A stand-in draws one fault per request from a seeded generator, so a reliability
test that replays the same traffic sees the same faults. What the stand-in
accepted is logged with the sender's idempotency key where the protocol carries
one, which is how tests count duplicates: a key accepted twice was sent twice.

Two faults take the message first and then fail the answer, the cases where a blind
retry duplicates it: ``timeout`` (with ``timeout_after_accept``: the reply is lost) and
``5xx_after_accept`` (the provider answers a server error after taking it, as a gateway
does when its backend created the message and then failed or timed out). The plain
``5xx`` refuses the request before taking it; a client cannot tell the two apart.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

Fault = Literal["timeout", "5xx", "5xx_after_accept", "429", "permanent"]
R = TypeVar("R")


@dataclass
class FaultPlan:
    """Rates are probabilities per request (0..1); at most one fault is drawn per request."""

    latency_s: float = 0.0  # added to every request
    timeout_rate: float = 0.0  # hang for ``hang_s`` (past the client's timeout)
    hang_s: float = 30.0
    # A timed-out request is accepted (and logged) before the hang, as when a provider
    # takes the message and the reply is lost: the case that makes retries duplicate.
    timeout_after_accept: bool = True
    error_5xx_rate: float = 0.0
    # Accepted (and logged), then answered with a server error. Over SMTP, where a reply to
    # the final dot is definite, the stand-in drops the connection instead of answering.
    accepted_5xx_rate: float = 0.0
    rate_429: float = 0.0
    permanent_rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class Accepted:
    message_id: str
    recipient: str
    key: str | None  # the sender's idempotency key, when the protocol carries one
    detail: dict[str, Any] = field(default_factory=dict)


class Faults:
    """Thread-safe: tests configure it from their own thread while the server runs in another."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self.plan = plan or FaultPlan()
        self._rng = random.Random(self.plan.seed)  # nosec B311 # repeatable fault injection for tests
        self.drawn: Counter[str] = Counter()

    def configure(self, **changes: Any) -> None:
        """Change some fields of the plan; a new ``seed`` restarts the random sequence."""
        names = {f.name for f in fields(FaultPlan)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self.plan, name, value)
            if "seed" in changes:
                self._rng = random.Random(self.plan.seed)  # nosec B311 # repeatable fault injection for tests

    def reset(self) -> None:
        with self._lock:
            self.plan = FaultPlan()
            self._rng = random.Random(0)  # nosec B311 # repeatable fault injection for tests
            self.drawn.clear()

    def draw(self) -> Fault | None:
        with self._lock:
            plan = self.plan
            rates = (
                ("timeout", plan.timeout_rate),
                ("5xx", plan.error_5xx_rate),
                ("5xx_after_accept", plan.accepted_5xx_rate),
                ("429", plan.rate_429),
                ("permanent", plan.permanent_rate),
            )
            if sum(rate for _, rate in rates) <= 0:
                return None
            u = self._rng.random()
            fault: Fault | None = None
            for name, rate in rates:
                if u < rate:
                    fault = name  # type: ignore[assignment]
                    break
                u -= rate
            if fault:
                self.drawn[fault] += 1
            return fault

    async def latency(self) -> None:
        if self.plan.latency_s > 0:
            await asyncio.sleep(self.plan.latency_s)

    async def hang(self) -> None:
        await asyncio.sleep(self.plan.hang_s)

    async def refusal(self, fault: Fault | None, reply: Callable[[Fault], R]) -> R | None:
        """What a request answers instead of being accepted because of ``fault``, or None to accept it.

        ``reply`` is the protocol's answer for each fault. A timeout hangs first, unless the plan
        accepts the message before hanging (then ``after_accept`` hangs after the accept);
        ``5xx_after_accept`` always accepts first.
        """
        if fault is None or fault == "5xx_after_accept" or (fault == "timeout" and self.plan.timeout_after_accept):
            return None
        if fault == "timeout":
            await self.hang()
        return reply(fault)

    async def lost_reply(self, fault: Fault | None) -> bool:
        """After accepting: hang if ``fault`` is a timeout, as when the provider took the message
        and its reply never reached the sender. True if it hung."""
        if fault != "timeout":
            return False
        await self.hang()
        return True

    async def after_accept(self, fault: Fault | None, reply: Callable[[Fault], R]) -> R | None:
        """What a request answers after its message was accepted, instead of the acceptance, or
        None to answer normally: a timeout hangs and then answers ``reply("timeout")`` (which the
        sender, gone by then, never reads); ``5xx_after_accept`` answers ``reply("5xx")`` at once.

        A stand-in that calls ``lost_reply`` instead answers ``5xx_after_accept`` normally."""
        if await self.lost_reply(fault):
            return reply("timeout")
        if fault == "5xx_after_accept":
            return reply("5xx")
        return None


class AcceptedLog:
    """Append-only record of accepted messages (appends are atomic; readers take snapshots)."""

    def __init__(self) -> None:
        self._entries: list[Accepted] = []

    def add(self, entry: Accepted) -> None:
        self._entries.append(entry)

    @property
    def entries(self) -> list[Accepted]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def keys(self) -> Counter[str]:
        return Counter(e.key for e in self._entries if e.key is not None)

    def duplicates(self) -> dict[str, int]:
        """Idempotency keys accepted more than once, with their counts."""
        return {k: n for k, n in self.keys().items() if n > 1}

    def summary(self) -> dict[str, Any]:
        return {"accepted": len(self._entries), "duplicates": self.duplicates()}
