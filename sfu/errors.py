"""The SFU's error vocabulary; signaling maps these to wire codes at its edge."""

from __future__ import annotations

from switchboard.errors import SwitchboardError


class SfuError(SwitchboardError):
    """Base of every error the SFU raises on purpose."""


class UnknownRoom(SfuError):
    """No such room on this node."""


class UnknownPeer(SfuError):
    """No such peer in this room."""


class NegotiationError(SfuError):
    """An SDP offer/answer could not be applied (bad SDP, no usable codec, wrong state)."""


class WorkerUnavailable(SfuError):
    """A worker process died or did not answer in time."""
