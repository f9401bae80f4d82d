"""Outgoing mail: written to the outbox table in the caller's transaction, then handed to a Mailer.

``LogMailer`` prints the message to the log (``switchboard up`` without SMTP); ``SmtpMailer``
relays it. The outbox row is marked sent only after the mailer returned.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_api.models import OutboxMail
from control_api.types import Mailer

log = logging.getLogger("switchboard.api.mail")


class LogMailer:
    async def send(self, to: str, subject: str, body: str) -> None:
        log.info("mail to %s: %s\n%s", to, subject, body)


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str) -> None:
        self._host, self._port, self._sender = host, port, sender

    async def send(self, to: str, subject: str, body: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self._sender, to, subject
        msg.set_content(body)

        def relay() -> None:
            with smtplib.SMTP(self._host, self._port, timeout=10) as smtp:
                smtp.send_message(msg)

        await asyncio.to_thread(relay)


def enqueue(session: AsyncSession, to: str, subject: str, body: str) -> OutboxMail:
    """Adds the mail to the outbox in ``session``'s transaction; send it after commit."""
    mail = OutboxMail(to_addr=to, subject=subject, body=body)
    session.add(mail)
    return mail


async def deliver(sessions: async_sessionmaker, mailer: Mailer, mail: OutboxMail) -> None:
    """Sends one committed outbox mail and marks it sent; a failure leaves it unsent (and logged)."""
    try:
        await mailer.send(mail.to_addr, mail.subject, mail.body)
    except Exception:
        log.warning("mail %s to %s not sent; it stays in the outbox", mail.id, mail.to_addr, exc_info=True)
        return
    async with sessions() as session, session.begin():
        await session.execute(update(OutboxMail).where(OutboxMail.id == mail.id).values(sent_at=datetime.now(UTC)))
