"""Outgoing mail: written to the outbox table in the caller's transaction, then handed to a Mailer.

``LogMailer`` prints the message to the log (``switchboard up`` without SMTP); ``SmtpMailer``
relays it. The outbox row is marked sent only after the mailer returned. A :class:`Postman` sends
in the background, so no answer waits on (or is timed by) the mail relay.
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
        # One line: a text log prefixes each record once, so a body on lines of its own would lose its
        # prefix (and the mailed code would sit on a line no ``grep 'mail to'`` finds).
        log.info("mail to %s: %s: %s", to, subject, " / ".join(line for line in body.splitlines() if line))


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


class Postman:
    """Delivers committed outbox mail in background tasks it owns; ``close()`` lets them finish
    (a few seconds at most), then cancels the rest, which stay unsent in the outbox."""

    def __init__(self, sessions: async_sessionmaker, mailer: Mailer) -> None:
        self._sessions = sessions
        self._mailer = mailer
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def post(self, mail: OutboxMail) -> None:
        """Starts delivering ``mail`` (already committed); returns at once."""
        if self._closed:
            log.warning("mail %s not sent: the API is stopping; it stays in the outbox", mail.id)
            return
        task = asyncio.create_task(self._deliver(mail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, mail: OutboxMail) -> None:
        try:
            await deliver(self._sessions, self._mailer, mail)
        except Exception:
            log.error("mail %s: marking it sent failed", mail.id, exc_info=True)

    async def close(self, grace_s: float = 5.0) -> None:
        """Safe to call twice."""
        self._closed = True
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
