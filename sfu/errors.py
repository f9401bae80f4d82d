"""The SFU's error vocabulary; signaling maps these to wire codes at its edge."""

from __future__ import annotations

import logging

from switchboard.errors import SwitchboardError


class SfuError(SwitchboardError):
    """Base of every error the SFU raises on purpose."""


class UnknownRoom(SfuError):
    """No such room on this node."""


class UnknownPeer(SfuError):
    """No such peer in this room."""


class NegotiationError(SfuError):
    """An SDP offer/answer could not be applied (bad SDP, no usable codec, wrong state)."""


class NoClip(SfuError):
    """A clip was asked of a room with no buffered media (never through the SFU, or clips are off)."""


class WorkerUnavailable(SfuError):
    """A worker process died or did not answer in time."""


class Busy(WorkerUnavailable):
    """The worker is taking all the joins it can without starving its live transports: refused at once
    (signaling answers ``unavailable``: try again in a moment)."""


class Faults:
    """Exceptions caught at a hot-path or background-task boundary: counted by kind, each kind logged
    once at ERROR with its traceback (a fault repeating per packet must not flood the log)."""

    def __init__(self, logger: logging.Logger, where: str) -> None:
        self._log = logger
        self._where = where
        self.counts: dict[str, int] = {}
        """Exception class name -> times caught."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def caught(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        seen = self.counts.get(kind, 0)
        self.counts[kind] = seen + 1
        if not seen:
            self._log.error("%s: %s caught (counted, logged once per kind)", self._where, kind, exc_info=exc)
