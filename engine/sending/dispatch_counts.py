"""What a dispatch run did, as ``engine.sending.dispatch`` counts it and the runtime reports it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from store.field_values import field_values


@dataclass
class DispatchCounts:
    """What a dispatch run did. ``failed`` is keyed by class: permanent, exhausted, no_address, render, ..."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0  # retryable failure: tried again later on the same channel
    fell_back: int = 0  # moved to the next channel of the touch
    cancelled: int = 0  # consent withdrawn since planning: a marketing touch, or no other channel left
    dropped: int = 0  # over the marketing cap when it came to be sent
    unanswered: int = 0  # delivery unknown: left for reconciliation to ask the provider
    held: int = 0  # claimed in its channel's quiet hours: back to planned until their end, not tried
    failed: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    seconds: float = 0.0
    reconciled: Counter[str] = field(default_factory=Counter)  # what reconciliation settled in this run

    def merge(self, other: DispatchCounts) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.deferred += other.deferred
        self.fell_back += other.fell_back
        self.cancelled += other.cancelled
        self.dropped += other.dropped
        self.unanswered += other.unanswered
        self.held += other.held
        self.failed.update(other.failed)
        self.batches += other.batches
        self.reconciled.update(other.reconciled)

    def as_dict(self) -> dict[str, Any]:
        # Reconciliation's tally goes out as "settled", the key the run reports have always used;
        # the counters become plain dicts, which is what JSON and the flow results take.
        counts = field_values(self, without=("reconciled",))
        counts.update(failed=dict(self.failed), seconds=round(self.seconds, 3), settled=dict(self.reconciled))
        return counts

    def summary(self) -> str:
        failed = ", ".join(f"{k}={v}" for k, v in sorted(self.failed.items())) or "0"
        return (
            f"claimed={self.claimed} sent={self.sent} deferred={self.deferred} fell_back={self.fell_back} "
            f"cancelled={self.cancelled} dropped={self.dropped} unanswered={self.unanswered} held={self.held} "
            f"failed[{failed}] batches={self.batches}"
        )
