"""Delivering the outbox: log, SMTP e-mail and an SMS gateway's HTTP webhook.

Messages are written to the outbox by ``record_events`` in the same transaction
as the change they report. A sender (one per worker process; several may run)
claims a due message with a lease, delivers it, and marks it sent; a failure is
retried with exponential backoff until ``max_attempts``, then marked failed.
A sender that dies mid-delivery leaves the lease to expire and the message is
picked up again (at-least-once; gateways dedupe by the message key we send).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx
import structlog
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.privacy import mask_sensitive_text
from store.db import one_writer
from store.tables import OutboxMessage, Place

_EMAIL = re.compile(r"^[^@\s:]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{6,15}$")
_OFFICE = re.compile(r"^(?P<role>[a-z_]+)@(?P<place>\d{12})$")
# structlog directly, not workers.logs (integrations sit below the workers): the worker's
# configure_logging formats and masks this logger's lines like every other.
_log = structlog.get_logger("aidflow.notify")


class Channel(Protocol):
    name: str

    async def send(self, recipient: str, subject: str, body: str, key: str) -> None: ...


class LogChannel:
    """The default: the message goes to the structured log (masked, like every line)."""

    name = "log"

    async def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        _log.info("notification", to=recipient, subject=subject, body=body, key=key)


@dataclass
class SmtpChannel:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    name: str = "smtp"

    async def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, recipient, subject
        msg["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9.-]', '.', key)}@aidflow>"
        msg.set_content(body, charset="utf-8")
        await aiosmtplib.send(
            msg,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            timeout=30,
        )


@dataclass
class WebhookChannel:
    """POSTs {to, text, key} as JSON to an SMS gateway."""

    url: str
    token: str | None = None
    name: str = "sms-webhook"

    async def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        headers = {"Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(
                self.url,
                json={"to": recipient, "text": f"【{subject}】{body}", "key": key},
                headers=headers,
            )
            r.raise_for_status()


@dataclass
class Channels:
    log: Channel
    email: Channel | None = None
    sms: Channel | None = None

    def for_address(self, address: str) -> Channel:
        if _EMAIL.match(address) and self.email is not None:
            return self.email
        if _PHONE.match(address) and self.sms is not None:
            return self.sms
        return self.log


class OutboxSender:
    def __init__(
        self,
        engine: Engine,
        channels: Channels,
        *,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
        backoff: timedelta = timedelta(seconds=30),
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._lease = lease
        self._max_attempts = max_attempts
        self._backoff = backoff

    # -- database steps (sync, run in a thread) --

    def _due(self, limit: int) -> list[OutboxMessage]:
        now = datetime.now(UTC)
        with Session(self._engine) as s:
            return list(
                s.exec(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.status == "pending", col(OutboxMessage.next_attempt_at) <= now
                    )
                    .order_by(col(OutboxMessage.id))
                    .limit(limit)
                ).all()
            )

    def _claim(self, msg: OutboxMessage) -> bool:
        """Optimistic claim: only one sender moves the lease forward from what it saw."""
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            result = s.execute(
                update(OutboxMessage)
                .where(
                    col(OutboxMessage.id) == msg.id,
                    col(OutboxMessage.status) == "pending",
                    col(OutboxMessage.attempts) == msg.attempts,
                )
                .values(attempts=msg.attempts + 1, next_attempt_at=datetime.now(UTC) + self._lease)
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _resolve(self, recipient: str) -> str:
        m = _OFFICE.match(recipient)
        if not m:
            return recipient
        with Session(self._engine) as s:
            place = s.get(Place, m.group("place"))
        if place is None:
            return recipient
        return place.contact_email or place.contact_phone or recipient

    def _finish(self, msg: OutboxMessage, via: str | None, error: str | None) -> None:
        now = datetime.now(UTC)
        attempts = msg.attempts + 1
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            if error is None:
                values = {
                    "status": "sent",
                    "sent_at": now,
                    "delivered_via": via,
                    "last_error": None,
                }
            elif attempts >= self._max_attempts:
                values = {"status": "failed", "last_error": error[:500]}
            else:
                values = {
                    "next_attempt_at": now + self._backoff * (2 ** (attempts - 1)),
                    "last_error": error[:500],
                }
            s.execute(update(OutboxMessage).where(col(OutboxMessage.id) == msg.id).values(**values))

    # -- the loop --

    async def run_once(self, limit: int = 100) -> tuple[int, int]:
        """Deliver what is due now; returns (sent, failed attempts)."""
        sent = failed = 0
        for msg in await asyncio.to_thread(self._due, limit):
            if not await asyncio.to_thread(self._claim, msg):
                continue  # another sender has it
            address = await asyncio.to_thread(self._resolve, msg.recipient)
            channel = self._channels.for_address(address)
            try:
                await channel.send(
                    address, msg.subject, mask_sensitive_text(msg.body), msg.dedupe_key
                )
            except Exception as e:  # any delivery failure is retried later
                failed += 1
                await asyncio.to_thread(self._finish, msg, None, f"{type(e).__name__}: {e}")
                continue
            sent += 1
            await asyncio.to_thread(self._finish, msg, channel.name, None)
        return sent, failed

    async def run_forever(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as e:  # the database may be briefly unavailable; keep going
                _log.warning("outbox sender failed", error=str(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
