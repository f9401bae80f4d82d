"""Parsing queue.join payloads: validation errors, premium gating, the stored codec, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchmaker.errors import BadCoordinates, BadTicket, ImpossibleRange, MatchmakerError, UnknownFilter
from matchmaker.ticket import Ticket, parse_ticket
from switchboard.ids import UserId

U = UserId("u1")


def test_valid_premium_ticket_keeps_all_filters() -> None:
    ticket, ignored = parse_ticket(U, True, {
        "country": "fr", "age": 30, "lat": 48.85, "lon": 2.35, "tags": ["Music", "chess"],
        "filters": {"countries": ["FR", "be"], "age_min": 25, "age_max": 40, "max_km": 100, "tags": ["chess"]},
        "profile": {"display_name": "Ann"},
    })
    assert ignored == ()
    assert ticket.country == "FR" and ticket.tags == {"music", "chess"}
    assert ticket.filters.countries == {"FR", "BE"} and ticket.filters.max_km == 100.0
    assert ticket.filters.tags == {"chess"} and (ticket.filters.age_min, ticket.filters.age_max) == (25, 40)


def test_non_premium_filters_are_ignored_and_named() -> None:
    ticket, ignored = parse_ticket(U, False, {
        "country": "DE", "age": 22, "lat": 1.0, "lon": 2.0,
        "filters": {"countries": ["DE"], "age_min": 20, "max_km": 50, "tags": ["x"]},
    })
    assert ignored == ("age_min", "max_km", "tags")
    assert ticket.filters.countries == {"DE"}
    assert ticket.filters.max_km is None and ticket.filters.tags == frozenset()
    assert (ticket.filters.age_min, ticket.filters.age_max) == (18, 120)


@pytest.mark.parametrize(("payload", "error"), [
    ({"country": "FR", "age": 30, "filters": {"gender": "x"}}, UnknownFilter),
    ({"country": "FR", "age": 30, "filters": {"age_min": 40, "age_max": 30}}, ImpossibleRange),
    ({"country": "FR", "age": 30, "filters": {"age_min": 10}}, ImpossibleRange),
    ({"country": "FR", "age": 30, "lat": 1.0, "lon": 2.0, "filters": {"max_km": 0}}, ImpossibleRange),
    ({"country": "FR", "age": 30, "lat": 91.0, "lon": 2.0}, BadCoordinates),
    ({"country": "FR", "age": 30, "lat": 10.0, "lon": 181}, BadCoordinates),
    ({"country": "FR", "age": 30, "lat": 10.0}, BadCoordinates),
    ({"country": "FR", "age": 30, "lat": float("nan"), "lon": 1.0}, BadCoordinates),
    ({"country": "FR", "age": 30, "filters": {"max_km": 10}}, BadCoordinates),
    ({"country": "FRA", "age": 30}, BadTicket),
    ({"country": "FR", "age": 12}, BadTicket),
    ({"country": "FR", "age": True}, BadTicket),
    ({"country": "FR"}, BadTicket),
    ({"country": "FR", "age": 30, "premium": True}, BadTicket),
    ({"country": "FR", "age": 30, "tags": ["no spaces"]}, BadTicket),
])
def test_bad_input_gets_a_clear_error(payload: dict, error: type[MatchmakerError]) -> None:  # type: ignore[type-arg]
    with pytest.raises(error) as info:
        parse_ticket(U, True, payload)
    assert info.value.field and info.value.problem


def test_bad_premium_filter_is_an_error_even_for_non_premium() -> None:
    with pytest.raises(ImpossibleRange):
        parse_ticket(U, False, {"country": "FR", "age": 30, "filters": {"age_min": 50, "age_max": 20}})


def test_stored_form_round_trips() -> None:
    ticket, _ = parse_ticket(U, True, {
        "country": "US", "age": 44, "lat": -33.9, "lon": 151.2, "tags": ["a", "b"],
        "filters": {"countries": ["US"], "age_min": 30, "max_km": 5000, "tags": ["a"]}, "profile": {"n": 1},
    })
    again = Ticket.from_json(ticket.to_json())
    assert again == ticket and again.profile == {"n": 1}
    assert "lat" not in ticket.public() and ticket.public()["user_id"] == "u1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["country", "age", "lat", "lon", "tags", "filters", "profile", "x"])
filter_names = st.sampled_from(["countries", "age_min", "age_max", "max_km", "tags", "y"])
payloads = st.dictionaries(field_names, json_values | st.dictionaries(filter_names, json_values, max_size=5),
                           max_size=7)


@settings(max_examples=400, deadline=None)
@given(payloads, st.booleans())
def test_parser_never_fails_otherwise(payload: dict, premium: bool) -> None:  # type: ignore[type-arg]
    """Whatever arrives, the parser returns a ticket that survives storage, or a MatchmakerError."""
    try:
        ticket, _ = parse_ticket(U, premium, payload)
    except MatchmakerError:
        return
    assert Ticket.from_json(ticket.to_json()) == ticket
    json.loads(ticket.to_json())
    assert premium or (ticket.filters.max_km is None and not ticket.filters.tags)


near_valid = st.fixed_dictionaries(
    {"country": st.sampled_from(["FR", "de", "USA", "", 7]), "age": st.integers(10, 130)},
    optional={
        "lat": st.floats(-100, 100) | st.none(), "lon": st.floats(-200, 200) | st.none(),
        "tags": st.lists(st.sampled_from(["a", "B", "x y", "ok-1", ""]), max_size=12),
        "filters": st.fixed_dictionaries({}, optional={
            "countries": st.lists(st.sampled_from(["FR", "XX", "zz", "F"]), max_size=3),
            "age_min": st.integers(0, 130), "age_max": st.integers(0, 130),
            "max_km": st.floats(-10, 30000) | st.none(), "tags": st.lists(st.sampled_from(["a", "b"]), max_size=6),
        }),
    },
)


@settings(max_examples=400, deadline=None)
@given(near_valid, st.booleans())
def test_near_valid_payloads_parse_consistently(payload: dict, premium: bool) -> None:  # type: ignore[type-arg]
    try:
        ticket, ignored = parse_ticket(U, premium, payload)
    except MatchmakerError:
        return
    f = ticket.filters
    assert 18 <= ticket.age <= 120 and f.age_min <= f.age_max
    assert (ticket.lat is None) == (ticket.lon is None)
    assert f.max_km is None or (ticket.lat is not None and 0 < f.max_km <= 20038)
    assert premium or set(ignored) == {k for k in ("age_min", "age_max", "max_km", "tags")
                                       if k in payload.get("filters", {})}
    assert Ticket.from_json(ticket.to_json()) == ticket
