"""A ticket: who waits in the random-chat queue, with what filters; parsing, premium gating, codec.

``parse_ticket`` is the only way in: it validates a ``queue.join`` payload into a :class:`Ticket`
(or raises one of :mod:`matchmaker.errors`) and drops the premium-only filters of non-premium
users, naming them in ``ignored``. The stored form (``to_json``/``from_json``) is the documented
Redis format of ``switchboard.keyspace.match_ticket``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from matchmaker.errors import BadCoordinates, BadTicket, ImpossibleRange, UnknownFilter
from switchboard.ids import UserId

MIN_AGE = 18
MAX_AGE = 120
MAX_TAGS = 10
MAX_FILTER_TAGS = 5
MAX_COUNTRIES = 50
MAX_KM = 20038.0
"""Half the Earth's circumference: no two points are farther apart."""
MAX_PROFILE_BYTES = 1024
PREMIUM_FILTERS = ("age_min", "age_max", "max_km", "tags")
"""Filters only premium users may set; for others they are ignored and the join reply says so."""
ALL_FILTERS = ("countries", *PREMIUM_FILTERS)
_TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_FIELDS = {"country", "age", "lat", "lon", "tags", "filters", "profile"}


@dataclass(frozen=True)
class Filters:
    """What a user accepts in a partner. Every filter is hard: it never widens with waiting time."""

    countries: frozenset[str] = frozenset()
    """Wanted partner countries (ISO 3166-1 alpha-2); empty means everyone. Open to every user."""
    age_min: int = MIN_AGE
    """Youngest accepted partner (premium)."""
    age_max: int = MAX_AGE
    """Oldest accepted partner (premium)."""
    max_km: float | None = None
    """Farthest accepted partner in km (premium); needs the user's own location; a partner
    without a location is then refused."""
    tags: frozenset[str] = frozenset()
    """Tags a partner must all have (premium)."""

    def __post_init__(self) -> None:
        if self.age_min > self.age_max:
            raise ImpossibleRange("filters.age_min", f"{self.age_min} is above age_max {self.age_max}")
        if self.max_km is not None and not 0 < self.max_km <= MAX_KM:
            raise ImpossibleRange("filters.max_km", f"must be in (0, {MAX_KM:.0f}] km, got {self.max_km}")


@dataclass(frozen=True)
class Ticket:
    """One user waiting to be paired."""

    user_id: UserId
    """Who waits."""
    country: str
    """The user's country, ISO 3166-1 alpha-2 (upper case)."""
    age: int
    """The user's age in years."""
    lat: float | None = None
    """Latitude in degrees; given together with ``lon`` or not at all."""
    lon: float | None = None
    """Longitude in degrees."""
    tags: frozenset[str] = frozenset()
    """Interest tags (lower case)."""
    premium: bool = False
    """Premium users may set the age, distance and tag filters."""
    filters: Filters = field(default_factory=Filters)
    """What the user accepts (already gated: a non-premium ticket carries only ``countries``)."""
    profile: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Public profile shown to the partner in ``match.found`` (display name, avatar...)."""

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise BadCoordinates("lat", "lat and lon go together")
        if self.filters.max_km is not None and self.lat is None:
            raise BadCoordinates("filters.max_km", "a distance filter needs your own lat/lon")

    @property
    def has_location(self) -> bool:
        return self.lat is not None

    def public(self) -> dict[str, Any]:
        """What the partner sees: never the location, the filters or the premium flag."""
        return {"user_id": self.user_id, "country": self.country, "tags": sorted(self.tags),
                "profile": dict(self.profile)}

    @cached_property
    def public_json(self) -> str:
        """:meth:`public` as compact JSON, encoded once (a claim embeds it in ``match.found``)."""
        return json.dumps(self.public(), separators=(",", ":"))

    def to_json(self) -> str:
        f = self.filters
        return json.dumps({
            "user_id": self.user_id, "country": self.country, "age": self.age, "lat": self.lat,
            "lon": self.lon, "tags": sorted(self.tags), "premium": self.premium,
            "filters": {"countries": sorted(f.countries), "age_min": f.age_min, "age_max": f.age_max,
                        "max_km": f.max_km, "tags": sorted(f.tags)},
            "profile": dict(self.profile),
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Ticket:
        """Reads the stored form (trusted: it was written by :func:`parse_ticket` or the bench)."""
        d = json.loads(raw)
        f = d.get("filters") or {}
        return cls(
            user_id=UserId(d["user_id"]), country=d["country"], age=int(d["age"]), lat=d.get("lat"),
            lon=d.get("lon"), tags=frozenset(d.get("tags") or ()), premium=bool(d.get("premium")),
            filters=Filters(
                countries=frozenset(f.get("countries") or ()), age_min=int(f.get("age_min", MIN_AGE)),
                age_max=int(f.get("age_max", MAX_AGE)), max_km=f.get("max_km"), tags=frozenset(f.get("tags") or ()),
            ),
            profile=d.get("profile") or {},
        )


def _int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadTicket(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise (ImpossibleRange if name.startswith("filters.") else BadTicket)(
            name, f"must be in [{low}, {high}], got {value}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadCoordinates(name, f"must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise BadCoordinates(name, f"must be finite, got {value!r}")
    return out


def _strings(value: object, name: str, pattern: re.Pattern[str], limit: int, upper: bool = False) -> frozenset[str]:
    if not isinstance(value, list | tuple):
        raise BadTicket(name, f"must be a list, got {value!r}")
    if len(value) > limit:
        raise BadTicket(name, f"at most {limit} items, got {len(value)}")
    out = set()
    for item in value:
        if not isinstance(item, str):
            raise BadTicket(name, f"items must be strings, got {item!r}")
        item = item.upper() if upper else item.lower()
        if not pattern.fullmatch(item):
            raise BadTicket(name, f"bad item {item!r}")
        out.add(item)
    return frozenset(out)


def _country(value: object, name: str) -> str:
    if not isinstance(value, str) or not _COUNTRY.fullmatch(value.upper()):
        raise BadTicket(name, f"must be an ISO 3166-1 alpha-2 code, got {value!r}")
    return value.upper()


def _profile(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadTicket("profile", "must be an object")
    for key, item in value.items():
        if not isinstance(key, str) or not (item is None or isinstance(item, str | int | float | bool)):
            raise BadTicket("profile", f"values must be scalars, got {key!r}: {item!r}")
    if len(json.dumps(dict(value))) > MAX_PROFILE_BYTES:
        raise BadTicket("profile", f"at most {MAX_PROFILE_BYTES} bytes")
    return dict(value)


def _filters(raw: object, premium: bool) -> tuple[Filters, tuple[str, ...]]:
    if raw is None:
        return Filters(), ()
    if not isinstance(raw, Mapping):
        raise BadTicket("filters", "must be an object")
    for key in raw:
        if key not in ALL_FILTERS:
            raise UnknownFilter(f"filters.{key}", f"unknown filter (known: {', '.join(ALL_FILTERS)})")
    countries = frozenset(_country(c, "filters.countries") for c in _list(raw.get("countries", [])))
    if len(countries) > MAX_COUNTRIES:
        raise BadTicket("filters.countries", f"at most {MAX_COUNTRIES} countries")
    age_min = _int(raw.get("age_min", MIN_AGE), "filters.age_min", MIN_AGE, MAX_AGE)
    age_max = _int(raw.get("age_max", MAX_AGE), "filters.age_max", MIN_AGE, MAX_AGE)
    max_km = raw.get("max_km")
    if max_km is not None:
        if isinstance(max_km, bool) or not isinstance(max_km, int | float) or not math.isfinite(max_km):
            raise BadTicket("filters.max_km", f"must be a number, got {max_km!r}")
        max_km = float(max_km)
    tags = _strings(raw.get("tags", []), "filters.tags", _TAG, MAX_FILTER_TAGS)
    full = Filters(countries, age_min, age_max, max_km, tags)  # validates ranges even when ignored
    if premium:
        return full, ()
    ignored = tuple(k for k in PREMIUM_FILTERS if k in raw)
    return Filters(countries=countries), ignored


def _list(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise BadTicket("filters.countries", f"must be a list, got {value!r}")
    return list(value)


def parse_ticket(user_id: UserId, premium: bool, payload: Mapping[str, Any]) -> tuple[Ticket, tuple[str, ...]]:
    """Validates a ``queue.join`` payload. Returns the ticket and the premium filters ignored
    (non-premium users). ``premium`` comes from the account, never from the payload."""
    if not isinstance(payload, Mapping):
        raise BadTicket("ticket", "must be an object")
    for key in payload:
        if key not in _FIELDS:
            raise BadTicket(str(key), "unknown field")
    if "country" not in payload or "age" not in payload:
        raise BadTicket("country" if "country" not in payload else "age", "is required")
    lat, lon = payload.get("lat"), payload.get("lon")
    if (lat is None) != (lon is None):
        raise BadCoordinates("lat" if lat is None else "lon", "lat and lon go together")
    if lat is not None:
        lat, lon = _number(lat, "lat"), _number(lon, "lon")
        if not -90.0 <= lat <= 90.0:
            raise BadCoordinates("lat", f"must be in [-90, 90], got {lat}")
        if not -180.0 <= lon <= 180.0:
            raise BadCoordinates("lon", f"must be in [-180, 180], got {lon}")
    filters, ignored = _filters(payload.get("filters"), premium)
    ticket = Ticket(
        user_id=user_id, country=_country(payload["country"], "country"),
        age=_int(payload["age"], "age", MIN_AGE, MAX_AGE), lat=lat, lon=lon,
        tags=_strings(payload.get("tags", []), "tags", _TAG, MAX_TAGS), premium=premium, filters=filters,
        profile=_profile(payload.get("profile", {})),
    )
    return ticket, ignored
