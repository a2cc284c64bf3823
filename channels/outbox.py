"""The outbox adapter: rendered messages appended as JSON lines to a file, always ok.

For the embedded demo (nothing leaves the machine) and for ops previewing what a
journey would send. The address is masked unless ``mask=False`` is asked for,
because the file is read by people (SPEC §9).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from channels.base import OutboundMessage, SendResult
from store.clock import utcnow
from store.masking import mask_email, mask_phone


def _mask(channel: str, to: str) -> str:
    if channel == "email":
        return mask_email(to)
    if channel == "sms":
        return mask_phone(to)
    if channel == "webhook":
        return to  # the target's name, not a person's address
    return to[:4] + "***" if len(to) > 4 else "***"


class OutboxAdapter:
    def __init__(self, path: str | Path, channel: str, *, mask: bool = True) -> None:
        self.path = Path(path)
        self.channel = channel
        self.mask = mask
        self._lock = asyncio.Lock()

    def _line(self, message: OutboundMessage) -> str:
        record = {
            "at": utcnow().isoformat(),
            "channel": self.channel,
            "touch_id": message.touch_id,
            "touch_key": message.touch_key,
            "to": _mask(self.channel, message.to) if self.mask else message.to,
            "category": message.category,
            "content": asdict(message.content),
        }
        return json.dumps(record, ensure_ascii=False)

    async def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult]:
        lines = "".join(self._line(m) + "\n" for m in messages)
        async with self._lock:
            await asyncio.to_thread(self._append, lines)
        return [
            SendResult(
                m.touch_key,
                ok=True,
                provider_message_id="outbox-" + hashlib.sha256(m.touch_key.encode()).hexdigest()[:24],
                provider_status="written",
            )
            for m in messages
        ]

    def _append(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)

    async def aclose(self) -> None:
        """Each batch opens and closes the file; nothing to close."""
