"""Delivering the outbox: log, SMTP e-mail and an SMS gateway's HTTP webhook.

Messages are written to the outbox by ``record_events`` in the same transaction
as the change they report. A sender (one per worker process; several may run)
claims the due messages with a lease, a batch at a time, delivers them, and marks
them sent every few; a failure is retried with exponential backoff until
``max_attempts``, then marked failed. A sender that dies mid-batch leaves the
unmarked ones' lease to expire and they are picked up again (at-least-once; gateways
dedupe by the message key we send).
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
    # A batch is claimed in one transaction and its deliveries marked in a few: a
    # transaction a message held the one writer (store/db.py) that the trail's writes
    # also wait for, twice per notification, on the deadline day's busiest minutes.

    def _claim_due(self, limit: int) -> list[OutboxMessage]:
        """Claim what is due now, up to ``limit``, in one transaction: each row's lease
        moves forward only if it is still due (another sender that saw the same row and
        claimed it first moved it), so a message is claimed by one sender."""
        now = datetime.now(UTC)
        due = col(OutboxMessage.next_attempt_at) <= now
        pending = col(OutboxMessage.status) == "pending"
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            seen = list(
                s.exec(
                    select(OutboxMessage)
                    .where(pending, due)
                    .order_by(col(OutboxMessage.id))
                    .limit(limit)
                ).all()
            )
            if not seen:
                return []
            s.expunge_all()  # the rows as seen, before this claim's update
            claimed = set(
                s.execute(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_([m.id for m in seen]), pending, due)
                    .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=now + self._lease)
                    .returning(col(OutboxMessage.id))
                ).scalars()
            )
        return [m for m in seen if m.id in claimed]

    def _addresses(self, recipients: set[str]) -> dict[str, str]:
        """Each recipient's address: an office (``role@place``) by its place's contact."""
        offices = {r: m.group("place") for r in recipients if (m := _OFFICE.match(r))}
        places: dict[str, Place] = {}
        if offices:
            with Session(self._engine) as s:
                rows = s.exec(select(Place).where(col(Place.code).in_(set(offices.values()))))
                places = {p.code: p for p in rows}
        out = {}
        for r in recipients:
            place = places.get(offices.get(r, ""))
            out[r] = (place.contact_email or place.contact_phone or r) if place else r
        return out

    def _sent(self, ids_by_channel: dict[str, list[int]]) -> None:
        now = datetime.now(UTC)
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            for via, ids in ids_by_channel.items():
                s.execute(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_(ids))
                    .values(status="sent", sent_at=now, delivered_via=via, last_error=None)
                )

    def _failed(self, msg: OutboxMessage, error: str) -> None:
        attempts = msg.attempts + 1
        if attempts >= self._max_attempts:
            values: dict[str, object] = {"status": "failed", "last_error": error[:500]}
        else:
            later = datetime.now(UTC) + self._backoff * (2 ** (attempts - 1))
            values = {"next_attempt_at": later, "last_error": error[:500]}
        with one_writer(self._engine), Session(self._engine) as s, s.begin():
            s.execute(update(OutboxMessage).where(col(OutboxMessage.id) == msg.id).values(**values))

    # -- the loop --

    async def run_once(self, limit: int = 100, mark_every: int = 20) -> tuple[int, int]:
        """Deliver what is due now; returns (sent, failed attempts). Deliveries are
        marked sent every ``mark_every`` messages: a sender that dies between a send and
        its mark sends those again once their lease expires (at-least-once)."""
        claimed = await asyncio.to_thread(self._claim_due, limit)
        if not claimed:
            return 0, 0
        addresses = await asyncio.to_thread(self._addresses, {m.recipient for m in claimed})
        sent = failed = 0
        unmarked: dict[str, list[int]] = {}
        for i, msg in enumerate(claimed, 1):
            address = addresses[msg.recipient]
            channel = self._channels.for_address(address)
            try:
                await channel.send(
                    address, msg.subject, mask_sensitive_text(msg.body), msg.dedupe_key
                )
            except Exception as e:  # any delivery failure is retried later
                failed += 1
                await asyncio.to_thread(self._failed, msg, f"{type(e).__name__}: {e}")
            else:
                sent += 1
                unmarked.setdefault(channel.name, []).append(msg.id or 0)
            if unmarked and (i % mark_every == 0 or i == len(claimed)):
                await asyncio.to_thread(self._sent, unmarked)
                unmarked = {}
        return sent, failed

    async def run_forever(self, stop: asyncio.Event, interval: float = 2.0) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as e:  # the database may be briefly unavailable; keep going
                _log.warning("outbox sender failed", error=str(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
