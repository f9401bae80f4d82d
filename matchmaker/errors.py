"""The matchmaker's error vocabulary. The node maps these to wire error codes at its edge."""

from __future__ import annotations

from switchboard.errors import SwitchboardError


class MatchmakerError(SwitchboardError):
    """Base of the matchmaker's deliberate errors; ``field`` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class BadTicket(MatchmakerError):
    """A ticket field is missing, of the wrong type, or out of bounds."""


class UnknownFilter(MatchmakerError):
    """``filters`` names a filter the matchmaker does not know."""


class ImpossibleRange(MatchmakerError):
    """A range filter nobody can satisfy (``age_min`` above ``age_max``, a non-positive distance)."""


class BadCoordinates(MatchmakerError):
    """Latitude/longitude out of range, not finite, given alone, or missing for a distance filter."""


class NotQueued(MatchmakerError):
    """``queue.next`` from a user who has neither a pair nor a ticket to requeue."""
